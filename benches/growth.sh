#!/usr/bin/env bash
# Growth benchmark: ingest throughput and cold start of triaged with few vs many
# incidents already stored (default 1k vs 1M, resolved, each with an alert and its
# audit entries, written by examples/seed.rs through the store).
#
#   benches/growth.sh                 # ~4 min, most of it seeding 1M incidents
#   LARGE=200000 benches/growth.sh    # quicker
set -euo pipefail
cd "$(dirname "$0")/.."

SMALL=${SMALL:-1000}
LARGE=${LARGE:-1000000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}

cargo build --release --quiet --bin triaged --example loadgen --example seed
# shellcheck source=benches/lib.sh
source benches/lib.sh
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

declare -A R
# Starts the daemon on $1's config and port $2: sets PID, and SECS to the seconds it
# took to answer /readyz.
start_daemon() {
    local start ready
    start=$(date +%s.%N)
    RUST_LOG=warn target/release/triaged serve --config "$1/triaged.toml" --listen "127.0.0.1:$2" >>"$1/log" 2>&1 &
    PID=$!
    until curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1; do sleep 0.01; done
    ready=$(date +%s.%N)
    SECS=$(python3 -c "print(f'{$ready - $start:.2f}')")
}
for n in "$SMALL" "$LARGE"; do
    dir="$WORK/$n"
    mkdir -p "$dir"
    seed_out=$(target/release/examples/seed --data-dir "$dir/data" --incidents "$n" 2>&1)
    echo "$seed_out" >&2
    sed "s|^data_dir = .*|data_dir = \"$dir/data\"|" config/triaged.toml >"$dir/triaged.toml"
    port=$(free_port)
    start_daemon "$dir" "$port"
    R[$n.start]=$SECS
    R[$n.rss]=$(( $(awk '/VmRSS/ {print $2}' "/proc/$PID/status") / 1024 ))
    url="http://127.0.0.1:$port/api/v1/webhooks/alertmanager"
    for per in 100 1; do
        line=$(target/release/examples/loadgen --url "$url" --format webhook --connections 16 \
            --alerts-per-request "$per" --duration-secs "$DURATION" --warmup-secs "$WARMUP" --distinct 100000)
        echo "$n incidents stored, $per alert(s)/request: $line" >&2
        R[$n.$per]=$(field "$line" alerts_per_sec)
    done
    # A crash right after the load: the restart reads what sled wrote since it
    # opened (no snapshot was written on the way out) and replays the log.
    kill -KILL "$PID"
    wait "$PID" || true
    start_daemon "$dir" "$port"
    R[$n.crash]=$SECS
    stop=$(date +%s.%N)
    kill "$PID"
    wait "$PID" || true
    PID=""
    R[$n.stop]=$(python3 -c "print(f'{$(date +%s.%N) - $stop:.2f}')")
done

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); ${DURATION}s per measurement after ${WARMUP}s warm-up, 16 connections"
echo
echo "| measurement | $SMALL incidents stored | $LARGE incidents stored | large / small |"
echo "|---|---|---|---|"
echo "| alerts/s, 100 alerts/request | ${R[$SMALL.100]} | ${R[$LARGE.100]} | $(ratio "${R[$LARGE.100]}" "${R[$SMALL.100]}") |"
echo "| alerts/s, 1 alert/request | ${R[$SMALL.1]} | ${R[$LARGE.1]} | $(ratio "${R[$LARGE.1]}" "${R[$SMALL.1]}") |"
echo "| cold start to /readyz, s | ${R[$SMALL.start]} | ${R[$LARGE.start]} | |"
echo "| start after SIGKILL under load, s | ${R[$SMALL.crash]} | ${R[$LARGE.crash]} | |"
echo "| graceful stop (SIGTERM), s | ${R[$SMALL.stop]} | ${R[$LARGE.stop]} | |"
echo "| RSS after start, MB | ${R[$SMALL.rss]} | ${R[$LARGE.rss]} | |"
