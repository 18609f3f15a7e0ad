//! Deterministic simulation of a validator cluster (commonware's deterministic runtime
//! and simulated network): the real ledger, the real `Chain` with its redb block log,
//! the real wiring; only the network and consensus storage are simulated.
//!
//! Checkers: identical (block hash, state root) at every height on every honest node;
//! TSR supply conserved under a Jepsen-bank workload of transfers among a fixed set of
//! accounts, and no account negative (the ledger's own invariant scan); progress resumes
//! after faults; every transfer seen committed on one node is committed on all; the same
//! seed gives the same outcome hash.
//!
//! Every failure prints its seed; `TESSERA_SIM_SEED=N` reruns one seed, and
//! `TESSERA_SIM_SEEDS=N` widens the sweeps (CI runs a few per scenario).

use commonware_codec::DecodeExt;
use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_p2p::simulated::{self, Link, Oracle};
use commonware_runtime::{Clock, Handle, Quota, Runner as _, Spawner, Supervisor as _, deterministic};
use commonware_utils::ordered::{Quorum as _, Set};
use commonware_utils::{NZUsize, TryCollect};
use consensus::{LedgerHost, Network, Timeouts, ValidatorConfig, channels, start_validator};
use ledger::{Genesis, GenesisAsset, GenesisBalance};
use node::{Chain, ChainConfig};
use parking_lot::Mutex;
use primitives::{Action, Address, Amount, AssetId, Hash, Height, SignedTransaction, Transaction};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

const GENESIS_TIME_MS: u64 = 1_767_225_600_000; // 2026-01-01
const ACCOUNTS: u8 = 8;
const START_BALANCE: u128 = 1_000_000_000;
const FEE: u128 = 10;
const QUOTA: Quota = consensus::engine::CHANNEL_QUOTA;

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("TESSERA_SIM_SEED") {
        return vec![s.parse().expect("TESSERA_SIM_SEED is a number")];
    }
    let n = std::env::var("TESSERA_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..n).collect()
}

fn account_key(i: u8) -> crypto::SigningKey {
    crypto::SigningKey::from_seed([100 + i; 32])
}

fn validator_key(i: u64) -> PrivateKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i + 1).to_le_bytes());
    PrivateKey::decode(bytes::Bytes::copy_from_slice(&seed)).expect("32 bytes")
}

fn genesis(validators: &[PublicKey]) -> Genesis {
    let tsr = AssetId::TSR;
    Genesis {
        chain_id: "tessera-sim".into(),
        genesis_time_ms: GENESIS_TIME_MS,
        fee_base_units: Amount(FEE),
        block_interval_ms: 100,
        issuer: account_key(0).address(),
        roles: Default::default(),
        assets: vec![GenesisAsset { symbol: tsr, decimals: 9, max_supply_base_units: None, issuer: None }],
        balances: (0..ACCOUNTS)
            .map(|i| GenesisBalance {
                address: account_key(i).address(),
                asset: tsr,
                amount_base_units: Amount(START_BALANCE),
            })
            .collect(),
        incentives: None,
        validators: validators.iter().map(|pk| Address(pk.as_ref().try_into().expect("32 bytes"))).collect(),
    }
}

/// What every validator committed: (validator, height) → (block hash, state root).
type Observed = Arc<Mutex<BTreeMap<(usize, u64), (Hash, Hash)>>>;

struct Validator {
    key: PrivateKey,
    dir: PathBuf,
    chain: Option<Arc<Chain>>,
    handle: Option<Handle<()>>,
}

struct Cluster {
    seed: u64,
    genesis: Genesis,
    participants: Set<PublicKey>,
    validators: Vec<Validator>,
    oracle: Oracle<PublicKey, deterministic::Context>,
    observed: Observed,
    /// Transfers some node reported committed.
    committed_txs: Arc<Mutex<BTreeSet<Hash>>>,
}

fn timeouts() -> Timeouts {
    Timeouts {
        leader: Duration::from_millis(500),
        certification: Duration::from_secs(1),
        timeout_retry: Duration::from_secs(1),
        skip: Duration::from_secs(3),
        fetch: Duration::from_millis(500),
    }
}

/// `success_pct`: the chance, in percent, that a message is delivered.
fn link(latency_ms: u64, jitter_ms: u64, success_pct: u64) -> Link {
    Link {
        latency: Duration::from_millis(latency_ms),
        jitter: Duration::from_millis(jitter_ms),
        success_rate: commonware_utils::probability!(success_pct, 100),
    }
}

