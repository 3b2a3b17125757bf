//! The vault's ciphertext decoder on arbitrary bytes, and opening them with a real vault.
//! Nothing may panic; whatever opens is exactly what the vault writes, so that no byte of it
//! can change (or be cut off, or added) and still open; and a value sealed here stops opening
//! after any one change.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oro_fuzz::vault_fixture;
use secrecy::{ExposeSecret, SecretString};
use service::vault::{Vault, VaultError, parse_envelope};

static VAULT: LazyLock<Vault> = LazyLock::new(vault_fixture::open);
static CONTEXT: LazyLock<String> = LazyLock::new(vault_fixture::context);

/// version(1) | data key id(32 ASCII hex)
const HEADER_LEN: usize = 1 + 32;
/// ... | nonce(24) | ciphertext | tag(16)
const OVERHEAD: usize = HEADER_LEN + 24 + 16;

fuzz_target!(|data: &[u8]| {
    match parse_envelope(data) {
        Ok(envelope) => {
            assert!(data.len() >= OVERHEAD && data[0] == 1);
            assert_eq!(envelope.data_key_id.as_bytes(), &data[1..HEADER_LEN]);
            assert!(envelope.data_key_id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(envelope.sealed, &data[HEADER_LEN..]);
        }
        Err(refused) => assert!(matches!(refused, VaultError::Malformed), "{refused}"),
    }

    open_and_check(data);
    // The same bytes behind this vault's own header, so that they reach the AEAD.
    open_and_check(&[&[1u8][..], vault_fixture::DATA_KEY_ID.as_bytes(), data].concat());

    // Seal the input's tail, change one byte (or cut the ciphertext short): it must not open.
    if let [low, high, change, secret @ ..] = data {
        let secret = String::from_utf8_lossy(secret).into_owned();
        let sealed = VAULT.seal(&CONTEXT, &SecretString::from(secret.clone()));
        assert_eq!(VAULT.open_sealed(&CONTEXT, &sealed).expect("opens what it sealed").expose_secret(), secret);
        let index = usize::from(u16::from_le_bytes([*low, *high])) % sealed.len();
        let mut changed = sealed;
        match change {
            0 => changed.truncate(index),
            bits => changed[index] ^= bits,
        }
        assert!(VAULT.open_sealed(&CONTEXT, &changed).is_err(), "opened after changing byte {index} with {change:#04x}");
    }
});

/// Opening refuses with one of the ciphertext errors, or opens a ciphertext that is exactly
/// what `seal` writes. Only genuine ciphertexts of the fixture (the seeds, and what the fuzzer
/// keeps of them) get that far, so for those, every one-byte change must be refused too.
fn open_and_check(ciphertext: &[u8]) {
    match VAULT.open_sealed(&CONTEXT, ciphertext) {
        Ok(secret) => {
            assert_eq!(ciphertext.len(), OVERHEAD + secret.expose_secret().len(), "bytes beyond the sealed value");
            assert_eq!(&ciphertext[1..HEADER_LEN], vault_fixture::DATA_KEY_ID.as_bytes());
            let mut changed = ciphertext.to_vec();
            for index in 0..changed.len() {
                changed[index] ^= 0x01;
                assert!(VAULT.open_sealed(&CONTEXT, &changed).is_err(), "opened with bit 0 of byte {index} flipped");
                changed[index] ^= 0x01;
            }
            assert!(VAULT.open_sealed(&CONTEXT, &ciphertext[..ciphertext.len() - 1]).is_err(), "opened cut short");
            assert!(VAULT.open_sealed(&CONTEXT, &[ciphertext, &[0]].concat()).is_err(), "opened with a byte added");
        }
        Err(refused) => assert!(
            matches!(refused, VaultError::Malformed | VaultError::UnknownDataKey | VaultError::DoesNotOpen),
            "{refused}"
        ),
    }
}
