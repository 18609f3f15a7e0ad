//! The compliant sale on the ledger: every compliance check's own rejection code (and
//! that a rejection changes nothing but fee and nonce), each mechanism end to end
//! against hand-worked numbers, refunds, cancellation, vesting and transfer restrictions.

use ledger::objects::{ObjKey, Object, OfferingStatus};
use primitives::sale::*;
use primitives::{Action, Amount, AssetId, Outcome, RejectCode};
use proptest::prelude::*;

mod common;
use common::*;

fn tranche(name: &str, supply: u128, mechanism: Mechanism) -> TrancheConfig {
    TrancheConfig {
        name: name.into(),
        exemption: Exemption::None,
        eligibility: Eligibility::default(),
        supply: Amount(supply),
        mechanism,
        min_per_entity: Amount(0),
        max_per_entity: Amount(100_000),
        opens_ms: T0 + DAY,
        closes_ms: T0 + 10 * DAY,
        cancel_until_ms: None,
        lot: LotRule::default(),
    }
}

fn offering(tranches: Vec<TrancheConfig>) -> OfferingConfig {
    OfferingConfig {
        name: "Tessera token sale".into(),
        asset: AssetId::TSR,
        quote: usd(),
        price_per: Amount(1),
        soft_cap: Amount(0),
        tranches,
    }
}

const OPEN: u64 = T0 + 2 * DAY;
const AFTER: u64 = T0 + 11 * DAY;

fn fixed(price: u128, fill: Fill) -> Mechanism {
    Mechanism::FixedPrice { price: Amount(price), fill }
}

fn commit(o: u64, t: u16, amount: u128) -> Action {
    Action::Commit { offering: o, tranche: t, amount: Amount(amount) }
}

fn claim(o: u64, t: u16, i: u8) -> Action {
    Action::Claim { offering: o, tranche: t, entity: entity(i) }
}

