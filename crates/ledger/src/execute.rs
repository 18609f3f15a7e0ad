//! Block execution: the narrow boundary every sequencer uses (the solo sequencer now, a
//! BFT engine later). `propose` builds a block on a parent state from candidate
//! transactions; `verify` re-executes a given block on its parent state and checks every
//! root; `State::commit` applies the resulting write set. None of them mutate the parent.

use crate::lthash::LtHash;
use crate::objects::{ObjKey, Object};
use crate::state::{Account, AssetInfo, Entry, Roles, State};
use borsh::{BorshDeserialize, BorshSerialize};
use primitives::block::{receipts_root, txs_root};
use primitives::limits::BLOCK_TXS_MAX;
use primitives::{
    Action, Address, Amount, AssetId, Block, BlockHeader, Hash, Height, Outcome, Receipt, RejectCode, SignedTransaction,
};
use std::collections::BTreeMap;

/// What the sequencer supplies about the block being built: time comes from here, never
/// from a clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockContext {
    pub height: Height,
    pub parent_hash: Hash,
    pub timestamp_ms: u64,
    pub proposer: Address,
}

/// Why a transaction cannot be included at all: it would neither pay a fee nor use a
/// nonce. A proposer drops it; a block containing it is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inadmissible {
    #[error("transaction is for chain {got:?}, this chain is {expected:?}")]
    WrongChain { expected: String, got: String },
    #[error("transaction expired at height {expiry_height}; block height is {height}")]
    Expired { expiry_height: u64, height: u64 },
    #[error("fee {fee} is below the chain's flat fee {min}")]
    FeeTooLow { fee: Amount, min: Amount },
    #[error("nonce {got} already used; the signer's next nonce is {expected}")]
    NonceTooLow { expected: u64, got: u64 },
    #[error("nonce {got} is ahead of the signer's next nonce {expected}")]
    NonceTooHigh { expected: u64, got: u64 },
    #[error("spendable TSR {spendable} cannot pay the fee {fee}")]
    CannotPayFee { spendable: Amount, fee: Amount },
}

impl Inadmissible {
    pub fn code(&self) -> &'static str {
        match self {
            Inadmissible::WrongChain { .. } => "wrong_chain",
            Inadmissible::Expired { .. } => "expired",
            Inadmissible::FeeTooLow { .. } => "fee_too_low",
            Inadmissible::NonceTooLow { .. } => "nonce_too_low",
            Inadmissible::NonceTooHigh { .. } => "nonce_too_high",
            Inadmissible::CannotPayFee { .. } => "insufficient_fee_balance",
        }
    }
}

/// Why a block is invalid on its parent. Permanent: the same block is always invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block height {got}, expected {expected}")]
    WrongHeight { expected: Height, got: Height },
    #[error("block's parent is {got}, expected {expected}")]
    WrongParent { expected: Hash, got: Hash },
    #[error("block timestamp {got} ms is before its parent's {parent} ms")]
    TimestampBeforeParent { parent: u64, got: u64 },
    #[error("block holds {0} transactions, more than {BLOCK_TXS_MAX}")]
    TooManyTxs(usize),
    #[error("transaction {index} is malformed: {reason}")]
    MalformedTx { index: usize, reason: String },
    #[error("transaction {index} has a bad signature")]
    BadSignature { index: usize },
    #[error("transaction {index} cannot be included: {reason}")]
    Inadmissible { index: usize, reason: Inadmissible },
    #[error("{what} root mismatch: header says {header}, execution gives {computed}")]
    RootMismatch { what: &'static str, header: Hash, computed: Hash },
}

/// Everything a block changed, ready to commit. Accounts map to `None` when emptied.
#[derive(Clone, Debug, BorshSerialize, BorshDeserialize)]
pub struct WriteSet {
    /// Unordered (nothing consumes it in order); each address at most once.
    pub accounts: Vec<(Address, Option<Account>)>,
    pub assets: BTreeMap<AssetId, AssetInfo>,
    pub roles: Option<Roles>,
    /// Module records written (`None` = deleted), in key order.
    pub objects: Vec<(ObjKey, Option<Object>)>,
}

