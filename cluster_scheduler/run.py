"""`cluster-scheduler run`: the distributed scheduler against a real apiserver.

The command runs `SchedulerRuntime` (runtime.py) inside a Ray actor
(`actors/coordinator_actor.py`), so Ray restarts the coordinator when it crashes: a restarted
coordinator rebuilds everything from the API (the informer's list), nothing survives in memory.
The driver process only starts Ray (or joins RAY_ADDRESS, e.g. under `ray job submit`), creates the
actor, relays signals and watches it: SIGTERM/SIGINT stop it gracefully (the loop ends between
batches, bindings in flight finish, the Lease is released), SIGUSR1/SIGUSR2 add/remove a partition.
`--in-process` runs the runtime in the driver itself.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from .config import SchedulerConfig
from .api.rest import api_client
from .runtime import SchedulerRuntime, check_api_access, default_identity, init_ray

log = logging.getLogger(__name__)

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
        api = api_client(args.kubeconfig, 1, retries=0)
        try:
            check_api_access(api)
        finally:
            api.close()
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"cannot start: {' '.join(str(exc).split())[:300]}") from None
    if args.in_process:
        return _run_in_process(cfg, args)
    return _run_actor(cfg, args)


def install_signals(on_stop: Callable[[int, Any], None], on_resize: Callable[[int, Any], None]) -> None:
    """SIGTERM/SIGINT stop, SIGUSR1/SIGUSR2 add/remove a partition. Call it after ray.init, which
    installs a SIGTERM handler of its own that exits at once."""
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_resize)
    signal.signal(signal.SIGUSR2, on_resize)


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
    install_signals(on_stop, on_resize)  # after start, which initialises Ray
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

    from actors.coordinator_actor import CoordinatorActor

    from .cli import CliError

    kubeconfig = os.path.abspath(args.kubeconfig) if args.kubeconfig else None
    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    try:
        started_ray = init_ray(address, args.num_cpus)
    except Exception as exc:  # noqa: BLE001
        raise CliError(f"cannot start Ray: {' '.join(str(exc).split())[:300]}") from None

    stop = threading.Event()
    resize: list[int] = []

    def on_stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    def on_resize(signum: int, _frame: Any) -> None:
        resize.append(1 if signum == signal.SIGUSR1 else -1)

    install_signals(on_stop, on_resize)

    identity = default_identity()
    actor = ray.remote(CoordinatorActor).options(
        num_cpus=COORDINATOR_CPUS, max_restarts=COORDINATOR_RESTARTS, max_task_retries=0,
        enable_task_events=False,  # see _actor_options
        resources=dict(cfg.runtime.coordinator_resources),
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
                log.info("coordinator on Ray node %s", st["ray_node"])
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
