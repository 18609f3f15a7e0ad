//! The operator's meter: API keys, balances, budgets, rate limits and stake-for-access
//! quotas, all in memory under one lock, made durable in batches.
//!
//! A request *reserves* its worst case before it is dispatched (the key's rpm and tpm, the
//! key's budget, the owner's balance or free quota) and *settles* to what it actually cost
//! afterwards, each step under the one lock, so concurrent requests can never spend more
//! than a budget or a balance: the sum of what is spent and what is reserved never exceeds
//! it. Reservations live in memory only: after a crash nothing is held, so nothing wedges.
//!
//! Durability: every change marks its record dirty and wakes the writer, which writes all
//! dirty records in one fsynced transaction (group commit), so there is never a write per
//! request. A crash loses at most the spending of the requests settled during the write in
//! progress. Administrative changes (keys, deposits) are durable before they are
//! acknowledged.

use super::store::{AccountRecord, Batch, KeyRecord, Loaded, RequestRecord, Store, StoreError, UsageRow};
use openai::ApiError;
use parking_lot::Mutex;
use primitives::{Address, Amount};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: i128 = 60_000;

/// Milliseconds since the Unix epoch; injected so tests can move time.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64))
}

/// A stake-for-access tier: holders with at least `min_stake` TSR staked (their
/// delegations' value) get this much free use per UTC day. A limit left out is unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessTier {
    /// TSR base units.
    pub min_stake: Amount,
    #[serde(default)]
    pub daily_tokens: Option<u64>,
    #[serde(default)]
    pub daily_requests: Option<u64>,
}

/// A token bucket refilled continuously at `per_min` a minute, in exact integers (the level
/// is kept in units of 1/60000).
#[derive(Clone, Debug)]
struct Bucket {
    per_min: u64,
    level: i128,
    at_ms: u64,
}

impl Bucket {
    fn new(per_min: u64, now: u64) -> Bucket {
        Bucket { per_min, level: i128::from(per_min) * MINUTE_MS, at_ms: now }
    }

    fn refill(&mut self, now: u64) {
        let dt = i128::from(now.saturating_sub(self.at_ms));
        self.level = (self.level + dt * i128::from(self.per_min)).min(i128::from(self.per_min) * MINUTE_MS);
        self.at_ms = self.at_ms.max(now);
    }

    /// Ok, or the milliseconds until `n` fit.
    fn check(&mut self, n: u64, now: u64) -> Result<(), u64> {
        self.refill(now);
        let need = i128::from(n) * MINUTE_MS;
        if self.level >= need {
            Ok(())
        } else if self.per_min == 0 {
            Err(u64::MAX)
        } else {
            let short = need - self.level;
            let per = i128::from(self.per_min);
            Err(u64::try_from((short + per - 1) / per).unwrap_or(u64::MAX))
        }
    }

    /// Takes `n` (negative: gives back), never above a full bucket.
    fn take(&mut self, n: i128) {
        self.level = (self.level - n * MINUTE_MS).min(i128::from(self.per_min) * MINUTE_MS);
    }

    fn remaining(&self) -> u64 {
        u64::try_from(self.level.max(0) / MINUTE_MS).unwrap_or(0)
    }
}

struct KeyState {
    rec: KeyRecord,
    reserved: u128,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
}

#[derive(Default)]
struct AccountState {
    rec: AccountRecord,
    reserved: u128,
    free_reserved_tokens: u64,
    free_reserved_requests: u64,
}

impl AccountState {
    fn balance(&self) -> u128 {
        self.rec.deposited.0.saturating_sub(self.rec.spent.0).saturating_sub(self.reserved)
    }

    fn roll_day(&mut self, day: u32) -> bool {
        if self.rec.free_day != day {
            self.rec.free_day = day;
            self.rec.free_tokens = 0;
            self.rec.free_requests = 0;
            return true;
        }
        false
    }
}

