"""NodeResourcesFit through the Engine: the effective request must fit every resource (pods and
extended resources included) and the three scoring strategies use upstream's integer formulas with
the non-zero cpu/memory defaults for pods that request nothing."""

from __future__ import annotations

import pytest

from cluster_scheduler.config import Profile, ScoringStrategy
from cluster_scheduler.model.parse import parse_pod
from tests.plugins.builders import bound, engine, message, node, only, place, pod, pod_dict, scores, where

FIT_ONLY = only({"NodeResourcesFit": 1})


def least(alloc: int, req: int) -> int:
    """Upstream leastRequestedScore."""
    return 0 if req > alloc else (alloc - req) * 100 // alloc


def most(alloc: int, req: int) -> int:
    return min(req, alloc) * 100 // alloc


GI = 1024 ** 3
MI = 1024 ** 2


def test_least_allocated_prefers_emptier_node_with_exact_scores():
    e = engine([node("small", cpu="4", memory="8Gi"), node("big", cpu="8", memory="16Gi")], profile=FIT_ONLY)
    p = pod(cpu="1", memory="2Gi")
    got = scores(e, p)
    assert got == {
        "small": (least(4000, 1000) + least(8 * GI, 2 * GI)) // 2,  # (75 + 75) / 2
        "big": (least(8000, 1000) + least(16 * GI, 2 * GI)) // 2,   # (87 + 87) / 2
    }
    assert got == {"small": 75, "big": 87}
    assert where(e, p) == "big"


def test_least_allocated_counts_already_bound_pods():
    # 'big' is already 7/8 used: the emptier node is now 'small'
    e = engine([node("small", cpu="4", memory="8Gi"), node("big", cpu="8", memory="16Gi")],
               [bound("busy", "big", cpu="7", memory="14Gi")], profile=FIT_ONLY)
    got = scores(e, pod(cpu="500m", memory="1Gi"))
    assert got["small"] == (least(4000, 500) + least(8 * GI, GI)) // 2
    assert got["big"] == (least(8000, 7500) + least(16 * GI, 15 * GI)) // 2
    assert max(got, key=got.get) == "small"


