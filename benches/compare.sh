#!/usr/bin/env bash
# Ingest benchmark: triaged against Debian's Alertmanager on this machine, under the
# same load from examples/loadgen.rs. Each measurement gets a fresh server with fresh
# temporary storage; both listen on 127.0.0.1.
#
#   benches/compare.sh            # full run (~4 min), prints markdown tables
#   DURATION=5 ROUNDS=1 benches/compare.sh # shorter
#
# This machine's speed drifts by tens of percent within minutes (BENCHMARKS.md), so
# the throughput measurements run in ROUNDS rounds (default 3), the two servers in
# turns within each round (Alertmanager first in odd rounds, triaged first in even
# ones); the summary table gives each server's median over the rounds, and a second
# table every round with its own ratio.
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
ROUNDS=${ROUNDS:-3}

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

RUNS="$WORK/runs"
for round in $(seq 1 "$ROUNDS"); do
    order="am triaged"
    [ $((round % 2)) -eq 0 ] && order="triaged am"
    for per in 1 100; do
        for server in $order; do
            line=$(load "$server" "$per")
            echo "round $round, $server, $per alert(s)/request: $line" >&2
            echo "$round $server $per $line" >>"$RUNS"
        done
    done
done
read -r am_idle am_active am_settled < <(memory am)
read -r tr_idle tr_active tr_settled < <(memory triaged)

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); ${DURATION}s per measurement after ${WARMUP}s warm-up, $CONNS connections, $DISTINCT distinct alerts; throughput: median of $ROUNDS round(s)"
echo
python3 - "$RUNS" "$SETTLE" "$am_idle" "$am_active" "$am_settled" "$tr_idle" "$tr_active" "$tr_settled" <<'PY'
import json, statistics, sys
by_round = {}
for line in open(sys.argv[1]):
    rnd, server, per, js = line.split(" ", 3)
    by_round[(int(rnd), int(per), server)] = json.loads(js)
settle = sys.argv[2]
am_idle, am_active, am_settled, tr_idle, tr_active, tr_settled = (int(v) for v in sys.argv[3:])
rate = lambda j: j["alerts_per_sec"]
p99 = lambda j: j["latency_ms"]["p99"]

def runs(server, per):
    return [j for (_, p, s), j in sorted(by_round.items()) if (p, s) == (per, server)]

def row(name, a, t):
    print(f"| {name} | {a:g} | {t:g} | {t / a:.2f}× |")

def rss(name, a_kb, t_kb):
    print(f"| {name} | {a_kb // 1024} | {t_kb // 1024} | {t_kb / a_kb:.2f}× |")

print("| measurement | Alertmanager | triaged | triaged / Alertmanager |")
print("|---|---|---|---|")
for per in (1, 100):
    for name, f in (("alerts/s", rate), ("p99 latency ms", p99)):
        row(f"{name}, {per} alert(s)/request",
            statistics.median(map(f, runs("am", per))),
            statistics.median(map(f, runs("triaged", per))))
    a, t = (sum(j["non_2xx"] + j["errors"] for j in runs(s, per)) for s in ("am", "triaged"))
    print(f"| non-2xx and errors, {per} alert(s)/request, all rounds | {a} | {t} | |")
rss("RSS MB, 100k active alerts, 1 s after", am_active, tr_active)
rss(f"RSS MB, 100k active alerts, {settle} s later", am_settled, tr_settled)
rss("RSS MB, idle", am_idle, tr_idle)
print()
print("| round | alert(s)/request | Alertmanager alerts/s | triaged alerts/s | triaged / Alertmanager | p99 ms, Alertmanager / triaged |")
print("|---|---|---|---|---|---|")
for rnd, per in sorted({(r, p) for r, p, _ in by_round}):
    a, t = by_round[(rnd, per, "am")], by_round[(rnd, per, "triaged")]
    print(f"| {rnd} | {per} | {rate(a):g} | {rate(t):g} | {rate(t) / rate(a):.2f}× | {p99(a):g} / {p99(t):g} |")
PY
