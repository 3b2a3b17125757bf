//! The sign-in message parser on arbitrary text. It must never panic, and what it accepts must
//! be exactly the text `to_text` writes for the parsed message: the server checks the parsed
//! fields while the wallet signed the text, so the two must not be able to differ.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::signing::SignInMessage;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(message) = SignInMessage::parse(&text) {
        let written = message.to_text();
        assert_eq!(written, text);
        assert_eq!(SignInMessage::parse(&written), Ok(message));
    }
});
