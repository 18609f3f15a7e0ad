//! `tessera bench`: the ledger pipeline in-process (`ledger`) and load over HTTP
//! (`submit`). Every figure is measured in the same run as its baseline.

use crate::wallet_cmds::Output;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use crypto::SigningKey;
use futures_util::StreamExt;
use ledger::{BlockContext, Genesis, GenesisAsset, GenesisBalance};
use node::{Chain, ChainConfig};
use primitives::{Action, Address, Amount, AssetId, Hash, SignedTransaction, Transaction};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Signature-verification ceiling, ledger apply, and the whole pipeline (mempool
    /// checks, blocks, durable commit), on pre-signed transfers among N accounts.
    Ledger {
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 200_000)]
        txs: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 10_000)]
        block_txs: usize,
        /// Where the pipeline's store goes (a fresh temp dir by default).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// A compliant sale for N investors through the pipeline: attest, commit, settle,
    /// claim, against plain transfers in the same run.
    Sale {
        #[arg(long, default_value_t = 100_000)]
        investors: usize,
        /// Transactions per block.
        #[arg(long, default_value_t = 10_000)]
        block_txs: usize,
    },
    /// One Yuma-consensus epoch on a random network (every evaluator weights and bonds every
    /// provider), original bonds and Yuma3 with liquid alpha, on one thread.
    Incentive {
        /// Evaluators (rows with weights and bonds).
        #[arg(long, default_value_t = 256)]
        validators: usize,
        /// Neurons (uids) in the subnet.
        #[arg(long, default_value_t = 4096)]
        neurons: usize,
        /// Timed runs per mode (the minimum and median are reported).
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Only original Yuma (skip Yuma3 with liquid alpha).
        #[arg(long)]
        original_only: bool,
    },
    /// The latency the OpenAI gateway adds (operator mode: auth, reservation, rate limits,
    /// metering) over a fast local upstream, at fixed request rates, and its budget
    /// exactness under 200 concurrent requests. Self-contained: its own chain and upstream.
    Gateway {
        /// Offered load in requests/s (repeat).
        #[arg(long = "rate", default_values_t = [1_000u64, 5_000])]
        rates: Vec<u64>,
        /// Seconds per mode per round.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Alternating rounds of direct and through-the-gateway load per rate.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// What payment adds at the provider (voucher check, admission, metering, the voucher's
    /// durable write, billing): a priced model against a free one on the same backend, and
    /// against the backend called directly, at fixed request rates. Self-contained: its own
    /// chain and backend.
    Provider {
        /// Offered load in requests/s (repeat).
        #[arg(long = "rate", default_values_t = [1_000u64, 2_000])]
        rates: Vec<u64>,
        /// Seconds per mode per round.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Alternating rounds of direct, free and paid load per rate.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// Load over HTTP: funds N accounts from KEY, sends pre-signed transfers in binary
    /// batches, and measures committed transfers/s and submit-to-commit latency from
    /// the node's event stream.
    Submit {
        /// The node(s): with several (comma-separated, e.g. every validator of a testnet),
        /// batches go to each in turn and commits are timed on the first.
        #[arg(long, env = "TESSERA_NODE", default_value = "http://127.0.0.1:8645")]
        node: String,
        /// A funded key file (the devnet's dev.key) or wallet name.
        #[arg(long)]
        key: String,
        #[arg(long, default_value_t = 2_000)]
        accounts: usize,
        #[arg(long, default_value_t = 100_000)]
        txs: usize,
        /// Transactions per HTTP request.
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Offered load in transfers/s (batches paced evenly); unlimited by default.
        #[arg(long)]
        rate: Option<u64>,
    },
}

pub async fn run(cmd: BenchCmd, out: &Output) -> Result<()> {
    match cmd {
        BenchCmd::Ledger { accounts, txs, block_txs, data_dir } => {
            let json = out.json;
            tokio::task::spawn_blocking(move || bench_ledger(accounts, txs, block_txs, data_dir, json)).await?
        }
        BenchCmd::Sale { investors, block_txs } => {
            let json = out.json;
            tokio::task::spawn_blocking(move || crate::bench_sale::bench_sale(investors, block_txs, json)).await?
        }
        BenchCmd::Incentive { validators, neurons, runs, original_only } => {
            bench_incentive(validators, neurons, runs, original_only, out.json)
        }
        BenchCmd::Gateway { rates, secs, rounds } => {
            crate::bench_gateway::bench_gateway(rates, secs, rounds, out).await
        }
        BenchCmd::Provider { rates, secs, rounds } => {
            crate::bench_provider::bench_provider(rates, secs, rounds, out).await
        }
        BenchCmd::Submit { node, key, accounts, txs, batch, concurrency, rate } => {
            bench_submit(&node, &key, accounts, txs, batch, concurrency, rate, out).await
        }
    }
}

fn seed_key(i: u64) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8..16].copy_from_slice(b"benchkey");
    SigningKey::from_seed(seed)
}

