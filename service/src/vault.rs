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
use crate::db::{Backend, Db};
use crate::store;

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

    /// A copy held by the vault (for data keys added while the service runs).
    fn duplicate(&self) -> MasterKeys {
        MasterKeys {
            path: self.path.clone(),
            keys: self.keys.iter().map(|(id, k)| (id.clone(), SecretBox::new(Box::new(*k.expose_secret())))).collect(),
        }
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
///
/// It keeps the master keys it was opened with, so that a data key another process added (a
/// rotation) can be unwrapped when `refresh` sees it; new values are sealed with the newest
/// data key in the database, as of the last refresh.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<VaultInner>,
}

struct VaultInner {
    masters: std::sync::RwLock<MasterKeys>,
    keys: std::sync::RwLock<DataKeys>,
}

struct DataKeys {
    by_id: HashMap<String, Key32>,
    current: String,
}

/// A new data key under the current master key, newer than every other: it becomes the one
/// that seals.
async fn create_data_key(conn: &mut store::Conn, masters: &MasterKeys, now: i64) -> Result<(String, Key32), VaultError> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let key = random_key();
    let wrapped = wrap(masters.get(masters.current_id()).expect("current key"), key.expose_secret(), &id);
    let newest = store::vault::newest_created_at(&mut *conn).await?;
    let created_at = now.max(newest.unwrap_or(0) + 1);
    store::vault::add_data_key(conn, &id, masters.current_id(), &wrapped, created_at).await?;
    Ok((id, key))
}

