//! What a page shows when a server function fails: one sentence saying what to do next.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Not signed in (or the session ended).
    #[error("You are not signed in: connect your wallet to continue.")]
    NotSignedIn,
    /// The service refused or failed, with its own explanation.
    #[error("{0}")]
    Refused(String),
    /// The request did not reach the server or its answer did not come back.
    #[error("The request failed ({0}). Check your connection and try again.")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

/// Answers a failed server function with `status` instead of server_fn's blanket 500, so that a
/// miner's mistake is a 4xx (and no operator alert); the page reads the error from the body
/// either way.
#[cfg(feature = "ssr")]
pub fn answer_with(status: u16) {
    let server_function = leptos::prelude::use_context::<http::request::Parts>().is_some_and(|p| p.uri.path().starts_with("/api/"));
    if !server_function {
        return;
    }
    if let (Some(response), Ok(status)) =
        (leptos::prelude::use_context::<leptos_axum::ResponseOptions>(), axum::http::StatusCode::from_u16(status))
    {
        response.set_status(status);
    }
}

#[cfg(feature = "ssr")]
impl From<service::ServiceError> for AppError {
    fn from(e: service::ServiceError) -> Self {
        answer_with(e.status());
        if e.status() >= 500 && !e.is_upstream() {
            tracing::error!(error = ?e, "server function failed");
            return AppError::Refused("The service could not complete this request; try again in a moment.".into());
        }
        if e.status() >= 500 {
            tracing::warn!(error = %e, "provider trouble");
        } else {
            tracing::info!(status = e.status(), detail = %e, "refused");
        }
        AppError::Refused(e.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<service::auth::AuthError> for AppError {
    fn from(e: service::auth::AuthError) -> Self {
        service::ServiceError::from(e).into()
    }
}

#[cfg(feature = "ssr")]
impl From<service::connections::ConnectionError> for AppError {
    fn from(e: service::connections::ConnectionError) -> Self {
        service::ServiceError::from(e).into()
    }
}

#[cfg(feature = "ssr")]
impl From<service::rate_limit::RateLimitError> for AppError {
    fn from(e: service::rate_limit::RateLimitError) -> Self {
        service::ServiceError::from(e).into()
    }
}
