#!/usr/bin/env bash
# Multi-node throughput and finality against the single node, in one run on this machine:
#   1. a solo devnet (one process, solo sequencer), loaded over HTTP by `tessera bench submit`;
#   2. four validators as processes (`tessera testnet --run`), the same load sent through
#      all four nodes in turn, commits timed on the first node's event stream.
# Prints one JSON line per phase and the ratio. Usage: scripts/bench-consensus.sh [TXS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
TXS=${1:-100000}
RATE=${2:-}
BIN=${TESSERA_BIN:-target/release/tessera}
[ -x "$BIN" ] || cargo build --release -p tessera
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
rate_args=()
[ -n "$RATE" ] && rate_args=(--rate "$RATE")
load() { # node-urls key
  "$BIN" --json bench submit --node "$1" --key "$2" --accounts 2000 --txs "$TXS" --batch 1000 --concurrency 4 "${rate_args[@]}"
}
wait_http() { for _ in $(seq 1 300); do curl -sf "$1/v1/health" >/dev/null && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

RUST_LOG=warn "$BIN" devnet --data-dir "$WORK/solo" --http 127.0.0.1:18745 --no-provider --no-evaluator --no-gateway >"$WORK/solo.log" 2>&1 &
SOLO=$!
wait_http http://127.0.0.1:18745
solo=$(load http://127.0.0.1:18745 "$WORK/solo/dev.key")
echo "solo:        $solo"
kill -INT $SOLO; wait $SOLO || true

"$BIN" testnet --validators 4 --dir "$WORK/tn" --p2p-base-port 19600 --http-base-port 18760 >/dev/null
RUST_LOG=warn "$BIN" testnet --dir "$WORK/tn" --p2p-base-port 19600 --http-base-port 18760 --run >"$WORK/tn.log" 2>&1 &
TN=$!
for i in 0 1 2 3; do wait_http "http://127.0.0.1:1876$i"; done
multi=$(load http://127.0.0.1:18760,http://127.0.0.1:18761,http://127.0.0.1:18762,http://127.0.0.1:18763 "$WORK/tn/dev.key")
echo "4 validators: $multi"
kill -INT $TN; wait $TN || true
python3 - "$solo" "$multi" <<'PY'
import json, sys
s, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"solo_tps": s["committed_tps"], "validators4_tps": m["committed_tps"],
                  "ratio": round(m["committed_tps"] / s["committed_tps"], 3),
                  "validators4_latency_ms_p50": m["latency_ms_p50"], "validators4_latency_ms_p99": m["latency_ms_p99"],
                  "solo_latency_ms_p50": s["latency_ms_p50"], "solo_latency_ms_p99": s["latency_ms_p99"]}))
PY
