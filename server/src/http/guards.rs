//! Cross-cutting protections: body size and time limits, security headers, and the
//! cross-site check on browser requests that change state.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use service::Services;
use service::auth::AuthError;
use service::rate_limit::Action;
use tower::ServiceBuilder;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::ApiError;

/// Largest request body: an agent upload (1 MiB) with multipart overhead.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What a browser may load for anything that is not a page (JSON, files, errors): nothing.
/// Pages carry their own policy with the per-response script nonce (`app::content_security_policy`).
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// HSTS for two years, sent only when the public URL is https (a browser ignores it over http,
/// and sending it from a development host would pin a name that may serve plain http).
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Metrics, security headers, tracing and limits around every route (`edge.rs` is the
/// outermost).
pub fn apply_common_layers<S: Clone + Send + Sync + 'static>(router: axum::Router<S>, https: bool) -> axum::Router<S> {
    router.layer(
        ServiceBuilder::new()
            // Outermost: it counts every answer, the refusals of the layers below included.
            .layer(super::edge::EdgeLayer { https })
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request| {
                        // Paths only: query strings can carry OAuth codes.
                        if super::is_quiet_path(req.uri().path()) {
                            tracing::debug_span!("http", method = %req.method(), path = %req.uri().path())
                        } else {
                            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                        }
                    })
                    // Failures are logged once, where they are understood (`http/error.rs`:
                    // our faults at error, provider trouble at warn, refusals at info), not
                    // again here as ERROR for every 5xx.
                    .on_failure(()),
            )
            // The backstop for bodies without a Content-Length (chunked), for every reader:
            // extractors and the server functions alike.
            .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY_BYTES))
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, std::time::Duration::from_secs(60)))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
    )
}

/// A declared body over the limit is refused without keeping any of it. A modest overshoot
/// (an agent file a little too big) is read and dropped first, so the client, which is still
/// sending, gets the 413 instead of a broken pipe; anything larger is refused at once.
/// The body length a request declares, when it is over the limit.
pub(super) fn declared_oversize(req: &Request) -> Option<u64> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    declared.filter(|length| *length > MAX_BODY_BYTES as u64)
}

