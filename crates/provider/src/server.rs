//! `tessera provider run`: an OpenAI-compatible server for the built-in models, paid per
//! call through payment channels.
//!
//! Each call carries a voucher (`x-tessera-voucher: CHANNEL:NONCE:AMOUNT:SIGNATURE`, or
//! the same string as the bearer token). The server counts the prompt's tokens with the
//! model's own tokenizer, reserves the worst case (`max_tokens` at the output price),
//! admits the call against the voucher (the voucher is stored durably first), runs the
//! model, counts what it generated and bills exactly that. Responses carry `usage.cost`
//! and `x-tessera-*` headers (cost, what is owed on the channel, what remains of its
//! escrow, its nonce). Background tasks follow the chain (channel states, height) and
//! claim what is owed in batches: on a period, above a threshold, and before expiry.

use crate::upstream::{self, Kind, Upstream};
use crate::{cost, Book, ChannelInfo, Durable, PayError, Settled, Ticket, VoucherHeader, VoucherStore};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use models::{ChatMessage, Embedder, FinishReason, GenerateParams, Generator, ModelDir};
use openai::ApiError;
use primitives::channel::{ModelOffer, ProviderInfo};
use primitives::{Action, Address, Amount, Transaction};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use wallet::client::Client;

/// `provider.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The node's API.
    #[serde(default = "default_node")]
    pub node: String,
    /// The provider's key file (its address receives the payments).
    pub key: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the voucher store lives.
    pub data_dir: PathBuf,
    /// Where the model weights are [default: $TESSERA_MODELS_DIR, $TESSERA_HOME/models, ~/.tessera/models].
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// Refuse calls on channels this close to expiry (blocks).
    #[serde(default = "default_margin")]
    pub expiry_margin_blocks: u64,
    /// Claim at least this often (seconds) when anything is owed.
    #[serde(default = "default_claim_interval")]
    pub claim_interval_secs: u64,
    /// Claim as soon as this much (TSR base units) is owed in total.
    #[serde(default = "default_claim_threshold")]
    pub claim_threshold: String,
    #[serde(rename = "model")]
    pub models: Vec<ModelConfig>,
}

fn default_node() -> String {
    "http://127.0.0.1:8645".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8700".parse().expect("valid")
}
fn default_margin() -> u64 {
    100
}
fn default_claim_interval() -> u64 {
    30
}
fn default_claim_threshold() -> String {
    "1000000000".into()
}

/// One served model: a built-in backend and its prices (TSR base units per million tokens).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub id: String,
    /// `embedder` (all-MiniLM-L6-v2) or `generator` (SmolLM2-135M-Instruct).
    pub backend: String,
    pub input_price_per_mtok: String,
    #[serde(default)]
    pub output_price_per_mtok: Option<String>,
    /// Generator weights: `q8_0` (default, fastest), `q4_1` (the GGUF as shipped) or `f32`.
    #[serde(default)]
    pub precision: Option<String>,
    /// `upstream` backend: the OpenAI-compatible server's base URL (`http://host:port/v1`).
    #[serde(default)]
    pub upstream_url: Option<String>,
    /// The model's name upstream [default: `id`].
    #[serde(default)]
    pub upstream_model: Option<String>,
    #[serde(default)]
    pub upstream_api_key: Option<String>,
    /// A `.gguf` or `tokenizer.json` of the upstream's model: the provider counts tokens
    /// itself (else it bills the upstream's reported usage).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Output tokens reserved for a call that sets no `max_tokens` [default 32768].
    #[serde(default)]
    pub context_tokens: Option<u64>,
}

impl ProviderConfig {
    pub fn load(path: &std::path::Path) -> Result<ProviderConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The registration these models make (endpoint = the listen address).
    pub fn offers(&self) -> Result<Vec<ModelOffer>, String> {
        let price =
            |s: &str| s.parse::<u128>().map(Amount).map_err(|_| format!("price {s:?} is not an integer of base units"));
        self.models
            .iter()
            .map(|m| {
                Ok(ModelOffer {
                    model: m.id.clone(),
                    input_price_per_mtok: price(&m.input_price_per_mtok)?,
                    output_price_per_mtok: price(m.output_price_per_mtok.as_deref().unwrap_or("0"))?,
                })
            })
            .collect()
    }
}

enum Backend {
    /// The model (for counting tokens before admission) and the thread that runs it.
    Embedder(Arc<Embedder>, Arc<crate::batcher::EmbedBatcher>),
    Generator(Arc<Generator>),
    Upstream(Arc<Upstream>),
}

struct Served {
    offer: ModelOffer,
    backend: Backend,
}