const FEE: u128 = 1_000;

fn bench_ledger(
    accounts: usize,
    txs: usize,
    block_txs: usize,
    data_dir: Option<std::path::PathBuf>,
    json: bool,
) -> Result<()> {
    if accounts < 2 || txs == 0 {
        bail!("need at least 2 accounts and 1 transaction");
    }
    let say = |s: String| {
        if !json {
            eprintln!("{s}")
        }
    };
    let t = Instant::now();
    let keys: Vec<SigningKey> = (0..accounts as u64).into_par_iter().map(seed_key).collect();
    let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let per_account = (txs / accounts + 1) as u128 * (FEE + 1) + 1_000_000;
    let genesis = Genesis {
        chain_id: "tessera-bench".into(),
        genesis_time_ms: 0,
        fee_base_units: Amount(FEE),
        block_interval_ms: 20,
        issuer: addresses[0],
        roles: Default::default(),
        assets: vec![GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None }],
        balances: addresses
            .iter()
            .map(|a| GenesisBalance { address: *a, asset: AssetId::TSR, amount_base_units: Amount(per_account) })
            .collect(),
        incentives: None,
        validators: Vec::new(),
    };
    say(format!("generated {accounts} keys in {:.1}s", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let signed: Vec<SignedTransaction> = (0..txs)
        .into_par_iter()
        .map(|i| {
            let from = i % accounts;
            let to = (i.wrapping_mul(7919) + 1) % accounts;
            keys[from].sign_tx(Transaction {
                chain_id: "tessera-bench".into(),
                signer: addresses[from],
                nonce: (i / accounts) as u64,
                fee: Amount(FEE),
                expiry_height: None,
                action: Action::Transfer { to: addresses[to], asset: AssetId::TSR, amount: Amount(1) },
            })
        })
        .collect();
    let encoded: Vec<Vec<u8>> = signed.par_iter().map(|s| s.to_bytes()).collect();
    let ids: Vec<Hash> = signed.par_iter().map(|s| s.id()).collect();
    drop(keys);
    say(format!("signed {txs} transfers in {:.1}s", t.elapsed().as_secs_f64()));

    // (a) Signature verification alone, all cores, batched: the ceiling. Measured on
    // half the transfers now and on the other half after the pipeline; the ceiling is
    // the faster of the two, so that a slowdown during the run (the pipeline's own disk
    // writes being flushed, or a neighbour on this shared machine) never lowers the bar.
    let half = txs / 2;
    let verify = |range: std::ops::Range<usize>| -> f64 {
        let items: Vec<crypto::VerifyItem> =
            signed[range.clone()].iter().zip(&ids[range]).map(|(s, id)| (s.tx.signer, *id, s.signature)).collect();
        let t = Instant::now();
        let ok = crypto::verify_par(&items);
        let secs = t.elapsed().as_secs_f64();
        assert!(ok.iter().all(|v| *v), "bench signatures verify");
        secs
    };
    let verify_before_secs = verify(0..half.max(1));
    let verify_before_tps = half.max(1) as f64 / verify_before_secs;
    say(format!("(a) verify ceiling, before the pipeline: {verify_before_tps:.0} tx/s"));

    // (b) Ledger apply alone: execute blocks and compute state roots, one thread of
    // control (the state root's hashing may use the pool), no signatures, no I/O.
    let genesis_state = genesis.to_state().context("bench genesis")?;
    let mut state = genesis_state.clone();
    let t = Instant::now();
    for (chunk_i, chunk) in signed.chunks(block_txs).enumerate() {
        let ctx = BlockContext {
            height: state.height.next(),
            parent_hash: state.last_block_hash,
            timestamp_ms: chunk_i as u64,
            proposer: addresses[0],
        };
        let executed = ledger::propose(&state, ctx, chunk.iter().map(|s| (s.id(), s.clone())), block_txs);
        assert_eq!(executed.block.txs.len(), chunk.len(), "every bench transfer applies");
        state.commit(&executed);
    }
    let apply_secs = t.elapsed().as_secs_f64();
    let apply_tps = txs as f64 / apply_secs;
    let final_root = state.state_root();
    drop(state);
    say(format!("(b) apply: {apply_tps:.0} tx/s"));

    // (c) The whole pipeline: decode + stateless checks + batched parallel signature
    // verification + mempool admission, then the sequencer's blocks, each appended and
    // fsynced before commit. Starts from encoded bytes, ends when the last block is durable.
    let tmp;
    let dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempdir()?;
            tmp.clone()
        }
    };
    let mut config = ChainConfig::new(&dir);
    config.block_txs_max = block_txs;
    config.mempool.txs_max = (block_txs * 40).max(200_000);
    let chain = Chain::open(config.clone(), Some(&genesis))?;
    chain.start()?;
    let cpu_before = process_cpu_secs();
    let pipeline_secs = pump(&chain, encoded, config.mempool.txs_max)?;
    let pipeline_cores_busy = (process_cpu_secs() - cpu_before) / pipeline_secs;
    let pipeline_root = chain.state().state_root();
    let blocks = chain.state().height.0;
    chain.shutdown();
    drop(chain);
    if pipeline_root != final_root {
        bail!("pipeline state root {pipeline_root} differs from the apply run's {final_root}");
    }
    let pipeline_tps = txs as f64 / pipeline_secs;
    say(format!("(c) pipeline: {pipeline_tps:.0} tx/s in {blocks} blocks"));
    let rest = half.max(1)..txs;
    let verify_after_secs = if rest.is_empty() { verify_before_secs } else { verify(rest.clone()) };
    let verify_after_tps = rest.len().max(1) as f64 / verify_after_secs;
    say(format!("(a) verify ceiling, after the pipeline: {verify_after_tps:.0} tx/s"));
    let verify_ceiling_tps = verify_before_tps.max(verify_after_tps);
    let ratio = pipeline_tps / verify_ceiling_tps;
    let _ = std::fs::remove_dir_all(&dir);
    let report = serde_json::json!({
        "accounts": accounts,
        "txs": txs,
        "block_txs": block_txs,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "verify_ceiling_tps": verify_ceiling_tps.round(),
        "verify_ceiling_before_tps": verify_before_tps.round(),
        "verify_ceiling_after_tps": verify_after_tps.round(),
        "apply_tps": apply_tps.round(),
        "pipeline_tps": pipeline_tps.round(),
        "pipeline_to_ceiling_ratio": (ratio * 1000.0).round() / 1000.0,
        "pipeline_blocks": blocks,
        "pipeline_cores_busy": (pipeline_cores_busy * 100.0).round() / 100.0,
        "state_root": final_root.to_string(),
    });
    if json {
        println!("{report}");
    } else {
        println!("accounts {accounts}, transfers {txs}, {block_txs} per block");
        println!(
            "  verify ceiling  {verify_ceiling_tps:>10.0} tx/s  (ed25519 batch verification, all cores; \
             the faster of {verify_before_tps:.0} before the pipeline and {verify_after_tps:.0} after)"
        );
        println!("  ledger apply    {apply_tps:>10.0} tx/s  (execute + state root, no signatures, no I/O)");
        println!("  pipeline        {pipeline_tps:>10.0} tx/s  (admission + blocks + fsync per block)");
        println!("  pipeline / ceiling = {ratio:.3}  ({pipeline_cores_busy:.2} cores busy during the pipeline)");
    }
    Ok(())
}

