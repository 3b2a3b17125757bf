//! Roles an operator manages: the validator set, banned hotkeys, and an optional miner
//! allowlist (off by default: any valid hotkey may act as a miner).

use crate::auth::AuthError;
use crate::clock;
use crate::db::Db;
use crate::domain::{Caller, Hotkey};
use crate::store;

/// A role an operator grants a hotkey (`hotkey_roles.role`, stored as `as_str()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// In the validator set (besides `ORO_VALIDATOR_HOTKEYS`).
    Validator,
    /// Refused everywhere.
    Banned,
    /// On the miner allowlist (which matters only while it is switched on).
    Miner,
}

impl Grant {
    pub const fn as_str(self) -> &'static str {
        match self {
            Grant::Validator => "validator",
            Grant::Banned => "banned",
            Grant::Miner => "miner",
        }
    }

    pub fn parse(text: &str) -> Option<Grant> {
        [Grant::Validator, Grant::Banned, Grant::Miner].into_iter().find(|g| g.as_str() == text)
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const ALLOWLIST_SETTING: &str = "miner_allowlist_enabled";

/// Looks a hotkey up: refuses a banned one, and says whether it is a validator (by the
/// `validators` table or the `ORO_VALIDATOR_HOTKEYS` setting).
pub async fn resolve(db: &Db, configured_validators: &[String], hotkey: Hotkey) -> Result<Caller, AuthError> {
    let roles = store::auth::roles_of(&mut *db.pool().acquire().await?, hotkey.as_str()).await?;
    // A role this build does not know (written by a newer one) grants nothing here.
    let grants: Vec<Grant> = roles.iter().filter_map(|r| Grant::parse(r)).collect();
    if grants.contains(&Grant::Banned) {
        return Err(AuthError::Banned);
    }
    let is_validator = grants.contains(&Grant::Validator) || configured_validators.iter().any(|v| v == hotkey.as_str());
    Ok(Caller { hotkey, is_validator })
}

/// A miner route: passes unless the allowlist is on and the hotkey is not on it.
pub async fn require_miner(db: &Db, caller: &Caller) -> Result<(), AuthError> {
    if !allowlist_enabled(db).await? {
        return Ok(());
    }
    let listed = store::auth::has_role(&mut *db.pool().acquire().await?, caller.hotkey.as_str(), Grant::Miner).await?;
    if listed { Ok(()) } else { Err(AuthError::NotAllowlisted) }
}

pub fn require_validator(caller: &Caller) -> Result<(), AuthError> {
    if caller.is_validator { Ok(()) } else { Err(AuthError::NotValidator) }
}

pub async fn allowlist_enabled(db: &Db) -> Result<bool, sqlx::Error> {
    Ok(store::auth::setting(&mut *db.pool().acquire().await?, ALLOWLIST_SETTING).await?.is_some_and(|v| v == "1"))
}

pub async fn set_allowlist_enabled(db: &Db, enabled: bool) -> Result<(), sqlx::Error> {
    // An operator's command, not the service: the machine's time stamps it.
    let value = if enabled { "1" } else { "0" };
    store::auth::set_setting(&mut *db.pool().acquire().await?, ALLOWLIST_SETTING, value, clock::system_now()).await
}

pub async fn grant(db: &Db, hotkey: &Hotkey, role: Grant, note: &str, now: i64) -> Result<(), sqlx::Error> {
    store::auth::grant(&mut *db.pool().acquire().await?, hotkey.as_str(), role, note, now).await
}

pub async fn revoke(db: &Db, hotkey: &Hotkey, role: Grant) -> Result<bool, sqlx::Error> {
    store::auth::revoke(&mut *db.pool().acquire().await?, hotkey.as_str(), role).await
}

/// (hotkey, note) pairs holding a role.
pub async fn list(db: &Db, role: Grant) -> Result<Vec<(String, String)>, sqlx::Error> {
    store::auth::holders(&mut *db.pool().acquire().await?, role).await
}

#[cfg(test)]
mod tests {
    use super::Grant;

    #[test]
    fn grants_read_back_as_written() {
        for grant in [Grant::Validator, Grant::Banned, Grant::Miner] {
            assert_eq!(Grant::parse(grant.as_str()), Some(grant));
            assert_eq!(grant.to_string(), grant.as_str());
        }
        assert_eq!(Grant::parse("admin"), None, "a role this build does not know grants nothing");
    }
}
