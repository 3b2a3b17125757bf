//! `oro budget show | set USD | clear`: the monthly ceiling on what ORO runs may commit on the
//! miner's OpenRouter account (our addition; oro-sdk has no such command).

use wire::api::{Budget, SetBudget};

use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{Output, body_json};

fn describe(budget: &Budget) -> String {
    match budget.monthly_usd {
        Some(ceiling) => format!(
            "Monthly budget: ${ceiling:.2}; committed in {}: ${:.2} (run caps, or their spend once recorded).",
            budget.month, budget.committed_usd
        ),
        None => format!("Monthly budget: none; committed in {}: ${:.2}.", budget.month, budget.committed_usd),
    }
}

/// The budget, and a warning on stderr when it leaves no room for the next run.
fn tell(budget: &Budget, out: Output) {
    out.line(&describe(budget));
    if let Some(cap) = budget.run_cap_usd {
        out.line(&format!("Each run commits its cap of ${cap:.2} when it starts."));
    }
    if let Some(warning) = budget.warning() {
        eprintln!("Warning: {warning}");
    }
}

pub fn show(client: &ApiClient, out: Output) -> Result<(), CliError> {
    let response = client.expect(client.get("/v1/miner/budget")?, &[200])?;
    let budget: Budget = client.parse(&response, "a budget")?;
    tell(&budget, out);
    out.json_value(&body_json(&response.body));
    Ok(())
}

/// `None` clears the ceiling.
pub fn set(client: &ApiClient, monthly_usd: Option<f64>, out: Output) -> Result<(), CliError> {
    if monthly_usd.is_some_and(|v| !v.is_finite() || v < 0.01) {
        return Err(CliError::Usage(
            "the budget must be at least $0.01, e.g. `oro budget set 25`; `oro budget clear` removes the ceiling".into(),
        ));
    }
    let response = client.send(reqwest::Method::PUT, "/v1/miner/budget", crate::client::json_request(&SetBudget { monthly_usd }))?;
    let response = client.expect(response, &[200])?;
    let budget: Budget = client.parse(&response, "a budget")?;
    tell(&budget, out);
    out.json_value(&body_json(&response.body));
    Ok(())
}
