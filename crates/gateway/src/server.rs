//! The HTTP surface and the per-request routing loop.

use crate::directory::{Directory, Preferences};
use crate::operator::meter::{Caller, Hold, Standing, Used, Worst};
use crate::operator::{Operator, OperatorConfig};
use crate::payer::{Channel, Payer, Reservation};
use anyhow::{Context, Result};
use api_types::ProviderView;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use openai::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Output tokens assumed for a request without `max_tokens` (the bound of what it may cost).
const DEFAULT_MAX_TOKENS: u64 = 32_768;

/// `tessera gateway` configuration (TOML).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_node")]
    pub node: String,
    /// The key that pays (self-custody).
    pub key: PathBuf,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Accepted `Authorization: Bearer` keys; empty: no authentication (a local gateway).
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// TSR base units escrowed per provider channel (and added when it runs low).
    #[serde(default = "default_channel_amount")]
    pub channel_amount: String,
    #[serde(default = "default_channel_blocks")]
    pub channel_blocks: u64,
    /// Seconds between re-reads of the provider registry and incentives.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
    /// Seconds a provider may stay silent (before its answer's head, or between a stream's
    /// chunks) before the call counts as failed (fallback to the next provider, if nothing
    /// was streamed yet). Not a limit on a whole call: a long stream that keeps sending goes
    /// on.
    #[serde(default = "default_timeout")]
    pub upstream_timeout_secs: u64,
    /// Seconds between health checks of every provider (`GET {endpoint}/models`); 0: none.
    #[serde(default = "default_health")]
    pub health_check_secs: u64,
    /// Operator mode: API keys with budgets and limits, paid from users' deposits.
    #[serde(default)]
    pub operator: Option<OperatorConfig>,
}

fn default_node() -> String {
    "http://127.0.0.1:8645".into()
}
fn default_listen() -> SocketAddr {
    "127.0.0.1:8800".parse().expect("valid")
}
fn default_channel_amount() -> String {
    "10000000000".into()
}
fn default_channel_blocks() -> u64 {
    100_000
}
fn default_refresh() -> u64 {
    5
}
fn default_timeout() -> u64 {
    120
}
fn default_health() -> u64 {
    15
}

impl GatewayConfig {
    pub fn load(path: &std::path::Path) -> Result<GatewayConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

pub struct Gateway {
    cfg: GatewayConfig,
    payer: Arc<Payer>,
    operator: Option<Arc<Operator>>,
    directory: Directory,
    http: reqwest::Client,
    requests: AtomicU64,
    created: u64,
}

/// Connects to the node, reads the provider registry and starts refreshing it.
pub async fn start(cfg: GatewayConfig) -> Result<Arc<Gateway>> {
    let key = wallet::keystore::read(&cfg.key)?.decrypt(None)?;
    let client = wallet::client::Client::new(&cfg.node)?;
    let amount: u128 = cfg.channel_amount.parse().context("channel_amount must be TSR base units")?;
    let payer = Arc::new(Payer::new(key, client.clone(), amount, cfg.channel_blocks).await?);
    let operator = match &cfg.operator {
        Some(op) => {
            anyhow::ensure!(
                cfg.api_keys.is_empty(),
                "operator mode issues its own API keys (tessera gateway keys create); remove api_keys"
            );
            Some(Operator::start(op, payer.address(), client, crate::operator::meter::system_clock()).await?)
        }
        None => None,
    };
    let g = Arc::new(Gateway {
        operator,
        // A read timeout, not a total one: reqwest's total timeout also covers the body, so
        // it cut every stream longer than it (a long answer from a slow model) mid-way.
        http: reqwest::Client::builder()
            .read_timeout(Duration::from_secs(cfg.upstream_timeout_secs))
            .connect_timeout(Duration::from_secs(5))
            .build()?,
        cfg,
        payer,
        directory: Directory::default(),
        requests: AtomicU64::new(0),
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    });
    g.directory.refresh(g.payer.client()).await?;
    let weak = Arc::downgrade(&g);
    tokio::spawn(async move {
        loop {
            let Some(g) = weak.upgrade() else { break };
            let every = Duration::from_secs(g.cfg.refresh_secs.max(1));
            if let Err(e) = g.directory.refresh(g.payer.client()).await {
                tracing::warn!(error = %format!("{e:#}"), "refreshing the provider registry");
            }
            drop(g);
            tokio::time::sleep(every).await;
        }
    });
    if g.cfg.health_check_secs > 0 {
        let weak = Arc::downgrade(&g);
        let every = Duration::from_secs(g.cfg.health_check_secs);
        tokio::spawn(async move {
            loop {
                let Some(g) = weak.upgrade() else { break };
                g.directory.check_health(&g.http).await;
                drop(g);
                tokio::time::sleep(every).await;
            }
        });
    }
    Ok(g)
}

impl Gateway {
    pub fn payer_address(&self) -> primitives::Address {
        self.payer.address()
    }

