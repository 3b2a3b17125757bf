//! `/v1/miner/*`: what `oro inference ...` calls.

use axum::extract::{Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use secrecy::SecretString;
use serde::Deserialize;
use service::Services;
use service::rate_limit::Action;
use wire::Provider;
use wire::api::{
    AgentVersionEntry, AgentVersionStatus, AuditEvents, Budget, ConnectCredential, ConnectionChanged, ExchangeCode, ExchangeCodeAnswer,
    InferenceAuthList, LegacyChutesAuth, LegacyChutesStatus, MinerAgents, ProviderStatus, RunList, SetBudget, SetDefault, SubmitAnswer,
};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Miner};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/miner/inference-auth", get(status))
        .route("/v1/miner/inference-auth/events", get(events))
        .route("/v1/miner/inference-auth/default", patch(set_default))
        .route("/v1/miner/inference-auth/{provider}", get(one).post(connect).delete(disconnect))
        .route("/v1/miner/chutes/exchange-code", post(exchange_code))
        .route("/v1/miner/chutes-auth", post(legacy_chutes_auth))
        .route("/v1/miner/chutes-auth/status", get(legacy_chutes_status))
        .route("/v1/miner/submit", post(submit))
        .route("/v1/miner/runs", get(runs))
        .route("/v1/miner/runs/{eval_run_id}/stop", post(stop_run))
        .route("/v1/miner/budget", get(budget).put(set_budget))
        .route("/v1/miner/agents", get(agents))
        .route("/v1/miner/agents/{agent_id}/versions", get(agent_versions))
        .route("/v1/miner/agent-versions/{agent_version_id}", get(agent_version))
}

/// FastAPI's 422 for a path id that is not a UUID (oro-sdk's ids always are).
fn uuid_from_path(name: &str, text: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(text).map(|u| u.to_string()).map_err(|_| ApiError::Validation {
        loc: vec!["path".into(), name.into()],
        msg: "Input should be a valid UUID".into(),
        kind: "uuid_parsing",
    })
}

#[utoipa::path(get, path = "/v1/miner/agents", tag = "miner", operation_id = "list_miner_agents",
    summary = "The miner's agents, each with its latest version",
    responses((status = 200, body = MinerAgents)))]
pub(super) async fn agents(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<MinerAgents>, ApiError> {
    Ok(Json(services.miner_agents(&caller.hotkey).await?))
}

#[utoipa::path(get, path = "/v1/miner/agents/{agent_id}/versions", tag = "miner", operation_id = "list_agent_versions",
    summary = "Every version of one of the miner's agents",
    params(("agent_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<AgentVersionEntry>), (status = 404, description = "No such agent of this miner.", body = super::openapi::CodedError)))]
pub(super) async fn agent_versions(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(agent_id): Path<String>,
) -> Result<Json<Vec<AgentVersionEntry>>, ApiError> {
    let agent_id = uuid_from_path("agent_id", &agent_id)?;
    Ok(Json(services.agent_versions(&caller.hotkey, &agent_id).await?))
}

#[utoipa::path(get, path = "/v1/miner/agent-versions/{agent_version_id}", tag = "miner", operation_id = "get_owned_agent_version_status",
    summary = "Where one of the miner's agent versions is in evaluation",
    params(("agent_version_id" = String, Path, format = Uuid)),
    responses((status = 200, body = AgentVersionStatus), (status = 404, description = "No such version of this miner.", body = super::openapi::CodedError)))]
pub(super) async fn agent_version(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(id): Path<String>,
) -> Result<Json<AgentVersionStatus>, ApiError> {
    let id = uuid_from_path("agent_version_id", &id)?;
    Ok(Json(services.agent_version_status(&caller.hotkey, &id).await?))
}

fn provider_from_path(text: &str) -> Result<Provider, ApiError> {
    text.parse::<Provider>().map_err(|e| ApiError::Validation {
        loc: vec!["path".into(), "provider".into()],
        msg: e.to_string(),
        kind: "enum",
    })
}

/// Lists the providers the miner has a stored credential for (connected, or needing
/// re-consent): oro-sdk prints "No providers connected" only for an empty list.
#[utoipa::path(get, path = "/v1/miner/inference-auth", tag = "miner", operation_id = "list_inference_auth",
    summary = "The providers the miner has a stored credential for, and the default",
    responses((status = 200, body = InferenceAuthList)))]
pub(super) async fn status(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<InferenceAuthList>, ApiError> {
    let mut list = services.inference_auth_status(&caller.hotkey).await?;
    list.providers.retain(|p| p.state != Some(wire::api::ConnectionState::NotConnected));
    Ok(Json(list))
}

#[utoipa::path(get, path = "/v1/miner/inference-auth/{provider}", tag = "miner", operation_id = "get_inference_auth_status_one",
    summary = "One provider's connection",
    params(("provider" = Provider, Path, description = "`chutes` or `openrouter`.")),
    responses((status = 200, body = ProviderStatus)))]
