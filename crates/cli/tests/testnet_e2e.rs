//! Multi-node Tessera as real processes on loopback: `tessera testnet` writes four
//! validator homes, each runs as its own `tessera node --validator-key` process; signed
//! transfers go through different nodes; one validator is `kill -9`ed and the others keep
//! finalizing; it restarts from its own storage and catches up; no acknowledged transfer
//! is lost and every node has the same block and state root at every height.

mod common;

use common::{ready_line, tessera, wait_for};
use primitives::{Action, Address, Amount, AssetId, Hash, Height, SignedTransaction};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use wallet::client::Client;

/// A base port with `n` free ports above it (checked by binding them).
fn free_base(n: u16, salt: u16) -> u16 {
    for attempt in 0..200u32 {
        let base = 20_000
            + ((std::process::id() as u16).wrapping_mul(7).wrapping_add(salt).wrapping_add(attempt as u16 * 97)
                % 40_000);
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no free port range");
}

struct Node {
    args: Vec<String>,
    api: String,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, dir: &Path, i: usize) {
        let log = std::fs::File::create(dir.join(format!("node{i}.stderr"))).unwrap();
        let mut child = tessera()
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn a validator");
        ready_line(&mut child, "tessera node ready:", 60);
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn transfer(key: &crypto::SigningKey, nonce: u64, to: Address) -> SignedTransaction {
    key.sign_tx(primitives::Transaction {
        chain_id: "tessera-testnet".into(),
        signer: key.address(),
        nonce,
        fee: Amount(1000),
        expiry_height: None,
        action: Action::Transfer { to, asset: AssetId::TSR, amount: Amount(1_000 + nonce as u128) },
    })
}

/// Submits through `client` and waits until the transfer is committed: acknowledged.
async fn send(client: &Client, stx: &SignedTransaction, what: &str) -> Hash {
    client.submit(stx).await.unwrap_or_else(|e| panic!("submit {what}: {e}"));
    client.wait_committed(&stx.id(), Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("commit {what}: {e}"));
    stx.id()
}

async fn height(api: &str) -> Option<Height> {
    Client::new(api).ok()?.chain().await.ok().map(|c| c.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validator_processes_survive_a_kill_9_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let p2p = free_base(4, 1);
    let http = free_base(4, 5_000);
    let out = tessera()
        .args(["--json", "testnet", "--validators", "4", "--dir"])
        .arg(dir.path())
        .args(["--p2p-base-port", &p2p.to_string(), "--http-base-port", &http.to_string()])
        .output()
        .expect("tessera testnet");
    assert!(out.status.success(), "testnet failed: {}", String::from_utf8_lossy(&out.stderr));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut nodes: Vec<Node> = written["validators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Node {
            args: v["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            api: v["api"].as_str().unwrap().to_string(),
            child: None,
        })
        .collect();
    assert_eq!(nodes.len(), 4);
    for (i, n) in nodes.iter_mut().enumerate() {
        n.start(dir.path(), i);
    }
    let dev = wallet::keystore::read(&dir.path().join("dev.key")).unwrap().decrypt(None).unwrap();
    let to = crypto::SigningKey::from_seed([9; 32]).address();
    let clients: Vec<Client> = nodes.iter().map(|n| Client::new(&n.api).unwrap()).collect();

    // Transfers through every node in turn; each acknowledged once committed.
    let mut acked: Vec<Hash> = Vec::new();
    let mut nonce = 0u64;
    for round in 0..8usize {
        acked.push(send(&clients[round % 4], &transfer(&dev, nonce, to), "with all validators up").await);
        nonce += 1;
    }

    // kill -9 one validator; the other three keep finalizing and take transfers.
    nodes[3].kill9();
    let at_kill = height(&nodes[0].api).await.unwrap();
    for round in 0..6usize {
        acked.push(send(&clients[round % 3], &transfer(&dev, nonce, to), "with a validator down").await);
        nonce += 1;
    }
    let progressed = height(&nodes[0].api).await.unwrap();
    assert!(progressed > at_kill, "no progress with one validator down");

    // Restart it from its own storage: it catches up.
    nodes[3].start(dir.path(), 3);
    let target = height(&nodes[0].api).await.unwrap();
    let api3 = nodes[3].api.clone();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        wait_for(60, "the restarted validator to catch up", || rt.block_on(height(&api3)).filter(|h| *h >= target))
    })
    .await
    .unwrap();
    // And it takes part again: a transfer through it commits.
    acked.push(send(&clients[3], &transfer(&dev, nonce, to), "through the restarted validator").await);

    // No acknowledged transfer lost, on any node.
    for (i, c) in clients.iter().enumerate() {
        for id in &acked {
            let view = c.tx(id).await.unwrap().unwrap_or_else(|| panic!("node {i} does not know {id}"));
            assert_eq!(view.status, "committed", "node {i}: {id}");
        }
    }
    // The same block hash and state root at every height on every node.
    let mut low = Height(u64::MAX);
    for n in &nodes {
        low = low.min(height(&n.api).await.unwrap());
    }
    assert!(low.0 >= 10, "only {low} blocks");
    for h in 1..=low.0 {
        let first = clients[0].block(Height(h)).await.unwrap().expect("block");
        for (i, c) in clients.iter().enumerate().skip(1) {
            let b = c.block(Height(h)).await.unwrap().unwrap_or_else(|| panic!("node {i} lacks block {h}"));
            assert_eq!(
                (b.hash, b.header.state_root),
                (first.hash, first.header.state_root),
                "node {i} differs at height {h}"
            );
        }
    }
    // Blocks were proposed by more than one validator.
    let mut proposers = std::collections::BTreeSet::new();
    for h in 1..=low.0 {
        proposers.insert(clients[0].block(Height(h)).await.unwrap().unwrap().header.proposer);
    }
    assert!(proposers.len() >= 3, "proposers: {proposers:?}");
}
