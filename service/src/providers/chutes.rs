//! Chutes: OAuth 2 (authorization code + PKCE S256) into the miner's own account. We are a
//! confidential client (the secret stays here) and keep the refresh token, which at Chutes
//! **rotates**: every refresh answers a new one and kills the old. The client holds to the
//! standard rather than to Chutes' habits where they differ: a refresh answer without a
//! refresh token keeps the one we have (RFC 6749 section 6), client authentication may be
//! HTTP Basic, and the scopes are configuration.

use std::time::Duration;

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use wire::Provider;

use super::observe;
use super::{ProviderError, scrub};
use crate::config::ChutesClientAuth;

const NAME: &str = "Chutes";

#[derive(Clone)]
pub struct ChutesClient {
    http: reqwest::Client,
    api_base: String,
    llm_base: String,
    client_id: String,
    client_secret: SecretString,
    client_auth: ChutesClientAuth,
    /// What the consent page asks for; a run needs `chutes:invoke`.
    scopes: String,
    timeout: Duration,
}

/// A token answer. The access token (`cak_...`) lives an hour; the refresh token (`crt_...`),
/// when there is one, replaces the one that was spent. `None` after a refresh means the
/// server kept the spent one alive (RFC 6749 section 6); after a code exchange, that no
/// refresh token was issued at all (an IdP that wants `offline_access`, say).
pub struct TokenSet {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_in: i64,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
pub struct UserInfo {
    #[serde(default)]
    pub sub: Option<String>,
    /// Chutes' own claim.
    #[serde(default)]
    pub username: Option<String>,
    /// The OpenID Connect standard claim (Core section 5.1).
    #[serde(default)]
    pub preferred_username: Option<String>,
}

impl UserInfo {
    /// The name that makes the dashboard row recognisable: Chutes' `username`, else the
    /// standard `preferred_username`, else the subject.
    pub fn label(self) -> Option<String> {
        [self.username, self.preferred_username, self.sub].into_iter().flatten().find(|n| !n.trim().is_empty())
    }
}

/// A PKCE pair: the verifier stays with us, the challenge goes to the authorize URL.
pub struct Pkce {
    pub verifier: SecretString,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let challenge = pkce_challenge(&verifier);
    Pkce { verifier: SecretString::from(verifier), challenge }
}

pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

impl ChutesClient {
    /// The client for the Chutes the settings name (IdP and inference bases, OAuth client,
    /// its authentication method and scopes).
    pub fn new(http: reqwest::Client, settings: &crate::config::Settings, timeout: Duration) -> Self {
        ChutesClient {
            http,
            api_base: settings.chutes_api_base.trim_end_matches('/').to_owned(),
            llm_base: settings.chutes_llm_base.trim_end_matches('/').to_owned(),
            client_id: settings.chutes_client_id.clone(),
            client_secret: settings.chutes_client_secret.clone(),
            client_auth: settings.chutes_client_auth,
            scopes: settings.chutes_scopes.clone(),
            timeout,
        }
    }

    pub fn llm_base(&self) -> &str {
        &self.llm_base
    }

    /// The scopes the consent page asks for (space-separated).
    pub fn scopes(&self) -> &str {
        &self.scopes
    }

    /// Where the browser goes to consent.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        let mut url = url::Url::parse(&format!("{}/idp/authorize", self.api_base)).expect("base URL was validated at start-up");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.scopes)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// POSTs a form to the IdP with this service's client credentials (a confidential client),
    /// in the body or as HTTP Basic as configured.
    async fn post_client_form(&self, path: &str, form: &[(&str, &str)]) -> Result<reqwest::Response, ProviderError> {
        let mut request = self.http.post(format!("{}{path}", self.api_base));
        // Built in a block of its own: the serializer is not Send, so it must be gone before the await.
        let body = {
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            body.extend_pairs(form.iter().copied());
            if self.client_auth == ChutesClientAuth::Post {
                body.append_pair("client_id", &self.client_id).append_pair("client_secret", self.client_secret.expose_secret());
            }
            body.finish()
        };
        if self.client_auth == ChutesClientAuth::Basic {
            let authorization = SecretString::from(basic_authorization(&self.client_id, &self.client_secret));
            let mut value = reqwest::header::HeaderValue::from_str(authorization.expose_secret()).expect("base64 is a valid header value");
            // Keeps the credential out of any debug print of the request.
            value.set_sensitive(true);
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        request
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(Provider::Chutes, self.timeout, e))
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet, ProviderError> {
        let response = self.post_client_form("/idp/token", form).await?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(token_error(status, &response.text().await.unwrap_or_default()));
        }
        let answer: TokenAnswer = response.json().await.map_err(|_| ProviderError::Malformed { provider: NAME })?;
        Ok(TokenSet {
            access_token: SecretString::from(answer.access_token),
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()).map(SecretString::from),
            expires_in: answer.expires_in.unwrap_or(3600),
        })
    }

