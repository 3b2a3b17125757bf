//! Wallet problems exit 2; an encrypted bittensor hotkey opens with the right password.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_wallet_exits_2() {
    let out = oro_against("http://127.0.0.1:9", &["inference", "status"]).wallet(&wallets().dir, "nope", "h1").run().await;
    out.assert_code(2).assert_clean();
    assert!(out.stderr.starts_with("Error: no hotkey file at "), "{}", out.stderr);
    assert!(out.stderr.contains("nope/hotkeys/h1"), "{}", out.stderr);
    assert_eq!(out.stdout, "", "nothing is sent or printed before the wallet loads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_hotkey_file_exits_2_without_quoting_it() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("oro-cli-bad-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("w/hotkeys")).unwrap();
    std::fs::write(dir.join("w/hotkeys/garbage"), "{\"secretSeed\": \"0xdeadbeefSECRETISH\"}").unwrap();
    std::fs::write(dir.join("w/hotkeys/public-only"), std::fs::read(wallets().dir.join("plain/hotkeys/h1pub.txt")).unwrap()).unwrap();
    for (hotkey, says) in [("garbage", "secretSeed is not valid hex"), ("public-only", "holds no secret key")] {
        let out = oro_against("http://127.0.0.1:9", &["inference", "status"]).wallet(&dir, "w", hotkey).run().await;
        out.assert_code(2).assert_clean();
        assert!(out.stderr.contains("is malformed") && out.stderr.contains(says), "{}", out.stderr);
        assert!(!out.stderr.contains("SECRETISH"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_hotkey_needs_the_right_password() {
    let app = spawn_app().await;
    let w = wallets();
    let wrong = app.oro(&["inference", "status"]).wallet(&w.dir, "enc", "h1").env("ORO_WALLET_PASSWORD", "not-the-password").run().await;
    wrong.assert_code(2).assert_clean();
    assert!(wrong.stderr.starts_with("Error: wrong password for the encrypted hotkey file "), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains("not-the-password"));

    let right = app.oro(&["inference", "status"]).wallet(&w.dir, "enc", "h1").env("ORO_WALLET_PASSWORD", ENCRYPTED_PASSWORD).run().await;
    right.assert_ok().assert_clean();
    assert_eq!(right.lines()[0], format!("Wallet:   enc ({})", w.encrypted_ss58));
    assert_ne!(w.encrypted_ss58, w.plain_ss58);
}
