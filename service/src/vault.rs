//! The credential vault: envelope encryption with XChaCha20-Poly1305.
//!
//! * A **master key** (32 random bytes) lives in a file outside the database
//!   (`ORO_MASTER_KEY_FILE`, one `<id> <hex>` line per key, the last line current).
//! * **Data keys** live in `vault_data_keys`, each wrapped by one master key.
//! * A credential is sealed with a data key. The ciphertext names its data key, and its
//!   associated data binds it to its owner (hotkey, provider), so a ciphertext copied into
//!   another miner's row does not open.
//!
//! Rotating the master key appends a new key to the file, then re-wraps the data-key rows one
//! by one. Old keys stay in the file (and readable) until `retire` removes those no row uses,
//! so a rotation killed half-way loses nothing and simply runs again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroize;

use crate::clock;
use crate::db::Db;

const FORMAT_VERSION: u8 = 1;
const DATA_KEY_ID_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("master key file {path}: {problem}")]
    MasterKeyFile { path: String, problem: String },
    #[error("the master key {0} needed to open stored credentials is not in the master key file")]
    MissingMasterKey(String),
    #[error("a stored data key does not open with its master key (wrong master key file?)")]
    DataKeyCorrupt,
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext names an unknown data key")]
    UnknownDataKey,
    #[error("ciphertext does not open (tampered, or not this owner's)")]
    DoesNotOpen,
    #[error("storage error")]
    Storage(#[from] sqlx::Error),
}

type Key32 = SecretBox<[u8; 32]>;

fn random_key() -> Key32 {
    let mut key = Box::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    SecretBox::new(key)
}

/// The master keys from the key file, the last one current.
pub struct MasterKeys {
    path: PathBuf,
    keys: Vec<(String, Key32)>,
}

impl MasterKeys {
    /// Loads the file; creates it (0600) with one fresh key when absent and `create` is true.
    pub fn load(path: &Path, create: bool) -> Result<Self, VaultError> {
        let problem = |p: String| VaultError::MasterKeyFile { path: path.display().to_string(), problem: p };
        if !path.exists() {
            if !create {
                return Err(problem("does not exist (it is never generated in production)".into()));
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| problem(e.to_string()))?;
            }
            let keys = MasterKeys { path: path.to_owned(), keys: vec![(new_key_id(), random_key())] };
            keys.write_new_file()?;
            tracing::info!(path = %path.display(), "generated a new master key");
            return Ok(keys);
        }
        check_permissions(path).map_err(problem)?;
        let mut text = std::fs::read_to_string(path).map_err(|e| problem(e.to_string()))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, hex_key) = line.split_once(' ').ok_or_else(|| problem(format!("line {}: expected `<id> <64 hex digits>`", n + 1)))?;
            let mut key = Box::new([0u8; 32]);
            hex::decode_to_slice(hex_key.trim(), key.as_mut())
                .map_err(|_| problem(format!("line {}: the key is not 64 hex digits", n + 1)))?;
            keys.push((id.to_owned(), SecretBox::new(key)));
        }
        text.zeroize();
        if keys.is_empty() {
            return Err(problem("holds no key".into()));
        }
        Ok(MasterKeys { path: path.to_owned(), keys })
    }

    pub fn current_id(&self) -> &str {
        &self.keys.last().expect("at least one master key").0
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.clone()).collect()
    }

    /// A key for another purpose derived from each master key (HMAC-SHA256 of `label`), the
    /// current one last: signing keys that every replica holding the key file shares, without
    /// handing the master keys themselves to the code that signs.
    pub fn derive(&self, label: &str) -> Vec<SecretBox<[u8; 32]>> {
        use hmac::Mac;
        self.keys
            .iter()
            .map(|(_, master)| {
                let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(master.expose_secret()).expect("HMAC takes any key length");
                Mac::update(&mut mac, label.as_bytes());
                SecretBox::new(Box::new(mac.finalize().into_bytes().into()))
            })
            .collect()
    }

    fn get(&self, id: &str) -> Option<&Key32> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    fn render(&self) -> String {
        let mut out = String::from("# oro-inference master keys: the last line is current. Keep this file secret.\n");
        for (id, key) in &self.keys {
            out.push_str(&format!("{id} {}\n", hex::encode(key.expose_secret())));
        }
        out
    }

    fn write_new_file(&self) -> Result<(), VaultError> {
        let problem = |p: String| VaultError::MasterKeyFile { path: self.path.display().to_string(), problem: p };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(|e| problem(e.to_string()))?;
        let mut text = self.render();
        file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(|e| problem(e.to_string()))?;
        text.zeroize();
        Ok(())
    }

    /// Replaces the file atomically (write a sibling, fsync, rename).
    fn replace_file(&self) -> Result<(), VaultError> {
        let problem = |p: String| VaultError::MasterKeyFile { path: self.path.display().to_string(), problem: p };
        let tmp = self.path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| problem(e.to_string()))?;
        let mut text = self.render();
        let written = file.write_all(text.as_bytes()).and_then(|_| file.sync_all());
        text.zeroize();
        written.map_err(|e| problem(e.to_string()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| problem(e.to_string()))?;
        Ok(())
    }
}

