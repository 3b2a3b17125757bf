//! OpenRouter: a miner's **management** key stays with us; every run gets its own key minted
//! with `POST /keys`, capped in USD and expiring, so a stolen run key burns at most its cap.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wire::Provider;

use super::observe;
use super::{ProviderError, scrub};

const NAME: &str = "OpenRouter";

#[derive(Clone)]
pub struct OpenRouterClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

/// `GET /key`'s answer, the parts we use.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyInfo {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub limit: Option<f64>,
    #[serde(default)]
    pub limit_remaining: Option<f64>,
    #[serde(default)]
    pub usage: f64,
    #[serde(default)]
    pub is_free_tier: bool,
    /// OpenRouter has called management keys "provisioning keys" and may send either field,
    /// or both (so not a serde alias, which refuses a body that has both).
    #[serde(default)]
    is_management_key: Option<bool>,
    #[serde(default)]
    is_provisioning_key: Option<bool>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl KeyInfo {
    pub fn is_management_key(&self) -> bool {
        self.is_management_key.or(self.is_provisioning_key).unwrap_or(false)
    }
}

/// A key object from `/keys`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyObject {
    pub hash: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub limit: Option<f64>,
    #[serde(default)]
    pub usage: f64,
    #[serde(default)]
    pub expires_at: Option<String>,
}

pub struct MintedKey {
    pub hash: String,
    pub key: SecretString,
}

#[derive(Serialize)]
struct CreateKey<'a> {
    name: &'a str,
    limit: f64,
    limit_reset: Option<&'a str>,
    include_byok_in_limit: bool,
    expires_at: &'a str,
}

