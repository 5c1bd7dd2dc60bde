#!/usr/bin/env python3
"""Memory of the coordinator and of one partition replica for a workload's placed state.

The workload is placed by `simulate` first (its engine time and peak RSS are reported too); then,
each in a fresh process so that its RSS is its own:

- the coordinator digests every node and every placed pod as the informer delivers them (stripped
  pods through `Coordinator.sink`; no Ray: partitions are stubs) and builds the partition snapshot;
- a partition actor's object (`actors.partition.Partition`) loads that snapshot, as a new or
  restarted partition does. Every partition holds a full replica (its shard only limits which
  nodes it proposes), so this is the memory of each one, whatever the partition count.

Reported per process: RSS growth (MB), with the nodes alone and with the pods too (bytes per node
from the first, per pod from the difference), the time to digest or load, and the snapshot's size.

    .venv/bin/python scripts/memory_model.py scripts/workloads/fleet-100k.yaml [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLACE = r"""
import pickle, resource, sys, time
from cluster_scheduler.simulate import simulate
from cluster_scheduler.workload import load_workload
wl = load_workload(sys.argv[1])
r = simulate(wl, keep_objects=True)
nodes = r.node_dicts
pods = [p for p in r.pod_dicts if (p.get("spec") or {}).get("nodeName")]
with open(sys.argv[2], "wb") as f:
    pickle.dump((nodes, pods), f, protocol=5)
print(json.dumps({"workload": r.workload, "nodes": r.nodes, "pods": r.pods, "bound": r.bound,
                  "unschedulable": r.unschedulable, "schedule_s": round(r.schedule_seconds, 2),
                  "schedule_cpu_s": round(r.schedule_cpu_seconds, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
""".replace("import pickle", "import json, pickle")

COORDINATOR = r"""
import gc, json, pickle, sys, time
from cluster_scheduler.api.informer import NODES, PODS
from cluster_scheduler.config import Profile, RuntimeConfig
from cluster_scheduler.wire import strip_pod
from actors.coordinator import Coordinator

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

class Stub:
    def options(self, **kw): return self
    def remote(self, *a): return self
class NoRay:
    def remote(self, cls): return Stub()
    def put(self, v): return v

with open(sys.argv[1], "rb") as f:
    nodes, pods = pickle.load(f)
stripped = [strip_pod(p) for p in pods]
del pods
gc.collect()
base = rss()
t0 = time.perf_counter()
c = Coordinator(Profile(), RuntimeConfig(), binder=None, partitions=1, ray_module=NoRay())
for n in nodes:
    c.sink(NODES, "ADDED", n)
c._drain_inbox()
nodes_only = rss() - base
with open(sys.argv[3], "wb") as f:
    f.write(c.snapshot())
for p in stripped:
    c.sink(PODS, "ADDED", p)
c._drain_inbox()
digest = time.perf_counter() - t0
held = rss() - base
t0 = time.perf_counter()
snap = c.snapshot()
snap_s = time.perf_counter() - t0
with open(sys.argv[2], "wb") as f:
    f.write(snap)
print(json.dumps({"rss_growth_mb": round(held / 2**20), "nodes_only_mb": round(nodes_only / 2**20),
                  "digest_s": round(digest, 2),
                  "bound_in_ledger": len(c.bound), "snapshot_mb": round(len(snap) / 2**20, 1),
                  "snapshot_s": round(snap_s, 2)}))
"""

PARTITION = r"""
import gc, json, sys, time
from cluster_scheduler.config import Profile
from actors.partition import Partition

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

with open(sys.argv[1], "rb") as f:
    snap = f.read()
gc.collect()
base = rss()
t0 = time.perf_counter()
p = Partition((Profile(),), 0, 1)
nodes = p.load(0, 1, snap)
load = time.perf_counter() - t0
del snap
gc.collect()
print(json.dumps({"rss_growth_mb": round((rss() - base) / 2**20), "load_s": round(load, 2),
                  "nodes": nodes, "pods": len(p.engine.pods)}))
"""


def child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", type=Path)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cs-memory-") as tmp:
        placed = str(Path(tmp) / "placed.pickle")
        snap, snap_nodes = str(Path(tmp) / "snapshot.bin"), str(Path(tmp) / "snapshot-nodes.bin")
        sim = child(PLACE, str(args.workload.resolve()), placed)
        print(f"simulate: {sim['nodes']} nodes, {sim['pods']} pods: {sim['bound']} bound, "
              f"{sim['unschedulable']} unschedulable in {sim['schedule_s']} s "
              f"({sim['schedule_cpu_s']} s CPU), peak RSS {sim['peak_rss_mb']} MB", flush=True)
        coord = child(COORDINATOR, placed, snap, snap_nodes)
        part = child(PARTITION, snap)
        part["nodes_only_mb"] = child(PARTITION, snap_nodes)["rss_growth_mb"]
    nodes, pods = sim["nodes"], sim["bound"]
    for name, r in (("coordinator", coord), ("partition replica", part)):
        # nodes alone measured first; the rest is the pods'
        r["bytes_per_node"] = round(r["nodes_only_mb"] * 2**20 / nodes)
        r["bytes_per_pod"] = round((r["rss_growth_mb"] - r["nodes_only_mb"]) * 2**20 / max(1, pods))
        secs = r.get("digest_s", r.get("load_s"))
        print(f"{name}: +{r['rss_growth_mb']} MB for {nodes} nodes and {pods} bound pods "
              f"({r['nodes_only_mb']} MB with the nodes alone: {r['bytes_per_node']} B per node, "
              f"{r['bytes_per_pod']} B per pod); {'digest' if 'digest_s' in r else 'load'} {secs} s", flush=True)
    print(f"snapshot: {coord['snapshot_mb']} MB, built in {coord['snapshot_s']} s")
    if args.json:
        args.json.write_text(json.dumps({"simulate": sim, "coordinator": coord, "partition": part}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
