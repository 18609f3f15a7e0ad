//! Transactions: chain id, signer, nonce, fee, optional expiry height and one action,
//! signed with ed25519 over a domain-separated hash of the canonical encoding.

use crate::channel::{ChannelClaim, ProviderInfo};
use crate::incentive::{BPS, WEIGHTS_PER_TX_MAX};
use crate::limits::CLAIMS_PER_TX_MAX;
use crate::limits::{ASSET_DECIMALS_MAX, CHAIN_ID_BYTES_MAX, TX_BYTES_MAX};
use crate::sale::{Attestation, OfferingConfig, Schedule};
use crate::{codec, Address, Amount, AssetId, DecodeError, EntityId, Hash, Height};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Context string of the signing hash. Changing it invalidates every signature.
pub const TX_SIGNING_CONTEXT: &str = "tessera 2026-11 transaction signing v1";

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub chain_id: String,
    pub signer: Address,
    #[serde(with = "crate::serde_u64")]
    pub nonce: u64,
    /// Fee in TSR base units; must be at least the chain's flat fee. Paid to the treasury.
    pub fee: Amount,
    /// Last height at which the transaction may be included.
    #[serde(default, with = "crate::serde_u64::option")]
    pub expiry_height: Option<u64>,
    pub action: Action,
}

