"""The placement check: does the final state of a cluster satisfy every correctness invariant?

It reads Nodes, Pods and Events as the apiserver returns them (plain camelCase dicts) and re-derives
every rule on its own: its own quantity parser, its own selector and toleration matching, plain
per-node Python. It deliberately imports nothing from the scheduling engine (model, plugins,
engine), so a bug there cannot hide here; it is the yardstick both for this scheduler and for the
upstream kube-scheduler run on the same workload. Semantics follow upstream Kubernetes.

The check sees one snapshot, not the history of placements. Every rule below is the final-state
form of a scheduling-time rule, sound (no false alarm) as long as nodes and pods are only added
during a run, never deleted or relabelled, which is how the workloads run:
- capacity, node selection, taints, ports and anti-affinity only get harder as pods are added, so
  what held at binding time still holds at the end, and a final-state breach is a real one;
- required pod affinity: a matching pod present at binding time is still present at the end, or
  was preempted since (given the victims, a pod is flagged only if it breaks the rule with and
  without them, as they were). The 'first pod of a self-affine group' exception is judged on the
  final state: it holds only if no *other* pod in the cluster matches the terms. A self-affine pod
  placed first and later joined by matching pods that carry no such affinity, elsewhere, would be
  flagged: no shared workload has that mix.
- topology spread (DoNotSchedule): the skew of a domain holding a constrained pod, final count
  minus the final minimum over eligible domains, must stay within maxSkew. The minimum never falls
  as pods are added, and every pod placed into that domain was itself within maxSkew when placed,
  so the bound holds at the end when every pod matching the selector carries the same constraint
  (true of every spread in the shared workloads). Pods that match the selector but are not
  constrained by it can legally pile up and would be flagged. Deletions break the argument:
  where matching pods are terminating (preemption victims, say), a domain is flagged only if it
  breaks maxSkew both with and without them counted (upstream's counts skip them).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson

# ---- violation kinds ----------------------------------------------------------------------------

CAPACITY = "capacity"
NODE_SELECTOR = "node_selector"
NODE_AFFINITY = "node_affinity"
TAINT = "taint"
CORDONED = "cordoned"
NOT_READY = "not_ready"
HOST_PORT = "host_port"
POD_AFFINITY = "pod_affinity"
POD_ANTI_AFFINITY = "pod_anti_affinity"
TOPOLOGY_SPREAD = "topology_spread"
UNKNOWN_NODE = "unknown_node"
DUPLICATE_POD = "duplicate_pod"
PENDING_WITHOUT_REASON = "pending_without_reason"
MISSING_EVENT = "missing_event"
BOUND_BUT_UNSCHEDULABLE = "bound_but_unschedulable"
GANG_PARTIAL = "gang_partial"
GANG_SPLIT = "gang_split"  # a gang kept to a topology domain with members outside one value of its key
PREEMPTED_NOT_LOWER = "preempted_not_lower"  # a victim whose priority was not below its preemptor's
PREEMPTED_WITHOUT_PREEMPTOR = "preempted_without_preemptor"
MISSING_PREEMPTED_EVENT = "missing_preempted_event"
# a PodGroup in disruptionMode All that lost some of its pods to preemption while others stay bound
PREEMPTED_PART_OF_GROUP = "preempted_part_of_group"
VOLUME_UNREACHABLE = "volume_unreachable"  # bound where a volume of its claims cannot be used
VOLUME_UNBOUND = "volume_unbound"  # bound while one of its claims is missing or not bound
VOLUME_SHARED = "volume_shared"  # one PersistentVolume bound to two claims
VOLUME_RWOP = "volume_rwop"  # a ReadWriteOncePod claim mounted by two pods
VOLUME_LIMIT = "volume_limit"  # a node with more volumes of a CSI driver than its CSINode allows
DISK_CONFLICT = "disk_conflict"  # one inline GCE PD / EBS / iSCSI / RBD disk mounted twice on a node

DEFAULT_SCHEDULER = "default-scheduler"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
# Taints the node controllers put on cordoned / not-ready / unreachable nodes; a pod that
# tolerates them (a DaemonSet pod, say) may legitimately run there.
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# ---- quantities ---------------------------------------------------------------------------------

_QUANTITY = re.compile(
    r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_SUFFIX = {
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
}


@lru_cache(maxsize=16384)
def _parse_quantity_str(text: str) -> Fraction:
    m = _QUANTITY.fullmatch(text.strip())
    if not m:
        raise ValueError(f"invalid quantity {text!r}")
    number, suffix = m.groups()
    value = Fraction(number)
    if not suffix:
        return value
    if suffix in _SUFFIX:
        return value * _SUFFIX[suffix]
    return value * Fraction(10) ** int(suffix[1:])  # decimal exponent: 1e3, 5E-3


def parse_quantity(value: Any) -> Fraction:
    """A Kubernetes quantity ('500m', '1Gi', '1e3', 4) as an exact fraction. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    if isinstance(value, str):
        return _parse_quantity_str(value)
    raise ValueError(f"invalid quantity {value!r}")


def canonical(resource: str, quantity: Fraction) -> int:
    """The integer the scheduler compares: millicores for cpu, whole units otherwise, rounded up
    (resource.Quantity MilliValue / Value)."""
    return math.ceil(quantity * 1000) if resource == "cpu" else math.ceil(quantity)


def _fmt(resource: str, value: int) -> str:
    return f"{value}m" if resource == "cpu" else str(value)


# ---- effective pod requests ---------------------------------------------------------------------

def _container_requests(container: Mapping[str, Any]) -> dict[str, Fraction]:
    """Requests, with a limit standing in for a missing request (the apiserver's defaulting)."""
    res = container.get("resources") or {}
    out = {k: parse_quantity(v) for k, v in (res.get("requests") or {}).items()}
    for k, v in (res.get("limits") or {}).items():
        if k not in out:
            out[k] = parse_quantity(v)
    return out


