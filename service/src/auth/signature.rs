//! sr25519 verification as Substrate wallets sign: context `substrate`, over the bare message
//! or its `<Bytes>`-wrapped form.

use schnorrkel::{PublicKey, Signature};

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
    let Ok(key) = PublicKey::from_bytes(public_key) else {
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
