//! One Yuma-consensus epoch with the production (sparse) semantics of subtensor's
//! `epoch_mechanism` at commit 14bc6f9f, step by step as shared/design/INCENTIVES.md §3
//! specifies it. Pure: the caller supplies the subnet's stored state and the current block;
//! nothing here reads a clock, randomness or a hash map.
//!
//! Sparse matrices are rows of `(column, value)` cells. The distinction between an absent
//! cell and a cell present with value 0 is kept exactly as subtensor keeps it (it matters for
//! Yuma3 with liquid alpha), and so is the order of cells in stored rows (weights are stored
//! in submission order; the liquid-alpha cursor depends on it).
//!
//! Internally the weights live in one compressed-row matrix (`Workspace`), rows sorted by
//! column, transformed in place from W to the weights for bonds; every division by a row or
//! column sum goes through an exact reciprocal (`fixed::Divisor`, or the leaner
//! `fixed::Recip` and `fixed::U16Div` where the dividends are known to lie in their range).
//! tests/reference holds the straightforward version this must agree with bit for bit
//! (tests/differential.rs).

use crate::fixed::{exp_safe, recip_div, tao_weight, Divisor, Recip, RecipCols, U16Div, I32F32, I64F64};

/// A sparse row: `(column, value)` cells in stored order.
pub type Row<T> = Vec<(u16, T)>;

/// Rows of `(column, value)` cells kept in one array per field (row `i` is
/// `col[ptr[i]..ptr[i + 1]]` with its values): 10 bytes a cell for `I32F32` instead of a
/// padded 16, no allocation per row, and values in one slice that loops vectorise over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rows<T> {
    ptr: Vec<usize>,
    col: Vec<u16>,
    val: Vec<T>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Rows { ptr: vec![0], col: Vec::new(), val: Vec::new() }
    }
}

