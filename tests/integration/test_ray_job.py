"""`cluster-scheduler run` submitted as a Ray job to a local Ray head binds pods on a real apiserver.

This is how users launch it beside a cluster (`ray job submit -- cluster-scheduler run ...`): the
job's driver joins the head's cluster through RAY_ADDRESS, which the runtime picks up.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from cluster_scheduler.controlplane.cluster import free_port
from tests import manifests
from tests.ray_nodes import RayNode

pytestmark = [pytest.mark.ray, pytest.mark.apiserver, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _node(name: str, group: str) -> dict:
    return manifests.node(name, "4", "8Gi", "10", labels={"rayjob-test": group})


def _pod(name: str, group: str) -> dict:
    # the session's control plane holds other tests' nodes too: select this test's own
    return manifests.pod(name, cpu="500m", memory="1Gi", scheduler="cluster-scheduler",
                         nodeSelector={"rayjob-test": group})


@pytest.fixture
def ray_head(tmp_path):
    if not (BIN / "ray").exists():
        pytest.skip("the `ray` CLI is not installed")
    dash = free_port()
    temp = Path("/tmp") / f"csray{os.getpid()}"  # short: Ray's unix socket paths have a length limit
    # Ray 2.60 protects job submission with a token: give the head and the client the same one,
    # so the test does not depend on a ~/.ray/auth_token left by anything else
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(32))
    head = RayNode(tmp_path / "ray-head.log", temp, env, num_cpus=2,
                   extra=("--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}"))
    head.start()
    try:
        yield str(BIN / "ray"), f"http://127.0.0.1:{dash}", env
    finally:
        head.stop()


def test_run_as_ray_job_binds_pods(control_plane, admin_api, namespace, ray_head, tmp_path):
    ray, address, env = ray_head
    core = client.CoreV1Api(admin_api)
    names = [f"rj-{namespace}-{i}" for i in range(2)]
    for n in names:
        core.create_node(_node(n, namespace))
    pods = [f"p{i}" for i in range(4)]
    for p in pods:
        core.create_namespaced_pod(namespace, _pod(p, namespace))
    job = f"cs-{namespace}"
    cmd = [ray, "job", "submit", f"--address={address}", f"--submission-id={job}", "--no-wait", "--",
           str(BIN / "cluster-scheduler"), "run", "--kubeconfig", str(control_plane.scheduler_kubeconfig),
           "--config", str(ROOT / "config" / "default.yaml"), "--partitions", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    try:
        deadline = time.monotonic() + 180
        bound: dict[str, str] = {}
        while time.monotonic() < deadline and len(bound) < len(pods):
            for p in core.list_namespaced_pod(namespace).items:
                if p.spec.node_name:
                    bound[p.metadata.name] = p.spec.node_name
            time.sleep(1)
        status = subprocess.run([ray, "job", "status", f"--address={address}", job], env=env,
                                capture_output=True, text=True, timeout=60).stdout
        assert len(bound) == len(pods), f"bound {bound}; job status: {status}"
        assert set(bound.values()) <= set(names)
        assert "RUNNING" in status  # the scheduler keeps running as a long-lived job
    finally:
        subprocess.run([ray, "job", "stop", f"--address={address}", job], env=env,
                       capture_output=True, timeout=120)
        for n in names:
            core.delete_node(n)