#[derive(Clone, Debug)]
pub struct Executed {
    pub block: Block,
    pub block_hash: Hash,
    pub receipts: Vec<Receipt>,
    /// Candidates the proposer left out, with the reason (always empty from `verify`).
    pub dropped: Vec<(Hash, SignedTransaction, Inadmissible)>,
    pub write_set: WriteSet,
    /// The lattice hash after the block.
    pub lthash: LtHash,
}

/// Builds a block on `parent` from `candidates` (already signature-checked, in priority
/// order), taking at most `txs_max` of them. Inadmissible candidates are dropped.
pub fn propose(
    parent: &State,
    ctx: BlockContext,
    candidates: impl IntoIterator<Item = (Hash, SignedTransaction)>,
    txs_max: usize,
) -> Executed {
    assert_eq!(ctx.height, parent.height.next(), "proposing on the wrong parent");
    assert!(ctx.timestamp_ms >= parent.last_timestamp_ms, "timestamp before parent");
    let txs_max = txs_max.min(BLOCK_TXS_MAX);
    let mut overlay = Overlay::new(parent, ctx.timestamp_ms, ctx.height);
    let candidates = candidates.into_iter();
    let capacity = candidates.size_hint().0.min(txs_max);
    let mut included = Vec::with_capacity(capacity);
    let mut ids = Vec::with_capacity(capacity);
    let mut receipts = Vec::with_capacity(capacity);
    let mut dropped = Vec::new();
    for (id, stx) in candidates {
        if included.len() >= txs_max {
            break;
        }
        match overlay.apply_tx(&ctx, id, &stx) {
            Ok(receipt) => {
                receipts.push(receipt);
                ids.push(id);
                included.push(stx);
            }
            Err(reason) => dropped.push((id, stx, reason)),
        }
    }
    overlay.end_block();
    let (write_set, lthash) = overlay.finish();
    let header = BlockHeader {
        height: ctx.height,
        parent_hash: ctx.parent_hash,
        timestamp_ms: ctx.timestamp_ms,
        proposer: ctx.proposer,
        txs_root: txs_root(&ids),
        receipts_root: receipts_root(&receipts),
        state_root: lthash.checksum(),
    };
    let block_hash = header.hash();
    Executed { block: Block { header, txs: included }, block_hash, receipts, dropped, write_set, lthash }
}

/// Whether `verify` checks signatures (a node replaying its own durable log may skip it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signatures<'a> {
    Check,
    AlreadyChecked,
    /// Checks transaction `i`'s signature unless `checked[i]` is true (a validator skips
    /// the signatures it verified when it admitted those very transactions). Indices past
    /// the slice's end are checked.
    Unless(&'a [bool]),
}

/// Re-executes `block` on `parent` and checks linkage, every transaction and every root.
pub fn verify(parent: &State, block: &Block, signatures: Signatures) -> Result<Executed, BlockError> {
    let ids: Vec<Hash> = block.txs.iter().map(|t| t.id()).collect();
    verify_with_ids(parent, block, &ids, signatures)
}

