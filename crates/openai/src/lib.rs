//! The OpenAI-compatible wire format Tessera serves, as the official `openai` Python client
//! sends and reads it (../shared/design/AI-ACCESS.md §7): chat completions (plain and
//! streamed, with `stream_options.include_usage`), legacy completions, embeddings (float
//! or base64), models, and the error shape. Shared by the provider daemon and the gateway.
//!
//! Requests are parsed leniently where the client is lenient (unknown fields are ignored,
//! as OpenAI does) and strictly where a silent misreading would change the result: a
//! parameter we cannot honour (`tools`, `echo`, …) is a 400 naming it; the sampling
//! adjustments (`frequency_penalty`, `presence_penalty`, `logit_bias`) are parsed and
//! range-checked here ([`Penalties`]) and applied by the model.
//!
//! Several choices per request (`n`, and for legacy completions several prompts) are
//! served as OpenAI serves them: choice `i × n + j` is prompt `i`'s `j`-th generation,
//! `usage.prompt_tokens` counts each prompt once and `completion_tokens` every choice's
//! tokens; at most [`CHOICES_MAX`] choices per request.

pub mod responses;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `{"error": {"message", "type", "param", "code"}}` with its HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// An error to send: status, body, and whether the client should retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
    /// `x-should-retry` (the SDK obeys it before its own rules).
    pub should_retry: Option<bool>,
    /// `retry-after-ms` (and `retry-after` in whole seconds): when a retry can succeed.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, kind: &str, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail { message: message.into(), kind: kind.into(), param: None, code: Some(code.into()) },
            },
            should_retry: None,
            retry_after_ms: None,
        }
    }

    /// 429 with the wait after which the request fits the limit again.
    pub fn rate_limited(code: &str, message: impl Into<String>, retry_after_ms: u64) -> ApiError {
        let mut e = ApiError::new(429, "rate_limit_error", code, message);
        e.retry_after_ms = Some(retry_after_ms);
        e
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(403, "permission_error", code, message);
        e.should_retry = Some(false);
        e
    }

    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(400, "invalid_request_error", "invalid_parameter", message);
        e.body.error.param = Some(param.into());
        e.should_retry = Some(false);
        e
    }

    pub fn unknown_model(model: &str) -> ApiError {
        let mut e = ApiError::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("the model `{model}` does not exist or is not served here"),
        );
        e.body.error.param = Some("model".into());
        e
    }

    pub fn payment_required(code: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(402, "insufficient_quota", code, message);
        e.should_retry = Some(false);
        e
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(401, "authentication_error", code, message);
        e.should_retry = Some(false);
        e
    }

    pub fn server(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "server_error", "internal_error", message)
    }
}

/// A message's content: a string, or parts of which we read the text ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

impl Content {
    /// The text, joining text parts; an image or audio part is an error naming its type.
    pub fn text(&self) -> Result<String, ApiError> {
        match self {
            Content::Text(s) => Ok(s.clone()),
            Content::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => out.push_str(t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                "messages",
                                format!(
                                    "content parts of type {:?} are not supported by this model",
                                    kind.unwrap_or("?")
                                ),
                            ))
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

/// `stop`: a string or up to 4 strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Most choices (prompts × `n`) one chat or completion request may ask for: each is a
/// generation of its own, run one after another on a built-in model.
pub const CHOICES_MAX: u64 = 16;

/// How many choices a chat or completion request (as JSON) asks for: `n` (default 1)
/// times, for a legacy completion, its number of prompts. For worst-case bounds before
/// the request is parsed in full (the gateway, the upstream proxy); never 0.
pub fn choices_requested(req: &Value) -> u64 {
    let n = req["n"].as_u64().unwrap_or(1).max(1);
    let prompts = match &req["prompt"] {
        // Several strings, or several token arrays; a flat token array is one prompt.
        Value::Array(items) if items.iter().all(|i| i.is_string() || i.is_array()) => items.len().max(1) as u64,
        _ => 1,
    };
    n.saturating_mul(prompts)
}

/// Sampling parameters common to chat and completions.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Choices per prompt (`n`), 1 to [`CHOICES_MAX`].
    pub n: u64,
    pub max_tokens: Option<u64>,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub penalties: Penalties,
    /// Log probabilities asked for, with this many alternatives per token (chat:
    /// `logprobs: true` and `top_logprobs`, up to 20; legacy completions: `logprobs`, up
    /// to 5).
    pub logprobs: Option<usize>,
    /// JSON mode (chat `response_format: {"type": "json_object"}`): the answer is a JSON
    /// object.
    pub json_object: bool,
}

/// Most alternatives per token: chat's `top_logprobs`, and a legacy completion's `logprobs`.
pub const TOP_LOGPROBS_MAX: u64 = 20;
pub const COMPLETION_LOGPROBS_MAX: u64 = 5;

/// Most `logit_bias` entries one request may carry.
pub const LOGIT_BIAS_MAX: usize = 1024;

/// OpenAI's adjustments of the logits before sampling: `frequency_penalty` and
/// `presence_penalty` (each in [-2, 2]; subtracted from a token's logit per time, and once
/// if at all, it was generated so far) and `logit_bias` (token id of the model's
/// vocabulary → bias in [-100, 100], added to its logit).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Penalties {
    pub frequency_penalty: f64,
    pub presence_penalty: f64,
    /// Sorted by token id.
    pub logit_bias: Vec<(u32, f64)>,
}

