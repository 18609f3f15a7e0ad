//! The operator's durable memory, one redb file: API keys (hashed), accounts (deposits
//! credited from the chain, spending, today's free quota), usage aggregated per key, day and
//! model, an append-only request log indexed by key, and the chain cursor. Every write is
//! one fsynced transaction of whatever changed since the last one (the meter batches them;
//! see `Meter::flush`), never a write per request.

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::{Address, Amount};
use redb::{Database, Durability, ReadableTable, TableDefinition};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
const ACCOUNTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("accounts");
/// (key id, day since the Unix epoch, model) -> borsh(UsageRow)
const USAGE: TableDefinition<(&str, u32, &str), &[u8]> = TableDefinition::new("usage");
/// (key id, sequence number) -> borsh(RequestRecord)
const REQUESTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("requests");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Largest stored record we accept when reading back (a key with its model list).
const RECORD_BYTES_MAX: usize = 1 << 16;

/// An API key as stored: the secret only as its blake3 hash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    /// The account whose deposits pay for this key's calls.
    pub owner: Address,
    #[serde(skip)]
    pub hash: [u8; 32],
    /// At most this much spent per period (or ever, without a period).
    pub budget: Option<Amount>,
    /// The budget's period in seconds (it resets when a period ends); None: never resets.
    pub period_secs: Option<u64>,
    pub period_start_ms: u64,
    pub period_spent: Amount,
    pub total_spent: Amount,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// Models this key may use; empty: all.
    pub models: Vec<String>,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
}

/// A depositor's money at the gateway, and what it used of today's free quota.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AccountRecord {
    /// Σ TSR transferred to the operator, credited from the chain.
    pub deposited: Amount,
    /// Σ cost of the calls paid from the deposits.
    pub spent: Amount,
    /// The day (since the Unix epoch, UTC) `free_*` count for.
    pub free_day: u32,
    pub free_tokens: u64,
    pub free_requests: u64,
}

/// One key's usage of one model on one day, maintained incrementally.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, serde::Deserialize)]
pub struct UsageRow {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Paid from the owner's deposits.
    pub cost: Amount,
    /// Requests served from the stake-for-access quota, and what the operator paid for them.
    pub free_requests: u64,
    pub sponsored_cost: Amount,
}

/// One served request, as appended to the log.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RequestRecord {
    pub at_ms: u64,
    pub model: String,
    pub provider: Address,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Amount,
    pub free: bool,
}

/// Everything changed since the last write.
#[derive(Default, Debug)]
pub struct Batch {
    pub keys: Vec<KeyRecord>,
    pub accounts: Vec<(Address, AccountRecord)>,
    pub usage: Vec<((String, u32, String), UsageRow)>,
    pub requests: Vec<(String, u64, RequestRecord)>,
    pub meta: Vec<(&'static str, u64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.accounts.is_empty()
            && self.usage.is_empty()
            && self.requests.is_empty()
            && self.meta.is_empty()
    }
}

/// What the store held when opened.
#[derive(Default, Debug)]
pub struct Loaded {
    pub keys: Vec<KeyRecord>,
    pub accounts: BTreeMap<Address, AccountRecord>,
    pub usage: BTreeMap<(String, u32, String), UsageRow>,
    pub meta: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("gateway store at {path}: {what}")]
pub struct StoreError {
    pub path: PathBuf,
    pub what: String,
}

pub struct Store {
    db: Database,
    path: PathBuf,
}

fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, String> {
    primitives::codec::decode(bytes, RECORD_BYTES_MAX).map_err(|e| e.to_string())
}

