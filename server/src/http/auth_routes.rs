//! `/v1/auth/*`: bittensor-auth's challenge/session flow.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use service::Services;
use service::auth::AuthError;
use service::domain::Hotkey;
use service::rate_limit::Action;
use wire::api::{ChallengeAnswer, ChallengeRequest, LogoutAnswer, SessionAnswer, SessionRequest};

use super::error::ApiError;
use super::extract::ApiJson;
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/session", post(session))
        .route("/v1/auth/logout", post(logout))
}

#[utoipa::path(post, path = "/v1/auth/challenge", tag = "auth", operation_id = "request_challenge",
    summary = "A challenge for the hotkey to sign",
    request_body = ChallengeRequest,
    responses((status = 200, body = ChallengeAnswer), (status = 401, description = "Not an SS58 hotkey, or a banned one.", body = wire::api::ErrorDetail)))]
pub(super) async fn challenge(
    State(services): State<Services>,
    ApiJson(body): ApiJson<ChallengeRequest>,
) -> Result<Json<ChallengeAnswer>, ApiError> {
    let hotkey = Hotkey::parse(body.hotkey.trim()).map_err(AuthError::from)?;
    let issued = services.issue_challenge(&hotkey).await?;
    Ok(Json(ChallengeAnswer { challenge: issued.challenge, expires_at: issued.expires_at }))
}

#[utoipa::path(post, path = "/v1/auth/session", tag = "auth", operation_id = "create_session_endpoint",
    summary = "Trade a signed challenge for a bearer session",
    request_body = SessionRequest,
    responses(
        (status = 200, body = SessionAnswer),
        (status = 401, description = "A bad signature, or an unknown or used challenge.", body = wire::api::ErrorDetail),
        (status = 403, description = "A banned hotkey.", body = wire::api::ErrorDetail),
        (status = 429, description = "Too many sign-ins.", body = super::openapi::CodedError),
    ))]
pub(super) async fn session(
    State(services): State<Services>,
    ApiJson(body): ApiJson<SessionRequest>,
) -> Result<Json<SessionAnswer>, ApiError> {
    let hotkey = Hotkey::parse(body.hotkey.trim()).map_err(AuthError::from)?;
    // The signature first: roles (and so a ban) are told only to the key's holder.
    services.redeem_challenge(&hotkey, &body.challenge, &body.signature).await?;
    let caller = services.caller(hotkey.clone()).await?;
    let role = caller.role().as_str();
    let opened = services.open_api_session(&hotkey, role).await?;
    // Counted once the signature has proved the hotkey: naming someone's hotkey in bad
    // requests must not lock them out.
    if let Err(refused) = services.limit_hotkey(Action::SignIn, &hotkey).await {
        services.close_api_session(&opened.token).await?;
        return Err(refused.into());
    }
    Ok(Json(SessionAnswer { session_token: opened.token, expires_at: opened.expires_at, role: role.to_owned() }))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", operation_id = "logout", summary = "End the bearer session",
    security(("session" = [])),
    responses((status = 200, body = LogoutAnswer), (status = 401, description = "No such session.", body = wire::api::ErrorDetail)))]
pub(super) async fn logout(State(services): State<Services>, headers: HeaderMap) -> Result<Json<LogoutAnswer>, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AuthError::InvalidSession)?;
    if !services.close_api_session(token.trim()).await? {
        return Err(AuthError::InvalidSession.into());
    }
    Ok(Json(LogoutAnswer { success: true }))
}
