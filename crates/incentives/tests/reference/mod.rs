//! Reference oracle: the straightforward epoch as it stood at commit 74d6ea0 (before the
//! performance work), kept verbatim except that every `I32F32` division in it goes through
//! `plain_div` (the textbook 128-bit `(a << 32) / b`, no fast paths), so the optimised
//! `incentives::run_epoch` can be checked against it bit for bit.

#![allow(dead_code, clippy::all)]

use incentives::epoch::{BondRowAction, EpochResult, Params, Row, Rows, SubnetState};
use incentives::fixed::{exp_safe, tao_weight, I32F32, I64F64};

/// Plain fixed-point division with subtensor's `safe_div` semantics (0 for a zero divisor or
/// an overflowing quotient); `I64F64` keeps its own (256-bit) `safe_div`.
trait PlainDiv {
    fn plain_div(self, o: Self) -> Self;
}

impl PlainDiv for I32F32 {
    fn plain_div(self, o: Self) -> Self {
        if o.0 == 0 {
            return I32F32::ZERO;
        }
        let q = ((self.0 as i128) << 32) / o.0 as i128;
        i64::try_from(q).map(I32F32).unwrap_or(I32F32::ZERO)
    }
}

impl PlainDiv for I64F64 {
    fn plain_div(self, o: Self) -> Self {
        self.safe_div(o)
    }
}

