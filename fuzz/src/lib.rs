//! What the fuzz targets and the seed generator share: the text layout of a signed-header
//! case, and a vault with fixed keys that needs no master key file or database of its own.

/// Alice's well-known development hotkey (//Alice, sr25519): a real address for the seeds.
pub const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

/// One input of the `signed_headers` target, as text so that the seeds are readable and
/// libFuzzer's mutations stay close to real headers. One value a line:
///
/// ```text
/// now (Unix seconds)
/// skew (seconds)
/// X-Hotkey
/// X-Timestamp
/// X-Nonce
/// X-Signature
/// ```
///
/// A header whose line is missing is absent. HTTP header values cannot hold a newline, so
/// splitting on `\n` loses no input the service can receive.
#[derive(Debug, Clone)]
pub struct SignedCase<'a> {
    pub now: i64,
    pub skew_secs: i64,
    pub hotkey: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A clock and skew in the range a deployment has; `now` and the skew are the server's own
/// values, so the fuzzer must not spend its time on overflows no server can reach.
const DEFAULT_NOW: i64 = 1_764_000_000;
const LATEST_NOW: i64 = 1 << 40;
const DEFAULT_SKEW: i64 = 300;
const LARGEST_SKEW: i64 = 86_400;

impl<'a> SignedCase<'a> {
    pub fn parse(text: &'a str) -> Self {
        let mut lines = text.split('\n');
        let mut number = |default: i64, largest: i64| {
            lines.next().and_then(|line| line.trim().parse::<i64>().ok()).unwrap_or(default).clamp(0, largest)
        };
        let now = number(DEFAULT_NOW, LATEST_NOW);
        let skew_secs = number(DEFAULT_SKEW, LARGEST_SKEW);
        SignedCase {
            now,
            skew_secs,
            hotkey: lines.next(),
            timestamp: lines.next(),
            nonce: lines.next(),
            signature: lines.next(),
        }
    }

    /// The layout `parse` reads; absent headers must come last.
    pub fn render(&self) -> String {
        let mut lines = vec![self.now.to_string(), self.skew_secs.to_string()];
        for header in [self.hotkey, self.timestamp, self.nonce, self.signature] {
            match header {
                Some(value) => lines.push(value.to_owned()),
                None => break,
            }
        }
        lines.join("\n")
    }

    pub fn headers(&self) -> service::auth::signed_request::SignedHeaders<'a> {
        service::auth::signed_request::SignedHeaders {
            hotkey: self.hotkey,
            timestamp: self.timestamp,
            nonce: self.nonce,
            signature: self.signature,
        }
    }
}

/// A vault with fixed keys: one data key, wrapped by one master key, in a scratch SQLite file.
/// The keys are constants on purpose: the seeds under `corpus/vault_envelope/` are genuine
/// ciphertexts of this vault, so the fuzzer starts from values that really open. Nothing it
/// seals is secret.
pub mod vault_fixture {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use secrecy::SecretString;
    use service::vault::{MasterKeys, Vault};

    pub const DATA_KEY_ID: &str = "00112233445566778899aabbccddeeff";
    const DATA_KEY: [u8; 32] = [0x64; 32];
    const MASTER_KEY_ID: &str = "mk-fuzz";
    const MASTER_KEY: [u8; 32] = [0x4d; 32];

    /// Whose credential the seeds are: the associated data every open uses.
    pub fn context() -> String {
        Vault::credential_context(super::ALICE, wire::Provider::OpenRouter)
    }

    /// Opens the fixture vault through the service's own `Vault::open`, so that the fuzzer
    /// exercises the real code path. Slow (a database, a runtime): call it once per process.
    pub fn open() -> Vault {
        let dir = std::env::temp_dir().join(format!("oro-fuzz-vault-{}", std::process::id()));
        // Left over only if a process with this id died while opening; start clean.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        let key_file = dir.join("master.key");
        write_private(&key_file, &format!("{MASTER_KEY_ID} {}\n", hex::encode(MASTER_KEY)));
        let masters = MasterKeys::load(&key_file, false).expect("load the fixed master key");
        // sqlx's `Any` driver refuses `sqlite::memory:` as a URL, so a scratch file it is.
        let database_url = SecretString::from(format!("sqlite://{}/fuzz.db", dir.display()));

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let vault = runtime.block_on(async {
            let db = service::Db::connect(&database_url).await.expect("a scratch database");
            sqlx::query("INSERT INTO vault_data_keys (id, master_key_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)")
                .bind(DATA_KEY_ID)
                .bind(MASTER_KEY_ID)
                .bind(wrapped_data_key())
                .bind(0_i64)
                .execute(db.pool())
                .await
                .expect("insert the fixed data key");
            let vault = Vault::open(&db, &masters, service::clock::system_now()).await.expect("open the fixture vault");
            db.close().await;
            vault
        });
        std::fs::remove_dir_all(&dir).expect("remove the scratch directory");
        vault
    }

    /// The data key wrapped as `vault::wrap` does (nonce || XChaCha20-Poly1305 with the
    /// associated data `data-key|{id}`). Should that layout change, `Vault::open` above fails
    /// with `DataKeyCorrupt` instead of the fuzzer running against the wrong thing.
    fn wrapped_data_key() -> Vec<u8> {
        let nonce = [0u8; 24];
        let aad = format!("data-key|{DATA_KEY_ID}");
        let sealed = XChaCha20Poly1305::new(&MASTER_KEY.into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &DATA_KEY, aad: aad.as_bytes() })
            .expect("encryption of a 32-byte buffer");
        [nonce.as_slice(), &sealed].concat()
    }

    fn write_private(path: &std::path::Path, text: &str) {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).expect("create the master key file");
        file.write_all(text.as_bytes()).expect("write the master key file");
    }
}