/// Append-only: the borsh tag of a variant is its position.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Transfer {
        to: Address,
        asset: AssetId,
        amount: Amount,
    },
    CreateAsset {
        symbol: AssetId,
        decimals: u8,
        max_supply: Option<Amount>,
    },
    Mint {
        asset: AssetId,
        to: Address,
        amount: Amount,
    },
    Burn {
        asset: AssetId,
        amount: Amount,
    },
    SetRole {
        role: Role,
        address: Address,
    },
    /// Compliance role: records or replaces what is known about an entity.
    AttestEntity {
        entity: EntityId,
        attestation: Attestation,
    },
    /// Compliance role: binds a wallet to an entity (one entity per wallet, a bounded
    /// number of wallets per entity).
    BindWallet {
        entity: EntityId,
        wallet: Address,
    },
    /// Compliance role: removes a wallet's binding.
    UnbindWallet {
        wallet: Address,
    },
    /// Compliance role: revokes an entity; every later purchase and transfer check fails.
    RevokeEntity {
        entity: EntityId,
    },
    /// An asset's issuer offers it for sale; the supply moves into the offering's escrow.
    CreateOffering {
        config: OfferingConfig,
    },
    /// A fully funded commitment of quote money (fixed price, tiered, Dutch tranches);
    /// the money is locked until settlement. Adds to the entity's commitment.
    Commit {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
        tranche: u16,
        amount: Amount,
    },
    /// A limit bid in a batch auction: up to `quantity` token base units at up to
    /// `price`; `price × quantity` is locked. Replaces the entity's bid, which may only
    /// be raised (price and quantity both at least the old ones).
    Bid {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
        tranche: u16,
        price: Amount,
        quantity: Amount,
    },
    /// Withdraws the signer's entity's commitment while the tranche allows it.
    CancelCommitment {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
        tranche: u16,
    },
    /// After every tranche closed: fixes each tranche's allocation rule (clearing price,
    /// pro-rata factor or fill level) and whether the soft cap was met. Offering creator.
    FinalizeOffering {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
    },
    /// Delivers an entity's tokens and refund after finalization, in O(1). Anyone may
    /// send it; tokens and refund go to the wallet that committed.
    Claim {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
        tranche: u16,
        entity: EntityId,
    },
    /// Offering creator: takes the proceeds received so far and the unsold tokens.
    WithdrawProceeds {
        #[serde(with = "crate::serde_u64")]
        offering: u64,
    },
    /// Moves `amount` of the signer's `asset` to `beneficiary`, locked under `schedule`.
    CreateGrant {
        beneficiary: Address,
        asset: AssetId,
        amount: Amount,
        schedule: Schedule,
        revocable: bool,
    },
    /// The grantor of a revocable grant freezes what has vested and takes the rest back.
    RevokeGrant {
        #[serde(with = "crate::serde_u64")]
        grant: u64,
    },
    /// Unlocks what has vested of a grant or sale lot (transfers also do it on demand).
    ReleaseVested {
        #[serde(with = "crate::serde_u64")]
        grant: u64,
    },
    /// Registers the signer as an AI provider, locking `stake` TSR.
    RegisterProvider {
        info: ProviderInfo,
        stake: Amount,
    },
    /// Replaces the endpoint and models; adds `add_stake` to the locked stake.
    UpdateProvider {
        info: ProviderInfo,
        add_stake: Amount,
    },
    /// Stops serving: the record stays, marked unbonding, until the stake is withdrawn.
    DeregisterProvider,
    /// After the unbonding period: unlocks the stake and removes the registration.
    WithdrawProviderStake,
    /// Locks `amount` TSR of the signer in a channel to `recipient`, until `expiry_height`.
    /// Vouchers are signed by `voucher_signer` (default: the sender).
    OpenChannel {
        recipient: Address,
        #[serde(default)]
        voucher_signer: Option<Address>,
        amount: Amount,
        #[serde(with = "crate::serde_u64")]
        expiry_height: u64,
    },
    /// Sender: adds funds to the channel's escrow.
    FundChannel {
        #[serde(with = "crate::serde_u64")]
        channel: u64,
        amount: Amount,
    },
    /// Sender: moves the expiry later (never earlier).
    ExtendChannel {
        #[serde(with = "crate::serde_u64")]
        channel: u64,
        #[serde(with = "crate::serde_u64")]
        expiry_height: u64,
    },
    /// Recipient: claims one or more channels with the sender's vouchers; each claim
    /// bumps its channel's nonce.
    ClaimChannels {
        claims: Vec<ChannelClaim>,
    },
    /// Sender, at or after the expiry height: takes back everything still escrowed.
    ReclaimChannel {
        #[serde(with = "crate::serde_u64")]
        channel: u64,
    },
    /// Takes a neuron slot (uid) for the signer, paying the current registration fee into
    /// the incentive pool; rejected if the fee is above `max_burn`. When every slot is taken,
    /// the non-immune neuron with the lowest emission is replaced.
    RegisterNeuron {
        max_burn: Amount,
    },
    /// An evaluator's scores of the network's neurons: `weights[k]` for uid `uids[k]`
    /// (any scale; stored max-upscaled to 65535).
    SetWeights {
        uids: Vec<u16>,
        weights: Vec<u16>,
    },
    /// Delegates `amount` TSR to an evaluator's stake pool (its own key: self-stake).
    Stake {
        evaluator: Address,
        amount: Amount,
    },
    /// Takes `amount` TSR out of an evaluator's pool; it stays locked for the unbonding
    /// period.
    Unstake {
        evaluator: Address,
        amount: Amount,
    },
    /// Unlocks every unstaked amount whose unbonding period is over.
    WithdrawUnstaked,
    /// An evaluator's share of its dividends, in basis points.
    SetTake {
        take_bps: u16,
    },
    /// Commit-reveal networks: commits to a weight vector without showing it
    /// (`incentive::weight_commit_hash`); revealed later with `RevealWeights`.
    CommitWeights {
        hash: Hash,
    },
    /// Reveals a committed weight vector in the reveal epoch; it then counts as set.
    RevealWeights {
        uids: Vec<u16>,
        weights: Vec<u16>,
        salt: Hash,
    },
}

