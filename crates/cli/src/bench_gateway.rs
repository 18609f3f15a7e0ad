//! `tessera bench gateway`: the latency the gateway adds, and its budget exactness.
//!
//! One process runs a fresh chain, a fast local upstream registered on it as a provider
//! (it answers embeddings at once, billing the worst case the gateway reserved for them),
//! and an operator gateway with a funded user and an API key with rate limits on, so that
//! authentication, reservation, settlement and metering all run. The same open-loop load
//! generator then sends the same requests at a fixed rate straight to the upstream and
//! through the gateway, in alternating rounds; the added latency is the difference of the
//! two distributions' percentiles. Last, 200 concurrent requests hit a key whose budget
//! covers exactly 50 of them.

use crate::wallet_cmds::{print_json, Output};
use anyhow::{anyhow, bail, Context, Result};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use crypto::SigningKey;
use primitives::channel::{ModelOffer, ProviderInfo};
use primitives::{Action, Amount, AssetId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const MODEL: &str = "bench-echo";
/// TSR base units per million input tokens of the upstream.
pub(crate) const PRICE: u128 = 1_000_000;
pub(crate) const TSR: u128 = 1_000_000_000;

/// The upstream: an embedding answer at once, billed what the gateway reserved for it
/// ((body bytes + 256) input tokens, the gateway's bound), so a budget's arithmetic is exact.
/// The upstream's routes: embeddings, and the model list the gateway's health checks read.
pub(crate) fn upstream_router(owed: Arc<AtomicU64>) -> axum::Router {
    axum::Router::new()
        .route("/v1/embeddings", axum::routing::post(move |h: HeaderMap, b: Bytes| upstream(owed.clone(), h, b)))
        .route(
            "/v1/models",
            axum::routing::get(|| async {
                axum::Json(serde_json::json!({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "bench"}]}))
            }),
        )
}

pub(crate) async fn upstream(owed: Arc<AtomicU64>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let tokens = body.len() as u64 + 256;
    let cost = (u128::from(tokens) * PRICE).div_ceil(1_000_000);
    let cost64 = u64::try_from(cost).unwrap_or(u64::MAX);
    // Only the gateway's calls (with a voucher) run up the channel's bill.
    let owed_now =
        if headers.contains_key("x-tessera-voucher") { owed.fetch_add(cost64, Ordering::Relaxed) + cost64 } else { 0 };
    let answer = serde_json::json!({
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.6, 0.8]}],
        "model": MODEL,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "cost": cost.to_string()},
    });
    (
        [
            ("x-tessera-cost", cost.to_string()),
            ("x-tessera-channel-owed", owed_now.to_string()),
            ("content-type", "application/json".to_string()),
        ],
        answer.to_string(),
    )
}

/// A fresh chain of the bench's own (devnet genesis) served on a free port, with its dev
/// key, chain id and a client; the temp dir holds its store.
pub(crate) struct BenchChain {
    pub dir: tempfile::TempDir,
    pub dev: SigningKey,
    pub chain_id: String,
    pub client: wallet::client::Client,
    pub api: String,
}

pub(crate) async fn bench_chain() -> Result<BenchChain> {
    let dir = tempfile::tempdir()?;
    let dev = SigningKey::generate();
    let genesis = node::genesis_file::devnet(dev.address(), crate::now_ms());
    let chain_id = genesis.chain_id.clone();
    let chain = node::Chain::open(node::ChainConfig::new(dir.path().join("chain")), Some(&genesis))?;
    chain.start()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    tokio::spawn(node::serve(chain, listener, std::future::pending::<()>()));
    Ok(BenchChain { dir, dev, chain_id, client: wallet::client::Client::new(&api)?, api })
}

pub(crate) async fn send(client: &wallet::client::Client, key: &SigningKey, action: Action) -> Result<()> {
    crate::devnet_provider::send_and_wait(client, key, action).await
}

pub(crate) async fn serve(router: axum::Router) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{addr}"))
}

