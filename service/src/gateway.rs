//! The run gateway's domain. Chutes has no capped keys, so for a Chutes run the service is the
//! cap: the validator gets a run-bound token (`oro-run-…`, stored only as a digest), every
//! request through the gateway first reserves its worst case against the run's cap in one
//! database statement (so no number of requests on any number of replicas passes it), and
//! settles to what the answer's `usage` says it cost. The miner's Chutes token stays here.
//!
//! The HTTP side (forwarding, streaming) is `server/src/gateway.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use wire::Provider;

use crate::connections::ConnectionError;
use crate::domain::Hotkey;
use crate::services::Services;
use crate::store;
use crate::store::run_keys::Leased;

/// `run_keys.minted_by` of a gateway token for a Chutes run.
pub const CHUTES_GATEWAY_MINTER: &str = "gateway:chutes";
/// `run_keys.minted_by` of a gateway token for an OpenRouter run (`ORO_GATEWAY_OPENROUTER`):
/// its row names the run's OpenRouter key (`upstream_key_hash`) and holds it sealed.
pub const OPENROUTER_GATEWAY_MINTER: &str = "gateway:openrouter";
pub const TOKEN_PREFIX: &str = "oro-run-";
/// How stale a replica's copy of the prices may be.
const MODELS_TTL: Duration = Duration::from_secs(5);
/// A cached upstream token is used until this long before it expires.
const UPSTREAM_MARGIN: Duration = Duration::from_secs(120);

/// An allowlisted model under both names, with its price.
#[derive(Debug, Clone)]
pub struct PricedModel {
    pub chutes_name: String,
    pub openrouter_name: String,
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    /// The operator's default: the model runs are pinned to.
    pub is_default: bool,
}

/// The model runs are pinned to: the operator's default, or else the first listed.
pub fn pinned_model(models: &[PricedModel]) -> Option<&PricedModel> {
    models.iter().find(|m| m.is_default).or(models.first())
}

impl PricedModel {
    pub fn name_for(&self, provider: Provider) -> &str {
        match provider {
            Provider::Chutes => &self.chutes_name,
            Provider::OpenRouter => &self.openrouter_name,
        }
    }

    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_usd_per_mtok + completion_tokens as f64 * self.output_usd_per_mtok) / 1_000_000.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("this run token is not valid: it is unknown, its run has ended, or it expired")]
    InvalidToken,
    #[error("this run has spent its ${cap:.2} cap (${spent:.4} spent, ${reserved:.4} held by requests in flight)")]
    CapReached { cap: f64, spent: f64, reserved: f64 },
    #[error("{model} is not an allowlisted model; the allowed models are listed at {page}")]
    ModelNotAllowed { model: String, page: String },
    #[error("the miner's Chutes connection cannot be used: {0}")]
    Connection(String),
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

/// The `run_keys.minted_by` of a provider's gateway tokens.
pub fn gateway_minter(provider: Provider) -> &'static str {
    match provider {
        Provider::Chutes => CHUTES_GATEWAY_MINTER,
        Provider::OpenRouter => OPENROUTER_GATEWAY_MINTER,
    }
}

/// The provider a `run_keys.minted_by` names, if the row is a gateway token's.
pub fn gateway_provider(minted_by: &str) -> Option<Provider> {
    match minted_by {
        CHUTES_GATEWAY_MINTER => Some(Provider::Chutes),
        OPENROUTER_GATEWAY_MINTER => Some(Provider::OpenRouter),
        _ => None,
    }
}

/// A request's reservation against its run's cap, to be settled once its cost is known.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub key_hash: String,
    pub run_id: String,
    pub miner: Hotkey,
    pub provider: Provider,
    pub reserved_usd: f64,
    /// The run's own OpenRouter key, which an OpenRouter run's requests are forwarded with.
    pub upstream_key: Option<SecretString>,
    /// The allowance it was reserved from (`Allowance::id`).
    lease: u64,
}

/// What the gateway keeps in memory, per replica: the priced catalog for a few seconds, and
/// each miner's current upstream token until shortly before it expires.
#[derive(Default)]
pub struct GatewayCache {
    models: Mutex<Option<(Instant, Arc<Vec<PricedModel>>)>>,
    upstream: Mutex<HashMap<String, (Instant, SecretString)>>,
    /// One refresh per miner at a time: concurrent first requests of a run wait for it.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This replica's allowances, by token hash.
    allowances: Mutex<HashMap<String, Allowance>>,
}