impl Cluster {
    async fn new(context: &deterministic::Context, seed: u64, n: usize, base: PathBuf) -> Cluster {
        let keys: Vec<PrivateKey> = (0..n as u64).map(validator_key).collect();
        let participants: Set<PublicKey> = keys.iter().map(|k| k.public_key()).try_collect().expect("distinct keys");
        // Index validators by their position in the sorted set (CONSENSUS.md pitfall 2).
        let mut keys = keys;
        keys.sort_by_key(|k| participants.index(&k.public_key()).expect("member").get());
        let genesis = genesis(participants.as_ref());
        let cfg = ValidatorConfig {
            namespace: b"tessera/sim".to_vec(),
            participants: participants.clone(),
            key: keys[0].clone(),
            genesis_hash: genesis.hash(),
            partition_prefix: String::new(),
            timeouts: timeouts(),
            mailbox_size: 1024,
            max_pending_acks: 8,
        };
        let (network, oracle) = simulated::Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size: cfg.max_message_size(),
                max_peers_per_set: NZUsize!(n),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(1),
            },
            participants.iter().cloned(),
        )
        .await;
        network.start();
        let validators = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| Validator { key, dir: base.join(format!("v{i}")), chain: None, handle: None })
            .collect();
        let mut cluster = Cluster {
            seed,
            genesis,
            participants,
            validators,
            oracle,
            observed: Arc::default(),
            committed_txs: Arc::default(),
        };
        cluster.set_links(link(50, 10, 100)).await;
        cluster
    }

    fn n(&self) -> usize {
        self.validators.len()
    }

    fn pk(&self, i: usize) -> PublicKey {
        self.validators[i].key.public_key()
    }

    async fn set_links(&mut self, l: Link) {
        for a in 0..self.n() {
            for b in 0..self.n() {
                if a != b {
                    let _ = self.oracle.remove_link(self.pk(a), self.pk(b)).await;
                    self.oracle.add_link(self.pk(a), self.pk(b), l.clone()).await.expect("link");
                }
            }
        }
    }

    async fn isolate(&mut self, v: usize) {
        for o in (0..self.n()).filter(|o| *o != v) {
            let _ = self.oracle.remove_link(self.pk(v), self.pk(o)).await;
            let _ = self.oracle.remove_link(self.pk(o), self.pk(v)).await;
        }
    }

    async fn heal(&mut self, v: usize, l: Link) {
        for o in (0..self.n()).filter(|o| *o != v) {
            self.oracle.add_link(self.pk(v), self.pk(o), l.clone()).await.expect("link");
            self.oracle.add_link(self.pk(o), self.pk(v), l.clone()).await.expect("link");
        }
    }

    /// Starts (or restarts, from its own storage) validator `i`.
    async fn start(&mut self, context: &deterministic::Context, i: usize) {
        let v = &self.validators[i];
        let chain = Chain::open(ChainConfig::new(&v.dir), Some(&self.genesis)).expect("open chain");
        chain.start_replicated().expect("start checkpointer");
        let me = Address(v.key.public_key().as_ref().try_into().expect("32 bytes"));
        let host = LedgerHost::new(chain.clone(), me, 2_000);
        let observed = self.observed.clone();
        let committed_txs = self.committed_txs.clone();
        let observer_chain = Arc::downgrade(&chain);
        host.set_observer(move |b| {
            let previous = observed.lock().insert((i, b.height.0), (b.hash, b.state_root));
            assert!(
                previous.is_none_or(|p| p == (b.hash, b.state_root)),
                "validator {i} committed height {} twice differently",
                b.height.0
            );
            if let Some(chain) = observer_chain.upgrade()
                && let Ok(Some(stored)) = chain.blocks().get(b.height)
            {
                committed_txs.lock().extend(stored.receipts.iter().map(|r| r.tx_id));
            }
        });
        let control = self.oracle.control(v.key.public_key());
        let mut chans = Vec::new();
        for c in channels::ALL {
            chans.push(control.register(c, QUOTA).await.expect("register channel"));
        }
        let network = Network {
            channels: chans.try_into().unwrap_or_else(|_| unreachable!()),
            blocker: control.clone(),
            manager: self.oracle.manager(),
        };
        let cfg = ValidatorConfig {
            namespace: b"tessera/sim".to_vec(),
            participants: self.participants.clone(),
            key: v.key.clone(),
            genesis_hash: self.genesis.hash(),
            partition_prefix: format!("v{i}"),
            timeouts: timeouts(),
            mailbox_size: 1024,
            max_pending_acks: 8,
        };
        let handle = context.child("validator").with_attribute("index", i).spawn(move |ctx| async move {
            let _simplex = start_validator(ctx, cfg, host, network).await;
            // The parent must stay pending: its children die with it (pitfall 13).
            futures::future::pending::<()>().await;
        });
        let v = &mut self.validators[i];
        v.chain = Some(chain);
        v.handle = Some(handle);
    }

    /// Runs validator `i` as simplex's equivocator mock: in its leader views it signs two
    /// different proposals and sends one to a victim and the other to everyone else.
    async fn start_equivocator(&mut self, context: &deterministic::Context, i: usize) {
        use commonware_consensus::simplex::mocks::{equivocator, relay::Relay};
        let v = &self.validators[i];
        let scheme =
            consensus::app::Scheme::signer(b"tessera/sim", self.participants.clone(), v.key.clone()).expect("member");
        let control = self.oracle.control(v.key.public_key());
        let votes = control.register(channels::VOTES, QUOTA).await.expect("register");
        let certificates = control.register(channels::CERTIFICATES, QUOTA).await.expect("register");
        let cfg = equivocator::Config {
            scheme,
            elector: commonware_consensus::simplex::elector::RoundRobin::<commonware_cryptography::Sha256>::default(),
            epoch: commonware_consensus::types::Epoch::zero(),
            relay: Arc::new(Relay::new()),
        };
        let handle = equivocator::Equivocator::<_, _, _, commonware_cryptography::Blake3>::new(
            context.child("equivocator"),
            cfg,
        )
        .start(votes, certificates);
        self.validators[i].handle = Some(handle);
    }

    /// Kills validator `i`: its tasks stop; only what it had made durable survives.
    fn crash(&mut self, i: usize) {
        let v = &mut self.validators[i];
        if let Some(h) = v.handle.take() {
            h.abort();
        }
        if let Some(chain) = v.chain.take() {
            chain.shutdown();
        }
    }

    /// Validator `i`'s committed height (the last one it reported, when it is down).
    fn tip(&self, i: usize) -> u64 {
        if let Some(chain) = &self.validators[i].chain {
            return chain.state().height.0;
        }
        self.observed.lock().range((i, 0)..(i, u64::MAX)).next_back().map_or(0, |((_, h), _)| *h)
    }

    async fn wait_until(&self, context: &deterministic::Context, who: &[usize], height: u64) {
        let mut polls = 0u64;
        while who.iter().any(|i| self.tip(*i) < height) {
            context.sleep(Duration::from_millis(20)).await;
            polls += 1;
            if polls.is_multiple_of(500) {
                let tips: Vec<u64> = (0..self.n()).map(|i| self.tip(i)).collect();
                eprintln!("seed {}: waiting for {who:?} to reach {height}; tips {tips:?}", self.seed);
            }
        }
    }

    /// The `who` validators' block logs hold the same block (hash and state root) at every
    /// height up to the lowest tip, and every commit each reported matches its log; returns
    /// a hash of that common chain.
    fn check_agreement(&self, who: &[usize]) -> blake3::Hash {
        let low = who.iter().map(|i| self.tip(*i)).min().unwrap_or(0);
        let block = |i: usize, h: u64| {
            let chain = self.validators[i].chain.as_ref().expect("running");
            let stored = chain
                .blocks()
                .get(Height(h))
                .expect("block log")
                .unwrap_or_else(|| panic!("seed {}: validator {i} lacks block {h}", self.seed));
            (stored.block.header.hash(), stored.block.header.state_root)
        };
        let mut outcome = blake3::Hasher::new();
        for h in 1..=low {
            let first = block(who[0], h);
            for i in who {
                assert_eq!(
                    first,
                    block(*i, h),
                    "seed {}: validators {} and {i} disagree at height {h}",
                    self.seed,
                    who[0]
                );
            }
            outcome.update(&h.to_le_bytes());
            outcome.update(&first.0.0);
            outcome.update(&first.1.0);
        }
        for ((i, h), seen) in self.observed.lock().iter() {
            if who.contains(i) && *h <= low {
                assert_eq!(*seen, block(*i, *h), "seed {}: validator {i} reported height {h} differently", self.seed);
            }
        }
        outcome.finalize()
    }

    /// Supply conserved and no invariant broken on every running validator; every
    /// transfer any node committed is committed on each of them.
    fn check_ledgers(&self, who: &[usize]) {
        let committed = self.committed_txs.lock().clone();
        for i in who {
            let chain = self.validators[*i].chain.as_ref().expect("running");
            let state = chain.state();
            state.check_invariants().unwrap_or_else(|e| panic!("seed {}: validator {i}: {e}", self.seed));
            let total: u128 = state.accounts.values().map(|a| a.balance(AssetId::TSR).0).sum();
            assert_eq!(
                total,
                START_BALANCE * ACCOUNTS as u128,
                "seed {}: validator {i}: TSR supply changed",
                self.seed
            );
            drop(state);
            for id in &committed {
                match chain.tx_status(id).expect("tx index") {
                    node::TxStatus::Committed(..) => {}
                    _ => panic!("seed {}: validator {i}: committed transfer {id} is not committed here", self.seed),
                }
            }
        }
    }
}

