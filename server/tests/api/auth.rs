use reqwest::Method;

use crate::both_engines;
use crate::helpers::*;

const ROUTE: &str = "/v1/miner/inference-auth";

async fn send_with(app: &TestApp, headers: Vec<(&'static str, String)>) -> (u16, String) {
    let mut request = app.client.get(app.url(ROUTE));
    for (k, v) in headers {
        request = request.header(k, v);
    }
    detail(request.send().await.unwrap()).await
}

async fn signed_requests(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let other = TestWallet::new();
    let now = service::clock::system_now();

    // Valid.
    let ok = app.get_signed(&miner, ROUTE).await;
    assert_eq!(ok.status(), 200);

    // No headers at all.
    let (status, text) = detail(app.client.get(app.url(ROUTE)).send().await.unwrap()).await;
    assert_eq!((status, text.as_str()), (401, "not signed in"));

    // Wrong signature: signed over another message.
    let mut h = miner.headers();
    h[3].1 = miner.sign(b"something else");
    let (status, text) = send_with(&app, h).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("bad signature"), "{text}");

    // Another hotkey's signature over this hotkey's message.
    let mut h = miner.headers();
    let message = format!("{}:{}:{}", h[0].1, h[1].1, h[2].1);
    h[3].1 = other.sign(message.as_bytes());
    let (status, text) = send_with(&app, h).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("bad signature"), "{text}");

    // A browser wallet's <Bytes>-wrapped signature is accepted.
    let nonce = uuid::Uuid::new_v4().to_string();
    let mut h = miner.headers_at(now, &nonce);
    h[3].1 = miner.sign(&wire::signing::wrap_bytes(format!("{}:{now}:{nonce}", miner.hotkey).as_bytes()));
    assert_eq!(send_with(&app, h).await.0, 200);

    // Stale and future timestamps.
    let (status, text) = send_with(&app, miner.headers_at(now - 120, "stale-1")).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("stale timestamp"), "{text}");
    let (status, text) = send_with(&app, miner.headers_at(now + 120, "future-1")).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("timestamp in the future"), "{text}");

    // Replayed nonce: the same request twice.
    let h = miner.headers_at(now, "replay-me");
    assert_eq!(send_with(&app, h.clone()).await.0, 200);
    let (status, text) = send_with(&app, h).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("replayed nonce"), "{text}");

    // Malformed headers.
    let mut h = miner.headers();
    h[0].1 = "5NotAnAddress".into();
    let (status, text) = send_with(&app, h).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("malformed hotkey"), "{text}");
    let mut h = miner.headers();
    h[0].1 = other.hotkey[..other.hotkey.len() - 1].to_string() + if other.hotkey.ends_with('a') { "b" } else { "a" };
    assert_eq!(send_with(&app, h).await.0, 401);
    let mut h = miner.headers();
    h[1].1 = "yesterday".into();
    assert!(send_with(&app, h).await.1.starts_with("malformed timestamp"));
    let mut h = miner.headers();
    h[3].1 = "0x1234".into();
    assert!(send_with(&app, h).await.1.starts_with("malformed signature"));
    let mut h = miner.headers();
    h[2].1 = "x".repeat(300);
    assert!(send_with(&app, h).await.1.starts_with("malformed nonce"));
    let mut h = miner.headers();
    h.remove(2);
    assert_eq!(send_with(&app, h).await, (401, "missing header X-Nonce".to_string()));
}

async fn roles_ban_and_allowlist(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let hotkey = service::domain::Hotkey::parse(&miner.hotkey).unwrap();
    service::auth::roles::grant(&app.services.db, &hotkey, service::auth::roles::Grant::Banned, "test", app.services.clock.now())
        .await
        .unwrap();
    let (status, text) = detail(app.get_signed(&miner, ROUTE).await).await;
    assert_eq!((status, text.as_str()), (403, "hotkey is banned"));
    service::auth::roles::revoke(&app.services.db, &hotkey, service::auth::roles::Grant::Banned).await.unwrap();
    assert_eq!(app.get_signed(&miner, ROUTE).await.status(), 200);

    service::auth::roles::set_allowlist_enabled(&app.services.db, true).await.unwrap();
    let (status, text) = detail(app.get_signed(&miner, ROUTE).await).await;
    assert_eq!((status, text.as_str()), (403, "hotkey is not on the miner allowlist"));
    service::auth::roles::grant(&app.services.db, &hotkey, service::auth::roles::Grant::Miner, "", app.services.clock.now()).await.unwrap();
    assert_eq!(app.get_signed(&miner, ROUTE).await.status(), 200);
}

