use reqwest::Method;
use reqwest::multipart::{Form, Part};
use simulator::{Fault, FaultKind, FaultTarget};

use crate::both_engines;
use crate::helpers::*;

const AGENT: &str = "def run(task):\n    return 'hello'\n";

async fn submit(app: &TestApp, wallet: &TestWallet, name: &str, file_name: &str, code: &[u8]) -> reqwest::Response {
    let form = Form::new()
        .text("agent_name", name.to_owned())
        .part("file", Part::bytes(code.to_vec()).file_name(file_name.to_owned()).mime_str("text/x-python").unwrap());
    app.signed(wallet, Method::POST, "/v1/miner/submit").multipart(form).send().await.unwrap()
}

async fn claim_as(app: &TestApp, validator: &TestWallet) -> (u16, serde_json::Value) {
    let response =
        app.signed(validator, Method::POST, "/v1/validator/work/claim").json(&serde_json::json!({"cpu_pct": 10.0})).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

async fn claim(app: &TestApp) -> (u16, serde_json::Value) {
    claim_as(app, &app.validator).await
}

async fn runs_of(app: &TestApp, wallet: &TestWallet) -> Vec<serde_json::Value> {
    let body: serde_json::Value = app.get_signed(wallet, "/v1/miner/runs").await.json().await.unwrap();
    body["runs"].as_array().unwrap().clone()
}

async fn submission_rules(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_SUBMIT_COOLDOWN_SECS", "3600".into())], ..Default::default() }).await;
    let miner = TestWallet::new();
    // Nothing connected: refused, naming both connect commands, in the SDK's error shape.
    let response = submit(&app, &miner, "agent", "agent.py", AGENT.as_bytes()).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let text = body["detail"].as_str().unwrap();
    assert!(text.contains("oro inference connect chutes") && text.contains("oro inference connect openrouter"), "{text}");
    // No code: oro-sdk's 400 models define none for this, and an unknown one crashes its parser.
    assert!(body.get("error_code").is_none(), "{body}");

    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    let (status, text) = detail(submit(&app, &miner, "bad name!", "agent.py", AGENT.as_bytes()).await).await;
    assert_eq!(status, 400, "{text}");
    let (status, text) = detail(submit(&app, &miner, "agent", "agent.sh", b"echo hi").await).await;
    assert_eq!((status, text.contains("Python")), (400, true), "{text}");
    let (status, _) = detail(submit(&app, &miner, "agent", "agent.py", &[0xff, 0xfe, 0x00]).await).await;
    assert_eq!(status, 400);
    let big = vec![b'#'; 1024 * 1024 + 10];
    assert_eq!(submit(&app, &miner, "agent", "agent.py", &big).await.status(), 413);

    let accepted = submit(&app, &miner, "agent", "agent.py", AGENT.as_bytes()).await;
    assert_eq!(accepted.status(), 200);
    let body: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(body["admission_status"], "ACCEPTED");
    assert_eq!(body["hotkey"], miner.hotkey);
    assert!(uuid::Uuid::parse_str(body["agent_version_id"].as_str().unwrap()).is_ok());

    // Cooldown: 429 with when to come back.
    let again = submit(&app, &miner, "agent", "agent.py", AGENT.as_bytes()).await;
    assert_eq!(again.status(), 429);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["error_code"], "COOLDOWN_ACTIVE");
    assert!(body["remaining_seconds"].as_i64().unwrap() > 3500);
    assert!(body["next_allowed_at"].as_str().unwrap().ends_with("+00:00"));
    let runs = runs_of(&app, &miner).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "queued");
}