    /// Operator mode's state (None in self-custody mode).
    pub fn operator(&self) -> Option<&Arc<Operator>> {
        self.operator.as_ref()
    }
}

pub fn router(g: Arc<Gateway>) -> Router {
    let admin = match &g.operator {
        Some(op) => crate::operator::admin::router(op.clone()),
        None => Router::new(),
    };
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/v1/chat/completions", post(|s, h, b| proxy(s, h, b, "/chat/completions", true)))
        .route("/v1/completions", post(|s, h, b| proxy(s, h, b, "/completions", true)))
        .route("/v1/embeddings", post(|s, h, b| proxy(s, h, b, "/embeddings", false)))
        .route("/v1/responses", post(responses))
        .route("/v1/responses/{id}", get(not_stored).delete(not_stored))
        .route("/v1/responses/{id}/input_items", get(not_stored))
        .route("/v1/responses/{id}/cancel", post(not_stored))
        .with_state(g)
        .merge(admin)
        .fallback(|| async { err(ApiError::new(404, "invalid_request_error", "not_found", "no such route")) })
}

/// An API error as a response: the JSON body, `x-should-retry`, and `retry-after-ms` with
/// `retry-after` (whole seconds, rounded up) for rate limits.
pub fn error_response(e: ApiError) -> Response {
    let mut r =
        (StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(e.body)).into_response();
    if let Some(retry) = e.should_retry {
        r.headers_mut().insert("x-should-retry", HeaderValue::from_static(if retry { "true" } else { "false" }));
    }
    if let Some(ms) = e.retry_after_ms {
        r.headers_mut().insert("retry-after-ms", HeaderValue::from(ms));
        r.headers_mut().insert("retry-after", HeaderValue::from(ms.div_ceil(1000)));
    }
    r
}

fn err(e: ApiError) -> Response {
    error_response(e)
}

/// The caller: in operator mode the owner of a valid API key; in self-custody mode
/// nobody in particular (after the configured keys, if any, were checked).
fn authorize(g: &Gateway, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(op) = &g.operator {
        return op.meter.authenticate(given).map(Some);
    }
    if g.cfg.api_keys.is_empty() {
        return Ok(None);
    }
    match given {
        Some(k) if g.cfg.api_keys.iter().any(|a| a == k) => Ok(None),
        Some(_) => Err(ApiError::unauthorized("invalid_api_key", "the API key is not valid for this gateway")),
        None => Err(ApiError::unauthorized("missing_api_key", "send Authorization: Bearer <api key>")),
    }
}

/// Whether the caller's key may use `model` (always in self-custody mode).
fn allowed(g: &Gateway, caller: &Option<Caller>, model: &str) -> Result<(), ApiError> {
    match (&g.operator, caller) {
        (Some(op), Some(c)) => op.meter.allows(c, model),
        _ => Ok(()),
    }
}

async fn list_models(State(g): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let caller = match authorize(&g, &headers) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    let models = g
        .directory
        .models()
        .iter()
        .filter(|m| allowed(&g, &caller, m).is_ok())
        .map(|m| openai::Model::new(m, g.created, "tessera"))
        .collect();
    Json(openai::model_list(models)).into_response()
}

async fn get_model(State(g): State<Arc<Gateway>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let caller = match authorize(&g, &headers) {
        Ok(c) => c,
        Err(e) => return err(e),
    };
    if g.directory.models().contains(&id) && allowed(&g, &caller, &id).is_ok() {
        Json(openai::Model::new(&id, g.created, "tessera")).into_response()
    } else {
        err(ApiError::unknown_model(&id))
    }
}

/// What one provider did with the request.
enum Attempt {
    /// A response for the client (success, or a client error no other provider would fix).
    Done(Response),
    /// Try the next provider.
    Next(String),
}

async fn proxy(
    State(g): State<Arc<Gateway>>,
    headers: HeaderMap,
    body: Bytes,
    path: &'static str,
    generates: bool,
) -> Response {
    let n = g.requests.fetch_add(1, Ordering::Relaxed);
    with_request_id(n, route(&g, &headers, body, path, generates).await)
}

/// The answer (or the error's) with `x-request-id`, from the gateway's request counter.
fn with_request_id(n: u64, answer: Result<Response, ApiError>) -> Response {
    let mut r = answer.unwrap_or_else(err);
    r.headers_mut().insert("x-request-id", HeaderValue::from_str(&format!("req-gw-{n}")).expect("ascii"));
    r
}

/// `POST /v1/responses`: OpenAI's Responses API, answered as a chat completion
/// (`openai::responses`): the same routing, fallback, payment and metering as
/// `/v1/chat/completions`, the request and the answer translated at this edge.
async fn responses(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = g.requests.fetch_add(1, Ordering::Relaxed);
    with_request_id(n, respond(&g, &headers, body).await)
}

/// A stored response's routes: nothing is stored, so every id is unknown.
async fn not_stored(State(g): State<Arc<Gateway>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(e) = authorize(&g, &headers) {
        return err(e);
    }
    err(ApiError::new(
        404,
        "invalid_request_error",
        "response_not_found",
        format!("no response `{id}` here: responses are answered without being stored (`store` is always false)"),
    ))
}

async fn respond(g: &Arc<Gateway>, headers: &HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    // A caller without a valid key hears that first, whatever the body.
    authorize(g, headers)?;
    let req: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", format!("invalid JSON body: {e}")))?;
    let (chat, echo) = openai::responses::to_chat(&req)?;
    let chat = Bytes::from(serde_json::to_vec(&chat).expect("a JSON value"));
    let answer = route(g, headers, chat, "/chat/completions", true).await?;
    if answer.status() != StatusCode::OK {
        // Errors have the same shape in both APIs.
        return Ok(answer);
    }
    let (mut parts, body) = answer.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let body = if echo.stream {
        parts.headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        translate_events(body, openai::responses::StreamTranslator::new(echo))
    } else {
        let bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .map_err(|e| ApiError::server(format!("reading the model's answer: {e}")))?;
        let chat: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::server(format!("the model's answer is not JSON: {e}")))?;
        parts.headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Body::from(serde_json::to_vec(&openai::responses::from_chat(&chat, &echo)).expect("a JSON value"))
    };
    Ok(Response::from_parts(parts, body))
}

