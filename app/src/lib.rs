#![recursion_limit = "512"]
//! The Leptos application: server-rendered pages that hydrate in the browser.
//! Server functions (`api`) are thin: they find the signed-in miner and call the same
//! service layer as the REST API.

pub mod api;
mod browser;
mod components;
pub mod error;
mod pages;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

/// The HTML document around every page.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <script src="/oro.js"></script>
                <HydrationScripts options/>
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
        <Stylesheet id="leptos" href="/pkg/oro.css"/>
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
                <Routes fallback=|| view! { <h1>"Page not found"</h1><p><a href="/">"Back to the start"</a></p> }>
                    <Route path=path!("/") view=pages::home::HomePage/>
                    <Route path=path!("/dashboard") view=pages::dashboard::DashboardPage/>
                    <Route path=path!("/oauth/chutes/callback") view=pages::oauth_callback::OAuthCallbackPage/>
                    <Route path=path!("/models") view=pages::models::ModelsPage/>
                </Routes>
            </main>
        </Router>
    }
}
