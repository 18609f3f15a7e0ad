//! The `tessera` binary: devnet, node, wallet, transfers, assets and benchmarks.

mod ai_cmds;
mod bench;
mod bench_gateway;
mod bench_provider;
mod bench_sale;
mod channel_cmds;
mod demo;
mod devnet_provider;
mod gateway_cmds;
mod incentive_cmds;
mod network_cmds;
mod offering_file;
mod sale_cmds;
mod testnet;
mod wallet_cmds;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ledger::Genesis;
use node::{Chain, ChainConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wallet_cmds::Output;

/// mimalloc instead of glibc malloc: blocks allocate and free megabytes each (the block,
/// its encoding, the overlay), which glibc serves with fresh zeroed pages every time.
/// Measured in BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera: a token network for AI compute", propagate_version = true)]
struct Cli {
    /// Print machine-readable JSON instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a complete local network in the foreground, with a funded dev account.
    Devnet(DevnetArgs),
    /// Run a node (solo sequencer, or a validator with --validator-key), or verify a data
    /// dir (`tessera node replay`).
    Node(NodeCmd),
    /// Write N validator homes with one genesis, and run them as processes (--run).
    Testnet(testnet::TestnetArgs),
    /// Manage key files.
    Wallet {
        #[command(subcommand)]
        cmd: wallet_cmds::WalletCmd,
    },
    /// Transfer an asset and wait until the transfer is committed.
    Transfer(wallet_cmds::TransferArgs),
    /// Show an account's balances, locks and nonce.
    Balance(wallet_cmds::BalanceArgs),
    /// Show a transaction's status and receipt.
    Tx(wallet_cmds::TxArgs),
    /// Create, mint, burn and list assets.
    Asset {
        #[command(subcommand)]
        cmd: wallet_cmds::AssetCmd,
    },
    /// Appoint role keys (genesis issuer only).
    Role {
        #[command(subcommand)]
        cmd: wallet_cmds::RoleCmd,
    },
    /// Token sales: offerings, commitments, bids, settlement, claims, reports.
    Sale {
        #[command(subcommand)]
        cmd: sale_cmds::SaleCmd,
    },
    /// The compliance registry: attest entities, bind wallets, revoke (compliance role).
    Compliance {
        #[command(subcommand)]
        cmd: sale_cmds::ComplianceCmd,
    },
    /// Vesting grants and sale lots: create, status, release, revoke.
    Vesting {
        #[command(subcommand)]
        cmd: sale_cmds::VestingCmd,
    },
    /// AI providers: register, update, deregister, list.
    Provider {
        #[command(subcommand)]
        cmd: channel_cmds::ProviderCmd,
    },
    /// Payment channels to providers: open, fund, extend, status, vouchers, claims, reclaim.
    Channel {
        #[command(subcommand)]
        cmd: channel_cmds::ChannelCmd,
    },
    /// Paid AI calls to a provider through a channel: chat, embeddings.
    Ai {
        #[command(subcommand)]
        cmd: ai_cmds::AiCmd,
    },
    /// Move a devnet's block time forward (sale windows, lockups and vesting without waiting).
    AdvanceClock(sale_cmds::AdvanceClockArgs),
    /// Demonstrations on a temporary devnet: `tessera demo ico`.
    Demo {
        #[command(subcommand)]
        cmd: demo::DemoCmd,
    },
    /// The incentive network: the metagraph (`tessera network show`), one neuron.
    Network {
        #[command(subcommand)]
        cmd: network_cmds::NetworkCmd,
    },
    /// Neuron slots: register, set weights (evaluators).
    Neuron {
        #[command(subcommand)]
        cmd: network_cmds::NeuronCmd,
    },
    /// Stake TSR on evaluators: add, remove, withdraw, take, show.
    Stake {
        #[command(subcommand)]
        cmd: network_cmds::StakeCmd,
    },
    /// Run an OpenAI-compatible gateway to the network's providers, paying from your key;
    /// with `[operator]` (or --operator-dir) a shared gateway with API keys, budgets and
    /// limits, administered by `tessera gateway keys|usage|account|requests`.
    Gateway(GatewayCmd),
    /// Run an evaluator: probe providers with paid calls, score them, set weights.
    Evaluator(EvaluatorArgs),
    /// Provider incentives: Yuma consensus (`tessera incentive epoch --input FILE`).
    Incentive {
        #[command(subcommand)]
        cmd: incentive_cmds::IncentiveCmd,
    },
    /// Benchmarks: the ledger pipeline in-process, or load over HTTP.
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct GatewayCmd {
    #[command(subcommand)]
    sub: Option<gateway_cmds::AdminCmd>,
    #[command(flatten)]
    run: GatewayArgs,
}

#[derive(Args)]
struct GatewayArgs {
    /// Config (key, node, listen, api_keys, channel_amount, channel_blocks, refresh_secs,
    /// upstream_timeout_secs); --key: the key that pays for calls.
    #[command(flatten)]
    daemon: DaemonArgs,
    /// Listen address [default 127.0.0.1:8800].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// An accepted API key (repeat); none: no authentication.
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// Operator mode with its keys, balances and usage in this directory (the config's
    /// `[operator]` section with its defaults).
    #[arg(long, conflicts_with = "api_keys")]
    operator_dir: Option<PathBuf>,
}

#[derive(Args)]
struct DaemonArgs {
    /// A TOML config; the flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The key file (required without --config).
    #[arg(long)]
    key: Option<PathBuf>,
    #[arg(long, env = "TESSERA_NODE")]
    node: Option<String>,
}

/// A daemon's TOML config from `--config`, or its defaults with just the key from `--key`;
/// with both, `--key` fills in (or replaces) the config's `key`, so a config need not name
/// one.
fn daemon_config<T: serde::de::DeserializeOwned>(args: &DaemonArgs) -> Result<T> {
    let (config, key) = (&args.config, &args.key);
    let (text, what) = match (config, key) {
        (Some(path), _) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, Some(_)) => (String::new(), "--key".to_string()),
        (None, None) => bail!("give --config FILE or --key FILE"),
    };
    let mut table: toml::Table = toml::from_str(&text).with_context(|| format!("{what}: not a valid config"))?;
    if let Some(key) = key {
        table.insert("key".into(), toml::Value::String(key.display().to_string()));
    }
    toml::Value::Table(table).try_into().with_context(|| format!("{what}: not a valid config"))
}

async fn run_gateway(args: GatewayArgs) -> Result<()> {
    let mut cfg: gateway::GatewayConfig = daemon_config(&args.daemon)?;
    if let Some(k) = args.daemon.key {
        cfg.key = k;
    }
    if let Some(n) = args.daemon.node {
        cfg.node = n;
    }
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    cfg.api_keys.extend(args.api_keys);
    if let Some(dir) = args.operator_dir {
        let op: gateway::operator::OperatorConfig =
            toml::from_str(&format!("data_dir = {:?}", dir.display().to_string()))?;
        cfg.operator = Some(op);
    }
    let listen = cfg.listen;
    let g = gateway::start(cfg).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    match g.operator() {
        Some(op) => println!(
            "tessera gateway ready: base_url={url} payer={} mode=operator deposit_to={} admin_token_file={}",
            g.payer_address(),
            op.address(),
            op.admin_token_file().display()
        ),
        None => println!("tessera gateway ready: base_url={url} payer={}", g.payer_address()),
    }
    axum::serve(listener, gateway::router(g)).with_graceful_shutdown(wait_for_shutdown()).await?;
    Ok(())
}

#[derive(Args)]
struct EvaluatorArgs {
    /// Config (key, node, models_dir, channel_amount, round_secs, prompts, texts,
    /// [scoring]); --key: the evaluator's key file.
    #[command(flatten)]
    daemon: DaemonArgs,
    #[arg(long)]
    models_dir: Option<PathBuf>,
    /// Seconds between rounds.
    #[arg(long)]
    round_secs: Option<u64>,
}

async fn run_evaluator(args: EvaluatorArgs) -> Result<()> {
    let mut cfg: evaluator::EvaluatorConfig = daemon_config(&args.daemon)?;
    if let Some(k) = args.daemon.key {
        cfg.key = k;
    }
    if let Some(n) = args.daemon.node {
        cfg.node = n;
    }
    if args.models_dir.is_some() {
        cfg.models_dir = args.models_dir;
    }
    if let Some(r) = args.round_secs {
        cfg.round_secs = r;
    }
    evaluator::run(cfg).await
}

#[derive(Args)]
struct DevnetArgs {
    /// Where the chain lives; restarting on the same dir resumes the same chain.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// API listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8645")]
    http: SocketAddr,
    /// The built-in AI provider's listen address [default: 127.0.0.1:8700, or a free port
    /// when --http has port 0].
    #[arg(long)]
    provider_http: Option<SocketAddr>,
    /// Do not start the built-in AI provider (nor the evaluator).
    #[arg(long)]
    no_provider: bool,
    /// Do not start the evaluator that scores providers for the incentive network.
    #[arg(long)]
    no_evaluator: bool,
    /// A new devnet's incentive network hides weights until revealed (commit-reveal, one
    /// epoch later); no effect on an existing data dir.
    #[arg(long)]
    commit_reveal: bool,
    /// The OpenAI-compatible gateway's listen address (an operator gateway)
    /// [default: 127.0.0.1:8800, or a free port when --http has port 0].
    #[arg(long)]
    gateway_http: Option<SocketAddr>,
    /// Do not start the gateway.
    #[arg(long)]
    no_gateway: bool,
    /// Model weights for the provider [default: $TESSERA_MODELS_DIR, $TESSERA_HOME/models,
    /// ~/.tessera/models, or ./target/models where scripts/fetch-models.sh puts them].
    #[arg(long)]
    models_dir: Option<PathBuf>,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct NodeCmd {
    #[command(subcommand)]
    sub: Option<NodeSub>,
    #[command(flatten)]
    run: NodeRunArgs,
}

#[derive(Subcommand)]
enum NodeSub {
    /// Re-execute every stored block from genesis, checking signatures, receipts and roots.
    Replay {
        #[arg(long)]
        data_dir: PathBuf,
        /// Defaults to DATA_DIR/genesis.toml.
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
}

#[derive(Args)]
struct NodeRunArgs {
    #[arg(long)]
    genesis: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:8645")]
    http: SocketAddr,
    #[command(flatten)]
    tuning: Tuning,
    #[command(flatten)]
    validator: testnet::ValidatorArgs,
}

#[derive(Args, Clone)]
struct Tuning {
    /// Most transactions per block.
    #[arg(long, default_value_t = 10_000)]
    block_txs_max: usize,
    /// Blocks between background state checkpoints.
    #[arg(long, default_value_t = 600)]
    checkpoint_interval_blocks: u64,
    /// Most transactions the mempool holds.
    #[arg(long, default_value_t = 200_000)]
    mempool_txs_max: usize,
}

impl Tuning {
    fn config(&self, data_dir: &Path) -> ChainConfig {
        let mut c = ChainConfig::new(data_dir);
        c.block_txs_max = self.block_txs_max;
        c.checkpoint_interval_blocks = self.checkpoint_interval_blocks.max(1);
        c.mempool.txs_max = self.mempool_txs_max;
        c
    }
}

fn main() {
    // candle reads /proc/cpuinfo on every matrix product unless this is set (13-18% of
    // generation speed, BENCHMARKS.md); rayon's default is the same number of threads.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let out = Output { json: cli.json };
    let result = runtime.block_on(run(cli.command, out));
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(command: Command, out: Output) -> Result<()> {
    match command {
        Command::Devnet(args) => devnet(args, &out).await,
        Command::Node(NodeCmd { sub: Some(NodeSub::Replay { data_dir, genesis }), .. }) => {
            replay(&data_dir, genesis, &out)
        }
        Command::Node(NodeCmd { sub: None, run }) => run_node(run, &out).await,
        Command::Testnet(args) => testnet::testnet(args, &out).await,
        Command::Wallet { cmd } => wallet_cmds::run_wallet(cmd, &out).await,
        Command::Transfer(args) => wallet_cmds::run_transfer(args, &out).await,
        Command::Balance(args) => wallet_cmds::run_balance(args, &out).await,
        Command::Tx(args) => wallet_cmds::run_tx(args, &out).await,
        Command::Asset { cmd } => wallet_cmds::run_asset(cmd, &out).await,
        Command::Role { cmd } => wallet_cmds::run_role(cmd, &out).await,
        Command::Sale { cmd } => sale_cmds::run_sale(cmd, &out).await,
        Command::Compliance { cmd } => sale_cmds::run_compliance(cmd, &out).await,
        Command::Vesting { cmd } => sale_cmds::run_vesting(cmd, &out).await,
        Command::Provider { cmd } => channel_cmds::run_provider(cmd, &out).await,
        Command::Channel { cmd } => channel_cmds::run_channel(cmd, &out).await,
        Command::Ai { cmd } => ai_cmds::run(cmd, &out).await,
        Command::AdvanceClock(args) => sale_cmds::run_advance_clock(args, &out).await,
        Command::Demo { cmd } => demo::run(cmd, &out).await,
        Command::Network { cmd } => network_cmds::run_network(cmd, &out).await,
        Command::Neuron { cmd } => network_cmds::run_neuron(cmd, &out).await,
        Command::Stake { cmd } => network_cmds::run_stake(cmd, &out).await,
        Command::Gateway(GatewayCmd { sub: Some(cmd), .. }) => gateway_cmds::run(cmd, &out).await,
        Command::Gateway(GatewayCmd { sub: None, run }) => run_gateway(run).await,
        Command::Evaluator(args) => run_evaluator(args).await,
        Command::Incentive { cmd } => incentive_cmds::run(cmd),
        Command::Bench { cmd } => bench::run(cmd, &out).await,
    }
}

fn default_home() -> PathBuf {
    if let Some(h) = std::env::var_os("TESSERA_HOME") {
        return PathBuf::from(h);
    }
    std::env::var_os("HOME").map_or_else(|| PathBuf::from(".tessera"), |h| PathBuf::from(h).join(".tessera"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn devnet(args: DevnetArgs, out: &Output) -> Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(|| default_home().join("devnet"));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let genesis_path = data_dir.join("genesis.toml");
    let key_path = data_dir.join("dev.key");
    // On a restart the chain is in the data dir; the genesis file is not parsed again.
    let (genesis, dev) = if genesis_path.exists() {
        let key = wallet::keystore::read(&key_path).with_context(|| format!("devnet key {}", key_path.display()))?;
        let started = storage::has_checkpoint(&data_dir);
        (if started { None } else { Some(node::genesis_file::load(&genesis_path)?) }, key.address()?)
    } else {
        let key = crypto::SigningKey::generate();
        let address = key.address();
        if key_path.exists() {
            bail!(
                "{} exists but {} does not; remove the data dir to start afresh",
                key_path.display(),
                genesis_path.display()
            );
        }
        wallet::keystore::write_new(&key_path, &wallet::keystore::unencrypted(&key))?;
        let mut genesis = node::genesis_file::devnet(address, now_ms());
        if let (true, Some(p)) = (args.commit_reveal, genesis.incentives.as_mut()) {
            p.commit_reveal = true;
        }
        write_file_synced(&genesis_path, node::genesis_file::to_toml(&genesis).as_bytes())?;
        (Some(genesis), address)
    };
    let mut config = args.tuning.config(&data_dir);
    config.dev_clock = true;
    let chain = open_chain(config, genesis.as_ref())?;
    let chain_id = chain.state().params.chain_id.clone();
    let listener =
        tokio::net::TcpListener::bind(args.http).await.with_context(|| format!("cannot listen on {}", args.http))?;
    let api = format!("http://{}", listener.local_addr()?);
    let height = chain.state().height;
    // The node serves in the background while the provider starts against it.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node_task = tokio::spawn(node::serve(chain, listener, async {
        let _ = stop_rx.await;
    }));
    let provider = if args.no_provider {
        Err("off (--no-provider)".to_string())
    } else {
        let provider_http = args.provider_http.unwrap_or_else(|| {
            let port = if args.http.port() == 0 { 0 } else { 8700 };
            SocketAddr::from(([127, 0, 0, 1], port))
        });
        devnet_provider::start(&data_dir, &api, &key_path, provider_http, args.models_dir.clone()).await
    };
    let gateway = if args.no_gateway {
        Err("off (--no-gateway)".to_string())
    } else {
        let listen = args.gateway_http.unwrap_or_else(|| {
            let port = if args.http.port() == 0 { 0 } else { 8800 };
            SocketAddr::from(([127, 0, 0, 1], port))
        });
        devnet_provider::start_gateway(&data_dir, &api, &key_path, listen).await.map_err(|e| format!("off ({e:#})"))
    };
    let mut provider_line = match &provider {
        Ok(p) => format!(" provider={} provider_address={}", p.api, p.address),
        Err(_) => String::new(),
    };
    if let Ok(g) = &gateway {
        provider_line.push_str(&format!(" gateway={} openai_env={}", g.url, g.env_file.display()));
    }
    if out.json {
        let (papi, paddr) = match &provider {
            Ok(p) => (serde_json::json!(p.api), serde_json::json!(p.address.to_string())),
            Err(e) => (serde_json::Value::Null, serde_json::json!(e)),
        };
        println!(
            "{}",
            serde_json::json!({ "api": api, "address": dev.to_string(), "key": key_path, "data_dir": data_dir, "chain_id": chain_id, "height": height, "provider": papi, "provider_address": paddr, "gateway": gateway.as_ref().ok().map(|g| &g.url), "openai_api_key": gateway.as_ref().ok().map(|g| &g.api_key), "openai_env": gateway.as_ref().ok().map(|g| &g.env_file) })
        );
    } else {
        println!("Tessera devnet");
        println!("  chain id     {}", chain_id);
        println!("  height       {height}");
        println!("  api          {api}");
        println!("  dev account  {dev} (funded with TSR; holds every role)");
        println!("  dev key      {} (unencrypted, for development only)", key_path.display());
        println!("  data dir     {}", data_dir.display());
        println!("  try          tessera balance {dev} --node {api}");
        println!("  dev clock    tessera advance-clock --days 30 --node {api} (moves block time forward)");
        match &provider {
            Ok(p) => {
                println!("  AI provider  {} ({}; all-MiniLM-L6-v2, SmolLM2-135M-Instruct)", p.api, p.address);
                println!(
                    "  paid call    tessera channel open --key {} --to {} --amount 5 --node {api}",
                    key_path.display(),
                    p.address
                );
                println!(
                    "               tessera ai chat --key {} --provider {} --node {api} \"Hello!\"",
                    key_path.display(),
                    p.api
                );
            }
            Err(why) => println!("  AI provider  {why}"),
        }
        match &gateway {
            Ok(g) => {
                println!("  OpenAI API   {} (any OpenAI client; an operator gateway)", g.url);
                println!("  API key      {} (the dev account's; 10 TSR budget)", g.api_key);
                println!("               set -a; . {}; python3 your_openai_script.py", g.env_file.display());
            }
            Err(why) => println!("  OpenAI API   {why}"),
        }
        if provider.is_ok() && !args.no_evaluator {
            println!("  incentives   an evaluator scores the providers; epochs every 50 blocks: tessera network show --node {api}");
        }
        println!("tessera devnet ready: api={api} address={dev} key={}{provider_line}", key_path.display());
    }
    if let (Ok(p), false) = (&provider, args.no_evaluator) {
        // In the background: registering, staking and loading the reference models take a
        // few seconds, and the devnet is usable meanwhile.
        let (data_dir, api, key_path, models) = (data_dir.clone(), api.clone(), key_path.clone(), p.models.clone());
        tokio::spawn(async move {
            match devnet_provider::start_evaluator(&data_dir, &api, &key_path, models).await {
                Ok(a) => tracing::info!(evaluator = %a, "evaluator running"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "evaluator off"),
            }
        });
    }
    wait_for_shutdown().await;
    stop_tx.send(()).ok();
    node_task.await??;
    Ok(())
}

async fn wait_for_shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

async fn run_node(args: NodeRunArgs, out: &Output) -> Result<()> {
    let data_dir = args.data_dir.context("--data-dir is required")?;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let stored_path = data_dir.join("genesis.toml");
    // An explicit --genesis is parsed and checked against the data dir; a restart without
    // it uses the chain already in the data dir (a large genesis file is not parsed again).
    let genesis = match (&args.genesis, stored_path.exists()) {
        (Some(path), exists) => {
            let genesis = node::genesis_file::load(path)?;
            if !exists {
                write_file_synced(&stored_path, node::genesis_file::to_toml(&genesis).as_bytes())?;
            }
            Some(genesis)
        }
        (None, true) if storage::has_checkpoint(&data_dir) => None,
        (None, true) => Some(node::genesis_file::load(&stored_path)?),
        (None, false) => bail!("--genesis FILE is required for a new data dir"),
    };
    let replicated = args.validator.validator_key.is_some();
    // A validator needs the validator set, which the stored genesis carries.
    let stored_genesis = if replicated { Some(node::genesis_file::load(&stored_path)?) } else { None };
    let listener =
        tokio::net::TcpListener::bind(args.http).await.with_context(|| format!("cannot listen on {}", args.http))?;
    let chain = open_chain_in(args.tuning.config(&data_dir), genesis.as_ref(), replicated)?;
    let validator = match &stored_genesis {
        Some(g) => Some(testnet::start_validator(chain.clone(), g, &data_dir, &args.validator)?),
        None => None,
    };
    let chain_id = chain.state().params.chain_id.clone();
    let api = format!("http://{}", listener.local_addr()?);
    let mode = validator.map_or("solo".to_string(), |a| format!("validator {a}"));
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "api": api, "chain_id": chain_id, "height": chain.state().height, "mode": mode })
        );
    } else {
        println!("tessera node ready: api={api} chain_id={} height={} mode={mode}", chain_id, chain.state().height);
    }
    serve(chain, listener).await
}

