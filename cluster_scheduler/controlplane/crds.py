"""CustomResourceDefinitions of the third-party APIs our manifests use, from their Go modules.

`k8s/rayjob.yaml` is a KubeRay `RayJob`; the apiserver can validate it (server-side dry run) only
once KubeRay's CRDs are installed. The KubeRay operator module ships them (`config/crd/bases`), so
they come from the Go module proxy like the control plane itself, at a pinned version.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .binaries import ControlPlaneError

KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_VERSION = "v1.5.0"


def kuberay_crd_dir(version: str = KUBERAY_VERSION) -> Path:
    """The directory of KubeRay's CRD manifests (`ray.io_rayjobs.yaml`, ...), downloading the
    module into the Go module cache the first time (seconds; no build)."""
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    proc = subprocess.run(["go", "mod", "download", "-json", f"{KUBERAY_MODULE}@{version}"], env=env,
                          capture_output=True, text=True, cwd="/", timeout=600)
    if proc.returncode != 0:
        raise ControlPlaneError(f"go mod download {KUBERAY_MODULE}@{version} failed: {proc.stdout}{proc.stderr}")
    crds = Path(json.loads(proc.stdout)["Dir"]) / "config" / "crd" / "bases"
    if not (crds / "ray.io_rayjobs.yaml").is_file():
        raise ControlPlaneError(f"{crds} has no ray.io_rayjobs.yaml")
    return crds
