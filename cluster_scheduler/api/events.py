"""Scheduling events (events.k8s.io/v1): `Scheduled` (Normal) and `FailedScheduling` (Warning).

Events are best-effort and must never slow binding, so they have their own threads, connections
and token buckets. `Scheduled` events go at a low rate, wait while the binder is busy (for at
most `hold_s`: each costs the apiserver about what a binding costs, and posting them during a
burst of bindings cost constraints-mix a tenth of its throughput), and are dropped when the
backlog is full (under a burst of thousands of bindings a person reads the pods, not ten
thousand events).
`FailedScheduling` is never dropped, because it is the only place that says why a pod waits, and
goes as fast as the status patch it explains (the client's qps/burst, a few posts in flight): at
50/s, the last of 1,000 pods found unschedulable at once waited 18 s for its reason.

Each event gets an explicit unique name (`<pod>.<hex>`): the apiserver rejects a generateName
ending in '.', and kubectl sorts events of one object by that prefix.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

from ..model.types import Gang, PodInfo
from .binder import answer_error, classify, finish, raw_poster, retry_transient
from .rest import TokenBucket, micro_time

log = logging.getLogger(__name__)

ACTION = "Scheduling"
BUSY_POLL_S = 0.02  # how often held Scheduled events look whether the bindings are done


class EventRecorder:
    def __init__(self, events_api: Any, scheduler_names: str | tuple[str, ...], *, qps: float = 50.0, burst: int = 100,
                 warning_qps: float = 5000.0, warning_burst: int = 10000, warning_workers: int = 4,
                 max_backlog: int = 1000, hold_s: float = 2.0) -> None:
        self.api = events_api  # kubernetes.client.EventsV1Api
        # a connection per thread that blocks on a post, so no warning waits behind another's answer
        self._raw = raw_poster(events_api, connections=1 + warning_workers, warm=2)  # None for test doubles
        self._pipe = self._raw if hasattr(self._raw, "submit") else None  # see _normal_loop
        # each profile reports as its own controller (upstream: one recorder per profile)
        names = (scheduler_names,) if isinstance(scheduler_names, str) else tuple(scheduler_names)
        self.controller, self.controllers = names[0], frozenset(names)
        self._host = f"{socket.gethostname()}-{os.getpid()}"
        self.max_backlog = max_backlog
        self.hold_s = hold_s
        # wired by the runtime to Binder.busy (True while bindings are in flight or just answered):
        # Scheduled events wait while it holds
        self.busy: Callable[[], bool] | None = None
        # Warnings have a lane (pool and bucket) of their own: a flood of Scheduled events must
        # never delay the one event that explains why a pod waits.
        self._warning = ThreadPoolExecutor(max_workers=warning_workers, thread_name_prefix="events-warning")
        self._limiters = {"Normal": TokenBucket(qps, burst), "Warning": TokenBucket(warning_qps, warning_burst)}
        self._backlog = 0
        self._lock = threading.Lock()
        self._held: deque[tuple[float, float, PodInfo, str]] = deque()  # (monotonic, wall, pod, node)
        self._wake = threading.Condition(self._lock)
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}{int(datetime.now().timestamp() * 1000):x}"
        self._closed = threading.Event()
        self.posted = 0
        self.dropped = 0
        self.failed = 0
        self._normal = threading.Thread(target=self._normal_loop, name="events", daemon=True)
        self._normal.start()

    def scheduled(self, pod: PodInfo, node: str) -> None:
        """Queue a Scheduled event (called on the binder's answer thread: nothing is built here)."""
        with self._lock:
            if self._backlog >= self.max_backlog:
                self.dropped += 1
                return
            self._backlog += 1
            self._held.append((time.monotonic(), time.time(), pod, node))
            if len(self._held) == 1:
                self._wake.notify()

    def preempted(self, victim: PodInfo, preemptor: PodInfo, node: str, group: Gang | None = None) -> None:
        """The victim's `Preempted` event (upstream's words, the preemptor as the related object:
        the pod, or a gang's PodGroup), on the warning lane: like FailedScheduling it is the only
        record of why a pod went."""
        if group is None:
            who, related = f"pod {preemptor.uid}", {"apiVersion": "v1", "kind": "Pod", "namespace": preemptor.namespace,
                                                   "name": preemptor.name, "uid": preemptor.uid}
        else:
            who, related = f"podgroup {group.uid}", {"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
                                                    "namespace": group.namespace, "name": group.name, "uid": group.uid}
        body = self.body(victim, "Normal", "Preempted", f"Preempted by {who} on node {node}",
                         controller=preemptor.scheduler_name)
        body["action"] = "Preempting"
        body["related"] = related
        with self._lock:
            self._backlog += 1
        self._warning.submit(self._send, victim, "Normal", "Preempted", body, False)

    def failed_scheduling(self, pod: PodInfo, message: str) -> None:
        with self._lock:
            self._backlog += 1  # never dropped
        self._warning.submit(self._post, pod, "Warning", "FailedScheduling", message)

    def _normal_loop(self) -> None:
        """Post held Scheduled events oldest first, at the Normal rate, each once the binder is idle
        or once it has waited `hold_s` (so a steady stream of bindings never starves them)."""
        bucket, closed = self._limiters["Normal"], self._closed
        while True:
            with self._lock:
                while not self._held and not closed.is_set():
                    self._wake.wait()
                if closed.is_set():
                    return
                since = self._held[0][0]
            wait = since + self.hold_s - time.monotonic()
            if wait > 0 and self.busy is not None and self.busy():
                closed.wait(min(wait, BUSY_POLL_S))
                continue
            if (wait := bucket.try_acquire()) > 0:
                closed.wait(wait)
                continue
            with self._lock:
                _mono, wall, pod, node = self._held.popleft()
            note = f"Successfully assigned {pod.namespace}/{pod.name} to {node}"
            body = self.body(pod, "Normal", "Scheduled", note, wall)
            if self._pipe is not None:  # answered on the poster's thread
                fut = self._pipe.submit(self._path(pod), body, 30)
                fut.add_done_callback(lambda f, pod=pod: self._answered(pod, "Scheduled", f))
            else:
                self._send(pod, "Normal", "Scheduled", body, token=False)

    @staticmethod
    def _path(pod: PodInfo) -> str:
        return f"/apis/events.k8s.io/v1/namespaces/{quote(pod.namespace, safe='')}/events"

    def _answered(self, pod: PodInfo, reason: str, fut: Any) -> None:
        exc = fut.exception()
        if exc is None:
            exc = answer_error(*fut.result()[:2])
        self._count(exc is None)
        if exc is not None:
            log.debug("event %s for %s/%s not posted: %s", reason, pod.namespace, pod.name, classify(exc)[1])

    def _count(self, ok: bool) -> None:
        with self._lock:
            self._backlog -= 1
            if ok:
                self.posted += 1
            else:
                self.failed += 1

    def body(self, pod: PodInfo, type_: str, reason: str, note: str, ts: float | None = None,
             controller: str | None = None) -> dict:
        """An events.k8s.io/v1 Event about `pod`, reported by the profile acting (`controller`,
        default the pod's own scheduler when it is one of ours)."""
        name = f"{pod.name}.{self._prefix}{next(self._ids):x}"
        controller = controller or pod.scheduler_name
        if controller not in self.controllers:
            controller = self.controller
        return {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": pod.namespace},
            "eventTime": micro_time(ts),
            "reportingController": controller,
            "reportingInstance": f"{controller}-{self._host}"[:128],
            "action": ACTION, "reason": reason, "type": type_,
            "note": note[:1024],
            "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace,
                          "name": pod.name, "uid": pod.uid},
        }

    def _post(self, pod: PodInfo, type_: str, reason: str, note: str) -> None:
        self._send(pod, type_, reason, self.body(pod, type_, reason, note))

    def _send(self, pod: PodInfo, type_: str, reason: str, body: dict, token: bool = True) -> None:
        """Post one event from this thread (`token`: take a token first; the Normal lane has)."""
        def post() -> None:
            if token:
                self._limiters[type_].acquire()
            if self._raw is not None:
                self._raw.post(self._path(pod), body, 30)
                return
            resp = self.api.create_namespaced_event(pod.namespace, body, _preload_content=False,
                                                    _request_timeout=30)
            finish(resp)

        try:
            if type_ == "Warning" or reason == "Preempted":  # the only record of why: retried while transient
                retry_transient(post, closed=self._closed)
            else:
                post()
            ok = True
        except Exception as exc:  # noqa: BLE001 - events are best effort
            ok = False
            log.debug("event %s for %s/%s not posted: %s", reason, pod.namespace, pod.name, classify(exc)[1])
        self._count(ok)

    def close(self, wait: bool = True) -> None:
        """Stop: held Scheduled events are dropped (a backlog must not delay a shutdown);
        FailedScheduling events still queued are posted first when `wait`."""
        self._closed.set()  # a warning being retried gives up
        with self._lock:
            self.dropped += len(self._held)
            self._backlog -= len(self._held)
            self._held.clear()
            self._wake.notify_all()
        self._normal.join(timeout=5)
        self._warning.shutdown(wait=wait, cancel_futures=not wait)
        if self._raw is not None and hasattr(self._raw, "close"):
            self._raw.close()  # Scheduled events still in flight are dropped, as held ones