#[test]
fn each_compliance_check_rejects_with_its_own_code_and_changes_nothing() {
    let mut c = Chain::new();
    let mut reg_d = tranche("Reg D 506(c)", 1_000, fixed(1, Fill::ProRata));
    reg_d.exemption = Exemption::RegD506c;
    reg_d.eligibility.us_persons = UsPersons::Only;
    let mut reg_s = tranche("Reg S", 1_000, fixed(1, Fill::ProRata));
    reg_s.exemption = Exemption::RegS { dcp_ms: 365 * DAY };
    reg_s.eligibility.us_persons = UsPersons::Excluded;
    reg_s.eligibility.blocked = ["CU", "IR", "KP", "UA-43", "UA-14", "UA-09"].map(|r| Region::new(r).unwrap()).to_vec();
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![reg_d, reg_s]) });

    let accredited = |method, expires_ms| {
        move |a: &mut Attestation| {
            a.jurisdiction = Region::new("US").unwrap();
            a.us_person = true;
            a.class = InvestorClass::Accredited;
            a.accreditation = Some(Accreditation { method, expires_ms });
        }
    };
    c.verify_investor(10, accredited(AccreditationMethod::ThirdPartyLetter, T0 + 100 * DAY));
    c.verify_investor(11, |a| {
        a.jurisdiction = Region::new("US").unwrap();
        a.us_person = true;
    });
    c.verify_investor(12, accredited(AccreditationMethod::SelfCertified, T0 + 100 * DAY));
    c.verify_investor(13, accredited(AccreditationMethod::Income, T0 + DAY)); // expires before the window
    c.verify_investor(14, |_| {}); // DE retail
    c.verify_investor(15, |a| a.jurisdiction = Region::new("IR").unwrap());
    c.verify_investor(16, |a| a.jurisdiction = Region::new("UA-43").unwrap());
    c.verify_investor(17, |a| a.screening = Screening::Hit);
    c.verify_investor(18, |a| a.kyc_expires_ms = T0 + DAY);
    c.verify_investor(19, |_| {});
    c.ok(T0, COMPLIANCE, Action::RevokeEntity { entity: entity(19) });
    c.verify_investor(21, |a| a.jurisdiction = Region::new("UA").unwrap()); // Ukraine outside the blocked regions

    assert_eq!(c.one(T0, 14, commit(1, 1, 1)), Outcome::Rejected(RejectCode::TrancheNotOpen));
    let cases: Vec<(u8, u16, RejectCode)> = vec![
        (11, 0, RejectCode::InvestorClassNotAllowed),
        (12, 0, RejectCode::AccreditationRequired),
        (13, 0, RejectCode::AccreditationExpired),
        (14, 0, RejectCode::UsPersonsOnly),
        (10, 1, RejectCode::UsPersonExcluded),
        (15, 1, RejectCode::JurisdictionBlocked),
        (16, 1, RejectCode::JurisdictionBlocked),
        (17, 1, RejectCode::Sanctioned),
        (18, 1, RejectCode::KycExpired),
        (19, 1, RejectCode::EntityRevoked),
        (20, 1, RejectCode::WalletNotVerified), // never bound
    ];
    for (investor, t, code) in cases {
        let before_usd = c.balance(addr(investor), usd());
        let before_tsr = c.balance(addr(investor), AssetId::TSR);
        let before_locks = c.state.account(&addr(investor)).map(|a| a.locks.clone());
        let before_tranche = c.tranche(1, t);
        let out = c.one(OPEN, investor, commit(1, t, 500));
        assert_eq!(out, Outcome::Rejected(code), "investor {investor} tranche {t}");
        assert_eq!(c.balance(addr(investor), usd()), before_usd, "a rejection moves no money");
        assert_eq!(c.balance(addr(investor), AssetId::TSR), before_tsr - FEE, "only the fee is charged");
        assert_eq!(c.state.account(&addr(investor)).map(|a| a.locks.clone()), before_locks);
        assert_eq!(c.tranche(1, t), before_tranche);
    }
    // The eligible ones get in.
    c.ok(OPEN, 10, commit(1, 0, 500));
    c.ok(OPEN, 14, commit(1, 1, 500));
    c.ok(OPEN, 21, commit(1, 1, 500));
    assert_eq!(c.spendable(addr(10), usd()), 100_000 - 500);
    // Window and caps.
    assert_eq!(c.one(OPEN, 14, commit(1, 1, 99_501)), Outcome::Rejected(RejectCode::AboveEntityMax));
    assert_eq!(c.one(OPEN, 14, commit(1, 9, 1)), Outcome::Rejected(RejectCode::UnknownTranche));
    assert_eq!(c.one(OPEN, 14, commit(7, 0, 1)), Outcome::Rejected(RejectCode::UnknownOffering));
    // Only the compliance role attests; one entity per wallet.
    assert_eq!(
        c.one(T0 + 3 * DAY, ISSUER, Action::RevokeEntity { entity: entity(10) }),
        Outcome::Rejected(RejectCode::NotComplianceRole)
    );
    assert_eq!(
        c.one(T0 + 3 * DAY, COMPLIANCE, Action::BindWallet { entity: entity(10), wallet: addr(14) }),
        Outcome::Rejected(RejectCode::WalletBoundElsewhere)
    );
    assert_eq!(c.one(AFTER, 14, commit(1, 1, 1)), Outcome::Rejected(RejectCode::TrancheClosed));
}

#[test]
fn fixed_price_pro_rata_hand_worked_end_to_end() {
    let mut c = Chain::new();
    // 1,000 tokens at 2 USD base units each: capacity 2,000; demand 6,000.
    c.ok(
        T0,
        ISSUER,
        Action::CreateOffering { config: offering(vec![tranche("public", 1_000, fixed(2, Fill::ProRata))]) },
    );
    let issuer_tsr = c.balance(addr(ISSUER), AssetId::TSR);
    for (i, amount) in [(10, 1_000), (11, 2_000), (12, 3_000)] {
        c.verify_investor(i, |_| {});
        c.ok(OPEN, i, commit(1, 0, amount));
    }
    assert_eq!(c.tranche(1, 0).escrowed, Amount(6_000));
    assert_eq!(
        c.one(OPEN, ISSUER, Action::FinalizeOffering { offering: 1 }),
        Outcome::Rejected(RejectCode::OfferingStillOpen)
    );
    assert_eq!(c.one(OPEN, 10, claim(1, 0, 10)), Outcome::Rejected(RejectCode::OfferingNotFinalized));
    assert_eq!(
        c.one(AFTER, 10, Action::FinalizeOffering { offering: 1 }),
        Outcome::Rejected(RejectCode::NotOfferingCreator)
    );
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    assert_eq!(c.offering_status(1), OfferingStatus::Settled);
    let s = c.tranche(1, 0).settlement.unwrap();
    assert_eq!((s.tokens_sold, s.proceeds, s.refunds), (Amount(999), Amount(1_998), Amount(4_002)));
    // Anyone may deliver; each claim is exact.
    for (i, tokens, paid) in [(10u8, 166u128, 332u128), (11, 333, 666), (12, 500, 1_000)] {
        let tsr_before = c.balance(addr(i), AssetId::TSR);
        c.ok(AFTER, ISSUER, claim(1, 0, i));
        assert_eq!(c.balance(addr(i), AssetId::TSR), tsr_before + tokens);
        assert_eq!(c.balance(addr(i), usd()), 100_000 - paid);
        assert_eq!(c.spendable(addr(i), usd()), 100_000 - paid, "the refund is free again");
    }
    assert_eq!(c.one(AFTER, 10, claim(1, 0, 10)), Outcome::Rejected(RejectCode::AlreadyClaimed));
    // Proceeds and the 1 unsold token (dust) go to the issuer.
    c.ok(AFTER, ISSUER, Action::WithdrawProceeds { offering: 1 });
    assert_eq!(c.balance(addr(ISSUER), usd()), 1_998);
    // The issuer paid 6 fees (2 finalize attempts, 3 claims, withdraw) and got back the dust token.
    assert_eq!(c.balance(addr(ISSUER), AssetId::TSR), issuer_tsr - 6 * FEE + 1);
    assert_eq!(c.balance(ledger::objects::module_account("offering", 1), AssetId::TSR), 0);
}

