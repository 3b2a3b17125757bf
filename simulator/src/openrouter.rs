//! OpenRouter: key management, credits and inference (`/openrouter/api/v1/...`).

use std::collections::HashMap;
use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::control::Control;
use crate::models::{MODELS, openrouter_model};
use crate::state::{OrKey, Sim, key_hash};
use crate::util::{bearer, completion_response, json_response, parse_chat, parse_form, parse_utc, random_hex, rfc3339, unix_secs};

/// What one chat completion costs, charged to the key's usage and the account's usage.
pub const CHAT_COST_USD: f64 = 0.002;
/// `GET /keys` page size.
pub const PAGE_SIZE: usize = 100;

pub(crate) fn routes() -> Router<Control> {
    Router::new()
        .route("/openrouter/api/v1/key", get(current_key))
        .route("/openrouter/api/v1/keys", get(list_keys).post(create_key))
        .route("/openrouter/api/v1/keys/{hash}", get(get_key).patch(patch_key).delete(delete_key))
        .route("/openrouter/api/v1/credits", get(credits))
        .route("/openrouter/api/v1/chat/completions", post(chat))
        .route("/openrouter/api/v1/models", get(models))
}

/// An OpenRouter error: `{"error": {"code", "message", "metadata"}}` with HTTP status = code.
pub(crate) struct OrError {
    status: StatusCode,
    message: String,
    metadata: Value,
}

impl IntoResponse for OrError {
    fn into_response(self) -> Response {
        json_response(self.status, json!({"error": {"code": self.status.as_u16(), "message": self.message, "metadata": self.metadata}}))
    }
}

type OrResult<T = Response> = Result<T, OrError>;

pub(crate) fn error(status: u16, message: &str, metadata: Value) -> OrError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    OrError { status, message: message.to_owned(), metadata }
}

fn bad_request(message: &str) -> OrError {
    error(400, message, Value::Null)
}

fn not_found() -> OrError {
    error(404, "Key not found", Value::Null)
}

/// Money as OpenRouter shows it (no float dust).
pub(crate) fn money(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// `sk-or-v1-abc...xyz`.
pub(crate) fn label(secret: &str) -> String {
    let body = secret.strip_prefix("sk-or-v1-").unwrap_or(secret);
    let n = body.len();
    if n < 6 {
        return format!("sk-or-v1-{body}");
    }
    format!("sk-or-v1-{}...{}", &body[..3], &body[n - 3..])
}

pub(crate) fn new_secret() -> String {
    format!("sk-or-v1-{}", random_hex(64))
}

fn limit_remaining(k: &OrKey) -> Value {
    match k.limit {
        Some(l) => json!(money((l - k.usage).max(0.0))),
        None => Value::Null,
    }
}

fn key_object(k: &OrKey) -> Value {
    json!({
        "hash": k.hash,
        "name": k.name,
        "label": label(&k.secret),
        "disabled": k.disabled,
        "limit": k.limit,
        "limit_remaining": limit_remaining(k),
        "limit_reset": k.limit_reset,
        "include_byok_in_limit": k.include_byok_in_limit,
        "usage": money(k.usage),
        "created_at": rfc3339(k.created_at),
        "updated_at": k.updated_at.map(rfc3339),
        "expires_at": k.expires_at.map(rfc3339),
    })
}

fn is_expired(k: &OrKey) -> bool {
    k.expires_at.is_some_and(|t| SystemTime::now() >= t)
}

/// The calling key's hash. `propagation` says whether this use counts against a freshly
/// minted key's propagation window (`/key` and `/chat/completions` do).
fn authenticate(sim: &mut Sim, headers: &HeaderMap, propagation: bool) -> OrResult<String> {
    let Some(token) = bearer(headers) else {
        return Err(error(401, "No auth credentials found", Value::Null));
    };
    let Some(key) = sim.or_keys.get_mut(&key_hash(&token)) else {
        return Err(error(401, "User not found.", Value::Null));
    };
    if key.deleted {
        return Err(error(401, "User not found.", Value::Null));
    }
    if propagation && key.propagation_left > 0 {
        key.propagation_left -= 1;
        return Err(error(401, "User not found.", Value::Null));
    }
    if key.disabled {
        return Err(error(401, "Key is disabled", Value::Null));
    }
    if is_expired(key) {
        return Err(error(401, "Key has expired", Value::Null));
    }
    Ok(key.hash.clone())
}

fn authenticate_management(sim: &mut Sim, headers: &HeaderMap) -> OrResult<String> {
    let hash = authenticate(sim, headers, false)?;
    if !sim.or_keys[&hash].is_management {
        return Err(error(403, "Only management keys can perform this operation", Value::Null));
    }
    Ok(hash)
}

async fn current_key(State(control): State<Control>, headers: HeaderMap) -> OrResult {
    let mut sim = control.lock();
    let hash = authenticate(&mut sim, &headers, true)?;
    let k = &sim.or_keys[&hash];
    let is_free_tier = sim.or_accounts.get(&k.account).is_none_or(|a| a.total_credits <= 0.0);
    Ok(json_response(
        StatusCode::OK,
        json!({"data": {
            "label": label(&k.secret),
            "limit": k.limit,
            "limit_remaining": limit_remaining(k),
            "limit_reset": k.limit_reset,
            "usage": money(k.usage),
            "is_free_tier": is_free_tier,
            "is_management_key": k.is_management,
            "is_provisioning_key": k.is_management,
            "include_byok_in_limit": k.include_byok_in_limit,
            "expires_at": k.expires_at.map(rfc3339),
            "rate_limit": {"requests": -1, "interval": "10s"},
        }}),
    ))
}

fn parse_object(body: &[u8]) -> OrResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("The request body must be a JSON object")),
        Err(e) => Err(bad_request(&format!("Invalid JSON body: {e}"))),
    }
}

