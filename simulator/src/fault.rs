//! Failure switches: what can fail, how, and the middleware that applies them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::control::Control;
use crate::util::json_response;

/// Which provider endpoint a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// `POST /chutes/idp/token` (both grants).
    ChutesToken,
    /// `POST /chutes/idp/token/revoke`.
    ChutesRevoke,
    /// `GET /chutes/idp/userinfo`.
    ChutesUserinfo,
    /// `POST /chutes-llm/v1/chat/completions`.
    ChutesChat,
    /// `GET /chutes-llm/v1/models`.
    ChutesModels,
    /// `GET /openrouter/api/v1/key`.
    #[serde(rename = "openrouter_key")]
    OpenRouterKey,
    /// `POST /openrouter/api/v1/keys`.
    #[serde(rename = "openrouter_keys_create")]
    OpenRouterKeysCreate,
    /// `GET /openrouter/api/v1/keys/{hash}`.
    #[serde(rename = "openrouter_keys_get")]
    OpenRouterKeysGet,
    /// `PATCH /openrouter/api/v1/keys/{hash}`.
    #[serde(rename = "openrouter_keys_patch")]
    OpenRouterKeysPatch,
    /// `GET /openrouter/api/v1/keys`.
    #[serde(rename = "openrouter_keys_list")]
    OpenRouterKeysList,
    /// `DELETE /openrouter/api/v1/keys/{hash}`.
    #[serde(rename = "openrouter_keys_delete")]
    OpenRouterKeysDelete,
    /// `GET /openrouter/api/v1/credits`.
    #[serde(rename = "openrouter_credits")]
    OpenRouterCredits,
    /// `POST /openrouter/api/v1/chat/completions`.
    #[serde(rename = "openrouter_chat")]
    OpenRouterChat,
    /// `GET /openrouter/api/v1/models`.
    #[serde(rename = "openrouter_models")]
    OpenRouterModels,
    /// Every provider endpoint above (not `/idp/authorize`, not `/_sim`).
    Any,
}

/// How a faulted request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FaultKindWire", into = "FaultKindWire")]
pub enum FaultKind {
    /// Answer this status with the provider's own error body shape.
    Status(u16),
    /// Answer normally, but only after this delay.
    Delay(Duration),
    /// Do the work at once, but answer only after this delay: a client that gives up first
    /// never learns what was done (a key minted, a token rotated).
    DelayAnswer(Duration),
    /// Close the connection without answering (a 502 when the router is served without the
    /// simulator's own connection loop).
    Reset,
}

/// JSON: `{"status": 429}`, `{"delay_ms": 1500}`, `{"delay_answer_ms": 1500}` or `"reset"`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultKindWire {
    Status(u16),
    DelayMs(u64),
    DelayAnswerMs(u64),
    Reset,
}

impl From<FaultKindWire> for FaultKind {
    fn from(w: FaultKindWire) -> Self {
        match w {
            FaultKindWire::Status(s) => FaultKind::Status(s),
            FaultKindWire::DelayMs(ms) => FaultKind::Delay(Duration::from_millis(ms)),
            FaultKindWire::DelayAnswerMs(ms) => FaultKind::DelayAnswer(Duration::from_millis(ms)),
            FaultKindWire::Reset => FaultKind::Reset,
        }
    }
}

impl From<FaultKind> for FaultKindWire {
    fn from(k: FaultKind) -> Self {
        match k {
            FaultKind::Status(s) => FaultKindWire::Status(s),
            FaultKind::Delay(d) => FaultKindWire::DelayMs(d.as_millis().min(u128::from(u64::MAX)) as u64),
            FaultKind::DelayAnswer(d) => FaultKindWire::DelayAnswerMs(d.as_millis().min(u128::from(u64::MAX)) as u64),
            FaultKind::Reset => FaultKindWire::Reset,
        }
    }
}

/// A failure switch. `remaining: None` fails every matching request until cleared;
/// `Some(n)` fails the next `n` and then removes itself. When several faults match a
/// request, the one set first wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub target: FaultTarget,
    pub kind: FaultKind,
    #[serde(default)]
    pub remaining: Option<u32>,
}

impl Fault {
    pub fn new(target: FaultTarget, kind: FaultKind, remaining: Option<u32>) -> Self {
        Fault { target, kind, remaining }
    }
}

/// Consumes one use of the first fault matching `target`.
pub(crate) fn take_fault(faults: &mut Vec<Fault>, target: FaultTarget) -> Option<FaultKind> {
    let i = faults.iter().position(|f| (f.target == target || f.target == FaultTarget::Any) && f.remaining != Some(0))?;
    let kind = faults[i].kind;
    if let Some(n) = faults[i].remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(i);
        }
    }
    Some(kind)
}

/// Put into every request's extensions by the simulator's connection loop: notifying it
/// drops the connection without an answer.
#[derive(Clone)]
pub(crate) struct ConnKill(pub Arc<Notify>);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    ChutesIdp,
    ChutesLlm,
    OpenRouter,
}

