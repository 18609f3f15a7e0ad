//! The operator's meter on its own (no network): keys, budgets, balances, rate limits,
//! stake-for-access quotas and durability, with a clock the tests move.

use gateway::operator::meter::{
    date_of, day_from_date, parse_period, AccessTier, Clock, KeyPatch, KeySpec, Meter, Used, Worst, DAY_MS,
};
use primitives::{Address, Amount};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const T0: u64 = 1_764_028_800_000; // 2025-11-25T00:00:00Z

fn clock() -> (Clock, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(T0));
    let n = now.clone();
    (Arc::new(move || n.load(Ordering::SeqCst)), now)
}

fn owner(n: u8) -> Address {
    Address([n; 32])
}

fn worst(cost: u128) -> Worst {
    Worst { cost, tokens: 100, tpm_estimate: 100 }
}

fn used(cost: u128, tokens: u64) -> Used {
    Used { model: "m".into(), provider: owner(9), prompt_tokens: tokens, completion_tokens: 0, cost }
}

fn open(dir: &std::path::Path, tiers: Vec<AccessTier>) -> (Arc<Meter>, Arc<AtomicU64>) {
    let (c, now) = clock();
    (Meter::open(dir, tiers, c).unwrap(), now)
}

fn code(e: &openai::ApiError) -> &str {
    e.body.error.code.as_deref().unwrap_or("")
}

#[test]
fn keys_authenticate_rotate_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path(), vec![]);
    let (view, secret) = m.create_key(KeySpec { owner: owner(1), name: "alice".into(), ..Default::default() }).unwrap();
    assert!(secret.starts_with("sk-tsr-") && secret.contains(&view.rec.id));
    let caller = m.authenticate(Some(&secret)).unwrap();
    assert_eq!(caller.owner, owner(1));
    assert_eq!(code(&m.authenticate(None).unwrap_err()), "missing_api_key");
    let mut wrong = secret.clone();
    wrong.pop();
    wrong.push(if secret.ends_with('0') { '1' } else { '0' });
    assert_eq!(code(&m.authenticate(Some(&wrong)).unwrap_err()), "invalid_api_key");
    assert_eq!(code(&m.authenticate(Some("sk-other")).unwrap_err()), "invalid_api_key");

    let (_, rotated) = m.rotate_key(&view.rec.id).unwrap();
    assert_ne!(rotated, secret);
    assert_eq!(code(&m.authenticate(Some(&secret)).unwrap_err()), "invalid_api_key");
    m.authenticate(Some(&rotated)).unwrap();

    m.revoke_key(&view.rec.id).unwrap();
    let e = m.authenticate(Some(&rotated)).unwrap_err();
    assert_eq!((e.status, code(&e)), (401, "revoked_api_key"));
    assert_eq!(code(&m.rotate_key(&view.rec.id).unwrap_err()), "invalid_parameter");
    assert_eq!(m.key("nope").unwrap_err().status, 404);
}

#[test]
fn bad_key_specs_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path(), vec![]);
    let spec = |f: fn(&mut KeySpec)| {
        let mut s = KeySpec { owner: owner(1), ..Default::default() };
        f(&mut s);
        s
    };
    assert_eq!(m.create_key(spec(|s| s.period = Some("30d".into()))).unwrap_err().status, 400);
    assert_eq!(m.create_key(spec(|s| s.rpm = Some(0))).unwrap_err().status, 400);
    let e = m
        .create_key(spec(|s| {
            s.budget = Some(Amount(5));
            s.period = Some("30x".into())
        }))
        .unwrap_err();
    assert_eq!(e.body.error.param.as_deref(), Some("period"));
    assert!(m.keys().is_empty());
    let (k, _) = m.create_key(spec(|_| {})).unwrap();
    let e = m.update_key(&k.rec.id, KeyPatch { period: Some(Some("1d".into())), ..Default::default() }).unwrap_err();
    assert_eq!(e.status, 400);
    assert_eq!(m.key(&k.rec.id).unwrap().rec.period_secs, None);
    assert_eq!(parse_period("30d"), Ok(30 * 86_400));
    assert_eq!(parse_period("90m"), Ok(5400));
    assert!(parse_period("0d").is_err() && parse_period("d").is_err() && parse_period("").is_err());
}

