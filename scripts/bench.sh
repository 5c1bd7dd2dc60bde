#!/usr/bin/env bash
# Side-by-side benchmark over several workloads: for each, our scheduler, kube-scheduler and the
# ceiling, each on a fresh control plane. Every workload's results go to RESULTS/<workload>/, and
# one line per workload is appended to RESULTS/summary.md.
#
#   bash scripts/bench.sh [-o RESULTS] WORKLOAD... [-- extra loadtest flags]
#   e.g. bash scripts/bench.sh ../shared/workloads/basic-1k.yaml ../shared/workloads/constraints-mix.yaml
#
# RESULTS defaults to results/bench/<UTC timestamp>. Runs every workload even if one fails; the
# exit status is 1 if any did.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
results=""
extra=()
workloads=()
while [ $# -gt 0 ]; do
  case "$1" in
    -o|--output) results="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) workloads+=("$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || { echo "bench.sh: give at least one workload file" >&2; exit 2; }
cd "$root"
bash scripts/setup.sh
results="${results:-results/bench/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"
summary="$results/summary.md"
if [ ! -f "$summary" ]; then
  {
    echo "| date (UTC) | workload | run | bound | unschedulable | pods/s | p50 s | p99 s | scheduler CPU s | check |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
  } >"$summary"
fi
failed=0
for wl in "${workloads[@]}"; do
  name="$(.venv/bin/python -c 'import sys; from cluster_scheduler.workload import load_workload; print(load_workload(sys.argv[1]).name)' "$wl")"
  out="$results/$name"
  echo "bench.sh: $name -> $out" >&2
  if ! .venv/bin/python -m cluster_scheduler.cli loadtest "$wl" --scheduler both --ceiling --output "$out" ${extra[@]+"${extra[@]}"} >"$out.stdout" 2>"$out.stderr"; then
    failed=1
    echo "bench.sh: $name did not finish clean (see $out.stderr)" >&2
  fi
  if [ -f "$out/report.json" ]; then
    .venv/bin/python - "$out/report.json" >>"$summary" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for label, s in r["runs"].items():
    c = s.get("check") or {}
    check = "n/a" if c.get("skipped") else ("OK" if c.get("ok") else "FAILED")
    lat = s["latency_s"]
    print(f"| {r['date_utc']} | {r['workload']} | {label} | {s['bound']} | {s['unschedulable']} | "
          f"{s['pods_per_s']} | {lat['p50']} | {lat['p99']} | {s['cpu_s'].get('scheduler', '-')} | {check} |")
PY
  fi
done
echo "bench.sh: summary in $summary" >&2
cat "$summary"
exit $failed
