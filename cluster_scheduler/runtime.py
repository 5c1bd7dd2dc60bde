"""The wiring: `SchedulerRuntime` puts the pieces of the data flow together in one process.

The informer (list+watch) feeds the coordinator's loop, which fans batches out to the partition
actors (Ray) and hands winners to the binder; with leader election, only the Lease holder's loop
schedules. It runs inside the coordinator actor (`actors/coordinator_actor.py`) or, with
`run --in-process` and in tests, in the caller's process; `cluster_scheduler/run.py` is the command.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from .api.rest import api_client
from .config import SchedulerConfig, auto_partitions

log = logging.getLogger("cluster_scheduler.runtime")


def check_api_access(api: Any, timeout: float = 15.0) -> None:
    """Fail fast, with one clear line, on what no retry can fix: the server's certificate does not
    verify against the kubeconfig's CA (TLS verification is always on), or the credentials are
    refused (401) or lack the right to list namespaces (403). Anything else (the apiserver not up
    yet, a timeout) is left to the informer, which retries. Never shows a credential: the message
    names the server and the failure only."""
    import ssl

    from kubernetes import client
    from urllib3.exceptions import MaxRetryError, SSLError

    server = api.configuration.host
    try:
        resp = client.CoreV1Api(api).list_namespace(limit=1, _preload_content=False, _request_timeout=timeout)
        resp.release_conn()
    except client.ApiException as exc:
        if exc.status == 401:
            raise RuntimeError(f"{server} refused the credentials (401 Unauthorized): check the token or "
                               f"client certificate of the kubeconfig") from None
        if exc.status == 403:
            raise RuntimeError(f"{server} forbids listing namespaces to this identity (403 Forbidden): "
                               f"apply k8s/rbac.yaml") from None
        log.warning("%s answered %s %s at start; the informers will retry", server, exc.status, exc.reason)
    except (MaxRetryError, SSLError, ssl.SSLError) as exc:
        cause = getattr(exc, "reason", None) or exc
        if isinstance(cause, (SSLError, ssl.SSLError)) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            detail = str(cause).split("certificate verify failed:")[-1].split("(_ssl")[0].strip(" ')\"")
            raise RuntimeError(f"TLS verification of {server} failed (certificate verify failed: {detail}): "
                               f"the server's certificate is not signed by the kubeconfig's "
                               f"certificate-authority") from None
        log.warning("%s not reachable at start (%s); the informers will retry", server, type(cause).__name__)


def default_identity() -> str:
    """A leader-election identity unique per process start (kube-scheduler: hostname + uuid);
    the pid helps an operator find the holder on a shared machine."""
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def pod_group_lister(api: Any) -> Any:
    """The PodGroup list function (scheduling.k8s.io/v1beta1) where the cluster serves that API,
    else None: a cluster without gang scheduling has no PodGroups to wait for."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from .api.rest import request

    try:
        resp = request(api, "GET", "/apis/scheduling.k8s.io/v1beta1", timeout=15)
        resp.read()
        resp.release_conn()
    except ApiException as exc:
        if exc.status == 404:
            log.info("scheduling.k8s.io/v1beta1 is not served: gangs (PodGroups) are not watched")
            return None
        raise
    return client.SchedulingV1beta1Api(api).list_pod_group_for_all_namespaces


def storage_listers(api: Any) -> dict[str, Any]:
    """The list functions of the storage kinds the volume filters read, by informer kind."""
    from kubernetes import client

    from .model.storage import ATTACHMENTS, CAPACITIES, CLAIMS, CSI_DRIVERS, CSI_NODES, STORAGE_CLASSES, VOLUMES

    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    return {STORAGE_CLASSES: storage.list_storage_class, CSI_DRIVERS: storage.list_csi_driver,
            CAPACITIES: storage.list_csi_storage_capacity_for_all_namespaces,
            CSI_NODES: storage.list_csi_node, VOLUMES: core.list_persistent_volume,
            ATTACHMENTS: storage.list_volume_attachment,
            CLAIMS: core.list_persistent_volume_claim_for_all_namespaces}


def init_ray(address: str | None, num_cpus: int | None) -> bool:
    """Join the Ray cluster at `address` (or $RAY_ADDRESS, e.g. under `ray job submit`), or start a
    local one with `num_cpus`; nothing when Ray is up already. True if this call started or joined it."""
    import ray

    if ray.is_initialized():
        return False
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=True)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


