"""The upstream kube-scheduler as a peer: the yardstick every benchmark compares against, and a second
scheduler that must coexist with ours (each binds only the pods that name it in spec.schedulerName).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from cluster_scheduler.controlplane.cluster import FEATURE_GATES, ControlPlane, ManagedProcess, free_port, wait_healthz

PEER = "kube-scheduler"
DEFAULT_SCHEDULER_NAME = "default-scheduler"


@dataclass
class PeerScheduler:
    """A running upstream kube-scheduler; `stop()` also removes it from the control plane's state."""

    control_plane: ControlPlane
    process: ManagedProcess
    config_file: Path
    healthz_url: str
    qps: float
    burst: int

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 10.0) -> None:
        self.control_plane.stop_component(PEER, self.process, timeout)


def scheduler_config(kubeconfig: Path, *, qps: float, burst: int, scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                     profiles: list[dict] | None = None) -> dict:
    """A KubeSchedulerConfiguration with the default plugins (or the given `profiles`). Leader
    election is off (one replica, and no lease traffic in the measurements); qps/burst are the
    client's rate limit toward the apiserver, which caps binds/s, so benchmarks give both
    schedulers the same values."""
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": float(qps), "burst": int(burst)},
        "leaderElection": {"leaderElect": False},
        "profiles": profiles if profiles is not None else [{"schedulerName": scheduler_name}],
    }


def start_kube_scheduler(
    cp: ControlPlane,
    *,
    qps: float = 5000.0,
    burst: int = 10000,
    workdir: Path | str | None = None,
    detached: bool = False,
    timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
    profiles: list[dict] | None = None,
) -> PeerScheduler:
    """Run the upstream kube-scheduler against `cp` as user system:kube-scheduler (the apiserver's
    bootstrap RBAC grants it exactly what it needs), and wait until its /healthz answers."""
    wd = Path(workdir).expanduser().resolve() if workdir else cp.workdir / PEER
    wd.mkdir(parents=True, exist_ok=True)
    config = wd / "config.yaml"
    config.write_text(yaml.safe_dump(scheduler_config(cp.kube_scheduler_kubeconfig, qps=qps, burst=burst,
                                                      profiles=profiles)))
    port = free_port()
    argv = [
        str(cp.binaries.kube_scheduler),
        f"--config={config}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",  # self-signed, in memory; /healthz is always allowed unauthenticated
        f"--feature-gates={','.join(FEATURE_GATES)}",
        *extra_args,
    ]
    proc = cp.start_component(PEER, argv, wd / "kube-scheduler.log", detached=detached)
    peer = PeerScheduler(cp, proc, config, f"https://127.0.0.1:{port}/healthz", qps, burst)
    try:
        t0 = time.monotonic()
        wait_healthz(PEER, proc, peer.healthz_url, timeout)
        cp.timings["peer_ready_s"] = round(time.monotonic() - t0, 3)
        if cp.state_file.exists():
            cp.save()
    except BaseException:
        peer.stop()
        raise
    return peer
