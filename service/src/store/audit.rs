//! `audit_events`: what happened to a miner's credentials and settings, in their own words.

use super::Conn;

/// One event; `seq` orders events (microseconds, so that one transaction's lines keep their
/// order), `at` is when it happened in the service's time.
pub struct NewEvent<'a> {
    pub hotkey: &'a str,
    pub provider: Option<&'a str>,
    pub kind: &'a str,
    pub detail: &'a str,
    pub seq: i64,
    pub at: i64,
}

pub(super) const COLUMNS: &str = "id, seq, hotkey, provider, kind, detail, at";

pub async fn insert(conn: &mut Conn, event: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    let sql = format!("INSERT INTO audit_events ({COLUMNS}) VALUES ({})", super::placeholders(COLUMNS, 1));
    bind(sqlx::query(&sql), event).execute(conn).await?;
    Ok(())
}

pub(super) fn bind<'q>(query: super::Query<'q>, event: &NewEvent<'q>) -> super::Query<'q> {
    query
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(event.seq)
        .bind(event.hotkey)
        .bind(event.provider)
        .bind(event.kind)
        .bind(event.detail)
        .bind(event.at)
}

#[derive(Debug, sqlx::FromRow)]
pub struct Event {
    pub at: i64,
    pub provider: Option<String>,
    pub kind: String,
    pub detail: String,
}

/// A miner's newest `limit` events, newest first.
pub async fn newest(conn: &mut Conn, hotkey: &str, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as("SELECT at, provider, kind, detail FROM audit_events WHERE hotkey = $1 ORDER BY seq DESC, id DESC LIMIT $2")
        .bind(hotkey)
        .bind(limit)
        .fetch_all(conn)
        .await
}
