//! The incentive module on the ledger: emission into the pool, neuron registration with a
//! demand-tracking fee and pruning, weights, share-based staking with unbonding, and epochs
//! that pay providers and evaluators. Every block is verified independently and followed by
//! the full invariant scan (pool = emitted + fees − paid; stake account = Σ pools; shares =
//! Σ delegations).

mod common;

use common::*;
use ledger::incentive::{current_burn, incentive_pool_account, share_value, stake_account};
use ledger::objects::{NeuronRecord, ObjKey, Object, StakePool, SubnetRecord};
use ledger::LockKind;
use primitives::incentive::IncentiveParams;
use primitives::{Action, Address, Amount, AssetId, Outcome, RejectCode};

fn params() -> IncentiveParams {
    IncentiveParams {
        block_reward_base_units: Amount(1_000),
        emission_cap_base_units: Amount(1_000_000),
        tempo: 10,
        max_uids: 8,
        max_validators: 2,
        immunity_period: 30,
        min_non_immune_uids: 0,
        weights_rate_limit: 2,
        burn_initial_base_units: Amount(100),
        burn_min_base_units: Amount(10),
        burn_max_base_units: Amount(5_000),
        burn_half_life: 20,
        unbonding_blocks: 15,
        default_take_bps: 1_000,
        max_take_bps: 1_800,
        ..Default::default()
    }
}

fn subnet(c: &Chain) -> SubnetRecord {
    match c.state.object(&ObjKey::Subnet) {
        Some(Object::Subnet(s)) => s.clone(),
        other => panic!("no subnet: {other:?}"),
    }
}

fn neuron(c: &Chain, uid: u16) -> NeuronRecord {
    match c.state.object(&ObjKey::Neuron(uid)) {
        Some(Object::Neuron(n)) => n.clone(),
        other => panic!("no neuron {uid}: {other:?}"),
    }
}

fn pool(c: &Chain, who: Address) -> StakePool {
    match c.state.object(&ObjKey::StakePool(who)) {
        Some(Object::StakePool(p)) => p.clone(),
        other => panic!("no pool for {who}: {other:?}"),
    }
}

fn delegated(c: &Chain, staker: Address, evaluator: Address) -> u128 {
    let shares = match c.state.object(&ObjKey::Delegation(staker, evaluator)) {
        Some(Object::Delegation(d)) => d.shares,
        _ => 0,
    };
    share_value(&pool(c, evaluator), shares).0
}

fn empty_blocks(c: &mut Chain, k: u64) {
    for _ in 0..k {
        c.block(T0, vec![]);
    }
}

/// Empty blocks up to and including the next epoch (tempo 10).
fn until_epoch(c: &mut Chain) {
    c.block(T0, vec![]);
    while !c.state.height.0.is_multiple_of(10) {
        c.block(T0, vec![]);
    }
}

fn register(c: &mut Chain, who: u8) {
    c.ok(T0, who, Action::RegisterNeuron { max_burn: Amount(5_000) });
}

#[test]
fn emission_accrues_every_block_and_is_capped() {
    let mut c = Chain::with_incentives(Some(IncentiveParams { emission_cap_base_units: Amount(4_000), ..params() }));
    let supply0 = c.state.asset(&AssetId::TSR).unwrap().supply.0;
    empty_blocks(&mut c, 3);
    // Halved once half the cap is out: 1000, 1000, then 500 (2000 ≥ 4000 / 2), …
    assert_eq!(subnet(&c).emitted, Amount(2_500));
    assert_eq!(c.balance(incentive_pool_account(), AssetId::TSR), 2_500);
    empty_blocks(&mut c, 30);
    let s = subnet(&c);
    assert!(s.emitted.0 <= 4_000 && s.emitted.0 > 3_900, "{}", s.emitted);
    assert_eq!(c.state.asset(&AssetId::TSR).unwrap().supply.0, supply0 + s.emitted.0);
    // No neurons: nothing paid, the pool keeps everything.
    assert_eq!(s.paid, Amount::ZERO);
}

