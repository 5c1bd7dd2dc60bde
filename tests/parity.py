"""The differential test's two halves: a seeded generator of small random clusters and pods, and a
lockstep runner that puts each pod through our scheduler and through the upstream kube-scheduler on
the same real apiserver, one pod at a time, and compares what each decided.

One step per generated pod, against the same cluster state:
  1. our engine, in-process, scores the pod on every node of a copy of that state (the diagnosis:
     which nodes pass the filters, their scores, or the reason histogram);
  2. our scheduler (the runtime: informer, partitions, coordinator, binder) gets a copy of the pod;
     its decision is read back (node, or `PodScheduled=False` and its message) and the copy deleted;
  3. kube-scheduler gets a copy; its decision is read back. A bound copy stays: kube-scheduler's
     placements are the state every later step sees. An unschedulable copy is deleted at once, so a
     later event cannot bind it behind the runner's back.
Neither scheduler ever sees the other's pending copy, so each decides alone over the same nodes and
bound pods. Claims a pod has of its own are copied with it (`copy_pod`); what our copy bound is
undone before kube-scheduler's turn (the claim deleted, its volume Available again), and the PV
controller (kube-controller-manager, volume controllers only) completes both schedulers' bindings. The one ordering the apiserver does not give is kube-scheduler's: its cache and its
queue are separate informer listeners, so the runner confirms a deletion (404) and waits `SETTLE_S`
(orders of magnitude above a listener's lag) before the next pod reaches it.

Each case runs under one of a few scheduling profiles (`PROFILES`: the default, MostAllocated,
RequestedToCapacityRatio, other plugin weights and hardPodAffinityWeight), configured alike in both
schedulers under their own names (`scheduler_names`).

What is compared, per pod: bound or not by each; for a pod neither can place, the FitError
(`0/N nodes are available: ...`, the preemption part left out); for a placed pod, that the node
kube-scheduler chose passes our filters and has our best score (ties are common on small random
clusters, and both schedulers break them at random), and that our runtime chose one of our engine's
best nodes. A mismatch carries a workload file (the `FORMAT.md` format) that replays the case up to
that pod.

Gangs (`Gang`: a PodGroup and its alike members) come after a case's pods, each through both
schedulers as one unit (PodGroup and members created together, every member's decision waited
for): compared are how many members each bound, that neither bound some but fewer than minCount,
and that every member placed passes our engine's filters with the members before it placed.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_scheduler.api.rest import finish, request
from cluster_scheduler.config import SchedulerConfig, parse_profile
from cluster_scheduler.engine import Engine
from cluster_scheduler.model.parse import parse_node, parse_pdb, parse_pod
from cluster_scheduler.model.storage import ATTACHMENTS, CAPACITIES, CLAIMS, CSI_DRIVERS, CSI_NODES, STORAGE_CLASSES, VOLUMES
from cluster_scheduler.model.types import DisruptionBudget, PodInfo
from cluster_scheduler.preemption import split_by_pdb
from tests.manifests import pod_group

OURS = "cluster-scheduler"
KUBE = "default-scheduler"
CASE_LABEL = "parity.cluster-scheduler.io/case"
SETTLE_S = 0.1
ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
GPU = "example.com/gpu"
DRIVER = "csi.example.com"
POOL = "pool.csi.example.com"  # a driver the runner's provisioner plays (tests/provisioner.py)
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
IMAGE = "registry.k8s.io/pause:3.10"
DISK_SOURCES = ("gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd")

# The scheduling profiles a case may run under, in KubeSchedulerConfiguration form (without the
# schedulerName): the same document configures kube-scheduler's profile and ours.
_FIT = "NodeResourcesFit"
PROFILES: dict[str, dict] = {
    "": {},
    "most": {"pluginConfig": [{"name": _FIT, "args": {"scoringStrategy": {
        "type": "MostAllocated",
        "resources": [{"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}, {"name": GPU, "weight": 3}]}}}]},
    "ratio": {"pluginConfig": [{"name": _FIT, "args": {"scoringStrategy": {
        "type": "RequestedToCapacityRatio",
        "resources": [{"name": "cpu", "weight": 2}, {"name": "memory", "weight": 1}],
        "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 60, "score": 8},
                                               {"utilization": 100, "score": 10}]}}}}]},
    "weights": {
        "plugins": {"score": {
            "disabled": [{"name": "NodeResourcesBalancedAllocation"}],
            "enabled": [{"name": _FIT, "weight": 2}, {"name": "NodeAffinity", "weight": 5},
                        {"name": "TaintToleration", "weight": 1}, {"name": "InterPodAffinity", "weight": 4},
                        {"name": "PodTopologySpread", "weight": 1}]}},
        "pluginConfig": [{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 7}},
                         {"name": "NodeResourcesBalancedAllocation", "args": {"resources": [
                             {"name": "cpu", "weight": 1}, {"name": "memory", "weight": 1}]}}]},
}


def scheduler_names(profile: str) -> tuple[str, str]:
    """(ours, kube-scheduler's) schedulerName for a profile of `PROFILES`."""
    return (f"{OURS}-{profile}", f"{KUBE}-{profile}") if profile else (OURS, KUBE)


def profile_docs(kube: bool) -> list[dict]:
    """Every profile of `PROFILES` under the names of one side."""
    return [{"schedulerName": scheduler_names(name)[kube], **doc} for name, doc in PROFILES.items()]


def our_config() -> SchedulerConfig:
    return SchedulerConfig(profiles=tuple(parse_profile(d, f"profiles[{i}]")
                                          for i, d in enumerate(profile_docs(kube=False))))


# ---------------------------------------------------------------------------------- generator

@dataclass
class Case:
    """One random cluster: namespaces (name -> labels), nodes, then pods in creation order."""

    seed: int
    namespaces: dict[str, dict[str, str]]
    nodes: list[dict]
    pods: list[dict]
    pdbs: list[dict] = field(default_factory=list)  # with the status the runner gives them
    profile: str = ""  # a key of PROFILES
    storage: list[dict] = field(default_factory=list)  # classes, CSIDrivers, capacities, CSINodes, claims, volumes
    claims: dict[str, list[dict]] = field(default_factory=dict)  # pod name -> its own claims
    gangs: list["Gang"] = field(default_factory=list)  # after the pods, in this order

    @property
    def name(self) -> str:
        return f"parity-{self.seed}"


@dataclass
class Gang:
    """A PodGroup (`name`, gang policy `min_count`) and its members, alike but for their names."""

    name: str
    namespace: str
    size: int
    min_count: int
    template: dict  # the members' manifest, without a name
    topology_key: str = ""  # the PodGroup's schedulingConstraints.topology key (TopologyAwareWorkloadScheduling)

    def members(self, suffix: str, group: str) -> list[dict]:
        """One scheduler's copies of the members (`<name>-<i><suffix>`), in the group `group`."""
        out = []
        for i in range(self.size):
            obj = yaml.safe_load(yaml.safe_dump(self.template))
            obj["metadata"].update(name=f"{self.name}-{i}{suffix}", namespace=self.namespace)
            obj["spec"]["schedulingGroup"] = {"podGroupName": group}
            out.append(obj)
        return out

    def group(self, name: str) -> dict:
        extra = {"schedulingConstraints": {"topology": [{"key": self.topology_key}]}} if self.topology_key else {}
        return pod_group(name, self.min_count, self.namespace, priority=0, **extra)


def generate(seed: int, max_nodes: int = 7, max_pods: int = 12) -> Case:
    """A case covering the plugins we implement, each knob drawn so that a few pods of a case are
    unschedulable and most nodes differ in some way (taints, labels, capacity, cordons)."""
    rng = random.Random(seed)
    prefix = f"p{seed}"
    namespaces = {f"{prefix}-a": {"team": "a", "env": "prod"}, f"{prefix}-b": {"team": "b"}}
    tight = rng.random() < 0.4  # small nodes that fill up: the later pods preempt
    nodes = [_node(rng, f"{prefix}-n{i}", tight) for i in range(rng.randint(2, max_nodes))]
    node_names = [n["metadata"]["name"] for n in nodes]
    count = rng.randint(4, max_pods)
    pods = [_pod(rng, f"{prefix}-{i}", rng.choice(sorted(namespaces)), node_names, late=2 * i >= count)
            for i in range(count)]
    # PodDisruptionBudgets (drawn last: the cases above stay what they were without them). No
    # kubelet makes pods Ready for the disruption controller, so the runner writes their status.
    pdbs = [{"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
             "metadata": {"name": f"{prefix}-pdb{j}", "namespace": rng.choice(sorted(namespaces))},
             "spec": {"selector": {"matchLabels": {"app": rng.choice(["web", "db", "cache"])}}, "maxUnavailable": 1},
             "status": {"disruptionsAllowed": rng.randint(0, 1), "currentHealthy": 0, "desiredHealthy": 0,
                        "expectedPods": 0}}
            for j in range(rng.choice([0, 0, 1, 2]))]
    # a generator of its own: the cases drawn above are the same with or without profiles
    profile = random.Random(f"profile-{seed}").choice(["", "", *PROFILES])
    storage, claims = _storage(random.Random(f"storage-{seed}"), prefix, nodes, pods, random.Random(f"pool-{seed}"))
    _disks(random.Random(f"disk-{seed}"), pods)
    _disk_limits(random.Random(f"disk-limit-{seed}"), prefix, nodes, pods, storage)
    grng = random.Random(f"gang-{seed}")  # gangs last, from a generator of their own again
    gangs = [_gang(grng, f"{prefix}-g{j}", grng.choice(sorted(namespaces)), node_names)
             for j in range(grng.choice([0, 0, 1, 2]))]
    for j, gang in enumerate(gangs):  # kept to one zone: only gangs all of whose members must fit,
        trng = random.Random(f"tas-{seed}-{j}")  # so the count is that of any placement that holds them
        if gang.min_count == gang.size and trng.random() < 0.4:
            gang.topology_key = ZONE
    return Case(seed, namespaces, nodes, pods, pdbs, profile, storage, claims, gangs)


def _disks(rng: random.Random, pods: list[dict]) -> None:
    """Inline disks (VolumeRestrictions) on some pods, from a generator of their own: a few GCE
    PDs, one EBS volume, iSCSI targets and an RBD image on overlapping monitors, read-only or
    not, so that pods on one node conflict or share."""
    for pod in pods:
        if rng.random() >= 0.3:
            continue
        ro = rng.random() < 0.5
        kind = rng.choice(["gce", "gce", "aws", "iscsi", "rbd"])
        if kind == "gce":
            src = {"gcePersistentDisk": {"pdName": rng.choice(["pd-a", "pd-a", "pd-b"]), "readOnly": ro}}
        elif kind == "aws":
            src = {"awsElasticBlockStore": {"volumeID": "vol-a", "readOnly": ro}}
        elif kind == "iscsi":
            src = {"iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": rng.choice(["iqn.2026-12.io.example:a",
                                                                                 "iqn.2026-12.io.example:b"]),
                             "lun": 0, "readOnly": ro}}
        else:
            src = {"rbd": {"monitors": rng.sample(["10.0.1.1:6789", "10.0.1.2:6789", "10.0.1.3:6789"], rng.randint(1, 2)),
                           "image": "img", "readOnly": ro}}
        pod["spec"].setdefault("volumes", []).append({"name": "disk", **src})