def _add(into: dict[str, Fraction], other: Mapping[str, Fraction]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max_into(into: dict[str, Fraction], other: Mapping[str, Fraction]) -> None:
    for k, v in other.items():
        if v > into.get(k, 0):
            into[k] = v


def effective_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """What a pod takes from its node, in canonical integers (the `pods` count excluded).

    As Kubernetes computes it: app containers plus restartable init (sidecar) containers run
    together; each ordinary init container runs alone next to the sidecars declared before it;
    the pod needs the larger of the two, per resource, then spec.overhead on top. Pod-level
    spec.resources.requests (cpu, memory, hugepages) replace the container sum where set."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or ():
        _add(total, _container_requests(c))
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for c in spec.get("initContainers") or ():
        req = _container_requests(c)
        if c.get("restartPolicy") == "Always":
            _add(total, req)
            _add(sidecars, req)
            step = sidecars
        else:
            step = dict(sidecars)
            _add(step, req)
        _max_into(init_peak, step)
    _max_into(total, init_peak)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    for k, v in pod_level.items():
        if k in ("cpu", "memory") or k.startswith("hugepages-"):
            total[k] = parse_quantity(v)
    _add(total, {k: parse_quantity(v) for k, v in (spec.get("overhead") or {}).items()})
    return {k: canonical(k, v) for k, v in total.items()}


# ---- selectors ----------------------------------------------------------------------------------

Expr = tuple[str, str, tuple[str, ...]]  # key, operator, values


def _expr_matches(key: str, op: str, values: tuple[str, ...], labels: Mapping[str, str]) -> bool:
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if key not in labels:
        return op == "NotIn"  # labels.Selector: NotIn holds when the key is absent
    value = labels[key]
    if op == "In":
        return value in values
    if op == "NotIn":
        return value not in values
    if op in ("Gt", "Lt"):
        try:
            lhs, rhs = int(value), int(values[0])
        except (ValueError, IndexError):
            return False
        return lhs > rhs if op == "Gt" else lhs < rhs
    return False  # unknown operator: the selector is invalid and selects nothing


@dataclass(frozen=True, slots=True)
class _Selector:
    """A label selector (or the expressions of a node selector term); hashable so pods with equal
    terms share one evaluation. Empty selects everything."""

    labels: tuple[tuple[str, str], ...] = ()
    exprs: tuple[Expr, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.labels:
            if labels.get(k) != v:
                return False
        for k, op, values in self.exprs:
            if not _expr_matches(k, op, values, labels):
                return False
        return True


def _exprs(raw: Iterable[Mapping[str, Any]] | None) -> tuple[Expr, ...]:
    return tuple((e.get("key", ""), e.get("operator", ""), tuple(e.get("values") or ()))
                 for e in raw or ())


def _label_selector(raw: Mapping[str, Any] | None, extra: tuple[Expr, ...] = ()) -> _Selector | None:
    """metav1.LabelSelector; None (absent) selects nothing, {} selects everything."""
    if raw is None:
        return None
    labels = tuple(sorted((raw.get("matchLabels") or {}).items()))
    return _Selector(labels, _exprs(raw.get("matchExpressions")) + extra)


def _label_keys(pod_labels: Mapping[str, str], match: Iterable[str] | None,
                mismatch: Iterable[str] | None = None) -> tuple[Expr, ...]:
    """matchLabelKeys / mismatchLabelKeys folded into the selector from the pod's own labels, as
    the apiserver does at creation (folding twice changes nothing)."""
    out: list[Expr] = []
    for key in match or ():
        if key in pod_labels:
            out.append((key, "In", (pod_labels[key],)))
    for key in mismatch or ():
        if key in pod_labels:
            out.append((key, "NotIn", (pod_labels[key],)))
    return tuple(out)


# A required node-affinity term: (label expressions, field expressions); one with neither matches
# no node. The whole requirement is a tuple of terms (OR), or None when absent.
NodeTerm = tuple[_Selector, _Selector]


def _required_node_affinity(spec: Mapping[str, Any]) -> tuple[NodeTerm, ...] | None:
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is None:
        return None
    return tuple((_Selector((), _exprs(t.get("matchExpressions"))),
                  _Selector((), _exprs(t.get("matchFields"))))
                 for t in req.get("nodeSelectorTerms") or ())


def _node_affinity_matches(terms: tuple[NodeTerm, ...], node: "_Node") -> bool:
    for labels_sel, fields_sel in terms:
        if not labels_sel.exprs and not fields_sel.exprs:
            continue
        if labels_sel.matches(node.labels) and fields_sel.matches({"metadata.name": node.name}):
            return True
    return False


Toleration = tuple[str, str, str, str]  # key, operator, value, effect


def _tolerations(spec: Mapping[str, Any]) -> tuple[Toleration, ...]:
    return tuple((t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "",
                  t.get("effect") or "") for t in spec.get("tolerations") or ())


def _tolerates(tolerations: tuple[Toleration, ...], key: str, value: str, effect: str) -> bool:
    for t_key, t_op, t_value, t_effect in tolerations:
        if t_effect and t_effect != effect:
            continue
        if t_key and t_key != key:
            continue
        if t_op == "Exists" or (t_op == "Equal" and t_value == value):
            return True
    return False


# ---- cluster objects as the check sees them -----------------------------------------------------

@dataclass(slots=True)
class _Node:
    name: str
    labels: dict[str, str]
    allocatable: dict[str, int]
    hard_taints: list[tuple[str, str, str]]  # (key, value, effect): NoSchedule and NoExecute only
    unschedulable: bool
    ready: str | None  # status of the Ready condition, None when the node reports none

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> "_Node":
        meta = raw.get("metadata") or {}
        spec = raw.get("spec") or {}
        status = raw.get("status") or {}
        alloc = {k: canonical(k, parse_quantity(v))
                 for k, v in (status.get("allocatable") or {}).items()}
        taints = [(t.get("key") or "", t.get("value") or "", t.get("effect") or "")
                  for t in spec.get("taints") or ()
                  if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE)]
        ready = None
        for cond in status.get("conditions") or ():
            if cond.get("type") == "Ready":
                ready = cond.get("status")
        return cls(meta.get("name", ""), dict(meta.get("labels") or {}), alloc, taints,
                   bool(spec.get("unschedulable")), ready)


@dataclass(slots=True)
class _Pod:
    key: str  # namespace/name
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    spec: dict[str, Any]
    status: dict[str, Any]
    node: str
    ours: bool
    terminal: bool  # Succeeded / Failed: holds nothing on its node
    terminating: bool  # deletionTimestamp set: still holds resources, not counted for spread

    @classmethod
    def parse(cls, raw: Mapping[str, Any], scheduler_name: str | None) -> "_Pod":
        meta = raw.get("metadata") or {}
        spec = raw.get("spec") or {}
        status = raw.get("status") or {}
        ns = meta.get("namespace") or "default"
        name = meta.get("name", "")
        ours = scheduler_name is None or (spec.get("schedulerName") or DEFAULT_SCHEDULER) == scheduler_name
        return cls(f"{ns}/{name}", ns, name, meta.get("uid") or "", dict(meta.get("labels") or {}),
                   spec, status, spec.get("nodeName") or "", ours,
                   status.get("phase") in ("Succeeded", "Failed"),
                   bool(meta.get("deletionTimestamp")))

    def condition(self, ctype: str) -> Mapping[str, Any] | None:
        for cond in self.status.get("conditions") or ():
            if cond.get("type") == ctype:
                return cond
        return None


@dataclass(frozen=True, slots=True)
class _Term:
    """A required pod (anti-)affinity term with its namespaces resolved against the owning pod."""

    selector: _Selector | None
    topology_key: str
    namespaces: frozenset[str]
    ns_selector: _Selector | None

    def matches(self, pod: _Pod, ns_labels: Callable[[str], Mapping[str, str]]) -> bool:
        if self.selector is None:
            return False
        if pod.namespace not in self.namespaces and not (
                self.ns_selector is not None and self.ns_selector.matches(ns_labels(pod.namespace))):
            return False
        return self.selector.matches(pod.labels)


def _pod_terms(pod: _Pod, kind: str) -> tuple[_Term, ...]:
    raw = ((pod.spec.get("affinity") or {}).get(kind) or {})
    out = []
    for t in raw.get("requiredDuringSchedulingIgnoredDuringExecution") or ():
        sel_raw = t.get("labelSelector")
        extra = _label_keys(pod.labels, t.get("matchLabelKeys"), t.get("mismatchLabelKeys"))
        selector = _label_selector(sel_raw, extra if sel_raw is not None else ())
        namespaces = frozenset(t.get("namespaces") or ())
        ns_sel = _label_selector(t.get("namespaceSelector"))
        if not namespaces and ns_sel is None:
            namespaces = frozenset((pod.namespace,))
        out.append(_Term(selector, t.get("topologyKey", ""), namespaces, ns_sel))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Spread:
    max_skew: int
    topology_key: str
    selector: _Selector | None
    min_domains: int
    affinity_policy: str  # Honor | Ignore
    taints_policy: str


def _hard_spreads(pod: _Pod) -> tuple[_Spread, ...]:
    out = []
    for c in pod.spec.get("topologySpreadConstraints") or ():
        if c.get("whenUnsatisfiable", "DoNotSchedule") != "DoNotSchedule":
            continue
        sel_raw = c.get("labelSelector")
        extra = _label_keys(pod.labels, c.get("matchLabelKeys"))
        out.append(_Spread(int(c.get("maxSkew", 1)), c.get("topologyKey", ""),
                           _label_selector(sel_raw, extra if sel_raw is not None else ()),
                           int(c.get("minDomains") or 1),
                           c.get("nodeAffinityPolicy") or "Honor",
                           c.get("nodeTaintsPolicy") or "Ignore"))
    return tuple(out)


def _host_ports(spec: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of app and sidecar containers; hostNetwork implies
    hostPort = containerPort, as the apiserver defaults it."""
    containers = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    containers += list(spec.get("containers") or ())
    host_network = bool(spec.get("hostNetwork"))
    out = []
    for c in containers:
        for p in c.get("ports") or ():
            port = p.get("hostPort") or (p.get("containerPort") if host_network else 0)
            if port:
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(port)))
    return out


