"""Readable builders for engine tests: API-shaped Node/Pod dicts through the real parser
(model/parse.py), so tests read like the manifests a user writes, plus small helpers to ask the
Engine where a pod goes and why not."""

from __future__ import annotations

import copy
import itertools
from typing import Any, Iterable

from cluster_scheduler.config import Profile
from cluster_scheduler.engine import Engine, PodResult
from cluster_scheduler.model.parse import parse_node, parse_pod
from cluster_scheduler.model.types import HOSTNAME_LABEL, NodeInfo, PodInfo

_uid = itertools.count()


def node_dict(name: str, cpu: str | int = "4", memory: str = "8Gi", pods: str | int = "110", *,
              labels: dict[str, str] | None = None, taints: list[dict] | None = None,
              unschedulable: bool = False, ready: bool = True,
              extra: dict[str, Any] | None = None) -> dict:
    """A Node manifest as a kubelet would register it (hostname label set, Ready condition)."""
    alloc = {"cpu": str(cpu), "memory": memory, "pods": str(pods)}
    alloc.update({k: str(v) for k, v in (extra or {}).items()})
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name, **(labels or {})}},
        "spec": spec,
        "status": {"allocatable": alloc, "capacity": dict(alloc),
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def node(name: str, cpu: str | int = "4", memory: str = "8Gi", pods: str | int = "110", **kw) -> NodeInfo:
    info = parse_node(node_dict(name, cpu, memory, pods, **kw))
    assert info.error is None, info.error
    return info


def pod_dict(name: str | None = None, cpu: str | None = None, memory: str | None = None, *,
             namespace: str = "default", labels: dict[str, str] | None = None,
             requests: dict[str, str] | None = None, node_name: str = "", **spec: Any) -> dict:
    """A Pod manifest with one container requesting cpu/memory (+ `requests`); any other keyword
    is a camelCase spec field (affinity, tolerations, nodeSelector, initContainers, ...)."""
    name = name or f"p{next(_uid)}"
    req: dict[str, str] = {}
    if cpu is not None:
        req["cpu"] = cpu
    if memory is not None:
        req["memory"] = memory
    req.update(requests or {})
    container: dict[str, Any] = {"name": "c", "image": "pause"}
    if req:
        container["resources"] = {"requests": req}
    ports = spec.pop("ports", None)
    if ports:
        container["ports"] = ports
    body: dict[str, Any] = {"containers": [container], **copy.deepcopy(spec)}
    if node_name:
        body["nodeName"] = node_name
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"{namespace}/{name}",
                         "labels": dict(labels or {})},
            "spec": body}


def pod(name: str | None = None, cpu: str | None = None, memory: str | None = None, **kw) -> PodInfo:
    info = parse_pod(pod_dict(name, cpu, memory, **kw))
    assert info.error is None, info.error
    return info


def bound(name: str | None, node_name: str, cpu: str | None = None, memory: str | None = None, **kw) -> PodInfo:
    """A pod already running on `node_name` (spec.nodeName set)."""
    return pod(name, cpu, memory, node_name=node_name, **kw)


def waiting(name: str | None, node_name: str, cpu: str | None = None, memory: str | None = None, **kw) -> PodInfo:
    """A nominated preemptor assumed on `node_name` while its victims leave (PodInfo.waiting)."""
    info = bound(name, node_name, cpu, memory, **kw)
    info.waiting = True
    return info


def engine(nodes: Iterable[NodeInfo], pods: Iterable[PodInfo] = (), profile: Profile | None = None) -> Engine:
    e = Engine(profile)
    for n in nodes:
        e.set_node(n)
    for p in pods:
        e.add_pod(p)
    return e


def place(e: Engine, p: PodInfo) -> PodResult:
    """Schedule one pod and commit it."""
    return e.schedule([p], k=1, commit=True)[0]


def where(e: Engine, p: PodInfo) -> str | None:
    r = place(e, p)
    return r.candidates[0][0] if r.candidates else None


def scores(e: Engine, p: PodInfo) -> dict[str, int]:
    """Total score of every feasible node for `p`, without placing it."""
    r = e.schedule([p], k=max(1, e.num_nodes()), commit=False)[0]
    return dict(r.candidates)


