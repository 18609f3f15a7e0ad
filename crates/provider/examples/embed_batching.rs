//! Embedding calls under concurrency: what the provider's batcher gains over running each
//! call on its own, in one process, on the real all-MiniLM-L6-v2.
//!
//! ```sh
//! scripts/fetch-models.sh
//! cargo run --release -p provider --example embed_batching -- [CLIENTS] [SECS] [ROUNDS]
//! ```
//!
//! CLIENTS (default 32) closed-loop clients each send single-text calls (sentences of 5–12
//! words) for SECS seconds (default 3) per mode, modes alternating for ROUNDS rounds
//! (default 2):
//! - `per-call`: each call its own forward pass on tokio's blocking pool, concurrently
//!   (what the provider did before the batcher);
//! - `serial`: the batcher without merging (one call per pass, one at a time);
//! - `batched`: the batcher as the provider runs it (queued calls merged, up to 32 texts).

use models::{Embedder, ModelDir};
use provider::batcher::EmbedBatcher;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SENTENCES: [&str; 8] = [
    "A man is eating food.",
    "The girl is carrying a baby.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "The new movie is so great that I watched it twice.",
    "Tokens pay for model calls through payment channels.",
    "Embeddings map sentences to points in a vector space.",
    "Children were playing football in the park after school.",
];

#[derive(Clone, Copy, Debug)]
enum Mode {
    PerCall,
    Serial,
    Batched,
}

async fn one_call(mode: Mode, model: &Arc<Embedder>, serial: &EmbedBatcher, batched: &EmbedBatcher, text: &str) {
    let texts = vec![text.to_string()];
    let (vectors, _) = match mode {
        Mode::PerCall => {
            let m = model.clone();
            tokio::task::spawn_blocking(move || m.embed_counted(&[texts[0].as_str()]).map_err(|e| e.to_string()))
                .await
                .expect("the blocking task")
        }
        Mode::Serial => serial.embed(texts).await,
        Mode::Batched => batched.embed(texts).await,
    }
    .expect("embedding");
    assert_eq!(vectors.len(), 1);
}

/// Runs `clients` closed-loop clients for `secs`: (calls, latencies in µs).
async fn run(
    mode: Mode,
    clients: usize,
    secs: f64,
    model: &Arc<Embedder>,
    serial: &EmbedBatcher,
    batched: &EmbedBatcher,
) -> (usize, Vec<u64>) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let client = |c: usize| async move {
        let mut lat = Vec::new();
        let mut i = c;
        while Instant::now() < end {
            let t = Instant::now();
            one_call(mode, model, serial, batched, SENTENCES[i % SENTENCES.len()]).await;
            lat.push(t.elapsed().as_micros() as u64);
            i += 1;
        }
        lat
    };
    let all: Vec<u64> = futures_util::future::join_all((0..clients).map(client)).await.into_iter().flatten().collect();
    (all.len(), all)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
    }
    let arg = |i: usize, default: f64| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (clients, secs, rounds) = (arg(1, 32.0) as usize, arg(2, 3.0), arg(3, 2.0) as usize);
    let model = Arc::new(Embedder::load(&ModelDir::for_workspace_tests()).expect("weights: scripts/fetch-models.sh"));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let serial = EmbedBatcher::start(model.clone(), 1);
        let batched = EmbedBatcher::start(model.clone(), Embedder::BATCH_SIZE);
        println!("{clients} clients, single-text calls, {secs} s per mode, {rounds} rounds");
        for round in 0..rounds {
            for mode in [Mode::PerCall, Mode::Serial, Mode::Batched] {
                let before = batched.batches();
                let (calls, mut lat) = run(mode, clients, secs, &model, &serial, &batched).await;
                lat.sort_unstable();
                let passes = batched.batches() - before;
                let per_pass = if passes > 0 {
                    format!(", {:.1} calls per pass", calls as f64 / passes as f64)
                } else {
                    String::new()
                };
                println!(
                    "round {round} {mode:>8?}: {:7.1} embeddings/s, latency p50 {:6.1} ms p99 {:6.1} ms{per_pass}",
                    calls as f64 / secs,
                    pct(&lat, 0.5) as f64 / 1000.0,
                    pct(&lat, 0.99) as f64 / 1000.0,
                );
            }
        }
    });
}
