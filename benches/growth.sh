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
for n in "$SMALL" "$LARGE"; do
    dir="$WORK/$n"
    mkdir -p "$dir"
    seed_out=$(target/release/examples/seed --data-dir "$dir/data" --incidents "$n" 2>&1)
    echo "$seed_out" >&2
    sed "s|^data_dir = .*|data_dir = \"$dir/data\"|" config/triaged.toml >"$dir/triaged.toml"
    port=$(free_port)
    start=$(date +%s.%N)
    RUST_LOG=warn target/release/triaged serve --config "$dir/triaged.toml" --listen "127.0.0.1:$port" >"$dir/log" 2>&1 &
    PID=$!
    until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.01; done
    ready=$(date +%s.%N)
    R[$n.start]=$(python3 -c "print(f'{$ready - $start:.2f}')")
    R[$n.rss]=$(( $(awk '/VmRSS/ {print $2}' "/proc/$PID/status") / 1024 ))
    url="http://127.0.0.1:$port/api/v1/webhooks/alertmanager"
    for per in 100 1; do
        line=$(target/release/examples/loadgen --url "$url" --format webhook --connections 16 \
            --alerts-per-request "$per" --duration-secs "$DURATION" --warmup-secs "$WARMUP" --distinct 100000)
        echo "$n incidents stored, $per alert(s)/request: $line" >&2
        R[$n.$per]=$(field "$line" alerts_per_sec)
    done
    kill "$PID"
    wait "$PID" || true
    PID=""
done

echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); ${DURATION}s per measurement after ${WARMUP}s warm-up, 16 connections"
echo
echo "| measurement | $SMALL incidents stored | $LARGE incidents stored | large / small |"
echo "|---|---|---|---|"
echo "| alerts/s, 100 alerts/request | ${R[$SMALL.100]} | ${R[$LARGE.100]} | $(ratio "${R[$LARGE.100]}" "${R[$SMALL.100]}") |"
echo "| alerts/s, 1 alert/request | ${R[$SMALL.1]} | ${R[$LARGE.1]} | $(ratio "${R[$LARGE.1]}" "${R[$SMALL.1]}") |"
echo "| cold start to /readyz, s | ${R[$SMALL.start]} | ${R[$LARGE.start]} | |"
echo "| RSS after start, MB | ${R[$SMALL.rss]} | ${R[$LARGE.rss]} | |"
