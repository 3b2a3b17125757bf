//! What kind of failure an error is, in the domain's words. The domain's errors say which kind
//! they are (`failure()`); the edges decide what that means on the wire, once each: the REST
//! API in `server/src/http/error.rs`, the pages' server functions in `app/src/error.rs`.

/// The kinds of failure a caller can meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A value the caller sent is malformed (a key's shape, an amount, a field).
    Invalid,
    /// Well formed, but it cannot be done as asked (an inference key where a management key
    /// belongs, a consent declined, a spent OAuth state).
    Refused,
    /// The provider account has no money for it.
    NoCredits,
    /// We do not know who is calling (no or a bad signature, an expired session).
    Unauthenticated,
    /// We know who is calling, and the answer is no (banned, not allowlisted, a foreign link).
    Forbidden,
    /// What the request names does not exist (for this caller).
    NotFound,
    /// The state does not allow it now (not this caller's run, already complete, at capacity).
    Conflict,
    /// The upload is larger than allowed.
    TooLarge,
    /// Too soon: a rate limit or a cooldown; the caller may come back later.
    TooSoon,
    /// The provider is down, busy or out of reach.
    ProviderUnavailable,
    /// The provider answered with something we cannot use.
    ProviderFailed,
    /// The provider did not answer in time.
    ProviderTimeout,
    /// Ours: storage or the vault. Never the caller's to fix.
    Internal,
}

impl Failure {
    /// Every kind, for the edges' tests.
    pub const ALL: [Failure; 13] = [
        Failure::Invalid,
        Failure::Refused,
        Failure::NoCredits,
        Failure::Unauthenticated,
        Failure::Forbidden,
        Failure::NotFound,
        Failure::Conflict,
        Failure::TooLarge,
        Failure::TooSoon,
        Failure::ProviderUnavailable,
        Failure::ProviderFailed,
        Failure::ProviderTimeout,
        Failure::Internal,
    ];

    /// The provider's fault: worth telling the caller, not an incident of ours.
    pub fn is_provider(self) -> bool {
        matches!(self, Failure::ProviderUnavailable | Failure::ProviderFailed | Failure::ProviderTimeout)
    }

    /// The service's own fault or the provider's: nothing the caller did.
    pub fn is_ours_or_provider(self) -> bool {
        self == Failure::Internal || self.is_provider()
    }
}
