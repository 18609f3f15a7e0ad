//! Genesis TOML files and the devnet's generated genesis.

use ledger::{Genesis, GenesisAsset, GenesisBalance};
use primitives::{Address, Amount, AssetId};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum GenesisFileError {
    #[error("cannot read genesis file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("genesis file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("genesis file {path}: {source}")]
    Invalid { path: String, source: ledger::GenesisError },
}

pub fn load(path: &Path) -> Result<Genesis, GenesisFileError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| GenesisFileError::Read { path: shown.clone(), source })?;
    let genesis: Genesis =
        toml::from_str(&text).map_err(|e| GenesisFileError::Parse { path: shown.clone(), message: e.to_string() })?;
    genesis.to_state().map_err(|source| GenesisFileError::Invalid { path: shown, source })?;
    Ok(genesis)
}

pub fn to_toml(genesis: &Genesis) -> String {
    toml::to_string_pretty(genesis).expect("genesis serialises to TOML")
}

/// The devnet's genesis: one dev account holds a billion TSR and every role, plus a
/// custodian-style USD asset (6 decimals) it may mint.
pub fn devnet(dev: Address, genesis_time_ms: u64) -> Genesis {
    let tsr = 10u128.pow(ledger::TSR_DECIMALS as u32);
    Genesis {
        chain_id: "tessera-devnet".into(),
        genesis_time_ms,
        fee_base_units: Amount(1_000),
        block_interval_ms: 100,
        issuer: dev,
        roles: Default::default(),
        assets: vec![
            GenesisAsset {
                symbol: AssetId::TSR,
                decimals: ledger::TSR_DECIMALS,
                max_supply_base_units: Some(Amount(10_000_000_000 * tsr)),
                issuer: None,
            },
            GenesisAsset {
                symbol: AssetId::new("USD").expect("valid"),
                decimals: 6,
                max_supply_base_units: None,
                issuer: None,
            },
        ],
        balances: vec![GenesisBalance {
            address: dev,
            asset: AssetId::TSR,
            amount_base_units: Amount(1_000_000_000 * tsr),
        }],
        incentives: Some(devnet_incentives()),
        validators: Vec::new(),
    }
}

/// The devnet's incentive network: Bittensor's new-subnet defaults with a fast clock
/// (100 ms blocks): an epoch every 50 blocks (5 s), short immunity, rate limit and unbonding.
pub fn devnet_incentives() -> primitives::incentive::IncentiveParams {
    primitives::incentive::IncentiveParams {
        tempo: 50,
        immunity_period: 600,
        weights_rate_limit: 5,
        unbonding_blocks: 600,
        burn_half_life: 50,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_genesis_round_trips_through_toml() {
        let g = devnet(Address([4; 32]), 123);
        let text = to_toml(&g);
        let back: Genesis = toml::from_str(&text).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        back.to_state().unwrap().check_invariants().unwrap();
    }
}
