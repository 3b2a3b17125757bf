//! Unsigned routes: health, readiness, and the public model list.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use service::Services;
use wire::Provider;

use super::error::ApiError;
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        // oro-sdk's `deep_health_check`: the same question as readiness.
        .route("/health/deep", get(ready))
        .route("/v1/public/inference/models", get(models))
        .route("/v1/public/agent-code/{run_id}", get(agent_code))
        .route("/v1/public/chutes-oauth", get(chutes_oauth))
}

/// Where our `oro` CLI sends a miner to sign in with Chutes: this service's own IdP and
/// client, so that the code it brings back is one this service can exchange.
async fn chutes_oauth(State(services): State<Services>) -> Json<wire::api::ChutesOAuthInfo> {
    let settings = &services.settings;
    Json(wire::api::ChutesOAuthInfo {
        authorize_base: settings.chutes_api_base.clone(),
        client_id: settings.chutes_client_id.clone(),
        scopes: settings.chutes_scopes.clone(),
    })
}

async fn health() -> Json<wire::api::Health> {
    Json(wire::api::Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Ready when the database answers, within 2 s: a load balancer's probe must hear "no"
/// before its own timeout, not wait out the pool's.
async fn ready(State(services): State<Services>) -> Response {
    let answered = tokio::time::timeout(std::time::Duration::from_secs(2), services.db.ping()).await;
    let problem = match answered {
        Ok(Ok(())) => {
            return (StatusCode::OK, Json(serde_json::json!({"status": "ready", "database": "ok"}))).into_response();
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    tracing::warn!(error = %problem, "readiness: database unreachable");
    (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"detail": "database unreachable"}))).into_response()
}

#[derive(Deserialize)]
struct ModelsQuery {
    provider: Option<String>,
    ranked: Option<String>,
}

async fn models(State(services): State<Services>, Query(q): Query<ModelsQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    let provider = match q.provider.as_deref() {
        None | Some("") => Provider::Chutes,
        Some(p) => p.parse::<Provider>().map_err(|e| ApiError::Validation {
            loc: vec!["query".into(), "provider".into()],
            msg: e.to_string(),
            kind: "enum",
        })?,
    };
    let ranked = match q.ranked.as_deref() {
        None | Some("") | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(ApiError::Validation {
                loc: vec!["query".into(), "ranked".into()],
                msg: "Input should be a valid boolean".into(),
                kind: "bool_parsing",
            });
        }
    };
    let body = services.catalog_json_cached(provider, ranked).await.map_err(service::ServiceError::from)?;
    // The list changes only when an operator edits it: an ETag over the body lets clients
    // and caches revalidate for free.
    let etag = body.etag.clone();
    let cache = [(header::CACHE_CONTROL, "public, max-age=60, stale-while-revalidate=300")];
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, cache, [(header::ETAG, etag)]).into_response());
    }
    Ok((StatusCode::OK, cache, [(header::ETAG, etag), (header::CONTENT_TYPE, "application/json".to_owned())], body.json.clone())
        .into_response())
}

#[derive(Deserialize)]
struct CodeLink {
    expires: i64,
    sig: String,
}

/// The presigned `code_download_url` of a claim: no signed headers (ORO's validator fetches
/// it with a plain GET); the link itself is the credential.
async fn agent_code(
    State(services): State<Services>,
    Path(run_id): Path<String>,
    super::extract::ApiQuery(link): super::extract::ApiQuery<CodeLink>,
) -> Result<Response, ApiError> {
    let (file_name, code) = services.agent_code_by_link(&run_id, link.expires, &link.sig).await.map_err(service::ServiceError::from)?;
    Ok(super::validator::code_download(file_name, code))
}