impl<T: Copy> Rows<T> {
    pub fn from_rows(rows: &[Row<T>]) -> Self {
        let mut m = Rows::default();
        for row in rows {
            m.col.extend(row.iter().map(|c| c.0));
            m.val.extend(row.iter().map(|c| c.1));
            m.ptr.push(m.col.len());
        }
        m
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.ptr.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i`: its columns and values.
    pub fn row(&self, i: usize) -> (&[u16], &[T]) {
        let r = self.ptr[i]..self.ptr[i + 1];
        (&self.col[r.clone()], &self.val[r])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u16], &[T])> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    pub fn to_rows(&self) -> Vec<Row<T>> {
        self.iter().map(|(c, v)| c.iter().copied().zip(v.iter().copied()).collect()).collect()
    }
}

/// The subnet parameters the epoch reads (INCENTIVES.md §5; defaults are subtensor's runtime
/// defaults, see `Default`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub kappa: u16,
    pub bonds_penalty: u16,
    pub bonds_moving_average: u64,
    pub tempo: u16,
    pub activity_cutoff_factor_milli: u32,
    pub max_allowed_validators: u16,
    pub stake_threshold: u64,
    pub yuma3_enabled: bool,
    pub liquid_alpha_enabled: bool,
    pub alpha_low: u16,
    pub alpha_high: u16,
    pub alpha_sigmoid_steepness: i16,
    pub tao_weight: u64,
    pub rao_emission: u64,
    pub commit_reveal_enabled: bool,
    pub owner_uid: Option<u16>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            kappa: 32_767,
            bonds_penalty: 65_535,
            bonds_moving_average: 900_000,
            tempo: 360,
            activity_cutoff_factor_milli: 13_889,
            max_allowed_validators: 128,
            stake_threshold: 0,
            yuma3_enabled: false,
            liquid_alpha_enabled: false,
            alpha_low: 45_875,
            alpha_high: 58_982,
            alpha_sigmoid_steepness: 1_000,
            tao_weight: 0,
            rao_emission: 1_000_000_000,
            commit_reveal_enabled: false,
            owner_uid: None,
        }
    }
}

impl Params {
    /// `max(1, floor(factor · tempo / 1000))` blocks.
    pub fn activity_cutoff_blocks(&self) -> u64 {
        (self.activity_cutoff_factor_milli as u64)
            .saturating_mul(self.tempo as u64)
            .checked_div(1000)
            .unwrap_or(0)
            .max(1)
    }
}

/// The stored state of one subnet (one mechanism) that the epoch reads. Every per-uid vector
/// has `n` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetState {
    pub alpha_stake: Vec<u64>,
    pub tao_stake: Vec<u64>,
    pub validator_permit: Vec<bool>,
    pub last_update: Vec<u64>,
    pub block_at_registration: Vec<u64>,
    /// Stored weight rows (max-upscaled u16, submission order, explicit zeros kept).
    pub weights: Vec<Row<u16>>,
    /// Stored bond rows (u16).
    pub bonds: Vec<Row<u16>>,
    pub last_mechanism_step_block: u64,
    /// Earliest live weight-commit block per uid (commit-reveal), `None` for no commit.
    pub commit_block: Vec<Option<u64>>,
}

impl SubnetState {
    pub fn n(&self) -> usize {
        self.alpha_stake.len()
    }

    /// Checks that every per-uid vector has `n` entries and that no stored row lists a
    /// column twice (subtensor's `set_weights` rejects duplicates, so such rows never exist
    /// on chain).
    pub fn check(&self) -> Result<(), String> {
        let n = self.n();
        if n > u16::MAX as usize {
            return Err(format!("n = {n} exceeds 65535 uids"));
        }
        let lens = [
            ("tao_stake", self.tao_stake.len()),
            ("validator_permit", self.validator_permit.len()),
            ("last_update", self.last_update.len()),
            ("block_at_registration", self.block_at_registration.len()),
            ("weights", self.weights.len()),
            ("bonds", self.bonds.len()),
            ("commit_block", self.commit_block.len()),
        ];
        for (name, len) in lens {
            if len != n {
                return Err(format!("{name} has {len} entries, expected n = {n}"));
            }
        }
        for (name, rows) in [("weights", &self.weights), ("bonds", &self.bonds)] {
            let mut seen = vec![false; u16::MAX as usize + 1];
            for (i, row) in rows.iter().enumerate() {
                for &(j, _) in row {
                    if std::mem::replace(&mut seen[j as usize], true) {
                        return Err(format!("{name} row of uid {i} lists uid {j} twice"));
                    }
                }
                for &(j, _) in row {
                    seen[j as usize] = false;
                }
            }
        }
        Ok(())
    }
}

/// What the epoch did to a uid's stored bond row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BondRowAction {
    /// New permit: the row is the epoch's EMA bonds.
    Set,
    /// No new permit: the row is emptied.
    Clear,
}

/// Everything one epoch computes (INCENTIVES-IO.md "OUTPUTS").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochResult {
    pub activity_cutoff_blocks: u64,
    pub raw_stake: Vec<u64>,
    pub active: Vec<bool>,
    pub stake: Vec<I32F32>,
    pub active_stake: Vec<I32F32>,
    pub validator_permit_used: Vec<bool>,
    pub new_validator_permit: Vec<bool>,
    pub consensus: Vec<I32F32>,
    pub validator_trust: Vec<I32F32>,
    pub incentive: Vec<I32F32>,
    pub dividends: Vec<I32F32>,
    pub normalized_server_emission: Vec<I32F32>,
    pub normalized_validator_emission: Vec<I32F32>,
    pub normalized_combined_emission: Vec<I32F32>,
    pub server_emission: Vec<u64>,
    pub validator_emission: Vec<u64>,
    pub combined_emission: Vec<u64>,
    pub bond_row_action: Vec<BondRowAction>,
    /// The bonds handed to storage conversion (original Yuma: column max-upscaled EMA;
    /// Yuma3: raw EMA), cells in the order the epoch produced them.
    pub ema_bonds: Rows<I32F32>,
    /// The stored bond rows after the epoch, in stored order (zero values kept as subtensor
    /// stores them).
    pub bonds_next: Vec<Row<u16>>,
}

impl EpochResult {
    /// Writes what the chain persists back into the state: bonds and the new permits.
    pub fn persist(&self, state: &mut SubnetState) {
        state.bonds.clone_from(&self.bonds_next);
        state.validator_permit.clone_from(&self.new_validator_permit);
    }
}

/// Runs one epoch at `current_block`. `state` must pass [`SubnetState::check`].
pub fn run_epoch(p: &Params, s: &SubnetState, current_block: u64) -> EpochResult {
    run_epoch_with(p, s, current_block, &mut Workspace::default())
}

/// Sparse matrix in compressed rows: row `i` is `col[ptr[i]..ptr[i + 1]]` with its values,
/// columns ascending. Values are `I32F32` bits.
#[derive(Debug, Default)]
struct Csr {
    ptr: Vec<usize>,
    col: Vec<u16>,
    val: Vec<i64>,
}

impl Csr {
    fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.ptr[i]..self.ptr[i + 1]
    }
}

/// Buffers one epoch needs, kept between epochs so that a node running an epoch every tempo
/// reuses them instead of faulting in fresh memory each time. Holds no state that changes a
/// result: any workspace gives the same [`EpochResult`].
#[derive(Debug, Default)]
pub struct Workspace {
    /// W, then in place Wc, Wb or (original Yuma with bonds penalty 1) ΔB = a·Wc.
    w: Csr,
    /// Column-major consensus input of one tile: `(score − 1) << 16 | validator` per positive
    /// score.
    keys: Vec<i64>,
    starts: Vec<usize>,
    fill: Vec<usize>,
    cursors: Vec<usize>,
    /// Stake per bucket of the consensus selection.
    hist: Vec<i64>,
    sort: Vec<(u16, i64)>,
    bond_sort: Vec<(u16, u16)>,
    col_sums: Vec<I32F32>,
    /// Per column: the divisors of the EMA's two terms; the EMA's sum and maximum.
    merge_cols: Vec<[Divisor; 2]>,
    col_acc: Vec<[I32F32; 2]>,
    /// The same sum and maximum, as two arrays, where the EMA merges contiguous rows.
    acc_sum: Vec<i64>,
    acc_max: Vec<i64>,
    /// The lean EMA's divisors per column, split for vectorised loops.
    lean_d: RecipCols,
    lean_b: RecipCols,
    /// Per row of W: whether its columns are contiguous (`c0..c0 + len`).
    w_contiguous: Vec<bool>,
}

/// Columns per tile of the consensus transposition: the tile's open cache lines (one per
/// column) stay in L1 while every validator row is scattered into it.
const TILE: usize = 512;

/// Rows transposed together where they cover the same contiguous columns.
const BLOCK: usize = 8;

/// Keys of padding after each column of the transposition (one cache line).
const COLUMN_PAD: usize = 8;

/// [`run_epoch`] with caller-owned buffers (the same result for any `ws`).
pub fn run_epoch_with(p: &Params, s: &SubnetState, current_block: u64, ws: &mut Workspace) -> EpochResult {
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
        filtered.iter_mut().for_each(|v| *v = v.safe_div(sum));
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
    // commit-reveal, then row normalisation; cells sorted by column.
    let reg = &s.block_at_registration;
    let w = &mut ws.w;
    let (mut col, mut val) = (std::mem::take(&mut w.col), std::mem::take(&mut w.val));
    w.ptr.clear();
    w.ptr.push(0);
    let cap: usize = (0..n).filter(|&i| permit_used[i]).map(|i| s.weights[i].len()).sum();
    let counts = &mut ws.starts;
    counts.clear();
    counts.resize(n + 1, 0);
    // Room for every stored cell; each is written at `end` and kept by advancing `end`.
    col.resize(cap, 0);
    val.resize(cap, 0);
    let mut end = 0;
    let mut w_contiguous = std::mem::take(&mut ws.w_contiguous);
    w_contiguous.clear();
    w_contiguous.resize(n, false);
    for (i, &permitted) in permit_used.iter().enumerate() {
        if permitted {
            // A cell is kept when `reg[j] < lu` (updated since j registered) and `reg[j] ≤
            // commit` (commit-reveal), i.e. `reg[j] < limit`; and not on the diagonal unless
            // this is the owner's row.
            let commit = if p.commit_reveal_enabled { s.commit_block[i].unwrap_or(u64::MAX) } else { u64::MAX };
            let limit = s.last_update[i].min(commit.saturating_add(1));
            let diagonal = if p.owner_uid == Some(i as u16) { usize::MAX } else { i };
            let start = end;
            let mut sorted = true;
            let mut last = -1i32;
            // The row sum of u16 values is exact in u64; as an I32F32 sum it saturates.
            let mut sum = 0u64;
            let row = &s.weights[i];
            let c0 = row.first().map_or(0, |c| c.0 as usize);
            let len = row.len();
            // Contiguous columns, all kept, the diagonal not among them: copied as they are
            // (vectorised).
            let contiguous = len > 0
                && c0 + len <= n
                && !(c0..c0 + len).contains(&diagonal)
                && reg.get(c0..c0 + len).is_some_and(|r| r.iter().fold(0, |m, &r| m.max(r)) < limit)
                && row.iter().zip(c0 as u16..).fold(true, |ok, (c, j)| ok & (c.0 == j));
            w_contiguous[i] = contiguous;
            if contiguous {
                for (k, c) in row.iter().enumerate() {
                    col[end + k] = c.0;
                    val[end + k] = c.1 as i64;
                    sum += c.1 as u64;
                }
                end += len;
            }
            for &(j, v) in if contiguous { &[][..] } else { &row[..] } {
                let ju = j as usize;
                let keep = reg.get(ju).is_some_and(|&r| r < limit) && ju != diagonal;
                col[end] = j;
                val[end] = v as i64;
                if keep {
                    sorted &= j as i32 > last;
                    last = j as i32;
                    sum += v as u64;
                    end += 1;
                }
            }
            let (col, val) = (&mut col[start..end], &mut val[start..end]);
            if sum >= 1 << 31 {
                // The I32F32 row sum saturates.
                let d = Divisor::new(I32F32::MAX);
                val.iter_mut().for_each(|v| *v = d.div(I32F32::from_u16(*v as u16)).0);
            } else if let Some(d) = U16Div::new(sum) {
                // A cell is `v·2^32 / (sum·2^32)`: `⌊v·2^32 / sum⌋`.
                val.iter_mut().for_each(|v| *v = d.div(*v as u64) as i64);
            } else {
                // The same for a sum of 0 (all cells 0) or 1.
                let d = Recip::new(sum);
                val.iter_mut().for_each(|v| *v = d.div(*v as u64) as i64);
            }
            if sum > 0 && active_stake[i] > I32F32::ZERO {
                // Consensus input: count each column's positive scores of staked rows.
                if contiguous {
                    for (count, &v) in counts[c0 + 1..c0 + 1 + len].iter_mut().zip(val.iter()) {
                        *count += (v > 0) as usize;
                    }
                } else {
                    for (&j, &v) in col.iter().zip(val.iter()) {
                        counts[j as usize + 1] += (v > 0) as usize;
                    }
                }
            }
            if !sorted {
                let scratch = &mut ws.sort;
                scratch.clear();
                scratch.extend(col.iter().copied().zip(val.iter().copied()));
                scratch.sort_unstable_by_key(|c| c.0);
                for ((c, v), &(j, x)) in col.iter_mut().zip(val.iter_mut()).zip(scratch.iter()) {
                    (*c, *v) = (j, x);
                }
            }
        }
        w.ptr.push(end);
    }
    col.truncate(end);
    val.truncate(end);
    (w.col, w.val) = (col, val);

    // §3.7 consensus.
    let kappa = I32F32::from_u16_proportion(p.kappa);
    // §3.8 clipping and validator trust, §3.9 ranks, tile by tile right after each tile's
    // consensus (while its cells are in cache). Original Yuma with the default bonds penalty
    // of 1 goes on with ΔB = Wc·a (§3.10.1), whose cells are the terms of the ranks: the
    // pass stores those in place of W, and the raw ranks are ΔB's column sums. A cell that
    // sparse clipping removes (above a zero consensus) is left there with ΔB = 0, which
    // adds nothing to the EMA, exactly as an absent cell.
    let bonds_penalty = I32F32::from_u16_proportion(p.bonds_penalty);
    let clip_in_place = bonds_penalty == I32F32::ONE;
    let delta_in_place = clip_in_place && !p.yuma3_enabled;
    let mut clip = Clip {
        active_stake: &active_stake,
        trust: vec![I32F32::ZERO; n],
        ranks: vec![I32F32::ZERO; n],
        store_delta: delta_in_place,
        contiguous: &w_contiguous,
    };
    let consensus = weighted_median_cols(&active_stake, ws, n, kappa, &mut clip);
    let Clip { trust: validator_trust, ranks: mut incentive, .. } = clip;
    ws.w_contiguous = w_contiguous;

    let w = &mut ws.w;
    if clip_in_place && !delta_in_place {
        // Yuma3 reads the clipped weights as rows, where a removed cell is absent: clipped
        // in place, cells above a zero consensus removed.
        rewrite_cells(w, &consensus, n, |v, c| (v.min(c), !(c < v && c <= I32F32::ZERO)));
    }
    let raw_ranks = delta_in_place.then(|| incentive.clone());
    normalize(&mut incentive);

    // §3.10 bonds: weights for bonds, in place.
    if !clip_in_place && bonds_penalty != I32F32::ZERO {
        interpolate(w, &consensus, bonds_penalty, n);
    }
    let last_tempo = if s.last_mechanism_step_block == 0 {
        current_block.saturating_sub(p.tempo as u64)
    } else {
        s.last_mechanism_step_block.saturating_add(1)
    };
    let registration = |j: u16| s.block_at_registration.get(j as usize).copied().unwrap_or(0);

    // Original Yuma writes the stored rows with its EMA; Yuma3 below.
    let mut bonds_next = None;
    let (dividends, ema_bonds) = if p.yuma3_enabled {
        // Yuma3 runs on rows: the weights for bonds in the order the production code holds
        // them (stored order, or ascending after interpolation), which the liquid-alpha
        // cursor depends on.
        let stored_order = clip_in_place || bonds_penalty == I32F32::ZERO;
        let weights_for_bonds = csr_to_rows(&ws.w, s, n, stored_order);
        let bonds: Vec<Row<I32F32>> = s
            .bonds
            .iter()
            .map(|row| {
                row.iter()
                    .filter(|&&(j, _)| last_tempo > registration(j))
                    .map(|&(j, b)| (j, I32F32::from_u16(b).safe_div(I32F32::U16_MAX)))
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
        (dividends, Rows::from_rows(&ema))
    } else {
        let (dividends, ema, next) = original_bonds(
            p,
            s,
            ws,
            BondInputs {
                active_stake: &active_stake,
                incentive: &incentive,
                raw_ranks: raw_ranks.as_deref(),
                last_tempo,
                new_permit: &new_permit,
            },
        );
        bonds_next = Some(next);
        (dividends, ema)
    };

    // §3.11 emission.
    let combined: Vec<I32F32> = incentive.iter().zip(&dividends).map(|(&i, &d)| i.sat_add(d)).collect();
    let emission_sum: I32F32 = combined.iter().copied().sum();
    let mut norm_server = incentive.clone();
    let mut norm_validator = dividends.clone();
    let mut norm_combined = combined;
    if emission_sum != I32F32::ZERO {
        norm_server.iter_mut().for_each(|v| *v = v.safe_div(emission_sum));
        norm_validator.iter_mut().for_each(|v| *v = v.safe_div(emission_sum));
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
    let bond_row_action =
        new_permit.iter().map(|&set| if set { BondRowAction::Set } else { BondRowAction::Clear }).collect();
    let bonds_next = bonds_next.unwrap_or_else(|| {
        ema_bonds
            .iter()
            .zip(&new_permit)
            .map(|((cols, vals), &set)| {
                if set {
                    cols.iter().zip(vals).map(|(&j, b)| (j, b.to_u16_proportion())).collect()
                } else {
                    Vec::new()
                }
            })
            .collect()
    });

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
        ema_bonds,
        bonds_next,
    }
}

/// Rows of the CSR matrix `m`, either in ascending column order or in the order the cells
/// have in the stored weight rows.
fn csr_to_rows(m: &Csr, s: &SubnetState, n: usize, stored_order: bool) -> Vec<Row<I32F32>> {
    let mut value = vec![None; if stored_order { n } else { 0 }];
    (0..n)
        .map(|i| {
            let range = m.range(i);
            if !stored_order {
                return range.map(|k| (m.col[k], I32F32(m.val[k]))).collect();
            }
            for k in range.clone() {
                value[m.col[k] as usize] = Some(I32F32(m.val[k]));
            }
            let row: Row<I32F32> = s.weights[i]
                .iter()
                .filter_map(|&(j, _)| value.get(j as usize).copied().flatten().map(|v| (j, v)))
                .collect();
            for k in range {
                value[m.col[k] as usize] = None;
            }
            row
        })
        .collect()
}

/// What [`original_bonds`] reads from the earlier steps.
struct BondInputs<'a> {
    active_stake: &'a [I32F32],
    /// Normalised incentive.
    incentive: &'a [I32F32],
    /// Ranks before normalisation, when the weights matrix holds ΔB already.
    raw_ranks: Option<&'a [I32F32]>,
    last_tempo: u64,
    new_permit: &'a [bool],
}

