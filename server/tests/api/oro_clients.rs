//! ORO's real clients against our API, release by release: every oro-sdk release of
//! `server/tests/oro_sdk/versions.txt` (installed by `./dev test` into `.venv-oro/<version>`),
//! its `oro` CLI through every miner command and each refusal, its generated miner client,
//! and its generated validator client driven the way ORO's public validator drives it. The
//! assertions are on what a miner or a validator sees: the exit code, the message, and never
//! a Python traceback.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::Method;
use service::domain::Hotkey;
use tokio::process::Command;

use crate::both_engines;
use crate::helpers::*;

const AGENT: &str = "def run(task):\n    return 'ok'\n";

struct Release {
    version: String,
    cli: bool,
    validator: bool,
}

impl Release {
    fn at_least(&self, want: (u32, u32, u32)) -> bool {
        let parts: Vec<u32> = self.version.split('.').map(|p| p.parse().unwrap()).collect();
        (parts[0], parts[1], parts[2]) >= want
    }

    fn bin(&self, name: &str) -> PathBuf {
        let path = sdk_dir().join("../../../.venv-oro").join(&self.version).join("bin").join(name);
        assert!(
            path.exists(),
            "{} is missing: `./dev test` installs every release of versions.txt (server/tests/oro_sdk/install.sh)",
            path.display()
        );
        path
    }
}

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oro_sdk")
}

/// The releases under test, from the one file that lists them.
fn releases() -> Vec<Release> {
    let text = std::fs::read_to_string(sdk_dir().join("versions.txt")).unwrap();
    let list: Vec<Release> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let version = words.next().unwrap().to_owned();
            let roles: Vec<&str> = words.collect();
            Release { version, cli: roles.contains(&"cli"), validator: roles.contains(&"validator") }
        })
        .collect();
    assert!(list.iter().any(|r| r.version == "4.0.1" && r.cli) && list.iter().any(|r| r.version == "1.0.50" && r.validator));
    list
}

/// Bittensor wallets made by the release's own `bittensor_wallet`, under `home`.
async fn make_wallets(release: &Release, home: &Path, names: &[&str]) -> Vec<String> {
    bittensor_wallets(&release.bin("python"), home, names).await
}

