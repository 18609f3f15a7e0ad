//! One parameterised vesting schedule (SALE.md §5.1) for sale lots and issuer grants.
//! `vested` is monotone non-decreasing in time and equals the total exactly at the end
//! (the remainder of every floor lands on the last step). Calendar months are UTC and
//! clamp the day of month (31 Jan + 1 month = 28/29 Feb).

use crate::alloc::mul_div;
use primitives::sale::{CliffKind, Schedule};
use primitives::Amount;

const DAY_MS: u64 = 86_400_000;

/// What of `total` has vested at `now_ms`.
pub fn vested(schedule: &Schedule, total: Amount, now_ms: u64) -> Amount {
    let t = total.0;
    let v = match schedule {
        Schedule::Continuous { start_ms, tge_bps, cliff_ms, duration_ms, cliff } => {
            if now_ms < *start_ms {
                0
            } else {
                let tge = bps(t, *tge_bps);
                let rest = t - tge;
                let elapsed = now_ms - start_ms;
                if elapsed >= *duration_ms {
                    t
                } else if elapsed < *cliff_ms {
                    tge
                } else {
                    tge + linear(rest, elapsed, *cliff_ms, *duration_ms, *cliff)
                }
            }
        }
        Schedule::Monthly { start_ms, tge_bps, cliff_months, months, cliff } => {
            if now_ms < *start_ms {
                0
            } else {
                let tge = bps(t, *tge_bps);
                let rest = t - tge;
                let m = u64::from(months_between(*start_ms, now_ms));
                let (c, n) = (u64::from(*cliff_months), u64::from(*months));
                if m >= n {
                    t
                } else if m < c {
                    tge
                } else {
                    tge + linear(rest, m, c, n, *cliff)
                }
            }
        }
        Schedule::Tranches { start_ms, parts } => {
            if now_ms < *start_ms {
                0
            } else {
                let m = months_between(*start_ms, now_ms);
                let cum: u32 = parts.iter().filter(|p| p.months <= m).map(|p| u32::from(p.bps)).sum();
                if cum >= 10_000 {
                    t
                } else {
                    mul_div(t, u128::from(cum), 10_000).expect("≤ t")
                }
            }
        }
    };
    Amount(v)
}

fn bps(t: u128, bps: u16) -> u128 {
    mul_div(t, u128::from(bps), 10_000).expect("bps ≤ 10000")
}

/// The linear part after the cliff, for `elapsed` in [cliff, duration).
fn linear(rest: u128, elapsed: u64, cliff: u64, duration: u64, kind: CliffKind) -> u128 {
    let (num, den) = match kind {
        CliffKind::CatchUp => (elapsed, duration),
        CliffKind::FromZero => (elapsed - cliff, duration - cliff),
    };
    mul_div(rest, u128::from(num), u128::from(den)).expect("num < den")
}

