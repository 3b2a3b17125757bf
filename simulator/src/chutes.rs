//! Chutes: the OAuth identity provider (`/chutes/idp/...`) and inference (`/chutes-llm/v1/...`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::control::Control;
use crate::idp_variant::ClientAuth;
use crate::models::{MODELS, chutes_model};
use crate::state::{AccessToken, AuthCode, RefreshState, RefreshToken, Sim, TokenFamily};
use crate::util::{
    bearer, completion_response, html_escape, json_response, parse_chat, parse_form, random_alnum, rfc3339, unix_secs, with_query,
};

pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const CODE_TTL: Duration = Duration::from_secs(600);
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// What one chat completion costs against the user's balance.
pub const CHAT_COST_USD: f64 = 0.001;
pub const QUOTA_MESSAGE: &str =
    "Quota exceeded and account balance is $0.0, please pay with fiat or send tao to 5SimuLatorPaymentAddressDoNotSendTaoHere0000000000";

pub(crate) fn routes() -> Router<Control> {
    Router::new()
        .route("/chutes/idp/authorize", get(authorize_page).post(authorize_decision))
        .route("/chutes/idp/token", post(token))
        .route("/chutes/idp/token/revoke", post(revoke))
        .route("/chutes/idp/userinfo", get(userinfo))
        .route("/chutes-llm/v1/chat/completions", post(chat))
        .route("/chutes-llm/v1/models", get(models))
}

// ---------------------------------------------------------------- authorize

struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    code_challenge: String,
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - Chutes (simulated)</title></head>\
         <body><main><h1>{t}</h1><p role=\"alert\">{m}</p></main></body></html>\n",
        t = html_escape(title),
        m = html_escape(message)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

fn redirect(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn redirect_error(redirect_uri: &str, error: &str, description: &str, state: Option<&str>) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect(&with_query(redirect_uri, &params))
}

/// Checks an authorization request. Problems with the client or the redirect URI are shown
/// on a page (never redirected); the rest go back to the client as OAuth errors.
fn check_authorize(sim: &Sim, p: &HashMap<String, String>) -> Result<AuthRequest, Reject> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let client_id = get("client_id");
    if client_id.is_empty() || client_id != sim.config.chutes_client_id {
        return Err(Reject::Page("Unknown application", "The client_id is missing or not registered."));
    }
    let redirect_uri = get("redirect_uri");
    if redirect_uri.is_empty() || !sim.config.chutes_redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Reject::Page("Invalid redirect URI", "The redirect_uri is missing or not registered for this application."));
    }
    let state = p.get("state").filter(|s| !s.is_empty()).cloned();
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = state.as_deref() {
            params.push(("state", s));
        }
        Err(Reject::Redirect(with_query(redirect_uri, &params)))
    };
    if get("response_type") != "code" {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let challenge = get("code_challenge");
    if !(43..=128).contains(&challenge.len()) || !challenge.bytes().all(is_unreserved) {
        return fail("invalid_request", "code_challenge is required (PKCE)");
    }
    if get("code_challenge_method") != "S256" {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    let scope = get("scope").split_whitespace().collect::<Vec<_>>().join(" ");
    let scope = if scope.is_empty() { "openid".to_owned() } else { scope };
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state,
        code_challenge: challenge.to_owned(),
    })
}

/// Why an authorization request is refused: shown on a page (bad client or redirect URI,
/// never redirected), or sent back to the client as an OAuth error redirect.
enum Reject {
    Page(&'static str, &'static str),
    Redirect(String),
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Page(title, message) => error_page(StatusCode::BAD_REQUEST, title, message),
            Reject::Redirect(location) => redirect(&location),
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn scope_description(scope: &str) -> &'static str {
    match scope {
        "openid" => "Confirm your identity",
        "profile" => "Read your username",
        "chutes:invoke" => "Run inference on your behalf, billed to your Chutes balance",
        _ => "Access described by the application",
    }
}

