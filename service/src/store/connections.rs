//! `connections`: a miner's stored credential per provider; `miners`: their default provider
//! and budget.

use wire::Provider;

use super::Conn;
use crate::connections::State;
use crate::db::Backend;
use crate::domain::Hotkey;

/// A stored credential, still sealed.
#[derive(sqlx::FromRow)]
pub struct Sealed {
    pub state: State,
    pub ciphertext: Vec<u8>,
}

/// What a claim needs to know of the miner, read under the miner's row lock (PostgreSQL; SQLite
/// runs one transaction at a time, see `db.rs`), so that two claims for one miner cannot both
/// pass the budget check, and a disconnect cannot slip between a claim's check of the
/// connection and its record of the key. With it, in the same statement, one connection.
#[derive(sqlx::FromRow)]
pub struct MinerTerms {
    pub default_provider: Option<String>,
    pub monthly_budget_usd: Option<f64>,
    /// The joined connection's state and sealed credential (none when not connected).
    pub state: Option<State>,
    pub ciphertext: Option<Vec<u8>>,
}

impl MinerTerms {
    pub fn default_provider(&self) -> Option<Provider> {
        self.default_provider.as_deref().and_then(|p| p.parse().ok())
    }

    /// The joined connection, if there is one.
    pub fn connection(self) -> Option<Sealed> {
        Some(Sealed { state: self.state?, ciphertext: self.ciphertext? })
    }
}

/// The miner's terms with the connection of their default provider; `None` when the miner has
/// no row (never connected anything).
pub async fn lock_terms(conn: &mut Conn, backend: Backend, hotkey: &Hotkey) -> Result<Option<MinerTerms>, sqlx::Error> {
    let sql = format!(
        "SELECT m.default_provider, m.monthly_budget_usd, c.state, c.ciphertext
         FROM miners m LEFT JOIN connections c ON c.hotkey = m.hotkey AND c.provider = m.default_provider
         WHERE m.hotkey = $1{}",
        lock_clause(backend)
    );
    sqlx::query_as(&sql).bind(hotkey.as_str()).fetch_optional(conn).await
}

/// As [`lock_terms`], with the connection of `provider` whichever is the default now.
pub async fn lock_terms_with(
    conn: &mut Conn,
    backend: Backend,
    hotkey: &Hotkey,
    provider: Provider,
) -> Result<Option<MinerTerms>, sqlx::Error> {
    let sql = format!(
        "SELECT m.default_provider, m.monthly_budget_usd, c.state, c.ciphertext
         FROM miners m LEFT JOIN connections c ON c.hotkey = m.hotkey AND c.provider = $2
         WHERE m.hotkey = $1{}",
        lock_clause(backend)
    );
    sqlx::query_as(&sql).bind(hotkey.as_str()).bind(provider.as_str()).fetch_optional(conn).await
}

fn lock_clause(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR UPDATE OF m",
        Backend::Sqlite => "",
    }
}

/// A miner's stored credential for `provider`, still sealed.
pub async fn sealed(conn: &mut Conn, hotkey: &str, provider: Provider) -> Result<Option<Sealed>, sqlx::Error> {
    sqlx::query_as("SELECT state, ciphertext FROM connections WHERE hotkey = $1 AND provider = $2")
        .bind(hotkey)
        .bind(provider.as_str())
        .fetch_optional(conn)
        .await
}

/// One of the miner's connected providers (the first by name), if any.
pub async fn first_connected(conn: &mut Conn, hotkey: &Hotkey) -> Result<Option<Provider>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT provider FROM connections WHERE hotkey = $1 AND state = $2 ORDER BY provider LIMIT 1")
            .bind(hotkey.as_str())
            .bind(State::Connected)
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(p,)| p.parse().ok()))
}

/// A connection as the miner's status lists it (no credential).
#[derive(sqlx::FromRow)]
pub struct Listed {
    pub provider: String,
    pub state: State,
    pub label: String,
    pub updated_at: i64,
}

pub async fn list(conn: &mut Conn, hotkey: &Hotkey) -> Result<Vec<Listed>, sqlx::Error> {
    sqlx::query_as("SELECT provider, state, label, updated_at FROM connections WHERE hotkey = $1")
        .bind(hotkey.as_str())
        .fetch_all(conn)
        .await
}

/// Deletes the connection if it still holds `ciphertext` (a reconnect meanwhile keeps the new
/// one); answers whether it did.
pub async fn delete_if_unchanged(conn: &mut Conn, hotkey: &Hotkey, provider: Provider, ciphertext: &[u8]) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM connections WHERE hotkey = $1 AND provider = $2 AND ciphertext = $3")
        .bind(hotkey.as_str())
        .bind(provider.as_str())
        .bind(ciphertext)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
