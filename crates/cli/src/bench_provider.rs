//! `tessera bench provider`: what payment adds to a call at the provider (the voucher's
//! batch-verified signature, admission against the channel, metering, the voucher's durable
//! write, billing), against the same backend called without payment.
//!
//! One process runs a fresh chain, a fast local OpenAI-compatible server (the backend),
//! and a provider serving it through the upstream backend as two models: a priced one,
//! with a funded channel to the provider, and a free one (both prices zero: no voucher,
//! nothing metered or stored), so the two differ by payment alone. Every paid call carries
//! its own voucher, signed beforehand with an amount above the last (so each one is a new
//! best voucher the provider must store durably, as a real client's increasing vouchers
//! are). The same open-loop generator calls the backend directly, the free model and the
//! paid model, in alternating rounds: paid − free is what payment adds; paid − direct also
//! counts the provider's proxy hop.

use crate::bench_gateway::{
    bench_chain, load_with, report, send, serve, upstream_router, BenchChain, BODY, MODEL, PRICE, TSR,
};
use crate::wallet_cmds::{print_json, Output};
use anyhow::{anyhow, Result};
use crypto::SigningKey;
use primitives::{Action, Amount, AssetId};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

pub async fn bench_provider(rates: Vec<u64>, secs: f64, rounds: usize, out: &Output) -> Result<()> {
    let BenchChain { dir, dev, chain_id, client, api } = bench_chain().await?;

    // The backend: answers at once.
    let backend = serve(upstream_router(Arc::new(AtomicU64::new(0)))).await?;

    // The provider, serving the backend as an upstream model.
    let (provider, user) = (SigningKey::generate(), SigningKey::generate());
    for k in [&provider, &user] {
        send(&client, &dev, Action::Transfer { to: k.address(), asset: AssetId::TSR, amount: Amount(1_000 * TSR) })
            .await?;
    }
    let key_path = dir.path().join("provider.key");
    wallet::keystore::write_new(&key_path, &wallet::keystore::unencrypted(&provider))?;
    let cfg: provider::server::ProviderConfig = toml::from_str(&format!(
        r#"node = {api:?}
key = {key:?}
data_dir = {data:?}
[[model]]
id = "{MODEL}"
backend = "upstream"
upstream_url = "{backend}/v1"
input_price_per_mtok = "{PRICE}"
[[model]]
id = "{MODEL}-free"
backend = "upstream"
upstream_url = "{backend}/v1"
upstream_model = "{MODEL}"
input_price_per_mtok = "0"
"#,
        key = key_path.display().to_string(),
        data = dir.path().join("provider").display().to_string(),
    ))?;
    let height = client.chain().await?.height.0;
    send(
        &client,
        &user,
        Action::OpenChannel {
            recipient: provider.address(),
            voucher_signer: None,
            amount: Amount(500 * TSR),
            expiry_height: height + 1_000_000,
        },
    )
    .await?;
    let channel =
        client.account_channels(&user.address()).await?.first().map(|c| c.id).ok_or_else(|| anyhow!("no channel"))?;
    let p = provider::server::start(&cfg).await.map_err(|e| anyhow!(e))?;
    let endpoint = serve(provider::server::router(p)).await?;

    // Vouchers signed beforehand, each above the last and far above what is due.
    let total: u64 = rates.iter().map(|r| (*r as f64 * secs) as u64 * rounds as u64).sum::<u64>()
        + rates.first().copied().unwrap_or(1_000);
    let vouchers: Vec<String> = (0..total)
        .map(|i| provider::sign_voucher(&user, &chain_id, channel, 0, Amount(100 * TSR + u128::from(i))).to_string())
        .collect();
    let next = AtomicU64::new(0);
    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let direct_url = format!("{backend}/v1/embeddings");
    let paid_url = format!("{endpoint}/v1/embeddings");
    let free_body = BODY.replacen(&format!("\"{MODEL}\""), &format!("\"{MODEL}-free\""), 1);
    anyhow::ensure!(free_body != BODY, "the bench body names no model");
    let direct = |_| http.post(&direct_url).header("content-type", "application/json").body(BODY);
    let free = |_| http.post(&paid_url).header("content-type", "application/json").body(free_body.clone());
    let paid = |_| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
        http.post(&paid_url)
            .header("content-type", "application/json")
            .header("x-tessera-voucher", &vouchers[i.min(vouchers.len() - 1)])
            .body(BODY)
    };
    let warm = rates.first().copied().unwrap_or(1_000);
    load_with(warm, 0.5, direct).await?;
    load_with(warm, 0.5, free).await?;
    load_with(warm, 0.5, paid).await?;

    let mut rows = Vec::new();
    for &rate in &rates {
        let (mut d, mut f, mut t) = (Vec::new(), Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..rounds {
            d.extend(load_with(rate, secs, direct).await?);
            f.extend(load_with(rate, secs, free).await?);
            t.extend(load_with(rate, secs, paid).await?);
        }
        let seconds = started.elapsed().as_secs_f64();
        // Payment alone: the paid model against the free one, both through the provider.
        let payment = report("free", "paid", rate, &mut f, &mut t.clone(), seconds, out.json);
        // Payment and the proxy hop: the paid model against the backend itself.
        let total = report("direct", "paid", rate, &mut d, &mut t, seconds, out.json);
        rows.push(serde_json::json!({ "rate": rate, "payment": payment, "with_proxy_hop": total }));
    }
    if out.json {
        print_json(&serde_json::json!({ "latency": rows }))?;
    }
    Ok(())
}