/// The logit adjustments as a chat or completion request carries them.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Adjustments {
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub logit_bias: Option<BTreeMap<String, f64>>,
}

impl Penalties {
    fn parse(a: &Adjustments) -> Result<Penalties, ApiError> {
        let (frequency_penalty, presence_penalty) = (a.frequency_penalty, a.presence_penalty);
        for (name, v) in [("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)] {
            if v.is_some_and(|v| !(-2.0..=2.0).contains(&v)) {
                return Err(ApiError::invalid(name, format!("{name} must be between -2 and 2")));
            }
        }
        let mut bias = Vec::new();
        if let Some(map) = &a.logit_bias {
            if map.len() > LOGIT_BIAS_MAX {
                return Err(ApiError::invalid("logit_bias", format!("at most {LOGIT_BIAS_MAX} tokens")));
            }
            for (token, &b) in map {
                let id: u32 = token
                    .parse()
                    .map_err(|_| ApiError::invalid("logit_bias", format!("{token:?} is not a token id")))?;
                if !(-100.0..=100.0).contains(&b) {
                    return Err(ApiError::invalid("logit_bias", format!("the bias of {id} is not in [-100, 100]")));
                }
                bias.push((id, b));
            }
            bias.sort_by_key(|(id, _)| *id);
            if bias.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(ApiError::invalid("logit_bias", "a token is listed twice"));
            }
        }
        Ok(Penalties {
            frequency_penalty: frequency_penalty.unwrap_or(0.0),
            presence_penalty: presence_penalty.unwrap_or(0.0),
            logit_bias: bias,
        })
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub response_format: Option<Value>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u64>,
    #[serde(default)]
    pub user: Option<String>,
    /// `frequency_penalty`, `presence_penalty`, `logit_bias`.
    #[serde(flatten)]
    pub adjustments: Adjustments,
}

#[allow(clippy::too_many_arguments)] // one per OpenAI parameter
fn sampling(
    max_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u64>,
    stop: Option<Stop>,
    seed: Option<u64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    penalties: Penalties,
) -> Result<Sampling, ApiError> {
    let n = n.unwrap_or(1);
    if n == 0 || n > CHOICES_MAX {
        return Err(ApiError::invalid("n", format!("n must be between 1 and {CHOICES_MAX}")));
    }
    if max_tokens == Some(0) {
        return Err(ApiError::invalid("max_tokens", "max_tokens must be at least 1"));
    }
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid("temperature", "temperature must be between 0 and 2"));
    }
    let top_p = top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid("top_p", "top_p must be in (0, 1]"));
    }
    let stop = stop.map(Stop::into_vec).unwrap_or_default();
    if stop.len() > 4 || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop is up to 4 non-empty strings"));
    }
    let stream = stream.unwrap_or(false);
    if stream_options.is_some() && !stream {
        return Err(ApiError::invalid("stream_options", "stream_options is only allowed with stream: true"));
    }
    Ok(Sampling {
        n,
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        stream,
        include_usage: stream_options.is_some_and(|o| o.include_usage),
        penalties,
        logprobs: None,
        json_object: false,
    })
}

