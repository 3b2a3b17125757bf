pub mod audit_log;
pub mod dashboard_panels;
pub mod provider_row;
pub mod providers_panel;
pub mod recent_runs;
pub mod sign_out;
pub mod wallet_sign_in;

use leptos::either::Either;
use leptos::prelude::*;

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

/// Bumped after every change on the dashboard, so its panels fetch again.
#[derive(Clone, Copy)]
pub struct DashboardVersion(pub RwSignal<u32>);

impl DashboardVersion {
    pub fn bump(self) {
        self.0.update(|v| *v += 1);
    }
}

/// The last outcome of an action on each provider row. Owned by the dashboard (not the row),
/// because a successful action refetches the panel, which rebuilds the rows.
#[derive(Clone, Copy)]
pub struct RowResults(pub RwSignal<std::collections::HashMap<wire::Provider, Result<String, String>>>);

impl RowResults {
    pub fn get(self, provider: wire::Provider) -> Option<Result<String, String>> {
        self.0.with(|m| m.get(&provider).cloned())
    }

    pub fn set(self, provider: wire::Provider, result: Option<Result<String, String>>) {
        self.0.update(|m| match result {
            Some(r) => {
                m.insert(provider, r);
            }
            None => {
                m.remove(&provider);
            }
        });
    }
}
