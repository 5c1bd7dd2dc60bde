"""TaintToleration through the Engine: NoSchedule and NoExecute taints must be tolerated,
PreferNoSchedule only lowers the score (normalized, reversed: fewer untolerated is better)."""

from __future__ import annotations

import pytest

from tests.plugins.builders import engine, message, node, only, pod, scores, where

TT_ONLY = only({"TaintToleration": 1})


def taint(key, value="", effect="NoSchedule"):
    return {"key": key, "value": value, "effect": effect}


def tol(key="", op="Equal", value="", effect=""):
    t = {"operator": op}
    if key:
        t["key"] = key
    if value:
        t["value"] = value
    if effect:
        t["effect"] = effect
    return t


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_hard_taints_repel(effect):
    e = engine([node("tainted", taints=[taint("dedicated", "gpu", effect)]), node("plain")])
    assert where(e, pod(cpu="1")) == "plain"
    assert where(e, pod(cpu="1")) == "plain"
    e = engine([node("tainted", taints=[taint("dedicated", "gpu", effect)])])
    r = e.schedule([pod(cpu="1")], commit=False)[0]
    assert not r.candidates and r.reasons and sum(r.reasons.values()) == 1


def test_untolerated_message_names_the_taint():
    # Deliberately more specific than upstream v1.36's "node(s) had untolerated taint(s)": the
    # taint is named, as in kube-scheduler <= 1.29 (see docs/engine.md, "Known differences").
    e = engine([node("a", taints=[taint("dedicated", "gpu")]), node("b", taints=[taint("x", "y", "NoExecute")])])
    assert message(e, pod(cpu="1")) == ("0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                                        "1 node(s) had untolerated taint {x: y}.")


def test_untolerated_message_counts_nodes():
    e = engine([node("a", taints=[taint("dedicated", "gpu")]), node("b", taints=[taint("dedicated", "gpu")]),
                node("c", cpu="1")])
    r = e.schedule([pod(cpu="2")], commit=False)[0]
    assert r.num_nodes == 3
    assert r.reasons.get("Insufficient cpu") == 1
    assert sum(v for k, v in r.reasons.items() if "taint" in k) == 2


@pytest.mark.parametrize("toleration, ok", [
    (tol("dedicated", "Equal", "gpu", "NoSchedule"), True),
    (tol("dedicated", "Equal", "gpu"), True),          # empty effect tolerates every effect
    (tol("dedicated", "Exists"), True),
    (tol("", "Exists"), True),                         # empty key + Exists tolerates everything
    (tol("dedicated", "Equal", "cpu"), False),         # value differs
    (tol("dedicated", "Exists", effect="NoExecute"), False),  # effect differs
    (tol("other", "Exists"), False),
])
def test_tolerations(toleration, ok):
    e = engine([node("a", taints=[taint("dedicated", "gpu", "NoSchedule")])])
    assert (where(e, pod(cpu="1", tolerations=[toleration])) == "a") is ok


def test_every_hard_taint_must_be_tolerated():
    e = engine([node("a", taints=[taint("k1", "v"), taint("k2", "v", "NoExecute")])])
    assert where(e, pod(cpu="1", tolerations=[tol("k1", "Exists")])) is None
    assert where(e, pod(cpu="1", tolerations=[tol("k1", "Exists"), tol("k2", "Exists")])) == "a"


def test_prefer_no_schedule_is_not_a_filter_but_scores_lower():
    nodes = [node("clean"), node("one", taints=[taint("p1", "", "PreferNoSchedule")]),
             node("two", taints=[taint("p1", "", "PreferNoSchedule"), taint("p2", "", "PreferNoSchedule")])]
    got = scores(engine(nodes, profile=TT_ONLY), pod(cpu="1"))
    assert got == {"clean": 100, "one": 50, "two": 0}
    assert where(engine(nodes), pod(cpu="1")) == "clean"
    # only prefer-tainted nodes left: still schedulable
    assert where(engine(nodes[1:]), pod(cpu="1")) == "one"


def test_tolerated_prefer_no_schedule_does_not_count():
    nodes = [node("clean"), node("one", taints=[taint("p1", "", "PreferNoSchedule")])]
    got = scores(engine(nodes, profile=TT_ONLY), pod(cpu="1", tolerations=[tol("p1", "Exists", effect="PreferNoSchedule")]))
    assert got == {"clean": 100, "one": 100}
    # a NoSchedule-only toleration does not count for PreferNoSchedule scoring
    got = scores(engine(nodes, profile=TT_ONLY), pod(cpu="1", tolerations=[tol("p1", "Exists", effect="NoSchedule")]))
    assert got == {"clean": 100, "one": 0}


def test_prefer_normalization_over_feasible_nodes():
    """The node with the most PreferNoSchedule taints is also NoSchedule-tainted, so it is not
    feasible and does not set the maximum."""
    nodes = [node("clean"), node("one", taints=[taint("p1", "", "PreferNoSchedule")]),
             node("blocked", taints=[taint("p1", "", "PreferNoSchedule"), taint("p2", "", "PreferNoSchedule"),
                                     taint("p3", "", "PreferNoSchedule"), taint("hard")])]
    assert scores(engine(nodes, profile=TT_ONLY), pod(cpu="1")) == {"clean": 100, "one": 0}


def test_default_weight_is_three():
    nodes = [node("clean"), node("one", taints=[taint("p1", "", "PreferNoSchedule")])]
    got = scores(engine(nodes), pod(cpu="1"))
    assert got["clean"] - got["one"] == 3 * 100