#[test]
fn a_budget_and_a_balance_are_never_overspent_by_concurrent_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path(), vec![]);
    m.credit(&[(owner(1), Amount(10_000))], 5).unwrap();
    let (k, secret) =
        m.create_key(KeySpec { owner: owner(1), budget: Some(Amount(1_000)), ..Default::default() }).unwrap();
    let caller = m.authenticate(Some(&secret)).unwrap();
    // 200 threads each hold a reservation of 10 at once: exactly 100 fit the budget.
    let barrier = Arc::new(std::sync::Barrier::new(200));
    let results: Vec<_> = (0..200)
        .map(|_| {
            let (m, caller, barrier) = (m.clone(), caller.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = m.reserve(&caller, worst(10), None);
                let ok = r.as_ref().map(|_| ()).map_err(|e| code(e).to_string());
                barrier.wait(); // every reservation is held until all have tried
                if let Ok(h) = r {
                    h.settle(&used(7, 5));
                }
                ok
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 100);
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|c| c == "budget_exceeded"));
    let key = m.key(&k.rec.id).unwrap();
    assert_eq!(key.rec.period_spent, Amount(700));
    assert_eq!(key.reserved, Amount(0));
    assert_eq!(key.budget_remaining, Some(Amount(300)));
    let acct = m.account(&owner(1));
    assert_eq!((acct.spent, acct.reserved, acct.balance), (Amount(700), Amount(0), Amount(9_300)));
    let rows = m.usage(None, 0, u32::MAX);
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].usage.requests, rows[0].usage.cost, rows[0].usage.prompt_tokens), (100, Amount(700), 500));
    assert_eq!(rows[0].day, "2025-11-25");
}

#[test]
fn the_balance_is_what_was_deposited_less_what_was_spent() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = open(dir.path(), vec![]);
    let (_, secret) = m.create_key(KeySpec { owner: owner(2), ..Default::default() }).unwrap();
    let caller = m.authenticate(Some(&secret)).unwrap();
    let e = m.reserve(&caller, worst(1), None).err().unwrap();
    assert_eq!((e.status, code(&e), e.should_retry), (402, "insufficient_balance", Some(false)));
    m.credit(&[(owner(2), Amount(50)), (owner(2), Amount(50))], 10).unwrap();
    assert_eq!(m.cursor(), 10);
    let h = m.reserve(&caller, worst(60), None).unwrap();
    assert_eq!(h.standing().balance, 40);
    // A second request's worst case does not fit next to the first one's.
    assert_eq!(code(&m.reserve(&caller, worst(60), None).err().unwrap()), "insufficient_balance");
    assert_eq!(h.settle(&used(25, 3)).balance, 75);
    // A request that fails bills nothing and gives its reservation back.
    drop(m.reserve(&caller, worst(75), None).unwrap());
    assert_eq!(m.account(&owner(2)).balance, Amount(75));
}

#[test]
fn a_budget_period_resets_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (m, now) = open(dir.path(), vec![]);
    m.credit(&[(owner(1), Amount(1_000))], 1).unwrap();
    let (k, secret) = m
        .create_key(KeySpec {
            owner: owner(1),
            budget: Some(Amount(100)),
            period: Some("1d".into()),
            ..Default::default()
        })
        .unwrap();
    let caller = m.authenticate(Some(&secret)).unwrap();
    m.reserve(&caller, worst(100), None).unwrap().settle(&used(100, 1));
    assert_eq!(code(&m.reserve(&caller, worst(1), None).err().unwrap()), "budget_exceeded");
    now.fetch_add(DAY_MS - 1, Ordering::SeqCst);
    assert_eq!(code(&m.reserve(&caller, worst(1), None).err().unwrap()), "budget_exceeded");
    now.fetch_add(1, Ordering::SeqCst);
    m.reserve(&caller, worst(100), None).unwrap().settle(&used(30, 1));
    let key = m.key(&k.rec.id).unwrap();
    assert_eq!((key.rec.period_spent, key.rec.total_spent), (Amount(30), Amount(130)));
    assert_eq!(key.rec.period_start_ms, T0 + DAY_MS);
    // Three days later the period starts at a multiple of the period from the first.
    now.fetch_add(3 * DAY_MS + 5, Ordering::SeqCst);
    assert_eq!(m.key(&k.rec.id).unwrap().rec.period_start_ms, T0 + 4 * DAY_MS);
    assert_eq!(m.key(&k.rec.id).unwrap().rec.period_spent, Amount(0));
}

