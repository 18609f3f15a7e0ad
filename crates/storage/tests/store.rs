//! The block log and checkpoints: durability across reopen, ordering, genesis binding,
//! checkpoint round trips.

use ledger::{propose, BlockContext, Genesis, GenesisAsset, GenesisBalance, State};
use primitives::{Action, Address, Amount, AssetId, Height, Transaction};
use storage::{BlockStore, CheckpointDelta, StateHeader, StateStore, StoreError, StoredBlock};

fn genesis() -> (Genesis, crypto::SigningKey) {
    let k = crypto::SigningKey::from_seed([3; 32]);
    let g = Genesis {
        chain_id: "t".into(),
        genesis_time_ms: 0,
        fee_base_units: Amount(1),
        block_interval_ms: 100,
        issuer: k.address(),
        roles: Default::default(),
        assets: vec![GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None }],
        balances: vec![GenesisBalance {
            address: k.address(),
            asset: AssetId::TSR,
            amount_base_units: Amount(1_000_000),
        }],
        incentives: None,
        validators: Vec::new(),
    };
    (g, k)
}

/// A first checkpoint: the whole (genesis) state.
fn whole_state(state: &State) -> CheckpointDelta {
    CheckpointDelta {
        accounts: state.accounts.iter().map(|(a, acct)| (*a, Some(acct.clone()))).collect(),
        assets: state.assets.clone(),
        roles: Some(state.roles.clone()),
        objects: state.objects.iter().map(|(k, o)| (*k, Some(o.clone()))).collect(),
        tx_index: Vec::new(),
    }
}

fn next_block(state: &mut State, k: &crypto::SigningKey, delta: &mut CheckpointDelta) -> StoredBlock {
    let tx = k.sign_tx(Transaction {
        chain_id: "t".into(),
        signer: k.address(),
        nonce: state.nonce(&k.address()),
        fee: Amount(1),
        expiry_height: None,
        // Odd heights also write module records (a vesting grant: counters, grant object).
        action: if state.height.0.is_multiple_of(2) {
            Action::Transfer { to: Address([state.height.0 as u8; 32]), asset: AssetId::TSR, amount: Amount(7) }
        } else {
            Action::CreateGrant {
                beneficiary: Address([state.height.0 as u8; 32]),
                asset: AssetId::TSR,
                amount: Amount(70),
                schedule: primitives::sale::Schedule::lockup(1_000),
                revocable: true,
            }
        },
    });
    let ctx = BlockContext {
        height: state.height.next(),
        parent_hash: state.last_block_hash,
        timestamp_ms: 1,
        proposer: k.address(),
    };
    let executed = propose(state, ctx, [(tx.id(), tx)], 10);
    state.commit(&executed);
    assert_eq!(executed.receipts[0].outcome, primitives::Outcome::Success);
    delta.accounts.extend(executed.write_set.accounts.iter().cloned());
    delta.objects.extend(executed.write_set.objects.iter().cloned());
    delta.tx_index.push((executed.receipts[0].tx_id, state.height, 0));
    StoredBlock { block: executed.block, receipts: executed.receipts }
}

#[test]
fn blocks_survive_reopen_and_stay_ordered() {
    let dir = tempfile::tempdir().unwrap();
    let (g, k) = genesis();
    let mut state = g.to_state().unwrap();
    let mut delta = CheckpointDelta::default();
    let mut written = Vec::new();
    {
        let store = BlockStore::open(dir.path(), Some(g.hash())).unwrap();
        for _ in 0..5 {
            let b = next_block(&mut state, &k, &mut delta);
            store.append(&b.block, &b.receipts).unwrap();
            written.push(b);
        }
        assert!(matches!(
            store.append(&written[1].block, &written[1].receipts),
            Err(StoreError::OutOfOrder { tip: 5, got: 2 })
        ));
    }
    let store = BlockStore::open(dir.path(), Some(g.hash())).unwrap();
    assert_eq!(store.tip().unwrap(), Height(5));
    assert_eq!(store.get(Height(3)).unwrap().as_ref(), Some(&written[2]));
    assert_eq!(store.get(Height(6)).unwrap(), None);
    let mut seen = Vec::new();
    store
        .for_each_from(Height(2), |b| {
            seen.push(b.block.header.height.0);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    assert_eq!(seen, vec![2, 3, 4, 5]);
    drop(store);
    let other = primitives::Hash([9; 32]);
    assert!(matches!(BlockStore::open(dir.path(), Some(other)), Err(StoreError::GenesisMismatch { .. })));
}

#[test]
fn checkpoint_round_trips_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let (g, k) = genesis();
    let mut state = g.to_state().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    assert!(store.load().unwrap().is_none());
    // The first checkpoint holds the whole genesis state.
    let mut delta = whole_state(&state);
    for _ in 0..3 {
        next_block(&mut state, &k, &mut delta);
    }
    store.write_checkpoint(&delta, &StateHeader::of(&state)).unwrap();
    drop(store);
    let store = StateStore::open(dir.path()).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.accounts, state.accounts);
    assert_eq!(loaded.assets, state.assets);
    assert!(!state.objects.is_empty());
    assert_eq!(loaded.objects, state.objects);
    assert_eq!(loaded.state_root(), state.state_root());
    assert_eq!(loaded.height, Height(3));
    loaded.check_invariants().unwrap();
    assert_eq!(store.tx_location(&delta.tx_index[1].0).unwrap(), Some((Height(2), 0)));
}