/// The running provider.
pub struct Provider {
    pub address: Address,
    pub chain_id: String,
    book: Book,
    verifier: crate::verifier::BatchVerifier,
    models: BTreeMap<String, Served>,
    client: Client,
    created: u64,
}

/// Opens the store, loads the models, connects to the node.
pub async fn start(config: &ProviderConfig) -> Result<Arc<Provider>, String> {
    let key = wallet::load_signing_key(&config.key, || Err(std::io::Error::other("set TESSERA_PASSPHRASE")))
        .map_err(|e| format!("provider key {}: {e}", config.key.display()))?;
    let client = Client::new(&config.node).map_err(|e| e.to_string())?;
    let chain = client.chain().await.map_err(|e| format!("node {}: {e}", config.node))?;
    let store = VoucherStore::open(&config.data_dir).map_err(|e| e.to_string())?;
    let book = Book::new(&chain.chain_id, key.address(), config.expiry_margin_blocks, store);
    let dir = match &config.models_dir {
        Some(d) => ModelDir::new(d),
        None => ModelDir::from_env_or_default().map_err(|e| e.to_string())?,
    };
    let offers = config.offers()?;
    let mut models = BTreeMap::new();
    let (mut embedder, mut generator) = (None, None);
    for (m, offer) in config.models.iter().zip(offers) {
        let backend = match m.backend.as_str() {
            "embedder" => {
                if embedder.is_none() {
                    let e = tokio::task::spawn_blocking({
                        let dir = dir.clone();
                        move || Embedder::load(&dir)
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("loading the embedder: {e}"))?;
                    let e = Arc::new(e);
                    let batcher = crate::batcher::EmbedBatcher::start(e.clone(), Embedder::BATCH_SIZE);
                    embedder = Some((e, Arc::new(batcher)));
                }
                let (e, batcher) = embedder.clone().expect("loaded");
                Backend::Embedder(e, batcher)
            }
            "generator" => {
                let precision = match m.precision.as_deref() {
                    None | Some("q8_0") => models::Precision::Q8_0,
                    Some("q4_1") => models::Precision::Q4_1,
                    Some("f32") => models::Precision::F32,
                    Some(other) => {
                        return Err(format!("model {:?}: precision {other:?} is not q8_0, q4_1 or f32", m.id))
                    }
                };
                if generator.is_none() {
                    let g = tokio::task::spawn_blocking({
                        let dir = dir.clone();
                        move || Generator::load(&dir, precision)
                    })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("loading the generator: {e}"))?;
                    generator = Some(Arc::new(g));
                }
                Backend::Generator(generator.clone().expect("loaded"))
            }
            "upstream" => {
                let url = m
                    .upstream_url
                    .clone()
                    .ok_or_else(|| format!("model {:?}: backend upstream needs upstream_url", m.id))?;
                let counter = match &m.tokenizer {
                    Some(path) => {
                        let path = path.clone();
                        let c = tokio::task::spawn_blocking(move || models::TokenCounter::from_file(&path))
                            .await
                            .map_err(|e| e.to_string())?
                            .map_err(|e| format!("model {:?}: tokenizer: {e}", m.id))?;
                        Some(c)
                    }
                    None => None,
                };
                Backend::Upstream(Arc::new(Upstream {
                    url,
                    model: m.upstream_model.clone().unwrap_or_else(|| m.id.clone()),
                    api_key: m.upstream_api_key.clone(),
                    counter,
                    context_tokens: m.context_tokens.unwrap_or(upstream::DEFAULT_CONTEXT_TOKENS),
                    http: upstream::http_client(),
                }))
            }
            other => {
                return Err(format!("model {:?}: unknown backend {other:?} (embedder, generator or upstream)", m.id))
            }
        };
        models.insert(m.id.clone(), Served { offer, backend });
    }
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let provider = Arc::new(Provider {
        address: key.address(),
        chain_id: chain.chain_id,
        book,
        verifier: crate::verifier::BatchVerifier::start(),
        models,
        client,
        created,
    });
    provider.sync().await.map_err(|e| format!("following the chain: {e}"))?;
    Ok(provider)
}

impl Provider {
    /// The registration for these models at `endpoint`.
    pub fn info(&self, endpoint: &str) -> ProviderInfo {
        ProviderInfo { endpoint: endpoint.into(), models: self.models.values().map(|s| s.offer.clone()).collect() }
    }

