//! Provider incentives: the genesis parameters of the network's emission, neuron slots,
//! staking and Yuma-consensus epochs (see the `incentives` and `ledger` crates).

use crate::{codec, Address, Amount, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// Most uids a weight vector may name (the largest network the ledger accepts).
pub const WEIGHTS_PER_TX_MAX: usize = 4096;
/// Largest number of neuron slots a genesis may configure.
pub const UIDS_MAX: u16 = 4096;
/// 100 % in basis points.
pub const BPS: u16 = 10_000;

/// Genesis `[incentives]`. Defaults follow a new Bittensor subnet (shared/design/INCENTIVES.md
/// §5) where that makes sense for Tessera; the emission is in TSR base units.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncentiveParams {
    /// Emission per block before the first halving (base units).
    pub block_reward_base_units: Amount,
    /// The most emission may ever mint; the reward halves each time the emitted total
    /// crosses 1/2, 3/4, 7/8 … of it (Bittensor's schedule).
    pub emission_cap_base_units: Amount,
    /// Blocks between epochs.
    pub tempo: u16,
    /// Neuron slots (uids).
    pub max_uids: u16,
    /// Evaluator permits: the top stakes.
    pub max_validators: u16,
    /// Blocks after registration during which a neuron cannot be replaced.
    pub immunity_period: u64,
    /// While at most this many neurons are past immunity, a full network replaces an
    /// immune one instead.
    pub min_non_immune_uids: u16,
    /// Fewest entries in a weight vector (capped at the number of neurons).
    pub min_allowed_weights: u16,
    /// Blocks an evaluator waits between two weight vectors.
    pub weights_rate_limit: u64,
    /// Activity cutoff = factor × tempo / 1000 blocks without new weights.
    pub activity_cutoff_factor_milli: u32,
    pub kappa: u16,
    pub bonds_penalty: u16,
    pub bonds_moving_average: u64,
    pub yuma3: bool,
    pub liquid_alpha: bool,
    pub alpha_low: u16,
    pub alpha_high: u16,
    pub alpha_sigmoid_steepness: i16,
    /// Stake below this (base units) counts as none in the epoch.
    pub stake_threshold_base_units: u64,
    /// Registration fee ("burn") at genesis; it moves into the incentive pool.
    pub burn_initial_base_units: Amount,
    pub burn_min_base_units: Amount,
    pub burn_max_base_units: Amount,
    /// The fee halves every this many blocks without registrations…
    pub burn_half_life: u64,
    /// …and is multiplied by this (per mille) after each registration.
    pub burn_increase_permille: u32,
    /// Blocks unstaked TSR stays locked.
    pub unbonding_blocks: u64,
    /// Weights must be committed (hash) and revealed an epoch later, so evaluators cannot
    /// copy each other's current weights (Bittensor's commit-reveal).
    pub commit_reveal: bool,
    /// Epochs between a commit and its reveal; a commit not revealed by then expires.
    pub reveal_period_epochs: u64,
    /// An evaluator's share of its dividends when it registers (basis points)…
    pub default_take_bps: u16,
    /// …and the most it may set.
    pub max_take_bps: u16,
}

impl Default for IncentiveParams {
    fn default() -> Self {
        const TSR: u128 = 1_000_000_000;
        Self {
            block_reward_base_units: Amount(TSR),
            emission_cap_base_units: Amount(21_000_000 * TSR),
            tempo: 360,
            max_uids: 256,
            max_validators: 64,
            immunity_period: 5_000,
            min_non_immune_uids: 10,
            min_allowed_weights: 1,
            weights_rate_limit: 100,
            activity_cutoff_factor_milli: 13_889,
            kappa: 32_767,
            bonds_penalty: 65_535,
            bonds_moving_average: 900_000,
            yuma3: true,
            liquid_alpha: false,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1_000,
            stake_threshold_base_units: 0,
            burn_initial_base_units: Amount(TSR),
            burn_min_base_units: Amount(500_000),
            burn_max_base_units: Amount(100 * TSR),
            burn_half_life: 360,
            burn_increase_permille: 1_260,
            unbonding_blocks: 7_200,
            commit_reveal: false,
            reveal_period_epochs: 1,
            default_take_bps: 1_800,
            max_take_bps: 1_800,
        }
    }
}

