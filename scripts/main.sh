#!/usr/bin/env bash
# The main job: set up (idempotent; builds the control plane on a fresh machine), then run a
# workload against our scheduler and the upstream kube-scheduler side by side, plus the ceiling
# (the apiserver accepting bindings with no scheduler), each on a fresh control plane.
#
#   bash scripts/main.sh [WORKLOAD] [extra loadtest flags...]
#
# WORKLOAD defaults to ../shared/workloads/basic-1k.yaml (relative to the repo). Results go to
# results/<workload>/<UTC timestamp>/ (report.md, report.json, bound_over_time.png,
# latency_cdf.png, logs/); set OUTPUT=DIR to choose the folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
workload="${1:-$root/../shared/workloads/basic-1k.yaml}"
[ $# -gt 0 ] && shift
[ -f "$workload" ] || { echo "main.sh: workload $workload not found" >&2; exit 2; }
workload="$(cd "$(dirname "$workload")" && pwd)/$(basename "$workload")"
cd "$root"
bash scripts/setup.sh
name="$(.venv/bin/python -c 'import sys; from cluster_scheduler.workload import load_workload; print(load_workload(sys.argv[1]).name)' "$workload")"
out="$(realpath -m "${OUTPUT:-results/$name/$(date -u +%Y%m%dT%H%M%SZ)}")"
status=0
.venv/bin/python -m cluster_scheduler.cli loadtest "$workload" --scheduler both --ceiling --output "$out" "$@" || status=$?
if [ -f "$out/report.md" ]; then
  echo
  echo "report:  $out/report.md (and report.json)"
  echo "plots:   $out/bound_over_time.png"
  echo "         $out/latency_cdf.png"
  echo "logs:    $out/logs/"
fi
exit $status
