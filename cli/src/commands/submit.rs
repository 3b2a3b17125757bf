//! `oro submit --agent-name N FILE`: checks that an inference provider is connected, then
//! uploads the agent as oro-sdk does (multipart `agent_name` and `file`, `text/x-python`).

use std::path::Path;

use serde_json::Value;
use wire::api::{InferenceAuthList, SubmitAnswer};

use crate::client::{ApiClient, printable};
use crate::error::CliError;
use crate::output::{Output, body_json, local_datetime};

pub const NO_PROVIDER_CONNECTED: &str = "No inference provider connected. Run `oro inference connect chutes` (interactive) or `oro inference connect openrouter --api-key sk-or-v1-...` before submitting.";

/// What a submission with nothing connected may do: on a terminal, connect Chutes first.
pub struct FirstConnect {
    /// stdin and stdout are a terminal and the output is not JSON: a person can answer.
    pub interactive: bool,
    /// Ask before opening the browser (no `--yes`).
    pub ask: bool,
    pub chutes: crate::commands::inference::ChutesConnectOptions,
}

/// How to connect the other way, said whenever the Chutes connection does not happen.
const OPENROUTER_INSTEAD: &str = "Nothing was submitted. To use OpenRouter instead: `oro inference connect openrouter` (it asks for your management key), then submit again.";

/// The agent file, read before the wallet is touched.
pub struct AgentFile {
    pub display_path: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

pub fn read_agent_file(path: &Path) -> Result<AgentFile, CliError> {
    let display_path = path.display().to_string();
    if !path.is_file() {
        return Err(CliError::Usage(format!("Agent file not found: {display_path}")));
    }
    let bytes = std::fs::read(path).map_err(|e| CliError::Usage(format!("cannot read the agent file {display_path}: {}", e.kind())))?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "agent.py".into());
    Ok(AgentFile { display_path, file_name, bytes })
}

/// `1234567` -> `1,234,567` (Python's `{:,}`).
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn submit(
    client: &ApiClient,
    wallet_name: &str,
    agent_name: &str,
    agent: AgentFile,
    first: &FirstConnect,
    out: Output,
) -> Result<(), CliError> {
    out.line(&format!("Wallet:  {wallet_name} ({})", client.hotkey().ss58()));
    out.line(&format!("Agent:   {agent_name}"));
    out.line(&format!("File:    {} ({} bytes)", agent.display_path, thousands(agent.bytes.len())));
    out.line(&format!("Backend: {}", client.base_url()));
    out.line("");

    let status = client.expect(client.get("/v1/miner/inference-auth")?, &[200])?;
    let list: InferenceAuthList = client.parse(&status, "an inference-auth list ({providers, default_provider})")?;
    let mut list = list;
    if !list.providers.iter().any(|p| p.connected) {
        if !first.interactive {
            return Err(CliError::Refused(NO_PROVIDER_CONNECTED.into()));
        }
        connect_chutes_first(client, wallet_name, first, out)?;
        let status = client.expect(client.get("/v1/miner/inference-auth")?, &[200])?;
        list = client.parse(&status, "an inference-auth list ({providers, default_provider})")?;
        if !list.providers.iter().any(|p| p.connected) {
            return Err(CliError::Refused(format!("Chutes did not end up connected. {OPENROUTER_INSTEAD}")));
        }
        out.line("");
    }
    let mut connected: Vec<&str> = list.providers.iter().filter(|p| p.connected).map(|p| p.provider.as_str()).collect();
    connected.sort_unstable();
    let mut inference = format!("Inference: connected={}", connected.join(", "));
    if let Some(default) = list.default_provider {
        inference.push_str(&format!(", default={default}"));
    }
    out.line(&inference);
    out.line("");

    let AgentFile { file_name, bytes, .. } = agent;
    let form = crate::client::multipart(&[("agent_name", agent_name)], ("file", &file_name, "text/x-python", &bytes));
    let response = client.send(reqwest::Method::POST, "/v1/miner/submit", form)?;
    match response.status {
        200 => {
            let answer: SubmitAnswer = client.parse(&response, "a submit answer ({admission_status, hotkey, ...})")?;
            if out.json {
                out.json_value(&body_json(&response.body));
            } else {
                for line in answer_lines(&answer) {
                    println!("{line}");
                }
                if answer.admission_status.eq_ignore_ascii_case("accepted") {
                    println!();
                    println!("Watch it: `oro runs` lists your runs with status, provider and spend, or {}/dashboard.", client.base_url());
                }
            }
            Ok(())
        }
        400 | 413 | 422 | 429 | 503 => match response.json().as_ref().and_then(known_refusal) {
            Some(refused) => Err(refused),
            None => Err(crate::client::refusal(&response).into()),
        },
        _ => Err(crate::client::refusal(&response).into()),
    }
}

