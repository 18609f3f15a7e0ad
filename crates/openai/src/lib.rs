//! The OpenAI-compatible wire format Tessera serves, as the official `openai` Python client
//! sends and reads it (../shared/design/AI-ACCESS.md §7): chat completions (plain and
//! streamed, with `stream_options.include_usage`), legacy completions, embeddings (float
//! or base64), models, and the error shape. Shared by the provider daemon and the gateway.
//!
//! Requests are parsed leniently where the client is lenient (unknown fields are ignored,
//! as OpenAI does) and strictly where a silent misreading would change the result: a
//! parameter we cannot honour (`n > 1`, `tools`, `logprobs`, …) is a 400 naming it.

pub mod responses;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// Sampling parameters common to chat and completions.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    pub max_tokens: Option<u64>,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
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
) -> Result<Sampling, ApiError> {
    if n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n = 1 is supported"));
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
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        stream,
        include_usage: stream_options.is_some_and(|o| o.include_usage),
    })
}

impl ChatRequest {
    /// The sampling parameters, refusing what this server cannot honour.
    pub fn sampling(&self) -> Result<Sampling, ApiError> {
        if self.tools.as_ref().is_some_and(|t| !t.is_null()) || self.tool_choice.as_ref().is_some_and(|t| !t.is_null())
        {
            return Err(ApiError::invalid("tools", "tool calls are not supported by this model"));
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some() {
            return Err(ApiError::invalid("logprobs", "logprobs are not supported"));
        }
        if let Some(rf) = &self.response_format {
            if rf.get("type").and_then(Value::as_str).is_some_and(|t| t != "text") {
                return Err(ApiError::invalid("response_format", "only response_format type `text` is supported"));
            }
        }
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "messages must not be empty"));
        }
        sampling(
            self.max_completion_tokens.or(self.max_tokens),
            self.temperature,
            self.top_p,
            self.n,
            self.stop.clone(),
            self.seed,
            self.stream,
            self.stream_options.clone(),
        )
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

/// `prompt`: a string or an array of one string.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
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
}

impl CompletionRequest {
    pub fn sampling(&self) -> Result<Sampling, ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid("echo", "echo is not supported"));
        }
        if self.logprobs.is_some() {
            return Err(ApiError::invalid("logprobs", "logprobs are not supported"));
        }
        if self.suffix.is_some() {
            return Err(ApiError::invalid("suffix", "suffix is not supported"));
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
        )
    }

    pub fn prompt(&self) -> Result<String, ApiError> {
        match &self.prompt {
            Prompt::One(s) => Ok(s.clone()),
            Prompt::Many(v) if v.len() == 1 => Ok(v[0].clone()),
            Prompt::Many(_) => Err(ApiError::invalid("prompt", "one prompt per request")),
        }
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
                return Err(ApiError::invalid("input", "token-array input is not supported; send text"))
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

/// A chat completion (non-streamed).
pub fn chat_completion(id: &str, created: u64, model: &str, text: &str, finish_reason: &str, usage: &Usage) -> Value {
    serde_json::json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text, "refusal": null },
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": usage,
    })
}

/// One streamed chat chunk. `role` on the first; `finish_reason` on the last; `usage` is
/// `null` on every chunk when the client asked for usage (and absent otherwise).
pub fn chat_chunk(
    id: &str,
    created: u64,
    model: &str,
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
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
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

/// A legacy completion (or one streamed chunk of it: same shape).
pub fn text_completion(
    id: &str,
    created: u64,
    model: &str,
    text: &str,
    finish_reason: Option<&str>,
    usage: Option<&Usage>,
) -> Value {
    let mut v = serde_json::json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{ "index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason }],
    });
    if let Some(u) = usage {
        v["usage"] = serde_json::to_value(u).expect("usage serialises");
    }
    v
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
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}"#), "n");
        assert_eq!(bad(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{}]}"#), "tools");
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
}
