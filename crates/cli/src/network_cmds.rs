//! `tessera network` (the metagraph), `tessera neuron` (slots and weights) and
//! `tessera stake` (delegation to evaluators).

use crate::wallet_cmds::{
    chain_info, connect, load_key, parse_amount, print_json, resolve_address, send, show_amount, submit, NodeArg,
    Output, SendOpts,
};
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use primitives::incentive::weight_commit_hash;
use primitives::{Action, Amount, AssetId, Hash};

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// The incentive network as btcli's metagraph shows a subnet: uid, role, stake, trust,
    /// consensus, incentive, dividends, emission.
    Show {
        #[command(flatten)]
        node: NodeArg,
    },
    /// One neuron, with its stored weights and bonds.
    Neuron {
        uid: u16,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum NeuronCmd {
    /// Take a neuron slot (uid), paying the current registration fee into the incentive pool.
    Register {
        #[arg(long)]
        key: String,
        /// Refuse to pay more than this (TSR) [default: the current fee].
        #[arg(long)]
        max_fee: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Set an evaluator's weights: UID=WEIGHT pairs (any scale; stored max-upscaled).
    Weights {
        #[arg(long)]
        key: String,
        #[arg(required = true, value_name = "UID=WEIGHT")]
        weights: Vec<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Commit-reveal networks: commit to weights now (prints the salt to reveal with).
    Commit {
        #[arg(long)]
        key: String,
        /// 32 bytes in hex [default: random]
        #[arg(long)]
        salt: Option<String>,
        #[arg(required = true, value_name = "UID=WEIGHT")]
        weights: Vec<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Reveal committed weights (in the commit's reveal epoch), with the same salt.
    Reveal {
        #[arg(long)]
        key: String,
        #[arg(long)]
        salt: String,
        #[arg(required = true, value_name = "UID=WEIGHT")]
        weights: Vec<String>,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum StakeCmd {
    /// Delegate TSR to an evaluator (your own key: self-stake).
    Add(StakeArgs),
    /// Take TSR out of an evaluator's pool; it stays locked for the unbonding period.
    Remove(StakeArgs),
    /// Unlock unstaked TSR whose unbonding period is over.
    Withdraw {
        #[arg(long)]
        key: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// An evaluator's share of its dividends, in percent (e.g. 18).
    Take {
        #[arg(long)]
        key: String,
        #[arg(long)]
        percent: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// An account's delegations and unbonding TSR.
    Show {
        /// Address, key file or wallet name.
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(clap::Args, Debug)]
pub struct StakeArgs {
    #[arg(long)]
    key: String,
    /// The evaluator's address, key file or wallet name.
    #[arg(long)]
    evaluator: String,
    /// TSR
    #[arg(long)]
    amount: String,
    #[command(flatten)]
    node: NodeArg,
}

pub async fn run_network(cmd: NetworkCmd, out: &Output) -> Result<()> {
    match cmd {
        NetworkCmd::Show { node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let net = client.network().await?;
            if out.json {
                return print_json(&net);
            }
            let tsr = |a: Amount| show_amount(Some(&chain), &AssetId::TSR, a);
            println!(
                "height {}  neurons {}/{}  tempo {}  epochs {} (next at {})",
                net.height, net.n, net.max_uids, net.tempo, net.epochs, net.next_epoch_height
            );
            println!(
                "emission {}/block  emitted {} of {}  pool {}  last epoch paid {}  registration fee {}",
                tsr(net.block_emission),
                tsr(net.emitted),
                tsr(net.emission_cap),
                tsr(net.pool),
                tsr(net.last_epoch_paid),
                tsr(net.registration_fee)
            );
            println!(
                "{:>4}  {:<9} {:>18}  {:>7} {:>7} {:>7} {:>7} {:>15}  {:>3}  HOTKEY",
                "UID", "ROLE", "STAKE (TSR)", "VTRUST", "CONSENS", "INCENT", "DIVS", "EMISSION (TSR)", "ACT"
            );
            for nv in &net.neurons {
                println!(
                    "{:>4}  {:<9} {:>18}  {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>15}  {:>3}  {}",
                    nv.uid,
                    nv.role,
                    nv.stake.to_decimal_string(9),
                    nv.validator_trust,
                    nv.consensus,
                    nv.incentive,
                    nv.dividends,
                    Amount(nv.emission as u128).to_decimal_string(9),
                    if nv.active { "yes" } else { "no" },
                    nv.hotkey
                );
            }
            Ok(())
        }
        NetworkCmd::Neuron { uid, node } => {
            let client = connect(&node)?;
            let nv = client.neuron(uid).await?.ok_or_else(|| anyhow!("uid {uid} is not registered"))?;
            print_json(&nv)
        }
    }
}

pub async fn run_neuron(cmd: NeuronCmd, out: &Output) -> Result<()> {
    match cmd {
        NeuronCmd::Register { key, max_fee, node } => {
            let k = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let max_burn = match max_fee {
                Some(f) => parse_amount(&chain, &AssetId::TSR, &f)?,
                // The fee decays block by block, so today's quote is an upper bound.
                None => client.network().await?.registration_fee,
            };
            send(&client, &chain, &k, Action::RegisterNeuron { max_burn }, &SendOpts::simple(false), out).await?;
            if !out.json {
                let net = client.network().await?;
                if let Some(nv) = net.neurons.iter().find(|nv| nv.hotkey == k.address()) {
                    println!("registered {} as uid {}", k.address(), nv.uid);
                }
            }
            Ok(())
        }
        NeuronCmd::Weights { key, weights, node } => {
            let (uids, weights) = parse_weights(&weights)?;
            submit(&node, &key, Action::SetWeights { uids, weights }, false, out).await.map(drop)
        }
        NeuronCmd::Commit { key, salt, weights, node } => {
            let (uids, weights) = parse_weights(&weights)?;
            let salt = match salt {
                Some(s) => s.parse::<Hash>().map_err(|e| anyhow!("--salt: {e}"))?,
                None => {
                    let mut b = [0u8; 32];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
                    Hash(b)
                }
            };
            let k = load_key(&key)?;
            let hash = weight_commit_hash(&k.address(), &uids, &weights, &salt);
            submit(&node, &key, Action::CommitWeights { hash }, false, out).await?;
            if !out.json {
                println!("committed; reveal in the next epoch with --salt {salt}");
            }
            Ok(())
        }
        NeuronCmd::Reveal { key, salt, weights, node } => {
            let (uids, weights) = parse_weights(&weights)?;
            let salt = salt.parse::<Hash>().map_err(|e| anyhow!("--salt: {e}"))?;
            submit(&node, &key, Action::RevealWeights { uids, weights, salt }, false, out).await.map(drop)
        }
    }
}

/// `UID=WEIGHT` pairs.
fn parse_weights(pairs: &[String]) -> Result<(Vec<u16>, Vec<u16>)> {
    let mut uids = Vec::with_capacity(pairs.len());
    let mut values = Vec::with_capacity(pairs.len());
    for w in pairs {
        let (u, v) = w.split_once('=').ok_or_else(|| anyhow!("{w:?}: expected UID=WEIGHT"))?;
        uids.push(u.trim().parse::<u16>().map_err(|_| anyhow!("{u:?} is not a uid"))?);
        values.push(v.trim().parse::<u16>().map_err(|_| anyhow!("{v:?} is not a weight (0-65535)"))?);
    }
    Ok((uids, values))
}

pub async fn run_stake(cmd: StakeCmd, out: &Output) -> Result<()> {
    match cmd {
        StakeCmd::Add(a) => stake_action(&a, false, out).await,
        StakeCmd::Remove(a) => stake_action(&a, true, out).await,
        StakeCmd::Withdraw { key, node } => submit(&node, &key, Action::WithdrawUnstaked, false, out).await.map(drop),
        StakeCmd::Take { key, percent, node } => {
            let bps = Amount::from_decimal_str(&percent, 2).map_err(|e| anyhow!("invalid percent {percent:?}: {e}"))?;
            if bps.0 > 10_000 {
                bail!("the take is a percentage, at most 100");
            }
            submit(&node, &key, Action::SetTake { take_bps: bps.0 as u16 }, false, out).await.map(drop)
        }
        StakeCmd::Show { address, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let who = resolve_address(&address)?;
            let view = client.account_stake(&who).await?;
            if out.json {
                return print_json(&view);
            }
            let tsr = |a: Amount| show_amount(Some(&chain), &AssetId::TSR, a);
            println!("{who}: staked {}", tsr(view.staked));
            for d in &view.delegations {
                println!("  on {}: {}", d.evaluator, tsr(d.value));
            }
            for u in &view.unbonding {
                println!("  unbonding {} until height {}", tsr(u.amount), u.release_height);
            }
            Ok(())
        }
    }
}

async fn stake_action(a: &StakeArgs, remove: bool, out: &Output) -> Result<()> {
    let client = connect(&a.node)?;
    let chain = chain_info(&client).await?;
    let evaluator = resolve_address(&a.evaluator)?;
    let amount = parse_amount(&chain, &AssetId::TSR, &a.amount)?;
    let action = if remove { Action::Unstake { evaluator, amount } } else { Action::Stake { evaluator, amount } };
    send(&client, &chain, &load_key(&a.key)?, action, &SendOpts::simple(false), out).await.map(drop)
}
