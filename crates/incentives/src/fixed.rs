//! Fixed-point numbers with the exact semantics of substrate-fixed 0.6 (the crate subtensor's
//! epoch uses), written on raw integers so that every rounding is visible here
//! (shared/design/INCENTIVES.md §2.2):
//!
//! * add/sub: exact integer add of the bits (saturating where subtensor saturates; no sum in
//!   an epoch comes near the range, so plain and saturating sums agree);
//! * mul: the exact double-width product shifted right by the fractional bits (floor),
//!   saturated on overflow;
//! * div: `(a << frac) / b` truncating toward zero; subtensor's `safe_div` gives 0 for a zero
//!   divisor or an overflowing quotient;
//! * to integer: floor, saturated to the target range.

use ethnum::I256;

/// Signed 32.32 fixed point: value = bits / 2^32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct I32F32(pub i64);

const FRAC: u32 = 32;

impl I32F32 {
    pub const ZERO: Self = Self(0);
    pub const ONE: Self = Self(1 << FRAC);
    pub const HALF: Self = Self(1 << (FRAC - 1));
    pub const MAX: Self = Self(i64::MAX);
    pub const MIN: Self = Self(i64::MIN);
    /// `I32F32::from_num(65535)`.
    pub const U16_MAX: Self = Self((u16::MAX as i64) << FRAC);
    /// substrate-fixed's constant e as `exp` returns it for exactly 1: the I9F23 constant
    /// (23 fractional bits) widened to 32 fractional bits.
    pub const E: Self = Self(22_802_600 << 9);

    /// An integer, saturated to the range (`saturating_from_num`).
    pub const fn from_int(v: i64) -> Self {
        if v > (i64::MAX >> FRAC) {
            Self::MAX
        } else if v < (i64::MIN >> FRAC) {
            Self::MIN
        } else {
            Self(v << FRAC)
        }
    }

    pub const fn from_u16(v: u16) -> Self {
        Self((v as i64) << FRAC)
    }

    /// A stored `u16` proportion: `I32F32(v) / I32F32(65535)`.
    pub fn from_u16_proportion(v: u16) -> Self {
        Self::from_u16(v).safe_div(Self::U16_MAX)
    }

    pub const fn bits(self) -> i64 {
        self.0
    }

    pub fn to_f64(self) -> f64 {
        self.0 as f64 / (1u64 << FRAC) as f64
    }

    pub const fn sat_add(self, o: Self) -> Self {
        Self(self.0.saturating_add(o.0))
    }

    pub const fn sat_sub(self, o: Self) -> Self {
        Self(self.0.saturating_sub(o.0))
    }

    pub fn checked_add(self, o: Self) -> Option<Self> {
        self.0.checked_add(o.0).map(Self)
    }

    /// Product rounded toward −∞, `None` when it does not fit.
    #[inline]
    pub fn checked_mul(self, o: Self) -> Option<Self> {
        let p = (self.0 as i128 * o.0 as i128) >> FRAC;
        i64::try_from(p).ok().map(Self)
    }

    /// Product rounded toward −∞, saturated (`saturating_mul`).
    #[inline]
    pub fn sat_mul(self, o: Self) -> Self {
        Self::saturating_bits((self.0 as i128 * o.0 as i128) >> FRAC)
    }

