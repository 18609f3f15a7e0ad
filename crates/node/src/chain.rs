//! The chain service of one node: recovery, admission to the mempool, the solo
//! sequencer, durable commit, checkpoints, the transaction index and block events.
//!
//! Threads: the sequencer (one OS thread: take ready transactions, `ledger::propose`,
//! append + fsync, commit to memory, publish) and the checkpointer (one OS thread:
//! writes accumulated changes to the snapshot files in `checkpoint/`). HTTP handlers call `admit` and the
//! read methods from tokio tasks.
//!
//! Acknowledgement rule: a block's effects become visible (state, tx index, events) only
//! after its write to the block log is durable.

use crate::metrics::Metrics;
use ledger::{BlockContext, Committed, Genesis, Inadmissible, Signatures, State};
use mempool::{Mempool, MempoolConfig, MempoolError, VerifiedTx};
use parking_lot::{Condvar, Mutex, RwLock};
use primitives::limits::{BLOCK_TXS_MAX, TX_BYTES_MAX};
use primitives::{Address, AssetId, DecodeError, Hash, Height, SignedTransaction, TxError};
// Keyed by transaction ids and addresses that clients choose: randomly seeded hashing.
use foldhash::{HashMap, HashSet};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use storage::{BlockStore, CheckpointDelta, StateHeader, StateStore, StoreError, StoredBlock};

/// Replicated mode: the hook that hands admitted transactions to gossip.
type Gossip = Box<dyn Fn(Vec<SignedTransaction>) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub data_dir: PathBuf,
    /// Most transactions per block; a block is cut early when this many are ready.
    pub block_txs_max: usize,
    /// Blocks between checkpoints of the state (snapshot runs in `checkpoint/`).
    pub checkpoint_interval_blocks: u64,
    /// Also checkpoint once this many transactions were committed since the last one:
    /// bounds the in-memory transaction index and the replay after a crash.
    pub checkpoint_txs_max: usize,
    pub mempool: MempoolConfig,
    /// Remembered dropped transactions (for status queries).
    pub dropped_remembered_max: usize,
    /// Recorded as the proposer of every block (solo mode); defaults to the issuer.
    pub proposer: Option<Address>,
    /// Development chains only: block time may be moved forward (`Chain::advance_clock`,
    /// `POST /v1/dev/clock`) to exercise windows, lockups and vesting without waiting.
    pub dev_clock: bool,
}

impl ChainConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ChainConfig {
        ChainConfig {
            data_dir: data_dir.into(),
            block_txs_max: 10_000,
            checkpoint_interval_blocks: 600,
            checkpoint_txs_max: 1_000_000,
            mempool: MempoolConfig::default(),
            dropped_remembered_max: 100_000,
            proposer: None,
            dev_clock: false,
        }
    }
}

/// Why a submitted transaction was refused. Stable codes via `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error("signature does not verify for this signer and transaction")]
    BadSignature,
    #[error(transparent)]
    Inadmissible(#[from] Inadmissible),
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    #[error("node is shutting down")]
    ShuttingDown,
}

