//! Crash consistency through the real binary: `kill -9` the devnet under load, restart
//! it on the same data dir, and check that every transaction whose commit the node had
//! announced is there, that the chain resumes, and that `tessera node replay` verifies
//! every stored root.

mod common;

use common::{tessera, Devnet};
use futures_util::StreamExt;
use primitives::{Action, Amount, AssetId, Hash, SignedTransaction};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wallet::client::Client;

fn transfer(key: &crypto::SigningKey, nonce: u64, to: primitives::Address, amount: u128) -> SignedTransaction {
    common::devnet_tx(key, nonce, Action::Transfer { to, asset: AssetId::TSR, amount: Amount(amount) })
}

/// Collects (tx id -> height) from the event stream: the node's commit announcements.
fn listen(api: &str, acked: Arc<Mutex<HashMap<Hash, u64>>>) -> tokio::task::JoinHandle<()> {
    let client = Client::new(api).unwrap();
    tokio::spawn(async move {
        let Ok(events) = client.block_events().await else { return };
        let mut events = Box::pin(events);
        while let Some(Ok(ev)) = events.next().await {
            let mut a = acked.lock().unwrap();
            for r in ev.receipts {
                a.insert(r.tx_hash, ev.height.0);
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut devnet = Devnet::start(dir.path(), &["--checkpoint-interval-blocks", "7", "--no-gateway"]);
    let client = Client::new(&devnet.api).unwrap();
    let dev = devnet.signing_key();
    let senders: Vec<crypto::SigningKey> = (0..16u8).map(|i| crypto::SigningKey::from_seed([100 + i; 32])).collect();
    let funding: Vec<SignedTransaction> =
        senders.iter().enumerate().map(|(i, k)| transfer(&dev, i as u64, k.address(), 1_000_000_000)).collect();
    assert_eq!(client.submit_batch(&funding).await.unwrap().accepted, 16);
    client.wait_committed(&funding[15].id(), Duration::from_secs(30)).await.unwrap();

    let acked: Arc<Mutex<HashMap<Hash, u64>>> = Default::default();
    let listener = listen(&devnet.api, acked.clone());
    // Load: rounds of one transfer per sender, submitted as binary batches.
    let started = Instant::now();
    let mut nonce = 0u64;
    let mut submitted = 0usize;
    while started.elapsed() < Duration::from_millis(2500) {
        let round: Vec<SignedTransaction> = (0..8u64)
            .flat_map(|k| senders.iter().enumerate().map(move |(i, s)| (i, s, k)))
            .map(|(i, s, k)| transfer(s, nonce + k, senders[(i + 1) % senders.len()].address(), 1 + k as u128))
            .collect();
        if let Ok(r) = client.submit_batch(&round).await {
            submitted += r.accepted as usize;
        }
        nonce += 8;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Crash while the sequencer is busy.
    devnet.kill9();
    listener.abort();
    let acked: HashMap<Hash, u64> = acked.lock().unwrap().clone();
    assert!(acked.len() > 100, "load produced announced commits ({} of {submitted})", acked.len());

    let devnet = Devnet::start(dir.path(), &["--checkpoint-interval-blocks", "7", "--no-gateway"]);
    let client = Client::new(&devnet.api).unwrap();
    for (id, height) in &acked {
        let view = client.tx(id).await.unwrap().unwrap_or_else(|| panic!("acknowledged {id} lost"));
        assert_eq!(view.status, "committed");
        assert_eq!(view.height.unwrap().0, *height, "{id} moved");
    }
    // The chain keeps going after the restart.
    let next = transfer(&dev, 16, senders[0].address(), 1);
    client.submit(&next).await.unwrap();
    client.wait_committed(&next.id(), Duration::from_secs(30)).await.unwrap();
    let chain = client.chain().await.unwrap();
    let supply: u128 = chain.assets.iter().find(|a| a.symbol == AssetId::TSR).unwrap().supply.0;
    let mut total = 0u128;
    // The devnet's emission accrues in the incentive pool (no neurons here, so none is paid).
    let pool = ledger::incentive::incentive_pool_account();
    for who in senders.iter().map(|k| k.address()).chain([dev.address(), pool]) {
        total += client.account(&who).await.unwrap().balances.iter().map(|b| b.balance.0).sum::<u128>();
    }
    assert_eq!(total, supply, "TSR supply conserved across the crash");
    let mut devnet = devnet;
    assert!(devnet.stop().success(), "clean stop on SIGTERM");

    let out = tessera().args(["node", "replay", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "replay failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("replay ok"), "{stdout}");
}
