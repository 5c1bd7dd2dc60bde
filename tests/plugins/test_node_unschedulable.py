"""NodeUnschedulable through the Engine: cordoned nodes take only pods tolerating the
unschedulable taint; NotReady nodes (and nodes whose status could not be read) take none."""

from __future__ import annotations

from cluster_scheduler.model.parse import parse_node
from tests.plugins.builders import engine, message, node, node_dict, pod, where

UNSCHED_TOL = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}


def test_cordoned_node_is_skipped():
    e = engine([node("cordoned", cpu="64", unschedulable=True), node("small", cpu="2")])
    for _ in range(2):
        assert where(e, pod(cpu="1")) == "small"
    assert message(e, pod(cpu="1")) == \
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable."


def test_tolerating_the_unschedulable_taint():
    e = engine([node("cordoned", unschedulable=True)])
    assert message(e, pod(cpu="1")) == "0/1 nodes are available: 1 node(s) were unschedulable."
    assert where(e, pod(cpu="1", tolerations=[UNSCHED_TOL])) == "cordoned"
    assert where(e, pod(cpu="1", tolerations=[{"operator": "Exists"}])) == "cordoned"
    assert where(e, pod(cpu="1", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                               "operator": "Exists", "effect": "NoExecute"}])) is None


def test_not_ready_node_is_skipped_even_with_tolerations():
    e = engine([node("down", ready=False), node("up", cpu="1")])
    assert where(e, pod(cpu="1", tolerations=[{"operator": "Exists"}])) == "up"
    assert message(e, pod(cpu="1")) == \
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were not ready."


def test_node_without_ready_condition_is_not_ready():
    d = node_dict("bare")
    d["status"].pop("conditions")
    e = engine([parse_node(d)])
    assert message(e, pod(cpu="1")) == "0/1 nodes are available: 1 node(s) were not ready."


def test_broken_node_takes_no_pods():
    d = node_dict("broken")
    d["status"]["allocatable"]["cpu"] = "a lot"
    info = parse_node(d)
    assert info.error
    e = engine([info, node("ok")])
    assert where(e, pod(cpu="1")) == "ok"
    r = e.schedule([pod(cpu="100")], commit=False)[0]
    assert r.reasons == {"node(s) had an invalid status": 1, "Insufficient cpu": 1}


def test_uncordon_makes_node_available_again():
    e = engine([node("a", unschedulable=True)])
    assert where(e, pod(cpu="1")) is None
    e.set_node(node("a"))
    assert where(e, pod(cpu="1")) == "a"
