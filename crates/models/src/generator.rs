//! SmolLM2-135M-Instruct text generation from its GGUF file, with candle's quantised llama.

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::stop::StopScanner;
use crate::{Error, ModelDir, Result};

/// The chat template stored in the GGUF (`tokenizer.chat_template`, Jinja). It is ChatML
/// with a default system message; [`Generator::chat_prompt`] renders it in Rust, and
/// loading checks that the file carries exactly this template.
const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
/// The system message the template inserts when the conversation does not start with one.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";
const END_OF_TEXT: &str = "<|endoftext|>";
/// Control tokens have this `tokenizer.ggml.token_type` (llama.cpp's LLAMA_TOKEN_TYPE_CONTROL).
const TOKEN_TYPE_CONTROL: i32 = 3;
/// OpenAI accepts at most 4 stop sequences.
const STOP_SEQUENCES_MAX: usize = 4;

/// Which weights the generator computes with.
///
/// The GGUF holds Q4_1 matrices (and a Q8_0 token embedding, tied to the output layer).
/// candle 0.11.1 has no SIMD kernel for Q4_1: its dot product is scalar code, fast only
/// when the whole build targets AVX2 (`-C target-cpu=…`). Its Q8_0 kernel picks AVX2 at
/// run time. Hence the default requantises the Q4_1 matrices to Q8_0 at load: 2.5× the
/// tokens/s of [`Precision::Q4_1`] with default compiler flags (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// The Q4_1 matrices requantised to Q8_0 at load (the rounding error is at most an
    /// eighth of a Q4_1 step; about 0.5 s more at load, about 150 MB of weights). The
    /// fastest; what a server should use. Its greedy text follows Q4_1's for a while and
    /// may then diverge at a near-tie, equally fluent.
    #[default]
    Q8_0,
    /// The GGUF's weights as they are (about 100 MB): the same arithmetic as llama.cpp
    /// on this file. Like llama.cpp, the quantised paths quantise activations to 8 bits,
    /// so their greedy output can differ from an f32 reference where two logits nearly tie.
    Q4_1,
    /// Every weight dequantised to f32 at load (about 600 MB, slower). Greedy output
    /// matches Python transformers on the same GGUF token for token: for golden tests.
    F32,
}

/// One message of a chat, as in OpenAI's `messages` (`role`: `system`, `user`,
/// `assistant`, …; the role is written into the prompt as given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: String,
    /// What they say.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// Sampling and stopping parameters, with OpenAI's names and ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// Most tokens to generate (≥ 1). Generation also ends at the context window.
    pub max_tokens: usize,
    /// 0 (greedy: always the most likely token) to 2. Higher is more random.
    pub temperature: f64,
    /// Nucleus sampling: sample among the most likely tokens whose probabilities sum to
    /// `top_p`, in (0, 1]. Ignored when greedy.
    pub top_p: f64,
    /// Seed of the sampler: the same seed, parameters and prompt give the same output.
    pub seed: u64,
    /// Up to 4 non-empty strings; generation stops before the first occurrence of any,
    /// which is not part of the returned text.
    pub stop: Vec<String>,
    /// OpenAI's `frequency_penalty`, in [-2, 2]: subtracted from a token's logit once for
    /// every time it was generated so far (in this completion; the prompt does not count).
    pub frequency_penalty: f32,
    /// OpenAI's `presence_penalty`, in [-2, 2]: subtracted once from the logit of every
    /// token generated so far.
    pub presence_penalty: f32,
    /// OpenAI's `logit_bias`: (token id, bias in [-100, 100]) added to the token's logit
    /// before sampling (-100 in effect bans it, 100 forces it).
    pub logit_bias: Vec<(u32, f32)>,
    /// Report each generated token's log probability and this many (0 to
    /// [`TOP_LOGPROBS_MAX`]) most likely alternatives; `None`: none.
    pub logprobs: Option<usize>,
    /// JSON mode (OpenAI's `response_format: {"type": "json_object"}`): only tokens that
    /// keep the text a valid prefix of a JSON object are sampled, and the text ends once the
    /// object is complete ([`crate::json_mode`]). A text cut short by `max_tokens` is a
    /// prefix, as with OpenAI.
    pub json_object: bool,
}

