use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{current_miner, sign_out};
use crate::components::audit_log::AuditLog;
use crate::components::providers_panel::ProvidersPanel;
use crate::components::recent_runs::{BudgetPanel, RecentRuns};
use crate::components::wallet_sign_in::WalletSignIn;
use crate::components::{DashboardVersion, RowResults};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let session_version = RwSignal::new(0u32);
    provide_context(DashboardVersion(RwSignal::new(0)));
    provide_context(RowResults(RwSignal::new(Default::default())));
    let miner = Resource::new(move || session_version.get(), |_| current_miner());
    let signing_out = RwSignal::new(false);
    let do_sign_out = move |_| {
        signing_out.set(true);
        spawn_local(async move {
            let _ = sign_out().await;
            signing_out.set(false);
            session_version.update(|v| *v += 1);
        });
    };
    view! {
        <h1>"Dashboard"</h1>
        <Transition fallback=|| view! { <p class="progress" role="status">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match miner.await {
                    Ok(Some(hotkey)) => view! {
                        <div class="signed-in">
                            <p id="signed-in" tabindex="-1">"Signed in as "<code id="signed-in-hotkey">{hotkey}</code></p>
                            <button type="button" id="sign-out" on:click=do_sign_out disabled=move || signing_out.get()>"Sign out"</button>
                        </div>
                        <ProvidersPanel/>
                        <RecentRuns/>
                        <BudgetPanel/>
                        <AuditLog/>
                    }.into_any(),
                    Ok(None) => view! {
                        <section class="panel">
                            <h2>"Sign in"</h2>
                            <p>"Connect the wallet that holds your miner hotkey. You will sign a short message; it costs nothing and grants no transfer."</p>
                            <WalletSignIn on_signed_in=Callback::new(move |_| {
                                session_version.update(|v| *v += 1);
                                // Where the page changed: the signed-in line, not <body>.
                                crate::browser::focus_when_present("signed-in");
                            })/>
                        </section>
                    }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}