/// `verify`, with the transaction ids already computed by the caller (`ids[i]` must be
/// `block.txs[i].id()`; a validator has them from looking up which signatures it checked).
pub fn verify_with_ids(
    parent: &State,
    block: &Block,
    ids: &[Hash],
    signatures: Signatures,
) -> Result<Executed, BlockError> {
    debug_assert_eq!(ids.len(), block.txs.len());
    let h = &block.header;
    if h.height != parent.height.next() {
        return Err(BlockError::WrongHeight { expected: parent.height.next(), got: h.height });
    }
    if h.parent_hash != parent.last_block_hash {
        return Err(BlockError::WrongParent { expected: parent.last_block_hash, got: h.parent_hash });
    }
    if h.timestamp_ms < parent.last_timestamp_ms {
        return Err(BlockError::TimestampBeforeParent { parent: parent.last_timestamp_ms, got: h.timestamp_ms });
    }
    if block.txs.len() > BLOCK_TXS_MAX {
        return Err(BlockError::TooManyTxs(block.txs.len()));
    }
    for (index, stx) in block.txs.iter().enumerate() {
        stx.tx.check_stateless().map_err(|e| BlockError::MalformedTx { index, reason: e.to_string() })?;
    }
    let checked: Option<&[bool]> = match signatures {
        Signatures::Check => Some(&[]),
        Signatures::AlreadyChecked => None,
        Signatures::Unless(checked) => Some(checked),
    };
    if let Some(checked) = checked {
        let items: Vec<crypto::VerifyItem> =
            block.txs.iter().zip(ids).map(|(t, id)| (t.tx.signer, *id, t.signature)).collect();
        if let Some(index) = crypto::verify_par_unchecked(&items, checked).0.iter().position(|ok| !ok) {
            return Err(BlockError::BadSignature { index });
        }
    }
    let ctx = BlockContext {
        height: h.height,
        parent_hash: h.parent_hash,
        timestamp_ms: h.timestamp_ms,
        proposer: h.proposer,
    };
    let mut overlay = Overlay::new(parent, ctx.timestamp_ms, ctx.height);
    let mut receipts = Vec::with_capacity(block.txs.len());
    for (index, (stx, id)) in block.txs.iter().zip(ids).enumerate() {
        let receipt = overlay.apply_tx(&ctx, *id, stx).map_err(|reason| BlockError::Inadmissible { index, reason })?;
        receipts.push(receipt);
    }
    overlay.end_block();
    let (write_set, lthash) = overlay.finish();
    let check = |what, header: Hash, computed: Hash| {
        if header == computed {
            Ok(())
        } else {
            Err(BlockError::RootMismatch { what, header, computed })
        }
    };
    check("transactions", h.txs_root, txs_root(ids))?;
    check("receipts", h.receipts_root, receipts_root(&receipts))?;
    check("state", h.state_root, lthash.checksum())?;
    Ok(Executed { block: block.clone(), block_hash: h.hash(), receipts, dropped: Vec::new(), write_set, lthash })
}

/// What remains of an `Executed` once its write set is in the state.
#[derive(Clone, Debug)]
pub struct Committed {
    pub block: Block,
    pub block_hash: Hash,
    pub receipts: Vec<Receipt>,
    pub dropped: Vec<(Hash, SignedTransaction, Inadmissible)>,
}

impl State {
    /// Applies an executed block's write set. The caller decides when (after the block
    /// is durable); the state is then exactly the block's post-state.
    pub fn commit(&mut self, executed: &Executed) {
        self.commit_parts(&executed.block.header, executed.block_hash, executed.write_set.clone(), &executed.lthash);
    }

    /// Like `commit`, moving the write set in instead of copying it.
    pub fn commit_owned(&mut self, executed: Executed) -> Committed {
        let Executed { block, block_hash, receipts, dropped, write_set, lthash } = executed;
        self.commit_parts(&block.header, block_hash, write_set, &lthash);
        Committed { block, block_hash, receipts, dropped }
    }

    fn commit_parts(&mut self, header: &BlockHeader, block_hash: Hash, ws: WriteSet, lthash: &LtHash) {
        assert_eq!(header.height, self.height.next(), "committing out of order");
        assert_eq!(header.parent_hash, self.last_block_hash, "committing on the wrong parent");
        for (addr, acct) in ws.accounts {
            match acct {
                Some(a) => {
                    self.accounts.insert(addr, a);
                }
                None => {
                    self.accounts.remove(&addr);
                }
            }
        }
        self.assets.extend(ws.assets);
        if let Some(roles) = ws.roles {
            self.roles = roles;
        }
        for (key, object) in ws.objects {
            match object {
                Some(o) => {
                    self.objects.insert(key, o);
                }
                None => {
                    self.objects.remove(&key);
                }
            }
        }
        self.lthash = lthash.clone();
        self.height = header.height;
        self.last_block_hash = block_hash;
        self.last_timestamp_ms = header.timestamp_ms;
    }
}

