//! The evaluator's loop: rounds of paid probes, running scores, weights.

use crate::score::{cosine_score, token_agreement, weights, Probe, Scoring};
use anyhow::{anyhow, bail, Context, Result};
use api_types::{NetworkView, ProviderView};
use models::{ChatMessage, Embedder, GenerateParams, Generator, ModelDir};
use primitives::{Action, Address, Amount, Transaction};
use provider::VoucherHeader;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wallet::client::Client;

/// `tessera evaluator` configuration (TOML).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluatorConfig {
    #[serde(default = "default_node")]
    pub node: String,
    /// The evaluator's key file (its neuron's hotkey; it pays for the probes).
    pub key: PathBuf,
    /// Model weights for the reference runs [default: the usual places].
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// TSR base units escrowed per provider channel (and added when it runs low).
    #[serde(default = "default_channel_amount")]
    pub channel_amount: String,
    /// Channel lifetime in blocks.
    #[serde(default = "default_channel_blocks")]
    pub channel_blocks: u64,
    /// Seconds between rounds.
    #[serde(default = "default_round_secs")]
    pub round_secs: u64,
    /// Chat probes (one per round, in turn).
    #[serde(default = "default_prompts")]
    pub prompts: Vec<String>,
    /// Embedding probes (all each round).
    #[serde(default = "default_texts")]
    pub texts: Vec<String>,
    #[serde(default)]
    pub scoring: Scoring,
}

fn default_node() -> String {
    "http://127.0.0.1:8645".into()
}
fn default_channel_amount() -> String {
    "10000000000".into()
}
fn default_channel_blocks() -> u64 {
    100_000
}
fn default_round_secs() -> u64 {
    10
}
fn default_prompts() -> Vec<String> {
    ["Name three primary colours.", "What is the capital of France?", "Write one sentence about the sea."]
        .map(String::from)
        .to_vec()
}
fn default_texts() -> Vec<String> {
    ["A token network for AI compute.", "Evaluators score providers every epoch."].map(String::from).to_vec()
}

impl EvaluatorConfig {
    pub fn load(path: &std::path::Path) -> Result<EvaluatorConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// A channel to one provider, as this evaluator tracks it.
#[derive(Clone, Debug)]
struct Chan {
    id: u64,
    nonce: u64,
    /// What the provider says is owed at this nonce (vouchers must cover it).
    owed: Amount,
    escrowed: Amount,
}

/// Why a probe did not produce a score this round (not the provider's fault).
enum Skip {
    /// The provider has not seen our new channel yet.
    ChannelNotSeen,
}

struct Evaluator {
    cfg: EvaluatorConfig,
    key: crypto::SigningKey,
    client: Client,
    http: reqwest::Client,
    chain_id: String,
    fee: Amount,
    generator: Option<Arc<Generator>>,
    embedder: Option<Arc<Embedder>>,
    /// Reference answers by probe key: token ids (chat) or a vector (embeddings).
    chat_refs: BTreeMap<String, Vec<u32>>,
    embed_refs: BTreeMap<String, Vec<f32>>,
    channels: BTreeMap<Address, Chan>,
    scores: BTreeMap<Address, f64>,
    round: u64,
}

/// Runs rounds forever (or until an error that retrying cannot fix, e.g. a bad key file).
pub async fn run(cfg: EvaluatorConfig) -> Result<()> {
    let key = wallet::keystore::read(&cfg.key)?.decrypt(None)?;
    let client = Client::new(&cfg.node)?;
    let chain = client.chain().await.with_context(|| format!("node {}", cfg.node))?;
    let dir = match &cfg.models_dir {
        Some(d) => ModelDir::new(d),
        None => ModelDir::from_env_or_default()?,
    };
    let (generator, embedder) = tokio::task::spawn_blocking(move || {
        let g = Generator::load(&dir, Default::default()).map(Arc::new).ok();
        let e = Embedder::load(&dir).map(Arc::new).ok();
        (g, e)
    })
    .await?;
    tracing::info!(
        evaluator = %key.address(),
        chat_reference = generator.is_some(),
        embedding_reference = embedder.is_some(),
        "evaluator started"
    );
    let mut ev = Evaluator {
        cfg,
        key,
        client,
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
        chain_id: chain.chain_id,
        fee: chain.fee,
        generator,
        embedder,
        chat_refs: BTreeMap::new(),
        embed_refs: BTreeMap::new(),
        channels: BTreeMap::new(),
        scores: BTreeMap::new(),
        round: 0,
    };
    loop {
        if let Err(e) = ev.run_round().await {
            tracing::warn!(error = %format!("{e:#}"), "evaluation round failed; retrying next round");
        }
        ev.round += 1;
        tokio::time::sleep(Duration::from_secs(ev.cfg.round_secs)).await;
    }
}

impl Evaluator {
    fn me(&self) -> Address {
        self.key.address()
    }

