"""One measured run: a fresh control plane, one scheduler (ours, kube-scheduler, or the ceiling
binder), the workload, the placement check, everything stopped again.

Each run gets its own etcd and apiserver so no run inherits another's objects, watch cache or
compaction debt. Ours is started exactly as a user would start it, as the subprocess
`cluster-scheduler run`, and its CPU is counted over the whole process tree (Ray's gcs_server,
raylet and workers included); kube-scheduler's is its one process.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from cluster_scheduler.check import check_placement, fetch_cluster_state, fetch_namespace_labels
from cluster_scheduler.controlplane.cluster import ControlPlane, ManagedProcess, start_control_plane
from cluster_scheduler.controlplane.peer import DEFAULT_SCHEDULER_NAME, start_kube_scheduler
from cluster_scheduler.loadtest.cpu import CPUSampler, settled_speed_probe
from cluster_scheduler.api.rest import api_client
from cluster_scheduler.loadtest.kube import warm_up
from cluster_scheduler.loadtest.progress import Progress
from cluster_scheduler.loadtest.report import RunResult, summarise
from cluster_scheduler.loadtest.ceiling import READY
from cluster_scheduler.loadtest.runner import PodTracker, probe_scheduler, run_workload
from cluster_scheduler.resources import resource_path
from cluster_scheduler.workload import Workload

OURS = "ours"
KUBE = "kube-scheduler"
CEILING = "ceiling"
SCHEDULER_NAMES = {OURS: "cluster-scheduler", KUBE: DEFAULT_SCHEDULER_NAME, CEILING: "loadtest-ceiling"}
CHECK_EVENT_GRACE_S = 15.0  # events are written asynchronously: give them time before failing


@dataclass
class Settings:
    qps: float = 5000.0
    burst: int = 10000
    create_concurrency: int = 32
    bind_concurrency: int = 64  # the ceiling binder's threads (as many as our binder's)
    partitions: int | None = None
    num_cpus: int | None = None
    scheduler_config: Path | None = None
    probe_timeout: float = 300.0
    stop_timeout: float = 30.0
    check: bool = True
    mode: str = "stream"  # stream: pods created while the scheduler runs; drain: created first
    # the machine's speed at the start and end of each run (report.speed_drift): only worth its
    # 3-12 s of settling when runs are compared with each other
    speed_probe: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["scheduler_config"] = str(self.scheduler_config) if self.scheduler_config else None
        return d


def default_scheduler_config() -> Path:
    return resource_path("config/default.yaml")


def ours_argv(kubeconfig: Path | str, settings: Settings, config: Path | None = None) -> list[str]:
    """`cluster-scheduler run ...` for this interpreter (the venv the load test runs in), with
    `config` if given, else the settings' (or the default) configuration."""
    argv = [sys.executable, "-m", "cluster_scheduler.cli", "run", "--kubeconfig", str(kubeconfig)]
    explicit = config or settings.scheduler_config
    config = explicit or default_scheduler_config()
    if explicit or config.is_file():  # else `run` uses its built-in defaults
        argv += ["--config", str(config)]
    if settings.partitions:
        argv += ["--partitions", str(settings.partitions)]
    if settings.num_cpus:
        argv += ["--num-cpus", str(settings.num_cpus)]
    return argv