def _disk_limits(rng: random.Random, prefix: str, nodes: list[dict], pods: list[dict], storage: list[dict]) -> None:
    """Attach limits for the inline disks' CSI drivers (NodeVolumeLimits counts a GCE PD or EBS
    volume written inline under its driver) on most nodes' CSINodes, in half the cases: one or
    two PDs, one EBS volume. Then two to four small pods that tolerate every taint, each pinned to
    one of two limited nodes (a hostname in their node selector) with a PD (read-only: only the
    limit keeps them apart) or an EBS volume of their own: where pods spread, a limit seldom
    decides anything."""
    if rng.random() >= 0.5:
        return
    csi_nodes = {o["metadata"]["name"]: o for o in storage if o["kind"] == "CSINode"}
    limited = []
    for n in nodes:
        if rng.random() >= 0.7:
            continue
        name = n["metadata"]["name"]
        limited.append(name)
        cn = csi_nodes.get(name)
        if cn is None:
            cn = csi_nodes[name] = {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": name},
                                    "spec": {"drivers": []}}
            storage.insert(0, cn)
        cn["spec"]["drivers"] += [
            {"name": "pd.csi.storage.gke.io", "nodeID": name, "allocatable": {"count": rng.randint(1, 2)}},
            {"name": "ebs.csi.aws.com", "nodeID": name, "allocatable": {"count": 1}}]
    namespaces = sorted({p["metadata"]["namespace"] for p in pods})
    for j in range(rng.randint(2, 4) if limited else 0):
        if rng.random() < 0.75:
            disk = {"gcePersistentDisk": {"pdName": rng.choice(["pd-c", "pd-d", "pd-e"]), "readOnly": True}}
        else:
            disk = {"awsElasticBlockStore": {"volumeID": rng.choice(["vol-b", "vol-c"])}}
        pods.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"{prefix}-d{j}", "namespace": rng.choice(namespaces), "labels": {"app": "disk"}},
                     "spec": {"containers": [{"name": "c0", "image": IMAGE,
                                              "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}],
                              "terminationGracePeriodSeconds": 0, "tolerations": [{"operator": "Exists"}],
                              "nodeSelector": {HOST: rng.choice(limited[:2])}, "volumes": [{"name": "disk", **disk}]}})


def _gang(rng: random.Random, name: str, namespace: str, node_names: list[str]) -> Gang:
    """A gang of 2-4 alike members, all or some of which must be placed together. Only
    constraints under which how many alike pods fit does not depend on where the first ones went
    (each node holds a number of them of its own: resources, ports, node filters, anti-affinity
    among them or to placed pods; preferred terms only score), so the two schedulers' counts
    compare whichever of equally scored nodes each picked. Priority 0, never preempting: the
    gangs come after every other pod of the case, and nothing preempts them."""
    size = rng.randint(2, 4)
    c: dict[str, Any] = {"name": "c0", "image": IMAGE, "resources": {"requests": _requests(rng, big=rng.random() < 0.2)}}
    if rng.random() < 0.25:
        c["resources"]["requests"][GPU] = c["resources"].setdefault("limits", {})[GPU] = "1"
    if rng.random() < 0.2:
        c["ports"] = [{"containerPort": 7000, "hostPort": 7000, "protocol": "TCP"}]
    spec: dict[str, Any] = {"containers": [c], "terminationGracePeriodSeconds": 0, "priority": 0,
                            "preemptionPolicy": "Never"}
    if rng.random() < 0.3:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.2:
        spec["nodeSelector"] = {"disk": rng.choice(["ssd", "hdd"])}
    affinity: dict[str, Any] = {}
    if rng.random() < 0.25:
        affinity.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [_node_term(rng, node_names)]}
    if rng.random() < 0.3:
        affinity.setdefault("nodeAffinity", {})["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": rng.randint(1, 100), "preference": _node_term(rng, node_names)}]
    anti = []
    if rng.random() < 0.3:  # one member per node or per zone
        anti.append({"labelSelector": {"matchLabels": {"gang": name}}, "topologyKey": rng.choice([HOST, ZONE])})
    if rng.random() < 0.15:  # away from placed pods of an app
        anti.append(_pod_term(rng))
    if anti:
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": anti}
    for kind in ("podAffinity", "podAntiAffinity"):
        if rng.random() < 0.2:
            affinity.setdefault(kind, {})["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": rng.randint(1, 100), "podAffinityTerm": _pod_term(rng)}]
    if affinity:
        spec["affinity"] = affinity
    template = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"labels": {"app": "job", "gang": name}}, "spec": spec}
    return Gang(name, namespace, size, rng.choice([size, size, rng.randint(1, size)]), template)


