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
