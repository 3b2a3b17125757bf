//! The few browser facilities the pages use: wallet extensions (`window.injectedWeb3`),
//! the clipboard, navigation and focus, and (`dom`) working on the page the server rendered.
//! `public/oro.js` wraps the JavaScript side. Most of this exists in the browser build only; the
//! few functions a server render also reaches do nothing there.

/// An account a wallet shares: its address and the name the miner gave it (may be empty).
#[cfg(feature = "hydrate")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletAccount {
    pub address: String,
    pub name: String,
}

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = oroWallet, js_name = installed)]
        pub fn installed() -> Vec<String>;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = accounts, catch)]
        pub async fn accounts(id: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = sign, catch)]
        pub async fn sign(id: &str, address: &str, message: &str) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_namespace = oroWallet, js_name = copy, catch)]
        pub async fn copy(text: &str) -> Result<JsValue, JsValue>;
    }

    pub fn message(e: JsValue) -> String {
        super::error_text(&e).unwrap_or_else(|| "the wallet reported an error".into())
    }
}

/// What a JavaScript error says: a thrown string, or an `Error`'s message.
#[cfg(feature = "hydrate")]
pub fn error_text(e: &wasm_bindgen::JsValue) -> Option<String> {
    e.as_string().or_else(|| field_text(e, "message"))
}

/// A JavaScript object's text field, if it has one.
#[cfg(feature = "hydrate")]
pub fn field_text(value: &wasm_bindgen::JsValue, name: &str) -> Option<String> {
    js_sys::Reflect::get(value, &name.into()).ok()?.as_string()
}

/// Ids of the wallet extensions present (`polkadot-js`, `talisman`, `subwallet-js`, ...).
#[cfg(feature = "hydrate")]
pub fn installed_wallets() -> Vec<String> {
    js::installed()
}

#[cfg(feature = "hydrate")]
pub async fn wallet_accounts(wallet: &str) -> Result<Vec<WalletAccount>, String> {
    // An array of `{address, name}` (oro.js makes it so).
    let accounts = js::accounts(wallet).await.map_err(js::message)?;
    let text = |account: &wasm_bindgen::JsValue, field: &str| field_text(account, field).unwrap_or_default();
    let accounts =
        wasm_bindgen::JsCast::dyn_into::<js_sys::Array>(accounts).map_err(|_| "the wallet answered in an unexpected shape".to_string())?;
    Ok(accounts
        .iter()
        .map(|a| WalletAccount { address: text(&a, "address"), name: text(&a, "name") })
        .filter(|a| !a.address.is_empty())
        .collect())
}

#[cfg(feature = "hydrate")]
pub async fn wallet_sign(wallet: &str, address: &str, message: &str) -> Result<String, String> {
    let signature = js::sign(wallet, address, message).await.map_err(js::message)?;
    signature.as_string().ok_or_else(|| "the wallet returned no signature".to_string())
}

