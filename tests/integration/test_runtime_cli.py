"""`cluster-scheduler run` as a user starts it: its own Ray instance, the scheduler's
ServiceAccount kubeconfig, config/default.yaml; it binds pods, grows by a partition on SIGUSR1 and
stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client


pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]


def test_run_binds_pods_and_stops_on_sigterm(private_cp, tmp_path):
    admin = private_cp.api_client("admin")
    core = client.CoreV1Api(admin)
    res = {"cpu": "4", "memory": "8Gi", "pods": "10"}
    for i in range(2):
        core.create_node({"metadata": {"name": f"c-{i}", "labels": {"kubernetes.io/hostname": f"c-{i}"}},
                          "status": {"capacity": res, "allocatable": res,
                                     "conditions": [{"type": "Ready", "status": "True"}]}})
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cluster_scheduler.cli", "run", "--kubeconfig", str(private_cp.scheduler_kubeconfig),
         "--config", str(ROOT / "config" / "default.yaml"), "--partitions", "2", "--num-cpus", "2",
         "--log-level", "DEBUG"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        for i in range(6):
            core.create_namespaced_pod("default", {
                "metadata": {"name": f"cli-{i}"},
                "spec": {"schedulerName": "cluster-scheduler",
                         "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                         "resources": {"requests": {"cpu": "1"}}}]}})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pods = core.list_namespaced_pod("default").items
            if len(pods) == 6 and all(p.spec.node_name for p in pods):
                break
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(0.5)
        placed = sorted(p.spec.node_name for p in core.list_namespaced_pod("default").items)
        assert placed == ["c-0"] * 3 + ["c-1"] * 3  # LeastAllocated spreads 1-cpu pods evenly
        # SIGUSR1 adds a partition while running; the next pod is still placed, on the free cpu
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while "partitions: 2 -> 3" not in (tmp_path / "run.log").read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
        core.create_namespaced_pod("default", {
            "metadata": {"name": "cli-after"},
            "spec": {"schedulerName": "cluster-scheduler",
                     "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "1"}}}]}})
        while not core.read_namespaced_pod("cli-after", "default").spec.node_name:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        admin.close()
    text = (tmp_path / "run.log").read_text()
    assert "informers synced" in text
    assert " batch 1: " in text  # the per-batch debug line
    assert "stopped: " in text and "bound=7" in text
