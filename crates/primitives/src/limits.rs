//! Every bound the wire formats enforce, in one place.

/// Largest encoded signed transaction accepted anywhere.
pub const TX_BYTES_MAX: usize = 4096;
/// Longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Most transactions in one block.
pub const BLOCK_TXS_MAX: usize = 20_000;
/// Largest encoded block (transactions plus header).
pub const BLOCK_BYTES_MAX: usize = BLOCK_TXS_MAX * TX_BYTES_MAX / 4;
/// Most transactions in one binary batch submission.
pub const BATCH_TXS_MAX: usize = 20_000;
/// Largest binary batch submission body.
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most decimals an asset may have (10^36 still fits in a u128 with room).
pub const ASSET_DECIMALS_MAX: u8 = 18;
