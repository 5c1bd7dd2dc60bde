#!/usr/bin/env bash
# Upstream's scheduler_perf cases side by side (kube-scheduler and ours, each on a fresh control
# plane), then one markdown table of them all (RESULTS/table.md), as docs/benchmarks.md shows it.
#
#   bash scripts/bench_upstream.sh [-o RESULTS] [--ceiling] [CASE...]
#   e.g. bash scripts/bench_upstream.sh --ceiling misc/SchedulingBasic/5000Nodes_10000Pods
#
# --ceiling also measures the apiserver's ceiling for each case (a binder that makes no decision),
# for the table's "ours / ceiling" column.
#
# Without cases: every `performance` case that runs here (`loadtest --scheduler-perf --list`),
# which takes hours on a 2-core machine. RESULTS defaults to results/upstream/<UTC timestamp>.
# Runs every case even if one fails; the exit status is 1 if any did.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
results=""
cases=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output) results="$2"; shift 2 ;;
    --ceiling) extra+=(--ceiling); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) cases+=("$1"); shift ;;
  esac
done
cd "$root"
bash scripts/setup.sh
py=.venv/bin/python
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <("$py" -m cluster_scheduler.loadtest.scheduler_perf performance)
fi
results="${results:-results/upstream/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"
status=0
for c in "${cases[@]}"; do
  out="$results/${c//\//_}"
  echo "== $c -> $out"
  .venv/bin/cluster-scheduler loadtest --scheduler-perf "$c" --scheduler both "${extra[@]}" --output "$out" || status=1
done
"$py" -m cluster_scheduler.loadtest.scheduler_perf table "$results" | tee "$results/table.md"
exit $status
