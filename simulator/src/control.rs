//! The test/developer handle on the simulator ([`Control`]) and its HTTP mirror under `/_sim`.
//!
//! Every [`Control`] method is synchronous and only takes a short in-memory lock, so it can be
//! called from sync tests and from async code alike (never while holding another of its locks).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimulatorConfig;
use crate::fault::{Fault, FaultKind, FaultTarget, take_fault};
use crate::openrouter::{label, money, new_secret};
use crate::state::{
    DEMO_CHUTES_BALANCE, DEMO_CHUTES_USERNAME, DEMO_OPENROUTER_CREDITS, DEMO_OPENROUTER_MANAGEMENT_KEY, RefreshState, Sim, key_hash,
};
use crate::util::{html_escape, json_response, rfc3339};

/// A key as the simulator sees it (for assertions). Times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRouterKeyInfo {
    pub hash: String,
    pub name: String,
    pub label: String,
    pub is_management: bool,
    pub disabled: bool,
    pub deleted: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<String>,
    pub include_byok_in_limit: bool,
    pub usage: f64,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// Hash of the management key that minted it; `None` for keys made by the control API.
    pub minted_by: Option<String>,
    /// Uses left that still answer 401 while the key "propagates".
    pub propagation_401s_left: u32,
}

/// An OpenRouter account's money.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenRouterAccountInfo {
    pub total_credits: f64,
    pub total_usage: f64,
}

/// A Chutes user as the simulator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChutesUserInfo {
    pub sub: String,
    pub username: String,
    pub balance_usd: f64,
    pub quota_left: bool,
    pub created_at: String,
    pub refresh_tokens_alive: usize,
    pub revoked_tokens: usize,
}

/// A [`Control`] operation named something the simulator does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    UnknownOpenRouterKey,
    UnknownChutesUser,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ControlError::UnknownOpenRouterKey => "unknown OpenRouter key",
            ControlError::UnknownChutesUser => "unknown Chutes user",
        })
    }
}

impl std::error::Error for ControlError {}

/// Cheap-to-clone handle on the simulator's state. All methods are synchronous.
#[derive(Clone)]
pub struct Control {
    inner: Arc<Mutex<Sim>>,
}

