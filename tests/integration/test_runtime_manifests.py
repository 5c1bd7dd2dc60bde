"""The deployment manifests in k8s/ against the real apiserver (server-side dry run: the apiserver
validates and admits them, nothing is created)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from cluster_scheduler.config import load_config
from cluster_scheduler.controlplane.crds import kuberay_crd_dir

pytestmark = [pytest.mark.timeout(120)]

K8S = Path(__file__).resolve().parents[2] / "k8s"
KUBECTL = shutil.which("kubectl")


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def dry_run(control_plane, docs_: list[dict]) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.admin_kubeconfig), "apply",
                           "--dry-run=server", "-f", "-"], input=yaml.safe_dump_all(docs_),
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def kuberay_crds(control_plane):
    """KubeRay's RayJob CRD (from its Go module) installed and Established: server-side apply, as
    the CRD is too large for client-side apply's annotation."""
    crd = kuberay_crd_dir() / "ray.io_rayjobs.yaml"
    kc = ["--kubeconfig", str(control_plane.admin_kubeconfig)]
    out = subprocess.run([KUBECTL, *kc, "apply", "--server-side", "-f", str(crd)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 60
    while True:  # `kubectl wait` fails at once while the CRD has no conditions yet
        out = subprocess.run([KUBECTL, *kc, "get", "crd", "rayjobs.ray.io", "-o",
                              'jsonpath={.status.conditions[?(@.type=="Established")].status}'],
                             capture_output=True, text=True, timeout=30)
        if out.stdout == "True":
            return
        assert time.monotonic() < deadline, out.stdout + out.stderr
        time.sleep(0.5)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
@pytest.mark.parametrize("name", ["rbac.yaml", "example-deployment.yaml", "rayjob.yaml"])
def test_manifests_pass_server_dry_run(control_plane, kuberay_crds, name):
    all_docs = docs(K8S / name)
    assert all_docs
    out = dry_run(control_plane, all_docs)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(all_docs), out.stdout


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
def test_rayjob_runs_the_entrypoint_with_the_scheduler_account(control_plane, kuberay_crds, tmp_path):
    all_docs = docs(K8S / "rayjob.yaml")
    (job,) = [d for d in all_docs if d["kind"] == "RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    # the dry run validates it against the CRD's schema: a wrong type is refused
    bad = copy.deepcopy(job)
    bad["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    out = dry_run(control_plane, [bad])
    assert out.returncode != 0 and "replicas" in out.stderr, out.stdout + out.stderr
    spec = job["spec"]
    assert spec["entrypoint"].startswith("cluster-scheduler run ")
    assert "--ray-address auto" in spec["entrypoint"]
    rbac = {d["kind"]: d for d in docs(K8S / "rbac.yaml")}
    sa = rbac["ServiceAccount"]["metadata"]
    assert job["metadata"]["namespace"] == sa["namespace"]
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == sa["name"]
    # the config it mounts is a valid scheduler configuration
    (cm,) = [d for d in all_docs if d["kind"] == "ConfigMap"]
    mount = head["containers"][0]["volumeMounts"][0]["mountPath"]
    assert f"--config {mount}/config.yaml" in spec["entrypoint"]
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(cm["data"]["config.yaml"])
    cfg = load_config(cfg_file)
    assert cfg.profile.scheduler_name == "cluster-scheduler"
    # several worker groups, each on the scheduler's image; the Ray resources the config steers
    # the coordinator and the partitions by are declared by a group each
    groups = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert len(groups) >= 2
    declared: dict[str, dict] = {}
    for group in groups:
        assert group["template"]["spec"]["containers"][0]["image"] == head["containers"][0]["image"]
        declared[group["groupName"]] = json.loads(json.loads(group["rayStartParams"].get("resources", '"{}"')))
    for wanted in (cfg.runtime.coordinator_resources, cfg.runtime.partition_resources):
        assert wanted and any(all(r.get(name, 0) >= amount for name, amount in wanted) for r in declared.values()), (
            wanted, declared)


def test_example_deployment_opts_in_by_scheduler_name():
    (dep,) = docs(K8S / "example-deployment.yaml")
    cfg = load_config(K8S.parent / "config" / "default.yaml")
    assert dep["spec"]["template"]["spec"]["schedulerName"] == cfg.profile.scheduler_name
