use std::time::Duration;

use reqwest::Method;
use secrecy::ExposeSecret;
use simulator::{Fault, FaultKind, FaultTarget};

use crate::both_engines;
use crate::helpers::*;

/// A provider's row in the list; the list leaves out providers never connected.
fn provider<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    static ABSENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == name)
        .unwrap_or_else(|| ABSENT.get_or_init(|| serde_json::json!({"connected": false, "state": "not_connected"})))
}

async fn openrouter_connect_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();

    // Shape errors: 422, nothing stored, no call to OpenRouter.
    app.sim.clear_request_log();
    for (bad, says) in
        [("sk-ant-0123", "start with sk-or-v1-"), ("sk-or-v1-abc", "truncated"), (&*format!("sk-or-v1-{}\"", "a".repeat(63)), "characters")]
    {
        let (status, text) = detail(app.connect_openrouter(&miner, bad).await).await;
        assert_eq!(status, 422, "{bad}");
        assert!(text.contains(says), "{text}");
    }
    assert!(app.sim.request_log().is_empty(), "shape errors never reach OpenRouter");
    let empty = app
        .signed(&miner, Method::POST, "/v1/miner/inference-auth/openrouter")
        .json(&serde_json::json!({"wrong": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);

    // A live key OpenRouter does not know; an inference key.
    let (status, text) = detail(app.connect_openrouter(&miner, &format!("sk-or-v1-{}", "0".repeat(64))).await).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("does not accept this key"), "{text}");
    let inference_key = app.sim.create_openrouter_inference_key(10.0);
    let (status, text) = detail(app.connect_openrouter(&miner, &inference_key).await).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a management key"), "{text}");

    // OpenRouter down, rate limiting, slow: said so, nothing stored.
    let key = app.sim.create_openrouter_account(50.0);
    for (kind, expect) in [(FaultKind::Status(500), 503), (FaultKind::Status(429), 503), (FaultKind::Delay(Duration::from_secs(4)), 504)] {
        // Lasting past the connect's retries (a slow answer is not retried).
        let remaining = if matches!(kind, FaultKind::Delay(_)) { 1 } else { 1 + service::connections::CONNECT_RETRIES };
        app.sim.set_fault(Fault { target: FaultTarget::OpenRouterKey, kind, remaining: Some(remaining) });
        let (status, text) = detail(app.connect_openrouter(&miner, &key).await).await;
        assert_eq!(status, expect, "{text}");
        assert!(text.contains("OpenRouter"), "{text}");
        let st = app.status(&miner).await;
        assert_eq!(provider(&st, "openrouter")["connected"], false);
    }
    app.sim.clear_faults();

    // Good key: stored, masked, default.
    let response = app.connect_openrouter(&miner, &key).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["ok"], true);
    assert_eq!(body["default_provider"], "openrouter");
    let st = app.status(&miner).await;
    assert_eq!(st["default_provider"], "openrouter");
    let row = provider(&st, "openrouter");
    assert_eq!(row["connected"], true);
    assert_eq!(row["label"], format!("sk-or-v1-...{}", &key[key.len() - 4..]));
    assert!(row["updated_at"].as_str().unwrap().ends_with("+00:00"));
    assert!(!st.to_string().contains(&key[9..]), "the key never comes back");
    let one: serde_json::Value = app.get_signed(&miner, "/v1/miner/inference-auth/openrouter").await.json().await.unwrap();
    assert_eq!(one["connected"], true);

    // Re-connecting replaces the key in place.
    let second = app.sim.create_openrouter_account(5.0);
    assert_eq!(app.connect_openrouter(&miner, &second).await.status(), 200);
    let st = app.status(&miner).await;
    assert_eq!(provider(&st, "openrouter")["label"], format!("sk-or-v1-...{}", &second[second.len() - 4..]));
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM connections").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(count, 1);
}

