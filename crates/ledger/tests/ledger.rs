//! Ledger behaviour: every action's outcomes, rejection semantics, determinism of
//! propose/verify, and invariants under random workloads.

use crypto::SigningKey;
use ledger::{propose, verify, BlockContext, Genesis, GenesisAsset, GenesisBalance, Inadmissible, Signatures, State};
use primitives::{Action, Address, Amount, AssetId, Outcome, RejectCode, Role, SignedTransaction, Transaction};
use proptest::prelude::*;

const FEE: u128 = 10;

fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i + 1; 32])
}

fn usd() -> AssetId {
    AssetId::new("USD").unwrap()
}

/// Issuer = key 0 (also treasury); keys 1..=3 hold TSR; key 1 also issues USD (max 1000).
fn genesis() -> State {
    let mut balances: Vec<GenesisBalance> = (0..4)
        .map(|i| GenesisBalance { address: key(i).address(), asset: AssetId::TSR, amount_base_units: Amount(1_000) })
        .collect();
    balances.push(GenesisBalance { address: key(1).address(), asset: usd(), amount_base_units: Amount(100) });
    Genesis {
        chain_id: "test".into(),
        genesis_time_ms: 1_000,
        fee_base_units: Amount(FEE),
        block_interval_ms: 100,
        issuer: key(0).address(),
        roles: Default::default(),
        assets: vec![
            GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None },
            GenesisAsset {
                symbol: usd(),
                decimals: 6,
                max_supply_base_units: Some(Amount(1_000)),
                issuer: Some(key(1).address()),
            },
        ],
        balances,
        incentives: None,
        validators: Vec::new(),
    }
    .to_state()
    .unwrap()
}

fn signed(state_nonce: u64, signer: u8, action: Action) -> SignedTransaction {
    let k = key(signer);
    k.sign_tx(Transaction {
        chain_id: "test".into(),
        signer: k.address(),
        nonce: state_nonce,
        fee: Amount(FEE),
        expiry_height: None,
        action,
    })
}

fn ctx(state: &State) -> BlockContext {
    BlockContext {
        height: state.height.next(),
        parent_hash: state.last_block_hash,
        timestamp_ms: state.last_timestamp_ms + 100,
        proposer: key(0).address(),
    }
}

/// Proposes a block of `txs` on `state`, verifies it independently, commits it, checks
/// every invariant, and returns the receipts' outcomes and the dropped reasons.
fn run_block(state: &mut State, txs: Vec<SignedTransaction>) -> (Vec<Outcome>, Vec<Inadmissible>) {
    let candidates = txs.into_iter().map(|t| (t.id(), t));
    let executed = propose(state, ctx(state), candidates, 10_000);
    let verified = verify(state, &executed.block, Signatures::Check).expect("own block verifies");
    assert_eq!(verified.lthash, executed.lthash);
    assert_eq!(verified.receipts, executed.receipts);
    state.commit(&executed);
    state.check_invariants().unwrap();
    assert_eq!(state.state_root(), executed.block.header.state_root);
    (executed.receipts.iter().map(|r| r.outcome).collect(), executed.dropped.into_iter().map(|d| d.2).collect())
}

fn check(signer: u8, action: Action, expected: Outcome) {
    let mut state = genesis();
    let before = state.clone();
    let (outcomes, dropped) = run_block(&mut state, vec![signed(0, signer, action.clone())]);
    assert!(dropped.is_empty(), "{action:?} dropped: {dropped:?}");
    assert_eq!(outcomes, vec![expected], "{action:?}");
    let signer_addr = key(signer).address();
    let treasury = key(0).address();
    if let Outcome::Rejected(_) = expected {
        // Nothing but fee and nonce changed.
        for (addr, acct) in &state.accounts {
            let old = before.accounts.get(addr).cloned().unwrap_or_default();
            let mut expect = old.clone();
            if *addr == signer_addr {
                expect.nonce += 1;
                expect.debit(AssetId::TSR, Amount(FEE)).unwrap();
            }
            if *addr == treasury {
                expect.credit(AssetId::TSR, Amount(FEE)).unwrap();
            }
            assert_eq!(acct, &expect, "{action:?} changed {addr}");
        }
        assert_eq!(state.assets, before.assets);
        assert_eq!(state.roles, before.roles);
    }
}