/// Most alternatives reported per token (OpenAI's limit for `top_logprobs`).
pub const TOP_LOGPROBS_MAX: usize = 20;

/// A generated token's log probability (natural log) under the distribution it was
/// sampled from: the model's logits after `logit_bias` and the penalties, before the
/// temperature (which only reshapes the sampling), as vLLM reports it by default.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    /// The token's bytes (a byte-level token may hold part of a UTF-8 character).
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first: (id, bytes, logprob).
    pub top: Vec<(u32, Vec<u8>, f32)>,
}

impl Default for GenerateParams {
    /// OpenAI's defaults (temperature 1, top_p 1), 256 tokens, seed 0, no stop sequence.
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            logprobs: None,
            json_object: false,
        }
    }
}

impl GenerateParams {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        GenerateParams { max_tokens, temperature: 0.0, ..Self::default() }
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, message: String| Err(Error::InvalidParameter { name, message });
        if self.max_tokens == 0 {
            return bad("max_tokens", "must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return bad("temperature", format!("{} is not in [0, 2]", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("{} is not in (0, 1]", self.top_p));
        }
        if self.stop.len() > STOP_SEQUENCES_MAX {
            return bad("stop", format!("{} sequences; at most {STOP_SEQUENCES_MAX}", self.stop.len()));
        }
        if self.stop.iter().any(String::is_empty) {
            return bad("stop", "empty stop sequence".into());
        }
        for (name, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if !(-2.0..=2.0).contains(&v) {
                return bad(name, format!("{v} is not in [-2, 2]"));
            }
        }
        if let Some((id, b)) = self.logit_bias.iter().find(|(_, b)| !(-100.0..=100.0).contains(b)) {
            return bad("logit_bias", format!("the bias {b} of token {id} is not in [-100, 100]"));
        }
        if self.logprobs.is_some_and(|k| k > TOP_LOGPROBS_MAX) {
            return bad("top_logprobs", format!("at most {TOP_LOGPROBS_MAX} alternatives per token"));
        }
        Ok(())
    }

    /// Whether the logits are adjusted before sampling.
    fn adjusts(&self) -> bool {
        self.frequency_penalty != 0.0 || self.presence_penalty != 0.0 || !self.logit_bias.is_empty() || self.json_object
    }