fn open_chain(config: ChainConfig, genesis: Option<&Genesis>) -> Result<Arc<Chain>> {
    open_chain_in(config, genesis, false)
}

/// Opens the chain and starts its solo sequencer, or (`replicated`) only its
/// checkpointer, for consensus to feed.
fn open_chain_in(config: ChainConfig, genesis: Option<&Genesis>, replicated: bool) -> Result<Arc<Chain>> {
    let started = std::time::Instant::now();
    let chain = Chain::open(config, genesis).context("cannot open the chain")?;
    if replicated {
        chain.start_replicated()?;
    } else {
        chain.start()?;
    }
    tracing::info!(
        height = chain.state().height.0,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "chain recovered"
    );
    Ok(chain)
}

async fn serve(chain: Arc<Chain>, listener: tokio::net::TcpListener) -> Result<()> {
    node::serve(chain, listener, wait_for_shutdown()).await?;
    Ok(())
}

fn replay(data_dir: &Path, genesis: Option<PathBuf>, out: &Output) -> Result<()> {
    let genesis_path = genesis.unwrap_or_else(|| data_dir.join("genesis.toml"));
    let genesis = node::genesis_file::load(&genesis_path)?;
    let started = std::time::Instant::now();
    let (height, root) = node::replay(data_dir, &genesis, |h| {
        if h.0 % 10_000 == 0 {
            tracing::info!(height = h.0, "replayed");
        }
    })
    .context("replay failed")?;
    let secs = started.elapsed().as_secs_f64();
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "ok": true, "height": height, "state_root": root.to_string(), "seconds": secs })
        );
    } else {
        println!("replay ok: {} blocks re-executed, every signature, receipt and root checked; state root {root} ({secs:.2}s)", height.0);
    }
    Ok(())
}

pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
