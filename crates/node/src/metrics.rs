//! Prometheus metrics of one node (text exposition at `GET /metrics`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub height: Gauge,
    pub mempool_txs: Gauge,
    pub blocks: Counter,
    pub txs_committed: Counter,
    pub txs_dropped: Counter,
    pub txs_admitted: Counter,
    pub txs_refused: Counter,
    pub signatures_checked: Counter,
    pub block_execute_seconds: Histogram,
    /// Σ block execution time, microseconds (exact, where the histogram has buckets).
    pub block_execute_micros: Counter,
    pub block_durable_write_seconds: Histogram,
    pub block_txs: Histogram,
}

impl Metrics {
    /// Σ block execution time so far, in seconds.
    pub fn block_exec_seconds_sum(&self) -> f64 {
        self.block_execute_micros.get() as f64 / 1e6
    }

    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tessera");
        let m = Metrics {
            height: Gauge::default(),
            mempool_txs: Gauge::default(),
            blocks: Counter::default(),
            txs_committed: Counter::default(),
            txs_dropped: Counter::default(),
            txs_admitted: Counter::default(),
            txs_refused: Counter::default(),
            signatures_checked: Counter::default(),
            block_execute_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            block_execute_micros: Counter::default(),
            block_durable_write_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            registry: Registry::default(),
        };
        registry.register("height", "Height of the last committed block", m.height.clone());
        registry.register("mempool_txs", "Transactions held in the mempool", m.mempool_txs.clone());
        registry.register("blocks", "Blocks committed", m.blocks.clone());
        registry.register(
            "block_execute_microseconds",
            "Time spent executing blocks (propose), microseconds",
            m.block_execute_micros.clone(),
        );
        registry.register("txs_committed", "Transactions committed in blocks", m.txs_committed.clone());
        registry.register("txs_dropped", "Transactions left out of blocks as inadmissible", m.txs_dropped.clone());
        registry.register("txs_admitted", "Transactions admitted to the mempool", m.txs_admitted.clone());
        registry.register("txs_refused", "Transactions refused at submission", m.txs_refused.clone());
        registry.register(
            "signatures_checked",
            "Transaction signatures verified (admission and peers' blocks)",
            m.signatures_checked.clone(),
        );
        registry.register(
            "block_execute_seconds",
            "Time to execute a block and compute its state root",
            m.block_execute_seconds.clone(),
        );
        registry.register(
            "block_durable_write_seconds",
            "Time to write and fsync a block",
            m.block_durable_write_seconds.clone(),
        );
        registry.register("block_txs", "Transactions per block", m.block_txs.clone());
        Metrics { registry, ..m }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
