//! The ledger side of the adapter: executes blocks for `propose` / `verify` on parents
//! that consensus has not finalized yet, and commits finalized blocks to the node's
//! `Chain` (the same block log, state, mempool, index and events as solo mode).
//!
//! Speculative states: every block this node built or verified above the committed tip
//! keeps its post-state (`Arc<State>`) and its execution, keyed by block hash, until the
//! committed tip passes its height. A parent that is neither the committed tip nor cached
//! is reached by replaying the ancestry consensus hands over, from the nearest known
//! block. Finalizing a cached block commits its execution without running it again.
//!
//! Determinism: the cache is only looked up (never iterated in an order that matters);
//! what a block contains depends on the parent's state, the mempool and the proposer's
//! clock, and verification depends only on the block and its ancestry.

use crate::block::Envelope;
use ledger::{BlockContext, Executed, Inadmissible, Signatures, State};
use node::Chain;
use parking_lot::Mutex;
use primitives::{Address, Block, Hash, Height};
use std::collections::HashMap;
use std::sync::Arc;

struct Speculative {
    height: Height,
    state: Arc<State>,
    /// Taken by `finalize`; the post-state stays until the tip has moved past it.
    executed: Option<Executed>,
}

/// A finalized block as the finalizer committed it (for observers: tests, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedBlock {
    pub height: Height,
    pub hash: Hash,
    pub state_root: Hash,
    pub txs: usize,
}

type Observer = Box<dyn Fn(&CommittedBlock) + Send + Sync>;

pub struct LedgerHost {
    chain: Arc<Chain>,
    /// This validator's address, recorded as the proposer of the blocks it builds.
    me: Address,
    txs_max: usize,
    speculative: Mutex<HashMap<Hash, Speculative>>,
    observer: Mutex<Option<Observer>>,
}

/// Why a block cannot be built or verified now.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("block {0} is not a descendant of the committed chain")]
    Unrelated(Hash),
    #[error("invalid block at height {height}: {source}")]
    Invalid { height: Height, source: ledger::BlockError },
}

impl LedgerHost {
    pub fn new(chain: Arc<Chain>, me: Address, txs_max: usize) -> Arc<LedgerHost> {
        Arc::new(LedgerHost { chain, me, txs_max, speculative: Mutex::new(HashMap::new()), observer: Mutex::new(None) })
    }

    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Called after every finalized block is committed.
    pub fn set_observer(&self, f: impl Fn(&CommittedBlock) + Send + Sync + 'static) {
        *self.observer.lock() = Some(Box::new(f));
    }

    /// (height, hash) of the committed tip.
    pub fn committed(&self) -> (Height, Hash) {
        let state = self.chain.state();
        (state.height, state.last_block_hash)
    }

    /// Runs `f` on the post-state of block `hash` when it is the committed tip or a cached
    /// speculative block.
    fn with_state<R>(&self, hash: &Hash, f: impl FnOnce(&State, bool) -> R) -> Option<R> {
        {
            let state = self.chain.state();
            if state.last_block_hash == *hash {
                return Some(f(&state, true));
            }
        }
        let cached = self.speculative.lock().get(hash).map(|s| s.state.clone());
        cached.map(|s| f(&s, false))
    }

    /// (timestamp, block interval) of block `hash`, when known.
    pub fn pacing(&self, hash: &Hash) -> Option<(u64, u64)> {
        self.with_state(hash, |state, _| (state.last_timestamp_ms, state.params.block_interval_ms))
    }

    pub fn knows(&self, hash: &Hash) -> bool {
        self.with_state(hash, |_, _| ()).is_some()
    }

    /// Whether `block` at or below the committed height is the committed one there.
    pub fn is_committed(&self, height: Height, hash: &Hash) -> bool {
        let (tip, tip_hash) = self.committed();
        if height == tip {
            return tip_hash == *hash;
        }
        if height > tip {
            return false;
        }
        if height.0 == 0 {
            return self.chain.blocks().genesis_hash() == *hash;
        }
        matches!(self.chain.blocks().get(height), Ok(Some(stored)) if stored.block.header.hash() == *hash)
    }