#[test]
fn water_fill_caps_the_largest_commitments() {
    let mut c = Chain::new();
    // Capacity 100 at price 1: commitments 10, 20, 50, 80 → level 35.
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![tranche("wf", 100, fixed(1, Fill::WaterFill))]) });
    for (i, amount) in [(10, 10), (11, 20), (12, 50), (13, 80)] {
        c.verify_investor(i, |_| {});
        c.ok(OPEN, i, commit(1, 0, amount));
    }
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    for (i, tokens) in [(10u8, 10u128), (11, 20), (12, 35), (13, 35)] {
        let before = c.balance(addr(i), AssetId::TSR);
        c.ok(AFTER, i, claim(1, 0, i));
        assert_eq!(c.balance(addr(i), AssetId::TSR), before - FEE + tokens);
        assert_eq!(c.balance(addr(i), usd()), 100_000 - tokens);
    }
}

#[test]
fn tiered_fills_in_arrival_order_across_tiers() {
    let mut c = Chain::new();
    let tiers = vec![Tier { up_to: Amount(100), price: Amount(1) }, Tier { up_to: Amount(300), price: Amount(2) }];
    c.ok(
        T0,
        ISSUER,
        Action::CreateOffering { config: offering(vec![tranche("tiers", 300, Mechanism::Tiered { tiers })]) },
    );
    c.verify_investor(10, |_| {});
    c.verify_investor(11, |_| {});
    c.verify_investor(12, |_| {});
    // 10: 150 money → 100 at 1 + 25 at 2 = 125 tokens for 150.
    c.ok(OPEN, 10, commit(1, 0, 150));
    assert_eq!(c.spendable(addr(10), usd()), 100_000 - 150);
    // 11: 1000 money → the remaining 175 at 2 = 350 paid; only that is locked.
    c.ok(OPEN, 11, commit(1, 0, 1_000));
    assert_eq!(c.spendable(addr(11), usd()), 100_000 - 350);
    assert_eq!(c.one(OPEN, 12, commit(1, 0, 10)), Outcome::Rejected(RejectCode::SoldOut));
    assert_eq!(
        c.one(OPEN, 10, Action::CancelCommitment { offering: 1, tranche: 0 }),
        Outcome::Rejected(RejectCode::CancellationClosed)
    );
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    c.ok(AFTER, 10, claim(1, 0, 10));
    c.ok(AFTER, 11, claim(1, 0, 11));
    assert_eq!(c.balance(addr(10), usd()), 100_000 - 150);
    assert_eq!(c.balance(addr(11), usd()), 100_000 - 350);
    assert_eq!(c.balance(addr(11), AssetId::TSR), 10_000 - 2 * FEE + 175);
}

