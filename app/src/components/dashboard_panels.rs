//! The signed-in dashboard's panels, one island: what the server read for the first render
//! arrives as its props, and every change made here reads the whole dashboard again in one
//! call, so the panels never disagree (a new default shows in the runs panel, a connection in
//! the activity log).

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::audit_log::AuditLog;
use super::providers_panel::ProvidersPanel;
use super::recent_runs::{BudgetPanel, RecentRuns};
use super::{DashboardVersion, RowResults};
use crate::api::load_dashboard;
use crate::view::DashboardView;

#[island]
pub fn DashboardPanels(data: DashboardView) -> impl IntoView {
    let version = DashboardVersion(RwSignal::new(0));
    provide_context(version);
    provide_context(RowResults(RwSignal::new(Default::default())));
    let providers = RwSignal::new(data.providers);
    let runs = RwSignal::new(data.runs);
    let budget = RwSignal::new(data.budget);
    let audit = RwSignal::new(data.audit);
    // In the browser, after each change (not at the first render, which the server did).
    Effect::new(move |first: Option<()>| {
        version.0.track();
        if first.is_some() {
            spawn_local(async move {
                match load_dashboard().await {
                    Ok(fresh) => {
                        providers.set(fresh.providers);
                        runs.set(fresh.runs);
                        budget.set(fresh.budget);
                        audit.set(fresh.audit);
                    }
                    // Each panel says it could not be read; what it showed before is outdated.
                    Err(e) => {
                        providers.set(Err(e.clone()));
                        runs.set(Err(e.clone()));
                        budget.set(Err(e.clone()));
                        audit.set(Err(e));
                    }
                }
            });
        }
    });
    view! {
        <ProvidersPanel status=providers/>
        <RecentRuns runs=runs/>
        <BudgetPanel budget=budget/>
        <AuditLog events=audit/>
    }
}