pub(super) async fn one(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(provider): Path<String>,
) -> Result<Json<ProviderStatus>, ApiError> {
    let provider = provider_from_path(&provider)?;
    Ok(Json(services.provider_status(&caller.hotkey, provider).await?))
}

#[utoipa::path(post, path = "/v1/miner/inference-auth/{provider}", tag = "miner", operation_id = "store_inference_credential",
    summary = "Connect a provider with a pasted credential",
    description = "OpenRouter: a management key (`sk-or-v1-...`), checked with OpenRouter before it is kept. Chutes: a refresh \
                   token (the OAuth exchange is the usual way). The credential is sealed at rest and never answered back. The first \
                   connected provider becomes the default.",
    params(("provider" = Provider, Path, description = "`chutes` or `openrouter`.")),
    request_body = ConnectCredential,
    responses(
        (status = 200, body = ConnectionChanged),
        (status = 400, description = "The provider refused the credential.", body = wire::api::ErrorDetail),
        (status = 402, description = "The account has no credits.", body = wire::api::ErrorDetail),
        (status = 503, description = "The provider could not be reached to check it, or is rate limiting: retry.", body = wire::api::ErrorDetail),
    ))]
pub(super) async fn connect(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<ConnectCredential>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    services.limit_hotkey(Action::Connect, &caller.hotkey).await?;
    let credential = SecretString::from(body.credential);
    let changed = match provider_from_path(&provider)? {
        Provider::OpenRouter => services.connect_openrouter(&caller.hotkey, &credential).await,
        // A pasted Chutes credential is a refresh token (as the legacy route takes it).
        Provider::Chutes => services.connect_chutes_with_refresh_token(&caller.hotkey, &credential).await,
    };
    Ok(Json(changed?))
}

#[utoipa::path(delete, path = "/v1/miner/inference-auth/{provider}", tag = "miner", operation_id = "delete_inference_credential",
    summary = "Disconnect a provider",
    description = "Runs in flight finish on their provider; OpenRouter per-run keys are disabled, not deleted.",
    params(("provider" = Provider, Path, description = "`chutes` or `openrouter`.")),
    responses((status = 200, body = ConnectionChanged), (status = 404, description = "That provider is not connected.", body = wire::api::ErrorDetail)))]
pub(super) async fn disconnect(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    let provider = provider_from_path(&provider)?;
    Ok(Json(services.disconnect(&caller.hotkey, provider).await?))
}

#[utoipa::path(patch, path = "/v1/miner/inference-auth/default", tag = "miner", operation_id = "set_default_inference_provider",
    summary = "Choose the provider used from the next claim on",
    request_body = SetDefault,
    responses((status = 200, body = ConnectionChanged), (status = 409, description = "That provider is not connected.", body = wire::api::ErrorDetail)))]
pub(super) async fn set_default(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<SetDefault>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    Ok(Json(services.set_default_provider(&caller.hotkey, body.provider).await?))
}

#[utoipa::path(post, path = "/v1/miner/chutes/exchange-code", tag = "miner", operation_id = "exchange_chutes_code",
    summary = "Finish \"sign in with Chutes\": exchange the authorization code (PKCE)",
    request_body = ExchangeCode,
    responses(
        (status = 200, body = ExchangeCodeAnswer),
        (status = 400, description = "Chutes refused the code (used, expired, or consent denied).", body = wire::api::ErrorDetail),
        (status = 503, description = "Chutes could not be reached: retry.", body = wire::api::ErrorDetail),
    ))]
pub(super) async fn exchange_code(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<ExchangeCode>,
) -> Result<Json<ExchangeCodeAnswer>, ApiError> {
    services.limit_hotkey(Action::Connect, &caller.hotkey).await?;
    let verifier = SecretString::from(body.code_verifier);
    let answer = services.connect_chutes_with_code(&caller.hotkey, &body.code, &verifier, &body.redirect_uri).await;
    Ok(Json(answer?))
}

#[utoipa::path(post, path = "/v1/miner/chutes-auth", tag = "miner", operation_id = "store_chutes_token",
    summary = "Connect Chutes with a refresh token (older oro-sdk)",
    request_body = LegacyChutesAuth,
    responses((status = 200, body = ConnectionChanged), (status = 400, description = "Chutes refused the token.", body = wire::api::ErrorDetail)))]
pub(super) async fn legacy_chutes_auth(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<LegacyChutesAuth>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    services.limit_hotkey(Action::Connect, &caller.hotkey).await?;
    let token = SecretString::from(body.refresh_token);
    Ok(Json(services.connect_chutes_with_refresh_token(&caller.hotkey, &token).await?))
}

#[utoipa::path(get, path = "/v1/miner/chutes-auth/status", tag = "miner", operation_id = "get_chutes_auth_status",
    summary = "Whether Chutes is connected (older oro-sdk)",
    responses((status = 200, body = LegacyChutesStatus)))]
pub(super) async fn legacy_chutes_status(
    State(services): State<Services>,
    Miner(caller): Miner,
) -> Result<Json<LegacyChutesStatus>, ApiError> {
    let status = services.provider_status(&caller.hotkey, Provider::Chutes).await?;
    Ok(Json(LegacyChutesStatus { connected: status.connected, updated_at: status.updated_at }))
}