    /// Wide bits clamped to the type's range.
    #[inline]
    fn saturating_bits(b: i128) -> Self {
        Self(b.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// `sat_mul`, faster when both operands lie in `[0, 2^33)` (every proportion the epoch
    /// multiplies: stakes, weights, bonds, incentive): the product then has no sign and fits
    /// after the shift, so one unsigned 64×64 multiplication gives it.
    #[inline]
    pub fn mul_unit(self, o: Self) -> Self {
        if ((self.0 | o.0) as u64) >> 33 == 0 {
            Self(((self.0 as u128 * o.0 as u128) >> FRAC) as i64)
        } else {
            self.sat_mul(o)
        }
    }

    /// `sat_mul` of two proportions, both in `[0, 1]` (bits in `[0, 2^32]`): the product
    /// shifted back, with no range test (callers guarantee the range; checked in debug).
    #[inline]
    pub fn mul_proportion(self, o: Self) -> Self {
        debug_assert!((0..=Self::ONE.0).contains(&self.0) && (0..=Self::ONE.0).contains(&o.0));
        Self(((self.0 as u128 * o.0 as u128) >> FRAC) as i64)
    }

    /// Quotient truncated toward zero; `None` for a zero divisor or an overflow (`checked_div`).
    #[inline]
    pub fn checked_div(self, o: Self) -> Option<Self> {
        if o.0 == 0 {
            return None;
        }
        // Fast path for non-negative operands: dividing both by their common power of two
        // leaves the rational a·2^32/b unchanged, and often (proportions; integer weights
        // over integer sums) makes the shifted dividend fit a 64-bit division.
        if self.0 >= 0 && o.0 > 0 {
            let (a, b) = (self.0 as u64, o.0 as u64);
            if a == 0 {
                return Some(Self::ZERO);
            }
            let s = a.trailing_zeros().min(b.trailing_zeros());
            let (a, b) = (a >> s, b >> s);
            if a < (1 << FRAC) {
                let q = (a << FRAC) / b;
                return i64::try_from(q).ok().map(Self);
            }
        }
        let q = ((self.0 as i128) << FRAC) / o.0 as i128;
        i64::try_from(q).ok().map(Self)
    }

    /// subtensor's `safe_div`: the quotient, or 0 for a zero divisor or an overflow.
    #[inline]
    pub fn safe_div(self, o: Self) -> Self {
        self.checked_div(o).unwrap_or(Self::ZERO)
    }

    /// `saturating_div` (divisor never zero where subtensor uses it).
    pub fn sat_div(self, o: Self) -> Self {
        match self.checked_div(o) {
            Some(q) => q,
            None if (self.0 < 0) != (o.0 < 0) => Self::MIN,
            None => Self::MAX,
        }
    }

    /// Nearest integer, ties away from zero (`round`).
    pub fn round(self) -> Self {
        let half = 1i64 << (FRAC - 1);
        let mask = !((1i64 << FRAC) - 1);
        if self.0 >= 0 {
            Self(self.0.saturating_add(half) & mask)
        } else {
            Self(-((-(self.0 as i128) + half as i128) as i64 & mask))
        }
    }

    /// Floor to an integer, saturated to `0..=u64::MAX` (`saturating_to_num::<u64>`).
    pub const fn to_u64_sat(self) -> u64 {
        if self.0 < 0 {
            0
        } else {
            (self.0 >> FRAC) as u64
        }
    }

    /// Floor to an integer, saturated to `0..=65535` (`saturating_to_num::<u16>`).
    pub const fn to_u16_sat(self) -> u16 {
        let v = self.0 >> FRAC;
        if v < 0 {
            0
        } else if v > u16::MAX as i64 {
            u16::MAX
        } else {
            v as u16
        }
    }

    /// A proportion stored as `u16`: `floor(x · 65535)` saturated (`fixed_proportion_to_u16`).
    pub fn to_u16_proportion(self) -> u16 {
        // For 0 ≤ x < 2^33 the product x·65535 is exact and the floor is a shift.
        if (self.0 as u64) >> 33 == 0 {
            return ((self.0 as u64 * 65_535) >> FRAC).min(65_535) as u16;
        }
        self.sat_mul(Self::U16_MAX).to_u16_sat()
    }

    pub fn clamp_to(self, low: Self, high: Self) -> Self {
        // subtensor's clamp_value: min(high) then max(low).
        self.min(high).max(low)
    }
}

/// Division of `I32F32` values by one invariant divisor `d`, exactly `a.safe_div(d)`, with
/// the 128-bit division replaced by a 64-bit multiplication with a precomputed reciprocal and
/// one correction step (for the row and column normalisations, where one divisor serves
/// thousands of cells).
///
/// The quotient `⌊a·2^32 / d⌋` is `⌊x / e⌋` for a 64-bit `x`: when `d` is a whole number
/// (`d = e·2^32`: sums and maxima of stored u16 values) `x = a` for every `a ≥ 0`; otherwise
/// `x = a·2^32, e = d` for `0 ≤ a < 2^32` (every proportion), as long as the quotient fits
/// `i64` (`a < d·2^31`). With `m = ⌊2^64 / e⌋` (`2^64 − 1` for `e = 1`), `⌊x·m / 2^64⌋` is
/// the quotient or one less (the error `x/2^64` is below 1), and `[x − q·e ≥ e]` corrects
/// it. Other dividends (negative, large, overflowing) and `d ≤ 0` go through `safe_div`.
#[derive(Clone, Copy, Debug)]
pub struct Divisor {
    /// `e`, or the divisor's bits when `d ≤ 0`.
    e: u64,
    m: u64,
    /// Dividends `a` with `0 ≤ a < limit` take the fast path.
    limit: u64,
    /// `x = a << shift` (0 or 32).
    shift: u32,
}

impl Divisor {
    pub fn new(d: I32F32) -> Self {
        let raw = d.0;
        if raw <= 0 {
            return Self { e: raw as u64, m: 0, limit: 0, shift: 32 };
        }
        let du = raw as u64;
        let (e, shift, limit) = if du & 0xFFFF_FFFF == 0 {
            (du >> 32, 0, 1 << 63)
        } else {
            (du, 32, du.saturating_mul(1 << 31).min(1 << 32))
        };
        let m = if e == 1 { u64::MAX } else { ((1u128 << 64) / e as u128) as u64 };
        Self { e, m, limit, shift }
    }

    /// Whether the divisor is not zero.
    pub fn is_nonzero(&self) -> bool {
        self.e != 0
    }

    /// `a.safe_div(d)`.
    #[inline]
    pub fn div(&self, a: I32F32) -> I32F32 {
        let au = a.0 as u64;
        if au >= self.limit {
            return a.safe_div(I32F32((self.e << (32 - self.shift)) as i64));
        }
        let x = au << self.shift;
        let q = ((x as u128 * self.m as u128) >> 64) as u64;
        let r = x.wrapping_sub(q.wrapping_mul(self.e));
        I32F32((q + (r >= self.e) as u64) as i64)
    }
}

/// The quotient `⌊a·2^32 / e⌋` for dividends `0 ≤ a < 2^32` by one invariant 64-bit `e`: a
/// leaner [`Divisor`] for the loops whose dividends are known to lie in that range (every
/// value there is a proportion below 1, or a `u16`). For a divisor `d` of `I32F32` bits
/// (`e = d`) it is `I32F32(a).safe_div(d)` whenever the quotient fits (`a ≤ d` suffices);
/// for a whole-number divisor `S` (`d = S·2^32`, `e = S`) and a whole-number dividend `y`
/// it is `I32F32::from_u16(y).safe_div(d)` likewise. `x = a·2^32 < 2^64`; with
/// `m = ⌊2^64 / e⌋` (`2^64 − 1` for `e = 1`) the estimate `⌊x·m / 2^64⌋` is the quotient or
/// one less, and `[x − q·e ≥ e]` corrects it (the argument of [`Divisor`]). `e = 0` gives 0,
/// as `safe_div` does.
#[derive(Clone, Copy, Debug)]
pub struct Recip {
    e: u64,
    m: u64,
}

impl Recip {
    pub fn new(e: u64) -> Self {
        match e {
            // q = 0 and r = x < e for every x = a·2^32 (never 2^64 − 1).
            0 => Self { e: u64::MAX, m: 0 },
            1 => Self { e, m: u64::MAX },
            _ => Self { e, m: ((1u128 << 64) / e as u128) as u64 },
        }
    }

    /// The divisor as `I32F32` bits (`e`, or 0).
    pub fn divisor_bits(&self) -> i64 {
        if self.m == 0 {
            0
        } else {
            self.e as i64
        }
    }

    /// `⌊a·2^32 / e⌋` for `a < 2^32`.
    #[inline]
    pub fn div(&self, a: u64) -> u64 {
        debug_assert!(a < 1 << 32);
        let x = a << 32;
        let q = ((x as u128 * self.m as u128) >> 64) as u64;
        let r = x.wrapping_sub(q.wrapping_mul(self.e));
        q + (r >= self.e) as u64
    }

    /// `I32F32(a).safe_div(I32F32(e))` for any `a`, with `e` the divisor's bits (below
    /// `2^63`): the fast path for `0 ≤ a < 2^32`.
    #[inline]
    pub fn div_bits(&self, a: i64) -> i64 {
        if (a as u64) >> 32 == 0 {
            // The quotient is exact: it fits unless it is 2^63 or more (`safe_div` gives 0).
            (self.div(a as u64) as i64).max(0)
        } else {
            I32F32(a).safe_div(I32F32(self.divisor_bits())).0
        }
    }
}

/// [`Recip`]s of many columns, split for loops that vectorise: per column `e` and
/// `m = hi·2^32 + lo` in separate arrays, so that `⌊x·m / 2^64⌋` for `x = a·2^32` is
/// `a·hi + ⌊a·lo / 2^32⌋` (both products of 32-bit values below 2^64, the sum the same
/// estimate as [`Recip::div`]'s, which the same correction then makes exact).
#[derive(Debug, Default)]
pub struct RecipCols {
    pub e: Vec<u64>,
    pub hi: Vec<u32>,
    pub lo: Vec<u32>,
}

impl RecipCols {
    pub fn clear(&mut self) {
        self.e.clear();
        self.hi.clear();
        self.lo.clear();
    }

    pub fn push(&mut self, r: Recip) {
        self.e.push(r.e);
        self.hi.push((r.m >> 32) as u32);
        self.lo.push(r.m as u32);
    }
}

/// [`Recip::div`] from a [`RecipCols`] entry: `⌊a·2^32 / e⌋` for `a < 2^32`.
#[inline(always)]
pub fn recip_div(a: u32, e: u64, hi: u32, lo: u32) -> u64 {
    let a = a as u64;
    let q = a * hi as u64 + ((a * lo as u64) >> 32);
    let r = (a << 32).wrapping_sub(q.wrapping_mul(e));
    q + (r >= e) as u64
}

/// `⌊v·2^32 / s⌋` for every `v < 2^16` by one whole-number divisor `2 ≤ s < 2^31` (a row of
/// stored weights over its sum) with no correction step, in 32×32-bit products that
/// vectorise. With `L = ⌈log2 s⌉`, `K = max(48 + L, 64)` and `m = ⌈2^K / s⌉ = 2^K/s + ε`
/// (`0 ≤ ε < 1`): `v·m / 2^(K−32) = v·2^32/s + v·ε/2^(K−32)`, the error is below
/// `2^(48−K) ≤ 1/s` and the exact quotient's fractional part is at most `(s − 1)/s`, so the
/// floor is the quotient. `m < 2^50` (`K = 48 + L`, `s > 2^(L−1)`) or `m ≤ 2^63 + 1`
/// (`K = 64`, `s ≥ 2`), so `m = hi·2^32 + lo` with `hi, lo < 2^32`, and
/// `⌊v·m / 2^(K−32)⌋ = (v·hi + ⌊v·lo / 2^32⌋) >> (K − 64)`.
#[derive(Clone, Copy, Debug)]
pub struct U16Div {
    hi: u64,
    lo: u64,
    shift: u32,
}

impl U16Div {
    /// `None` for `s < 2` or `s ≥ 2^31`.
    pub fn new(s: u64) -> Option<Self> {
        if !(2..1 << 31).contains(&s) {
            return None;
        }
        let l = u64::BITS - (s - 1).leading_zeros();
        let k = (48 + l).max(64);
        let m = (1u128 << k).div_ceil(s as u128);
        Some(Self { hi: (m >> 32) as u64, lo: m as u64 & 0xFFFF_FFFF, shift: k - 64 })
    }

    /// `⌊v·2^32 / s⌋` for `v < 2^16`.
    #[inline]
    pub fn div(&self, v: u64) -> u64 {
        debug_assert!(v < 1 << 16);
        let v = v as u32 as u64;
        (v * self.hi + ((v * self.lo) >> 32)) >> self.shift
    }
}

impl std::iter::Sum for I32F32 {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, Self::sat_add)
    }
}

