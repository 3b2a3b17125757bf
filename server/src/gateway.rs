//! The run gateway's listener (`ORO_GATEWAY_BIND`): an OpenAI-compatible front for a run's
//! provider, reached with a run-bound token. Its own router, with none of the dashboard's
//! middleware: authorize and reserve (from this replica's allowance of the run's cap), forward
//! with the miner's token, settle from the answer's `usage`. The domain (tokens, prices, the reservation) is
//! `service::gateway`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use service::Services;
use service::gateway::{GatewayError, PricedModel, Reservation};
use wire::Provider;

/// Request bodies above this are refused (a prompt this large is not an agent's).
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Clone)]
pub struct Gateway {
    services: Services,
    http: reqwest::Client,
}

pub fn router(services: Services) -> Router {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .expect("an HTTP client");
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .fallback(|| async {
            openai_error(StatusCode::NOT_FOUND, "no such route on the run gateway", "invalid_request_error", "not_found")
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Gateway { services, http })
}

/// OpenAI's error shape, which every OpenAI client reads.
fn openai_error(status: StatusCode, message: &str, kind: &str, code: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": kind, "code": code}}))).into_response()
}

fn refusal(e: &GatewayError) -> Response {
    let message = e.to_string();
    match e {
        GatewayError::InvalidToken => openai_error(StatusCode::UNAUTHORIZED, &message, "invalid_request_error", "invalid_run_token"),
        GatewayError::CapReached { .. } => openai_error(StatusCode::PAYMENT_REQUIRED, &message, "insufficient_quota", "run_cap_reached"),
        GatewayError::ModelNotAllowed { .. } => {
            openai_error(StatusCode::BAD_REQUEST, &message, "invalid_request_error", "model_not_allowed")
        }
        GatewayError::Connection(_) => openai_error(StatusCode::PAYMENT_REQUIRED, &message, "insufficient_quota", "provider_unavailable"),
        GatewayError::Storage(err) => {
            tracing::error!(error = %err, "gateway storage error");
            openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway could not reach its database; try again",
                "server_error",
                "unavailable",
            )
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "gateway", operation_id = "create_chat_completion",
    summary = "OpenAI's chat completions, on the run's provider, metered against the run's cap",
    description = "The body is OpenAI's. `model` may be either provider's name for an allowlisted model; it is sent under the run \
                   provider's name. The request's worst case is reserved before it is forwarded and settled to the provider's \
                   reported usage after. With `stream: true` the answer is the provider's server-sent events, passed through.",
    request_body(content = Object, description = "OpenAI's chat completion request."),
    responses(
        (status = 200, description = "The provider's answer (JSON, or `text/event-stream` when streaming).", body = Object),
    ))]
pub(crate) async fn chat_completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    counted(forward(gw, headers, body, "chat/completions").await)
}

#[utoipa::path(post, path = "/v1/completions", tag = "gateway", operation_id = "create_completion",
    summary = "OpenAI's legacy completions, on the run's provider, metered against the run's cap",
    request_body(content = Object, description = "OpenAI's completion request."),
    responses(
        (status = 200, description = "The provider's answer (JSON, or `text/event-stream` when streaming).", body = Object),
    ))]
pub(crate) async fn completions(State(gw): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    counted(forward(gw, headers, body, "completions").await)
}

fn counted((provider, response): (Option<Provider>, Response)) -> Response {
    let provider = provider.map(Provider::as_str).unwrap_or("none");
    metrics::counter!("oro_gateway_requests_total", "provider" => provider, "status" => response.status().as_str().to_owned()).increment(1);
    response
}

/// Tokens and dollars by model (the model is always an allowlisted one: a bounded label).
fn record_usage(provider: Provider, model: &PricedModel, usage: Usage, cost: f64) {
    let (provider, name) = (provider.as_str(), model.chutes_name.clone());
    metrics::counter!("oro_gateway_tokens_total", "provider" => provider, "model" => name.clone(), "kind" => "prompt")
        .increment(usage.prompt);
    metrics::counter!("oro_gateway_tokens_total", "provider" => provider, "model" => name.clone(), "kind" => "completion")
        .increment(usage.completion);
    metrics::counter!("oro_gateway_cost_microusd_total", "provider" => provider, "model" => name).increment((cost * 1e6).round() as u64);
}