impl Control {
    /// A fresh world (demo accounts seeded). Use with [`crate::router`] to mount it yourself.
    pub fn new(config: SimulatorConfig) -> Control {
        Control { inner: Arc::new(Mutex::new(Sim::new(config))) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Sim> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> SimulatorConfig {
        self.lock().config.clone()
    }

    /// Switches the Chutes IdP to other standard behaviours (see [`crate::ChutesIdpVariant`]);
    /// applies to requests from now on and survives [`Control::reset`].
    pub fn set_chutes_idp_variant(&self, variant: crate::ChutesIdpVariant) {
        self.lock().config.chutes_idp = variant;
    }

    /// Sets how many 401s a freshly minted OpenRouter key answers (keys minted from now on).
    pub fn set_openrouter_propagation_401s(&self, n: u32) {
        self.lock().config.openrouter_propagation_401s = n;
    }

    // ------------------------------------------------------------ OpenRouter

    /// A new account with `credits_usd` credits; answers its management key
    /// (`sk-or-v1-` + 64 lowercase hex).
    pub fn create_openrouter_account(&self, credits_usd: f64) -> String {
        let secret = new_secret();
        self.lock().insert_account(secret.clone(), credits_usd, true, "Management key");
        secret
    }

    /// A new account whose only key is a plain inference key (not a management key).
    pub fn create_openrouter_inference_key(&self, credits_usd: f64) -> String {
        let secret = new_secret();
        self.lock().insert_account(secret.clone(), credits_usd, false, "Inference key");
        secret
    }

    /// Any key (management, inference or minted; deleted too), by hash or by plaintext key.
    pub fn openrouter_key_info(&self, hash_or_key: &str) -> Option<OpenRouterKeyInfo> {
        let sim = self.lock();
        sim.find_key(hash_or_key).map(|k| OpenRouterKeyInfo {
            hash: k.hash.clone(),
            name: k.name.clone(),
            label: label(&k.secret),
            is_management: k.is_management,
            disabled: k.disabled,
            deleted: k.deleted,
            limit: k.limit,
            limit_reset: k.limit_reset.clone(),
            include_byok_in_limit: k.include_byok_in_limit,
            usage: money(k.usage),
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            minted_by: k.minted_by.clone(),
            propagation_401s_left: k.propagation_left,
        })
    }

    /// Every key minted by this management key (plaintext), deleted and disabled ones included,
    /// oldest first. Empty for an unknown key.
    pub fn list_openrouter_keys(&self, management_key: &str) -> Vec<OpenRouterKeyInfo> {
        let mgmt = key_hash(management_key);
        let hashes: Vec<String> = {
            let sim = self.lock();
            let mut keys: Vec<_> = sim.or_keys.values().filter(|k| k.minted_by.as_deref() == Some(mgmt.as_str())).collect();
            keys.sort_by_key(|k| k.seq);
            keys.into_iter().map(|k| k.hash.clone()).collect()
        };
        hashes.iter().filter_map(|h| self.openrouter_key_info(h)).collect()
    }

    /// Sets a key's usage (USD) to simulate spend; the account's usage moves by the same amount.
    pub fn set_openrouter_key_usage(&self, hash_or_key: &str, usd: f64) -> Result<(), ControlError> {
        let mut sim = self.lock();
        let k = sim.find_key_mut(hash_or_key).ok_or(ControlError::UnknownOpenRouterKey)?;
        let delta = usd - k.usage;
        k.usage = usd;
        let account = k.account;
        if let Some(a) = sim.or_accounts.get_mut(&account) {
            a.total_usage = (a.total_usage + delta).max(0.0);
        }
        Ok(())
    }

    /// Makes a key expired now (the API refuses past `expires_at` at creation).
    pub fn expire_openrouter_key(&self, hash_or_key: &str) -> Result<(), ControlError> {
        let mut sim = self.lock();
        let k = sim.find_key_mut(hash_or_key).ok_or(ControlError::UnknownOpenRouterKey)?;
        k.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
        Ok(())
    }

    /// Sets the total credits of the account that `hash_or_key` (usually the management key) belongs to.
    pub fn set_openrouter_credits(&self, hash_or_key: &str, total_credits: f64) -> Result<(), ControlError> {
        let mut sim = self.lock();
        let account = sim.find_key(hash_or_key).ok_or(ControlError::UnknownOpenRouterKey)?.account;
        if let Some(a) = sim.or_accounts.get_mut(&account) {
            a.total_credits = total_credits;
        }
        Ok(())
    }

    /// The money of the account that `hash_or_key` belongs to.
    pub fn openrouter_account(&self, hash_or_key: &str) -> Option<OpenRouterAccountInfo> {
        let sim = self.lock();
        let a = sim.or_accounts.get(&sim.find_key(hash_or_key)?.account)?;
        Some(OpenRouterAccountInfo { total_credits: money(a.total_credits), total_usage: money(a.total_usage) })
    }

    // ------------------------------------------------------------ Chutes

    /// Creates (or updates) a user; answers its `sub`.
    pub fn create_chutes_user(&self, username: &str, balance_usd: f64, daily_quota_left: bool) -> String {
        self.lock().upsert_chutes_user(username, balance_usd, daily_quota_left)
    }

    pub fn set_chutes_balance(&self, username: &str, usd: f64, quota_left: bool) -> Result<(), ControlError> {
        let mut sim = self.lock();
        let u = sim.chutes_users.get_mut(username).ok_or(ControlError::UnknownChutesUser)?;
        u.balance = usd;
        u.quota_left = quota_left;
        Ok(())
    }

    pub fn chutes_user(&self, username: &str) -> Option<ChutesUserInfo> {
        let sim = self.lock();
        let u = sim.chutes_users.get(username)?;
        Some(ChutesUserInfo {
            sub: u.sub.clone(),
            username: u.username.clone(),
            balance_usd: money(u.balance),
            quota_left: u.quota_left,
            created_at: rfc3339(u.created_at),
            refresh_tokens_alive: count_refresh(&sim, username, |rt| rt.state == RefreshState::Live && SystemTime::now() < rt.expires),
            revoked_tokens: count_refresh(&sim, username, |rt| rt.state == RefreshState::Revoked),
        })
    }

    /// Refresh tokens of this user that would be accepted now.
    pub fn chutes_refresh_tokens_alive(&self, username: &str) -> usize {
        let sim = self.lock();
        count_refresh(&sim, username, |rt| rt.state == RefreshState::Live && SystemTime::now() < rt.expires)
    }

    /// Refresh tokens of this user killed by revocation (the revoke endpoint, or a replay that
    /// revoked the family). Tokens merely rotated out by a refresh are not counted.
    pub fn chutes_revoked_tokens(&self, username: &str) -> usize {
        let sim = self.lock();
        count_refresh(&sim, username, |rt| rt.state == RefreshState::Revoked)
    }

    /// Access tokens of this user that would be accepted now.
    pub fn chutes_access_tokens_alive(&self, username: &str) -> usize {
        let sim = self.lock();
        sim.access_tokens.keys().filter(|t| sim.access_token_user(t) == Some(username)).count()
    }

    /// Expires every access token of this user now (so the next call needs a refresh);
    /// answers how many were live.
    pub fn expire_chutes_access_tokens(&self, username: &str) -> usize {
        let mut sim = self.lock();
        let now = SystemTime::now();
        let families: Vec<u64> = sim.families.iter().filter(|(_, f)| f.username == username).map(|(id, _)| *id).collect();
        let mut n = 0;
        for at in sim.access_tokens.values_mut().filter(|at| families.contains(&at.family)) {
            if at.expires > now {
                n += 1;
            }
            at.expires = now - Duration::from_secs(1);
        }
        n
    }

    /// An authorization code as if `username` had clicked Allow (the user is created with the
    /// default balance if unknown). Nothing is validated here; the token endpoint checks it.
    pub fn issue_chutes_code(&self, username: &str, client_id: &str, redirect_uri: &str, code_challenge: &str, scope: &str) -> String {
        let mut sim = self.lock();
        sim.ensure_chutes_user(username);
        sim.issue_code(username, client_id, redirect_uri, code_challenge, scope)
    }

    // ------------------------------------------------------------ faults, log, reset

    /// Adds a fault (after any already set; the first matching one wins).
    pub fn set_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub(crate) fn take_fault(&self, target: FaultTarget) -> Option<FaultKind> {
        take_fault(&mut self.lock().faults, target)
    }

    /// `(method, path)` of every provider request received, oldest first (no query strings, no bodies).
    pub fn request_log(&self) -> Vec<(String, String)> {
        self.lock().log.clone()
    }

    pub fn clear_request_log(&self) {
        self.lock().log.clear();
    }

    pub(crate) fn log_request(&self, method: &str, path: &str) {
        let mut sim = self.lock();
        if sim.log.len() >= 100_000 {
            sim.log.drain(..50_000);
        }
        sim.log.push((method.to_owned(), path.to_owned()));
    }

    /// Back to the start: everything forgotten, demo accounts re-seeded, faults and log cleared.
    /// The configuration is kept.
    pub fn reset(&self) {
        let mut sim = self.lock();
        let config = sim.config.clone();
        *sim = Sim::new(config);
    }
}

fn count_refresh(sim: &Sim, username: &str, pred: impl Fn(&crate::state::RefreshToken) -> bool) -> usize {
    sim.refresh_tokens.values().filter(|rt| sim.family_user(rt.family) == Some(username) && pred(rt)).count()
}

// ---------------------------------------------------------------- HTTP mirror

pub(crate) fn routes() -> Router<Control> {
    Router::new()
        .route("/_sim", get(dev_page))
        .route("/_sim/", get(dev_page))
        .route("/_sim/demo", get(demo))
        .route("/_sim/reset", post(reset))
        .route("/_sim/requests", get(requests).delete(clear_requests))
        .route("/_sim/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/_sim/openrouter/accounts", post(create_account))
        .route("/_sim/openrouter/inference-keys", post(create_inference_key))
        .route("/_sim/openrouter/keys", get(list_keys))
        .route("/_sim/openrouter/key-info", get(key_info))
        .route("/_sim/openrouter/keys/{hash}/usage", post(set_usage))
        .route("/_sim/openrouter/keys/{hash}/expire", post(expire_key))
        .route("/_sim/openrouter/credits", get(get_credits).post(set_credits))
        .route("/_sim/openrouter/propagation", post(set_propagation))
        .route("/_sim/chutes/users", post(create_user))
        .route("/_sim/chutes/users/{username}", get(get_user))
        .route("/_sim/chutes/users/{username}/balance", post(set_balance))
        .route("/_sim/chutes/users/{username}/expire-access-tokens", post(expire_access))
        .route("/_sim/chutes/codes", post(issue_code))
        .route("/_sim/chutes/idp-variant", get(get_idp_variant).post(set_idp_variant))
}

fn sim_error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({"error": message}))
}

