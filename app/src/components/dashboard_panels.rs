//! The signed-in dashboard's panels, rendered on the server from one read of the dashboard, so
//! they never disagree (a new default shows in the runs panel, a connection in the activity
//! log). The browser runs only the islands inside them: a provider row's actions, the budget
//! form, a live run's figures and Stop. A change reloads the page (`show_change`).

use leptos::prelude::*;

use super::audit_log::AuditLog;
use super::budget_form::BudgetPanel;
use super::providers_panel::ProvidersPanel;
use super::recent_runs::RecentRuns;
use crate::view::{DashboardView, Panel};

#[component]
pub fn DashboardPanels(data: DashboardView) -> impl IntoView {
    let budget_said = data.said_in(Panel::Budget);
    let said = data.said.clone();
    view! {
        <ProvidersPanel status=data.providers said=said/>
        <RecentRuns runs=data.runs/>
        <BudgetPanel budget=data.budget said=budget_said/>
        <AuditLog events=data.audit/>
    }
}
