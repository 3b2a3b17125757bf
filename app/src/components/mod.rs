pub mod audit_log;
pub mod budget_form;
pub mod dashboard_panels;
pub mod provider_row;
pub mod providers_panel;
pub mod recent_runs;
pub mod sign_out;
pub mod wallet_sign_in;

use leptos::either::Either;
use leptos::prelude::*;

use crate::browser;
use crate::view::Panel;

/// The signed-in line's id: where the focus goes once a miner has signed in.
pub const SIGNED_IN_ID: &str = "signed-in";

/// A message with its web addresses as links (a provider's page to top up, a key page), so
/// that a long address is something to follow, and wraps, rather than text to copy.
pub fn with_links(text: String) -> impl IntoView {
    let mut parts: Vec<Either<String, _>> = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = ["https://", "http://"].iter().filter_map(|scheme| rest.find(scheme)).min() {
        if start > 0 {
            parts.push(Either::Left(rest[..start].to_owned()));
        }
        let after = &rest[start..];
        let mut end = after.find(char::is_whitespace).unwrap_or(after.len());
        // A sentence's own punctuation is not part of the address.
        while end > 0 && after[..end].ends_with(['.', ',', ')', ';', ':']) {
            end -= 1;
        }
        let href = after[..end].to_owned();
        let shown = href.clone();
        parts.push(Either::Right(view! { <a href=href rel="noopener noreferrer" target="_blank">{shown}</a> }));
        rest = &after[end..];
    }
    if !rest.is_empty() {
        parts.push(Either::Left(rest.to_owned()));
    }
    parts
}

/// False until the island runs in the browser. Its buttons stay disabled until then: a click
/// on a server-rendered button whose island has not started would do nothing, silently, and a
/// disabled one says "not yet" (and browser tests wait for it).
pub fn hydrated() -> ReadSignal<bool> {
    let (ready, set_ready) = signal(false);
    // Effects run only in the browser, once the island is hydrated.
    Effect::new(move |_| set_ready.set(true));
    ready
}

/// After a change the server has recorded (and said, for the next render, in the session):
/// the dashboard is loaded again, so that every panel shows the new state as the server reads
/// it, with the focus on the changed panel's heading. The browser carries no code to render
/// the panels themselves, which is most of what the bundle used to be.
pub fn show_change(panel: Panel) {
    browser::reload_at(&format!("/dashboard#{}", panel.heading_id()));
}

/// Where a reloaded dashboard puts the focus, named by the address's fragment.
#[cfg(feature = "hydrate")]
pub fn focus_named_place() {
    let Some(place) = browser::fragment() else { return };
    let known = place == SIGNED_IN_ID || Panel::HEADINGS.contains(&place.as_str());
    if known {
        browser::replace_url("/dashboard");
        browser::focus_when_present(&place);
    }
}