fn consent_page(req: &AuthRequest, username: &str, error: Option<&str>) -> Response {
    let hidden =
        |name: &str, value: &str| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", html_escape(name), html_escape(value));
    let mut fields = String::new();
    fields.push_str(&hidden("response_type", "code"));
    fields.push_str(&hidden("client_id", &req.client_id));
    fields.push_str(&hidden("redirect_uri", &req.redirect_uri));
    fields.push_str(&hidden("scope", &req.scope));
    if let Some(s) = &req.state {
        fields.push_str(&hidden("state", s));
    }
    fields.push_str(&hidden("code_challenge", &req.code_challenge));
    fields.push_str(&hidden("code_challenge_method", "S256"));
    let scopes: String =
        req.scope.split_whitespace().map(|s| format!("<li><code>{}</code>: {}</li>\n", html_escape(s), scope_description(s))).collect();
    let error = error.map(|e| format!("<p role=\"alert\" id=\"error\">{}</p>\n", html_escape(e))).unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Authorize {client} - Chutes (simulated)</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }}
label {{ display: block; font-weight: 600; margin-top: 1rem; }}
input[type=text] {{ font-size: 1rem; padding: .4rem; width: 100%; box-sizing: border-box; }}
.actions {{ margin-top: 1.5rem; display: flex; gap: 1rem; }}
button {{ font-size: 1rem; padding: .5rem 1.5rem; cursor: pointer; }}
#approve {{ background: #1a7f37; color: #fff; border: 0; border-radius: 4px; }}
#deny {{ background: #fff; border: 1px solid #888; border-radius: 4px; }}
[role=alert] {{ color: #b00020; }}
.note {{ color: #555; font-size: .9rem; }}
</style>
</head>
<body>
<main>
<h1>Authorize <strong>{client}</strong></h1>
<p>The application <strong>{client}</strong> asks for access to your Chutes account.</p>
<h2 id="scopes-heading">It will be able to</h2>
<ul aria-labelledby="scopes-heading">
{scopes}</ul>
{error}<form method="post" action="authorize">
{fields}<label for="username">Chutes username</label>
<input type="text" id="username" name="username" value="{username}" required autocomplete="username" aria-describedby="username-help">
<p id="username-help" class="note">Simulator: any username works; an unknown one is created with a ${balance:.2} balance.</p>
<div class="actions">
<button type="submit" id="approve" name="decision" value="allow">Allow</button>
<button type="submit" id="deny" name="decision" value="deny" formnovalidate>Deny</button>
</div>
</form>
<p class="note">You will be sent back to <code>{redirect}</code>.</p>
</main>
</body>
</html>
"#,
        client = html_escape(&req.client_id),
        username = html_escape(username),
        redirect = html_escape(&req.redirect_uri),
        balance = crate::state::DEMO_CHUTES_BALANCE,
    );
    let status = if error.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

async fn authorize_page(State(control): State<Control>, RawQuery(query): RawQuery) -> Response {
    let (params, _) = parse_form(query.unwrap_or_default().as_bytes());
    let sim = control.lock();
    match check_authorize(&sim, &params) {
        Ok(req) => consent_page(&req, crate::state::DEMO_CHUTES_USERNAME, None),
        Err(reject) => reject.into_response(),
    }
}

fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn authorize_decision(State(control): State<Control>, body: Bytes) -> Response {
    let (params, _) = parse_form(&body);
    let mut sim = control.lock();
    let req = match check_authorize(&sim, &params) {
        Ok(req) => req,
        Err(reject) => return reject.into_response(),
    };
    match params.get("decision").map(String::as_str) {
        Some("deny") => redirect_error(&req.redirect_uri, "access_denied", "The user denied access", req.state.as_deref()),
        Some("allow") => {
            let username = params.get("username").map(|u| u.trim()).unwrap_or("");
            if !valid_username(username) {
                return consent_page(&req, username, Some("Enter a username: letters, digits, '-', '_' or '.', at most 64."));
            }
            sim.ensure_chutes_user(username);
            let code = sim.issue_code(username, &req.client_id, &req.redirect_uri, &req.code_challenge, &req.scope);
            let mut q = vec![("code", code.as_str())];
            if let Some(s) = req.state.as_deref() {
                q.push(("state", s));
            }
            redirect(&with_query(&req.redirect_uri, &q))
        }
        _ => consent_page(&req, params.get("username").map(String::as_str).unwrap_or(""), Some("Choose Allow or Deny.")),
    }
}

impl Sim {
    pub(crate) fn issue_code(&mut self, username: &str, client_id: &str, redirect_uri: &str, challenge: &str, scope: &str) -> String {
        let code = random_alnum(43);
        self.codes.insert(
            code.clone(),
            AuthCode {
                username: username.to_owned(),
                client_id: client_id.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: challenge.to_owned(),
                scope: scope.to_owned(),
                expires: SystemTime::now() + CODE_TTL,
                used: false,
                family: None,
            },
        );
        code
    }

    fn new_family(&mut self, username: &str, client_id: &str, scope: &str) -> u64 {
        let id = self.next_seq();
        self.families.insert(
            id,
            TokenFamily { username: username.to_owned(), client_id: client_id.to_owned(), scope: scope.to_owned(), revoked: false },
        );
        id
    }

    /// A fresh access token in `family`, and a refresh token unless `with_refresh` is false
    /// or the variant issues them only to `offline_access` grants.
    fn issue_tokens(&mut self, family: u64, with_refresh: bool) -> Value {
        let now = SystemTime::now();
        let access = format!("cak_{}", random_alnum(48));
        self.access_tokens.insert(access.clone(), AccessToken { family, expires: now + ACCESS_TOKEN_TTL, revoked: false });
        let scope = self.families.get(&family).map(|f| f.scope.clone()).unwrap_or_default();
        let offline = scope.split_whitespace().any(|s| s == "offline_access");
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL.as_secs(),
            "scope": scope,
        });
        if with_refresh && (offline || !self.config.chutes_idp.refresh_token_needs_offline_access) {
            let refresh = format!("crt_{}", random_alnum(48));
            self.refresh_tokens
                .insert(refresh.clone(), RefreshToken { family, state: RefreshState::Live, expires: now + REFRESH_TOKEN_TTL });
            answer["refresh_token"] = Value::String(refresh);
        }
        answer
    }

    /// The live access token's family, if any.
    fn access_token_family(&self, token: &str) -> Option<&TokenFamily> {
        let at = self.access_tokens.get(token)?;
        let family = self.families.get(&at.family)?;
        (!at.revoked && !family.revoked && SystemTime::now() < at.expires).then_some(family)
    }

    /// The username behind a live access token.
    pub(crate) fn access_token_user(&self, token: &str) -> Option<&str> {
        self.access_token_family(token).map(|f| f.username.as_str())
    }
}

// ---------------------------------------------------------------- token endpoint

/// An OAuth error answer: `{"error", "error_description"}`, 400 (401 for `invalid_client`).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = json_response(self.status, json!({"error": self.error, "error_description": self.description}));
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"chutes\""));
        }
        resp
    }
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError { status, error, description: description.to_owned() }
}

