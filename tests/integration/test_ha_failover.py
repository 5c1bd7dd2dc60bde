"""High availability against a real apiserver, with `cluster-scheduler run` as users start it.

- Two replicas with `--leader-elect` on one apiserver: only the Lease holder schedules; SIGKILL of
  the leader mid-run hands the Lease to the standby, which finishes the workload.
- The coordinator actor's process killed mid-run: Ray restarts it, the new one rebuilds its state
  from the API and finishes the workload.

Both end with the placement check (capacity, constraints, every pod bound or Unschedulable with an
event) and with at most one Scheduled event per pod (a pod "bound twice" would have two: the binder
posts one per successful binding). The failover times are printed (`pytest -s`) for
docs/reliability.md; the asserted bounds are loose (shared 2-core machines).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest
import ray
import yaml
from kubernetes import client

from cluster_scheduler.api.leader import micro_time
from cluster_scheduler.config import SchedulerConfig
from cluster_scheduler.controlplane.cluster import start_control_plane
from cluster_scheduler.runtime import SchedulerRuntime
from tests.conftest import BindWatch, Replica, create_slowly, plain_pod, proxied_runtime, settle_and_check, wait_for
from tests.reliability.faults import FaultProxy, FaultRule
from tests.manifests import scheduler_config

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(420)]

SCHEDULER = "cluster-scheduler"
NS = "ha"
LEASE = "ha-test"
TAKEOVER_LIMIT_S = 15.0


def pod(i: int, cpu: str = "100m") -> dict:
    return plain_pod(i, NS, cpu)


CONFIG = scheduler_config(SCHEDULER, partitions=1, batchSize=50, bindConcurrency=16, metricsPort=0,
                          backoffInitialSeconds=0.2, backoffMaxSeconds=1, leaseName=LEASE,
                          leaseNamespace="kube-system", leaseDurationSeconds=4, renewDeadlineSeconds=3,
                          retryPeriodSeconds=1)


@pytest.fixture
def cluster(tmp_path):
    cp = start_control_plane(tmp_path / "cp")
    admin = cp.api_client("admin")
    core = client.CoreV1Api(admin)
    res = {"cpu": "4", "memory": "16Gi", "pods": "40"}
    for i in range(10):
        core.create_node({"metadata": {"name": f"h-{i}", "labels": {"kubernetes.io/hostname": f"h-{i}"}},
                          "status": {"capacity": res, "allocatable": res,
                                     "conditions": [{"type": "Ready", "status": "True"}]}})
    core.create_namespace({"metadata": {"name": NS}})
    (tmp_path / "sched.yaml").write_text(CONFIG)
    try:
        yield cp, admin
    finally:
        admin.close()
        cp.stop()


def read_lease(admin) -> dict:
    resp = client.CoordinationV1Api(admin).read_namespaced_lease(LEASE, "kube-system", _preload_content=False)
    return orjson.loads(resp.data)["spec"]


def holder_pid(admin) -> int | None:
    """The driver pid in a holder identity (`host_pid_uuid`, see runtime.default_identity)."""
    m = re.search(r"_(\d+)_[0-9a-f]{8}$", holder(admin))
    return int(m.group(1)) if m else None


def holder(admin) -> str:
    try:
        return read_lease(admin).get("holderIdentity") or ""
    except client.ApiException as exc:
        if exc.status == 404:
            return ""
        raise


def test_leader_failover(cluster, ray_head, tmp_path):
    cp, admin = cluster
    a = Replica(cp, tmp_path, ray_head, "a", "--leader-elect")
    b = None
    watch = None
    try:
        wait_for(lambda: holder_pid(admin) == a.proc.pid, 120, "replica a to lead")
        a.wait_log(r"coordinator ready \(leader\)", 60)
        b = Replica(cp, tmp_path, ray_head, "b", "--leader-elect")
        b.wait_log(r"coordinator ready \(standby\)", 120)
        assert holder_pid(admin) == a.proc.pid

        total, unsched = 400, 4
        pods = [pod(i) for i in range(total - unsched)] + [pod(i, cpu="64") for i in range(total - unsched, total)]
        watch = BindWatch(admin, NS)
        creator = create_slowly(admin, NS, pods, per_s=40)
        wait_for(lambda: watch.bound() >= 100, 120, "100 pods bound by the leader")
        assert not re.search(r"leader \S+: scheduling", b.text), "the standby scheduled"
        a_renewals = read_lease(admin)

        t_kill = time.time()
        a.proc.send_signal(signal.SIGKILL)
        wait_for(lambda: holder_pid(admin) == b.proc.pid, 60, "replica b to take the lease")
        t_lease = time.time()
        # the dead leader's last bindings land within milliseconds; later ones are the new leader's
        t_first = watch.first_after(t_kill + 1.0, 60)
        creator.join(60)
        report, _events = settle_and_check(admin, total, unsched)
        lease = read_lease(admin)
        assert lease["leaseTransitions"] == a_renewals.get("leaseTransitions", 0) + 1
        takeover, first = t_lease - t_kill, t_first - t_kill
        print(f"\nleader takeover: lease {takeover:.2f}s, first binding by the new leader {first:.2f}s after "
              f"SIGKILL; {report.bound} bound, {report.unschedulable} unschedulable")
        assert first < TAKEOVER_LIMIT_S, f"takeover took {first:.1f}s"
        b.wait_log(r"leader \S+: scheduling", 5)
        # the standby had its partition loaded before it led: the takeover did not wait for it
        assert b.text.index("partition 0/1 loaded") < b.text.index("became leader"), b.text[-3000:]

        # a clean stop releases the Lease at once
        b.proc.send_signal(signal.SIGTERM)
        assert b.proc.wait(90) == 0, b.text[-3000:]
        assert holder(admin) == ""
        assert re.search(r"stopped: batches=\d+ scheduled=\d+ bound=\d+", b.text)
    finally:
        if watch is not None:
            watch.stop()
        for r in (a, b):
            if r is not None:
                r.close()


def test_coordinator_actor_restart(cluster, ray_head, tmp_path):
    cp, admin = cluster
    r = Replica(cp, tmp_path, ray_head, "solo")
    watch = None
    try:
        pid1 = int(r.wait_log(r"coordinator actor running in pid (\d+)", 120).group(1))
        r.wait_log(r"coordinator ready", 60)
        total, unsched = 400, 4
        pods = [pod(i) for i in range(total - unsched)] + [pod(i, cpu="64") for i in range(total - unsched, total)]
        watch = BindWatch(admin, NS)
        creator = create_slowly(admin, NS, pods, per_s=40)
        wait_for(lambda: watch.bound() >= 100, 120, "100 pods bound")

        t_kill = time.time()
        os.kill(pid1, signal.SIGKILL)  # the coordinator actor's worker process, as a crash would
        pid2 = int(r.wait_log(r"coordinator actor restarted: pid \d+ -> (\d+)", 120).group(1))
        assert pid2 != pid1
        t_first = watch.first_after(t_kill + 1.0, 120)
        creator.join(60)
        report, _events = settle_and_check(admin, total, unsched)
        print(f"\ncoordinator restart: first binding {t_first - t_kill:.2f}s after SIGKILL of the actor; "
              f"{report.bound} bound, {report.unschedulable} unschedulable")
        assert r.proc.poll() is None

        r.proc.send_signal(signal.SIGTERM)
        assert r.proc.wait(90) == 0, r.text[-3000:]
        assert re.search(r"stopped: batches=\d+ scheduled=\d+ bound=\d+", r.text)
    finally:
        if watch is not None:
            watch.stop()
        r.close()


def test_binding_that_lands_late_is_not_bound_twice(ray_head, tmp_path, monkeypatch):
    """A dead coordinator's binding that reaches the apiserver after the new coordinator listed the
    pod as pending: the new one's own binding is refused with 409, the binder drops it (no retry),
    the watch shows the pod where the first binding put it, and the ledger counts it there only.

    Made deterministic with the fault proxy: our binding of `late` is held 3 s, and meanwhile the
    "old" binding (the admin, straight to the apiserver) puts it on the other node."""
    monkeypatch.setenv("RAY_AUTH_MODE", ray_head["RAY_AUTH_MODE"])
    cp = start_control_plane(tmp_path / "cp")
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    admin = cp.api_client("admin")
    rt = None
    ray.init(address=ray_head["RAY_ADDRESS"], log_to_driver=False)
    try:
        core = client.CoreV1Api(admin)
        res = {"cpu": "2", "memory": "8Gi", "pods": "10"}
        for n in ("n1", "n2"):
            core.create_node({"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}},
                              "status": {"capacity": res, "allocatable": res,
                                         "conditions": [{"type": "Ready", "status": "True"}]}})
        core.create_namespace({"metadata": {"name": NS}})
        late = pod(0, cpu="1")
        late["metadata"]["name"] = "late"
        core.create_namespaced_pod(NS, late)
        rule = proxy.add_rule(FaultRule(path=r"/pods/late/binding$", method="POST", delay_s=3.0, count=1))
        rt = proxied_runtime(cp, proxy, tmp_path, bind_concurrency=4)
        coord = rt.coordinator
        ours = wait_for(lambda: next((n for _b, n in list(coord.assumed.values())), None), 60,
                        "our binding of `late` to be in flight")
        other = "n2" if ours == "n1" else "n1"
        uid = core.read_namespaced_pod("late", NS).metadata.uid
        # the earlier coordinator's binding lands first
        core.create_namespaced_binding(NS, {"metadata": {"name": "late"}, "target": {"kind": "Node", "name": other}},
                                       _preload_content=False)
        wait_for(lambda: coord.stats.bind_dropped == 1, 30, "our binding to be refused (409) and dropped")
        wait_for(lambda: uid in coord.bound and uid not in coord.assumed, 30, "the watch to show `late` bound")
        assert rule.injected == 1
        assert core.read_namespaced_pod("late", NS).spec.node_name == other
        assert coord.stats.bound == 0 and coord.stats.bind_retries == 0
        # the ledger holds `late` on `other` only: three more 1-cpu pods fill both nodes exactly
        for i in range(1, 4):
            core.create_namespaced_pod(NS, pod(i, cpu="1"))
        wait_for(lambda: coord.stats.bound == 3, 60, "three more pods bound")
        report, _events = settle_and_check(admin, 4, 0)
        placed = Counter(p.spec.node_name for p in core.list_namespaced_pod(NS).items)
        assert placed == {"n1": 2, "n2": 2}
    finally:
        if rt is not None:
            rt.stop()
        ray.shutdown()
        proxy.stop()
        admin.close()
        cp.stop()


def test_lost_lease_stops_scheduling(ray_head, tmp_path, monkeypatch):
    """A leader whose Lease is taken over (here: rewritten by someone else, as after a partition
    from the apiserver) stops scheduling within the renew period and does not come back."""
    monkeypatch.setenv("RAY_AUTH_MODE", ray_head["RAY_AUTH_MODE"])
    cp = start_control_plane(tmp_path / "cp")
    admin = cp.api_client("admin")
    rt = None
    ray.init(address=ray_head["RAY_ADDRESS"], log_to_driver=False)
    try:
        core = client.CoreV1Api(admin)
        res = {"cpu": "4", "memory": "8Gi", "pods": "10"}
        core.create_node({"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
                          "status": {"capacity": res, "allocatable": res,
                                     "conditions": [{"type": "Ready", "status": "True"}]}})
        core.create_namespace({"metadata": {"name": NS}})
        cfg = SchedulerConfig()
        cfg = replace(cfg, runtime=replace(cfg.runtime, partitions=1, metrics_port=0, leader_elect=True,
                                           lease_name=LEASE, lease_duration_s=4, renew_deadline_s=3,
                                           retry_period_s=1))
        rt = SchedulerRuntime(cfg, str(cp.scheduler_kubeconfig), actor_options={"num_cpus": 0.25})
        rt.start()
        wait_for(lambda: rt.leading, 30, "leadership")
        core.create_namespaced_pod(NS, pod(1))
        wait_for(lambda: core.read_namespaced_pod("p-0001", NS).spec.node_name, 30, "a pod bound as leader")
        assert holder(admin) == rt.identity

        coord_api = client.CoordinationV1Api(admin)
        lease = coord_api.read_namespaced_lease(LEASE, "kube-system")
        now = micro_time()
        lease.spec.holder_identity, lease.spec.lease_duration_seconds = "intruder", 60
        lease.spec.acquire_time = lease.spec.renew_time = now
        coord_api.replace_namespaced_lease(LEASE, "kube-system", lease)
        t0 = time.monotonic()
        wait_for(lambda: rt.stopped and rt.lost_leadership, 10, "the runtime to stop on the lost lease")
        print(f"\nlost lease noticed in {time.monotonic() - t0:.2f}s")
        assert not rt.leading and rt.stats()["lost_leadership"]
        core.create_namespaced_pod(NS, pod(2))
        time.sleep(3)
        assert not core.read_namespaced_pod("p-0002", NS).spec.node_name  # nobody schedules any more
        rt.stop()
        assert holder(admin) == "intruder"  # a lost lease is not "released" over its new holder
        rt = None
    finally:
        if rt is not None:
            rt.stop()
        ray.shutdown()
        admin.close()
        cp.stop()


def test_coordinator_killed_while_committing_a_gang(cluster, ray_head, tmp_path):
    """The coordinator actor SIGKILLed with a gang half bound: the fault proxy holds four of gang
    g0's eight bindings (never forwarded), the other four land, then the actor dies. The restarted
    one lists g0 with four members placed and completes it; a second gang is whole, a gang that can
    never fit has no member bound. Every gang whole or not at all, no pod bound twice."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.api.binder import finish
    from cluster_scheduler.check import _list_all, check_placement, fetch_pod_groups

    cp, admin = cluster
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    watch = None
    token = yaml.safe_load(cp.scheduler_kubeconfig.read_text())["users"][0]["user"]["token"]
    r = Replica(cp, tmp_path, ray_head, "gang", kubeconfig=proxy.kubeconfig(tmp_path / "sched.kubeconfig", token))
    try:
        pid1 = int(r.wait_log(r"coordinator actor running in pid (\d+)", 120).group(1))
        r.wait_log(r"coordinator ready", 60)
        held = proxy.add_rule(FaultRule(path=r"/pods/g0-[4-7]/binding$", method="POST", timeout=True,
                                        delay_s=60, count=4))
        groups = {"g0": (8, "1"), "g1": (8, "1"), "huge": (3, "10")}
        for g, (n, _cpu) in groups.items():
            finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{NS}/podgroups",
                                {"metadata": {"name": g}, "spec": {"schedulingPolicy": {"gang": {"minCount": n}}}}))
        watch = BindWatch(admin, NS)
        for g, (n, cpu) in groups.items():
            for i in range(n):
                p = pod(0, cpu)
                p["metadata"]["name"] = f"{g}-{i}"
                p["spec"]["schedulingGroup"] = {"podGroupName": g}
                finish(rest.request(admin, "POST", f"/api/v1/namespaces/{NS}/pods", p))
        wait_for(lambda: held.injected == 4 and sum(n.startswith("g0-") for n in watch.first_seen) == 4, 60,
                 "four of g0 bound and four bindings held")
        os.kill(pid1, signal.SIGKILL)
        r.wait_log(r"coordinator actor restarted: pid \d+ -> (\d+)", 120)
        wait_for(lambda: sum(n.startswith(("g0-", "g1-")) for n in watch.first_seen) == 16, 120,
                 f"g0 and g1 whole: {sorted(watch.first_seen)}")
        report, events = settle_and_check(admin, 19, 3)
        report = check_placement(_list_all(client.CoreV1Api(admin).list_node),
                                 _list_all(client.CoreV1Api(admin).list_pod_for_all_namespaces),
                                 scheduler_name="cluster-scheduler", pod_groups=fetch_pod_groups(admin))
        assert (report.gangs_whole, report.gangs_unbound) == (2, 1), report.summary()
        assert not [v for v in report.violations if v.kind != "missing_event"], report.summary()
        assert held.injected == 4
    finally:
        if watch is not None:
            watch.stop()
        r.close()
        proxy.stop()


