//! Connect wallet: find the injected wallets, pick an account, sign the server's sign-in
//! message. Every step shows where it is; every failure says what to do next.

use leptos::prelude::*;

const KNOWN_WALLETS: [(&str, &str, &str); 3] = [
    ("polkadot-js", "polkadot{.js}", "https://polkadot.js.org/extension/"),
    ("talisman", "Talisman", "https://talisman.xyz/"),
    ("subwallet-js", "SubWallet", "https://www.subwallet.app/"),
];

/// Where a signed-in miner goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSignIn {
    /// To the dashboard (from the home page).
    OpenDashboard,
    /// The dashboard again, now rendered for the miner, with the focus on the signed-in line.
    ShowDashboard,
}

impl AfterSignIn {
    /// As the page carries it for the island (`data-after`).
    fn as_str(self) -> &'static str {
        match self {
            AfterSignIn::OpenDashboard => "open-dashboard",
            AfterSignIn::ShowDashboard => "show-dashboard",
        }
    }

    /// Read back from the page; the home page's when the page says nothing known.
    #[cfg(feature = "hydrate")]
    fn from_page(value: &str) -> Self {
        if value == AfterSignIn::ShowDashboard.as_str() { AfterSignIn::ShowDashboard } else { AfterSignIn::OpenDashboard }
    }
}

/// Connect wallet, rendered here with the notice for a browser without a wallet; the steps in
/// between (which wallet, which account, waiting for the signature) are written into
/// `wallet-step` by the island.
#[component]
pub fn WalletSignIn(after: AfterSignIn) -> impl IntoView {
    view! {
        <WalletSteps>
            <div class="wallet-sign-in" data-after=after.as_str()>
                // Enabled by the island once it runs: before, a click would do nothing.
                <button type="button" class="primary" id="connect-wallet" disabled>"Connect wallet"</button>
                <div aria-live="polite" class="wallet-step" id="wallet-step"></div>
                // Shown when no wallet is found (only then is it on the page).
                <template id="no-wallet-notice">
                    <div class="notice" role="status" id="no-wallet">
                        <p>"No wallet extension found in this browser. Install one, create or import your hotkey account, then reload this page:"</p>
                        <ul>
                            {KNOWN_WALLETS.iter().map(|(_, name, url)| view! {
                                <li><a href=*url target="_blank" rel="noopener noreferrer">{*name}</a></li>
                            }).collect_view()}
                        </ul>
                    </div>
                </template>
            </div>
        </WalletSteps>
    }
}

/// The sign-in's island: it hears the clicks on Connect wallet and on the wallets and accounts
/// it lists, on the page the server rendered (its children).
#[island]
fn WalletSteps(children: Children) -> impl IntoView {
    Effect::new(|_| live::start());
    view! { <div class="island-events" on:click=|ev| live::clicked(&ev)>{children()}</div> }
}

#[cfg(feature = "hydrate")]
mod live {
    use leptos::task::spawn_local;

    use super::{AfterSignIn, KNOWN_WALLETS};
    use crate::api::call::{begin_sign_in, finish_sign_in};
    use crate::browser::dom::{self, Element, Event, Outcome};
    use crate::browser::{self, WalletAccount};

    fn wallet_name(id: &str) -> String {
        KNOWN_WALLETS.iter().find(|(k, ..)| *k == id).map(|(_, n, _)| n.to_string()).unwrap_or_else(|| id.to_string())
    }

    async fn sign_in(wallet: String, address: String) -> Result<(), String> {
        let message = begin_sign_in(address.clone()).await.map_err(|e| e.to_string())?;
        let signature = browser::wallet_sign(&wallet, &address, &message)
            .await
            .map_err(|e| format!("The wallet did not sign ({e}). Nothing was changed; try again."))?;
        finish_sign_in(message, signature).await.map_err(|e| e.to_string())
    }

    /// The session cookie is set: load the signed-in page (the server renders it whole).
    fn go(after: AfterSignIn) {
        match after {
            AfterSignIn::OpenDashboard => browser::navigate_away("/dashboard"),
            // The fragment names where the page changed; the dashboard moves the focus there.
            AfterSignIn::ShowDashboard => browser::reload_at(&format!("/dashboard#{}", crate::components::SIGNED_IN_ID)),
        }
    }

    /// Connect wallet: disabled while a step works, enabled when the miner has a choice.
    fn connect_enabled(enabled: bool) {
        if let Some(button) = dom::by_id("connect-wallet") {
            dom::set_disabled(&button, !enabled);
        }
    }

    /// Where the steps are written, emptied.
    fn step() -> Option<Element> {
        let place = dom::by_id("wallet-step")?;
        place.set_text_content(None);
        Some(place)
    }

    fn working(text: &str) {
        connect_enabled(false);
        let Some(place) = step() else { return };
        let Some(p) = dom::add(&place, "p", "progress") else { return };
        let _ = p.set_attribute("role", "status");
        if let Some(spinner) = dom::add(&p, "span", "spinner") {
            let _ = spinner.set_attribute("aria-hidden", "true");
        }
        dom::add_text(&p, text);
    }

