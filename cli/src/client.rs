//! The signed HTTP client of the ORO API, behaving like oro-sdk's transport stack
//! (`RetryTransport -> SigningTransport -> HTTPTransport`): every request carries fresh
//! `X-Hotkey`/`X-Timestamp`/`X-Nonce`/`X-Signature` headers (retries included), a 15 s
//! timeout, and idempotent requests are retried on 429/502/503/504.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::wallet::Hotkey;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Retries after the first try (oro-sdk `max_retries=3`).
pub const MAX_RETRIES: u32 = 3;
pub const RETRYABLE_STATUSES: [u16; 4] = [429, 502, 503, 504];
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CLIENT_NAME: &str = "oro-cli-rust";

/// The four headers of a signed request, in the order oro-sdk sends them.
pub fn signed_headers(hotkey: &Hotkey, timestamp: u64, nonce: &str) -> [(&'static str, String); 4] {
    let timestamp = timestamp.to_string();
    let message = wire::signing::request_message(hotkey.ss58(), &timestamp, nonce);
    let signature = format!("0x{}", hex::encode(hotkey.sign(message.as_bytes())));
    [("X-Hotkey", hotkey.ss58().to_owned()), ("X-Timestamp", timestamp), ("X-Nonce", nonce.to_owned()), ("X-Signature", signature)]
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {base_url}: {reason}")]
    Unreachable { base_url: String, reason: String },
    /// The server answered with a status the command does not accept.
    #[error("Error (HTTP {status}): {detail}")]
    Refused { status: u16, detail: String, body: Option<Value> },
    #[error("unexpected answer from {base_url} (HTTP {status}): {reason}")]
    BadAnswer { base_url: String, status: u16, reason: String },
    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

/// A request body, as the exact bytes sent (the bound signature hashes them).
pub enum RequestBody {
    Empty,
    /// Serialized JSON (may hold a secret: wiped when dropped).
    Json(Zeroizing<Vec<u8>>),
    /// An encoded `multipart/form-data` body and its content type (with the boundary).
    Multipart {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl RequestBody {
    fn bytes(&self) -> &[u8] {
        match self {
            RequestBody::Empty => &[],
            RequestBody::Json(bytes) => bytes,
            RequestBody::Multipart { bytes, .. } => bytes,
        }
    }
}

/// `multipart/form-data` with text fields and one file, encoded here rather than by reqwest so
/// the bound signature can cover the bytes sent.
pub fn multipart(fields: &[(&str, &str)], file: (&str, &str, &str, &[u8])) -> RequestBody {
    let boundary = format!("oro-{}", uuid::Uuid::new_v4().simple());
    let mut bytes = Vec::new();
    let quote = |s: &str| s.replace(['"', '\r', '\n'], "_");
    for (name, value) in fields {
        bytes.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n", quote(name)).as_bytes(),
        );
    }
    let (name, file_name, content_type, content) = file;
    bytes.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
            quote(name),
            quote(file_name)
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(content);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    RequestBody::Multipart { content_type: format!("multipart/form-data; boundary={boundary}"), bytes }
}

/// What came back: the status and the raw body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One CLI run's connection to the API: a small tokio runtime, a reqwest client and the
/// hotkey that signs.
pub struct ApiClient {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base_url: String,
    hotkey: Hotkey,
}

/// Plain http anywhere but this machine carries signed requests and pasted keys in the clear.
pub fn insecure_base_url_warning(base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (url.scheme() == "http" && !loopback)
        .then(|| format!("warning: {base_url} is plain http: your signed requests and any key you paste travel unencrypted; use https"))
}

impl ApiClient {
    pub fn new(base_url: &str, hotkey: Hotkey) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| ClientError::Setup(e.to_string()))?;
        let mut default_headers = HeaderMap::new();
        default_headers.insert("X-Oro-Client-Name", HeaderValue::from_static(CLIENT_NAME));
        default_headers.insert("X-Oro-Client-Version", HeaderValue::from_static(env!("CARGO_PKG_VERSION")));
        let http = reqwest::Client::builder()
            // A redirect would re-send the signed headers and a pasted key, perhaps to another host.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("oro-cli/", env!("CARGO_PKG_VERSION")))
            .default_headers(default_headers)
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        let base_url = normalize_base_url(base_url);
        if let Some(warning) = insecure_base_url_warning(&base_url) {
            eprintln!("{warning}");
        }
        Ok(ApiClient { runtime, http, base_url, hotkey })
    }

    /// The bound signature of one request: method, the service's host, path, body hash,
    /// timestamp and nonce (`X-Signature-Bound`).
    fn bound_signature(&self, method: &Method, path: &str, body: &[u8], timestamp: u64, nonce: &str) -> Option<String> {
        use sha2::Digest;
        let base = url::Url::parse(&self.base_url).ok()?;
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str()?),
            None => base.host_str()?.to_owned(),
        };
        let body_hash = hex::encode(sha2::Sha256::digest(body));
        let message = wire::signing::bound_request_message(
            method.as_str(),
            &host,
            path,
            &body_hash,
            self.hotkey.ss58(),
            &timestamp.to_string(),
            nonce,
        );
        Some(format!("0x{}", hex::encode(self.hotkey.sign(message.as_bytes()))))
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn hotkey(&self) -> &Hotkey {
        &self.hotkey
    }

    pub fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.send(Method::GET, path, RequestBody::Empty)
    }

    pub fn delete(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.send(Method::DELETE, path, RequestBody::Empty)
    }

    pub fn post_json(&self, path: &str, body: &impl serde::Serialize) -> Result<ApiResponse, ClientError> {
        self.send(Method::POST, path, json_body(body))
    }

    pub fn patch_json(&self, path: &str, body: &impl serde::Serialize) -> Result<ApiResponse, ClientError> {
        self.send(Method::PATCH, path, json_body(body))
    }

    pub fn send(&self, method: Method, path: &str, body: RequestBody) -> Result<ApiResponse, ClientError> {
        self.runtime.block_on(self.send_with_retries(method, path, body))
    }

    async fn send_with_retries(&self, method: Method, path: &str, body: RequestBody) -> Result<ApiResponse, ClientError> {
        let url = format!("{}{}", self.base_url, path);
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE);
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            let nonce = uuid::Uuid::new_v4().to_string();
            let timestamp = unix_now();
            for (name, value) in signed_headers(&self.hotkey, timestamp, &nonce) {
                request = request.header(name, value);
            }
            if let Some(bound) = self.bound_signature(&method, path, body.bytes(), timestamp, &nonce) {
                request = request.header("X-Signature-Bound", bound);
            }
            request = match &body {
                RequestBody::Empty => request,
                RequestBody::Json(bytes) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes.to_vec()),
                RequestBody::Multipart { content_type, bytes } => {
                    request.header(reqwest::header::CONTENT_TYPE, content_type).body(bytes.clone())
                }
            };
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    if idempotent && RETRYABLE_STATUSES.contains(&status) && attempt < MAX_RETRIES {
                        let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                        continue;
                    }
                    let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
                    return Ok(ApiResponse { status, body: body.to_vec() });
                }
                // Like oro-sdk: a request that never reached the server is tried again
                // whatever its method.
                Err(e) if e.is_connect() && attempt < MAX_RETRIES => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(self.unreachable(&e)),
            }
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let reason = if error.is_timeout() { format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()) } else { root_cause(error) };
        ClientError::Unreachable { base_url: self.base_url.clone(), reason }
    }

    /// `Ok` when the status is one of `ok_statuses`, otherwise the server's refusal.
    pub fn expect(&self, response: ApiResponse, ok_statuses: &[u16]) -> Result<ApiResponse, ClientError> {
        if ok_statuses.contains(&response.status) {
            return Ok(response);
        }
        Err(match refusal(&response) {
            // No such route: most likely not our service at all (a wrong --base-url).
            ClientError::Refused { status: 404, detail, body } if detail == "Not Found" || body.is_none() => ClientError::Refused {
                status: 404,
                detail: format!("{detail}: is {} an oro-inference server? Check --base-url (or ORO_API_URL)", self.base_url),
                body,
            },
            other => other,
        })
    }

    /// The body of an accepted answer as `T`.
    pub fn parse<T: serde::de::DeserializeOwned>(&self, response: &ApiResponse, what: &str) -> Result<T, ClientError> {
        serde_json::from_slice(&response.body).map_err(|_| ClientError::BadAnswer {
            base_url: self.base_url.clone(),
            status: response.status,
            reason: format!("the body is not {what}"),
        })
    }
}