#[test]
fn batch_auction_clears_at_one_price_and_bids_only_rise() {
    let mut c = Chain::new();
    let mech = Mechanism::BatchAuction { reserve: Amount(2), ceiling: Some(Amount(20)), increment: Amount(1) };
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![tranche("auction", 100, mech)]) });
    for i in 10..14 {
        c.verify_investor(i, |_| {});
    }
    let bid = |price: u128, quantity: u128| Action::Bid {
        offering: 1,
        tranche: 0,
        price: Amount(price),
        quantity: Amount(quantity),
    };
    assert_eq!(c.one(OPEN, 10, commit(1, 0, 5)), Outcome::Rejected(RejectCode::WrongMechanism));
    assert_eq!(c.one(OPEN, 10, bid(1, 10)), Outcome::Rejected(RejectCode::PriceOffGrid));
    assert_eq!(c.one(OPEN, 10, bid(21, 10)), Outcome::Rejected(RejectCode::PriceOffGrid));
    c.ok(OPEN, 10, bid(9, 50));
    c.ok(OPEN, 10, bid(10, 50)); // raised
    assert_eq!(c.one(OPEN, 10, bid(10, 40)), Outcome::Rejected(RejectCode::BidLowered));
    assert_eq!(c.spendable(addr(10), usd()), 100_000 - 500);
    c.ok(OPEN, 11, bid(8, 40));
    c.ok(OPEN, 12, bid(8, 30));
    c.ok(OPEN, 13, bid(5, 60));
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    // Clearing at 8: 50 above; 70 bid at 8 share the 50 left.
    for (i, tokens) in [(10u8, 50u128), (11, 28), (12, 21), (13, 0)] {
        let before = c.balance(addr(i), AssetId::TSR);
        c.ok(AFTER, i, claim(1, 0, i));
        assert_eq!(c.balance(addr(i), AssetId::TSR), before - FEE + tokens);
        assert_eq!(c.balance(addr(i), usd()), 100_000 - tokens * 8, "everyone pays the clearing price");
        assert_eq!(c.spendable(addr(i), usd()), 100_000 - tokens * 8);
    }
}

#[test]
fn dutch_auction_ends_when_demand_meets_supply() {
    let mut c = Chain::new();
    // 100 tokens; clock 10 → 2 over 9 days (opens T0+1d, closes T0+10d).
    let mech = Mechanism::Dutch { start_price: Amount(10), reserve: Amount(2) };
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![tranche("dutch", 100, mech)]) });
    for i in 10..13 {
        c.verify_investor(i, |_| {});
    }
    // At day 5.5 (4.5 days in) the clock shows 10 − ⌊8 · 4.5/9⌋ = 6: supply costs 600.
    let t = T0 + DAY + 9 * DAY / 2;
    c.ok(t, 10, commit(1, 0, 300));
    assert_eq!(c.one(t, 10, commit(1, 0, 1)), Outcome::Rejected(RejectCode::AlreadyCommitted));
    c.ok(t, 11, commit(1, 0, 400)); // 700 ≥ 600: ends here at 6; 11 gets the last 300's worth
    assert_eq!(c.one(t, 12, commit(1, 0, 100)), Outcome::Rejected(RejectCode::AuctionEnded));
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    c.ok(AFTER, 10, claim(1, 0, 10));
    c.ok(AFTER, 11, claim(1, 0, 11));
    assert_eq!(c.balance(addr(10), usd()), 100_000 - 300);
    assert_eq!(c.balance(addr(11), usd()), 100_000 - 300, "truncated to the capacity left, refunded the rest");
    assert_eq!(c.balance(addr(11), AssetId::TSR), 10_000 - 2 * FEE + 50);
}

#[test]
fn missed_soft_cap_refunds_everyone_and_returns_the_tokens() {
    let mut c = Chain::new();
    let mut cfg = offering(vec![tranche("public", 1_000, fixed(2, Fill::ProRata))]);
    cfg.soft_cap = Amount(5_000);
    c.ok(T0, ISSUER, Action::CreateOffering { config: cfg });
    c.verify_investor(10, |_| {});
    c.ok(OPEN, 10, commit(1, 0, 1_000));
    let issuer_tsr = c.balance(addr(ISSUER), AssetId::TSR);
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    assert_eq!(c.offering_status(1), OfferingStatus::Failed);
    c.ok(AFTER, 10, claim(1, 0, 10));
    assert_eq!(c.spendable(addr(10), usd()), 100_000);
    c.ok(AFTER, ISSUER, Action::WithdrawProceeds { offering: 1 });
    assert_eq!(c.balance(addr(ISSUER), AssetId::TSR), issuer_tsr + 1_000 - 2 * FEE);
    assert_eq!(c.balance(addr(ISSUER), usd()), 0);
}

