//! Sale allocation arithmetic, exactly as ../shared/design/SALE.md §4 states it: integers
//! only, products in 256 bits, every division floor unless named `_ceil`.
//!
//! Prices are quote base units per `per` token base units. For a money amount `m`, the
//! tokens it buys at price `p` are ⌊m · per / p⌋, and those tokens cost ⌈t · p / per⌉,
//! which is never more than `m`: rounding never takes money without giving tokens, and
//! never gives tokens without money. What a buyer does not pay is refunded.
//!
//! Dust policy: every floor favours the offering's unsold remainder, which goes back to
//! the issuer with the unsold tokens; every ceiling is at most one quote base unit per
//! buyer and tier, which the buyer pays for tokens actually delivered.

use ethnum::U256;
use primitives::Amount;

/// ⌊a · b / c⌋, `None` if `c` is zero or the result does not fit 128 bits.
pub fn mul_div(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let q = U256::from(a) * U256::from(b) / U256::from(c);
    u128::try_from(q).ok()
}

/// ⌈a · b / c⌉.
pub fn mul_div_ceil(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let n = U256::from(a) * U256::from(b);
    let c = U256::from(c);
    let q = n / c + U256::from(u8::from(n % c != 0));
    u128::try_from(q).ok()
}

/// Tokens that `money` buys at `price`.
pub fn tokens_for(money: Amount, price: Amount, per: Amount) -> Amount {
    Amount(mul_div(money.0, per.0, price.0).unwrap_or(u128::MAX))
}

/// What `tokens` cost at `price` (rounded up).
pub fn cost_of(tokens: Amount, price: Amount, per: Amount) -> Amount {
    Amount(mul_div_ceil(tokens.0, price.0, per.0).expect("a cost never exceeds the money that bought the tokens"))
}

/// Tokens and the quote paid for them, out of an escrow; the rest is refunded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fill {
    pub tokens: Amount,
    pub paid: Amount,
}

impl Fill {
    /// The fill for `accepted` money at `price`.
    pub fn at(accepted: Amount, price: Amount, per: Amount) -> Fill {
        let tokens = tokens_for(accepted, price, per);
        Fill { tokens, paid: cost_of(tokens, price, per) }
    }
}

/// §4.1: the money that buys the whole supply, ⌊S · P⌋.
pub fn capacity(supply: Amount, price: Amount, per: Amount) -> Amount {
    Amount(mul_div(supply.0, price.0, per.0).unwrap_or(u128::MAX))
}

/// §4.1 step 3: accepted money under pro-rata scale-down.
pub fn pro_rata(commitment: Amount, capacity: Amount, demand: Amount) -> Amount {
    if demand <= capacity {
        commitment
    } else {
        Amount(mul_div(commitment.0, capacity.0, demand.0).expect("c ≤ D, so c·K/D ≤ K"))
    }
}

/// §4.2: the water-filling level L with Σ min(c_i, L) ≤ K, as large as possible in
/// integers. `None` when demand fits (nobody is scaled). `sorted` is ascending.
pub fn water_level(sorted: &[Amount], capacity: Amount) -> Option<Amount> {
    let total: u128 = sorted.iter().map(|c| c.0).fold(0u128, |a, c| a.saturating_add(c));
    if total <= capacity.0 {
        return None;
    }
    let n = sorted.len() as u128;
    let mut below = 0u128; // Σ of the commitments under the level
    for (j, c) in sorted.iter().enumerate() {
        let rest = n - j as u128;
        // Everyone from j up capped at c_j: does that reach the capacity?
        if below.saturating_add(rest.saturating_mul(c.0)) >= capacity.0 {
            return Some(Amount((capacity.0 - below) / rest));
        }
        below += c.0;
    }
    unreachable!("total > capacity, so the last index reaches it")
}