#[test]
fn actions_and_rejection_codes() {
    use Outcome::*;
    use RejectCode::*;
    let a = |i: u8| key(i).address();
    let stranger = Address([77; 32]);
    let tsr = AssetId::TSR;
    let xyz = AssetId::new("XYZ").unwrap();
    check(2, Action::Transfer { to: a(3), asset: tsr, amount: Amount(990) }, Success);
    check(2, Action::Transfer { to: a(3), asset: tsr, amount: Amount(991) }, Rejected(InsufficientFunds));
    check(2, Action::Transfer { to: stranger, asset: tsr, amount: Amount(5) }, Success);
    check(2, Action::Transfer { to: a(2), asset: tsr, amount: Amount(990) }, Success);
    check(2, Action::Transfer { to: a(3), asset: usd(), amount: Amount(1) }, Rejected(InsufficientFunds));
    check(2, Action::Transfer { to: a(3), asset: xyz, amount: Amount(1) }, Rejected(UnknownAsset));
    check(1, Action::Mint { asset: usd(), to: a(2), amount: Amount(900) }, Success);
    check(1, Action::Mint { asset: usd(), to: a(2), amount: Amount(901) }, Rejected(MaxSupplyExceeded));
    check(2, Action::Mint { asset: usd(), to: a(2), amount: Amount(1) }, Rejected(NotAssetIssuer));
    check(0, Action::Mint { asset: tsr, to: a(2), amount: Amount(u128::MAX) }, Rejected(AmountOverflow));
    check(0, Action::Mint { asset: tsr, to: a(2), amount: Amount(5) }, Success);
    check(1, Action::Burn { asset: usd(), amount: Amount(100) }, Success);
    check(1, Action::Burn { asset: usd(), amount: Amount(101) }, Rejected(InsufficientFunds));
    check(2, Action::Burn { asset: usd(), amount: Amount(1) }, Rejected(NotAssetIssuer));
    check(2, Action::CreateAsset { symbol: xyz, decimals: 2, max_supply: None }, Success);
    check(2, Action::CreateAsset { symbol: usd(), decimals: 2, max_supply: None }, Rejected(AssetExists));
    check(0, Action::SetRole { role: Role::Treasury, address: a(3) }, Success);
    check(1, Action::SetRole { role: Role::Compliance, address: a(1) }, Rejected(NotGenesisIssuer));
}

#[test]
fn fees_go_to_the_treasury_the_issuer_appoints() {
    let mut state = genesis();
    run_block(&mut state, vec![signed(0, 0, Action::SetRole { role: Role::Treasury, address: key(3).address() })]);
    run_block(
        &mut state,
        vec![signed(0, 2, Action::Transfer { to: key(1).address(), asset: AssetId::TSR, amount: Amount(1) })],
    );
    assert_eq!(state.roles.treasury, key(3).address());
    assert_eq!(state.account(&key(3).address()).unwrap().balance(AssetId::TSR), Amount(1_000 + FEE));
}

#[test]
fn inadmissible_transactions_are_dropped_and_change_nothing() {
    let mut state = genesis();
    let before = state.clone();
    let t = |to: u8| Action::Transfer { to: key(to).address(), asset: AssetId::TSR, amount: Amount(1) };
    let mut wrong_chain = signed(0, 2, t(3));
    wrong_chain.tx.chain_id = "other".into();
    let mut low_fee = signed(0, 2, t(3));
    low_fee.tx.fee = Amount(FEE - 1);
    let mut expired = signed(0, 2, t(3));
    expired.tx.expiry_height = Some(0);
    let mut poor = key(9).sign_tx(Transaction {
        chain_id: "test".into(),
        signer: key(9).address(),
        nonce: 0,
        fee: Amount(FEE),
        expiry_height: None,
        action: t(3),
    });
    poor.tx.expiry_height = None;
    let (outcomes, dropped) = run_block(&mut state, vec![wrong_chain, low_fee, expired, signed(1, 2, t(3)), poor]);
    assert!(outcomes.is_empty());
    let codes: Vec<&str> = dropped.iter().map(|d| d.code()).collect();
    assert_eq!(codes, vec!["wrong_chain", "fee_too_low", "expired", "nonce_too_high", "insufficient_fee_balance"]);
    assert_eq!(state.accounts, before.accounts);
    assert_eq!(state.state_root(), before.state_root());
    // And a replay of an included transaction is dropped as nonce_too_low.
    let tx = signed(0, 2, t(3));
    run_block(&mut state, vec![tx.clone()]);
    let (_, dropped) = run_block(&mut state, vec![tx]);
    assert_eq!(dropped[0].code(), "nonce_too_low");
}

