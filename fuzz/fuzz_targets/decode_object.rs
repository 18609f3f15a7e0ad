//! Module-record decoding (checkpoint rows of `state.redb`): never panics on corrupt
//! bytes; whatever decodes re-encodes to the same bytes.
#![no_main]

use ledger::{ObjKey, Object};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = primitives::codec::decode::<ObjKey>(data, 1 << 10) {
        assert_eq!(primitives::codec::encode(&key), data, "object key re-encodes differently");
    }
    if let Ok(object) = primitives::codec::decode::<Object>(data, 1 << 20) {
        assert_eq!(primitives::codec::encode(&object), data, "object re-encodes differently");
    }
});
