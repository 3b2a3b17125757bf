//! Evaluation runs: submissions, claims and per-run scoped credentials.
//!
//! A claim takes the oldest queued run atomically, pins it to the miner's default provider
//! *at that moment*, and hands the validator a credential scoped to the run:
//! * OpenRouter: a key minted with the miner's management key, capped at
//!   `ORO_RUN_KEY_CAP_USD` and expiring after `ORO_RUN_KEY_TTL_SECS`;
//! * Chutes: a fresh access token from the stored (rotating) refresh token.
//!
//! When the miner's account cannot pay (no credits, revoked credential) the run fails with a
//! clear reason and the validator gets the next run; when the provider is merely unwell
//! (429, 5xx, timeouts) the run goes back to the queue with a backoff.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use wire::Provider;
use wire::api::{
    ClaimAnswer, CompleteRun, CompleteRunAnswer, InferenceToken, RunList, RunSummary, SandboxEnv, SubmitAnswer, WorkItemStatus,
};

use crate::auth::AuthError;
use crate::auth::signed_request::UnspentNonce;
use crate::clock;
use crate::code_url::CodeGrant;
use crate::connections::{self, ConnectionError, key_fingerprint};
use crate::domain::{Caller, Hotkey};
use crate::failure::Failure;
use crate::providers::ProviderError;
use crate::services::Services;
use crate::store;
use crate::vault::{Vault, VaultError};

/// Largest agent file (the SDK's documented limit).
pub const MAX_AGENT_BYTES: usize = 1024 * 1024;
/// How many runs one validator may hold at once.
pub const MAX_RUNS_PER_VALIDATOR: i64 = 8;
/// After this many abandoned leases a run fails instead of going back to the queue.
pub const MAX_ATTEMPTS: i64 = 3;
/// How long one claim keeps trying further runs when the first ones cannot be handed out.
pub const CLAIM_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);
/// The evaluation suite new runs are queued against.
pub const CURRENT_SUITE_ID: i64 = 1;

/// Where a run is in its life; stored (and shown on the wire) as `as_str()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Submitted, waiting for a validator's claim.
    Queued,
    /// Claimed: a validator holds it, and its credential is live.
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        [RunStatus::Queued, RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed].into_iter().find(|s| s.as_str() == text)
    }

    /// Succeeded or failed: nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::db::text_column!(RunStatus);

/// What works with each client: every `oro` connects OpenRouter; Chutes connects on the
/// dashboard or with oro-inference's own `oro`, since ORO's `oro` dropped it in 5.0.1.
pub const REASON_NO_PROVIDER: &str = "no inference provider connected: connect OpenRouter with `oro inference connect openrouter --api-key <management key>` (any oro CLI), or Chutes on the dashboard or with oro-inference's `oro inference connect chutes` (ORO's oro-sdk CLI no longer connects Chutes since 5.0.1)";
pub const REASON_REVOKED: &str = "provider credential invalid or revoked: reconnect";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "No inference provider connected. Connect one first: OpenRouter with `oro inference connect openrouter --api-key <management key>` (any oro CLI), or Chutes on the dashboard or with oro-inference's `oro inference connect chutes` (ORO's oro-sdk CLI no longer connects Chutes since 5.0.1)."
    )]
    NoProviderConnected,
    #[error("agent_name must be 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    InvalidAgentName,
    #[error("{0}")]
    InvalidFile(String),
    #[error("the agent file is larger than 1 MiB")]
    FileTooLarge,
    #[error("submission cooldown: you can submit again in {remaining_seconds} s")]
    Cooldown { remaining_seconds: i64, next_allowed_at: i64 },
    #[error("evaluation run not found")]
    NotFound,
    #[error("agent version not found")]
    AgentVersionNotFound,
    #[error("agent not found")]
    AgentNotFound,
    #[error("this run is not held by you: it was handed to another validator, or put back in the queue after its lease ran out")]
    NotYours,
    #[error("the lease on this run ran out and it went back to the queue: stop working on it")]
    LeaseExpired,
    #[error("this run is already complete ({0})")]
    AlreadyComplete(RunStatus),
    #[error("validator at capacity: finish a run before claiming another")]
    AtCapacity,
    #[error("this download link has expired: fetch the code with a signed GET of /v1/validator/agent-versions/<agent_version_id>/code")]
    DownloadLinkExpired,
    #[error("this download link is not valid: it was altered, or the run is no longer held by the validator it was issued to")]
    DownloadLinkInvalid,
    #[error("terminal_status must be one of SUCCESS, FAILED, ERROR, TIMED_OUT, CANCELLED")]
    BadTerminalStatus,
    #[error("this run is not running (it is {0}): its inference has already ended")]
    NotRunning(String),
    #[error(
        "this run uses your Chutes token directly (the operator runs ORO_CHUTES_RUN_CREDENTIAL=direct): it cannot be stopped before the token expires; disconnecting Chutes revokes it"
    )]
    CannotStop,
    #[error("OpenRouter did not disable the run key yet ({0}); try again")]
    StopFailed(String),
    #[error("the stored credential could not be opened")]
    Vault(#[from] VaultError),
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
    /// The claim's own authentication step (its nonce is spent in the claim's transaction).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl RunError {
    pub fn failure(&self) -> Failure {
        match self {
            RunError::NoProviderConnected | RunError::InvalidAgentName | RunError::InvalidFile(_) => Failure::Refused,
            RunError::FileTooLarge => Failure::TooLarge,
            RunError::Cooldown { .. } => Failure::TooSoon,
            RunError::NotFound | RunError::AgentVersionNotFound | RunError::AgentNotFound => Failure::NotFound,
            RunError::DownloadLinkExpired | RunError::DownloadLinkInvalid => Failure::Forbidden,
            RunError::NotYours | RunError::LeaseExpired | RunError::AlreadyComplete(_) | RunError::AtCapacity => Failure::Conflict,
            RunError::BadTerminalStatus => Failure::Invalid,
            RunError::NotRunning(_) | RunError::CannotStop => Failure::Conflict,
            RunError::StopFailed(_) => Failure::ProviderFailed,
            RunError::Vault(_) | RunError::Storage(_) => Failure::Internal,
            RunError::Auth(e) => e.failure(),
        }
    }
}

/// How long a claim that failed on our side keeps trying to put its run back (past this, the
/// reaper does when the reservation's lease ends).
const RELEASE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// Times a claim's transaction runs again after PostgreSQL aborted it to break a deadlock.
/// One is possible: a claim's first transaction locks the oldest queued run, then the miner's
/// row; another claim's hand-out locks the miner's row, then its own run, and under READ
/// COMMITTED a queue scan whose snapshot still showed that run queued can hold the run's row
/// lock after its recheck fails. Each side wrote nothing that stays; running it again is the
/// documented cure.
const LOCK_CONFLICT_RETRIES: u32 = 3;

/// Runs one of a claim's transactions again, up to LOCK_CONFLICT_RETRIES times, when
/// PostgreSQL aborted it to break a deadlock or a serialization conflict.
async fn again_on_lock_conflict<T, F: std::future::Future<Output = Result<T, RunError>>>(
    step: &'static str,
    mut run: impl FnMut() -> F,
) -> Result<T, RunError> {
    let mut conflicts = 0;
    loop {
        match run().await {
            Err(RunError::Storage(e)) if crate::db::is_lock_conflict(&e) && conflicts < LOCK_CONFLICT_RETRIES => {
                conflicts += 1;
                tracing::info!(step, error = %e, "a claim's transaction lost a lock conflict; running it again");
            }
            other => return other,
        }
    }
}

/// Claims that failed on our side (not the database, not the provider) before a run fails.
const OUR_FAULT_RETRIES: i64 = 5;

/// How long a fresh OpenRouter key may answer 401 before we stop waiting for it.
pub const PROPAGATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How to put back the run of a claim that failed on our side (`release_reserved_run`).
#[derive(Debug, Clone)]
pub(crate) struct PutBack {
    pub validator: String,
    /// The database failed (claimable again in seconds), not something else.
    pub storage: bool,
    pub reason: String,
}

/// Seconds before a run put back after its `retries`-th failed claim may be claimed again:
/// 30 s doubling to 15 min, plus up to 15 s so requeued runs do not come back in lock-step.
fn requeue_backoff(retries: i64) -> i64 {
    (30_i64 << retries.clamp(0, 5)).min(900) + i64::from(rand::random::<u8>() % 15)
}

/// Full jitter: a random pause in [0, min(2 s, 100 ms * 2^attempt)]. Used for a fresh key's
/// propagation and for retrying a connect's read.
pub fn propagation_backoff(attempt: u32) -> std::time::Duration {
    let ceiling = (100u64 << attempt.min(5)).min(2_000);
    std::time::Duration::from_millis(rand::random::<u64>() % (ceiling + 1))
}

