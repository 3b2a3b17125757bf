//! `oro inference connect chutes`: OAuth 2 authorization code with PKCE (S256) through the
//! browser and a loopback listener on `http://localhost:8765/callback`, as oro-sdk 4.0.1's
//! `chutes_auth.py` does it. The CLI never talks to Chutes itself: the code and the verifier
//! go to the ORO backend, which holds the client secret.

use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub const DEFAULT_CHUTES_IDP_BASE: &str = "https://api.chutes.ai";
/// oro-sdk's `DEFAULT_CLIENT_ID` (overridden by `CHUTES_CLIENT_ID`).
pub const DEFAULT_CHUTES_CLIENT_ID: &str = "cid_qstkn2eb4uszxski1rdqk062";
pub const REDIRECT_URI: &str = "http://localhost:8765/callback";
pub const LOOPBACK_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8765);
pub const SCOPE: &str = "chutes:invoke";

/// A PKCE pair: the verifier stays secret until it goes to the ORO backend.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

impl Pkce {
    /// 64 random bytes as base64url: an 86-character verifier (like `secrets.token_urlsafe(64)`).
    pub fn generate() -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        let verifier = SecretString::from(URL_SAFE_NO_PAD.encode(bytes.as_ref()));
        debug_assert!(is_valid_verifier(verifier.expose_secret()));
        let challenge = challenge_for(&verifier);
        Pkce { verifier, challenge }
    }
}

/// `base64url-nopad(sha256(verifier))`.
pub fn challenge_for(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// 32 random bytes as base64url (43 characters).
pub fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The IdP's authorize URL, parameters in oro-sdk's order, form-encoded like `urlencode`.
pub fn authorize_url(idp_base: &str, client_id: &str, scopes: &str, state: &str, challenge: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .append_pair("scope", scopes)
        .finish();
    format!("{}/idp/authorize?{query}", idp_base.trim().trim_end_matches('/'))
}

#[derive(Debug, thiserror::Error)]
pub enum ChutesFlowError {
    #[error("cannot listen on {addr} for the Chutes callback: {reason} (is another `oro inference connect chutes` running?)")]
    Listen { addr: SocketAddr, reason: String },
    #[error("Authentication failed: you denied access on Chutes. Run `oro inference connect chutes` again and choose Allow to connect.")]
    AccessDenied,
    #[error("Authentication failed: {description} ({error})")]
    Refused { error: String, description: String },
    #[error("Authentication timed out after {0} s. Please try again.")]
    TimedOut(u64),
}

/// What one request to the loopback listener meant.
#[derive(Debug, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Not for us (`/favicon.ico`, no parameters): 204, keep waiting.
    Ignored,
    /// A `state` that is not ours: 400, keep waiting.
    StateMismatch,
    Code(String),
    Error {
        error: String,
        description: Option<String>,
    },
}

