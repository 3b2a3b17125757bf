//! The sign-in family: `auth_challenges` (API challenges and wallet sign-in nonces),
//! `api_sessions`, `used_nonces` (signed requests), `hotkey_roles` and `operator_settings`.

use super::Conn;
use crate::auth::roles::Grant;

/// Remembers a challenge (an API sign-in's text, or a wallet sign-in's issued message) until
/// `expires_at`.
pub async fn insert_challenge(conn: &mut Conn, challenge: &str, hotkey: &str, purpose: &str, expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO auth_challenges (challenge, hotkey, purpose, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(challenge)
        .bind(hotkey)
        .bind(purpose)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends a live challenge issued to `hotkey` for `purpose`: true once, false ever after (and
/// for an unknown or expired one).
pub async fn spend_challenge(conn: &mut Conn, challenge: &str, hotkey: &str, purpose: &str, now: i64) -> Result<bool, sqlx::Error> {
    let spent = sqlx::query("DELETE FROM auth_challenges WHERE challenge = $1 AND hotkey = $2 AND purpose = $3 AND expires_at >= $4")
        .bind(challenge)
        .bind(hotkey)
        .bind(purpose)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(spent.rows_affected() > 0)
}

/// A bearer session, stored by its token's digest only.
pub async fn open_session(
    conn: &mut Conn,
    token_hash: &str,
    hotkey: &str,
    role: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO api_sessions (token_hash, hotkey, role, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(token_hash)
        .bind(hotkey)
        .bind(role)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The hotkey behind a live session.
pub async fn session_holder(conn: &mut Conn, token_hash: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT hotkey FROM api_sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(hotkey,)| hotkey))
}

/// Ends a session; true when there was one.
pub async fn close_session(conn: &mut Conn, token_hash: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM api_sessions WHERE token_hash = $1").bind(token_hash).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Forgets expired sessions and challenges.
pub async fn forget_expired_sessions(conn: &mut Conn, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM api_sessions WHERE expires_at <= $1").bind(now).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM auth_challenges WHERE expires_at < $1").bind(now).execute(conn).await?;
    Ok(())
}

/// Spends a signed request's nonce, remembered until `expires_at`: false when the hotkey
/// used it already (a replay).
pub async fn spend_nonce(conn: &mut Conn, hotkey: &str, nonce: &str, expires_at: i64) -> Result<bool, sqlx::Error> {
    let spent =
        sqlx::query("INSERT INTO used_nonces (hotkey, nonce, expires_at) VALUES ($1, $2, $3) ON CONFLICT (hotkey, nonce) DO NOTHING")
            .bind(hotkey)
            .bind(nonce)
            .bind(expires_at)
            .execute(conn)
            .await?;
    Ok(spent.rows_affected() > 0)
}

pub async fn forget_expired_nonces(conn: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1").bind(now).execute(conn).await?.rows_affected())
}

/// The roles granted to a hotkey, as stored (a newer build's role may be among them).
pub async fn roles_of(conn: &mut Conn, hotkey: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT role FROM hotkey_roles WHERE hotkey = $1").bind(hotkey).fetch_all(conn).await?;
    Ok(rows.into_iter().map(|(role,)| role).collect())
}

pub async fn has_role(conn: &mut Conn, hotkey: &str, role: Grant) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT role FROM hotkey_roles WHERE hotkey = $1 AND role = $2")
        .bind(hotkey)
        .bind(role.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// Grants a role (again: the note is replaced).
pub async fn grant(conn: &mut Conn, hotkey: &str, role: Grant, note: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO hotkey_roles (hotkey, role, note, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hotkey, role) DO UPDATE SET note = excluded.note",
    )
    .bind(hotkey)
    .bind(role.as_str())
    .bind(note)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// True when the hotkey had the role.
pub async fn revoke(conn: &mut Conn, hotkey: &str, role: Grant) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM hotkey_roles WHERE hotkey = $1 AND role = $2").bind(hotkey).bind(role.as_str()).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// (hotkey, note) of every holder of a role, by hotkey.
pub async fn holders(conn: &mut Conn, role: Grant) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT hotkey, note FROM hotkey_roles WHERE role = $1 ORDER BY hotkey").bind(role.as_str()).fetch_all(conn).await
}

/// An operator setting's stored value.
pub async fn setting(conn: &mut Conn, name: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT value FROM operator_settings WHERE name = $1").bind(name).fetch_optional(conn).await?;
    Ok(row.map(|(value,)| value))
}

pub async fn set_setting(conn: &mut Conn, name: &str, value: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_settings (name, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(value)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