/// Feeds encoded transactions through the whole pipeline (decode, stateless checks,
/// batched parallel signature verification, mempool admission, then the sequencer's
/// blocks, each fsynced before commit) and returns the seconds until the last one is
/// committed. Two submitters, like two concurrent HTTP batch requests: one's serial
/// mempool insertion overlaps the other's parallel verification.
pub(crate) fn pump(chain: &Arc<Chain>, encoded: Vec<Vec<u8>>, txs_max: usize) -> Result<f64> {
    let txs = encoded.len();
    let committed_before = chain.metrics.txs_committed.get();
    let t = Instant::now();
    let batch_txs = 4_096;
    // Batches still being admitted. Only the earliest may use the last two batches' worth
    // of room: with one signer's long nonce sequence (a compliance operator), later
    // batches are pending until the earliest lands, and a mempool full of them would
    // otherwise never drain.
    let soft_max = txs_max.saturating_sub(2 * batch_txs);
    let in_flight = Arc::new(std::sync::Mutex::new((0usize, std::collections::BTreeSet::<usize>::new())));
    let encoded = Arc::new(encoded);
    let feeders: Vec<_> = (0..2)
        .map(|_| {
            let (chain, encoded, in_flight) = (chain.clone(), encoded.clone(), in_flight.clone());
            std::thread::spawn(move || -> Result<()> {
                loop {
                    let start = {
                        let mut f = in_flight.lock().expect("not poisoned");
                        let start = f.0;
                        if start >= encoded.len() {
                            return Ok(());
                        }
                        f.0 += batch_txs;
                        f.1.insert(start);
                        start
                    };
                    let batch = &encoded[start..(start + batch_txs).min(encoded.len())];
                    let decoded: Result<Vec<SignedTransaction>, _> =
                        batch.par_iter().map(|b| SignedTransaction::from_bytes(b)).collect();
                    loop {
                        let earliest = in_flight.lock().expect("not poisoned").1.first() == Some(&start);
                        let limit = if earliest { txs_max } else { soft_max };
                        if chain.mempool_len() + batch.len() <= limit {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    let verdicts = chain.admit(decoded?);
                    in_flight.lock().expect("not poisoned").1.remove(&start);
                    if let Some((_, Err(e))) = verdicts.iter().find(|(_, v)| v.is_err()) {
                        bail!("pipeline refused a transaction: {e}");
                    }
                }
            })
        })
        .collect();
    let feeders_done = || feeders.iter().all(|f| f.is_finished());
    let deadline = Instant::now() + Duration::from_secs(600);
    while chain.metrics.txs_committed.get() - committed_before < txs as u64 {
        if Instant::now() > deadline {
            bail!("pipeline did not commit every transaction in time");
        }
        if feeders_done() && chain.mempool_len() == 0 {
            std::thread::sleep(Duration::from_millis(200));
            if chain.metrics.txs_committed.get() - committed_before < txs as u64 {
                for f in feeders {
                    f.join().expect("feeder thread")?;
                }
                bail!("pipeline lost transactions");
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = t.elapsed().as_secs_f64();
    for f in feeders {
        f.join().expect("feeder thread")?;
    }
    Ok(secs)
}

/// User + system CPU seconds of this process so far (Linux /proc; 0 elsewhere).
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tessera-bench-{}-{}", std::process::id(), crate::now_ms()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[allow(clippy::too_many_arguments)] // one per CLI flag
async fn bench_submit(
    node: &str,
    key: &str,
    accounts: usize,
    txs: usize,
    batch: usize,
    concurrency: usize,
    rate: Option<u64>,
    out: &Output,
) -> Result<()> {
    let nodes: Vec<&str> = node.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    let client = wallet::client::Client::new(nodes.first().copied().unwrap_or(node))?;
    let targets: Vec<wallet::client::Client> =
        nodes.iter().map(|n| wallet::client::Client::new(n)).collect::<Result<_, _>>()?;
    let chain = client.chain().await.context("cannot reach the node")?;
    let key_path = wallet::resolve_key_path(key);
    let funder = wallet::load_signing_key(&key_path, || rpassword::prompt_password("passphrase: "))?;
    let accounts = accounts.max(2);
    let per_account = txs.div_ceil(accounts);
    let fee = chain.fee;
    let say = |s: String| {
        if !out.json {
            eprintln!("{s}")
        }
    };

    // Fresh accounts for this run, funded from the key.
    let keys: Vec<SigningKey> = (0..accounts).map(|_| SigningKey::generate()).collect();
    let addresses: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let funding = Amount((per_account as u128 + 1) * (fee.0 + 1));
    let mut nonce = client.account(&funder.address()).await?.next_nonce;
    for chunk in addresses.chunks(1_000) {
        let batch_txs: Vec<SignedTransaction> = chunk
            .iter()
            .map(|to| {
                let tx = funder.sign_tx(Transaction {
                    chain_id: chain.chain_id.clone(),
                    signer: funder.address(),
                    nonce,
                    fee,
                    expiry_height: None,
                    action: Action::Transfer { to: *to, asset: AssetId::TSR, amount: funding },
                });
                nonce += 1;
                tx
            })
            .collect();
        let resp = client.submit_batch(&batch_txs).await?;
        if let Some(r) = resp.rejected.first() {
            bail!("funding transfer refused: {}: {}", r.code, r.message);
        }
        let last = batch_txs.last().expect("non-empty").id();
        client.wait_committed(&last, Duration::from_secs(60)).await?;
    }
    say(format!("funded {accounts} accounts"));

    // Pre-sign: round-robin over accounts so each signer's nonces arrive in order.
    let signed: Vec<SignedTransaction> = (0..txs)
        .into_par_iter()
        .map(|i| {
            let from = i % accounts;
            let to = (from + 1 + i / accounts) % accounts;
            keys[from].sign_tx(Transaction {
                chain_id: chain.chain_id.clone(),
                signer: addresses[from],
                nonce: (i / accounts) as u64,
                fee,
                expiry_height: None,
                action: Action::Transfer { to: addresses[to], asset: AssetId::TSR, amount: Amount(1) },
            })
        })
        .collect();
    let batches: Vec<Vec<SignedTransaction>> = signed.chunks(batch.max(1)).map(|c| c.to_vec()).collect();
    let wanted: std::collections::HashSet<Hash> = signed.iter().map(|s| s.id()).collect();
    drop(signed);

    // Commit times from the event stream. A lagged stream would undercount: fail then.
    let mut events = Box::pin(client.block_events().await?);
    let (commit_tx, mut commit_rx) = tokio::sync::mpsc::unbounded_channel::<(Hash, Instant)>();
    let listener = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let now = Instant::now();
            match event {
                Ok(ev) => {
                    for r in ev.receipts {
                        let _ = commit_tx.send((r.tx_hash, now));
                    }
                }
                Err(e) => {
                    eprintln!("event stream: {e}");
                    return;
                }
            }
        }
    });

    let started = Instant::now();
    // Batch i may leave at started + i * batch / rate (open-loop pacing).
    let batch_interval = rate.map(|r| Duration::from_secs_f64(batch.max(1) as f64 / r.max(1) as f64));
    let queue = Arc::new(tokio::sync::Mutex::new(batches.into_iter().enumerate()));
    let submitted: Arc<tokio::sync::Mutex<HashMap<Hash, Instant>>> = Default::default();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let submitted = submitted.clone();
        let targets = targets.clone();
        workers.push(tokio::spawn(async move {
            let mut refused = 0usize;
            loop {
                let Some((i, b)) = queue.lock().await.next() else {
                    break;
                };
                if let Some(every) = batch_interval {
                    tokio::time::sleep_until((started + every * i as u32).into()).await;
                }
                let now = Instant::now();
                {
                    let mut s = submitted.lock().await;
                    for t in &b {
                        s.insert(t.id(), now);
                    }
                }
                match targets[i % targets.len()].submit_batch(&b).await {
                    Ok(resp) => refused += resp.rejected.len(),
                    Err(e) => return Err(anyhow::anyhow!(e)),
                }
            }
            Ok::<usize, anyhow::Error>(refused)
        }));
    }
    let mut refused = 0;
    for w in workers {
        refused += w.await??;
    }
    let submit_secs = started.elapsed().as_secs_f64();
    let expected = txs - refused;
    let mut latencies_ms = Vec::with_capacity(expected);
    let mut last_commit = started;
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies_ms.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((id, at))) = tokio::time::timeout(left, commit_rx.recv()).await else {
            break;
        };
        if !wanted.contains(&id) {
            continue;
        }
        if let Some(sent) = submitted.lock().await.get(&id) {
            latencies_ms.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
            last_commit = last_commit.max(at);
        }
    }
    listener.abort();
    let committed = latencies_ms.len();
    latencies_ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies_ms.get(((committed as f64 * p) as usize).min(committed.saturating_sub(1))).copied().unwrap_or(0.0)
    };
    let secs = last_commit.duration_since(started).as_secs_f64().max(1e-9);
    let tps = committed as f64 / secs;
    let report = serde_json::json!({
        "txs": txs, "accounts": accounts, "batch": batch, "concurrency": concurrency, "rate": rate, "nodes": nodes.len(),
        "refused": refused, "committed": committed,
        "committed_tps": tps.round(), "submit_seconds": submit_secs,
        "latency_ms_p50": pct(0.50), "latency_ms_p99": pct(0.99),
        "block_interval_ms": chain.block_interval_ms,
    });
    if out.json {
        println!("{report}");
    } else {
        println!("committed {committed}/{txs} transfers ({refused} refused) in {secs:.2}s: {tps:.0} tx/s");
        println!(
            "submit-to-commit latency: p50 {:.1} ms, p99 {:.1} ms (block interval {} ms)",
            pct(0.5),
            pct(0.99),
            chain.block_interval_ms
        );
    }
    if committed < expected {
        bail!("only {committed} of {expected} admitted transfers were seen committed");
    }
    Ok(())
}