#[derive(Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Deserialize)]
struct Created {
    data: KeyObject,
    key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Credits {
    pub total_credits: f64,
    pub total_usage: f64,
}

impl OpenRouterClient {
    pub fn new(http: reqwest::Client, base: &str, timeout: Duration) -> Self {
        OpenRouterClient { http, base: base.trim_end_matches('/').to_owned(), timeout }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: reqwest::RequestBuilder, key: &SecretString) -> Result<reqwest::Response, ProviderError> {
        let response = request
            .bearer_auth(key.expose_secret())
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(Provider::OpenRouter, self.timeout, e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from(response.status().as_u16(), &response.text().await.unwrap_or_default()))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, ProviderError> {
        response.json::<T>().await.map_err(|_| ProviderError::Malformed { provider: NAME })
    }

    /// What kind of key this is, and whether it is alive.
    pub async fn key_info(&self, key: &SecretString) -> Result<KeyInfo, ProviderError> {
        observe(Provider::OpenRouter, "key_info", async {
            let response = self.send(self.http.get(format!("{}/key", self.base)), key).await?;
            Ok(self.json::<Data<KeyInfo>>(response).await?.data)
        })
        .await
    }

    /// Mints a per-run key: `limit` USD, expiring at `expires_at` (RFC 3339, UTC).
    pub async fn create_key(
        &self,
        management_key: &SecretString,
        name: &str,
        limit_usd: f64,
        expires_at_utc: &str,
    ) -> Result<MintedKey, ProviderError> {
        observe(Provider::OpenRouter, "create_key", async {
            let body = CreateKey { name, limit: limit_usd, limit_reset: None, include_byok_in_limit: true, expires_at: expires_at_utc };
            let response = self.send(self.http.post(format!("{}/keys", self.base)).json(&body), management_key).await?;
            let created: Created = self.json(response).await?;
            Ok(MintedKey { hash: created.data.hash, key: SecretString::from(created.key) })
        })
        .await
    }

    pub async fn get_key(&self, management_key: &SecretString, hash: &str) -> Result<KeyObject, ProviderError> {
        observe(Provider::OpenRouter, "get_key", async {
            let response = self.send(self.http.get(format!("{}/keys/{}", self.base, urlencode(hash))), management_key).await?;
            Ok(self.json::<Data<KeyObject>>(response).await?.data)
        })
        .await
    }

    /// Disables (never deletes) a minted key: the miner keeps seeing its spend.
    pub async fn disable_key(&self, management_key: &SecretString, hash: &str) -> Result<(), ProviderError> {
        observe(Provider::OpenRouter, "disable_key", async {
            let body = serde_json::json!({"disabled": true});
            match self.send(self.http.patch(format!("{}/keys/{}", self.base, urlencode(hash))).json(&body), management_key).await {
                Ok(_) => Ok(()),
                // Already gone at OpenRouter: nothing left to disable.
                Err(ProviderError::Refused { status: 404, .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// The live keys this management key minted (the first page, oldest first: enough to find
    /// a run's key moments after it was minted).
    pub async fn list_keys(&self, management_key: &SecretString) -> Result<Vec<KeyObject>, ProviderError> {
        observe(Provider::OpenRouter, "list_keys", async {
            let response = self.send(self.http.get(format!("{}/keys", self.base)), management_key).await?;
            Ok(self.json::<Data<Vec<KeyObject>>>(response).await?.data)
        })
        .await
    }

    pub async fn credits(&self, management_key: &SecretString) -> Result<Credits, ProviderError> {
        observe(Provider::OpenRouter, "credits", async {
            let response = self.send(self.http.get(format!("{}/credits", self.base)), management_key).await?;
            Ok(self.json::<Data<Credits>>(response).await?.data)
        })
        .await
    }
}

fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// `{error:{code, message, metadata}}` with the HTTP status = code.
pub fn error_from(status: u16, body: &str) -> ProviderError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str).map(scrub).unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 | 403 => ProviderError::Unauthorized { provider: NAME },
        402 => {
            let limit_source =
                error.and_then(|e| e.get("metadata")).and_then(|m| m.get("limit_source")).and_then(Value::as_str).map(str::to_owned);
            let detail = match limit_source.as_deref() {
                Some("openrouter_key_limit") => "insufficient balance: the per-run key reached its USD cap".to_owned(),
                Some("openrouter_in_flight_budget") => "insufficient balance: the in-flight budget is used up".to_owned(),
                _ => "insufficient balance: the OpenRouter account has no credits left".to_owned(),
            };
            ProviderError::NoCredits { provider: NAME, detail, limit_source }
        }
        429 => ProviderError::RateLimited { provider: NAME },
        500..=599 => ProviderError::Unavailable { provider: NAME, status },
        _ => ProviderError::Refused { provider: NAME, status, detail: message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_info_reads_either_name_for_management_keys() {
        let both: KeyInfo = serde_json::from_str(r#"{"usage":0.0,"is_management_key":true,"is_provisioning_key":true}"#).unwrap();
        assert!(both.is_management_key());
        let old: KeyInfo = serde_json::from_str(r#"{"usage":0.0,"is_provisioning_key":true}"#).unwrap();
        assert!(old.is_management_key());
        let inference: KeyInfo = serde_json::from_str(r#"{"usage":1.5,"limit":null}"#).unwrap();
        assert!(!inference.is_management_key());
    }

    #[test]
    fn errors_map_by_status_and_limit_source() {
        let e =
            error_from(402, r#"{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}"#);
        match e {
            ProviderError::NoCredits { limit_source, detail, .. } => {
                assert_eq!(limit_source.as_deref(), Some("openrouter_credits"));
                assert!(detail.contains("insufficient balance"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(error_from(401, "{}"), ProviderError::Unauthorized { .. }));
        assert!(matches!(error_from(429, "{}"), ProviderError::RateLimited { .. }));
        assert!(matches!(error_from(503, "<html>"), ProviderError::Unavailable { status: 503, .. }));
        assert!(matches!(
            error_from(404, r#"{"error":{"code":404,"message":"Key not found"}}"#),
            ProviderError::Refused { status: 404, .. }
        ));
    }
}