/// Jepsen-bank client: transfers among the fixed accounts, each sent to a random running
/// validator. One transfer in flight per account; a transfer not committed within two
/// seconds (sent to a node that crashed, or lost) is replaced at the same nonce.
fn spawn_bank(context: &deterministic::Context, chains: Arc<Mutex<Vec<Option<Arc<Chain>>>>>) -> Handle<()> {
    context.child("bank").spawn(move |ctx| async move {
        use rand_core_010::Rng as _;
        let mut ctx = ctx;
        let mut pending: BTreeMap<u8, (u64, u64)> = BTreeMap::new(); // account → (nonce, sent at ms)
        loop {
            ctx.sleep(Duration::from_millis(10)).await;
            let live: Vec<Arc<Chain>> = chains.lock().iter().flatten().cloned().collect();
            if live.is_empty() {
                continue;
            }
            let from = (ctx.next_u32() % ACCOUNTS as u32) as u8;
            let to = (from + 1 + (ctx.next_u32() % (ACCOUNTS as u32 - 1)) as u8) % ACCOUNTS;
            let node = &live[(ctx.next_u32() as usize) % live.len()];
            let key = account_key(from);
            let committed_nonce = node.state().nonce(&key.address());
            let now = ctx.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            if let Some((nonce, at)) = pending.get(&from)
                && *nonce >= committed_nonce
                && now < at + 2_000
            {
                continue;
            }
            let tx = Transaction {
                chain_id: "tessera-sim".into(),
                signer: key.address(),
                nonce: committed_nonce,
                fee: Amount(FEE),
                expiry_height: None,
                action: Action::Transfer {
                    to: account_key(to).address(),
                    asset: AssetId::TSR,
                    amount: Amount(1 + (ctx.next_u32() % 1000) as u128),
                },
            };
            let stx: SignedTransaction = key.sign_tx(tx);
            if node.admit(vec![stx]).into_iter().all(|(_, r)| r.is_ok()) {
                pending.insert(from, (committed_nonce, now));
            }
        }
    })
}