_ANY_IP = ("", "0.0.0.0", "::")


def _ips_overlap(a: str, b: str) -> bool:
    return a == b or a in _ANY_IP or b in _ANY_IP


# ---- the report ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    pod: str  # namespace/name, '' for a node-level breach
    node: str
    message: str


@dataclass
class CheckReport:
    bound: int = 0  # pods of ours with a node
    unschedulable: int = 0  # pods of ours pending with PodScheduled=False, reason Unschedulable
    pending_without_reason: int = 0
    # pending pods no scheduler may place: being deleted, or held by scheduling gates
    terminating_pending: int = 0
    gated: int = 0
    violations: list[Violation] = field(default_factory=list)
    nodes_checked: int = 0
    pods_checked: int = 0  # pods of ours
    gangs_whole: int = 0  # gang PodGroups with at least minCount members bound
    gangs_unbound: int = 0  # gang PodGroups with members, none of them bound
    gangs_checked: bool = False  # PodGroups were given, so the gang tallies mean something
    preempted: int = 0  # pods of ours deleted by the scheduler to make room (given as `preemptions`)

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_kind(self) -> dict[str, int]:
        return dict(Counter(v.kind for v in self.violations))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def summary(self, examples: int = 5) -> str:
        head = "OK" if self.ok else f"FAILED, {len(self.violations)} violation(s)"
        lines = [
            f"placement check: {head} ({self.nodes_checked} nodes, {self.pods_checked} pods checked)",
            f"  bound {self.bound}, unschedulable {self.unschedulable}, "
            f"pending without reason {self.pending_without_reason}"
            + (f", gated {self.gated}" if self.gated else "")
            + (f", being deleted {self.terminating_pending}" if self.terminating_pending else ""),
        ]
        if self.gangs_checked:
            lines.append(f"  gangs: {self.gangs_whole} whole, {self.gangs_unbound} with no pod bound")
        if self.preempted:
            lines.append(f"  preempted {self.preempted}")
        grouped: dict[str, list[Violation]] = defaultdict(list)
        for v in self.violations:
            grouped[v.kind].append(v)
        for kind, items in sorted(grouped.items()):
            lines.append(f"  {kind}: {len(items)}")
            for v in items[:examples]:
                where = " ".join(x for x in (f"pod {v.pod}" if v.pod else "",
                                             f"node {v.node}" if v.node else "") if x)
                lines.append(f"    {where}: {v.message}")
            if len(items) > examples:
                lines.append(f"    ... and {len(items) - examples} more")
        return "\n".join(lines)


# ---- the check ----------------------------------------------------------------------------------

def check_placement(nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]],
                    scheduler_name: str | None = None,
                    events: Sequence[Mapping[str, Any]] | None = None,
                    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
                    pod_groups: Sequence[Mapping[str, Any]] | None = None,
                    preemptions: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]] | None = None,
                    volumes: Sequence[Mapping[str, Any]] | None = None,
                    claims: Sequence[Mapping[str, Any]] | None = None,
                    csi_nodes: Sequence[Mapping[str, Any]] | None = None,
                    ) -> CheckReport:
    """Check the invariants of /shared/README.md on one snapshot of the cluster.

    `scheduler_name` picks the pods that are "ours": they must each end bound or Unschedulable,
    and their constraints are checked; every bound pod, ours or not, takes capacity, ports and
    domains from the nodes. With `events`, every Unschedulable pod of ours must have a
    FailedScheduling event. `namespace_labels` serves namespaceSelectors in affinity terms;
    without it a namespace is known only by its `kubernetes.io/metadata.name` label. With
    `pod_groups` (raw scheduling.k8s.io PodGroups), no gang may end with some but fewer than
    minCount of its members bound. `preemptions` are the pods the scheduler deleted, each with its
    preemptor (the pod as it was, the preemptor as listed, or None when it is not known; for a
    gang, upstream 1.37 names its PodGroup, whose spec.priority is the gang's): each victim must
    have had a lower priority, and with `events` carry a `Preempted` event. With
    `volumes` and `claims` (raw PersistentVolumes and PersistentVolumeClaims), every bound pod of
    ours must have each claim bound to a volume it can reach from its node (the volume's
    required node affinity and its zone/region labels), no volume may serve two claims, and no
    ReadWriteOncePod claim may be mounted by two pods; with `csi_nodes` too, no node where a pod
    of ours uses a CSI driver's volumes may hold more distinct volumes of it than its CSINode's
    `allocatable.count`."""
    report = CheckReport()
    add = report.violations.append
    node_map: dict[str, _Node] = {}
    for raw in nodes:
        n = _Node.parse(raw)
        node_map[n.name] = n
    report.nodes_checked = len(node_map)

    def ns_labels(ns: str) -> Mapping[str, str]:
        if namespace_labels is not None and ns in namespace_labels:
            return namespace_labels[ns]
        return {NAMESPACE_NAME_LABEL: ns}

    all_pods: list[_Pod] = []
    seen: set[str] = set()
    for raw in pods:
        p = _Pod.parse(raw, scheduler_name)
        if p.key in seen:
            add(Violation(DUPLICATE_POD, p.key, p.node, "the pod is listed twice"))
            continue
        seen.add(p.key)
        all_pods.append(p)

    _check_outcomes(all_pods, node_map, events, report)
    victims = None if preemptions is None else [(_Pod.parse(v, None), by) for v, by in preemptions]
    if pod_groups is not None:
        _check_gangs(all_pods, pod_groups, report, node_map, [v for v, _by in victims or ()])
    if victims is not None:
        _check_preemptions(victims, events, report, _group_priorities(pod_groups or ()))
        if pod_groups is not None:
            _check_whole_groups(all_pods, [v for v, _by in victims], pod_groups, add)

    placed = [p for p in all_pods if p.node and not p.terminal and p.node in node_map]
    _check_capacity(placed, node_map, add)
    _check_node_rules(placed, node_map, add)
    _check_host_ports(placed, add)
    _check_disks(placed, add)
    _check_anti_affinity(placed, node_map, ns_labels, add)
    _check_affinity(placed, node_map, ns_labels, add, [v for v, _by in victims or ()])
    _check_spread(placed, node_map, add)
    if volumes is not None and claims is not None:
        pvs = {(v.get("metadata") or {}).get("name"): v for v in volumes}
        pvcs = {((c.get("metadata") or {}).get("namespace") or "default", (c.get("metadata") or {}).get("name")): c
                for c in claims}
        _check_volumes(placed, node_map, pvs, pvcs, add)
        if csi_nodes is not None:
            _check_attach_limits(placed, pvs, pvcs, csi_nodes, add)
    return report


