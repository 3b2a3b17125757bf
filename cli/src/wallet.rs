//! Bittensor wallets on disk, as `bittensor_wallet` (4.1.1) writes them: the hotkey file at
//! `{wallet_path}/{wallet_name}/hotkeys/{wallet_hotkey}`.
//!
//! The file is JSON (`secretSeed`, `privateKey`, `publicKey`, `ss58Address`, `secretPhrase`,
//! `cryptoType`), or that JSON encrypted: `$NACL` + 24-byte nonce + NaCl secretbox
//! (XSalsa20-Poly1305, tag first) under a key from libsodium's `crypto_pwhash_argon2i13`
//! with `OPSLIMIT_SENSITIVE`/`MEMLIMIT_SENSITIVE` and a fixed salt.
//!
//! Which secret wins follows `bittensor_wallet::keyfile::deserialize_keypair_from_keyfile_data`
//! except that the seed is preferred over the mnemonic (they describe the same key): every
//! derived key is checked against `publicKey`/`ss58Address` when the file has them.

use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use crypto_secretbox::XSalsa20Poly1305;
use crypto_secretbox::aead::{Aead, KeyInit};
use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, SecretKey};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The signing context of Substrate's sr25519 signatures.
pub const SIGNING_CONTEXT: &[u8] = b"substrate";

/// `bittensor_wallet::keyfile::NACL_SALT`.
const NACL_SALT: &[u8; 16] = b"\x13q\x83\xdf\xf1Z\t\xbc\x9c\x90\xb5Q\x879\xe9\xb1";
/// libsodium `crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE`.
const ARGON2I_OPSLIMIT_SENSITIVE: u32 = 8;
/// libsodium `crypto_pwhash_argon2i_MEMLIMIT_SENSITIVE` (512 MiB), in KiB as argon2 counts it.
const ARGON2I_MEMLIMIT_SENSITIVE_KIB: u32 = 536_870_912 / 1024;
const NACL_PREFIX: &[u8] = b"$NACL";
const NACL_NONCE_LEN: usize = 24;
const CRYPTO_TYPE_ED25519: u64 = 0;
const CRYPTO_TYPE_SR25519: u64 = 1;

/// Where a hotkey lives: `--wallet-path`, `--wallet-name`, `--wallet-hotkey`.
#[derive(Debug, Clone)]
pub struct WalletLocation {
    pub wallets_dir: PathBuf,
    pub name: String,
    pub hotkey: String,
}

impl WalletLocation {
    /// `~` at the start of `wallets_dir` means `$HOME`, as in bittensor.
    pub fn new(wallets_dir: &str, name: &str, hotkey: &str) -> Self {
        WalletLocation { wallets_dir: expand_home(wallets_dir), name: name.to_owned(), hotkey: hotkey.to_owned() }
    }

    pub fn hotkey_file(&self) -> PathBuf {
        self.wallets_dir.join(&self.name).join("hotkeys").join(&self.hotkey)
    }
}

fn expand_home(path: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    if path == "~" {
        if let Some(home) = home() {
            return home;
        }
    } else if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = home()
    {
        return home.join(rest);
    }
    PathBuf::from(path)
}

/// How to get the password of an encrypted hotkey.
pub enum PasswordSource {
    /// Given up front (`ORO_WALLET_PASSWORD`).
    Given(SecretString),
    /// Asked on the terminal without echo.
    Prompt,
}