def _storage(rng: random.Random, prefix: str, nodes: list[dict], pods: list[dict],
             prng: random.Random | None = None) -> tuple[list[dict], dict]:
    """Volumes for half the cases (a generator of their own: the rest of a case is what it was
    without them): a WaitForFirstConsumer class with static volumes (local disks pinned to a node,
    zonal disks by label or by node affinity, CSI disks anywhere), an Immediate class nothing
    provisions, attach limits on some nodes, claims pre-bound to some volumes and shared by the
    pods of their namespace; pods mount those, claims of their own (created per copy, see
    `copy_pod`) or a claim that does not exist. With `prng` (a generator of its own again), most
    such cases also get a pool a CSI driver provisions from (`_pool`), some claims of their own
    of its class, and some CSI disks are attached to a node (a VolumeAttachment, no pod there)."""
    if rng.random() < 0.5:
        return [], {}
    pool = _pool(prng, prefix, nodes, sorted({p["metadata"]["namespace"] for p in pods})) if prng else []
    wait, now = f"{prefix}-wait", f"{prefix}-now"
    objs: list[dict] = [
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
         "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": mode}
        for name, mode in ((wait, "WaitForFirstConsumer"), (now, "Immediate"))]
    for n in nodes:
        name = n["metadata"]["name"]
        drivers = []
        if rng.random() < 0.5:
            drivers.append({"name": DRIVER, "nodeID": name, "allocatable": {"count": rng.randint(1, 2)}})
        if pool and prng.random() < 0.6:  # the pool's driver installed here (no limit)
            drivers.append({"name": POOL, "nodeID": name})
        if drivers:
            objs.append({"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": name},
                         "spec": {"drivers": drivers}})
    namespaces = sorted({p["metadata"]["namespace"] for p in pods})
    volumes, shared = [], []
    for j in range(rng.randint(3, 10)):
        pv = _volume(rng, f"{prefix}-pv{j}", wait, [n["metadata"]["name"] for n in nodes])
        if rng.random() < 0.4:  # pre-bound to a claim of its own size and modes
            spec = pv["spec"]
            claim = _claim(f"{prefix}-shared{j}", rng.choice(namespaces), wait, spec["capacity"]["storage"],
                           spec["accessModes"])
            claim["spec"]["volumeName"] = pv["metadata"]["name"]
            spec["claimRef"] = {"namespace": claim["metadata"]["namespace"], "name": claim["metadata"]["name"]}
            shared.append(claim)
        volumes.append(pv)
    claims: dict[str, list[dict]] = {}
    for pod in pods:
        if rng.random() >= 0.4:
            continue
        meta, spec = pod["metadata"], pod["spec"]
        names = []
        for k in range(rng.randint(1, 2)):
            r = rng.random()
            mine = [c for c in shared if c["metadata"]["namespace"] == meta["namespace"]]
            if r < 0.35 and mine:
                names.append(rng.choice(mine)["metadata"]["name"])
            elif r < 0.39:
                names.append(f"{prefix}-missing")
            else:
                name = f"{meta['name']}-c{k}"
                cls = wait if rng.random() < 0.92 else now
                if pool and prng.random() < 0.6:
                    cls = f"{prefix}-pool"
                claims.setdefault(meta["name"], []).append(_claim(
                    name, meta["namespace"], cls, rng.choice(["1Gi", "1Gi", "2Gi", "10Gi"]), _modes(rng)))
                names.append(name)
        spec["volumes"] = [{"name": f"v{k}", "persistentVolumeClaim": {"claimName": n}}
                           for k, n in enumerate(dict.fromkeys(names))]
    attached = []
    for pv in volumes if prng else ():  # some disks still attached somewhere (VolumeAttachments)
        if "csi" in pv["spec"] and prng.random() < 0.25:
            attached.append({"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                             "metadata": {"name": f"{pv['metadata']['name']}-va"},
                             "spec": {"attacher": DRIVER, "nodeName": prng.choice(nodes)["metadata"]["name"],
                                      "source": {"persistentVolumeName": pv["metadata"]["name"]}}})
    return pool + objs + shared + volumes + attached, claims


def _pool(rng: random.Random, prefix: str, nodes: list[dict], namespaces: list[str]) -> list[dict]:
    """For most cases with storage: a WaitForFirstConsumer class `<prefix>-pool` that the CSI
    driver `POOL` provisions (sometimes in some zones only); its CSIDriver publishes
    CSIStorageCapacity (or not) and may keep its volumes off nodes whose CSINode lacks it; a few
    capacity objects (per zone, per node, everywhere; room or not, a maximum volume size or not,
    a few for another class) in the first namespace. The runner's provisioner makes the volumes."""
    if rng.random() < 0.3:
        return []
    sc: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                          "metadata": {"name": f"{prefix}-pool"}, "provisioner": POOL,
                          "volumeBindingMode": "WaitForFirstConsumer"}
    if rng.random() < 0.3:
        sc["allowedTopologies"] = [{"matchLabelExpressions": [
            {"key": ZONE, "values": rng.sample(["z1", "z2", "z3"], rng.randint(1, 2))}]}]
    driver = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": POOL},
              "spec": {"storageCapacity": rng.random() < 0.75, "preventPodSchedulingIfMissing": rng.random() < 0.3}}
    objs = [sc, driver]
    for j in range(rng.randint(0, 4)):
        r = rng.random()
        if r < 0.4:
            topology: dict[str, Any] = {"matchLabels": {ZONE: rng.choice(["z1", "z2", "z3"])}}
        elif r < 0.7:
            topology = {"matchLabels": {HOST: rng.choice(nodes)["metadata"]["name"]}}
        elif r < 0.85:
            topology = {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["z1", "z2"]}]}
        else:
            topology = {}
        cap: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
                               "metadata": {"name": f"{prefix}-cap{j}", "namespace": namespaces[0]},
                               "storageClassName": f"{prefix}-pool" if rng.random() < 0.9 else f"{prefix}-wait",
                               "nodeTopology": topology, "capacity": rng.choice(["1Gi", "5Gi", "20Gi", "100Gi"])}
        if rng.random() < 0.3:
            cap["maximumVolumeSize"] = rng.choice(["1Gi", "2Gi", "10Gi"])
        objs.append(cap)
    return objs


def _volume(rng: random.Random, name: str, cls: str, node_names: list[str]) -> dict:
    spec: dict[str, Any] = {"capacity": {"storage": rng.choice(["1Gi", "5Gi", "10Gi"])},
                            "accessModes": _modes(rng, many=True),
                            "persistentVolumeReclaimPolicy": "Retain", "storageClassName": cls}
    labels: dict[str, str] = {}
    kind = rng.random()
    if kind < 0.35:  # a local disk: one node
        spec["local"] = {"path": f"/mnt/{name}"}
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOST, "operator": "In", "values": [rng.choice(node_names)]}]}]}}
    else:
        spec["csi"] = {"driver": DRIVER, "volumeHandle": name}
        if kind < 0.6:  # a zonal disk by its labels (VolumeZone)
            labels[ZONE] = rng.choice(["z1", "z2", "z1__z2"])
        elif kind < 0.8:  # by its node affinity (VolumeBinding)
            spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": ZONE, "operator": "In", "values": rng.sample(["z1", "z2", "z3"], rng.randint(1, 2))}]}]}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels},
            "spec": spec}


def _modes(rng: random.Random, many: bool = False) -> list[str]:
    """Access modes, mostly ReadWriteOnce (a volume may offer two: a claim needs all of its own)."""
    r = rng.random()
    if r < 0.6:
        return ["ReadWriteOnce", "ReadOnlyMany"] if many and rng.random() < 0.4 else ["ReadWriteOnce"]
    return ["ReadWriteOncePod"] if r < 0.8 else ["ReadOnlyMany"]


