//! Who is calling: signed API requests, API bearer sessions, browser sign-in, and roles.

mod error;
pub mod roles;
pub mod sessions;
pub mod signature;
pub mod signed_request;
pub mod web_sign_in;

pub use error::AuthError;

use crate::domain::{Caller, Hotkey};
use crate::services::Services;

/// The service's side of every way in, for the API's extractors and handlers and the pages'
/// server functions alike: the deployment's settings and clock are read here, not by each
/// caller.
impl Services {
    /// A single-use challenge for `hotkey` to sign (`POST /v1/auth/challenge`).
    pub async fn issue_challenge(&self, hotkey: &Hotkey) -> Result<sessions::Challenge, AuthError> {
        sessions::issue_challenge(&self.db, hotkey, self.clock.now()).await
    }

    /// Spends a challenge and checks its signature; `Ok` only when `hotkey` signed it.
    pub async fn redeem_challenge(&self, hotkey: &Hotkey, challenge: &str, signature_hex: &str) -> Result<(), AuthError> {
        sessions::redeem_challenge(&self.db, hotkey, challenge, signature_hex, self.clock.now()).await
    }

    /// A bearer session for a hotkey that proved itself, for `ORO_API_SESSION_TTL_SECS`.
    pub async fn open_api_session(&self, hotkey: &Hotkey, role: &str) -> Result<sessions::NewSession, AuthError> {
        sessions::open_session(&self.db, hotkey, role, self.settings.api_session_ttl_secs, self.clock.now()).await
    }

    /// Ends a bearer session; true when there was one.
    pub async fn close_api_session(&self, token: &str) -> Result<bool, AuthError> {
        sessions::close(&self.db, token).await
    }

    /// The hotkey behind a live bearer token.
    pub async fn api_session_holder(&self, token: &str) -> Result<Hotkey, AuthError> {
        sessions::lookup(&self.db, token, self.clock.now()).await
    }

    /// The hotkey that signed these headers, its nonce spent (`signed_request::verify`).
    pub async fn verify_signed_request(&self, headers: &signed_request::SignedHeaders<'_>) -> Result<Hotkey, AuthError> {
        signed_request::verify(&self.db, self.settings.signature_skew_secs, headers, self.clock.now()).await
    }

    /// As [`Services::verify_signed_request`], but the nonce is left for the caller to spend in
    /// its own transaction (`claim_work` does).
    pub fn check_signed_request(&self, headers: &signed_request::SignedHeaders<'_>) -> Result<signed_request::UnspentNonce, AuthError> {
        signed_request::unspent(self.settings.signature_skew_secs, headers, self.clock.now())
    }

    /// Who a hotkey is here: refused when banned, a validator by the table or the settings.
    pub async fn caller(&self, hotkey: Hotkey) -> Result<Caller, AuthError> {
        roles::resolve(&self.db, &self.settings.validator_hotkeys, hotkey).await
    }

    /// Passes unless the miner allowlist is on and the caller is not on it.
    pub async fn require_miner(&self, caller: &Caller) -> Result<(), AuthError> {
        roles::require_miner(&self.db, caller).await
    }

    /// The message a wallet signs to sign in on the pages (its nonce remembered).
    pub async fn begin_web_sign_in(&self, address: &str) -> Result<wire::signing::SignInMessage, AuthError> {
        web_sign_in::begin(&self.db, &self.settings.public_url, address, self.clock.now()).await
    }

    /// Checks a signed sign-in message and spends its nonce; answers who signed in.
    pub async fn finish_web_sign_in(&self, message_text: &str, signature_hex: &str) -> Result<Hotkey, AuthError> {
        web_sign_in::finish(&self.db, &self.settings.public_url, message_text, signature_hex, self.clock.now()).await
    }
}
