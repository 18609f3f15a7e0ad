//! Tessera's bounded pool of verified transactions with per-signer nonce queues.
//!
//! Transactions enter only after stateless checks and signature verification (done by
//! the caller, in parallel batches). Each signer has a queue keyed by nonce; a
//! transaction becomes *ready* when every lower nonce is committed or ready, and ready
//! transactions leave in arrival order. The pool is bounded in total and per signer.
//!
//! Architecture invariant: iteration order never depends on hash-map order (the ready
//! queue is a `VecDeque`; hash maps are only looked up).

use primitives::{Address, Hash, SignedTransaction};
// Keyed by addresses and transaction ids that clients choose: randomly seeded hashing.
use foldhash::{HashMap, HashSet};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct MempoolConfig {
    /// Most transactions held (pending + ready), across all signers.
    pub txs_max: usize,
    /// How far ahead of a signer's next nonce a transaction may be queued.
    pub nonce_ahead_max: u64,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig { txs_max: 200_000, nonce_ahead_max: 1024 }
    }
}

/// A transaction whose signature and stateless checks passed.
#[derive(Debug)]
pub struct VerifiedTx {
    pub id: Hash,
    pub stx: SignedTransaction,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction {0} is already in the mempool")]
    Duplicate(Hash),
    #[error("mempool is full ({0} transactions); retry later")]
    Full(usize),
    #[error("nonce {got} already used; the signer's next nonce is {next}")]
    NonceTooLow { next: u64, got: u64 },
    #[error("nonce {got} is more than {ahead_max} ahead of the signer's next nonce {next}")]
    NonceTooFarAhead { next: u64, got: u64, ahead_max: u64 },
    #[error("another transaction with nonce {0} from this signer is already pending")]
    NonceTaken(u64),
}

impl MempoolError {
    pub fn code(&self) -> &'static str {
        match self {
            MempoolError::Duplicate(_) => "duplicate_tx",
            MempoolError::Full(_) => "mempool_full",
            MempoolError::NonceTooLow { .. } => "nonce_too_low",
            MempoolError::NonceTooFarAhead { .. } => "nonce_too_high",
            MempoolError::NonceTaken(_) => "nonce_taken",
        }
    }
}

#[derive(Default)]
struct SignerQueue {
    /// Lowest nonce not yet committed, ready or taken.
    next_unready: u64,
    /// Waiting for a lower nonce.
    waiting: BTreeMap<u64, Arc<VerifiedTx>>,
    /// In the ready queue, not yet taken for a block.
    ready: usize,
    /// Taken for a block, not yet committed.
    in_flight: usize,
}

/// Bounded pool of verified transactions.
pub struct Mempool {
    config: MempoolConfig,
    signers: HashMap<Address, SignerQueue>,
    ready: VecDeque<Arc<VerifiedTx>>,
    /// Every transaction held or in flight, for duplicate rejection and status queries.
    ids: HashSet<Hash>,
    /// Ids purged after being queued as ready; skipped when they reach the front.
    purged: HashSet<Hash>,
}

impl Mempool {
    pub fn new(config: MempoolConfig) -> Mempool {
        Mempool {
            config,
            signers: HashMap::default(),
            ready: VecDeque::new(),
            ids: HashSet::default(),
            purged: HashSet::default(),
        }
    }

