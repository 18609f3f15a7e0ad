//! The batch verifier gives every call its own exact verdict, however calls are batched.

use primitives::channel::Voucher;
use primitives::Amount;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_vouchers_get_exact_verdicts() {
    let key = crypto::SigningKey::from_seed([3; 32]);
    let other = crypto::SigningKey::from_seed([4; 32]);
    let verifier = Arc::new(provider::verifier::BatchVerifier::start());
    let tasks: Vec<_> = (0..400u64)
        .map(|i| {
            let (key, other, verifier) = (key.clone(), other.clone(), verifier.clone());
            tokio::spawn(async move {
                let v = Voucher { chain_id: "c".into(), channel: 1 + i % 3, nonce: 0, amount: Amount(u128::from(i)) };
                let h = v.signing_hash();
                // Every seventh voucher is signed by someone else.
                let bad = i % 7 == 0;
                let sig = if bad { other.sign_digest(&h) } else { key.sign_digest(&h) };
                (bad, verifier.verify((key.address(), h, sig)).await)
            })
        })
        .collect();
    for t in tasks {
        let (bad, ok) = t.await.unwrap();
        assert_eq!(ok, !bad);
    }
}
