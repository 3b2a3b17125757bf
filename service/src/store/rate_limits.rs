//! `rate_limit_hits`: fixed-window counters shared by every replica.

use super::Conn;

/// Counts one hit on a bucket's window (kept until `expires_at`); answers the window's count,
/// this hit included. One statement: concurrent hits on any replica each see their own count.
pub async fn hit(conn: &mut Conn, bucket: &str, window_start: i64, expires_at: i64) -> Result<i64, sqlx::Error> {
    let (hits,): (i64,) = sqlx::query_as(
        "INSERT INTO rate_limit_hits (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_hits.hits + 1
         RETURNING hits",
    )
    .bind(bucket)
    .bind(window_start)
    .bind(expires_at)
    .fetch_one(conn)
    .await?;
    Ok(hits)
}

pub async fn forget_expired(conn: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM rate_limit_hits WHERE expires_at <= $1").bind(now).execute(conn).await?.rows_affected())
}
