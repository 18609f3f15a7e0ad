//! Encrypted key files: the 32-byte ed25519 seed sealed with XChaCha20-Poly1305 under a key
//! derived from a passphrase with Argon2id. The AEAD's associated data binds the address and
//! the KDF parameters, so editing or swapping any of them makes decryption fail.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use primitives::Address;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

pub const KEYFILE_VERSION: u32 = 1;
/// Largest key file `read` and `from_json` accept.
pub const KEYFILE_BYTES_MAX: usize = 64 * 1024;
/// Bounds on stored Argon2id parameters, so a hostile file cannot make loading hang.
pub const KDF_M_COST_KIB_MAX: u32 = 4 * 1024 * 1024; // 4 GiB
pub const KDF_T_COST_MAX: u32 = 100;
pub const KDF_P_COST_MAX: u32 = 16;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const CIPHERTEXT_LEN: usize = 32 + 16; // seed + Poly1305 tag
const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "xchacha20poly1305";

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("key file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid key file: {0}")]
    Format(String),
    #[error("wrong passphrase, or the key file was modified")]
    WrongPassphrase,
    #[error("key file is for address {file}, but its key derives address {derived}")]
    AddressMismatch { file: String, derived: String },
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
}

fn format_err(msg: impl Into<String>) -> KeystoreError {
    KeystoreError::Format(msg.into())
}

/// Argon2id cost parameters, stored in every encrypted key file and honoured on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: the default for real keys.
    pub fn interactive() -> KdfParams {
        KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 }
    }

    /// 8 KiB, 1 pass: only for tests; offers no protection against guessing.
    pub fn insecure_fast_for_tests() -> KdfParams {
        KdfParams { m_cost_kib: 8, t_cost: 1, p_cost: 1 }
    }

    pub fn validate(&self) -> Result<(), KeystoreError> {
        let KdfParams { m_cost_kib: m, t_cost: t, p_cost: p } = *self;
        if !(1..=KDF_P_COST_MAX).contains(&p) {
            return Err(format_err(format!("kdf p_cost {p} outside 1..={KDF_P_COST_MAX}")));
        }
        if !(1..=KDF_T_COST_MAX).contains(&t) {
            return Err(format_err(format!("kdf t_cost {t} outside 1..={KDF_T_COST_MAX}")));
        }
        if m < 8 * p || m > KDF_M_COST_KIB_MAX {
            return Err(format_err(format!("kdf m_cost_kib {m} outside {}..={KDF_M_COST_KIB_MAX}", 8 * p)));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::interactive()
    }
}

/// A parsed, validated key file. Serialises to (and only from) the version-1 JSON form.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawKeyFile", into = "RawKeyFile")]
pub struct KeyFile {
    address: Address,
    body: Body,
}

#[derive(Clone, PartialEq, Eq)]
enum Body {
    Encrypted { kdf: KdfParams, salt: [u8; SALT_LEN], nonce: [u8; NONCE_LEN], ciphertext: Vec<u8> },
    Plain { seed: Zeroizing<[u8; 32]> },
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("address", &self.address).field("encrypted", &self.is_encrypted()).finish()
    }
}

/// The on-disk JSON shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyFile {
    version: u32,
    address: String,
    encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<RawKdf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cipher: Option<RawCipher>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_seed: Option<String>,
}

