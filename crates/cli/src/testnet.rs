//! Multi-node Tessera from the command line: the validator side of `tessera node`
//! (`--validator-key`, `--p2p`, `--peers`) and `tessera testnet`, which writes N node
//! homes (keys, one genesis with the validator set) and can run them as processes on
//! loopback ports.

use crate::wallet_cmds::Output;
use crate::write_file_synced;
use anyhow::{bail, Context, Result};
use clap::Args;
use ledger::Genesis;
use node::Chain;
use primitives::Address;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

#[derive(Args, Clone, Default)]
pub(crate) struct ValidatorArgs {
    /// Join a multi-node network as this validator (a key file; its address must be in
    /// the genesis `validators`). Blocks then come from BFT consensus, not a solo sequencer.
    #[arg(long)]
    pub validator_key: Option<PathBuf>,
    /// Where this validator listens for the other validators.
    #[arg(long, requires = "validator_key")]
    pub p2p: Option<SocketAddr>,
    /// The other validators: ADDRESS@HOST:PORT, comma-separated or repeated.
    #[arg(long, value_delimiter = ',', requires = "validator_key")]
    pub peers: Vec<String>,
}

fn parse_peer(s: &str) -> Result<(Address, SocketAddr)> {
    let (addr, host) = s.split_once('@').with_context(|| format!("peer {s:?} is not ADDRESS@HOST:PORT"))?;
    let address: Address = addr.parse().map_err(|e| anyhow::anyhow!("peer {s:?}: bad address: {e}"))?;
    let socket: SocketAddr = host.parse().with_context(|| format!("peer {s:?}: bad HOST:PORT"))?;
    Ok((address, socket))
}

/// Starts consensus for a node whose chain is open in replicated mode.
pub(crate) fn start_validator(
    chain: Arc<Chain>,
    genesis: &Genesis,
    data_dir: &Path,
    args: &ValidatorArgs,
) -> Result<Address> {
    let key_path = args.validator_key.as_ref().expect("validator mode");
    let key = crate::wallet_cmds::load_key(&key_path.to_string_lossy())?;
    let me = key.address();
    if !genesis.validators.contains(&me) {
        bail!("{me} (from {}) is not a validator of this genesis", key_path.display());
    }
    let validators = consensus::net::validator_set(genesis).map_err(anyhow::Error::msg)?;
    let listen = args.p2p.context("--p2p HOST:PORT is required with --validator-key")?;
    let mut peers = Vec::new();
    for p in &args.peers {
        let (address, socket) = parse_peer(p)?;
        if !genesis.validators.contains(&address) {
            bail!("peer {address} is not a validator of this genesis");
        }
        peers.push((consensus::net::public_key(&address).map_err(anyhow::Error::msg)?, socket));
    }
    let private = consensus::net::private_key(&key.seed());
    peers.push((consensus::net::public_key(&me).map_err(anyhow::Error::msg)?, listen));
    let cfg = consensus::net::ProcessConfig {
        key: private,
        genesis_hash: genesis.hash(),
        validators,
        listen,
        peers,
        storage_dir: data_dir.join("consensus"),
        timeouts: consensus::Timeouts::default(),
        worker_threads: 2,
    };
    consensus::net::spawn_validator(chain, cfg).context("cannot start the consensus thread")?;
    Ok(me)
}

#[derive(Args)]
pub(crate) struct TestnetArgs {
    /// Number of validators (tolerates ⌊(n−1)/3⌋ faulty ones).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory for the node homes (created; must not hold another testnet unless --run).
    #[arg(long)]
    dir: PathBuf,
    /// First validator p2p port; validator i listens on BASE+i.
    #[arg(long, default_value_t = 9600)]
    p2p_base_port: u16,
    /// First HTTP API port; validator i serves on BASE+i.
    #[arg(long, default_value_t = 8660)]
    http_base_port: u16,
    /// Also run the validators as processes (logs in DIR/nodeI/node.log) until Ctrl-C.
    #[arg(long)]
    run: bool,
}

struct NodeHome {
    dir: PathBuf,
    key: PathBuf,
    address: Address,
    p2p: SocketAddr,
    http: SocketAddr,
}

fn homes(dir: &Path, n: usize, p2p_base: u16, http_base: u16) -> Result<Vec<NodeHome>> {
    (0..n)
        .map(|i| {
            let home = dir.join(format!("node{i}"));
            let key = home.join("validator.key");
            let address =
                wallet::keystore::read(&key).with_context(|| format!("validator key {}", key.display()))?.address()?;
            Ok(NodeHome {
                dir: home,
                key,
                address,
                p2p: SocketAddr::from(([127, 0, 0, 1], p2p_base + i as u16)),
                http: SocketAddr::from(([127, 0, 0, 1], http_base + i as u16)),
            })
        })
        .collect()
}