impl IncentiveParams {
    pub fn check(&self) -> Result<(), String> {
        if self.tempo == 0 {
            return Err("tempo must be at least 1 block".into());
        }
        if self.max_uids == 0 || self.max_uids > UIDS_MAX {
            return Err(format!("max_uids must be 1..={UIDS_MAX}"));
        }
        if self.max_validators == 0 || self.max_validators > self.max_uids {
            return Err("max_validators must be 1..=max_uids".into());
        }
        if self.bonds_moving_average > 1_000_000 {
            return Err("bonds_moving_average is at most 1000000 (= 1)".into());
        }
        if self.alpha_low > self.alpha_high {
            return Err("alpha_low must not exceed alpha_high".into());
        }
        if self.burn_min_base_units > self.burn_max_base_units
            || self.burn_initial_base_units < self.burn_min_base_units
            || self.burn_initial_base_units > self.burn_max_base_units
        {
            return Err("need burn_min <= burn_initial <= burn_max".into());
        }
        if self.burn_half_life == 0 {
            return Err("burn_half_life must be at least 1 block".into());
        }
        if self.max_take_bps > BPS || self.default_take_bps > self.max_take_bps {
            return Err("need default_take_bps <= max_take_bps <= 10000".into());
        }
        if self.commit_reveal && self.reveal_period_epochs == 0 {
            return Err("reveal_period_epochs must be at least 1 with commit_reveal".into());
        }
        if self.emission_cap_base_units.0 > u64::MAX as u128 {
            return Err("emission_cap_base_units must fit 64 bits".into());
        }
        Ok(())
    }
}

/// Most live weight commits per neuron.
pub const WEIGHT_COMMITS_MAX: usize = 8;

/// The hash a `CommitWeights` carries: the committer, the weight vector and a secret salt.
pub fn weight_commit_hash(committer: &Address, uids: &[u16], weights: &[u16], salt: &Hash) -> Hash {
    let body = codec::encode(&(committer, uids.to_vec(), weights.to_vec(), salt));
    Hash::domain("tessera 2026-11 weight commit v1", &[&body])
}

/// The block reward after halvings: for emitted total `I` below the cap `T`, halved `r` times
/// where `r` is the largest integer with `(T − I) · 2^r ≤ T`, i.e. ⌊log2(T / (T − I))⌋ in
/// exact integers (Bittensor computes the same with a fixed-point log2). Never more than what
/// is left below the cap.
pub fn block_emission(reward: Amount, emitted: Amount, cap: Amount) -> Amount {
    if emitted >= cap {
        return Amount::ZERO;
    }
    let left = cap.0 - emitted.0;
    let mut r = 0u32;
    while r < 127 && (left << (r + 1)) >> (r + 1) == left && (left << (r + 1)) <= cap.0 {
        r += 1;
    }
    Amount((reward.0 >> r).min(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_follows_the_emitted_share_of_the_cap() {
        let (reward, cap) = (Amount(1_000), Amount(1_000_000));
        assert_eq!(block_emission(reward, Amount(0), cap), Amount(1_000));
        assert_eq!(block_emission(reward, Amount(499_999), cap), Amount(1_000));
        assert_eq!(block_emission(reward, Amount(500_000), cap), Amount(500));
        assert_eq!(block_emission(reward, Amount(749_999), cap), Amount(500));
        assert_eq!(block_emission(reward, Amount(750_000), cap), Amount(250));
        assert_eq!(block_emission(reward, Amount(998_000), cap), Amount(3)); // r = 8
        assert_eq!(block_emission(reward, Amount(999_999), cap), Amount(0)); // r = 19
        assert_eq!(block_emission(reward, cap, cap), Amount(0));
        // Never past the cap.
        assert_eq!(block_emission(Amount(10), Amount(999_995), Amount(1_000_000)), Amount(0));
        assert_eq!(block_emission(Amount(1 << 20), Amount(999_990), Amount(1_000_000)), Amount(10));
    }

    #[test]
    fn defaults_are_valid() {
        IncentiveParams::default().check().unwrap();
    }
}