#[test]
fn verify_rejects_tampered_blocks() {
    let state = genesis();
    let tx = signed(0, 2, Action::Transfer { to: key(3).address(), asset: AssetId::TSR, amount: Amount(5) });
    let executed = propose(&state, ctx(&state), [(tx.id(), tx)], 100);
    let mut bad_root = executed.block.clone();
    bad_root.header.state_root = primitives::Hash([1; 32]);
    assert!(matches!(
        verify(&state, &bad_root, Signatures::Check),
        Err(ledger::BlockError::RootMismatch { what: "state", .. })
    ));
    let mut bad_sig = executed.block.clone();
    bad_sig.txs[0].signature.0[5] ^= 1;
    assert!(matches!(verify(&state, &bad_sig, Signatures::Check), Err(ledger::BlockError::BadSignature { index: 0 })));
    let mut bad_height = executed.block.clone();
    bad_height.header.height = primitives::Height(5);
    assert!(matches!(verify(&state, &bad_height, Signatures::Check), Err(ledger::BlockError::WrongHeight { .. })));
    let mut extra = executed.block.clone();
    extra.txs.push(extra.txs[0].clone());
    assert!(matches!(
        verify(&state, &extra, Signatures::Check),
        Err(ledger::BlockError::Inadmissible { index: 1, .. })
    ));
}

#[test]
fn verify_checks_exactly_the_signatures_not_marked_checked() {
    let state = genesis();
    let transfer = |from: u8, to: u8| {
        signed(0, from, Action::Transfer { to: key(to).address(), asset: AssetId::TSR, amount: Amount(5) })
    };
    let (a, b) = (transfer(1, 3), transfer(2, 3));
    let executed = propose(&state, ctx(&state), [(a.id(), a), (b.id(), b)], 100);
    assert_eq!(executed.block.txs.len(), 2);
    let mut bad = executed.block.clone();
    bad.txs[1].signature.0[7] ^= 1;
    let bad_sig = |r: Result<_, ledger::BlockError>| match r {
        Err(ledger::BlockError::BadSignature { index }) => Some(index),
        _ => None,
    };
    // Unmarked (or past the mask's end): checked, and the index is the block's.
    assert_eq!(bad_sig(verify(&state, &bad, Signatures::Unless(&[true, false]))), Some(1));
    assert_eq!(bad_sig(verify(&state, &bad, Signatures::Unless(&[true]))), Some(1));
    assert_eq!(bad_sig(verify(&state, &bad, Signatures::Unless(&[]))), Some(1));
    // Marked as already checked: trusted, as `AlreadyChecked` trusts all.
    assert!(verify(&state, &bad, Signatures::Unless(&[false, true])).is_ok());
    assert!(verify(&state, &executed.block, Signatures::Unless(&[false, false])).is_ok());
}

#[test]
fn locks_reduce_spendable_and_release() {
    use ledger::{Account, Lock, LockKind};
    let mut a = Account::default();
    a.credit(AssetId::TSR, Amount(100)).unwrap();
    let lock = Lock { kind: LockKind::Stake, reference: 1, asset: AssetId::TSR, amount: Amount(60) };
    a.add_lock(lock).unwrap();
    assert_eq!(a.spendable(AssetId::TSR), Amount(40));
    assert_eq!(a.debit(AssetId::TSR, Amount(41)), Err(RejectCode::InsufficientFunds));
    assert_eq!(a.add_lock(Lock { amount: Amount(41), ..lock }), Err(RejectCode::InsufficientFunds));
    a.debit(AssetId::TSR, Amount(40)).unwrap();
    assert_eq!(a.release_lock(LockKind::Stake, 1, AssetId::TSR, Amount(100)), Amount(60));
    assert_eq!(a.spendable(AssetId::TSR), Amount(60));
    assert!(a.locks.is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Transfer { from: u8, to: u8, asset: bool, amount: u128 },
    Mint { signer: u8, to: u8, amount: u128 },
    Burn { signer: u8, amount: u128 },
    Create { signer: u8 },
}

fn arb_op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![0u128..50, 0u128..2_000, Just(u128::MAX)];
    prop_oneof![
        4 => (0u8..5, 0u8..5, any::<bool>(), amount.clone()).prop_map(|(from, to, asset, amount)| Op::Transfer { from, to, asset, amount }),
        1 => (0u8..3, 0u8..5, amount.clone()).prop_map(|(signer, to, amount)| Op::Mint { signer, to, amount }),
        1 => (0u8..3, amount).prop_map(|(signer, amount)| Op::Burn { signer, amount }),
        1 => (0u8..5).prop_map(|signer| Op::Create { signer }),
    ]
}

