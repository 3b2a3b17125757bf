//! A hotkey with its sr25519 keypair, signing as a Bittensor wallet does. Shared by the API
//! tests (`api/helpers.rs`) and the deployment test (`deploy/`) through `#[path]`; each uses
//! part of it.
#![allow(dead_code)]

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};

#[derive(Clone)]
pub struct TestWallet {
    pub pair: Keypair,
    pub hotkey: String,
}

impl TestWallet {
    pub fn new() -> Self {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let pair = MiniSecretKey::from_bytes(&seed).unwrap().expand_to_keypair(ExpansionMode::Ed25519);
        let hotkey = wire::ss58::encode(&pair.public.to_bytes());
        TestWallet { pair, hotkey }
    }

    pub fn sign(&self, message: &[u8]) -> String {
        format!("0x{}", hex::encode(self.pair.sign_simple(b"substrate", message).to_bytes()))
    }

    /// The four signed-request headers for a given timestamp and nonce.
    pub fn headers_at(&self, timestamp: i64, nonce: &str) -> Vec<(&'static str, String)> {
        let message = wire::signing::request_message(&self.hotkey, &timestamp.to_string(), nonce);
        vec![
            ("X-Hotkey", self.hotkey.clone()),
            ("X-Timestamp", timestamp.to_string()),
            ("X-Nonce", nonce.to_string()),
            ("X-Signature", self.sign(message.as_bytes())),
        ]
    }

    /// The four signed-request headers, now, with a fresh nonce.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.headers_at(service::clock::system_now(), &uuid::Uuid::new_v4().to_string())
    }

    /// `request` with the four signed-request headers.
    pub fn sign_request(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        self.headers().into_iter().fold(request, |r, (name, value)| r.header(name, value))
    }
}
