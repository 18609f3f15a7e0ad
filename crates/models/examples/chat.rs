//! Streams SmolLM2-135M-Instruct's answer to one message, greedily.
//!
//! ```sh
//! scripts/fetch-models.sh
//! cargo run --release -p models --example chat -- "What is the capital of France?"
//! cargo run --release -p models --example chat -- --f32 "What is the capital of France?"
//! ```

use std::io::Write;
use std::ops::ControlFlow;

use models::{ChatMessage, GenerateParams, Generator, ModelDir, Precision};

fn main() -> Result<(), models::Error> {
    // Before any thread starts; see the crate docs.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", cores.to_string());
    }
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let precision = match args.first().map(String::as_str) {
        Some("--f32") => Precision::F32,
        Some("--q4_1") => Precision::Q4_1,
        _ => Precision::default(),
    };
    if args.first().is_some_and(|a| a.starts_with("--")) {
        args.remove(0);
    }
    let question = args.join(" ");
    let generator = Generator::load(&ModelDir::for_workspace_tests(), precision)?;
    let done = generator.chat(&[ChatMessage::new("user", question)], &GenerateParams::greedy(128), |piece| {
        print!("{piece}");
        let _ = std::io::stdout().flush();
        ControlFlow::Continue(())
    })?;
    println!(
        "\n[{precision:?}: {} prompt + {} completion tokens, finish_reason {}]",
        done.prompt_tokens,
        done.completion_tokens,
        done.finish_reason.as_str()
    );
    Ok(())
}
