//! One provider's row: its state, its balance, Connect, Default and Disconnect. An island: the
//! server renders the row, the browser runs its actions. A change that went through reloads
//! the dashboard, which shows it with the sentence the server kept (`said`); a refusal is said
//! here, with what the miner typed left in place.

use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wire::Provider;

use crate::api::call::{begin_chutes_connect, check_balance, connect_openrouter, disconnect_provider, set_default_provider};
use crate::browser;
use crate::view::Panel;

/// What the pasted key looks like, checked as the miner types (the server checks again).
fn openrouter_key_hint(key: &str) -> Option<String> {
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    let Some(rest) = key.strip_prefix("sk-or-v1-") else {
        return Some(if "sk-or-v1-".starts_with(key) { String::new() } else { "OpenRouter keys start with sk-or-v1-".into() });
    };
    if !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some("The key contains a character OpenRouter keys never have (a space or a quote?)".into());
    }
    match rest.len() {
        n if n < 64 => Some(format!("{} more characters expected", 64 - n)),
        64 => Some(String::new()),
        _ => Some("Too long: OpenRouter keys have 64 characters after sk-or-v1-".into()),
    }
}

#[island]
pub fn ProviderRow(
    provider: Provider,
    connected: bool,
    is_default: bool,
    /// "Connected since …", "Not connected", or that it needs re-consent (said on the server).
    state: String,
    needs_reconsent: bool,
    /// The credential's masked label.
    label: Option<String>,
    /// The other provider, when it is connected too: it takes over as the default.
    other_connected: Option<Provider>,
    /// What the change that reloaded the page came to, when it was made in this row.
    said: Option<String>,
) -> impl IntoView {
    let name = provider.display_name();
    let id = provider.as_str();
    let busy = RwSignal::new(false);
    let ready = super::hydrated();
    let blocked = move || busy.get() || !ready.get();
    let result: RwSignal<Option<Result<String, String>>> = RwSignal::new(said.map(Ok));
    let confirming = RwSignal::new(false);
    let show_paste = RwSignal::new(false);
    let key = RwSignal::new(String::new());

    // Whether the account can pay the next run: OpenRouter's credits as soon as the row is
    // shown (in the browser; a cheap read), Chutes on request (a 1-token call).
    let balance: RwSignal<Option<Result<crate::view::BalanceView, String>>> = RwSignal::new(None);
    let checking = RwSignal::new(false);
    let check = move || {
        checking.set(true);
        spawn_local(async move {
            let result = check_balance(provider).await.map_err(|e| e.to_string());
            checking.set(false);
            balance.set(Some(result));
        });
    };
    Effect::new(move |_| {
        if connected && provider == Provider::OpenRouter {
            check();
        }
    });

    // A change: made, then shown by the page loaded again (busy until then); refused, said here.
    let run = move |work: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>| {
        busy.set(true);
        result.set(None);
        spawn_local(async move {
            match work.await {
                Ok(()) => super::show_change(Panel::Provider(provider)),
                Err(e) => {
                    busy.set(false);
                    result.set(Some(Err(e)));
                }
            }
        });
    };

    let connect_chutes = move |_| {
        busy.set(true);
        result.set(None);
        spawn_local(async move {
            match begin_chutes_connect().await {
                Ok(url) => {
                    result.set(Some(Ok("Taking you to Chutes to approve access…".into())));
                    browser::navigate_away(&url);
                }
                Err(e) => {
                    busy.set(false);
                    result.set(Some(Err(e.to_string())));
                }
            }
        });
    };

    let submit_key = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let credential = key.get_untracked().trim().to_string();
        if credential.is_empty() {
            result.set(Some(Err("Paste your key first.".into())));
            return;
        }
        if let Some(hint) = openrouter_key_hint(&credential).filter(|h| !h.is_empty()) {
            result.set(Some(Err(hint)));
            return;
        }
        run(Box::pin(async move {
            connect_openrouter(credential).await.map_err(|e| e.to_string())?;
            key.set(String::new());
            Ok(())
        }));
    };

    let make_default = move |_| {
        run(Box::pin(async move { set_default_provider(provider).await.map_err(|e| e.to_string()) }));
    };

    let confirm_id = format!("{id}-confirm-disconnect");
    let cancel_id = format!("{id}-cancel-disconnect");
    let disconnect_id = format!("{id}-disconnect");
    let open_confirmation = {
        let confirm_id = confirm_id.clone();
        move |_| {
            confirming.set(true);
            browser::focus_when_present(&confirm_id);
        }
    };
    let close_confirmation = {
        let disconnect_id = disconnect_id.clone();
        move || {
            confirming.set(false);
            browser::focus_when_present(&disconnect_id);
        }
    };
    // A modal question: Tab stays on its two buttons, Escape answers "Cancel".
    let dialog_keys = {
        let (confirm_id, cancel_id, close) = (confirm_id.clone(), cancel_id.clone(), close_confirmation.clone());
        move |ev: leptos::ev::KeyboardEvent| match ev.key().as_str() {
            "Escape" => {
                ev.prevent_default();
                close();
            }
            "Tab" => {
                ev.prevent_default();
                let next = if browser::focused_id().as_deref() == Some(confirm_id.as_str()) { &cancel_id } else { &confirm_id };
                browser::focus_when_present(next);
            }
            _ => {}
        }
    };
    // Escape answers "Cancel" wherever the focus is while the question is open: a click outside
    // can take the focus out of the dialog, and then its own handler hears nothing. (A key the
    // dialog handled arrives here already handled.)
    let escape_anywhere = window_event_listener(leptos::ev::keydown, {
        let close = close_confirmation.clone();
        move |ev: leptos::ev::KeyboardEvent| {
            if ev.key() == "Escape" && !ev.default_prevented() && confirming.get_untracked() {
                ev.prevent_default();
                close();
            }
        }
    });
    on_cleanup(move || escape_anywhere.remove());
    let disconnect = move |_| {
        confirming.set(false);
        run(Box::pin(async move { disconnect_provider(provider).await.map_err(|e| e.to_string()) }));
    };

    let disconnect_consequence = match provider {
        Provider::OpenRouter => {
            "We forget your management key. Per-run keys minted with it are disabled, not deleted, so you still see their spend at OpenRouter."
        }
        Provider::Chutes => "We revoke our access at Chutes and forget the refresh token.",
    };
    let default_reason_id = format!("{id}-default-reason");
    let key_hint_id = format!("{id}-key-hint");

    view! {
        <div class="provider-head">
            <h3>{name}</h3>
            <p class="provider-state" class:warn=needs_reconsent>{state}</p>
            {label.map(|l| view! { <p class="credential-label">"Credential: "<code>{l}</code></p> })}
            {connected.then(|| view! {
                <p class="balance" id=format!("{id}-balance") aria-live="polite">
                    {move || match balance.get() {
                        Some(Ok(b)) => EitherOf4::A(view! { <span class:warn=!b.can_pay_a_run>{super::with_links(b.message)}</span> }),
                        Some(Err(e)) => EitherOf4::B(view! { <span class="warn">{format!("The balance could not be read: {e}")}</span> }),
                        None if checking.get() => EitherOf4::C(view! { <span class="hint">"Checking the balance…"</span> }),
                        None => EitherOf4::D(()),
                    }}
                    {(provider == Provider::Chutes).then(|| view! {
                        " "
                        <button type="button" class="link-like" id="chutes-check-balance" on:click=move |_| check() disabled=move || checking.get() || !ready.get()>
                            "Check that Chutes can pay"
                        </button>
                    })}
                </p>
            })}
        </div>
        <div class="provider-actions">
            <button type="button" class="default-toggle" id=format!("{id}-default")
                aria-pressed=is_default.to_string()
                disabled=move || !connected || is_default || blocked()
                aria-describedby=default_reason_id.clone()
                title=if connected { if is_default { "This is your default provider" } else { "Use this provider for your next runs" } } else { "Connect this provider before making it the default" }
                on:click=make_default>
                {if is_default { "Default ✓" } else { "Make default" }}
            </button>
            <span class="visually-hidden" id=default_reason_id>
                {if connected { if is_default { "This is your default provider." } else { "" } } else { "Disabled: connect this provider before making it the default." }}
            </span>
            {match provider {
                Provider::Chutes => Either::Left(view! {
                    <button type="button" class="connect" id="chutes-connect" on:click=connect_chutes disabled=blocked>
                        {if connected { "Reconnect" } else { "Connect Chutes" }}
                    </button>
                }),
                Provider::OpenRouter => Either::Right(view! {
                    <button type="button" class="connect" id="openrouter-connect" aria-expanded=move || show_paste.get().to_string()
                        aria-controls="openrouter-paste" on:click=move |_| show_paste.update(|s| *s = !*s) disabled=blocked>
                        {if connected { "Replace key" } else { "Connect OpenRouter" }}
                    </button>
                }),
            }}
            {connected.then(|| view! {
                <button type="button" class="danger" id=disconnect_id.clone() on:click=open_confirmation.clone() disabled=blocked>
                    "Disconnect"
                </button>
            })}
        </div>
        {(provider == Provider::OpenRouter).then(|| view! {
            <form id="openrouter-paste" class="paste-form" on:submit=submit_key hidden=move || !show_paste.get()>
                <label for="openrouter-key">"OpenRouter management key"</label>
                <p class="hint">"Paste a management key (not an inference key) from openrouter.ai/settings/management-keys. We mint a capped, one-hour key for each run from it."</p>
                <div class="paste-row">
                    <input id="openrouter-key" name="credential" type="password" autocomplete="off" spellcheck="false"
                        placeholder="sk-or-v1-…" aria-describedby=key_hint_id.clone()
                        prop:value=move || key.get() on:input=move |ev| key.set(event_target_value(&ev))/>
                    <button type="submit" class="primary" id="openrouter-submit" disabled=blocked>"Connect"</button>
                </div>
                <p class="key-hint" id=key_hint_id aria-live="polite">{move || openrouter_key_hint(&key.get()).unwrap_or_default()}</p>
            </form>
        })}
        <div role="alertdialog" aria-modal="true" class="confirm" aria-labelledby=format!("{id}-confirm-title") hidden=move || !confirming.get()
            on:keydown=dialog_keys>
            <p id=format!("{id}-confirm-title")><strong>{format!("Disconnect {name}?")}</strong></p>
            <p>{disconnect_consequence}</p>
            <p>{match (is_default, other_connected) {
                (true, Some(other)) => format!("It is your default provider: {} becomes your default.", other.display_name()),
                (true, None) => "It is your only provider: your next submission will need one connected first.".to_string(),
                (false, _) => "Your default provider does not change.".to_string(),
            }}</p>
            <button type="button" class="danger" id=confirm_id on:click=disconnect>"Yes, disconnect"</button>
            <button type="button" id=cancel_id on:click=move |_| close_confirmation()>"Cancel"</button>
        </div>
        <div class="row-result" aria-live="polite">
            {move || busy.get().then(|| view! { <p class="progress" role="status"><span class="spinner" aria-hidden="true"></span>"Working…"</p> })}
            {move || result.get().map(|r| match r {
                Ok(text) => Either::Left(view! { <p class="ok" role="status">{super::with_links(text)}</p> }),
                Err(text) => Either::Right(view! { <p class="error" role="alert">{super::with_links(text)}</p> }),
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::openrouter_key_hint;

    #[test]
    fn key_hints_guide_the_paste() {
        assert_eq!(openrouter_key_hint(""), None);
        assert_eq!(openrouter_key_hint("sk-or"), Some(String::new()));
        assert!(openrouter_key_hint("sk-ant-123").unwrap().contains("start with"));
        assert!(openrouter_key_hint("sk-or-v1-abc").unwrap().contains("61 more"));
        assert_eq!(openrouter_key_hint(&format!("sk-or-v1-{}", "a".repeat(64))), Some(String::new()));
        assert!(openrouter_key_hint(&format!("sk-or-v1-{} ", "a".repeat(63))).unwrap().contains("more"));
    }
}
