//! The simulator's in-memory world.

use std::collections::HashMap;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::SimulatorConfig;
use crate::fault::Fault;

/// Deterministic management key of the demo OpenRouter account seeded on start.
pub const DEMO_OPENROUTER_MANAGEMENT_KEY: &str = "sk-or-v1-5555555555555555555555555555555555555555555555555555555555550000";
/// Credits (USD) of the demo OpenRouter account.
pub const DEMO_OPENROUTER_CREDITS: f64 = 100.0;
/// Username of the demo Chutes user seeded on start.
pub const DEMO_CHUTES_USERNAME: &str = "demo-miner";
/// Balance (USD) of the demo Chutes user, and of any user created on the consent page.
pub const DEMO_CHUTES_BALANCE: f64 = 25.0;

pub(crate) struct ChutesUser {
    pub sub: String,
    pub username: String,
    pub balance: f64,
    pub quota_left: bool,
    pub created_at: SystemTime,
}

pub(crate) struct AuthCode {
    pub username: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub expires: SystemTime,
    pub used: bool,
    /// The token family the code was redeemed into (revoked if the code is replayed).
    pub family: Option<u64>,
}

/// One authorization grant: every refresh token and access token descends from it.
pub(crate) struct TokenFamily {
    pub username: String,
    pub client_id: String,
    pub scope: String,
    pub revoked: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RefreshState {
    Live,
    /// Exchanged for a newer one; presenting it again is a replay.
    Rotated,
    Revoked,
}

pub(crate) struct RefreshToken {
    pub family: u64,
    pub state: RefreshState,
    pub expires: SystemTime,
}

pub(crate) struct AccessToken {
    pub family: u64,
    pub expires: SystemTime,
    pub revoked: bool,
}

pub(crate) struct OrAccount {
    pub total_credits: f64,
    pub total_usage: f64,
}

pub(crate) struct OrKey {
    pub hash: String,
    pub secret: String,
    pub name: String,
    pub account: u64,
    pub is_management: bool,
    /// Hash of the management key that minted it (`POST /keys`).
    pub minted_by: Option<String>,
    pub disabled: bool,
    pub limit: Option<f64>,
    pub limit_reset: Option<String>,
    pub include_byok_in_limit: bool,
    pub usage: f64,
    pub created_at: SystemTime,
    pub updated_at: Option<SystemTime>,
    pub expires_at: Option<SystemTime>,
    pub deleted: bool,
    /// Uses left that answer 401 while the key "propagates".
    pub propagation_left: u32,
    pub seq: u64,
}

pub(crate) struct Sim {
    pub config: SimulatorConfig,
    pub chutes_users: HashMap<String, ChutesUser>,
    pub codes: HashMap<String, AuthCode>,
    pub families: HashMap<u64, TokenFamily>,
    pub refresh_tokens: HashMap<String, RefreshToken>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub or_accounts: HashMap<u64, OrAccount>,
    /// By hash.
    pub or_keys: HashMap<String, OrKey>,
    pub faults: Vec<Fault>,
    pub log: Vec<(String, String)>,
    seq: u64,
}

pub(crate) fn key_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sim {
    pub fn new(config: SimulatorConfig) -> Sim {
        let mut sim = Sim {
            config,
            chutes_users: HashMap::new(),
            codes: HashMap::new(),
            families: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            or_accounts: HashMap::new(),
            or_keys: HashMap::new(),
            faults: Vec::new(),
            log: Vec::new(),
            seq: 0,
        };
        sim.seed();
        sim
    }

    fn seed(&mut self) {
        self.upsert_chutes_user(DEMO_CHUTES_USERNAME, DEMO_CHUTES_BALANCE, false);
        self.insert_account(DEMO_OPENROUTER_MANAGEMENT_KEY.to_owned(), DEMO_OPENROUTER_CREDITS, true, "Demo management key");
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Creates the user or updates an existing one; answers the user's `sub`.
    pub fn upsert_chutes_user(&mut self, username: &str, balance: f64, quota_left: bool) -> String {
        let user = self.chutes_users.entry(username.to_owned()).or_insert_with(|| ChutesUser {
            sub: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            balance,
            quota_left,
            created_at: SystemTime::now(),
        });
        user.balance = balance;
        user.quota_left = quota_left;
        user.sub.clone()
    }

    /// Creates the user with the default balance when unknown.
    pub fn ensure_chutes_user(&mut self, username: &str) {
        if !self.chutes_users.contains_key(username) {
            self.upsert_chutes_user(username, DEMO_CHUTES_BALANCE, false);
        }
    }

    /// A new account holding one key (`is_management` or a plain inference key).
    pub fn insert_account(&mut self, secret: String, credits: f64, is_management: bool, name: &str) -> String {
        let account = self.next_seq();
        self.or_accounts.insert(account, OrAccount { total_credits: credits, total_usage: 0.0 });
        let seq = self.next_seq();
        let hash = key_hash(&secret);
        self.or_keys.insert(
            hash.clone(),
            OrKey {
                hash: hash.clone(),
                secret,
                name: name.to_owned(),
                account,
                is_management,
                minted_by: None,
                disabled: false,
                limit: None,
                limit_reset: None,
                include_byok_in_limit: false,
                usage: 0.0,
                created_at: SystemTime::now(),
                updated_at: None,
                expires_at: None,
                deleted: false,
                propagation_left: 0,
                seq,
            },
        );
        hash
    }

    /// The key for a secret or a hash, deleted ones included.
    pub fn find_key(&self, hash_or_key: &str) -> Option<&OrKey> {
        self.or_keys.get(hash_or_key).or_else(|| self.or_keys.get(&key_hash(hash_or_key)))
    }

    pub fn find_key_mut(&mut self, hash_or_key: &str) -> Option<&mut OrKey> {
        let hash = if self.or_keys.contains_key(hash_or_key) { hash_or_key.to_owned() } else { key_hash(hash_or_key) };
        self.or_keys.get_mut(&hash)
    }

    /// Kills a token family: its live refresh token and every access token from it.
    pub fn revoke_family(&mut self, family: u64) {
        if let Some(f) = self.families.get_mut(&family) {
            f.revoked = true;
        }
        for rt in self.refresh_tokens.values_mut().filter(|rt| rt.family == family) {
            if rt.state == RefreshState::Live {
                rt.state = RefreshState::Revoked;
            }
        }
        for at in self.access_tokens.values_mut().filter(|at| at.family == family) {
            at.revoked = true;
        }
    }

    pub fn family_user(&self, family: u64) -> Option<&str> {
        self.families.get(&family).map(|f| f.username.as_str())
    }
}