def test_coordinator_killed_between_eviction_and_binding(cluster, ray_head, tmp_path):
    """A preemptor nominated, its victim terminating (a grace period, no kubelet), and then the
    coordinator actor SIGKILLed: the restarted one finds the preemptor pending with
    nominatedNodeName and the victim still terminating there, evicts no one else, and binds the
    preemptor on that node once the victim is gone."""
    cp, admin = cluster
    core = client.CoreV1Api(admin)
    r = Replica(cp, tmp_path, ray_head, "preempt")
    try:
        pid1 = int(r.wait_log(r"coordinator actor running in pid (\d+)", 120).group(1))
        r.wait_log(r"coordinator ready", 60)
        for i in range(40):  # 10 nodes x 4 CPUs, full
            p = pod(i, cpu="1")
            p["spec"].update(priority=1, terminationGracePeriodSeconds=600)
            core.create_namespaced_pod(NS, p)
        wait_for(lambda: sum(1 for p in core.list_namespaced_pod(NS).items if p.spec.node_name) == 40, 120,
                 "40 low pods bound")
        high = pod(100, cpu="1")
        high["metadata"]["name"] = "high"
        high["spec"]["priority"] = 100
        core.create_namespaced_pod(NS, high)

        def terminating():
            return [p for p in core.list_namespaced_pod(NS).items if p.metadata.deletion_timestamp]
        victim = wait_for(terminating, 60, "a victim terminating")[0]
        wait_for(lambda: core.read_namespaced_pod("high", NS).status.nominated_node_name == victim.spec.node_name,
                 30, "the preemptor nominated")
        os.kill(pid1, signal.SIGKILL)
        r.wait_log(r"coordinator actor restarted: pid \d+ -> (\d+)", 120)

        def says_waiting():
            conds = core.read_namespaced_pod("high", NS).status.conditions or []
            return any(c.type == "PodScheduled" and (c.message or "").endswith(
                "preemption: not eligible due to a terminating pod on the nominated node.") for c in conds)
        wait_for(says_waiting, 120, "the restarted coordinator to see the preemptor wait")
        time.sleep(2)
        assert [p.metadata.name for p in terminating()] == [victim.metadata.name]  # nobody else
        assert not core.read_namespaced_pod("high", NS).spec.node_name
        core.delete_namespaced_pod(victim.metadata.name, NS, grace_period_seconds=0)  # as a kubelet would
        wait_for(lambda: core.read_namespaced_pod("high", NS).spec.node_name == victim.spec.node_name, 60,
                 "the preemptor bound where its victim ran")
        assert len(terminating()) == 0 and len(core.list_namespaced_pod(NS).items) == 40
    finally:
        r.close()