/// The first data key, made once however many replicas start together on an empty database.
/// On PostgreSQL they take turns (an advisory lock held by the transaction), so each after the
/// first finds its key. Without the turns each made its own, and a replica that had loaded
/// only its own key opened nothing the others sealed until its next refresh (a minute): their
/// connections failed its claims and its gateway. SQLite has one process.
async fn create_first_data_key(db: &Db, masters: &MasterKeys, now: i64) -> Result<(), VaultError> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        store::vault::take_first_data_key_turn(&mut tx).await?;
    }
    if !store::vault::has_data_key(&mut tx).await? {
        create_data_key(&mut tx, masters, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl Vault {
    /// Unwraps every data key with the master keys; creates the first data key on first run
    /// (stamped `now`).
    pub async fn open(db: &Db, masters: &MasterKeys, now: i64) -> Result<Self, VaultError> {
        let masters = masters.duplicate();
        let data_keys = store::vault::data_keys(&mut *db.pool().acquire().await?).await?;
        if data_keys.is_empty() {
            create_first_data_key(db, &masters, now).await?;
        }
        let keys = DataKeys { by_id: HashMap::new(), current: String::new() };
        let vault = Vault { inner: Arc::new(VaultInner { masters: std::sync::RwLock::new(masters), keys: std::sync::RwLock::new(keys) }) };
        vault.refresh(db).await?;
        Ok(vault)
    }

    /// Loads data keys added since (a rotation) and forgets retired ones; the newest seals
    /// from now on. The housekeeping loop calls it every minute.
    pub async fn refresh(&self, db: &Db) -> Result<(), VaultError> {
        let rows = store::vault::data_keys(&mut *db.pool().acquire().await?).await?;
        let Some(newest) = rows.last() else { return Ok(()) };
        let newest = newest.id.clone();
        let ids: std::collections::HashSet<String> = rows.iter().map(|k| k.id.clone()).collect();
        let mut fresh = HashMap::new();
        for store::vault::DataKey { id, master_key_id, wrapped_key, .. } in rows {
            if !self.inner.keys.read().expect("vault lock").by_id.contains_key(&id) {
                let key = self.unwrap_data_key(&id, &master_key_id, &wrapped_key)?;
                fresh.insert(id, key);
            }
        }
        let mut keys = self.inner.keys.write().expect("vault lock");
        keys.by_id.retain(|id, _| ids.contains(id));
        keys.by_id.extend(fresh);
        keys.current = newest;
        Ok(())
    }

    /// A data key, unwrapped by its master key; a master key this vault does not hold yet (a
    /// rotation wrote it since we started) is looked for in the key file again.
    fn unwrap_data_key(&self, id: &str, master_id: &str, wrapped: &[u8]) -> Result<Key32, VaultError> {
        let known = self.inner.masters.read().expect("vault lock").get(master_id).map(|m| unwrap(m, wrapped, id));
        if let Some(key) = known {
            return key;
        }
        let path = self.inner.masters.read().expect("vault lock").path.clone();
        let reloaded = MasterKeys::load(&path, false)?;
        let master = reloaded.get(master_id).ok_or_else(|| VaultError::MissingMasterKey(master_id.to_owned()))?;
        let key = unwrap(master, wrapped, id)?;
        *self.inner.masters.write().expect("vault lock") = reloaded;
        Ok(key)
    }

    /// The id of the data key that seals new values.
    pub fn current_data_key(&self) -> String {
        self.inner.keys.read().expect("vault lock").current.clone()
    }

    fn aad(context: &str) -> Vec<u8> {
        format!("oro-vault-v1|{context}").into_bytes()
    }

    /// The associated data that binds a credential to its owner.
    pub fn credential_context(hotkey: &str, provider: wire::Provider) -> String {
        format!("credential|{hotkey}|{provider}")
    }

    /// The context of a per-run key the gateway holds, bound to its gateway token's digest.
    pub fn run_key_context(gateway_key_hash: &str) -> String {
        format!("run-key|{gateway_key_hash}")
    }

    pub fn seal(&self, context: &str, secret: &SecretString) -> Vec<u8> {
        let keys = self.inner.keys.read().expect("vault lock");
        let key = keys.by_id.get(&keys.current).expect("current data key is loaded");
        let sealed = seal_raw(key.expose_secret(), &Self::aad(context), secret.expose_secret().as_bytes());
        let mut out = Vec::with_capacity(1 + DATA_KEY_ID_LEN + sealed.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(keys.current.as_bytes());
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open_sealed(&self, context: &str, ciphertext: &[u8]) -> Result<SecretString, VaultError> {
        let envelope = parse_envelope(ciphertext)?;
        let keys = self.inner.keys.read().expect("vault lock");
        let key = keys.by_id.get(envelope.data_key_id).ok_or(VaultError::UnknownDataKey)?;
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
    /// This run added the master key (otherwise it continued an unfinished rotation).
    pub added_key: bool,
    /// The data key everything is sealed with at the end.
    pub data_key_id: String,
    pub resealed: usize,
    /// Sealed values still under an older data key (0 when finished).
    pub remaining: usize,
    /// Older data keys deleted because nothing is sealed with them any more.
    pub retired_data_keys: usize,
}

/// One sealed value somewhere in the database, with its context (its associated data) and
/// where to write it back.
struct SealedValue {
    /// The table, as `store::vault::reseal` knows it.
    table: &'static str,
    context: String,
    ciphertext: Vec<u8>,
    /// The row's key, as `store::vault::reseal` binds it.
    key: Vec<String>,
}

async fn sealed_values(db: &Db) -> Result<Vec<SealedValue>, sqlx::Error> {
    let mut out = Vec::new();
    let connections = store::vault::sealed_connections(&mut *db.pool().acquire().await?).await?;
    for store::vault::SealedConnection { hotkey, provider, ciphertext } in connections {
        let context = format!("credential|{hotkey}|{provider}");
        out.push(SealedValue { table: "connections", context, ciphertext, key: vec![hotkey, provider] });
    }
    let pending = store::vault::sealed_revocations(&mut *db.pool().acquire().await?).await?;
    for store::vault::SealedRevocation { id, hotkey, provider, ciphertext } in pending {
        out.push(SealedValue {
            table: "pending_revocations",
            context: format!("credential|{hotkey}|{provider}"),
            ciphertext,
            key: vec![id],
        });
    }
    let states = store::vault::sealed_oauth_verifiers(&mut *db.pool().acquire().await?).await?;
    for (state_hash, ciphertext) in states {
        out.push(SealedValue { table: "oauth_states", context: format!("oauth-verifier|{state_hash}"), ciphertext, key: vec![state_hash] });
    }
    // The per-run OpenRouter keys the gateway forwards with (`ORO_GATEWAY_OPENROUTER`).
    let run_keys = store::vault::sealed_run_keys(&mut *db.pool().acquire().await?).await?;
    for (key_hash, ciphertext) in run_keys {
        out.push(SealedValue { table: "run_keys", context: Vault::run_key_context(&key_hash), ciphertext, key: vec![key_hash] });
    }
    Ok(out)
}

/// How many sealed values each data key seals, for `server vault status`: (data key, its
/// master key, created at, values sealed), oldest first.
pub async fn status(db: &Db) -> Result<Vec<(String, String, i64, usize)>, VaultError> {
    let values = sealed_values(db).await?;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for value in &values {
        let id = parse_envelope(&value.ciphertext).map(|e| e.data_key_id.to_owned()).unwrap_or_else(|_| "(malformed)".into());
        *counts.entry(id).or_default() += 1;
    }
    Ok(store::vault::data_keys(&mut *db.pool().acquire().await?)
        .await?
        .into_iter()
        .map(|k| {
            let n = counts.get(&k.id).copied().unwrap_or(0);
            (k.id, k.master_key_id, k.created_at, n)
        })
        .collect())
}

/// Rotates the keys that protect every credential: a new master key in the key file and a
/// new data key under it, then every sealed value (connections, pending revocations, OAuth
/// states) opened and sealed again with the new data key, one statement each, then every
/// older data key deleted once nothing is sealed with it. Whoever held an old master key and
/// the old `vault_data_keys` rows then opens nothing that is stored.
///
/// Resumable: a crash (SIGKILL) anywhere leaves every value under a data key that is still in
/// the database and wrapped by a master key still in the file, and running it again finishes
/// the same rotation. `replica_wait` gives running replicas time to load the new data key
/// (their vaults refresh every minute) before any value depends on it.
pub async fn rotate_master_key(
    db: &Db,
    key_file: &Path,
    stop_after: Option<usize>,
    replica_wait: std::time::Duration,
) -> Result<RotationReport, VaultError> {
    let mut masters = MasterKeys::load(key_file, false)?;
    let rows = store::vault::data_keys(&mut *db.pool().acquire().await?).await?;
    let current = masters.current_id().to_owned();
    // A rotation is under way when the key file's newest master key has no data key yet (it
    // stopped between the file and the database), or when the newest data key is the only
    // one under it while older ones remain (it stopped while re-sealing or retiring).
    let newest_master = rows.last().map(|k| k.master_key_id.clone());
    let under_current = rows.iter().filter(|k| k.master_key_id == current).count();
    let needs_data_key = newest_master.as_deref() != Some(current.as_str());
    let re_sealing = !needs_data_key && under_current == 1 && rows.len() > 1;
    let added_key = !needs_data_key && !re_sealing;
    if added_key {
        masters.keys.push((new_key_id(), random_key()));
        // The new master key is durable before any row depends on it.
        masters.replace_file()?;
    }
    if added_key || needs_data_key {
        // An operator's command, not the service: the machine's time stamps the key.
        create_data_key(&mut *db.pool().acquire().await?, &masters, clock::system_now()).await?;
        tokio::time::sleep(replica_wait).await;
    }
    let vault = Vault::open(db, &masters, clock::system_now()).await?;
    let target = vault.current_data_key();
    let mut resealed = 0;
    for value in sealed_values(db).await? {
        if parse_envelope(&value.ciphertext).is_ok_and(|e| e.data_key_id == target) {
            continue;
        }
        if stop_after.is_some_and(|n| resealed >= n) {
            break;
        }
        let secret = vault.open_sealed(&value.context, &value.ciphertext)?;
        let sealed = vault.seal(&value.context, &secret);
        // Changed meanwhile (a refresh rotated a token, a disconnect): whoever changed it
        // sealed with the newest key; if not, the next run takes it.
        if store::vault::reseal(&mut *db.pool().acquire().await?, value.table, &value.key, &value.ciphertext, &sealed).await? {
            resealed += 1;
        }
    }
    // What is left under older keys (cut short by `stop_after`, or sealed meanwhile by a
    // replica that had not yet loaded the new key); the older keys that seal nothing go.
    let mut in_use: HashMap<String, usize> = HashMap::new();
    for value in sealed_values(db).await? {
        if let Ok(envelope) = parse_envelope(&value.ciphertext) {
            *in_use.entry(envelope.data_key_id.to_owned()).or_default() += 1;
        }
    }
    let remaining = in_use.iter().filter(|(id, _)| **id != target).map(|(_, n)| n).sum();
    let mut retired_data_keys = 0;
    // Read before the loop: the pool may hold one connection (SQLite), which each delete takes.
    let data_keys = store::vault::data_keys(&mut *db.pool().acquire().await?).await?;
    for store::vault::DataKey { id, .. } in data_keys {
        if id != target && !in_use.contains_key(&id) {
            retired_data_keys += usize::from(store::vault::retire_data_key(&mut *db.pool().acquire().await?, &id).await?);
        }
    }
    Ok(RotationReport {
        new_master_key_id: masters.current_id().to_owned(),
        added_key,
        data_key_id: target,
        resealed,
        remaining,
        retired_data_keys,
    })
}

/// Removes from the key file the master keys that no data key uses any more.
pub async fn retire_unused_master_keys(db: &Db, key_file: &Path) -> Result<Vec<String>, VaultError> {
    let mut masters = MasterKeys::load(key_file, false)?;
    let used = store::vault::master_keys_in_use(&mut *db.pool().acquire().await?).await?;
    let current = masters.current_id().to_owned();
    let before = masters.ids();
    masters.keys.retain(|(id, _)| *id == current || used.iter().any(|u| u == id));
    let retired: Vec<String> = before.into_iter().filter(|id| !masters.ids().contains(id)).collect();
    if !retired.is_empty() {
        masters.replace_file()?;
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDatabase;

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
        let vault = Vault::open(&db, &masters, crate::clock::system_now()).await.unwrap();
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

        // Stored, as a connection is: rotation re-seals what the database holds.
        store::vault::testing::insert_connection(&mut db.pool().acquire().await.unwrap(), &sealed).await.unwrap();
        // And a per-run key the gateway holds (`ORO_GATEWAY_OPENROUTER`), bound to its row.
        let run_key = SecretString::from("sk-or-v1-".to_owned() + &"cd".repeat(32));
        let run_key_context = Vault::run_key_context("gw-hash");
        store::vault::testing::insert_gateway_token(&mut db.pool().acquire().await.unwrap(), &vault.seal(&run_key_context, &run_key))
            .await
            .unwrap();
        let stored_run_key = || async { store::vault::testing::upstream_sealed(&mut db.pool().acquire().await.unwrap()).await.unwrap() };
        let stored = || async { store::vault::testing::connection_ciphertext(&mut db.pool().acquire().await.unwrap()).await.unwrap() };
        let old_data_key = vault.current_data_key();

        // Rotation interrupted after zero values, then run again: everything still opens.
        let no_wait = std::time::Duration::ZERO;
        let first = rotate_master_key(&db, &path, Some(0), no_wait).await.unwrap();
        assert!(first.added_key);
        assert_eq!((first.resealed, first.remaining, first.retired_data_keys), (0, 2, 0));
        assert_ne!(first.data_key_id, old_data_key, "a new data key, not only a new wrapping");
        let reopened = Vault::open(&db, &MasterKeys::load(&path, false).unwrap(), crate::clock::system_now()).await.unwrap();
        assert_eq!(reopened.open_sealed(&alice, &stored().await).unwrap().expose_secret(), secret.expose_secret());
        let second = rotate_master_key(&db, &path, None, no_wait).await.unwrap();
        assert!(!second.added_key, "an unfinished rotation continues instead of adding another key");
        assert_eq!((second.resealed, second.remaining, second.retired_data_keys), (2, 0, 1));
        assert_eq!(
            (second.new_master_key_id.as_str(), second.data_key_id.as_str()),
            (first.new_master_key_id.as_str(), first.data_key_id.as_str())
        );
        assert_eq!(parse_envelope(&stored().await).unwrap().data_key_id, second.data_key_id);
        // The old data key is gone: the old ciphertext opens for nobody, the stored one does.
        let after = Vault::open(&db, &MasterKeys::load(&path, false).unwrap(), crate::clock::system_now()).await.unwrap();
        assert!(matches!(after.open_sealed(&alice, &sealed), Err(VaultError::UnknownDataKey)));
        assert_eq!(after.open_sealed(&alice, &stored().await).unwrap().expose_secret(), secret.expose_secret());
        assert_eq!(parse_envelope(&stored_run_key().await).unwrap().data_key_id, second.data_key_id, "the run key was re-sealed too");
        assert_eq!(after.open_sealed(&run_key_context, &stored_run_key().await).unwrap().expose_secret(), run_key.expose_secret());
        assert_eq!(
            status(&db).await.unwrap().iter().map(|(id, _, _, n)| (id.clone(), *n)).collect::<Vec<_>>(),
            vec![(second.data_key_id.clone(), 2)]
        );
        let retired = retire_unused_master_keys(&db, &path).await.unwrap();
        assert_eq!(retired.len(), 1);
        let after = Vault::open(&db, &MasterKeys::load(&path, false).unwrap(), crate::clock::system_now()).await.unwrap();
        assert_eq!(after.open_sealed(&alice, &stored().await).unwrap().expose_secret(), secret.expose_secret());
        // A running vault (another replica) picks the new data key up on refresh.
        let third = rotate_master_key(&db, &path, Some(0), no_wait).await.unwrap();
        assert!(third.added_key);
        assert_ne!(after.current_data_key(), third.data_key_id);
        after.refresh(&db).await.unwrap();
        assert_eq!(after.current_data_key(), third.data_key_id, "the newest data key seals after a refresh");
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

    /// Replicas starting together on an empty PostgreSQL database (each with its own pool, as
    /// separate processes have) share one first data key, so each opens what another sealed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_opening_together_share_the_first_data_key() {
        let test_db = TestDatabase::create(Backend::Postgres).await;
        let path = key_file();
        let masters = MasterKeys::load(&path, true).unwrap();
        let mut pools = Vec::new();
        for _ in 0..4 {
            pools.push(test_db.connect().await);
        }
        // Polled together: each waits on its own connections, so their statements interleave.
        let (a, b, c, d) = tokio::join!(
            Vault::open(&pools[0], &masters, crate::clock::system_now()),
            Vault::open(&pools[1], &masters, crate::clock::system_now()),
            Vault::open(&pools[2], &masters, crate::clock::system_now()),
            Vault::open(&pools[3], &masters, crate::clock::system_now())
        );
        let vaults = [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()];
        assert_eq!(store::vault::data_keys(&mut pools[0].pool().acquire().await.unwrap()).await.unwrap().len(), 1, "one first data key");
        let context = Vault::credential_context("5F", wire::Provider::OpenRouter);
        let sealed = vaults[3].seal(&context, &SecretString::from("sk-or-v1-shared"));
        for vault in &vaults {
            assert_eq!(vault.current_data_key(), vaults[0].current_data_key());
            assert_eq!(vault.open_sealed(&context, &sealed).unwrap().expose_secret(), "sk-or-v1-shared");
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
