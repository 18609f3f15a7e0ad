//! `tessera demo ico`: a complete compliant sale on a temporary devnet, through the real
//! node, HTTP API and event stream: the custodian credits investors, compliance attests
//! them (some ineligible: a sanctioned jurisdiction, unaccredited U.S. persons, expired
//! accreditations, a sanctions hit), N investors commit, the sale is oversubscribed and
//! settles, investors claim tokens and refunds, lots vest over simulated months (the
//! dev clock), and the report is checked to add up. Exits non-zero if anything does not.

use crate::wallet_cmds::{print_json, Output};
use anyhow::{anyhow, bail, Context, Result};
use api_types::{OfferingView, ReceiptView};
use clap::Subcommand;
use crypto::SigningKey;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::vesting::{add_months, format_utc};
use ledger::{Genesis, GenesisAsset, GenesisBalance, GenesisRoles};
use node::{Chain, ChainConfig};
use primitives::sale::{
    Accreditation, AccreditationMethod, Attestation, Eligibility, Exemption, Fill, InvestorClass, LotRule, Mechanism,
    OfferingConfig, Region, Resale, Schedule, Screening, TrancheConfig, UsPersons,
};
use primitives::{Action, Address, Amount, AssetId, EntityId, Hash, SignedTransaction, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wallet::client::Client;

#[derive(Subcommand, Debug)]
pub enum DemoCmd {
    /// A full compliant token sale on a temporary devnet.
    Ico {
        /// Number of investors
        #[arg(long, default_value_t = 1000)]
        investors: u32,
    },
}

pub async fn run(cmd: DemoCmd, out: &Output) -> Result<()> {
    match cmd {
        DemoCmd::Ico { investors } => ico(investors, out).await,
    }
}

const TSR: u128 = 1_000_000_000;
const USD: u128 = 1_000_000;
const DAY: u64 = 86_400_000;
/// $0.50 per TSR.
const PRICE: u128 = USD / 2;
/// Transactions per submitted batch (and most pending from one signer at once).
const CHUNK: usize = 1000;

fn usd() -> AssetId {
    AssetId::new("USD").expect("valid symbol")
}

/// Who investor `i` is. Deterministic, so every run tells the same story.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    /// Verified accredited U.S. person: the Reg D 506(c) tranche.
    UsAccredited,
    /// Non-U.S. person: the Reg S tranche.
    NonUs,
    /// Resident of a comprehensively sanctioned country (Iran): blocked.
    SanctionedJurisdiction,
    /// U.S. retail investor trying the Reg D tranche: not accredited.
    UsUnaccredited,
    /// Accredited U.S. person whose verification lapsed before the sale.
    ExpiredAccreditation,
    /// Matched a sanctions list at screening.
    SanctionsHit,
}

fn profile(i: u32) -> Profile {
    if i % 100 == 37 {
        return Profile::SanctionsHit;
    }
    match i % 20 {
        0..=5 => Profile::UsAccredited,
        17 => Profile::SanctionedJurisdiction,
        18 => Profile::UsUnaccredited,
        19 => Profile::ExpiredAccreditation,
        _ => Profile::NonUs,
    }
}

const COUNTRIES: [&str; 11] = ["DE", "GB", "JP", "SG", "BR", "FR", "KR", "CH", "AE", "CA", "AU"];

