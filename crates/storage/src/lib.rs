//! Tessera's durable store on redb: the block log and background state checkpoints.
//!
//! Two redb files, so the block writer never waits on a checkpoint:
//! - `blocks.redb`: the log. One write transaction per block, fsynced (redb's
//!   `Durability::Immediate`) before the block is acknowledged. It holds the block and
//!   its receipts, which is everything needed to rebuild the state by re-execution.
//! - `state.redb`: checkpoints. Changed accounts, assets, roles and the transaction
//!   index, written by a background thread every so many blocks. A restart loads the
//!   last checkpoint and re-executes the blocks after it.
//!
//! redb over RocksDB/LMDB/sled: pure Rust (no C++ build), ACID with a single fsync per
//! commit, crash-safe copy-on-write B-trees with checksums, and stable file format.
//!
//! All tables are declared in `tables`.

use borsh::{BorshDeserialize, BorshSerialize};
use ledger::{Account, AssetInfo, ChainParams, LtHash, ObjKey, Object, Roles, State};
use primitives::limits::BLOCK_BYTES_MAX;
use primitives::{codec, Address, AssetId, Block, Hash, Height, Receipt};
use redb::{Database, Durability, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod tables {
    use redb::TableDefinition;
    /// blocks.redb: height -> borsh(StoredBlock)
    pub const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
    /// blocks.redb and state.redb: small named values
    pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    /// state.redb: address -> borsh(Account)
    pub const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("accounts");
    /// state.redb: symbol -> borsh(AssetInfo)
    pub const ASSETS: TableDefinition<&str, &[u8]> = TableDefinition::new("assets");
    /// state.redb: borsh(ObjKey) -> borsh(Object): module records
    pub const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
    /// state.redb: transaction id -> (height, index in block)
    pub const TX_INDEX: TableDefinition<&[u8; 32], (u64, u32)> = TableDefinition::new("tx_index");
}

use tables::*;

const FORMAT_VERSION: &[u8] = b"tessera-store-v1";

/// redb page caches. redb's default (1 GiB each) would hold the whole checkpoint file in
/// memory after a start; the state lives in memory already, and block reads are rare.
const BLOCKS_CACHE_BYTES: usize = 32 * 1024 * 1024;
const STATE_CACHE_BYTES: usize = 64 * 1024 * 1024;

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
    pub accounts: BTreeMap<Address, Option<Account>>,
    pub assets: BTreeMap<AssetId, AssetInfo>,
    pub roles: Option<Roles>,
    /// Module records (`None` = deleted).
    pub objects: BTreeMap<ObjKey, Option<Object>>,
    pub tx_index: Vec<(Hash, Height, u32)>,
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

/// State checkpoints and the transaction index.
pub struct StateStore {
    db: Database,
    path: PathBuf,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        let path = dir.join("state.redb");
        let db = redb::Builder::new().set_cache_size(STATE_CACHE_BYTES).create(&path).at(&path)?;
        let txn = db.begin_write().at(&path)?;
        txn.open_table(META).at(&path)?;
        txn.open_table(ACCOUNTS).at(&path)?;
        txn.open_table(ASSETS).at(&path)?;
        txn.open_table(OBJECTS).at(&path)?;
        txn.open_table(TX_INDEX).at(&path)?;
        txn.commit().at(&path)?;
        Ok(StateStore { db, path })
    }

    fn corrupt(&self, what: &str) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what: what.to_string() }
    }

    /// Writes one checkpoint atomically. `state_header` is the state the delta leads to
    /// (only its small fields are read).
    pub fn write_checkpoint(&self, delta: &CheckpointDelta, header: &StateHeader) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().at(&self.path)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut accounts = txn.open_table(ACCOUNTS).at(&self.path)?;
            for (addr, acct) in &delta.accounts {
                match acct {
                    Some(a) => {
                        accounts.insert(addr.as_bytes(), codec::encode(a).as_slice()).at(&self.path)?;
                    }
                    None => {
                        accounts.remove(addr.as_bytes()).at(&self.path)?;
                    }
                }
            }
            let mut assets = txn.open_table(ASSETS).at(&self.path)?;
            for (id, info) in &delta.assets {
                assets.insert(id.as_str(), codec::encode(info).as_slice()).at(&self.path)?;
            }
            let mut objects = txn.open_table(OBJECTS).at(&self.path)?;
            for (key, object) in &delta.objects {
                let key = codec::encode(key);
                match object {
                    Some(o) => {
                        objects.insert(key.as_slice(), codec::encode(o).as_slice()).at(&self.path)?;
                    }
                    None => {
                        objects.remove(key.as_slice()).at(&self.path)?;
                    }
                }
            }
            let mut index = txn.open_table(TX_INDEX).at(&self.path)?;
            let mut sorted: Vec<&(Hash, Height, u32)> = delta.tx_index.iter().collect();
            sorted.sort_unstable_by_key(|(id, _, _)| *id);
            for (id, height, i) in sorted {
                index.insert(id.as_bytes(), (height.0, *i)).at(&self.path)?;
            }
            let meta_value = CheckpointMeta {
                height: header.height,
                last_block_hash: header.last_block_hash,
                last_timestamp_ms: header.last_timestamp_ms,
                params: header.params.clone(),
                roles: header.roles.clone(),
                lthash: header.lthash.to_bytes(),
            };
            let mut meta = txn.open_table(META).at(&self.path)?;
            meta.insert("format", FORMAT_VERSION).at(&self.path)?;
            meta.insert("checkpoint", codec::encode(&meta_value).as_slice()).at(&self.path)?;
        }
        txn.commit().at(&self.path)?;
        Ok(())
    }

    /// Height of the last checkpoint, if any.
    pub fn checkpoint_height(&self) -> Result<Option<Height>, StoreError> {
        Ok(self.meta()?.map(|m| m.height))
    }

    fn meta(&self) -> Result<Option<CheckpointMeta>, StoreError> {
        let txn = self.db.begin_read().at(&self.path)?;
        let meta = txn.open_table(META).at(&self.path)?;
        let Some(v) = meta.get("checkpoint").at(&self.path)? else {
            return Ok(None);
        };
        codec::decode(v.value(), 1 << 20).map(Some).map_err(|err| self.corrupt(&format!("checkpoint meta: {err}")))
    }

    /// Loads the checkpointed state, or `None` if no checkpoint was ever written.
    pub fn load(&self) -> Result<Option<State>, StoreError> {
        let Some(meta) = self.meta()? else {
            return Ok(None);
        };
        let txn = self.db.begin_read().at(&self.path)?;
        let mut accounts = ledger::AccountMap::default();
        for item in txn.open_table(ACCOUNTS).at(&self.path)?.iter().at(&self.path)? {
            let (k, v) = item.at(&self.path)?;
            let acct: Account =
                codec::decode(v.value(), 1 << 20).map_err(|err| self.corrupt(&format!("account: {err}")))?;
            accounts.insert(Address(*k.value()), acct);
        }
        let mut assets = BTreeMap::new();
        for item in txn.open_table(ASSETS).at(&self.path)?.iter().at(&self.path)? {
            let (_, v) = item.at(&self.path)?;
            let info: AssetInfo =
                codec::decode(v.value(), 1 << 16).map_err(|err| self.corrupt(&format!("asset: {err}")))?;
            assets.insert(info.symbol, info);
        }
        let mut objects = BTreeMap::new();
        for item in txn.open_table(OBJECTS).at(&self.path)?.iter().at(&self.path)? {
            let (k, v) = item.at(&self.path)?;
            let key: ObjKey =
                codec::decode(k.value(), 1 << 10).map_err(|err| self.corrupt(&format!("object key: {err}")))?;
            let object: Object =
                codec::decode(v.value(), 1 << 20).map_err(|err| self.corrupt(&format!("object: {err}")))?;
            objects.insert(key, object);
        }
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

    /// Where a checkpointed transaction was included.
    pub fn tx_location(&self, id: &Hash) -> Result<Option<(Height, u32)>, StoreError> {
        let txn = self.db.begin_read().at(&self.path)?;
        let index = txn.open_table(TX_INDEX).at(&self.path)?;
        Ok(index.get(id.as_bytes()).at(&self.path)?.map(|v| {
            let (h, i) = v.value();
            (Height(h), i)
        }))
    }
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