/// Open loop: request i is sent at start + i/rate whatever happened to the others; each
/// latency runs from its send to the end of its body. `request(i)` builds request i.
/// Returns microseconds, sorted.
pub(crate) async fn load_with(
    rate: u64,
    secs: f64,
    request: impl Fn(u64) -> reqwest::RequestBuilder,
) -> Result<Vec<u64>> {
    let n = (rate as f64 * secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        tokio::time::sleep_until(start + interval.mul_f64(i as f64)).await;
        let req = request(i);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = req.send().await.map_err(|e| e.to_string())?;
            let status = r.status();
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            Ok(t.elapsed().as_micros() as u64)
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?.map_err(|e| anyhow!("a request failed: {e}"))?);
    }
    out.sort_unstable();
    Ok(out)
}

async fn load(http: &reqwest::Client, url: &str, key: Option<&str>, rate: u64, secs: f64) -> Result<Vec<u64>> {
    load_with(rate, secs, |_| {
        let req = http.post(url).header("content-type", "application/json").body(BODY);
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    })
    .await
}

pub(crate) const BODY: &str = r#"{"model":"bench-echo","input":"the quick brown fox jumps over the lazy dog"}"#;

/// One rate's comparison: percentiles of both modes and their differences; printed unless
/// `json`.
/// One rate's latencies of calls `via` something against the same calls to `base`.
pub(crate) fn report(
    base: &str,
    via: &str,
    rate: u64,
    direct: &mut [u64],
    through: &mut [u64],
    seconds: f64,
    json: bool,
) -> serde_json::Value {
    direct.sort_unstable();
    through.sort_unstable();
    let p = |v: &[u64], q: f64| pct(v, q);
    let row = serde_json::json!({
        "rate": rate,
        "base": base,
        "via": via,
        "requests_per_mode": direct.len(),
        "direct_us": {"p50": p(direct, 0.5), "p90": p(direct, 0.9), "p99": p(direct, 0.99), "p999": p(direct, 0.999)},
        "through_us": {"p50": p(through, 0.5), "p90": p(through, 0.9), "p99": p(through, 0.99), "p999": p(through, 0.999)},
        "added_us": {
            "p50": p(through, 0.5) as i64 - p(direct, 0.5) as i64,
            "p90": p(through, 0.9) as i64 - p(direct, 0.9) as i64,
            "p99": p(through, 0.99) as i64 - p(direct, 0.99) as i64,
        },
        "seconds": seconds,
    });
    if !json {
        println!(
            "{rate:>6} req/s  {base} p50 {:>6} µs p99 {:>6} µs | {via} p50 {:>6} µs p99 {:>6} µs | added p50 {:>6} µs p99 {:>6} µs ({} requests per mode)",
            p(direct, 0.5),
            p(direct, 0.99),
            p(through, 0.5),
            p(through, 0.99),
            row["added_us"]["p50"],
            row["added_us"]["p99"],
            direct.len()
        );
    }
    row
}

pub(crate) fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