async fn claim_mints_a_capped_expiring_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(submit(&app, &miner, "agent", "agent.py", AGENT.as_bytes()).await.status(), 200);

    // Not a validator: refused, and the run stays queued.
    let (status, body) = claim_as(&app, &miner).await;
    assert_eq!((status, body["detail"].as_str()), (403, Some("unknown validator: this hotkey is not in the validator set")));

    let (status, work) = claim(&app).await;
    assert_eq!(status, 200, "{work}");
    let token = &work["inference_token"];
    assert_eq!(token["provider"], "openrouter");
    assert_eq!(token["base_url"], app.services.settings.openrouter_api_base);
    let run_key = token["access_token"].as_str().unwrap();
    assert!(run_key.starts_with("sk-or-v1-") && run_key != key);
    assert_eq!(work["sandbox_env"]["SANDBOX_MODEL"], "deepseek/deepseek-v3.2");
    assert_eq!(work["sandbox_env"]["INFERENCE_PROVIDER"], "openrouter");
    assert_eq!(work["suite_id"], 1);
    assert!(work["lease_expires_at"].as_str().unwrap().ends_with("+00:00"));

    let minted = app.sim.list_openrouter_keys(&key);
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].limit, Some(5.0), "the per-run cap");
    let expires = service::clock::parse_rfc3339(&minted[0].expires_at.clone().unwrap().replace('Z', "+00:00")).unwrap();
    let ttl = expires - service::clock::system_now();
    assert!((3590..=3600).contains(&ttl), "one hour, got {ttl}");
    assert!(minted[0].name.contains(work["eval_run_id"].as_str().unwrap()), "the key's name names the run");

    // The key works at the provider, and only this validator may download the code.
    let chat = app
        .client
        .post(format!("{}/chat/completions", token["base_url"].as_str().unwrap()))
        .bearer_auth(run_key)
        .json(&serde_json::json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let code = app
        .signed(&app.validator, Method::GET, &format!("/v1/validator/agent-versions/{}/code", work["agent_version_id"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(code.status(), 200);
    assert_eq!(code.text().await.unwrap(), AGENT);

    // No more work.
    assert_eq!(claim(&app).await.0, 204);

    // Completion disables (not deletes) the key and records its spend.
    app.sim.set_openrouter_key_usage(&minted[0].hash, 1.25).unwrap();
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{}/complete", work["eval_run_id"].as_str().unwrap()))
        .json(&serde_json::json!({"terminal_status": "SUCCESS", "validator_score": 0.87}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let after = app.sim.list_openrouter_keys(&key);
    assert!(after[0].disabled && !after[0].deleted);
    let runs = runs_of(&app, &miner).await;
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["provider"], "openrouter");
    assert_eq!(runs[0]["cap_usd"], 5.0);
    assert_eq!(runs[0]["spend_usd"], 1.25);
    // Completing twice is refused cleanly.
    let twice = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{}/complete", work["eval_run_id"].as_str().unwrap()))
        .json(&serde_json::json!({"terminal_status": "SUCCESS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 409);
}

async fn default_switch_applies_to_the_next_claim(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(app.connect_chutes(&miner, "gina").await.status(), 200);
    assert_eq!(submit(&app, &miner, "a1", "a.py", AGENT.as_bytes()).await.status(), 200);
    assert_eq!(submit(&app, &miner, "a2", "a.py", AGENT.as_bytes()).await.status(), 200);

    let (_, first) = claim(&app).await;
    assert_eq!(first["inference_token"]["provider"], "openrouter");
    let set = app
        .signed(&miner, Method::PATCH, "/v1/miner/inference-auth/default")
        .json(&serde_json::json!({"provider": "chutes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);

    // The running run keeps its provider and its key still works.
    let runs = runs_of(&app, &miner).await;
    let running = runs.iter().find(|r| r["eval_run_id"] == first["eval_run_id"]).unwrap();
    assert_eq!((running["status"].as_str(), running["provider"].as_str()), (Some("running"), Some("openrouter")));
    let still = app
        .client
        .post(format!("{}/chat/completions", first["inference_token"]["base_url"].as_str().unwrap()))
        .bearer_auth(first["inference_token"]["access_token"].as_str().unwrap())
        .json(&serde_json::json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);

    // The next claim is on Chutes.
    let (status, second) = claim(&app).await;
    assert_eq!(status, 200);
    assert_eq!(second["inference_token"]["provider"], "chutes");
    // Through the run gateway: a run-bound token, never the miner's own.
    assert!(second["inference_token"]["access_token"].as_str().unwrap().starts_with("oro-run-"));
    assert_eq!(second["inference_token"]["base_url"].as_str().unwrap(), app.services.settings.gateway_base_url());
    assert_eq!(second["sandbox_env"]["SANDBOX_MODEL"], "deepseek-ai/DeepSeek-V3.2-TEE");

    // Disconnecting OpenRouter disables the live per-run key of the first run.
    assert_eq!(app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/openrouter").send().await.unwrap().status(), 200);
    assert!(app.sim.list_openrouter_keys(&key).iter().all(|k| k.disabled && !k.deleted));
}

async fn no_credits_fails_the_run_clearly(backend: Backend) {
    let app = spawn_app(backend).await;
    let broke_or = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&broke_or, &key).await.status(), 200);
    app.sim.set_openrouter_credits(&key, 0.0).unwrap();
    let broke_chutes = TestWallet::new();
    assert_eq!(app.connect_chutes(&broke_chutes, "henry").await.status(), 200);
    app.sim.set_chutes_balance("henry", 0.0, false).unwrap();
    let no_provider = TestWallet::new();
    let k2 = app.sim.create_openrouter_account(1.0);
    assert_eq!(app.connect_openrouter(&no_provider, &k2).await.status(), 200);
    assert_eq!(submit(&app, &broke_or, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    assert_eq!(submit(&app, &broke_chutes, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    assert_eq!(submit(&app, &no_provider, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    // Disconnected after submitting: the run has no provider at claim time.
    assert_eq!(app.signed(&no_provider, Method::DELETE, "/v1/miner/inference-auth/openrouter").send().await.unwrap().status(), 200);

    // The validator is never handed a run that cannot pay.
    assert_eq!(claim(&app).await.0, 204);
    let r = &runs_of(&app, &broke_or).await[0];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["failure_reason"], "no credits: insufficient balance on the OpenRouter account");
    assert!(app.sim.list_openrouter_keys(&key).is_empty(), "no key minted for a broke account");
    let r = &runs_of(&app, &broke_chutes).await[0];
    assert_eq!(r["status"], "failed");
    assert!(r["failure_reason"].as_str().unwrap().starts_with("no credits: insufficient balance on the Chutes account"), "{r}");
    let r = &runs_of(&app, &no_provider).await[0];
    assert!(r["failure_reason"].as_str().unwrap().starts_with("no inference provider connected"), "{r}");

    // A Chutes account at $0 with daily quota left is NOT out of credits.
    let quota = TestWallet::new();
    assert_eq!(app.connect_chutes(&quota, "ivy").await.status(), 200);
    app.sim.set_chutes_balance("ivy", 0.0, true).unwrap();
    assert_eq!(submit(&app, &quota, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    let (status, work) = claim(&app).await;
    assert_eq!((status, work["inference_token"]["provider"].as_str()), (200, Some("chutes")));

    // A run that ran dry reports the provider's 402; the miner reads "no credits".
    let rich = TestWallet::new();
    let k3 = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&rich, &k3).await.status(), 200);
    assert_eq!(submit(&app, &rich, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    let (_, work) = claim(&app).await;
    let failed = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{}/complete", work["eval_run_id"].as_str().unwrap()))
        .json(&serde_json::json!({"terminal_status": "FAILED", "failure_reason": "HTTP 402 {\"error\":{\"code\":402,\"message\":\"Insufficient credits\",\"metadata\":{\"limit_source\":\"openrouter_credits\"}}}"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    assert_eq!(runs_of(&app, &rich).await[0]["failure_reason"], "no credits: insufficient balance on the OpenRouter account");
}

async fn provider_trouble_requeues_instead_of_failing(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(submit(&app, &miner, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    app.sim.set_fault(Fault { target: FaultTarget::OpenRouterKeysCreate, kind: FaultKind::Status(503), remaining: Some(1) });
    assert_eq!(claim(&app).await.0, 204);
    let r = &runs_of(&app, &miner).await[0];
    assert_eq!(r["status"], "queued", "not the miner's fault: {r}");
    // Once the backoff has passed (15 min 15 s at most), the run is claimable again.
    app.services.clock.advance(915);
    assert_eq!(claim(&app).await.0, 200);
}

async fn reaper_disables_abandoned_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(submit(&app, &miner, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    for attempt in 1..=3 {
        let (status, work) = claim(&app).await;
        assert_eq!(status, 200, "attempt {attempt}");
        // The validator vanishes: its lease runs out.
        app.services.clock.advance(app.services.settings.run_lease_secs + 1);
        assert_eq!(app.services.reap_runs().await.unwrap(), 1);
        let keys = app.sim.list_openrouter_keys(&key);
        assert_eq!(keys.len(), attempt);
        assert!(keys.iter().all(|k| k.disabled && !k.deleted), "every abandoned key disabled");
        let heartbeat = app
            .signed(
                &app.validator,
                Method::POST,
                &format!("/v1/validator/evaluation-runs/{}/heartbeat", work["eval_run_id"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_ne!(heartbeat.status(), 200, "a reaped lease cannot be renewed");
    }
    let r = &runs_of(&app, &miner).await[0];
    assert_eq!(r["status"], "failed");
    assert!(r["failure_reason"].as_str().unwrap().starts_with("abandoned"), "{r}");
}

async fn concurrent_claims_hand_out_each_run_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut validators = vec![app.validator.clone()];
    for _ in 0..6 {
        let v = TestWallet::new();
        app.add_validator(&v.hotkey, "").await;
        validators.push(v);
    }
    for m in 0..10 {
        let miner = TestWallet::new();
        let key = app.sim.create_openrouter_account(100.0);
        assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
        for i in 0..5 {
            assert_eq!(submit(&app, &miner, &format!("agent{m}-{i}"), "a.py", AGENT.as_bytes()).await.status(), 200);
        }
    }
    let mut tasks = Vec::new();
    for i in 0..56 {
        let validator = validators[i % validators.len()].clone();
        let request = app.signed(&validator, Method::POST, "/v1/validator/work/claim");
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 || status == 204, "{status} {body}");
        if status == 200 {
            ids.push(body["eval_run_id"].as_str().unwrap().to_owned());
        }
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no run handed out twice");
    assert_eq!(total, 50, "every run handed out");
}

/// The claim spends its request's nonce in its own first transaction: a replay of a claim
/// that got a run, even a replay sent at once, is refused as a replay and takes nothing (the
/// next run stays queued for the next claim), on both engines.
async fn a_replayed_claim_takes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(100.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    for i in 0..3 {
        assert_eq!(submit(&app, &miner, &format!("agent{i}"), "a.py", AGENT.as_bytes()).await.status(), 200);
    }
    let headers = app.validator.headers_at(app.services.clock.now(), "one-claim");
    let send = || {
        let mut request = app.client.post(app.url("/v1/validator/work/claim"));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    // The original and a replay racing it: exactly one gets a run.
    let (a, b) = tokio::join!(send(), send());
    let mut answers = [a, b];
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers[0].0, 200, "{:?}", answers[0].1);
    assert_eq!(answers[1].0, 401, "{:?}", answers[1].1);
    assert!(answers[1].1["detail"].as_str().unwrap().starts_with("replayed nonce"), "{:?}", answers[1].1);
    // A replay after the fact: the same.
    let (status, body) = send().await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().starts_with("replayed nonce"), "{body}");
    // The replays reserved nothing: one run is running, the two others are queued and go to
    // the next two claims.
    let first = answers[0].1["eval_run_id"].as_str().unwrap().to_owned();
    let statuses: Vec<String> = runs_of(&app, &miner).await.iter().map(|r| r["status"].as_str().unwrap().to_owned()).collect();
    assert_eq!(statuses.iter().filter(|s| *s == "running").count(), 1, "{statuses:?}");
    let (status, second) = claim(&app).await;
    assert_eq!(status, 200, "{second}");
    let (status, third) = claim(&app).await;
    assert_eq!(status, 200, "{third}");
    let mut ids = vec![first, second["eval_run_id"].as_str().unwrap().to_owned(), third["eval_run_id"].as_str().unwrap().to_owned()];
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three different runs");
    assert_eq!(claim(&app).await.0, 204);
}

both_engines!(
    a_replayed_claim_takes_nothing,
    submission_rules,
    claim_mints_a_capped_expiring_key,
    default_switch_applies_to_the_next_claim,
    no_credits_fails_the_run_clearly,
    provider_trouble_requeues_instead_of_failing,
    reaper_disables_abandoned_keys,
    concurrent_claims_hand_out_each_run_once,
);

async fn fresh_keys_propagate_before_the_handout(backend: Backend) {
    let app = spawn_app(backend).await;
    let miners: Vec<TestWallet> = (0..6).map(|_| TestWallet::new()).collect();
    for m in &miners {
        let key = app.sim.create_openrouter_account(10.0);
        assert_eq!(app.connect_openrouter(m, &key).await.status(), 200);
        assert_eq!(submit(&app, m, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    }
    // Every freshly minted key answers 401 for its first 3 uses.
    app.sim.set_openrouter_propagation_401s(3);
    let validators: Vec<TestWallet> = (0..6).map(|_| TestWallet::new()).collect();
    for v in &validators {
        app.add_validator(&v.hotkey, "").await;
    }
    let mut tasks = Vec::new();
    for v in validators {
        let request = app.signed(&v, Method::POST, "/v1/validator/work/claim");
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap_or_default())
        }));
    }
    for t in tasks {
        let (status, work) = t.await.unwrap();
        assert_eq!(status, 200, "{work}");
        // What the validator got works on its first call.
        let chat = app
            .client
            .post(format!("{}/chat/completions", work["inference_token"]["base_url"].as_str().unwrap()))
            .bearer_auth(work["inference_token"]["access_token"].as_str().unwrap())
            .json(&serde_json::json!({"model": "deepseek/deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(chat.status(), 200);
    }
    let key_checks = app.sim.request_log().iter().filter(|(m, p)| m == "GET" && p.ends_with("/key")).count();
    assert!(key_checks >= 6 * 4, "each key was retried through its propagation 401s ({key_checks} checks)");
}

async fn budget_guard_at_its_boundary(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(100.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    let put =
        |v: serde_json::Value| app.signed(&miner, Method::PUT, "/v1/miner/budget").json(&serde_json::json!({"monthly_usd": v})).send();
    assert_eq!(put(serde_json::json!(-3)).await.unwrap().status(), 422);
    let set: serde_json::Value = put(serde_json::json!(10.0)).await.unwrap().json().await.unwrap();
    assert_eq!(set["monthly_usd"], 10.0);
    for i in 0..3 {
        assert_eq!(submit(&app, &miner, &format!("a{i}"), "a.py", AGENT.as_bytes()).await.status(), 200);
    }
    // Caps are $5: two runs reach $10 exactly, the third would pass it.
    assert_eq!(claim(&app).await.0, 200);
    assert_eq!(claim(&app).await.0, 200);
    assert_eq!(claim(&app).await.0, 204);
    let runs = runs_of(&app, &miner).await;
    let failed: Vec<_> = runs.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["failure_reason"].as_str().unwrap().starts_with("monthly budget reached"), "{}", failed[0]);
    assert_eq!(app.sim.list_openrouter_keys(&key).len(), 2, "no key minted past the ceiling");
    let budget: serde_json::Value = app.get_signed(&miner, "/v1/miner/budget").await.json().await.unwrap();
    assert_eq!(budget["committed_usd"], 10.0);

    // Spend recorded at completion replaces the cap in what is committed, and is totalled.
    let running: Vec<_> = runs.iter().filter(|r| r["status"] == "running").map(|r| r["eval_run_id"].as_str().unwrap().to_owned()).collect();
    let keys = app.sim.list_openrouter_keys(&key);
    for id in &running {
        let hash = &keys.iter().find(|k| k.name.contains(id.as_str())).unwrap().hash;
        app.sim.set_openrouter_key_usage(hash, 0.5).unwrap();
        let done = app
            .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{id}/complete"))
            .json(&serde_json::json!({"terminal_status": "SUCCESS"}))
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
    }
    let budget: serde_json::Value = app.get_signed(&miner, "/v1/miner/budget").await.json().await.unwrap();
    assert_eq!(budget["committed_usd"], 1.0);
    let list: serde_json::Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    assert_eq!(list["month_spend_usd"]["openrouter"], 1.0);
    // Room again: the next run is minted; lifting the ceiling works too.
    assert_eq!(submit(&app, &miner, "a4", "a.py", AGENT.as_bytes()).await.status(), 200);
    assert_eq!(claim(&app).await.0, 200);
    let cleared: serde_json::Value = put(serde_json::Value::Null).await.unwrap().json().await.unwrap();
    assert_eq!(cleared["monthly_usd"], serde_json::Value::Null);
}

both_engines!(fresh_keys_propagate_before_the_handout, budget_guard_at_its_boundary);

/// Each preflight outcome at claim: 401 fails the run ("reconnect"), 429/5xx requeue it.
async fn preflight_outcomes(backend: Backend) {
    let app = spawn_app(backend).await;
    let revoked = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&revoked, &key).await.status(), 200);
    assert_eq!(submit(&app, &revoked, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    // The management key was revoked at OpenRouter after it was connected.
    app.sim.set_fault(Fault { target: FaultTarget::OpenRouterCredits, kind: FaultKind::Status(401), remaining: Some(1) });
    assert_eq!(claim(&app).await.0, 204);
    let r = &runs_of(&app, &revoked).await[0];
    assert_eq!(
        (r["status"].as_str(), r["failure_reason"].as_str()),
        (Some("failed"), Some("provider credential invalid or revoked: reconnect"))
    );

    // Chutes overloaded (429) or failing (502) at preflight: not the miner's fault.
    let busy = TestWallet::new();
    assert_eq!(app.connect_chutes(&busy, "kate").await.status(), 200);
    assert_eq!(submit(&app, &busy, "a", "a.py", AGENT.as_bytes()).await.status(), 200);
    for status in [429, 502] {
        app.sim.set_fault(Fault { target: FaultTarget::ChutesChat, kind: FaultKind::Status(status), remaining: Some(1) });
        assert_eq!(claim(&app).await.0, 204);
        let r = &runs_of(&app, &busy).await[0];
        assert_eq!(r["status"], "queued", "after {status}: {r}");
        app.services.clock.advance(915);
    }
    let (status, work) = claim(&app).await;
    assert_eq!((status, work["inference_token"]["provider"].as_str()), (200, Some("chutes")));
}

both_engines!(preflight_outcomes);

/// Review findings, pinned: a long non-ASCII failure report does not panic the request, and
/// replacing the management key disables the old key's live run keys.
async fn review_regressions(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let old_key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &old_key).await.status(), 200);
    for i in 0..2 {
        assert_eq!(submit(&app, &miner, &format!("a{i}"), "a.py", AGENT.as_bytes()).await.status(), 200);
    }
    let (_, first) = claim(&app).await;
    let report = format!("Traceback: {}", "déjà vu ’ ".repeat(60));
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{}/complete", first["eval_run_id"].as_str().unwrap()))
        .json(&serde_json::json!({"terminal_status": "FAILED", "failure_reason": report}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let r = runs_of(&app, &miner).await.into_iter().find(|r| r["eval_run_id"] == first["eval_run_id"]).unwrap();
    assert!(r["failure_reason"].as_str().unwrap().ends_with("..."), "{r}");

    let (_, second) = claim(&app).await;
    let new_key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &new_key).await.status(), 200);
    let old_keys = app.sim.list_openrouter_keys(&old_key);
    let live = old_keys.iter().find(|k| k.name.contains(second["eval_run_id"].as_str().unwrap())).unwrap();
    assert!(live.disabled && !live.deleted, "the replaced key's run key is disabled, not deleted");
}

both_engines!(review_regressions);

async fn request_shapes(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let bad = app.get_signed(&miner, "/v1/miner/runs?limit=abc").await;
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"][0], "query");
    let key = app.sim.create_openrouter_account(1.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    // Over the request body limit (2 MiB), not only over the 1 MiB agent limit.
    let huge = vec![b'#'; 3 * 1024 * 1024];
    let response = submit(&app, &miner, "agent", "agent.py", &huge).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "FILE_TOO_LARGE");
}

both_engines!(request_shapes);
