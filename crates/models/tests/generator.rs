//! SmolLM2-135M-Instruct on the real GGUF.
//!
//! The golden test runs the f32 path against greedy outputs recorded from Python
//! transformers on the same GGUF (tests/fixtures/smollm2_reference.json, made by
//! scripts/reference/record_generation.py). The quantised path, which a server uses,
//! cannot be golden-tested against an f32 reference (8-bit activations flip near-tied
//! logits), so it is checked for properties: deterministic, coherent, exact counts.
//!
//! Needs the weights: run `scripts/fetch-models.sh` first (or set TESSERA_MODELS_DIR).

use std::ops::ControlFlow;
use std::sync::OnceLock;

use models::{ChatMessage, FinishReason, GenerateParams, Generator, ModelDir, Precision};

/// The default precision (Q8_0), what a server uses.
fn quantized() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| load(Precision::default()))
}

fn q4_1() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| load(Precision::Q4_1))
}

fn f32() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| load(Precision::F32))
}

fn load(precision: Precision) -> Generator {
    Generator::load(&ModelDir::for_workspace_tests(), precision)
        .unwrap_or_else(|e| panic!("cannot load SmolLM2-135M-Instruct: {e}"))
}

#[derive(serde::Deserialize)]
struct Reference {
    max_new_tokens: usize,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    messages: Option<Vec<Message>>,
    prompt: Option<String>,
    prompt_text: String,
    prompt_ids: Vec<u32>,
    completion_ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Message {
    role: String,
    content: String,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smollm2_reference.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

fn messages(case: &Case) -> Vec<ChatMessage> {
    case.messages.as_ref().unwrap().iter().map(|m| ChatMessage::new(&m.role, &m.content)).collect()
}

/// Generates, collecting the streamed pieces too.
fn run(g: &Generator, prompt: &[u32], params: &GenerateParams) -> (models::Completion, Vec<String>) {
    let mut pieces = Vec::new();
    let done = g
        .generate(prompt, params, |piece| {
            pieces.push(piece.to_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(pieces.concat(), done.text, "streamed pieces must add up to the text");
    assert!(pieces.iter().all(|p| !p.is_empty()));
    assert_eq!(done.completion_tokens, done.completion_ids.len());
    assert_eq!(done.prompt_tokens, prompt.len());
    if params.stop.is_empty() {
        // Streaming decode (piece by piece) equals decoding all ids at once.
        assert_eq!(done.text, g.decode(&done.completion_ids).unwrap());
    }
    (done, pieces)
}

#[test]
fn prompts_match_transformers_tokenizer_and_template() {
    let g = quantized();
    for case in reference().cases {
        let ids = if case.messages.is_some() {
            let msgs = messages(&case);
            assert_eq!(g.chat_prompt(&msgs), case.prompt_text, "{}", case.name);
            g.chat_prompt_ids(&msgs).unwrap()
        } else {
            g.encode(case.prompt.as_deref().unwrap()).unwrap()
        };
        assert_eq!(ids, case.prompt_ids, "{}", case.name);
    }
}

#[test]
fn f32_greedy_matches_transformers() {
    let g = f32();
    let reference = reference();
    for case in &reference.cases {
        // transformers was run past end-of-sequence for plain prompts; we stop there.
        let end = case.completion_ids.iter().position(|&t| t == 0 || t == 2);
        let want: Vec<u32> = match end {
            Some(i) => case.completion_ids[..=i].to_vec(),
            None => case.completion_ids.clone(),
        };
        let params = GenerateParams::greedy(reference.max_new_tokens);
        let (done, _) = run(g, &case.prompt_ids, &params);
        assert_eq!(done.completion_ids, want, "{}", case.name);
        let want_reason = if end.is_some() { FinishReason::Stop } else { FinishReason::Length };
        assert_eq!(done.finish_reason, want_reason, "{}", case.name);
        let text_ids = &want[..want.len() - usize::from(end.is_some())];
        assert_eq!(done.text, g.decode(text_ids).unwrap(), "{}", case.name);
    }
}

#[test]
fn f32_chat_answers_paris() {
    let msgs = [ChatMessage::new("user", "What is the capital of France?")];
    let done = f32().chat(&msgs, &GenerateParams::greedy(32), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(done.text, "The capital of France is Paris.");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.prompt_tokens, 37);
    assert_eq!(done.completion_tokens, 8, "7 text tokens + <|im_end|>");
}

#[test]
fn quantized_chat_is_coherent_and_deterministic() {
    let g = quantized();
    let msgs = [ChatMessage::new("user", "Write one short sentence about the sea.")];
    let prompt = g.chat_prompt_ids(&msgs).unwrap();
    let params = GenerateParams::greedy(48);
    let (first, _) = run(g, &prompt, &params);
    let (second, _) = run(g, &prompt, &params);
    assert_eq!(first, second, "greedy decoding is deterministic");
    let words = first.text.split_whitespace().count();
    assert!(words >= 4, "too short: {:?}", first.text);
    assert!(
        first.text.to_lowercase().contains("sea") || first.text.to_lowercase().contains("ocean"),
        "off topic: {:?}",
        first.text
    );
    assert!(first.completion_tokens >= 5 && first.completion_tokens <= 48);
    let vocab = 49_152;
    assert!(first.completion_ids.iter().all(|&t| t < vocab));
    match first.finish_reason {
        FinishReason::Stop => assert_eq!(first.completion_ids.last(), Some(&2), "ends on <|im_end|>"),
        FinishReason::Length => assert_eq!(first.completion_tokens, 48),
        FinishReason::Cancelled => panic!("not cancelled"),
    }
}

#[test]
fn q4_1_path_is_coherent_and_deterministic() {
    let g = q4_1();
    let msgs = [ChatMessage::new("user", "Write one short sentence about the sea.")];
    let prompt = g.chat_prompt_ids(&msgs).unwrap();
    let (first, _) = run(g, &prompt, &GenerateParams::greedy(24));
    let (second, _) = run(g, &prompt, &GenerateParams::greedy(24));
    assert_eq!(first, second);
    assert!(first.text.split_whitespace().count() >= 4, "{:?}", first.text);
    let done = g.complete("List: 1, 2, 3, 4,", &GenerateParams::greedy(6), |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(done.text, " 5, 6,");
    assert_eq!((done.completion_tokens, done.finish_reason), (6, FinishReason::Length));
}

#[test]
fn streaming_keeps_multibyte_characters_whole() {
    // The quantised model answers this in French ("L'Étoile, …"): accented characters
    // span two byte-level tokens, which must not reach the callback half-decoded.
    let g = quantized();
    let msgs = [ChatMessage::new("user", "What is the capital of France?")];
    let prompt = g.chat_prompt_ids(&msgs).unwrap();
    let (done, pieces) = run(g, &prompt, &GenerateParams::greedy(16));
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(!done.text.is_empty());
}

#[test]
fn quantized_respects_max_tokens_exactly() {
    let g = quantized();
    for max_tokens in [1, 5, 17] {
        let done = g
            .complete("Once upon a time, there was a little robot who", &GenerateParams::greedy(max_tokens), |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(done.completion_tokens, max_tokens);
        assert_eq!(done.finish_reason, FinishReason::Length);
        assert_eq!(done.prompt_tokens, 11);
        assert!(!done.text.is_empty());
    }
}

#[test]
fn stop_sequences_end_the_text_before_them() {
    let g = quantized();
    let prompt = "List: 1, 2, 3, 4,";
    let full = g.complete(prompt, &GenerateParams::greedy(24), |_| ControlFlow::Continue(())).unwrap();
    assert!(full.text.starts_with(" 5, 6, 7"), "{:?}", full.text);
    for (stop, want) in [(" 7", " 5, 6,"), ("6", " 5, "), (", 6", " 5")] {
        let params = GenerateParams { stop: vec!["never-appears".into(), stop.into()], ..GenerateParams::greedy(24) };
        let ids = g.encode(prompt).unwrap();
        let (done, pieces) = run(g, &ids, &params);
        assert_eq!(done.text, want, "stop {stop:?}");
        assert_eq!(done.finish_reason, FinishReason::Stop);
        assert!(pieces.iter().all(|p| !p.contains(stop)));
        // The tokens that made the stop sequence were generated and are counted.
        assert!(done.completion_tokens < full.completion_tokens);
        assert_eq!(&full.completion_ids[..done.completion_tokens], &done.completion_ids[..]);
    }
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let g = quantized();
    let params = GenerateParams { max_tokens: 20, temperature: 0.9, top_p: 0.95, seed: 7, ..GenerateParams::default() };
    let once = g.complete("The weather today is", &params, |_| ControlFlow::Continue(())).unwrap();
    let again = g.complete("The weather today is", &params, |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(once, again);
    assert_eq!(once.completion_tokens, 20.min(once.completion_tokens));
}

#[test]
fn chat_template_for_a_conversation() {
    let g = quantized();
    let msgs = [
        ChatMessage::new("user", "Hi"),
        ChatMessage::new("assistant", "Hello! How can I help?"),
        ChatMessage::new("user", "Say <|im_end|> please"),
    ];
    let want = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                <|im_start|>user\nHi<|im_end|>\n\
                <|im_start|>assistant\nHello! How can I help?<|im_end|>\n\
                <|im_start|>user\nSay <|im_end|> please<|im_end|>\n\
                <|im_start|>assistant\n";
    assert_eq!(g.chat_prompt(&msgs), want);
    let ids = g.chat_prompt_ids(&msgs).unwrap();
    // 5 turns opened, 4 closed; the "<|im_end|>" typed by the user is plain text.
    assert_eq!(ids.iter().filter(|&&t| t == 1).count(), 5);
    assert_eq!(ids.iter().filter(|&&t| t == 2).count(), 4);
    assert!(ids.iter().all(|&t| t != 0));
}

#[test]
fn token_counting() {
    let g = quantized();
    assert_eq!(g.count_tokens("").unwrap(), 0);
    assert_eq!(g.count_tokens("Once upon a time, there was a little robot who").unwrap(), 11);
    assert_eq!(g.count_tokens("12345").unwrap(), 5, "digits are one token each");
    // Control-token text in user input is not a control token.
    let ids = g.encode("<|im_end|>").unwrap();
    assert!(ids.len() > 1 && !ids.contains(&2), "{ids:?}");
    assert_eq!(g.decode(&ids).unwrap(), "<|im_end|>");
    let round = "Héllo, wörld! 🚀 tabs\tand\nnewlines";
    assert_eq!(g.decode(&g.encode(round).unwrap()).unwrap(), round);
}

#[test]
fn cancelling_from_the_callback_stops_and_still_counts() {
    let g = quantized();
    let mut calls = 0;
    let done = g
        .complete("Once upon a time, there was a little robot who", &GenerateParams::greedy(30), |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(done.finish_reason, FinishReason::Cancelled);
    assert!(done.completion_tokens >= 1 && done.completion_tokens < 30);
}

#[test]
fn invalid_requests_are_errors() {
    let g = quantized();
    let long = vec![504u32; g.context_tokens_max()];
    let err = g.generate(&long, &GenerateParams::greedy(1), |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(models::Error::PromptTooLong { .. })), "{err:?}");
    let err = g.generate(&[49_152], &GenerateParams::greedy(1), |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(models::Error::InvalidParameter { name: "prompt", .. })));
    let err = g.complete("", &GenerateParams::greedy(1), |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(models::Error::InvalidParameter { name: "prompt", .. })));
    let err = g.chat(&[], &GenerateParams::greedy(1), |_| ControlFlow::Continue(()));
    assert!(matches!(err, Err(models::Error::InvalidParameter { name: "messages", .. })));
}

#[test]
fn missing_weights_say_how_to_fetch_them() {
    let err = Generator::load(&ModelDir::new("/nonexistent/tessera-models"), Precision::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("run scripts/fetch-models.sh"), "{msg}");
    assert!(msg.contains("SmolLM2-135M-Instruct.Q4_1.gguf"), "{msg}");
}

#[test]
fn the_token_counter_counts_as_the_generator_does() {
    let dir = ModelDir::for_workspace_tests();
    let counter = models::TokenCounter::from_file(&dir.smollm2_gguf()).unwrap();
    let g = quantized();
    for text in ["Hello, world!", "The capital of France is", "naïve café — 東京 🚀", ""] {
        assert_eq!(counter.count(text).unwrap(), g.count_tokens(text).unwrap(), "{text:?}");
    }
    // With a system message the generator adds nothing, and ChatML counts the same.
    let chat =
        [("system", "You are terse."), ("user", "Name three colours."), ("assistant", "Red."), ("user", "More?")];
    let msgs: Vec<ChatMessage> = chat.iter().map(|(r, c)| ChatMessage::new(*r, *c)).collect();
    assert_eq!(counter.count_chat(chat).unwrap(), g.chat_prompt_ids(&msgs).unwrap().len());
    let json = models::TokenCounter::from_file(&dir.minilm_dir().join("tokenizer.json")).unwrap();
    assert_eq!(json.count("hello world").unwrap(), 2);
    assert!(models::TokenCounter::from_file(&dir.root().join("nope.gguf")).is_err());
}

#[test]
fn logit_bias_bans_and_forces_tokens() {
    let g = quantized();
    let ids = g.encode("List: 1, 2, 3, 4,").unwrap();
    let (greedy, _) = run(g, &ids, &GenerateParams::greedy(6));
    let first = greedy.completion_ids[0];
    let banned = GenerateParams { logit_bias: vec![(first, -100.0)], ..GenerateParams::greedy(6) };
    let (done, _) = run(g, &ids, &banned);
    assert!(!done.completion_ids.contains(&first), "{:?} still has {first}", done.completion_ids);
    let forced_token = g.encode(" tessera").unwrap()[0];
    let forced = GenerateParams { logit_bias: vec![(forced_token, 100.0)], ..GenerateParams::greedy(4) };
    let (done, _) = run(g, &ids, &forced);
    assert_eq!(done.completion_ids, vec![forced_token; 4]);
    let outside = GenerateParams { logit_bias: vec![(u32::MAX, 1.0)], ..GenerateParams::greedy(4) };
    assert!(matches!(
        g.generate(&ids, &outside, |_| ControlFlow::Continue(())),
        Err(models::Error::InvalidParameter { name: "logit_bias", .. })
    ));
}

#[test]
fn penalties_discourage_repeated_tokens() {
    let g = quantized();
    let ids = g.encode("List: 1, 2, 3, 4,").unwrap();
    let most_repeated = |ids: &[u32]| {
        let mut counts = std::collections::BTreeMap::new();
        for id in ids {
            *counts.entry(*id).or_insert(0) += 1;
        }
        counts.into_values().max().unwrap()
    };
    let (plain, _) = run(g, &ids, &GenerateParams::greedy(24));
    let penalised = GenerateParams { frequency_penalty: 2.0, presence_penalty: 2.0, ..GenerateParams::greedy(24) };
    let (done, _) = run(g, &ids, &penalised);
    assert_ne!(done.completion_ids, plain.completion_ids);
    assert!(
        most_repeated(&done.completion_ids) < most_repeated(&plain.completion_ids),
        "{:?} vs {:?}",
        done.text,
        plain.text
    );
}

#[test]
fn logprobs_describe_the_generated_tokens() {
    let g = quantized();
    let ids = g.encode("The capital of France is").unwrap();
    let params = GenerateParams { logprobs: Some(3), ..GenerateParams::greedy(8) };
    let mut streamed = Vec::new();
    let done = g
        .generate_with_logprobs(&ids, &params, |_, lps| {
            streamed.extend_from_slice(lps);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(streamed, done.logprobs, "the pieces' log probabilities add up to the completion's");
    assert_eq!(done.logprobs.len(), done.completion_tokens, "every token's text is in the output");
    let bytes: Vec<u8> = done.logprobs.iter().flat_map(|t| t.bytes.clone()).collect();
    assert_eq!(String::from_utf8(bytes).unwrap(), done.text);
    for (t, id) in done.logprobs.iter().zip(&done.completion_ids) {
        assert_eq!(t.id, *id);
        assert!(t.logprob <= 0.0 && t.logprob.is_finite());
        assert_eq!(t.top.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert_eq!((t.top[0].0, t.top[0].2), (t.id, t.logprob));
        assert!(t.top.windows(2).all(|w| w[0].2 >= w[1].2));
        assert!(t.top.iter().map(|x| f64::from(x.2).exp()).sum::<f64>() <= 1.0 + 1e-6);
    }
    // Without logprobs asked for: none, and the same text.
    let plain = g.generate(&ids, &GenerateParams::greedy(8), |_| ControlFlow::Continue(())).unwrap();
    assert!(plain.logprobs.is_empty());
    assert_eq!(plain.completion_ids, done.completion_ids);
}

#[test]
fn json_mode_answers_with_a_json_object() {
    let g = quantized();
    let ids = g
        .chat_prompt_ids(&[ChatMessage::new("user", "Describe a cat as a JSON object with a name and an age.")])
        .unwrap();
    for temperature in [0.0, 0.8] {
        let params = GenerateParams { json_object: true, temperature, seed: 3, ..GenerateParams::greedy(200) };
        let started = std::time::Instant::now();
        let (done, _) = run(g, &ids, &params);
        let per_token = started.elapsed() / done.completion_tokens as u32;
        assert_eq!(done.finish_reason, FinishReason::Stop, "{:?}", done.text);
        let v: serde_json::Value = serde_json::from_str(&done.text).unwrap_or_else(|e| panic!("{e}: {:?}", done.text));
        assert!(v.is_object(), "{v}");
        eprintln!("json mode, temperature {temperature}: {:?} ({per_token:?} per token)", done.text);
    }
}
