//! The handle every caller holds: settings, storage, the vault and the provider clients.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AuthError, sessions, signed_request};
use crate::catalog::CatalogError;
use crate::config::{Environment, Settings};
use crate::connections::ConnectionError;
use crate::db::Db;
use crate::failure::Failure;
use crate::providers::chutes::ChutesClient;
use crate::providers::openrouter::OpenRouterClient;
use crate::providers::{ProviderError, http_client};
use crate::session_store::DbSessionStore;
use crate::vault::{MasterKeys, Vault, VaultError};

/// The service layer: one `Arc`, so that a request's clone (every extractor and handler takes
/// one) is a counter bump, not five `String`s and a dozen counters.
#[derive(Clone)]
pub struct Services(Arc<ServicesInner>);

impl std::ops::Deref for Services {
    type Target = ServicesInner;

    fn deref(&self) -> &ServicesInner {
        &self.0
    }
}

pub struct ServicesInner {
    pub settings: Arc<Settings>,
    pub db: Db,
    /// Every "now" the service reads (expiries, leases, windows, audit times).
    pub clock: crate::clock::Clock,
    pub vault: Vault,
    pub openrouter: OpenRouterClient,
    pub chutes: ChutesClient,
    /// Signs and checks the presigned `code_download_url` links.
    pub code_urls: Arc<crate::code_url::CodeUrlSigner>,
    /// The per-IP limit on signed requests, counted in memory before any signature check.
    pub signed_limiter: Arc<crate::rate_limit::LocalLimiter>,
    /// Failed authentications per IP, counted from the 401s; past the limit an address's
    /// signed requests are refused before any signature check.
    pub failed_auth_limiter: Arc<crate::rate_limit::LocalLimiter>,
    pub(crate) catalog_cache: Arc<crate::catalog::CatalogCache>,
    pub(crate) gateway: Arc<crate::gateway::GatewayCache>,
    /// Work that outlives the request that started it (a run put back after a failed claim,
    /// the sweep for unrecorded run keys, a replaced credential's revocation, a Chutes connect
    /// past its deadline, a stream's settlement): tracked, so that shutdown waits for it
    /// (`drain_background_work`) instead of cutting it off mid-write.
    background: tokio_util::task::TaskTracker,
    /// Runs this replica is putting back after a failed claim, by run: their validator, and
    /// how to put them back. A claim by that validator that finds it at capacity settles
    /// them first (`runs::Services::claim_next`).
    pub(crate) putting_back: std::sync::Mutex<std::collections::HashMap<String, crate::runs::PutBack>>,
}

/// Every error the service layer answers, mapped once to HTTP by the server and once to a
/// sentence by the pages.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Budget(#[from] crate::budget::BudgetError),
    #[error(transparent)]
    RateLimited(#[from] crate::rate_limit::RateLimitError),
    #[error("the vault could not be opened: {0}")]
    Vault(#[from] VaultError),
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl ServiceError {
    pub fn failure(&self) -> Failure {
        match self {
            ServiceError::Connection(e) => e.failure(),
            ServiceError::Catalog(e) => e.failure(),
            ServiceError::Run(e) => e.failure(),
            ServiceError::Auth(e) => e.failure(),
            ServiceError::Budget(e) => e.failure(),
            ServiceError::RateLimited(e) => e.failure(),
            ServiceError::Vault(_) | ServiceError::Storage(_) => Failure::Internal,
        }
    }

    /// The provider's fault (502/503/504): safe and useful to tell the caller.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            ServiceError::Connection(
                ConnectionError::Provider(_)
                    | ConnectionError::Busy
                    | ConnectionError::ConnectTimedOut(..)
                    | ConnectionError::ConnectStillRunning(..)
            )
        )
    }

    /// The request field an `Invalid` refusal is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            // The legacy route names it refresh_token; both carry the pasted credential.
            ServiceError::Connection(ConnectionError::BadCredentialShape(_)) => Some("credential"),
            ServiceError::Connection(ConnectionError::BadCodeVerifier) => Some("code_verifier"),
            ServiceError::Budget(crate::budget::BudgetError::Invalid) => Some("monthly_usd"),
            ServiceError::Run(crate::runs::RunError::BadTerminalStatus) => Some("terminal_status"),
            _ => None,
        }
    }

    /// Seconds a refused caller should wait (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            ServiceError::RateLimited(e) => e.retry_after_secs(),
            ServiceError::Run(crate::runs::RunError::Cooldown { remaining_seconds, .. }) => Some((*remaining_seconds).max(1)),
            _ => None,
        }
    }

    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            ServiceError::Connection(ConnectionError::Provider(e)) => Some(e),
            _ => None,
        }
    }
}

