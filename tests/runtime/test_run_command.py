"""`cluster-scheduler run` fails fast and in one line on what a user can fix (no Ray start-up)."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster_scheduler.cli", "run", *args],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_bad_kubeconfig_and_bad_config(tmp_path):
    out = run("--kubeconfig", str(tmp_path / "missing"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("cluster-scheduler run: error: cannot start:")
    assert "Started a local Ray instance" not in out.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: KubeSchedulerConfiguration\nruntime:\n  partitions: 0\n")
    out = run("--config", str(bad), cwd=tmp_path)
    assert out.returncode == 2
    assert "runtime.partitions: must be >= 1, got 0" in out.stderr

    out = run("--partitions", "0", cwd=tmp_path)
    assert out.returncode == 2 and "--partitions must be at least 1" in out.stderr
