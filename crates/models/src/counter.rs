//! Counting tokens without a model: the tokenizer of a GGUF file (its metadata only, no
//! weights are read) or of a Hugging Face `tokenizer.json`. A provider that proxies an
//! upstream server bills from these counts.

use crate::generator::tokenizer_from_gguf;
use crate::{Error, Result};
use candle_core::quantized::gguf_file;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use tokenizers::Tokenizer;

/// A tokenizer that counts.
pub struct TokenCounter {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounter").finish_non_exhaustive()
    }
}

/// Tokens ChatML adds around each message (`<|im_start|>`, the newline after the role, and
/// `<|im_end|>\n`), and around the assistant's opened turn.
const CHATML_PER_MESSAGE: usize = 4;
const CHATML_REPLY: usize = 2;

impl TokenCounter {
    /// From a `.gguf` file (its tokenizer metadata) or a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<TokenCounter> {
        let invalid = |message: String| Error::InvalidModel { path: path.to_owned(), message };
        let tokenizer = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) {
            let io = |source| Error::Io { path: path.to_owned(), source };
            let mut reader = BufReader::new(File::open(path).map_err(io)?);
            let content = gguf_file::Content::read(&mut reader).map_err(|e| invalid(e.to_string()))?;
            tokenizer_from_gguf(&content).map_err(invalid)?
        } else {
            let mut t = Tokenizer::from_file(path).map_err(|e| invalid(e.to_string()))?;
            // Counting, not batching: no padding to a fixed length, no truncation.
            t.with_padding(None);
            t.with_truncation(None).map_err(|e| invalid(e.to_string()))?;
            t
        };
        Ok(TokenCounter { tokenizer })
    }

    /// Tokens of `text` as plain text (no special tokens).
    pub fn count(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text, false).map_err(Error::tokenizer)?.get_ids().len())
    }

    /// Tokens of a chat rendered with ChatML (`<|im_start|>role\ncontent<|im_end|>\n` per
    /// message, then `<|im_start|>assistant\n`): the role and content as plain text plus
    /// the template's control tokens. A template that adds more (a default system prompt)
    /// is not counted.
    pub fn count_chat<'a>(&self, messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<usize> {
        let mut n = CHATML_REPLY + self.count("assistant")?;
        for (role, content) in messages {
            n += CHATML_PER_MESSAGE + self.count(role)? + self.count(content)?;
        }
        Ok(n)
    }
}
