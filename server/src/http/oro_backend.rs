//! Routes oro-sdk has that belong to ORO's evaluation backend, not to an inference-provider
//! service: evaluation problems, uploads, episode results, packs, races, weights and race
//! selection. They answer in the SDK's own error shape (`{"detail": ...}`, 501) with a
//! sentence saying so, never a web page: 501 is a status the SDK's parsers leave alone, so
//! ORO's validator and CLI report the sentence instead of crashing. Signed routes still check
//! the signature first, as every signed route does.
//!
//! Any other `/v1/...` path answers FastAPI's `{"detail": "Not Found"}` (404) and a known
//! path with the wrong method `{"detail": "Method Not Allowed"}` (405).

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{any, get, post};

use super::error::ApiError;
use super::extract::{Miner, Validator};
use crate::startup::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/validator/evaluation-runs/{id}/problems", get(validator_route))
        .route("/v1/validator/uploads/presign", post(validator_route))
        .route("/v1/validator/episode-artifacts/presign", post(validator_route))
        .route("/v1/validator/episode-results", post(validator_route))
        .route("/v1/validator/pack/{sha}", get(validator_route))
        .route("/v1/validator/race/{race_id}/pack", post(validator_route))
        .route("/v1/validator/weight-salt", get(validator_route))
        .route("/v1/miner/race-selection", any(miner_route))
        .route("/v1/public/races/current", get(public_route))
        .route("/v1/public/races/history", get(public_route))
        .route("/v1/public/races/{race_id}", get(public_route))
        .route("/v1/public/races/{race_id}/{detail}", get(public_route))
}

const NOT_HELD: &str = "this is a route of ORO's evaluation backend: oro-inference holds miners' inference-provider connections and the runs' inference credentials, not evaluation problems, uploads, episode results, packs, races, weights or race selection; send this call to ORO's backend";

fn not_held() -> ApiError {
    ApiError::Status(StatusCode::NOT_IMPLEMENTED, NOT_HELD.into())
}

async fn validator_route(Validator(_): Validator) -> ApiError {
    not_held()
}

async fn miner_route(Miner(_): Miner) -> ApiError {
    not_held()
}

async fn public_route() -> ApiError {
    not_held()
}

/// FastAPI's answer for a path it has no route for.
pub async fn not_found() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND, "Not Found".into())
}

/// FastAPI's answer for a known path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::Status(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed".into())
}
