//! The store: the SQL of a table family in one module, each state change one function named
//! for what it does (`runs::reserve`, `runs::hand_out`, `runs::requeue`, ...), rows read into
//! structs. The domain modules decide; these functions only write what was decided, in the
//! dialect both engines accept (see `db.rs`), and keep the few SQLite/PostgreSQL differences
//! (row locks) to themselves.
//!
//! Every function takes a connection (`&mut *tx` inside a transaction, or one acquired from
//! the pool), so the caller chooses what commits together.
//!
//! Every SQL statement of the service is here, except the migrations and the pool's set-up
//! (`db.rs`).

pub mod agents;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod connections;
pub mod oauth_states;
pub mod rate_limits;
pub mod revocations;
pub mod run_keys;
pub mod runs;
pub mod vault;
pub mod web_sessions;

/// A connection of either engine, inside a transaction or not.
pub type Conn = sqlx::AnyConnection;

/// A statement being bound, for the helpers that bind one table's row.
type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// `$first, $first+1, ...`: one placeholder per name in `columns` (a comma-separated list),
/// for statements that write several rows or tables in one go.
fn placeholders(columns: &str, first: usize) -> String {
    (first..first + columns.split(',').count()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Announces on a PostgreSQL channel (LISTEN/NOTIFY) to every replica listening.
pub async fn notify(conn: &mut Conn, channel: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')").bind(channel).execute(conn).await?;
    Ok(())
}