async fn chutes_connect_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let response = app.connect_chutes(&miner, "alice").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"ok": true, "default_provider": "chutes"}));
    let st = app.status(&miner).await;
    assert_eq!(provider(&st, "chutes")["label"], "alice");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("alice"), 1);
    let legacy: serde_json::Value = app.get_signed(&miner, "/v1/miner/chutes-auth/status").await.json().await.unwrap();
    assert_eq!(legacy["connected"], true);

    // Redirect URI not registered; a malformed verifier; a spent code.
    let (status, _) = detail(
        app.signed(&miner, Method::POST, "/v1/miner/chutes/exchange-code")
            .json(&serde_json::json!({"code": "x", "code_verifier": "a".repeat(43), "redirect_uri": "https://evil.example/cb"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = detail(
        app.signed(&miner, Method::POST, "/v1/miner/chutes/exchange-code")
            .json(&serde_json::json!({"code": "x", "code_verifier": "short", "redirect_uri": "http://localhost:8765/callback"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    let (status, text) = detail(
        app.signed(&miner, Method::POST, "/v1/miner/chutes/exchange-code")
            .json(&serde_json::json!({"code": "not-a-code", "code_verifier": "a".repeat(43), "redirect_uri": "http://localhost:8765/callback"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("refused the authorization code"), "{text}");

    // Chutes' token endpoint down: 503 and the existing connection untouched.
    app.sim.set_fault(Fault { target: FaultTarget::ChutesToken, kind: FaultKind::Status(502), remaining: Some(1) });
    let (status, text) = detail(app.connect_chutes(&miner, "alice").await).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(provider(&app.status(&miner).await, "chutes")["connected"], true);

    // The legacy route takes a refresh token, spends it once, and keeps its successor.
    let other = TestWallet::new();
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let tokens = app.services.chutes_access_token(&hotkey).await.unwrap();
    let legacy = app
        .signed(&other, Method::POST, "/v1/miner/chutes-auth")
        .json(&serde_json::json!({"refresh_token": tokens.refresh_token.as_ref().expect("rotated").expose_secret()}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    assert_eq!(provider(&app.status(&other).await, "chutes")["connected"], true);
}

async fn dashboard_oauth_flow_binds_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = service::domain::Hotkey::parse(&TestWallet::new().hotkey).unwrap();
    let intruder = service::domain::Hotkey::parse(&TestWallet::new().hotkey).unwrap();
    let (url, state) = app.services.begin_chutes_authorization(&miner).await.unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], app.services.settings.chutes_redirect_uri);
    assert_eq!(q["state"], state);
    app.sim.create_chutes_user("bob", 3.0, false);
    let code = app.sim.issue_chutes_code("bob", &q["client_id"], &q["redirect_uri"], &q["code_challenge"], &q["scope"]);

    // Another miner's session cannot use this state.
    let stolen = app.services.finish_chutes_authorization(&intruder, &state, Some(&code), None).await;
    assert!(stolen.is_err());
    let done = app.services.finish_chutes_authorization(&miner, &state, Some(&code), None).await.unwrap();
    assert_eq!(done.default_provider, Some(wire::Provider::Chutes));
    // Single use.
    let replay = app.services.finish_chutes_authorization(&miner, &state, Some(&code), None).await.unwrap_err();
    assert!(replay.to_string().contains("expired or was already used"), "{replay}");
    // Denied consent says so.
    let (_, state) = app.services.begin_chutes_authorization(&miner).await.unwrap();
    let denied = app.services.finish_chutes_authorization(&miner, &state, None, Some("access_denied")).await.unwrap_err();
    assert!(denied.to_string().contains("declined"), "{denied}");
}

async fn default_and_disconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let patch =
        |p: &str| app.signed(&miner, Method::PATCH, "/v1/miner/inference-auth/default").json(&serde_json::json!({"provider": p})).send();

    let (status, text) = detail(patch("chutes").await.unwrap()).await;
    assert_eq!(status, 409);
    assert!(text.contains("not connected"), "{text}");
    let (status, text) = detail(app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap()).await;
    assert_eq!((status, text.as_str()), (404, "Chutes is not connected"));

    let key = app.sim.create_openrouter_account(20.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(app.connect_chutes(&miner, "carol").await.status(), 200);
    assert_eq!(app.status(&miner).await["default_provider"], "openrouter", "the first connected stays default");
    let changed: serde_json::Value = patch("chutes").await.unwrap().json().await.unwrap();
    assert_eq!(changed["default_provider"], "chutes");
    assert_eq!(app.status(&miner).await["default_provider"], "chutes");

    // Per-run keys minted with this management key get disabled (not deleted) on disconnect.
    let management = secrecy::SecretString::from(key.clone());
    let minted = app
        .services
        .openrouter
        .create_key(&management, "run-1", 5.0, &service::clock::rfc3339(service::clock::system_now() + 3600))
        .await
        .unwrap();
    sqlx::query("INSERT INTO run_keys (key_hash, hotkey, eval_run_id, minted_by, cap_usd, expires_at, created_at) VALUES ($1, $2, 'run-1', $3, 5.0, $4, $4)")
        .bind(&minted.hash)
        .bind(&miner.hotkey)
        .bind(service::connections::key_fingerprint(&management))
        .bind(service::clock::system_now())
        .execute(app.services.db.pool())
        .await
        .unwrap();

    // Disconnect the default (chutes): revoked at Chutes, default falls back to OpenRouter.
    let alive_before = app.sim.chutes_refresh_tokens_alive("carol");
    assert_eq!(alive_before, 1);
    let gone: serde_json::Value =
        app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap().json().await.unwrap();
    assert_eq!(gone["default_provider"], "openrouter");
    assert_eq!(gone["message"], "Disconnected Chutes; OpenRouter is now your default.", "what changed, in people's names");
    assert_eq!(
        changed["message"],
        "Chutes is now your default: the next evaluation claimed uses it. ORO's oro-sdk CLI 5.0.3 and newer refuses to submit while Chutes is the default: submit from the dashboard or with oro-inference's `oro`, or connect OpenRouter and run `oro inference set-default openrouter`."
    );
    assert_eq!(app.sim.chutes_refresh_tokens_alive("carol"), 0);
    assert!(app.sim.chutes_revoked_tokens("carol") >= 1);

    // Disconnect OpenRouter while OpenRouter is down: forgotten locally, retried later.
    app.sim.set_fault(Fault { target: FaultTarget::OpenRouterKeysPatch, kind: FaultKind::Status(503), remaining: None });
    let response = app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/openrouter").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let last: serde_json::Value = response.json().await.unwrap();
    assert_eq!(last["message"], "Disconnected OpenRouter. No provider is connected now: your next submission needs one.");
    let st = app.status(&miner).await;
    assert_eq!(st["default_provider"], serde_json::Value::Null, "nothing connected, no default");
    assert!(st["providers"].as_array().unwrap().iter().all(|p| p["connected"] == false));
    let listed = app.sim.list_openrouter_keys(&key);
    assert!(!listed.iter().find(|k| k.hash == minted.hash).unwrap().disabled);
    app.sim.clear_faults();
    sqlx::query("UPDATE pending_revocations SET next_try_at = 0").execute(app.services.db.pool()).await.unwrap();
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 1);
    let listed = app.sim.list_openrouter_keys(&key);
    let run_key = listed.iter().find(|k| k.hash == minted.hash).unwrap();
    assert!(run_key.disabled && !run_key.deleted, "disabled, not deleted");

    // The audit log tells the story, in order.
    let events: serde_json::Value = app.get_signed(&miner, "/v1/miner/inference-auth/events").await.json().await.unwrap();
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"default_changed"));
    for expected in ["connected", "disconnected", "revoked"] {
        assert!(kinds.contains(&expected), "{kinds:?}");
    }
    assert_eq!(kinds.last(), Some(&"revoked"));
}

/// Chutes down during disconnect: the miner is disconnected anyway; the revocation waits.
async fn chutes_down_during_disconnect(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "jack").await.status(), 200);
    app.sim.set_fault(Fault { target: FaultTarget::ChutesRevoke, kind: FaultKind::Status(500), remaining: None });
    let response = app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(provider(&app.status(&miner).await, "chutes")["connected"], false);
    assert_eq!(app.sim.chutes_refresh_tokens_alive("jack"), 1, "not revoked yet");
    // Still down at the first retry: kept, with a later retry time.
    sqlx::query("UPDATE pending_revocations SET next_try_at = 0").execute(app.services.db.pool()).await.unwrap();
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 0);
    let (attempts, next): (i64, i64) =
        sqlx::query_as("SELECT attempts, next_try_at FROM pending_revocations").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(attempts, 2);
    assert!(next > service::clock::system_now() + 60, "backs off");
    app.sim.clear_faults();
    sqlx::query("UPDATE pending_revocations SET next_try_at = 0").execute(app.services.db.pool()).await.unwrap();
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 1);
    assert_eq!(app.sim.chutes_refresh_tokens_alive("jack"), 0, "revoked once Chutes answered");
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pending_revocations").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(left, 0, "nothing kept once revoked");

    // Chutes' userinfo down at connect: connected anyway, with a generic label.
    app.sim.set_fault(Fault { target: FaultTarget::ChutesUserinfo, kind: FaultKind::Status(503), remaining: Some(1) });
    assert_eq!(app.connect_chutes(&miner, "jack").await.status(), 200);
    assert_eq!(provider(&app.status(&miner).await, "chutes")["label"], "Chutes account");
}

async fn refresh_rotation_is_serialized(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "dave").await.status(), 200);
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    // Eight concurrent refreshes: with reuse detection on, two spending the same token would
    // kill the family and fail; serialized, all succeed and one live token remains.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let services = app.services.clone();
        let hotkey = hotkey.clone();
        tasks.push(tokio::spawn(
            async move { services.chutes_access_token(&hotkey).await.map(|t| t.access_token.expose_secret().to_owned()) },
        ));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().expect("every refresh succeeds"));
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 8, "each caller got its own fresh access token");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("dave"), 1);

    // invalid_grant: the connection needs re-consent, visibly.
    app.sim.set_fault(Fault { target: FaultTarget::ChutesToken, kind: FaultKind::Status(400), remaining: Some(1) });
    let err = app.services.chutes_access_token(&hotkey).await.err().expect("refused");
    assert!(err.to_string().contains("connect again"), "{err}");
    let st = app.status(&miner).await;
    let row = provider(&st, "chutes");
    assert_eq!(row["connected"], false);
    assert_eq!(row["state"], "needs_reconsent");
    let (status, _) = detail(
        app.signed(&miner, Method::PATCH, "/v1/miner/inference-auth/default")
            .json(&serde_json::json!({"provider": "chutes"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409);
}

async fn concurrent_changes_stay_consistent(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(20.0);
    assert_eq!(app.connect_chutes(&miner, "erin").await.status(), 200);
    for round in 0..4 {
        let mut tasks = Vec::new();
        for i in 0..6 {
            let request = match (i + round) % 4 {
                0 => app.signed(&miner, Method::POST, "/v1/miner/inference-auth/openrouter").json(&serde_json::json!({"credential": key})),
                1 => app
                    .signed(&miner, Method::PATCH, "/v1/miner/inference-auth/default")
                    .json(&serde_json::json!({"provider": "openrouter"})),
                2 => app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/openrouter"),
                _ => app.signed(&miner, Method::PATCH, "/v1/miner/inference-auth/default").json(&serde_json::json!({"provider": "chutes"})),
            };
            tasks.push(tokio::spawn(async move { request.send().await.unwrap().status().as_u16() }));
        }
        for t in tasks {
            let status = t.await.unwrap();
            assert!([200, 404, 409].contains(&status), "only clean answers, got {status}");
        }
        // Invariant: the default is a connected provider, or none only when nothing is connected.
        let st = app.status(&miner).await;
        let connected: Vec<&str> = st["providers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["connected"] == true)
            .map(|p| p["provider"].as_str().unwrap())
            .collect();
        match st["default_provider"].as_str() {
            Some(d) => assert!(connected.contains(&d), "default {d} must be connected: {st}"),
            None => assert!(connected.is_empty(), "connected providers but no default: {st}"),
        }
    }
}

/// Known secrets go in; none comes out in answers, pages or the database's plaintext.
async fn secrets_never_leak(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(20.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(app.connect_chutes(&miner, "frank").await.status(), 200);
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let tokens = app.services.chutes_access_token(&hotkey).await.unwrap();
    let refresh = tokens.refresh_token.as_ref().expect("rotated").expose_secret().to_owned();
    let secrets = [key.clone(), key[9..].to_owned(), refresh.clone()];

    let mut seen = String::new();
    let submitted = app.services.submit_agent(&hotkey, "leakcheck", "agent.py", b"def run(task):\n    return 1\n").await.unwrap();
    let version = submitted.agent_version_id.unwrap();
    let agent = submitted.agent_id.unwrap();
    for path in [
        "/v1/miner/inference-auth",
        "/v1/miner/inference-auth/openrouter",
        "/v1/miner/inference-auth/chutes",
        "/v1/miner/inference-auth/events",
        "/v1/miner/chutes-auth/status",
        "/v1/miner/agents",
        &format!("/v1/miner/agents/{agent}/versions"),
        &format!("/v1/miner/agent-versions/{version}"),
        "/v1/miner/race-selection",
        "/v1/miner/no-such-route",
        "/health/deep",
    ] {
        seen.push_str(&app.get_signed(&miner, path).await.text().await.unwrap());
    }
    // The signed-in dashboard, rendered on the server.
    app.sign_in_browser(&miner).await;
    let dashboard = app.client.get(app.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(dashboard.contains(&format!("sk-or-v1-...{}", &key[key.len() - 4..])), "the dashboard shows the masked label");
    assert!(dashboard.contains("frank"), "and the Chutes username");
    seen.push_str(&dashboard);
    for path in ["/", "/models"] {
        seen.push_str(&app.client.get(app.url(path)).send().await.unwrap().text().await.unwrap());
    }
    // Errors that involve the stored key (OpenRouter refusing it) do not quote it either.
    app.sim.set_fault(Fault { target: FaultTarget::OpenRouterKey, kind: FaultKind::Status(401), remaining: Some(1) });
    seen.push_str(&app.connect_openrouter(&miner, &key).await.text().await.unwrap());
    seen.push_str(&app.everything_stored(backend).await);
    seen.push_str(&captured_logs());
    for secret in &secrets {
        assert!(!seen.contains(secret.as_str()), "a secret leaked");
    }
}

// ------------------------------------------------------------ Chutes OAuth to the standard (#20)

/// RFC 6749 section 6: a refresh answer without `refresh_token` keeps the stored one, for
/// runs and for the legacy paste-a-refresh-token connect.
async fn chutes_refresh_without_rotation_keeps_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "kim").await.status(), 200);
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let rotated = app.services.chutes_access_token(&hotkey).await.unwrap().refresh_token.expect("Chutes rotates by default");

    app.sim.set_chutes_idp_variant(simulator::ChutesIdpVariant { omit_rotated_refresh_token: true, ..Default::default() });
    for _ in 0..3 {
        // Back to back: the refresh lease is given up although nothing was stored.
        let tokens = app.services.chutes_access_token(&hotkey).await.expect("the stored token keeps working");
        assert!(tokens.refresh_token.is_none());
    }
    assert_eq!(app.sim.chutes_refresh_tokens_alive("kim"), 1);
    assert_eq!(provider(&app.status(&miner).await, "chutes")["connected"], true);

    // The legacy route keeps the pasted token when none comes back.
    let other = TestWallet::new();
    let legacy = app
        .signed(&other, Method::POST, "/v1/miner/chutes-auth")
        .json(&serde_json::json!({"refresh_token": rotated.expose_secret()}))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    let other_hotkey = service::domain::Hotkey::parse(&other.hotkey).unwrap();
    assert!(app.services.chutes_access_token(&other_hotkey).await.is_ok(), "the pasted token was kept");
}

/// `ORO_CHUTES_CLIENT_AUTH=basic` against an IdP that accepts only client_secret_basic:
/// connect, refresh and revoke all authenticate; the default (`post`) is refused there.
async fn chutes_client_secret_basic(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_CHUTES_CLIENT_AUTH", "basic".into())], ..Default::default() }).await;
    app.sim.set_chutes_idp_variant(simulator::ChutesIdpVariant { client_auth: simulator::ClientAuth::BasicOnly, ..Default::default() });
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "lou").await.status(), 200);
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    assert!(app.services.chutes_access_token(&hotkey).await.is_ok());
    let response = app.signed(&miner, Method::DELETE, "/v1/miner/inference-auth/chutes").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.sim.chutes_refresh_tokens_alive("lou"), 0, "revoked with Basic credentials");
    let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pending_revocations").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(pending, 0);

    let post = spawn_app(backend).await;
    post.sim.set_chutes_idp_variant(simulator::ChutesIdpVariant { client_auth: simulator::ClientAuth::BasicOnly, ..Default::default() });
    let (status, text) = detail(post.connect_chutes(&miner, "lou").await).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("client credentials"), "{text}");
}

