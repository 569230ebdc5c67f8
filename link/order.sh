#!/usr/bin/env bash
# Writes link/startup.order: the functions of the release binary that run while the
# daemon starts on the shipped config and then idles, as recorded by valgrind's
# callgrind (every function executed, not a sample). build.rs hands the file to lld
# so those functions are linked together; see there. Rerun after changes that move
# start-up code (new dependencies, a changed start sequence), then rebuild:
#
#   link/order.sh && cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --quiet --bin triaged
BIN=target/release/triaged
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
sed "s|^data_dir = .*|data_dir = \"$WORK/data\"|" config/triaged.toml >"$WORK/triaged.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/cg.out" \
    "$BIN" serve --config "$WORK/triaged.toml" --listen "127.0.0.1:$port" >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$PID" || { cat "$WORK/log" >&2; exit 1; }
    sleep 0.1
done
sleep 3 # idle: the timer task, the rules watcher, the checkpoint thread's wake-ups
callgrind_control -d "$PID" >/dev/null # a dump before the shutdown code runs
sleep 1
kill "$PID"
wait "$PID" || true
PID=""
# Every function named in the first dump (as caller or callee) that the binary
# defines, in address order of the current build.
python3 - "$WORK/cg.out.1" "$BIN" >link/startup.order <<'PY'
import re, subprocess, sys
names = set()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"c?fn=\(\d+\) (\S+)", line)
    if m:
        names.add(m.group(1))
defined = []
nm = subprocess.run(["nm", "--defined-only", sys.argv[2]], capture_output=True, text=True, check=True)
for l in nm.stdout.splitlines():
    p = l.split()
    if len(p) == 3 and p[1] in "tTwW" and p[2] in names:
        defined.append((int(p[0], 16), p[2]))
for _, name in sorted(set(defined)):
    print(name)
PY
echo "link/startup.order: $(wc -l <link/startup.order) functions" >&2