/// A JSON body for [`ApiClient::send`] with any method.
pub fn json_request(body: &impl serde::Serialize) -> RequestBody {
    json_body(body)
}

fn json_body(body: &impl serde::Serialize) -> RequestBody {
    RequestBody::Json(Zeroizing::new(serde_json::to_vec(body).expect("request bodies serialize")))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `https://host/` and `https://host` are the same base.
pub fn normalize_base_url(base_url: &str) -> String {
    base_url.trim().trim_end_matches('/').to_owned()
}

/// oro-sdk's backoff: `random() * min(2^attempt, 30)` seconds.
fn backoff(attempt: u32) -> Duration {
    let cap = 2f64.powi(attempt as i32).min(MAX_BACKOFF.as_secs_f64());
    Duration::from_secs_f64(rand::random::<f64>() * cap)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds).min(MAX_BACKOFF))
}

/// The innermost cause of a transport error ("Connection refused (os error 111)").
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// The refusal the way oro-sdk's `_exit_with_response_error` words it.
pub fn refusal(response: &ApiResponse) -> ClientError {
    let body = response.json();
    let detail = body.as_ref().and_then(detail_of).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&response.body).trim().to_owned();
        if text.is_empty() {
            reqwest::StatusCode::from_u16(response.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("").to_owned()
        } else {
            text
        }
    });
    ClientError::Refused { status: response.status, detail: printable(&detail), body }
}