/// Original Yuma bonds and dividends (§3.10.1): previous bonds read from the stored rows and
/// column-normalised on the fly, ΔB = Wb·a (in place of Wb in the workspace, unless the
/// clipping pass stored it already) column-normalised on the fly, the EMA merged row by row
/// into the result rows, column-normalised there, dividends, and the column max-upscaled EMA
/// with the stored rows built from it.
fn original_bonds(
    p: &Params,
    s: &SubnetState,
    ws: &mut Workspace,
    inputs: BondInputs,
) -> (Vec<I32F32>, Rows<I32F32>, Vec<Row<u16>>) {
    let BondInputs { active_stake, incentive, raw_ranks, last_tempo, new_permit } = inputs;
    let n = s.n();
    let Workspace { w, bond_sort: sort, col_sums, merge_cols, col_acc, acc_sum, acc_max, lean_d, lean_b, .. } = ws;
    let reg = &s.block_at_registration;

    // Previous bonds: cells of recently registered columns removed, cells on columns ≥ n
    // dropped too (the EMA ignores them); read straight from the stored rows. Column sums,
    // and per row whether it is already clean (ascending, nothing removed).
    let kept = |j: u16| (j as usize) < n && last_tempo > reg[j as usize];
    // Sums of u16 values are exact in u64; as I32F32 sums they saturate.
    let mut b_int = vec![0u64; n];
    let mut clean = vec![true; n];
    // Columns `< j` that are not kept, for each j: a contiguous row's columns are all kept
    // when the count does not move across them.
    let mut unkept = Vec::with_capacity(n + 1);
    unkept.push(0u32);
    for j in 0..n {
        unkept.push(unkept[j] + !kept(j as u16) as u32);
    }
    for (row, clean) in s.bonds.iter().zip(clean.iter_mut()) {
        let c0 = row.first().map_or(0, |c| c.0 as usize);
        let len = row.len();
        if len > 0
            && c0 + len <= n
            && unkept[c0 + len] == unkept[c0]
            && row.iter().zip(c0 as u16..).fold(true, |ok, (c, j)| ok & (c.0 == j))
        {
            // Contiguous and all kept: clean, and the sums in one vectorised pass.
            for (sum, c) in b_int[c0..c0 + len].iter_mut().zip(row) {
                *sum += c.1 as u64;
            }
            continue;
        }
        let mut last = -1i32;
        for &(j, v) in row {
            if kept(j) {
                *clean &= j as i32 > last;
                last = j as i32;
                b_int[j as usize] += v as u64;
            } else {
                *clean = false;
            }
        }
    }
    // Column normalisation is division by the column sum; a column whose sum is 0 has only
    // zero cells (every value here is non-negative), which `Divisor(0)` leaves at 0.
    let b_sums = col_sums;

    // ΔB = Wb · a and its column sums (done already when the clipping pass stored ΔB).
    let d_sums = b_sums;
    d_sums.clear();
    if let Some(ranks) = raw_ranks {
        d_sums.extend_from_slice(ranks);
    } else {
        d_sums.resize(n, I32F32::ZERO);
        for (i, &a) in active_stake.iter().enumerate() {
            let range = w.range(i);
            for (&j, v) in w.col[range.clone()].iter().zip(&mut w.val[range]) {
                let x = I32F32(*v).mul_unit(a);
                *v = x.0;
                d_sums[j as usize] = d_sums[j as usize].sat_add(x);
            }
        }
    }
    // EMA = α·ΔB/ΣΔB + (1 − α)·B/ΣB, positive cells, ascending columns, written straight
    // into the result's rows (normalised and upscaled there in place); per column its sum
    // and its maximum.
    let alpha = I32F32::ONE.sat_sub(moving_average(p.bonds_moving_average));
    let one_minus = I32F32::ONE.sat_sub(alpha);
    col_acc.clear();
    col_acc.resize(n, [I32F32::ZERO; 2]);
    acc_sum.clear();
    acc_sum.resize(n, 0);
    acc_max.clear();
    acc_max.resize(n, 0);
    let acc: &mut [[I32F32; 2]] = col_acc;
    let rows = MergeRows { s, w, clean: &clean, kept: &kept, sort, acc, acc_sum, acc_max };
    // Every ΔB cell is at most its row's active stake (a product of it with a weight of at
    // most 1) and at most its column sum, every bond at most its column sum: with stakes
    // below 1, bond sums that do not saturate and α in [0, 1], every quotient is at most 1
    // and every dividend below 2^32, the range of the lean `Recip` divisions.
    let lean = (0..=I32F32::ONE.0).contains(&alpha.0)
        && b_int.iter().all(|&s| s < 1 << 31)
        && d_sums.iter().all(|d| d.0 >= 0)
        && active_stake.iter().all(|a| (0..I32F32::ONE.0).contains(&a.0));
    let mut ema = if lean {
        lean_d.clear();
        lean_b.clear();
        for (d, &s) in d_sums.iter().zip(&b_int) {
            lean_d.push(Recip::new(d.0 as u64));
            lean_b.push(Recip::new(s));
        }
        let (ld, lb): (&RecipCols, &RecipCols) = (lean_d, lean_b);
        // `Recip::div` in 32-bit products over column arrays, which vectorise where rows
        // cover the same contiguous columns. `(α·q) >> 32` with α and q at most 1: in 64
        // bits unless both are 1 exactly, so α = 1 is taken apart.
        let (a64, o64) = (alpha.0 as u64, one_minus.0 as u64);
        let scale = move |f: u64, q: u64| if f == 1 << 32 { q } else { (f * q) >> 32 };
        let dense = move |c0: usize,
                          wv: &[i64],
                          brow: &[(u16, u16)],
                          out: &mut [I32F32],
                          sums: &mut [i64],
                          maxs: &mut [i64]| {
            let len = wv.len();
            let out = &mut out[..len];
            let (de, dh, dl) = (&ld.e[c0..c0 + len], &ld.hi[c0..c0 + len], &ld.lo[c0..c0 + len]);
            let (be, bh, bl) = (&lb.e[c0..c0 + len], &lb.hi[c0..c0 + len], &lb.lo[c0..c0 + len]);
            let (sums, maxs) = (&mut sums[..len], &mut maxs[..len]);
            let mut dropped = 0;
            for k in 0..len {
                let qd = recip_div(wv[k] as u32, de[k], dh[k], dl[k]);
                let qb = recip_div(brow[k].1 as u32, be[k], bh[k], bl[k]);
                let v = (scale(a64, qd) + scale(o64, qb)) as i64;
                out[k] = I32F32(v);
                sums[k] += v;
                maxs[k] = maxs[k].max(v);
                dropped += (v <= 0) as usize;
            }
            dropped
        };
        rows.merge(
            |j, x, y| {
                let dx = x.map_or(0, |x| scale(a64, recip_div(x as u32, ld.e[j], ld.hi[j], ld.lo[j])));
                let by = y.map_or(0, |y| scale(o64, recip_div(y as u32, lb.e[j], lb.hi[j], lb.lo[j])));
                I32F32((dx + by) as i64)
            },
            Some(&dense),
        )
    } else {
        merge_cols.clear();
        merge_cols.extend(d_sums.iter().zip(&b_int).map(|(&d, &s)| {
            [Divisor::new(d), Divisor::new(if s < 1 << 31 { I32F32((s as i64) << 32) } else { I32F32::MAX })]
        }));
        let cols: &[[Divisor; 2]] = merge_cols;
        rows.merge(
            |j, x, y| {
                let [d, b] = &cols[j];
                let mut v = I32F32::ZERO;
                if let Some(x) = x {
                    v = v.sat_add(alpha.mul_unit(d.div(I32F32(x))));
                }
                if let Some(y) = y {
                    v = v.sat_add(one_minus.mul_unit(b.div(I32F32::from_u16(y))));
                }
                v
            },
            None,
        )
    };
    let acc: &[[I32F32; 2]] = col_acc;
    // One pass: EMA column-normalised in place, dividends, upscaled by the column maxima of
    // the normalised EMA, stored rows (§3.12) of uids with a new permit. Division by a
    // positive divisor rounds down monotonically, so the largest normalised cell of a column
    // is its largest raw cell normalised. Per column: the sum's divisor, the normalised
    // maximum's divisor, the incentive.
    // Sums and normalised maxima are non-negative: `Recip::div_bits` is `safe_div` by them.
    // Where every column's maximum and normalised maximum lie below 1 (no column holds its
    // whole sum in one cell), every dividend of both divisions does, and every quotient is
    // at most 1 (a cell is at most its column's sum, a normalised cell at most the
    // normalised maximum): the lean `Recip::div` alone.
    let mut lean = true;
    let fin: Vec<(Recip, Recip, I32F32)> = acc
        .iter()
        .zip(incentive)
        .map(|(&[sum, max], &inc)| {
            let e = Recip::new(sum.0 as u64);
            let norm_max = e.div_bits(max.0);
            lean &= (max.0 as u64) < 1 << 32 && (norm_max as u64) < 1 << 32;
            (e, Recip::new(norm_max as u64), inc)
        })
        .collect();
    let divide = |r: &Recip, a: i64| if lean { r.div(a as u64) as i64 } else { r.div_bits(a) };
    if lean {
        // The same divisors split into column arrays, for rows over contiguous columns.
        lean_d.clear();
        lean_b.clear();
        for (e, max, _) in &fin {
            lean_d.push(*e);
            lean_b.push(*max);
        }
    }
    let (fe, fm): (&RecipCols, &RecipCols) = (lean_d, lean_b);
    let inc_bits: Vec<u64> = if lean { incentive.iter().map(|i| i.0 as u64).collect() } else { Vec::new() };
    let mut dividends = vec![I32F32::ZERO; n];
    let mut bonds_next = Vec::with_capacity(n);
    let Rows { ptr, col, val } = &mut ema;
    for (i, (d, &set)) in dividends.iter_mut().zip(new_permit).enumerate() {
        let range = ptr[i]..ptr[i + 1];
        let (cols, vals) = (&col[range.clone()], &mut val[range]);
        let c0 = cols.first().map_or(0, |&c| c as usize);
        if lean && !cols.is_empty() && counts_up(cols, c0) {
            // Contiguous columns from c0: the lean divisions below in 32-bit products over
            // column arrays (vectorised). Cells are below 2^32 (lean), so is each quotient,
            // and an incentive is at most 1: every product fits 64 bits.
            let len = cols.len();
            let (ee, eh, el) = (&fe.e[c0..c0 + len], &fe.hi[c0..c0 + len], &fe.lo[c0..c0 + len]);
            let (me, mh, ml) = (&fm.e[c0..c0 + len], &fm.hi[c0..c0 + len], &fm.lo[c0..c0 + len]);
            let inc = &inc_bits[c0..c0 + len];
            let mut t = 0u64;
            for (k, v) in vals.iter_mut().enumerate() {
                let x = recip_div(v.0 as u32, ee[k], eh[k], el[k]);
                t += (inc[k] * x) >> 32;
                *v = I32F32(recip_div(x as u32, me[k], mh[k], ml[k]) as i64);
            }
            *d = I32F32(t as i64);
            bonds_next.push(if set {
                let stored =
                    |(k, b): (usize, &I32F32)| ((c0 + k) as u16, ((b.0 as u64 * 65_535) >> 32).min(65_535) as u16);
                vals.iter().enumerate().map(stored).collect()
            } else {
                Vec::new()
            });
            continue;
        }
        let mut t = 0i64;
        for (j, v) in cols.iter().zip(vals.iter_mut()) {
            let (e, max, inc) = &fin[*j as usize];
            let x = I32F32(divide(e, v.0));
            // Both factors are proportions (incentive normalised, a cell at most its column's
            // sum) and a row has fewer than 2^16 cells: no saturation.
            t += inc.mul_proportion(x).0;
            *v = I32F32(divide(max, x.0));
        }
        *d = I32F32(t);
        let cells = cols.iter().zip(vals.iter());
        bonds_next.push(if !set {
            Vec::new()
        } else if lean {
            // Upscaled cells lie in [0, 1] here: `to_u16_proportion` without its range test.
            cells.map(|(&j, b)| (j, ((b.0 as u64 * 65_535) >> 32).min(65_535) as u16)).collect()
        } else {
            cells.map(|(&j, b)| (j, b.to_u16_proportion())).collect()
        });
    }
    normalize(&mut dividends);
    let ema_bonds = ema;
    (dividends, ema_bonds, bonds_next)
}