impl Action {
    /// Stable snake_case name, as in the JSON `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Transfer { .. } => "transfer",
            Action::CreateAsset { .. } => "create_asset",
            Action::Mint { .. } => "mint",
            Action::Burn { .. } => "burn",
            Action::SetRole { .. } => "set_role",
            Action::AttestEntity { .. } => "attest_entity",
            Action::BindWallet { .. } => "bind_wallet",
            Action::UnbindWallet { .. } => "unbind_wallet",
            Action::RevokeEntity { .. } => "revoke_entity",
            Action::CreateOffering { .. } => "create_offering",
            Action::Commit { .. } => "commit",
            Action::Bid { .. } => "bid",
            Action::CancelCommitment { .. } => "cancel_commitment",
            Action::FinalizeOffering { .. } => "finalize_offering",
            Action::Claim { .. } => "claim",
            Action::WithdrawProceeds { .. } => "withdraw_proceeds",
            Action::CreateGrant { .. } => "create_grant",
            Action::RevokeGrant { .. } => "revoke_grant",
            Action::ReleaseVested { .. } => "release_vested",
            Action::RegisterProvider { .. } => "register_provider",
            Action::UpdateProvider { .. } => "update_provider",
            Action::DeregisterProvider => "deregister_provider",
            Action::WithdrawProviderStake => "withdraw_provider_stake",
            Action::OpenChannel { .. } => "open_channel",
            Action::FundChannel { .. } => "fund_channel",
            Action::ExtendChannel { .. } => "extend_channel",
            Action::ClaimChannels { .. } => "claim_channels",
            Action::ReclaimChannel { .. } => "reclaim_channel",
            Action::RegisterNeuron { .. } => "register_neuron",
            Action::SetWeights { .. } => "set_weights",
            Action::Stake { .. } => "stake",
            Action::Unstake { .. } => "unstake",
            Action::WithdrawUnstaked => "withdraw_unstaked",
            Action::SetTake { .. } => "set_take",
            Action::CommitWeights { .. } => "commit_weights",
            Action::RevealWeights { .. } => "reveal_weights",
        }
    }
}

/// Role keys the genesis issuer appoints. Append-only.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum Role {
    Compliance,
    Custodian,
    Treasury,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Compliance, Role::Custodian, Role::Treasury];

    pub fn name(self) -> &'static str {
        match self {
            Role::Compliance => "compliance",
            Role::Custodian => "custodian",
            Role::Treasury => "treasury",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown role {s:?} (compliance, custodian or treasury)"))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(s.as_bytes(), &mut out)
            .map_err(|_| serde::de::Error::custom("signature must be 128 hex characters"))?;
        Ok(Signature(out))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: Signature,
}

/// Why a transaction is malformed regardless of any state. Stable codes via `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("malformed transaction: {0}")]
    Decode(#[from] DecodeError),
    #[error("chain id must be 1-{CHAIN_ID_BYTES_MAX} printable ASCII characters")]
    ChainIdFormat,
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("an asset has at most {ASSET_DECIMALS_MAX} decimals, got {0}")]
    TooManyDecimals(u8),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl TxError {
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Decode(DecodeError::TooLong { .. }) => "tx_too_large",
            TxError::Decode(DecodeError::Malformed(_)) => "malformed_tx",
            TxError::ChainIdFormat => "malformed_tx",
            TxError::ZeroAmount => "zero_amount",
            TxError::TooManyDecimals(_) => "invalid_decimals",
            TxError::InvalidConfig(_) => "invalid_config",
        }
    }
}

impl Transaction {
    /// The hash the signer signs; also the transaction's id (so a re-encoded signature
    /// cannot make a second id for the same transaction).
    pub fn signing_hash(&self) -> Hash {
        Hash::domain(TX_SIGNING_CONTEXT, &[&codec::encode(self)])
    }

