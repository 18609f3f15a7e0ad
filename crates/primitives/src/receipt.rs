//! Receipts: one per included transaction, with a stable outcome code.

use crate::{Amount, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Receipt {
    pub tx_id: Hash,
    pub fee_paid: Amount,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Outcome {
    Success,
    Rejected(RejectCode),
}

/// Why an included transaction's action was rejected. Its fee and nonce still apply;
/// nothing else changed. Append-only; `code()` strings are part of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = false)]
pub enum RejectCode {
    InsufficientFunds,
    UnknownAsset,
    NotAssetIssuer,
    NotGenesisIssuer,
    MaxSupplyExceeded,
    AmountOverflow,
    AssetExists,
    TooManyBalances,
    TooManyLocks,
    NotComplianceRole,
    UnknownEntity,
    EntityRevoked,
    WalletBoundElsewhere,
    TooManyWallets,
    WalletNotVerified,
    KycExpired,
    Sanctioned,
    JurisdictionBlocked,
    UsPersonExcluded,
    UsPersonsOnly,
    InvestorClassNotAllowed,
    AccreditationRequired,
    AccreditationExpired,
    RegCfLimitExceeded,
    UnknownOffering,
    UnknownTranche,
    TrancheNotOpen,
    TrancheClosed,
    BelowMinimum,
    AboveEntityMax,
    SoldOut,
    WrongMechanism,
    BidLowered,
    PriceOffGrid,
    CancellationClosed,
    NoCommitment,
    OtherWalletCommitted,
    OfferingStillOpen,
    OfferingFinalized,
    OfferingNotFinalized,
    AlreadyClaimed,
    NotOfferingCreator,
    UnknownGrant,
    GrantNotRevocable,
    NotGrantor,
    Locked,
    RecipientIneligible,
    SanctionedParty,
    InvalidOffering,
    AuctionEnded,
    AlreadyCommitted,
}

impl RejectCode {
    pub const ALL: [RejectCode; 51] = [
        RejectCode::InsufficientFunds,
        RejectCode::UnknownAsset,
        RejectCode::NotAssetIssuer,
        RejectCode::NotGenesisIssuer,
        RejectCode::MaxSupplyExceeded,
        RejectCode::AmountOverflow,
        RejectCode::AssetExists,
        RejectCode::TooManyBalances,
        RejectCode::TooManyLocks,
        RejectCode::NotComplianceRole,
        RejectCode::UnknownEntity,
        RejectCode::EntityRevoked,
        RejectCode::WalletBoundElsewhere,
        RejectCode::TooManyWallets,
        RejectCode::WalletNotVerified,
        RejectCode::KycExpired,
        RejectCode::Sanctioned,
        RejectCode::JurisdictionBlocked,
        RejectCode::UsPersonExcluded,
        RejectCode::UsPersonsOnly,
        RejectCode::InvestorClassNotAllowed,
        RejectCode::AccreditationRequired,
        RejectCode::AccreditationExpired,
        RejectCode::RegCfLimitExceeded,
        RejectCode::UnknownOffering,
        RejectCode::UnknownTranche,
        RejectCode::TrancheNotOpen,
        RejectCode::TrancheClosed,
        RejectCode::BelowMinimum,
        RejectCode::AboveEntityMax,
        RejectCode::SoldOut,
        RejectCode::WrongMechanism,
        RejectCode::BidLowered,
        RejectCode::PriceOffGrid,
        RejectCode::CancellationClosed,
        RejectCode::NoCommitment,
        RejectCode::OtherWalletCommitted,
        RejectCode::OfferingStillOpen,
        RejectCode::OfferingFinalized,
        RejectCode::OfferingNotFinalized,
        RejectCode::AlreadyClaimed,
        RejectCode::NotOfferingCreator,
        RejectCode::UnknownGrant,
        RejectCode::GrantNotRevocable,
        RejectCode::NotGrantor,
        RejectCode::Locked,
        RejectCode::RecipientIneligible,
        RejectCode::SanctionedParty,
        RejectCode::InvalidOffering,
        RejectCode::AuctionEnded,
        RejectCode::AlreadyCommitted,
    ];

    pub fn code(self) -> &'static str {
        match self {
            RejectCode::InsufficientFunds => "insufficient_funds",
            RejectCode::UnknownAsset => "unknown_asset",
            RejectCode::NotAssetIssuer => "not_asset_issuer",
            RejectCode::NotGenesisIssuer => "not_genesis_issuer",
            RejectCode::MaxSupplyExceeded => "max_supply_exceeded",
            RejectCode::AmountOverflow => "amount_overflow",
            RejectCode::AssetExists => "asset_exists",
            RejectCode::TooManyBalances => "too_many_balances",
            RejectCode::TooManyLocks => "too_many_locks",
            RejectCode::NotComplianceRole => "not_compliance_role",
            RejectCode::UnknownEntity => "unknown_entity",
            RejectCode::EntityRevoked => "entity_revoked",
            RejectCode::WalletBoundElsewhere => "wallet_bound_elsewhere",
            RejectCode::TooManyWallets => "too_many_wallets",
            RejectCode::WalletNotVerified => "wallet_not_verified",
            RejectCode::KycExpired => "kyc_expired",
            RejectCode::Sanctioned => "sanctioned",
            RejectCode::JurisdictionBlocked => "jurisdiction_blocked",
            RejectCode::UsPersonExcluded => "us_person_excluded",
            RejectCode::UsPersonsOnly => "us_persons_only",
            RejectCode::InvestorClassNotAllowed => "investor_class_not_allowed",
            RejectCode::AccreditationRequired => "accreditation_required",
            RejectCode::AccreditationExpired => "accreditation_expired",
            RejectCode::RegCfLimitExceeded => "reg_cf_limit_exceeded",
            RejectCode::UnknownOffering => "unknown_offering",
            RejectCode::UnknownTranche => "unknown_tranche",
            RejectCode::TrancheNotOpen => "tranche_not_open",
            RejectCode::TrancheClosed => "tranche_closed",
            RejectCode::BelowMinimum => "below_minimum",
            RejectCode::AboveEntityMax => "above_entity_max",
            RejectCode::SoldOut => "sold_out",
            RejectCode::WrongMechanism => "wrong_mechanism",
            RejectCode::BidLowered => "bid_lowered",
            RejectCode::PriceOffGrid => "price_off_grid",
            RejectCode::CancellationClosed => "cancellation_closed",
            RejectCode::NoCommitment => "no_commitment",
            RejectCode::OtherWalletCommitted => "other_wallet_committed",
            RejectCode::OfferingStillOpen => "offering_still_open",
            RejectCode::OfferingFinalized => "offering_finalized",
            RejectCode::OfferingNotFinalized => "offering_not_finalized",
            RejectCode::AlreadyClaimed => "already_claimed",
            RejectCode::NotOfferingCreator => "not_offering_creator",
            RejectCode::UnknownGrant => "unknown_grant",
            RejectCode::GrantNotRevocable => "grant_not_revocable",
            RejectCode::NotGrantor => "not_grantor",
            RejectCode::Locked => "locked",
            RejectCode::RecipientIneligible => "recipient_ineligible",
            RejectCode::SanctionedParty => "sanctioned_party",
            RejectCode::InvalidOffering => "invalid_offering",
            RejectCode::AuctionEnded => "auction_ended",
            RejectCode::AlreadyCommitted => "already_committed",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            RejectCode::InsufficientFunds => "spendable balance (balance minus locks) is below the amount",
            RejectCode::UnknownAsset => "no asset with this symbol exists",
            RejectCode::NotAssetIssuer => "only the asset's issuer may mint or burn it",
            RejectCode::NotGenesisIssuer => "only the genesis issuer may appoint roles",
            RejectCode::MaxSupplyExceeded => "minting this amount would pass the asset's max supply",
            RejectCode::AmountOverflow => "the resulting balance or supply would overflow 128 bits",
            RejectCode::AssetExists => "an asset with this symbol already exists",
            RejectCode::TooManyBalances => "the receiving account already holds the most assets an account may hold",
            RejectCode::TooManyLocks => "the account already carries the most locks an account may carry",
            RejectCode::NotComplianceRole => "only the compliance role may attest, bind or revoke entities",
            RejectCode::UnknownEntity => "no entity with this id has been attested",
            RejectCode::EntityRevoked => "the entity's verification was revoked",
            RejectCode::WalletBoundElsewhere => "the wallet is already bound to another entity",
            RejectCode::TooManyWallets => "the entity already has the most wallets an entity may bind",
            RejectCode::WalletNotVerified => "the wallet is not bound to a verified entity",
            RejectCode::KycExpired => "the entity's KYC/KYB verification has expired",
            RejectCode::Sanctioned => "the entity failed sanctions screening",
            RejectCode::JurisdictionBlocked => "the entity's jurisdiction may not buy in this tranche",
            RejectCode::UsPersonExcluded => "U.S. persons may not buy in this tranche (Regulation S)",
            RejectCode::UsPersonsOnly => "only U.S. persons may buy in this tranche",
            RejectCode::InvestorClassNotAllowed => "the entity's investor class may not buy in this tranche",
            RejectCode::AccreditationRequired => "this tranche needs verified accreditation (Rule 506(c)); self-certification is not enough",
            RejectCode::AccreditationExpired => "the entity's accreditation verification has expired",
            RejectCode::RegCfLimitExceeded => "the commitment would pass the entity's 12-month Reg CF investment limit",
            RejectCode::UnknownOffering => "no offering with this id",
            RejectCode::UnknownTranche => "the offering has no tranche with this index",
            RejectCode::TrancheNotOpen => "the tranche's window has not opened yet",
            RejectCode::TrancheClosed => "the tranche's window has closed",
            RejectCode::BelowMinimum => "the entity's total commitment would be below the tranche's per-entity minimum",
            RejectCode::AboveEntityMax => "the entity's total commitment would pass the tranche's per-entity maximum",
            RejectCode::SoldOut => "the tranche is sold out",
            RejectCode::WrongMechanism => "this action does not apply to the tranche's sale mechanism",
            RejectCode::BidLowered => "a bid may only be raised: price and quantity at least the previous bid's",
            RejectCode::PriceOffGrid => "the bid price is not on the tranche's price grid or is outside reserve and ceiling",
            RejectCode::CancellationClosed => "commitments in this tranche can no longer be cancelled",
            RejectCode::NoCommitment => "the entity has no commitment in this tranche",
            RejectCode::OtherWalletCommitted => "another wallet of this entity holds the entity's commitment in this tranche",
            RejectCode::OfferingStillOpen => "the offering cannot be finalized before its last tranche closes",
            RejectCode::OfferingFinalized => "the offering has already been finalized",
            RejectCode::OfferingNotFinalized => "the offering has not been finalized yet",
            RejectCode::AlreadyClaimed => "this commitment has already been claimed",
            RejectCode::NotOfferingCreator => "only the offering's creator may do this",
            RejectCode::UnknownGrant => "no grant or lot with this id",
            RejectCode::GrantNotRevocable => "the grant is not revocable, or was already revoked",
            RejectCode::NotGrantor => "only the grantor may revoke a grant",
            RejectCode::Locked => "the tokens are locked (lockup or vesting) and cannot move yet",
            RejectCode::RecipientIneligible => "during the distribution-compliance period these tokens may only go to wallets of verified non-U.S. persons",
            RejectCode::SanctionedParty => "the sender or the recipient is bound to a sanctioned or revoked entity",
            RejectCode::InvalidOffering => "the offering refers to an unknown asset or its creator is not the asset's issuer",
            RejectCode::AuctionEnded => "the Dutch auction has already ended: demand met supply",
            RejectCode::AlreadyCommitted => "a Dutch auction takes one commitment per entity, filled in arrival order",
        }
    }
}

impl Serialize for Receipt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Receipt", 5)?;
        st.serialize_field("tx_hash", &self.tx_id)?;
        st.serialize_field("fee_paid", &self.fee_paid)?;
        match self.outcome {
            Outcome::Success => {
                st.serialize_field("status", "success")?;
                st.serialize_field("code", &None::<&str>)?;
                st.serialize_field("message", &None::<&str>)?;
            }
            Outcome::Rejected(code) => {
                st.serialize_field("status", "rejected")?;
                st.serialize_field("code", code.code())?;
                st.serialize_field("message", code.message())?;
            }
        }
        st.end()
    }
}
