pub mod audit_log;
pub mod provider_row;
pub mod providers_panel;
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
