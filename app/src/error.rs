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

/// The one place a kind of failure becomes the status of a page's server function. The
/// same statuses as the API's (`server/src/http/error.rs`): logs and metrics read alike.
#[cfg(feature = "ssr")]
pub fn status_for(failure: service::failure::Failure) -> u16 {
    use service::failure::Failure;
    match failure {
        Failure::Invalid => 422,
        Failure::Refused => 400,
        Failure::NoCredits => 402,
        Failure::Unauthenticated => 401,
        Failure::Forbidden => 403,
        Failure::NotFound => 404,
        Failure::Conflict => 409,
        Failure::TooLarge => 413,
        Failure::TooSoon => 429,
        Failure::ProviderUnavailable => 503,
        Failure::ProviderFailed => 502,
        Failure::ProviderTimeout => 504,
        Failure::Internal => 500,
    }
}

/// A server function's failure: answered with its status, then said as `AppError::of` says it.
#[cfg(feature = "ssr")]
impl From<service::ServiceError> for AppError {
    fn from(e: service::ServiceError) -> Self {
        answer_with(status_for(e.failure()));
        AppError::of(e)
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The sentence for a service error, logged by its kind, leaving the answer's status alone:
    /// for a part of an answer that failed while the rest was read (a dashboard panel).
    pub fn of(e: impl Into<service::ServiceError>) -> Self {
        let e = e.into();
        let failure = e.failure();
        if failure.is_ours_or_provider() && !e.is_upstream() {
            tracing::error!(error = ?e, "server function failed");
            return AppError::Refused("The service could not complete this request; try again in a moment.".into());
        }
        if failure.is_ours_or_provider() {
            tracing::warn!(error = %e, "provider trouble");
        } else {
            tracing::info!(status = status_for(failure), detail = %e, "refused");
        }
        AppError::Refused(e.to_string())
    }
}

/// The domain's errors reach the page through `ServiceError`, so a server function's `?` is
/// enough.
macro_rules! through_service {
    ($($error:ty),* $(,)?) => {
        $(#[cfg(feature = "ssr")]
        impl From<$error> for AppError {
            fn from(e: $error) -> Self {
                service::ServiceError::from(e).into()
            }
        })*
    };
}

through_service!(
    service::auth::AuthError,
    service::connections::ConnectionError,
    service::rate_limit::RateLimitError,
    service::runs::RunError,
    service::budget::BudgetError,
    service::catalog::CatalogError,
);
