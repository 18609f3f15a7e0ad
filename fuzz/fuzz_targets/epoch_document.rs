//! `tessera incentive epoch` input documents: any bytes give an output document or an
//! error, never a panic; the same input always gives the same output.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(out) = incentives::run_document(text) {
        assert_eq!(Some(out), incentives::run_document(text).ok(), "same input, same output");
    }
});
