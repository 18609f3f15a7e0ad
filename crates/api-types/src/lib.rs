//! JSON types of Tessera's HTTP API, shared by the node, the wallet and tests.
//!
//! Conventions: amounts are base units as decimal strings; 64-bit numbers are decimal
//! strings; addresses are bech32m `tsr1...`; hashes are lowercase hex. Every error body
//! is `ErrorBody` with a stable `code`.

pub mod sale;
pub use sale::*;

use primitives::{Address, Amount, AssetId, BlockHeader, Hash, Height, Outcome, Receipt, SignedTransaction};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub height: Height,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainInfo {
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub height: Height,
    pub latest_block_hash: Hash,
    #[serde(with = "primitives::serde_u64")]
    pub latest_timestamp_ms: u64,
    pub state_root: Hash,
    /// Flat fee per transaction in TSR base units.
    pub fee: Amount,
    #[serde(with = "primitives::serde_u64")]
    pub block_interval_ms: u64,
    pub assets: Vec<AssetView>,
    pub roles: RolesView,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AssetView {
    pub symbol: AssetId,
    pub decimals: u8,
    pub issuer: Address,
    pub supply: Amount,
    pub max_supply: Option<Amount>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RolesView {
    pub issuer: Address,
    pub compliance: Address,
    pub custodian: Address,
    pub treasury: Address,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountView {
    pub address: Address,
    /// Committed nonce: the number of transactions included so far.
    #[serde(with = "primitives::serde_u64")]
    pub nonce: u64,
    /// The nonce a new transaction should carry, counting ones pending in the mempool.
    #[serde(with = "primitives::serde_u64")]
    pub next_nonce: u64,
    pub balances: Vec<BalanceView>,
    pub locks: Vec<LockView>,
    /// The verified entity this wallet is bound to, if any.
    #[serde(default)]
    pub entity: Option<primitives::EntityId>,
    /// Resale restrictions in force: (asset, until_ms) — Reg S distribution-compliance periods.
    #[serde(default)]
    pub restrictions: Vec<RestrictionView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionView {
    pub asset: AssetId,
    pub kind: String,
    #[serde(with = "primitives::serde_u64")]
    pub until_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub asset: AssetId,
    pub balance: Amount,
    pub locked: Amount,
    pub spendable: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockView {
    pub kind: String,
    #[serde(with = "primitives::serde_u64")]
    pub reference: u64,
    pub asset: AssetId,
    pub amount: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub tx_hash: Hash,
    pub status: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchSubmitResponse {
    pub accepted: u64,
    pub rejected: Vec<BatchRejection>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchRejection {
    pub index: u32,
    pub tx_hash: Option<Hash>,
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub tx_hash: Hash,
    pub fee_paid: Amount,
    /// "success" or "rejected"
    pub status: String,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl From<&Receipt> for ReceiptView {
    fn from(r: &Receipt) -> Self {
        let (status, code, message) = match r.outcome {
            Outcome::Success => ("success", None, None),
            Outcome::Rejected(c) => ("rejected", Some(c.code().to_string()), Some(c.message().to_string())),
        };
        ReceiptView { tx_hash: r.tx_id, fee_paid: r.fee_paid, status: status.into(), code, message }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxView {
    pub tx_hash: Hash,
    /// "pending", "committed" or "dropped"
    pub status: String,
    pub height: Option<Height>,
    pub index: Option<u32>,
    pub receipt: Option<ReceiptView>,
    pub tx: Option<SignedTransaction>,
    /// Why a dropped transaction was left out of a block.
    pub error: Option<ErrorBody>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockView {
    pub hash: Hash,
    pub header: BlockHeader,
    pub txs: Vec<SignedTransaction>,
    pub receipts: Vec<ReceiptView>,
}

/// One server-sent event on `/v1/events` (event name `block`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockEvent {
    pub height: Height,
    pub hash: Hash,
    #[serde(with = "primitives::serde_u64")]
    pub timestamp_ms: u64,
    pub state_root: Hash,
    pub receipts: Vec<ReceiptView>,
}

/// Answer of `POST /v1/dev/clock`: the time the next block will carry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevClock {
    #[serde(with = "primitives::serde_u64")]
    pub now_ms: u64,
}

/// `GET /v1/network`: the incentive network, as btcli's metagraph shows a subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    pub height: u64,
    /// Neurons in use and slots.
    pub n: u16,
    pub max_uids: u16,
    pub max_validators: u16,
    pub tempo: u16,
    /// Blocks an evaluator waits between two weight vectors.
    pub weights_rate_limit: u64,
    /// Weights are committed as a hash and revealed `reveal_period_epochs` epochs later.
    #[serde(default)]
    pub commit_reveal: bool,
    #[serde(default)]
    pub reveal_period_epochs: u64,
    pub epochs: u64,
    pub last_epoch_height: u64,
    pub next_epoch_height: u64,
    /// This block's emission and the total emitted, against the cap.
    pub block_emission: Amount,
    pub emitted: Amount,
    pub emission_cap: Amount,
    /// TSR waiting in the incentive pool for the next epoch.
    pub pool: Amount,
    /// What the last epoch paid, and all epochs together.
    pub last_epoch_paid: Amount,
    pub paid: Amount,
    /// The fee a registration pays now.
    pub registration_fee: Amount,
    pub neurons: Vec<NeuronView>,
}

/// One neuron and what the last epoch computed for it. Proportions are 0..1 (the ledger
/// stores them as u16 of 65535, as subtensor does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronView {
    pub uid: u16,
    pub hotkey: Address,
    /// "evaluator" (holds a validator permit), "provider" (a registered AI provider) or
    /// "neuron".
    pub role: String,
    pub validator_permit: bool,
    pub active: bool,
    pub immune: bool,
    /// TSR in the neuron's stake pool (its own and delegated).
    pub stake: Amount,
    pub take_bps: u16,
    pub stake_weight: f64,
    pub validator_trust: f64,
    pub consensus: f64,
    pub incentive: f64,
    pub dividends: f64,
    /// Combined emission of the last epoch (base units; the pruning key).
    pub emission: u64,
    pub last_incentive_paid: Amount,
    pub last_dividends_paid: Amount,
    pub registered_height: u64,
    pub last_update: u64,
    /// Stored (uid, weight) and (uid, bond), u16 values; only in `GET /v1/network/neurons/{uid}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<(u16, u16)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonds: Option<Vec<(u16, u16)>>,
}

/// `GET /v1/accounts/{address}/stake`: an account's delegations and unbonding TSR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StakeView {
    pub address: Address,
    /// Σ value of the delegations (what the gateway's stake-for-access counts).
    pub staked: Amount,
    pub delegations: Vec<DelegationView>,
    pub unbonding: Vec<UnbondingView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationView {
    pub evaluator: Address,
    pub shares: Amount,
    pub value: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbondingView {
    pub amount: Amount,
    pub release_height: u64,
}
