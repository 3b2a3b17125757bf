//! The per-miner audit log: every change to a miner's connections and every use of a stored
//! credential (a run key minted or disabled, a refresh token rotated), in order.

use sqlx::{Any, Transaction};
use wire::Provider;
use wire::api::{AuditEvent, AuditEvents};

use crate::clock;
use crate::domain::Hotkey;
use crate::services::Services;
use crate::store;

/// Records an event inside the transaction that made the change, so log and state agree.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    hotkey: &Hotkey,
    provider: Option<Provider>,
    kind: &str,
    detail: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    store::audit::insert(tx, &line(hotkey, provider, kind, detail, at)).await
}

/// An event to record, for a caller that writes it along with other rows.
pub fn line<'a>(hotkey: &'a Hotkey, provider: Option<Provider>, kind: &'a str, detail: &'a str, at: i64) -> store::audit::NewEvent<'a> {
    // The order of lines, not a time anyone reads: the machine's clock in microseconds.
    let seq = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64;
    store::audit::NewEvent { hotkey: hotkey.as_str(), provider: provider.map(|p| p.as_str()), kind, detail, seq, at }
}

/// Records an event on its own, for uses of a credential that change no other state
/// (a run key minted or disabled).
pub async fn record_now(
    db: &crate::db::Db,
    hotkey: &Hotkey,
    provider: Option<Provider>,
    kind: &str,
    detail: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    record(&mut tx, hotkey, provider, kind, detail, at).await?;
    tx.commit().await
}

impl Services {
    /// The newest `limit` events, oldest first.
    pub async fn audit_events(&self, hotkey: &Hotkey, limit: i64) -> Result<AuditEvents, sqlx::Error> {
        let rows = store::audit::newest(&mut *self.db.pool().acquire().await?, hotkey.as_str(), limit.clamp(1, 500)).await?;
        let events = rows
            .into_iter()
            .rev()
            .map(|e| AuditEvent {
                at: clock::rfc3339(e.at),
                provider: e.provider.and_then(|p| p.parse().ok()),
                kind: e.kind,
                detail: e.detail,
            })
            .collect();
        Ok(AuditEvents { events })
    }
}
