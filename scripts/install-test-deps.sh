#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, pinned, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: iptables (nft and legacy backends) and iproute2 for the
# network-namespace tests; nftables (the nft program) for podid-node-guard's.
need_apt=()
command -v iptables-restore >/dev/null 2>&1 || need_apt+=(iptables)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
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

# --- SDK conformance clients (tests/clients) ------------------------------------
# For the end-to-end test (tests/e2e); each reinstalled only when its pins change.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: not root; cannot apt-get install $*" >&2
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# Python azure-identity, pinned by tests/clients/python/requirements.txt (pip
# freeze). The venv is built on Debian's python3, not a toolchain under
# /root, so that the test's unprivileged uid can run it.
py_dir=tests/clients/python
python=/usr/bin/python3
if ! { [ -x "$python" ] && "$python" -c 'import venv, ensurepip' 2>/dev/null; }; then
  apt_install python3 python3-venv
fi
# The same venv carries azure-mgmt-compute for the ARM stand-in's SDK-shape test.
py_reqs=("$py_dir/requirements.txt" tests/azure-emulator/requirements.txt)
py_want=$(cat "${py_reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$py_dir/.venv/.podid-installed" 2>/dev/null)" != "$py_want" ]; then
  rm -rf "$py_dir/.venv"
  "$python" -m venv "$py_dir/.venv"
  "$py_dir/.venv/bin/pip" install --quiet --disable-pip-version-check -r "${py_reqs[0]}" -r "${py_reqs[1]}"
  echo "$py_want" > "$py_dir/.venv/.podid-installed"
fi

# JS @azure/identity, pinned by tests/clients/node/package-lock.json (which,
# per the project's .npmrc, records no registry addresses). Needs Node.js >= 20.
node_dir=tests/clients/node
if ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "install-test-deps: Node.js $(node --version) is too old for @azure/identity (needs >= 20)" >&2
  exit 1
fi
node_want=$(cat "$node_dir/package.json" "$node_dir/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$node_dir/node_modules/.podid-installed" 2>/dev/null)" != "$node_want" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$node_want" > "$node_dir/node_modules/.podid-installed"
fi
# --- end SDK conformance clients ------------------------------------------------