/// Why a claim could not hand out a credential for a run.
enum MintFailure {
    /// The miner's side: the run fails with this reason.
    Fail(String),
    /// The provider's side: the run goes back to the queue.
    Retry(String),
}

/// What a claim's first transaction did.
enum Taking {
    /// No run to take (or the validator holds its limit).
    Nothing,
    /// A run was taken and, its miner's side unable to serve it, failed or requeued.
    Settled,
    Taken(Box<Taken>),
}

/// What the first transaction decided for a run.
struct Plan {
    miner: Hotkey,
    provider: Provider,
    /// The model the sandbox is pointed at, under the provider's name.
    model: String,
    /// The run's cap in USD (committed to the budget unless the credential is a direct Chutes token).
    cap: f64,
    /// The OpenRouter management key, sealed, as the first transaction read it.
    sealed: Option<Vec<u8>>,
}

/// A reserved run and its plan, between the claim's two transactions.
struct Taken {
    run: crate::store::runs::Reserved,
    miner: Hotkey,
    provider: Provider,
    model: String,
    cap: f64,
    sealed: Option<Vec<u8>>,
}

/// A run's credential, made and not yet recorded.
struct Issued {
    /// What the validator gets.
    token: InferenceToken,
    /// The `run_keys` rows to record.
    keys: Vec<crate::store::runs::KeyRecord>,
    /// What the run row names (none for a direct Chutes token).
    credential: Option<crate::store::runs::RunCredential>,
    /// The OpenRouter management key that minted `keys`, to disable them if the claim stops.
    management_key: Option<SecretString>,
}

impl Issued {
    fn unrecorded(token: InferenceToken, credential: Option<crate::store::runs::RunCredential>) -> Issued {
        Issued { token, keys: Vec::new(), credential, management_key: None }
    }
}

/// Fails or requeues a run whose claim stopped at `failure`.
async fn settle_unclaimable(
    conn: &mut store::Conn,
    run: &store::runs::Reserved,
    failure: &MintFailure,
    holder: store::runs::Holder<'_>,
    now: i64,
) -> Result<(), sqlx::Error> {
    match failure {
        MintFailure::Fail(reason) => {
            tracing::info!(run = %run.id, %reason, "run failed at claim");
            count_failure(reason, "claim");
            store::runs::fail_claim(conn, &run.id, reason, holder, now).await?;
        }
        MintFailure::Retry(reason) => {
            let backoff = requeue_backoff(run.claim_retries);
            tracing::warn!(run = %run.id, %reason, backoff, "provider unavailable at claim; run requeued");
            metrics::counter!("oro_claim_requeues_total").increment(1);
            store::runs::requeue_claim(conn, &run.id, now + backoff, true, holder, now).await?;
        }
    }
    Ok(())
}

/// The miner's audit line for a run handed out: which of their credentials backs it, and what
/// the validator got.
fn credential_used(run_id: &str, token: &InferenceToken, cap: f64, validator: &Caller) -> String {
    let through_gateway = token.access_token.starts_with(crate::gateway::TOKEN_PREFIX);
    let validator = validator.hotkey.short();
    match token.provider {
        Provider::OpenRouter if through_gateway => format!(
            "the OpenRouter management key minted run key oro-run-{run_id} (cap ${cap:.2}, expires {}), kept by the run gateway; validator {validator} got a run-bound token, not the key",
            token.expires_at,
        ),
        Provider::OpenRouter => format!(
            "the OpenRouter management key minted run key oro-run-{run_id} (cap ${cap:.2}, expires {}), handed to validator {validator}",
            token.expires_at,
        ),
        Provider::Chutes if through_gateway => format!(
            "the Chutes connection backs run {run_id} through the run gateway (cap ${cap:.2}, token expires {}); validator {validator} got a run-bound token, not the Chutes token",
            token.expires_at,
        ),
        Provider::Chutes => {
            format!("a Chutes access token (expires {}) was issued for run {run_id} to validator {validator}", token.expires_at)
        }
    }
}

fn mint_failure(provider: Provider, e: &ProviderError) -> MintFailure {
    match e {
        ProviderError::NoCredits { .. } => MintFailure::Fail(match provider {
            Provider::OpenRouter => "no credits: insufficient balance on the OpenRouter account".into(),
            Provider::Chutes => "no credits: insufficient balance on the Chutes account (quota exceeded and balance is $0)".into(),
        }),
        ProviderError::Unauthorized { .. } | ProviderError::InvalidGrant { .. } => MintFailure::Fail(REASON_REVOKED.into()),
        e if e.is_transient() => MintFailure::Retry(e.to_string()),
        e => MintFailure::Fail(format!("the provider refused the run's credential: {e}")),
    }
}

/// Turns what a validator reports into the reason a miner reads: provider 402 bodies of both
/// providers become "no credits".
pub fn normalize_failure_reason(reason: Option<&str>) -> Option<String> {
    let reason = reason?.trim();
    if reason.is_empty() {
        return None;
    }
    let lower = reason.to_lowercase();
    let no_credits = lower.contains("quota exceeded and account balance")
        || lower.contains("openrouter_credits")
        || lower.contains("insufficient credits")
        || lower.contains("openrouter_key_limit")
        || lower.contains("key limit exceeded")
        || (lower.contains("402") && (lower.contains("payment") || lower.contains("credit") || lower.contains("balance")));
    if no_credits {
        let which = if lower.contains("openrouter_key_limit") || lower.contains("key limit") {
            "no credits: the run reached its per-run spending cap (insufficient balance on the run key)"
        } else if lower.contains("quota exceeded") {
            "no credits: insufficient balance on the Chutes account"
        } else {
            "no credits: insufficient balance on the OpenRouter account"
        };
        return Some(which.to_owned());
    }
    Some(crate::providers::scrub(reason))
}

/// A bounded label for a failure reason (`oro_run_failures_total{reason}`): the reasons
/// themselves carry amounts and names.
pub fn failure_label(reason: &str) -> &'static str {
    if reason.starts_with("no credits") {
        "no_credits"
    } else if reason == REASON_NO_PROVIDER {
        "no_provider"
    } else if reason == REASON_REVOKED {
        "credential_invalid"
    } else if reason.starts_with("monthly budget") {
        "budget"
    } else if reason.contains("re-consent") {
        "needs_reconsent"
    } else if reason.starts_with("abandoned") {
        "abandoned"
    } else if reason.starts_with("the provider refused") {
        "provider_refused"
    } else {
        "other"
    }
}

fn count_failure(reason: &str, stage: &'static str) {
    metrics::counter!("oro_run_failures_total", "reason" => failure_label(reason), "stage" => stage).increment(1);
}

fn valid_agent_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn next_seq() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000) as i64
}

