//! Tessera's deterministic state machine: accounts, assets, roles, fees, locks, blocks and
//! the state root.
//!
//! Architecture invariant: pure. No I/O, no clock, no randomness, no floating point, no
//! hash-map iteration; time and the proposer come in through `BlockContext`. The same
//! parent state and block always give the same receipts, write set and state root.
#![deny(clippy::float_arithmetic)]

pub mod alloc;
pub mod channels;
pub mod execute;
pub mod genesis;
pub mod incentive;
pub mod lthash;
pub mod objects;
pub mod sale;
pub mod state;
pub mod vesting;

pub use execute::{
    propose, verify, verify_with_ids, BlockContext, BlockError, Committed, Executed, Inadmissible, Signatures, WriteSet,
};
pub use genesis::{Genesis, GenesisAsset, GenesisBalance, GenesisError, GenesisRoles, TSR_DECIMALS};
pub use lthash::LtHash;
pub use objects::{ObjKey, Object};
pub use state::{
    Account, AccountMap, AssetInfo, Balance, ChainParams, Lock, LockKind, Restriction, RestrictionKind, Roles, State,
};