    pub async fn exchange_code(&self, code: &str, code_verifier: &SecretString, redirect_uri: &str) -> Result<TokenSet, ProviderError> {
        observe(Provider::Chutes, "exchange_code", async {
            self.token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier.expose_secret()),
            ])
            .await
        })
        .await
    }

    /// Spends `refresh_token` and answers its successor, if the server rotates: store the new
    /// one before anything else.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet, ProviderError> {
        observe(Provider::Chutes, "refresh", async {
            self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())]).await
        })
        .await
    }

    pub async fn revoke(&self, token: &SecretString) -> Result<(), ProviderError> {
        observe(Provider::Chutes, "revoke", async {
            let response = self.post_client_form("/idp/token/revoke", &[("token", token.expose_secret())]).await?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                return Ok(());
            }
            match token_error(status, &response.text().await.unwrap_or_default()) {
                // Already dead: revoking it again is done.
                ProviderError::InvalidGrant { .. } => Ok(()),
                e => Err(e),
            }
        })
        .await
    }

    /// The cheapest proof that an access token can spend: a one-token completion.
    pub async fn preflight(&self, access_token: &SecretString, model: &str) -> Result<(), ProviderError> {
        observe(Provider::Chutes, "preflight", async {
            let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1});
            let response = self
                .http
                .post(format!("{}/chat/completions", self.llm_base))
                .bearer_auth(access_token.expose_secret())
                .json(&body)
                .send()
                .await
                .map_err(|e| ProviderError::from_reqwest(Provider::Chutes, self.timeout, e))?;
            if response.status().is_success() {
                return Ok(());
            }
            Err(bearer_error(response).await)
        })
        .await
    }

    pub async fn userinfo(&self, access_token: &SecretString) -> Result<UserInfo, ProviderError> {
        observe(Provider::Chutes, "userinfo", async {
            let response = self
                .http
                .get(format!("{}/idp/userinfo", self.api_base))
                .bearer_auth(access_token.expose_secret())
                .send()
                .await
                .map_err(|e| ProviderError::from_reqwest(Provider::Chutes, self.timeout, e))?;
            if !response.status().is_success() {
                return Err(bearer_error(response).await);
            }
            response.json().await.map_err(|_| ProviderError::Malformed { provider: NAME })
        })
        .await
    }
}

/// `Authorization: Basic` for RFC 6749 section 2.3.1: id and secret each form-urlencoded,
/// then joined by a colon and base64-encoded.
fn basic_authorization(client_id: &str, client_secret: &SecretString) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(client_id), encode(client_secret.expose_secret()));
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// A refused bearer request: RFC 6750's `insufficient_scope` (in `WWW-Authenticate` or the
/// body) says the grant lacks a scope, which is not a bad credential; the rest is Chutes'
/// inference error shape.
async fn bearer_error(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("insufficient_scope"));
    let body = response.text().await.unwrap_or_default();
    if status == 403 && (challenge || is_insufficient_scope_body(&body)) {
        return ProviderError::InsufficientScope { provider: NAME };
    }
    inference_error(status, &body)
}

fn is_insufficient_scope_body(body: &str) -> bool {
    serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("error").and_then(Value::as_str).map(|e| e == "insufficient_scope"))
        == Some(true)
}

