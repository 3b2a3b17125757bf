//! The Inference Providers panel: one row per provider.

use leptos::prelude::*;

use super::DashboardVersion;
use super::provider_row::ProviderRow;
use crate::api::load_provider_status;

#[component]
pub fn ProvidersPanel() -> impl IntoView {
    let version = expect_context::<DashboardVersion>();
    let status = Resource::new(move || version.0.get(), |_| load_provider_status());
    view! {
        <section class="panel" aria-labelledby="providers-heading">
            <h2 id="providers-heading" tabindex="-1">"Inference providers"</h2>
            <p class="hint">"Your evaluation runs call models on the provider you choose as default. Changing the default applies from the next claimed run; runs already started finish where they began."</p>
            <Transition fallback=|| view! { <p class="progress" role="status">"Loading your connections…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(list) => {
                            let nothing_connected = list.providers.iter().all(|p| !p.connected);
                            let connected: Vec<wire::Provider> = list.providers.iter().filter(|p| p.connected).map(|p| p.provider).collect();
                            view! {
                                {nothing_connected.then(|| view! {
                                    <p class="notice" role="status" id="no-provider-notice">
                                        "No provider connected: your next submission needs one. Connect Chutes or OpenRouter below."
                                    </p>
                                })}
                                <ul class="provider-rows">
                                    {list.providers.into_iter().map(|p| {
                                        let other_connected = connected.iter().copied().find(|c| *c != p.provider);
                                        view! { <ProviderRow status=p other_connected=other_connected/> }
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        }
                        Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
