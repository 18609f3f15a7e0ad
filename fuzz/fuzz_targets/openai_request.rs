//! OpenAI request bodies, as a provider or the gateway receives them from anyone: the chat,
//! completion and embedding parsers and the Responses translation never panic; a stream
//! translator fed any chunk closes its stream exactly once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openai::responses::{from_chat, to_chat, StreamTranslator};
use openai::{ChatRequest, CompletionRequest, EmbeddingRequest};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    if let Ok(chat) = serde_json::from_value::<ChatRequest>(v.clone()) {
        let _ = (chat.sampling(), chat.texts());
    }
    if let Ok(c) = serde_json::from_value::<CompletionRequest>(v.clone()) {
        if let (Ok(s), Ok(prompts)) = (c.sampling(), c.prompts()) {
            assert!(!prompts.is_empty() && prompts.len() as u64 * s.n <= openai::CHOICES_MAX);
        }
    }
    if let Ok(e) = serde_json::from_value::<EmbeddingRequest>(v.clone()) {
        let _ = (e.texts(), e.base64());
    }
    assert!(openai::choices_requested(&v) >= 1, "a request asks for at least one choice");
    if let Ok((chat, echo)) = to_chat(&v) {
        assert!(chat["messages"].as_array().is_some_and(|m| !m.is_empty()), "a translated request has messages");
        let _ = from_chat(&v, &echo);
        let mut t = StreamTranslator::new(echo);
        let _ = t.chunk(&v);
        let closing = t.finish(true);
        assert!(!closing.is_empty(), "a stream ends with a terminal event");
        assert!(t.finish(true).is_empty() && t.chunk(&v).is_empty(), "a finished stream adds nothing");
    }
});