fn parse_limit(v: Option<&Value>) -> OrResult<Option<Option<f64>>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(l) if l >= 0.0 && l.is_finite() => Ok(Some(Some(l))),
            _ => Err(bad_request("limit must be a non-negative number of USD")),
        },
        Some(_) => Err(bad_request("limit must be a number or null")),
    }
}

fn parse_limit_reset(v: Option<&Value>) -> OrResult<Option<Option<String>>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if matches!(s.as_str(), "daily" | "weekly" | "monthly") => Ok(Some(Some(s.clone()))),
        Some(_) => Err(bad_request("limit_reset must be null, \"daily\", \"weekly\" or \"monthly\"")),
    }
}

fn parse_bool(v: Option<&Value>, field: &str) -> OrResult<Option<bool>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad_request(&format!("{field} must be a boolean"))),
    }
}

fn parse_name(v: Option<&Value>) -> OrResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
        Some(_) => Err(bad_request("name must be a non-empty string")),
    }
}

async fn create_key(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    let parsed = (|| {
        let b = parse_object(&body)?;
        let name = parse_name(b.get("name"))?.ok_or_else(|| bad_request("name is required"))?;
        let limit = parse_limit(b.get("limit"))?.flatten();
        let limit_reset = parse_limit_reset(b.get("limit_reset"))?.flatten();
        let byok = parse_bool(b.get("include_byok_in_limit"), "include_byok_in_limit")?.unwrap_or(false);
        let expires_at = match b.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                let t = parse_utc(s).map_err(bad_request)?;
                if t <= SystemTime::now() {
                    return Err(bad_request("expires_at must be in the future"));
                }
                Some(t)
            }
            Some(_) => {
                return Err(bad_request("expires_at must be an ISO 8601 UTC timestamp or null"));
            }
        };
        Ok::<_, OrError>((name, limit, limit_reset, byok, expires_at))
    })();
    let (name, limit, limit_reset, include_byok_in_limit, expires_at) = parsed?;
    let secret = new_secret();
    let hash = key_hash(&secret);
    let seq = sim.next_seq();
    let account = sim.or_keys[&mgmt].account;
    let key = OrKey {
        hash: hash.clone(),
        secret: secret.clone(),
        name,
        account,
        is_management: false,
        minted_by: Some(mgmt),
        disabled: false,
        limit,
        limit_reset,
        include_byok_in_limit,
        usage: 0.0,
        created_at: SystemTime::now(),
        updated_at: None,
        expires_at,
        deleted: false,
        propagation_left: sim.config.openrouter_propagation_401s,
        seq,
    };
    let data = key_object(&key);
    sim.or_keys.insert(hash, key);
    Ok(json_response(StatusCode::CREATED, json!({"data": data, "key": secret})))
}

async fn list_keys(State(control): State<Control>, headers: HeaderMap, RawQuery(query): RawQuery) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    let (q, _): (HashMap<String, String>, _) = parse_form(query.unwrap_or_default().as_bytes());
    let include_disabled = match q.get("include_disabled").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_request("include_disabled must be true or false")),
    };
    let offset = match q.get("offset").map(|o| o.parse::<usize>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return Err(bad_request("offset must be a non-negative integer")),
    };
    let mut keys: Vec<&OrKey> = sim
        .or_keys
        .values()
        .filter(|k| k.minted_by.as_deref() == Some(mgmt.as_str()) && !k.deleted && (include_disabled || !k.disabled))
        .collect();
    keys.sort_by_key(|k| k.seq);
    let data: Vec<Value> = keys.into_iter().skip(offset).take(PAGE_SIZE).map(key_object).collect();
    Ok(json_response(StatusCode::OK, json!({"data": data})))
}

