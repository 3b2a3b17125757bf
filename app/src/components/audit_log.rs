//! The miner's audit log: every connection change, newest last.

use leptos::either::EitherOf3;
use leptos::prelude::*;
use wire::api::AuditEvents;

use crate::error::AppError;

#[component]
pub fn AuditLog(events: Result<AuditEvents, AppError>) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="audit-heading">
            <h2 id="audit-heading">"Activity"</h2>
            {match events {
                Ok(list) if list.events.is_empty() => EitherOf3::A(view! { <p class="hint">"Nothing yet."</p> }),
                Ok(list) => EitherOf3::B(view! {
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
                }),
                Err(e) => EitherOf3::C(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
        </section>
    }
}
