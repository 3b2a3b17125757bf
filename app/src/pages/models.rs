//! The public model list: every allowlisted model under both providers' names.
//!
//! The server renders the whole list, for the filter and provider the address asks for. The
//! browser's part (`ModelBrowser`) renders nothing: it filters the server's rows, switches the
//! provider, shows a model's sandbox lines and copies, by working on the page as it is
//! (`live`). The rows carry what it needs (`data-chutes`, `data-openrouter`, `data-default`).

use leptos::prelude::*;
use wire::Provider;

use crate::api::model_catalog;
use crate::view::ModelRow;

/// Whether a model's row is shown for the filter `needle` (lowercase). Model names are ASCII:
/// no Unicode case tables in the bundle for them.
fn matches(chutes_name: &str, openrouter_name: &str, needle: &str) -> bool {
    needle.is_empty() || chutes_name.to_ascii_lowercase().contains(needle) || openrouter_name.to_ascii_lowercase().contains(needle)
}

/// The line above the table.
fn count_text(shown: usize, total: usize, filter: &str) -> String {
    if shown == 0 {
        format!("No model matches “{}” (0 of {total} models). Clear the filter to see them all.", filter.trim())
    } else {
        format!("{shown} of {total} models")
    }
}

/// What an agent's sandbox needs to use `model` at `provider`.
fn snippet_text(provider: &str, model: &str) -> String {
    format!("INFERENCE_PROVIDER={provider}\nSANDBOX_MODEL={model}")
}

/// This page's address for a filter and a provider (the default provider is left out).
#[cfg(any(feature = "hydrate", test))]
fn address(filter: &str, provider: &str, encode: impl Fn(&str) -> String) -> String {
    let mut parts = Vec::new();
    if !filter.is_empty() {
        parts.push(format!("q={}", encode(filter)));
    }
    if provider != Provider::Chutes.as_str() {
        parts.push(format!("provider={provider}"));
    }
    if parts.is_empty() { "/models".to_string() } else { format!("/models?{}", parts.join("&")) }
}

