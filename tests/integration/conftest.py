"""What the integration tests share: a scheduler runtime in-process against the test's own control
plane (`run_scheduler`), the admin client, and helpers to create, wait for and check pods."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from kubernetes import client

from cluster_scheduler.check import _list_all, check_placement
from cluster_scheduler.config import SchedulerConfig
from cluster_scheduler.runtime import SchedulerRuntime
from tests import manifests
from tests.conftest import wait_for

__all__ = ["wait_for"]  # shared with tests.conftest, re-exported for the integration tests

SCHEDULER = "cluster-scheduler"
ACTOR_OPTIONS = {"num_cpus": 0.25, "max_restarts": 3, "max_task_retries": 0}


def config(partitions: int, batch_size: int = 200) -> SchedulerConfig:
    cfg = SchedulerConfig()
    return replace(cfg, runtime=replace(cfg.runtime, partitions=partitions, batch_size=batch_size,
                                        bind_concurrency=16, backoff_initial_s=0.2, backoff_max_s=1.0,
                                        metrics_port=0))


def pod_state(p: dict) -> str:
    if (p.get("spec") or {}).get("nodeName"):
        return "bound"
    for c in (p.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return "unschedulable"
    return "pending"


def list_pods(admin_api, namespace: str | None = None) -> list[dict]:
    core = client.CoreV1Api(admin_api)
    if namespace:
        return _list_all(core.list_namespaced_pod, namespace=namespace)
    return _list_all(core.list_pod_for_all_namespaces)


def wait_settled(admin_api, namespace: str, expected: int, timeout: float, want_bound: int | None = None,
                 stable_s: float = 2.0) -> dict[str, int]:
    """Poll until every pod of `namespace` is bound or Unschedulable (and, with want_bound, that many
    are bound), unchanged for `stable_s`."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        pods = list_pods(admin_api, namespace)
        counts = {"bound": 0, "unschedulable": 0, "pending": 0}
        for p in pods:
            counts[pod_state(p)] += 1
        done = len(pods) == expected and counts["pending"] == 0 and (
            want_bound is None or counts["bound"] == want_bound)
        if counts != last:
            last, since = counts, time.monotonic()
        if done and time.monotonic() - since >= stable_s:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"pods did not settle in {timeout}s: {counts}")


def check_cluster(admin_api, timeout: float = 30.0):
    """The placement check over the listed cluster. Events are posted asynchronously (best
    effort), so a report that only misses events is retried for a while."""
    core = client.CoreV1Api(admin_api)
    deadline = time.monotonic() + timeout
    while True:
        nodes = _list_all(core.list_node)
        pods = _list_all(core.list_pod_for_all_namespaces)
        events = _list_all(core.list_event_for_all_namespaces, field_selector="reason=FailedScheduling")
        report = check_placement(nodes, pods, scheduler_name=SCHEDULER, events=events,
                                 volumes=_list_all(core.list_persistent_volume),
                                 claims=_list_all(core.list_persistent_volume_claim_for_all_namespaces))
        only_events = report.violations and all(v.kind == "missing_event" for v in report.violations)
        if not only_events or time.monotonic() > deadline:
            return report, pods
        time.sleep(1)


@pytest.fixture
def admin(private_cp):
    api = private_cp.api_client("admin")
    yield api
    api.close()


@pytest.fixture
def run_scheduler(private_cp, ray_session):
    started: list[SchedulerRuntime] = []

    def start(partitions: int, profiles: SchedulerConfig | None = None, **kw) -> SchedulerRuntime:
        cfg = config(partitions, **kw)
        if profiles is not None:
            cfg = replace(cfg, profiles=profiles.profiles)
        rt = SchedulerRuntime(cfg, str(private_cp.scheduler_kubeconfig), actor_options=ACTOR_OPTIONS)
        rt.start()
        started.append(rt)
        assert rt.wait_synced(60), "informers never synced"
        return rt

    yield start
    for rt in started:
        rt.stop()


def node_obj(name: str, cpu: str, pods: str = "10", labels: dict | None = None) -> dict:
    return manifests.node(name, cpu, "16Gi", pods, labels)


def pod_obj(name: str, ns: str, cpu: str, scheduler: str = SCHEDULER, node: str | None = None,
            labels: dict | None = None) -> dict:
    return manifests.pod(name, ns, cpu, "64Mi", scheduler, node, labels or {"app": "t"})


def pod_map(admin_api, ns: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in list_pods(admin_api, ns)}


