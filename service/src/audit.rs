//! The per-miner audit log: every change to a miner's connections and every use of a stored
//! credential (a run key minted or disabled, a refresh token rotated), in order.

use sqlx::{Any, Transaction};
use wire::Provider;
use wire::api::{AuditEvent, AuditEvents};

use crate::clock;
use crate::domain::Hotkey;
use crate::services::Services;

/// Records an event inside the transaction that made the change, so log and state agree.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    hotkey: &Hotkey,
    provider: Option<Provider>,
    kind: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let now = time::OffsetDateTime::now_utc();
    let seq = (now.unix_timestamp_nanos() / 1_000) as i64;
    sqlx::query("INSERT INTO audit_events (id, seq, hotkey, provider, kind, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(seq)
        .bind(hotkey.as_str())
        .bind(provider.map(|p| p.as_str()))
        .bind(kind)
        .bind(detail)
        .bind(clock::now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records an event on its own, for uses of a credential that change no other state
/// (a run key minted or disabled).
pub async fn record_now(
    db: &crate::db::Db,
    hotkey: &Hotkey,
    provider: Option<Provider>,
    kind: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    record(&mut tx, hotkey, provider, kind, detail).await?;
    tx.commit().await
}

impl Services {
    /// The newest `limit` events, oldest first.
    pub async fn audit_events(&self, hotkey: &Hotkey, limit: i64) -> Result<AuditEvents, sqlx::Error> {
        let rows: Vec<(i64, Option<String>, String, String)> =
            sqlx::query_as("SELECT at, provider, kind, detail FROM audit_events WHERE hotkey = $1 ORDER BY seq DESC, id DESC LIMIT $2")
                .bind(hotkey.as_str())
                .bind(limit.clamp(1, 500))
                .fetch_all(self.db.pool())
                .await?;
        let events = rows
            .into_iter()
            .rev()
            .map(|(at, provider, kind, detail)| AuditEvent {
                at: clock::rfc3339(at),
                provider: provider.and_then(|p| p.parse().ok()),
                kind,
                detail,
            })
            .collect();
        Ok(AuditEvents { events })
    }
}
