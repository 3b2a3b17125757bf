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
