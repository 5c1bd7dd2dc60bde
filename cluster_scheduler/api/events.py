"""Scheduling events (events.k8s.io/v1): `Scheduled` (Normal) and `FailedScheduling` (Warning).

Events are best-effort and must never slow binding, so they have their own threads, connections
and token buckets. `Scheduled` events go at a low rate and are dropped when the backlog is full
(under a burst of thousands of bindings a person reads the pods, not ten thousand events).
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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..model.types import PodInfo
from .binder import TokenBucket, answer_error, classify, finish, raw_poster, retry_transient

log = logging.getLogger(__name__)

ACTION = "Scheduling"


def micro_time() -> str:
    """metav1.MicroTime as the apiserver writes it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    def __init__(self, events_api: Any, scheduler_name: str, *, qps: float = 50.0, burst: int = 100,
                 warning_qps: float = 5000.0, warning_burst: int = 10000, workers: int = 2,
                 warning_workers: int = 4, max_backlog: int = 1000) -> None:
        self.api = events_api  # kubernetes.client.EventsV1Api
        # a connection per thread that blocks on a post, so no warning waits behind another's answer
        self._raw = raw_poster(events_api, connections=workers + warning_workers, warm=2)  # None for test doubles
        self._pipe = self._raw if hasattr(self._raw, "submit") else None  # see _submit
        self.controller = scheduler_name
        self.instance = f"{scheduler_name}-{socket.gethostname()}-{os.getpid()}"
        self.max_backlog = max_backlog
        # Warnings have a lane (pool and bucket) of their own: a flood of Scheduled events must
        # never delay the one event that explains why a pod waits.
        self._normal = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="events")
        self._warning = ThreadPoolExecutor(max_workers=warning_workers, thread_name_prefix="events-warning")
        self._limiters = {"Normal": TokenBucket(qps, burst), "Warning": TokenBucket(warning_qps, warning_burst)}
        self._backlog = 0
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._prefix = f"{os.getpid():x}{int(datetime.now().timestamp() * 1000):x}"
        self._closed = threading.Event()
        self.posted = 0
        self.dropped = 0
        self.failed = 0

    def scheduled(self, pod: PodInfo, node: str) -> None:
        msg = f"Successfully assigned {pod.namespace}/{pod.name} to {node}"
        self._submit(pod, "Normal", "Scheduled", msg, droppable=True)

    def failed_scheduling(self, pod: PodInfo, message: str) -> None:
        self._submit(pod, "Warning", "FailedScheduling", message, droppable=False)

    def _submit(self, pod: PodInfo, type_: str, reason: str, note: str, droppable: bool) -> None:
        with self._lock:
            if droppable and self._backlog >= self.max_backlog:
                self.dropped += 1
                return
            self._backlog += 1
        if droppable and self._pipe is not None and self._limiters[type_].try_acquire() == 0.0:
            # a token is free: posted from here and answered on the poster's thread, no worker
            # thread woken per event
            fut = self._pipe.submit(self._path(pod), self.body(pod, type_, reason, note), 30)
            fut.add_done_callback(lambda f: self._answered(pod, reason, f))
            return
        (self._normal if droppable else self._warning).submit(self._post, pod, type_, reason, note)

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

    def body(self, pod: PodInfo, type_: str, reason: str, note: str) -> dict:
        name = f"{pod.name}.{self._prefix}{next(self._ids):x}"
        return {
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": name, "namespace": pod.namespace},
            "eventTime": micro_time(),
            "reportingController": self.controller,
            "reportingInstance": self.instance[:128],
            "action": ACTION, "reason": reason, "type": type_,
            "note": note[:1024],
            "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace,
                          "name": pod.name, "uid": pod.uid},
        }

    def _post(self, pod: PodInfo, type_: str, reason: str, note: str) -> None:
        body = self.body(pod, type_, reason, note)

        def post() -> None:
            self._limiters[type_].acquire()
            if self._raw is not None:
                self._raw.post(self._path(pod), body, 30)
                return
            resp = self.api.create_namespaced_event(pod.namespace, body, _preload_content=False,
                                                    _request_timeout=30)
            finish(resp)

        try:
            if type_ == "Warning":  # the only record of why a pod waits: retried while transient
                retry_transient(post, closed=self._closed)
            else:
                post()
            ok = True
        except Exception as exc:  # noqa: BLE001 - events are best effort
            ok = False
            log.debug("event %s for %s/%s not posted: %s", reason, pod.namespace, pod.name, classify(exc)[1])
        self._count(ok)

    def close(self, wait: bool = True) -> None:
        """Stop: queued Scheduled events are dropped (a backlog must not delay a shutdown);
        FailedScheduling events still queued are posted first when `wait`."""
        self._closed.set()  # a warning being retried gives up
        self._normal.shutdown(wait=False, cancel_futures=True)
        self._warning.shutdown(wait=wait, cancel_futures=not wait)
        if self._raw is not None and hasattr(self._raw, "close"):
            self._raw.close()  # Scheduled events still in flight are dropped, as queued ones