fn not_found(e: ControlError) -> Response {
    sim_error(StatusCode::NOT_FOUND, &e.to_string())
}

fn ok() -> Response {
    json_response(StatusCode::OK, json!({"ok": true}))
}

/// JSON body extractor whose rejection is a JSON `{"error": ...}` 400.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let bytes = if bytes.is_empty() { axum::body::Bytes::from_static(b"{}") } else { bytes };
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| sim_error(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
    }
}

async fn demo(State(c): State<Control>) -> Response {
    json_response(StatusCode::OK, demo_json(&c))
}

fn demo_json(c: &Control) -> Value {
    let config = c.config();
    json!({
        "openrouter": {
            "management_key": DEMO_OPENROUTER_MANAGEMENT_KEY,
            "credits": DEMO_OPENROUTER_CREDITS,
        },
        "chutes": {
            "username": DEMO_CHUTES_USERNAME,
            "balance": DEMO_CHUTES_BALANCE,
            "client_id": config.chutes_client_id,
            "client_secret": config.chutes_client_secret,
            "redirect_uris": config.chutes_redirect_uris,
        },
    })
}

async fn reset(State(c): State<Control>) -> Response {
    c.reset();
    ok()
}

async fn requests(State(c): State<Control>) -> Response {
    let list: Vec<Value> = c.request_log().into_iter().map(|(m, p)| json!({"method": m, "path": p})).collect();
    json_response(StatusCode::OK, json!({"requests": list}))
}