/// Signed 64.64 fixed point: value = bits / 2^64 (stake and its normalisation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct I64F64(pub i128);

impl I64F64 {
    pub const ZERO: Self = Self(0);

    /// `saturating_from_num(u64)`: values above `i64::MAX` saturate to the type's maximum.
    pub const fn from_u64(v: u64) -> Self {
        if v > i64::MAX as u64 {
            Self(i128::MAX)
        } else {
            Self((v as i128) << 64)
        }
    }

    pub const fn sat_add(self, o: Self) -> Self {
        Self(self.0.saturating_add(o.0))
    }

    /// Product rounded toward −∞ through a 256-bit intermediate, saturated.
    pub fn sat_mul(self, o: Self) -> Self {
        let p: I256 = (I256::from(self.0) * I256::from(o.0)) >> 64u32;
        if p > I256::from(i128::MAX) {
            Self(i128::MAX)
        } else if p < I256::from(i128::MIN) {
            Self(i128::MIN)
        } else {
            Self(p.as_i128())
        }
    }

    /// `safe_div`: truncating quotient, 0 for a zero divisor or an overflow.
    pub fn safe_div(self, o: Self) -> Self {
        if o.0 == 0 {
            return Self::ZERO;
        }
        let q: I256 = (I256::from(self.0) << 64u32) / I256::from(o.0);
        if q > I256::from(i128::MAX) || q < I256::from(i128::MIN) {
            Self::ZERO
        } else {
            Self(q.as_i128())
        }
    }