impl Store {
    /// Opens (or creates) `dir/gateway.redb` and reads back everything but the request log.
    pub fn open(dir: &Path) -> Result<(Store, Loaded), StoreError> {
        let path = dir.join("gateway.redb");
        let fail = |what: String| StoreError { path: path.clone(), what };
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| fail(e.to_string()))?;
        let mut loaded = Loaded::default();
        let mut read = || -> Result<(), String> {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            {
                let keys = txn.open_table(KEYS).map_err(|e| e.to_string())?;
                for item in keys.iter().map_err(|e| e.to_string())? {
                    let (_, v) = item.map_err(|e| e.to_string())?;
                    loaded.keys.push(decode(v.value())?);
                }
                let accounts = txn.open_table(ACCOUNTS).map_err(|e| e.to_string())?;
                for item in accounts.iter().map_err(|e| e.to_string())? {
                    let (k, v) = item.map_err(|e| e.to_string())?;
                    loaded.accounts.insert(Address(*k.value()), decode(v.value())?);
                }
                let usage = txn.open_table(USAGE).map_err(|e| e.to_string())?;
                for item in usage.iter().map_err(|e| e.to_string())? {
                    let (k, v) = item.map_err(|e| e.to_string())?;
                    let (id, day, model) = k.value();
                    loaded.usage.insert((id.to_string(), day, model.to_string()), decode(v.value())?);
                }
                txn.open_table(REQUESTS).map_err(|e| e.to_string())?;
                let meta = txn.open_table(META).map_err(|e| e.to_string())?;
                for item in meta.iter().map_err(|e| e.to_string())? {
                    let (k, v) = item.map_err(|e| e.to_string())?;
                    loaded.meta.insert(k.value().to_string(), v.value());
                }
            }
            txn.commit().map_err(|e| e.to_string())
        };
        read().map_err(fail)?;
        Ok((Store { db, path }, loaded))
    }

    /// Writes the batch in one fsynced transaction.
    pub fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        let write = || -> Result<(), String> {
            let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
            txn.set_durability(Durability::Immediate);
            {
                let mut keys = txn.open_table(KEYS).map_err(|e| e.to_string())?;
                for k in &batch.keys {
                    keys.insert(k.id.as_str(), primitives::codec::encode(k).as_slice()).map_err(|e| e.to_string())?;
                }
                let mut accounts = txn.open_table(ACCOUNTS).map_err(|e| e.to_string())?;
                for (a, r) in &batch.accounts {
                    accounts.insert(&a.0, primitives::codec::encode(r).as_slice()).map_err(|e| e.to_string())?;
                }
                let mut usage = txn.open_table(USAGE).map_err(|e| e.to_string())?;
                for ((id, day, model), row) in &batch.usage {
                    usage
                        .insert((id.as_str(), *day, model.as_str()), primitives::codec::encode(row).as_slice())
                        .map_err(|e| e.to_string())?;
                }
                let mut requests = txn.open_table(REQUESTS).map_err(|e| e.to_string())?;
                for (id, seq, r) in &batch.requests {
                    requests
                        .insert((id.as_str(), *seq), primitives::codec::encode(r).as_slice())
                        .map_err(|e| e.to_string())?;
                }
                let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
                for (k, v) in &batch.meta {
                    meta.insert(*k, *v).map_err(|e| e.to_string())?;
                }
            }
            txn.commit().map_err(|e| e.to_string())
        };
        write().map_err(|what| StoreError { path: self.path.clone(), what })
    }

    /// A key's logged requests with sequence numbers from `from` on, oldest first, at
    /// most `limit`.
    pub fn requests(&self, key: &str, from: u64, limit: usize) -> Result<Vec<(u64, RequestRecord)>, StoreError> {
        let read = || -> Result<Vec<(u64, RequestRecord)>, String> {
            let txn = self.db.begin_read().map_err(|e| e.to_string())?;
            let table = txn.open_table(REQUESTS).map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for item in table.range((key, from)..=(key, u64::MAX)).map_err(|e| e.to_string())? {
                let (k, v) = item.map_err(|e| e.to_string())?;
                out.push((k.value().1, decode(v.value())?));
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        };
        read().map_err(|what| StoreError { path: self.path.clone(), what })
    }
}