/// The rows [`original_bonds`] merges: ΔB in the workspace, the stored bond rows (with
/// which cells are kept, and whether a row is already clean), and per column the EMA's sum
/// and maximum, accumulated here.
struct MergeRows<'a, K: Fn(u16) -> bool> {
    s: &'a SubnetState,
    w: &'a Csr,
    clean: &'a [bool],
    kept: &'a K,
    sort: &'a mut Vec<(u16, u16)>,
    acc: &'a mut [[I32F32; 2]],
    /// Sums and maxima of the rows merged by the dense kernel (folded into `acc` at the end).
    acc_sum: &'a mut [i64],
    acc_max: &'a mut [i64],
}

/// The EMA cells of one row whose ΔB cells (`wv`) and bonds (`brow`) cover the same
/// contiguous columns from `c0`, written to `out`. Only where no sum saturates (the lean EMA).
/// It also adds each cell to its column's sum and maximum (`sums`, `maxs` from `c0`) and
/// returns how many cells are not positive.
type DenseRow<'a> = &'a dyn Fn(usize, &[i64], &[(u16, u16)], &mut [I32F32], &mut [i64], &mut [i64]) -> usize;

impl<K: Fn(u16) -> bool> MergeRows<'_, K> {
    /// The EMA rows: per row the union of ΔB's and the bonds' columns in ascending order,
    /// `cell(j, ΔB cell, bond)` for each, positive cells kept; rows over the same contiguous
    /// columns by `dense` when given.
    fn merge(self, cell: impl Fn(usize, Option<i64>, Option<u16>) -> I32F32, dense: Option<DenseRow>) -> Rows<I32F32> {
        let MergeRows { s, w, clean, kept, sort, acc, acc_sum, acc_max } = self;
        let mut ema = Rows::default();
        let Rows { ptr, col, val } = &mut ema;
        col.reserve(w.col.len());
        val.reserve(w.col.len());
        let mut used_dense = false;
        for (i, (brow, &clean)) in s.bonds.iter().zip(clean).enumerate() {
            let range = w.range(i);
            let (wc, wv) = (&w.col[range.clone()], &w.val[range]);
            let len = wc.len();
            // A clean bond row is strictly ascending: with its ends at `c0` and `c0 + len − 1`
            // it covers exactly those columns, and ΔB's do if they count up from `c0`.
            let contiguous = |c0: u16| {
                clean
                    && brow.len() == len
                    && brow[0].0 == c0
                    && brow[len - 1].0 as usize == c0 as usize + len - 1
                    && counts_up(wc, c0 as usize)
            };
            let mut push = |j: usize, v: I32F32| {
                if v > I32F32::ZERO {
                    col.push(j as u16);
                    val.push(v);
                    let [sum, max] = &mut acc[j];
                    *sum = sum.sat_add(v);
                    *max = (*max).max(v);
                }
            };
            if let Some(dense) = dense.filter(|_| len > 0 && contiguous(wc[0])) {
                used_dense = true;
                let (c0, start) = (wc[0] as usize, val.len());
                col.extend(wc);
                val.resize(start + len, I32F32::ZERO);
                let dropped = dense(c0, wv, brow, &mut val[start..], &mut acc_sum[c0..], &mut acc_max[c0..]);
                if dropped > 0 {
                    // Cells that are not positive are not kept.
                    let mut m = start;
                    for k in start..start + len {
                        (col[m], val[m]) = (col[k], val[k]);
                        m += (val[k] > I32F32::ZERO) as usize;
                    }
                    col.truncate(m);
                    val.truncate(m);
                }
            } else if clean && brow.len() == len && wc.iter().zip(brow).all(|(&j, c)| j == c.0) {
                // The same columns in both: one straight pass.
                for ((&j, &x), &(_, y)) in wc.iter().zip(wv).zip(brow) {
                    push(j as usize, cell(j as usize, Some(x), Some(y)));
                }
            } else {
                sort.clear();
                sort.extend(brow.iter().filter(|c| kept(c.0)));
                if !clean {
                    sort.sort_unstable_by_key(|c| c.0);
                }
                let (mut x, mut y) = (0, 0);
                while x < wc.len() || y < sort.len() {
                    let jx = wc.get(x).map_or(u32::MAX, |&j| j as u32);
                    let jy = sort.get(y).map_or(u32::MAX, |c| c.0 as u32);
                    let j = jx.min(jy) as usize;
                    let delta = (jx as usize == j).then(|| wv[x]);
                    let bond = (jy as usize == j).then(|| sort[y].1);
                    x += delta.is_some() as usize;
                    y += bond.is_some() as usize;
                    push(j, cell(j, delta, bond));
                }
            }
            ptr.push(col.len());
        }
        if used_dense {
            // No sum saturates where the dense kernel runs, so the order of additions is free.
            for ((a, &sum), &max) in acc.iter_mut().zip(acc_sum.iter()).zip(acc_max.iter()) {
                a[0] = I32F32(a[0].0 + sum);
                a[1] = a[1].max(I32F32(max));
            }
        }
        ema
    }
}