/// Reads a callback's query string. Only the query matters, as in oro-sdk; `state` must be
/// ours for a code and for an error alike.
pub fn classify_callback(query: &str, expected_state: &str) -> CallbackOutcome {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = Some(value.into_owned()),
            _ => {}
        }
    }
    let state_is_ours = state.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), expected_state.as_bytes()));
    match (code, error) {
        (None, None) if state.is_none() => CallbackOutcome::Ignored,
        // An error counts only with our state (RFC 6749 4.1.2.1 returns it): otherwise any web
        // page could cancel a running connect by loading the loopback URL with `?error=`.
        (_, Some(error)) if state_is_ours => CallbackOutcome::Error { error, description },
        (Some(code), None) if state_is_ours && !code.is_empty() => CallbackOutcome::Code(code),
        _ => CallbackOutcome::StateMismatch,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The loopback listener, bound before the browser opens.
pub struct LoopbackListener {
    listener: TcpListener,
}

impl LoopbackListener {
    pub fn bind() -> Result<Self, ChutesFlowError> {
        let addr = SocketAddr::from(LOOPBACK_ADDR);
        let listener = TcpListener::bind(addr).map_err(|e| ChutesFlowError::Listen { addr, reason: e.kind().to_string() })?;
        listener.set_nonblocking(true).map_err(|e| ChutesFlowError::Listen { addr, reason: e.to_string() })?;
        Ok(LoopbackListener { listener })
    }

    /// Serves callbacks until one brings our code or an error, or `timeout` passes. A spinner
    /// turns on stderr while it waits when stderr is a terminal.
    pub fn wait_for_code(&self, expected_state: &str, timeout: Duration) -> Result<SecretString, ChutesFlowError> {
        let deadline = Instant::now() + timeout;
        let mut spinner = Spinner::on_stderr();
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(done) = handle_connection(stream, expected_state) {
                        spinner.finish();
                        return done;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        spinner.finish();
                        return Err(ChutesFlowError::TimedOut(timeout.as_secs()));
                    }
                    spinner.tick();
                    std::thread::sleep(Duration::from_millis(50));
                }
                // A connection that died before we took it: keep listening.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Answers one HTTP request; `Some` when the flow is over.
fn handle_connection(mut stream: TcpStream, expected_state: &str) -> Option<Result<SecretString, ChutesFlowError>> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let Some(target) = read_request_target(&mut stream) else {
        respond(&mut stream, "400 Bad Request", Some(page("Bad request", "This address only takes the Chutes callback.")));
        return None;
    };
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    match classify_callback(query, expected_state) {
        CallbackOutcome::Ignored => {
            respond(&mut stream, "204 No Content", None);
            None
        }
        CallbackOutcome::StateMismatch => {
            respond(
                &mut stream,
                "400 Bad Request",
                Some(page("State mismatch", "This callback does not belong to the running `oro` command; it was ignored.")),
            );
            None
        }
        CallbackOutcome::Code(code) => {
            respond(
                &mut stream,
                "200 OK",
                // The exchange has not happened yet: the terminal tells how it ends.
                Some(page(
                    "Authorization received",
                    "The oro CLI is finishing the connection with Chutes: your terminal says when it is done. You can close this tab.",
                )),
            );
            Some(Ok(SecretString::from(code)))
        }
        CallbackOutcome::Error { error, description } => {
            let failure = if error == "access_denied" {
                ChutesFlowError::AccessDenied
            } else {
                ChutesFlowError::Refused {
                    description: crate::client::printable(description.as_deref().unwrap_or(&error)),
                    error: crate::client::printable(&error),
                }
            };
            respond(&mut stream, "400 Bad Request", Some(page("Authorization failed", &failure.to_string())));
            Some(Err(failure))
        }
    }
}

/// The target of the request line (`GET /callback?code=... HTTP/1.1`); the rest of the
/// head is read and ignored.
fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 * 1024 {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut parts = head.lines().next()?.split_whitespace();
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET" || method == "HEAD").then(|| target.to_owned())
}

fn respond(stream: &mut TcpStream, status: &str, html: Option<String>) {
    let response = match html {
        Some(body) => format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn page(title: &str, message: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - oro</title></head>\
         <body><main><h2>{t}</h2><p>{m}</p></main></body></html>\n",
        t = html_escape(title),
        m = html_escape(message)
    )
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// Opens `url` like Python's `webbrowser`: each command of `$BROWSER` (`:`-separated, `%s`
/// replaced by the URL or the URL appended), then the platform opener. True when one started.
pub fn open_browser(url: &str) -> bool {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(browsers) = std::env::var("BROWSER") {
        for command in browsers.split(':').map(str::trim).filter(|c| !c.is_empty()) {
            let mut words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            if words.iter().any(|w| w.contains("%s")) {
                words = words.into_iter().map(|w| w.replace("%s", url)).collect();
            } else {
                words.push(url.to_owned());
            }
            candidates.push(words);
        }
    }
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    candidates.push(vec![opener.to_owned(), url.to_owned()]);
    candidates.into_iter().any(|words| run_opener(&words))
}

/// Starts an opener; a command still running after a few seconds has opened a browser.
fn run_opener(words: &[String]) -> bool {
    let Some((program, args)) = words.split_first() else {
        return false;
    };
    let child = Command::new(program).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let Ok(mut child) = child else { return false };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// A one-line spinner on stderr, only when stderr is a terminal.
struct Spinner {
    enabled: bool,
    started: Instant,
    last: Instant,
    frame: usize,
    shown: bool,
}

impl Spinner {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

    fn on_stderr() -> Self {
        let now = Instant::now();
        Spinner { enabled: std::io::stderr().is_terminal(), started: now, last: now, frame: 0, shown: false }
    }

    fn tick(&mut self) {
        if !self.enabled || (self.shown && self.last.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.last = Instant::now();
        self.frame = (self.frame + 1) % Self::FRAMES.len();
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r{} Waiting for you to approve in the browser... {}s (Ctrl-C to cancel)\x1b[K",
            Self::FRAMES[self.frame],
            self.started.elapsed().as_secs()
        );
        let _ = stderr.flush();
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
            self.shown = false;
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_pairs_follow_rfc_7636() {
        let pkce = Pkce::generate();
        let verifier = pkce.verifier.expose_secret();
        assert_eq!(verifier.len(), 86);
        assert!(is_valid_verifier(verifier));
        assert_eq!(pkce.challenge.len(), 43);
        assert_eq!(pkce.challenge, URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())));
        assert_ne!(Pkce::generate().verifier.expose_secret(), verifier);
        // RFC 7636 appendix B.
        let rfc = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(challenge_for(&rfc), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!is_valid_verifier("short"));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(50))));
        let state = random_state();
        assert_eq!(state.len(), 43);
        assert_ne!(state, random_state());
    }

    #[test]
    fn the_authorize_url_is_oro_sdks() {
        let url = authorize_url("https://api.chutes.ai/", "cid_x", SCOPE, "st", "ch");
        assert_eq!(
            url,
            "https://api.chutes.ai/idp/authorize?response_type=code&client_id=cid_x&redirect_uri=http%3A%2F%2Flocalhost%3A8765%2Fcallback&code_challenge=ch&code_challenge_method=S256&state=st&scope=chutes%3Ainvoke"
        );
    }

    #[test]
    fn callbacks_are_classified_by_code_error_and_state() {
        assert_eq!(classify_callback("", "s1"), CallbackOutcome::Ignored);
        assert_eq!(classify_callback("code=abc&state=s1", "s1"), CallbackOutcome::Code("abc".into()));
        assert_eq!(classify_callback("code=abc&state=s2", "s1"), CallbackOutcome::StateMismatch);
        assert_eq!(classify_callback("code=abc", "s1"), CallbackOutcome::StateMismatch);
        assert_eq!(classify_callback("state=s1", "s1"), CallbackOutcome::StateMismatch);
        assert_eq!(
            classify_callback("error=access_denied&error_description=The+user+denied+access&state=s1", "s1"),
            CallbackOutcome::Error { error: "access_denied".into(), description: Some("The user denied access".into()) }
        );
        // Without our state an error is some other page's doing: it cancels nothing.
        assert_eq!(classify_callback("error=server_error", "s1"), CallbackOutcome::StateMismatch);
        assert_eq!(
            classify_callback("error=server_error&state=s1", "s1"),
            CallbackOutcome::Error { error: "server_error".into(), description: None }
        );
        assert_eq!(classify_callback("error=access_denied&state=other", "s1"), CallbackOutcome::StateMismatch);
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