/// `GET /v1/models`: the allowlisted models under the run provider's names.
#[utoipa::path(get, path = "/v1/models", tag = "gateway", operation_id = "list_run_models",
    summary = "The allowlisted models under the run provider's names (OpenAI's list shape)",
    responses((status = 200, description = "`{\"object\": \"list\", \"data\": [{\"id\": ...}]}`", body = Object)))]
pub(crate) async fn models(State(gw): State<Gateway>, headers: HeaderMap) -> Response {
    let provider = match gw.services.check_run_token(bearer(&headers).unwrap_or_default()).await {
        Ok(provider) => provider,
        Err(e) => return refusal(&e),
    };
    let models = match gw.services.priced_models().await {
        Ok(m) => m,
        Err(e) => return refusal(&GatewayError::Storage(e)),
    };
    let data: Vec<Value> = models
        .iter()
        .map(|m| {
            json!({"id": m.name_for(provider), "object": "model", "owned_by": provider.as_str(),
                   "pricing": {"input_usd_per_mtok": m.input_usd_per_mtok, "output_usd_per_mtok": m.output_usd_per_mtok}})
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// What a request may cost at most: every byte of the body as a prompt token (a token is at
/// least a byte) and the whole `max_tokens`.
fn worst_case(model: &PricedModel, body_bytes: usize, max_tokens: u64) -> f64 {
    model.cost(body_bytes as u64, max_tokens)
}

async fn forward(gw: Gateway, headers: HeaderMap, body: Bytes, path: &'static str) -> (Option<Provider>, Response) {
    let started = std::time::Instant::now();
    let Some(token) = bearer(&headers) else {
        return (None, refusal(&GatewayError::InvalidToken));
    };
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
        return (None, openai_error(StatusCode::BAD_REQUEST, "the body must be a JSON object", "invalid_request_error", "invalid_json"));
    };
    let Some(asked) = request.get("model").and_then(Value::as_str) else {
        return (None, openai_error(StatusCode::BAD_REQUEST, "\"model\" is required", "invalid_request_error", "missing_model"));
    };
    let model = match gw.services.allowlisted_model(asked).await {
        Ok(m) => m,
        Err(e) => return (None, refusal(&e)),
    };
    let ceiling = gw.services.settings.gateway_max_output_tokens;
    let asked_max = request.get("max_completion_tokens").or_else(|| request.get("max_tokens")).and_then(Value::as_u64);
    let max_tokens = asked_max.unwrap_or(ceiling).min(ceiling);
    let reservation = match gw.services.reserve_run_spend(token, worst_case(&model, body.len(), max_tokens)).await {
        Ok(r) => r,
        Err(e) => return (None, refusal(&e)),
    };
    let provider = reservation.provider;
    // Chutes: the miner's token, held here. OpenRouter: the run's own capped key.
    let (base, upstream_token) = match provider {
        Provider::Chutes => match gw.services.gateway_upstream_token(&reservation.miner).await {
            Ok(t) => (gw.services.chutes.llm_base(), t),
            Err(e) => {
                settle(&gw.services, &reservation, 0.0).await;
                return (Some(provider), refusal(&e));
            }
        },
        Provider::OpenRouter => match reservation.upstream_key.clone() {
            Some(key) => (gw.services.openrouter.base_url(), key),
            None => {
                settle(&gw.services, &reservation, 0.0).await;
                return (Some(provider), refusal(&GatewayError::InvalidToken));
            }
        },
    };

    // The run provider's name, a bounded answer, and usage in streams.
    let streaming = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let client_asked_usage = request.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    request.insert("model".into(), Value::String(model.name_for(provider).to_owned()));
    request.remove("max_completion_tokens");
    request.insert("max_tokens".into(), json!(max_tokens));
    if streaming && !client_asked_usage {
        let options = request.entry("stream_options").or_insert_with(|| json!({}));
        if let Value::Object(o) = options {
            o.insert("include_usage".into(), Value::Bool(true));
        }
    }
    if provider == Provider::OpenRouter {
        // OpenRouter's usage accounting: the answer's `usage.cost` is what OpenRouter charged.
        request.insert("usage".into(), json!({"include": true}));
    }
    let url = format!("{}/{path}", base.trim_end_matches('/'));
    let ours_before = started.elapsed();
    let upstream_started = std::time::Instant::now();
    let sent = gw.http.post(url).bearer_auth(upstream_token.expose_secret()).json(&request).send().await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            settle(&gw.services, &reservation, 0.0).await;
            tracing::warn!(run = %reservation.run_id, error = %service::providers::scrub(&e.to_string()), "gateway: upstream unreachable");
            let message = format!("{} could not be reached; try again", provider.display_name());
            return (Some(provider), openai_error(StatusCode::BAD_GATEWAY, &message, "server_error", "upstream_unreachable"));
        }
    };
    let status = upstream.status();
    if !status.is_success() {
        settle(&gw.services, &reservation, 0.0).await;
        if status == reqwest::StatusCode::UNAUTHORIZED && provider == Provider::Chutes {
            gw.services.forget_upstream(&reservation.miner);
        }
        let (response, body) = pass_through(upstream).await;
        if status == reqwest::StatusCode::PAYMENT_REQUIRED {
            mark_no_credits(&gw.services, &reservation, &body).await;
        }
        return (Some(provider), response);
    }
    if !streaming {
        let bytes = match upstream.bytes().await {
            Ok(b) => b,
            Err(_) => {
                settle(&gw.services, &reservation, 0.0).await;
                let message = format!("{}'s answer broke off", provider.display_name());
                return (Some(provider), openai_error(StatusCode::BAD_GATEWAY, &message, "server_error", "upstream_broke_off"));
            }
        };
        let upstream_took = upstream_started.elapsed();
        let usage = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| usage_of(&v));
        let cost = usage.map(|u| u.cost(&model)).unwrap_or(reservation.reserved_usd);
        settle(&gw.services, &reservation, cost).await;
        record_usage(provider, &model, usage.unwrap_or_default(), cost);
        // Everything but the wait for the provider: authorization, reservation, settlement.
        metrics::histogram!("oro_gateway_overhead_seconds", "provider" => provider.as_str(), "stream" => "false")
            .record((started.elapsed().saturating_sub(upstream_took)).as_secs_f64());
        return (Some(provider), ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response());
    }
    // Before the first byte: authorization and reservation (settlement comes after the end).
    metrics::histogram!("oro_gateway_overhead_seconds", "provider" => provider.as_str(), "stream" => "true")
        .record(ours_before.as_secs_f64());
    (Some(provider), stream(gw.services.clone(), upstream, model, reservation, client_asked_usage, body.len()))
}