/// Whether `cols` are `c0, c0 + 1, …` (no early exit, so that the loop vectorises).
fn counts_up(cols: &[u16], c0: usize) -> bool {
    cols.iter().enumerate().fold(true, |ok, (k, &j)| ok & (j as usize == c0 + k))
}

/// Weights for bonds (§3.10) for a penalty strictly between 0 and 1, in place:
/// `W + β·(Wc − W)` per cell, keeping positive cells.
fn interpolate(w: &mut Csr, consensus: &[I32F32], ratio: I32F32, n: usize) {
    rewrite_cells(w, consensus, n, |v, c| {
        let wc = if c < v { c.max(I32F32::ZERO) } else { v };
        let x = v.sat_add(ratio.sat_mul(wc.sat_sub(v)));
        (x, x > I32F32::ZERO)
    });
}

/// Each cell `v` of column `j` replaced by `f(v, consensus[j]).0`, and kept only where
/// `f(v, consensus[j]).1`; rows compacted in place.
fn rewrite_cells(w: &mut Csr, consensus: &[I32F32], n: usize, f: impl Fn(I32F32, I32F32) -> (I32F32, bool)) {
    let mut out = 0;
    for i in 0..n {
        let range = w.range(i);
        w.ptr[i] = out;
        for k in range {
            let (x, keep) = f(I32F32(w.val[k]), consensus[w.col[k] as usize]);
            w.col[out] = w.col[k];
            w.val[out] = x.0;
            out += keep as usize;
        }
    }
    w.ptr[n] = out;
    w.col.truncate(out);
    w.val.truncate(out);
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
    I64F64::from_u64(bma).safe_div(I64F64::from_u64(1_000_000)).to_i32f32()
}

