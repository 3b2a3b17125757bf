//! `agents` and `agent_versions`: what miners submitted.

use super::Conn;

/// When the miner last submitted, if ever.
pub async fn last_submitted_at(conn: &mut Conn, hotkey: &str) -> Result<Option<i64>, sqlx::Error> {
    let (last,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(created_at) FROM agent_versions WHERE hotkey = $1").bind(hotkey).fetch_one(conn).await?;
    Ok(last)
}

/// The miner's agent of this name, created if new; answers its id.
pub async fn agent_named(conn: &mut Conn, hotkey: &str, agent_name: &str, now: i64) -> Result<String, sqlx::Error> {
    sqlx::query(
        "INSERT INTO agents (id, hotkey, agent_name, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (hotkey, agent_name) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(hotkey)
    .bind(agent_name)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM agents WHERE hotkey = $1 AND agent_name = $2").bind(hotkey).bind(agent_name).fetch_one(conn).await?;
    Ok(id)
}

/// A new version of an agent: its file, kept whole.
pub struct NewVersion<'a> {
    pub id: &'a str,
    pub agent_id: &'a str,
    pub hotkey: &'a str,
    pub file_name: &'a str,
    pub code: &'a [u8],
    /// Hex SHA-256 of `code`.
    pub sha256: String,
}

pub async fn add_version(conn: &mut Conn, version: &NewVersion<'_>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO agent_versions (id, agent_id, hotkey, file_name, code, sha256, size_bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(version.id)
    .bind(version.agent_id)
    .bind(version.hotkey)
    .bind(version.file_name)
    .bind(version.code)
    .bind(&version.sha256)
    .bind(version.code.len() as i64)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A version's file: its name and its bytes.
pub async fn file(conn: &mut Conn, version_id: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT file_name, code FROM agent_versions WHERE id = $1").bind(version_id).fetch_optional(conn).await
}

/// A miner's agent.
#[derive(Debug, sqlx::FromRow)]
pub struct Agent {
    pub id: String,
    pub agent_name: String,
    pub created_at: i64,
}

/// A miner's agents, oldest first.
pub async fn of_miner(conn: &mut Conn, hotkey: &str) -> Result<Vec<Agent>, sqlx::Error> {
    sqlx::query_as("SELECT id, agent_name, created_at FROM agents WHERE hotkey = $1 ORDER BY created_at, id")
        .bind(hotkey)
        .fetch_all(conn)
        .await
}

/// The agent's name, if the miner owns an agent with this id.
pub async fn owned_name(conn: &mut Conn, agent_id: &str, hotkey: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT agent_name FROM agents WHERE id = $1 AND hotkey = $2")
        .bind(agent_id)
        .bind(hotkey)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(name,)| name))
}

/// A version with its run's outcome (none before its run was queued).
#[derive(Debug, sqlx::FromRow)]
pub struct VersionOutcome {
    pub agent_id: String,
    pub id: String,
    pub created_at: i64,
    pub status: Option<crate::runs::RunStatus>,
    pub score: Option<f64>,
}

/// Every version a miner submitted, oldest first.
pub async fn versions_of_miner(conn: &mut Conn, hotkey: &str) -> Result<Vec<VersionOutcome>, sqlx::Error> {
    sqlx::query_as(
        "SELECT v.agent_id, v.id, v.created_at, r.status, r.score
         FROM agent_versions v LEFT JOIN eval_runs r ON r.agent_version_id = v.id
         WHERE v.hotkey = $1 ORDER BY v.created_at, v.id",
    )
    .bind(hotkey)
    .fetch_all(conn)
    .await
}
