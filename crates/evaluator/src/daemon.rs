//! The evaluator's loop: rounds of paid probes, running scores, weights.

use crate::score::{cosine_score, token_agreement, weights, Probe, Scoring};
use anyhow::{anyhow, bail, Context, Result};
use api_types::{NetworkView, ProviderView};
use gateway::payer::Payer;
use models::{ChatMessage, Embedder, GenerateParams, Generator, ModelDir};
use primitives::{Action, Address};
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
    /// Where the running scores and a pending weight commit are kept across restarts
    /// (JSON, rewritten atomically after each round); none: in memory only.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

/// What the evaluator remembers across restarts.
#[derive(Debug, Default, PartialEq, serde::Serialize, Deserialize)]
struct SavedState {
    /// Running score per provider address.
    scores: BTreeMap<Address, f64>,
    pending: Option<PendingReveal>,
}

impl SavedState {
    fn load(path: &std::path::Path) -> Result<SavedState> {
        match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("{} is not an evaluator state", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SavedState::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Written to a temporary file, fsynced, then renamed over the old one.
    fn save(&self, path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(&serde_json::to_vec_pretty(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
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

/// Why a probe did not produce a score this round (not the provider's fault).
enum Skip {
    /// The provider has not seen our new channel yet.
    ChannelNotSeen,
}

struct Evaluator {
    cfg: EvaluatorConfig,
    payer: Payer,
    client: Client,
    http: reqwest::Client,
    generator: Option<Arc<Generator>>,
    embedder: Option<Arc<Embedder>>,
    /// Reference answers by probe key: token ids (chat) or a vector (embeddings).
    chat_refs: BTreeMap<String, Vec<u32>>,
    embed_refs: BTreeMap<String, Vec<f32>>,
    scores: BTreeMap<Address, f64>,
    round: u64,
    /// Commit-reveal networks: weights committed and not yet revealed.
    pending: Option<PendingReveal>,
}

/// Weights committed as a hash, to reveal from epoch `reveal_from` on (while the commit
/// lives: its reveal epoch only, on the ledger's rules).
#[derive(Clone, Debug, PartialEq, serde::Serialize, Deserialize)]
struct PendingReveal {
    reveal_from: u64,
    tempo: u64,
    uids: Vec<u16>,
    weights: Vec<u16>,
    salt: primitives::Hash,
}

/// Runs rounds forever (or until an error that retrying cannot fix, e.g. a bad key file).
pub async fn run(cfg: EvaluatorConfig) -> Result<()> {
    let key = wallet::keystore::read(&cfg.key)?.decrypt(None)?;
    let client = Client::new(&cfg.node)?;
    let channel_amount: u128 = cfg.channel_amount.parse().context("channel_amount must be TSR base units")?;
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
        payer: Payer::new(key, client.clone(), channel_amount, cfg.channel_blocks)
            .await
            .with_context(|| format!("node {}", cfg.node))?,
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
        cfg,
        client,
        generator,
        embedder,
        chat_refs: BTreeMap::new(),
        embed_refs: BTreeMap::new(),
        scores: BTreeMap::new(),
        round: 0,
        pending: None,
    };
    if let Some(path) = &ev.cfg.state_file {
        let saved = SavedState::load(path)?;
        tracing::info!(providers = saved.scores.len(), pending = saved.pending.is_some(), "evaluator state restored");
        (ev.scores, ev.pending) = (saved.scores, saved.pending);
    }
    loop {
        if let Err(e) = ev.run_round().await {
            tracing::warn!(error = %format!("{e:#}"), "evaluation round failed; retrying next round");
        }
        ev.round += 1;
        ev.save();
        // Between rounds, watch for a committed vector's reveal epoch (it lasts one epoch).
        let next_round = Instant::now() + Duration::from_secs(ev.cfg.round_secs);
        loop {
            if let Err(e) = ev.reveal_due().await {
                tracing::warn!(error = %format!("{e:#}"), "revealing weights");
            }
            let left = next_round.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
        }
    }
}

/// What to do with a pending commit at `height`.
#[derive(Debug, PartialEq, Eq)]
enum RevealStep {
    Wait,
    Reveal,
}

fn reveal_step(p: &PendingReveal, height: u64) -> RevealStep {
    // The reveal lands in a later block than `height`: aim at the epoch of height + 1.
    if (height + 1) / p.tempo.max(1) >= p.reveal_from {
        RevealStep::Reveal
    } else {
        RevealStep::Wait
    }
}

impl Evaluator {
    fn me(&self) -> Address {
        self.payer.address()
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
            match self.probe_provider(p).await {
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

    async fn set_weights(&mut self, net: &NetworkView) -> Result<()> {
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
        if net.commit_reveal {
            if self.pending.is_some() {
                return Ok(()); // the last vector is not revealed yet
            }
            let mut salt = [0u8; 32];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut salt);
            let salt = primitives::Hash(salt);
            let hash = primitives::incentive::weight_commit_hash(&self.me(), &uids, &values, &salt);
            self.payer.send(Action::CommitWeights { hash }).await?;
            // The commit landed in the epoch of a block after `net.height` (usually the next
            // one); if it was a later epoch, the reveal is refused as early and retried.
            let tempo = u64::from(net.tempo).max(1);
            let reveal_from = (net.height + 1) / tempo + net.reveal_period_epochs;
            self.pending =
                Some(PendingReveal { reveal_from, tempo, uids: uids.clone(), weights: values.clone(), salt });
            tracing::info!(?uids, ?values, reveal_from, "weights committed");
            return Ok(());
        }
        self.payer.send(Action::SetWeights { uids: uids.clone(), weights: values.clone() }).await?;
        tracing::info!(?uids, ?values, "weights set");
        Ok(())
    }

    fn save(&self) {
        let Some(path) = &self.cfg.state_file else { return };
        let state = SavedState { scores: self.scores.clone(), pending: self.pending.clone() };
        if let Err(e) = state.save(path) {
            tracing::warn!(error = %format!("{e:#}"), "saving the evaluator's state");
        }
    }

    /// Reveals the pending commit in its reveal epoch.
    async fn reveal_due(&mut self) -> Result<()> {
        let Some(p) = self.pending.clone() else { return Ok(()) };
        let height = self.client.chain().await?.height.0;
        if reveal_step(&p, height) == RevealStep::Wait {
            return Ok(());
        }
        let reveal = Action::RevealWeights { uids: p.uids.clone(), weights: p.weights.clone(), salt: p.salt };
        match self.payer.send(reveal).await {
            Ok(()) => {
                tracing::info!(uids = ?p.uids, "weights revealed");
                self.pending = None;
                self.save();
            }
            Err(e) if format!("{e:#}").contains("reveal_too_early") => {
                // The commit landed an epoch later than estimated.
                self.pending = Some(PendingReveal { reveal_from: p.reveal_from + 1, ..p });
            }
            Err(e) => {
                // Expired or not found: commit afresh next round.
                tracing::warn!(error = %format!("{e:#}"), "the committed weights could not be revealed");
                self.pending = None;
            }
        }
        Ok(())
    }

    async fn probe_provider(&mut self, p: &ProviderView) -> Result<Vec<Probe>, Skip> {
        let mut out = Vec::new();
        let room = self.cfg.channel_amount.parse::<u128>().unwrap_or(0) / 4;
        if let Err(e) = self.payer.channel(p, room).await {
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
    /// at a stale nonce or below what the provider says is owed is refreshed once. The bill
    /// must add up: the provider's owed grows by exactly the call's `usage.cost`.
    async fn paid_call(&mut self, p: &ProviderView, path: &str, body: Value) -> Result<(Value, f64, u128)> {
        let url = format!("{}{path}", p.endpoint.trim_end_matches('/'));
        let room = self.cfg.channel_amount.parse::<u128>().unwrap_or(0) / 4;
        for attempt in 0..2 {
            let chan = self.payer.channel(p, room).await?;
            let before = self.payer.owed(&chan);
            // One call at a time: the voucher covers exactly what is owed.
            let r = self.payer.begin(&chan, 0);
            let started = Instant::now();
            let sent = self.http.post(&url).header("x-tessera-voucher", r.voucher.to_string()).json(&body).send().await;
            let resp = match sent {
                Ok(resp) => resp,
                Err(e) => {
                    self.payer.finish(&chan, r, None);
                    return Err(e.into());
                }
            };
            let latency_ms = started.elapsed().as_secs_f64() * 1e3;
            let status = resp.status();
            let owed = resp
                .headers()
                .get("x-tessera-channel-owed")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<u128>().ok());
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            self.payer.finish(&chan, r, if status.is_success() { owed } else { None });
            if status.is_success() {
                let cost: u128 =
                    v["usage"]["cost"].as_str().and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no usage.cost"))?;
                let owed = owed.ok_or_else(|| anyhow!("no x-tessera-channel-owed header"))?;
                check_bill(before, cost, owed)?;
                return Ok((v, latency_ms, cost));
            }
            let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
            if attempt == 0 && matches!(code.as_str(), "stale_nonce" | "insufficient_voucher") {
                // The provider claimed (new nonce) or restarted: re-read the channel.
                self.payer.invalidate(&p.address).await;
                continue;
            }
            bail!("{status} {code}: {}", v["error"]["message"].as_str().unwrap_or_default());
        }
        bail!("the voucher was refused twice")
    }
}

/// What the provider says is owed after a call must be what was owed before plus the call's
/// cost. More is overbilling. Less is a claim of the provider's that landed while the call
/// ran (what it was paid no longer counts as owed; the next voucher meets the new nonce and
/// the payer re-reads the channel), not a fault of the provider.
fn check_bill(before: u128, cost: u128, owed: u128) -> Result<()> {
    let expected = before + cost;
    if owed > expected {
        bail!("the provider now claims {owed} owed; {before} before plus this call's {cost} expected");
    }
    if owed < expected {
        tracing::debug!(owed, expected, "owed fell during the call: a claim landed");
    }
    Ok(())
}

/// The models the evaluator can run itself (the built-in ones), by their OpenAI ids.
const GENERATOR_MODEL: &str = "SmolLM2-135M-Instruct";
const EMBEDDER_MODEL: &str = "all-MiniLM-L6-v2";

#[cfg(test)]
mod bill_tests {
    use super::check_bill;

    #[test]
    fn only_overbilling_fails_a_probe() {
        assert!(check_bill(100, 20, 120).is_ok());
        // A claim landed mid-call: the provider was paid, so less is owed.
        assert!(check_bill(91_820, 190, 10_290).is_ok());
        let e = check_bill(100, 20, 121).unwrap_err().to_string();
        assert!(e.contains("121 owed"), "{e}");
    }
}

#[cfg(test)]
mod reveal_tests {
    use super::*;

    #[test]
    fn the_state_survives_a_restart_and_a_bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evaluator-state.json");
        assert_eq!(SavedState::load(&path).unwrap(), SavedState::default());
        let state = SavedState {
            scores: [(Address([1; 32]), 0.75), (Address([2; 32]), 0.125)].into_iter().collect(),
            pending: Some(PendingReveal {
                reveal_from: 9,
                tempo: 50,
                uids: vec![1, 2],
                weights: vec![65535, 10922],
                salt: primitives::Hash([5; 32]),
            }),
        };
        state.save(&path).unwrap();
        assert_eq!(SavedState::load(&path).unwrap(), state);
        std::fs::write(&path, "not json").unwrap();
        assert!(SavedState::load(&path).is_err());
    }

    #[test]
    fn a_commit_is_revealed_from_its_reveal_epoch() {
        let p = PendingReveal {
            reveal_from: 3,
            tempo: 50,
            uids: vec![0],
            weights: vec![65535],
            salt: primitives::Hash([1; 32]),
        };
        assert_eq!(reveal_step(&p, 148), RevealStep::Wait); // the next block is 149: epoch 2
        assert_eq!(reveal_step(&p, 149), RevealStep::Reveal); // it lands in block 150: epoch 3
        assert_eq!(reveal_step(&p, 170), RevealStep::Reveal);
    }
}
