//! The run gateway (issue 21): a Chutes run's validator gets a run-bound token, never the
//! miner's; every request through it is metered against the run's cap.

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use simulator::{Fault, FaultKind, FaultTarget};

use crate::both_engines;
use crate::helpers::*;

const AGENT: &str = "def run(task):\n    return 'hello'\n";

async fn submit(app: &TestApp, wallet: &TestWallet) {
    let form = Form::new()
        .text("agent_name", "gw".to_owned())
        .part("file", Part::bytes(AGENT.as_bytes().to_vec()).file_name("agent.py".to_owned()).mime_str("text/x-python").unwrap());
    assert_eq!(app.signed(wallet, Method::POST, "/v1/miner/submit").multipart(form).send().await.unwrap().status(), 200);
}

async fn claim(app: &TestApp) -> Value {
    let response = app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A miner with Chutes connected and one run claimed: the claim's answer.
async fn chutes_run(app: &TestApp, username: &str) -> (TestWallet, Value) {
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, username).await.status(), 200);
    submit(app, &miner).await;
    (miner, claim(app).await)
}

fn chat(app: &TestApp, work: &Value, body: Value) -> reqwest::RequestBuilder {
    let token = &work["inference_token"];
    app.client
        .post(format!("{}/chat/completions", token["base_url"].as_str().unwrap()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&body)
}

async fn run_key(app: &TestApp, work: &Value) -> (f64, f64, f64) {
    // The gateway writes a run's spend from its allowance once nothing is in flight (within
    // 50 ms), tracked as background work.
    app.services.background_work_done().await;
    sqlx::query_as("SELECT cap_usd, spent_usd, reserved_usd FROM run_keys WHERE eval_run_id = $1")
        .bind(work["eval_run_id"].as_str().unwrap())
        .fetch_one(app.services.db.pool())
        .await
        .unwrap()
}

async fn a_chutes_run_gets_a_run_bound_token_and_is_metered(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "gwen").await;
    let token = &work["inference_token"];
    assert_eq!(token["provider"], "chutes");
    let access = token["access_token"].as_str().unwrap();
    assert!(access.starts_with("oro-run-"), "{token}");
    assert_eq!(token["base_url"].as_str().unwrap(), app.services.settings.gateway_base_url());
    assert_eq!(work["chutes_access_token"].as_str(), Some(access), "the 1.0.50 field carries the same run-bound token");
    assert_eq!(work["sandbox_env"]["INFERENCE_ACCESS_TOKEN"].as_str(), Some(access));
    // The miner's own token is not in the answer.
    assert!(!work.to_string().contains("cak_"), "{work}");

    // The OpenRouter name of an allowlisted model is accepted and translated.
    let answer = chat(&app, &work, json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["model"], "deepseek-ai/DeepSeek-V3.2-TEE");
    let usage = &body["usage"];
    let expected = (usage["prompt_tokens"].as_f64().unwrap() * 0.3 + usage["completion_tokens"].as_f64().unwrap() * 1.2) / 1e6;
    let (cap, spent, reserved) = run_key(&app, &work).await;
    assert_eq!(cap, 5.0);
    assert!((spent - expected).abs() < 1e-12, "spent {spent}, usage says {expected}");
    assert_eq!(reserved, 0.0, "nothing stays reserved after the answer");
    // The miner sees the running run's spend against its cap, live, and the month's.
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    let running = &runs["runs"][0];
    assert_eq!((running["status"].as_str(), running["provider"].as_str()), (Some("running"), Some("chutes")));
    assert_eq!(running["cap_usd"], 5.0);
    assert!((running["spend_usd"].as_f64().unwrap() - expected).abs() < 1e-12, "{running}");
    assert!((runs["month_spend_usd"]["chutes"].as_f64().unwrap() - expected).abs() < 1e-12, "{runs}");

    // Prometheus sees requests, tokens, dollars and the gateway's own overhead.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in [
        "oro_gateway_requests_total{provider=\"chutes\",status=\"200\"}",
        "oro_gateway_tokens_total{provider=\"chutes\",model=\"deepseek-ai/DeepSeek-V3.2-TEE\",kind=\"completion\"}",
        "oro_gateway_cost_microusd_total{provider=\"chutes\",model=\"deepseek-ai/DeepSeek-V3.2-TEE\"}",
        "oro_gateway_overhead_seconds",
    ] {
        assert!(metrics.contains(series), "{series} is not in /metrics");
    }

    // Anything off the allowlist is refused, naming where the list is.
    let refused = chat(&app, &work, json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "model_not_allowed");
    assert!(refused["error"]["message"].as_str().unwrap().contains("/models"), "{refused}");

    // The run ends: the token dies with it.
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{}/complete", work["eval_run_id"].as_str().unwrap()))
        .json(&json!({"terminal_status": "SUCCESS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let after = chat(&app, &work, json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["error"]["code"], "invalid_run_token");
    let (spend,): (Option<f64>,) = sqlx::query_as("SELECT spend_usd FROM eval_runs WHERE id = $1")
        .bind(work["eval_run_id"].as_str().unwrap())
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert!((spend.unwrap() - expected).abs() < 1e-12, "the run's spend is what the gateway metered");
}

/// Many requests at once against a small cap: the spend never passes it, and the requests
/// past it get OpenAI's 402 with `run_cap_reached`.
async fn the_cap_holds_under_concurrency(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            extra: vec![("ORO_RUN_KEY_CAP_USD", "0.05".into()), ("ORO_GATEWAY_MAX_OUTPUT_TOKENS", "4000".into())],
            ..Default::default()
        },
    )
    .await;
    let (_miner, work) = chutes_run(&app, "hugo").await;
    // Each request's worst case: ~150 bytes at $0.3/M plus 4,000 tokens at $1.2/M, about
    // $0.0048; a cap of $0.05 holds ten of them at once.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let request = chat(
            &app,
            &work,
            json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": format!("request {i}")}]}),
        );
        tasks.push(tokio::spawn(async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut capped) = (0, 0);
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            200 => ok += 1,
            402 => {
                assert_eq!(body["error"]["code"], "run_cap_reached", "{body}");
                assert_eq!(body["error"]["type"], "insufficient_quota");
                assert!(body["error"]["message"].as_str().unwrap().starts_with("this run has spent its $0.05 cap"), "{body}");
                capped += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (cap, spent, reserved) = run_key(&app, &work).await;
    assert!(ok >= 10, "at least the requests that fit at once went through ({ok})");
    assert!(spent <= cap, "spent {spent} of {cap}");
    assert!(reserved.abs() < 1e-12, "{reserved} still reserved");
    eprintln!("{ok} answered, {capped} refused at the cap; spent ${spent:.6} of ${cap}");
}

/// Two replicas sharing the database reserve against one run at once: the spend never passes
/// the cap (the reservation is one statement, no counter lives in memory).
async fn the_cap_holds_across_replicas(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_RUN_KEY_CAP_USD", "0.05".into())], ..Default::default() }).await;
    let (_miner, work) = chutes_run(&app, "mona").await;
    let token = work["inference_token"]["access_token"].as_str().unwrap().to_owned();
    let settings = (*app.services.settings).clone();
    let db = service::db::Db::connect(&settings.database_url).await.unwrap();
    let replica = service::Services::build(settings, db).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let services = if i % 2 == 0 { app.services.clone() } else { replica.clone() };
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            // Reserve $0.003, hold it a moment, settle to $0.002.
            match services.reserve_run_spend(&token, 0.003).await {
                Ok(reservation) => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    services.settle_run_spend(&reservation, 0.002).await.unwrap();
                    true
                }
                Err(service::gateway::GatewayError::CapReached { .. }) => false,
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut answered = 0;
    for task in tasks {
        answered += usize::from(task.await.unwrap());
    }
    replica.background_work_done().await;
    let (cap, spent, reserved) = run_key(&app, &work).await;
    assert!((spent - answered as f64 * 0.002).abs() < 1e-9, "every answered request settled once: {spent} vs {answered}");
    assert!(spent <= cap + 1e-12, "spent {spent} of {cap}");
    assert!(reserved.abs() < 1e-12);
    assert!(answered < 200, "the cap refused some ({answered} answered)");
}

/// `server catalog price` sets what the gateway charges; `server catalog list` shows it.
async fn operators_set_prices(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = secrecy::ExposeSecret::expose_secret(&app.services.settings.database_url).to_owned();
    let set =
        crate::faults::operator_command(&url, &app.key_file, &["catalog", "price", "deepseek/deepseek-v3.2", "0.5", "2"]).output().unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert_eq!(
        String::from_utf8_lossy(&set.stdout),
        "deepseek/deepseek-v3.2 now costs $0.5 per million input tokens and $2 per million output tokens through the run gateway\n"
    );
    let list = crate::faults::operator_command(&url, &app.key_file, &["catalog", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.lines().any(|l| l == "deepseek-ai/DeepSeek-V3.2-TEE\tdeepseek/deepseek-v3.2\t$0.5/$2 per M tokens\t(default)"), "{list}");
    let bad =
        crate::faults::operator_command(&url, &app.key_file, &["catalog", "price", "deepseek/deepseek-v3.2", "-1", "2"]).output().unwrap();
    assert!(!bad.status.success());
    let unknown = crate::faults::operator_command(&url, &app.key_file, &["catalog", "price", "gpt-4o", "1", "2"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("gpt-4o is not in the catalog"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}

/// A stream passes through event for event; the usage chunk the gateway asked for is kept
/// from a client that did not ask, and shown to one that did; both are charged.
async fn streams_pass_through_and_are_charged(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_miner, work) = chutes_run(&app, "iris").await;
    let ask = |include_usage: bool| {
        let mut body =
            json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "stream": true, "messages": [{"role": "user", "content": "stream me"}]});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        chat(&app, &work, body)
    };
    let plain = ask(false).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "text/event-stream");
    let plain = plain.text().await.unwrap();
    let events: Vec<&str> = plain.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{plain}");
    assert!(!plain.contains("\"usage\""), "no usage chunk for a client that did not ask: {plain}");
    assert!(plain.contains("Simulated reply"), "{plain}");
    let (_, after_plain, _) = run_key(&app, &work).await;
    assert!(after_plain > 0.0, "the stream was charged from the usage the gateway asked for");

    let with_usage = ask(true).send().await.unwrap().text().await.unwrap();
    assert!(with_usage.contains("\"usage\""), "{with_usage}");
    let (_, after_both, reserved) = run_key(&app, &work).await;
    assert!(after_both > after_plain && reserved.abs() < 1e-12);
}

/// Stop inference: the miner kills a running run's credential at once, on either provider;
/// disconnecting Chutes kills its gateway tokens too.
async fn stop_inference_and_disconnect_kill_run_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "jack").await;
    let run_id = work["eval_run_id"].as_str().unwrap();
    let hi = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 200);
    assert_eq!(listed_run(&app, &miner, run_id).await["inference_stopped"], false, "running, not stopped");

    // Not the miner's run: not found.
    let stranger = TestWallet::new();
    let other = app.signed(&stranger, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 200, "a stranger stopped nothing");

    let stopped = app.signed(&miner, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap();
    assert_eq!(stopped.status(), 200);
    let stopped: Value = stopped.json().await.unwrap();
    assert_eq!(stopped["provider"], "chutes");
    assert!(stopped["spend_usd"].as_f64().unwrap() > 0.0, "{stopped}");
    assert!(stopped["message"].as_str().unwrap().starts_with("Stopped inference for run"), "{stopped}");
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 401, "the token died with the stop");
    // The run list knows, so a reloaded dashboard does not offer the stop again.
    let listed = listed_run(&app, &miner, run_id).await;
    assert_eq!((&listed["status"], &listed["inference_stopped"]), (&json!("running"), &json!(true)), "{listed}");

    // An OpenRouter run: its key is disabled at OpenRouter, at once.
    let or_miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&or_miner, &key).await.status(), 200);
    submit(&app, &or_miner).await;
    let or_work = claim(&app).await;
    assert_eq!(or_work["inference_token"]["provider"], "openrouter");
    let or_run = or_work["eval_run_id"].as_str().unwrap();
    assert_eq!(listed_run(&app, &or_miner, or_run).await["inference_stopped"], false);
    assert_eq!(app.signed(&or_miner, Method::POST, &format!("/v1/miner/runs/{or_run}/stop")).send().await.unwrap().status(), 200);
    assert!(app.sim.list_openrouter_keys(&key).iter().all(|k| k.disabled && !k.deleted));
    assert_eq!(listed_run(&app, &or_miner, or_run).await["inference_stopped"], true);
    // Stopping twice is harmless: the run is still running, its key already dead.
    assert_eq!(app.signed(&or_miner, Method::POST, &format!("/v1/miner/runs/{or_run}/stop")).send().await.unwrap().status(), 200);

    // A finished run cannot be stopped.
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{or_run}/complete"))
        .json(&json!({"terminal_status": "FAILED", "failure_reason": "inference stopped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let late = app.signed(&or_miner, Method::POST, &format!("/v1/miner/runs/{or_run}/stop")).send().await.unwrap();
    assert_eq!(late.status(), 409);
    // Over: its status says so, and "stopped" no longer applies.
    let ended = listed_run(&app, &or_miner, or_run).await;
    assert_eq!((&ended["status"], &ended["inference_stopped"]), (&json!("failed"), &json!(false)), "{ended}");

    // Disconnecting Chutes kills the gateway tokens of the miner's running Chutes runs.
    let (dave, dave_work) = chutes_run(&app, "kate").await;
    assert_eq!(chat(&app, &dave_work, hi.clone()).send().await.unwrap().status(), 200);
    assert_eq!(app.signed(&dave, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap().status(), 200);
    assert_eq!(chat(&app, &dave_work, hi).send().await.unwrap().status(), 401);
    assert_eq!(listed_run(&app, &dave, dave_work["eval_run_id"].as_str().unwrap()).await["inference_stopped"], true);
}

/// The miner's run `run_id` as `GET /v1/miner/runs` lists it.
async fn listed_run(app: &TestApp, miner: &TestWallet, run_id: &str) -> Value {
    let list: Value = app.get_signed(miner, "/v1/miner/runs").await.json().await.unwrap();
    list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["eval_run_id"] == run_id)
        .cloned()
        .unwrap_or_else(|| panic!("{run_id} is not in {list}"))
}

/// Planted secrets: the miner's Chutes token (the one the gateway forwards with) appears in no
/// answer of the gateway or the API, no log line and nothing stored; the run token is stored
/// only as its digest and never logged.
async fn the_gateway_leaks_neither_token(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_RUN_KEY_CAP_USD", "0.01".into())], ..Default::default() }).await;
    let (miner, work) = chutes_run(&app, "nora").await;
    let run_token = work["inference_token"]["access_token"].as_str().unwrap().to_owned();
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let upstream = secrecy::ExposeSecret::expose_secret(&app.services.gateway_upstream_token(&hotkey).await.unwrap()).to_owned();
    assert!(upstream.starts_with("cak_"), "the token the gateway forwards with");

    let mut answers = work.to_string();
    let hi = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]});
    let mut streamed = hi.clone();
    streamed["stream"] = json!(true);
    for body in [hi.clone(), streamed, json!({"model": "gpt-4o", "messages": []}), json!("not an object")] {
        answers.push_str(&chat(&app, &work, body).send().await.unwrap().text().await.unwrap());
    }
    // Upstream refusals pass through: they must not carry the token either.
    app.sim.set_chutes_balance("nora", 0.0, false).unwrap();
    let refused = chat(&app, &work, hi.clone()).send().await.unwrap();
    assert_eq!(refused.status(), 402);
    answers.push_str(&refused.text().await.unwrap());
    let models = app.client.get(format!("{}/models", work["inference_token"]["base_url"].as_str().unwrap())).bearer_auth(&run_token);
    answers.push_str(&models.send().await.unwrap().text().await.unwrap());
    for path in ["/v1/miner/runs", "/v1/miner/inference-auth", "/v1/miner/inference-auth/events"] {
        answers.push_str(&app.get_signed(&miner, path).await.text().await.unwrap());
    }
    answers.push_str(&app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap());
    let stored = app.everything_stored(backend).await;
    let logs = captured_logs();
    for (name, text) in [("an answer", &answers), ("the database", &stored), ("the logs", &logs)] {
        assert!(!text.contains(&upstream), "the miner's Chutes token is in {name}");
    }
    assert!(!stored.contains(&run_token) && !logs.contains(&run_token), "the run token is stored or logged in the clear");
    assert!(stored.contains(&service::gateway::token_digest(&run_token)), "its digest is what is kept");
}

