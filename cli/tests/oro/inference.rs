//! `oro inference status|connect openrouter|set-default|disconnect` against the real server.

use crate::helpers::*;

fn header(app: &TestApp, provider: Option<&str>) -> Vec<String> {
    let mut lines = vec![format!("Wallet:   plain ({})", wallets().plain_ss58)];
    if let Some(p) = provider {
        lines.push(format!("Provider: {p}"));
    }
    lines.push(format!("Backend:  {}", app.address));
    lines.push(String::new());
    lines
}

fn row<'a>(status: &'a serde_json::Value, provider: &str) -> Option<&'a serde_json::Value> {
    status["providers"].as_array().unwrap().iter().find(|p| p["provider"] == provider)
}

fn connected(status: &serde_json::Value, provider: &str) -> bool {
    row(status, provider).is_some_and(|p| p["connected"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_nothing_then_the_connected_provider() {
    let app = spawn_app().await;

    let none = app.oro(&["inference", "status"]).run().await;
    none.assert_ok().assert_clean();
    assert_eq!(none.lines()[..3], header(&app, None)[..3]);
    assert_eq!(none.lines().last().copied(), Some("No providers connected. Run `oro inference connect <provider>` first."));

    let key = app.sim.create_openrouter_account(20.0);
    let connect = app.oro(&["inference", "connect", "openrouter", "--api-key", &key]).run().await;
    connect.assert_ok().assert_clean();
    let mut expected = header(&app, Some("openrouter"));
    expected.push(format!("Connected OpenRouter (sk-or-v1-...{}); it is your default.", &key[key.len() - 4..]));
    assert_eq!(connect.lines(), expected);
    assert!(!connect.stdout.contains(&key) && !connect.stderr.contains(&key), "the key is never echoed");

    let status = app.oro(&["inference", "status"]).run().await;
    status.assert_ok();
    let lines = status.lines();
    assert!(lines[3].starts_with("Provider       Connected  Default  Updated"), "{}", status.stdout);
    assert_eq!(lines[4], "─".repeat(60));
    let openrouter = lines.iter().find(|l| l.starts_with("openrouter")).expect("an openrouter row");
    assert!(openrouter.starts_with("openrouter     yes        yes      20"), "{openrouter}");
    assert!(openrouter.contains("+00:00"), "{openrouter}");
    assert!(openrouter.contains("connected"), "{openrouter}");
    assert!(openrouter.ends_with(&format!("sk-or-v1-...{}", &key[key.len() - 4..])), "{openrouter}");
    assert!(!status.stdout.contains("No providers connected"));
    assert!(!status.stdout.contains(&key[9..]), "only the masked label is shown");

    // In this machine's time zone.
    let india = app.oro(&["inference", "status"]).env("TZ", "IST-5:30").run().await;
    let row = india.lines().into_iter().find(|l| l.starts_with("openrouter")).expect("an openrouter row").to_owned();
    assert!(row.contains("+05:30"), "{row}");

    let json = app.oro(&["inference", "status", "--json"]).run().await;
    json.assert_ok();
    let body = json.json();
    assert_eq!(body["default_provider"], "openrouter");
    assert!(connected(&body, "openrouter"));
    assert!(!connected(&body, "chutes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_openrouter_reads_the_key_from_stdin() {
    let app = spawn_app().await;
    let key = app.sim.create_openrouter_account(20.0);
    let out = app.oro(&["inference", "connect", "openrouter", "--api-key", "-"]).stdin(format!("{key}\n").as_bytes()).run().await;
    out.assert_ok().assert_clean();
    assert!(out.lines().last().unwrap().starts_with("Connected OpenRouter (sk-or-v1-..."), "{}", out.stdout);
    assert!(!out.stdout.contains(&key) && !out.stderr.contains(&key));
    let status = app.oro(&["inference", "status", "--json"]).run().await;
    assert!(connected(&status.json(), "openrouter"));

    // Nothing on stdin: a usage error, nothing sent.
    let empty = app.oro(&["inference", "connect", "openrouter", "--api-key", "-"]).stdin(b"").run().await;
    empty.assert_code(2).assert_clean();
    assert!(empty.stderr.starts_with("Error: --api-key -:"), "{}", empty.stderr);
    // No key at all: oro-sdk's message, exit 2.
    let missing = app.oro(&["inference", "connect", "openrouter"]).run().await;
    missing.assert_code(2);
    assert!(missing.stderr.starts_with("Error: --api-key is required for openrouter."), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_exits_1_with_the_servers_detail() {
    let app = spawn_app().await;
    let inference_key = app.sim.create_openrouter_inference_key(10.0);
    let out = app.oro(&["inference", "connect", "openrouter", "--api-key", &inference_key]).run().await;
    out.assert_code(1).assert_clean();
    assert!(out.stderr.starts_with("Error (HTTP 400): "), "{}", out.stderr);
    assert!(out.stderr.contains("not a management key"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(!out.stdout.contains("Connected"));
    assert!(!out.stdout.contains(&inference_key) && !out.stderr.contains(&inference_key));

    // A malformed key: FastAPI's 422 list, printed as its messages.
    let shape = app.oro(&["inference", "connect", "openrouter", "--api-key", "sk-ant-0123"]).run().await;
    shape.assert_code(1);
    assert!(shape.stderr.starts_with("Error (HTTP 422): "), "{}", shape.stderr);
    assert!(shape.stderr.contains("sk-or-v1-"), "{}", shape.stderr);
    assert!(!shape.stderr.contains("\"loc\""), "the list is printed as messages: {}", shape.stderr);

    let status = app.oro(&["inference", "status", "--json"]).run().await;
    assert!(!connected(&status.json(), "openrouter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_default_and_disconnect() {
    let app = spawn_app().await;
    let key = app.sim.create_openrouter_account(20.0);
    app.oro(&["inference", "connect", "openrouter", "--api-key", &key]).run().await.assert_ok();

    let set = app.oro(&["inference", "set-default", "openrouter"]).run().await;
    set.assert_ok().assert_clean();
    let mut expected = header(&app, Some("openrouter"));
    expected
        .push("OpenRouter is now your default: the next evaluation claimed uses it (runs already going finish where they started).".into());
    assert_eq!(set.lines(), expected);

    // Chutes is not connected: the server refuses, exit 1.
    let refused = app.oro(&["inference", "set-default", "chutes"]).run().await;
    refused.assert_code(1).assert_clean();
    assert!(refused.stderr.starts_with("Error (HTTP 4"), "{}", refused.stderr);
    assert!(!refused.stdout.contains("is now your default"));
    // Not a provider at all: bad usage.
    app.oro(&["inference", "set-default", "anthropic"]).run().await.assert_code(2);

    let gone = app.oro(&["inference", "disconnect", "openrouter"]).run().await;
    gone.assert_ok().assert_clean();
    let mut expected = header(&app, Some("openrouter"));
    expected.push("Disconnected OpenRouter. No provider is connected now: connect one before your next submission.".into());
    assert_eq!(gone.lines(), expected);
    // Again: already so, a friendly no-op.
    let again = app.oro(&["inference", "disconnect", "openrouter"]).run().await;
    again.assert_ok().assert_clean();
    assert_eq!(again.lines().last().copied(), Some("OpenRouter was not connected; nothing to do."));
    let status = app.oro(&["inference", "status", "--json"]).run().await;
    assert!(!connected(&status.json(), "openrouter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_servers_json() {
    let app = spawn_app().await;
    let key = app.sim.create_openrouter_account(20.0);
    let connect = app.oro(&["inference", "connect", "openrouter", "--api-key", &key, "--json"]).run().await;
    connect.assert_ok();
    let body = connect.json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["provider"], "openrouter");

    let set = app.oro(&["--json", "inference", "set-default", "openrouter"]).run().await;
    set.assert_ok();
    assert_eq!(set.json()["default_provider"], "openrouter");

    let status = app.oro(&["inference", "status", "--json"]).run().await;
    status.assert_ok();
    let body = status.json();
    assert!(body["providers"].is_array());
    assert!(!status.stdout.contains("Wallet:"), "no header in JSON mode");

    let gone = app.oro(&["inference", "disconnect", "openrouter", "--json"]).run().await;
    gone.assert_ok();
    assert_eq!(gone.json()["ok"], true);
}

/// With `--json` a refusal is JSON on stdout too (the exit code unchanged); a base URL that is
/// not this service says so; the wallet can come from the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_as_json_wrong_base_urls_and_the_wallet_from_the_environment() {
    let app = spawn_app().await;
    let refused = app.oro(&["inference", "set-default", "chutes", "--json"]).run().await;
    refused.assert_code(1);
    let error = &refused.json()["error"];
    assert_eq!(error["status"], 409, "{}", refused.stdout);
    assert_eq!(error["exit_code"], 1);
    assert!(error["message"].as_str().unwrap().contains("is not connected"), "{}", refused.stdout);
    assert!(error["detail"]["detail"].is_string(), "the server's own body: {}", refused.stdout);

    // Another service at the base URL: its 404 says what is probably wrong.
    let elsewhere = oro_against(&format!("{}/not-the-api", app.address), &["inference", "status"]).run().await;
    elsewhere.assert_code(1);
    assert!(elsewhere.stderr.contains("an oro-inference server?"), "{}", elsewhere.stderr);
    assert!(elsewhere.stderr.contains("--base-url"), "{}", elsewhere.stderr);

    let from_env = app.oro(&["inference", "status"]).wallet_from_env().run().await;
    from_env.assert_ok();
    assert_eq!(from_env.lines()[0], format!("Wallet:   plain ({})", wallets().plain_ss58));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_printed_for_each_shell() {
    for (shell, marker) in [("bash", "_oro()"), ("zsh", "#compdef oro"), ("fish", "complete -c oro")] {
        let out = oro_against("http://127.0.0.1:9", &["completions", shell]).run().await;
        out.assert_ok();
        assert!(out.stdout.contains(marker), "{shell}: {}", &out.stdout[..out.stdout.len().min(300)]);
    }
    oro_against("http://127.0.0.1:9", &["completions", "tcsh"]).run().await.assert_code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_show_set_clear() {
    let app = spawn_app().await;
    let shown = app.oro(&["budget", "show"]).run().await;
    shown.assert_ok();
    assert!(shown.stdout.starts_with("Monthly budget: none; committed in "), "{}", shown.stdout);
    let set = app.oro(&["budget", "set", "25"]).run().await;
    set.assert_ok();
    assert!(set.stdout.starts_with("Monthly budget: $25.00; committed in "), "{}", set.stdout);
    let json = app.oro(&["budget", "show", "--json"]).run().await;
    assert_eq!(json.json()["monthly_usd"], 25.0);
    app.oro(&["budget", "set", "--", "-3"]).run().await.assert_code(2);
    app.oro(&["budget", "set", "0.001"]).run().await.assert_code(2);
    // Below one run's cap: accepted, with the consequence spelled out.
    let low = app.oro(&["budget", "set", "3"]).run().await;
    low.assert_ok();
    assert!(low.stdout.contains("Each run commits its cap of $5.00 when it starts."), "{}", low.stdout);
    assert!(
        low.stderr.contains("Warning: Every run commits its $5.00 cap when it starts, so a $3.00 ceiling lets no run start"),
        "{}",
        low.stderr
    );
    let cleared = app.oro(&["budget", "clear"]).run().await;
    cleared.assert_ok();
    assert!(cleared.stdout.starts_with("Monthly budget: none"), "{}", cleared.stdout);
}

/// The key from a file (never on the command line), and without any key on a pipe: a
/// refusal that names the ways to give one, never a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_comes_from_a_file_and_never_blocks_a_pipe() {
    let app = spawn_app().await;
    let key = app.sim.create_openrouter_account(20.0);
    let file = std::env::temp_dir().join(format!("oro-key-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, format!("{key}\n")).unwrap();
    let connect = app.oro(&["inference", "connect", "openrouter", "--api-key-file", file.to_str().unwrap()]).run().await;
    connect.assert_ok();
    assert!(connect.stdout.contains("Connected OpenRouter ("), "{}", connect.stdout);
    assert!(!connect.stdout.contains(&key) && !connect.stderr.contains(&key));
    std::fs::remove_file(&file).unwrap();

    let piped = app.oro(&["inference", "connect", "openrouter"]).run().await;
    piped.assert_code(2);
    assert!(piped.stderr.contains("--api-key -") && piped.stderr.contains("--api-key-file"), "{}", piped.stderr);
}

/// `oro runs` lists the miner's runs with provider and spend; `oro runs stop ID` kills a running
/// run's credential (here an OpenRouter run key, disabled at OpenRouter at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_and_stopped() {
    let app = spawn_app().await;
    let empty = app.oro(&["runs"]).run().await;
    empty.assert_ok();
    assert_eq!(empty.stdout, "No evaluation runs yet: `oro submit` queues one.\n");

    let key = app.sim.create_openrouter_account(20.0);
    let miner = service::domain::Hotkey::parse(&wallets().plain_ss58).unwrap();
    app.services.connect_openrouter(&miner, &secrecy::SecretString::from(key.clone())).await.unwrap();
    app.services.submit_agent(&miner, "runner", "agent.py", b"def solve(task):\n    return 1\n").await.unwrap();
    let validator =
        service::domain::Caller { hotkey: service::domain::Hotkey::parse(&wallets().encrypted_ss58).unwrap(), is_validator: true };
    let work = app.services.claim_work(&validator, None).await.unwrap().expect("a run to claim");

    let listed = app.oro(&["runs", "list"]).run().await;
    listed.assert_ok();
    assert_eq!(listed.stdout, format!("{}  runner  running on OpenRouter, cap $5.00\n", work.eval_run_id));

    let stopped = app.oro(&["runs", "stop", &work.eval_run_id]).run().await;
    stopped.assert_ok();
    assert!(
        stopped.stdout.starts_with(&format!("Stopped inference for run {}: its OpenRouter credential no longer works", work.eval_run_id)),
        "{}",
        stopped.stdout
    );
    assert!(app.sim.list_openrouter_keys(&key).iter().all(|k| k.disabled));
    let after = app.oro(&["runs"]).run().await;
    after.assert_ok();
    let line = format!("{}  runner  running on OpenRouter", work.eval_run_id);
    assert!(after.stdout.starts_with(&line) && after.stdout.trim_end().ends_with(", inference stopped"), "{}", after.stdout);

    let unknown = app.oro(&["runs", "stop", "00000000-0000-4000-8000-000000000000"]).run().await;
    unknown.assert_code(1);
    assert!(unknown.stderr.contains("evaluation run not found"), "{}", unknown.stderr);
}
