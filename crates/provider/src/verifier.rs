//! Voucher signatures checked in batches: calls that arrive together share one batch
//! verification (ed25519-consensus; vouchers of one channel share their signer, which a
//! batch exploits), on one thread of its own. A call never waits for others: the thread
//! takes whatever is queued when it is free, and when it has nothing to do a call checks
//! its signature itself, on its own thread (a lone call would be a batch of one anyway, and
//! this spares it two thread wake-ups). A failed batch is re-checked one by one, so every
//! verdict is exact.

use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Most signatures in one batch.
pub const BATCH_MAX: usize = 64;

type Job = (crypto::VerifyItem, tokio::sync::oneshot::Sender<bool>);

pub struct BatchVerifier {
    jobs: Sender<Job>,
    /// Signatures queued for, or being checked by, the verifying thread.
    pending: Arc<AtomicUsize>,
    /// Signatures being checked inline, by their callers.
    inline: AtomicUsize,
}

impl BatchVerifier {
    /// Starts the verifying thread; it ends when the verifier is dropped.
    pub fn start() -> BatchVerifier {
        let (jobs, rx) = crossbeam_channel::unbounded::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let p = pending.clone();
        std::thread::Builder::new()
            .name("voucher-verify".into())
            .spawn(move || run(rx, &p))
            .expect("spawning the voucher verifier");
        BatchVerifier { jobs, pending, inline: AtomicUsize::new(0) }
    }

    /// Whether the signature verifies.
    pub async fn verify(&self, item: crypto::VerifyItem) -> bool {
        // Idle: nothing queued and no other call checking its own (one inline check at a
        // time, so a burst of calls still reaches the batching thread).
        if self.pending.load(Ordering::Acquire) == 0
            && self.inline.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            let (a, d, s) = item;
            let ok = crypto::verify_digest(&a, &d, &s).is_ok();
            self.inline.store(0, Ordering::Release);
            return ok;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.jobs.send((item, tx)).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let (a, d, s) = item;
            return crypto::verify_digest(&a, &d, &s).is_ok();
        }
        rx.await.unwrap_or(false)
    }
}

fn run(rx: Receiver<Job>, pending: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter().take(BATCH_MAX - 1));
        let items: Vec<crypto::VerifyItem> = jobs.iter().map(|(i, _)| *i).collect();
        let n = jobs.len();
        for ((_, reply), ok) in jobs.into_iter().zip(crypto::verify_batch(&items)) {
            let _ = reply.send(ok);
        }
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}
