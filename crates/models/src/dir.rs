//! Where the model files live.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Environment variable naming the models directory; it overrides every default.
pub const MODELS_DIR_ENV: &str = "TESSERA_MODELS_DIR";
/// Environment variable naming Tessera's home directory (default `~/.tessera`); without
/// [`MODELS_DIR_ENV`] the models directory is `$TESSERA_HOME/models`.
pub const TESSERA_HOME_ENV: &str = "TESSERA_HOME";

/// A models directory, as `scripts/fetch-models.sh` lays it out:
///
/// ```text
/// <root>/all-MiniLM-L6-v2/config.json
///                         tokenizer.json
///                         model.safetensors
///                         sentence_bert_config.json, modules.json, 1_Pooling/config.json
/// <root>/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf
/// ```
///
/// Where the root is:
/// * for a node or any user of the library: [`ModelDir::from_env_or_default`], i.e.
///   `$TESSERA_MODELS_DIR`, else `$TESSERA_HOME/models`, else `~/.tessera/models`
///   (fill it with `scripts/fetch-models.sh ~/.tessera/models`);
/// * for this workspace's tests: [`ModelDir::for_workspace_tests`], i.e.
///   `$TESSERA_MODELS_DIR`, else `<workspace>/target/models`, which is where
///   `scripts/fetch-models.sh` puts the files when run with no argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// Folder of the all-MiniLM-L6-v2 files, relative to the root.
    pub const MINILM_DIR: &'static str = "all-MiniLM-L6-v2";
    /// The SmolLM2-135M-Instruct GGUF file, relative to the root.
    pub const SMOLLM2_GGUF: &'static str = "SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

    /// A models directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelDir { root: root.into() }
    }

    /// The directory for a user or a node: `$TESSERA_MODELS_DIR`, else
    /// `$TESSERA_HOME/models`, else `$HOME/.tessera/models`. Empty variables count as
    /// unset. Fails only when none of the three variables is set.
    pub fn from_env_or_default() -> Result<Self> {
        if let Some(dir) = env_path(MODELS_DIR_ENV) {
            return Ok(Self::new(dir));
        }
        if let Some(home) = env_path(TESSERA_HOME_ENV) {
            return Ok(Self::new(home.join("models")));
        }
        match env_path("HOME") {
            Some(home) => Ok(Self::new(home.join(".tessera").join("models"))),
            None => Err(Error::NoModelsDir),
        }
    }

    /// The directory for tests in this workspace: `$TESSERA_MODELS_DIR`, else
    /// `<workspace root>/target/models` (the default of `scripts/fetch-models.sh`).
    ///
    /// The workspace root is found from this crate's `CARGO_MANIFEST_DIR` at compile
    /// time, so this is meant for tests, benches and examples built from the source tree,
    /// not for installed binaries.
    pub fn for_workspace_tests() -> Self {
        if let Some(dir) = env_path(MODELS_DIR_ENV) {
            return Self::new(dir);
        }
        let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let workspace = crate_dir.parent().and_then(Path::parent).unwrap_or(crate_dir);
        Self::new(workspace.join("target").join("models"))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding the all-MiniLM-L6-v2 files.
    pub fn minilm_dir(&self) -> PathBuf {
        self.root.join(Self::MINILM_DIR)
    }

    /// The SmolLM2-135M-Instruct GGUF file.
    pub fn smollm2_gguf(&self) -> PathBuf {
        self.root.join(Self::SMOLLM2_GGUF)
    }

    /// `path`, or [`Error::MissingFile`] naming this directory when it is not a file.
    pub(crate) fn require(&self, path: PathBuf) -> Result<PathBuf> {
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::MissingFile { path, dir: self.root.clone() })
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let dir = ModelDir::new("/m");
        assert_eq!(dir.minilm_dir(), Path::new("/m/all-MiniLM-L6-v2"));
        assert_eq!(dir.smollm2_gguf(), Path::new("/m/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"));
    }

    #[test]
    fn missing_file_names_the_fetch_script() {
        let dir = ModelDir::new("/nonexistent-tessera-models");
        let err = dir.require(dir.smollm2_gguf()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("scripts/fetch-models.sh"), "{msg}");
        assert!(msg.contains("/nonexistent-tessera-models"), "{msg}");
    }
}
