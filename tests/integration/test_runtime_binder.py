"""The binder and the event recorder against the real apiserver, as the scheduler's ServiceAccount:
outcomes are classified as the coordinator needs them, and a pod is never bound twice."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from cluster_scheduler.api.binder import BOUND, CONFLICT, GONE, Binder
from cluster_scheduler.api.events import EventRecorder
from cluster_scheduler.wire import pod_info
from cluster_scheduler.model.types import PodInfo
from tests import manifests

pytestmark = [pytest.mark.apiserver, pytest.mark.timeout(120)]
SCHEDULER = "cluster-scheduler"


def make_node(core: client.CoreV1Api) -> str:
    name = f"bn-{uuid.uuid4().hex[:8]}"
    core.create_node(manifests.node(name, pods="10"))
    return name


def make_pod(core: client.CoreV1Api, ns: str) -> dict:
    body = manifests.pod(f"bp-{uuid.uuid4().hex[:8]}", ns, scheduler=SCHEDULER)
    return client.ApiClient().sanitize_for_serialization(core.create_namespaced_pod(ns, body))


def results(binder: Binder, n: int, timeout: float = 30) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += binder.drain()
        time.sleep(0.05)
    assert len(out) == n, out
    return out


@pytest.fixture
def binder(scheduler_api):
    events = EventRecorder(client.EventsV1Api(scheduler_api), SCHEDULER)
    b = Binder(client.CoreV1Api(scheduler_api), concurrency=4, qps=100, burst=10, events=events)
    yield b
    b.close()
    events.close()


def test_bind_conflict_and_gone(admin_api, binder, namespace):
    core = client.CoreV1Api(admin_api)
    node, other = make_node(core), make_node(core)
    pod = pod_info(make_pod(core, namespace))
    binder.bind(pod, node)
    assert [r.outcome for r in results(binder, 1)] == [BOUND]
    binder.bind(pod, other)  # a second binding is refused: never bound twice
    (r,) = results(binder, 1)
    assert r.outcome == CONFLICT and r.detail.startswith("409")
    assert core.read_namespaced_pod(pod.name, namespace).spec.node_name == node
    core.delete_namespaced_pod(pod.name, namespace, grace_period_seconds=0)
    gone = pod_info(make_pod(core, namespace))
    core.delete_namespaced_pod(gone.name, namespace, grace_period_seconds=0)
    binder.bind(gone, node)
    assert [r.outcome for r in results(binder, 1)] == [GONE]


def test_unschedulable_condition_and_events_then_bind(admin_api, binder, namespace):
    core = client.CoreV1Api(admin_api)
    node = make_node(core)
    pod = pod_info(make_pod(core, namespace))
    msg = "0/3 nodes are available: 3 Insufficient cpu."
    binder.mark_unschedulable(pod, msg)
    binder.bind(pod, node)  # ordered after the patch: PodScheduled must end True
    assert [r.outcome for r in results(binder, 1)] == [BOUND]
    got = core.read_namespaced_pod(pod.name, namespace)
    assert got.spec.node_name == node
    assert {c.type: c.status for c in got.status.conditions}["PodScheduled"] == "True"

    def events(reason: str) -> list:
        return client.EventsV1Api(admin_api).list_namespaced_event(
            namespace, field_selector=f"reason={reason}").items

    deadline = time.monotonic() + 20
    while (not events("FailedScheduling") or not events("Scheduled")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (failed,) = events("FailedScheduling")
    assert (failed.type, failed.note, failed.action) == ("Warning", msg, "Scheduling")
    assert failed.regarding.uid == pod.uid and failed.reporting_controller == SCHEDULER
    (ok,) = events("Scheduled")
    assert ok.type == "Normal" and ok.note == f"Successfully assigned {namespace}/{pod.name} to {node}"


def test_unschedulable_condition_is_set(admin_api, binder, namespace):
    core = client.CoreV1Api(admin_api)
    pod = pod_info(make_pod(core, namespace))
    binder.mark_unschedulable(pod, "0/1 nodes are available: 1 node(s) were unschedulable.")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        conds = {c.type: c for c in core.read_namespaced_pod(pod.name, namespace).status.conditions or ()}
        if "PodScheduled" in conds:
            break
        time.sleep(0.1)
    c = conds["PodScheduled"]
    assert (c.status, c.reason) == ("False", "Unschedulable")
    assert c.message == "0/1 nodes are available: 1 node(s) were unschedulable."


def test_failed_scheduling_events_are_not_held_to_the_scheduled_events_rate(admin_api, scheduler_api, namespace):
    """Pods found unschedulable together get their reasons at the client's rate, not at the
    courtesy rate of Scheduled events: here 1 event/s, which would take 200 s for these 200."""
    n = 200
    rec = EventRecorder(client.EventsV1Api(scheduler_api), SCHEDULER, qps=1, burst=1)
    try:
        pods = [PodInfo(uid=str(uuid.uuid4()), namespace=namespace, name=f"u-{i}") for i in range(n)]
        for p in pods:
            rec.failed_scheduling(p, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
        deadline = time.monotonic() + 60
        while rec.posted < n and rec.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (rec.posted, rec.failed) == (n, 0)
    finally:
        rec.close(wait=False)
    got = client.EventsV1Api(admin_api).list_namespaced_event(namespace, field_selector="reason=FailedScheduling").items
    assert sorted(e.regarding.name for e in got) == sorted(p.name for p in pods)
    assert {e.type for e in got} == {"Warning"}
