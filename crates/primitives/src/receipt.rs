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
}

impl RejectCode {
    pub const ALL: [RejectCode; 9] = [
        RejectCode::InsufficientFunds,
        RejectCode::UnknownAsset,
        RejectCode::NotAssetIssuer,
        RejectCode::NotGenesisIssuer,
        RejectCode::MaxSupplyExceeded,
        RejectCode::AmountOverflow,
        RejectCode::AssetExists,
        RejectCode::TooManyBalances,
        RejectCode::TooManyLocks,
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