pub async fn bench_gateway(rates: Vec<u64>, secs: f64, rounds: usize, out: &Output) -> Result<()> {
    let BenchChain { dir, dev, client, api, .. } = bench_chain().await?;

    // The upstream, registered as a provider.
    let up = serve(upstream_router(Arc::new(AtomicU64::new(0)))).await?;
    let (provider, operator, user) = (SigningKey::generate(), SigningKey::generate(), SigningKey::generate());
    for k in [&provider, &operator, &user] {
        send(&client, &dev, Action::Transfer { to: k.address(), asset: AssetId::TSR, amount: Amount(1_000 * TSR) })
            .await?;
    }
    let info = ProviderInfo {
        endpoint: format!("{up}/v1"),
        models: vec![ModelOffer {
            model: MODEL.into(),
            input_price_per_mtok: Amount(PRICE),
            output_price_per_mtok: Amount::ZERO,
        }],
    };
    send(&client, &provider, Action::RegisterProvider { info, stake: Amount(100 * TSR) }).await?;
    send(&client, &user, Action::Transfer { to: operator.address(), asset: AssetId::TSR, amount: Amount(500 * TSR) })
        .await?;

    // The operator gateway.
    let key_path = dir.path().join("operator.key");
    wallet::keystore::write_new(&key_path, &wallet::keystore::unencrypted(&operator))?;
    let cfg: gateway::GatewayConfig = toml::from_str(&format!(
        "key = {:?}\nnode = {api:?}\nchannel_amount = \"{}\"\n[operator]\ndata_dir = {:?}\n",
        key_path.display().to_string(),
        100 * TSR,
        dir.path().join("gateway").display().to_string()
    ))?;
    let g = gateway::start(cfg).await?;
    let op = g.operator().expect("operator mode").clone();
    let gw = serve(gateway::router(g)).await?;
    let spec = |budget: Option<u128>| gateway::operator::meter::KeySpec {
        owner: user.address(),
        name: "bench".into(),
        budget: budget.map(Amount),
        rpm: Some(100_000_000),
        tpm: Some(100_000_000_000),
        ..Default::default()
    };
    let (_, key) = op.meter.create_key(spec(Some(400 * TSR))).map_err(|e| anyhow!("{}", e.body.error.message))?;

    let http = reqwest::Client::builder().pool_max_idle_per_host(1024).build()?;
    let direct_url = format!("{up}/v1/embeddings");
    let gateway_url = format!("{gw}/v1/embeddings");
    // Warm up: the gateway opens its channel, both connection pools fill.
    let r =
        http.post(&gateway_url).bearer_auth(&key).header("content-type", "application/json").body(BODY).send().await?;
    if !r.status().is_success() {
        bail!("warm-up call through the gateway: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let warm = rates.first().copied().unwrap_or(1_000);
    load(&http, &direct_url, None, warm, 0.5).await.context("warm-up")?;
    load(&http, &gateway_url, Some(&key), warm, 0.5).await.context("warm-up")?;

    let mut rows = Vec::new();
    for &rate in &rates {
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        let started = Instant::now();
        for _ in 0..rounds {
            direct.extend(load(&http, &direct_url, None, rate, secs).await?);
            through.extend(load(&http, &gateway_url, Some(&key), rate, secs).await?);
        }
        let row =
            report("direct", "gateway", rate, &mut direct, &mut through, started.elapsed().as_secs_f64(), out.json);
        rows.push(row);
    }

    // Budget exactness: every call costs exactly its reservation, and the budget covers 50.
    let one = (u128::from(BODY.len() as u64 + 256) * PRICE).div_ceil(1_000_000);
    let (id, crowd) = op.meter.create_key(spec(Some(50 * one))).map_err(|e| anyhow!("{}", e.body.error.message))?;
    let calls = (0..200).map(|_| {
        let (http, url, crowd) = (http.clone(), gateway_url.clone(), crowd.clone());
        async move {
            let r =
                http.post(url).bearer_auth(crowd).header("content-type", "application/json").body(BODY).send().await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    let spent = op.meter.key(&id.rec.id).map_err(|e| anyhow!("{}", e.body.error.message))?.rec.total_spent.0;
    let overspend = spent.saturating_sub(50 * one);
    let budget = serde_json::json!({
        "concurrent": 200, "budget_covers": 50, "served": served, "refused_402": refused,
        "spent": spent.to_string(), "budget": (50 * one).to_string(), "overspend": overspend.to_string(),
    });
    if out.json {
        print_json(&serde_json::json!({ "latency": rows, "budget": budget }))?;
    } else {
        println!(
            "budget exactness: 200 concurrent requests, budget for 50: {served} served, {refused} refused (402), spent {spent} of {}, overspend {overspend}",
            50 * one
        );
    }
    if overspend > 0 || served != 50 {
        bail!("the budget was not exact: {budget}");
    }
    Ok(())
}
