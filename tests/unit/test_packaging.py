"""Packaging: what an install needs from config/, k8s/ and scripts/ ships in the package, found by
cluster_scheduler.resources; test-only code (the fault proxy) does not ship."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cluster_scheduler import resources
from cluster_scheduler.resources import SHIPPED, checkout_root, installed_root, resource_path

ROOT = Path(__file__).resolve().parents[2]
USED = ("config/default.yaml", "k8s/rbac.yaml", "scripts/build-controlplane.sh")  # read by the package


def _shipped_in_checkout() -> set[str]:
    files = set()
    for pattern in SHIPPED:
        matched = {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern) if p.is_file()}
        assert matched, f"SHIPPED pattern {pattern!r} matches no file"
        files |= matched
    return files


def test_resolver_finds_the_checkout_files():
    assert checkout_root() == ROOT
    for rel in USED:
        path = resource_path(rel)
        assert path == ROOT / rel and path.is_file(), rel
    shipped = _shipped_in_checkout()
    assert set(USED) <= shipped
    # what build-controlplane.sh hashes and builds, beside it in scripts/controlplane/
    for rel in ("k8s/go.mod", "k8s/go.sum", "etcd/go.mod", "etcd/go.sum", "etcd/cmd/etcd/main.go",
                "k8s/cmd/kube-apiserver/main.go", "k8s/cmd/kube-scheduler/main.go"):
        assert f"scripts/controlplane/{rel}" in shipped, rel


def test_resolver_falls_back_to_the_installed_copy(monkeypatch):
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    assert resource_path("k8s/rbac.yaml") == installed_root() / "k8s" / "rbac.yaml"
    assert installed_root() == Path(resources.__file__).resolve().parent / "_resources"


def test_build_ships_the_resources_and_no_test_code(tmp_path):
    """The wheel's contents are build_py's output: run it (about a second) into a temporary folder,
    leaving the checkout untouched."""
    lib = tmp_path / "lib"
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path),
         "build_py", "--build-lib", str(lib)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0 and "No module named 'setuptools'" in proc.stderr:
        pytest.skip("setuptools is not installed in this environment")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = lib / "cluster_scheduler" / "_resources"
    got = {p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()}
    assert got == _shipped_in_checkout()
    for rel in got:
        assert (data / rel).read_bytes() == (ROOT / rel).read_bytes(), rel
    assert (lib / "cluster_scheduler" / "resources.py").is_file()
    assert (lib / "actors").is_dir()
    assert not (lib / "cluster_scheduler" / "faults.py").exists()
    assert not (lib / "tests").exists()


def test_package_does_not_import_test_code():
    assert importlib.util.find_spec("cluster_scheduler.faults") is None
    pattern = re.compile(r"^\s*(from|import)\s+tests\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for folder in ("cluster_scheduler", "actors")
                 for p in (ROOT / folder).rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
