//! `tessera bench sale`: a compliant sale for N investors through the whole pipeline
//! (admission with signature verification, mempool, blocks fsynced before commit), phase
//! by phase: attest (attestation + wallet binding per investor), commit, settle (one
//! finalize transaction), claim. The baseline, plain transfers among the same accounts
//! through the same pipeline, runs first in the same process.

use crate::bench::pump;
use anyhow::{bail, Context, Result};
use crypto::SigningKey;
use ledger::objects::{ObjKey, Object, OfferingStatus};
use ledger::{Genesis, GenesisAsset, GenesisBalance, GenesisRoles};
use node::{Chain, ChainConfig};
use primitives::sale::{
    Attestation, Eligibility, Exemption, Fill, InvestorClass, LotRule, Mechanism, OfferingConfig, Region, Screening,
    TrancheConfig,
};
use primitives::{Action, Address, Amount, AssetId, EntityId, SignedTransaction, Transaction};
use rayon::prelude::*;
use std::time::{Duration, Instant};

const FEE: u128 = 1_000;
const CHAIN: &str = "tessera-bench-sale";
const DAY: u64 = 86_400_000;

fn key(i: u64, what: &[u8; 8]) -> SigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&i.to_le_bytes());
    seed[8..16].copy_from_slice(what);
    SigningKey::from_seed(seed)
}

fn sign(k: &SigningKey, nonce: u64, action: Action) -> SignedTransaction {
    k.sign_tx(Transaction {
        chain_id: CHAIN.into(),
        signer: k.address(),
        nonce,
        fee: Amount(FEE),
        expiry_height: None,
        action,
    })
}

fn encode(txs: Vec<SignedTransaction>) -> Vec<Vec<u8>> {
    txs.par_iter().map(SignedTransaction::to_bytes).collect()
}

fn entity(i: usize) -> EntityId {
    EntityId::from_reference(&format!("bench-{i}"))
}

