//! Tessera's value types: amounts, heights, addresses, assets, hashes, transactions,
//! blocks, receipts and the canonical codec.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of signatures
//! libraries, storage or HTTP. Every type here has one canonical binary encoding
//! (borsh) and, where it crosses the API, one JSON shape (serde).
#![deny(clippy::float_arithmetic)]

pub mod address;
pub mod amount;
pub mod asset;
pub mod block;
pub mod channel;
pub mod codec;
pub mod framelog;
pub mod hash;
pub mod incentive;
pub mod limits;
pub mod receipt;
pub mod sale;
pub mod serde_u64;
pub mod tx;

pub use address::{Address, AddressError};
pub use amount::{Amount, AmountError};
pub use asset::{AssetId, AssetIdError};
pub use block::{Block, BlockHeader, Height};
pub use codec::{decode, encode, DecodeError};
pub use hash::Hash;
pub use receipt::{Outcome, Receipt, RejectCode};
pub use sale::EntityId;
pub use tx::{Action, Role, Signature, SignedTransaction, Transaction, TxError};
