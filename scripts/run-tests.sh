#!/usr/bin/env bash
# Runs the whole test suite; CI (.ci/run) calls it through `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "################################################################" >&2
  echo "# NOT ROOT: network-namespace and iptables tests will be SKIPPED #" >&2
  echo "################################################################" >&2
fi

# Every program the end-to-end tests run, built before any test starts: a
# cargo build inside a test would re-link target/debug/<bin> under the feet of
# tests running in parallel (tests/e2e/src/bins.rs).
cargo build --workspace --all-features --bins
PODID_E2E_PREBUILT=1 cargo nextest run --workspace --all-features --no-fail-fast
# nextest does not run doctests.
cargo test --workspace --all-features --doc

# Chart: rendered by the real Helm engine, checked against Kubernetes schemas,
# CONTRACT.md, golden files and the binaries' flag parsers (after nextest, which
# built podid-webhook). Venv from scripts/install-test-deps.sh.
tests/chart/.venv/bin/python -m pytest tests/chart -q

# The controller's scale benchmark, scaled down (issue: it runs in CI's suite;
# the full run is `cargo run --release -p podid-controller-bench -- --full`).
cargo run --release -p podid-controller-bench

# The node guard's update-latency benchmark, scaled down (root only: it builds
# a network namespace and nftables rules; the full run is
# `cargo run --release -p podid-node-guard --bin node-guard-bench`).
if [ "$(id -u)" = 0 ]; then
  target/debug/node-guard-bench --quick
else
  echo "SKIPPED (needs root): node-guard-bench" >&2
fi
