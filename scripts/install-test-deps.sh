#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, pinned, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: iptables (nft and legacy backends) and iproute2 for the
# network-namespace tests.
need_apt=()
command -v iptables-restore >/dev/null 2>&1 || need_apt+=(iptables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  else
    echo "install-test-deps: not root; skipping apt packages ${need_apt[*]} (root-only tests will skip loudly)" >&2
  fi
fi

command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest@0.9.143
