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

/// How long requests in flight may take once shutdown has begun.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves the API on `listener` until `shutdown` resolves, then stops the chain
/// (finishing the block in progress and writing a final checkpoint).
pub async fn serve(
    chain: Arc<Chain>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::future::IntoFuture;
    let app = api::router(chain.clone());
    // Graceful shutdown waits for open connections: event streams (`/v1/events`) are ended
    // at once, requests in flight get `SHUTDOWN_GRACE`, then the remaining connections are
    // dropped.
    let (fired, on_fire) = tokio::sync::oneshot::channel::<()>();
    let closing = chain.clone();
    let signal = async move {
        shutdown.await;
        // Event streams end now, so graceful shutdown waits only for real requests.
        closing.close_streams();
        let _ = fired.send(());
    };
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(signal)
        .into_future();
    let grace = async move {
        match on_fire.await {
            Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
            Err(_) => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = server => result,
        () = grace => {
            tracing::info!("connections still open after the shutdown grace period are closed");
            Ok(())
        }
    };
    let c = chain.clone();
    tokio::task::spawn_blocking(move || c.shutdown()).await.ok();
    result
}