/// Divide each entry by the sum, unless the sum is 0.
pub fn normalize(v: &mut [I32F32]) {
    let sum: I32F32 = v.iter().copied().sum();
    if sum != I32F32::ZERO {
        v.iter_mut().for_each(|x| *x = x.safe_div(sum));
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
                    *v = v.safe_div(s);
                }
            }
        }
    }
}

/// The clipping pass (§3.8, §3.9), run on the columns of each consensus tile as soon as
/// their consensus is known: validator trust (row sums of the clipped weights), raw ranks
/// (column sums of `a·Wc`), and with `store_delta` those terms stored in place of W.
struct Clip<'a> {
    active_stake: &'a [I32F32],
    trust: Vec<I32F32>,
    ranks: Vec<I32F32>,
    store_delta: bool,
    /// Rows of W over contiguous columns (their cells go through a vectorised loop).
    contiguous: &'a [bool],
}

impl Clip<'_> {
    /// For each `(row, cursor)`, the row's cells from the cursor up to column `c1` (the
    /// cursor moves past them).
    fn cells_before(&mut self, w: &mut Csr, rows: &mut [(usize, usize)], c1: usize, consensus: &[I32F32]) {
        for (i, cur) in rows.iter_mut() {
            let end = w.ptr[*i + 1];
            let a = self.active_stake[*i];
            // Cells and stakes are at most 1 and a row or column has fewer than 2^16 of them,
            // so these sums stay below 2^48 and need no saturation.
            let mut trust = 0i64;
            let mut x = *cur;
            if self.contiguous[*i] && x < end && (0..I32F32::ONE.0).contains(&a.0) {
                // Columns from `c` on, one per cell: the cells before `c1` are a slice, and
                // with a stake below 1 each product fits 64 bits.
                let c = w.col[x] as usize;
                let count = (end - x).min(c1.saturating_sub(c));
                let a = a.0 as u64;
                let cells = &mut w.val[x..x + count];
                let (cons, ranks) = (&consensus[c..c + count], &mut self.ranks[c..c + count]);
                for ((v, cons), rank) in cells.iter_mut().zip(cons).zip(ranks) {
                    let clipped = (*v).min(cons.0);
                    trust += clipped;
                    let term = ((a * clipped as u64) >> 32) as i64;
                    rank.0 += term;
                    if self.store_delta {
                        *v = term;
                    }
                }
                self.trust[*i].0 += trust;
                *cur = x + count;
                continue;
            }
            while x < end && (w.col[x] as usize) < c1 {
                let j = w.col[x] as usize;
                let clipped = I32F32(w.val[x]).min(consensus[j]);
                trust += clipped.0;
                // Both proportions: a normalised stake, a normalised weight at most.
                let rank_term = a.mul_proportion(clipped);
                self.ranks[j].0 += rank_term.0;
                if self.store_delta {
                    w.val[x] = rank_term.0;
                }
                x += 1;
            }
            self.trust[*i].0 += trust;
            *cur = x;
        }
    }
}

