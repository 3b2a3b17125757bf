//! Presigned agent-code links. ORO's validator downloads `code_download_url` with a plain,
//! unsigned GET (ORO's own backend hands out a presigned storage URL), so the link itself
//! must be the credential: an HMAC over the run, its agent version, the validator holding it
//! and an expiry. The key is derived from the vault's master keys, so every replica with the
//! key file checks what any replica signed, and a master-key rotation keeps links already
//! handed out valid until they expire.
//!
//! The link names the run; the check recomputes the MAC from the run's row as it is now, so a
//! link stops working as soon as the run is reaped, completed or handed to another validator.

use hmac::Mac;
use secrecy::{ExposeSecret, SecretBox};

type Hmac = hmac::Hmac<sha2::Sha256>;

const LABEL: &str = "oro-inference code-download-url v1";

pub struct CodeUrlSigner {
    /// One key per master key, the current one last.
    keys: Vec<SecretBox<[u8; 32]>>,
}

/// What a link vouches for.
pub struct CodeGrant<'a> {
    pub run_id: &'a str,
    pub agent_version_id: &'a str,
    pub validator: &'a str,
    pub expires: i64,
}

impl CodeUrlSigner {
    pub fn new(masters: &crate::vault::MasterKeys) -> Self {
        CodeUrlSigner { keys: masters.derive(LABEL) }
    }

    fn mac(key: &SecretBox<[u8; 32]>, grant: &CodeGrant<'_>) -> Hmac {
        let mut mac = <Hmac as Mac>::new_from_slice(key.expose_secret()).expect("HMAC takes any key length");
        // Length-prefixed fields: no two different grants share a text.
        for field in [grant.run_id, grant.agent_version_id, grant.validator, &grant.expires.to_string()] {
            Mac::update(&mut mac, &(field.len() as u32).to_be_bytes());
            Mac::update(&mut mac, field.as_bytes());
        }
        mac
    }

    /// The `sig` query value for a grant, with the current key.
    pub fn sign(&self, grant: &CodeGrant<'_>) -> String {
        let key = self.keys.last().expect("at least one master key");
        hex::encode(Self::mac(key, grant).finalize().into_bytes())
    }

    /// Whether `sig` was made for exactly this grant by any loaded key (compared in constant time).
    pub fn verify(&self, grant: &CodeGrant<'_>, sig: &str) -> bool {
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.keys.iter().any(|key| Self::mac(key, grant).verify_slice(&sig).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CodeUrlSigner {
        let dir = std::env::temp_dir().join(format!("oro-code-url-{}", uuid::Uuid::new_v4().simple()));
        let masters = crate::vault::MasterKeys::load(&dir.join("master.key"), true).unwrap();
        let signer = CodeUrlSigner::new(&masters);
        let _ = std::fs::remove_dir_all(dir);
        signer
    }

    #[test]
    fn a_link_opens_only_its_own_grant() {
        let signer = signer();
        let grant = CodeGrant { run_id: "r1", agent_version_id: "v1", validator: "5Val", expires: 1_900_000_000 };
        let sig = signer.sign(&grant);
        assert!(signer.verify(&grant, &sig));
        for other in [
            CodeGrant { run_id: "r2", ..grant },
            CodeGrant { agent_version_id: "v2", ..grant },
            CodeGrant { validator: "5Other", ..grant },
            CodeGrant { expires: grant.expires + 1, ..grant },
        ] {
            assert!(!signer.verify(&other, &sig));
        }
        assert!(!signer.verify(&grant, "zz"));
        assert!(!signer.verify(&grant, &sig[..sig.len() - 2]));
        // Another deployment's key never verifies ours.
        assert!(!self::signer().verify(&grant, &sig));
    }
}
