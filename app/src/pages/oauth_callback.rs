//! Where Chutes sends the miner back after consent. The code exchange runs once, in the
//! browser after hydration (never during a server render, which a reload could repeat).

use leptos::either::EitherOf3;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::call::finish_chutes_connect;
use crate::browser;

/// What the page says once it knows.
const CONNECTED: &str = "Chutes is connected. Your runs can now bill your Chutes account.";

#[component]
pub fn OAuthCallbackPage() -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="oauth-heading">
            <h1 id="oauth-heading">"Connecting Chutes"</h1>
            <OAuthFinisher/>
            <p><a href="/dashboard" id="back-to-dashboard">"Back to the dashboard"</a></p>
        </section>
    }
}

/// The exchange and what came of it: the page's island. It reads the answer from the address
/// in the browser (the server never sees a render with the code in it).
#[island]
fn OAuthFinisher() -> impl IntoView {
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    Effect::new(move |_| {
        let state = browser::query_param("state").unwrap_or_default();
        let code = browser::query_param("code");
        let error = browser::query_param("error");
        // The code is single-use and the state is spent either way: keep neither in the address
        // bar or the history (a reload then asks the service what is true, below).
        browser::replace_url("/oauth/chutes/callback");
        spawn_local(async move {
            // With no state (a reload of this page), the server says what is true now.
            let result = finish_chutes_connect(state, code, error).await.map(|_| CONNECTED.to_string()).map_err(|e| e.to_string());
            outcome.set(Some(result));
        });
    });
    view! {
        <div aria-live="polite" id="oauth-result">
                {move || match outcome.get() {
                    None => EitherOf3::A(view! { <p class="progress" role="status"><span class="spinner" aria-hidden="true"></span>"Finishing the connection with Chutes…"</p> }),
                    Some(Ok(text)) => EitherOf3::B(view! { <p class="ok" role="status">{text}</p> }),
                    Some(Err(text)) => EitherOf3::C(view! { <p class="error" role="alert">"Chutes was not connected: "{crate::components::with_links(text)}</p> }),
                }}
        </div>
    }
}