/// `ORO_CHUTES_SCOPES` reaches the consent page; an IdP that issues refresh tokens only to
/// `offline_access` grants fails the connect plainly, and the access token it did issue is
/// revoked (or queued for revocation when Chutes is down).
async fn chutes_scopes_and_offline_access(backend: Backend) {
    let offline = simulator::ChutesIdpVariant { refresh_token_needs_offline_access: true, ..Default::default() };
    let app = spawn_app(backend).await;
    app.sim.set_chutes_idp_variant(offline);
    let miner = TestWallet::new();
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    let scopes = app.services.chutes.scopes().to_owned();
    assert_eq!(scopes, "openid profile chutes:invoke");
    let (status, text) = detail(app.connect_chutes_with_scope(&miner, "max", &scopes).await).await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("offline_access"), "{text}");
    assert_eq!(provider(&app.status(&miner).await, "chutes")["connected"], false);
    assert_eq!(app.sim.chutes_access_tokens_alive("max"), 0, "the access token issued was revoked");

    // Chutes' revocation down too: the token is queued, sealed, like a disconnect's.
    app.sim.set_fault(Fault { target: FaultTarget::ChutesRevoke, kind: FaultKind::Status(503), remaining: None });
    let (status, _) = detail(app.connect_chutes_with_scope(&miner, "max", &scopes).await).await;
    assert_eq!(status, 502);
    assert_eq!(app.sim.chutes_access_tokens_alive("max"), 1);
    let (pending,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pending_revocations").fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!(pending, 1);
    app.sim.clear_faults();
    sqlx::query("UPDATE pending_revocations SET next_try_at = 0").execute(app.services.db.pool()).await.unwrap();
    assert_eq!(app.services.retry_pending_revocations().await.unwrap(), 1);
    assert_eq!(app.sim.chutes_access_tokens_alive("max"), 0, "revoked once Chutes answered");

    // With offline_access configured, the consent page asks for it and the connect holds.
    let with_offline = "openid profile chutes:invoke offline_access";
    let app = spawn_app_with(backend, AppOptions { extra: vec![("ORO_CHUTES_SCOPES", with_offline.into())], ..Default::default() }).await;
    app.sim.set_chutes_idp_variant(offline);
    let (url, _) = app.services.begin_chutes_authorization(&hotkey).await.unwrap();
    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.query_pairs().find(|(k, _)| k == "scope").unwrap().1, with_offline);
    assert_eq!(app.connect_chutes_with_scope(&miner, "max", with_offline).await.status(), 200);
    assert!(app.services.chutes_access_token(&hotkey).await.is_ok());
}