def _claim(name: str, namespace: str, cls: str, size: str, modes: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": list(modes), "storageClassName": cls, "resources": {"requests": {"storage": size}}}}


def copy_pod(pod: dict, suffix: str, claims: list[dict]) -> tuple[dict, list[dict]]:
    """One scheduler's copy of a pod (`suffix` on its name) and of the claims of its own (a claim
    one scheduler's copy got bound must not decide the other's): `<pod>-c0` becomes
    `<pod><suffix>-c0`, in the pod's volumes too."""
    name = pod["metadata"]["name"]
    obj = yaml.safe_load(yaml.safe_dump(pod))
    obj["metadata"]["name"] = name + suffix
    own = {c["metadata"]["name"] for c in claims}
    for v in obj["spec"].get("volumes") or ():
        ref = v.get("persistentVolumeClaim")
        if ref is not None and ref["claimName"] in own:
            ref["claimName"] = name + suffix + ref["claimName"][len(name):]
    copies = yaml.safe_load(yaml.safe_dump(claims))
    for c in copies:
        c["metadata"]["name"] = name + suffix + c["metadata"]["name"][len(name):]
    return obj, copies


def _node(rng: random.Random, name: str, tight: bool = False) -> dict:
    labels = {HOST: name}
    if rng.random() < 0.9:
        labels[ZONE] = rng.choice(["z1", "z2", "z3"])
    if rng.random() < 0.6:
        labels["disk"] = rng.choice(["ssd", "hdd"])
    if rng.random() < 0.5:
        labels["tier"] = str(rng.randint(1, 3))
    res = {"cpu": rng.choice(["1", "2"] if tight else ["2", "4", "8", "16"]),
           "memory": rng.choice(["2Gi", "4Gi"] if tight else ["4Gi", "8Gi", "16Gi", "32Gi"]),
           "pods": rng.choice(["3", "10", "110"])}
    if rng.random() < 0.3:
        res[GPU] = str(rng.randint(1, 4))
    if rng.random() < 0.7:
        res["ephemeral-storage"] = rng.choice(["10Gi", "50Gi"])
    spec: dict[str, Any] = {}
    if rng.random() < 0.3:
        spec["taints"] = [{"key": "dedicated", "value": rng.choice(["x", "y"]),
                           "effect": rng.choice(["NoSchedule", "PreferNoSchedule", "NoExecute"])}]
    if rng.random() < 0.08:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec,
            "status": {"capacity": dict(res), "allocatable": dict(res),
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def _requests(rng: random.Random, big: bool = False) -> dict[str, str]:
    cpu = ["100m", "250m", "500m", "1"] + (["2", "6"] if big else [])
    mem = ["128Mi", "512Mi", "1Gi"] + (["3Gi", "12Gi"] if big else [])
    return {"cpu": rng.choice(cpu), "memory": rng.choice(mem)}


def _selector(rng: random.Random) -> dict:
    if rng.random() < 0.8:
        return {"matchLabels": {"app": rng.choice(["web", "db", "cache"])}}
    return {"matchExpressions": [{"key": "app", "operator": rng.choice(["In", "NotIn"]),
                                  "values": rng.sample(["web", "db", "cache"], 2)}]}


def _pod_term(rng: random.Random) -> dict:
    term: dict[str, Any] = {"labelSelector": _selector(rng), "topologyKey": rng.choice([HOST, ZONE])}
    r = rng.random()
    if r < 0.2:
        term["namespaceSelector"] = {}  # every namespace
    elif r < 0.35:
        term["namespaceSelector"] = {"matchLabels": {"team": rng.choice(["a", "b"])}}
    elif r < 0.45:
        term["namespaces"] = [rng.choice(["p-none", "default"])]
    return term


def _node_term(rng: random.Random, node_names: list[str]) -> dict:
    exprs = []
    for _ in range(rng.randint(1, 2)):
        kind = rng.random()
        if kind < 0.35:
            exprs.append({"key": ZONE, "operator": rng.choice(["In", "NotIn"]),
                          "values": rng.sample(["z1", "z2", "z3"], rng.randint(1, 2))})
        elif kind < 0.55:
            exprs.append({"key": "tier", "operator": rng.choice(["Gt", "Lt"]), "values": [str(rng.randint(1, 2))]})
        elif kind < 0.75:
            exprs.append({"key": "disk", "operator": rng.choice(["Exists", "DoesNotExist"])})
        else:
            exprs.append({"key": "disk", "operator": "In", "values": [rng.choice(["ssd", "hdd"])]})
    term: dict[str, Any] = {"matchExpressions": exprs}
    if rng.random() < 0.15:
        fields = [{"key": "metadata.name", "operator": rng.choice(["In", "NotIn"]),
                   "values": [rng.choice(node_names)]} for _ in range(rng.choice([1, 1, 2]))]
        term = {"matchFields": fields}  # one value each (the API's rule); two In may conflict
    return term


def _pod(rng: random.Random, name: str, namespace: str, node_names: list[str], late: bool | None = None) -> dict:
    """One pod; `late` pods (the second half of a case) are more often of high priority, so that
    they find the nodes filled by earlier, lower ones and preempt."""
    labels = {"app": rng.choice(["web", "db", "cache"])}
    if rng.random() < 0.5:
        labels["ver"] = rng.choice(["v1", "v2"])
    containers = [{"name": f"c{i}", "image": IMAGE, "resources": {"requests": _requests(rng, big=i == 0)}}
                  for i in range(rng.randint(1, 2))]
    if rng.random() < 0.2:
        gpus = str(rng.randint(1, 2))
        containers[0]["resources"]["requests"][GPU] = gpus
        containers[0]["resources"]["limits"] = {GPU: gpus}
    if rng.random() < 0.2:
        port = rng.choice([80, 8080])
        containers[0]["ports"] = [{"containerPort": port, "hostPort": port, "protocol": rng.choice(["TCP", "UDP"])}]
    if rng.random() < 0.1:
        containers[-1]["resources"]["requests"]["ephemeral-storage"] = rng.choice(["1Gi", "20Gi"])
    if rng.random() < 0.1:  # limits only: requests default to them
        containers[-1]["resources"] = {"limits": containers[-1]["resources"].pop("requests")}
    # priorities: later pods may preempt earlier ones (no kubelet: victims go at once, grace 0)
    spec: dict[str, Any] = {"containers": containers, "terminationGracePeriodSeconds": 0,
                            "priority": rng.choice([0, 0, 10] if late is None or not late else [0, 10, 100, 100])}
    if spec["priority"] and rng.random() < 0.15:
        spec["preemptionPolicy"] = "Never"
    init = []
    if rng.random() < 0.2:
        init.append({"name": "init", "image": IMAGE, "resources": {"requests": _requests(rng, big=True)}})
    if rng.random() < 0.15:
        init.append({"name": "sidecar", "image": IMAGE, "restartPolicy": "Always",
                     "resources": {"requests": _requests(rng)}})
    if init:
        spec["initContainers"] = init
    if rng.random() < 0.1:  # pod-level requests (PodLevelResources) over small containers
        for c in containers + init:
            c["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
        spec["resources"] = {"requests": {"cpu": rng.choice(["1", "2"]), "memory": rng.choice(["1Gi", "2Gi"])}}
    if rng.random() < 0.05:  # host network: every container port is a host port
        spec["hostNetwork"] = True
        containers[0]["ports"] = [{"containerPort": 9000, "protocol": "TCP"}]
    if rng.random() < 0.35:
        spec["tolerations"] = [rng.choice([
            {"key": "dedicated", "operator": "Equal", "value": rng.choice(["x", "y"]),
             "effect": rng.choice(["NoSchedule", "NoExecute"])},
            {"key": "dedicated", "operator": "Exists"},
            {"operator": "Exists"}])]
    if rng.random() < 0.15:
        spec["nodeSelector"] = {"disk": rng.choice(["ssd", "hdd"])}
    affinity: dict[str, Any] = {}
    if rng.random() < 0.2:
        affinity.setdefault("nodeAffinity", {})["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [_node_term(rng, node_names) for _ in range(rng.randint(1, 2))]}
    if rng.random() < 0.3:
        affinity.setdefault("nodeAffinity", {})["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": rng.randint(1, 100), "preference": _node_term(rng, node_names)}
            for _ in range(rng.randint(1, 2))]
    for kind, p_req, p_pref in (("podAffinity", 0.12, 0.25), ("podAntiAffinity", 0.2, 0.25)):
        if rng.random() < p_req:
            affinity.setdefault(kind, {})["requiredDuringSchedulingIgnoredDuringExecution"] = [_pod_term(rng)]
        if rng.random() < p_pref:
            affinity.setdefault(kind, {})["preferredDuringSchedulingIgnoredDuringExecution"] = [
                {"weight": rng.randint(1, 100), "podAffinityTerm": _pod_term(rng)}
                for _ in range(rng.randint(1, 2))]
    if affinity:
        spec["affinity"] = affinity
    if rng.random() < 0.3:
        keys = rng.sample([HOST, ZONE], rng.randint(1, 2))  # one constraint per (key, policy)
        spec["topologySpreadConstraints"] = [_spread(rng, key) for key in keys]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": spec}


def _spread(rng: random.Random, key: str) -> dict:
    hard = rng.random() < 0.6
    c: dict[str, Any] = {"maxSkew": rng.randint(1, 2), "topologyKey": key,
                         "whenUnsatisfiable": "DoNotSchedule" if hard else "ScheduleAnyway",
                         "labelSelector": _selector(rng)}
    if hard and rng.random() < 0.25:
        c["minDomains"] = rng.randint(2, 4)
    if rng.random() < 0.25:
        c["nodeAffinityPolicy"] = rng.choice(["Honor", "Ignore"])
    if rng.random() < 0.25:
        c["nodeTaintsPolicy"] = rng.choice(["Honor", "Ignore"])
    if rng.random() < 0.2:
        c["matchLabelKeys"] = ["ver"]
    return c


# ---------------------------------------------------------------------------------- runner

@dataclass
class Outcome:
    """One scheduler's decision on one pod: the node, or the FitError it reported."""

    node: str | None = None
    message: str = ""
    victims: list[tuple[str, int]] = field(default_factory=list)  # (pod, priority) it preempted
    violations: int = 0  # of them, those a PodDisruptionBudget did not allow

    def __str__(self) -> str:
        text = f"bound to {self.node}" if self.node else f"unschedulable: {self.message}"
        return text + (f", preempting {self.victims}" if self.victims else "")

    def rank(self) -> tuple[int, int, int, int]:
        """Upstream's preemption criteria (pickOneNodeForPreemption): PDB violations, highest
        victim priority, sum of priorities, number of victims; equal ranks are a tie it breaks by
        node order (which starts at a random offset)."""
        prios = [p for _, p in self.victims]
        return self.violations, max(prios, default=-1), sum(prios), len(prios)


@dataclass
class Mismatch:
    case: Case
    index: int  # the pod's position in the case
    what: str
    ours: Outcome
    kube: Outcome
    diagnosis: str
    state: str = ""  # where kube-scheduler's earlier pods are
    workload: Path | None = None

    def __str__(self) -> str:
        if self.index < len(self.case.pods):
            pod = self.case.pods[self.index]["metadata"]
            unit = f"pod {self.index} ({pod['namespace']}/{pod['name']})"
        else:
            gang = self.case.gangs[self.index - len(self.case.pods)]
            unit = f"gang {gang.namespace}/{gang.name} (minCount {gang.min_count} of {gang.size})"
        return (f"seed {self.case.seed}, profile {self.case.profile or 'default'}, {unit}: {self.what}\n"
                f"  ours: {self.ours}\n  kube-scheduler: {self.kube}\n  our engine: {self.diagnosis}\n"
                f"  earlier pods: {self.state}\n"
                f"  replay: {self.workload}")


@dataclass
class Tally:
    cases: int = 0
    pods: int = 0
    bound: int = 0
    unschedulable: int = 0
    preempting: int = 0  # pods kube-scheduler placed by preempting others
    pdb_limited: int = 0  # of them, preemptions with a victim covered by a PodDisruptionBudget
    with_volumes: int = 0  # pods that mount claims
    with_disks: int = 0  # pods with an inline GCE PD, EBS, iSCSI or RBD disk
    disks_bound: int = 0  # of them, bound by kube-scheduler
    volumes_bound: int = 0  # of them, bound by kube-scheduler
    # nodes refused for a volume reason in kube-scheduler's FitErrors, by reason (what was covered)
    volume_reasons: dict[str, int] = field(default_factory=dict)
    profiles: dict[str, int] = field(default_factory=dict)  # cases per profile
    gangs: int = 0
    gangs_placed: int = 0  # by kube-scheduler (minCount or more members bound)
    gangs_zoned: int = 0  # kept to one zone (a topology constraint)
    mismatches: list[Mismatch] = field(default_factory=list)


def fit_histogram(message: str) -> tuple[str, dict[str, int]]:
    """A FitError as (its `0/N nodes are available` head, reason -> node count), with our one
    documented wording difference undone (docs/engine.md, "Known differences": we name the
    untolerated taint; v1.37 says `node(s) had untolerated taint(s)`)."""
    head, _, tail = message.partition(": ")
    hist: dict[str, int] = {}
    for part in tail.rstrip(".").split(", ") if tail else ():
        count, _, reason = part.partition(" ")
        if not count.isdigit():
            count, reason = "0", part  # a PreFilter's reason, said for every node
        reason = re.sub(r"untolerated taint \{.*\}$", "untolerated taint(s)", reason)
        hist[reason] = hist.get(reason, 0) + int(count)
    return head, hist


def fit_error(message: str) -> str:
    """The FitError part of a PodScheduled message: its first sentence. What the PostFilter adds
    after it is left out: preemption is not what this test compares, and after a PreFilter
    rejection kube-scheduler 1.37.2 appends a bare `not found` there (its preemption reads a
    PreFilter state that was never written), which we do not imitate."""
    head, sep, _ = message.partition(". ")
    return (head + "." if sep else message).strip()


def decision(pod: dict) -> Outcome | None:
    """A scheduler's decision on a read pod: bound, or `PodScheduled=False` Unschedulable; None
    while it has none (or has preempted and waits for its victims to go)."""
    if pod["spec"].get("nodeName"):
        return Outcome(node=pod["spec"]["nodeName"])
    if (pod.get("status") or {}).get("nominatedNodeName"):
        return None
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return Outcome(message=fit_error(c.get("message") or ""))
    return None


def _groups(ns: str) -> str:
    return f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups"


class Lockstep:
    """Runs cases through both schedulers (already running, ours named `OURS`) on one apiserver."""

    def __init__(self, api: Any, out_dir: Path, timeout: float = 30.0) -> None:
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.out_dir = out_dir
        self.timeout = timeout
        self._namespaces: set[str] = set()
        self._storage_keys: set[tuple[str, str]] = set()  # what the engine's storage index holds

    # ------------------------------------------------------------ api helpers
    def _wait(self, what: str, cond: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            got = cond()
            if got:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"parity: {what} after {self.timeout:.0f} s")
            time.sleep(0.01)

    def _pod(self, ns: str, name: str) -> dict | None:
        try:
            return self.core.api_client.sanitize_for_serialization(self.core.read_namespaced_pod(name, ns))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _delete(self, ns: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._wait(f"pod {ns}/{name} still there", lambda: self._pod(ns, name) is None)
        time.sleep(SETTLE_S)

    def _decide(self, pod: dict, scheduler: str) -> tuple[Outcome, dict]:
        obj = yaml.safe_load(yaml.safe_dump(pod))
        meta = obj["metadata"]
        obj["spec"]["schedulerName"] = scheduler
        self.core.create_namespaced_pod(meta["namespace"], obj)

        def decided() -> tuple[Outcome, dict] | None:
            got = self._pod(meta["namespace"], meta["name"])
            out = decision(got) if got is not None else None
            return (out, got) if out is not None else None
        return self._wait(f"{scheduler} decided nothing for {meta['namespace']}/{meta['name']}", decided)

    def _decide_gang(self, gang: Gang, suffix: str, scheduler: str) -> list[tuple[Outcome, dict]]:
        """Create the gang's PodGroup and members for `scheduler`; each member's decision, once
        every member has one."""
        group = gang.name + suffix
        finish(request(self.core.api_client, "POST", _groups(gang.namespace), gang.group(group)))
        members = gang.members(suffix, group)
        for obj in members:
            obj["spec"]["schedulerName"] = scheduler
            self.core.create_namespaced_pod(gang.namespace, obj)

        def decided() -> list[tuple[Outcome, dict]] | None:
            outs = []
            for obj in members:
                got = self._pod(gang.namespace, obj["metadata"]["name"])
                out = decision(got) if got is not None else None
                if out is None:
                    return None
                outs.append((out, got))
            return outs
        return self._wait(f"{scheduler} decided nothing for every member of gang {gang.namespace}/{group}", decided)

    def _delete_group(self, ns: str, name: str) -> None:
        try:
            finish(request(self.core.api_client, "DELETE", f"{_groups(ns)}/{name}"))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _clear(self) -> None:
        """Remove the previous case: its pods (gone before their nodes and claims), claims,
        volumes, classes, CSINodes and nodes (the apiserver's storage-protection finalizers
        are lifted: no controller here would)."""
        for ns in self._namespaces:
            self.core.delete_collection_namespaced_pod(ns, grace_period_seconds=0)
            self._wait(f"pods of {ns} still there", lambda ns=ns: not self.core.list_namespaced_pod(ns).items)
            finish(request(self.core.api_client, "DELETE", _groups(ns)))
            for c in self.core.list_namespaced_persistent_volume_claim(ns).items:
                self._drop_claim(ns, c.metadata.name, release=False)
            self.storage.delete_collection_namespaced_csi_storage_capacity(ns)
        for pv in self.core.list_persistent_volume(label_selector=CASE_LABEL).items:
            self._unprotect(self.core.patch_persistent_volume, pv.metadata.name)
        self.core.delete_collection_persistent_volume(label_selector=CASE_LABEL)
        self.storage.delete_collection_storage_class(label_selector=CASE_LABEL)
        self.storage.delete_collection_csi_node(label_selector=CASE_LABEL)
        self.storage.delete_collection_csi_driver(label_selector=CASE_LABEL)
        self.storage.delete_collection_volume_attachment(label_selector=CASE_LABEL)
        self._wait("volumes of the last case still there",
                   lambda: not self.core.list_persistent_volume(label_selector=CASE_LABEL).items)
        self.core.delete_collection_node(label_selector=CASE_LABEL)
        self._wait("nodes of the last case still there",
                   lambda: not self.core.list_node(label_selector=CASE_LABEL).items)
        self._namespaces.clear()
        self._storage_keys.clear()

    # ------------------------------------------------------------ storage
    @staticmethod
    def _unprotect(patch: Callable[..., Any], *key: str) -> None:
        try:
            patch(*key, {"metadata": {"finalizers": None}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    @staticmethod
    def _gone(read: Callable[..., Any], *key: str) -> bool:
        try:
            read(*key)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    def _create_storage(self, case: Case) -> None:
        """The case's classes, CSINodes, shared claims and volumes, a volume pre-bound to a
        claim naming its uid (the PV controller then completes the pair); returns once every
        volume is Available or Bound."""
        uids: dict[tuple[str, str], str] = {}
        for o in yaml.safe_load(yaml.safe_dump(case.storage)):
            o["metadata"].setdefault("labels", {})[CASE_LABEL] = str(case.seed)
            kind = o["kind"]
            if kind == "StorageClass":
                self.storage.create_storage_class(o)
            elif kind == "CSINode":
                self.storage.create_csi_node(o)
            elif kind == "CSIDriver":
                self.storage.create_csi_driver(o)
            elif kind == "CSIStorageCapacity":
                self.storage.create_namespaced_csi_storage_capacity(o["metadata"]["namespace"], o)
            elif kind == "VolumeAttachment":
                self.storage.create_volume_attachment(o)
            elif kind == "PersistentVolumeClaim":
                ns = o["metadata"]["namespace"]
                uids[(ns, o["metadata"]["name"])] = self.core.create_namespaced_persistent_volume_claim(ns, o).metadata.uid
            else:
                ref = o["spec"].get("claimRef")
                if ref:
                    ref["uid"] = uids[(ref["namespace"], ref["name"])]
                self.core.create_persistent_volume(o)
        if case.storage:
            self._wait("volumes not yet Available or Bound", lambda: all(
                (pv.status.phase in ("Available", "Bound"))
                for pv in self.core.list_persistent_volume(label_selector=CASE_LABEL).items))
            self._wait("pre-bound claims not yet Bound", lambda: all(
                c.status.phase == "Bound" for ns in case.namespaces
                for c in self.core.list_namespaced_persistent_volume_claim(ns).items))

    def _create_claims(self, claims: list[dict]) -> None:
        for c in claims:
            self.core.create_namespaced_persistent_volume_claim(c["metadata"]["namespace"], c)
        if claims:
            time.sleep(SETTLE_S)  # the schedulers' claim informers, a stream of their own

    def _drop_claim(self, ns: str, name: str, release: bool = True) -> None:
        """Delete a claim; with `release`, make the volume a scheduler bound to it Available again
        (its claimRef cleared once the claim is gone, or the PV controller would bind them again)."""
        self._unprotect(self.core.patch_namespaced_persistent_volume_claim, name, ns)
        try:
            self.core.delete_namespaced_persistent_volume_claim(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._wait(f"claim {ns}/{name} still there", lambda: self._gone(self.core.read_namespaced_persistent_volume_claim, name, ns))
        if not release:
            return
        for pv in self.core.list_persistent_volume(label_selector=CASE_LABEL).items:
            ref = pv.spec.claim_ref
            if ref is None or ref.namespace != ns or ref.name != name:
                continue
            if (pv.metadata.annotations or {}).get(PROVISIONED_BY) == POOL:  # made for this claim: gone with it
                self._unprotect(self.core.patch_persistent_volume, pv.metadata.name)
                self.core.delete_persistent_volume(pv.metadata.name)
                self._wait(f"volume {pv.metadata.name} still there",
                           lambda pv=pv: self._gone(self.core.read_persistent_volume, pv.metadata.name))
            else:
                self.core.patch_persistent_volume(pv.metadata.name, {"spec": {"claimRef": None}})
                self._wait(f"volume {pv.metadata.name} not Available again", lambda pv=pv: (
                    self.core.read_persistent_volume(pv.metadata.name).status.phase == "Available"))
        time.sleep(SETTLE_S)

    def _sync_storage(self, engine: Engine, case: Case) -> None:
        """The engine's storage index made what the apiserver holds now (for the diagnosis)."""
        if not case.storage and not self._storage_keys:
            return
        ser = self.core.api_client.sanitize_for_serialization
        listed = {
            STORAGE_CLASSES: self.storage.list_storage_class(label_selector=CASE_LABEL).items,
            CSI_DRIVERS: self.storage.list_csi_driver(label_selector=CASE_LABEL).items,
            CAPACITIES: [c for ns in sorted(self._namespaces)
                         for c in self.storage.list_namespaced_csi_storage_capacity(ns).items],
            CSI_NODES: self.storage.list_csi_node(label_selector=CASE_LABEL).items,
            ATTACHMENTS: self.storage.list_volume_attachment(label_selector=CASE_LABEL).items,
            VOLUMES: self.core.list_persistent_volume(label_selector=CASE_LABEL).items,
            CLAIMS: [c for ns in sorted(self._namespaces) for c in self.core.list_namespaced_persistent_volume_claim(ns).items],
        }
        seen = set()
        for kind, items in listed.items():
            for o in items:
                key = f"{o.metadata.namespace}/{o.metadata.name}" if kind in (CLAIMS, CAPACITIES) else o.metadata.name
                engine.storage.apply(kind, ser(o))
                seen.add((kind, key))
        for kind, key in self._storage_keys - seen:
            engine.storage.delete(kind, key)
        self._storage_keys = seen

    # ------------------------------------------------------------ one case
    def run(self, case: Case, tally: Tally) -> None:
        self._clear()
        for ns, labels in case.namespaces.items():
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels=labels)))
            self._namespaces.add(ns)
        policy = client.PolicyV1Api(self.core.api_client)
        for pdb in case.pdbs:
            ns = pdb["metadata"]["namespace"]
            policy.create_namespaced_pod_disruption_budget(ns, {k: v for k, v in pdb.items() if k != "status"})
            policy.patch_namespaced_pod_disruption_budget_status(pdb["metadata"]["name"], ns, {"status": pdb["status"]})
        engine = Engine(our_config().profiles)  # the profiles our runtime runs
        ours_name, kube_name = scheduler_names(case.profile)
        tally.profiles[case.profile or "default"] = tally.profiles.get(case.profile or "default", 0) + 1
        for ns, labels in case.namespaces.items():
            engine.set_namespace_labels(ns, labels)
        for node in case.nodes:
            obj = yaml.safe_load(yaml.safe_dump(node))
            obj["metadata"]["labels"][CASE_LABEL] = str(case.seed)
            self.core.create_node(obj)
            engine.set_node(parse_node(node))
        self._create_storage(case)
        time.sleep(1.0)  # both schedulers' node informers: a separate stream from the pods'
        tally.cases += 1
        kept: dict[tuple[str, str], dict] = {}  # kube-scheduler's bound copies: the state
        for i, pod in enumerate(case.pods):
            tally.pods += 1
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            own = case.claims.get(name, [])
            pod_o, claims_o = copy_pod(pod, "-o", own)
            self._create_claims(claims_o)
            self._sync_storage(engine, case)
            diag = self._diagnose(engine, pod_o, ours_name)
            ours, _ = self._decide(pod_o, ours_name)
            ours.victims = self._victims(kept)
            ours.violations = violations(case, kept, ours.victims)
            self._delete(ns, name + "-o")
            for c in claims_o:
                self._drop_claim(ns, c["metadata"]["name"])
            self._restore(case, kept, ours.victims)
            pod_k, claims_k = copy_pod(pod, "-k", own)
            self._create_claims(claims_k)
            kube, bound = self._decide(pod_k, kube_name)
            kube.victims = self._victims(kept)
            kube.violations = violations(case, kept, kube.victims)
            pdb_limited = bool(kube.victims) and covered(case, kept, kube.victims)
            for victim, _ in kube.victims:
                engine.remove_pod(kept.pop((ns_of(victim), victim.split("/")[1]))["metadata"]["uid"])
            if kube.node:
                tally.bound += 1
                tally.preempting += bool(kube.victims)
                tally.pdb_limited += pdb_limited
                kept[(ns, name + "-k")] = bound
                engine.add_pod(parse_pod(bound))
            else:
                tally.unschedulable += 1
                for reason, n in fit_histogram(fit_error(kube.message))[1].items():
                    if any(w in reason for w in ("volume", "storage", "CSI driver", "PersistentVolumeClaim", "disk")):
                        tally.volume_reasons[reason] = tally.volume_reasons.get(reason, 0) + max(n, 1)
                self._delete(ns, name + "-k")
                for c in claims_k:
                    self._drop_claim(ns, c["metadata"]["name"])
            if any("persistentVolumeClaim" in v for v in pod["spec"].get("volumes") or ()):
                tally.with_volumes += 1
                tally.volumes_bound += bool(kube.node)
            if any(k in v for v in pod["spec"].get("volumes") or () for k in DISK_SOURCES):
                tally.with_disks += 1
                tally.disks_bound += bool(kube.node)
            what = compare(ours, kube, diag)
            if what:
                m = Mismatch(case, i, what, ours, kube, describe(diag),
                             ", ".join(f"{n} on {p['spec']['nodeName']}" for (_, n), p in kept.items()))
                m.workload = self.write_replay(case, i)
                tally.mismatches.append(m)
        for g, gang in enumerate(case.gangs):
            self._run_gang(case, len(case.pods) + g, gang, engine, (ours_name, kube_name), kept, tally)

    def _run_gang(self, case: Case, index: int, gang: Gang, engine: Engine, names: tuple[str, str],
                  kept: dict[tuple[str, str], dict], tally: Tally) -> None:
        """A gang through each scheduler, ours first (its copies deleted again), then
        kube-scheduler's (what it bound stays). Compared: how many members each bound (the
        generator draws gangs whose count does not depend on ties), that neither bound fewer than
        minCount but none, and that every member either placed passes our engine's filters over
        the state with the members placed before it."""
        ours_name, kube_name = names
        ns = gang.namespace
        tally.gangs += 1
        tally.gangs_zoned += bool(gang.topology_key)
        ours = self._decide_gang(gang, "-o", ours_name)
        wrong = self._refused(engine, ours, ours_name, keep=False)
        for _, got in ours:
            self._delete(ns, got["metadata"]["name"])
        self._delete_group(ns, gang.name + "-o")
        kube = self._decide_gang(gang, "-k", kube_name)
        wrong_kube = self._refused(engine, kube, ours_name, keep=True)
        for out, got in kube:
            if out.node:
                kept[(ns, got["metadata"]["name"])] = got
            else:
                self._delete(ns, got["metadata"]["name"])
        placed_o, placed_k = (sum(bool(o.node) for o, _ in outs) for outs in (ours, kube))
        split = ""
        if gang.topology_key:
            labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in case.nodes}
            for who, outs in (("ours", ours), ("kube-scheduler", kube)):
                values = {labels.get(o.node, {}).get(gang.topology_key) for o, _ in outs if o.node}
                if len(values) > 1 or None in values:
                    split = f"gang kept to one {gang.topology_key}: {who} placed it on {sorted(map(str, values))}"
        if placed_k:
            tally.gangs_placed += 1
        else:
            self._delete_group(ns, gang.name + "-k")
        what = ""
        if placed_o != placed_k:
            what = f"gang: ours bound {placed_o} of {gang.size} members, kube-scheduler {placed_k}"
        elif any(0 < n < gang.min_count for n in (placed_o, placed_k)):
            what = f"gang: {placed_o} of {gang.size} members bound, below minCount {gang.min_count}"
        elif wrong or wrong_kube:
            what = (f"gang: our engine's filters refuse {wrong or wrong_kube} "
                    f"(placed by {'our runtime' if wrong else 'kube-scheduler'})")
        elif split:
            what = split
        if what:
            m = Mismatch(case, index, what, _summary(ours), _summary(kube), "",
                         ", ".join(f"{n} on {p['spec']['nodeName']}" for (_, n), p in kept.items()))
            m.workload = self.write_replay(case, index)
            tally.mismatches.append(m)

    def _refused(self, engine: Engine, outs: list[tuple[Outcome, dict]], scheduler: str, keep: bool) -> list[str]:
        """The placed members (in order) whose node our engine's filters refuse over the state
        with the members before them placed; those placed are left in the engine if `keep`."""
        refused, added = [], []
        for out, got in outs:
            if not out.node:
                continue
            alone = yaml.safe_load(yaml.safe_dump(got))
            alone["spec"].pop("schedulingGroup", None)  # its filters, not its gang's wait
            alone["spec"].pop("nodeName")
            if out.node not in self._diagnose(engine, alone, scheduler).scores:
                refused.append(f"{got['metadata']['name']} on {out.node}")
            info = parse_pod(got)
            engine.add_pod(info)
            added.append(info.uid)
        if not keep:
            for uid in added:
                engine.remove_pod(uid)
        return refused

    def _victims(self, kept: dict[tuple[str, str], dict]) -> list[tuple[str, int]]:
        """The kept pods that are gone (a scheduler preempted them), as (ns/name, priority)."""
        here = {(p.metadata.namespace, p.metadata.name)
                for ns in self._namespaces for p in self.core.list_namespaced_pod(ns).items}
        return sorted((f"{ns}/{name}", int(kept[(ns, name)]["spec"].get("priority") or 0))
                      for ns, name in kept if (ns, name) not in here)

    def _restore(self, case: Case, kept: dict[tuple[str, str], dict], victims: list[tuple[str, int]]) -> None:
        """Put back what our scheduler preempted, bound where it was (nodeName set at creation),
        so kube-scheduler decides over the same state. From the generated manifest: the stored
        object is not valid input (the apiserver folded matchLabelKeys into the selector)."""
        manifests = {(p["metadata"]["namespace"], p["metadata"]["name"] + "-k"): p for p in case.pods}
        for victim, _ in victims:
            key = (ns_of(victim), victim.split("/")[1])
            pod = manifests[key]
            obj = copy_pod(pod, "-k", case.claims.get(pod["metadata"]["name"], []))[0]
            obj["spec"].update(schedulerName=KUBE, nodeName=kept[key]["spec"]["nodeName"])
            self.core.create_namespaced_pod(key[0], obj)
        if victims:
            time.sleep(SETTLE_S)

    def _diagnose(self, engine: Engine, pod: dict, scheduler: str) -> Diagnosis:
        obj = yaml.safe_load(yaml.safe_dump(pod))
        obj["spec"]["schedulerName"] = scheduler
        obj["metadata"]["uid"] = f"diag-{obj['metadata']['name']}"
        info = parse_pod(obj)
        res = engine.schedule([info], k=max(engine.num_nodes(), 1), commit=False)[0]
        if res.candidates:
            return Diagnosis(scores=dict(res.candidates))
        return Diagnosis(message=res.message())

    def write_replay(self, case: Case, upto: int) -> Path:
        """A workload file with the case's namespaces, nodes and pods up to `upto`, one pod per
        barrier (as the runner placed them): `cluster-scheduler loadtest FILE --scheduler both`."""
        ops: list[dict] = [{"op": "createObjects", "objects": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}
            for ns, labels in case.namespaces.items()] + case.pdbs}]
        for node in case.nodes:
            tpl = yaml.safe_load(yaml.safe_dump(node))
            tpl["metadata"].pop("name")
            tpl["metadata"]["labels"].pop(HOST)
            ops.append({"op": "createNodes", "count": 1, "template": tpl})
        name = f"parity-{case.seed}-pod{upto}"
        width = len(str(max(len(case.nodes) - 1, 0)))  # the workload's node names (Workload.node_name)
        renamed = {n["metadata"]["name"]: f"{name}-node-{i:0{width}d}" for i, n in enumerate(case.nodes)}

        def on_replay_nodes(obj: Any) -> Any:
            if isinstance(obj, dict):
                return {k: on_replay_nodes(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [on_replay_nodes(v) for v in obj]
            return renamed.get(obj, obj) if isinstance(obj, str) else obj
        if case.storage:  # the volume pre-bound by name (the PV controller completes the pair)
            ops.append({"op": "createObjects", "objects": on_replay_nodes(case.storage)})
        for pod in case.pods[:upto + 1]:
            tpl = yaml.safe_load(yaml.safe_dump(pod))
            meta = tpl["metadata"]
            if case.claims.get(meta["name"]):
                ops.append({"op": "createObjects", "objects": case.claims[meta["name"]]})
            ops.append({"op": "createPods", "count": 1, "namespace": meta.pop("namespace"),
                        "generateName": meta.pop("name") + "-", "template": tpl})
            ops.append({"op": "barrier", "timeout": 60})
        for gang in case.gangs[:max(upto + 1 - len(case.pods), 0)]:
            if gang.topology_key:  # its PodGroup as an object (the podGroup op has no constraints)
                tpl = yaml.safe_load(yaml.safe_dump(gang.template))
                tpl["spec"]["schedulingGroup"] = {"podGroupName": gang.name}
                ops.append({"op": "createObjects", "objects": [gang.group(gang.name)]})
                ops.append({"op": "createPods", "count": gang.size, "namespace": gang.namespace,
                            "generateName": gang.name + "-", "template": tpl})
            else:
                ops.append({"op": "createPods", "count": gang.size, "namespace": gang.namespace,
                            "generateName": gang.name + "-",
                            "podGroup": {"size": gang.size, "minCount": gang.min_count}, "template": gang.template})
            ops.append({"op": "barrier", "timeout": 60})
        path = self.out_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "ops": ops}, sort_keys=False))
        if case.profile:  # the profile it ran under, for both schedulers' --config
            path.with_suffix(".profile.yaml").write_text(yaml.safe_dump(PROFILES[case.profile], sort_keys=False))
        return path


