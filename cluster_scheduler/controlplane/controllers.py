"""Upstream's kube-controller-manager with only the controllers a test needs from a real cluster:
`disruption` computes PodDisruptionBudget status (what preemption reads), as in any cluster;
`persistentvolume-binder` (the PersistentVolume controller) makes volumes Available, binds
Immediate and pre-bound claims, and completes the bindings a scheduler's PreBind wrote;
`ephemeral-volume` makes the claims of ephemeral volumes. No other controller runs, so nothing
else (no ReplicaSet, no garbage collector) acts on the test's objects."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cluster_scheduler.controlplane.binaries import ControlPlaneError
from cluster_scheduler.controlplane.cluster import FEATURE_GATES, ControlPlane, ManagedProcess, free_port, wait_healthz

NAME = "kube-controller-manager"
VOLUME_CONTROLLERS = ("persistentvolume-binder", "ephemeral-volume")
# The PV controller completes a binding a scheduler wrote (the volume's claimRef) only when it next
# syncs the claim, every --pvclaimbinder-sync-period (15 s by default), and each binding is about
# four writes at the controller manager's client rate (20 QPS by default: some 4 bindings/s).
# Benchmarks run it at 1 s and 1,000 QPS so that what they time is the schedulers.
BENCH_VOLUME_ARGS = ("--pvclaimbinder-sync-period=1s", "--kube-api-qps=1000", "--kube-api-burst=2000")


@dataclass
class ControllerManager:
    control_plane: ControlPlane
    process: ManagedProcess
    controllers: tuple[str, ...]

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 10.0) -> None:
        self.control_plane.stop_component(NAME, self.process, timeout)


def start_controller_manager(cp: ControlPlane, controllers: tuple[str, ...] = ("disruption",), *,
                             detached: bool = False, timeout: float = 60.0,
                             extra_args: tuple[str, ...] = ()) -> ControllerManager:
    """Run kube-controller-manager against `cp` with exactly `controllers` (upstream's names, as
    `--controllers` takes them) and wait for its /healthz. It uses the admin credentials: the
    test control plane has no controller-manager identity, and one client suffices."""
    if not controllers:
        raise ControlPlaneError(f"{NAME}: no controller named")
    wd = Path(cp.workdir) / NAME
    wd.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(cp.binaries.kube_controller_manager),
        f"--kubeconfig={cp.admin_kubeconfig}",
        f"--controllers={','.join(controllers)}",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={wd}",
        f"--feature-gates={','.join(FEATURE_GATES)}",
        *extra_args,
    ]
    proc = cp.start_component(NAME, argv, wd / f"{NAME}.log", detached=detached)
    kcm = ControllerManager(cp, proc, tuple(controllers))
    try:
        t0 = time.monotonic()
        wait_healthz(NAME, proc, f"https://127.0.0.1:{port}/healthz", timeout)
        cp.timings["controller_manager_ready_s"] = round(time.monotonic() - t0, 3)
    except BaseException:
        kcm.stop()
        raise
    return kcm