fn runner(seed: u64) -> deterministic::Runner {
    deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(seed)
            .with_start_time(UNIX_EPOCH + Duration::from_millis(GENESIS_TIME_MS))
            .with_timeout(Some(Duration::from_secs(600))),
    )
}

struct Outcome {
    chain: blake3::Hash,
    audit: String,
}

/// Starts `n` validators and the bank, runs `script`, then checks agreement and the
/// ledgers of `honest` (all validators when empty).
fn scenario<F, Fut>(seed: u64, n: usize, script: F) -> Outcome
where
    F: FnOnce(deterministic::Context, Cluster, Arc<Mutex<Vec<Option<Arc<Chain>>>>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Cluster, Vec<usize>)> + Send + 'static,
{
    scenario_with(seed, n, None, script)
}

/// Like `scenario`, with validator `byzantine` (if any) replaced by an equivocator.
fn scenario_with<F, Fut>(seed: u64, n: usize, byzantine: Option<usize>, script: F) -> Outcome
where
    F: FnOnce(deterministic::Context, Cluster, Arc<Mutex<Vec<Option<Arc<Chain>>>>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Cluster, Vec<usize>)> + Send + 'static,
{
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().to_path_buf();
    runner(seed).start(|context| async move {
        let mut cluster = Cluster::new(&context, seed, n, base).await;
        for i in 0..n {
            if Some(i) == byzantine {
                cluster.start_equivocator(&context, i).await;
            } else {
                cluster.start(&context, i).await;
            }
        }
        let chains = Arc::new(Mutex::new(cluster.validators.iter().map(|v| v.chain.clone()).collect::<Vec<_>>()));
        let bank = spawn_bank(&context, chains.clone());
        let (cluster, honest) = script(context.child("script"), cluster, chains).await;
        bank.abort();
        let honest: Vec<usize> = if honest.is_empty() { (0..cluster.n()).collect() } else { honest };
        let chain = cluster.check_agreement(&honest);
        cluster.check_ledgers(&honest);
        let transfers = cluster.committed_txs.lock().len();
        let tips: Vec<u64> = (0..cluster.n()).map(|i| cluster.tip(i)).collect();
        eprintln!("seed {seed}: {transfers} transfers committed; tips {tips:?}");
        assert!(transfers >= 10, "seed {seed}: only {transfers} transfers were committed");
        let audit = context.auditor().state();
        let mut cluster = cluster;
        for i in 0..cluster.n() {
            cluster.crash(i);
        }
        Outcome { chain, audit }
    })
}