    /// Refreshes the height and every channel paying this provider.
    pub async fn sync(&self) -> Result<(), String> {
        let chain = self.client.chain().await.map_err(|e| e.to_string())?;
        self.book.set_height(chain.height.0);
        for c in self.client.account_channels(&self.address).await.map_err(|e| e.to_string())? {
            if c.recipient == self.address {
                let written = self.book.update_channel(info_of(&c)).map_err(|e| e.to_string())?;
                written.done().await.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// The voucher's signature checked in a batch with other calls', then the book's rules.
    async fn admit_once(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        let item = self.book.signed_by(voucher)?;
        if !self.verifier.verify(item).await {
            return Err(PayError::BadSignature { channel: voucher.channel });
        }
        self.book.admit_verified(voucher, worst)
    }

    async fn admit(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        match self.admit_once(voucher, worst).await {
            // A channel opened a moment ago, or a claim that committed before this
            // provider heard of it (the voucher is already at the newer nonce): look the
            // channel up once.
            Err(PayError::UnknownChannel(_)) => self.refetch_and_admit(voucher, worst).await,
            Err(PayError::StaleNonce { expected, got }) if got > expected => {
                self.refetch_and_admit(voucher, worst).await
            }
            other => other,
        }
    }

    async fn refetch_and_admit(&self, voucher: &VoucherHeader, worst: Amount) -> Result<Ticket, PayError> {
        if let Ok(Some(c)) = self.client.channel(voucher.channel).await {
            self.book.update_channel(info_of(&c))?.done().await?;
        }
        self.admit_once(voucher, worst).await
    }

    /// Submits claims for everything owed (up to 16 channels per transaction) and waits
    /// for them; returns the total claimed.
    pub async fn claim(&self, key: &crypto::SigningKey) -> Result<Amount, String> {
        let claimable = self.book.claimable();
        let mut total = 0u128;
        for batch in claimable.chunks(primitives::limits::CLAIMS_PER_TX_MAX) {
            let written = self.book.claims_submitted(batch).map_err(|e| e.to_string())?;
            written.done().await.map_err(|e| e.to_string())?;
            let account = self.client.account(&self.address).await.map_err(|e| e.to_string())?;
            let chain = self.client.chain().await.map_err(|e| e.to_string())?;
            let tx = key.sign_tx(Transaction {
                chain_id: self.chain_id.clone(),
                signer: self.address,
                nonce: account.next_nonce,
                fee: chain.fee,
                expiry_height: None,
                action: Action::ClaimChannels { claims: batch.iter().map(|c| c.claim.clone()).collect() },
            });
            let hash = tx.id();
            let outcome = match self.client.submit(&tx).await {
                Ok(_) => self.client.wait_committed(&hash, Duration::from_secs(60)).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let ok = matches!(&outcome, Ok(v) if v.receipt.as_ref().is_some_and(|r| r.status == "success"));
            if ok {
                total += batch.iter().map(|c| c.claim.amount.0).sum::<u128>();
            } else {
                tracing::warn!(?outcome, "claim failed; will retry");
                for c in batch {
                    let written = self.book.claim_failed(c.claim.channel).map_err(|e| e.to_string())?;
                    written.done().await.map_err(|e| e.to_string())?;
                }
            }
        }
        self.sync().await?;
        Ok(Amount(total))
    }

    /// Per channel: billed, paid by claims, owed now, in flight.
    pub fn claims_summary(&self) -> serde_json::Value {
        let rows: Vec<serde_json::Value> = self
            .book
            .summary()
            .into_iter()
            .map(|(id, billed, paid, owed, in_flight)| {
                serde_json::json!({ "channel": id.to_string(), "billed": billed, "paid": paid, "owed": owed, "in_flight": in_flight })
            })
            .collect();
        serde_json::json!({ "provider": self.address, "channels": rows })
    }
}

fn info_of(c: &api_types::ChannelView) -> ChannelInfo {
    ChannelInfo {
        id: c.id,
        recipient: c.recipient,
        signer: c.signer,
        nonce: c.nonce,
        escrowed: c.escrowed,
        claimed: c.claimed,
        expiry_height: c.expiry_height,
    }
}

/// Follows the chain and claims in the background until the process ends.
pub fn spawn_background(provider: Arc<Provider>, key: crypto::SigningKey, config: &ProviderConfig) {
    let p = provider.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = p.sync().await {
                tracing::warn!(error = %e, "channel sync failed");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let threshold: u128 = config.claim_threshold.parse().unwrap_or(u128::MAX);
    let interval = Duration::from_secs(config.claim_interval_secs.max(1));
    let margin = config.expiry_margin_blocks;
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let owed: u128 = provider.book.summary().iter().map(|r| r.3 .0).sum();
            let near_expiry = provider.book.near_expiry(2 * margin);
            if owed > 0 && (owed >= threshold || last.elapsed() >= interval || near_expiry) {
                match provider.claim(&key).await {
                    Ok(a) => tracing::info!(claimed = %a, "claimed"),
                    Err(e) => tracing::warn!(error = %e, "claiming failed"),
                }
                last = tokio::time::Instant::now();
            }
        }
    });
}

/// The HTTP routes.
pub fn router(provider: Arc<Provider>) -> Router {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/tessera/claims", get(claims))
        .route("/v1/tessera/pay", post(pay))
        .fallback(|| async { err(ApiError::new(404, "invalid_request_error", "not_found", "no such route")) })
        .with_state(provider)
}

fn err(e: ApiError) -> Response {
    let mut r =
        (StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(e.body)).into_response();
    if let Some(retry) = e.should_retry {
        r.headers_mut().insert("x-should-retry", HeaderValue::from_static(if retry { "true" } else { "false" }));
    }
    r
}

fn pay_err(e: PayError) -> ApiError {
    match e.status() {
        401 => ApiError::unauthorized(e.code(), e.to_string()),
        402 => ApiError::payment_required(e.code(), e.to_string()),
        _ => ApiError::server(e.to_string()),
    }
}

fn voucher(headers: &HeaderMap) -> Result<VoucherHeader, ApiError> {
    let raw = headers
        .get("x-tessera-voucher")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        })
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_voucher",
                "send a payment voucher in x-tessera-voucher (CHANNEL:NONCE:AMOUNT:SIGNATURE) or as the bearer token",
            )
        })?;
    raw.parse().map_err(|e: String| ApiError::unauthorized("malformed_voucher", e))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", format!("invalid request body: {e}")))
}

