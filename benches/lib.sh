# Shared by benches/compare.sh and benches/growth.sh: a work directory removed on
# exit with the server still running in it stopped, and small helpers.

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
