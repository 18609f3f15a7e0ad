//! The embedding batcher on the real all-MiniLM-L6-v2 (weights from
//! `scripts/fetch-models.sh`): calls that queue together share a batch, and each gets the
//! vectors and token count it would get alone.

use models::{Embedder, ModelDir};
use provider::batcher::EmbedBatcher;
use std::sync::Arc;

fn embedder() -> Arc<Embedder> {
    Arc::new(Embedder::load(&ModelDir::for_workspace_tests()).expect("model weights: run scripts/fetch-models.sh"))
}

fn close(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_calls_share_a_batch_and_each_gets_its_own_answer() {
    let model = embedder();
    let batcher = EmbedBatcher::start(model.clone(), Embedder::BATCH_SIZE);
    // A call larger than a batch runs alone; the sixteen single-text calls and the
    // three-text one that queue behind it run as one batch after it.
    let big: Vec<String> = (0..64).map(|i| format!("a longer sentence, number {i}, to keep the thread busy")).collect();
    let small: Vec<Vec<String>> = (0..16)
        .map(|i| vec![format!("text {i}")])
        .chain(std::iter::once(vec!["one".to_string(), "two words".to_string(), "".to_string()]))
        .collect();
    let first = batcher.embed(big.clone());
    let rest = futures_util::future::join_all(small.iter().map(|t| batcher.embed(t.clone())));
    let (first, rest) = tokio::join!(first, rest);
    assert_eq!(batcher.batches(), 2, "the queued calls were not merged");

    let alone = |texts: &[String]| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        model.embed_counted(&refs).unwrap()
    };
    let (vectors, tokens) = first.unwrap();
    let (want, want_tokens) = alone(&big);
    assert!(close(&vectors, &want) && tokens == want_tokens);
    for (texts, got) in small.iter().zip(rest) {
        let (vectors, tokens) = got.unwrap();
        let (want, want_tokens) = alone(texts);
        assert_eq!(vectors.len(), texts.len());
        assert!(close(&vectors, &want), "{texts:?}: a batch changed the vectors");
        assert_eq!(tokens, want_tokens, "{texts:?}: billed tokens");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_merging_every_call_is_its_own_batch() {
    let batcher = EmbedBatcher::start(embedder(), 1);
    let calls = futures_util::future::join_all((0..5).map(|i| batcher.embed(vec![format!("text {i}")]))).await;
    assert!(calls.iter().all(|c| c.as_ref().is_ok_and(|(v, _)| v.len() == 1)));
    assert_eq!(batcher.batches(), 5);
}