fn payment_headers(r: &mut Response, s: &Settled, nonce: u64) {
    let h = r.headers_mut();
    for (name, v) in [
        ("x-tessera-cost", s.cost.0.to_string()),
        ("x-tessera-channel-owed", s.owed.0.to_string()),
        ("x-tessera-channel-remaining", s.remaining.0.to_string()),
        ("x-tessera-channel-nonce", nonce.to_string()),
    ] {
        h.insert(name, HeaderValue::from_str(&v).expect("digits"));
    }
}

/// The voucher a call must carry: none for a free model.
fn voucher_for(offer: &ModelOffer, headers: &HeaderMap) -> Result<Option<VoucherHeader>, ApiError> {
    if offer.is_free() {
        return Ok(None);
    }
    voucher(headers).map(Some)
}

/// A call's payment: its voucher admitted against the call's worst case (and the voucher's
/// nonce, for the answer's headers), or nothing for a free model.
struct Payment(Option<(Ticket, u64)>);

/// What a call was billed: the cost and the channel after it (nothing for a free model).
struct Billed(Option<(Settled, u64)>);

/// The voucher's durable write, to await before answering.
/// (None: a free call, or a voucher no better than one already stored.)
type Stored = Option<Durable>;

impl Payment {
    /// Admits the voucher against `worst` and queues its durable write: wait for `Stored`
    /// before answering (the call runs meanwhile).
    async fn admit(p: &Provider, voucher: Option<VoucherHeader>, worst: Amount) -> Result<(Payment, Stored), ApiError> {
        let Some(v) = voucher else { return Ok((Payment(None), None)) };
        let mut ticket = p.admit(&v, worst).await.map_err(pay_err)?;
        let stored = ticket.take_durable();
        Ok((Payment(Some((ticket, v.nonce))), stored))
    }

    /// Bills `cost` (at most the worst case admitted).
    fn settle(self, book: &Book, cost: Amount) -> Result<Billed, PayError> {
        match self.0 {
            None => Ok(Billed(None)),
            Some((ticket, nonce)) => book.settle(ticket, cost).map(|s| Billed(Some((s, nonce)))),
        }
    }
}

impl Billed {
    fn cost(&self) -> u128 {
        self.0.as_ref().map_or(0, |(s, _)| s.cost.0)
    }

    fn headers(&self, r: &mut Response) {
        if let Some((s, nonce)) = &self.0 {
            payment_headers(r, s, *nonce);
        }
    }
}

fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}{:06x}", now, N.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

async fn list_models(State(p): State<Arc<Provider>>) -> Response {
    let owner = p.address.to_string();
    Json(openai::model_list(p.models.keys().map(|id| openai::Model::new(id, p.created, &owner)).collect()))
        .into_response()
}

