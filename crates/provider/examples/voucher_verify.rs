//! Voucher signature checks per second on one core: one by one, in batches, and through the
//! provider's batch verifier with many calls in flight:
//! `cargo run --release -p provider --example voucher_verify`.

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
    // Batch verification, as the provider does for calls that arrive together.
    let items: Vec<crypto::VerifyItem> = vouchers.iter().map(|(h, s)| (signer, *h, *s)).collect();
    for batch in [8usize, 32, 64] {
        let t = Instant::now();
        for chunk in items.chunks(batch) {
            assert!(crypto::verify_batch(chunk).iter().all(|ok| *ok));
        }
        println!("batches of {batch}: {:.0} voucher verifications/s on one core", n as f64 / t.elapsed().as_secs_f64());
    }
    // The provider's batch verifier (one thread) under 128 concurrent calls.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let verifier = std::sync::Arc::new(provider::verifier::BatchVerifier::start());
    for round in 0..2 {
        let t = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = items
                .chunks(items.len() / 128)
                .map(|chunk| {
                    let (v, chunk) = (verifier.clone(), chunk.to_vec());
                    tokio::spawn(async move {
                        for item in chunk {
                            assert!(v.verify(item).await);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        println!(
            "round {round}: {:.0} voucher verifications/s through the batch verifier (128 calls in flight)",
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
    // The whole check as a call makes it: hash the voucher, then verify.
    let t = Instant::now();
    for i in 0..n {
        let v = Voucher { chain_id: "tessera-devnet".into(), channel: 1, nonce: 0, amount: Amount(u128::from(i)) };
        crypto::verify_digest(&signer, &v.signing_hash(), &vouchers[i as usize].1).expect("valid");
    }
    println!("with hashing: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());

    // The synchronous part of a call's payment as the server runs it: parse the header,
    // check and admit the voucher (its fsync queued for the group commit, overlapping the
    // model), bill the call. p50 and p99 over 5,000 sequential calls on one channel; and
    // the fsync wait itself, which a call only pays if it is shorter than the write.
    let dir = std::env::temp_dir().join(format!("tessera-voucher-bench-{}", std::process::id()));
    let book = provider::Book::new("tessera-devnet", key.address(), 10, provider::VoucherStore::open(&dir).unwrap());
    book.set_height(1);
    book.update_channel(provider::ChannelInfo {
        id: 1,
        recipient: key.address(),
        signer: key.address(),
        nonce: 0,
        escrowed: Amount(u128::MAX / 2),
        claimed: Amount(0),
        expiry_height: u64::MAX,
    })
    .unwrap()
    .wait()
    .unwrap();
    let (mut sync_us, mut wait_us) = (Vec::new(), Vec::new());
    let mut owed = 0u128;
    for _ in 0..5_000 {
        let header = provider::sign_voucher(&key, "tessera-devnet", 1, 0, Amount(owed)).to_string();
        let t = Instant::now();
        let v: provider::VoucherHeader = header.parse().unwrap();
        let mut ticket = book.admit(&v, Amount(1_000)).unwrap();
        let pending = ticket.take_durable();
        book.settle(ticket, Amount(700)).unwrap();
        sync_us.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        if let Some(d) = pending {
            d.wait().unwrap();
        }
        wait_us.push(t.elapsed().as_secs_f64() * 1e6);
        owed += 700;
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    println!(
        "payment per call (sync part): p50 {:.0} us, p99 {:.0} us; voucher fsync wait: p50 {:.0} us, p99 {:.0} us",
        pct(&mut sync_us, 0.5),
        pct(&mut sync_us, 0.99),
        pct(&mut wait_us, 0.5),
        pct(&mut wait_us, 0.99)
    );
    drop(book);
    let _ = std::fs::remove_dir_all(&dir);
}
