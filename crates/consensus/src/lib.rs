//! Multi-node Tessera: validators order blocks with commonware's simplex BFT (with
//! marshal for block dissemination, storage and backfill) and execute them with the same
//! ledger code as the solo sequencer. This is the only crate that depends on commonware
//! (every commonware crate pinned to one exact version); the ledger sees no consensus
//! type, and the node's `Chain` commits finalized blocks exactly as it commits its own.
//!
//! - `block`: the consensus envelope around a ledger block; digest = ledger block hash.
//! - `ledger_host`: speculative execution above the committed tip; committing finalized blocks.
//! - `app`: `Application` (propose / verify).
//! - `finalizer`: marshal's finalized blocks → durable commit → acknowledgement.
//! - `gossip`: transactions admitted by one validator reach the others.
//! - `engine`: the wiring of one validator, generic over runtime and network.

pub mod app;
pub mod block;
pub mod engine;
pub mod finalizer;
pub mod gossip;
pub mod ledger_host;
pub mod net;

pub use block::{Digest, Envelope};
pub use engine::{Network, Timeouts, ValidatorConfig, channels, start_validator};
pub use ledger_host::{CommittedBlock, LedgerHost};
