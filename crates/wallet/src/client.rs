//! Async client of a node's HTTP API (`/v1/...`, JSON; errors are `ErrorBody` with a
//! non-2xx status).

use api_types::{
    AccountView, BatchSubmitResponse, BlockEvent, BlockView, CapTableRow, ChainInfo, CommitmentView, EntityView,
    ErrorBody, GrantView, Health, OfferingReport, OfferingView, SubmitResponse, TxView,
};
use futures_util::{Stream, StreamExt};
use primitives::{Address, AssetId, EntityId, Hash, Height, SignedTransaction};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Limit on a whole request, response included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Limit on opening the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `wait_committed` asks for the transaction.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Largest error body quoted in an error message, in characters.
const QUOTED_BODY_CHARS_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not complete: connection refused, reset, timed out, ...
    #[error("{}", describe_transport_error(.0))]
    Http(reqwest::Error),
    /// The node answered with an error.
    #[error("{code}: {message}")]
    Api { status: u16, code: String, message: String },
    /// The node answered 2xx with a body this client does not understand.
    #[error("unexpected response from the node: {0}")]
    Decode(String),
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout { what: String, secs: u64 },
    /// The node left the transaction out of every block and forgot it.
    #[error("transaction dropped: {code}: {message}")]
    Dropped { code: String, message: String },
    #[error("invalid node URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl ClientError {
    /// The stable error code of an API error.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// "could not reach the node at http://host:port: connection refused".
fn describe_transport_error(e: &reqwest::Error) -> String {
    let at = e.url().map(|u| u.origin().ascii_serialization()).unwrap_or_else(|| "the configured URL".into());
    // reqwest's own message is generic ("error sending request for url (...)"); the
    // innermost cause says what happened.
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let what =
        if e.is_timeout() { format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()) } else { cause.to_string() };
    format!("could not reach the node at {at}: {what}")
}

fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut quoted: String = text.chars().take(QUOTED_BODY_CHARS_MAX).collect();
    if text.chars().count() > QUOTED_BODY_CHARS_MAX {
        quoted.push_str("...");
    }
    quoted
}

