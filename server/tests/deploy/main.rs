//! The deployment of docs/OPERATING.md, tested (issue #17): two replicas of the `server` binary
//! configured from `deploy/env/` on one PostgreSQL database and one master key file, behind
//! Debian's nginx running `deploy/nginx/oro-inference.conf` as `deploy/nginx/render.sh` renders
//! it, the providers simulated in this process. Through nginx: TLS and the plain listeners,
//! sessions and nonces shared by the replicas, per-IP limits counted per real client, the run
//! gateway, ORO's own `oro` CLI, and a claim load during which one replica is SIGKILLed: no run
//! handed out twice, none lost, every miner call answered.
//!
//! Needs nginx and openssl (`./dev test` installs them), PostgreSQL, and the oro-sdk releases
//! of `server/tests/oro_sdk/versions.txt` in `.venv-oro/`.

mod deployment;

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deployment::*;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use simulator::{Fault, FaultKind, FaultTarget};

const AGENT: &str = "def run(task):\n    return 'ok'\n";
/// What nginx answers itself when no replica answered (deploy/nginx/oro-inference.conf).
const NGINX_502: &str = "the service is briefly unavailable; try again";
const VALIDATORS: usize = 10;
const MINERS: usize = 6;
const RUNS_EACH: usize = 6;
/// Miners who keep calling (status and submit) while the replica dies.
const BUSY_MINERS: usize = 3;
/// Rounds each busy miner makes after the kill (it keeps going until then).
const ROUNDS_AFTER_KILL: usize = 3;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_nginx() {
    let started = Instant::now();
    let mut d = Deployment::start(VALIDATORS).await;
    let db = d.db.connect().await;
    let client = client();
    eprintln!("deployment up in {:?}", started.elapsed());

    tls_and_redirect(&d, &client).await;
    metrics_stay_per_replica(&d, &client).await;
    sessions_and_nonces_are_shared(&d, &client).await;
    rate_limits_count_the_real_client(&d).await;
    let gateway_run = gateway_through_nginx(&d, &client).await;
    let (sdk_run, sdk_key) = oro_sdk_cli_through_nginx(&d, &db).await;
    claims_while_a_replica_dies(&mut d, &db, &client, gateway_run, (sdk_run, sdk_key)).await;

    let took = started.elapsed();
    eprintln!("deployment test took {took:?}");
    db.close().await;
}

// ---------------------------------------------------------------- the listeners

/// The production server blocks: TLS on the public names (each name to its own upstream), and
/// plain HTTP there only redirecting.
async fn tls_and_redirect(d: &Deployment, client: &reqwest::Client) {
    let tls = tls_client(d.https_port);
    let ready = tls.get(format!("https://{API_NAME}:{}/health/ready", d.https_port)).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the API over TLS");
    // The gateway's name reaches the gateway (its OpenAI-shaped 401), not the API (a JSON 404).
    let models = tls.get(format!("https://{GATEWAY_NAME}:{}/v1/models", d.https_port)).send().await.unwrap();
    assert_eq!(models.status(), 401);
    let body: Value = models.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_run_token", "{body}");
    let plain =
        client.get(format!("http://127.0.0.1:{}/v1/miner/runs?limit=5", d.http_port)).header("host", API_NAME).send().await.unwrap();
    assert_eq!(plain.status(), 301);
    assert_eq!(plain.headers()["location"], format!("https://{API_NAME}/v1/miner/runs?limit=5").as_str());
}

