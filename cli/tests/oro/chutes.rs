//! `oro inference connect chutes`: the PKCE loopback flow, driven end to end through the
//! simulated Chutes IdP. Every test that binds port 8765 holds the shared lock file.

use crate::helpers::*;

const REDIRECT: &str = "http://localhost:8765/callback";

/// Starts `connect chutes --no-browser` and returns it with the authorize URL it printed. The
/// IdP and client come from the server's configuration (`/v1/public/chutes-oauth`).
async fn start(app: &TestApp, extra: &[&str]) -> (RunningOro, String) {
    let mut args = vec!["inference", "connect", "chutes", "--no-browser"];
    args.extend_from_slice(extra);
    let mut oro = app.oro(&args).spawn();
    let line = oro.line_containing("/idp/authorize?").await;
    (oro, url_in(&line))
}

async fn chutes_connected(app: &TestApp) -> bool {
    let status = app.oro(&["inference", "status", "--json"]).run().await;
    status.assert_ok();
    status.json()["providers"].as_array().unwrap().iter().any(|p| p["provider"] == "chutes" && p["connected"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_chutes_through_the_browser_flow() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, url) = start(&app, &["--timeout", "60"]).await;

    let client_id = app.services.settings.chutes_client_id.clone();
    assert!(url.starts_with(&format!("{}/idp/authorize?response_type=code&client_id=", app.chutes_base())), "{url}");
    let query = query_of(&url);
    assert_eq!(query["client_id"], client_id);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["scope"], app.services.settings.chutes_scopes.as_str(), "the server's scopes");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert!(query["state"].len() >= 43);

    let callback = consent(&app.chutes_base(), &url, "cli-miner", "allow").await;
    assert!(callback.starts_with(&format!("{REDIRECT}?code=")), "{callback}");
    // Stray requests (a favicon) are ignored while the flow waits.
    assert_eq!(browser_get("http://localhost:8765/favicon.ico").await.0, 204);
    let (status, page) = browser_get(&callback).await;
    assert_eq!(status, 200);
    assert!(page.contains("Authorization received") && !page.contains("is connected"), "nothing is connected before the exchange: {page}");

    let out = oro.finish().await;
    out.assert_ok().assert_clean();
    assert_eq!(out.lines().last().copied(), Some("Connected Chutes; it is your default."));
    assert!(out.stdout.contains("Provider: chutes"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("Wallet:   plain ({})", wallets().plain_ss58)));
    let code = &query_of(&callback)["code"];
    assert!(!out.stdout.contains(code.as_str()) && !out.stderr.contains(code.as_str()), "the code is not printed");

    assert!(chutes_connected(&app).await, "the server has the Chutes connection");
    assert!(app.sim.chutes_user("cli-miner").is_some(), "the consent created the simulated user");
    assert!(app.sim.chutes_refresh_tokens_alive("cli-miner") >= 1, "the backend exchanged the code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_reported_clearly() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, url) = start(&app, &["--timeout", "60"]).await;

    let callback = consent(&app.chutes_base(), &url, "cli-miner", "deny").await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let (status, page) = browser_get(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("Authorization failed"), "{page}");

    let out = oro.finish().await;
    out.assert_code(1).assert_clean();
    assert!(out.stderr.contains("Error: Authentication failed: you denied access on Chutes."), "{}", out.stderr);
    assert!(!out.stdout.contains("Connected"));
    assert!(!chutes_connected(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_with_another_state_is_refused_and_the_flow_goes_on() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, url) = start(&app, &["--timeout", "60"]).await;
    let state = query_of(&url)["state"].clone();

    // A forged callback (another state): 400, nothing exchanged, still waiting.
    let (status, page) = browser_get(&format!("{REDIRECT}?code=forged-code&state=x{state}")).await;
    assert_eq!(status, 400);
    assert!(page.contains("State mismatch"), "{page}");
    let (status, _) = browser_get(&format!("{REDIRECT}?code=forged-code")).await;
    assert_eq!(status, 400, "a code without state is refused too");
    // An error with a foreign state does not end the flow either.
    let (status, _) = browser_get(&format!("{REDIRECT}?error=access_denied&state=x{state}")).await;
    assert_eq!(status, 400);

    let callback = consent(&app.chutes_base(), &url, "cli-miner", "allow").await;
    let (status, _) = browser_get(&callback).await;
    assert_eq!(status, 200);
    let out = oro.finish().await;
    out.assert_ok();
    assert_eq!(out.lines().last().copied(), Some("Connected Chutes; it is your default."));
    assert!(chutes_connected(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_times_out() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, _url) = start(&app, &["--timeout", "1"]).await;
    let out = oro.finish().await;
    out.assert_code(1).assert_clean();
    assert!(out.stderr.contains("Error: Authentication timed out after 1 s. Please try again."), "{}", out.stderr);
    assert!(!chutes_connected(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_refused_for_chutes() {
    let out = oro_against("http://127.0.0.1:9", &["inference", "connect", "chutes", "--api-key", "X"]).run().await;
    out.assert_code(2);
    assert_eq!(out.stderr, "Error: --api-key is not supported for chutes; the connect flow uses interactive OAuth.\n");
    assert_eq!(out.stdout, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_the_backend_cannot_exchange_exits_1() {
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let (oro, url) = start(&app, &["--timeout", "60"]).await;
    let state = query_of(&url)["state"].clone();
    // A code the IdP issued for another PKCE challenge: the exchange fails at the backend.
    let code = app.sim.issue_chutes_code("cli-miner", &app.services.settings.chutes_client_id, REDIRECT, &"A".repeat(43), "chutes:invoke");
    let (status, _) = browser_get(&format!("{REDIRECT}?code={code}&state={state}")).await;
    assert_eq!(status, 200, "the browser's part worked");
    let out = oro.finish().await;
    out.assert_code(1).assert_clean();
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("Error (HTTP 400): "), "{}", out.stderr);
    assert!(!out.stdout.contains("Connected Chutes"));
    assert!(!chutes_connected(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_is_opened_with_the_authorize_url() {
    use std::os::unix::fs::PermissionsExt;
    let _port = lock_loopback_port().await;
    let app = spawn_app().await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oro-cli-browser-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let opened = dir.join("opened.txt");
    let browser = dir.join("fake-browser");
    std::fs::write(&browser, format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display())).unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();

    let chutes_base = app.chutes_base();
    let mut oro = app
        .oro(&["inference", "connect", "chutes", "--chutes-base", &chutes_base, "--timeout", "60"])
        .env("CHUTES_CLIENT_ID", &app.services.settings.chutes_client_id)
        .env("BROWSER", browser.to_str().unwrap())
        .spawn();
    let line = oro.line_containing("/idp/authorize?").await;
    assert!(oro.seen.starts_with("Opening browser for Chutes authentication...\n"), "{}", oro.seen);
    assert!(line.starts_with("If the browser doesn't open, visit: "), "{line}");
    let url = url_in(&line);
    let mut waited = 0;
    while !opened.exists() && waited < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), url, "$BROWSER got the authorize URL");

    let callback = consent(&chutes_base, &url, "browser-user", "allow").await;
    assert_eq!(browser_get(&callback).await.0, 200);
    let out = oro.finish().await;
    out.assert_ok();
    assert_eq!(out.lines().last().copied(), Some("Connected Chutes; it is your default."));
    let _ = std::fs::remove_dir_all(dir);
}
