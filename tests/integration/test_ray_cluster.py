"""The scheduler on a multi-node Ray cluster: a head and worker nodes started on this machine as an
operator starts them (`ray start --head`, `ray start --address`, each with its own CPUs), the
scheduler joining it as a driver, against the real apiserver.

- Partitions are spread over the worker nodes (`runtime.partitionPlacement: spread`) and schedule
  the shared workloads with the outcome the engine computes in one process, placement check clean.
- A worker node lost mid-run (its raylet killed by PID) has its partition re-created on another node
  and re-fed; every pod still ends bound exactly once. The pause in bindings the loss causes is
  printed (docs/reliability.md quotes it).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client

from cluster_scheduler.config import SchedulerConfig
from cluster_scheduler.runtime import SchedulerRuntime
from cluster_scheduler.simulate import simulate
from cluster_scheduler.workload import load_workload
from tests.plugins.builders import node_dict
from tests.conftest import SCHEDULER, BindWatch, Replica, create_all, create_slowly, plain_pod, settle_and_check, wait_for
from tests.ray_nodes import RayNode

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(900)]

WORKLOADS = Path(os.environ.get("CLUSTER_SCHEDULER_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "workloads"
WORKERS, WORKER_CPUS, PARTITIONS = 3, 4, 3


class Cluster:
    """A head with no CPUs (the test process joins it as the driver; no partition can land there)
    and three workers of four CPUs each: room for the three partitions on any one of them, so a
    node may be lost, and Ray's default policy (pack a node to half its CPUs) would put two on one.
    Every worker declares one `coordinator` resource (`runtime.coordinatorResources` steers the
    coordinator actor of `cluster-scheduler run` to them, never to the driver's head)."""

    def __init__(self, logs: Path, env: dict) -> None:
        self.logs, self.env, self.started = logs, env, 0
        self.head = RayNode(logs / "head.log", Path(f"/tmp/csh{os.getpid()}"), env, num_cpus=0,
                            extra=("--include-dashboard=false",))
        self.workers: list[RayNode] = []

    def start(self) -> None:
        self.head.start()
        self.heal()

    def _worker(self) -> RayNode:
        self.started += 1
        return RayNode(self.logs / f"worker{self.started}.log", Path(f"/tmp/csw{self.started}-{os.getpid()}"),
                       self.env, num_cpus=WORKER_CPUS, head_address=self.head.address,
                       extra=('--resources={"coordinator": 1}',))

    def heal(self) -> None:
        """Replace the workers a test killed, so each test starts with three live ones."""
        live = []
        for w in self.workers:
            try:
                w.raylet()
                live.append(w)
            except AssertionError:
                w.stop()
        self.workers = live
        while len(self.workers) < WORKERS:
            self.workers.append(self._worker())
            self.workers[-1].start()

    def stop(self) -> None:
        for node in [*self.workers, self.head]:
            node.stop()


@pytest.fixture(scope="module")
def ray_nodes(tmp_path_factory):
    """The cluster, started once for the module (a head and three workers take ~20 s here)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", RAY_DEDUP_LOGS="0")
    env.pop("RAY_AUTH_TOKEN", None)
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # this process joins as a driver: the head's mode
    cluster = Cluster(tmp_path_factory.mktemp("ray"), env)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if before is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture
def ray_cluster(ray_nodes):
    """(head, workers) with three live workers; the driver leaves the cluster after the test."""
    import ray

    ray_nodes.heal()
    try:
        yield ray_nodes.head, list(ray_nodes.workers)
    finally:
        ray.shutdown()


def start_scheduler(cp, head: RayNode, placement: str = "spread") -> SchedulerRuntime:
    """An in-process runtime joined to the cluster, partition actors sized and placed by the
    runtime itself (one CPU each here), as `cluster-scheduler run` does."""
    cfg = SchedulerConfig()
    cfg = replace(cfg, runtime=replace(cfg.runtime, partitions=PARTITIONS, partition_placement=placement,
                                       metrics_port=0, backoff_initial_s=0.2, backoff_max_s=1.0))
    rt = SchedulerRuntime(cfg, str(cp.scheduler_kubeconfig), ray_address=head.address)
    rt.start()
    assert rt.wait_synced(60), "informers never synced"
    wait_for(lambda: all(rt.coordinator.part_nodes), 120, "every partition loaded")
    return rt


@pytest.mark.skipif(not WORKLOADS.is_dir(), reason=f"shared workloads not found at {WORKLOADS}")
@pytest.mark.parametrize("name", ["constraints-mix", "basic-1k"])
def test_partitions_spread_over_ray_nodes_and_schedule_exactly(private_cp, ray_cluster, name):
    head, workers = ray_cluster
    wl = load_workload(WORKLOADS / f"{name}.yaml")
    expected = simulate(wl, keep_objects=False)
    admin = private_cp.api_client("admin")
    rt = start_scheduler(private_cp, head)
    try:
        workers_ids = {w.raylet()[1] for w in workers}
        placed = rt.coordinator.part_nodes
        assert len(set(placed)) == PARTITIONS and set(placed) <= workers_ids, (placed, workers_ids)
        pods = list(wl.all_pods(SCHEDULER))
        create_all(admin, list(wl.all_nodes()), pods)
        settle_and_check(admin, len(pods), expected.unschedulable, timeout=600)
        wait_for(lambda: rt.coordinator.stats.bound == expected.bound, 30, "every binding result counted")
        assert rt.coordinator.stats.scheduled == expected.bound  # each pod sent to the binder once
    finally:
        rt.stop()
        admin.close()


def test_a_lost_ray_node_has_its_partition_recreated_and_nothing_is_lost(private_cp, ray_cluster):
    head, workers = ray_cluster
    admin = private_cp.api_client("admin")
    ns, count, per_s = "lost", 600, 40.0
    create_all(admin, [node_dict(f"n{i:02d}", memory="16Gi") for i in range(60)], [])
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": ns}})
    rt = start_scheduler(private_cp, head)
    watch = BindWatch(admin, ns)
    try:
        lost = next(w for w in workers if w.raylet()[1] == rt.coordinator.part_nodes[0])
        pid, lost_id = lost.raylet()
        creator = create_slowly(admin, ns, [plain_pod(i, ns, "250m") for i in range(count)], per_s)
        wait_for(lambda: watch.bound() >= 100, 60, "the first 100 bindings")
        lost_at = time.time()
        os.kill(pid, signal.SIGKILL)
        creator.join(60)
        settle_and_check(admin, count, 0, timeout=300)
        wait_for(lambda: lost_id not in rt.coordinator.part_nodes and all(rt.coordinator.part_nodes), 60,
                 "every partition on a live node")
        assert len(set(rt.coordinator.part_nodes)) >= 2
        wait_for(lambda: rt.coordinator.stats.bound == count, 30, "every binding result counted")
        assert rt.coordinator.stats.scheduled == count  # no pod sent to the binder twice
        times = sorted(t for t in watch.first_seen.values() if t > lost_at)
        gap = max(b - a for a, b in zip([lost_at, *times], times))
        # every batch needs every partition: bindings pause until the lost one is back
        print(f"\nRay node lost: bindings paused {gap:.1f} s, then went on "
              f"(partitions now on {len(set(rt.coordinator.part_nodes))} nodes)")
    finally:
        watch.stop()
        rt.stop()
        admin.close()


def test_a_lost_coordinator_node_restarts_the_coordinator_elsewhere(private_cp, ray_cluster, tmp_path):
    """`cluster-scheduler run` (the driver on the head, the coordinator actor on a worker): the
    coordinator's node is lost mid-run; Ray restarts the actor on another worker once the GCS
    declares the node dead, and the new one rebuilds from the API. No pod lost or bound twice."""
    import yaml

    head, workers = ray_cluster
    admin = private_cp.api_client("admin")
    ns, count, per_s = "coord", 400, 20.0
    create_all(admin, [node_dict(f"n{i:02d}", memory="16Gi") for i in range(30)], [])
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": ns}})
    (tmp_path / "sched.yaml").write_text(yaml.safe_dump({"runtime": {
        "partitions": 2, "metricsPort": 0, "coordinatorResources": {"coordinator": 1}}}))
    env = dict(os.environ, RAY_ADDRESS=head.address, RAY_AUTH_MODE="disabled")
    replica = Replica(private_cp, tmp_path, env, "sched")
    watch = BindWatch(admin, ns)
    try:
        on = replica.wait_log(r"coordinator on Ray node (\w+)", 120).group(1)
        lost = next(w for w in workers if w.raylet()[1] == on)
        replica.wait_log(r"coordinator ready", 60)
        creator = create_slowly(admin, ns, [plain_pod(i, ns, "250m") for i in range(count)], per_s)
        wait_for(lambda: watch.bound() >= 60, 60, "the first 60 bindings")
        lost_at = time.time()
        os.kill(lost.raylet()[0], signal.SIGKILL)
        replica.wait_log(r"coordinator actor restarted", 180)
        moved = replica.wait_log(r"coordinator actor restarted.*\n.*coordinator on Ray node (\w+)", 60).group(1)
        assert moved != on
        creator.join(60)
        settle_and_check(admin, count, 0, timeout=300)
        times = sorted(t for t in watch.first_seen.values() if t > lost_at)
        gap = max(b - a for a, b in zip([lost_at, *times], times))
        print(f"\ncoordinator's Ray node lost: bindings paused {gap:.1f} s, then went on from another node")
    finally:
        watch.stop()
        replica.close()
        admin.close()

