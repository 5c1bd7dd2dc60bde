"""`cluster-scheduler run`: the distributed scheduler against a real apiserver.

`SchedulerRuntime` wires the pieces of the data flow together in one process: the informer
(list+watch) feeds the coordinator's loop, which fans batches out to the partition actors (Ray)
and hands winners to the binder; with leader election, only the Lease holder's loop schedules.

The command runs that runtime inside a Ray actor (`actors.coordinator.CoordinatorActor`), so Ray
restarts the coordinator when it crashes: a restarted coordinator rebuilds everything from the API
(the informer's list), nothing survives in memory. The driver process only starts Ray (or joins
RAY_ADDRESS, e.g. under `ray job submit`), creates the actor, relays signals and watches it:
SIGTERM/SIGINT stop it gracefully (the loop ends between batches, bindings in flight finish, the
Lease is released), SIGUSR1/SIGUSR2 add/remove a partition. `--in-process` runs the runtime in
the driver itself, as before the actor existed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from .config import SchedulerConfig, auto_partitions

log = logging.getLogger("cluster_scheduler.runtime")


def make_api_client(kubeconfig: str | None, pool_size: int, *, retries: int | None = None) -> Any:
    """An ApiClient from a kubeconfig (or the in-cluster ServiceAccount when None and running in a
    pod), with a connection pool wide enough for `pool_size` concurrent requests (and urllib3's
    own retries when `retries` is None)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = max(pool_size, 4)
    if retries is not None:
        cfg.retries = retries
    return client.ApiClient(cfg)


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

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self.ray_address or os.environ.get("RAY_ADDRESS"):
            ray.init(address=self.ray_address or None, log_to_driver=True)
        else:
            ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True)
        self._started_ray = True

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
        import ray

        if self.actor_options is not None:
            return self.actor_options
        # one CPU per partition where there are enough; shares of the machine where there are not
        per = min(1.0, self._cpus() / max(1, self.config.runtime.partitions))
        # No task events: Ray's GCS keeps a record of every actor call otherwise, and the soak saw
        # it grow by 22 MiB in 10 minutes (one call per batch per partition, for ever).
        return {"num_cpus": per, "max_restarts": 3, "max_task_retries": 0, "enable_task_events": False}

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
        if not rt.partitions:  # auto
            rt = replace(rt, partitions=self.partition_count())
            self.config = replace(self.config, runtime=rt)
        self.events = EventRecorder(client.EventsV1Api(write_client), self.config.profile.scheduler_name,
                                    qps=rt.event_qps, burst=rt.event_burst,
                                    warning_qps=rt.qps, warning_burst=rt.burst)
        self.binder = Binder(client.CoreV1Api(write_client), concurrency=rt.bind_concurrency,
                             qps=rt.qps, burst=rt.burst, events=self.events)
        self.coordinator = Coordinator(self.config.profile, rt, self.binder, partitions=rt.partitions,
                                       actor_options=self._actor_options(), metrics=self.metrics)
        self.binder.on_result = self.coordinator.wake.set
        self.events.busy = self.binder.busy  # Scheduled events wait while bindings are in flight
        self.informer = ClusterInformer(client.CoreV1Api(watch_client), self.coordinator.sink)
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
                             time.monotonic() - self.started_mono, self.config.profile.scheduler_name)
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
            except Exception:  # noqa: BLE001 - a crashed loop must stop the process, loudly
                log.exception("scheduling loop crashed")
                self.failed = True
                self._stop.set()

        for target, name in ((wait_sync, "sync"), (loop, "coordinator")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("scheduler %s running with %d partitions", self.config.profile.scheduler_name, rt.partitions)

    def _start_elector(self) -> None:
        """Campaign for the Lease on a client and thread of its own, so that renewals never wait
        behind the scheduling loop or the binder's connection pool."""
        from .api.leader import LeaderElector

        rt = self.config.runtime
        elect_client = make_api_client(self.kubeconfig, 4)
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


# ------------------------------------------------------------------------------------------ CLI

COORDINATOR_CPUS = 0.5  # the coordinator actor's reservation: it mostly waits on the API and Ray
COORDINATOR_RESTARTS = 3  # crash recovery; beyond this the driver exits non-zero (a crash loop)
DEAD_AFTER_S = 120.0  # an actor unreachable this long is treated as dead even if Ray still restarts it


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
    p.add_argument("--leader-elect", action="store_true", default=None,
                   help="campaign for the Lease (runtime.leaderElect); only the leader schedules")
    p.add_argument("--in-process", action="store_true",
                   help="run the coordinator in this process instead of a restartable Ray actor")
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
    if args.leader_elect:
        cfg = replace(cfg, runtime=replace(cfg.runtime, leader_elect=True))
    try:  # credentials first: a bad kubeconfig fails in a second, before Ray starts
        api = make_api_client(args.kubeconfig, 1, retries=0)
        try:
            check_api_access(api)
        finally:
            api.close()
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"cannot start: {' '.join(str(exc).split())[:300]}") from None
    if args.in_process:
        return _run_in_process(cfg, args)
    return _run_actor(cfg, args)