impl AdmitError {
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Tx(e) => e.code(),
            AdmitError::BadSignature => "bad_signature",
            AdmitError::Inadmissible(e) => e.code(),
            AdmitError::Mempool(e) => e.code(),
            AdmitError::ShuttingDown => "shutting_down",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("genesis is invalid: {0}")]
    Genesis(#[from] ledger::GenesisError),
    #[error("stored block {height} does not re-execute: {source}")]
    Replay { height: Height, source: ledger::BlockError },
    #[error("stored block {height}'s receipts differ from re-execution")]
    ReceiptMismatch { height: Height },
    #[error("checkpoint at height {checkpoint} is ahead of the block log tip {tip}")]
    CheckpointAhead { checkpoint: Height, tip: Height },
    #[error("the data dir has no state checkpoint yet, so the genesis file is needed")]
    GenesisRequired,
    #[error("the checkpoint in this data dir belongs to another chain")]
    WrongChain,
    #[error("this node's clock cannot be moved (only `tessera devnet` enables the dev clock)")]
    DevClockDisabled,
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// A committed block, as announced to event subscribers (the API turns it into JSON).
#[derive(Debug, Clone)]
pub struct BlockAnnouncement {
    pub height: Height,
    pub hash: Hash,
    pub timestamp_ms: u64,
    pub state_root: Hash,
    pub receipts: Vec<primitives::Receipt>,
}

/// Where a committed transaction lives.
#[derive(Debug, Clone, Copy)]
pub struct TxLocation {
    pub height: Height,
    pub index: u32,
}

pub enum TxStatus {
    Pending,
    Committed(TxLocation, Box<StoredBlock>),
    Dropped(Inadmissible),
    Unknown,
}

struct RecentIndex {
    by_id: HashMap<Hash, TxLocation>,
    by_height: VecDeque<(Height, Vec<Hash>)>,
}

struct DroppedLog {
    by_id: HashMap<Hash, Inadmissible>,
    order: VecDeque<Hash>,
}

pub struct Chain {
    config: ChainConfig,
    state: RwLock<State>,
    mempool: Mutex<Mempool>,
    /// Signals the sequencer: enough ready transactions, or shutdown.
    wake: Condvar,
    blocks: BlockStore,
    checkpoints: Arc<StateStore>,
    recent: RwLock<RecentIndex>,
    dropped: Mutex<DroppedLog>,
    checkpointed_height: Arc<AtomicU64>,
    shutdown: AtomicBool,
    events: tokio::sync::broadcast::Sender<Arc<BlockAnnouncement>>,
    /// Set when the API shuts down: open event streams end (they never would by themselves).
    closing: tokio::sync::watch::Sender<bool>,
    pub metrics: Metrics,
    proposer: Address,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Changes since the last checkpoint, found at recovery; the sequencer takes it.
    pending_dirty: Mutex<Option<Dirty>>,
    /// Height of the last block whose transactions left the mempool (written under the
    /// mempool lock).
    finished_height: Mutex<Height>,
    /// Milliseconds added to the wall clock for block times (dev clock only).
    clock_offset_ms: AtomicU64,
    /// Replicated mode: the checkpoint bookkeeping the finalizer drives (the solo
    /// sequencer's thread owns its own).
    replicated: Mutex<Option<Checkpointing>>,
    /// Replicated mode: where transactions admitted from this node's API go, to be
    /// gossiped to the other validators.
    gossip: Mutex<Option<Gossip>>,
    /// Replicated mode: the signature each admitted, not yet finalized transaction was
    /// verified with, so a peer's block carrying exactly these is not verified twice.
    verified: Mutex<HashMap<Hash, primitives::Signature>>,
}

/// When to cut a checkpoint and what it covers; driven after every committed block by the
/// solo sequencer or, in replicated mode, by the finalizer.
struct Checkpointing {
    sender: SyncSender<(CheckpointDelta, StateHeader)>,
    dirty: Dirty,
    last_checkpoint: Height,
    /// Blocks above this height still need their transactions indexed in a checkpoint
    /// (after a restart: the blocks replayed above the last checkpoint).
    indexed_from: Height,
    txs_since_checkpoint: usize,
}

const EVENTS_BUFFER_MAX: usize = 1024;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Chain {
    /// Opens the data dir: loads the last checkpoint (or genesis), re-executes every
    /// durable block after it and checks its roots and receipts. Does not start threads.
    ///
    /// `genesis` may be `None` for a data dir that already holds a chain with a
    /// checkpoint: a large genesis file then need not be parsed again on every start.
    pub fn open(config: ChainConfig, genesis: Option<&Genesis>) -> Result<Arc<Chain>, ChainError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ChainError::Store(StoreError::Corrupt {
                path: config.data_dir.clone(),
                what: format!("cannot create data dir: {e}"),
            })
        })?;
        let blocks = BlockStore::open(&config.data_dir, genesis.map(|g| g.hash()))?;
        let genesis_hash = blocks.genesis_hash();
        let checkpoints = StateStore::open(&config.data_dir)?;
        let mut dirty = Dirty::default();
        let mut state = match checkpoints.load()? {
            Some(state) => {
                if state.params.genesis_hash != genesis_hash {
                    return Err(ChainError::WrongChain);
                }
                state
            }
            None => {
                let genesis = genesis.ok_or(ChainError::GenesisRequired)?;
                let state = genesis.to_state()?;
                // A new chain's first checkpoint is its whole genesis state, written now
                // (once) so that later checkpoints only carry changes.
                let delta = CheckpointDelta {
                    accounts: state.accounts.iter().map(|(a, acct)| (*a, Some(acct.clone()))).collect(),
                    assets: state.assets.clone(),
                    roles: Some(state.roles.clone()),
                    objects: state.objects.iter().map(|(k, o)| (*k, Some(o.clone()))).collect(),
                    tx_index: Vec::new(),
                };
                checkpoints.write_checkpoint(&delta, &StateHeader::of(&state))?;
                state
            }
        };
        let tip = blocks.tip()?;
        if state.height > tip {
            return Err(ChainError::CheckpointAhead { checkpoint: state.height, tip });
        }
        let checkpoint_height = state.height;
        let mut recent = RecentIndex { by_id: HashMap::default(), by_height: VecDeque::new() };
        blocks.for_each_from(state.height.next(), |stored| {
            let height = stored.block.header.height;
            let executed = ledger::verify(&state, &stored.block, Signatures::AlreadyChecked)
                .map_err(|source| ChainError::Replay { height, source })?;
            if executed.receipts != stored.receipts {
                return Err(ChainError::ReceiptMismatch { height });
            }
            state.commit(&executed);
            dirty.record_write_set(&executed.write_set);
            recent.insert(height, &executed.receipts);
            Ok(())
        })?;
        let (events, _) = tokio::sync::broadcast::channel(EVENTS_BUFFER_MAX);
        let proposer = config.proposer.unwrap_or(state.roles.issuer);
        let metrics = Metrics::new();
        metrics.height.set(state.height.0 as i64);
        let state_height = state.height;
        let chain = Arc::new(Chain {
            mempool: Mutex::new(Mempool::new(config.mempool)),
            config,
            state: RwLock::new(state),
            wake: Condvar::new(),
            blocks,
            checkpoints: Arc::new(checkpoints),
            recent: RwLock::new(recent),
            dropped: Mutex::new(DroppedLog { by_id: HashMap::default(), order: VecDeque::new() }),
            checkpointed_height: Arc::new(AtomicU64::new(checkpoint_height.0)),
            shutdown: AtomicBool::new(false),
            events,
            closing: tokio::sync::watch::Sender::new(false),
            metrics,
            proposer,
            threads: Mutex::new(Vec::new()),
            pending_dirty: Mutex::new(Some(dirty)),
            clock_offset_ms: AtomicU64::new(0),
            finished_height: Mutex::new(state_height),
            replicated: Mutex::new(None),
            gossip: Mutex::new(None),
            verified: Mutex::new(HashMap::default()),
        });
        Ok(chain)
    }

    /// Starts the solo sequencer and checkpointer threads.
    pub fn start(self: &Arc<Self>) -> Result<(), ChainError> {
        let checkpointing = self.start_checkpointer()?;
        let chain = self.clone();
        let sequencer = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || chain.run_sequencer(checkpointing))
            .map_err(ChainError::Thread)?;
        self.threads.lock().push(sequencer);
        Ok(())
    }

    /// Replicated mode: starts only the checkpointer. Blocks come from consensus through
    /// `commit_finalized`; proposals read the mempool through `proposal_candidates`.
    pub fn start_replicated(self: &Arc<Self>) -> Result<(), ChainError> {
        let checkpointing = self.start_checkpointer()?;
        *self.replicated.lock() = Some(checkpointing);
        Ok(())
    }

    fn start_checkpointer(&self) -> Result<Checkpointing, ChainError> {
        let (tx, rx) = sync_channel::<(CheckpointDelta, StateHeader)>(1);
        let store = self.checkpoints.clone();
        let done = self.checkpointed_height.clone();
        let checkpointer = std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || {
                // A checkpoint that failed (say, a full disk) loses nothing, as the block
                // log has every block; its changes are written with the next one, which
                // would otherwise leave them out of the state on disk.
                let mut failed: Option<CheckpointDelta> = None;
                for (delta, header) in rx {
                    let delta = match failed.take() {
                        Some(mut older) => {
                            older.absorb(delta);
                            older
                        }
                        None => delta,
                    };
                    let height = header.height;
                    let started = Instant::now();
                    if let Err(e) = store.write_checkpoint(&delta, &header) {
                        tracing::error!(error = %e, height = height.0, "checkpoint failed; retried with the next");
                        failed = Some(delta);
                        continue;
                    }
                    done.store(height.0, Ordering::SeqCst);
                    tracing::debug!(
                        height = height.0,
                        accounts = delta.accounts.len(),
                        txs = delta.tx_index.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "checkpoint written"
                    );
                }
            })
            .map_err(ChainError::Thread)?;
        self.threads.lock().push(checkpointer);
        Ok(Checkpointing {
            sender: tx,
            dirty: self.pending_dirty.lock().take().unwrap_or_default(),
            last_checkpoint: self.state.read().height,
            indexed_from: Height(self.checkpointed_height.load(Ordering::SeqCst)),
            txs_since_checkpoint: 0,
        })
    }

    /// Stops the sequencer after its current block, writes a final checkpoint and
    /// joins the threads.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.mempool.lock();
            self.wake.notify_all();
        }
        if let Some(checkpointing) = self.replicated.lock().take() {
            checkpointing.finish(self);
        }
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }

    /// The time the next block will carry (wall clock, plus the dev-clock offset).
    pub fn now_ms(&self) -> u64 {
        now_ms().saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
    }

    /// Moves block time forward by `ms` (dev chains only); returns the new time. Blocks
    /// cut after this returns carry at least the new time.
    pub fn advance_clock(&self, ms: u64) -> Result<u64, ChainError> {
        if !self.config.dev_clock {
            return Err(ChainError::DevClockDisabled);
        }
        self.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
        Ok(self.now_ms())
    }

    pub fn state(&self) -> parking_lot::RwLockReadGuard<'_, State> {
        self.state.read()
    }

    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<BlockAnnouncement>> {
        self.events.subscribe()
    }

    /// Ends every open event stream (the API is shutting down).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Chain::close_streams`] was called (at once if it was already).
    pub fn streams_closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closed| *closed).await;
        }
    }

    pub fn mempool_len(&self) -> usize {
        self.mempool.lock().len()
    }

    pub fn next_nonce(&self, address: &Address) -> u64 {
        let committed = self.state.read().nonce(address);
        self.mempool.lock().next_nonce(address, committed)
    }

    /// Admits transactions to the mempool: stateless checks, signatures (in parallel
    /// batches when more than one), chain/fee/nonce/fee-balance checks against the
    /// committed state, then the mempool's own bounds. One verdict per input, in order.
    pub fn admit(&self, txs: Vec<SignedTransaction>) -> Vec<(Hash, Result<(), AdmitError>)> {
        self.admit_inner(txs, true)
    }

    /// Like `admit`, for transactions another validator gossiped: not gossiped again, and
    /// those a committed block has already settled (their nonce is below the signer's)
    /// are dropped unanswered before any signature work: gossip often arrives after the
    /// block that carries it.
    pub fn admit_from_peer(&self, mut txs: Vec<SignedTransaction>) -> Vec<(Hash, Result<(), AdmitError>)> {
        {
            let state = self.state.read();
            txs.retain(|t| t.tx.nonce >= state.nonce(&t.tx.signer));
        }
        self.admit_inner(txs, false)
    }

    fn admit_inner(&self, txs: Vec<SignedTransaction>, gossip: bool) -> Vec<(Hash, Result<(), AdmitError>)> {
        let originals: Vec<SignedTransaction> =
            if gossip && self.gossip.lock().is_some() { txs.clone() } else { Vec::new() };
        // Ids and encoded sizes (one encoding each) on all cores, like the signatures below.
        use rayon::prelude::*;
        let (ids, lens): (Vec<Hash>, Vec<usize>) = if txs.len() < 64 {
            txs.iter().map(|t| t.id_and_len()).unzip()
        } else {
            txs.par_iter().map(|t| t.id_and_len()).unzip()
        };
        if self.shutdown.load(Ordering::SeqCst) {
            return ids.into_iter().map(|id| (id, Err(AdmitError::ShuttingDown))).collect();
        }
        // Replicated mode: a signature this node already verified (the same transaction
        // through another validator, or in a peer's block) is not verified again.
        let checked: Vec<bool> = if self.replicated.lock().is_some() {
            self.verified_mask(ids.iter().zip(txs.iter().map(|t| &t.signature)))
        } else {
            Vec::new()
        };
        let items: Vec<crypto::VerifyItem> =
            txs.iter().zip(&ids).map(|(t, id)| (t.tx.signer, *id, t.signature)).collect();
        let (sig_ok, verified_now) = crypto::verify_par_unchecked(&items, &checked);
        self.count_signature_checks(verified_now);
        // Checks against the committed state, under its read lock only.
        // (id, the verified transaction and its signer's committed nonce, or why not)
        type Checked = (Hash, Result<(Arc<VerifiedTx>, u64), AdmitError>);
        let mut checked: Vec<Checked> = Vec::with_capacity(txs.len());
        let checked_at;
        {
            let state = self.state.read();
            checked_at = state.height;
            let params = &state.params;
            let next_height = state.height.next();
            for (((stx, id), ok), len) in txs.into_iter().zip(ids).zip(sig_ok).zip(lens) {
                checked.push((
                    id,
                    (|| {
                        if len > TX_BYTES_MAX {
                            return Err(TxError::Decode(DecodeError::TooLong { len, max: TX_BYTES_MAX }).into());
                        }
                        stx.tx.check_stateless()?;
                        if !ok {
                            return Err(AdmitError::BadSignature);
                        }
                        let tx = &stx.tx;
                        if tx.chain_id != params.chain_id {
                            let (expected, got) = (params.chain_id.clone(), tx.chain_id.clone());
                            return Err(Inadmissible::WrongChain { expected, got }.into());
                        }
                        if tx.fee < params.fee {
                            return Err(Inadmissible::FeeTooLow { fee: tx.fee, min: params.fee }.into());
                        }
                        if tx.expired_at(next_height) {
                            let expiry_height = tx.expiry_height.unwrap_or(0);
                            return Err(Inadmissible::Expired { expiry_height, height: next_height.0 }.into());
                        }
                        let (spendable, committed) = state
                            .account(&tx.signer)
                            .map_or((primitives::Amount::ZERO, 0), |a| (a.spendable(AssetId::TSR), a.nonce));
                        if spendable < tx.fee {
                            return Err(Inadmissible::CannotPayFee { spendable, fee: tx.fee }.into());
                        }
                        Ok((Arc::new(VerifiedTx { id, stx }), committed))
                    })(),
                ));
            }
        }
        // Then the mempool, under its lock only.
        let replicated = self.replicated.lock().is_some();
        let mut verified: Vec<(Hash, primitives::Signature)> = Vec::new();
        let mut verdicts: Vec<(Hash, Result<(), AdmitError>)> = Vec::with_capacity(checked.len());
        {
            let mut mempool = self.mempool.lock();
            // A block committed since the nonces were read (it also went through
            // `finish_block`, which needs this lock): read them again, or a nonce that
            // block used could be admitted a second time.
            let state = (*self.finished_height.lock() != checked_at).then(|| self.state.read());
            for (id, c) in checked {
                let verdict = c.and_then(|(vtx, committed)| {
                    let committed = state.as_ref().map_or(committed, |s| s.nonce(&vtx.stx.tx.signer));
                    let signature = replicated.then_some(vtx.stx.signature);
                    mempool.insert(vtx, committed)?;
                    if let Some(signature) = signature {
                        verified.push((id, signature));
                    }
                    Ok(())
                });
                verdicts.push((id, verdict));
            }
            if mempool.ready_len() >= self.config.block_txs_max {
                self.wake.notify_one();
            }
            self.metrics.mempool_txs.set(mempool.len() as i64);
        }
        if !verified.is_empty() {
            self.verified.lock().extend(verified);
        }
        if gossip {
            if let Some(hook) = self.gossip.lock().as_ref() {
                let fresh: Vec<SignedTransaction> =
                    verdicts.iter().zip(&originals).filter(|((_, v), _)| v.is_ok()).map(|(_, t)| t.clone()).collect();
                if !fresh.is_empty() {
                    hook(fresh);
                }
            }
        }
        let admitted = verdicts.iter().filter(|(_, v)| v.is_ok()).count() as u64;
        self.metrics.txs_admitted.inc_by(admitted);
        self.metrics.txs_refused.inc_by(verdicts.len() as u64 - admitted);
        verdicts
    }

    pub fn tx_status(&self, id: &Hash) -> Result<TxStatus, StoreError> {
        // The pool first: a transaction leaves it (`finish_block`, `settle_finalized`) only
        // after its block is indexed in `recent` and its drop remembered, so looking in the
        // pool before the index never misses it in between (the other order answered
        // "not found" for a transaction committing at that moment; CI caught it).
        if self.mempool.lock().contains(id) {
            return Ok(TxStatus::Pending);
        }
        let loc = self.recent.read().by_id.get(id).copied();
        let loc = match loc {
            Some(l) => Some(l),
            None => self.checkpoints.tx_location(id)?.map(|(height, index)| TxLocation { height, index }),
        };
        if let Some(loc) = loc {
            if let Some(block) = self.blocks.get(loc.height)? {
                return Ok(TxStatus::Committed(loc, Box::new(block)));
            }
        }
        if let Some(reason) = self.dropped.lock().by_id.get(id) {
            return Ok(TxStatus::Dropped(reason.clone()));
        }
        Ok(TxStatus::Unknown)
    }

    fn run_sequencer(self: Arc<Self>, mut checkpointing: Checkpointing) {
        let interval = Duration::from_millis(self.state.read().params.block_interval_ms);
        let txs_max = self.config.block_txs_max.min(BLOCK_TXS_MAX);
        let mut next_block_at = Instant::now() + interval;
        loop {
            let taken = {
                let mut mempool = self.mempool.lock();
                while !self.shutdown.load(Ordering::SeqCst)
                    && mempool.ready_len() < txs_max
                    && Instant::now() < next_block_at
                {
                    self.wake.wait_until(&mut mempool, next_block_at);
                }
                if self.shutdown.load(Ordering::SeqCst) {
                    break;
                }
                mempool.take_ready(txs_max)
            };
            let started = Instant::now();
            next_block_at = started + interval;
            let committed = self.produce(taken, txs_max, &mut checkpointing.dirty);
            checkpointing.after_block(&self, committed.block.header.height, committed.block.txs.len());
        }
        checkpointing.finish(&self);
    }

    /// Builds, durably writes and commits one block.
    fn produce(&self, taken: Vec<Arc<VerifiedTx>>, txs_max: usize, dirty: &mut Dirty) -> Committed {
        let exec_started = Instant::now();
        let executed = {
            let state = self.state.read();
            let ctx = BlockContext {
                height: state.height.next(),
                parent_hash: state.last_block_hash,
                timestamp_ms: self.now_ms().max(state.last_timestamp_ms),
                proposer: self.proposer,
            };
            // The mempool handed these over; usually we hold the only reference.
            let candidates = taken.into_iter().map(|t| match Arc::try_unwrap(t) {
                Ok(v) => (v.id, v.stx),
                Err(shared) => (shared.id, shared.stx.clone()),
            });
            ledger::propose(&state, ctx, candidates, txs_max)
        };
        let exec = exec_started.elapsed();
        self.metrics.block_execute_seconds.observe(exec.as_secs_f64());
        self.metrics.block_execute_micros.inc_by(exec.as_micros() as u64);
        self.commit_block(executed, dirty, |mempool, committed| {
            mempool.finish_block(
                committed.block.txs.iter().zip(&committed.receipts).map(|(t, r)| (&r.tx_id, &t.tx.signer)),
                committed.dropped.iter().map(|(id, stx, _)| (id, &stx.tx.signer)),
            );
        })
    }

    /// Appends `executed` to the block log (fsynced), then commits it to memory, indexes
    /// it, lets `settle` update the mempool and announces it. Nothing is visible before
    /// the durable write.
    fn commit_block(
        &self,
        executed: ledger::Executed,
        dirty: &mut Dirty,
        settle: impl FnOnce(&mut Mempool, &Committed),
    ) -> Committed {
        let write_started = Instant::now();
        if let Err(e) = self.blocks.append(&executed.block, &executed.receipts) {
            // Nothing was acknowledged for this block; continuing could fork our own log.
            panic!("durable write of block {} failed: {e}", executed.block.header.height);
        }
        self.metrics.block_durable_write_seconds.observe(write_started.elapsed().as_secs_f64());
        dirty.record_write_set(&executed.write_set);
        let committed = self.state.write().commit_owned(executed);
        self.recent.write().insert(committed.block.header.height, &committed.receipts);
        if !committed.dropped.is_empty() {
            let mut dropped = self.dropped.lock();
            for (id, _, reason) in &committed.dropped {
                dropped.remember(*id, reason.clone(), self.config.dropped_remembered_max);
            }
        }
        {
            let mut mempool = self.mempool.lock();
            *self.finished_height.lock() = committed.block.header.height;
            settle(&mut mempool, &committed);
            self.metrics.mempool_txs.set(mempool.len() as i64);
        }
        let header = &committed.block.header;
        self.metrics.height.set(header.height.0 as i64);
        self.metrics.blocks.inc();
        self.metrics.txs_committed.inc_by(committed.block.txs.len() as u64);
        self.metrics.txs_dropped.inc_by(committed.dropped.len() as u64);
        self.metrics.block_txs.observe(committed.block.txs.len() as f64);
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::new(BlockAnnouncement {
                height: header.height,
                hash: committed.block_hash,
                timestamp_ms: header.timestamp_ms,
                state_root: header.state_root,
                receipts: committed.receipts.clone(),
            }));
        }
        committed
    }

    /// Replicated mode: a hook that receives the transactions this node's API admitted,
    /// for gossip to the other validators.
    pub fn set_gossip(&self, gossip: impl Fn(Vec<SignedTransaction>) + Send + Sync + 'static) {
        *self.gossip.lock() = Some(Box::new(gossip));
    }

    /// Replicated mode: for each of `txs` (with its id), whether this node has already
    /// verified exactly its signature (at admission, or in a peer's block), so that
    /// `ledger::verify` need not check it again (`Signatures::Unless`).
    pub fn verified_mask<'a>(&self, txs: impl IntoIterator<Item = (&'a Hash, &'a primitives::Signature)>) -> Vec<bool> {
        let verified = self.verified.lock();
        txs.into_iter().map(|(id, signature)| verified.get(id) == Some(signature)).collect()
    }

    /// Replicated mode: remembers signatures that a peer's block carried and that this
    /// node verified, so that the same transactions arriving later by gossip are not
    /// verified again. Forgotten when a block commits them (or once they are not in
    /// the mempool, as any other entry).
    pub fn remember_verified(&self, verified: impl IntoIterator<Item = (Hash, primitives::Signature)>) {
        if self.replicated.lock().is_some() {
            self.verified.lock().extend(verified);
        }
    }

    /// Signatures this node has checked (admission and blocks), for `/metrics`.
    pub fn count_signature_checks(&self, n: usize) {
        self.metrics.signatures_checked.inc_by(n as u64);
    }

    /// Replicated mode: ready transactions for a proposal built on `parent` (the committed
    /// state or a speculative state above it), oldest first. They stay in the mempool
    /// until a finalized block settles them.
    pub fn proposal_candidates(&self, parent: &State, txs_max: usize) -> Vec<(Hash, SignedTransaction)> {
        let mempool = self.mempool.lock();
        let taken = mempool.peek_ready(txs_max.min(BLOCK_TXS_MAX), |t| t.stx.tx.nonce < parent.nonce(&t.stx.tx.signer));
        drop(mempool);
        taken.into_iter().map(|t| (t.id, t.stx.clone())).collect()
    }

    /// Replicated mode: transactions a proposal on the committed state found inadmissible
    /// (a fee they cannot pay, an expiry passed): their signers' queues leave the mempool,
    /// as the solo sequencer does with what it drops.
    pub fn drop_inadmissible(&self, dropped: &[(Hash, SignedTransaction, Inadmissible)]) {
        if dropped.is_empty() {
            return;
        }
        let mut log = self.dropped.lock();
        for (id, _, reason) in dropped {
            log.remember(*id, reason.clone(), self.config.dropped_remembered_max);
        }
        drop(log);
        self.mempool.lock().purge_signers(dropped.iter().map(|(_, stx, _)| &stx.tx.signer));
    }

    /// Replicated mode: commits a block that consensus finalized, executed on the
    /// committed state (`ledger::verify` or the proposer's own `propose`). Durable before
    /// anything is visible, exactly as in solo mode; the mempool drops every transaction
    /// the block settled, whichever node it came from.
    ///
    /// `None` once the chain is shutting down (nothing is written; the block stays
    /// unacknowledged and consensus delivers it again after the restart).
    pub fn commit_finalized(&self, executed: ledger::Executed) -> Option<Committed> {
        let mut guard = self.replicated.lock();
        let checkpointing = guard.as_mut()?;
        let committed = self.commit_block(executed, &mut checkpointing.dirty, |mempool, committed| {
            let state = self.state.read();
            let signers: BTreeSet<&Address> = committed.block.txs.iter().map(|t| &t.tx.signer).collect();
            mempool.settle_finalized(signers.into_iter().map(|a| (*a, state.nonce(a))));
            let mut verified = self.verified.lock();
            for r in &committed.receipts {
                verified.remove(&r.tx_id);
            }
            if verified.len() > mempool.len() {
                // Entries of transactions the mempool dropped or replaced.
                verified.retain(|id, _| mempool.contains(id));
            }
        });
        checkpointing.after_block(self, committed.block.header.height, committed.block.txs.len());
        Some(committed)
    }

    /// Forgets in-memory index entries that a checkpoint has made durable.
    fn prune_recent(&self) {
        let done = Height(self.checkpointed_height.load(Ordering::SeqCst));
        let mut recent = self.recent.write();
        while recent.by_height.front().is_some_and(|(h, _)| *h <= done) {
            let (_, ids) = recent.by_height.pop_front().expect("checked");
            for id in ids {
                recent.by_id.remove(&id);
            }
        }
    }
}