/// A 402 from the provider. The client gets the provider's answer either way. When the
/// miner's account itself cannot pay, the run is marked to fail with the reason a miner reads;
/// a refusal of this one request (OpenRouter's "fewer max_tokens", or the run key's own limit,
/// which the agent can live with by asking for less) leaves the run alone, as the gateway's
/// own cap does.
async fn mark_no_credits(services: &Services, reservation: &Reservation, body: &[u8]) {
    let said = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_lowercase();
    if said.contains("max_tokens") || said.contains("key limit") || said.contains("openrouter_key_limit") {
        return;
    }
    let reason = format!("no credits: insufficient balance on the {} account", reservation.provider.display_name());
    if let Err(e) = services.mark_provider_refusal(&reservation.run_id, &reason).await {
        tracing::error!(run = %reservation.run_id, error = %e, "gateway: could not mark the run as out of credits");
    }
    tracing::info!(run = %reservation.run_id, provider = %reservation.provider, "gateway: the provider refused payment; the run will fail with no credits");
}

/// An upstream refusal as it came (status, body, `Retry-After`), and its body.
async fn pass_through(upstream: reqwest::Response) -> (Response, Bytes) {
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = upstream.headers().get(header::RETRY_AFTER).cloned();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let body = upstream.bytes().await.unwrap_or_default();
    let mut response = (status, body.clone()).into_response();
    if let Some(v) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if let Some(v) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    (response, body)
}

/// What an answer says it used: tokens, and the provider's own charge where it gives one
/// (OpenRouter's `usage.cost`).
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    prompt: u64,
    completion: u64,
    charged_usd: Option<f64>,
}

