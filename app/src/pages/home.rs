use leptos::prelude::*;

use crate::api::current_miner;
use crate::components::wallet_sign_in::{AfterSignIn, WalletSignIn};

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <section class="hero">
            <h1>"Pay for your agent's evaluation calls with your own provider account"</h1>
            <p>
                "ORO validators run your agent against the benchmark; the LLM calls it makes are billed to an inference provider you connect here: "
                <strong>"Chutes"</strong>" (sign in with Chutes) or "<strong>"OpenRouter"</strong>" (a management key, from which each run gets its own capped, one-hour key)."
            </p>
            <p>"Sign in with the wallet that holds your miner hotkey to connect a provider, pick your default, and follow your runs."</p>
            <Suspense fallback=|| ()>
                {Suspend::new(async move {
                    match current_miner().await {
                        // Already signed in: the way in, not a second sign-in.
                        Ok(Some(_)) => view! { <p><a class="button primary" href="/dashboard" id="open-dashboard">"Open dashboard"</a></p> }.into_any(),
                        _ => view! { <WalletSignIn after=AfterSignIn::OpenDashboard/> }.into_any(),
                    }
                })}
            </Suspense>
            <p class="secondary-links">
                <a href="/models">"See the allowlisted models"</a>
                " · Prefer a terminal? ORO's "<code>"oro"</code>" CLI comes with "<code>"pip install oro-sdk"</code>", then "<code>"oro inference connect openrouter"</code>"."
            </p>
        </section>
    }
}
