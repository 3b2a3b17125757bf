use crate::failure::Failure;

/// Why a caller was refused. Each says which check failed; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("malformed hotkey: {0}")]
    MalformedHotkey(#[from] wire::ss58::Ss58Error),
    #[error("malformed timestamp: expected Unix seconds")]
    MalformedTimestamp,
    #[error("stale timestamp: the request was signed more than {0} s ago (check your clock)")]
    StaleTimestamp(i64),
    #[error("timestamp in the future: more than {0} s ahead (check your clock)")]
    FutureTimestamp(i64),
    #[error("malformed nonce: 1 to 256 printable ASCII characters")]
    MalformedNonce,
    #[error("malformed signature: expected 0x followed by 128 hex digits")]
    MalformedSignature,
    #[error("bad signature: it does not verify for this hotkey and message")]
    BadSignature,
    #[error("replayed nonce: this request was already received")]
    ReplayedNonce,
    #[error(
        "the bound signature (X-Signature-Bound) does not match this request: it must sign this method, path and body for the service at {0} (is the client's base URL the service's public URL?)"
    )]
    BadBoundSignature(String),
    #[error("this route takes only bound signatures (X-Signature-Bound): update the client (oro-inference's `oro` sends them)")]
    BoundSignatureRequired,
    #[error("hotkey is banned")]
    Banned,
    #[error("hotkey is not on the miner allowlist")]
    NotAllowlisted,
    #[error("unknown validator: this hotkey is not in the validator set")]
    NotValidator,
    #[error("not signed in")]
    NotSignedIn,
    #[error("invalid or expired session token")]
    InvalidSession,
    #[error("unknown or expired challenge: ask for a new one")]
    UnknownChallenge,
    #[error("the sign-in message is malformed: {0}")]
    MalformedSignInMessage(String),
    #[error("the sign-in message is for {0}, not this site")]
    WrongDomain(String),
    #[error("the sign-in message has expired: sign in again")]
    ExpiredSignIn,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl AuthError {
    /// "We don't know who you are", "we know, and no", or our fault.
    pub fn failure(&self) -> Failure {
        match self {
            AuthError::Banned | AuthError::NotAllowlisted | AuthError::NotValidator | AuthError::CrossSite => Failure::Forbidden,
            AuthError::Storage(_) => Failure::Internal,
            _ => Failure::Unauthenticated,
        }
    }
}