def test_coordinator_killed_between_volume_binding_and_pod_binding(cluster, ray_head, tmp_path):
    """PreBind done, the pod's binding held by the fault proxy, then the coordinator actor
    SIGKILLed: the volume chosen for the pod's WaitForFirstConsumer claim is bound to it (our
    claimRef, the PV controller's binding), and the restarted coordinator finds the claim bound and
    binds the pod where that volume is. No other volume is taken, no pod bound twice."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.api.binder import finish
    from cluster_scheduler.controlplane.controllers import (BENCH_VOLUME_ARGS, VOLUME_CONTROLLERS,
                                                            start_controller_manager)

    cp, admin = cluster
    core = client.CoreV1Api(admin)
    kcm = start_controller_manager(cp, VOLUME_CONTROLLERS, extra_args=BENCH_VOLUME_ARGS)
    proxy = FaultProxy(cp.url, cp.ca_file, workdir=tmp_path / "proxy").start()
    token = yaml.safe_load(cp.scheduler_kubeconfig.read_text())["users"][0]["user"]["token"]
    r = Replica(cp, tmp_path, ray_head, "volume", kubeconfig=proxy.kubeconfig(tmp_path / "sched.kubeconfig", token))
    watch = None
    try:
        client.StorageV1Api(admin).create_storage_class({
            "metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"})
        for i in (3, 7):  # two local disks: the pod goes to one of them
            core.create_persistent_volume({"metadata": {"name": f"disk-{i}"}, "spec": {
                "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                "local": {"path": "/mnt/disk"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                           "values": [f"h-{i}"]}]}]}}}})
        core.create_namespaced_persistent_volume_claim(NS, {"metadata": {"name": "data"}, "spec": {
            "storageClassName": "local", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}})
        pid1 = int(r.wait_log(r"coordinator actor running in pid (\d+)", 120).group(1))
        r.wait_log(r"coordinator ready", 60)
        held = proxy.add_rule(FaultRule(path=rf"/namespaces/{NS}/pods/db/binding$", method="POST", timeout=True,
                                        delay_s=60, count=1))
        watch = BindWatch(admin, NS)
        p = pod(0)
        p["metadata"]["name"] = "db"
        p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
        finish(rest.request(admin, "POST", f"/api/v1/namespaces/{NS}/pods", p))

        def claim_bound() -> str:
            c = core.read_namespaced_persistent_volume_claim("data", NS)
            return c.spec.volume_name if c.status.phase == "Bound" else ""

        disk = wait_for(claim_bound, 60, "the claim bound by the PV controller after our PreBind")
        wait_for(lambda: held.injected == 1, 60, "the pod's binding held")
        assert "db" not in watch.first_seen
        os.kill(pid1, signal.SIGKILL)
        r.wait_log(r"coordinator actor restarted: pid \d+ -> (\d+)", 120)
        wait_for(lambda: "db" in watch.first_seen, 120, "db bound by the restarted coordinator")
        node = core.read_namespaced_pod("db", NS).spec.node_name
        assert node == f"h-{disk.rsplit('-', 1)[1]}"  # where its volume is
        volumes = {v.metadata.name: v for v in core.list_persistent_volume().items}
        other = volumes["disk-7" if disk == "disk-3" else "disk-3"]
        assert other.spec.claim_ref is None and other.status.phase == "Available"  # nothing leaked
        assert volumes[disk].spec.claim_ref.name == "data"
        assert watch.first_seen.get("db") is not None
    finally:
        if watch is not None:
            watch.stop()
        r.close()
        proxy.stop()
        kcm.stop()