enum Undo {
    Account(Address, Option<Account>),
    Asset(AssetId, Option<AssetInfo>),
    Roles(Option<Roles>),
    /// The overlay's previous entry for the key (`None` = untouched in this block).
    Object(ObjKey, Option<Option<Object>>),
}

/// Changes on top of a parent state, with an undo journal so a rejected action is
/// rolled back to just after its fee and nonce.
pub(crate) struct Overlay<'a> {
    pub(crate) base: &'a State,
    /// Hash map for speed; `finish` sorts what it emits, and the lattice-hash and
    /// supply sums it computes are order-independent.
    accounts: crate::state::AccountMap,
    assets: BTreeMap<AssetId, AssetInfo>,
    roles: Option<Roles>,
    /// Module records touched in this block (`None` = deleted).
    objects: BTreeMap<ObjKey, Option<Object>>,
    undo: Vec<Undo>,
    /// Whether changes are being journaled (during an action, not during fee charging).
    journaling: bool,
    /// The block's timestamp: the only clock the modules see.
    now_ms: u64,
    /// The block's height.
    height: u64,
}

impl<'a> Overlay<'a> {
    fn new(base: &'a State, now_ms: u64, height: Height) -> Self {
        Overlay {
            base,
            accounts: Default::default(),
            assets: BTreeMap::new(),
            roles: None,
            objects: BTreeMap::new(),
            undo: Vec::new(),
            journaling: false,
            now_ms,
            height: height.0,
        }
    }

    pub(crate) fn account(&self, a: &Address) -> Option<&Account> {
        self.accounts.get(a).or_else(|| self.base.accounts.get(a))
    }

    /// The account to change in place (copied from the base on first touch). While
    /// journaling, its value before the action is recorded once for rollback.
    pub(crate) fn account_mut(&mut self, a: Address) -> &mut Account {
        if self.journaling && !self.undo.iter().any(|u| matches!(u, Undo::Account(x, _) if *x == a)) {
            let prev = self.accounts.get(&a).cloned();
            self.undo.push(Undo::Account(a, prev));
        }
        let base = self.base;
        self.accounts.entry(a).or_insert_with(|| base.accounts.get(&a).cloned().unwrap_or_default())
    }

    pub(crate) fn asset(&self, id: &AssetId) -> Option<&AssetInfo> {
        self.assets.get(id).or_else(|| self.base.assets.get(id))
    }

    pub(crate) fn put_asset(&mut self, info: AssetInfo) {
        let id = info.symbol;
        let prev = self.assets.insert(id, info);
        self.undo.push(Undo::Asset(id, prev));
    }

    pub(crate) fn roles(&self) -> &Roles {
        self.roles.as_ref().unwrap_or(&self.base.roles)
    }

    pub(crate) fn obj(&self, key: &ObjKey) -> Option<&Object> {
        match self.objects.get(key) {
            Some(o) => o.as_ref(),
            None => self.base.objects.get(key),
        }
    }

    /// Writes (or with `None` deletes) a module record, journaled for rollback.
    pub(crate) fn put_obj(&mut self, key: ObjKey, object: Option<Object>) {
        let prev = self.objects.insert(key, object);
        self.undo.push(Undo::Object(key, prev));
    }

    /// Every live record with a key in `lo..=hi`, in key order (the block's writes
    /// merged over the parent state).
    pub(crate) fn objects_in(&self, lo: ObjKey, hi: ObjKey) -> Vec<(ObjKey, &Object)> {
        let mut base = self.base.objects.range(lo..=hi).peekable();
        let mut over = self.objects.range(lo..=hi).peekable();
        let mut out = Vec::new();
        loop {
            let take_base = match (base.peek(), over.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((bk, _)), Some((ok, _))) => bk < ok,
            };
            if take_base {
                let (k, o) = base.next().expect("peeked");
                out.push((*k, o));
            } else {
                let (k, o) = over.next().expect("peeked");
                if base.peek().is_some_and(|(bk, _)| *bk == k) {
                    base.next();
                }
                if let Some(o) = o {
                    out.push((*k, o));
                }
            }
        }
        out
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn height(&self) -> u64 {
        self.height
    }