impl PasswordSource {
    fn password(&self, location: &WalletLocation, path: &Path) -> Result<SecretString, WalletError> {
        match self {
            PasswordSource::Given(password) => Ok(password.clone()),
            PasswordSource::Prompt => {
                let prompt = format!("Enter the password of hotkey {}/{}: ", location.name, location.hotkey);
                rpassword::prompt_password(prompt).map(SecretString::from).map_err(|_| WalletError::NoPassword { path: path.to_owned() })
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(
        "no hotkey file at {path}: pick the wallet with --wallet-name/--wallet-hotkey/--wallet-path \
         (or BT_WALLET_PATH), or create it with `btcli wallet new_hotkey`"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read the hotkey file {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("the hotkey file {path} is encrypted and no password was given: set ORO_WALLET_PASSWORD or run in a terminal")]
    NoPassword { path: PathBuf },
    #[error("wrong password for the encrypted hotkey file {path}")]
    WrongPassword { path: PathBuf },
    #[error("the hotkey file {path} uses an encryption this CLI does not read ({scheme}); re-encrypt it with a current btcli")]
    UnsupportedEncryption { path: PathBuf, scheme: &'static str },
    #[error("the hotkey file {path} is malformed: {problem}")]
    Malformed { path: PathBuf, problem: KeyfileProblem },
}

/// What is wrong inside a hotkey file. Never quotes the file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyfileProblem {
    #[error("not UTF-8 JSON")]
    NotJson,
    #[error("the encrypted data is truncated")]
    Truncated,
    #[error("{field} is not valid hex of the right length")]
    BadHex { field: &'static str },
    #[error("secretPhrase is not a valid BIP-39 English mnemonic")]
    BadMnemonic,
    #[error("it holds an ed25519 key; ORO signs with sr25519 hotkeys")]
    Ed25519,
    #[error("unknown cryptoType {0}")]
    UnknownCryptoType(u64),
    #[error("it holds no secret key (secretSeed, privateKey or secretPhrase): is it a public key file?")]
    NoSecret,
    #[error("its secret key does not match its {field}")]
    Mismatch { field: &'static str },
    #[error("ss58Address is not a Bittensor (prefix 42) address")]
    BadAddress,
}

/// A loaded hotkey: its SS58 address and the sr25519 pair that signs.
pub struct Hotkey {
    ss58: String,
    keypair: Keypair,
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotkey").field("ss58", &self.ss58).finish_non_exhaustive()
    }
}

impl Hotkey {
    pub fn from_keypair(keypair: Keypair) -> Self {
        Hotkey { ss58: wire::ss58::encode(&keypair.public.to_bytes()), keypair }
    }

    pub fn ss58(&self) -> &str {
        &self.ss58
    }

    #[cfg(test)]
    pub fn public_key(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }

    /// An sr25519 signature (context `substrate`) over `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.keypair.sign_simple(SIGNING_CONTEXT, message).to_bytes()
    }
}

/// Reads, decrypts if needed, and checks the hotkey at `location`.
pub fn load_hotkey(location: &WalletLocation, passwords: &PasswordSource) -> Result<Hotkey, WalletError> {
    let path = location.hotkey_file();
    let data = match std::fs::read(&path) {
        Ok(data) => Zeroizing::new(data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WalletError::NotFound { path });
        }
        Err(e) => {
            return Err(WalletError::Unreadable { path, reason: e.kind().to_string() });
        }
    };
    let malformed = |problem| WalletError::Malformed { path: path.clone(), problem };
    let plain = if data.starts_with(NACL_PREFIX) {
        let password = passwords.password(location, &path)?;
        match decrypt_nacl(&data, &password) {
            Ok(plain) => plain,
            Err(NaclError::Truncated) => return Err(malformed(KeyfileProblem::Truncated)),
            Err(NaclError::WrongPassword) => return Err(WalletError::WrongPassword { path }),
        }
    } else if data.starts_with(b"$ANSIBLE_VAULT") {
        return Err(WalletError::UnsupportedEncryption { path, scheme: "ansible vault" });
    } else if data.starts_with(b"gAAAAA") {
        return Err(WalletError::UnsupportedEncryption { path, scheme: "legacy fernet" });
    } else {
        data
    };
    let keypair = keypair_from_keyfile_json(&plain).map_err(malformed)?;
    Ok(Hotkey::from_keypair(keypair))
}

#[derive(Debug, PartialEq, Eq)]
pub enum NaclError {
    Truncated,
    /// The secretbox does not open: a wrong password (or a corrupted file).
    WrongPassword,
}

/// The secretbox key bittensor derives from a password (argon2i, v1.3, 8 passes, 512 MiB).
pub fn nacl_key(password: &SecretString) -> Zeroizing<[u8; 32]> {
    let params = Params::new(ARGON2I_MEMLIMIT_SENSITIVE_KIB, ARGON2I_OPSLIMIT_SENSITIVE, 1, Some(32))
        .expect("libsodium's argon2i parameters are valid");
    let argon2 = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon2
        .hash_password_into(password.expose_secret().as_bytes(), NACL_SALT, key.as_mut())
        .expect("a 16-byte salt and 32-byte output are valid");
    key
}

/// Opens a `$NACL` keyfile.
pub fn decrypt_nacl(data: &[u8], password: &SecretString) -> Result<Zeroizing<Vec<u8>>, NaclError> {
    let body = data.strip_prefix(NACL_PREFIX).ok_or(NaclError::Truncated)?;
    if body.len() < NACL_NONCE_LEN + 16 {
        return Err(NaclError::Truncated);
    }
    let (nonce, sealed) = body.split_at(NACL_NONCE_LEN);
    let key = nacl_key(password);
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    cipher.decrypt(nonce.into(), sealed).map(Zeroizing::new).map_err(|_| NaclError::WrongPassword)
}

/// Seals `plain` as a `$NACL` keyfile, as bittensor writes it.
#[cfg(test)]
pub fn encrypt_nacl(plain: &[u8], password: &SecretString, nonce: [u8; NACL_NONCE_LEN]) -> Vec<u8> {
    let key = nacl_key(password);
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let sealed = cipher.encrypt(&nonce.into(), plain).expect("secretbox sealing does not fail");
    let mut out = NACL_PREFIX.to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyfileJson {
    #[serde(default)]
    crypto_type: Option<u64>,
    #[serde(default)]
    secret_seed: Option<SecretString>,
    #[serde(default)]
    private_key: Option<SecretString>,
    #[serde(default)]
    secret_phrase: Option<SecretString>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    ss58_address: Option<String>,
}

fn decode_hex<const N: usize>(text: &str, field: &'static str) -> Result<SecretBox<[u8; N]>, KeyfileProblem> {
    let text = text.trim();
    let text = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    let mut out = SecretBox::new(Box::new([0u8; N]));
    hex::decode_to_slice(text, secrecy::ExposeSecretMut::expose_secret_mut(&mut out)).map_err(|_| KeyfileProblem::BadHex { field })?;
    Ok(out)
}

/// The sr25519 pair in a decrypted keyfile, checked against the public key it states.
pub fn keypair_from_keyfile_json(data: &[u8]) -> Result<Keypair, KeyfileProblem> {
    let text = std::str::from_utf8(data).map_err(|_| KeyfileProblem::NotJson)?;
    let file: KeyfileJson = serde_json::from_str(text).map_err(|_| KeyfileProblem::NotJson)?;
    match file.crypto_type.unwrap_or(CRYPTO_TYPE_SR25519) {
        CRYPTO_TYPE_SR25519 => {}
        CRYPTO_TYPE_ED25519 => return Err(KeyfileProblem::Ed25519),
        other => return Err(KeyfileProblem::UnknownCryptoType(other)),
    }
    let stated_public = match &file.public_key {
        Some(hex_key) => Some(*decode_hex::<32>(hex_key, "publicKey")?.expose_secret()),
        None => None,
    };
    let stated_address = match &file.ss58_address {
        Some(address) => Some(wire::ss58::decode(address.trim()).map_err(|_| KeyfileProblem::BadAddress)?),
        None => None,
    };
    let matches = |pair: &Keypair| {
        let public = pair.public.to_bytes();
        stated_public.is_none_or(|p| p == public) && stated_address.is_none_or(|a| a == public)
    };
    let check = |pair: Keypair| -> Result<Keypair, KeyfileProblem> {
        let public = pair.public.to_bytes();
        if stated_public.is_some_and(|p| p != public) {
            return Err(KeyfileProblem::Mismatch { field: "publicKey" });
        }
        if stated_address.is_some_and(|a| a != public) {
            return Err(KeyfileProblem::Mismatch { field: "ss58Address" });
        }
        Ok(pair)
    };

    if let Some(seed) = &file.secret_seed {
        let seed = decode_hex::<32>(seed.expose_secret(), "secretSeed")?;
        return check(keypair_from_mini_secret(seed.expose_secret())?);
    }
    if let Some(private_key) = &file.private_key {
        let bytes = decode_hex::<64>(private_key.expose_secret(), "privateKey")?;
        // bittensor writes schnorrkel's own `SecretKey::to_bytes` (sp-core `to_raw_vec`); keys
        // exported from other tools are often in the ed25519-compatible form. Take the form
        // whose public key the file states; with nothing to compare, bittensor's.
        let native = SecretKey::from_bytes(bytes.expose_secret()).ok().map(|s| s.to_keypair());
        let ed25519_form = SecretKey::from_ed25519_bytes(bytes.expose_secret()).ok().map(|s| s.to_keypair());
        let has_statement = stated_public.is_some() || stated_address.is_some();
        let chosen = [native, ed25519_form].into_iter().flatten().find(|pair| !has_statement || matches(pair));
        return match chosen {
            Some(pair) => Ok(pair),
            None if has_statement => {
                Err(KeyfileProblem::Mismatch { field: if stated_public.is_some() { "publicKey" } else { "ss58Address" } })
            }
            None => Err(KeyfileProblem::BadHex { field: "privateKey" }),
        };
    }
    if let Some(phrase) = &file.secret_phrase {
        let mini = mini_secret_from_phrase(phrase)?;
        return check(keypair_from_mini_secret(mini.expose_secret())?);
    }
    Err(KeyfileProblem::NoSecret)
}

/// A 32-byte mini secret expanded the way Substrate (and so Bittensor) does it.
pub fn keypair_from_mini_secret(seed: &[u8; 32]) -> Result<Keypair, KeyfileProblem> {
    let mini = MiniSecretKey::from_bytes(seed).map_err(|_| KeyfileProblem::BadHex { field: "secretSeed" })?;
    Ok(mini.expand_to_keypair(ExpansionMode::Ed25519))
}

/// substrate-bip39 `mini_secret_from_entropy(entropy, "")`: PBKDF2-HMAC-SHA512 over the
/// mnemonic's entropy with the salt `"mnemonic"`, 2048 rounds, first 32 bytes.
fn mini_secret_from_phrase(phrase: &SecretString) -> Result<SecretBox<[u8; 32]>, KeyfileProblem> {
    let words = phrase.expose_secret().split_whitespace().collect::<Vec<_>>().join(" ");
    let words = Zeroizing::new(words);
    let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &words).map_err(|_| KeyfileProblem::BadMnemonic)?;
    let (entropy, len) = mnemonic.to_entropy_array();
    let entropy = Zeroizing::new(entropy);
    let mut seed = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&entropy[..len], b"mnemonic", 2048, seed.as_mut());
    let mut mini = SecretBox::new(Box::new([0u8; 32]));
    secrecy::ExposeSecretMut::expose_secret_mut(&mut mini).copy_from_slice(&seed[..32]);
    Ok(mini)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A hotkey written by bittensor_wallet 4.1.1 (`Wallet.create_if_non_existent`), kept as a
    // fixture: a throwaway test key.
    const PY_PUBLIC: &str = "0xe0403edd25a483ee5146e26c61cb0cbf752a32b0e53cccc678afacdec1648c4a";
    const PY_PRIVATE: &str = "0x2b54497f8677c5a1e0a2092b4c8bed3a40f4ec4c9656252e055783272585fe0eb8c5baa95e12636921b0963cbc8435dc19664146079ccceb372f1b7259b63db9";
    const PY_SEED: &str = "0xf6b2e47de7b54d96111d8080fc6ce218be5a15866cdd976a8d967e67fc128643";
    const PY_PHRASE: &str = "senior urge water gospel clever bunker observe sting vocal guess panic maple";
    const PY_SS58: &str = "5H8jfiFk3n4LS9acnt7oG7Xa3BXFC4gf3Zj9tVxaeoAeQrcT";

    fn full_file() -> String {
        serde_json::json!({
            "publicKey": PY_PUBLIC, "accountId": PY_PUBLIC, "privateKey": PY_PRIVATE,
            "secretSeed": PY_SEED, "secretPhrase": PY_PHRASE, "ss58Address": PY_SS58, "cryptoType": 1
        })
        .to_string()
    }

    fn ss58_of(json: &str) -> Result<String, KeyfileProblem> {
        keypair_from_keyfile_json(json.as_bytes()).map(|p| wire::ss58::encode(&p.public.to_bytes()))
    }

    #[test]
    fn a_bittensor_keyfile_loads_from_each_secret_alone() {
        assert_eq!(ss58_of(&full_file()).unwrap(), PY_SS58);
        assert_eq!(ss58_of(&serde_json::json!({"secretSeed": PY_SEED}).to_string()).unwrap(), PY_SS58);
        assert_eq!(ss58_of(&serde_json::json!({"secretPhrase": PY_PHRASE}).to_string()).unwrap(), PY_SS58);
        assert_eq!(ss58_of(&serde_json::json!({"privateKey": PY_PRIVATE}).to_string()).unwrap(), PY_SS58);
        assert_eq!(ss58_of(&serde_json::json!({"privateKey": PY_PRIVATE, "publicKey": PY_PUBLIC}).to_string()).unwrap(), PY_SS58);
    }

    #[test]
    fn the_seed_expands_to_bittensors_private_key() {
        let seed = decode_hex::<32>(PY_SEED, "s").unwrap();
        let pair = keypair_from_mini_secret(seed.expose_secret()).unwrap();
        let private = decode_hex::<64>(PY_PRIVATE, "p").unwrap();
        assert_eq!(&pair.secret.to_bytes(), private.expose_secret(), "bittensor stores SecretKey::to_bytes");
        assert_eq!(format!("0x{}", hex::encode(pair.public.to_bytes())), PY_PUBLIC);
    }

    #[test]
    fn the_ed25519_form_of_the_private_key_also_loads() {
        let seed = decode_hex::<32>(PY_SEED, "s").unwrap();
        let pair = keypair_from_mini_secret(seed.expose_secret()).unwrap();
        let ed = format!("0x{}", hex::encode(pair.secret.to_ed25519_bytes()));
        assert_eq!(ss58_of(&serde_json::json!({"privateKey": ed, "ss58Address": PY_SS58}).to_string()).unwrap(), PY_SS58);
    }

    #[test]
    fn malformed_keyfiles_are_refused_without_quoting_them() {
        assert_eq!(ss58_of("not json"), Err(KeyfileProblem::NotJson));
        assert_eq!(
            ss58_of(&serde_json::json!({"publicKey": PY_PUBLIC, "ss58Address": PY_SS58}).to_string()),
            Err(KeyfileProblem::NoSecret)
        );
        assert_eq!(ss58_of(&serde_json::json!({"secretSeed": "0x1234"}).to_string()), Err(KeyfileProblem::BadHex { field: "secretSeed" }));
        let other_public = format!("0x{}", "11".repeat(32));
        assert_eq!(
            ss58_of(&serde_json::json!({"secretSeed": PY_SEED, "publicKey": other_public}).to_string()),
            Err(KeyfileProblem::Mismatch { field: "publicKey" })
        );
        assert_eq!(ss58_of(&serde_json::json!({"secretSeed": PY_SEED, "cryptoType": 0}).to_string()), Err(KeyfileProblem::Ed25519));
        assert_eq!(ss58_of(&serde_json::json!({"secretPhrase": "not a mnemonic at all"}).to_string()), Err(KeyfileProblem::BadMnemonic));
        let message = WalletError::Malformed { path: "/w/h".into(), problem: KeyfileProblem::BadHex { field: "secretSeed" } }.to_string();
        assert!(!message.contains(&PY_SEED[2..10]));
    }

    #[test]
    fn signatures_verify_against_the_public_key() {
        let hotkey = Hotkey::from_keypair(keypair_from_keyfile_json(full_file().as_bytes()).unwrap());
        assert_eq!(hotkey.ss58(), PY_SS58);
        let signature = hotkey.sign(b"hello");
        let public = schnorrkel::PublicKey::from_bytes(&hotkey.public_key()).unwrap();
        let signature = schnorrkel::Signature::from_bytes(&signature).unwrap();
        assert!(public.verify_simple(SIGNING_CONTEXT, b"hello", &signature).is_ok());
        assert!(public.verify_simple(SIGNING_CONTEXT, b"hellO", &signature).is_err());
    }

    #[test]
    fn wallet_paths_expand_home() {
        let location = WalletLocation::new("/w", "miner", "hk");
        assert_eq!(location.hotkey_file(), PathBuf::from("/w/miner/hotkeys/hk"));
        if let Some(home) = std::env::var_os("HOME") {
            let location = WalletLocation::new("~/.bittensor/wallets", "default", "default");
            assert_eq!(location.hotkey_file(), PathBuf::from(home).join(".bittensor/wallets/default/hotkeys/default"));
        }
    }

    /// One argon2i run (512 MiB, several seconds): seal, open, and a wrong password.
    #[test]
    fn nacl_keyfiles_round_trip_and_refuse_a_wrong_password() {
        let password = SecretString::from("Correct-Horse-9");
        let sealed = encrypt_nacl(full_file().as_bytes(), &password, [7u8; 24]);
        assert!(sealed.starts_with(b"$NACL"));
        let key = nacl_key(&password);
        let cipher = XSalsa20Poly1305::new(key.as_ref().into());
        let opened = cipher.decrypt((&[7u8; 24]).into(), &sealed[5 + 24..]).unwrap();
        assert_eq!(opened, full_file().as_bytes());
        // A flipped byte of ciphertext is "wrong password" (the box does not open).
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let key_for_tampered = XSalsa20Poly1305::new(key.as_ref().into());
        assert!(key_for_tampered.decrypt((&[7u8; 24]).into(), &tampered[5 + 24..]).is_err());
        assert_eq!(decrypt_nacl(b"$NACLshort", &password), Err(NaclError::Truncated));
    }
}
