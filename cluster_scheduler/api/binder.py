"""The binder: the only writer of bindings (and of the PodScheduled=False condition).

Bindings go out from a bounded thread pool (`bind_concurrency`) through one token bucket
(`qps`/`burst`, as client-go's rate limiter), so a burst of winners cannot flood the apiserver.
Each outcome is classified the way kube-scheduler's binding cycle needs it:

- 201: bound. The assumption stays until the watch event confirms it.
- 409 Conflict: already bound (by another scheduler, a human, or an earlier attempt of ours that
  timed out yet succeeded). Forget the assumption and drop the pod; the watch event tells where it
  went. The apiserver refuses a second binding, so a pod can never be bound twice.
- 404 Not Found: the pod is gone. Forget and drop.
- 429, 5xx, timeouts, connection errors, anything else: forget and retry after a backoff.

Results are not acted on here: they are handed back (`drain`) to the coordinator's loop, which owns
the ledger and the queue. A status patch for a pod and a later binding of the same pod are
ordered (the binding waits for the patch) so a slow PodScheduled=False can never land on a pod
that is already bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote

from ..model.types import Gang, PodInfo
from .rest import RawClient, TokenBucket, finish, request, rfc3339

log = logging.getLogger(__name__)

BOUND = "bound"
CONFLICT = "conflict"  # 409: someone bound it already
GONE = "gone"  # 404: deleted
RETRY = "retry"  # transient: requeue with backoff
# A PodScheduled=False patch (and its FailedScheduling event) is posted once per verdict (the
# coordinator does not re-post an unchanged one), so one that fails transiently (the apiserver
# restarting: a graceful stop alone takes a minute) is retried here until it lands, the pod is
# bound or given a newer verdict, or the binder closes; waits grow to this many seconds. A pod's
# verdicts go out one at a time, and one superseded before it went out is not sent at all.
VERDICT_RETRY_MAX_S = 10.0
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"


def retry_transient(call: Callable[[], None], *, deadline_s: float | None = None,
                    first_s: float = 0.5, max_s: float = VERDICT_RETRY_MAX_S,
                    closed: threading.Event | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Run `call` until it succeeds, fails for good (404, 409: see `classify`), `deadline_s` (if
    any) has passed or `closed` is set; waits first_s, 2*first_s, ... (at most max_s) between
    tries. Re-raises the last failure."""
    t0 = time.monotonic()
    wait = first_s
    while True:
        try:
            call()
            return
        except Exception as exc:  # classified below
            late = deadline_s is not None and time.monotonic() - t0 + wait > deadline_s
            if classify(exc)[0] != RETRY or late:
                raise
            if closed is not None:
                if closed.wait(wait):
                    raise
            else:
                sleep(wait)
            wait = min(wait * 2, max_s)


@dataclass(slots=True)
class BindResult:
    pod: PodInfo
    node: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0


@dataclass(slots=True)
class EvictResult:
    """How a victim's eviction ended: EVICTED (deleted, already gone, or replaced under its name),
    or the failure's class when it failed for good (the preemptor is then released)."""

    victim: PodInfo
    preemptor: PodInfo
    node: str
    outcome: str
    detail: str = ""


EVICTED = "evicted"
EVICT_DEADLINE_S = 60.0  # a victim's deletion retried while transient for this long


@dataclass(slots=True)
class VolumeWrite:
    """One write of upstream VolumeBinding's PreBind: a merge patch of a PersistentVolume
    (claimRef) or a claim (selected-node), its resourceVersion the precondition."""

    path: str
    body: dict


@dataclass(slots=True)
class VolumeWriteResult:
    """How the volume writes for a pod ended: `error` empty when every one was accepted."""

    pod: PodInfo
    node: str
    error: str = ""