#[test]
fn reg_cf_limit_and_cancellation_window() {
    let mut c = Chain::new();
    let mut t = tranche("Reg CF", 10_000, fixed(1, Fill::ProRata));
    t.exemption = Exemption::RegCf;
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![t]) });
    // Income 40,000 and net worth 30,000 dollars at 1 base unit per 100 dollars... use
    // the formula directly: limit = max(2,500, 5% of 40,000) = 2,500 dollars.
    let limit = regcf_investment_limit(Amount(40_000), Amount(30_000), false, Amount(1)).unwrap();
    assert_eq!(limit, Amount(2_500));
    assert_eq!(regcf_investment_limit(Amount(200_000), Amount(150_000), false, Amount(1)), Some(Amount(20_000)));
    assert_eq!(regcf_investment_limit(Amount(2_000_000), Amount(150_000), false, Amount(1)), Some(Amount(124_000)));
    c.verify_investor(10, |a| a.regcf_limit = Some(limit));
    c.verify_investor(11, |_| {}); // no limit assessed
    c.ok(OPEN, 10, commit(1, 0, 2_000));
    assert_eq!(c.one(OPEN, 10, commit(1, 0, 501)), Outcome::Rejected(RejectCode::RegCfLimitExceeded));
    assert_eq!(c.one(OPEN, 11, commit(1, 0, 1)), Outcome::Rejected(RejectCode::RegCfLimitExceeded));
    c.ok(OPEN, 10, Action::CancelCommitment { offering: 1, tranche: 0 });
    assert_eq!(c.spendable(addr(10), usd()), 100_000);
    c.ok(OPEN, 10, commit(1, 0, 2_500)); // the cancelled amount no longer counts
                                         // Within 48 hours of the close, no more cancelling.
    let late = T0 + 10 * DAY - DAY;
    assert_eq!(
        c.one(late, 10, Action::CancelCommitment { offering: 1, tranche: 0 }),
        Outcome::Rejected(RejectCode::CancellationClosed)
    );
}

#[test]
fn lots_vest_and_transfers_answer_with_restriction_codes() {
    let mut c = Chain::new();
    let mut t = tranche("Reg S", 1_000, fixed(1, Fill::ProRata));
    t.exemption = Exemption::RegS { dcp_ms: 40 * DAY };
    t.eligibility.us_persons = UsPersons::Excluded;
    // Lots: 10% at the close, the rest linear over 100 days.
    t.lot = LotRule {
        schedule: Some(Schedule::Continuous {
            start_ms: T0 + 10 * DAY,
            tge_bps: 1_000,
            cliff_ms: 0,
            duration_ms: 100 * DAY,
            cliff: CliffKind::CatchUp,
        }),
        resale: Resale::NonUsOnlyDuringDcp,
    };
    c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![t]) });
    c.verify_investor(10, |_| {});
    c.verify_investor(11, |a| {
        a.jurisdiction = Region::new("US").unwrap();
        a.us_person = true;
    });
    c.verify_investor(12, |_| {}); // non-US
    c.verify_investor(13, |a| a.screening = Screening::Hit);
    c.ok(OPEN, 10, commit(1, 0, 1_000));
    c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
    c.ok(AFTER, 10, claim(1, 0, 10));
    let held = c.balance(addr(10), AssetId::TSR);
    // One day after the close: 10% + ⌊900 · 1/100⌋ = 109 of the 1,000 tokens vested.
    let xfer = |to: u8, amount: u128| Action::Transfer { to: addr(to), asset: AssetId::TSR, amount: Amount(amount) };
    let free = held - 891;
    assert_eq!(c.one(AFTER, 10, xfer(12, free - FEE + 1)), Outcome::Rejected(RejectCode::Locked));
    assert_eq!(c.one(AFTER, 10, xfer(11, 50)), Outcome::Rejected(RejectCode::RecipientIneligible));
    assert_eq!(c.one(AFTER, 10, xfer(30, 50)), Outcome::Rejected(RejectCode::RecipientIneligible), "unverified");
    assert_eq!(c.one(AFTER, 10, xfer(13, 50)), Outcome::Rejected(RejectCode::SanctionedParty));
    c.ok(AFTER, 10, xfer(12, 50));
    assert_eq!(c.balance(addr(10), AssetId::TSR), held - 5 * FEE - 50);
    // After the DCP (40 days) anyone may receive; after 100 days everything is free.
    let later = T0 + 10 * DAY + 101 * DAY;
    c.ok(later, 10, xfer(11, 100));
    // More than the free balance: the transfer itself unlocks what has vested.
    let spendable = c.spendable(addr(10), AssetId::TSR);
    c.ok(later, 10, xfer(30, spendable + 800 - FEE));
    assert_eq!(c.state.account(&addr(10)).unwrap().locks, vec![]);
}