/// Errors of `/idp/token`: 400 `{"error": "invalid_grant" | ...}`.
pub fn token_error(status: u16, body: &str) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str).unwrap_or("");
    match (status, code) {
        (_, "invalid_grant") => ProviderError::InvalidGrant { provider: NAME },
        (401, _) | (_, "invalid_client") => {
            tracing::error!("Chutes refused this service's client credentials: check ORO_CHUTES_CLIENT_ID and ORO_CHUTES_CLIENT_SECRET");
            ProviderError::Refused {
                provider: NAME,
                status: 502,
                detail: "Chutes refused this service's client credentials; the operator must fix the configuration".into(),
            }
        }
        (429, _) => ProviderError::RateLimited { provider: NAME },
        (500..=599, _) => ProviderError::Unavailable { provider: NAME, status },
        _ => {
            ProviderError::Refused { provider: NAME, status, detail: if code.is_empty() { format!("HTTP {status}") } else { scrub(code) } }
        }
    }
}

/// Errors of the inference API: 402 `{"detail":{"message":"Quota exceeded and account balance is $0.0 ..."}}`,
/// 429 `{"detail":"infra_overload"}`.
pub fn inference_error(status: u16, body: &str) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let detail = parsed.as_ref().and_then(|v| v.get("detail"));
    let message = detail
        .and_then(|d| d.get("message").and_then(Value::as_str).or_else(|| d.as_str()))
        .map(scrub)
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 | 403 => ProviderError::Unauthorized { provider: NAME },
        402 => ProviderError::NoCredits { provider: NAME, detail: format!("no credits: {message}"), limit_source: None },
        429 => ProviderError::RateLimited { provider: NAME },
        500..=599 => ProviderError::Unavailable { provider: NAME, status },
        _ => ProviderError::Refused { provider: NAME, status, detail: message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_s256_and_well_formed() {
        let p = pkce();
        assert!(is_valid_code_verifier(p.verifier.expose_secret()));
        assert_eq!(p.challenge, pkce_challenge(p.verifier.expose_secret()));
        // RFC 7636 appendix B.
        assert_eq!(pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!is_valid_code_verifier("short"));
        assert!(!is_valid_code_verifier(&"a".repeat(129)));
    }

    #[test]
    fn errors_map() {
        assert!(matches!(token_error(400, r#"{"error":"invalid_grant"}"#), ProviderError::InvalidGrant { .. }));
        assert!(matches!(token_error(503, ""), ProviderError::Unavailable { .. }));
        let e = inference_error(402, r#"{"detail":{"message":"Quota exceeded and account balance is $0.0, please pay"}}"#);
        assert!(e.to_string().contains("no credits"), "{e}");
        assert!(matches!(inference_error(429, r#"{"detail":"infra_overload"}"#), ProviderError::RateLimited { .. }));
        assert!(is_insufficient_scope_body(r#"{"error":"insufficient_scope","error_description":"requires profile"}"#));
        assert!(!is_insufficient_scope_body(r#"{"detail":"Invalid token."}"#));
        let e = ProviderError::InsufficientScope { provider: NAME }.to_string();
        assert_eq!(e, "Chutes refused the request: the grant lacks a scope (insufficient_scope)");
    }

    #[test]
    fn the_label_falls_back_to_standard_claims() {
        let info = |json: &str| serde_json::from_str::<UserInfo>(json).unwrap().label();
        assert_eq!(info(r#"{"sub":"s-1","username":"alice","preferred_username":"al"}"#).as_deref(), Some("alice"));
        assert_eq!(info(r#"{"sub":"s-1","preferred_username":"al"}"#).as_deref(), Some("al"));
        assert_eq!(info(r#"{"sub":"s-1","username":""}"#).as_deref(), Some("s-1"));
        assert_eq!(info(r#"{}"#), None);
    }

    #[test]
    fn basic_authorization_form_encodes_then_base64s() {
        // RFC 6749 section 2.3.1: "a b" becomes "a+b" and ":" becomes "%3A" before base64.
        let header = basic_authorization("a b", &SecretString::from("s:e%cret".to_owned()));
        let decoded = base64::engine::general_purpose::STANDARD.decode(header.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "a+b:s%3Ae%25cret");
    }
}
