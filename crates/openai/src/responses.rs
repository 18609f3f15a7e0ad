//! OpenAI's Responses API (`POST /v1/responses`) over chat completions: a request is
//! translated into a chat completion request, and the chat answer (a `chat.completion`, or
//! its stream of chunks) back into a `response` object (or its stream of semantic events),
//! as the official client's `client.responses.create` and `client.responses.stream` read
//! them. Stateless: nothing is stored, so what needs a stored response
//! (`previous_response_id`, `conversation`, `background`) is a 400 naming the parameter,
//! and the answer says `"store": false`.
//!
//! Tools, reasoning and log probabilities are refused as the chat path refuses them; text
//! formats (`text.format`: text, json_object, json_schema) map to `response_format`, so a
//! model that can honour one gets it.

use crate::ApiError;
use serde_json::{json, Map, Value};

/// What a `response` object echoes from its request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Echo {
    instructions: Value,
    max_output_tokens: Value,
    metadata: Value,
    parallel_tool_calls: Value,
    temperature: Value,
    top_p: Value,
    text: Value,
    user: Value,
    pub stream: bool,
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(param, message)
}

fn unsupported(param: &str, what: &str) -> ApiError {
    let mut e = invalid(param, format!("{what} is not supported here"));
    e.body.error.code = Some("unsupported_parameter".into());
    e
}

/// A Responses content part as a chat content part.
fn part(i: usize, k: usize, p: &Value) -> Result<Value, ApiError> {
    let at = format!("input[{i}].content[{k}]");
    match p["type"].as_str() {
        Some("input_text" | "output_text") => match p["text"].as_str() {
            Some(t) => Ok(json!({ "type": "text", "text": t })),
            None => Err(invalid(&at, "a text part needs `text`")),
        },
        Some("refusal") => match p["refusal"].as_str() {
            Some(t) => Ok(json!({ "type": "text", "text": t })),
            None => Err(invalid(&at, "a refusal part needs `refusal`")),
        },
        Some("input_image") => match p["image_url"].as_str() {
            // The model decides whether it reads images (the built-in ones do not).
            Some(url) => Ok(
                json!({ "type": "image_url", "image_url": { "url": url, "detail": p["detail"].as_str().unwrap_or("auto") } }),
            ),
            None => Err(unsupported(&at, "an image by `file_id` (no file storage)")),
        },
        Some(other) => Err(unsupported(&at, &format!("a content part of type `{other}`"))),
        None => Err(invalid(&at, "a content part needs `type`")),
    }
}

/// One input item as a chat message.
fn message(i: usize, item: &Value) -> Result<Value, ApiError> {
    match item["type"].as_str() {
        None | Some("message") => {}
        Some(other) => {
            return Err(unsupported(&format!("input[{i}].type"), &format!("an input item of type `{other}`")));
        }
    }
    let role = match item["role"].as_str() {
        Some(r @ ("user" | "assistant" | "system" | "developer")) => r,
        Some(r) => return Err(invalid(&format!("input[{i}].role"), format!("unknown role `{r}`"))),
        None => return Err(invalid(&format!("input[{i}].role"), "a message needs `role`")),
    };
    let content = match &item["content"] {
        Value::String(s) => Value::String(s.clone()),
        Value::Array(parts) => {
            let parts = parts.iter().enumerate().map(|(k, p)| part(i, k, p)).collect::<Result<Vec<_>, _>>()?;
            Value::Array(parts)
        }
        _ => return Err(invalid(&format!("input[{i}].content"), "`content` must be a string or an array of parts")),
    };
    Ok(json!({ "role": role, "content": content }))
}