_ZONE_KEYS = {"topology.kubernetes.io/zone": "failure-domain.beta.kubernetes.io/zone",
              "topology.kubernetes.io/region": "failure-domain.beta.kubernetes.io/region"}


def _volume_reachable(pv: Mapping[str, Any], node: _Node) -> str:
    """Why `node` cannot use the volume ('' if it can): its required node affinity (on labels)
    and its zone/region labels (a node carrying no zone or region label at all is exempt)."""
    req = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
    if req is not None:
        terms = [_exprs(t.get("matchExpressions")) for t in req.get("nodeSelectorTerms") or ()]
        if not any(t and all(_expr_matches(k, op, v, node.labels) for k, op, v in t) for t in terms):
            return "the node matches no term of the volume's required node affinity"
    topo = {**{b: g for g, b in _ZONE_KEYS.items()}, **{g: g for g in _ZONE_KEYS}}
    if not any(k in node.labels for k in topo):
        return ""
    for k, v in ((pv.get("metadata") or {}).get("labels") or {}).items():
        if k not in topo:
            continue
        zones = {z.strip() for z in str(v).split("__")}
        if "" in zones:
            continue
        have = node.labels.get(k)
        if have is None and k != topo[k]:  # a beta key on the volume: the node's GA key serves
            have = node.labels.get(topo[k])
        if have not in zones:
            return f"the volume is in {k}={v}, the node in {have!r}"
    return ""


def _check_volumes(placed: list[_Pod], node_map: Mapping[str, _Node], pvs: Mapping[str, Mapping[str, Any]],
                   pvcs: Mapping[tuple[str, str], Mapping[str, Any]], add: Callable[[Violation], None]) -> None:
    """The shared README's volume invariant: a pod runs where its volumes are; a volume has one
    claim. `pvs` by name, `pvcs` by (namespace, name)."""
    holders: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, c in pvcs.items():
        vol = (c.get("spec") or {}).get("volumeName")
        if vol:
            holders[vol].add(key)
    for name, pv in pvs.items():
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and ref.get("name"):
            holders[name].add((ref.get("namespace") or "default", ref.get("name")))
    for name, hs in sorted(holders.items()):
        if len(hs) > 1:
            add(Violation(VOLUME_SHARED, "", "", f"persistentvolume {name} is bound to "
                          + ", ".join(f"{ns}/{n}" for ns, n in sorted(hs))))
    rwop_users: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p in placed:
        for vol in p.spec.get("volumes") or ():
            cname = (vol.get("persistentVolumeClaim") or {}).get("claimName")
            c = pvcs.get((p.namespace, cname)) if cname else None
            if c is not None and "ReadWriteOncePod" in ((c.get("spec") or {}).get("accessModes") or ()):
                rwop_users[(p.namespace, cname)].append(p.key)
    for (ns, cname), users in sorted(rwop_users.items()):
        if len(users) > 1:
            add(Violation(VOLUME_RWOP, users[1], "", f"ReadWriteOncePod claim {ns}/{cname} is mounted by "
                          + ", ".join(sorted(users))))
    for p in placed:
        if not p.ours:
            continue
        node = node_map[p.node]
        for cname in _claim_names(p):
            c = pvcs.get((p.namespace, cname))
            vname = (c.get("spec") or {}).get("volumeName") if c is not None else None
            pv = pvs.get(vname) if vname else None
            if pv is None:
                add(Violation(VOLUME_UNBOUND, p.key, node.name,
                              f"claim {cname} is " + ("missing" if c is None else "not bound to an existing volume")))
                continue
            why = _volume_reachable(pv, node)
            if why:
                add(Violation(VOLUME_UNREACHABLE, p.key, node.name, f"claim {cname}, volume {vname}: {why}"))


def _claim_names(p: _Pod) -> list[str]:
    """The claims a pod mounts: its persistentVolumeClaim volumes', and its ephemeral volumes'
    (`<pod>-<volume>`)."""
    out = []
    for vol in p.spec.get("volumes") or ():
        if (vol.get("persistentVolumeClaim") or {}).get("claimName"):
            out.append(vol["persistentVolumeClaim"]["claimName"])
        elif vol.get("ephemeral") is not None:
            out.append(f"{p.name}-{vol.get('name')}")
    return out


# in-tree sources upstream's attach limit counts under a CSI driver: (driver, the field naming the disk)
_MIGRATED = {"gcePersistentDisk": ("pd.csi.storage.gke.io", "pdName"),
             "awsElasticBlockStore": ("ebs.csi.aws.com", "volumeID"),
             "azureDisk": ("disk.csi.azure.com", "diskURI"),
             "cinder": ("cinder.csi.openstack.org", "volumeID"),
             "portworxVolume": ("pxd.portworx.com", "volumeID")}


def _attachable(source: Mapping[str, Any], labels: Mapping[str, str] | None) -> tuple[str, str] | None:
    """(CSI driver, volume handle) of a volume source as the attach limit counts it: `csi`, or an
    in-tree source translated as upstream's csi-translation-lib does (`labels`: the PV's, whose
    zone a GCE PD handle names; None for a pod's inline volume, whose handle names no zone)."""
    csi = source.get("csi")
    if isinstance(csi, dict):
        return (csi["driver"], csi["volumeHandle"]) if csi.get("driver") and csi.get("volumeHandle") else None
    for key, (driver, id_field) in _MIGRATED.items():
        src = source.get(key)
        if not isinstance(src, dict):
            continue
        disk = str(src.get(id_field) or "")
        if key == "azureDisk" and str(src.get("kind") or "Shared").lower() != "managed":
            return None  # only managed disks migrate (the apiserver defaults kind to Shared)
        if key == "awsElasticBlockStore" and disk.startswith("aws://"):
            disk = disk.rsplit("/", 1)[-1]
        if key == "gcePersistentDisk":
            zone = next((labels[k] for k in ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
                         if labels and labels.get(k)), "")
            if "__" in zone:
                return driver, f"projects/UNSPECIFIED/regions/{zone.split('__')[0].rsplit('-', 1)[0]}/disks/{disk}"
            return driver, f"projects/UNSPECIFIED/zones/{zone or 'UNSPECIFIED'}/disks/{disk}"
        return driver, disk
    return None


