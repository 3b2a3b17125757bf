//! Typed configuration, read once at start-up from environment variables.
//!
//! Every variable is optional except where production demands it; a bad value stops start-up
//! with one line naming the variable. Secrets are `SecretString` so that printing the settings
//! (`{:?}`) never shows them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// How this service authenticates to Chutes' token and revocation endpoints (RFC 6749
/// section 2.3.1). Chutes documents the secret in the form body; HTTP Basic is the one method
/// every conforming server must accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChutesClientAuth {
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// `client_secret_basic`: `Authorization: Basic`.
    Basic,
}

/// The scopes asked for on Chutes' consent page unless `ORO_CHUTES_SCOPES` says otherwise.
pub const DEFAULT_CHUTES_SCOPES: &str = "openid profile chutes:invoke";

/// What the validator of a Chutes run gets. Chutes has no capped keys: `Gateway` (the default)
/// hands out a run-bound token for our gateway, which meters every request against the run's
/// cap and forwards with the miner's token; `Direct` hands out the miner's own Chutes access
/// token, uncapped for its hour, for validators of the oro-sdk 1.0.50 generation, which check
/// the token with a call straight to Chutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChutesRunCredential {
    Gateway,
    Direct,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub bind: SocketAddr,
    pub database_url: SecretString,
    pub master_key_file: PathBuf,
    pub public_url: url::Url,
    pub openrouter_api_base: String,
    pub chutes_api_base: String,
    pub chutes_llm_base: String,
    pub chutes_client_id: String,
    pub chutes_client_secret: SecretString,
    /// The dashboard's OAuth landing page, registered with Chutes.
    pub chutes_redirect_uri: String,
    pub chutes_client_auth: ChutesClientAuth,
    /// Space-separated, normalized to single spaces. An IdP that issues refresh tokens only
    /// to `offline_access` grants needs that scope added here.
    pub chutes_scopes: String,
    pub run_key_cap_usd: f64,
    pub run_key_ttl_secs: i64,
    /// What a Chutes run's validator gets (`ORO_CHUTES_RUN_CREDENTIAL`).
    pub chutes_run_credential: ChutesRunCredential,
    /// The run gateway's own listener (`ORO_GATEWAY_BIND`, default 127.0.0.1:3002).
    pub gateway_bind: SocketAddr,
    /// Where validators' sandboxes reach the gateway (`ORO_GATEWAY_PUBLIC_URL`; default the
    /// bound address over http).
    pub gateway_public_url: Option<String>,
    /// The most output tokens one gateway request may ask for (`ORO_GATEWAY_MAX_OUTPUT_TOKENS`):
    /// a request is forwarded with at most this `max_tokens`, and its worst case reserved.
    pub gateway_max_output_tokens: u64,
    /// OpenRouter runs through the gateway too (`ORO_GATEWAY_OPENROUTER=1`): the validator gets
    /// a gateway token, the gateway forwards with the run's capped OpenRouter key.
    pub gateway_openrouter: bool,
    pub simulate_providers: bool,
    pub log_format: LogFormat,
    /// How long a provider call may take before the service gives up on it.
    pub provider_timeout_secs: u64,
    /// A connect answers within this, whatever the provider does: oro-sdk gives up after 15 s
    /// and never retries a POST, so a slower answer would be lost on the miner's side.
    pub connect_deadline_secs: u64,
    /// At shutdown, how long to wait for background work (a run put back, a stream's
    /// settlement, a revocation) after the last request is answered.
    pub shutdown_grace_secs: u64,
    /// Requests served at once; past it the service answers 503 at the door instead of
    /// queueing work it cannot finish in time.
    pub max_concurrent_requests: usize,
    /// How long a client refused at the door (per-IP limits on signed requests) waits for its
    /// 429: a script that retries at once then costs a parked timer a second, not a request
    /// as fast as the service can answer.
    pub refusal_hold: std::time::Duration,
    /// Routes (`claim`, `submit`, `disconnect`, `budget`) that refuse requests without a valid
    /// bound signature; empty by default, so ORO's own clients keep working.
    pub require_bound_signatures: Vec<String>,
    /// A browser session lives this long without use.
    pub session_ttl_secs: i64,
    /// An API bearer session (`/v1/auth/session`) lives this long.
    pub api_session_ttl_secs: i64,
    /// Allowed clock skew on signed requests, which is also how long a nonce is remembered.
    pub signature_skew_secs: i64,
    /// Seconds a miner waits between two submissions.
    pub submit_cooldown_secs: i64,
    /// How long a validator holds a claimed run before it may be handed out again.
    pub run_lease_secs: i64,
    /// Hotkeys that may act as validators (comma-separated SS58), in addition to the
    /// `validators` table an operator manages with `server validators add`.
    pub validator_hotkeys: Vec<String>,
    /// Per-IP and per-hotkey limits on sign-in, connect and submit.
    pub rate_limits: crate::rate_limit::RateLimits,
    /// Take the client address from the last `X-Forwarded-For` entry (the one our own load
    /// balancer appended) instead of the TCP peer. Only behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<SecretString>,
}