    fn sampling(&self) -> Sampling {
        if self.temperature == 0.0 {
            Sampling::ArgMax
        } else if self.top_p < 1.0 {
            Sampling::TopP { p: self.top_p, temperature: self.temperature }
        } else {
            Sampling::All { temperature: self.temperature }
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (an end-of-sequence token) or a stop sequence was met.
    Stop,
    /// `max_tokens` tokens were generated, or the context window is full.
    Length,
    /// The caller's callback asked to stop (e.g. the client went away). Not an OpenAI
    /// value: a server never has anyone to send it to, but it still bills the tokens.
    Cancelled,
}

impl FinishReason {
    /// The OpenAI `finish_reason` string: `"stop"`, `"length"` (or `"cancelled"`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text: everything passed to the callback, in order. Without the stop
    /// sequence that ended it and without end-of-sequence tokens.
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens in the prompt (for a chat: the whole templated conversation).
    pub prompt_tokens: usize,
    /// Tokens generated, = `completion_ids.len()`: every sampled token, including the
    /// end-of-sequence token or the tokens that completed a stop sequence (they were
    /// computed, and OpenAI-compatible servers such as vLLM count them too).
    pub completion_tokens: usize,
    /// The generated token ids.
    pub completion_ids: Vec<u32>,
    /// With [`GenerateParams::logprobs`]: the log probability of every token whose text is
    /// part of [`Completion::text`] (not an end-of-sequence token, nor the tokens of a stop
    /// sequence that were never released), in order; else empty.
    pub logprobs: Vec<TokenLogprob>,
}

/// A token's bytes and whether they are plain JSON string text (for JSON mode).
type VocabEntry = (Vec<u8>, bool);

/// SmolLM2-135M-Instruct: chat and plain-text completion.
///
/// The tokenizer (byte-level BPE) and the ChatML chat template come from the GGUF's own
/// metadata. Control tokens (`<|im_start|>`, …) are produced only by the template: a
/// message or prompt that contains their text is tokenised as plain text, so user input
/// cannot forge turns.
///
/// `Send + Sync`. Generations on one `Generator` are **serialised**: the model and its
/// KV cache sit behind a mutex held for the whole call, callbacks included, so a callback
/// must not block for long (hand the text to a channel). Load several instances to serve
/// requests in parallel; tokenising and counting ([`Generator::count_tokens`],
/// [`Generator::chat_prompt_ids`]) do not take the lock.
pub struct Generator {
    model: Mutex<ModelWeights>,
    tokenizer: Tokenizer,
    /// `<|im_start|>`, `<|im_end|>`.
    im_start: u32,
    im_end: u32,
    /// Tokens that end generation: `<|im_end|>` (the GGUF's eos) and `<|endoftext|>`.
    eos: Vec<u32>,
    context_tokens_max: usize,
    precision: Precision,
    device: Device,
    /// Every token's bytes (`None`: a control token) and whether they are plain string
    /// text, built on first use by JSON mode.
    vocab_bytes: std::sync::OnceLock<Vec<Option<VocabEntry>>>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("model", &Self::MODEL_ID)
            .field("precision", &self.precision)
            .field("context_tokens_max", &self.context_tokens_max)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// The model's id, as the OpenAI-compatible API names it.
    pub const MODEL_ID: &'static str = "SmolLM2-135M-Instruct";

    /// Loads the GGUF from `dir` at the given precision.
    pub fn load(dir: &ModelDir, precision: Precision) -> Result<Self> {
        let path = dir.require(dir.smollm2_gguf())?;
        Self::load_gguf(&path, precision)
    }

    /// Loads a SmolLM2-135M-Instruct GGUF file.
    pub fn load_gguf(path: &Path, precision: Precision) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_owned(), source };
        let invalid = |message: String| Error::InvalidModel { path: path.to_owned(), message };
        let mut reader = BufReader::new(File::open(path).map_err(io)?);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| invalid(e.to_string()))?;

