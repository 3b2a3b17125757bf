//! API bearer sessions: `POST /v1/auth/challenge` then `POST /v1/auth/session`, after which
//! `Authorization: Bearer <token>` stands in for signing every request. Tokens are stored
//! only as SHA-256 digests.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, signature};
use crate::db::Db;
use crate::domain::Hotkey;
use crate::store;

/// How long a challenge may wait for its signature.
pub const CHALLENGE_TTL_SECS: i64 = 300;
const PURPOSE_API: &str = "api-session";

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub struct Challenge {
    pub challenge: String,
    pub expires_at: i64,
}

/// Issues a single-use challenge for a hotkey to sign.
pub async fn issue_challenge(db: &Db, hotkey: &Hotkey, now: i64) -> Result<Challenge, AuthError> {
    // bittensor-auth's shape, `{prefix}:{timestamp}:{nonce}`.
    let challenge = format!("oro-inference:{now}:{}", random_hex(16));
    let expires_at = now + CHALLENGE_TTL_SECS;
    store::auth::insert_challenge(&mut *db.pool().acquire().await?, &challenge, hotkey.as_str(), PURPOSE_API, expires_at).await?;
    Ok(Challenge { challenge, expires_at })
}

pub struct NewSession {
    /// Shown once, to the caller; only its digest is stored.
    pub token: String,
    pub expires_at: i64,
}

/// Spends a challenge and checks its signature: `Ok` only when the hotkey signed it. The
/// challenge is spent either way. Nothing about the hotkey (its role, a ban) is looked up
/// before this succeeds.
pub async fn redeem_challenge(db: &Db, hotkey: &Hotkey, challenge: &str, signature_hex: &str, now: i64) -> Result<(), AuthError> {
    if !store::auth::spend_challenge(&mut *db.pool().acquire().await?, challenge, hotkey.as_str(), PURPOSE_API, now).await? {
        return Err(AuthError::UnknownChallenge);
    }
    let signature = signature::parse_signature_hex(signature_hex.trim()).ok_or(AuthError::MalformedSignature)?;
    if !signature::verify(hotkey.public_key(), challenge.as_bytes(), &signature) {
        return Err(AuthError::BadSignature);
    }
    Ok(())
}

/// A session token for a hotkey that has proved itself (`redeem_challenge`).
pub async fn open_session(db: &Db, hotkey: &Hotkey, role: &str, ttl_secs: i64, now: i64) -> Result<NewSession, AuthError> {
    let token = format!("ses_{}", random_hex(32));
    let expires_at = now + ttl_secs;
    store::auth::open_session(&mut *db.pool().acquire().await?, &digest(&token), hotkey.as_str(), role, now, expires_at).await?;
    Ok(NewSession { token, expires_at })
}

/// The hotkey behind a live bearer token.
pub async fn lookup(db: &Db, token: &str, now: i64) -> Result<Hotkey, AuthError> {
    let hotkey =
        store::auth::session_holder(&mut *db.pool().acquire().await?, &digest(token), now).await?.ok_or(AuthError::InvalidSession)?;
    Hotkey::parse(&hotkey).map_err(|_| AuthError::InvalidSession)
}

/// Ends a bearer session. True when there was one.
pub async fn close(db: &Db, token: &str) -> Result<bool, AuthError> {
    Ok(store::auth::close_session(&mut *db.pool().acquire().await?, &digest(token)).await?)
}

/// Removes expired sessions and challenges.
pub async fn forget_expired(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    store::auth::forget_expired_sessions(&mut *db.pool().acquire().await?, now).await
}
