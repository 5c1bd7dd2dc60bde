"""Locate etcd, kube-apiserver, kube-scheduler and kube-controller-manager, building them from Go
modules when needed.

The binaries are built by `scripts/build-controlplane.sh` into a cache outside the repo (a warm call
returns in milliseconds), so the Python side never downloads or guesses a binary. `CS_CONTROLPLANE_BIN`
points at a ready bin directory instead (a CI cache, a package build) and skips the script entirely.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cluster_scheduler.resources import resource_path

BIN_ENV = "CS_CONTROLPLANE_BIN"
NAMES = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")


class ControlPlaneError(RuntimeError):
    """Something the user can act on (missing binary, busy port, apiserver never ready)."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the control-plane executables."""

    bin_dir: Path

    @property
    def etcd(self) -> Path:
        return self.bin_dir / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.bin_dir / "kube-apiserver"

    @property
    def kube_scheduler(self) -> Path:
        return self.bin_dir / "kube-scheduler"

    @property
    def kube_controller_manager(self) -> Path:
        return self.bin_dir / "kube-controller-manager"

    def missing(self) -> list[str]:
        return [n for n in NAMES if not os.access(self.bin_dir / n, os.X_OK)]


def build_script() -> Path:
    """The checkout's script, or the copy a wheel install ships (with the Go modules it builds)."""
    return resource_path("scripts/build-controlplane.sh")


def find_binaries() -> Binaries:
    """Return the control-plane binaries: `$CS_CONTROLPLANE_BIN` if set, else the build script's cache
    (which builds them first when the cache is cold: minutes, once per machine)."""
    override = os.environ.get(BIN_ENV)
    if override:
        bins = Binaries(Path(override).expanduser().resolve())
        if missing := bins.missing():
            raise ControlPlaneError(f"{', '.join(missing)} not found (or not executable) in ${BIN_ENV}={override}")
        return bins
    script = build_script()
    if not script.is_file():
        raise ControlPlaneError(f"{script} not found: set ${BIN_ENV} to a directory holding {', '.join(NAMES)}")
    # stderr is inherited so a cold build shows its progress line and any Go error in full
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ControlPlaneError(f"{script.name} failed (exit {proc.returncode}); see the messages above")
    bins = Binaries(Path(lines[-1]))
    if missing := bins.missing():
        raise ControlPlaneError(f"{script.name} printed {bins.bin_dir} but {', '.join(missing)} is missing there")
    return bins
