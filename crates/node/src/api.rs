//! The HTTP API (axum). Errors map to statuses in one place, `ApiError::status`; every
//! error body is `{ "code": ..., "message": ... }`.

use crate::chain::{AdmitError, Chain, TxStatus};
use api_types::*;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::Stream;
use primitives::limits::{BATCH_BYTES_MAX, BATCH_TXS_MAX};
use primitives::{codec, Address, Hash, Height, SignedTransaction};
use std::sync::Arc;

/// Largest JSON body on single-transaction routes.
pub const JSON_BODY_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The one mapping from submission refusals to HTTP statuses.
    fn from_admit(e: &AdmitError) -> ApiError {
        let status = match e.code() {
            "mempool_full" | "shutting_down" => StatusCode::SERVICE_UNAVAILABLE,
            "tx_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            "duplicate_tx" | "nonce_too_low" | "nonce_taken" => StatusCode::CONFLICT,
            "nonce_too_high" | "insufficient_fee_balance" | "expired" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }

    fn from_body(rejection: BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", rejection.body_text())
        } else {
            ApiError::bad_request("bad_body", rejection.body_text())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.code.to_string(), message: self.message };
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<storage::StoreError> for ApiError {
    fn from(e: storage::StoreError) -> Self {
        tracing::error!(error = %e, "store read failed");
        ApiError::internal(e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

pub fn router(chain: Arc<Chain>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/chain", get(chain_info))
        .route("/v1/txs", post(submit_tx).layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX)))
        .route("/v1/txs/batch", post(submit_batch).layer(DefaultBodyLimit::max(BATCH_BYTES_MAX)))
        .route("/v1/txs/{hash}", get(get_tx))
        .route("/v1/accounts/{address}", get(get_account))
        .route("/v1/blocks/{height}", get(get_block))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/dev/clock", post(advance_clock).layer(DefaultBodyLimit::max(JSON_BODY_BYTES_MAX)))
        .merge(crate::sale_api::routes())
        .merge(crate::channel_api::routes())
        .merge(crate::incentive_api::routes())
        .fallback(|| async { ApiError::not_found("not_found", "no such route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .with_state(chain)
}

async fn health(State(chain): State<Arc<Chain>>) -> Json<Health> {
    Json(Health { status: "ok".into(), height: chain.state().height })
}

async fn chain_info(State(chain): State<Arc<Chain>>) -> Json<ChainInfo> {
    let s = chain.state();
    Json(ChainInfo {
        chain_id: s.params.chain_id.clone(),
        genesis_hash: s.params.genesis_hash,
        height: s.height,
        latest_block_hash: s.last_block_hash,
        latest_timestamp_ms: s.last_timestamp_ms,
        state_root: s.state_root(),
        fee: s.params.fee,
        block_interval_ms: s.params.block_interval_ms,
        assets: s
            .assets
            .values()
            .map(|a| AssetView {
                symbol: a.symbol,
                decimals: a.decimals,
                issuer: a.issuer,
                supply: a.supply,
                max_supply: a.max_supply,
            })
            .collect(),
        roles: RolesView {
            issuer: s.roles.issuer,
            compliance: s.roles.compliance,
            custodian: s.roles.custodian,
            treasury: s.roles.treasury,
        },
    })
}

async fn submit_tx(
    State(chain): State<Arc<Chain>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<SubmitResponse>)> {
    let body = body.map_err(ApiError::from_body)?;
    let stx: SignedTransaction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("malformed_json", format!("not a signed transaction: {e}")))?;
    let (tx_hash, verdict) = tokio::task::spawn_blocking(move || chain.admit(vec![stx]).remove(0))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    match verdict {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(SubmitResponse { tx_hash, status: "pending".into() }))),
        Err(e) => Err(ApiError::from_admit(&e)),
    }
}

/// Body: borsh `Vec<SignedTransaction>`. Answers 200 with per-index refusals.
async fn submit_batch(
    State(chain): State<Arc<Chain>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BatchSubmitResponse>> {
    let body = body.map_err(ApiError::from_body)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the batch endpoint takes application/octet-stream: borsh Vec<SignedTransaction>",
        ));
    }
    let txs: Vec<SignedTransaction> =
        codec::decode(&body, BATCH_BYTES_MAX).map_err(|e| ApiError::bad_request("malformed_batch", e.to_string()))?;
    if txs.len() > BATCH_TXS_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("at most {BATCH_TXS_MAX} transactions per batch"),
        ));
    }
    let verdicts =
        tokio::task::spawn_blocking(move || chain.admit(txs)).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let mut accepted = 0;
    let mut rejected = Vec::new();
    for (i, (id, verdict)) in verdicts.into_iter().enumerate() {
        match verdict {
            Ok(()) => accepted += 1,
            Err(e) => rejected.push(BatchRejection {
                index: i as u32,
                tx_hash: Some(id),
                code: e.code().to_string(),
                message: e.to_string(),
            }),
        }
    }
    Ok(Json(BatchSubmitResponse { accepted, rejected }))
}

