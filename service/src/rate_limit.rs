//! Rate limits on the actions worth abusing: signing in, connecting a provider, submitting
//! an agent. Each is limited per client IP (counted before anything else, on every attempt)
//! and per hotkey (counted only once the hotkey has proved itself, so nobody can lock a miner
//! out by spamming requests that merely name their hotkey).
//!
//! The counters live in the database, so a limit holds across every replica behind the load
//! balancer. Windows are fixed (`window_start = now - now % window`): at most `max` hits per
//! window, and a refused caller is told how long until the window ends.

use std::fmt;
use std::net::IpAddr;

use crate::db::Db;

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    Connect,
    Submit,
    /// Any request carrying a signature or a bearer token: each costs signature checks and a
    /// nonce write before anything else can refuse it.
    Signed,
    /// A signed request answered 401 (bad signature, stale timestamp, unknown token): a client
    /// with a real key makes few of these, a forger nothing else.
    FailedAuth,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::Connect => "connect",
            Action::Submit => "submit",
            Action::Signed => "signed",
            Action::FailedAuth => "failed_auth",
        }
    }

    /// A phrase for the refusal: "too many sign-in attempts".
    fn attempts(self) -> &'static str {
        match self {
            Action::SignIn => "sign-in attempts",
            Action::Connect => "connect attempts",
            Action::Submit => "submissions",
            Action::Signed => "signed requests",
            Action::FailedAuth => "failed authentications",
        }
    }
}

/// Whom a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Ip,
    Hotkey,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ip => "ip",
            Scope::Hotkey => "hotkey",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Scope::Ip => "from this address",
            Scope::Hotkey => "for this hotkey",
        }
    }
}

/// At most `max` hits per `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: i64,
}

impl Limit {
    pub const fn new(max: u32, window_secs: i64) -> Self {
        Limit { max, window_secs }
    }

    /// `"30/min"`, `"10/1h"`, `"100/30s"`, `"5/day"`; `"off"` (or `"0"`) means no limit.
    pub fn parse(text: &str) -> Result<Option<Limit>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") || text == "0" {
            return Ok(None);
        }
        let (max, period) = text.split_once('/').ok_or("expected COUNT/PERIOD, e.g. 30/min, 10/h, or off")?;
        let max: u32 = max.trim().parse().ok().filter(|m| *m > 0).ok_or("the count must be a whole number above 0")?;
        let period = period.trim();
        let digits_end = period.find(|c: char| !c.is_ascii_digit()).unwrap_or(period.len());
        let (count, unit) = period.split_at(digits_end);
        let count: i64 = if count.is_empty() { 1 } else { count.parse().map_err(|_| "bad period")? };
        let unit_secs = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err("the period must end in s, min, h or day".into()),
        };
        let window_secs = count.checked_mul(unit_secs).unwrap_or(i64::MAX);
        if !(1..=7 * 86_400).contains(&window_secs) {
            return Err("the period must be from 1 s to 7 days".into());
        }
        Ok(Some(Limit { max, window_secs }))
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.max, self.window_secs)
    }
}

/// The configured limits; `None` switches one off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub sign_in_per_ip: Option<Limit>,
    pub sign_in_per_hotkey: Option<Limit>,
    pub connect_per_ip: Option<Limit>,
    pub connect_per_hotkey: Option<Limit>,
    pub submit_per_ip: Option<Limit>,
    pub submit_per_hotkey: Option<Limit>,
    /// Counted in memory, per replica (`LocalLimiter`): cheap enough to run before any
    /// signature is checked.
    pub signed_per_ip: Option<Limit>,
    /// In memory too: once an address has failed this often, its signed requests are refused
    /// before their signature is checked.
    pub failed_auth_per_ip: Option<Limit>,
}

impl Default for RateLimits {
    /// Generous for a person, tight for a script: a miner signs in a few times a day,
    /// connects a provider now and then, and submits at most once a minute (the cooldown).
    fn default() -> Self {
        RateLimits {
            sign_in_per_ip: Some(Limit::new(60, 60)),
            sign_in_per_hotkey: Some(Limit::new(20, 60)),
            connect_per_ip: Some(Limit::new(60, 60)),
            connect_per_hotkey: Some(Limit::new(20, 600)),
            submit_per_ip: Some(Limit::new(60, 3600)),
            submit_per_hotkey: Some(Limit::new(30, 3600)),
            // A validator holding 8 runs heartbeats and reports a few times a minute per run.
            signed_per_ip: Some(Limit::new(1200, 60)),
            // A wallet signs correctly; a skewed clock fails a few times before its owner looks.
            failed_auth_per_ip: Some(Limit::new(30, 60)),
        }
    }
}

