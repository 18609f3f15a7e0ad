//! Tessera's durable store: the block log, background state checkpoints and the
//! transaction index.
//!
//! - `blocks.redb`: the log. One write transaction per block, fsynced (redb's
//!   `Durability::Immediate`) before the block is acknowledged. It holds the block and
//!   its receipts, which is everything needed to rebuild the state by re-execution.
//! - `checkpoint/`: state checkpoints and the transaction index of checkpointed blocks,
//!   as snapshot files (sorted runs committed by a manifest; see `snapshot`), written
//!   by a background thread every so many blocks. A restart loads the last checkpoint
//!   and re-executes the blocks after it.
//!
//! redb over RocksDB/LMDB/sled for the log: pure Rust (no C++ build), ACID with a single
//! fsync per commit, crash-safe copy-on-write B-trees with checksums, and a stable file
//! format. The state and the index are not kept in B-trees: the state lives in memory
//! and a checkpoint only has to write what changed, and a B-tree update per changed
//! account or new transaction (about 2 µs each in redb here) made each checkpoint of a
//! million transfers cost four seconds of a core that signature checks need; sorted
//! sequential runs cost a tenth of that.
//!
//! All redb tables are declared in `tables`.

use borsh::{BorshDeserialize, BorshSerialize};
use ledger::{Account, AssetInfo, ChainParams, LtHash, ObjKey, Object, Roles, State};
use primitives::limits::BLOCK_BYTES_MAX;
use primitives::{codec, Address, AssetId, Block, Hash, Height, Receipt};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata};
use snapshot::{Manifest, RunReader, RunRef, RunWriter, TABLE_ACCOUNT, TABLE_ASSET, TABLE_OBJECT};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

mod snapshot;

pub mod tables {
    use redb::TableDefinition;
    /// blocks.redb: height -> borsh(StoredBlock)
    pub const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
    /// blocks.redb: small named values
    pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
}

use tables::*;

const FORMAT_VERSION: &[u8] = b"tessera-store-v1";

/// redb's page cache for the block log. redb's default (1 GiB) is far more than block
/// reads, which are rare, need.
const BLOCKS_CACHE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Redb { path: PathBuf, source: redb::Error },
    #[error("store at {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("data dir belongs to genesis {stored}, not {given}")]
    GenesisMismatch { stored: Hash, given: Hash },
    #[error("{path} holds no chain yet; a genesis file is needed to start one")]
    NoChain { path: PathBuf },
    #[error("checkpoint files at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("block {got} appended after {tip}")]
    OutOfOrder { tip: u64, got: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StoredBlock {
    pub block: Block,
    pub receipts: Vec<Receipt>,
}

/// Attaches the file's path to any redb error.
trait AtPath<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> AtPath<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Redb { path: path.to_path_buf(), source: e.into() })
    }
}

/// The block log.
pub struct BlockStore {
    db: Database,
    path: PathBuf,
    genesis_hash: Hash,
}

impl BlockStore {
    /// Opens (or creates) `dir/blocks.redb` for the chain with `genesis_hash`. With
    /// `None`, the data dir must already belong to a chain, whose genesis hash is used.
    pub fn open(dir: &Path, genesis_hash: Option<Hash>) -> Result<BlockStore, StoreError> {
        let path = dir.join("blocks.redb");
        let db = redb::Builder::new().set_cache_size(BLOCKS_CACHE_BYTES).create(&path).at(&path)?;
        let mut store = BlockStore { db, path: path.clone(), genesis_hash: Hash::ZERO };
        let txn = store.db.begin_write().at(&path)?;
        {
            let mut meta = txn.open_table(META).at(&path)?;
            let stored = meta.get("genesis_hash").at(&path)?.map(|v| v.value().to_vec());
            store.genesis_hash = match (stored, genesis_hash) {
                (Some(bytes), given) => {
                    let stored = Hash(bytes.try_into().map_err(|_| store.corrupt("genesis hash length"))?);
                    if let Some(given) = given.filter(|g| *g != stored) {
                        return Err(StoreError::GenesisMismatch { stored, given });
                    }
                    stored
                }
                (None, Some(given)) => {
                    meta.insert("format", FORMAT_VERSION).at(&path)?;
                    meta.insert("genesis_hash", given.0.as_slice()).at(&path)?;
                    given
                }
                (None, None) => return Err(StoreError::NoChain { path: dir.to_path_buf() }),
            };
            txn.open_table(BLOCKS).at(&path)?;
        }
        txn.commit().at(&path)?;
        Ok(store)
    }

