//! The AI provider `tessera devnet` runs beside the node: the built-in models, a provider
//! key in the data dir, funded from the dev account and registered on first start.

use anyhow::{anyhow, bail, Result};
use primitives::{Action, Address, Amount, AssetId, Transaction};
use provider::server::{ModelConfig, ProviderConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct DevnetProvider {
    pub api: String,
    pub address: Address,
}

/// The models directory: the flag, the usual places, or `./target/models`.
fn models_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    let has = |d: &Path| {
        let m = models::ModelDir::new(d);
        m.minilm_dir().exists() && m.smollm2_gguf().exists()
    };
    if let Some(d) = flag {
        return Some(d);
    }
    let candidates = [
        models::ModelDir::from_env_or_default().ok().map(|m| m.root().to_path_buf()),
        Some(PathBuf::from("target/models")),
    ];
    candidates.into_iter().flatten().find(|d| has(d))
}

/// Starts the provider (or says why not, as the error string).
pub async fn start(
    data_dir: &Path,
    node: &str,
    dev_key: &Path,
    listen: SocketAddr,
    models_flag: Option<PathBuf>,
) -> Result<DevnetProvider, String> {
    let Some(models) = models_dir(models_flag) else {
        return Err("off (no model weights found: run scripts/fetch-models.sh, or pass --models-dir)".into());
    };
    run(data_dir, node, dev_key, listen, models).await.map_err(|e| format!("off ({e:#})"))
}

async fn run(
    data_dir: &Path,
    node: &str,
    dev_key: &Path,
    listen: SocketAddr,
    models: PathBuf,
) -> Result<DevnetProvider> {
    let key_path = data_dir.join("provider.key");
    if !key_path.exists() {
        let key = crypto::SigningKey::generate();
        wallet::keystore::write_new(&key_path, &wallet::keystore::unencrypted(&key))?;
    }
    let key = wallet::keystore::read(&key_path)?.decrypt(None)?;
    let price = |p: u128| p.to_string();
    let config = ProviderConfig {
        node: node.to_string(),
        key: key_path.clone(),
        listen,
        data_dir: data_dir.join("provider"),
        models_dir: Some(models),
        expiry_margin_blocks: 100,
        claim_interval_secs: 30,
        claim_threshold: "1000000000".into(),
        models: vec![
            ModelConfig {
                id: "all-MiniLM-L6-v2".into(),
                backend: "embedder".into(),
                input_price_per_mtok: price(10_000_000),
                output_price_per_mtok: None,
            },
            ModelConfig {
                id: "SmolLM2-135M-Instruct".into(),
                backend: "generator".into(),
                input_price_per_mtok: price(100_000_000),
                output_price_per_mtok: Some(price(400_000_000)),
            },
        ],
    };
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;
    let api = format!("http://{}/v1", listener.local_addr()?);
    let p = provider::server::start(&config).await.map_err(|e| anyhow!(e))?;
    if !provider::server::registration_matches(&p).await {
        register(node, dev_key, &key, &p.info(&api)).await?;
    }
    provider::server::spawn_background(p.clone(), key, &config);
    let address = p.address;
    let app = provider::server::router(p);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "provider server stopped");
        }
    });
    Ok(DevnetProvider { api, address })
}

/// Funds the provider from the dev account (stake and fees) and registers it.
async fn register(
    node: &str,
    dev_key: &Path,
    key: &crypto::SigningKey,
    info: &primitives::channel::ProviderInfo,
) -> Result<()> {
    let client = wallet::client::Client::new(node)?;
    let chain = client.chain().await?;
    let dev = wallet::keystore::read(dev_key)?.decrypt(None)?;
    let send = |signer: &crypto::SigningKey, nonce: u64, action: Action| {
        signer.sign_tx(Transaction {
            chain_id: chain.chain_id.clone(),
            signer: signer.address(),
            nonce,
            fee: chain.fee,
            expiry_height: None,
            action,
        })
    };
    let tsr = 1_000_000_000u128;
    let registered = client.provider(&key.address()).await?.is_some();
    let mut txs = Vec::new();
    if !registered {
        let dev_nonce = client.account(&dev.address()).await?.next_nonce;
        let fund = Action::Transfer { to: key.address(), asset: AssetId::TSR, amount: Amount(1_000 * tsr) };
        txs.push(send(&dev, dev_nonce, fund));
    }
    for stx in txs {
        let hash = stx.id();
        client.submit(&stx).await?;
        client.wait_committed(&hash, Duration::from_secs(30)).await?;
    }
    let nonce = client.account(&key.address()).await?.next_nonce;
    let action = if registered {
        Action::UpdateProvider { info: info.clone(), add_stake: Amount::ZERO }
    } else {
        Action::RegisterProvider { info: info.clone(), stake: Amount(100 * tsr) }
    };
    let stx = send(key, nonce, action);
    let hash = stx.id();
    client.submit(&stx).await?;
    let view = client.wait_committed(&hash, Duration::from_secs(30)).await?;
    match view.receipt {
        Some(r) if r.status == "success" => Ok(()),
        other => bail!("registering the provider failed: {other:?}"),
    }
}
