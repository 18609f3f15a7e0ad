//! Differential test: the optimised `run_epoch` (and `run_epoch_with` on a reused workspace)
//! against the straightforward reference oracle in `reference/mod.rs`, on random small
//! networks built to reach every branch of the epoch.

mod reference;

use incentives::epoch::{run_epoch, run_epoch_with, Params, Row, SubnetState, Workspace};
use incentives::synth::{self, SplitMix};
use proptest::prelude::*;

/// A random value with extra weight on the edges.
fn pick_u16(rng: &mut SplitMix) -> u16 {
    match rng.below(8) {
        0 => 0,
        1 => u16::MAX,
        2 => 1,
        3 => 32_768,
        _ => rng.next_u64() as u16,
    }
}

/// A duplicate-free row over columns `0..cols`, in random order, with random density.
fn random_row(rng: &mut SplitMix, cols: usize, sorted: bool) -> Row<u16> {
    let density = rng.below(5);
    let mut row: Row<u16> = (0..cols)
        .filter(|_| match density {
            0 => false,
            1 => rng.below(4) == 0,
            2 => rng.below(2) == 0,
            3 => rng.below(4) != 0,
            _ => true,
        })
        .map(|j| (j as u16, 0))
        .collect();
    if !sorted {
        for k in (1..row.len()).rev() {
            let o = rng.below(k as u64 + 1) as usize;
            row.swap(k, o);
        }
    }
    for c in &mut row {
        c.1 = pick_u16(rng);
    }
    row
}

fn random_network(seed: u64, max_n: u64) -> (Params, SubnetState, u64) {
    let mut rng = SplitMix(seed);
    let n = 1 + rng.below(max_n) as usize;
    let block = 1_000 + rng.below(20_000);
    let stake = |rng: &mut SplitMix| -> u64 {
        match rng.below(6) {
            0 => 0,
            1 => u64::MAX - rng.below(3),
            2 => rng.below(100),
            _ => rng.below(1_000_000_000_000),
        }
    };
    let zero_stake = rng.below(12) == 0;
    let alpha_stake = (0..n).map(|_| if zero_stake { 0 } else { stake(&mut rng) }).collect();
    let tao_stake = (0..n).map(|_| if zero_stake || rng.below(2) == 0 { 0 } else { stake(&mut rng) }).collect();
    let sorted_rows = rng.below(3) == 0;
    // Columns beyond n appear in stored rows (uids removed since, or bad data).
    let extra_cols = rng.below(3) as usize;
    let weights = (0..n).map(|_| random_row(&mut rng, n + extra_cols, sorted_rows)).collect();
    let bonds = (0..n)
        .map(|_| {
            let sorted = sorted_rows || rng.below(2) == 0;
            random_row(&mut rng, n + extra_cols, sorted)
        })
        .collect();
    let near = |rng: &mut SplitMix, around: u64, spread: u64| around.saturating_sub(spread) + rng.below(2 * spread + 1);
    let tempo = [1, 10, 360, 1000][rng.below(4) as usize];
    let params = Params {
        kappa: match rng.below(5) {
            0 => 0,
            1 => u16::MAX,
            2 => rng.next_u64() as u16,
            _ => 32_767,
        },
        bonds_penalty: match rng.below(4) {
            0 => 0,
            1 => u16::MAX,
            2 => 1 + rng.below(65_534) as u16,
            _ => [1, 32_768, 65_534][rng.below(3) as usize],
        },
        bonds_moving_average: match rng.below(5) {
            0 => 0,
            1 => 1_000_000,
            2 => rng.below(2_000_000),
            _ => 900_000,
        },
        tempo,
        activity_cutoff_factor_milli: [0, 1_000, 13_889, 50_000][rng.below(4) as usize],
        max_allowed_validators: rng.below(n as u64 + 3) as u16,
        stake_threshold: if rng.below(3) == 0 { rng.below(1_000_000_000) } else { 0 },
        yuma3_enabled: rng.below(2) == 0,
        liquid_alpha_enabled: rng.below(2) == 0,
        alpha_low: if rng.below(2) == 0 { 45_875 } else { rng.next_u64() as u16 },
        alpha_high: if rng.below(2) == 0 { 58_982 } else { rng.next_u64() as u16 },
        alpha_sigmoid_steepness: if rng.below(2) == 0 { 1_000 } else { rng.next_u64() as i16 },
        tao_weight: match rng.below(3) {
            0 => 0,
            1 => u64::MAX,
            _ => rng.next_u64(),
        },
        rao_emission: if rng.below(2) == 0 { 1_000_000_000 } else { rng.next_u64() },
        commit_reveal_enabled: rng.below(2) == 0,
        owner_uid: match rng.below(4) {
            0 => Some(rng.below(n as u64 + 2) as u16),
            _ => None,
        },
    };
    let cutoff = params.activity_cutoff_blocks();
    let state = SubnetState {
        alpha_stake,
        tao_stake,
        validator_permit: (0..n).map(|_| rng.below(4) != 0).collect(),
        last_update: (0..n).map(|_| near(&mut rng, block - cutoff.min(block), 3).max(rng.below(block))).collect(),
        block_at_registration: (0..n)
            .map(|_| if rng.below(3) == 0 { near(&mut rng, block - tempo as u64, 3) } else { rng.below(block) })
            .collect(),
        weights,
        bonds,
        last_mechanism_step_block: if rng.below(3) == 0 { 0 } else { near(&mut rng, block - tempo as u64, 2) },
        commit_block: (0..n).map(|_| if rng.below(2) == 0 { Some(rng.below(block)) } else { None }).collect(),
    };
    state.check().unwrap();
    (params, state, block)
}