impl Services {
    /// Opens the vault (creating the master key on a first embedded run), seeds the catalog,
    /// and builds the provider clients.
    pub async fn build(settings: Settings, db: Db) -> Result<Self, ServiceError> {
        let create_master = settings.environment != Environment::Production;
        let masters = MasterKeys::load(&settings.master_key_file, create_master)?;
        let clock = crate::clock::Clock::default();
        let vault = Vault::open(&db, &masters, clock.now()).await?;
        let code_urls = Arc::new(crate::code_url::CodeUrlSigner::new(&masters));
        drop(masters);
        let timeout = Duration::from_secs(settings.provider_timeout_secs);
        let http = http_client(timeout);
        let openrouter = OpenRouterClient::new(http.clone(), &settings.openrouter_api_base, timeout);
        let chutes = ChutesClient::new(http, &settings, timeout);
        crate::catalog::seed_if_empty(&db, clock.now()).await?;
        let signed_limiter =
            Arc::new(crate::rate_limit::LocalLimiter::new(crate::rate_limit::Action::Signed, settings.rate_limits.signed_per_ip));
        let settings = Arc::new(settings);
        Ok(Services(Arc::new(ServicesInner {
            settings: settings.clone(),
            db,
            clock,
            vault,
            openrouter,
            chutes,
            code_urls,
            signed_limiter,
            failed_auth_limiter: Arc::new(crate::rate_limit::LocalLimiter::new(
                crate::rate_limit::Action::FailedAuth,
                settings.rate_limits.failed_auth_per_ip,
            )),
            catalog_cache: Arc::default(),
            gateway: Arc::default(),
            background: tokio_util::task::TaskTracker::new(),
            putting_back: Default::default(),
        })))
    }

    /// Starts work that outlives its request, in the current span, tracked for shutdown.
    pub fn spawn_background<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.spawn(tracing::Instrument::in_current_span(work))
    }

    /// Background work still running.
    pub fn background_work(&self) -> usize {
        self.background.len()
    }

    /// Resolves once no background work is running (tests and tools that must see its
    /// effects: a revocation's queued row gone, a stream settled).
    pub async fn background_work_done(&self) {
        while !self.background.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// At shutdown, once the last request is answered: waits up to `ORO_SHUTDOWN_GRACE_SECS`
    /// for background work to finish. Returns how many tasks were still running then (what
    /// they leave undone, the reaper and the revocation queue finish on the next start).
    pub async fn drain_background_work(&self) -> usize {
        self.background.close();
        let grace = Duration::from_secs(self.settings.shutdown_grace_secs);
        if tokio::time::timeout(grace, self.background.wait()).await.is_ok() {
            return 0;
        }
        let left = self.background.len();
        tracing::warn!(
            left,
            grace_secs = grace.as_secs(),
            "background work still running at shutdown; the reaper and the revocation queue finish it later"
        );
        left
    }

    /// One pass of background upkeep: forget what expired, retry failed revocations, reap
    /// abandoned runs.
    /// Each step runs whatever the others did: one failing must not stop the reaper.
    pub async fn housekeeping(&self) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let mut first_error: Option<ServiceError> = None;
        let mut note = |result: Result<(), ServiceError>, step: &str| {
            if let Err(e) = result {
                tracing::warn!(step, error = %e, "housekeeping step failed; will retry");
                first_error.get_or_insert(e);
            }
        };
        note(signed_request::forget_expired_nonces(&self.db, now).await.map(|_| ()).map_err(Into::into), "nonces");
        note(crate::rate_limit::forget_expired(&self.db, now).await.map(|_| ()).map_err(Into::into), "rate limits");
        note(sessions::forget_expired(&self.db, now).await.map_err(Into::into), "sessions");
        note(
            DbSessionStore::new(self.db.clone(), self.clock.clone()).delete_expired(now).await.map(|_| ()).map_err(Into::into),
            "web sessions",
        );
        let forgotten = match self.db.pool().acquire().await {
            Ok(mut conn) => crate::store::oauth_states::forget_expired(&mut conn, now).await,
            Err(e) => Err(e),
        };
        note(forgotten.map_err(Into::into), "oauth states");
        // A rotation's new data key (another process added it) seals from now on here too.
        note(self.vault.refresh(&self.db).await.map_err(Into::into), "vault keys");
        note(self.retry_pending_revocations().await.map(|_| ()).map_err(Into::into), "revocations");
        note(self.reap_runs().await.map(|_| ()).map_err(Into::into), "reaper");
        first_error.map_or(Ok(()), Err)
    }
}
