//! API bearer sessions: `POST /v1/auth/challenge` then `POST /v1/auth/session`, after which
//! `Authorization: Bearer <token>` stands in for signing every request. Tokens are stored
//! only as SHA-256 digests.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::auth::{AuthError, signature};
use crate::clock;
use crate::db::Db;
use crate::domain::Hotkey;

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
pub async fn issue_challenge(db: &Db, hotkey: &Hotkey) -> Result<Challenge, AuthError> {
    let now = clock::now();
    // bittensor-auth's shape, `{prefix}:{timestamp}:{nonce}`.
    let challenge = format!("oro-inference:{now}:{}", random_hex(16));
    let expires_at = now + CHALLENGE_TTL_SECS;
    sqlx::query("INSERT INTO auth_challenges (challenge, hotkey, purpose, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&challenge)
        .bind(hotkey.as_str())
        .bind(PURPOSE_API)
        .bind(expires_at)
        .execute(db.pool())
        .await?;
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
pub async fn redeem_challenge(db: &Db, hotkey: &Hotkey, challenge: &str, signature_hex: &str) -> Result<(), AuthError> {
    let now = clock::now();
    let spent = sqlx::query("DELETE FROM auth_challenges WHERE challenge = $1 AND hotkey = $2 AND purpose = $3 AND expires_at >= $4")
        .bind(challenge)
        .bind(hotkey.as_str())
        .bind(PURPOSE_API)
        .bind(now)
        .execute(db.pool())
        .await?;
    if spent.rows_affected() == 0 {
        return Err(AuthError::UnknownChallenge);
    }
    let signature = signature::parse_signature_hex(signature_hex.trim()).ok_or(AuthError::MalformedSignature)?;
    if !signature::verify(hotkey.public_key(), challenge.as_bytes(), &signature) {
        return Err(AuthError::BadSignature);
    }
    Ok(())
}

/// A session token for a hotkey that has proved itself (`redeem_challenge`).
pub async fn open_session(db: &Db, hotkey: &Hotkey, role: &str, ttl_secs: i64) -> Result<NewSession, AuthError> {
    let now = clock::now();
    let token = format!("ses_{}", random_hex(32));
    let expires_at = now + ttl_secs;
    sqlx::query("INSERT INTO api_sessions (token_hash, hotkey, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(digest(&token))
        .bind(hotkey.as_str())
        .bind(role)
        .bind(now)
        .bind(expires_at)
        .execute(db.pool())
        .await?;
    Ok(NewSession { token, expires_at })
}

/// The hotkey behind a live bearer token.
pub async fn lookup(db: &Db, token: &str) -> Result<Hotkey, AuthError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT hotkey FROM api_sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(digest(token))
        .bind(clock::now())
        .fetch_optional(db.pool())
        .await?;
    let (hotkey,) = row.ok_or(AuthError::InvalidSession)?;
    Hotkey::parse(&hotkey).map_err(|_| AuthError::InvalidSession)
}

/// Ends a bearer session. True when there was one.
pub async fn close(db: &Db, token: &str) -> Result<bool, AuthError> {
    let done = sqlx::query("DELETE FROM api_sessions WHERE token_hash = $1").bind(digest(token)).execute(db.pool()).await?;
    Ok(done.rows_affected() > 0)
}

/// Removes expired sessions and challenges.
pub async fn forget_expired(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_sessions WHERE expires_at <= $1").bind(now).execute(db.pool()).await?;
    sqlx::query("DELETE FROM auth_challenges WHERE expires_at < $1").bind(now).execute(db.pool()).await?;
    Ok(())
}
