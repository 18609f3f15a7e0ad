//! The ledger state: accounts with balances and locks, assets, roles and chain parameters,
//! plus the running lattice hash that the state root is taken from.

use crate::lthash::LtHash;
use crate::objects::{ObjKey, Object};
use borsh::{BorshDeserialize, BorshSerialize};
use primitives::{Address, Amount, AssetId, EntityId, Hash, Height, RejectCode, Role};
use std::collections::BTreeMap;

/// Most balances one account may hold (one per asset).
pub const ACCOUNT_BALANCES_MAX: usize = 64;
/// Most locks one account may carry at once.
pub const ACCOUNT_LOCKS_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Number of transactions this account has had included; the next one must carry it.
    pub nonce: u64,
    /// Sorted by asset, no zero entries (so the encoding, and the root, is canonical).
    pub balances: Vec<Balance>,
    /// Funds held for a purpose (sale lockup, vesting, stake, channel escrow). Sorted.
    pub locks: Vec<Lock>,
    /// The verified entity this wallet is bound to (compliance registry).
    pub entity: Option<EntityId>,
    /// Resale restrictions on what this account holds (a Reg S lot's distribution-
    /// compliance period). Sorted; expired ones are pruned when next checked.
    pub restrictions: Vec<Restriction>,
}

/// A restriction on transfers of `asset` out of an account until `until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub struct Restriction {
    pub asset: AssetId,
    pub until_ms: u64,
    pub kind: RestrictionKind,
}

/// Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum RestrictionKind {
    /// Only to wallets of verified, non-revoked, non-U.S. entities (Reg S DCP).
    NonUsRecipientsOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Balance {
    pub asset: AssetId,
    pub amount: Amount,
}

/// What a lock holds funds for. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum LockKind {
    SaleLockup,
    Vesting,
    Stake,
    ChannelEscrow,
    /// Quote money committed to an offering tranche, until settlement or cancellation.
    SaleEscrow,
    /// Unstaked TSR during its unbonding period (reference = release height).
    Unbonding,
}

