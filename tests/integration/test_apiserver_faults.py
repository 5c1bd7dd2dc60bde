"""Faults of the control plane itself, against a real kube-apiserver + etcd of the test's own.

- kube-apiserver restarted mid-run (`cluster-scheduler run` as users start it): the informers
  re-list/re-watch, bindings refused while it was down are retried with backoff (not in a busy
  loop), and every pod still ends bound exactly once or Unschedulable.
- Watch expiry for real: while our informer's watches are held (a fault proxy between the
  scheduler and the apiserver), pods and nodes change and etcd is compacted past our
  resourceVersion; the apiserver (watch cache off for pods and nodes, so watches are served by
  etcd) answers 410 Gone, the informer re-lists, and what it knows afterwards is what the API holds.
- An Unschedulable verdict whose status patch and event fail transiently (503 from the proxy) is
  retried, not lost.

Both end with the placement check and at most one Scheduled event per pod. Recovery times are
printed (`pytest -s`) for docs/reliability.md; nothing here asserts a time.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import threading
import time
import urllib.request

import pytest
import ray
from kubernetes import client

from cluster_scheduler.api.binder import finish
from cluster_scheduler.check import _list_all
from cluster_scheduler.controlplane.cluster import start_control_plane
from tests.conftest import SCHEDULER, Replica, create_slowly, plain_pod, proxied_runtime, settle_and_check, wait_for
from tests.reliability.faults import FaultProxy, FaultRule
from tests.manifests import scheduler_config

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(600)]

# the defaults of config/default.yaml for everything that shapes a recovery (backoff 1 s .. 10 s)
CONFIG = scheduler_config(SCHEDULER, partitions=1, batchSize=50, bindConcurrency=16, metricsPort=0)
RES = {"cpu": "4", "memory": "16Gi", "pods": "40"}


def ready_node(name: str, res: dict = RES) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": res, "allocatable": res, "conditions": [{"type": "Ready", "status": "True"}]}}


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bound_names(core, namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in _list_all(core.list_namespaced_pod, namespace=namespace)
            if p["spec"].get("nodeName")}


# ------------------------------------------------------------------------ apiserver restart


def test_apiserver_restart_mid_run(tmp_path, ray_head):
    ns = "restart"
    cp = start_control_plane(tmp_path / "cp")
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    r = None
    try:
        for i in range(10):
            core.create_node(ready_node(f"r-{i}"))
        core.create_namespace({"metadata": {"name": ns}})
        (tmp_path / "sched.yaml").write_text(CONFIG)
        r = Replica(cp, tmp_path, ray_head, "sched")
        actor_pid = int(r.wait_log(r"coordinator actor running in pid (\d+)", 120).group(1))
        r.wait_log(r"coordinator ready", 120)

        # 300 pods at 30/s; every 60th cannot fit anywhere (64 cpu): 5 Unschedulable, spread over
        # the run so that some are decided around the restart
        total, n_late = 300, 30
        big = {i for i in range(total) if i % 60 == 59}
        pods = [plain_pod(i, ns, cpu="64" if i in big else "100m") for i in range(total)]
        creator = create_slowly(admin, ns, pods, per_s=30, tolerate_errors=True)
        wait_for(lambda: len(bound_names(core, ns)) >= 100, 120, "100 pods bound")

        cpu0, t0 = cpu_seconds(actor_pid), time.monotonic()
        cp.stop_apiserver()
        t_down = time.monotonic()
        time.sleep(5)  # down for a while: bindings, status patches and watches all fail meanwhile
        t_ready_mono = cp.start_apiserver()
        cpu1, t1 = cpu_seconds(actor_pid), time.monotonic()
        t_ready = time.time() - (time.monotonic() - t_ready_mono)
        before = bound_names(core, ns)  # bound before the apiserver went down
        # Pods created from here on can only be bound after the restart: without them, a slow
        # machine (the first test of a cold CI run) could see every pod of the first wave
        # created during the outage and bound before this list, and no binding left to time.
        late = [plain_pod(total + i, ns, cpu="100m") for i in range(n_late)]
        late_creator = create_slowly(admin, ns, late, per_s=30, tolerate_errors=True)
        t_first = None
        deadline = time.monotonic() + 180
        while t_first is None and time.monotonic() < deadline:
            if bound_names(core, ns) - before:
                t_first = time.time()
            else:
                time.sleep(0.1)
        assert t_first is not None, f"no binding within 180 s of the restart:\n{r.text[-3000:]}"

        creator.join(180)
        late_creator.join(180)
        assert not creator.is_alive() and not late_creator.is_alive()
        report, _events = settle_and_check(admin, total + n_late, len(big), timeout=240)
        assert r.proc.poll() is None, r.text[-3000:]

        r.proc.send_signal(signal.SIGTERM)
        assert r.proc.wait(90) == 0, r.text[-3000:]
        text = r.text
        stats = re.search(r"stopped: batches=\d+ .*bind_retries=(\d+) bind_dropped=(\d+)", text)
        assert stats, text[-3000:]
        retries, dropped = int(stats.group(1)), int(stats.group(2))
        watch_failures = len(re.findall(r"list/watch failed", text))
        retry_lines = len(re.findall(r"failed \(.*\): retrying after backoff", text))
        outage = t1 - t0
        cpu_share = (cpu1 - cpu0) / outage
        print(f"\napiserver restart: down {t_ready_mono - t_down:.2f}s (stop took {t_down - t0:.2f}s); "
              f"first binding {t_first - t_ready:.2f}s after /readyz was ok again; "
              f"{report.bound} bound, {report.unschedulable} unschedulable; bind retries {retries} "
              f"(dropped {dropped}), list/watch failures {watch_failures}, pod creates retried "
              f"{creator.failed_creates + late_creator.failed_creates}; coordinator CPU {cpu1 - cpu0:.2f}s in {outage:.1f}s "
              f"({100 * cpu_share:.0f}%)")
        # No busy loop: with backoff 1 s, 2 s, 4 s ... each pod in flight is retried at most about
        # log2(outage) + outage/10 times, and the informers back off 1 s, 2 s, ... per kind.
        # The bounds are an order of magnitude above that, and orders of magnitude below a loop
        # that retries as fast as the token bucket (5,000/s) lets it.
        assert retries == retry_lines
        assert retries <= 10 * (total + n_late), f"{retries} binding retries for {total + n_late} pods"
        assert watch_failures <= 3 * (outage + 10), f"{watch_failures} list/watch failures in {outage:.0f}s"
    finally:
        if r is not None:
            r.close()
        admin.close()
        cp.stop()


# --------------------------------------------------------------------- watch expiry (410 Gone)

WATCHED = r"^/api/v1/(pods|nodes)$"  # what the informer lists and watches (all namespaces)


def etcd_post(etcd_url: str, path: str, body: dict) -> dict:
    """etcd's JSON gRPC gateway (plain HTTP on loopback here, see controlplane/cluster.py)."""
    req = urllib.request.Request(etcd_url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def compact_etcd(etcd_url: str) -> int:
    """Compact etcd's history up to its current revision (physically); returns that revision."""
    rev = int(etcd_post(etcd_url, "/v3/kv/range", {"key": base64.b64encode(b"/registry/").decode()})
              ["header"]["revision"])
    etcd_post(etcd_url, "/v3/kv/compaction", {"revision": str(rev), "physical": True})
    return rev


def test_watch_expired_after_etcd_compaction_relists(tmp_path, ray_head, monkeypatch, caplog):
    """While our pod and node watches are held, pods are deleted and created, a node is cordoned,
    one removed and one added, and etcd is compacted past our resourceVersion. Released, the
    watches reach the apiserver with that old resourceVersion and get 410 Gone (the watch cache is
    off for pods and nodes, so etcd serves them); the informer re-lists, turns the difference into
    events (the deletions included) and the scheduler places the new pods on what is really free."""
    caplog.set_level("INFO", logger="cluster_scheduler.api.informer")
    monkeypatch.setenv("RAY_AUTH_MODE", ray_head["RAY_AUTH_MODE"])
    cp = start_control_plane(tmp_path / "cp", apiserver_args=["--watch-cache-sizes=pods#0,nodes#0"])
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    rt = None
    ray.init(address=ray_head["RAY_ADDRESS"], log_to_driver=False)
    try:
        ns = "gone"
        small = {"cpu": "2", "memory": "8Gi", "pods": "20"}
        for i in range(8):
            core.create_node(ready_node(f"g-{i}", small))
        core.create_namespace({"metadata": {"name": ns}})
        # every pod and node watch is ended after 2 s (cleanly, as the apiserver ends watches):
        # the informer resumes from its resourceVersion, and a later hold catches it soon
        proxy.add_rule(FaultRule(path=WATCHED, query="watch=", cut_watch_after_s=2.0))
        rt = proxied_runtime(cp, proxy, tmp_path, bind_concurrency=8, backoff_initial_s=0.2, backoff_max_s=1.0)
        assert rt.wait_synced(60)
        pods_inf, nodes_inf = rt.informer.informers["pods"], rt.informer.informers["nodes"]

        # 32 x 500m fill the 8 x 2 cpu exactly
        for i in range(32):
            finish(core.create_namespaced_pod(ns, plain_pod(i, ns, cpu="500m"), _preload_content=False))
        wait_for(lambda: len(bound_names(core, ns)) == 32, 120, "32 pods bound")
        wait_for(lambda: rt.coordinator.stats.bound == 32 and not rt.coordinator.assumed, 30, "bindings confirmed")
        assert pods_inf.relists == 1 and nodes_inf.relists == 1  # cut watches resumed, never re-listed
        old_rv = pods_inf.resource_version

        # hold the next pod and node watch: they resume from old_rv once released
        proxy.clear_rules()
        hold = threading.Event()
        held = proxy.add_rule(FaultRule(path=WATCHED, query="watch=", hold=hold, count=2))
        wait_for(lambda: held.injected == 2, 30, "both watches held")

        on = {}
        for p in _list_all(core.list_namespaced_pod, namespace=ns):
            on.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
        assert all(len(v) == 4 for v in on.values()) and len(on) == 8, on
        for node in ("g-0", "g-1", "g-7"):  # 12 pods deleted: 6 cpu free, on three nodes
            for name in on[node]:
                core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        core.patch_node("g-0", {"spec": {"unschedulable": True}})  # cordoned: its 2 cpu do not count
        core.delete_node("g-7")  # gone: neither do its
        core.create_node(ready_node("g-8", small))  # new: 2 cpu more
        # 10 new pods: 8 fit (g-1 and g-8), 2 must end Unschedulable
        for i in range(100, 110):
            finish(core.create_namespaced_pod(ns, plain_pod(i, ns, cpu="500m"), _preload_content=False))
        # what the held watches have not seen, and a history that no longer goes back to old_rv
        compacted = compact_etcd(cp.etcd_url)
        assert compacted > int(old_rv)
        assert pods_inf.resource_version == old_rv  # nothing seen meanwhile

        t_release = time.monotonic()
        hold.set()
        wait_for(lambda: pods_inf.relists == 2 and nodes_inf.relists == 2, 60, "both informers to re-list")
        t_relisted = time.monotonic()
        report, _events = settle_and_check(admin, 30, 2, timeout=120)
        gone = [r.getMessage() for r in caplog.records if "is gone, relisting" in r.getMessage()]
        assert any(m.startswith("pods:") for m in gone) and any(m.startswith("nodes:") for m in gone), gone
        print(f"\nwatch expiry: etcd compacted to {compacted} past our resourceVersion {old_rv}; both "
              f"informers re-listed {t_relisted - t_release:.2f}s after the watches were released; "
              f"{report.bound} bound, {report.unschedulable} unschedulable")

        # what the informer and the coordinator know is what the API holds
        api_pods = _list_all(core.list_pod_for_all_namespaces)
        api_nodes = _list_all(core.list_node)
        coord = rt.coordinator
        wait_for(lambda: set(pods_inf.known) == {p["metadata"]["uid"] for p in api_pods}, 30, "informer's pods")
        assert set(nodes_inf.known) == {n["metadata"]["name"] for n in api_nodes}
        assert set(coord.nodes) == {n["metadata"]["name"] for n in api_nodes}
        assert set(coord.bound) == {p["metadata"]["uid"] for p in api_pods if p["spec"].get("nodeName")}
        placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in api_pods
                  if p["metadata"]["namespace"] == ns}
        new_on = sorted(placed[f"p-{i:04d}"] or "-" for i in range(100, 110))
        assert new_on == ["-"] * 2 + ["g-1"] * 4 + ["g-8"] * 4, new_on
        assert coord.stats.bind_dropped == 0
    finally:
        if rt is not None:
            rt.stop()
        ray.shutdown()
        proxy.stop()
        admin.close()
        cp.stop()