/// When the schedule has fully vested (for status displays).
pub fn end_ms(schedule: &Schedule) -> u64 {
    match schedule {
        Schedule::Continuous { start_ms, duration_ms, .. } => start_ms.saturating_add(*duration_ms),
        Schedule::Monthly { start_ms, months, .. } => add_months(*start_ms, *months),
        Schedule::Tranches { start_ms, parts } => add_months(*start_ms, parts.last().map_or(0, |p| p.months)),
    }
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31). Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `start_ms` plus `months` calendar months, clamping the day of month; saturates.
pub fn add_months(start_ms: u64, months: u32) -> u64 {
    let (days, tod) = ((start_ms / DAY_MS) as i64, start_ms % DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let idx = i64::from(m - 1) + i64::from(months);
    let (y2, m2) = (y + idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32);
    let d2 = d.min(days_in_month(y2, m2));
    let out = days_from_civil(y2, m2, d2);
    u64::try_from(out).ok().and_then(|d| d.checked_mul(DAY_MS)).and_then(|ms| ms.checked_add(tod)).unwrap_or(u64::MAX)
}

/// Whole calendar months from `start_ms` to `now_ms` (0 if `now_ms` is earlier).
pub fn months_between(start_ms: u64, now_ms: u64) -> u32 {
    if now_ms <= start_ms {
        return 0;
    }
    let (y1, m1, _) = civil_from_days((start_ms / DAY_MS) as i64);
    let (y2, m2, _) = civil_from_days((now_ms / DAY_MS) as i64);
    let guess = ((y2 - y1) * 12 + i64::from(m2) - i64::from(m1)).clamp(0, i64::from(u32::MAX)) as u32;
    // The guess can be one too many (the day or time of day not reached yet).
    let mut m = guess;
    while m > 0 && add_months(start_ms, m) > now_ms {
        m -= 1;
    }
    m
}

/// Parses a UTC time, `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SSZ`, into Unix
/// milliseconds (for config files and the CLI; the ledger itself only sees numbers).
pub fn parse_utc(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a UTC date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let num = |x: &str, len: usize| -> Result<u32, String> {
        if x.len() != len || !x.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        x.parse().map_err(|_| bad())
    };
    let mut d = date.split('-');
    let (y, m, day) = match (d.next(), d.next(), d.next(), d.next()) {
        (Some(y), Some(m), Some(day), None) => (num(y, 4)?, num(m, 2)?, num(day, 2)?),
        _ => return Err(bad()),
    };
    if y < 1970 || !(1..=12).contains(&m) || day == 0 || day > days_in_month(i64::from(y), m) {
        return Err(bad());
    }
    let secs = match time {
        None => 0,
        Some(t) => {
            let mut p = t.split(':');
            let (h, mi, sec) = match (p.next(), p.next(), p.next(), p.next()) {
                (Some(h), Some(mi), Some(sec), None) => (num(h, 2)?, num(mi, 2)?, num(sec, 2)?),
                _ => return Err(bad()),
            };
            if h > 23 || mi > 59 || sec > 59 {
                return Err(bad());
            }
            u64::from(h * 3600 + mi * 60 + sec)
        }
    };
    let days = days_from_civil(i64::from(y), m, day) as u64;
    Ok(days * DAY_MS + secs * 1000)
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(ms: u64) -> String {
    let (y, m, d) = civil_from_days((ms / DAY_MS) as i64);
    let s = (ms % DAY_MS) / 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::sale::SchedulePart;
    use proptest::prelude::*;

    /// 2026-01-31T00:00:00Z
    const JAN31: u64 = 1_769_817_600_000;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days((JAN31 / DAY_MS) as i64), (2026, 1, 31));
        assert_eq!(civil_from_days((add_months(JAN31, 1) / DAY_MS) as i64), (2026, 2, 28));
        assert_eq!(civil_from_days((add_months(JAN31, 25) / DAY_MS) as i64), (2028, 2, 29));
        assert_eq!(civil_from_days((add_months(JAN31, 2) / DAY_MS) as i64), (2026, 3, 31));
        assert_eq!(months_between(JAN31, add_months(JAN31, 1)), 1);
        assert_eq!(months_between(JAN31, add_months(JAN31, 1) - 1), 0);
        assert_eq!(months_between(JAN31, JAN31 + 400 * DAY_MS), 13);
        assert_eq!(parse_utc("2026-01-31"), Ok(JAN31));
        assert_eq!(parse_utc("2026-01-31T01:02:03Z"), Ok(JAN31 + 3_723_000));
        assert_eq!(format_utc(JAN31 + 3_723_000), "2026-01-31T01:02:03Z");
        assert!(parse_utc("2026-02-30").is_err());
        assert!(parse_utc("2026-1-31").is_err());
        assert!(parse_utc("2026-01-31T01:02:03").is_err());
    }

    #[test]
    fn shapes_hand_worked() {
        let start = JAN31;
        let t = Amount(4_800);
        // Cliff with catch-up: 12 of 48 months → 25% at month 12, nothing before.
        let s =
            Schedule::Monthly { start_ms: start, tge_bps: 0, cliff_months: 12, months: 48, cliff: CliffKind::CatchUp };
        assert_eq!(vested(&s, t, add_months(start, 12) - 1), Amount(0));
        assert_eq!(vested(&s, t, add_months(start, 12)), Amount(1_200));
        assert_eq!(vested(&s, t, add_months(start, 13)), Amount(1_300));
        assert_eq!(vested(&s, t, add_months(start, 48)), t);
        // Cliff then linear from zero: 0 at month 12, then 1/36 of the total per month.
        let s =
            Schedule::Monthly { start_ms: start, tge_bps: 0, cliff_months: 12, months: 48, cliff: CliffKind::FromZero };
        assert_eq!(vested(&s, t, add_months(start, 12)), Amount(0));
        assert_eq!(vested(&s, t, add_months(start, 13)), Amount(133)); // ⌊4800/36⌋
                                                                       // TGE 10% + continuous linear over 1000 ms, no cliff.
        let s = Schedule::Continuous {
            start_ms: 0,
            tge_bps: 1_000,
            cliff_ms: 0,
            duration_ms: 1_000,
            cliff: CliffKind::CatchUp,
        };
        assert_eq!(vested(&s, Amount(1_000), 0), Amount(100));
        assert_eq!(vested(&s, Amount(1_000), 500), Amount(550));
        assert_eq!(vested(&s, Amount(1_000), 1_000), Amount(1_000));
        // Telegram-style tranches: 25% at +3, +6, +12, +18 months.
        let parts = [3, 6, 12, 18].map(|months| SchedulePart { months, bps: 2_500 }).to_vec();
        let s = Schedule::Tranches { start_ms: start, parts };
        assert_eq!(vested(&s, Amount(1_001), add_months(start, 2)), Amount(0));
        assert_eq!(vested(&s, Amount(1_001), add_months(start, 6)), Amount(500));
        assert_eq!(vested(&s, Amount(1_001), add_months(start, 18)), Amount(1_001));
        // A lockup.
        let s = Schedule::lockup(5_000);
        assert_eq!(vested(&s, Amount(7), 4_999), Amount(0));
        assert_eq!(vested(&s, Amount(7), 5_000), Amount(7));
    }

    fn arb_schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            (0u64..2_000_000_000_000, 0u16..=10_000, 0u64..10_000_000_000, 1u64..10_000_000_000, any::<bool>())
                .prop_map(|(start_ms, tge_bps, cliff, duration_ms, catch_up)| Schedule::Continuous {
                    start_ms,
                    tge_bps,
                    cliff_ms: cliff.min(duration_ms),
                    duration_ms,
                    cliff: if catch_up { CliffKind::CatchUp } else { CliffKind::FromZero },
                }),
            (0u64..2_000_000_000_000, 0u16..=10_000, 0u32..60, 1u32..120, any::<bool>()).prop_map(
                |(start_ms, tge_bps, cliff, months, catch_up)| Schedule::Monthly {
                    start_ms,
                    tge_bps,
                    cliff_months: cliff.min(months),
                    months,
                    cliff: if catch_up { CliffKind::CatchUp } else { CliffKind::FromZero },
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn vested_is_monotone_and_exact(s in arb_schedule(), total in 0u128..u128::MAX / 2,
                                        mut times in prop::collection::vec(0u64..4_000_000_000_000, 1..20)) {
            times.sort_unstable();
            let mut last = Amount::ZERO;
            for t in times {
                let v = vested(&s, Amount(total), t);
                prop_assert!(v >= last, "monotone");
                prop_assert!(v.0 <= total);
                last = v;
            }
            prop_assert_eq!(vested(&s, Amount(total), end_ms(&s)), Amount(total), "exact at the end");
        }
    }
}
