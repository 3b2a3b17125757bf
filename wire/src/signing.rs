//! The exact texts that get signed.
//!
//! Two kinds of signature reach the service:
//! * every signed API request (the `oro` CLI, validators) signs
//!   `"{hotkey}:{timestamp}:{nonce}"`;
//! * the browser sign-in signs a Sign-In-with-Substrate message built by the server;
//! * our own `oro` CLI also sends a bound signature (`X-Signature-Bound`) over the method,
//!   the service's host, the path, a hash of the body, and the same hotkey, timestamp and
//!   nonce: a signature that cannot be moved to another request or another service.
//!
//! Browser wallets (`signer.signRaw` with `type: "bytes"`) sign the message wrapped in
//! `<Bytes>...</Bytes>`; the verifier accepts both the bare and the wrapped form.

/// The headers of a signed request.
pub const HEADER_HOTKEY: &str = "x-hotkey";
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
pub const HEADER_NONCE: &str = "x-nonce";
pub const HEADER_SIGNATURE: &str = "x-signature";
pub const HEADER_BOUND_SIGNATURE: &str = "x-signature-bound";

/// The text a signed request signs.
pub fn request_message(hotkey: &str, timestamp: &str, nonce: &str) -> String {
    format!("{hotkey}:{timestamp}:{nonce}")
}

/// The text a bound signature signs. `host` is the service's public host (`host[:port]`, the
/// port only when its URL names one), `path_and_query` the request target, `body_sha256` the hex SHA-256 of the body
/// bytes (of the empty string when there is none).
pub fn bound_request_message(
    method: &str,
    host: &str,
    path_and_query: &str,
    body_sha256: &str,
    hotkey: &str,
    timestamp: &str,
    nonce: &str,
) -> String {
    format!("oro-bound-request-v1\n{method}\n{host}\n{path_and_query}\n{body_sha256}\n{}", request_message(hotkey, timestamp, nonce))
}

/// What polkadot.js-style wallets actually sign for `signRaw({type: "bytes"})`.
pub fn wrap_bytes(message: &[u8]) -> Vec<u8> {
    let mut wrapped = Vec::with_capacity(message.len() + 15);
    wrapped.extend_from_slice(b"<Bytes>");
    wrapped.extend_from_slice(message);
    wrapped.extend_from_slice(b"</Bytes>");
    wrapped
}

/// A Sign-In-with-Substrate message (modelled on EIP-4361): what the browser wallet shows the
/// miner and signs. The server builds it, remembers its nonce, and on the way back parses the
/// signed text and checks every field against what it issued.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignInMessage {
    pub domain: String,
    pub address: String,
    pub statement: String,
    pub uri: String,
    pub version: String,
    pub nonce: String,
    /// RFC 3339, UTC.
    pub issued_at: String,
    /// RFC 3339, UTC.
    pub expiration_time: String,
}

const HEADER_SUFFIX: &str = " wants you to sign in with your Substrate account:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sign-in message is not in the expected format ({0})")]
pub struct SignInMessageError(&'static str);

impl SignInMessage {
    pub fn to_text(&self) -> String {
        format!(
            "{domain}{HEADER_SUFFIX}\n{address}\n\n{statement}\n\nURI: {uri}\nVersion: {version}\nNonce: {nonce}\nIssued At: {issued_at}\nExpiration Time: {expiration_time}",
            domain = self.domain,
            address = self.address,
            statement = self.statement,
            uri = self.uri,
            version = self.version,
            nonce = self.nonce,
            issued_at = self.issued_at,
            expiration_time = self.expiration_time,
        )
    }

    /// Parses exactly the layout `to_text` writes; anything else is refused.
    pub fn parse(text: &str) -> Result<Self, SignInMessageError> {
        if text.len() > 4096 {
            return Err(SignInMessageError("too long"));
        }
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() != 10 {
            return Err(SignInMessageError("wrong number of lines"));
        }
        let domain = lines[0].strip_suffix(HEADER_SUFFIX).ok_or(SignInMessageError("first line"))?;
        if lines[2].is_empty() && lines[4].is_empty() {
            let field = |line: &str, name: &'static str| -> Result<String, SignInMessageError> {
                line.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")).map(str::to_owned).ok_or(SignInMessageError(name))
            };
            Ok(SignInMessage {
                domain: domain.to_owned(),
                address: lines[1].to_owned(),
                statement: lines[3].to_owned(),
                uri: field(lines[5], "URI")?,
                version: field(lines[6], "Version")?,
                nonce: field(lines[7], "Nonce")?,
                issued_at: field(lines[8], "Issued At")?,
                expiration_time: field(lines[9], "Expiration Time")?,
            })
        } else {
            Err(SignInMessageError("blank lines"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_message_is_colon_joined() {
        assert_eq!(request_message("5Abc", "1700000000", "n-1"), "5Abc:1700000000:n-1");
        assert_eq!(wrap_bytes(b"hi"), b"<Bytes>hi</Bytes>".to_vec());
    }

    #[test]
    fn sign_in_message_round_trips_and_refuses_tampering() {
        let message = SignInMessage {
            domain: "127.0.0.1:3000".into(),
            address: "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY".into(),
            statement: "Sign in to ORO inference providers.".into(),
            uri: "http://127.0.0.1:3000".into(),
            version: "1".into(),
            nonce: "abc123".into(),
            issued_at: "2026-11-24T10:00:00Z".into(),
            expiration_time: "2026-11-24T10:10:00Z".into(),
        };
        let text = message.to_text();
        assert_eq!(SignInMessage::parse(&text).unwrap(), message);
        assert!(SignInMessage::parse(&text.replace("URI: ", "URL: ")).is_err());
        assert!(SignInMessage::parse(&format!("{text}\nextra")).is_err());
        assert!(SignInMessage::parse("").is_err());
    }
}
