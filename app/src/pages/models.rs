//! The public model list: every allowlisted model under both providers' names.

use leptos::prelude::*;
use leptos::task::spawn_local;
use wire::Provider;

use crate::api::model_catalog;
use crate::browser;
use crate::view::ModelRow;

fn name_for(entry: &ModelRow, provider: Provider) -> String {
    match provider {
        Provider::Chutes => entry.chutes_name.clone(),
        Provider::OpenRouter => entry.openrouter_name.clone(),
    }
}

#[component]
fn CopyButton(text: String, label: String) -> impl IntoView {
    let copied: RwSignal<Option<Result<(), String>>> = RwSignal::new(None);
    let aria = format!("Copy {label}");
    let copy = move |_| {
        let text = text.clone();
        spawn_local(async move { copied.set(Some(browser::copy_to_clipboard(&text).await)) });
    };
    view! {
        <button type="button" class="copy" aria-label=aria on:click=copy>
            {move || match copied.get() {
                None => "Copy",
                Some(Ok(())) => "Copied ✓",
                Some(Err(_)) => "Copy failed",
            }}
        </button>
    }
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
                    Ok(models) => view! { <ModelBrowser models=models filter=filter provider=provider/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
        <p class="hint">"Machine-readable: "<a href="/v1/public/inference/models?provider=openrouter">"/v1/public/inference/models"</a></p>
    }
}

/// The filter, the provider switch, the table and the sandbox lines: the page's island.
#[island]
fn ModelBrowser(models: Vec<ModelRow>, filter: String, provider: Provider) -> impl IntoView {
    let filter = RwSignal::new(filter);
    let provider = RwSignal::new(provider);
    let selected: RwSignal<Option<ModelRow>> = RwSignal::new(None);
    Effect::new(move |first: Option<()>| {
        let (q, p) = (filter.get(), provider.get());
        if first.is_some() {
            let mut url = "/models".to_string();
            let mut sep = '?';
            if !q.is_empty() {
                url.push_str(&format!("?q={}", browser::encode_component(&q)));
                sep = '&';
            }
            if p != Provider::Chutes {
                url.push_str(&format!("{sep}provider={}", p.as_str()));
            }
            browser::replace_url(&url);
        }
    });
    let entries = models;
    let default_entry = entries.iter().find(|e| e.is_default).cloned().or_else(|| entries.first().cloned());
    let all = StoredValue::new(entries);
    let shown = move || {
        // Model names are ASCII: no Unicode case tables in the bundle for them.
        let needle = filter.get().to_ascii_lowercase();
        all.get_value()
            .into_iter()
            .filter(|e| {
                needle.is_empty()
                    || e.chutes_name.to_ascii_lowercase().contains(&needle)
                    || e.openrouter_name.to_ascii_lowercase().contains(&needle)
            })
            .collect::<Vec<_>>()
    };
    let snippet = move || {
        let p = provider.get();
        let entry = selected.get().or_else(|| default_entry.clone());
        entry.map(|e| format!("INFERENCE_PROVIDER={}\nSANDBOX_MODEL={}", p.as_str(), name_for(&e, p))).unwrap_or_default()
    };
    view! {
        <div class="model-controls">
            <label for="model-filter">"Filter"</label>
            <input id="model-filter" type="search" placeholder="e.g. qwen" prop:value=move || filter.get()
                on:input=move |ev| filter.set(event_target_value(&ev))/>
            <fieldset class="provider-switch">
                <legend>"Provider"</legend>
                {Provider::ALL.into_iter().map(|p| view! {
                    <label>
                        <input type="radio" name="provider" value=p.as_str() id=format!("switch-{}", p.as_str())
                            prop:checked=move || provider.get() == p on:change=move |_| provider.set(p)/>
                        {p.display_name()}
                    </label>
                }).collect_view()}
            </fieldset>
        </div>
        <p class="count" aria-live="polite" id="model-count">{move || {
            let n = shown().len();
            if n == 0 {
                format!("No model matches “{}” (0 of {} models). Clear the filter to see them all.", filter.get().trim(), all.with_value(|a| a.len()))
            } else {
                format!("{n} of {} models", all.with_value(|a| a.len()))
            }
        }}</p>
        <table class="models" id="models-table">
            <caption class="visually-hidden">"Allowlisted models with their Chutes and OpenRouter names and prices"</caption>
            <thead>
                <tr>
                    <th scope="col" class:active=move || provider.get() == Provider::Chutes>"Chutes name"</th>
                    <th scope="col" class:active=move || provider.get() == Provider::OpenRouter>"OpenRouter name"</th>
                    <th scope="col"><abbr title="What the run gateway charges a run, in USD per million prompt (in) and completion (out) tokens">"Price / M tokens"</abbr></th>
                    <th scope="col">"Sandbox lines"</th>
                </tr>
            </thead>
            <tbody>
                // Rebuilt whole when the filter changes (a dozen rows): no keyed list to diff.
                {move || shown().into_iter().map(|entry| {
                    let chosen = entry.clone();
                    let label = entry.chutes_name.clone();
                    let this = entry.chutes_name.clone();
                    let is_selected = move || selected.with(|s| s.as_ref().is_some_and(|s| s.chutes_name == this));
                    view! {
                        <tr class="model-row" class:selected=is_selected.clone() aria-current=move || is_selected().then_some("true")>
                            <td data-label="Chutes" class:active=move || provider.get() == Provider::Chutes>
                                <code>{entry.chutes_name.clone()}</code>" "<CopyButton text=entry.chutes_name.clone() label=entry.chutes_name.clone()/>
                                {entry.is_default.then(|| view! { <span class="badge">"default"</span> })}</td>
                            <td data-label="OpenRouter" class:active=move || provider.get() == Provider::OpenRouter>
                                <code>{entry.openrouter_name.clone()}</code>" "<CopyButton text=entry.openrouter_name.clone() label=entry.openrouter_name.clone()/></td>
                            <td class="price" data-label="Price / M tokens">{entry.price.clone()}</td>
                            <td><button type="button" aria-label=format!("Show sandbox lines for {label}") on:click=move |_| {
                                selected.set(Some(chosen.clone()));
                                // The lines are below the table: bring them to the reader.
                                browser::scroll_into_view("snippet-heading");
                            }>"Show"</button></td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <section class="snippet" aria-labelledby="snippet-heading">
            <h2 id="snippet-heading">"For your agent's sandbox"</h2>
            <pre id="sandbox-snippet">{snippet.clone()}</pre>
            {move || view! { <CopyButton text=snippet() label="the sandbox lines".to_string()/> }}
        </section>
    }
}
