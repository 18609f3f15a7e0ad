//! One-thread epoch timings on synthetic networks without building the whole CLI:
//! `cargo run --release -p incentives --example epoch_bench -- [validators neurons runs] [original]`.
//! Reports `run_epoch` (fresh buffers, as `tessera bench incentive` measures it) and
//! `run_epoch_with` on a reused workspace.

use incentives::{run_epoch, run_epoch_with, synth, Workspace};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |k: usize, d: usize| args.get(k).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (v, n, runs) = (num(0, 256), num(1, 4096), num(2, 7));
    let original_only = args.iter().any(|a| a == "original");
    let mut modes = vec![("original", false, false)];
    if !original_only {
        modes.push(("yuma3_liquid_alpha", true, true));
    }
    for (name, yuma3, liquid) in modes {
        let (params, state) = synth::network(v, n, yuma3, liquid, 7);
        let block = state.last_update[0] + 1;
        let first = run_epoch(&params, &state, block);
        let mut ws = Workspace::default();
        for (label, reuse) in [("fresh", false), ("workspace", true)] {
            let mut times = Vec::new();
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let r = if reuse {
                    run_epoch_with(&params, &state, block, &mut ws)
                } else {
                    run_epoch(&params, &state, block)
                };
                times.push(t.elapsed().as_secs_f64() * 1e3);
                assert!(r == first, "two runs of the same epoch differ");
            }
            times.sort_by(|a, b| a.total_cmp(b));
            println!(
                "{name:>20} {label:>9}: {v} x {n}: min {:.2} ms, median {:.2} ms",
                times[0],
                times[times.len() / 2]
            );
        }
    }
}
