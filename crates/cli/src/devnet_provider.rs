//! The AI provider `tessera devnet` runs beside the node: the built-in models, a provider
//! key in the data dir, funded from the dev account and registered on first start.

use anyhow::{anyhow, bail, Context, Result};
use primitives::{Action, Address, Amount, AssetId, Transaction};
use provider::server::{ModelConfig, ProviderConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct DevnetProvider {
    pub api: String,
    pub address: Address,
    /// Where the weights were found (the evaluator uses them too).
    pub models: PathBuf,
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
                ..Default::default()
            },
            ModelConfig {
                id: "SmolLM2-135M-Instruct".into(),
                backend: "generator".into(),
                input_price_per_mtok: price(100_000_000),
                output_price_per_mtok: Some(price(400_000_000)),
                ..Default::default()
            },
        ],
    };
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;
    let api = format!("http://{}/v1", listener.local_addr()?);
    let p = provider::server::start(&config).await.map_err(|e| anyhow!(e))?;
    if !provider::server::registration_matches(&p, &api).await {
        register(node, dev_key, &key, &p.info(&api)).await?;
    }
    join_network(node, &key, None).await?;
    provider::server::spawn_background(p.clone(), key, &config);
    let address = p.address;
    let models_dir = config.models_dir.clone().expect("set above");
    let app = provider::server::router(p);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "provider server stopped");
        }
    });
    Ok(DevnetProvider { api, address, models: models_dir })
}

/// Funds the provider from the dev account (stake and fees) and registers it.
async fn register(
    node: &str,
    dev_key: &Path,
    key: &crypto::SigningKey,
    info: &primitives::channel::ProviderInfo,
) -> Result<()> {
    let client = wallet::client::Client::new(node)?;
    let dev = wallet::keystore::read(dev_key)?.decrypt(None)?;
    let tsr = 1_000_000_000u128;
    let registered = client.provider(&key.address()).await?.is_some();
    if !registered {
        let fund = Action::Transfer { to: key.address(), asset: AssetId::TSR, amount: Amount(1_000 * tsr) };
        send_and_wait(&client, &dev, fund).await?;
    }
    let action = if registered {
        Action::UpdateProvider { info: info.clone(), add_stake: Amount::ZERO }
    } else {
        Action::RegisterProvider { info: info.clone(), stake: Amount(100 * tsr) }
    };
    send_and_wait(&client, key, action).await.map_err(|e| anyhow!("registering the provider failed: {e:#}"))
}

pub(crate) async fn send_and_wait(
    client: &wallet::client::Client,
    key: &crypto::SigningKey,
    action: Action,
) -> Result<()> {
    let chain = client.chain().await?;
    let nonce = client.account(&key.address()).await?.next_nonce;
    let stx = key.sign_tx(Transaction {
        chain_id: chain.chain_id,
        signer: key.address(),
        nonce,
        fee: chain.fee,
        expiry_height: None,
        action,
    });
    let hash = stx.id();
    client.submit(&stx).await?;
    let view = client.wait_committed(&hash, Duration::from_secs(30)).await?;
    match view.receipt {
        Some(r) if r.status == "success" => Ok(()),
        other => bail!("transaction failed: {other:?}"),
    }
}

/// Registers `key` as a neuron of the incentive network unless it is one, and stakes
/// `self_stake` TSR on itself.
async fn join_network(node: &str, key: &crypto::SigningKey, self_stake: Option<Amount>) -> Result<()> {
    let client = wallet::client::Client::new(node)?;
    let net = client.network().await?;
    if !net.neurons.iter().any(|n| n.hotkey == key.address()) {
        send_and_wait(
            &client,
            key,
            Action::RegisterNeuron {
                max_burn: net.registration_fee.checked_add(net.registration_fee).unwrap_or(Amount::MAX),
            },
        )
        .await?;
    }
    if let Some(amount) = self_stake {
        if client.account_stake(&key.address()).await?.staked.is_zero() {
            send_and_wait(&client, key, Action::Stake { evaluator: key.address(), amount }).await?;
        }
    }
    Ok(())
}

