//! The miner's recent evaluation runs: provider, status, reason, cap and spend.

use leptos::prelude::*;

use super::DashboardVersion;
use crate::api::load_runs;

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
