"""Credentials never reach a log, and TLS verification is on by default.

`cluster-scheduler run` with the scheduler's ServiceAccount kubeconfig at its most verbose level
(DEBUG) goes through a scheduling round and through failures: a pod that fits nowhere
(Unschedulable, status patch and event) and bindings the apiserver side refuses (500 and 403,
injected by a fault proxy that forwards the same bearer token to the real apiserver). Neither its
output nor any log file of its Ray session may contain the token (or the payload or signature of
the JWT on their own), nor the body of any CA certificate in use. A kubeconfig whose CA does not
sign the apiserver's certificate, or whose token is refused, stops the command at once with one
line and a non-zero exit code.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.conftest import SCHEDULER, Replica, plain_pod, settle_and_check, wait_for
from tests.reliability.faults import FaultProxy, FaultRule, generate_self_signed
from tests.manifests import scheduler_config

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(420)]

CONFIG = scheduler_config(SCHEDULER, partitions=1, batchSize=20, bindConcurrency=4, metricsPort=0,
                          backoffInitialSeconds=0.2, backoffMaxSeconds=1)


def pem_body(path: Path) -> str:
    """The base64 body of the PEM blocks in `path`, as one string (no headers, no newlines)."""
    text = path.read_text()
    return "".join(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----"))


def secrets_in(text: str, secrets: dict[str, str]) -> list[str]:
    """Which of `secrets` (name -> value) occur in `text`; the text is also searched with its
    whitespace removed, so that a value wrapped over several lines is found too."""
    flat = re.sub(r"\s+", "", text)
    return [name for name, value in secrets.items() if value in text or value in flat]


def all_logs(tmp_path: Path, ray_temp: str) -> dict[str, str]:
    """Every log this run left: the command's output and every file of the Ray session's logs."""
    out = {"run.log": (tmp_path / "run.log").read_text(errors="replace")}
    for f in sorted(Path(ray_temp).glob("session_*/logs/**/*")):
        if f.is_file():
            out[str(f)] = f.read_text(errors="replace")
    return out


def test_no_token_or_certificate_in_any_log(private_cp, tmp_path, ray_head):
    cp = private_cp
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    r = None
    try:
        res = {"cpu": "2", "memory": "8Gi", "pods": "20"}
        for i in range(2):
            core.create_node({"metadata": {"name": f"s-{i}", "labels": {"kubernetes.io/hostname": f"s-{i}"}},
                              "status": {"capacity": res, "allocatable": res,
                                         "conditions": [{"type": "Ready", "status": "True"}]}})
        core.create_namespace({"metadata": {"name": "secrets"}})
        token = yaml.safe_load(cp.scheduler_kubeconfig.read_text())["users"][0]["user"]["token"]
        header, payload, signature = token.split(".")
        secrets = {"token": token, "token payload": payload, "token signature": signature,
                   "apiserver CA": pem_body(cp.ca_file), "proxy CA": pem_body(proxy.cert_file)}
        # the same ServiceAccount token, through the proxy: two bindings refused with 500, one with
        # 403 (both retried), then bound
        proxy.add_rule(FaultRule(path=r"/pods/p-0001/binding$", method="POST", status=500, count=2))
        proxy.add_rule(FaultRule(path=r"/pods/p-0002/binding$", method="POST", status=403, count=1))
        kubeconfig = proxy.kubeconfig(tmp_path / "sched.kubeconfig", token,
                                      user="system:serviceaccount:kube-system:cluster-scheduler")
        (tmp_path / "sched.yaml").write_text(CONFIG)
        r = Replica(cp, tmp_path, ray_head, "run", "--log-level", "DEBUG", kubeconfig=kubeconfig)
        r.wait_log(r"coordinator ready", 120)
        for i in range(6):
            core.create_namespaced_pod("secrets", plain_pod(i, "secrets", cpu="500m"))
        core.create_namespaced_pod("secrets", plain_pod(99, "secrets", cpu="64"))  # fits nowhere
        wait_for(lambda: sum(1 for p in core.list_namespaced_pod("secrets").items if p.spec.node_name) == 6,
                 120, "6 pods bound")
        settle_and_check(admin, 7, 1)
        r.wait_log(r"binding secrets/p-0001 to \S+ failed \(500", 10)
        r.wait_log(r"binding secrets/p-0002 to \S+ failed \(403", 10)
        r.wait_log(r" batch \d+: ", 10)  # DEBUG is on
        r.proc.send_signal(signal.SIGTERM)
        assert r.proc.wait(90) == 0, r.text[-3000:]
        logs = all_logs(tmp_path, ray_head["CS_RAY_TEMP_DIR"])
        assert len(logs) > 5, sorted(logs)  # the Ray session's logs were found
        assert any("CoordinatorActor" in t for t in logs.values())
        leaks = {name: found for name, t in logs.items() if (found := secrets_in(t, secrets))}
        assert not leaks, f"credentials in logs: {leaks}"
    finally:
        if r is not None:
            r.close()
        proxy.stop()
        admin.close()


def run_cli(kubeconfig: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster_scheduler.cli", "run", "--kubeconfig", str(kubeconfig),
                           "--num-cpus", "1"], capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_tls_verification_is_on_by_default(private_cp, tmp_path):
    """A CA that did not sign the apiserver's certificate: one line, exit 2, nothing started; the
    same for a token the apiserver refuses. Neither message shows the token."""
    cp = private_cp
    kc = yaml.safe_load(cp.scheduler_kubeconfig.read_text())
    token = kc["users"][0]["user"]["token"]
    generate_self_signed(tmp_path / "other-ca.crt", tmp_path / "other-ca.key")
    kc["clusters"][0]["cluster"]["certificate-authority"] = str(tmp_path / "other-ca.crt")
    (tmp_path / "wrong-ca.kubeconfig").write_text(yaml.safe_dump(kc))
    proc = run_cli(tmp_path / "wrong-ca.kubeconfig", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "TLS verification of https://127.0.0.1:" in proc.stderr and "certificate verify failed" in proc.stderr
    assert token not in proc.stderr + proc.stdout
    assert "Ray" not in proc.stderr + proc.stdout  # failed before Ray was started

    kc["clusters"][0]["cluster"]["certificate-authority"] = str(cp.ca_file)
    kc["users"][0]["user"]["token"] = token[:-8] + "AAAAAAAA"  # a signature that does not verify
    (tmp_path / "bad-token.kubeconfig").write_text(yaml.safe_dump(kc))
    proc = run_cli(tmp_path / "bad-token.kubeconfig", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1 and "401 Unauthorized" in proc.stderr, proc.stderr
    assert token[:-8] not in proc.stderr + proc.stdout