/// A client of one node. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// `base_url` is the node's API root, e.g. `http://127.0.0.1:8645` (a trailing `/` is
    /// ignored). Only `http` is supported.
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        let invalid = |reason: &str| ClientError::InvalidUrl { url: base_url.to_string(), reason: reason.to_string() };
        let url = reqwest::Url::parse(&base).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" {
            return Err(invalid("only http:// URLs are supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the URL has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the URL must not have a query or fragment"));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("tessera-wallet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Client { http, base })
    }

    /// The API root this client talks to, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/v1/health").await
    }

    pub async fn chain(&self) -> Result<ChainInfo, ClientError> {
        self.get("/v1/chain").await
    }

    /// An account never seen has zero nonces and no balances.
    pub async fn account(&self, address: &Address) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{address}")).await
    }

    /// Submits one transaction (JSON); the node answers 202 once it is in the mempool.
    pub async fn submit(&self, stx: &SignedTransaction) -> Result<SubmitResponse, ClientError> {
        let request = self.http.post(self.url("/v1/txs")).json(stx);
        self.send(request).await
    }

    /// Submits many transactions in one borsh-encoded request; the answer lists the ones
    /// the node refused, by index.
    pub async fn submit_batch(&self, txs: &[SignedTransaction]) -> Result<BatchSubmitResponse, ClientError> {
        // A slice encodes exactly as the `Vec` the node decodes (u32 length, then items).
        let body = primitives::codec::encode(&txs);
        let request = self
            .http
            .post(self.url("/v1/txs/batch"))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.send(request).await
    }

    /// `None` when the node does not know the transaction.
    pub async fn tx(&self, hash: &Hash) -> Result<Option<TxView>, ClientError> {
        self.get_optional(&format!("/v1/txs/{hash}"), "tx_not_found").await
    }

    /// `None` when there is no block at `height` (yet).
    pub async fn block(&self, height: Height) -> Result<Option<BlockView>, ClientError> {
        self.get_optional(&format!("/v1/blocks/{}", height.0), "block_not_found").await
    }

    /// Polls every `POLL_INTERVAL` until the transaction is committed (its receipt may
    /// still say "rejected"). A dropped transaction is `ClientError::Dropped`; still pending
    /// or unknown after `timeout` is `ClientError::Timeout`.
    pub async fn wait_committed(&self, hash: &Hash, timeout: Duration) -> Result<TxView, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(view) = self.tx(hash).await? {
                match view.status.as_str() {
                    "committed" => return Ok(view),
                    "dropped" => {
                        let (code, message) = match view.error {
                            Some(ErrorBody { code, message }) => (code, message),
                            None => ("dropped".into(), "no reason given".into()),
                        };
                        return Err(ClientError::Dropped { code, message });
                    }
                    _ => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("transaction {hash} to be committed"),
                    secs: timeout.as_secs_f64().ceil() as u64,
                });
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// Moves a dev chain's block time forward; returns the new time.
    pub async fn advance_clock(&self, ms: u64) -> Result<u64, ClientError> {
        let body = serde_json::json!({ "advance_ms": ms.to_string() });
        let v: api_types::DevClock = self.send(self.http.post(self.url("/v1/dev/clock")).json(&body)).await?;
        Ok(v.now_ms)
    }

    pub async fn providers(&self) -> Result<Vec<api_types::ProviderView>, ClientError> {
        self.get("/v1/providers").await
    }

    pub async fn provider(&self, address: &Address) -> Result<Option<api_types::ProviderView>, ClientError> {
        self.get_optional(&format!("/v1/providers/{address}"), "unknown_provider").await
    }

    pub async fn network(&self) -> Result<api_types::NetworkView, ClientError> {
        self.get("/v1/network").await
    }

    pub async fn neuron(&self, uid: u16) -> Result<Option<api_types::NeuronView>, ClientError> {
        self.get_optional(&format!("/v1/network/neurons/{uid}"), "unknown_uid").await
    }

    pub async fn account_stake(&self, address: &Address) -> Result<api_types::StakeView, ClientError> {
        self.get(&format!("/v1/accounts/{address}/stake")).await
    }

    pub async fn channel(&self, id: u64) -> Result<Option<api_types::ChannelView>, ClientError> {
        self.get_optional(&format!("/v1/channels/{id}"), "unknown_channel").await
    }

    pub async fn account_channels(&self, address: &Address) -> Result<Vec<api_types::ChannelView>, ClientError> {
        self.get(&format!("/v1/accounts/{address}/channels")).await
    }

    pub async fn offerings(&self) -> Result<Vec<OfferingView>, ClientError> {
        self.get("/v1/offerings").await
    }

    pub async fn offering(&self, id: u64) -> Result<Option<OfferingView>, ClientError> {
        self.get_optional(&format!("/v1/offerings/{id}"), "unknown_offering").await
    }

    pub async fn offering_report(&self, id: u64) -> Result<OfferingReport, ClientError> {
        self.get(&format!("/v1/offerings/{id}/report")).await
    }

    pub async fn commitment(
        &self,
        offering: u64,
        tranche: u16,
        entity: &EntityId,
    ) -> Result<Option<CommitmentView>, ClientError> {
        self.get_optional(&format!("/v1/offerings/{offering}/tranches/{tranche}/commitments/{entity}"), "no_commitment")
            .await
    }

    pub async fn entity(&self, id: &EntityId) -> Result<Option<EntityView>, ClientError> {
        self.get_optional(&format!("/v1/entities/{id}"), "unknown_entity").await
    }

    pub async fn grant(&self, id: u64) -> Result<Option<GrantView>, ClientError> {
        self.get_optional(&format!("/v1/grants/{id}"), "unknown_grant").await
    }

    pub async fn account_grants(&self, address: &Address) -> Result<Vec<GrantView>, ClientError> {
        self.get(&format!("/v1/accounts/{address}/grants")).await
    }

    /// The audit trail of blocks `from..=to` (either bound optional).
    pub async fn audit(&self, from: Option<u64>, to: Option<u64>) -> Result<Vec<api_types::AuditRow>, ClientError> {
        let mut q = Vec::new();
        if let Some(f) = from {
            q.push(format!("from={f}"));
        }
        if let Some(t) = to {
            q.push(format!("to={t}"));
        }
        self.get(&format!("/v1/reports/audit?{}", q.join("&"))).await
    }

    pub async fn cap_table(&self, asset: &AssetId) -> Result<Vec<CapTableRow>, ClientError> {
        self.get(&format!("/v1/reports/captable?asset={asset}")).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// GET where a 404 carrying `not_found_code` means "no such thing". Any other 404 (a
    /// wrong URL, say) stays an error.
    async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
        not_found_code: &str,
    ) -> Result<Option<T>, ClientError> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Api { status: 404, code, .. }) if code == not_found_code => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Committed blocks as the node announces them on `GET /v1/events`, from now on. A
    /// client too slow for the node's event buffer gets a `Decode` error naming how many
    /// events it missed.
    pub async fn block_events(&self) -> Result<impl Stream<Item = Result<BlockEvent, ClientError>>, ClientError> {
        // No overall timeout: the stream stays open for as long as the caller reads it.
        let http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().map_err(ClientError::Http)?;
        let response = http.get(self.url("/v1/events")).send().await.map_err(ClientError::Http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: "the node refused the event stream".into(),
            });
        }
        let state = (response.bytes_stream(), Vec::<u8>::new(), VecDeque::<Result<BlockEvent, ClientError>>::new());
        Ok(futures_util::stream::unfold(state, |(mut bytes, mut buf, mut ready)| async move {
            loop {
                if let Some(item) = ready.pop_front() {
                    return Some((item, (bytes, buf, ready)));
                }
                match bytes.next().await? {
                    Err(e) => return Some((Err(ClientError::Http(e)), (bytes, buf, ready))),
                    Ok(chunk) => {
                        buf.extend_from_slice(&chunk);
                        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                            let frame: Vec<u8> = buf.drain(..end + 2).collect();
                            if let Some(item) = parse_sse_frame(&String::from_utf8_lossy(&frame)) {
                                ready.push_back(item);
                            }
                        }
                    }
                }
            }
        }))
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = request.send().await.map_err(ClientError::Http)?;
        let status = response.status();
        let body = response.bytes().await.map_err(ClientError::Http)?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(ErrorBody { code, message }) => ClientError::Api { status: status.as_u16(), code, message },
                Err(_) => ClientError::Api {
                    status: status.as_u16(),
                    code: format!("http_{}", status.as_u16()),
                    message: match quote_body(&body) {
                        q if q.is_empty() => status.canonical_reason().unwrap_or("no error body").to_string(),
                        q => q,
                    },
                },
            });
        }
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Decode(format!("{e} (HTTP {}, body {:?})", status.as_u16(), quote_body(&body))))
    }
}

