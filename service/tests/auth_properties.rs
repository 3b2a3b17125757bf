//! Property tests for the signed-request rules (`auth::signed_request::check`): a header set
//! signed as the `oro` CLI signs it passes; a change to any one header fails with the error
//! that names it; the clock window and the header formats hold whatever the values.

use proptest::prelude::*;
use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};
use service::auth::AuthError;
use service::auth::signed_request::{SignedHeaders, check};

/// Realistic clocks: the server's `now` and skew are ours, not the caller's, so they are kept
/// to values a deployment can have (`now - skew` cannot overflow).
const NOW: std::ops::Range<i64> = 1_000_000_000..4_000_000_000;
const SKEW: std::ops::RangeInclusive<i64> = 1..=3600;

fn config() -> ProptestConfig {
    ProptestConfig { cases: 64, ..ProptestConfig::default() }
}

fn keypair(seed: [u8; 32]) -> Keypair {
    MiniSecretKey::from_bytes(&seed).expect("32 bytes").expand_to_keypair(ExpansionMode::Ed25519)
}

/// A header set as a client builds it, with the variations clients send: a fractional
/// timestamp, the signature with or without `0x`, the bare or the `<Bytes>`-wrapped message.
#[derive(Debug, Clone)]
struct Signed {
    hotkey: String,
    timestamp: String,
    nonce: String,
    signature: String,
}

impl Signed {
    fn new(pair: &Keypair, timestamp: &str, nonce: &str, wrapped: bool, prefixed: bool) -> Self {
        let hotkey = wire::ss58::encode(&pair.public.to_bytes());
        let message = wire::signing::request_message(&hotkey, timestamp, nonce);
        let signed_bytes = if wrapped { wire::signing::wrap_bytes(message.as_bytes()) } else { message.into_bytes() };
        let signature = hex::encode(pair.sign_simple(b"substrate", &signed_bytes).to_bytes());
        Signed {
            hotkey,
            timestamp: timestamp.to_owned(),
            nonce: nonce.to_owned(),
            signature: if prefixed { format!("0x{signature}") } else { signature },
        }
    }

    fn headers(&self) -> SignedHeaders<'_> {
        SignedHeaders {
            hotkey: Some(&self.hotkey),
            timestamp: Some(&self.timestamp),
            nonce: Some(&self.nonce),
            signature: Some(&self.signature),
        }
    }
}

fn timestamp_text(seconds: i64, fraction: Option<u16>) -> String {
    match fraction {
        Some(f) => format!("{seconds}.{f:03}"),
        None => seconds.to_string(),
    }
}

/// A valid nonce: 1 to 256 printable ASCII characters.
fn nonce() -> impl Strategy<Value = String> {
    "[!-~]{1,256}"
}