    fn put_roles(&mut self, roles: Roles) {
        let prev = self.roles.replace(roles);
        self.undo.push(Undo::Roles(prev));
    }

    fn rollback_to(&mut self, savepoint: usize) {
        while self.undo.len() > savepoint {
            match self.undo.pop().expect("len > savepoint") {
                Undo::Account(a, Some(prev)) => {
                    self.accounts.insert(a, prev);
                }
                Undo::Account(a, None) => {
                    self.accounts.remove(&a);
                }
                Undo::Asset(id, Some(prev)) => {
                    self.assets.insert(id, prev);
                }
                Undo::Asset(id, None) => {
                    self.assets.remove(&id);
                }
                Undo::Roles(prev) => self.roles = prev,
                Undo::Object(key, Some(prev)) => {
                    self.objects.insert(key, prev);
                }
                Undo::Object(key, None) => {
                    self.objects.remove(&key);
                }
            }
        }
    }

    /// Checks admissibility, charges fee and nonce, then runs the action; a rejected
    /// action is rolled back and reported in the receipt.
    fn apply_tx(&mut self, ctx: &BlockContext, id: Hash, stx: &SignedTransaction) -> Result<Receipt, Inadmissible> {
        let tx = &stx.tx;
        let params = &self.base.params;
        if tx.chain_id != params.chain_id {
            return Err(Inadmissible::WrongChain { expected: params.chain_id.clone(), got: tx.chain_id.clone() });
        }
        if tx.expired_at(ctx.height) {
            return Err(Inadmissible::Expired { expiry_height: tx.expiry_height.unwrap_or(0), height: ctx.height.0 });
        }
        if tx.fee < params.fee {
            return Err(Inadmissible::FeeTooLow { fee: tx.fee, min: params.fee });
        }
        let (nonce, spendable) =
            self.account(&tx.signer).map_or((0, Amount::ZERO), |a| (a.nonce, a.spendable(AssetId::TSR)));
        if tx.nonce < nonce {
            return Err(Inadmissible::NonceTooLow { expected: nonce, got: tx.nonce });
        }
        if tx.nonce > nonce {
            return Err(Inadmissible::NonceTooHigh { expected: nonce, got: tx.nonce });
        }
        if spendable < tx.fee {
            return Err(Inadmissible::CannotPayFee { spendable, fee: tx.fee });
        }
        let signer = self.account_mut(tx.signer);
        signer.debit(AssetId::TSR, tx.fee).expect("checked against spendable");
        signer.nonce = signer.nonce.checked_add(1).expect("nonce overflow after 2^64 transactions");
        let treasury = self.roles().treasury;
        self.account_mut(treasury)
            .credit(AssetId::TSR, tx.fee)
            .expect("fees come out of the supply, so the treasury cannot overflow");

        self.journaling = true;
        let outcome = match self.apply_action(tx.signer, &tx.action) {
            Ok(()) => Outcome::Success,
            Err(code) => {
                self.rollback_to(0);
                Outcome::Rejected(code)
            }
        };
        self.undo.clear();
        self.journaling = false;
        Ok(Receipt { tx_id: id, fee_paid: tx.fee, outcome })
    }

