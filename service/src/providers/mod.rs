//! Clients for the two providers, speaking exactly the shapes in `shared/CONTRACT.md`. They
//! reach whatever base URL the settings give (the real provider, or the simulator).

pub mod chutes;
pub mod openrouter;

use std::time::Duration;

use wire::Provider;

/// What went wrong at a provider, in terms a miner can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} refused the credential: it is invalid, disabled or revoked")]
    Unauthorized { provider: &'static str },
    #[error("no credits: {provider} says the account is out of funds ({detail})")]
    NoCredits { provider: &'static str, detail: String, limit_source: Option<String> },
    #[error("{provider} is rate limiting requests (HTTP 429); try again shortly")]
    RateLimited { provider: &'static str },
    #[error("{provider} is unavailable (HTTP {status}); try again shortly")]
    Unavailable { provider: &'static str, status: u16 },
    #[error("{provider} did not answer within {seconds} s; try again shortly")]
    Timeout { provider: &'static str, seconds: u64 },
    #[error("cannot reach {provider}; try again shortly")]
    Unreachable { provider: &'static str },
    #[error("{provider} refused the authorization grant (invalid_grant): connect again")]
    InvalidGrant { provider: &'static str },
    #[error("{provider} refused the request (HTTP {status}): {detail}")]
    Refused { provider: &'static str, status: u16, detail: String },
    #[error("{provider} answered in an unexpected shape")]
    Malformed { provider: &'static str },
    /// RFC 6750 section 3.1: the credential is good but its grant does not cover the request.
    #[error("{provider} refused the request: the grant lacks a scope (insufficient_scope)")]
    InsufficientScope { provider: &'static str },
    /// A code exchange answered no refresh token, so the connection could not outlast the
    /// access token; typically the IdP wants `offline_access` among the scopes.
    #[error(
        "{provider} issued no refresh token, so the connection cannot be kept; the operator may need to add offline_access to ORO_CHUTES_SCOPES"
    )]
    NoRefreshToken { provider: &'static str },
}

impl ProviderError {
    /// Worth retrying later: the provider's trouble, not the credential's.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. }
                | ProviderError::Unavailable { .. }
                | ProviderError::Timeout { .. }
                | ProviderError::Unreachable { .. }
        )
    }

    /// A short label for metrics: what kind of answer the provider gave.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProviderError::Unauthorized { .. } => "unauthorized",
            ProviderError::NoCredits { .. } => "no_credits",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Unreachable { .. } => "unreachable",
            ProviderError::InvalidGrant { .. } => "invalid_grant",
            ProviderError::Refused { .. } => "refused",
            ProviderError::Malformed { .. } => "malformed",
            ProviderError::InsufficientScope { .. } => "insufficient_scope",
            ProviderError::NoRefreshToken { .. } => "no_refresh_token",
        }
    }

    pub(crate) fn from_reqwest(provider: Provider, timeout: Duration, e: reqwest::Error) -> Self {
        let provider = provider.display_name();
        if e.is_timeout() {
            ProviderError::Timeout { provider, seconds: timeout.as_secs() }
        } else if e.is_decode() {
            ProviderError::Malformed { provider }
        } else {
            ProviderError::Unreachable { provider }
        }
    }
}

/// Times one call to a provider and counts it by outcome
/// (`oro_provider_calls_total{provider, operation, outcome}`,
/// `oro_provider_call_duration_seconds{provider, operation}`).
pub(crate) async fn observe<T>(
    provider: Provider,
    operation: &'static str,
    call: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let started = std::time::Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    metrics::histogram!("oro_provider_call_duration_seconds", "provider" => provider.as_str(), "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("oro_provider_calls_total", "provider" => provider.as_str(), "operation" => operation, "outcome" => outcome)
        .increment(1);
    result
}

/// Provider messages are echoed to miners: cut them short and blank anything shaped like a
/// credential, in case a provider ever quotes one back.
pub fn scrub(message: &str) -> String {
    // Control characters and bidirectional overrides never reach a page or a terminal: a
    // reason could otherwise rewrite how the rest of a line reads.
    let visible: String = message.chars().map(|c| if c.is_control() || is_bidi_control(c) { ' ' } else { c }).collect();
    let mut out = String::new();
    for (i, word) in visible.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let looks_secret = ["sk-or-", "cak_", "crt_", "cid_", "Bearer"].iter().any(|p| word.contains(p))
            || (word.len() >= 32 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        out.push_str(if looks_secret { "[redacted]" } else { word });
        if out.len() > 240 {
            // Cut on a character boundary: the text may be anyone's (a validator's report).
            let cut = (0..=240).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
            out.truncate(cut);
            out.push_str("...");
            break;
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        // OAuth and key APIs never need redirects; following one could leak a bearer token.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("oro-inference/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with static settings builds")
}

#[cfg(test)]
mod tests {
    #[test]
    fn scrub_cuts_long_text_on_a_character_boundary() {
        let text = "é".repeat(300);
        let cut = super::scrub(&text);
        assert!(cut.ends_with("...") && cut.len() <= 243);
        // Words of 5 bytes, 3 of them one character: some cut lands inside a character.
        for offset in 0..5 {
            let mixed = format!("{}{}", "x".repeat(offset), " ab’".repeat(100));
            assert!(super::scrub(&mixed).ends_with("..."));
        }
    }

    #[test]
    fn scrub_drops_control_and_bidi_characters() {
        let text = super::scrub("out\u{0}of\u{1b}[31m credits\u{202E}evil\u{2066}x\r\nnext");
        assert!(!text.chars().any(|c| c.is_control() || super::is_bidi_control(c)), "{text:?}");
        assert_eq!(text, "out of [31m credits evil x next");
    }

    #[test]
    fn scrub_blanks_credentials() {
        let text = super::scrub("bad key sk-or-v1-0123456789abcdef0123456789abcdef0123 and cak_abc");
        assert!(!text.contains("sk-or-v1"));
        assert!(!text.contains("cak_"));
        assert!(text.starts_with("bad key [redacted]"));
    }
}
