#!/usr/bin/env bash
# Idempotent setup for a fresh machine: .venv with Python >= 3.11 and the package in editable mode,
# the control plane (etcd, kube-apiserver, kube-scheduler built from Go modules, cached), and kubectl
# if apt can provide it. A second run does nothing and takes about a second. VERBOSE=1 to narrate.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { if [ -n "${VERBOSE:-}" ]; then echo "setup: $*" >&2; fi; }
note() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

# --- Python virtualenv --------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  py=""
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      py=$cand; break
    fi
  done
  [ -n "$py" ] || die "need Python >= 3.11 (python3.11 or newer on PATH)"
  say "creating .venv with $(command -v "$py")"
  "$py" -m venv .venv || die "'$py -m venv .venv' failed (Debian/Ubuntu: apt-get install python3-venv)"
fi
.venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die ".venv has Python $(.venv/bin/python -V 2>&1); remove .venv to recreate it with >= 3.11"

# Reinstall only when pyproject.toml changed since the last successful install (stamp in .venv).
stamp=.venv/.cluster-scheduler-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c 'import cluster_scheduler, kubernetes, pytest' 2>/dev/null; then
  say "pip install -e '.[test]'"
  log=.venv/setup-pip.log
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[test]' >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "pip install -e '.[test]' failed (full log: $log)"
  fi
  echo "$want" >"$stamp"
fi

# --- control plane --------------------------------------------------------------------------------
# Warm: prints the cached bin dir in milliseconds. Cold: builds (minutes), with its progress on stderr.
bin=$(bash scripts/build-controlplane.sh) || die "building the control plane failed (see above)"
say "control plane binaries in $bin"

# --- kubectl (optional: only one smoke test uses it) ----------------------------------------------
if ! command -v kubectl >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null && $sudo true 2>/dev/null; then
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    if apt-cache policy kubernetes-client 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      say "installing kubectl (Debian package kubernetes-client)"
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kubernetes-client >/dev/null \
        || note "apt-get install kubernetes-client failed; kubectl is optional, its test will be skipped"
    else
      note "kubectl not installed and apt has no kubernetes-client; it is optional, its test will be skipped"
    fi
  else
    note "kubectl not installed (no apt or no root); it is optional, its test will be skipped"
  fi
fi
say "ready"
