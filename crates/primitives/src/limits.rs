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
/// Longest offering or tranche name.
pub const OFFERING_NAME_BYTES_MAX: usize = 64;
/// Most tranches in one offering.
pub const OFFERING_TRANCHES_MAX: usize = 8;
/// Most price tiers in one tranche.
pub const TIERS_MAX: usize = 16;
/// Most codes in a tranche's allowed or blocked jurisdiction list.
pub const TRANCHE_LIST_MAX: usize = 64;
/// Most parts of a tranche-style vesting schedule.
pub const SCHEDULE_PARTS_MAX: usize = 48;
/// Longest sanctions-list version string.
pub const SANCTIONS_LIST_BYTES_MAX: usize = 64;
/// Most wallets bound to one entity.
pub const ENTITY_WALLETS_MAX: usize = 16;
/// Longest provider endpoint URL.
pub const ENDPOINT_BYTES_MAX: usize = 256;
/// Longest model id.
pub const MODEL_ID_BYTES_MAX: usize = 64;
/// Most models one provider registers.
pub const PROVIDER_MODELS_MAX: usize = 32;
/// Most channels claimed in one transaction.
pub const CLAIMS_PER_TX_MAX: usize = 16;