/// Stake-weighted median per column (§3.7): the smallest score `x*` such that the
/// renormalised stake of validators scoring at most `x*` exceeds `Σσ − κ`; the largest score
/// when none does; 0 when no validator has stake.
fn weighted_median_cols(
    active_stake: &[I32F32],
    ws: &mut Workspace,
    n: usize,
    kappa: I32F32,
    clip: &mut Clip,
) -> Vec<I32F32> {
    let mut use_stake: Vec<I32F32> = active_stake.iter().copied().filter(|&s| s > I32F32::ZERO).collect();
    normalize(&mut use_stake);
    let validators = use_stake.len();
    let mut result = vec![I32F32::ZERO; n];
    // Every row with cells, at its first cell, for the clipping pass.
    let mut clip_rows: Vec<(usize, usize)> =
        (0..n).filter(|&i| ws.w.ptr[i] < ws.w.ptr[i + 1]).map(|i| (i, ws.w.ptr[i])).collect();
    if validators == 0 {
        clip.cells_before(&mut ws.w, &mut clip_rows, n, &result);
        return result;
    }
    let sigma: Vec<i64> = use_stake.iter().map(|s| s.0).collect();
    let stake_sum: I32F32 = use_stake.iter().copied().sum();
    let minority = stake_sum.sat_sub(kappa);
    let Workspace { w, keys, starts, fill, cursors, hist, .. } = ws;
    hist.resize(256, 0);
    let hist: &mut [i64; 256] = (&mut hist[..256]).try_into().expect("256 buckets");

    // Each column's positive scores, column-major, as keys `(score − 1) << 16 | k` for the
    // k-th staked validator (scores are in (0, 1], so `score − 1` fits 32 bits): keys order
    // by score, and the low bits find the validator's stake. Validators go in order, so each
    // column's keys are in validator order, though the selection does not need that.
    // `starts[j + 1]` holds column j's count of positive scores (from the weights pass).
    let rows: Vec<usize> = (0..n).filter(|&i| active_stake[i] > I32F32::ZERO).collect();
    // Each column's region starts a cache line after the previous one ends, so that regions
    // of equal columns are not a power of two apart (which would put every column's open
    // line of a tile in the same cache set).
    for j in 0..n {
        starts[j + 1] += starts[j] + COLUMN_PAD;
    }
    // Tile by tile: scatter all rows' cells of columns [c0, c1) into a buffer that holds one
    // tile (rows are sorted, so each row's cursor only moves forward), then select those
    // columns while their keys are still in cache.
    let tiles: Vec<usize> = (0..n).step_by(TILE).chain([n]).collect();
    let span = tiles.windows(2).map(|t| starts[t[1]] - starts[t[0]]).max().unwrap_or(0);
    keys.clear();
    keys.resize(span, 0);
    fill.clear();
    fill.resize(n, 0);
    cursors.clear();
    cursors.extend(rows.iter().map(|&i| w.ptr[i]));
    for t in tiles.windows(2) {
        let (c0, c1) = (t[0], t[1]);
        let base = starts[c0];
        for j in c0..c1 {
            fill[j] = starts[j] - base;
        }
        // Eight rows at a time where they are contiguous over the same columns of this tile:
        // each column then gets its eight keys written side by side (a blocked transposition,
        // one cache line per column instead of eight scattered writes). The selection does
        // not depend on the order of a column's keys.
        let mut k0 = 0;
        while k0 < rows.len() {
            let block = (k0 + BLOCK <= rows.len())
                .then(|| {
                    let mut vals: [&[i64]; BLOCK] = [&[]; BLOCK];
                    let (x, i) = (cursors[k0], rows[k0]);
                    let c = *w.col.get(x).filter(|_| clip.contiguous[i] && x < w.ptr[i + 1])? as usize;
                    let count = (w.ptr[i + 1] - x).min(c1.saturating_sub(c));
                    for (r, v) in vals.iter_mut().enumerate() {
                        let (x, i) = (cursors[k0 + r], rows[k0 + r]);
                        let end = w.ptr[i + 1];
                        let same = clip.contiguous[i] && x < end && w.col[x] as usize == c && end - x >= count;
                        if !same {
                            return None;
                        }
                        *v = &w.val[x..x + count];
                    }
                    Some((c, count, vals))
                })
                .flatten();
            if let Some((c, count, vals)) = block {
                for (m, slot) in fill[c..c + count].iter_mut().enumerate() {
                    let mut at = *slot;
                    for (r, row) in vals.iter().enumerate() {
                        let v = row[m];
                        keys[at] = (v - 1) << 16 | (k0 + r) as i64;
                        at += (v > 0) as usize;
                    }
                    *slot = at;
                }
                for cur in &mut cursors[k0..k0 + BLOCK] {
                    *cur += count;
                }
                k0 += BLOCK;
                continue;
            }
            let (k, i) = (k0, rows[k0]);
            let cur = &mut cursors[k0];
            k0 += 1;
            let end = w.ptr[i + 1];
            let mut x = *cur;
            if clip.contiguous[i] && x < end {
                // One cell per column from `c`: no column to read or compare. A cell of 0 is
                // written too but not counted (its slot is the next key's, or the column's
                // padding), so the loop has no branch.
                let c = w.col[x] as usize;
                let count = (end - x).min(c1.saturating_sub(c));
                for (&v, slot) in w.val[x..x + count].iter().zip(&mut fill[c..c + count]) {
                    keys[*slot] = (v - 1) << 16 | k as i64;
                    *slot += (v > 0) as usize;
                }
                *cur = x + count;
                continue;
            }
            while x < end && (w.col[x] as usize) < c1 {
                let v = w.val[x];
                if v > 0 {
                    let slot = &mut fill[w.col[x] as usize];
                    keys[*slot] = (v - 1) << 16 | k as i64;
                    *slot += 1;
                }
                x += 1;
            }
            *cur = x;
        }
        for j in c0..c1 {
            let column = &keys[starts[j] - base..fill[j]];
            if column.is_empty() {
                continue;
            }
            // A full column holds every staked validator: its stake is the whole sum.
            let positive_mass: i64 = if column.len() == validators {
                stake_sum.0
            } else {
                column.iter().map(|&key| sigma[(key & 0xFFFF) as usize]).sum()
            };
            let zero_mass = stake_sum.0 - positive_mass;
            let zero_count = validators - column.len();
            if zero_count > 0 && minority.0 < zero_mass {
                continue;
            }
            let t = minority.0 - if zero_count > 0 { zero_mass } else { 0 };
            result[j] = I32F32(bucket_select(&mut keys[starts[j] - base..fill[j]], &sigma, t, hist));
        }
        clip.cells_before(w, &mut clip_rows, c1, &result);
    }
    result
}

