//! The miner's recent evaluation runs: provider, status, reason, cap and spend, rendered on
//! the server. The table's island (`RunsTable`) renders nothing of its own: while a run is
//! running it writes the run's new figures into the server's cells every few seconds, and it
//! runs Stop inference and its question on the server's buttons (`live`).

use leptos::either::EitherOf3;
use leptos::prelude::*;

use crate::error::AppError;
use crate::view::{RunRow as Run, RunsView};

/// How often a running run's spend is fetched again.
#[cfg(feature = "hydrate")]
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
                    EitherOf3::B(view! {
                        {list.protection.map(|p| view! { <p class="hint" id="run-protection">{p}</p> })}
                        <p class="hint" id="month-spend">{list.month_spend}</p>
                        <RunsTable>
                        <table class="runs" id="runs-table">
                            <thead><tr>
                                <th scope="col">"Agent"</th><th scope="col">"Provider"</th><th scope="col">"Status"</th>
                                <th scope="col">"Spend / cap"</th><th scope="col">"Reason"</th>
                            </tr></thead>
                            <tbody>
                                {list.runs.into_iter().map(|r| view! { <RunRow run=r/> }).collect_view()}
                            </tbody>
                        </table>
                        </RunsTable>
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
        <tr data-run=id.clone() data-live=run.live.then_some("")>
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
                {run.live.then(|| view! { <StopControl run=id.clone() stopped=run.stopped/> })}
            </td>
        </tr>
    }
}

/// Stop inference for one running run, after a question: rendered here, run by the table's
/// island. The run goes on at its validator; its credential is dead. A run whose inference was
/// already stopped (in another tab, before a reload) says so instead of offering it again.
#[component]
fn StopControl(run: String, stopped: bool) -> impl IntoView {
    let short_id: String = run.chars().take(8).collect();
    view! {
        <span class="stop-control" id=cell_id(&run, "stop") data-run=run.clone()>
            // Enabled by the island once it runs: before, a click would do nothing.
            <button type="button" class="danger stop-run" aria-label=format!("Stop inference for run {short_id}") disabled hidden=stopped>
                "Stop inference"
            </button>
            <span class="confirm" role="group" aria-label="Confirm stopping inference" hidden>
                "Stop? The agent can no longer call a model; the run then fails. "
                <button type="button" class="danger confirm-stop">"Yes, stop"</button>
                " "
                <button type="button" class="keep-running">"Keep running"</button>
            </span>
            <span class="hint stopped" hidden=!stopped>"Inference stopped "</span>
            <span class="stop-outcome"></span>
        </span>
    }
}

/// The table's island: it hears the Stop buttons' clicks and keeps the live runs' figures
/// current, on the table the server rendered (its children). The page is not reloaded: the
/// focus and an open question stay where they are.
#[island]
fn RunsTable(children: Children) -> impl IntoView {
    // In the browser only (effects do not run on the server).
    Effect::new(|_| live::start());
    view! { <div class="island-events" on:click=|ev| live::clicked(&ev)>{children()}</div> }
}

#[cfg(feature = "hydrate")]
mod live {
    use std::cell::RefCell;
    use std::rc::Rc;

    use leptos::task::spawn_local;

    use super::{LIVE_EVERY, cell_id};
    use crate::api::call::{load_runs, stop_run};
    use crate::browser::dom::{self, Element, Event, Outcome};
    use crate::browser::{self};

    pub fn start() {
        dom::enable("#runs-table .stop-run");
        let live: Vec<String> = dom::all("#runs-table tr[data-live]").iter().map(|row| dom::attr(row, "data-run")).collect();
        if !live.is_empty() {
            watch(live);
        }
    }