/// Runs one epoch at `current_block`. `state` must pass [`SubnetState::check`].
pub fn run_epoch(p: &Params, s: &SubnetState, current_block: u64) -> EpochResult {
    let n = s.n();
    let cutoff = p.activity_cutoff_blocks();

    // §3.2 activity.
    let active: Vec<bool> = s.last_update.iter().map(|&lu| lu.saturating_add(cutoff) >= current_block).collect();

    // §3.3 stake.
    let tw = tao_weight(p.tao_weight);
    let total_stake: Vec<I64F64> = (0..n)
        .map(|i| I64F64::from_u64(s.alpha_stake[i]).sat_add(I64F64::from_u64(s.tao_stake[i]).sat_mul(tw)))
        .collect();
    let raw_stake: Vec<u64> = total_stake.iter().map(|s| s.to_u64_sat()).collect();
    let mut filtered: Vec<I64F64> = total_stake
        .iter()
        .enumerate()
        .map(
            |(uid, &st)| {
                if p.owner_uid != Some(uid as u16) && st.to_u64_sat() < p.stake_threshold {
                    I64F64::ZERO
                } else {
                    st
                }
            },
        )
        .collect();
    let sum = filtered.iter().fold(I64F64::ZERO, |a, &b| a.sat_add(b));
    if sum != I64F64::ZERO {
        filtered.iter_mut().for_each(|v| *v = v.plain_div(sum));
    }
    let stake: Vec<I32F32> = filtered.iter().map(|v| v.to_i32f32()).collect();

    // §3.4 permits.
    let mut permit_used = s.validator_permit.clone();
    let mut new_permit = is_topk_nonzero(&stake, p.max_allowed_validators as usize);
    if let Some(o) = p.owner_uid.map(usize::from) {
        if let Some(x) = permit_used.get_mut(o) {
            *x = true;
        }
        if let Some(x) = new_permit.get_mut(o) {
            *x = true;
        }
    }

    // §3.5 active stake.
    let mut active_stake: Vec<I32F32> =
        (0..n).map(|i| if active[i] && permit_used[i] { stake[i] } else { I32F32::ZERO }).collect();
    normalize(&mut active_stake);

    // §3.6 weights: forbidden rows, diagonal (except the owner's), outdated cells,
    // commit-reveal, then row normalisation.
    let weights: Vec<Row<I32F32>> = (0..n)
        .map(|i| {
            if !permit_used[i] {
                return Vec::new();
            }
            let lu = s.last_update[i];
            let commit = if p.commit_reveal_enabled { s.commit_block[i].unwrap_or(u64::MAX) } else { u64::MAX };
            let mut row: Row<I32F32> = s.weights[i]
                .iter()
                .filter(|&&(j, _)| {
                    let ju = j as usize;
                    ju < n
                        && (ju != i || p.owner_uid == Some(j))
                        && lu > s.block_at_registration[ju]
                        && commit >= s.block_at_registration[ju]
                })
                .map(|&(j, w)| (j, I32F32::from_u16(w)))
                .collect();
            let row_sum: I32F32 = row.iter().map(|c| c.1).sum();
            if row_sum > I32F32::ZERO {
                row.iter_mut().for_each(|c| c.1 = c.1.plain_div(row_sum));
            }
            row
        })
        .collect();

    // §3.7 consensus.
    let kappa = I32F32::from_u16_proportion(p.kappa);
    let consensus = weighted_median_cols(&active_stake, &weights, n, kappa);

    // §3.8 clipping and validator trust. With the default bonds penalty of 1 the unclipped
    // weights are not needed any more, so they are clipped in place.
    let bonds_penalty = I32F32::from_u16_proportion(p.bonds_penalty);
    let (clipped, unclipped) = if bonds_penalty == I32F32::ONE {
        let mut w = weights;
        clip(&mut w, &consensus);
        (w, None)
    } else {
        let mut w = weights.clone();
        clip(&mut w, &consensus);
        (w, Some(weights))
    };
    let validator_trust: Vec<I32F32> = clipped.iter().map(|row| row.iter().map(|c| c.1).sum()).collect();

    // §3.9 ranks and incentive.
    let mut incentive = vec![I32F32::ZERO; n];
    for (row, &a) in clipped.iter().zip(&active_stake) {
        for &(j, w) in row {
            let r = &mut incentive[j as usize];
            *r = r.sat_add(a.sat_mul(w));
        }
    }
    normalize(&mut incentive);

    // §3.10 bonds.
    let weights_for_bonds = match unclipped {
        None => clipped,
        Some(w) if bonds_penalty == I32F32::ZERO => w,
        Some(w) => interpolate(&w, &consensus, bonds_penalty),
    };
    let last_tempo = if s.last_mechanism_step_block == 0 {
        current_block.saturating_sub(p.tempo as u64)
    } else {
        s.last_mechanism_step_block.saturating_add(1)
    };
    let registration = |j: u16| s.block_at_registration.get(j as usize).copied().unwrap_or(0);

    let (dividends, ema_bonds) = if p.yuma3_enabled {
        let bonds: Vec<Row<I32F32>> = s
            .bonds
            .iter()
            .map(|row| {
                row.iter()
                    .filter(|&&(j, _)| last_tempo > registration(j))
                    .map(|&(j, b)| (j, I32F32::from_u16(b).plain_div(I32F32::U16_MAX)))
                    .collect()
            })
            .collect();
        let ema = if p.liquid_alpha_enabled && consensus.iter().any(|&c| c != I32F32::ZERO) {
            ema_liquid_alpha(p, &weights_for_bonds, &bonds, &consensus)
        } else {
            let alpha = I32F32::ONE.sat_sub(moving_average(p.bonds_moving_average));
            mat_ema(&weights_for_bonds, &bonds, alpha, n)
        };
        let mut ema_norm = ema.clone();
        col_normalize(&mut ema_norm, n);
        let mut dividends: Vec<I32F32> = ema_norm
            .iter()
            .zip(&active_stake)
            .map(|(row, &a)| {
                let t: I32F32 = row.iter().map(|&(j, b)| b.sat_mul(incentive[j as usize])).sum();
                t.checked_mul(a).unwrap_or(I32F32::ZERO)
            })
            .collect();
        normalize(&mut dividends);
        (dividends, ema)
    } else {
        let mut bonds: Vec<Row<I32F32>> = s
            .bonds
            .iter()
            .map(|row| {
                row.iter()
                    .filter(|&&(j, _)| last_tempo > registration(j))
                    .map(|&(j, b)| (j, I32F32::from_u16(b)))
                    .collect()
            })
            .collect();
        col_normalize(&mut bonds, n);
        let mut delta = weights_for_bonds;
        for (row, &a) in delta.iter_mut().zip(&active_stake) {
            row.iter_mut().for_each(|c| c.1 = c.1.sat_mul(a));
        }
        col_normalize(&mut delta, n);
        let alpha = I32F32::ONE.sat_sub(moving_average(p.bonds_moving_average));
        let mut ema = mat_ema(&delta, &bonds, alpha, n);
        col_normalize(&mut ema, n);
        let mut dividends: Vec<I32F32> =
            ema.iter().map(|row| row.iter().map(|&(j, b)| incentive[j as usize].sat_mul(b)).sum()).collect();
        normalize(&mut dividends);
        col_max_upscale(&mut ema, n);
        (dividends, ema)
    };

    // §3.11 emission.
    let combined: Vec<I32F32> = incentive.iter().zip(&dividends).map(|(&i, &d)| i.sat_add(d)).collect();
    let emission_sum: I32F32 = combined.iter().copied().sum();
    let mut norm_server = incentive.clone();
    let mut norm_validator = dividends.clone();
    let mut norm_combined = combined;
    if emission_sum != I32F32::ZERO {
        norm_server.iter_mut().for_each(|v| *v = v.plain_div(emission_sum));
        norm_validator.iter_mut().for_each(|v| *v = v.plain_div(emission_sum));
    }
    normalize(&mut norm_combined);
    if emission_sum == I32F32::ZERO {
        let fallback =
            if active_stake.iter().copied().sum::<I32F32>() == I32F32::ZERO { &stake } else { &active_stake };
        norm_validator.clone_from(fallback);
        norm_combined.clone_from(fallback);
    }
    let to_rao = |v: &I32F32| rao_share(*v, p.rao_emission);
    let server_emission = norm_server.iter().map(to_rao).collect();
    let validator_emission = norm_validator.iter().map(to_rao).collect();
    let combined_emission = norm_combined.iter().map(to_rao).collect();

    // §3.12 bonds written back.
    let mut bond_row_action = Vec::with_capacity(n);
    let mut bonds_next = Vec::with_capacity(n);
    for i in 0..n {
        if new_permit[i] {
            bond_row_action.push(BondRowAction::Set);
            bonds_next.push(ema_bonds[i].iter().map(|&(j, b)| (j, b.to_u16_proportion())).collect());
        } else {
            bond_row_action.push(BondRowAction::Clear);
            bonds_next.push(Vec::new());
        }
    }

    EpochResult {
        activity_cutoff_blocks: cutoff,
        raw_stake,
        active,
        stake,
        active_stake,
        validator_permit_used: permit_used,
        new_validator_permit: new_permit,
        consensus,
        validator_trust,
        incentive,
        dividends,
        normalized_server_emission: norm_server,
        normalized_validator_emission: norm_validator,
        normalized_combined_emission: norm_combined,
        server_emission,
        validator_emission,
        combined_emission,
        bond_row_action,
        ema_bonds: Rows::from_rows(&ema_bonds),
        bonds_next,
    }
}