#[cfg(feature = "hydrate")]
pub async fn copy_to_clipboard(text: &str) -> Result<(), String> {
    js::copy(text).await.map(|_| ()).map_err(js::message)
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
#[cfg(feature = "hydrate")]
pub fn fragment() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    hash.strip_prefix('#').filter(|h| !h.is_empty()).map(str::to_owned)
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
/// still be hidden, or not yet rendered by its island): tried on each of the next frames for
/// about two seconds.
pub fn focus_when_present(id: &str) {
    #[cfg(feature = "hydrate")]
    {
        fn attempt(id: String, left: u32) {
            // Not there yet, or still hidden (a hidden element refuses the focus): next frame.
            let focused = dom::by_id(&id).is_some_and(|element| {
                dom::focus(&element);
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
#[cfg(feature = "hydrate")]
pub fn scroll_into_view(id: &str) {
    if let Some(element) = dom::by_id(id) {
        element.scroll_into_view();
    }
}

/// A query-string value, percent-encoded.
#[cfg(feature = "hydrate")]
pub fn encode_component(value: &str) -> String {
    js_sys::encode_uri_component(value).into()
}

/// Replaces the text of the element with `id` (a figure in a server-rendered table).
#[cfg(feature = "hydrate")]
pub fn set_text(id: &str, text: &str) {
    if let Some(element) = dom::by_id(id) {
        element.set_text_content(Some(text));
    }
}

/// Sets the class list of the element with `id`.
#[cfg(feature = "hydrate")]
pub fn set_class(id: &str, class: &str) {
    if let Some(element) = dom::by_id(id) {
        element.set_class_name(class);
    }
}

/// Hides or shows the element with `id`.
#[cfg(feature = "hydrate")]
pub fn set_hidden(id: &str, hidden: bool) {
    if let Some(element) = dom::by_id(id) {
        dom::set_hidden(&element, hidden);
    }
}

/// Working on the page the server rendered, for the islands that render nothing of their own
/// (they hear events on their children and change what is there): finding elements, reading
/// their data, showing and hiding them, saying an outcome.
#[cfg(feature = "hydrate")]
pub mod dom {
    use wasm_bindgen::JsCast;
    pub use web_sys::{Element, Event};

    fn document() -> Option<web_sys::Document> {
        web_sys::window()?.document()
    }

    pub fn by_id(id: &str) -> Option<Element> {
        document()?.get_element_by_id(id)
    }

    /// The elements matching `selector`, in the page's order.
    pub fn all(selector: &str) -> Vec<Element> {
        document().and_then(|d| d.query_selector_all(selector).ok()).map(elements).unwrap_or_default()
    }

    /// The elements under `within` matching `selector`.
    pub fn all_in(within: &Element, selector: &str) -> Vec<Element> {
        within.query_selector_all(selector).ok().map(elements).unwrap_or_default()
    }

    /// The first element under `within` matching `selector`.
    pub fn first_in(within: &Element, selector: &str) -> Option<Element> {
        within.query_selector(selector).ok().flatten()
    }

    fn elements(list: web_sys::NodeList) -> Vec<Element> {
        (0..list.length()).filter_map(|i| list.item(i)?.dyn_into::<Element>().ok()).collect()
    }

    /// The element an event happened on.
    pub fn target(ev: &Event) -> Option<Element> {
        ev.target()?.dyn_into::<Element>().ok()
    }

    /// The button an event happened on (or in: a click on its text).
    pub fn target_button(ev: &Event) -> Option<Element> {
        target(ev)?.closest("button").ok().flatten()
    }

    /// An attribute's value, empty when absent.
    pub fn attr(element: &Element, name: &str) -> String {
        element.get_attribute(name).unwrap_or_default()
    }

    /// What is typed in the input with `id`.
    pub fn value_of(id: &str) -> String {
        by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()).map(|i| i.value()).unwrap_or_default()
    }

    pub fn is_hidden(element: &Element) -> bool {
        element.has_attribute("hidden")
    }

    /// Whether the keyboard focus is on `element` or inside it.
    pub fn holds_focus(element: &Element) -> bool {
        let focused = document().and_then(|d| d.active_element());
        focused.is_some_and(|f| element.contains(Some(&f)))
    }

    pub fn set_hidden(element: &Element, hidden: bool) {
        let _ = element.toggle_attribute_with_force("hidden", hidden);
    }

    pub fn set_disabled(element: &Element, disabled: bool) {
        let _ = element.toggle_attribute_with_force("disabled", disabled);
    }

    /// Enables the buttons matching `selector`, which the server rendered disabled until their
    /// island runs (a click before would do nothing).
    pub fn enable(selector: &str) {
        for button in all(selector) {
            set_disabled(&button, false);
        }
    }

    pub fn has_class(element: &Element, class: &str) -> bool {
        element.class_list().contains(class)
    }

    pub fn focus(element: &Element) {
        if let Some(element) = element.dyn_ref::<web_sys::HtmlElement>() {
            let _ = element.focus();
        }
    }

    /// A new element at the end of `parent` (with `class`, when not empty).
    pub fn add(parent: &Element, tag: &str, class: &str) -> Option<Element> {
        let element = document()?.create_element(tag).ok()?;
        if !class.is_empty() {
            element.set_class_name(class);
        }
        parent.append_child(&element).ok()?;
        Some(element)
    }

    /// A copy of the server-rendered `<template>` with `id`, at the end of `parent`.
    pub fn add_template(parent: &Element, id: &str) {
        let Some(template) = by_id(id).and_then(|t| t.dyn_into::<web_sys::HtmlTemplateElement>().ok()) else { return };
        if let Ok(copy) = template.content().clone_node_with_deep(true) {
            let _ = parent.append_child(&copy);
        }
    }

    /// Text at the end of `parent` (text, never markup).
    pub fn add_text(parent: &Element, text: &str) {
        if let Some(node) = document().map(|d| d.create_text_node(text)) {
            let _ = parent.append_child(&node);
        }
    }

    /// How an outcome is said: done (announced politely) or refused (an alert).
    #[derive(Clone, Copy)]
    pub enum Outcome {
        Done,
        Refused,
    }

    /// Says `text` in `place` as one paragraph (or span) with `id`, in place of what was said
    /// there before: the outcome of the last thing the miner did. The text is text, never markup.
    pub fn say(place: &Element, tag: &str, id: &str, outcome: Outcome, text: &str) {
        // One element on the page has the id: an earlier outcome elsewhere gives it up.
        if let Some(earlier) = by_id(id) {
            earlier.remove_attribute("id").ok();
        }
        let (class, role) = match outcome {
            Outcome::Done => ("ok", "status"),
            Outcome::Refused => ("error", "alert"),
        };
        place.set_text_content(None);
        let Some(said) = add(place, tag, class) else { return };
        let _ = said.set_attribute("role", role);
        said.set_id(id);
        said.set_text_content(Some(text));
    }
}
