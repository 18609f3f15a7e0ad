//! Measures the built-in models' throughput on this machine.
//!
//! ```sh
//! scripts/fetch-models.sh
//! cargo run --release -p models --example bench            # both models
//! cargo run --release -p models --example bench -- embed   # or: generate (Q8_0), generate-q4, generate-f32
//! ```
//!
//! Embeddings: batches of 32 short sentences (5–12 words), embeddings per second.
//! Generation: one plain-text prompt, greedy; prompt tokens per second (prefill, timed
//! with `max_tokens = 1`) and generated tokens per second after the first token.
//! scripts/reference/bench_python.py measures sentence-transformers and llama.cpp on
//! the same inputs.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use models::{Embedder, GenerateParams, Generator, ModelDir, Precision};

/// 32 sentences of 5–12 words; the same list as scripts/reference/bench_python.py.
const SENTENCES: [&str; 32] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome and everyone loved it.",
    "The cat sits outside on the warm wall.",
    "The new movie is so great that I watched it twice.",
    "Do you like pizza with pineapple on top?",
    "The quick brown fox jumps over the lazy dog.",
    "Tokens pay for model calls through payment channels.",
    "A ledger records every transfer in a block.",
    "The sequencer orders transactions every few milliseconds.",
    "Embeddings map sentences to points in a vector space.",
    "Rust programs compile to fast native code.",
    "It rained all day in the small mountain village.",
    "She read the whole book in a single evening.",
    "The train to the coast leaves at nine tomorrow.",
    "Children were playing football in the park after school.",
    "He forgot his umbrella on the bus again.",
    "The museum opens a new exhibition next week.",
    "Fresh bread smells wonderful early in the morning.",
    "A storm knocked down several old trees last night.",
    "The committee approved the budget without any changes.",
    "Our team finished the project two days early.",
    "The river flows slowly through the quiet valley.",
    "Please send me the report before Friday noon.",
    "Birds sing loudly when the sun comes up.",
];

const STORY_PROMPT: &str = "Once upon a time, there was a little robot who";
const GENERATE_TOKENS: usize = 128;

fn main() -> Result<(), models::Error> {
    // As a server should (see the crate docs): name the thread count once, before any
    // thread starts, or candle re-reads /proc/cpuinfo on every matrix product.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
    }
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    let dir = ModelDir::for_workspace_tests();
    println!("threads: RAYON_NUM_THREADS={}", std::env::var("RAYON_NUM_THREADS").unwrap_or_default());
    if what == "all" || what == "embed" {
        bench_embed(&dir)?;
    }
    if what == "all" || what == "generate" {
        bench_generate(&dir, Precision::Q8_0)?;
    }
    if what == "generate-q4" {
        bench_generate(&dir, Precision::Q4_1)?;
    }
    if what == "generate-f32" {
        bench_generate(&dir, Precision::F32)?;
    }
    Ok(())
}

fn bench_embed(dir: &ModelDir) -> Result<(), models::Error> {
    let t = Instant::now();
    let embedder = Embedder::load(dir)?;
    println!("embed: load {:.2} s", t.elapsed().as_secs_f64());
    embedder.embed(&SENTENCES)?; // warm-up
    let t = Instant::now();
    let single = 20;
    for s in SENTENCES.iter().take(single) {
        embedder.embed(&[s])?;
    }
    let per_single_ms = t.elapsed().as_secs_f64() * 1000.0 / single as f64;
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let batches = 4;
        for _ in 0..batches {
            embedder.embed(&SENTENCES)?;
        }
        rates.push((batches * SENTENCES.len()) as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "embed: batch 32: best {} embeddings/s, median {} (5 runs of 4 batches: {}); one sentence: {per_single_ms:.1} ms",
        fmt(best(&rates)),
        fmt(median(&mut rates.clone())),
        rates.iter().map(|r| fmt(*r)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

fn bench_generate(dir: &ModelDir, precision: Precision) -> Result<(), models::Error> {
    let t = Instant::now();
    let generator = Generator::load(dir, precision)?;
    println!("generate ({precision:?}): load {:.2} s", t.elapsed().as_secs_f64());
    let prompt = generator.encode(STORY_PROMPT)?;
    let long_prompt = generator.encode(&STORY_PROMPT.repeat(12))?;
    let continue_ = |_: &str| ControlFlow::Continue(());
    generator.generate(&prompt, &GenerateParams::greedy(4), continue_)?; // warm-up

    let mut prefill = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        generator.generate(&long_prompt, &GenerateParams::greedy(1), continue_)?;
        prefill.push(long_prompt.len() as f64 / t.elapsed().as_secs_f64());
    }
    let mut decode = Vec::new();
    let mut tokens = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let mut first: Option<Duration> = None;
        let done = generator.generate(&prompt, &GenerateParams::greedy(GENERATE_TOKENS), |_| {
            first.get_or_insert(start.elapsed());
            ControlFlow::Continue(())
        })?;
        let first = first.unwrap_or_default();
        tokens = done.completion_tokens;
        decode.push((tokens - 1) as f64 / (start.elapsed() - first).as_secs_f64());
    }
    println!(
        "generate ({precision:?}): prompt best {} tokens/s ({} tokens); generation best {} \
         tokens/s, median {} ({tokens} tokens, 3 runs: {})",
        fmt(best(&prefill)),
        long_prompt.len(),
        fmt(best(&decode)),
        fmt(median(&mut decode.clone())),
        decode.iter().map(|r| fmt(*r)).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The machine is shared: other processes only ever slow a run down, so the best run is
/// the least disturbed one.
fn best(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(0.0, f64::max)
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn fmt(x: f64) -> String {
    format!("{x:.1}")
}