/// `floor(I96F32(share) · E)`: the I96F32 product of `share` bits and `E · 2^32`, shifted back,
/// is exactly `share_bits · E >> 32`.
fn rao_share(share: I32F32, emission: u64) -> u64 {
    if share.0 <= 0 {
        return 0;
    }
    let v = (share.0 as u128 * emission as u128) >> 32;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `I32F32(I64F64(bonds_moving_average) / I64F64(10^6))`.
fn moving_average(bma: u64) -> I32F32 {
    I64F64::from_u64(bma).plain_div(I64F64::from_u64(1_000_000)).to_i32f32()
}

/// Divide each entry by the sum, unless the sum is 0.
pub fn normalize(v: &mut [I32F32]) {
    let sum: I32F32 = v.iter().copied().sum();
    if sum != I32F32::ZERO {
        v.iter_mut().for_each(|x| *x = x.plain_div(sum));
    }
}

/// `is_topk_nonzero`: non-zero entries, and when `len ≥ k` the `len − k` smallest cleared
/// (ascending stable sort: among equal values the lower uid goes first).
pub fn is_topk_nonzero(v: &[I32F32], k: usize) -> Vec<bool> {
    let mut result: Vec<bool> = v.iter().map(|&x| x != I32F32::ZERO).collect();
    if v.len() < k {
        return result;
    }
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by_key(|&i| v[i]);
    for &i in idx.iter().take(v.len() - k) {
        result[i] = false;
    }
    result
}

/// Each column with a non-zero sum divided by that sum (cells beyond `n` untouched).
fn col_normalize(m: &mut [Row<I32F32>], n: usize) {
    let mut sums = vec![I32F32::ZERO; n];
    for row in m.iter() {
        for &(j, v) in row {
            if let Some(s) = sums.get_mut(j as usize) {
                *s = s.sat_add(v);
            }
        }
    }
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if let Some(&s) = sums.get(*j as usize) {
                if s != I32F32::ZERO {
                    *v = v.plain_div(s);
                }
            }
        }
    }
}

