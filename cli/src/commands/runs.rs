//! `oro runs [list] | stop ID`: the miner's evaluation runs, and Stop inference (our addition;
//! oro-sdk has no such command).

use wire::api::{RunList, StoppedInference};

use crate::client::ApiClient;
use crate::error::CliError;
use crate::output::{Output, body_json};

pub fn list(client: &ApiClient, out: Output) -> Result<(), CliError> {
    let response = client.expect(client.get("/v1/miner/runs")?, &[200])?;
    let list: RunList = client.parse(&response, "a run list")?;
    if list.runs.is_empty() {
        out.line("No evaluation runs yet: `oro submit` queues one.");
    }
    for run in &list.runs {
        let provider = run.provider.map(|p| p.display_name().to_owned()).unwrap_or_else(|| "your default provider".into());
        let money = match (run.spend_usd, run.cap_usd) {
            (Some(spent), Some(cap)) => format!(", spent ${spent:.4} of ${cap:.2}"),
            (None, Some(cap)) => format!(", cap ${cap:.2}"),
            _ => String::new(),
        };
        let reason = run.failure_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let stopped = if run.inference_stopped { ", inference stopped" } else { "" };
        out.line(&format!("{}  {}  {} on {provider}{money}{stopped}{reason}", run.eval_run_id, run.agent_name, run.status));
    }
    out.json_value(&body_json(&response.body));
    Ok(())
}

pub fn stop(client: &ApiClient, eval_run_id: &str, out: Output) -> Result<(), CliError> {
    let response = client.post_json(&format!("/v1/miner/runs/{eval_run_id}/stop"), &serde_json::json!({}))?;
    let response = client.expect(response, &[200])?;
    let stopped: StoppedInference = client.parse(&response, "a stopped run")?;
    out.line(&stopped.message);
    out.json_value(&body_json(&response.body));
    Ok(())
}