/// What changed since the last checkpoint: keys only; values are read from the state
/// when the checkpoint is cut, so an account written in many blocks is copied once.
#[derive(Default)]
struct Dirty {
    accounts: HashSet<Address>,
    assets: BTreeSet<AssetId>,
    roles: bool,
    objects: BTreeSet<ledger::ObjKey>,
}

impl Checkpointing {
    /// After block `height` (with `txs` transactions) is committed: cut a checkpoint when
    /// one is due and the checkpointer is free (else keep accumulating).
    fn after_block(&mut self, chain: &Chain, height: Height, txs: usize) {
        self.txs_since_checkpoint += txs;
        if height.0 - self.last_checkpoint.0 >= chain.config.checkpoint_interval_blocks
            || self.txs_since_checkpoint >= chain.config.checkpoint_txs_max
        {
            // Only the committing thread writes the state, so reading it here is consistent.
            let tx_index = chain.recent.read().since(self.indexed_from);
            let (delta, header) = self.dirty.delta(&chain.state.read(), tx_index);
            match self.sender.try_send((delta, header)) {
                Ok(()) => {
                    self.last_checkpoint = height;
                    self.indexed_from = height;
                    self.txs_since_checkpoint = 0;
                    self.dirty = Dirty::default();
                }
                Err(TrySendError::Full((delta, _))) => self.dirty.restore(delta), // busy: keep accumulating
                Err(TrySendError::Disconnected(_)) => panic!("checkpointer thread died"),
            }
        }
        chain.prune_recent();
    }

