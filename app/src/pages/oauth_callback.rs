//! Where Chutes sends the miner back after consent. The code exchange runs once, in the
//! browser after hydration (never during a server render, which a reload could repeat).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_query_map;

use crate::api::finish_chutes_connect;

#[component]
pub fn OAuthCallbackPage() -> impl IntoView {
    let query = use_query_map();
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    Effect::new(move |_| {
        let q = query.get_untracked();
        let state = q.get("state").unwrap_or_default();
        let code = q.get("code");
        let error = q.get("error");
        if state.is_empty() {
            outcome.set(Some(Err(
                "This page needs the answer from Chutes (state and code are missing). Start again from the dashboard.".into()
            )));
            return;
        }
        spawn_local(async move {
            let result = finish_chutes_connect(state, code, error).await;
            outcome.set(Some(
                result.map(|_| "Chutes is connected. Your runs can now bill your Chutes account.".to_string()).map_err(|e| e.to_string()),
            ));
        });
    });
    view! {
        <section class="panel" aria-labelledby="oauth-heading">
            <h1 id="oauth-heading">"Connecting Chutes"</h1>
            <div aria-live="polite" id="oauth-result">
                {move || match outcome.get() {
                    None => view! { <p class="progress" role="status"><span class="spinner" aria-hidden="true"></span>"Finishing the connection with Chutes…"</p> }.into_any(),
                    Some(Ok(text)) => view! { <p class="ok" role="status">{text}</p> }.into_any(),
                    Some(Err(text)) => view! { <p class="error" role="alert">"Chutes was not connected: "{text}</p> }.into_any(),
                }}
            </div>
            <p><a href="/dashboard" id="back-to-dashboard">"Back to the dashboard"</a></p>
        </section>
    }
}