impl Drop for RawKeyFile {
    fn drop(&mut self) {
        self.secret_seed.zeroize();
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKdf {
    name: String,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCipher {
    name: String,
    nonce: String,
}

fn hex_array<const N: usize>(field: &str, s: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| format!("{field}: expected {N} bytes of hex: {e}"))?;
    Ok(out)
}

impl TryFrom<RawKeyFile> for KeyFile {
    type Error = String;
    fn try_from(mut raw: RawKeyFile) -> Result<Self, String> {
        if raw.version != KEYFILE_VERSION {
            return Err(format!("unsupported version {} (expected {KEYFILE_VERSION})", raw.version));
        }
        let address: Address = raw.address.parse().map_err(|e| format!("address: {e}"))?;
        let body =
            match (raw.encrypted, raw.kdf.take(), raw.cipher.take(), raw.ciphertext.take(), raw.secret_seed.take()) {
                (true, Some(kdf), Some(cipher), Some(ct), None) => {
                    if kdf.name != KDF_NAME || cipher.name != CIPHER_NAME {
                        return Err(format!("unsupported kdf/cipher {:?}/{:?}", kdf.name, cipher.name));
                    }
                    let params = KdfParams { m_cost_kib: kdf.m_cost_kib, t_cost: kdf.t_cost, p_cost: kdf.p_cost };
                    params.validate().map_err(|e| e.to_string())?;
                    let ciphertext = hex::decode(&ct).map_err(|e| format!("ciphertext: {e}"))?;
                    if ciphertext.len() != CIPHERTEXT_LEN {
                        return Err(format!("ciphertext holds {} bytes, expected {CIPHERTEXT_LEN}", ciphertext.len()));
                    }
                    let (salt, nonce) = (hex_array("kdf.salt", &kdf.salt)?, hex_array("cipher.nonce", &cipher.nonce)?);
                    Body::Encrypted { kdf: params, salt, nonce, ciphertext }
                }
                (false, None, None, None, Some(seed_hex)) => {
                    let seed_hex = Zeroizing::new(seed_hex);
                    Body::Plain { seed: Zeroizing::new(hex_array("secret_seed", &seed_hex)?) }
                }
                (true, ..) => {
                    return Err("an encrypted file needs kdf, cipher and ciphertext, and no secret_seed".into())
                }
                (false, ..) => {
                    return Err("an unencrypted file needs secret_seed, and no kdf, cipher or ciphertext".into())
                }
            };
        Ok(KeyFile { address, body })
    }
}

impl From<KeyFile> for RawKeyFile {
    fn from(file: KeyFile) -> RawKeyFile {
        let mut raw = RawKeyFile {
            version: KEYFILE_VERSION,
            address: file.address.to_string(),
            encrypted: file.is_encrypted(),
            kdf: None,
            cipher: None,
            ciphertext: None,
            secret_seed: None,
        };
        match &file.body {
            Body::Encrypted { kdf, salt, nonce, ciphertext } => {
                let KdfParams { m_cost_kib, t_cost, p_cost } = *kdf;
                raw.kdf = Some(RawKdf { name: KDF_NAME.into(), m_cost_kib, t_cost, p_cost, salt: hex::encode(salt) });
                raw.cipher = Some(RawCipher { name: CIPHER_NAME.into(), nonce: hex::encode(nonce) });
                raw.ciphertext = Some(hex::encode(ciphertext));
            }
            Body::Plain { seed } => raw.secret_seed = Some(hex::encode(seed.as_slice())),
        }
        raw
    }
}

/// Associated data: binds the format, address, KDF and its parameters to the ciphertext.
fn associated_data(address: &Address, kdf: &KdfParams, salt: &[u8]) -> Vec<u8> {
    let KdfParams { m_cost_kib, t_cost, p_cost } = kdf;
    format!("tessera-keystore-v{KEYFILE_VERSION}|{address}|{KDF_NAME}|m={m_cost_kib}|t={t_cost}|p={p_cost}|salt={}|{CIPHER_NAME}", hex::encode(salt))
        .into_bytes()
}

fn derive_key(passphrase: &str, kdf: &KdfParams, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    kdf.validate()?;
    let params =
        Params::new(kdf.m_cost_kib, kdf.t_cost, kdf.p_cost, Some(32)).map_err(|e| format_err(format!("kdf: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut_slice())
        .map_err(|e| format_err(format!("kdf: {e}")))?;
    Ok(key)
}

/// Seals `key` under `passphrase` with fresh random salt and nonce.
pub fn encrypt(key: &crypto::SigningKey, passphrase: &str, params: KdfParams) -> Result<KeyFile, KeystoreError> {
    if passphrase.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    let address = key.address();
    let (mut salt, mut nonce) = ([0u8; SALT_LEN], [0u8; NONCE_LEN]);
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let dk = derive_key(passphrase, &params, &salt)?;
    let seed = key.seed();
    let aad = associated_data(&address, &params, &salt);
    let ciphertext = XChaCha20Poly1305::new(Key::from_slice(dk.as_slice()))
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: seed.as_slice(), aad: &aad })
        .map_err(|_| format_err("encryption failed"))?;
    Ok(KeyFile { address, body: Body::Encrypted { kdf: params, salt, nonce, ciphertext } })
}

/// The explicit, unencrypted (development) form: the seed in plain hex.
pub fn unencrypted(key: &crypto::SigningKey) -> KeyFile {
    KeyFile { address: key.address(), body: Body::Plain { seed: key.seed() } }
}

impl KeyFile {
    pub fn address(&self) -> Result<Address, KeystoreError> {
        Ok(self.address)
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self.body, Body::Encrypted { .. })
    }

    /// The KDF parameters of an encrypted file.
    pub fn kdf_params(&self) -> Option<KdfParams> {
        match &self.body {
            Body::Encrypted { kdf, .. } => Some(*kdf),
            Body::Plain { .. } => None,
        }
    }

    /// Recovers the signing key; `passphrase` is ignored for unencrypted files.
    pub fn decrypt(&self, passphrase: Option<&str>) -> Result<crypto::SigningKey, KeystoreError> {
        let key = match &self.body {
            Body::Plain { seed } => crypto::SigningKey::from_seed(**seed),
            Body::Encrypted { kdf, salt, nonce, ciphertext } => {
                let passphrase = passphrase.filter(|p| !p.is_empty()).ok_or(KeystoreError::EmptyPassphrase)?;
                let dk = derive_key(passphrase, kdf, salt)?;
                let aad = associated_data(&self.address, kdf, salt);
                let plain = Zeroizing::new(
                    XChaCha20Poly1305::new(Key::from_slice(dk.as_slice()))
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
                        .map_err(|_| KeystoreError::WrongPassphrase)?,
                );
                let mut seed = Zeroizing::new([0u8; 32]);
                if plain.len() != 32 {
                    return Err(format_err("decrypted seed has the wrong length"));
                }
                seed.copy_from_slice(&plain);
                crypto::SigningKey::from_seed(*seed)
            }
        };
        let derived = key.address();
        if derived != self.address {
            return Err(KeystoreError::AddressMismatch {
                file: self.address.to_string(),
                derived: derived.to_string(),
            });
        }
        Ok(key)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a key file always serialises")
    }

    pub fn from_json(s: &str) -> Result<KeyFile, KeystoreError> {
        if s.len() > KEYFILE_BYTES_MAX {
            return Err(format_err(format!("larger than {KEYFILE_BYTES_MAX} bytes")));
        }
        serde_json::from_str(s).map_err(|e| format_err(e.to_string()))
    }
}

/// Creates `path` (failing if it exists), mode 0600 on unix, writes `file` and fsyncs it.
pub fn write_new(path: &Path, file: &KeyFile) -> Result<(), KeystoreError> {
    let io_err = |source| KeystoreError::Io { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(io_err)?;
    let mut json = Zeroizing::new(file.to_json());
    json.push('\n');
    if let Err(e) = f.write_all(json.as_bytes()).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = std::fs::remove_file(path);
        return Err(io_err(e));
    }
    Ok(())
}

/// Reads and parses a key file, refusing anything over `KEYFILE_BYTES_MAX` bytes.
pub fn read(path: &Path) -> Result<KeyFile, KeystoreError> {
    let io_err = |source| KeystoreError::Io { path: path.to_path_buf(), source };
    let f = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Zeroizing::new(Vec::new());
    f.take(KEYFILE_BYTES_MAX as u64 + 1).read_to_end(&mut bytes).map_err(io_err)?;
    if bytes.len() > KEYFILE_BYTES_MAX {
        return Err(format_err(format!("larger than {KEYFILE_BYTES_MAX} bytes")));
    }
    let s = std::str::from_utf8(&bytes).map_err(|_| format_err("not UTF-8"))?;
    KeyFile::from_json(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto::SigningKey;

    fn fast() -> KdfParams {
        KdfParams::insecure_fast_for_tests()
    }

    fn edit(file: &KeyFile, f: impl FnOnce(&mut serde_json::Value)) -> KeyFile {
        let mut v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        f(&mut v);
        KeyFile::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn encrypted_round_trip() {
        let key = SigningKey::generate();
        let file = encrypt(&key, "hunter2", fast()).unwrap();
        assert!(file.is_encrypted());
        let json = file.to_json();
        assert!(!json.contains(&hex::encode(key.seed().as_slice())));
        let back = KeyFile::from_json(&json).unwrap();
        assert_eq!(back, file);
        assert_eq!(back.address().unwrap(), key.address());
        assert_eq!(back.kdf_params(), Some(fast()));
        assert_eq!(*back.decrypt(Some("hunter2")).unwrap().seed(), *key.seed());
        assert!(matches!(encrypt(&key, "", fast()), Err(KeystoreError::EmptyPassphrase)));
        assert!(matches!(back.decrypt(None), Err(KeystoreError::EmptyPassphrase)));
    }

    #[test]
    fn unencrypted_round_trip_and_address_check() {
        let key = SigningKey::from_seed([7; 32]);
        let file = KeyFile::from_json(&unencrypted(&key).to_json()).unwrap();
        assert!(!file.is_encrypted());
        assert_eq!(*file.decrypt(None).unwrap().seed(), [7; 32]);
        assert_eq!(*file.decrypt(Some("ignored")).unwrap().seed(), [7; 32]);
        let other = SigningKey::from_seed([8; 32]).address().to_string();
        let bad = edit(&file, |v| v["address"] = other.clone().into());
        assert!(matches!(bad.decrypt(None), Err(KeystoreError::AddressMismatch { .. })));
    }

    #[test]
    fn wrong_passphrase_tampering_and_swapped_fields_fail() {
        let key = SigningKey::generate();
        let file = encrypt(&key, "correct horse", fast()).unwrap();
        assert!(matches!(file.decrypt(Some("wrong")), Err(KeystoreError::WrongPassphrase)));
        let tampered = edit(&file, |v| {
            let mut ct = hex::decode(v["ciphertext"].as_str().unwrap()).unwrap();
            ct[0] ^= 1;
            v["ciphertext"] = hex::encode(ct).into();
        });
        assert!(matches!(tampered.decrypt(Some("correct horse")), Err(KeystoreError::WrongPassphrase)));
        let other = SigningKey::generate().address().to_string();
        let swapped = edit(&file, |v| v["address"] = other.clone().into());
        assert!(swapped.decrypt(Some("correct horse")).is_err());
        let retuned = edit(&file, |v| v["kdf"]["t_cost"] = 2.into());
        assert!(matches!(retuned.decrypt(Some("correct horse")), Err(KeystoreError::WrongPassphrase)));
    }

    #[test]
    fn bad_files_are_format_errors() {
        let file = encrypt(&SigningKey::generate(), "pw", fast()).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&file.to_json()).unwrap();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("/version", 2.into()),
            ("/kdf/m_cost_kib", (KDF_M_COST_KIB_MAX + 1).into()),
            ("/kdf/t_cost", 1000.into()),
            ("/kdf/salt", "zz".into()),
            ("/cipher/nonce", "00".into()),
            ("/address", "tsr1nope".into()),
        ];
        for (ptr, val) in cases {
            let mut bad = v.clone();
            *bad.pointer_mut(ptr).unwrap() = val;
            assert!(matches!(KeyFile::from_json(&bad.to_string()), Err(KeystoreError::Format(_))), "{ptr}");
        }
        v.as_object_mut().unwrap().remove("ciphertext");
        for s in [v.to_string(), "not json".into(), "{}".into(), " ".repeat(KEYFILE_BYTES_MAX + 1)] {
            assert!(matches!(KeyFile::from_json(&s), Err(KeystoreError::Format(_))));
        }
    }

    #[test]
    fn write_new_is_exclusive_private_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        let key = SigningKey::generate();
        let file = encrypt(&key, "pw", fast()).unwrap();
        write_new(&path, &file).unwrap();
        assert!(matches!(write_new(&path, &unencrypted(&key)), Err(KeystoreError::Io { .. })));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(read(&path).unwrap(), file);
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; KEYFILE_BYTES_MAX + 1]).unwrap();
        assert!(matches!(read(&big), Err(KeystoreError::Format(_))));
        assert!(matches!(read(&dir.path().join("missing")), Err(KeystoreError::Io { .. })));
    }
}