fn rand(i: u32, salt: &str) -> u64 {
    let h = blake3::hash(format!("tessera demo {salt} {i}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The commitment investor `i` makes, in USD base units.
fn commitment(i: u32) -> u128 {
    match profile(i) {
        Profile::UsAccredited | Profile::UsUnaccredited | Profile::ExpiredAccreditation => {
            (200_000 + u128::from(rand(i, "amount") % 1_800_000)) * USD
        }
        _ => (1_000 + u128::from(rand(i, "amount") % 99_000)) * USD,
    }
}

fn tranche_of(p: Profile) -> u16 {
    match p {
        Profile::UsAccredited | Profile::UsUnaccredited | Profile::ExpiredAccreditation => 0,
        _ => 1,
    }
}

struct Investor {
    key: SigningKey,
    entity: EntityId,
    profile: Profile,
    amount: u128,
}

/// Submits signed transactions in batches through the API and waits for each receipt on
/// the event stream.
struct Driver {
    client: Client,
    receipts: Arc<ReceiptMap>,
    nonces: HashMap<Address, u64>,
    chain_id: String,
    fee: Amount,
}

/// Receipts seen on the event stream, by transaction hash.
#[derive(Default)]
struct ReceiptMap(std::sync::Mutex<HashMap<Hash, ReceiptView>>);

impl Driver {
    fn sign(&mut self, key: &SigningKey, action: Action) -> SignedTransaction {
        let n = self.nonces.entry(key.address()).or_insert(0);
        let tx = Transaction {
            chain_id: self.chain_id.clone(),
            signer: key.address(),
            nonce: *n,
            fee: self.fee,
            expiry_height: None,
            action,
        };
        *n += 1;
        key.sign_tx(tx)
    }

    /// Runs `txs` to completion; returns their receipts in order.
    async fn run(&self, label: &str, txs: Vec<SignedTransaction>) -> Result<Vec<ReceiptView>> {
        let bar = ProgressBar::new(txs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("  {msg:<28} [{bar:30}] {pos}/{len} ({per_sec})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        let hashes: Vec<Hash> = txs.iter().map(SignedTransaction::id).collect();
        for (chunk, ids) in txs.chunks(CHUNK).zip(hashes.chunks(CHUNK)) {
            let resp = self.client.submit_batch(chunk).await.map_err(|e| anyhow!("{label}: submit: {e}"))?;
            if let Some(r) = resp.rejected.first() {
                bail!("{label}: the node refused transaction {}: {}: {}", r.index, r.code, r.message);
            }
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let done = {
                    let map = self.receipts.0.lock().expect("not poisoned");
                    ids.iter().filter(|h| map.contains_key(h)).count()
                };
                if done == ids.len() {
                    bar.inc(ids.len() as u64);
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{label}: {} of {} transactions not committed after 120 s", ids.len() - done, ids.len());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        bar.finish_and_clear();
        let map = self.receipts.0.lock().expect("not poisoned");
        Ok(hashes.iter().map(|h| map[h].clone()).collect())
    }

    async fn one(&mut self, label: &str, key: &SigningKey, action: Action) -> Result<ReceiptView> {
        let stx = self.sign(key, action);
        Ok(self.run(label, vec![stx]).await?.remove(0))
    }
}

fn ok_all(label: &str, receipts: &[ReceiptView]) -> Result<()> {
    if let Some(r) = receipts.iter().find(|r| r.status != "success") {
        bail!("{label}: {} was rejected: {}", r.tx_hash, r.code.as_deref().unwrap_or("?"));
    }
    Ok(())
}

fn dollars(base: u128) -> String {
    let whole = base / USD;
    let s = whole.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("${out}")
}

fn tokens(base: u128) -> String {
    format!("{} TSR", Amount(base).to_decimal_string(9))
}

async fn ico(n: u32, out: &Output) -> Result<()> {
    if n < 20 {
        bail!("--investors must be at least 20 (every profile needs a turn)");
    }
    let say = |s: String| {
        if !out.json {
            println!("{s}");
        }
    };
    let started = Instant::now();
    // Keys: issuer, compliance, custodian, investors.
    let seed = |s: &str| SigningKey::from_seed(*blake3::hash(format!("tessera demo key {s}").as_bytes()).as_bytes());
    let (issuer, compliance, custodian) = (seed("issuer"), seed("compliance"), seed("custodian"));
    let investors: Vec<Investor> = (0..n)
        .map(|i| Investor {
            key: seed(&format!("investor {i}")),
            entity: EntityId::from_reference(&format!("demo-kyc-{i:07}")),
            profile: profile(i),
            amount: commitment(i),
        })
        .collect();

    // A temporary devnet: the real chain, store and HTTP API, with the dev clock.
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let genesis_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let mut balances = vec![GenesisBalance {
        address: issuer.address(),
        asset: AssetId::TSR,
        amount_base_units: Amount(10_000_000_000 * TSR),
    }];
    for k in [&compliance, &custodian] {
        balances.push(GenesisBalance {
            address: k.address(),
            asset: AssetId::TSR,
            amount_base_units: Amount(1_000 * TSR),
        });
    }
    for inv in &investors {
        balances.push(GenesisBalance {
            address: inv.key.address(),
            asset: AssetId::TSR,
            amount_base_units: Amount(TSR),
        });
    }
    let genesis = Genesis {
        chain_id: "tessera-demo".into(),
        genesis_time_ms: genesis_ms,
        fee_base_units: Amount(1_000),
        block_interval_ms: 100,
        issuer: issuer.address(),
        roles: GenesisRoles {
            compliance: Some(compliance.address()),
            custodian: Some(custodian.address()),
            treasury: None,
        },
        assets: vec![
            GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None },
            GenesisAsset { symbol: usd(), decimals: 6, max_supply_base_units: None, issuer: Some(custodian.address()) },
        ],
        balances,
        incentives: None,
        validators: Vec::new(),
    };
    let mut config = ChainConfig::new(dir.path());
    config.dev_clock = true;
    let chain = Chain::open(config, Some(&genesis)).context("cannot open the demo chain")?;
    chain.start()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node::serve(chain.clone(), listener, async {
        let _ = stop_rx.await;
    }));
    let client = Client::new(&api)?;
    let receipts = Arc::new(ReceiptMap::default());
    let mut events = Box::pin(client.block_events().await?);
    let sink = receipts.clone();
    let collector = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let Ok(ev) = ev else { break };
            let mut map = sink.0.lock().expect("not poisoned");
            for r in ev.receipts {
                map.insert(r.tx_hash, r);
            }
        }
    });
    let info = client.chain().await?;
    let mut d =
        Driver { client: client.clone(), receipts, nonces: HashMap::new(), chain_id: info.chain_id, fee: info.fee };
    say(format!("Tessera ICO demo: {n} investors on a temporary devnet at {api}"));

    // 1. The custodian credits each investor's USD (their wire arrived).
    say("1. custodian credits investors' USD".into());
    let mut txs = Vec::new();
    for inv in &investors {
        let action = Action::Mint { asset: usd(), to: inv.key.address(), amount: Amount(inv.amount + 10 * USD) };
        txs.push(d.sign(&custodian, action));
    }
    ok_all("credits", &d.run("USD credits", txs).await?)?;

    // 2. Compliance attests every investor and binds their wallet.
    say("2. compliance attests entities and binds wallets".into());
    let now = chain.now_ms();
    let mut txs = Vec::new();
    for (i, inv) in investors.iter().enumerate() {
        let i = i as u32;
        let country = COUNTRIES[(rand(i, "country") % COUNTRIES.len() as u64) as usize];
        let us = |class, accreditation| (Region::new("US").expect("valid"), true, class, accreditation);
        let methods =
            [AccreditationMethod::ThirdPartyLetter, AccreditationMethod::Income, AccreditationMethod::NetWorth];
        let valid = Accreditation { method: methods[(i % 3) as usize], expires_ms: now + 365 * DAY };
        let (jurisdiction, us_person, class, accreditation) = match inv.profile {
            Profile::UsAccredited => us(InvestorClass::Accredited, Some(valid)),
            Profile::UsUnaccredited => us(InvestorClass::Retail, None),
            Profile::ExpiredAccreditation => us(
                InvestorClass::Accredited,
                Some(Accreditation { method: AccreditationMethod::Income, expires_ms: now - DAY }),
            ),
            Profile::SanctionedJurisdiction => (Region::new("IR").expect("valid"), false, InvestorClass::Retail, None),
            Profile::NonUs | Profile::SanctionsHit => {
                (Region::new(country).expect("valid"), false, InvestorClass::Retail, None)
            }
        };
        let attestation = Attestation {
            jurisdiction,
            us_person,
            class,
            accreditation,
            kyc_expires_ms: now + 2 * 365 * DAY,
            screening: if inv.profile == Profile::SanctionsHit { Screening::Hit } else { Screening::Clear },
            screening_list: "ofac-sdn-2026-11-24".into(),
            regcf_limit: None,
        };
        txs.push(d.sign(&compliance, Action::AttestEntity { entity: inv.entity, attestation }));
        txs.push(d.sign(&compliance, Action::BindWallet { entity: inv.entity, wallet: inv.key.address() }));
    }
    ok_all("attestations", &d.run("attestations", txs).await?)?;

    // 3. The issuer creates a two-tranche offering sized for ~2x oversubscription.
    let demand = |t: u16| -> u128 {
        investors
            .iter()
            .filter(|i| i.profile == if t == 0 { Profile::UsAccredited } else { Profile::NonUs })
            .map(|i| i.amount)
            .sum()
    };
    let supply = |t: u16| demand(t) / 2 / PRICE * TSR;
    let opens = chain.now_ms();
    let closes = opens + 14 * DAY;
    let sanctioned = ["CU", "IR", "KP", "SY", "RU", "UA-43", "UA-14", "UA-09"].map(|r| Region::new(r).expect("valid"));
    let offering = OfferingConfig {
        name: "Tessera token sale (demo)".into(),
        asset: AssetId::TSR,
        quote: usd(),
        price_per: Amount(TSR),
        soft_cap: Amount(1_000_000 * USD),
        tranches: vec![
            TrancheConfig {
                name: "Reg D 506(c), U.S. accredited".into(),
                exemption: Exemption::RegD506c,
                eligibility: Eligibility {
                    allowed: vec![],
                    blocked: vec![],
                    us_persons: UsPersons::Only,
                    classes: vec![
                        InvestorClass::Accredited,
                        InvestorClass::QualifiedPurchaser,
                        InvestorClass::Institutional,
                    ],
                },
                supply: Amount(supply(0)),
                mechanism: Mechanism::FixedPrice { price: Amount(PRICE), fill: Fill::ProRata },
                min_per_entity: Amount(200_000 * USD),
                max_per_entity: Amount(5_000_000 * USD),
                opens_ms: opens,
                closes_ms: closes,
                cancel_until_ms: None,
                // Rule 144: one year for a non-reporting issuer.
                lot: LotRule { schedule: Some(Schedule::lockup(add_months(closes, 12))), resale: Resale::Free },
            },
            TrancheConfig {
                name: "Reg S, non-U.S.".into(),
                exemption: Exemption::RegS { dcp_ms: 40 * DAY },
                eligibility: Eligibility {
                    allowed: vec![],
                    blocked: sanctioned.to_vec(),
                    us_persons: UsPersons::Excluded,
                    classes: vec![],
                },
                supply: Amount(supply(1)),
                mechanism: Mechanism::FixedPrice { price: Amount(PRICE), fill: Fill::WaterFill },
                min_per_entity: Amount(1_000 * USD),
                max_per_entity: Amount(250_000 * USD),
                opens_ms: opens,
                closes_ms: closes,
                cancel_until_ms: None,
                lot: LotRule {
                    schedule: Some(Schedule::Monthly {
                        start_ms: closes,
                        tge_bps: 1_000,
                        cliff_months: 0,
                        months: 12,
                        cliff: primitives::sale::CliffKind::CatchUp,
                    }),
                    resale: Resale::NonUsOnlyDuringDcp,
                },
            },
        ],
    };
    say(format!(
        "3. issuer offers {} (Reg D) + {} (Reg S) at $0.50, {} .. {}",
        tokens(supply(0)),
        tokens(supply(1)),
        format_utc(opens),
        format_utc(closes)
    ));
    let r = d.one("create offering", &issuer, Action::CreateOffering { config: offering }).await?;
    ok_all("create offering", &[r])?;
    let offering_id = 1;

    // 4. Every investor commits to the tranche for their profile.
    say("4. investors commit (fully funded, escrowed)".into());
    let txs: Vec<SignedTransaction> = investors
        .iter()
        .map(|inv| {
            let action =
                Action::Commit { offering: offering_id, tranche: tranche_of(inv.profile), amount: Amount(inv.amount) };
            d.sign(&inv.key, action)
        })
        .collect();
    let commit_receipts = d.run("commitments", txs).await?;
    let mut by_code: BTreeMap<String, u32> = BTreeMap::new();
    let mut committed = [0u128; 2];
    let mut committed_by: Vec<bool> = Vec::with_capacity(investors.len());
    for (inv, r) in investors.iter().zip(&commit_receipts) {
        let code = r.code.clone().unwrap_or_else(|| "accepted".into());
        *by_code.entry(code).or_default() += 1;
        committed_by.push(r.status == "success");
        if r.status == "success" {
            committed[tranche_of(inv.profile) as usize] += inv.amount;
        }
    }
    for (code, count) in &by_code {
        say(format!("   {count:>7}  {code}"));
    }
    // Every ineligible profile must have been refused with its own code, and nobody else.
    let expected = |p: Profile| match p {
        Profile::UsAccredited | Profile::NonUs => "accepted",
        Profile::SanctionedJurisdiction => "jurisdiction_blocked",
        Profile::UsUnaccredited => "investor_class_not_allowed",
        Profile::ExpiredAccreditation => "accreditation_expired",
        Profile::SanctionsHit => "sanctioned",
    };
    for (inv, r) in investors.iter().zip(&commit_receipts) {
        let got = r.code.as_deref().unwrap_or("accepted");
        if got != expected(inv.profile) {
            bail!("investor {:?} got {got}, expected {}", inv.profile, expected(inv.profile));
        }
    }

    // 5. The window closes; the issuer settles.
    let o: OfferingView = client.offering(offering_id).await?.ok_or_else(|| anyhow!("offering missing"))?;
    for t in &o.tranches {
        say(format!(
            "   tranche {}: {} committed by {} entities for {} at $0.50 = {:.2}x oversubscribed",
            t.index,
            dollars(t.escrowed.0),
            t.commitments,
            tokens(t.supply.0),
            t.escrowed.0 as f64 / (t.supply.0 as f64 / TSR as f64 * PRICE as f64)
        ));
    }
    client.advance_clock(closes - chain.now_ms() + 60_000).await?;
    say("5. window closed; issuer finalizes (one transaction settles every tranche)".into());
    let t0 = Instant::now();
    let r = d.one("finalize", &issuer, Action::FinalizeOffering { offering: offering_id }).await?;
    ok_all("finalize", &[r])?;
    let settle_ms = t0.elapsed().as_millis();
    let o = client.offering(offering_id).await?.ok_or_else(|| anyhow!("offering missing"))?;
    if o.status != "settled" {
        bail!("the offering did not settle: {}", o.status);
    }

    // 6. Claims: tokens (locked under each lot's schedule) and refunds.
    say("6. investors claim tokens and refunds".into());
    let usd_before: Vec<u128> = {
        let mut v = Vec::with_capacity(investors.len());
        for inv in &investors {
            v.push(
                client
                    .account(&inv.key.address())
                    .await?
                    .balances
                    .iter()
                    .find(|b| b.asset == usd())
                    .map_or(0, |b| b.balance.0),
            );
        }
        v
    };
    let txs: Vec<SignedTransaction> = investors
        .iter()
        .zip(&committed_by)
        .filter(|(_, c)| **c)
        .map(|(inv, _)| {
            let t = tranche_of(inv.profile);
            d.sign(&inv.key, Action::Claim { offering: offering_id, tranche: t, entity: inv.entity })
        })
        .collect();
    ok_all("claims", &d.run("claims", txs).await?)?;
    let mut paid_total = 0u128;
    let mut tokens_total = 0u128;
    for (k, inv) in investors.iter().enumerate() {
        let a = client.account(&inv.key.address()).await?;
        let usd_now = a.balances.iter().find(|b| b.asset == usd()).map_or(0, |b| b.balance.0);
        let tsr_now = a.balances.iter().find(|b| b.asset == AssetId::TSR).map_or(0, |b| b.balance.0);
        paid_total += usd_before[k] - usd_now;
        // Each investor started with 1 TSR and paid fees in TSR.
        let fees = d.nonces.get(&inv.key.address()).copied().unwrap_or(0) as u128 * d.fee.0;
        tokens_total += tsr_now + fees - TSR;
    }
    let r = d.one("withdraw", &issuer, Action::WithdrawProceeds { offering: offering_id }).await?;
    ok_all("withdraw", &[r])?;
    let issuer_usd =
        client.account(&issuer.address()).await?.balances.iter().find(|b| b.asset == usd()).map_or(0, |b| b.balance.0);

    // 7. Lots vest over simulated months; the Reg S DCP and the Reg D lockup end.
    say("7. lots vest over simulated months (dev clock)".into());
    let reg_s = investors.iter().zip(&committed_by).find(|(i, c)| **c && i.profile == Profile::NonUs).map(|(i, _)| i);
    let reg_d =
        investors.iter().zip(&committed_by).find(|(i, c)| **c && i.profile == Profile::UsAccredited).map(|(i, _)| i);
    let (reg_s, reg_d) =
        (reg_s.ok_or_else(|| anyhow!("no Reg S buyer"))?, reg_d.ok_or_else(|| anyhow!("no Reg D buyer"))?);
    // More than the 1 TSR each investor holds outside its lot.
    let one = Amount(2 * TSR);
    let xfer = |to: &Investor| Action::Transfer { to: to.key.address(), asset: AssetId::TSR, amount: one };
    let investor_set: std::collections::HashSet<Address> = investors.iter().map(|i| i.key.address()).collect();
    let mut vesting_rows = Vec::new();
    for month in [0u32, 1, 2, 3, 6, 9, 12, 13] {
        let target = add_months(closes, month) + 60_000;
        let now = chain.now_ms();
        if target > now {
            client.advance_clock(target - now).await?;
        }
        let mut notes = Vec::new();
        if month == 1 {
            let r = d.one("restricted transfer", &reg_s.key, xfer(reg_d)).await?;
            notes
                .push(format!("Reg S buyer -> U.S. person during the DCP: {}", r.code.as_deref().unwrap_or(&r.status)));
            if r.code.as_deref() != Some("recipient_ineligible") {
                bail!("a Reg S lot reached a U.S. person during the DCP");
            }
            let r = d.one("locked transfer", &reg_d.key, xfer(reg_s)).await?;
            notes.push(format!(
                "Reg D buyer -> anyone in the Rule 144 year: {}",
                r.code.as_deref().unwrap_or(&r.status)
            ));
            if r.code.as_deref() != Some("locked") {
                bail!("a Reg D lot moved during its lockup");
            }
        }
        if month == 2 {
            let r = d.one("transfer after DCP", &reg_s.key, xfer(reg_d)).await?;
            notes.push(format!("Reg S buyer -> U.S. person after the DCP: {}", r.status));
            ok_all("transfer after DCP", &[r])?;
        }
        if month == 13 {
            let r = d.one("transfer after lockup", &reg_d.key, xfer(reg_s)).await?;
            notes.push(format!("Reg D buyer after the lockup: {}", r.status));
            ok_all("transfer after lockup", &[r])?;
        }
        // A block must carry the new time before the state's vested amounts move: release
        // what has vested of the first lot (anyone may send this).
        let r = d.one("release", &issuer, Action::ReleaseVested { grant: 1 }).await?;
        ok_all("release", &[r])?;
        let rows = client.cap_table(&AssetId::TSR).await?;
        let (mut locked, mut vested, mut held) = (0u128, 0u128, 0u128);
        for r in rows.iter().filter(|r| investor_set.contains(&r.address)) {
            locked += r.locked.0;
            vested += r.vested.0;
            held += r.balance.0;
        }
        let _ = locked;
        vesting_rows.push((month, held, vested, notes));
    }
    for (month, held, vested, notes) in &vesting_rows {
        say(format!(
            "   month {month:>2}: investors hold {}, vested {} ({:.1}%)",
            tokens(*held),
            tokens(*vested),
            *vested as f64 * 100.0 / (*held).max(1) as f64
        ));
        for n in notes {
            say(format!("              {n}"));
        }
    }

    // 8. The report, and the checks that it adds up.
    let o = client.offering(offering_id).await?.ok_or_else(|| anyhow!("offering missing"))?;
    let report = client.offering_report(offering_id).await?;
    let mut problems = Vec::new();
    let (mut sold, mut proceeds, mut refunds) = (0u128, 0u128, 0u128);
    for t in &o.tranches {
        let s = t.settlement.as_ref().ok_or_else(|| anyhow!("tranche {} not settled", t.index))?;
        sold += s.tokens_sold.0;
        proceeds += s.proceeds.0;
        refunds += s.refunds.0;
        if s.tokens_sold > t.supply {
            problems.push(format!("tranche {} oversold", t.index));
        }
        if s.proceeds.0 + s.refunds.0 != committed[t.index as usize] {
            problems.push(format!("tranche {}: accepted + refunded != committed", t.index));
        }
    }
    for r in &report.rows {
        if r.paid.0 + r.refunded.0 != r.committed.0 {
            problems.push(format!("report row {}/{} does not add up", r.tranche, r.jurisdiction));
        }
    }
    if paid_total != proceeds {
        problems.push(format!("investors paid {paid_total} but settlement says {proceeds}"));
    }
    if tokens_total != sold {
        problems.push(format!("investors received {tokens_total} but settlement sold {sold}"));
    }
    if issuer_usd != proceeds {
        problems.push(format!("issuer withdrew {issuer_usd}, proceeds are {proceeds}"));
    }
    let supply_now = client.chain().await?.assets.iter().find(|a| a.symbol == AssetId::TSR).map_or(0, |a| a.supply.0);
    if supply_now != 10_000_000_000 * TSR + 2_000 * TSR + u128::from(n) * TSR {
        problems.push("TSR supply changed".into());
    }
    let elapsed = started.elapsed();
    // Close the event stream first: a graceful shutdown waits for open connections.
    collector.abort();
    let _ = collector.await;
    stop_tx.send(()).ok();
    server.await.ok();

    let summary = serde_json::json!({
        "investors": n,
        "outcomes": by_code,
        "committed_usd": (committed[0] + committed[1]).to_string(),
        "accepted_usd": proceeds.to_string(),
        "refunded_usd": refunds.to_string(),
        "tokens_sold": sold.to_string(),
        "proceeds_withdrawn_usd": issuer_usd.to_string(),
        "settlement_ms": settle_ms,
        "adds_up": problems.is_empty(),
        "problems": problems,
        "elapsed_ms": elapsed.as_millis() as u64,
    });
    if out.json {
        print_json(&summary)?;
    } else {
        println!("8. report");
        println!(
            "   {:>7}  {:<6}  {:>8}  {:>18}  {:>22}  {:>18}",
            "TRANCHE", "JURIS", "ENTITIES", "COMMITTED", "TOKENS", "REFUNDED"
        );
        for r in &report.rows {
            println!(
                "   {:>7}  {:<6}  {:>8}  {:>18}  {:>22}  {:>18}",
                r.tranche,
                r.jurisdiction,
                r.entities,
                dollars(r.committed.0),
                tokens(r.tokens.0),
                dollars(r.refunded.0)
            );
        }
        println!("summary");
        println!(
            "   investors            {n} ({} refused at commit)",
            n as usize - committed_by.iter().filter(|c| **c).count()
        );
        println!("   committed            {}", dollars(committed[0] + committed[1]));
        println!("   accepted (proceeds)  {}", dollars(proceeds));
        println!("   refunded             {}", dollars(refunds));
        println!("   tokens sold          {}", tokens(sold));
        println!("   settlement           {settle_ms} ms (one finalize transaction, then O(1) claims)");
        println!("   elapsed              {:.1} s", elapsed.as_secs_f64());
        if problems.is_empty() {
            println!("the report adds up: accepted + refunded = committed in every tranche and row; tokens delivered = tokens sold <= supply; proceeds withdrawn = proceeds");
        } else {
            for p in &problems {
                println!("PROBLEM: {p}");
            }
        }
    }
    if !problems.is_empty() {
        bail!("the demo's report does not add up");
    }
    Ok(())
}
