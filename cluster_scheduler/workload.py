"""Workload files: the cluster to build and the pods to schedule, as in /shared/workloads/FORMAT.md.

A workload is a list of operations over Node and Pod templates, shaped like the upstream
scheduler_perf configuration so one file can drive this scheduler and kube-scheduler alike.
`load_workload` validates the whole file up front (a typo should fail in a second, not an hour into
a benchmark) and the `iter_*` generators turn templates into real Node and Pod manifests as plain
dicts. Nothing here talks to Kubernetes: the load test creates the objects, the simulator consumes
them directly.

Names are deterministic so a run can be repeated and its results joined with the placement check:
nodes are `<workload>-node-<i>` (zero-padded, `i` global across all createNodes ops), pods are
`<generateName><i>` where `i` counts within one (namespace, generateName) series, so two ops that
share a prefix never produce the same name.

Gangs (`podGroup: {size, minCount}` on a createPods op) use Kubernetes 1.37's API: one
`scheduling.k8s.io/v1beta1` PodGroup per `size` consecutive pods of the op, named
`<generateName>g<k>` (k counts the groups of one (namespace, generateName) series from 0), with
the pods' priority (the scheduler requires the two to match), each member naming it in
`spec.schedulingGroup.podGroupName`; `iter_pod_groups` yields them, to be created before the pods.
`createObjects` carries any other manifests, created as given, in order.

Volumes (`persistentVolumeClaimTemplate`, optionally `persistentVolumeTemplate`, on a createPods
op): each pod `<name>` gets the claim `<name>-pvc` in its namespace, mounted as its volume `data`;
with a volume template also the PersistentVolume `<name>-pv`, pre-bound to that claim (claimRef
on the volume, volumeName on the claim; the PV controller completes the binding, or the tool writes
it bound with `written_bound`). `iter_volumes` yields them, to be created before the pod (the load
test waits for a pre-bound pair to be bound).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

import orjson
import yaml

from cluster_scheduler.check import parse_quantity
from cluster_scheduler.model.csi_translation import DISK_IDS

HOSTNAME_LABEL = "kubernetes.io/hostname"
DEFAULT_BARRIER_TIMEOUT = 600.0

# DNS-1123 subdomain (object names) and label (namespaces), as the apiserver validates them.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A generateName is a name prefix: it may end in '-' or '.'.
_NAME_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*)?$")
# Label values: empty, or up to 63 alphanumerics with '-', '_', '.' inside.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class WorkloadError(ValueError):
    """A workload file that cannot be run; the message names the file, the op and the problem."""


@dataclass(frozen=True, slots=True)
class CreateNodes:
    """Create `count` nodes from `template`; node i gets values[i % len] of each round-robin label."""

    count: int
    template: dict[str, Any]
    round_robin_labels: dict[str, list[str]] = field(default_factory=dict)
    # a CSINode per node, as a kubelet's CSI drivers register it (scheduler_perf's
    # nodeAllocatableStrategy): named after the node, each driver's nodeID set to it
    csi_node: dict[str, Any] | None = None
    # a template per node (scheduler_perf's node templates that vary with .Index), in the op's
    # order; `template` is then the first
    per_node: tuple[dict[str, Any], ...] = ()
    # the nodes' names, in the op's order, where its template names them (scheduler_perf's: later
    # ops refer to them, e.g. a pod's nodeName); else the workload numbers them (`node_name`)
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PodGroupSpec:
    """`podGroup` of a createPods op: a gang PodGroup per `size` consecutive pods."""

    size: int
    min_count: int


@dataclass(frozen=True, slots=True)
class CreatePods:
    """Create `count` pods from `template` in `namespace`, `rate` per second (0 = unthrottled)."""

    count: int
    namespace: str
    generate_name: str
    rate: float
    template: dict[str, Any]
    pod_group: PodGroupSpec | None = None
    # counted in throughput and latency (scheduler_perf's collectMetrics); the other pods are the
    # cluster's initial state: bound or unschedulable like any, but not timed
    measure: bool = True
    # a template per pod (index within the op -> manifest), for templates that vary with the index
    # (scheduler_perf's Go templates); `template` is then the first one
    per_pod: Any = None
    claim_template: dict[str, Any] | None = None  # persistentVolumeClaimTemplate
    volume_template: dict[str, Any] | None = None  # persistentVolumeTemplate (pre-bound to the claim)
    # each volume its own disk: its source's id (csi.volumeHandle, or an in-tree source's volumeID /
    # pdName / diskURI) set to the volume's name, as scheduler_perf's volume factory does
    disk_named_after_volume: bool = False
    # names of each pod's claim and volume: {pod} the pod's name, {index} its index in the op,
    # {namespace}; scheduler_perf's are pvc-{index} and {namespace}-vol-{index}
    claim_name: str = "{pod}-pvc"
    volume_name: str = "{pod}-pv"
    # the tool writes each pre-bound pair bound (claimRef with the claim's uid, both phases
    # Bound, the claim marked bind-completed), as scheduler_perf does: no PV controller needed
    written_bound: bool = False


@dataclass(frozen=True, slots=True)
class CreateObjects:
    """Create these manifests as given, in order (PriorityClass, PodDisruptionBudget, Namespace,
    PodGroup, StorageClass, ...), before the next op."""

    objects: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Barrier:
    """Wait until every pod created so far is bound or reported Unschedulable. scheduler_perf's
    barriers narrow it: `until_bound` waits for the binding (its Scheduled stage; an
    unschedulable pod is not done), `namespaces` and `labels` select the pods waited for, and
    `at_least` is enough of them (a createPods op waits for as many bound pods in its namespace
    as the waited-for ops put there)."""

    timeout: float = DEFAULT_BARRIER_TIMEOUT
    until_bound: bool = False
    namespaces: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    at_least: int = 0  # done once this many of the selected pods are done (0: all of them)

    @property
    def narrowed(self) -> bool:
        return self.until_bound or bool(self.namespaces) or bool(self.labels) or bool(self.at_least)


@dataclass(frozen=True, slots=True)
class DeletePods:
    """Delete the pods in `namespace` whose labels include `labels`, as listed when the op runs,
    `rate` per second (0: one delete-collection call), in the background unless `wait`
    (scheduler_perf's deletePods; only upstream's suite uses it). Pods the workload deletes are
    neither bound nor preempted in the report: they are withdrawn."""

    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    rate: float = 0.0
    wait: bool = True


@dataclass(frozen=True, slots=True)
class Churn:
    """In the background until the workload ends, every `interval` seconds create one object of
    each template (in `namespace` when namespaced; pods go to the scheduler under test); in
    `recreate` mode each template's objects live `number` ticks and are then deleted, in `create`
    mode they stay, at most `number` ticks (0: no limit). scheduler_perf's churn; only upstream's
    suite uses it."""

    mode: str  # "create" | "recreate"
    number: int
    interval: float
    templates: tuple[dict[str, Any], ...]
    namespace: str


@dataclass(frozen=True, slots=True)
class UpdateObjects:
    """Replace each of these objects as given, `rate` per second (0: unthrottled), then its status
    with the same manifest, as scheduler_perf's updateAny does (a PUT without resourceVersion; a
    pod's only through `subresources`, e.g. `resize`, where given). A pod's manifest gets the
    scheduler under test's name, as created pods do. Only upstream's suite uses it."""

    objects: tuple[dict[str, Any], ...]
    rate: float = 0.0
    subresources: tuple[str, ...] = ()


Op = Union[CreateNodes, CreatePods, CreateObjects, Barrier, DeletePods, Churn, UpdateObjects]


@dataclass(slots=True)
class Workload:
    name: str
    ops: list[Op]
    source: str = ""  # the file it came from, for messages
    # the KubeSchedulerConfiguration profile a workload is to run under (an upstream scheduler_perf
    # case's `schedulerConfigPath`), given to each scheduler under its own name; None: its defaults
    scheduler_profile: dict[str, Any] | None = None

    # ---- totals -------------------------------------------------------------------------------

    @property
    def node_count(self) -> int:
        return sum(op.count for op in self.ops if isinstance(op, CreateNodes))

    @property
    def pod_count(self) -> int:
        return sum(op.count for op in self.ops if isinstance(op, CreatePods))

    @property
    def uses_volumes(self) -> bool:
        """Claims or volumes to bind: a cluster for it needs the PersistentVolume controller."""
        return any((isinstance(op, CreatePods) and op.claim_template is not None and not op.written_bound)
                   or (isinstance(op, CreateObjects) and any(o.get("kind") in ("PersistentVolume", "PersistentVolumeClaim")
                                                             for o in op.objects))
                   for op in self.ops)

    @property
    def namespaces(self) -> list[str]:
        """Namespaces the pods and namespaced objects go to, in order of first use (the load test
        creates them up front), except those a createObjects op defines as Namespace objects
        (labels for namespaceSelectors): those are created as given, by their op."""
        defined = {o["metadata"]["name"] for op in self.ops if isinstance(op, CreateObjects)
                   for o in op.objects if o.get("kind") == "Namespace" and o.get("apiVersion") == "v1"}
        seen: dict[str, None] = {}
        for op in self.ops:
            if isinstance(op, (CreatePods, Churn)):
                seen.setdefault(op.namespace, None)
            elif isinstance(op, CreateObjects):
                for o in op.objects:
                    if o["metadata"].get("namespace"):
                        seen.setdefault(o["metadata"]["namespace"], None)
        return [ns for ns in seen if ns not in defined]

    # ---- naming -------------------------------------------------------------------------------

    def node_name(self, index: int) -> str:
        """Zero-padded to the width of the largest index so names sort in creation order."""
        width = len(str(max(self.node_count - 1, 0)))
        return f"{self.name}-node-{index:0{width}d}"

    def steps(self) -> Iterator[tuple[Op, int]]:
        """Each op with its start index: the global node index for createNodes, the index within
        the op's (namespace, generateName) series for createPods, 0 for the others."""
        next_node = 0
        next_pod: dict[tuple[str, str], int] = {}
        for op in self.ops:
            if isinstance(op, CreateNodes):
                yield op, next_node
                next_node += op.count
            elif isinstance(op, CreatePods):
                series = (op.namespace, op.generate_name)
                start = next_pod.get(series, 0)
                yield op, start
                next_pod[series] = start + op.count
            else:
                yield op, 0

    # ---- manifests ----------------------------------------------------------------------------

    def iter_nodes(self, op: CreateNodes, start_index: int) -> Iterator[dict[str, Any]]:
        """Node manifests for `op`, numbered from `start_index`. Each is an independent dict."""
        blob = orjson.dumps(op.template)  # deep copy by round trip: fast, and nothing is shared
        rr = list(op.round_robin_labels.items())
        for i in range(start_index, start_index + op.count):
            t = orjson.loads(orjson.dumps(op.per_node[i - start_index]) if op.per_node else blob)
            name = op.names[i - start_index] if op.names else self.node_name(i)
            meta = t.get("metadata") or {}
            labels = dict(meta.get("labels") or {})
            for key, values in rr:
                labels[key] = values[i % len(values)]
            labels[HOSTNAME_LABEL] = name  # as a kubelet would
            meta["name"] = name
            meta["labels"] = labels
            status = t.get("status") or {}
            if "allocatable" not in status and "capacity" in status:
                status["allocatable"] = dict(status["capacity"])
            if "conditions" not in status:
                status["conditions"] = [{
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "created ready by the cluster-scheduler workload loader",
                }]
            yield {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": meta,
                "spec": t.get("spec") or {},
                "status": status,
            }

    def _group_base(self, op: CreatePods) -> int:
        """How many PodGroups earlier ops of `op`'s (namespace, generateName) series made."""
        base = 0
        for o in self.ops:
            if o is op:
                return base
            if (isinstance(o, CreatePods) and o.pod_group is not None
                    and (o.namespace, o.generate_name) == (op.namespace, op.generate_name)):
                base += -(-o.count // o.pod_group.size)
        raise ValueError("op is not one of this workload's")

    def iter_pod_groups(self, op: CreatePods) -> Iterator[dict[str, Any]]:
        """PodGroup manifests of a gang op (none for other ops), to be created before its pods.
        Their priority is the pods' (spec.priority of the template), which the schedulers require."""
        if op.pod_group is None:
            return
        spec = op.template.get("spec") or {}
        base = self._group_base(op)
        for k in range(-(-op.count // op.pod_group.size)):
            group_spec: dict[str, Any] = {"schedulingPolicy": {"gang": {"minCount": op.pod_group.min_count}}}
            if isinstance(spec.get("priority"), int):
                group_spec["priority"] = spec["priority"]
            if spec.get("priorityClassName"):
                group_spec["priorityClassName"] = spec["priorityClassName"]
            yield {"apiVersion": "scheduling.k8s.io/v1beta1", "kind": "PodGroup",
                   "metadata": {"name": f"{op.generate_name}g{base + k}", "namespace": op.namespace},
                   "spec": group_spec}

    def iter_pods(self, op: CreatePods, start_index: int,
                  scheduler_name: str) -> Iterator[dict[str, Any]]:
        """Pod manifests for `op`, numbered from `start_index`, with spec.schedulerName set (and
        spec.schedulingGroup for a gang op)."""
        blob = orjson.dumps(op.template)
        size = op.pod_group.size if op.pod_group is not None else 0
        base = self._group_base(op) if size else 0
        for j, i in enumerate(range(start_index, start_index + op.count)):
            t = op.per_pod(j) if op.per_pod is not None else orjson.loads(blob)
            meta = t.get("metadata") or {}
            meta["name"] = f"{op.generate_name}{i}"
            meta["namespace"] = op.namespace
            spec = t.get("spec") or {}
            spec["schedulerName"] = scheduler_name
            if size:
                spec["schedulingGroup"] = {"podGroupName": f"{op.generate_name}g{base + j // size}"}
            if op.claim_template is not None:
                claim = op.claim_name.format(pod=meta["name"], index=j, namespace=op.namespace)
                spec["volumes"] = [*(spec.get("volumes") or ()),
                                   {"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
            yield {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def iter_volumes(self, op: CreatePods, start_index: int) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any]]]:
        """(PersistentVolume or None, PersistentVolumeClaim) for each pod of `op` in order, none
        without a claim template: create both before the pod."""
        if op.claim_template is None:
            return
        claim_blob = orjson.dumps(op.claim_template)
        volume_blob = orjson.dumps(op.volume_template) if op.volume_template is not None else None
        for j, i in enumerate(range(start_index, start_index + op.count)):
            names = {"pod": f"{op.generate_name}{i}", "index": j, "namespace": op.namespace}
            claim_name, volume_name = op.claim_name.format(**names), op.volume_name.format(**names)
            claim = orjson.loads(claim_blob)
            claim.update(apiVersion="v1", kind="PersistentVolumeClaim")
            claim["metadata"] = {**(claim.get("metadata") or {}), "name": claim_name, "namespace": op.namespace}
            claim.setdefault("spec", {})
            pv = None
            if volume_blob is not None:
                pv = orjson.loads(volume_blob)
                pv.update(apiVersion="v1", kind="PersistentVolume")
                pv["metadata"] = {**(pv.get("metadata") or {}), "name": volume_name}
                pv.setdefault("spec", {})["claimRef"] = {"namespace": op.namespace, "name": claim_name}
                claim["spec"]["volumeName"] = volume_name
                if not op.written_bound:
                    # the PV controller completes the binding and marks it so: a claim created marked
                    # before its volume's claimRef holds the claim's uid would be marked Lost
                    (claim["metadata"].get("annotations") or {}).pop("pv.kubernetes.io/bind-completed", None)
                if op.disk_named_after_volume:
                    _name_disk(pv["spec"], volume_name)
            yield pv, claim

    def iter_csi_nodes(self, op: CreateNodes, start_index: int) -> Iterator[dict[str, Any]]:
        """The CSINode of each node of `op` (none without `csi_node`): create after the node."""
        if op.csi_node is None:
            return
        blob = orjson.dumps(op.csi_node)
        for i in range(start_index, start_index + op.count):
            name = op.names[i - start_index] if op.names else self.node_name(i)
            obj = orjson.loads(blob)
            obj.update(apiVersion="storage.k8s.io/v1", kind="CSINode")
            obj["metadata"] = {**(obj.get("metadata") or {}), "name": name}
            for d in (obj.setdefault("spec", {}).get("drivers") or ()):
                d["nodeID"] = name
            yield obj

    def all_nodes(self) -> Iterator[dict[str, Any]]:
        for op, start in self.steps():
            if isinstance(op, CreateNodes):
                yield from self.iter_nodes(op, start)

    def all_pods(self, scheduler_name: str) -> Iterator[dict[str, Any]]:
        for op, start in self.steps():
            if isinstance(op, CreatePods):
                yield from self.iter_pods(op, start, scheduler_name)


# ---- loading and validation ---------------------------------------------------------------------

_OP_KEYS = {
    "createNodes": {"op", "count", "template", "roundRobinLabels"},
    "createPods": {"op", "count", "namespace", "generateName", "rate", "template", "podGroup",
                   "persistentVolumeClaimTemplate", "persistentVolumeTemplate"},
    "createObjects": {"op", "objects"},
    "barrier": {"op", "timeout"},
}


class _Invalid(Exception):
    """Raised inside validation; `load_workload` adds file and op to the message."""


def load_yaml(text: str) -> Any:
    """yaml.safe_load through libyaml where PyYAML was built with it: the pure-Python parser
    spends seconds on scheduler_perf's templates (one per pod, node and PodGroup)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload file. Raises WorkloadError with one message for any problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = load_yaml(text)
    except yaml.YAMLError as exc:
        raise WorkloadError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    return parse_workload(doc, source=str(path))


def parse_workload(doc: Any, source: str = "<workload>") -> Workload:
    """Validate an already-parsed document (what `load_workload` does after reading YAML)."""
    if not isinstance(doc, dict):
        raise WorkloadError(f"{source}: the top level must be a mapping with 'name' and 'ops'")
    unknown = sorted(set(doc) - {"name", "ops"})
    if unknown:
        raise WorkloadError(f"{source}: unknown top-level key(s) {unknown}; expected 'name', 'ops'")
    name = doc.get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 200:
        raise WorkloadError(
            f"{source}: 'name' must be a lowercase DNS name (a-z, 0-9, '-', '.'), got {name!r}")
    raw_ops = doc.get("ops")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise WorkloadError(f"{source}: 'ops' must be a non-empty list")
    ops: list[Op] = []
    for i, raw in enumerate(raw_ops):
        kind = raw.get("op") if isinstance(raw, dict) else None
        where = f"{source}: ops[{i}]" + (f" ({kind})" if isinstance(kind, str) else "")
        try:
            ops.append(_parse_op(raw, name))
        except _Invalid as exc:
            raise WorkloadError(f"{where}: {exc}") from None
    return Workload(name=name, ops=ops, source=source)


def _parse_op(raw: Any, workload_name: str) -> Op:
    if not isinstance(raw, dict):
        raise _Invalid(f"an op must be a mapping, got {type(raw).__name__}")
    kind = raw.get("op")
    if kind not in _OP_KEYS:
        raise _Invalid(f"unknown op {kind!r}; expected one of {sorted(_OP_KEYS)}")
    unknown = sorted(set(raw) - _OP_KEYS[kind])
    if unknown:
        raise _Invalid(f"unknown key(s) {unknown}; allowed: {sorted(_OP_KEYS[kind] - {'op'})}")
    if kind == "barrier":
        timeout = raw.get("timeout", DEFAULT_BARRIER_TIMEOUT)
        if not _is_number(timeout) or timeout <= 0:
            raise _Invalid(f"'timeout' must be a positive number of seconds, got {timeout!r}")
        return Barrier(timeout=float(timeout))
    if kind == "createObjects":
        return CreateObjects(objects=tuple(_check_objects(raw.get("objects"))))
    count = raw.get("count")
    if count is None:
        raise _Invalid("'count' is required")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _Invalid(f"'count' must be a non-negative integer, got {count!r}")
    template = raw.get("template")
    if not isinstance(template, dict):
        raise _Invalid(f"'template' must be a mapping, got {type(template).__name__}")
    if kind == "createNodes":
        rr = raw.get("roundRobinLabels") or {}
        _check_round_robin(rr)
        _check_node_template(template)
        return CreateNodes(count=count, template=template,
                           round_robin_labels={k: list(v) for k, v in rr.items()})
    namespace = raw.get("namespace", "default")
    if not isinstance(namespace, str) or not _DNS_LABEL.match(namespace) or len(namespace) > 63:
        raise _Invalid(f"'namespace' must be a DNS label (a-z, 0-9, '-'), got {namespace!r}")
    generate_name = raw.get("generateName", f"{workload_name}-")
    if (not isinstance(generate_name, str) or not _NAME_PREFIX.match(generate_name)
            or len(generate_name) > 200):
        raise _Invalid(f"'generateName' must be a lowercase name prefix, got {generate_name!r}")
    rate = raw.get("rate", 0)
    if not _is_number(rate) or rate < 0:
        raise _Invalid(f"'rate' must be a number >= 0 (pods per second, 0 = unthrottled), "
                       f"got {rate!r}")
    _check_pod_template(template)
    pod_group = _check_pod_group(raw["podGroup"]) if "podGroup" in raw else None
    if pod_group is not None and "schedulingGroup" in template["spec"]:
        raise _Invalid("template.spec.schedulingGroup is not allowed with podGroup: the tool sets it")
    claim_t, volume_t = raw.get("persistentVolumeClaimTemplate"), raw.get("persistentVolumeTemplate")
    for key, t in (("persistentVolumeClaimTemplate", claim_t), ("persistentVolumeTemplate", volume_t)):
        if t is not None and (not isinstance(t, dict) or not isinstance(t.get("spec"), dict)):
            raise _Invalid(f"'{key}' must be a mapping with a 'spec'")
    if volume_t is not None and claim_t is None:
        raise _Invalid("'persistentVolumeTemplate' needs a 'persistentVolumeClaimTemplate' to be bound to")
    if claim_t is not None:
        _check_quantities("persistentVolumeClaimTemplate.spec.resources.requests",
                          (claim_t["spec"].get("resources") or {}).get("requests"))
    return CreatePods(count=count, namespace=namespace, generate_name=generate_name,
                      rate=float(rate), template=template, pod_group=pod_group,
                      claim_template=claim_t, volume_template=volume_t)


def _name_disk(spec: dict[str, Any], name: str) -> None:
    for key, field_name in {"csi": "volumeHandle", **DISK_IDS}.items():
        if isinstance(spec.get(key), dict):
            spec[key][field_name] = name


def _check_pod_group(raw: Any) -> PodGroupSpec:
    if not isinstance(raw, dict) or set(raw) - {"size", "minCount"} or "size" not in raw:
        raise _Invalid(f"'podGroup' must be a mapping {{size, minCount}}, got {raw!r}")
    size, min_count = raw["size"], raw.get("minCount", raw["size"])
    for key, v in (("size", size), ("minCount", min_count)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise _Invalid(f"podGroup.{key} must be a positive integer, got {v!r}")
    # minCount > size is allowed on purpose: a gang that can never be satisfied (bad input the
    # scheduler must report, not a bad workload file)
    return PodGroupSpec(size=size, min_count=min_count)


def _check_objects(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid("'objects' must be a non-empty list of manifests")
    for j, obj in enumerate(raw):
        where = f"objects[{j}]"
        if not isinstance(obj, dict):
            raise _Invalid(f"{where} must be a mapping (a Kubernetes manifest)")
        if not isinstance(obj.get("apiVersion"), str) or not obj["apiVersion"]:
            raise _Invalid(f"{where}: 'apiVersion' is required")
        if not isinstance(obj.get("kind"), str) or not obj["kind"]:
            raise _Invalid(f"{where}: 'kind' is required")
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise _Invalid(f"{where} ({obj['kind']}): metadata.name is required")
        ns = meta.get("namespace")
        if ns is not None and (not isinstance(ns, str) or not _DNS_LABEL.match(ns)):
            raise _Invalid(f"{where} ({obj['kind']}): metadata.namespace must be a DNS label, got {ns!r}")
    return raw


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_round_robin(rr: Any) -> None:
    if not isinstance(rr, dict):
        raise _Invalid("'roundRobinLabels' must map a label key to a list of values")
    for key, values in rr.items():
        if not isinstance(key, str) or not key:
            raise _Invalid(f"roundRobinLabels key {key!r} must be a non-empty string")
        if key == HOSTNAME_LABEL:
            raise _Invalid(f"roundRobinLabels must not set {HOSTNAME_LABEL}: it is the node's name")
        if not isinstance(values, list) or not values:
            raise _Invalid(f"roundRobinLabels[{key!r}] must be a non-empty list")
        for v in values:
            _check_label_value(f"roundRobinLabels[{key!r}]", v)


def _check_label_value(where: str, v: Any) -> None:
    if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.match(v):
        raise _Invalid(f"{where}: label value {v!r} must be a string of at most 63 characters "
                       f"(quote numbers and booleans in YAML)")


def _check_metadata(template: dict, what: str) -> None:
    meta = template.get("metadata")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise _Invalid("template.metadata must be a mapping")
    for forbidden in ("name", "generateName", "namespace"):
        if forbidden in meta:
            raise _Invalid(f"template.metadata.{forbidden} is not allowed: {what} names come from "
                           f"the op")
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        raise _Invalid("template.metadata.labels must be a mapping")
    for k, v in labels.items():
        if not isinstance(k, str) or not k:
            raise _Invalid(f"template.metadata.labels: key {k!r} must be a non-empty string")
        _check_label_value(f"template.metadata.labels[{k!r}]", v)


def _check_kind(template: dict, kind: str, allowed: set[str]) -> None:
    unknown = sorted(set(template) - allowed - {"apiVersion", "kind"})
    if unknown:
        raise _Invalid(f"unknown template key(s) {unknown}; a {kind} template has "
                       f"{sorted(allowed)}")
    if template.get("apiVersion", "v1") != "v1" or template.get("kind", kind) != kind:
        raise _Invalid(f"template must be a v1 {kind}")


def _check_quantities(where: str, resources: Any) -> None:
    if resources is None:
        return
    if not isinstance(resources, dict):
        raise _Invalid(f"{where} must be a mapping of resource name to quantity")
    for res, q in resources.items():
        try:
            parse_quantity(q)
        except ValueError:
            raise _Invalid(f"{where}[{res!r}]: {q!r} is not a Kubernetes quantity") from None


def _check_node_template(t: dict) -> None:
    _check_kind(t, "Node", {"metadata", "spec", "status"})
    _check_metadata(t, "node")
    spec = t.get("spec") or {}
    if not isinstance(spec, dict):
        raise _Invalid("template.spec must be a mapping")
    taints = spec.get("taints") or []
    if not isinstance(taints, list) or not all(isinstance(x, dict) and x.get("key") for x in taints):
        raise _Invalid("template.spec.taints must be a list of {key, value, effect}")
    for x in taints:
        if x.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise _Invalid(f"taint {x.get('key')!r}: effect must be NoSchedule, PreferNoSchedule or "
                           f"NoExecute, got {x.get('effect')!r}")
    status = t.get("status")
    if not isinstance(status, dict) or not (status.get("allocatable") or status.get("capacity")):
        raise _Invalid("template.status.allocatable (or capacity) is required: a node without "
                       "resources can run nothing")
    _check_quantities("template.status.capacity", status.get("capacity"))
    _check_quantities("template.status.allocatable", status.get("allocatable"))
    if "conditions" in status and not isinstance(status["conditions"], list):
        raise _Invalid("template.status.conditions must be a list")
    # Normalise quantities to strings, as the apiserver would return them.
    for section in ("capacity", "allocatable"):
        if isinstance(status.get(section), dict):
            status[section] = {k: str(v) for k, v in status[section].items()}


def _check_pod_template(t: dict) -> None:
    _check_kind(t, "Pod", {"metadata", "spec"})
    _check_metadata(t, "pod")
    spec = t.get("spec")
    if not isinstance(spec, dict):
        raise _Invalid("template.spec must be a mapping")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise _Invalid("template.spec.containers must be a non-empty list")
    for field_name in ("containers", "initContainers"):
        for j, c in enumerate(spec.get(field_name) or []):
            where = f"template.spec.{field_name}[{j}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
                raise _Invalid(f"{where} must be a mapping with a 'name'")
            res = c.get("resources") or {}
            if not isinstance(res, dict):
                raise _Invalid(f"{where}.resources must be a mapping")
            _check_quantities(f"{where}.resources.requests", res.get("requests"))
            _check_quantities(f"{where}.resources.limits", res.get("limits"))
    _check_quantities("template.spec.overhead", spec.get("overhead"))
    for key in ("nodeSelector", "affinity"):
        if key in spec and not isinstance(spec[key], dict):
            raise _Invalid(f"template.spec.{key} must be a mapping")
    for key in ("tolerations", "topologySpreadConstraints"):
        if key in spec and not isinstance(spec[key], list):
            raise _Invalid(f"template.spec.{key} must be a list")
    if "schedulerName" in spec:
        raise _Invalid("template.spec.schedulerName is not allowed: the tool sets it")
    if "nodeName" in spec:
        raise _Invalid("template.spec.nodeName is not allowed: pods are for the scheduler to place")