#[test]
fn four_validators_agree_on_every_height() {
    for seed in seeds(2) {
        scenario(seed, 4, |context, cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3], 40).await;
            (cluster, vec![])
        });
    }
}

#[test]
fn seven_validators_agree_on_every_height() {
    for seed in seeds(1) {
        scenario(seed, 7, |context, cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3, 4, 5, 6], 25).await;
            (cluster, vec![])
        });
    }
}

#[test]
fn same_seed_same_outcome() {
    let run = |seed| {
        scenario(seed, 4, |context, cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3], 20).await;
            // Stop at a fixed simulated time so every run compares the same span.
            (cluster, vec![])
        })
    };
    let a = run(7);
    let b = run(7);
    assert_eq!(a.chain, b.chain, "seed 7 gave two different chains");
    assert_eq!(a.audit, b.audit, "seed 7 gave two different runtime audits");
    let c = run(8);
    assert_ne!(a.audit, c.audit, "seeds 7 and 8 gave the same run");
}

#[test]
fn lossy_and_slow_links() {
    for seed in seeds(1) {
        scenario(seed, 4, |context, mut cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3], 5).await;
            cluster.set_links(link(150, 60, 80)).await;
            let reached = (0..4).map(|i| cluster.tip(i)).min().unwrap_or(0);
            cluster.wait_until(&context, &[0, 1, 2, 3], reached + 5).await;
            cluster.set_links(link(50, 10, 100)).await;
            let reached = (0..4).map(|i| cluster.tip(i)).max().unwrap_or(0);
            cluster.wait_until(&context, &[0, 1, 2, 3], reached + 5).await;
            (cluster, vec![])
        });
    }
}

#[test]
fn partitioned_validator_catches_up_after_healing() {
    for seed in seeds(2) {
        scenario(seed, 4, |context, mut cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3], 5).await;
            cluster.isolate(3).await;
            let cut = cluster.tip(3);
            cluster.wait_until(&context, &[0, 1, 2], cut + 30).await;
            assert!(cluster.tip(3) <= cut + 1, "seed {}: an isolated validator kept finalizing", cluster.seed);
            cluster.heal(3, link(50, 10, 100)).await;
            let target = (0..3).map(|i| cluster.tip(i)).max().unwrap_or(0) + 5;
            cluster.wait_until(&context, &[0, 1, 2, 3], target).await;
            (cluster, vec![])
        });
    }
}

#[test]
fn crashed_validator_restarts_from_its_storage_and_catches_up() {
    for seed in seeds(2) {
        scenario(seed, 4, |context, mut cluster, chains| async move {
            cluster.wait_until(&context, &[0, 1, 2, 3], 8).await;
            cluster.crash(2);
            chains.lock()[2] = None;
            let at_crash = cluster.tip(2);
            cluster.wait_until(&context, &[0, 1, 3], at_crash + 20).await;
            cluster.start(&context, 2).await;
            chains.lock()[2] = cluster.validators[2].chain.clone();
            // It resumed from its own block log, not from genesis.
            let resumed = cluster.validators[2].chain.as_ref().map(|c| c.state().height).unwrap_or(Height(0));
            assert!(resumed.0 >= at_crash, "seed {}: restarted at {resumed} below {at_crash}", cluster.seed);
            let target = [0, 1, 3].iter().map(|i| cluster.tip(*i)).max().unwrap_or(0) + 5;
            cluster.wait_until(&context, &[0, 1, 2, 3], target).await;
            (cluster, vec![])
        });
    }
}