fn new_key_id() -> String {
    format!("mk-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("is readable by group or others (mode {:o}); run `chmod 600` on it", mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_: &Path) -> Result<(), String> {
    Ok(())
}

fn wrap(master: &Key32, data_key: &[u8; 32], data_key_id: &str) -> Vec<u8> {
    seal_raw(master.expose_secret(), format!("data-key|{data_key_id}").as_bytes(), data_key)
}

fn unwrap(master: &Key32, wrapped: &[u8], data_key_id: &str) -> Result<Key32, VaultError> {
    let mut plain =
        open_raw(master.expose_secret(), format!("data-key|{data_key_id}").as_bytes(), wrapped).map_err(|_| VaultError::DataKeyCorrupt)?;
    if plain.len() != 32 {
        plain.zeroize();
        return Err(VaultError::DataKeyCorrupt);
    }
    let mut key = Box::new([0u8; 32]);
    key.copy_from_slice(&plain);
    plain.zeroize();
    Ok(SecretBox::new(key))
}

/// nonce || ciphertext+tag
fn seal_raw(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open_raw(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Malformed);
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(&sealed[..NONCE_LEN]), Payload { msg: &sealed[NONCE_LEN..], aad })
        .map_err(|_| VaultError::DoesNotOpen)
}

/// A parsed credential ciphertext: `version(1) | data key id(32 ASCII) | nonce(24) | sealed`.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub data_key_id: &'a str,
    pub sealed: &'a [u8],
}

/// Splits a ciphertext into its parts without trusting any of it.
pub fn parse_envelope(ciphertext: &[u8]) -> Result<Envelope<'_>, VaultError> {
    if ciphertext.len() < 1 + DATA_KEY_ID_LEN + NONCE_LEN + TAG_LEN || ciphertext[0] != FORMAT_VERSION {
        return Err(VaultError::Malformed);
    }
    let id_bytes = &ciphertext[1..1 + DATA_KEY_ID_LEN];
    if !id_bytes.iter().all(|b| b.is_ascii_hexdigit()) {
        return Err(VaultError::Malformed);
    }
    let data_key_id = std::str::from_utf8(id_bytes).map_err(|_| VaultError::Malformed)?;
    Ok(Envelope { data_key_id, sealed: &ciphertext[1 + DATA_KEY_ID_LEN..] })
}

/// Seals and opens credentials for the service.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<VaultInner>,
}

struct VaultInner {
    data_keys: HashMap<String, Key32>,
    current: String,
}

impl Vault {
    /// Unwraps every data key with the master keys; creates the first data key on first run.
    pub async fn open(db: &Db, masters: &MasterKeys) -> Result<Self, VaultError> {
        let rows: Vec<(String, String, Vec<u8>, i64)> =
            sqlx::query_as("SELECT id, master_key_id, wrapped_key, created_at FROM vault_data_keys ORDER BY created_at, id")
                .fetch_all(db.pool())
                .await?;
        let mut data_keys = HashMap::new();
        let mut current = None;
        for (id, master_id, wrapped, _) in rows {
            let master = masters.get(&master_id).ok_or_else(|| VaultError::MissingMasterKey(master_id.clone()))?;
            data_keys.insert(id.clone(), unwrap(master, &wrapped, &id)?);
            current = Some(id);
        }
        let current = match current {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let key = random_key();
                let wrapped = wrap(masters.get(masters.current_id()).expect("current key"), key.expose_secret(), &id);
                // Two replicas starting at once may both create one; both are valid keys.
                sqlx::query("INSERT INTO vault_data_keys (id, master_key_id, wrapped_key, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&id)
                    .bind(masters.current_id())
                    .bind(wrapped)
                    .bind(clock::now())
                    .execute(db.pool())
                    .await?;
                data_keys.insert(id.clone(), key);
                // Replicas starting together on an empty database may each have created
                // one: load them all, so every replica opens what any of them sealed.
                let rows: Vec<(String, String, Vec<u8>)> =
                    sqlx::query_as("SELECT id, master_key_id, wrapped_key FROM vault_data_keys").fetch_all(db.pool()).await?;
                for (other, master_id, wrapped) in rows {
                    if !data_keys.contains_key(&other) {
                        let master = masters.get(&master_id).ok_or_else(|| VaultError::MissingMasterKey(master_id.clone()))?;
                        data_keys.insert(other.clone(), unwrap(master, &wrapped, &other)?);
                    }
                }
                id
            }
        };
        Ok(Vault { inner: Arc::new(VaultInner { data_keys, current }) })
    }

