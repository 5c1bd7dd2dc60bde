"""Preemption under faults, against a real apiserver behind the fault proxy: a victim already
gone (404), a victim replaced under its name (409 on the uid precondition), 429s on the delete, a
preemptor deleted while its victim terminates. Each ends with no extra victim, nothing lost, and
the preemptor bound (or its room given back)."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client

from tests.conftest import proxied_runtime, wait_for
from tests.reliability.faults import FaultProxy, FaultRule

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(300)]

NS = "pf"


def low_pod(name: str, cpu: str = "1", prio: int = 1, grace: int = 0) -> dict:
    return {"metadata": {"name": name, "namespace": NS},
            "spec": {"schedulerName": "cluster-scheduler", "priority": prio, "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": cpu}}}]}}


@pytest.fixture
def env(private_cp, ray_session, tmp_path):
    cp = private_cp
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    res = {"cpu": "2", "memory": "8Gi", "pods": "10"}
    core.create_node({"metadata": {"name": "only", "labels": {"kubernetes.io/hostname": "only"}},
                      "status": {"capacity": res, "allocatable": res, "conditions": [{"type": "Ready", "status": "True"}]}})
    core.create_namespace({"metadata": {"name": NS}})
    rt = proxied_runtime(cp, proxy, tmp_path, bind_concurrency=4, backoff_initial_s=0.2, backoff_max_s=1.0)
    assert rt.wait_synced(60)
    try:
        yield rt, proxy, core
    finally:
        rt.stop()
        proxy.stop()
        admin.close()


def fill(core, names=("a", "b")) -> None:
    for n in names:
        core.create_namespaced_pod(NS, low_pod(n))
    wait_for(lambda: all(core.read_namespaced_pod(n, NS).spec.node_name for n in names), 60, "the node filled")


def chosen(rt) -> str:
    """The victim the coordinator is evicting (by name)."""
    c = rt.coordinator
    return wait_for(lambda: next((c.ledger.pods[u].name for u in list(c._evicting) if u in c.ledger.pods), None),
                    30, "a victim chosen")


def names(core) -> set[str]:
    return {p.metadata.name for p in core.list_namespaced_pod(NS).items}


def preempt_with_held_request(env, method: str, suffix: str, what: str) -> tuple[threading.Event, str]:
    """Fill the node, create the preemptor and hold the scheduler's first `method` request on a
    low pod's path (+ `suffix`) until the returned gate is set; also returns the victim chosen."""
    rt, proxy, core = env
    fill(core)
    gate = threading.Event()
    rule = proxy.add_rule(FaultRule(path=rf"/namespaces/{NS}/pods/[ab]{suffix}$", method=method, hold=gate, count=1))
    core.create_namespaced_pod(NS, low_pod("high", prio=100))
    wait_for(lambda: rule.injected == 1, 30, what)
    return gate, chosen(rt)


def test_victim_gone_before_the_scheduler_gets_to_it(env):
    """Our DisruptionTarget patch is held while the victim is deleted by someone else: the patch
    gets 404, which counts as evicted; nobody else is evicted and the preemptor binds."""
    rt, proxy, core = env
    gate, victim = preempt_with_held_request(env, "PATCH", "/status", "our patch of the victim held")
    core.delete_namespaced_pod(victim, NS, grace_period_seconds=0)
    gate.set()
    wait_for(lambda: core.read_namespaced_pod("high", NS).spec.node_name == "only", 30, "the preemptor bound")
    assert names(core) == {"a", "b", "high"} - {victim}
    assert rt.coordinator.stats.victims == 1 and rt.coordinator.stats.evictions_failed == 0


def test_victim_replaced_under_its_name_is_left_alone(env):
    """The victim is deleted and recreated (new uid, unbound) while our eviction is held: the
    delete's uid precondition answers 409, the new pod is not touched, the preemptor binds."""
    rt, proxy, core = env
    gate, victim = preempt_with_held_request(env, "DELETE", "", "our delete held")
    assert any(c.type == "DisruptionTarget" for c in core.read_namespaced_pod(victim, NS).status.conditions)
    old_uid = core.read_namespaced_pod(victim, NS).metadata.uid
    core.delete_namespaced_pod(victim, NS, grace_period_seconds=0)
    wait_for(lambda: victim not in names(core), 10, "the victim gone")
    core.create_namespaced_pod(NS, low_pod(victim))  # same name, new uid: it will wait (no room)
    gate.set()
    wait_for(lambda: core.read_namespaced_pod("high", NS).spec.node_name == "only", 30, "the preemptor bound")
    again = core.read_namespaced_pod(victim, NS)
    assert again.metadata.uid != old_uid and not again.metadata.deletion_timestamp and not again.spec.node_name
    assert rt.coordinator.stats.victims == 1


def test_throttled_delete_is_retried(env):
    """429 twice on the victim's delete: retried, then evicted; one victim, the preemptor binds."""
    rt, proxy, core = env
    fill(core)
    rule = proxy.add_rule(FaultRule(path=rf"/namespaces/{NS}/pods/[ab]$", method="DELETE", status=429, count=2))
    core.create_namespaced_pod(NS, low_pod("high", prio=100))
    wait_for(lambda: core.read_namespaced_pod("high", NS).spec.node_name == "only", 60, "the preemptor bound")
    assert rule.injected == 2 and len(names(core)) == 2
    assert rt.coordinator.stats.victims == 1 and rt.coordinator.stats.evictions_failed == 0


def test_preemptor_deleted_while_its_victim_terminates(env):
    """The victim has a grace period (it stays terminating: no kubelet); the preemptor is deleted
    meanwhile: its held room is given back, and when the victim is finally gone a waiting low pod
    takes the room; nobody else is evicted."""
    rt, proxy, core = env
    core.create_namespaced_pod(NS, low_pod("slow", grace=600))
    core.create_namespaced_pod(NS, low_pod("b", prio=5))  # the preemptor's victim is "slow"
    wait_for(lambda: all(core.read_namespaced_pod(n, NS).spec.node_name for n in ("slow", "b")), 60, "filled")
    core.create_namespaced_pod(NS, low_pod("high", prio=100))
    wait_for(lambda: core.read_namespaced_pod("slow", NS).metadata.deletion_timestamp, 30, "the victim terminating")
    core.delete_namespaced_pod("high", NS, grace_period_seconds=0)
    wait_for(lambda: not rt.coordinator.nominated and not any(
        p.name == "high" for p in rt.coordinator.ledger.pods.values()), 30, "the held room given back")
    core.create_namespaced_pod(NS, low_pod("next"))
    core.delete_namespaced_pod("slow", NS, grace_period_seconds=0)  # as a kubelet would
    wait_for(lambda: core.read_namespaced_pod("next", NS).spec.node_name == "only", 30, "the room reused")
    assert names(core) == {"b", "next"} and rt.coordinator.stats.victims == 1
