//! Module records: one ordered key space for everything that is not an account or an
//! asset (the compliance registry, offerings, commitments, vesting grants). Each record
//! is one state entry in the lattice hash, one row in a checkpoint, and journaled like an
//! account inside a block. Later modules (channels, providers, staking) add variants.
//! Both enums are append-only: the borsh tag of a variant is its position.

use borsh::{BorshDeserialize, BorshSerialize};
use primitives::channel::ProviderInfo;
use primitives::sale::{Attestation, OfferingConfig, Schedule};
use primitives::{Address, Amount, AssetId, EntityId, Hash};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum ObjKey {
    /// Id counters.
    Counters,
    Entity(EntityId),
    Offering(u64),
    Tranche(u64, u16),
    /// One commitment (or bid) per entity per tranche.
    Commitment(u64, u16, EntityId),
    Grant(u64),
    /// An entity's Reg CF purchases over the last 12 months.
    RegCf(EntityId),
    Provider(Address),
    Channel(u64),
    /// The incentive network's globals.
    Subnet,
    Neuron(u16),
    /// A neuron's uid by its key.
    NeuronOf(Address),
    /// An evaluator's stake pool.
    StakePool(Address),
    /// A delegator's shares in an evaluator's pool: (delegator, evaluator).
    Delegation(Address, Address),
}

