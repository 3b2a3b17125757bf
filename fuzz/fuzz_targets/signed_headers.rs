//! The signed-request header check (`auth::signed_request::check`) on arbitrary header values.
//! It must never panic, every refusal is a 401, and whatever it accepts is what was signed:
//! the hotkey is the canonical SS58 text of its key, the nonce fits the replay table, and the
//! timestamp is inside the window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oro_fuzz::SignedCase;
use service::auth::signed_request::check;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let case = SignedCase::parse(&text);
    match check(case.skew_secs, &case.headers(), case.now) {
        Ok(verified) => {
            let hotkey_header = case.hotkey.expect("accepted without X-Hotkey");
            assert_eq!(verified.hotkey.as_str(), hotkey_header.trim());
            assert_eq!(wire::ss58::encode(verified.hotkey.public_key()), verified.hotkey.as_str());
            assert_eq!(Some(verified.nonce), case.nonce);
            assert!((1..=256).contains(&verified.nonce.len()), "nonce length {}", verified.nonce.len());
            assert!(verified.nonce.bytes().all(|b| b.is_ascii_graphic()), "nonce {:?}", verified.nonce);
            assert!((verified.timestamp - case.now).abs() <= case.skew_secs, "timestamp {} now {}", verified.timestamp, case.now);
        }
        Err(refused) => assert_eq!(refused.failure(), service::failure::Failure::Unauthenticated, "{refused}"),
    }
});