pub fn bench_sale(investors: usize, block_txs: usize, json: bool) -> Result<()> {
    if investors < 2 {
        bail!("need at least 2 investors");
    }
    let say = |s: String| {
        if !json {
            eprintln!("{s}")
        }
    };
    let usd = AssetId::new("USD").expect("valid");
    let t = Instant::now();
    let keys: Vec<SigningKey> = (0..investors as u64).into_par_iter().map(|i| key(i, b"investor")).collect();
    let addresses: Vec<Address> = keys.iter().map(SigningKey::address).collect();
    let (issuer, compliance) = (key(0, b"issuer\0\0"), key(0, b"complian"));
    say(format!("generated {investors} investor keys in {:.1}s", t.elapsed().as_secs_f64()));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let mut balances = vec![
        GenesisBalance {
            address: issuer.address(),
            asset: AssetId::TSR,
            amount_base_units: Amount(u128::from(u64::MAX)),
        },
        GenesisBalance {
            address: compliance.address(),
            asset: AssetId::TSR,
            amount_base_units: Amount(FEE * 2 * investors as u128 + FEE),
        },
    ];
    for a in &addresses {
        balances.push(GenesisBalance { address: *a, asset: AssetId::TSR, amount_base_units: Amount(10 * FEE) });
        balances.push(GenesisBalance { address: *a, asset: usd, amount_base_units: Amount(1_000_000_000) });
    }
    let genesis = Genesis {
        chain_id: CHAIN.into(),
        genesis_time_ms: now,
        fee_base_units: Amount(FEE),
        block_interval_ms: 20,
        issuer: issuer.address(),
        roles: GenesisRoles { compliance: Some(compliance.address()), custodian: None, treasury: None },
        assets: vec![
            GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None },
            GenesisAsset { symbol: usd, decimals: 6, max_supply_base_units: None, issuer: None },
        ],
        balances,
        incentives: None,
        validators: Vec::new(),
    };
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut config = ChainConfig::new(dir.path());
    config.block_txs_max = block_txs;
    config.mempool.txs_max = (block_txs * 40).max(200_000);
    // The compliance role signs two transactions per investor in one nonce sequence.
    config.mempool.nonce_ahead_max = config.mempool.txs_max as u64;
    config.dev_clock = true;
    let t = Instant::now();
    let chain = Chain::open(config.clone(), Some(&genesis))?;
    chain.start()?;
    say(format!("opened a chain with {} accounts in {:.1}s", investors + 2, t.elapsed().as_secs_f64()));
    let txs_max = config.mempool.txs_max;
    let mut phases: Vec<(&str, usize, f64)> = Vec::new();

    // Baseline: one transfer per investor (nonce 0), same pipeline, same accounts.
    let signed: Vec<SignedTransaction> = (0..investors)
        .into_par_iter()
        .map(|i| {
            let to = addresses[(i + 1) % investors];
            sign(&keys[i], 0, Action::Transfer { to, asset: AssetId::TSR, amount: Amount(1) })
        })
        .collect();
    let secs = pump(&chain, encode(signed), txs_max)?;
    phases.push(("transfer (baseline)", investors, secs));
    say(format!("transfers: {:.0} tx/s", investors as f64 / secs));

    // Attest: the compliance role attests each entity and binds its wallet.
    let signed: Vec<SignedTransaction> = (0..investors)
        .into_par_iter()
        .flat_map_iter(|i| {
            let attestation = Attestation {
                jurisdiction: Region::new(["DE", "JP", "SG", "BR", "GB"][i % 5]).expect("valid"),
                us_person: false,
                class: InvestorClass::Retail,
                accreditation: None,
                kyc_expires_ms: now + 365 * DAY,
                screening: Screening::Clear,
                screening_list: "ofac-bench".into(),
                regcf_limit: None,
            };
            let n = 2 * i as u64;
            [
                sign(&compliance, n, Action::AttestEntity { entity: entity(i), attestation }),
                sign(&compliance, n + 1, Action::BindWallet { entity: entity(i), wallet: addresses[i] }),
            ]
        })
        .collect();
    let secs = pump(&chain, encode(signed), txs_max)?;
    phases.push(("attest + bind", 2 * investors, secs));
    say(format!("attestations: {:.0} tx/s", 2.0 * investors as f64 / secs));

    // The offering: half the demand's worth of tokens, so pro-rata scaling applies.
    let closes = chain.now_ms() + DAY;
    let offering = OfferingConfig {
        name: "bench".into(),
        asset: AssetId::TSR,
        quote: usd,
        price_per: Amount(1),
        soft_cap: Amount::ZERO,
        tranches: vec![TrancheConfig {
            name: "public".into(),
            exemption: Exemption::RegS { dcp_ms: 0 },
            eligibility: Eligibility {
                blocked: ["IR", "KP", "CU"].map(|r| Region::new(r).expect("valid")).to_vec(),
                us_persons: primitives::sale::UsPersons::Excluded,
                ..Eligibility::default()
            },
            supply: Amount(investors as u128 * 500),
            mechanism: Mechanism::FixedPrice { price: Amount(1), fill: Fill::ProRata },
            min_per_entity: Amount(1),
            max_per_entity: Amount(1_000_000),
            opens_ms: 0,
            closes_ms: closes,
            cancel_until_ms: None,
            lot: LotRule::default(),
        }],
    };
    pump(&chain, encode(vec![sign(&issuer, 0, Action::CreateOffering { config: offering })]), txs_max)?;

    // Commit: every investor, fully funded (nonce 1).
    let signed: Vec<SignedTransaction> = (0..investors)
        .into_par_iter()
        .map(|i| sign(&keys[i], 1, Action::Commit { offering: 1, tranche: 0, amount: Amount(1_000) }))
        .collect();
    let secs = pump(&chain, encode(signed), txs_max)?;
    phases.push(("commit", investors, secs));
    say(format!("commitments: {:.0} tx/s", investors as f64 / secs));
    let commitments = match chain.state().object(&ObjKey::Tranche(1, 0)) {
        Some(Object::Tranche(t)) => t.commitments,
        _ => 0,
    };
    if commitments != investors as u64 {
        bail!("{commitments} commitments recorded, expected {investors}");
    }

    // Settle: one finalize transaction after the close.
    chain.advance_clock(closes - chain.now_ms() + 1)?;
    let before = chain.metrics.block_exec_seconds_sum();
    let settle_secs = pump(&chain, encode(vec![sign(&issuer, 1, Action::FinalizeOffering { offering: 1 })]), txs_max)?;
    let settle_exec = chain.metrics.block_exec_seconds_sum() - before;
    let (status, sold) = match chain.state().object(&ObjKey::Offering(1)) {
        Some(Object::Offering(o)) => (o.status, o.tokens_sold),
        _ => bail!("offering missing"),
    };
    if status != OfferingStatus::Settled {
        bail!("offering did not settle: {status:?}");
    }
    say(format!("settlement: {settle_secs:.3}s end to end ({settle_exec:.3}s executing the block)"));

    // Claim: every investor (nonce 2).
    let signed: Vec<SignedTransaction> = (0..investors)
        .into_par_iter()
        .map(|i| sign(&keys[i], 2, Action::Claim { offering: 1, tranche: 0, entity: entity(i) }))
        .collect();
    let secs = pump(&chain, encode(signed), txs_max)?;
    phases.push(("claim", investors, secs));
    say(format!("claims: {:.0} tx/s", investors as f64 / secs));
    let escrow = ledger::objects::module_account("offering", 1);
    let (proceeds, delivered) = {
        let s = chain.state();
        let a = s.account(&escrow).cloned().unwrap_or_default();
        (a.balance(usd), Amount(investors as u128 * 500 - a.balance(AssetId::TSR).0))
    };
    if delivered != sold || proceeds.0 != sold.0 {
        bail!("claims delivered {delivered} tokens for {proceeds} USD; settlement sold {sold}");
    }
    chain.shutdown();
    drop(chain);
    std::thread::sleep(Duration::from_millis(10));

    let base_tps = investors as f64 / phases[0].2;
    let rows: Vec<serde_json::Value> = phases
        .iter()
        .map(|(name, n, secs)| {
            let tps = *n as f64 / secs;
            serde_json::json!({ "phase": name, "txs": n, "secs": (secs * 1000.0).round() / 1000.0, "tps": tps.round(),
                "ratio_to_transfers": ((tps / base_tps) * 1000.0).round() / 1000.0 })
        })
        .collect();
    let report = serde_json::json!({
        "investors": investors,
        "block_txs": block_txs,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "phases": rows,
        "settlement_secs": (settle_secs * 1000.0).round() / 1000.0,
        "settlement_exec_secs": (settle_exec * 1000.0).round() / 1000.0,
        "tokens_sold": sold.to_string(),
    });
    if json {
        println!("{report}");
    } else {
        println!("sale for {investors} investors, {block_txs} transactions per block");
        for (name, n, secs) in &phases {
            let tps = *n as f64 / secs;
            println!("  {name:<20} {n:>9} txs  {secs:>7.2} s  {tps:>9.0} tx/s  {:.2}x transfers", tps / base_tps);
        }
        println!(
            "  settlement           1 tx       {settle_secs:>7.3} s end to end, {settle_exec:.3} s executing the block"
        );
    }
    Ok(())
}