impl ObjKey {
    /// The first and last possible commitment keys of a tranche (for range scans).
    pub fn commitments_of(offering: u64, tranche: u16) -> (ObjKey, ObjKey) {
        (
            ObjKey::Commitment(offering, tranche, EntityId([0; 32])),
            ObjKey::Commitment(offering, tranche, EntityId([0xff; 32])),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum Object {
    Counters(Counters),
    Entity(EntityRecord),
    Offering(Offering),
    Tranche(TrancheState),
    Commitment(Commitment),
    Grant(Grant),
    RegCf(RegCfHistory),
    Provider(ProviderRecord),
    Channel(ChannelRecord),
    Subnet(SubnetRecord),
    Neuron(NeuronRecord),
    Uid(u16),
    StakePool(StakePool),
    Delegation(Delegation),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Counters {
    pub next_offering: u64,
    pub next_grant: u64,
    pub next_channel: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct EntityRecord {
    pub attestation: Attestation,
    /// Set by `RevokeEntity`, cleared by a new attestation.
    pub revoked: bool,
    /// Bound wallets, sorted.
    pub wallets: Vec<Address>,
    /// Block time of the last attestation or revocation (audit trail).
    pub updated_ms: u64,
}

impl EntityRecord {
    /// Sanctioned or revoked: may neither buy nor send nor receive restricted transfers.
    pub fn blocked(&self) -> bool {
        self.revoked || self.attestation.screening == primitives::sale::Screening::Hit
    }
}

/// Lifecycle of an offering. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum OfferingStatus {
    Open,
    /// Settled: allocations are fixed; claims deliver tokens and refunds.
    Settled,
    /// The soft cap was missed: every commitment is refunded in full.
    Failed,
}

impl OfferingStatus {
    pub fn name(self) -> &'static str {
        match self {
            OfferingStatus::Open => "open",
            OfferingStatus::Settled => "settled",
            OfferingStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Offering {
    pub id: u64,
    pub creator: Address,
    pub config: OfferingConfig,
    /// The module account holding the unsold tokens and the proceeds received.
    pub escrow: Address,
    pub status: OfferingStatus,
    /// At settlement: quote the issuer receives once everyone has claimed.
    pub proceeds: Amount,
    /// At settlement: tokens allocated to investors.
    pub tokens_sold: Amount,
    /// Quote already taken by the creator.
    pub proceeds_withdrawn: Amount,
    /// Unsold tokens already returned to the creator.
    pub tokens_returned: Amount,
    pub created_ms: u64,
    pub settled_ms: u64,
}

/// Running totals of a tranche, and after settlement the rule every claim applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct TrancheState {
    /// Σ escrowed quote of live commitments.
    pub escrowed: Amount,
    /// Mechanism-specific demand: Σ commitments (fixed price, Dutch), Σ bid quantity
    /// (auction), tokens sold so far (tiered).
    pub demand: Amount,
    pub commitments: u64,
    /// Dutch: block time and clock price at which demand met supply.
    pub dutch_end: Option<(u64, Amount)>,
    pub settlement: Option<Settlement>,
}

/// The allocation rule fixed at settlement (see `alloc::allocate`). Append-only.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum Rule {
    /// Nothing accepted: every commitment refunded (soft cap missed).
    RefundAll,
    /// accepted = c if demand ≤ capacity, else ⌊c · capacity / demand⌋.
    ProRata { capacity: Amount, demand: Amount },
    /// accepted = min(c, level).
    WaterFill { level: Amount },
    /// Filled at commit time (tiered).
    AsCommitted,
    /// Bids above `price` fill fully, at `price` fill ⌊q · rest / at_price⌋ (or fully
    /// when `at_price ≤ rest`), below it not at all; everyone pays `price`.
    Clearing { price: Amount, rest: Amount, at_price: Amount },
    /// accepted = min(c, capacity − before) in arrival order, at `price`.
    Dutch { price: Amount, capacity: Amount },
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Settlement {
    pub rule: Rule,
    pub tokens_sold: Amount,
    pub proceeds: Amount,
    pub refunds: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Commitment {
    /// The wallet whose money is escrowed; tokens and refunds go back to it.
    pub wallet: Address,
    /// Quote locked.
    pub escrow: Amount,
    /// Auction: limit price and quantity. Tiered: tokens filled and quote paid.
    pub price: Amount,
    pub quantity: Amount,
    /// Dutch: Σ commitments before this one (arrival order).
    pub before: Amount,
    pub committed_ms: u64,
    pub claimed: bool,
}

/// Where a grant came from. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum GrantSource {
    /// Created by `CreateGrant` (team, advisors, foundation).
    Grant,
    /// A lot delivered by an offering's tranche.
    Sale { offering: u64, tranche: u16 },
}

/// Tokens held by `beneficiary` and locked under a schedule: a vesting grant or a
/// sale lot with a lockup.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Grant {
    pub id: u64,
    pub source: GrantSource,
    pub grantor: Address,
    pub beneficiary: Address,
    pub asset: AssetId,
    /// Total under the schedule (after a revocation: what had vested then).
    pub total: Amount,
    /// Unlocked so far.
    pub released: Amount,
    pub schedule: Schedule,
    pub revocable: bool,
    /// Block time of the revocation, if revoked (vesting stops there).
    pub revoked_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegCfHistory {
    /// (time, offering, tranche, amount) of live Reg CF commitments, oldest first.
    pub entries: Vec<RegCfEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct RegCfEntry {
    pub at_ms: u64,
    pub offering: u64,
    pub tranche: u16,
    pub amount: Amount,
}

/// A registered AI provider.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ProviderRecord {
    pub address: Address,
    pub info: ProviderInfo,
    /// TSR locked on the provider's account (`LockKind::Stake`, reference 0).
    pub stake: Amount,
    pub registered_ms: u64,
    /// Set by `DeregisterProvider`: the stake unlocks at this block time.
    pub unbonding_until_ms: Option<u64>,
}

/// A unidirectional payment channel. Its escrow is a lock on the sender's account
/// (`LockKind::ChannelEscrow`, reference = id). Invariant: deposited = claimed +
/// reclaimed + escrowed.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChannelRecord {
    pub id: u64,
    pub sender: Address,
    pub recipient: Address,
    /// Signs vouchers (the sender unless it named another key).
    pub signer: Address,
    /// Bumped by every claim and reclaim: vouchers of older nonces are void.
    pub nonce: u64,
    pub escrowed: Amount,
    pub deposited: Amount,
    pub claimed: Amount,
    pub reclaimed: Amount,
    pub expiry_height: u64,
    pub opened_height: u64,
}

/// The incentive network (one Bittensor-style subnet): slots, emission and epoch totals.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SubnetRecord {
    /// Neuron slots in use (uids `0..n`).
    pub n: u16,
    /// TSR minted by emission so far (never above the cap).
    pub emitted: Amount,
    /// The registration fee as last set, and the height it was set at (it decays from there).
    pub burn: Amount,
    pub burn_height: u64,
    /// Height of the last epoch (0: none yet).
    pub last_epoch_height: u64,
    pub epochs: u64,
    /// Registration fees received (recycled into the pool).
    pub fees: Amount,
    /// Paid out by all epochs, and by the last one.
    pub paid: Amount,
    pub last_epoch_paid: Amount,
}

impl SubnetRecord {
    /// The record before the first registration or emission.
    pub fn initial(p: &primitives::incentive::IncentiveParams) -> Self {
        SubnetRecord {
            n: 0,
            emitted: Amount::ZERO,
            burn: p.burn_initial_base_units,
            burn_height: 0,
            last_epoch_height: 0,
            epochs: 0,
            fees: Amount::ZERO,
            paid: Amount::ZERO,
            last_epoch_paid: Amount::ZERO,
        }
    }
}

/// One neuron slot: its key, its weights and bonds as subtensor stores them, and what the
/// last epoch computed for it (proportions as u16 of 65535).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct NeuronRecord {
    pub uid: u16,
    pub hotkey: Address,
    pub registered_height: u64,
    /// Height of the last accepted weights (registration counts).
    pub last_update: u64,
    pub validator_permit: bool,
    /// (uid, weight) max-upscaled, in submission order.
    pub weights: Vec<(u16, u16)>,
    pub bonds: Vec<(u16, u16)>,
    pub active: bool,
    pub stake_weight: u16,
    pub consensus: u16,
    pub incentive: u16,
    pub dividends: u16,
    pub validator_trust: u16,
    /// Combined emission of the last epoch in base units (the pruning key).
    pub emission: u64,
    pub last_incentive_paid: Amount,
    pub last_dividends_paid: Amount,
    /// Commit-reveal: live weight commits, and the height of the last one.
    pub commits: Vec<WeightCommit>,
    pub last_commit: u64,
}

/// A committed, not yet revealed weight vector.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct WeightCommit {
    pub hash: Hash,
    /// Epoch index (height / tempo) and height of the commit.
    pub epoch: u64,
    pub block: u64,
}

impl WeightCommit {
    /// Past its reveal epoch.
    pub fn expired(&self, epoch: u64, reveal_period: u64) -> bool {
        epoch > self.epoch + reveal_period
    }
}

impl NeuronRecord {
    pub fn new(uid: u16, hotkey: Address, height: u64) -> Self {
        NeuronRecord {
            uid,
            hotkey,
            registered_height: height,
            last_update: height,
            validator_permit: false,
            weights: Vec::new(),
            bonds: Vec::new(),
            active: true,
            stake_weight: 0,
            consensus: 0,
            incentive: 0,
            dividends: 0,
            validator_trust: 0,
            emission: 0,
            last_incentive_paid: Amount::ZERO,
            last_dividends_paid: Amount::ZERO,
            commits: Vec::new(),
            last_commit: 0,
        }
    }
}

/// An evaluator's stake pool. Its TSR sits in the stake module account.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StakePool {
    pub total: Amount,
    pub shares: u128,
    /// The evaluator's cut of its dividends, basis points.
    pub take_bps: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Delegation {
    pub shares: u128,
}

/// The address of a module account: derived, so nobody holds its key; only the ledger
/// moves its funds.
pub fn module_account(kind: &str, id: u64) -> Address {
    Address(Hash::domain("tessera 2026-11 module account", &[kind.as_bytes(), &id.to_le_bytes()]).0)
}