    /// The genesis hash this block log belongs to.
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what: what.to_string() }
    }

    /// Appends the next block durably: returns only after the write is fsynced. The
    /// stored value is the encoding of `StoredBlock { block, receipts }`.
    pub fn append(&self, block: &Block, receipts: &[Receipt]) -> Result<(), StoreError> {
        let height = block.header.height.0;
        let tx_bytes_estimate = 256;
        let mut bytes = Vec::with_capacity(1024 + block.txs.len() * tx_bytes_estimate + receipts.len() * 64);
        borsh::to_writer(&mut bytes, block).expect("encoding into a Vec cannot fail");
        borsh::to_writer(&mut bytes, receipts).expect("encoding into a Vec cannot fail");
        let mut txn = self.db.begin_write().at(&self.path)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut blocks = txn.open_table(BLOCKS).at(&self.path)?;
            let tip = blocks.last().at(&self.path)?.map_or(0, |(k, _)| k.value());
            if height != tip + 1 {
                return Err(StoreError::OutOfOrder { tip, got: height });
            }
            blocks.insert(height, bytes.as_slice()).at(&self.path)?;
        }
        txn.commit().at(&self.path)?;
        Ok(())
    }

    /// Height of the last durable block (0 when only genesis exists).
    pub fn tip(&self) -> Result<Height, StoreError> {
        let txn = self.db.begin_read().at(&self.path)?;
        let blocks = txn.open_table(BLOCKS).at(&self.path)?;
        let tip = blocks.last().at(&self.path)?.map_or(0, |(k, _)| k.value());
        Ok(Height(tip))
    }

    pub fn get(&self, height: Height) -> Result<Option<StoredBlock>, StoreError> {
        let txn = self.db.begin_read().at(&self.path)?;
        let blocks = txn.open_table(BLOCKS).at(&self.path)?;
        let Some(v) = blocks.get(height.0).at(&self.path)? else {
            return Ok(None);
        };
        self.decode(v.value()).map(Some)
    }

    fn decode(&self, bytes: &[u8]) -> Result<StoredBlock, StoreError> {
        codec::decode(bytes, BLOCK_BYTES_MAX * 2).map_err(|err| self.corrupt(&format!("block: {err}")))
    }

    /// Calls `f` on every block from `from` upwards, in order, from one read snapshot.
    pub fn for_each_from<E: From<StoreError>>(
        &self,
        from: Height,
        mut f: impl FnMut(StoredBlock) -> Result<(), E>,
    ) -> Result<(), E> {
        let txn = self.db.begin_read().at(&self.path)?;
        let blocks = txn.open_table(BLOCKS).at(&self.path)?;
        for (expected, item) in (from.0..).zip(blocks.range(from.0..).at(&self.path)?) {
            let (k, v) = item.at(&self.path)?;
            if k.value() != expected {
                return Err(self.corrupt(&format!("gap in block log at {expected}")).into());
            }
            f(self.decode(v.value())?)?;
        }
        Ok(())
    }

    /// Calls `f` on every stored block with a height in `from..=to`, in order.
    pub fn for_each_in<E: From<StoreError>>(
        &self,
        from: Height,
        to: Height,
        mut f: impl FnMut(StoredBlock) -> Result<(), E>,
    ) -> Result<(), E> {
        let txn = self.db.begin_read().at(&self.path)?;
        let blocks = txn.open_table(BLOCKS).at(&self.path)?;
        for item in blocks.range(from.0..=to.0).at(&self.path)? {
            let (_, v) = item.at(&self.path)?;
            f(self.decode(v.value())?)?;
        }
        Ok(())
    }

    pub fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().at(&self.path)?;
        txn.open_table(BLOCKS).at(&self.path)?.len().at(&self.path)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// What a checkpoint writes: the changes since the previous checkpoint, and the state's