        match content.metadata.get("tokenizer.chat_template") {
            Some(v) if v.to_string().is_ok_and(|t| t == CHAT_TEMPLATE) => {}
            _ => return Err(invalid("not SmolLM2's ChatML chat template".into())),
        }
        let tokenizer = tokenizer_from_gguf(&content).map_err(|e| invalid(e.to_string()))?;
        let id = |token: &str| tokenizer.token_to_id(token).ok_or_else(|| invalid(format!("no {token} token")));
        let (im_start, im_end, end_of_text) = (id(IM_START)?, id(IM_END)?, id(END_OF_TEXT)?);
        let eos_id = content
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| invalid("no tokenizer.ggml.eos_token_id".into()))?;
        let mut eos = vec![eos_id, im_end, end_of_text];
        eos.sort_unstable();
        eos.dedup();
        let context_length = content
            .metadata
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| invalid("no llama.context_length".into()))?;
        // candle precomputes rotary tables for MAX_SEQ_LEN positions.
        let context_tokens_max = (context_length as usize).min(MAX_SEQ_LEN);

        let device = Device::Cpu;
        let model = match precision {
            Precision::Q4_1 => ModelWeights::from_gguf(content, &mut reader, &device)?,
            Precision::F32 => {
                let (content, mut cursor) = converted_gguf(content, &mut reader, &device, None, GgmlDType::F32)?;
                ModelWeights::from_gguf(content, &mut cursor, &device)?
            }
            Precision::Q8_0 => {
                let (content, mut cursor) =
                    converted_gguf(content, &mut reader, &device, Some(GgmlDType::Q4_1), GgmlDType::Q8_0)?;
                ModelWeights::from_gguf(content, &mut cursor, &device)?
            }
        };
        Ok(Generator {
            model: Mutex::new(model),
            tokenizer,
            im_start,
            im_end,
            eos,
            context_tokens_max,
            precision,
            device,
            vocab_bytes: std::sync::OnceLock::new(),
        })
    }

    /// The precision it computes with.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Context window in tokens: the prompt plus the completion fit in it (4096: candle's
    /// limit; the model itself was trained to 8192).
    pub fn context_tokens_max(&self) -> usize {
        self.context_tokens_max
    }

    /// Size of the vocabulary, control tokens included: token ids are below it.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Tokens of `text` tokenised as plain text (no template, no special tokens): what a
    /// plain completion prompt costs. For a chat, count [`Generator::chat_prompt_ids`].
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    /// Token ids of `text` as plain text (no template, no special tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(Error::tokenizer)?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of token ids (special tokens left out).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer.decode(ids, true).map_err(Error::tokenizer)
    }

    /// The chat template applied to `messages`, with the assistant's turn opened (as
    /// `apply_chat_template(messages, add_generation_prompt=True)` renders it). A
    /// conversation that does not start with a `system` message gets the model's default
    /// one. For display and tests; generation uses [`Generator::chat_prompt_ids`].
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> String {
        let mut out = String::new();
        if messages.first().is_some_and(|m| m.role != "system") {
            out.push_str(&format!("{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n"));
        }
        for m in messages {
            out.push_str(&format!("{IM_START}{}\n{}{IM_END}\n", m.role, m.content));
        }
        out.push_str(&format!("{IM_START}assistant\n"));
        out
    }

    /// Token ids of [`Generator::chat_prompt`]: its control tokens as their ids, the text
    /// between them tokenised as plain text. Its length is the chat's `prompt_tokens`.
    pub fn chat_prompt_ids(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(Error::InvalidParameter { name: "messages", message: "no messages".into() });
        }
        let mut ids = Vec::new();
        let turn = |ids: &mut Vec<u32>, role: &str, content: &str| -> Result<()> {
            ids.push(self.im_start);
            ids.extend(self.encode(&format!("{role}\n{content}"))?);
            ids.push(self.im_end);
            ids.extend(self.encode("\n")?);
            Ok(())
        };
        if messages[0].role != "system" {
            turn(&mut ids, "system", DEFAULT_SYSTEM)?;
        }
        for m in messages {
            turn(&mut ids, &m.role, &m.content)?;
        }
        ids.push(self.im_start);
        ids.extend(self.encode("assistant\n")?);
        Ok(ids)
    }

    /// Answers a chat: the assistant's next message. See [`Generator::generate`] for
    /// `on_text`.
    pub fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let prompt = self.chat_prompt_ids(messages)?;
        self.generate(&prompt, params, on_text)
    }

    /// Continues `prompt` as plain text, without the chat template (`/v1/completions`).
    pub fn complete(
        &self,
        prompt: &str,
        params: &GenerateParams,
        on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let prompt = self.encode(prompt)?;
        if prompt.is_empty() {
            return Err(Error::InvalidParameter { name: "prompt", message: "empty prompt".into() });
        }
        self.generate(&prompt, params, on_text)
    }

    /// Generates after `prompt` (token ids), streaming the text as it is produced.
    ///
    /// `on_text` receives each new piece of text as soon as it is final: not before its
    /// UTF-8 characters are complete, and not while it could still be the start of a stop
    /// sequence. It is never called with an empty string; the pieces concatenated equal
    /// [`Completion::text`]. Returning `ControlFlow::Break` ends generation with
    /// [`FinishReason::Cancelled`].
    ///
    /// Generation ends at an end-of-sequence token or a stop sequence
    /// ([`FinishReason::Stop`]), or after `max_tokens` tokens or at the context window
    /// ([`FinishReason::Length`]): exactly `max_tokens` tokens are sampled in that case.
    pub fn generate(
        &self,
        prompt: &[u32],
        params: &GenerateParams,
        mut on_text: impl FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.generate_with_logprobs(prompt, params, |text, _| on_text(text))
    }

    /// Whether `generate` would take this request: the parameters in range, the prompt
    /// non-empty, inside the vocabulary (as are `logit_bias`'s tokens) and shorter than the
    /// context window. A server calls it before taking payment; `generate` calls it too.
    pub fn check(&self, prompt: &[u32], params: &GenerateParams) -> Result<()> {
        params.validate()?;
        if prompt.is_empty() {
            return Err(Error::InvalidParameter { name: "prompt", message: "empty prompt".into() });
        }
        let vocab = self.vocab_size() as u32;
        let outside = |name, bad| Error::InvalidParameter {
            name,
            message: format!("token id {bad} is outside the vocabulary of {vocab}"),
        };
        if let Some(&bad) = prompt.iter().find(|&&id| id >= vocab) {
            return Err(outside("prompt", bad));
        }
        if let Some(&(bad, _)) = params.logit_bias.iter().find(|(id, _)| *id >= vocab) {
            return Err(outside("logit_bias", bad));
        }
        if prompt.len() >= self.context_tokens_max {
            return Err(Error::PromptTooLong {
                prompt_tokens: prompt.len(),
                context_tokens_max: self.context_tokens_max,
            });
        }
        Ok(())
    }

    /// [`Generator::generate`], with each piece of text handed over together with the log
    /// probabilities of the tokens that produced it since the last piece (empty unless
    /// [`GenerateParams::logprobs`] asks for them).
    pub fn generate_with_logprobs(
        &self,
        prompt: &[u32],
        params: &GenerateParams,
        mut on_piece: impl FnMut(&str, &[TokenLogprob]) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.check(prompt, params)?;
        let budget = params.max_tokens.min(self.context_tokens_max - prompt.len());

        // A poisoned lock only means an earlier call panicked mid-generation; every call
        // starts at position 0, which discards the KV cache it left.
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sampler = LogitsProcessor::from_sampling(params.seed, params.sampling());
        let mut decoder = self.tokenizer.decode_stream(true);
        let mut stops = StopScanner::new(&params.stop);
        let mut text = String::new();
        let mut ids = Vec::with_capacity(budget);
        // Log probabilities of tokens whose text has not been released yet, and of those
        // released.
        let (mut pending, mut released) = (Vec::new(), Vec::new());
        let mut emit = |piece: &str, text: &mut String, pending: &mut Vec<TokenLogprob>| -> ControlFlow<()> {
            if piece.is_empty() {
                return ControlFlow::Continue(());
            }
            text.push_str(piece);
            let flow = on_piece(piece, pending);
            released.append(pending);
            flow
        };

        let input = Tensor::new(prompt, &self.device)?.unsqueeze(0)?;
        let mut logits = model.forward(&input, 0)?.squeeze(0)?;
        // Times each token was generated so far (for the penalties).
        let mut counts: std::collections::BTreeMap<u32, u32> = std::collections::BTreeMap::new();
        // JSON mode: where the text stands as JSON.
        let mut json = crate::json_mode::JsonPrefix::default();
        let finish_reason = loop {
            let (next, logprob) = if params.adjusts() || params.logprobs.is_some() {
                let mut v: Vec<f32> = logits.to_dtype(candle_core::DType::F32)?.to_vec1()?;
                adjust_logits(&mut v, params, &counts);
                if params.json_object {
                    self.mask_to_json(&mut v, &json);
                }
                let next = sampler.sample(&Tensor::new(v.as_slice(), &self.device)?)?;
                if params.json_object && !self.eos.contains(&next) {
                    let bytes = self.vocab_bytes()[next as usize].as_ref().map_or(&[][..], |(b, _)| b);
                    let fed = json.feed_all(bytes);
                    debug_assert!(fed, "a masked-in token continues the JSON");
                }
                (next, params.logprobs.map(|top| self.logprob_of(&v, next, top)))
            } else {
                (sampler.sample(&logits)?, None)
            };
            *counts.entry(next).or_default() += 1;
            ids.push(next);
            if self.eos.contains(&next) {
                break FinishReason::Stop;
            }
            pending.extend(logprob);
            if let Some(piece) = decoder.step(next).map_err(Error::tokenizer)? {
                let scan = stops.push(&piece);
                if emit(&scan.release, &mut text, &mut pending).is_break() {
                    break FinishReason::Cancelled;
                }
                if scan.stopped {
                    break FinishReason::Stop;
                }
            }
            if ids.len() == budget {
                break FinishReason::Length;
            }
            let input = Tensor::new(&[next], &self.device)?.unsqueeze(0)?;
            logits = model.forward(&input, prompt.len() + ids.len() - 1)?.squeeze(0)?;
        };
        if finish_reason != FinishReason::Cancelled {
            // Text held back as a possible stop-sequence prefix that never completed.
            let rest = stops.finish();
            let _ = emit(&rest, &mut text, &mut pending);
        }
        Ok(Completion {
            text,
            finish_reason,
            prompt_tokens: prompt.len(),
            completion_tokens: ids.len(),
            completion_ids: ids,
            logprobs: released,
        })
    }
}