/// The chat completion request that answers a Responses request, and what the answer
/// echoes from it.
pub fn to_chat(req: &Value) -> Result<(Value, Echo), ApiError> {
    let Some(obj) = req.as_object() else {
        return Err(invalid("body", "the body must be a JSON object"));
    };
    let model = obj.get("model").and_then(Value::as_str).ok_or_else(|| invalid("model", "`model` is required"))?;
    let present = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    for (key, what) in [
        ("previous_response_id", "`previous_response_id` (responses are not stored; send the conversation in `input`)"),
        ("conversation", "`conversation` (responses are not stored; send the conversation in `input`)"),
        ("prompt", "a stored prompt template"),
        ("reasoning", "`reasoning` (the models here do not reason)"),
    ] {
        if present(key) {
            return Err(unsupported(key, what));
        }
    }
    if obj.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("background", "background mode (responses are not stored)"));
    }
    if obj.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty()) {
        return Err(unsupported("tools", "tool calling"));
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "auto" || s == "none" => {}
        Some(_) => return Err(unsupported("tool_choice", "a tool choice other than `auto` or `none`")),
    }
    if obj.get("top_logprobs").and_then(Value::as_u64).is_some_and(|n| n > 0) {
        return Err(unsupported("top_logprobs", "log probabilities"));
    }
    if let Some(include) = obj.get("include").and_then(Value::as_array) {
        if let Some(x) = include.iter().filter_map(Value::as_str).find(|x| x.contains("logprobs")) {
            return Err(unsupported("include", &format!("`{x}`")));
        }
    }
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({ "role": "system", "content": s })),
        Some(_) => return Err(invalid("instructions", "`instructions` must be a string")),
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({ "role": "user", "content": s })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                messages.push(message(i, item)?);
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(invalid("input", "`input` must be a string or an array of items")),
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err(invalid("input", "`input` is required: a string or at least one message"));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(model.to_string()));
    chat.insert("messages".into(), Value::Array(messages));
    match obj.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => {
                chat.insert("max_tokens".into(), json!(n));
            }
            _ => return Err(invalid("max_output_tokens", "`max_output_tokens` must be a positive integer")),
        },
    }
    for key in ["temperature", "top_p", "user", "provider"] {
        if let Some(v) = obj.get(key).filter(|v| !v.is_null()) {
            chat.insert(key.into(), v.clone());
        }
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "`stream` must be a boolean")),
    };
    if stream {
        chat.insert("stream".into(), Value::Bool(true));
        // The final event carries the usage.
        chat.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let format = &req["text"]["format"];
    match format["type"].as_str() {
        None | Some("text") => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({ "type": "json_object" }));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key) {
                    schema.insert(key.into(), v.clone());
                }
            }
            chat.insert("response_format".into(), json!({ "type": "json_schema", "json_schema": schema }));
        }
        Some(other) => return Err(invalid("text.format.type", format!("unknown text format `{other}`"))),
    }
    let echo = |k: &str, default: Value| obj.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    let echo = Echo {
        instructions: echo("instructions", Value::Null),
        max_output_tokens: echo("max_output_tokens", Value::Null),
        metadata: echo("metadata", json!({})),
        parallel_tool_calls: echo("parallel_tool_calls", Value::Bool(true)),
        temperature: echo("temperature", json!(1.0)),
        top_p: echo("top_p", json!(1.0)),
        text: echo("text", json!({ "format": { "type": "text" } })),
        user: echo("user", Value::Null),
        stream,
    };
    Ok((Value::Object(chat), echo))
}

/// A chat answer's usage as a Responses usage (`cost` and other extra fields kept).
fn usage(u: &Value) -> Value {
    if !u.is_object() {
        return Value::Null;
    }
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    let mut out = json!({
        "input_tokens": input,
        "input_tokens_details": { "cached_tokens": u["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": u["completion_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0) },
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(input + output),
    });
    for (k, v) in u.as_object().into_iter().flatten() {
        if !matches!(
            k.as_str(),
            "prompt_tokens"
                | "completion_tokens"
                | "total_tokens"
                | "prompt_tokens_details"
                | "completion_tokens_details"
        ) {
            out[k] = v.clone();
        }
    }
    out
}

/// `(status, incomplete_details)` of a response that ended with a chat `finish_reason`.
fn ending(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
        _ => ("completed", Value::Null),
    }
}

/// The ids of a response and its message, from the chat answer's id.
pub fn ids(chat_id: &str) -> (String, String) {
    let tail = chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id);
    (format!("resp_{tail}"), format!("msg_{tail}"))
}

fn text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({ "type": "message", "id": id, "status": status, "role": "assistant", "content": content })
}

/// A response's id, creation time and model.
#[derive(Clone, Debug)]
struct Head {
    id: String,
    message_id: String,
    created_at: u64,
    model: String,
}

impl Head {
    fn of(chat: &Value) -> Head {
        let (id, message_id) = ids(chat["id"].as_str().unwrap_or(""));
        let model = chat["model"].as_str().unwrap_or("").to_string();
        Head { id, message_id, created_at: chat["created"].as_u64().unwrap_or(0), model }
    }
}

/// A `response` object; `output` and `usage` as given.
fn response(head: &Head, echo: &Echo, status: &str, incomplete: Value, output: Vec<Value>, usage: Value) -> Value {
    json!({
        "id": head.id,
        "object": "response",
        "created_at": head.created_at,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "metadata": echo.metadata,
        "model": head.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": echo.temperature,
        "text": echo.text,
        "tool_choice": "auto",
        "tools": [],
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage,
        "user": echo.user,
    })
}

