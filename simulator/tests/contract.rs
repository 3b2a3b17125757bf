//! The simulator speaks the provider wire shapes of CONTRACT.md sections 2 and 3.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use simulator::{ChutesIdpVariant, ClientAuth, Fault, FaultKind, FaultTarget, RunningSimulator, SimulatorConfig, spawn};

const REDIRECT: &str = "http://localhost:8765/callback";
const CLIENT_ID: &str = "oro-sim-client";
const CLIENT_SECRET: &str = "oro-sim-secret";
const CHUTES_MODEL: &str = "deepseek-ai/DeepSeek-V3.2-TEE";
const OR_MODEL: &str = "deepseek/deepseek-v3.2";

async fn start_with(config: SimulatorConfig) -> (RunningSimulator, reqwest::Client) {
    let sim = spawn("127.0.0.1:0".parse().unwrap(), config).await.expect("simulator binds");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (sim, http)
}

async fn start() -> (RunningSimulator, reqwest::Client) {
    start_with(SimulatorConfig::default()).await
}

fn pkce() -> (String, String) {
    let verifier: String = (0..64).map(|i| (b'a' + (i * 7 % 26) as u8) as char).collect::<String>() + &rand_suffix();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn rand_suffix() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    form_pairs(q).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap();
            out.push(h);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn authorize_params(challenge: &str, state: &str) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", CLIENT_ID.into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile chutes:invoke".into()),
        ("state", state.into()),
        ("code_challenge", challenge.into()),
        ("code_challenge_method", "S256".into()),
    ]
}

/// Clicks Allow on the consent page as `username`; answers the code.
async fn allow(sim: &RunningSimulator, http: &reqwest::Client, username: &str, challenge: &str) -> String {
    let mut form = authorize_params(challenge, "st-1");
    form.push(("username", username.into()));
    form.push(("decision", "allow".into()));
    let resp = http.post(format!("{}/idp/authorize", sim.chutes_api_base())).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-1"));
    query_param(&location, "code").expect("code in redirect")
}

