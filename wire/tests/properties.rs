//! Property tests for the texts the auth rules rest on: SS58 addresses and the sign-in
//! message. The fuzz targets (`fuzz/`) throw arbitrary bytes at the same parsers; these
//! check the round trips over well-formed values, with few enough cases to run in seconds.

use proptest::prelude::*;
use wire::signing::SignInMessage;
use wire::ss58;

/// The 58 characters of the Bitcoin base58 alphabet that SS58 uses.
const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    /// Every key has one address: 48 characters, starting with '5' (prefix 42 fixes the top
    /// digits), which decodes back to it.
    #[test]
    fn ss58_round_trips(key in any::<[u8; 32]>()) {
        let address = ss58::encode(&key);
        prop_assert_eq!(address.len(), 48);
        prop_assert!(address.starts_with('5'), "{}", address);
        prop_assert_eq!(ss58::decode(&address), Ok(key));
    }

    /// The two checksum bytes refuse a mistyped address, except that 1 substitution in 65536
    /// lands on another valid address by chance. Base58 is one-to-one, so that one is another
    /// key's canonical address and never decodes to the original key.
    #[test]
    fn ss58_refuses_a_single_character_change(key in any::<[u8; 32]>(), position in any::<prop::sample::Index>(), shift in 1..BASE58.len()) {
        let address = ss58::encode(&key);
        let position = position.index(address.len());
        let old = BASE58.iter().position(|&c| c == address.as_bytes()[position]).expect("base58 character");
        let new = BASE58[(old + shift) % BASE58.len()] as char;
        let mut corrupted = address.clone();
        corrupted.replace_range(position..position + 1, new.encode_utf8(&mut [0; 4]));
        match ss58::decode(&corrupted) {
            Err(_) => {}
            Ok(other) => {
                prop_assert_ne!(other, key);
                prop_assert_eq!(ss58::encode(&other), corrupted);
            }
        }
    }

    #[test]
    fn ss58_never_accepts_another_length(key in any::<[u8; 32]>(), cut in 1usize..8) {
        let address = ss58::encode(&key);
        let shorter = &address[..address.len() - cut];
        let longer = format!("{address}{}", &address[..cut]);
        prop_assert_eq!(ss58::decode(shorter), Err(ss58::Ss58Error::WrongLength));
        prop_assert_eq!(ss58::decode(&longer), Err(ss58::Ss58Error::WrongLength));
    }

    #[test]
    fn sign_in_message_round_trips(message in sign_in_message("[^\n]{0,64}")) {
        let text = message.to_text();
        let parsed = SignInMessage::parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&message));
        prop_assert_eq!(parsed.unwrap().to_text(), text);
    }

    /// A newline in any field shifts the layout: the text either does not parse or parses into
    /// a different message, never back into this one.
    #[test]
    fn sign_in_message_field_with_a_newline_does_not_round_trip(
        message in sign_in_message("[^\n]{0,32}"),
        field in 0usize..8,
        before in "[^\n]{0,8}",
        after in "[^\n]{0,8}",
    ) {
        let mut message = message;
        let text = field_mut(&mut message, field);
        *text = format!("{before}\n{after}");
        prop_assert_ne!(SignInMessage::parse(&message.to_text()), Ok(message));
    }
}

fn sign_in_message(field: &'static str) -> impl Strategy<Value = SignInMessage> {
    prop::collection::vec(field, 8).prop_map(|mut fields| {
        let mut next = || fields.remove(0);
        SignInMessage {
            domain: next(),
            address: next(),
            statement: next(),
            uri: next(),
            version: next(),
            nonce: next(),
            issued_at: next(),
            expiration_time: next(),
        }
    })
}

fn field_mut(message: &mut SignInMessage, index: usize) -> &mut String {
    match index {
        0 => &mut message.domain,
        1 => &mut message.address,
        2 => &mut message.statement,
        3 => &mut message.uri,
        4 => &mut message.version,
        5 => &mut message.nonce,
        6 => &mut message.issued_at,
        _ => &mut message.expiration_time,
    }
}