    /// Every few seconds, the watched runs' status and spend, until none is running.
    fn watch(runs: Vec<String>) {
        let watched = Rc::new(RefCell::new(runs));
        let refresh = move || {
            if watched.borrow().is_empty() {
                return;
            }
            let watched = watched.clone();
            spawn_local(async move {
                let Ok(figures) = load_runs().await else { return };
                watched.borrow_mut().retain(|id| {
                    let Some(run) = figures.iter().find(|r| &r.eval_run_id == id) else { return false };
                    browser::set_text(&cell_id(id, "status"), &run.status);
                    browser::set_class(&cell_id(id, "status"), &format!("run-status {}", run.status));
                    browser::set_text(&cell_id(id, "spend"), &run.spend_of_cap);
                    if run.stopped {
                        // Stopped elsewhere (another tab, the CLI): nothing left to offer here.
                        show_stopped(id);
                    }
                    if !run.live {
                        // Over: no longer live, and nothing left to stop.
                        browser::set_hidden(&cell_id(id, "live"), true);
                        browser::set_hidden(&cell_id(id, "stop"), true);
                    }
                    run.live
                });
            });
        };
        // The page lives as long as the island: the interval is never cleared.
        let _ = leptos::prelude::set_interval_with_handle(refresh, LIVE_EVERY);
    }

    /// A run's Stop control once its inference was stopped elsewhere (another tab, the CLI),
    /// once. It is said only to a focus that was on the buttons that go.
    fn show_stopped(run: &str) {
        let Some(control) = dom::by_id(&cell_id(run, "stop")) else { return };
        if dom::first_in(&control, ".stopped").is_some_and(|hint| dom::is_hidden(&hint)) {
            let said = dom::holds_focus(&control).then_some("Inference for this run was stopped elsewhere.");
            mark_stopped(&control, said);
        }
    }

    /// The Stop button and its question gone, the hint shown. With `said`, the outcome is
    /// announced and the panel's heading takes the focus the buttons held.
    fn mark_stopped(control: &Element, said: Option<&str>) {
        for part in [".stop-run", ".confirm"].into_iter().filter_map(|selector| dom::first_in(control, selector)) {
            dom::set_hidden(&part, true);
        }
        if let Some(hint) = dom::first_in(control, ".stopped") {
            dom::set_hidden(&hint, false);
        }
        if let (Some(text), Some(outcome)) = (said, dom::first_in(control, ".stop-outcome")) {
            dom::say(&outcome, "span", "stop-outcome", Outcome::Done, text);
            browser::focus_when_present("runs-heading");
        }
    }

    pub fn clicked(ev: &Event) {
        let Some(button) = dom::target_button(ev) else { return };
        let Some(control) = button.closest(".stop-control").ok().flatten() else { return };
        let part = |selector: &str| dom::first_in(&control, selector);
        let (Some(stop), Some(question), Some(yes)) = (part(".stop-run"), part(".confirm"), part(".confirm-stop")) else { return };
        if dom::has_class(&button, "stop-run") {
            dom::set_hidden(&stop, true);
            dom::set_hidden(&question, false);
            dom::focus(&yes);
        } else if dom::has_class(&button, "keep-running") {
            dom::set_hidden(&question, true);
            dom::set_hidden(&stop, false);
            dom::focus(&stop);
        } else if dom::has_class(&button, "confirm-stop") {
            dom::set_disabled(&yes, true);
            let run = dom::attr(&control, "data-run");
            spawn_local(async move { stopped(&control, &stop, &question, &yes, stop_run(run).await) });
        }
    }

    fn stopped(control: &Element, stop: &Element, question: &Element, yes: &Element, result: Result<String, crate::error::AppError>) {
        dom::set_disabled(yes, false);
        match result {
            Ok(text) => mark_stopped(control, Some(&text)),
            Err(e) => {
                dom::set_hidden(question, true);
                dom::set_hidden(stop, false);
                if let Some(outcome) = dom::first_in(control, ".stop-outcome") {
                    dom::say(&outcome, "span", "stop-outcome", Outcome::Refused, &e.to_string());
                }
                dom::focus(stop);
            }
        }
    }
}

/// Off the browser the island is never run.
#[cfg(not(feature = "hydrate"))]
mod live {
    pub fn start() {}
    pub fn clicked(_: &leptos::ev::MouseEvent) {}
}