type UsageKey = (String, u32, String);

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyState>,
    accounts: BTreeMap<Address, AccountState>,
    usage: BTreeMap<UsageKey, UsageRow>,
    log: Vec<(String, u64, RequestRecord)>,
    next_seq: u64,
    cursor: u64,
    dirty_keys: BTreeSet<String>,
    dirty_accounts: BTreeSet<Address>,
    dirty_usage: BTreeSet<UsageKey>,
    dirty_meta: bool,
}

impl State {
    fn take_batch(&mut self) -> Batch {
        let keys = std::mem::take(&mut self.dirty_keys);
        let accounts = std::mem::take(&mut self.dirty_accounts);
        let usage = std::mem::take(&mut self.dirty_usage);
        let mut batch = Batch {
            keys: keys.iter().filter_map(|id| self.keys.get(id)).map(|k| k.rec.clone()).collect(),
            accounts: accounts.iter().filter_map(|a| self.accounts.get(a).map(|s| (*a, s.rec.clone()))).collect(),
            usage: usage.into_iter().filter_map(|k| self.usage.get(&k).cloned().map(|r| (k, r))).collect(),
            requests: std::mem::take(&mut self.log),
            meta: Vec::new(),
        };
        if std::mem::take(&mut self.dirty_meta) {
            batch.meta = vec![("cursor", self.cursor), ("next_seq", self.next_seq)];
        }
        batch
    }

    /// Puts a batch that failed to write back, so the next write retries it.
    fn restore(&mut self, batch: Batch) {
        self.dirty_keys.extend(batch.keys.into_iter().map(|k| k.id));
        self.dirty_accounts.extend(batch.accounts.into_iter().map(|(a, _)| a));
        self.dirty_usage.extend(batch.usage.into_iter().map(|(k, _)| k));
        let mut log = batch.requests;
        log.append(&mut self.log);
        self.log = log;
        self.dirty_meta |= !batch.meta.is_empty();
    }
}

/// What a new key may do.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub owner: Address,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub budget: Option<Amount>,
    /// "30d", "7d", "1d", "12h", "1h" and the like; needs a budget.
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub rpm: Option<u64>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub models: Vec<String>,
}

/// Changes to a key; a field left out stays as it is (`null` clears an optional limit).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, with = "patch")]
    pub budget: Option<Option<Amount>>,
    #[serde(default, with = "patch")]
    pub period: Option<Option<String>>,
    #[serde(default, with = "patch")]
    pub rpm: Option<Option<u64>>,
    #[serde(default, with = "patch")]
    pub tpm: Option<Option<u64>>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

/// `Option<Option<T>>` for patches: absent → None, null → Some(None), value → Some(Some).
mod patch {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// "30d", "12h", "90m", "3600s" → seconds.
pub fn parse_period(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("period {s:?}: expected a number and a unit (s, m, h, d), e.g. 30d");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let mul = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(mul) {
        Some(0) | None => Err(bad()),
        Some(secs) => Ok(secs),
    }
}

/// A key as the admin API shows it (never the secret).
#[derive(Clone, Debug, Serialize)]
pub struct KeyView {
    #[serde(flatten)]
    pub rec: KeyRecord,
    pub reserved: Amount,
    /// What the budget still allows this period (None: no budget).
    pub budget_remaining: Option<Amount>,
}

/// An account as the admin API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub address: Address,
    pub deposited: Amount,
    pub spent: Amount,
    pub reserved: Amount,
    pub balance: Amount,
    pub free_day: u32,
    pub free_tokens: u64,
    pub free_requests: u64,
}

/// One row of the usage report: a key's usage of a model on a day.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsageReportRow {
    pub key: String,
    pub day: String,
    pub model: String,
    #[serde(flatten)]
    pub usage: UsageRow,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: String,
    pub owner: Address,
}

/// What a request may cost at most, for its reservation.
#[derive(Clone, Copy, Debug)]
pub struct Worst {
    /// TSR base units.
    pub cost: u128,
    /// Input plus output tokens (the free quota's bound).
    pub tokens: u64,
    /// The tpm estimate charged at admission and corrected at settlement.
    pub tpm_estimate: u64,
}

