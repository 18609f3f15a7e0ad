//! Genesis: the chain's first state, written by the issuer as a TOML file.

use crate::lthash::LtHash;
use crate::state::{AssetInfo, ChainParams, Roles, State};
use borsh::{BorshDeserialize, BorshSerialize};
use primitives::limits::{ASSET_DECIMALS_MAX, CHAIN_ID_BYTES_MAX};
use primitives::{codec, Address, Amount, AssetId, Hash, Height};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Decimals of the native token, fixed.
pub const TSR_DECIMALS: u8 = 9;
pub const BLOCK_INTERVAL_MS_MIN: u64 = 10;
pub const BLOCK_INTERVAL_MS_MAX: u64 = 60_000;
pub const GENESIS_BALANCES_MAX: usize = 10_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    /// Flat fee per transaction, TSR base units.
    pub fee_base_units: Amount,
    pub block_interval_ms: u64,
    /// Appoints the role keys; issuer of every genesis asset unless one says otherwise.
    pub issuer: Address,
    #[serde(default)]
    pub roles: GenesisRoles,
    pub assets: Vec<GenesisAsset>,
    #[serde(default)]
    pub balances: Vec<GenesisBalance>,
    /// Provider incentives (emission, neuron slots, staking, epochs); absent = off.
    #[serde(default)]
    pub incentives: Option<primitives::incentive::IncentiveParams>,
    /// Multi-node chains: the validators' consensus keys (ed25519, shown as addresses).
    /// Empty for a solo-sequencer chain. Committed to by `hash` only when non-empty, so
    /// solo chains keep the genesis hash they always had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[borsh(skip)]
    pub validators: Vec<Address>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRoles {
    pub compliance: Option<Address>,
    pub custodian: Option<Address>,
    pub treasury: Option<Address>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAsset {
    pub symbol: AssetId,
    pub decimals: u8,
    #[serde(default)]
    pub max_supply_base_units: Option<Amount>,
    #[serde(default)]
    pub issuer: Option<Address>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBalance {
    pub address: Address,
    pub asset: AssetId,
    pub amount_base_units: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("chain_id must be 1-{CHAIN_ID_BYTES_MAX} printable ASCII characters")]
    ChainId,
    #[error("block_interval_ms must be within {BLOCK_INTERVAL_MS_MIN}..={BLOCK_INTERVAL_MS_MAX}, got {0}")]
    BlockInterval(u64),
    #[error("the native asset TSR with {TSR_DECIMALS} decimals must be listed in assets")]
    NoNativeAsset,
    #[error("asset {0} is listed twice")]
    DuplicateAsset(AssetId),
    #[error("asset {symbol} has {decimals} decimals; at most {ASSET_DECIMALS_MAX}")]
    Decimals { symbol: AssetId, decimals: u8 },
    #[error("balance for unknown asset {0}")]
    UnknownAsset(AssetId),
    #[error("balances of {0} exceed its max supply or 128 bits")]
    SupplyExceeded(AssetId),
    #[error("more than {GENESIS_BALANCES_MAX} balances")]
    TooManyBalances,
    #[error("[incentives]: {0}")]
    Incentives(String),
}

impl Genesis {
    pub fn hash(&self) -> Hash {
        if self.validators.is_empty() {
            Hash::domain("tessera 2026-11 genesis v1", &[&codec::encode(self)])
        } else {
            Hash::domain("tessera 2026-11 genesis v1", &[&codec::encode(self), &codec::encode(&self.validators)])
        }
    }

    pub fn to_state(&self) -> Result<State, GenesisError> {
        let id = self.chain_id.as_bytes();
        if id.is_empty() || id.len() > CHAIN_ID_BYTES_MAX || !id.iter().all(|b| b.is_ascii_graphic()) {
            return Err(GenesisError::ChainId);
        }
        if !(BLOCK_INTERVAL_MS_MIN..=BLOCK_INTERVAL_MS_MAX).contains(&self.block_interval_ms) {
            return Err(GenesisError::BlockInterval(self.block_interval_ms));
        }
        if let Some(p) = &self.incentives {
            p.check().map_err(GenesisError::Incentives)?;
        }
        if self.balances.len() > GENESIS_BALANCES_MAX {
            return Err(GenesisError::TooManyBalances);
        }
        let mut assets = BTreeMap::new();
        for a in &self.assets {
            if a.decimals > ASSET_DECIMALS_MAX {
                return Err(GenesisError::Decimals { symbol: a.symbol, decimals: a.decimals });
            }
            let info = AssetInfo {
                symbol: a.symbol,
                decimals: a.decimals,
                issuer: a.issuer.unwrap_or(self.issuer),
                supply: Amount::ZERO,
                max_supply: a.max_supply_base_units,
            };
            if assets.insert(a.symbol, info).is_some() {
                return Err(GenesisError::DuplicateAsset(a.symbol));
            }
        }
        if assets.get(&AssetId::TSR).is_none_or(|a: &AssetInfo| a.decimals != TSR_DECIMALS) {
            return Err(GenesisError::NoNativeAsset);
        }
        let mut accounts = crate::state::AccountMap::default();
        for b in &self.balances {
            let info = assets.get_mut(&b.asset).ok_or(GenesisError::UnknownAsset(b.asset))?;
            info.supply = info.supply.checked_add(b.amount_base_units).ok_or(GenesisError::SupplyExceeded(b.asset))?;
            if info.max_supply.is_some_and(|m| info.supply > m) {
                return Err(GenesisError::SupplyExceeded(b.asset));
            }
            let acct = accounts.entry(b.address).or_default();
            acct.credit(b.asset, b.amount_base_units).map_err(|_| GenesisError::SupplyExceeded(b.asset))?;
        }
        accounts.retain(|_, a| !a.is_empty());
        if let Some(p) = &self.incentives {
            let tsr = &assets[&AssetId::TSR];
            if tsr.max_supply.is_some_and(|m| tsr.supply.0.saturating_add(p.emission_cap_base_units.0) > m.0) {
                return Err(GenesisError::Incentives(
                    "genesis TSR plus emission_cap_base_units exceeds TSR's max supply".into(),
                ));
            }
        }
        let roles = Roles {
            issuer: self.issuer,
            compliance: self.roles.compliance.unwrap_or(self.issuer),
            custodian: self.roles.custodian.unwrap_or(self.issuer),
            treasury: self.roles.treasury.unwrap_or(self.issuer),
        };
        let genesis_hash = self.hash();
        let params = ChainParams {
            chain_id: self.chain_id.clone(),
            genesis_hash,
            fee: self.fee_base_units,
            block_interval_ms: self.block_interval_ms,
            incentives: self.incentives.clone(),
        };
        let mut state = State {
            params,
            roles,
            accounts,
            assets,
            objects: Default::default(),
            height: Height(0),
            last_block_hash: genesis_hash,
            last_timestamp_ms: self.genesis_time_ms,
            lthash: LtHash::identity(),
        };
        state.lthash = state.recompute_lthash();
        Ok(state)
    }
}
