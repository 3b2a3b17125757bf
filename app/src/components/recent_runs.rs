//! The miner's recent evaluation runs: provider, status, reason, cap and spend. While a run
//! is running its spend is fetched again every few seconds, and it can be stopped.

use leptos::prelude::*;

use super::DashboardVersion;
use leptos::task::spawn_local;
use wire::api::{RunCredentialKind, RunList, RunProtection, RunSummary};

use crate::api::{load_budget, load_runs, save_budget, stop_run};

/// How often a running run's spend is fetched again.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn money(v: Option<f64>) -> String {
    match v {
        // Gateway spend moves in fractions of a cent: a short answer costs millionths.
        Some(v) if v > 0.0 && v < 0.01 => format!("${v:.6}"),
        Some(v) if v > 0.0 && v < 1.0 => format!("${v:.4}"),
        Some(v) => format!("${v:.2}"),
        None => "—".into(),
    }
}

fn any_running(list: &RunList) -> bool {
    list.runs.iter().any(|r| r.status == "running")
}

/// One sentence per provider: what a validator holds, and whether a thief is capped.
fn protection_text(p: &RunProtection) -> String {
    let cap = format!("${:.2}", p.run_cap_usd);
    let chutes = match p.chutes {
        RunCredentialKind::ProviderToken => {
            "Chutes runs: the validator gets your Chutes access token itself, good for an hour on any model and not capped (this service hands out Chutes tokens directly).".to_string()
        }
        _ => format!(
            "Chutes runs: the validator gets a token for this service's run gateway, which can spend at most {cap} on the allowed models and stops working when the run ends; your Chutes token never leaves the service."
        ),
    };
    let openrouter = match p.openrouter {
        RunCredentialKind::Gateway => format!(
            "OpenRouter runs: the validator gets a run gateway token ({cap} at most); the run's own key, capped at {cap} by OpenRouter, stays here."
        ),
        _ => format!("OpenRouter runs: the validator gets a key OpenRouter caps at {cap}, disabled when the run ends."),
    };
    format!("{chutes} {openrouter}")
}

/// The latest figures of the runs shown, fetched in the background while one is running: rows
/// read their spend and status from here, so the table is not rebuilt (focus and an open
/// confirmation stay where they are). A plain signal, filled only in the browser: a resource
/// read here would hold the server's render of the table back.
#[derive(Clone, Copy)]
struct LiveRuns(RwSignal<Option<RunList>>);

impl LiveRuns {
    fn of(self, id: &str) -> Option<(String, Option<f64>)> {
        self.0.with(|list| list.as_ref()?.runs.iter().find(|r| r.eval_run_id == id).map(|r| (r.status.clone(), r.spend_usd)))
    }
}

