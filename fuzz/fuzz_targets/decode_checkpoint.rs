//! Checkpoint files (the manifest and a snapshot run) are read back at every start; a
//! damaged or hostile file must give an error, never a panic or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input: a manifest, then a run.
    let (cut, rest) = match data.split_first() {
        Some((c, rest)) => ((*c as usize).min(rest.len()), rest),
        None => return,
    };
    let (manifest, run) = rest.split_at(cut);
    let _ = storage::fuzz_decode_checkpoint(manifest, run);
});