async fn new_challenge(app: &TestApp, wallet: &TestWallet) -> serde_json::Value {
    app.client
        .post(app.url("/v1/auth/challenge"))
        .json(&serde_json::json!({"hotkey": wallet.hotkey}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Trades `challenge` for a session, the challenge signed by `signer`.
async fn open_session(app: &TestApp, wallet: &TestWallet, challenge: &str, signer: &TestWallet) -> reqwest::Response {
    app.client
        .post(app.url("/v1/auth/session"))
        .json(&serde_json::json!({"hotkey": wallet.hotkey, "challenge": challenge, "signature": signer.sign(challenge.as_bytes())}))
        .send()
        .await
        .unwrap()
}

async fn bearer_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let challenge = new_challenge(&app, &miner).await;
    let text = challenge["challenge"].as_str().unwrap().to_owned();
    assert_eq!(text.split(':').count(), 3, "bittensor-auth's {{prefix}}:{{timestamp}}:{{nonce}}");
    assert!(challenge["expires_at"].as_i64().unwrap() > service::clock::system_now());

    // Signed by someone else: refused, and the challenge is spent.
    assert_eq!(open_session(&app, &miner, &text, &TestWallet::new()).await.status(), 401);
    assert_eq!(open_session(&app, &miner, &text, &miner).await.status(), 401, "spent");

    let text = new_challenge(&app, &miner).await["challenge"].as_str().unwrap().to_owned();
    let session: serde_json::Value = open_session(&app, &miner, &text, &miner).await.json().await.unwrap();
    let token = session["session_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ses_"));
    assert_eq!(session["role"], "miner");
    let expires = session["expires_at"].as_i64().unwrap() - service::clock::system_now();
    assert!((7000..=7200).contains(&expires), "2 h by default, got {expires}");

    // Use it; the same challenge cannot open a second session.
    assert_eq!(app.client.get(app.url(ROUTE)).bearer_auth(&token).send().await.unwrap().status(), 200);
    assert_eq!(open_session(&app, &miner, &text, &miner).await.status(), 401);

    // Logout ends it.
    let out = app.client.post(app.url("/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(out.json::<serde_json::Value>().await.unwrap()["success"], true);
    assert_eq!(app.client.get(app.url(ROUTE)).bearer_auth(&token).send().await.unwrap().status(), 401);

    // Expiry: a session whose time has passed is refused.
    let text = new_challenge(&app, &miner).await["challenge"].as_str().unwrap().to_owned();
    let session: serde_json::Value = open_session(&app, &miner, &text, &miner).await.json().await.unwrap();
    let token = session["session_token"].as_str().unwrap().to_owned();
    app.services.clock.advance(app.services.settings.api_session_ttl_secs + 1);
    let (status, text) = detail(app.client.get(app.url(ROUTE)).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!((status, text.as_str()), (401, "invalid or expired session token"));
}

/// Browser sign-in: message from the server, signed `<Bytes>`-wrapped as wallets do.
async fn wallet_sign_in_through_server_functions(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let call = |name: &str, form: Vec<(&str, String)>| {
        app.client.post(app.url(&format!("/api/{name}"))).header("sec-fetch-site", "same-origin").form(&form).send()
    };
    let message: String = call("begin_sign_in", vec![("address", miner.hotkey.clone())]).await.unwrap().json().await.unwrap();
    assert!(message.contains(&miner.hotkey));
    assert!(message.contains("Nonce: "));
    let signature = miner.sign(&wire::signing::wrap_bytes(message.as_bytes()));

    // A forged signature does not sign in, and does not burn the nonce.
    let forged = call("finish_sign_in", vec![("message", message.clone()), ("signature", TestWallet::new().sign(message.as_bytes()))])
        .await
        .unwrap();
    assert!(!forged.status().is_success());

    // Cross-site: refused before it reaches the server function.
    let cross = app
        .client
        .post(app.url("/api/finish_sign_in"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("message", message.clone()), ("signature", signature.clone())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);

    let signed_in = call("finish_sign_in", vec![("message", message.clone()), ("signature", signature.clone())]).await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let who: Option<String> = call("current_miner", vec![]).await.unwrap().json().await.unwrap();
    assert_eq!(who.as_deref(), Some(miner.hotkey.as_str()));

    // The same signed message cannot sign in twice.
    let replay = app
        .client
        .post(app.url("/api/finish_sign_in"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("message", message), ("signature", signature)])
        .send()
        .await
        .unwrap();
    assert_ne!(replay.status(), 200);

    assert_eq!(call("sign_out", vec![]).await.unwrap().status(), 200);
    let who: Option<String> = call("current_miner", vec![]).await.unwrap().json().await.unwrap();
    assert_eq!(who, None);
}

both_engines!(signed_requests, roles_ban_and_allowlist, bearer_sessions, wallet_sign_in_through_server_functions);

/// Two replicas on one PostgreSQL database refuse each other's replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refused_across_replicas_on_postgres() {
    let first = spawn_app(Backend::Postgres).await;
    let database = secrecy::ExposeSecret::expose_secret(&first.services.settings.database_url).to_owned();
    let second = spawn_app_with(
        Backend::Postgres,
        AppOptions { database: Some(database), key_file: Some(first.key_file.clone()), ..Default::default() },
    )
    .await;
    let miner = TestWallet::new();
    let headers = miner.headers();
    let mut request = first.client.get(first.url(ROUTE));
    for (k, v) in headers.clone() {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    let mut replay = second.client.request(Method::GET, second.url(ROUTE));
    for (k, v) in headers {
        replay = replay.header(k, v);
    }
    let (status, text) = detail(replay.send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("replayed nonce"), "{text}");
}