impl LockKind {
    pub fn name(self) -> &'static str {
        match self {
            LockKind::SaleLockup => "sale_lockup",
            LockKind::Vesting => "vesting",
            LockKind::Stake => "stake",
            LockKind::ChannelEscrow => "channel_escrow",
            LockKind::SaleEscrow => "sale_escrow",
            LockKind::Unbonding => "unbonding",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Lock {
    pub kind: LockKind,
    /// The module's id for what is locked (an offering, a schedule, a channel).
    pub reference: u64,
    pub asset: AssetId,
    pub amount: Amount,
}

impl Account {
    pub fn balance(&self, asset: AssetId) -> Amount {
        self.balances.iter().find(|b| b.asset == asset).map_or(Amount::ZERO, |b| b.amount)
    }

    pub fn locked(&self, asset: AssetId) -> Amount {
        let total =
            self.locks.iter().filter(|l| l.asset == asset).try_fold(Amount::ZERO, |acc, l| acc.checked_add(l.amount));
        total.expect("locks of one asset never exceed its balance, so never overflow")
    }

    /// Balance minus locks: what transfers, fees and new locks may use.
    pub fn spendable(&self, asset: AssetId) -> Amount {
        self.balance(asset).checked_sub(self.locked(asset)).expect("invariant: locked <= balance")
    }

    pub fn credit(&mut self, asset: AssetId, amount: Amount) -> Result<(), RejectCode> {
        match self.balances.binary_search_by(|b| b.asset.cmp(&asset)) {
            Ok(i) => {
                let b = &mut self.balances[i];
                b.amount = b.amount.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
            }
            Err(i) => {
                if amount.is_zero() {
                    return Ok(());
                }
                if self.balances.len() >= ACCOUNT_BALANCES_MAX {
                    return Err(RejectCode::TooManyBalances);
                }
                self.balances.insert(i, Balance { asset, amount });
            }
        }
        Ok(())
    }

    /// Takes `amount` from the spendable balance.
    pub fn debit(&mut self, asset: AssetId, amount: Amount) -> Result<(), RejectCode> {
        if self.spendable(asset) < amount {
            return Err(RejectCode::InsufficientFunds);
        }
        if amount.is_zero() {
            return Ok(());
        }
        let i = self.balances.binary_search_by(|b| b.asset.cmp(&asset)).expect("spendable > 0 means present");
        let b = &mut self.balances[i];
        b.amount = b.amount.checked_sub(amount).expect("checked against spendable");
        if b.amount.is_zero() {
            self.balances.remove(i);
        }
        Ok(())
    }

    /// Locks `amount` of the spendable balance. Used by the sale, vesting, staking and
    /// channel modules.
    pub fn add_lock(&mut self, lock: Lock) -> Result<(), RejectCode> {
        if self.spendable(lock.asset) < lock.amount {
            return Err(RejectCode::InsufficientFunds);
        }
        if self.locks.len() >= ACCOUNT_LOCKS_MAX {
            return Err(RejectCode::TooManyLocks);
        }
        let key = |l: &Lock| (l.kind, l.reference, l.asset);
        match self.locks.binary_search_by(|l| key(l).cmp(&key(&lock))) {
            Ok(i) => {
                let l = &mut self.locks[i];
                l.amount = l.amount.checked_add(lock.amount).ok_or(RejectCode::AmountOverflow)?;
            }
            Err(i) => self.locks.insert(i, lock),
        }
        Ok(())
    }

    /// Releases up to `amount` of a lock back to spendable; returns what was released.
    pub fn release_lock(&mut self, kind: LockKind, reference: u64, asset: AssetId, amount: Amount) -> Amount {
        let Some(i) = self.locks.iter().position(|l| (l.kind, l.reference, l.asset) == (kind, reference, asset)) else {
            return Amount::ZERO;
        };
        let l = &mut self.locks[i];
        let released = amount.min(l.amount);
        l.amount = l.amount.checked_sub(released).expect("released <= lock");
        if l.amount.is_zero() {
            self.locks.remove(i);
        }
        released
    }

    /// An account with nothing in it is not stored (keeps the state canonical).
    pub fn is_empty(&self) -> bool {
        self.nonce == 0
            && self.balances.is_empty()
            && self.locks.is_empty()
            && self.entity.is_none()
            && self.restrictions.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct AssetInfo {
    pub symbol: AssetId,
    pub decimals: u8,
    pub issuer: Address,
    /// Total in existence: always the sum of all balances of this asset.
    pub supply: Amount,
    pub max_supply: Option<Amount>,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Roles {
    /// Fixed at genesis; appoints the others.
    pub issuer: Address,
    pub compliance: Address,
    pub custodian: Address,
    /// Receives every fee.
    pub treasury: Address,
}

impl Roles {
    pub fn get(&self, role: Role) -> Address {
        match role {
            Role::Compliance => self.compliance,
            Role::Custodian => self.custodian,
            Role::Treasury => self.treasury,
        }
    }

    pub fn set(&mut self, role: Role, address: Address) {
        match role {
            Role::Compliance => self.compliance = address,
            Role::Custodian => self.custodian = address,
            Role::Treasury => self.treasury = address,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChainParams {
    pub chain_id: String,
    pub genesis_hash: Hash,
    /// Flat fee per transaction, TSR base units.
    pub fee: Amount,
    pub block_interval_ms: u64,
    /// Emission, neuron slots, staking and epochs; `None` turns the module off.
    pub incentives: Option<primitives::incentive::IncentiveParams>,
}

/// One entry of the state, as the state root sees it.
pub enum Entry<'a> {
    Account(&'a Address, &'a Account),
    Asset(&'a AssetInfo),
    Roles(&'a Roles),
    Params(&'a ChainParams),
    /// A module record (compliance registry, offerings, commitments, grants).
    Object(&'a ObjKey, &'a Object),
}

impl Entry<'_> {
    /// Canonical bytes: a tag, the key, the value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical bytes to `out` (lets a caller reuse one buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let written = match self {
            Entry::Account(addr, acct) => {
                out.push(0);
                out.extend_from_slice(addr.as_bytes());
                borsh::to_writer(&mut *out, *acct)
            }
            Entry::Asset(info) => {
                out.push(1);
                borsh::to_writer(&mut *out, *info)
            }
            Entry::Roles(roles) => {
                out.push(2);
                borsh::to_writer(&mut *out, *roles)
            }
            Entry::Params(params) => {
                out.push(3);
                borsh::to_writer(&mut *out, *params)
            }
            Entry::Object(key, object) => {
                out.push(4);
                borsh::to_writer(&mut *out, *key).expect("encoding into a Vec cannot fail");
                borsh::to_writer(&mut *out, *object)
            }
        };
        written.expect("encoding into a Vec cannot fail");
    }

    pub fn lthash(&self) -> LtHash {
        LtHash::of_entry(&self.encode())
    }
}

/// Accounts by address. A hash map for O(1) lookups at millions of accounts (a B-tree
/// costs a cache miss per level), hashed with foldhash under a **random seed per map**:
/// anyone can create an account at any 32-byte address (a transfer to it), and with a
/// seed every node shares (it was a fixed, public one) colliding addresses are cheap to
/// grind, so a paid-for flood of them would turn every lookup on every node into a long
/// probe. The seed enters no result: nothing consensus-relevant depends on the map's
/// iteration order (the state root is an order-independent sum; checkpoints, the cap
/// table and everything else that must be ordered sort first), which the random seed
/// also keeps honest, since any hidden dependence on the order would now differ between
/// two runs (`tests::account_maps_hash_with_their_own_seed`, and every determinism test).
pub type AccountMap = std::collections::HashMap<Address, Account, foldhash::fast::RandomState>;

/// The whole ledger state after `height`.
#[derive(Clone, Debug)]
pub struct State {
    pub params: ChainParams,
    pub roles: Roles,
    pub accounts: AccountMap,
    pub assets: BTreeMap<AssetId, AssetInfo>,
    /// Module records, ordered (offerings scan their commitments by key range).
    pub objects: BTreeMap<ObjKey, Object>,
    pub height: Height,
    pub last_block_hash: Hash,
    pub last_timestamp_ms: u64,
    pub lthash: LtHash,
}

impl State {
    pub fn state_root(&self) -> Hash {
        self.lthash.checksum()
    }

    pub fn account(&self, address: &Address) -> Option<&Account> {
        self.accounts.get(address)
    }

    pub fn asset(&self, asset: &AssetId) -> Option<&AssetInfo> {
        self.assets.get(asset)
    }

    pub fn object(&self, key: &ObjKey) -> Option<&Object> {
        self.objects.get(key)
    }

    pub fn nonce(&self, address: &Address) -> u64 {
        self.accounts.get(address).map_or(0, |a| a.nonce)
    }

    pub fn spendable(&self, address: &Address, asset: AssetId) -> Amount {
        self.accounts.get(address).map_or(Amount::ZERO, |a| a.spendable(asset))
    }

    /// Every entry of the state; accounts in map order (callers must not depend on it).
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        std::iter::once(Entry::Params(&self.params))
            .chain(std::iter::once(Entry::Roles(&self.roles)))
            .chain(self.assets.values().map(Entry::Asset))
            .chain(self.objects.iter().map(|(k, o)| Entry::Object(k, o)))
            .chain(self.accounts.iter().map(|(a, acct)| Entry::Account(a, acct)))
    }

    /// Recomputes the lattice hash from every entry (O(state); for recovery checks,
    /// replay and tests).
    pub fn recompute_lthash(&self) -> LtHash {
        use rayon::prelude::*;
        let entries: Vec<Entry<'_>> = self.entries().collect();
        entries
            .par_iter()
            .fold(LtHash::identity, |mut acc, e| {
                acc.add(&e.lthash());
                acc
            })
            .reduce(LtHash::identity, |mut a, b| {
                a.add(&b);
                a
            })
    }

    /// Full scan of the invariants: per asset, supply equals the sum of balances and
    /// stays within max supply; locks never exceed balances; no empty accounts or zero
    /// balances are stored; the lattice hash matches the entries.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut sums: BTreeMap<AssetId, u128> = BTreeMap::new();
        for (addr, acct) in &self.accounts {
            if acct.is_empty() {
                return Err(format!("empty account {addr} stored"));
            }
            for w in acct.balances.windows(2) {
                if w[0].asset >= w[1].asset {
                    return Err(format!("balances of {addr} not sorted"));
                }
            }
            for b in &acct.balances {
                if b.amount.is_zero() {
                    return Err(format!("zero balance stored for {addr}"));
                }
                if !self.assets.contains_key(&b.asset) {
                    return Err(format!("{addr} holds unknown asset {}", b.asset));
                }
                let s = sums.entry(b.asset).or_default();
                *s = s.checked_add(b.amount.0).ok_or("balance sum overflows")?;
                if acct.locked(b.asset) > b.amount {
                    return Err(format!("{addr} has more {} locked than held", b.asset));
                }
            }
            for l in &acct.locks {
                if acct.balance(l.asset) < l.amount {
                    return Err(format!("{addr} has a lock above its balance of {}", l.asset));
                }
            }
        }
        for (id, info) in &self.assets {
            let sum = sums.get(id).copied().unwrap_or(0);
            if sum != info.supply.0 {
                return Err(format!("{id}: supply {} but balances sum to {sum}", info.supply));
            }
            if info.max_supply.is_some_and(|m| info.supply > m) {
                return Err(format!("{id}: supply above max supply"));
            }
        }
        crate::incentive::check_invariants(self)?;
        if self.recompute_lthash() != self.lthash {
            return Err("lattice hash does not match the state's entries".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Two account maps do not share a hash function, so addresses ground to collide in
    /// one (as anyone could with the fixed seed this replaced) spread out in every other.
    #[test]
    fn account_maps_hash_with_their_own_seed() {
        let (a, b) = (AccountMap::default(), AccountMap::default());
        let addresses: Vec<Address> = (0u8..16).map(|i| Address([i; 32])).collect();
        let differ = addresses.iter().filter(|x| a.hasher().hash_one(x) != b.hasher().hash_one(x)).count();
        assert_eq!(differ, addresses.len(), "two maps hashed {} of 16 addresses alike", 16 - differ);
    }
}
