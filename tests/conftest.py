"""Shared fixtures: a real etcd + kube-apiserver for the whole test session, clients for its two
identities, and the upstream kube-scheduler as a peer.

Any test that uses `control_plane` (directly or through another fixture) is marked `apiserver`
automatically, so `pytest -m "not apiserver"` runs everything that needs no control plane.
"""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from cluster_scheduler.controlplane.binaries import ControlPlaneError
from cluster_scheduler.controlplane.cluster import ControlPlane, start_control_plane
from cluster_scheduler.controlplane.peer import PeerScheduler, start_kube_scheduler
from tests import manifests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.apiserver)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A fresh apiserver + etcd per session (default apiserver throttles, as in a real cluster).
    Logs and kubeconfigs stay under pytest's basetemp (`controlplane*/`) for post-mortems."""
    try:
        cp = start_control_plane(tmp_path_factory.mktemp("controlplane"))
    except ControlPlaneError as exc:
        pytest.fail(f"control plane did not start: {exc}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def admin_api(control_plane: ControlPlane):
    """`kubernetes.client.ApiClient` as system:masters: for setting up nodes and pods."""
    client = control_plane.api_client("admin")
    yield client
    client.close()


@pytest.fixture(scope="session")
def scheduler_api(control_plane: ControlPlane):
    """`kubernetes.client.ApiClient` as ServiceAccount kube-system/cluster-scheduler (k8s/rbac.yaml):
    what the scheduler itself runs with."""
    client = control_plane.api_client("scheduler")
    yield client
    client.close()


@pytest.fixture
def namespace(admin_api) -> str:
    """A namespace of its own for one test. Not deleted: with no namespace controller running it
    would only sit in Terminating; the whole cluster is thrown away at the end of the session."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(admin_api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture(scope="module")
def peer_scheduler(control_plane: ControlPlane) -> Iterator[PeerScheduler]:
    """The upstream kube-scheduler (profile `default-scheduler`), for one test module: outside it,
    it must not bind pods other tests create for `default-scheduler`."""
    peer = start_kube_scheduler(control_plane, qps=5000, burst=10000)
    try:
        yield peer
    finally:
        peer.stop()


# --------------------------------------------------------------------------------------------
# Shared by the integration tests that run `cluster-scheduler run` (or the runtime) against a
# control plane of their own: a Ray head on free ports, the scheduler as a subprocess, a steady pod
# creator, a watcher of first bindings and the final placement check.

SCHEDULER = "cluster-scheduler"


@pytest.fixture
def private_cp(tmp_path):
    """A control plane of the test's own (for tests that stop, fault or fill it)."""
    cp = start_control_plane(tmp_path / "cp")
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray for in-process runtimes (module-wide; left alone if a test started one).

    Token authentication off, as for the `ray_head` fixture's head: Ray keeps the auth mode of the
    first cluster a process joins (RayConfig, the token loader), so a token-mode session here made a
    later test of the same process fail to join a tokenless head (its partitions never started)."""
    import os

    import ray

    started = not ray.is_initialized()
    before = os.environ.get("RAY_AUTH_MODE")
    if started:
        os.environ["RAY_AUTH_MODE"] = "disabled"
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 1024 * 1024)
    yield
    if started:
        ray.shutdown()
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head of the test's own that schedulers join (as under `ray job submit`); yields the
    environment to join it with (RAY_ADDRESS). Two local `ray.init()` instances on one machine
    would both want the dashboard agent's fixed port; here every port is free-picked. Teardown
    kills exactly this head's processes."""
    import os
    from pathlib import Path

    from tests.ray_nodes import RayNode

    # no token: nothing here submits jobs, and a test process that joins cannot switch tokens
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", RAY_DEDUP_LOGS="0")
    env.pop("RAY_AUTH_TOKEN", None)
    temp = Path("/tmp") / f"csha{os.getpid()}"  # short: Ray's unix socket paths have a length limit
    head = RayNode(tmp_path / "ray-head.log", temp, env, num_cpus=4, extra=("--include-dashboard=false",))
    head.start()
    try:
        yield dict(env, RAY_ADDRESS=head.address, CS_RAY_TEMP_DIR=str(temp))  # tests read its session logs
    finally:
        head.stop()


class Replica:
    """One `cluster-scheduler run` (configuration `tmp_path/sched.yaml`) in a session of its own,
    so that teardown can take its Ray processes down with it."""

    def __init__(self, cp, tmp_path, env: dict, name: str, *extra: str, kubeconfig=None) -> None:
        import subprocess
        import sys

        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cluster_scheduler.cli", "run", "--kubeconfig",
             str(kubeconfig or cp.scheduler_kubeconfig), "--config", str(tmp_path / "sched.yaml"), *extra],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True, env=env)

    @property
    def text(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, pattern: str, timeout: float):
        import re
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text)
            if m:
                return m
            assert self.proc.poll() is None, f"exited {self.proc.returncode}:\n{self.text[-3000:]}"
            time.sleep(0.3)
        raise AssertionError(f"no {pattern!r} in {timeout}s:\n{self.text[-3000:]}")

    def close(self) -> None:
        import os
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        self._log.close()


def plain_pod(i: int, namespace: str, cpu: str = "100m") -> dict:
    """Pod `p-NNNN` for our scheduler requesting `cpu` and 64Mi."""
    return manifests.pod(f"p-{i:04d}", namespace, cpu, "64Mi", SCHEDULER)


