#![recursion_limit = "512"]
//! The Leptos application, in islands: every page is rendered whole on the server, and the
//! browser runs only the interactive parts (`#[island]`: the wallet sign-in, sign-out, a
//! provider row's actions, the budget form, the runs table's Stop and live figures, the model
//! list's filter, the OAuth landing page's exchange). Most islands render nothing of their own:
//! they work on the markup the server rendered (`browser::dom`). Links are plain navigations;
//! there is no router in the browser.
//! Server functions (`api`) are thin: they find the signed-in miner and call the same
//! service layer as the REST API; the islands call them with `fetch` (`api::call`). What the
//! pages show is put in words on the server (`view`).

pub mod api;
mod browser;
mod components;
pub mod error;
mod pages;
pub mod view;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// The browser side's start: the reactive system for the islands, which the loader then
/// hydrates one by one (each island is an export of this crate's wasm).
#[cfg(feature = "hydrate")]
pub fn start_islands() {
    leptos::mount::hydrate_islands();
}

/// Where the pages find the stylesheet and the wallet wrapper: the server provides the
/// content-hashed names of the built site (cached by browsers for good); these are the plain
/// names of an unbuilt one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPaths {
    pub stylesheet: String,
    pub wallet_script: String,
}

impl Default for AssetPaths {
    fn default() -> Self {
        AssetPaths { stylesheet: "/pkg/oro.css".into(), wallet_script: "/oro.js".into() }
    }
}

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let assets = use_context::<AssetPaths>().unwrap_or_default();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href=assets.stylesheet/>
                // Wallet extensions' bridge, needed only once a miner clicks: it waits for the page.
                <script src=assets.wallet_script defer></script>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy: scripts only from here or inline with this response's
/// nonce (Leptos puts it on its hydration and streaming scripts), WebAssembly allowed, nothing
/// framed, no plugins, no `<base>` games, forms only to ourselves.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(response)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>())
        && let Ok(policy) = http::HeaderValue::from_str(&content_security_policy(&nonce))
    {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, policy);
    }
    view! {
        <Title text="ORO inference providers"/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="site-header">
                <nav aria-label="Main">
                    <A href="/" attr:class="brand">"ORO inference"</A>
                    <A href="/dashboard">"Dashboard"</A>
                    <A href="/models">"Models"</A>
                    // A page the server renders on its own (no route here): a full load.
                    <a href="/docs" rel="external">"API"</a>
                </nav>
            </header>
            <main id="main" tabindex="-1">
                // Async: a page is sent once its data is read (milliseconds, from our own
                // database), whole, with no streaming scripts to run before it reads right.
                <Routes fallback=|| view! { <h1>"Page not found"</h1><p><a href="/">"Back to the start"</a></p> }>
                    <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/dashboard") view=pages::dashboard::DashboardPage ssr=SsrMode::Async/>
                    <Route path=path!("/oauth/chutes/callback") view=pages::oauth_callback::OAuthCallbackPage ssr=SsrMode::Async/>
                    <Route path=path!("/models") view=pages::models::ModelsPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
