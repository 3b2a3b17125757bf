//! The allowlisted models: one canonical set, each under its Chutes and its OpenRouter name,
//! seeded from ORO's own proxy table and editable by an operator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use wire::Provider;
use wire::api::{CatalogEntry, ModelList};

/// How stale a replica's copy of the public list may be.
pub const CATALOG_CACHE_TTL: Duration = Duration::from_secs(5);

/// The serialized list for one (provider, ranked) and its ETag.
#[derive(Debug)]
pub struct CatalogBody {
    /// Shared by every answer until the cache refreshes (a clone is a counter bump).
    pub json: bytes::Bytes,
    /// `"<digest>"`, quoted as the header carries it.
    pub etag: bytes::Bytes,
}

pub type CatalogCache = Mutex<HashMap<(Provider, bool), (Instant, Arc<CatalogBody>)>>;

use crate::clock;
use crate::db::Db;
use crate::services::Services;
use crate::store;

pub use wire::models::CANONICAL_MODELS;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("model names must be 1 to 200 characters without spaces")]
    BadName,
    #[error("{0} is already in the catalog")]
    Duplicate(String),
    #[error("{0} is not in the catalog")]
    Unknown(String),
    #[error("prices must be dollars per million tokens, from 0 to 10,000")]
    BadPrice,
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl CatalogError {
    pub fn failure(&self) -> crate::failure::Failure {
        use crate::failure::Failure;
        match self {
            CatalogError::BadName | CatalogError::BadPrice => Failure::Invalid,
            CatalogError::Duplicate(_) => Failure::Conflict,
            CatalogError::Unknown(_) => Failure::NotFound,
            CatalogError::Storage(_) => Failure::Internal,
        }
    }
}