/// One header replaced by another well-formed value.
#[derive(Debug, Clone)]
enum Change {
    /// Another hotkey (a different seed).
    Hotkey([u8; 32]),
    /// Another timestamp inside the window, or the same second written differently.
    Timestamp {
        offset: i64,
        fraction: Option<u16>,
    },
    Nonce(String),
    /// One bit of the 64 signature bytes.
    SignatureBit(usize, u8),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(Change::Hotkey),
        (-1i64..=1, prop::option::of(0u16..1000)).prop_map(|(offset, fraction)| Change::Timestamp { offset, fraction }),
        nonce().prop_map(Change::Nonce),
        (0usize..64, 0u8..8).prop_map(|(byte, bit)| Change::SignatureBit(byte, bit)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_correctly_signed_header_set_passes(
        seed in any::<[u8; 32]>(),
        now in NOW,
        skew in SKEW,
        offset_per_mille in -1000i64..=1000,
        fraction in prop::option::of(0u16..1000),
        nonce in nonce(),
        wrapped in any::<bool>(),
        prefixed in any::<bool>(),
    ) {
        // A fractional timestamp floors, so `now + skew` itself may carry no fraction.
        let offset = (skew * offset_per_mille / 1000).min(skew - i64::from(fraction.is_some()));
        let timestamp = now + offset;
        let pair = keypair(seed);
        let signed = Signed::new(&pair, &timestamp_text(timestamp, fraction), &nonce, wrapped, prefixed);
        let verified = check(skew, &signed.headers(), now).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(verified.hotkey.as_str(), signed.hotkey.as_str());
        prop_assert_eq!(verified.hotkey.public_key(), &pair.public.to_bytes());
        prop_assert_eq!(verified.timestamp, timestamp);
        prop_assert_eq!(verified.nonce, nonce.as_str());
    }

    #[test]
    fn changing_any_one_header_breaks_the_signature(
        seed in any::<[u8; 32]>(),
        now in NOW,
        skew in SKEW,
        nonce in nonce(),
        change in change(),
    ) {
        let pair = keypair(seed);
        let signed = Signed::new(&pair, &now.to_string(), &nonce, false, true);
        let mut changed = signed.clone();
        match &change {
            Change::Hotkey(other) => {
                prop_assume!(*other != seed);
                changed.hotkey = wire::ss58::encode(&keypair(*other).public.to_bytes());
            }
            Change::Timestamp { offset, fraction } => {
                changed.timestamp = timestamp_text(now + offset, *fraction);
                prop_assume!(changed.timestamp != signed.timestamp);
            }
            Change::Nonce(other) => {
                prop_assume!(*other != nonce);
                changed.nonce = other.clone();
            }
            Change::SignatureBit(byte, bit) => {
                let mut bytes = hex::decode(&signed.signature[2..]).expect("hex");
                bytes[*byte] ^= 1 << bit;
                changed.signature = format!("0x{}", hex::encode(bytes));
            }
        }
        let result = check(skew, &changed.headers(), now);
        prop_assert!(matches!(result, Err(AuthError::BadSignature)), "{change:?} gave {result:?}");
    }

    /// The clock is checked before the signature: a correctly signed request outside the window
    /// is refused as stale or future, so the caller learns to fix their clock.
    #[test]
    fn timestamps_outside_the_skew_window_are_refused(
        seed in any::<[u8; 32]>(),
        now in NOW,
        skew in SKEW,
        beyond in 1i64..1_000_000,
        future in any::<bool>(),
        nonce in nonce(),
    ) {
        let timestamp = if future { now + skew + beyond } else { now - skew - beyond };
        let signed = Signed::new(&keypair(seed), &timestamp.to_string(), &nonce, false, true);
        let result = check(skew, &signed.headers(), now);
        if future {
            prop_assert!(matches!(result, Err(AuthError::FutureTimestamp(s)) if s == skew), "{result:?}");
        } else {
            prop_assert!(matches!(result, Err(AuthError::StaleTimestamp(s)) if s == skew), "{result:?}");
        }
    }

    /// A nonce the replay table could not hold (empty, over 256 bytes, spaces, control or
    /// non-ASCII characters) is refused even when the signature over it is good.
    #[test]
    fn malformed_nonces_are_refused_even_when_signed(
        seed in any::<[u8; 32]>(),
        now in NOW,
        nonce in prop_oneof![
            Just(String::new()),
            "[!-~]{257,300}",
            "[!-~]{0,20}[ \t\r\u{7f}\u{0}é☃][!-~]{0,20}",
        ],
    ) {
        let signed = Signed::new(&keypair(seed), &now.to_string(), &nonce, false, true);
        let result = check(60, &signed.headers(), now);
        prop_assert!(matches!(result, Err(AuthError::MalformedNonce)), "{result:?}");
    }

    /// Each absent header is named, whatever the others hold.
    #[test]
    fn a_missing_header_is_named(seed in any::<[u8; 32]>(), now in NOW, missing in 0usize..4) {
        let signed = Signed::new(&keypair(seed), &now.to_string(), "n-1", false, true);
        let mut headers = signed.headers();
        let name = match missing {
            0 => { headers.hotkey = None; "X-Hotkey" }
            1 => { headers.timestamp = None; "X-Timestamp" }
            2 => { headers.nonce = None; "X-Nonce" }
            _ => { headers.signature = None; "X-Signature" }
        };
        let result = check(60, &headers, now);
        prop_assert!(matches!(result, Err(AuthError::MissingHeader(n)) if n == name), "{result:?}");
    }
}