async fn exchange(sim: &RunningSimulator, http: &reqwest::Client, code: &str, verifier: &str) -> (StatusCode, Value) {
    let resp = http
        .post(format!("{}/idp/token", sim.chutes_api_base()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

async fn refresh(sim: &RunningSimulator, http: &reqwest::Client, token: &str) -> (StatusCode, Value) {
    let resp = http
        .post(format!("{}/idp/token", sim.chutes_api_base()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

/// A connected Chutes user: (access_token, refresh_token).
async fn connect_chutes(sim: &RunningSimulator, http: &reqwest::Client, username: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let code = allow(sim, http, username, &challenge).await;
    let (status, body) = exchange(sim, http, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned())
}

async fn userinfo(sim: &RunningSimulator, http: &reqwest::Client, access: &str) -> (StatusCode, Value) {
    json_of(http.get(format!("{}/idp/userinfo", sim.chutes_api_base())).bearer_auth(access).send().await.unwrap()).await
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hi"}]})
}

async fn chutes_chat(sim: &RunningSimulator, http: &reqwest::Client, token: &str, model: &str) -> (StatusCode, Value) {
    let resp =
        http.post(format!("{}/chat/completions", sim.chutes_llm_base())).bearer_auth(token).json(&chat_body(model)).send().await.unwrap();
    json_of(resp).await
}

async fn or_get(sim: &RunningSimulator, http: &reqwest::Client, key: &str, path: &str) -> (StatusCode, Value) {
    json_of(http.get(format!("{}{path}", sim.openrouter_api_base())).bearer_auth(key).send().await.unwrap()).await
}

async fn or_chat(sim: &RunningSimulator, http: &reqwest::Client, key: &str, model: &str) -> (StatusCode, Value) {
    let resp =
        http.post(format!("{}/chat/completions", sim.openrouter_api_base())).bearer_auth(key).json(&chat_body(model)).send().await.unwrap();
    json_of(resp).await
}

async fn mint(sim: &RunningSimulator, http: &reqwest::Client, mgmt: &str, body: Value) -> (StatusCode, Value) {
    let resp = http.post(format!("{}/keys", sim.openrouter_api_base())).bearer_auth(mgmt).json(&body).send().await.unwrap();
    json_of(resp).await
}

fn assert_or_error(status: StatusCode, body: &Value, code: u16) {
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"].as_object().unwrap().contains_key("metadata"), "{body}");
}

fn assert_oauth_error(status: StatusCode, body: &Value, http_status: u16, error: &str) {
    assert_eq!(status.as_u16(), http_status, "{body}");
    assert_eq!(body["error"], json!(error), "{body}");
    assert!(body["error_description"].is_string(), "{body}");
}

fn is_hex64_key(k: &str) -> bool {
    k.strip_prefix("sk-or-v1-").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

// ------------------------------------------------------------------ Chutes IdP

#[tokio::test]
async fn authorize_page_is_a_consent_form() {
    let (sim, http) = start().await;
    let (_, challenge) = pkce();
    let resp =
        http.get(format!("{}/idp/authorize", sim.chutes_api_base())).query(&authorize_params(&challenge, "xyz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    for needle in [
        r#"<html lang="en">"#,
        r#"<label for="username">"#,
        r#"id="username" name="username" value="demo-miner""#,
        r#"id="approve""#,
        r#"id="deny""#,
        ">Allow</button>",
        ">Deny</button>",
        r#"method="post" action="authorize""#,
        r#"name="state" value="xyz""#,
        &format!(r#"name="code_challenge" value="{challenge}""#),
        r#"name="redirect_uri" value="http://localhost:8765/callback""#,
        "<code>chutes:invoke</code>",
        "<code>openid</code>",
    ] {
        assert!(html.contains(needle), "consent page lacks {needle}");
    }
}

#[tokio::test]
async fn authorize_refuses_unlisted_redirects_and_unknown_clients_without_redirecting() {
    let (sim, http) = start().await;
    let (_, challenge) = pkce();
    let url = format!("{}/idp/authorize", sim.chutes_api_base());
    let mut params = authorize_params(&challenge, "s");
    params[2].1 = "http://evil.example/callback".into();
    let resp = http.get(&url).query(&params).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none());
    assert!(resp.text().await.unwrap().contains("Invalid redirect URI"));

    // A prefix of an allowed URI is not an exact match.
    params[2].1 = "http://localhost:8765/callback/extra".into();
    let resp = http.get(&url).query(&params).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let mut params = authorize_params(&challenge, "s");
    params[1].1 = "someone-else".into();
    let resp = http.get(&url).query(&params).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none());

    // Posting the form with an unlisted redirect is refused the same way.
    let mut form = authorize_params(&challenge, "s");
    form[2].1 = "http://evil.example/callback".into();
    form.push(("username", "demo-miner".into()));
    form.push(("decision", "allow".into()));
    let resp = http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(LOCATION).is_none());
}

#[tokio::test]
async fn authorize_requires_pkce_s256() {
    let (sim, http) = start().await;
    let (_, challenge) = pkce();
    let mut params = authorize_params(&challenge, "st");
    params[6].1 = "plain".into();
    let resp = http.get(format!("{}/idp/authorize", sim.chutes_api_base())).query(&params).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT));
    assert_eq!(query_param(&location, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));

    let mut params = authorize_params(&challenge, "st");
    params.remove(5); // no code_challenge
    let resp = http.get(format!("{}/idp/authorize", sim.chutes_api_base())).query(&params).send().await.unwrap();
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert_eq!(query_param(&location, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn deny_redirects_with_access_denied() {
    let (sim, http) = start().await;
    let (_, challenge) = pkce();
    let mut form = authorize_params(&challenge, "st-9");
    form.push(("username", "demo-miner".into()));
    form.push(("decision", "deny".into()));
    let resp = http.post(format!("{}/idp/authorize", sim.chutes_api_base())).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{REDIRECT}?")));
    assert_eq!(query_param(&location, "error").as_deref(), Some("access_denied"));
    assert!(query_param(&location, "error_description").is_some());
    assert_eq!(query_param(&location, "state").as_deref(), Some("st-9"));
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn authorization_code_flow_with_pkce() {
    let (sim, http) = start().await;
    let control = sim.control();
    assert!(control.chutes_user("alice").is_none());
    let (verifier, challenge) = pkce();
    let code = allow(&sim, &http, "alice", &challenge).await;
    let alice = control.chutes_user("alice").expect("allow creates the user");
    assert_eq!(alice.balance_usd, 25.0);

    let (status, body) = exchange(&sim, &http, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("cak_"));
    assert!(body["refresh_token"].as_str().unwrap().starts_with("crt_"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid profile chutes:invoke");
    assert_eq!(control.chutes_refresh_tokens_alive("alice"), 1);

    let (status, info) = userinfo(&sim, &http, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["username"], "alice");
    assert_eq!(info["sub"], json!(alice.sub));
    assert!(info["created_at"].as_str().unwrap().ends_with('Z'));

    // Single use: a replay fails and revokes what the code was redeemed into.
    let (status, again) = exchange(&sim, &http, &code, &verifier).await;
    assert_oauth_error(status, &again, 400, "invalid_grant");
    let (status, _) = userinfo(&sim, &http, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(control.chutes_refresh_tokens_alive("alice"), 0);
}

#[tokio::test]
async fn code_exchange_checks_verifier_redirect_and_client() {
    let (sim, http) = start().await;
    let url = format!("{}/idp/token", sim.chutes_api_base());

    // Wrong verifier.
    let (verifier, challenge) = pkce();
    let code = allow(&sim, &http, "bob", &challenge).await;
    let (status, body) = exchange(&sim, &http, &code, &format!("{verifier}x")).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");

    // Redirect URI differing from the one used at authorize.
    let code = allow(&sim, &http, "bob", &challenge).await;
    let resp = http
        .post(&url)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:3000/oauth/chutes/callback"),
            ("code_verifier", &verifier),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");

    // No client secret: a confidential client must authenticate.
    let code = allow(&sim, &http, "bob", &challenge).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", CLIENT_ID),
    ];
    let (status, body) = json_of(http.post(&url).form(&form).send().await.unwrap()).await;
    assert_oauth_error(status, &body, 401, "invalid_client");

    // Wrong secret via Basic.
    let (status, body) = json_of(http.post(&url).basic_auth(CLIENT_ID, Some("nope")).form(&form).send().await.unwrap()).await;
    assert_oauth_error(status, &body, 401, "invalid_client");

    // Right secret via Basic works (the code was not consumed by failed client auth).
    let (status, body) = json_of(http.post(&url).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).form(&form).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("cak_"));

    // Missing parameters, JSON instead of a form, unknown grant.
    let (status, body) = json_of(
        http.post(&url).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).form(&[("grant_type", "authorization_code")]).send().await.unwrap(),
    )
    .await;
    assert_oauth_error(status, &body, 400, "invalid_request");
    let (status, body) = json_of(
        http.post(&url).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).json(&json!({"grant_type": "refresh_token"})).send().await.unwrap(),
    )
    .await;
    assert_oauth_error(status, &body, 400, "invalid_request");
    let (status, body) =
        json_of(http.post(&url).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).form(&[("grant_type", "password")]).send().await.unwrap()).await;
    assert_oauth_error(status, &body, 400, "unsupported_grant_type");
    let (status, body) = exchange(&sim, &http, "no-such-code", &verifier).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_kills_the_family() {
    let (sim, http) = start().await;
    let control = sim.control();
    let (access1, r1) = connect_chutes(&sim, &http, "carol").await;

    let (status, body) = refresh(&sim, &http, &r1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r2 = body["refresh_token"].as_str().unwrap().to_owned();
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_ne!(access1, access2);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile chutes:invoke");
    assert_eq!(userinfo(&sim, &http, &access2).await.0, StatusCode::OK);
    assert_eq!(control.chutes_refresh_tokens_alive("carol"), 1);

    // The new one rotates too.
    let (status, body) = refresh(&sim, &http, &r2).await;
    assert_eq!(status, StatusCode::OK);
    let r3 = body["refresh_token"].as_str().unwrap().to_owned();
    let access3 = body["access_token"].as_str().unwrap().to_owned();

    // Replaying a rotated-out token fails and kills the live one and its access tokens.
    let (status, body) = refresh(&sim, &http, &r1).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");
    let (status, body) = refresh(&sim, &http, &r3).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");
    assert_eq!(userinfo(&sim, &http, &access3).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(control.chutes_refresh_tokens_alive("carol"), 0);
    assert_eq!(control.chutes_revoked_tokens("carol"), 1);

    // Refresh needs client authentication.
    let (_, r) = connect_chutes(&sim, &http, "carol").await;
    let resp = http
        .post(format!("{}/idp/token", sim.chutes_api_base()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", r.as_str()), ("client_id", CLIENT_ID)])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_oauth_error(status, &body, 401, "invalid_client");
    // And the secret in the body works as well as Basic.
    let resp = http
        .post(format!("{}/idp/token", sim.chutes_api_base()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", r.as_str()), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn revoke_kills_the_refresh_token_and_its_access_tokens() {
    let (sim, http) = start().await;
    let control = sim.control();
    let (access, refresh_token) = connect_chutes(&sim, &http, "dave").await;
    let url = format!("{}/idp/token/revoke", sim.chutes_api_base());

    // Client authentication is required.
    let (status, body) = json_of(http.post(&url).form(&[("token", refresh_token.as_str())]).send().await.unwrap()).await;
    assert_oauth_error(status, &body, 401, "invalid_client");
    assert_eq!(control.chutes_refresh_tokens_alive("dave"), 1);

    let (status, body) = json_of(
        http.post(&url).basic_auth(CLIENT_ID, Some(CLIENT_SECRET)).form(&[("token", refresh_token.as_str())]).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"revoked": true}));
    assert_eq!(control.chutes_refresh_tokens_alive("dave"), 0);
    assert_eq!(control.chutes_revoked_tokens("dave"), 1);

    let (status, body) = refresh(&sim, &http, &refresh_token).await;
    assert_oauth_error(status, &body, 400, "invalid_grant");
    let (status, body) = userinfo(&sim, &http, &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Invalid token."}));
    assert_eq!(chutes_chat(&sim, &http, &access, CHUTES_MODEL).await.0, StatusCode::UNAUTHORIZED);
}

/// Each standard behaviour the IdP can switch to, other than Chutes' own.
#[tokio::test]
async fn idp_variants_stay_within_the_standards() {
    let (sim, http) = start().await;
    let control = sim.control();

    // RFC 6749 section 6: no rotated token in the answer, and the spent one keeps working.
    control.set_chutes_idp_variant(ChutesIdpVariant { omit_rotated_refresh_token: true, ..Default::default() });
    let (_, r1) = connect_chutes(&sim, &http, "gina").await;
    for _ in 0..2 {
        let (status, body) = refresh(&sim, &http, &r1).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
        assert!(body["access_token"].as_str().unwrap().starts_with("cak_"));
    }
    assert_eq!(control.chutes_refresh_tokens_alive("gina"), 1);

    // client_secret_basic only: the secret in the body is refused, Basic works.
    control.set_chutes_idp_variant(ChutesIdpVariant { client_auth: ClientAuth::BasicOnly, ..Default::default() });
    let (verifier, challenge) = pkce();
    let code = allow(&sim, &http, "gina", &challenge).await;
    let (status, body) = exchange(&sim, &http, &code, &verifier).await;
    assert_oauth_error(status, &body, 401, "invalid_client");
    let (status, body) = refresh(&sim, &http, &r1).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Refresh tokens only for offline_access grants.
    control.set_chutes_idp_variant(ChutesIdpVariant { refresh_token_needs_offline_access: true, ..Default::default() });
    let (verifier, challenge) = pkce();
    let code = allow(&sim, &http, "hank", &challenge).await;
    let (status, body) = exchange(&sim, &http, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let (verifier, challenge) = pkce();
    let code = control.issue_chutes_code("hank", CLIENT_ID, REDIRECT, &challenge, "openid profile chutes:invoke offline_access");
    let (status, body) = exchange(&sim, &http, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].as_str().unwrap().starts_with("crt_"), "{body}");

    // preferred_username instead of username; userinfo needing the profile scope.
    control.set_chutes_idp_variant(ChutesIdpVariant {
        preferred_username_claim: true,
        userinfo_needs_profile_scope: true,
        ..Default::default()
    });
    let (access, _) = connect_chutes(&sim, &http, "ivy").await;
    let (status, info) = userinfo(&sim, &http, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["preferred_username"], "ivy");
    assert!(info.get("username").is_none(), "{info}");
    let (verifier, challenge) = pkce();
    let code = control.issue_chutes_code("ivy", CLIENT_ID, REDIRECT, &challenge, "chutes:invoke");
    let (_, body) = exchange(&sim, &http, &code, &verifier).await;
    let resp = http
        .get(format!("{}/idp/userinfo", sim.chutes_api_base()))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let challenge = resp.headers()[reqwest::header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert_eq!(json_of(resp).await.1["error"], "insufficient_scope");

    // Over HTTP, too; the variant survives a reset.
    let (status, body) = json_of(
        http.post(format!("{}/_sim/chutes/idp-variant", sim.root_url())).json(&json!({"client_auth": "basic_only"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["client_auth"], "basic_only");
    control.reset();
    assert_eq!(control.config().chutes_idp.client_auth, ClientAuth::BasicOnly);
    assert_eq!(control.chutes_access_tokens_alive("ivy"), 0);
}

#[tokio::test]
async fn userinfo_rejects_bad_tokens() {
    let (sim, http) = start().await;
    let (status, body) = userinfo(&sim, &http, "cak_nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid token.");
    let resp = http.get(format!("{}/idp/userinfo", sim.chutes_api_base())).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // An expired access token is refused too.
    let (access, _) = connect_chutes(&sim, &http, "erin").await;
    assert_eq!(sim.control().expire_chutes_access_tokens("erin"), 1);
    assert_eq!(userinfo(&sim, &http, &access).await.0, StatusCode::UNAUTHORIZED);
}

// ------------------------------------------------------------------ Chutes inference

#[tokio::test]
async fn chutes_chat_answers_and_charges() {
    let (sim, http) = start().await;
    let control = sim.control();
    let (access, _) = connect_chutes(&sim, &http, "frank").await;

    let (status, body) = chutes_chat(&sim, &http, &access, CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], CHUTES_MODEL);
    assert!(body["id"].is_string());
    assert!(body["created"].is_u64());
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap().is_empty());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let u = &body["usage"];
    assert_eq!(u["total_tokens"].as_u64().unwrap(), u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap());
    assert!((control.chutes_user("frank").unwrap().balance_usd - 24.999).abs() < 1e-9);

    let (status, body) = chutes_chat(&sim, &http, "cak_forged", CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"detail": "Invalid token."}));

    let (status, body) = chutes_chat(&sim, &http, &access, "deepseek/deepseek-v3.2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "model not found"}));

    // Every canonical Chutes model is served.
    for (chutes, _) in simulator::MODELS {
        let (status, body) = chutes_chat(&sim, &http, &access, chutes).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["model"], chutes);
    }

    let (status, body) = json_of(http.get(format!("{}/models", sim.chutes_llm_base())).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 13);
    assert!(body["data"].as_array().unwrap().iter().any(|m| m["id"] == CHUTES_MODEL));
}

#[tokio::test]
async fn chutes_chat_402_without_balance_or_quota() {
    let (sim, http) = start().await;
    let control = sim.control();
    let (access, _) = connect_chutes(&sim, &http, "gina").await;

    control.set_chutes_balance("gina", 0.0, false).unwrap();
    let (status, body) = chutes_chat(&sim, &http, &access, CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(body["detail"]["message"].as_str().unwrap().starts_with("Quota exceeded and account balance is $0.0"), "{body}");

    // Zero balance but daily quota left still answers.
    control.set_chutes_balance("gina", 0.0, true).unwrap();
    let (status, body) = chutes_chat(&sim, &http, &access, CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(control.chutes_user("gina").unwrap().balance_usd, 0.0);

    // Balance drains to zero, then 402.
    control.set_chutes_balance("gina", 0.0015, false).unwrap();
    assert_eq!(chutes_chat(&sim, &http, &access, CHUTES_MODEL).await.0, StatusCode::OK);
    assert_eq!(chutes_chat(&sim, &http, &access, CHUTES_MODEL).await.0, StatusCode::OK);
    assert_eq!(chutes_chat(&sim, &http, &access, CHUTES_MODEL).await.0, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(control.set_chutes_balance("nobody", 1.0, false), Err(simulator::ControlError::UnknownChutesUser));
}

#[tokio::test]
async fn chutes_chat_streams_when_asked() {
    let (sim, http) = start().await;
    let (access, _) = connect_chutes(&sim, &http, "hal").await;
    let mut body = chat_body(CHUTES_MODEL);
    body["stream"] = json!(true);
    let resp = http.post(format!("{}/chat/completions", sim.chutes_llm_base())).bearer_auth(&access).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let first: Value = serde_json::from_str(text.lines().next().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], CHUTES_MODEL);
}

// ------------------------------------------------------------------ OpenRouter

#[tokio::test]
async fn key_endpoint_tells_management_from_inference_keys() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);
    assert!(is_hex64_key(&mgmt), "{mgmt}");
    let inference = control.create_openrouter_inference_key(5.0);
    assert!(is_hex64_key(&inference));

    let (status, body) = or_get(&sim, &http, &mgmt, "/key").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let d = &body["data"];
    assert_eq!(d["is_management_key"], true);
    assert_eq!(d["is_provisioning_key"], true);
    assert_eq!(d["label"], json!(format!("sk-or-v1-{}...{}", &mgmt[9..12], &mgmt[mgmt.len() - 3..])));
    for field in ["limit", "limit_remaining", "limit_reset", "usage", "is_free_tier", "include_byok_in_limit", "expires_at", "rate_limit"] {
        assert!(d.as_object().unwrap().contains_key(field), "missing {field}");
    }
    assert_eq!(d["is_free_tier"], false);

    let (status, body) = or_get(&sim, &http, &inference, "/key").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["is_management_key"], false);
    assert_eq!(body["data"]["is_provisioning_key"], false);

    let unknown = format!("sk-or-v1-{}", "a".repeat(64));
    let (status, body) = or_get(&sim, &http, &unknown, "/key").await;
    assert_or_error(status, &body, 401);
    assert_eq!(body["error"]["message"], "User not found.");
    assert_eq!(body["error"]["metadata"], Value::Null);

    // The demo account is there from the start.
    let (status, body) = or_get(&sim, &http, simulator::DEMO_OPENROUTER_MANAGEMENT_KEY, "/key").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["is_management_key"], true);
    assert!(is_hex64_key(simulator::DEMO_OPENROUTER_MANAGEMENT_KEY));
    let (_, credits) = or_get(&sim, &http, simulator::DEMO_OPENROUTER_MANAGEMENT_KEY, "/credits").await;
    assert_eq!(credits["data"]["total_credits"], 100.0);
}

#[tokio::test]
async fn create_key_answers_201_with_the_key_once() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);
    let (status, body) = mint(
        &sim,
        &http,
        &mgmt,
        json!({"name": "oro-run-1", "limit": 1.5, "limit_reset": null, "include_byok_in_limit": false, "expires_at": "2099-11-24T20:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().unwrap();
    assert!(is_hex64_key(key));
    let d = &body["data"];
    for field in [
        "hash",
        "name",
        "label",
        "disabled",
        "limit",
        "limit_remaining",
        "limit_reset",
        "include_byok_in_limit",
        "usage",
        "created_at",
        "updated_at",
        "expires_at",
    ] {
        assert!(d.as_object().unwrap().contains_key(field), "missing {field}");
    }
    assert_eq!(d["name"], "oro-run-1");
    assert_eq!(d["limit"], 1.5);
    assert_eq!(d["limit_remaining"], 1.5);
    assert_eq!(d["limit_reset"], Value::Null);
    assert_eq!(d["usage"], 0.0);
    assert_eq!(d["disabled"], false);
    assert_eq!(d["include_byok_in_limit"], false);
    assert_eq!(d["expires_at"], "2099-11-24T20:00:00Z");
    assert_eq!(d["label"], json!(format!("sk-or-v1-{}...{}", &key[9..12], &key[key.len() - 3..])));
    let hash = d["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert!(!d.to_string().contains(key), "the key object must not contain the plaintext");

    let info = control.openrouter_key_info(hash).unwrap();
    assert_eq!(info, control.openrouter_key_info(key).unwrap());
    assert_eq!(info.limit, Some(1.5));
    assert_eq!(info.expires_at.as_deref(), Some("2099-11-24T20:00:00Z"));
    assert!(!info.is_management);
    assert_eq!(control.list_openrouter_keys(&mgmt).len(), 1);

    // A minted key is an inference key.
    let (_, k) = or_get(&sim, &http, key, "/key").await;
    assert_eq!(k["data"]["is_management_key"], false);
    assert_eq!(k["data"]["limit"], 1.5);
    assert_eq!(k["data"]["expires_at"], "2099-11-24T20:00:00Z");

    // expires_at must be UTC, a timestamp, in the future.
    for bad in ["2099-11-24T20:00:00+02:00", "next tuesday", "2001-01-01T00:00:00Z"] {
        let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "x", "limit": 1, "expires_at": bad})).await;
        assert_or_error(status, &body, 400);
    }
    let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "x", "limit_reset": "hourly"})).await;
    assert_or_error(status, &body, 400);
    let (status, body) = mint(&sim, &http, &mgmt, json!({"limit": 1})).await;
    assert_or_error(status, &body, 400);
    let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "x", "limit": -1})).await;
    assert_or_error(status, &body, 400);

    // Weekly reset, null limit, no expiry.
    let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "y", "limit": null, "limit_reset": "weekly"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["data"]["limit"], Value::Null);
    assert_eq!(body["data"]["limit_remaining"], Value::Null);
    assert_eq!(body["data"]["limit_reset"], "weekly");
    assert_eq!(body["data"]["expires_at"], Value::Null);

    // Only a management key can mint.
    let inference = control.create_openrouter_inference_key(5.0);
    let (status, body) = mint(&sim, &http, &inference, json!({"name": "x"})).await;
    assert_or_error(status, &body, 403);
    let (status, body) = mint(&sim, &http, key, json!({"name": "x"})).await;
    assert_or_error(status, &body, 403);
    let (status, body) = or_get(&sim, &http, &inference, "/credits").await;
    assert_or_error(status, &body, 403);
}

#[tokio::test]
async fn list_patch_and_delete_keys() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);
    let other = control.create_openrouter_account(10.0);
    let base = sim.openrouter_api_base();
    let mut hashes = Vec::new();
    for i in 0..3 {
        let (_, body) = mint(&sim, &http, &mgmt, json!({"name": format!("k{i}"), "limit": 1})).await;
        hashes.push(body["data"]["hash"].as_str().unwrap().to_owned());
    }
    mint(&sim, &http, &other, json!({"name": "not-yours"})).await;

    let (status, body) = or_get(&sim, &http, &mgmt, "/keys").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["data"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["k0", "k1", "k2"]);

    let (status, body) = or_get(&sim, &http, &mgmt, &format!("/keys/{}", hashes[1])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["name"], "k1");
    assert_eq!(body["data"]["hash"], json!(hashes[1]));

    // Another account's management key cannot see it.
    let (status, body) = or_get(&sim, &http, &other, &format!("/keys/{}", hashes[1])).await;
    assert_or_error(status, &body, 404);
    assert_eq!(body["error"]["message"], "Key not found");

    // Disable via PATCH.
    let resp = http
        .patch(format!("{base}/keys/{}", hashes[1]))
        .bearer_auth(&mgmt)
        .json(&json!({"disabled": true, "name": "k1-off", "limit": 2.5}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["disabled"], true);
    assert_eq!(body["data"]["name"], "k1-off");
    assert_eq!(body["data"]["limit"], 2.5);
    assert!(body["data"]["updated_at"].is_string());

    let (_, body) = or_get(&sim, &http, &mgmt, "/keys").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (_, body) = or_get(&sim, &http, &mgmt, "/keys?include_disabled=false").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (_, body) = or_get(&sim, &http, &mgmt, "/keys?include_disabled=true").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    let (_, body) = or_get(&sim, &http, &mgmt, "/keys?include_disabled=true&offset=2").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["name"], "k2");
    let (status, body) = or_get(&sim, &http, &mgmt, "/keys?offset=-1").await;
    assert_or_error(status, &body, 400);

    // expires_at is not patchable.
    let resp = http
        .patch(format!("{base}/keys/{}", hashes[0]))
        .bearer_auth(&mgmt)
        .json(&json!({"expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_or_error(status, &body, 400);

    // Delete.
    let (status, body) = json_of(http.delete(format!("{base}/keys/{}", hashes[0])).bearer_auth(&mgmt).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"deleted": true}));
    let (status, body) = or_get(&sim, &http, &mgmt, &format!("/keys/{}", hashes[0])).await;
    assert_or_error(status, &body, 404);
    let (status, body) = json_of(http.delete(format!("{base}/keys/{}", hashes[0])).bearer_auth(&mgmt).send().await.unwrap()).await;
    assert_or_error(status, &body, 404);
    let (_, body) = or_get(&sim, &http, &mgmt, "/keys?include_disabled=true").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let resp =
        http.patch(format!("{base}/keys/{}", "f".repeat(64))).bearer_auth(&mgmt).json(&json!({"disabled": true})).send().await.unwrap();
    let (status, body) = json_of(resp).await;
    assert_or_error(status, &body, 404);

    // The control view keeps deleted keys, flagged.
    let all = control.list_openrouter_keys(&mgmt);
    assert_eq!(all.len(), 3);
    assert!(all[0].deleted);
    assert!(all[1].disabled && !all[1].deleted);
    assert_eq!(all[1].name, "k1-off");
}

#[tokio::test]
async fn minted_keys_run_inference_within_their_limits() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);
    let (_, body) = mint(&sim, &http, &mgmt, json!({"name": "run", "limit": 1.0})).await;
    let key = body["key"].as_str().unwrap().to_owned();
    let hash = body["data"]["hash"].as_str().unwrap().to_owned();

    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], OR_MODEL);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // A Chutes name is accepted as an alias and answered under the OpenRouter name.
    let (status, body) = or_chat(&sim, &http, &key, CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"], OR_MODEL);
    let (status, body) = or_chat(&sim, &http, &key, "openai/gpt-5").await;
    assert_or_error(status, &body, 400);

    // Usage is charged to the key and the account.
    let (_, k) = or_get(&sim, &http, &key, "/key").await;
    assert_eq!(k["data"]["usage"], 0.004);
    assert_eq!(k["data"]["limit_remaining"], 0.996);
    let (status, c) = or_get(&sim, &http, &mgmt, "/credits").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(c["data"]["total_credits"], 10.0);
    assert_eq!(c["data"]["total_usage"], 0.004);

    // A management key cannot run inference.
    let (status, body) = or_chat(&sim, &http, &mgmt, OR_MODEL).await;
    assert_or_error(status, &body, 403);

    // Disabled -> 401; enabled again -> works.
    let base = sim.openrouter_api_base();
    http.patch(format!("{base}/keys/{hash}")).bearer_auth(&mgmt).json(&json!({"disabled": true})).send().await.unwrap();
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_or_error(status, &body, 401);
    let (status, body) = or_get(&sim, &http, &key, "/key").await;
    assert_or_error(status, &body, 401);
    http.patch(format!("{base}/keys/{hash}")).bearer_auth(&mgmt).json(&json!({"disabled": false})).send().await.unwrap();
    assert_eq!(or_chat(&sim, &http, &key, OR_MODEL).await.0, StatusCode::OK);

    // Key limit reached -> 402 openrouter_key_limit.
    control.set_openrouter_key_usage(&hash, 1.0).unwrap();
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_or_error(status, &body, 402);
    assert_eq!(body["error"]["metadata"]["limit_source"], "openrouter_key_limit");
    // Raising the limit lets it run again.
    http.patch(format!("{base}/keys/{hash}")).bearer_auth(&mgmt).json(&json!({"limit": 5})).send().await.unwrap();
    assert_eq!(or_chat(&sim, &http, &key, OR_MODEL).await.0, StatusCode::OK);

    // Account out of credits -> 402 openrouter_credits.
    let usage = control.openrouter_account(&mgmt).unwrap().total_usage;
    control.set_openrouter_credits(&mgmt, usage).unwrap();
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_or_error(status, &body, 402);
    assert_eq!(body["error"]["metadata"]["limit_source"], "openrouter_credits");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("Insufficient credits"));

    // Deleted and expired keys -> 401.
    control.set_openrouter_credits(&mgmt, 100.0).unwrap();
    control.expire_openrouter_key(&hash).unwrap();
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_or_error(status, &body, 401);
    let (_, body) = mint(&sim, &http, &mgmt, json!({"name": "gone"})).await;
    let gone = body["key"].as_str().unwrap().to_owned();
    http.delete(format!("{base}/keys/{}", body["data"]["hash"].as_str().unwrap())).bearer_auth(&mgmt).send().await.unwrap();
    let (status, body) = or_chat(&sim, &http, &gone, OR_MODEL).await;
    assert_or_error(status, &body, 401);

    let (status, body) = json_of(http.get(format!("{base}/models")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 13);
}

