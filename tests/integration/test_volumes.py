"""Volumes end to end: the scheduler against a real apiserver and upstream's PersistentVolume
controller (kube-controller-manager with only the volume controllers), which makes volumes
Available, binds Immediate and pre-bound claims, and completes the bindings our PreBind writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from cluster_scheduler.controlplane.controllers import BENCH_VOLUME_ARGS, VOLUME_CONTROLLERS, start_controller_manager
from cluster_scheduler.loadtest.kube import ResourcePaths, create
from cluster_scheduler.simulate import simulate
from cluster_scheduler.workload import CreateNodes, CreateObjects, CreatePods, Workload, load_workload
from tests.integration.conftest import (SCHEDULER, check_cluster, node_obj, pod_map, pod_obj, pod_state, wait_for,
                                       wait_settled)
from tests.provisioner import Provisioner

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(600)]

SMALL = Path(__file__).resolve().parents[1] / "workloads" / "volumes-small.yaml"


@pytest.fixture
def volume_controllers(private_cp):
    kcm = start_controller_manager(private_cp, VOLUME_CONTROLLERS, extra_args=BENCH_VOLUME_ARGS)
    yield kcm
    kcm.stop()


def create_workload(admin, wl: Workload) -> None:
    """Every object of the workload, in its order: nodes, createObjects, then per createPods op its
    claims (and pre-bound volumes) before its pods."""
    core = client.CoreV1Api(admin)
    paths = ResourcePaths(admin)
    for ns in wl.namespaces:
        try:
            core.create_namespace({"metadata": {"name": ns}})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    for op, start in wl.steps():
        if isinstance(op, CreateNodes):
            for n in wl.iter_nodes(op, start):
                create(core, "/api/v1/nodes", n)
        elif isinstance(op, CreateObjects):
            for o in op.objects:
                create(core, paths.path(o), o)
        elif isinstance(op, CreatePods):
            for pv, claim in wl.iter_volumes(op, start):
                for o in (pv, claim):
                    if o is not None:
                        create(core, paths.path(o), o)
            for p in wl.iter_pods(op, start, SCHEDULER):
                create(core, f"/api/v1/namespaces/{op.namespace}/pods", p)


def claims_of(admin, ns: str) -> dict[str, dict]:
    return {c.metadata.name: c for c in client.CoreV1Api(admin).list_namespaced_persistent_volume_claim(ns).items}


def test_volumes_small_end_to_end(volume_controllers, admin, run_scheduler):
    """Local volumes bound where their pods go (PreBind: our claimRef, the PV controller's
    binding), an Immediate claim's zone, pre-bound volumes, one pod more than local volumes, and a
    missing claim that appears later: the same placements as `simulate`, the check clean."""
    wl = load_workload(SMALL)
    expected = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in simulate(wl).pod_dicts}
    run_scheduler(2, batch_size=4)
    create_workload(admin, wl)
    counts = wait_settled(admin, "db", 10, 180, want_bound=8)
    assert counts == {"bound": 8, "unschedulable": 2, "pending": 0}
    pods = pod_map(admin, "db")
    got = {name: p["spec"].get("nodeName") for name, p in pods.items()}
    # the zonal pods wait for the PV controller to bind their Immediate claim, so which pods share
    # their nodes depends on timing; in their zone either way
    assert {n: v for n, v in got.items() if not n.startswith("zonal")} == {
        n: v for n, v in expected.items() if not n.startswith("zonal")}
    zone_b = {f"volumes-small-node-{i}" for i in (1, 3, 5)}
    assert {got["zonal-0"], got["zonal-1"]} <= zone_b
    claims = claims_of(admin, "db")
    for i in range(4):  # each local volume's claim bound by the PV controller to the pod's node's disk
        node = got[f"pg-{i}"]
        assert claims[f"pg-{i}-pvc"].spec.volume_name == f"local-{node.rsplit('-', 1)[1]}"
        assert claims[f"pg-{i}-pvc"].status.phase == "Bound"
    assert claims["pg-4-pvc"].status.phase == "Pending"  # no pod was placed for it: nothing chosen
    msg = {n: next(c["message"] for c in p["status"]["conditions"] if c["type"] == "PodScheduled")
           for n, p in pods.items() if pod_state(p) == "unschedulable"}
    assert msg["pg-4"].startswith("0/6 nodes are available: 6 node(s) didn't find available persistent volumes")
    assert msg["lost-0"].startswith('0/6 nodes are available: persistentvolumeclaim "nothere" not found.')
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()

    # the missing claim appears (pre-bound to a volume on node 4): the pod waiting for it goes there
    core = client.CoreV1Api(admin)
    core.create_persistent_volume({
        "metadata": {"name": "late"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "hostPath": {"path": "/srv/late"}, "claimRef": {"namespace": "db", "name": "nothere"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["volumes-small-node-4"]}]}]}}}})
    core.create_namespaced_persistent_volume_claim("db", {
        "metadata": {"name": "nothere"},
        "spec": {"storageClassName": "", "accessModes": ["ReadWriteOnce"], "volumeName": "late",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    wait_for(lambda: pod_map(admin, "db")["lost-0"]["spec"].get("nodeName") == "volumes-small-node-4", 60,
             "lost-0 bound where its late volume is")
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()


DRIVER = "disk.csi.example.com"


POOL = "pool.csi.example.com"  # a driver that publishes CSIStorageCapacity


def claim_obj(name: str, ns: str, cls: str, modes=("ReadWriteOnce",), volume: str = "", size: str = "5Gi") -> dict:
    spec = {"storageClassName": cls, "accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def mounting(p: dict, claim: str) -> dict:
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return p


def message_of(p: dict) -> str:
    return next(c["message"] for c in p["status"]["conditions"] if c["type"] == "PodScheduled")


def test_provisioning_topology_attach_limits_and_read_write_once_pod(volume_controllers, admin, run_scheduler):
    """WaitForFirstConsumer claims of a class that provisions only in zone b: our PreBind names the
    node (selected-node), a provisioner (tests/provisioner.py) makes the volume there, the PV
    controller binds it. Every node's CSINode allows one volume of the driver, so the third pod
    finds no node; a ReadWriteOncePod claim serves one pod only, until a pod of higher priority
    preempts its holder. A class whose driver publishes
    CSIStorageCapacity provisions only where an object reports room for the claim, and a pod
    waiting for room is placed once the driver reports more."""
    core, storage = client.CoreV1Api(admin), client.StorageV1Api(admin)
    ns = "prov"
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(4):
        core.create_node(node_obj(f"v-{i}", "4", labels={"topology.kubernetes.io/zone": "a" if i < 2 else "b"}))
        storage.create_csi_node({"metadata": {"name": f"v-{i}"}, "spec": {"drivers": [
            {"name": DRIVER, "nodeID": f"v-{i}", "allocatable": {"count": 1}}]}})
    storage.create_storage_class({"metadata": {"name": "zonal"}, "provisioner": DRIVER,
                                  "volumeBindingMode": "WaitForFirstConsumer",
                                  "allowedTopologies": [{"matchLabelExpressions": [
                                      {"key": "topology.kubernetes.io/zone", "values": ["b"]}]}]})
    core.create_persistent_volume({"metadata": {"name": "solo"}, "spec": {
        "capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOncePod"], "storageClassName": "",
        "hostPath": {"path": "/srv/solo"}, "claimRef": {"namespace": ns, "name": "solo"}}})
    core.create_namespaced_persistent_volume_claim(ns, claim_obj("solo", ns, "", ("ReadWriteOncePod",), "solo"))
    for i in range(3):
        core.create_namespaced_persistent_volume_claim(ns, claim_obj(f"data-{i}", ns, "zonal"))
    prov = Provisioner(admin, DRIVER).start()
    try:
        run_scheduler(2, batch_size=4)
        for i in range(3):
            core.create_namespaced_pod(ns, mounting(pod_obj(f"db-{i}", ns, "100m"), f"data-{i}"))
        wait_settled(admin, ns, 3, 120, want_bound=2)
        pods = pod_map(admin, ns)
        placed = sorted(p["spec"]["nodeName"] for p in pods.values() if pod_state(p) == "bound")
        assert placed == ["v-2", "v-3"]  # zone b, one volume of the driver each
        (stuck,) = [p for p in pods.values() if pod_state(p) == "unschedulable"]
        assert message_of(stuck).startswith("0/4 nodes are available: 2 node(s) didn't find available persistent "
                                            "volumes to bind, 2 node(s) exceed max volume count.")
        assert len(prov.provisioned) == 2
        for name, p in pods.items():
            if pod_state(p) == "bound":
                claim = core.read_namespaced_persistent_volume_claim(f"data-{name[-1]}", ns)
                pv = core.read_persistent_volume(claim.spec.volume_name)
                assert claim.metadata.annotations["volume.kubernetes.io/selected-node"] == p["spec"]["nodeName"]
                assert pv.spec.node_affinity.required.node_selector_terms[0].match_expressions[0].values == ["b"]

        r1 = mounting(pod_obj("r-1", ns, "100m"), "solo")
        r1["spec"]["terminationGracePeriodSeconds"] = 0  # no kubelet here to finish a graceful deletion
        core.create_namespaced_pod(ns, r1)
        wait_for(lambda: pod_state(pod_map(admin, ns).get("r-1", {"spec": {}})) == "bound", 60, "r-1 bound")
        r1_node = pod_map(admin, ns)["r-1"]["spec"]["nodeName"]
        core.create_namespaced_pod(ns, mounting(pod_obj("r-2", ns, "100m"), "solo"))
        wait_for(lambda: pod_state(pod_map(admin, ns).get("r-2", {"spec": {}})) == "unschedulable", 60,
                 "r-2 Unschedulable")
        assert "ReadWriteOncePod access mode already in-use by another pod" in message_of(pod_map(admin, ns)["r-2"])
        # a pod of higher priority preempts the claim's holder, and takes its place
        hi = mounting(pod_obj("r-hi", ns, "100m"), "solo")
        hi["spec"]["priority"] = 1000
        core.create_namespaced_pod(ns, hi)
        wait_for(lambda: pod_state(pod_map(admin, ns).get("r-hi", {"spec": {}})) == "bound", 90, "r-hi bound")
        pods = pod_map(admin, ns)
        assert "r-1" not in pods and pods["r-hi"]["spec"]["nodeName"] == r1_node
        assert pod_state(pods["r-2"]) == "unschedulable"

        # storage capacity: the pool has room in zone a only, for volumes up to 8Gi
        storage.create_csi_driver({"metadata": {"name": POOL}, "spec": {"storageCapacity": True}})
        storage.create_storage_class({"metadata": {"name": "pooled"}, "provisioner": POOL,
                                      "volumeBindingMode": "WaitForFirstConsumer"})
        storage.create_namespaced_csi_storage_capacity(ns, {
            "metadata": {"name": "pool-a"}, "storageClassName": "pooled", "capacity": "50Gi",
            "maximumVolumeSize": "8Gi", "nodeTopology": {"matchLabels": {"topology.kubernetes.io/zone": "a"}}})
        pool = Provisioner(admin, POOL).start()
        try:
            for name, size in (("small", "5Gi"), ("big", "10Gi")):
                core.create_namespaced_persistent_volume_claim(ns, claim_obj(name, ns, "pooled", size=size))
                core.create_namespaced_pod(ns, mounting(pod_obj(name, ns, "100m"), name))
            wait_for(lambda: pod_state(pod_map(admin, ns).get("small", {"spec": {}})) == "bound", 90, "small bound")
            assert pod_map(admin, ns)["small"]["spec"]["nodeName"] in ("v-0", "v-1")
            wait_for(lambda: pod_state(pod_map(admin, ns).get("big", {"spec": {}})) == "unschedulable", 60,
                     "big Unschedulable")
            assert message_of(pod_map(admin, ns)["big"]).startswith(
                "0/4 nodes are available: 4 node(s) did not have enough free storage.")
            storage.patch_namespaced_csi_storage_capacity("pool-a", ns, {"maximumVolumeSize": "20Gi"})
            wait_for(lambda: pod_state(pod_map(admin, ns).get("big", {"spec": {}})) == "bound", 90,
                     "big bound once the pool reports room")
            assert pod_map(admin, ns)["big"]["spec"]["nodeName"] in ("v-0", "v-1")
            assert sorted(pool.provisioned) == [f"{ns}/big", f"{ns}/small"]
        finally:
            pool.stop()
        report, _ = check_cluster(admin)
        assert report.ok, report.summary()
    finally:
        prov.stop()


def test_ephemeral_volumes_wait_for_their_claim_then_bind_where_a_local_disk_is(volume_controllers, admin,
                                                                                 run_scheduler):
    """A generic ephemeral volume: the ephemeral-volume controller makes the claim `<pod>-<volume>`,
    owned by the pod; until then the pod waits with upstream's reason, then it is placed on a node
    with a free local disk and the claim bound there."""
    core, storage = client.CoreV1Api(admin), client.StorageV1Api(admin)
    ns = "eph"
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        core.create_node(node_obj(f"e-{i}", "4"))
    storage.create_storage_class({"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner",
                                  "volumeBindingMode": "WaitForFirstConsumer"})
    core.create_persistent_volume({"metadata": {"name": "disk-e-2"}, "spec": {
        "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
        "local": {"path": "/mnt/disk"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["e-2"]}]}]}}}})
    run_scheduler(1, batch_size=4)
    p = pod_obj("scratchy", ns, "100m")
    p["spec"]["volumes"] = [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
        "storageClassName": "local", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]
    core.create_namespaced_pod(ns, p)
    wait_for(lambda: pod_state(pod_map(admin, ns).get("scratchy", {"spec": {}})) == "bound", 90, "scratchy bound")
    assert pod_map(admin, ns)["scratchy"]["spec"]["nodeName"] == "e-2"
    claim = core.read_namespaced_persistent_volume_claim("scratchy-scratch", ns)
    assert claim.spec.volume_name == "disk-e-2"
    assert claim.metadata.owner_references[0].name == "scratchy" and claim.metadata.owner_references[0].controller
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