/// `detail`, then `reason`, then `message` (the first present and not empty). A FastAPI 422
/// list becomes its `msg`s; an object its `message`.
pub fn detail_of(body: &Value) -> Option<String> {
    let object = body.as_object()?;
    ["detail", "reason", "message"].iter().find_map(|key| match object.get(*key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item.get("msg").and_then(Value::as_str) {
                    Some(msg) => match item.get("loc").and_then(Value::as_array) {
                        Some(loc) if !loc.is_empty() => {
                            let loc: Vec<String> =
                                loc.iter().map(|p| p.as_str().map(str::to_owned).unwrap_or_else(|| p.to_string())).collect();
                            format!("{} ({})", msg, loc.join("."))
                        }
                        _ => msg.to_owned(),
                    },
                    None => item.to_string(),
                })
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Value::Object(inner) => Some(match inner.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => Value::Object(inner.clone()).to_string(),
        }),
        other => Some(other.to_string()),
    })
}

/// Text from the network, made safe for a terminal: no control characters, bounded length.
pub fn printable(text: &str) -> String {
    const MAX_CHARS: usize = 2000;
    let mut out: String =
        text.chars().take(MAX_CHARS).map(|c| if c.is_control() && c != '\n' && c != '\t' { '\u{fffd}' } else { c }).collect();
    if text.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test_hotkey() -> Hotkey {
        Hotkey::from_keypair(crate::wallet::keypair_from_mini_secret(&[42u8; 32]).unwrap())
    }

    #[test]
    fn signed_headers_verify_against_the_hotkey() {
        let hotkey = test_hotkey();
        let nonce = "f90a37b8-8b7e-4b43-9146-c78b464dd487";
        let headers = signed_headers(&hotkey, 1_795_548_269, nonce);
        assert_eq!(headers[0], ("X-Hotkey", hotkey.ss58().to_owned()));
        assert_eq!(headers[1], ("X-Timestamp", "1795548269".to_owned()));
        assert_eq!(headers[2], ("X-Nonce", nonce.to_owned()));
        let signature = &headers[3].1;
        assert_eq!(headers[3].0, "X-Signature");
        assert!(signature.starts_with("0x") && signature.len() == 130);
        assert!(signature[2..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

        let public = schnorrkel::PublicKey::from_bytes(&wire::ss58::decode(&headers[0].1).unwrap()).unwrap();
        let signature = schnorrkel::Signature::from_bytes(&hex::decode(&signature[2..]).unwrap()).unwrap();
        let message = format!("{}:1795548269:{nonce}", hotkey.ss58());
        assert!(public.verify_simple(b"substrate", message.as_bytes(), &signature).is_ok());
        // The bare message is what is signed, not the `<Bytes>` wrapped form.
        let wrapped = wire::signing::wrap_bytes(message.as_bytes());
        assert!(public.verify_simple(b"substrate", &wrapped, &signature).is_err());
    }

    #[test]
    fn details_are_read_like_oro_sdk() {
        assert_eq!(detail_of(&json!({"detail": "Provider chutes is not connected"})).unwrap(), "Provider chutes is not connected");
        assert_eq!(detail_of(&json!({"reason": "r", "message": "m"})).unwrap(), "r");
        assert_eq!(detail_of(&json!({"detail": null, "message": "m"})).unwrap(), "m");
        assert_eq!(
            detail_of(&json!({"detail": [{"loc": ["body", "credential"], "msg": "Field required", "type": "missing"}]})).unwrap(),
            "Field required (body.credential)"
        );
        assert_eq!(
            detail_of(&json!({"detail": {"code": "INVALID_SIGNATURE", "message": "Invalid signature"}})).unwrap(),
            "Invalid signature"
        );
        assert_eq!(detail_of(&json!(["x"])), None);
        let raw = refusal(&ApiResponse { status: 500, body: b"Internal Server Error".to_vec() });
        assert_eq!(raw.to_string(), "Error (HTTP 500): Internal Server Error");
        let empty = refusal(&ApiResponse { status: 503, body: Vec::new() });
        assert_eq!(empty.to_string(), "Error (HTTP 503): Service Unavailable");
        assert_eq!(printable("a\u{1b}[31mb"), "a\u{fffd}[31mb");
    }

    #[test]
    fn backoff_stays_within_oro_sdks_bounds() {
        for attempt in 0..3 {
            assert!(backoff(attempt) <= Duration::from_secs(1 << attempt));
        }
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        assert!(insecure_base_url_warning("http://api.oro.example").is_some());
        assert!(insecure_base_url_warning("https://api.oro.example").is_none());
        for local in ["http://127.0.0.1:3000", "http://localhost:3000", "http://[::1]:3000"] {
            assert!(insecure_base_url_warning(local).is_none(), "{local}");
        }
        assert_eq!(normalize_base_url("http://h:1/ "), "http://h:1");
    }
}