    async fn send(&self, action: Action) -> Result<()> {
        let nonce = self.client.account(&self.me()).await?.next_nonce;
        let stx = self.key.sign_tx(Transaction {
            chain_id: self.chain_id.clone(),
            signer: self.me(),
            nonce,
            fee: self.fee,
            expiry_height: None,
            action,
        });
        let hash = stx.id();
        self.client.submit(&stx).await?;
        let view = self.client.wait_committed(&hash, Duration::from_secs(30)).await?;
        match view.receipt {
            Some(r) if r.status == "success" => Ok(()),
            Some(r) => bail!("{}: {}", r.code.unwrap_or_default(), r.message.unwrap_or_default()),
            None => bail!("committed without a receipt"),
        }
    }

    async fn run_round(&mut self) -> Result<()> {
        let net = self.client.network().await?;
        let providers: BTreeMap<Address, ProviderView> = self
            .client
            .providers()
            .await?
            .into_iter()
            .filter(|p| p.status == "active")
            .map(|p| (p.address, p))
            .collect();
        let mut probes: BTreeMap<u16, Vec<Probe>> = BTreeMap::new();
        let mut hotkeys = BTreeMap::new();
        for nv in &net.neurons {
            let Some(p) = providers.get(&nv.hotkey) else { continue };
            if nv.hotkey == self.me() {
                continue;
            }
            match self.probe_provider(p, net.height).await {
                Ok(ps) => {
                    probes.insert(nv.uid, ps);
                    hotkeys.insert(nv.uid, nv.hotkey);
                }
                Err(Skip::ChannelNotSeen) => {
                    tracing::info!(provider = %nv.hotkey, "the provider has not seen the channel yet; next round")
                }
            }
        }
        let round = self.cfg.scoring.round(&probes);
        for (uid, s) in &round {
            let hk = hotkeys[uid];
            let updated = self.cfg.scoring.update(self.scores.get(&hk).copied(), *s);
            self.scores.insert(hk, updated);
            tracing::info!(uid, provider = %hk, round = s, score = updated, "scored");
        }
        self.set_weights(&net).await
    }

    async fn set_weights(&self, net: &NetworkView) -> Result<()> {
        let Some(me) = net.neurons.iter().find(|n| n.hotkey == self.me()) else {
            tracing::info!("not registered as a neuron; scores are not submitted");
            return Ok(());
        };
        if !me.validator_permit {
            tracing::info!("no validator permit yet (the top stakes get them at each epoch)");
            return Ok(());
        }
        if net.height.saturating_sub(me.last_update) < net.weights_rate_limit {
            return Ok(());
        }
        let by_uid: BTreeMap<u16, f64> =
            net.neurons.iter().filter_map(|n| self.scores.get(&n.hotkey).map(|s| (n.uid, *s))).collect();
        let (uids, values) = weights(&by_uid);
        if uids.is_empty() {
            return Ok(());
        }
        self.send(Action::SetWeights { uids: uids.clone(), weights: values.clone() }).await?;
        tracing::info!(?uids, ?values, "weights set");
        Ok(())
    }