#[test]
fn many_checkpoints_merge_and_reload_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (g, k) = genesis();
    let mut state = g.to_state().unwrap();
    let mut store = StateStore::open(dir.path()).unwrap();
    store.write_checkpoint(&whole_state(&state), &StateHeader::of(&state)).unwrap();
    let mut ids = Vec::new();
    // One block per checkpoint: small deltas against a small base, so runs pile up and
    // are merged again and again (by size and by count).
    for round in 0..40 {
        let mut delta = CheckpointDelta::default();
        next_block(&mut state, &k, &mut delta);
        ids.extend(delta.tx_index.iter().map(|(id, h, i)| (*id, *h, *i)));
        store.write_checkpoint(&delta, &StateHeader::of(&state)).unwrap();
        if round % 7 == 0 {
            // A checkpoint interrupted before its manifest leaves files that the next open removes.
            std::fs::write(dir.path().join("checkpoint/run-999999999999.bin.tmp"), b"partial").unwrap();
            std::fs::write(dir.path().join("checkpoint/run-999999999999.bin"), b"unnamed").unwrap();
        }
        drop(store);
        store = StateStore::open(dir.path()).unwrap();
        assert!(!dir.path().join("checkpoint/run-999999999999.bin").exists());
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.accounts, state.accounts, "round {round}");
        assert_eq!(loaded.objects, state.objects, "round {round}");
        assert_eq!(loaded.state_root(), state.state_root(), "round {round}");
        assert_eq!(store.checkpoint_height().unwrap(), Some(state.height));
    }
    let runs = std::fs::read_dir(dir.path().join("checkpoint")).unwrap().count() - 1; // less MANIFEST
    assert!(runs <= 17, "{runs} run files: merges keep them bounded");
    for (id, h, i) in ids {
        assert_eq!(store.tx_location(&id).unwrap(), Some((h, i)));
    }
}

#[test]
fn a_damaged_checkpoint_is_an_error_not_a_wrong_state() {
    let dir = tempfile::tempdir().unwrap();
    let (g, _) = genesis();
    let state = g.to_state().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.write_checkpoint(&whole_state(&state), &StateHeader::of(&state)).unwrap();
    drop(store);
    let run = std::fs::read_dir(dir.path().join("checkpoint"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("run-"))
        .unwrap();
    let mut bytes = std::fs::read(&run).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&run, bytes).unwrap();
    // Either the damaged record fails to decode or the file's hash does not match: an
    // error either way, never a state that silently differs.
    let err = StateStore::open(dir.path()).unwrap().load().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. } | StoreError::Io { .. }), "{err}");
}

#[test]
fn a_failed_checkpoint_folded_into_the_next_loses_nothing() {
    // The checkpointer keeps a delta whose write failed and writes it with the next one
    // (`absorb`): the result must be the state after both, as if neither had failed.
    let dir = tempfile::tempdir().unwrap();
    let (g, k) = genesis();
    let mut state = g.to_state().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    store.write_checkpoint(&whole_state(&state), &StateHeader::of(&state)).unwrap();
    let mut failed = CheckpointDelta::default();
    for _ in 0..3 {
        next_block(&mut state, &k, &mut failed);
    }
    let mut next = CheckpointDelta::default();
    for _ in 0..3 {
        next_block(&mut state, &k, &mut next);
    }
    failed.absorb(next);
    store.write_checkpoint(&failed, &StateHeader::of(&state)).unwrap();
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.accounts, state.accounts);
    assert_eq!(loaded.objects, state.objects);
    assert_eq!(loaded.state_root(), state.state_root());
    for (id, h, i) in &failed.tx_index {
        assert_eq!(store.tx_location(id).unwrap(), Some((*h, *i)));
    }
}

proptest::proptest! {
    /// What the fuzz target `decode_checkpoint` checks, on a small budget here: arbitrary
    /// bytes as a manifest or as a snapshot run give an error or a value, never a panic.
    #[test]
    fn checkpoint_decoders_never_panic(
        manifest in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        run in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        let _ = storage::fuzz_decode_checkpoint(&manifest, &run);
    }

    /// A valid run with its bytes cut short is an error, not a smaller state.
    #[test]
    fn a_truncated_run_is_an_error(cut in 1usize..40) {
        let mut run = Vec::new();
        run.push(0u8); // accounts table
        run.extend_from_slice(&32u32.to_le_bytes());
        run.extend_from_slice(&[7u8; 32]);
        run.push(0); // deleted
        let cut = cut.min(run.len());
        proptest::prop_assert!(storage::fuzz_decode_checkpoint(&[], &run[..run.len() - cut]).is_err());
    }
}

/// Lookups run while checkpoints are written and merge index runs away: each finds every
/// transaction checkpointed before it started, never an error (CI once saw "No such file"
/// when a checkpoint deleted the runs of the manifest a lookup had just copied).
#[test]
fn lookups_during_checkpoints_never_see_a_run_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (g, k) = genesis();
    let mut state = g.to_state().unwrap();
    let store = std::sync::Arc::new(StateStore::open(dir.path()).unwrap());
    store.write_checkpoint(&whole_state(&state), &StateHeader::of(&state)).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let known = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done, known) = (store.clone(), done.clone(), known.clone());
            std::thread::spawn(move || {
                let mut lookups = 0u64;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let ids: Vec<_> = known.lock().unwrap().clone();
                    for (id, h, i) in ids {
                        assert_eq!(store.tx_location(&id).unwrap(), Some((h, i)));
                        lookups += 1;
                    }
                }
                lookups
            })
        })
        .collect();
    for _ in 0..60 {
        let mut delta = CheckpointDelta::default();
        next_block(&mut state, &k, &mut delta);
        let written: Vec<_> = delta.tx_index.clone();
        store.write_checkpoint(&delta, &StateHeader::of(&state)).unwrap();
        known.lock().unwrap().extend(written);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let lookups: u64 = readers.into_iter().map(|r| r.join().expect("no lookup failed")).sum();
    assert!(lookups > 100, "the readers ran alongside the checkpoints ({lookups} lookups)");
}