/// The `response` object for a (non-streamed) `chat.completion`.
pub fn from_chat(chat: &Value, echo: &Echo) -> Value {
    let head = Head::of(chat);
    let choice = &chat["choices"][0];
    let (status, incomplete) = ending(choice["finish_reason"].as_str());
    let text = choice["message"]["content"].as_str().unwrap_or("");
    let item = message_item(&head.message_id, status, vec![text_part(text)]);
    response(&head, echo, status, incomplete, vec![item], usage(&chat["usage"]))
}

/// Turns a stream of chat completion chunks into the Responses stream of semantic events:
/// `response.created`, `response.in_progress`, the message item and its text part added,
/// a `response.output_text.delta` per piece of text, then the text, part and item done and
/// `response.completed` (or `response.incomplete` when the length limit cut it short).
/// An error event from upstream becomes an `error` event and `response.failed`.
#[derive(Debug)]
pub struct StreamTranslator {
    echo: Echo,
    seq: u64,
    /// Set by the first chunk.
    started: Option<Head>,
    text: String,
    finish_reason: Option<String>,
    usage: Value,
    ended: bool,
}

impl StreamTranslator {
    pub fn new(echo: Echo) -> StreamTranslator {
        StreamTranslator {
            echo,
            seq: 0,
            started: None,
            text: String::new(),
            finish_reason: None,
            usage: Value::Null,
            ended: false,
        }
    }

    /// One server-sent event: `event: <type>` and its data with `sequence_number`.
    fn event(&mut self, mut data: Value) -> String {
        data["sequence_number"] = json!(self.seq);
        self.seq += 1;
        let kind = data["type"].as_str().unwrap_or("message").to_string();
        format!("event: {kind}\ndata: {data}\n\n")
    }

    fn snapshot(&self, status: &str, incomplete: Value, output: Vec<Value>, usage: Value) -> Value {
        response(self.started.as_ref().expect("started"), &self.echo, status, incomplete, output, usage)
    }

    fn start(&mut self, chunk: &Value) -> Vec<String> {
        let head = Head::of(chunk);
        let msg_id = head.message_id.clone();
        self.started = Some(head);
        let snapshot = self.snapshot("in_progress", Value::Null, vec![], Value::Null);
        vec![
            self.event(json!({ "type": "response.created", "response": snapshot })),
            self.event(json!({ "type": "response.in_progress", "response": snapshot })),
            self.event(json!({
                "type": "response.output_item.added",
                "output_index": 0,
                "item": message_item(&msg_id, "in_progress", vec![]),
            })),
            self.event(json!({
                "type": "response.content_part.added",
                "item_id": msg_id,
                "output_index": 0,
                "content_index": 0,
                "part": text_part(""),
            })),
        ]
    }