    /// A final checkpoint so the next start replays little; dropping the sender then
    /// lets the checkpointer thread end.
    fn finish(mut self, chain: &Chain) {
        let tx_index = chain.recent.read().since(self.indexed_from);
        let (delta, header) = self.dirty.delta(&chain.state.read(), tx_index);
        if header.height > self.indexed_from {
            let _ = self.sender.send((delta, header));
        }
    }
}

impl Dirty {
    fn record_write_set(&mut self, ws: &ledger::WriteSet) {
        self.accounts.extend(ws.accounts.iter().map(|(a, _)| *a));
        self.assets.extend(ws.assets.keys().copied());
        self.roles |= ws.roles.is_some();
        self.objects.extend(ws.objects.iter().map(|(k, _)| *k));
    }

    /// Puts back a delta the checkpointer could not take yet.
    fn restore(&mut self, delta: CheckpointDelta) {
        self.accounts.extend(delta.accounts.into_iter().map(|(a, _)| a));
        self.assets.extend(delta.assets.into_keys());
        self.roles |= delta.roles.is_some();
        self.objects.extend(delta.objects.into_keys());
    }

    /// The checkpoint of these keys' current values, with the transaction index of
    /// the blocks it covers (taken from the in-memory recent index).
    fn delta(&mut self, state: &State, tx_index: Vec<(Hash, Height, u32)>) -> (CheckpointDelta, StateHeader) {
        let delta = CheckpointDelta {
            accounts: std::mem::take(&mut self.accounts)
                .into_iter()
                .map(|a| (a, state.accounts.get(&a).cloned()))
                .collect(),
            assets: std::mem::take(&mut self.assets)
                .into_iter()
                .filter_map(|id| state.assets.get(&id).map(|i| (id, i.clone())))
                .collect(),
            roles: std::mem::take(&mut self.roles).then(|| state.roles.clone()),
            objects: std::mem::take(&mut self.objects)
                .into_iter()
                .map(|k| (k, state.objects.get(&k).cloned()))
                .collect(),
            tx_index,
        };
        (delta, StateHeader::of(state))
    }
}

