//! Sign out, and the focus after the page was loaded again: the one island of the signed-in
//! line, present on every signed-in dashboard. It renders nothing of its own: the server renders
//! the button, the island runs it (`live`).

use leptos::prelude::*;

#[component]
pub fn SignOut() -> impl IntoView {
    view! {
        <SignOutActions>
            // Enabled by the island once it runs: before, a click would do nothing.
            <button type="button" id="sign-out" disabled>"Sign out"</button>
            <div id="sign-out-said"></div>
        </SignOutActions>
    }
}

#[island]
fn SignOutActions(children: Children) -> impl IntoView {
    // Just signed in, or a change was made (the page reloads at `#signed-in` or at the changed
    // panel's heading): the focus goes where the page changed, and the fragment leaves the
    // address bar.
    Effect::new(|_| live::start());
    view! { <div class="island-events" on:click=|ev| live::clicked(&ev)>{children()}</div> }
}

#[cfg(feature = "hydrate")]
mod live {
    use leptos::task::spawn_local;

    use crate::api::call::sign_out;
    use crate::browser::dom::{self, Event, Outcome};
    use crate::browser::{self};

    pub fn start() {
        dom::enable("#sign-out");
        crate::components::focus_named_place();
    }

    pub fn clicked(ev: &Event) {
        let Some(button) = dom::target_button(ev).filter(|b| b.id() == "sign-out") else { return };
        dom::set_disabled(&button, true);
        spawn_local(async move {
            match sign_out().await {
                // The server renders the signed-out page.
                Ok(()) => browser::reload_at("/dashboard"),
                Err(e) => {
                    dom::set_disabled(&button, false);
                    if let Some(place) = dom::by_id("sign-out-said") {
                        dom::say(&place, "p", "sign-out-failure", Outcome::Refused, &e.to_string());
                    }
                }
            }
        });
    }
}

/// Off the browser the island is never run.
#[cfg(not(feature = "hydrate"))]
mod live {
    pub fn start() {}
    pub fn clicked(_: &leptos::ev::MouseEvent) {}
}
