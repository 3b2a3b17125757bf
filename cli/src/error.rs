//! Every way a command can fail, and how it is told: exit 2 for bad usage and wallet
//! problems, exit 1 when the server refused or could not be reached (or the browser flow
//! failed). No message carries a secret.

use crate::chutes_flow::ChutesFlowError;
use crate::client::ClientError;
use crate::wallet::WalletError;

pub const EXIT_REFUSED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A command line that cannot work (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    ChutesFlow(#[from] ChutesFlowError),
    /// Refused before anything was sent (for example `oro submit` with no provider).
    #[error("{0}")]
    Refused(String),
    /// `oro submit` refused with a known reason: `Error: {detail}` and the violations.
    #[error("{detail}")]
    SubmitRefused { detail: String, violations: Vec<String> },
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Wallet(_) => EXIT_USAGE,
            _ => EXIT_REFUSED,
        }
    }

    /// The error for `--json`: `{"error": {"message", "exit_code", "status"?, "detail"?}}`, the
    /// server's own body as `detail` when it sent one.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"message": self.report(), "exit_code": self.exit_code()});
        if let CliError::Client(ClientError::Refused { status, body, .. }) = self {
            error["status"] = serde_json::json!(status);
            if let Some(body) = body {
                error["detail"] = body.clone();
            }
        }
        serde_json::json!({ "error": error })
    }

    /// The text for stderr, in oro-sdk's wording where it has one.
    pub fn report(&self) -> String {
        match self {
            // Already `Error (HTTP {status}): {detail}`.
            CliError::Client(refused @ ClientError::Refused { .. }) => refused.to_string(),
            CliError::SubmitRefused { detail, violations } if !violations.is_empty() => {
                format!("Error: {detail}\n\n{}", violations.join("\n"))
            }
            other => format!("Error: {other}"),
        }
    }
}
