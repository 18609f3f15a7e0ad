//! `tessera sale`, `tessera compliance` and `tessera vesting`: the compliant sale from the
//! command line. Every write is one signed transaction through `POST /v1/txs`; every read
//! is a JSON endpoint (see `/v1/openapi.json`).

use crate::offering_file::{percent_to_bps, OfferingFile};
use crate::wallet_cmds::{
    chain_info, connect, find_asset, load_key, parse_amount, print_json, resolve_address, send, show_amount, submit,
    NodeArg, Output, SendOpts,
};
use anyhow::{anyhow, bail, Context, Result};
use api_types::{ChainInfo, OfferingView};
use clap::Subcommand;
use ledger::vesting::{format_utc, parse_utc};
use primitives::sale::{
    regcf_investment_limit, Accreditation, AccreditationMethod, Attestation, CliffKind, InvestorClass, Region,
    Schedule, SchedulePart, Screening,
};
use primitives::{Action, Amount, AssetId, EntityId};
use std::path::PathBuf;

/// An entity argument: 64 hex characters are an entity id; anything else is the
/// compliance provider's reference, hashed into the id.
fn entity_arg(s: &str) -> EntityId {
    s.parse().unwrap_or_else(|_| EntityId::from_reference(s))
}

fn date_arg(s: &str) -> Result<u64, String> {
    parse_utc(s)
}

#[derive(clap::Args, Debug)]
pub struct AdvanceClockArgs {
    #[arg(long, default_value_t = 0)]
    pub days: u64,
    #[arg(long, default_value_t = 0)]
    pub hours: u64,
    #[arg(long, default_value_t = 0)]
    pub minutes: u64,
    #[command(flatten)]
    pub node: NodeArg,
}