fn check(p: &Params, s: &SubnetState, block: u64, ws: &mut Workspace) {
    let want = reference::run_epoch(p, s, block);
    let got = run_epoch(p, s, block);
    assert_eq!(got, want, "run_epoch differs from the reference oracle\nparams {p:?}\nstate {s:?}\nblock {block}");
    let reused = run_epoch_with(p, s, block, ws);
    assert_eq!(reused, want, "run_epoch_with (reused workspace) differs from the oracle");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn optimised_epoch_matches_the_reference(seed in any::<u64>()) {
        let (p, s, block) = random_network(seed, 20);
        let mut ws = Workspace::default();
        check(&p, &s, block, &mut ws);
        // A second epoch on the persisted state (bonds written by the first).
        let mut s2 = s.clone();
        run_epoch(&p, &s, block).persist(&mut s2);
        check(&p, &s2, block + p.tempo as u64, &mut ws);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Networks large enough that consensus columns take the bucket selection (over several
    /// rounds), and that rows mix sorted and unsorted, dense and sparse.
    #[test]
    fn larger_networks_match_the_reference(seed in any::<u64>()) {
        let (p, s, block) = random_network(seed, 200);
        check(&p, &s, block, &mut Workspace::default());
    }
}

#[test]
fn dense_synthetic_networks_match_the_reference() {
    let mut ws = Workspace::default();
    for (v, n) in [(1, 1), (3, 17), (8, 64), (16, 100), (32, 300), (64, 256), (150, 400)] {
        for (yuma3, liquid) in [(false, false), (true, false), (true, true)] {
            for bonds_penalty in [0, 30_000, 65_535] {
                let (mut p, s) = synth::network(v, n, yuma3, liquid, (v * n) as u64);
                p.bonds_penalty = bonds_penalty;
                let block = s.last_update[0] + 1;
                check(&p, &s, block, &mut ws);
            }
        }
    }
}

/// Rows whose weight sums saturate `I32F32` (many uids, all at 65 535) and bonds near the
/// top of the range.
#[test]
fn saturating_sums_match_the_reference() {
    let n = 40_000;
    let (p, mut s) = synth::network(2, n, false, false, 1);
    for row in s.weights.iter_mut().take(2) {
        row.iter_mut().for_each(|c| c.1 = u16::MAX);
    }
    let block = s.last_update[0] + 1;
    let mut ws = Workspace::default();
    check(&p, &s, block, &mut ws);
    // Bond column sums beyond 2^31 (every uid bonded at 65 535 to the same columns): the
    // EMA's general divisions instead of the lean ones.
    for row in s.bonds.iter_mut().skip(2) {
        *row = vec![(0, u16::MAX), (7, u16::MAX), (9, 1)];
    }
    check(&p, &s, block, &mut ws);
}

/// Dense rows over contiguous columns take vectorised paths (weights copied as they are,
/// bond sums in one pass, the EMA and its normalisation over column arrays); each of the
/// conditions those paths test, broken once, must give the reference's result too.
#[test]
fn contiguous_row_paths_match_the_reference_and_fall_back_exactly() {
    let mut ws = Workspace::default();
    let (v, n) = (12, 200);
    let (p0, s0) = synth::network(v, n, false, false, 99);
    let block = s0.last_update[0] + 1;
    type Change = Box<dyn Fn(&mut Params, &mut SubnetState)>;
    let variants: Vec<(&str, Change)> = vec![
        ("as generated", Box::new(|_, _| {})),
        // A column registered after every weight was set: not kept in W or the bonds.
        ("recent registration", Box::new(move |_, s| s.block_at_registration[150] = block)),
        // A weight row that includes its own uid (the diagonal), and the owner's that keeps it.
        ("diagonal in range", Box::new(|_, s| s.weights[3].insert(0, (3, 500)))),
        (
            "owner's diagonal kept",
            Box::new(|p, s| {
                p.owner_uid = Some(4);
                s.weights[4].insert(0, (4, 900));
            }),
        ),
        // A gap in one weight row and one bond row; a bond row shorter than its weights.
        (
            "gap in a weight row",
            Box::new(|_, s| {
                s.weights[5].remove(40);
            }),
        ),
        (
            "gap in a bond row",
            Box::new(|_, s| {
                s.bonds[6].remove(7);
            }),
        ),
        ("shorter bond row", Box::new(|_, s| s.bonds[7].truncate(50))),
        // A zero bond and a zero weight (an EMA cell of 0 is dropped).
        (
            "zero cells",
            Box::new(|_, s| {
                s.bonds[8][10].1 = 0;
                s.weights[8][10].1 = 0;
                // Rows 0..8 are transposed as a block: a zero there too.
                s.weights[2][20].1 = 0;
            }),
        ),
        // One column holding every bond and weight (a column maximum equal to its sum).
        (
            "one-cell column",
            Box::new(move |_, s| {
                for i in 0..v {
                    s.weights[i].retain(|c| c.0 != 199 || i == 0);
                    s.bonds[i].retain(|c| c.0 != 199 || i == 0);
                }
            }),
        ),
    ];
    for (name, change) in variants {
        for bonds_penalty in [0, 30_000, 65_535] {
            let (mut p, mut s) = (p0.clone(), s0.clone());
            p.bonds_penalty = bonds_penalty;
            change(&mut p, &mut s);
            s.check().unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = reference::run_epoch(&p, &s, block);
            assert_eq!(run_epoch(&p, &s, block), want, "{name}, bonds penalty {bonds_penalty}");
            assert_eq!(run_epoch_with(&p, &s, block, &mut ws), want, "{name} (reused workspace)");
        }
    }
}