#[component]
pub fn RecentRuns() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let runs = Resource::new(move || version.0.get(), |_| load_runs());
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
                let running = live.0.with_untracked(|l| l.as_ref().map(any_running));
                let running = running.unwrap_or_else(|| runs.get_untracked().is_some_and(|r| r.as_ref().is_ok_and(any_running)));
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
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(list) if list.runs.is_empty() => view! {
                            <p class="hint">"No runs yet. Submit an agent with "<code>"oro submit --agent-name NAME agent.py"</code>"."</p>
                            {list.protection.as_ref().map(|p| view! { <p class="hint" id="run-protection">{protection_text(p)}</p> })}
                        }.into_any(),
                        Ok(list) => view! {
                            {list.protection.as_ref().map(|p| view! { <p class="hint" id="run-protection">{protection_text(p)}</p> })}
                            <p class="hint" id="month-spend">
                                {if list.month_spend_usd.is_empty() {
                                    "No recorded spend this month.".to_string()
                                } else {
                                    format!("This month: {}", list.month_spend_usd.iter().map(|(p, v)| {
                                        let name = p.parse::<wire::Provider>().map(|p| p.display_name()).unwrap_or(p.as_str());
                                        format!("{name} {}", money(Some(*v)))
                                    }).collect::<Vec<_>>().join(", "))
                                }}
                            </p>
                            <table class="runs" id="runs-table">
                                <thead><tr>
                                    <th scope="col">"Agent"</th><th scope="col">"Provider"</th><th scope="col">"Status"</th>
                                    <th scope="col">"Spend / cap"</th><th scope="col">"Reason"</th>
                                </tr></thead>
                                <tbody>
                                    {list.runs.into_iter().map(|r| view! { <RunRow run=r outcome=outcome live=live default_provider=list.default_provider/> }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <div aria-live="polite">
                {move || outcome.get().map(|r| match r {
                    Ok(text) => view! { <p class="ok" role="status" id="stop-outcome">{text}</p> }.into_any(),
                    Err(text) => view! { <p class="error" role="alert" id="stop-outcome">{text}</p> }.into_any(),
                })}
            </div>
        </section>
    }
}

/// A run's row; a running run's spend is marked live and it has Stop inference, confirmed.
#[component]
fn RunRow(
    run: RunSummary,
    outcome: RwSignal<Option<Result<String, String>>>,
    live: LiveRuns,
    default_provider: Option<wire::Provider>,
) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    // Stopped from this page: the run goes on at its validator, its credential is dead.
    let stopped = RwSignal::new(false);
    let id = StoredValue::new(run.eval_run_id.clone());
    let cap = run.cap_usd;
    let (first_status, first_spend) = (run.status.clone(), run.spend_usd);
    let current = move || id.with_value(|id| live.of(id)).unwrap_or_else(|| (first_status.clone(), first_spend));
    let current = Memo::new(move |_| current());
    let running = move || current.with(|(status, _)| status == "running") && cap.is_some();
    let stop = move |_| {
        busy.set(true);
        let run = id.get_value();
        spawn_local(async move {
            let result = stop_run(run).await;
            busy.set(false);
            confirming.set(false);
            stopped.set(result.is_ok());
            outcome.set(Some(result.map(|s| s.message).map_err(|e| e.to_string())));
            // The buttons are gone: the panel's heading holds the focus; the outcome is announced.
            crate::browser::focus_when_present("runs-heading");
        });
    };
    let short_id: String = run.eval_run_id.chars().take(8).collect();
    let version: String = run.agent_version_id.chars().take(8).collect();
    let submitted = run.created_at.replace('T', " ").replace("+00:00", " UTC");
    // Not claimed yet: the provider is chosen at the claim, from the default then.
    let provider = match (run.provider, run.status.as_str(), default_provider) {
        (Some(p), ..) => p.display_name().to_string(),
        (None, "queued", Some(d)) => format!("will use {} (your default)", d.display_name()),
        (None, "queued", None) => "none connected: connect a provider".to_string(),
        (None, ..) => "—".to_string(),
    };
    view! {
        <tr data-run=run.eval_run_id.clone()>
            <td data-label="Agent">
                {run.agent_name}
                <br/>
                <small class="hint" title=run.agent_version_id.clone()>{format!("version {version}…, submitted {submitted}")}</small>
            </td>
            <td data-label="Provider">{provider}</td>
            <td data-label="Status" class=move || format!("run-status {}", current.with(|(s, _)| s.clone()))>{move || current.with(|(s, _)| s.clone())}</td>
            <td data-label="Spend / cap" class="run-spend">
                {move || format!("{} / {}", money(current.with(|(_, spend)| *spend)), money(cap))}
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
pub fn BudgetPanel() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let budget = Resource::new(move || version.0.get(), |_| load_budget());
    let input = RwSignal::new(String::new());
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let confirming_removal = RwSignal::new(false);
    // The field starts from the current ceiling (until the miner types).
    let typed = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(b)) = budget.get()
            && !typed.get_untracked()
        {
            input.set(b.monthly_usd.map(|v| format!("{v:.2}")).unwrap_or_default());
        }
    });
    let apply = move |value: String| {
        busy.set(true);
        spawn_local(async move {
            let result = save_budget(value).await;
            busy.set(false);
            confirming_removal.set(false);
            typed.set(false);
            outcome.set(Some(
                result
                    .map(|b| {
                        let said = match b.monthly_usd {
                            Some(v) => format!("Monthly budget set to ${v:.2}."),
                            None => "Ceiling removed: runs are no longer limited by a monthly budget.".to_string(),
                        };
                        match b.warning() {
                            Some(w) => format!("{said} {w}"),
                            None => said,
                        }
                    })
                    .map_err(|e| e.to_string()),
            ));
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
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading budget…"</p> }>
                {move || Suspend::new(async move {
                    match budget.await {
                        Ok(b) => view! {
                            <p id="budget-state">{match b.monthly_usd {
                                Some(v) => format!("${:.2} of ${v:.2} committed in {} by runs (each commits its cap).", b.committed_usd, b.month),
                                None => format!("No ceiling. ${:.2} committed in {} by runs.", b.committed_usd, b.month),
                            }}</p>
                            {b.run_cap_usd.map(|cap| view! { <p class="hint" id="run-cap">{format!("Each run commits its cap of ${cap:.2} when it starts.")}</p> })}
                            {b.warning().map(|w| view! { <p class="error" role="alert" id="budget-warning">{w}</p> })}
                            {b.monthly_usd.is_some().then(|| view! {
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
                        }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <form on:submit=save class="paste-row">
                <label for="budget-input">"Ceiling in USD"</label>
                <input id="budget-input" type="text" inputmode="decimal" placeholder="e.g. 25"
                    prop:value=move || input.get() on:input=move |ev| { typed.set(true); input.set(event_target_value(&ev)); }/>
                <button type="submit" id="budget-save" disabled=move || busy.get()>"Save"</button>
            </form>
            <p class="hint">"Every run commits its cap when it starts. When a run would push this month past the ceiling, it is not started and fails with \"monthly budget reached\"."</p>
            <div aria-live="polite">
                {move || outcome.get().map(|r| match r {
                    Ok(text) => view! { <p class="ok" role="status" id="budget-outcome">{text}</p> }.into_any(),
                    Err(text) => view! { <p class="error" role="alert" id="budget-outcome">{text}</p> }.into_any(),
                })}
            </div>
        </section>
    }
}
