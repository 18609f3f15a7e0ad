//! The upstream backend: any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama,
//! another Tessera gateway) given by URL. The provider checks and reserves payment as for
//! its built-in models, forwards the call (the model renamed to the upstream's, a stream
//! asked for its usage), relays the answer, and bills what it counts:
//!
//! - with a `tokenizer` (a `.gguf` or `tokenizer.json` of the upstream's model): the prompt
//!   as ChatML-rendered messages (or the plain prompt, or each embedding input) and the
//!   generated text, counted by the provider itself;
//! - without one: the upstream's own `usage`.
//!
//! Either way the bill never exceeds the worst case reserved before the call. A stream is
//! read to its end from a task of its own even if the client leaves, so the provider bills
//! exactly what the upstream generated (and was paid for by the provider).

use axum::body::{Body, Bytes};
use futures_util::StreamExt;
use models::TokenCounter;
use openai::ApiError;
use serde_json::{json, Value};
use std::time::Duration;

/// Output tokens assumed when a request sets no `max_tokens` and the config no context.
pub const DEFAULT_CONTEXT_TOKENS: u64 = 32_768;

pub struct Upstream {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// The model name the upstream knows.
    pub model: String,
    pub api_key: Option<String>,
    pub counter: Option<TokenCounter>,
    /// Bound on output tokens when a request sets none.
    pub context_tokens: u64,
    pub http: reqwest::Client,
}

/// The kind of call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Chat,
    Completion,
    Embedding,
}

impl Kind {
    pub fn path(self) -> &'static str {
        match self {
            Kind::Chat => "/chat/completions",
            Kind::Completion => "/completions",
            Kind::Embedding => "/embeddings",
        }
    }
}

/// Tokens of a completion's `prompt` or an embedding's `input`: strings counted with the
/// tokenizer, token arrays (flat, or one per input) by their length.
fn input_tokens(c: &TokenCounter, v: &Value) -> Result<usize, models::Error> {
    match v {
        Value::String(s) => c.count(s),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => c.count(s),
                Value::Array(ids) => Ok(ids.len()),
                _ => Ok(1), // one token id of a flat array
            })
            .sum(),
        _ => Ok(0),
    }
}

