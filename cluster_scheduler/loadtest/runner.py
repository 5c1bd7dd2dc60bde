"""Drive one workload against one cluster and measure what the scheduler did, from the outside.

Everything is observed the way a user would see it: pods are created through the API and their
fate is read from a pod watch (raw JSON, orjson). A pod's creation time is the client-side
monotonic time at which its create call returned (metadata.creationTimestamp has 1 s resolution),
its bind time the arrival of the first watch event that carries spec.nodeName. Both schedulers and
the ceiling are measured with the same code, so their ratio is fair even where absolute figures
include the load generator's own overhead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import orjson

from cluster_scheduler.loadtest.kube import CallError, ResourcePaths, call, call_json, create, iter_lines
from cluster_scheduler.workload import (DEFAULT_BARRIER_TIMEOUT, Barrier, Churn, CreateNodes, CreateObjects,
                                        CreatePods, DeletePods, UpdateObjects, Workload)

PROBE_NAMESPACE = "loadtest-probe"
WATCH_TIMEOUT_S = 240  # server-side watch timeout; the watcher resumes from the last resourceVersion


# ---- pod outcomes -------------------------------------------------------------------------------


class PodTracker:
    """What the load test knows about its pods: when each create returned, when each was first
    seen bound, which are reported Unschedulable. Fed by the creating threads and the watch;
    barriers wait on it. Only pods this run created count (`created`), whatever else the watch sees.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.created: dict[str, float] = {}
        self.bound_at: dict[str, float] = {}  # every pod of our scheduler seen bound (maybe not ours)
        self.node_of: dict[str, str] = {}
        self.unschedulable: set[str] = set()  # (gated pods included: see on_pod)
        self.gated: set[str] = set()
        self.create_errors: dict[str, str] = {}
        self.done_created = 0  # created pods that are bound or unschedulable
        self.bound_created = 0
        self.unsched_created = 0
        self.late_relist_binds = 0  # binds first seen in a relist, not a watch event: time is late
        # preemption: pods of this run deleted while bound (victims), and pods waiting for victims
        # (Unschedulable with status.nominatedNodeName: not done yet)
        self.deleted_at: dict[str, float] = {}
        self.deleted_pods: dict[str, dict] = {}  # as the DELETED event showed them (for the check)
        self.preempted_created = 0
        self.nominated: set[str] = set()
        # pods the workload itself deletes (deletePods, churn): done, neither bound nor preempted
        self.withdrawn: set[str] = set()

    # called by creators
    def on_created(self, key: str, t: float) -> None:
        with self.cond:
            self.created[key] = t
            if key in self.bound_at:
                self.done_created += 1
                self.bound_created += 1
            elif key in self.unschedulable:
                self.done_created += 1
                self.unsched_created += 1
            self.cond.notify_all()

    def on_create_error(self, key: str, message: str) -> None:
        with self.cond:
            self.create_errors[key] = message
            self.cond.notify_all()

    def withdraw(self, key: str) -> None:
        """The workload is about to delete this pod: it is done, and whatever happens to it next
        (bound, deleted) is not the scheduler's outcome."""
        with self.cond:
            if key in self.withdrawn or key in self.deleted_at:
                return
            self.withdrawn.add(key)
            if key in self.created:
                if key in self.bound_at:
                    self.bound_created -= 1
                elif key in self.unschedulable:
                    self.unsched_created -= 1
                else:
                    self.done_created += 1
            self.cond.notify_all()

    # called by the watch
    def on_deleted(self, pod: dict[str, Any], t: float) -> None:
        """A pod deleted: one of ours that was bound, and that the workload did not delete itself,
        was preempted; it stays done, as preempted instead of bound."""
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        with self.cond:
            if key in self.deleted_at or key not in self.bound_at or key in self.withdrawn:
                return
            self.deleted_at[key] = t
            pod.get("metadata", {}).pop("managedFields", None)
            self.deleted_pods[key] = pod
            if key in self.created:
                self.bound_created -= 1
                self.preempted_created += 1
            self.cond.notify_all()

    def on_pod(self, pod: dict[str, Any], t: float, from_list: bool = False) -> None:
        meta = pod.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        node = (pod.get("spec") or {}).get("nodeName")
        if not node and (pod.get("status") or {}).get("nominatedNodeName"):
            with self.cond:  # a preemptor waiting for its victims: not done, even if Unschedulable
                if key in self.withdrawn:
                    return
                self.nominated.add(key)
                if key in self.unschedulable:
                    self.unschedulable.discard(key)
                    if key in self.created:
                        self.unsched_created -= 1
                        self.done_created -= 1
            return
        with self.cond:
            if key in self.withdrawn:
                return
            if node:
                if key in self.bound_at:
                    return
                self.bound_at[key] = t
                self.node_of[key] = node
                if from_list:
                    self.late_relist_binds += 1
                was_unsched = key in self.unschedulable
                self.unschedulable.discard(key)
                self.gated.discard(key)
                if key in self.created:
                    self.bound_created += 1
                    if was_unsched:
                        self.unsched_created -= 1
                    else:
                        self.done_created += 1
                self.cond.notify_all()
                return
            for c in (pod.get("status") or {}).get("conditions") or ():
                if c.get("type") != "PodScheduled" or c.get("status") != "False":
                    continue
                # any PodScheduled=False is an attempt (scheduler_perf's barriers): a gated pod
                # (the apiserver says so at creation) is reported apart; another reason than
                # Unschedulable (kube-scheduler's SchedulerError) counts as unschedulable here,
                # and the placement check flags it
                if c.get("reason") == "SchedulingGated":
                    if key not in self.unschedulable:
                        self.gated.add(key)
                else:
                    self.gated.discard(key)
                if key in self.unschedulable:
                    return
                self.unschedulable.add(key)
                if key in self.created:
                    self.unsched_created += 1
                    self.done_created += 1
                self.cond.notify_all()
                return

    def wait_done(self, keys: list[str], until_bound: bool, timeout: float,
                  stop: threading.Event | None = None, at_least: int = 0) -> bool:
        """Until each of `keys` (or `at_least` of them) is bound, preempted or withdrawn (or,
        unless `until_bound`, reported Unschedulable): a narrowed barrier."""
        deadline = time.monotonic() + timeout
        need_left = len(keys) - at_least if at_least else 0  # how many may stay not done
        with self.cond:
            while True:
                keys = [k for k in keys if not (k in self.bound_at or k in self.deleted_at or k in self.withdrawn
                                                or (not until_bound and k in self.unschedulable))]
                if len(keys) <= need_left:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self.cond.wait(min(left, 0.5))

    def counts(self) -> tuple[int, int, int, int]:
        """(created, bound, unschedulable, create errors) for the progress line."""
        with self.cond:
            return len(self.created), self.bound_created, self.unsched_created, len(self.create_errors)

    def wait_settled(self, expected: int, timeout: float, stop: threading.Event | None = None) -> bool:
        """Until every pod created so far (`expected` = attempts minus errors) is done."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.done_created < expected:
                left = deadline - time.monotonic()
                if left <= 0 or (stop is not None and stop.is_set()):
                    return False
                self.cond.wait(min(left, 0.5))
            return True


# ---- watches ------------------------------------------------------------------------------------


class ListWatcher:
    """List, then watch, one resource on a daemon thread (raw JSON, orjson), resuming from the last
    resourceVersion and relisting after 410 Gone. `handle(kind, obj, t)` sees every object: kind
    is LISTED for the list's items, else the watch event type (ADDED, MODIFIED, DELETED)."""

    def __init__(self, list_fn: Callable[..., Any], handle: Callable[[str, dict, float], None], *,
                 field_selector: str | None = None, name: str = "watch") -> None:
        self.list_fn = list_fn
        self.handle = handle
        self.kwargs = {"field_selector": field_selector} if field_selector else {}
        self.stop_event = threading.Event()
        self.synced = threading.Event()
        self.error: str | None = None
        self.events = 0
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 30.0) -> "ListWatcher":
        self._thread.start()
        if not self.synced.wait(timeout):
            raise RuntimeError(f"{self._thread.name} did not start within {timeout:.0f}s: {self.error}")
        return self

    def stop(self) -> None:
        self.stop_event.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()  # unblocks a read in the watch thread (urllib3 >= 2.3)
            except Exception:  # noqa: BLE001 - already closed, or an older urllib3
                pass
        self._thread.join(timeout=5)

    def _list(self) -> str:
        resp = self.list_fn(_preload_content=False, **self.kwargs)
        try:
            body = orjson.loads(resp.data)
        finally:
            resp.release_conn()
        now = time.monotonic()
        for obj in body.get("items") or ():
            self.handle("LISTED", obj, now)
        return body["metadata"]["resourceVersion"]

    def _run(self) -> None:
        rv: str | None = None
        failures = 0
        while not self.stop_event.is_set():
            try:
                if rv is None:
                    rv = self._list()
                    self.synced.set()
                resp = self.list_fn(
                    watch=True, resource_version=rv, allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_TIMEOUT_S, _preload_content=False,
                    _request_timeout=(10, WATCH_TIMEOUT_S + 30), **self.kwargs)
                self._resp = resp
                try:
                    for line in iter_lines(resp):
                        t = time.monotonic()
                        ev = orjson.loads(line)
                        kind = ev.get("type")
                        obj = ev.get("object") or {}
                        if kind == "ERROR":
                            if obj.get("code") == 410:
                                rv = None  # too old: relist
                            else:
                                self.error = str(obj.get("message"))
                            break
                        new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                        if new_rv:
                            rv = new_rv
                        if kind == "BOOKMARK":
                            continue
                        self.events += 1
                        self.handle(kind, obj, t)
                finally:
                    self._resp = None
                    resp.release_conn()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep watching through any transient failure
                if self.stop_event.is_set():
                    return
                failures += 1
                self.error = f"{type(exc).__name__}: {exc}"
                if getattr(exc, "status", None) == 410:
                    rv = None
                time.sleep(min(0.1 * failures, 2.0))


