//! The budget guard: a miner may set a monthly ceiling on what ORO runs may commit on their
//! OpenRouter account. A run commits its key's cap when claimed (its recorded spend once
//! known); a claim whose cap would push this month past the ceiling is not minted.
//! Chutes runs count the same way when they go through the run gateway (their cap is
//! enforced there); with `ORO_CHUTES_RUN_CREDENTIAL=direct` they have no cap to count.

use time::OffsetDateTime;
use wire::api::Budget;

use crate::audit;
use crate::domain::Hotkey;
use crate::services::Services;
use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("monthly_usd must be a number of dollars from 0.01 to 1,000,000 (whole cents), or null for no ceiling")]
    Invalid,
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl BudgetError {
    pub fn failure(&self) -> crate::failure::Failure {
        match self {
            BudgetError::Invalid => crate::failure::Failure::Invalid,
            BudgetError::Storage(_) => crate::failure::Failure::Internal,
        }
    }
}

/// The first second of the current calendar month (UTC), and its name.
pub fn month_start(now: i64) -> (i64, String) {
    let t = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let start = t.replace_day(1).expect("day 1 exists").replace_time(time::Time::MIDNIGHT);
    (start.unix_timestamp(), format!("{:04}-{:02}", t.year(), u8::from(t.month())))
}

impl Services {
    pub async fn budget(&self, hotkey: &Hotkey) -> Result<Budget, BudgetError> {
        let mut tx = self.db.pool().begin().await?;
        let monthly_usd = store::connections::monthly_budget(&mut tx, hotkey.as_str()).await?;
        let (since, month) = month_start(self.clock.now());
        let committed_usd = store::runs::committed_since(&mut tx, hotkey.as_str(), since).await?;
        tx.commit().await?;
        Ok(Budget { monthly_usd, committed_usd, month, run_cap_usd: Some(self.settings.run_key_cap_usd) })
    }

    pub async fn set_budget(&self, hotkey: &Hotkey, monthly_usd: Option<f64>) -> Result<Budget, BudgetError> {
        if monthly_usd.is_some_and(|b| !b.is_finite() || !(0.01..=1_000_000.0).contains(&b)) {
            return Err(BudgetError::Invalid);
        }
        // Dollars and cents, as it is shown.
        let monthly_usd = monthly_usd.map(|b| (b * 100.0).round() / 100.0);
        let mut tx = self.db.pool().begin().await?;
        store::connections::lock_miner(&mut tx, self.db.backend(), hotkey.as_str(), self.clock.now()).await?;
        store::connections::set_monthly_budget(&mut tx, hotkey.as_str(), monthly_usd, self.clock.now()).await?;
        let detail = match monthly_usd {
            Some(b) => format!("monthly budget for ORO runs set to ${b:.2}"),
            None => "monthly budget removed (no ceiling)".to_owned(),
        };
        audit::record(&mut tx, hotkey, None, "budget_changed", &detail, self.clock.now()).await?;
        tx.commit().await?;
        self.budget(hotkey).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_boundaries() {
        // 2026-11-24T19:00:00Z
        let (start, name) = super::month_start(1_795_633_200);
        assert_eq!(name, "2026-11");
        assert_eq!(crate::clock::rfc3339(start), "2026-11-01T00:00:00+00:00");
    }
}
