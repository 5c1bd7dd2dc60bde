"""Smoke tests against a real kube-apiserver + etcd (and the upstream kube-scheduler): the
credentials, RBAC and binding path the scheduler depends on, and the `controlplane` CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from cluster_scheduler.controlplane.cluster import ManagedProcess
from cluster_scheduler.runtime import storage_listers
from tests.manifests import pod_group

pytestmark = [pytest.mark.apiserver, pytest.mark.timeout(300)]

OUR_SCHEDULER = "cluster-scheduler"
CLI = Path(sys.executable).with_name("cluster-scheduler")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ready_node(name: str) -> client.V1Node:
    resources = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return client.V1Node(
        metadata=client.V1ObjectMeta(name=name, labels={"kubernetes.io/hostname": name}),
        status=client.V1NodeStatus(
            capacity=resources,
            allocatable=resources,
            conditions=[client.V1NodeCondition(type="Ready", status="True", reason="KubeletReady")],
        ),
    )


def pod(name: str, scheduler_name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            scheduler_name=scheduler_name,
            containers=[
                client.V1Container(
                    name="c",
                    image="registry.k8s.io/pause:3.10",
                    resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "64Mi"}),
                )
            ],
        ),
    )


def binding(pod_name: str, node_name: str) -> client.V1Binding:
    return client.V1Binding(
        metadata=client.V1ObjectMeta(name=pod_name),
        target=client.V1ObjectReference(api_version="v1", kind="Node", name=node_name),
    )


def create_ready_node(core: client.CoreV1Api) -> str:
    name = unique("node")
    created = core.create_node(ready_node(name))
    # the apiserver keeps the status given on create: no separate status update is needed
    assert [(c.type, c.status) for c in created.status.conditions] == [("Ready", "True")]
    assert created.status.allocatable["pods"] == "110"
    assert not created.spec.taints  # TaintNodesByCondition admission is off
    return name


def test_scheduler_account_binds_and_the_watch_sees_it(admin_api, scheduler_api, namespace):
    admin, sched = client.CoreV1Api(admin_api), client.CoreV1Api(scheduler_api)
    node, other = create_ready_node(admin), create_ready_node(admin)
    name = unique("mine")
    created = admin.create_namespaced_pod(namespace, pod(name, OUR_SCHEDULER))
    assert created.spec.node_name is None

    # The generated client cannot deserialize the binding response, hence _preload_content=False.
    resp = sched.create_namespaced_pod_binding(name, namespace, binding(name, node), _preload_content=False)
    assert resp.status == 201

    seen = []
    w = watch.Watch()
    for event in w.stream(
        sched.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={name}",
        resource_version=created.metadata.resource_version,
        timeout_seconds=30,
    ):
        seen.append((event["type"], event["object"].spec.node_name))
        if event["type"] == "MODIFIED" and event["object"].spec.node_name == node:
            w.stop()
    assert ("MODIFIED", node) in seen, seen
    bound = admin.read_namespaced_pod(name, namespace)
    assert bound.spec.node_name == node
    assert {c.type: c.status for c in bound.status.conditions}.get("PodScheduled") == "True"

    # a pod is bound exactly once: the apiserver refuses a second binding
    with pytest.raises(ApiException) as exc:
        sched.create_namespaced_pod_binding(name, namespace, binding(name, other), _preload_content=False)
    assert exc.value.status == 409
    assert admin.read_namespaced_pod(name, namespace).spec.node_name == node


def test_peer_kube_scheduler_binds_only_its_own_pods(admin_api, namespace, peer_scheduler):
    admin = client.CoreV1Api(admin_api)
    create_ready_node(admin)
    mine, theirs = unique("mine"), unique("theirs")
    admin.create_namespaced_pod(namespace, pod(mine, OUR_SCHEDULER))  # first in the peer's queue, if it took it
    admin.create_namespaced_pod(namespace, pod(theirs, "default-scheduler"))

    deadline = time.monotonic() + 60
    while not (their_node := admin.read_namespaced_pod(theirs, namespace).spec.node_name):
        assert peer_scheduler.running(), peer_scheduler.process.log_tail()
        assert time.monotonic() < deadline, "kube-scheduler did not bind its pod in 60s"
        time.sleep(0.2)
    assert their_node in {n.metadata.name for n in admin.list_node().items}

    left = admin.read_namespaced_pod(mine, namespace)
    assert left.spec.node_name is None
    assert not left.status.conditions  # not even marked Unschedulable: the peer never looked at it


def test_scheduler_account_is_least_privilege(admin_api, scheduler_api, namespace):
    admin, sched = client.CoreV1Api(admin_api), client.CoreV1Api(scheduler_api)
    name = unique("p")
    admin.create_namespaced_pod(namespace, pod(name, OUR_SCHEDULER))

    review = client.AuthenticationV1Api(scheduler_api).create_self_subject_review(
        client.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
    )
    assert review.status.user_info.username == "system:serviceaccount:kube-system:cluster-scheduler"

    # what the scheduler needs works
    assert any(p.metadata.name == name for p in sched.list_pod_for_all_namespaces().items)
    sched.list_node()
    sched.list_namespace()
    for kind in storage_listers(scheduler_api).values():  # what the volume filters read
        kind(limit=1)
    status = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    sched.patch_namespaced_pod_status(name, namespace, status)
    client.EventsV1Api(scheduler_api).create_namespaced_event(
        namespace,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name=unique(name)),
            event_time=datetime.now(timezone.utc),
            reporting_controller="cluster-scheduler",
            reporting_instance="test",
            action="Scheduling",
            reason="FailedScheduling",
            regarding=client.V1ObjectReference(kind="Pod", namespace=namespace, name=name),
            type="Warning",
            note="smoke test",
        ),
    )

    # preemption: the budgets, and the deletion of a victim (its uid a precondition)
    client.PolicyV1Api(scheduler_api).list_pod_disruption_budget_for_all_namespaces()
    victim = unique("v")
    uid = admin.create_namespaced_pod(namespace, pod(victim, OUR_SCHEDULER)).metadata.uid
    sched.delete_namespaced_pod(victim, namespace, body={"preconditions": {"uid": uid}})

    # and nothing more
    forbidden = [
        lambda: sched.create_namespaced_pod_eviction(name, namespace, {"metadata": {"name": name}}),
        lambda: client.PolicyV1Api(scheduler_api).delete_namespaced_pod_disruption_budget("any", namespace),
        lambda: sched.list_namespaced_secret("kube-system"),
        lambda: sched.read_namespaced_secret("anything", "kube-system"),
        lambda: sched.create_node(ready_node(unique("evil"))),
        lambda: sched.create_namespaced_pod(namespace, pod(unique("evil"), OUR_SCHEDULER)),
    ]
    for call in forbidden:
        with pytest.raises(ApiException) as exc:
            call()
        assert exc.value.status == 403
    assert admin.read_namespaced_pod(name, namespace).metadata.deletion_timestamp is None


def test_scheduler_kubeconfig_verifies_the_server_certificate(control_plane):
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(control_plane.scheduler_kubeconfig), client_configuration=cfg)
    assert cfg.verify_ssl and cfg.ssl_ca_cert
    client.CoreV1Api(client.ApiClient(cfg)).list_node()  # trusted with the apiserver's CA

    cfg.ssl_ca_cert = None  # system trust store only: the self-signed server must be rejected
    cfg.retries = 0
    with pytest.raises(Exception) as exc:
        client.CoreV1Api(client.ApiClient(cfg)).list_node()
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc.value)


# ----------------------------------------------------------------------------- the CLI


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "controlplane", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """`controlplane up` in a workdir of its own; `down` afterwards even if a test failed."""
    assert CLI.exists(), f"{CLI} missing: install the package (pip install -e .)"
    workdir = tmp_path_factory.mktemp("cli-controlplane")
    t0 = time.monotonic()
    up = run_cli("up", "--workdir", str(workdir))
    elapsed = time.monotonic() - t0
    assert up.returncode == 0, up.stderr
    printed = dict(line.split(": ", 1) for line in up.stdout.splitlines() if "kubeconfig: " in line)
    yield {"workdir": workdir, "printed": printed, "stdout": up.stdout, "up_seconds": elapsed}
    run_cli("down", "--workdir", str(workdir))


def test_cli_up_and_status(cli_cluster):
    printed = cli_cluster["printed"]
    assert Path(printed["admin kubeconfig"]).is_file()
    assert Path(printed["scheduler kubeconfig"]).is_file()
    status = run_cli("status", "--workdir", str(cli_cluster["workdir"]))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "readyz          ok" in status.stdout
    # a second `up` in the same workdir is refused with one line, no traceback
    again = run_cli("up", "--workdir", str(cli_cluster["workdir"]))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "already running" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed (optional; scripts/setup.sh installs it where apt can)")
def test_cli_kubeconfigs_work_with_kubectl(cli_cluster):
    for which in ("admin kubeconfig", "scheduler kubeconfig"):
        out = subprocess.run(
            ["kubectl", "--kubeconfig", cli_cluster["printed"][which], "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", (which, out.stdout, out.stderr)


def test_cli_down_leaves_no_process(cli_cluster):
    workdir = cli_cluster["workdir"]
    state = json.loads((workdir / "state.json").read_text())
    procs = [ManagedProcess.from_json(n, p) for n, p in state["processes"].items()]
    assert {p.name for p in procs} == {"etcd", "kube-apiserver"}
    assert all(p.running() for p in procs)

    down = run_cli("down", "--workdir", str(workdir))
    assert down.returncode == 0, down.stderr
    still = [f"{p.name} (pid {p.pid})" for p in procs if p.running()]  # zombies count as gone
    assert not still
    assert not (workdir / "state.json").exists()
    assert run_cli("status", "--workdir", str(workdir)).returncode == 1


def test_cli_errors_are_one_line_and_leave_nothing(tmp_path, monkeypatch):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_cli("up", "--workdir", str(tmp_path / "a"), "--port", str(port))
    assert out.returncode == 2
    assert out.stderr == f"cluster-scheduler controlplane: error: port {port} on 127.0.0.1 is already in use\n"
    assert not (tmp_path / "a" / "state.json").exists()

    monkeypatch.setenv("CS_CONTROLPLANE_BIN", str(tmp_path / "no-such-bin"))
    out = run_cli("up", "--workdir", str(tmp_path / "b"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "kube-apiserver" in out.stderr and "not found" in out.stderr and "Traceback" not in out.stderr


def test_gang_api_is_served_and_the_peer_schedules_gangs(admin_api, namespace, peer_scheduler):
    """Kubernetes 1.37's gang API (scheduling.k8s.io/v1beta1 PodGroup, Pod.spec.schedulingGroup)
    is on for the apiserver and the peer kube-scheduler alike: a gang whose members all exist is
    bound whole and its PodGroup marked scheduled; a gang short of minCount members waits."""
    from cluster_scheduler.api.rest import request
    from cluster_scheduler.api.binder import finish

    admin = client.CoreV1Api(admin_api)
    create_ready_node(admin)
    groups = f"/apis/scheduling.k8s.io/v1beta1/namespaces/{namespace}/podgroups"
    whole, short = unique("whole"), unique("short")
    finish(request(admin_api, "POST", groups, pod_group(whole, 2, namespace=None)))
    finish(request(admin_api, "POST", groups, pod_group(short, 3, namespace=None)))
    members = {whole: [unique("w") for _ in range(2)], short: [unique("s") for _ in range(2)]}
    for group, names in members.items():
        for name in names:
            body = admin_api.sanitize_for_serialization(pod(name, "default-scheduler"))
            body["spec"]["schedulingGroup"] = {"podGroupName": group}
            finish(request(admin_api, "POST", f"/api/v1/namespaces/{namespace}/pods", body))
    stored = admin.read_namespaced_pod(members[whole][0], namespace, _preload_content=False)
    assert json.loads(stored.data)["spec"]["schedulingGroup"] == {"podGroupName": whole}  # the gate keeps the field

    deadline = time.monotonic() + 60
    while not all(admin.read_namespaced_pod(n, namespace).spec.node_name for n in members[whole]):
        assert peer_scheduler.running(), peer_scheduler.process.log_tail()
        assert time.monotonic() < deadline, "kube-scheduler did not bind the gang in 60s"
        time.sleep(0.2)
    resp = request(admin_api, "GET", f"{groups}/{whole}")
    try:
        conditions = {c["type"]: c["status"] for c in json.loads(resp.data).get("status", {}).get("conditions", [])}
    finally:
        resp.release_conn()
    assert conditions.get("PodGroupInitiallyScheduled") == "True", conditions
    assert not any(admin.read_namespaced_pod(n, namespace).spec.node_name for n in members[short])
