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

/// A miner's default provider, if they have a row and chose one.
pub async fn default_provider(conn: &mut Conn, hotkey: &str) -> Result<Option<Provider>, sqlx::Error> {
    let row: Option<(Option<String>,)> =
        sqlx::query_as("SELECT default_provider FROM miners WHERE hotkey = $1").bind(hotkey).fetch_optional(conn).await?;
    Ok(row.and_then(|(p,)| p).and_then(|p| p.parse().ok()))
}

/// A miner's monthly budget, if they set one.
pub async fn monthly_budget(conn: &mut Conn, hotkey: &str) -> Result<Option<f64>, sqlx::Error> {
    let row: Option<(Option<f64>,)> =
        sqlx::query_as("SELECT monthly_budget_usd FROM miners WHERE hotkey = $1").bind(hotkey).fetch_optional(conn).await?;
    Ok(row.and_then(|(b,)| b))
}

/// Sets (or, with none, removes) a miner's monthly budget; the miner's row exists.
pub async fn set_monthly_budget(conn: &mut Conn, hotkey: &str, monthly_usd: Option<f64>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE miners SET monthly_budget_usd = $1, updated_at = $2 WHERE hotkey = $3")
        .bind(crate::db::NullableF64(monthly_usd))
        .bind(now)
        .bind(hotkey)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes the miner's row lock for the rest of the transaction (creating the row if needed);
/// answers their default provider. PostgreSQL locks the row; SQLite runs one transaction at a
/// time here (see `db.rs`), so the row is the caller's already.
pub async fn lock_miner(conn: &mut Conn, backend: Backend, hotkey: &str, now: i64) -> Result<Option<Provider>, sqlx::Error> {
    sqlx::query("INSERT INTO miners (hotkey, default_provider, updated_at) VALUES ($1, NULL, $2) ON CONFLICT (hotkey) DO NOTHING")
        .bind(hotkey)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let sql = match backend {
        Backend::Postgres => "SELECT default_provider FROM miners WHERE hotkey = $1 FOR UPDATE",
        Backend::Sqlite => "SELECT default_provider FROM miners WHERE hotkey = $1",
    };
    let (default,): (Option<String>,) = sqlx::query_as(sql).bind(hotkey).fetch_one(conn).await?;
    Ok(default.and_then(|p| p.parse().ok()))
}

/// Names the miner's default provider (or none).
pub async fn set_default(conn: &mut Conn, hotkey: &str, provider: Option<Provider>, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE miners SET default_provider = $1, updated_at = $2 WHERE hotkey = $3")
        .bind(provider.map(|p| p.as_str()))
        .bind(now)
        .bind(hotkey)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a connected credential, replacing the provider's previous one (and any refresh
/// lease on it).
pub async fn connect(
    conn: &mut Conn,
    hotkey: &str,
    provider: Provider,
    label: &str,
    ciphertext: &[u8],
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO connections (hotkey, provider, state, label, ciphertext, connected_at, updated_at, refresh_lock_until)
         VALUES ($1, $2, $3, $4, $5, $6, $6, 0)
         ON CONFLICT (hotkey, provider) DO UPDATE SET state = excluded.state, label = excluded.label,
             ciphertext = excluded.ciphertext, connected_at = excluded.connected_at, updated_at = excluded.updated_at,
             refresh_lock_until = 0",
    )
    .bind(hotkey)
    .bind(provider.as_str())
    .bind(State::Connected)
    .bind(label)
    .bind(ciphertext)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes the Chutes refresh lease of a connected credential until `until`, if nobody holds
/// it: only one refresh per grant runs at a time, across replicas.
pub async fn take_refresh_lease(conn: &mut Conn, hotkey: &str, until: i64, now: i64) -> Result<bool, sqlx::Error> {
    let taken = sqlx::query(
        "UPDATE connections SET refresh_lock_until = $1 WHERE hotkey = $2 AND provider = $3 AND state = $4 AND refresh_lock_until < $5",
    )
    .bind(until)
    .bind(hotkey)
    .bind(Provider::Chutes.as_str())
    .bind(State::Connected)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Gives the Chutes refresh lease up; with `of_grant`, only while that grant is still the
/// stored one.
pub async fn release_refresh_lease(conn: &mut Conn, hotkey: &str, of_grant: Option<&[u8]>) -> Result<(), sqlx::Error> {
    let query = match of_grant {
        Some(ciphertext) => {
            sqlx::query("UPDATE connections SET refresh_lock_until = 0 WHERE hotkey = $1 AND provider = $2 AND ciphertext = $3")
                .bind(hotkey)
                .bind(Provider::Chutes.as_str())
                .bind(ciphertext)
        }
        None => sqlx::query("UPDATE connections SET refresh_lock_until = 0 WHERE hotkey = $1 AND provider = $2")
            .bind(hotkey)
            .bind(Provider::Chutes.as_str()),
    };
    query.execute(conn).await?;
    Ok(())
}

/// Replaces a spent Chutes refresh token (`spent`) with its successor (`rotated`) and releases
/// the lease, unless the stored grant changed meanwhile (false). Storing the same successor
/// again is a success: a retry after a commit whose answer was lost.
pub async fn store_rotated(conn: &mut Conn, hotkey: &str, spent: &[u8], rotated: &[u8], now: i64) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "UPDATE connections SET ciphertext = $1, state = $2, updated_at = $3, refresh_lock_until = 0
         WHERE hotkey = $4 AND provider = $5 AND (ciphertext = $6 OR ciphertext = $1)",
    )
    .bind(rotated)
    .bind(State::Connected)
    .bind(now)
    .bind(hotkey)
    .bind(Provider::Chutes.as_str())
    .bind(spent)
    .execute(conn)
    .await?;
    Ok(stored.rows_affected() > 0)
}

/// Marks a Chutes grant that Chutes refused as needing re-consent, only while it is still the
/// stored one (false when a reconnect replaced it).
pub async fn mark_needs_reconsent(conn: &mut Conn, hotkey: &str, ciphertext: &[u8], now: i64) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query(
        "UPDATE connections SET state = $1, updated_at = $2, refresh_lock_until = 0 WHERE hotkey = $3 AND provider = $4 AND ciphertext = $5",
    )
    .bind(State::NeedsReconsent)
    .bind(now)
    .bind(hotkey)
    .bind(Provider::Chutes.as_str())
    .bind(ciphertext)
    .execute(conn)
    .await?;
    Ok(marked.rows_affected() > 0)
}