/// header fields at `height`.
#[derive(Debug, Default)]
pub struct CheckpointDelta {
    /// Changed accounts (`None` = removed), in any order; for an address listed more
    /// than once the last entry wins. A `Vec`, not a map, so that cutting a checkpoint
    /// on the block producer's thread costs a copy, not a sort.
    pub accounts: Vec<(Address, Option<Account>)>,
    pub assets: BTreeMap<AssetId, AssetInfo>,
    pub roles: Option<Roles>,
    /// Module records (`None` = deleted).
    pub objects: BTreeMap<ObjKey, Option<Object>>,
    pub tx_index: Vec<(Hash, Height, u32)>,
}

impl CheckpointDelta {
    /// Folds a newer delta into this one (a checkpoint that failed is retried as part
    /// of the next, so no change is ever skipped).
    pub fn absorb(&mut self, newer: CheckpointDelta) {
        self.accounts.extend(newer.accounts);
        self.assets.extend(newer.assets);
        if newer.roles.is_some() {
            self.roles = newer.roles;
        }
        self.objects.extend(newer.objects);
        self.tx_index.extend(newer.tx_index);
    }
}

#[derive(Debug, Clone, BorshSerialize, BorshDeserialize)]
struct CheckpointMeta {
    height: Height,
    last_block_hash: Hash,
    last_timestamp_ms: u64,
    params: ChainParams,
    roles: Roles,
    lthash: Vec<u8>,
}

/// Decodes arbitrary bytes as a checkpoint manifest and as a snapshot run (records
/// applied to an empty state), for the fuzz target `decode_checkpoint`: every input must
/// give a value or an error, never a panic or an unbounded allocation.
#[doc(hidden)]
pub fn fuzz_decode_checkpoint(manifest: &[u8], run: &[u8]) -> Result<usize, StoreError> {
    let bad = |e: std::io::Error| StoreError::Io { path: PathBuf::from("<fuzz>"), source: e };
    let _ = snapshot::decode_manifest::<CheckpointMeta>(manifest);
    let store = StateStore {
        snapshot_dir: PathBuf::from("<fuzz>"),
        manifest: Mutex::new(None),
        writer: Mutex::new(()),
        files: RwLock::new(()),
    };
    // Claim as many records as bytes: the reader must stop at the end with an error.
    let claimed = RunRef { file: "<fuzz>".into(), records: run.len() as u64, bytes: run.len() as u64, hash: [0; 32] };
    let mut reader = RunReader::new(run, &claimed);
    let (mut accounts, mut assets, mut objects) = (ledger::AccountMap::default(), BTreeMap::new(), BTreeMap::new());
    let mut rec = snapshot::Record::default();
    while reader.next_into(&mut rec).map_err(bad)? {
        store.load_record(&rec, &mut accounts, &mut assets, &mut objects)?;
    }
    Ok(accounts.len() + assets.len() + objects.len())
}

/// Whether `dir` holds a committed state checkpoint (a chain that has started), so a
/// restart needs no genesis file.
pub fn has_checkpoint(dir: &Path) -> bool {
    dir.join("checkpoint").join("MANIFEST").exists()
}