#[test]
fn registration_fee_rises_with_demand_decays_with_time_and_goes_to_the_pool() {
    let mut c = Chain::with_incentives(Some(params()));
    let before = c.balance(addr(10), AssetId::TSR);
    register(&mut c, 10);
    // Block 1: the genesis fee of 100 has decayed one block of its 20-block half-life
    // (100 · 39/40 = 97); paying it raises the fee to 97 · 1.26 = 122.
    assert_eq!(c.balance(addr(10), AssetId::TSR), before - 97 - FEE);
    let s = subnet(&c);
    assert_eq!((s.n, s.fees, s.burn, s.burn_height), (1, Amount(97), Amount(122), 1));
    assert_eq!(neuron(&c, 0).hotkey, addr(10));
    // Twice: rejected, nothing changes but fee and nonce.
    assert_eq!(
        c.one(T0, 10, Action::RegisterNeuron { max_burn: Amount(5_000) }),
        Outcome::Rejected(RejectCode::NeuronExists)
    );
    // A max_burn below the fee: rejected.
    let b = c.balance(addr(11), AssetId::TSR);
    assert_eq!(
        c.one(T0, 11, Action::RegisterNeuron { max_burn: Amount(100) }),
        Outcome::Rejected(RejectCode::BurnAboveLimit)
    );
    assert_eq!(c.balance(addr(11), AssetId::TSR), b - FEE);
    assert_eq!(subnet(&c).n, 1);
    // The fee halves over a half-life without registrations.
    let p = params();
    assert_eq!(current_burn(&p, &subnet(&c), 1 + 20), Amount(61));
    assert_eq!(current_burn(&p, &subnet(&c), 1 + 10), Amount(91)); // linear between halvings
    assert_eq!(current_burn(&p, &subnet(&c), 1 + 2_000), Amount(10)); // the floor
}

#[test]
fn a_full_network_replaces_the_lowest_emission_neuron_past_immunity() {
    let mut c = Chain::with_incentives(Some(IncentiveParams { max_uids: 3, ..params() }));
    for who in [10, 11, 12] {
        register(&mut c, who);
    }
    // All three are immune, and min_non_immune_uids = 0 means an immune one is taken.
    register(&mut c, 13);
    assert_eq!(subnet(&c).n, 3);
    // Lowest emission (all 0), then earliest registration: uid 0 (key 10) went.
    assert_eq!(neuron(&c, 0).hotkey, addr(13));
    assert_eq!(c.state.object(&ObjKey::NeuronOf(addr(10))), None);
    // Key 10 may register again, taking the next candidate.
    register(&mut c, 10);
    assert_eq!(neuron(&c, 1).hotkey, addr(10));
}