def _check_attach_limits(placed: list[_Pod], pvs: Mapping[str, Mapping[str, Any]],
                         pvcs: Mapping[tuple[str, str], Mapping[str, Any]], csi_nodes: Sequence[Mapping[str, Any]],
                         add: Callable[[Violation], None]) -> None:
    """Per node and CSI driver with a limit: the distinct volumes of its pods (their bound
    claims' volumes and their inline in-tree volumes, by CSI handle). Over the limit is a
    violation where one of those pods is ours (volumes attached without a pod are not counted
    here)."""
    limits: dict[str, dict[str, int]] = {}
    for cn in csi_nodes:
        per = limits.setdefault((cn.get("metadata") or {}).get("name", ""), {})
        for d in (cn.get("spec") or {}).get("drivers") or ():
            count = (d.get("allocatable") or {}).get("count")
            if isinstance(count, int):
                per[d.get("name", "")] = count
    used: dict[tuple[str, str], set[str]] = defaultdict(set)
    ours: dict[tuple[str, str], str] = {}
    for p in placed:
        if p.node not in limits:
            continue
        volumes = [_attachable(v, None) for v in p.spec.get("volumes") or () if isinstance(v, dict)]
        for cname in _claim_names(p):
            c = pvcs.get((p.namespace, cname))
            pv = pvs.get((c.get("spec") or {}).get("volumeName")) if c is not None else None
            if pv is not None:
                volumes.append(_attachable(pv.get("spec") or {}, (pv.get("metadata") or {}).get("labels") or {}))
        for vol in volumes:
            if vol is not None and vol[0] in limits[p.node]:
                used[(p.node, vol[0])].add(vol[1])
                if p.ours:
                    ours.setdefault((p.node, vol[0]), p.key)
    for (node, driver), handles in sorted(used.items()):
        if (node, driver) in ours and len(handles) > limits[node][driver]:
            add(Violation(VOLUME_LIMIT, ours[(node, driver)], node,
                          f"{len(handles)} volumes of {driver} in use, its CSINode allows {limits[node][driver]}"))


def _check_outcomes(pods: list[_Pod], node_map: Mapping[str, _Node],
                    events: Sequence[Mapping[str, Any]] | None, report: CheckReport) -> None:
    """Invariant 3: each pod of ours is bound to a real node, or Unschedulable with an event."""
    add = report.violations.append
    failed_uids: set[str] = set()
    failed_names: set[tuple[str, str]] = set()
    for e in events or ():
        if e.get("reason") != "FailedScheduling":
            continue
        obj = e.get("regarding") or e.get("involvedObject") or {}
        if obj.get("kind", "Pod") != "Pod":
            continue
        if obj.get("uid"):
            failed_uids.add(obj["uid"])
        ns = obj.get("namespace") or (e.get("metadata") or {}).get("namespace") or "default"
        failed_names.add((ns, obj.get("name", "")))
    for p in pods:
        if p.node and p.node not in node_map:
            add(Violation(UNKNOWN_NODE, p.key, p.node, "bound to a node that does not exist"))
        if not p.ours:
            continue
        report.pods_checked += 1
        cond = p.condition("PodScheduled")
        if p.node:
            report.bound += 1
            if cond is not None and cond.get("status") == "False":
                add(Violation(BOUND_BUT_UNSCHEDULABLE, p.key, p.node,
                              f"bound, yet PodScheduled=False ({cond.get('reason')}): a status "
                              f"update raced the binding"))
            continue
        if p.terminating:
            report.terminating_pending += 1
            continue
        if cond is not None and cond.get("status") == "False" and cond.get("reason") == "SchedulingGated":
            report.gated += 1
            continue
        if cond is not None and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            report.unschedulable += 1
            if events is not None and p.uid not in failed_uids and (p.namespace, p.name) not in failed_names:
                add(Violation(MISSING_EVENT, p.key, "",
                              "Unschedulable but no FailedScheduling event says why"))
            continue
        report.pending_without_reason += 1
        state = (f"PodScheduled={cond.get('status')} reason={cond.get('reason')!r}"
                 if cond is not None else "no PodScheduled condition")
        add(Violation(PENDING_WITHOUT_REASON, p.key, "",
                      f"neither bound nor marked Unschedulable ({state})"))


def _gang_min_count(raw: Mapping[str, Any]) -> int | None:
    """spec.schedulingPolicy.gang.minCount of a PodGroup; None for a basic or malformed one."""
    spec = raw.get("spec")
    policy = spec.get("schedulingPolicy") if isinstance(spec, Mapping) else None
    gang = policy.get("gang") if isinstance(policy, Mapping) else None
    count = gang.get("minCount") if isinstance(gang, Mapping) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return None
    return count


def _pod_group_name(pod: _Pod) -> str | None:
    group = pod.spec.get("schedulingGroup")
    name = group.get("podGroupName") if isinstance(group, Mapping) else None
    return name if isinstance(name, str) and name else None