/// Each column with a non-zero maximum divided by that maximum.
fn col_max_upscale(m: &mut [Row<I32F32>], n: usize) {
    let mut maxes = vec![I32F32::ZERO; n];
    for row in m.iter() {
        for &(j, v) in row {
            if let Some(x) = maxes.get_mut(j as usize) {
                if *x < v {
                    *x = v;
                }
            }
        }
    }
    for row in m.iter_mut() {
        for (j, v) in row.iter_mut() {
            if let Some(&x) = maxes.get(*j as usize) {
                if x != I32F32::ZERO {
                    *v = v.plain_div(x);
                }
            }
        }
    }
}

/// Stake-weighted median per column (§3.7): the smallest score `x*` such that the
/// renormalised stake of validators scoring at most `x*` exceeds `Σσ − κ`; the largest score
/// when none does; 0 when no validator has stake.
fn weighted_median_cols(active_stake: &[I32F32], weights: &[Row<I32F32>], n: usize, kappa: I32F32) -> Vec<I32F32> {
    let mut use_stake: Vec<I32F32> = active_stake.iter().copied().filter(|&s| s > I32F32::ZERO).collect();
    normalize(&mut use_stake);
    let validators = use_stake.len();
    let mut result = vec![I32F32::ZERO; n];
    if validators == 0 {
        return result;
    }
    let stake_sum: I32F32 = use_stake.iter().copied().sum();
    let minority = stake_sum.sat_sub(kappa);

    // Gather each column's positive scores and the renormalised stakes of their validators,
    // column-major (two parallel arrays).
    let mut starts = vec![0u32; n + 1];
    let mut rows: Vec<(&Row<I32F32>, i64)> = Vec::with_capacity(validators);
    let mut k = 0;
    for (row, &a) in weights.iter().zip(active_stake) {
        if a > I32F32::ZERO {
            rows.push((row, use_stake[k].0));
            k += 1;
            for &(j, w) in row {
                starts[j as usize + 1] += (w > I32F32::ZERO) as u32;
            }
        }
    }
    for j in 0..n {
        starts[j + 1] += starts[j];
    }
    let total = starts[n] as usize;
    let mut fill = starts.clone();
    let mut scores = vec![0i64; total];
    let mut sigmas = vec![0i64; total];
    for &(row, sigma) in &rows {
        for &(j, w) in row {
            if w > I32F32::ZERO {
                let slot = &mut fill[j as usize];
                scores[*slot as usize] = w.0;
                sigmas[*slot as usize] = sigma;
                *slot += 1;
            }
        }
    }
    let mut scratch = Select::default();
    for j in 0..n {
        let range = starts[j] as usize..starts[j + 1] as usize;
        let positive_mass: i64 = sigmas[range.clone()].iter().sum();
        let zero_mass = stake_sum.0 - positive_mass;
        let zero_count = validators - range.len();
        result[j] = if (zero_count > 0 && minority.0 < zero_mass) || range.is_empty() {
            I32F32::ZERO
        } else {
            let t = minority.0 - if zero_count > 0 { zero_mass } else { 0 };
            I32F32(scratch.run(&scores[range.clone()], &sigmas[range], t))
        };
    }
    result
}

/// Weighted selection with reusable buffers.
#[derive(Default)]
struct Select {
    scores: Vec<i64>,
    sigmas: Vec<i64>,
    next_scores: Vec<i64>,
    next_sigmas: Vec<i64>,
}

