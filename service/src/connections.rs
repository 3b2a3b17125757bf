//! A miner's provider connections: connect (OpenRouter management key, Chutes OAuth),
//! the default provider, disconnect, and Chutes refresh-token rotation.
//!
//! Consistency rule: every change to one miner's connections takes that miner's row lock
//! first (`store::connections::lock_miner`), so concurrent connect / set-default / disconnect from one miner
//! serialize and the default always names a connected provider or none. Provider calls
//! happen outside transactions.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use wire::Provider;

use crate::failure::Failure;
use wire::api::{ConnectionChanged, ConnectionState, ExchangeCodeAnswer, InferenceAuthList, ProviderStatus};

use crate::audit;
use crate::auth::sessions::random_token;
use crate::clock;
use crate::domain::Hotkey;
use crate::providers::ProviderError;
use crate::providers::chutes::{self, TokenSet};
use crate::services::Services;
use crate::store;
use crate::vault::{Vault, VaultError};

/// A stored connection's state (`connections.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The credential opens: runs can use it.
    Connected,
    /// The provider refused the stored credential (Chutes `invalid_grant`): the miner has to
    /// connect again.
    NeedsReconsent,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Connected => "connected",
            State::NeedsReconsent => "needs_reconsent",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        [State::Connected, State::NeedsReconsent].into_iter().find(|s| s.as_str() == text)
    }
}

crate::db::text_column!(State);

