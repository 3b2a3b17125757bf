//! The dashboard, rendered whole on the server for the session's miner (or the sign-in when
//! there is none). The browser runs only its islands: the wallet sign-in, sign-out, and the
//! panels' controls.

use leptos::prelude::*;

use crate::api::{current_miner, load_dashboard};
use crate::components::SIGNED_IN_ID;
use crate::components::dashboard_panels::DashboardPanels;
use crate::components::sign_out::SignOut;
use crate::components::wallet_sign_in::{AfterSignIn, WalletSignIn};

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! {
        <h1>"Dashboard"</h1>
        <Suspense fallback=|| view! { <p class="progress" role="status">"Loading…"</p> }>
            {Suspend::new(async move {
                match current_miner().await {
                    Ok(Some(hotkey)) => {
                        let panels = match load_dashboard().await {
                            Ok(data) => view! { <DashboardPanels data=data/> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        };
                        view! {
                            <div class="signed-in">
                                <p id=SIGNED_IN_ID tabindex="-1">"Signed in as "<code id="signed-in-hotkey">{hotkey}</code></p>
                                <SignOut/>
                            </div>
                            {panels}
                        }.into_any()
                    }
                    Ok(None) => view! {
                        <section class="panel">
                            <h2>"Sign in"</h2>
                            <p>"Connect the wallet that holds your miner hotkey. You will sign a short message; it costs nothing and grants no transfer."</p>
                            <WalletSignIn after=AfterSignIn::ShowDashboard/>
                        </section>
                    }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