fn invalid_request(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(description: &str) -> OAuthError {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Client authentication by HTTP Basic or by `client_id` + `client_secret` in the body.
/// Answers the authenticated client id.
fn authenticate_client(sim: &Sim, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<String, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, b64)| b64.trim().to_owned());
    let (id, secret) = match basic {
        Some(b64) => {
            let decoded = STANDARD
                .decode(b64)
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| invalid_client("malformed Basic credentials"))?;
            let (id, secret) = (percent_decode(id), percent_decode(secret));
            if form.get("client_id").is_some_and(|body_id| *body_id != id) {
                return Err(invalid_request("client_id in the body does not match the Basic credentials"));
            }
            if form.contains_key("client_secret") {
                return Err(invalid_request("use only one client authentication method"));
            }
            (id, secret)
        }
        None if form.contains_key("client_secret") && sim.config.chutes_idp.client_auth == ClientAuth::BasicOnly => {
            return Err(invalid_client("this server accepts client credentials only by HTTP Basic"));
        }
        None => (form.get("client_id").cloned().unwrap_or_default(), form.get("client_secret").cloned().unwrap_or_default()),
    };
    if id.is_empty() || secret.is_empty() {
        return Err(invalid_client("client authentication required"));
    }
    if id != sim.config.chutes_client_id || secret != sim.config.chutes_client_secret {
        return Err(invalid_client("client authentication failed"));
    }
    Ok(id)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn token(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> Response {
    let mut resp = match token_grant(&control, &headers, &body) {
        Ok(tokens) => json_response(StatusCode::OK, tokens),
        Err(e) => e.into_response(),
    };
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn token_grant(control: &Control, headers: &HeaderMap, body: &[u8]) -> Result<Value, OAuthError> {
    if !is_form(headers) {
        return Err(invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let (form, dup) = parse_form(body);
    if let Some(k) = dup {
        return Err(invalid_request(&format!("parameter {k} is repeated")));
    }
    let mut sim = control.lock();
    let client_id = authenticate_client(&sim, headers, &form)?;
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("grant_type") {
        None => Err(invalid_request("grant_type is required")),
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) = (get("code"), get("redirect_uri"), get("code_verifier")) else {
                return Err(invalid_request("code, redirect_uri and code_verifier are required"));
            };
            exchange_code(&mut sim, &client_id, code, redirect_uri, verifier)
        }
        Some("refresh_token") => {
            let refresh = get("refresh_token").ok_or_else(|| invalid_request("refresh_token is required"))?;
            refresh_grant(&mut sim, &client_id, refresh, get("scope"))
        }
        Some(_) => {
            Err(oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"))
        }
    }
}

fn exchange_code(sim: &mut Sim, client_id: &str, code: &str, redirect_uri: &str, verifier: &str) -> Result<Value, OAuthError> {
    let Some(c) = sim.codes.get_mut(code) else {
        return Err(invalid_grant("unknown authorization code"));
    };
    if c.used {
        // A replayed code: revoke whatever it was redeemed into (RFC 6749 section 4.1.2).
        if let Some(f) = c.family {
            sim.revoke_family(f);
        }
        return Err(invalid_grant("authorization code already used"));
    }
    c.used = true;
    if SystemTime::now() >= c.expires {
        return Err(invalid_grant("authorization code expired"));
    }
    if c.client_id != client_id {
        return Err(invalid_grant("authorization code was issued to another client"));
    }
    if c.redirect_uri != redirect_uri {
        return Err(invalid_grant("redirect_uri does not match the authorization request"));
    }
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) || s256(verifier) != c.code_challenge {
        return Err(invalid_grant("PKCE verification failed"));
    }
    let (username, scope) = (c.username.clone(), c.scope.clone());
    let family = sim.new_family(&username, client_id, &scope);
    if let Some(c) = sim.codes.get_mut(code) {
        c.family = Some(family);
    }
    Ok(sim.issue_tokens(family, true))
}

fn refresh_grant(sim: &mut Sim, client_id: &str, refresh: &str, scope: Option<&str>) -> Result<Value, OAuthError> {
    let Some(rt) = sim.refresh_tokens.get(refresh) else {
        return Err(invalid_grant("unknown refresh token"));
    };
    let (family_id, state, expires) = (rt.family, rt.state, rt.expires);
    let Some(family) = sim.families.get(&family_id) else {
        return Err(invalid_grant("unknown refresh token"));
    };
    if family.client_id != client_id {
        return Err(invalid_grant("refresh token was issued to another client"));
    }
    match state {
        RefreshState::Rotated => {
            sim.revoke_family(family_id);
            return Err(invalid_grant("refresh token already used; the grant has been revoked"));
        }
        RefreshState::Revoked => return Err(invalid_grant("refresh token revoked")),
        RefreshState::Live => {}
    }
    if family.revoked {
        return Err(invalid_grant("refresh token revoked"));
    }
    if SystemTime::now() >= expires {
        return Err(invalid_grant("refresh token expired"));
    }
    if let Some(requested) = scope {
        let granted: Vec<&str> = family.scope.split_whitespace().collect();
        if !requested.split_whitespace().all(|s| granted.contains(&s)) {
            return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "scope exceeds the original grant"));
        }
    }
    // RFC 6749 section 6: a server may keep the spent token alive and answer none.
    let rotate = !sim.config.chutes_idp.omit_rotated_refresh_token;
    if rotate && let Some(rt) = sim.refresh_tokens.get_mut(refresh) {
        rt.state = RefreshState::Rotated;
    }
    Ok(sim.issue_tokens(family_id, rotate))
}