/// §4.4: fills `money` across quantity tiers starting with `sold` tokens already sold.
/// Each tier segment costs ⌈tokens · price / per⌉.
pub fn tiered(tiers: &[primitives::sale::Tier], sold: Amount, money: Amount, per: Amount) -> Fill {
    let mut sold = sold.0;
    let mut left = money.0;
    let mut fill = Fill::default();
    for tier in tiers {
        if sold >= tier.up_to.0 || left == 0 {
            continue;
        }
        let room = tier.up_to.0 - sold;
        let room_cost = mul_div_ceil(room, tier.price.0, per.0).unwrap_or(u128::MAX);
        let (tokens, cost) = if left >= room_cost {
            (room, room_cost)
        } else {
            let t = mul_div(left, per.0, tier.price.0).unwrap_or(u128::MAX).min(room);
            (t, mul_div_ceil(t, tier.price.0, per.0).expect("≤ left"))
        };
        if tokens == 0 {
            break; // the money left does not buy one base unit at this tier
        }
        sold += tokens;
        left -= cost;
        fill.tokens.0 += tokens;
        fill.paid.0 += cost;
    }
    fill
}

/// §4.6: the clearing price of a uniform-price auction. `levels` holds (price, Σ
/// quantity bid at exactly that price), any order. Returns the rule (price, rest, at_price):
/// bids above `price` fill fully, bids at `price` share `rest`, whose demand is `at_price`.
pub fn clearing(levels: &[(Amount, Amount)], supply: Amount, reserve: Amount) -> (Amount, Amount, Amount) {
    let mut sorted: Vec<(Amount, Amount)> = levels.to_vec();
    sorted.sort_unstable_by_key(|l| std::cmp::Reverse(l.0));
    let mut above = 0u128;
    for (price, qty) in sorted {
        if above.saturating_add(qty.0) >= supply.0 {
            return (price, Amount(supply.0 - above), qty);
        }
        above += qty.0;
    }
    // Undersubscribed: everyone fills at the reserve.
    (reserve, Amount(u128::MAX), Amount::ZERO)
}

/// What a bid (price, quantity) fills under a clearing rule.
pub fn bid_fill(bid_price: Amount, quantity: Amount, clearing: (Amount, Amount, Amount)) -> Amount {
    let (price, rest, at_price) = clearing;
    if bid_price > price {
        quantity
    } else if bid_price < price {
        Amount::ZERO
    } else if at_price <= rest {
        quantity
    } else {
        Amount(mul_div(quantity.0, rest.0, at_price.0).expect("q ≤ at_price"))
    }
}

/// §4.5: the descending clock, linear from `start` at `opens` to `reserve` at `closes`,
/// floored by the reserve; rounded up so the clock never undercuts the schedule.
pub fn dutch_price(start: Amount, reserve: Amount, opens_ms: u64, closes_ms: u64, now_ms: u64) -> Amount {
    if now_ms <= opens_ms {
        return start;
    }
    if now_ms >= closes_ms {
        return reserve;
    }
    let drop = mul_div(start.0 - reserve.0, u128::from(now_ms - opens_ms), u128::from(closes_ms - opens_ms))
        .expect("≤ start − reserve");
    Amount(start.0 - drop)
}

/// Whether `money` buys the whole `supply` at `price`: B · per ≥ S · p.
pub fn demand_meets_supply(money: Amount, supply: Amount, price: Amount, per: Amount) -> bool {
    U256::from(money.0) * U256::from(per.0) >= U256::from(supply.0) * U256::from(price.0)
}

