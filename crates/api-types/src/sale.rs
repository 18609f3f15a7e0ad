//! JSON views of the sale, the compliance registry and vesting.

use primitives::sale::{Attestation, OfferingConfig, Schedule};
use primitives::{Address, Amount, AssetId, EntityId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OfferingView {
    #[serde(with = "primitives::serde_u64")]
    pub id: u64,
    pub creator: Address,
    /// The module account holding unsold tokens and received proceeds.
    pub escrow: Address,
    /// open, settled or failed (soft cap missed: everyone refunded).
    pub status: String,
    pub tokens_sold: Amount,
    pub proceeds: Amount,
    pub proceeds_withdrawn: Amount,
    pub tokens_returned: Amount,
    #[serde(with = "primitives::serde_u64")]
    pub created_ms: u64,
    #[serde(with = "primitives::serde_u64")]
    pub settled_ms: u64,
    pub config: OfferingConfig,
    pub tranches: Vec<TrancheView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrancheView {
    pub index: u16,
    pub name: String,
    pub exemption: String,
    pub mechanism: String,
    pub supply: Amount,
    /// Quote locked by live commitments.
    pub escrowed: Amount,
    /// Σ commitments (fixed price, Dutch), Σ bid quantity (auction), tokens sold (tiered).
    pub demand: Amount,
    #[serde(with = "primitives::serde_u64")]
    pub commitments: u64,
    /// Dutch: the clock price now (open) or where demand met supply.
    #[serde(default)]
    pub current_price: Option<Amount>,
    #[serde(default)]
    pub settlement: Option<SettlementView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SettlementView {
    /// refund_all, pro_rata, water_fill, as_committed, clearing, dutch
    pub rule: String,
    /// The uniform price paid (auctions, fixed price), if one applies.
    #[serde(default)]
    pub price: Option<Amount>,
    pub tokens_sold: Amount,
    pub proceeds: Amount,
    pub refunds: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitmentView {
    #[serde(with = "primitives::serde_u64")]
    pub offering: u64,
    pub tranche: u16,
    pub entity: EntityId,
    pub wallet: Address,
    pub escrow: Amount,
    /// Auction bids: the limit price and quantity; tiered: the tokens filled.
    pub price: Amount,
    pub quantity: Amount,
    pub claimed: bool,
    /// After settlement: what a claim delivers.
    #[serde(default)]
    pub allocation: Option<AllocationView>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocationView {
    pub tokens: Amount,
    pub paid: Amount,
    pub refund: Amount,
}

/// Raise by tranche and by jurisdiction (from the commitments and the entities'
/// current attestations).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OfferingReport {
    #[serde(with = "primitives::serde_u64")]
    pub offering: u64,
    pub status: String,
    pub rows: Vec<RaiseRow>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RaiseRow {
    pub tranche: u16,
    pub jurisdiction: String,
    #[serde(with = "primitives::serde_u64")]
    pub entities: u64,
    pub committed: Amount,
    /// After settlement (else zero).
    pub tokens: Amount,
    pub paid: Amount,
    pub refunded: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntityView {
    pub id: EntityId,
    pub attestation: Attestation,
    pub revoked: bool,
    pub wallets: Vec<Address>,
    #[serde(with = "primitives::serde_u64")]
    pub updated_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrantView {
    #[serde(with = "primitives::serde_u64")]
    pub id: u64,
    /// "grant", or "sale:<offering>:<tranche>" for a sale lot.
    pub source: String,
    pub grantor: Address,
    pub beneficiary: Address,
    pub asset: AssetId,
    pub total: Amount,
    /// Vested at the latest block's time.
    pub vested: Amount,
    pub released: Amount,
    pub revocable: bool,
    #[serde(default, with = "primitives::serde_u64::option")]
    pub revoked_ms: Option<u64>,
    #[serde(with = "primitives::serde_u64")]
    pub fully_vested_ms: u64,
    pub schedule: Schedule,
}

/// One holder of an asset in the cap table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapTableRow {
    pub address: Address,
    pub balance: Amount,
    pub locked: Amount,
    /// Vested but not yet released, plus everything never locked = balance − still-unvested.
    pub vested: Amount,
    #[serde(default)]
    pub entity: Option<EntityId>,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

/// One compliance-relevant decision, from the receipts: every registry action, every sale
/// and vesting action, and every transfer refused by a restriction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditRow {
    pub height: primitives::Height,
    #[serde(with = "primitives::serde_u64")]
    pub timestamp_ms: u64,
    pub tx_hash: primitives::Hash,
    pub signer: Address,
    /// The action's type, as in the transaction JSON.
    pub action: String,
    /// What it was about: an entity, a wallet, an offering/tranche, a grant, a recipient.
    pub subject: String,
    /// success or rejected
    pub status: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// A registered AI provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProviderView {
    pub address: Address,
    pub endpoint: String,
    pub models: Vec<primitives::channel::ModelOffer>,
    pub stake: Amount,
    /// active or unbonding
    pub status: String,
    #[serde(with = "primitives::serde_u64")]
    pub registered_ms: u64,
    #[serde(default, with = "primitives::serde_u64::option")]
    pub unbonding_until_ms: Option<u64>,
}

/// A payment channel. deposited = claimed + reclaimed + escrowed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelView {
    #[serde(with = "primitives::serde_u64")]
    pub id: u64,
    pub sender: Address,
    pub recipient: Address,
    /// The key that signs vouchers.
    pub signer: Address,
    /// Vouchers must carry this nonce.
    #[serde(with = "primitives::serde_u64")]
    pub nonce: u64,
    pub escrowed: Amount,
    pub deposited: Amount,
    pub claimed: Amount,
    pub reclaimed: Amount,
    #[serde(with = "primitives::serde_u64")]
    pub expiry_height: u64,
    #[serde(with = "primitives::serde_u64")]
    pub opened_height: u64,
    /// The chain's height has reached the expiry: the sender may reclaim.
    pub expired: bool,
}
