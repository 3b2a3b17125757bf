//! Where the CLI's words go. Human mode prints oro-sdk's lines on stdout; with `--json`
//! stdout carries only the server's JSON and the chatter moves to stderr.

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A line of the human output (nothing in `--json` mode).
    pub fn line(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }

    /// A line the user needs in both modes (the authorize URL): stdout, or stderr with `--json`.
    pub fn notice(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// The machine answer: a JSON document on stdout (`--json` mode only).
    pub fn json_value(&self, value: &Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
        }
    }

    /// oro-sdk's `_print_inference_header`.
    pub fn inference_header(&self, wallet_name: &str, ss58: &str, provider: Option<&str>, base_url: &str) {
        self.line(&format!("Wallet:   {wallet_name} ({ss58})"));
        if let Some(provider) = provider {
            self.line(&format!("Provider: {provider}"));
        }
        self.line(&format!("Backend:  {base_url}"));
        self.line("");
    }
}

/// The body as JSON for `--json`; an empty body (204) becomes `{}`.
pub fn body_json(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Value::Object(Default::default());
    }
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// This machine's offset from UTC, read once at start-up (reading it later, with other threads
/// running, is refused by the `time` crate).
static LOCAL_OFFSET: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();

/// Call first thing in `main`, while the process has one thread.
pub fn read_local_offset() {
    let _ = LOCAL_OFFSET.set(time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC));
}

/// An RFC 3339 time in this machine's time zone, as `python_datetime` writes it: what a
/// person at this terminal reads as "when".
pub fn local_datetime(text: &str, sep: char) -> String {
    let offset = LOCAL_OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC);
    match OffsetDateTime::parse(text.trim(), &Rfc3339) {
        Ok(t) => python_datetime(&t.to_offset(offset).format(&Rfc3339).unwrap_or_else(|_| text.to_owned()), sep),
        Err(_) => python_datetime(text, sep),
    }
}

/// Python's `datetime.isoformat()` of an RFC 3339 time (`2025-01-02T03:04:05+00:00`);
/// with `sep = ' '` it is `str(datetime)`. Unparseable text is shown as it came.
pub fn python_datetime(text: &str, sep: char) -> String {
    let Ok(t) = OffsetDateTime::parse(text.trim(), &Rfc3339) else {
        return crate::client::printable(text);
    };
    let offset = t.offset();
    let (h, m, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    let micros = t.microsecond();
    let fraction = if micros == 0 { String::new() } else { format!(".{micros:06}") };
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{fraction}{sign}{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        h.unsigned_abs(),
        m.unsigned_abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_python() {
        assert_eq!(python_datetime("2025-01-02T03:04:05Z", 'T'), "2025-01-02T03:04:05+00:00");
        assert_eq!(python_datetime("2025-01-02T03:04:05+00:00", ' '), "2025-01-02 03:04:05+00:00");
        assert_eq!(python_datetime("2025-01-02T03:04:05.5-05:30", 'T'), "2025-01-02T03:04:05.500000-05:30");
        assert_eq!(python_datetime("yesterday", 'T'), "yesterday");
        assert_eq!(body_json(b""), serde_json::json!({}));
        assert_eq!(body_json(br#"{"ok":true}"#), serde_json::json!({"ok": true}));
    }
}