impl ChatRequest {
    /// The sampling parameters, refusing what this server cannot honour.
    pub fn sampling(&self) -> Result<Sampling, ApiError> {
        if self.tools.as_ref().is_some_and(|t| !t.is_null()) || self.tool_choice.as_ref().is_some_and(|t| !t.is_null())
        {
            return Err(ApiError::invalid("tools", "tool calls are not supported by this model"));
        }
        if self.top_logprobs.is_some() && self.logprobs != Some(true) {
            return Err(ApiError::invalid("top_logprobs", "top_logprobs needs logprobs: true"));
        }
        if self.top_logprobs.is_some_and(|k| k > TOP_LOGPROBS_MAX) {
            return Err(ApiError::invalid("top_logprobs", format!("top_logprobs is 0 to {TOP_LOGPROBS_MAX}")));
        }
        let json_object = match self.response_format.as_ref().and_then(|rf| rf.get("type")).and_then(Value::as_str) {
            None | Some("text") => false,
            Some("json_object") => true,
            Some("json_schema") => {
                return Err(ApiError::invalid(
                    "response_format",
                    "json_schema (structured outputs) is not supported; use {\"type\": \"json_object\"} (JSON mode) \
                     and describe the fields in the messages",
                ))
            }
            Some(other) => {
                return Err(ApiError::invalid("response_format", format!("response_format type {other:?} is unknown")))
            }
        };
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "messages must not be empty"));
        }
        let logprobs = (self.logprobs == Some(true)).then(|| self.top_logprobs.unwrap_or(0) as usize);
        sampling(
            self.max_completion_tokens.or(self.max_tokens),
            self.temperature,
            self.top_p,
            self.n,
            self.stop.clone(),
            self.seed,
            self.stream,
            self.stream_options.clone(),
            Penalties::parse(&self.adjustments)?,
        )
        .map(|s| Sampling { logprobs, json_object, ..s })
    }

    /// (role, text) of every message; `developer` is treated as `system`.
    pub fn texts(&self) -> Result<Vec<(String, String)>, ApiError> {
        self.messages
            .iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "developer" => "system".to_string(),
                    "system" | "user" | "assistant" | "tool" => m.role.clone(),
                    other => return Err(ApiError::invalid("messages", format!("unknown role {other:?}"))),
                };
                Ok((role, m.content.as_ref().map(Content::text).transpose()?.unwrap_or_default()))
            })
            .collect()
    }
}

/// `prompt`: a string, strings, token ids (in the model's own vocabulary, as vLLM reads
/// them), or arrays of token ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

/// One prompt of a legacy completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptInput {
    Text(String),
    /// Token ids of the model's vocabulary (checked against it by the model).
    Tokens(Vec<u32>),
}

#[derive(Clone, Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub n: Option<u64>,
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub logprobs: Option<u64>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub best_of: Option<u64>,
    /// `frequency_penalty`, `presence_penalty`, `logit_bias`.
    #[serde(flatten)]
    pub adjustments: Adjustments,
}

impl CompletionRequest {
    pub fn sampling(&self) -> Result<Sampling, ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid("echo", "echo is not supported"));
        }
        if self.logprobs.is_some_and(|k| k > COMPLETION_LOGPROBS_MAX) {
            return Err(ApiError::invalid("logprobs", format!("logprobs is 0 to {COMPLETION_LOGPROBS_MAX}")));
        }
        if self.suffix.is_some() {
            return Err(ApiError::invalid("suffix", "suffix is not supported"));
        }
        if self.best_of.is_some_and(|b| b != self.n.unwrap_or(1)) {
            return Err(ApiError::invalid(
                "best_of",
                "best_of (choosing among more candidates than returned) is not supported; ask for n choices",
            ));
        }
        sampling(
            // The legacy endpoint's default is 16 tokens.
            Some(self.max_tokens.unwrap_or(16)),
            self.temperature,
            self.top_p,
            self.n,
            self.stop.clone(),
            self.seed,
            self.stream,
            self.stream_options.clone(),
            Penalties::parse(&self.adjustments)?,
        )
        .map(|s| Sampling { logprobs: self.logprobs.map(|k| k as usize), ..s })
    }

    /// The prompts, in order: at least one, and with `n` at most [`CHOICES_MAX`] choices.
    pub fn prompts(&self) -> Result<Vec<PromptInput>, ApiError> {
        let prompts: Vec<PromptInput> = match &self.prompt {
            Prompt::One(s) => vec![PromptInput::Text(s.clone())],
            Prompt::Many(v) => v.iter().cloned().map(PromptInput::Text).collect(),
            Prompt::Tokens(ids) => vec![PromptInput::Tokens(ids.clone())],
            Prompt::ManyTokens(v) => v.iter().cloned().map(PromptInput::Tokens).collect(),
        };
        if prompts.is_empty() {
            return Err(ApiError::invalid("prompt", "at least one prompt is required"));
        }
        let choices = (prompts.len() as u64).saturating_mul(self.n.unwrap_or(1).max(1));
        if choices > CHOICES_MAX {
            return Err(ApiError::invalid(
                "prompt",
                format!("{choices} choices asked for (prompts × n); at most {CHOICES_MAX} per request"),
            ));
        }
        Ok(prompts)
    }
}

