//! Hostile callers and the operator's view: rate limits, security headers, OWASP checks that
//! fit this service (CSRF, session fixation, open redirects), hostile input in every field,
//! a replay storm, and the Prometheus metrics.

use reqwest::Method;
use reqwest::multipart::{Form, Part};

use crate::both_engines;
use crate::helpers::*;

const AGENT: &str = "def run(task):\n    return 'hello'\n";

async fn submit(app: &TestApp, wallet: &TestWallet, name: &str) -> reqwest::Response {
    let form = Form::new()
        .text("agent_name", name.to_owned())
        .part("file", Part::bytes(AGENT.as_bytes().to_vec()).file_name("agent.py").mime_str("text/x-python").unwrap());
    app.signed(wallet, Method::POST, "/v1/miner/submit").multipart(form).send().await.unwrap()
}

async fn claim(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app.signed(&app.validator, Method::POST, "/v1/validator/work/claim").json(&serde_json::json!({})).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

fn retry_after(response: &reqwest::Response) -> Option<i64> {
    response.headers().get("retry-after")?.to_str().ok()?.parse().ok()
}

async fn rate_limits_per_ip_and_per_hotkey(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            extra: vec![
                ("ORO_RATE_LIMIT_CONNECT_PER_IP", "5/min".into()),
                ("ORO_RATE_LIMIT_CONNECT_PER_HOTKEY", "3/min".into()),
                ("ORO_RATE_LIMIT_SUBMIT_PER_HOTKEY", "2/h".into()),
                ("ORO_RATE_LIMIT_SIGN_IN_PER_IP", "4/min".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let key = app.sim.create_openrouter_account(10.0);
    let alice = TestWallet::new();

    // Somebody naming Alice's hotkey with bad signatures spends the IP's budget, not hers.
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in TestWallet::new().headers() {
        headers.insert(name, value.parse().unwrap());
    }
    headers.insert("X-Hotkey", alice.hotkey.parse().unwrap());
    let forged = app.client.post(app.url("/v1/miner/inference-auth/openrouter")).headers(headers);
    assert_eq!(forged.json(&serde_json::json!({"credential": key})).send().await.unwrap().status(), 401);

    // Alice: three connects, then her own limit.
    for _ in 0..3 {
        assert_eq!(app.connect_openrouter(&alice, &key).await.status(), 200);
    }
    let refused = app.connect_openrouter(&alice, &key).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused).expect("Retry-After on a 429");
    assert!((1..=60).contains(&wait), "{wait}");
    let (_, said) = detail(refused).await;
    assert!(said.starts_with("too many connect attempts for this hotkey: at most 3 per minute; try again in"), "{said}");

    // Bob, from the same address: the address has had 5 (1 forged + 4 of Alice's); the 6th is refused.
    let bob = TestWallet::new();
    let refused = app.connect_openrouter(&bob, &key).await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused).is_some());
    assert!(detail(refused).await.1.starts_with("too many connect attempts from this address"));

    // Other actions have their own counters: submitting still works, up to its own limit.
    assert_eq!(submit(&app, &alice, "a1").await.status(), 200);
    assert_eq!(submit(&app, &alice, "a2").await.status(), 200);
    let refused = submit(&app, &alice, "a3").await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused).unwrap() <= 3600);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("too many submissions for this hotkey: at most 2 per hour"), "{body}");
    assert_eq!(body["error_code"], "RATE_LIMIT_EXCEEDED");
    assert!(body["retry_after_seconds"].as_i64().unwrap() > 0);

    // Sign-in by address: the API challenge and the dashboard's server functions share it.
    for _ in 0..3 {
        let ok = app.client.post(app.url("/v1/auth/challenge")).json(&serde_json::json!({"hotkey": alice.hotkey})).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    let ok = app
        .client
        .post(app.url("/api/begin_sign_in"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("address", alice.hotkey.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = app
        .client
        .post(app.url("/api/begin_sign_in"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("address", alice.hotkey.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused).is_some());
    let said: serde_json::Value = refused.json().await.unwrap();
    assert!(
        said["Refused"].as_str().unwrap().starts_with("too many sign-in attempts from this address"),
        "the page's own error shape: {said}"
    );

    // Reading is never limited.
    assert_eq!(app.get_signed(&alice, "/v1/miner/inference-auth").await.status(), 200);
}

async fn forwarded_for_is_trusted_only_when_configured(backend: Backend) {
    let limits = |trust: &str| AppOptions {
        extra: vec![("ORO_RATE_LIMIT_SIGN_IN_PER_IP", "2/min".into()), ("ORO_TRUST_FORWARDED_FOR", trust.into())],
        ..Default::default()
    };
    let challenge = |app: &TestApp, forwarded: &str| {
        app.client
            .post(app.url("/v1/auth/challenge"))
            .header("x-forwarded-for", forwarded)
            .json(&serde_json::json!({"hotkey": TestWallet::new().hotkey}))
            .send()
    };
    // Not behind our proxy: a client cannot dodge the limit by inventing addresses.
    let app = spawn_app_with(backend, limits("0")).await;
    let statuses: Vec<u16> =
        futures_statuses(vec![challenge(&app, "198.51.100.1"), challenge(&app, "198.51.100.2"), challenge(&app, "198.51.100.3")]).await;
    assert_eq!(statuses, vec![200, 200, 429]);
    drop(app);

    // Behind it: the last entry (the one the balancer appended) is the client; earlier ones
    // are the client's own claims and change nothing.
    let app = spawn_app_with(backend, limits("1")).await;
    let statuses = futures_statuses(vec![
        challenge(&app, "10.0.0.1, 203.0.113.9"),
        challenge(&app, "10.0.0.2, 203.0.113.9"),
        challenge(&app, "10.0.0.3, 203.0.113.9"),
        challenge(&app, "203.0.113.10"),
    ])
    .await;
    assert_eq!(statuses, vec![200, 200, 429, 200]);
    // A proxy that adds a header line of its own: the client's line comes first and is not
    // believed; an `ip:port` entry counts for its address.
    let two_lines = app
        .client
        .post(app.url("/v1/auth/challenge"))
        .header("x-forwarded-for", "198.18.0.1")
        .header("x-forwarded-for", "203.0.113.9")
        .json(&serde_json::json!({"hotkey": TestWallet::new().hotkey}))
        .send()
        .await
        .unwrap();
    assert_eq!(two_lines.status(), 429, "the last line names the (full) 203.0.113.9");
    assert_eq!(challenge(&app, "203.0.113.10:5555").await.unwrap().status(), 200);
    assert_eq!(challenge(&app, "203.0.113.10:6666").await.unwrap().status(), 429);
}

/// Sends one after the other (order matters for counters).
async fn futures_statuses(requests: Vec<impl std::future::Future<Output = reqwest::Result<reqwest::Response>>>) -> Vec<u16> {
    let mut out = Vec::new();
    for r in requests {
        out.push(r.await.unwrap().status().as_u16());
    }
    out
}

async fn security_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.client.get(app.url("/dashboard")).send().await.unwrap();
    let headers = page.headers().clone();
    let csp = headers.get("content-security-policy").expect("pages carry a CSP").to_str().unwrap().to_owned();
    let html = page.text().await.unwrap();
    // The policy's nonce is this response's, and it is on Leptos's inline scripts.
    let nonce = csp.split("'nonce-").nth(1).and_then(|rest| rest.split('\'').next()).expect("script-src has a nonce").to_owned();
    assert!(nonce.len() >= 16, "{nonce}");
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "inline scripts carry the nonce");
    for directive in ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'", "'wasm-unsafe-eval'", "default-src 'self'"] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("'unsafe-inline'") && !csp.contains(" 'unsafe-eval'"), "{csp}");
    // A second page gets a fresh nonce.
    let again = app.client.get(app.url("/dashboard")).send().await.unwrap();
    assert!(!again.headers()["content-security-policy"].to_str().unwrap().contains(&nonce));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(headers.get("strict-transport-security").is_none(), "no HSTS over plain http");

    // API answers and errors: nothing may be loaded or framed.
    for path in ["/health", "/v1/miner/inference-auth", "/no/such/thing.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let csp = response.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }

    // Served as https: HSTS, and cookies only over TLS.
    let https = spawn_app_with(
        backend,
        AppOptions { extra: vec![("ORO_PUBLIC_URL", "https://inference.oro.example".into())], ..Default::default() },
    )
    .await;
    let response = https.client.get(https.url("/health")).send().await.unwrap();
    let hsts = response.headers()["strict-transport-security"].to_str().unwrap();
    assert!(hsts.starts_with("max-age=63072000"), "{hsts}");
}

async fn owasp_csrf_fixation_and_open_redirect(backend: Backend) {
    let app = spawn_app(backend).await;
    let attacker = TestWallet::new();
    let miner = TestWallet::new();

    // Session fixation: a session id known before sign-in is worthless after it.
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder().cookie_provider(jar.clone()).build().unwrap();
    let base: url::Url = app.address.parse().unwrap();
    let session_cookie = || {
        use reqwest::cookie::CookieStore;
        jar.cookies(&base).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    };
    let whoami = |cookie: String| {
        let request =
            reqwest::Client::new().post(app.url("/api/current_miner")).header("sec-fetch-site", "same-origin").header("cookie", cookie);
        async move { request.send().await.unwrap().json::<Option<String>>().await.unwrap() }
    };
    app.sign_in_browser_with(&browser, &attacker).await;
    let before = session_cookie();
    assert!(before.contains("oro_session="), "{before}");
    assert_eq!(whoami(before.clone()).await.as_deref(), Some(attacker.hotkey.as_str()));
    app.sign_in_browser_with(&browser, &miner).await;
    let after = session_cookie();
    assert_ne!(before, after, "signing in issues a new session id");
    assert_eq!(whoami(after).await.as_deref(), Some(miner.hotkey.as_str()));
    assert_eq!(whoami(before).await, None, "the id known before sign-in carries nothing after it");
    app.sign_in_browser(&miner).await;

    // CSRF: a signed-in browser's cookie does not work from another site, for every
    // state-changing server function; nor from a foreign Origin without Sec-Fetch-Site.
    let key = app.sim.create_openrouter_account(5.0);
    for (function, form) in [
        ("connect_openrouter", vec![("credential", key.clone())]),
        ("set_default_provider", vec![("provider", "openrouter".to_owned())]),
        ("disconnect_provider", vec![("provider", "openrouter".to_owned())]),
        ("save_budget", vec![("monthly_usd", "1".to_owned())]),
        ("begin_chutes_connect", vec![]),
        ("sign_out", vec![]),
    ] {
        let cross =
            app.client.post(app.url(&format!("/api/{function}"))).header("sec-fetch-site", "cross-site").form(&form).send().await.unwrap();
        assert_eq!(cross.status(), 403, "{function} from another site");
        let foreign = app
            .client
            .post(app.url(&format!("/api/{function}")))
            .header("origin", "https://evil.example")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{function} from a foreign Origin");
    }
    assert_eq!(app.status(&miner).await["providers"].as_array().unwrap().len(), 0, "nothing was connected by the forged requests");

    // Open redirect: the landing page never sends the browser anywhere a query names, and
    // the Chutes authorize URL is built from configuration, never from the request's Host.
    let landing = app
        .client
        .get(app.url("/oauth/chutes/callback?state=x&code=y&next=https://evil.example/&redirect_uri=//evil.example&return_to=https%3A%2F%2Fevil.example"))
        .send()
        .await
        .unwrap();
    assert!(landing.headers().get("location").is_none());
    let html = landing.text().await.unwrap();
    assert!(!html.contains("href=\"https://evil.example") && !html.contains("href=\"//evil.example"), "no link to a query-named site");
    let begun = app
        .client
        .post(app.url("/api/begin_chutes_connect"))
        .header("sec-fetch-site", "same-origin")
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(begun.status(), 200);
    let authorize: String = begun.json().await.unwrap();
    let authorize = url::Url::parse(&authorize).unwrap();
    assert!(authorize.as_str().starts_with(&app.services.settings.chutes_api_base), "{authorize}");
    let redirect = authorize.query_pairs().find(|(k, _)| k == "redirect_uri").unwrap().1.into_owned();
    assert_eq!(redirect, app.services.settings.chutes_redirect_uri);
}

/// Strings that have broken services before: NUL and other controls, bidi overrides,
/// combining marks, emoji, surrogate-adjacent code points, header injection, SQL, and length.
fn hostile_strings() -> Vec<String> {
    vec![
        "\u{0}".into(),
        "a\u{0}b".into(),
        "\r\nX-Injected: 1".into(),
        "\u{202E}gnp.exe".into(),
        "e\u{301}\u{301}\u{301}".into(),
        "🦀🔑💸".into(),
        "\u{FFFF}\u{10FFFF}".into(),
        "'; DROP TABLE connections; --".into(),
        "../../etc/passwd".into(),
        "\u{1b}[31mred".into(),
        "x".repeat(100_000),
        "é".repeat(40_000),
        String::new(),
        " ".into(),
    ]
}

/// Every field of every JSON body, with every hostile string: a clean 4xx (or a clean
/// success where the text is legitimately free-form), never a 5xx, never a hang, and the
/// service stays up.
async fn hostile_input_in_every_field(backend: Backend) {
    let app = spawn_app_with(backend, AppOptions { extra: rate_limits_off(), ..Default::default() }).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(submit(&app, &miner, "agent").await.status(), 200);
    let (status, work) = claim(&app).await;
    assert_eq!(status, 200);
    let run_id = work["eval_run_id"].as_str().unwrap().to_owned();

    let mut checked = 0;
    for text in hostile_strings() {
        let t = serde_json::Value::String(text.clone());
        let miner_calls: Vec<(Method, &str, serde_json::Value)> = vec![
            (Method::POST, "/v1/miner/inference-auth/openrouter", serde_json::json!({"credential": t})),
            (Method::POST, "/v1/miner/inference-auth/chutes", serde_json::json!({"credential": t})),
            (Method::POST, "/v1/miner/chutes/exchange-code", serde_json::json!({"code": t, "code_verifier": t, "redirect_uri": t})),
            (Method::POST, "/v1/miner/chutes-auth", serde_json::json!({"refresh_token": t})),
            (Method::PATCH, "/v1/miner/inference-auth/default", serde_json::json!({"provider": t})),
            (Method::PUT, "/v1/miner/budget", serde_json::json!({"monthly_usd": t})),
        ];
        for (method, path, body) in miner_calls {
            let response = app.signed(&miner, method.clone(), path).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            assert!((400..500).contains(&status), "{method} {path} with {:?}: {status}", text.chars().take(20).collect::<String>());
            let body: serde_json::Value = response.json().await.expect("errors are JSON");
            assert!(body.get("detail").is_some());
            checked += 1;
        }
        // Unsigned bodies and query strings.
        for (path, body) in [
            ("/v1/auth/challenge", serde_json::json!({"hotkey": t})),
            ("/v1/auth/session", serde_json::json!({"hotkey": t, "challenge": t, "signature": t})),
        ] {
            let status = app.client.post(app.url(path)).json(&body).send().await.unwrap().status().as_u16();
            assert!((400..500).contains(&status), "{path}: {status}");
            checked += 1;
        }
        // Query strings and path segments (URLs themselves stop at 64 KiB in the client).
        let segment: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
        if segment.len() < 16 * 1024 {
            let status = app
                .client
                .get(app.url("/v1/public/inference/models"))
                .query(&[("provider", text.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!(text.is_empty() && status == 200 || status == 422, "models?provider=: {status}");
        }
        if !segment.is_empty() && segment.len() < 16 * 1024 {
            let status =
                app.signed(&miner, Method::DELETE, &format!("/v1/miner/inference-auth/{segment}")).send().await.unwrap().status().as_u16();
            assert!((400..500).contains(&status), "DELETE provider {status}");
            let status = app
                .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{segment}/heartbeat"))
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            assert!((400..500).contains(&status), "heartbeat of a hostile run id: {status}");
        }
        // Submissions: hostile agent names and file names are refused with a reason.
        let form = Form::new()
            .text("agent_name", text.clone())
            .part("file", Part::bytes(AGENT.as_bytes().to_vec()).file_name(format!("{text}.py")).mime_str("text/x-python").unwrap());
        let status = app.signed(&miner, Method::POST, "/v1/miner/submit").multipart(form).send().await.unwrap().status().as_u16();
        assert!((400..500).contains(&status), "submit with a hostile agent name: {status}");
        // Heartbeat progress is free-form JSON: stored or refused, never a crash.
        let status = app
            .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/heartbeat"))
            .json(&serde_json::json!({"progress": {"note": t}}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert!(status < 500, "heartbeat with hostile progress: {status}");
        checked += 1;
    }
    assert!(checked > 100);

    // Signed-request headers with hostile values: 401, never 500 (header values must be
    // visible ASCII on the wire, so the unicode ones travel as raw bytes).
    for (name, value) in [
        ("X-Hotkey", b"5\xff\xfe".to_vec()),
        ("X-Timestamp", b"1e308".to_vec()),
        ("X-Timestamp", b"-9223372036854775808".to_vec()),
        ("X-Timestamp", b"NaN".to_vec()),
        ("X-Nonce", "é".repeat(10).into_bytes()),
        ("X-Nonce", vec![b'n'; 4000]),
        ("X-Signature", b"0x".to_vec()),
        ("X-Signature", vec![b'f'; 10_000]),
    ] {
        let mut headers = reqwest::header::HeaderMap::new();
        for (n, v) in miner.headers() {
            headers.insert(n, v.parse().unwrap());
        }
        headers.insert(name, reqwest::header::HeaderValue::from_bytes(&value).unwrap());
        let response = app.client.get(app.url("/v1/miner/inference-auth")).headers(headers).send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}: {:?}", String::from_utf8_lossy(&value[..value.len().min(20)]));
    }

    // A validator's reports are a sandbox's free text: taken even with NUL (progress stored
    // re-encoded, reasons scrubbed), and the miner reads no controls or overrides.
    let progress = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/progress"))
        .json(&serde_json::json!({"log": "out\u{0}put"}))
        .send()
        .await
        .unwrap();
    assert_eq!(progress.status(), 200, "a NUL in progress must not cost the validator its lease");
    let reason = "boom\u{0}\u{7}\u{1b}[2J\u{202E}txt.exe\r\nSet-Cookie: x=1";
    let done = app
        .signed(&app.validator, Method::POST, &format!("/v1/validator/evaluation-runs/{run_id}/complete"))
        .json(&serde_json::json!({"terminal_status": "FAILED", "failure_reason": reason}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let runs: serde_json::Value = app.get_signed(&miner, "/v1/miner/runs").await.json().await.unwrap();
    let shown = runs["runs"][0]["failure_reason"].as_str().unwrap();
    assert!(shown.starts_with("boom"), "{shown}");
    assert!(!shown.chars().any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c)), "{shown:?}");

    // NUL behind another JSON media type, or in a server function's form: refused, not a 500.
    let sneaky = app
        .client
        .post(app.url("/v1/auth/session"))
        .header("content-type", "application/vnd.oro+json")
        .body(format!("{{\"hotkey\": \"{}\", \"challenge\": \"a\\u0000\", \"signature\": \"0x00\"}}", miner.hotkey))
        .send()
        .await
        .unwrap();
    assert_eq!(sneaky.status(), 422);
    let form = app
        .client
        .post(app.url("/api/begin_sign_in"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "text/plain")
        .body("address=5%00")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 422);
    // ...in the server functions' own error shape, so the page shows the sentence.
    let said: serde_json::Value = form.json().await.unwrap();
    assert_eq!(said["Refused"], "text must not contain NUL characters");

    // Still standing.
    assert_eq!(app.client.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
}

fn rate_limits_off() -> Vec<(&'static str, String)> {
    [
        "ORO_RATE_LIMIT_SIGN_IN_PER_IP",
        "ORO_RATE_LIMIT_SIGN_IN_PER_HOTKEY",
        "ORO_RATE_LIMIT_CONNECT_PER_IP",
        "ORO_RATE_LIMIT_CONNECT_PER_HOTKEY",
        "ORO_RATE_LIMIT_SUBMIT_PER_IP",
        "ORO_RATE_LIMIT_SUBMIT_PER_HOTKEY",
    ]
    .into_iter()
    .map(|name| (name, "off".to_owned()))
    .collect()
}

/// Oversized bodies are refused before they are read whole: 413 for what exceeds the body
/// limit, and the service answers the next request normally.
async fn oversized_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let addr = app.address.trim_start_matches("http://").to_owned();
    // A little too large: read, dropped, and answered cleanly while the client is still sending.
    let response = app
        .signed(&miner, Method::PUT, "/v1/miner/budget")
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(detail(response).await.1.starts_with("request body too large"));
    // Declared far too large: the answer comes before the body is sent at all.
    for (method, path, wallet) in [
        ("POST", "/v1/miner/inference-auth/openrouter", &miner),
        ("PUT", "/v1/miner/budget", &miner),
        ("POST", "/v1/validator/work/claim", &app.validator),
        ("POST", "/v1/miner/submit", &miner),
        ("POST", "/api/connect_openrouter", &miner),
    ] {
        let head = raw_head(method, path, &addr, wallet, "Content-Length: 104857600\r\n");
        let answer = raw_exchange(&addr, head.as_bytes(), &[]).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("larger than") || answer.contains("too large"), "{path}: {answer}");
    }
    // Undeclared (chunked): cut off once past the limit, whoever reads the body.
    for (method, path, wallet) in [("PUT", "/v1/miner/budget", &miner), ("POST", "/api/connect_openrouter", &miner)] {
        let head = raw_head(method, path, &addr, wallet, "Transfer-Encoding: chunked\r\n");
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
        let body: Vec<u8> = chunk.repeat(48).into_bytes(); // 3 MiB
        let answer = raw_exchange(&addr, head.as_bytes(), &body).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path} chunked: {answer}");
    }
    // A large but allowed upload is fine, and the service answers the next request normally.
    let form = Form::new().text("agent_name", "big").part("file", Part::bytes(vec![b'#'; 1024 * 1024]).file_name("a.py"));
    assert_eq!(
        app.signed(&miner, Method::POST, "/v1/miner/submit").multipart(form).send().await.unwrap().status(),
        400,
        "no provider yet: refused for that, not for size"
    );
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
}

fn raw_head(method: &str, path: &str, host: &str, wallet: &TestWallet, framing: &str) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{framing}");
    head.push_str(if path.starts_with("/api/") {
        "Content-Type: application/x-www-form-urlencoded\r\nSec-Fetch-Site: same-origin\r\n"
    } else {
        "Content-Type: application/json\r\n"
    });
    for (name, value) in wallet.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Writes a request (the body as far as the server lets it) and reads the answer.
async fn raw_exchange(addr: &str, head: &[u8], body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head).await.unwrap();
    // The server may answer and close before taking it all: that is the point.
    for piece in body.chunks(64 * 1024) {
        if stream.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The same signed request sent 200 times at once: exactly one gets through, on any engine,
/// and every other answer is a clean 401 naming the replay, or, once this address has failed
/// authentication 30 times, a 429 saying so.
async fn replay_storm(backend: Backend) {
    let app = spawn_app(backend).await;
    let miner = TestWallet::new();
    let headers = miner.headers();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let mut request = app.client.get(app.url("/v1/miner/inference-auth"));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["detail"].as_str().unwrap_or_default().to_owned())
        }));
    }
    let (mut ok, mut replays) = (0, 0);
    for task in tasks {
        let (status, detail) = task.await.unwrap();
        match status {
            200 => ok += 1,
            401 if detail.starts_with("replayed nonce") => replays += 1,
            429 => assert!(detail.starts_with("too many failed authentications from this address"), "{detail}"),
            other => panic!("replay storm answered {other}: {detail}"),
        }
    }
    assert_eq!(ok, 1);
    assert!(replays >= 30, "only {replays} replays were told so before the address was refused");
}

fn metric_value(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/metrics` counts requests by route template, provider calls by outcome, claims, issued
/// credentials and failures by reason; it holds no credential; and it can be closed with a token.
async fn metrics_for_operators(backend: Backend) {
    let app = spawn_app(backend).await;
    let scrape = |app: &TestApp| {
        let request = app.client.get(app.url("/metrics"));
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let before = scrape(&app).await;
    let miner = TestWallet::new();
    let key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&miner, &key).await.status(), 200);
    assert_eq!(submit(&app, &miner, "agent").await.status(), 200);
    assert_eq!(claim(&app).await.0, 200);
    let broke = TestWallet::new();
    let broke_key = app.sim.create_openrouter_account(10.0);
    assert_eq!(app.connect_openrouter(&broke, &broke_key).await.status(), 200);
    app.sim.set_openrouter_credits(&broke_key, 0.0).unwrap();
    assert_eq!(submit(&app, &broke, "agent").await.status(), 200);
    assert_eq!(claim(&app).await.0, 204);
    let after = scrape(&app).await;

    let grew = |name: &str, labels: &[&str]| metric_value(&after, name, labels) - metric_value(&before, name, labels);
    assert!(
        grew("oro_http_requests_total", &["route=\"/v1/miner/inference-auth/{provider}\"", "status=\"200\"", "method=\"POST\""]) >= 2.0,
        "{after}"
    );
    assert!(grew("oro_http_request_duration_seconds_count", &["route=\"/v1/validator/work/claim\""]) >= 2.0);
    assert!(grew("oro_provider_calls_total", &["provider=\"openrouter\"", "operation=\"create_key\"", "outcome=\"ok\""]) >= 1.0);
    assert!(grew("oro_provider_calls_total", &["provider=\"openrouter\"", "operation=\"key_info\"", "outcome=\"ok\""]) >= 2.0);
    assert!(grew("oro_claims_total", &["outcome=\"claimed\""]) >= 1.0);
    assert!(grew("oro_claims_total", &["outcome=\"no_work\""]) >= 1.0);
    assert!(grew("oro_run_credentials_issued_total", &["provider=\"openrouter\""]) >= 1.0);
    assert!(grew("oro_run_failures_total", &["reason=\"no_credits\"", "stage=\"claim\""]) >= 1.0);
    assert!(after.contains("# HELP oro_provider_calls_total"));
    assert!(!after.contains(&key) && !after.contains("sk-or-"), "no credential in metrics");
    let odd = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    let _ = app.client.request(odd, app.url("/health")).send().await.unwrap();
    let after = scrape(&app).await;
    assert!(!after.contains("FROBNICATE") && after.contains("method=\"other\""), "any method name must not become a label");
    // Concrete paths never become labels (they would carry run ids and grow without bound).
    assert!(!after.contains("route=\"/v1/miner/inference-auth/openrouter\""));

    // Every use of the stored credential is in the miner's audit log.
    let events: serde_json::Value = app.get_signed(&miner, "/v1/miner/inference-auth/events").await.json().await.unwrap();
    let used: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "credential_used")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(used.len(), 1, "{events}");
    assert!(used[0].starts_with("the OpenRouter management key minted run key oro-run-"), "{}", used[0]);

    // With a token configured, only the operator reads them.
    let closed =
        spawn_app_with(backend, AppOptions { extra: vec![("ORO_METRICS_TOKEN", "scrape-secret".into())], ..Default::default() }).await;
    assert_eq!(closed.client.get(closed.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(closed.client.get(closed.url("/metrics")).bearer_auth("wrong-secret!").send().await.unwrap().status(), 401);
    let open = closed.client.get(closed.url("/metrics")).bearer_auth("scrape-secret").send().await.unwrap();
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains("oro_http_requests_total"));
}

both_engines!(hostile_input_in_every_field, oversized_bodies, replay_storm, metrics_for_operators);
both_engines!(
    rate_limits_per_ip_and_per_hotkey,
    forwarded_for_is_trusted_only_when_configured,
    security_headers,
    owasp_csrf_fixation_and_open_redirect
);
