//! sr25519 verification as Substrate wallets sign: context `substrate`, over the bare message
//! or its `<Bytes>`-wrapped form.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use schnorrkel::{PublicKey, Signature};

/// How many parsed keys are kept; past that the cache starts again (a flood of fresh keys then
/// costs what it cost without a cache, no more memory).
const KEYS_KEPT: usize = 16_384;

/// Public keys already parsed, by their bytes. Parsing decompresses a curve point (a square
/// root in the field), about a tenth of a verification, and the same few hundred hotkeys sign
/// every request. Only valid keys are kept; what a key parses to never changes, so a stale
/// entry cannot exist.
static PARSED_KEYS: LazyLock<RwLock<HashMap<[u8; 32], PublicKey>>> = LazyLock::new(|| RwLock::new(HashMap::new()));

fn parsed_key(bytes: &[u8; 32]) -> Option<PublicKey> {
    if let Some(key) = PARSED_KEYS.read().ok().and_then(|keys| keys.get(bytes).copied()) {
        return Some(key);
    }
    let key = PublicKey::from_bytes(bytes).ok()?;
    if let Ok(mut keys) = PARSED_KEYS.write() {
        remember(&mut keys, *bytes, key, KEYS_KEPT);
    }
    Some(key)
}

fn remember(keys: &mut HashMap<[u8; 32], PublicKey>, bytes: [u8; 32], key: PublicKey, kept: usize) {
    if keys.len() >= kept && !keys.contains_key(&bytes) {
        keys.clear();
    }
    keys.insert(bytes, key);
}

/// Parses `0x` + 128 hex digits (the `0x` is optional) into a 64-byte signature.
pub fn parse_signature_hex(text: &str) -> Option<[u8; 64]> {
    let hex_digits = text.strip_prefix("0x").unwrap_or(text);
    if hex_digits.len() != 128 {
        return None;
    }
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(hex_digits, &mut bytes).ok()?;
    Some(bytes)
}

/// The identity point's encoding (the only canonical one: ristretto255 refuses others).
pub fn is_identity(public_key: &[u8; 32]) -> bool {
    public_key.iter().all(|b| *b == 0)
}

/// True when `signature` is the hotkey's signature of `message` or of `<Bytes>message</Bytes>`.
/// Never for the identity key, whatever the signature.
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    if is_identity(public_key) {
        return false;
    }
    let Some(key) = parsed_key(public_key) else {
        return false;
    };
    let Ok(signature) = Signature::from_bytes(signature) else {
        return false;
    };
    key.verify_simple(b"substrate", message, &signature).is_ok()
        || key.verify_simple(b"substrate", &wire::signing::wrap_bytes(message), &signature).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use schnorrkel::{Keypair, MiniSecretKey};

    pub fn keypair(seed: u8) -> Keypair {
        MiniSecretKey::from_bytes(&[seed; 32]).unwrap().expand_to_keypair(schnorrkel::ExpansionMode::Ed25519)
    }

    pub fn sign_hex(pair: &Keypair, message: &[u8]) -> String {
        format!("0x{}", hex::encode(pair.sign_simple(b"substrate", message).to_bytes()))
    }

    #[test]
    fn verifies_bare_and_wrapped_and_refuses_others() {
        let pair = keypair(1);
        let public = pair.public.to_bytes();
        let bare = parse_signature_hex(&sign_hex(&pair, b"hello")).unwrap();
        let wrapped = parse_signature_hex(&sign_hex(&pair, b"<Bytes>hello</Bytes>")).unwrap();
        assert!(verify(&public, b"hello", &bare));
        assert!(verify(&public, b"hello", &wrapped));
        assert!(!verify(&public, b"hellO", &bare));
        assert!(!verify(&keypair(2).public.to_bytes(), b"hello", &bare));
        assert!(parse_signature_hex("0x1234").is_none());
    }

    #[test]
    fn parsed_keys_are_remembered_within_a_bound() {
        let pair = keypair(3);
        let public = pair.public.to_bytes();
        let signature = parse_signature_hex(&sign_hex(&pair, b"x")).unwrap();
        assert!(verify(&public, b"x", &signature));
        assert!(PARSED_KEYS.read().unwrap().contains_key(&public), "kept after the first use");
        assert!(verify(&public, b"x", &signature), "the kept key verifies as the parsed one did");
        assert!(!verify(&public, b"y", &signature));
        // Not a point's canonical encoding: refused, and not kept.
        let invalid = [0xff; 32];
        assert!(PublicKey::from_bytes(&invalid).is_err());
        assert!(!verify(&invalid, b"x", &signature));
        assert!(!PARSED_KEYS.read().unwrap().contains_key(&invalid));

        let mut keys = HashMap::new();
        for seed in 10..13 {
            remember(&mut keys, keypair(seed).public.to_bytes(), keypair(seed).public, 2);
            assert!(keys.len() <= 2, "never more than the bound");
        }
        assert_eq!(keys.len(), 1, "full: it started again with the newest key");
        remember(&mut keys, keypair(12).public.to_bytes(), keypair(12).public, 1);
        assert_eq!(keys.len(), 1, "a key already kept does not empty the cache");
    }

    #[test]
    fn the_identity_key_signs_nothing() {
        // schnorrkel alone accepts this pair for any message; we must not.
        let mut constant = [0u8; 64];
        constant[63] = 0x80;
        let zero = [0u8; 32];
        assert!(
            PublicKey::from_bytes(&zero)
                .unwrap()
                .verify_simple(b"substrate", b"anything", &Signature::from_bytes(&constant).unwrap())
                .is_ok()
        );
        assert!(!verify(&zero, b"anything", &constant));
        assert!(!verify(&zero, b"<Bytes>anything</Bytes>", &constant));
        let address = wire::ss58::encode(&zero);
        assert_eq!(address, "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM");
        assert_eq!(crate::domain::Hotkey::parse(&address).err(), Some(wire::ss58::Ss58Error::IdentityKey));
        assert!(parse_signature_hex(&format!("0x{}", "zz".repeat(64))).is_none());
    }
}