def message(e: Engine, p: PodInfo) -> str:
    r = e.schedule([p], k=1, commit=False)[0]
    assert not r.candidates, f"expected no fit, got {r.candidates}"
    return r.message()


def only(profile_weights: dict[str, int], **kw) -> Profile:
    """A profile whose scores come from the named plugins only (to test one scorer at a time)."""
    return Profile(score_weights=tuple(profile_weights.items()), **kw)


# ---------------------------------------------------------------------------------------- storage
def storage_class(name: str, mode: str | None = "WaitForFirstConsumer",
                  provisioner: str = "kubernetes.io/no-provisioner", topologies: list[dict] | None = None) -> dict:
    sc: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                          "provisioner": provisioner}
    if mode is not None:
        sc["volumeBindingMode"] = mode
    if topologies is not None:
        sc["allowedTopologies"] = [{"matchLabelExpressions": [{"key": k, "values": v} for k, v in t.items()]}
                                   for t in topologies]
    return sc


def pv_dict(name: str, size: str = "10Gi", *, host: str | None = None, storage_class: str = "local",
            modes: tuple[str, ...] = ("ReadWriteOnce",), labels: dict[str, str] | None = None,
            claim: tuple[str, str] | None = None, phase: str = "Available", **spec: Any) -> dict:
    """A PersistentVolume, pinned to `host` by a hostname node affinity when given (a local PV)."""
    body: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": list(modes),
                            "storageClassName": storage_class, **spec}
    if host is not None:
        body["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOSTNAME_LABEL, "operator": "In", "values": [host]}]}]}}
    if claim is not None:
        body["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": dict(labels or {})}, "spec": body, "status": {"phase": phase}}


def pvc_dict(name: str, size: str = "5Gi", *, namespace: str = "default", storage_class: str | None = "local",
             modes: tuple[str, ...] = ("ReadWriteOnce",), volume: str = "", bound: bool = False,
             annotations: dict[str, str] | None = None, **spec: Any) -> dict:
    """A PersistentVolumeClaim; `bound` marks the binding complete (as the PV controller does)."""
    body: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}
    if storage_class is not None:
        body["storageClassName"] = storage_class
    if volume:
        body["volumeName"] = volume
    ann = dict(annotations or {})
    if bound:
        ann["pv.kubernetes.io/bind-completed"] = "yes"
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "annotations": ann},
            "spec": body}


def claims(*names: str) -> dict:
    """The `volumes` of a pod spec mounting these claims."""
    return {"volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": n}} for i, n in enumerate(names)]}


def add_storage(e: Engine, *objs: dict) -> Engine:
    """Feed storage objects (StorageClasses, CSIDrivers, CSIStorageCapacities, CSINodes,
    PersistentVolumes, claims) to the engine's storage index, as the informer would."""
    from cluster_scheduler.model.storage import API_KINDS

    for o in objs:
        e.storage.apply(API_KINDS[(o["apiVersion"], o["kind"])], o)
    return e


def csi_driver(name: str, storage_capacity: bool = True, prevent_if_missing: bool | None = None) -> dict:
    spec: dict[str, Any] = {"storageCapacity": storage_capacity}
    if prevent_if_missing is not None:
        spec["preventPodSchedulingIfMissing"] = prevent_if_missing
    return {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": name}, "spec": spec}


def attachment(name: str, node: str, volume: str, attacher: str) -> dict:
    """A VolumeAttachment of a PersistentVolume."""
    return {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": name},
            "spec": {"attacher": attacher, "nodeName": node, "source": {"persistentVolumeName": volume}}}


def storage_capacity(name: str, storage_class: str, topology: dict | None, capacity: str | None = None,
                     maximum: str | None = None, namespace: str = "kube-system") -> dict:
    """A CSIStorageCapacity; `topology` is its nodeTopology label selector (None: absent)."""
    o: dict[str, Any] = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
                         "metadata": {"name": name, "namespace": namespace}, "storageClassName": storage_class}
    if topology is not None:
        o["nodeTopology"] = topology
    if capacity is not None:
        o["capacity"] = capacity
    if maximum is not None:
        o["maximumVolumeSize"] = maximum
    return o
