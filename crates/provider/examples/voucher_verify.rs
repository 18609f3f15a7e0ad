//! Voucher signature checks per second on one core (single verification, as each call
//! does): `cargo run --release -p provider --example voucher_verify`.

use primitives::channel::Voucher;
use primitives::Amount;
use std::time::Instant;

fn main() {
    let key = crypto::SigningKey::from_seed([7; 32]);
    let n = 20_000u64;
    let vouchers: Vec<(primitives::Hash, primitives::Signature)> = (0..n)
        .map(|i| {
            let v = Voucher { chain_id: "tessera-devnet".into(), channel: 1, nonce: 0, amount: Amount(u128::from(i)) };
            let h = v.signing_hash();
            (h, key.sign_digest(&h))
        })
        .collect();
    let signer = key.address();
    for round in 0..3 {
        let t = Instant::now();
        for (h, s) in &vouchers {
            crypto::verify_digest(&signer, h, s).expect("valid");
        }
        let per_sec = n as f64 / t.elapsed().as_secs_f64();
        println!("round {round}: {per_sec:.0} voucher verifications/s on one core");
    }
    // The whole check as a call makes it: hash the voucher, then verify.
    let t = Instant::now();
    for i in 0..n {
        let v = Voucher { chain_id: "tessera-devnet".into(), channel: 1, nonce: 0, amount: Amount(u128::from(i)) };
        crypto::verify_digest(&signer, &v.signing_hash(), &vouchers[i as usize].1).expect("valid");
    }
    println!("with hashing: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
}
