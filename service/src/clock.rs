//! Time as the service stores it: whole Unix seconds (portable across SQLite and PostgreSQL),
//! shown to people and the SDK as RFC 3339.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub fn now() -> i64 {
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
    fn rfc3339_round_trips() {
        let text = super::rfc3339(1_764_000_000);
        assert_eq!(text, "2025-11-24T16:00:00+00:00");
        assert_eq!(super::parse_rfc3339(&text), Some(1_764_000_000));
    }
}
