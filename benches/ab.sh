#!/usr/bin/env bash
# A/B: two triaged binaries in turns under the same load, a fresh daemon and data dir
# per run, so that a change is told from this machine's drift (the same binary moves
# by tens of percent over an hour here; only runs next to each other compare).
#
#   benches/ab.sh OLD_BINARY NEW_BINARY            # 3 rounds at 1 alert/request
#   PER=100 ROUNDS=2 benches/ab.sh OLD NEW         # 100 alerts/request
#
# Each run prints the load generator's JSON line and the daemon's CPU (cores, from
# /proc/<pid>/stat over the load). Both binaries run the shipped config (a binary
# older than a config key needs CONFIG=its own config/triaged.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || {
    echo "usage: $0 OLD_BINARY NEW_BINARY" >&2
    exit 2
}
PER=${PER:-1}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-16}
DISTINCT=${DISTINCT:-100000}
CONFIG=${CONFIG:-config/triaged.toml}
cargo build --release --quiet --example loadgen
LOADGEN=target/release/examples/loadgen

# shellcheck source=benches/lib.sh
source benches/lib.sh

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
    local bin=$1 dir="$WORK/run.$RANDOM"
    mkdir -p "$dir"
    sed "s|^data_dir = .*|data_dir = \"$dir/data\"|" "$CONFIG" >"$dir/triaged.toml"
    local port
    port=$(free_port)
    RUST_LOG=warn "$bin" serve --config "$dir/triaged.toml" --listen "127.0.0.1:$port" >"$dir/log" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        kill -0 "$PID" 2>/dev/null || {
            echo "$bin exited:" >&2
            cat "$dir/log" >&2
            exit 1
        }
        sleep 0.05
    done
    local before after hz
    before=$(ticks "$PID")
    hz=$(getconf CLK_TCK)
    line=$("$LOADGEN" --url "http://127.0.0.1:$port/api/v1/webhooks/alertmanager" \
        --format webhook --connections "$CONNS" --alerts-per-request "$PER" \
        --duration-secs "$DURATION" --warmup-secs "$WARMUP" --distinct "$DISTINCT")
    after=$(ticks "$PID")
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    rm -rf "$dir"
    cores=$(python3 -c "print(f'{($after - $before) / $hz / ($DURATION + $WARMUP):.2f}')")
    echo "$bin: $line cores=$cores"
}

for _ in $(seq 1 "$ROUNDS"); do
    run "$1"
    run "$2"
done