impl Select {
    /// The smallest score whose cumulative stake (over scores ≤ it) exceeds `t`, or the
    /// largest score when none does. Quickselect with the middle element as pivot; each round
    /// sums the stake below and at the pivot in one branch-free pass, then keeps only the
    /// side that holds the answer.
    fn run(&mut self, scores: &[i64], sigmas: &[i64], mut t: i64) -> i64 {
        self.scores.clear();
        self.scores.extend_from_slice(scores);
        self.sigmas.clear();
        self.sigmas.extend_from_slice(sigmas);
        loop {
            let len = self.scores.len();
            if len == 1 {
                return self.scores[0];
            }
            let pivot = self.scores[len / 2];
            let (mut sum_lt, mut sum_eq, mut n_lt, mut n_gt) = (0i64, 0i64, 0usize, 0usize);
            for (&s, &w) in self.scores.iter().zip(&self.sigmas) {
                let lt = (s < pivot) as i64;
                let eq = (s == pivot) as i64;
                sum_lt += w & -lt;
                sum_eq += w & -eq;
                n_lt += lt as usize;
                n_gt += (s > pivot) as usize;
            }
            let keep_lower = n_lt > 0 && t < sum_lt;
            let keep_upper = !keep_lower && n_gt > 0 && sum_lt + sum_eq <= t;
            if !keep_lower && !keep_upper {
                return pivot;
            }
            if keep_upper {
                t -= sum_lt + sum_eq;
            }
            // Branch-free compaction: write every element, advance past the kept ones.
            self.next_scores.resize(len, 0);
            self.next_sigmas.resize(len, 0);
            let mut k = 0;
            for (&s, &w) in self.scores.iter().zip(&self.sigmas) {
                self.next_scores[k] = s;
                self.next_sigmas[k] = w;
                k += (if keep_lower { s < pivot } else { s > pivot }) as usize;
            }
            self.next_scores.truncate(k);
            self.next_sigmas.truncate(k);
            std::mem::swap(&mut self.scores, &mut self.next_scores);
            std::mem::swap(&mut self.sigmas, &mut self.next_sigmas);
        }
    }
}

/// subtensor's `col_clip_sparse`: a cell above its column's consensus is clipped to it, or
/// removed when the consensus is 0.
fn clip(m: &mut [Row<I32F32>], consensus: &[I32F32]) {
    for row in m.iter_mut() {
        row.retain_mut(|(j, w)| {
            let c = consensus[*j as usize];
            if c < *w {
                *w = c;
                c > I32F32::ZERO
            } else {
                true
            }
        });
    }
}

/// Weights for bonds (§3.10) for a penalty strictly between 0 and 1:
/// `W + β·(Wc − W)` per cell in ascending column order, keeping positive cells.
fn interpolate(weights: &[Row<I32F32>], consensus: &[I32F32], ratio: I32F32) -> Vec<Row<I32F32>> {
    weights
        .iter()
        .map(|row| {
            // The clipped cell: clipped to the consensus, or removed (0) when it is 0.
            let mut out: Row<I32F32> = row
                .iter()
                .filter_map(|&(j, w)| {
                    let c = consensus[j as usize];
                    let wc = if c < w { c.max(I32F32::ZERO) } else { w };
                    let v = w.sat_add(ratio.sat_mul(wc.sat_sub(w)));
                    (v > I32F32::ZERO).then_some((j, v))
                })
                .collect();
            out.sort_unstable_by_key(|c| c.0);
            out
        })
        .collect()
}

/// `mat_ema_sparse`: per row, `α·new + (1−α)·old` accumulated densely, positive cells kept in
/// ascending column order.
fn mat_ema(new: &[Row<I32F32>], old: &[Row<I32F32>], alpha: I32F32, n: usize) -> Vec<Row<I32F32>> {
    let one_minus = I32F32::ONE.sat_sub(alpha);
    let mut acc = vec![I32F32::ZERO; n];
    let mut touched: Vec<u16> = Vec::new();
    new.iter()
        .zip(old)
        .map(|(new_row, old_row)| {
            let cells = new_row.len() + old_row.len();
            if cells == 0 {
                return Vec::new();
            }
            for &(j, v) in new_row {
                if let Some(cell) = acc.get_mut(j as usize) {
                    *cell = cell.sat_add(alpha.sat_mul(v));
                }
            }
            for &(j, v) in old_row {
                if let Some(cell) = acc.get_mut(j as usize) {
                    *cell = cell.sat_add(one_minus.sat_mul(v));
                }
            }
            let mut out = Vec::with_capacity(new_row.len().max(old_row.len()));
            let mut emit = |j: usize, acc: &mut [I32F32]| {
                let v = std::mem::take(&mut acc[j]);
                if v > I32F32::ZERO {
                    out.push((j as u16, v));
                }
            };
            if cells * 8 >= n {
                // Dense rows: one scan in column order (untouched cells are 0 and skipped).
                for j in 0..n {
                    emit(j, &mut acc);
                }
            } else {
                touched.clear();
                touched.extend(new_row.iter().chain(old_row).map(|c| c.0).filter(|&j| (j as usize) < n));
                touched.sort_unstable();
                touched.dedup();
                for &j in &touched {
                    emit(j as usize, &mut acc);
                }
            }
            out
        })
        .collect()
}

