//! Request and answer bodies of the REST API, field for field as ORO's SDK (oro-sdk 4.0.1)
//! sends and reads them. Fields the SDK does not know are additions it ignores.

use serde::{Deserialize, Serialize};

use crate::Provider;

/// An error answer, FastAPI's shape: `{"detail": "..."}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = HTTPError))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub detail: String,
}

/// The state of one provider connection, as a miner sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    NotConnected,
    Connected,
    /// The provider refused the stored credential (e.g. Chutes `invalid_grant`): the miner
    /// has to connect again.
    NeedsReconsent,
}

/// `GET /v1/miner/inference-auth/{provider}` and one row of the list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderStatus {
    pub provider: Provider,
    pub connected: bool,
    /// RFC 3339 time of the last change, absent when never connected.
    pub updated_at: Option<String>,
    /// Our additions (the SDK ignores them): connection state and a masked label such as
    /// `sk-or-v1-...3f2a` or the Chutes username. Never the credential itself.
    #[serde(default)]
    pub state: Option<ConnectionState>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub is_default: bool,
}

/// `GET /v1/miner/inference-auth`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InferenceAuthList {
    pub providers: Vec<ProviderStatus>,
    pub default_provider: Option<Provider>,
}

/// `POST /v1/miner/inference-auth/{provider}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StoreInferenceCredentialRequest))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectCredential {
    #[cfg_attr(feature = "openapi", schema(write_only, format = Password))]
    pub credential: String,
}

/// `POST /v1/miner/chutes/exchange-code`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ExchangeChutesCodeRequest))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeCode {
    #[cfg_attr(feature = "openapi", schema(write_only, format = Password))]
    pub code: String,
    #[cfg_attr(feature = "openapi", schema(write_only, format = Password))]
    pub code_verifier: String,
    pub redirect_uri: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeCodeAnswer {
    pub ok: bool,
    pub default_provider: Option<Provider>,
}

/// `POST /v1/miner/chutes-auth` (legacy).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = StoreChutesTokenRequest))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyChutesAuth {
    #[cfg_attr(feature = "openapi", schema(write_only, format = Password))]
    pub refresh_token: String,
}

/// `GET /v1/miner/chutes-auth/status` (legacy).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyChutesStatus {
    pub connected: bool,
    pub updated_at: Option<String>,
}

/// `PATCH /v1/miner/inference-auth/default`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = SetDefaultProviderRequest))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetDefault {
    pub provider: Provider,
}

/// The answer of connect, set-default and disconnect.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionChanged {
    pub ok: bool,
    pub provider: Provider,
    pub default_provider: Option<Provider>,
    pub message: String,
}

/// One entry of the per-miner audit log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: String,
    pub provider: Option<Provider>,
    pub kind: String,
    pub detail: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvents {
    pub events: Vec<AuditEvent>,
}

/// `GET /v1/public/inference/models?ranked=false`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    pub models: Vec<String>,
    /// Chutes name -> OpenRouter name: Chutes ids are accepted on OpenRouter runs.
    pub aliases: std::collections::BTreeMap<String, String>,
}

/// One canonical model under both providers' names (our page's view of the catalog).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub chutes_name: String,
    pub openrouter_name: String,
    pub is_default: bool,
    /// What the run gateway charges a run, USD per million prompt and completion tokens.
    #[serde(default)]
    pub input_usd_per_mtok: f64,
    #[serde(default)]
    pub output_usd_per_mtok: f64,
}

/// Whether a connected account can pay for the next run (the dashboard's balance line).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderBalance {
    pub provider: Provider,
    /// What is left, where the provider says (OpenRouter's credits minus usage).
    pub balance_usd: Option<f64>,
    /// Whether the account can pay one run's cap (Chutes: whether a 1-token call was accepted).
    pub can_pay_a_run: bool,
    /// The sentence to show, with where to top up when it cannot.
    pub message: String,
}

/// `GET /v1/public/chutes-oauth`: how a client starts "sign in with Chutes" for this service
/// (the code comes back to this service's exchange, which holds the client secret). Public, as
/// every authorize URL shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChutesOAuthInfo {
    /// The identity provider's base: the authorize page is `{authorize_base}/idp/authorize`.
    pub authorize_base: String,
    pub client_id: String,
    pub scopes: String,
}

/// `POST /v1/auth/challenge`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeRequest {
    pub hotkey: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeAnswer {
    pub challenge: String,
    /// Unix seconds, as bittensor-auth answers.
    pub expires_at: i64,
}