/// A message's text: a string, or its text parts.
fn content_text(c: &Value) -> String {
    match c {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

impl Upstream {
    /// The prompt's tokens as the provider counts them, or (without a tokenizer) a bound:
    /// never more tokens than bytes, plus a template's.
    pub fn prompt_tokens(&self, kind: Kind, req: &Value, body_len: usize) -> Result<u64, ApiError> {
        let Some(c) = &self.counter else { return Ok(body_len as u64 + 256) };
        let bad = |e: models::Error| ApiError::invalid("input", e.to_string());
        let n = match kind {
            Kind::Chat => {
                let msgs = req["messages"]
                    .as_array()
                    .ok_or_else(|| ApiError::invalid("messages", "`messages` is required"))?;
                let owned: Vec<(String, String)> = msgs
                    .iter()
                    .map(|m| (m["role"].as_str().unwrap_or("user").to_string(), content_text(&m["content"])))
                    .collect();
                c.count_chat(owned.iter().map(|(r, t)| (r.as_str(), t.as_str()))).map_err(bad)?
            }
            Kind::Completion => input_tokens(c, &req["prompt"]).map_err(bad)?,
            Kind::Embedding => input_tokens(c, &req["input"]).map_err(bad)?,
        };
        Ok(n as u64)
    }

    /// The most output tokens the call may produce.
    pub fn output_bound(&self, kind: Kind, req: &Value) -> u64 {
        if kind == Kind::Embedding {
            return 0;
        }
        // Per choice; `n` choices of each of a completion's prompts.
        req["max_completion_tokens"]
            .as_u64()
            .or(req["max_tokens"].as_u64())
            .unwrap_or(self.context_tokens)
            .saturating_mul(openai::choices_requested(req))
    }

    /// What the call used: (prompt, completion) tokens, by the provider's count when it has
    /// a tokenizer (each choice's text counted on its own), else by the upstream's `usage`.
    pub fn used<'a>(
        &self,
        counted_prompt: u64,
        generated: impl IntoIterator<Item = &'a str>,
        usage: &Value,
    ) -> (u64, u64) {
        match &self.counter {
            Some(c) => (counted_prompt, generated.into_iter().map(|t| c.count(t).unwrap_or(0) as u64).sum()),
            None => (usage["prompt_tokens"].as_u64().unwrap_or(0), usage["completion_tokens"].as_u64().unwrap_or(0)),
        }
    }

    /// Sends the call upstream (the body with the upstream's model name).
    pub async fn send(&self, kind: Kind, mut req: Value, stream: bool) -> Result<reqwest::Response, ApiError> {
        req["model"] = Value::String(self.model.clone());
        if stream {
            req["stream_options"] = json!({ "include_usage": true });
        }
        let url = format!("{}{}", self.url.trim_end_matches('/'), kind.path());
        let mut r = self.http.post(&url).json(&req);
        if let Some(k) = &self.api_key {
            r = r.bearer_auth(k);
        }
        let resp = r.send().await.map_err(|e| upstream_error(format!("the upstream at {url} is unreachable: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_client_error() && body["error"].is_object() {
            // The request itself is wrong: the upstream's own answer, in the same shape.
            let e = &body["error"];
            let mut err = ApiError::new(
                status.as_u16(),
                e["type"].as_str().unwrap_or("invalid_request_error"),
                e["code"].as_str().unwrap_or("upstream_rejected"),
                e["message"].as_str().unwrap_or("the upstream refused the request"),
            );
            err.body.error.param = e["param"].as_str().map(str::to_string);
            return Err(err);
        }
        Err(upstream_error(format!("the upstream answered {status}: {body}")))
    }
}

pub fn upstream_error(message: String) -> ApiError {
    let mut e = ApiError::new(502, "server_error", "upstream_error", message);
    e.should_retry = Some(true);
    e
}

/// The generated text of each choice of a complete (non-streamed) answer.
pub fn generated_texts(kind: Kind, answer: &Value) -> Vec<String> {
    let choices = answer["choices"].as_array().cloned().unwrap_or_default();
    choices
        .iter()
        .map(|c| match kind {
            Kind::Chat => content_text(&c["message"]["content"]),
            _ => c["text"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// Relays a stream of server-sent events from a task of its own, which reads the upstream
/// to its end even when the client leaves (so what the upstream produced, and billed, is
/// always known). Each whole event (with its blank line) goes through `on_event`, which
/// returns what to send the client in its place (nothing: drop it); at the end `finish`
/// gets the state and whether the upstream failed, and returns closing bytes to send.
pub fn relay_events<T: Send + 'static, E: Send + 'static>(
    upstream: impl futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
    mut state: T,
    mut on_event: impl FnMut(&mut T, &str) -> Option<String> + Send + 'static,
    finish: impl FnOnce(T, bool) -> Vec<String> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
    tokio::spawn(async move {
        let mut upstream = std::pin::pin!(upstream);
        let mut client = Some(tx);
        let mut buf: Vec<u8> = Vec::new();
        let mut failed = false;
        while let Some(item) = upstream.next().await {
            let Ok(chunk) = item else {
                failed = true;
                break;
            };
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let Some(out) = on_event(&mut state, &String::from_utf8_lossy(&event)) else { continue };
                if let Some(t) = &client {
                    if t.send(Ok(Bytes::from(out))).await.is_err() {
                        client = None; // the client left; read on
                    }
                }
            }
        }
        // An unterminated last event goes through `on_event` like the others.
        let last = (!buf.is_empty()).then(|| on_event(&mut state, &String::from_utf8_lossy(&buf))).flatten();
        let mut closing = finish(state, failed);
        closing.splice(0..0, last);
        if let Some(t) = &client {
            for e in closing {
                if t.send(Ok(Bytes::from(e))).await.is_err() {
                    break;
                }
            }
            if failed {
                let _ = t.send(Err(std::io::Error::other("the upstream stream failed"))).await;
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// The JSON of an event's `data:` line (None for `[DONE]` and anything else).
pub fn event_json(event: &str) -> Option<Value> {
    let data = event.lines().find_map(|l| l.strip_prefix("data:")).map(str::trim)?;
    serde_json::from_str(data).ok()
}

/// What a relayed stream produced, for billing.
pub struct Relayed {
    /// Each choice's text, by its index.
    pub texts: std::collections::BTreeMap<u64, String>,
    pub usage: Value,
    /// The chunks' id and created time (for the usage chunk the provider adds).
    pub id: String,
    pub created: u64,
    pub complete: bool,
}

/// Relays an upstream stream of chat or completion chunks: each chunk renamed to `model`,
/// the upstream's usage chunk and `[DONE]` held back. `finish` gets what was generated and
/// returns the closing events to send (the provider's usage chunk, `[DONE]`).
pub fn relay(
    resp: reqwest::Response,
    kind: Kind,
    model: String,
    finish: impl FnOnce(Relayed) -> Vec<String> + Send + 'static,
) -> Body {
    let state =
        Relayed { texts: Default::default(), usage: Value::Null, id: String::new(), created: 0, complete: false };
    let on_event = move |out: &mut Relayed, event: &str| {
        if event.lines().any(|l| l.strip_prefix("data:").is_some_and(|d| d.trim() == "[DONE]")) {
            out.complete = true;
            return None;
        }
        let mut v = event_json(event)?;
        if v["usage"].is_object() {
            out.usage = v["usage"].clone();
        }
        let choices = v["choices"].as_array().cloned().unwrap_or_default();
        if choices.is_empty() {
            return None; // the upstream's usage chunk: the provider sends its own
        }
        for c in &choices {
            let text = out.texts.entry(c["index"].as_u64().unwrap_or(0)).or_default();
            text.push_str(match kind {
                Kind::Chat => c["delta"]["content"].as_str().unwrap_or(""),
                _ => c["text"].as_str().unwrap_or(""),
            });
        }
        if out.id.is_empty() {
            out.id = v["id"].as_str().unwrap_or("").to_string();
            out.created = v["created"].as_u64().unwrap_or(0);
        }
        v["model"] = Value::String(model.clone());
        if let Some(o) = v.as_object_mut() {
            o.remove("usage");
        }
        Some(format!("data: {v}\n\n"))
    };
    relay_events(resp.bytes_stream(), state, on_event, move |out, _failed| finish(out))
}

/// A client for upstream calls.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // Silence, not length: a total timeout would also cut a stream that is still
        // sending after 10 minutes.
        .read_timeout(Duration::from_secs(600))
        .build()
        .expect("a TLS-less HTTP client builds")
}