    fn apply_action(&mut self, signer: Address, action: &Action) -> Result<(), RejectCode> {
        match *action {
            Action::Transfer { to, asset, amount } => {
                self.asset(&asset).ok_or(RejectCode::UnknownAsset)?;
                self.check_transfer_restrictions(signer, to, asset)?;
                self.debit_releasing(signer, asset, amount)?;
                self.account_mut(to).credit(asset, amount)?;
            }
            Action::CreateAsset { symbol, decimals, max_supply } => {
                if self.asset(&symbol).is_some() {
                    return Err(RejectCode::AssetExists);
                }
                self.put_asset(AssetInfo { symbol, decimals, issuer: signer, supply: Amount::ZERO, max_supply });
            }
            Action::Mint { asset, to, amount } => {
                let mut info = self.asset(&asset).ok_or(RejectCode::UnknownAsset)?.clone();
                if info.issuer != signer {
                    return Err(RejectCode::NotAssetIssuer);
                }
                info.supply = info.supply.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
                if info.max_supply.is_some_and(|m| info.supply > m) {
                    return Err(RejectCode::MaxSupplyExceeded);
                }
                self.account_mut(to).credit(asset, amount)?;
                self.put_asset(info);
            }
            Action::Burn { asset, amount } => {
                let mut info = self.asset(&asset).ok_or(RejectCode::UnknownAsset)?.clone();
                if info.issuer != signer {
                    return Err(RejectCode::NotAssetIssuer);
                }
                self.account_mut(signer).debit(asset, amount)?;
                info.supply = info.supply.checked_sub(amount).expect("a balance never exceeds its asset's supply");
                self.put_asset(info);
            }
            Action::SetRole { role, address } => {
                let mut roles = self.roles().clone();
                if roles.issuer != signer {
                    return Err(RejectCode::NotGenesisIssuer);
                }
                roles.set(role, address);
                self.put_roles(roles);
            }
            Action::AttestEntity { entity, ref attestation } => self.attest_entity(signer, entity, attestation)?,
            Action::BindWallet { entity, wallet } => self.bind_wallet(signer, entity, wallet)?,
            Action::UnbindWallet { wallet } => self.unbind_wallet(signer, wallet)?,
            Action::RevokeEntity { entity } => self.revoke_entity(signer, entity)?,
            Action::CreateOffering { ref config } => self.create_offering(signer, config)?,
            Action::Commit { offering, tranche, amount } => self.commit(signer, offering, tranche, amount)?,
            Action::Bid { offering, tranche, price, quantity } => {
                self.bid(signer, offering, tranche, price, quantity)?
            }
            Action::CancelCommitment { offering, tranche } => self.cancel_commitment(signer, offering, tranche)?,
            Action::FinalizeOffering { offering } => self.finalize_offering(signer, offering)?,
            Action::Claim { offering, tranche, entity } => self.claim(offering, tranche, entity)?,
            Action::WithdrawProceeds { offering } => self.withdraw_proceeds(signer, offering)?,
            Action::CreateGrant { beneficiary, asset, amount, ref schedule, revocable } => {
                self.create_grant(signer, beneficiary, asset, amount, schedule, revocable)?
            }
            Action::RevokeGrant { grant } => self.revoke_grant(signer, grant)?,
            Action::ReleaseVested { grant } => {
                self.release_vested(grant)?;
            }
            Action::RegisterProvider { ref info, stake } => self.register_provider(signer, info, stake)?,
            Action::UpdateProvider { ref info, add_stake } => self.update_provider(signer, info, add_stake)?,
            Action::DeregisterProvider => self.deregister_provider(signer)?,
            Action::WithdrawProviderStake => self.withdraw_provider_stake(signer)?,
            Action::OpenChannel { recipient, voucher_signer, amount, expiry_height } => {
                self.open_channel(signer, recipient, voucher_signer, amount, expiry_height)?
            }
            Action::FundChannel { channel, amount } => self.fund_channel(signer, channel, amount)?,
            Action::ExtendChannel { channel, expiry_height } => self.extend_channel(signer, channel, expiry_height)?,
            Action::ClaimChannels { ref claims } => self.claim_channels(signer, claims)?,
            Action::ReclaimChannel { channel } => self.reclaim_channel(signer, channel)?,
            Action::RegisterNeuron { max_burn } => self.register_neuron(signer, max_burn)?,
            Action::SetWeights { ref uids, ref weights } => self.set_weights(signer, uids, weights)?,
            Action::Stake { evaluator, amount } => self.stake(signer, evaluator, amount)?,
            Action::Unstake { evaluator, amount } => self.unstake(signer, evaluator, amount)?,
            Action::WithdrawUnstaked => self.withdraw_unstaked(signer)?,
            Action::SetTake { take_bps } => self.set_take(signer, take_bps)?,
            Action::CommitWeights { hash } => self.commit_weights(signer, hash)?,
            Action::RevealWeights { ref uids, ref weights, ref salt } => {
                self.reveal_weights(signer, uids, weights, salt)?
            }
        }
        Ok(())
    }