def profiled_config(settings: Settings, profile: dict[str, Any], out: Path) -> Path:
    """Our configuration (the settings' or the default) with a workload's own profile in place of
    its profiles, under our scheduler's name; written to `out`."""
    base = settings.scheduler_config or default_scheduler_config()
    doc = yaml.safe_load(base.read_text()) if base.is_file() else {
        "apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}
    doc["profiles"] = [{**profile, "schedulerName": SCHEDULER_NAMES[OURS]}]
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def say(msg: str) -> None:
    print(f"loadtest: {msg}", file=sys.stderr, flush=True)


class _Watchdog:
    """Sets `stop` when the scheduler process dies, so a crash ends the run at once instead of
    after every barrier's timeout."""

    def __init__(self, alive: Callable[[], bool], stop: threading.Event) -> None:
        self.alive = alive
        self.stop = stop
        self.died = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(1.0):
            if not self.alive():
                self.died = True
                self.stop.set()
                return

    def close(self) -> None:
        self._done.set()


def _wait_for_line(proc: ManagedProcess, line: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if line in proc.log.read_text(errors="replace").splitlines():
                return
        except FileNotFoundError:
            pass
        if not proc.running():
            raise RuntimeError(f"{proc.name} exited before it was ready:\n{proc.log_tail()}")
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.log_tail()}")


def _kill_leftovers(members: list[tuple[int, int]]) -> int:
    """SIGKILL processes of the scheduler's tree still alive after it was stopped (Ray daemons
    whose driver died). Only PIDs this run started, checked against their start time."""
    from cluster_scheduler.loadtest.cpu import read_proc_stat

    killed = 0
    for pid, start in members:
        st = read_proc_stat(pid)
        if st is not None and st.start_ticks == start and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def run_check(api: Any, scheduler_name: str, victims: dict[str, dict] | None = None) -> dict[str, Any]:
    """The independent placement check over the listed state, waiting briefly when the only
    problem is an event that has not been written yet. `victims` are this run's pods deleted
    while bound (as last seen): each must have a Preempted event naming a preemptor (the event's
    related object) of higher priority: a pod, or for a gang a PodGroup (upstream 1.37 names the
    group, whose spec.priority is the gang's)."""
    from cluster_scheduler.check import (MISSING_EVENT, MISSING_PREEMPTED_EVENT, PREEMPTED_WITHOUT_PREEMPTOR,
                                         _list_all, fetch_pod_groups, fetch_volumes)
    from kubernetes import client

    deadline = time.monotonic() + CHECK_EVENT_GRACE_S
    while True:
        nodes, pods, events = fetch_cluster_state(api)
        groups = fetch_pod_groups(api)
        preemptions = None
        if victims:
            preempted = _list_all(client.CoreV1Api(api).list_event_for_all_namespaces,
                                  field_selector="reason=Preempted")
            events = events + preempted
            by_uid = {p["metadata"].get("uid"): p for p in [*pods, *(groups or ())]}
            preemptor_of = {}
            for e in preempted:
                victim = (e.get("involvedObject") or e.get("regarding") or {}).get("uid")
                rel = (e.get("related") or {}).get("uid")
                if rel is None:  # "Preempted by pod <uid> on node <node>" (or "by podgroup <uid>")
                    words = (e.get("message") or e.get("note") or "").split()
                    rel = words[3] if len(words) > 3 and words[:2] == ["Preempted", "by"] else None
                preemptor_of[victim] = rel
            preemptions = [(v, by_uid.get(preemptor_of.get(v["metadata"].get("uid")))) for v in victims.values()]
        rep = check_placement(nodes, pods, scheduler_name=scheduler_name, events=events,
                              namespace_labels=fetch_namespace_labels(api), pod_groups=groups,
                              preemptions=preemptions, **fetch_volumes(api))
        kinds = rep.by_kind()
        late = {MISSING_EVENT, MISSING_PREEMPTED_EVENT, PREEMPTED_WITHOUT_PREEMPTOR}  # events still being posted
        if rep.ok or not set(kinds) <= late or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {"ok": rep.ok, "bound": rep.bound, "unschedulable": rep.unschedulable,
            "pending_without_reason": rep.pending_without_reason,
            "nodes_checked": rep.nodes_checked, "pods_checked": rep.pods_checked,
            "gangs_whole": rep.gangs_whole, "gangs_unbound": rep.gangs_unbound, "preempted": rep.preempted,
            "violations_by_kind": kinds,
            "examples": [f"{v.kind} {v.pod} {v.node}: {v.message}" for v in rep.violations[:10]],
            "summary": rep.summary(examples=3)}


def run_one(label: str, workload: Workload, settings: Settings, out_dir: Path, *,
            kubeconfig: str | None = None, scheduler_pid: int | None = None) -> RunResult:
    """Measure `label` (ours | kube-scheduler | ceiling) on `workload`. Without `kubeconfig` a
    fresh bench control plane is started and stopped; with it the cluster and (unless ceiling) the
    scheduler are assumed running, and `scheduler_pid` (optional) is where its CPU is read."""
    scheduler_name = SCHEDULER_NAMES[label]
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    notes: list[str] = []
    if workload.scheduler_profile is not None and label != CEILING:
        notes.append("run under the workload's own scheduler profile: "
                     + yaml.safe_dump(workload.scheduler_profile, default_flow_style=True).strip())
    cp: ControlPlane | None = None
    ours: ManagedProcess | None = None
    peer = None
    kcm = None
    binder: ManagedProcess | None = None
    sampler = CPUSampler(interval=0.5)
    stop = threading.Event()
    watchdog: _Watchdog | None = None
    progress: Progress | None = None
    api = None
    ok = False
    load_start = os.getloadavg()[0]  # the machine is shared: say how busy it was
    speed_start = settled_speed_probe() if settings.speed_probe else None  # how fast it is: report.targets
    try:
        if kubeconfig is None:
            say(f"[{label}] starting a fresh control plane (etcd + kube-apiserver, bench settings)")
            t = time.monotonic()
            cp = start_control_plane(Path(tempfile.mkdtemp(prefix=f"cs-loadtest-{label}-")), bench=True)
            cp.remove_workdir = True
            timings["controlplane_start"] = time.monotonic() - t
            admin_kc, sched_kc = str(cp.admin_kubeconfig), str(cp.scheduler_kubeconfig)
            sampler.track("apiserver", cp.processes["kube-apiserver"].pid)
            sampler.track("etcd", cp.processes["etcd"].pid)
            if workload.uses_volumes and label != CEILING:
                # a real cluster's volume side: the PersistentVolume controller completes the bindings
                from cluster_scheduler.controlplane.controllers import (BENCH_VOLUME_ARGS, VOLUME_CONTROLLERS,
                                                                        start_controller_manager)

                say(f"[{label}] starting kube-controller-manager ({', '.join(VOLUME_CONTROLLERS)}; "
                    f"{' '.join(BENCH_VOLUME_ARGS)})")
                kcm = start_controller_manager(cp, VOLUME_CONTROLLERS, extra_args=BENCH_VOLUME_ARGS)
                sampler.track("controller-manager", kcm.process.pid)
        else:
            admin_kc = sched_kc = kubeconfig
        pool = max(settings.create_concurrency, settings.bind_concurrency) + 8
        api = api_client(admin_kc, pool)
        warm_up(api, settings.create_concurrency)

        sampler.start()
        drain = settings.mode == "drain"

        def start_scheduler() -> None:
            """Start the scheduler (or the ceiling binder) and wait until it is ready."""
            nonlocal binder, peer, ours, watchdog
            t = time.monotonic()
            alive: Callable[[], bool] | None = None
            if label == CEILING:
                argv = [sys.executable, "-m", "cluster_scheduler.loadtest.ceiling", "--kubeconfig",
                        sched_kc, "--scheduler-name", scheduler_name,
                        "--concurrency", str(settings.bind_concurrency),
                        "--qps", str(settings.qps), "--burst", str(settings.burst)]
                say(f"[{label}] starting the round-robin binder ({settings.bind_concurrency} threads)")
                binder = ManagedProcess.spawn("ceiling-binder", argv, logs / "ceiling.log", detached=False)
                sampler.track("scheduler", binder.pid)
                alive = binder.running
                _wait_for_line(binder, READY, settings.probe_timeout)
            elif cp is not None and label == KUBE:
                say(f"[{label}] starting kube-scheduler (qps {settings.qps:g}, burst {settings.burst})")
                profiles = (None if workload.scheduler_profile is None
                            else [{**workload.scheduler_profile, "schedulerName": scheduler_name}])
                peer = start_kube_scheduler(cp, qps=settings.qps, burst=settings.burst, profiles=profiles)
                sampler.track("scheduler", peer.process.pid)
                alive = peer.running
            elif cp is not None and label == OURS:
                config = (None if workload.scheduler_profile is None
                          else profiled_config(settings, workload.scheduler_profile, logs / "ours-config.yaml"))
                argv = ours_argv(sched_kc, settings, config)
                say(f"[{label}] starting {' '.join(argv[2:])}")
                ours = ManagedProcess.spawn("cluster-scheduler", argv, logs / "ours.log", detached=False)
                sampler.track("scheduler", ours.pid)
                alive = ours.running
            elif scheduler_pid:
                sampler.track("scheduler", scheduler_pid)
            # in drain mode the pods are already queued: a probe would wait behind all of them
            if label != CEILING and not drain:
                say(f"[{label}] waiting for the scheduler to act on a probe pod")
                timings["scheduler_ready"] = probe_scheduler(api, scheduler_name,
                                                              settings.probe_timeout, alive=alive)
            timings["scheduler_start"] = time.monotonic() - t
            marks["scheduler_started"] = t
            if alive is not None:
                watchdog = _Watchdog(alive, stop)

        marks: dict[str, Any] = {}
        if not drain:
            start_scheduler()
        tracker = PodTracker()
        progress = Progress(label, workload.pod_count, tracker.counts).start()

        def on_pods_start() -> None:
            sampler.sample_now()
            marks["cpu"] = {name: tree.snapshot() for name, tree in sampler.trees.items()}
            marks["rusage"] = resource.getrusage(resource.RUSAGE_SELF)

        data = run_workload(workload, api, scheduler_name,
                            create_concurrency=settings.create_concurrency,
                            on_pods_start=on_pods_start, on_phase=progress.set_phase,
                            tracker=tracker, stop=stop,
                            drain_start=start_scheduler if drain else None)
        sampler.sample_now()
        progress.stop()
        progress = None
        ru_end = resource.getrusage(resource.RUSAGE_SELF)
        base = marks.get("cpu", {})
        cpu: dict[str, Any] = {name: round(tree.seconds(base.get(name)), 2)
                               for name, tree in sampler.trees.items()}
        if "scheduler" in sampler.trees:
            cpu["scheduler_total"] = round(sampler.trees["scheduler"].seconds(), 2)
            cpu["scheduler_by_command"] = sampler.trees["scheduler"].by_command()
            cpu["scheduler_by_command_pod_phase"] = sampler.trees["scheduler"].by_command(
                base.get("scheduler"))
        if "rusage" in marks:
            r0 = marks["rusage"]
            cpu["loadtest"] = round(ru_end.ru_utime + ru_end.ru_stime - r0.ru_utime - r0.ru_stime, 2)
        if watchdog is not None and watchdog.died:
            notes.append("the scheduler process exited during the run")
            say(f"[{label}] the scheduler process exited during the run")

        check: dict[str, Any] | None
        if label == CEILING:
            check = {"skipped": "the ceiling binds round robin, ignoring every constraint"}
        elif not settings.check:
            check = {"skipped": "--no-check"}
        else:
            say(f"[{label}] placement check")
            check = run_check(api, scheduler_name, victims=data.deleted_pods)
        if drain and "scheduler_started" in marks:
            data.t_scheduler_start = marks["scheduler_started"]
        result = summarise(label, scheduler_name, data, cpu=cpu, check=check, timings=timings,
                           notes=notes)
        result.summary["load_average_1m"] = {"start": round(load_start, 2),
                                             "end": round(os.getloadavg()[0], 2)}
        if speed_start is not None:
            result.summary["machine_speed"] = {"start": speed_start, "end": settled_speed_probe()}
        ok = True
        return result
    finally:
        if progress is not None:
            progress.stop()
        if watchdog is not None:
            watchdog.close()
        sampler.stop()
        if binder is not None:
            binder.stop(settings.stop_timeout)
        if ours is not None:
            members = sampler.trees["scheduler"].live_pids() if "scheduler" in sampler.trees else []
            try:
                ours.stop(settings.stop_timeout)
            except Exception as exc:  # noqa: BLE001 - report, then clean up the rest
                say(f"[{label}] stopping our scheduler: {exc}")
            if n := _kill_leftovers(members):
                say(f"[{label}] killed {n} leftover process(es) of our scheduler's tree")
        if peer is not None:
            shutil.copy(peer.process.log, logs / "kube-scheduler.log")
            peer.stop()
        if kcm is not None:
            shutil.copy(kcm.process.log, logs / f"{label}-kube-controller-manager.log")
            kcm.stop()
        if api is not None:
            api.close()
        if cp is not None:
            apiserver_log = cp.processes.get("kube-apiserver")
            if apiserver_log is not None and apiserver_log.log.exists():
                shutil.copy(apiserver_log.log, logs / f"{label}-kube-apiserver.log")
            if not ok:
                cp.remove_workdir = False
                say(f"[{label}] control plane files kept in {cp.workdir}")
            cp.stop()
