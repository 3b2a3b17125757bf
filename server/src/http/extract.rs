//! Extractors: JSON bodies with FastAPI-style 422s, and the authenticated caller (a signed
//! request or a bearer session), as a miner or as a validator.

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use service::Services;
use service::auth::signed_request::{SignedHeaders, UnspentNonce};
use service::auth::{AuthError, roles};
use service::domain::Caller;

use super::error::ApiError;

/// `Json<T>` whose rejection is FastAPI's 422.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::Status(rejection.status(), "request body too large".into()))
            }
            Err(rejection) => {
                use axum::extract::rejection::JsonRejection::*;
                let (kind, msg) = match &rejection {
                    JsonDataError(e) => ("value_error", e.body_text()),
                    JsonSyntaxError(_) => ("json_invalid", "JSON decode error".to_owned()),
                    MissingJsonContentType(_) => {
                        ("model_attributes_type", "Expected a JSON body (Content-Type: application/json)".to_owned())
                    }
                    _ => ("value_error", rejection.body_text()),
                };
                Err(ApiError::Validation { loc: vec!["body".into()], msg, kind })
            }
        }
    }
}

/// `Query<T>` whose rejection is FastAPI's 422 (`?limit=abc`).
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::Validation { loc: vec!["query".into()], msg: rejection.body_text(), kind: "value_error" })
    }
}

/// The `If-None-Match` header alone: the `HeaderMap` extractor would copy every header of a
/// request on a route that needs one.
pub struct IfNoneMatch(pub Option<axum::http::HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IfNoneMatch(parts.headers.get(axum::http::header::IF_NONE_MATCH).cloned()))
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Any authenticated caller.
pub struct Authenticated(pub Caller);

impl<S> FromRequestParts<S> for Authenticated
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (caller, _) = authenticate(parts, &Services::from_ref(state), SpendNonce::Now).await?;
        Ok(Authenticated(caller))
    }
}

/// When a signed request's nonce is spent: by the extractor, or by the handler's own
/// transaction.
#[derive(PartialEq)]
enum SpendNonce {
    Now,
    Later,
}

/// The caller of a bearer-session or signed request, and with `SpendNonce::Later` the nonce
/// left to spend.
async fn authenticate(parts: &Parts, services: &Services, spend: SpendNonce) -> Result<(Caller, Option<UnspentNonce>), ApiError> {
    let (hotkey, unspent) = if let Some(token) = header(parts, "authorization").and_then(|v| v.strip_prefix("Bearer ")) {
        (services.api_session_holder(token.trim()).await?, None)
    } else {
        let headers = SignedHeaders {
            hotkey: header(parts, wire::signing::HEADER_HOTKEY),
            timestamp: header(parts, wire::signing::HEADER_TIMESTAMP),
            nonce: header(parts, wire::signing::HEADER_NONCE),
            signature: header(parts, wire::signing::HEADER_SIGNATURE),
        };
        if !headers.is_present() {
            return Err(AuthError::NotSignedIn.into());
        }
        if spend == SpendNonce::Now {
            (services.verify_signed_request(&headers).await?, None)
        } else {
            let unspent = services.check_signed_request(&headers)?;
            (unspent.hotkey.clone(), Some(unspent))
        }
    };
    Ok((services.caller(hotkey).await?, unspent))
}

/// A caller allowed on miner routes.
pub struct Miner(pub Caller);

impl<S> FromRequestParts<S> for Miner
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        Services::from_ref(state).require_miner(&caller).await?;
        Ok(Miner(caller))
    }
}

/// A caller in the validator set.
pub struct Validator(pub Caller);

impl<S> FromRequestParts<S> for Validator
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        roles::require_validator(&caller)?;
        Ok(Validator(caller))
    }
}

/// A validator claiming work: as [`Validator`], with the signed request's nonce not yet spent
/// (`None` for a bearer session). The claim spends it in its first transaction.
pub struct ClaimingValidator(pub Caller, pub Option<UnspentNonce>);

impl<S> FromRequestParts<S> for ClaimingValidator
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let (caller, unspent) = authenticate(parts, &Services::from_ref(state), SpendNonce::Later).await?;
        roles::require_validator(&caller)?;
        Ok(ClaimingValidator(caller, unspent))
    }
}
