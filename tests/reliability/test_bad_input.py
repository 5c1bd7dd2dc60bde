"""Odd and broken pod specs through parse_pod and Engine.schedule: never an exception; every pod
either lands on a node that an independent check accepts, or is refused with a message.

Hypothesis builds specs the apiserver would accept but that stress the edges (huge or zero
requests, unknown extended resources, impossible affinity, conflicting spread constraints,
tolerations of every shape, thousands of labels, empty selectors, Gt/Lt on non-numbers, duplicate
host ports, init containers larger than the app) and raw dicts it would not (wrong types, bad
quantities, unknown operators); the strategies live in tests/reliability/bad_pods.py, shared with
the end-to-end test through the real apiserver. Each example schedules a batch of pods on a fresh
6-node cluster, so more than 1,000 pods go through per run.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from cluster_scheduler.check import TOPOLOGY_SPREAD, check_placement, effective_requests, parse_quantity
from cluster_scheduler.engine import Engine
from cluster_scheduler.model.parse import parse_node, parse_pod
from tests.reliability.bad_pods import NODES, SCHED, Z, batch

pytestmark = pytest.mark.timeout(600)

EXAMPLES = 120


# ---- the independent checks -------------------------------------------------------------------
def _alloc(node: dict) -> dict[str, int]:
    out = {}
    for k, v in node["status"]["allocatable"].items():
        q = parse_quantity(v)
        out[k] = int(q * 1000) if k == "cpu" else int(q)
    return out


def _hand_capacity_check(placed: dict[str, list[dict]]) -> list[str]:
    """Per node: pod count and every requested resource within allocatable, computed here with
    the checker's request arithmetic, not the engine's."""
    problems = []
    nodes = {n["metadata"]["name"]: n for n in NODES}
    for node, pods in placed.items():
        alloc = _alloc(nodes[node])
        used: dict[str, int] = defaultdict(int)
        for p in pods:
            for k, v in effective_requests(p).items():
                used[k] += v
        if len(pods) > alloc.get("pods", 0):
            problems.append(f"{node}: {len(pods)} pods > {alloc.get('pods')}")
        for k, v in used.items():
            if v > 0 and v > alloc.get(k, 0):
                problems.append(f"{node}: {k} {v} > {alloc.get(k, 0)}")
    return problems


STATS = {"pods": 0, "bound": 0, "refused": 0, "parse_errors": 0}


def _compact(pods: list[dict]) -> str:
    """The batch as JSON with bulk label sets summarised, for a readable failure note."""
    out = []
    for p in pods:
        q = copy.deepcopy(p)
        lab = q.get("metadata", {}).get("labels") if isinstance(q.get("metadata"), dict) else None
        if isinstance(lab, dict) and len(lab) > 20:
            q["metadata"]["labels"] = {k: v for k, v in lab.items() if not k.startswith("bulk.")}
            q["metadata"]["labels"]["<bulk labels>"] = str(len(lab))
        out.append(q)
    return json.dumps(out, default=repr)


def run_batch(pods: list[dict]) -> None:
    try:
        _run_batch(pods)
    except Exception as exc:
        exc.add_note("batch (compact JSON): " + _compact(pods))
        raise


def _run_batch(pods: list[dict]) -> None:
    engine = Engine()
    for n in NODES:
        info = parse_node(n)
        assert info.error is None, info.error
        engine.set_node(info)
    originals = [copy.deepcopy(p) for p in pods]
    infos = [parse_pod(p) for p in pods]  # must not raise
    assert pods == originals, "parse_pod mutated its input"
    results = engine.schedule(infos, k=2)  # must not raise
    assert len(results) == len(pods)
    placed: dict[str, list[dict]] = defaultdict(list)
    bound_dicts = []
    for pod, info, res in zip(pods, infos, results):
        STATS["pods"] += 1
        assert res.uid == info.uid
        if info.key is None:
            STATS["parse_errors"] += 1
            assert not res.candidates
        if res.candidates:
            names = [n for n, _ in res.candidates]
            assert len(set(names)) == len(names) and all(n in {x["metadata"]["name"] for x in NODES} for n in names)
            node = names[0]
            STATS["bound"] += 1
            placed[node].append(pod)
            b = copy.deepcopy(pod)
            if not isinstance(b.get("spec"), dict):  # an absent/null spec reads as an empty one
                b["spec"] = {}
            b["spec"]["nodeName"] = node
            b["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
            bound_dicts.append(b)
        else:
            STATS["refused"] += 1
            msg = res.message()
            assert isinstance(msg, str) and msg.strip(), f"no reason for {info.uid}: {res}"
    problems = _hand_capacity_check(placed)
    assert not problems, problems
    # The checker judges topology spread on the final state, but upstream checks a pod's spread
    # constraints only when that pod is placed: a later pod without the constraint may still land
    # in its domain. So check each placement on the state right after it, and count a spread
    # violation only against the pod just placed (all other kinds of violation count whenever seen).
    for i, b in enumerate(bound_dicts):
        report = check_placement(NODES, bound_dicts[:i + 1], scheduler_name=SCHED)
        meta = b.get("metadata") if isinstance(b.get("metadata"), dict) else {}
        me = f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
        bad = [v for v in report.violations if v.kind != TOPOLOGY_SPREAD or v.pod == me]
        assert not bad, report.summary()


def test_bad_input_never_crashes_and_is_placed_validly_or_explained():
    # No shrinking: examples carry thousands of labels and shrinking them takes many minutes; a
    # failure instead carries the whole batch as a compact JSON note (bulk labels summarised).
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example, HealthCheck.filter_too_much])
    @given(batch())
    def prop(pods):
        run_batch(pods)

    for k in STATS:
        STATS[k] = 0
    prop()
    print("bad-input stats:", STATS)
    assert STATS["pods"] >= 1000, STATS
    # the generator really produces both outcomes (else it would test nothing)
    assert STATS["bound"] > 100 and STATS["refused"] > 100 and STATS["parse_errors"] > 20, STATS


def test_hand_check_catches_overcommit():
    """The capacity re-check itself must be able to fail."""
    big = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}}
    assert _hand_capacity_check({"n1": [big]}) == ["n1: cpu 3000 > 2000"]
    assert _hand_capacity_check({"n0": [big]}) == []


# ---- minimal cases hypothesis found (engine bugs, fixed in baa3431): regression tests ----------
def _one_shot(pods: list[dict]):
    engine = Engine()
    for n in NODES:
        engine.set_node(parse_node(n))
    return engine.schedule([parse_pod(p) for p in pods], k=1)


def _pod(name: str, labels: dict, **spec) -> dict:
    spec.setdefault("containers", [{"name": "c", "image": "pause"}])
    return {"metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": {"schedulerName": SCHED, **spec}}


def test_schedule_anyway_spread_on_a_key_no_node_has():
    spread = [{"maxSkew": 1, "topologyKey": "missing-key", "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    res = _one_shot([_pod("a", {"app": "x"}, topologySpreadConstraints=spread)])
    # upstream: a soft constraint on a key no node has scores nothing; the pod still fits
    assert res[0].candidates


def test_hard_spread_skew_holds_next_to_tainted_cordoned_notready_nodes():
    spread = [{"maxSkew": 1, "topologyKey": Z, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    res = _one_shot([_pod("p7", {"app": "x"}), _pod("p8", {"app": "x"}, topologySpreadConstraints=spread)])
    first = res[0].candidates[0][0]
    placed = [dict(_pod("p7", {"app": "x"}), spec={**_pod("p7", {"app": "x"})["spec"], "nodeName": first})]
    if res[1].candidates:
        p8 = _pod("p8", {"app": "x"}, topologySpreadConstraints=spread)
        p8["spec"]["nodeName"] = res[1].candidates[0][0]
        placed.append(p8)
    report = check_placement(NODES, placed, scheduler_name=SCHED)
    assert report.ok, report.summary()