impl RateLimits {
    pub fn per_ip(&self, action: Action) -> Option<Limit> {
        match action {
            Action::SignIn => self.sign_in_per_ip,
            Action::Connect => self.connect_per_ip,
            Action::Submit => self.submit_per_ip,
            Action::Signed => self.signed_per_ip,
            Action::FailedAuth => self.failed_auth_per_ip,
        }
    }

    pub fn per_hotkey(&self, action: Action) -> Option<Limit> {
        match action {
            Action::SignIn => self.sign_in_per_hotkey,
            Action::Connect => self.connect_per_hotkey,
            Action::Submit => self.submit_per_hotkey,
            Action::Signed | Action::FailedAuth => None,
        }
    }
}

/// A refusal: 429 with `Retry-After: retry_after_secs`.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    #[error("too many {attempts} {from}: at most {max} per {window}; try again in {retry_after_secs} s")]
    Limited { attempts: &'static str, from: &'static str, max: u32, window: String, retry_after_secs: i64 },
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

impl RateLimitError {
    pub fn failure(&self) -> crate::failure::Failure {
        match self {
            RateLimitError::Limited { .. } => crate::failure::Failure::TooSoon,
            RateLimitError::Storage(_) => crate::failure::Failure::Internal,
        }
    }

    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            RateLimitError::Limited { retry_after_secs, .. } => Some(*retry_after_secs),
            RateLimitError::Storage(_) => None,
        }
    }
}

fn window_text(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 { unit.to_owned() } else { format!("{n} {unit}s") }
}

/// Who a per-IP bucket is for. IPv6 clients are grouped by their /64, which one host
/// usually owns entirely: counting single addresses would let it rotate through 2^64 of them.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Counts one hit on `bucket` and refuses it if the window is already full.
pub async fn hit(db: &Db, action: Action, scope: Scope, who: &str, limit: Limit, now: i64) -> Result<(), RateLimitError> {
    let window_start = now - now.rem_euclid(limit.window_secs);
    let window_end = window_start + limit.window_secs;
    let bucket = format!("{}:{}:{who}", action.as_str(), scope.as_str());
    let hits = crate::store::rate_limits::hit(&mut *db.pool().acquire().await?, &bucket, window_start, window_end).await?;
    if hits > i64::from(limit.max) {
        metrics::counter!("oro_rate_limited_total", "action" => action.as_str(), "by" => scope.as_str()).increment(1);
        return Err(RateLimitError::Limited {
            attempts: action.attempts(),
            from: scope.phrase(),
            max: limit.max,
            window: window_text(limit.window_secs),
            retry_after_secs: (window_end - now).max(1),
        });
    }
    Ok(())
}

/// Fixed-window counters in this process's memory: for the limit that runs on every signed
/// request, where a database write per hit would be the very work it protects. Per replica, so
/// behind N replicas a client gets up to N times the limit.
pub struct LocalLimiter {
    action: Action,
    limit: Option<Limit>,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
}

impl LocalLimiter {
    pub fn new(action: Action, limit: Option<Limit>) -> Self {
        LocalLimiter { action, limit, buckets: Default::default() }
    }

    /// Counts a hit, and refuses it past the limit.
    pub fn hit(&self, who: &str, now: i64) -> Result<(), RateLimitError> {
        self.count(who, now, 1)
    }

    /// Refuses when `who` is already past the limit, without counting anything.
    pub fn check(&self, who: &str, now: i64) -> Result<(), RateLimitError> {
        self.count(who, now, 0)
    }

    fn count(&self, who: &str, now: i64, hits: u32) -> Result<(), RateLimitError> {
        let Some(limit) = self.limit else { return Ok(()) };
        let window_start = now - now.rem_euclid(limit.window_secs);
        let mut buckets = self.buckets.lock().expect("limiter lock");
        if buckets.len() > 100_000 {
            // Forget ended windows; a flood of fresh addresses cannot grow this without bound.
            buckets.retain(|_, (start, _)| *start == window_start);
            if buckets.len() > 100_000 {
                buckets.clear();
            }
        }
        if hits == 0 && !buckets.contains_key(who) {
            return Ok(());
        }
        let entry = buckets.entry(who.to_owned()).or_insert((window_start, 0));
        if entry.0 != window_start {
            *entry = (window_start, 0);
        }
        entry.1 = entry.1.saturating_add(hits);
        if entry.1 > limit.max || (hits == 0 && entry.1 >= limit.max) {
            metrics::counter!("oro_rate_limited_total", "action" => self.action.as_str(), "by" => Scope::Ip.as_str()).increment(1);
            return Err(RateLimitError::Limited {
                attempts: self.action.attempts(),
                from: Scope::Ip.phrase(),
                max: limit.max,
                window: window_text(limit.window_secs),
                retry_after_secs: (window_start + limit.window_secs - now).max(1),
            });
        }
        Ok(())
    }
}

