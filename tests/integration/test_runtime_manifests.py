"""The deployment manifests in k8s/ against the real apiserver (server-side dry run: the apiserver
validates and admits them, nothing is created)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cluster_scheduler.config import load_config

pytestmark = [pytest.mark.timeout(120)]

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUBECTL = shutil.which("kubectl")


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def dry_run(control_plane, docs_: list[dict]) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.admin_kubeconfig), "apply",
                           "--dry-run=server", "-f", "-"], input=yaml.safe_dump_all(docs_),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize("name", ["rbac.yaml", "example-deployment.yaml", "rayjob.yaml"])
def test_manifests_pass_server_dry_run(control_plane, name):
    all_docs = docs(K8S / name)
    assert all_docs
    # custom resources (KubeRay's RayJob) need their CRD, which this apiserver does not have
    core = [d for d in all_docs if not d["apiVersion"].startswith("ray.io/")]
    out = dry_run(control_plane, core)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(core), out.stdout


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_rayjob_runs_the_entrypoint_with_the_scheduler_account(control_plane, tmp_path):
    all_docs = docs(K8S / "rayjob.yaml")
    (job,) = [d for d in all_docs if d["kind"] == "RayJob"]
    # the apiserver cannot validate it: confirm that is only because KubeRay's CRD is absent
    out = dry_run(control_plane, [job])
    assert out.returncode != 0 and "RayJob" in out.stderr and "ray.io" in out.stderr, out.stderr
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["entrypoint"].startswith("cluster-scheduler run ")
    assert "--ray-address auto" in spec["entrypoint"]
    rbac = {d["kind"]: d for d in docs(K8S / "rbac.yaml")}
    sa = rbac["ServiceAccount"]["metadata"]
    assert job["metadata"]["namespace"] == sa["namespace"]
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == sa["name"]
    for group in spec["rayClusterSpec"]["workerGroupSpecs"]:
        assert group["template"]["spec"]["containers"][0]["image"] == head["containers"][0]["image"]
    # the config it mounts is a valid scheduler configuration
    (cm,) = [d for d in all_docs if d["kind"] == "ConfigMap"]
    mount = head["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"--config {mount}/config.yaml" in spec["entrypoint"]
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(cm["data"]["config.yaml"])
    cfg = load_config(cfg_file)
    assert cfg.profile.scheduler_name == "cluster-scheduler"


def test_example_deployment_opts_in_by_scheduler_name():
    (dep,) = docs(K8S / "example-deployment.yaml")
    cfg = load_config(K8S.parent / "config" / "default.yaml")
    assert dep["spec"]["template"]["spec"]["schedulerName"] == cfg.profile.scheduler_name