fn fresh_home(tag: &str) -> PathBuf {
    let home = std::env::temp_dir().join(format!("oro-{tag}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&home).unwrap();
    home
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    /// Exit code and a fragment of what the miner reads; never a traceback.
    fn expect(&self, code: i32, says: &str, what: &str) {
        let all = format!("{}{}", self.out, self.err);
        assert!(!all.contains("Traceback"), "{what}: a Python traceback\n{all}");
        assert_eq!(self.code, code, "{what}: exit code\n{all}");
        assert!(all.contains(says), "{what}: expected {says:?}\n{all}");
    }
}

async fn oro(app: &TestApp, release: &Release, home: &Path, args: &[&str]) -> Run {
    let out = Command::new(release.bin("oro"))
        .args(args)
        .args(["--base-url", &app.address, "--wallet-name", "miner", "--wallet-hotkey", "h1"])
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs one of the Python drivers in `server/tests/oro_sdk/` with the release's interpreter.
async fn drive(app: &TestApp, release: &Release, home: &Path, script: &str, expect: serde_json::Value) -> serde_json::Value {
    let out = Command::new(release.bin("python"))
        .arg(sdk_dir().join(script))
        .arg(&app.address)
        .env("HOME", home)
        .env("ORO_EXPECT", expect.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} with oro-sdk {}:\n{stdout}\n{stderr}", release.version);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|_| panic!("{script}: {stdout}"))
}

/// Connects Chutes for a hotkey whose wallet only Python holds, through the service layer
/// (the same exchange `oro inference connect chutes` ends with).
async fn connect_chutes_for(app: &TestApp, hotkey: &str, username: &str) {
    let pkce = service::providers::chutes::pkce();
    let redirect = service::config::CLI_LOOPBACK_REDIRECT_URI;
    app.sim.create_chutes_user(username, 25.0, false);
    let code = app.sim.issue_chutes_code(username, &app.services.settings.chutes_client_id, redirect, &pkce.challenge, "chutes:invoke");
    app.services.connect_chutes_with_code(&Hotkey::parse(hotkey).unwrap(), &code, &pkce.verifier, redirect).await.unwrap();
}

/// Every CLI release through every miner command, each refusal included, then its
/// generated miner client through the routes the CLI does not reach.
async fn every_cli_release_on_every_miner_path(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            extra: vec![
                ("ORO_SUBMIT_COOLDOWN_SECS", "3600".into()),
                // The third submission in an hour meets the rate limit (the second, the cooldown).
                ("ORO_RATE_LIMIT_SUBMIT_PER_HOTKEY", "2/h".into()),
                ("ORO_RATE_LIMIT_SUBMIT_PER_IP", "off".into()),
                ("ORO_RATE_LIMIT_CONNECT_PER_IP", "off".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let mut secrets = Vec::new();
    for release in releases().into_iter().filter(|r| r.cli) {
        let v = release.version.as_str();
        let home = fresh_home(&format!("sdk-{v}"));
        let hotkey = make_wallets(&release, &home, &["miner"]).await.remove(0);
        let agent = home.join("agent.py");
        std::fs::write(&agent, AGENT).unwrap();
        let agent = agent.display().to_string();
        let agent_name = format!("agent-{}", v.replace('.', "-"));
        let submit = ["submit", "--agent-name", &agent_name, "--agent-file", &agent];

        oro(&app, &release, &home, &["inference", "status"]).await.expect(0, "No providers connected.", v);
        oro(&app, &release, &home, &submit).await.expect(1, "No inference provider connected", v);

        // Refused keys: a truncated one is FastAPI's 422 list, an inference key a 400 sentence.
        let truncated = oro(&app, &release, &home, &["inference", "connect", "openrouter", "--api-key", "sk-or-v1-abc"]).await;
        truncated.expect(1, "Error (HTTP 422)", v);
        truncated.expect(1, "truncated", v);
        let inference_key = app.sim.create_openrouter_inference_key(1.0);
        oro(&app, &release, &home, &["inference", "connect", "openrouter", "--api-key", &inference_key]).await.expect(
            1,
            "not a management key",
            v,
        );

        let key = app.sim.create_openrouter_account(50.0);
        secrets.extend([key.clone(), inference_key.clone()]);
        let connected = oro(&app, &release, &home, &["inference", "connect", "openrouter", "--api-key", &key]).await;
        connected.expect(0, "Connected openrouter.", v);
        assert!(!connected.out.contains(&key) && !connected.err.contains(&key), "{v}: the key is never echoed");
        if release.at_least((5, 0, 1)) {
            oro(&app, &release, &home, &["inference", "connect", "chutes"]).await.expect(1, "Chutes is no longer supported", v);
        }
        oro(&app, &release, &home, &["inference", "set-default", "chutes"]).await.expect(1, "Error (HTTP 409): Chutes is not connected", v);

        // Chutes as the default: the 5.0.3+ CLI refuses to submit and says how to switch.
        connect_chutes_for(&app, &hotkey, &format!("sdk-{}", v.replace('.', "-"))).await;
        oro(&app, &release, &home, &["inference", "set-default", "chutes"]).await.expect(0, "Default provider set to chutes.", v);
        if release.at_least((5, 0, 3)) {
            oro(&app, &release, &home, &submit).await.expect(1, "set-default openrouter", v);
        }
        oro(&app, &release, &home, &["inference", "set-default", "openrouter"]).await.expect(0, "Default provider set to openrouter.", v);
        let status = oro(&app, &release, &home, &["inference", "status"]).await;
        status.expect(0, "openrouter", v);
        let row = |name: &str| {
            status.out.lines().find(|l| l.starts_with(name)).map(|l| l.split_whitespace().take(3).collect::<Vec<_>>()).unwrap_or_default()
        };
        assert_eq!(row("openrouter"), ["openrouter", "yes", "yes"], "{v}: {}", status.out);
        assert_eq!(row("chutes")[..2], ["chutes", "yes"], "{v}: {}", status.out);
        oro(&app, &release, &home, &["inference", "disconnect", "chutes"]).await.expect(0, "Disconnected chutes.", v);

        // Submit, then the cooldown (COOLDOWN_ACTIVE), then the rate limit (RATE_LIMIT_EXCEEDED).
        oro(&app, &release, &home, &submit).await.expect(0, "Status:  ACCEPTED", v);
        oro(&app, &release, &home, &submit).await.expect(1, "Error: submission cooldown", v);
        oro(&app, &release, &home, &submit).await.expect(1, "Error: too many", v);

        drive(&app, &release, &home, "miner_client.py", serde_json::json!({"agent_name": agent_name})).await;

        let version_id = uuid::Uuid::new_v4().to_string();
        oro(&app, &release, &home, &["pin", "--agent-version-id", &version_id]).await.expect(1, "Error (HTTP 501)", v);
        oro(&app, &release, &home, &["unpin"]).await.expect(1, "ORO's evaluation backend", v);

        oro(&app, &release, &home, &["inference", "disconnect", "openrouter"]).await.expect(0, "Disconnected openrouter.", v);
        oro(&app, &release, &home, &["inference", "disconnect", "openrouter"]).await.expect(
            1,
            "Error (HTTP 404): OpenRouter is not connected",
            v,
        );
        let _ = std::fs::remove_dir_all(&home);
    }
    // No credential went into the logs on any of these paths.
    let logs = captured_logs();
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a management key reached the logs");
    }
}

/// Queues a Chutes run, then an OpenRouter run, for `validator_life.py` to work through.
async fn queue_two_runs(app: &TestApp, tag: &str) {
    let chutes_miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&chutes_miner, &format!("val-{tag}")).await.status(), 200);
    let openrouter_miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(50.0);
    assert_eq!(app.connect_openrouter(&openrouter_miner, &key).await.status(), 200);
    for miner in [&chutes_miner, &openrouter_miner] {
        let hotkey = Hotkey::parse(&miner.hotkey).unwrap();
        app.services.submit_agent(&hotkey, "validated", "agent.py", AGENT.as_bytes()).await.unwrap();
    }
}

/// Every validator release's generated client through a run's whole life, as ORO's validator
/// calls it: claim (with and without a body), the unsigned code download, heartbeat,
/// progress, the routes of ORO's backend, complete, and the refusals after it.
async fn every_validator_release_through_a_run(backend: Backend) {
    let app = spawn_app(backend).await;
    for release in releases().into_iter().filter(|r| r.validator) {
        let v = release.version.as_str();
        let home = fresh_home(&format!("validator-{v}"));
        for hotkey in make_wallets(&release, &home, &["validator", "other"]).await {
            app.add_validator(&hotkey, "oro-sdk test").await;
        }
        queue_two_runs(&app, &v.replace('.', "-")).await;
        let summary =
            drive(&app, &release, &home, "validator_life.py", serde_json::json!({"agent_code": AGENT, "first_provider": "chutes"})).await;
        // The server agrees: both runs are complete, one succeeded.
        let runs = summary["runs"].as_array().unwrap();
        for (run, want) in runs.iter().zip(["succeeded", "failed"]) {
            let (status,): (String,) = sqlx::query_as("SELECT status FROM eval_runs WHERE id = $1")
                .bind(run.as_str().unwrap())
                .fetch_one(app.services.db.pool())
                .await
                .unwrap();
            assert_eq!(status, want, "{v}");
        }
        let _ = std::fs::remove_dir_all(&home);
    }
}

/// The 409s a single run cannot show (capacity, a lease that ran out), fed to every
/// validator release's own response parsers.
async fn validator_conflicts_parse_in_every_release(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(500.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    let hotkey = Hotkey::parse(&miner.hotkey).unwrap();
    for _ in 0..9 {
        app.services.submit_agent(&hotkey, "busy", "agent.py", AGENT.as_bytes()).await.unwrap();
    }
    let claim = || app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").send();
    let mut held = Vec::new();
    for _ in 0..8 {
        let answer = claim().await.unwrap();
        assert_eq!(answer.status(), 200);
        held.push(answer.json::<serde_json::Value>().await.unwrap()["eval_run_id"].as_str().unwrap().to_owned());
    }
    let at_capacity = claim().await.unwrap();
    assert_eq!(at_capacity.status(), 409);
    let at_capacity: serde_json::Value = at_capacity.json().await.unwrap();
    assert_eq!(at_capacity["error_code"], "AT_CAPACITY");

    // The first run's lease runs out and the reaper puts it back in the queue: half a lease
    // later the other runs are renewed, and half a lease after that only the first has run out.
    let post = |path: String, body: serde_json::Value| app.signed(&app.validator, Method::POST, &path).json(&body).send();
    let lease = app.services.settings.run_lease_secs;
    app.services.clock.advance(lease / 2);
    for run in &held[1..] {
        let renewed = post(format!("/v1/validator/evaluation-runs/{run}/heartbeat"), serde_json::json!({})).await.unwrap();
        assert_eq!(renewed.status(), 200);
    }
    app.services.clock.advance(lease - lease / 2 + 1);
    app.services.reap_runs().await.unwrap();
    let heartbeat = post(format!("/v1/validator/evaluation-runs/{}/heartbeat", held[0]), serde_json::json!({})).await.unwrap();
    assert_eq!(heartbeat.status(), 409);
    let lease_expired: serde_json::Value = heartbeat.json().await.unwrap();
    assert_eq!(lease_expired["error_code"], "LEASE_EXPIRED");
    let progress = post(format!("/v1/validator/evaluation-runs/{}/progress", held[0]), serde_json::json!({"problems": []})).await.unwrap();
    assert_eq!(progress.status(), 409);
    let not_owner: serde_json::Value = progress.json().await.unwrap();
    assert_eq!(not_owner["error_code"], "NOT_RUN_OWNER", "progress has no LEASE_EXPIRED in the SDK's models");

    let script = format!(
        r#"
import httpx, json
import oro_sdk.models as m
from oro_sdk import Client
from oro_sdk.api.validator import claim_work, heartbeat, update_progress
c = Client(base_url="http://unused")
for module, body, want in [(claim_work, {at_capacity}, m.AtCapacityError), (heartbeat, {lease_expired}, m.LeaseExpiredError), (update_progress, {not_owner}, m.NotRunOwnerError)]:
    parsed = module._parse_response(client=c, response=httpx.Response(409, content=json.dumps(body).encode()))
    assert isinstance(parsed, want), (module.__name__, parsed)
print("ok")
"#
    );
    for release in releases().into_iter().filter(|r| r.validator) {
        let out = Command::new(release.bin("python")).arg("-c").arg(&script).output().await.unwrap();
        assert!(out.status.success(), "oro-sdk {}: {}", release.version, String::from_utf8_lossy(&out.stderr));
    }
}

both_engines!(every_cli_release_on_every_miner_path, every_validator_release_through_a_run, validator_conflicts_parse_in_every_release);

/// oro-sdk gives up after 15 s and never retries a POST: a connect answers within its
/// deadline whatever the provider does, and stores nothing half.
async fn connect_answers_within_its_deadline(backend: Backend) {
    use simulator::{Fault, FaultKind, FaultTarget};
    let app = spawn_app_with(
        backend,
        AppOptions {
            extra: vec![("ORO_PROVIDER_TIMEOUT_SECS", "15".into()), ("ORO_CONNECT_DEADLINE_SECS", "2".into())],
            ..Default::default()
        },
    )
    .await;
    let miner = TestWallet::new();

    // OpenRouter answers /key after 6 s: 504 at the deadline, nothing stored.
    app.sim.set_fault(Fault::new(FaultTarget::OpenRouterKey, FaultKind::Delay(std::time::Duration::from_secs(6)), Some(1)));
    let key = app.sim.create_openrouter_account(10.0);
    let started = std::time::Instant::now();
    let (status, text) = detail(app.connect_openrouter(&miner, &key).await).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered after {:?}", started.elapsed());
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("within 2 s, so nothing was stored"), "{text}");
    assert!(app.status(&miner).await["providers"].as_array().unwrap().is_empty(), "nothing stored");

    // Chutes spends a refresh token the moment it answers: past the deadline the miner hears
    // it is still running, and the connection lands when Chutes answers (nothing lost).
    let username = "slow-idp";
    app.sim.create_chutes_user(username, 10.0, false);
    let pkce = service::providers::chutes::pkce();
    let redirect = service::config::CLI_LOOPBACK_REDIRECT_URI;
    let code = app.sim.issue_chutes_code(username, &app.services.settings.chutes_client_id, redirect, &pkce.challenge, "chutes:invoke");
    app.sim.set_fault(Fault::new(FaultTarget::ChutesToken, FaultKind::Delay(std::time::Duration::from_secs(4)), Some(1)));
    let verifier = secrecy::ExposeSecret::expose_secret(&pkce.verifier).to_owned();
    let started = std::time::Instant::now();
    let answer = app
        .signed(&miner, Method::POST, "/v1/miner/chutes/exchange-code")
        .json(&serde_json::json!({"code": code, "code_verifier": verifier, "redirect_uri": redirect}))
        .send()
        .await
        .unwrap();
    let (status, text) = detail(answer).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "answered after {:?}", started.elapsed());
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("still being completed") && text.contains("oro inference status"), "{text}");
    let mut connected = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let list = app.status(&miner).await;
        if list["providers"].as_array().unwrap().iter().any(|p| p["provider"] == "chutes" && p["connected"] == true) {
            connected = true;
            break;
        }
    }
    assert!(connected, "the slow exchange finished and stored the connection");
    assert_eq!(app.sim.chutes_refresh_tokens_alive(username), 1, "the one grant issued is the one stored");
}

/// Unknown API paths and methods answer FastAPI's JSON, never the web page.
async fn unknown_api_paths_answer_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    for (method, path, status, says) in [
        (Method::GET, "/v1/no-such-thing", 404, "Not Found"),
        (Method::POST, "/v1/miner/inference-auth/openrouter/extra", 404, "Not Found"),
        (Method::DELETE, "/v1/miner/submit", 405, "Method Not Allowed"),
        (Method::PUT, "/v1/validator/work/claim", 405, "Method Not Allowed"),
    ] {
        let answer = app.signed(&miner, method.clone(), path).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), status, "{method} {path}");
        assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{method} {path}");
        assert_eq!(answer.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"detail": says}), "{method} {path}");
    }
    // Pages keep their own not-found page.
    let page = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

both_engines!(connect_answers_within_its_deadline, unknown_api_paths_answer_json);