def _group_priorities(pod_groups: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """spec.priority of each PodGroup (0 when unset) by namespace and name."""
    out = {}
    for raw in pod_groups:
        meta = raw.get("metadata")
        if isinstance(meta, Mapping):
            spec = raw.get("spec")
            out[(meta.get("namespace") or "default", meta.get("name") or "")] = _priority(
                spec if isinstance(spec, Mapping) else {})
    return out


def _check_preemptions(preemptions: Sequence[tuple[_Pod, Mapping[str, Any] | None]],
                       events: Sequence[Mapping[str, Any]] | None, report: CheckReport,
                       groups: Mapping[tuple[str, str], int]) -> None:
    """Each victim (parsed) had a lower priority than its preemptor (a victim in a known PodGroup
    the group's, as upstream 1.37 weighs it), and (with events) a Preempted event."""
    add = report.violations.append
    evicted: set[str] = set()
    for e in events or ():
        if e.get("reason") == "Preempted":
            obj = e.get("regarding") or e.get("involvedObject") or {}
            evicted.update((obj.get("uid") or "", f"{obj.get('namespace', '')}/{obj.get('name', '')}"))
    for v, preemptor in preemptions:
        report.preempted += 1
        if preemptor is None:
            add(Violation(PREEMPTED_WITHOUT_PREEMPTOR, v.key, v.node, "deleted for a preemptor that is not known"))
        else:
            group = _pod_group_name(v)
            vp = _priority(v.spec)
            if group is not None:
                vp = groups.get((v.namespace, group), vp)
            pp = _priority(preemptor.get("spec") or {})
            if vp >= pp:
                meta = preemptor.get("metadata") or {}
                add(Violation(PREEMPTED_NOT_LOWER, v.key, v.node,
                              f"priority {vp} preempted by {meta.get('namespace', '')}/{meta.get('name', '')} "
                              f"of priority {pp}"))
        if events is not None and (v.uid or v.key) not in evicted:
            add(Violation(MISSING_PREEMPTED_EVENT, v.key, v.node, "preempted without a Preempted event"))


def _check_whole_groups(pods: list[_Pod], victims: list[_Pod], pod_groups: Sequence[Mapping[str, Any]],
                        add: Callable[[Violation], None]) -> None:
    """A PodGroup in disruptionMode All is preempted only whole: once one of its pods was a victim,
    none may still be bound (a member recreated and bound since would count too: the load test
    recreates none)."""
    whole = set()
    for raw in pod_groups:
        meta, spec = raw.get("metadata"), raw.get("spec")
        mode = spec.get("disruptionMode") if isinstance(spec, Mapping) else None
        if isinstance(meta, Mapping) and isinstance(mode, Mapping) and isinstance(mode.get("all"), Mapping):
            whole.add((meta.get("namespace") or "default", meta.get("name") or ""))
    lost: dict[tuple[str, str], int] = {}
    for v in victims:
        key = (v.namespace, _pod_group_name(v) or "")
        if key in whole:
            lost[key] = lost.get(key, 0) + 1
    if not lost:
        return
    for p in pods:
        key = (p.namespace, _pod_group_name(p) or "")
        if key in lost and p.node and not p.terminal:
            add(Violation(PREEMPTED_PART_OF_GROUP, p.key, p.node,
                          f"PodGroup {key[0]}/{key[1]} (disruptionMode All) lost {lost[key]} pod(s) to preemption "
                          "while this one stays bound"))


def _priority(spec: Mapping[str, Any]) -> int:
    p = spec.get("priority")
    return p if isinstance(p, int) and not isinstance(p, bool) else 0


def _topology_key(raw: Mapping[str, Any]) -> str | None:
    """spec.schedulingConstraints.topology[0].key of a PodGroup (TopologyAwareWorkloadScheduling)."""
    spec = raw.get("spec")
    cons = spec.get("schedulingConstraints") if isinstance(spec, Mapping) else None
    topo = cons.get("topology") if isinstance(cons, Mapping) else None
    first = topo[0] if isinstance(topo, list) and topo and isinstance(topo[0], Mapping) else None
    key = first.get("key") if first is not None else None
    return key if isinstance(key, str) and key else None


def _check_gangs(pods: list[_Pod], pod_groups: Sequence[Mapping[str, Any]],
                 report: CheckReport, nodes: Mapping[str, _Node] | None = None,
                 preempted: Sequence[_Pod] = ()) -> None:
    """No gang PodGroup is bound below its minCount: of its members (every pod, ours or not, in
    its namespace naming it in spec.schedulingGroup.podGroupName), the bound, non-terminal ones
    number 0 or at least minCount. Members preempted since (`preempted`: victims as they were,
    bound) count as bound: a gang stood whole, and upstream lets a higher-priority pod evict
    single members of a group whose disruptionMode is not All. Basic-policy and malformed
    PodGroups are not gangs. A group with a topology constraint has its bound members on nodes of
    one value of the key."""
    report.gangs_checked = True
    members: Counter[tuple[str, str]] = Counter()
    bound: Counter[tuple[str, str]] = Counter()
    on: dict[tuple[str, str], list[str]] = defaultdict(list)
    gone: Counter[tuple[str, str]] = Counter()
    for v in preempted:
        name = _pod_group_name(v)
        if name is not None:
            gone[(v.namespace, name)] += 1
    for p in pods:
        name = _pod_group_name(p)
        if name is None:
            continue
        members[(p.namespace, name)] += 1
        if p.node and not p.terminal:
            bound[(p.namespace, name)] += 1
            on[(p.namespace, name)].append(p.node)
    seen: set[tuple[str, str]] = set()
    for raw in pod_groups:
        if not isinstance(raw, Mapping):
            continue
        meta = raw.get("metadata")
        if not isinstance(meta, Mapping):
            continue
        name, ns = meta.get("name"), meta.get("namespace") or "default"
        if not isinstance(name, str) or not name or not isinstance(ns, str):
            continue
        min_count, key = _gang_min_count(raw), _topology_key(raw)
        if (min_count is None and key is None) or (ns, name) in seen:
            continue
        seen.add((ns, name))
        if key is not None and nodes is not None and on[(ns, name)]:
            values = {(nodes[n].labels.get(key) if n in nodes else None) for n in on[(ns, name)]}
            if len(values) > 1 or None in values:
                report.violations.append(Violation(
                    GANG_SPLIT, f"{ns}/{name}", "",
                    f"gang {ns}/{name} is kept to one {key} but its pods are on "
                    f"{', '.join(sorted(str(v) for v in values))}"))
        if min_count is None:
            continue
        n_gone = gone[(ns, name)]
        n_bound, n_members = bound[(ns, name)] + n_gone, members[(ns, name)] + n_gone
        if n_bound >= min_count:
            report.gangs_whole += 1
        elif n_bound == 0:
            if n_members:
                report.gangs_unbound += 1
        else:
            report.violations.append(Violation(
                GANG_PARTIAL, f"{ns}/{name}", "",
                f"gang {ns}/{name}: {n_bound} of {n_members} members bound"
                + (f" ({n_gone} of them preempted since)" if n_gone else "") + f", minCount {min_count}"))


def _check_capacity(placed: list[_Pod], node_map: Mapping[str, _Node],
                    add: Callable[[Violation], None]) -> None:
    """Invariant 1: per node and resource, the bound pods' requests fit the allocatable."""
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in placed:
        u = used[p.node]
        u["pods"] += 1
        try:
            reqs = effective_requests({"spec": p.spec})
        except ValueError as exc:
            add(Violation(CAPACITY, p.key, p.node, f"unreadable resources: {exc}"))
            continue
        for k, v in reqs.items():
            u[k] += v
    for node_name, u in used.items():
        alloc = node_map[node_name].allocatable
        for res, total in sorted(u.items()):
            if total > 0 and total > alloc.get(res, 0):
                add(Violation(CAPACITY, "", node_name,
                              f"{res}: requested {_fmt(res, total)} > allocatable "
                              f"{_fmt(res, alloc.get(res, 0))} ({u['pods']} pods)"))


def _check_node_rules(placed: list[_Pod], node_map: Mapping[str, _Node],
                      add: Callable[[Violation], None]) -> None:
    """Invariant 2, node side: selector, required affinity, taints, cordon, readiness.

    Cordoned and NotReady nodes are judged as the node controllers' taints would make them
    (node.kubernetes.io/unschedulable, not-ready, unreachable; NoSchedule), so a pod tolerating
    those may run there. A node that reports no Ready condition at all is not judged NotReady:
    the scheduler never reads conditions, and a bare control plane may publish none."""
    affinity_cache: dict[bytes, tuple[NodeTerm, ...] | None] = {}
    for p in placed:
        if not p.ours:
            continue
        node = node_map[p.node]
        for k, v in (p.spec.get("nodeSelector") or {}).items():
            if node.labels.get(k) != v:
                add(Violation(NODE_SELECTOR, p.key, node.name,
                              f"nodeSelector {k}={v} but the node has {k}={node.labels.get(k)!r}"))
                break
        aff = p.spec.get("affinity")
        if aff:
            blob = orjson.dumps(aff, option=orjson.OPT_SORT_KEYS)
            if blob not in affinity_cache:
                affinity_cache[blob] = _required_node_affinity(p.spec)
            terms = affinity_cache[blob]
            if terms is not None and not _node_affinity_matches(terms, node):
                add(Violation(NODE_AFFINITY, p.key, node.name,
                              "the node matches no required nodeSelectorTerm"))
        tolerations = _tolerations(p.spec) if p.spec.get("tolerations") else ()
        for key, value, effect in node.hard_taints:
            if not _tolerates(tolerations, key, value, effect):
                add(Violation(TAINT, p.key, node.name,
                              f"untolerated taint {key}={value}:{effect}"))
        if node.unschedulable and not _tolerates(tolerations, UNSCHEDULABLE_TAINT, "", NO_SCHEDULE):
            add(Violation(CORDONED, p.key, node.name, "the node is cordoned (spec.unschedulable)"))
        if node.ready not in (None, "True"):
            taint = NOT_READY_TAINT if node.ready == "False" else UNREACHABLE_TAINT
            if not _tolerates(tolerations, taint, "", NO_SCHEDULE):
                add(Violation(NOT_READY, p.key, node.name, f"the node is not Ready "
                                                           f"(Ready={node.ready})"))


def _check_host_ports(placed: list[_Pod], add: Callable[[Violation], None]) -> None:
    """Invariant 2: no two pods on a node claim the same port+protocol on overlapping IPs."""
    taken: dict[tuple[str, str, int], list[tuple[str, _Pod]]] = defaultdict(list)
    for p in placed:
        for ip, proto, port in _host_ports(p.spec):
            slot = taken[(p.node, proto, port)]
            for other_ip, other in slot:
                if other is not p and _ips_overlap(ip, other_ip) and (p.ours or other.ours):
                    add(Violation(HOST_PORT, p.key, p.node,
                                  f"hostPort {port}/{proto} on {ip} is also used by {other.key} "
                                  f"({other_ip})"))
                    break
            slot.append((ip, p))


def _disks(spec: Mapping[str, Any]) -> list[tuple[str, str, frozenset[str], bool]]:
    """(source, disk, RBD monitors, read-only) of each inline disk of a pod spec."""
    out = []
    for v in spec.get("volumes") or ():
        for source, id_field in (("gcePersistentDisk", "pdName"), ("awsElasticBlockStore", "volumeID"),
                              ("iscsi", "iqn"), ("rbd", "image")):
            src = v.get(source) if isinstance(v, dict) else None
            if isinstance(src, dict):
                disk = str(src.get(id_field) or "")
                if source == "rbd":
                    disk = f"{src.get('pool') or 'rbd'}/{disk}"
                out.append((source, disk, frozenset(src.get("monitors") or ()), bool(src.get("readOnly"))))
    return out


def _check_disks(placed: list[_Pod], add: Callable[[Violation], None]) -> None:
    """No inline disk on a node twice where upstream's VolumeRestrictions forbids it: an EBS
    volume at all, a GCE PD, iSCSI target or RBD image (on a shared monitor) unless every mount is
    read-only."""
    seen: dict[tuple[str, str, str], list[tuple[frozenset[str], bool, _Pod]]] = defaultdict(list)
    for p in placed:
        for source, disk, monitors, ro in _disks(p.spec):
            mounts = seen[(p.node, source, disk)]
            for other_mon, other_ro, other in mounts:
                if other is p or not (p.ours or other.ours):
                    continue
                if source == "rbd" and not monitors & other_mon:
                    continue
                if source == "awsElasticBlockStore" or not (ro and other_ro):
                    add(Violation(DISK_CONFLICT, p.key, p.node, f"{source} {disk} is also mounted by {other.key}"))
                    break
            mounts.append((monitors, ro, p))


def _domain(node: _Node, key: str) -> str | None:
    return node.labels.get(key)


def _check_anti_affinity(placed: list[_Pod], node_map: Mapping[str, _Node],
                         ns_labels: Callable[[str], Mapping[str, str]],
                         add: Callable[[Violation], None]) -> None:
    """Invariant 2: no pod shares a topology domain with a pod its required anti-affinity terms
    match. Checking every bound pod's own terms against all others covers both directions: the
    incoming pod's terms and the terms of the pods already there."""
    owners: list[tuple[_Pod, _Term]] = []
    for p in placed:
        if (p.spec.get("affinity") or {}).get("podAntiAffinity"):
            owners.extend((p, t) for t in _pod_terms(p, "podAntiAffinity"))
    if not owners:
        return
    # Per distinct term and domain: the bound pods matching it, all and ours, counted, with up to
    # two of each kept to name in a message.
    stats: dict[_Term, tuple[Counter, Counter, dict[str, list[_Pod]], dict[str, list[_Pod]]]] = {}
    for term in {t for _, t in owners}:
        all_c: Counter = Counter()
        ours_c: Counter = Counter()
        all_ex: dict[str, list[_Pod]] = defaultdict(list)
        ours_ex: dict[str, list[_Pod]] = defaultdict(list)
        for q in placed:
            value = _domain(node_map[q.node], term.topology_key)
            if value is None or not term.matches(q, ns_labels):
                continue
            all_c[value] += 1
            if len(all_ex[value]) < 2:
                all_ex[value].append(q)
            if q.ours:
                ours_c[value] += 1
                if len(ours_ex[value]) < 2:
                    ours_ex[value].append(q)
        stats[term] = (all_c, ours_c, all_ex, ours_ex)
    for p, term in owners:
        value = _domain(node_map[p.node], term.topology_key)
        if value is None:
            continue  # a node without the key is in no domain: nothing can conflict there
        all_c, ours_c, all_ex, ours_ex = stats[term]
        self_match = term.matches(p, ns_labels)
        others = all_c[value] - self_match
        others_ours = ours_c[value] - (self_match and p.ours)
        if not ((p.ours and others > 0) or others_ours > 0):
            continue
        pool = all_ex[value] if p.ours else ours_ex[value]
        other = next((q for q in pool if q is not p), None)
        other_name = other.key if other else "another pod"
        if p.ours:
            add(Violation(POD_ANTI_AFFINITY, p.key, p.node,
                          f"{other_name} matches its anti-affinity term in "
                          f"{term.topology_key}={value}"))
        else:
            add(Violation(POD_ANTI_AFFINITY, other_name, p.node,
                          f"placed in {term.topology_key}={value} where {p.key} has an "
                          f"anti-affinity term matching it"))


def _check_affinity(placed: list[_Pod], node_map: Mapping[str, _Node],
                    ns_labels: Callable[[str], Mapping[str, str]],
                    add: Callable[[Violation], None], gone: Sequence[_Pod] = ()) -> None:
    """Invariant 2: for each required pod-affinity term, some other pod matching *all* the pod's
    terms (as upstream counts) is in the same domain; or, the first-pod rule, no other pod in the
    cluster matches them and the pod matches them itself. Pods preempted since (`gone`, as they
    were) may have been there when the pod was placed: a pod is flagged only if it breaks the rule
    both with and without them (as spread's check does with terminating pods)."""
    owners: list[tuple[_Pod, tuple[_Term, ...]]] = []
    for p in placed:
        if p.ours and (p.spec.get("affinity") or {}).get("podAffinity"):
            terms = _pod_terms(p, "podAffinity")
            if terms:
                owners.append((p, terms))
    keys = {p.key for p in placed}
    extra = [v for v in gone if v.node in node_map and v.key not in keys]
    views = [placed] + ([placed + extra] if extra else [])
    stats: dict[tuple[tuple[_Term, ...], int], tuple[list[Counter], int]] = {}
    for terms in {t for _, t in owners}:
        for view, pods in enumerate(views):
            counts = [Counter() for _ in terms]
            total = 0
            for q in pods:
                if not all(t.matches(q, ns_labels) for t in terms):
                    continue
                total += 1
                node = node_map[q.node]
                for i, t in enumerate(terms):
                    value = _domain(node, t.topology_key)
                    if value is not None:
                        counts[i][value] += 1
            stats[(terms, view)] = (counts, total)
    for p, terms in owners:
        node = node_map[p.node]
        self_match = all(t.matches(p, ns_labels) for t in terms)
        missing = [t.topology_key for t in terms if _domain(node, t.topology_key) is None]
        if missing:
            add(Violation(POD_AFFINITY, p.key, p.node,
                          f"the node lacks topology label(s) {missing}"))
            continue
        why = []
        for view in range(len(views)):
            counts, total = stats[(terms, view)]
            lacking = [t for i, t in enumerate(terms)
                       if counts[i][_domain(node, t.topology_key)] - self_match <= 0]
            if not lacking or (self_match and total - 1 == 0):  # (the first of a self-affine group)
                break
            t = lacking[0]
            why.append(f"no matching pod in {t.topology_key}={_domain(node, t.topology_key)} "
                       f"({total - self_match} match elsewhere)")
        if len(why) == len(views):
            add(Violation(POD_AFFINITY, p.key, p.node, why[0]))


def _check_spread(placed: list[_Pod], node_map: Mapping[str, _Node],
                  add: Callable[[Violation], None]) -> None:
    """Invariant 2: topology spread with whenUnsatisfiable=DoNotSchedule, in final-state form
    (see the module docstring): for a domain holding a constrained pod, the number of matching
    pods there minus the minimum over eligible domains must not exceed maxSkew."""
    # A group is everything that decides the counts: namespace, constraint, and the inputs of
    # node eligibility (the pod's node selection when nodeAffinityPolicy=Honor, its tolerations
    # when nodeTaintsPolicy=Honor, and the keys of all its hard constraints).
    groups: dict[tuple, list[_Pod]] = defaultdict(list)
    for p in placed:
        if not p.ours or not p.spec.get("topologySpreadConstraints"):
            continue
        spreads = _hard_spreads(p)
        keys = tuple(sorted({s.topology_key for s in spreads}))
        for s in spreads:
            honor_aff = s.affinity_policy == "Honor"
            honor_taints = s.taints_policy == "Honor"
            sig = (p.namespace, s, keys,
                   tuple(sorted((p.spec.get("nodeSelector") or {}).items())) if honor_aff else None,
                   _required_node_affinity(p.spec) if honor_aff else None,
                   _tolerations(p.spec) if honor_taints else None)
            groups[sig].append(p)
    reported: set[tuple[tuple, str]] = set()
    for sig, members in groups.items():
        ns, s, keys, node_sel, node_aff, tols = sig

        def eligible(node: _Node) -> bool:
            if any(k not in node.labels for k in keys):
                return False
            if node_sel is not None and any(node.labels.get(k) != v for k, v in node_sel):
                return False
            if node_aff is not None and not _node_affinity_matches(node_aff, node):
                return False
            if tols is not None and not all(_tolerates(tols, *t) for t in node.hard_taints):
                return False
            return True

        eligible_nodes = {name for name, n in node_map.items() if eligible(n)}
        counts: Counter = Counter({node_map[n].labels[s.topology_key]: 0 for n in eligible_nodes})
        # terminating pods (preemption victims, say) as well: upstream's counts skip them, so the
        # final-state argument holds for pods placed before they began to go only with them counted
        going: Counter = Counter()
        if s.selector is not None:
            for q in placed:
                if q.namespace == ns and q.node in eligible_nodes and s.selector.matches(q.labels):
                    (going if q.terminating else counts)[node_map[q.node].labels[s.topology_key]] += 1
        minimum = 0 if len(counts) < s.min_domains or not counts else min(counts.values())
        with_going = counts + going
        for d in counts:
            with_going.setdefault(d, 0)
        minimum_going = 0 if len(with_going) < s.min_domains or not with_going else min(with_going.values())
        for p in members:
            node = node_map[p.node]
            value = _domain(node, s.topology_key)
            if value is None or any(k not in node.labels for k in keys):
                add(Violation(TOPOLOGY_SPREAD, p.key, p.node,
                              f"the node lacks a topology label of {list(keys)}"))
                continue
            if p.node not in eligible_nodes:
                continue  # placed against its own node selection: reported by the node rules
            skew = counts[value] - minimum
            if going and with_going[value] - minimum_going <= s.max_skew:
                continue  # within bounds as it was before some matching pods began to go
            if skew > s.max_skew and (sig, value) not in reported:
                reported.add((sig, value))
                shown = ", ".join(f"{d}={c}" for d, c in sorted(counts.items()))
                add(Violation(TOPOLOGY_SPREAD, p.key, p.node,
                              f"{s.topology_key}={value} has skew {skew} > maxSkew {s.max_skew} "
                              f"(counts {shown}; min {minimum})"))


# ---- reading a live cluster ---------------------------------------------------------------------

LIST_CHUNK = 5000


def _list_all(list_fn: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    """Page through a list call, decoding raw bytes with orjson (the client's own model
    deserialisation is far too slow for 100k pods)."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        call = dict(kwargs, limit=LIST_CHUNK, _preload_content=False)
        if token:
            call["_continue"] = token
        resp = list_fn(**call)
        try:
            body = orjson.loads(resp.data)
        finally:
            resp.release_conn()
        items.extend(body.get("items") or ())
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items


def fetch_cluster_state(api_client: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """(nodes, pods, FailedScheduling events) from the apiserver behind `api_client`."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    nodes = _list_all(core.list_node)
    pods = _list_all(core.list_pod_for_all_namespaces)
    events = _list_all(core.list_event_for_all_namespaces, field_selector="reason=FailedScheduling")
    return nodes, pods, events


def fetch_namespace_labels(api_client: Any) -> dict[str, dict[str, str]]:
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    return {(ns.get("metadata") or {}).get("name", ""): (ns.get("metadata") or {}).get("labels") or {}
            for ns in _list_all(core.list_namespace)}


def fetch_pod_groups(api_client: Any) -> list[dict[str, Any]] | None:
    """Every scheduling.k8s.io/v1beta1 PodGroup, or None where the cluster does not serve the
    API (404: a cluster older than gang scheduling)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    scheduling = client.SchedulingV1beta1Api(api_client)
    try:
        return _list_all(scheduling.list_pod_group_for_all_namespaces)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def fetch_volumes(api_client: Any) -> dict[str, list[dict[str, Any]]]:
    """Every PersistentVolume, PersistentVolumeClaim and CSINode, as `check_placement`'s
    `volumes`, `claims` and `csi_nodes`."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    return {"volumes": _list_all(core.list_persistent_volume),
            "claims": _list_all(core.list_persistent_volume_claim_for_all_namespaces),
            "csi_nodes": _list_all(client.StorageV1Api(api_client).list_csi_node)}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check", help="check every pod's placement against the correctness invariants",
        description="List nodes, pods, events, PodGroups, PersistentVolumes and claims and check capacity, "
                    "constraints, gangs, volumes and outcomes independently of the scheduling engine. Exits 1 on any "
                    "violation.")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"),
                   help="kubeconfig of the cluster (default: $KUBECONFIG)")
    p.add_argument("--scheduler-name", default=None,
                   help="only pods with this spec.schedulerName must end bound or Unschedulable "
                        "(default: every pod)")
    p.add_argument("--no-events", action="store_true",
                   help="do not require a FailedScheduling event for Unschedulable pods")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--examples", type=int, default=5, help="violations shown per kind")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from cluster_scheduler.cli import CliError

    if not args.kubeconfig:
        raise CliError("no kubeconfig: pass --kubeconfig or set KUBECONFIG")
    try:
        from cluster_scheduler.api.rest import api_client as make_client

        api_client = make_client(args.kubeconfig)
    except Exception as exc:  # noqa: BLE001 - the client raises several unrelated types for a bad file
        raise CliError(f"cannot load kubeconfig {args.kubeconfig}: {exc}") from None
    try:
        nodes, pods, events = fetch_cluster_state(api_client)
        ns_labels = fetch_namespace_labels(api_client)
        pod_groups = fetch_pod_groups(api_client)
        volumes = fetch_volumes(api_client)
    except Exception as exc:  # noqa: BLE001 - any listing failure is one clear CLI error
        raise CliError(f"cannot list the cluster: {' '.join(str(exc).split())}") from None
    finally:
        api_client.close()
    report = check_placement(nodes, pods, scheduler_name=args.scheduler_name,
                             events=None if args.no_events else events,
                             namespace_labels=ns_labels, pod_groups=pod_groups, **volumes)
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(report.summary(examples=args.examples))
    return 0 if report.ok else 1