    /// A channel to `p` with room for this round, opened, topped up or extended as needed.
    async fn channel(&mut self, p: &ProviderView, height: u64) -> Result<Chan> {
        let amount = Amount(self.cfg.channel_amount.parse().context("channel_amount")?);
        let mine = self.client.account_channels(&self.me()).await?;
        let on_chain =
            mine.iter().filter(|c| c.recipient == p.address && c.expiry_height > height + 100).max_by_key(|c| c.id);
        let Some(c) = on_chain else {
            self.send(Action::OpenChannel {
                recipient: p.address,
                voucher_signer: None,
                amount,
                expiry_height: height + self.cfg.channel_blocks,
            })
            .await?;
            self.channels.remove(&p.address);
            return Box::pin(self.channel(p, height)).await;
        };
        let tracked = self.channels.get(&p.address).filter(|t| t.id == c.id && t.nonce == c.nonce).cloned();
        let owed = match tracked {
            Some(t) => t.owed,
            None => self.provider_owed(p, c.id).await.unwrap_or(Amount::ZERO).min(c.escrowed),
        };
        let mut chan = Chan { id: c.id, nonce: c.nonce, owed, escrowed: c.escrowed };
        if chan.escrowed.0.saturating_sub(chan.owed.0) < amount.0 / 4 {
            self.send(Action::FundChannel { channel: c.id, amount }).await?;
            chan.escrowed = chan.escrowed.checked_add(amount).unwrap_or(Amount::MAX);
        }
        self.channels.insert(p.address, chan.clone());
        Ok(chan)
    }

    /// What the provider says is owed on a channel (its claims endpoint).
    async fn provider_owed(&self, p: &ProviderView, channel: u64) -> Result<Amount> {
        let v: Value =
            self.http.get(format!("{}/tessera/claims", p.endpoint.trim_end_matches('/'))).send().await?.json().await?;
        provider::owed_in_claims(&v, channel).map_err(|e| anyhow!(e))
    }