/// A stream of chat completion chunks (server-sent events) as the Responses API's events,
/// framed by the same relay as the provider's streams.
fn translate_events(body: Body, translator: openai::responses::StreamTranslator) -> Body {
    // The translator, and whether the chat stream reached its `[DONE]`.
    let on_event = |(t, done): &mut (openai::responses::StreamTranslator, bool), event: &str| {
        let out = if event.lines().any(|l| l.strip_prefix("data:").map(str::trim) == Some("[DONE]")) {
            *done = true;
            t.finish(true)
        } else {
            provider::upstream::event_json(event).map(|chunk| t.chunk(&chunk)).unwrap_or_default()
        };
        (!out.is_empty()).then(|| out.concat())
    };
    provider::upstream::relay_events(body.into_data_stream(), (translator, false), on_event, |(mut t, done), failed| {
        t.finish(done && !failed)
    })
}

async fn route(
    g: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Bytes,
    path: &str,
    generates: bool,
) -> Result<Response, ApiError> {
    let caller = authorize(g, headers)?;
    let mut req: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", format!("invalid JSON body: {e}")))?;
    let model = req["model"].as_str().ok_or_else(|| ApiError::invalid("model", "`model` is required"))?.to_string();
    allowed(g, &caller, &model)?;
    let prefs: Preferences = match req.as_object_mut().and_then(|o| o.remove("provider")) {
        Some(p) => serde_json::from_value(p).map_err(|e| ApiError::invalid("provider", e.to_string()))?,
        None => Preferences::default(),
    };
    let stream = req["stream"].as_bool() == Some(true);
    let client_wants_usage = req["stream_options"]["include_usage"].as_bool() == Some(true);
    if stream && caller.is_some() && !client_wants_usage {
        // The operator bills streams from their final usage chunk; the client does not see it.
        req["stream_options"] = serde_json::json!({ "include_usage": true });
    }
    let out_tokens = if generates {
        // Per choice, for every choice asked for (`n`, times a completion's prompts).
        req["max_completion_tokens"]
            .as_u64()
            .or(req["max_tokens"].as_u64())
            .unwrap_or(DEFAULT_MAX_TOKENS)
            .saturating_mul(openai::choices_requested(&req))
    } else {
        0
    };
    let upstream = Bytes::from(serde_json::to_vec(&req).expect("a JSON value"));
    // Tokens never outnumber the bytes of the text, plus the chat template's.
    let in_tokens = upstream.len() as u64 + 256;
    let mut candidates = g.directory.candidates(&model, &prefs);
    if candidates.is_empty() {
        let _ = g.directory.refresh(g.payer.client()).await;
        candidates = g.directory.candidates(&model, &prefs);
    }
    if candidates.is_empty() {
        return Err(ApiError::unknown_model(&model));
    }
    let bound_of = |p: &ProviderView| {
        let offer = p.models.iter().find(|o| o.model == model).expect("candidates serve the model");
        provider::cost(offer, in_tokens, out_tokens).0
    };
    // Operator mode: reserve the worst case over every provider a fallback may reach.
    let hold = match (&g.operator, &caller) {
        (Some(op), Some(c)) => {
            let worst = Worst {
                cost: candidates.iter().map(&bound_of).max().unwrap_or(0),
                tokens: in_tokens + out_tokens,
                // OpenAI's estimate: a token per four bytes of input, plus the output bound.
                tpm_estimate: (upstream.len() as u64).div_ceil(4) + out_tokens,
            };
            let staked = op.staked(&c.owner).await;
            Some(op.meter.reserve(c, worst, staked)?)
        }
        _ => None,
    };
    let bounds: Vec<u128> = candidates.iter().map(&bound_of).collect();
    let dispatch = {
        let (g, path) = (g.clone(), path.to_string());
        async move {
            let call = Call { path: &path, body: &upstream, stream, client_wants_usage, model: &model };
            dispatch(&g, &candidates, &bounds, &call, hold).await
        }
    };
    if g.operator.is_some() {
        // A task of its own: a client that leaves does not stop a call the operator pays
        // for, so the call finishes and its cost is charged to the key.
        return tokio::spawn(dispatch).await.map_err(|e| ApiError::server(format!("the call failed: {e}")))?;
    }
    dispatch.await
}

