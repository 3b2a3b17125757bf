//! Unsigned routes: health, readiness, and the public model list.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
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
        .route("/health/deep", get(deep_health))
        .route("/v1/public/inference/models", get(models))
        .route("/v1/public/agent-code/{eval_run_id}", get(agent_code))
        .route("/v1/public/chutes-oauth", get(chutes_oauth))
}

/// Where our `oro` CLI sends a miner to sign in with Chutes: this service's own IdP and
/// client, so that the code it brings back is one this service can exchange.
#[utoipa::path(get, path = "/v1/public/chutes-oauth", tag = "public", operation_id = "get_chutes_oauth",
    summary = "How a client starts \"sign in with Chutes\" for this service",
    responses((status = 200, description = "The authorize base, client id and scopes.", body = wire::api::ChutesOAuthInfo)))]
pub(super) async fn chutes_oauth(State(services): State<Services>) -> Json<wire::api::ChutesOAuthInfo> {
    let settings = &services.settings;
    Json(wire::api::ChutesOAuthInfo {
        authorize_base: settings.chutes_api_base.clone(),
        client_id: settings.chutes_client_id.clone(),
        scopes: settings.chutes_scopes.clone(),
    })
}

#[utoipa::path(get, path = "/health", tag = "public", operation_id = "health_check", summary = "Liveness",
    responses((status = 200, body = wire::api::Health)))]
pub(super) async fn health() -> Json<wire::api::Health> {
    Json(wire::api::Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Ready when the database answers, within 2 s: a load balancer's probe must hear "no"
/// before its own timeout, not wait out the pool's.
#[utoipa::path(get, path = "/health/ready", tag = "public", operation_id = "readiness_check",
    summary = "Readiness: the database answers within 2 s",
    responses(
        (status = 200, description = "`{\"status\": \"ready\", \"database\": \"ok\"}`", body = Object),
        (status = 503, description = "The database did not answer.", body = wire::api::ErrorDetail),
    ))]
pub(super) async fn ready(State(services): State<Services>) -> Response {
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

/// oro-sdk's `deep_health_check`: the same question as readiness.
#[utoipa::path(get, path = "/health/deep", tag = "public", operation_id = "deep_health_check", summary = "Readiness (oro-sdk's name)",
    responses(
        (status = 200, body = Object),
        (status = 503, description = "The database did not answer.", body = wire::api::ErrorDetail),
    ))]
pub(super) async fn deep_health(state: State<Services>) -> Response {
    ready(state).await
}

#[derive(Deserialize)]
pub(super) struct ModelsQuery {
    provider: Option<String>,
    ranked: Option<String>,
}

#[utoipa::path(get, path = "/v1/public/inference/models", tag = "public", operation_id = "get_inference_models",
    summary = "The allowlisted models, under one provider's names",
    description = "The same canonical set on both providers. `aliases` maps each Chutes name to its OpenRouter name (accepted on \
                   OpenRouter runs). Cached for a minute; revalidate with `If-None-Match`.",
    params(
        ("provider" = Option<Provider>, Query, description = "Whose names to list (default `chutes`)."),
        ("ranked" = Option<bool>, Query, description = "oro-sdk's ranked form: each model with its health, in catalog order."),
    ),
    responses(
        (status = 200, description = "The plain list, or with `ranked=true` the ranked form.",
            body = super::openapi::ModelListAnswer,
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
    ))]
pub(super) async fn models(
    State(services): State<Services>,
    // FastAPI's 422 for a query that does not parse (`?ranked=x&ranked=y`), as the document says.
    super::extract::ApiQuery(q): super::extract::ApiQuery<ModelsQuery>,
    super::extract::IfNoneMatch(if_none_match): super::extract::IfNoneMatch,
) -> Result<Response, ApiError> {
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
    let body = services.catalog_json_cached(provider, ranked).await?;
    // The list changes only when an operator edits it: an ETag over the body lets clients
    // and caches revalidate for free. Headers and body share the cached bytes.
    let etag = HeaderValue::from_maybe_shared(body.etag.clone())
        .map_err(|_| ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, "the model list's ETag is not a header value".into()))?;
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60, stale-while-revalidate=300"));
    if if_none_match.as_ref() == Some(&etag) {
        return Ok((StatusCode::NOT_MODIFIED, [cache, (header::ETAG, etag)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [cache, (header::ETAG, etag), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.json.clone(),
    )
        .into_response())
}

#[derive(Deserialize)]
pub(super) struct CodeLink {
    expires: i64,
    sig: String,
}

/// The presigned `code_download_url` of a claim: no signed headers (ORO's validator fetches
/// it with a plain GET); the link itself is the credential.
#[utoipa::path(get, path = "/v1/public/agent-code/{eval_run_id}", tag = "public", operation_id = "get_agent_code_by_link",
    summary = "A claim's `code_download_url`: the agent file, for the link's holder",
    params(
        ("eval_run_id" = String, Path, description = "The run the link was made for."),
        ("expires" = i64, Query, description = "Unix seconds after which the link is refused."),
        ("sig" = String, Query, description = "The link's signature."),
    ),
    responses(
        (status = 200, description = "The agent's Python file, as a download.", content_type = "text/x-python"),
        (status = 403, description = "A bad or expired link.", body = wire::api::ErrorDetail),
        (status = 404, description = "No such run.", body = super::openapi::CodedError),
    ))]
pub(super) async fn agent_code(
    State(services): State<Services>,
    Path(run_id): Path<String>,
    super::extract::ApiQuery(link): super::extract::ApiQuery<CodeLink>,
) -> Result<Response, ApiError> {
    let (file_name, code) = services.agent_code_by_link(&run_id, link.expires, &link.sig).await?;
    Ok(super::validator::code_download(file_name, code))
}
