//! The monthly ceiling on what ORO runs may commit: shown (on the server) with the per-run cap
//! it must leave room for, set by amount, removed only by its own confirmed button (an island).

use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::show_change;
use crate::api::save_budget;
use crate::error::AppError;
use crate::view::{BudgetView, Panel};

#[component]
pub fn BudgetPanel(budget: Result<BudgetView, AppError>, said: Option<String>) -> impl IntoView {
    let (ceiling, has_ceiling) = budget.as_ref().map(|b| (b.ceiling_input.clone(), b.has_ceiling)).unwrap_or_default();
    view! {
        <section class="panel" aria-labelledby="budget-heading">
            <h2 id="budget-heading" tabindex="-1">"Monthly budget"</h2>
            {match budget {
                Ok(b) => Either::Left(view! {
                    <p id="budget-state">{b.state}</p>
                    {b.run_cap.map(|cap| view! { <p class="hint" id="run-cap">{cap}</p> })}
                    {b.warning.map(|w| view! { <p class="error" role="alert" id="budget-warning">{w}</p> })}
                }),
                Err(e) => Either::Right(view! { <p class="error" role="alert">{e.to_string()}</p> }),
            }}
            <BudgetForm ceiling=ceiling has_ceiling=has_ceiling said=said/>
        </section>
    }
}

/// The amount field, Save, and Remove ceiling with its question. A saved budget reloads the
/// dashboard, which shows it with the sentence the server kept (`said`).
#[island]
fn BudgetForm(
    /// The field's starting value: the ceiling, or empty.
    ceiling: String,
    has_ceiling: bool,
    said: Option<String>,
) -> impl IntoView {
    let input = RwSignal::new(ceiling.clone());
    let outcome: RwSignal<Option<Result<String, String>>> = RwSignal::new(said.map(Ok));
    let busy = RwSignal::new(false);
    let ready = super::hydrated();
    let blocked = move || busy.get() || !ready.get();
    let confirming_removal = RwSignal::new(false);
    let apply = move |value: String| {
        busy.set(true);
        outcome.set(None);
        spawn_local(async move {
            match save_budget(value).await {
                Ok(_) => show_change(Panel::Budget),
                Err(e) => {
                    busy.set(false);
                    confirming_removal.set(false);
                    outcome.set(Some(Err(e.to_string())));
                }
            }
        });
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let value = input.get_untracked();
        if value.trim().is_empty() {
            outcome.set(Some(Err("Enter an amount in dollars, e.g. 25; to have no ceiling, use Remove ceiling.".into())));
            return;
        }
        apply(value);
    };
    view! {
        {has_ceiling.then(|| view! {
            <p>
                <button type="button" class="danger" id="budget-remove" hidden=move || confirming_removal.get() disabled=move || !ready.get()
                    on:click=move |_| confirming_removal.set(true)>"Remove ceiling"</button>
            </p>
            <div class="confirm" role="group" aria-labelledby="budget-remove-title" hidden=move || !confirming_removal.get()>
                <p id="budget-remove-title"><strong>"Remove the monthly ceiling?"</strong>" Runs will then commit your account's money without a monthly limit."</p>
                <button type="button" class="danger" id="budget-remove-confirm" disabled=blocked
                    on:click=move |_| apply(String::new())>"Yes, remove it"</button>
                <button type="button" on:click=move |_| confirming_removal.set(false)>"Keep it"</button>
            </div>
        })}
        <form on:submit=save class="paste-row">
            <label for="budget-input">"Ceiling in USD"</label>
            <input id="budget-input" type="text" inputmode="decimal" placeholder="e.g. 25" value=ceiling
                prop:value=move || input.get() on:input=move |ev| input.set(event_target_value(&ev))/>
            <button type="submit" id="budget-save" disabled=blocked>"Save"</button>
        </form>
        <p class="hint">"Every run commits its cap when it starts. When a run would push this month past the ceiling, it is not started and fails with \"monthly budget reached\"."</p>
        <div aria-live="polite">
            {move || outcome.get().map(|r| match r {
                Ok(text) => Either::Left(view! { <p class="ok" role="status" id="budget-outcome">{text}</p> }),
                Err(text) => Either::Right(view! { <p class="error" role="alert" id="budget-outcome">{text}</p> }),
            })}
        </div>
    }
}