/// One server-sent-events frame: `event: block` with JSON data, `event: lagged` with a
/// count, comments (keep-alives) ignored.
fn parse_sse_frame(frame: &str) -> Option<Result<BlockEvent, ClientError>> {
    let mut event = "message";
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    match event {
        "block" => Some(serde_json::from_str(&data).map_err(|e| ClientError::Decode(format!("block event: {e}")))),
        "lagged" => Some(Err(ClientError::Decode(format!("event stream lagged: {} events missed", data.trim())))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::{Action, Amount, AssetId, Signature, Transaction};

    #[test]
    fn sse_frames_parse() {
        assert!(parse_sse_frame(": keep-alive\n\n").is_none());
        assert!(
            matches!(parse_sse_frame("event: lagged\ndata: 7\n\n"), Some(Err(ClientError::Decode(m))) if m.contains('7'))
        );
        let ev = r#"{"height":"3","hash":"0000000000000000000000000000000000000000000000000000000000000000","timestamp_ms":"5","state_root":"0000000000000000000000000000000000000000000000000000000000000000","receipts":[]}"#;
        let got = parse_sse_frame(&format!("event: block\ndata: {ev}\n\n")).unwrap().unwrap();
        assert_eq!(got.height.0, 3);
    }

    #[test]
    fn base_url_is_validated_and_trimmed() {
        let c = Client::new("http://127.0.0.1:8645/").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8645");
        assert_eq!(Client::new("http://node.example/api//").unwrap().base_url(), "http://node.example/api");
        for bad in ["", "127.0.0.1:8645", "https://node.example", "http://", "ftp://x"] {
            assert!(matches!(Client::new(bad), Err(ClientError::InvalidUrl { .. })), "{bad:?} accepted");
        }
    }

    #[test]
    fn batch_body_is_the_vec_encoding() {
        let stx = SignedTransaction {
            tx: Transaction {
                chain_id: "t".into(),
                signer: Address([1; 32]),
                nonce: 3,
                fee: Amount(1),
                expiry_height: None,
                action: Action::Burn { asset: AssetId::TSR, amount: Amount(2) },
            },
            signature: Signature([0; 64]),
        };
        let txs = vec![stx.clone(), stx];
        let slice: &[SignedTransaction] = &txs;
        assert_eq!(primitives::codec::encode(&slice), primitives::codec::encode(&txs));
    }

    #[tokio::test]
    async fn unreachable_node_says_so() {
        // Port 9 on localhost: nothing listens there in any sane test environment.
        let c = Client::new("http://127.0.0.1:9").unwrap();
        let err = c.health().await.unwrap_err();
        assert!(matches!(err, ClientError::Http(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("could not reach the node at http://127.0.0.1:9: "), "{msg}");
    }

    #[test]
    fn api_errors_display_code_and_message() {
        let e = ClientError::Api { status: 400, code: "bad_nonce".into(), message: "expected 3".into() };
        assert_eq!(e.to_string(), "bad_nonce: expected 3");
        assert_eq!(e.api_code(), Some("bad_nonce"));
    }
}
