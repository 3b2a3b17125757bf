//! `pending_revocations`: credentials the service let go of (a disconnect, a replaced grant)
//! whose revocation at the provider has not succeeded yet; kept sealed until it does.

use wire::Provider;

use super::Conn;

/// Queues a revocation, first tried at `next_try_at`; answers its id.
pub async fn queue(
    conn: &mut Conn,
    hotkey: &str,
    provider: Provider,
    ciphertext: &[u8],
    reason: &str,
    next_try_at: i64,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO pending_revocations (id, hotkey, provider, ciphertext, reason, attempts, next_try_at, created_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
    )
    .bind(&id)
    .bind(hotkey)
    .bind(provider.as_str())
    .bind(ciphertext)
    .bind(reason)
    .bind(next_try_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

/// The ids of the revocations due, oldest due first.
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM pending_revocations WHERE next_try_at <= $1 ORDER BY next_try_at LIMIT $2")
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Takes a due revocation for one attempt, until `until`: a second taker finds it not due.
pub async fn take(conn: &mut Conn, id: &str, until: i64, now: i64) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query("UPDATE pending_revocations SET next_try_at = $1 WHERE id = $2 AND next_try_at <= $3")
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(taken.rows_affected() == 1)
}

/// A queued revocation; `hotkey` and `provider` as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct Pending {
    pub hotkey: String,
    pub provider: String,
    pub ciphertext: Vec<u8>,
    pub attempts: i64,
}

pub async fn get(conn: &mut Conn, id: &str) -> Result<Option<Pending>, sqlx::Error> {
    sqlx::query_as("SELECT hotkey, provider, ciphertext, attempts FROM pending_revocations WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Puts a revocation off until `next_try_at` without counting an attempt.
pub async fn postpone(conn: &mut Conn, id: &str, next_try_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pending_revocations SET next_try_at = $1 WHERE id = $2").bind(next_try_at).bind(id).execute(conn).await?;
    Ok(())
}

/// Counts a failed attempt, with why, and when to try again.
pub async fn attempt_failed(conn: &mut Conn, id: &str, reason: &str, next_try_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pending_revocations SET attempts = attempts + 1, next_try_at = $1, reason = $2 WHERE id = $3")
        .bind(next_try_at)
        .bind(reason)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The revocation happened (or can no longer): forgets it and its sealed credential.
pub async fn settle(conn: &mut Conn, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pending_revocations WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}
