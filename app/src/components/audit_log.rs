//! The miner's audit log: every connection change, newest last.

use leptos::prelude::*;

use super::DashboardVersion;
use crate::api::load_audit_events;

#[component]
pub fn AuditLog() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let events = Resource::new(move || version.0.get(), |_| load_audit_events());
    view! {
        <section class="panel" aria-labelledby="audit-heading">
            <h2 id="audit-heading">"Activity"</h2>
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading activity…"</p> }>
                {move || Suspend::new(async move {
                    match events.await {
                        Ok(list) if list.events.is_empty() => view! { <p class="hint">"Nothing yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <table class="audit">
                                <thead><tr><th scope="col">"When (UTC)"</th><th scope="col">"Provider"</th><th scope="col">"What happened"</th></tr></thead>
                                <tbody>
                                    {list.events.into_iter().rev().map(|e| view! {
                                        <tr>
                                            <td>{e.at.replace('T', " ").replace("+00:00", "")}</td>
                                            <td>{e.provider.map(|p| p.display_name()).unwrap_or("")}</td>
                                            <td>{e.detail}</td>
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