/// subtensor's own sparse epoch on this machine class (shared/design/INCENTIVES.md §11,
/// minimum of its runs): (validators, neurons, original ms, Yuma3 + liquid alpha ms).
const SUBTENSOR_ANCHOR_MS: &[(usize, usize, f64, Option<f64>)] = &[
    (64, 256, 1.2, Some(20.0)),
    (256, 1024, 20.0, Some(321.0)),
    (128, 2048, f64::NAN, Some(1240.0)),
    (256, 4096, 110.0, Some(5010.0)),
    (256, 8192, 300.0, None),
    (512, 16384, 980.0, None),
    (1024, 32768, 4390.0, None),
];

fn bench_incentive(validators: usize, neurons: usize, runs: usize, original_only: bool, json: bool) -> Result<()> {
    if validators == 0 || validators > neurons || neurons > u16::MAX as usize {
        bail!("need 0 < validators <= neurons <= 65535");
    }
    let anchor = SUBTENSOR_ANCHOR_MS.iter().find(|a| a.0 == validators && a.1 == neurons);
    let mut modes = vec![("original", false, false)];
    if !original_only {
        modes.push(("yuma3_liquid_alpha", true, true));
    }
    let mut results = Vec::new();
    for (name, yuma3, liquid) in modes {
        let (params, state) = incentives::synth::network(validators, neurons, yuma3, liquid, 7);
        let block = state.last_update[0] + 1;
        // One untimed run warms caches and allocator.
        let first = incentives::run_epoch(&params, &state, block);
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let r = incentives::run_epoch(&params, &state, block);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if r != first {
                bail!("two runs of the same epoch differ");
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let (min, median) = (times[0], times[times.len() / 2]);
        let subtensor = anchor.and_then(|a| if yuma3 { a.3 } else { Some(a.2) }).filter(|v| v.is_finite());
        let speedup = subtensor.map(|s| s / min);
        if !json {
            println!(
                "{name:>20}: {validators} x {neurons}: min {min:.2} ms, median {median:.2} ms{}",
                match (subtensor, speedup) {
                    (Some(s), Some(x)) => format!("  (subtensor sparse {s:.1} ms: {x:.1}x faster)"),
                    _ => String::new(),
                }
            );
        }
        results.push(serde_json::json!({
            "mode": name, "validators": validators, "neurons": neurons,
            "min_ms": min, "median_ms": median, "subtensor_min_ms": subtensor, "speedup": speedup,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(())
}