@dataclass
class Diagnosis:
    """Our engine's view of one pod: every feasible node's score, or the FitError."""

    scores: dict[str, int] = field(default_factory=dict)
    message: str = ""

    def best(self) -> set[str]:
        top = max(self.scores.values(), default=None)
        return {n for n, s in self.scores.items() if s == top}


def _summary(outs: list[tuple[Outcome, dict]]) -> Outcome:
    """A gang's decisions as one Outcome: the nodes of its placed members, else the first reason."""
    nodes = [o.node for o, _ in outs if o.node]
    return Outcome(node=", ".join(nodes) or None, message=next((o.message for o, _ in outs if o.message), ""))


def describe(d: Diagnosis) -> str:
    if not d.scores:
        return f"unschedulable: {d.message}"
    return "feasible " + ", ".join(f"{n}={s}" for n, s in sorted(d.scores.items(), key=lambda kv: -kv[1]))


def _victim_pods(case: Case, kept: dict[tuple[str, str], dict],
                 victims: list[tuple[str, int]]) -> tuple[list[PodInfo], list[DisruptionBudget]]:
    """The victims as the engine reads them, most important first (priority, then age), and the
    case's budgets."""
    order = sorted(victims, key=lambda v: (-v[1], int(v[0].rsplit("-", 2)[-2])))
    return ([parse_pod(kept[(ns_of(v), v.split("/")[1])]) for v, _ in order],
            [parse_pdb(pdb) for pdb in case.pdbs])