async fn get_tx(State(chain): State<Arc<Chain>>, Path(hash): Path<String>) -> ApiResult<Json<TxView>> {
    let id: Hash =
        hash.parse().map_err(|e: primitives::hash::HashParseError| ApiError::bad_request("bad_hash", e.to_string()))?;
    let status = tokio::task::spawn_blocking(move || chain.tx_status(&id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let empty = |status: &str| TxView {
        tx_hash: id,
        status: status.into(),
        height: None,
        index: None,
        receipt: None,
        tx: None,
        error: None,
    };
    Ok(Json(match status {
        TxStatus::Pending => empty("pending"),
        TxStatus::Committed(loc, stored) => {
            let i = loc.index as usize;
            TxView {
                height: Some(loc.height),
                index: Some(loc.index),
                receipt: stored.receipts.get(i).map(ReceiptView::from),
                tx: stored.block.txs.get(i).cloned(),
                ..empty("committed")
            }
        }
        TxStatus::Dropped(reason) => TxView {
            error: Some(ErrorBody { code: reason.code().into(), message: reason.to_string() }),
            ..empty("dropped")
        },
        TxStatus::Unknown => {
            return Err(ApiError::not_found("tx_not_found", format!("transaction {id} is not known to this node")))
        }
    }))
}

async fn get_account(State(chain): State<Arc<Chain>>, Path(address): Path<String>) -> ApiResult<Json<AccountView>> {
    let address: Address =
        address.parse().map_err(|e: primitives::AddressError| ApiError::bad_request("bad_address", e.to_string()))?;
    let next_nonce = chain.next_nonce(&address);
    let s = chain.state();
    let acct = s.account(&address).cloned().unwrap_or_default();
    Ok(Json(AccountView {
        address,
        nonce: acct.nonce,
        next_nonce,
        balances: acct
            .balances
            .iter()
            .map(|b| BalanceView {
                asset: b.asset,
                balance: b.amount,
                locked: acct.locked(b.asset),
                spendable: acct.spendable(b.asset),
            })
            .collect(),
        locks: acct
            .locks
            .iter()
            .map(|l| LockView { kind: l.kind.name().into(), reference: l.reference, asset: l.asset, amount: l.amount })
            .collect(),
        entity: acct.entity,
        restrictions: acct
            .restrictions
            .iter()
            .filter(|r| r.until_ms > s.last_timestamp_ms)
            .map(|r| RestrictionView { asset: r.asset, kind: "non_us_recipients_only".into(), until_ms: r.until_ms })
            .collect(),
    }))
}

async fn get_block(State(chain): State<Arc<Chain>>, Path(height): Path<String>) -> ApiResult<Json<BlockView>> {
    let height = if height == "latest" {
        chain.state().height
    } else {
        Height(
            height
                .parse()
                .map_err(|_| ApiError::bad_request("bad_height", format!("not a block height: {height:?}")))?,
        )
    };
    let stored = tokio::task::spawn_blocking(move || chain.blocks().get(height))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??
        .ok_or_else(|| ApiError::not_found("block_not_found", format!("no block at height {height}")))?;
    Ok(Json(BlockView {
        hash: stored.block.header.hash(),
        header: stored.block.header,
        txs: stored.block.txs,
        receipts: stored.receipts.iter().map(ReceiptView::from).collect(),
    }))
}

/// Server-sent events: one `block` event per committed block, with its receipts, until the
/// API shuts down.
async fn events(State(chain): State<Arc<Chain>>) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
    use tokio_stream::StreamExt;
    let stream = BroadcastStream::new(chain.subscribe()).map(|item| {
        Ok(match item {
            Ok(ev) => {
                let body = BlockEvent {
                    height: ev.height,
                    hash: ev.hash,
                    timestamp_ms: ev.timestamp_ms,
                    state_root: ev.state_root,
                    receipts: ev.receipts.iter().map(ReceiptView::from).collect(),
                };
                Event::default()
                    .event("block")
                    .json_data(&body)
                    .unwrap_or_else(|_| Event::default().comment("encode error"))
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
        })
    });
    // Ends when the API shuts down.
    let stream = futures_util::StreamExt::take_until(stream, chain.streams_closed());
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdvanceClock {
    #[serde(with = "primitives::serde_u64")]
    advance_ms: u64,
}

/// Development chains: moves block time forward (for sale windows, lockups, vesting).
async fn advance_clock(State(chain): State<Arc<Chain>>, body: Bytes) -> ApiResult<Json<DevClock>> {
    let req: AdvanceClock = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("bad_request", format!("expected {{\"advance_ms\": ...}}: {e}")))?;
    match chain.advance_clock(req.advance_ms) {
        Ok(now_ms) => Ok(Json(DevClock { now_ms })),
        Err(e) => Err(ApiError::new(StatusCode::FORBIDDEN, "dev_clock_disabled", e.to_string())),
    }
}

async fn metrics(State(chain): State<Arc<Chain>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], chain.metrics.render())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::DOCUMENT)
}