def _run_in_process(cfg: SchedulerConfig, args: argparse.Namespace) -> int:
    from .cli import CliError

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
    return 1 if rt.failed or rt.lost_leadership else 0


def _actor_state(actor: Any) -> str:
    """ALIVE / RESTARTING / DEAD from the GCS actor table ("" when it cannot be read)."""
    try:
        from ray._private.state import state

        info = state.actor_table(actor._actor_id.hex()) or {}
        return str(info.get("State", ""))
    except Exception:  # noqa: BLE001 - an internal API: fall back to the unreachable timeout
        return ""


def _run_actor(cfg: SchedulerConfig, args: argparse.Namespace) -> int:
    """The driver: start/join Ray, create the coordinator actor, relay signals, watch it."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    from actors.coordinator import CoordinatorActor

    from .cli import CliError

    kubeconfig = os.path.abspath(args.kubeconfig) if args.kubeconfig else None
    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    started_ray = not ray.is_initialized()
    try:
        if started_ray and address:
            ray.init(address=address, log_to_driver=True)
        elif started_ray:
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=True)
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"cannot start Ray: {' '.join(str(exc).split())[:300]}") from None

    stop = threading.Event()
    resize: list[int] = []

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    def on_resize(signum: int, _frame: Any) -> None:
        resize.append(1 if signum == signal.SIGUSR1 else -1)

    # after ray.init, which installs a SIGTERM handler of its own that exits at once
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_resize)
    signal.signal(signal.SIGUSR2, on_resize)

    identity = default_identity()
    actor = ray.remote(CoordinatorActor).options(
        num_cpus=COORDINATOR_CPUS, max_restarts=COORDINATOR_RESTARTS, max_task_retries=0,
        enable_task_events=False,  # see _actor_options
    ).remote(cfg, kubeconfig, identity=identity, log_level=args.log_level.upper(),
             reserved_cpus=COORDINATOR_CPUS)
    log.info("coordinator actor created (identity %s)", identity)
    code = 0
    pid = None
    was_ready = ""  # the role last logged as ready
    first_logged = False
    unreachable_since: float | None = None
    try:
        while not stop.is_set():
            try:
                st = ray.get(actor.stats.remote(), timeout=30)
            except (RayActorError, GetTimeoutError) as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                state = _actor_state(actor)
                if state == "DEAD" or now - unreachable_since > DEAD_AFTER_S:
                    log.error("coordinator actor died for good (%s): %s", state or "unreachable",
                              " ".join(str(exc).split())[:300])
                    return 1
                log.warning("coordinator actor unavailable (%s), waiting for Ray to restart it", state or "?")
                stop.wait(1.0)
                continue
            unreachable_since = None
            if st["pid"] != pid:
                if pid is not None:
                    log.warning("coordinator actor restarted: pid %s -> %s", pid, st["pid"])
                else:
                    log.info("coordinator actor running in pid %s", st["pid"])
                pid, was_ready, first_logged = st["pid"], "", False
            role = "leader" if st["leading"] else "standby"
            if st["synced"] and role != was_ready:
                was_ready = role  # logged again when a standby becomes the leader
                log.info("coordinator ready (%s)", role)
            if st["first_bind_after_start_s"] is not None and not first_logged:
                first_logged = True
                log.info("first binding %.2fs after the coordinator started (%.2fs after leading)",
                         st["first_bind_after_start_s"], st["first_bind_after_leading_s"] or 0.0)
            if st["lost_leadership"] or st["failed"]:
                log.error("coordinator stopped: %s", "leader election lost" if st["lost_leadership"]
                          else "scheduling loop failed")
                code = 1
                break
            while resize:
                n = st["partitions"] + resize.pop(0)
                st["partitions"] = max(1, n)
                ray.get(actor.resize.remote(n), timeout=30)
            stop.wait(0.5)
        try:
            log.info("stopped: %s", ray.get(actor.stop.remote(), timeout=120))
        except Exception as exc:  # noqa: BLE001 - it may be the thing that failed
            log.warning("coordinator actor did not stop cleanly: %s", type(exc).__name__)
        return code
    finally:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001
            pass
        if started_ray:
            ray.shutdown()