#[test]
fn revocable_grant_freezes_what_has_vested() {
    let mut c = Chain::new();
    let schedule =
        Schedule::Monthly { start_ms: T0, tge_bps: 0, cliff_months: 12, months: 48, cliff: CliffKind::CatchUp };
    c.ok(
        T0,
        ISSUER,
        Action::CreateGrant {
            beneficiary: addr(30),
            asset: AssetId::TSR,
            amount: Amount(4_800),
            schedule,
            revocable: true,
        },
    );
    let at = |months| ledger::vesting::add_months(T0, months);
    assert_eq!(c.spendable(addr(30), AssetId::TSR), 10_000);
    c.ok(at(12), 30, Action::ReleaseVested { grant: 1 });
    assert_eq!(c.spendable(addr(30), AssetId::TSR), 10_000 - FEE + 1_200);
    assert_eq!(c.one(at(13), 30, Action::RevokeGrant { grant: 1 }), Outcome::Rejected(RejectCode::NotGrantor));
    let issuer_before = c.balance(addr(ISSUER), AssetId::TSR);
    c.ok(at(24), ISSUER, Action::RevokeGrant { grant: 1 });
    // Half vested at month 24: 2,400 stays with the beneficiary (all unlocked), 2,400 returns.
    assert_eq!(c.balance(addr(30), AssetId::TSR), 10_000 - 2 * FEE + 2_400);
    assert_eq!(c.spendable(addr(30), AssetId::TSR), 10_000 - 2 * FEE + 2_400);
    assert_eq!(c.balance(addr(ISSUER), AssetId::TSR), issuer_before - FEE + 2_400);
    assert_eq!(
        c.one(at(30), ISSUER, Action::RevokeGrant { grant: 1 }),
        Outcome::Rejected(RejectCode::GrantNotRevocable)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Σ tokens ≤ offered; Σ paid + Σ refunds = Σ committed; no entity above its cap;
    /// supply of both assets conserved (checked in every block by `Chain::block`).
    #[test]
    fn settlement_conserves_money_and_never_oversells(
        supply in 1u128..5_000,
        price in 1u128..7,
        water in any::<bool>(),
        amounts in prop::collection::vec(1u128..4_000, 1..12),
    ) {
        let mut c = Chain::new();
        let fill = if water { Fill::WaterFill } else { Fill::ProRata };
        let mut t = tranche("p", supply, fixed(price, fill));
        t.max_per_entity = Amount(3_000);
        c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![t]) });
        let mut committed = 0u128;
        for (k, amount) in amounts.iter().enumerate() {
            let i = 10 + k as u8;
            c.verify_investor(i, |_| {});
            let out = c.one(OPEN, i, commit(1, 0, *amount));
            if *amount > 3_000 {
                prop_assert_eq!(out, Outcome::Rejected(RejectCode::AboveEntityMax));
            } else {
                prop_assert_eq!(out, Outcome::Success);
                committed += amount;
            }
        }
        c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
        let s = c.tranche(1, 0).settlement.unwrap();
        prop_assert!(s.tokens_sold.0 <= supply);
        prop_assert_eq!(s.proceeds.0 + s.refunds.0, committed);
        let (mut tokens, mut paid) = (0u128, 0u128);
        for (k, _) in amounts.iter().enumerate() {
            let i = 10 + k as u8;
            let (usd0, tsr0) = (c.balance(addr(i), usd()), c.balance(addr(i), AssetId::TSR));
            let out = c.one(AFTER, i, claim(1, 0, i));
            if out == Outcome::Success {
                tokens += c.balance(addr(i), AssetId::TSR) + FEE - tsr0;
                paid += usd0 - c.balance(addr(i), usd());
                prop_assert_eq!(c.spendable(addr(i), usd()), c.balance(addr(i), usd()), "no escrow left");
            }
        }
        prop_assert_eq!(tokens, s.tokens_sold.0);
        prop_assert_eq!(paid, s.proceeds.0);
    }
}