/// What a request actually used.
#[derive(Clone, Debug)]
pub struct Used {
    pub model: String,
    pub provider: Address,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: u128,
}

/// The limits' state after a reservation, for the response headers.
#[derive(Clone, Debug, Default)]
pub struct Standing {
    /// The owner's balance left (deposits minus spent minus reserved).
    pub balance: u128,
    pub budget_remaining: Option<u128>,
    pub free: bool,
    pub rpm: Option<(u64, u64)>,
    pub tpm: Option<(u64, u64)>,
}

pub struct Meter {
    inner: Arc<Inner>,
    /// Wakes the writer; dropped to stop it.
    wake: Option<crossbeam_channel::Sender<()>>,
    writer: Option<std::thread::JoinHandle<()>>,
    clock: Clock,
    /// Highest `min_stake` first.
    tiers: Vec<AccessTier>,
}

fn day_of(ms: u64) -> u32 {
    u32::try_from(ms / DAY_MS).unwrap_or(u32::MAX)
}

/// "YYYY-MM-DD" of a day since the Unix epoch (proleptic Gregorian, UTC).
pub fn date_of(day: u32) -> String {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(day) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day since the Unix epoch of "YYYY-MM-DD".
pub fn day_from_date(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a date YYYY-MM-DD");
    let mut it = s.split('-');
    let (y, m, d) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(y), Some(m), Some(d), None) => (y, m, d),
        _ => return Err(bad()),
    };
    let (y, m, d): (i64, i64, i64) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return Err(bad());
    }
    // days_from_civil
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let day = u32::try_from(days).map_err(|_| bad())?;
    if date_of(day) != format!("{y:04}-{m:02}-{d:02}") {
        return Err(bad());
    }
    Ok(day)
}

/// API keys look like `sk-tsr-<16 hex id>-<64 hex secret>`.
fn split_key(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("sk-tsr-")?;
    let (id, secret) = rest.split_once('-')?;
    (id.len() == 16 && secret.len() == 64 && rest.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())).then_some(id)
}

fn new_secret(id: &str) -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let key = format!("sk-tsr-{id}-{}", hex::encode(bytes));
    let hash = *blake3::hash(key.as_bytes()).as_bytes();
    (key, hash)
}

/// What the writer thread shares with the meter.
struct Inner {
    state: Mutex<State>,
    store: Store,
    /// Serialises writes so a later write never lands before an earlier one.
    writing: Mutex<()>,
}

impl Inner {
    /// Writes everything changed since the last write, in one fsynced transaction.
    fn flush(&self) -> Result<(), StoreError> {
        let _order = self.writing.lock();
        let batch = self.state.lock().take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        match self.store.write(&batch) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.state.lock().restore(batch);
                Err(e)
            }
        }
    }
}