/// The 413 for a request whose declared body is over the limit (`declared_oversize`).
pub(super) async fn refuse_oversized(req: Request, length: u64) -> Response {
    let path = req.uri().path().to_owned();
    let refused = if path == "/v1/miner/submit" {
        // The SDK reads `error_code` on an upload refusal.
        ApiError::Service(service::runs::RunError::FileTooLarge.into())
    } else {
        ApiError::Status(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: at most {} MiB", MAX_BODY_BYTES / (1024 * 1024)),
        )
    };
    // A body a little over the limit is read and dropped (for at most 10 s), so that a client
    // still sending it hears the 413 rather than a broken pipe; a far larger one is refused
    // without reading a byte.
    if length <= 4 * MAX_BODY_BYTES as u64 {
        use http_body_util::BodyExt;
        let mut body = req.into_body();
        let drain = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), drain).await;
    }
    let mut response = self::refusal(&path, refused);
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn has_ignoring_case(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

fn refuse_nul(path: &str, place: &str) -> Response {
    refusal(
        path,
        ApiError::Validation { loc: vec![place.to_owned()], msg: "text must not contain NUL characters".into(), kind: "string_type" },
    )
}

/// The refusal of a request whose path or query holds a NUL (`%00`); the body is not looked at.
pub(super) fn nul_in_target(req: &Request) -> Option<Response> {
    if has_ignoring_case(req.uri().path().as_bytes(), b"%00") {
        return Some(refuse_nul(req.uri().path(), "path"));
    }
    if req.uri().query().is_some_and(|q| has_ignoring_case(q.as_bytes(), b"%00")) {
        return Some(refuse_nul(req.uri().path(), "query"));
    }
    None
}

/// No text this service takes may hold a NUL character: PostgreSQL cannot store one, and
/// no credential, id or name legitimately has one. Refused as a 422 at the door, in the path
/// or query (`%00`) and in any body that is not an upload (`\u0000` in JSON, whatever its
/// media type; `%00` in form posts, which server functions decode whatever the header says).
/// Validators are exempt: what they send (progress, failure reports) is free text from a
/// sandbox, stored re-encoded or scrubbed, and refusing it would leave runs to the reaper.
pub async fn refuse_nul_characters(req: Request, next: Next) -> Response {
    if let Some(refused) = nul_in_target(&req) {
        return refused;
    }
    // Nothing is copied for a request without a body (this runs on every GET).
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE) {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    let refuse = |place: &str| refuse_nul(&path, place);
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
    if content_type.starts_with("multipart/") || path.starts_with("/v1/validator/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return refusal(&path, ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "request body too large".into()));
        }
    };
    let form_decoded = path.starts_with("/api/") || content_type.starts_with("application/x-www-form-urlencoded");
    if bytes.contains(&0) || has_ignoring_case(&bytes, b"\\u0000") || (form_decoded && has_ignoring_case(&bytes, b"%00")) {
        return refuse("body");
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// A refusal in the caller's language: the API's `{"detail": ...}`, or for the pages' server
/// functions (`/api/...`) the error they decode, so the page shows the sentence.
pub fn refusal(path: &str, error: ApiError) -> Response {
    if !path.starts_with("/api/") {
        return error.into_response();
    }
    let status = error.status();
    let retry_after = error.retry_after_secs();
    let sentence = match &error {
        ApiError::Validation { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    let body = serde_json::to_string(&app::error::AppError::Refused(sentence)).unwrap_or_default();
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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

/// Which rate-limited action a request is, by route. Server functions are the pages' way to
/// the same actions, so they count in the same buckets.
pub fn limited_action(method: &Method, path: &str) -> Option<Action> {
    if method != Method::POST {
        return None;
    }
    match path {
        "/v1/auth/challenge" | "/v1/auth/session" | "/api/begin_sign_in" | "/api/finish_sign_in" => Some(Action::SignIn),
        "/v1/miner/chutes/exchange-code"
        | "/v1/miner/chutes-auth"
        | "/api/connect_openrouter"
        | "/api/begin_chutes_connect"
        | "/api/finish_chutes_connect" => Some(Action::Connect),
        "/v1/miner/submit" => Some(Action::Submit),
        p if p.strip_prefix("/v1/miner/inference-auth/").is_some_and(|rest| !rest.is_empty() && !rest.contains('/')) => {
            Some(Action::Connect)
        }
        _ => None,
    }
}

/// The client's address: the TCP peer, or behind our own load balancer (when configured)
/// the last `X-Forwarded-For` entry, the one the balancer appended. Earlier entries are
/// whatever the client claimed and are never trusted.
pub fn client_ip(services: &Services, req: &Request) -> Option<IpAddr> {
    // The last line and its last entry: proxies that add a line of their own leave the
    // client's (forgeable) line first. `ip:port` entries are accepted.
    if services.settings.trust_forwarded_for
        && let Some(forwarded) = req.headers().get_all("x-forwarded-for").iter().next_back().and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next().map(str::trim)
    {
        match last.parse::<IpAddr>().or_else(|_| last.parse::<SocketAddr>().map(|a| a.ip())) {
            Ok(ip) => return Some(ip),
            Err(_) => {
                tracing::warn!(entry = %last.chars().take(64).collect::<String>(), "X-Forwarded-For does not end in an address; using the peer")
            }
        }
    }
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// At most `ORO_MAX_CONCURRENT_REQUESTS` requests in progress: past that, a 503 at once
/// (with `Retry-After`) instead of a queue that only makes every answer late.
pub async fn shed_load(State(slots): State<std::sync::Arc<tokio::sync::Semaphore>>, req: Request, next: Next) -> Response {
    let Ok(_slot) = slots.try_acquire_owned() else {
        return shed(&req);
    };
    next.run(req).await
}

/// The 503 of a request that found no free slot.
pub(super) fn shed(req: &Request) -> Response {
    metrics::counter!("oro_requests_shed_total").increment(1);
    let mut response = refusal(
        req.uri().path(),
        ApiError::Status(axum::http::StatusCode::SERVICE_UNAVAILABLE, "the service is at capacity; try again in a moment".into()),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The route an operator names in `ORO_REQUIRE_BOUND_SIGNATURES`, by method and route template.
fn bound_route_name(method: &Method, route: &str) -> Option<&'static str> {
    match (method.as_str(), route) {
        ("POST", "/v1/validator/work/claim") => Some("claim"),
        ("POST", "/v1/miner/submit") => Some("submit"),
        ("DELETE", "/v1/miner/inference-auth/{provider}") => Some("disconnect"),
        ("PUT", "/v1/miner/budget") => Some("budget"),
        _ => None,
    }
}

/// What the bound-signature check needs: the service's public host and the routes that
/// require a bound signature. Its own small state: this runs on every API request, and a
/// `Services` clone per request costs several allocations.
pub struct BoundPolicy {
    pub host: String,
    pub required: Vec<String>,
}

/// Bound signatures (`X-Signature-Bound`, sent by our own CLI): checked whenever present, over
/// this method, our public host, the path and the body; required on the routes the operator
/// lists. The plain signature is still checked by the extractors, nonce and all.
pub async fn check_bound_signature(State(policy): State<std::sync::Arc<BoundPolicy>>, req: Request, next: Next) -> Response {
    let Some(bound) = req.headers().get(wire::signing::HEADER_BOUND_SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned) else {
        let required = !policy.required.is_empty()
            && req
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .and_then(|route| bound_route_name(req.method(), route.as_str()))
                .is_some_and(|name| policy.required.iter().any(|r| r == name));
        if required {
            return refusal(req.uri().path(), ApiError::Auth(AuthError::BoundSignatureRequired));
        }
        return next.run(req).await;
    };
    let path = req.uri().path().to_owned();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return refusal(&path, ApiError::Status(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "request body too large".into()));
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let signed = service::auth::signed_request::SignedHeaders {
        hotkey: header(wire::signing::HEADER_HOTKEY),
        timestamp: header(wire::signing::HEADER_TIMESTAMP),
        nonce: header(wire::signing::HEADER_NONCE),
        signature: header(wire::signing::HEADER_SIGNATURE),
    };
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if let Err(e) = service::auth::signed_request::check_bound(&signed, &bound, parts.method.as_str(), &policy.host, target, &bytes) {
        return refusal(&path, ApiError::Auth(e));
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// A request that asks to be authenticated: each costs signature checks (or a session lookup)
/// and a nonce write.
fn is_signed(req: &Request) -> bool {
    req.headers().contains_key(wire::signing::HEADER_SIGNATURE) || req.headers().get(header::AUTHORIZATION).is_some()
}

/// What the door needs: the limiters, and how many refusals are being held back right now.
pub struct Door {
    pub services: Services,
    /// Refusals held back at once; past this many, a refusal is answered at once (a client
    /// with tens of thousands of connections gets fast 429s, not that many parked timers).
    pub holds: tokio::sync::Semaphore,
}

impl Door {
    pub const MOST_HELD: usize = 4096;

    pub fn new(services: Services) -> Self {
        Door { services, holds: tokio::sync::Semaphore::new(Self::MOST_HELD) }
    }
}

/// The in-memory per-IP limits on signed requests, outside everything else (the global
/// request slots included). A signed request from an address that has failed authentication
/// too often, or sent too many signed requests, is refused before its signature is checked,
/// and its answer is held back a moment (`ORO_REFUSAL_HOLD_MS`): a flood then meets parked
/// timers instead of an answer per microsecond, and every other client keeps the CPU. The
/// 401s counted on the way out are what the failed-authentication limit counts.
pub async fn refuse_at_the_door(State(door): State<std::sync::Arc<Door>>, req: Request, next: Next) -> Response {
    let services = &door.services;
    let signed_from = if is_signed(&req) { client_ip(services, &req).map(service::rate_limit::client_key) } else { None };
    let Some(client) = signed_from else { return next.run(req).await };
    let now = services.clock.now();
    if let Err(refused) = services.failed_auth_limiter.check(&client, now).and_then(|()| services.signed_limiter.hit(&client, now)) {
        if let Ok(_held) = door.holds.try_acquire() {
            tokio::time::sleep(services.settings.refusal_hold).await;
        }
        return refusal(req.uri().path(), ApiError::from(refused));
    }
    let response = next.run(req).await;
    let now = services.clock.now();
    if response.status() == axum::http::StatusCode::UNAUTHORIZED
        && services.failed_auth_limiter.hit(&client, now).is_ok()
        && services.failed_auth_limiter.check(&client, now).is_err()
    {
        tracing::info!(%client, "failed authentications reached the limit; refusing this address's signed requests for now");
    }
    response
}

/// Per-IP limits on the actions worth abusing (sign-in, connect, submit), counted in the
/// database before the action's own work.
pub async fn limit_by_client_ip(State(services): State<Services>, req: Request, next: Next) -> Response {
    if let Some(action) = limited_action(req.method(), req.uri().path())
        && let Some(ip) = client_ip(&services, &req)
        && let Err(refused) = services.limit_ip(action, ip).await
    {
        if refused.retry_after_secs().is_some() {
            tracing::info!(action = action.as_str(), client = %service::rate_limit::client_key(ip), "rate limit reached");
        }
        return refusal(req.uri().path(), ApiError::from(refused));
    }
    next.run(req).await
}

/// The page was served from this very host (e.g. 127.0.0.1 vs localhost in development).
fn origin_is_request_host(origin: &str, req: &Request) -> bool {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    match host {
        Some(host) => origin == format!("http://{host}") || origin == format!("https://{host}"),
        None => false,
    }
}
