"""The event recorder's lanes: Scheduled events wait while the binder is busy (at most
`hold_s`), are bounded, and never hold up a FailedScheduling event."""

from __future__ import annotations

import threading
import time

from cluster_scheduler.api.binder import Binder
from cluster_scheduler.api.events import EventRecorder
from tests.plugins.builders import pod
from tests.runtime.harness import FakePoster


class FakeEventsApi:
    """Stands in for EventsV1Api (no api_client, so the recorder posts through it)."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.lock = threading.Lock()

    def create_namespaced_event(self, namespace, body, **_kw):
        with self.lock:
            self.bodies.append(body)

        class Resp:
            def read(self):
                return b""

            def release_conn(self):
                pass
        return Resp()

    def reasons(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(b["reason"], b["regarding"]["name"]) for b in self.bodies]


def until(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def recorder(api, **kw) -> EventRecorder:
    return EventRecorder(api, "cluster-scheduler", qps=1000, burst=1000, **kw)


def test_scheduled_events_wait_while_bindings_are_in_flight():
    api = FakeEventsApi()
    rec = recorder(api, hold_s=60)
    busy = [True]
    rec.busy = lambda: busy[0]
    try:
        for i in range(3):
            rec.scheduled(pod(f"p{i}", "100m"), "n0")
        time.sleep(0.3)
        assert api.reasons() == [] and rec.posted == 0
        busy[0] = False  # the bindings are done: the held events go, oldest first
        assert until(lambda: rec.posted == 3)
        assert api.reasons() == [("Scheduled", "p0"), ("Scheduled", "p1"), ("Scheduled", "p2")]
        assert api.bodies[0]["note"] == "Successfully assigned default/p0 to n0"
    finally:
        rec.close()


def test_a_steady_stream_of_bindings_does_not_starve_them():
    api = FakeEventsApi()
    rec = recorder(api, hold_s=0.2)
    rec.busy = lambda: True
    try:
        for i in range(3):
            rec.scheduled(pod(f"p{i}", "100m"), "n0")
        assert until(lambda: rec.posted == 3)
    finally:
        rec.close()


def test_failed_scheduling_is_not_held():
    api = FakeEventsApi()
    rec = recorder(api, hold_s=60)
    rec.busy = lambda: True
    try:
        rec.scheduled(pod("bound", "100m"), "n0")
        rec.failed_scheduling(pod("waiting", "100m"), "0/1 nodes are available: 1 Insufficient cpu.")
        assert until(lambda: rec.posted == 1)
        assert api.reasons() == [("FailedScheduling", "waiting")]
    finally:
        rec.close()


def test_held_events_are_bounded_and_dropped_at_close():
    api = FakeEventsApi()
    rec = recorder(api, hold_s=60, max_backlog=2)
    rec.busy = lambda: True
    for i in range(5):
        rec.scheduled(pod(f"p{i}", "100m"), "n0")
    assert rec.dropped == 3
    rec.close()
    assert (rec.dropped, rec.posted, api.reasons()) == (5, 0, [])


def test_the_binder_says_when_bindings_are_in_flight():
    rec = recorder(FakeEventsApi(), hold_s=60)
    b = Binder(object(), concurrency=2, qps=1000, burst=1000, events=rec)
    rec.busy = b.busy  # as the runtime wires them
    fake = FakePoster()
    b._raw = b._pipe = fake
    try:
        assert rec.busy is not None and not rec.busy()
        b.bind(pod("p0", "100m"), "n0")
        assert rec.busy()
        fake.sent[0][1].set_result((201, "Created", b""))
        assert rec.busy()  # answered just now: still busy for QUIET_S
        assert until(lambda: not rec.busy()) and rec.posted + len(rec._held) == 1
    finally:
        b.close()
        rec.close()
