//! Provider incentives: Bittensor's Yuma consensus epoch, bit-exact with subtensor's
//! production path (shared/design/INCENTIVES.md), and the documents that let anyone check it
//! against subtensor on the same inputs (shared/design/INCENTIVES-IO.md).

pub mod doc;
pub mod epoch;
pub mod fixed;
pub mod synth;

pub use doc::{run_document, DocError};
pub use epoch::{run_epoch, run_epoch_with, BondRowAction, EpochResult, Params, Row, SubnetState, Workspace};
pub use fixed::{Divisor, I32F32, I64F64};