class SchedulerRuntime:
    """The running scheduler. `start()` returns once the loop runs (the informers may still be
    syncing, a standby may still wait for the Lease); `stop()` is idempotent. Used in-process
    (tests, `run --in-process`) and inside the coordinator actor.

    With `runtime.leader_elect` the informers sync and the partitions exist on every replica (a warm
    standby), but the loop schedules only while this replica holds the Lease; losing it stops the
    runtime for good (`lost_leadership`), as kube-scheduler exits: its caches may hold decisions
    taken as leader."""

    def __init__(self, config: SchedulerConfig, kubeconfig: str | None, *,
                 actor_options: dict | None = None, ray_address: str | None = None,
                 num_cpus: int | None = None, identity: str | None = None,
                 reserved_cpus: float = 0.0) -> None:
        self.config = config
        self.kubeconfig = kubeconfig
        self.actor_options = actor_options
        self.ray_address = ray_address
        self.num_cpus = num_cpus
        self.identity = identity or default_identity()
        self.reserved_cpus = reserved_cpus  # CPU the caller holds (the coordinator actor's own)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._leading = threading.Event()  # set at once without leader election
        self._gate = threading.Event()  # synced and leading: the loop may schedule
        self.elector: Any = None
        self.lost_leadership = False
        self.started_mono = 0.0
        self.leading_since = 0.0  # monotonic time leadership was gained
        self._started_ray = False
        self._threads: list[threading.Thread] = []
        self.coordinator: Any = None
        self.informer: Any = None
        self.binder: Any = None
        self.events: Any = None
        self._clients: list[Any] = []
        self.failed = False  # the scheduling loop crashed
        self.metrics: Any = None
        self.metrics_server: Any = None
        self.ray_node = ""

    def _init_ray(self) -> None:
        self._started_ray = init_ray(self.ray_address, self.num_cpus)

    def _ray_cpus(self) -> float:
        """All the CPUs of the Ray cluster."""
        import ray

        return ray.cluster_resources().get("CPU", 1.0)

    def _cpus(self) -> float:
        """CPUs Ray has for partitions (the coordinator actor's reservation left out)."""
        return max(0.1, self._ray_cpus() - self.reserved_cpus)

    def partition_count(self) -> int:
        """runtime.partitions, or for `auto` a count from the Ray cluster's CPUs, all of them: the
        coordinator's own CPU is left out once, by `auto_partitions`, whether it runs in an actor
        (which reserves its share) or in-process."""
        return self.config.runtime.partitions or auto_partitions(self._ray_cpus())

    def _actor_options(self) -> dict:
        if self.actor_options is not None:
            return self.actor_options
        # one CPU per partition where there are enough; shares of the machine where there are not
        per = min(1.0, self._cpus() / max(1, self.config.runtime.partitions))
        # No task events: Ray's GCS keeps a record of every actor call otherwise, and the soak saw
        # it grow by 22 MiB in 10 minutes (one call per batch per partition, for ever).
        opts = {"num_cpus": per, "max_restarts": 3, "max_task_retries": 0, "enable_task_events": False}
        if self.config.runtime.partition_placement == "spread":
            opts["scheduling_strategy"] = "SPREAD"
        if self.config.runtime.partition_resources:
            opts["resources"] = dict(self.config.runtime.partition_resources)
        return opts

    def start(self) -> None:
        from kubernetes import client

        from actors.coordinator import Coordinator

        from .api.binder import Binder
        from .api.events import EventRecorder
        from .api.informer import ClusterInformer

        from .metrics import MetricsServer, SchedulerMetrics

        rt = self.config.runtime
        self.started_mono = time.monotonic()
        # credentials first: a bad kubeconfig fails in a second, before Ray starts
        watch_client = api_client(self.kubeconfig, 8)
        write_client = api_client(self.kubeconfig, rt.bind_concurrency + 8)
        self._clients = [watch_client, write_client]
        self.metrics = SchedulerMetrics(self.config.profile.scheduler_name)
        try:
            self.metrics_server = MetricsServer(self.metrics, self.ready, port=rt.metrics_port).start()
            log.info("metrics on %s/metrics", self.metrics_server.url)
        except OSError as exc:  # a busy port must not stop the scheduler
            log.warning("metrics endpoint not served on port %d: %s", rt.metrics_port, exc)
        self._init_ray()
        import ray

        self.ray_node = ray.get_runtime_context().get_node_id()  # where this runtime (the coordinator) runs
        if not rt.partitions:  # auto
            rt = replace(rt, partitions=self.partition_count())
            self.config = replace(self.config, runtime=rt)
        self.events = EventRecorder(client.EventsV1Api(write_client), self.config.scheduler_names,
                                    qps=rt.event_qps, burst=rt.event_burst,
                                    warning_qps=rt.qps, warning_burst=rt.burst)
        self.binder = Binder(client.CoreV1Api(write_client), concurrency=rt.bind_concurrency,
                             qps=rt.qps, burst=rt.burst, events=self.events)
        self.coordinator = Coordinator(self.config.profiles, rt, self.binder, partitions=rt.partitions,
                                       actor_options=self._actor_options(), metrics=self.metrics)
        self.binder.on_result = self.coordinator.wake.set
        self.events.busy = self.binder.busy  # Scheduled events wait while bindings are in flight
        self.informer = ClusterInformer(client.CoreV1Api(watch_client), self.coordinator.sink,
                                        list_pod_groups=pod_group_lister(watch_client),
                                        list_pdbs=client.PolicyV1Api(watch_client).list_pod_disruption_budget_for_all_namespaces,
                                        list_storage=storage_listers(watch_client))
        self.informer.start()

        if rt.leader_elect:
            self._start_elector()
        else:
            self.leading_since = time.monotonic()
            self._leading.set()

        def wait_sync() -> None:
            while not self._stop.is_set():
                if self.informer.wait_synced(0.5):
                    # the loop has not necessarily drained the listed objects yet: no counts here
                    log.info("informers synced %.2fs after start (scheduler %s)",
                             time.monotonic() - self.started_mono, ", ".join(self.config.scheduler_names))
                    self._synced.set()
                    break
            if rt.leader_elect and not self._leading.is_set():
                log.info("standby: waiting for lease %s/%s", rt.lease_namespace, rt.lease_name)
            while not self._stop.is_set():
                if self._leading.wait(0.5):
                    self._gate.set()  # the loop's `ready`: schedule from now on
                    return

        def loop() -> None:
            try:
                self.coordinator.run(self._stop, self._gate, warm=self._synced)
            except Exception:  # a crashed loop must stop the process, loudly
                log.exception("scheduling loop crashed")
                self.failed = True
                self._stop.set()

        for target, name in ((wait_sync, "sync"), (loop, "coordinator")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("scheduler %s running with %d partitions", ", ".join(self.config.scheduler_names), rt.partitions)

    def _start_elector(self) -> None:
        """Campaign for the Lease on a client and thread of its own, so that renewals never wait
        behind the scheduling loop or the binder's connection pool."""
        from .api.leader import LeaderElector

        rt = self.config.runtime
        elect_client = api_client(self.kubeconfig, 4)
        self._clients.append(elect_client)

        def started() -> None:
            self.leading_since = time.monotonic()
            log.info("leader %s: scheduling", self.identity)
            self._leading.set()

        def stopped() -> None:
            if self._stop.is_set():
                return  # our own stop() ending the campaign, not a lost lease
            # the loop stops between batches; what the binder holds finishes, nothing new starts
            log.error("leader election lost by %s: stopping", self.identity)
            self.lost_leadership = True
            self._gate.clear()
            self._stop.set()
            if self.coordinator is not None:
                self.coordinator.wake.set()

        self.elector = LeaderElector(elect_client, rt.lease_name, rt.lease_namespace, self.identity,
                                     lease_duration=rt.lease_duration_s, renew_deadline=rt.renew_deadline_s,
                                     retry_period=rt.retry_period_s, on_started_leading=started,
                                     on_stopped_leading=stopped, release_on_stop=True).start()

    @property
    def leading(self) -> bool:
        return self._leading.is_set() and not self.lost_leadership

    def stats(self) -> dict[str, Any]:
        """What the driver and the tests watch: progress, leadership, start-to-first-binding."""
        c = self.coordinator
        st = c.stats if c is not None else None
        first = st.first_bind if st is not None else 0.0
        return {
            "pid": os.getpid(), "identity": self.identity, "synced": self._synced.is_set(),
            "leading": self.leading, "lost_leadership": self.lost_leadership, "failed": self.failed,
            "stopped": self._stop.is_set(), "partitions": len(c.parts) if c is not None else 0,
            "ray_node": self.ray_node, "partition_nodes": list(c.part_nodes) if c is not None else [],
            "bound": st.bound if st else 0, "scheduled": st.scheduled if st else 0,
            "unschedulable": st.unschedulable if st else 0, "bind_dropped": st.bind_dropped if st else 0,
            "first_bind_after_start_s": first - self.started_mono if first else None,
            "first_bind_after_leading_s": first - self.leading_since if first and self.leading_since else None,
            "line": st.line() if st else "",
        }

    def ready(self) -> tuple[bool, str]:
        """/readyz: the informers have synced and the loop runs."""
        if self._stop.is_set():
            return False, "stopping"
        if not self._synced.is_set():
            return False, "informers not synced"
        return True, ""

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self.coordinator is not None:
            self.coordinator.wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self.informer is not None:
            self.informer.stop()
            self.informer = None
        if self.binder is not None:
            self.binder.close(wait=True)
            self.binder = None
        if self.events is not None:
            self.events.close(wait=True)
            self.events = None
        if self.elector is not None:
            # after the binder drained: a standby taking over must see every binding we made
            self.elector.stop()
            self.elector = None
        if self.coordinator is not None:
            log.info("stopped: %s", self.coordinator.stats.line())
            self.coordinator.shutdown()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        for c in self._clients:
            c.close()
        self._clients = []
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