def pod_watcher(api: Any, scheduler_name: str, tracker: PodTracker,
                on_unbound: Callable[[str, str], None] | None = None) -> ListWatcher:
    """The pods of one scheduler (field selector spec.schedulerName) into `tracker`; `on_unbound`
    sees every new pod without a node (the ceiling binder's input)."""
    from kubernetes import client

    def handle(kind: str, pod: dict, t: float) -> None:
        if kind == "DELETED":
            tracker.on_deleted(pod, t)
            return
        tracker.on_pod(pod, t, from_list=kind == "LISTED")
        if on_unbound is not None and kind in ("ADDED", "LISTED") and not pod["spec"].get("nodeName"):
            meta = pod["metadata"]
            if meta.get("namespace") != PROBE_NAMESPACE:
                on_unbound(meta["namespace"], meta["name"])

    return ListWatcher(client.CoreV1Api(api).list_pod_for_all_namespaces, handle,
                       field_selector=f"spec.schedulerName={scheduler_name}", name="pod-watch")


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class PhaseLog:
    """What happened per op, for the report (seconds are relative to the run's start)."""

    op: str
    count: int = 0
    started_s: float = 0.0
    took_s: float = 0.0
    settled: bool | None = None  # barriers only


@dataclass
class RunData:
    """Raw measurements of one run; `report.summarise` turns them into figures."""

    created: dict[str, float]
    bound_at: dict[str, float]
    node_of: dict[str, str]
    unschedulable: set[str]
    create_errors: dict[str, str]
    phases: list[PhaseLog] = field(default_factory=list)
    t_start: float = 0.0
    t_pods_start: float | None = None
    t_end: float = 0.0
    barrier_timeouts: int = 0
    late_relist_binds: int = 0
    t_scheduler_start: float | None = None  # drain mode: when the scheduler was started
    watch_error: str | None = None
    deleted_at: dict[str, float] = field(default_factory=dict)  # preempted pods: when seen deleted
    deleted_pods: dict[str, dict] = field(default_factory=dict)  # preempted pods, as last seen
    withdrawn: set[str] = field(default_factory=set)  # pods the workload deleted itself
    gated: set[str] = field(default_factory=set)  # pods held by scheduling gates (in unschedulable too)
    op_of: dict[str, int] = field(default_factory=dict)  # pod key -> index of its createPods op in phases
    # the createPods ops (indexes in phases) whose pods are timed; None: all of them
    measured_ops: set[int] | None = None


