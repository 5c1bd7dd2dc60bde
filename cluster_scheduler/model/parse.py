"""Pods and Nodes, as the apiserver serves them (camelCase JSON dicts), into the engine's types.

Parsing happens once, at the edge, and follows what Kubernetes v1.37 does with the same object:

- apiserver defaulting the scheduler relies on but a hand-written manifest may lack: container
  requests default to limits; pod-level requests default from container requests / pod-level
  limits (PodLevelResources, beta and on in 1.36 and 1.37); hostNetwork host ports default to the
  container port; ``matchLabelKeys``/``mismatchLabelKeys`` fold into the label selector.
- the scheduler's reading of the object: the effective request of
  component-helpers ``resource.PodRequests`` (sidecars, init-container steps, pod-level override,
  overhead), the non-zero scoring request of ``framework.PodInfo.CalculateResource`` /
  NodeResourcesFit's scorer, ``util.GetHostPorts``, the NodeAffinity, PodAffinity and
  PodTopologySpread readings of selectors and terms.

A spec the apiserver would reject, or the scheduler could not read, never raises: the PodInfo
comes back with ``key=None`` and ``error`` saying why (the pod is then reported Unschedulable with
that message). Equal specs give equal, hashable keys: sets are sorted and de-duplicated.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable, Mapping

import orjson

from cluster_scheduler.model.csi_translation import DISK_IDS as _MIGRATED_IDS
from cluster_scheduler.model.csi_translation import translate_volume
from cluster_scheduler.model.quantity import (
    QuantityError,
    nanos_to_canonical,
    quantity_nanos,
    to_canonical,
)
from cluster_scheduler.model.types import (
    AWS_EBS,
    CPU,
    GCE_PD,
    ISCSI,
    RBD,
    Claim,
    ClaimRef,
    CSIDriverInfo,
    StorageCapacity,
    VolumeAttachmentInfo,
    StorageClassInfo,
    Volume,
    DisruptionBudget,
    Gang,
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    MEMORY,
    NO_EXECUTE,
    NO_SCHEDULE,
    PODS,
    PREFER_NO_SCHEDULE,
    HostPort,
    InlineDisk,
    LabelSelector,
    NodeInfo,
    NodeSelectorTerm,
    PodAffinityTerm,
    PodInfo,
    PodSpecKey,
    PreferredSchedulingTerm,
    Requirement,
    Taint,
    Toleration,
    TopologySpreadConstraint,
    WeightedPodAffinityTerm,
)

__all__ = ["parse_pod", "parse_node", "parse_claim", "parse_volume", "parse_storage_class", "parse_csi_node"]

_NANO = 10**9
_EMPTY: Mapping[str, Any] = {}  # shared read-only default; never mutated
_NODE_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
_LABEL_SELECTOR_OPS = ("In", "NotIn", "Exists", "DoesNotExist")
_TAINT_EFFECTS = (NO_SCHEDULE, PREFER_NO_SCHEDULE, NO_EXECUTE)
_WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
_INCLUSION_POLICIES = ("Honor", "Ignore")
_HUGEPAGES_PREFIX = "hugepages-"
_INT_RE = re.compile(r"[+-]?[0-9]+")  # strconv.ParseInt(s, 10, 64), which Gt/Lt values must pass
_INT64_MAX = 2**63 - 1

# Scoring defaults for a container that does not request cpu / memory at all (missing, not 0),
# in nano-units: 100m and 200Mi (pkg/scheduler/util DefaultMilliCPURequest/DefaultMemoryRequest).
_NON_MISSING: dict[str, int] = {
    CPU: DEFAULT_MILLI_CPU_REQUEST * 1_000_000,
    MEMORY: DEFAULT_MEMORY_REQUEST * _NANO,
}


class _Malformed(Exception):
    """Internal: the object cannot be understood; the message is shown to users as is."""


# --------------------------------------------------------------------------------------------
# small typed accessors: each raises _Malformed naming the field instead of a TypeError
# --------------------------------------------------------------------------------------------

def _kind(v: object) -> str:
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return type(v).__name__


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if v is None:
        return _EMPTY
    if isinstance(v, dict):
        return v
    raise _Malformed(f"{where} must be an object, got {_kind(v)}")


def _list(v: Any, where: str) -> list:
    if v is None:
        return []
    if isinstance(v, (list, tuple)):  # tuples: Python callers; orjson fingerprints them as lists
        return v  # type: ignore[return-value]
    raise _Malformed(f"{where} must be a list, got {_kind(v)}")


def _str(v: Any, where: str, default: str = "") -> str:
    if v is None:
        return default
    if isinstance(v, str):
        return v
    raise _Malformed(f"{where} must be a string, got {_kind(v)}")


def _int(v: Any, where: str, default: int) -> int:
    if v is None:
        return default
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _Malformed(f"{where} must be an integer, got {_kind(v)}")


def _str_list(v: Any, where: str) -> list[str]:
    out = _list(v, where)
    for x in out:
        if not isinstance(x, str):
            raise _Malformed(f"{where} must be a list of strings, got an item that is {_kind(x)}")
    return out


def _str_map(v: Any, where: str) -> dict[str, str]:
    d = _obj(v, where)
    for k, x in d.items():
        if not isinstance(x, str):
            raise _Malformed(f'{where}["{k}"] must be a string, got {_kind(x)}')
    return d  # type: ignore[return-value]


def _sorted_pairs(d: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    if not d:
        return ()
    return tuple(sorted(d.items()))


def _sort_key(x: Any) -> tuple:
    """A total order over the frozen domain objects (None first; frozensets by sorted content,
    since their iteration order is not canonical)."""
    if x is None:
        return (0,)
    if isinstance(x, tuple):
        return (1, tuple(_sort_key(e) for e in x))
    if isinstance(x, frozenset):
        return (1, tuple(sorted(_sort_key(e) for e in x)))
    slots = getattr(type(x), "__slots__", None)
    if slots is not None and not isinstance(x, (str, int)):
        return (1, tuple(_sort_key(getattr(x, f)) for f in slots))
    return (1, x)


def _canon(items: list, dedupe: bool = True) -> tuple:
    """Order-independent, hashable form of a list whose order carries no meaning."""
    if len(items) <= 1:
        return tuple(items)
    if dedupe:
        items = list(dict.fromkeys(items))
    return tuple(sorted(items, key=_sort_key))


# --------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------

def _resource_list(v: Any, where: str) -> dict[str, int]:
    """A ResourceList as exact nano-units. Negative values are rejected like apiserver
    validation does (ValidateResourceQuantityValue)."""
    d = _obj(v, f"resources of {where}")
    out: dict[str, int] = {}
    for name, q in d.items():
        try:
            n = quantity_nanos(q)
        except QuantityError as e:
            desc = f'"{q}"' if isinstance(q, str) else repr(q)
            raise _Malformed(f"invalid quantity {desc} for {name} in {where}: {e.reason}") from None
        if n < 0:
            raise _Malformed(f'invalid quantity "{q}" for {name} in {where}: must not be negative')
        out[name] = n
    return out


def _add(into: dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _max_into(into: dict[str, int], other: Mapping[str, int]) -> None:
    for k, v in other.items():
        if k not in into or v > into[k]:
            into[k] = v


def _with_non_missing(reqs: Mapping[str, int], non_missing: Mapping[str, int]) -> dict[str, int]:
    out = dict(reqs)
    for k, v in non_missing.items():
        if k not in reqs:
            out[k] = v
    return out


def _aggregate(app: list[dict[str, int]], init: list[tuple[dict[str, int], bool]],
               non_missing: Mapping[str, int] | None) -> dict[str, int]:
    """AggregateContainerRequests (also used for limits): app containers and sidecars add up;
    init container i needs its own request plus every sidecar started before it; the pod needs
    the larger of the two. `non_missing` fills resources a container does not mention at all."""
    total: dict[str, int] = {}
    for r in app:
        _add(total, _with_non_missing(r, non_missing) if non_missing else r)
    if init:
        sidecars: dict[str, int] = {}
        init_max: dict[str, int] = {}
        for r, is_sidecar in init:
            if non_missing:
                r = _with_non_missing(r, non_missing)
            if is_sidecar:
                _add(total, r)
                _add(sidecars, r)
                _max_into(init_max, sidecars)
            else:
                step = dict(r)
                _add(step, sidecars)
                _max_into(init_max, step)
        _max_into(total, init_max)
    return total


def _is_pod_level_resource(name: str) -> bool:
    """resource.IsSupportedPodLevelResource: cpu, memory and hugepages-*."""
    return name == CPU or name == MEMORY or name.startswith(_HUGEPAGES_PREFIX)


class _Containers:
    """Requests/limits of a pod's containers, after apiserver limit->request defaulting."""

    __slots__ = ("app", "init", "app_limits", "init_limits")

    def __init__(self) -> None:
        self.app: list[dict[str, int]] = []
        self.init: list[tuple[dict[str, int], bool]] = []
        self.app_limits: list[dict[str, int]] = []
        self.init_limits: list[tuple[dict[str, int], bool]] = []


