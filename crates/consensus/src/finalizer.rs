//! Finalized blocks, from marshal to the ledger: `report()` only forwards (it must not
//! block); a task commits each block through the host (durable write first) and only
//! then acknowledges it, so marshal redelivers anything a crash interrupted.

use crate::block::Envelope;
use crate::ledger_host::LedgerHost;
use commonware_actor::Feedback;
use commonware_consensus::Reporter;
use commonware_consensus::marshal::Update;
use commonware_runtime::{Handle, Spawner};
use commonware_utils::Acknowledgement;
use futures::StreamExt;
use futures::channel::mpsc;
use std::sync::Arc;

#[derive(Clone)]
pub struct FinalizedReporter {
    tx: mpsc::UnboundedSender<Update<Envelope>>,
}

impl Reporter for FinalizedReporter {
    type Activity = Update<Envelope>;

    fn report(&mut self, activity: Update<Envelope>) -> Feedback {
        // Bounded by marshal's max_pending_acks: it waits for acknowledgements.
        match self.tx.unbounded_send(activity) {
            Ok(()) => Feedback::Ok,
            Err(_) => Feedback::Closed,
        }
    }
}

/// Spawns the finalizer task; returns the reporter to hand to marshal.
pub fn start<E: Spawner>(context: E, host: Arc<LedgerHost>) -> FinalizedReporter {
    let (tx, mut rx) = mpsc::unbounded::<Update<Envelope>>();
    // Its own thread: each commit blocks on an fsync, which must not stall the
    // runtime's workers (votes, the network).
    // Detached: dropping the handle leaves the task running.
    #[allow(clippy::let_underscore_future)]
    let _: Handle<()> = context.dedicated().spawn(move |_| async move {
        while let Some(update) = rx.next().await {
            match update {
                Update::Tip(_, height, _) => {
                    tracing::trace!(height = height.get(), "finalized tip");
                }
                Update::Block(block, ack) => {
                    if !host.finalize(block.inner()) {
                        // Shutting down: leave it unacknowledged; it is delivered again
                        // after the restart.
                        drop(ack);
                        break;
                    }
                    ack.acknowledge();
                }
            }
        }
    });
    FinalizedReporter { tx }
}
