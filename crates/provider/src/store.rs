//! The provider's durable memory: per channel, the best voucher at the current nonce, what
//! has been billed, what earlier claims took, and a claim in flight. One redb file; writes
//! from many concurrent calls are grouped into one fsynced transaction (group commit), and
//! each caller returns only after its write is durable.

use borsh::{BorshDeserialize, BorshSerialize};
use crossbeam_channel::{Receiver, Sender};
use primitives::{Amount, Signature};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// channel id -> borsh(ChannelRecord)
const CHANNELS: TableDefinition<u64, &[u8]> = TableDefinition::new("channels");

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChannelRecord {
    /// The nonce the best voucher is for.
    pub nonce: u64,
    /// The largest voucher accepted at `nonce`, and its signature.
    pub best: Option<(Amount, Signature)>,
    /// Σ cost of every finished call on this channel, ever.
    pub billed: Amount,
    /// Σ of every claim that has landed (earlier nonces).
    pub paid: Amount,
    /// A claim submitted at `nonce` for this amount, not yet seen on chain.
    pub claim_in_flight: Option<Amount>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("voucher store at {path}: {source}")]
    Redb { path: PathBuf, source: redb::Error },
    #[error("voucher store at {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("the voucher store's writer has stopped")]
    Stopped,
}

/// Whom the writer tells that a write is durable: a blocked thread, or an async task
/// (woken directly by the writer thread, with no thread of its own waiting).
enum Done {
    Blocking(Sender<Result<(), String>>),
    Async(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Done {
    fn send(self, result: Result<(), String>) {
        match self {
            Done::Blocking(tx) => drop(tx.send(result)),
            Done::Async(tx) => drop(tx.send(result)),
        }
    }
}

type Write = (Vec<(u64, ChannelRecord)>, Done);

/// Durable per-channel records with group commit.
pub struct VoucherStore {
    path: PathBuf,
    /// `None` only while dropping.
    writes: Option<Sender<Write>>,
    writer: Option<std::thread::JoinHandle<()>>,
    loaded: BTreeMap<u64, ChannelRecord>,
}

impl Drop for VoucherStore {
    /// Stops the writer after the pending writes and closes the file, so the store can be
    /// opened again at once.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn redb_err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb { path: path.to_path_buf(), source: e.into() }
}

impl VoucherStore {
    /// Opens (or creates) `dir/vouchers.redb` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<VoucherStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt { path: dir.to_path_buf(), what: e.to_string() })?;
        let path = dir.join("vouchers.redb");
        let db = Database::create(&path).map_err(|e| redb_err(&path, e))?;
        let mut loaded = BTreeMap::new();
        {
            let txn = db.begin_write().map_err(|e| redb_err(&path, e))?;
            {
                let table = txn.open_table(CHANNELS).map_err(|e| redb_err(&path, e))?;
                for item in table.iter().map_err(|e| redb_err(&path, e))? {
                    let (k, v) = item.map_err(|e| redb_err(&path, e))?;
                    let rec: ChannelRecord = primitives::codec::decode(v.value(), 1 << 12)
                        .map_err(|e| StoreError::Corrupt { path: path.clone(), what: e.to_string() })?;
                    loaded.insert(k.value(), rec);
                }
            }
            txn.commit().map_err(|e| redb_err(&path, e))?;
        }
        let (tx, rx) = crossbeam_channel::unbounded::<Write>();
        let p = path.clone();
        let handle = std::thread::Builder::new()
            .name("voucher-store".into())
            .spawn(move || writer(db, p, rx))
            .map_err(|e| StoreError::Corrupt { path: path.clone(), what: e.to_string() })?;
        Ok(VoucherStore { path, writes: Some(tx), writer: Some(handle), loaded })
    }

    /// What was stored when the store was opened.
    pub fn loaded(&self) -> &BTreeMap<u64, ChannelRecord> {
        &self.loaded
    }

    /// Writes the records durably; returns once they are fsynced (grouped with whatever
    /// other writes are pending).
    pub fn put(&self, records: Vec<(u64, ChannelRecord)>) -> Result<(), StoreError> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.queue(records, Done::Blocking(done_tx))?;
        match done_rx.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(what)) => Err(StoreError::Corrupt { path: self.path.clone(), what }),
            Err(_) => Err(StoreError::Stopped),
        }
    }

    fn queue(&self, records: Vec<(u64, ChannelRecord)>, done: Done) -> Result<(), StoreError> {
        let writes = self.writes.as_ref().ok_or(StoreError::Stopped)?;
        writes.send((records, done)).map_err(|_| StoreError::Stopped)
    }

    /// Nothing to write: a [`Durable`] that is durable already.
    pub fn nothing(&self) -> Durable {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let _ = done_tx.send(Ok(()));
        Durable { rx: done_rx, path: self.path.clone() }
    }

    /// Queues the records for the next group commit and returns at once; `Durable::wait`
    /// returns when they are fsynced. Writes are applied in the order they were queued.
    pub fn put_later(&self, records: Vec<(u64, ChannelRecord)>) -> Result<Durable, StoreError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.queue(records, Done::Async(done_tx))?;
        Ok(Durable { rx: done_rx, path: self.path.clone() })
    }
}

/// A queued write; `wait` until it is durable.
#[derive(Debug)]
#[must_use = "wait for the write to be durable before acknowledging it"]
pub struct Durable {
    rx: tokio::sync::oneshot::Receiver<Result<(), String>>,
    path: PathBuf,
}

impl Durable {
    /// Waits, blocking the thread (not from an async task: use `done` there).
    pub fn wait(self) -> Result<(), StoreError> {
        let path = self.path;
        Self::verdict(path, self.rx.blocking_recv())
    }

    /// Waits without blocking a thread: the writer wakes the task.
    pub async fn done(self) -> Result<(), StoreError> {
        let path = self.path;
        Self::verdict(path, self.rx.await)
    }

    fn verdict(
        path: PathBuf,
        r: Result<Result<(), String>, tokio::sync::oneshot::error::RecvError>,
    ) -> Result<(), StoreError> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(what)) => Err(StoreError::Corrupt { path, what }),
            Err(_) => Err(StoreError::Stopped),
        }
    }
}

/// Takes every pending write, commits them in one transaction, acknowledges them all.
fn writer(db: Database, path: PathBuf, rx: Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = (|| -> Result<(), String> {
            let mut txn = db.begin_write().map_err(|e| e.to_string())?;
            txn.set_durability(Durability::Immediate);
            {
                let mut table = txn.open_table(CHANNELS).map_err(|e| e.to_string())?;
                for (records, _) in &batch {
                    for (id, rec) in records {
                        table.insert(id, primitives::codec::encode(rec).as_slice()).map_err(|e| e.to_string())?;
                    }
                }
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        let result = result.map_err(|e| format!("{}: {e}", path.display()));
        for (_, done) in batch {
            done.send(result.clone());
        }
    }
}
