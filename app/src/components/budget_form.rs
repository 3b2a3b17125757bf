//! The monthly ceiling on what ORO runs may commit: shown (on the server) with the per-run cap
//! it must leave room for, set by amount, removed only by its own confirmed button. The
//! island (`BudgetActions`) renders nothing of its own: it runs the server's form (`live`).

use leptos::either::Either;
use leptos::prelude::*;

use crate::error::AppError;
use crate::view::BudgetView;

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

/// The amount field, Save, and Remove ceiling with its question, rendered here and run by the
/// island around them. A saved budget reloads the dashboard, which shows it with the sentence
/// the server kept (`said`).
#[component]
fn BudgetForm(
    /// The field's starting value: the ceiling, or empty.
    ceiling: String,
    has_ceiling: bool,
    said: Option<String>,
) -> impl IntoView {
    view! {
        <BudgetActions>
            {has_ceiling.then(|| view! {
                <p>
                    // Enabled by the island once it runs (as Save): before, a click would do nothing.
                    <button type="button" class="danger" id="budget-remove" disabled>"Remove ceiling"</button>
                </p>
                <div class="confirm" role="group" id="budget-remove-question" aria-labelledby="budget-remove-title" hidden>
                    <p id="budget-remove-title"><strong>"Remove the monthly ceiling?"</strong>" Runs will then commit your account's money without a monthly limit."</p>
                    <button type="button" class="danger" id="budget-remove-confirm">"Yes, remove it"</button>
                    <button type="button" id="budget-remove-keep">"Keep it"</button>
                </div>
            })}
            <form class="paste-row" id="budget-form">
                <label for="budget-input">"Ceiling in USD"</label>
                <input id="budget-input" type="text" inputmode="decimal" placeholder="e.g. 25" value=ceiling/>
                <button type="submit" id="budget-save" disabled>"Save"</button>
            </form>
            <p class="hint">"Every run commits its cap when it starts. When a run would push this month past the ceiling, it is not started and fails with \"monthly budget reached\"."</p>
            <div aria-live="polite" id="budget-said">
                {said.map(|text| view! { <p class="ok" role="status" id="budget-outcome">{text}</p> })}
            </div>
        </BudgetActions>
    }
}

/// The budget form's island: it hears Save and the removal's buttons on the form the server
/// rendered (its children).
#[island]
fn BudgetActions(children: Children) -> impl IntoView {
    Effect::new(|_| live::start());
    view! { <div class="island-events" on:submit=|ev| live::submitted(&ev) on:click=|ev| live::clicked(&ev)>{children()}</div> }
}

#[cfg(feature = "hydrate")]
mod live {
    use leptos::task::spawn_local;

    use crate::api::call::save_budget;
    use crate::browser::dom::{self, Event, Outcome};
    use crate::view::Panel;

    const BUTTONS: [&str; 3] = ["budget-save", "budget-remove", "budget-remove-confirm"];

    pub fn start() {
        set_busy(false);
    }

    fn set_busy(busy: bool) {
        for id in BUTTONS {
            if let Some(button) = dom::by_id(id) {
                dom::set_disabled(&button, busy);
            }
        }
    }

    fn say(outcome: Outcome, text: &str) {
        if let Some(place) = dom::by_id("budget-said") {
            dom::say(&place, "p", "budget-outcome", outcome, text);
        }
    }

    fn ask_removal(asking: bool) {
        let (Some(remove), Some(question)) = (dom::by_id("budget-remove"), dom::by_id("budget-remove-question")) else { return };
        dom::set_hidden(&remove, asking);
        dom::set_hidden(&question, !asking);
        if let Some(next) = dom::by_id(if asking { "budget-remove-confirm" } else { "budget-remove" }) {
            dom::focus(&next);
        }
    }

    /// Saved: the dashboard is loaded again and says so. Refused: said here, the field as typed.
    fn apply(value: String) {
        set_busy(true);
        if let Some(place) = dom::by_id("budget-said") {
            place.set_text_content(None);
        }
        spawn_local(async move {
            match save_budget(value).await {
                Ok(()) => crate::components::show_change(Panel::Budget),
                Err(e) => {
                    set_busy(false);
                    if dom::by_id("budget-remove-question").is_some_and(|q| !q.has_attribute("hidden")) {
                        ask_removal(false);
                    }
                    say(Outcome::Refused, &e.to_string());
                }
            }
        });
    }

    pub fn submitted(ev: &Event) {
        ev.prevent_default();
        let value = dom::value_of("budget-input");
        if value.trim().is_empty() {
            say(Outcome::Refused, "Enter an amount in dollars, e.g. 25; to have no ceiling, use Remove ceiling.");
            return;
        }
        apply(value);
    }

    pub fn clicked(ev: &Event) {
        let Some(button) = dom::target_button(ev) else { return };
        match button.id().as_str() {
            "budget-remove" => ask_removal(true),
            "budget-remove-keep" => ask_removal(false),
            "budget-remove-confirm" => apply(String::new()),
            _ => {}
        }
    }
}

/// Off the browser the island is never run.
#[cfg(not(feature = "hydrate"))]
mod live {
    pub fn start() {}
    pub fn submitted(_: &leptos::ev::SubmitEvent) {}
    pub fn clicked(_: &leptos::ev::MouseEvent) {}
}