/// State checkpoints and the transaction index, as snapshot files (see `snapshot`).
pub struct StateStore {
    /// `DIR/checkpoint`: the runs and their manifest.
    snapshot_dir: PathBuf,
    /// The last committed manifest; lookups copy its index runs' names.
    manifest: Mutex<Option<Manifest<CheckpointMeta>>>,
    /// Held for the whole of a checkpoint write (one at a time), not the manifest
    /// lock, so that lookups never wait for a checkpoint's I/O.
    writer: Mutex<()>,
    /// Lookups read run files under the read side; a checkpoint deletes the files its
    /// manifest no longer names under the write side, after the manifest switched, so a
    /// lookup never finds a file of the manifest it copied gone.
    files: RwLock<()>,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        let snapshot_dir = dir.join("checkpoint");
        let io = |e: std::io::Error| StoreError::Io { path: snapshot_dir.clone(), source: e };
        // Before snapshot files, checkpoints and the index were B-trees in state.redb.
        // Such a data dir has no manifest, so it starts over from genesis and replays
        // (and re-indexes) its blocks; the old file goes.
        let old = dir.join("state.redb");
        if old.exists() {
            std::fs::remove_file(&old).map_err(|e| StoreError::Io { path: old.clone(), source: e })?;
        }
        std::fs::create_dir_all(&snapshot_dir).map_err(io)?;
        let manifest = snapshot::read_manifest::<CheckpointMeta>(&snapshot_dir).map_err(io)?;
        // Leftovers of a checkpoint interrupted before its manifest was committed.
        let named: Vec<&RunRef> = manifest.iter().flat_map(|m| m.runs.iter().chain(&m.index_runs)).collect();
        snapshot::remove_unnamed(&snapshot_dir, named.into_iter()).map_err(io)?;
        Ok(StateStore { snapshot_dir, manifest: Mutex::new(manifest), writer: Mutex::new(()), files: RwLock::new(()) })
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io { path: self.snapshot_dir.clone(), source }
    }

    fn current(&self) -> Option<Manifest<CheckpointMeta>> {
        self.manifest.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes one checkpoint atomically: the state's delta run and the transaction
    /// index's run (each merged with older runs when due), committed together by the
    /// manifest. `header` is the state the delta leads to.
    pub fn write_checkpoint(&self, delta: &CheckpointDelta, header: &StateHeader) -> Result<(), StoreError> {
        let _writing = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let meta = CheckpointMeta {
            height: header.height,
            last_block_hash: header.last_block_hash,
            last_timestamp_ms: header.last_timestamp_ms,
            params: header.params.clone(),
            roles: delta.roles.clone().unwrap_or_else(|| header.roles.clone()),
            lthash: header.lthash.to_bytes(),
        };
        let mut manifest = self.current().unwrap_or_else(|| snapshot::new_manifest(meta.clone()));
        manifest.meta = meta;
        let dir = &self.snapshot_dir;
        let run = self.write_delta(delta, manifest.run_name()).map_err(|e| self.io(e))?;
        manifest.runs.push(run);
        if manifest.merge_due() {
            let name = manifest.run_name();
            let merged = snapshot::merge(dir, &manifest.runs, name).map_err(|e| self.io(e))?;
            manifest.runs = vec![merged];
        }
        if !delta.tx_index.is_empty() {
            let entries = sorted_index(&delta.tx_index);
            let name = manifest.index_run_name();
            let run = snapshot::write_index_run(dir, name, &entries).map_err(|e| self.io(e))?;
            manifest.index_runs.push(run);
            snapshot::merge_index_runs(dir, &mut manifest).map_err(|e| self.io(e))?;
        }
        snapshot::commit_manifest(dir, &manifest).map_err(|e| self.io(e))?;
        // Lookups switch to the new runs before the old ones are deleted.
        let named: Vec<RunRef> = manifest.runs.iter().chain(&manifest.index_runs).cloned().collect();
        *self.manifest.lock().unwrap_or_else(|e| e.into_inner()) = Some(manifest);
        let _deleting = self.files.write().unwrap_or_else(|e| e.into_inner());
        snapshot::remove_unnamed(dir, named.iter()).map_err(|e| self.io(e))?;
        Ok(())
    }

    /// One delta run: accounts (sorted here, the last entry per address winning), then
    /// assets and module records, each by its encoded key.
    fn write_delta(&self, delta: &CheckpointDelta, file: String) -> std::io::Result<snapshot::RunRef> {
        let mut out = RunWriter::create(&self.snapshot_dir, file)?;
        // Encoded in the order given (memory read sequentially, which matters: sorting
        // first and then encoding chased a pointer per account across the heap at random,
        // three times the cost), then sorted by (address as two big-endian integers,
        // position): integer compares instead of 32-byte memcmp, and for an address
        // listed twice the later entry comes last and wins.
        let mut values = Vec::with_capacity(delta.accounts.len() * 64);
        let mut order: Vec<(u128, u128, usize, usize, usize)> = Vec::with_capacity(delta.accounts.len());
        for (i, (addr, acct)) in delta.accounts.iter().enumerate() {
            let start = values.len();
            let end = match acct {
                Some(a) => {
                    borsh::to_writer(&mut values, a).expect("encoding into a Vec cannot fail");
                    values.len()
                }
                None => usize::MAX, // deleted
            };
            let (hi, lo) = sort_key(&addr.0);
            order.push((hi, lo, i, start, end));
        }
        order.sort_unstable();
        for (j, &(hi, lo, _, start, end)) in order.iter().enumerate() {
            if order.get(j + 1).is_some_and(|&(h, l, ..)| (h, l) == (hi, lo)) {
                continue; // a later entry for this address follows
            }
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(&hi.to_be_bytes());
            key[16..].copy_from_slice(&lo.to_be_bytes());
            out.push(TABLE_ACCOUNT, &key, (end != usize::MAX).then(|| &values[start..end]))?;
        }
        let mut assets: Vec<(Vec<u8>, Vec<u8>)> =
            delta.assets.iter().map(|(id, info)| (codec::encode(id), codec::encode(info))).collect();
        assets.sort();
        for (k, v) in &assets {
            out.push(TABLE_ASSET, k, Some(v))?;
        }
        let mut objects: Vec<(Vec<u8>, Option<Vec<u8>>)> =
            delta.objects.iter().map(|(k, o)| (codec::encode(k), o.as_ref().map(codec::encode))).collect();
        objects.sort();
        for (k, v) in &objects {
            out.push(TABLE_OBJECT, k, v.as_deref())?;
        }
        out.finish()
    }

    /// Height of the last checkpoint, if any.
    pub fn checkpoint_height(&self) -> Result<Option<Height>, StoreError> {
        let guard = self.manifest.lock().unwrap_or_else(|e| e.into_inner());
        Ok(guard.as_ref().map(|m| m.meta.height))
    }

    /// Loads the checkpointed state, or `None` if no checkpoint was ever written.
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        let _reading = self.files.read().unwrap_or_else(|e| e.into_inner());
        let Some(manifest) = self.manifest.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(None);
        };
        let mut accounts = ledger::AccountMap::default();
        let mut assets = BTreeMap::new();
        let mut objects = BTreeMap::new();
        let mut rec = snapshot::Record::default();
        for run in &manifest.runs {
            let mut reader = RunReader::open(&self.snapshot_dir, run).map_err(|e| self.io(e))?;
            while reader.next_into(&mut rec).map_err(|e| self.io(e))? {
                self.load_record(&rec, &mut accounts, &mut assets, &mut objects)?;
            }
        }
        let meta = manifest.meta;
        let lthash = LtHash::from_bytes(&meta.lthash).ok_or_else(|| self.corrupt("lattice hash length"))?;
        Ok(Some(State {
            params: meta.params,
            roles: meta.roles,
            accounts,
            assets,
            objects,
            height: meta.height,
            last_block_hash: meta.last_block_hash,
            last_timestamp_ms: meta.last_timestamp_ms,
            lthash,
        }))
    }

    fn load_record(
        &self,
        rec: &snapshot::Record,
        accounts: &mut ledger::AccountMap,
        assets: &mut BTreeMap<AssetId, AssetInfo>,
        objects: &mut BTreeMap<ObjKey, Object>,
    ) -> Result<(), StoreError> {
        let bad = |what: &str, err: &dyn std::fmt::Display| self.corrupt(&format!("{what}: {err}"));
        match rec.table {
            TABLE_ACCOUNT => {
                let addr = Address(rec.key.as_slice().try_into().map_err(|_| self.corrupt("account key length"))?);
                match &rec.value {
                    Some(v) => {
                        let acct: Account = codec::decode(v, 1 << 20).map_err(|e| bad("account", &e))?;
                        accounts.insert(addr, acct);
                    }
                    None => {
                        accounts.remove(&addr);
                    }
                }
            }
            TABLE_ASSET => {
                let v = rec.value.as_ref().ok_or_else(|| self.corrupt("asset deleted"))?;
                let info: AssetInfo = codec::decode(v, 1 << 16).map_err(|e| bad("asset", &e))?;
                assets.insert(info.symbol, info);
            }
            TABLE_OBJECT => {
                let key: ObjKey = codec::decode(&rec.key, 1 << 10).map_err(|e| bad("object key", &e))?;
                match &rec.value {
                    Some(v) => {
                        let object: Object = codec::decode(v, 1 << 20).map_err(|e| bad("object", &e))?;
                        objects.insert(key, object);
                    }
                    None => {
                        objects.remove(&key);
                    }
                }
            }
            t => return Err(self.corrupt(&format!("snapshot table {t}"))),
        }
        Ok(())
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt { path: self.snapshot_dir.clone(), what: what.to_string() }
    }

    /// Where a checkpointed transaction was included: a binary search in each index
    /// run, newest first.
    pub fn tx_location(&self, id: &Hash) -> Result<Option<(Height, u32)>, StoreError> {
        // Under the read side: the runs of the manifest copied here stay until it is done.
        let _reading = self.files.read().unwrap_or_else(|e| e.into_inner());
        let runs = self.manifest.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|m| m.index_runs.clone());
        for run in runs.iter().flatten().rev() {
            if let Some((h, i)) =
                snapshot::find_in_index_run(&self.snapshot_dir, run, id.as_bytes()).map_err(|e| self.io(e))?
            {
                return Ok(Some((Height(h), i)));
            }
        }
        Ok(None)
    }
}

