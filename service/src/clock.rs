//! Time as the service stores it: whole Unix seconds (portable across SQLite and PostgreSQL),
//! shown to people and the SDK as RFC 3339.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// The service's clock, injected (`Services::clock`): the system's time plus an offset that
/// only tests move (`advance`), so that an expiry is tested by moving time, not by editing the
/// rows that hold it. Clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> i64 {
        system_now() + self.offset_secs.load(Ordering::Relaxed)
    }

    /// Moves this clock (and its clones) forward; the system's time is untouched.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The machine's time, for what stands outside the service (a client signing a request, a
/// benchmark). The service itself reads its injected `Clock`.
pub fn system_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// RFC 3339 with an explicit `+00:00` offset: oro-sdk parses times with Python's
/// `datetime.fromisoformat`, which refuses a `Z` suffix before Python 3.11.
pub fn rfc3339(unix_seconds: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp(unix_seconds).ok().and_then(|t| t.format(&format).ok()).unwrap_or_else(|| unix_seconds.to_string())
}

/// RFC 3339 with `Z`: OpenRouter's `expires_at` takes UTC only.
pub fn rfc3339_utc_z(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_else(|| unix_seconds.to_string())
}

pub fn parse_rfc3339(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_advanced_clock_and_its_clones_move_together() {
        let clock = super::Clock::default();
        let copy = clock.clone();
        let before = clock.now();
        copy.advance(3_600);
        assert!(clock.now() >= before + 3_600);
        assert!(clock.now() < before + 3_600 + 5);
        assert!(super::Clock::default().now() < before + 5, "a new clock starts at the system's time");
    }

    #[test]
    fn rfc3339_round_trips() {
        let text = super::rfc3339(1_764_000_000);
        assert_eq!(text, "2025-11-24T16:00:00+00:00");
        assert_eq!(super::parse_rfc3339(&text), Some(1_764_000_000));
    }
}