impl Drop for Meter {
    /// Stops the writer after a last write and closes the store, so it can be opened again
    /// at once.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Meter {
    /// Opens the store in `dir` and loads it.
    pub fn open(dir: &std::path::Path, tiers: Vec<AccessTier>, clock: Clock) -> Result<Arc<Meter>, StoreError> {
        let (store, loaded) = Store::open(dir)?;
        let Loaded { keys, accounts, usage, meta } = loaded;
        let now = clock();
        let mut state = State {
            keys: keys
                .into_iter()
                .map(|rec| {
                    let (rpm, tpm) = (rec.rpm.map(|n| Bucket::new(n, now)), rec.tpm.map(|n| Bucket::new(n, now)));
                    (rec.id.clone(), KeyState { rec, reserved: 0, rpm, tpm })
                })
                .collect(),
            accounts: accounts.into_iter().map(|(a, rec)| (a, AccountState { rec, ..Default::default() })).collect(),
            usage,
            ..Default::default()
        };
        state.cursor = meta.get("cursor").copied().unwrap_or(0);
        state.next_seq = meta.get("next_seq").copied().unwrap_or(0);
        let mut tiers = tiers;
        tiers.sort_by_key(|t| std::cmp::Reverse(t.min_stake));
        let (wake, rx) = crossbeam_channel::bounded::<()>(1);
        let inner = Arc::new(Inner { state: Mutex::new(state), store, writing: Mutex::new(()) });
        let shared = inner.clone();
        let writer = std::thread::Builder::new()
            .name("gateway-meter".into())
            .spawn(move || {
                // Writes on every wake-up (changes accumulate while it writes: group
                // commit); a last time when the meter is dropped.
                loop {
                    let stop = rx.recv().is_err();
                    while let Err(e) = shared.flush() {
                        tracing::error!(error = %e, "writing the gateway's usage; retrying");
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        if stop {
                            return;
                        }
                    }
                    if stop {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError { path: dir.to_path_buf(), what: e.to_string() })?;
        Ok(Arc::new(Meter { inner, wake: Some(wake), writer: Some(writer), clock, tiers }))
    }

    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    pub fn has_tiers(&self) -> bool {
        !self.tiers.is_empty()
    }

    fn tier(&self, staked: Option<u128>) -> Option<&AccessTier> {
        let staked = staked?;
        self.tiers.iter().find(|t| t.min_stake.0 <= staked)
    }

    fn wake(&self) {
        if let Some(w) = &self.wake {
            let _ = w.try_send(());
        }
    }

    /// Writes everything changed since the last write, in one fsynced transaction.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }

    // ---- keys ----

    /// Creates a key; returns it with its secret (shown this once).
    pub fn create_key(&self, spec: KeySpec) -> Result<(KeyView, String), ApiError> {
        let period_secs = match &spec.period {
            Some(p) => Some(parse_period(p).map_err(|e| ApiError::invalid("period", e))?),
            None => None,
        };
        if period_secs.is_some() && spec.budget.is_none() {
            return Err(ApiError::invalid("period", "a budget period needs a budget"));
        }
        validate_limits(spec.rpm, spec.tpm)?;
        let mut idb = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut idb);
        let id = hex::encode(idb);
        let (secret, hash) = new_secret(&id);
        let now = self.now_ms();
        let rec = KeyRecord {
            id: id.clone(),
            name: spec.name,
            owner: spec.owner,
            hash,
            budget: spec.budget,
            period_secs,
            period_start_ms: now,
            period_spent: Amount::ZERO,
            total_spent: Amount::ZERO,
            rpm: spec.rpm,
            tpm: spec.tpm,
            models: spec.models,
            created_ms: now,
            revoked_ms: None,
        };
        {
            let mut s = self.inner.state.lock();
            let (rpm, tpm) = (rec.rpm.map(|n| Bucket::new(n, now)), rec.tpm.map(|n| Bucket::new(n, now)));
            s.keys.insert(id.clone(), KeyState { rec, reserved: 0, rpm, tpm });
            s.dirty_keys.insert(id.clone());
        }
        self.flush().map_err(|e| ApiError::server(e.to_string()))?;
        Ok((self.key(&id)?, secret))
    }

    pub fn key(&self, id: &str) -> Result<KeyView, ApiError> {
        let mut s = self.inner.state.lock();
        let now = self.now_ms();
        let k = s.keys.get_mut(id).ok_or_else(|| unknown_key(id))?;
        roll_period(&mut k.rec, now);
        Ok(view_of(k))
    }

    pub fn keys(&self) -> Vec<KeyView> {
        let mut s = self.inner.state.lock();
        let now = self.now_ms();
        let mut out: Vec<KeyView> = s
            .keys
            .values_mut()
            .map(|k| {
                roll_period(&mut k.rec, now);
                view_of(k)
            })
            .collect();
        out.sort_by(|a, b| (a.rec.created_ms, &a.rec.id).cmp(&(b.rec.created_ms, &b.rec.id)));
        out
    }

    pub fn update_key(&self, id: &str, patch: KeyPatch) -> Result<KeyView, ApiError> {
        let period = match &patch.period {
            Some(Some(p)) => Some(Some(parse_period(p).map_err(|e| ApiError::invalid("period", e))?)),
            Some(None) => Some(None),
            None => None,
        };
        {
            let mut s = self.inner.state.lock();
            let now = self.now_ms();
            let k = s.keys.get_mut(id).ok_or_else(|| unknown_key(id))?;
            if k.rec.revoked_ms.is_some() {
                return Err(ApiError::invalid("id", format!("key {id} is revoked")));
            }
            let budget = patch.budget.unwrap_or(k.rec.budget);
            let period_secs = period.unwrap_or(k.rec.period_secs);
            if period_secs.is_some() && budget.is_none() {
                return Err(ApiError::invalid("period", "a budget period needs a budget"));
            }
            let (rpm, tpm) = (patch.rpm.unwrap_or(k.rec.rpm), patch.tpm.unwrap_or(k.rec.tpm));
            validate_limits(rpm, tpm)?;
            if let Some(n) = patch.name {
                k.rec.name = n;
            }
            if let Some(m) = patch.models {
                k.rec.models = m;
            }
            if period_secs != k.rec.period_secs {
                k.rec.period_start_ms = now;
                k.rec.period_spent = Amount::ZERO;
            }
            k.rec.budget = budget;
            k.rec.period_secs = period_secs;
            if rpm != k.rec.rpm {
                k.rpm = rpm.map(|n| Bucket::new(n, now));
            }
            if tpm != k.rec.tpm {
                k.tpm = tpm.map(|n| Bucket::new(n, now));
            }
            (k.rec.rpm, k.rec.tpm) = (rpm, tpm);
            s.dirty_keys.insert(id.to_string());
        }
        self.flush().map_err(|e| ApiError::server(e.to_string()))?;
        self.key(id)
    }

    /// A new secret for the key; the old one stops working at once. Budget and usage stay.
    pub fn rotate_key(&self, id: &str) -> Result<(KeyView, String), ApiError> {
        let secret = {
            let mut s = self.inner.state.lock();
            let k = s.keys.get_mut(id).ok_or_else(|| unknown_key(id))?;
            if k.rec.revoked_ms.is_some() {
                return Err(ApiError::invalid("id", format!("key {id} is revoked")));
            }
            let (secret, hash) = new_secret(id);
            k.rec.hash = hash;
            s.dirty_keys.insert(id.to_string());
            secret
        };
        self.flush().map_err(|e| ApiError::server(e.to_string()))?;
        Ok((self.key(id)?, secret))
    }

    pub fn revoke_key(&self, id: &str) -> Result<KeyView, ApiError> {
        {
            let mut s = self.inner.state.lock();
            let now = self.now_ms();
            let k = s.keys.get_mut(id).ok_or_else(|| unknown_key(id))?;
            k.rec.revoked_ms.get_or_insert(now);
            s.dirty_keys.insert(id.to_string());
        }
        self.flush().map_err(|e| ApiError::server(e.to_string()))?;
        self.key(id)
    }

    // ---- accounts and deposits ----

    /// The height up to which deposits are credited.
    pub fn cursor(&self) -> u64 {
        self.inner.state.lock().cursor
    }

    /// Credits deposits found in blocks up to `height`, durably with the cursor.
    pub fn credit(&self, deposits: &[(Address, Amount)], height: u64) -> Result<(), StoreError> {
        {
            let mut s = self.inner.state.lock();
            for (a, amount) in deposits {
                let acct = s.accounts.entry(*a).or_default();
                acct.rec.deposited = Amount(acct.rec.deposited.0.saturating_add(amount.0));
                s.dirty_accounts.insert(*a);
            }
            s.cursor = s.cursor.max(height);
            s.dirty_meta = true;
        }
        self.flush()
    }

    pub fn account(&self, a: &Address) -> AccountView {
        let s = self.inner.state.lock();
        let d = AccountState::default();
        let acct = s.accounts.get(a).unwrap_or(&d);
        AccountView {
            address: *a,
            deposited: acct.rec.deposited,
            spent: acct.rec.spent,
            reserved: Amount(acct.reserved),
            balance: Amount(acct.balance()),
            free_day: acct.rec.free_day,
            free_tokens: acct.rec.free_tokens,
            free_requests: acct.rec.free_requests,
        }
    }

    /// Usage rows, optionally of one key, for days in `from..=to`.
    pub fn usage(&self, key: Option<&str>, from: u32, to: u32) -> Vec<UsageReportRow> {
        let s = self.inner.state.lock();
        s.usage
            .iter()
            .filter(|((k, day, _), _)| key.is_none_or(|want| want == k) && (from..=to).contains(day))
            .map(|((k, day, model), r)| UsageReportRow {
                key: k.clone(),
                day: date_of(*day),
                model: model.clone(),
                usage: r.clone(),
            })
            .collect()
    }

    pub fn requests(&self, key: &str, from: u64, limit: usize) -> Result<Vec<(u64, RequestRecord)>, ApiError> {
        // What is logged but not yet written is written first, so the answer is complete.
        self.flush().map_err(|e| ApiError::server(e.to_string()))?;
        self.inner.store.requests(key, from, limit).map_err(|e| ApiError::server(e.to_string()))
    }

    // ---- the request path ----

    /// The caller of `Authorization: Bearer <key>`.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller, ApiError> {
        let key =
            bearer.ok_or_else(|| ApiError::unauthorized("missing_api_key", "send Authorization: Bearer <api key>"))?;
        let invalid = || ApiError::unauthorized("invalid_api_key", "the API key is not valid for this gateway");
        let id = split_key(key).ok_or_else(invalid)?;
        let hash = blake3::hash(key.as_bytes());
        let s = self.inner.state.lock();
        let k = s.keys.get(id).ok_or_else(invalid)?;
        // blake3::Hash compares in constant time.
        if hash != blake3::Hash::from(k.rec.hash) {
            return Err(invalid());
        }
        if k.rec.revoked_ms.is_some() {
            return Err(ApiError::unauthorized("revoked_api_key", "this API key has been revoked"));
        }
        Ok(Caller { key: k.rec.id.clone(), owner: k.rec.owner })
    }

    /// Whether the caller's key may use `model`.
    pub fn allows(&self, caller: &Caller, model: &str) -> Result<(), ApiError> {
        let s = self.inner.state.lock();
        let k = s.keys.get(&caller.key).ok_or_else(|| unknown_key(&caller.key))?;
        if k.rec.models.is_empty() || k.rec.models.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(ApiError::forbidden("model_not_allowed", format!("this API key may not use the model `{model}`")))
        }
    }