def test_non_zero_defaults_for_pods_without_requests():
    """A pod with no requests is scored as 100m cpu / 200Mi memory (and so are bound ones)."""
    e = engine([node("a", cpu="1", memory="2000Mi")], profile=FIT_ONLY)
    be = pod()  # best-effort
    assert scores(e, be) == {"a": (least(1000, 100) + least(2000 * MI, 200 * MI)) // 2}  # (90+90)/2
    e.add_pod(bound("be-running", "a"))
    # the bound best-effort pod counts with its non-zero defaults on the node too
    assert scores(e, be) == {"a": (least(1000, 200) + least(2000 * MI, 400 * MI)) // 2}  # 80


def test_non_zero_default_only_for_the_missing_resource():
    e = engine([node("a", cpu="1", memory="2000Mi")], profile=FIT_ONLY)
    # cpu requested explicitly, memory defaulted to 200Mi
    assert scores(e, pod(cpu="500m")) == {"a": (least(1000, 500) + least(2000 * MI, 200 * MI)) // 2}


def test_weighted_resources_in_scoring_strategy():
    prof = only({"NodeResourcesFit": 1},
                scoring=ScoringStrategy("LeastAllocated", (("cpu", 3), ("memory", 1))))
    e = engine([node("a", cpu="4", memory="4Gi")], profile=prof)
    got = scores(e, pod(cpu="1", memory="3Gi"))
    assert got == {"a": (3 * least(4000, 1000) + 1 * least(4 * GI, 3 * GI)) // 4}  # (225 + 25) / 4 = 62


def test_most_allocated_prefers_fuller_node():
    prof = only({"NodeResourcesFit": 1}, scoring=ScoringStrategy("MostAllocated"))
    e = engine([node("small", cpu="4", memory="8Gi"), node("big", cpu="8", memory="16Gi")], profile=prof)
    p = pod(cpu="1", memory="2Gi")
    got = scores(e, p)
    assert got == {"small": (most(4000, 1000) + most(8 * GI, 2 * GI)) // 2,
                   "big": (most(8000, 1000) + most(16 * GI, 2 * GI)) // 2}
    assert got == {"small": 25, "big": 12}
    assert where(e, p) == "small"


def test_requested_to_capacity_ratio_linear_shape():
    """Shape (0,0)-(100,10) scores utilization itself; the average is rounded half away from zero
    (Go's math.Round): cpu 25 and memory 48 average to 36.5 -> 37."""
    prof = only({"NodeResourcesFit": 1},
                scoring=ScoringStrategy("RequestedToCapacityRatio", shape=((0, 0), (100, 10))))
    e = engine([node("a", cpu="4", memory="1000Mi"), node("b", cpu="4", memory="2000Mi")], profile=prof)
    got = scores(e, pod(cpu="1", memory="480Mi"))
    assert got["a"] == 37  # cpu 25, memory 480*100//1000 = 48: 36.5 -> 37
    assert got["b"] == 25  # cpu 25, memory 480*100//2000 = 24: 24.5 -> 25


def test_requested_to_capacity_ratio_bin_packing_prefers_fuller():
    prof = only({"NodeResourcesFit": 1},
                scoring=ScoringStrategy("RequestedToCapacityRatio", shape=((0, 0), (100, 10))))
    e = engine([node("a", cpu="4", memory="8Gi"), node("b", cpu="4", memory="8Gi")],
               [bound("x", "b", cpu="2", memory="4Gi")], profile=prof)
    p = pod(cpu="1", memory="2Gi")
    got = scores(e, p)
    assert got == {"a": 25, "b": 75}
    assert where(e, p) == "b"


def test_requested_to_capacity_ratio_decreasing_shape_spreads():
    # shape (0,10)-(100,0): the emptier the better, like LeastAllocated
    prof = only({"NodeResourcesFit": 1},
                scoring=ScoringStrategy("RequestedToCapacityRatio", shape=((0, 10), (100, 0))))
    e = engine([node("a", cpu="4", memory="8Gi"), node("b", cpu="4", memory="8Gi")],
               [bound("x", "b", cpu="2", memory="4Gi")], profile=prof)
    got = scores(e, pod(cpu="1", memory="2Gi"))
    assert got == {"a": 75, "b": 25}


# ------------------------------------------------------------------ filter

def test_insufficient_cpu_message():
    e = engine([node("a", cpu="2"), node("b", cpu="2")])
    assert message(e, pod(cpu="3")) == "0/2 nodes are available: 2 Insufficient cpu."


def test_insufficient_both_resources_counts_each_and_sorts():
    e = engine([node("a", cpu="2", memory="1Gi"), node("b", cpu="8", memory="1Gi"), node("c", cpu="8", memory="1Gi")])
    assert message(e, pod(cpu="4", memory="2Gi")) == \
        "0/3 nodes are available: 1 Insufficient cpu, 3 Insufficient memory."


def test_too_many_pods():
    e = engine([node("a", pods="2")], [bound("x", "a", cpu="100m"), bound("y", "a", cpu="100m")])
    assert message(e, pod(cpu="100m")) == "0/1 nodes are available: 1 Too many pods."


def test_overcommitted_node_takes_pods_not_asking_for_the_short_resource():
    """Upstream fitsRequest checks only the resources a pod requests: a node already over its
    memory (e.g. allocatable shrank) still takes a cpu-only pod, not a memory one."""
    e = engine([node("a", cpu="4", memory="1Gi")], [bound("big", "a", cpu="1", memory="2Gi")])
    assert where(e, pod(cpu="1")) == "a"
    assert message(e, pod(cpu="1", memory="1Mi")) == "0/1 nodes are available: 1 Insufficient memory."


def test_every_short_resource_of_a_node_is_reported():
    """NodeResourcesFit lists each short resource of a node, pods included."""
    e = engine([node("a", cpu="1", pods="1")], [bound("x", "a", cpu="500m")])
    assert message(e, pod(cpu="1", memory="16Gi")) == \
        "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 Too many pods."


def test_pods_allocatable_counts_pods_placed_in_the_same_batch():
    e = engine([node("a", pods="3")])
    res = e.schedule([pod(cpu="10m") for _ in range(5)])
    assert [bool(r.candidates) for r in res] == [True, True, True, False, False]
    assert res[-1].message() == "0/1 nodes are available: 1 Too many pods."


def test_extended_resource():
    e = engine([node("plain"), node("fpga", extra={"example.com/fpga": 2})])
    assert where(e, pod(cpu="1", requests={"example.com/fpga": "1"})) == "fpga"
    assert where(e, pod(cpu="1", requests={"example.com/fpga": "1"})) == "fpga"
    assert message(e, pod(cpu="1", requests={"example.com/fpga": "1"})) == \
        "0/2 nodes are available: 2 Insufficient example.com/fpga."


def test_extended_resource_not_requested_does_not_affect_score():
    """Upstream skips extended resources the pod does not request: an fpga node is scored on
    cpu/memory only."""
    prof = only({"NodeResourcesFit": 1},
                scoring=ScoringStrategy("LeastAllocated", (("cpu", 1), ("memory", 1), ("example.com/fpga", 5))))
    e = engine([node("plain"), node("fpga", extra={"example.com/fpga": 2})], profile=prof)
    got = scores(e, pod(cpu="1", memory="2Gi"))
    assert got["plain"] == got["fpga"] == 75
    # ...and counted (weight 5) when requested: (75 + 75 + 5 * 50) / 7
    got = scores(e, pod(cpu="1", memory="2Gi", requests={"example.com/fpga": "1"}))
    assert got == {"fpga": (75 + 75 + 5 * 50) // 7}


def test_init_container_step_dominates_request():
    """Effective request = max(sum of app containers, largest init step)."""
    spec = {"initContainers": [{"name": "init", "image": "x", "resources": {"requests": {"cpu": "3"}}}]}
    e = engine([node("two", cpu="2"), node("four", cpu="4")])
    r = place(e, pod(cpu="1", **spec))
    assert r.candidates[0][0] == "four"
    # after it runs the pod holds 3 cpu (its init step) on 'four', so a 1.5-cpu pod fits only on 'two'
    assert where(e, pod(cpu="1500m")) == "two"
    assert message(engine([node("two", cpu="2")]), pod(cpu="1", **spec)) == "0/1 nodes are available: 1 Insufficient cpu."


def test_sidecar_adds_to_app_containers():
    """A restartable init container (sidecar) runs beside the app: 1 + 1.5 = 2.5 cpu."""
    spec = {"initContainers": [{"name": "sidecar", "image": "x", "restartPolicy": "Always",
                                "resources": {"requests": {"cpu": "1"}}}]}
    assert message(engine([node("a", cpu="2")]), pod(cpu="1500m", **spec)) == \
        "0/1 nodes are available: 1 Insufficient cpu."
    assert where(engine([node("a", cpu="2500m")]), pod(cpu="1500m", **spec)) == "a"


def test_overhead_is_added():
    spec = {"overhead": {"cpu": "500m", "memory": "100Mi"}}
    assert message(engine([node("a", cpu="2")]), pod(cpu="1600m", **spec)) == \
        "0/1 nodes are available: 1 Insufficient cpu."
    e = engine([node("a", cpu="2")])
    assert where(e, pod(cpu="1500m", **spec)) == "a"
    assert message(e, pod(cpu="1m")) == "0/1 nodes are available: 1 Insufficient cpu."


def test_malformed_pod_is_an_error_not_an_exception():
    bad = parse_pod(pod_dict("bad", cpu="lots"))
    assert bad.key is None and bad.error
    e = engine([node("a")])
    good = pod(cpu="1")
    res = e.schedule([bad, good])
    assert res[0].error == bad.error and not res[0].candidates
    assert res[0].message() == bad.error
    assert res[1].candidates and res[1].candidates[0][0] == "a"


def test_disabled_filter_lets_oversized_pod_through():
    prof = Profile(disabled_filters=frozenset({"NodeResourcesFit"}))
    assert where(engine([node("a", cpu="1")], profile=prof), pod(cpu="4")) == "a"


@pytest.mark.parametrize("strategy", ["LeastAllocated", "MostAllocated"])
def test_fit_weight_adds_to_taint_toleration_score(strategy):
    """Total = 1 * fit + 3 * TaintToleration (100 on untainted nodes)."""
    prof = Profile(scoring=ScoringStrategy(strategy),
                   score_weights=(("NodeResourcesFit", 1), ("TaintToleration", 3)))
    e = engine([node("a", cpu="4", memory="4Gi")], profile=prof)
    fit = least(4000, 1000) if strategy == "LeastAllocated" else most(4000, 1000)
    assert scores(e, pod(cpu="1", memory="1Gi")) == {"a": fit + 300}