def create_all(admin_api, nodes: list[dict], pods: list[dict], workers: int = 8) -> None:
    """Create the nodes, the pods' namespaces and the pods, `workers` requests at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    from cluster_scheduler.api.binder import finish

    core = client.CoreV1Api(admin_api)
    for ns in sorted({p["metadata"]["namespace"] for p in pods}):
        try:
            core.create_namespace({"metadata": {"name": ns}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise

    def node(n: dict) -> None:
        finish(core.create_node(n, _preload_content=False))

    def pod(p: dict) -> None:
        finish(core.create_namespaced_pod(p["metadata"]["namespace"], p, _preload_content=False))

    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(node, nodes))
        list(ex.map(pod, pods))


def create_slowly(admin, namespace: str, pods: list[dict], per_s: float, *, tolerate_errors: bool = False):
    """Create pods at a steady rate in the background, so a failure always lands mid-run. With
    `tolerate_errors`, a create that fails (the apiserver is down) is retried until it succeeds;
    the thread's `failed_creates` counts the failures."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    from cluster_scheduler.api.binder import finish

    core = client.CoreV1Api(admin)

    def create(p: dict) -> None:
        while True:
            try:
                finish(core.create_namespaced_pod(namespace, p, _preload_content=False, _request_timeout=10))
                return
            except client.ApiException as exc:
                if exc.status == 409:  # an earlier try reached the apiserver after all
                    return
                if not tolerate_errors:
                    raise
            except Exception:  # connection refused while the apiserver restarts
                if not tolerate_errors:
                    raise
            t.failed_creates += 1
            time.sleep(0.5)

    def run() -> None:
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as ex:
            for i, p in enumerate(pods):
                delay = t0 + i / per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ex.submit(create, p)

    t = threading.Thread(target=run, daemon=True)
    t.failed_creates = 0
    t.start()
    return t


class BindWatch:
    """Polls the pods of a namespace and notes when each was first seen bound: "first binding
    after t" is the scheduler-independent measure of a recovery. Polls that fail (the apiserver
    is down) are skipped."""

    def __init__(self, admin, namespace: str) -> None:
        import threading

        from kubernetes import client

        self.core = client.CoreV1Api(admin)
        self.namespace = namespace
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        import time

        from cluster_scheduler.check import _list_all

        while not self._stop.is_set():
            try:
                for p in _list_all(self.core.list_namespaced_pod, namespace=self.namespace, _request_timeout=5):
                    if p["spec"].get("nodeName"):
                        self.first_seen.setdefault(p["metadata"]["name"], time.time())
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.2)

    def bound(self) -> int:
        return len(self.first_seen)

    def first_after(self, t: float, timeout: float) -> float:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [s for s in list(self.first_seen.values()) if s > t]
            if later:
                return min(later)
            time.sleep(0.1)
        raise AssertionError(f"no binding within {timeout}s after {t}")

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)


def wait_for(cond, timeout: float, what: str):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def settle_and_check(admin, expected: int, unschedulable: int, timeout: float = 120):
    """Wait until every pod of our scheduler is bound or Unschedulable, then run the placement
    check (events are posted asynchronously: a report that only misses events is retried a
    while) and assert at most one Scheduled event per pod. Returns (report, events)."""
    import time
    from collections import Counter

    from kubernetes import client

    from cluster_scheduler.check import _list_all, check_placement

    core = client.CoreV1Api(admin)
    deadline = time.monotonic() + timeout
    while True:
        nodes = _list_all(core.list_node)
        pods = _list_all(core.list_pod_for_all_namespaces)
        events = _list_all(core.list_event_for_all_namespaces)
        failed = [e for e in events if e.get("reason") == "FailedScheduling"]
        report = check_placement(nodes, pods, scheduler_name=SCHEDULER, events=failed)
        done = (report.pods_checked == expected and report.bound + report.unschedulable == expected
                and report.unschedulable == unschedulable)
        if (done and report.ok) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert report.ok, report.summary()
    assert (report.bound, report.unschedulable) == (expected - unschedulable, unschedulable), report.summary()
    scheduled = Counter((e.get("involvedObject") or {}).get("name") for e in events if e.get("reason") == "Scheduled")
    twice = {k: v for k, v in scheduled.items() if v > 1}
    assert not twice, f"pods with more than one successful binding: {twice}"
    return report, events


def proxied_runtime(cp, proxy, tmp_path, **runtime):
    """An in-process SchedulerRuntime (one partition, no metrics port) whose every request goes
    through the fault `proxy`, as the scheduler's own service account; `runtime` overrides
    RuntimeConfig fields. Started; the caller stops it."""
    from dataclasses import replace

    import yaml

    from cluster_scheduler.config import SchedulerConfig
    from cluster_scheduler.runtime import SchedulerRuntime

    token = yaml.safe_load(cp.scheduler_kubeconfig.read_text())["users"][0]["user"]["token"]
    kubeconfig = proxy.kubeconfig(tmp_path / "sched.kubeconfig", token)
    cfg = SchedulerConfig()
    cfg = replace(cfg, runtime=replace(cfg.runtime, **{"partitions": 1, "metrics_port": 0, **runtime}))
    rt = SchedulerRuntime(cfg, str(kubeconfig), actor_options={"num_cpus": 0.25, "max_restarts": 1})
    rt.start()
    return rt
