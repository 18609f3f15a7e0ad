//! all-MiniLM-L6-v2 sentence embeddings, computed as sentence-transformers computes them.

use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{Error, ModelDir, Result};

/// all-MiniLM-L6-v2: text → 384-dimensional unit vectors.
///
/// The same pipeline as sentence-transformers with this model's `modules.json`: WordPiece
/// tokenisation with `[CLS]`/`[SEP]`, truncation to [`Embedder::max_seq_len`] (256) word
/// pieces, a 6-layer BERT, mean pooling over the attention mask, L2 normalisation.
/// Results agree with Python sentence-transformers to about 1e-7 per element.
///
/// `Send + Sync`: [`Embedder::embed`] takes `&self` and may run on several threads at once
/// (each call runs its batches one after another; candle spreads each matrix product over
/// the machine's cores).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_seq_len: usize,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &Self::MODEL_ID)
            .field("max_seq_len", &self.max_seq_len)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// The model's id, as the OpenAI-compatible API names it.
    pub const MODEL_ID: &'static str = "all-MiniLM-L6-v2";
    /// Length of every embedding.
    pub const DIMENSION: usize = 384;
    /// Texts per forward pass. sentence-transformers' default `batch_size`; longer inputs
    /// are split into batches of this size (after sorting by length, so that each batch
    /// pads little).
    pub const BATCH_SIZE: usize = 32;

    /// Loads the model from `dir`'s `all-MiniLM-L6-v2` folder.
    pub fn load(dir: &ModelDir) -> Result<Self> {
        let folder = dir.minilm_dir();
        let config_path = dir.require(folder.join("config.json"))?;
        let tokenizer_path = dir.require(folder.join("tokenizer.json"))?;
        let weights_path = dir.require(folder.join("model.safetensors"))?;
        let st_config_path = dir.require(folder.join("sentence_bert_config.json"))?;

        let config: Config = serde_json::from_slice(&read(&config_path)?).map_err(|e| invalid(&config_path, e))?;
        let max_seq_len = max_seq_length(&st_config_path)?;

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(Error::tokenizer)?;
        // Ignore whatever padding/truncation tokenizer.json carries: sentence-transformers
        // truncates at max_seq_length and pads per batch, and so do we (see `embed`).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(Error::tokenizer)?;

        let device = Device::Cpu;
        // Read, not memory-mapped: mapping needs `unsafe`, which the workspace forbids.
        // 91 MB, read once at start-up.
        let weights = read(&weights_path)?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
        let model = BertModel::load(vb, &config).map_err(|e| invalid(&weights_path, e))?;
        if config.hidden_size != Self::DIMENSION {
            return Err(invalid(
                &config_path,
                format!("hidden_size {} is not {}", config.hidden_size, Self::DIMENSION),
            ));
        }
        Ok(Embedder { model, tokenizer, max_seq_len, device })
    }

    /// Longest input, in word pieces including `[CLS]` and `[SEP]`; longer texts are
    /// truncated (their end is dropped), as sentence-transformers does. 256 for this model.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// The number of tokens billed for embedding `text`: the word pieces the model runs on,
    /// **including** `[CLS]` and `[SEP]`, after truncation to [`Embedder::max_seq_len`]
    /// (padding is not counted). The empty string counts 2. The OpenAI-compatible
    /// `usage.prompt_tokens` of an embeddings request is the sum over its inputs.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let encoding = self.tokenizer.encode(text, true).map_err(Error::tokenizer)?;
        Ok(encoding.len())
    }

    /// Embeds each text into a unit vector of [`Embedder::DIMENSION`] floats, in the
    /// order given. An empty slice gives an empty result.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(self.embed_counted(texts)?.0)
    }

    /// [`Embedder::embed`], also returning the tokens billed (the sum of
    /// [`Embedder::count_tokens`] over `texts`) without tokenising twice.
    pub fn embed_counted(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, usize)> {
        let (vectors, counts) = self.embed_each_counted(texts)?;
        Ok((vectors, counts.iter().sum()))
    }

    /// [`Embedder::embed`], also returning each text's [`Embedder::count_tokens`] (for a
    /// caller that embeds several requests' texts together and bills each its own).
    pub fn embed_each_counted(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(Error::tokenizer)?;
        let tokens: Vec<usize> = encodings.iter().map(|e| e.len()).collect();

        // Longest first, as sentence-transformers does: each batch then holds texts of
        // similar length and pads little.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));

        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(Self::BATCH_SIZE) {
            let seqs: Vec<&[u32]> = batch.iter().map(|&i| encodings[i].get_ids()).collect();
            let vectors = self.forward_batch(&seqs)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok((out, tokens))
    }

    /// One forward pass over `seqs` (token ids with special tokens), padded to the longest.
    fn forward_batch(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let len = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let batch = seqs.len();
        let mut ids = vec![0u32; batch * len]; // [PAD] is id 0
        let mut mask = vec![0u32; batch * len];
        for (row, seq) in seqs.iter().enumerate() {
            ids[row * len..row * len + seq.len()].copy_from_slice(seq);
            mask[row * len..row * len + seq.len()].fill(1);
        }
        let ids = Tensor::from_vec(ids, (batch, len), &self.device)?;
        let mask = Tensor::from_vec(mask, (batch, len), &self.device)?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (batch, len, 384)

        // Mean over the real tokens: Σ hidden·mask / Σ mask (the count is ≥ 2: [CLS], [SEP]).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (batch, len, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (batch, 384)
        let counts = mask.sum(1)?; // (batch, 1)
        let mean = summed.broadcast_div(&counts)?;
        // L2 normalisation, as torch.nn.functional.normalize (norm clamped at 1e-12).
        let norms = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        let unit = mean.broadcast_div(&norms)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::InvalidModel { path: path.to_owned(), message: message.to_string() }
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json`.
fn max_seq_length(path: &Path) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct SentenceBertConfig {
        max_seq_length: usize,
    }
    let config: SentenceBertConfig = serde_json::from_slice(&read(path)?).map_err(|e| invalid(path, e))?;
    if config.max_seq_length < 2 {
        return Err(invalid(path, "max_seq_length below 2"));
    }
    Ok(config.max_seq_length)
}