/// §4.5, ended by the clock: the uniform price at which the money committed buys the
/// supply, rounded up to a whole quote unit (so the supply is never oversold), floored
/// by the reserve.
pub fn dutch_clock_price(money: Amount, supply: Amount, reserve: Amount, per: Amount) -> Amount {
    let p = mul_div_ceil(money.0, per.0, supply.0).unwrap_or(u128::MAX);
    Amount(p.max(reserve.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::sale::Tier;
    use proptest::prelude::*;

    const PER: Amount = Amount(1);

    #[test]
    fn pro_rata_hand_worked() {
        // S = 1,000 tokens at 2 per token: K = 2,000. Commitments 1,000 / 2,000 / 3,000: D = 6,000.
        let k = capacity(Amount(1_000), Amount(2), PER);
        assert_eq!(k, Amount(2_000));
        let d = Amount(6_000);
        let acc: Vec<Amount> = [1_000, 2_000, 3_000].iter().map(|c| pro_rata(Amount(*c), k, d)).collect();
        assert_eq!(acc, vec![Amount(333), Amount(666), Amount(1_000)]);
        let fills: Vec<Fill> = acc.iter().map(|a| Fill::at(*a, Amount(2), PER)).collect();
        // 333 buys 166 tokens for 332, refund 668; 666 buys 333 for 666; 1000 buys 500.
        assert_eq!(fills[0], Fill { tokens: Amount(166), paid: Amount(332) });
        assert_eq!(fills[1], Fill { tokens: Amount(333), paid: Amount(666) });
        assert_eq!(fills[2], Fill { tokens: Amount(500), paid: Amount(1_000) });
        // 999 of 1,000 tokens sold; the 1-token dust stays with the issuer.
    }

    #[test]
    fn water_fill_hand_worked() {
        // K = 100 over commitments 10, 20, 50, 80: 10 + 20 + 2·L = 100 → L = 35.
        let sorted = [10, 20, 50, 80].map(Amount);
        assert_eq!(water_level(&sorted, Amount(100)), Some(Amount(35)));
        // K = 30: 4·L ≥ 30 at the first index → L = 7 (floor of 7.5).
        assert_eq!(water_level(&sorted, Amount(30)), Some(Amount(7)));
        assert_eq!(water_level(&sorted, Amount(160)), None);
    }

    #[test]
    fn tiered_hand_worked() {
        // Tiers: 100 tokens at 1, then up to 300 at 2, then up to 400 at 5.
        let tiers = [
            Tier { up_to: Amount(100), price: Amount(1) },
            Tier { up_to: Amount(300), price: Amount(2) },
            Tier { up_to: Amount(400), price: Amount(5) },
        ];
        // From 50 sold, 500 money: 50 at 1 (50), 200 at 2 (400), then 50 left buys 10 at 5.
        let f = tiered(&tiers, Amount(50), Amount(500), PER);
        assert_eq!(f, Fill { tokens: Amount(260), paid: Amount(500) });
        // Sold out after that: 140 tokens... from 310 sold, 1000 money: 90 at 5 = 450.
        assert_eq!(tiered(&tiers, Amount(310), Amount(1_000), PER), Fill { tokens: Amount(90), paid: Amount(450) });
        assert_eq!(tiered(&tiers, Amount(400), Amount(1_000), PER), Fill::default());
        // Price per 10 tokens: 3 money per 10 tokens; 7 money buys 23 tokens, costing ⌈6.9⌉ = 7.
        let t = [Tier { up_to: Amount(1_000), price: Amount(3) }];
        assert_eq!(tiered(&t, Amount(0), Amount(7), Amount(10)), Fill { tokens: Amount(23), paid: Amount(7) });
    }

    #[test]
    fn clearing_hand_worked() {
        // Supply 100. Bids: 50 @ 10, 40 @ 8, 30 @ 8, 60 @ 5.
        let levels = [(Amount(10), Amount(50)), (Amount(8), Amount(70)), (Amount(5), Amount(60))];
        let rule = clearing(&levels, Amount(100), Amount(1));
        // Above 8: 50; at 8: 70 bid for 50 left → price 8.
        assert_eq!(rule, (Amount(8), Amount(50), Amount(70)));
        assert_eq!(bid_fill(Amount(10), Amount(50), rule), Amount(50));
        assert_eq!(bid_fill(Amount(8), Amount(40), rule), Amount(28)); // ⌊40·50/70⌋
        assert_eq!(bid_fill(Amount(8), Amount(30), rule), Amount(21)); // ⌊30·50/70⌋
        assert_eq!(bid_fill(Amount(5), Amount(60), rule), Amount::ZERO);
        // Undersubscribed: everyone at the reserve.
        let rule = clearing(&levels, Amount(1_000), Amount(2));
        assert_eq!(rule.0, Amount(2));
        assert_eq!(bid_fill(Amount(5), Amount(60), rule), Amount(60));
    }

    #[test]
    fn dutch_hand_worked() {
        // 10 → 2 over 0..800 ms: at 400 ms the clock shows 6.
        assert_eq!(dutch_price(Amount(10), Amount(2), 0, 800, 400), Amount(6));
        assert_eq!(dutch_price(Amount(10), Amount(2), 0, 800, 900), Amount(2));
        // 100 tokens; 450 committed: at price 6 demand (450) < supply (600); at 4 it meets.
        assert!(!demand_meets_supply(Amount(450), Amount(100), Amount(6), PER));
        assert!(demand_meets_supply(Amount(450), Amount(100), Amount(4), PER));
        // Ended by the clock: price ⌈450/100⌉ = 5 (4.5 rounded up); 450 buys 90 tokens.
        assert_eq!(dutch_clock_price(Amount(450), Amount(100), Amount(2), PER), Amount(5));
        assert_eq!(dutch_clock_price(Amount(50), Amount(100), Amount(2), PER), Amount(2));
    }

    proptest! {
        #[test]
        fn pro_rata_conserves(cs in prop::collection::vec(1u128..1_000_000_000_000, 1..50),
                              supply in 1u128..1_000_000_000, price in 1u128..1_000_000, per in 1u128..1_000_000) {
            let (supply, price, per) = (Amount(supply), Amount(price), Amount(per));
            let k = capacity(supply, price, per);
            let d = Amount(cs.iter().sum());
            let mut tokens = 0u128;
            let mut accepted = 0u128;
            for c in &cs {
                let a = pro_rata(Amount(*c), k, d);
                prop_assert!(a.0 <= *c);
                let f = Fill::at(a, price, per);
                prop_assert!(f.paid <= a, "pays at most what was accepted");
                // accepted + refund = committed, exactly
                prop_assert_eq!(f.paid.0 + (c - f.paid.0), *c);
                tokens += f.tokens.0;
                accepted += a.0;
            }
            prop_assert!(tokens <= supply.0, "Σ tokens ≤ offered");
            prop_assert!(accepted <= k.0.max(d.0.min(k.0)));
        }

        #[test]
        fn water_level_is_max_min_fair(mut cs in prop::collection::vec(1u128..1_000_000, 1..40), k in 1u128..10_000_000) {
            cs.sort_unstable();
            let sorted: Vec<Amount> = cs.iter().map(|c| Amount(*c)).collect();
            let total: u128 = cs.iter().sum();
            match water_level(&sorted, Amount(k)) {
                None => prop_assert!(total <= k),
                Some(l) => {
                    let sum = |l: u128| cs.iter().map(|c| (*c).min(l)).sum::<u128>();
                    prop_assert!(sum(l.0) <= k, "within capacity");
                    prop_assert!(sum(l.0 + 1) > k || l.0 >= *cs.last().unwrap(), "the largest such level");
                }
            }
        }

        #[test]
        fn tiered_never_overcharges(tiers in prop::collection::vec((1u128..1_000, 1u128..100), 1..6),
                                    sold_frac in 0u128..100, money in 0u128..1_000_000, per in 1u128..100) {
            let mut up = 0u128;
            let mut price = 0u128;
            let tiers: Vec<Tier> = tiers.iter().map(|(size, step)| {
                up += size; price += step;
                Tier { up_to: Amount(up), price: Amount(price) }
            }).collect();
            let sold = up * sold_frac / 100;
            let f = tiered(&tiers, Amount(sold), Amount(money), Amount(per));
            prop_assert!(f.paid.0 <= money);
            prop_assert!(sold + f.tokens.0 <= up, "never past the last tier");
        }

        #[test]
        fn clearing_never_oversells(bids in prop::collection::vec((1u128..50, 1u128..1_000), 1..60), supply in 1u128..20_000) {
            let mut levels: std::collections::BTreeMap<u128, u128> = Default::default();
            for (p, q) in &bids { *levels.entry(*p).or_default() += q; }
            let levels: Vec<(Amount, Amount)> = levels.into_iter().map(|(p, q)| (Amount(p), Amount(q))).collect();
            let rule = clearing(&levels, Amount(supply), Amount(1));
            let filled: u128 = bids.iter().map(|(p, q)| bid_fill(Amount(*p), Amount(*q), rule).0).sum();
            prop_assert!(filled <= supply);
            let demand: u128 = bids.iter().map(|b| b.1).sum();
            if demand >= supply {
                // Oversubscribed: at most one token base unit of dust per marginal bid.
                let at = bids.iter().filter(|b| Amount(b.0) == rule.0).count() as u128;
                prop_assert!(supply - filled <= at);
            } else {
                prop_assert_eq!(filled, demand);
            }
        }
    }
}
