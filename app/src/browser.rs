//! The few browser facilities the pages use: wallet extensions (`window.injectedWeb3`),
//! the clipboard and navigation. `public/oro.js` wraps the JavaScript side; on the server
//! these are never called (they answer an error).

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WalletAccount {
    pub address: String,
    #[serde(default)]
    pub name: String,
}

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = oroWallet, js_name = installed)]
        pub fn installed() -> String;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = accounts, catch)]
        pub async fn accounts(id: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = sign, catch)]
        pub async fn sign(id: &str, address: &str, message: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = copy, catch)]
        pub async fn copy(text: &str) -> Result<JsValue, JsValue>;
    }

    pub fn message(e: JsValue) -> String {
        e.as_string()
            .or_else(|| js_sys::Reflect::get(&e, &"message".into()).ok().and_then(|m| m.as_string()))
            .unwrap_or_else(|| "the wallet reported an error".into())
    }
}

/// Ids of the wallet extensions present (`polkadot-js`, `talisman`, `subwallet-js`, ...).
pub fn installed_wallets() -> Vec<String> {
    #[cfg(feature = "hydrate")]
    {
        serde_json::from_str(&js::installed()).unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        Vec::new()
    }
}

pub async fn wallet_accounts(wallet: &str) -> Result<Vec<WalletAccount>, String> {
    #[cfg(feature = "hydrate")]
    {
        let json = js::accounts(wallet).await.map_err(js::message)?;
        serde_json::from_str(&json.as_string().unwrap_or_default()).map_err(|_| "the wallet answered in an unexpected shape".to_string())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = wallet;
        Err("wallets are only available in the browser".into())
    }
}

pub async fn wallet_sign(wallet: &str, address: &str, message: &str) -> Result<String, String> {
    #[cfg(feature = "hydrate")]
    {
        let signature = js::sign(wallet, address, message).await.map_err(js::message)?;
        signature.as_string().ok_or_else(|| "the wallet returned no signature".to_string())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (wallet, address, message);
        Err("wallets are only available in the browser".into())
    }
}

pub async fn copy_to_clipboard(text: &str) -> Result<(), String> {
    #[cfg(feature = "hydrate")]
    {
        js::copy(text).await.map(|_| ()).map_err(js::message)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        Err("the clipboard is only available in the browser".into())
    }
}

/// Sends the browser to another site (the Chutes consent page).
pub fn navigate_away(url: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(window) = web_sys::window() {
            let _ = window.location().assign(url);
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = url;
    }
}

/// Loads the page at `path` (this site) afresh, in place of the current entry of the history:
/// after a sign-in or sign-out the server renders the page for the new session.
pub fn reload_at(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        replace_url(path);
        if let Some(window) = web_sys::window() {
            let _ = window.location().reload();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = path;
    }
}

/// The address's fragment, without its `#`.
pub fn fragment() -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        let hash = web_sys::window()?.location().hash().ok()?;
        hash.strip_prefix('#').filter(|h| !h.is_empty()).map(str::to_owned)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        None
    }
}

/// A value of the address's query string.
pub fn query_param(name: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        let search = web_sys::window()?.location().search().ok()?;
        web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = name;
        None
    }
}

/// Replaces the address bar's URL with `path` without a navigation, so that what the old URL
/// carried (an OAuth code and state) stays neither in the bar nor in the history.
pub fn replace_url(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path));
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = path;
    }
}

/// Moves the keyboard focus to the element with `id` once it is on the page and shown (it may
/// still be rendering after a refetch): tried on each of the next frames for about two seconds.
pub fn focus_when_present(id: &str) {
    #[cfg(feature = "hydrate")]
    {
        fn attempt(id: String, left: u32) {
            use wasm_bindgen::JsCast;
            let element = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.get_element_by_id(&id))
                .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
            // Not there yet, or still hidden (a hidden element refuses the focus): next frame.
            let focused = element.is_some_and(|element| {
                let _ = element.focus();
                focused_id().as_deref() == Some(id.as_str())
            });
            if !focused && left > 0 {
                leptos::prelude::set_timeout(move || attempt(id, left - 1), std::time::Duration::from_millis(16));
            }
        }
        attempt(id.to_owned(), 120);
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = id;
    }
}

/// The id of the element that has the keyboard focus.
pub fn focused_id() -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        web_sys::window().and_then(|w| w.document()).and_then(|d| d.active_element()).map(|e| e.id())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        None
    }
}

/// Scrolls the element with `id` into view (smoothly unless the reader asked for less motion,
/// which the browser decides for `scrollIntoView` with no options).
pub fn scroll_into_view(id: &str) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(element) = web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id(id)) {
            element.scroll_into_view();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = id;
    }
}

/// A query-string value, percent-encoded.
pub fn encode_component(value: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        js_sys::encode_uri_component(value).into()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        value.to_owned()
    }
}

/// The element with `id`, if it is on the page.
#[cfg(feature = "hydrate")]
fn element(id: &str) -> Option<web_sys::Element> {
    web_sys::window()?.document()?.get_element_by_id(id)
}

/// Replaces the text of the element with `id` (a figure in a server-rendered table).
pub fn set_text(id: &str, text: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(element) = element(id) {
        element.set_text_content(Some(text));
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (id, text);
}

/// Sets the class list of the element with `id`.
pub fn set_class(id: &str, class: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(element) = element(id) {
        element.set_class_name(class);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (id, class);
}

/// Hides or shows the element with `id`.
pub fn set_hidden(id: &str, hidden: bool) {
    #[cfg(feature = "hydrate")]
    if let Some(element) = element(id) {
        let _ = element.toggle_attribute_with_force("hidden", hidden);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (id, hidden);
}
