//! Blocks: a header that commits to the transactions, their receipts and the post-state,
//! and the ordered transactions.

use crate::{codec, Address, Hash, Receipt, SignedTransaction};

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Debug,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(transparent)]
pub struct Height(#[serde(with = "crate::serde_u64")] pub u64);

impl Height {
    pub fn next(self) -> Height {
        Height(self.0.checked_add(1).expect("height overflow"))
    }
}

impl std::fmt::Display for Height {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct BlockHeader {
    pub height: Height,
    /// Hash of the parent header; for height 1, the genesis hash.
    pub parent_hash: Hash,
    /// Set by the proposer; never earlier than the parent's.
    #[serde(with = "crate::serde_u64")]
    pub timestamp_ms: u64,
    pub proposer: Address,
    pub txs_root: Hash,
    pub receipts_root: Hash,
    /// Commitment to the whole ledger state after this block (see ARCHITECTURE.md).
    pub state_root: Hash,
}

impl BlockHeader {
    pub fn hash(&self) -> Hash {
        Hash::domain("tessera 2026-11 block header v1", &[&codec::encode(self)])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<SignedTransaction>,
}

/// Commits to the ordered transaction ids of a block.
pub fn txs_root(ids: &[Hash]) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key("tessera 2026-11 txs root v1");
    hasher.update(&(ids.len() as u64).to_le_bytes());
    for id in ids {
        hasher.update(id.as_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

/// Commits to the receipts, in the borsh encoding of `Vec<Receipt>`.
pub fn receipts_root(receipts: &[Receipt]) -> Hash {
    Hash::domain("tessera 2026-11 receipts root v1", &[&codec::encode(receipts)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_root_is_over_the_vec_encoding() {
        let r = vec![Receipt { tx_id: Hash([1; 32]), fee_paid: crate::Amount(3), outcome: crate::Outcome::Success }];
        assert_eq!(codec::encode(r.as_slice()), codec::encode(&r));
    }
}
