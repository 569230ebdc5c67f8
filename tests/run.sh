#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, then runs all of it:
# formatting, clippy (warnings are errors) and every test, including the end-to-end
# tests against Debian's Prometheus, Alertmanager and Redmine, Matrix Synapse and an
# SMTP server (aiosmtpd).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# Redmine for the ticketing tests (its packaged sqlite database, served by thin).
[ -f /var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default ] || missing+=(redmine redmine-sqlite)
command -v thin >/dev/null 2>&1 || missing+=(thin)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# systemd-analyze for the unit file checks (verify, security --offline).
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Real peers from PyPI (Matrix Synapse, aiosmtpd) in a venv the tests find in
# target/test-venv (or $TRIAGED_TEST_VENV).
venv="${TRIAGED_TEST_VENV:-target/test-venv}"
if ! "$venv/bin/python" -c 'import synapse, aiosmtpd' >/dev/null 2>&1; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "== installing python3-venv"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-pip
    fi
    echo "== creating $venv (matrix-synapse, aiosmtpd)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "matrix-synapse>=1.100,<2" "aiosmtpd>=1.4,<2"
fi
export TRIAGED_TEST_VENV="$(cd "$venv" && pwd)"

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

# A fresh clone builds everything once: incremental caches (2 GB) would only take disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
echo "== all tests passed"
