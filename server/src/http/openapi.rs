//! The OpenAPI 3.1 document (`GET /openapi.json`), generated from the handlers' `#[utoipa::path]`
//! attributes and the wire types: never written by hand, so it cannot drift from the routes
//! without a test noticing (`server/tests/api/openapi.rs`, and the client generated from it).
//!
//! What the attributes do not say is added here once: the authentication of every miner and
//! validator route (signed headers, or a bearer session), the error answers every such route
//! can give, and the gateway's own server entry.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, ResponseBuilder, Server, content::Content};
use utoipa::{OpenApi, ToSchema};
use wire::signing::{HEADER_HOTKEY, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP};

use super::{auth_routes, miner, public, validator};

/// The four signed-request headers (one requirement: all four together).
const SIGNED_HEADERS: [(&str, &str); 4] = [
    (HEADER_HOTKEY, "The caller's hotkey, SS58."),
    (HEADER_TIMESTAMP, "Unix seconds; refused when further than the allowed skew from the server's clock."),
    (HEADER_NONCE, "A value never used before by this hotkey (a UUID)."),
    (
        HEADER_SIGNATURE,
        "0x-hex sr25519 signature (context `substrate`) of `{hotkey}:{timestamp}:{nonce}`. Operators may also require \
         `X-Signature-Bound`, the signature of the request bound to method, host, path and body (see the README).",
    ),
];

/// FastAPI's 422 body: every field that did not parse.
#[derive(ToSchema)]
#[schema(as = HTTPValidationError)]
#[allow(dead_code)] // documents the shape `error.rs` writes
pub struct HttpValidationError {
    detail: Vec<ValidationError>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ValidationError {
    /// Where: `["body", "credential"]`, `["path", "provider"]`, `["query", "limit"]`.
    loc: Vec<String>,
    msg: String,
    #[schema(rename = "type")]
    kind: String,
}

/// A refusal oro-sdk reads by its code (`{"detail": ..., "error_code": ...}`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CodedError {
    detail: String,
    #[schema(
        example = "AT_CAPACITY",
        pattern = "^(INVALID_AGENT_NAME|INVALID_FILE|FILE_TOO_LARGE|COOLDOWN_ACTIVE|EVAL_RUN_NOT_FOUND|AGENT_VERSION_NOT_FOUND|AGENT_NOT_FOUND|NOT_RUN_OWNER|LEASE_EXPIRED|RUN_ALREADY_COMPLETE|AT_CAPACITY|RATE_LIMIT_EXCEEDED)$"
    )]
    error_code: String,
    /// Submit cooldown: seconds until the next submission is accepted.
    remaining_seconds: Option<i64>,
    /// Submit cooldown: when the next submission is accepted (RFC 3339).
    next_allowed_at: Option<String>,
    /// Rate limits: seconds to wait (also in `Retry-After`).
    retry_after_seconds: Option<i64>,
}

/// What a validator's claim may carry: its resource report (optional, not needed here).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ClaimWorkRequest {
    #[schema(value_type = Option<Object>)]
    service_versions: Option<()>,
    cpu_pct: Option<f64>,
    ram_pct: Option<f64>,
    disk_pct: Option<f64>,
    docker_container_count: Option<i64>,
    runtime_contract: Option<i64>,
}

/// A heartbeat's resource report (optional).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HeartbeatRequest {
    #[schema(value_type = Option<Object>)]
    service_versions: Option<()>,
    cpu_pct: Option<f64>,
    ram_pct: Option<f64>,
    disk_pct: Option<f64>,
    docker_container_count: Option<i64>,
}

/// A progress report: the validator's per-problem progress, kept as sent.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProgressUpdateRequest {
    #[schema(value_type = Vec<Object>)]
    problems: Vec<()>,
}

/// `oro submit`'s multipart form (FastAPI's name for it).
#[derive(ToSchema)]
#[schema(as = Body_submit_agent)]
#[allow(dead_code)]
pub struct BodySubmitAgent {
    agent_name: String,
    /// The agent's Python file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

/// The model list's two forms.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ModelListAnswer {
    Plain(wire::api::ModelList),
    Ranked(RankedModelList),
}

/// `GET /v1/public/inference/models?ranked=true`: oro-sdk's ranked form.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub struct RankedModelList {
    models: Vec<RankedModel>,
    /// How the list is ordered (`catalog_order`).
    ranked_by: String,
    /// When the list last changed (RFC 3339).
    as_of: String,
}

#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub struct RankedModel {
    id: String,
    rank_metric: Option<f64>,
    healthy: bool,
}