/// `input`: a string, strings, or token arrays (which we refuse: the tokenizer is ours).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<Value>),
}

#[derive(Clone, Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<u64>,
    #[serde(default)]
    pub user: Option<String>,
}

/// Most inputs in one embeddings request.
pub const EMBEDDING_INPUTS_MAX: usize = 2048;

impl EmbeddingRequest {
    pub fn texts(&self) -> Result<Vec<String>, ApiError> {
        let v = match &self.input {
            EmbeddingInput::One(s) => vec![s.clone()],
            EmbeddingInput::Many(v) => v.clone(),
            EmbeddingInput::Tokens(_) => {
                return Err(ApiError::invalid(
                    "input",
                    "token-array input is not supported: token ids are tokenizer-specific (clients such as \
                     LangChain's OpenAIEmbeddings send OpenAI's tiktoken ids, which mean nothing to this \
                     model); send text (LangChain: check_embedding_ctx_length=False)",
                ))
            }
        };
        if v.is_empty() || v.len() > EMBEDDING_INPUTS_MAX {
            return Err(ApiError::invalid("input", format!("1 to {EMBEDDING_INPUTS_MAX} inputs")));
        }
        Ok(v)
    }

    /// true for base64 (the Python SDK's default), false for float.
    pub fn base64(&self) -> Result<bool, ApiError> {
        match self.encoding_format.as_deref() {
            None | Some("float") => Ok(false),
            Some("base64") => Ok(true),
            Some(other) => Err(ApiError::invalid("encoding_format", format!("{other:?} is not float or base64"))),
        }
    }
}

/// `usage`, with the call's cost in TSR base units (a decimal string, as every Tessera
/// amount) and its decimal TSR value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// TSR base units.
    pub cost: String,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64, cost_base_units: u128) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            cost: cost_base_units.to_string(),
        }
    }
}

/// A model object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
}

impl Model {
    pub fn new(id: &str, created: u64, owned_by: &str) -> Model {
        Model { id: id.into(), object: "model".into(), created, owned_by: owned_by.into() }
    }
}

/// `{"object": "list", "data": [...]}`.
pub fn model_list(models: Vec<Model>) -> Value {
    serde_json::json!({ "object": "list", "data": models })
}

/// One choice of a complete (non-streamed) answer: its text, `finish_reason` and
/// `logprobs` (`null`, or what [`chat_logprobs`] / [`completion_logprobs`] made).
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub text: String,
    pub finish_reason: &'static str,
    pub logprobs: Value,
}

/// A generated token's log probability with the most likely alternatives (bytes, as a
/// byte-level token may hold part of a UTF-8 character).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(Vec<u8>, f32)>,
}

/// A chat choice's `logprobs`: `{"content": [{token, logprob, bytes, top_logprobs}],
/// "refusal": null}`; `token` is the bytes read as UTF-8 (lossily, as OpenAI does).
pub fn chat_logprobs(tokens: &[TokenLogprob]) -> Value {
    let entry = |bytes: &[u8], logprob: f32| serde_json::json!({ "token": String::from_utf8_lossy(bytes), "logprob": logprob, "bytes": bytes });
    let content: Vec<Value> = tokens
        .iter()
        .map(|t| {
            let mut e = entry(&t.bytes, t.logprob);
            e["top_logprobs"] = t.top.iter().map(|(b, lp)| entry(b, *lp)).collect();
            e
        })
        .collect();
    serde_json::json!({ "content": content, "refusal": null })
}

