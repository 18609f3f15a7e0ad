//! The checksummed frame log (`primitives::framelog`, the provider's voucher log): scanning
//! any bytes never panics, the frames it returns lie inside the input in order, and framing
//! their payloads again gives back the input up to where the scan ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primitives::framelog::{push_frame, scan};

fuzz_target!(|data: &[u8]| {
    let start = data.first().map_or(0, |&b| b as usize % 8);
    if let Ok(s) = scan(data, start, 1 << 16) {
        assert!(s.end <= data.len());
        let mut again = data[..start.min(data.len())].to_vec();
        for (at, payload) in &s.frames {
            assert_eq!(*at, again.len());
            push_frame(payload, &mut again);
        }
        assert_eq!(again, &data[..s.end]);
        if s.torn.is_none() {
            assert!(data[s.end..].iter().all(|&b| b == 0));
        }
    }
});
