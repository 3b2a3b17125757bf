//! SS58 decoding on arbitrary text. It must never panic, and an address it accepts must be the
//! canonical encoding of its key: were two texts to decode to one key, a ban or allowlist
//! entry keyed by the text could be sidestepped with the other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::ss58;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = ss58::decode(&text) {
        assert_eq!(ss58::encode(&key), text);
    }
    // Any 32 bytes encode to a 48-character address starting with '5' that decodes back.
    if let Some(key) = data.first_chunk::<32>() {
        let address = ss58::encode(key);
        assert_eq!(address.len(), 48, "{address}");
        assert!(address.starts_with('5'), "{address}");
        assert_eq!(ss58::decode(&address), Ok(*key));
    }
});