/// The run gateway's error, OpenAI's shape (every OpenAI client reads it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiError {
    error: OpenAiErrorBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OpenAiErrorBody {
    #[schema(example = "this run has spent its $5.00 cap")]
    message: String,
    /// `insufficient_quota`, `invalid_request_error`, or the provider's own.
    #[schema(rename = "type")]
    kind: String,
    /// `run_cap_reached`, `model_not_allowed`, `invalid_run_token`, `provider_unavailable`, ...
    code: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ORO inference providers",
        description = "Miners connect their own Chutes or OpenRouter account here; validators claim evaluation runs and receive a \
                       run-bound credential that can spend at most the run's cap, on allowlisted models, until the run ends. \
                       The routes and bodies follow ORO's backend (oro-sdk) wherever it has them. Errors are FastAPI's shape: \
                       `{\"detail\": \"...\"}`, a 422 lists the fields that did not parse, and refusals oro-sdk reads by code carry \
                       `error_code`. Miner and validator routes take either the four signed-request headers or a bearer \
                       session from `/v1/auth/session`. Text holding a NUL character, anywhere in \
                       a request, is refused with a 422.",
        license(name = "MIT"),
    ),
    paths(
        public::health,
        public::ready,
        public::deep_health,
        public::models,
        public::agent_code,
        public::chutes_oauth,
        auth_routes::challenge,
        auth_routes::session,
        auth_routes::logout,
        miner::status,
        miner::one,
        miner::connect,
        miner::disconnect,
        miner::set_default,
        miner::events,
        miner::exchange_code,
        miner::legacy_chutes_auth,
        miner::legacy_chutes_status,
        miner::submit,
        miner::runs,
        miner::stop_run,
        miner::budget,
        miner::set_budget,
        miner::agents,
        miner::agent_versions,
        miner::agent_version,
        validator::claim,
        validator::heartbeat,
        validator::progress,
        validator::complete,
        validator::code,
        crate::gateway::chat_completions,
        crate::gateway::completions,
        crate::gateway::models,
    ),
    components(schemas(HttpValidationError, ValidationError, CodedError, OpenAiError, wire::api::ErrorDetail)),
    tags(
        (name = "public", description = "No authentication."),
        (name = "auth", description = "bittensor-auth's challenge and session: a bearer token instead of signing every request."),
        (name = "miner", description = "What `oro inference ...` and `oro submit` call: a miner's provider connections, runs and budget."),
        (name = "validator", description = "Claiming evaluation runs and reporting on them (validator hotkeys only)."),
        (name = "gateway", description = "The run gateway, on its own listener: OpenAI-compatible, reached with a run's `oro-run-...` token."),
    ),
)]
struct ApiDoc;

/// The document for this deployment: its public URL, and the gateway's for the gateway routes.
pub fn document(settings: &service::Settings) -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.servers = Some(vec![Server::new(settings.public_url.as_str().trim_end_matches('/'))]);

    let components = doc.components.get_or_insert_with(Default::default);
    for (name, description) in SIGNED_HEADERS {
        components.add_security_scheme(
            header_name(name),
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(header_name(name), description.to_owned()))),
        );
    }
    components.add_security_scheme(
        "session",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("A session token from `POST /v1/auth/session`.")).build(),
        ),
    );
    components.add_security_scheme(
        "run_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A run's `oro-run-...` token, from the claim's `inference_token.access_token`; it dies with the run."))
                .build(),
        ),
    );

    let signed =
        SIGNED_HEADERS.iter().fold(SecurityRequirement::default(), |req, (name, _)| req.add(header_name(name), Vec::<String>::new()));
    let session = SecurityRequirement::new("session", Vec::<String>::new());
    // The gateway's paths carry their `/v1`: its server entry is the listener's root.
    let gateway = Server::new(settings.gateway_base_url().trim_end_matches("/v1"));
    for (path, item) in doc.paths.paths.iter_mut() {
        let is_gateway = ["/v1/chat/completions", "/v1/completions", "/v1/models"].contains(&path.as_str());
        if is_gateway {
            item.servers = Some(vec![gateway.clone()]);
        }
        for op in operations(item) {
            let tags = op.tags.clone().unwrap_or_default();
            if is_gateway {
                op.security = Some(vec![SecurityRequirement::new("run_token", Vec::<String>::new())]);
                add_response(op, "401", "No run token, or the run has ended.", "OpenAiError");
                // What refuses a completion: the allowlist, the cap, and the provider.
                if op.request_body.is_some() {
                    add_response(
                        op,
                        "400",
                        "A model that is not allowlisted (the message names the models page), or a malformed body.",
                        "OpenAiError",
                    );
                    add_response(
                        op,
                        "402",
                        "The run has spent its cap (`run_cap_reached`), or the provider account cannot pay (the provider's own answer).",
                        "OpenAiError",
                    );
                    add_response(op, "429", "The provider is rate limiting: its answer and `Retry-After`, passed through.", "OpenAiError");
                    add_response(op, "502", "The provider could not be reached.", "OpenAiError");
                }
            } else if tags.iter().any(|t| t == "miner" || t == "validator") {
                op.security = Some(vec![signed.clone(), session.clone()]);
                add_response(
                    op,
                    "401",
                    "Not signed, a bad signature, a stale timestamp, a used nonce, or an unknown session.",
                    "HTTPError",
                );
                add_response(
                    op,
                    "403",
                    "The hotkey may not call this route (a miner route by a banned key, a validator route by a non-validator).",
                    "HTTPError",
                );
                add_response(op, "429", "Too many requests from this hotkey or address: wait `Retry-After` seconds.", "CodedError");
            }
            // FastAPI's 422 is the REST API's; the gateway answers in OpenAI's shape (above).
            if !is_gateway && (op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty())) {
                add_response(op, "422", "A field that did not parse.", "HTTPValidationError");
            }
            // OpenAPI wants every answer described; a success needs no more than its body.
            for response in op.responses.responses.values_mut() {
                if let utoipa::openapi::RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = "Done: the body says what was done.".to_owned();
                }
            }
        }
    }
    doc
}

fn header_name(name: &str) -> String {
    // `x-hotkey` -> `X-Hotkey`: the spelling clients print.
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().filter_map(|op| op.as_mut())
}

/// Adds an error answer unless the route documents its own for that status.
fn add_response(op: &mut utoipa::openapi::path::Operation, status: &str, description: &str, schema: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(Ref::from_schema_name(schema))))
        .build();
    op.responses.responses.insert(status.to_owned(), response.into());
}
