//! The miner's recent evaluation runs: provider, status, reason, cap and spend, rendered on
//! the server. While a run is running its figures are fetched again every few seconds (one
//! island for the table, `LiveFigures`) and it can be stopped (an island in its row).

use leptos::either::{Either, EitherOf3};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{load_runs, stop_run};
use crate::browser;
use crate::error::AppError;
use crate::view::{RunRow as Run, RunsView};

/// How often a running run's spend is fetched again.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The ids of a run's cells that change while it runs.
fn cell_id(run: &str, cell: &str) -> String {
    format!("run-{run}-{cell}")
}

#[component]
pub fn RecentRuns(runs: Result<RunsView, AppError>) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="runs-heading">
            <h2 id="runs-heading" tabindex="-1">"Recent runs"</h2>
            {match runs {
                Ok(list) if list.runs.is_empty() => EitherOf3::A(view! {
                    <p class="hint">"No runs yet. Submit an agent with "<code>"oro submit --agent-name NAME agent.py"</code>"."</p>
                    {list.protection.map(|p| view! { <p class="hint" id="run-protection">{p}</p> })}
                }),
                Ok(list) => {
                    let live: Vec<String> = list.runs.iter().filter(|r| r.live).map(|r| r.eval_run_id.clone()).collect();
                    EitherOf3::B(view! {
                        {list.protection.map(|p| view! { <p class="hint" id="run-protection">{p}</p> })}
                        <p class="hint" id="month-spend">{list.month_spend}</p>
                        <table class="runs" id="runs-table">
                            <thead><tr>
                                <th scope="col">"Agent"</th><th scope="col">"Provider"</th><th scope="col">"Status"</th>
                                <th scope="col">"Spend / cap"</th><th scope="col">"Reason"</th>
                            </tr></thead>
                            <tbody>
                                {list.runs.into_iter().map(|r| view! { <RunRow run=r/> }).collect_view()}
                            </tbody>
                        </table>
                        {(!live.is_empty()).then(|| view! { <LiveFigures runs=live/> })}
                    })
                }
                Err(e) => EitherOf3::C(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
        </section>
    }
}

/// A run's row; a running run's spend is marked live and it has Stop inference, confirmed.
#[component]
fn RunRow(run: Run) -> impl IntoView {
    let id = run.eval_run_id;
    let status_class = format!("run-status {}", run.status);
    view! {
        <tr data-run=id.clone()>
            <td data-label="Agent">
                {run.agent_name}
                <br/>
                <small class="hint" title=run.agent_version_id>{run.version_line}</small>
            </td>
            <td data-label="Provider">{run.provider}</td>
            <td data-label="Status" class=status_class id=cell_id(&id, "status")>{run.status}</td>
            <td data-label="Spend / cap" class="run-spend">
                <span id=cell_id(&id, "spend")>{run.spend_of_cap}</span>
                {run.live.then(|| view! { " " <span class="live" id=cell_id(&id, "live")>"(live)"</span> })}
            </td>
            <td data-label="Reason">
                {run.failure_reason.map(|r| view! { <span>{r}</span> })}
                {run.live.then(|| view! { <span id=cell_id(&id, "stop")><StopRun run=id.clone()/></span> })}
            </td>
        </tr>
    }
}

/// Keeps the live runs' status and spend current, every few seconds while one is running,
/// by writing the new figures into the server's table (the browser has no code to render the
/// table itself). The page is not reloaded: the focus and an open question stay where they are.
#[island]
fn LiveFigures(runs: Vec<String>) -> impl IntoView {
    let watched = StoredValue::new(runs);
    // In the browser only (effects do not run on the server).
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if watched.with_value(Vec::is_empty) {
                    return;
                }
                spawn_local(async move {
                    let Ok(figures) = load_runs().await else { return };
                    watched.update_value(|watched| {
                        watched.retain(|id| {
                            let Some(run) = figures.iter().find(|r| &r.eval_run_id == id) else { return false };
                            browser::set_text(&cell_id(id, "status"), &run.status);
                            browser::set_class(&cell_id(id, "status"), &format!("run-status {}", run.status));
                            browser::set_text(&cell_id(id, "spend"), &run.spend_of_cap);
                            if !run.live {
                                // Over: no longer live, and nothing left to stop.
                                browser::set_hidden(&cell_id(id, "live"), true);
                                browser::set_hidden(&cell_id(id, "stop"), true);
                            }
                            run.live
                        })
                    });
                });
            },
            LIVE_EVERY,
        ) {
            on_cleanup(move || handle.clear());
        }
    });
}

/// Stop inference for one running run, after a confirmation. The run goes on at its
/// validator; its credential is dead.
#[island]
fn StopRun(run: String) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let ready = super::hydrated();
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let short_id: String = run.chars().take(8).collect();
    let run = StoredValue::new(run);
    let stop = move |_| {
        busy.set(true);
        spawn_local(async move {
            let result = stop_run(run.get_value()).await;
            busy.set(false);
            confirming.set(false);
            outcome.set(Some(result.map_err(|e| e.to_string())));
            // The buttons are gone: the panel's heading holds the focus; the outcome is announced.
            browser::focus_when_present("runs-heading");
        });
    };
    // One view for the three states, so the island carries one small tree, not three.
    view! {
        {move || match outcome.get() {
            Some(Ok(text)) => Either::Left(view! {
                <span class="hint">"Inference stopped"</span>
                " "
                <span class="ok" role="status" id="stop-outcome">{text}</span>
            }),
            failed => Either::Right(view! {
                <button type="button" class="danger stop-run" aria-label=format!("Stop inference for run {short_id}")
                    hidden=move || confirming.get() disabled=move || !ready.get() on:click=move |_| confirming.set(true)>"Stop inference"</button>
                <span class="confirm" role="group" aria-label="Confirm stopping inference" hidden=move || !confirming.get()>
                    "Stop? The agent can no longer call a model; the run then fails. "
                    <button type="button" class="danger confirm-stop" on:click=stop disabled=move || busy.get()>"Yes, stop"</button>
                    " "
                    <button type="button" on:click=move |_| confirming.set(false)>"Keep running"</button>
                </span>
                {failed.and_then(Result::err).map(|text| view! { <span class="error" role="alert" id="stop-outcome">{text}</span> })}
            }),
        }}
    }
}
