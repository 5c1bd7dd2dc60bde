"""`cluster-scheduler run`: the distributed scheduler against a real apiserver.

Wires the pieces of the data flow together in one driver process: the informer (list+watch) feeds
the coordinator's loop, which fans batches out to the partition actors (Ray) and hands winners to
the binder. Runs the same way locally (starts a private Ray instance) and under
`ray job submit -- cluster-scheduler run ...` (joins the job's cluster). SIGTERM/SIGINT stop it
gracefully: the loop ends between batches, bindings in flight finish, the actors are released.
SIGUSR1/SIGUSR2 add/remove a partition while running.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from dataclasses import replace
from typing import Any

from .config import SchedulerConfig

log = logging.getLogger("cluster_scheduler.runtime")


def make_api_client(kubeconfig: str | None, pool_size: int) -> Any:
    """An ApiClient from a kubeconfig (or the in-cluster ServiceAccount when None and running in a
    pod), with a connection pool wide enough for `pool_size` concurrent requests."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = max(pool_size, 4)
    return client.ApiClient(cfg)


class SchedulerRuntime:
    """The running scheduler. `start()` returns once the loop runs (the informers may still be
    syncing); `stop()` is idempotent. Usable in-process (tests) as well as from the CLI."""

    def __init__(self, config: SchedulerConfig, kubeconfig: str | None, *,
                 actor_options: dict | None = None, ray_address: str | None = None,
                 num_cpus: int | None = None) -> None:
        self.config = config
        self.kubeconfig = kubeconfig
        self.actor_options = actor_options
        self.ray_address = ray_address
        self.num_cpus = num_cpus
        self._stop = threading.Event()
        self._synced = threading.Event()
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

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self.ray_address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=self.ray_address or None, log_to_driver=True)
        else:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True)
        self._started_ray = True

    def _actor_options(self) -> dict:
        import ray

        if self.actor_options is not None:
            return self.actor_options
        # one CPU per partition where there are enough; shares of the machine where there are not
        cpus = ray.cluster_resources().get("CPU", 1.0)
        per = min(1.0, cpus / max(1, self.config.runtime.partitions))
        return {"num_cpus": per, "max_restarts": 3, "max_task_retries": 0}

    def start(self) -> None:
        from kubernetes import client

        from actors.coordinator import Coordinator

        from .api.binder import Binder
        from .api.events import EventRecorder
        from .api.informer import ClusterInformer

        from .metrics import MetricsServer, SchedulerMetrics

        rt = self.config.runtime
        # credentials first: a bad kubeconfig fails in a second, before Ray starts
        watch_client = make_api_client(self.kubeconfig, 8)
        write_client = make_api_client(self.kubeconfig, rt.bind_concurrency + 8)
        self._clients = [watch_client, write_client]
        self.metrics = SchedulerMetrics(self.config.profile.scheduler_name)
        try:
            self.metrics_server = MetricsServer(self.metrics, self.ready, port=rt.metrics_port).start()
            log.info("metrics on %s/metrics", self.metrics_server.url)
        except OSError as exc:  # a busy port must not stop the scheduler
            log.warning("metrics endpoint not served on port %d: %s", rt.metrics_port, exc)
        self._init_ray()
        self.events = EventRecorder(client.EventsV1Api(write_client), self.config.profile.scheduler_name)
        self.binder = Binder(client.CoreV1Api(write_client), concurrency=rt.bind_concurrency,
                             qps=rt.qps, burst=rt.burst, events=self.events)
        self.coordinator = Coordinator(self.config.profile, rt, self.binder, partitions=rt.partitions,
                                       actor_options=self._actor_options(), metrics=self.metrics)
        self.binder.on_result = self.coordinator.wake.set
        self.informer = ClusterInformer(client.CoreV1Api(watch_client), self.coordinator.sink)
        self.informer.start()

        def wait_sync() -> None:
            while not self._stop.is_set():
                if self.informer.wait_synced(0.5):
                    log.info("informers synced: %d nodes, %d pending pods of %s",
                             len(self.coordinator.nodes), len(self.coordinator.queue),
                             self.config.profile.scheduler_name)
                    self._synced.set()
                    return

        def loop() -> None:
            try:
                self.coordinator.run(self._stop, self._synced)
            except Exception:  # noqa: BLE001 - a crashed loop must stop the process, loudly
                log.exception("scheduling loop crashed")
                self.failed = True
                self._stop.set()

        for target, name in ((wait_sync, "sync"), (loop, "coordinator")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("scheduler %s running with %d partitions", self.config.profile.scheduler_name, rt.partitions)

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


# ------------------------------------------------------------------------------------------ CLI

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the scheduler against a cluster",
                              description="Run the distributed scheduler: list+watch the cluster, "
                                          "schedule pods whose schedulerName is the profile's, bind them.")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                   help="kubeconfig (default: $KUBECONFIG, or the in-cluster ServiceAccount)")
    p.add_argument("--config", help="KubeSchedulerConfiguration YAML (default: built-in defaults)")
    p.add_argument("--partitions", type=int, help="partition actors (overrides runtime.partitions)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--ray-address", help="join this Ray cluster ('auto' under ray job submit)")
    p.add_argument("--log-level", default=os.environ.get("CS_LOG_LEVEL", "INFO"),
                   help="DEBUG shows one line per batch")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from .cli import CliError
    from .config import ConfigError, load_config

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.partitions is not None:
        if args.partitions < 1:
            raise CliError("--partitions must be at least 1")
        cfg = replace(cfg, runtime=replace(cfg.runtime, partitions=args.partitions))
    rt = SchedulerRuntime(cfg, args.kubeconfig, ray_address=args.ray_address, num_cpus=args.num_cpus)

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        rt._stop.set()

    def on_resize(signum: int, _frame: Any) -> None:
        if rt.coordinator is not None:
            n = len(rt.coordinator.parts) + (1 if signum == signal.SIGUSR1 else -1)
            rt.coordinator.request_resize(n)

    try:
        rt.start()
    except Exception as exc:  # noqa: BLE001 - bad kubeconfig, Ray failing to start
        rt.stop()
        raise CliError(f"cannot start: {' '.join(str(exc).split())[:300]}") from None
    # after start: ray.init installs a SIGTERM handler of its own that exits at once
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_resize)
    signal.signal(signal.SIGUSR2, on_resize)
    try:
        while not rt.stopped:
            time.sleep(0.2)
    finally:
        rt.stop()
    return 1 if rt.failed else 0
