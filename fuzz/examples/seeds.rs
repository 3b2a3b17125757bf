//! Writes the seed corpus under `corpus/<target>/` from real values: a header set signed as
//! the `oro` CLI signs it, real SS58 addresses, a sign-in message as the server builds it, and
//! ciphertexts sealed by the fixture vault. Run from anywhere:
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (stable is enough).
//! Signatures and seals are randomized, so a rerun rewrites every seed; commit the result.

use std::path::{Path, PathBuf};

use oro_fuzz::{ALICE, SignedCase, vault_fixture};
use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey};
use secrecy::SecretString;
use wire::signing::SignInMessage;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    signed_headers(&corpus.join("signed_headers"));
    ss58(&corpus.join("ss58_decode"));
    sign_in_message(&corpus.join("sign_in_message"));
    vault_envelope(&corpus.join("vault_envelope"));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the corpus directory");
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).expect("write a seed");
    println!("{}", path.display());
}

fn keypair(seed: u8) -> Keypair {
    MiniSecretKey::from_bytes(&[seed; 32]).expect("32 bytes").expand_to_keypair(ExpansionMode::Ed25519)
}

fn signed_headers(dir: &Path) {
    let now = 1_764_000_000;
    let pair = keypair(1);
    let hotkey = wire::ss58::encode(&pair.public.to_bytes());
    let sign = |timestamp: &str, nonce: &str, wrapped: bool| {
        let message = wire::signing::request_message(&hotkey, timestamp, nonce);
        let bytes = if wrapped { wire::signing::wrap_bytes(message.as_bytes()) } else { message.into_bytes() };
        hex::encode(pair.sign_simple(b"substrate", &bytes).to_bytes())
    };
    let case = |timestamp: &str, nonce: &str, signature: Option<&str>, hotkey: &str| {
        SignedCase {
            now,
            skew_secs: 300,
            hotkey: Some(hotkey),
            timestamp: Some(timestamp),
            nonce: Some(nonce),
            signature,
        }
        .render()
    };

    // As the CLI sends it: whole seconds, a UUID nonce, `0x` and the bare message.
    let timestamp = (now - 5).to_string();
    let nonce = "3f2b9c1e-5a7d-4e2f-9b1c-8d6e4f3a2b1c";
    let signature = format!("0x{}", sign(&timestamp, nonce, false));
    let cli = case(&timestamp, nonce, Some(&signature), &hotkey);
    // As a browser wallet signs: a fractional timestamp, `<Bytes>`-wrapped, no `0x`.
    let timestamp = format!("{}.25", now + 7);
    let nonce = "n:1/x";
    let signature = sign(&timestamp, nonce, true);
    let wallet = case(&timestamp, nonce, Some(&signature), &hotkey);
    // Well formed, but the signature is missing.
    let unsigned = case(&now.to_string(), "n-2", None, ALICE);

    // The seeds are only worth having if the first two pass: that is the path to mutate from.
    for (name, text, passes) in [("cli", &cli, true), ("wallet", &wallet, true), ("unsigned", &unsigned, false)] {
        let parsed = SignedCase::parse(text);
        let result = service::auth::signed_request::check(parsed.skew_secs, &parsed.headers(), parsed.now);
        assert_eq!(result.is_ok(), passes, "seed {name}: {result:?}");
        write(dir, name, text.as_bytes());
    }
}

fn ss58(dir: &Path) {
    write(dir, "alice", ALICE.as_bytes());
    write(dir, "seed-1", wire::ss58::encode(&keypair(1).public.to_bytes()).as_bytes());
}

fn sign_in_message(dir: &Path) {
    let message = SignInMessage {
        domain: "127.0.0.1:3000".into(),
        address: ALICE.into(),
        statement: "Sign in to ORO inference providers.".into(),
        uri: "http://127.0.0.1:3000".into(),
        version: "1".into(),
        nonce: "9f1c2d3e4b5a69788796a5b4c3d2e1f0".into(),
        issued_at: "2026-11-24T10:00:00Z".into(),
        expiration_time: "2026-11-24T10:10:00Z".into(),
    };
    assert_eq!(SignInMessage::parse(&message.to_text()), Ok(message.clone()));
    write(dir, "localhost", message.to_text().as_bytes());
}

fn vault_envelope(dir: &Path) {
    let vault = vault_fixture::open();
    let context = vault_fixture::context();
    // Made-up secrets in a provider's key format; the fixture's keys are public anyway.
    let openrouter_key = format!("sk-or-v1-{}", "ab".repeat(32));
    write(dir, "sealed-openrouter-key", &vault.seal(&context, &SecretString::from(openrouter_key)));
    write(dir, "sealed-empty", &vault.seal(&context, &SecretString::from(String::new())));
}