#[test]
fn rate_limits_answer_429_with_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (m, now) = open(dir.path(), vec![]);
    m.credit(&[(owner(1), Amount(1_000_000))], 1).unwrap();
    let (_, secret) =
        m.create_key(KeySpec { owner: owner(1), rpm: Some(2), tpm: Some(1_000), ..Default::default() }).unwrap();
    let caller = m.authenticate(Some(&secret)).unwrap();
    m.reserve(&caller, worst(1), None).unwrap().settle(&used(1, 100));
    m.reserve(&caller, worst(1), None).unwrap().settle(&used(1, 100));
    let e = m.reserve(&caller, worst(1), None).err().unwrap();
    assert_eq!((e.status, code(&e)), (429, "rate_limit_requests"));
    assert_eq!(e.retry_after_ms, Some(30_000), "one request comes back every 30 s at 2 rpm");
    now.fetch_add(30_000, Ordering::SeqCst);
    let h = m.reserve(&caller, worst(1), None).unwrap();
    assert_eq!(h.standing().rpm, Some((2, 0)));
    // tpm: 1000 a minute; 200 used and 30 s of refill (full again), this one holds its
    // estimate of 100 until it settles.
    assert_eq!(h.standing().tpm, Some((1_000, 900)));
    h.settle(&used(1, 40));
    now.fetch_add(60_000, Ordering::SeqCst);
    let big = Worst { cost: 1, tokens: 10, tpm_estimate: 1_001 };
    let e = m.reserve(&caller, big, None).err().unwrap();
    assert_eq!((e.status, code(&e), e.should_retry), (429, "request_too_large", Some(false)));
    // Settling charges the real tokens: 900 used leaves 100, so 200 waits 6 s (1000/min).
    m.reserve(&caller, Worst { cost: 1, tokens: 10, tpm_estimate: 500 }, None).unwrap().settle(&used(1, 900));
    let e = m.reserve(&caller, Worst { cost: 1, tokens: 10, tpm_estimate: 200 }, None).err().unwrap();
    assert_eq!((code(&e), e.retry_after_ms), ("rate_limit_tokens", Some(6_000)));
}

#[test]
fn stakers_get_a_free_daily_quota_by_tier() {
    let dir = tempfile::tempdir().unwrap();
    let tiers = vec![
        AccessTier { min_stake: Amount(100), daily_tokens: Some(1_000), daily_requests: None },
        AccessTier { min_stake: Amount(1_000), daily_tokens: None, daily_requests: Some(3) },
    ];
    let (m, now) = open(dir.path(), tiers);
    let (_, secret) = m.create_key(KeySpec { owner: owner(3), ..Default::default() }).unwrap();
    let caller = m.authenticate(Some(&secret)).unwrap();
    // Below the lowest tier and no deposit: nothing.
    assert_eq!(code(&m.reserve(&caller, worst(5), Some(99)).err().unwrap()), "insufficient_balance");
    // Tier 1: 1000 tokens a day; the worst case (100 tokens) must fit.
    for _ in 0..5 {
        let h = m.reserve(&caller, worst(5), Some(150)).unwrap();
        assert!(h.standing().free);
        h.settle(&used(5, 190));
    }
    assert_eq!(m.account(&owner(3)).free_tokens, 950);
    assert_eq!(code(&m.reserve(&caller, worst(5), Some(150)).err().unwrap()), "insufficient_balance");
    // With a deposit the rest of the day is paid.
    m.credit(&[(owner(3), Amount(20))], 1).unwrap();
    let h = m.reserve(&caller, worst(5), Some(150)).unwrap();
    assert!(!h.standing().free);
    h.settle(&used(4, 10));
    assert_eq!(m.account(&owner(3)).balance, Amount(16));
    // Tier 2 counts requests, not tokens; a new day starts afresh.
    now.fetch_add(DAY_MS, Ordering::SeqCst);
    for _ in 0..3 {
        m.reserve(&caller, worst(5), Some(5_000)).unwrap().settle(&used(5, 10_000));
    }
    let h = m.reserve(&caller, worst(5), Some(5_000)).unwrap();
    assert!(!h.standing().free);
    drop(h);
    let rows = m.usage(None, 0, u32::MAX);
    let day1 = rows.iter().find(|r| r.day == "2025-11-25").unwrap();
    assert_eq!(
        (day1.usage.requests, day1.usage.free_requests, day1.usage.sponsored_cost, day1.usage.cost),
        (6, 5, Amount(25), Amount(4))
    );
    let day2 = rows.iter().find(|r| r.day == "2025-11-26").unwrap();
    assert_eq!((day2.usage.free_requests, day2.usage.cost), (3, Amount(0)));
}

