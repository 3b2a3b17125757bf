//! `web_sessions`: browser sessions (tower-sessions records), stored by their id's digest.

use super::Conn;

/// Inserts a new session; false when the id is taken (the caller draws another).
pub async fn create(conn: &mut Conn, id_hash: &str, data: &[u8], expires_at: i64) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query("INSERT INTO web_sessions (id, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
        .bind(id_hash)
        .bind(data)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Writes a session, new or not.
pub async fn save(conn: &mut Conn, id_hash: &str, data: &[u8], expires_at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO web_sessions (id, data, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
    )
    .bind(id_hash)
    .bind(data)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live session's data and expiry.
pub async fn load(conn: &mut Conn, id_hash: &str, now: i64) -> Result<Option<(Vec<u8>, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT data, expires_at FROM web_sessions WHERE id = $1 AND expires_at > $2")
        .bind(id_hash)
        .bind(now)
        .fetch_optional(conn)
        .await
}

pub async fn delete(conn: &mut Conn, id_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM web_sessions WHERE id = $1").bind(id_hash).execute(conn).await?;
    Ok(())
}

pub async fn delete_expired(conn: &mut Conn, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1").bind(now).execute(conn).await?.rows_affected())
}