async fn revoke(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> Result<Response, OAuthError> {
    if !is_form(&headers) {
        return Err(invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let (form, _) = parse_form(&body);
    let mut sim = control.lock();
    let client_id = authenticate_client(&sim, &headers, &form)?;
    let token = form.get("token").filter(|t| !t.is_empty()).ok_or_else(|| invalid_request("token is required"))?;
    let own = |family: u64, sim: &Sim| sim.families.get(&family).is_some_and(|f| f.client_id == client_id);
    if let Some(rt) = sim.refresh_tokens.get(token) {
        let family = rt.family;
        if own(family, &sim) {
            sim.revoke_family(family);
        }
    } else if let Some(at) = sim.access_tokens.get(token) {
        let family = at.family;
        if own(family, &sim)
            && let Some(at) = sim.access_tokens.get_mut(token)
        {
            at.revoked = true;
        }
    }
    // RFC 7009: an unknown token is not an error.
    Ok(json_response(StatusCode::OK, json!({"revoked": true})))
}

fn invalid_token() -> Response {
    let mut resp = json_response(StatusCode::UNAUTHORIZED, json!({"detail": "Invalid token."}));
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    resp
}

/// RFC 6750 section 3.1: the token is good, but its grant does not cover this resource.
fn insufficient_scope(scope: &str) -> Response {
    let mut resp = json_response(
        StatusCode::FORBIDDEN,
        json!({"error": "insufficient_scope", "error_description": format!("requires scope {scope}")}),
    );
    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

async fn userinfo(State(control): State<Control>, headers: HeaderMap) -> Response {
    let sim = control.lock();
    let Some(family) = bearer(&headers).and_then(|t| sim.access_token_family(&t)) else {
        return invalid_token();
    };
    let variant = sim.config.chutes_idp;
    if variant.userinfo_needs_profile_scope && !family.scope.split_whitespace().any(|s| s == "profile") {
        return insufficient_scope("profile");
    }
    let Some(user) = sim.chutes_users.get(&family.username) else {
        return invalid_token();
    };
    let name_claim = if variant.preferred_username_claim { "preferred_username" } else { "username" };
    json_response(StatusCode::OK, json!({"sub": user.sub, name_claim: user.username, "created_at": rfc3339(user.created_at)}))
}

// ---------------------------------------------------------------- inference

async fn chat(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> Response {
    let mut sim = control.lock();
    let Some(username) = bearer(&headers).and_then(|t| sim.access_token_user(&t).map(str::to_owned)) else {
        return invalid_token();
    };
    let req = match parse_chat(&body) {
        Ok(req) => req,
        Err(msg) => {
            return json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"detail": [{"loc": ["body"], "msg": msg, "type": "value_error"}]}),
            );
        }
    };
    let Some(model) = chutes_model(&req.model) else {
        return json_response(StatusCode::NOT_FOUND, json!({"detail": "model not found"}));
    };
    let Some(user) = sim.chutes_users.get_mut(&username) else {
        return invalid_token();
    };
    if user.balance <= 1e-9 {
        if !user.quota_left {
            return json_response(StatusCode::PAYMENT_REQUIRED, json!({"detail": {"message": QUOTA_MESSAGE}}));
        }
        // Free daily quota: nothing is charged.
    } else {
        user.balance = (user.balance - CHAT_COST_USD).max(0.0);
    }
    drop(sim);
    completion_response(&req, model, "chatcmpl-", json!({}), json!({}))
}

async fn models() -> Response {
    let created = unix_secs(SystemTime::now());
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, _)| {
            json!({
                "id": id,
                "object": "model",
                "created": created,
                "owned_by": "chutes",
                "root": id,
                "price": {"input": {"usd": 0.3}, "output": {"usd": 1.2}},
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({"object": "list", "data": data}))
}