#[test]
fn what_was_written_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (id, secret) = {
        let (m, _) = open(dir.path(), vec![]);
        m.credit(&[(owner(1), Amount(500))], 42).unwrap();
        let (k, secret) = m
            .create_key(KeySpec {
                owner: owner(1),
                budget: Some(Amount(300)),
                models: vec!["m".into()],
                ..Default::default()
            })
            .unwrap();
        let caller = m.authenticate(Some(&secret)).unwrap();
        for _ in 0..3 {
            m.reserve(&caller, worst(50), None).unwrap().settle(&used(40, 7));
        }
        // The writer runs in the background; wait for it rather than for the drop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while m.requests(&k.rec.id, 0, 10).unwrap().len() < 3 {
            assert!(std::time::Instant::now() < deadline);
        }
        (k.rec.id, secret)
    };
    let (m, _) = open(dir.path(), vec![]);
    assert_eq!(m.cursor(), 42);
    let caller = m.authenticate(Some(&secret)).unwrap();
    assert_eq!(caller.key, id);
    let key = m.key(&id).unwrap();
    assert_eq!((key.rec.total_spent, key.rec.models.clone()), (Amount(120), vec!["m".to_string()]));
    assert_eq!(m.account(&owner(1)).balance, Amount(380));
    assert_eq!(m.usage(Some(&id), 0, u32::MAX)[0].usage.requests, 3);
    let log = m.requests(&id, 0, 100).unwrap();
    assert_eq!(log.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(log[2].1.cost, Amount(40));
    // New requests continue the sequence.
    m.reserve(&caller, worst(50), None).unwrap().settle(&used(1, 1));
    assert_eq!(m.requests(&id, 3, 100).unwrap()[0].0, 3);
    assert_eq!(m.allows(&caller, "other").unwrap_err().status, 403);
}

#[test]
fn dates_round_trip() {
    assert_eq!(date_of(0), "1970-01-01");
    assert_eq!(date_of(20_417), "2025-11-25");
    assert_eq!(day_from_date("2024-02-29"), Ok(19_782));
    assert!(day_from_date("2023-02-29").is_err());
    assert!(day_from_date("2023-13-01").is_err());
    assert!(day_from_date("yesterday").is_err());
}

proptest! {
    #[test]
    fn dates_are_inverse(day in 0u32..200_000) {
        prop_assert_eq!(day_from_date(&date_of(day)), Ok(day));
    }

    /// Any interleaving of reservations, settlements and failures: spent + reserved never
    /// passes the budget or the deposits, and the books add up at the end.
    #[test]
    fn reservations_never_overspend(ops in proptest::collection::vec((0u8..3, 1u128..200, 0u128..=100), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = open(dir.path(), vec![]);
        m.credit(&[(owner(1), Amount(2_000))], 1).unwrap();
        let (k, secret) = m.create_key(KeySpec { owner: owner(1), budget: Some(Amount(1_500)), ..Default::default() }).unwrap();
        let caller = m.authenticate(Some(&secret)).unwrap();
        let mut held = Vec::new();
        let mut billed = 0u128;
        for (op, cost, pct) in ops {
            match op {
                0 => if let Ok(h) = m.reserve(&caller, worst(cost), None) { held.push((h, cost)); },
                1 => if let Some((h, w)) = held.pop() {
                    let c = w * pct / 100;
                    billed += c;
                    h.settle(&used(c, 1));
                },
                _ => { held.pop(); }
            }
            let key = m.key(&k.rec.id).unwrap();
            prop_assert!(key.rec.period_spent.0 + key.reserved.0 <= 1_500);
            let a = m.account(&owner(1));
            prop_assert!(a.spent.0 + a.reserved.0 <= 2_000);
            prop_assert_eq!(a.reserved.0, held.iter().map(|(_, w)| *w).sum::<u128>());
        }
        drop(held);
        let a = m.account(&owner(1));
        prop_assert_eq!((a.spent.0, a.reserved.0, a.balance.0), (billed, 0, 2_000 - billed));
    }
}
