"""`simulate` acceptance: the shared workloads run through the engine end to end and pass the
independent placement check with the expected bound/unschedulable counts (see ../shared/README.md).
Plus a small self-contained workload, so the module tests something without the shared folder."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from cluster_scheduler.simulate import format_report, run_check, simulate
from cluster_scheduler.workload import load_workload

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORKLOADS = Path(os.environ.get("CLUSTER_SCHEDULER_SHARED", ROOT.parent / "shared")) / "workloads"
needs_shared = pytest.mark.skipif(not SHARED_WORKLOADS.is_dir(),
                                  reason=f"shared workloads not found at {SHARED_WORKLOADS}")


def run(path: Path):
    res = simulate(load_workload(path))
    run_check(res)
    return res


def bound_nodes(res) -> Counter:
    return Counter(p["spec"].get("nodeName") for p in res.pod_dicts if p["spec"].get("nodeName"))


def unschedulable_pods(res) -> list[dict]:
    return [p for p in res.pod_dicts
            if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))]


TINY = """\
name: tiny
ops:
  - op: createNodes
    count: 3
    template:
      status:
        allocatable: {cpu: "2", memory: 4Gi, pods: "10"}
    roundRobinLabels:
      topology.kubernetes.io/zone: [a, b, c]
  - op: createNodes
    count: 1
    template:
      spec: {unschedulable: true}
      status:
        allocatable: {cpu: "64", memory: 64Gi, pods: "10"}
  - op: createPods
    count: 7
    template:
      metadata: {labels: {app: web}}
      spec:
        topologySpreadConstraints:
          - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
             labelSelector: {matchLabels: {app: web}}}
        containers: [{name: c, image: pause, resources: {requests: {cpu: 500m}}}]
  - op: barrier
  - op: createPods
    count: 2
    template:
      spec:
        containers: [{name: c, image: pause, resources: {requests: {cpu: "3"}}}]
"""


def test_tiny_workload(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(TINY)
    res = run(f)
    assert (res.nodes, res.pods, res.bound, res.unschedulable) == (4, 9, 7, 2)
    assert res.check_ok, res.check_summary
    per_node = bound_nodes(res)
    assert sorted(per_node.values()) == [2, 2, 3]  # spread over the three zones, none on the cordoned node
    msgs = {p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res)}
    assert msgs == {"0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient cpu."}
    report = format_report(res)
    assert "unschedulable     2" in report and "clean" in report


@needs_shared
def test_constraints_mix():
    res = run(SHARED_WORKLOADS / "constraints-mix.yaml")
    assert (res.nodes, res.pods) == (85, 560)
    assert res.bound == 550 and res.unschedulable == 10
    assert res.check_ok, res.check_summary
    # the 10 'impossible' pods are the unschedulable ones, and nothing sits on a cordoned node
    stuck = unschedulable_pods(res)
    assert {p["metadata"]["labels"]["app"] for p in stuck} == {"impossible"}
    cordoned = {n["metadata"]["name"] for n in res.node_dicts if (n.get("spec") or {}).get("unschedulable")}
    assert len(cordoned) == 5 and not cordoned & set(bound_nodes(res))


@needs_shared
@pytest.mark.slow
def test_fleet_10k():
    res = run(SHARED_WORKLOADS / "fleet-10k.yaml")
    assert (res.nodes, res.pods) == (10_000, 100_000)
    assert res.unschedulable == 1_000 and res.bound == 99_000
    assert res.check_ok, res.check_summary
    stuck = unschedulable_pods(res)
    assert all(p["metadata"]["labels"].get("tier") == "training" for p in stuck)
    assert all("nvidia.com/gpu" in p["status"]["conditions"][0]["message"] for p in stuck)


@needs_shared
@pytest.mark.slow
def test_affinity_5k():
    res = run(SHARED_WORKLOADS / "affinity-5k.yaml")
    assert (res.nodes, res.pods) == (5_000, 20_000)
    assert res.bound == 20_000 and res.unschedulable == 0
    assert res.check_ok, res.check_summary