def violations(case: Case, kept: dict[tuple[str, str], dict], victims: list[tuple[str, int]]) -> int:
    """How many victims a PodDisruptionBudget did not allow (upstream's
    filterPodsWithPDBViolation, as `preemption.split_by_pdb` implements it)."""
    return len(split_by_pdb(*_victim_pods(case, kept, victims))[0])


def covered(case: Case, kept: dict[tuple[str, str], dict], victims: list[tuple[str, int]]) -> bool:
    """Does a PodDisruptionBudget cover any of the victims?"""
    pods, pdbs = _victim_pods(case, kept, victims)
    return any(b.covers(p.namespace, p.labels) for b in pdbs for p in pods)


def ns_of(victim: str) -> str:
    return victim.split("/")[0]


def compare(ours: Outcome, kube: Outcome, diag: Diagnosis) -> str:
    """'' when the decisions agree, else what differs (the first difference found)."""
    if bool(ours.node) != bool(kube.node):
        return "one bound it, the other did not"
    if ours.victims or kube.victims:
        # the preemptor's node is the one its victims were on (or where it fits once they are
        # gone): equally ranked victim sets on other nodes are a tie upstream breaks at random
        return "" if ours.rank() == kube.rank() else "different victims"
    if not kube.node:
        if fit_histogram(ours.message) != fit_histogram(kube.message):
            return "different FitError"
        if diag.scores or fit_histogram(fit_error(diag.message)) != fit_histogram(ours.message):
            return "our engine's diagnosis differs from our runtime's message"
        return ""
    if kube.node not in diag.scores:
        return "kube-scheduler's node fails our filters"
    if kube.node not in diag.best():
        return "kube-scheduler's node does not have our best score"
    if ours.node not in diag.best():
        return "our runtime chose a node that does not have our engine's best score"
    return ""
