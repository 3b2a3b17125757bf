//! `/v1/validator/*`: claiming work and reporting on it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use service::Services;
use wire::api::{CompleteRun, CompleteRunAnswer, LeaseRenewed};

use super::error::ApiError;
use super::extract::{ApiJson, Validator};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/validator/work/claim", post(claim))
        .route("/v1/validator/evaluation-runs/{id}/heartbeat", post(heartbeat))
        .route("/v1/validator/evaluation-runs/{id}/progress", post(progress))
        .route("/v1/validator/evaluation-runs/{id}/complete", post(complete))
        .route("/v1/validator/agent-versions/{id}/code", get(code))
}

/// 200 with the run and its scoped credential, 204 when there is no work, 409 at capacity.
/// The body (the validator's resource report) is optional and not needed here.
async fn claim(State(services): State<Services>, Validator(caller): Validator, _body: Bytes) -> Result<Response, ApiError> {
    // A claim spends a refresh token and mints keys: it must never stop half-way because the
    // validator hung up or the request timed out, so it runs in its own task.
    let claim = tokio::spawn(async move { services.claim_work(&caller).await });
    let outcome = claim.await.map_err(|e| ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, format!("claim task failed: {e}")))?;
    match outcome.map_err(service::ServiceError::from)? {
        Some(answer) => Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The body (the validator's resource report) is optional: oro-sdk 5.0.2 and newer send none.
async fn heartbeat(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    let lease = services.heartbeat(&caller, &id, None).await.map_err(service::ServiceError::from)?;
    Ok(Json(LeaseRenewed { ok: true, accepted: None, lease_expires_at: lease }))
}

async fn progress(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    let lease = services.heartbeat(&caller, &id, Some(&body)).await.map_err(service::ServiceError::from)?;
    Ok(Json(LeaseRenewed { ok: true, accepted: Some(true), lease_expires_at: lease }))
}

async fn complete(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteRun>,
) -> Result<Json<CompleteRunAnswer>, ApiError> {
    Ok(Json(services.complete_run(&caller, &id, &body).await.map_err(service::ServiceError::from)?))
}

async fn code(State(services): State<Services>, Validator(caller): Validator, Path(id): Path<String>) -> Result<Response, ApiError> {
    let (file_name, code) = services.agent_code(&caller, &id).await.map_err(service::ServiceError::from)?;
    Ok(code_download(file_name, code))
}

/// The agent file as a download; never cached (the link is a credential).
pub(super) fn code_download(file_name: String, code: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", file_name.replace(['"', '\\', '\r', '\n'], "_"));
    (
        [
            (header::CONTENT_TYPE, "text/x-python; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        code,
    )
        .into_response()
}
