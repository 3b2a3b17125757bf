//! SS58 addresses (Substrate's account format), as Bittensor uses them: prefix 42, 32-byte
//! public key, two checksum bytes from blake2b-512("SS58PRE" || prefix || key).

use blake2::{Blake2b512, Digest};

/// Bittensor's (and generic Substrate's) network prefix.
pub const BITTENSOR_PREFIX: u8 = 42;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ss58Error {
    #[error("not base58")]
    NotBase58,
    #[error("wrong length: an SS58 address with prefix 42 decodes to 35 bytes")]
    WrongLength,
    #[error("wrong network prefix {0}: expected 42 (Bittensor)")]
    WrongPrefix(u8),
    #[error("bad checksum")]
    BadChecksum,
    /// The identity point: schnorrkel accepts it as a key, and then one constant signature
    /// verifies for every message. No wallet has it; refusing it is the whole defence.
    #[error("not a usable public key (the identity point)")]
    IdentityKey,
}

fn checksum(body: &[u8]) -> [u8; 2] {
    let mut hasher = Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(body);
    let digest = hasher.finalize();
    [digest[0], digest[1]]
}

/// Decodes an SS58 address with prefix 42 into its 32-byte public key.
pub fn decode(address: &str) -> Result<[u8; 32], Ss58Error> {
    if address.len() > 64 {
        return Err(Ss58Error::WrongLength);
    }
    let bytes = bs58::decode(address).into_vec().map_err(|_| Ss58Error::NotBase58)?;
    if bytes.len() != 35 {
        return Err(Ss58Error::WrongLength);
    }
    if bytes[0] != BITTENSOR_PREFIX {
        return Err(Ss58Error::WrongPrefix(bytes[0]));
    }
    if checksum(&bytes[..33]) != bytes[33..35] {
        return Err(Ss58Error::BadChecksum);
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[1..33]);
    Ok(key)
}

/// Encodes a 32-byte public key as an SS58 address with prefix 42.
pub fn encode(public_key: &[u8; 32]) -> String {
    let mut bytes = Vec::with_capacity(35);
    bytes.push(BITTENSOR_PREFIX);
    bytes.extend_from_slice(public_key);
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum);
    bs58::encode(bytes).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Alice's well-known development key (//Alice, sr25519).
    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    const ALICE_HEX: &str = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

    #[test]
    fn decodes_and_encodes_a_known_address() {
        let key = decode(ALICE).unwrap();
        let mut hex = String::new();
        for b in key {
            hex.push_str(&format!("{b:02x}"));
        }
        assert_eq!(hex, ALICE_HEX);
        assert_eq!(encode(&key), ALICE);
    }

    #[test]
    fn refuses_bad_addresses() {
        assert_eq!(decode("not-base58-0OIl"), Err(Ss58Error::NotBase58));
        assert_eq!(decode("5Grwva"), Err(Ss58Error::WrongLength));
        // Flip one character: the checksum (or the base58 length) no longer fits.
        let mut bad = ALICE.to_string();
        bad.replace_range(10..11, if &ALICE[10..11] == "a" { "b" } else { "a" });
        assert!(decode(&bad).is_err());
        // Same key under Polkadot's prefix 0.
        let mut body = vec![0u8];
        body.extend_from_slice(&decode(ALICE).unwrap());
        let sum = checksum(&body);
        body.extend_from_slice(&sum);
        let polkadot = bs58::encode(body).into_string();
        assert_eq!(decode(&polkadot), Err(Ss58Error::WrongPrefix(0)));
    }
}
