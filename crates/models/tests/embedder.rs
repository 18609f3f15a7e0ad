//! all-MiniLM-L6-v2 on the real weights, against vectors recorded from Python
//! sentence-transformers (tests/fixtures/minilm_reference.json, made by
//! scripts/reference/record_embeddings.py).
//!
//! Needs the weights: run `scripts/fetch-models.sh` first (or set TESSERA_MODELS_DIR).

use std::sync::OnceLock;

use models::{Embedder, ModelDir};

fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        Embedder::load(&ModelDir::for_workspace_tests()).unwrap_or_else(|e| panic!("cannot load all-MiniLM-L6-v2: {e}"))
    })
}

#[derive(serde::Deserialize)]
struct Reference {
    max_seq_length: usize,
    sentences: Vec<String>,
    token_counts: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm_reference.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn matches_sentence_transformers() {
    let reference = reference();
    let e = embedder();
    assert_eq!(e.max_seq_len(), reference.max_seq_length);
    let texts: Vec<&str> = reference.sentences.iter().map(String::as_str).collect();
    let (got, tokens) = e.embed_counted(&texts).unwrap();
    assert_eq!(got.len(), texts.len());
    assert_eq!(tokens, reference.token_counts.iter().sum::<usize>());
    for (i, (v, want)) in got.iter().zip(&reference.embeddings).enumerate() {
        assert_eq!(v.len(), Embedder::DIMENSION);
        let cos = cosine(v, want);
        let diff = max_abs_diff(v, want);
        assert!(
            cos > 1.0 - 1e-4 && diff < 1e-4,
            "sentence {i} {:?}: cosine {cos}, max element difference {diff}",
            texts[i]
        );
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "sentence {i}: norm {norm}");
    }
    // The classic pair: Python gives 0.7553371.
    let pair = cosine(&got[0], &got[1]);
    assert!((pair - 0.755_337_1).abs() < 1e-5, "{pair}");
}

#[test]
fn token_counts_include_cls_and_sep_and_truncate() {
    let reference = reference();
    let e = embedder();
    for (text, want) in reference.sentences.iter().zip(&reference.token_counts) {
        assert_eq!(e.count_tokens(text).unwrap(), *want, "{text:?}");
    }
    assert_eq!(e.count_tokens("").unwrap(), 2, "[CLS] [SEP]");
    assert_eq!(e.count_tokens("hello").unwrap(), 3);
    assert_eq!(e.count_tokens(&"word ".repeat(1000)).unwrap(), 256);
}

#[test]
fn batching_does_not_change_results() {
    let e = embedder();
    // More than one batch of 32, of mixed lengths, so that sorting and padding matter.
    let texts: Vec<String> =
        (0..70).map(|i| format!("sentence number {i} {}", "with more words ".repeat(i % 7))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = e.embed(&refs).unwrap();
    assert_eq!(batched.len(), 70);
    for i in [0, 1, 31, 32, 33, 50, 69] {
        let alone = e.embed(&[refs[i]]).unwrap();
        let diff = max_abs_diff(&alone[0], &batched[i]);
        assert!(diff < 1e-5, "text {i}: batched differs from alone by {diff}");
    }
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn missing_weights_say_how_to_fetch_them() {
    let err = Embedder::load(&ModelDir::new("/nonexistent/tessera-models")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("run scripts/fetch-models.sh"), "{msg}");
    assert!(msg.contains("all-MiniLM-L6-v2/config.json"), "{msg}");
}