/// No provider yet, on a terminal: say so, ask (unless `--yes`), and run the same Chutes flow
/// as `oro inference connect chutes`. A "no", a denied consent, a timeout or Ctrl-C leave
/// nothing submitted and say how to connect OpenRouter instead.
fn connect_chutes_first(client: &ApiClient, wallet_name: &str, first: &FirstConnect, out: Output) -> Result<(), CliError> {
    out.line("No inference provider connected: connecting Chutes first (your browser opens Chutes' consent page).");
    if first.ask {
        eprint!("Connect Chutes now? [Y/n] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(|e| CliError::Usage(format!("cannot read the answer: {e}")))?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "n" | "no") {
            return Err(CliError::Refused(OPENROUTER_INSTEAD.into()));
        }
    }
    let interrupted = interrupt_says(OPENROUTER_INSTEAD);
    let connected = crate::commands::inference::connect_chutes(client, wallet_name, &first.chutes, out);
    interrupted.store(false, std::sync::atomic::Ordering::SeqCst);
    connected.map_err(|e| CliError::Refused(format!("{e}\n{OPENROUTER_INSTEAD}")))
}

/// Ctrl-C while the flag is up prints `message` and exits 130; afterwards it exits 130 quietly.
fn interrupt_says(message: &'static str) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watching = flag.clone();
    let (ready, registered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            let _ = ready.send(());
            return;
        };
        runtime.block_on(async {
            // Registered before the flow starts: a Ctrl-C right after the URL is printed is ours.
            let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
            let _ = ready.send(());
            let Ok(mut interrupt) = interrupt else { return };
            if interrupt.recv().await.is_some() {
                if watching.load(std::sync::atomic::Ordering::SeqCst) {
                    // One write: eprintln! writes each piece separately, and the flow's own
                    // lines (printed by the other thread at this very moment) could land
                    // between "Interrupted." and what it means.
                    use std::io::Write;
                    let _ = std::io::stderr().write_all(format!("\nInterrupted. {message}\n").as_bytes());
                }
                std::process::exit(130);
            }
        });
    });
    let _ = registered.recv();
    flag
}

/// oro-sdk's lines for a 200: `Status:`, then `Version:`, `Message:`, `Reason: `,
/// `Next allowed at:` for the fields that are present.
pub fn answer_lines(answer: &SubmitAnswer) -> Vec<String> {
    let mut lines = vec![format!("Status:  {}", printable(&answer.admission_status))];
    let next = answer.next_allowed_at.as_deref().map(|t| local_datetime(t, ' '));
    let fields = [
        ("Version:", answer.agent_version_id.as_deref().map(printable)),
        ("Message:", Some(printable(&answer.message)).filter(|m| !m.is_empty())),
        ("Reason: ", answer.admission_reason.as_deref().map(printable)),
        ("Next allowed at:", next),
    ];
    for (label, value) in fields {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            lines.push(format!("{label} {value}"));
        }
    }
    lines
}

/// A submit refusal with a string `detail` (400/413/422/429/503): `Error: {detail}` and,
/// for a failed code analysis, one line per violation.
fn known_refusal(body: &Value) -> Option<CliError> {
    let detail = body.get("detail")?.as_str()?;
    let violations = body
        .get("violations")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|v| {
                    let message = v.get("message").and_then(Value::as_str).map(printable).unwrap_or_default();
                    let rule = v.get("rule").and_then(Value::as_str).map(printable).unwrap_or_default();
                    match v.get("line").filter(|l| !l.is_null()) {
                        Some(line) => format!("  Line {line}: {message} ({rule})"),
                        None => format!("  {message} ({rule})"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(CliError::SubmitRefused { detail: printable(detail), violations })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_are_grouped_like_python() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn answers_print_like_oro_sdk() {
        let accepted: SubmitAnswer = serde_json::from_value(json!({
            "admission_status": "ACCEPTED", "hotkey": "5E", "agent_id": "a", "agent_version_id": "2222",
            "admission_reason": null, "next_allowed_at": null, "message": "Agent submitted successfully"
        }))
        .unwrap();
        assert_eq!(answer_lines(&accepted), vec!["Status:  ACCEPTED", "Version: 2222", "Message: Agent submitted successfully"]);
        let rejected: SubmitAnswer = serde_json::from_value(json!({
            "admission_status": "REJECTED", "hotkey": "5E", "agent_id": null, "agent_version_id": null,
            "admission_reason": "COOLDOWN", "next_allowed_at": "2025-01-02T03:04:05+00:00", "message": "wait"
        }))
        .unwrap();
        assert_eq!(
            answer_lines(&rejected),
            vec!["Status:  REJECTED", "Message: wait", "Reason:  COOLDOWN", "Next allowed at: 2025-01-02 03:04:05+00:00"]
        );
    }

    #[test]
    fn refusals_print_detail_and_violations() {
        let refused = known_refusal(&json!({
            "detail": "Static analysis failed",
            "violations": [{"line": 3, "message": "import os not allowed", "rule": "forbidden-import"}, {"message": "m", "rule": "r"}]
        }))
        .unwrap();
        assert_eq!(refused.report(), "Error: Static analysis failed\n\n  Line 3: import os not allowed (forbidden-import)\n  m (r)");
        assert!(known_refusal(&json!({"detail": [{"msg": "x"}]})).is_none());
    }
}