#[tokio::test]
async fn freshly_minted_keys_answer_401_while_propagating() {
    let (sim, http) = start_with(SimulatorConfig { openrouter_propagation_401s: 2, ..Default::default() }).await;
    let mgmt = sim.control().create_openrouter_account(10.0);
    let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "fresh"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = body["key"].as_str().unwrap().to_owned();
    assert_eq!(sim.control().openrouter_key_info(&key).unwrap().propagation_401s_left, 2);

    let (status, body) = or_get(&sim, &http, &key, "/key").await;
    assert_or_error(status, &body, 401);
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_or_error(status, &body, 401);
    assert_eq!(or_chat(&sim, &http, &key, OR_MODEL).await.0, StatusCode::OK);
    assert_eq!(or_get(&sim, &http, &key, "/key").await.0, StatusCode::OK);

    // The management key itself (not minted) is never "propagating".
    assert_eq!(or_get(&sim, &http, &mgmt, "/key").await.0, StatusCode::OK);
}

// ------------------------------------------------------------------ faults

#[tokio::test]
async fn status_faults_use_each_providers_error_shape_and_count_down() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);
    let (_, body) = mint(&sim, &http, &mgmt, json!({"name": "f"})).await;
    let key = body["key"].as_str().unwrap().to_owned();

    control.set_fault(Fault { target: FaultTarget::OpenRouterChat, kind: FaultKind::Status(429), remaining: Some(2) });
    let (status, body) = or_chat(&sim, &http, &key, OR_MODEL).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, json!({"error": {"code": 429, "message": "Rate limit exceeded", "metadata": null}}));
    assert_eq!(control.faults()[0].remaining, Some(1));
    // Other targets are untouched.
    assert_eq!(or_get(&sim, &http, &key, "/key").await.0, StatusCode::OK);
    assert_eq!(or_chat(&sim, &http, &key, OR_MODEL).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(control.faults().is_empty());
    assert_eq!(or_chat(&sim, &http, &key, OR_MODEL).await.0, StatusCode::OK);

    control.set_fault(Fault::new(FaultTarget::OpenRouterKeysCreate, FaultKind::Status(500), Some(1)));
    let (status, body) = mint(&sim, &http, &mgmt, json!({"name": "g"})).await;
    assert_or_error(status, &body, 500);
    assert_eq!(mint(&sim, &http, &mgmt, json!({"name": "g"})).await.0, StatusCode::CREATED);

    control.set_fault(Fault::new(FaultTarget::OpenRouterCredits, FaultKind::Status(402), Some(1)));
    let (status, body) = or_get(&sim, &http, &mgmt, "/credits").await;
    assert_or_error(status, &body, 402);
    assert_eq!(body["error"]["metadata"]["limit_source"], "openrouter_credits");

    // Chutes shapes.
    let (access, refresh_token) = connect_chutes(&sim, &http, "ivy").await;
    control.set_fault(Fault::new(FaultTarget::ChutesChat, FaultKind::Status(429), None));
    for _ in 0..3 {
        let (status, body) = chutes_chat(&sim, &http, &access, CHUTES_MODEL).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body, json!({"detail": "infra_overload"}));
    }
    control.clear_faults();
    assert_eq!(chutes_chat(&sim, &http, &access, CHUTES_MODEL).await.0, StatusCode::OK);

    control.set_fault(Fault::new(FaultTarget::ChutesToken, FaultKind::Status(503), Some(1)));
    let (status, body) = refresh(&sim, &http, &refresh_token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].is_string());
    // The faulted call did not consume the refresh token.
    assert_eq!(refresh(&sim, &http, &refresh_token).await.0, StatusCode::OK);

    control.set_fault(Fault::new(FaultTarget::ChutesChat, FaultKind::Status(402), Some(1)));
    let (status, body) = chutes_chat(&sim, &http, &access, CHUTES_MODEL).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert!(body["detail"]["message"].as_str().unwrap().starts_with("Quota exceeded"));

    // Any hits every provider endpoint.
    control.set_fault(Fault::new(FaultTarget::Any, FaultKind::Status(502), Some(2)));
    let (status, body) = or_get(&sim, &http, &mgmt, "/keys").await;
    assert_or_error(status, &body, 502);
    let (status, body) = userinfo(&sim, &http, "cak_x").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body["detail"].is_string());
    assert!(control.faults().is_empty());
}