    /// Reserves a request's worst case: rate limits, then the free quota of the owner's
    /// stake tier (`staked`: the owner's stake, when known), else the key's budget and the
    /// owner's balance. All or nothing, under the one lock.
    pub fn reserve(self: &Arc<Self>, caller: &Caller, worst: Worst, staked: Option<u128>) -> Result<Hold, ApiError> {
        let now = self.now_ms();
        let day = day_of(now);
        let tier = self.tier(staked).cloned();
        let mut guard = self.inner.state.lock();
        let s = &mut *guard;
        let k = s.keys.get_mut(&caller.key).ok_or_else(|| unknown_key(&caller.key))?;
        if k.rec.revoked_ms.is_some() {
            return Err(ApiError::unauthorized("revoked_api_key", "this API key has been revoked"));
        }
        if let Some(b) = &mut k.rpm {
            if let Err(wait) = b.check(1, now) {
                return Err(ApiError::rate_limited(
                    "rate_limit_requests",
                    format!("this key's limit of {} requests per minute is reached", b.per_min),
                    wait,
                ));
            }
        }
        if let Some(b) = &mut k.tpm {
            if worst.tpm_estimate > b.per_min {
                let mut e = ApiError::rate_limited(
                    "request_too_large",
                    format!(
                        "this request may use {} tokens, more than the key's {} tokens per minute",
                        worst.tpm_estimate, b.per_min
                    ),
                    0,
                );
                e.should_retry = Some(false);
                e.retry_after_ms = None;
                return Err(e);
            }
            if let Err(wait) = b.check(worst.tpm_estimate, now) {
                return Err(ApiError::rate_limited(
                    "rate_limit_tokens",
                    format!("this key's limit of {} tokens per minute is reached", b.per_min),
                    wait,
                ));
            }
        }
        if roll_period(&mut k.rec, now) {
            s.dirty_keys.insert(caller.key.clone());
        }
        let acct = s.accounts.entry(caller.owner).or_default();
        if acct.roll_day(day) {
            s.dirty_accounts.insert(caller.owner);
        }
        let free = tier.as_ref().is_some_and(|t| {
            t.daily_requests.is_none_or(|n| acct.rec.free_requests + acct.free_reserved_requests < n)
                && t.daily_tokens.is_none_or(|n| acct.rec.free_tokens + acct.free_reserved_tokens + worst.tokens <= n)
        });
        if free {
            acct.free_reserved_requests += 1;
            acct.free_reserved_tokens += worst.tokens;
        } else {
            if let Some(budget) = k.rec.budget {
                let committed = k.rec.period_spent.0 + k.reserved;
                if committed.saturating_add(worst.cost) > budget.0 {
                    return Err(ApiError::payment_required(
                        "budget_exceeded",
                        format!(
                            "this key's budget ({budget}) cannot cover this request's worst case ({}) on top of {} spent and {} reserved{}",
                            worst.cost,
                            k.rec.period_spent,
                            k.reserved,
                            k.rec.period_secs.map_or(String::new(), |p| format!("; it resets every {p} s"))
                        ),
                    ));
                }
            }
            if acct.balance() < worst.cost {
                return Err(ApiError::payment_required(
                    "insufficient_balance",
                    format!(
                        "the balance of {} ({}) cannot cover this request's worst case ({}); deposit TSR to the operator's account",
                        caller.owner,
                        acct.balance(),
                        worst.cost
                    ),
                ));
            }
            acct.reserved += worst.cost;
            k.reserved += worst.cost;
        }
        if let Some(b) = &mut k.rpm {
            b.take(1);
        }
        if let Some(b) = &mut k.tpm {
            b.take(i128::from(worst.tpm_estimate));
        }
        let standing = Standing {
            balance: acct.balance(),
            budget_remaining: k.rec.budget.map(|b| b.0.saturating_sub(k.rec.period_spent.0 + k.reserved)),
            free,
            rpm: k.rpm.as_ref().map(|b| (b.per_min, b.remaining())),
            tpm: k.tpm.as_ref().map(|b| (b.per_min, b.remaining())),
        };
        Ok(Hold { meter: self.clone(), caller: caller.clone(), worst, free, day, standing, open: true })
    }

