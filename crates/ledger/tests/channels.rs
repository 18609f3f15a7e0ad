//! Provider registry and payment channels on the ledger: every rule's rejection code, the
//! voucher's replay protection, partial and multi-channel claims, send-back, reclaim after
//! expiry, and the conservation property per channel.

mod common;
use common::*;

use ledger::channels::PROVIDER_UNBONDING_MS;
use ledger::objects::{ChannelRecord, ObjKey, Object};
use ledger::LockKind;
use primitives::channel::{ChannelClaim, ModelOffer, ProviderInfo, Voucher};
use primitives::{Action, Amount, AssetId, Outcome, RejectCode};
use proptest::prelude::*;

const SENDER: u8 = 10;
const PROVIDER: u8 = 11;
const OTHER: u8 = 12;

fn info(endpoint: &str) -> ProviderInfo {
    ProviderInfo {
        endpoint: endpoint.into(),
        models: vec![ModelOffer {
            model: "SmolLM2-135M-Instruct".into(),
            input_price_per_mtok: Amount(100),
            output_price_per_mtok: Amount(400),
        }],
    }
}

fn channel(c: &Chain, id: u64) -> ChannelRecord {
    match c.state.object(&ObjKey::Channel(id)) {
        Some(Object::Channel(ch)) => ch.clone(),
        other => panic!("no channel {id}: {other:?}"),
    }
}

/// A voucher for `amount` signed by key `signer` at `nonce`.
fn voucher(signer: u8, chain: &str, id: u64, nonce: u64, amount: u128) -> ChannelClaim {
    let v = Voucher { chain_id: chain.into(), channel: id, nonce, amount: Amount(amount) };
    ChannelClaim {
        channel: id,
        voucher_amount: Amount(amount),
        signature: key(signer).sign_digest(&v.signing_hash()),
        amount: Amount(amount),
        send_back: false,
    }
}

fn claim(claims: Vec<ChannelClaim>) -> Action {
    Action::ClaimChannels { claims }
}

fn open(amount: u128, expiry_height: u64) -> Action {
    Action::OpenChannel { recipient: addr(PROVIDER), voucher_signer: None, amount: Amount(amount), expiry_height }
}

