#!/usr/bin/env bash
# The differential test against kube-scheduler (tests/integration/test_parity.py), longer than CI's
# slice: N random cases from seed S, each pod through both schedulers on one real apiserver.
#
#   bash scripts/parity.sh [--examples N] [--seed S] [--partitions P] [-o DIR]
#
# Defaults: 200 cases from seed 0 (about 25 minutes here), our scheduler with 2 partitions, replay
# workloads of any mismatch in DIR (default results/parity/<UTC timestamp>). Exit status 1 on any
# mismatch.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
examples=200
seed=0
partitions=2
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --examples) examples="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --partitions) partitions="$2"; shift 2 ;;
    -o|--output) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
cd "$root"
out="${out:-results/parity/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
PARITY_EXAMPLES="$examples" PARITY_SEED="$seed" PARITY_PARTITIONS="$partitions" PARITY_OUT="$(realpath "$out")" \
  exec bash scripts/test.sh tests/integration/test_parity.py -s -q