#[tokio::test]
async fn delay_faults_trip_client_timeouts() {
    let (sim, http) = start().await;
    let control = sim.control();
    let key = control.create_openrouter_inference_key(10.0);
    let quick = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();

    control.set_fault(Fault::new(FaultTarget::OpenRouterKey, FaultKind::Delay(Duration::from_millis(1500)), Some(1)));
    let err = quick.get(format!("{}/key", sim.openrouter_api_base())).bearer_auth(&key).send().await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(control.faults().is_empty());
    assert_eq!(or_get(&sim, &http, &key, "/key").await.0, StatusCode::OK);

    // A patient client gets the normal answer after the delay.
    control.set_fault(Fault::new(FaultTarget::ChutesUserinfo, FaultKind::Delay(Duration::from_millis(400)), Some(1)));
    let started = std::time::Instant::now();
    let (status, body) = userinfo(&sim, &http, "cak_nope").await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Invalid token.");
}

#[tokio::test]
async fn reset_faults_drop_the_connection() {
    let (sim, http) = start().await;
    let control = sim.control();
    let mgmt = control.create_openrouter_account(10.0);

    control.set_fault(Fault::new(FaultTarget::OpenRouterKeysList, FaultKind::Reset, Some(1)));
    let err = http.get(format!("{}/keys", sim.openrouter_api_base())).bearer_auth(&mgmt).send().await.unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err}");
    assert_eq!(or_get(&sim, &http, &mgmt, "/keys").await.0, StatusCode::OK);

    let (_, refresh_token) = connect_chutes(&sim, &http, "jay").await;
    control.set_fault(Fault::new(FaultTarget::ChutesToken, FaultKind::Reset, Some(1)));
    let err = http
        .post(format!("{}/idp/token", sim.chutes_api_base()))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none(), "{err}");
    assert_eq!(refresh(&sim, &http, &refresh_token).await.0, StatusCode::OK);
}

