//! The Inference Providers panel: one row per provider, each row's actions an island.

use leptos::either::Either;
use leptos::prelude::*;
use wire::api::{ConnectionState, InferenceAuthList, ProviderStatus};

use super::provider_row::ProviderRow;
use crate::error::AppError;
use crate::view::{Panel, Said};

/// A row's state, in words.
fn state_text(status: &ProviderStatus) -> String {
    match status.state {
        Some(ConnectionState::Connected) => {
            format!("Connected since {}", status.updated_at.clone().unwrap_or_default().replace('T', " ").replace("+00:00", " UTC"))
        }
        Some(ConnectionState::NeedsReconsent) => {
            "Needs re-consent: the provider no longer accepts the stored credential. Connect again.".to_string()
        }
        _ => "Not connected".to_string(),
    }
}

#[component]
pub fn ProvidersPanel(status: Result<InferenceAuthList, AppError>, said: Option<Said>) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="providers-heading">
            <h2 id="providers-heading" tabindex="-1">"Inference providers"</h2>
            <p class="hint">"Your evaluation runs call models on the provider you choose as default. Changing the default applies from the next claimed run; runs already started finish where they began."</p>
            {match status {
                Ok(list) => {
                    let nothing_connected = list.providers.iter().all(|p| !p.connected);
                    let connected: Vec<wire::Provider> = list.providers.iter().filter(|p| p.connected).map(|p| p.provider).collect();
                    Either::Left(view! {
                        {nothing_connected.then(|| view! {
                            <p class="notice" role="status" id="no-provider-notice">
                                "No provider connected: your next submission needs one. Connect Chutes or OpenRouter below."
                            </p>
                        })}
                        <ul class="provider-rows">
                            {list.providers.into_iter().map(|p| {
                                let other_connected = connected.iter().copied().find(|c| *c != p.provider);
                                let row_said = said.as_ref().filter(|s| s.panel == Panel::Provider(p.provider)).map(|s| s.text.clone());
                                let (row_id, connected) = (format!("provider-{}", p.provider.as_str()), p.connected.to_string());
                                let needs_reconsent = p.state == Some(ConnectionState::NeedsReconsent);
                                let state = state_text(&p);
                                view! {
                                    <li class="provider-row" id=row_id data-connected=connected>
                                        <ProviderRow provider=p.provider connected=p.connected is_default=p.is_default state=state
                                            needs_reconsent=needs_reconsent label=p.label other_connected=other_connected said=row_said/>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    })
                }
                Err(e) => Either::Right(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
        </section>
    }
}
