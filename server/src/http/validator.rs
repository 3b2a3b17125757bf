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
use super::extract::{ApiJson, ClaimingValidator, Validator};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/validator/work/claim", post(claim))
        .route("/v1/validator/evaluation-runs/{eval_run_id}/heartbeat", post(heartbeat))
        .route("/v1/validator/evaluation-runs/{eval_run_id}/progress", post(progress))
        .route("/v1/validator/evaluation-runs/{eval_run_id}/complete", post(complete))
        .route("/v1/validator/agent-versions/{agent_version_id}/code", get(code))
}

/// 200 with the run and its scoped credential, 204 when there is no work, 409 at capacity.
/// The body (the validator's resource report) is optional and not needed here.
#[utoipa::path(post, path = "/v1/validator/work/claim", tag = "validator", operation_id = "claim_work",
    summary = "Claim the oldest queued run, with its run-bound inference credential",
    description = "The run is pinned to its miner's default provider at this moment. `inference_token` (and `sandbox_env`) \
                   carry a credential that can spend at most the run's cap, on allowlisted models, until the run ends: an \
                   OpenRouter key with that limit, or a run gateway token. `chutes_access_token` is sent only for operators \
                   who chose `ORO_CHUTES_RUN_CREDENTIAL=direct`.",
    request_body(content = Option<super::openapi::ClaimWorkRequest>, description = "The validator's resource report (optional)."),
    responses(
        (status = 200, body = wire::api::ClaimAnswer, headers(("Cache-Control" = String, description = "no-store"))),
        (status = 204, description = "No work queued."),
        (status = 409, description = "This validator already holds its maximum of runs.", body = super::openapi::CodedError),
    ))]
pub(super) async fn claim(
    State(services): State<Services>,
    ClaimingValidator(caller, unspent): ClaimingValidator,
    _body: Bytes,
) -> Result<Response, ApiError> {
    // A claim spends a refresh token and mints keys: it must never stop half-way because the
    // validator hung up or the request timed out, so it runs in its own task.
    // The request's span goes along, so the claim's provider calls log under this request.
    let claim = tokio::spawn(tracing::Instrument::in_current_span(async move { services.claim_work(&caller, unspent.as_ref()).await }));
    let outcome = claim.await.map_err(|e| ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, format!("claim task failed: {e}")))?;
    match outcome? {
        Some(answer) => Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The body (the validator's resource report) is optional: oro-sdk 5.0.2 and newer send none.
#[utoipa::path(post, path = "/v1/validator/evaluation-runs/{eval_run_id}/heartbeat", tag = "validator", operation_id = "heartbeat",
    summary = "Renew the run's lease",
    params(("eval_run_id" = String, Path, format = Uuid)),
    request_body(content = Option<super::openapi::HeartbeatRequest>, description = "The validator's resource report (optional)."),
    responses(
        (status = 200, body = LeaseRenewed),
        (status = 404, description = "No such run.", body = super::openapi::CodedError),
        (status = 409, description = "Another validator's run, the lease expired (the run went back to the queue), or the run is already complete: `error_code` says which.", body = super::openapi::CodedError),
    ))]
pub(super) async fn heartbeat(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    let lease = services.heartbeat(&caller, &id, None).await?;
    Ok(Json(LeaseRenewed { ok: true, accepted: None, lease_expires_at: lease }))
}

#[utoipa::path(post, path = "/v1/validator/evaluation-runs/{eval_run_id}/progress", tag = "validator", operation_id = "update_progress",
    summary = "Report per-problem progress (renews the lease)",
    params(("eval_run_id" = String, Path, format = Uuid)),
    request_body = super::openapi::ProgressUpdateRequest,
    responses(
        (status = 200, body = LeaseRenewed),
        (status = 404, description = "No such run.", body = super::openapi::CodedError),
        (status = 409, description = "Another validator's run, the lease expired (the run went back to the queue), or the run is already complete: `error_code` says which.", body = super::openapi::CodedError),
    ))]
pub(super) async fn progress(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<LeaseRenewed>, ApiError> {
    let lease = services.heartbeat(&caller, &id, Some(&body)).await?;
    Ok(Json(LeaseRenewed { ok: true, accepted: Some(true), lease_expires_at: lease }))
}

#[utoipa::path(post, path = "/v1/validator/evaluation-runs/{eval_run_id}/complete", tag = "validator", operation_id = "complete_run",
    summary = "Finish the run: its credential dies with this answer",
    description = "A run whose provider account could not pay is recorded as failed with \"no credits: ...\", whatever the \
                   validator reports.",
    params(("eval_run_id" = String, Path, format = Uuid)),
    request_body = CompleteRun,
    responses(
        (status = 200, body = CompleteRunAnswer),
        (status = 404, description = "No such run.", body = super::openapi::CodedError),
        (status = 409, description = "Another validator's run, the lease expired (the run went back to the queue), or the run is already complete: `error_code` says which.", body = super::openapi::CodedError),
    ))]
pub(super) async fn complete(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteRun>,
) -> Result<Json<CompleteRunAnswer>, ApiError> {
    Ok(Json(services.complete_run(&caller, &id, &body).await?))
}

#[utoipa::path(get, path = "/v1/validator/agent-versions/{agent_version_id}/code", tag = "validator", operation_id = "get_agent_code",
    summary = "The agent file of a run this validator holds",
    params(("agent_version_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, description = "The agent's Python file, as a download.", content_type = "text/x-python"),
        (status = 404, description = "No such version among this validator's runs.", body = super::openapi::CodedError),
    ))]
pub(super) async fn code(
    State(services): State<Services>,
    Validator(caller): Validator,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (file_name, code) = services.agent_code(&caller, &id).await?;
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