impl Usage {
    fn cost(&self, model: &PricedModel) -> f64 {
        self.charged_usd.filter(|c| c.is_finite() && *c >= 0.0).unwrap_or_else(|| model.cost(self.prompt, self.completion))
    }
}

/// The usage of an answer or chunk that carries it.
fn usage_of(answer: &Value) -> Option<Usage> {
    let usage = answer.get("usage")?;
    Some(Usage {
        prompt: usage.get("prompt_tokens")?.as_u64()?,
        completion: usage.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
        charged_usd: usage.get("cost").and_then(Value::as_f64),
    })
}

async fn settle(services: &Services, reservation: &Reservation, cost: f64) {
    // From token counts, a request costs at most what it reserved (`max_tokens` bounds the
    // answer). A provider's own charge (OpenRouter's `usage.cost`) is recorded as it is, even
    // above the estimate: the truth, with OpenRouter's cap on the run key as the backstop.
    let cost = if reservation.provider == Provider::OpenRouter { cost } else { cost.min(reservation.reserved_usd) };
    if let Err(e) = services.settle_run_spend(reservation, cost).await {
        // The reservation stays held (counted against the cap): never less safe.
        tracing::error!(run = %reservation.run_id, error = %e, "gateway: could not settle a request's cost");
    }
}

/// Streams the upstream's SSE events to the client as they come, byte for byte, except the
/// usage-only event the client did not ask for. The upstream is read to its end even when the
/// client goes away, so what was generated is charged.
fn stream(
    services: Services,
    mut upstream: reqwest::Response,
    model: PricedModel,
    reservation: Reservation,
    client_asked_usage: bool,
    prompt_bytes: usize,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    // Tracked: shutdown waits for the settlement at the end of the stream.
    let tracker = services.clone();
    tracker.spawn_background(async move {
        let mut pending: Vec<u8> = Vec::new();
        let mut usage: Option<Usage> = None;
        let mut generated_chars = 0usize;
        let mut client_gone = false;
        loop {
            let chunk = match upstream.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) | Err(_) => break,
            };
            pending.extend_from_slice(&chunk);
            let mut out: Vec<u8> = Vec::new();
            while let Some(end) = find_event_end(&pending) {
                let event: Vec<u8> = pending.drain(..end).collect();
                let data = std::str::from_utf8(&event).ok().and_then(|e| e.trim().strip_prefix("data:")).map(str::trim);
                let parsed = data.filter(|d| *d != "[DONE]").and_then(|d| serde_json::from_str::<Value>(d).ok());
                let mut usage_only = false;
                if let Some(v) = &parsed {
                    if let Some(u) = usage_of(v) {
                        usage = Some(u);
                    }
                    let choices = v.get("choices").and_then(Value::as_array);
                    usage_only = v.get("usage").is_some_and(|u| !u.is_null()) && choices.is_none_or(|c| c.is_empty());
                    for choice in choices.into_iter().flatten() {
                        let delta = choice.get("delta").or_else(|| choice.get("text"));
                        generated_chars += delta.and_then(|d| d.get("content")).and_then(Value::as_str).map(str::len).unwrap_or(0);
                        generated_chars += choice.get("text").and_then(Value::as_str).map(str::len).unwrap_or(0);
                    }
                }
                if usage_only && !client_asked_usage {
                    continue;
                }
                out.extend_from_slice(&event);
            }
            if !client_gone && !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                client_gone = true;
            }
        }
        if !client_gone && !pending.is_empty() {
            let _ = tx.send(Ok(Bytes::from(pending))).await;
        }
        // No usage came (the stream broke off): charge what was counted, a token per byte of
        // the prompt and of the text generated (never less than the truth).
        let usage = usage.unwrap_or(Usage { prompt: prompt_bytes as u64, completion: generated_chars as u64, charged_usd: None });
        let cost = usage.cost(&model);
        settle(&services, &reservation, cost).await;
        record_usage(reservation.provider, &model, usage, cost);
    });
    let body = Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The end (exclusive) of the first complete SSE event in `buf`: after its blank line.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_their_blank_line() {
        assert_eq!(find_event_end(b"data: {}\n\ndata: [DONE]\n\n"), Some(10));
        assert_eq!(find_event_end(b"data: {}\r\n\r\n"), Some(12));
        assert_eq!(find_event_end(b"data: {"), None);
    }
}
