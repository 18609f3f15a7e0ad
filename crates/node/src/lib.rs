//! A Tessera node: recovery, solo sequencer, mempool admission, HTTP API, events and metrics.
