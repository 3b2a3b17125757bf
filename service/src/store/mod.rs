//! The store: the SQL of a table family in one module, each state change one function named
//! for what it does (`runs::reserve`, `runs::hand_out`, `runs::requeue`, ...), rows read into
//! structs. The domain modules decide; these functions only write what was decided, in the
//! dialect both engines accept (see `db.rs`), and keep the few SQLite/PostgreSQL differences
//! (row locks) to themselves.
//!
//! Every function takes a connection (`&mut *tx` inside a transaction, or one acquired from
//! the pool), so the caller chooses what commits together.
//!
//! Here so far: a run's life (submit, claim, heartbeat, complete, reaper, Stop), the
//! connections' reads and deletes, the run keys' retirement, and the gateway's lease and spend.
//! The rest of the service's SQL (listings, the vault, catalog, roles, sessions, rate limits)
//! still sits in its domain modules and moves here one family at a time.

pub mod agents;
pub mod connections;
pub mod run_keys;
pub mod runs;

/// A connection of either engine, inside a transaction or not.
pub type Conn = sqlx::AnyConnection;