    fn failed(text: &str) {
        connect_enabled(true);
        if let Some(place) = step() {
            dom::say(&place, "p", "wallet-failure", Outcome::Refused, text);
        }
    }

    /// A button of a choice: a wallet (its name) or an account (its name and address).
    struct Choice<'a> {
        class: &'static str,
        /// What the button chooses (`data-choice`): a wallet's id or an account's address.
        value: &'a str,
        name: String,
        address: Option<&'a str>,
    }

    /// A fieldset of buttons under `legend`, enabling Connect wallet again.
    fn choose(legend: &str, choices: &[Choice]) -> Option<Element> {
        connect_enabled(true);
        let place = step()?;
        let fieldset = dom::add(&place, "fieldset", "")?;
        dom::add_text(&dom::add(&fieldset, "legend", "")?, legend);
        // Accounts are a list (as the stylesheet lays them out); wallets, buttons in a row.
        let accounts = choices.iter().any(|c| c.address.is_some()).then(|| dom::add(&fieldset, "ul", "accounts")).flatten();
        for choice in choices {
            let parent = match &accounts {
                Some(list) => dom::add(list, "li", ""),
                None => Some(fieldset.clone()),
            };
            let Some(button) = parent.and_then(|p| dom::add(&p, "button", choice.class)) else { continue };
            let _ = button.set_attribute("type", "button");
            let _ = button.set_attribute("data-choice", choice.value);
            match choice.address {
                Some(address) => {
                    if let Some(name) = dom::add(&button, "span", "account-name") {
                        dom::add_text(&name, &choice.name);
                    }
                    if let Some(code) = dom::add(&button, "code", "") {
                        dom::add_text(&code, address);
                    }
                }
                None => dom::add_text(&button, &choice.name),
            }
        }
        Some(fieldset)
    }

    fn choose_wallet(wallets: &[String]) {
        let choices: Vec<_> = wallets.iter().map(|w| Choice { class: "wallet", value: w, name: wallet_name(w), address: None }).collect();
        focus_first(choose("Choose a wallet", &choices));
    }

    fn choose_account(wallet: &str, accounts: &[WalletAccount]) {
        let choices: Vec<_> = accounts
            .iter()
            .map(|a| Choice {
                class: "account",
                value: &a.address,
                name: if a.name.is_empty() { "Account".to_string() } else { a.name.clone() },
                address: Some(&a.address),
            })
            .collect();
        let fieldset = choose("Choose the hotkey account to sign in with", &choices);
        if let Some(fieldset) = &fieldset {
            let _ = fieldset.set_attribute("data-wallet", wallet);
        }
        focus_first(fieldset);
    }

    fn focus_first(within: Option<Element>) {
        if let Some(button) = within.and_then(|f| dom::first_in(&f, "button")) {
            dom::focus(&button);
        }
    }

    pub fn start() {
        connect_enabled(true);
    }

    fn load_accounts(wallet: String) {
        working(&format!("Asking {} for your accounts…", wallet_name(&wallet)));
        spawn_local(async move {
            match browser::wallet_accounts(&wallet).await {
                Ok(accounts) if accounts.is_empty() => failed(&format!(
                    "{} shared no accounts. Create or import an account in the wallet, allow this site, and try again.",
                    wallet_name(&wallet)
                )),
                Ok(accounts) => choose_account(&wallet, &accounts),
                Err(e) => failed(&format!("{} refused access: {e}", wallet_name(&wallet))),
            }
        });
    }

    pub fn clicked(ev: &Event) {
        let Some(button) = dom::target_button(ev) else { return };
        if button.id() == "connect-wallet" {
            let wallets = browser::installed_wallets();
            match wallets.len() {
                0 => {
                    if let Some(place) = step() {
                        dom::add_template(&place, "no-wallet-notice");
                    }
                }
                1 => load_accounts(wallets[0].clone()),
                _ => choose_wallet(&wallets),
            }
        } else if dom::has_class(&button, "wallet") {
            load_accounts(dom::attr(&button, "data-choice"));
        } else if dom::has_class(&button, "account") {
            let address = dom::attr(&button, "data-choice");
            let wallet = button.closest("fieldset").ok().flatten().map(|f| dom::attr(&f, "data-wallet")).unwrap_or_default();
            let after = AfterSignIn::from_page(
                &button.closest(".wallet-sign-in").ok().flatten().map(|e| dom::attr(&e, "data-after")).unwrap_or_default(),
            );
            working("Approve the sign-in request in your wallet…");
            spawn_local(async move {
                match sign_in(wallet, address).await {
                    Ok(()) => {
                        working("Signed in: opening your dashboard…");
                        go(after);
                    }
                    Err(e) => failed(&e),
                }
            });
        }
    }
}

/// Off the browser the island is never run.
#[cfg(not(feature = "hydrate"))]
mod live {
    pub fn start() {}
    pub fn clicked(_: &leptos::ev::MouseEvent) {}
}