    fn finish(&self, h: &Hold, used: Option<&Used>) -> Standing {
        let now = self.now_ms();
        let mut guard = self.inner.state.lock();
        let s = &mut *guard;
        let mut standing = h.standing.clone();
        if let Some(k) = s.keys.get_mut(&h.caller.key) {
            if !h.free {
                k.reserved = k.reserved.saturating_sub(h.worst.cost);
            }
            if let Some(b) = &mut k.tpm {
                b.refill(now);
                let tokens = used.map_or(0, |u| u.prompt_tokens + u.completion_tokens);
                b.take(i128::from(tokens) - i128::from(h.worst.tpm_estimate));
            }
            if let (Some(u), false) = (used, h.free) {
                // A period that ended while the call ran: the cost counts in the new one.
                roll_period(&mut k.rec, now);
                k.rec.period_spent = Amount(k.rec.period_spent.0.saturating_add(u.cost));
                k.rec.total_spent = Amount(k.rec.total_spent.0.saturating_add(u.cost));
            }
            if used.is_some() {
                s.dirty_keys.insert(h.caller.key.clone());
            }
            standing.budget_remaining = k.rec.budget.map(|b| b.0.saturating_sub(k.rec.period_spent.0 + k.reserved));
        }
        let acct = s.accounts.entry(h.caller.owner).or_default();
        if h.free {
            acct.free_reserved_requests = acct.free_reserved_requests.saturating_sub(1);
            acct.free_reserved_tokens = acct.free_reserved_tokens.saturating_sub(h.worst.tokens);
        } else {
            acct.reserved = acct.reserved.saturating_sub(h.worst.cost);
        }
        if let Some(u) = used {
            let tokens = u.prompt_tokens + u.completion_tokens;
            if h.free {
                if acct.rec.free_day == h.day {
                    acct.rec.free_requests += 1;
                    acct.rec.free_tokens += tokens;
                }
            } else {
                acct.rec.spent = Amount(acct.rec.spent.0.saturating_add(u.cost));
            }
            s.dirty_accounts.insert(h.caller.owner);
            standing.balance = acct.balance();
            let row = s.usage.entry((h.caller.key.clone(), h.day, u.model.clone())).or_default();
            row.requests += 1;
            row.prompt_tokens += u.prompt_tokens;
            row.completion_tokens += u.completion_tokens;
            if h.free {
                row.free_requests += 1;
                row.sponsored_cost = Amount(row.sponsored_cost.0.saturating_add(u.cost));
            } else {
                row.cost = Amount(row.cost.0.saturating_add(u.cost));
            }
            s.dirty_usage.insert((h.caller.key.clone(), h.day, u.model.clone()));
            let seq = s.next_seq;
            s.next_seq += 1;
            s.dirty_meta = true;
            s.log.push((
                h.caller.key.clone(),
                seq,
                RequestRecord {
                    at_ms: now,
                    model: u.model.clone(),
                    provider: u.provider,
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    cost: Amount(u.cost),
                    free: h.free,
                },
            ));
        } else {
            standing.balance = acct.balance();
        }
        drop(guard);
        if used.is_some() {
            self.wake();
        }
        standing
    }
}