def _create_all(items: Iterator[tuple[str, Callable[[], Any]]], count: int, concurrency: int,
                rate: float, on_done: Callable[[str, float], None],
                on_error: Callable[[str, str], None], stop: threading.Event) -> int:
    """Run the calls with `concurrency` threads, call i not before start + i/rate when rate > 0.
    `items` is consumed lazily (100k pod manifests need not sit in memory at once). Returns the
    number of calls made."""
    lock = threading.Lock()
    state = {"i": 0}
    t0 = time.monotonic()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                try:
                    key, fn = next(items)
                except StopIteration:
                    return
                i = state["i"]
                state["i"] = i + 1
            if rate > 0:
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                fn()
            except CallError as exc:
                on_error(key, str(exc))
                continue
            on_done(key, time.monotonic())

    threads = [threading.Thread(target=worker, name=f"create-{n}", daemon=True)
               for n in range(max(1, min(concurrency, count)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return state["i"]


def _wait_until(t: float, stopped: Callable[[], bool]) -> bool:
    """Sleep until monotonic time `t`; False if `stopped()` turned true first."""
    while (left := t - time.monotonic()) > 0 and not stopped():
        time.sleep(min(left, 0.2))
    return not stopped()


def delete_pods(core: Any, tracker: PodTracker, op: DeletePods, stopped: Callable[[], bool]) -> int:
    """scheduler_perf's deletePods: list the namespace's pods matching the labels, then delete
    them `op.rate` per second (or in one delete-collection call); each is withdrawn first."""
    from urllib.parse import quote

    selector = ",".join(f"{k}={v}" for k, v in sorted(op.labels.items()))
    path = f"/api/v1/namespaces/{op.namespace}/pods"
    query = f"?labelSelector={quote(selector)}" if selector else ""
    names = [p["metadata"]["name"] for p in call_json(core, "GET", path + query).get("items") or ()]
    if op.rate <= 0:
        for name in names:
            tracker.withdraw(f"{op.namespace}/{name}")
        call_json(core, "DELETE", path + query)
        return len(names)
    done = 0
    t_next = time.monotonic()
    for name in names:
        t_next += 1.0 / op.rate
        if not _wait_until(t_next, stopped):
            break
        tracker.withdraw(f"{op.namespace}/{name}")
        call_json(core, "DELETE", f"{path}/{name}", ok_statuses=(404,))
        done += 1
    return done


def update_objects(core: Any, paths: ResourcePaths, op: UpdateObjects, scheduler_name: str,
                   stopped: Callable[[], bool]) -> int:
    """scheduler_perf's updateAny: each object replaced (through `op.subresources` where given),
    then its status, `op.rate` per second, strict field validation; a refused update stops the
    run, as upstream's fails the case. A pod keeps the node it is bound to (the binding is the
    scheduler's business: the ceiling's binder ignores every constraint, so its pods are bound
    where the templates do not expect them). Returns the objects updated."""
    done = 0
    t_next = time.monotonic()
    for obj in op.objects:
        if op.rate > 0:
            t_next += 1.0 / op.rate
            if not _wait_until(t_next, stopped):
                break
        elif stopped():
            break
        body = orjson.loads(orjson.dumps(obj))
        item = f"{paths.path(body)}/{body['metadata']['name']}"
        try:
            if body.get("kind") == "Pod":
                body.setdefault("spec", {})["schedulerName"] = scheduler_name
                live = call_json(core, "GET", item, ok_statuses=(404,))
                node = (live.get("spec") or {}).get("nodeName")
                if node:
                    body["spec"]["nodeName"] = node
                else:
                    body["spec"].pop("nodeName", None)
            call_json(core, "PUT", "/".join((item, *op.subresources)) + "?fieldValidation=Strict", body)
            call_json(core, "PUT", f"{item}/status?fieldValidation=Strict", body)
        except CallError as exc:
            raise RuntimeError(f"updateAny: {body['kind']} {body['metadata']['name']} could not be "
                               f"updated: {exc}") from None
        done += 1
    return done


def churn(core: Any, paths: ResourcePaths, tracker: PodTracker, op: Churn, scheduler_name: str,
          stopped: Callable[[], bool]) -> None:
    """scheduler_perf's churn, until `stopped()`: each tick creates one object per template, or
    (recreate mode) deletes the one created `number` ticks before in its slot. A failed call is
    skipped, as upstream's."""
    slots: list[list[str | None]] = [[None] * max(op.number, 1) for _ in op.templates]
    ticks = 0
    t_next = time.monotonic()
    while True:
        t_next += op.interval
        if not _wait_until(t_next, stopped):
            return
        for i, template in enumerate(op.templates):
            slot = ticks % len(slots[i])
            try:
                if op.mode == "recreate" and slots[i][slot] is not None:
                    obj_path = slots[i][slot]
                    slots[i][slot] = None
                    if "/pods/" in obj_path:
                        tracker.withdraw(obj_path.split("/namespaces/", 1)[1].replace("/pods/", "/"))
                    call_json(core, "DELETE", obj_path, ok_statuses=(404,))
                    continue
                body = orjson.loads(orjson.dumps(template))
                body.setdefault("metadata", {})["namespace"] = op.namespace
                if body.get("kind") == "Pod":
                    body.setdefault("spec", {})["schedulerName"] = scheduler_name
                collection = paths.path(body)
                slots[i][slot] = f"{collection}/{call_json(core, 'POST', collection, body)['metadata']['name']}"
            except Exception:  # noqa: BLE001 - churn is background load: a failed call is skipped
                continue
        ticks += 1
        if op.mode == "create" and op.number and ticks >= op.number:
            return


def write_bound(core: Any, volume: dict | None, claim: dict) -> None:
    """Create a claim and its pre-bound volume already bound (claimRef with the claim's uid, both
    phases Bound through the status subresource), as scheduler_perf's volume op does."""
    claim_path = f"/api/v1/namespaces/{claim['metadata']['namespace']}/persistentvolumeclaims/{claim['metadata']['name']}"
    bound = {"status": {"phase": "Bound"}}
    patch = "application/merge-patch+json"
    made = (call_json(core, "POST", claim_path.rsplit("/", 1)[0], claim, ok_statuses=(409,))
            or call_json(core, "GET", claim_path))  # (a retried POST answers 409: read it back)
    call_json(core, "PATCH", f"{claim_path}/status", bound, content_type=patch)
    if volume is not None:
        uid = (made.get("metadata") or {}).get("uid") or ""
        volume = {**volume, "spec": {**volume["spec"], "claimRef": {**volume["spec"]["claimRef"], "uid": uid}}}
        call_json(core, "POST", "/api/v1/persistentvolumes", volume, ok_statuses=(409,))
        call_json(core, "PATCH", f"/api/v1/persistentvolumes/{volume['metadata']['name']}/status", bound,
                  content_type=patch)


def wait_claims_bound(core: Any, namespace: str, names: set[str], stop: threading.Event,
                      timeout: float = DEFAULT_BARRIER_TIMEOUT) -> None:
    """Wait until the PV controller has bound every claim in `names` (phase Bound)."""
    deadline = time.monotonic() + timeout
    left = set(names)
    while left and not stop.is_set():
        items = call_json(core, "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims").get("items") or ()
        left -= {c["metadata"]["name"] for c in items if (c.get("status") or {}).get("phase") == "Bound"}
        if left and time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} pre-bound claim(s) in {namespace} not bound after {timeout:.0f} s "
                               f"(is the PV controller running?), e.g. {sorted(left)[0]}")
        if left:
            time.sleep(0.5)


def ensure_namespace(core: Any, name: str) -> None:
    create(core, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
           ok_statuses=(409,))


def probe_scheduler(api: Any, scheduler_name: str, timeout: float,
                    alive: Callable[[], bool] | None = None) -> float:
    """Wait until the scheduler has acted on a pod: bound it, or marked it Unschedulable (when
    there are no nodes yet). Returns the seconds it took; the probe pod is force-deleted after so
    it takes nothing from the workload. Raises TimeoutError if nothing happens in `timeout`."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    ensure_namespace(core, PROBE_NAMESPACE)
    name = f"probe-{scheduler_name}-{int(time.time() * 1000) % 10**9}"
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": PROBE_NAMESPACE},
           "spec": {"schedulerName": scheduler_name,
                    "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                    "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}}
    t0 = time.monotonic()
    create(core, f"/api/v1/namespaces/{PROBE_NAMESPACE}/pods", pod)
    try:
        while True:
            resp = core.read_namespaced_pod(name, PROBE_NAMESPACE, _preload_content=False)
            try:
                obj = orjson.loads(resp.data)
            finally:
                resp.release_conn()
            if obj.get("spec", {}).get("nodeName"):
                break
            if any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                   for c in obj.get("status", {}).get("conditions") or ()):
                break
            if alive is not None and not alive():
                raise RuntimeError(f"scheduler {scheduler_name!r} exited before acting on the probe pod")
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"scheduler {scheduler_name!r} did not act on probe pod "
                                   f"{PROBE_NAMESPACE}/{name} within {timeout:.0f}s")
            time.sleep(0.2)
        return time.monotonic() - t0
    finally:
        call(core.delete_namespaced_pod, name, PROBE_NAMESPACE, grace_period_seconds=0,
             ok_statuses=(404,))


def run_workload(workload: Workload, api: Any, scheduler_name: str, *,
                 create_concurrency: int = 32,
                 on_pods_start: Callable[[], None] | None = None,
                 on_phase: Callable[[str], None] | None = None,
                 tracker: PodTracker | None = None,
                 stop: threading.Event | None = None,
                 drain_start: Callable[[], None] | None = None) -> RunData:
    """Create the workload's nodes and pods (pods for `scheduler_name`), wait at each barrier, and
    return the raw timings. `on_pods_start` runs once just before the first pod is created (to
    snapshot CPU counters); a barrier that times out is recorded and the run goes on.

    With `drain_start` (drain mode) barriers are deferred: every node and pod is created first,
    then `drain_start()` starts the scheduler and one barrier waits for the whole backlog, with
    the sum of the workload's barrier timeouts. This measures the scheduler's own rate where
    pod creation, not scheduling, would otherwise set the pace."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    tracker = tracker or PodTracker()
    stop = stop or threading.Event()
    t_start = time.monotonic()
    data = RunData(tracker.created, tracker.bound_at, tracker.node_of, tracker.unschedulable,
                   tracker.create_errors, t_start=t_start, deleted_at=tracker.deleted_at,
                   deleted_pods=tracker.deleted_pods, withdrawn=tracker.withdrawn, gated=tracker.gated)
    for ns in workload.namespaces:
        ensure_namespace(core, ns)
    if not all(op.measure for op in workload.ops if isinstance(op, CreatePods)):
        data.measured_ops = set()  # only some ops' pods are timed: filled as they are created
    paths = ResourcePaths(api)
    watcher = pod_watcher(api, scheduler_name, tracker,
                          ).start()
    attempted = 0
    node_errors: dict[str, str] = {}
    narrowed = any(isinstance(op, Barrier) and op.labels for op in workload.ops)
    labels_of: dict[str, dict[str, str]] = {}  # pod key -> labels, for barriers that select by them
    background: list[threading.Thread] = []  # churn and unwaited deletePods, until the ops are done
    ops_done = threading.Event()

    def run_background(name: str, fn: Callable[[], None]) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        background.append(t)
    try:
        for op, start in workload.steps():
            if stop.is_set():
                break
            phase = PhaseLog(op=type(op).__name__, started_s=time.monotonic() - t_start)
            if on_phase:
                on_phase(phase.op)
            if isinstance(op, CreateNodes):
                items = ((n["metadata"]["name"],
                          (lambda body=n: create(core, "/api/v1/nodes", body, ok_statuses=(409,))))
                         for n in workload.iter_nodes(op, start))
                done: list[str] = []
                _create_all(items, op.count, create_concurrency, 0, lambda k, t: done.append(k),
                            node_errors.__setitem__, stop)
                phase.count = len(done)
                csi_nodes = ((c["metadata"]["name"],
                              (lambda body=c: create(core, "/apis/storage.k8s.io/v1/csinodes", body, ok_statuses=(409,))))
                             for c in workload.iter_csi_nodes(op, start))
                if op.csi_node is not None and not node_errors:
                    _create_all(csi_nodes, op.count, create_concurrency, 0, lambda k, t: None,
                                node_errors.__setitem__, stop)
                if node_errors:
                    raise RuntimeError(f"{len(node_errors)} node(s) could not be created, e.g. "
                                       f"{next(iter(node_errors.items()))}")
            elif isinstance(op, CreateObjects):
                for obj in op.objects:  # in order: a later object may need an earlier one
                    try:
                        create(core, paths.path(obj), obj)
                    except CallError as exc:
                        raise RuntimeError(f"createObjects: {obj['kind']} {obj['metadata']['name']} could not "
                                           f"be created: {exc}") from None
                phase.count = len(op.objects)
            elif isinstance(op, CreatePods):
                def create_first(calls: list[tuple[str, Callable[[], Any]]], what: str) -> None:
                    """Calls for objects the op's pods need (made first, concurrently); any failure stops the run."""
                    if not calls:
                        return  # (_create_all starts a worker even for none)
                    errors: dict[str, str] = {}
                    _create_all(iter(calls), len(calls), create_concurrency, 0, lambda k, t: None,
                                errors.__setitem__, stop)
                    if errors:
                        raise RuntimeError(f"{len(errors)} {what} could not be created, e.g. {next(iter(errors.items()))}")

                def creates(objs: Iterator[dict | None]) -> list[tuple[str, Callable[[], Any]]]:
                    return [(o["metadata"]["name"], (lambda o=o: create(core, paths.path(o), o))) for o in objs
                            if o is not None]

                create_first(creates(workload.iter_pod_groups(op)), "PodGroup(s)")  # each gang's group before its pods
                pairs = list(workload.iter_volumes(op, start))  # each pod's claim (and pre-bound volume)
                if op.written_bound:  # written bound, as scheduler_perf does
                    create_first([(c["metadata"]["name"], (lambda v=v, c=c: write_bound(core, v, c))) for v, c in pairs],
                                 "volume(s) or claim(s)")
                else:
                    create_first(creates(o for pair in pairs for o in pair), "volume(s) or claim(s)")
                    if op.volume_template is not None:  # and bound by the PV controller, as the pods find them
                        wait_claims_bound(core, op.namespace, {c["metadata"]["name"] for _, c in pairs}, stop)
                if data.t_pods_start is None:
                    if on_pods_start:
                        on_pods_start()
                    data.t_pods_start = time.monotonic()
                ns = op.namespace
                path = f"/api/v1/namespaces/{ns}/pods"
                op_index = len(data.phases)
                if data.measured_ops is not None and op.measure:
                    data.measured_ops.add(op_index)

                def made_pods(op=op, start=start, ns=ns, op_index=op_index):
                    for p in workload.iter_pods(op, start, scheduler_name):
                        key = f"{ns}/{p['metadata']['name']}"
                        data.op_of[key] = op_index
                        if narrowed:
                            labels_of[key] = p["metadata"].get("labels") or {}
                        yield key, p
                items = ((key, (lambda body=p, path=path: create(core, path, body))) for key, p in made_pods())
                made = _create_all(items, op.count, create_concurrency, op.rate, tracker.on_created,
                                   tracker.on_create_error, stop)
                attempted += made
                phase.count = made
            elif isinstance(op, DeletePods):
                def delete(op=op, phase=phase) -> None:  # (finishes after the last op if it must)
                    phase.count = delete_pods(core, tracker, op, stop.is_set)
                if op.wait:
                    delete()
                else:
                    run_background("delete-pods", delete)
            elif isinstance(op, UpdateObjects):
                phase.count = update_objects(core, paths, op, scheduler_name, stop.is_set)
            elif isinstance(op, Churn):
                run_background("churn", lambda op=op: churn(core, paths, tracker, op, scheduler_name,
                                                            lambda: stop.is_set() or ops_done.is_set()))
            elif isinstance(op, Barrier) and drain_start is not None:
                phase.op = "Barrier(deferred)"
            elif isinstance(op, Barrier) and op.narrowed:
                with tracker.cond:
                    keys = [k for k in tracker.created
                            if (not op.namespaces or k.split("/", 1)[0] in op.namespaces)
                            and all(labels_of.get(k, {}).get(lk) == lv for lk, lv in op.labels.items())]
                phase.count = len(keys)
                phase.settled = tracker.wait_done(keys, op.until_bound, op.timeout, stop, op.at_least)
                if not phase.settled:
                    data.barrier_timeouts += 1
            elif isinstance(op, Barrier):
                expected = attempted - len(tracker.create_errors)
                phase.count = expected
                phase.settled = tracker.wait_settled(expected, op.timeout, stop)
                if not phase.settled:
                    data.barrier_timeouts += 1
            phase.took_s = time.monotonic() - t_start - phase.started_s
            data.phases.append(phase)
        if drain_start is not None and not stop.is_set():
            phase = PhaseLog(op="Drain", started_s=time.monotonic() - t_start)
            if on_phase:
                on_phase("Drain")
            drain_start()
            phase.count = attempted - len(tracker.create_errors)
            timeout = sum(op.timeout for op in workload.ops if isinstance(op, Barrier))
            phase.settled = tracker.wait_settled(phase.count, timeout or DEFAULT_BARRIER_TIMEOUT, stop)
            data.barrier_timeouts += 0 if phase.settled else 1
            phase.took_s = time.monotonic() - t_start - phase.started_s
            data.phases.append(phase)
        elif attempted and not stop.is_set() and not isinstance(workload.ops[-1], Barrier):
            # no trailing barrier: wait anyway, or the last pods would go unmeasured
            phase = PhaseLog(op="Barrier(implicit)", started_s=time.monotonic() - t_start)
            phase.count = attempted - len(tracker.create_errors)
            phase.settled = tracker.wait_settled(phase.count, DEFAULT_BARRIER_TIMEOUT, stop)
            data.barrier_timeouts += 0 if phase.settled else 1
            phase.took_s = time.monotonic() - t_start - phase.started_s
            data.phases.append(phase)
    finally:
        data.t_end = time.monotonic()
        ops_done.set()
        for t in background:
            t.join(timeout=DEFAULT_BARRIER_TIMEOUT)
        watcher.stop()
        data.watch_error = watcher.error
        data.late_relist_binds = tracker.late_relist_binds
    return data
