#!/usr/bin/env bash
# Ingest benchmark: triaged against Debian's Alertmanager on this machine, under the
# same load from examples/loadgen.rs. Each measurement gets a fresh server with fresh
# temporary storage; both listen on 127.0.0.1.
#
#   benches/compare.sh            # full run (~2 min), prints a markdown table
#   DURATION=5 benches/compare.sh # shorter measurements
#
# triaged runs as shipped (config/triaged.toml, rules/), durable writes on: every 200
# means stored, flushed and the rules run. Alertmanager gets a route that does not
# send during the run (group_wait 1h to a receiver without integrations).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
DISTINCT=${DISTINCT:-100000}
SETTLE=${SETTLE:-15}

command -v prometheus-alertmanager >/dev/null || {
    echo "install Debian's prometheus-alertmanager first (tests/run.sh does)" >&2
    exit 1
}
# The daemon is built on its own, after the load generator: built together, cargo
# would link it against the library built with the dev-dependencies' features (tokio
# "full"), which is not the binary `cargo build --release` gives, and its symbols
# would not match link/startup.order.
cargo build --release --quiet --example loadgen
cargo build --release --quiet --bin triaged
LOADGEN=target/release/examples/loadgen

# shellcheck source=benches/lib.sh
source benches/lib.sh
stop() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

# load SERVER PER_REQUEST → JSON line
load() {
    "start_$1"
    "$LOADGEN" --url "$URL" --format "$FORMAT" --connections "$CONNS" \
        --alerts-per-request "$2" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
        --distinct "$DISTINCT"
    stop
}

# memory SERVER → "idle_kb active_kb settled_kb": RSS at start, 1 s after 100k
# distinct alerts were accepted, and SETTLE seconds later (both servers idle)
memory() {
    "start_$1"
    sleep 1
    local idle
    idle=$(rss_kb "$PID")
    "$LOADGEN" --url "$URL" --format "$FORMAT" --connections 4 --alerts-per-request 100 \
        --distinct 100000 --requests 1000 >/dev/null
    sleep 1
    local active
    active=$(rss_kb "$PID")
    sleep "$SETTLE"
    echo "$idle $active $(rss_kb "$PID")"
    stop
}

field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$1" "$2"; }

declare -A R
for per in 1 100; do
    for server in am triaged; do
        line=$(load "$server" "$per")
        echo "$server, $per alert(s)/request: $line" >&2
        R[$server.$per]=$line
    done
done
read -r am_idle am_active am_settled < <(memory am)
read -r tr_idle tr_active tr_settled < <(memory triaged)

times() { echo "$(ratio "$1" "$2")×"; }
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); ${DURATION}s per measurement after ${WARMUP}s warm-up, $CONNS connections, $DISTINCT distinct alerts"
echo
echo "| measurement | Alertmanager | triaged | triaged / Alertmanager |"
echo "|---|---|---|---|"
for per in 1 100; do
    a=$(field "${R[am.$per]}" alerts_per_sec); t=$(field "${R[triaged.$per]}" alerts_per_sec)
    echo "| alerts/s, $per alert(s)/request | $a | $t | $(times "$t" "$a") |"
    a=$(field "${R[am.$per]}" "latency_ms['p99']"); t=$(field "${R[triaged.$per]}" "latency_ms['p99']")
    echo "| p99 latency ms, $per alert(s)/request | $a | $t | $(times "$t" "$a") |"
    a=$(field "${R[am.$per]}" non_2xx); t=$(field "${R[triaged.$per]}" non_2xx)
    echo "| non-2xx, $per alert(s)/request | $a | $t | |"
done
echo "| RSS MB, 100k active alerts, 1 s after | $((am_active / 1024)) | $((tr_active / 1024)) | $(times "$tr_active" "$am_active") |"
echo "| RSS MB, 100k active alerts, ${SETTLE} s later | $((am_settled / 1024)) | $((tr_settled / 1024)) | $(times "$tr_settled" "$am_settled") |"
echo "| RSS MB, idle | $((am_idle / 1024)) | $((tr_idle / 1024)) | $(times "$tr_idle" "$am_idle") |"