#[test]
fn stake_compounds_pays_the_take_and_unbonds() {
    let mut c = Chain::with_incentives(Some(params()));
    register(&mut c, 10); // evaluator
    register(&mut c, 11); // provider
    c.ok(T0, 10, Action::Stake { evaluator: addr(10), amount: Amount(3_000) });
    c.ok(T0, 20, Action::Stake { evaluator: addr(10), amount: Amount(1_000) });
    assert_eq!(
        c.one(T0, 20, Action::Stake { evaluator: addr(12), amount: Amount(10) }),
        Outcome::Rejected(RejectCode::NotEvaluator)
    );
    assert_eq!(delegated(&c, addr(20), addr(10)), 1_000);
    // The first epoch gives 10 its permit (top stake); it then weights the provider.
    until_epoch(&mut c);
    assert!(neuron(&c, 0).validator_permit, "the staked evaluator got a permit");
    assert!(!neuron(&c, 1).validator_permit, "no stake, no permit");
    empty_blocks(&mut c, 2);
    c.ok(T0, 10, Action::SetWeights { uids: vec![1], weights: vec![7] });
    assert_eq!(neuron(&c, 0).weights, vec![(1, 65_535)]);
    let rate_limited = c.one(T0, 10, Action::SetWeights { uids: vec![1], weights: vec![7] });
    assert_eq!(rate_limited, Outcome::Rejected(RejectCode::WeightsRateLimited));
    let provider_before = c.balance(addr(11), AssetId::TSR);
    let pool_before = pool(&c, addr(10)).total.0;
    let value_before = delegated(&c, addr(20), addr(10));
    assert!(value_before > 1_000, "the first epoch (no weights yet) paid the pool by stake: {value_before}");
    until_epoch(&mut c);
    let s = subnet(&c);
    assert!(s.last_epoch_paid.0 > 0);
    let paid_provider = c.balance(addr(11), AssetId::TSR) - provider_before;
    let paid_pool = pool(&c, addr(10)).total.0 - pool_before;
    assert_eq!(paid_provider + paid_pool, s.last_epoch_paid.0);
    assert!(paid_provider > 0 && paid_pool > 0, "provider {paid_provider}, evaluator {paid_pool}");
    assert!(neuron(&c, 1).incentive > 0 && neuron(&c, 0).dividends > 0);
    // The delegator's stake grew by its share of the dividends net of the 10 % take.
    let grown = delegated(&c, addr(20), addr(10));
    let expected = value_before + (paid_pool * 9 / 10) * value_before / pool_before;
    assert!(grown.abs_diff(expected) <= 2, "delegator {grown}, expected about {expected}");
    // Unstake: the amount comes back locked until the unbonding period ends.
    let spendable = c.spendable(addr(20), AssetId::TSR);
    c.ok(T0, 20, Action::Unstake { evaluator: addr(10), amount: Amount(1_000) });
    assert_eq!(c.spendable(addr(20), AssetId::TSR), spendable - FEE);
    assert!(c.state.account(&addr(20)).unwrap().locks.iter().any(|l| l.kind == LockKind::Unbonding));
    assert_eq!(c.one(T0, 20, Action::WithdrawUnstaked), Outcome::Rejected(RejectCode::NothingUnbonded));
    let too_much = c.one(T0, 20, Action::Unstake { evaluator: addr(10), amount: Amount(grown) });
    assert_eq!(too_much, Outcome::Rejected(RejectCode::InsufficientStake));
    empty_blocks(&mut c, 15);
    c.ok(T0, 20, Action::WithdrawUnstaked);
    assert_eq!(c.spendable(addr(20), AssetId::TSR), spendable - 4 * FEE + 1_000);
    // The take: at most max_take.
    assert_eq!(c.one(T0, 10, Action::SetTake { take_bps: 1_801 }), Outcome::Rejected(RejectCode::TakeTooHigh));
    c.ok(T0, 10, Action::SetTake { take_bps: 0 });
    assert_eq!(pool(&c, addr(10)).take_bps, 0);
    assert_eq!(c.balance(stake_account(), AssetId::TSR), pool(&c, addr(10)).total.0);
}

#[test]
fn weights_need_a_permit_known_uids_and_enough_entries() {
    let mut c = Chain::with_incentives(Some(IncentiveParams { min_allowed_weights: 2, ..params() }));
    register(&mut c, 10);
    register(&mut c, 11);
    register(&mut c, 12);
    empty_blocks(&mut c, 3);
    let no_permit = c.one(T0, 10, Action::SetWeights { uids: vec![1, 2], weights: vec![1, 1] });
    assert_eq!(no_permit, Outcome::Rejected(RejectCode::NoValidatorPermit));
    // A single self-weight is always allowed.
    c.ok(T0, 10, Action::SetWeights { uids: vec![0], weights: vec![1] });
    assert_eq!(
        c.one(T0, 13, Action::SetWeights { uids: vec![0], weights: vec![1] }),
        Outcome::Rejected(RejectCode::NotNeuron)
    );
    c.ok(T0, 10, Action::Stake { evaluator: addr(10), amount: Amount(500) });
    until_epoch(&mut c);
    let unknown = c.one(T0, 10, Action::SetWeights { uids: vec![1, 9], weights: vec![1, 1] });
    assert_eq!(unknown, Outcome::Rejected(RejectCode::UnknownUid));
    let too_few = c.one(T0, 10, Action::SetWeights { uids: vec![1], weights: vec![1] });
    assert_eq!(too_few, Outcome::Rejected(RejectCode::TooFewWeights));
    c.ok(T0, 10, Action::SetWeights { uids: vec![2, 1], weights: vec![21_845, 43_690] });
    assert_eq!(neuron(&c, 0).weights, vec![(2, 32_768), (1, 65_535)], "max-upscaled, submission order");
}

