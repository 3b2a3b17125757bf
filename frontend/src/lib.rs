#![recursion_limit = "512"]
//! The browser bundle: the app's islands (exported by the app crate, found in the page by
//! Leptos' island loader) and the entry point that starts the reactive system for them.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    app::start_islands();
}
