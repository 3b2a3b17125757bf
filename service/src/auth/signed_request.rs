//! ORO's signed requests: `X-Hotkey`, `X-Timestamp`, `X-Nonce`, `X-Signature` over
//! `"{hotkey}:{timestamp}:{nonce}"`. The nonce is remembered in the database for the skew
//! window, so that every replica refuses a replay.

use crate::auth::{AuthError, signature};
use crate::db::Db;
use crate::domain::Hotkey;
use crate::store;

/// The four header values as they arrived (absent ones are `None`).
#[derive(Debug, Default, Clone)]
pub struct SignedHeaders<'a> {
    pub hotkey: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl SignedHeaders<'_> {
    /// Whether the request tries to be signed at all (any of the headers present).
    pub fn is_present(&self) -> bool {
        self.hotkey.is_some() || self.signature.is_some()
    }
}

/// A header set whose signature and clock check out; its nonce is not spent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHeaders<'a> {
    pub hotkey: Hotkey,
    /// Unix seconds, as parsed from `X-Timestamp`.
    pub timestamp: i64,
    pub nonce: &'a str,
}

/// Checks the signature and the clock, then spends the nonce. Cheap checks come first, the
/// database last, so that garbage never costs a write.
pub async fn verify(db: &Db, skew_secs: i64, headers: &SignedHeaders<'_>, now: i64) -> Result<Hotkey, AuthError> {
    let unspent = unspent(skew_secs, headers, now)?;
    if !unspent.spend(&mut *db.pool().acquire().await?).await? {
        return Err(AuthError::ReplayedNonce);
    }
    Ok(unspent.hotkey)
}

/// A signed request that passed [`check`], its nonce not spent yet: for a caller that spends it
/// inside its own transaction (a claim, whose first transaction then commits once, not twice).
#[derive(Debug, Clone)]
pub struct UnspentNonce {
    pub hotkey: Hotkey,
    nonce: String,
    expires_at: i64,
}

impl UnspentNonce {
    /// Spends the nonce on `conn`; false when it was spent before (a replay: refuse the
    /// request, and roll back what the transaction did).
    pub async fn spend(&self, conn: &mut store::Conn) -> Result<bool, sqlx::Error> {
        store::auth::spend_nonce(conn, self.hotkey.as_str(), &self.nonce, self.expires_at).await
    }
}

/// [`check`], and the nonce to spend.
pub fn unspent(skew_secs: i64, headers: &SignedHeaders<'_>, now: i64) -> Result<UnspentNonce, AuthError> {
    let VerifiedHeaders { hotkey, timestamp, nonce } = check(skew_secs, headers, now)?;
    // Remember the nonce until the timestamp can no longer pass the skew check on any replica:
    // twice the skew, so replicas whose clocks differ (by up to the skew) open no replay window.
    Ok(UnspentNonce { hotkey, nonce: nonce.to_owned(), expires_at: timestamp + 2 * skew_secs + 1 })
}

/// Everything [`verify`] checks before it touches the database: the headers are present and
/// well formed, the timestamp is within `skew_secs` of `now`, and the signature verifies.
/// Pure, so that it can be fuzzed and property-tested without a database.
pub fn check<'a>(skew_secs: i64, headers: &SignedHeaders<'a>, now: i64) -> Result<VerifiedHeaders<'a>, AuthError> {
    let hotkey_text = headers.hotkey.ok_or(AuthError::MissingHeader("X-Hotkey"))?;
    let timestamp_text = headers.timestamp.ok_or(AuthError::MissingHeader("X-Timestamp"))?;
    let nonce = headers.nonce.ok_or(AuthError::MissingHeader("X-Nonce"))?;
    let signature_text = headers.signature.ok_or(AuthError::MissingHeader("X-Signature"))?;

    let hotkey = Hotkey::parse(hotkey_text.trim())?;
    let timestamp = parse_timestamp(timestamp_text)?;
    if timestamp < now - skew_secs {
        return Err(AuthError::StaleTimestamp(skew_secs));
    }
    if timestamp > now + skew_secs {
        return Err(AuthError::FutureTimestamp(skew_secs));
    }
    if nonce.is_empty() || nonce.len() > 256 || !nonce.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AuthError::MalformedNonce);
    }
    let signature = signature::parse_signature_hex(signature_text.trim()).ok_or(AuthError::MalformedSignature)?;
    let message = wire::signing::request_message(hotkey.as_str(), timestamp_text, nonce);
    if !signature::verify(hotkey.public_key(), message.as_bytes(), &signature) {
        return Err(AuthError::BadSignature);
    }
    Ok(VerifiedHeaders { hotkey, timestamp, nonce })
}

/// The service's name in a bound signature: `host[:port]` of its public URL.
pub fn bound_host(public_url: &url::Url) -> String {
    match (public_url.host_str(), public_url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// Checks a bound signature (`X-Signature-Bound`): by the request's hotkey, over this very
/// request (method, our host, path, body) with its timestamp and nonce. The plain signature,
/// the clock and the nonce are checked as for every signed request, by `verify`.
pub fn check_bound(
    headers: &SignedHeaders<'_>,
    bound_signature: &str,
    method: &str,
    host: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), AuthError> {
    use sha2::Digest;
    let hotkey = Hotkey::parse(headers.hotkey.ok_or(AuthError::MissingHeader("X-Hotkey"))?.trim())?;
    let timestamp = headers.timestamp.ok_or(AuthError::MissingHeader("X-Timestamp"))?;
    let nonce = headers.nonce.ok_or(AuthError::MissingHeader("X-Nonce"))?;
    let signature = signature::parse_signature_hex(bound_signature.trim()).ok_or(AuthError::MalformedSignature)?;
    let body_hash = hex::encode(sha2::Sha256::digest(body));
    let message = wire::signing::bound_request_message(method, host, path_and_query, &body_hash, hotkey.as_str(), timestamp, nonce);
    if !signature::verify(hotkey.public_key(), message.as_bytes(), &signature) {
        return Err(AuthError::BadBoundSignature(host.to_owned()));
    }
    Ok(())
}

/// Unix seconds; a float with a fractional part is accepted (some clients send one).
fn parse_timestamp(text: &str) -> Result<i64, AuthError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 24 {
        return Err(AuthError::MalformedTimestamp);
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite() && f.abs() < 1e12).map(|f| f.floor() as i64).ok_or(AuthError::MalformedTimestamp)
}

/// Forgets nonces that can no longer be replayed (their timestamps are stale).
pub async fn forget_expired_nonces(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    store::auth::forget_expired_nonces(&mut *db.pool().acquire().await?, now).await
}