/// Three evaluators score two providers; the one with a minority of stake (below kappa)
/// pushes provider B. Consensus follows the majority: A gets the larger incentive, and the
/// dissenting evaluator's weight on B is clipped, lowering its validator trust.
#[test]
fn consensus_clips_a_minority_evaluator() {
    let mut c = Chain::with_incentives(Some(IncentiveParams { max_validators: 3, yuma3: false, ..params() }));
    for who in [10, 11, 12, 13, 14] {
        register(&mut c, who);
    }
    c.ok(T0, 10, Action::Stake { evaluator: addr(10), amount: Amount(4_000) });
    c.ok(T0, 11, Action::Stake { evaluator: addr(11), amount: Amount(4_000) });
    c.ok(T0, 12, Action::Stake { evaluator: addr(12), amount: Amount(2_000) });
    until_epoch(&mut c);
    empty_blocks(&mut c, 2);
    c.block(
        T0,
        vec![
            (10, Action::SetWeights { uids: vec![3, 4], weights: vec![9, 1] }),
            (11, Action::SetWeights { uids: vec![3, 4], weights: vec![8, 2] }),
            (12, Action::SetWeights { uids: vec![3, 4], weights: vec![1, 9] }),
        ],
    )
    .iter()
    .for_each(|o| assert_eq!(*o, Outcome::Success));
    for _ in 0..3 {
        empty_blocks(&mut c, 10);
    }
    let (a, b) = (neuron(&c, 3), neuron(&c, 4));
    assert!(a.incentive > 3 * b.incentive, "A {} vs B {}", a.incentive, b.incentive);
    assert!(a.last_incentive_paid > b.last_incentive_paid);
    let (honest, dissent) = (neuron(&c, 0), neuron(&c, 2));
    assert!(
        dissent.validator_trust < honest.validator_trust,
        "{} vs {}",
        dissent.validator_trust,
        honest.validator_trust
    );
    assert!(honest.dividends > dissent.dividends);
}

/// Commit-reveal: weights are committed as a hash and revealed in the next epoch (not
/// before, not after); direct weights are refused; the reveal counts from the commit block.
#[test]
fn weights_are_committed_then_revealed_in_the_next_epoch() {
    use primitives::incentive::weight_commit_hash;
    use primitives::Hash;
    let mut c = Chain::with_incentives(Some(IncentiveParams { commit_reveal: true, ..params() }));
    register(&mut c, 10);
    register(&mut c, 11);
    c.ok(T0, 10, Action::Stake { evaluator: addr(10), amount: Amount(1_000) });
    until_epoch(&mut c);
    empty_blocks(&mut c, 2);
    let direct = c.one(T0, 10, Action::SetWeights { uids: vec![1], weights: vec![1] });
    assert_eq!(direct, Outcome::Rejected(RejectCode::CommitRevealRequired));
    let salt = Hash([7; 32]);
    let hash = weight_commit_hash(&addr(10), &[1], &[5], &salt);
    c.ok(T0, 10, Action::CommitWeights { hash });
    let committed_at = c.state.height.0;
    let early = c.one(T0, 10, Action::RevealWeights { uids: vec![1], weights: vec![5], salt });
    assert_eq!(early, Outcome::Rejected(RejectCode::RevealTooEarly));
    // The early reveal was rejected, so the commit is still there.
    assert_eq!(neuron(&c, 0).commits.len(), 1);
    until_epoch(&mut c);
    let wrong = c.one(T0, 10, Action::RevealWeights { uids: vec![1], weights: vec![6], salt });
    assert_eq!(wrong, Outcome::Rejected(RejectCode::NoMatchingCommit));
    c.ok(T0, 10, Action::RevealWeights { uids: vec![1], weights: vec![5], salt });
    let n = neuron(&c, 0);
    assert_eq!((n.weights.clone(), n.last_update, n.commits.len()), (vec![(1, 65_535)], committed_at, 0));
    // A commit not revealed in its reveal epoch expires.
    let salt2 = Hash([8; 32]);
    c.ok(T0, 10, Action::CommitWeights { hash: weight_commit_hash(&addr(10), &[1], &[9], &salt2) });
    until_epoch(&mut c);
    until_epoch(&mut c);
    let late = c.one(T0, 10, Action::RevealWeights { uids: vec![1], weights: vec![9], salt: salt2 });
    assert_eq!(late, Outcome::Rejected(RejectCode::NoMatchingCommit));
    // The revealed weights paid the provider.
    assert!(neuron(&c, 1).incentive > 0);
    // Without commit-reveal the new actions are refused.
    let mut plain = Chain::with_incentives(Some(params()));
    register(&mut plain, 10);
    let r = plain.one(T0, 10, Action::CommitWeights { hash });
    assert_eq!(r, Outcome::Rejected(RejectCode::CommitRevealDisabled));
}

