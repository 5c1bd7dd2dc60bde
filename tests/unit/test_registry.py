"""The plugin registry is the one place a plugin is declared: its order and default weights are
upstream's, the engine runs whatever it lists (filter, diagnosis, score), and one engine serves
several profiles, each pod with its own profile's plugins and weights."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cluster_scheduler import engine as engine_module
from cluster_scheduler.config import ScoringStrategy
from cluster_scheduler.plugins import MAX_NODE_SCORE, ClassCtx
from cluster_scheduler.plugins.profile import Profile
from cluster_scheduler.plugins.registry import (DEFAULT_SCORE_WEIGHTS, FILTER_PLUGINS, NORMALIZED, REGISTRY,
                                                Plugin)
from tests.plugins.builders import engine, node, pod, scores, where

UPSTREAM_DEFAULTS = "pkg/scheduler/apis/config/v1/default_plugins.go"


def upstream_default_plugins() -> list[tuple[str, int]]:
    """(name, weight) of upstream's default multiPoint plugins, from the module cache the
    control-plane build fills; skipped where it is absent."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("go is not installed")
    cache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True).stdout.strip()
    files = sorted(Path(cache).glob(f"k8s.io/kubernetes@v1.37.*/{UPSTREAM_DEFAULTS}"))
    if not files:
        pytest.skip("the k8s.io/kubernetes module is not in the Go module cache (build the control plane)")
    text = files[-1].read_text()
    return [(name, int(w or 0)) for name, w in
            re.findall(r"\{Name: names\.(\w+)(?:, Weight: ptr\.To\[int32\]\((\d+)\))?\}", text)]


def test_registry_is_upstreams_default_profile_in_its_order():
    upstream = upstream_default_plugins()
    names = [n for n, _w in upstream]
    ours = [p.name for p in REGISTRY]
    assert [n for n in names if n in ours] == ours  # same relative order
    weights = dict(upstream)
    # a score plugin listed without a weight gets 1 (framework.go, getValidScoreWeights)
    assert DEFAULT_SCORE_WEIGHTS == {n: weights[n] or 1 for n in DEFAULT_SCORE_WEIGHTS}


def test_config_profile_and_engine_read_the_registry():
    assert FILTER_PLUGINS == ("NodeName", "NodeUnschedulable", "TaintToleration", "NodeAffinity", "NodePorts",
                              "NodeResourcesFit", "VolumeRestrictions", "NodeVolumeLimits", "VolumeBinding", "VolumeZone",
                              "PodTopologySpread",
                              "InterPodAffinity")
    assert dict(Profile().score_weights) == DEFAULT_SCORE_WEIGHTS
    for p in REGISTRY:
        assert p.filter is None or not p.dynamic or p.row_filter is not None, p.name
        assert p.score != NORMALIZED or (p.score_raw is not None and p.normalize is not None), p.name


# ---- a plugin added in one place -------------------------------------------------------------

def _deny_filter(ctx: ClassCtx):
    ok = ctx.table.label_column("deny")[ctx.rows] < 0  # no such label on the node
    return ok, [(~ok, "node(s) had the deny label")]


def _fast_raw(ctx: ClassCtx) -> np.ndarray:
    return (ctx.table.label_column("fast")[ctx.rows] >= 0).astype(np.int64)


def _normalize_max(raw: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    mx = int(raw[feasible].max(initial=0))
    return np.zeros(raw.shape, dtype=np.int64) if mx == 0 else (MAX_NODE_SCORE * raw) // mx


EXTRA = (Plugin("DenyLabel", filter=_deny_filter),
         Plugin("FastNodes", score=NORMALIZED, default_weight=5, score_raw=_fast_raw, normalize=_normalize_max))


def test_a_registered_plugin_filters_diagnoses_and_scores(monkeypatch):
    monkeypatch.setattr(engine_module, "REGISTRY", REGISTRY[:2] + EXTRA[:1] + REGISTRY[2:] + EXTRA[1:])
    prof = Profile(score_weights=(("FastNodes", 5), ("NodeResourcesFit", 1)))
    nodes = [node("a", cpu="8"), node("b", cpu="2", labels={"fast": "yes"}), node("c", labels={"deny": "x"})]
    e = engine(nodes, profile=prof)
    s = scores(e, pod(cpu="1"))
    assert set(s) == {"a", "b"}  # filtered by the new plugin
    assert where(e, pod(cpu="1")) == "b"  # its weight 5 outranks LeastAllocated's preference for a
    r = e.schedule([pod(cpu="9")], commit=False)[0]  # each node counted under its first failing filter
    assert r.message() == "0/3 nodes are available: 1 node(s) had the deny label, 2 Insufficient cpu."
    # disabled in a profile like any other filter
    e2 = engine(nodes, profile=Profile(disabled_filters=frozenset({"DenyLabel"})))
    assert "c" in scores(e2, pod(cpu="1"))


def test_each_pod_is_scheduled_with_its_own_profile():
    spread = Profile(scheduler_name="spread")
    pack = Profile(scheduler_name="pack", scoring=ScoringStrategy("MostAllocated"),
                   score_weights=(("NodeResourcesFit", 1),), preemption=False)
    nodes = [node(f"n{i}", cpu="4") for i in range(3)]
    e = engine(nodes, profile=(spread, pack))
    got = {}
    for i in range(3):  # the same spec under both profiles, interleaved
        for prof in ("spread", "pack"):
            p = pod(f"{prof}-{i}", cpu="1", schedulerName=prof)
            got[p.name] = where(e, p)
    assert len({got[f"spread-{i}"] for i in range(3)}) == 3, got
    assert len({got[f"pack-{i}"] for i in range(3)}) == 1, got
    assert len(e.classes) == 2  # one class per (profile, spec)
    # a pod naming no profile of this engine is judged by the first (e.g. pods bound by others)
    assert e.profile_of("someone-else") is spread and e.profile_of("pack") is pack
