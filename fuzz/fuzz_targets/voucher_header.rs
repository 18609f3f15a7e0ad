//! The `x-tessera-voucher` header, as a provider receives it from anyone: never panics,
//! and whatever parses prints back to a header that parses to the same voucher.
#![no_main]

use libfuzzer_sys::fuzz_target;
use primitives::channel::VoucherHeader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = text.parse::<VoucherHeader>() {
        let again: VoucherHeader = v.to_string().parse().expect("a printed header parses");
        assert_eq!(again, v);
    }
});
