//! Cross-cutting protections: body size and time limits, security headers, and the
//! cross-site check on browser requests that change state.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use service::Services;
use service::auth::AuthError;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::ApiError;

/// Largest request body: an agent upload (1 MiB) with multipart overhead.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Tracing, limits and security headers around every route.
pub fn apply_common_layers<S: Clone + Send + Sync + 'static>(router: axum::Router<S>) -> axum::Router<S> {
    router.layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // Paths only: query strings can carry OAuth codes.
                tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
            }))
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, std::time::Duration::from_secs(60)))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
            .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
            .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"))),
    )
}

/// Leptos does no CSRF checks, so a state-changing browser request (server functions are
/// POSTs) must come from our own pages: `Sec-Fetch-Site: same-origin` (or `none`, typed by the
/// user), or, from browsers that do not send it, an `Origin` equal to our public URL.
pub async fn refuse_cross_site(State(services): State<Services>, req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD || req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let fetch_site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let ours = services.settings.public_url.origin().ascii_serialization();
    let allowed = match (fetch_site, origin) {
        (Some("same-origin") | Some("none"), _) => true,
        (Some(_), _) => false,
        (None, Some(origin)) => origin == ours || origin_is_request_host(origin, &req),
        // Neither header: not a browser (curl, tests); cookies are SameSite=Strict anyway.
        (None, None) => true,
    };
    if allowed { next.run(req).await } else { ApiError::Auth(AuthError::CrossSite).into_response() }
}

/// The page was served from this very host (e.g. 127.0.0.1 vs localhost in development).
fn origin_is_request_host(origin: &str, req: &Request) -> bool {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(host) => origin == format!("http://{host}") || origin == format!("https://{host}"),
        None => false,
    }
}