/// The routes an operator can close to plain (v1) signatures.
pub const BOUND_SIGNATURE_ROUTES: [&str; 4] = ["claim", "submit", "disconnect", "budget"];

/// One bad variable: start-up prints this single line and stops.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// oro-sdk 4.0.1's built-in Chutes client id (`CHUTES_CLIENT_ID`); the simulator registers the same.
pub const DEFAULT_CHUTES_CLIENT_ID: &str = "cid_qstkn2eb4uszxski1rdqk062";

/// The loopback redirect that oro-sdk 4.0.1's `connect chutes` uses.
pub const CLI_LOOPBACK_REDIRECT_URI: &str = "http://localhost:8765/callback";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads a given set of variables (tests build settings without touching the process).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let environment = match get("ORO_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(bad("ORO_ENV", format!("{other:?} is neither \"development\" nor \"production\"")));
            }
        };
        let production = environment == Environment::Production;

        let bind: SocketAddr = get("ORO_BIND")
            .unwrap_or_else(|| "127.0.0.1:3000".into())
            .parse()
            .map_err(|_| bad("ORO_BIND", "expected HOST:PORT, e.g. 127.0.0.1:3000"))?;

        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/oro.db".into());
        if !(database_url.starts_with("sqlite:") || database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            // Never echo the value: it may hold a password.
            return Err(bad("DATABASE_URL", "must start with sqlite: or postgres://"));
        }

        let master_key_file = match get("ORO_MASTER_KEY_FILE") {
            Some(path) => PathBuf::from(path),
            None if production => {
                return Err(bad("ORO_MASTER_KEY_FILE", "required when ORO_ENV=production (it is never generated there)"));
            }
            None => PathBuf::from("data/master.key"),
        };

        let public_url = get("ORO_PUBLIC_URL").unwrap_or_else(|| {
            let host = if bind.ip().is_unspecified() { "127.0.0.1".to_string() } else { bind.ip().to_string() };
            format!("http://{host}:{}", bind.port())
        });
        let public_url =
            url::Url::parse(&public_url).map_err(|_| bad("ORO_PUBLIC_URL", "not a URL (expected e.g. https://inference.oro.example)"))?;

        let simulate_providers = match get("ORO_SIMULATE_PROVIDERS").as_deref() {
            None => !production,
            Some("1") | Some("true") | Some("yes") => true,
            Some("0") | Some("false") | Some("no") => false,
            Some(_) => return Err(bad("ORO_SIMULATE_PROVIDERS", "expected 1 or 0")),
        };
        if simulate_providers && production {
            return Err(bad("ORO_SIMULATE_PROVIDERS", "the provider simulator cannot run with ORO_ENV=production"));
        }

        let url_var = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            url::Url::parse(&value).map_err(|_| bad(name, "not a URL"))?;
            Ok(value.trim_end_matches('/').to_owned())
        };

        let chutes_client_secret = get("ORO_CHUTES_CLIENT_SECRET");
        if production && chutes_client_secret.is_none() {
            return Err(bad("ORO_CHUTES_CLIENT_SECRET", "required when ORO_ENV=production"));
        }

        let number = |name: &'static str, default: f64, min: f64, max: f64| -> Result<f64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= min && *n <= max)
                    .ok_or_else(|| bad(name, format!("expected a number from {min} to {max}"))),
            }
        };
        let seconds = |name: &'static str, default: i64, min: i64, max: i64| -> Result<i64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= min && *n <= max)
                    .ok_or_else(|| bad(name, format!("expected whole seconds from {min} to {max}"))),
            }
        };

        let log_format = match get("ORO_LOG_FORMAT").as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(bad("ORO_LOG_FORMAT", "expected \"json\" or \"pretty\"")),
        };

        let chutes_redirect_uri = match get("ORO_CHUTES_REDIRECT_URI") {
            Some(uri) => {
                url::Url::parse(&uri).map_err(|_| bad("ORO_CHUTES_REDIRECT_URI", "not a URL"))?;
                uri
            }
            None => format!("{}/oauth/chutes/callback", public_url.as_str().trim_end_matches('/')),
        };

        let chutes_client_auth = match get("ORO_CHUTES_CLIENT_AUTH").as_deref() {
            None | Some("post") => ChutesClientAuth::Post,
            Some("basic") => ChutesClientAuth::Basic,
            Some(_) => return Err(bad("ORO_CHUTES_CLIENT_AUTH", "expected \"post\" or \"basic\"")),
        };
        let chutes_scopes = match get("ORO_CHUTES_SCOPES") {
            None => DEFAULT_CHUTES_SCOPES.to_owned(),
            Some(scopes) => {
                // RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
                let tokens: Vec<&str> = scopes.split_whitespace().collect();
                if let Some(bad_token) =
                    tokens.iter().find(|t| !t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)))
                {
                    return Err(bad("ORO_CHUTES_SCOPES", format!("{bad_token:.40?} is not a valid scope (RFC 6749 section 3.3)")));
                }
                tokens.join(" ")
            }
        };

        let validator_hotkeys = get("ORO_VALIDATOR_HOTKEYS")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect::<Vec<_>>())
            .unwrap_or_default();
        for hotkey in &validator_hotkeys {
            wire::ss58::decode(hotkey).map_err(|e| bad("ORO_VALIDATOR_HOTKEYS", format!("{hotkey:.12}...: {e}")))?;
        }

        let mut rate_limits = crate::rate_limit::RateLimits::default();
        for (name, slot) in [
            ("ORO_RATE_LIMIT_SIGN_IN_PER_IP", &mut rate_limits.sign_in_per_ip),
            ("ORO_RATE_LIMIT_SIGN_IN_PER_HOTKEY", &mut rate_limits.sign_in_per_hotkey),
            ("ORO_RATE_LIMIT_CONNECT_PER_IP", &mut rate_limits.connect_per_ip),
            ("ORO_RATE_LIMIT_CONNECT_PER_HOTKEY", &mut rate_limits.connect_per_hotkey),
            ("ORO_RATE_LIMIT_SUBMIT_PER_IP", &mut rate_limits.submit_per_ip),
            ("ORO_RATE_LIMIT_SUBMIT_PER_HOTKEY", &mut rate_limits.submit_per_hotkey),
            ("ORO_RATE_LIMIT_SIGNED_PER_IP", &mut rate_limits.signed_per_ip),
            ("ORO_RATE_LIMIT_FAILED_AUTH_PER_IP", &mut rate_limits.failed_auth_per_ip),
        ] {
            if let Some(value) = get(name) {
                *slot = crate::rate_limit::Limit::parse(&value).map_err(|problem| bad(name, problem))?;
            }
        }
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name).as_deref() {
                None | Some("0") | Some("false") | Some("no") => Ok(false),
                Some("1") | Some("true") | Some("yes") => Ok(true),
                Some(_) => Err(bad(name, "expected 1 or 0")),
            }
        };
        let trust_forwarded_for = flag("ORO_TRUST_FORWARDED_FOR")?;
        let gateway_openrouter = flag("ORO_GATEWAY_OPENROUTER")?;
        let metrics_token = get("ORO_METRICS_TOKEN").map(SecretString::from);
        let require_bound_signatures: Vec<String> = get("ORO_REQUIRE_BOUND_SIGNATURES")
            .map(|v| v.split(',').map(|r| r.trim().to_ascii_lowercase()).filter(|r| !r.is_empty()).collect())
            .unwrap_or_default();
        if let Some(unknown) = require_bound_signatures.iter().find(|r| !BOUND_SIGNATURE_ROUTES.contains(&r.as_str())) {
            return Err(bad(
                "ORO_REQUIRE_BOUND_SIGNATURES",
                format!("{unknown:.20}: expected a comma-separated list of {}", BOUND_SIGNATURE_ROUTES.join(", ")),
            ));
        }
        // Production serves miners' keys: plain http would carry session cookies and signed
        // requests in the clear, and an open /metrics tells anyone the service's traffic.
        if production && public_url.scheme() != "https" && !flag("ORO_ALLOW_INSECURE_PUBLIC_URL")? {
            return Err(bad("ORO_PUBLIC_URL", "must be https:// when ORO_ENV=production (ORO_ALLOW_INSECURE_PUBLIC_URL=1 accepts http)"));
        }
        if production && metrics_token.is_none() && !flag("ORO_METRICS_PUBLIC")? {
            return Err(bad("ORO_METRICS_TOKEN", "required when ORO_ENV=production (ORO_METRICS_PUBLIC=1 serves /metrics to anyone)"));
        }

        Ok(Settings {
            environment,
            bind,
            database_url: SecretString::from(database_url),
            master_key_file,
            public_url,
            openrouter_api_base: url_var("ORO_OPENROUTER_API_BASE", "https://openrouter.ai/api/v1")?,
            chutes_api_base: url_var("ORO_CHUTES_API_BASE", "https://api.chutes.ai")?,
            chutes_llm_base: url_var("ORO_CHUTES_LLM_BASE", "https://llm.chutes.ai/v1")?,
            chutes_client_id: get("ORO_CHUTES_CLIENT_ID").unwrap_or_else(|| DEFAULT_CHUTES_CLIENT_ID.into()),
            chutes_client_secret: SecretString::from(chutes_client_secret.unwrap_or_else(|| "oro-sim-secret".into())),
            chutes_redirect_uri,
            chutes_client_auth,
            chutes_scopes,
            run_key_cap_usd: number("ORO_RUN_KEY_CAP_USD", 5.0, 0.01, 10_000.0)?,
            run_key_ttl_secs: seconds("ORO_RUN_KEY_TTL_SECS", 3600, 60, 7 * 24 * 3600)?,
            chutes_run_credential: match get("ORO_CHUTES_RUN_CREDENTIAL").as_deref() {
                None | Some("gateway") => ChutesRunCredential::Gateway,
                Some("direct") => ChutesRunCredential::Direct,
                Some(_) => return Err(bad("ORO_CHUTES_RUN_CREDENTIAL", "expected gateway or direct")),
            },
            gateway_bind: match get("ORO_GATEWAY_BIND") {
                Some(v) => v.parse().map_err(|_| bad("ORO_GATEWAY_BIND", "expected ADDRESS:PORT, e.g. 127.0.0.1:3002"))?,
                None => SocketAddr::from(([127, 0, 0, 1], 3002)),
            },
            gateway_public_url: get("ORO_GATEWAY_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            gateway_max_output_tokens: number("ORO_GATEWAY_MAX_OUTPUT_TOKENS", 4096.0, 16.0, 1_000_000.0)?.round() as u64,
            gateway_openrouter,
            simulate_providers,
            log_format,
            provider_timeout_secs: seconds("ORO_PROVIDER_TIMEOUT_SECS", 15, 1, 300)? as u64,
            connect_deadline_secs: seconds("ORO_CONNECT_DEADLINE_SECS", 10, 1, 60)? as u64,
            shutdown_grace_secs: seconds("ORO_SHUTDOWN_GRACE_SECS", 20, 0, 600)? as u64,
            require_bound_signatures,
            max_concurrent_requests: number("ORO_MAX_CONCURRENT_REQUESTS", 512.0, 1.0, 100_000.0)?.round() as usize,
            refusal_hold: std::time::Duration::from_millis(number("ORO_REFUSAL_HOLD_MS", 1000.0, 0.0, 10_000.0)?.round() as u64),
            session_ttl_secs: seconds("ORO_SESSION_TTL_SECS", 7 * 24 * 3600, 60, 90 * 24 * 3600)?,
            api_session_ttl_secs: seconds("ORO_API_SESSION_TTL_SECS", 2 * 3600, 60, 30 * 24 * 3600)?,
            signature_skew_secs: seconds("ORO_SIGNATURE_SKEW_SECS", 60, 5, 600)?,
            submit_cooldown_secs: seconds("ORO_SUBMIT_COOLDOWN_SECS", 60, 0, 7 * 24 * 3600)?,
            run_lease_secs: seconds("ORO_RUN_LEASE_SECS", 1800, 30, 24 * 3600)?,
            validator_hotkeys,
            rate_limits,
            trust_forwarded_for,
            metrics_token,
        })
    }

    /// After binding port 0 (tests), the values derived from the bind address get the real port.
    /// The gateway's base URL as a sandbox uses it (`…/v1`), once its listener is bound.
    pub fn gateway_base_url(&self) -> String {
        let root = self.gateway_public_url.clone().unwrap_or_else(|| format!("http://{}", self.gateway_bind));
        format!("{root}/v1")
    }

    pub fn with_bound_port(mut self, port: u16) -> Self {
        if self.bind.port() == 0 {
            let derived_redirect = format!("{}/oauth/chutes/callback", self.public_url.as_str().trim_end_matches('/'));
            if self.public_url.port() == Some(0) {
                let _ = self.public_url.set_port(Some(port));
                if self.chutes_redirect_uri == derived_redirect {
                    self.chutes_redirect_uri = format!("{}/oauth/chutes/callback", self.public_url.as_str().trim_end_matches('/'));
                }
            }
            self.bind.set_port(port);
        }
        self
    }

    pub fn is_sqlite(&self) -> bool {
        use secrecy::ExposeSecret;
        self.database_url.expose_secret().starts_with("sqlite:")
    }

    /// Redirect URIs Chutes may send a miner back to: our landing page and the SDK's loopback.
    pub fn allowed_chutes_redirect_uris(&self) -> Vec<String> {
        vec![self.chutes_redirect_uri.clone(), CLI_LOOPBACK_REDIRECT_URI.to_owned()]
    }

    /// Whether cookies should carry `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_run() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:3000");
        assert!(s.is_sqlite());
        assert!(s.simulate_providers);
        assert_eq!(s.run_key_cap_usd, 5.0);
        assert_eq!(s.run_key_ttl_secs, 3600);
        assert_eq!(s.chutes_redirect_uri, "http://127.0.0.1:3000/oauth/chutes/callback");
        assert_eq!(s.master_key_file, PathBuf::from("data/master.key"));
        assert_eq!(s.chutes_client_auth, ChutesClientAuth::Post);
        assert_eq!(s.chutes_scopes, "openid profile chutes:invoke");
    }

    #[test]
    fn chutes_client_auth_and_scopes_are_configurable_and_checked() {
        let s = Settings::from_vars(&vars(&[
            ("ORO_CHUTES_CLIENT_AUTH", "basic"),
            ("ORO_CHUTES_SCOPES", "  openid profile\tchutes:invoke   offline_access "),
        ]))
        .unwrap();
        assert_eq!(s.chutes_client_auth, ChutesClientAuth::Basic);
        assert_eq!(s.chutes_scopes, "openid profile chutes:invoke offline_access");
        let err = Settings::from_vars(&vars(&[("ORO_CHUTES_CLIENT_AUTH", "client_secret_jwt")])).unwrap_err();
        assert_eq!(err.variable, "ORO_CHUTES_CLIENT_AUTH");
        let err = Settings::from_vars(&vars(&[("ORO_CHUTES_SCOPES", "openid \"profile\"")])).unwrap_err();
        assert_eq!(err.variable, "ORO_CHUTES_SCOPES");
        assert!(Settings::from_vars(&vars(&[("ORO_CHUTES_SCOPES", "openid pro\\file")])).is_err());
    }

    #[test]
    fn bad_values_name_the_variable_and_never_echo_secrets() {
        let err = Settings::from_vars(&vars(&[("ORO_BIND", "nonsense")])).unwrap_err();
        assert_eq!(err.variable, "ORO_BIND");
        let err = Settings::from_vars(&vars(&[("DATABASE_URL", "mysql://user:hunter2@db/x")])).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        assert!(!err.to_string().contains("hunter2"));
        let err = Settings::from_vars(&vars(&[("ORO_RUN_KEY_CAP_USD", "-1")])).unwrap_err();
        assert_eq!(err.variable, "ORO_RUN_KEY_CAP_USD");
        let err = Settings::from_vars(&vars(&[("ORO_RATE_LIMIT_CONNECT_PER_IP", "lots")])).unwrap_err();
        assert_eq!(err.variable, "ORO_RATE_LIMIT_CONNECT_PER_IP");
        let err = Settings::from_vars(&vars(&[("ORO_METRICS_TOKEN", "t0ken"), ("ORO_BIND", "x")])).unwrap_err();
        assert!(!err.to_string().contains("t0ken"));
    }

    #[test]
    fn rate_limits_are_on_by_default_and_each_can_be_set_or_switched_off() {
        use crate::rate_limit::Limit;
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert!(s.rate_limits.sign_in_per_ip.is_some() && s.rate_limits.submit_per_hotkey.is_some());
        let s =
            Settings::from_vars(&vars(&[("ORO_RATE_LIMIT_SUBMIT_PER_IP", "5/h"), ("ORO_RATE_LIMIT_SIGN_IN_PER_HOTKEY", "off")])).unwrap();
        assert_eq!(s.rate_limits.submit_per_ip, Some(Limit::new(5, 3600)));
        assert_eq!(s.rate_limits.sign_in_per_hotkey, None);
    }

    #[test]
    fn production_requires_a_master_key_and_refuses_the_simulator() {
        let err = Settings::from_vars(&vars(&[("ORO_ENV", "production")])).unwrap_err();
        assert_eq!(err.variable, "ORO_MASTER_KEY_FILE");
        let err = Settings::from_vars(&vars(&[
            ("ORO_ENV", "production"),
            ("ORO_MASTER_KEY_FILE", "/etc/oro/master.key"),
            ("ORO_CHUTES_CLIENT_SECRET", "s3cret"),
            ("ORO_SIMULATE_PROVIDERS", "1"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "ORO_SIMULATE_PROVIDERS");
        let production = [
            ("ORO_ENV", "production"),
            ("ORO_MASTER_KEY_FILE", "/etc/oro/master.key"),
            ("ORO_CHUTES_CLIENT_SECRET", "s3cret"),
            ("ORO_PUBLIC_URL", "https://inference.oro.example"),
            ("ORO_METRICS_TOKEN", "m3trics"),
        ];
        let ok = Settings::from_vars(&vars(&production)).unwrap();
        assert!(!ok.simulate_providers);
        assert!(!format!("{ok:?}").contains("s3cret") && !format!("{ok:?}").contains("m3trics"));
    }

    #[test]
    fn production_refuses_plain_http_and_an_open_metrics_endpoint() {
        let base = [
            ("ORO_ENV", "production"),
            ("ORO_MASTER_KEY_FILE", "/etc/oro/master.key"),
            ("ORO_CHUTES_CLIENT_SECRET", "s3cret"),
            ("ORO_METRICS_TOKEN", "m3trics"),
        ];
        let with = |extra: &[(&str, &str)]| Settings::from_vars(&vars(&[&base[..], extra].concat()));
        assert_eq!(with(&[("ORO_PUBLIC_URL", "http://inference.oro.example")]).unwrap_err().variable, "ORO_PUBLIC_URL");
        assert_eq!(with(&[]).unwrap_err().variable, "ORO_PUBLIC_URL", "the default public URL is http");
        assert!(with(&[("ORO_PUBLIC_URL", "http://10.0.0.5:3000"), ("ORO_ALLOW_INSECURE_PUBLIC_URL", "1")]).is_ok());
        let open_metrics = [
            ("ORO_ENV", "production"),
            ("ORO_MASTER_KEY_FILE", "/k"),
            ("ORO_CHUTES_CLIENT_SECRET", "s"),
            ("ORO_PUBLIC_URL", "https://x.example"),
        ];
        assert_eq!(Settings::from_vars(&vars(&open_metrics)).unwrap_err().variable, "ORO_METRICS_TOKEN");
        assert!(Settings::from_vars(&vars(&[&open_metrics[..], &[("ORO_METRICS_PUBLIC", "1")]].concat())).is_ok());
        // Development keeps its defaults.
        assert!(Settings::from_vars(&vars(&[])).is_ok());
    }
}