/// A connect whose store fails after the code exchange gives the grant back to Chutes.
async fn failed_chutes_store_revokes_the_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let pool = app.services.db.pool();
    // The audit record is part of the store's transaction: without its table, the store fails.
    sqlx::query("ALTER TABLE audit_events RENAME TO audit_events_away").execute(pool).await.unwrap();
    let (status, text) = detail(app.connect_chutes(&miner, "ned").await).await;
    sqlx::query("ALTER TABLE audit_events_away RENAME TO audit_events").execute(pool).await.unwrap();
    assert_eq!(status, 500, "{text}");
    assert_eq!(app.sim.chutes_refresh_tokens_alive("ned"), 0, "the refresh token was revoked");
    assert_eq!(app.sim.chutes_access_tokens_alive("ned"), 0, "and its access token with it");
    assert_eq!(provider(&app.status(&miner).await, "chutes")["connected"], false);
    assert_eq!(app.connect_chutes(&miner, "ned").await.status(), 200);
}

/// The label falls back to the standard `preferred_username`; a userinfo refused for want of
/// a scope is logged as that, not as a bad credential.
async fn chutes_userinfo_to_the_standard(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sim.set_chutes_idp_variant(simulator::ChutesIdpVariant { preferred_username_claim: true, ..Default::default() });
    let miner = TestWallet::new();
    assert_eq!(app.connect_chutes(&miner, "olga").await.status(), 200);
    assert_eq!(provider(&app.status(&miner).await, "chutes")["label"], "olga");

    app.sim.set_chutes_idp_variant(simulator::ChutesIdpVariant { userinfo_needs_profile_scope: true, ..Default::default() });
    let other = TestWallet::new();
    assert_eq!(app.connect_chutes_with_scope(&other, "pia", "chutes:invoke").await.status(), 200);
    assert_eq!(provider(&app.status(&other).await, "chutes")["label"], "Chutes account");
    let logs = captured_logs();
    assert!(logs.contains("Chutes refused the request: the grant lacks a scope (insufficient_scope)"), "logged as a missing scope");
    assert_eq!(app.connect_chutes_with_scope(&other, "pia", "openid profile chutes:invoke").await.status(), 200);
    assert_eq!(provider(&app.status(&other).await, "chutes")["label"], "pia");
}