pub async fn run_advance_clock(args: AdvanceClockArgs, out: &Output) -> Result<()> {
    let ms = args.days * 86_400_000 + args.hours * 3_600_000 + args.minutes * 60_000;
    if ms == 0 {
        bail!("give --days, --hours or --minutes");
    }
    let client = connect(&args.node)?;
    let now = client.advance_clock(ms).await?;
    if out.json {
        return print_json(&serde_json::json!({ "now_ms": now.to_string(), "now": format_utc(now) }));
    }
    println!("block time is now {}", format_utc(now));
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum SaleCmd {
    /// Create an offering from a TOML config (asset issuer only); prints its id.
    Create {
        #[arg(long)]
        key: String,
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Validate an offering config and print it as the ledger will store it.
    Check {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Show one offering (tranches, demand, settlement) or list them all.
    Status {
        offering: Option<u64>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Commit quote money to a tranche (locked until settlement).
    Commit {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[arg(long, default_value_t = 0)]
        tranche: u16,
        /// Decimal amount of the quote asset
        #[arg(long)]
        amount: String,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Bid in a batch auction: up to QUANTITY tokens at up to PRICE (quote per price unit).
    Bid {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[arg(long, default_value_t = 0)]
        tranche: u16,
        #[arg(long)]
        price: String,
        #[arg(long)]
        quantity: String,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Cancel your commitment while the tranche allows it.
    Cancel {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[arg(long, default_value_t = 0)]
        tranche: u16,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Settle every tranche after the last close (offering creator).
    Finalize {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Deliver tokens and refunds: for ENTITY (anyone may) or for the signer's own entity,
    /// in one tranche or all.
    Claim {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[arg(long)]
        tranche: Option<u16>,
        #[arg(long)]
        entity: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Take the proceeds received and the unsold tokens (offering creator).
    Withdraw {
        #[arg(long)]
        key: String,
        #[arg(long)]
        offering: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Raise by tranche and jurisdiction.
    Report {
        #[arg(long)]
        offering: u64,
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// The audit trail: every compliance decision, sale and vesting action, and every
    /// transfer refused by a restriction, from the receipts (default: the last 1,000 blocks).
    Audit {
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Cap table of an asset: holders, balances, locked and vested, class, jurisdiction.
    Captable {
        #[arg(long, default_value = "TSR")]
        asset: AssetId,
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum ComplianceCmd {
    /// Record (or replace) what KYC established about an entity (compliance role).
    Attest {
        #[arg(long)]
        key: String,
        /// The compliance provider's reference (hashed) or a 64-hex entity id
        #[arg(long)]
        entity: String,
        /// ISO 3166 code: "DE", or a subdivision such as "UA-43"
        #[arg(long)]
        jurisdiction: Region,
        /// Regulation S U.S. person
        #[arg(long)]
        us_person: bool,
        /// retail, accredited, qualified_purchaser, institutional
        #[arg(long, default_value = "retail")]
        class: InvestorClass,
        /// How accreditation was verified: self_certified, income, net_worth,
        /// professional_license, third_party_letter, minimum_investment
        #[arg(long)]
        accreditation: Option<String>,
        /// When the accreditation verification lapses (YYYY-MM-DD)
        #[arg(long, value_parser = date_arg)]
        accreditation_expires: Option<u64>,
        /// When KYC/KYB must be renewed (YYYY-MM-DD)
        #[arg(long, value_parser = date_arg)]
        kyc_expires: u64,
        /// The entity matched a sanctions list
        #[arg(long)]
        sanctions_hit: bool,
        /// Sanctions-list version used
        #[arg(long)]
        list: String,
        /// Reg CF: annual income in dollars (with --net-worth computes the 12-month limit)
        #[arg(long)]
        income: Option<String>,
        #[arg(long)]
        net_worth: Option<String>,
        /// The quote asset the Reg CF limit is expressed in (one unit = one dollar)
        #[arg(long, default_value = "USD")]
        quote: AssetId,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Bind a wallet to an entity (compliance role).
    Bind {
        #[arg(long)]
        key: String,
        #[arg(long)]
        entity: String,
        /// tsr1 address or wallet name
        #[arg(long)]
        wallet: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Unbind a wallet (compliance role).
    Unbind {
        #[arg(long)]
        key: String,
        #[arg(long)]
        wallet: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Revoke an entity: it can no longer buy, and its wallets can no longer transfer.
    Revoke {
        #[arg(long)]
        key: String,
        #[arg(long)]
        entity: String,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Show an entity's attestation and wallets.
    Show {
        #[arg(long)]
        entity: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum VestingCmd {
    /// Grant tokens that vest on a schedule (they leave the signer now, locked).
    Create {
        #[arg(long)]
        key: String,
        /// tsr1 address or wallet name
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "TSR")]
        asset: AssetId,
        /// Decimal amount
        #[arg(long)]
        amount: String,
        /// monthly, continuous, tranches or lockup
        #[arg(long, default_value = "monthly")]
        schedule: String,
        #[arg(long, value_parser = date_arg)]
        start: u64,
        /// monthly: total months; continuous: total days
        #[arg(long)]
        duration: Option<u64>,
        /// monthly: cliff months; continuous: cliff days
        #[arg(long, default_value_t = 0)]
        cliff: u64,
        /// The linear clock starts at the cliff (default: catch up at the cliff)
        #[arg(long)]
        from_zero: bool,
        /// Percent unlocked at the start
        #[arg(long)]
        tge_percent: Option<String>,
        /// tranches: "3:25,6:25,12:25,18:25" (months:percent)
        #[arg(long)]
        parts: Option<String>,
        /// The grantor may revoke the unvested part
        #[arg(long)]
        revocable: bool,
        #[command(flatten)]
        node: NodeArg,
    },
    /// A grant or lot by id, or every locked grant and lot of an address.
    Status {
        #[arg(long)]
        grant: Option<u64>,
        #[arg(long)]
        address: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Unlock what has vested (transfers also do this on demand).
    Release {
        #[arg(long)]
        key: String,
        #[arg(long)]
        grant: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Revoke a revocable grant: the vested part stays, the rest returns (grantor).
    Revoke {
        #[arg(long)]
        key: String,
        #[arg(long)]
        grant: u64,
        #[command(flatten)]
        node: NodeArg,
    },
}

fn load_offering_file(path: &PathBuf, chain: &ChainInfo) -> Result<primitives::sale::OfferingConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file = OfferingFile::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let asset = find_asset(chain, &file.asset)?.decimals;
    let quote = find_asset(chain, &file.quote)?.decimals;
    file.to_config(asset, quote).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn print_offering(chain: &ChainInfo, o: &OfferingView) {
    let (asset, quote) = (&o.config.asset, &o.config.quote);
    println!("offering {}  {:?}  [{}]", o.id, o.config.name, o.status);
    println!("  sells {asset} for {quote}; creator {}", o.creator);
    println!("  soft cap {}", show_amount(Some(chain), quote, o.config.soft_cap));
    for t in &o.tranches {
        println!("  tranche {} {:?}: {} / {}", t.index, t.name, t.exemption, t.mechanism);
        println!(
            "    supply {}; {} commitments escrowing {}",
            show_amount(Some(chain), asset, t.supply),
            t.commitments,
            show_amount(Some(chain), quote, t.escrowed)
        );
        if let Some(p) = t.current_price {
            println!("    clock price {} per price unit", show_amount(Some(chain), quote, p));
        }
        if let Some(s) = &t.settlement {
            let price = s.price.map(|p| format!(" at {}", show_amount(Some(chain), quote, p))).unwrap_or_default();
            println!(
                "    settled {}{price}: sold {}, proceeds {}, refunds {}",
                s.rule,
                show_amount(Some(chain), asset, s.tokens_sold),
                show_amount(Some(chain), quote, s.proceeds),
                show_amount(Some(chain), quote, s.refunds)
            );
        }
    }
    if o.status != "open" {
        println!(
            "  total sold {}, proceeds {} ({} withdrawn)",
            show_amount(Some(chain), asset, o.tokens_sold),
            show_amount(Some(chain), quote, o.proceeds),
            show_amount(Some(chain), quote, o.proceeds_withdrawn)
        );
    }
}

pub async fn run_sale(cmd: SaleCmd, out: &Output) -> Result<()> {
    match cmd {
        SaleCmd::Create { key, config, node } => {
            let signer = load_key(&key)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let config = load_offering_file(&config, &chain)?;
            let quiet = Output { json: out.json };
            send(&client, &chain, &signer, Action::CreateOffering { config }, &SendOpts::simple(false), &quiet).await?;
            let mine =
                client.offerings().await?.into_iter().filter(|o| o.creator == signer.address()).max_by_key(|o| o.id);
            let o = mine.ok_or_else(|| anyhow!("the offering was created but is not listed"))?;
            if !out.json {
                println!("offering {} created", o.id);
            }
            Ok(())
        }
        SaleCmd::Check { config, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let config = load_offering_file(&config, &chain)?;
            if out.json {
                return print_json(&config);
            }
            println!("{:?}: {} tranches, valid", config.name, config.tranches.len());
            for t in &config.tranches {
                println!(
                    "  {:?}: {} {}, supply {}, {} .. {}",
                    t.name,
                    t.exemption.name(),
                    t.mechanism.name(),
                    show_amount(Some(&chain), &config.asset, t.supply),
                    format_utc(t.opens_ms),
                    format_utc(t.closes_ms)
                );
            }
            Ok(())
        }
        SaleCmd::Status { offering, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let list = match offering {
                Some(id) => vec![client.offering(id).await?.ok_or_else(|| anyhow!("no offering {id}"))?],
                None => client.offerings().await?,
            };
            if out.json {
                return if offering.is_some() { print_json(&list[0]) } else { print_json(&list) };
            }
            if list.is_empty() {
                println!("no offerings");
            }
            for o in &list {
                print_offering(&chain, o);
            }
            Ok(())
        }
        SaleCmd::Commit { key, offering, tranche, amount, no_wait, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let o = client.offering(offering).await?.ok_or_else(|| anyhow!("no offering {offering}"))?;
            let amount = parse_amount(&chain, &o.config.quote, &amount)?;
            submit(&node, &key, Action::Commit { offering, tranche, amount }, no_wait, out).await.map(drop)
        }
        SaleCmd::Bid { key, offering, tranche, price, quantity, no_wait, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let o = client.offering(offering).await?.ok_or_else(|| anyhow!("no offering {offering}"))?;
            let price = parse_amount(&chain, &o.config.quote, &price)?;
            let quantity = parse_amount(&chain, &o.config.asset, &quantity)?;
            submit(&node, &key, Action::Bid { offering, tranche, price, quantity }, no_wait, out).await.map(drop)
        }
        SaleCmd::Cancel { key, offering, tranche, node } => {
            submit(&node, &key, Action::CancelCommitment { offering, tranche }, false, out).await.map(drop)
        }
        SaleCmd::Finalize { key, offering, node } => {
            submit(&node, &key, Action::FinalizeOffering { offering }, false, out).await.map(drop)
        }
        SaleCmd::Claim { key, offering, tranche, entity, node } => {
            let signer = load_key(&key)?;
            let client = connect(&node)?;
            let entity = match entity {
                Some(e) => entity_arg(&e),
                None => client
                    .account(&signer.address())
                    .await?
                    .entity
                    .ok_or_else(|| anyhow!("{} is not bound to an entity; pass --entity", signer.address()))?,
            };
            let o = client.offering(offering).await?.ok_or_else(|| anyhow!("no offering {offering}"))?;
            let tranches: Vec<u16> = match tranche {
                Some(t) => vec![t],
                None => (0..o.tranches.len() as u16).collect(),
            };
            let mut claimed = 0;
            for t in tranches {
                let Some(c) = client.commitment(offering, t, &entity).await? else { continue };
                if c.claimed {
                    continue;
                }
                submit(&node, &key, Action::Claim { offering, tranche: t, entity }, false, out).await?;
                claimed += 1;
            }
            if claimed == 0 {
                bail!("entity {entity} has nothing left to claim in offering {offering}");
            }
            Ok(())
        }
        SaleCmd::Withdraw { key, offering, node } => {
            submit(&node, &key, Action::WithdrawProceeds { offering }, false, out).await.map(drop)
        }
        SaleCmd::Report { offering, csv, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let o = client.offering(offering).await?.ok_or_else(|| anyhow!("no offering {offering}"))?;
            let report = client.offering_report(offering).await?;
            if out.json {
                return print_json(&report);
            }
            let (a, q) = (&o.config.asset, &o.config.quote);
            if csv {
                println!("tranche,jurisdiction,entities,committed,tokens,paid,refunded");
                for r in &report.rows {
                    println!(
                        "{},{},{},{},{},{},{}",
                        r.tranche, r.jurisdiction, r.entities, r.committed, r.tokens, r.paid, r.refunded
                    );
                }
                return Ok(());
            }
            println!("offering {offering} [{}]", report.status);
            println!(
                "{:>7}  {:<6}  {:>8}  {:>22}  {:>22}  {:>22}",
                "TRANCHE", "JURIS", "ENTITIES", "COMMITTED", "TOKENS", "REFUNDED"
            );
            for r in &report.rows {
                println!(
                    "{:>7}  {:<6}  {:>8}  {:>22}  {:>22}  {:>22}",
                    r.tranche,
                    r.jurisdiction,
                    r.entities,
                    show_amount(Some(&chain), q, r.committed),
                    show_amount(Some(&chain), a, r.tokens),
                    show_amount(Some(&chain), q, r.refunded)
                );
            }
            Ok(())
        }
        SaleCmd::Audit { from, to, csv, node } => {
            let client = connect(&node)?;
            let rows = client.audit(from, to).await?;
            if out.json {
                return print_json(&rows);
            }
            if csv {
                println!("height,timestamp,tx_hash,signer,action,subject,status,code");
            }
            for r in &rows {
                let code = r.code.clone().unwrap_or_default();
                if csv {
                    let subject = r.subject.replace('"', "\"\"");
                    println!(
                        "{},{},{},{},{},\"{subject}\",{},{code}",
                        r.height.0,
                        format_utc(r.timestamp_ms),
                        r.tx_hash,
                        r.signer,
                        r.action,
                        r.status
                    );
                } else {
                    println!(
                        "{:>8}  {}  {:<18} {:<9} {:<28} {}",
                        r.height.0,
                        format_utc(r.timestamp_ms),
                        r.action,
                        r.status,
                        code,
                        r.subject
                    );
                }
            }
            Ok(())
        }
        SaleCmd::Captable { asset, csv, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let rows = client.cap_table(&asset).await?;
            if out.json {
                return print_json(&rows);
            }
            let d = find_asset(&chain, &asset)?.decimals;
            if csv {
                println!("address,balance,locked,vested,entity,class,jurisdiction");
            } else {
                println!(
                    "{:<62}  {:>22}  {:>22}  {:>22}  {:<19}  JURIS",
                    "HOLDER", "BALANCE", "LOCKED", "VESTED", "CLASS"
                );
            }
            for r in &rows {
                let (b, l, v) =
                    (r.balance.to_decimal_string(d), r.locked.to_decimal_string(d), r.vested.to_decimal_string(d));
                let class = r.class.clone().unwrap_or_default();
                let juris = r.jurisdiction.clone().unwrap_or_default();
                if csv {
                    let entity = r.entity.map(|e| e.to_string()).unwrap_or_default();
                    println!("{},{b},{l},{v},{entity},{class},{juris}", r.address);
                } else {
                    println!("{:<62}  {b:>22}  {l:>22}  {v:>22}  {class:<19}  {juris}", r.address.to_string());
                }
            }
            Ok(())
        }
    }
}

pub async fn run_compliance(cmd: ComplianceCmd, out: &Output) -> Result<()> {
    match cmd {
        ComplianceCmd::Attest {
            key,
            entity,
            jurisdiction,
            us_person,
            class,
            accreditation,
            accreditation_expires,
            kyc_expires,
            sanctions_hit,
            list,
            income,
            net_worth,
            quote,
            node,
        } => {
            let accreditation = match (accreditation, accreditation_expires) {
                (None, None) => None,
                (Some(m), Some(expires_ms)) => {
                    let method: AccreditationMethod = serde_json::from_value(serde_json::Value::String(m.clone()))
                        .map_err(|_| anyhow!("unknown accreditation method {m:?}"))?;
                    Some(Accreditation { method, expires_ms })
                }
                _ => bail!("--accreditation and --accreditation-expires go together"),
            };
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let regcf_limit = match (income, net_worth) {
                (None, None) => None,
                (Some(i), Some(n)) => {
                    let d = find_asset(&chain, &quote)?.decimals;
                    let dollar = Amount(10u128.pow(u32::from(d)));
                    let income = parse_amount(&chain, &quote, &i)?;
                    let worth = parse_amount(&chain, &quote, &n)?;
                    regcf_investment_limit(income, worth, class >= InvestorClass::Accredited, dollar)
                }
                _ => bail!("--income and --net-worth go together"),
            };
            let id = entity_arg(&entity);
            let attestation = Attestation {
                jurisdiction,
                us_person,
                class,
                accreditation,
                kyc_expires_ms: kyc_expires,
                screening: if sanctions_hit { Screening::Hit } else { Screening::Clear },
                screening_list: list,
                regcf_limit,
            };
            if !out.json {
                println!("entity {id}");
            }
            submit(&node, &key, Action::AttestEntity { entity: id, attestation }, false, out).await.map(drop)
        }
        ComplianceCmd::Bind { key, entity, wallet, node } => {
            let wallet = resolve_address(&wallet)?;
            submit(&node, &key, Action::BindWallet { entity: entity_arg(&entity), wallet }, false, out).await.map(drop)
        }
        ComplianceCmd::Unbind { key, wallet, node } => {
            let wallet = resolve_address(&wallet)?;
            submit(&node, &key, Action::UnbindWallet { wallet }, false, out).await.map(drop)
        }
        ComplianceCmd::Revoke { key, entity, node } => {
            submit(&node, &key, Action::RevokeEntity { entity: entity_arg(&entity) }, false, out).await.map(drop)
        }
        ComplianceCmd::Show { entity, node } => {
            let client = connect(&node)?;
            let id = entity_arg(&entity);
            let e = client.entity(&id).await?.ok_or_else(|| anyhow!("no entity {id}"))?;
            if out.json {
                return print_json(&e);
            }
            let a = &e.attestation;
            println!("entity {id}{}", if e.revoked { "  [REVOKED]" } else { "" });
            println!("  {} {}{}", a.jurisdiction, a.class.name(), if a.us_person { ", U.S. person" } else { "" });
            if let Some(acc) = &a.accreditation {
                println!("  accreditation {:?} until {}", acc.method, format_utc(acc.expires_ms));
            }
            println!(
                "  KYC until {}; screening {:?} ({})",
                format_utc(a.kyc_expires_ms),
                a.screening,
                a.screening_list
            );
            for w in &e.wallets {
                println!("  wallet {w}");
            }
            Ok(())
        }
    }
}

pub async fn run_vesting(cmd: VestingCmd, out: &Output) -> Result<()> {
    match cmd {
        VestingCmd::Create {
            key,
            to,
            asset,
            amount,
            schedule,
            start,
            duration,
            cliff,
            from_zero,
            tge_percent,
            parts,
            revocable,
            node,
        } => {
            let tge_bps =
                tge_percent.as_deref().map_or(Ok(0), |p| percent_to_bps("--tge-percent", p)).map_err(|e| anyhow!(e))?;
            let cliff_kind = if from_zero { CliffKind::FromZero } else { CliffKind::CatchUp };
            let schedule = match schedule.as_str() {
                "monthly" => Schedule::Monthly {
                    start_ms: start,
                    tge_bps,
                    cliff_months: u32::try_from(cliff)?,
                    months: u32::try_from(duration.ok_or_else(|| anyhow!("--duration (months) is required"))?)?,
                    cliff: cliff_kind,
                },
                "continuous" => Schedule::Continuous {
                    start_ms: start,
                    tge_bps,
                    cliff_ms: cliff * 86_400_000,
                    duration_ms: duration.ok_or_else(|| anyhow!("--duration (days) is required"))? * 86_400_000,
                    cliff: cliff_kind,
                },
                "tranches" => {
                    let spec = parts.ok_or_else(|| anyhow!("--parts months:percent,... is required"))?;
                    let parts = spec
                        .split(',')
                        .map(|p| {
                            let (m, pct) =
                                p.split_once(':').ok_or_else(|| anyhow!("part {p:?} is not months:percent"))?;
                            Ok(SchedulePart {
                                months: m.trim().parse()?,
                                bps: percent_to_bps("percent", pct.trim()).map_err(|e| anyhow!(e))?,
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Schedule::Tranches { start_ms: start, parts }
                }
                "lockup" => Schedule::lockup(start),
                other => bail!("unknown schedule {other:?} (monthly, continuous, tranches, lockup)"),
            };
            schedule.check().map_err(|e| anyhow!("invalid schedule: {e}"))?;
            let beneficiary = resolve_address(&to)?;
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let amount = parse_amount(&chain, &asset, &amount)?;
            let action = Action::CreateGrant { beneficiary, asset, amount, schedule, revocable };
            submit(&node, &key, action, false, out).await.map(drop)
        }
        VestingCmd::Status { grant, address, node } => {
            let client = connect(&node)?;
            let chain = chain_info(&client).await?;
            let grants = match (grant, address) {
                (Some(id), None) => vec![client.grant(id).await?.ok_or_else(|| anyhow!("no grant {id}"))?],
                (None, Some(a)) => client.account_grants(&resolve_address(&a)?).await?,
                _ => bail!("give --grant or --address"),
            };
            if out.json {
                return print_json(&grants);
            }
            if grants.is_empty() {
                println!("no locked grants or lots");
            }
            for g in &grants {
                let a = &g.asset;
                println!("grant {} ({}) to {}", g.id, g.source, g.beneficiary);
                println!(
                    "  total {}, vested {}, released {}; fully vested {}{}",
                    show_amount(Some(&chain), a, g.total),
                    show_amount(Some(&chain), a, g.vested),
                    show_amount(Some(&chain), a, g.released),
                    format_utc(g.fully_vested_ms),
                    match (g.revocable, g.revoked_ms) {
                        (_, Some(t)) => format!("; revoked {}", format_utc(t)),
                        (true, None) => "; revocable".into(),
                        (false, None) => String::new(),
                    }
                );
            }
            Ok(())
        }
        VestingCmd::Release { key, grant, node } => {
            submit(&node, &key, Action::ReleaseVested { grant }, false, out).await.map(drop)
        }
        VestingCmd::Revoke { key, grant, node } => {
            submit(&node, &key, Action::RevokeGrant { grant }, false, out).await.map(drop)
        }
    }
}