#[test]
fn an_equivocating_validator_cannot_stop_or_fork_the_others() {
    for seed in seeds(2) {
        scenario_with(seed, 4, Some(3), |context, cluster, _| async move {
            cluster.wait_until(&context, &[0, 1, 2], 25).await;
            (cluster, vec![0, 1, 2])
        });
    }
}

#[test]
fn whole_cluster_power_loss_resumes_from_durable_state() {
    for seed in seeds(1) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().to_path_buf();
        let first_base = base.clone();
        let (before, checkpoint) = runner(seed).start_and_recover(|context| async move {
            let mut cluster = Cluster::new(&context, seed, 4, first_base).await;
            for i in 0..4 {
                cluster.start(&context, i).await;
            }
            let chains = Arc::new(Mutex::new(cluster.validators.iter().map(|v| v.chain.clone()).collect::<Vec<_>>()));
            let bank = spawn_bank(&context, chains);
            cluster.wait_until(&context, &[0, 1, 2, 3], 15).await;
            bank.abort();
            let tips: Vec<u64> = (0..4).map(|i| cluster.tip(i)).collect();
            // The power goes out: every validator stops at once.
            for i in 0..4 {
                cluster.crash(i);
            }
            tips
        });
        // Same simulated disks (synced data only), time and randomness; a new network.
        deterministic::Runner::from(checkpoint).start(|context| async move {
            let mut cluster = Cluster::new(&context, seed, 4, base).await;
            for (i, &was) in before.iter().enumerate() {
                cluster.start(&context, i).await;
                let resumed = cluster.tip(i);
                assert!(resumed >= was, "seed {seed}: validator {i} resumed at {resumed} below {was}");
            }
            let chains = Arc::new(Mutex::new(cluster.validators.iter().map(|v| v.chain.clone()).collect::<Vec<_>>()));
            let bank = spawn_bank(&context, chains);
            let target = before.iter().max().copied().unwrap_or(0) + 15;
            cluster.wait_until(&context, &[0, 1, 2, 3], target).await;
            bank.abort();
            let all = [0, 1, 2, 3];
            cluster.check_agreement(&all);
            cluster.check_ledgers(&all);
            for i in 0..4 {
                cluster.crash(i);
            }
        });
    }
}

/// Faults mixed in one run, over many seeds: slow lossy links, a partition healed, a
/// validator crashed and restarted. `TESSERA_SIM_SEEDS` widens the sweep.
#[test]
fn seed_sweep_with_mixed_faults() {
    for seed in seeds(12).into_iter().map(|s| s + 1_000) {
        scenario(seed, 4, move |context, mut cluster, chains| async move {
            let victim = (seed % 4) as usize;
            let other = (victim + 1 + (seed as usize / 4) % 3) % 4;
            cluster.wait_until(&context, &[0, 1, 2, 3], 5).await;
            cluster.set_links(link(80, 30, 90)).await;
            cluster.isolate(other).await;
            let live: Vec<usize> = (0..4).filter(|i| *i != other).collect();
            let reached = live.iter().map(|i| cluster.tip(*i)).max().unwrap_or(0);
            cluster.wait_until(&context, &live, reached + 5).await;
            cluster.heal(other, link(80, 30, 90)).await;
            cluster.crash(victim);
            chains.lock()[victim] = None;
            let live: Vec<usize> = (0..4).filter(|i| *i != victim).collect();
            let reached = live.iter().map(|i| cluster.tip(*i)).max().unwrap_or(0);
            cluster.wait_until(&context, &live, reached + 5).await;
            cluster.start(&context, victim).await;
            chains.lock()[victim] = cluster.validators[victim].chain.clone();
            cluster.set_links(link(50, 10, 100)).await;
            let reached = (0..4).map(|i| cluster.tip(i)).max().unwrap_or(0);
            cluster.wait_until(&context, &[0, 1, 2, 3], reached + 5).await;
            (cluster, vec![])
        });
    }
}
