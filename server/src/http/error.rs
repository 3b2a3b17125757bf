//! Every error leaves the API in FastAPI's shape, `{"detail": "..."}`, with the status the
//! SDK expects; 422 bodies carry `{"detail": [{loc, msg, type}]}`. Internal errors are logged
//! with their cause and answered with a plain sentence: no secret and no SQL reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use service::auth::AuthError;
use service::clock;
use service::failure::Failure;
use service::runs::RunError;

/// The one place a kind of failure becomes an HTTP status for the API.
pub fn status_for(failure: Failure) -> StatusCode {
    match failure {
        Failure::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        Failure::Refused => StatusCode::BAD_REQUEST,
        Failure::NoCredits => StatusCode::PAYMENT_REQUIRED,
        Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
        Failure::Forbidden => StatusCode::FORBIDDEN,
        Failure::NotFound => StatusCode::NOT_FOUND,
        Failure::Conflict => StatusCode::CONFLICT,
        Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Failure::TooSoon => StatusCode::TOO_MANY_REQUESTS,
        Failure::ProviderUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        Failure::ProviderFailed => StatusCode::BAD_GATEWAY,
        Failure::ProviderTimeout => StatusCode::GATEWAY_TIMEOUT,
        Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Extra fields of oro-sdk's error models for a run's refusal (`error_code`,
/// `remaining_seconds`, ...): what its generated client parses.
fn sdk_fields(error: &RunError) -> Option<serde_json::Value> {
    Some(match error {
        // No code of the SDK's 400 models fits, and any other code crashes its parser: the
        // sentence alone (it parses as the first 400 model and prints the detail).
        RunError::NoProviderConnected => return None,
        RunError::InvalidAgentName => json!({"error_code": "INVALID_AGENT_NAME"}),
        RunError::InvalidFile(_) => json!({"error_code": "INVALID_FILE"}),
        RunError::FileTooLarge => json!({"error_code": "FILE_TOO_LARGE"}),
        RunError::Cooldown { remaining_seconds, next_allowed_at } => json!({
            "error_code": "COOLDOWN_ACTIVE",
            "remaining_seconds": remaining_seconds,
            "next_allowed_at": clock::rfc3339(*next_allowed_at),
        }),
        RunError::NotFound => json!({"error_code": "EVAL_RUN_NOT_FOUND"}),
        RunError::AgentVersionNotFound => json!({"error_code": "AGENT_VERSION_NOT_FOUND"}),
        RunError::AgentNotFound => json!({"error_code": "AGENT_NOT_FOUND"}),
        RunError::NotYours => json!({"error_code": "NOT_RUN_OWNER"}),
        RunError::LeaseExpired => json!({"error_code": "LEASE_EXPIRED"}),
        RunError::AlreadyComplete(_) => json!({"error_code": "RUN_ALREADY_COMPLETE"}),
        RunError::AtCapacity => json!({"error_code": "AT_CAPACITY"}),
        _ => return None,
    })
}

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

/// The domain's errors reach the API through `ServiceError`, so a handler's `?` is enough.
macro_rules! through_service {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                ApiError::Service(e.into())
            }
        })*
    };
}

through_service!(
    service::rate_limit::RateLimitError,
    service::runs::RunError,
    service::connections::ConnectionError,
    service::catalog::CatalogError,
    service::budget::BudgetError,
);

impl ApiError {
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            ApiError::Service(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(e) => status_for(e.failure()),
            ApiError::Service(e) => status_for(e.failure()),
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
        // domain calls invalid is one entry, at the field it names.
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            let loc = match &self {
                ApiError::Service(e) => e.field().map(|f| vec!["body", f]).unwrap_or_else(|| vec!["body"]),
                _ => vec!["body"],
            };
            return (status, Json(json!({"detail": [{"loc": loc, "msg": detail, "type": "value_error"}]}))).into_response();
        }
        let mut body = json!({"detail": detail});
        if let ApiError::Service(service::ServiceError::Run(e)) = &self
            && let (Some(extra), Some(map)) = (sdk_fields(e), body.as_object_mut())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages' server functions answer with the API's statuses: one meaning per kind.
    #[test]
    fn the_pages_and_the_api_give_a_failure_the_same_status() {
        for failure in Failure::ALL {
            assert_eq!(app::error::status_for(failure), status_for(failure).as_u16(), "{failure:?}");
            // Ours or the provider's: a 5xx; the caller's: a 4xx.
            assert_eq!(status_for(failure).is_server_error(), failure.is_ours_or_provider(), "{failure:?}");
        }
    }
}