/// The `openai` package (PyPI), as an agent uses it: plain and streaming completions, the
/// usage chunk only when asked, OpenAI's error types for an unlisted model and the cap.
async fn the_openai_package_is_a_client(backend: Backend) {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oro/openai/bin/python");
    assert!(python.exists(), "{} is missing: `./dev test` installs it (server/tests/oro_sdk/install.sh)", python.display());
    let app = spawn_app_with(
        backend,
        AppOptions {
            extra: vec![("ORO_RUN_KEY_CAP_USD", "0.02".into()), ("ORO_GATEWAY_MAX_OUTPUT_TOKENS", "16".into())],
            ..Default::default()
        },
    )
    .await;
    // A dear model, so that a dozen short answers reach the cap.
    app.services.catalog_set_price("deepseek/deepseek-v3.2", 0.3, 100.0).await.unwrap();
    assert!(app.services.catalog_set_price("deepseek/deepseek-v3.2", -1.0, 1.0).await.is_err(), "a negative price is refused");
    let (_miner, work) = chutes_run(&app, "liam").await;
    let token = &work["inference_token"];
    let output = tokio::process::Command::new(&python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gateway/openai_client.py"))
        .arg(token["base_url"].as_str().unwrap())
        .arg(token["access_token"].as_str().unwrap())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["model"], "deepseek-ai/DeepSeek-V3.2-TEE", "{seen}");
    assert!(seen["content"].as_str().unwrap().starts_with("Simulated reply"), "{seen}");
    assert!(seen["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{seen}");
    assert!(seen["stream_text"].as_str().unwrap().starts_with("Simulated reply"), "{seen}");
    assert_eq!(seen["stream_usage_chunks"], 0, "{seen}");
    assert!(seen["stream_final_usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{seen}");
    assert_eq!(seen["unlisted"], json!({"status": 400, "code": "model_not_allowed"}));
    assert_eq!(seen["cap"]["status"], 402, "{seen}");
    assert_eq!(seen["cap"]["code"], "run_cap_reached");
    assert_eq!(seen["cap"]["type"], "insufficient_quota");
    assert!(seen["cap"]["calls"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["models"].as_array().unwrap().iter().any(|m| m == "deepseek-ai/DeepSeek-V3.2-TEE"), "{seen}");
    let (cap, spent, reserved) = run_key(&app, &work).await;
    assert!(spent <= cap && reserved.abs() < 1e-12, "spent {spent} of {cap}, {reserved} reserved");
}

/// Ids and timestamps differ between two answers of the simulator; nothing else may.
fn without_ids(stream: &str) -> String {
    let mut out = String::with_capacity(stream.len());
    let mut rest = stream;
    loop {
        let next = [("\"id\":\"", '"'), ("\"created\":", ',')]
            .into_iter()
            .filter_map(|(field, end)| rest.find(field).map(|at| (at, field, end)))
            .min_by_key(|(at, ..)| *at);
        let Some((at, field, end)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + field.len()]);
        rest = &rest[at + field.len()..];
        let value_end = rest.find(end).unwrap_or(rest.len());
        out.push('_');
        rest = &rest[value_end..];
    }
}

/// Byte for byte: what the gateway relays is what Chutes sent for the same request, apart from
/// the usage event a client did not ask for.
async fn streams_are_relayed_byte_for_byte(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "otto").await;
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let upstream = secrecy::ExposeSecret::expose_secret(&app.services.gateway_upstream_token(&hotkey).await.unwrap()).to_owned();
    let body = |include_usage: bool| {
        let mut b = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "stream": true, "max_tokens": 100,
                           "messages": [{"role": "user", "content": "tell me about streams, at some length please"}]});
        if include_usage {
            b["stream_options"] = json!({"include_usage": true});
        }
        b
    };
    let direct = app
        .client
        .post(format!("{}/chat/completions", app.services.chutes.llm_base()))
        .bearer_auth(&upstream)
        .json(&body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = direct.split_inclusive("\n\n").collect();
    let usage_event = events.iter().position(|e| e.contains("\"usage\"")).expect("Chutes sends a usage event when asked");

    let relayed_with = chat(&app, &work, body(true)).send().await.unwrap().text().await.unwrap();
    assert_eq!(without_ids(&relayed_with), without_ids(&direct), "a client that asked for usage gets Chutes' stream as it came");
    let relayed_without = chat(&app, &work, body(false)).send().await.unwrap().text().await.unwrap();
    let expected: String = events.iter().enumerate().filter(|(i, _)| *i != usage_event).map(|(_, e)| *e).collect();
    assert_eq!(without_ids(&relayed_without), without_ids(&expected), "everything but the usage event the gateway added");
}

