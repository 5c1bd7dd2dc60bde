#!/usr/bin/env python3
"""Engine benchmark: each workload through `simulate` on ONE core, no apiserver.

Each workload runs in a fresh subprocess pinned to one CPU (taskset when available; numpy threads
limited to 1), so peak memory (max RSS) is that workload's alone. Reports pods/s (engine time only),
class builds, time per plugin in vectorized builds, peak memory, and the placement check.

    .venv/bin/python scripts/bench_engine.py [WORKLOAD.yaml ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["constraints-mix", "basic-1k", "affinity-5k", "fleet-10k"]

CHILD = r"""
import json, resource, sys, time
from cluster_scheduler.workload import load_workload
from cluster_scheduler.simulate import simulate, run_check
from cluster_scheduler import engine as E
engines = []
orig = E.Engine.__init__
def init(self, *a, **k):
    orig(self, *a, **k); engines.append(self)
E.Engine.__init__ = init
wl = load_workload(sys.argv[1])
r = simulate(wl, keep_objects=True)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
run_check(r)
e = engines[0]
print(json.dumps({"workload": r.workload, "nodes": r.nodes, "pods": r.pods, "bound": r.bound,
  "unschedulable": r.unschedulable, "schedule_s": r.schedule_seconds, "parse_s": r.parse_seconds,
  "pods_per_s": r.pods_per_second, "cpu_s": r.schedule_cpu_seconds, "pods_per_cpu_s": r.pods_per_cpu_second, "peak_rss_mib": rss, "builds": e.builds,
  "plugin_s": e.timings, "check_ok": r.check_ok}))
"""


def resolve(name: str) -> Path:
    p = Path(name)
    if p.exists():
        return p
    for base in (ROOT.parent / "shared" / "workloads", ROOT / "workloads"):
        q = base / f"{name}.yaml"
        if q.exists():
            return q
    sys.exit(f"bench_engine: no workload {name!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=DEFAULT)
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT))
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    results = []
    for w in args.workloads:
        out = subprocess.run(pin + [sys.executable, "-c", CHILD, str(resolve(w))], env=env,
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(r)
        plug = ", ".join(f"{k} {v:.2f}s" for k, v in sorted(r["plugin_s"].items(), key=lambda x: -x[1])[:5])
        print(f"{r['workload']:>16}: {r['bound']:>7,} bound, {r['unschedulable']:>5,} unschedulable, "
              f"{r['pods_per_s']:>9,.0f} pods/s ({r['schedule_s']:.2f} s wall), {r['pods_per_cpu_s']:>9,.0f} pods/CPU-s, "
              f"{r['builds']} class builds, "
              f"peak {r['peak_rss_mib']:.0f} MiB, check {'clean' if r['check_ok'] else 'VIOLATIONS'}\n"
              f"{'':>18}build time by plugin: {plug}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["check_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
