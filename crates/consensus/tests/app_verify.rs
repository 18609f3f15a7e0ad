//! `App::verify` when the committed tip overtakes a proposal while it is being verified:
//! the other validators finalized it (or a sibling) first and this node's finalizer
//! committed it, so the proposal's parent has left the speculative cache. The verdict
//! must then be "is it the committed block", never a blanket `false` (a wrong `false`
//! withholds this validator's vote and, with one more slow validator, stalls the view
//! until its timeout).

use commonware_consensus::Application as _;
use commonware_consensus::marshal::ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::types::{Epoch, Round, View};
use commonware_cryptography::{Digested, Digestible as _, Signer as _, ed25519::PrivateKey};
use commonware_runtime::{Clock as _, Runner as _, Spawner as _, Supervisor as _, deterministic};
use consensus::app::App;
use consensus::{Envelope, LedgerHost};
use ledger::{Genesis, GenesisAsset, GenesisBalance};
use node::{Chain, ChainConfig};
use primitives::{Action, Address, Amount, AssetId, Block, SignedTransaction, Transaction};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const GENESIS_TIME_MS: u64 = 1_767_225_600_000;

fn genesis() -> Genesis {
    let holder = crypto::SigningKey::from_seed([7; 32]).address();
    Genesis {
        chain_id: "tessera-verify".into(),
        genesis_time_ms: GENESIS_TIME_MS,
        fee_base_units: Amount(10),
        block_interval_ms: 100,
        issuer: holder,
        roles: Default::default(),
        assets: vec![GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None }],
        balances: vec![GenesisBalance { address: holder, asset: AssetId::TSR, amount_base_units: Amount(1_000_000) }],
        incentives: None,
        validators: vec![Address([1; 32]), Address([2; 32])],
    }
}

fn holder_transfer(nonce: u64) -> SignedTransaction {
    let key = crypto::SigningKey::from_seed([7; 32]);
    key.sign_tx(Transaction {
        chain_id: "tessera-verify".into(),
        signer: key.address(),
        nonce,
        fee: Amount(10),
        expiry_height: None,
        action: Action::Transfer { to: Address([9; 32]), asset: AssetId::TSR, amount: Amount(1) },
    })
}

fn host(dir: &std::path::Path, me: u8) -> Arc<LedgerHost> {
    let chain = Chain::open(ChainConfig::new(dir), Some(&genesis())).expect("open chain");
    chain.start_replicated().expect("start checkpointer");
    LedgerHost::new(chain, Address([me; 32]), 2_000)
}

fn digested(block: &Block) -> Digested<Envelope> {
    let envelope = Envelope::block(block.clone());
    let digest = envelope.digest();
    Digested::precomputed(envelope, digest)
}

/// Another validator proposes `candidate` (at height 2, timestamped 1.5 s ahead, so the
/// verifier waits for its clock) on `b1`; while the verifier waits, its finalizer commits
/// `b1` and then `finalized` at height 2. Returns the verdict on `candidate`.
fn verdict(commit_candidate: bool) -> bool {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = deterministic::Config::new()
        .with_seed(1)
        .with_start_time(UNIX_EPOCH + Duration::from_millis(GENESIS_TIME_MS + 10_000))
        .with_timeout(Some(Duration::from_secs(60)));
    deterministic::Runner::new(config).start(|context| async move {
        let now = GENESIS_TIME_MS + 10_000;
        let proposer = host(&tmp.path().join("proposer"), 1);
        let verifier = host(&tmp.path().join("verifier"), 2);
        let genesis_hash = genesis().hash();
        let b1 = proposer.build(&genesis_hash, now).expect("b1");
        let candidate = proposer.build(&b1.header.hash(), now + 1_500).expect("candidate");
        let sibling = proposer.build(&b1.header.hash(), now + 50).expect("sibling");
        assert_ne!(candidate.header.hash(), sibling.header.hash());
        verifier.execute(&b1).expect("b1 verifies");

        let finalized = if commit_candidate { candidate.clone() } else { sibling };
        let finalizer = verifier.clone();
        let b1_for_finalizer = b1.clone();
        context.child("finalizer").spawn(move |context| async move {
            context.sleep(Duration::from_millis(100)).await;
            assert!(finalizer.finalize(&Envelope::block(b1_for_finalizer)));
            assert!(finalizer.finalize(&Envelope::block(finalized)));
        });

        let signer = PrivateKey::from_seed(3);
        let ctx = Context {
            round: Round::new(Epoch::new(0), View::new(2)),
            leader: signer.public_key(),
            parent: (View::new(1), digested(&b1).digest()),
        };
        let chain = ancestry::from_iter([digested(&candidate), digested(&b1)]);
        let mut app = App::new(verifier.clone());
        let verdict = app.verify((context.child("verify"), ctx), chain).await;
        assert_eq!(verifier.committed().0.0, 2, "the finalizer committed height 2 during verification");
        verdict
    })
}

#[test]
fn a_proposal_finalized_while_being_verified_is_valid() {
    assert!(verdict(true));
}

#[test]
fn a_proposal_whose_sibling_was_finalized_meanwhile_is_invalid() {
    assert!(!verdict(false));
}

/// Each validator checks a transaction's signature once, however it first meets it: in a
/// peer's block (then its gossip is not checked again) or by gossip (then the block is
/// not); gossip for a transaction a committed block already settled is dropped unchecked.
#[test]
fn a_node_checks_each_signature_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let proposer = host(&tmp.path().join("proposer"), 1);
    let verifier = host(&tmp.path().join("verifier"), 2);
    let checks = || verifier.chain().metrics.signatures_checked.get();
    let now = GENESIS_TIME_MS + 10_000;

    // Met first in a block.
    let first = holder_transfer(0);
    assert!(proposer.chain().admit(vec![first.clone()])[0].1.is_ok());
    let b1 = proposer.build(&genesis().hash(), now).expect("b1");
    assert_eq!(b1.txs, vec![first.clone()]);
    verifier.execute(&b1).expect("b1 verifies");
    assert_eq!(checks(), 1);
    assert!(verifier.chain().admit_from_peer(vec![first.clone()])[0].1.is_ok(), "admitted, not re-checked");
    assert_eq!(checks(), 1);

    // Met first by gossip.
    let second = holder_transfer(1);
    assert!(verifier.chain().admit_from_peer(vec![second.clone()])[0].1.is_ok());
    assert_eq!(checks(), 2);
    assert!(proposer.chain().admit(vec![second.clone()])[0].1.is_ok());
    let b2 = proposer.build(&b1.header.hash(), now + 100).expect("b2");
    assert_eq!(b2.txs, vec![second.clone()]);
    verifier.execute(&b2).expect("b2 verifies");
    assert_eq!(checks(), 2);

    // Settled: late gossip is dropped before any signature work.
    assert!(verifier.finalize(&Envelope::block(b1)));
    assert!(verifier.finalize(&Envelope::block(b2)));
    assert!(verifier.chain().admit_from_peer(vec![first, second]).is_empty());
    assert_eq!(checks(), 2);

    // A signature nobody checked before is checked, and a forged one refused.
    let mut forged = holder_transfer(2);
    forged.signature.0[3] ^= 1;
    let verdicts = verifier.chain().admit_from_peer(vec![forged]);
    assert_eq!(verdicts[0].1.as_ref().map_err(|e| e.code()), Err("bad_signature"));
    assert_eq!(checks(), 3);
}