async fn clear_requests(State(c): State<Control>) -> Response {
    c.clear_request_log();
    ok()
}

async fn list_faults(State(c): State<Control>) -> Response {
    json_response(StatusCode::OK, json!({"faults": c.faults()}))
}

async fn add_fault(State(c): State<Control>, JsonBody(f): JsonBody<Fault>) -> Response {
    if let FaultKind::Status(s) = f.kind
        && !(400..=599).contains(&s)
    {
        return sim_error(StatusCode::BAD_REQUEST, "status must be 400..=599");
    }
    if f.remaining == Some(0) {
        return sim_error(StatusCode::BAD_REQUEST, "remaining must be at least 1 (or null for until cleared)");
    }
    c.set_fault(f);
    json_response(StatusCode::CREATED, json!({"faults": c.faults()}))
}

async fn clear_faults(State(c): State<Control>) -> Response {
    c.clear_faults();
    ok()
}

#[derive(Deserialize)]
struct CreditsBody {
    #[serde(default)]
    credits: Option<f64>,
}

async fn create_account(State(c): State<Control>, JsonBody(b): JsonBody<CreditsBody>) -> Response {
    let key = c.create_openrouter_account(b.credits.unwrap_or(DEMO_OPENROUTER_CREDITS));
    json_response(StatusCode::CREATED, json!({"management_key": key, "hash": key_hash(&key)}))
}

async fn create_inference_key(State(c): State<Control>, JsonBody(b): JsonBody<CreditsBody>) -> Response {
    let key = c.create_openrouter_inference_key(b.credits.unwrap_or(DEMO_OPENROUTER_CREDITS));
    json_response(StatusCode::CREATED, json!({"key": key, "hash": key_hash(&key)}))
}

#[derive(Deserialize)]
struct ManagementKeyQuery {
    management_key: String,
}