impl Generator {
    /// Every token's bytes and whether they are plain string text, `None` for control
    /// tokens (built once).
    fn vocab_bytes(&self) -> &[Option<VocabEntry>] {
        self.vocab_bytes.get_or_init(|| {
            let control: std::collections::BTreeSet<u32> =
                self.tokenizer.get_added_tokens_decoder().keys().copied().collect();
            (0..self.vocab_size() as u32)
                .map(|id| {
                    (!control.contains(&id)).then(|| {
                        let b = self.token_bytes(id);
                        let plain = crate::json_mode::is_plain_string_text(&b);
                        (b, plain)
                    })
                })
                .collect()
        })
    }

    /// JSON mode: every token that would not continue `json` (and, until the object is
    /// complete, end-of-sequence; once it is, everything else) gets -inf. Tokens are
    /// judged by their first byte first (256 trials), and inside a string a token of plain
    /// text needs no trial at all.
    fn mask_to_json(&self, logits: &mut [f32], json: &crate::json_mode::JsonPrefix) {
        let vocab = self.vocab_bytes();
        let complete = json.is_complete();
        let in_string = json.in_plain_string();
        let first_ok: Vec<bool> = (0..=255u8).map(|b| json.accepts(b)).collect();
        for (id, l) in logits.iter_mut().enumerate() {
            let allowed = if self.eos.contains(&(id as u32)) {
                complete
            } else {
                !complete
                    && vocab.get(id).and_then(Option::as_ref).is_some_and(|(b, plain)| {
                        !b.is_empty() && ((in_string && *plain) || (first_ok[b[0] as usize] && json.accepts_all(b)))
                    })
            };
            if !allowed {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    /// The bytes of a token: a byte-level BPE token's characters mapped back to the bytes
    /// they stand for (GPT-2's byte-to-character table); a control token's own text.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(token) = self.tokenizer.id_to_token(id) else { return Vec::new() };
        let mut out = Vec::with_capacity(token.len());
        for c in token.chars() {
            match byte_of_char(c) {
                Some(b) => out.push(b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out
    }

    /// `chosen`'s log probability under `logits` and the `top` most likely tokens.
    fn logprob_of(&self, logits: &[f32], chosen: u32, top: usize) -> TokenLogprob {
        let (logprob, best) = log_softmax_top(logits, chosen, top);
        TokenLogprob {
            id: chosen,
            bytes: self.token_bytes(chosen),
            logprob,
            top: best.into_iter().map(|(id, lp)| (id, self.token_bytes(id), lp)).collect(),
        }
    }
}

/// Bytes that GPT-2's byte-level alphabet shows as themselves; the other 68 are shown as
/// the characters from U+0100 on, in byte order.
fn printable_byte(b: u32) -> bool {
    (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b)
}

/// The byte a byte-level BPE character stands for (`None`: not a byte-level character).
fn byte_of_char(c: char) -> Option<u8> {
    let c = c as u32;
    if c < 256 {
        return printable_byte(c).then_some(c as u8);
    }
    (0..256u32).filter(|&b| !printable_byte(b)).nth((c - 256) as usize).map(|b| b as u8)
}

/// `chosen`'s natural-log probability under the softmax of `logits` (summed in f64) and
/// the `top` most likely tokens with theirs, most likely first (ties: lower id first).
fn log_softmax_top(logits: &[f32], chosen: u32, top: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |i: u32| (f64::from(logits[i as usize]) - lse) as f32;
    let order = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]).then(a.cmp(b));
    let mut best: Vec<u32> = Vec::new();
    let top = top.min(logits.len());
    if top > 0 {
        best = (0..logits.len() as u32).collect();
        best.select_nth_unstable_by(top - 1, order);
        best.truncate(top);
        best.sort_by(order);
    }
    (lp(chosen), best.into_iter().map(|i| (i, lp(i))).collect())
}

/// OpenAI's logit adjustments: `logit_bias` added, then for every token generated so far
/// `count × frequency_penalty + presence_penalty` subtracted.
fn adjust_logits(logits: &mut [f32], params: &GenerateParams, counts: &std::collections::BTreeMap<u32, u32>) {
    for &(id, bias) in &params.logit_bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l += bias;
        }
    }
    if params.frequency_penalty != 0.0 || params.presence_penalty != 0.0 {
        for (&id, &n) in counts {
            if let Some(l) = logits.get_mut(id as usize) {
                *l -= n as f32 * params.frequency_penalty + params.presence_penalty;
            }
        }
    }
}

/// Rebuilds SmolLM2's tokenizer from the GGUF metadata: byte-level BPE over
/// `tokenizer.ggml.tokens`/`merges`, digits split one per token (`pre=smollm`), control
/// tokens as special tokens. The same ids as the model's tokenizer.json in transformers.
pub(crate) fn tokenizer_from_gguf(content: &gguf_file::Content) -> std::result::Result<Tokenizer, String> {
    let md = |key: &str| content.metadata.get(key).ok_or_else(|| format!("no {key} in the GGUF metadata"));
    let strings = |key: &str| -> std::result::Result<Vec<String>, String> {
        md(key)?
            .to_vec()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
            .collect()
    };
    match md("tokenizer.ggml.model")?.to_string() {
        Ok(m) if m == "gpt2" => {}
        _ => return Err("tokenizer.ggml.model is not gpt2 (byte-level BPE)".into()),
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let types: Vec<i32> = md("tokenizer.ggml.token_type")?
        .to_vec()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|v| v.to_i32().map_err(|e| e.to_string()))
        .collect::<std::result::Result<_, _>>()?;
    if types.len() != tokens.len() {
        return Err("token_type and tokens differ in length".into());
    }
    let merges = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())).ok_or_else(|| format!("malformed merge {m:?}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let vocab: ahash::AHashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| e.to_string())?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    let control: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &ty)| ty == TOKEN_TYPE_CONTROL)
        .map(|(t, _)| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(control).map_err(|e| e.to_string())?;
    // User text is never turned into control tokens; only the template emits them.
    tokenizer.set_encode_special_tokens(true);
    Ok(tokenizer)
}

/// An in-memory copy of the GGUF with every tensor of type `from` (every tensor not
/// already f32 when `from` is `None`) converted to `to`, for `ModelWeights::from_gguf` to
/// load: the `Precision::F32` and `Precision::Q8_0` paths.
fn converted_gguf(
    content: gguf_file::Content,
    reader: &mut BufReader<File>,
    device: &Device,
    from: Option<GgmlDType>,
    to: GgmlDType,
) -> Result<(gguf_file::Content, Cursor<Vec<u8>>)> {
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let q = content.tensor(reader, name, device)?;
        let convert = match from {
            Some(from) => q.dtype() == from,
            None => q.dtype() != to,
        };
        let q = if convert { QTensor::quantize(&q.dequantize(device)?, to)? } else { q };
        tensors.push((name.as_str(), q));
    }
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    metadata.sort_by_key(|(k, _)| *k);
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut cursor = Cursor::new(Vec::new());
    gguf_file::write(&mut cursor, &metadata, &tensor_refs)?;
    cursor.set_position(0);
    let content = gguf_file::Content::read(&mut cursor)?;
    Ok((content, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Generator>();
        check::<crate::Embedder>();
    }

    #[test]
    fn params_validation() {
        let ok = GenerateParams::greedy(4);
        assert!(ok.validate().is_ok());
        let cases = [
            ("max_tokens", GenerateParams { max_tokens: 0, ..ok.clone() }),
            ("temperature", GenerateParams { temperature: 2.5, ..ok.clone() }),
            ("temperature", GenerateParams { temperature: f64::NAN, ..ok.clone() }),
            ("top_p", GenerateParams { top_p: 0.0, ..ok.clone() }),
            ("top_p", GenerateParams { top_p: 1.5, ..ok.clone() }),
            ("stop", GenerateParams { stop: vec!["".into()], ..ok.clone() }),
            ("stop", GenerateParams { stop: vec!["a".into(); 5], ..ok.clone() }),
            ("frequency_penalty", GenerateParams { frequency_penalty: 2.5, ..ok.clone() }),
            ("presence_penalty", GenerateParams { presence_penalty: f32::NAN, ..ok.clone() }),
            ("logit_bias", GenerateParams { logit_bias: vec![(3, -101.0)], ..ok.clone() }),
            ("top_logprobs", GenerateParams { logprobs: Some(21), ..ok.clone() }),
        ];
        for (name, params) in cases {
            match params.validate() {
                Err(Error::InvalidParameter { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{params:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn byte_level_characters_map_back_to_bytes() {
        // 'Ġ' (U+0120) is the space, 'Ċ' (U+010A) the newline, ASCII letters themselves.
        assert_eq!(byte_of_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_char('a'), Some(b'a'));
        assert_eq!(byte_of_char('\u{0100}'), Some(0));
        assert_eq!(byte_of_char('\u{0143}'), Some(173)); // the 68th and last non-printable byte
        assert_eq!(byte_of_char('\u{0144}'), None);
        let all: std::collections::BTreeSet<u8> =
            (0..1000u32).filter_map(char::from_u32).filter_map(byte_of_char).collect();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn log_softmax_and_top_tokens() {
        let logits = [0.0f32, (2.0f32).ln(), 0.0, (4.0f32).ln()]; // probabilities 1/8, 2/8, 1/8, 4/8
        let (lp, top) = log_softmax_top(&logits, 1, 3);
        assert!((lp - 0.25f32.ln()).abs() < 1e-6, "{lp}");
        let ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![3, 1, 0], "most likely first, ties by id");
        assert!((top[0].1 - 0.5f32.ln()).abs() < 1e-6);
        assert!(log_softmax_top(&logits, 2, 0).1.is_empty());
    }

    #[test]
    fn logit_adjustments_follow_openai() {
        let params = GenerateParams {
            frequency_penalty: 0.5,
            presence_penalty: 1.0,
            logit_bias: vec![(0, 10.0), (3, -100.0), (99, 1.0)],
            ..GenerateParams::greedy(1)
        };
        let mut logits = vec![1.0f32; 4];
        let counts = [(1u32, 3u32), (2, 1)].into_iter().collect();
        adjust_logits(&mut logits, &params, &counts);
        // token 0: +10; token 1: 3 × 0.5 + 1; token 2: 0.5 + 1; token 3: -100; 99 is ignored.
        assert_eq!(logits, vec![11.0, -1.5, -0.5, -99.0]);
    }

    #[test]
    fn sampling_choice() {
        assert!(matches!(GenerateParams::greedy(1).sampling(), Sampling::ArgMax));
        let p = GenerateParams { temperature: 0.7, top_p: 0.9, ..GenerateParams::default() };
        assert!(matches!(p.sampling(), Sampling::TopP { .. }));
        let p = GenerateParams { temperature: 0.7, ..GenerateParams::default() };
        assert!(matches!(p.sampling(), Sampling::All { .. }));
    }
}