async fn get_model(State(p): State<Arc<Provider>>, Path(id): Path<String>) -> Response {
    match p.models.get(&id) {
        Some(_) => Json(openai::Model::new(&id, p.created, &p.address.to_string())).into_response(),
        None => err(ApiError::unknown_model(&id)),
    }
}

async fn claims(State(p): State<Arc<Provider>>) -> Response {
    Json(p.claims_summary()).into_response()
}

/// Settles the tab: stores a voucher without a call (post-paid calls leave the last one
/// unpaid until the next voucher; a client that is done sends one for everything owed).
async fn pay(State(p): State<Arc<Provider>>, headers: HeaderMap) -> Response {
    let result = async {
        let v = voucher(&headers)?;
        let mut ticket = p.admit(&v, Amount::ZERO).await.map_err(pay_err)?;
        let stored = ticket.take_durable();
        let settled = p.book.settle(ticket, Amount::ZERO).map_err(pay_err)?;
        durable(stored).await?;
        let mut r = Json(serde_json::json!({
            "channel": v.channel.to_string(), "nonce": v.nonce.to_string(),
            "owed": settled.owed, "remaining": settled.remaining,
        }))
        .into_response();
        payment_headers(&mut r, &settled, v.nonce);
        Ok::<_, ApiError>(r)
    }
    .await;
    result.unwrap_or_else(err)
}

/// The upstream serving the body's model, if it is one.
fn upstream_of(p: &Provider, body: &Bytes) -> bool {
    let model =
        serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["model"].as_str().map(str::to_string));
    model.and_then(|m| p.models.get(&m)).is_some_and(|s| matches!(s.backend, Backend::Upstream(_)))
}

async fn embeddings(State(p): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    if upstream_of(&p, &body) {
        return proxy(p, headers, body, Kind::Embedding).await.unwrap_or_else(err);
    }
    match embed(p, headers, body).await {
        Ok(r) => r,
        Err(e) => err(e),
    }
}

async fn embed(p: Arc<Provider>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let req: openai::EmbeddingRequest = parse(&body)?;
    let served = p.models.get(&req.model).ok_or_else(|| ApiError::unknown_model(&req.model))?;
    let Backend::Embedder(model, batcher) = &served.backend else {
        return Err(ApiError::invalid("model", format!("{} is not an embedding model", req.model)));
    };
    if req.dimensions.is_some_and(|d| d != 384) {
        return Err(ApiError::invalid("dimensions", "this model has 384 dimensions"));
    }
    let texts = req.texts()?;
    let base64 = req.base64()?;
    let voucher = voucher_for(&served.offer, &headers)?;
    let mut tokens = 0u64;
    for t in &texts {
        tokens += model.count_tokens(t).map_err(|e| ApiError::invalid("input", e.to_string()))? as u64;
    }
    let price = cost(&served.offer, tokens, 0);
    let (payment, stored) = Payment::admit(&p, voucher, price).await?;
    // With whatever other calls are queued: one forward pass for calls that came together.
    let (vectors, counted) = match batcher.embed(texts).await {
        Ok(v) => v,
        Err(e) => {
            let _ = payment.settle(&p.book, Amount::ZERO);
            return Err(ApiError::server(format!("embedding failed: {e}")));
        }
    };
    let counted = counted as u64;
    let billed = payment.settle(&p.book, cost(&served.offer, counted, 0)).map_err(pay_err)?;
    durable(stored).await?;
    let usage = openai::Usage::new(counted, 0, billed.cost());
    let mut r = Json(openai::embeddings(&req.model, &vectors, base64, &usage)).into_response();
    billed.headers(&mut r);
    Ok(r)
}

async fn chat(State(p): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    if upstream_of(&p, &body) {
        return proxy(p, headers, body, Kind::Chat).await.unwrap_or_else(err);
    }
    match generate(p, headers, body, true).await {
        Ok(r) => r,
        Err(e) => err(e),
    }
}

async fn completions(State(p): State<Arc<Provider>>, headers: HeaderMap, body: Bytes) -> Response {
    if upstream_of(&p, &body) {
        return proxy(p, headers, body, Kind::Completion).await.unwrap_or_else(err);
    }
    match generate(p, headers, body, false).await {
        Ok(r) => r,
        Err(e) => err(e),
    }
}

enum Piece {
    /// Text of choice `.0`, with the log probabilities of the tokens that made it (when
    /// asked for).
    Text(usize, String, Vec<openai::TokenLogprob>),
    /// Choice `.0` ended.
    Finished(usize, FinishReason),
    /// Every choice ended (or generation failed): the usage and the bill.
    Done(Result<(openai::Usage, Billed), String>),
}

