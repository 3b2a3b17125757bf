//! Sign out, and the focus after the page was loaded again: the one island of the signed-in
//! line, present on every signed-in dashboard.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::call::sign_out;
use crate::browser;

#[island]
pub fn SignOut() -> impl IntoView {
    let signing_out = RwSignal::new(false);
    let failed: RwSignal<Option<String>> = RwSignal::new(None);
    // Just signed in, or a change was made (the page reloads at `#signed-in` or at the changed
    // panel's heading): the focus goes where the page changed, and the fragment leaves the
    // address bar.
    Effect::new(move |_| super::focus_named_place());
    let do_sign_out = move |_| {
        signing_out.set(true);
        spawn_local(async move {
            match sign_out().await {
                // The server renders the signed-out page.
                Ok(()) => browser::reload_at("/dashboard"),
                Err(e) => {
                    signing_out.set(false);
                    failed.set(Some(e.to_string()));
                }
            }
        });
    };
    view! {
        <button type="button" id="sign-out" on:click=do_sign_out disabled=move || signing_out.get()>"Sign out"</button>
        {move || failed.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
    }
}
