//! Connect wallet: find the injected wallets, pick an account, sign the server's sign-in
//! message. Every step shows where it is; every failure says what to do next.

use leptos::either::EitherOf6;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{begin_sign_in, finish_sign_in};
use crate::browser::{self, WalletAccount};

const KNOWN_WALLETS: [(&str, &str, &str); 3] = [
    ("polkadot-js", "polkadot{.js}", "https://polkadot.js.org/extension/"),
    ("talisman", "Talisman", "https://talisman.xyz/"),
    ("subwallet-js", "SubWallet", "https://www.subwallet.app/"),
];

fn wallet_name(id: &str) -> String {
    KNOWN_WALLETS.iter().find(|(k, ..)| *k == id).map(|(_, n, _)| n.to_string()).unwrap_or_else(|| id.to_string())
}

#[derive(Clone, PartialEq)]
enum Step {
    Idle,
    NoWallet,
    ChooseWallet(Vec<String>),
    Working(String),
    ChooseAccount { wallet: String, accounts: Vec<WalletAccount> },
    Failed(String),
}

async fn sign_in(wallet: String, address: String) -> Result<String, String> {
    let message = begin_sign_in(address.clone()).await.map_err(|e| e.to_string())?;
    let signature = browser::wallet_sign(&wallet, &address, &message)
        .await
        .map_err(|e| format!("The wallet did not sign ({e}). Nothing was changed; try again."))?;
    finish_sign_in(message, signature).await.map_err(|e| e.to_string())
}

/// Where a signed-in miner goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AfterSignIn {
    /// To the dashboard (from the home page).
    OpenDashboard,
    /// The dashboard again, now rendered for the miner, with the focus on the signed-in line.
    ShowDashboard,
}

/// The session cookie is set: load the signed-in page (the server renders it whole).
fn go(after: AfterSignIn) {
    match after {
        AfterSignIn::OpenDashboard => browser::navigate_away("/dashboard"),
        // The fragment names where the page changed; the dashboard moves the focus there.
        AfterSignIn::ShowDashboard => browser::reload_at(&format!("/dashboard#{}", crate::components::SIGNED_IN_ID)),
    }
}

#[island]
pub fn WalletSignIn(after: AfterSignIn) -> impl IntoView {
    let step = RwSignal::new(Step::Idle);

    let load_accounts = move |wallet: String| {
        step.set(Step::Working(format!("Asking {} for your accounts…", wallet_name(&wallet))));
        spawn_local(async move {
            match browser::wallet_accounts(&wallet).await {
                Ok(accounts) if accounts.is_empty() => step.set(Step::Failed(format!(
                    "{} shared no accounts. Create or import an account in the wallet, allow this site, and try again.",
                    wallet_name(&wallet)
                ))),
                Ok(accounts) => step.set(Step::ChooseAccount { wallet, accounts }),
                Err(e) => step.set(Step::Failed(format!("{} refused access: {e}", wallet_name(&wallet)))),
            }
        });
    };

    let start = move |_| {
        let wallets = browser::installed_wallets();
        match wallets.len() {
            0 => step.set(Step::NoWallet),
            1 => load_accounts(wallets[0].clone()),
            _ => step.set(Step::ChooseWallet(wallets)),
        }
    };

    let choose_account = move |wallet: String, address: String| {
        step.set(Step::Working("Approve the sign-in request in your wallet…".into()));
        spawn_local(async move {
            match sign_in(wallet, address).await {
                Ok(_) => {
                    step.set(Step::Working("Signed in: opening your dashboard…".into()));
                    go(after);
                }
                Err(e) => step.set(Step::Failed(e)),
            }
        });
    };

    view! {
        <div class="wallet-sign-in">
            <button type="button" class="primary" id="connect-wallet" on:click=start
                disabled=move || matches!(step.get(), Step::Working(_))>
                "Connect wallet"
            </button>
            <div aria-live="polite" class="wallet-step">
                {move || match step.get() {
                    Step::Idle => EitherOf6::A(()),
                    Step::NoWallet => EitherOf6::B(view! {
                        <div class="notice" role="status" id="no-wallet">
                            <p>"No wallet extension found in this browser. Install one, create or import your hotkey account, then reload this page:"</p>
                            <ul>
                                {KNOWN_WALLETS.iter().map(|(_, name, url)| view! {
                                    <li><a href=*url target="_blank" rel="noopener noreferrer">{*name}</a></li>
                                }).collect_view()}
                            </ul>
                        </div>
                    }),
                    Step::ChooseWallet(wallets) => EitherOf6::C(view! {
                        <fieldset>
                            <legend>"Choose a wallet"</legend>
                            {wallets.into_iter().map(|w| {
                                let id = w.clone();
                                view! { <button type="button" on:click=move |_| load_accounts(id.clone())>{wallet_name(&w)}</button> }
                            }).collect_view()}
                        </fieldset>
                    }),
                    Step::Working(text) => EitherOf6::D(view! { <p class="progress" role="status"><span class="spinner" aria-hidden="true"></span>{text}</p> }),
                    Step::ChooseAccount { wallet, accounts } => EitherOf6::E(view! {
                        <fieldset>
                            <legend>"Choose the hotkey account to sign in with"</legend>
                            <ul class="accounts">
                                {accounts.into_iter().map(|a| {
                                    let wallet = wallet.clone();
                                    let address = a.address.clone();
                                    view! {
                                        <li>
                                            <button type="button" class="account" on:click=move |_| choose_account(wallet.clone(), address.clone())>
                                                <span class="account-name">{if a.name.is_empty() { "Account".to_string() } else { a.name.clone() }}</span>
                                                <code>{a.address.clone()}</code>
                                            </button>
                                        </li>
                                    }
                                }).collect_view()}
                            </ul>
                        </fieldset>
                    }),
                    Step::Failed(text) => EitherOf6::F(view! { <p class="error" role="alert">{text}</p> }),
                }}
            </div>
        </div>
    }
}