    /// Drop the low 32 fractional bits (floor), saturated (`I32F32::saturating_from_num`).
    pub fn to_i32f32(self) -> I32F32 {
        I32F32::saturating_bits(self.0 >> 32)
    }

    /// Floor, saturated to `0..=u64::MAX`.
    pub const fn to_u64_sat(self) -> u64 {
        if self.0 < 0 {
            0
        } else {
            (self.0 >> 64) as u64
        }
    }
}

/// `TaoWeight / (2^64 − 1)` as subtensor computes it (U96F32 division, then widened to I64F64).
pub fn tao_weight(stored: u64) -> I64F64 {
    let bits32 = ((stored as u128) << 32) / u64::MAX as u128;
    I64F64((bits32 as i128) << 32)
}

/// `exp_safe`: clamp to [−20, 20], then substrate-fixed's series `exp` (INCENTIVES.md §2.3).
pub fn exp_safe(x: I32F32) -> I32F32 {
    let x = x.clamp_to(I32F32::from_int(-20), I32F32::from_int(20));
    match exp(x) {
        Some(v) => v,
        None if x.0 <= 0 => I32F32::ZERO,
        None => I32F32::MAX,
    }
}

fn exp(x: I32F32) -> Option<I32F32> {
    if x == I32F32::ZERO {
        return Some(I32F32::ONE);
    }
    if x == I32F32::ONE {
        return Some(I32F32::E);
    }
    let neg = x.0 < 0;
    let y = if neg { I32F32(x.0.checked_neg()?) } else { x };
    let mut result = y.checked_add(I32F32::ONE)?;
    let mut term = y;
    for k in 2..32i64 {
        term = term.checked_mul(y)?;
        // Dividing by the fixed-point integer k truncates exactly like dividing the bits by k.
        term = I32F32(term.0 / k);
        if term.0 == 0 {
            // Every later term is floor(0·y)/k = 0 too.
            break;
        }
        result = result.checked_add(term)?;
    }
    if neg {
        result = I32F32::ONE.checked_div(result)?;
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_and_lambda_bits_match_the_spec() {
        assert_eq!(I32F32::from_u16_proportion(32767).bits(), 2_147_450_879);
        let bma = I64F64::from_u64(900_000).safe_div(I64F64::from_u64(1_000_000));
        let lambda = I32F32::ONE.sat_sub(bma.to_i32f32());
        assert_eq!(lambda.bits(), 429_496_730);
    }

    #[test]
    fn mul_floors_and_div_truncates() {
        // -1 bit times 0.5 floors to -1 bit, not 0.
        assert_eq!(I32F32(-1).sat_mul(I32F32::HALF), I32F32(-1));
        assert_eq!(I32F32(1).sat_mul(I32F32::HALF), I32F32(0));
        assert_eq!(I32F32::ONE.safe_div(I32F32::from_int(3)).bits(), 1_431_655_765);
        assert_eq!(I32F32(-7).safe_div(I32F32::from_int(2)), I32F32(-3));
        assert_eq!(I32F32::ONE.safe_div(I32F32::ZERO), I32F32::ZERO);
        assert_eq!(I32F32::MAX.safe_div(I32F32(1)), I32F32::ZERO);
    }

    #[test]
    fn round_is_ties_away_from_zero() {
        assert_eq!(I32F32::from_int(2).sat_add(I32F32::HALF).round(), I32F32::from_int(3));
        assert_eq!(I32F32::from_int(-2).sat_sub(I32F32::HALF).round(), I32F32::from_int(-3));
        assert_eq!(I32F32(I32F32::HALF.0 - 1).round(), I32F32::ZERO);
    }

    #[test]
    fn exp_matches_the_series_and_the_constant() {
        assert_eq!(exp_safe(I32F32::ZERO), I32F32::ONE);
        assert_eq!(exp_safe(I32F32::ONE), I32F32::E);
        assert!((I32F32::E.to_f64() - 2.718_281_74).abs() < 1e-7);
        // exp(-1) goes through the series and 1/r.
        let em1 = exp_safe(I32F32::from_int(-1)).to_f64();
        assert!((em1 - (-1f64).exp()).abs() < 1e-8, "{em1}");
        let e5 = exp_safe(I32F32::from_int(5)).to_f64();
        assert!((e5 - 5f64.exp()).abs() / 5f64.exp() < 1e-6, "{e5}");
        // Clamped at ±20.
        assert_eq!(exp_safe(I32F32::from_int(40)), exp_safe(I32F32::from_int(20)));
    }

    #[test]
    fn proportions_round_trip_through_u16() {
        assert_eq!(I32F32::ONE.to_u16_proportion(), 65535);
        assert_eq!(I32F32::from_u16_proportion(65535), I32F32::ONE);
        assert_eq!(I32F32(-5).to_u16_proportion(), 0);
        assert_eq!(I32F32::from_int(2).to_u16_proportion(), 65535);
    }

    /// The textbook quotient `safe_div` must equal.
    fn plain_div(a: i64, d: i64) -> i64 {
        if d == 0 {
            return 0;
        }
        i64::try_from(((a as i128) << FRAC) / d as i128).unwrap_or(0)
    }

    fn edge_values() -> Vec<i64> {
        let mut v = vec![0, 1, 2, 3, 7, 65_535, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, i64::MAX, i64::MAX - 1];
        for k in 0..63 {
            v.extend([(1i64 << k) - 1, 1i64 << k, (1i64 << k) + 1, (1i64 << k).wrapping_mul(3) & i64::MAX]);
        }
        let neg: Vec<i64> = v.iter().filter(|&&x| x > 0).map(|&x| -x).collect();
        v.extend(neg);
        v.extend([i64::MIN, i64::MIN + 1]);
        v
    }

    #[test]
    fn divisor_equals_safe_div_on_edge_values() {
        let vals = edge_values();
        for &d in &vals {
            let dv = Divisor::new(I32F32(d));
            for &a in &vals {
                let want = plain_div(a, d);
                assert_eq!(I32F32(a).safe_div(I32F32(d)).0, want, "safe_div {a} / {d}");
                assert_eq!(dv.div(I32F32(a)).0, want, "Divisor {a} / {d}");
                if d >= 0 {
                    assert_eq!(Recip::new(d as u64).div_bits(a), want, "Recip {a} / {d}");
                }
                if (0..1 << 31).contains(&d) && (0..=65_535).contains(&a) {
                    assert_eq!(
                        Recip::new(d as u64).div(a as u64) as i64,
                        plain_div(a << 32, d << 32),
                        "Recip int {a} / {d}"
                    );
                }
                assert_eq!(I32F32(a).mul_unit(I32F32(d)), I32F32(a).sat_mul(I32F32(d)), "mul {a} * {d}");
                if (0..=1 << 32).contains(&a) && (0..=1 << 32).contains(&d) {
                    assert_eq!(I32F32(a).mul_proportion(I32F32(d)), I32F32(a).sat_mul(I32F32(d)), "{a} * {d}");
                }
                assert_eq!(
                    I32F32(a).to_u16_proportion(),
                    I32F32(a).sat_mul(I32F32::U16_MAX).to_u16_sat(),
                    "to_u16_proportion {a}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn divisor_equals_safe_div(a: i64, d: i64, sa in 0u32..64, sd in 0u32..64) {
            // Random bit lengths, so small, large and near-overflow quotients all occur.
            let (a, d) = (a >> sa, d >> sd);
            let want = plain_div(a, d);
            proptest::prop_assert_eq!(I32F32(a).safe_div(I32F32(d)).0, want);
            proptest::prop_assert_eq!(Divisor::new(I32F32(d)).div(I32F32(a)).0, want);
            proptest::prop_assert_eq!(I32F32(a).mul_unit(I32F32(d)), I32F32(a).sat_mul(I32F32(d)));
            // Quotients of non-negative values near 1 (the normalisations' case).
            let (a, d) = (a.unsigned_abs() >> 1, d.unsigned_abs() >> 1);
            let (a, d) = (a.min(d) as i64, d.max(1) as i64);
            proptest::prop_assert_eq!(Divisor::new(I32F32(d)).div(I32F32(a)).0, plain_div(a, d));
            let r = Recip::new(d as u64);
            proptest::prop_assert_eq!(r.div_bits(a), plain_div(a, d));
            // The split form, for every dividend below 2^32 (any divisor, 0 included).
            let mut cols = RecipCols::default();
            for e in [d as u64, (d as u64) >> 31, 0, 1] {
                cols.push(Recip::new(e));
                let k = cols.e.len() - 1;
                for x in [a as u32, (a >> 17) as u32, u32::MAX, 0, 1] {
                    proptest::prop_assert_eq!(
                        recip_div(x, cols.e[k], cols.hi[k], cols.lo[k]),
                        Recip::new(e).div(x as u64)
                    );
                }
            }
            // Whole-number divisors and u16 dividends (row and bond column sums).
            let (y, s) = ((a & 0xFFFF) as u64, (d as u64) >> 33);
            let want = plain_div((y as i64) << 32, (s as i64) << 32);
            proptest::prop_assert_eq!(Recip::new(s).div(y) as i64, want);
            if let Some(d) = U16Div::new(s) {
                proptest::prop_assert_eq!(d.div(y) as i64, want);
            }
        }
    }

    #[test]
    fn u16_div_equals_the_quotient() {
        let mut divisors: Vec<u64> = (2..3000).collect();
        for k in 1..31 {
            divisors.extend([(1u64 << k) - 1, 1 << k, (1 << k) + 1, (3 << k) / 2]);
        }
        divisors.extend([(1 << 31) - 1, 65_535 * 256, 65_535 * 3840, 123_456_789]);
        for s in divisors.into_iter().filter(|s| (2..1 << 31).contains(s)) {
            let d = U16Div::new(s).unwrap();
            let vs = (0..2000).chain((1..=65_535).step_by(97)).chain(65_000..=65_535);
            for v in vs.filter(|&v| v <= s) {
                assert_eq!(d.div(v), (v << 32) / s, "{v} / {s}");
            }
        }
        assert!(U16Div::new(1).is_none() && U16Div::new(1 << 31).is_none());
    }

    #[test]
    fn tao_weight_default_is_about_five_percent() {
        let w = tao_weight(971_718_665_099_567_868);
        let f = w.0 as f64 / 2f64.powi(64);
        assert!((f - 0.05268).abs() < 1e-4, "{f}");
        assert_eq!(tao_weight(u64::MAX).0, 1i128 << 64);
    }
}