    /// The events for one chat chunk (the JSON of one `data:` line).
    pub fn chunk(&mut self, chunk: &Value) -> Vec<String> {
        if self.ended {
            return Vec::new();
        }
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return self.fail(&chunk["error"]);
        }
        let mut out = Vec::new();
        if self.started.is_none() {
            out = self.start(chunk);
        }
        let msg_id = self.started.as_ref().expect("started").message_id.clone();
        if let Some(choice) = chunk["choices"].get(0) {
            if let Some(piece) = choice["delta"]["content"].as_str().filter(|p| !p.is_empty()) {
                self.text.push_str(piece);
                out.push(self.event(json!({
                    "type": "response.output_text.delta",
                    "item_id": msg_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                })));
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_string());
            }
        }
        if chunk["usage"].is_object() {
            self.usage = usage(&chunk["usage"]);
        }
        out
    }

    /// An error from upstream: an `error` event, then `response.failed`.
    pub fn fail(&mut self, error: &Value) -> Vec<String> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let code = error["code"].clone();
        let message = error["message"].as_str().unwrap_or("the model failed").to_string();
        let mut out = vec![self.event(json!({
            "type": "error",
            "code": code,
            "message": message,
            "param": error["param"],
        }))];
        if self.started.is_some() {
            let mut snapshot = self.snapshot("failed", Value::Null, vec![], self.usage.clone());
            snapshot["error"] = json!({ "code": code, "message": message });
            out.push(self.event(json!({ "type": "response.failed", "response": snapshot })));
        }
        out
    }

    /// The closing events, at the end of the chat stream (`[DONE]`, or its end without
    /// one: then the response failed).
    pub fn finish(&mut self, done: bool) -> Vec<String> {
        if self.ended {
            return Vec::new();
        }
        if !done || self.started.is_none() {
            return self.fail(&json!({ "code": "stream_interrupted", "message": "the model's stream ended early" }));
        }
        self.ended = true;
        let msg_id = self.started.as_ref().expect("started").message_id.clone();
        let (status, incomplete) = ending(self.finish_reason.as_deref());
        let text = std::mem::take(&mut self.text);
        let part = text_part(&text);
        let item = message_item(&msg_id, status, vec![part.clone()]);
        let mut out = vec![
            self.event(json!({
                "type": "response.output_text.done",
                "item_id": msg_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            })),
            self.event(json!({
                "type": "response.content_part.done",
                "item_id": msg_id,
                "output_index": 0,
                "content_index": 0,
                "part": part,
            })),
            self.event(json!({ "type": "response.output_item.done", "output_index": 0, "item": item })),
        ];
        let snapshot = self.snapshot(status, incomplete, vec![item], self.usage.clone());
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        out.push(self.event(json!({ "type": kind, "response": snapshot })));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_of(req: Value) -> Result<Value, ApiError> {
        to_chat(&req).map(|(c, _)| c)
    }

    #[test]
    fn a_request_becomes_a_chat_request() {
        let chat = chat_of(json!({
            "model": "m",
            "instructions": "be brief",
            "input": [
                { "role": "user", "content": "hi" },
                { "type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                  "content": [{ "type": "output_text", "text": "hello", "annotations": [] }] },
                { "role": "developer", "content": [{ "type": "input_text", "text": "again" }] },
            ],
            "max_output_tokens": 16,
            "temperature": 0,
            "stream": true,
            "text": { "format": { "type": "json_schema", "name": "x", "schema": { "type": "object" }, "strict": true } },
            "store": true,
            "metadata": { "k": "v" },
        }))
        .unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "m",
                "messages": [
                    { "role": "system", "content": "be brief" },
                    { "role": "user", "content": "hi" },
                    { "role": "assistant", "content": [{ "type": "text", "text": "hello" }] },
                    { "role": "developer", "content": [{ "type": "text", "text": "again" }] },
                ],
                "max_tokens": 16,
                "temperature": 0,
                "stream": true,
                "stream_options": { "include_usage": true },
                "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": { "type": "object" }, "strict": true } },
            })
        );
        assert_eq!(
            chat_of(json!({ "model": "m", "input": "hi" })).unwrap(),
            json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] })
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_a_400_naming_it() {
        let param = |req: Value| chat_of(req).unwrap_err().body.error.param.unwrap();
        assert_eq!(param(json!({ "input": "hi" })), "model");
        assert_eq!(param(json!({ "model": "m" })), "input");
        assert_eq!(param(json!({ "model": "m", "instructions": "only this" })), "input");
        assert_eq!(
            param(json!({ "model": "m", "input": "hi", "previous_response_id": "resp_1" })),
            "previous_response_id"
        );
        assert_eq!(param(json!({ "model": "m", "input": "hi", "background": true })), "background");
        assert_eq!(param(json!({ "model": "m", "input": "hi", "reasoning": { "effort": "low" } })), "reasoning");
        assert_eq!(
            param(json!({ "model": "m", "input": "hi", "tools": [{ "type": "function", "name": "f" }] })),
            "tools"
        );
        assert_eq!(param(json!({ "model": "m", "input": "hi", "tool_choice": "required" })), "tool_choice");
        assert_eq!(param(json!({ "model": "m", "input": "hi", "top_logprobs": 2 })), "top_logprobs");
        assert_eq!(param(json!({ "model": "m", "input": "hi", "max_output_tokens": 0 })), "max_output_tokens");
        assert_eq!(
            param(
                json!({ "model": "m", "input": [{ "type": "function_call_output", "call_id": "c", "output": "x" }] })
            ),
            "input[0].type"
        );
        assert_eq!(
            param(
                json!({ "model": "m", "input": [{ "role": "user", "content": [{ "type": "input_file", "file_id": "f" }] }] })
            ),
            "input[0].content[0]"
        );
        assert_eq!(param(json!({ "model": "m", "input": [{ "role": "tool", "content": "x" }] })), "input[0].role");
        // Accepted and without effect: empty tools, `auto`, `store`.
        assert!(
            chat_of(json!({ "model": "m", "input": "hi", "tools": [], "tool_choice": "auto", "store": true })).is_ok()
        );
    }

    #[test]
    fn a_chat_completion_becomes_a_response() {
        let (_, echo) = to_chat(&json!({ "model": "m", "input": "hi", "max_output_tokens": 4 })).unwrap();
        let chat = json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello" }, "finish_reason": "length" }],
            "usage": { "prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": "12" },
        });
        let r = from_chat(&chat, &echo);
        assert_eq!(r["id"], "resp_abc");
        assert_eq!(r["object"], "response");
        assert_eq!(r["created_at"], 7);
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["incomplete_details"], json!({ "reason": "max_output_tokens" }));
        assert_eq!(r["max_output_tokens"], 4);
        assert_eq!(r["store"], false);
        assert_eq!(
            r["output"],
            json!([{ "type": "message", "id": "msg_abc", "status": "incomplete", "role": "assistant",
                     "content": [{ "type": "output_text", "text": "Hello", "annotations": [], "logprobs": [] }] }])
        );
        assert_eq!(
            r["usage"],
            json!({ "input_tokens": 3, "input_tokens_details": { "cached_tokens": 0 }, "output_tokens": 4,
                    "output_tokens_details": { "reasoning_tokens": 0 }, "total_tokens": 7, "cost": "12" })
        );
        let chat = json!({ "id": "chatcmpl-x", "created": 1, "model": "m",
            "choices": [{ "message": { "content": "ok" }, "finish_reason": "stop" }] });
        let r = from_chat(&chat, &echo);
        assert_eq!((r["status"].clone(), r["incomplete_details"].clone()), (json!("completed"), Value::Null));
    }

    fn data_of(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .map(|e| {
                let (head, data) = e.split_once('\n').unwrap();
                let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap().trim_end()).unwrap();
                assert_eq!(head, format!("event: {}", v["type"].as_str().unwrap()));
                v
            })
            .collect()
    }

    #[test]
    fn a_chat_stream_becomes_the_semantic_events() {
        let (_, echo) = to_chat(&json!({ "model": "m", "input": "hi", "stream": true })).unwrap();
        let mut t = StreamTranslator::new(echo);
        let mut events = Vec::new();
        let chunk = |content: Option<&str>, finish: Option<&str>| {
            json!({ "id": "chatcmpl-q", "object": "chat.completion.chunk", "created": 5, "model": "m",
                    "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": finish }] })
        };
        events.extend(t.chunk(&json!({ "id": "chatcmpl-q", "created": 5, "model": "m",
            "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }] })));
        events.extend(t.chunk(&chunk(Some("Hel"), None)));
        events.extend(t.chunk(&chunk(Some("lo"), None)));
        events.extend(t.chunk(&chunk(None, Some("stop"))));
        events.extend(t.chunk(&json!({ "id": "chatcmpl-q", "created": 5, "model": "m", "choices": [],
            "usage": { "prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4, "cost": "9" } })));
        events.extend(t.finish(true));
        assert!(t.finish(true).is_empty(), "a finished stream adds nothing");
        let data = data_of(&events);
        let kinds: Vec<&str> = data.iter().map(|d| d["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, d) in data.iter().enumerate() {
            assert_eq!(d["sequence_number"], i as u64);
        }
        assert_eq!(data[0]["response"]["status"], "in_progress");
        assert_eq!(data[0]["response"]["id"], "resp_q");
        assert_eq!(data[6]["text"], "Hello");
        let done = &data[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(done["usage"]["output_tokens"], 2);
        assert_eq!(done["usage"]["cost"], "9");
    }

    #[test]
    fn a_stream_cut_by_the_length_limit_is_incomplete_and_one_broken_off_fails() {
        let (_, echo) = to_chat(&json!({ "model": "m", "input": "hi", "stream": true })).unwrap();
        let first = json!({ "id": "chatcmpl-q", "created": 5, "model": "m",
            "choices": [{ "index": 0, "delta": { "content": "a" }, "finish_reason": "length" }] });
        let mut t = StreamTranslator::new(echo.clone());
        let mut events = t.chunk(&first);
        events.extend(t.finish(true));
        let last = data_of(&events).pop().unwrap();
        assert_eq!(last["type"], "response.incomplete");
        assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");

        let mut t = StreamTranslator::new(echo.clone());
        let mut events = t.chunk(&first);
        events.extend(
            t.chunk(&json!({ "error": { "message": "boom", "type": "server_error", "code": "model_failed" } })),
        );
        events.extend(t.finish(true));
        let data = data_of(&events);
        let n = data.len();
        assert_eq!((data[n - 2]["type"].clone(), data[n - 2]["code"].clone()), (json!("error"), json!("model_failed")));
        assert_eq!(data[n - 1]["type"], "response.failed");
        assert_eq!(data[n - 1]["response"]["error"]["message"], "boom");

        let mut t = StreamTranslator::new(echo);
        let mut events = t.chunk(&first);
        events.extend(t.finish(false));
        assert_eq!(data_of(&events).pop().unwrap()["type"], "response.failed");
    }
}