/// Chat (`chat = true`) or legacy completion, streamed or not, with one choice or several
/// (`n`, and a legacy completion's several prompts): choice `i × n + j` is prompt `i`'s
/// `j`-th generation, sampled with seed `seed + j`; the prompt tokens are billed once per
/// prompt (as OpenAI counts them) and every choice's generated tokens.
async fn generate(p: Arc<Provider>, headers: HeaderMap, body: Bytes, chat: bool) -> Result<Response, ApiError> {
    let (model_id, sampling, input) = if chat {
        let req: openai::ChatRequest = parse(&body)?;
        let s = req.sampling()?;
        let msgs: Vec<ChatMessage> = req.texts()?.into_iter().map(|(r, c)| ChatMessage::new(r, c)).collect();
        (req.model, s, Ok(msgs))
    } else {
        let req: openai::CompletionRequest = parse(&body)?;
        let s = req.sampling()?;
        let prompts = req.prompts()?;
        (req.model, s, Err(prompts))
    };
    let served = p.models.get(&model_id).ok_or_else(|| ApiError::unknown_model(&model_id))?;
    let Backend::Generator(model) = &served.backend else {
        return Err(ApiError::invalid("model", format!("{model_id} is not a text-generation model")));
    };
    let voucher = voucher_for(&served.offer, &headers)?;
    let (param, prompts): (&str, Vec<Vec<u32>>) = match &input {
        Ok(msgs) => {
            ("messages", vec![model.chat_prompt_ids(msgs).map_err(|e| ApiError::invalid("messages", e.to_string()))?])
        }
        Err(prompts) => (
            "prompt",
            prompts
                .iter()
                .map(|p| match p {
                    openai::PromptInput::Text(t) => model.encode(t),
                    openai::PromptInput::Tokens(ids) => Ok(ids.clone()),
                })
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid("prompt", e.to_string()))?,
        ),
    };
    let context = model.context_tokens_max();
    let base = GenerateParams {
        max_tokens: 1,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        seed: sampling.seed.unwrap_or(0),
        stop: sampling.stop.clone(),
        frequency_penalty: sampling.penalties.frequency_penalty as f32,
        presence_penalty: sampling.penalties.presence_penalty as f32,
        logit_bias: sampling.penalties.logit_bias.iter().map(|&(id, b)| (id, b as f32)).collect(),
        logprobs: sampling.logprobs,
        json_object: sampling.json_object,
    };
    // The generator's own rules, before payment: a request it would refuse costs nothing.
    for ids in &prompts {
        model.check(ids, &base).map_err(|e| match e {
            models::Error::InvalidParameter { name: "prompt", message } => ApiError::invalid(param, message),
            models::Error::InvalidParameter { name, message } => ApiError::invalid(name, message),
            other => ApiError::invalid(param, other.to_string()),
        })?;
    }
    // Every choice: (index, prompt, its output budget, seed).
    let n = sampling.n as usize;
    let seed = base.seed;
    let jobs: Vec<(usize, usize, usize, u64)> = (0..prompts.len())
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| {
            let room = context - prompts[i].len();
            let budget = sampling.max_tokens.map_or(room, |m| (m as usize).min(room));
            (i * n + j, i, budget, seed.wrapping_add(j as u64))
        })
        .collect();
    let prompt_tokens: u64 = prompts.iter().map(|ids| ids.len() as u64).sum();
    let choices = jobs.len();
    let worst = cost(&served.offer, prompt_tokens, jobs.iter().map(|j| j.2 as u64).sum());
    let (payment, stored) = Payment::admit(&p, voucher, worst).await?;
    // The model runs on a blocking thread and hands text over a channel; if the client
    // goes away, the channel closes, generation stops, and what was generated is billed.
    let (tx, mut rx) = mpsc::channel::<Piece>(64);
    let (m, offer, book_owner) = (model.clone(), served.offer.clone(), p.clone());
    tokio::task::spawn_blocking(move || {
        let mut generated = 0u64;
        let mut failed = None;
        for (index, prompt, max_tokens, seed) in jobs {
            let params = GenerateParams { max_tokens, seed, ..base.clone() };
            let on_text = |t: &str, lps: &[models::TokenLogprob]| {
                let lps = lps
                    .iter()
                    .map(|l| openai::TokenLogprob {
                        bytes: l.bytes.clone(),
                        logprob: l.logprob,
                        top: l.top.iter().map(|(_, b, lp)| (b.clone(), *lp)).collect(),
                    })
                    .collect();
                match tx.blocking_send(Piece::Text(index, t.to_string(), lps)) {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(_) => ControlFlow::Break(()),
                }
            };
            match m.generate_with_logprobs(&prompts[prompt], &params, on_text) {
                Ok(c) => {
                    generated += c.completion_tokens as u64;
                    if c.finish_reason == FinishReason::Cancelled
                        || tx.blocking_send(Piece::Finished(index, c.finish_reason)).is_err()
                    {
                        break; // the client left: bill what was generated
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        let done = match failed {
            None => {
                let price = cost(&offer, prompt_tokens, generated);
                payment
                    .settle(&book_owner.book, price)
                    .map(|b| (openai::Usage::new(prompt_tokens, generated, b.cost()), b))
                    .map_err(|e| e.to_string())
            }
            Some(e) => {
                let _ = payment.settle(&book_owner.book, Amount::ZERO);
                Err(e)
            }
        };
        let _ = tx.blocking_send(Piece::Done(done));
    });
    let id = format!("{}-{}", if chat { "chatcmpl" } else { "cmpl" }, request_id());
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if !sampling.stream {
        let mut texts = vec![String::new(); choices];
        let mut finishes = vec![FinishReason::Cancelled; choices];
        let mut logprobs: Vec<Vec<openai::TokenLogprob>> = vec![Vec::new(); choices];
        loop {
            match rx.recv().await {
                Some(Piece::Text(i, t, lps)) => {
                    texts[i].push_str(&t);
                    logprobs[i].extend(lps);
                }
                Some(Piece::Finished(i, f)) => finishes[i] = f,
                Some(Piece::Done(Ok((usage, billed)))) => {
                    durable(stored).await?;
                    let choices: Vec<openai::Choice> = texts
                        .into_iter()
                        .zip(finishes)
                        .zip(logprobs)
                        .map(|((text, f), lps)| openai::Choice {
                            text,
                            finish_reason: finish(f),
                            logprobs: match sampling.logprobs {
                                None => serde_json::Value::Null,
                                Some(_) if chat => openai::chat_logprobs(&lps),
                                Some(_) => openai::completion_logprobs(&lps, 0),
                            },
                        })
                        .collect();
                    let body = if chat {
                        openai::chat_completion(&id, created, &model_id, &choices, &usage)
                    } else {
                        openai::text_completions(&id, created, &model_id, &choices, &usage)
                    };
                    let mut r = Json(body).into_response();
                    billed.headers(&mut r);
                    return Ok(r);
                }
                Some(Piece::Done(Err(e))) => return Err(ApiError::server(format!("generation failed: {e}"))),
                None => return Err(ApiError::server("generation stopped")),
            }
        }
    }
    // Nothing is sent before the voucher is durable.
    durable(stored).await?;
    let include_usage = sampling.include_usage;
    let stream = async_stream(rx, id, created, model_id, chat, include_usage, sampling.logprobs.is_some());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A call to an upstream model: reserve, forward, relay, bill what was counted.
async fn proxy(p: Arc<Provider>, headers: HeaderMap, body: Bytes, kind: Kind) -> Result<Response, ApiError> {
    let req: serde_json::Value = parse(&body)?;
    let model_id = req["model"].as_str().ok_or_else(|| ApiError::invalid("model", "`model` is required"))?.to_string();
    let served = p.models.get(&model_id).ok_or_else(|| ApiError::unknown_model(&model_id))?;
    let Backend::Upstream(up) = &served.backend else { return Err(ApiError::unknown_model(&model_id)) };
    let stream = kind != Kind::Embedding && req["stream"].as_bool() == Some(true);
    let client_usage = req["stream_options"]["include_usage"].as_bool() == Some(true);
    let voucher = voucher_for(&served.offer, &headers)?;
    let prompt = up.prompt_tokens(kind, &req, body.len())?;
    let worst = cost(&served.offer, prompt, up.output_bound(kind, &req));
    let (payment, stored) = Payment::admit(&p, voucher, worst).await?;
    let resp = match up.send(kind, req, stream).await {
        Ok(r) => r,
        Err(e) => {
            let _ = payment.settle(&p.book, Amount::ZERO);
            return Err(e);
        }
    };
    if !stream {
        let mut answer: serde_json::Value = match resp.json().await {
            Ok(v) => v,
            Err(e) => {
                let _ = payment.settle(&p.book, Amount::ZERO);
                return Err(upstream::upstream_error(format!("the upstream's answer is not JSON: {e}")));
            }
        };
        let texts = if kind == Kind::Embedding { Vec::new() } else { upstream::generated_texts(kind, &answer) };
        let (pt, ct) = up.used(prompt, texts.iter().map(String::as_str), &answer["usage"]);
        let billed = payment.settle(&p.book, cost(&served.offer, pt, ct).min(worst)).map_err(pay_err)?;
        durable(stored).await?;
        answer["model"] = serde_json::Value::String(model_id);
        answer["usage"] = serde_json::to_value(openai::Usage::new(pt, ct, billed.cost())).expect("serialisable");
        let mut r = Json(answer).into_response();
        billed.headers(&mut r);
        return Ok(r);
    }
    // Nothing is sent before the voucher is durable.
    durable(stored).await?;
    let (offer, owner, up, model) = (served.offer.clone(), p.clone(), up.clone(), model_id.clone());
    let object = if kind == Kind::Chat { "chat.completion.chunk" } else { "text_completion" };
    let body = upstream::relay(resp, kind, model_id, move |r| {
        let (pt, ct) = up.used(prompt, r.texts.values().map(String::as_str), &r.usage);
        let mut closing = Vec::new();
        match payment.settle(&owner.book, cost(&offer, pt, ct).min(worst)) {
            Ok(b) if client_usage => {
                let usage = openai::Usage::new(pt, ct, b.cost());
                closing.push(format!("data: {}\n\n", openai::usage_chunk(&r.id, r.created, &model, object, &usage)));
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "billing an upstream stream"),
        }
        if r.complete {
            closing.push("data: [DONE]\n\n".to_string());
        }
        closing
    });
    let mut r = Response::new(body);
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(r)
}

/// Waits (on a blocking thread) for a call's voucher to be durable; the call runs
/// meanwhile, and its answer waits for this.
async fn durable(stored: Stored) -> Result<(), ApiError> {
    match stored {
        Some(d) => d.done().await.map_err(|e| ApiError::server(format!("could not store the voucher: {e}"))),
        None => Ok(()),
    }
}

fn finish(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

/// The SSE events of a streamed generation, ending with `[DONE]`.
fn async_stream(
    mut rx: mpsc::Receiver<Piece>,
    id: String,
    created: u64,
    model: String,
    chat: bool,
    include_usage: bool,
    logprobs: bool,
) -> impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>> {
    let (etx, erx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let data = |v: serde_json::Value| Event::default().data(v.to_string());
        // Choices that have sent their first chunk (which carries the role).
        let mut started = std::collections::BTreeSet::new();
        // Per choice, characters sent so far (a completion's `text_offset`).
        let mut offsets: BTreeMap<usize, usize> = BTreeMap::new();
        loop {
            let v = match rx.recv().await {
                Some(Piece::Text(i, t, lps)) => {
                    let mut v = if chat {
                        openai::chat_chunk(&id, created, &model, i, started.insert(i), Some(&t), None, include_usage)
                    } else {
                        openai::text_completion_chunk(&id, created, &model, i, &t, None)
                    };
                    if logprobs {
                        let offset = offsets.entry(i).or_default();
                        v["choices"][0]["logprobs"] =
                            if chat { openai::chat_logprobs(&lps) } else { openai::completion_logprobs(&lps, *offset) };
                        *offset += t.chars().count();
                    }
                    v
                }
                Some(Piece::Finished(i, f)) => {
                    let f = finish(f);
                    if chat {
                        openai::chat_chunk(&id, created, &model, i, started.insert(i), None, Some(f), include_usage)
                    } else {
                        openai::text_completion_chunk(&id, created, &model, i, "", Some(f))
                    }
                }
                Some(Piece::Done(Ok((usage, _)))) => {
                    if include_usage {
                        let object = if chat { "chat.completion.chunk" } else { "text_completion" };
                        let _ = etx.send(data(openai::usage_chunk(&id, created, &model, object, &usage))).await;
                    }
                    let _ = etx.send(Event::default().data("[DONE]")).await;
                    return;
                }
                Some(Piece::Done(Err(e))) => {
                    let body = ApiError::server(format!("generation failed: {e}")).body;
                    let _ = etx.send(data(serde_json::to_value(body).expect("serialises"))).await;
                    return;
                }
                None => return,
            };
            if etx.send(data(v)).await.is_err() {
                return; // client gone: dropping rx stops the generation
            }
        }
    });
    use futures_util::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(erx).map(Ok)
}

/// Whether the chain lists this provider at `endpoint` with these models (else the
/// registration is due: a first start, new prices, or a restart on another address).
pub async fn registration_matches(p: &Provider, endpoint: &str) -> bool {
    match p.client.provider(&p.address).await {
        Ok(Some(v)) => v.endpoint == endpoint && p.models.values().all(|s| v.models.contains(&s.offer)),
        _ => false,
    }
}
