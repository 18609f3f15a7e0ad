//! The crate's error type.

use std::path::PathBuf;

/// Why loading a model or running it failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file is not in the models directory.
    #[error(
        "model file {path} is missing: run scripts/fetch-models.sh {dir} \
         (or set TESSERA_MODELS_DIR to a directory it filled)"
    )]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
        /// The models directory it should be in.
        dir: PathBuf,
    },
    /// A model file exists but could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A model file was read but its contents are not what this crate expects.
    #[error("invalid model file {path}: {message}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The tokenizer failed (building it, encoding or decoding).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tensor library failed while loading weights or running inference.
    #[error("inference: {0}")]
    Candle(#[from] candle_core::Error),
    /// The prompt leaves no room to generate in the model's context window.
    #[error(
        "prompt has {prompt_tokens} tokens; the model's context holds at most \
         {context_tokens_max} (prompt and completion together)"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Context window, in tokens.
        context_tokens_max: usize,
    },
    /// A request parameter is out of range.
    #[error("invalid parameter {name}: {message}")]
    InvalidParameter {
        /// The parameter's name, as in the OpenAI API (`temperature`, `stop`, …).
        name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// No models directory could be derived from the environment.
    #[error("cannot locate the models directory: set TESSERA_MODELS_DIR, TESSERA_HOME or HOME")]
    NoModelsDir,
}

impl Error {
    pub(crate) fn tokenizer(err: impl std::fmt::Display) -> Self {
        Error::Tokenizer(err.to_string())
    }
}