    async fn probe_provider(&mut self, p: &ProviderView, height: u64) -> Result<Vec<Probe>, Skip> {
        let mut out = Vec::new();
        if let Err(e) = self.channel(p, height).await {
            tracing::warn!(provider = %p.address, error = %format!("{e:#}"), "no channel; the provider cannot be probed");
            return Ok(p.models.iter().map(|m| Probe::failed(m.model.clone())).collect());
        }
        for offer in &p.models {
            let embedding = offer.output_price_per_mtok.is_zero();
            let probe = if embedding { self.probe_embeddings(p, offer).await } else { self.probe_chat(p, offer).await };
            match probe {
                Ok(pr) => out.push(pr),
                Err(e) if e.to_string().contains("unknown_channel") => return Err(Skip::ChannelNotSeen),
                Err(e) => {
                    tracing::info!(provider = %p.address, model = %offer.model, error = %format!("{e:#}"), "probe failed");
                    out.push(Probe::failed(offer.model.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn probe_chat(&mut self, p: &ProviderView, offer: &primitives::channel::ModelOffer) -> Result<Probe> {
        let prompt = self.cfg.prompts[(self.round as usize) % self.cfg.prompts.len().max(1)].clone();
        let max_tokens = self.cfg.scoring.max_tokens;
        let body = json!({
            "model": offer.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        });
        let (v, latency_ms, cost) = self.paid_call(p, "/chat/completions", body).await?;
        let text = v["choices"][0]["message"]["content"].as_str().ok_or_else(|| anyhow!("no message content"))?;
        let correctness = match self.generator.clone().filter(|_| offer.model == GENERATOR_MODEL) {
            Some(g) => {
                let key = format!("{}\u{0}{prompt}", offer.model);
                if !self.chat_refs.contains_key(&key) {
                    let (g2, prompt2) = (g.clone(), prompt.clone());
                    let reference = tokio::task::spawn_blocking(move || {
                        let c = g2.chat(
                            &[ChatMessage::new("user", prompt2)],
                            &GenerateParams::greedy(max_tokens as usize),
                            |_| ControlFlow::Continue(()),
                        )?;
                        g2.encode(&c.text)
                    })
                    .await??;
                    self.chat_refs.insert(key.clone(), reference);
                }
                // Honesty: the bill must not exceed the advertised prices for the prompt the
                // evaluator counts itself and at most max_tokens of output.
                let prompt_tokens = g.chat_prompt_ids(&[ChatMessage::new("user", prompt.clone())])?.len();
                let bound = provider::cost(offer, prompt_tokens as u64, max_tokens as u64).0;
                if cost > bound {
                    bail!("billed {cost} for a call whose advertised price is at most {bound}");
                }
                token_agreement(&self.chat_refs[&key], &g.encode(text)?)
            }
            None => 1.0,
        };
        Ok(Probe { key: format!("chat:{}", offer.model), ok: true, correctness, latency_ms, cost })
    }

    async fn probe_embeddings(&mut self, p: &ProviderView, offer: &primitives::channel::ModelOffer) -> Result<Probe> {
        let texts = self.cfg.texts.clone();
        let body = json!({"model": offer.model, "input": texts});
        let (v, latency_ms, cost) = self.paid_call(p, "/embeddings", body).await?;
        let got: Vec<Vec<f32>> = v["data"]
            .as_array()
            .ok_or_else(|| anyhow!("no data"))?
            .iter()
            .map(|d| d["embedding"].as_array().map(|e| e.iter().filter_map(|x| x.as_f64()).map(|x| x as f32).collect()))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("malformed embeddings"))?;
        if got.len() != texts.len() {
            bail!("{} embeddings for {} inputs", got.len(), texts.len());
        }
        let correctness = match self.embedder.clone().filter(|_| offer.model == EMBEDDER_MODEL) {
            Some(e) => {
                let missing: Vec<String> =
                    texts.iter().filter(|t| !self.embed_refs.contains_key(*t)).cloned().collect();
                if !missing.is_empty() {
                    let e2 = e.clone();
                    let m2 = missing.clone();
                    let vecs = tokio::task::spawn_blocking(move || {
                        e2.embed(&m2.iter().map(String::as_str).collect::<Vec<_>>())
                    })
                    .await??;
                    self.embed_refs.extend(missing.into_iter().zip(vecs));
                }
                let tokens: usize =
                    texts.iter().map(|t| e.count_tokens(t)).collect::<Result<Vec<_>, _>>()?.iter().sum();
                let bound = provider::cost(offer, tokens as u64, 0).0;
                if cost > bound {
                    bail!("billed {cost} for embeddings whose advertised price is at most {bound}");
                }
                let floor = self.cfg.scoring.cosine_floor;
                let sum: f64 = texts.iter().zip(&got).map(|(t, g)| cosine_score(&self.embed_refs[t], g, floor)).sum();
                sum / texts.len() as f64
            }
            None => 1.0,
        };
        Ok(Probe { key: format!("embed:{}", offer.model), ok: true, correctness, latency_ms, cost })
    }

    /// One call paid by voucher; returns the body, the latency and what was billed. A voucher
    /// at a stale nonce or below what the provider says is owed is refreshed once.
    async fn paid_call(&mut self, p: &ProviderView, path: &str, body: Value) -> Result<(Value, f64, u128)> {
        let url = format!("{}{path}", p.endpoint.trim_end_matches('/'));
        for attempt in 0..2 {
            let chan = self.channels.get(&p.address).cloned().ok_or_else(|| anyhow!("no channel"))?;
            let voucher = VoucherHeader::sign(&self.key, &self.chain_id, chan.id, chan.nonce, chan.owed);
            let started = Instant::now();
            let r = self.http.post(&url).header("x-tessera-voucher", voucher.to_string()).json(&body).send().await?;
            let latency_ms = started.elapsed().as_secs_f64() * 1e3;
            let status = r.status();
            let owed_header = r
                .headers()
                .get("x-tessera-channel-owed")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<u128>().ok());
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                let cost: u128 =
                    v["usage"]["cost"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no usage.cost"))?;
                let owed = owed_header.ok_or_else(|| anyhow!("no x-tessera-channel-owed header"))?;
                if owed != chan.owed.0 + cost {
                    bail!("the provider now claims {owed} owed; {} before plus this call's {cost} expected", chan.owed);
                }
                if owed > chan.escrowed.0 {
                    bail!("owed {owed} is above the channel's escrow");
                }
                if let Some(c) = self.channels.get_mut(&p.address) {
                    c.owed = Amount(owed);
                }
                return Ok((v, latency_ms, cost));
            }
            let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
            if attempt == 0 && matches!(code.as_str(), "stale_nonce" | "insufficient_voucher") {
                // The provider claimed (new nonce) or restarted: re-read the channel.
                self.channels.remove(&p.address);
                let height = self.client.chain().await?.height.0;
                self.channel(p, height).await?;
                continue;
            }
            bail!("{status} {code}: {}", v["error"]["message"].as_str().unwrap_or_default());
        }
        bail!("the voucher was refused twice")
    }
}

/// The models the evaluator can run itself (the built-in ones), by their OpenAI ids.
const GENERATOR_MODEL: &str = "SmolLM2-135M-Instruct";
const EMBEDDER_MODEL: &str = "all-MiniLM-L6-v2";