/// Yuma3 with liquid alpha (§3.10.3), production semantics: an EMA cell exists only where the
/// bond weights have a cell (an old bond elsewhere is dropped), the cell's alpha comes from
/// the sigmoid of how far the weight is above consensus (buying) or below the old bond
/// (selling), and the weight and bond the sigmoid sees are read with subtensor's forward
/// cursor over each row, which only sees the cells that are running column maxima of their
/// row (all of them when the row is in ascending order).
fn ema_liquid_alpha(
    p: &Params,
    weights: &[Row<I32F32>],
    bonds: &[Row<I32F32>],
    consensus: &[I32F32],
) -> Vec<Row<I32F32>> {
    let n = consensus.len();
    let low = I32F32::from_u16_proportion(p.alpha_low);
    let high = I32F32::from_u16_proportion(p.alpha_high);
    let steep = I32F32::from_int(p.alpha_sigmoid_steepness as i64).sat_div(I32F32::from_int(-100));
    // Dense scratch rows: the bond value the cursor sees, and the bond value itself.
    let mut seen_bond = vec![I32F32::ZERO; n];
    let mut old = vec![I32F32::ZERO; n];
    let mut seen_weight = vec![I32F32::ZERO; n];
    weights
        .iter()
        .zip(bonds)
        .map(|(w_row, b_row)| {
            let mut max_col: i32 = -1;
            for &(j, b) in b_row {
                if (j as i32) > max_col {
                    max_col = j as i32;
                    if let Some(x) = seen_bond.get_mut(j as usize) {
                        *x = b;
                    }
                }
                if let Some(x) = old.get_mut(j as usize) {
                    *x = b;
                }
            }
            let mut max_col: i32 = -1;
            for &(j, w) in w_row {
                if (j as i32) > max_col {
                    max_col = j as i32;
                    seen_weight[j as usize] = w;
                }
            }
            let mut out = Vec::with_capacity(w_row.len());
            for &(j, w) in w_row {
                let ju = j as usize;
                let a = alpha_sigmoid(consensus[ju], seen_weight[ju], seen_bond[ju], low, high, steep);
                let decayed = I32F32::ONE.sat_sub(a).sat_mul(old[ju]);
                let inc = a.sat_mul(w).max(I32F32::ZERO);
                let v = decayed.sat_add(inc).min(I32F32::ONE);
                if v > I32F32::ZERO {
                    out.push((j, v));
                }
            }
            for &(j, _) in w_row {
                seen_weight[j as usize] = I32F32::ZERO;
            }
            for &(j, _) in b_row {
                if let Some(x) = seen_bond.get_mut(j as usize) {
                    *x = I32F32::ZERO;
                }
                if let Some(x) = old.get_mut(j as usize) {
                    *x = I32F32::ZERO;
                }
            }
            out
        })
        .collect()
}

/// subtensor's `alpha_sigmoid`; `steep` is `steepness / −100`.
fn alpha_sigmoid(consensus: I32F32, weight: I32F32, bond: I32F32, low: I32F32, high: I32F32, steep: I32F32) -> I32F32 {
    let diff = if weight >= bond {
        weight.sat_sub(consensus).clamp_to(I32F32::ZERO, I32F32::ONE)
    } else {
        bond.sat_sub(weight).clamp_to(I32F32::ZERO, I32F32::ONE)
    };
    let sigmoid = I32F32::ONE.sat_div(I32F32::ONE.sat_add(exp_safe(steep.sat_mul(diff.sat_sub(I32F32::HALF)))));
    low.sat_add(sigmoid.sat_mul(high.sat_sub(low))).clamp_to(low, high)
}
