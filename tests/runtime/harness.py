"""The runtime in-process, for runtime tests: a stand-in for Ray that runs the real Partition class
in this process (`FakeRay`), a binder that records what it is asked (`RecordingBinder`), API-shaped
node/pod builders fed to `Coordinator.sink` as the informer would, and a stand-in for the binder's
HTTP pipeline (`FakePoster`)."""

from __future__ import annotations

import concurrent.futures

from actors.coordinator import Coordinator
from cluster_scheduler.api.binder import BOUND, EVICTED, BindResult, EvictResult, VolumeWriteResult
from cluster_scheduler.api.informer import PODS
from cluster_scheduler.config import Profile, RuntimeConfig
from cluster_scheduler.wire import strip_pod
from tests import manifests


class Future:
    def __init__(self, value=None, error: Exception | None = None):
        self.value, self.error = value, error


class Method:
    def __init__(self, actor: "Actor", name: str):
        self.actor, self.name = actor, name

    def remote(self, *args):
        if self.actor.dead:
            return Future(error=RuntimeError("actor died"))
        return Future(getattr(self.actor.obj, self.name)(*args))


class Actor:
    def __init__(self, obj):
        self.obj, self.dead = obj, False

    def __getattr__(self, name):
        return Method(self, name)


class Remote:
    def __init__(self, cls):
        self.cls = cls
        self.created: list[Actor] = []

    def options(self, **kw):
        return self

    def remote(self, *args):
        a = Actor(self.cls(*args))
        self.created.append(a)
        return a


class FakeRay:
    """Just enough of ray's API for the coordinator: remote/options/put/get/kill."""

    def __init__(self):
        self.remotes: list[Remote] = []

    def remote(self, cls):
        r = Remote(cls)
        self.remotes.append(r)
        return r

    def put(self, v):
        return v

    def get(self, f, timeout=None):
        if f.error:
            raise f.error
        return f.value

    def kill(self, actor, no_restart=True):
        actor.dead = True


class RecordingBinder:
    def __init__(self):
        self.bound: list[tuple[str, str]] = []
        self.unschedulable: list[tuple[str, str]] = []
        self.results: list[BindResult] = []
        self.outcome = BOUND
        self.nominations: list[tuple[str, str]] = []
        self.evictions: list[tuple[str, str, str]] = []
        self._evicted: list = []
        self.volume_writes: list[tuple[str, str, list]] = []  # (pod, node, writes) PreBind was asked
        self.volume_error = ""  # what the next volume writes end with ("" = accepted)
        self._written: list[VolumeWriteResult] = []

    def bind(self, pod, node):
        self.bound.append((pod.name, node))
        self.results.append(BindResult(pod, node, self.outcome))

    def mark_unschedulable(self, pod, message, nominated_node=None):
        self.unschedulable.append((pod.name, message))
        if nominated_node is not None:
            self.nominations.append((pod.name, nominated_node))

    def drain(self):
        out, self.results = self.results, []
        return out

    # preemption: evictions are recorded; the test decides how each ends (`evicted`)
    evict_outcome = EVICTED

    def evict(self, victim, preemptor, node, group=None):
        self.evictions.append((victim.name, preemptor.name, node))
        self._evicted.append(EvictResult(victim, preemptor, node, self.evict_outcome, "" if
                                         self.evict_outcome == EVICTED else "500 boom"))

    def drain_evictions(self):
        out, self._evicted = self._evicted, []
        return out

    def write_volumes(self, pod, node, writes):
        self.volume_writes.append((pod.name, node, writes))
        self._written.append(VolumeWriteResult(pod, node, self.volume_error))

    def drain_volume_writes(self):
        out, self._written = self._written, []
        return out


def node(name: str, cpu: str) -> dict:
    return manifests.node(name, cpu, "8Gi", "10")


def pod(name: str, cpu: str, node_name: str = "", scheduler: str = "cluster-scheduler", prio: int = 0) -> dict:
    """A pod as the watch delivers it (uid `u-<name>`, namespace `ns`), before it is stripped."""
    p = manifests.pod(name, "ns", cpu, scheduler=scheduler, node=node_name or None, priority=prio)
    p["metadata"]["uid"] = f"u-{name}"
    p["status"] = {"phase": "Pending"}
    return p


def make(partitions: int, batch: int = 100):
    binder = RecordingBinder()
    c = Coordinator(Profile(), RuntimeConfig(batch_size=batch, top_k=2, batch_interval_s=0), binder, partitions=partitions,
                    ray_module=FakeRay())
    return c, binder


def feed(c: Coordinator, kind: str, objs: list[dict], typ: str = "ADDED") -> None:
    for o in objs:  # pods stripped, as the informer delivers them
        c.sink(kind, typ, strip_pod(o) if kind == PODS else o)


def gang_pod(name: str, group: str, cpu: str = "1") -> dict:
    p = pod(name, cpu)
    p["spec"]["schedulingGroup"] = {"podGroupName": group}
    return p


def pod_group(name: str, min_count: int | None = None, basic: bool = False, **spec: object) -> dict:
    return manifests.pod_group(name, min_count, namespace="ns", basic=basic, **spec)


def run_all(c: Coordinator) -> None:
    while c.run_once():
        pass


def make_no_backoff(partitions: int, batch: int = 100):
    """A coordinator whose unschedulable pods come back at once on an event (no backoff wait)."""
    c, binder = make(partitions, batch)
    c.queue.backoff_initial_s = c.queue.backoff_max_s = 0.0
    return c, binder


class FakePoster:
    """The binder's pipelined poster, recording each request with a future the test settles."""

    def __init__(self):
        self.sent: list[tuple[str, concurrent.futures.Future]] = []

    def submit(self, path, body, timeout):
        f: concurrent.futures.Future = concurrent.futures.Future()
        self.sent.append((body["metadata"]["name"], f))
        return f

    def close(self):
        pass
