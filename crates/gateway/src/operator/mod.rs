//! Operator mode: one shared gateway for many users. Users deposit TSR to the operator's
//! account on the ledger (a plain transfer); the gateway follows the node's block events
//! and credits each depositor from the blocks. The operator gives users API keys (stored hashed, shown once) with
//! budgets, rate limits and allowed models; every request reserves its worst case and
//! settles to its real cost ([`meter`]). Holders who stake enough TSR get a free daily
//! quota by stake tier (stake-for-access, the same stake as the incentive module's). The
//! operator pays the providers through its own channels, as in self-custody mode.

pub mod admin;
pub mod meter;
pub mod store;

use meter::{AccessTier, Clock, Meter};
use parking_lot::RwLock;
use primitives::{Action, Address, AssetId};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wallet::client::Client;

/// The `[operator]` section of the gateway's config.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Where keys, balances and usage are stored.
    pub data_dir: PathBuf,
    /// The admin API's bearer token, in a file; default `<data_dir>/admin.token`, created
    /// (mode 0600) with a random token when missing.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Deposits are credited from this height on (the first start; later starts resume).
    #[serde(default = "one")]
    pub deposits_from_height: u64,
    /// Seconds an account's stake is cached for stake-for-access.
    #[serde(default = "default_stake_cache")]
    pub stake_cache_secs: u64,
    #[serde(default)]
    pub access_tiers: Vec<AccessTier>,
}

fn one() -> u64 {
    1
}
fn default_stake_cache() -> u64 {
    60
}

pub struct Operator {
    pub meter: Arc<Meter>,
    pub admin_token: String,
    token_path: PathBuf,
    address: Address,
    client: Client,
    stake_ttl: Duration,
    stakes: RwLock<HashMap<Address, (Option<u128>, Instant)>>,
    /// One scan at a time: two would both credit the blocks after the same cursor.
    scanning: tokio::sync::Mutex<()>,
}

/// Reads the admin token file, or creates it with a fresh random token.
fn admin_token(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let token = format!("tsr-admin-{}", hex::encode(bytes));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

impl Operator {
    /// Opens the operator's store and starts crediting deposits to `address` from the chain.
    pub async fn start(
        cfg: &OperatorConfig,
        address: Address,
        client: Client,
        clock: Clock,
    ) -> anyhow::Result<Arc<Operator>> {
        let meter = Meter::open(&cfg.data_dir, cfg.access_tiers.clone(), clock)?;
        let token_path = cfg.admin_token_file.clone().unwrap_or_else(|| cfg.data_dir.join("admin.token"));
        let op = Arc::new(Operator {
            meter,
            admin_token: admin_token(&token_path)?,
            token_path,
            address,
            client,
            stake_ttl: Duration::from_secs(cfg.stake_cache_secs),
            stakes: RwLock::new(HashMap::new()),
            scanning: tokio::sync::Mutex::new(()),
        });
        if op.meter.cursor() == 0 && cfg.deposits_from_height > 1 {
            op.meter.credit(&[], cfg.deposits_from_height - 1)?;
        }
        op.scan_deposits().await?;
        // Follow the node's block events; scan at each block, and every 5 s regardless
        // (a dropped stream, a lagging event buffer).
        let weak = Arc::downgrade(&op);
        let client = op.client.clone();
        tokio::spawn(async move {
            loop {
                let mut events = match client.block_events().await {
                    Ok(s) => Some(Box::pin(s)),
                    Err(e) => {
                        tracing::warn!(error = %e, "following the node's events; polling");
                        None
                    }
                };
                loop {
                    let event = async {
                        match events.as_mut() {
                            Some(s) => futures_util::StreamExt::next(s).await.map(|e| e.is_ok()),
                            None => std::future::pending().await,
                        }
                    };
                    let reconnect = tokio::select! {
                        e = event => !matches!(e, Some(true)),
                        _ = tokio::time::sleep(Duration::from_secs(5)) => events.is_none(),
                    };
                    let Some(op) = weak.upgrade() else { return };
                    if let Err(e) = op.scan_deposits().await {
                        tracing::warn!(error = %format!("{e:#}"), "crediting deposits");
                    }
                    if reconnect {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                }
            }
        });
        Ok(op)
    }

    /// Where deposits go: the gateway's paying account.
    pub fn address(&self) -> Address {
        self.address
    }

    pub fn admin_token_file(&self) -> &Path {
        &self.token_path
    }

    /// Credits the TSR transfers to the operator in the blocks after the cursor, up to the
    /// chain's height; each batch of blocks is credited durably with the new cursor.
    pub async fn scan_deposits(&self) -> anyhow::Result<()> {
        let _one = self.scanning.lock().await;
        let height = self.client.chain().await?.height.0;
        let mut next = self.meter.cursor() + 1;
        while next <= height {
            let last = height.min(next + 255);
            let mut deposits = Vec::new();
            for h in next..=last {
                let Some(block) = self.client.block(primitives::Height(h)).await? else {
                    anyhow::bail!("the node has no block {h} below its height {height}")
                };
                for (stx, receipt) in block.txs.iter().zip(&block.receipts) {
                    if receipt.status != "success" {
                        continue;
                    }
                    if let Action::Transfer { to, asset, amount } = &stx.tx.action {
                        if *to == self.address && *asset == AssetId::TSR && stx.tx.signer != self.address {
                            deposits.push((stx.tx.signer, *amount));
                        }
                    }
                }
            }
            if !deposits.is_empty() {
                tracing::info!(count = deposits.len(), up_to = last, "credited deposits");
            }
            self.meter.credit(&deposits, last)?;
            next = last + 1;
        }
        Ok(())
    }

    /// The owner's stake (Σ value of its delegations), cached; None when no tier is
    /// configured or the node cannot say (then no free quota applies: fail closed).
    pub async fn staked(&self, owner: &Address) -> Option<u128> {
        if !self.meter.has_tiers() {
            return None;
        }
        if let Some((v, at)) = self.stakes.read().get(owner) {
            if at.elapsed() < self.stake_ttl {
                return *v;
            }
        }
        let v = match self.client.account_stake(owner).await {
            Ok(s) => Some(s.staked.0),
            Err(e) => {
                tracing::warn!(error = %e, %owner, "reading stake for access");
                None
            }
        };
        self.stakes.write().insert(*owner, (v, Instant::now()));
        v
    }
}