def classify(exc: BaseException) -> tuple[str, str]:
    """(outcome, detail) for an exception raised by a binding call."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        reason = getattr(exc, "reason", "") or ""
        if status == 409:
            return CONFLICT, f"409 {reason}"
        if status == 404:
            return GONE, f"404 {reason}"
        return RETRY, f"{status} {reason}"
    return RETRY, f"{type(exc).__name__}: {exc}"


def raw_poster(core: Any, connections: int = 2, warm: int = 0) -> Any:
    """A poster for a client API object (CoreV1Api, EventsV1Api): pipelined connections of our
    own (api/pipeline.py), `warm` of them opened at once, or the client's urllib3 pool
    (`rest.RawClient`) when the client goes through a proxy; None when `core` is not a real client
    (test doubles)."""
    api = getattr(core, "api_client", None)
    if api is None or not hasattr(getattr(api, "rest_client", None), "pool_manager"):
        return None
    if getattr(api.configuration, "proxy", None):
        return RawClient(api)
    from .pipeline import PipelinedPoster

    poster = PipelinedPoster(api, connections)
    if warm:
        poster.warm(warm)
    return poster


def answer_error(status: int, reason: str) -> Exception | None:
    """The ApiException a client call would raise for this answer; None for a 2xx."""
    if 200 <= status <= 299:
        return None
    from kubernetes.client.exceptions import ApiException

    return ApiException(status=status, reason=reason)


def now_rfc3339() -> str:
    return rfc3339()


QUIET_S = 0.2  # a binder answered nothing for this long is idle (Scheduled events may go)


class Binder:
    """Issues pods/binding and PodScheduled=False status patches. `core` is a CoreV1Api whose
    ApiClient has a connection pool at least `concurrency` wide."""

    def __init__(self, core: Any, *, concurrency: int, qps: float, burst: int,
                 events: Any = None, request_timeout: float = 30.0,
                 on_result: Callable[[], None] | None = None) -> None:
        self.core = core
        self.events = events  # an EventRecorder, or None
        self.limiter = TokenBucket(qps, burst)
        self.request_timeout = request_timeout
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="binder")
        self._results: deque[BindResult] = deque()
        self._evictions: deque[EvictResult] = deque()
        self._volume_writes: deque[VolumeWriteResult] = deque()
        # uid -> its latest verdict (status patch, its cancel event, the nominatedNodeName it
        # writes): a later binding waits for the patch, and cancels its retries first
        self._status: dict[str, tuple[Future, threading.Event, str | None]] = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self.on_result = on_result  # called after each outcome (wakes the coordinator's loop)
        self._closed = threading.Event()
        # Up to one connection per binding in flight: the apiserver answers a connection's requests
        # one after the other, so fewer would cap bindings at (connections / latency). All are
        # opened at start: a batch's bindings go out at once, and a TLS handshake in their way
        # costs ~3 ms of CPU, client and apiserver together (see api/pipeline.py).
        self._raw = raw_poster(core, connections=concurrency, warm=concurrency)
        # answered on the poster's thread, no binder thread blocked per binding (see bind)
        self._pipe = self._raw if hasattr(self._raw, "submit") else None
        self.concurrency = concurrency
        self._piped = 0  # pipelined bindings in flight (at most `concurrency`)
        self._waiting: deque[tuple[PodInfo, str]] = deque()  # for a free slot
        self._last_done = -1e9  # monotonic time of the last binding's outcome

    def busy(self) -> bool:
        """Bindings in flight, or answered within QUIET_S (a burst's batches leave short gaps with
        none in flight). Read without the lock: a stale answer only moves an event by a poll."""
        return self._in_flight > 0 or time.monotonic() - self._last_done < QUIET_S

    # ------------------------------------------------------------------ binding
    def bind(self, pod: PodInfo, node: str) -> None:
        with self._lock:
            self._in_flight += 1
            before = self._status.pop(pod.uid, None)
            if before is not None:
                before[1].set()  # bound now: a verdict still being retried is stale
        if before is None and self._pipe is not None and self.limiter.try_acquire() == 0.0:
            # the common case: no status patch to wait for and a token free, so nothing blocks;
            # at most `concurrency` in flight, the rest wait their turn in order
            with self._lock:
                if self._piped >= self.concurrency:
                    self._waiting.append((pod, node))
                    return
                self._piped += 1
            self._send(pod, node)
            return
        self._pool.submit(self._bind, pod, node, before[0] if before is not None else None)

    def _send(self, pod: PodInfo, node: str) -> None:
        t0 = time.monotonic()
        fut = self._pipe.submit(_binding_path(pod), _binding_body(pod, node), self.request_timeout)
        fut.add_done_callback(lambda f: self._answered(pod, node, t0, f))

    def _answered(self, pod: PodInfo, node: str, t0: float, fut: Future) -> None:
        """A pipelined binding's answer (on the poster's thread); the next waiting one goes out."""
        with self._lock:
            nxt = self._waiting.popleft() if self._waiting else None
            if nxt is None:
                self._piped -= 1
        if nxt is not None:
            self._send(*nxt)
        exc = fut.exception()
        if exc is None:
            status, reason, _body = fut.result()
            exc = answer_error(status, reason)
        if exc is None:
            result = BindResult(pod, node, BOUND, seconds=time.monotonic() - t0)
        else:
            outcome, detail = classify(exc)
            result = BindResult(pod, node, outcome, detail, time.monotonic() - t0)
        self._done(result)

    def _done(self, result: BindResult) -> None:
        self._last_done = time.monotonic()
        if result.outcome == BOUND and self.events is not None:
            self.events.scheduled(result.pod, result.node)
        with self._lock:
            self._in_flight -= 1
            self._results.append(result)
        if self.on_result is not None:
            self.on_result()

    def _bind(self, pod: PodInfo, node: str, before: Future | None) -> None:
        t0 = time.monotonic()
        try:
            if before is not None:
                try:
                    before.result(timeout=self.request_timeout + 1.0)
                except Exception:  # noqa: BLE001 - a failed patch must not block the binding
                    pass
            self.limiter.acquire()
            body = _binding_body(pod, node)
            if self._raw is not None:
                self._raw.post(_binding_path(pod), body, self.request_timeout)
            else:
                resp = self.core.create_namespaced_pod_binding(
                    pod.name, pod.namespace, body, _preload_content=False,
                    _request_timeout=self.request_timeout)
                finish(resp)
            result = BindResult(pod, node, BOUND, seconds=time.monotonic() - t0)
        except BaseException as exc:  # noqa: BLE001 - every failure is classified and reported
            outcome, detail = classify(exc)
            result = BindResult(pod, node, outcome, detail, time.monotonic() - t0)
        self._done(result)

    def drain(self) -> list[BindResult]:
        return _drain(self._results)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # --------------------------------------------------------------- preemption
    def evict(self, victim: PodInfo, preemptor: PodInfo, node: str, group: Gang | None = None) -> None:
        """Preempt `victim` as upstream does: its DisruptionTarget condition (reason
        PreemptionByScheduler), then its deletion with its own grace period (the uid a
        precondition: a pod recreated under the name is left alone), then a `Preempted` event.
        For a gang (`group`: its PodGroup) the condition and the event name the group, as
        upstream's do. The outcome comes back through `drain_evictions`."""
        self._pool.submit(self._evict, victim, preemptor, node, group)

    def _evict(self, victim: PodInfo, preemptor: PodInfo, node: str, group: Gang | None) -> None:
        cond = {"status": {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
            "message": f"{preemptor.scheduler_name}: preempting to accommodate a higher priority "
                       f"{'pod' if group is None else 'podgroup'}",
            "lastTransitionTime": now_rfc3339()}]}}
        delete = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": victim.uid}}
        path = f"/api/v1/namespaces/{quote(victim.namespace, safe='')}/pods/{quote(victim.name, safe='')}"

        outcome, detail, deleted = EVICTED, "", False
        try:
            retry_transient(lambda: self._write("PATCH", path + "/status", cond, STRATEGIC_MERGE_PATCH),
                            deadline_s=EVICT_DEADLINE_S, closed=self._closed)
            retry_transient(lambda: self._write("DELETE", path, delete), deadline_s=EVICT_DEADLINE_S,
                            closed=self._closed)
            deleted = True
        except Exception as exc:  # noqa: BLE001 - classified: gone (404), or replaced (409 on the uid)
            outcome, detail = classify(exc)
            if outcome in (GONE, CONFLICT):
                outcome = EVICTED  # as good as deleted: the watch shows this uid gone
            else:
                log.warning("preemption of %s/%s for %s/%s failed: %s", victim.namespace, victim.name,
                            preemptor.namespace, preemptor.name, detail)
        if deleted and self.events is not None:  # as upstream: no event for a pod already gone
            self.events.preempted(victim, preemptor, node, group)
        with self._lock:
            self._evictions.append(EvictResult(victim, preemptor, node, outcome, detail))
        if self.on_result is not None:
            self.on_result()

    def _write(self, method: str, path: str, body: dict, content_type: str = "application/json") -> None:
        """One rate-limited request that must succeed (raises as `classify` expects): on the
        bindings' open connections when there are, else through the client."""
        self.limiter.acquire()
        if self._raw is not None:
            self._raw.post(path, body, self.request_timeout, method=method, content_type=content_type)
            return
        finish(request(self.core.api_client, method, path, body, timeout=self.request_timeout,
                       content_type=content_type))

    # ------------------------------------------------------------------ PreBind
    def write_volumes(self, pod: PodInfo, node: str, writes: list[VolumeWrite]) -> None:
        """PreBind for the pod's unbound claims: every write in order, transient failures retried
        for a while, the first lasting failure ending it (writes already made stay, as upstream's).
        The outcome comes back through `drain_volume_writes`."""
        self._pool.submit(self._write_volumes, pod, node, writes)

    def _write_volumes(self, pod: PodInfo, node: str, writes: list[VolumeWrite]) -> None:
        error = ""
        for w in writes:
            try:
                retry_transient(lambda w=w: self._write("PATCH", w.path, w.body, MERGE_PATCH),
                                deadline_s=EVICT_DEADLINE_S, closed=self._closed)
            except Exception as exc:  # noqa: BLE001 - a conflict (the object moved on) or a refusal
                error = f"binding volumes: {w.path}: {classify(exc)[1]}"
                break
        with self._lock:
            self._volume_writes.append(VolumeWriteResult(pod, node, error))
        if self.on_result is not None:
            self.on_result()

    def drain_volume_writes(self) -> list[VolumeWriteResult]:
        return _drain(self._volume_writes)

    def drain_evictions(self) -> list[EvictResult]:
        return _drain(self._evictions)

    # ------------------------------------------------------------ unschedulable
    def mark_unschedulable(self, pod: PodInfo, message: str, nominated_node: str | None = None) -> None:
        """PodScheduled=False/Unschedulable with `message`, plus a FailedScheduling event; with
        `nominated_node`, status.nominatedNodeName too (a preemptor's, '' clears it)."""
        cancel = threading.Event()
        with self._lock:
            old = self._status.get(pod.uid)
            if old is not None:
                old[1].set()  # a newer verdict replaces one still being retried, or not yet sent
                if nominated_node is None:
                    nominated_node = old[2]  # (which it then writes in its place)
            # after the older one has finished: one already on the wire must not land after this
            # one, nor after a binding that waits for this one
            fut = self._pool.submit(self._patch_status, pod, message, cancel, old[0] if old else None,
                                    nominated_node)
            self._status[pod.uid] = (fut, cancel, nominated_node)
            if self._closed.is_set():
                cancel.set()
        fut.add_done_callback(lambda f, uid=pod.uid: self._status_done(uid, f))

    def _status_done(self, uid: str, fut: Future) -> None:
        with self._lock:
            entry = self._status.get(uid)
            if entry is not None and entry[0] is fut:
                del self._status[uid]

    def _patch_status(self, pod: PodInfo, message: str, cancel: threading.Event,
                      before: Future | None = None, nominated_node: str | None = None) -> None:
        if before is not None:
            try:
                before.result(timeout=self.request_timeout + 1.0)
            except Exception:  # noqa: BLE001 - its outcome does not matter, only that it is over
                pass
        if cancel.is_set() and not self._closed.is_set():
            return  # superseded (a newer verdict, a binding) before it was sent: as upstream merges
            # queued status updates of one pod (SchedulerAsyncAPICalls), only the latest is written
        body = {"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastTransitionTime": now_rfc3339()}]}}
        if nominated_node is not None:
            body["status"]["nominatedNodeName"] = nominated_node or None

        def patch() -> None:
            self.limiter.acquire()
            if self._raw is not None:  # the bindings' open connections: no handshake per verdict
                self._raw.post(_status_path(pod), body, self.request_timeout, method="PATCH",
                               content_type=STRATEGIC_MERGE_PATCH)
                return
            resp = self.core.patch_namespaced_pod_status(
                pod.name, pod.namespace, body, _preload_content=False,
                _content_type=STRATEGIC_MERGE_PATCH, _request_timeout=self.request_timeout)
            finish(resp)

        try:
            # posted once per verdict: a transient failure must not lose it (see VERDICT_RETRY_MAX_S)
            retry_transient(patch, closed=cancel)
        except Exception as exc:  # noqa: BLE001 - best effort: the pod stays in the queue anyway
            log.warning("status of %s/%s not updated: %s", pod.namespace, pod.name, classify(exc)[1])
        if self.events is not None:
            self.events.failed_scheduling(pod, message)

    def set_pod_group_condition(self, namespace: str, name: str, status: bool, reason: str, message: str) -> None:
        """The PodGroup's PodGroupInitiallyScheduled condition (best effort, retried while transient)."""
        body = {"status": {"conditions": [{
            "type": "PodGroupInitiallyScheduled", "status": "True" if status else "False", "reason": reason,
            "message": message[:32768], "lastTransitionTime": now_rfc3339()}]}}
        path = (f"/apis/scheduling.k8s.io/v1beta1/namespaces/{quote(namespace, safe='')}/podgroups/"
                f"{quote(name, safe='')}/status")

        def run() -> None:
            try:
                retry_transient(lambda: self._write("PATCH", path, body, STRATEGIC_MERGE_PATCH), closed=self._closed)
            except Exception as exc:  # noqa: BLE001 - a condition is information, never a reason to stop
                log.warning("PodGroup %s/%s condition not updated: %s", namespace, name, classify(exc)[1])

        self._pool.submit(run)

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self._closed.set()  # verdicts being retried give up: a stopping scheduler must not hang
            for _fut, cancel, _node in self._status.values():
                cancel.set()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if self._raw is not None and hasattr(self._raw, "close"):
            deadline = time.monotonic() + (self.request_timeout if wait else 0.0)
            while self.in_flight and time.monotonic() < deadline:  # pipelined bindings in flight
                time.sleep(0.05)
            self._raw.close()


def _drain(results: deque) -> list:
    """Everything answered so far, oldest first (the worker threads append as the loop takes)."""
    out = []
    while True:
        try:
            out.append(results.popleft())
        except IndexError:
            return out


def _status_path(pod: PodInfo) -> str:
    return f"/api/v1/namespaces/{quote(pod.namespace, safe='')}/pods/{quote(pod.name, safe='')}/status"


def _binding_path(pod: PodInfo) -> str:
    return f"/api/v1/namespaces/{quote(pod.namespace, safe='')}/pods/{quote(pod.name, safe='')}/binding"


def _binding_body(pod: PodInfo, node: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Binding",
        # the uid is a precondition: a pod recreated under the same name is not bound
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