    /// Checks that need no state: field formats and ranges.
    pub fn check_stateless(&self) -> Result<(), TxError> {
        let id = self.chain_id.as_bytes();
        if id.is_empty() || id.len() > CHAIN_ID_BYTES_MAX || !id.iter().all(|b| b.is_ascii_graphic()) {
            return Err(TxError::ChainIdFormat);
        }
        match &self.action {
            Action::Transfer { amount, .. } | Action::Mint { amount, .. } | Action::Burn { amount, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::CreateAsset { decimals, max_supply, .. } => {
                if *decimals > ASSET_DECIMALS_MAX {
                    return Err(TxError::TooManyDecimals(*decimals));
                }
                if max_supply.is_some_and(|m| m.is_zero()) {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::AttestEntity { attestation, .. } => attestation.check().map_err(TxError::InvalidConfig)?,
            Action::CreateOffering { config } => config.check().map_err(TxError::InvalidConfig)?,
            Action::Commit { amount, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::Bid { price, quantity, .. } => {
                if price.is_zero() || quantity.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::CreateGrant { amount, schedule, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
                schedule.check().map_err(TxError::InvalidConfig)?;
            }
            Action::UpdateProvider { info, .. } => info.check().map_err(TxError::InvalidConfig)?,
            Action::RegisterProvider { info, stake: amount } => {
                info.check().map_err(TxError::InvalidConfig)?;
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::OpenChannel { amount, .. } | Action::FundChannel { amount, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::ClaimChannels { claims } => {
                if claims.is_empty() || claims.len() > CLAIMS_PER_TX_MAX {
                    return Err(TxError::InvalidConfig(format!("1 to {CLAIMS_PER_TX_MAX} claims per transaction")));
                }
                if claims.iter().any(|c| c.amount > c.voucher_amount) {
                    return Err(TxError::InvalidConfig("a claim cannot take more than its voucher".into()));
                }
                if claims.iter().enumerate().any(|(i, c)| claims[..i].iter().any(|d| d.channel == c.channel)) {
                    return Err(TxError::InvalidConfig("a channel is claimed twice".into()));
                }
            }
            Action::SetWeights { uids, weights } | Action::RevealWeights { uids, weights, .. } => {
                if uids.is_empty() || uids.len() > WEIGHTS_PER_TX_MAX || uids.len() != weights.len() {
                    return Err(TxError::InvalidConfig(format!(
                        "1 to {WEIGHTS_PER_TX_MAX} uids, and as many weights as uids"
                    )));
                }
                let mut sorted = uids.clone();
                sorted.sort_unstable();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(TxError::InvalidConfig("a uid is weighted twice".into()));
                }
            }
            Action::Stake { amount, .. } | Action::Unstake { amount, .. } => {
                if amount.is_zero() {
                    return Err(TxError::ZeroAmount);
                }
            }
            Action::SetTake { take_bps } => {
                if *take_bps > BPS {
                    return Err(TxError::InvalidConfig("take is at most 10000 basis points".into()));
                }
            }
            Action::RegisterNeuron { .. } | Action::WithdrawUnstaked | Action::CommitWeights { .. } => {}
            Action::DeregisterProvider
            | Action::WithdrawProviderStake
            | Action::ExtendChannel { .. }
            | Action::ReclaimChannel { .. } => {}
            Action::SetRole { .. }
            | Action::BindWallet { .. }
            | Action::UnbindWallet { .. }
            | Action::RevokeEntity { .. }
            | Action::CancelCommitment { .. }
            | Action::FinalizeOffering { .. }
            | Action::Claim { .. }
            | Action::WithdrawProceeds { .. }
            | Action::RevokeGrant { .. }
            | Action::ReleaseVested { .. } => {}
        }
        Ok(())
    }

    pub fn expired_at(&self, height: Height) -> bool {
        self.expiry_height.is_some_and(|e| height.0 > e)
    }
}

impl SignedTransaction {
    pub fn id(&self) -> Hash {
        self.tx.signing_hash()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The id and the encoded length, from one encoding (admission needs both).
    pub fn id_and_len(&self) -> (Hash, usize) {
        let tx_bytes = codec::encode(&self.tx);
        (Hash::domain(TX_SIGNING_CONTEXT, &[&tx_bytes]), tx_bytes.len() + self.signature.0.len())
    }

    /// Decodes and runs the stateless checks. Signatures are checked by the `crypto` crate.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedTransaction, TxError> {
        let stx: SignedTransaction = codec::decode(bytes, TX_BYTES_MAX)?;
        stx.tx.check_stateless()?;
        Ok(stx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn arb_action() -> impl Strategy<Value = Action> {
        let addr = any::<[u8; 32]>().prop_map(Address);
        let asset =
            prop::sample::select(vec!["TSR", "USD", "A1", "ABCDEFGHIJKL"]).prop_map(|s| AssetId::new(s).unwrap());
        let amount = any::<u128>().prop_map(Amount);
        prop_oneof![
            (addr.clone(), asset.clone(), amount.clone()).prop_map(|(to, asset, amount)| Action::Transfer {
                to,
                asset,
                amount
            }),
            (asset.clone(), any::<u8>(), proptest::option::of(amount.clone()))
                .prop_map(|(symbol, decimals, max_supply)| Action::CreateAsset { symbol, decimals, max_supply }),
            (asset.clone(), addr.clone(), amount.clone()).prop_map(|(asset, to, amount)| Action::Mint {
                asset,
                to,
                amount
            }),
            (asset, amount).prop_map(|(asset, amount)| Action::Burn { asset, amount }),
            (prop::sample::select(Role::ALL.to_vec()), addr)
                .prop_map(|(role, address)| Action::SetRole { role, address }),
        ]
    }

    fn arb_signed() -> impl Strategy<Value = SignedTransaction> {
        (
            "[a-z-]{1,20}",
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u128>(),
            proptest::option::of(any::<u64>()),
            arb_action(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(chain_id, signer, nonce, fee, expiry_height, action, sig)| {
                let mut s = [0u8; 64];
                s[..32].copy_from_slice(&sig);
                SignedTransaction {
                    tx: Transaction {
                        chain_id,
                        signer: Address(signer),
                        nonce,
                        fee: Amount(fee),
                        expiry_height,
                        action,
                    },
                    signature: Signature(s),
                }
            })
    }

    proptest! {
        #[test]
        fn borsh_round_trip(stx in arb_signed()) {
            let bytes = stx.to_bytes();
            let back: SignedTransaction = codec::decode(&bytes, TX_BYTES_MAX).unwrap();
            prop_assert_eq!(&back, &stx);
            prop_assert_eq!(codec::encode(&back), bytes);
        }

        #[test]
        fn json_round_trip(stx in arb_signed()) {
            let json = serde_json::to_string(&stx).unwrap();
            let back: SignedTransaction = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, stx);
        }

        #[test]
        fn id_and_len_match_the_encoding(stx in arb_signed()) {
            prop_assert_eq!(stx.id_and_len(), (stx.id(), stx.to_bytes().len()));
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = SignedTransaction::from_bytes(&bytes);
        }

        #[test]
        fn truncation_and_trailing_bytes_are_rejected(stx in arb_signed(), cut in 1usize..50) {
            let bytes = stx.to_bytes();
            let cut = cut.min(bytes.len());
            prop_assert!(codec::decode::<SignedTransaction>(&bytes[..bytes.len() - cut], TX_BYTES_MAX).is_err());
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(codec::decode::<SignedTransaction>(&longer, TX_BYTES_MAX).is_err());
        }
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let err = SignedTransaction::from_bytes(&vec![0u8; TX_BYTES_MAX + 1]).unwrap_err();
        assert_eq!(err.code(), "tx_too_large");
    }

    #[test]
    fn json_shape_is_stable() {
        let stx = SignedTransaction {
            tx: Transaction {
                chain_id: "tessera-devnet".into(),
                signer: Address([1; 32]),
                nonce: 7,
                fee: Amount(1000),
                expiry_height: None,
                action: Action::Transfer { to: Address([2; 32]), asset: AssetId::TSR, amount: Amount(5) },
            },
            signature: Signature([0; 64]),
        };
        let v: serde_json::Value = serde_json::to_value(&stx).unwrap();
        assert_eq!(v["tx"]["nonce"], "7");
        assert_eq!(v["tx"]["fee"], "1000");
        assert_eq!(v["tx"]["action"]["type"], "transfer");
        assert_eq!(v["tx"]["action"]["amount"], "5");
        assert!(v["tx"]["signer"].as_str().unwrap().starts_with("tsr1"));
    }
}