    /// Turns the overlay into a write set and the post-state lattice hash, asserting
    /// supply conservation per asset on the way.
    fn finish(self) -> (WriteSet, LtHash) {
        let base = self.base;
        let mut lthash = base.lthash.clone();
        let mut scratch = Vec::with_capacity(256);
        // Adds (or, for an old value, subtracts) one entry's lanes via a reused buffer.
        let mut apply = |lthash: &mut LtHash, entry: Entry<'_>, added: bool| {
            scratch.clear();
            entry.encode_into(&mut scratch);
            if added {
                lthash.add_entry(&scratch);
            } else {
                lthash.sub_entry(&scratch);
            }
        };
        let mut accounts = Vec::with_capacity(self.accounts.len());
        let mut supply_check = SupplyCheck::default();
        for (addr, acct) in self.accounts {
            let old = base.accounts.get(&addr);
            let new = if acct.is_empty() { None } else { Some(acct) };
            if old == new.as_ref() {
                continue;
            }
            if let Some(o) = old {
                apply(&mut lthash, Entry::Account(&addr, o), false);
                supply_check.balances(o, false);
            }
            if let Some(n) = &new {
                apply(&mut lthash, Entry::Account(&addr, n), true);
                supply_check.balances(n, true);
            }
            accounts.push((addr, new));
        }
        let mut assets = BTreeMap::new();
        for (id, info) in self.assets {
            let old = base.assets.get(&id);
            if old == Some(&info) {
                continue;
            }
            if let Some(o) = old {
                apply(&mut lthash, Entry::Asset(o), false);
                supply_check.supply(id, o.supply, false);
            }
            apply(&mut lthash, Entry::Asset(&info), true);
            supply_check.supply(id, info.supply, true);
            assets.insert(id, info);
        }
        let roles = self.roles.filter(|r| *r != base.roles);
        if let Some(r) = &roles {
            apply(&mut lthash, Entry::Roles(&base.roles), false);
            apply(&mut lthash, Entry::Roles(r), true);
        }
        let mut objects = Vec::with_capacity(self.objects.len());
        for (key, new) in self.objects {
            let old = base.objects.get(&key);
            if old == new.as_ref() {
                continue;
            }
            if let Some(o) = old {
                apply(&mut lthash, Entry::Object(&key, o), false);
            }
            if let Some(n) = &new {
                apply(&mut lthash, Entry::Object(&key, n), true);
            }
            objects.push((key, new));
        }
        supply_check.assert_conserved();
        (WriteSet { accounts, assets, roles, objects }, lthash)
    }
}

/// Per asset: (sum of new balances + old supply) must equal (sum of old balances + new
/// supply) over the accounts and assets a block changed. 256-bit sums, so no overflow.
#[derive(Default)]
struct SupplyCheck {
    // asset -> [left side, right side] as (high, low) u128 pairs
    sides: BTreeMap<AssetId, [(u128, u128); 2]>,
}

impl SupplyCheck {
    fn add(&mut self, asset: AssetId, side: usize, v: u128) {
        let s = &mut self.sides.entry(asset).or_default()[side];
        let (lo, carry) = s.1.overflowing_add(v);
        s.1 = lo;
        s.0 = s.0.checked_add(carry as u128).expect("256-bit sum cannot overflow");
    }

    fn balances(&mut self, acct: &Account, new: bool) {
        for b in &acct.balances {
            self.add(b.asset, if new { 0 } else { 1 }, b.amount.0);
        }
    }

    fn supply(&mut self, asset: AssetId, supply: Amount, new: bool) {
        self.add(asset, if new { 1 } else { 0 }, supply.0);
    }

    fn assert_conserved(&self) {
        for (asset, [left, right]) in &self.sides {
            assert_eq!(left, right, "supply of {asset} not conserved by this block");
        }
    }
}