impl Services {
    /// `POST /v1/miner/submit`: stores the agent and queues its evaluation.
    pub async fn submit_agent(&self, hotkey: &Hotkey, agent_name: &str, file_name: &str, code: &[u8]) -> Result<SubmitAnswer, RunError> {
        let agent_name = agent_name.trim();
        if !valid_agent_name(agent_name) {
            return Err(RunError::InvalidAgentName);
        }
        if code.len() > MAX_AGENT_BYTES {
            return Err(RunError::FileTooLarge);
        }
        if !file_name.ends_with(".py") {
            return Err(RunError::InvalidFile("the agent must be a Python source file (.py)".into()));
        }
        // The name goes back out in a Content-Disposition header and onto pages.
        if file_name.chars().count() > 255
            || file_name.chars().any(|c| c.is_control() || matches!(c, '"' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        {
            return Err(RunError::InvalidFile("the file name must be at most 255 characters, without control characters or quotes".into()));
        }
        let text = std::str::from_utf8(code).map_err(|_| RunError::InvalidFile("the agent file is not UTF-8 text".into()))?;
        if text.trim().is_empty() || text.contains('\0') {
            return Err(RunError::InvalidFile("the agent file is empty or binary".into()));
        }
        if store::connections::first_connected(&mut *self.db.pool().acquire().await?, hotkey).await?.is_none() {
            return Err(RunError::NoProviderConnected);
        }
        let now = self.clock.now();
        let cooldown = self.settings.submit_cooldown_secs;
        let mut tx = self.db.pool().begin().await?;
        // The miner row serializes this miner's submissions (cooldown check and insert).
        store::connections::lock_miner(&mut tx, self.db.backend(), hotkey.as_str(), self.clock.now()).await?;
        if let Some(last) = store::agents::last_submitted_at(&mut tx, hotkey.as_str()).await?
            && cooldown > 0
            && now < last + cooldown
        {
            return Err(RunError::Cooldown { remaining_seconds: last + cooldown - now, next_allowed_at: last + cooldown });
        }
        let agent_id = store::agents::agent_named(&mut tx, hotkey.as_str(), agent_name, now).await?;
        let version_id = uuid::Uuid::new_v4().to_string();
        let version = store::agents::NewVersion {
            id: &version_id,
            agent_id: &agent_id,
            hotkey: hotkey.as_str(),
            file_name: file_name.rsplit(['/', '\\']).next().unwrap_or(file_name),
            code,
            sha256: hex::encode(Sha256::digest(code)),
        };
        store::agents::add_version(&mut tx, &version, now).await?;
        let run_id = uuid::Uuid::new_v4().to_string();
        store::runs::queue(&mut tx, &run_id, next_seq(), &version_id, hotkey.as_str(), CURRENT_SUITE_ID, now).await?;
        tx.commit().await?;
        tracing::info!(hotkey = %hotkey.short(), agent = agent_name, run = %run_id, "agent submitted; evaluation queued");
        Ok(SubmitAnswer {
            admission_status: "ACCEPTED".into(),
            hotkey: hotkey.to_string(),
            agent_id: Some(agent_id),
            agent_version_id: Some(version_id),
            admission_reason: None,
            next_allowed_at: (cooldown > 0).then(|| clock::rfc3339(now + cooldown)),
            message: "Agent submitted successfully; its evaluation is queued.".into(),
            eval_run_id: Some(run_id),
        })
    }

    /// `POST /v1/validator/work/claim`: `None` when there is no work. `unspent` is the signed
    /// request's nonce (none for a bearer session): the claim spends it in its first
    /// transaction, and a replay is refused there with nothing taken.
    #[tracing::instrument(name = "claim_work", skip_all, fields(validator = %validator.hotkey.short()))]
    pub async fn claim_work(&self, validator: &Caller, unspent: Option<&UnspentNonce>) -> Result<Option<ClaimAnswer>, RunError> {
        let started = std::time::Instant::now();
        let result = self.claim_next(validator, unspent).await;
        let outcome = match &result {
            Ok(Some(_)) => "claimed",
            Ok(None) => "no_work",
            Err(RunError::AtCapacity) => "at_capacity",
            Err(RunError::Auth(_)) => "refused",
            Err(_) => "error",
        };
        metrics::counter!("oro_claims_total", "outcome" => outcome).increment(1);
        metrics::histogram!("oro_claim_duration_seconds", "outcome" => outcome).record(started.elapsed().as_secs_f64());
        result
    }

    /// A claim is two transactions around the provider calls. The first (`take_next_run`)
    /// reserves the run, reads the miner's terms under the miner's lock, and pins the provider
    /// and the cap (or fails the run at once when the miner's side cannot work). Then the
    /// provider calls (`issue`). The second (`hand_out`) records the key, the lease, the
    /// credential and the audit line together.
    async fn claim_next(&self, validator: &Caller, mut unspent: Option<&UnspentNonce>) -> Result<Option<ClaimAnswer>, RunError> {
        // Runs that cannot be handed out fail (or go back to the queue) and we try the next,
        // for at most CLAIM_BUDGET so the validator hears back within its timeout.
        let started = std::time::Instant::now();
        for _ in 0..50 {
            if started.elapsed() > CLAIM_BUDGET {
                break;
            }
            // Rolled back whole after a conflict, the nonce's spend included.
            let nonce = unspent.take();
            let taking = again_on_lock_conflict("reservation", || self.take_next_run(&validator.hotkey, nonce)).await?;
            let taken = match taking {
                Taking::Taken(taken) => taken,
                Taking::Settled => continue,
                Taking::Nothing => {
                    // Nothing reserved: no work, or the capacity check inside the reservation
                    // refused.
                    let held = store::runs::held_by(&mut *self.db.pool().acquire().await?, validator.hotkey.as_str()).await?;
                    if held >= MAX_RUNS_PER_VALIDATOR {
                        // A run of the validator's own failed claim, not yet put back (the
                        // database was down): back in the queue now, and the claim goes on.
                        if self.settle_failed_claims(&validator.hotkey).await? {
                            continue;
                        }
                        return Err(RunError::AtCapacity);
                    }
                    return Ok(None);
                }
            };
            let issued = match self.issue(&taken).await {
                Ok(issued) => issued,
                Err(e) => {
                    // Our fault, not the miner's: put the run back before answering 500.
                    self.release_reserved_run(&taken.run.id, &validator.hotkey, &e);
                    return Err(e);
                }
            };
            let issued = match issued {
                Ok(issued) => issued,
                Err(failure) => {
                    if let Err(e) = self.finish_unclaimable(&taken.run, failure).await {
                        self.release_reserved_run(&taken.run.id, &validator.hotkey, &e);
                        return Err(e);
                    }
                    continue;
                }
            };
            let lease_expires_at = match self.hand_out(&taken, &issued, validator).await {
                Ok(Ok(lease_expires_at)) => lease_expires_at,
                Ok(Err(failure)) => {
                    if let Err(e) = self.finish_unclaimable(&taken.run, failure).await {
                        self.release_reserved_run(&taken.run.id, &validator.hotkey, &e);
                        return Err(e);
                    }
                    continue;
                }
                Err(e) => {
                    self.release_reserved_run(&taken.run.id, &validator.hotkey, &e);
                    return Err(e);
                }
            };
            let Issued { token, .. } = issued;
            let Taken { run, model, .. } = *taken;
            tracing::info!(run = %run.id, provider = %token.provider, validator = %validator.hotkey.short(), "run claimed");
            metrics::counter!("oro_run_credentials_issued_total", "provider" => token.provider.as_str()).increment(1);
            let code_download_url = self.code_download_url(&run.id, &run.agent_version_id, &validator.hotkey, lease_expires_at);
            let sandbox_env = SandboxEnv {
                INFERENCE_PROVIDER: token.provider,
                INFERENCE_ACCESS_TOKEN: token.access_token.clone(),
                INFERENCE_BASE_URL: token.base_url.clone(),
                SANDBOX_MODEL: model,
            };
            return Ok(Some(ClaimAnswer {
                code_download_url,
                eval_run_id: run.id,
                agent_version_id: run.agent_version_id,
                suite_id: run.suite_id,
                lease_expires_at: clock::rfc3339(lease_expires_at),
                race_id: None,
                chutes_access_token: (token.provider == Provider::Chutes).then(|| token.access_token.clone()),
                inference_token: Some(token),
                sandbox_env: Some(sandbox_env),
            }));
        }
        Ok(None)
    }

    /// The claim's first transaction: the oldest claimable run, the miner's default provider
    /// *now* and their budget, read under the miner's lock so that concurrent claims cannot
    /// both slip under the monthly ceiling; the provider and the cap are pinned before the
    /// lock goes. A run the miner's side cannot serve fails in the same transaction. The
    /// request's nonce, when given, is spent first in the same transaction: one commit less
    /// per claim than spending it on its own.
    async fn take_next_run(&self, validator: &Hotkey, unspent: Option<&UnspentNonce>) -> Result<Taking, RunError> {
        // Read before the transaction (usually from memory): on SQLite the transaction holds
        // the one connection.
        let models = self.priced_models().await?;
        let now = self.clock.now();
        let backend = self.db.backend();
        let mut tx = self.db.pool().begin().await?;
        if let Some(unspent) = unspent
            && !unspent.spend(&mut tx).await?
        {
            return Err(RunError::Auth(AuthError::ReplayedNonce));
        }
        let Some(run) = store::runs::reserve(&mut tx, backend, validator.as_str(), now, MAX_RUNS_PER_VALIDATOR).await? else {
            tx.commit().await?;
            return Ok(Taking::Nothing);
        };
        let plan = match Hotkey::parse(&run.hotkey) {
            Ok(miner) => self.plan_claim(&mut tx, &run, miner, &models, now).await?,
            Err(_) => Err(MintFailure::Fail("the run's hotkey is malformed".into())),
        };
        let taking = match plan {
            Ok(Plan { miner, provider, model, cap, sealed }) => Taking::Taken(Box::new(Taken { run, miner, provider, model, cap, sealed })),
            Err(failure) => {
                settle_unclaimable(&mut tx, &run, &failure, store::runs::Holder::Any, now).await?;
                Taking::Settled
            }
        };
        if let Err(e) = tx.commit().await {
            let e = RunError::from(e);
            // What was lost may be the commit's answer, not the commit (the database went away
            // meanwhile): a reservation that did go through is put back like any failed claim's,
            // and one that did not leaves the run queued, where putting back finds it moved on.
            // Else the validator, told 500, would hold the run until the reaper's 300 s, and its
            // retries could be refused as at capacity.
            if let Taking::Taken(taken) = &taking {
                self.release_reserved_run(&taken.run.id, validator, &e);
            }
            return Err(e);
        }
        Ok(taking)
    }

    /// Inside `take_next_run`'s transaction: what the run will use, or why it cannot run.
    async fn plan_claim(
        &self,
        tx: &mut store::Conn,
        run: &store::runs::Reserved,
        miner: Hotkey,
        models: &[crate::gateway::PricedModel],
        now: i64,
    ) -> Result<Result<Plan, MintFailure>, RunError> {
        let terms = store::connections::lock_terms(tx, self.db.backend(), &miner).await?;
        let Some(terms) = terms else {
            return Ok(Err(MintFailure::Fail(REASON_NO_PROVIDER.into())));
        };
        let Some(provider) = terms.default_provider() else {
            return Ok(Err(MintFailure::Fail(REASON_NO_PROVIDER.into())));
        };
        let Some(model) = crate::gateway::pinned_model(models).map(|m| m.name_for(provider).to_owned()) else {
            return Ok(Err(MintFailure::Retry("the model catalog is empty".into())));
        };
        let budget = terms.monthly_budget_usd;
        let sealed = match (provider, terms.connection()) {
            (Provider::OpenRouter, None) => return Ok(Err(MintFailure::Fail(REASON_NO_PROVIDER.into()))),
            (Provider::OpenRouter, Some(c)) if c.state != connections::State::Connected => {
                return Ok(Err(MintFailure::Fail(REASON_REVOKED.into())));
            }
            (Provider::OpenRouter, Some(c)) => Some(c.ciphertext),
            // The Chutes token comes from connections.rs, which handles its rotation.
            (Provider::Chutes, _) => None,
        };
        let capped = provider == Provider::OpenRouter || self.settings.chutes_run_credential == crate::config::ChutesRunCredential::Gateway;
        let cap = self.settings.run_key_cap_usd;
        if capped && let Some(budget) = budget {
            let (since, month) = crate::budget::month_start(now);
            let committed = store::runs::committed_since(tx, miner.as_str(), since).await?;
            if committed + cap > budget + 1e-9 {
                return Ok(Err(MintFailure::Fail(format!(
                    "monthly budget reached: ${committed:.2} of ${budget:.2} committed in {month}; a run needs ${cap:.2} (raise the budget on the dashboard or with `oro budget set`)"
                ))));
            }
        }
        store::runs::pin(tx, &run.id, provider, capped.then_some(cap)).await?;
        Ok(Ok(Plan { miner, provider, model, cap, sealed }))
    }

    /// Between the two transactions: the provider calls that make the run's credential. The
    /// outer error is ours; the inner is the miner's or the provider's.
    async fn issue(&self, taken: &Taken) -> Result<Result<Issued, MintFailure>, RunError> {
        match taken.provider {
            Provider::OpenRouter => self.mint_openrouter_key(taken).await,
            Provider::Chutes => match self.settings.chutes_run_credential {
                crate::config::ChutesRunCredential::Gateway => self.gateway_run_token(taken).await,
                crate::config::ChutesRunCredential::Direct => {
                    Ok(self.chutes_run_token(&taken.miner, &taken.model).await?.map(|token| Issued::unrecorded(token, None)))
                }
            },
        }
    }

    /// The claim's second transaction: the keys, the run's credential and lease, and the
    /// miner's audit line, together. For an OpenRouter key it first checks, under the miner's
    /// lock, that the connection is still the one that minted it: a disconnect (or a key
    /// replacement) either ran before and the key is disabled here, or runs after and finds the
    /// key recorded. Answers the lease's end.
    async fn hand_out(&self, taken: &Taken, issued: &Issued, validator: &Caller) -> Result<Result<i64, MintFailure>, RunError> {
        match again_on_lock_conflict("hand-out", || self.record_hand_out(taken, issued, validator)).await {
            Ok(Ok(lease_expires_at)) => Ok(Ok(lease_expires_at)),
            Ok(Err(changed)) => {
                self.disable_minted_keys(taken, issued).await;
                Ok(Err(changed))
            }
            Err(e) => {
                // Unrecorded, nothing would ever disable a minted key: disable it now (no
                // database needed).
                self.disable_minted_keys(taken, issued).await;
                Err(e)
            }
        }
    }

    /// `hand_out`'s transaction. When the connection changed, the keys are recorded (so the
    /// budget and the reaper know them) and the caller disables them.
    async fn record_hand_out(&self, taken: &Taken, issued: &Issued, validator: &Caller) -> Result<Result<i64, MintFailure>, RunError> {
        let now = self.clock.now();
        let lease_expires_at = now + self.settings.run_lease_secs;
        let mut tx = self.db.pool().begin().await?;
        if let Some(sealed) = &taken.sealed {
            let terms = store::connections::lock_terms_with(&mut tx, self.db.backend(), &taken.miner, Provider::OpenRouter).await?;
            let still = terms.and_then(|t| t.connection());
            if !still.is_some_and(|c| c.state == connections::State::Connected && c.ciphertext == *sealed) {
                for key in &issued.keys {
                    store::runs::record_key(&mut tx, key, now).await?;
                }
                tx.commit().await?;
                return Ok(Err(MintFailure::Retry("the OpenRouter connection changed during the claim".into())));
            }
        }
        let detail = credential_used(&taken.run.id, &issued.token, self.settings.run_key_cap_usd, validator);
        let line = crate::audit::line(&taken.miner, Some(issued.token.provider), "credential_used", &detail, now);
        let hand = store::runs::HandOut {
            run_id: &taken.run.id,
            keys: &issued.keys,
            credential: issued.credential.as_ref(),
            lease_expires_at,
            line: &line,
        };
        store::runs::record_hand_out(&mut tx, self.db.backend(), &hand, now).await?;
        tx.commit().await?;
        Ok(Ok(lease_expires_at))
    }

    /// Disables at OpenRouter the keys this claim minted and will not hand out, and marks the
    /// recorded ones so.
    async fn disable_minted_keys(&self, taken: &Taken, issued: &Issued) {
        let Some(management_key) = &issued.management_key else {
            return;
        };
        // OpenRouter keys only: a gateway token has nothing to disable upstream.
        for key in issued.keys.iter().filter(|k| crate::gateway::gateway_provider(&k.minted_by).is_none()) {
            match self.openrouter.disable_key(management_key, &key.key_hash).await {
                Ok(()) => {
                    if let Ok(mut conn) = self.db.pool().acquire().await {
                        let _ = store::runs::disable_unused_key(&mut conn, &key.key_hash, self.clock.now()).await;
                    }
                }
                Err(e) => {
                    tracing::error!(run = %taken.run.id, error = %e, "a minted run key could not be disabled; the reaper's sweep will, or it lives until it expires");
                }
            }
        }
    }

    /// Puts back a run this claim reserved but could not hand out because of our own trouble:
    /// not counted as provider trouble, and after a database error claimable again within
    /// seconds (other errors wait a minute, so one run that keeps failing cannot hold the head
    /// of the queue). The database may be what failed, so this keeps trying in the background
    /// until it answers; otherwise the run would sit `running` under a validator that never got
    /// it until its lease ran out, and then count as abandoned. A key already minted for it is
    /// disabled by the reaper's sweep (the run no longer names it).
    fn release_reserved_run(&self, run_id: &str, validator: &Hotkey, error: &RunError) {
        let (services, run_id, validator) = (self.clone(), run_id.to_owned(), validator.as_str().to_owned());
        // A database blip is nobody's fault and passes: the run is claimable again in 5 s.
        // Anything else (a credential that no longer opens) backs off, and after
        // OUR_FAULT_RETRIES tries the run fails with a reason instead of bouncing forever.
        let storage = matches!(error, RunError::Storage(_));
        let reason = error.to_string();
        let put_back = PutBack { validator: validator.clone(), storage, reason: reason.clone() };
        self.putting_back().insert(run_id.clone(), put_back);
        self.spawn_background(async move {
            let started = std::time::Instant::now();
            let mut pause = std::time::Duration::from_millis(200);
            loop {
                match services.put_back(&run_id, &validator, storage, &reason).await {
                    Ok(outcome) => {
                        services.putting_back().remove(&run_id);
                        tracing::warn!(run = %run_id, outcome, "claim failed on our side");
                        return;
                    }
                    Err(e) if started.elapsed() < RELEASE_PATIENCE => {
                        tracing::warn!(run = %run_id, error = %e, "cannot put the run back yet; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(std::time::Duration::from_secs(5));
                    }
                    // Left in `putting_back`: the validator's next claim at capacity settles it.
                    Err(e) => {
                        tracing::error!(run = %run_id, error = %e, "gave up putting the run back; the validator's next claim or the reaper will");
                        return;
                    }
                }
            }
        });
    }

    /// Puts back now, once each, the runs of `validator`'s failed claims that this replica is
    /// still putting back: the validator retrying after a failed claim is not at capacity,
    /// only its failed claim's run is still in its name. Whether any went back.
    async fn settle_failed_claims(&self, validator: &Hotkey) -> Result<bool, RunError> {
        let pending: Vec<(String, PutBack)> = self
            .putting_back()
            .iter()
            .filter(|(_, p)| p.validator == validator.as_str())
            .map(|(run, p)| (run.clone(), p.clone()))
            .collect();
        let mut settled = false;
        for (run_id, p) in pending {
            let outcome = self.put_back(&run_id, &p.validator, p.storage, &p.reason).await?;
            self.putting_back().remove(&run_id);
            tracing::warn!(run = %run_id, outcome, "a failed claim's run settled by the validator's next claim");
            settled = true;
        }
        Ok(settled)
    }

    /// The runs this replica is putting back (a poisoned lock still holds a usable map).
    fn putting_back(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, PutBack>> {
        self.putting_back.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One attempt of `release_reserved_run`; says what became of the run.
    async fn put_back(&self, run_id: &str, validator: &str, storage: bool, reason: &str) -> Result<&'static str, sqlx::Error> {
        let now = self.clock.now();
        let holder = store::runs::Holder::Running(validator);
        let mut conn = self.db.pool().acquire().await?;
        let Some(retries) = store::runs::claim_retries(&mut conn, run_id, holder).await? else {
            return Ok("the run had already moved on");
        };
        if !storage && retries >= OUR_FAULT_RETRIES {
            let failure = format!(
                "the service could not issue this run's credential ({}); reconnect the provider and submit again",
                crate::providers::scrub(reason)
            );
            count_failure(&failure, "claim");
            store::runs::fail_claim(&mut conn, run_id, &failure, holder, now).await?;
            return Ok("run failed after repeated errors on our side");
        }
        // A database blip passes: claimable again in 5 s, not counted.
        let (delay, count_retry) = if storage { (5, false) } else { (requeue_backoff(retries), true) };
        store::runs::requeue_claim(&mut conn, run_id, now + delay, count_retry, holder, now).await?;
        Ok("run put back in the queue")
    }

    /// After a claim's provider calls: the run fails (the miner's side) or goes back to the
    /// queue (the provider's).
    async fn finish_unclaimable(&self, run: &store::runs::Reserved, failure: MintFailure) -> Result<(), RunError> {
        let mut conn = self.db.pool().acquire().await?;
        settle_unclaimable(&mut conn, run, &failure, store::runs::Holder::Any, self.clock.now()).await?;
        Ok(())
    }

    /// A Chutes run through the gateway: the miner's token proves the account can pay (and
    /// stays here, in memory, for forwarding); the validator gets a run-bound token whose
    /// spend the gateway holds under the cap.
    async fn gateway_run_token(&self, taken: &Taken) -> Result<Result<Issued, MintFailure>, RunError> {
        let direct = match self.chutes_run_token(&taken.miner, &taken.model).await? {
            Ok(direct) => direct,
            Err(failure) => return Ok(Err(failure)),
        };
        // Dropped here: only the gateway's cache keeps the miner's token.
        drop(direct);
        let expires_at = self.clock.now() + self.settings.run_key_ttl_secs;
        let (token, record) = self.new_gateway_token(&taken.run.id, &taken.miner, taken.cap, Provider::Chutes, expires_at, None);
        let credential = store::runs::RunCredential { key_hash: record.key_hash.clone(), cap_usd: taken.cap, expires_at };
        Ok(Ok(Issued {
            token: InferenceToken {
                provider: Provider::Chutes,
                access_token: token,
                base_url: self.settings.gateway_base_url(),
                expires_at: clock::rfc3339(expires_at),
            },
            keys: vec![record],
            credential: Some(credential),
            management_key: None,
        }))
    }

    #[tracing::instrument(name = "mint_openrouter_key", skip_all, fields(run = %taken.run.id, miner = %taken.miner.short()))]
    async fn mint_openrouter_key(&self, taken: &Taken) -> Result<Result<Issued, MintFailure>, RunError> {
        let (run_id, miner, cap) = (taken.run.id.as_str(), &taken.miner, taken.cap);
        let sealed = taken.sealed.as_deref().ok_or(RunError::Vault(VaultError::Malformed))?;
        let management_key = self.vault.open_sealed(&Vault::credential_context(miner.as_str(), Provider::OpenRouter), sealed)?;
        // No credits is cheaper to learn from /credits than from a failed run.
        match self.openrouter.credits(&management_key).await {
            Ok(c) if c.total_credits - c.total_usage <= 0.0 => {
                return Ok(Err(MintFailure::Fail("no credits: insufficient balance on the OpenRouter account".into())));
            }
            Ok(_) => {}
            Err(e) => return Ok(Err(mint_failure(Provider::OpenRouter, &e))),
        }
        let expires_at = self.clock.now() + self.settings.run_key_ttl_secs;
        let minted =
            match self.openrouter.create_key(&management_key, &format!("oro-run-{run_id}"), cap, &clock::rfc3339_utc_z(expires_at)).await {
                Ok(m) => m,
                Err(e) => {
                    // The request may have reached OpenRouter and only its answer got lost: such
                    // a key would be live and recorded nowhere.
                    if matches!(e, ProviderError::Timeout { .. } | ProviderError::Unreachable { .. }) {
                        self.sweep_unrecorded_run_keys(run_id, miner, management_key.clone());
                    }
                    return Ok(Err(mint_failure(Provider::OpenRouter, &e)));
                }
            };
        let record = store::runs::KeyRecord {
            key_hash: minted.hash.clone(),
            hotkey: miner.as_str().to_owned(),
            run_id: run_id.to_owned(),
            minted_by: key_fingerprint(&management_key),
            cap_usd: cap,
            expires_at,
            upstream: None,
            disabled_at: None,
        };
        // A just-minted key can answer 401 while it propagates: prove it works before a
        // validator spends its time on it. Until the second transaction records it, a replica
        // that dies here leaves it to the reaper's sweep of keys named after the run.
        if let Err(failure) = self.preflight_minted_key(&minted.key).await {
            let disabled = match self.openrouter.disable_key(&management_key, &minted.hash).await {
                Ok(()) => Some(self.clock.now()),
                Err(e) => {
                    tracing::warn!(error = %e, "could not disable a key that failed its preflight; the reaper will");
                    None
                }
            };
            // Recorded either way: disabled, it commits nothing to the budget; live, the
            // reaper finds it.
            let mut conn = self.db.pool().acquire().await?;
            store::runs::record_key(&mut conn, &store::runs::KeyRecord { disabled_at: disabled, ..record }, self.clock.now()).await?;
            return Ok(Err(failure));
        }
        let credential = store::runs::RunCredential { key_hash: minted.hash.clone(), cap_usd: cap, expires_at };
        if self.settings.gateway_openrouter {
            // The validator gets a gateway token; the run's key, capped at OpenRouter, stays
            // here (sealed) as the backstop the gateway forwards with.
            let (token, gateway_record) = self.new_gateway_token(
                &taken.run.id,
                &taken.miner,
                taken.cap,
                Provider::OpenRouter,
                expires_at,
                Some((&minted.hash, &minted.key)),
            );
            return Ok(Ok(Issued {
                token: InferenceToken {
                    provider: Provider::OpenRouter,
                    access_token: token,
                    base_url: self.settings.gateway_base_url(),
                    expires_at: clock::rfc3339(expires_at),
                },
                keys: vec![record, gateway_record],
                credential: Some(credential),
                management_key: Some(management_key),
            }));
        }
        Ok(Ok(Issued {
            token: InferenceToken {
                provider: Provider::OpenRouter,
                access_token: minted.key.expose_secret().to_owned(),
                base_url: self.openrouter.base_url().to_owned(),
                expires_at: clock::rfc3339(expires_at),
            },
            keys: vec![record],
            credential: Some(credential),
            management_key: Some(management_key),
        }))
    }

    /// Looks a few times, over about a minute, for live keys named after this run that no
    /// claim recorded (minted by a `POST /keys` whose answer never came back), and disables
    /// them; never while a claim holds the run (its own key may not be recorded yet).
    fn sweep_unrecorded_run_keys(&self, run_id: &str, miner: &Hotkey, management_key: SecretString) {
        let (services, run_id, miner) = (self.clone(), run_id.to_owned(), miner.clone());
        self.spawn_background(async move {
            for pause in [1, 5, 20, 40] {
                tokio::time::sleep(std::time::Duration::from_secs(pause)).await;
                // While the run is held by a claim, a key of its name may be that claim's,
                // minted but not yet recorded: look again later.
                let status = match services.db.pool().acquire().await {
                    Ok(mut conn) => store::runs::status(&mut conn, &run_id).await,
                    Err(e) => Err(e),
                };
                if !matches!(&status, Ok(Some(s)) if *s != RunStatus::Running) {
                    continue;
                }
                services
                    .disable_unrecorded_run_keys(&run_id, &miner, &management_key, "minted after the claim had given up waiting for it")
                    .await;
            }
        });
    }

    /// Disables the live keys named after this run that no claim recorded; the caller makes
    /// sure no claim holds the run (its own key may not be recorded yet). `why` ends the
    /// miner's audit line.
    async fn disable_unrecorded_run_keys(&self, run_id: &str, miner: &Hotkey, management_key: &SecretString, why: &str) -> usize {
        let name = format!("oro-run-{run_id}");
        let Ok(keys) = self.openrouter.list_keys(management_key).await else {
            return 0;
        };
        let mut disabled = 0;
        for key in keys.into_iter().filter(|k| !k.disabled && k.name.as_deref() == Some(name.as_str())) {
            let recorded = match self.db.pool().acquire().await {
                Ok(mut conn) => store::run_keys::is_recorded(&mut conn, &key.hash).await,
                Err(e) => Err(e),
            };
            // Only a key known to be unrecorded is disabled.
            if !matches!(recorded, Ok(false)) {
                continue;
            }
            if self.openrouter.disable_key(management_key, &key.hash).await.is_ok() {
                disabled += 1;
                tracing::warn!(run = %run_id, "disabled a run key that no claim recorded");
                let detail = format!("the OpenRouter management key disabled run key {name}, {why}");
                let _ = crate::audit::record_now(&self.db, miner, Some(Provider::OpenRouter), "credential_used", &detail, self.clock.now())
                    .await;
            }
        }
        disabled
    }

    /// A run abandoned between OpenRouter's mint and our record of it (the claiming replica
    /// died in between): the key is live, capped, and known to no row. The run's lease has
    /// expired and it is not yet requeued, so no claim holds it: any key of its name is that
    /// lost one.
    async fn disable_keys_of_a_lost_claim(&self, run_id: &str, miner: &str) {
        let Ok(miner) = Hotkey::parse(miner) else {
            return;
        };
        let Ok(mut conn) = self.db.pool().acquire().await else {
            return;
        };
        let row = store::connections::sealed(&mut conn, miner.as_str(), Provider::OpenRouter).await;
        drop(conn);
        let Ok(Some(store::connections::Sealed { ciphertext, .. })) = row else {
            return;
        };
        let Ok(management_key) = self.vault.open_sealed(&Vault::credential_context(miner.as_str(), Provider::OpenRouter), &ciphertext)
        else {
            return;
        };
        self.disable_unrecorded_run_keys(run_id, &miner, &management_key, "minted by a claim that ended before recording it").await;
    }

    /// `GET /key` with the new key, retrying 401 (propagation) with full-jitter exponential
    /// backoff for at most `PROPAGATION_WAIT`, so that many claims at once do not retry in
    /// lock-step.
    async fn preflight_minted_key(&self, key: &SecretString) -> Result<(), MintFailure> {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match self.openrouter.key_info(key).await {
                Ok(_) => return Ok(()),
                Err(ProviderError::Unauthorized { .. }) if started.elapsed() < PROPAGATION_WAIT => {
                    tokio::time::sleep(propagation_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(ProviderError::Unauthorized { .. }) => {
                    return Err(MintFailure::Retry(format!(
                        "the freshly minted OpenRouter key was still refused after {} s",
                        PROPAGATION_WAIT.as_secs()
                    )));
                }
                Err(e) => return Err(mint_failure(Provider::OpenRouter, &e)),
            }
        }
    }

    #[tracing::instrument(name = "chutes_run_token", skip_all, fields(miner = %miner.short(), model = %model))]
    async fn chutes_run_token(&self, miner: &Hotkey, model: &str) -> Result<Result<InferenceToken, MintFailure>, RunError> {
        let tokens = match self.chutes_access_token(miner).await {
            Ok(t) => t,
            Err(ConnectionError::NotConnected(_)) => {
                return Ok(Err(MintFailure::Fail(REASON_NO_PROVIDER.into())));
            }
            Err(ConnectionError::NeedsReconsent(_)) => {
                return Ok(Err(MintFailure::Fail("Chutes needs re-consent: the stored grant was refused; reconnect Chutes".into())));
            }
            Err(ConnectionError::Provider(e)) => {
                return Ok(Err(mint_failure(Provider::Chutes, &e)));
            }
            Err(ConnectionError::Busy) => {
                return Ok(Err(MintFailure::Retry("the Chutes credential is busy".into())));
            }
            Err(ConnectionError::Conflict) => {
                return Ok(Err(MintFailure::Retry("the Chutes connection changed during the claim".into())));
            }
            Err(ConnectionError::Storage(e)) => return Err(e.into()),
            Err(ConnectionError::Vault(e)) => return Err(e.into()),
            Err(other) => return Ok(Err(MintFailure::Fail(other.to_string()))),
        };
        // A one-token call proves the account can pay before a validator spends time on it.
        if let Err(e) = self.chutes.preflight(&tokens.access_token, model).await {
            return Ok(Err(mint_failure(Provider::Chutes, &e)));
        }
        // The gateway forwards with the newest token (a refresh may have rotated the grant).
        self.remember_upstream(miner, &tokens.access_token, tokens.expires_in);
        let expires_at = self.clock.now() + tokens.expires_in;
        Ok(Ok(InferenceToken {
            provider: Provider::Chutes,
            access_token: tokens.access_token.expose_secret().to_owned(),
            base_url: self.chutes.llm_base().to_owned(),
            expires_at: clock::rfc3339(expires_at),
        }))
    }

    /// The run, if this validator holds it; otherwise why not, in the SDK's terms: gone back
    /// to the queue (`LeaseExpired`), completed by this validator (`AlreadyComplete`), or
    /// someone else's (`NotYours`).
    async fn leased_run(&self, validator: &Caller, run_id: &str) -> Result<(RunStatus, Option<String>), RunError> {
        // ORO's run ids are UUIDs; anything else names no run (and never reaches the database).
        if uuid::Uuid::parse_str(run_id).is_err() {
            return Err(RunError::NotFound);
        }
        let holding = store::runs::holding(&mut *self.db.pool().acquire().await?, run_id).await?;
        let store::runs::Holding { status, validator_hotkey, key_hash } = holding.ok_or(RunError::NotFound)?;
        let mine = validator_hotkey.as_deref() == Some(validator.hotkey.as_str());
        match status {
            RunStatus::Running if mine => Ok((status, key_hash)),
            RunStatus::Queued => Err(RunError::LeaseExpired),
            RunStatus::Succeeded | RunStatus::Failed if mine => Err(RunError::AlreadyComplete(status)),
            _ => Err(RunError::NotYours),
        }
    }

    /// As `leased_run`, for the routes whose SDK models know no `LEASE_EXPIRED` (progress,
    /// complete): there a run that went back to the queue is simply no longer the caller's.
    async fn owned_run(&self, validator: &Caller, run_id: &str) -> Result<(RunStatus, Option<String>), RunError> {
        self.leased_run(validator, run_id).await.map_err(|e| if matches!(e, RunError::LeaseExpired) { RunError::NotYours } else { e })
    }

    /// `/heartbeat` and `/progress`: the validator is alive; the lease is extended.
    pub async fn heartbeat(&self, validator: &Caller, run_id: &str, progress: Option<&serde_json::Value>) -> Result<String, RunError> {
        if progress.is_some() {
            self.owned_run(validator, run_id).await?;
        } else {
            self.leased_run(validator, run_id).await?;
        }
        let now = self.clock.now();
        let lease = now + self.settings.run_lease_secs;
        let progress = progress.map(|p| p.to_string()).filter(|p| p.len() <= 16 * 1024);
        let mut conn = self.db.pool().acquire().await?;
        if !store::runs::renew_lease(&mut conn, run_id, validator.hotkey.as_str(), lease, progress, now).await? {
            // Reaped (and perhaps handed to another validator) since the check above.
            return Err(RunError::NotYours);
        }
        Ok(clock::rfc3339(lease))
    }

    /// `/complete`: records the outcome, then disables the run's OpenRouter key and records
    /// what it spent.
    #[tracing::instrument(name = "complete_run", skip_all, fields(run = %run_id, validator = %validator.hotkey.short()))]
    pub async fn complete_run(&self, validator: &Caller, run_id: &str, body: &CompleteRun) -> Result<CompleteRunAnswer, RunError> {
        let terminal = body.terminal_status.to_ascii_uppercase();
        let status = match terminal.as_str() {
            "SUCCESS" | "SUCCEEDED" | "COMPLETED" => RunStatus::Succeeded,
            "FAILED" | "FAILURE" | "ERROR" | "TIMED_OUT" | "TIMEOUT" | "CANCELLED" => RunStatus::Failed,
            _ => return Err(RunError::BadTerminalStatus),
        };
        let (_, key_hash) = self.owned_run(validator, run_id).await?;
        let reason = if status == RunStatus::Failed {
            normalize_failure_reason(body.failure_reason.as_deref())
                .or_else(|| Some(format!("the validator reported {}", body.terminal_status.to_ascii_uppercase())))
        } else {
            None
        };
        let now = self.clock.now();
        // A run whose provider refused payment through the gateway fails with that reason,
        // whatever the validator saw.
        let outcome = store::runs::Outcome { status, failure_reason: reason, score: body.validator_score.filter(|s| s.is_finite()) };
        let completed =
            store::runs::complete(&mut *self.db.pool().acquire().await?, run_id, validator.hotkey.as_str(), outcome, now).await?;
        let Some(store::runs::Recorded { status: recorded, failure_reason: reason }) = completed else {
            return Err(RunError::NotYours);
        };
        let reported = status;
        let status = if recorded == RunStatus::Succeeded { RunStatus::Succeeded } else { RunStatus::Failed };
        metrics::counter!("oro_runs_completed_total", "status" => status.as_str()).increment(1);
        if let Some(reason) = &reason {
            count_failure(reason, "evaluation");
        }
        if let Some(hash) = key_hash {
            // Best effort now; the reaper retries what fails.
            if let Err(e) = self.retire_run_key(&hash).await {
                tracing::warn!(run = %run_id, error = %e, "could not disable the run key yet; the reaper will retry");
            }
        }
        // One run is the whole work item of an agent version here: a success makes the
        // version eligible and closes the item either way.
        let succeeded = status == RunStatus::Succeeded;
        Ok(CompleteRunAnswer {
            eval_run_id: run_id.to_owned(),
            // A reported success that the provider's refusal overrode reads as a failure.
            status: if status == reported { terminal } else { "FAILED".into() },
            work_item: WorkItemStatus { included_success_count: i64::from(succeeded), required_successes: 1, is_closed: true },
            agent_version_became_eligible: succeeded,
            final_score: body.validator_score.filter(|s| s.is_finite()),
        })
    }

    /// Disables a per-run key at OpenRouter and records its spend, and tells the other replicas.
    /// Idempotent.
    #[tracing::instrument(name = "retire_run_key", skip_all)]
    async fn retire_run_key(&self, hash: &str) -> Result<(), ServiceRetireError> {
        let retired = self.retire_run_key_here(hash).await;
        if retired.is_ok() {
            self.announce_retirement().await;
        }
        retired
    }

    async fn retire_run_key_here(&self, hash: &str) -> Result<(), ServiceRetireError> {
        let key = store::run_keys::find(&mut *self.db.pool().acquire().await?, hash).await?;
        let Some(store::run_keys::RunKey { hotkey, minted_by, disabled_at, eval_run_id: run_id }) = key else {
            return Ok(());
        };
        // What the run's gateway token spent through this replica is written first (another
        // replica's allowance stops being trusted within a second, and writes its spend then).
        self.return_allowances(|run, _, _| run == run_id).await?;
        if let Some(provider) = crate::gateway::gateway_provider(&minted_by) {
            return self.retire_gateway_token(hash, &hotkey, &run_id, provider).await;
        }
        // The gateway token wrapping this key (`ORO_GATEWAY_OPENROUTER`) dies first: a write.
        store::run_keys::retire_wrapping_tokens(&mut *self.db.pool().acquire().await?, hash, self.clock.now()).await?;
        let connection = store::connections::sealed(&mut *self.db.pool().acquire().await?, &hotkey, Provider::OpenRouter).await?;
        let management_key: Option<SecretString> = match connection {
            Some(store::connections::Sealed { ciphertext: ct, .. }) => {
                Some(self.vault.open_sealed(&Vault::credential_context(&hotkey, Provider::OpenRouter), &ct)?)
            }
            None => None,
        };
        // Disconnected (or replaced) since: that credential's disconnect or replacement
        // disables its run keys (now or through a pending revocation); the sweep skips it.
        let Some(management_key) = management_key.filter(|k| key_fingerprint(k) == minted_by) else {
            store::run_keys::mark_orphaned(&mut *self.db.pool().acquire().await?, hash, self.clock.now()).await?;
            return Ok(());
        };
        if disabled_at.is_none() {
            self.openrouter.disable_key(&management_key, hash).await?;
        }
        let usage = self.openrouter.get_key(&management_key, hash).await.ok().map(|k| k.usage);
        let first_disable = store::run_keys::record_disabled(&mut *self.db.pool().acquire().await?, hash, usage, self.clock.now()).await?;
        // Once per key, by whichever retirement recorded the disable (a retry, or `complete`
        // racing the sweep, finds it done).
        if first_disable && let Ok(miner) = Hotkey::parse(&hotkey) {
            let spent = usage.map(|u| format!(" (it spent ${u:.4})")).unwrap_or_default();
            let detail = format!("the OpenRouter management key disabled run key oro-run-{run_id}{spent}");
            if let Err(e) =
                crate::audit::record_now(&self.db, &miner, Some(Provider::OpenRouter), "credential_used", &detail, self.clock.now()).await
            {
                tracing::warn!(run = %run_id, error = %e, "could not record the credential use in the audit log");
            }
        }
        if let Some(usage) = usage {
            store::runs::record_spend(&mut *self.db.pool().acquire().await?, store::runs::SpendOf::KeyHash(hash), usage).await?;
        }
        Ok(())
    }

    /// `POST /v1/miner/runs/{id}/stop` (Stop inference): the miner kills a running run's
    /// credential at once (the gateway token, or the OpenRouter run key at OpenRouter). The run
    /// itself goes on at the validator, and fails when its agent can no longer infer.
    #[tracing::instrument(name = "stop_run_inference", skip_all, fields(run = %run_id, miner = %miner.short()))]
    pub async fn stop_run_inference(&self, miner: &Hotkey, run_id: &str) -> Result<wire::api::StoppedInference, RunError> {
        if uuid::Uuid::parse_str(run_id).is_err() {
            return Err(RunError::NotFound);
        }
        let run = store::runs::owned(&mut *self.db.pool().acquire().await?, run_id).await?;
        // Someone else's run is not found, not forbidden: run ids say nothing to strangers.
        let Some(store::runs::Owned { status, key_hash, provider, .. }) = run.filter(|r| r.hotkey == miner.as_str()) else {
            return Err(RunError::NotFound);
        };
        if status != RunStatus::Running {
            return Err(RunError::NotRunning(status.to_string()));
        }
        let provider: Provider = provider.and_then(|p| p.parse().ok()).ok_or_else(|| RunError::NotRunning("still being claimed".into()))?;
        let Some(hash) = key_hash else {
            return Err(if provider == Provider::Chutes {
                RunError::CannotStop
            } else {
                RunError::NotRunning("still being claimed".into())
            });
        };
        self.retire_run_key(&hash).await.map_err(|e| match e {
            ServiceRetireError::Storage(e) => RunError::Storage(e),
            ServiceRetireError::Vault(e) => RunError::Vault(e),
            ServiceRetireError::Provider(e) => RunError::StopFailed(crate::providers::scrub(&e.to_string())),
        })?;
        let spend = store::runs::spend(&mut *self.db.pool().acquire().await?, run_id).await?;
        let spent = spend.map(|s| format!(" after spending ${s:.4}")).unwrap_or_default();
        let detail = format!("you stopped inference for run {run_id}: its {} credential is disabled{spent}", provider.display_name());
        if let Err(e) = crate::audit::record_now(&self.db, miner, Some(provider), "credential_used", &detail, self.clock.now()).await {
            tracing::warn!(run = %run_id, error = %e, "could not record the stop in the audit log");
        }
        tracing::info!(run = %run_id, %provider, "the miner stopped the run's inference");
        Ok(wire::api::StoppedInference {
            eval_run_id: run_id.to_owned(),
            provider,
            spend_usd: spend,
            message: format!("Stopped inference for run {run_id}: its {} credential no longer works{spent}.", provider.display_name()),
        })
    }

    /// A gateway token dies with a write (nothing to call upstream). A Chutes run's spend is
    /// what the gateway metered; an OpenRouter run's is its own key's, recorded when that key
    /// is retired (the run's credential, retired with the run). Idempotent.
    async fn retire_gateway_token(&self, hash: &str, hotkey: &str, run_id: &str, provider: Provider) -> Result<(), ServiceRetireError> {
        let retired = store::run_keys::retire_token(&mut *self.db.pool().acquire().await?, hash, self.clock.now()).await?;
        let Some(spent) = retired else { return Ok(()) };
        if provider == Provider::OpenRouter {
            return Ok(());
        }
        store::runs::record_spend(&mut *self.db.pool().acquire().await?, store::runs::SpendOf::Run(run_id), spent).await?;
        if let Ok(miner) = Hotkey::parse(hotkey) {
            let detail = format!("the gateway token of run {run_id} was retired; the run spent ${spent:.4} of its cap through the gateway");
            if let Err(e) =
                crate::audit::record_now(&self.db, &miner, Some(Provider::Chutes), "credential_used", &detail, self.clock.now()).await
            {
                tracing::warn!(run = %run_id, error = %e, "could not record the credential use in the audit log");
            }
        }
        Ok(())
    }

    /// The reaper: runs whose validator vanished go back to the queue (or fail after
    /// `MAX_ATTEMPTS`), and per-run keys of finished, abandoned or expired runs are disabled.
    #[tracing::instrument(name = "reap_runs", skip_all)]
    pub async fn reap_runs(&self) -> Result<usize, RunError> {
        let now = self.clock.now();
        let abandoned = store::runs::abandoned(&mut *self.db.pool().acquire().await?, now).await?;
        let mut reaped = 0;
        for store::runs::Abandoned { id, attempts: abandoned_before, key_hash, provider, hotkey: miner } in abandoned {
            if key_hash.is_none() && provider.as_deref() == Some(Provider::OpenRouter.as_str()) {
                self.disable_keys_of_a_lost_claim(&id, &miner).await;
            }
            // Retire the vanished validator's key first, while the run still names it, so its
            // spend is recorded against the run and the month.
            if let Some(hash) = &key_hash
                && let Err(e) = self.retire_run_key(hash).await
            {
                tracing::warn!(run = %id, error = %e, "could not disable an abandoned run's key yet; the sweep retries");
            }
            let abandoned_now = abandoned_before + 1;
            let mut conn = self.db.pool().acquire().await?;
            let done = if abandoned_now >= MAX_ATTEMPTS {
                store::runs::fail_abandoned(&mut conn, &id, abandoned_now, now).await?
            } else {
                store::runs::requeue_abandoned(&mut conn, &id, abandoned_now, now).await?
            };
            drop(conn);
            if done {
                reaped += 1;
                metrics::counter!("oro_runs_reaped_total", "outcome" => if abandoned_now >= MAX_ATTEMPTS { "failed" } else { "requeued" })
                    .increment(1);
                if abandoned_now >= MAX_ATTEMPTS {
                    count_failure("abandoned", "reaper");
                }
                tracing::warn!(run = %id, abandoned = abandoned_now, "validator lease expired; run reaped");
            }
        }
        // Keys still live whose run ended or whose expiry passed.
        let stale = store::runs::stale_keys(&mut *self.db.pool().acquire().await?, now, 100).await?;
        for hash in stale {
            if let Err(e) = self.retire_run_key(&hash).await {
                tracing::warn!(error = %e, "could not disable a stale run key yet");
            }
        }
        Ok(reaped)
    }

    /// A presigned link to the run's agent code, good until `expires` and only while this
    /// validator holds the run (ORO's validator fetches it with a plain GET).
    fn code_download_url(&self, run_id: &str, agent_version_id: &str, validator: &Hotkey, expires: i64) -> String {
        let sig = self.code_urls.sign(&CodeGrant { run_id, agent_version_id, validator: validator.as_str(), expires });
        format!("{}/v1/public/agent-code/{run_id}?expires={expires}&sig={sig}", self.settings.public_url.as_str().trim_end_matches('/'))
    }

    /// The agent code behind a presigned link: the link must be unexpired, and made for the
    /// run as it is now (running, under the validator and agent version it names).
    pub async fn agent_code_by_link(&self, run_id: &str, expires: i64, sig: &str) -> Result<(String, Vec<u8>), RunError> {
        if expires < self.clock.now() {
            return Err(RunError::DownloadLinkExpired);
        }
        let holder = store::runs::code_holder(&mut *self.db.pool().acquire().await?, run_id).await?;
        let Some(store::runs::CodeHolder { agent_version_id, validator_hotkey: Some(validator), status }) = holder else {
            return Err(RunError::DownloadLinkInvalid);
        };
        if status != RunStatus::Running
            || !self.code_urls.verify(&CodeGrant { run_id, agent_version_id: &agent_version_id, validator: &validator, expires }, sig)
        {
            return Err(RunError::DownloadLinkInvalid);
        }
        self.agent_file(&agent_version_id).await
    }

    /// An agent version's file name and code.
    async fn agent_file(&self, agent_version_id: &str) -> Result<(String, Vec<u8>), RunError> {
        store::agents::file(&mut *self.db.pool().acquire().await?, agent_version_id).await?.ok_or(RunError::NotFound)
    }

    /// The agent code a validator downloads (only for a run it holds).
    pub async fn agent_code(&self, validator: &Caller, agent_version_id: &str) -> Result<(String, Vec<u8>), RunError> {
        let held =
            store::runs::validator_runs_version(&mut *self.db.pool().acquire().await?, agent_version_id, validator.hotkey.as_str()).await?;
        if !held {
            return Err(RunError::NotFound);
        }
        self.agent_file(agent_version_id).await
    }

    /// What a validator holds for each provider's runs on this service.
    pub fn run_protection(&self) -> wire::api::RunProtection {
        use wire::api::RunCredentialKind;
        wire::api::RunProtection {
            run_cap_usd: self.settings.run_key_cap_usd,
            chutes: match self.settings.chutes_run_credential {
                crate::config::ChutesRunCredential::Gateway => RunCredentialKind::Gateway,
                crate::config::ChutesRunCredential::Direct => RunCredentialKind::ProviderToken,
            },
            openrouter: if self.settings.gateway_openrouter { RunCredentialKind::Gateway } else { RunCredentialKind::CappedKey },
        }
    }

    /// `GET /v1/miner/runs`: the miner's newest runs.
    pub async fn miner_runs(&self, hotkey: &Hotkey, limit: i64) -> Result<RunList, RunError> {
        let mut conn = self.db.pool().acquire().await?;
        // A gateway run's spend is live in its token's row until the run ends.
        let minters = [crate::gateway::CHUTES_GATEWAY_MINTER, crate::gateway::OPENROUTER_GATEWAY_MINTER];
        let rows = store::runs::of_miner(&mut conn, hotkey.as_str(), limit.clamp(1, 200), minters).await?;
        let (since, _) = crate::budget::month_start(self.clock.now());
        let (openrouter, chutes) =
            store::run_keys::month_spend(&mut conn, hotkey.as_str(), since, crate::gateway::CHUTES_GATEWAY_MINTER).await?;
        let default_provider = store::connections::default_provider(&mut conn, hotkey.as_str()).await?;
        Ok(RunList {
            protection: Some(self.run_protection()),
            default_provider,
            month_spend_usd: [(Provider::OpenRouter, openrouter), (Provider::Chutes, chutes)]
                .into_iter()
                .filter_map(|(p, v)| v.map(|v| (p.as_str().to_owned(), v)))
                .collect(),
            runs: rows
                .into_iter()
                .map(|r| RunSummary {
                    eval_run_id: r.id,
                    agent_name: r.agent_name,
                    agent_version_id: r.agent_version_id,
                    status: r.status.as_str().to_owned(),
                    provider: r.provider.and_then(|p| p.parse().ok()),
                    failure_reason: r.failure_reason,
                    cap_usd: r.cap_usd,
                    spend_usd: r.spend_usd,
                    score: r.score,
                    created_at: clock::rfc3339(r.created_at),
                    completed_at: r.completed_at.map(clock::rfc3339),
                    inference_stopped: r.status == RunStatus::Running && r.credential_disabled_at.is_some(),
                })
                .collect(),
        })
    }
}

/// Why retiring a run key did not finish (it is retried by the reaper).
#[derive(Debug, thiserror::Error)]
pub enum ServiceRetireError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_402_bodies_become_no_credits() {
        let chutes = r#"HTTP 402: {"detail":{"message":"Quota exceeded and account balance is $0.0, please pay with fiat or send tao"}}"#;
        assert_eq!(normalize_failure_reason(Some(chutes)).unwrap(), "no credits: insufficient balance on the Chutes account");
        let openrouter = r#"{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}"#;
        assert_eq!(normalize_failure_reason(Some(openrouter)).unwrap(), "no credits: insufficient balance on the OpenRouter account");
        let cap = r#"{"error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}}}"#;
        assert!(normalize_failure_reason(Some(cap)).unwrap().contains("per-run spending cap"));
        assert_eq!(normalize_failure_reason(Some("sandbox crashed")).unwrap(), "sandbox crashed");
        assert_eq!(normalize_failure_reason(Some("  ")), None);
    }

    #[test]
    fn run_statuses_read_back_as_written() {
        for status in [RunStatus::Queued, RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed] {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(RunStatus::parse("RUNNING"), None, "stored in lower case only");
        assert!(RunStatus::Failed.is_final() && !RunStatus::Running.is_final());
    }

    #[test]
    fn propagation_backoff_is_jittered_and_bounded() {
        for attempt in 0..10 {
            assert!(propagation_backoff(attempt) <= std::time::Duration::from_millis(2_000));
        }
        let draws: std::collections::HashSet<_> = (0..50).map(|_| propagation_backoff(4)).collect();
        assert!(draws.len() > 10, "claims retrying together spread out");
    }

    #[test]
    fn agent_names() {
        assert!(valid_agent_name("my-agent_v1.2"));
        assert!(!valid_agent_name(""));
        assert!(!valid_agent_name("has space"));
        assert!(!valid_agent_name(&"a".repeat(65)));
    }
}
