"""NodeName through the Engine: a pod that names its node fits there only."""

from __future__ import annotations

from cluster_scheduler.model.parse import parse_pod
from tests.plugins.builders import engine, message, node, pod_dict, where


def named(node_name: str, cpu: str = "1"):
    """A pending pod whose spec.nodeName is set (e.g. by a user): the key carries it, the pod is not
    yet bound, so it goes through the scheduler's filters."""
    info = parse_pod(pod_dict(cpu=cpu, node_name=node_name))
    info.node_name = ""
    assert info.key is not None and info.key.node_name == node_name
    return info


def test_goes_to_named_node_even_if_worse():
    e = engine([node("a", cpu="64"), node("b", cpu="2"), node("c", cpu="64")])
    assert where(e, named("b")) == "b"


def test_named_node_missing():
    e = engine([node("a"), node("b")])
    assert message(e, named("zzz")) == "0/2 nodes are available: 2 node(s) didn't match the requested node name."


def test_named_node_full():
    e = engine([node("a", cpu="1"), node("b", cpu="8")])
    assert message(e, named("a", cpu="2")) == \
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match the requested node name."
