"""Topology-aware gang placement (TopologyAwareWorkloadScheduling): a gang whose PodGroup names a
topology key lands within one value of that label, chosen by upstream's placement scores."""

from __future__ import annotations

import random

from cluster_scheduler.engine import Engine
from cluster_scheduler.model.parse import parse_pod_group
from cluster_scheduler.plugins import topology_placement

from .builders import bound, engine, node, pod

RACK = "topology.kubernetes.io/rack"


def racks(spec: dict[str, int], cpu: str = "4") -> list:
    """{rack: node count} -> nodes named <rack>-<i> labelled with their rack."""
    return [node(f"{r}-{i}", cpu, labels={RACK: r}) for r, n in spec.items() for i in range(n)]


def gang(n: int, cpu: str = "1", prefix: str = "m") -> list:
    return [pod(f"{prefix}{i}", cpu) for i in range(n)]


def rack_of(name: str) -> str:
    return name.rsplit("-", 1)[0]


def test_pod_group_topology_key_is_parsed():
    g = parse_pod_group({"metadata": {"name": "g", "namespace": "ns"},
                         "spec": {"schedulingPolicy": {"gang": {"minCount": 2}},
                                  "schedulingConstraints": {"topology": [{"key": RACK}]}}})
    assert (g.min_count, g.topology_key) == (2, RACK)
    assert parse_pod_group({"metadata": {"name": "g"}, "spec": {"schedulingConstraints": {"topology": "x"}}}).topology_key == ""


def test_members_land_in_one_domain_the_most_allocated_that_holds_them():
    # r1 is the most allocated but holds only 2 of the 4; r0 is busier than r2: the gang packs there,
    # although each pod on its own would prefer r2's empty nodes (LeastAllocated)
    e = engine(racks({"r0": 2, "r1": 2, "r2": 2}),
               [bound("u0", "r0-0", "1"), bound("u1", "r1-0", "3"), bound("u2", "r1-1", "3")])
    members = gang(4)
    results, ok = e.schedule_gang(members, 4, topology_key=RACK)
    assert ok
    assert {rack_of(r.candidates[0][0]) for r in results} == {"r0"}
    plain, _ = Engine.schedule_gang(engine(racks({"r0": 2, "r1": 2, "r2": 2}), [bound("u0", "r0-0", "1")]),
                                    gang(4, prefix="q"), 4)
    assert len({rack_of(r.candidates[0][0]) for r in plain}) > 1  # unconstrained, they spread


def test_a_placement_holding_more_members_wins_over_a_fuller_one():
    # minCount 2 of 4: r0 (nearly full) holds 2, r1 (empty) all 4; PodGroupPodsCount decides
    e = engine(racks({"r0": 2, "r1": 2}), [bound("a", "r0-0", "3"), bound("b", "r0-1", "3")])
    results, ok = e.schedule_gang(gang(4), 2, topology_key=RACK)
    assert ok
    assert [rack_of(r.candidates[0][0]) for r in results] == ["r1"] * 4


def test_no_domain_holds_the_gang():
    e = engine(racks({"r0": 2, "r1": 1}, cpu="2"))
    results, ok = e.schedule_gang(gang(5), 5, topology_key=RACK)
    assert not ok
    assert all(r.node_name == "" for r in e.pods.values() if r.uid.startswith("m")) and len(e.pods) == 0
    msg = next(r.message() for r in results if not r.candidates)
    # the closest: r0 holds 4 of the 5 (r1, tried first for its better bound, holds 2)
    assert msg == ("0/2 placements of topology.kubernetes.io/rack are available, the closest (r0): "
                   "0/2 nodes are available: 2 Insufficient cpu."), msg


def test_nodes_without_the_label_are_never_used():
    e = engine([node("bare-0", "64")] + racks({"r0": 1}, cpu="1"))
    results, ok = e.schedule_gang(gang(2), 2, topology_key=RACK)
    assert not ok
    results, ok = e.schedule_gang(gang(2, prefix="z"), 2, topology_key="example.com/none")
    assert not ok
    assert results[0].message() == ("0/2 nodes are available: 0/0 placements are available: "
                                    "no node has the label example.com/none.")


def test_later_members_join_the_domain_of_those_placed():
    e = engine(racks({"r0": 2, "r1": 2}), [bound("old", "r1-0", "1")])
    results, ok = e.schedule_gang(gang(3), 0, topology_key=RACK, placed_nodes=["r1-0"])
    assert ok
    assert {rack_of(r.candidates[0][0]) for r in results} == {"r1"}
    # r1 is full now (8 cpu, 4 used + 3 of the new ones... one more 2-cpu pod does not fit there)
    results, ok = e.schedule_gang([pod("big", "3")], 0, topology_key=RACK, placed_nodes=["r1-0"])
    assert ok and not results[0].candidates  # need 0: the gang stands, this member waits
    assert results[0].message() == ("in placement topology.kubernetes.io/rack=r1: "
                                    "0/2 nodes are available: 2 Insufficient cpu.")
    _, ok = e.schedule_gang([pod("x", "1")], 0, topology_key=RACK, placed_nodes=["r0-0", "r1-0"])
    assert not ok


def _exhaustive_scores(e: Engine, pods: list, min_count: int) -> dict[str, int]:
    """Every feasible placement's score, each simulated (upstream's loop, no pruning)."""
    runs = []
    for pl in topology_placement.generate(e.table, e.candidate_rows(), RACK):
        res = e.schedule(pods, commit=False, placement=pl)
        got = [p for p, r in zip(pods, res) if r.candidates]
        if len(got) >= min_count:
            runs.append((pl, got))
    most = max((len(g) for _, g in runs), default=0)
    w = e.profile.weight("NodeResourcesFit")
    return {pl.name: e._placement_score(pl, got, most, 0, w, e.profile) for pl, got in runs}


def test_pruned_choice_scores_as_the_exhaustive_best():
    for seed in range(60):
        rng = random.Random(seed)
        spec = {f"r{i}": rng.randint(1, 3) for i in range(rng.randint(2, 5))}
        nodes = racks(spec, cpu=str(rng.choice([2, 4])))
        used = [bound(f"u{j}", n.name, rng.choice(["500m", "1", "2"])) for j, n in enumerate(nodes)
                if rng.random() < 0.5]
        size = rng.randint(1, 6)
        min_count = rng.randint(1, size)
        cpu = rng.choice(["500m", "1", "1500m"])
        e = engine(nodes, used)
        scores = _exhaustive_scores(e, gang(size, cpu, prefix=f"x{seed}-"), min_count)
        members = gang(size, cpu, prefix=f"g{seed}-")
        results, ok = e.schedule_gang(members, min_count, topology_key=RACK)
        assert ok == bool(scores), seed
        if ok:
            chosen = {rack_of(r.candidates[0][0]) for r in results if r.candidates}
            assert len(chosen) == 1, seed
            assert scores[chosen.pop()] == max(scores.values()), (seed, scores)