impl RecentIndex {
    /// (id, height, index) of every transaction in blocks above `from`.
    fn since(&self, from: Height) -> Vec<(Hash, Height, u32)> {
        let blocks = self.by_height.iter().filter(|(h, _)| *h > from);
        blocks.flat_map(|(h, ids)| ids.iter().enumerate().map(move |(i, id)| (*id, *h, i as u32))).collect()
    }

    fn insert(&mut self, height: Height, receipts: &[primitives::Receipt]) {
        let mut ids = Vec::with_capacity(receipts.len());
        for (i, r) in receipts.iter().enumerate() {
            self.by_id.insert(r.tx_id, TxLocation { height, index: i as u32 });
            ids.push(r.tx_id);
        }
        self.by_height.push_back((height, ids));
    }
}

impl DroppedLog {
    fn remember(&mut self, id: Hash, reason: Inadmissible, max: usize) {
        if self.by_id.insert(id, reason).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > max {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

/// Re-executes every stored block from genesis, checking signatures, receipts and every
/// root. Returns the final height and state root.
pub fn replay(
    data_dir: &Path,
    genesis: &Genesis,
    mut progress: impl FnMut(Height),
) -> Result<(Height, Hash), ChainError> {
    let blocks = BlockStore::open(data_dir, Some(genesis.hash()))?;
    let mut state = genesis.to_state()?;
    blocks.for_each_from(Height(1), |stored| {
        let height = stored.block.header.height;
        let executed = ledger::verify(&state, &stored.block, Signatures::Check)
            .map_err(|source| ChainError::Replay { height, source })?;
        if executed.receipts != stored.receipts {
            return Err(ChainError::ReceiptMismatch { height });
        }
        state.commit(&executed);
        progress(height);
        Ok(())
    })?;
    state
        .check_invariants()
        .map_err(|what| ChainError::Store(StoreError::Corrupt { path: data_dir.to_path_buf(), what }))?;
    Ok((state.height, state.state_root()))
}
