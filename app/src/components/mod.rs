pub mod audit_log;
pub mod provider_row;
pub mod providers_panel;
pub mod recent_runs;
pub mod wallet_sign_in;

use leptos::prelude::*;

/// Bumped after every change on the dashboard, so its panels fetch again.
#[derive(Clone, Copy)]
pub struct DashboardVersion(pub RwSignal<u32>);

impl DashboardVersion {
    pub fn bump(self) {
        self.0.update(|v| *v += 1);
    }
}

/// The last outcome of an action on each provider row. Owned by the dashboard (not the row),
/// because a successful action refetches the panel, which rebuilds the rows.
#[derive(Clone, Copy)]
pub struct RowResults(pub RwSignal<std::collections::HashMap<wire::Provider, Result<String, String>>>);

impl RowResults {
    pub fn get(self, provider: wire::Provider) -> Option<Result<String, String>> {
        self.0.with(|m| m.get(&provider).cloned())
    }

    pub fn set(self, provider: wire::Provider, result: Option<Result<String, String>>) {
        self.0.update(|m| match result {
            Some(r) => {
                m.insert(provider, r);
            }
            None => {
                m.remove(&provider);
            }
        });
    }
}