/// A legacy completion choice's `logprobs`: `tokens`, `token_logprobs`, `top_logprobs`
/// (one `{token: logprob}` map per token) and `text_offset` (characters from the start of
/// the completion, as vLLM counts them, beginning at `offset`).
pub fn completion_logprobs(tokens: &[TokenLogprob], offset: usize) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut offsets = Vec::with_capacity(tokens.len());
    let mut at = offset;
    for t in tokens {
        offsets.push(at);
        at += text(&t.bytes).chars().count();
    }
    let top: Vec<serde_json::Map<String, Value>> =
        tokens.iter().map(|t| t.top.iter().map(|(b, lp)| (text(b), Value::from(*lp))).collect()).collect();
    serde_json::json!({
        "tokens": tokens.iter().map(|t| text(&t.bytes)).collect::<Vec<_>>(),
        "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": offsets,
    })
}

/// A chat completion (non-streamed); choice `i` gets index `i`.
pub fn chat_completion(id: &str, created: u64, model: &str, choices: &[Choice], usage: &Usage) -> Value {
    let choice = |c: &Choice| {
        serde_json::json!({
            "message": { "role": "assistant", "content": c.text, "refusal": null },
            "logprobs": c.logprobs,
            "finish_reason": c.finish_reason,
        })
    };
    answer(id, created, model, "chat.completion", choices.iter().map(choice), usage)
}

/// A legacy completion (non-streamed); choice `i` gets index `i`.
pub fn text_completions(id: &str, created: u64, model: &str, choices: &[Choice], usage: &Usage) -> Value {
    let choice =
        |c: &Choice| serde_json::json!({ "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason });
    answer(id, created, model, "text_completion", choices.iter().map(choice), usage)
}

/// A complete answer: the choices (each given its index) in the envelope both kinds share.
fn answer(
    id: &str,
    created: u64,
    model: &str,
    object: &str,
    choices: impl Iterator<Item = Value>,
    usage: &Usage,
) -> Value {
    let choices: Vec<Value> = choices
        .enumerate()
        .map(|(i, mut c)| {
            c["index"] = i.into();
            c
        })
        .collect();
    serde_json::json!({
        "id": id,
        "object": object,
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage,
    })
}

/// One streamed chat chunk for choice `index`. `role` on the choice's first chunk;
/// `finish_reason` on its last; `usage` is `null` on every chunk when the client asked
/// for usage (and absent otherwise).
#[allow(clippy::too_many_arguments)] // the chunk's fields
pub fn chat_chunk(
    id: &str,
    created: u64,
    model: &str,
    index: usize,
    first: bool,
    text: Option<&str>,
    finish_reason: Option<&str>,
    with_usage_field: bool,
) -> Value {
    let mut delta = serde_json::Map::new();
    if first {
        delta.insert("role".into(), "assistant".into());
    }
    if let Some(t) = text {
        delta.insert("content".into(), t.into());
    }
    let mut v = serde_json::json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{ "index": index, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    });
    if with_usage_field {
        v["usage"] = Value::Null;
    }
    v
}

/// The extra final chunk of `include_usage`: no choices, the usage.
pub fn usage_chunk(id: &str, created: u64, model: &str, object: &str, usage: &Usage) -> Value {
    serde_json::json!({ "id": id, "object": object, "created": created, "model": model, "choices": [], "usage": usage })
}

/// One streamed chunk of a legacy completion, for choice `index` (the same shape as the
/// complete answer, with one choice and no usage).
pub fn text_completion_chunk(
    id: &str,
    created: u64,
    model: &str,
    index: usize,
    text: &str,
    finish_reason: Option<&str>,
) -> Value {
    serde_json::json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{ "index": index, "text": text, "logprobs": null, "finish_reason": finish_reason }],
    })
}