/// A miner's mistakes on the dashboard are 4xx answers logged at info, not 500s logged as
/// ERROR (an operator's alert); the page still reads the sentence from the body.
async fn dashboard_mistakes_are_4xx_not_incidents(backend: Backend) {
    let app = spawn_app(backend).await;
    let call = |name: &str, form: Vec<(&str, String)>| {
        app.client.post(app.url(&format!("/api/{name}"))).header("sec-fetch-site", "same-origin").form(&form).send()
    };
    let signed_out = call("load_runs", vec![]).await.unwrap();
    assert_eq!(signed_out.status(), 401);
    assert!(signed_out.text().await.unwrap().contains("NotSignedIn"), "the page learns why");

    let miner = TestWallet::new();
    app.sign_in_browser(&miner).await;
    let shape = call("connect_openrouter", vec![("credential", "not-a-key-at-all".into())]).await.unwrap();
    assert_eq!(shape.status(), 422);
    let refused_key = app.sim.create_openrouter_inference_key(5.0);
    let inference_key = call("connect_openrouter", vec![("credential", refused_key)]).await.unwrap();
    assert_eq!(inference_key.status(), 400, "an inference key where a management key belongs");
    let said = inference_key.text().await.unwrap();
    assert!(said.contains("management"), "the sentence for the page is in the body: {said}");
    let budget = call("save_budget", vec![("monthly_usd", "twenty".into())]).await.unwrap();
    assert_eq!(budget.status(), 422);
    let negative = call("save_budget", vec![("monthly_usd", "-3".into())]).await.unwrap();
    assert_eq!(negative.status(), 422);
    let not_connected = call("disconnect_provider", vec![("provider", "chutes".into())]).await.unwrap();
    assert_eq!(not_connected.status(), 404);

    let logs = captured_logs();
    let errors: Vec<&str> = logs
        .lines()
        .filter(|l| {
            l.contains("ERROR")
                && ["/api/connect_openrouter", "/api/save_budget", "/api/disconnect_provider", "/api/load_runs"]
                    .iter()
                    .any(|p| l.contains(p))
        })
        .collect();
    assert!(errors.is_empty(), "mistakes logged as errors: {errors:#?}");
    assert!(
        logs.lines().any(|l| l.contains("INFO") && l.contains("/api/connect_openrouter") && l.contains(" refused ") && l.contains("422")),
        "refusals are logged at info"
    );
}