impl From<State> for ConnectionState {
    fn from(state: State) -> Self {
        match state {
            State::Connected => ConnectionState::Connected,
            State::NeedsReconsent => ConnectionState::NeedsReconsent,
        }
    }
}
/// How long a refresh may hold a Chutes credential before another replica may take it: longer
/// than the refresh call itself can take.
fn refresh_lease_secs(provider_timeout_secs: u64) -> i64 {
    provider_timeout_secs as i64 * 2 + 30
}
/// How long a caller waits for another refresh of the same credential to finish.
const REFRESH_WAIT: Duration = Duration::from_secs(20);
/// The dashboard's OAuth request must come back within this.
const OAUTH_STATE_TTL_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("{0}")]
    BadCredentialShape(String),
    #[error("{0}")]
    CredentialRefused(String),
    #[error("{} is not connected", .0.display_name())]
    NotConnected(Provider),
    #[error("{} is not connected: connect it before making it the default", .0.display_name())]
    DefaultNotConnected(Provider),
    #[error("{} needs you to connect again: it no longer accepts the stored credential", .0.display_name())]
    NeedsReconsent(Provider),
    #[error("redirect_uri is not one this service registered with Chutes")]
    RedirectUriNotAllowed,
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    BadCodeVerifier,
    #[error("this sign-in with Chutes has expired or was already used: start again from the dashboard")]
    OAuthStateInvalid,
    #[error("Chutes did not grant access: {0}")]
    ConsentDenied(String),
    #[error("the connection changed while this request ran; try again")]
    Conflict,
    #[error("another request is refreshing this Chutes credential; try again in a moment")]
    Busy,
    #[error("{name} did not confirm the credential within {secs} s, so nothing was stored; try again in a moment", name = .0.display_name(), secs = .1)]
    ConnectTimedOut(Provider, u64),
    #[error(
        "{name} is answering slowly: the connection did not finish within {secs} s and is still being completed; run `oro inference status` in a minute to see whether it connected",
        name = .0.display_name(),
        secs = .1
    )]
    ConnectStillRunning(Provider, u64),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the stored credential could not be opened")]
    Vault(#[from] VaultError),
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl ConnectionError {
    pub fn failure(&self) -> Failure {
        match self {
            ConnectionError::BadCredentialShape(_) | ConnectionError::BadCodeVerifier => Failure::Invalid,
            ConnectionError::CredentialRefused(_)
            | ConnectionError::RedirectUriNotAllowed
            | ConnectionError::OAuthStateInvalid
            | ConnectionError::ConsentDenied(_) => Failure::Refused,
            ConnectionError::NotConnected(_) => Failure::NotFound,
            ConnectionError::DefaultNotConnected(_) | ConnectionError::NeedsReconsent(_) | ConnectionError::Conflict => Failure::Conflict,
            ConnectionError::Busy => Failure::ProviderUnavailable,
            ConnectionError::ConnectTimedOut(..) | ConnectionError::ConnectStillRunning(..) => Failure::ProviderTimeout,
            ConnectionError::Provider(e) => provider_failure(e),
            ConnectionError::Vault(_) | ConnectionError::Storage(_) => Failure::Internal,
        }
    }
}

/// Whose a provider's trouble is: the miner's when their credential or grant is at fault, the
/// provider's otherwise.
pub fn provider_failure(e: &ProviderError) -> Failure {
    match e {
        ProviderError::Unauthorized { .. } | ProviderError::InvalidGrant { .. } => Failure::Refused,
        ProviderError::NoCredits { .. } => Failure::NoCredits,
        ProviderError::RateLimited { .. } | ProviderError::Unavailable { .. } | ProviderError::Unreachable { .. } => {
            Failure::ProviderUnavailable
        }
        ProviderError::Timeout { .. } => Failure::ProviderTimeout,
        // The grant the service asks for is the operator's configuration, not the miner's.
        ProviderError::Refused { .. }
        | ProviderError::Malformed { .. }
        | ProviderError::InsufficientScope { .. }
        | ProviderError::NoRefreshToken { .. } => Failure::ProviderFailed,
    }
}

/// An OpenRouter key as pasted: `sk-or-v1-` and 64 hex digits.
pub struct OpenRouterKey(SecretString);

impl OpenRouterKey {
    pub fn parse(text: &SecretString) -> Result<Self, ConnectionError> {
        let key = text.expose_secret().trim();
        let Some(rest) = key.strip_prefix("sk-or-v1-") else {
            return Err(ConnectionError::BadCredentialShape("That is not an OpenRouter key: OpenRouter keys start with sk-or-v1-".into()));
        };
        if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConnectionError::BadCredentialShape(
                "The key contains characters OpenRouter keys never have (a space, a quote or a line break?)".into(),
            ));
        }
        if rest.len() != 64 {
            return Err(ConnectionError::BadCredentialShape(format!(
                "The key looks {}: OpenRouter keys have 64 characters after sk-or-v1- (this one has {})",
                if rest.len() < 64 { "truncated" } else { "too long" },
                rest.len()
            )));
        }
        Ok(OpenRouterKey(SecretString::from(key.to_owned())))
    }

    /// `sk-or-v1-...3f2a`: enough for the miner to tell keys apart, useless to anyone else.
    pub fn masked_label(&self) -> String {
        let key = self.0.expose_secret();
        format!("sk-or-v1-...{}", &key[key.len() - 4..])
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A short digest of a management key, recorded with the run keys it mints.
pub fn key_fingerprint(key: &SecretString) -> String {
    hex::encode(&Sha256::digest(key.expose_secret().as_bytes())[..12])
}

/// Keeps a forgotten credential sealed until its revocation at the provider succeeds
/// (`retry_pending_revocations` tries again with backoff), on a connection of its own.
async fn queue_revocation(
    db: &crate::db::Db,
    hotkey: &Hotkey,
    provider: Provider,
    ciphertext: &[u8],
    reason: &str,
    next_try_at: i64,
    now: i64,
) -> Result<String, sqlx::Error> {
    store::revocations::queue(&mut *db.pool().acquire().await?, hotkey.as_str(), provider, ciphertext, reason, next_try_at, now).await
}

/// Extra attempts at OpenRouter's `GET /key` while a miner connects.
pub const CONNECT_RETRIES: u32 = 2;

impl Services {
    /// Every provider, connected or not, and the default.
    pub async fn inference_auth_status(&self, hotkey: &Hotkey) -> Result<InferenceAuthList, ConnectionError> {
        let rows = store::connections::list(&mut *self.db.pool().acquire().await?, hotkey).await?;
        let default_provider = store::connections::default_provider(&mut *self.db.pool().acquire().await?, hotkey.as_str()).await?;
        let providers = Provider::ALL
            .iter()
            .map(|&provider| match rows.iter().find(|row| row.provider == provider.as_str()) {
                Some(store::connections::Listed { state, label, updated_at, .. }) => ProviderStatus {
                    provider,
                    connected: *state == State::Connected,
                    updated_at: Some(clock::rfc3339(*updated_at)),
                    state: Some((*state).into()),
                    label: Some(label.clone()),
                    is_default: default_provider == Some(provider),
                },
                None => ProviderStatus {
                    provider,
                    connected: false,
                    updated_at: None,
                    state: Some(ConnectionState::NotConnected),
                    label: None,
                    is_default: false,
                },
            })
            .collect();
        Ok(InferenceAuthList { providers, default_provider })
    }

    pub async fn provider_status(&self, hotkey: &Hotkey, provider: Provider) -> Result<ProviderStatus, ConnectionError> {
        let all = self.inference_auth_status(hotkey).await?;
        Ok(all.providers.into_iter().find(|p| p.provider == provider).expect("every provider is listed"))
    }

    /// Stores a sealed credential, replacing any previous one in the same statement, and makes
    /// the provider the default when the miner has none.
    async fn store_connection(
        &self,
        hotkey: &Hotkey,
        provider: Provider,
        label: &str,
        credential: &SecretString,
    ) -> Result<Option<Provider>, ConnectionError> {
        let ciphertext = self.vault.seal(&Vault::credential_context(hotkey.as_str(), provider), credential);
        let now = self.clock.now();
        let mut tx = self.db.pool().begin().await?;
        let default = store::connections::lock_miner(&mut tx, self.db.backend(), hotkey.as_str(), self.clock.now()).await?;
        let previous = store::connections::sealed(&mut tx, hotkey.as_str(), provider).await?;
        // A Chutes grant being replaced (reconnect by OAuth or by token) stays live at Chutes
        // until revoked: queue its revocation in this transaction, as disconnect does, so it
        // cannot be forgotten between the overwrite and the revocation. (OpenRouter's old key
        // is handled by `connect_openrouter`: its run keys are disabled.)
        let mut replaced_grant = None;
        if provider == Provider::Chutes
            && let Some(store::connections::Sealed { ciphertext: old, .. }) = &previous
        {
            let context = Vault::credential_context(hotkey.as_str(), provider);
            let same = self.vault.open_sealed(&context, old).is_ok_and(|o| o.expose_secret() == credential.expose_secret());
            if !same {
                let id = store::revocations::queue(
                    &mut tx,
                    hotkey.as_str(),
                    provider,
                    old,
                    "replaced by a new Chutes connection",
                    self.clock.now(),
                    self.clock.now(),
                )
                .await?;
                replaced_grant = Some(id);
            }
        }
        store::connections::connect(&mut tx, hotkey.as_str(), provider, label, &ciphertext, now).await?;
        let default = match default {
            Some(d) => Some(d),
            None => {
                store::connections::set_default(&mut tx, hotkey.as_str(), Some(provider), self.clock.now()).await?;
                audit::record(
                    &mut tx,
                    hotkey,
                    Some(provider),
                    "default_changed",
                    &format!("{} is now the default provider (first connected)", provider.display_name()),
                    self.clock.now(),
                )
                .await?;
                Some(provider)
            }
        };
        let (kind, detail) = match previous {
            Some(_) => ("reconnected", format!("{} credential replaced ({label})", provider.display_name())),
            None => ("connected", format!("{} connected ({label})", provider.display_name())),
        };
        audit::record(&mut tx, hotkey, Some(provider), kind, &detail, self.clock.now()).await?;
        tx.commit().await?;
        if let Some(id) = replaced_grant {
            // Revoked now, in the background; the queued row makes sure it happens anyway.
            let services = self.clone();
            self.spawn_background(async move {
                if let Err(e) = services.retry_pending_revocation(&id).await {
                    tracing::warn!(error = %e, "revoking the replaced Chutes grant failed; housekeeping retries it");
                }
            });
        }
        Ok(default)
    }

    /// `POST /v1/miner/inference-auth/openrouter`: checks the key's shape, then asks
    /// OpenRouter whether it is a live management key; stores it only then.
    #[tracing::instrument(name = "connect_openrouter", skip_all, fields(miner = %hotkey.short()))]
    pub async fn connect_openrouter(&self, hotkey: &Hotkey, credential: &SecretString) -> Result<ConnectionChanged, ConnectionError> {
        let key = OpenRouterKey::parse(credential)?;
        let deadline = Instant::now() + self.connect_deadline();
        // Only a read happens before the deadline can cut in: giving up on it loses nothing.
        let checked = tokio::time::timeout_at(deadline.into(), self.key_info_with_retries(key.secret()))
            .await
            .map_err(|_| ConnectionError::ConnectTimedOut(Provider::OpenRouter, self.settings.connect_deadline_secs))?;
        let info = match checked {
            Ok(info) => info,
            Err(ProviderError::Unauthorized { .. }) => {
                return Err(ConnectionError::CredentialRefused(
                    "OpenRouter does not accept this key: it is mistyped, disabled or deleted".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if !info.is_management_key() {
            return Err(ConnectionError::CredentialRefused(
                "This is an OpenRouter inference key, not a management key: create a management key at https://openrouter.ai/settings/management-keys and paste that".into(),
            ));
        }
        let label = key.masked_label();
        let previous = store::connections::sealed(&mut *self.db.pool().acquire().await?, hotkey.as_str(), Provider::OpenRouter).await?;
        let default = self.store_connection(hotkey, Provider::OpenRouter, &label, key.secret()).await?;
        tracing::info!(hotkey = %hotkey.short(), provider = "openrouter", "connected");
        // A different management key replaced the old one: the old key's live run keys are
        // disabled now (or by a pending revocation), as a disconnect would. That can take
        // several calls to OpenRouter; past the deadline it finishes after we answer.
        if let Some(store::connections::Sealed { ciphertext: old, .. }) = previous {
            let old_key = self.vault.open_sealed(&Vault::credential_context(hotkey.as_str(), Provider::OpenRouter), &old)?;
            if key_fingerprint(&old_key) != key_fingerprint(key.secret()) {
                let (services, hotkey) = (self.clone(), hotkey.clone());
                let cleanup = self.spawn_background(async move {
                    if let Err(e) = services.revoke_at_provider(&hotkey, Provider::OpenRouter, &old_key).await
                        && let Err(e) = queue_revocation(
                            &services.db,
                            &hotkey,
                            Provider::OpenRouter,
                            &old,
                            &e.to_string(),
                            services.clock.now() + 60,
                            services.clock.now(),
                        )
                        .await
                    {
                        tracing::error!(hotkey = %hotkey.short(), error = %e, "could not queue the replaced management key's revocation");
                    }
                });
                let _ = tokio::time::timeout_at(deadline.into(), cleanup).await;
            }
        }
        Ok(ConnectionChanged {
            ok: true,
            provider: Provider::OpenRouter,
            default_provider: default,
            message: format!("Connected OpenRouter ({label})."),
        })
    }

    /// `GET /key`, retried on a 429, a 5xx or a dropped connection (it only reads, so a retry
    /// is safe) up to twice with full-jitter backoff, while the miner waits. A timeout is not
    /// retried: the miner has already waited the provider timeout once.
    async fn key_info_with_retries(&self, key: &SecretString) -> Result<crate::providers::openrouter::KeyInfo, ProviderError> {
        let mut attempt = 0u32;
        loop {
            match self.openrouter.key_info(key).await {
                Err(e) if attempt < CONNECT_RETRIES && e.is_transient() && !matches!(e, ProviderError::Timeout { .. }) => {
                    tokio::time::sleep(crate::runs::propagation_backoff(attempt)).await;
                    attempt += 1;
                    tracing::info!(attempt, error = %e, "OpenRouter answered a temporary error at connect; retrying");
                }
                other => return other,
            }
        }
    }

    /// Exchanges an authorization code (from the CLI's loopback or our landing page) and keeps
    /// the refresh token.
    /// How long a connect may take before it answers.
    fn connect_deadline(&self) -> Duration {
        Duration::from_secs(self.settings.connect_deadline_secs)
    }

    /// Runs a Chutes connect in its own task and waits for it until the connect deadline.
    /// Chutes spends the code (or rotates the refresh token) the moment it answers, so the
    /// work is never cut off half-way: past the deadline the miner hears that it is still
    /// running, and it stores the connection (or nothing) when Chutes answers.
    async fn chutes_connect_within_deadline<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ConnectionError>> + Send + 'static,
    ) -> Result<T, ConnectionError> {
        let task = self.spawn_background(work);
        match tokio::time::timeout(self.connect_deadline(), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {
                tracing::warn!(
                    deadline_secs = self.settings.connect_deadline_secs,
                    "Chutes connect outlasted the deadline; it finishes in the background"
                );
                Err(ConnectionError::ConnectStillRunning(Provider::Chutes, self.settings.connect_deadline_secs))
            }
        }
    }

    #[tracing::instrument(name = "connect_chutes", skip_all, fields(miner = %hotkey.short()))]
    pub async fn connect_chutes_with_code(
        &self,
        hotkey: &Hotkey,
        code: &str,
        code_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<ExchangeCodeAnswer, ConnectionError> {
        let (services, hotkey, code, code_verifier, redirect_uri) =
            (self.clone(), hotkey.clone(), code.to_owned(), code_verifier.clone(), redirect_uri.to_owned());
        self.chutes_connect_within_deadline(async move {
            services.exchange_and_store_chutes_code(&hotkey, &code, &code_verifier, &redirect_uri).await
        })
        .await
    }

    async fn exchange_and_store_chutes_code(
        &self,
        hotkey: &Hotkey,
        code: &str,
        code_verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<ExchangeCodeAnswer, ConnectionError> {
        if !self.settings.allowed_chutes_redirect_uris().iter().any(|u| u == redirect_uri) {
            return Err(ConnectionError::RedirectUriNotAllowed);
        }
        if !chutes::is_valid_code_verifier(code_verifier.expose_secret()) {
            return Err(ConnectionError::BadCodeVerifier);
        }
        if code.is_empty() || code.len() > 2048 {
            return Err(ConnectionError::CredentialRefused("The authorization code is empty or too long".into()));
        }
        let tokens = match self.chutes.exchange_code(code, code_verifier, redirect_uri).await {
            Ok(t) => t,
            Err(ProviderError::InvalidGrant { .. }) | Err(ProviderError::Refused { status: 400, .. }) => {
                return Err(ConnectionError::CredentialRefused(
                    "Chutes refused the authorization code: it expired, was already used, or the verifier or redirect_uri does not match; connect again".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(refresh_token) = &tokens.refresh_token else {
            // Nothing to keep: an hour-long connection is no connection. Usually the IdP
            // issues refresh tokens only to grants with `offline_access`.
            tracing::error!(
                "Chutes answered the code exchange without a refresh token; if the IdP wants offline_access, add it to ORO_CHUTES_SCOPES"
            );
            self.give_back_chutes_tokens(hotkey, &[&tokens.access_token], "connect failed: no refresh token issued").await;
            return Err(ProviderError::NoRefreshToken { provider: Provider::Chutes.display_name() }.into());
        };
        let default = match self.store_chutes_tokens(hotkey, &tokens.access_token, refresh_token).await {
            Ok(default) => default,
            Err(e) => {
                // The code is spent and the grant is live at Chutes: nobody may hold it unseen.
                self.give_back_chutes_tokens(hotkey, &[refresh_token, &tokens.access_token], &format!("connect failed: {e}")).await;
                return Err(e);
            }
        };
        Ok(ExchangeCodeAnswer { ok: true, default_provider: default })
    }

    async fn store_chutes_tokens(
        &self,
        hotkey: &Hotkey,
        access_token: &SecretString,
        refresh_token: &SecretString,
    ) -> Result<Option<Provider>, ConnectionError> {
        // The username makes the dashboard row recognisable; it is not worth failing over.
        let label = match self.chutes.userinfo(access_token).await {
            Ok(info) => info.label().map(|u| crate::providers::scrub(&u)).unwrap_or_else(|| "Chutes account".into()),
            Err(e) => {
                tracing::warn!(error = %e, "Chutes userinfo failed; storing the connection without a username");
                "Chutes account".into()
            }
        };
        let default = self.store_connection(hotkey, Provider::Chutes, &label, refresh_token).await?;
        tracing::info!(hotkey = %hotkey.short(), provider = "chutes", "connected");
        Ok(default)
    }

    /// Revokes tokens Chutes issued to a connect that then failed (best effort, in order);
    /// what cannot be revoked now is queued like a disconnect's revocation.
    async fn give_back_chutes_tokens(&self, hotkey: &Hotkey, tokens: &[&SecretString], reason: &str) {
        for token in tokens {
            let Err(e) = self.chutes.revoke(token).await else {
                continue;
            };
            let ciphertext = self.vault.seal(&Vault::credential_context(hotkey.as_str(), Provider::Chutes), token);
            let reason = format!("{reason}; revocation failed ({e})");
            match queue_revocation(&self.db, hotkey, Provider::Chutes, &ciphertext, &reason, self.clock.now() + 60, self.clock.now()).await
            {
                Ok(_) => tracing::warn!(hotkey = %hotkey.short(), error = %e, "could not revoke a failed connect's Chutes token; queued"),
                Err(db) => tracing::error!(
                    hotkey = %hotkey.short(), error = %e, queue_error = %db,
                    "could not revoke a failed connect's Chutes token, nor queue its revocation"
                ),
            }
        }
    }

    /// Legacy `POST /v1/miner/chutes-auth {refresh_token}`: proves the token by spending it
    /// once and keeps its successor.
    #[tracing::instrument(name = "connect_chutes_refresh_token", skip_all, fields(miner = %hotkey.short()))]
    pub async fn connect_chutes_with_refresh_token(
        &self,
        hotkey: &Hotkey,
        refresh_token: &SecretString,
    ) -> Result<ConnectionChanged, ConnectionError> {
        let (services, hotkey, refresh_token) = (self.clone(), hotkey.clone(), refresh_token.clone());
        self.chutes_connect_within_deadline(async move { services.refresh_and_store_chutes_token(&hotkey, &refresh_token).await }).await
    }

    async fn refresh_and_store_chutes_token(
        &self,
        hotkey: &Hotkey,
        refresh_token: &SecretString,
    ) -> Result<ConnectionChanged, ConnectionError> {
        let token = refresh_token.expose_secret().trim();
        if token.is_empty() || token.len() > 4096 {
            return Err(ConnectionError::BadCredentialShape("refresh_token is empty or too long".into()));
        }
        let tokens = match self.chutes.refresh(&SecretString::from(token.to_owned())).await {
            Ok(t) => t,
            Err(ProviderError::InvalidGrant { .. }) => {
                return Err(ConnectionError::CredentialRefused(
                    "Chutes does not accept this refresh token: it expired, was revoked or already used".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        // No refresh token in the answer: the server kept the spent one alive (RFC 6749
        // section 6), so the pasted token is the one to keep.
        let pasted = SecretString::from(token.to_owned());
        let keep = tokens.refresh_token.as_ref().unwrap_or(&pasted);
        let default = match self.store_chutes_tokens(hotkey, &tokens.access_token, keep).await {
            Ok(default) => default,
            Err(e) => {
                // A rotated successor is live and held by nobody: give it back. The pasted
                // token, when still good, stays the miner's to try again with.
                let mut issued = Vec::from_iter(tokens.refresh_token.as_ref());
                issued.push(&tokens.access_token);
                self.give_back_chutes_tokens(hotkey, &issued, &format!("connect failed: {e}")).await;
                return Err(e);
            }
        };
        Ok(ConnectionChanged { ok: true, provider: Provider::Chutes, default_provider: default, message: "Connected Chutes.".into() })
    }

    /// The dashboard's Connect: a single-use state bound to this miner, PKCE S256, and the URL
    /// to send the browser to.
    pub async fn begin_chutes_authorization(&self, hotkey: &Hotkey) -> Result<(String, String), ConnectionError> {
        let state = random_token(24);
        let pkce = chutes::pkce();
        let state_hash = crate::auth::sessions::digest(&state);
        let sealed_verifier = self.vault.seal(&format!("oauth-verifier|{state_hash}"), &pkce.verifier);
        let redirect_uri = self.settings.chutes_redirect_uri.clone();
        let expires_at = self.clock.now() + OAUTH_STATE_TTL_SECS;
        store::oauth_states::insert(
            &mut *self.db.pool().acquire().await?,
            &state_hash,
            hotkey.as_str(),
            &sealed_verifier,
            &redirect_uri,
            expires_at,
        )
        .await?;
        Ok((self.chutes.authorize_url(&redirect_uri, &state, &pkce.challenge), state))
    }

    /// The landing page: spends the state (only this miner's, only once, only in time), then
    /// exchanges the code.
    pub async fn finish_chutes_authorization(
        &self,
        hotkey: &Hotkey,
        state: &str,
        code: Option<&str>,
        error: Option<&str>,
    ) -> Result<ExchangeCodeAnswer, ConnectionError> {
        let state_hash = crate::auth::sessions::digest(state);
        let spent =
            store::oauth_states::spend(&mut *self.db.pool().acquire().await?, &state_hash, hotkey.as_str(), self.clock.now()).await?;
        let Some(store::oauth_states::Spent { sealed_verifier, redirect_uri }) = spent else {
            return Err(ConnectionError::OAuthStateInvalid);
        };
        if let Some(error) = error {
            let reason = match error {
                "access_denied" => "you declined on the Chutes consent page".to_owned(),
                other => crate::providers::scrub(other),
            };
            return Err(ConnectionError::ConsentDenied(reason));
        }
        let code = code.filter(|c| !c.is_empty()).ok_or(ConnectionError::ConsentDenied("Chutes sent no authorization code".into()))?;
        let verifier = self.vault.open_sealed(&format!("oauth-verifier|{state_hash}"), &sealed_verifier)?;
        self.connect_chutes_with_code(hotkey, code, &verifier, &redirect_uri).await
    }

    /// `PATCH /v1/miner/inference-auth/default`: only a connected provider can be the default.
    pub async fn set_default_provider(&self, hotkey: &Hotkey, provider: Provider) -> Result<ConnectionChanged, ConnectionError> {
        let mut tx = self.db.pool().begin().await?;
        let previous = store::connections::lock_miner(&mut tx, self.db.backend(), hotkey.as_str(), self.clock.now()).await?;
        let connected = store::connections::sealed(&mut tx, hotkey.as_str(), provider).await?;
        match connected.map(|c| c.state) {
            None => return Err(ConnectionError::DefaultNotConnected(provider)),
            Some(state) if state != State::Connected => {
                return Err(ConnectionError::NeedsReconsent(provider));
            }
            Some(_) => {}
        }
        if previous != Some(provider) {
            store::connections::set_default(&mut tx, hotkey.as_str(), Some(provider), self.clock.now()).await?;
            audit::record(
                &mut tx,
                hotkey,
                Some(provider),
                "default_changed",
                &format!("{} is now the default provider (from the next claimed run)", provider.display_name()),
                self.clock.now(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ConnectionChanged {
            ok: true,
            provider,
            default_provider: Some(provider),
            message: match provider {
                // ORO's own CLI refuses to submit while Chutes is the default (oro-sdk 5.0.3+).
                Provider::Chutes => format!(
                    "{} is now your default: the next evaluation claimed uses it. ORO's oro-sdk CLI 5.0.3 and newer refuses to submit while Chutes is the default: submit from the dashboard or with oro-inference's `oro`, or connect OpenRouter and run `oro inference set-default openrouter`.",
                    provider.display_name()
                ),
                Provider::OpenRouter => {
                    format!("{} is now your default: the next evaluation claimed uses it.", provider.display_name())
                }
            },
        })
    }

    /// `DELETE /v1/miner/inference-auth/{provider}`: revokes at the provider (Chutes: the
    /// refresh token; OpenRouter: disables every per-run key this management key minted),
    /// then forgets the credential. A provider that is down does not keep the miner
    /// connected: what could not be revoked is kept sealed and retried later.
    #[tracing::instrument(name = "disconnect", skip_all, fields(miner = %hotkey.short(), provider = %provider))]
    pub async fn disconnect(&self, hotkey: &Hotkey, provider: Provider) -> Result<ConnectionChanged, ConnectionError> {
        let row = store::connections::sealed(&mut *self.db.pool().acquire().await?, hotkey.as_str(), provider).await?;
        let Some(store::connections::Sealed { ciphertext, .. }) = row else {
            return Err(ConnectionError::NotConnected(provider));
        };
        let credential = self.vault.open_sealed(&Vault::credential_context(hotkey.as_str(), provider), &ciphertext)?;
        let revocation = self.revoke_at_provider(hotkey, provider, &credential).await;

        let mut tx = self.db.pool().begin().await?;
        let default = store::connections::lock_miner(&mut tx, self.db.backend(), hotkey.as_str(), self.clock.now()).await?;
        if !store::connections::delete_if_unchanged(&mut tx, hotkey, provider, &ciphertext).await? {
            let still = store::connections::sealed(&mut tx, hotkey.as_str(), provider).await?;
            // Gone: another disconnect won the race. Still there: reconnected meanwhile.
            return Err(if still.is_none() { ConnectionError::NotConnected(provider) } else { ConnectionError::Conflict });
        }
        let mut new_default = default;
        if default == Some(provider) {
            new_default = store::connections::first_connected(&mut tx, hotkey).await?;
            store::connections::set_default(&mut tx, hotkey.as_str(), new_default, self.clock.now()).await?;
            let detail = match new_default {
                Some(p) => format!("{} is now the default provider", p.display_name()),
                None => "no provider connected: the next submission needs one".to_owned(),
            };
            audit::record(&mut tx, hotkey, new_default, "default_changed", &detail, self.clock.now()).await?;
        }
        let detail = match &revocation {
            Ok(what) => format!("{} disconnected; {what}", provider.display_name()),
            Err(e) => {
                store::revocations::queue(
                    &mut tx,
                    hotkey.as_str(),
                    provider,
                    &ciphertext,
                    &e.to_string(),
                    self.clock.now() + 60,
                    self.clock.now(),
                )
                .await?;
                format!("{} disconnected; revocation at the provider failed ({e}) and will be retried", provider.display_name())
            }
        };
        audit::record(&mut tx, hotkey, Some(provider), "disconnected", &detail, self.clock.now()).await?;
        // The run gateway's tokens for this miner's runs on this provider die with the
        // connection (the runs' spend so far stays recorded).
        store::run_keys::retire_tokens_of(&mut tx, hotkey.as_str(), crate::gateway::gateway_minter(provider), self.clock.now()).await?;
        tx.commit().await?;
        if provider == Provider::Chutes {
            self.forget_upstream(hotkey);
        }
        if provider == Provider::OpenRouter && revocation.is_ok() {
            // A claim may have recorded a key between the listing above and the delete (a
            // claim records its key under the miner's lock, after checking the connection is
            // still there, so none can after the delete): disable those too.
            if let Err(e) = self.revoke_at_provider(hotkey, provider, &credential).await {
                tracing::warn!(hotkey = %hotkey.short(), error = %e, "could not disable a run key recorded during the disconnect; it lives until it expires");
            }
        }
        // The retired tokens' allowances here stop at once (their spend is written), and on
        // the other replicas with the announcement.
        if let Err(e) = self.return_allowances(|_, miner, p| miner == hotkey && p == provider).await {
            tracing::warn!(hotkey = %hotkey.short(), error = %e, "could not write the gateway's allowances back; they stop being trusted within a second");
        }
        self.announce_retirement().await;
        tracing::info!(hotkey = %hotkey.short(), %provider, revoked = revocation.is_ok(), "disconnected");
        Ok(ConnectionChanged {
            ok: true,
            provider,
            default_provider: new_default,
            message: match new_default {
                Some(p) if p != provider => format!("Disconnected {}; {} is now your default.", provider.display_name(), p.display_name()),
                Some(_) => format!("Disconnected {}.", provider.display_name()),
                None => format!("Disconnected {}. No provider is connected now: your next submission needs one.", provider.display_name()),
            },
        })
    }

    /// Revokes what the credential can reach. Answers a sentence for the audit log.
    async fn revoke_at_provider(&self, hotkey: &Hotkey, provider: Provider, credential: &SecretString) -> Result<String, ProviderError> {
        match provider {
            Provider::Chutes => {
                self.chutes.revoke(credential).await?;
                Ok("refresh token revoked at Chutes".into())
            }
            Provider::OpenRouter => {
                let fingerprint = key_fingerprint(credential);
                let keys = match self.db.pool().acquire().await {
                    Ok(mut conn) => store::run_keys::live_minted_by(&mut conn, hotkey.as_str(), &fingerprint).await,
                    Err(e) => Err(e),
                }
                .map_err(|_| ProviderError::Unreachable { provider: "the database" })?;
                for hash in &keys {
                    self.openrouter.disable_key(credential, hash).await?;
                    // Best effort: the key is disabled at OpenRouter either way, which is what counts.
                    if let Ok(mut conn) = self.db.pool().acquire().await {
                        let _ = store::run_keys::mark_disabled(&mut conn, hash, self.clock.now()).await;
                    }
                }
                Ok(format!("{} per-run key(s) disabled at OpenRouter (kept, not deleted, so their spend stays visible)", keys.len()))
            }
        }
    }

    /// Retries revocations that failed during a disconnect, with growing pauses.
    pub async fn retry_pending_revocations(&self) -> Result<usize, ConnectionError> {
        let due = store::revocations::due(&mut *self.db.pool().acquire().await?, self.clock.now(), 50).await?;
        let mut done = 0;
        for id in due {
            if self.retry_pending_revocation(&id).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// One queued revocation, if it is due and nobody else (another replica's housekeeping, a
    /// replaced grant's own task) is trying it: true when it is settled.
    pub async fn retry_pending_revocation(&self, id: &str) -> Result<bool, ConnectionError> {
        let now = self.clock.now();
        // Taken for the length of one attempt: a second taker finds it not due.
        let mut conn = self.db.pool().acquire().await?;
        let until = now + 2 * self.settings.provider_timeout_secs as i64 + 30;
        if !store::revocations::take(&mut conn, id, until, now).await? {
            return Ok(false);
        }
        let Some(store::revocations::Pending { hotkey, provider, ciphertext, attempts }) = store::revocations::get(&mut conn, id).await?
        else {
            return Ok(false);
        };
        // Not held across the provider's calls.
        drop(conn);
        let (Ok(hotkey), Ok(provider)) = (Hotkey::parse(&hotkey), provider.parse::<Provider>()) else {
            return Ok(false);
        };
        let credential = match self.vault.open_sealed(&Vault::credential_context(hotkey.as_str(), provider), &ciphertext) {
            Ok(c) => c,
            Err(e) => {
                // One bad row must not stop the others (nor the rest of housekeeping).
                tracing::error!(id = %id, error = %e, "a pending revocation's credential does not open; skipping it");
                store::revocations::postpone(&mut *self.db.pool().acquire().await?, id, self.clock.now() + 86_400).await?;
                return Ok(false);
            }
        };
        let settled = match self.revoke_at_provider(&hotkey, provider, &credential).await {
            Ok(what) => format!("delayed revocation done: {what}"),
            // The provider no longer honours the credential at all: nothing left to revoke with it.
            Err(ProviderError::Unauthorized { .. }) | Err(ProviderError::InvalidGrant { .. }) => {
                "delayed revocation: the provider no longer accepts the credential".to_owned()
            }
            Err(e) => {
                let backoff = 60 * (1_i64 << attempts.clamp(0, 6));
                store::revocations::attempt_failed(&mut *self.db.pool().acquire().await?, id, &e.to_string(), self.clock.now() + backoff)
                    .await?;
                return Ok(false);
            }
        };
        let mut tx = self.db.pool().begin().await?;
        store::revocations::settle(&mut tx, id).await?;
        audit::record(&mut tx, &hotkey, Some(provider), "revoked", &settled, self.clock.now()).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gets a fresh Chutes access token for a run, spending the stored refresh token. Only one
    /// refresh per credential runs at a time, across replicas; the rotated token is stored
    /// before anything else happens, and `invalid_grant` marks the connection for re-consent.
    pub async fn chutes_access_token(&self, hotkey: &Hotkey) -> Result<TokenSet, ConnectionError> {
        self.acquire_refresh_lease(hotkey).await?;
        let result = self.refresh_under_lease(hotkey).await;
        if result.is_err()
            && let Ok(mut conn) = self.db.pool().acquire().await
        {
            let _ = store::connections::release_refresh_lease(&mut conn, hotkey.as_str(), None).await;
        }
        result
    }

    async fn acquire_refresh_lease(&self, hotkey: &Hotkey) -> Result<(), ConnectionError> {
        let started = Instant::now();
        loop {
            let now = self.clock.now();
            let until = now + refresh_lease_secs(self.settings.provider_timeout_secs);
            if store::connections::take_refresh_lease(&mut *self.db.pool().acquire().await?, hotkey.as_str(), until, now).await? {
                return Ok(());
            }
            let row = store::connections::sealed(&mut *self.db.pool().acquire().await?, hotkey.as_str(), Provider::Chutes).await?;
            match row.map(|c| c.state) {
                None => return Err(ConnectionError::NotConnected(Provider::Chutes)),
                Some(state) if state != State::Connected => {
                    return Err(ConnectionError::NeedsReconsent(Provider::Chutes));
                }
                Some(_) if started.elapsed() > REFRESH_WAIT => return Err(ConnectionError::Busy),
                Some(_) => {
                    let jitter = rand::random::<u64>() % 60;
                    tokio::time::sleep(Duration::from_millis(40 + jitter)).await;
                }
            }
        }
    }

    /// Replaces the spent refresh token (`spent`, as read) with its successor (`rotated`), and
    /// releases the refresh lease. Compare-and-swap: if the miner reconnected or disconnected
    /// meanwhile, the stored grant is not ours to overwrite (answers false). Safe to repeat: a
    /// retry after a commit whose answer was lost finds its own token stored.
    async fn store_rotated_token(&self, hotkey: &Hotkey, spent: &[u8], rotated: &[u8]) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        if !store::connections::store_rotated(&mut tx, hotkey.as_str(), spent, rotated, self.clock.now()).await? {
            return Ok(false);
        }
        audit::record(
            &mut tx,
            hotkey,
            Some(Provider::Chutes),
            "rotated",
            "refresh token used and rotated for a fresh access token (a run, the run gateway or a balance check)",
            self.clock.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn refresh_under_lease(&self, hotkey: &Hotkey) -> Result<TokenSet, ConnectionError> {
        let store::connections::Sealed { ciphertext, .. } =
            store::connections::sealed(&mut *self.db.pool().acquire().await?, hotkey.as_str(), Provider::Chutes)
                .await?
                .ok_or(ConnectionError::NotConnected(Provider::Chutes))?;
        let context = Vault::credential_context(hotkey.as_str(), Provider::Chutes);
        let refresh_token = self.vault.open_sealed(&context, &ciphertext)?;
        match self.chutes.refresh(&refresh_token).await {
            Ok(tokens) => {
                let Some(rotated) = &tokens.refresh_token else {
                    // RFC 6749 section 6: no new refresh token means the one we spent stays
                    // good. Nothing to store; only the lease to give up.
                    if let Ok(mut conn) = self.db.pool().acquire().await {
                        let _ = store::connections::release_refresh_lease(&mut conn, hotkey.as_str(), Some(&ciphertext)).await;
                    }
                    return Ok(tokens);
                };
                let sealed = self.vault.seal(&context, rotated);
                // Chutes has killed the token we spent: the one in its answer is now the miner's
                // only grant, and a database blip must not lose it. Storing it is retried for
                // as long as our refresh lease keeps any other refresh from starting.
                let lease = Duration::from_secs(refresh_lease_secs(self.settings.provider_timeout_secs) as u64);
                let patience = lease.saturating_sub(Duration::from_secs(self.settings.provider_timeout_secs + 15));
                let started = Instant::now();
                let mut pause = Duration::from_millis(200);
                let stored = loop {
                    // Each attempt, too, ends before the patience does (a pool wait alone can
                    // outlast it): a store that lands after the lease is gone could race the
                    // next refresh.
                    let remaining = patience.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
                    let attempt = tokio::time::timeout(remaining, self.store_rotated_token(hotkey, &ciphertext, &sealed))
                        .await
                        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
                    match attempt {
                        Ok(stored) => break stored,
                        Err(e) if started.elapsed() + pause < patience => {
                            tracing::warn!(hotkey = %hotkey.short(), error = %e, "cannot store the rotated Chutes refresh token yet; retrying");
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(2));
                        }
                        Err(e) => {
                            tracing::error!(hotkey = %hotkey.short(), error = %e, "could not store the rotated Chutes refresh token; the connection will need re-consent");
                            return Err(e.into());
                        }
                    }
                };
                if !stored {
                    // Our grant was replaced: give its fresh token back rather than use it.
                    let _ = self.chutes.revoke(rotated).await;
                    return Err(ConnectionError::Conflict);
                }
                Ok(tokens)
            }
            Err(ProviderError::InvalidGrant { .. }) => {
                let mut tx = self.db.pool().begin().await?;
                // Only the grant we tried is dead; a newer one (a reconnect) stays connected.
                if !store::connections::mark_needs_reconsent(&mut tx, hotkey.as_str(), &ciphertext, self.clock.now()).await? {
                    return Err(ConnectionError::Conflict);
                }
                audit::record(
                    &mut tx,
                    hotkey,
                    Some(Provider::Chutes),
                    "needs_reconsent",
                    "Chutes refused the stored refresh token (invalid_grant): connect Chutes again",
                    self.clock.now(),
                )
                .await?;
                tx.commit().await?;
                Err(ConnectionError::NeedsReconsent(Provider::Chutes))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Where a miner adds funds.
const OPENROUTER_TOP_UP: &str = "https://openrouter.ai/settings/credits";
const CHUTES_TOP_UP: &str = "https://chutes.ai";

impl Services {
    /// Whether the miner's account at `provider` can pay for the next run: OpenRouter's credits
    /// against one run's cap; for Chutes, which reports no balance, a 1-token call on the
    /// default model (it costs about a millionth of a dollar).
    #[tracing::instrument(name = "provider_balance", skip_all, fields(miner = %hotkey.short(), provider = %provider))]
    pub async fn provider_balance(&self, hotkey: &Hotkey, provider: Provider) -> Result<wire::api::ProviderBalance, ConnectionError> {
        let cap = self.settings.run_key_cap_usd;
        match provider {
            Provider::OpenRouter => {
                let row = store::connections::sealed(&mut *self.db.pool().acquire().await?, hotkey.as_str(), provider).await?;
                let store::connections::Sealed { ciphertext, .. } = row.ok_or(ConnectionError::NotConnected(provider))?;
                let key = self.vault.open_sealed(&Vault::credential_context(hotkey.as_str(), provider), &ciphertext)?;
                let credits = self.openrouter.credits(&key).await?;
                let left = (credits.total_credits - credits.total_usage).max(0.0);
                let can_pay_a_run = left + 1e-9 >= cap;
                let message = if can_pay_a_run {
                    format!("Balance: ${left:.2} at OpenRouter.")
                } else {
                    format!(
                        "Balance: ${left:.2} at OpenRouter, less than one run's cap (${cap:.2}): runs may fail with no credits. Top up at {OPENROUTER_TOP_UP}"
                    )
                };
                Ok(wire::api::ProviderBalance { provider, balance_usd: Some(left), can_pay_a_run, message })
            }
            Provider::Chutes => {
                // The gateway's copy when it has one (no refresh, no rotation).
                let token = self.chutes_token_held_here(hotkey).await?;
                let model = self.default_model(provider).await.map_err(|_| ConnectionError::NotConnected(provider))?;
                match self.chutes.preflight(&token, &model).await {
                    Ok(()) => Ok(wire::api::ProviderBalance {
                        provider,
                        balance_usd: None,
                        can_pay_a_run: true,
                        message: "Chutes accepted a 1-token test call: the account can pay. (Chutes does not report a balance.)".into(),
                    }),
                    Err(ProviderError::NoCredits { .. }) => Ok(wire::api::ProviderBalance {
                        provider,
                        balance_usd: Some(0.0),
                        can_pay_a_run: false,
                        message: format!(
                            "Chutes says the account is out of funds: runs will fail with no credits. Top up at {CHUTES_TOP_UP}"
                        ),
                    }),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