// ------------------------------------------------------------------ control HTTP API

#[tokio::test]
async fn control_http_api_mirrors_control() {
    let (sim, http) = start().await;
    let root = sim.root_url();

    let page = http.get(format!("{root}/_sim/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(simulator::DEMO_OPENROUTER_MANAGEMENT_KEY));
    assert!(html.contains("demo-miner"));
    assert!(html.contains("oro-sim-client"));

    let (status, demo) = json_of(http.get(format!("{root}/_sim/demo")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(demo["openrouter"]["management_key"], simulator::DEMO_OPENROUTER_MANAGEMENT_KEY);
    assert_eq!(demo["chutes"]["username"], "demo-miner");

    // OpenRouter accounts and keys.
    let (status, body) =
        json_of(http.post(format!("{root}/_sim/openrouter/accounts")).json(&json!({"credits": 3})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let mgmt = body["management_key"].as_str().unwrap().to_owned();
    assert!(is_hex64_key(&mgmt));
    let (_, c) = or_get(&sim, &http, &mgmt, "/credits").await;
    assert_eq!(c["data"]["total_credits"], 3.0);
    let (status, body) =
        json_of(http.post(format!("{root}/_sim/openrouter/inference-keys")).json(&json!({"credits": 1})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, k) = or_get(&sim, &http, body["key"].as_str().unwrap(), "/key").await;
    assert_eq!(k["data"]["is_management_key"], false);

    let (_, minted) = mint(&sim, &http, &mgmt, json!({"name": "via-http", "limit": 1})).await;
    let hash = minted["data"]["hash"].as_str().unwrap().to_owned();
    let (status, body) =
        json_of(http.get(format!("{root}/_sim/openrouter/keys")).query(&[("management_key", mgmt.as_str())]).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["name"], "via-http");
    assert_eq!(body["data"][0]["deleted"], false);
    let (status, _) =
        json_of(http.post(format!("{root}/_sim/openrouter/keys/{hash}/usage")).json(&json!({"usd": 1.0})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = or_chat(&sim, &http, minted["key"].as_str().unwrap(), OR_MODEL).await;
    assert_or_error(status, &body, 402);
    let (status, _) = json_of(
        http.post(format!("{root}/_sim/openrouter/credits"))
            .json(&json!({"management_key": mgmt, "total_credits": 50}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, c) = or_get(&sim, &http, &mgmt, "/credits").await;
    assert_eq!(c["data"]["total_credits"], 50.0);
    assert_eq!(c["data"]["total_usage"], 1.0);
    let (status, body) =
        json_of(http.post(format!("{root}/_sim/openrouter/keys/{}/usage", "0".repeat(64))).json(&json!({"usd": 1})).send().await.unwrap())
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());

    // Chutes users and codes.
    let (status, body) = json_of(
        http.post(format!("{root}/_sim/chutes/users"))
            .json(&json!({"username": "kim", "balance": 0, "quota_left": false}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["sub"].is_string());
    let (verifier, challenge) = pkce();
    let (status, body) = json_of(
        http.post(format!("{root}/_sim/chutes/codes"))
            .json(&json!({"username": "kim", "client_id": CLIENT_ID, "redirect_uri": REDIRECT, "code_challenge": challenge, "scope": "openid chutes:invoke"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, tokens) = exchange(&sim, &http, body["code"].as_str().unwrap(), &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "openid chutes:invoke");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(chutes_chat(&sim, &http, access, CHUTES_MODEL).await.0, StatusCode::PAYMENT_REQUIRED);
    let (status, _) = json_of(
        http.post(format!("{root}/_sim/chutes/users/kim/balance")).json(&json!({"balance": 2, "quota_left": false})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(chutes_chat(&sim, &http, access, CHUTES_MODEL).await.0, StatusCode::OK);
    let (status, user) = json_of(http.get(format!("{root}/_sim/chutes/users/kim")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["refresh_tokens_alive"], 1);
    assert_eq!(user["balance_usd"], 1.999);

    // Faults over HTTP.
    let (status, body) = json_of(
        http.post(format!("{root}/_sim/faults"))
            .json(&json!({"target": "chutes_chat", "kind": {"status": 429}, "remaining": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["faults"][0]["target"], "chutes_chat");
    assert_eq!(chutes_chat(&sim, &http, access, CHUTES_MODEL).await.0, StatusCode::TOO_MANY_REQUESTS);
    let (_, body) = json_of(http.get(format!("{root}/_sim/faults")).send().await.unwrap()).await;
    assert_eq!(body["faults"], json!([]));
    http.post(format!("{root}/_sim/faults")).json(&json!({"target": "openrouter_key", "kind": {"delay_ms": 10}})).send().await.unwrap();
    http.post(format!("{root}/_sim/faults")).json(&json!({"target": "any", "kind": "reset", "remaining": 5})).send().await.unwrap();
    let (_, body) = json_of(http.get(format!("{root}/_sim/faults")).send().await.unwrap()).await;
    assert_eq!(body["faults"][0]["kind"], json!({"delay_ms": 10}));
    assert_eq!(body["faults"][0]["remaining"], Value::Null);
    assert_eq!(body["faults"][1]["kind"], "reset");
    let (status, _) = json_of(http.delete(format!("{root}/_sim/faults")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sim.control().faults().is_empty());
    let (status, _) =
        json_of(http.post(format!("{root}/_sim/faults")).json(&json!({"target": "nowhere", "kind": "reset"})).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Request log: provider calls only, paths without query strings.
    let (_, log) = json_of(http.get(format!("{root}/_sim/requests")).send().await.unwrap()).await;
    let log = log["requests"].as_array().unwrap();
    assert!(log.iter().any(|r| r["method"] == "POST" && r["path"] == "/chutes/idp/token"));
    assert!(log.iter().any(|r| r["method"] == "GET" && r["path"] == "/openrouter/api/v1/credits"));
    assert!(log.iter().all(|r| !r["path"].as_str().unwrap().starts_with("/_sim") && !r["path"].as_str().unwrap().contains('?')));
    assert_eq!(sim.control().request_log().len(), log.len());

    // Reset forgets everything but the demo accounts.
    let (status, _) = json_of(http.post(format!("{root}/_sim/reset")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(or_get(&sim, &http, &mgmt, "/key").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(or_get(&sim, &http, simulator::DEMO_OPENROUTER_MANAGEMENT_KEY, "/key").await.0, StatusCode::OK);
    assert!(sim.control().chutes_user("kim").is_none());
    assert!(sim.control().chutes_user("demo-miner").is_some());
    assert_eq!(sim.control().request_log().len(), 2, "the log restarts at reset");
}

#[tokio::test]
async fn base_urls_and_shutdown() {
    let (sim, http) = start().await;
    let root = sim.root_url();
    assert!(root.starts_with("http://127.0.0.1:"));
    assert_eq!(sim.chutes_api_base(), format!("{root}/chutes"));
    assert_eq!(sim.chutes_llm_base(), format!("{root}/chutes-llm/v1"));
    assert_eq!(sim.openrouter_api_base(), format!("{root}/openrouter/api/v1"));
    assert_eq!(http.get(format!("{root}/_sim/")).send().await.unwrap().status(), StatusCode::OK);
    sim.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(format!("{root}/_sim/")).send().await.is_err());
}
