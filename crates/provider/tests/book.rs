//! The provider's payment book: every bad voucher refused with its own code and status,
//! the credit rule (at most one call's worst case unpaid), concurrency on one channel,
//! durability across a restart, and claims that never pay twice.

use crypto::SigningKey;
use primitives::{Address, Amount};
use proptest::prelude::*;
use provider::{Book, ChannelInfo, PayError, VoucherHeader, VoucherStore};
use std::sync::Arc;

const CHAIN: &str = "test-chain";

fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i; 32])
}

fn me() -> Address {
    key(1).address()
}

fn info(id: u64, nonce: u64, escrowed: u128, claimed: u128) -> ChannelInfo {
    ChannelInfo {
        id,
        recipient: me(),
        signer: key(2).address(),
        nonce,
        escrowed: Amount(escrowed),
        claimed: Amount(claimed),
        expiry_height: 1_000,
    }
}

fn book(dir: &std::path::Path) -> Book {
    let b = Book::new(CHAIN, me(), 10, VoucherStore::open(dir).unwrap());
    b.set_height(100);
    b
}

fn v(channel: u64, nonce: u64, amount: u128) -> VoucherHeader {
    provider::sign_voucher(&key(2), CHAIN, channel, nonce, Amount(amount))
}

#[test]
fn bad_vouchers_each_have_their_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = book(dir.path());
    b.update_channel(info(1, 0, 1_000, 0)).unwrap().wait().unwrap();
    let mut other = info(2, 0, 1_000, 0);
    other.recipient = key(9).address();
    b.update_channel(other).unwrap().wait().unwrap();
    let mut expiring = info(3, 0, 1_000, 0);
    expiring.expiry_height = 105;
    b.update_channel(expiring).unwrap().wait().unwrap();

    let err = |r: Result<provider::Ticket, PayError>| r.err().unwrap();
    let wrong_signer = provider::sign_voucher(&key(7), CHAIN, 1, 0, Amount(10));
    assert!(matches!(err(b.admit(&wrong_signer, Amount(10))), PayError::BadSignature { .. }));
    let wrong_chain = provider::sign_voucher(&key(2), "other", 1, 0, Amount(10));
    assert_eq!(err(b.admit(&wrong_chain, Amount(10))).status(), 401);
    assert!(matches!(err(b.admit(&v(1, 1, 10), Amount(10))), PayError::StaleNonce { expected: 0, got: 1 }));
    assert!(matches!(err(b.admit(&v(9, 0, 10), Amount(10))), PayError::UnknownChannel(9)));
    assert!(matches!(err(b.admit(&v(2, 0, 10), Amount(10))), PayError::WrongRecipient(2)));
    assert!(matches!(err(b.admit(&v(3, 0, 10), Amount(10))), PayError::Expiring { .. }));
    assert!(matches!(err(b.admit(&v(1, 0, 0), Amount(1_001))), PayError::ExceedsEscrow { .. }));

    // Post-paid: the first call needs no prepayment; the second must pay for the first.
    let t = b.admit(&v(1, 0, 0), Amount(100)).unwrap();
    let s = b.settle(t, Amount(40)).unwrap();
    assert_eq!((s.cost, s.owed, s.remaining), (Amount(40), Amount(40), Amount(960)));
    let e = err(b.admit(&v(1, 0, 39), Amount(100)));
    assert!(matches!(e, PayError::Insufficient { required: Amount(40), .. }), "{e:?}");
    assert_eq!((e.status(), e.code()), (402, "insufficient_voucher"));
    let t = b.admit(&v(1, 0, 40), Amount(100)).unwrap();
    b.settle(t, Amount(60)).unwrap();
    // Lower than an accepted voucher but covering what is due (concurrent calls arrive in
    // any order): accepted, and the best voucher is the one kept.
    let t = b.admit(&v(1, 0, 150), Amount(10)).unwrap();
    b.settle(t, Amount(0)).unwrap();
    let t = b.admit(&v(1, 0, 120), Amount(10)).unwrap();
    b.settle(t, Amount(0)).unwrap();
    assert_eq!(b.claimable()[0].claim.voucher_amount, Amount(150));
    assert!(matches!(err(b.admit(&v(1, 0, 99), Amount(10))), PayError::Insufficient { .. }));
}

