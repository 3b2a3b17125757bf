//! The REST API: thin handlers that parse, call the service layer, and map typed errors to
//! answers (`error.rs`, once).

pub mod assets;
mod auth_routes;
mod docs;
pub mod edge;
pub mod error;
pub mod extract;
pub mod guards;
pub mod metrics;
mod miner;
pub mod openapi;
mod oro_backend;
mod public;
mod validator;

use axum::Router;
use axum::http::{HeaderValue, header};

use crate::startup::AppState;

/// The routes answered from memory that log nothing of their own (the model list, health,
/// the bundle and the API documents): their request span is at debug level, so the busiest
/// paths do not format one per request.
pub fn is_quiet_path(path: &str) -> bool {
    matches!(path, "/v1/public/inference/models" | "/health" | "/openapi.json" | "/docs") || path.starts_with("/pkg/")
}

/// The unauthenticated, cacheable routes (health, the model list, the OpenAPI document and
/// its page, the browser bundle, presigned code links, the Chutes OAuth facts). `startup.rs` serves them on a lean
/// stack: none of the session, per-IP or door layers the signed routes and pages need.
pub fn public_router(services: &service::Services, assets: &assets::SiteAssets) -> Router<AppState> {
    // Built once: the document depends only on the code and this deployment's URLs. Each answer
    // shares these bytes (a `Bytes` clone is a counter bump).
    let document = serde_json::to_value(openapi::document(&services.settings)).expect("the OpenAPI document serializes");
    let json = axum::body::Bytes::from(serde_json::to_vec_pretty(&document).expect("a JSON value serializes"));
    let reference = axum::body::Bytes::from(docs::render(&document, &assets.paths.stylesheet));
    Router::new()
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")], json) }
            }),
        )
        .route(
            "/docs",
            axum::routing::get(move || {
                let reference = reference.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
                            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
                            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(docs::CSP)),
                        ],
                        reference,
                    )
                }
            }),
        )
        .route("/pkg/{name}", axum::routing::get(assets::serve))
        .merge(public::routes())
        .method_not_allowed_fallback(oro_backend::method_not_allowed)
}

/// Everything else of the REST API: signed requests, bearer sessions, ORO's backend's routes.
pub fn api_router(services: service::Services) -> Router<AppState> {
    Router::new()
        .route("/metrics", axum::routing::get(metrics::render))
        .merge(auth_routes::routes())
        .merge(miner::routes())
        .merge(validator::routes())
        .merge(oro_backend::routes())
        .method_not_allowed_fallback(oro_backend::method_not_allowed)
        // Bodies are read (for the NUL check) only on routes that exist: a flood of large
        // bodies at unknown paths costs nothing but the 404.
        .route_layer(axum::middleware::from_fn(guards::refuse_nul_characters))
        .route_layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(guards::BoundPolicy {
                host: service::auth::signed_request::bound_host(&services.settings.public_url),
                required: services.settings.require_bound_signatures.clone(),
            }),
            guards::check_bound_signature,
        ))
        .route("/v1/{*rest}", axum::routing::any(oro_backend::not_found))
}