    /// Transactions held, including those in a block being committed.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len() - self.purged.len().min(self.ready.len())
    }

    pub fn contains(&self, id: &Hash) -> bool {
        self.ids.contains(id)
    }

    /// The next nonce a new transaction from `signer` should use, given its committed
    /// nonce (what a wallet should sign next).
    pub fn next_nonce(&self, signer: &Address, committed_nonce: u64) -> u64 {
        match self.signers.get(signer) {
            Some(q) => {
                let top = q.waiting.keys().next_back().map_or(0, |n| n + 1);
                q.next_unready.max(committed_nonce).max(top)
            }
            None => committed_nonce,
        }
    }

    /// Admits a verified transaction; `committed_nonce` is the signer's nonce in the
    /// committed state.
    pub fn insert(&mut self, tx: Arc<VerifiedTx>, committed_nonce: u64) -> Result<(), MempoolError> {
        if self.ids.contains(&tx.id) {
            return Err(MempoolError::Duplicate(tx.id));
        }
        let nonce = tx.stx.tx.nonce;
        if nonce < committed_nonce {
            return Err(MempoolError::NonceTooLow { next: committed_nonce, got: nonce });
        }
        if self.ids.len() >= self.config.txs_max {
            return Err(MempoolError::Full(self.config.txs_max));
        }
        let q = self.signers.entry(tx.stx.tx.signer).or_default();
        if q.next_unready < committed_nonce {
            q.next_unready = committed_nonce;
            q.waiting = q.waiting.split_off(&committed_nonce);
        }
        if nonce < q.next_unready || q.waiting.contains_key(&nonce) {
            return Err(MempoolError::NonceTaken(nonce));
        }
        let ahead_max = self.config.nonce_ahead_max;
        if nonce - q.next_unready >= ahead_max {
            return Err(MempoolError::NonceTooFarAhead { next: q.next_unready, got: nonce, ahead_max });
        }
        self.ids.insert(tx.id);
        if nonce != q.next_unready {
            q.waiting.insert(nonce, tx);
            return Ok(());
        }
        // The common case: the next nonce, ready at once (no trip through `waiting`).
        q.next_unready += 1;
        q.ready += 1;
        self.ready.push_back(tx);
        while let Some(ready) = q.waiting.remove(&q.next_unready) {
            q.next_unready += 1;
            q.ready += 1;
            self.ready.push_back(ready);
        }
        Ok(())
    }

    /// Takes up to `txs_max` ready transactions, oldest first, for a block.
    pub fn take_ready(&mut self, txs_max: usize) -> Vec<Arc<VerifiedTx>> {
        let mut out = Vec::with_capacity(txs_max.min(self.ready.len()));
        while out.len() < txs_max {
            let Some(tx) = self.ready.pop_front() else {
                break;
            };
            if self.purged.remove(&tx.id) {
                continue;
            }
            let q = self.signers.get_mut(&tx.stx.tx.signer).expect("ready tx has a queue");
            q.ready -= 1;
            q.in_flight += 1;
            out.push(tx);
        }
        out
    }

    /// Replicated mode: up to `txs_max` ready transactions, oldest first, left in the pool
    /// (a proposal may never be finalized). `skip` leaves out what the proposal's parent
    /// already settled (a nonce it has passed).
    pub fn peek_ready(&self, txs_max: usize, mut skip: impl FnMut(&VerifiedTx) -> bool) -> Vec<Arc<VerifiedTx>> {
        self.ready.iter().filter(|t| !self.purged.contains(&t.id) && !skip(t)).take(txs_max).cloned().collect()
    }

    /// Replicated mode: a finalized block (from this pool or another node's) moved these
    /// signers' committed nonces. Every transaction of theirs below its signer's committed
    /// nonce leaves the pool (included, or replaced by another with the same nonce); later
    /// ones stay queued, and a waiting one whose nonce is now next becomes ready. One pass
    /// over the ready queue, which also sweeps out what `purge_signers` marked.
    pub fn settle_finalized(&mut self, committed: impl IntoIterator<Item = (Address, u64)>) {
        let committed: HashMap<Address, u64> = committed.into_iter().collect();
        if committed.is_empty() && self.purged.is_empty() {
            return;
        }
        let (signers, ids, purged) = (&mut self.signers, &mut self.ids, &mut self.purged);
        self.ready.retain(|t| {
            if purged.remove(&t.id) {
                return false;
            }
            let signer = &t.stx.tx.signer;
            match committed.get(signer) {
                Some(next) if t.stx.tx.nonce < *next => {
                    ids.remove(&t.id);
                    if let Some(q) = signers.get_mut(signer) {
                        q.ready = q.ready.saturating_sub(1);
                    }
                    false
                }
                _ => true,
            }
        });
        for (signer, next) in committed {
            let Some(q) = self.signers.get_mut(&signer) else {
                continue;
            };
            let keep = q.waiting.split_off(&next);
            for stale in std::mem::replace(&mut q.waiting, keep).into_values() {
                self.ids.remove(&stale.id);
            }
            if q.next_unready < next {
                q.next_unready = next;
                while let Some(ready) = q.waiting.remove(&q.next_unready) {
                    q.next_unready += 1;
                    q.ready += 1;
                    self.ready.push_back(ready);
                }
            }
            if q.in_flight == 0 && q.ready == 0 && q.waiting.is_empty() {
                self.signers.remove(&signer);
            }
        }
    }

    /// Replicated mode: removes every queued transaction of these signers (a proposer
    /// found one of theirs inadmissible on the finalized state, e.g. a fee it cannot pay).
    pub fn purge_signers<'a>(&mut self, signers: impl IntoIterator<Item = &'a Address>) {
        for signer in signers {
            self.purge_signer(signer);
        }
    }

    /// After a block built from `take_ready` is committed (or abandoned): `included`
    /// went into the block, `dropped` were left out. A signer with a dropped
    /// transaction loses its queue (later nonces cannot proceed); its client resubmits.
    pub fn finish_block<'a>(
        &mut self,
        included: impl IntoIterator<Item = (&'a Hash, &'a Address)>,
        dropped: impl IntoIterator<Item = (&'a Hash, &'a Address)>,
    ) {
        for (id, signer) in included {
            self.ids.remove(id);
            self.settle(signer);
        }
        for (id, signer) in dropped {
            self.ids.remove(id);
            self.settle(signer);
            self.purge_signer(signer);
        }
    }

    fn settle(&mut self, signer: &Address) {
        if let Some(q) = self.signers.get_mut(signer) {
            q.in_flight = q.in_flight.saturating_sub(1);
            if q.in_flight == 0 && q.ready == 0 && q.waiting.is_empty() {
                self.signers.remove(signer);
            }
        }
    }

    /// Removes every transaction of `signer` still waiting or ready.
    fn purge_signer(&mut self, signer: &Address) {
        let Some(mut q) = self.signers.remove(signer) else {
            return;
        };
        for tx in q.waiting.values() {
            self.ids.remove(&tx.id);
        }
        if q.ready > 0 {
            for tx in self.ready.iter().filter(|t| t.stx.tx.signer == *signer) {
                if self.ids.remove(&tx.id) {
                    self.purged.insert(tx.id);
                }
            }
        }
        q.ready = 0;
        if q.in_flight > 0 {
            // Keep counting the in-flight ones; their nonces are no longer ours to assign.
            self.signers.insert(*signer, SignerQueue { in_flight: q.in_flight, ..SignerQueue::default() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::{Action, Amount, AssetId, Signature, Transaction};

    fn tx(signer: u8, nonce: u64) -> Arc<VerifiedTx> {
        let stx = SignedTransaction {
            tx: Transaction {
                chain_id: "t".into(),
                signer: Address([signer; 32]),
                nonce,
                fee: Amount(1),
                expiry_height: None,
                action: Action::Transfer { to: Address([0; 32]), asset: AssetId::TSR, amount: Amount(1) },
            },
            signature: Signature([0; 64]),
        };
        Arc::new(VerifiedTx { id: stx.id(), stx })
    }

    fn nonces(txs: &[Arc<VerifiedTx>]) -> Vec<(u8, u64)> {
        txs.iter().map(|t| (t.stx.tx.signer.0[0], t.stx.tx.nonce)).collect()
    }

    #[test]
    fn out_of_order_nonces_become_ready_in_order() {
        let mut m = Mempool::new(MempoolConfig { txs_max: 10, nonce_ahead_max: 4 });
        m.insert(tx(1, 2), 0).unwrap();
        m.insert(tx(2, 0), 0).unwrap();
        m.insert(tx(1, 1), 0).unwrap();
        assert_eq!(m.ready_len(), 1);
        m.insert(tx(1, 0), 0).unwrap();
        assert_eq!(m.ready_len(), 4);
        assert_eq!(m.next_nonce(&Address([1; 32]), 0), 3);
        let taken = m.take_ready(10);
        assert_eq!(nonces(&taken), vec![(2, 0), (1, 0), (1, 1), (1, 2)]);
    }

    #[test]
    fn rejects_duplicates_replays_gaps_and_overflow() {
        let mut m = Mempool::new(MempoolConfig { txs_max: 3, nonce_ahead_max: 4 });
        m.insert(tx(1, 5), 5).unwrap();
        assert_eq!(m.insert(tx(1, 5), 5).unwrap_err().code(), "duplicate_tx");
        assert_eq!(m.insert(tx(1, 4), 5).unwrap_err().code(), "nonce_too_low");
        // 5 is ready, so the next unready nonce is 6; 6 + 4 is too far ahead.
        assert_eq!(m.insert(tx(1, 10), 5).unwrap_err().code(), "nonce_too_high");
        m.insert(tx(1, 9), 5).unwrap();
        let mut same_nonce = tx(1, 9).stx.clone();
        same_nonce.tx.fee = Amount(2);
        let same_nonce = Arc::new(VerifiedTx { id: same_nonce.id(), stx: same_nonce });
        assert_eq!(m.insert(same_nonce, 5).unwrap_err().code(), "nonce_taken");
        m.insert(tx(2, 0), 0).unwrap();
        assert_eq!(m.insert(tx(3, 0), 0).unwrap_err().code(), "mempool_full");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn dropped_transaction_purges_its_signer() {
        let mut m = Mempool::new(MempoolConfig::default());
        for n in 0..3 {
            m.insert(tx(1, n), 0).unwrap();
        }
        m.insert(tx(2, 0), 0).unwrap();
        let first = m.take_ready(1);
        let (id, signer) = (first[0].id, first[0].stx.tx.signer);
        m.finish_block([], [(&id, &signer)]);
        assert_eq!(m.len(), 1);
        assert_eq!(nonces(&m.take_ready(10)), vec![(2, 0)]);
        // The signer can start again from its committed nonce.
        m.insert(tx(1, 0), 0).unwrap();
        assert_eq!(m.ready_len(), 1);
    }

    #[test]
    fn replicated_mode_peeks_and_settles_by_committed_nonce() {
        let mut m = Mempool::new(MempoolConfig { txs_max: 100, nonce_ahead_max: 16 });
        for n in 0..3 {
            m.insert(tx(1, n), 0).unwrap();
        }
        m.insert(tx(1, 5), 0).unwrap(); // waits for 3 and 4
        m.insert(tx(2, 0), 0).unwrap();
        // Peeking leaves everything in place; `skip` leaves out what a parent settled.
        assert_eq!(nonces(&m.peek_ready(10, |_| false)), vec![(1, 0), (1, 1), (1, 2), (2, 0)]);
        assert_eq!(nonces(&m.peek_ready(10, |t| t.stx.tx.nonce < 2)), vec![(1, 2)]);
        assert_eq!(m.len(), 5);
        // A block (maybe another node's) took signer 1 to nonce 5: 0..=2 leave, 5 is ready.
        m.settle_finalized([(Address([1; 32]), 5)]);
        assert_eq!(nonces(&m.peek_ready(10, |_| false)), vec![(2, 0), (1, 5)]);
        assert_eq!(m.len(), 2);
        assert!(!m.contains(&tx(1, 0).id));
        // Nonces already settled are refused; the next one is accepted.
        assert!(m.insert(tx(1, 4), 5).is_err());
        m.insert(tx(1, 6), 5).unwrap();
        // An inadmissible signer is purged and swept at the next settlement.
        m.purge_signers([&Address([2; 32])]);
        m.settle_finalized(std::iter::empty());
        assert_eq!(nonces(&m.peek_ready(10, |_| false)), vec![(1, 5), (1, 6)]);
        assert_eq!(m.ready_len(), 2);
        m.settle_finalized([(Address([1; 32]), 7)]);
        assert!(m.is_empty());
        assert_eq!(m.ready_len(), 0);
    }

    #[test]
    fn in_flight_nonces_are_not_reassigned() {
        let mut m = Mempool::new(MempoolConfig::default());
        m.insert(tx(1, 0), 0).unwrap();
        let taken = m.take_ready(10);
        assert_eq!(m.insert(tx(1, 0), 0).unwrap_err().code(), "duplicate_tx");
        m.insert(tx(1, 1), 0).unwrap();
        assert_eq!(m.ready_len(), 1);
        m.finish_block([(&taken[0].id, &taken[0].stx.tx.signer)], []);
        assert_eq!(m.len(), 1);
        assert_eq!(nonces(&m.take_ready(10)), vec![(1, 1)]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use primitives::{Action, Amount, AssetId, Signature, Transaction};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert { signer: u8, nonce_offset: u8, salt: u8 },
        Block { take: u8, drop_first: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, 0u8..6, 0u8..3).prop_map(|(signer, nonce_offset, salt)| Op::Insert { signer, nonce_offset, salt }),
            1 => (0u8..10, any::<bool>()).prop_map(|(take, drop_first)| Op::Block { take, drop_first }),
        ]
    }

    fn tx(signer: u8, nonce: u64, salt: u8) -> Arc<VerifiedTx> {
        let stx = SignedTransaction {
            tx: Transaction {
                chain_id: "t".into(),
                signer: Address([signer; 32]),
                nonce,
                fee: Amount(1 + salt as u128),
                expiry_height: None,
                action: Action::Transfer { to: Address([0; 32]), asset: AssetId::TSR, amount: Amount(1) },
            },
            signature: Signature([0; 64]),
        };
        Arc::new(VerifiedTx { id: stx.id(), stx })
    }

    proptest! {
        /// Against a model of committed nonces: every block the pool offers is executable
        /// in order (each signer's nonces consecutive from its committed nonce), the pool
        /// stays within its bound, and a committed nonce is never offered again.
        #[test]
        fn offered_blocks_are_always_executable(ops in proptest::collection::vec(op(), 1..120)) {
            let config = MempoolConfig { txs_max: 12, nonce_ahead_max: 4 };
            let mut m = Mempool::new(config);
            let mut committed: BTreeMap<Address, u64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert { signer, nonce_offset, salt } => {
                        let addr = Address([signer; 32]);
                        let base = committed.get(&addr).copied().unwrap_or(0);
                        let nonce = base.saturating_sub(1) + nonce_offset as u64;
                        let _ = m.insert(tx(signer, nonce, salt), base);
                        prop_assert!(m.len() <= config.txs_max);
                    }
                    Op::Block { take, drop_first } => {
                        let taken = m.take_ready(take as usize);
                        // Execute like the ledger: a tx applies iff its nonce is the next one.
                        let mut next = committed.clone();
                        let mut included = Vec::new();
                        let mut dropped: Vec<(Hash, Address)> = Vec::new();
                        for (i, t) in taken.iter().enumerate() {
                            let s = t.stx.tx.signer;
                            let expected = next.get(&s).copied().unwrap_or(0);
                            if drop_first && i == 0 {
                                dropped.push((t.id, s));
                                continue;
                            }
                            if t.stx.tx.nonce == expected {
                                next.insert(s, expected + 1);
                                included.push((t.id, s));
                            } else {
                                // Only the signer of a transaction dropped in this block may show a gap.
                                let after_drop = dropped.iter().any(|(_, d)| *d == s);
                                prop_assert!(after_drop, "offered nonce {} but next is {expected}", t.stx.tx.nonce);
                                dropped.push((t.id, s));
                            }
                        }
                        committed = next;
                        m.finish_block(included.iter().map(|(id, s)| (id, s)), dropped.iter().map(|(id, s)| (id, s)));
                    }
                }
            }
        }
    }
}