/// The dashboard's balance line: OpenRouter's credits against one run's cap, and for Chutes
/// (no balance to read) whether a 1-token call is accepted; where to top up when not.
async fn balances_say_whether_the_next_run_can_pay(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(50.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(app.connect_chutes(&miner, "bella").await.status(), 200);
    app.sign_in_browser(&miner).await;
    let check = |provider: &str| {
        let provider = provider.to_owned();
        let request =
            app.client.post(app.url("/api/check_balance")).header("sec-fetch-site", "same-origin").form(&[("provider", provider)]);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let rich = check("openrouter").await;
    assert_eq!((rich["balance_usd"].as_f64(), rich["can_pay_a_run"].as_bool()), (Some(50.0), Some(true)), "{rich}");
    assert_eq!(rich["message"], "Balance: $50.00 at OpenRouter.");
    app.sim.set_openrouter_credits(&key, 3.0).unwrap();
    let poor = check("openrouter").await;
    assert_eq!(poor["can_pay_a_run"], false, "$3 left cannot cover a $5 cap: {poor}");
    assert!(poor["message"].as_str().unwrap().contains("https://openrouter.ai/settings/credits"), "{poor}");

    let chutes = check("chutes").await;
    assert_eq!(chutes["can_pay_a_run"], true, "{chutes}");
    app.sim.set_chutes_balance("bella", 0.0, false).unwrap();
    let broke = check("chutes").await;
    assert_eq!(broke["can_pay_a_run"], false, "{broke}");
    assert!(broke["message"].as_str().unwrap().starts_with("Chutes says the account is out of funds"), "{broke}");
    assert!(!broke.to_string().contains("cak_") && !poor.to_string().contains(&key), "no credential in the answer");
}

/// The landing page's exchange with a state already spent (the back button, a second tab):
/// "connected" when the miner is, the refusal when not.
async fn a_spent_oauth_state_tells_the_truth(backend: Backend) {
    let app = spawn_app(backend).await;
    let wallet = TestWallet::new();
    let miner = service::domain::Hotkey::parse(&wallet.hotkey).unwrap();
    app.sign_in_browser(&wallet).await;
    let finish = |state: String| {
        app.client.post(app.url("/api/finish_chutes_connect")).header("sec-fetch-site", "same-origin").form(&[("state", state)]).send()
    };
    // Spent before anything was connected: refused, and said so.
    let (_, state) = app.services.begin_chutes_authorization(&miner).await.unwrap();
    app.services.finish_chutes_authorization(&miner, &state, None, Some("access_denied")).await.unwrap_err();
    let refused = finish(state).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("already used"));
    // Spent by the exchange that connected Chutes: the page hears the truth.
    let (url, state) = app.services.begin_chutes_authorization(&miner).await.unwrap();
    let q: std::collections::HashMap<_, _> = url::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    app.sim.create_chutes_user("dora", 3.0, false);
    let code = app.sim.issue_chutes_code("dora", &q["client_id"], &q["redirect_uri"], &q["code_challenge"], &q["scope"]);
    app.services.finish_chutes_authorization(&miner, &state, Some(&code), None).await.unwrap();
    let again = finish(state).await.unwrap();
    assert_eq!(again.status(), 200);
    let answer: serde_json::Value = again.json().await.unwrap();
    assert_eq!((answer["ok"].as_bool(), answer["default_provider"].as_str()), (Some(true), Some("chutes")), "{answer}");
}

/// A change made from the dashboard is said once, by the page loaded after it (its island
/// reloads the page), and only to the browser that made it; a refusal keeps nothing. The
/// landing page reloaded without Chutes' answer hears what is true.
async fn a_dashboard_change_is_said_once_by_the_next_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    app.sign_in_browser(&miner).await;
    let call = |name: &str, form: Vec<(&'static str, String)>| {
        app.client.post(app.url(&format!("/api/{name}"))).header("sec-fetch-site", "same-origin").form(&form).send()
    };
    let dashboard = || async { app.client.get(app.url("/dashboard")).send().await.unwrap().text().await.unwrap() };
    const SAID: &str = "Connected OpenRouter (sk-or-v1-...";

    let refused = call("connect_openrouter", vec![("credential", app.sim.create_openrouter_inference_key(5.0))]).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(!dashboard().await.contains("Connected OpenRouter"), "a refusal is said where it happened, not by the next page");

    let key = app.sim.create_openrouter_account(50.0);
    let connected = call("connect_openrouter", vec![("credential", key.clone())]).await.unwrap();
    assert_eq!(connected.status(), 200);
    assert_eq!(connected.text().await.unwrap(), "null", "the answer carries nothing the page would not use");
    // Another browser of the same miner hears nothing of it.
    let other = reqwest::Client::builder().cookie_store(true).build().unwrap();
    app.sign_in_browser_with(&other, &miner).await;
    let elsewhere = other.get(app.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(!elsewhere.contains(SAID));
    let next = dashboard().await;
    assert!(next.contains(SAID), "the next page says what the change came to");
    assert!(!next.contains(&key), "never the key itself");
    assert!(!dashboard().await.contains(SAID), "said once");

    // The budget's sentence, in its own panel.
    assert_eq!(call("save_budget", vec![("monthly_usd", "25".into())]).await.unwrap().status(), 200);
    assert!(dashboard().await.contains("Monthly budget set to $25.00."));

    // The landing page, reloaded: no state to exchange, so the truth about the connection.
    let reload = call("finish_chutes_connect", vec![("state", String::new())]).await.unwrap();
    assert_eq!(reload.status(), 400);
    assert!(reload.text().await.unwrap().contains("needs the answer from Chutes"));
    assert_eq!(app.connect_chutes(&miner, "erin").await.status(), 200);
    let reload = call("finish_chutes_connect", vec![("state", String::new())]).await.unwrap();
    assert_eq!(reload.status(), 200);
    let answer: serde_json::Value = reload.json().await.unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
}

both_engines!(
    a_dashboard_change_is_said_once_by_the_next_page,
    a_spent_oauth_state_tells_the_truth,
    balances_say_whether_the_next_run_can_pay,
    dashboard_mistakes_are_4xx_not_incidents,
    openrouter_connect_paths,
    chutes_connect_paths,
    dashboard_oauth_flow_binds_state,
    default_and_disconnect,
    chutes_down_during_disconnect,
    refresh_rotation_is_serialized,
    concurrent_changes_stay_consistent,
    secrets_never_leak,
    chutes_refresh_without_rotation_keeps_the_token,
    chutes_client_secret_basic,
    chutes_scopes_and_offline_access,
    failed_chutes_store_revokes_the_grant,
    chutes_userinfo_to_the_standard,
);