/// `/metrics` is read on each replica with the operator's token; nginx does not serve it.
async fn metrics_stay_per_replica(d: &Deployment, client: &reqwest::Client) {
    let through = client.get(format!("{}/metrics", d.api)).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(through.status(), 404, "nginx keeps /metrics off the public listeners");
    for replica in &d.replicas {
        assert_eq!(client.get(replica.url("/metrics")).send().await.unwrap().status(), 401, "{}: no token, no metrics", replica.name);
        let metrics = client.get(replica.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        let text = metrics.text().await.unwrap();
        assert!(text.contains("oro_http_requests_total{"), "{}: {text:.400}", replica.name);
    }
}

// ---------------------------------------------------------------- state the replicas share

/// A challenge issued by one replica is redeemed at the other; the bearer session works on
/// both and through nginx; a logout on one ends it on the other; a signed request's nonce,
/// spent on one, is refused by the other.
async fn sessions_and_nonces_are_shared(d: &Deployment, client: &reqwest::Client) {
    const ROUTE: &str = "/v1/miner/inference-auth";
    let (a, b) = (&d.replicas[0], &d.replicas[1]);
    let miner = Wallet::new();
    let challenge: Value =
        client.post(a.url("/v1/auth/challenge")).json(&json!({"hotkey": miner.hotkey})).send().await.unwrap().json().await.unwrap();
    let text = challenge["challenge"].as_str().expect("a challenge").to_owned();
    let session = client
        .post(b.url("/v1/auth/session"))
        .json(&json!({"hotkey": miner.hotkey, "challenge": text, "signature": miner.sign(text.as_bytes())}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200, "a challenge issued by {} is redeemed at {}", a.name, b.name);
    let session: Value = session.json().await.unwrap();
    let token = session["session_token"].as_str().unwrap().to_owned();
    let through = format!("{}{ROUTE}", d.api);
    for url in [a.url(ROUTE), b.url(ROUTE), through.clone(), through] {
        let answer = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(answer.status(), 200, "the session opened at {} works at {url}", b.name);
    }
    // Through nginx, round robin gave one of the two to each replica.
    let served_by = eventually(|| {
        let lines: Vec<AccessLine> = d.access_lines().into_iter().filter(|l| l.path == ROUTE && l.status == 200).collect();
        (lines.len() == 2).then(|| lines.iter().filter_map(|l| l.upstreams.last().cloned()).collect::<HashSet<_>>())
    })
    .await
    .expect("the access log has both requests");
    assert_eq!(served_by.len(), 2, "{served_by:?}");
    assert_eq!(client.post(b.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(client.get(a.url(ROUTE)).bearer_auth(&token).send().await.unwrap().status(), 401, "a logout at B ends the session at A");

    let headers = miner.headers();
    let send = |url: String| headers.iter().fold(client.get(url), |r, (name, value)| r.header(*name, value)).send();
    assert_eq!(send(a.url(ROUTE)).await.unwrap().status(), 200);
    assert_eq!(send(b.url(ROUTE)).await.unwrap().status(), 401, "a nonce spent at A is refused at B");
}

/// Through nginx, the per-IP limits count the client's own address (the X-Forwarded-For entry
/// nginx appends, not one the client forges), in the shared database: one address exhausts the
/// sign-in limit across both replicas, another is still served.
async fn rate_limits_count_the_real_client(d: &Deployment) {
    // The windows are fixed: start the burst well inside one.
    let into = service::clock::system_now().rem_euclid(SIGN_IN_WINDOW_SECS);
    if into > SIGN_IN_WINDOW_SECS - 10 {
        tokio::time::sleep(Duration::from_secs((SIGN_IN_WINDOW_SECS - into + 1) as u64)).await;
    }
    let (first, second) = (client_from([127, 0, 0, 2]), client_from([127, 0, 0, 3]));
    let challenge = |from: &reqwest::Client, forged: String| {
        from.post(format!("{}/v1/auth/challenge", d.api))
            .header("x-forwarded-for", forged)
            .json(&json!({"hotkey": Wallet::new().hotkey}))
            .send()
    };
    let mut accepted = 0;
    let mut refused = None;
    for i in 0..2 * SIGN_IN_PER_IP + 2 {
        // A fresh forged address every time: it must not buy a fresh allowance.
        let answer = challenge(&first, format!("203.0.113.{i}")).await.unwrap();
        match answer.status().as_u16() {
            200 => accepted += 1,
            429 => {
                refused = Some(answer);
                break;
            }
            other => panic!("sign-in challenge answered {other}: {}", answer.text().await.unwrap_or_default()),
        }
    }
    assert_eq!(accepted, SIGN_IN_PER_IP, "127.0.0.2 gets its {SIGN_IN_PER_IP} sign-ins in all, over both replicas");
    let refused = refused.expect("then a 429");
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error_code"], "RATE_LIMIT_EXCEEDED", "{body}");
    let other = challenge(&second, "203.0.113.250".into()).await.unwrap();
    assert_eq!(other.status(), 200, "127.0.0.3 is another client, still served");

    // nginx passed the accepted ones to both replicas: the count is shared, not per replica.
    let served_by = eventually(|| {
        let lines: Vec<AccessLine> =
            d.access_lines().into_iter().filter(|l| l.client == "127.0.0.2" && l.path == "/v1/auth/challenge" && l.status == 200).collect();
        (lines.len() == SIGN_IN_PER_IP).then(|| lines.iter().filter_map(|l| l.upstreams.last().cloned()).collect::<HashSet<_>>())
    })
    .await
    .expect("the access log has every accepted sign-in");
    assert_eq!(served_by.len(), 2, "both replicas served 127.0.0.2's sign-ins: {served_by:?}");
}

/// Polls `check` for up to 2 s (nginx writes its access log line after the answer).
async fn eventually<T>(check: impl Fn() -> Option<T>) -> Option<T> {
    for _ in 0..40 {
        if let Some(found) = check() {
            return Some(found);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

// ---------------------------------------------------------------- the run gateway

async fn submit(client: &reqwest::Client, api: &str, miner: &Wallet, name: &str) -> reqwest::Result<reqwest::Response> {
    let form = Form::new()
        .text("agent_name", name.to_owned())
        .part("file", Part::bytes(AGENT.as_bytes().to_vec()).file_name("agent.py").mime_str("text/x-python").unwrap());
    miner.sign_request(client.post(format!("{api}/v1/miner/submit"))).multipart(form).send().await
}

/// A validator's claim through nginx: status and body (0 when no HTTP answer came).
async fn claim(client: &reqwest::Client, api: &str, validator: &Wallet) -> (u16, Value) {
    match validator.sign_request(client.post(format!("{api}/v1/validator/work/claim"))).json(&json!({})).send().await {
        Ok(answer) => (answer.status().as_u16(), answer.json().await.unwrap_or(Value::Null)),
        Err(e) => (0, json!({"client_error": e.to_string()})),
    }
}

/// A Chutes run end to end through nginx: connect, submit, claim, the agent's code by the
/// presigned link on the public URL, completions (whole and streamed) on the gateway's public
/// URL, complete; then the run's token is refused by both gateway replicas. Answers the run.
async fn gateway_through_nginx(d: &Deployment, client: &reqwest::Client) -> String {
    let miner = Wallet::new();
    let control = d.sim.control();
    control.create_chutes_user("deploy-chutes", 25.0, false);
    let pkce = service::providers::chutes::pkce();
    let redirect = service::config::CLI_LOOPBACK_REDIRECT_URI;
    let client_id = service::Settings::from_vars(&d.shared_vars).unwrap().chutes_client_id;
    let code = control.issue_chutes_code("deploy-chutes", &client_id, redirect, &pkce.challenge, "chutes:invoke");
    let connected = miner
        .sign_request(client.post(format!("{}/v1/miner/chutes/exchange-code", d.api)))
        .json(&json!({"code": code, "code_verifier": secrecy::ExposeSecret::expose_secret(&pkce.verifier), "redirect_uri": redirect}))
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), 200, "{}", connected.text().await.unwrap_or_default());
    let submitted = submit(client, &d.api, &miner, "gateway-agent").await.unwrap();
    assert_eq!(submitted.status(), 200);
    let run = submitted.json::<Value>().await.unwrap()["eval_run_id"].as_str().unwrap().to_owned();

    let validator = &d.validators[0];
    let (status, work) = claim(client, &d.api, validator).await;
    assert_eq!(status, 200, "{work}");
    assert_eq!(work["eval_run_id"], run.as_str());
    let token = &work["inference_token"];
    assert_eq!(token["base_url"], format!("{}/v1", d.gateway).as_str(), "ORO_GATEWAY_PUBLIC_URL: nginx's gateway listener");
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("oro-run-"), "{token}");

    let link = work["code_download_url"].as_str().unwrap();
    assert!(link.starts_with(&d.api), "the presigned link is on ORO_PUBLIC_URL: {link}");
    let code = client.get(link).send().await.unwrap();
    assert_eq!(code.status(), 200);
    assert_eq!(code.text().await.unwrap(), AGENT);

    let model = work["sandbox_env"]["SANDBOX_MODEL"].as_str().unwrap();
    let chat = |stream: bool| {
        client
            .post(format!("{}/chat/completions", token["base_url"].as_str().unwrap()))
            .bearer_auth(&access)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}))
            .send()
    };
    let whole = chat(false).await.unwrap();
    let status = whole.status();
    let whole: Value = whole.json().await.unwrap();
    assert_eq!(status, 200, "{whole}");
    assert!(whole["usage"]["completion_tokens"].as_u64().is_some(), "{whole}");
    let streamed = chat(true).await.unwrap();
    let (status, kind) = (streamed.status(), streamed.headers()["content-type"].to_str().unwrap().to_owned());
    let events = streamed.text().await.unwrap();
    assert_eq!(status, 200, "{events}");
    assert!(kind.starts_with("text/event-stream"), "{kind}");
    assert!(events.matches("data: ").count() >= 3 && events.trim_end().ends_with("data: [DONE]"), "{events}");

    let completed = validator
        .sign_request(client.post(format!("{}/v1/validator/evaluation-runs/{run}/complete", d.api)))
        .json(&json!({"terminal_status": "SUCCESS", "validator_score": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 200, "{}", completed.text().await.unwrap_or_default());
    // Round robin: each gateway replica gets two of these, and each refuses the dead token.
    for _ in 0..4 {
        let refused = chat(false).await.unwrap();
        assert_eq!(refused.status(), 401, "a completed run's token is dead on every replica");
    }
    let refusers = eventually(|| {
        let lines: Vec<AccessLine> = d.access_lines().into_iter().filter(|l| l.path == "/v1/chat/completions" && l.status == 401).collect();
        (lines.len() == 4).then(|| lines.iter().filter_map(|l| l.upstreams.last().cloned()).collect::<HashSet<_>>())
    })
    .await
    .expect("the access log has the four refusals");
    assert_eq!(refusers.len(), 2, "both gateway replicas refused it: {refusers:?}");
    run
}

// ---------------------------------------------------------------- ORO's own CLI

/// The newest oro-sdk release with a CLI in versions.txt.
fn newest_cli_release() -> String {
    let text = std::fs::read_to_string(workspace().join("server/tests/oro_sdk/versions.txt")).unwrap();
    let version = |v: &str| v.split('.').map(|p| p.parse::<u32>().unwrap()).collect::<Vec<_>>();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.split_whitespace().any(|role| role == "cli"))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .max_by_key(|v| version(v))
        .expect("a CLI release in versions.txt")
}

fn sdk_bin(release: &str, name: &str) -> PathBuf {
    let path = workspace().join(".venv-oro").join(release).join("bin").join(name);
    assert!(path.exists(), "{} is missing: `./dev test` installs every release of versions.txt", path.display());
    path
}

struct CliRun {
    code: i32,
    all: String,
}

async fn oro(release: &str, home: &Path, api: &str, args: &[&str]) -> CliRun {
    let out = tokio::process::Command::new(sdk_bin(release, "oro"))
        .args(args)
        .args(["--base-url", api, "--wallet-name", "miner", "--wallet-hotkey", "h1"])
        .env("HOME", home)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("Traceback"), "oro {args:?}: a Python traceback\n{all}");
    CliRun { code: out.status.code().unwrap_or(-1), all }
}

/// ORO's `oro` CLI (the newest release) against nginx's URL: status, connect OpenRouter,
/// submit. Answers the submitted run and the management key.
async fn oro_sdk_cli_through_nginx(d: &Deployment, db: &service::Db) -> (String, String) {
    let release = newest_cli_release();
    let home = d.dir.join("sdk-home");
    std::fs::create_dir_all(&home).unwrap();
    let script = format!(
        "from bittensor_wallet import Wallet\nw = Wallet(name='miner', hotkey='h1', path='{}/.bittensor/wallets')\nw.create_if_non_existent(coldkey_use_password=False, hotkey_use_password=False, suppress=True)\nprint(w.hotkey.ss58_address)\n",
        home.display()
    );
    let made = tokio::process::Command::new(sdk_bin(&release, "python")).arg("-c").arg(script).env("HOME", &home).output().await.unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let hotkey = String::from_utf8(made.stdout).unwrap().trim().to_owned();

    let status = oro(&release, &home, &d.api, &["inference", "status"]).await;
    assert!(status.code == 0 && status.all.contains("No providers connected."), "oro {release} inference status:\n{}", status.all);
    let key = d.sim.control().create_openrouter_account(50.0);
    let connected = oro(&release, &home, &d.api, &["inference", "connect", "openrouter", "--api-key", &key]).await;
    assert!(connected.code == 0 && connected.all.contains("Connected openrouter."), "oro {release} connect:\n{}", connected.all);
    let agent = home.join("agent.py");
    std::fs::write(&agent, AGENT).unwrap();
    let submitted =
        oro(&release, &home, &d.api, &["submit", "--agent-name", "sdk-agent", "--agent-file", &agent.display().to_string()]).await;
    assert!(submitted.code == 0 && submitted.all.contains("Status:  ACCEPTED"), "oro {release} submit:\n{}", submitted.all);
    let status = oro(&release, &home, &d.api, &["inference", "status"]).await;
    assert!(status.code == 0 && status.all.lines().any(|l| l.starts_with("openrouter") && l.contains("yes")), "{}", status.all);

    // The shared database has the run, queued.
    let runs: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM eval_runs WHERE hotkey = $1").bind(&hotkey).fetch_all(db.pool()).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1, "queued");
    eprintln!("oro-sdk {release}: status, connect openrouter and submit through nginx");
    (runs[0].0.clone(), key)
}

// ---------------------------------------------------------------- a replica dies under load

/// One claim as its validator saw it.
struct Claimed {
    validator: usize,
    status: u16,
    body: Value,
    sent: Instant,
}

/// One miner call, with the retries oro-sdk would make: idempotent requests again on a 429,
/// 502, 503 or 504 or no answer (up to 3 times); a POST only when no connection was made.
struct MinerCall {
    what: &'static str,
    sent: Instant,
    attempts: Vec<u16>,
    /// The answer the miner is left with: status and body (`None`: no HTTP answer at all).
    answer: Option<(u16, Value)>,
}

async fn call_like_the_sdk<F, Fut>(what: &'static str, idempotent: bool, send: F) -> MinerCall
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let sent = Instant::now();
    let mut attempts = Vec::new();
    loop {
        let (status, answer) = match send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, Some((status, r.json::<Value>().await.unwrap_or(Value::Null))))
            }
            Err(e) if e.is_connect() || idempotent => (0, None),
            Err(e) => return MinerCall { what, sent, attempts, answer: Some((0, json!({"client_error": e.to_string()}))) },
        };
        attempts.push(status);
        let retry = if idempotent { matches!(status, 0 | 429 | 502 | 503 | 504) } else { status == 0 };
        if !retry || attempts.len() > 3 {
            return MinerCall { what, sent, attempts, answer };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn claims_while_a_replica_dies(
    d: &mut Deployment,
    db: &service::Db,
    client: &reqwest::Client,
    gateway_run: String,
    (sdk_run, sdk_key): (String, String),
) {
    let control = d.sim.control();
    let mut management_keys = vec![sdk_key];
    let mut submitted = vec![sdk_run];
    let miners: Vec<Wallet> = (0..MINERS).map(|_| Wallet::new()).collect();
    for (m, miner) in miners.iter().enumerate() {
        let key = control.create_openrouter_account(1_000.0);
        let connected = miner
            .sign_request(client.post(format!("{}/v1/miner/inference-auth/openrouter", d.api)))
            .json(&json!({"credential": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(connected.status(), 200);
        management_keys.push(key);
        for i in 0..RUNS_EACH {
            let answer = submit(client, &d.api, miner, &format!("agent{m}-{i}")).await.unwrap();
            assert_eq!(answer.status(), 200);
            submitted.push(answer.json::<Value>().await.unwrap()["eval_run_id"].as_str().unwrap().to_owned());
        }
    }
    let queued = submitted.len();

    // Minting takes a while, as at OpenRouter: the kill catches claims half-way.
    control.set_fault(Fault::new(FaultTarget::OpenRouterKeysCreate, FaultKind::Delay(Duration::from_millis(300)), None));
    let claims = Arc::new(Mutex::new(Vec::<Claimed>::new()));
    let calls = Arc::new(Mutex::new(Vec::<MinerCall>::new()));
    let handed_out = Arc::new(AtomicUsize::new(0));
    let rounds_done = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let miners_done = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);

    let mut busy = Vec::new();
    for (m, miner) in miners.iter().take(BUSY_MINERS).cloned().enumerate() {
        let (client, api, calls, rounds_done, killed) = (client.clone(), d.api.clone(), calls.clone(), rounds_done.clone(), killed.clone());
        busy.push(tokio::spawn(async move {
            let mut after = 0;
            for round in 0.. {
                let status = call_like_the_sdk("GET status", true, || {
                    miner.sign_request(client.get(format!("{api}/v1/miner/inference-auth"))).send()
                })
                .await;
                let name = format!("busy{m}-{round}");
                let submitted = call_like_the_sdk("POST submit", false, || submit(&client, &api, &miner, &name)).await;
                calls.lock().unwrap().extend([status, submitted]);
                rounds_done.fetch_add(1, Ordering::SeqCst);
                if killed.load(Ordering::SeqCst) {
                    after += 1;
                    if after >= ROUNDS_AFTER_KILL {
                        break;
                    }
                }
                assert!(Instant::now() < deadline, "the busy miners never saw the kill");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    let mut claiming = Vec::new();
    for (i, validator) in d.validators.iter().cloned().enumerate() {
        let (client, api, claims, handed_out, miners_done) =
            (client.clone(), d.api.clone(), claims.clone(), handed_out.clone(), miners_done.clone());
        claiming.push(tokio::spawn(async move {
            // Staggered, so that the kill finds claims at every step.
            tokio::time::sleep(Duration::from_millis(40 * i as u64)).await;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let (status, body) = claim(&client, &api, &validator).await;
                claims.lock().unwrap().push(Claimed { validator: i, status, body, sent });
                match status {
                    200 => {
                        handed_out.fetch_add(1, Ordering::SeqCst);
                    }
                    // No work left once the miners have stopped submitting; or this validator is full.
                    204 if miners_done.load(Ordering::SeqCst) => return,
                    409 => return,
                    // A claim lost with the replica: the validator claims again, as ORO's does.
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // A third of the runs out, and every busy miner under way: SIGKILL replica 1.
    while handed_out.load(Ordering::SeqCst) < queued / 3 || rounds_done.load(Ordering::SeqCst) < BUSY_MINERS {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out_before_kill = handed_out.load(Ordering::SeqCst);
    let ended = d.kill(0);
    let killed_at = Instant::now();
    killed.store(true, Ordering::SeqCst);
    assert_eq!(ended.signal(), Some(9), "replica 1 died of SIGKILL");
    for task in busy {
        task.await.unwrap();
    }
    miners_done.store(true, Ordering::SeqCst);
    for task in claiming {
        task.await.unwrap();
    }
    control.clear_faults();

    // nginx takes replica 1 out for 5 s (fail_timeout) after each failure, then tries it again:
    // a claim it sends there finds the port closed and goes on to replica 2. A refused
    // connection means the request reached no replica, so even a POST is passed on. Claims one
    // at a time (nothing else runs now) until one shows it in the access log.
    let (dead, alive) = (d.replicas[0].address(), d.replicas[1].address());
    // nginx logs a request just after answering it: let the load's last lines land first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let probes_from = d.access_lines().len();
    let probing = Instant::now();
    for probe in 0.. {
        let (sent, v) = (Instant::now(), probe % d.validators.len());
        let (status, body) = claim(client, &d.api, &d.validators[v]).await;
        assert!(matches!(status, 200 | 204 | 409), "a claim after the kill: {status} {body}");
        claims.lock().unwrap().push(Claimed { validator: v, status, body, sent });
        let passed_on = eventually(|| {
            let lines = d.access_lines();
            let probes: Vec<&AccessLine> = lines[probes_from.min(lines.len())..]
                .iter()
                .filter(|l| l.method == "POST" && l.path == "/v1/validator/work/claim")
                .collect();
            (probes.len() == probe + 1).then(|| probes.iter().any(|l| l.upstreams == [dead.clone(), alive.clone()]))
        })
        .await
        .expect("the access log has every probe");
        if passed_on {
            break;
        }
        assert!(probing.elapsed() < Duration::from_secs(15), "nginx never passed a claim from the dead replica {dead} on to {alive}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every miner call got its final answer: a 200; or nginx's JSON 502 for a POST that was on
    // the replica when it died (oro-sdk never repeats such a POST: the miner decides); or, for
    // a signed GET that was on it, the live replica's 401 for the copy nginx passed on, whose
    // nonce the dead one had spent (the trade-off explained in the nginx configuration).
    let calls = std::mem::take(&mut *calls.lock().unwrap());
    assert!(calls.iter().any(|c| c.sent < killed_at) && calls.iter().any(|c| c.sent > killed_at), "miner calls before and after the kill");
    let (mut lost_posts, mut replayed) = (0, 0);
    for call in &calls {
        let (status, body) = call.answer.as_ref().unwrap_or_else(|| panic!("{}: no answer after {:?}", call.what, call.attempts));
        let detail = body["detail"].as_str().unwrap_or_default();
        match (call.what, *status) {
            (_, 200) => {}
            ("POST submit", 502) if call.sent < killed_at && detail == NGINX_502 => lost_posts += 1,
            ("GET status", 401) if call.sent < killed_at && detail.starts_with("replayed nonce") => replayed += 1,
            _ => panic!("{}: left with {status} {body} (attempts {:?})", call.what, call.attempts),
        }
        if call.what == "POST submit" && *status == 200 {
            submitted.push(body["eval_run_id"].as_str().unwrap().to_owned());
        }
    }
    let passed_on_401 = d
        .access_lines()
        .into_iter()
        .filter(|l| l.path == "/v1/miner/inference-auth" && l.status == 401 && l.upstreams == [dead.clone(), alive.clone()])
        .count();
    assert_eq!(replayed, passed_on_401, "a 401 only for a signed GET nginx passed from the dead replica to the live one");
    let retried = calls.iter().filter(|c| c.attempts.len() > 1).count();

    // Every claim answer: a run, no work, full, or nginx's 502 for a claim that was on the
    // replica when it died (sent before the kill: any later one was passed on).
    let first_pass = std::mem::take(&mut *claims.lock().unwrap());
    let mut lost_claims = 0;
    for c in &first_pass {
        match c.status {
            200 | 204 | 409 => {}
            502 if c.sent < killed_at && c.body["detail"] == NGINX_502 => lost_claims += 1,
            other => panic!("a claim answered {other}: {}", c.body),
        }
    }
    assert!(first_pass.iter().any(|c| c.status == 200 && c.sent > killed_at), "claims succeed after the kill");
    let mut handed: Vec<(usize, String)> =
        first_pass.iter().filter(|c| c.status == 200).map(|c| (c.validator, c.body["eval_run_id"].as_str().unwrap().to_owned())).collect();
    assert_distinct(&handed);

    // Every accepted submission is in the database; what nobody heard of was reserved by a
    // claim that died with replica 1: still running under a lease, which the reaper ends.
    let rows: Vec<(String, String, Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT id, status, validator_hotkey, lease_expires_at FROM eval_runs").fetch_all(db.pool()).await.unwrap();
    let in_db: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    for id in &submitted {
        assert!(in_db.contains(id.as_str()), "accepted run {id} is in the database");
    }
    let heard: HashSet<&str> = handed.iter().map(|(_, id)| id.as_str()).collect();
    let ours: HashSet<&str> = d.validators.iter().map(|v| v.hotkey.as_str()).collect();
    let mut orphans = Vec::new();
    for (id, status, holder, lease) in rows.iter().filter(|r| r.0 != gateway_run && !heard.contains(r.0.as_str())) {
        match status.as_str() {
            "queued" => {}
            "running" => {
                assert!(holder.as_deref().is_some_and(|h| ours.contains(h)), "run {id} held by {holder:?}");
                assert!(lease.is_some(), "run {id} has a lease, so the reaper will put it back");
                orphans.push(id.clone());
            }
            other => panic!("run {id} is {other}, handed to nobody"),
        }
    }
    assert!(orphans.len() <= lost_claims, "only a claim lost with the replica leaves a run nobody heard of");

    // What the end of those leases does (the replicas' housekeeping, every minute): the reaper
    // puts the runs back in the queue, and validators claim them through nginx.
    let services = d.services().await;
    for id in &orphans {
        sqlx::query("UPDATE eval_runs SET lease_expires_at = 0 WHERE id = $1").bind(id).execute(db.pool()).await.unwrap();
    }
    services.reap_runs().await.unwrap();
    for id in &orphans {
        let (status,): (String,) =
            sqlx::query_as("SELECT status FROM eval_runs WHERE id = $1").bind(id).fetch_one(db.pool()).await.unwrap();
        assert_eq!(status, "queued", "the reaper put run {id} back");
    }
    for (i, validator) in d.validators.iter().enumerate() {
        loop {
            let (status, body) = claim(client, &d.api, validator).await;
            match status {
                200 => handed.push((i, body["eval_run_id"].as_str().unwrap().to_owned())),
                204 | 409 => break,
                other => panic!("a claim answered {other}: {body}"),
            }
        }
    }
    assert_distinct(&handed);

    // In the end every run but the completed one was handed out exactly once, and the
    // database names the validator that was told.
    let all: HashSet<String> = rows.iter().map(|r| r.0.clone()).filter(|id| *id != gateway_run).collect();
    let got: HashSet<String> = handed.iter().map(|(_, id)| id.clone()).collect();
    let runs_now: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM eval_runs").fetch_one(db.pool()).await.unwrap();
    assert_eq!(runs_now.0 as usize, rows.len(), "no run appeared after the load");
    assert_eq!(got, all, "every run handed out: none lost");
    for (v, id) in &handed {
        let (status, holder): (String, Option<String>) =
            sqlx::query_as("SELECT status, validator_hotkey FROM eval_runs WHERE id = $1").bind(id).fetch_one(db.pool()).await.unwrap();
        assert_eq!((status.as_str(), holder.as_deref()), ("running", Some(d.validators[*v].hotkey.as_str())), "run {id}");
    }
    // At OpenRouter: one live run key per handed-out run, the one its run names. The keys of
    // claims that died with the replica were disabled by the reaper: those the claim had
    // recorded through run_keys, and those OpenRouter minted just before the replica died (no
    // row names them) by their name, `oro-run-{run}`, before the run went back to the queue.
    // Any other live key is a leak.
    let hashes = |sql: &'static str| async move {
        sqlx::query_as::<_, (String,)>(sql).fetch_all(db.pool()).await.unwrap().into_iter().map(|(h,)| h).collect::<HashSet<String>>()
    };
    let named = hashes("SELECT key_hash FROM eval_runs WHERE status = 'running' AND key_hash IS NOT NULL").await;
    let recorded = hashes("SELECT key_hash FROM run_keys").await;
    let orphan_names: HashSet<String> = orphans.iter().map(|id| format!("oro-run-{id}")).collect();
    let mut live_named = 0;
    for key in
        management_keys.iter().flat_map(|k| control.list_openrouter_keys(k)).filter(|k| !k.disabled && !k.deleted && !k.is_management)
    {
        if named.contains(&key.hash) {
            live_named += 1;
        } else {
            let how = if !orphan_names.contains(&key.name) {
                "no handed-out run names it"
            } else if recorded.contains(&key.hash) {
                "the reaper left a recorded key of a lost claim live"
            } else {
                "the reaper left an unrecorded key of a lost claim live"
            };
            panic!("run key {} ({}) is live at OpenRouter: {how}", key.name, key.hash);
        }
    }
    assert_eq!(live_named, handed.len(), "each handed-out run's key is live at OpenRouter");
    // The keys the reaper found by name (told to their miners).
    let (unrecorded,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE detail LIKE '%ended before recording it%'")
        .fetch_one(db.pool())
        .await
        .unwrap();

    let by_replica: HashMap<String, usize> =
        d.access_lines().iter().filter_map(|l| l.upstreams.last().cloned()).fold(HashMap::new(), |mut m, u| {
            *m.entry(u).or_default() += 1;
            m
        });
    eprintln!(
        "replica killed with {out_before_kill} of {queued} runs out; {} claims answered ({lost_claims} lost with the replica, \
         leaving {} runs to the reaper, which disabled {} keys no row named), {} miner calls answered ({retried} after a retry, \
         {lost_posts} submits lost, {replayed} signed GETs refused as replays), {} runs handed out in all; nginx's answers by replica: {by_replica:?}",
        first_pass.len(),
        orphans.len(),
        unrecorded,
        calls.len(),
        handed.len()
    );
}

/// No run was handed out twice.
fn assert_distinct(handed: &[(usize, String)]) {
    let mut seen = HashMap::new();
    for (validator, id) in handed {
        if let Some(first) = seen.insert(id.as_str(), validator) {
            panic!("run {id} handed out twice: to validator {first} and to validator {validator}");
        }
    }
}