/// The devnet's evaluator: a key in the data dir, funded from the dev account, registered as
/// a neuron with 1,000 TSR of self-stake, probing every provider every few seconds.
pub async fn start_evaluator(data_dir: &Path, node: &str, dev_key: &Path, models: PathBuf) -> Result<Address> {
    let key_path = data_dir.join("evaluator.key");
    let fresh = !key_path.exists();
    if fresh {
        let key = crypto::SigningKey::generate();
        wallet::keystore::write_new(&key_path, &wallet::keystore::unencrypted(&key))?;
    }
    let key = wallet::keystore::read(&key_path)?.decrypt(None)?;
    let client = wallet::client::Client::new(node)?;
    let tsr = 1_000_000_000u128;
    if client.account(&key.address()).await?.balances.iter().all(|b| b.asset != AssetId::TSR) {
        let dev = wallet::keystore::read(dev_key)?.decrypt(None)?;
        let fund = Action::Transfer { to: key.address(), asset: AssetId::TSR, amount: Amount(2_000 * tsr) };
        send_and_wait(&client, &dev, fund).await?;
    }
    join_network(node, &key, Some(Amount(1_000 * tsr))).await?;
    let cfg = evaluator::EvaluatorConfig {
        node: node.to_string(),
        key: key_path,
        models_dir: Some(models),
        channel_amount: (10 * tsr).to_string(),
        channel_blocks: 100_000,
        round_secs: 3,
        state_file: Some(data_dir.join("evaluator-state.json")),
        ..toml::from_str("key = \"unused\"").expect("defaults")
    };
    let address = key.address();
    tokio::spawn(async move {
        if let Err(e) = evaluator::run(cfg).await {
            tracing::error!(error = %format!("{e:#}"), "the devnet evaluator stopped");
        }
    });
    Ok(address)
}

/// The devnet's OpenAI-compatible gateway, in operator mode as a shared gateway runs: an
/// operator account (funded by the dev account on first start) pays the providers; the dev
/// account deposits 100 TSR with it and gets an API key with a 10 TSR budget, written with
/// the base URL to `DIR/openai.env` (`set -a; . DIR/openai.env` before any OpenAI client).
pub struct DevnetGateway {
    pub url: String,
    pub api_key: String,
    pub env_file: PathBuf,
}

pub async fn start_gateway(
    data_dir: &Path,
    node: &str,
    dev_key: &Path,
    listen: std::net::SocketAddr,
) -> Result<DevnetGateway> {
    let tsr = 1_000_000_000u128;
    let dev = wallet::keystore::read(dev_key)?.decrypt(None)?;
    let dir = data_dir.join("gateway");
    std::fs::create_dir_all(&dir)?;
    let operator_path = dir.join("operator.key");
    // Deposits count from after the operator's funding (itself a transfer from the dev
    // account); on later starts the gateway resumes from its own cursor.
    let mut deposits_from = 1;
    if !operator_path.exists() {
        let operator = crypto::SigningKey::generate();
        let client = wallet::client::Client::new(node)?;
        let to = operator.address();
        send_and_wait(&client, &dev, Action::Transfer { to, asset: AssetId::TSR, amount: Amount(1_000 * tsr) }).await?;
        deposits_from = client.chain().await?.height.0 + 1;
        // The dev account's deposit: the gateway credits it from the chain.
        send_and_wait(&client, &dev, Action::Transfer { to, asset: AssetId::TSR, amount: Amount(100 * tsr) }).await?;
        wallet::keystore::write_new(&operator_path, &wallet::keystore::unencrypted(&operator))?;
    }
    let cfg: gateway::GatewayConfig = toml::from_str(&format!(
        "key = {:?}\n[operator]\ndata_dir = {:?}\ndeposits_from_height = {deposits_from}\n",
        operator_path.display().to_string(),
        dir.display().to_string()
    ))?;
    let cfg = gateway::GatewayConfig { node: node.to_string(), listen, ..cfg };
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    let g = gateway::start(cfg).await?;
    let op = g.operator().expect("operator mode").clone();
    let env_file = data_dir.join("openai.env");
    // The key from an earlier start, if it still works; else a new one.
    let earlier = std::fs::read_to_string(&env_file)
        .ok()
        .and_then(|text| text.lines().find_map(|l| l.strip_prefix("OPENAI_API_KEY=")).map(|k| k.trim().to_string()));
    let api_key = match earlier.filter(|k| op.meter.authenticate(Some(k)).is_ok()) {
        Some(k) => k,
        None => {
            let spec = gateway::operator::meter::KeySpec {
                owner: dev.address(),
                name: "devnet".into(),
                budget: Some(Amount(10 * tsr)),
                ..Default::default()
            };
            op.meter.create_key(spec).map_err(|e| anyhow!("creating the devnet's API key: {}", e.body.error.message))?.1
        }
    };
    crate::write_file_synced(&env_file, format!("OPENAI_BASE_URL={url}\nOPENAI_API_KEY={api_key}\n").as_bytes())?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, gateway::router(g)).await {
            tracing::error!(error = %e, "gateway stopped");
        }
    });
    Ok(DevnetGateway { url, api_key, env_file })
}
