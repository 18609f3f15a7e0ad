//! `commonware_consensus::Application`: propose and verify through the ledger host.
//!
//! Contract (CONSENSUS.md §2.2): `verify` answers `false` only for a permanently invalid
//! block; a block from the future keeps the future pending until the local clock is
//! within `MAX_CLOCK_DRIFT_MS` of it. Both futures are cancellation-safe: all they do
//! after an await is synchronous work on the host, which keeps no half-done state.

use crate::block::{Digest, Envelope, hash_of};
use crate::ledger_host::{HostError, LedgerHost};
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::{Application, Block as _, Heightable};
use commonware_cryptography::{Digested, Digestible, ed25519::PublicKey};
use commonware_runtime::{Clock, Metrics, Spawner};
use futures::StreamExt;
use primitives::{Block, Height};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
pub type Ctx = Context<Digest, PublicKey>;

/// How far ahead of the local clock a block's timestamp may be before `verify` waits.
pub const MAX_CLOCK_DRIFT_MS: u64 = 1_000;

/// The longest a proposer waits for the block interval to pass.
pub const MAX_PACING_MS: u64 = 500;

#[derive(Clone)]
pub struct App {
    host: Arc<LedgerHost>,
}

impl App {
    pub fn new(host: Arc<LedgerHost>) -> App {
        App { host }
    }
}

fn now_ms(clock: &impl Clock) -> u64 {
    clock.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Makes the post-state of `first`'s parent known, replaying the unknown ancestors that
/// `rest` yields (parent first) from the nearest known one. `Err` when the ancestry leaves
/// the committed chain or a block in it is invalid.
///
/// The finalizer may commit blocks meanwhile (and the cache forgets what falls below the
/// tip), so a walk that fails while the tip moved is tried again on a fresh copy of the
/// ancestry: only a failure against a steady tip is an answer.
async fn ensure_parent(
    host: &LedgerHost,
    parent: &Digest,
    ancestry: &mut impl Ancestry<Envelope>,
) -> Result<(), HostError> {
    loop {
        let before = host.committed();
        let result = replay_to_parent(host, parent, &mut ancestry.clone()).await;
        if result.is_ok() || host.committed() == before {
            return result;
        }
    }
}

async fn replay_to_parent(
    host: &LedgerHost,
    parent: &Digest,
    ancestry: &mut impl Ancestry<Envelope>,
) -> Result<(), HostError> {
    if host.knows(&hash_of(parent)) {
        return Ok(());
    }
    let (tip, _) = host.committed();
    let mut missing: Vec<Block> = Vec::new();
    while let Some(ancestor) = ancestry.next().await {
        let hash = hash_of(&ancestor.digest());
        if host.knows(&hash) {
            break;
        }
        let Some(block) = ancestor.inner().ledger_block() else {
            return Err(HostError::Unrelated(hash)); // genesis that is not ours
        };
        if block.header.height <= tip {
            return Err(HostError::Unrelated(hash)); // below the tip, not on our chain
        }
        missing.push(block.clone());
    }
    for block in missing.iter().rev() {
        host.execute(block)?;
    }
    if host.knows(&hash_of(parent)) { Ok(()) } else { Err(HostError::Unrelated(hash_of(parent))) }
}

impl App {
    /// The verdict on a proposal at `height` when the committed tip has reached it while it
    /// was being verified (the other validators finalized it, or a sibling, first): its
    /// parent may then have left the speculative cache, so "unknown parent" would be a
    /// wrong `false`. Valid iff it is the committed block (CONSENSUS.md pitfall 6).
    fn finalized_meanwhile(&self, height: Height, hash: &primitives::Hash) -> Option<bool> {
        let (tip, _) = self.host.committed();
        (height <= tip).then(|| self.host.is_committed(height, hash))
    }
}

impl<E> Application<E> for App
where
    E: Clock + Spawner + Metrics,
{
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Envelope;
    type Input = ();

    async fn propose(
        &mut self,
        (clock, context): (E, Ctx),
        mut ancestry: impl Ancestry<Envelope>,
        _input: (),
    ) -> Option<Digested<Envelope>> {
        let parent = context.parent.1;
        if let Err(e) = ensure_parent(&self.host, &parent, &mut ancestry).await {
            tracing::warn!(error = %e, "cannot build on the proposed parent");
            return None;
        }
        // Pace blocks at the genesis block interval (as the solo sequencer does), so an
        // idle chain does not write a block per network round trip; never long enough to
        // trip the leader timeout.
        if let Some((parent_ms, interval_ms)) = self.host.pacing(&hash_of(&parent)) {
            let due = parent_ms.saturating_add(interval_ms.min(MAX_PACING_MS));
            let now = now_ms(&clock);
            if due > now {
                clock.sleep(Duration::from_millis(due - now)).await;
            }
        }
        // Execution is synchronous CPU work: on the runtime's blocking pool, so the
        // consensus actors keep running meanwhile.
        let host = self.host.clone();
        let at = now_ms(&clock);
        let block = clock
            .child("build")
            .shared(true)
            .spawn(move |_| async move { host.build(&hash_of(&parent), at) })
            .await
            .ok()??;
        let envelope = Envelope::block(block);
        let digest = envelope.digest();
        Some(Digested::precomputed(envelope, digest))
    }

    async fn verify(&mut self, (clock, context): (E, Ctx), mut ancestry: impl Ancestry<Envelope>) -> bool {
        let Some(candidate) = ancestry.next().await else {
            return false;
        };
        let envelope = candidate.inner();
        let hash = envelope.hash();
        let height = Height(envelope.height().get());
        if candidate.parent() != context.parent.1 {
            return false;
        }
        let Some(block) = envelope.ledger_block() else {
            return false; // genesis is never proposed
        };
        let (tip, _) = self.host.committed();
        if height <= tip {
            // Finalized while we were asked (CONSENSUS.md pitfall 6): valid iff it is ours.
            return self.host.is_committed(height, &hash);
        }
        if self.host.knows(&hash) {
            return true;
        }
        // A block from the future: abstain (stay pending) until our clock catches up.
        let ts = block.header.timestamp_ms;
        while ts > now_ms(&clock).saturating_add(MAX_CLOCK_DRIFT_MS) {
            clock.sleep(Duration::from_millis(ts - MAX_CLOCK_DRIFT_MS - now_ms(&clock))).await;
        }
        if let Err(e) = ensure_parent(&self.host, &context.parent.1, &mut ancestry).await {
            if let Some(verdict) = self.finalized_meanwhile(height, &hash) {
                return verdict;
            }
            tracing::warn!(height = height.0, error = %e, "parent of a proposal cannot be executed");
            return false;
        }
        let host = self.host.clone();
        let block = block.clone();
        match clock.child("execute").shared(true).spawn(move |_| async move { host.execute(&block) }).await {
            Ok(Ok(())) => true,
            Ok(Err(e @ HostError::Unrelated(_))) => {
                if let Some(verdict) = self.finalized_meanwhile(height, &hash) {
                    return verdict;
                }
                tracing::warn!(height = height.0, error = %e, "proposal failed verification");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(height = height.0, error = %e, "proposal failed verification");
                false
            }
            Err(e) => {
                // The execution task died (the runtime is stopping): abstain.
                tracing::warn!(height = height.0, error = %e, "verification did not complete");
                futures::future::pending::<bool>().await
            }
        }
    }
}