#[test]
fn provider_registration_stake_and_unbonding() {
    let mut c = Chain::new();
    let reg = |stake| Action::RegisterProvider { info: info("http://127.0.0.1:8700"), stake: Amount(stake) };
    c.ok(T0, PROVIDER, reg(5_000));
    let acct = c.state.account(&addr(PROVIDER)).unwrap().clone();
    assert_eq!(acct.locked(AssetId::TSR), Amount(5_000));
    assert_eq!(c.one(T0, PROVIDER, reg(1)), Outcome::Rejected(RejectCode::ProviderExists));
    assert_eq!(c.one(T0, OTHER, reg(1_000_000)), Outcome::Rejected(RejectCode::InsufficientFunds));
    let upd = Action::UpdateProvider { info: info("https://provider.example/v1"), add_stake: Amount(1_000) };
    assert_eq!(c.one(T0, OTHER, upd.clone()), Outcome::Rejected(RejectCode::NotProvider));
    c.ok(T0, PROVIDER, upd.clone());
    match c.state.object(&ObjKey::Provider(addr(PROVIDER))) {
        Some(Object::Provider(p)) => {
            assert_eq!(p.stake, Amount(6_000));
            assert_eq!(p.info.endpoint, "https://provider.example/v1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.one(T0, PROVIDER, Action::WithdrawProviderStake), Outcome::Rejected(RejectCode::ProviderActive));
    c.ok(T0 + 1, PROVIDER, Action::DeregisterProvider);
    assert_eq!(c.one(T0 + 2, PROVIDER, upd), Outcome::Rejected(RejectCode::ProviderUnbonding));
    assert_eq!(c.one(T0 + 2, PROVIDER, Action::DeregisterProvider), Outcome::Rejected(RejectCode::ProviderUnbonding));
    assert_eq!(
        c.one(T0 + PROVIDER_UNBONDING_MS, PROVIDER, Action::WithdrawProviderStake),
        Outcome::Rejected(RejectCode::UnbondingNotOver)
    );
    c.ok(T0 + 1 + PROVIDER_UNBONDING_MS, PROVIDER, Action::WithdrawProviderStake);
    assert_eq!(c.state.account(&addr(PROVIDER)).unwrap().locked(AssetId::TSR), Amount::ZERO);
    assert!(c.state.object(&ObjKey::Provider(addr(PROVIDER))).is_none());
}

#[test]
fn channel_lifecycle_with_every_rejection() {
    let mut c = Chain::new();
    let chain = "sale-test";
    let h = c.state.height.0;
    assert_eq!(c.one(T0, SENDER, open(1_000, h)), Outcome::Rejected(RejectCode::ExpiryNotLater));
    c.ok(T0, SENDER, open(1_000, h + 20));
    let ch = channel(&c, 1);
    assert_eq!((ch.escrowed, ch.nonce, ch.signer), (Amount(1_000), 0, addr(SENDER)));
    let sender_tsr = c.balance(addr(SENDER), AssetId::TSR);
    assert_eq!(c.spendable(addr(SENDER), AssetId::TSR), sender_tsr - 1_000, "escrow is a lock");

    // Only the sender funds and extends; expiry only moves later.
    let fund = Action::FundChannel { channel: 1, amount: Amount(500) };
    assert_eq!(c.one(T0, OTHER, fund.clone()), Outcome::Rejected(RejectCode::NotChannelSender));
    c.ok(T0, SENDER, fund);
    let ext = |e| Action::ExtendChannel { channel: 1, expiry_height: e };
    assert_eq!(c.one(T0, SENDER, ext(h + 20)), Outcome::Rejected(RejectCode::ExpiryNotLater));
    assert_eq!(c.one(T0, OTHER, ext(h + 30)), Outcome::Rejected(RejectCode::NotChannelSender));
    c.ok(T0, SENDER, ext(h + 30));

    // Bad vouchers: wrong signer, wrong chain, wrong nonce, someone else claiming, too much.
    let provider_tsr = c.balance(addr(PROVIDER), AssetId::TSR);
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(OTHER, chain, 1, 0, 300)])),
        Outcome::Rejected(RejectCode::BadVoucherSignature)
    );
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, "other-chain", 1, 0, 300)])),
        Outcome::Rejected(RejectCode::BadVoucherSignature)
    );
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, chain, 1, 1, 300)])),
        Outcome::Rejected(RejectCode::BadVoucherSignature)
    );
    assert_eq!(
        c.one(T0, OTHER, claim(vec![voucher(SENDER, chain, 1, 0, 300)])),
        Outcome::Rejected(RejectCode::NotChannelRecipient)
    );
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, chain, 1, 0, 1_501)])),
        Outcome::Rejected(RejectCode::VoucherExceedsEscrow)
    );
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, chain, 9, 0, 1)])),
        Outcome::Rejected(RejectCode::UnknownChannel)
    );
    assert_eq!(c.balance(addr(PROVIDER), AssetId::TSR), provider_tsr - 5 * FEE, "rejections move nothing");

    // A partial claim of a 300 voucher: 200 now; the nonce moves, so the same voucher is void.
    let mut partial = voucher(SENDER, chain, 1, 0, 300);
    partial.amount = Amount(200);
    c.ok(T0, PROVIDER, claim(vec![partial.clone()]));
    assert_eq!(c.balance(addr(PROVIDER), AssetId::TSR), provider_tsr - 6 * FEE + 200);
    let ch = channel(&c, 1);
    assert_eq!((ch.escrowed, ch.claimed, ch.nonce), (Amount(1_300), Amount(200), 1));
    assert_eq!(c.one(T0, PROVIDER, claim(vec![partial])), Outcome::Rejected(RejectCode::BadVoucherSignature), "replay");

    // Two channels in one claim, one of them sending the rest back.
    c.ok(T0, SENDER, open(400, h + 40));
    let mut back = voucher(SENDER, chain, 2, 0, 100);
    back.send_back = true;
    c.ok(T0, PROVIDER, claim(vec![voucher(SENDER, chain, 1, 1, 50), back]));
    let (ch1, ch2) = (channel(&c, 1), channel(&c, 2));
    assert_eq!((ch1.escrowed, ch1.claimed, ch1.nonce), (Amount(1_250), Amount(250), 2));
    assert_eq!((ch2.escrowed, ch2.claimed, ch2.reclaimed), (Amount(0), Amount(100), Amount(300)));
    // All or nothing: one bad claim voids the batch.
    let before = channel(&c, 1);
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, chain, 1, 2, 10), voucher(OTHER, chain, 2, 1, 1)])),
        Outcome::Rejected(RejectCode::BadVoucherSignature)
    );
    assert_eq!(channel(&c, 1), before);

    // Reclaim: only after expiry, only the sender, only once.
    assert_eq!(
        c.one(T0, SENDER, Action::ReclaimChannel { channel: 1 }),
        Outcome::Rejected(RejectCode::ChannelNotExpired)
    );
    while c.state.height.0 < h + 30 {
        c.ok(T0, OTHER, Action::Transfer { to: addr(OTHER), asset: AssetId::TSR, amount: Amount(1) });
    }
    assert_eq!(
        c.one(T0, OTHER, Action::ReclaimChannel { channel: 1 }),
        Outcome::Rejected(RejectCode::NotChannelSender)
    );
    let sender_before = c.balance(addr(SENDER), AssetId::TSR);
    c.ok(T0, SENDER, Action::ReclaimChannel { channel: 1 });
    assert_eq!(c.balance(addr(SENDER), AssetId::TSR), sender_before - FEE);
    assert_eq!(c.spendable(addr(SENDER), AssetId::TSR), sender_before - FEE, "nothing locked any more");
    assert_eq!(c.one(T0, SENDER, Action::ReclaimChannel { channel: 1 }), Outcome::Rejected(RejectCode::ChannelEmpty));
    let ch = channel(&c, 1);
    assert_eq!(ch.deposited.0, ch.claimed.0 + ch.reclaimed.0 + ch.escrowed.0);
    assert_eq!((ch.claimed, ch.reclaimed, ch.nonce), (Amount(250), Amount(1_250), 3));
}

