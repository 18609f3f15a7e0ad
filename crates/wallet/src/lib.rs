//! Tessera wallet library: encrypted key files, transaction building and the HTTP API client.
pub mod client;
pub mod keystore;

use crypto::SigningKey;
use keystore::{KeyFile, KeystoreError};
use primitives::Address;
use std::path::{Path, PathBuf};
pub use zeroize::Zeroizing;

/// Environment variable holding the passphrase of encrypted key files; when set (and not
/// empty) no prompt is shown.
pub const PASSPHRASE_ENV: &str = "TESSERA_PASSPHRASE";
/// Environment variable naming Tessera's home directory (default `$HOME/.tessera`).
pub const HOME_ENV: &str = "TESSERA_HOME";
/// Longest wallet name, in characters.
pub const WALLET_NAME_CHARS_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    #[error("invalid wallet name {0:?}: use 1-{WALLET_NAME_CHARS_MAX} characters of A-Z, a-z, 0-9, '_' and '-'")]
    InvalidName(String),
    #[error("wallet {name:?} already exists at {}", path.display())]
    Exists { name: String, path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("could not read the passphrase ({0}); set {PASSPHRASE_ENV} when there is no terminal")]
    Prompt(std::io::Error),
}

/// Whether `name` is a valid wallet name: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_wallet_name(name: &str) -> bool {
    (1..=WALLET_NAME_CHARS_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn non_empty_env(var: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(var).filter(|v| !v.is_empty())
}

/// The passphrase from `TESSERA_PASSPHRASE`, if that is set and not empty.
pub fn passphrase_from_env() -> Option<Zeroizing<String>> {
    std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty()).map(Zeroizing::new)
}

/// A directory of named key files, `<root>/<name>.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletDir {
    root: PathBuf,
}

impl WalletDir {
    pub fn new(root: impl Into<PathBuf>) -> WalletDir {
        WalletDir { root: root.into() }
    }

    /// `$TESSERA_HOME/wallets`, else `$HOME/.tessera/wallets`, else (no home at all)
    /// `.tessera/wallets` relative to the working directory.
    pub fn default_location() -> WalletDir {
        let home = non_empty_env(HOME_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| non_empty_env("HOME").map(PathBuf::from).unwrap_or_default().join(".tessera"));
        WalletDir::new(home.join("wallets"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where wallet `name` lives (whether or not it exists).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    /// Stores `file` as wallet `name`, creating the directory (mode 0700) if needed. Never
    /// overwrites an existing wallet.
    pub fn create(&self, name: &str, file: &KeyFile) -> Result<PathBuf, WalletError> {
        if !is_valid_wallet_name(name) {
            return Err(WalletError::InvalidName(name.chars().take(80).collect()));
        }
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.root).map_err(|source| WalletError::Io { path: self.root.clone(), source })?;
        let path = self.path(name);
        match keystore::write_new(&path, file) {
            Ok(()) => Ok(path),
            Err(KeystoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(WalletError::Exists { name: name.to_string(), path })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every wallet as (name, address, encrypted), sorted by name. A missing directory has
    /// no wallets; files that are not valid key files are skipped.
    pub fn list(&self) -> Result<Vec<(String, Address, bool)>, WalletError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WalletError::Io { path: self.root.clone(), source }),
        };
        let mut wallets = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| WalletError::Io { path: self.root.clone(), source })?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_valid_wallet_name(name) || !path.is_file() {
                continue;
            }
            if let Ok(file) = keystore::read(&path) {
                wallets.push((name.to_string(), file.address()?, file.is_encrypted()));
            }
        }
        wallets.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(wallets)
    }
}

/// A key file path given on the command line, or a wallet name in the default directory.
/// Something with a `/` or ending in `.key`/`.json` is a path (never a valid wallet name);
/// anything else names a wallet.
pub fn resolve_key_path(name_or_path: &str) -> PathBuf {
    let looks_like_path = name_or_path.contains('/')
        || name_or_path.contains(std::path::MAIN_SEPARATOR)
        || name_or_path.ends_with(".key")
        || name_or_path.ends_with(".json");
    if looks_like_path || (!is_valid_wallet_name(name_or_path) && Path::new(name_or_path).exists()) {
        PathBuf::from(name_or_path)
    } else {
        WalletDir::default_location().path(name_or_path)
    }
}

/// Loads the signing key in the key file at `path`. For an encrypted file the passphrase
/// is `TESSERA_PASSPHRASE` when set, otherwise whatever `passphrase` returns (a prompt).
pub fn load_signing_key(
    path: &Path,
    passphrase: impl FnOnce() -> Result<String, std::io::Error>,
) -> Result<SigningKey, WalletError> {
    let file = keystore::read(path)?;
    decrypt_key_file(&file, passphrase)
}