/// Parts at most this long are sorted and scanned instead of being split further.
const SORT_MAX: usize = 16;

/// The score of the first key, in ascending key order, at which the cumulative stake exceeds
/// `t` (the largest score when none does). Radix narrowing: the keys' range `[lo, hi]` is cut
/// into 256 buckets of `2^shift` keys (`(key − lo) >> shift`, monotone in the key); one pass
/// sums each bucket's stake, a scan finds the first bucket at which the cumulative stake
/// exceeds `t` (none: the largest key), and the search goes on among that bucket's keys
/// (moved to the front of `keys`) with `t` less the stake of the buckets before it. Each round
/// narrows the range by a factor of 256 at least, and keys are distinct, so a few rounds
/// leave a part short enough to sort.
fn bucket_select(keys: &mut [i64], sigma: &[i64], mut t: i64, hist: &mut [i64; 256]) -> i64 {
    let score = |key: i64| (key >> 16) + 1;
    let mut len = keys.len();
    let mut top = true;
    loop {
        let part = &mut keys[..len];
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for &k in part.iter() {
            lo = lo.min(k);
            hi = hi.max(k);
        }
        if t < 0 {
            // The first key's cumulative stake (≥ 0) already exceeds t (only the whole column
            // can have t < 0: within a bucket t is at least 0).
            return score(lo);
        }
        if len <= SORT_MAX {
            return sorted_select(part, sigma, t);
        }
        let span = hi.abs_diff(lo);
        let shift = (u64::BITS - span.leading_zeros()).saturating_sub(8);
        let bucket = |k: i64| (k.abs_diff(lo) >> shift) as usize & 255;
        hist.fill(0);
        for &k in part.iter() {
            hist[bucket(k)] += sigma[(k & 0xFFFF) as usize];
        }
        let mut before = 0i64;
        let mut chosen = None;
        for (b, &h) in hist.iter().enumerate() {
            if before + h > t {
                chosen = Some(b);
                break;
            }
            before += h;
        }
        let Some(b) = chosen else {
            // No cumulative stake exceeds t (only possible for the whole column): the largest.
            debug_assert!(top);
            return score(hi);
        };
        t -= before;
        // Usually only a few keys fall in the chosen bucket: picked out with a rarely taken
        // branch, and when they are few enough, sorted and scanned at once (what the next
        // round would do with them).
        let mut few = [0i64; SORT_MAX];
        let mut m = 0;
        for &k in part.iter() {
            if bucket(k) == b {
                if m < SORT_MAX {
                    few[m] = k;
                }
                m += 1;
            }
        }
        if m <= SORT_MAX {
            return sorted_select(&mut few[..m], sigma, t);
        }
        let mut m = 0;
        for x in 0..len {
            let k = part[x];
            part[m] = k;
            m += (bucket(k) == b) as usize;
        }
        len = m;
        top = false;
    }
}

/// The first key, in ascending order, at which the cumulative stake exceeds `t` (the largest
/// when none does), by sorting the (short) slice and scanning it; its score. Keys are distinct
/// (they carry the validator), so this is the smallest score whose cumulative stake over
/// scores ≤ it exceeds `t`.
fn sorted_select(keys: &mut [i64], sigma: &[i64], t: i64) -> i64 {
    keys.sort_unstable();
    let mut acc = 0;
    for &key in keys.iter() {
        acc += sigma[(key & 0xFFFF) as usize];
        if acc > t {
            return (key >> 16) + 1;
        }
    }
    (keys[keys.len() - 1] >> 16) + 1
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

/// `set_weights`' max-upscaling of a submitted row (INCENTIVES.md §8).
pub fn max_upscale(values: &[u16]) -> Vec<u16> {
    let max = match values.iter().max() {
        None => return Vec::new(),
        Some(&m) => I32F32::from_u16(m),
    };
    let threshold = I32F32::from_int(32_768);
    values
        .iter()
        .map(|&v| {
            let e = I32F32::from_u16(v);
            if max == I32F32::ZERO {
                e.sat_mul(I32F32::U16_MAX).to_u16_sat()
            } else if max > threshold {
                e.sat_mul(I32F32::U16_MAX.safe_div(max)).round().to_u16_sat()
            } else {
                e.sat_mul(I32F32::U16_MAX).safe_div(max).round().to_u16_sat()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: sort, scan, the first key whose cumulative stake exceeds `t`, or the
    /// largest.
    fn naive(keys: &[i64], sigma: &[i64], t: i64) -> i64 {
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        let mut acc = 0;
        for &k in &sorted {
            acc += sigma[(k & 0xFFFF) as usize];
            if acc > t {
                return (k >> 16) + 1;
            }
        }
        (sorted[sorted.len() - 1] >> 16) + 1
    }

    /// Trailing keys without stake and `t` one below the total: the answer is the last key
    /// with stake, not the largest key, whichever part the narrowing picks.
    #[test]
    fn selection_stops_at_the_last_staked_key() {
        for len in [40, 64, 100, 257] {
            for zeros in [1, 3, 10, 30] {
                let keys: Vec<i64> = (0..len).map(|k| (k as i64) << 16 | k as i64).collect();
                let sigma: Vec<i64> = (0..len).map(|k| (k + zeros < len) as i64).collect();
                let mass: i64 = sigma.iter().sum();
                for t in [mass - 2, mass - 1, mass] {
                    let mut hist = [0; 256];
                    assert_eq!(bucket_select(&mut keys.clone(), &sigma, t, &mut hist), naive(&keys, &sigma, t));
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// Few distinct scores and tiny stakes, so cumulative stakes hit `t` exactly and the
        /// window bounds fall on ties; `t` across and beyond the whole range.
        #[test]
        fn selection_matches_the_definition(
            scores in proptest::collection::vec(0i64..1000, 1..300),
            distinct in 1i64..50,
            stakes in proptest::collection::vec(0i64..4, 300),
            t_frac in 0i64..=64,
            t_shift in -3i64..=3,
        ) {
            let keys: Vec<i64> = scores.iter().enumerate().map(|(k, &s)| (s % distinct) << 16 | k as i64).collect();
            let sigma = &stakes[..keys.len()];
            let mass: i64 = sigma.iter().sum();
            let t = (mass * t_frac) / 64 + t_shift;
            let want = naive(&keys, sigma, t);
            prop_assert_eq!(bucket_select(&mut keys.clone(), sigma, t, &mut [0; 256]), want);
        }
    }
}
