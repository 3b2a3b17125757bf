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

async fn agents(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<MinerAgents>, ApiError> {
    Ok(Json(services.miner_agents(&caller.hotkey).await.map_err(service::ServiceError::from)?))
}

async fn agent_versions(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(agent_id): Path<String>,
) -> Result<Json<Vec<AgentVersionEntry>>, ApiError> {
    let agent_id = uuid_from_path("agent_id", &agent_id)?;
    Ok(Json(services.agent_versions(&caller.hotkey, &agent_id).await.map_err(service::ServiceError::from)?))
}

async fn agent_version(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(id): Path<String>,
) -> Result<Json<AgentVersionStatus>, ApiError> {
    let id = uuid_from_path("agent_version_id", &id)?;
    Ok(Json(services.agent_version_status(&caller.hotkey, &id).await.map_err(service::ServiceError::from)?))
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
async fn status(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<InferenceAuthList>, ApiError> {
    let mut list = services.inference_auth_status(&caller.hotkey).await.map_err(service::ServiceError::from)?;
    list.providers.retain(|p| p.state != Some(wire::api::ConnectionState::NotConnected));
    Ok(Json(list))
}

async fn one(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(provider): Path<String>,
) -> Result<Json<ProviderStatus>, ApiError> {
    let provider = provider_from_path(&provider)?;
    Ok(Json(services.provider_status(&caller.hotkey, provider).await.map_err(service::ServiceError::from)?))
}

async fn connect(
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
    Ok(Json(changed.map_err(service::ServiceError::from)?))
}

async fn disconnect(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(provider): Path<String>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    let provider = provider_from_path(&provider)?;
    Ok(Json(services.disconnect(&caller.hotkey, provider).await.map_err(service::ServiceError::from)?))
}

async fn set_default(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<SetDefault>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    Ok(Json(services.set_default_provider(&caller.hotkey, body.provider).await.map_err(service::ServiceError::from)?))
}

async fn exchange_code(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<ExchangeCode>,
) -> Result<Json<ExchangeCodeAnswer>, ApiError> {
    services.limit_hotkey(Action::Connect, &caller.hotkey).await?;
    let verifier = SecretString::from(body.code_verifier);
    let answer = services.connect_chutes_with_code(&caller.hotkey, &body.code, &verifier, &body.redirect_uri).await;
    Ok(Json(answer.map_err(service::ServiceError::from)?))
}

async fn legacy_chutes_auth(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<LegacyChutesAuth>,
) -> Result<Json<ConnectionChanged>, ApiError> {
    services.limit_hotkey(Action::Connect, &caller.hotkey).await?;
    let token = SecretString::from(body.refresh_token);
    Ok(Json(services.connect_chutes_with_refresh_token(&caller.hotkey, &token).await.map_err(service::ServiceError::from)?))
}

async fn legacy_chutes_status(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<LegacyChutesStatus>, ApiError> {
    let status = services.provider_status(&caller.hotkey, Provider::Chutes).await.map_err(service::ServiceError::from)?;
    Ok(Json(LegacyChutesStatus { connected: status.connected, updated_at: status.updated_at }))
}

/// `oro submit`: multipart `agent_name` and `file`.
async fn submit(
    State(services): State<Services>,
    Miner(caller): Miner,
    mut form: axum::extract::Multipart,
) -> Result<Json<SubmitAnswer>, ApiError> {
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
    let answer = services.submit_agent(&caller.hotkey, &agent_name, &file_name, &bytes).await.map_err(service::ServiceError::from)?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

async fn runs(State(services): State<Services>, Miner(caller): Miner, ApiQuery(q): ApiQuery<RunsQuery>) -> Result<Json<RunList>, ApiError> {
    Ok(Json(services.miner_runs(&caller.hotkey, q.limit.unwrap_or(50)).await.map_err(service::ServiceError::from)?))
}

async fn stop_run(
    State(services): State<Services>,
    Miner(caller): Miner,
    Path(eval_run_id): Path<String>,
) -> Result<Json<wire::api::StoppedInference>, ApiError> {
    let eval_run_id = uuid_from_path("eval_run_id", &eval_run_id)?;
    Ok(Json(services.stop_run_inference(&caller.hotkey, &eval_run_id).await.map_err(service::ServiceError::from)?))
}

async fn budget(State(services): State<Services>, Miner(caller): Miner) -> Result<Json<Budget>, ApiError> {
    Ok(Json(services.budget(&caller.hotkey).await.map_err(service::ServiceError::from)?))
}

async fn set_budget(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiJson(body): ApiJson<SetBudget>,
) -> Result<Json<Budget>, ApiError> {
    Ok(Json(services.set_budget(&caller.hotkey, body.monthly_usd).await.map_err(service::ServiceError::from)?))
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<i64>,
}

async fn events(
    State(services): State<Services>,
    Miner(caller): Miner,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Json<AuditEvents>, ApiError> {
    Ok(Json(services.audit_events(&caller.hotkey, q.limit.unwrap_or(100)).await.map_err(service::ServiceError::from)?))
}