/// Forgets windows that have ended.
pub async fn forget_expired(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    crate::store::rate_limits::forget_expired(&mut *db.pool().acquire().await?, now).await
}

impl crate::Services {
    /// Counts an attempt from a client address (before any other work).
    pub async fn limit_ip(&self, action: Action, ip: IpAddr) -> Result<(), RateLimitError> {
        match self.settings.rate_limits.per_ip(action) {
            Some(limit) => hit(&self.db, action, Scope::Ip, &client_key(ip), limit, self.clock.now()).await,
            None => Ok(()),
        }
    }

    /// Counts an attempt by a hotkey that has proved itself (signed request, session, or a
    /// verified sign-in signature).
    pub async fn limit_hotkey(&self, action: Action, hotkey: &crate::domain::Hotkey) -> Result<(), RateLimitError> {
        match self.settings.rate_limits.per_hotkey(action) {
            Some(limit) => hit(&self.db, action, Scope::Hotkey, hotkey.as_str(), limit, self.clock.now()).await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Backend;
    use crate::db::testing::TestDatabase;

    #[test]
    fn limits_parse_from_what_an_operator_writes() {
        assert_eq!(Limit::parse("30/min").unwrap(), Some(Limit::new(30, 60)));
        assert_eq!(Limit::parse("10/h").unwrap(), Some(Limit::new(10, 3600)));
        assert_eq!(Limit::parse("100/30s").unwrap(), Some(Limit::new(100, 30)));
        assert_eq!(Limit::parse(" 5 / day ").unwrap(), Some(Limit::new(5, 86_400)));
        assert_eq!(Limit::parse("off").unwrap(), None);
        for bad in ["", "30", "x/min", "0/min", "-1/min", "30/fortnight", "30/0s", "30/8day", "1/9223372036854775807day"] {
            assert!(Limit::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    async fn counts_per_window_and_bucket(backend: Backend) {
        let test_db = TestDatabase::create(backend).await;
        let db = &test_db.connect().await;
        let limit = Limit::new(3, 60);
        let now = 1_699_999_990; // 10 s into a minute-long window
        for _ in 0..3 {
            hit(db, Action::Connect, Scope::Ip, "192.0.2.1", limit, now).await.unwrap();
        }
        let refused = hit(db, Action::Connect, Scope::Ip, "192.0.2.1", limit, now).await.unwrap_err();
        assert_eq!(refused.failure(), crate::failure::Failure::TooSoon);
        assert_eq!(refused.retry_after_secs(), Some(50));
        assert!(refused.to_string().contains("too many connect attempts from this address: at most 3 per minute"), "{refused}");
        // Another address, another action: their own counters.
        hit(db, Action::Connect, Scope::Ip, "192.0.2.2", limit, now).await.unwrap();
        hit(db, Action::Submit, Scope::Ip, "192.0.2.1", limit, now).await.unwrap();
        // The next window starts afresh, and the ended one is forgotten.
        hit(db, Action::Connect, Scope::Ip, "192.0.2.1", limit, now + 50).await.unwrap();
        assert!(forget_expired(db, now + 50).await.unwrap() >= 2);
    }

    async fn concurrent_hits_never_exceed_the_limit(backend: Backend) {
        let test_db = TestDatabase::create(backend).await;
        let db = test_db.connect().await;
        let limit = Limit::new(10, 60);
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let db = db.clone();
            tasks
                .push(tokio::spawn(async move { hit(&db, Action::SignIn, Scope::Ip, "198.51.100.1", limit, 1_700_000_000).await.is_ok() }));
        }
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 10);
    }

    #[tokio::test]
    async fn counts_per_window_and_bucket_sqlite() {
        counts_per_window_and_bucket(Backend::Sqlite).await
    }
    #[tokio::test]
    async fn counts_per_window_and_bucket_postgres() {
        counts_per_window_and_bucket(Backend::Postgres).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hits_never_exceed_the_limit_sqlite() {
        concurrent_hits_never_exceed_the_limit(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_hits_never_exceed_the_limit_postgres() {
        concurrent_hits_never_exceed_the_limit(Backend::Postgres).await
    }

    #[test]
    fn check_refuses_once_the_limit_is_reached_and_counts_nothing() {
        let limiter = LocalLimiter::new(Action::FailedAuth, Some(Limit::new(3, 60)));
        let now = 1_000_040;
        for _ in 0..10 {
            limiter.check("203.0.113.1", now).unwrap();
        }
        for _ in 0..3 {
            limiter.hit("203.0.113.1", now).unwrap();
        }
        let refused = limiter.check("203.0.113.1", now).unwrap_err();
        assert_eq!(refused.to_string(), "too many failed authentications from this address: at most 3 per minute; try again in 40 s");
        limiter.check("203.0.113.2", now).unwrap();
        // The next window starts afresh.
        limiter.check("203.0.113.1", now + 40).unwrap();
    }
}
