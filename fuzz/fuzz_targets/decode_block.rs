//! Block and batch decoding (what the store and the batch endpoint read): never panics,
//! and decoded values re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primitives::limits::BATCH_BYTES_MAX;
use primitives::{codec, Block, SignedTransaction};

fuzz_target!(|data: &[u8]| {
    if let Ok(block) = codec::decode::<Block>(data, BATCH_BYTES_MAX) {
        assert_eq!(codec::encode(&block), data);
    }
    if let Ok(batch) = codec::decode::<Vec<SignedTransaction>>(data, BATCH_BYTES_MAX) {
        assert_eq!(codec::encode(&batch), data);
    }
});
