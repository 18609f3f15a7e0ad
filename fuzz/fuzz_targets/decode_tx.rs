//! Transaction decoding: never panics; whatever decodes re-encodes to the same bytes
//! (the encoding is canonical) and has a stable id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primitives::SignedTransaction;

fuzz_target!(|data: &[u8]| {
    if let Ok(stx) = SignedTransaction::from_bytes(data) {
        assert_eq!(stx.to_bytes(), data, "decoded transaction re-encodes differently");
        let _ = stx.id();
        let _ = serde_json_free_roundtrip(&stx);
    }
});

fn serde_json_free_roundtrip(stx: &SignedTransaction) -> bool {
    SignedTransaction::from_bytes(&stx.to_bytes()).as_ref() == Ok(stx)
}