    /// Builds a block on `parent` (which must be known) at `timestamp_ms` (raised to the
    /// parent's time if earlier). Transactions come from the mempool, oldest first.
    pub fn build(&self, parent: &Hash, timestamp_ms: u64) -> Option<Block> {
        let (executed, on_tip, post) = self.with_state(parent, |state, on_tip| {
            let ctx = BlockContext {
                height: state.height.next(),
                parent_hash: state.last_block_hash,
                timestamp_ms: timestamp_ms.max(state.last_timestamp_ms),
                proposer: self.me,
            };
            let candidates = self.chain.proposal_candidates(state, self.txs_max);
            let executed = ledger::propose(state, ctx, candidates, self.txs_max);
            let mut post = state.clone();
            post.commit(&executed);
            (executed, on_tip, post)
        })?;
        if on_tip {
            // Judged on the committed state, these can never be included as they are; a
            // nonce-too-high one may just be waiting for a block in flight, so it stays.
            let hopeless: Vec<_> = executed
                .dropped
                .iter()
                .filter(|(_, _, why)| {
                    !matches!(why, Inadmissible::NonceTooHigh { .. } | Inadmissible::NonceTooLow { .. })
                })
                .cloned()
                .collect();
            self.chain.drop_inadmissible(&hopeless);
        }
        let block = executed.block.clone();
        self.remember(executed, post);
        Some(block)
    }

    fn remember(&self, executed: Executed, post: State) {
        let hash = executed.block_hash;
        let height = executed.block.header.height;
        self.speculative.lock().insert(hash, Speculative { height, state: Arc::new(post), executed: Some(executed) });
    }

    /// The ids of `block`'s transactions, and for each whether this node has already
    /// verified exactly its signature.
    fn checked_signatures(&self, block: &Block) -> (Vec<Hash>, Vec<bool>) {
        let ids: Vec<Hash> = block.txs.iter().map(|t| t.id()).collect();
        let checked = self.chain.verified_mask(ids.iter().zip(block.txs.iter().map(|t| &t.signature)));
        (ids, checked)
    }

    /// Verifies `block` on its parent (which must be known) and caches its post-state.
    pub fn execute(&self, block: &Block) -> Result<(), HostError> {
        let hash = block.header.hash();
        if self.speculative.lock().contains_key(&hash) {
            return Ok(());
        }
        // Transactions this node admitted were verified then, with these very signatures.
        let (ids, checked) = self.checked_signatures(block);
        let result = self.with_state(&block.header.parent_hash, |state, _| {
            ledger::verify_with_ids(state, block, &ids, Signatures::Unless(&checked)).map(|executed| {
                let mut post = state.clone();
                post.commit(&executed);
                (executed, post)
            })
        });
        match result {
            None => Err(HostError::Unrelated(block.header.parent_hash)),
            Some(Err(source)) => Err(HostError::Invalid { height: block.header.height, source }),
            Some(Ok((executed, post))) => {
                let fresh: Vec<(Hash, primitives::Signature)> = ids
                    .into_iter()
                    .zip(&block.txs)
                    .zip(&checked)
                    .filter(|(_, done)| !**done)
                    .map(|((id, t), _)| (id, t.signature))
                    .collect();
                self.chain.count_signature_checks(fresh.len());
                self.chain.remember_verified(fresh);
                self.remember(executed, post);
                Ok(())
            }
        }
    }

    /// Commits a finalized block; `false` when the chain is shutting down (the block is
    /// then not committed and must not be acknowledged). Idempotent by height (marshal may deliver a block again
    /// after a restart). Panics when a finalized block conflicts with the committed chain
    /// or is invalid: either means more than a third of the validators are faulty, and
    /// continuing would fork this node's log.
    pub fn finalize(&self, envelope: &Envelope) -> bool {
        let Some(block) = envelope.ledger_block() else {
            return true; // genesis
        };
        let height = block.header.height;
        let hash = envelope.hash();
        let (tip, tip_hash) = self.committed();
        if height <= tip {
            return true;
        }
        assert_eq!(height, tip.next(), "finalized block {height} delivered out of order (tip {tip})");
        assert_eq!(block.header.parent_hash, tip_hash, "finalized block {height} does not extend the committed tip");
        // The block's post-state stays cached until its commit is visible as the tip, so
        // that a concurrent `execute` or `build` on it never finds it in neither place.
        let cached = self.speculative.lock().get_mut(&hash).and_then(|s| s.executed.take());
        let executed = match cached {
            Some(executed) => executed,
            None => {
                let state = self.chain.state();
                let (ids, checked) = self.checked_signatures(block);
                ledger::verify_with_ids(&state, block, &ids, Signatures::Unless(&checked))
                    .unwrap_or_else(|e| panic!("finalized block {height} is invalid: {e}"))
            }
        };
        let Some(committed) = self.chain.commit_finalized(executed) else {
            return false;
        };
        // The new tip's entry stays one block longer: a reader that saw the previous tip
        // as the chain state may look for this block in the cache.
        self.speculative.lock().retain(|_, s| s.height >= height);
        let seen = CommittedBlock {
            height,
            hash,
            state_root: committed.block.header.state_root,
            txs: committed.block.txs.len(),
        };
        if let Some(observer) = self.observer.lock().as_ref() {
            observer(&seen);
        }
        true
    }
}
