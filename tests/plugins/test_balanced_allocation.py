"""NodeResourcesBalancedAllocation through the Engine: favours nodes whose cpu and memory fractions
stay close, from *actual* requests (no non-zero defaults), and is skipped for best-effort pods."""

from __future__ import annotations

import math


from cluster_scheduler.config import Profile
from tests.plugins.builders import bound, engine, node, only, pod, scores, where

BAL_ONLY = only({"NodeResourcesBalancedAllocation": 1})
GI = 1024 ** 3


def balance(fractions: list[float]) -> int:
    """upstream balancedResourceScore: (1 - std of the capped fractions) * 100, truncated."""
    fr = [min(f, 1.0) for f in fractions]
    if len(fr) == 2:
        std = abs(fr[0] - fr[1]) / 2
    elif len(fr) > 2:
        mean = sum(fr) / len(fr)
        std = math.sqrt(sum((f - mean) ** 2 for f in fr) / len(fr))
    else:
        std = 0.0
    return int((1 - std) * 100)


def upstream_136(with_pod: list[float], without_pod: list[float]) -> int:
    """v1.36 balancedResourceScorer: the change in balance the pod brings, mapped to [50, 100]."""
    return 50 + (50 + balance(with_pod) - balance(without_pod)) // 2


def test_best_effort_pod_is_skipped():
    e = engine([node("a", cpu="4", memory="16Gi"), node("b", cpu="4", memory="4Gi")],
               [bound("x", "a", cpu="3")], profile=BAL_ONLY)
    assert scores(e, pod()) == {"a": 0, "b": 0}


def test_prefers_node_where_fractions_stay_close():
    # a: 1/4 cpu, 1/4 memory -> perfectly balanced; b: 1/4 cpu, 1/16 memory
    e = engine([node("a", cpu="4", memory="4Gi"), node("b", cpu="4", memory="16Gi")], profile=BAL_ONLY)
    p = pod(cpu="1", memory="1Gi")
    got = scores(e, p)
    assert got["a"] > got["b"]
    assert where(e, p) == "a"


def test_uses_actual_requests_not_non_zero_defaults():
    """A memory-only pod has cpu request 0 for balance (not 100m): on an empty node the fractions
    are cpu 0 and memory 1/2."""
    e = engine([node("a", cpu="1", memory="2Gi"), node("b", cpu="1", memory="8Gi")], profile=BAL_ONLY)
    got = scores(e, pod(memory="1Gi"))
    assert got["a"] < got["b"]  # 0 vs 1/2 is less balanced than 0 vs 1/8


def test_existing_imbalance_can_be_repaired():
    """A cpu-heavy node gains balance from a memory-heavy pod: it beats an empty twin."""
    e = engine([node("busy", cpu="4", memory="8Gi"), node("empty", cpu="4", memory="8Gi")],
               [bound("x", "busy", cpu="2", memory="0")], profile=BAL_ONLY)
    assert where(e, pod(cpu="100m", memory="4Gi")) == "busy"


def test_exact_score_follows_upstream_v136():
    e = engine([node("a", cpu="4", memory="4Gi"), node("b", cpu="4", memory="16Gi")],
               [bound("x", "b", cpu="1", memory="8Gi")], profile=BAL_ONLY)
    got = scores(e, pod(cpu="1", memory="1Gi"))
    assert got == {
        "a": upstream_136([1 / 4, 1 / 4], [0, 0]),          # 75
        "b": upstream_136([2 / 4, 9 / 16], [1 / 4, 8 / 16]),  # 50 + (50 + 96 - 87) // 2 = 79
    }


def test_three_resources_use_population_std():
    prof = only({"NodeResourcesBalancedAllocation": 1},
                balanced_resources=(("cpu", 1), ("memory", 1), ("example.com/fpga", 1)))
    e = engine([node("a", cpu="4", memory="4Gi", extra={"example.com/fpga": 4})], profile=prof)
    p = pod(cpu="1", memory="2Gi", requests={"example.com/fpga": "3"})
    fr = [1 / 4, 2 / 4, 3 / 4]
    assert scores(e, p)["a"] in (balance(fr), upstream_136(fr, [0, 0, 0]))


def test_weight_in_default_profile():
    """In the default profile balanced allocation is weighted 1 beside fit 1 and taints 3."""
    e = engine([node("a", cpu="4", memory="4Gi")])
    e_bal = engine([node("a", cpu="4", memory="4Gi")], profile=BAL_ONLY)
    e_rest = engine([node("a", cpu="4", memory="4Gi")], profile=Profile(score_weights=(
        ("NodeResourcesFit", 1), ("TaintToleration", 3))))
    p = pod(cpu="1", memory="1Gi")
    assert scores(e, p)["a"] == scores(e_bal, p)["a"] + scores(e_rest, p)["a"]