/// Tries the candidates in order until one answers.
async fn dispatch(
    g: &Arc<Gateway>,
    candidates: &[ProviderView],
    bounds: &[u128],
    call: &Call<'_>,
    mut hold: Option<Hold>,
) -> Result<Response, ApiError> {
    let mut failures = Vec::new();
    for (p, bound) in candidates.iter().zip(bounds) {
        match attempt(g, p, call, *bound, &mut hold).await {
            Attempt::Done(r) => return Ok(r),
            Attempt::Next(why) => {
                tracing::info!(provider = %p.address, reason = %why, "falling back to the next provider");
                g.directory.record(&p.address, Err(()));
                g.directory.cool_down(&p.address);
                failures.push(format!("{}: {why}", p.address));
            }
        }
    }
    let mut e = ApiError::new(
        502,
        "server_error",
        "no_provider_available",
        format!("every provider of {} failed: {}", call.model, failures.join("; ")),
    );
    e.should_retry = Some(true);
    Err(e)
}

/// What is sent upstream, the same for every provider tried.
struct Call<'a> {
    path: &'a str,
    body: &'a Bytes,
    stream: bool,
    /// The client asked for the final usage chunk (else it is only read, not forwarded).
    client_wants_usage: bool,
    model: &'a str,
}

/// The operator's headers: the owner's balance, the key's budget and rate limits.
fn standing_headers(h: &mut HeaderMap, s: &Standing) {
    h.insert("x-tessera-balance", HeaderValue::from_str(&s.balance.to_string()).expect("digits"));
    if let Some(b) = s.budget_remaining {
        h.insert("x-tessera-budget-remaining", HeaderValue::from_str(&b.to_string()).expect("digits"));
    }
    if s.free {
        h.insert("x-tessera-free-quota", HeaderValue::from_static("true"));
    }
    if let Some((limit, left)) = s.rpm {
        h.insert("x-ratelimit-limit-requests", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from(left));
    }
    if let Some((limit, left)) = s.tpm {
        h.insert("x-ratelimit-limit-tokens", HeaderValue::from(limit));
        h.insert("x-ratelimit-remaining-tokens", HeaderValue::from(left));
    }
}