/// A 32-byte key as two big-endian integers: sorts like the bytes, compares without memcmp.
fn sort_key(key: &[u8; 32]) -> (u128, u128) {
    let (hi, lo) = key.split_at(16);
    (u128::from_be_bytes(hi.try_into().expect("16 bytes")), u128::from_be_bytes(lo.try_into().expect("16 bytes")))
}

/// Index entries sorted by id, one per id (the last given wins; a block re-indexed
/// after a restart gives the same location).
fn sorted_index(tx_index: &[(Hash, Height, u32)]) -> Vec<snapshot::IndexEntry> {
    let mut order: Vec<(u128, u128, usize)> = tx_index
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| {
            let (hi, lo) = sort_key(&id.0);
            (hi, lo, i)
        })
        .collect();
    order.sort_unstable();
    let mut out = Vec::with_capacity(order.len());
    for (j, &(hi, lo, i)) in order.iter().enumerate() {
        if order.get(j + 1).is_some_and(|&(h, l, _)| (h, l) == (hi, lo)) {
            continue;
        }
        let (id, height, index) = &tx_index[i];
        out.push((id.0, height.0, *index));
    }
    out
}

/// The small fields of a state that a checkpoint records beside the delta.
#[derive(Debug, Clone)]
pub struct StateHeader {
    pub height: Height,
    pub last_block_hash: Hash,
    pub last_timestamp_ms: u64,
    pub params: ChainParams,
    pub roles: Roles,
    pub lthash: LtHash,
}

impl StateHeader {
    pub fn of(state: &State) -> StateHeader {
        StateHeader {
            height: state.height,
            last_block_hash: state.last_block_hash,
            last_timestamp_ms: state.last_timestamp_ms,
            params: state.params.clone(),
            roles: state.roles.clone(),
            lthash: state.lthash.clone(),
        }
    }
}