fn validate_limits(rpm: Option<u64>, tpm: Option<u64>) -> Result<(), ApiError> {
    if rpm == Some(0) {
        return Err(ApiError::invalid("rpm", "rpm must be at least 1 (leave it out for no limit)"));
    }
    if tpm == Some(0) {
        return Err(ApiError::invalid("tpm", "tpm must be at least 1 (leave it out for no limit)"));
    }
    Ok(())
}

fn unknown_key(id: &str) -> ApiError {
    let mut e = ApiError::new(404, "invalid_request_error", "unknown_key", format!("no API key with id {id}"));
    e.should_retry = Some(false);
    e
}

/// Starts the key's current budget period if the last one ended; true when it did.
fn roll_period(k: &mut KeyRecord, now: u64) -> bool {
    let Some(p) = k.period_secs else { return false };
    let p_ms = p.saturating_mul(1000);
    if now < k.period_start_ms.saturating_add(p_ms) {
        return false;
    }
    let periods = (now - k.period_start_ms) / p_ms;
    k.period_start_ms += periods * p_ms;
    k.period_spent = Amount::ZERO;
    true
}

fn view_of(k: &KeyState) -> KeyView {
    KeyView {
        rec: k.rec.clone(),
        reserved: Amount(k.reserved),
        budget_remaining: k.rec.budget.map(|b| Amount(b.0.saturating_sub(k.rec.period_spent.0 + k.reserved))),
    }
}

/// A request's reservation. Settle it with what the request used; dropped unsettled (the
/// request failed, or its handler went away) it releases the reservation and bills nothing.
pub struct Hold {
    meter: Arc<Meter>,
    caller: Caller,
    worst: Worst,
    free: bool,
    day: u32,
    standing: Standing,
    open: bool,
}

impl Hold {
    pub fn standing(&self) -> &Standing {
        &self.standing
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Bills what the request used (at most its own cost, whatever it is) and releases the
    /// rest of the reservation; returns the limits' state after it.
    pub fn settle(mut self, used: &Used) -> Standing {
        self.open = false;
        self.meter.finish(&self, Some(used))
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.open {
            self.meter.finish(self, None);
        }
    }
}