/// An embeddings response; base64 = little-endian f32, as the SDK decodes it.
pub fn embeddings(model: &str, vectors: &[Vec<f32>], base64: bool, usage: &Usage) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                serde_json::json!(v)
            };
            serde_json::json!({ "object": "embedding", "index": i, "embedding": embedding })
        })
        .collect();
    serde_json::json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens, "cost": usage.cost },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_python_sdk_sends() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}],
                "model":"m","max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true},"seed":7,"stop":"\n"}"#,
        )
        .unwrap();
        let s = req.sampling().unwrap();
        assert_eq!((s.max_tokens, s.stream, s.include_usage, s.seed), (Some(5), true, true, Some(7)));
        assert_eq!(s.stop, vec!["\n".to_string()]);
        assert_eq!(req.texts().unwrap(), vec![("system".into(), "be brief".into()), ("user".into(), "hi".into())]);
        let e: EmbeddingRequest =
            serde_json::from_str(r#"{"input":["a","b"],"model":"e","encoding_format":"base64"}"#).unwrap();
        assert!(e.base64().unwrap());
        assert_eq!(e.texts().unwrap().len(), 2);
    }

    #[test]
    fn refuses_what_it_cannot_honour_naming_the_parameter() {
        let bad = |json: &str| {
            let r: ChatRequest = serde_json::from_str(json).unwrap();
            r.sampling().unwrap_err().body.error.param.unwrap()
        };
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":0}"#), "n");
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":17}"#), "n");
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{}]}"#), "tools");
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#), "top_logprobs");
        assert_eq!(
            bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}"#),
            "top_logprobs"
        );
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}"#), "temperature");
        assert_eq!(bad(r#"{"model":"m","messages":[]}"#), "messages");
        let img: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#,
        )
        .unwrap();
        assert_eq!(img.texts().unwrap_err().status, 400);
    }

    #[test]
    fn base64_embeddings_are_little_endian_f32() {
        let v = embeddings("e", &[vec![1.0, -2.5]], true, &Usage::new(3, 0, 1));
        let b64 = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let back: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(back, vec![1.0, -2.5]);
        assert_eq!(v["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn several_choices_prompts_and_token_prompts() {
        let chat: ChatRequest =
            serde_json::from_str(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#).unwrap();
        assert_eq!(chat.sampling().unwrap().n, 3);
        let prompts = |json: &str| {
            let r: CompletionRequest = serde_json::from_str(json).unwrap();
            r.sampling().and_then(|_| r.prompts())
        };
        use PromptInput::{Text, Tokens};
        assert_eq!(prompts(r#"{"model":"m","prompt":"a"}"#).unwrap(), vec![Text("a".into())]);
        assert_eq!(prompts(r#"{"model":"m","prompt":["a","b"]}"#).unwrap(), vec![Text("a".into()), Text("b".into())]);
        assert_eq!(prompts(r#"{"model":"m","prompt":[1,2,3]}"#).unwrap(), vec![Tokens(vec![1, 2, 3])]);
        assert_eq!(
            prompts(r#"{"model":"m","prompt":[[1],[2,3]]}"#).unwrap(),
            vec![Tokens(vec![1]), Tokens(vec![2, 3])]
        );
        let param = |json: &str| prompts(json).unwrap_err().body.error.param.unwrap();
        assert_eq!(param(r#"{"model":"m","prompt":[]}"#), "prompt");
        // 4 prompts × n = 5 is 20 choices, over the 16 allowed.
        assert_eq!(param(r#"{"model":"m","prompt":["a","b","c","d"],"n":5}"#), "prompt");
        assert!(prompts(r#"{"model":"m","prompt":["a","b","c","d"],"n":4}"#).is_ok());
        // What the gateway and the upstream proxy reserve for, before parsing in full.
        let choices = |json: &str| choices_requested(&serde_json::from_str(json).unwrap());
        assert_eq!(choices(r#"{"prompt":"a","n":3}"#), 3);
        assert_eq!(choices(r#"{"prompt":["a","b"],"n":3}"#), 6);
        assert_eq!(choices(r#"{"prompt":[1,2,3]}"#), 1);
        assert_eq!(choices(r#"{"prompt":[[1],[2],[3]]}"#), 3);
        assert_eq!(choices(r#"{"messages":[],"n":0}"#), 1);
    }

    #[test]
    fn choices_are_indexed_in_order() {
        let two = [
            Choice { text: "a".into(), finish_reason: "stop", logprobs: Value::Null },
            Choice { text: "b".into(), finish_reason: "length", logprobs: Value::Null },
        ];
        let v = chat_completion("c", 1, "m", &two, &Usage::new(3, 4, 5));
        assert_eq!(v["choices"][1]["index"], 1);
        assert_eq!(v["choices"][1]["message"]["content"], "b");
        assert_eq!(v["choices"][1]["finish_reason"], "length");
        let v = text_completions("c", 1, "m", &two, &Usage::new(3, 4, 5));
        assert_eq!((v["choices"][0]["text"].as_str(), v["usage"]["completion_tokens"].as_u64()), (Some("a"), Some(4)));
        assert_eq!(chat_chunk("c", 1, "m", 1, true, Some("x"), None, false)["choices"][0]["index"], 1);
    }

    /// A one-message chat request's sampling, with `extra` JSON members.
    fn chat_sampling(extra: &str) -> Result<Sampling, ApiError> {
        let r: ChatRequest =
            serde_json::from_str(&format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#))
                .unwrap();
        r.sampling()
    }

    #[test]
    fn penalties_and_logit_bias() {
        let sampling = chat_sampling;
        let p = sampling(r#","frequency_penalty":0.5,"presence_penalty":-1,"logit_bias":{"50":-100,"7":2.5}"#)
            .unwrap()
            .penalties;
        assert_eq!(
            p,
            Penalties { frequency_penalty: 0.5, presence_penalty: -1.0, logit_bias: vec![(7, 2.5), (50, -100.0)] }
        );
        assert_eq!(sampling("").unwrap().penalties, Penalties::default());
        let param = |extra: &str| sampling(extra).unwrap_err().body.error.param.unwrap();
        assert_eq!(param(r#","frequency_penalty":2.5"#), "frequency_penalty");
        assert_eq!(param(r#","presence_penalty":-3"#), "presence_penalty");
        assert_eq!(param(r#","logit_bias":{"x":1}"#), "logit_bias");
        assert_eq!(param(r#","logit_bias":{"-1":1}"#), "logit_bias");
        assert_eq!(param(r#","logit_bias":{"5":101}"#), "logit_bias");
        assert_eq!(param(r#","logit_bias":{"5":1,"05":2}"#), "logit_bias");
    }

    #[test]
    fn logprobs_requests_and_shapes() {
        let chat = |extra: &str| chat_sampling(extra).unwrap().logprobs;
        assert_eq!(chat(""), None);
        assert_eq!(chat(r#","logprobs":false"#), None);
        assert_eq!(chat(r#","logprobs":true"#), Some(0));
        assert_eq!(chat(r#","logprobs":true,"top_logprobs":3"#), Some(3));
        let json = |format: &str| chat_sampling(&format!(r#","response_format":{format}"#)).map(|s| s.json_object);
        assert!(json(r#"{"type":"json_object"}"#).unwrap());
        assert!(!json(r#"{"type":"text"}"#).unwrap());
        for bad in [r#"{"type":"json_schema","json_schema":{"name":"x","schema":{}}}"#, r#"{"type":"yaml"}"#] {
            assert_eq!(json(bad).unwrap_err().body.error.param.as_deref(), Some("response_format"));
        }
        let completion = |extra: &str| {
            let r: CompletionRequest =
                serde_json::from_str(&format!(r#"{{"model":"m","prompt":"x"{extra}}}"#)).unwrap();
            r.sampling().map(|s| s.logprobs)
        };
        assert_eq!(completion(r#","logprobs":2"#).unwrap(), Some(2));
        assert_eq!(completion(r#","logprobs":6"#).unwrap_err().body.error.param.as_deref(), Some("logprobs"));
        assert_eq!(completion(r#","best_of":3"#).unwrap_err().body.error.param.as_deref(), Some("best_of"));
        assert!(completion(r#","best_of":2,"n":2"#).is_ok());

        // "é" split over two byte-level tokens, then " b".
        let tokens = [
            TokenLogprob { bytes: vec![0xC3], logprob: -0.5, top: vec![(vec![0xC3], -0.5), (b"x".to_vec(), -1.0)] },
            TokenLogprob { bytes: vec![0xA9], logprob: -0.25, top: vec![(vec![0xA9], -0.25)] },
            TokenLogprob { bytes: b" b".to_vec(), logprob: -2.0, top: vec![] },
        ];
        let c = chat_logprobs(&tokens);
        assert_eq!(c["content"][0]["bytes"], serde_json::json!([0xC3]));
        assert_eq!(c["content"][0]["token"], "\u{FFFD}");
        assert_eq!(c["content"][0]["top_logprobs"][1]["token"], "x");
        assert_eq!(c["content"][2]["logprob"], -2.0);
        let l = completion_logprobs(&tokens, 0);
        assert_eq!(l["tokens"][2], " b");
        assert_eq!(l["token_logprobs"][1], -0.25);
        assert_eq!(l["top_logprobs"][0]["x"], -1.0);
        assert_eq!(l["text_offset"], serde_json::json!([0, 1, 2]));
    }
}