    fn aad(context: &str) -> Vec<u8> {
        format!("oro-vault-v1|{context}").into_bytes()
    }

    /// The associated data that binds a credential to its owner.
    pub fn credential_context(hotkey: &str, provider: wire::Provider) -> String {
        format!("credential|{hotkey}|{provider}")
    }

    pub fn seal(&self, context: &str, secret: &SecretString) -> Vec<u8> {
        let key = self.inner.data_keys.get(&self.inner.current).expect("current data key is loaded");
        let sealed = seal_raw(key.expose_secret(), &Self::aad(context), secret.expose_secret().as_bytes());
        let mut out = Vec::with_capacity(1 + DATA_KEY_ID_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(self.inner.current.as_bytes());
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open_sealed(&self, context: &str, ciphertext: &[u8]) -> Result<SecretString, VaultError> {
        let envelope = parse_envelope(ciphertext)?;
        let key = self.inner.data_keys.get(envelope.data_key_id).ok_or(VaultError::UnknownDataKey)?;
        let mut plain = open_raw(key.expose_secret(), &Self::aad(context), envelope.sealed)?;
        let text = String::from_utf8(std::mem::take(&mut plain)).map_err(|e| {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            VaultError::DoesNotOpen
        })?;
        Ok(SecretString::from(text))
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub new_master_key_id: String,
    pub added_key: bool,
    pub rewrapped: usize,
    pub remaining: usize,
}

/// Adds a master key (unless a previous rotation is still unfinished) and re-wraps every data
/// key under it. Each row is re-wrapped in its own statement: a crash leaves every row
/// readable with one of the keys still in the file, and running it again finishes the job.
pub async fn rotate_master_key(db: &Db, key_file: &Path, stop_after: Option<usize>) -> Result<RotationReport, VaultError> {
    let mut masters = MasterKeys::load(key_file, false)?;
    let rows: Vec<(String, String, Vec<u8>)> =
        sqlx::query_as("SELECT id, master_key_id, wrapped_key FROM vault_data_keys ORDER BY id").fetch_all(db.pool()).await?;
    let unfinished = rows.iter().any(|(_, m, _)| m != masters.current_id());
    let added_key = !unfinished;
    if added_key {
        masters.keys.push((new_key_id(), random_key()));
        // The new key is durable before any row depends on it.
        masters.replace_file()?;
    }
    let current_id = masters.current_id().to_owned();
    let current = masters.get(&current_id).expect("current key");
    let mut rewrapped = 0;
    for (id, master_id, wrapped) in &rows {
        if *master_id == current_id {
            continue;
        }
        if stop_after.is_some_and(|n| rewrapped >= n) {
            break;
        }
        let old = masters.get(master_id).ok_or_else(|| VaultError::MissingMasterKey(master_id.clone()))?;
        let data_key = unwrap(old, wrapped, id)?;
        let rewrapped_key = wrap(current, data_key.expose_secret(), id);
        sqlx::query("UPDATE vault_data_keys SET master_key_id = $1, wrapped_key = $2 WHERE id = $3 AND master_key_id = $4")
            .bind(&current_id)
            .bind(rewrapped_key)
            .bind(id)
            .bind(master_id)
            .execute(db.pool())
            .await?;
        rewrapped += 1;
    }
    let (remaining,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM vault_data_keys WHERE master_key_id <> $1").bind(&current_id).fetch_one(db.pool()).await?;
    Ok(RotationReport { new_master_key_id: current_id, added_key, rewrapped, remaining: remaining as usize })
}

/// Removes from the key file the master keys that no data key uses any more.
pub async fn retire_unused_master_keys(db: &Db, key_file: &Path) -> Result<Vec<String>, VaultError> {
    let mut masters = MasterKeys::load(key_file, false)?;
    let used: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT master_key_id FROM vault_data_keys").fetch_all(db.pool()).await?;
    let current = masters.current_id().to_owned();
    let before = masters.ids();
    masters.keys.retain(|(id, _)| *id == current || used.iter().any(|(u,)| u == id));
    let retired: Vec<String> = before.into_iter().filter(|id| !masters.ids().contains(id)).collect();
    if !retired.is_empty() {
        masters.replace_file()?;
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Backend, testing::TestDatabase};

    fn key_file() -> PathBuf {
        std::env::temp_dir().join(format!("oro-mk-{}", uuid::Uuid::new_v4().simple())).join("master.key")
    }

    #[test]
    fn envelope_parser_refuses_garbage() {
        assert!(parse_envelope(b"").is_err());
        assert!(parse_envelope(&[1u8; 10]).is_err());
        let mut bad = vec![2u8];
        bad.extend_from_slice(&[b'a'; 100]);
        assert!(parse_envelope(&bad).is_err());
        let mut not_hex = vec![1u8];
        not_hex.extend_from_slice(&[b'z'; 100]);
        assert!(parse_envelope(&not_hex).is_err());
    }

    #[test]
    fn key_file_is_private_and_reloads() {
        let path = key_file();
        let created = MasterKeys::load(&path, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let loaded = MasterKeys::load(&path, false).unwrap();
        assert_eq!(created.ids(), loaded.ids());
        assert!(MasterKeys::load(&key_file(), false).is_err(), "never generated when creation is off");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    async fn seal_open_bind_and_rotate(backend: Backend) {
        let test_db = TestDatabase::create(backend).await;
        let db = test_db.connect().await;
        let path = key_file();
        let masters = MasterKeys::load(&path, true).unwrap();
        let vault = Vault::open(&db, &masters).await.unwrap();
        let secret = SecretString::from("sk-or-v1-".to_owned() + &"ab".repeat(32));
        let alice = Vault::credential_context("5Alice", wire::Provider::OpenRouter);
        let bob = Vault::credential_context("5Bob", wire::Provider::OpenRouter);
        let sealed = vault.seal(&alice, &secret);
        assert!(!sealed.windows(9).any(|w| w == b"sk-or-v1-"), "no plaintext in the ciphertext");
        assert_eq!(vault.open_sealed(&alice, &sealed).unwrap().expose_secret(), secret.expose_secret());
        assert!(matches!(vault.open_sealed(&bob, &sealed), Err(VaultError::DoesNotOpen)), "bound to its owner");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(vault.open_sealed(&alice, &tampered).is_err());

        // Rotation interrupted after zero rows, then run again: everything still opens.
        let first = rotate_master_key(&db, &path, Some(0)).await.unwrap();
        assert!(first.added_key);
        assert_eq!(first.remaining, 1);
        let reopened = Vault::open(&db, &MasterKeys::load(&path, false).unwrap()).await.unwrap();
        assert_eq!(reopened.open_sealed(&alice, &sealed).unwrap().expose_secret(), secret.expose_secret());
        let second = rotate_master_key(&db, &path, None).await.unwrap();
        assert!(!second.added_key, "an unfinished rotation continues instead of adding another key");
        assert_eq!((second.rewrapped, second.remaining), (1, 0));
        assert_eq!(second.new_master_key_id, first.new_master_key_id);
        let retired = retire_unused_master_keys(&db, &path).await.unwrap();
        assert_eq!(retired.len(), 1);
        let after = Vault::open(&db, &MasterKeys::load(&path, false).unwrap()).await.unwrap();
        assert_eq!(after.open_sealed(&alice, &sealed).unwrap().expose_secret(), secret.expose_secret());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn vault_on_sqlite() {
        seal_open_bind_and_rotate(Backend::Sqlite).await;
    }

    #[tokio::test]
    async fn vault_on_postgres() {
        seal_open_bind_and_rotate(Backend::Postgres).await;
    }
}
