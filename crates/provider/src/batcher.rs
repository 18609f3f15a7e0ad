//! Embedding calls that arrive together share forward passes (dynamic batching, as
//! text-embeddings-inference serves): one thread owns the embedder and, whenever it is
//! free, takes every queued call up to [`Embedder::BATCH_SIZE`] texts in all and embeds
//! their texts as one batch (sorted by length and padded per pass, as for one call), then
//! hands each call its own vectors and token counts. A call with more texts than that runs
//! alone, in passes of its own. Nothing waits for company: a lone call is a batch of one.
//!
//! Before, each call ran its own forward pass on the blocking pool, so concurrent
//! single-text calls (a RAG ingester, many users) each paid a batch's fixed costs and
//! fought over the cores; BENCHMARKS.md (provider embeddings under concurrency) has the
//! measured difference. Results do not depend on the company a text keeps beyond float
//! rounding (padding is masked out): `tests/batcher.rs` checks them against single calls.

use crossbeam_channel::{Receiver, Sender};
use models::Embedder;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A call's vectors and its texts' token counts (what it is billed), or why it failed.
pub type Embedded = Result<(Vec<Vec<f32>>, usize), String>;

type Job = (Vec<String>, tokio::sync::oneshot::Sender<Embedded>);

pub struct EmbedBatcher {
    jobs: Sender<Job>,
    /// Batches run so far (calls merged count once).
    batches: Arc<AtomicU64>,
}

impl EmbedBatcher {
    /// Starts the embedding thread, merging calls up to `max_texts` texts per batch (1: one
    /// call at a time, no merging); it ends when the batcher is dropped.
    pub fn start(model: Arc<Embedder>, max_texts: usize) -> EmbedBatcher {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let batches = Arc::new(AtomicU64::new(0));
        let counter = batches.clone();
        std::thread::Builder::new()
            .name("embed-batch".into())
            .spawn(move || run(&model, &rx, max_texts.max(1), &counter))
            .expect("spawning the embedding thread");
        EmbedBatcher { jobs, batches }
    }

    /// Batches run so far: calls that shared a batch count once.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Embeds `texts` (with whatever other calls are queued) into unit vectors, in order,
    /// with the tokens billed for them.
    pub async fn embed(&self, texts: Vec<String>) -> Embedded {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send((texts, tx)).map_err(|_| "the embedding thread has stopped".to_string())?;
        rx.await.map_err(|_| "the embedding failed (see the provider's log)".to_string())?
    }
}

fn run(model: &Embedder, rx: &Receiver<Job>, max_texts: usize, batches: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut texts = first.0.len();
        let mut batch = vec![first];
        while texts < max_texts {
            // Only calls that fit: a larger one waits for the next batch (or runs alone).
            match rx.try_recv() {
                Ok(job) if texts + job.0.len() <= max_texts => {
                    texts += job.0.len();
                    batch.push(job);
                }
                Ok(job) => {
                    batches.fetch_add(1, Ordering::Relaxed);
                    guarded(model, std::mem::replace(&mut batch, vec![job]));
                    texts = batch[0].0.len();
                }
                Err(_) => break,
            }
        }
        batches.fetch_add(1, Ordering::Relaxed);
        guarded(model, batch);
    }
}

/// [`embed_all`], where a panic fails only that batch's calls (their replies are dropped,
/// and it is logged) and the thread goes on serving, as a panic on the blocking pool only
/// failed its own call.
fn guarded(model: &Embedder, batch: Vec<Job>) {
    let calls = batch.len();
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| embed_all(model, batch))).is_err() {
        tracing::error!(calls, "embedding panicked; those calls failed");
    }
}

/// Embeds the calls' texts together and answers each call; if that fails (a text the
/// tokenizer refuses), each call is embedded alone, so only the bad one fails.
fn embed_all(model: &Embedder, batch: Vec<Job>) {
    if batch.len() > 1 {
        let all: Vec<&str> = batch.iter().flat_map(|(t, _)| t.iter().map(String::as_str)).collect();
        if let Ok((vectors, counts)) = model.embed_each_counted(&all) {
            let (mut vectors, mut counts) = (vectors.into_iter(), counts.into_iter());
            for (texts, reply) in batch {
                let own: Vec<Vec<f32>> = vectors.by_ref().take(texts.len()).collect();
                let tokens: usize = counts.by_ref().take(texts.len()).sum();
                let _ = reply.send(Ok((own, tokens)));
            }
            return;
        }
    }
    for (texts, reply) in batch {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let _ = reply.send(model.embed_counted(&refs).map_err(|e| e.to_string()));
    }
}