#[derive(Clone, Copy, Debug)]
enum Recipient {
    NonUs,
    Us,
    Unverified,
    Sanctioned,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// No transfer a restriction forbids ever succeeds, and a lot's released amount never
    /// passes what has vested: a Reg S buyer with a vesting lot tries random transfers to
    /// random kinds of recipient at random times.
    #[test]
    fn restrictions_hold_and_releases_never_pass_vesting(
        steps in prop::collection::vec((0u64..20 * DAY, 0usize..4, 1u128..700), 1..25),
    ) {
        let mut c = Chain::new();
        let mut t = tranche("Reg S", 1_000, fixed(1, Fill::ProRata));
        t.exemption = Exemption::RegS { dcp_ms: 40 * DAY };
        t.eligibility.us_persons = UsPersons::Excluded;
        let schedule = Schedule::Continuous {
            start_ms: T0 + 10 * DAY,
            tge_bps: 0,
            cliff_ms: 30 * DAY,
            duration_ms: 90 * DAY,
            cliff: CliffKind::CatchUp,
        };
        t.lot = LotRule { schedule: Some(schedule.clone()), resale: Resale::NonUsOnlyDuringDcp };
        c.ok(T0, ISSUER, Action::CreateOffering { config: offering(vec![t]) });
        c.verify_investor(10, |_| {});
        c.verify_investor(11, |_| {});
        c.verify_investor(12, |a| { a.jurisdiction = Region::new("US").unwrap(); a.us_person = true; });
        c.verify_investor(13, |a| a.screening = Screening::Hit);
        c.ok(OPEN, 10, commit(1, 0, 1_000));
        c.ok(AFTER, ISSUER, Action::FinalizeOffering { offering: 1 });
        c.ok(AFTER, 10, claim(1, 0, 10));
        let mut now = AFTER;
        for (dt, kind, amount) in steps {
            now += dt;
            let kind = [Recipient::NonUs, Recipient::Us, Recipient::Unverified, Recipient::Sanctioned][kind];
            let to = match kind { Recipient::NonUs => 11, Recipient::Us => 12, Recipient::Unverified => 30, Recipient::Sanctioned => 13 };
            let before = c.balance(addr(10), AssetId::TSR);
            let out = c.one(now, 10, Action::Transfer { to: addr(to), asset: AssetId::TSR, amount: Amount(amount) });
            let in_dcp = now < T0 + 10 * DAY + 40 * DAY;
            let vested = ledger::vesting::vested(&schedule, Amount(1_000), now).0;
            match out {
                Outcome::Success => {
                    prop_assert!(!matches!(kind, Recipient::Sanctioned), "sent to a sanctioned party");
                    prop_assert!(!in_dcp || matches!(kind, Recipient::NonUs), "DCP breached: {kind:?}");
                    // Whatever left, the unvested part of the lot is still locked.
                    prop_assert!(c.state.account(&addr(10)).unwrap().locked(AssetId::TSR).0 >= 1_000 - vested);
                    prop_assert_eq!(c.balance(addr(10), AssetId::TSR), before - FEE - amount);
                }
                Outcome::Rejected(code) => {
                    prop_assert!(matches!(code, RejectCode::SanctionedParty | RejectCode::RecipientIneligible | RejectCode::Locked | RejectCode::InsufficientFunds), "{code:?}");
                    prop_assert_eq!(c.balance(addr(10), AssetId::TSR), before - FEE);
                    // `locked` only when the balance would have covered it; otherwise it is a lack of funds.
                    if code == RejectCode::Locked {
                        prop_assert!(before - FEE >= amount);
                    }
                    if code == RejectCode::InsufficientFunds {
                        prop_assert!(before - FEE < amount);
                    }
                }
            }
            // The lock always covers exactly what has not been released, and released ≤ vested.
            if let Some(Object::Grant(g)) = c.state.object(&ObjKey::Grant(1)) {
                prop_assert!(g.released.0 <= vested, "released {} > vested {vested}", g.released.0);
                let lock = c.state.account(&addr(10)).unwrap().locks.iter().find(|l| l.reference == 1).map_or(0, |l| l.amount.0);
                prop_assert_eq!(lock, g.total.0 - g.released.0);
            }
        }
    }
}
