"""`retry_transient`: how an Unschedulable verdict (status patch, FailedScheduling event) is
retried when the apiserver fails transiently, and when it gives up."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client import ApiException

from cluster_scheduler.api.binder import retry_transient


class Flaky:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


def test_transient_failures_are_retried_with_growing_waits():
    waits: list[float] = []
    call = Flaky(ApiException(status=503), ConnectionRefusedError("down"), ApiException(status=429))
    retry_transient(call, first_s=0.5, max_s=1.5, sleep=waits.append)
    assert call.calls == 4 and waits == [0.5, 1.0, 1.5]


def test_final_failures_and_the_deadline_are_not_retried():
    call = Flaky(ApiException(status=404))
    with pytest.raises(ApiException):
        retry_transient(call, sleep=lambda s: None)
    assert call.calls == 1

    call = Flaky(*[ApiException(status=500)] * 10)
    with pytest.raises(ApiException):
        retry_transient(call, deadline_s=0.0, sleep=lambda s: None)
    assert call.calls == 1


def test_closing_stops_the_retries():
    closed = threading.Event()
    closed.set()
    call = Flaky(ApiException(status=503), ApiException(status=503))
    with pytest.raises(ApiException):
        retry_transient(call, closed=closed)
    assert call.calls == 1


def test_retried_until_it_lands_with_waits_capped():
    waits: list[float] = []
    call = Flaky(*[ApiException(status=503)] * 12)
    retry_transient(call, sleep=waits.append)
    assert call.calls == 13 and max(waits) == 10.0 and sum(waits) > 60  # longer than a graceful restart


class Core:
    """A CoreV1Api stand-in whose status patches fail with 503 until `up` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.patches = 0
        self.bindings: list[str] = []

    def patch_namespaced_pod_status(self, name, namespace, body, **kw):
        self.patches += 1
        if not self.up.is_set():
            raise ApiException(status=503)
        return Resp()

    def create_namespaced_pod_binding(self, name, namespace, body, **kw):
        self.bindings.append(body["target"]["name"])
        return Resp()


class Resp:
    def read(self):
        return b""

    def release_conn(self):
        pass


def pod(uid: str):
    from cluster_scheduler.model.types import PodInfo

    p = PodInfo.__new__(PodInfo)
    p.uid, p.name, p.namespace = uid, uid, "ns"
    return p


def test_a_binding_stops_the_retries_of_a_stale_verdict():
    import time

    from cluster_scheduler.api.binder import Binder

    core = Core()
    b = Binder(core, concurrency=2, qps=1000, burst=1000)
    try:
        b.mark_unschedulable(pod("a"), "0/1 nodes are available")
        deadline = time.monotonic() + 5
        while core.patches < 2 and time.monotonic() < deadline:  # failing, being retried
            time.sleep(0.05)
        assert core.patches >= 2
        b.bind(pod("a"), "n1")  # the pod fits now: the verdict is stale
        while not b.drain() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert core.bindings == ["n1"]
        patches = core.patches
        core.up.set()
        time.sleep(1.2)  # longer than the next retry wait would have been
        assert core.patches == patches  # never retried after the binding
    finally:
        b.close()


class Recording(Core):
    """Status patches recorded; the first one held until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.up.set()
        self.release = threading.Event()
        self.bodies: list[dict] = []

    def patch_namespaced_pod_status(self, name, namespace, body, **kw):
        if not self.bodies:
            self.release.wait(5)
        self.bodies.append(body["status"])
        return Resp()


def test_only_the_latest_queued_verdict_is_sent_with_the_nomination_it_replaces():
    """Verdicts for one pod queue behind the one on the wire; one superseded before it is sent
    is dropped (as upstream merges a pod's queued status updates), and a nominatedNodeName it
    would have written goes with its successor."""
    import time

    from cluster_scheduler.api.binder import Binder

    core = Recording()
    b = Binder(core, concurrency=4, qps=1000, burst=1000)
    try:
        b.mark_unschedulable(pod("a"), "m1")
        time.sleep(0.2)  # m1 on the wire, held
        b.mark_unschedulable(pod("a"), "m2", nominated_node="n1")
        b.mark_unschedulable(pod("a"), "m3")
        core.release.set()
        deadline = time.monotonic() + 5
        while len(core.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        msgs = [(s["conditions"][0]["message"], s.get("nominatedNodeName")) for s in core.bodies]
        assert msgs == [("m1", None), ("m3", "n1")]
    finally:
        b.close()
