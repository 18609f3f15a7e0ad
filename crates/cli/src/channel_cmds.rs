//! `tessera provider` (registry) and `tessera channel` (payment channels and vouchers).

use crate::wallet_cmds::{
    chain_info, connect, load_key, parse_amount, print_json, resolve_address, send, show_amount, submit, NodeArg,
    Output, SendOpts,
};
use anyhow::{anyhow, bail, Result};
use api_types::{ChainInfo, ChannelView};
use clap::Subcommand;
use primitives::channel::{ChannelClaim, ModelOffer, ProviderInfo, Voucher};
use primitives::{Action, AssetId, Signature};

#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Register as an AI provider, locking a stake.
    Register {
        #[arg(long)]
        key: String,
        /// Base URL of your OpenAI-compatible API
        #[arg(long)]
        endpoint: String,
        /// MODEL:INPUT:OUTPUT, prices in TSR per million tokens (repeat per model)
        #[arg(long = "model", required = true)]
        models: Vec<String>,
        /// TSR to lock as stake
        #[arg(long)]
        stake: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Replace the endpoint and models, optionally adding stake.
    Update {
        #[arg(long)]
        key: String,
        #[arg(long)]
        endpoint: String,
        #[arg(long = "model", required = true)]
        models: Vec<String>,
        #[arg(long, default_value = "0")]
        add_stake: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Stop serving; the stake unlocks after the unbonding period.
    Deregister {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// After unbonding: unlock the stake and remove the registration.
    WithdrawStake {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Serve the built-in models over an OpenAI-compatible API, paid through channels.
    Run {
        #[arg(long)]
        config: std::path::PathBuf,
        /// Register (or update) this provider on the chain with this stake (TSR) if its
        /// registration does not list these models at this endpoint.
        #[arg(long)]
        register_stake: Option<String>,
        /// The endpoint to register [default: http://ADDRESS/v1, the address it listens on]
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// What a running provider has billed, been paid and is owed, per channel.
    Claims {
        /// The provider's API
        #[arg(long, default_value = "http://127.0.0.1:8700")]
        provider: String,
    },
    /// List registered providers, or show one.
    List {
        address: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ChannelCmd {
    /// Open a channel to a provider, escrowing TSR.
    Open {
        #[arg(long)]
        key: String,
        /// The provider (tsr1 address or wallet name)
        #[arg(long)]
        to: String,
        /// TSR to escrow
        #[arg(long)]
        amount: String,
        /// Blocks from now until the sender may reclaim
        #[arg(long, default_value_t = 864_000)]
        expiry_blocks: u64,
        /// A separate key that signs vouchers (address or wallet name)
        #[arg(long)]
        signer: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Add TSR to a channel's escrow (sender).
    Fund {
        #[arg(long)]
        key: String,
        #[arg(long)]
        channel: u64,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Move a channel's expiry later (sender).
    Extend {
        #[arg(long)]
        key: String,
        #[arg(long)]
        channel: u64,
        /// Blocks from now
        #[arg(long)]
        expiry_blocks: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One channel, or every channel an address sends on or receives from.
    Status {
        #[arg(long)]
        channel: Option<u64>,
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Take back everything escrowed, at or after the expiry (sender).
    Reclaim {
        #[arg(long)]
        key: String,
        #[arg(long)]
        channel: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Sign a voucher: the channel owes its recipient AMOUNT TSR in total at its current nonce.
    Voucher {
        /// The channel's voucher signer
        #[arg(long)]
        key: String,
        #[arg(long)]
        channel: u64,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Claim with a voucher (recipient).
    Claim {
        #[arg(long)]
        key: String,
        #[arg(long)]
        channel: u64,
        /// The voucher's cumulative amount (TSR)
        #[arg(long)]
        voucher_amount: String,
        /// The voucher's signature (hex)
        #[arg(long)]
        signature: String,
        /// Take less than the voucher (TSR) [default: all of it]
        #[arg(long)]
        amount: Option<String>,
        /// Return the rest of the escrow to the sender
        #[arg(long)]
        send_back: bool,
        #[command(flatten)]
        node: NodeArg,
    },
}

fn parse_models(chain: &ChainInfo, specs: &[String]) -> Result<Vec<ModelOffer>> {
    specs
        .iter()
        .map(|s| {
            let mut parts = s.rsplitn(3, ':');
            let (out, inp, model) = match (parts.next(), parts.next(), parts.next()) {
                (Some(o), Some(i), Some(m)) => (o, i, m),
                _ => bail!("--model {s:?}: expected MODEL:INPUT_PRICE:OUTPUT_PRICE (TSR per million tokens)"),
            };
            Ok(ModelOffer {
                model: model.to_string(),
                input_price_per_mtok: parse_amount(chain, &AssetId::TSR, inp)?,
                output_price_per_mtok: parse_amount(chain, &AssetId::TSR, out)?,
            })
        })
        .collect()
}

fn print_channel(chain: &ChainInfo, c: &ChannelView) {
    let tsr = |a| show_amount(Some(chain), &AssetId::TSR, a);
    println!("channel {}  {} -> {}  nonce {}", c.id, c.sender, c.recipient, c.nonce);
    println!(
        "  escrowed {}; deposited {}, claimed {}, reclaimed {}",
        tsr(c.escrowed),
        tsr(c.deposited),
        tsr(c.claimed),
        tsr(c.reclaimed)
    );
    println!(
        "  expires at height {}{}; vouchers signed by {}",
        c.expiry_height,
        if c.expired { " (expired)" } else { "" },
        c.signer
    );
}

pub async fn run_provider(cmd: ProviderCmd, out: &Output) -> Result<()> {
    match cmd {
        ProviderCmd::Run { config, register_stake, endpoint } => {
            let cfg = provider::server::ProviderConfig::load(&config).map_err(|e| anyhow!(e))?;
            let key = load_key(cfg.key.to_str().unwrap_or_default())?;
            let p = provider::server::start(&cfg).await.map_err(|e| anyhow!(e))?;
            // Bound before registering, so the registered endpoint carries the real port
            // (listen may say port 0).
            let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
            let api = format!("http://{}", listener.local_addr()?);
            let endpoint = endpoint.unwrap_or_else(|| format!("{api}/v1"));
            if let Some(stake) = register_stake {
                if !provider::server::registration_matches(&p, &endpoint).await {
                    let node = NodeArg { node: cfg.node.clone() };
                    let client = connect(&node)?;
                    let chain = chain_info(&client).await?;
                    let info = p.info(&endpoint);
                    let registered = client.provider(&p.address).await?.is_some();
                    let action = if registered {
                        Action::UpdateProvider { info, add_stake: primitives::Amount::ZERO }
                    } else {
                        Action::RegisterProvider { info, stake: parse_amount(&chain, &AssetId::TSR, &stake)? }
                    };
                    send(&client, &chain, &key, action, &SendOpts::simple(false), &Output { json: false }).await?;
                }
            }
            provider::server::spawn_background(p.clone(), key, &cfg);
            println!(
                "tessera provider ready: api={api}/v1 address={} models={}",
                p.address,
                p.info(&endpoint).models.len()
            );
            let app = provider::server::router(p);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
        ProviderCmd::Claims { provider } => {
            let v: serde_json::Value =
                reqwest::get(format!("{}/v1/tessera/claims", provider.trim_end_matches('/'))).await?.json().await?;
            if out.json {
                return print_json(&v);
            }
            println!("provider {}", v["provider"].as_str().unwrap_or("?"));
            println!("{:>8}  {:>20}  {:>20}  {:>20}  {:>12}", "CHANNEL", "BILLED", "PAID", "OWED", "IN FLIGHT");
            for c in v["channels"].as_array().into_iter().flatten() {
                let f = |k: &str| c[k].as_str().unwrap_or("0").to_string();
                println!(
                    "{:>8}  {:>20}  {:>20}  {:>20}  {:>12}",
                    f("channel"),
                    f("billed"),
                    f("paid"),
                    f("owed"),
                    f("in_flight")
                );
            }
            Ok(())
        }
        ProviderCmd::Register { key, endpoint, models, stake, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let info = ProviderInfo { endpoint, models: parse_models(&chain, &models)? };
            info.check().map_err(|e| anyhow!("invalid provider: {e}"))?;
            let stake = parse_amount(&chain, &AssetId::TSR, &stake)?;
            submit(&node, &key, Action::RegisterProvider { info, stake }, false, out).await.map(drop)
        }
        ProviderCmd::Update { key, endpoint, models, add_stake, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let info = ProviderInfo { endpoint, models: parse_models(&chain, &models)? };
            info.check().map_err(|e| anyhow!("invalid provider: {e}"))?;
            let add_stake = parse_amount(&chain, &AssetId::TSR, &add_stake)?;
            submit(&node, &key, Action::UpdateProvider { info, add_stake }, false, out).await.map(drop)
        }
        ProviderCmd::Deregister { key, node } => {
            submit(&node, &key, Action::DeregisterProvider, false, out).await.map(drop)
        }
        ProviderCmd::WithdrawStake { key, node } => {
            submit(&node, &key, Action::WithdrawProviderStake, false, out).await.map(drop)
        }
        ProviderCmd::List { address, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let list = match address {
                Some(a) => {
                    let a = resolve_address(&a)?;
                    vec![client.provider(&a).await?.ok_or_else(|| anyhow!("{a} is not a registered provider"))?]
                }
                None => client.providers().await?,
            };
            if out.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no providers");
            }
            for p in &list {
                println!(
                    "{}  {}  [{}] stake {}",
                    p.address,
                    p.endpoint,
                    p.status,
                    show_amount(Some(&chain), &AssetId::TSR, p.stake)
                );
                for m in &p.models {
                    println!(
                        "  {:<32} input {} / output {} per million tokens",
                        m.model,
                        show_amount(Some(&chain), &AssetId::TSR, m.input_price_per_mtok),
                        show_amount(Some(&chain), &AssetId::TSR, m.output_price_per_mtok)
                    );
                }
            }
            Ok(())
        }
    }
}

pub async fn run_channel(cmd: ChannelCmd, out: &Output) -> Result<()> {
    match cmd {
        ChannelCmd::Open { key, to, amount, expiry_blocks, signer, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let recipient = resolve_address(&to)?;
            let voucher_signer = signer.map(|s| resolve_address(&s)).transpose()?;
            let amount = parse_amount(&chain, &AssetId::TSR, &amount)?;
            let expiry_height = chain.height.0 + expiry_blocks.max(1);
            let opener = load_key(&key)?.address();
            submit(&node, &key, Action::OpenChannel { recipient, voucher_signer, amount, expiry_height }, false, out)
                .await?;
            let id = client
                .account_channels(&opener)
                .await?
                .into_iter()
                .filter(|c| c.sender == opener && c.recipient == recipient)
                .map(|c| c.id)
                .max();
            if let (Some(id), false) = (id, out.json) {
                println!("channel {id} open until height {expiry_height}");
            }
            Ok(())
        }
        ChannelCmd::Fund { key, channel, amount, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let amount = parse_amount(&chain, &AssetId::TSR, &amount)?;
            submit(&node, &key, Action::FundChannel { channel, amount }, false, out).await.map(drop)
        }
        ChannelCmd::Extend { key, channel, expiry_blocks, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let expiry_height = chain.height.0 + expiry_blocks.max(1);
            submit(&node, &key, Action::ExtendChannel { channel, expiry_height }, false, out).await.map(drop)
        }
        ChannelCmd::Status { channel, address, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let list = match (channel, address) {
                (Some(id), None) => vec![client.channel(id).await?.ok_or_else(|| anyhow!("no channel {id}"))?],
                (None, Some(a)) => client.account_channels(&resolve_address(&a)?).await?,
                _ => bail!("give --channel or --address"),
            };
            if out.json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no channels");
            }
            for c in &list {
                print_channel(&chain, c);
            }
            Ok(())
        }
        ChannelCmd::Reclaim { key, channel, node } => {
            submit(&node, &key, Action::ReclaimChannel { channel }, false, out).await.map(drop)
        }
        ChannelCmd::Voucher { key, channel, amount, node } => {
            let signer = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let c = client.channel(channel).await?.ok_or_else(|| anyhow!("no channel {channel}"))?;
            if c.signer != signer.address() {
                bail!("channel {channel}'s vouchers are signed by {}, not {}", c.signer, signer.address());
            }
            let amount = parse_amount(&chain, &AssetId::TSR, &amount)?;
            let voucher = Voucher { chain_id: chain.chain_id.clone(), channel, nonce: c.nonce, amount };
            let signature = signer.sign_digest(&voucher.signing_hash());
            let v = serde_json::json!({
                "chain_id": voucher.chain_id, "channel": channel.to_string(), "nonce": c.nonce.to_string(),
                "amount": amount, "signature": signature,
            });
            if out.json {
                return print_json(&v);
            }
            println!(
                "voucher for channel {channel} at nonce {}: {}",
                c.nonce,
                show_amount(Some(&chain), &AssetId::TSR, amount)
            );
            println!("signature {}", hex::encode(signature.0));
            Ok(())
        }
        ChannelCmd::Claim { key, channel, voucher_amount, signature, amount, send_back, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let voucher_amount = parse_amount(&chain, &AssetId::TSR, &voucher_amount)?;
            let amount = match amount {
                Some(a) => parse_amount(&chain, &AssetId::TSR, &a)?,
                None => voucher_amount,
            };
            let mut sig = [0u8; 64];
            hex::decode_to_slice(signature.trim(), &mut sig)
                .map_err(|_| anyhow!("--signature must be 128 hex characters"))?;
            let claim = ChannelClaim { channel, voucher_amount, signature: Signature(sig), amount, send_back };
            submit(&node, &key, Action::ClaimChannels { claims: vec![claim] }, false, out).await.map(drop)
        }
    }
}