fn op_tx(state: &State, pending: &mut [u64; 5], op: &Op) -> Option<SignedTransaction> {
    let (signer, action) = match *op {
        Op::Transfer { from, to, asset, amount } => (
            from,
            Action::Transfer {
                to: key(to).address(),
                asset: if asset { usd() } else { AssetId::TSR },
                amount: Amount(amount),
            },
        ),
        Op::Mint { signer, to, amount } => {
            (signer, Action::Mint { asset: usd(), to: key(to).address(), amount: Amount(amount) })
        }
        Op::Burn { signer, amount } => (signer, Action::Burn { asset: usd(), amount: Amount(amount) }),
        Op::Create { signer } => {
            (signer, Action::CreateAsset { symbol: AssetId::new("NEW").unwrap(), decimals: 0, max_supply: None })
        }
    };
    let tx = signed(state.nonce(&key(signer).address()) + pending[signer as usize], signer, action);
    if tx.tx.check_stateless().is_err() {
        return None;
    }
    pending[signer as usize] += 1;
    Some(tx)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Supply is conserved, no balance goes negative (u128 + checked), locks never exceed
    /// balances, every own block verifies to the same root, and replaying the blocks on a
    /// fresh genesis gives the same roots.
    #[test]
    fn invariants_hold_under_random_workloads(blocks in proptest::collection::vec(proptest::collection::vec(arb_op(), 0..8), 1..8)) {
        let mut state = genesis();
        let mut history = Vec::new();
        for ops in &blocks {
            let mut pending = [0u64; 5];
            let txs: Vec<_> = ops.iter().filter_map(|op| op_tx(&state, &mut pending, op)).collect();
            let candidates = txs.into_iter().map(|t| (t.id(), t));
            let executed = propose(&state, ctx(&state), candidates, 10_000);
            state.commit(&executed);
            state.check_invariants().map_err(TestCaseError::fail)?;
            history.push(executed.block);
        }
        let mut replica = genesis();
        for block in &history {
            let executed = verify(&replica, block, Signatures::Check).map_err(|e| TestCaseError::fail(e.to_string()))?;
            replica.commit(&executed);
        }
        prop_assert_eq!(replica.state_root(), state.state_root());
        prop_assert_eq!(&replica.accounts, &state.accounts);
    }

    /// A rejected action changes nothing but the signer's fee and nonce.
    #[test]
    fn rejected_actions_change_only_fee_and_nonce(op in arb_op()) {
        let mut state = genesis();
        let before = state.clone();
        let mut pending = [0u64; 5];
        let Some(tx) = op_tx(&state, &mut pending, &op) else { return Ok(()) };
        let signer = tx.tx.signer;
        let executed = propose(&state, ctx(&state), [(tx.id(), tx)], 10);
        state.commit(&executed);
        if let Some(Outcome::Rejected(_)) = executed.receipts.first().map(|r| r.outcome) {
            let mut expect = before.clone();
            let s = expect.accounts.get_mut(&signer).unwrap();
            s.nonce += 1;
            s.debit(AssetId::TSR, Amount(FEE)).unwrap();
            expect.accounts.get_mut(&key(0).address()).unwrap().credit(AssetId::TSR, Amount(FEE)).unwrap();
            prop_assert_eq!(&state.accounts, &expect.accounts);
            prop_assert_eq!(&state.assets, &expect.assets);
        }
    }
}
