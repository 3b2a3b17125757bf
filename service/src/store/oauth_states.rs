//! `oauth_states`: a Chutes authorization in progress, bound to its miner, single-use, with
//! its PKCE verifier sealed.

use super::Conn;

pub async fn insert(
    conn: &mut Conn,
    state_hash: &str,
    hotkey: &str,
    sealed_verifier: &[u8],
    redirect_uri: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO oauth_states (state_hash, hotkey, sealed_verifier, redirect_uri, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(state_hash)
        .bind(hotkey)
        .bind(sealed_verifier)
        .bind(redirect_uri)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// A spent state: what the code exchange needs.
#[derive(Debug, sqlx::FromRow)]
pub struct Spent {
    pub sealed_verifier: Vec<u8>,
    pub redirect_uri: String,
}

/// Spends this miner's state if it is still live: once only, whoever asks twice.
pub async fn spend(conn: &mut Conn, state_hash: &str, hotkey: &str, now: i64) -> Result<Option<Spent>, sqlx::Error> {
    sqlx::query_as(
        "DELETE FROM oauth_states WHERE state_hash = $1 AND hotkey = $2 AND expires_at >= $3 RETURNING sealed_verifier, redirect_uri",
    )
    .bind(state_hash)
    .bind(hotkey)
    .bind(now)
    .fetch_optional(conn)
    .await
}

pub async fn forget_expired(conn: &mut Conn, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(now).execute(conn).await?;
    Ok(())
}
