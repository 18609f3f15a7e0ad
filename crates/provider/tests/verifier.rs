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

/// Calls one at a time (each checked inline, on the caller's thread) get the same exact
/// verdicts, before and after a burst that the verifying thread batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lone_calls_get_exact_verdicts_before_and_after_a_burst() {
    let key = crypto::SigningKey::from_seed([5; 32]);
    let other = crypto::SigningKey::from_seed([6; 32]);
    let verifier = Arc::new(provider::verifier::BatchVerifier::start());
    let check = |i: u64| {
        let v = Voucher { chain_id: "c".into(), channel: 1, nonce: 0, amount: Amount(u128::from(i)) };
        let h = v.signing_hash();
        let bad = i.is_multiple_of(3);
        (bad, (key.address(), h, if bad { other.sign_digest(&h) } else { key.sign_digest(&h) }))
    };
    for i in 0..30 {
        let (bad, item) = check(i);
        assert_eq!(verifier.verify(item).await, !bad, "lone call {i}");
    }
    let burst: Vec<_> = (30..230)
        .map(|i| {
            let (bad, item) = check(i);
            let v = verifier.clone();
            tokio::spawn(async move { (bad, v.verify(item).await) })
        })
        .collect();
    for t in burst {
        let (bad, ok) = t.await.unwrap();
        assert_eq!(ok, !bad);
    }
    for i in 230..260 {
        let (bad, item) = check(i);
        assert_eq!(verifier.verify(item).await, !bad, "lone call {i}");
    }
}