/// The page around the list: rendered on the server, with the filter and provider the address
/// asks for (`?q=…&provider=openrouter`), so a link to this page shows what its sender saw.
#[component]
pub fn ModelsPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map().get_untracked();
    let filter = query.get("q").unwrap_or_default();
    let provider = query.get("provider").and_then(|p| p.parse::<Provider>().ok()).unwrap_or(Provider::Chutes);
    view! {
        <h1>"Allowlisted models"</h1>
        <p>"The same models on both providers, each under its provider's own name. An agent reads "<code>"INFERENCE_PROVIDER"</code>" and "<code>"SANDBOX_MODEL"</code>" from its sandbox."</p>
        <Suspense fallback=|| view! { <p class="progress" role="status">"Loading models…"</p> }>
            {Suspend::new(async move {
                match model_catalog().await {
                    Ok(models) => view! { <ModelBrowser><ModelList models=models filter=filter.clone() provider=provider/></ModelBrowser> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
        <p class="hint">"Machine-readable: "<a href="/v1/public/inference/models?provider=openrouter">"/v1/public/inference/models"</a></p>
    }
}

/// The filter, the provider switch, the table and the sandbox lines, as the address asks for
/// them: the rows the filter leaves out are there, hidden, for the browser to bring back.
#[component]
fn ModelList(models: Vec<ModelRow>, filter: String, provider: Provider) -> impl IntoView {
    let needle = filter.to_ascii_lowercase();
    let shown = models.iter().filter(|m| matches(&m.chutes_name, &m.openrouter_name, &needle)).count();
    let count = count_text(shown, models.len(), &filter);
    let name_for = move |m: &ModelRow| match provider {
        Provider::Chutes => m.chutes_name.clone(),
        Provider::OpenRouter => m.openrouter_name.clone(),
    };
    let snippet =
        models.iter().find(|m| m.is_default).or(models.first()).map(|m| snippet_text(provider.as_str(), &name_for(m))).unwrap_or_default();
    let active = move |p: Provider| p == provider;
    let rows = models
        .into_iter()
        .map(|m| {
            let hidden = !matches(&m.chutes_name, &m.openrouter_name, &needle);
            view! {
                <tr class="model-row" hidden=hidden data-chutes=m.chutes_name.clone() data-openrouter=m.openrouter_name.clone()
                    data-default=m.is_default.then_some("")>
                    <td data-label="Chutes" data-provider="chutes" class:active=active(Provider::Chutes)>
                        <code>{m.chutes_name.clone()}</code>" "<CopyButton text=m.chutes_name.clone()/>
                        {m.is_default.then(|| view! { <span class="badge">"default"</span> })}</td>
                    <td data-label="OpenRouter" data-provider="openrouter" class:active=active(Provider::OpenRouter)>
                        <code>{m.openrouter_name.clone()}</code>" "<CopyButton text=m.openrouter_name.clone()/></td>
                    <td class="price" data-label="Price / M tokens">{m.price}</td>
                    <td><button type="button" class="show-snippet" aria-label=format!("Show sandbox lines for {}", m.chutes_name)>"Show"</button></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="model-controls">
            <label for="model-filter">"Filter"</label>
            <input id="model-filter" type="search" placeholder="e.g. qwen" value=filter/>
            <fieldset class="provider-switch">
                <legend>"Provider"</legend>
                {Provider::ALL.into_iter().map(|p| view! {
                    <label>
                        <input type="radio" name="provider" value=p.as_str() id=format!("switch-{}", p.as_str()) checked=active(p)/>
                        {p.display_name()}
                    </label>
                }).collect_view()}
            </fieldset>
        </div>
        <p class="count" aria-live="polite" id="model-count">{count}</p>
        <table class="models" id="models-table">
            <caption class="visually-hidden">"Allowlisted models with their Chutes and OpenRouter names and prices"</caption>
            <thead>
                <tr>
                    <th scope="col" data-provider="chutes" class:active=active(Provider::Chutes)>"Chutes name"</th>
                    <th scope="col" data-provider="openrouter" class:active=active(Provider::OpenRouter)>"OpenRouter name"</th>
                    <th scope="col"><abbr title="What the run gateway charges a run, in USD per million prompt (in) and completion (out) tokens">"Price / M tokens"</abbr></th>
                    <th scope="col">"Sandbox lines"</th>
                </tr>
            </thead>
            <tbody>{rows}</tbody>
        </table>
        <section class="snippet" aria-labelledby="snippet-heading">
            <h2 id="snippet-heading">"For your agent's sandbox"</h2>
            <pre id="sandbox-snippet">{snippet}</pre>
            <button type="button" class="copy" aria-label="Copy the sandbox lines" data-copy-from="sandbox-snippet">"Copy"</button>
        </section>
    }
}

/// Copies `text`; says "Copied ✓" once it has (`live::clicked`).
#[component]
fn CopyButton(text: String) -> impl IntoView {
    view! { <button type="button" class="copy" aria-label=format!("Copy {text}") data-copy=text>"Copy"</button> }
}

/// The page's island: it renders nothing of its own, and hears what happens in the list the
/// server rendered (its children): typing in the filter, a provider chosen, Show and Copy.
#[island]
fn ModelBrowser(children: Children) -> impl IntoView {
    Effect::new(|_| live::start());
    view! {
        <div class="island-events" on:input=|ev| live::filtered(&ev) on:change=|ev| live::switched(&ev) on:click=|ev| live::clicked(&ev)>
            {children()}
        </div>
    }
}

/// What the island does, on the page the server rendered.
#[cfg(feature = "hydrate")]
mod live {
    use std::cell::RefCell;

    use crate::browser;
    use crate::browser::dom::{self, Element, Event, all, attr as data, by_id, value_of as input_value};

    thread_local! {
        /// Every model's row, in the server's order, shown or not: a row the filter leaves out
        /// is taken out of the table, and put back in its place when it matches again.
        static ROWS: RefCell<Vec<Element>> = const { RefCell::new(Vec::new()) };
    }

    /// The chosen provider's name (`chutes`, `openrouter`), as its switch's value says.
    fn provider() -> String {
        all("input[name=provider]:checked").first().map(|switch| data(switch, "value")).unwrap_or_else(|| "chutes".into())
    }

    pub fn start() {
        ROWS.with(|rows| *rows.borrow_mut() = all("#models-table tbody tr"));
        // The server hid the rows its filter left out; from here they are out of the table. (The
        // browser may also have put back what was typed and chosen before a back navigation.)
        show_matching();
        mark_provider();
    }

    /// The table holds the rows the filter matches, in their order, and the count says so.
    fn show_matching() {
        let filter = input_value("model-filter");
        let needle = filter.to_ascii_lowercase();
        let Some(body) = by_id("models-table").and_then(|table| dom::first_in(&table, "tbody")) else { return };
        let (mut shown, mut total) = (0, 0);
        ROWS.with(|rows| {
            for row in rows.borrow().iter() {
                total += 1;
                if super::matches(&data(row, "data-chutes"), &data(row, "data-openrouter"), &needle) {
                    shown += 1;
                    let _ = row.remove_attribute("hidden");
                    let _ = body.append_child(row);
                } else {
                    row.remove();
                }
            }
        });
        // Written only when it changes: the count is a live region, read out on each change.
        let count = super::count_text(shown, total, &filter);
        if by_id("model-count").and_then(|c| c.text_content()).as_deref() != Some(count.as_str()) {
            browser::set_text("model-count", &count);
        }
    }

    /// "Copied ✓" belongs to what was copied: a button whose text may now mean something else
    /// says "Copy" again.
    fn reset_copy(selector: &str) {
        for button in all(selector) {
            button.set_text_content(Some("Copy"));
        }
    }

    /// The sandbox lines for the chosen row (or the default model) under the chosen provider.
    fn show_snippet() {
        let provider = provider();
        let chosen = ROWS.with(|rows| {
            let rows = rows.borrow();
            rows.iter()
                .find(|r| r.has_attribute("aria-current"))
                .or_else(|| rows.iter().find(|r| r.has_attribute("data-default")))
                .or(rows.first())
                .cloned()
        });
        if let Some(row) = chosen {
            browser::set_text("sandbox-snippet", &super::snippet_text(&provider, &data(&row, &format!("data-{provider}"))));
            reset_copy("button[data-copy-from]");
        }
    }

    fn remember_in_address() {
        let address = super::address(&input_value("model-filter"), &provider(), browser::encode_component);
        browser::replace_url(&address);
    }

    pub fn filtered(ev: &Event) {
        if dom::target(ev).is_some_and(|t| t.id() == "model-filter") {
            reset_copy("#models-table button.copy");
            show_matching();
            remember_in_address();
        }
    }

    pub fn switched(ev: &Event) {
        if dom::target(ev).is_some_and(|t| t.get_attribute("name").as_deref() == Some("provider")) {
            mark_provider();
            remember_in_address();
        }
    }

    /// The chosen provider's column marked, and its name in the sandbox lines.
    fn mark_provider() {
        let provider = provider();
        let mark = |cell: Element| {
            let _ = cell.class_list().toggle_with_force("active", data(&cell, "data-provider") == provider);
        };
        all("#models-table thead [data-provider]").into_iter().for_each(mark);
        ROWS.with(|rows| {
            for row in rows.borrow().iter() {
                dom::all_in(row, "[data-provider]").into_iter().for_each(mark);
            }
        });
        show_snippet();
    }

    pub fn clicked(ev: &Event) {
        let Some(button) = dom::target_button(ev) else { return };
        if dom::has_class(&button, "show-snippet") {
            let Some(row) = button.closest("tr").ok().flatten() else { return };
            ROWS.with(|rows| {
                for other in rows.borrow().iter() {
                    let _ = other.remove_attribute("aria-current");
                    let _ = other.class_list().remove_1("selected");
                }
            });
            let _ = row.set_attribute("aria-current", "true");
            let _ = row.class_list().add_1("selected");
            show_snippet();
            // The lines are below the table: bring them to the reader.
            browser::scroll_into_view("snippet-heading");
        } else if dom::has_class(&button, "copy") {
            let text = match button.get_attribute("data-copy-from") {
                Some(id) => by_id(&id).and_then(|e| e.text_content()).unwrap_or_default(),
                None => data(&button, "data-copy"),
            };
            leptos::task::spawn_local(async move {
                let said = if browser::copy_to_clipboard(&text).await.is_ok() { "Copied ✓" } else { "Copy failed" };
                button.set_text_content(Some(said));
            });
        }
    }
}

/// Off the browser the island is never run.
#[cfg(not(feature = "hydrate"))]
mod live {
    use leptos::ev::Event;

    pub fn start() {}
    pub fn filtered(_: &Event) {}
    pub fn switched(_: &Event) {}
    pub fn clicked(_: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_matches_either_name_in_any_case() {
        assert!(matches("Qwen/Qwen3-32B", "qwen/qwen3-32b", ""));
        assert!(matches("Qwen/Qwen3-32B", "qwen/qwen3-32b", "qwen3"));
        assert!(matches("deepseek-ai/DeepSeek-V3.2-TEE", "deepseek/deepseek-v3.2", "v3.2-tee"));
        assert!(!matches("deepseek-ai/DeepSeek-V3.2-TEE", "deepseek/deepseek-v3.2", "qwen"));
    }

    #[test]
    fn the_address_keeps_the_filter_and_a_provider_other_than_the_default() {
        let plain = |s: &str| s.replace(' ', "%20");
        assert_eq!(address("", "chutes", plain), "/models");
        assert_eq!(address("qwen 3", "chutes", plain), "/models?q=qwen%203");
        assert_eq!(address("qwen", "openrouter", plain), "/models?q=qwen&provider=openrouter");
        assert_eq!(address("", "openrouter", plain), "/models?provider=openrouter");
    }

    #[test]
    fn the_count_says_how_to_see_everything_again() {
        assert_eq!(count_text(3, 13, "qwen"), "3 of 13 models");
        assert_eq!(count_text(0, 13, " xyz "), "No model matches “xyz” (0 of 13 models). Clear the filter to see them all.");
    }
}
