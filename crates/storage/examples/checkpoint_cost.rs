//! How long a checkpoint of N changed accounts and N indexed transactions takes, part by
//! part, in wall time and in CPU time (the fsyncs wait for the disk without using a
//! core): `cargo run --release -p storage --example checkpoint_cost -- 1000000`.
//! The third checkpoint changes the same N accounts again, so it also merges the runs.

use ledger::{Account, Balance, ChainParams, LtHash, Roles};
use primitives::{Address, Amount, AssetId, Hash, Height};
use std::time::Instant;
use storage::{CheckpointDelta, StateHeader, StateStore};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let addr = |i: usize| Address(*blake3::hash(&i.to_le_bytes()).as_bytes());
    let header = StateHeader {
        height: Height(1),
        last_block_hash: Hash::ZERO,
        last_timestamp_ms: 0,
        params: ChainParams {
            chain_id: "x".into(),
            genesis_hash: Hash::ZERO,
            fee: Amount(1),
            block_interval_ms: 1,
            incentives: None,
        },
        roles: Roles { issuer: addr(0), compliance: addr(0), custodian: addr(0), treasury: addr(0) },
        lthash: LtHash::identity(),
    };
    let account = |i: usize| Account {
        nonce: i as u64,
        balances: vec![Balance { asset: AssetId::TSR, amount: Amount(i as u128 * 1000) }],
        ..Account::default()
    };
    for (label, accounts, index) in [("accounts only", n, 0), ("tx index only", 0, n), ("both", n, n)] {
        let mut delta = CheckpointDelta::default();
        for i in 0..accounts {
            delta.accounts.push((addr(i + 7), Some(account(i))));
        }
        for i in 0..index {
            delta.tx_index.push((Hash(*blake3::hash(&(i + 3 * n).to_le_bytes()).as_bytes()), Height(2), i as u32));
        }
        let (t, cpu) = (Instant::now(), process_cpu_secs());
        store.write_checkpoint(&delta, &header).unwrap();
        println!(
            "{label:>14}: {n} entries in {:.2} s, {:.2} s of CPU",
            t.elapsed().as_secs_f64(),
            process_cpu_secs() - cpu
        );
    }
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
