//! Every error leaves the API in FastAPI's shape, `{"detail": "..."}`, with the status the
//! SDK expects; 422 bodies carry `{"detail": [{loc, msg, type}]}`. Internal errors are logged
//! with their cause and answered with a plain sentence: no secret and no SQL reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use service::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Service(#[from] service::ServiceError),
    /// A body that does not parse: FastAPI's 422 with the field that failed.
    #[error("{msg}")]
    Validation { loc: Vec<String>, msg: String, kind: &'static str },
    #[error("{1}")]
    Status(StatusCode, String),
}

impl From<service::rate_limit::RateLimitError> for ApiError {
    fn from(e: service::rate_limit::RateLimitError) -> Self {
        ApiError::Service(e.into())
    }
}

impl ApiError {
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            ApiError::Service(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            ApiError::Service(e) => StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Status(s, _) => *s,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Validation { loc, msg, kind } = &self {
            return (status, Json(json!({"detail": [{"loc": loc, "msg": msg, "type": kind}]}))).into_response();
        }
        let detail = if status.is_server_error() {
            match &self {
                // Provider trouble is worth telling: it is not our bug and not the caller's.
                ApiError::Service(e) if e.is_upstream() => {
                    tracing::warn!(error = %self, "provider trouble");
                    self.to_string()
                }
                // Our own sentences (a route of ORO's backend, readiness).
                ApiError::Status(..) => self.to_string(),
                _ => {
                    tracing::error!(error = ?self, "request failed");
                    "internal error: the service could not complete this request; try again".to_owned()
                }
            }
        } else {
            // The caller's mistake or a refusal, not an incident: info, not an alert.
            tracing::info!(status = status.as_u16(), detail = %self, "refused");
            self.to_string()
        };
        // oro-sdk parses every 422 as FastAPI's list (a text would crash it): a refusal the
        // domain calls a bad value is one entry, at the field it names.
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let loc = match &self {
                ApiError::Service(e) => e.field().map(|f| vec!["body", f]).unwrap_or_else(|| vec!["body"]),
                _ => vec!["body"],
            };
            return (status, Json(json!({"detail": [{"loc": loc, "msg": detail, "type": "value_error"}]}))).into_response();
        }
        let mut body = json!({"detail": detail});
        if let ApiError::Service(service::ServiceError::Run(e)) = &self
            && let (Some(extra), Some(map)) = (e.extra_fields(), body.as_object_mut())
            && let Some(extra) = extra.as_object()
        {
            map.extend(extra.clone());
        }
        if let ApiError::Service(service::ServiceError::RateLimited(e)) = &self
            && let (Some(seconds), Some(map)) = (e.retry_after_secs(), body.as_object_mut())
        {
            // The SDK's own code for this (its 429 models know no other besides the cooldown).
            map.insert("error_code".into(), json!("RATE_LIMIT_EXCEEDED"));
            map.insert("retry_after_seconds".into(), json!(seconds));
        }
        let mut response = (status, Json(body)).into_response();
        // A refused-for-now answer says when to come back (rate limits, submit cooldown).
        if let Some(seconds) = self.retry_after_secs()
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}
