//! A Tessera node: recovery, solo sequencer, mempool admission, HTTP API, events and
//! metrics.
//!
//! Architecture invariant: the node owns every thread, clock read and file; the ledger
//! it drives stays pure.

pub mod api;
pub mod chain;
pub mod channel_api;
pub mod genesis_file;
pub mod incentive_api;
pub mod metrics;
pub mod openapi;
pub mod sale_api;

pub use chain::{replay, AdmitError, Chain, ChainConfig, ChainError, TxStatus};

use std::net::SocketAddr;
use std::sync::Arc;

/// Serves the API on `listener` until `shutdown` resolves, then stops the chain
/// (finishing the block in progress and writing a final checkpoint).
pub async fn serve(
    chain: Arc<Chain>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = api::router(chain.clone());
    let result = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    let c = chain.clone();
    tokio::task::spawn_blocking(move || c.shutdown()).await.ok();
    result
}
