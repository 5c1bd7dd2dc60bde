"""`cluster-scheduler controlplane up|down|status|peer-scheduler`: a loopback control plane that
outlives the command, found again through `<workdir>/state.json`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cluster_scheduler.cli import CliError
from cluster_scheduler.controlplane.binaries import ControlPlaneError


def default_workdir() -> Path:
    cache = os.environ.get("CS_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cluster-scheduler"
    return Path(cache) / "run" / "default"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("controlplane", help="run a real etcd + kube-apiserver (+ kube-scheduler) on loopback")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--workdir", type=Path, default=default_workdir(), help="state, logs, kubeconfigs (default: %(default)s)")
        sp.set_defaults(func=func)
        return sp

    up = add("up", "start etcd and kube-apiserver in the background and print the kubeconfigs", _up)
    up.add_argument("--bench", action="store_true", help="lift apiserver throttles, bound etcd growth (benchmarks)")
    up.add_argument("--port", type=int, default=None, help="apiserver secure port (default: a free one)")
    up.add_argument("--apiserver-arg", action="append", default=[], metavar="FLAG", help="extra kube-apiserver flag, e.g. --apiserver-arg=-v=2 (repeatable)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for /readyz (default: %(default)s)")
    add("down", "stop everything started in --workdir", _down)
    add("status", "show the processes and /readyz (exit 1 unless all are up)", _status)
    peer = add("peer-scheduler", "start the upstream kube-scheduler against the running control plane", _peer)
    peer.add_argument("--qps", type=float, default=5000.0, help="client QPS toward the apiserver (default: %(default)s)")
    peer.add_argument("--burst", type=int, default=10000, help="client burst (default: %(default)s)")


def _up(args: argparse.Namespace) -> int:
    from cluster_scheduler.controlplane.cluster import start_control_plane

    try:
        cp = start_control_plane(
            args.workdir,
            bench=args.bench,
            apiserver_args=args.apiserver_arg,
            detached=True,
            secure_port=args.port,
            timeout=args.timeout,
        )
    except ControlPlaneError as exc:
        raise CliError(str(exc)) from None
    print(f"control plane up in {cp.timings['total_s']:.1f}s at {cp.url} (workdir {cp.workdir})")
    print(f"admin kubeconfig: {cp.admin_kubeconfig}")
    print(f"scheduler kubeconfig: {cp.scheduler_kubeconfig}")
    return 0


def _load(workdir: Path):
    from cluster_scheduler.controlplane.cluster import ControlPlane

    return ControlPlane.load(workdir)


def _down(args: argparse.Namespace) -> int:
    try:
        cp = _load(args.workdir)
    except ControlPlaneError as exc:
        print(f"nothing to stop: {exc}")
        return 0
    names = [n for n, up in cp.running().items() if up]
    try:
        cp.stop()
    except ControlPlaneError as exc:
        raise CliError(str(exc)) from None
    print(f"stopped {', '.join(names) or 'nothing (no process was running)'} in {cp.workdir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        cp = _load(args.workdir)
    except ControlPlaneError as exc:
        print(f"not running: {exc}")
        return 1
    running = cp.running()
    for name, proc in cp.processes.items():
        print(f"{name:15} {'running' if running[name] else 'STOPPED':8} pid {proc.pid:<8} log {proc.log}")
    ready, body = cp.readyz(timeout=5) if running.get("kube-apiserver") else (False, "apiserver not running")
    lines = body.strip().splitlines()
    detail = "; ".join(line for line in lines if line.startswith("[-]")) or (lines[-1] if lines else "")
    print(f"{'readyz':15} {'ok' if ready else 'NOT READY: ' + detail}")
    print(f"admin kubeconfig: {cp.admin_kubeconfig}")
    print(f"scheduler kubeconfig: {cp.scheduler_kubeconfig}")
    return 0 if ready and all(running.values()) else 1


def _peer(args: argparse.Namespace) -> int:
    from cluster_scheduler.controlplane.peer import start_kube_scheduler

    try:
        cp = _load(args.workdir)
        if not all(cp.running().values()):
            raise ControlPlaneError(f"the control plane in {cp.workdir} is not running (cluster-scheduler controlplane up)")
        peer = start_kube_scheduler(cp, qps=args.qps, burst=args.burst, detached=True)
    except ControlPlaneError as exc:
        raise CliError(str(exc)) from None
    print(f"kube-scheduler running (pid {peer.process.pid}, qps {args.qps:g}, burst {args.burst}), log {peer.process.log}")
    return 0