/// `POST /v1/auth/session`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub hotkey: String,
    pub challenge: String,
    pub signature: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionAnswer {
    #[cfg_attr(feature = "openapi", schema(read_only, format = Password))]
    pub session_token: String,
    /// Unix seconds, as bittensor-auth answers.
    pub expires_at: i64,
    pub role: String,
}

/// `POST /v1/auth/logout`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogoutAnswer {
    pub success: bool,
}

/// The per-run scoped credential a validator receives with a claim.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InferenceToken {
    pub provider: Provider,
    #[cfg_attr(feature = "openapi", schema(read_only, format = Password))]
    pub access_token: String,
    pub base_url: String,
    pub expires_at: String,
}

/// The variables a run's sandbox gets (our addition to the claim answer).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct SandboxEnv {
    pub INFERENCE_PROVIDER: Provider,
    #[cfg_attr(feature = "openapi", schema(read_only, format = Password))]
    pub INFERENCE_ACCESS_TOKEN: String,
    pub INFERENCE_BASE_URL: String,
    pub SANDBOX_MODEL: String,
}

/// `POST /v1/validator/work/claim` -> 200.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ClaimWorkResponse))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimAnswer {
    pub eval_run_id: String,
    pub agent_version_id: String,
    pub suite_id: i64,
    pub lease_expires_at: String,
    pub code_download_url: String,
    pub race_id: Option<String>,
    pub inference_token: Option<InferenceToken>,
    /// For validators of the oro-sdk 1.0.50 generation (ORO's public validator), which know
    /// only this field: the Chutes token of a Chutes run, absent on OpenRouter runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(read_only, format = Password))]
    pub chutes_access_token: Option<String>,
    #[serde(default)]
    pub sandbox_env: Option<SandboxEnv>,
}

/// `POST /v1/validator/evaluation-runs/{id}/complete`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CompleteRunRequest))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CompleteRun {
    pub terminal_status: String,
    #[serde(default)]
    pub validator_score: Option<f64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub score_components: Option<serde_json::Value>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub sandbox_metadata: Option<serde_json::Value>,
}

/// How far an agent version's work item is (`CompleteRunAnswer::work_item`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkItemStatus {
    pub included_success_count: i64,
    pub required_successes: i64,
    pub is_closed: bool,
}

/// `POST /v1/validator/evaluation-runs/{id}/complete` -> 200 (oro-sdk's `CompleteRunResponse`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CompleteRunResponse))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompleteRunAnswer {
    pub eval_run_id: String,
    /// The terminal status recorded, as the validator sent it (`SUCCESS`, `FAILED`, ...).
    pub status: String,
    pub work_item: WorkItemStatus,
    pub agent_version_became_eligible: bool,
    pub final_score: Option<f64>,
}

/// `/heartbeat` and `/progress` -> 200 (oro-sdk's `HeartbeatResponse`, `ProgressUpdateResponse`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRenewed {
    pub ok: bool,
    /// Progress reports only: the report was kept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accepted: Option<bool>,
    pub lease_expires_at: String,
}

/// `POST /v1/miner/submit` -> 200.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitAnswer {
    pub admission_status: String,
    pub hotkey: String,
    pub agent_id: Option<String>,
    pub agent_version_id: Option<String>,
    pub admission_reason: Option<String>,
    pub next_allowed_at: Option<String>,
    pub message: String,
    #[serde(default)]
    pub eval_run_id: Option<String>,
}

/// One run as its miner sees it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub eval_run_id: String,
    pub agent_name: String,
    pub agent_version_id: String,
    pub status: String,
    pub provider: Option<Provider>,
    pub failure_reason: Option<String>,
    pub cap_usd: Option<f64>,
    pub spend_usd: Option<f64>,
    pub score: Option<f64>,
    pub created_at: String,
    pub completed_at: Option<String>,
    /// Running, but its credential no longer works: the miner stopped its inference (or
    /// disconnected the provider that minted it). There is nothing left to stop.
    #[serde(default)]
    pub inference_stopped: bool,
}

/// `POST /v1/miner/runs/{id}/stop`: the run's credential is dead from this answer on.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoppedInference {
    pub eval_run_id: String,
    pub provider: Provider,
    /// What the run had spent when its credential died, when known.
    pub spend_usd: Option<f64>,
    pub message: String,
}