def _container_where(c: Mapping[str, Any], kind: str, i: int) -> str:
    name = c.get("name")
    return f'{kind} "{name}"' if isinstance(name, str) and name else f"{kind} #{i}"


def _read_containers(spec: Mapping[str, Any], ports: list[HostPort]) -> _Containers:
    out = _Containers()
    host_network = spec.get("hostNetwork") is True
    for kind, field in (("container", "containers"), ("init container", "initContainers")):
        is_init = kind == "init container"
        for i, c in enumerate(_list(spec.get(field), f"spec.{field}")):
            if not isinstance(c, dict):
                raise _Malformed(f"spec.{field}[{i}] must be an object, got {_kind(c)}")
            where = _container_where(c, kind, i)
            res = c.get("resources")
            if res is None:
                req: dict[str, int] = {}
                lim: dict[str, int] = {}
            else:
                res = _obj(res, f"resources of {where}")
                req = _resource_list(res.get("requests"), where)
                lim = _resource_list(res.get("limits"), where)
                for k, v in lim.items():  # SetDefaults_Pod: a limit without a request sets it
                    if k not in req:
                        req[k] = v
            sidecar = False
            if is_init:
                rp = c.get("restartPolicy")
                if rp is not None and rp != "Always":
                    raise _Malformed(f'restartPolicy of {where} must be "Always" or absent, '
                                     f"got {rp!r}")
                sidecar = rp == "Always"
                out.init.append((req, sidecar))
                out.init_limits.append((lim, sidecar))
            else:
                out.app.append(req)
                out.app_limits.append(lim)
            cports = c.get("ports")
            # util.GetHostPorts: app containers and sidecars hold their ports for the pod's life.
            if cports is not None and (sidecar or not is_init):
                _read_ports(cports, where, host_network, ports)
    return out


def _read_ports(v: Any, where: str, host_network: bool, out: list[HostPort]) -> None:
    for j, p in enumerate(_list(v, f"ports of {where}")):
        if not isinstance(p, dict):
            raise _Malformed(f"ports[{j}] of {where} must be an object, got {_kind(p)}")
        hp = _int(p.get("hostPort"), f"ports[{j}].hostPort of {where}", 0)
        if hp == 0 and host_network:  # SetDefaults_Pod: hostNetwork pods bind the containerPort
            hp = _int(p.get("containerPort"), f"ports[{j}].containerPort of {where}", 0)
        if hp <= 0:
            continue
        if hp > 65535:
            raise _Malformed(f"ports[{j}].hostPort of {where} must be 1..65535, got {hp}")
        ip = _str(p.get("hostIP"), f"ports[{j}].hostIP of {where}") or "0.0.0.0"
        proto = _str(p.get("protocol"), f"ports[{j}].protocol of {where}") or "TCP"
        out.append(HostPort(ip, proto, hp))


def _pod_level_requests(spec: Mapping[str, Any], cs: _Containers) -> dict[str, int]:
    """Pod-level requests that override the container aggregate (PodRequests), after the
    apiserver's pod-level defaulting (defaultHugePagePodLimits, defaultPodRequests)."""
    res = _obj(spec.get("resources"), "spec.resources")
    if not res:
        return {}
    req = _resource_list(res.get("requests"), "pod-level resources")
    lim = _resource_list(res.get("limits"), "pod-level resources")
    if not req and not lim:
        return {}
    if any(k.startswith(_HUGEPAGES_PREFIX) for c in cs.app_limits for k in c) or any(
            k.startswith(_HUGEPAGES_PREFIX) for c, _ in cs.init_limits for k in c):
        agg_lim = _aggregate(cs.app_limits, cs.init_limits, None)
        for k, v in agg_lim.items():
            if k.startswith(_HUGEPAGES_PREFIX) and k not in req and k not in lim:
                lim[k] = v
    if lim:
        agg = _aggregate(cs.app, cs.init, None)
        for k in (CPU, MEMORY):  # overcommittable pod-level resources default to the aggregate
            if k in agg and k not in req:
                req[k] = agg[k]
        for k, v in lim.items():
            if k not in req and _is_pod_level_resource(k):
                req[k] = v
    return {k: v for k, v in req.items() if _is_pod_level_resource(k)}


