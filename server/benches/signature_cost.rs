//! Instructions per signature check, for `bench/signatures.sh`, which runs this under
//! `valgrind --tool=callgrind` once per path: instruction counts do not depend on what else the
//! machine is doing, where rates on these 2 shared cores vary by ±10% from run to run.
//!
//! `cargo bench --bench signature_cost -- PATH N` sets up the same signed requests whatever the
//! path, then checks N of them along PATH:
//! - `none`: nothing (the set-up's own cost, subtracted from the others);
//! - `raw`: `schnorrkel`'s `verify_simple`, key and signature parsed beforehand (the baseline);
//! - `verify`: `service::auth::signature::verify` (bytes in: the key and the signature parsed);
//! - `check`: `signed_request::check` (the four headers: ss58, clock, hex, message, verify).

mod common;

use service::auth::signed_request::{self, SignedHeaders};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let path = args.first().map(String::as_str).unwrap_or("none");
    let n: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(200);

    let wallet = common::Wallet::new(7);
    let now = 1_800_000_000;
    let set: Vec<common::Signed> = (0..n).map(|_| wallet.signed(now)).collect();
    let public = wallet.pair.public;
    let public_bytes = public.to_bytes();
    let parsed = common::parsed(&set);

    let mut ok = 0usize;
    match path {
        "none" => ok = n,
        "raw" => {
            for (message, signature, _) in &parsed {
                ok += std::hint::black_box(public.verify_simple(b"substrate", message.as_bytes(), signature)).is_ok() as usize;
            }
        }
        "verify" => {
            for (message, _, bytes) in &parsed {
                ok += std::hint::black_box(service::auth::signature::verify(&public_bytes, message.as_bytes(), bytes)) as usize;
            }
        }
        "check" => {
            for s in &set {
                let headers = SignedHeaders {
                    hotkey: Some(&s.hotkey),
                    timestamp: Some(&s.timestamp),
                    nonce: Some(&s.nonce),
                    signature: Some(&s.signature),
                };
                ok += std::hint::black_box(signed_request::check(300, &headers, now)).is_ok() as usize;
            }
        }
        other => panic!("unknown path {other}: none, raw, verify or check"),
    }
    assert_eq!(ok, n, "every signature verifies");
}
