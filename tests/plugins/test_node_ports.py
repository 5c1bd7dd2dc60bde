"""NodePorts through the Engine: a (protocol, hostPort) pair is taken once per address, and
0.0.0.0 (or no hostIP) claims every address."""

from __future__ import annotations

import pytest

from tests.plugins.builders import bound, engine, message, node, pod, where

REASON = "node(s) didn't have free ports for the requested pod ports"


def port(host_port, protocol="TCP", host_ip=None):
    p = {"containerPort": 8080, "hostPort": host_port, "protocol": protocol}
    if host_ip is not None:
        p["hostIP"] = host_ip
    return p


def one_node_with(existing):
    return engine([node("a")], [bound("old", "a", cpu="100m", ports=[existing])])


@pytest.mark.parametrize("existing, incoming, conflict", [
    (port(80), port(80), True),
    (port(80), port(81), False),
    (port(80, "TCP"), port(80, "UDP"), False),
    (port(53, "UDP"), port(53, "UDP"), True),
    (port(80, host_ip="0.0.0.0"), port(80, host_ip="10.0.0.1"), True),
    (port(80, host_ip="10.0.0.1"), port(80, host_ip="0.0.0.0"), True),
    (port(80, host_ip="10.0.0.1"), port(80), True),                    # no hostIP = 0.0.0.0
    (port(80, host_ip="10.0.0.1"), port(80, host_ip="10.0.0.1"), True),
    (port(80, host_ip="10.0.0.1"), port(80, host_ip="10.0.0.2"), False),
    (port(80, "TCP", "10.0.0.1"), port(80, "UDP", "0.0.0.0"), False),
])
def test_conflicts(existing, incoming, conflict):
    e = one_node_with(existing)
    p = pod(cpu="100m", ports=[incoming])
    if conflict:
        assert message(e, p) == f"0/1 nodes are available: 1 {REASON}."
    else:
        assert where(e, p) == "a"


def test_container_port_without_host_port_never_conflicts():
    e = one_node_with(port(80))
    assert where(e, pod(cpu="100m", ports=[{"containerPort": 80}])) == "a"


def test_same_batch_spreads_host_port_pods():
    e = engine([node(f"n{i}") for i in range(3)])
    res = e.schedule([pod(cpu="100m", ports=[port(9100)]) for _ in range(4)])
    placed = [r.candidates[0][0] for r in res if r.candidates]
    assert sorted(placed) == ["n0", "n1", "n2"]
    assert res[3].message() == f"0/3 nodes are available: 3 {REASON}."


def test_port_freed_when_pod_removed():
    e = one_node_with(port(80))
    p = pod(cpu="100m", ports=[port(80)])
    assert where(e, p) is None
    e.remove_pod("default/old")
    assert where(e, p) == "a"


def test_port_stays_taken_while_another_pod_holds_it():
    """Two pods on distinct IPs share port 80; removing one keeps the other's claim."""
    e = engine([node("a")], [bound("x", "a", cpu="100m", ports=[port(80, host_ip="10.0.0.1")]),
                             bound("y", "a", cpu="100m", ports=[port(80, host_ip="10.0.0.2")])])
    e.remove_pod("default/x")
    assert where(e, pod(cpu="100m", ports=[port(80, host_ip="10.0.0.1")])) == "a"
    assert where(e, pod(cpu="100m", ports=[port(80, host_ip="10.0.0.2")])) is None
