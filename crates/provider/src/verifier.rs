//! Voucher signatures checked in batches: calls that arrive together share one batch
//! verification (ed25519-consensus; vouchers of one channel share their signer, which a
//! batch exploits), on one thread of its own. A call never waits for others: the thread
//! takes whatever is queued when it is free, so a lone call is a batch of one. A failed
//! batch is re-checked one by one, so every verdict is exact.

use crossbeam_channel::{Receiver, Sender};

/// Most signatures in one batch.
pub const BATCH_MAX: usize = 64;

type Job = (crypto::VerifyItem, tokio::sync::oneshot::Sender<bool>);

pub struct BatchVerifier {
    jobs: Sender<Job>,
}

impl BatchVerifier {
    /// Starts the verifying thread; it ends when the verifier is dropped.
    pub fn start() -> BatchVerifier {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        std::thread::Builder::new()
            .name("voucher-verify".into())
            .spawn(move || run(rx))
            .expect("spawning the voucher verifier");
        BatchVerifier { jobs }
    }

    /// Whether the signature verifies.
    pub async fn verify(&self, item: crypto::VerifyItem) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.jobs.send((item, tx)).is_err() {
            let (a, d, s) = item;
            return crypto::verify_digest(&a, &d, &s).is_ok();
        }
        rx.await.unwrap_or(false)
    }
}

fn run(rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter().take(BATCH_MAX - 1));
        let items: Vec<crypto::VerifyItem> = jobs.iter().map(|(i, _)| *i).collect();
        for ((_, reply), ok) in jobs.into_iter().zip(crypto::verify_batch(&items)) {
            let _ = reply.send(ok);
        }
    }
}