# ----------------------------------------------- an Unschedulable verdict posted while it is down


def test_unschedulable_verdict_survives_transient_failures(tmp_path, ray_head, monkeypatch):
    """The PodScheduled=False patch and the FailedScheduling event of a pod that fits nowhere are
    posted once per verdict; when both fail transiently (503, as while the apiserver restarts) they
    are retried, so the pod still ends with its condition and its event."""
    monkeypatch.setenv("RAY_AUTH_MODE", ray_head["RAY_AUTH_MODE"])
    cp = start_control_plane(tmp_path / "cp")
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    rt = None
    ray.init(address=ray_head["RAY_ADDRESS"], log_to_driver=False)
    try:
        ns = "verdict"
        core.create_node(ready_node("v-0"))
        core.create_namespace({"metadata": {"name": ns}})
        status = proxy.add_rule(FaultRule(path=r"/pods/p-0001/status$", method="PATCH", status=503, count=2))
        event = proxy.add_rule(FaultRule(path=rf"^/apis/events.k8s.io/v1/namespaces/{ns}/events$", method="POST",
                                         status=503, count=2))
        rt = proxied_runtime(cp, proxy, tmp_path, bind_concurrency=4)
        assert rt.wait_synced(60)
        core.create_namespaced_pod(ns, plain_pod(0, ns, cpu="1"))
        core.create_namespaced_pod(ns, plain_pod(1, ns, cpu="64"))  # fits nowhere
        report, _events = settle_and_check(admin, 2, 1, timeout=60)
        assert status.injected == 2 and event.injected == 2
        assert rt.coordinator.stats.unschedulable == 1  # one verdict, posted once, retried
    finally:
        if rt is not None:
            rt.stop()
        ray.shutdown()
        proxy.stop()
        admin.close()
        cp.stop()