#[test]
fn claims_take_what_is_owed_and_never_twice_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let b = book(dir.path());
        b.update_channel(info(1, 0, 1_000, 0)).unwrap().wait().unwrap();
        let t = b.admit(&v(1, 0, 0), Amount(100)).unwrap();
        b.settle(t, Amount(70)).unwrap();
        let t = b.admit(&v(1, 0, 100), Amount(100)).unwrap(); // over-signed voucher
        b.settle(t, Amount(20)).unwrap();
        let c = b.claimable();
        assert_eq!(c.len(), 1);
        // It takes exactly what was billed (90), not the voucher's 100.
        assert_eq!((c[0].claim.amount, c[0].claim.voucher_amount, c[0].nonce), (Amount(90), Amount(100), 0));
        b.claims_submitted(&c).unwrap().wait().unwrap();
        assert!(b.claimable().is_empty(), "a claim in flight is not built again");
    } // crash: the claim was submitted, the provider dies before seeing it land
    let b = book(dir.path());
    // Restart: the chain now shows the claim landed (nonce 1, 90 claimed).
    b.update_channel(info(1, 1, 910, 90)).unwrap().wait().unwrap();
    assert!(b.claimable().is_empty(), "nothing claimed twice");
    let s = b.summary();
    assert_eq!(s[0], (1, Amount(90), Amount(90), Amount(0), Amount(0)));
    // Vouchers restart at nonce 1; old-nonce vouchers are stale.
    assert!(matches!(b.admit(&v(1, 0, 200), Amount(10)), Err(PayError::StaleNonce { .. })));
    let t = b.admit(&v(1, 1, 0), Amount(50)).unwrap();
    b.settle(t, Amount(30)).unwrap();
    drop(b);
    // A restart without any claim: billed and the best voucher survive.
    let b = book(dir.path());
    b.update_channel(info(1, 1, 910, 90)).unwrap().wait().unwrap();
    assert_eq!(b.summary()[0], (1, Amount(120), Amount(90), Amount(30), Amount(0)));
    let t = b.admit(&v(1, 1, 30), Amount(10)).unwrap();
    b.settle(t, Amount(10)).unwrap();
}

#[test]
fn many_concurrent_calls_on_one_channel() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(book(dir.path()));
    b.update_channel(info(1, 0, 1_000_000, 0)).unwrap().wait().unwrap();
    // A generous voucher (the client pre-authorises) lets 8 threads run calls in parallel.
    let voucher = v(1, 0, 1_000_000);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (b, voucher) = (b.clone(), voucher.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let t = b.admit(&voucher, Amount(100)).unwrap();
                    b.settle(t, Amount(7)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(b.summary()[0], (1, Amount(8 * 50 * 7), Amount(0), Amount(2_800), Amount(0)));
}

#[derive(Clone, Debug)]
enum Op {
    /// Admit a call with this worst case, signing owed + in-flight + `extra`.
    Admit { worst: u128, extra: u128, short: bool },
    /// Settle the oldest call in flight at this fraction (percent) of its worst case.
    Settle(u128),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the order of admissions and settlements, what is owed never exceeds the
    /// best voucher by more than the worst case of one call, and billing never passes
    /// the escrow.
    #[test]
    fn at_most_one_worst_case_is_ever_on_credit(ops in prop::collection::vec(prop_oneof![
        (1u128..500, 0u128..50, any::<bool>()).prop_map(|(worst, extra, short)| Op::Admit { worst, extra, short }),
        (0u128..=100).prop_map(Op::Settle),
    ], 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let b = book(dir.path());
        let escrow = 10_000u128;
        b.update_channel(info(1, 0, escrow, 0)).unwrap().wait().unwrap();
        let mut in_flight: std::collections::VecDeque<provider::Ticket> = Default::default();
        let (mut best, mut max_worst) = (0u128, 0u128);
        for op in ops {
            match op {
                Op::Admit { worst, extra, short } => {
                    let s = b.summary()[0];
                    let due = s.3.0 + s.4.0;
                    let amount = if short { due.saturating_sub(1) } else { due + extra };
                    match b.admit(&v(1, 0, amount), Amount(worst)) {
                        Ok(t) => {
                            prop_assert!(amount >= due, "admitted a voucher below what is due");
                            best = best.max(amount);
                            max_worst = max_worst.max(worst);
                            in_flight.push_back(t);
                        }
                        Err(PayError::Insufficient { .. }) => prop_assert!(amount < due),
                        Err(PayError::ExceedsEscrow { .. }) => prop_assert!(due + worst > escrow),
                        Err(e) => prop_assert!(false, "unexpected {e:?}"),
                    }
                }
                Op::Settle(pct) => {
                    if let Some(t) = in_flight.pop_front() {
                        let cost = t.worst.0 * pct / 100;
                        b.settle(t, Amount(cost)).unwrap();
                    }
                }
            }
            let s = b.summary()[0];
            prop_assert!(s.3.0 <= best + max_worst, "owed {} > best {best} + one worst case {max_worst}", s.3.0);
            prop_assert!(s.3.0 + s.4.0 <= escrow, "billed and reserved pass the escrow");
        }
        while let Some(t) = in_flight.pop_front() {
            b.settle(t, Amount(0)).unwrap();
        }
    }
}