/// `GET /v1/miner/runs`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    /// This calendar month (UTC): recorded spend per provider.
    #[serde(default)]
    pub month_spend_usd: std::collections::BTreeMap<String, f64>,
    /// How each provider's runs are protected on this service.
    #[serde(default)]
    pub protection: Option<RunProtection>,
    /// The miner's default now: what a queued run will use when a validator claims it.
    #[serde(default)]
    pub default_provider: Option<Provider>,
}

/// What a validator holds for a run, per provider, and the cap on what it can spend.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunProtection {
    pub run_cap_usd: f64,
    pub chutes: RunCredentialKind,
    pub openrouter: RunCredentialKind,
}

/// The kind of credential a validator holds for a run.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunCredentialKind {
    /// A run-bound token for the run gateway: capped, allowlisted models, dies with the run.
    Gateway,
    /// A key the provider itself caps (OpenRouter's per-run key): capped, dies with the run.
    CappedKey,
    /// The miner's own provider token (Chutes, `ORO_CHUTES_RUN_CREDENTIAL=direct`): not capped.
    ProviderToken,
}

impl RunCredentialKind {
    /// Whether a stolen credential of this kind can spend at most the run's cap.
    pub fn is_capped(self) -> bool {
        !matches!(self, RunCredentialKind::ProviderToken)
    }
}

/// `GET|PUT /v1/miner/budget`: the miner's monthly ceiling on per-run key caps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// `null`: no ceiling.
    pub monthly_usd: Option<f64>,
    /// Caps committed by this month's OpenRouter runs (spend where recorded, else the cap).
    #[serde(default)]
    pub committed_usd: f64,
    /// The month counted, e.g. `2026-11`.
    #[serde(default)]
    pub month: String,
    /// What each run commits when it starts (its cap): a ceiling below it lets no run start.
    #[serde(default)]
    pub run_cap_usd: Option<f64>,
}

impl Budget {
    /// A warning when the ceiling leaves no room for the next run.
    pub fn warning(&self) -> Option<String> {
        let (ceiling, cap) = (self.monthly_usd?, self.run_cap_usd?);
        if ceiling + 1e-9 < cap {
            Some(format!(
                "Every run commits its ${cap:.2} cap when it starts, so a ${ceiling:.2} ceiling lets no run start: raise it to at least ${cap:.2}."
            ))
        } else if self.committed_usd + cap > ceiling + 1e-9 {
            Some(format!(
                "${:.2} of ${ceiling:.2} is committed this month: the next run (${cap:.2}) would pass the ceiling and fail with \"monthly budget reached\".",
                self.committed_usd
            ))
        } else {
            None
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetBudget {
    pub monthly_usd: Option<f64>,
}

/// `GET /health`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// An agent version's place in evaluation, in oro-sdk's words (`AgentVersionState`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentVersionState {
    Queued,
    Running,
    /// Its evaluation succeeded.
    Eligible,
    /// Its evaluation failed.
    Discarded,
}

/// One version of a miner's agent (oro-sdk's `AgentLatestVersion` and `AgentVersionHistoryEntry`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersionEntry {
    pub agent_version_id: String,
    /// 1 for the agent's first submission, counting up.
    pub version_number: i64,
    pub submitted_at: String,
    pub state: AgentVersionState,
    pub final_score: Option<f64>,
}

/// One agent of a miner (oro-sdk's `AgentPublic`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerAgent {
    pub agent_id: String,
    pub miner_hotkey: String,
    pub agent_name: String,
    pub created_at: String,
    pub latest_version: Option<AgentVersionEntry>,
}

/// `GET /v1/miner/agents` (oro-sdk's `MinerAgentsResponse`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinerAgents {
    pub agents: Vec<MinerAgent>,
    /// No submission cooldown is running.
    pub can_submit: bool,
    pub next_allowed_at: Option<String>,
}

/// `GET /v1/miner/agent-versions/{id}` (oro-sdk's `AgentVersionStatus`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersionStatus {
    pub agent_version_id: String,
    pub agent_name: String,
    pub miner_hotkey: String,
    pub version_number: i64,
    pub submitted_at: String,
    pub state: AgentVersionState,
    pub suite_id: i64,
    /// One successful run makes a version eligible here.
    pub required_successes: i64,
    pub success_count: i64,
    pub active_count: i64,
    pub is_closed: bool,
    pub final_score: Option<f64>,
}