/// `oro submit`: multipart `agent_name` and `file`.
#[utoipa::path(post, path = "/v1/miner/submit", tag = "miner", operation_id = "submit_agent",
    summary = "Submit an agent version for evaluation",
    request_body(content = super::openapi::BodySubmitAgent, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = SubmitAnswer),
        (status = 400, description = "No provider connected, a bad agent name or file (with its `error_code`), or a form that does not parse.", body = wire::api::ErrorDetail),
        (status = 413, description = "The file is too large.", body = super::openapi::CodedError),
        (status = 429, description = "The submission cooldown is running.", body = super::openapi::CodedError),
    ))]
pub(super) async fn submit(
    State(services): State<Services>,
    Miner(caller): Miner,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Json<SubmitAnswer>, ApiError> {
    // axum's own refusal is plain text; oro-sdk and the document expect `{"detail": ...}`.
    let mut form = form.map_err(|e| ApiError::Status(axum::http::StatusCode::BAD_REQUEST, e.body_text()))?;
    services.limit_hotkey(Action::Submit, &caller.hotkey).await?;
    let bad = |loc: &str, msg: &str| ApiError::Validation { loc: vec!["body".into(), loc.into()], msg: msg.into(), kind: "missing" };
    let mut agent_name = None;
    let mut file = None;
    let too_large = || ApiError::Service(service::ServiceError::Run(service::runs::RunError::FileTooLarge));
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { bad("file", &e.body_text()) })?
    {
        match field.name() {
            Some("agent_name") => agent_name = Some(field.text().await.map_err(|e| bad("agent_name", &e.body_text()))?),
            Some("file") => {
                let name = field.file_name().unwrap_or("agent.py").to_owned();
                let bytes = field.bytes().await.map_err(|e| {
                    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE { too_large() } else { bad("file", &e.body_text()) }
                })?;
                file = Some((name, bytes));
            }
            _ => {}
        }
    }
    let agent_name = agent_name.ok_or_else(|| bad("agent_name", "Field required"))?;
    let (file_name, bytes) = file.ok_or_else(|| bad("file", "Field required"))?;
    let answer = services.submit_agent(&caller.hotkey, &agent_name, &file_name, &bytes).await?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
pub(super) struct RunsQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/miner/runs", tag = "miner", operation_id = "list_miner_runs",
    summary = "The miner's evaluation runs, with spend against each run's cap",
    params(("limit" = Option<i64>, Query, description = "At most this many, newest first (default 50).")),
    responses((status = 200, body = RunList)))]
pub(super) async fn runs(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    Ok(Json(services.miner_runs(&caller.hotkey, q.limit.unwrap_or(50)).await?))
}

#[utoipa::path(post, path = "/v1/miner/runs/{eval_run_id}/stop", tag = "miner", operation_id = "stop_run_inference",
    summary = "Stop inference: the run's credential dies now",
    params(("eval_run_id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = wire::api::StoppedInference),
        (status = 404, description = "No such run of this miner.", body = super::openapi::CodedError),
        (status = 409, description = "The run is not running.", body = wire::api::ErrorDetail),
        (status = 502, description = "The provider did not confirm the key's end; retry.", body = wire::api::ErrorDetail),
    ))]
pub(super) async fn stop_run(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(eval_run_id): Path<String>,
) -> Result<Json<wire::api::StoppedInference>, ApiError> {
    let eval_run_id = uuid_from_path("eval_run_id", &eval_run_id)?;
    Ok(Json(services.stop_run_inference(&caller.hotkey, &eval_run_id).await?))
}

#[utoipa::path(get, path = "/v1/miner/budget", tag = "miner", operation_id = "get_budget",
    summary = "The miner's monthly ceiling on what runs commit",
    responses((status = 200, body = Budget)))]
pub(super) async fn budget(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<Budget>, ApiError> {
    Ok(Json(services.budget(&caller.hotkey).await?))
}

#[utoipa::path(put, path = "/v1/miner/budget", tag = "miner", operation_id = "set_budget",
    summary = "Set or remove (`null`) the monthly ceiling",
    request_body = SetBudget,
    responses((status = 200, body = Budget), (status = 422, description = "Negative, or not a whole number of cents.", body = super::openapi::HttpValidationError)))]
pub(super) async fn set_budget(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<SetBudget>,
) -> Result<Json<Budget>, ApiError> {
    Ok(Json(services.set_budget(&caller.hotkey, body.monthly_usd).await?))
}

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/miner/inference-auth/events", tag = "miner", operation_id = "list_inference_auth_events",
    summary = "The miner's audit log: connects, disconnects, default changes, runs' credentials",
    params(("limit" = Option<i64>, Query, description = "At most this many, newest first (default 100).")),
    responses((status = 200, body = AuditEvents)))]
pub(super) async fn events(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<AuditEvents>, ApiError> {
    Ok(Json(services.audit_events(&caller.hotkey, q.limit.unwrap_or(100)).await.map_err(service::ServiceError::from)?))
}
