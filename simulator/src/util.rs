//! Small helpers shared by the provider modules.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `n` random lowercase hex digits.
pub fn random_hex(n: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    (0..n).map(|_| HEX[rng.gen_range(0..16)] as char).collect()
}

/// `n` random ASCII letters and digits.
pub fn random_alnum(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

/// RFC 3339 in UTC with a `Z`, seconds precision: `2026-11-24T20:00:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = unix_secs(t) as i64;
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH).format(&Rfc3339).unwrap_or_default()
}

/// Parses an ISO 8601 / RFC 3339 timestamp that must be in UTC (`Z` or `+00:00`).
pub fn parse_utc(s: &str) -> Result<SystemTime, &'static str> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| "expires_at must be an ISO 8601 timestamp")?;
    if !t.offset().is_utc() {
        return Err("expires_at must be in UTC (end with Z)");
    }
    let secs = t.unix_timestamp();
    if secs < 0 {
        return Err("expires_at is out of range");
    }
    Ok(UNIX_EPOCH + Duration::from_secs(secs as u64) + Duration::from_nanos(u64::from(t.nanosecond())))
}

pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// `uri` with the query parameters appended (keeps an existing query).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let q = ser.finish();
    if q.is_empty() {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{q}")
}

/// Parses an `application/x-www-form-urlencoded` body; a repeated key keeps its first value
/// and is reported.
pub fn parse_form(body: &[u8]) -> (std::collections::HashMap<String, String>, Option<String>) {
    let mut map = std::collections::HashMap::new();
    let mut dup = None;
    for (k, v) in form_urlencoded::parse(body) {
        if map.contains_key(k.as_ref()) {
            dup.get_or_insert_with(|| k.to_string());
            continue;
        }
        map.insert(k.into_owned(), v.into_owned());
    }
    (map, dup)
}

/// A chat request reduced to what the simulator needs.
pub struct ChatRequest {
    pub model: String,
    pub last_user_text: String,
    pub prompt_chars: usize,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    /// `stream_options.include_usage`: a stream ends with a usage-only chunk.
    pub include_usage: bool,
}

/// Parses an OpenAI chat-completions body. The error is a human-readable reason.
pub fn parse_chat(body: &[u8]) -> Result<ChatRequest, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let model = v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).ok_or("\"model\" is required")?.to_owned();
    let messages = v.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or("\"messages\" must be a non-empty array")?;
    let mut prompt_chars = 0;
    let mut last_user_text = String::new();
    for m in messages {
        let role = m.get("role").and_then(Value::as_str).ok_or("every message needs a \"role\"")?;
        let text = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        };
        prompt_chars += text.chars().count() + role.len();
        if role == "user" {
            last_user_text = text;
        }
    }
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let max_tokens = v.get("max_tokens").or_else(|| v.get("max_completion_tokens")).and_then(Value::as_u64);
    let include_usage = v.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(ChatRequest { model, last_user_text, prompt_chars, stream, max_tokens, include_usage })
}

/// An OpenAI-shaped completion (or an SSE stream of it when `stream: true` was asked).
/// `extra` fields are merged into the top-level object (e.g. OpenRouter's `provider`),
/// `usage_extra` into `usage` (e.g. OpenRouter's `cost`).
pub fn completion_response(req: &ChatRequest, model: &str, id_prefix: &str, extra: Value, usage_extra: Value) -> Response {
    let snippet: String = req.last_user_text.chars().take(200).collect();
    let mut content = if snippet.is_empty() {
        format!("Hello from the simulated {model}.")
    } else {
        format!("Simulated reply from {model} to: {snippet}")
    };
    let mut completion_tokens = (content.chars().count() / 4).max(1) as u64;
    let mut finish_reason = "stop";
    if let Some(max) = req.max_tokens
        && completion_tokens > max
    {
        let keep = (max as usize * 4).max(1);
        content = content.chars().take(keep).collect();
        completion_tokens = max.max(1);
        finish_reason = "length";
    }
    let prompt_tokens = (req.prompt_chars / 4).max(1) as u64;
    let mut usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    merge(&mut usage, usage_extra);
    let id = format!("{id_prefix}{}", random_alnum(24));
    let created = unix_secs(SystemTime::now());

    if !req.stream {
        let mut body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }],
            "usage": usage,
        });
        merge(&mut body, extra);
        return json_response(StatusCode::OK, body);
    }

    let chunk = |delta: Value, finish: Value, usage: Option<&Value>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        merge(&mut c, extra.clone());
        format!("data: {c}\n\n")
    };
    let mut sse = String::new();
    sse.push_str(&chunk(json!({"role": "assistant", "content": ""}), Value::Null, None));
    sse.push_str(&chunk(json!({"content": content}), Value::Null, None));
    sse.push_str(&chunk(json!({}), json!(finish_reason), None));
    // As OpenAI-compatible servers do: usage only when asked, in a last chunk of its own.
    if req.include_usage {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": usage});
        merge(&mut c, extra.clone());
        sse.push_str(&format!("data: {c}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], sse).into_response()
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(t), Value::Object(e)) = (target.as_object_mut(), extra) {
        t.extend(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_only() {
        assert!(parse_utc("2026-11-24T20:00:00Z").is_ok());
        assert!(parse_utc("2026-11-24T20:00:00+00:00").is_ok());
        assert!(parse_utc("2026-11-24T20:00:00+02:00").is_err());
        assert!(parse_utc("tomorrow").is_err());
        let t = parse_utc("2026-11-24T20:00:00Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-24T20:00:00Z");
    }

    #[test]
    fn query_appending() {
        assert_eq!(with_query("http://x/cb", &[("code", "a b"), ("state", "s")]), "http://x/cb?code=a+b&state=s");
        assert_eq!(with_query("http://x/cb?x=1", &[("code", "c")]), "http://x/cb?x=1&code=c");
    }
}