async fn list_keys(State(c): State<Control>, Query(q): Query<ManagementKeyQuery>) -> Response {
    json_response(StatusCode::OK, json!({"data": c.list_openrouter_keys(&q.management_key)}))
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn key_info(State(c): State<Control>, Query(q): Query<KeyQuery>) -> Response {
    match c.openrouter_key_info(&q.key) {
        Some(info) => json_response(StatusCode::OK, json!({"data": info})),
        None => not_found(ControlError::UnknownOpenRouterKey),
    }
}

#[derive(Deserialize)]
struct UsageBody {
    usd: f64,
}

async fn set_usage(State(c): State<Control>, Path(hash): Path<String>, JsonBody(b): JsonBody<UsageBody>) -> Response {
    match c.set_openrouter_key_usage(&hash, b.usd) {
        Ok(()) => ok(),
        Err(e) => not_found(e),
    }
}

async fn expire_key(State(c): State<Control>, Path(hash): Path<String>) -> Response {
    match c.expire_openrouter_key(&hash) {
        Ok(()) => ok(),
        Err(e) => not_found(e),
    }
}

#[derive(Deserialize)]
struct SetCreditsBody {
    management_key: String,
    total_credits: f64,
}

async fn set_credits(State(c): State<Control>, JsonBody(b): JsonBody<SetCreditsBody>) -> Response {
    match c.set_openrouter_credits(&b.management_key, b.total_credits) {
        Ok(()) => ok(),
        Err(e) => not_found(e),
    }
}

async fn get_credits(State(c): State<Control>, Query(q): Query<ManagementKeyQuery>) -> Response {
    match c.openrouter_account(&q.management_key) {
        Some(a) => json_response(StatusCode::OK, json!({"data": a})),
        None => not_found(ControlError::UnknownOpenRouterKey),
    }
}

#[derive(Deserialize)]
struct PropagationBody {
    count: u32,
}

async fn set_propagation(State(c): State<Control>, JsonBody(b): JsonBody<PropagationBody>) -> Response {
    c.set_openrouter_propagation_401s(b.count);
    ok()
}

#[derive(Deserialize)]
struct UserBody {
    username: String,
    #[serde(default)]
    balance: Option<f64>,
    #[serde(default)]
    quota_left: bool,
}

async fn create_user(State(c): State<Control>, JsonBody(b): JsonBody<UserBody>) -> Response {
    if b.username.trim().is_empty() {
        return sim_error(StatusCode::BAD_REQUEST, "username is required");
    }
    let sub = c.create_chutes_user(&b.username, b.balance.unwrap_or(DEMO_CHUTES_BALANCE), b.quota_left);
    json_response(StatusCode::CREATED, json!({"sub": sub, "username": b.username}))
}

async fn get_user(State(c): State<Control>, Path(username): Path<String>) -> Response {
    match c.chutes_user(&username) {
        Some(u) => json_response(StatusCode::OK, json!(u)),
        None => not_found(ControlError::UnknownChutesUser),
    }
}

#[derive(Deserialize)]
struct BalanceBody {
    balance: f64,
    #[serde(default)]
    quota_left: bool,
}

async fn set_balance(State(c): State<Control>, Path(username): Path<String>, JsonBody(b): JsonBody<BalanceBody>) -> Response {
    match c.set_chutes_balance(&username, b.balance, b.quota_left) {
        Ok(()) => ok(),
        Err(e) => not_found(e),
    }
}

async fn expire_access(State(c): State<Control>, Path(username): Path<String>) -> Response {
    let n = c.expire_chutes_access_tokens(&username);
    json_response(StatusCode::OK, json!({"expired": n}))
}

#[derive(Deserialize)]
struct CodeBody {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    redirect_uri: String,
    code_challenge: String,
    #[serde(default)]
    scope: Option<String>,
}

async fn issue_code(State(c): State<Control>, JsonBody(b): JsonBody<CodeBody>) -> Response {
    let client_id = b.client_id.unwrap_or_else(|| c.config().chutes_client_id);
    let code = c.issue_chutes_code(
        b.username.as_deref().unwrap_or(DEMO_CHUTES_USERNAME),
        &client_id,
        &b.redirect_uri,
        &b.code_challenge,
        b.scope.as_deref().unwrap_or("openid profile chutes:invoke"),
    );
    json_response(StatusCode::CREATED, json!({"code": code}))
}

async fn get_idp_variant(State(c): State<Control>) -> Response {
    json_response(StatusCode::OK, json!(c.config().chutes_idp))
}

async fn set_idp_variant(State(c): State<Control>, JsonBody(v): JsonBody<crate::ChutesIdpVariant>) -> Response {
    c.set_chutes_idp_variant(v);
    json_response(StatusCode::OK, json!(v))
}

async fn dev_page(State(c): State<Control>) -> Html<String> {
    let config = c.config();
    let e = |s: &str| html_escape(s);
    let redirect_uris: String = config.chutes_redirect_uris.iter().map(|u| format!("<li><code>{}</code></li>", e(u))).collect();
    let demo = c.chutes_user(DEMO_CHUTES_USERNAME);
    let balance = demo.as_ref().map(|u| format!("${:.3}", u.balance_usd)).unwrap_or_else(|| "(not present)".into());
    let credits = c
        .openrouter_account(DEMO_OPENROUTER_MANAGEMENT_KEY)
        .map(|a| format!("${:.3} of ${:.2} used", a.total_usage, a.total_credits))
        .unwrap_or_default();
    let faults = c.faults();
    let faults = if faults.is_empty() { "none".to_owned() } else { e(&serde_json::to_string(&faults).unwrap_or_default()) };
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ORO provider simulator</title>
<style>body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5 }}
code {{ background: #f3f3f3; padding: 0 .2rem; word-break: break-all }} th, td {{ text-align: left; padding: .2rem .6rem .2rem 0; vertical-align: top }}</style>
</head>
<body><main>
<h1>ORO provider simulator</h1>
<p>A local stand-in for Chutes (OAuth IdP and inference) and OpenRouter (key management and inference).
Nothing here is real money. Everything is in memory and is lost on restart.</p>

<h2>Demo accounts</h2>
<table>
<tr><th scope="row">OpenRouter management key</th><td><code id="demo-openrouter-key">{mgmt}</code><br>{credits}</td></tr>
<tr><th scope="row">Chutes user</th><td><code id="demo-chutes-user">{user}</code>, balance {balance}. On the consent page, any other username is created with ${default_balance:.2}.</td></tr>
<tr><th scope="row">Chutes OAuth client</th><td>id <code>{client_id}</code>, secret <code>{client_secret}</code></td></tr>
<tr><th scope="row">Allowed redirect URIs</th><td><ul>{redirect_uris}</ul></td></tr>
<tr><th scope="row">Active faults</th><td>{faults}</td></tr>
</table>

<h2>Base URLs</h2>
<ul>
<li><code>ORO_CHUTES_API_BASE</code> = <code>{{root}}/chutes</code> (<code>/idp/authorize</code>, <code>/idp/token</code>, <code>/idp/token/revoke</code>, <code>/idp/userinfo</code>)</li>
<li><code>ORO_CHUTES_LLM_BASE</code> = <code>{{root}}/chutes-llm/v1</code> (<code>/chat/completions</code>, <code>/models</code>)</li>
<li><code>ORO_OPENROUTER_API_BASE</code> = <code>{{root}}/openrouter/api/v1</code> (<code>/key</code>, <code>/keys</code>, <code>/keys/{{hash}}</code>, <code>/credits</code>, <code>/chat/completions</code>, <code>/models</code>)</li>
</ul>

<h2>Control API (JSON)</h2>
<ul>
<li><code>GET /_sim/demo</code>, <code>POST /_sim/reset</code>, <code>GET|DELETE /_sim/requests</code></li>
<li><code>GET|POST|DELETE /_sim/faults</code>: <code>{{"target":"openrouter_chat","kind":{{"status":429}},"remaining":1}}</code>; kinds <code>{{"status":N}}</code>, <code>{{"delay_ms":N}}</code>, <code>"reset"</code></li>
<li><code>POST /_sim/openrouter/accounts {{"credits":10}}</code>, <code>POST /_sim/openrouter/inference-keys {{"credits":10}}</code>,
<code>GET /_sim/openrouter/keys?management_key=</code>, <code>GET /_sim/openrouter/key-info?key=</code>,
<code>POST /_sim/openrouter/keys/{{hash}}/usage {{"usd":1}}</code>, <code>POST /_sim/openrouter/keys/{{hash}}/expire</code>,
<code>GET|POST /_sim/openrouter/credits</code>, <code>POST /_sim/openrouter/propagation {{"count":2}}</code></li>
<li><code>POST /_sim/chutes/users {{"username","balance","quota_left"}}</code>, <code>GET /_sim/chutes/users/{{username}}</code>,
<code>POST /_sim/chutes/users/{{username}}/balance {{"balance","quota_left"}}</code>,
<code>POST /_sim/chutes/users/{{username}}/expire-access-tokens</code>,
<code>POST /_sim/chutes/codes {{"username","redirect_uri","code_challenge","scope"}}</code>,
<code>GET|POST /_sim/chutes/idp-variant {{"omit_rotated_refresh_token","client_auth":"any"|"basic_only","refresh_token_needs_offline_access","preferred_username_claim","userinfo_needs_profile_scope"}}</code></li>
</ul>
</main></body></html>
"#,
        mgmt = e(DEMO_OPENROUTER_MANAGEMENT_KEY),
        user = e(DEMO_CHUTES_USERNAME),
        default_balance = DEMO_CHUTES_BALANCE,
        client_id = e(&config.chutes_client_id),
        client_secret = e(&config.chutes_client_secret),
    ))
}
