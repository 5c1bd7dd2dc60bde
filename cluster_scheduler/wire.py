"""The one wire format between the coordinator and the partition actors.

Everything that crosses a Ray call between them is defined here, as encode/decode pairs, so the two
ends cannot drift apart:

- **Stripped objects**: what the engines read of a pod, node or namespace, and nothing else
  (no managedFields, resourceVersion or heartbeat timestamps), as msgpack bytes. An update that
  changes none of it packs to the same bytes, so the coordinator can drop it instead of forwarding
  it. `PodObject` is the pod's shape; the informer decodes API JSON straight into it.
- **Deltas** (`Op`): changes to the cluster view, batched into one payload per call.
- **Batches**: the pods to propose nodes for, in order.
- **Proposals**: per pod, a partition's best nodes with their scores, or why it has none.

One Ray call costs about 1 ms here, so each payload carries many objects: never one call per pod.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Iterable, NamedTuple

import msgpack
import msgspec
from msgspec import UNSET

from .model.csi_translation import PLUGINS
from .model.parse import parse_node, parse_pod
from .model.storage import ATTACHMENTS, CAPACITIES, CSI_DRIVERS, CSI_NODES, STORAGE_CLASSES, VOLUMES
from .model.types import NodeInfo, PodInfo

# ------------------------------------------------------------------------------ stripped objects

_POD_META = ("name", "namespace", "uid", "labels", "creationTimestamp", "deletionTimestamp")


class PodMeta(msgspec.Struct):
    name: Any = UNSET
    namespace: Any = UNSET
    uid: Any = UNSET
    labels: Any = UNSET
    creationTimestamp: Any = UNSET
    deletionTimestamp: Any = UNSET
    resourceVersion: Any = UNSET  # for resuming a watch; not part of the stripped pod


class PodStatus(msgspec.Struct):
    phase: Any = UNSET
    nominatedNodeName: Any = UNSET  # where a preemptor waits for its victims to go


class PodObject(msgspec.Struct):
    """What the scheduler reads of a pod; a decoder of this type skips every other field in C."""
    metadata: PodMeta = msgspec.field(default_factory=PodMeta)
    spec: Any = UNSET
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    def stripped(self) -> dict:
        """The stripped pod: the only definition of its shape (`strip_pod` comes here too)."""
        meta = self.metadata
        m = {}
        for k in _POD_META:
            v = getattr(meta, k)
            if v is not UNSET:
                m[k] = v
        phase = self.status.phase
        spec = self.spec
        status = {"phase": "Pending" if phase is UNSET else phase}
        nominated = self.status.nominatedNodeName
        if nominated is not UNSET and nominated:
            status["nominatedNodeName"] = nominated
        return {"metadata": m, "spec": spec if spec is not UNSET and spec else {}, "status": status}


def strip_pod(obj: dict) -> dict:
    """The stripped form of a whole pod dict (one that did not decode as a `PodObject`, or a test's)."""
    meta = obj.get("metadata")
    status = obj.get("status")
    m = PodMeta(**{k: meta[k] for k in _POD_META if k in meta}) if isinstance(meta, dict) else PodMeta()
    s = (PodStatus(status.get("phase", UNSET), status.get("nominatedNodeName", UNSET)) if isinstance(status, dict)
         else PodStatus())
    return PodObject(m, obj.get("spec", UNSET), s).stripped()


def strip_node(obj: dict) -> dict:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    out = {k: status[k] for k in ("allocatable", "capacity") if k in status}
    # only type and status of conditions matter: heartbeat timestamps must not look like changes
    out["conditions"] = [{"type": c.get("type"), "status": c.get("status")}
                         for c in status.get("conditions") or () if isinstance(c, dict)]
    return {"metadata": {"name": meta.get("name"), "labels": meta.get("labels") or {}},
            "spec": obj.get("spec") or {}, "status": out}


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def pack(obj: dict) -> bytes:
    """msgpack bytes of a stripped object (msgspec's encoder: the same bytes as msgpack's, in
    about half the time; one call per pod event)."""
    return _ENCODER.encode(obj)


def unpack(data: bytes) -> Any:
    return _DECODER.decode(data)


def pod_info(obj: dict) -> PodInfo:
    """PodInfo for a stripped pod. A bound pod is parsed without spec.nodeName (then given its
    node) so pods of one template share one equivalence-class key wherever they run."""
    spec = obj.get("spec") or {}
    node = spec.get("nodeName")
    if node:
        obj = dict(obj, spec={k: v for k, v in spec.items() if k != "nodeName"})
    info = parse_pod(obj)
    if node:
        info.node_name = node if isinstance(node, str) else ""
    return info


def node_info(obj: dict) -> NodeInfo:
    return parse_node(obj)


def namespace_labels(obj: dict) -> tuple[str, dict[str, str]]:
    meta = obj.get("metadata") or {}
    return meta.get("name", ""), dict(meta.get("labels") or {})


# ------------------------------------------------------------------------------------- deltas

class Op(IntEnum):
    """A delta op: the first element of each delta list; its arguments follow."""
    NODE = 1          # [NODE, node bytes]: a node added or updated
    NODE_GONE = 2     # [NODE_GONE, name]
    NAMESPACE = 3     # [NAMESPACE, namespace bytes]: its labels (namespaceSelector terms)
    POD = 4           # [POD, pod bytes]: a bound pod
    BOUND_CLASS = 5   # [BOUND_CLASS, pod bytes, [[uid, name, node, prio, ts, terminating], ...]]: bound pods of one
                      # equivalence class; the bytes are one member's, parsed once for all
    POD_GONE = 6      # [POD_GONE, uid]: pod deleted, finished, or its assumption forgotten
    ASSUME = 7        # [ASSUME, pod bytes, node, waiting]: a pod the coordinator assumed onto node; waiting:
                      # a nominated preemptor whose victims are still leaving (PodInfo.waiting)
    STORAGE = 8       # [STORAGE, kind, object bytes]: a claim, volume or storage class added or updated
    STORAGE_GONE = 9  # [STORAGE_GONE, kind, key]: one gone (key: namespace/name for a claim, else the name)
    SETTLE = 10       # [SETTLE, uid]: a waiting pod's victims are gone; it is being bound where it waited


def node(data: bytes) -> list:
    return [Op.NODE, data]


def node_gone(name: str) -> list:
    return [Op.NODE_GONE, name]


def namespace(data: bytes) -> list:
    return [Op.NAMESPACE, data]


def pod(data: bytes) -> list:
    return [Op.POD, data]


def bound_class(data: bytes, members: list[list]) -> list:
    return [Op.BOUND_CLASS, data, members]


def pod_gone(uid: str) -> list:
    return [Op.POD_GONE, uid]


def assume(data: bytes, node_name: str, waiting: bool = False) -> list:
    return [Op.ASSUME, data, node_name, waiting]


def settle(uid: str) -> list:
    return [Op.SETTLE, uid]


def storage(kind: str, data: bytes) -> list:
    return [Op.STORAGE, kind, data]


def storage_gone(kind: str, key: str) -> list:
    return [Op.STORAGE_GONE, kind, key]


def encode_deltas(ops: list[list]) -> bytes:
    return msgpack.packb(ops, use_bin_type=True)


def decode_deltas(data: bytes) -> list[list]:
    """Delta lists whose first element is an `Op`; an unknown op raises ValueError."""
    ops = msgpack.unpackb(data, raw=False)
    for d in ops:
        d[0] = Op(d[0])
    return ops


# ------------------------------------------------------------------------------------ batches

def encode_batch(pods: Iterable[bytes]) -> bytes:
    """The pods of one batch (stripped pod bytes), in queue order."""
    return msgpack.packb(list(pods), use_bin_type=True)


def decode_batch(data: bytes) -> list[bytes]:
    return msgpack.unpackb(data, raw=False)


# ---------------------------------------------------------------------------------- proposals

class Proposal(NamedTuple):
    """One partition's answer for one pod: its best nodes from the shard, best first, or (none)
    the reason histogram over the shard's nodes; `error` when the pod itself is invalid."""
    uid: str
    candidates: list[tuple[str, int]]
    reasons: dict[str, int]
    num_nodes: int
    error: str | None
    prefilter: str | None = None  # a PreFilter's reason for every node (e.g. a missing claim)


def encode_proposals(results: Iterable[Any], seconds: float) -> bytes:
    """A partition's answer to one batch: per pod in batch order (anything with the `Proposal`
    fields, the engine's results), and the seconds the partition spent."""
    return msgpack.packb([seconds, [[r.uid, [[n, s] for n, s in r.candidates], r.reasons or {}, r.num_nodes, r.error,
                                     r.prefilter] for r in results]], use_bin_type=True)


def decode_proposals(data: bytes) -> tuple[float, list[Proposal]]:
    seconds, rows = msgpack.unpackb(data, raw=False)
    return seconds, [Proposal(uid, [(n, s) for n, s in cands], reasons, num, error, prefilter)
                     for uid, cands, reasons, num, error, prefilter in rows]


# ------------------------------------------------------------------------------- preemption

class PreemptionProposal(NamedTuple):
    """One partition's PostFilter answer for one pod: its shard's best candidate (node, victim
    uids most important first, PDB violations, upstream's rank as a list), or none, and why each
    node of the shard is no candidate (summed over shards for the pod's message)."""
    uid: str
    node: str
    victims: list[str]
    pdb_violations: int
    rank: list
    reasons: dict[str, int]


class PreemptionRequest(NamedTuple):
    """The pods to preempt for (stripped bytes, queue order), the PodDisruptionBudgets as the
    apiserver has them (stripped dicts), the pods already being evicted, the nominated preemptors
    (uid -> priority), the PodGroups' priorities ((namespace, name) -> spec.priority: a victim
    in a group is weighed at its group's) and those in disruptionMode All (evicted only whole)."""
    pods: list[bytes]
    pdbs: list[dict]
    evicting: list[str]
    held: dict[str, int]
    groups: dict[tuple[str, str], int]
    whole: set[tuple[str, str]]


def encode_preemption_request(pods: Iterable[bytes], pdbs: list[dict], evicting: Iterable[str],
                              held: dict[str, int], groups: dict[tuple[str, str], int],
                              whole: set[tuple[str, str]] = frozenset()) -> bytes:
    return msgpack.packb([list(pods), pdbs, list(evicting), held,
                          [[ns, name, prio, (ns, name) in whole] for (ns, name), prio in groups.items()]],
                         use_bin_type=True)


def decode_preemption_request(data: bytes) -> PreemptionRequest:
    pods, pdbs, evicting, held, groups = msgpack.unpackb(data, raw=False)
    return PreemptionRequest(pods, pdbs, evicting, held, {(ns, name): prio for ns, name, prio, _ in groups},
                             {(ns, name) for ns, name, _, whole in groups if whole})


def encode_preemptions(outcomes: Iterable[Any], seconds: float) -> bytes:
    rows = []
    for uid, out in outcomes:
        c = out.candidate
        rows.append([uid, c.node if c else "", [v.uid for v in c.victims] if c else [],
                     c.pdb_violations if c else 0, list(c.rank) if c else [], out.reasons or {}])
    return msgpack.packb([seconds, rows], use_bin_type=True)


def decode_preemptions(data: bytes) -> tuple[float, list[PreemptionProposal]]:
    seconds, rows = msgpack.unpackb(data, raw=False)
    return seconds, [PreemptionProposal(*r) for r in rows]


def strip_pdb(obj: dict) -> dict:
    """What preemption reads of a PodDisruptionBudget."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": {"selector": (obj.get("spec") or {}).get("selector")},
            "status": {"disruptionsAllowed": status.get("disruptionsAllowed"),
                       "disruptedPods": status.get("disruptedPods")}}


# in-tree volume sources NodeVolumeLimits counts under their CSI driver (model/csi_translation.py)
IN_TREE_SOURCES = tuple(key for _, key in PLUGINS.values())
# annotations the volume filters read (model/parse.py); nothing else of an object's annotations
_STORAGE_ANNOTATIONS = ("pv.kubernetes.io/bind-completed", "volume.kubernetes.io/selected-node",
                        "volume.beta.kubernetes.io/storage-class")


def strip_storage(kind: str, obj: dict) -> dict:
    """What the volume filters read of a PersistentVolume, claim, StorageClass, CSIDriver,
    CSIStorageCapacity, CSINode or VolumeAttachment (the resourceVersion included: the coordinator writes volume
    bindings against it)."""
    meta = obj.get("metadata") or {}
    m = {k: meta[k] for k in ("name", "namespace", "uid", "labels", "resourceVersion", "deletionTimestamp")
         if meta.get(k)}
    ann = meta.get("annotations") or {}
    kept = {k: ann[k] for k in _STORAGE_ANNOTATIONS if k in ann}
    if kept:
        m["annotations"] = kept
    owners = [{"uid": o.get("uid"), "controller": True} for o in meta.get("ownerReferences") or ()
              if isinstance(o, dict) and o.get("controller") is True]
    if owners:
        m["ownerReferences"] = owners
    if kind == STORAGE_CLASSES:
        return {"metadata": m, **{k: obj[k] for k in ("provisioner", "volumeBindingMode", "allowedTopologies")
                                  if k in obj}}
    if kind == CAPACITIES:
        return {"metadata": m, **{k: obj[k] for k in ("storageClassName", "nodeTopology", "capacity", "maximumVolumeSize")
                                  if k in obj}}
    spec = obj.get("spec") or {}
    if kind == ATTACHMENTS:
        source = spec.get("source") if isinstance(spec.get("source"), dict) else {}
        return {"metadata": m, "spec": {**{k: spec[k] for k in ("attacher", "nodeName") if k in spec},
                                        "source": {k: source[k] for k in ("persistentVolumeName",) if k in source}}}
    if kind == CSI_DRIVERS:
        return {"metadata": m, "spec": {k: spec[k] for k in ("storageCapacity", "preventPodSchedulingIfMissing")
                                        if k in spec}}
    if kind == CSI_NODES:
        return {"metadata": m, "spec": {"drivers": [
            {"name": d.get("name"), "allocatable": d.get("allocatable")}
            for d in spec.get("drivers") or () if isinstance(d, dict)]}}
    keep = (("storageClassName", "accessModes", "volumeMode", "capacity", "nodeAffinity", "claimRef", "csi",
             *IN_TREE_SOURCES)
            if kind == VOLUMES else
            ("storageClassName", "accessModes", "volumeMode", "resources", "selector", "volumeName"))
    s = {k: spec[k] for k in keep if k in spec}
    if isinstance(s.get("csi"), dict):
        s["csi"] = {k: s["csi"][k] for k in ("driver", "volumeHandle") if k in s["csi"]}
    if isinstance(s.get("claimRef"), dict):
        s["claimRef"] = {k: s["claimRef"][k] for k in ("namespace", "name", "uid") if k in s["claimRef"]}
    if isinstance(s.get("resources"), dict):
        s["resources"] = {"requests": s["resources"].get("requests") or {}}
    return {"metadata": m, "spec": s, "status": {"phase": (obj.get("status") or {}).get("phase", "")}}
