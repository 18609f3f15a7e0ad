//! Synthetic networks for benchmarks and property tests: `validators` evaluators that set
//! random weights on, and hold random bonds to, every provider (100 % density), all
//! permitted and active, as in the performance anchor of shared/design/INCENTIVES.md §11.

use crate::epoch::{Params, Row, SubnetState};

/// splitmix64: a tiny deterministic generator (no dependency for a benchmark input).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
}

/// A network of `neurons` uids whose first `validators` uids weight every other uid.
pub fn network(validators: usize, neurons: usize, yuma3: bool, liquid_alpha: bool, seed: u64) -> (Params, SubnetState) {
    assert!(validators <= neurons && neurons <= u16::MAX as usize);
    let mut rng = SplitMix(seed);
    let n = neurons;
    let block = 10_000u64;
    let params = Params {
        max_allowed_validators: validators as u16,
        yuma3_enabled: yuma3,
        liquid_alpha_enabled: liquid_alpha,
        ..Params::default()
    };
    let alpha_stake =
        (0..n).map(|i| if i < validators { 1_000_000_000 + rng.below(1_000_000_000_000) } else { 0 }).collect();
    let row = |rng: &mut SplitMix| -> Row<u16> {
        (validators..n).map(|j| (j as u16, 1 + rng.below(65_535) as u16)).collect()
    };
    let weights: Vec<Row<u16>> = (0..n).map(|i| if i < validators { row(&mut rng) } else { Vec::new() }).collect();
    let bonds: Vec<Row<u16>> = (0..n).map(|i| if i < validators { row(&mut rng) } else { Vec::new() }).collect();
    let state = SubnetState {
        alpha_stake,
        tao_stake: vec![0; n],
        validator_permit: (0..n).map(|i| i < validators).collect(),
        last_update: vec![block - 1; n],
        block_at_registration: vec![1; n],
        weights,
        bonds,
        last_mechanism_step_block: block - 360,
        commit_block: vec![None; n],
    };
    (params, state)
}
