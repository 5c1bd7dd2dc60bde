"""scripts/soak, briefly (30 s), against the real control plane with the upstream kube-scheduler as
the scheduler under test (started by the soak script itself, so its memory is sampled)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster_scheduler.controlplane.cluster import free_port
from cluster_scheduler.controlplane.peer import scheduler_config

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

SOAK = Path(__file__).resolve().parents[2] / "scripts" / "soak"
NAME = "soak-scheduler"  # its own profile: it never touches other tests' pods


def test_soak_30s_with_kube_scheduler(control_plane, tmp_path):
    cfg = scheduler_config(control_plane.kube_scheduler_kubeconfig, qps=500, burst=1000, scheduler_name=NAME)
    (tmp_path / "ks.yaml").write_text(yaml.safe_dump(cfg))
    cmd = (f"{control_plane.binaries.kube_scheduler} --config={tmp_path / 'ks.yaml'} "
           f"--bind-address=127.0.0.1 --secure-port={free_port()}")
    report = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, str(SOAK), "--kubeconfig", str(control_plane.admin_kubeconfig), "--duration", "30",
         "--scheduler-cmd", cmd, "--scheduler-name", NAME, "--rate", "8", "--max-pods", "60", "--nodes", "6",
         "--node-churn-s", "6", "--sample-s", "3", "--settle-s", "40", "--report", str(report),
         "--log-dir", str(tmp_path / "logs"), "--seed", "1"],
        capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    print(out)
    assert report.exists(), out
    r = json.loads(report.read_text())
    assert proc.returncode == 0, out + "\n" + r["check"]["summary"]
    assert r["check"]["ok"] and r["scheduler_alive_at_end"]
    assert r["startup_s"] is not None
    assert 29 <= r["duration_s"] < 40
    # churn really happened, at the bounded rate (8 ops/s at most)
    assert 80 <= r["pods_created"] + r["pods_deleted"] <= 8 * 31 + 1
    assert r["pods_deleted"] > 0 and r["pods_bound"] > 40
    assert r["nodes_added"] + r["nodes_removed"] >= 3
    # the few pods that can never fit end Unschedulable, with an event (the check requires it)
    assert r["check"]["unschedulable"] >= 0 and r["check"]["pending_without_reason"] == 0
    # memory of the scheduler was sampled all along (kube-scheduler: tens of MiB)
    assert len(r["rss_mib"]["samples"]) >= 8
    assert 10 < r["rss_mib"]["first"] < 2000
    assert r["latency_s"]["count"] > 40 and r["latency_s"]["p50"] is not None
    assert "binds/s" in proc.stdout


def test_soak_refuses_non_loopback(tmp_path):
    kc = tmp_path / "remote.kubeconfig"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://10.1.2.3:6443"}}],
        "users": [{"name": "u", "user": {"token": "x"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}], "current-context": "x"}))
    proc = subprocess.run([sys.executable, str(SOAK), "--kubeconfig", str(kc), "--duration", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "loopback apiservers only" in proc.stderr
