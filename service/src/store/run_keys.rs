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

/// What a gateway token's lease reads back.
#[derive(Debug, sqlx::FromRow)]
pub struct Leased {
    pub hotkey: String,
    pub eval_run_id: String,
    pub minted_by: String,
    /// The OpenRouter key the token forwards with, sealed (none for a Chutes run).
    pub upstream_sealed: Option<Vec<u8>>,
    pub expires_at: i64,
}

/// The gateway's lease: one conditional statement that writes `moved` out of `reserved_usd`
/// and `spent` into `spent_usd`, and takes `grant` more into `reserved_usd`, if the token (one
/// of `minters`) is live at `now`, its run is running, and the cap holds it. `None` when not.
pub async fn lease(
    conn: &mut Conn,
    key_hash: &str,
    minters: [&str; 2],
    grant: f64,
    (moved, spent): (f64, f64),
    now: i64,
) -> Result<Option<Leased>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE run_keys SET reserved_usd = reserved_usd + $1 - $6, spent_usd = spent_usd + $7
         WHERE key_hash = $2 AND minted_by IN ($3, $5) AND disabled_at IS NULL AND expires_at > $4
           AND spent_usd + reserved_usd + $1 <= cap_usd
           AND eval_run_id IN (SELECT id FROM eval_runs WHERE id = run_keys.eval_run_id AND status = 'running')
         RETURNING hotkey, eval_run_id, minted_by, upstream_sealed, expires_at",
    )
    .bind(grant)
    .bind(key_hash)
    .bind(minters[0])
    .bind(now)
    .bind(minters[1])
    .bind(moved)
    .bind(spent)
    .fetch_optional(conn)
    .await
}

/// What writing a spend read back.
#[derive(Debug, sqlx::FromRow)]
pub struct Written {
    pub disabled_at: Option<i64>,
    pub spent_usd: f64,
    pub minted_by: String,
    pub eval_run_id: String,
}

/// Moves `release` out of the row's `reserved_usd` and adds `spent` to its `spent_usd`; for a
/// token retired already, its recorded usage follows.
pub async fn write_spend(conn: &mut Conn, key_hash: &str, release: f64, spent: f64) -> Result<Option<Written>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE run_keys SET reserved_usd = reserved_usd - $1, spent_usd = spent_usd + $2,
             usage_usd = CASE WHEN disabled_at IS NULL THEN usage_usd ELSE spent_usd + $2 END
         WHERE key_hash = $3 RETURNING disabled_at, spent_usd, minted_by, eval_run_id",
    )
    .bind(release)
    .bind(spent)
    .bind(key_hash)
    .fetch_optional(conn)
    .await
}

/// A gateway token with its run's status, as a refusal reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct Token {
    pub minted_by: String,
    pub cap_usd: f64,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    pub disabled_at: Option<i64>,
    pub expires_at: i64,
    pub status: String,
}

pub async fn token(conn: &mut Conn, key_hash: &str, minters: [&str; 2]) -> Result<Option<Token>, sqlx::Error> {
    sqlx::query_as(
        "SELECT k.minted_by, k.cap_usd, k.spent_usd, k.reserved_usd, k.disabled_at, k.expires_at, r.status
         FROM run_keys k JOIN eval_runs r ON r.id = k.eval_run_id WHERE k.key_hash = $1 AND k.minted_by IN ($2, $3)",
    )
    .bind(key_hash)
    .bind(minters[0])
    .bind(minters[1])
    .fetch_optional(conn)
    .await
}

/// Whether a key (by its hash) was recorded by a claim.
pub async fn is_recorded(conn: &mut Conn, key_hash: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT key_hash FROM run_keys WHERE key_hash = $1").bind(key_hash).fetch_optional(conn).await?;
    Ok(row.is_some())
}

/// A miner's spend since `since` on each provider: OpenRouter's per-run keys (every one of
/// the month, abandoned attempts' too, as OpenRouter reported them) and the Chutes gateway
/// tokens' metered spend, live.
pub async fn month_spend(
    conn: &mut Conn,
    hotkey: &str,
    since: i64,
    chutes_gateway_minter: &str,
) -> Result<(Option<f64>, Option<f64>), sqlx::Error> {
    let (openrouter,): (Option<f64>,) = sqlx::query_as(
        "SELECT SUM(usage_usd) FROM run_keys WHERE hotkey = $1 AND created_at >= $2 AND minted_by <> $3 AND upstream_key_hash IS NULL",
    )
    .bind(hotkey)
    .bind(since)
    .bind(chutes_gateway_minter)
    .fetch_one(&mut *conn)
    .await?;
    let (chutes,): (Option<f64>,) =
        sqlx::query_as("SELECT SUM(spent_usd) FROM run_keys WHERE hotkey = $1 AND created_at >= $2 AND minted_by = $3")
            .bind(hotkey)
            .bind(since)
            .bind(chutes_gateway_minter)
            .fetch_one(conn)
            .await?;
    Ok((openrouter, chutes))
}

/// Retires every live run-gateway token of a miner minted by `minter` (a disconnect): the
/// spend so far becomes the recorded usage, and the upstream credential is forgotten.
pub async fn retire_tokens_of(conn: &mut Conn, hotkey: &str, minter: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE run_keys SET disabled_at = $1, usage_usd = spent_usd, upstream_sealed = NULL WHERE hotkey = $2 AND minted_by = $3 AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(hotkey)
    .bind(minter)
    .execute(conn)
    .await?;
    Ok(())
}

/// The hashes of a miner's live keys minted by `minter` (an OpenRouter management key's
/// fingerprint).
pub async fn live_minted_by(conn: &mut Conn, hotkey: &str, minter: &str) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT key_hash FROM run_keys WHERE hotkey = $1 AND minted_by = $2 AND disabled_at IS NULL")
        .bind(hotkey)
        .bind(minter)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(hash,)| hash).collect())
}

/// Notes that a key was disabled at its provider (the first time only).
pub async fn mark_disabled(conn: &mut Conn, key_hash: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE run_keys SET disabled_at = $1 WHERE key_hash = $2 AND disabled_at IS NULL")
        .bind(now)
        .bind(key_hash)
        .execute(conn)
        .await?;
    Ok(())
}
