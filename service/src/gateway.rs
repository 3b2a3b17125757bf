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

use crate::clock;
use crate::connections::ConnectionError;
use crate::domain::Hotkey;
use crate::services::Services;

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
}

/// What the gateway keeps in memory, per replica: the priced catalog for a few seconds, and
/// each miner's current upstream token until shortly before it expires.
#[derive(Default)]
pub struct GatewayCache {
    models: Mutex<Option<(Instant, Arc<Vec<PricedModel>>)>>,
    upstream: Mutex<HashMap<String, (Instant, SecretString)>>,
    /// One refresh per miner at a time: concurrent first requests of a run wait for it.
    refreshing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A gateway token's row as `live_run_token` reads it: minted by, cap, spent, reserved,
/// disabled at, expires at, and its run's status.
type TokenRow = (String, f64, f64, f64, Option<i64>, i64, String);

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
        let rows: Vec<(String, String, f64, f64, i64)> = sqlx::query_as(
            "SELECT chutes_name, openrouter_name, input_usd_per_mtok, output_usd_per_mtok, is_default FROM catalog_models ORDER BY position",
        )
        .fetch_all(self.db.pool())
        .await?;
        let models = Arc::new(
            rows.into_iter()
                .map(|(chutes_name, openrouter_name, input_usd_per_mtok, output_usd_per_mtok, is_default)| PricedModel {
                    chutes_name,
                    openrouter_name,
                    input_usd_per_mtok,
                    output_usd_per_mtok,
                    is_default: is_default != 0,
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

    /// Reserves `usd` against the cap of the run `token` is bound to: one statement, so that
    /// concurrent requests on any replica never hold more than the cap between them.
    pub async fn reserve_run_spend(&self, token: &str, usd: f64) -> Result<Reservation, GatewayError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(GatewayError::InvalidToken);
        }
        let hash = token_digest(token);
        let now = clock::now();
        let reserved: Option<(String, String, String, Option<Vec<u8>>)> = sqlx::query_as(
            "UPDATE run_keys SET reserved_usd = reserved_usd + $1
             WHERE key_hash = $2 AND minted_by IN ($3, $5) AND disabled_at IS NULL AND expires_at > $4
               AND spent_usd + reserved_usd + $1 <= cap_usd
               AND eval_run_id IN (SELECT id FROM eval_runs WHERE id = run_keys.eval_run_id AND status = 'running')
             RETURNING hotkey, eval_run_id, minted_by, upstream_sealed",
        )
        .bind(usd)
        .bind(&hash)
        .bind(CHUTES_GATEWAY_MINTER)
        .bind(now)
        .bind(OPENROUTER_GATEWAY_MINTER)
        .fetch_optional(self.db.pool())
        .await?;
        if let Some((hotkey, run_id, minted_by, sealed)) = reserved {
            let miner = Hotkey::parse(&hotkey).map_err(|_| GatewayError::InvalidToken)?;
            let provider = gateway_provider(&minted_by).ok_or(GatewayError::InvalidToken)?;
            let mut reservation = Reservation { key_hash: hash, run_id, miner, provider, reserved_usd: usd, upstream_key: None };
            if let Some(sealed) = sealed {
                match self.vault.open_sealed(&crate::vault::Vault::run_key_context(&reservation.key_hash), &sealed) {
                    Ok(key) => reservation.upstream_key = Some(key),
                    Err(e) => {
                        self.settle_run_spend(&reservation, 0.0).await?;
                        return Err(GatewayError::Connection(format!("the run's key could not be opened ({e})")));
                    }
                }
            }
            return Ok(reservation);
        }
        // Refused: a live token has reached its cap; anything else is a dead token.
        let (_, cap, spent, reserved) = self.live_run_token(&hash, now).await?;
        Err(GatewayError::CapReached { cap, spent, reserved })
    }

    /// Whether `token` opens the gateway now, without reserving anything (a read): the run's
    /// provider when it does.
    pub async fn check_run_token(&self, token: &str) -> Result<Provider, GatewayError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
            return Err(GatewayError::InvalidToken);
        }
        self.live_run_token(&token_digest(token), clock::now()).await.map(|(provider, ..)| provider)
    }

    /// A live token's provider, cap, spend and reservations; `InvalidToken` when it is unknown,
    /// retired, expired, or its run has ended.
    async fn live_run_token(&self, hash: &str, now: i64) -> Result<(Provider, f64, f64, f64), GatewayError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT k.minted_by, k.cap_usd, k.spent_usd, k.reserved_usd, k.disabled_at, k.expires_at, r.status
             FROM run_keys k JOIN eval_runs r ON r.id = k.eval_run_id WHERE k.key_hash = $1 AND k.minted_by IN ($2, $3)",
        )
        .bind(hash)
        .bind(CHUTES_GATEWAY_MINTER)
        .bind(OPENROUTER_GATEWAY_MINTER)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            Some((minted_by, cap, spent, reserved, None, expires_at, status)) if expires_at > now && status == "running" => {
                Ok((gateway_provider(&minted_by).ok_or(GatewayError::InvalidToken)?, cap, spent, reserved))
            }
            _ => Err(GatewayError::InvalidToken),
        }
    }

    /// Marks a run whose provider refused payment through the gateway: it fails with `reason`
    /// when its validator reports, whatever the validator says.
    pub async fn mark_provider_refusal(&self, run_id: &str, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE eval_runs SET provider_refusal = $1 WHERE id = $2 AND status = 'running' AND provider_refusal IS NULL")
            .bind(reason)
            .bind(run_id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Turns a reservation into what the request cost (one statement: the run's live spend is
    /// this row's; `eval_runs.spend_usd` gets it when the token is retired).
    pub async fn settle_run_spend(&self, reservation: &Reservation, cost_usd: f64) -> Result<(), sqlx::Error> {
        // A token retired while this request ran (stop, complete, disconnect) had its spend
        // recorded then: bring that record up to date too, so nothing generated goes uncounted.
        let settled: Option<(Option<i64>, f64)> = sqlx::query_as(
            "UPDATE run_keys SET reserved_usd = reserved_usd - $1, spent_usd = spent_usd + $2,
                 usage_usd = CASE WHEN disabled_at IS NULL THEN usage_usd ELSE spent_usd + $2 END
             WHERE key_hash = $3 RETURNING disabled_at, spent_usd",
        )
        .bind(reservation.reserved_usd)
        .bind(cost_usd.max(0.0))
        .bind(&reservation.key_hash)
        .fetch_optional(self.db.pool())
        .await?;
        if let Some((Some(_), spent)) = settled
            && reservation.provider == Provider::Chutes
        {
            sqlx::query("UPDATE eval_runs SET spend_usd = $1 WHERE id = $2")
                .bind(spent)
                .bind(&reservation.run_id)
                .execute(self.db.pool())
                .await?;
        }
        Ok(())
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
