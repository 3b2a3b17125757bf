//! The miner's recent evaluation runs: provider, status, reason, cap and spend. While a run
//! is running its spend is fetched again every few seconds, and it can be stopped.

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::DashboardVersion;
use crate::api::{load_runs, save_budget, stop_run};
use crate::error::AppError;
use crate::view::{BudgetView, RunRow as Run, RunsView};

/// How often a running run's spend is fetched again.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The latest figures of the runs shown, fetched in the background while one is running: rows
/// read their spend and status from here, so the table is not rebuilt (focus and an open
/// confirmation stay where they are). Filled only in the browser.
#[derive(Clone, Copy)]
struct LiveRuns(RwSignal<Option<RunsView>>);

impl LiveRuns {
    /// A run's status, spend against cap, and whether it is still live.
    fn of(self, id: &str) -> Option<(String, String, bool)> {
        self.0.with(|list| {
            list.as_ref()?.runs.iter().find(|r| r.eval_run_id == id).map(|r| (r.status.clone(), r.spend_of_cap.clone(), r.live))
        })
    }
}

#[component]
pub fn RecentRuns(runs: RwSignal<Result<RunsView, AppError>>) -> impl IntoView {
    let live = LiveRuns(RwSignal::new(None));
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    // A refetched list is newer than any live figures.
    Effect::new(move |_| {
        runs.track();
        live.0.set(None);
    });
    // In the browser only (effects do not run on the server): while a run is running, fetch
    // its figures again every few seconds.
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                let running = live.0.with_untracked(|l| l.as_ref().map(RunsView::any_live));
                let running = running.unwrap_or_else(|| runs.with_untracked(|r| r.as_ref().is_ok_and(RunsView::any_live)));
                if running {
                    spawn_local(async move {
                        if let Ok(list) = load_runs().await {
                            live.0.set(Some(list));
                        }
                    });
                }
            },
            LIVE_EVERY,
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <section class="panel" aria-labelledby="runs-heading">
            <h2 id="runs-heading" tabindex="-1">"Recent runs"</h2>
            {move || match runs.get() {
                Ok(list) if list.runs.is_empty() => EitherOf3::A(view! {
                    <p class="hint">"No runs yet. Submit an agent with "<code>"oro submit --agent-name NAME agent.py"</code>"."</p>
                    {list.protection.map(|p| view! { <p class="hint" id="run-protection">{p}</p> })}
                }),
                Ok(list) => EitherOf3::B(view! {
                    {list.protection.map(|p| view! { <p class="hint" id="run-protection">{p}</p> })}
                    <p class="hint" id="month-spend">{list.month_spend}</p>
                    <table class="runs" id="runs-table">
                        <thead><tr>
                            <th scope="col">"Agent"</th><th scope="col">"Provider"</th><th scope="col">"Status"</th>
                            <th scope="col">"Spend / cap"</th><th scope="col">"Reason"</th>
                        </tr></thead>
                        <tbody>
                            {list.runs.into_iter().map(|r| view! { <RunRow run=r outcome=outcome live=live/> }).collect_view()}
                        </tbody>
                    </table>
                }),
                Err(e) => EitherOf3::C(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
            <div aria-live="polite">
                {move || outcome.get().map(|r| match r {
                    Ok(text) => Either::Left(view! { <p class="ok" role="status" id="stop-outcome">{text}</p> }),
                    Err(text) => Either::Right(view! { <p class="error" role="alert" id="stop-outcome">{text}</p> }),
                })}
            </div>
        </section>
    }
}

/// A run's row; a running run's spend is marked live and it has Stop inference, confirmed.
#[component]
fn RunRow(run: Run, outcome: RwSignal<Option<Result<String, String>>>, live: LiveRuns) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    // Stopped from this page: the run goes on at its validator, its credential is dead.
    let stopped = RwSignal::new(false);
    let id = StoredValue::new(run.eval_run_id.clone());
    let first = (run.status.clone(), run.spend_of_cap.clone(), run.live);
    let current = Memo::new(move |_| id.with_value(|id| live.of(id)).unwrap_or_else(|| first.clone()));
    let running = move || current.with(|(_, _, live)| *live);
    let stop = move |_| {
        busy.set(true);
        let run = id.get_value();
        spawn_local(async move {
            let result = stop_run(run).await;
            busy.set(false);
            confirming.set(false);
            stopped.set(result.is_ok());
            outcome.set(Some(result.map_err(|e| e.to_string())));
            // The buttons are gone: the panel's heading holds the focus; the outcome is announced.
            crate::browser::focus_when_present("runs-heading");
        });
    };
    let short_id: String = run.eval_run_id.chars().take(8).collect();
    view! {
        <tr data-run=run.eval_run_id.clone()>
            <td data-label="Agent">
                {run.agent_name}
                <br/>
                <small class="hint" title=run.agent_version_id.clone()>{run.version_line}</small>
            </td>
            <td data-label="Provider">{run.provider}</td>
            <td data-label="Status" class=move || format!("run-status {}", current.with(|(s, ..)| s.clone()))>{move || current.with(|(s, ..)| s.clone())}</td>
            <td data-label="Spend / cap" class="run-spend">
                {move || current.with(|(_, spend, _)| spend.clone())}
                {move || running().then(|| view! { " " <span class="live">"(live)"</span> })}
            </td>
            <td data-label="Reason">
                {run.failure_reason.map(|r| view! { <span>{r}</span> })}
                <Show when=move || running() && stopped.get()>
                    <span class="hint">"Inference stopped"</span>
                </Show>
                <Show when=move || running() && !stopped.get()>
                    <button type="button" class="danger stop-run" aria-label=format!("Stop inference for run {short_id}")
                        hidden=move || confirming.get() on:click=move |_| confirming.set(true)>"Stop inference"</button>
                    <span class="confirm" role="group" aria-label="Confirm stopping inference" hidden=move || !confirming.get()>
                        "Stop? The agent can no longer call a model; the run then fails. "
                        <button type="button" class="danger confirm-stop" on:click=stop disabled=move || busy.get()>"Yes, stop"</button>
                        " "
                        <button type="button" on:click=move |_| confirming.set(false)>"Keep running"</button>
                    </span>
                </Show>
            </td>
        </tr>
    }
}