/// The usage of a provider's answer: from the `usage` object, the cost from
/// `x-tessera-cost` or `usage.cost`.
fn used_of(usage: &Value, cost_header: Option<u128>, model: &str, provider: primitives::Address) -> Option<Used> {
    let cost = cost_header.or_else(|| usage["cost"].as_str().and_then(|c| c.parse().ok()))?;
    Some(Used {
        model: model.to_string(),
        provider,
        prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        cost,
    })
}

/// The usage object of one server-sent event, if it is the final usage chunk.
fn usage_in_event(event: &str) -> Option<Value> {
    if !event.contains("\"usage\"") {
        return None;
    }
    let v = provider::upstream::event_json(event)?;
    (v["usage"].is_object() && v["choices"].as_array().is_none_or(|c| c.is_empty())).then(|| v["usage"].clone())
}

/// Relays an upstream stream to the client, reading it to the end even when the client goes
/// away, so the call's usage is always known; `on_end` gets it.
fn relay(resp: reqwest::Response, forward_usage: bool, on_end: impl FnOnce(Option<Value>) + Send + 'static) -> Body {
    let on_event = move |usage: &mut Option<Value>, event: &str| match usage_in_event(event) {
        Some(u) => {
            *usage = Some(u);
            forward_usage.then(|| event.to_string())
        }
        None => Some(event.to_string()),
    };
    provider::upstream::relay_events(resp.bytes_stream(), None, on_event, |usage, _failed| {
        on_end(usage);
        Vec::new()
    })
}

/// A call's payment: its reservation on the provider's channel (none for a free model).
/// Finished with what the provider says is owed, or, when dropped without that (at the end
/// of a stream, or when the client goes away mid-stream: the provider bills what it
/// generated), marked for re-reading by the next call.
struct Settle {
    payer: Arc<Payer>,
    paid: Option<(Arc<Channel>, Reservation)>,
}

impl Settle {
    fn finish(mut self, owed: Option<u128>) {
        self.settle(owed);
    }

