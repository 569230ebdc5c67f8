#!/usr/bin/env bash
# Where the 1-alert-per-request ingest time goes: Alertmanager, triaged and the
# durable floor (examples/floor.rs: triaged's HTTP stack, an append and a group-commit
# fdatasync per request, nothing else), in turns under the same load from
# examples/loadgen.rs, with each server's CPU time per alert. This machine's speed
# drifts by tens of percent within minutes, so only figures of the same round compare.
#
#   benches/floor.sh                  # 3 rounds, 1 alert/request, 16 connections
#   ROUNDS=5 PER=100 benches/floor.sh
#
# The floor's `handoff` mode adds one thread hand-off before the append (triaged
# hands each request to its correlation thread); `memory` answers without a sync
# (not durable: the HTTP and hand-off floor only).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
PER=${PER:-1}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
DISTINCT=${DISTINCT:-100000}

command -v prometheus-alertmanager >/dev/null || {
    echo "install Debian's prometheus-alertmanager first (tests/run.sh does)" >&2
    exit 1
}
# Built one at a time, for the reason given in benches/compare.sh.
cargo build --release --quiet --example loadgen
cargo build --release --quiet --example floor
cargo build --release --quiet --bin triaged
LOADGEN=target/release/examples/loadgen

# shellcheck source=benches/lib.sh
source benches/lib.sh

start() {
    case "$1" in
    alertmanager) start_am ;;
    triaged) start_triaged ;;
    floor-*)
        local dir="$WORK/$1.$RANDOM"
        mkdir -p "$dir"
        PORT=$(free_port)
        target/release/examples/floor --listen "127.0.0.1:$PORT" --dir "$dir" \
            --mode "${1#floor-}" >"$dir/log" 2>&1 &
        PID=$!
        URL="http://127.0.0.1:$PORT/api/v1/webhooks/alertmanager" FORMAT=webhook
        wait_ready "http://127.0.0.1:$PORT/"
        ;;
    esac
}

# cpu_ticks PID → user+system clock ticks so far
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure SERVER → "alerts/s p99_ms non_2xx cpu_us_per_alert"
measure() {
    start "$1"
    local before line after
    before=$(cpu_ticks "$PID")
    line=$("$LOADGEN" --url "$URL" --format "$FORMAT" --connections "$CONNS" \
        --alerts-per-request "$PER" --duration-secs "$DURATION" --warmup-secs "$WARMUP" \
        --distinct "$DISTINCT")
    after=$(cpu_ticks "$PID")
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
    # CPU time covers warm-up and measurement; the rate is the measured one.
    python3 -c 'import json,sys,os
d=json.loads(sys.argv[1]); ticks=int(sys.argv[2]); secs=float(sys.argv[3])
alerts=d["alerts_per_sec"]*secs
print(round(d["alerts_per_sec"]), d["latency_ms"]["p99"], d["non_2xx"],
      round(ticks/os.sysconf("SC_CLK_TCK")/alerts*1e6, 1) if alerts else "-")' \
        "$line" "$((after - before))" "$((DURATION + WARMUP))"
}

SERVERS="alertmanager floor-durable floor-handoff floor-memory triaged"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $PER alert(s)/request, $CONNS connections, ${DURATION}s after ${WARMUP}s warm-up, $DISTINCT distinct alerts"
echo
echo "| round | server | alerts/s | / Alertmanager | p99 ms | non-2xx | server CPU µs/alert |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    am=""
    for server in $SERVERS; do
        read -r rate p99 non2xx cpu < <(measure "$server")
        [ -z "$am" ] && am=$rate
        echo "| $round | $server | $rate | $(ratio "$rate" "$am")× | $p99 | $non2xx | $cpu |"
    done
done