/// `load_signing_key` for a key file already read.
pub fn decrypt_key_file(
    file: &KeyFile,
    passphrase: impl FnOnce() -> Result<String, std::io::Error>,
) -> Result<SigningKey, WalletError> {
    if !file.is_encrypted() {
        return Ok(file.decrypt(None)?);
    }
    let passphrase = match passphrase_from_env() {
        Some(p) => p,
        None => Zeroizing::new(passphrase().map_err(WalletError::Prompt)?),
    };
    Ok(file.decrypt(Some(&passphrase))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keystore::KdfParams;

    fn plain(seed: u8) -> KeyFile {
        keystore::unencrypted(&SigningKey::from_seed([seed; 32]))
    }

    #[test]
    fn create_list_and_refuse_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = WalletDir::new(tmp.path().join("nested/wallets"));
        assert_eq!(dir.list().unwrap(), vec![]);

        let encrypted =
            keystore::encrypt(&SigningKey::from_seed([2; 32]), "pw", KdfParams::insecure_fast_for_tests()).unwrap();
        let bob = dir.create("bob", &encrypted).unwrap();
        let alice = dir.create("alice_1-x", &plain(1)).unwrap();
        assert_eq!(alice, dir.path("alice_1-x"));
        assert_eq!(bob, tmp.path().join("nested/wallets/bob.json"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(dir.root()), 0o700);
            assert_eq!(mode(&alice), 0o600);
        }

        // Noise the listing must skip.
        std::fs::write(dir.root().join("notes.txt"), "hi").unwrap();
        std::fs::write(dir.root().join("broken.json"), "{").unwrap();
        std::fs::write(dir.root().join("bad name.json"), plain(3).to_json()).unwrap();

        let addr = |s: u8| SigningKey::from_seed([s; 32]).address();
        assert_eq!(
            dir.list().unwrap(),
            vec![("alice_1-x".to_string(), addr(1), false), ("bob".to_string(), addr(2), true),]
        );

        let err = dir.create("bob", &plain(9)).unwrap_err();
        assert!(matches!(err, WalletError::Exists { .. }), "{err:?}");
        assert!(err.to_string().contains("already exists"));
        // The original is untouched.
        assert_eq!(keystore::read(&bob).unwrap(), encrypted);
    }

    #[test]
    fn invalid_names_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = WalletDir::new(tmp.path());
        let long = "a".repeat(WALLET_NAME_CHARS_MAX + 1);
        for bad in ["", "a/b", "../x", "a.b", "a b", "ü", "x\n", long.as_str()] {
            assert!(matches!(dir.create(bad, &plain(1)), Err(WalletError::InvalidName(_))), "{bad:?} accepted");
        }
        let max = "Z".repeat(WALLET_NAME_CHARS_MAX);
        assert!(dir.create(&max, &plain(1)).is_ok());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn resolve_key_path_prefers_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("dev.key");
        std::fs::write(&file, "x").unwrap();
        let s = file.to_str().unwrap();
        assert_eq!(resolve_key_path(s), file);
        assert_eq!(resolve_key_path("./missing.json"), PathBuf::from("./missing.json"));
        assert_eq!(resolve_key_path("other.key"), PathBuf::from("other.key"));
        assert_eq!(resolve_key_path("alice"), WalletDir::default_location().path("alice"));
    }

    #[test]
    fn load_signing_key_uses_the_prompt_and_reports_wrong_passphrases() {
        // Runs with TESSERA_PASSPHRASE unset (tests do not set it; see the CLI tests).
        if passphrase_from_env().is_some() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed([4; 32]);
        let enc_path = tmp.path().join("enc.json");
        let file = keystore::encrypt(&key, "secret", KdfParams::insecure_fast_for_tests()).unwrap();
        keystore::write_new(&enc_path, &file).unwrap();
        let loaded = load_signing_key(&enc_path, || Ok("secret".into())).unwrap();
        assert_eq!(loaded.address(), key.address());
        let wrong = load_signing_key(&enc_path, || Ok("nope".into())).err().unwrap();
        assert!(matches!(wrong, WalletError::Keystore(KeystoreError::WrongPassphrase)));
        let no_tty = load_signing_key(&enc_path, || Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no tty")))
            .err()
            .unwrap();
        assert!(no_tty.to_string().contains(PASSPHRASE_ENV), "{no_tty}");

        let plain_path = tmp.path().join("plain.json");
        keystore::write_new(&plain_path, &plain(4)).unwrap();
        let loaded = load_signing_key(&plain_path, || panic!("no prompt for plain files")).unwrap();
        assert_eq!(loaded.address(), key.address());
    }
}
