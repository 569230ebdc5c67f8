# Shared by the scripts in benches/: a work directory removed on exit with the server
# still running in it stopped, small helpers, and the two servers started the same way
# in every script (fresh temporary storage, 127.0.0.1): each sets PID, PORT, URL and
# FORMAT (loadgen's body format) and returns once the server answers.

WORK=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

wait_ready() {
    for _ in $(seq 1 200); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "server at $1 did not get ready" >&2
    exit 1
}

start_am() {
    local dir="$WORK/am.$RANDOM"
    mkdir -p "$dir"
    cat >"$dir/am.yml" <<YML
route:
  receiver: blackhole
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 24h
receivers:
  - name: blackhole
YML
    PORT=$(free_port)
    prometheus-alertmanager --config.file="$dir/am.yml" --storage.path="$dir/data" \
        --web.listen-address="127.0.0.1:$PORT" --cluster.listen-address="" \
        --log.level=warn >"$dir/log" 2>&1 &
    PID=$!
    URL="http://127.0.0.1:$PORT/api/v2/alerts"
    FORMAT=alertmanager
    wait_ready "http://127.0.0.1:$PORT/-/ready"
}

start_triaged() {
    local dir="$WORK/triaged.$RANDOM"
    mkdir -p "$dir"
    sed "s|^data_dir = .*|data_dir = \"$dir/data\"|" config/triaged.toml >"$dir/triaged.toml"
    PORT=$(free_port)
    RUST_LOG=warn target/release/triaged serve --config "$dir/triaged.toml" --listen "127.0.0.1:$PORT" >"$dir/log" 2>&1 &
    PID=$!
    URL="http://127.0.0.1:$PORT/api/v1/webhooks/alertmanager"
    FORMAT=webhook
    wait_ready "http://127.0.0.1:$PORT/readyz"
}