    fn settle(&mut self, owed: Option<u128>) {
        if let Some((chan, r)) = self.paid.take() {
            self.payer.finish(&chan, r, owed);
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.settle(None);
    }
}

fn copy_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap, provider: &ProviderView) {
    for (name, value) in from {
        let n = name.as_str();
        if n.starts_with("x-tessera-") || n == "content-type" {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                to.insert(name.clone(), v);
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&provider.address.to_string()) {
        to.insert("x-tessera-provider", v);
    }
}

async fn attempt(g: &Arc<Gateway>, p: &ProviderView, call: &Call<'_>, bound: u128, hold: &mut Option<Hold>) -> Attempt {
    let (body, stream) = (call.body, call.stream);
    let url = format!("{}{}", p.endpoint.trim_end_matches('/'), call.path);
    // A free model takes no voucher: no channel, nothing to pay or re-read.
    let free = p.models.iter().any(|o| o.model == call.model && o.is_free());
    for retry in 0..2 {
        let mut request = g.http.post(&url).header("content-type", "application/json");
        let settle = if free {
            Settle { payer: g.payer.clone(), paid: None }
        } else {
            let chan = match g.payer.channel(p, bound).await {
                Ok(c) => c,
                // The payer cannot fund the call: no other provider would change that.
                Err(e) if format!("{e:#}").contains("insufficient_funds") => {
                    return Attempt::Done(err(ApiError::payment_required(
                        "insufficient_balance",
                        format!("the gateway's account cannot fund a channel for this call: {e:#}"),
                    )))
                }
                Err(e) => return Attempt::Next(format!("no channel: {e:#}")),
            };
            let reservation = g.payer.begin(&chan, bound);
            request = request.header("x-tessera-voucher", reservation.voucher.to_string());
            Settle { payer: g.payer.clone(), paid: Some((chan, reservation)) }
        };
        let started = std::time::Instant::now();
        let resp = match request.body(body.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                settle.finish(None);
                return Attempt::Next(format!("unreachable: {e}"));
            }
        };
        let status = resp.status();
        if status.is_success() {
            g.directory.record(&p.address, Ok(started.elapsed()));
        }
        if status.is_success() && stream {
            let mut out = Response::builder().status(200).body(Body::empty()).expect("valid");
            copy_headers(resp.headers(), out.headers_mut(), p);
            match hold.take() {
                Some(h) => {
                    standing_headers(out.headers_mut(), h.standing());
                    let (model, provider) = (call.model.to_string(), p.address);
                    *out.body_mut() = relay(resp, call.client_wants_usage, move |usage| {
                        drop(settle);
                        match usage.as_ref().and_then(|u| used_of(u, None, &model, provider)) {
                            Some(used) => {
                                h.settle(&used);
                            }
                            None => tracing::warn!(%provider, "a stream ended without its usage; not billed"),
                        }
                    });
                }
                None => {
                    let body = resp.bytes_stream().map(move |chunk| {
                        let _keep = &settle;
                        chunk.map_err(std::io::Error::other)
                    });
                    *out.body_mut() = Body::from_stream(body);
                }
            }
            return Attempt::Done(out);
        }
        let owed = resp
            .headers()
            .get("x-tessera-channel-owed")
            .and_then(|h| h.to_str().ok())
            .and_then(|s| s.parse::<u128>().ok());
        let headers = resp.headers().clone();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                settle.finish(None);
                return Attempt::Next(format!("reading the answer: {e}"));
            }
        };
        if status.is_success() {
            settle.finish(owed);
            let mut out = Response::builder().status(200).body(Body::from(bytes.clone())).expect("valid");
            copy_headers(&headers, out.headers_mut(), p);
            if let Some(h) = hold.take() {
                let usage = serde_json::from_slice::<Value>(&bytes).map(|v| v["usage"].clone()).unwrap_or(Value::Null);
                let cost = headers.get("x-tessera-cost").and_then(|c| c.to_str().ok()).and_then(|c| c.parse().ok());
                let standing = match used_of(&usage, cost, call.model, p.address) {
                    Some(used) => h.settle(&used),
                    None => {
                        tracing::warn!(provider = %p.address, "an answer without usage; not billed");
                        h.standing().clone()
                    }
                };
                standing_headers(out.headers_mut(), &standing);
            }
            return Attempt::Done(out);
        }
        settle.finish(None);
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
        match (status.as_u16(), code.as_str()) {
            (401 | 402, "stale_nonce" | "insufficient_voucher" | "insufficient_escrow") if retry == 0 => {
                g.payer.invalidate(&p.address).await;
                continue;
            }
            (_, "unknown_channel") => return Attempt::Next("the provider has not seen the channel yet".into()),
            (404, _) => return Attempt::Next(format!("404 {code}")),
            (s, _) if s >= 500 || s == 401 || s == 402 || s == 429 => return Attempt::Next(format!("{status} {code}")),
            _ => {
                // The request itself is wrong (400 and the like): every provider would say so.
                let mut out = Response::builder().status(status.as_u16()).body(Body::from(bytes)).expect("valid");
                copy_headers(&headers, out.headers_mut(), p);
                return Attempt::Done(out);
            }
        }
    }
    Attempt::Next("the voucher was refused twice".into())
}
