//! The miner's recent evaluation runs: provider, status, reason, cap and spend.

use leptos::prelude::*;

use super::DashboardVersion;
use leptos::task::spawn_local;

use crate::api::{load_budget, load_runs, save_budget};

fn money(v: Option<f64>) -> String {
    v.map(|v| format!("${v:.2}")).unwrap_or_else(|| "—".into())
}

#[component]
pub fn RecentRuns() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let runs = Resource::new(move || version.0.get(), |_| load_runs());
    view! {
        <section class="panel" aria-labelledby="runs-heading">
            <h2 id="runs-heading">"Recent runs"</h2>
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading runs…"</p> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(list) if list.runs.is_empty() => view! {
                            <p class="hint">"No runs yet. Submit an agent with "<code>"oro submit --agent-name NAME agent.py"</code>"."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <p class="hint" id="month-spend">
                                {if list.month_spend_usd.is_empty() {
                                    "No recorded spend this month.".to_string()
                                } else {
                                    format!("This month: {}", list.month_spend_usd.iter().map(|(p, v)| format!("{p} ${v:.2}")).collect::<Vec<_>>().join(", "))
                                }}
                            </p>
                            <table class="runs" id="runs-table">
                                <thead><tr>
                                    <th scope="col">"Agent"</th><th scope="col">"Provider"</th><th scope="col">"Status"</th>
                                    <th scope="col">"Spend / cap"</th><th scope="col">"Reason"</th>
                                </tr></thead>
                                <tbody>
                                    {list.runs.into_iter().map(|r| view! {
                                        <tr>
                                            <td>{r.agent_name}</td>
                                            <td>{r.provider.map(|p| p.display_name()).unwrap_or("—")}</td>
                                            <td class=format!("run-status {}", r.status)>{r.status.clone()}</td>
                                            <td>{format!("{} / {}", money(r.spend_usd), money(r.cap_usd))}</td>
                                            <td>{r.failure_reason.unwrap_or_default()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The monthly ceiling on what ORO runs may commit on the miner's OpenRouter account.
#[component]
pub fn BudgetPanel() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let budget = Resource::new(move || version.0.get(), |_| load_budget());
    let input = RwSignal::new(String::new());
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        let value = input.get_untracked();
        spawn_local(async move {
            let result = save_budget(value).await;
            busy.set(false);
            outcome.set(Some(
                result
                    .map(|b| match b.monthly_usd {
                        Some(v) => format!("Monthly budget set to ${v:.2}."),
                        None => "No monthly ceiling.".to_string(),
                    })
                    .map_err(|e| e.to_string()),
            ));
            version.bump();
        });
    };
    view! {
        <section class="panel" aria-labelledby="budget-heading">
            <h2 id="budget-heading">"Monthly budget"</h2>
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading budget…"</p> }>
                {move || Suspend::new(async move {
                    match budget.await {
                        Ok(b) => view! {
                            <p id="budget-state">{match b.monthly_usd {
                                Some(v) => format!("${:.2} of ${v:.2} committed in {} by OpenRouter runs (each commits its capped key).", b.committed_usd, b.month),
                                None => format!("No ceiling. ${:.2} committed in {} by OpenRouter runs.", b.committed_usd, b.month),
                            }}</p>
                        }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            <form on:submit=save class="paste-row">
                <label for="budget-input">"Ceiling in USD (empty for none)"</label>
                <input id="budget-input" type="text" inputmode="decimal" placeholder="e.g. 25"
                    prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev))/>
                <button type="submit" id="budget-save" disabled=move || busy.get()>"Save"</button>
            </form>
            <p class="hint">"When a run's key would push this month past the ceiling, the run is not started and fails with \"monthly budget reached\". Chutes tokens have no cap, so Chutes runs are not counted."</p>
            <div aria-live="polite">
                {move || outcome.get().map(|r| match r {
                    Ok(text) => view! { <p class="ok" role="status">{text}</p> }.into_any(),
                    Err(text) => view! { <p class="error" role="alert">{text}</p> }.into_any(),
                })}
            </div>
        </section>
    }
}