/// The monthly ceiling on what ORO runs may commit: shown with the per-run cap it must leave
/// room for, set by amount, removed only by its own confirmed button.
#[component]
pub fn BudgetPanel(budget: RwSignal<Result<BudgetView, AppError>>) -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let input = RwSignal::new(String::new());
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let confirming_removal = RwSignal::new(false);
    // The field starts from the current ceiling (until the miner types).
    let typed = RwSignal::new(false);
    Effect::new(move |_| {
        if let Ok(b) = budget.get()
            && !typed.get_untracked()
        {
            input.set(b.ceiling_input);
        }
    });
    let apply = move |value: String| {
        busy.set(true);
        spawn_local(async move {
            let result = save_budget(value).await;
            busy.set(false);
            confirming_removal.set(false);
            typed.set(false);
            outcome.set(Some(result.map(|saved| saved.message).map_err(|e| e.to_string())));
            version.bump();
        });
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = input.get_untracked();
        if value.trim().is_empty() {
            outcome.set(Some(Err("Enter an amount in dollars, e.g. 25; to have no ceiling, use Remove ceiling.".into())));
            return;
        }
        apply(value);
    };
    view! {
        <section class="panel" aria-labelledby="budget-heading">
            <h2 id="budget-heading">"Monthly budget"</h2>
            {move || match budget.get() {
                Ok(b) => Either::Left(view! {
                    <p id="budget-state">{b.state}</p>
                    {b.run_cap.map(|cap| view! { <p class="hint" id="run-cap">{cap}</p> })}
                    {b.warning.map(|w| view! { <p class="error" role="alert" id="budget-warning">{w}</p> })}
                    {b.has_ceiling.then(|| view! {
                        <p>
                            <button type="button" class="danger" id="budget-remove" hidden=move || confirming_removal.get()
                                on:click=move |_| confirming_removal.set(true)>"Remove ceiling"</button>
                        </p>
                        <div class="confirm" role="group" aria-labelledby="budget-remove-title" hidden=move || !confirming_removal.get()>
                            <p id="budget-remove-title"><strong>"Remove the monthly ceiling?"</strong>" Runs will then commit your account's money without a monthly limit."</p>
                            <button type="button" class="danger" id="budget-remove-confirm" disabled=move || busy.get()
                                on:click=move |_| apply(String::new())>"Yes, remove it"</button>
                            <button type="button" on:click=move |_| confirming_removal.set(false)>"Keep it"</button>
                        </div>
                    })}
                }),
                Err(e) => Either::Right(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
            <form on:submit=save class="paste-row">
                <label for="budget-input">"Ceiling in USD"</label>
                <input id="budget-input" type="text" inputmode="decimal" placeholder="e.g. 25"
                    prop:value=move || input.get() on:input=move |ev| { typed.set(true); input.set(event_target_value(&ev)); }/>
                <button type="submit" id="budget-save" disabled=move || busy.get()>"Save"</button>
            </form>
            <p class="hint">"Every run commits its cap when it starts. When a run would push this month past the ceiling, it is not started and fails with \"monthly budget reached\"."</p>
            <div aria-live="polite">
                {move || outcome.get().map(|r| match r {
                    Ok(text) => Either::Left(view! { <p class="ok" role="status" id="budget-outcome">{text}</p> }),
                    Err(text) => Either::Right(view! { <p class="error" role="alert" id="budget-outcome">{text}</p> }),
                })}
            </div>
        </section>
    }
}