fn node_args(home: &NodeHome, all: &[NodeHome], genesis: &Path) -> Vec<String> {
    let peers: Vec<String> =
        all.iter().filter(|h| h.address != home.address).map(|h| format!("{}@{}", h.address, h.p2p)).collect();
    vec![
        "node".into(),
        "--genesis".into(),
        genesis.display().to_string(),
        "--data-dir".into(),
        home.dir.display().to_string(),
        "--http".into(),
        home.http.to_string(),
        "--validator-key".into(),
        home.key.display().to_string(),
        "--p2p".into(),
        home.p2p.to_string(),
        "--peers".into(),
        peers.join(","),
    ]
}

pub(crate) async fn testnet(args: TestnetArgs, out: &Output) -> Result<()> {
    if args.validators == 0 || args.validators > 100 {
        bail!("--validators must be within 1..=100");
    }
    let genesis_path = args.dir.join("genesis.toml");
    if !genesis_path.exists() {
        std::fs::create_dir_all(&args.dir).with_context(|| format!("cannot create {}", args.dir.display()))?;
        let dev = crypto::SigningKey::generate();
        wallet::keystore::write_new(&args.dir.join("dev.key"), &wallet::keystore::unencrypted(&dev))?;
        let mut validators = Vec::new();
        for i in 0..args.validators {
            let home = args.dir.join(format!("node{i}"));
            std::fs::create_dir_all(&home)?;
            let key = crypto::SigningKey::generate();
            wallet::keystore::write_new(&home.join("validator.key"), &wallet::keystore::unencrypted(&key))?;
            validators.push(key.address());
        }
        let mut genesis = node::genesis_file::devnet(dev.address(), crate::now_ms());
        genesis.chain_id = "tessera-testnet".into();
        genesis.validators = validators;
        write_file_synced(&genesis_path, node::genesis_file::to_toml(&genesis).as_bytes())?;
    } else if !args.run {
        bail!("{} already holds a testnet; add --run to run it", args.dir.display());
    }
    let genesis = node::genesis_file::load(&genesis_path)?;
    let n = genesis.validators.len();
    let homes = homes(&args.dir, n, args.p2p_base_port, args.http_base_port)?;
    let exe = std::env::current_exe()?;
    if !args.run {
        if out.json {
            let nodes: Vec<_> = homes
                .iter()
                .map(|h| serde_json::json!({ "address": h.address, "home": h.dir, "p2p": h.p2p.to_string(), "api": format!("http://{}", h.http), "args": node_args(h, &homes, &genesis_path) }))
                .collect();
            println!(
                "{}",
                serde_json::json!({ "genesis": genesis_path, "dev_key": args.dir.join("dev.key"), "validators": nodes })
            );
        } else {
            println!("testnet of {n} validators written to {}", args.dir.display());
            println!("  genesis   {}", genesis_path.display());
            println!("  dev key   {} (funded, unencrypted, for development only)", args.dir.join("dev.key").display());
            for h in &homes {
                println!("  {} {}", exe.display(), node_args(h, &homes, &genesis_path).join(" "));
            }
            println!("or run them all: tessera testnet --dir {} --run", args.dir.display());
        }
        return Ok(());
    }
    let mut children: Vec<Child> = Vec::new();
    for h in &homes {
        let log = std::fs::File::create(h.dir.join("node.log"))?;
        let child = Command::new(&exe)
            .args(node_args(h, &homes, &genesis_path))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start a validator process")?;
        children.push(child);
    }
    let client = reqwest::Client::new();
    for h in &homes {
        let url = format!("http://{}/v1/health", h.http);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while client.get(&url).send().await.map(|r| !r.status().is_success()).unwrap_or(true) {
            if std::time::Instant::now() > deadline {
                for c in &mut children {
                    let _ = c.kill();
                }
                bail!("validator {} did not come up; see {}", h.address, h.dir.join("node.log").display());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    if out.json {
        let apis: Vec<String> = homes.iter().map(|h| format!("http://{}", h.http)).collect();
        println!("{}", serde_json::json!({ "apis": apis, "dev_key": args.dir.join("dev.key") }));
    } else {
        println!("tessera testnet running: {n} validators (Ctrl-C stops them)");
        for (i, h) in homes.iter().enumerate() {
            println!(
                "  validator {i}  api=http://{}  p2p={}  {}  log {}",
                h.http,
                h.p2p,
                h.address,
                h.dir.join("node.log").display()
            );
        }
        println!("  dev key      {}", args.dir.join("dev.key").display());
    }
    crate::wait_for_shutdown().await;
    for c in &mut children {
        terminate(c);
    }
    for c in &mut children {
        let _ = c.wait();
    }
    Ok(())
}

fn terminate(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
}