/// A client that leaves mid-stream is charged for what was generated: the gateway reads the
/// upstream to its end and settles from its usage.
async fn a_client_leaving_mid_stream_is_charged(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_miner, work) = chutes_run(&app, "pia").await;
    let body = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "stream": true, "messages": [{"role": "user", "content": "a long story"}]});
    let mut response = chat(&app, &work, body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.chunk().await.unwrap().is_some(), "the first bytes came");
    drop(response);
    let mut settled = (0.0, 0.0);
    for _ in 0..100 {
        let (_, spent, reserved) = run_key(&app, &work).await;
        settled = (spent, reserved);
        if reserved.abs() < 1e-12 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (spent, reserved) = settled;
    assert!(reserved.abs() < 1e-12, "the reservation was settled ({reserved} still held)");
    assert!(spent > 0.0, "what was generated is charged");
    // Not the worst case: the answer's usage.
    assert!(spent < worst_case_of_a_short_request(), "charged {spent}, more than the answer's usage");
}

/// What the default ceiling (4,096 output tokens) reserves for a short request: settling to
/// the usage charges far less.
fn worst_case_of_a_short_request() -> f64 {
    4096.0 * 1.2 / 1e6
}

/// A 402 from the provider passes through to the client, and the run fails with "no credits"
/// whatever its validator reports.
async fn a_provider_402_fails_the_run_with_no_credits(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "quinn").await;
    app.sim.set_chutes_balance("quinn", 0.0, false).unwrap();
    let refused = chat(&app, &work, json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 402);
    let said = refused.text().await.unwrap();
    assert!(said.contains("Quota exceeded"), "Chutes' own answer passes through: {said}");
    let (_, spent, reserved) = run_key(&app, &work).await;
    assert_eq!((spent, reserved), (0.0, 0.0), "a refused request costs nothing");

    let run_id = work["eval_run_id"].as_str().unwrap();
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/complete"))
        .json(&json!({"terminal_status": "SUCCESS", "validator_score": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "FAILED", "{done}");
    assert_eq!(done["agent_version_became_eligible"], false);
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert_eq!(runs["runs"][0]["status"], "failed");
    assert_eq!(runs["runs"][0]["failure_reason"], "no credits: insufficient balance on the Chutes account", "{runs}");
}

/// `ORO_GATEWAY_OPENROUTER=1`: an OpenRouter run's validator gets a gateway token; the gateway
/// forwards with the run's capped key (never handed out), under OpenRouter's names, metered by
/// OpenRouter's `usage.cost`; the key and the token die together.
async fn openrouter_runs_through_the_gateway(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_GATEWAY_OPENROUTER", "1".into())], ..Default::default() }).await;
    let miner = TestWallet::new();
    let management = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &management).await.status(), 200);
    submit(&app, &miner).await;
    let work = claim(&app).await;
    let token = &work["inference_token"];
    assert_eq!(token["provider"], "openrouter");
    assert!(token["access_token"].as_str().unwrap().starts_with("oro-run-"), "{token}");
    assert_eq!(token["base_url"].as_str().unwrap(), app.services.settings.gateway_base_url());
    assert!(!work.to_string().contains("sk-or-v1-"), "the run's OpenRouter key is not handed out: {work}");
    let keys = app.sim.list_openrouter_keys(&management);
    let run_key_at_openrouter = keys.iter().find(|k| !k.disabled).expect("the run's key was minted");
    assert_eq!(run_key_at_openrouter.limit, Some(5.0), "OpenRouter's own cap stays the backstop");

    // A Chutes name is accepted and sent under OpenRouter's; the cost is OpenRouter's.
    let answer = chat(&app, &work, json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["model"], "deepseek/deepseek-v3.2");
    let charged = answer["usage"]["cost"].as_f64().unwrap();
    app.services.background_work_done().await;
    let (spent, reserved): (f64, f64) =
        sqlx::query_as("SELECT spent_usd, reserved_usd FROM run_keys WHERE eval_run_id = $1 AND minted_by = 'gateway:openrouter'")
            .bind(work["eval_run_id"].as_str().unwrap())
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
    assert!((spent - charged).abs() < 1e-12 && reserved.abs() < 1e-12, "metered {spent}, OpenRouter charged {charged}");
    let at_openrouter = app.sim.openrouter_key_info(&run_key_at_openrouter.hash).unwrap();
    assert!((at_openrouter.usage - charged).abs() < 1e-9, "the request went out on the run's own key");
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert!((runs["runs"][0]["spend_usd"].as_f64().unwrap() - charged).abs() < 1e-12, "live spend: {runs}");

    let models: Value = app
        .client
        .get(format!("{}/models", token["base_url"].as_str().unwrap()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(models["data"].as_array().unwrap().iter().all(|m| m["owned_by"] == "openrouter"), "{models}");
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "deepseek/deepseek-v3.2"), "{models}");

    // The run's key is sealed at rest, not stored in the clear (masked labels aside).
    let whole_keys = |text: &str| {
        text.match_indices("sk-or-v1-")
            .filter(|(at, prefix)| text[at + prefix.len()..].chars().take(64).filter(char::is_ascii_hexdigit).count() == 64)
            .count()
    };
    assert_eq!(whole_keys(&app.everything_stored(backend).await), 0, "an OpenRouter key is stored in the clear");
    assert_eq!(whole_keys(&captured_logs()), 0, "an OpenRouter key is in the logs");
    let sealed = || async {
        let (sealed,): (Option<Vec<u8>>,) = sqlx::query_as("SELECT upstream_sealed FROM run_keys WHERE minted_by = 'gateway:openrouter'")
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
        sealed
    };
    assert!(sealed().await.is_some_and(|s| s.len() > 64), "the gateway holds the run's key sealed");

    // The run key's own limit: OpenRouter's 402 passes through, and the run is not failed for
    // it (the agent can ask for less); an account out of credits is.
    let refusal = || async {
        let (r,): (Option<String>,) = sqlx::query_as("SELECT provider_refusal FROM eval_runs WHERE id = $1")
            .bind(work["eval_run_id"].as_str().unwrap())
            .fetch_one(app.services.db.pool())
            .await
            .unwrap();
        r
    };
    let limit_usage = at_openrouter.usage;
    app.sim.set_openrouter_key_usage(&run_key_at_openrouter.hash, 5.0).unwrap();
    let hi = json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]});
    let limited = chat(&app, &work, hi.clone()).send().await.unwrap();
    assert_eq!(limited.status(), 402);
    assert!(limited.text().await.unwrap().contains("Key limit exceeded"));
    assert_eq!(refusal().await, None, "the key's own limit does not fail the run");
    app.sim.set_openrouter_key_usage(&run_key_at_openrouter.hash, limit_usage).unwrap();
    app.sim.set_openrouter_credits(&management, 0.0).unwrap();
    assert_eq!(chat(&app, &work, hi).send().await.unwrap().status(), 402);
    assert_eq!(refusal().await.as_deref(), Some("no credits: insufficient balance on the OpenRouter account"));
    app.sim.set_openrouter_credits(&management, 10.0).unwrap();

    // Stop inference while OpenRouter cannot disable the key: the gateway token dies first, so
    // the run list says the inference is stopped, and the stop, refused, can be asked again.
    let run_id = work["eval_run_id"].as_str().unwrap();
    app.sim.set_fault(Fault { target: FaultTarget::OpenRouterKeysPatch, kind: FaultKind::Status(503), remaining: None });
    let refused = app.signed(&miner, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap();
    assert!(refused.status().is_server_error(), "{}", refused.status());
    assert!(!app.sim.openrouter_key_info(&run_key_at_openrouter.hash).unwrap().disabled);
    assert_eq!(
        chat(&app, &work, json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "the token died first"
    );
    assert_eq!(listed_run(&app, &miner, run_id).await["inference_stopped"], true);
    app.sim.clear_faults();

    // Stop inference: the key at OpenRouter and the gateway token, at once.
    assert_eq!(app.signed(&miner, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap().status(), 200);
    assert!(app.sim.openrouter_key_info(&run_key_at_openrouter.hash).unwrap().disabled);
    let after = chat(&app, &work, json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert!(sealed().await.is_none(), "a dead key is not kept");

    // The month counts the run once, at what OpenRouter says it spent.
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/complete"))
        .json(&json!({"terminal_status": "FAILED", "failure_reason": "inference stopped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    app.services.reap_runs().await.unwrap();
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert!((runs["month_spend_usd"]["openrouter"].as_f64().unwrap() - charged).abs() < 1e-9, "{runs}");
    assert!((runs["runs"][0]["spend_usd"].as_f64().unwrap() - charged).abs() < 1e-9, "{runs}");
}

/// A run token dies at its expiry even while its run still holds a lease and its allowance
/// is trusted in memory.
async fn a_token_dies_at_its_expiry(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_miner, work) = chutes_run(&app, "tess").await;
    let hi = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 200);
    let expires_at = service::clock::parse_rfc3339(work["inference_token"]["expires_at"].as_str().unwrap()).unwrap();
    app.services.clock.advance(expires_at - app.services.clock.now() - 2);
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 200, "alive until its expiry");
    app.services.clock.advance(3);
    let late = chat(&app, &work, hi).send().await.unwrap();
    assert_eq!(late.status(), 401);
    let said: Value = late.json().await.unwrap();
    assert_eq!(said["error"]["code"], "invalid_run_token", "{said}");
}

/// A refusal belongs to the attempt that met it: a run put back in the queue (its validator
/// vanished) starts clean, and succeeds on its next attempt once the account can pay.
async fn a_requeued_run_forgets_its_refusal(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "rosa").await;
    let run_id = work["eval_run_id"].as_str().unwrap().to_owned();
    app.sim.set_chutes_balance("rosa", 0.0, false).unwrap();
    let hi = json!({"model": "deepseek-ai/DeepSeek-V3.2-TEE", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(chat(&app, &work, hi.clone()).send().await.unwrap().status(), 402);
    // The validator vanishes; the reaper puts the run back.
    app.services.clock.advance(app.services.settings.run_lease_secs + 1);
    app.services.reap_runs().await.unwrap();
    let (refusal,): (Option<String>,) = sqlx::query_as("SELECT provider_refusal FROM eval_runs WHERE id = $1")
        .bind(&run_id)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert_eq!(refusal, None, "the requeued run starts clean");
    // The miner tops up; the next attempt pays and succeeds.
    app.sim.set_chutes_balance("rosa", 20.0, true).unwrap();
    let again = claim(&app).await;
    assert_eq!(again["eval_run_id"].as_str(), Some(run_id.as_str()));
    assert_eq!(chat(&app, &again, hi).send().await.unwrap().status(), 200);
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/complete"))
        .json(&json!({"terminal_status": "SUCCESS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert_eq!(runs["runs"][0]["status"], "succeeded", "{runs}");
}

/// A request still in flight when its token is retired (Stop inference) is settled into the
/// run's recorded spend, not lost.
async fn a_request_settled_after_a_stop_still_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "sara").await;
    let run_id = work["eval_run_id"].as_str().unwrap();
    let token = work["inference_token"]["access_token"].as_str().unwrap();
    let in_flight = app.services.reserve_run_spend(token, 0.25).await.unwrap();
    assert_eq!(app.signed(&miner, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap().status(), 200);
    app.services.settle_run_spend(&in_flight, 0.1).await.unwrap();
    let (spend,): (Option<f64>,) =
        sqlx::query_as("SELECT spend_usd FROM eval_runs WHERE id = $1").bind(run_id).fetch_one(app.services.db.pool()).await.unwrap();
    assert!((spend.unwrap() - 0.1).abs() < 1e-12, "the run's spend includes the late request: {spend:?}");
    let (usage, reserved): (Option<f64>, f64) = sqlx::query_as("SELECT usage_usd, reserved_usd FROM run_keys WHERE eval_run_id = $1")
        .bind(run_id)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert!((usage.unwrap() - 0.1).abs() < 1e-12 && reserved.abs() < 1e-12, "{usage:?} {reserved}");
    let runs: Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert!((runs["month_spend_usd"]["chutes"].as_f64().unwrap() - 0.1).abs() < 1e-12, "{runs}");
}

/// A replica reserves from an allowance it leased, without a statement per request; a token
/// stopped through another replica stops working there within the lease's trust (a second),
/// and what it spent there reaches the run's record.
async fn a_token_stopped_elsewhere_dies_within_a_second(backend: Backend) {
    let app = spawn_app(backend).await;
    let (miner, work) = chutes_run(&app, "ines").await;
    let run_id = work["eval_run_id"].as_str().unwrap();
    let token = work["inference_token"]["access_token"].as_str().unwrap().to_owned();
    let settings = (*app.services.settings).clone();
    let db = service::db::Db::connect(&settings.database_url).await.unwrap();
    let replica = service::Services::build(settings, db).await.unwrap();
    let first = replica.reserve_run_spend(&token, 0.01).await.unwrap();
    replica.settle_run_spend(&first, 0.004).await.unwrap();
    // The next reservations come from the replica's allowance; one stays in flight, so the
    // allowance is busy (an idle one goes back to the row within 50 ms).
    let second = replica.reserve_run_spend(&token, 0.01).await.unwrap();
    replica.settle_run_spend(&second, 0.004).await.unwrap();
    let held = replica.reserve_run_spend(&token, 0.01).await.unwrap();
    assert_eq!(app.signed(&miner, Method::POST, &format!("/v1/miner/runs/{run_id}/stop")).send().await.unwrap().status(), 200);
    let stopped = std::time::Instant::now();
    loop {
        match replica.reserve_run_spend(&token, 0.01).await {
            Ok(r) => {
                replica.settle_run_spend(&r, 0.0).await.unwrap();
                assert!(stopped.elapsed() < std::time::Duration::from_millis(1500), "the stopped token still works on the replica");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(service::gateway::GatewayError::InvalidToken) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(stopped.elapsed() >= std::time::Duration::from_millis(400), "the busy allowance was trusted a while (else this tests nothing)");
    replica.settle_run_spend(&held, 0.004).await.unwrap();
    replica.background_work_done().await;
    let (usage, reserved): (Option<f64>, f64) = sqlx::query_as("SELECT usage_usd, reserved_usd FROM run_keys WHERE eval_run_id = $1")
        .bind(run_id)
        .fetch_one(app.services.db.pool())
        .await
        .unwrap();
    assert!((usage.unwrap() - 0.012).abs() < 1e-12 && reserved.abs() < 1e-12, "the replica's spend is recorded: {usage:?} {reserved}");
    let (spend,): (Option<f64>,) =
        sqlx::query_as("SELECT spend_usd FROM eval_runs WHERE id = $1").bind(run_id).fetch_one(app.services.db.pool()).await.unwrap();
    assert!((spend.unwrap() - 0.012).abs() < 1e-12, "{spend:?}");
}

both_engines!(
    a_token_dies_at_its_expiry,
    a_token_stopped_elsewhere_dies_within_a_second,
    a_requeued_run_forgets_its_refusal,
    a_request_settled_after_a_stop_still_counts,
    streams_are_relayed_byte_for_byte,
    a_client_leaving_mid_stream_is_charged,
    a_provider_402_fails_the_run_with_no_credits,
    openrouter_runs_through_the_gateway,
    the_gateway_leaks_neither_token,
    the_openai_package_is_a_client,
    a_chutes_run_gets_a_run_bound_token_and_is_metered,
    the_cap_holds_under_concurrency,
    the_cap_holds_across_replicas,
    operators_set_prices,
    streams_pass_through_and_are_charged,
    stop_inference_and_disconnect_kill_run_credentials
);