fn classify(method: &Method, path: &str) -> Option<(FaultTarget, Family)> {
    use FaultTarget::*;
    let path = path.trim_end_matches('/');
    if let Some(rest) = path.strip_prefix("/chutes/idp") {
        let t = match (method.as_str(), rest) {
            ("POST", "/token") => ChutesToken,
            ("POST", "/token/revoke") => ChutesRevoke,
            ("GET", "/userinfo") => ChutesUserinfo,
            _ => return None,
        };
        return Some((t, Family::ChutesIdp));
    }
    if let Some(rest) = path.strip_prefix("/chutes-llm/v1") {
        let t = match (method.as_str(), rest) {
            ("POST", "/chat/completions") => ChutesChat,
            ("GET", "/models") => ChutesModels,
            _ => return None,
        };
        return Some((t, Family::ChutesLlm));
    }
    if let Some(rest) = path.strip_prefix("/openrouter/api/v1") {
        let t = match (method.as_str(), rest) {
            ("GET", "/key") => OpenRouterKey,
            ("POST", "/keys") => OpenRouterKeysCreate,
            ("GET", "/keys") => OpenRouterKeysList,
            ("GET", r) if is_key_path(r) => OpenRouterKeysGet,
            ("PATCH", r) if is_key_path(r) => OpenRouterKeysPatch,
            ("DELETE", r) if is_key_path(r) => OpenRouterKeysDelete,
            ("GET", "/credits") => OpenRouterCredits,
            ("POST", "/chat/completions") => OpenRouterChat,
            ("GET", "/models") => OpenRouterModels,
            _ => return None,
        };
        return Some((t, Family::OpenRouter));
    }
    None
}

fn is_key_path(rest: &str) -> bool {
    rest.strip_prefix("/keys/").is_some_and(|h| !h.is_empty() && !h.contains('/'))
}

/// Records the request (method and path only) and applies any matching fault.
pub(crate) async fn log_and_fault(State(control): State<Control>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    if !path.starts_with("/_sim") {
        control.log_request(method.as_str(), &path);
    }
    let Some((target, family)) = classify(&method, &path) else {
        return next.run(req).await;
    };
    match control.take_fault(target) {
        None => next.run(req).await,
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(FaultKind::DelayAnswer(d)) => {
            // The handler runs to completion on its own task, whatever the client does.
            let response = tokio::spawn(next.run(req)).await;
            tokio::time::sleep(d).await;
            response.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(FaultKind::Status(code)) => status_response(family, target, code),
        Some(FaultKind::Reset) => match req.extensions().get::<ConnKill>() {
            Some(kill) => {
                kill.0.notify_one();
                // The connection task drops this future together with the connection.
                std::future::pending::<Response>().await
            }
            None => status_response(family, target, 502),
        },
    }
}

fn status_response(family: Family, target: FaultTarget, code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = match family {
        Family::ChutesIdp if target != FaultTarget::ChutesUserinfo && status.as_u16() == 400 => {
            json!({"error": "invalid_grant", "error_description": "simulated fault"})
        }
        Family::ChutesIdp if target != FaultTarget::ChutesUserinfo && status.as_u16() == 401 => {
            json!({"error": "invalid_client", "error_description": "simulated fault"})
        }
        Family::ChutesIdp | Family::ChutesLlm => match status.as_u16() {
            401 => json!({"detail": "Invalid token."}),
            402 => json!({"detail": {"message": crate::chutes::QUOTA_MESSAGE}}),
            404 => json!({"detail": "model not found"}),
            429 => json!({"detail": "infra_overload"}),
            _ => json!({"detail": reason}),
        },
        Family::OpenRouter => {
            let (message, metadata) = match status.as_u16() {
                401 => ("User not found.".to_owned(), json!(null)),
                402 => (
                    "Insufficient credits. This account never purchased credits or has run out. Add more at https://openrouter.ai/settings/credits".to_owned(),
                    json!({"limit_source": "openrouter_credits"}),
                ),
                429 => ("Rate limit exceeded".to_owned(), json!(null)),
                502 => ("Provider returned error".to_owned(), json!(null)),
                _ => (reason.to_owned(), json!(null)),
            };
            json!({"error": {"code": status.as_u16(), "message": message, "metadata": metadata}})
        }
    };
    let mut resp = json_response(status, body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if status == StatusCode::UNAUTHORIZED && family == Family::ChutesIdp && target != FaultTarget::ChutesUserinfo {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"chutes\""));
    }
    resp.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let f: Fault = serde_json::from_str(r#"{"target":"openrouter_chat","kind":{"status":402},"remaining":2}"#).unwrap();
        assert_eq!(f, Fault::new(FaultTarget::OpenRouterChat, FaultKind::Status(402), Some(2)));
        let f: Fault = serde_json::from_str(r#"{"target":"any","kind":"reset"}"#).unwrap();
        assert_eq!(f.kind, FaultKind::Reset);
        assert_eq!(f.remaining, None);
        let f: Fault = serde_json::from_str(r#"{"target":"chutes_chat","kind":{"delay_ms":250},"remaining":null}"#).unwrap();
        assert_eq!(f.kind, FaultKind::Delay(Duration::from_millis(250)));
        assert_eq!(serde_json::to_value(f).unwrap()["kind"], json!({"delay_ms": 250}));
    }

    #[test]
    fn remaining_counts_down_then_clears() {
        let mut faults = vec![Fault::new(FaultTarget::Any, FaultKind::Status(500), Some(2))];
        assert_eq!(take_fault(&mut faults, FaultTarget::ChutesChat), Some(FaultKind::Status(500)));
        assert_eq!(faults[0].remaining, Some(1));
        assert_eq!(take_fault(&mut faults, FaultTarget::OpenRouterKey), Some(FaultKind::Status(500)));
        assert!(faults.is_empty());
        assert_eq!(take_fault(&mut faults, FaultTarget::OpenRouterKey), None);
    }
}