def _requests(spec: Mapping[str, Any], cs: _Containers) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(requests, non-zero requests, the NodeResourcesFit scorer's non-zero requests). The last
    leaves pod-level requests out: in v1.37.2 that scorer is built without the PodLevelResources
    gate (noderesources/fit.go sets it on the plugin, not on its resourceAllocationScorer), while
    the filter, BalancedAllocation and a node's non-zero totals read them."""
    pod_level = _pod_level_requests(spec, cs) if spec.get("resources") is not None else {}
    overhead = spec.get("overhead")
    if overhead is not None:
        overhead = _resource_list(overhead, "spec.overhead")
    reqs = _aggregate(cs.app, cs.init, None)
    # CalculateResource and the scorers: a container with no cpu (memory) request at all counts
    # as 100m (200Mi); pod-level requests then override (not for the Fit scorer), overhead is added.
    nonzero = _aggregate(cs.app, cs.init, _NON_MISSING)
    fit_score = dict(nonzero)
    for d in (reqs, nonzero):
        d.update(pod_level)
    for d in (reqs, nonzero, fit_score):
        if overhead:
            _add(d, overhead)
    return reqs, nonzero, fit_score


def _canonical_requests(reqs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for name, nanos in reqs.items():
        if name == PODS:
            continue
        v = _canonical(name, nanos, "request")
        if v:
            out.append((name, v))
    out.append((PODS, 1))
    out.sort()
    return tuple(out)


def _canonical(name: str, nanos: int, what: str) -> int:
    try:
        return nanos_to_canonical(name, nanos, f"total pod {what}")
    except QuantityError as e:
        raise _Malformed(str(e)) from None


# --------------------------------------------------------------------------------------------
# selectors and terms
# --------------------------------------------------------------------------------------------

def _requirement(e: Any, where: str, ops: tuple[str, ...]) -> Requirement:
    """labels.NewRequirement's checks: known operator, value counts, integer for Gt/Lt."""
    d = _obj(e, where)
    key = _str(d.get("key"), f"{where}.key")
    op = _str(d.get("operator"), f"{where}.operator")
    values = _str_list(d.get("values"), f"{where}.values")
    if not key:
        raise _Malformed(f"{where}: key must not be empty")
    if op not in ops:
        raise _Malformed(f'{where}: unknown operator "{op}" for key "{key}" '
                         f"(expected one of {', '.join(ops)})")
    if op == "In" or op == "NotIn":
        if not values:
            raise _Malformed(f'{where}: operator {op} for key "{key}" needs at least one value')
        vals = tuple(sorted(set(values))) if len(values) > 1 else tuple(values)
    elif op == "Exists" or op == "DoesNotExist":
        if values:
            raise _Malformed(f'{where}: operator {op} for key "{key}" takes no values')
        vals = ()
    else:  # Gt, Lt
        if (len(values) != 1 or len(values[0]) > 24 or not _INT_RE.fullmatch(values[0])
                or not -_INT64_MAX - 1 <= int(values[0]) <= _INT64_MAX):
            raise _Malformed(f'{where}: operator {op} for key "{key}" needs exactly one integer '
                             f"value, got {values!r}")
        vals = (values[0],)
    return Requirement(key, op, vals)


def _norm_requirements(reqs: list[Requirement]) -> tuple[Requirement, ...]:
    if len(reqs) <= 1:
        return tuple(reqs)
    return tuple(sorted(dict.fromkeys(reqs), key=lambda r: (r.key, r.operator, r.values)))


def _label_selector(v: Any, where: str) -> LabelSelector | None:
    """metav1.LabelSelectorAsSelector: absent -> None (selects nothing), {} -> everything."""
    if v is None:
        return None
    d = _obj(v, where)
    ml = _sorted_pairs(_str_map(d.get("matchLabels"), f"{where}.matchLabels"))
    exprs = d.get("matchExpressions")
    if exprs is None:
        return LabelSelector(ml, ())
    reqs = [_requirement(e, f"{where}.matchExpressions[{i}]", _LABEL_SELECTOR_OPS)
            for i, e in enumerate(_list(exprs, f"{where}.matchExpressions"))]
    return LabelSelector(ml, _norm_requirements(reqs))


def _fold_label_keys(sel: LabelSelector, keys: Iterable[str], op: str,
                     labels: Mapping[str, str]) -> LabelSelector:
    """matchLabelKeys (op In) / mismatchLabelKeys (op NotIn): `key op [pod's own value]` for each
    key the pod carries, ANDed into the selector (the apiserver does the same at creation, so
    a served pod may already hold these; de-duplication keeps the key identical)."""
    extra = [Requirement(k, op, (labels[k],)) for k in keys if k in labels]
    if not extra:
        return sel
    return LabelSelector(sel.match_labels, _norm_requirements(list(sel.match_expressions) + extra))


def _node_selector_term(t: Any, where: str) -> NodeSelectorTerm:
    d = _obj(t, where)
    exprs = [_requirement(e, f"{where}.matchExpressions[{i}]", _NODE_SELECTOR_OPS)
             for i, e in enumerate(_list(d.get("matchExpressions"), f"{where}.matchExpressions"))]
    fields = []
    for i, e in enumerate(_list(d.get("matchFields"), f"{where}.matchFields")):
        fw = f"{where}.matchFields[{i}]"
        r = _requirement(e, fw, _NODE_SELECTOR_OPS)
        if r.key != "metadata.name":
            raise _Malformed(f'{fw}: unsupported field "{r.key}" (only metadata.name)')
        if r.operator not in ("In", "NotIn") or len(r.values) != 1:
            raise _Malformed(f"{fw}: field selectors need operator In or NotIn with exactly one "
                             "value")
        fields.append(r)
    return NodeSelectorTerm(_norm_requirements(exprs), _norm_requirements(fields))


def _weight(v: Any, where: str) -> int:
    w = _int(v, where, 0)
    if not 1 <= w <= 100:
        raise _Malformed(f"{where} must be in the range 1-100, got {w}")
    return w


def _node_affinity(na: Mapping[str, Any], where: str) -> tuple[
        tuple[NodeSelectorTerm, ...] | None, tuple[PreferredSchedulingTerm, ...]]:
    required = None
    r = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if r is not None:
        rw = f"{where}.requiredDuringSchedulingIgnoredDuringExecution"
        terms = _list(_obj(r, rw).get("nodeSelectorTerms"), f"{rw}.nodeSelectorTerms")
        # No terms at all matches no node (nodeaffinity.NodeSelector.Match), as upstream.
        required = _canon([_node_selector_term(t, f"{rw}.nodeSelectorTerms[{i}]")
                           for i, t in enumerate(terms)])
    preferred = []
    pw = f"{where}.preferredDuringSchedulingIgnoredDuringExecution"
    for i, p in enumerate(_list(na.get("preferredDuringSchedulingIgnoredDuringExecution"), pw)):
        d = _obj(p, f"{pw}[{i}]")
        preferred.append(PreferredSchedulingTerm(
            _weight(d.get("weight"), f"{pw}[{i}].weight"),
            _node_selector_term(d.get("preference"), f"{pw}[{i}].preference")))
    return required, _canon(preferred, dedupe=False)


def _pod_affinity_term(t: Any, where: str, namespace: str, labels: Mapping[str, str],
                       namespace_labels: Mapping[str, Mapping[str, str]] | None) -> PodAffinityTerm:
    d = _obj(t, where)
    sel = _label_selector(d.get("labelSelector"), f"{where}.labelSelector")
    mlk = _str_list(d.get("matchLabelKeys"), f"{where}.matchLabelKeys")
    mmlk = _str_list(d.get("mismatchLabelKeys"), f"{where}.mismatchLabelKeys")
    if sel is not None:  # a nil selector matches nothing; label keys are not applied to it
        if mlk:
            sel = _fold_label_keys(sel, mlk, "In", labels)
        if mmlk:
            sel = _fold_label_keys(sel, mmlk, "NotIn", labels)
    topology_key = _str(d.get("topologyKey"), f"{where}.topologyKey")
    if not topology_key:
        raise _Malformed(f"{where}.topologyKey must not be empty")
    names = _str_list(d.get("namespaces"), f"{where}.namespaces")
    raw_ns_sel = d.get("namespaceSelector")
    ns_sel = _label_selector(raw_ns_sel, f"{where}.namespaceSelector")
    if not names and raw_ns_sel is None:  # getNamespacesFromPodAffinityTerm: own namespace
        namespaces = frozenset((namespace,))
    else:
        namespaces = frozenset(names)
    if ns_sel is not None and namespace_labels is not None:
        # What kube-scheduler does per cycle (mergeAffinityTermNamespacesIfNotEmpty): the
        # selector becomes the namespaces it selects in this snapshot.
        namespaces = namespaces | {ns for ns, nl in namespace_labels.items() if ns_sel.matches(nl)}
        ns_sel = None
    return PodAffinityTerm(sel, topology_key, namespaces, ns_sel)


def _pod_affinity(pa: Any, where: str, namespace: str, labels: Mapping[str, str],
                  namespace_labels: Mapping[str, Mapping[str, str]] | None
                  ) -> tuple[tuple[PodAffinityTerm, ...], tuple[WeightedPodAffinityTerm, ...]]:
    d = _obj(pa, where)
    if not d:
        return (), ()
    rw = f"{where}.requiredDuringSchedulingIgnoredDuringExecution"
    required = [_pod_affinity_term(t, f"{rw}[{i}]", namespace, labels, namespace_labels)
                for i, t in enumerate(_list(d.get("requiredDuringSchedulingIgnoredDuringExecution"), rw))]
    pw = f"{where}.preferredDuringSchedulingIgnoredDuringExecution"
    preferred = []
    for i, p in enumerate(_list(d.get("preferredDuringSchedulingIgnoredDuringExecution"), pw)):
        pd = _obj(p, f"{pw}[{i}]")
        term = pd.get("podAffinityTerm")
        if term is None:
            raise _Malformed(f"{pw}[{i}].podAffinityTerm is required")
        preferred.append(WeightedPodAffinityTerm(
            _weight(pd.get("weight"), f"{pw}[{i}].weight"),
            _pod_affinity_term(term, f"{pw}[{i}].podAffinityTerm", namespace, labels,
                               namespace_labels)))
    return _canon(required), _canon(preferred, dedupe=False)


def _tolerations(v: Any) -> tuple[Toleration, ...]:
    out = []
    for i, t in enumerate(_list(v, "spec.tolerations")):
        where = f"spec.tolerations[{i}]"
        d = _obj(t, where)
        key = _str(d.get("key"), f"{where}.key")
        op = _str(d.get("operator"), f"{where}.operator") or "Equal"
        value = _str(d.get("value"), f"{where}.value")
        effect = _str(d.get("effect"), f"{where}.effect")
        if op not in ("Equal", "Exists"):
            raise _Malformed(f'{where}: unknown operator "{op}" (expected Equal or Exists)')
        if op == "Exists" and value:
            raise _Malformed(f'{where}: value must be empty when operator is Exists')
        if not key and op != "Exists":
            raise _Malformed(f"{where}: operator must be Exists when key is empty")
        if effect and effect not in _TAINT_EFFECTS:
            raise _Malformed(f'{where}: unknown effect "{effect}" '
                             f"(expected {', '.join(_TAINT_EFFECTS)} or empty)")
        out.append(Toleration(key, op, value, effect))
    if len(out) <= 1:
        return tuple(out)
    return tuple(sorted(dict.fromkeys(out), key=lambda t: (t.key, t.operator, t.value, t.effect)))


def _spread_constraints(v: Any, labels: Mapping[str, str]) -> tuple[TopologySpreadConstraint, ...]:
    out = []
    for i, c in enumerate(_list(v, "spec.topologySpreadConstraints")):
        where = f"spec.topologySpreadConstraints[{i}]"
        d = _obj(c, where)
        max_skew = _int(d.get("maxSkew"), f"{where}.maxSkew", 0)
        if max_skew < 1:
            raise _Malformed(f"{where}.maxSkew must be at least 1, got {max_skew}")
        topology_key = _str(d.get("topologyKey"), f"{where}.topologyKey")
        if not topology_key:
            raise _Malformed(f"{where}.topologyKey must not be empty")
        when = _str(d.get("whenUnsatisfiable"), f"{where}.whenUnsatisfiable")
        if when not in _WHEN_UNSATISFIABLE:
            raise _Malformed(f'{where}.whenUnsatisfiable must be DoNotSchedule or ScheduleAnyway, '
                             f'got "{when}"')
        sel = _label_selector(d.get("labelSelector"), f"{where}.labelSelector")
        mlk = _str_list(d.get("matchLabelKeys"), f"{where}.matchLabelKeys")
        if sel is not None and mlk:
            sel = _fold_label_keys(sel, mlk, "In", labels)
        min_domains = d.get("minDomains")
        if min_domains is not None:
            min_domains = _int(min_domains, f"{where}.minDomains", 1)
            if min_domains < 1:
                raise _Malformed(f"{where}.minDomains must be at least 1, got {min_domains}")
            if when != "DoNotSchedule":
                raise _Malformed(f"{where}.minDomains can only be set when whenUnsatisfiable is "
                                 "DoNotSchedule")
        policies = []
        for field, default in (("nodeAffinityPolicy", "Honor"), ("nodeTaintsPolicy", "Ignore")):
            p = _str(d.get(field), f"{where}.{field}") or default
            if p not in _INCLUSION_POLICIES:
                raise _Malformed(f'{where}.{field} must be Honor or Ignore, got "{p}"')
            policies.append(p)
        out.append(TopologySpreadConstraint(max_skew, topology_key, when, sel,
                                            min_domains or 1, policies[0], policies[1]))
    return _canon(out)


# --------------------------------------------------------------------------------------------
# objects
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _api_client() -> Any:
    from kubernetes.client import ApiClient  # heavy import; only for typed-model input

    return ApiClient()


def _as_plain(obj: Any, what: str) -> dict:
    """A kubernetes.client model (V1Pod, V1Node) as the apiserver's JSON dict."""
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "openapi_types") and hasattr(obj, "attribute_map"):
        plain = _api_client().sanitize_for_serialization(obj)
        if isinstance(plain, dict):
            return plain
    raise _Malformed(f"a {what} must be a JSON object or a kubernetes.client model, "
                     f"got {_kind(obj)}")


def _timestamp(v: Any) -> float:
    """metadata.creationTimestamp (RFC 3339) as epoch seconds; 0.0 when absent or unreadable,
    since it only orders the queue and must not make a pod unschedulable."""
    if not isinstance(v, str) or not v:
        return 0.0
    return _timestamp_str(v)


@lru_cache(maxsize=4096)
def _timestamp_str(v: str) -> float:
    """Memoised: timestamps have one-second resolution, so pods created together share one."""
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return 0.0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_pod(obj: Any,
              namespace_labels: Mapping[str, Mapping[str, str]] | None = None) -> PodInfo:
    """A Pod (apiserver JSON dict or kubernetes.client V1Pod) as a PodInfo. Never raises.

    `namespace_labels` (namespace -> its labels), when given, resolves every affinity term's
    namespaceSelector into explicit namespaces against that snapshot, as kube-scheduler does
    each cycle; leave it None to keep the selector and resolve it when matching."""
    try:
        obj = _as_plain(obj, "pod")
    except Exception as e:  # noqa: BLE001 - whatever the input, report instead of raising
        return PodInfo(uid="", namespace="", name="", error=f"unreadable pod: {_message(e)}")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = _EMPTY
    name = meta.get("name")
    name = name if isinstance(name, str) else ""
    namespace = meta.get("namespace")
    namespace = namespace if isinstance(namespace, str) and namespace else "default"
    uid = meta.get("uid")
    uid = uid if isinstance(uid, str) and uid else f"{namespace}/{name}"
    info = PodInfo(uid=uid, namespace=namespace, name=name)
    try:
        _fill_pod(info, obj, meta, namespace_labels)
    except Exception as e:  # noqa: BLE001
        info.key = None
        info.error = _message(e)
    return info


def _message(e: Exception) -> str:
    if isinstance(e, _Malformed):
        return str(e)
    return f"malformed object ({type(e).__name__}: {e})"


def _fill_pod(info: PodInfo, obj: Mapping[str, Any], meta: Mapping[str, Any],
              namespace_labels: Mapping[str, Mapping[str, str]] | None) -> None:
    if meta is _EMPTY and obj.get("metadata") is not None:
        raise _Malformed(f"metadata must be an object, got {_kind(obj.get('metadata'))}")
    spec = _obj(obj.get("spec"), "spec")
    status = _obj(obj.get("status"), "status")
    info.creation_ts = _timestamp(meta.get("creationTimestamp"))
    info.resource_version = _str(meta.get("resourceVersion"), "metadata.resourceVersion")
    info.phase = _str(status.get("phase"), "status.phase", "Pending") or "Pending"
    info.priority = _int(spec.get("priority"), "spec.priority", 0)
    info.scheduler_name = (_str(spec.get("schedulerName"), "spec.schedulerName")
                           or "default-scheduler")
    node_name = _str(spec.get("nodeName"), "spec.nodeName")
    info.node_name = node_name
    info.scheduling_gated = bool(spec.get("schedulingGates"))
    group = _obj(spec.get("schedulingGroup"), "spec.schedulingGroup")
    info.pod_group = _str(group.get("podGroupName"), "spec.schedulingGroup.podGroupName")
    info.deleting = bool(meta.get("deletionTimestamp"))
    info.preempt_never = spec.get("preemptionPolicy") == "Never"
    nominated = status.get("nominatedNodeName")
    info.nominated_node = nominated if isinstance(nominated, str) else ""
    volumes = spec.get("volumes")
    if volumes:
        info.claims, info.ephemeral = _claims(volumes, info.name)
    raw_labels = meta.get("labels")
    if namespace_labels is None:
        fp = _fingerprint(info.namespace, spec)
        if fp is not None:
            key = _memoised_key(fp, spec, info.namespace, raw_labels)
            info.key = replace(key, node_name=node_name) if node_name else key
            return
    info.key = _pod_key(spec, info.namespace, raw_labels, node_name, namespace_labels)


def _claims(volumes: Any, pod_name: str) -> tuple[tuple[str, ...], frozenset[str]]:
    """The claims of spec.volumes, in order (upstream's podHasPVCs): a persistentVolumeClaim's
    claimName, and for an ephemeral volume the claim its controller makes, `<pod>-<volume>`."""
    names: list[str] = []
    ephemeral: set[str] = set()
    for i, v in enumerate(_list(volumes, "spec.volumes")):
        where = f"spec.volumes[{i}]"
        d = _obj(v, where)
        pvc = d.get("persistentVolumeClaim")
        if pvc is not None:
            name = _str(_obj(pvc, f"{where}.persistentVolumeClaim").get("claimName"),
                        f"{where}.persistentVolumeClaim.claimName")
            if not name:
                raise _Malformed(f"{where}.persistentVolumeClaim: PersistentVolumeClaim had no name")
            names.append(name)
        elif d.get("ephemeral") is not None:
            name = f"{pod_name}-{_str(d.get('name'), f'{where}.name')}"
            names.append(name)
            ephemeral.add(name)
    return tuple(names), frozenset(ephemeral)


_DISK_IDS = {GCE_PD: "pdName", AWS_EBS: "volumeID", ISCSI: "iqn", RBD: "image"}  # each source's disk (RBD: in a pool)


def _inline_disks(volumes: Any) -> tuple[InlineDisk, ...]:
    """The GCE PD, EBS, iSCSI and RBD disks of spec.volumes (upstream's needsRestrictionsCheck),
    an RBD image named by pool (the API's default `rbd`) and image."""
    disks: list[InlineDisk] = []
    for i, v in enumerate(_list(volumes, "spec.volumes")):
        d = _obj(v, f"spec.volumes[{i}]")
        for kind, id_field in _DISK_IDS.items():
            src = d.get(kind)
            if src is None:
                continue
            where = f"spec.volumes[{i}].{kind}"
            src = _obj(src, where)
            ro = src.get("readOnly")
            if ro is not None and not isinstance(ro, bool):
                raise _Malformed(f"{where}.readOnly must be a boolean, got {_kind(ro)}")
            if kind == RBD:
                name = (_str(src.get("pool"), f"{where}.pool") or "rbd") + "\0" + _str(src.get(id_field), f"{where}.{id_field}")
                monitors = tuple(sorted({_str(m, f"{where}.monitors") for m in _list(src.get("monitors"), f"{where}.monitors")}))
            else:
                name, monitors = _str(src.get(id_field), f"{where}.{id_field}"), ()
            disks.append(InlineDisk(kind, name, bool(ro), monitors))
    return _canon(disks)


def _inline_csi(volumes: Any) -> tuple[tuple[str, str], ...]:
    """(CSI driver, handle) of each inline in-tree volume NodeVolumeLimits counts (spec.volumes
    was read by `_inline_disks` first: well-formed lists of objects)."""
    vols = {translate_volume(v, {}) for v in volumes}  # an inline volume has no labels
    vols.discard(None)
    return tuple(sorted(vols))


# Pods stamped from one template share everything the key reads, so keys are memoised on a
# canonical JSON fingerprint of exactly those fields of the spec (container names included, so
# error messages are the same). Labels enter the key in one field only, unless the spec uses
# matchLabelKeys/mismatchLabelKeys, so a template's key is re-used with the labels swapped in:
# pods with unique labels (StatefulSets, indexed Jobs) do not pay a full parse each.
# spec.nodeName is patched in likewise, so bound pods do not make one entry per node.
# Bounded: everything is dropped once _KEY_CACHE_SIZE keys are held.
class _Template:
    __slots__ = ("base", "label_dependent", "keys")

    def __init__(self, label_dependent: bool) -> None:
        self.base: PodSpecKey | None = None
        self.label_dependent = label_dependent
        self.keys: dict[tuple[tuple[str, str], ...], PodSpecKey] = {}


_TEMPLATES: dict[bytes, _Template] = {}
_KEY_CACHE_SIZE = 32768
_cached_keys = [0]  # keys held across all templates (a list: mutable without `global`)
_KEY_SPEC_FIELDS = ("affinity", "tolerations", "topologySpreadConstraints", "nodeSelector",
                    "overhead", "resources", "hostNetwork")
_KEY_CONTAINER_FIELDS = ("name", "resources", "ports", "restartPolicy")
_DISK_SOURCES = frozenset(_DISK_IDS) | frozenset(_MIGRATED_IDS)  # VolumeRestrictions', NodeVolumeLimits' sources
_NULL_MARKERS = (b":null", b",null", b"[null")


def _memoised_key(fp: bytes, spec: Mapping[str, Any], namespace: str, raw_labels: Any) -> PodSpecKey:
    labels = _sorted_pairs(_str_map(raw_labels, "metadata.labels"))
    tpl = _TEMPLATES.get(fp)
    if tpl is None:
        tpl = _Template(b"LabelKeys" in fp)  # matchLabelKeys / mismatchLabelKeys anywhere
    else:
        key = tpl.keys.get(labels)
        if key is not None:
            return key
    if tpl.base is not None and not tpl.label_dependent:
        key = replace(tpl.base, labels=labels)
    else:
        key = _pod_key(spec, namespace, raw_labels, "", None)
    if _cached_keys[0] >= _KEY_CACHE_SIZE:
        _TEMPLATES.clear()
        _cached_keys[0] = 0
    if tpl.base is None:
        tpl.base = key
    tpl.keys[labels] = key
    _TEMPLATES[fp] = tpl
    _cached_keys[0] += 1
    return key


# The canonical fingerprint costs more than the rest of a memoised parse; pods of one template
# (a Deployment's, a Job's) have byte-identical specs, so the whole spec's JSON, as given, is first
# looked up here. Same bytes, same spec, same fingerprint; a miss only costs the canonical path.
_EXACT: dict[tuple[str, bytes], bytes] = {}


def _fingerprint(namespace: str, spec: Mapping[str, Any]) -> bytes | None:
    try:
        exact = (namespace, orjson.dumps(spec))
    except (orjson.JSONEncodeError, TypeError):
        return _canonical_fingerprint(namespace, spec)
    fp = _EXACT.get(exact)
    if fp is None:
        fp = _canonical_fingerprint(namespace, spec)
        if fp is not None:
            if len(_EXACT) >= _KEY_CACHE_SIZE:
                _EXACT.clear()
            _EXACT[exact] = fp
    return fp


def _canonical_fingerprint(namespace: str, spec: Mapping[str, Any]) -> bytes | None:
    """Canonical bytes of what _pod_key reads from the spec, or None when the input is not plain
    JSON (then the key is computed directly)."""
    parts: dict[str, Any] = {}
    for f in _KEY_SPEC_FIELDS:
        v = spec.get(f)
        if v is not None:
            parts[f] = v
    for f in ("containers", "initContainers"):
        cl = spec.get(f)
        if cl is None:
            continue
        if type(cl) is not list:
            return None
        pruned = []
        for c in cl:
            if type(c) is not dict:
                return None
            pruned.append({k: c[k] for k in _KEY_CONTAINER_FIELDS if k in c})
        parts[f] = pruned
    vols = spec.get("volumes")
    if vols:  # only the inline disks: a claim's name is not part of the key
        if type(vols) is not list or any(type(v) is not dict for v in vols):
            return None
        disks = [{k: v[k] for k in _DISK_SOURCES if k in v} for v in vols if not _DISK_SOURCES.isdisjoint(v)]
        if disks:
            parts["volumes"] = disks
    try:
        fp = orjson.dumps((namespace, parts), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return None
    # orjson writes NaN/Infinity as null, and null reads as "absent": not a faithful fingerprint.
    for marker in _NULL_MARKERS:
        if marker in fp:
            return None
    return fp


def _pod_key(spec: Mapping[str, Any], namespace: str, raw_labels: Any, node_name: str,
             namespace_labels: Mapping[str, Mapping[str, str]] | None) -> PodSpecKey:
    labels = _str_map(raw_labels, "metadata.labels")
    host_ports: list[HostPort] = []
    containers = _read_containers(spec, host_ports)
    reqs, nonzero, fit_score = _requests(spec, containers)
    requests = _canonical_requests(reqs)
    nonzero_cpu = _canonical(CPU, nonzero.get(CPU, 0), "non-zero request")
    nonzero_memory = _canonical(MEMORY, nonzero.get(MEMORY, 0), "non-zero request")
    fit_request = (_canonical(CPU, fit_score.get(CPU, 0), "non-zero request"),
                   _canonical(MEMORY, fit_score.get(MEMORY, 0), "non-zero request"))

    required_na = None
    preferred_na: tuple[PreferredSchedulingTerm, ...] = ()
    pod_aff: tuple[PodAffinityTerm, ...] = ()
    pod_anti: tuple[PodAffinityTerm, ...] = ()
    pref_aff: tuple[WeightedPodAffinityTerm, ...] = ()
    pref_anti: tuple[WeightedPodAffinityTerm, ...] = ()
    affinity = spec.get("affinity")
    if affinity is not None:
        affinity = _obj(affinity, "spec.affinity")
        na = affinity.get("nodeAffinity")
        if na is not None:
            required_na, preferred_na = _node_affinity(_obj(na, "spec.affinity.nodeAffinity"),
                                                       "spec.affinity.nodeAffinity")
        pa = affinity.get("podAffinity")
        if pa is not None:
            pod_aff, pref_aff = _pod_affinity(pa, "spec.affinity.podAffinity", namespace, labels,
                                              namespace_labels)
        paa = affinity.get("podAntiAffinity")
        if paa is not None:
            pod_anti, pref_anti = _pod_affinity(paa, "spec.affinity.podAntiAffinity", namespace,
                                                labels, namespace_labels)
    tol = spec.get("tolerations")
    tsc = spec.get("topologySpreadConstraints")
    ns = spec.get("nodeSelector")
    return PodSpecKey(
        namespace=namespace,
        labels=_sorted_pairs(labels),
        requests=requests,
        nonzero_cpu=nonzero_cpu,
        nonzero_memory=nonzero_memory,
        fit_request=None if fit_request == (nonzero_cpu, nonzero_memory) else fit_request,
        host_ports=_canon(host_ports),
        disks=_inline_disks(spec.get("volumes")) if spec.get("volumes") else (),
        inline_csi=_inline_csi(spec.get("volumes")) if spec.get("volumes") else (),
        node_name=node_name,
        node_selector=_sorted_pairs(_str_map(ns, "spec.nodeSelector")) if ns is not None else (),
        required_node_affinity=required_na,
        preferred_node_affinity=preferred_na,
        tolerations=_tolerations(tol) if tol is not None else (),
        pod_affinity=pod_aff,
        pod_anti_affinity=pod_anti,
        preferred_pod_affinity=pref_aff,
        preferred_pod_anti_affinity=pref_anti,
        spread_constraints=_spread_constraints(tsc, labels) if tsc is not None else (),
    )


def parse_node(obj: Any) -> NodeInfo:
    """A Node (apiserver JSON dict or kubernetes.client V1Node) as a NodeInfo. Never raises.

    Allocatable falls back to capacity only when status.allocatable is absent (the apiserver's
    SetDefaults_NodeStatus); `pods` is always present (0 when the node declares none, so it
    takes no pods, as kube-scheduler would). Ready means a Ready condition with status "True";
    a node without one is not ready. A node that cannot be read gets `error` set."""
    try:
        obj = _as_plain(obj, "node")
    except Exception as e:  # noqa: BLE001
        return NodeInfo(name="", ready=False, error=f"unreadable node: {_message(e)}")
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    info = NodeInfo(name=name if isinstance(name, str) else "", ready=False)
    try:
        _fill_node(info, obj)
    except Exception as e:  # noqa: BLE001
        info.error = _message(e)
    return info


def _fill_node(info: NodeInfo, obj: Mapping[str, Any]) -> None:
    meta = _obj(obj.get("metadata"), "metadata")
    spec = _obj(obj.get("spec"), "spec")
    status = _obj(obj.get("status"), "status")
    if not info.name:
        raise _Malformed("metadata.name is missing")
    info.labels = dict(_str_map(meta.get("labels"), "metadata.labels"))
    taints = []
    for i, t in enumerate(_list(spec.get("taints"), "spec.taints")):
        where = f"spec.taints[{i}]"
        d = _obj(t, where)
        key = _str(d.get("key"), f"{where}.key")
        effect = _str(d.get("effect"), f"{where}.effect")
        if not key:
            raise _Malformed(f"{where}.key must not be empty")
        if effect not in _TAINT_EFFECTS:
            raise _Malformed(f'{where}.effect must be one of {", ".join(_TAINT_EFFECTS)}, '
                             f'got "{effect}"')
        taints.append(Taint(key, _str(d.get("value"), f"{where}.value"), effect))
    info.taints = tuple(taints)
    unschedulable = spec.get("unschedulable")
    if unschedulable is not None and not isinstance(unschedulable, bool):
        raise _Malformed(f"spec.unschedulable must be a boolean, got {_kind(unschedulable)}")
    info.unschedulable = bool(unschedulable)
    ready = False
    for i, c in enumerate(_list(status.get("conditions"), "status.conditions")):
        d = _obj(c, f"status.conditions[{i}]")
        if d.get("type") == "Ready":
            ready = d.get("status") == "True"
    info.ready = ready
    alloc = status.get("allocatable")
    field = "status.allocatable"
    if alloc is None:
        alloc, field = status.get("capacity"), "status.capacity"
    allocatable: dict[str, int] = {}
    for name, q in _obj(alloc, field).items():
        try:
            allocatable[name] = to_canonical(name, q)
        except QuantityError as e:
            desc = f'"{q}"' if isinstance(q, str) else repr(q)
            raise _Malformed(f"invalid quantity {desc} for {name} in {field}: {e.reason}") from None
    allocatable.setdefault(PODS, 0)
    info.allocatable = allocatable



# A gang policy whose minCount cannot be read: no number of members satisfies it, so its pods
# wait with a reason (never bound, never a crash).
UNSATISFIABLE = 2**31


def parse_pod_group(obj: Any) -> Gang:
    """A scheduling.k8s.io PodGroup: its gang minCount (None for the basic policy), topology
    constraint, priority and disruption mode."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    spec = obj.get("spec") if isinstance(obj, dict) else None
    policy = spec.get("schedulingPolicy") if isinstance(spec, dict) else None
    gang = policy.get("gang") if isinstance(policy, dict) else None
    min_count = None
    if isinstance(gang, dict):
        m = gang.get("minCount")
        min_count = m if isinstance(m, int) and not isinstance(m, bool) and m >= 1 else UNSATISFIABLE
    name, ns = meta.get("name"), meta.get("namespace")
    status = obj.get("status") if isinstance(obj, dict) else None
    conditions = status.get("conditions") if isinstance(status, dict) else None
    scheduled = any(isinstance(c, dict) and c.get("type") == "PodGroupInitiallyScheduled" and c.get("status") == "True"
                    for c in conditions or ()) if isinstance(conditions, list) else False
    prio = spec.get("priority") if isinstance(spec, dict) else None
    uid = meta.get("uid")
    mode = spec.get("disruptionMode") if isinstance(spec, dict) else None
    return Gang(ns if isinstance(ns, str) and ns else "default", name if isinstance(name, str) else "", min_count,
                scheduled, bool(meta.get("deletionTimestamp")), _topology_key(spec),
                prio if isinstance(prio, int) and not isinstance(prio, bool) else 0,
                uid if isinstance(uid, str) else "", isinstance(mode, dict) and isinstance(mode.get("all"), dict))


def _topology_key(spec: Any) -> str:
    """The first topology constraint's key (the API allows one); "" when there is none or it
    is malformed (the apiserver validates it: a malformed one is not seen in practice)."""
    cons = spec.get("schedulingConstraints") if isinstance(spec, dict) else None
    topo = cons.get("topology") if isinstance(cons, dict) else None
    first = topo[0] if isinstance(topo, list) and topo else None
    key = first.get("key") if isinstance(first, dict) else None
    return key if isinstance(key, str) else ""


def parse_pdb(obj: Any) -> DisruptionBudget:
    """A policy/v1 PodDisruptionBudget for preemption; a malformed one covers no pod (as upstream,
    whose selector conversion fails and matches nothing)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    spec = obj.get("spec") if isinstance(obj, dict) else None
    status = obj.get("status") if isinstance(obj, dict) else None
    status = status if isinstance(status, dict) else {}
    try:
        selector = _label_selector(spec.get("selector"), "spec.selector") if isinstance(spec, dict) else None
    except Exception:  # noqa: BLE001 - an invalid selector matches nothing
        selector = None
    allowed = status.get("disruptionsAllowed")
    disrupted = status.get("disruptedPods")
    ns, name = meta.get("namespace"), meta.get("name")
    return DisruptionBudget(ns if isinstance(ns, str) and ns else "default", name if isinstance(name, str) else "",
                            selector, allowed if isinstance(allowed, int) and not isinstance(allowed, bool) else 0,
                            frozenset(disrupted) if isinstance(disrupted, dict) else frozenset())


# ------------------------------------------------------------------------------------ storage
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"


def _meta_of(obj: Any) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    if not isinstance(obj, dict):
        raise _Malformed(f"must be an object, got {_kind(obj)}")
    return (_obj(obj.get("metadata"), "metadata"), _obj(obj.get("spec"), "spec"),
            _obj(obj.get("status"), "status"))


def _storage_class_of(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    """The beta annotation first, then spec.storageClassName (upstream's class helpers)."""
    ann = _str_map(meta.get("annotations"), "metadata.annotations")
    if BETA_STORAGE_CLASS in ann:
        return ann[BETA_STORAGE_CLASS]
    return _str(spec.get("storageClassName"), "spec.storageClassName")


def _storage_bytes(v: Any, where: str) -> int:
    q = _obj(v, where).get("storage")
    if q is None:
        return 0
    try:
        return to_canonical("storage", q)
    except (QuantityError, TypeError, ValueError) as e:
        raise _Malformed(f'invalid quantity {q!r} for storage in {where}: {getattr(e, "reason", e)}') from None


def parse_claim(obj: Any) -> Claim:
    """A PersistentVolumeClaim as a Claim. Never raises: an unreadable one carries `error`."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) and meta.get("namespace") else "default"
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    try:
        meta, spec, status = _meta_of(obj)
        ann = _str_map(meta.get("annotations"), "metadata.annotations")
        owner = ""
        for i, ref in enumerate(_list(meta.get("ownerReferences"), "metadata.ownerReferences")):
            r = _obj(ref, f"metadata.ownerReferences[{i}]")
            if r.get("controller") is True:
                owner = _str(r.get("uid"), f"metadata.ownerReferences[{i}].uid")
        sel = spec.get("selector")
        requests = _obj(spec.get("resources"), "spec.resources").get("requests")
        return Claim(
            namespace=ns, name=name, uid=_str(meta.get("uid"), "metadata.uid"),
            storage_class=_storage_class_of(meta, spec),
            access_modes=frozenset(_str_list(spec.get("accessModes"), "spec.accessModes")),
            volume_mode=_str(spec.get("volumeMode"), "spec.volumeMode") or "Filesystem",
            request=_storage_bytes(requests, "spec.resources.requests"),
            sized=isinstance(requests, dict) and requests.get("storage") is not None,
            selector=_label_selector(sel, "spec.selector") if sel is not None else None,
            volume_name=_str(spec.get("volumeName"), "spec.volumeName"),
            bind_completed=BIND_COMPLETED in ann,
            lost=status.get("phase") == "Lost",
            deleting=bool(meta.get("deletionTimestamp")),
            selected_node=ann.get(SELECTED_NODE, ""),
            owner_uid=owner,
            resource_version=_str(meta.get("resourceVersion"), "metadata.resourceVersion"))
    except Exception as e:  # noqa: BLE001 - whatever the input, report instead of raising
        return Claim(namespace=ns, name=name, error=f'persistentvolumeclaim "{name}" is malformed: {_message(e)}')


def parse_volume(obj: Any) -> Volume:
    """A PersistentVolume as a Volume. Never raises: an unreadable one carries `error` (and is
    never offered to a claim)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    try:
        meta, spec, status = _meta_of(obj)
        affinity = None
        na = _obj(spec.get("nodeAffinity"), "spec.nodeAffinity")
        req = na.get("required")
        if req is not None:
            terms = _list(_obj(req, "spec.nodeAffinity.required").get("nodeSelectorTerms"),
                          "spec.nodeAffinity.required.nodeSelectorTerms")
            affinity = tuple(_node_selector_term(t, f"spec.nodeAffinity.required.nodeSelectorTerms[{i}]")
                             for i, t in enumerate(terms))
        ref = spec.get("claimRef")
        claim_ref = None
        if ref is not None:
            r = _obj(ref, "spec.claimRef")
            claim_ref = ClaimRef(_str(r.get("namespace"), "spec.claimRef.namespace") or "default",
                                 _str(r.get("name"), "spec.claimRef.name"),
                                 _str(r.get("uid"), "spec.claimRef.uid"))
        csi = _obj(spec.get("csi"), "spec.csi")
        labels = _str_map(meta.get("labels"), "metadata.labels")
        driver, handle = _str(csi.get("driver"), "spec.csi.driver"), _str(csi.get("volumeHandle"), "spec.csi.volumeHandle")
        migrated = translate_volume(spec, labels) if not csi else None
        if migrated is not None:
            driver, handle = migrated
        return Volume(
            csi_driver=driver, csi_handle=handle, migrated=migrated is not None,
            name=name, storage_class=_storage_class_of(meta, spec),
            access_modes=frozenset(_str_list(spec.get("accessModes"), "spec.accessModes")),
            volume_mode=_str(spec.get("volumeMode"), "spec.volumeMode") or "Filesystem",
            capacity=_storage_bytes(spec.get("capacity"), "spec.capacity"),
            labels=_sorted_pairs(labels),
            node_affinity=affinity, claim_ref=claim_ref,
            phase=_str(status.get("phase"), "status.phase") or "Pending",
            deleting=bool(meta.get("deletionTimestamp")),
            resource_version=_str(meta.get("resourceVersion"), "metadata.resourceVersion"))
    except Exception as e:  # noqa: BLE001
        return Volume(name=name, phase="", error=f'persistentvolume "{name}" is malformed: {_message(e)}')


def _loose(obj: Any) -> tuple[dict, dict, dict]:
    """An object, its metadata and its spec, each {} where not a mapping (for the parsers that read
    what they can and never raise)."""
    o = obj if isinstance(obj, dict) else {}
    meta, spec = o.get("metadata"), o.get("spec")
    return o, meta if isinstance(meta, dict) else {}, spec if isinstance(spec, dict) else {}


def parse_csi_node(obj: Any) -> tuple[str, dict[str, int], frozenset[str]]:
    """A CSINode: its node's name, each driver's attach limit (`allocatable.count`; a driver
    without one has no limit), and the drivers installed there."""
    _, meta, spec = _loose(obj)
    limits: dict[str, int] = {}
    drivers: set[str] = set()
    for d in spec.get("drivers") or ():
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            continue
        drivers.add(d["name"])
        count = (d.get("allocatable") or {}).get("count") if isinstance(d.get("allocatable"), dict) else None
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            limits[d["name"]] = count
    name = meta.get("name")
    return (name if isinstance(name, str) else ""), limits, frozenset(drivers)


def parse_csi_driver(obj: Any) -> CSIDriverInfo:
    """A CSIDriver: its two scheduling switches (anything but `true` is off, as upstream reads a
    nil or false pointer)."""
    _, meta, spec = _loose(obj)
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    return CSIDriverInfo(name, storage_capacity=spec.get("storageCapacity") is True,
                         prevent_if_missing=spec.get("preventPodSchedulingIfMissing") is True)


def parse_volume_attachment(obj: Any) -> VolumeAttachmentInfo:
    """A VolumeAttachment (what is not a string reads as empty: such an attachment is not counted)."""
    _, meta, spec = _loose(obj)
    source = spec.get("source") if isinstance(spec.get("source"), dict) else {}

    def text(v: Any) -> str:
        return v if isinstance(v, str) else ""

    return VolumeAttachmentInfo(text(meta.get("name")), text(spec.get("nodeName")), text(spec.get("attacher")),
                                text(source.get("persistentVolumeName")))


def parse_storage_capacity(obj: Any) -> StorageCapacity:
    """A CSIStorageCapacity. Never raises: an unreadable topology selects no node and an
    unreadable quantity holds nothing (upstream skips such an object the same way)."""
    o, meta, _ = _loose(obj)
    ns = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    sc = o.get("storageClassName") if isinstance(o.get("storageClassName"), str) else ""
    try:
        topology = _label_selector(o.get("nodeTopology"), "nodeTopology")
    except Exception:  # noqa: BLE001 - an unreadable selector selects nothing
        topology = None

    def quantity(key: str) -> int | None:
        q = o.get(key)
        if q is None:
            return None
        try:
            return to_canonical("storage", q)
        except (QuantityError, TypeError, ValueError):
            return None

    return StorageCapacity(ns, name, sc, topology, quantity("capacity"), quantity("maximumVolumeSize"))


def parse_storage_class(obj: Any) -> StorageClassInfo:
    """A StorageClass. An unreadable `allowedTopologies` allows no node (its claims wait with
    the bind-conflict reason, as a class whose topology matches nothing)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else ""
    o = obj if isinstance(obj, dict) else {}
    mode = o.get("volumeBindingMode")
    provisioner = o.get("provisioner") if isinstance(o.get("provisioner"), str) else ""
    terms: list[NodeSelectorTerm] = []
    try:
        for i, t in enumerate(_list(o.get("allowedTopologies"), "allowedTopologies")):
            reqs = []
            for j, e in enumerate(_list(_obj(t, f"allowedTopologies[{i}]").get("matchLabelExpressions"),
                                        f"allowedTopologies[{i}].matchLabelExpressions")):
                ed = _obj(e, f"allowedTopologies[{i}].matchLabelExpressions[{j}]")
                reqs.append(Requirement(_str(ed.get("key"), "key"), "In",
                                        tuple(_str_list(ed.get("values"), "values"))))
            if reqs:  # a term with no expressions is skipped, as upstream
                terms.append(NodeSelectorTerm(_norm_requirements(reqs)))
    except Exception:  # noqa: BLE001
        terms = [NodeSelectorTerm((Requirement("allowedTopologies", "In", ("unreadable",)),))]
    return StorageClassInfo(name, provisioner, mode if isinstance(mode, str) else None, tuple(terms))