/// How much of a run's cap one replica leases at once, in the asking request's worst cases.
/// Requests are then reserved in memory, without a statement, until the lease runs low.
const LEASE_REQUESTS: f64 = 32.0;
/// How long a lease is trusted without asking the database: a token stopped, retired or
/// disconnected through another replica stops working here within this.
const LEASE_TRUST: Duration = Duration::from_secs(1);
/// How long an allowance with nothing in flight is kept before its spend is written and its
/// unused part goes back to the run.
const IDLE_RETURN: Duration = Duration::from_millis(50);
/// The minters of gateway tokens, one per provider.
const GATEWAY_MINTERS: [&str; 2] = [CHUTES_GATEWAY_MINTER, OPENROUTER_GATEWAY_MINTER];

/// Float slack when comparing dollar amounts.
const EPSILON: f64 = 1e-12;

fn next_allowance_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A share of a run's cap that this replica took from the token's row (`reserved_usd`) in one
/// conditional statement, so that the shares of all replicas and what was spent never pass the
/// cap. Requests reserve from it in memory; what they cost is written back in batches.
struct Allowance {
    /// Tells this allowance from a later one for the same token: a request settles into the
    /// allowance it was reserved from, or else through the row.
    id: u64,
    /// Taken from the row and not yet given back (it includes `in_flight` and `spent`).
    leased: f64,
    /// Reserved by requests in flight here.
    in_flight: f64,
    /// What requests here cost, not yet moved to the row's `spent_usd`.
    spent: f64,
    /// The part of `spent` that `leased` does not cover: answers dearer than their reservation
    /// (OpenRouter's own charge) once the lease ran out. It is added to the row's spend without
    /// being taken out of its reservations.
    uncovered: f64,
    trusted_until: Instant,
    /// The token's own expiry (Unix seconds): no reservation past it, lease or not.
    expires_at: i64,
    binding: Arc<RunBinding>,
    return_scheduled: bool,
    refilling: bool,
    /// No refill before this (the last one found the cap near).
    refill_after: Instant,
    /// The last reservation or settlement: an allowance goes back after `IDLE_RETURN` without one.
    last_used: Instant,
}

impl Allowance {
    fn free(&self) -> f64 {
        self.leased - self.in_flight - self.spent + self.uncovered
    }

    /// Takes the spend to write: (what leaves the row's `reserved_usd`, what joins its
    /// `spent_usd`).
    fn take_spend(&mut self) -> (f64, f64) {
        let spent = std::mem::take(&mut self.spent);
        let moved = spent - std::mem::take(&mut self.uncovered);
        self.leased -= moved;
        (moved, spent)
    }

    /// Puts back a spend a failed statement did not write.
    fn restore_spend(&mut self, (moved, spent): (f64, f64)) {
        self.leased += moved;
        self.spent += spent;
        self.uncovered += spent - moved;
    }
}

/// What a reservation carries besides the money, read once per lease.
struct RunBinding {
    run_id: String,
    miner: Hotkey,
    provider: Provider,
    upstream_key: Option<SecretString>,
}

impl RunBinding {
    fn reservation(&self, key_hash: &str, usd: f64, lease: u64) -> Reservation {
        Reservation {
            lease,
            key_hash: key_hash.to_owned(),
            run_id: self.run_id.clone(),
            miner: self.miner.clone(),
            provider: self.provider,
            reserved_usd: usd,
            upstream_key: self.upstream_key.clone(),
        }
    }
}

pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Services {
    /// A new run-bound token for the run, and the `run_keys` row that records it
    /// (hashed; with the OpenRouter key it forwards with, sealed, when there is one).
    pub(crate) fn new_gateway_token(
        &self,
        run_id: &str,
        miner: &Hotkey,
        cap: f64,
        provider: Provider,
        expires_at: i64,
        upstream: Option<(&str, &SecretString)>,
    ) -> (String, crate::store::runs::KeyRecord) {
        let token = format!("{TOKEN_PREFIX}{}", crate::auth::sessions::random_token(32));
        let hash = token_digest(&token);
        let upstream = upstream
            .map(|(upstream_hash, key)| (upstream_hash.to_owned(), self.vault.seal(&crate::vault::Vault::run_key_context(&hash), key)));
        let record = crate::store::runs::KeyRecord {
            key_hash: hash,
            hotkey: miner.as_str().to_owned(),
            run_id: run_id.to_owned(),
            minted_by: gateway_minter(provider).to_owned(),
            cap_usd: cap,
            expires_at,
            upstream,
            disabled_at: None,
        };
        (token, record)
    }

    /// The allowlisted models with their prices (cached for a few seconds).
    pub async fn priced_models(&self) -> Result<Arc<Vec<PricedModel>>, sqlx::Error> {
        if let Some((at, models)) = self.gateway.models.lock().expect("gateway cache lock").as_ref()
            && at.elapsed() < MODELS_TTL
        {
            return Ok(models.clone());
        }
        let rows = store::catalog::models(&mut *self.db.pool().acquire().await?).await?;
        let models = Arc::new(
            rows.into_iter()
                .map(|m| PricedModel {
                    chutes_name: m.chutes_name,
                    openrouter_name: m.openrouter_name,
                    input_usd_per_mtok: m.input_usd_per_mtok,
                    output_usd_per_mtok: m.output_usd_per_mtok,
                    is_default: m.is_default,
                })
                .collect::<Vec<_>>(),
        );
        *self.gateway.models.lock().expect("gateway cache lock") = Some((Instant::now(), models.clone()));
        Ok(models)
    }

    pub(crate) fn forget_priced_models(&self) {
        *self.gateway.models.lock().expect("gateway cache lock") = None;
    }

    /// The allowlisted model a request names, under either provider's name.
    pub async fn allowlisted_model(&self, name: &str) -> Result<PricedModel, GatewayError> {
        let models = self.priced_models().await?;
        models.iter().find(|m| m.chutes_name == name || m.openrouter_name == name).cloned().ok_or_else(|| GatewayError::ModelNotAllowed {
            model: name.chars().take(200).collect(),
            page: format!("{}/models", self.settings.public_url.as_str().trim_end_matches('/')),
        })
    }

    /// Reserves `usd` against the cap of the run `token` is bound to. From this replica's
    /// allowance when it holds enough (no statement); else one conditional statement writes
    /// what the allowance spent and leases more, so that the replicas' allowances and the spend
    /// never pass the cap between them.
    pub async fn reserve_run_spend(&self, token: &str, usd: f64) -> Result<Reservation, GatewayError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(GatewayError::InvalidToken);
        }
        let hash = token_digest(token);
        {
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            if let Some(a) = allowances.get_mut(&hash)
                && a.trusted_until > Instant::now()
                && a.expires_at > self.clock.now()
                && a.free() + EPSILON >= usd
            {
                a.in_flight += usd;
                let now = Instant::now();
                a.last_used = now;
                let reservation = a.binding.reservation(&hash, usd, a.id);
                // Ahead of need, in the background: more allowance once half of it is used, and
                // the database's word on the token before the trust runs out.
                let grant = usd * LEASE_REQUESTS;
                let low = a.free() < grant / 2.0 && a.refill_after <= now;
                if !a.refilling && (low || a.trusted_until < now + LEASE_TRUST / 2) {
                    a.refilling = true;
                    self.refill(&hash, a.id, if low { grant } else { 0.0 });
                }
                return Ok(reservation);
            }
        }
        self.lease(&hash, usd).await
    }

    /// `reserve_run_spend` through the database: renews the lease's trust, writes its spend,
    /// and leases `LEASE_REQUESTS` worst cases (or just this one when the run's rest is less).
    async fn lease(&self, hash: &str, usd: f64) -> Result<Reservation, GatewayError> {
        // The spend so far moves to the row in the same statement (out of `reserved_usd`, into
        // `spent_usd`: the sum the cap is checked against does not change).
        let ((moved, spent), free) = {
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            match allowances.get_mut(hash) {
                Some(a) => (a.take_spend(), a.free()),
                None => ((0.0, 0.0), 0.0),
            }
        };
        let now = self.clock.now();
        let asks = if free + EPSILON >= usd { vec![0.0] } else { vec![usd * LEASE_REQUESTS, usd] };
        for grant in asks {
            let leased =
                self.lease_statement(hash, grant, (moved, spent), now).await.inspect_err(|_| self.keep_unwritten(hash, (moved, spent)))?;
            let Some(store::run_keys::Leased { hotkey, eval_run_id: run_id, minted_by, upstream_sealed: sealed, expires_at }) = leased
            else {
                continue;
            };
            let known = self.gateway.allowances.lock().expect("gateway cache lock").get(hash).map(|a| a.binding.clone());
            let binding = match known {
                Some(binding) => binding,
                None => match self.bind_run(hash, &hotkey, run_id, &minted_by, sealed) {
                    Ok(binding) => binding,
                    Err(e) => {
                        // Nothing was reserved by a request yet: give the grant back.
                        self.write_spend(hash, grant, 0.0, None).await?;
                        self.keep_unwritten(hash, (moved, spent));
                        return Err(e);
                    }
                },
            };
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            let a = allowances.entry(hash.to_owned()).or_insert_with(|| Allowance {
                id: next_allowance_id(),
                leased: 0.0,
                in_flight: 0.0,
                spent: 0.0,
                uncovered: 0.0,
                trusted_until: Instant::now(),
                expires_at,
                binding: binding.clone(),
                return_scheduled: false,
                refilling: false,
                refill_after: Instant::now(),
                last_used: Instant::now(),
            });
            a.leased += grant;
            a.in_flight += usd;
            a.last_used = Instant::now();
            a.expires_at = expires_at;
            a.trusted_until = Instant::now() + LEASE_TRUST;
            return Ok(binding.reservation(hash, usd, a.id));
        }
        // Refused: the spend is written all the same, and what this replica holds goes back.
        // Requests still in flight here settle through the row (`settle_run_spend`).
        let held = self.gateway.allowances.lock().expect("gateway cache lock").remove(hash);
        let (release, spent) = match held {
            Some(mut a) => {
                let (moved_here, spent_here) = a.take_spend();
                (a.leased - a.in_flight + moved + moved_here, spent + spent_here)
            }
            None => (moved, spent),
        };
        if release.abs() > EPSILON || spent > EPSILON {
            self.write_spend(hash, release, spent, None).await?;
        }
        let (_, cap, spent, reserved) = self.live_run_token(hash, now).await?;
        Err(GatewayError::CapReached { cap, spent, reserved })
    }

    /// One conditional statement: writes `spend` (moved out of `reserved_usd`, added to
    /// `spent_usd`) and takes `grant` more into `reserved_usd`, if the token is live and the cap
    /// holds it. `None` when it does not.
    async fn lease_statement(&self, hash: &str, grant: f64, spend: (f64, f64), now: i64) -> Result<Option<Leased>, sqlx::Error> {
        store::run_keys::lease(&mut *self.db.pool().acquire().await?, hash, GATEWAY_MINTERS, grant, spend, now).await
    }

    /// Leases more ahead of need, in the background, once an allowance is half spent: the
    /// requests that find it empty would otherwise wait for the statement.
    fn refill(&self, hash: &str, id: u64, grant: f64) {
        let (services, hash) = (self.clone(), hash.to_owned());
        self.spawn_background(async move {
            let spend = match services.gateway.allowances.lock().expect("gateway cache lock").get_mut(&hash) {
                Some(a) if a.id == id => a.take_spend(),
                _ => return,
            };
            let leased = services.lease_statement(&hash, grant, spend, services.clock.now()).await;
            // What must still reach the row when the allowance was returned meanwhile.
            let unwritten = {
                let mut allowances = services.gateway.allowances.lock().expect("gateway cache lock");
                let current = allowances.get_mut(&hash).filter(|a| a.id == id);
                match (leased, current) {
                    (Ok(Some(store::run_keys::Leased { expires_at, .. })), Some(a)) => {
                        a.leased += grant;
                        a.expires_at = expires_at;
                        a.trusted_until = Instant::now() + LEASE_TRUST;
                        a.refilling = false;
                        None
                    }
                    // Returned meanwhile: the grant goes back.
                    (Ok(Some(_)), None) => Some((grant, 0.0)),
                    (Ok(None), Some(a)) | (Err(_), Some(a)) => {
                        // The cap is near, the token is dead, or the database failed: the next
                        // requests ask the database themselves.
                        a.restore_spend(spend);
                        a.refill_after = Instant::now() + LEASE_TRUST;
                        a.trusted_until = Instant::now();
                        a.refilling = false;
                        None
                    }
                    // Returned meanwhile, and this statement wrote nothing: the spend it carried
                    // is written alone.
                    (Ok(None), None) | (Err(_), None) => Some(spend),
                }
            };
            if let Some((release, spent)) = unwritten
                && let Err(e) = services.write_spend(&hash, release, spent, None).await
            {
                tracing::error!(error = %e, "gateway: a refill's spend or grant could not be written; the row keeps it reserved");
            }
        });
    }

    /// A failed statement wrote nothing: the spend it carried stays in the allowance.
    fn keep_unwritten(&self, hash: &str, spend: (f64, f64)) {
        if let Some(a) = self.gateway.allowances.lock().expect("gateway cache lock").get_mut(hash) {
            a.restore_spend(spend);
        }
    }

    fn bind_run(
        &self,
        hash: &str,
        hotkey: &str,
        run_id: String,
        minted_by: &str,
        sealed: Option<Vec<u8>>,
    ) -> Result<Arc<RunBinding>, GatewayError> {
        let miner = Hotkey::parse(hotkey).map_err(|_| GatewayError::InvalidToken)?;
        let provider = gateway_provider(minted_by).ok_or(GatewayError::InvalidToken)?;
        let upstream_key = match sealed {
            Some(sealed) => Some(
                self.vault
                    .open_sealed(&crate::vault::Vault::run_key_context(hash), &sealed)
                    .map_err(|e| GatewayError::Connection(format!("the run's key could not be opened ({e})")))?,
            ),
            None => None,
        };
        Ok(Arc::new(RunBinding { run_id, miner, provider, upstream_key }))
    }

    /// Moves `release` out of the row's `reserved_usd` and `spent` into its `spent_usd`. A token
    /// retired meanwhile (stop, complete, disconnect) had its spend recorded then: that record
    /// is brought up to date too, so nothing generated goes uncounted.
    async fn write_spend(&self, hash: &str, release: f64, spent: f64, provider: Option<Provider>) -> Result<(), sqlx::Error> {
        let written = store::run_keys::write_spend(&mut *self.db.pool().acquire().await?, hash, release, spent.max(0.0)).await?;
        if let Some(store::run_keys::Written { disabled_at: Some(_), spent_usd, minted_by, eval_run_id }) = written
            && provider.or_else(|| gateway_provider(&minted_by)) == Some(Provider::Chutes)
        {
            let mut conn = self.db.pool().acquire().await?;
            store::runs::record_spend(&mut conn, store::runs::SpendOf::Run(&eval_run_id), spent_usd).await?;
        }
        Ok(())
    }

    /// The channel on which a retirement is announced to every replica (PostgreSQL's
    /// LISTEN/NOTIFY; `startup.rs` listens).
    pub const RETIRED_CHANNEL: &'static str = "oro_gateway_retired";

    /// Tells every replica that a token was retired: each stops trusting its allowances and
    /// asks the database on their next request, so the token dies on all of them at once
    /// rather than within `LEASE_TRUST`. Best effort: a lost announcement leaves that bound.
    pub(crate) async fn announce_retirement(&self) {
        if self.db.backend() != crate::db::Backend::Postgres {
            return;
        }
        let announced = match self.db.pool().acquire().await {
            Ok(mut conn) => store::notify(&mut conn, Self::RETIRED_CHANNEL).await,
            Err(e) => Err(e),
        };
        if let Err(e) = announced {
            tracing::warn!(error = %e, "gateway: could not announce a retirement; other replicas notice within a second");
        }
    }

    /// On PostgreSQL, listens for the retirements any replica announces until `stopped` turns
    /// true (`startup.rs` runs it next to the gateway's listener): a token completed, stopped or
    /// disconnected through another replica then dies here at once, not within the allowance's
    /// trust (a second). A lost connection is made again; what it missed meanwhile is covered
    /// by that second.
    pub async fn listen_for_retirements(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        if self.db.backend() != crate::db::Backend::Postgres {
            return;
        }
        let url = self.settings.database_url.expose_secret().to_owned();
        loop {
            let listening = async {
                let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
                listener.listen(Self::RETIRED_CHANNEL).await?;
                // Announcements may have been missed before this connection listened.
                self.distrust_allowances();
                loop {
                    listener.recv().await?;
                    self.distrust_allowances();
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                failed = listening => {
                    if let Err(e) = failed {
                        tracing::warn!(error = %e, "gateway: not listening for retirements; listening again in a second");
                    }
                }
            }
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// What a replica does when another announces a retirement.
    pub fn distrust_allowances(&self) {
        let now = Instant::now();
        for a in self.gateway.allowances.lock().expect("gateway cache lock").values_mut() {
            a.trusted_until = now;
        }
    }

    /// Writes back and forgets this replica's allowances that `which` picks (by run, by miner
    /// and provider): their tokens are being retired here, and what was spent must be in the
    /// row before the retirement reads it.
    pub(crate) async fn return_allowances(&self, which: impl Fn(&str, &Hotkey, Provider) -> bool) -> Result<(), sqlx::Error> {
        let hashes: Vec<String> = self
            .gateway
            .allowances
            .lock()
            .expect("gateway cache lock")
            .iter()
            .filter(|(_, a)| which(&a.binding.run_id, &a.binding.miner, a.binding.provider))
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in hashes {
            self.return_allowance(&hash, false).await?;
        }
        Ok(())
    }

    /// Writes this replica's allowance for the token back to its row (its spend, and the unused
    /// part returned) and forgets it; requests still in flight settle through the row. Called
    /// when the token is retired here, and when an allowance has been idle for `IDLE_RETURN`.
    /// With `only_if_idle`, an allowance used within the last `IDLE_RETURN` is kept, and the
    /// answer is how long until it may be idle enough (requests in flight keep it for good: the
    /// last of them to settle schedules the next return).
    pub(crate) async fn return_allowance(&self, hash: &str, only_if_idle: bool) -> Result<Option<Duration>, sqlx::Error> {
        let held = {
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            match allowances.get_mut(hash) {
                Some(a) if only_if_idle && a.in_flight > EPSILON => {
                    a.return_scheduled = false;
                    None
                }
                Some(a) if only_if_idle && a.last_used.elapsed() < IDLE_RETURN => {
                    return Ok(Some(IDLE_RETURN - a.last_used.elapsed()));
                }
                Some(_) => allowances.remove(hash),
                None => None,
            }
        };
        let Some(mut a) = held else { return Ok(None) };
        let (moved, spent) = a.take_spend();
        // Everything but what requests in flight reserved (they settle through the row).
        let release = a.leased - a.in_flight + moved;
        if (release.abs() > EPSILON || spent > EPSILON)
            && let Err(e) = self.write_spend(hash, release, spent, Some(a.binding.provider)).await
        {
            // Kept (untrusted), to be written with the next statement for this token.
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            let kept = allowances.entry(hash.to_owned()).or_insert(Allowance {
                id: next_allowance_id(),
                leased: 0.0,
                in_flight: 0.0,
                spent: 0.0,
                uncovered: 0.0,
                return_scheduled: false,
                refilling: false,
                trusted_until: Instant::now(),
                last_used: Instant::now(),
                ..a
            });
            kept.leased += release - moved;
            kept.restore_spend((moved, spent));
            return Err(e);
        }
        Ok(None)
    }

    /// Whether `token` opens the gateway now, without reserving anything (a read): the run's
    /// provider when it does.
    pub async fn check_run_token(&self, token: &str) -> Result<Provider, GatewayError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(GatewayError::InvalidToken);
        }
        self.live_run_token(&token_digest(token), self.clock.now()).await.map(|(provider, ..)| provider)
    }

    /// A live token's provider, cap, spend and reservations; `InvalidToken` when it is unknown,
    /// retired, expired, or its run has ended.
    async fn live_run_token(&self, hash: &str, now: i64) -> Result<(Provider, f64, f64, f64), GatewayError> {
        let token = store::run_keys::token(&mut *self.db.pool().acquire().await?, hash, GATEWAY_MINTERS).await?;
        match token {
            Some(t) if t.disabled_at.is_none() && t.expires_at > now && t.status == "running" => {
                Ok((gateway_provider(&t.minted_by).ok_or(GatewayError::InvalidToken)?, t.cap_usd, t.spent_usd, t.reserved_usd))
            }
            _ => Err(GatewayError::InvalidToken),
        }
    }

    /// Marks a run whose provider refused payment through the gateway: it fails with `reason`
    /// when its validator reports, whatever the validator says.
    pub async fn mark_provider_refusal(&self, run_id: &str, reason: &str) -> Result<(), sqlx::Error> {
        store::runs::mark_provider_refusal(&mut *self.db.pool().acquire().await?, run_id, reason).await
    }

    /// Turns a reservation into what the request cost: in this replica's allowance (written to
    /// the row with the allowance's next statement, or within `IDLE_RETURN` once nothing is in
    /// flight), or straight to the row when the allowance is gone.
    pub async fn settle_run_spend(&self, reservation: &Reservation, cost_usd: f64) -> Result<(), sqlx::Error> {
        let cost = cost_usd.max(0.0);
        let schedule = {
            let mut allowances = self.gateway.allowances.lock().expect("gateway cache lock");
            match allowances.get_mut(&reservation.key_hash).filter(|a| a.id == reservation.lease) {
                Some(a) => {
                    a.in_flight -= reservation.reserved_usd;
                    a.spent += cost;
                    a.last_used = Instant::now();
                    // An answer dearer than its reservation (OpenRouter's own charge) takes from
                    // the lease's free part, and past it is spend the lease does not cover.
                    if a.free() < 0.0 {
                        a.uncovered -= a.free();
                    }
                    let idle = a.in_flight <= EPSILON && !a.return_scheduled;
                    if idle {
                        a.return_scheduled = true;
                    }
                    Some(idle)
                }
                None => None,
            }
        };
        match schedule {
            Some(true) => {
                let (services, hash) = (self.clone(), reservation.key_hash.clone());
                self.spawn_background(async move {
                    let mut wait = IDLE_RETURN;
                    loop {
                        tokio::time::sleep(wait).await;
                        match services.return_allowance(&hash, true).await {
                            // Used meanwhile: wait out the rest of an idle period.
                            Ok(Some(rest)) => wait = rest,
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "gateway: could not write an idle allowance back; the next request will");
                                break;
                            }
                        }
                    }
                });
                Ok(())
            }
            Some(false) => Ok(()),
            None => self.write_spend(&reservation.key_hash, reservation.reserved_usd, cost, Some(reservation.provider)).await,
        }
    }

    /// The miner's Chutes access token for forwarding, as the gateway's refusals put it.
    pub async fn gateway_upstream_token(&self, miner: &Hotkey) -> Result<SecretString, GatewayError> {
        self.chutes_token_held_here(miner).await.map_err(|e| match e {
            ConnectionError::Storage(e) => GatewayError::Storage(e),
            e => GatewayError::Connection(e.to_string()),
        })
    }

    /// The miner's Chutes access token for calls this service makes itself (the gateway, a
    /// balance check): from memory while it is fresh, else through the usual refresh (one at a
    /// time per miner; another replica's refresh is waited for).
    pub(crate) async fn chutes_token_held_here(&self, miner: &Hotkey) -> Result<SecretString, ConnectionError> {
        if let Some(token) = self.cached_upstream(miner) {
            return Ok(token);
        }
        let gate = self.gateway.refreshing.lock().expect("gateway cache lock").entry(miner.as_str().to_owned()).or_default().clone();
        let _turn = gate.lock().await;
        if let Some(token) = self.cached_upstream(miner) {
            return Ok(token);
        }
        let mut attempt = 0;
        let tokens = loop {
            match self.chutes_access_token(miner).await {
                Ok(tokens) => break tokens,
                // Another replica is refreshing this miner's grant right now.
                Err(ConnectionError::Busy) if attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        };
        self.remember_upstream(miner, &tokens.access_token, tokens.expires_in);
        Ok(tokens.access_token)
    }

    pub(crate) fn remember_upstream(&self, miner: &Hotkey, token: &SecretString, expires_in: i64) {
        let lifetime = Duration::from_secs(expires_in.max(0) as u64).saturating_sub(UPSTREAM_MARGIN);
        self.gateway
            .upstream
            .lock()
            .expect("gateway cache lock")
            .insert(miner.as_str().to_owned(), (Instant::now() + lifetime, SecretString::from(token.expose_secret().to_owned())));
    }

    fn cached_upstream(&self, miner: &Hotkey) -> Option<SecretString> {
        let cache = self.gateway.upstream.lock().expect("gateway cache lock");
        cache
            .get(miner.as_str())
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, t)| SecretString::from(t.expose_secret().to_owned()))
    }

    /// Forgets a miner's upstream token (it was refused upstream, or the miner disconnected).
    pub fn forget_upstream(&self, miner: &Hotkey) {
        self.gateway.upstream.lock().expect("gateway cache lock").remove(miner.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_million_tokens() {
        let m = PricedModel {
            chutes_name: "a".into(),
            openrouter_name: "b".into(),
            input_usd_per_mtok: 0.3,
            output_usd_per_mtok: 1.2,
            is_default: true,
        };
        assert!((m.cost(1_000_000, 0) - 0.3).abs() < 1e-12);
        assert!((m.cost(1000, 500) - (0.0003 + 0.0006)).abs() < 1e-12);
    }
}