/// The minted key `hash` if the management key `mgmt` owns it and it is not deleted.
fn owned_key<'a>(sim: &'a mut Sim, mgmt: &str, hash: &str) -> Option<&'a mut OrKey> {
    sim.or_keys.get_mut(hash).filter(|k| k.minted_by.as_deref() == Some(mgmt) && !k.deleted)
}

async fn get_key(State(control): State<Control>, headers: HeaderMap, Path(hash): Path<String>) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    match owned_key(&mut sim, &mgmt, &hash) {
        Some(k) => Ok(json_response(StatusCode::OK, json!({"data": key_object(k)}))),
        None => Err(not_found()),
    }
}

async fn patch_key(State(control): State<Control>, headers: HeaderMap, Path(hash): Path<String>, body: Bytes) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    if owned_key(&mut sim, &mgmt, &hash).is_none() {
        return Err(not_found());
    }
    let parsed = (|| {
        let b = parse_object(&body)?;
        if b.contains_key("expires_at") {
            return Err(bad_request("expires_at cannot be changed after a key is created"));
        }
        Ok::<_, OrError>((
            parse_name(b.get("name"))?,
            parse_bool(b.get("disabled"), "disabled")?,
            parse_limit(b.get("limit"))?,
            parse_limit_reset(b.get("limit_reset"))?,
            parse_bool(b.get("include_byok_in_limit"), "include_byok_in_limit")?,
        ))
    })();
    let (name, disabled, limit, limit_reset, byok) = parsed?;
    let Some(k) = owned_key(&mut sim, &mgmt, &hash) else {
        return Err(not_found());
    };
    if let Some(n) = name {
        k.name = n;
    }
    if let Some(d) = disabled {
        k.disabled = d;
    }
    if let Some(l) = limit {
        k.limit = l;
    }
    if let Some(r) = limit_reset {
        k.limit_reset = r;
    }
    if let Some(b) = byok {
        k.include_byok_in_limit = b;
    }
    k.updated_at = Some(SystemTime::now());
    Ok(json_response(StatusCode::OK, json!({"data": key_object(k)})))
}

async fn delete_key(State(control): State<Control>, headers: HeaderMap, Path(hash): Path<String>) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    match owned_key(&mut sim, &mgmt, &hash) {
        Some(k) => {
            k.deleted = true;
            k.updated_at = Some(SystemTime::now());
            Ok(json_response(StatusCode::OK, json!({"deleted": true})))
        }
        None => Err(not_found()),
    }
}

async fn credits(State(control): State<Control>, headers: HeaderMap) -> OrResult {
    let mut sim = control.lock();
    let mgmt = authenticate_management(&mut sim, &headers)?;
    let account = &sim.or_accounts[&sim.or_keys[&mgmt].account];
    Ok(json_response(
        StatusCode::OK,
        json!({"data": {"total_credits": money(account.total_credits), "total_usage": money(account.total_usage)}}),
    ))
}

async fn chat(State(control): State<Control>, headers: HeaderMap, body: Bytes) -> OrResult {
    let mut sim = control.lock();
    let hash = authenticate(&mut sim, &headers, true)?;
    if sim.or_keys[&hash].is_management {
        return Err(error(403, "Management keys cannot be used for inference; create an API key with POST /keys", Value::Null));
    }
    let req = parse_chat(&body).map_err(|msg| bad_request(&msg))?;
    let Some(model) = openrouter_model(&req.model) else {
        return Err(bad_request(&format!("{} is not a valid model ID", req.model)));
    };
    let key = &sim.or_keys[&hash];
    if key.limit.is_some_and(|l| key.usage >= l - 1e-12) {
        return Err(error(
            402,
            "Key limit exceeded (total limit). Manage it using https://openrouter.ai/settings/keys",
            json!({"limit_source": "openrouter_key_limit"}),
        ));
    }
    let account_id = key.account;
    let Some(account) = sim.or_accounts.get_mut(&account_id) else {
        return Err(error(401, "User not found.", Value::Null));
    };
    if account.total_usage >= account.total_credits - 1e-12 {
        return Err(error(
            402,
            "Insufficient credits. This account never purchased credits or has run out. Add more at https://openrouter.ai/settings/credits",
            json!({"limit_source": "openrouter_credits"}),
        ));
    }
    account.total_usage += CHAT_COST_USD;
    if let Some(k) = sim.or_keys.get_mut(&hash) {
        k.usage += CHAT_COST_USD;
    }
    drop(sim);
    Ok(completion_response(
        &req,
        model,
        "gen-",
        json!({"provider": "Simulated", "system_fingerprint": null}),
        json!({"cost": CHAT_COST_USD}),
    ))
}

async fn models() -> Response {
    let created = unix_secs(SystemTime::now());
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(_, id)| {
            json!({
                "id": id,
                "canonical_slug": id,
                "name": id,
                "created": created,
                "context_length": 131072,
                "pricing": {"prompt": "0.0000003", "completion": "0.0000012", "request": "0", "image": "0"},
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({"data": data}))
}