pub async fn seed_if_empty(db: &Db, now: i64) -> Result<(), sqlx::Error> {
    let mut conn = db.pool().acquire().await?;
    if !store::catalog::is_empty(&mut conn).await? {
        return Ok(());
    }
    // Replicas starting together on an empty database seed at once: a row the other inserted
    // first conflicts on either of its unique names (chutes_name or openrouter_name, whichever
    // index PostgreSQL checks first), and either way it is already there.
    for (position, (chutes, openrouter)) in CANONICAL_MODELS.iter().enumerate() {
        store::catalog::insert(&mut conn, chutes, openrouter, position as i64, position == 0, now).await?;
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 200 && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl Services {
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, CatalogError> {
        let rows = store::catalog::models(&mut *self.db.pool().acquire().await?).await?;
        Ok(rows
            .into_iter()
            .map(|m| CatalogEntry {
                chutes_name: m.chutes_name,
                openrouter_name: m.openrouter_name,
                is_default: m.is_default,
                input_usd_per_mtok: m.input_usd_per_mtok,
                output_usd_per_mtok: m.output_usd_per_mtok,
            })
            .collect())
    }

    /// The public list as the SDK reads it: names for one provider plus the alias table, or
    /// the ranked form.
    /// The public list, served from a copy at most `CATALOG_CACHE_TTL` old: every miner and
    /// validator polls it, and it changes only when an operator edits the table (from any
    /// process, so this replica notices within the TTL). The body comes with its ETag.
    pub async fn catalog_json_cached(&self, provider: Provider, ranked: bool) -> Result<Arc<CatalogBody>, CatalogError> {
        let key = (provider, ranked);
        if let Some((at, body)) = self.catalog_cache.lock().expect("catalog cache lock").get(&key)
            && at.elapsed() < CATALOG_CACHE_TTL
        {
            return Ok(body.clone());
        }
        let json = self.catalog_json(provider, ranked).await?;
        let etag = format!("\"{}\"", crate::auth::sessions::digest(&json).get(..32).unwrap_or_default());
        let body = Arc::new(CatalogBody { json: json.into(), etag: etag.into() });
        self.catalog_cache.lock().expect("catalog cache lock").insert(key, (Instant::now(), body.clone()));
        Ok(body)
    }

    fn forget_cached_catalog(&self) {
        self.catalog_cache.lock().expect("catalog cache lock").clear();
        self.forget_priced_models();
    }

    pub async fn catalog_json(&self, provider: Provider, ranked: bool) -> Result<String, CatalogError> {
        let rows = store::catalog::models(&mut *self.db.pool().acquire().await?).await?;
        let name = |m: &store::catalog::Model| match provider {
            Provider::Chutes => m.chutes_name.clone(),
            Provider::OpenRouter => m.openrouter_name.clone(),
        };
        let body = if ranked {
            let as_of = rows.iter().map(|m| m.updated_at).max().unwrap_or_else(|| self.clock.now());
            let models: Vec<_> = rows.iter().map(|m| json!({"id": name(m), "rank_metric": m.rank_metric, "healthy": m.healthy})).collect();
            json!({"models": models, "ranked_by": "catalog_order", "as_of": clock::rfc3339(as_of)}).to_string()
        } else {
            let models: Vec<String> = rows.iter().map(name).collect();
            let aliases: BTreeMap<String, String> = match provider {
                // Chutes ids are accepted on OpenRouter runs.
                Provider::OpenRouter => rows.iter().map(|m| (m.chutes_name.clone(), m.openrouter_name.clone())).collect(),
                Provider::Chutes => BTreeMap::new(),
            };
            serde_json::to_string(&ModelList { models, aliases }).expect("plain data serializes")
        };
        Ok(body)
    }

    /// The model a run's sandbox gets, under the run provider's name.
    /// The model a run is pinned to, under `provider`'s name (from the cached price list).
    pub async fn default_model(&self, provider: Provider) -> Result<String, CatalogError> {
        let models = self.priced_models().await?;
        let model = crate::gateway::pinned_model(&models).ok_or_else(|| CatalogError::Unknown("any model".into()))?;
        Ok(model.name_for(provider).to_owned())
    }

    pub async fn catalog_add(&self, chutes_name: &str, openrouter_name: &str) -> Result<(), CatalogError> {
        if !valid_name(chutes_name) || !valid_name(openrouter_name) {
            return Err(CatalogError::BadName);
        }
        let mut conn = self.db.pool().acquire().await?;
        let next = store::catalog::next_position(&mut conn).await?;
        if !store::catalog::insert(&mut conn, chutes_name, openrouter_name, next, false, self.clock.now()).await? {
            return Err(CatalogError::Duplicate(chutes_name.to_owned()));
        }
        self.forget_cached_catalog();
        Ok(())
    }

    pub async fn catalog_remove(&self, chutes_name: &str) -> Result<(), CatalogError> {
        if !store::catalog::remove(&mut *self.db.pool().acquire().await?, chutes_name).await? {
            return Err(CatalogError::Unknown(chutes_name.to_owned()));
        }
        self.forget_cached_catalog();
        Ok(())
    }

    pub async fn catalog_set_default(&self, chutes_name: &str) -> Result<(), CatalogError> {
        let mut tx = self.db.pool().begin().await?;
        if !store::catalog::set_default(&mut tx, chutes_name, self.clock.now()).await? {
            return Err(CatalogError::Unknown(chutes_name.to_owned()));
        }
        tx.commit().await?;
        self.forget_cached_catalog();
        Ok(())
    }

    /// What the run gateway charges for a model, in USD per million input and output tokens
    /// (either provider's name). Replicas pick it up within a few seconds.
    pub async fn catalog_set_price(&self, name: &str, input_usd_per_mtok: f64, output_usd_per_mtok: f64) -> Result<(), CatalogError> {
        let valid = |p: f64| p.is_finite() && (0.0..=10_000.0).contains(&p);
        if !valid(input_usd_per_mtok) || !valid(output_usd_per_mtok) {
            return Err(CatalogError::BadPrice);
        }
        let priced = store::catalog::set_price(
            &mut *self.db.pool().acquire().await?,
            name,
            input_usd_per_mtok,
            output_usd_per_mtok,
            self.clock.now(),
        )
        .await?;
        if !priced {
            return Err(CatalogError::Unknown(name.to_owned()));
        }
        self.forget_cached_catalog();
        Ok(())
    }
}
