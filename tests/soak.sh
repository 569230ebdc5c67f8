#!/usr/bin/env bash
# The long crash soak: the kill -9 test of tests/crash.rs with more cycles (100 by
# default, ~10 minutes here: each start replays a larger store). tests/run.sh runs it with 20.
#
#   tests/soak.sh          # 100 cycles
#   tests/soak.sh 500      # more
set -euo pipefail
cd "$(dirname "$0")/.."
TRIAGED_SOAK_CYCLES="${1:-100}" cargo test --locked --test crash \
    kill_9_at_random_points_under_load_loses_and_repeats_nothing -- --nocapture
