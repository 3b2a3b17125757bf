//! `oro submit`: refused locally without a connected provider; uploaded otherwise.

use crate::helpers::*;

const NO_PROVIDER: &str = "Error: No inference provider connected. Run `oro inference connect chutes` (interactive) or `oro inference connect openrouter --api-key sk-or-v1-...` before submitting.\n";

fn agent_file(code: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oro-cli-agent-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.py");
    std::fs::write(&path, code).unwrap();
    path
}

const AGENT: &str = "def solve(task):\n    return 'ok'\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_is_refused_locally_without_a_provider() {
    let app = spawn_app().await;
    let path = agent_file(AGENT);
    let file = path.to_str().unwrap();
    let out = app.oro(&["submit", "--agent-name", "my-agent", file]).run().await;
    out.assert_code(1).assert_clean();
    assert_eq!(out.stderr, NO_PROVIDER);
    assert_eq!(
        out.lines(),
        vec![
            format!("Wallet:  plain ({})", wallets().plain_ss58),
            "Agent:   my-agent".to_owned(),
            format!("File:    {file} ({} bytes)", AGENT.len()),
            format!("Backend: {}", app.address),
            String::new(),
        ]
    );
    let (versions,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM agent_versions").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(versions, 0, "nothing was uploaded");

    let missing = app.oro(&["submit", "--agent-name", "my-agent", "/nonexistent/agent.py"]).run().await;
    missing.assert_code(2);
    assert_eq!(missing.stderr, "Error: Agent file not found: /nonexistent/agent.py\n");
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_uploads_the_agent_when_a_provider_is_connected() {
    let app = spawn_app().await;
    let key = app.sim.create_openrouter_account(20.0);
    app.oro(&["inference", "connect", "openrouter", "--api-key", &key]).run().await.assert_ok();
    let path = agent_file(AGENT);
    let out = app.oro(&["submit", "--agent-name", "my-agent", "--agent-file", path.to_str().unwrap()]).run().await;
    out.assert_ok().assert_clean();
    let lines = out.lines();
    assert_eq!(lines[5], "Inference: connected=openrouter, default=openrouter", "{}", out.stdout);
    assert_eq!(lines[7], "Status:  ACCEPTED", "{}", out.stdout);
    assert!(lines[8].starts_with("Version: "), "{}", out.stdout);
    assert!(out.stdout.contains("Message: "), "{}", out.stdout);
    assert_eq!(
        lines.last().copied(),
        Some(format!("Watch it: `oro runs` lists your runs with status, provider and spend, or {}/dashboard.", app.address).as_str()),
        "the miner is told where to follow the run"
    );

    let (name, file_name, code): (String, String, Vec<u8>) =
        sqlx::query_as("SELECT a.agent_name, v.file_name, v.code FROM agent_versions v JOIN agents a ON a.id = v.agent_id")
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
    assert_eq!((name.as_str(), file_name.as_str(), code.as_slice()), ("my-agent", "agent.py", AGENT.as_bytes()));

    // --json: the server's answer.
    let again = app.oro(&["submit", "--agent-name", "my-agent", path.to_str().unwrap(), "--json"]).run().await;
    again.assert_ok();
    let body = again.json();
    assert_eq!(body["admission_status"], "ACCEPTED");
    assert_eq!(body["hotkey"], wallets().plain_ss58.as_str());
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// `oro submit` on a terminal with nothing connected, as a person runs it (a pseudo-terminal),
/// the Chutes flow driven through the simulated IdP.
async fn start_first_submit(app: &TestApp, extra: &[&str]) -> (RunningOro, Option<String>) {
    let path = agent_file(AGENT);
    let chutes_base = app.chutes_base();
    let mut args = vec!["submit", "--agent-name", "first-agent", path.to_str().unwrap(), "--no-browser", "--chutes-base", &chutes_base];
    args.extend_from_slice(extra);
    let mut oro = app.oro(&args).env("CHUTES_CLIENT_ID", &app.services.settings.chutes_client_id).in_terminal().spawn();
    if extra.contains(&"--yes") {
        let line = oro.line_containing("/idp/authorize?").await;
        return (oro, Some(url_in(&line)));
    }
    (oro, None)
}

async fn runs_of_the_test_wallet(app: &TestApp) -> usize {
    let hotkey = service::domain::Hotkey::parse(&wallets().plain_ss58).unwrap();
    app.services.miner_runs(&hotkey, 50).await.unwrap().runs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_submit_on_a_terminal_connects_chutes_then_submits() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, url) = start_first_submit(&app, &["--yes"]).await;
    let url = url.unwrap();
    let callback = consent(&app.chutes_base(), &url, "first-timer", "allow").await;
    assert_eq!(browser_get(&callback).await.0, 200);
    let out = oro.finish().await;
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("No inference provider connected: connecting Chutes first"), "{}", out.stdout);
    assert!(out.stdout.contains("Connected Chutes; it is your default."), "{}", out.stdout);
    assert!(out.stdout.contains("Inference: connected=chutes, default=chutes"), "{}", out.stdout);
    assert!(out.stdout.contains("Status:  ACCEPTED"), "{}", out.stdout);
    assert_eq!(runs_of_the_test_wallet(&app).await, 1, "the submission is queued in the same command");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_or_a_denied_consent_or_ctrl_c_submits_nothing() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;

    // "n" at the question.
    let (mut oro, _) = start_first_submit(&app, &[]).await;
    oro.type_keys(b"n\r").await;
    let out = oro.finish().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("Connect Chutes now? [Y/n]"), "{}", out.stdout);
    assert!(out.stdout.contains("Nothing was submitted. To use OpenRouter instead: `oro inference connect openrouter`"), "{}", out.stdout);

    // Deny on Chutes' consent page.
    let (oro, url) = start_first_submit(&app, &["--yes"]).await;
    let callback = consent(&app.chutes_base(), &url.unwrap(), "first-timer", "deny").await;
    browser_get(&callback).await;
    let out = oro.finish().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("you denied access") && out.stdout.contains("Nothing was submitted"), "{}", out.stdout);

    // Ctrl-C while the browser flow waits.
    let (mut oro, _) = start_first_submit(&app, &["--yes"]).await;
    oro.type_keys(b"\x03").await;
    let out = oro.finish().await;
    assert_eq!(out.code, 130, "{}", out.stdout);
    assert!(out.stdout.contains("Interrupted. Nothing was submitted"), "{}", out.stdout);

    assert_eq!(runs_of_the_test_wallet(&app).await, 0);
    let status = app.oro(&["inference", "status", "--json"]).run().await;
    assert!(status.json()["providers"].as_array().unwrap().iter().all(|p| p["connected"] == false), "nothing connected");
}

/// In a pipe (or with --json) the refusal stays: scripts never wait on a browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_or_json_never_opens_the_flow() {
    let app = spawn_app().await;
    let path = agent_file(AGENT);
    let out = app.oro(&["submit", "--agent-name", "piped", path.to_str().unwrap(), "--yes"]).run().await;
    out.assert_code(1);
    assert_eq!(out.stderr, NO_PROVIDER);
    let out = app.oro(&["--json", "submit", "--agent-name", "piped", path.to_str().unwrap(), "--yes"]).in_terminal().run().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(!out.stdout.contains("/idp/authorize"), "{}", out.stdout);
}
