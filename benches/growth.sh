#!/usr/bin/env bash
# Growth benchmark: ingest throughput and cold start of triaged with few vs many
# incidents already stored (default 1k vs 1M, resolved, each with an alert and its
# audit entries, written by examples/seed.rs through the store).
#
# Both daemons run side by side and are measured in turns (ROUNDS rounds of 100 and 1
# alert/request on each; the table has the medians), because this machine's figures
# drift by tens of percent within minutes: only neighbouring runs compare.
#
#   benches/growth.sh                 # ~6 min, two of them seeding 1M incidents
#   LARGE=200000 benches/growth.sh    # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

SMALL=${SMALL:-1000}
LARGE=${LARGE:-1000000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}

# The daemon on its own, after the examples: see benches/compare.sh.
cargo build --release --quiet --example loadgen --example seed
cargo build --release --quiet --bin triaged
# shellcheck source=benches/lib.sh
source benches/lib.sh
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

declare -A R P PORT
stop_all() {
    for n in "${!P[@]}"; do
        kill "${P[$n]}" 2>/dev/null && wait "${P[$n]}" 2>/dev/null
    done
    cleanup
}
trap stop_all EXIT

# Starts the daemon for $1 incidents on its port: sets P[$1], and SECS to the seconds
# it took to answer /readyz.
start_daemon() {
    local start ready
    start=$(date +%s.%N)
    RUST_LOG=warn target/release/triaged serve --config "$WORK/$1/triaged.toml" \
        --listen "127.0.0.1:${PORT[$1]}" >>"$WORK/$1/log" 2>&1 &
    P[$1]=$!
    until curl -fs "http://127.0.0.1:${PORT[$1]}/readyz" >/dev/null 2>&1; do
        kill -0 "${P[$1]}" || { cat "$WORK/$1/log" >&2; exit 1; }
        sleep 0.01
    done
    ready=$(date +%s.%N)
    SECS=$(python3 -c "print(f'{$ready - $start:.2f}')")
}

for n in "$SMALL" "$LARGE"; do
    mkdir -p "$WORK/$n"
    target/release/examples/seed --data-dir "$WORK/$n/data" --incidents "$n" >&2
    sed "s|^data_dir = .*|data_dir = \"$WORK/$n/data\"|" config/triaged.toml >"$WORK/$n/triaged.toml"
    PORT[$n]=$(free_port)
    start_daemon "$n"
    R[$n.start]=$SECS
    R[$n.rss]=$(($(rss_kb "${P[$n]}") / 1024))
done

for round in $(seq "$ROUNDS"); do
    for per in 100 1; do
        for n in "$SMALL" "$LARGE"; do
            line=$(target/release/examples/loadgen --url "http://127.0.0.1:${PORT[$n]}/api/v1/webhooks/alertmanager" \
                --format webhook --connections 16 --alerts-per-request "$per" \
                --duration-secs "$DURATION" --warmup-secs "$WARMUP" --distinct 100000)
            echo "round $round, $n incidents stored, $per alert(s)/request: $line" >&2
            R[$n.$per]="${R[$n.$per]:-} $(field "$line" alerts_per_sec)"
        done
    done
done

for n in "$SMALL" "$LARGE"; do
    # A crash after the load: the restart reads what sled wrote since it opened (no
    # snapshot was written on the way out) and replays the log.
    kill -KILL "${P[$n]}"
    wait "${P[$n]}" || true
    start_daemon "$n"
    R[$n.crash]=$SECS
    stop=$(date +%s.%N)
    kill "${P[$n]}"
    wait "${P[$n]}" || true
    unset "P[$n]"
    R[$n.stop]=$(python3 -c "print(f'{$(date +%s.%N) - $stop:.2f}')")
done

for n in "$SMALL" "$LARGE"; do
    for per in 100 1; do
        echo "$n incidents stored, $per alert(s)/request, alerts/s per round:${R[$n.$per]}" >&2
        # shellcheck disable=SC2086 # the rounds' figures, one word each
        R[$n.$per]=$(median ${R[$n.$per]})
    done
done

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); ${DURATION}s per measurement after ${WARMUP}s warm-up, 16 connections, median of $ROUNDS rounds taken in turns"
echo
echo "| measurement | $SMALL incidents stored | $LARGE incidents stored | large / small |"
echo "|---|---|---|---|"
echo "| alerts/s, 100 alerts/request | ${R[$SMALL.100]} | ${R[$LARGE.100]} | $(ratio "${R[$LARGE.100]}" "${R[$SMALL.100]}") |"
echo "| alerts/s, 1 alert/request | ${R[$SMALL.1]} | ${R[$LARGE.1]} | $(ratio "${R[$LARGE.1]}" "${R[$SMALL.1]}") |"
echo "| cold start to /readyz, s | ${R[$SMALL.start]} | ${R[$LARGE.start]} | |"
echo "| start after SIGKILL following the load, s | ${R[$SMALL.crash]} | ${R[$LARGE.crash]} | |"
echo "| graceful stop (SIGTERM), s | ${R[$SMALL.stop]} | ${R[$LARGE.stop]} | |"
echo "| RSS after start, MB | ${R[$SMALL.rss]} | ${R[$LARGE.rss]} | |"