#[test]
fn incentives_off_rejects_the_actions() {
    let mut c = Chain::new();
    assert_eq!(
        c.one(T0, 10, Action::RegisterNeuron { max_burn: Amount(1) }),
        Outcome::Rejected(RejectCode::IncentivesDisabled)
    );
    assert_eq!(c.one(T0, 10, Action::WithdrawUnstaked), Outcome::Rejected(RejectCode::IncentivesDisabled));
    assert_eq!(c.balance(incentive_pool_account(), AssetId::TSR), 0);
}

mod properties {
    use super::*;
    use primitives::incentive::block_emission;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Register(u8),
        Stake(u8, u8, u128),
        Unstake(u8, u8, u128),
        Weights(u8, Vec<(u16, u16)>),
        Withdraw(u8),
        Empty,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let who = 10u8..16;
        prop_oneof![
            who.clone().prop_map(Op::Register),
            (who.clone(), 10u8..16, 1u128..3_000).prop_map(|(a, b, x)| Op::Stake(a, b, x)),
            (who.clone(), 10u8..16, 1u128..3_000).prop_map(|(a, b, x)| Op::Unstake(a, b, x)),
            (who.clone(), prop::collection::vec((0u16..6, any::<u16>()), 1..5)).prop_map(|(a, w)| Op::Weights(a, w)),
            who.prop_map(Op::Withdraw),
            Just(Op::Empty),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever happens: each block mints exactly the scheduled emission; epochs pay only
        /// at multiples of the tempo; what they pay is exactly what left the pool; and the
        /// module's invariants (pool = emitted + fees − paid, stake account = Σ pools,
        /// shares = Σ delegations) hold after every block (`Chain::block` checks them).
        #[test]
        fn emission_is_accrued_then_paid_only_at_epochs(ops in prop::collection::vec(arb_op(), 1..50)) {
            let p = IncentiveParams { weights_rate_limit: 0, ..params() };
            let mut c = Chain::with_incentives(Some(p.clone()));
            for op in ops {
                let (signer, action) = match op {
                    Op::Register(a) => (a, Action::RegisterNeuron { max_burn: Amount(5_000) }),
                    Op::Stake(a, b, x) => (a, Action::Stake { evaluator: addr(b), amount: Amount(x) }),
                    Op::Unstake(a, b, x) => (a, Action::Unstake { evaluator: addr(b), amount: Amount(x) }),
                    Op::Weights(a, w) => {
                        let mut w = w;
                        w.sort_by_key(|x| x.0);
                        w.dedup_by_key(|x| x.0);
                        (a, Action::SetWeights { uids: w.iter().map(|x| x.0).collect(), weights: w.iter().map(|x| x.1).collect() })
                    }
                    Op::Withdraw(a) => (a, Action::WithdrawUnstaked),
                    Op::Empty => (ISSUER, Action::Transfer { to: addr(ISSUER), asset: AssetId::TSR, amount: Amount(1) }),
                };
                let before = c.state.object(&ObjKey::Subnet).map(|_| subnet(&c));
                let pool_before = c.balance(incentive_pool_account(), AssetId::TSR);
                c.one(T0, signer, action);
                let after = subnet(&c);
                let (emitted0, paid0, fees0) = before.map_or((0, 0, 0), |s| (s.emitted.0, s.paid.0, s.fees.0));
                let expected = block_emission(p.block_reward_base_units, Amount(emitted0), p.emission_cap_base_units).0;
                prop_assert_eq!(after.emitted.0 - emitted0, expected);
                let paid_now = after.paid.0 - paid0;
                if !c.state.height.0.is_multiple_of(p.tempo as u64) {
                    prop_assert_eq!(paid_now, 0, "paid outside an epoch");
                }
                let pool_after = c.balance(incentive_pool_account(), AssetId::TSR);
                prop_assert_eq!(pool_before + expected + (after.fees.0 - fees0), pool_after + paid_now);
            }
        }
    }
}
