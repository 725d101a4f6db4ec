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

# --- chart tests (tests/chart) ------------------------------------------------
# A venv with the Helm engine (helm-python-sdk: Helm 4's Go SDK as a shared
# library, no helm binary), kubernetes-validate and pytest, at the exact pins of
# tests/chart/requirements.txt. Created once, brought up to the pins every run.
chart_venv=tests/chart/.venv
if [ ! -x "$chart_venv/bin/python" ]; then
  python3 -m venv "$chart_venv" || {
    echo "install-test-deps: 'python3 -m venv' failed (Debian's python3 needs the python3-venv package)" >&2
    exit 1
  }
fi
"$chart_venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/chart/requirements.txt
# --- end chart tests -----------------------------------------------------------
