//! Roles an operator manages: the validator set, banned hotkeys, and an optional miner
//! allowlist (off by default: any valid hotkey may act as a miner).

use crate::auth::AuthError;
use crate::clock;
use crate::db::Db;
use crate::domain::{Caller, Hotkey};

pub const ROLE_VALIDATOR: &str = "validator";
pub const ROLE_BANNED: &str = "banned";
pub const ROLE_MINER: &str = "miner";
const ALLOWLIST_SETTING: &str = "miner_allowlist_enabled";

/// Looks a hotkey up: refuses a banned one, and says whether it is a validator (by the
/// `validators` table or the `ORO_VALIDATOR_HOTKEYS` setting).
pub async fn resolve(db: &Db, configured_validators: &[String], hotkey: Hotkey) -> Result<Caller, AuthError> {
    let roles: Vec<(String,)> =
        sqlx::query_as("SELECT role FROM hotkey_roles WHERE hotkey = $1").bind(hotkey.as_str()).fetch_all(db.pool()).await?;
    if roles.iter().any(|(r,)| r == ROLE_BANNED) {
        return Err(AuthError::Banned);
    }
    let is_validator = roles.iter().any(|(r,)| r == ROLE_VALIDATOR) || configured_validators.iter().any(|v| v == hotkey.as_str());
    Ok(Caller { hotkey, is_validator })
}

/// A miner route: passes unless the allowlist is on and the hotkey is not on it.
pub async fn require_miner(db: &Db, caller: &Caller) -> Result<(), AuthError> {
    if !allowlist_enabled(db).await? {
        return Ok(());
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT role FROM hotkey_roles WHERE hotkey = $1 AND role = $2")
        .bind(caller.hotkey.as_str())
        .bind(ROLE_MINER)
        .fetch_optional(db.pool())
        .await?;
    if row.is_some() { Ok(()) } else { Err(AuthError::NotAllowlisted) }
}

pub fn require_validator(caller: &Caller) -> Result<(), AuthError> {
    if caller.is_validator { Ok(()) } else { Err(AuthError::NotValidator) }
}

pub async fn allowlist_enabled(db: &Db) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT value FROM operator_settings WHERE name = $1").bind(ALLOWLIST_SETTING).fetch_optional(db.pool()).await?;
    Ok(row.is_some_and(|(v,)| v == "1"))
}

pub async fn set_allowlist_enabled(db: &Db, enabled: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO operator_settings (name, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(ALLOWLIST_SETTING)
    .bind(if enabled { "1" } else { "0" })
    .bind(clock::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn grant(db: &Db, hotkey: &Hotkey, role: &str, note: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO hotkey_roles (hotkey, role, note, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (hotkey, role) DO UPDATE SET note = excluded.note",
    )
    .bind(hotkey.as_str())
    .bind(role)
    .bind(note)
    .bind(clock::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn revoke(db: &Db, hotkey: &Hotkey, role: &str) -> Result<bool, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM hotkey_roles WHERE hotkey = $1 AND role = $2").bind(hotkey.as_str()).bind(role).execute(db.pool()).await?;
    Ok(done.rows_affected() > 0)
}

/// (hotkey, note) pairs holding a role.
pub async fn list(db: &Db, role: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as("SELECT hotkey, note FROM hotkey_roles WHERE role = $1 ORDER BY hotkey").bind(role).fetch_all(db.pool()).await
}