#[test]
fn a_separate_voucher_key_signs_for_the_sender() {
    let mut c = Chain::new();
    let h = c.state.height.0;
    let opened = Action::OpenChannel {
        recipient: addr(PROVIDER),
        voucher_signer: Some(addr(OTHER)),
        amount: Amount(100),
        expiry_height: h + 5,
    };
    c.ok(T0, SENDER, opened);
    assert_eq!(
        c.one(T0, PROVIDER, claim(vec![voucher(SENDER, "sale-test", 1, 0, 10)])),
        Outcome::Rejected(RejectCode::BadVoucherSignature)
    );
    c.ok(T0, PROVIDER, claim(vec![voucher(OTHER, "sale-test", 1, 0, 10)]));
}

#[derive(Clone, Debug)]
enum Op {
    Open(u128, u64),
    Fund(u64, u128),
    Claim(u64, u128, u128, bool),
    Extend(u64, u64),
    Reclaim(u64),
    Tick,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u128..2_000, 1u64..20).prop_map(|(a, e)| Op::Open(a, e)),
        (1u64..4, 1u128..1_000).prop_map(|(c, a)| Op::Fund(c, a)),
        (1u64..4, 0u128..2_000, 0u128..100, any::<bool>()).prop_map(|(c, v, less, b)| Op::Claim(c, v, less, b)),
        (1u64..4, 1u64..30).prop_map(|(c, e)| Op::Extend(c, e)),
        (1u64..4).prop_map(Op::Reclaim),
        Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Per channel: claimed + reclaimed + still escrowed = everything ever deposited, the
    /// sender's lock equals what is escrowed, and claims never exceed the escrow. Supply
    /// is conserved in every block (checked by `Chain::block`).
    #[test]
    fn channel_money_is_conserved(ops in prop::collection::vec(arb_op(), 1..40)) {
        let mut c = Chain::new();
        // Enough TSR that 40 opens and top-ups never leave the sender unable to pay a fee.
        c.ok(T0, ISSUER, Action::Transfer { to: addr(SENDER), asset: AssetId::TSR, amount: Amount(200_000) });
        let mut deposits: std::collections::BTreeMap<u64, u128> = Default::default();
        for op in ops {
            let h = c.state.height.0;
            let nonce = |c: &Chain, id: u64| c.state.object(&ObjKey::Channel(id)).map_or(0, |o| match o { Object::Channel(ch) => ch.nonce, _ => 0 });
            let (signer, action) = match op {
                Op::Open(a, e) => (SENDER, open(a, h + e)),
                Op::Fund(id, a) => (SENDER, Action::FundChannel { channel: id, amount: Amount(a) }),
                Op::Claim(id, v, less, back) => {
                    let mut cl = voucher(SENDER, "sale-test", id, nonce(&c, id), v);
                    cl.amount = Amount(v.saturating_sub(less));
                    cl.send_back = back;
                    (PROVIDER, claim(vec![cl]))
                }
                Op::Extend(id, e) => (SENDER, Action::ExtendChannel { channel: id, expiry_height: h + e }),
                Op::Reclaim(id) => (SENDER, Action::ReclaimChannel { channel: id }),
                Op::Tick => (OTHER, Action::Transfer { to: addr(OTHER), asset: AssetId::TSR, amount: Amount(1) }),
            };
            let out = c.one(T0, signer, action.clone());
            if out == Outcome::Success {
                match action {
                    Action::OpenChannel { amount, .. } => {
                        let id = (1..).find(|i| !deposits.contains_key(i)).unwrap();
                        deposits.insert(id, amount.0);
                    }
                    Action::FundChannel { channel, amount } => *deposits.get_mut(&channel).unwrap() += amount.0,
                    _ => {}
                }
            }
            let sender = c.state.account(&addr(SENDER)).cloned().unwrap_or_default();
            for (id, dep) in &deposits {
                let ch = channel(&c, *id);
                prop_assert_eq!(ch.deposited.0, *dep);
                prop_assert_eq!(ch.claimed.0 + ch.reclaimed.0 + ch.escrowed.0, *dep);
                let lock = sender.locks.iter().find(|l| l.kind == LockKind::ChannelEscrow && l.reference == *id).map_or(0, |l| l.amount.0);
                prop_assert_eq!(lock, ch.escrowed.0);
            }
        }
    }
}
