//! `run_keys`: the OpenRouter keys minted for runs and the run gateway's tokens, by their hash;
//! how they are retired and what they spent. (A claim records them through `runs::record_key`.)

use super::Conn;

/// A recorded key, as its retirement reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct RunKey {
    pub hotkey: String,
    /// The management key's fingerprint, or `gateway::gateway_minter(provider)`.
    pub minted_by: String,
    pub disabled_at: Option<i64>,
    pub eval_run_id: String,
}

pub async fn find(conn: &mut Conn, key_hash: &str) -> Result<Option<RunKey>, sqlx::Error> {
    sqlx::query_as("SELECT hotkey, minted_by, disabled_at, eval_run_id FROM run_keys WHERE key_hash = $1")
        .bind(key_hash)
        .fetch_optional(conn)
        .await
}

/// Retires the gateway tokens that forward with the key `upstream_hash` (their spend so far
/// becomes their usage, and the sealed key is dropped).
pub async fn retire_wrapping_tokens(conn: &mut Conn, upstream_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE run_keys SET disabled_at = $1, usage_usd = spent_usd, upstream_sealed = NULL WHERE upstream_key_hash = $2 AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(upstream_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires one gateway token; answers what it spent, or `None` when it was retired already.
pub async fn retire_token(conn: &mut Conn, key_hash: &str, now: i64) -> Result<Option<f64>, sqlx::Error> {
    let retired: Option<(f64,)> = sqlx::query_as(
        "UPDATE run_keys SET disabled_at = $1, usage_usd = spent_usd, upstream_sealed = NULL WHERE key_hash = $2 AND disabled_at IS NULL RETURNING spent_usd",
    )
    .bind(now)
    .bind(key_hash)
    .fetch_optional(conn)
    .await?;
    Ok(retired.map(|(spent,)| spent))
}

/// A key whose management key is gone (disconnected or replaced): that credential's own
/// disconnect disables it, so the reaper's sweep leaves it.
pub async fn mark_orphaned(conn: &mut Conn, key_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE run_keys SET orphaned_at = $1 WHERE key_hash = $2 AND orphaned_at IS NULL")
        .bind(now)
        .bind(key_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records that the key was disabled at OpenRouter, with what it spent there (kept as it was
/// when OpenRouter did not say). Answers whether this call was the first to record the disable.
pub async fn record_disabled(conn: &mut Conn, key_hash: &str, usage_usd: Option<f64>, now: i64) -> Result<bool, sqlx::Error> {
    let first = sqlx::query("UPDATE run_keys SET disabled_at = $1 WHERE key_hash = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(key_hash)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    sqlx::query("UPDATE run_keys SET usage_usd = COALESCE($1, usage_usd) WHERE key_hash = $2")
        .bind(crate::db::NullableF64(usage_usd))
        .bind(key_hash)
        .execute(conn)
        .await?;
    Ok(first)
}
