"""Hypothesis strategies for odd and broken pod specs, shared by the engine-only test
(tests/reliability/test_bad_input.py) and the end-to-end one through the real apiserver
(tests/integration/test_bad_input_e2e.py).

Two families:
- `pod_spec` / `batch`: for the engine alone. Mostly specs the apiserver would accept but that
  stress the edges (huge or zero requests, unknown extended resources, impossible affinity,
  conflicting spread constraints, tolerations of every shape, thousands of labels, empty selectors,
  Gt/Lt on non-numbers, duplicate host ports, init containers larger than the app), the rest raw
  dicts the apiserver would never let through (wrong types, bad quantities, unknown operators).
- `api_template`: for the apiserver. Odd specs shaped so that the apiserver accepts most of them
  (limits equal to requests for extended resources, operators with the values they need, unique
  container names), a few left sloppy on purpose (the test counts what is rejected). A template is
  a Deployment-like group: every replica has the same spec and a group label of its own, which
  keeps the end-state placement check sound (see `api_template`).
"""

from __future__ import annotations

import copy

from hypothesis import strategies as st

SCHED = "cluster-scheduler"
MIN_BATCH = 9


def _node(name, labels, alloc, taints=(), unschedulable=False, ready="True"):
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": {"taints": list(taints), **({"unschedulable": True} if unschedulable else {})},
            "status": {"allocatable": alloc, "capacity": alloc,
                       "conditions": [{"type": "Ready", "status": ready}]}}


Z = "topology.kubernetes.io/zone"
NODES = [
    _node("n0", {Z: "a", "disk": "ssd", "rank": "5"}, {"cpu": "4", "memory": "8Gi", "pods": "10"}),
    _node("n1", {Z: "a", "rank": "10", "gpu": "true"},
          {"cpu": "2", "memory": "4Gi", "pods": "110", "nvidia.com/gpu": "2"},
          taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    _node("n2", {Z: "b", "rank": "-3"}, {"cpu": "8", "memory": "16Gi", "pods": "3", "ephemeral-storage": "100Gi"},
          taints=[{"key": "spot", "effect": "PreferNoSchedule"}]),
    _node("n3", {Z: "b"}, {"cpu": "8", "memory": "16Gi", "pods": "110"}, unschedulable=True),
    _node("n4", {Z: "c"}, {"cpu": "8", "memory": "16Gi", "pods": "110"}, ready="False"),
    _node("n5", {"rank": "abc"}, {"cpu": "1", "memory": "1Gi", "pods": "110", "example.com/foo": "1",
                                  "hugepages-2Mi": "64Mi"},
          taints=[{"key": "flaky", "value": "yes", "effect": "NoExecute"}]),
]

# ---- building blocks ------------------------------------------------------------------------
label_key = st.sampled_from(["app", "tier", "team", "rank", Z, "kubernetes.io/hostname", "disk", "x/y", "gpu"])
label_val = st.sampled_from(["a", "b", "c", "web", "db", "5", "10", "-3", "", "abc", "n0", "ssd"])
labels = st.dictionaries(label_key, label_val, max_size=4)

good_qty = st.sampled_from(["0", "1", "100m", "250m", "2", "4", "1Gi", "512Mi", "10Gi", "1e3", "0.5", "1Ki",
                            "64Mi", "1m", "3"])
huge_qty = st.sampled_from(["1Ei", "999999999", "9223372036854775807", "8E", "1e18", "100000"])
bad_qty = st.sampled_from(["-1", "abc", "", "1.2.3", "1Gb", "∞", "0x10", "1e100000"])
odd_qty = st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                    st.booleans(), st.lists(st.integers(), max_size=2))
quantity = st.one_of(good_qty, good_qty, good_qty, huge_qty, bad_qty, odd_qty)
valid_quantity = st.one_of(good_qty, good_qty, good_qty, good_qty, huge_qty, st.integers(0, 10**12))
# `pods` is left out: the apiserver rejects it as a container resource, and upstream's fit check
# ignores such a request (only the pod count is compared), which check.py does not model.
resource = st.sampled_from(["cpu", "memory", "cpu", "memory", "ephemeral-storage", "nvidia.com/gpu",
                            "example.com/foo", "unknown.io/widget", "hugepages-2Mi", "hugepages-1Gi"])
resource_list = st.dictionaries(resource, quantity, max_size=3)
valid_resource_list = st.dictionaries(resource, valid_quantity, max_size=3)

port = st.fixed_dictionaries(
    {"containerPort": st.sampled_from([80, 8080, 0, 65536, -1, "http"])},
    optional={"hostPort": st.sampled_from([80, 80, 443, 0, 70000, "x"]),
              "protocol": st.sampled_from(["TCP", "UDP", "SCTP", "tcp", ""]),
              "hostIP": st.sampled_from(["", "0.0.0.0", "127.0.0.1", "10.0.0.1", "not-an-ip"])})


@st.composite
def container(draw, init=False, strict=False):
    c = {"name": draw(st.sampled_from(["c", "d", "e", ""])), "image": "pause"}
    if draw(st.booleans()):
        rl = valid_resource_list if strict else resource_list
        c["resources"] = draw(st.fixed_dictionaries({}, optional={"requests": rl, "limits": rl}))
    if draw(st.integers(0, 3)) == 0:
        c["ports"] = draw(st.lists(valid_port if strict else port, max_size=3))
    if init and draw(st.booleans()):
        c["restartPolicy"] = "Always" if strict else draw(st.sampled_from(["Always", "OnFailure", "Never", "bogus"]))
    return c


valid_port = st.fixed_dictionaries(
    {"containerPort": st.sampled_from([80, 8080, 53])},
    optional={"hostPort": st.sampled_from([80, 80, 443, 8080]), "protocol": st.sampled_from(["TCP", "UDP"]),
              "hostIP": st.sampled_from(["", "0.0.0.0", "127.0.0.1", "10.0.0.1"])})
op = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Bogus", ""])
values = st.lists(st.sampled_from(["a", "b", "5", "10", "-3", "abc", "", "1e3", "99999999999999999999"]), max_size=3)
node_expr = st.fixed_dictionaries({"key": label_key, "operator": op}, optional={"values": values})
field_expr = st.fixed_dictionaries({"key": st.sampled_from(["metadata.name", "spec.nodeName"]), "operator": op},
                                   optional={"values": st.lists(st.sampled_from(["n0", "n2", "nx"]), max_size=2)})
node_term = st.fixed_dictionaries({}, optional={"matchExpressions": st.lists(node_expr, max_size=3),
                                                "matchFields": st.lists(field_expr, max_size=1)})
node_affinity = st.fixed_dictionaries({}, optional={
    "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
        {"nodeSelectorTerms": st.lists(node_term, max_size=3)}),
    "preferredDuringSchedulingIgnoredDuringExecution": st.lists(st.fixed_dictionaries(
        {"weight": st.sampled_from([1, 50, 100, 0, 101, -1]), "preference": node_term}), max_size=2)})

sel_expr = st.fixed_dictionaries({"key": label_key, "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt"])},
                                 optional={"values": values})
label_selector = st.one_of(
    st.none(), st.just({}),
    st.fixed_dictionaries({}, optional={"matchLabels": labels, "matchExpressions": st.lists(sel_expr, max_size=2)}))
topo_key = st.sampled_from([Z, "kubernetes.io/hostname", "", "missing-key", "rank"])
pod_term = st.fixed_dictionaries({"topologyKey": topo_key}, optional={
    "labelSelector": label_selector,
    "namespaces": st.lists(st.sampled_from(["default", "other", ""]), max_size=2),
    "namespaceSelector": label_selector,
    "matchLabelKeys": st.lists(label_key, max_size=2),
    "mismatchLabelKeys": st.lists(label_key, max_size=2)})
weighted_term = st.fixed_dictionaries({"weight": st.sampled_from([1, 100, 0, 200]), "podAffinityTerm": pod_term})
pod_aff = st.fixed_dictionaries({}, optional={
    "requiredDuringSchedulingIgnoredDuringExecution": st.lists(pod_term, max_size=2),
    "preferredDuringSchedulingIgnoredDuringExecution": st.lists(weighted_term, max_size=2)})
affinity = st.fixed_dictionaries({}, optional={"nodeAffinity": node_affinity, "podAffinity": pod_aff,
                                               "podAntiAffinity": pod_aff})
valid_op = st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"])
valid_node_term = st.fixed_dictionaries({}, optional={"matchExpressions": st.lists(
    st.fixed_dictionaries({"key": label_key, "operator": valid_op}, optional={"values": values}), max_size=3)})
valid_affinity = st.fixed_dictionaries({}, optional={
    "nodeAffinity": st.fixed_dictionaries({}, optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
            {"nodeSelectorTerms": st.lists(valid_node_term, min_size=1, max_size=3)}),
        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(st.fixed_dictionaries(
            {"weight": st.integers(1, 100), "preference": valid_node_term}), max_size=2)}),
    "podAffinity": pod_aff, "podAntiAffinity": pod_aff})

toleration = st.fixed_dictionaries({}, optional={
    "key": st.sampled_from(["dedicated", "spot", "flaky", "node.kubernetes.io/unschedulable",
                            "node.kubernetes.io/not-ready", "", "other"]),
    "operator": st.sampled_from(["Exists", "Equal", "Bogus", ""]),
    "value": st.sampled_from(["gpu", "yes", "", "no"]),
    "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule", "", "Weird"]),
    "tolerationSeconds": st.sampled_from([0, 300, -1, None])})

valid_toleration = st.one_of(
    st.fixed_dictionaries({"operator": st.just("Exists")}, optional={
        "key": st.sampled_from(["dedicated", "spot", "flaky", "node.kubernetes.io/unschedulable",
                                "node.kubernetes.io/not-ready"]),
        "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule", ""])}),
    st.fixed_dictionaries({"key": st.sampled_from(["dedicated", "spot", "flaky", "other"]),
                           "value": st.sampled_from(["gpu", "yes", "", "no"])}, optional={
        "operator": st.just("Equal"),
        "effect": st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule", ""])}))
valid_spread = st.fixed_dictionaries(
    {"maxSkew": st.integers(1, 3), "topologyKey": topo_key.filter(bool),
     "whenUnsatisfiable": st.sampled_from(["DoNotSchedule", "ScheduleAnyway"]),
     "labelSelector": st.fixed_dictionaries({"matchLabels": labels})},
    optional={"nodeAffinityPolicy": st.sampled_from(["Honor", "Ignore"]),
              "nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore"])})
spread = st.fixed_dictionaries(
    {"maxSkew": st.sampled_from([1, 1, 2, 0, -1, 100, "x"]), "topologyKey": topo_key,
     "whenUnsatisfiable": st.sampled_from(["DoNotSchedule", "ScheduleAnyway", "Bogus"])},
    optional={"labelSelector": label_selector,
              "minDomains": st.sampled_from([None, 0, 1, 3, 10]),
              "nodeAffinityPolicy": st.sampled_from(["Honor", "Ignore", "Bogus"]),
              "nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore"]),
              "matchLabelKeys": st.lists(label_key, max_size=2)})

GARBAGE = st.sampled_from([None, "oops", 42, [], {}, ["x"], {"a": {"b": 1}}, True, 1.5])
CORRUPTIBLE = ["spec", "spec.containers", "spec.initContainers", "spec.tolerations", "spec.affinity",
               "spec.nodeSelector", "spec.topologySpreadConstraints", "metadata", "metadata.labels",
               "spec.overhead", "spec.priority", "spec.schedulerName", "spec.containers.0",
               "spec.containers.0.resources", "spec.containers.0.resources.requests", "spec.hostNetwork",
               "spec.affinity.nodeAffinity", "spec.affinity.podAntiAffinity", "spec.resources"]


@st.composite
def pod_spec(draw, i):
    meta = {"name": f"p{i}", "namespace": draw(st.sampled_from(["default", "other"])), "uid": f"uid-{i}",
            "labels": draw(labels)}
    many = draw(st.integers(0, 12))
    if many == 0:  # thousands of labels
        meta["labels"].update({f"bulk.example.com/k{j}": str(j) for j in range(draw(st.integers(1000, 3000)))})
    strict = draw(st.integers(0, 9)) < 7  # mostly what the apiserver accepts; the rest raw-dict junk
    spec = {"schedulerName": SCHED,
            "containers": draw(st.lists(container(strict=strict), min_size=0, max_size=3)) or
            ([] if draw(st.integers(0, 20)) == 0 else [{"name": "c", "image": "pause"}])}
    opt = draw(st.fixed_dictionaries({}, optional={
        "initContainers": st.lists(container(init=True, strict=strict), max_size=3),
        "nodeSelector": st.dictionaries(label_key, label_val, max_size=2),
        "affinity": valid_affinity if strict else affinity,
        "tolerations": st.lists(valid_toleration if strict else toleration, max_size=4),
        "topologySpreadConstraints": st.lists(valid_spread if strict else spread, max_size=3),
        "overhead": valid_resource_list if strict else resource_list,
        "priority": st.sampled_from([0, 1000, -5, 2**31] + ([] if strict else ["high", {}])),
        "hostNetwork": st.booleans(),
        "resources": st.fixed_dictionaries({}, optional={"requests": valid_resource_list if strict else resource_list}),
    }))
    spec.update(opt)
    if opt.get("initContainers") and draw(st.booleans()):
        # an init container bigger than all app containers together
        spec["initContainers"][0]["resources"] = {"requests": {"cpu": "3", "memory": "6Gi"}}
    if draw(st.integers(0, 4)) == 0:  # duplicate host ports within one pod
        spec["containers"] = spec["containers"] + [
            {"name": "hp1", "image": "pause", "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "hp2", "image": "pause", "ports": [{"containerPort": 81, "hostPort": 8080}]}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": "Pending"}}
    if not strict and draw(st.booleans()):  # a raw dict with a wrong type somewhere
        path = draw(st.sampled_from(CORRUPTIBLE)).split(".")
        target = pod
        for part in path[:-1]:
            target = target[int(part)] if isinstance(target, list) else target.get(part) if isinstance(target, dict) else None
            if target is None or (isinstance(target, list) and not target):
                break
        else:
            last = path[-1]
            if isinstance(target, dict):
                target[last] = draw(GARBAGE)
            elif isinstance(target, list) and target and last.isdigit():
                target[0] = draw(GARBAGE)
    return pod


@st.composite
def batch(draw, min_size=9, max_size=14):
    n = draw(st.integers(min_size, max_size))
    return [draw(pod_spec(i)) for i in range(n)]


# ---- specs the apiserver accepts (end to end) --------------------------------------------------
GROUP = "bad.e2e/group"  # one value per template: every replica carries it, nothing else does
IMAGE = "registry.k8s.io/pause:3.10"
RUNTIME_CLASS = "with-overhead"  # the e2e test creates it (overhead.podFixed); admission copies it

int_qty = st.sampled_from(["0", "1", "2", "3", "1e3", "100000", "999999999", "9223372036854775807", 1, 0, 64])
page_qty = {"hugepages-2Mi": st.sampled_from(["0", "2Mi", "64Mi", "1Gi", "4Ei"]),
            "hugepages-1Gi": st.sampled_from(["0", "1Gi", "2Gi", "4Ei"])}
api_topo_key = st.sampled_from([Z, "kubernetes.io/hostname", "missing-key", "rank"])
# label values must start and end with an alphanumeric: "-3" is the engine test's own oddity
api_labels = st.dictionaries(label_key, label_val.filter(lambda v: v != "-3"), max_size=4)


def _extended(name: str) -> bool:
    return "/" in name or name.startswith("hugepages-")


@st.composite
def api_resources(draw, sloppy=False):
    """requests from the engine's valid_resource_list; extended resources and hugepages get whole
    quantities and limits equal to requests, as the apiserver insists (unless sloppy)."""
    req = draw(valid_resource_list)
    if not sloppy:
        for k in list(req):
            if _extended(k):
                req[k] = draw(page_qty[k] if k in page_qty else int_qty)
        if any(k.startswith("hugepages-") for k in req) and not ({"cpu", "memory"} & set(req)):
            req["cpu"] = draw(good_qty)  # hugepages require cpu or memory
    limits = {k: v for k, v in req.items() if _extended(k) and not sloppy}
    if draw(st.integers(0, 3)) == 0:  # cpu / memory limits too (requests == limits: Guaranteed)
        limits.update({k: v for k, v in req.items() if k in ("cpu", "memory")})
    out = {"requests": req} if req else {}
    if limits:
        out["limits"] = limits
        if draw(st.integers(0, 5)) == 0:  # limits only: the apiserver defaults requests to them
            out = {"limits": {**req, **limits}}
    return out


@st.composite
def api_container(draw, name, init=False, sloppy=False):
    c = {"name": name, "image": IMAGE}
    if draw(st.integers(0, 4)):
        c["resources"] = draw(api_resources(sloppy))
    if draw(st.integers(0, 3)) == 0:
        c["ports"] = draw(st.lists(valid_port, max_size=2))
    if init and draw(st.booleans()):
        c["restartPolicy"] = "Always"  # a sidecar
    return c


@st.composite
def api_expr(draw, keys=label_key, ops=("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")):
    """A selector requirement with the values its operator needs (Gt/Lt: one integer)."""
    e = {"key": draw(keys), "operator": draw(st.sampled_from(ops))}
    if e["operator"] in ("In", "NotIn"):
        e["values"] = draw(st.lists(st.sampled_from(["a", "b", "5", "10", "abc", "", "1e3", "ssd", "n0"]),
                                    min_size=1, max_size=3, unique=True))
    elif e["operator"] in ("Gt", "Lt"):
        e["values"] = [draw(st.sampled_from(["5", "10", "0", "99999"]))]  # "-3" is not a label value
    return e


api_field_expr = st.fixed_dictionaries({"key": st.just("metadata.name"), "operator": st.sampled_from(["In", "NotIn"]),
                                        "values": st.lists(st.sampled_from(["n0", "n2", "nx"]), min_size=1, max_size=1)})
# an empty term matches no node: one more way to be impossible
api_node_term = st.fixed_dictionaries({}, optional={"matchExpressions": st.lists(api_expr(), max_size=3),
                                                    "matchFields": st.lists(api_field_expr, max_size=1)})
api_node_affinity = st.fixed_dictionaries({}, optional={
    "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries(
        {"nodeSelectorTerms": st.lists(api_node_term, min_size=1, max_size=3)}),
    "preferredDuringSchedulingIgnoredDuringExecution": st.lists(st.fixed_dictionaries(
        {"weight": st.integers(1, 100), "preference": api_node_term}), max_size=2)})
_sel_ops = ("In", "NotIn", "Exists", "DoesNotExist")
api_selector = st.one_of(
    st.none(), st.just({}),
    st.fixed_dictionaries({}, optional={"matchLabels": api_labels,
                                        "matchExpressions": st.lists(api_expr(ops=_sel_ops), max_size=2)}))


@st.composite
def api_pod_term(draw, namespaces):
    t = {"topologyKey": draw(api_topo_key)}
    sel = draw(api_selector)
    if sel is not None:
        t["labelSelector"] = sel
    more = draw(st.fixed_dictionaries({}, optional={
        "namespaces": st.lists(st.sampled_from(["default", *namespaces]), max_size=2, unique=True),
        "namespaceSelector": api_selector.filter(lambda s: s is not None),
        "matchLabelKeys": st.lists(label_key, max_size=1)}))
    t.update(more)
    return t


def _acceptable(spec: dict) -> None:
    """Undo what the apiserver would refuse in a drawn spec (the sloppy templates keep it):
    duplicate host ports, duplicate spread (topologyKey, whenUnsatisfiable) pairs, matchLabelKeys
    without a selector or overlapping it, container cpu/memory/hugepages next to pod-level requests."""
    seen_ports = set()
    for c in spec.get("initContainers", []) + spec["containers"]:
        ports = []
        for p in c.get("ports", ()):
            key = (p.get("hostPort"), p.get("protocol", "TCP"))
            if p.get("hostPort") and key in seen_ports:
                continue
            seen_ports.add(key)
            if spec.get("hostNetwork") and p.get("hostPort"):
                p = {**p, "hostPort": p["containerPort"]}  # host network: the two must agree
            ports.append(p)
        if "ports" in c:
            c["ports"] = ports
        if "resources" in spec:  # pod-level requests must cover the containers': leave them none
            for part in c.get("resources", {}).values():
                for k in [k for k in part if k in ("cpu", "memory") or k.startswith("hugepages-")]:
                    del part[k]  # (hugepages would need a container cpu or memory request)
    pairs = set()
    spread = []
    for t in spec.get("topologySpreadConstraints", ()):
        if (t["topologyKey"], t["whenUnsatisfiable"]) not in pairs:
            pairs.add((t["topologyKey"], t["whenUnsatisfiable"]))
            spread.append(t)
    if "topologySpreadConstraints" in spec:
        spec["topologySpreadConstraints"] = spread
    for kind in spec.get("affinity", {}).values():
        if not isinstance(kind, dict) or "nodeSelectorTerms" in kind:
            continue
        terms = list(kind.get("requiredDuringSchedulingIgnoredDuringExecution", ()))
        terms += [w["podAffinityTerm"] for w in kind.get("preferredDuringSchedulingIgnoredDuringExecution", ())
                  if isinstance(w, dict) and "podAffinityTerm" in w]
        for t in terms:
            if not isinstance(t, dict) or "matchLabelKeys" not in t:
                continue
            sel = t.get("labelSelector")
            used = set((sel or {}).get("matchLabels", {})) | {e["key"] for e in (sel or {}).get("matchExpressions", ())}
            t["matchLabelKeys"] = [k for k in t["matchLabelKeys"] if sel and k not in used]


@st.composite
def api_template(draw, gid: str, namespaces: tuple[str, ...]):
    """One Deployment-like group: (namespace, labels, spec, replicas). Shaped for a placement check
    on the final state (cluster_scheduler/check.py judges one snapshot, not the order of placements):
    - hard (DoNotSchedule) spread constraints select the group label only, and every replica
      carries the same constraints, so no unconstrained pod can pile into a domain;
    - required pod affinity terms never match the pod's own group (`GROUP NotIn [gid]`), so the
      'first pod of a self-affine group may go anywhere' rule, judged on the final state, never
      applies. Soft terms, anti-affinity and ScheduleAnyway spread use free selectors."""
    sloppy = draw(st.integers(0, 11)) == 0  # left as drawn: the apiserver may well reject it
    lab = dict(draw(labels if sloppy else api_labels))
    lab[GROUP] = gid
    bulk = draw(st.integers(0, 12)) == 0
    if bulk:  # thousands of labels
        lab.update({f"bulk.example.com/k{j}": str(j) for j in range(draw(st.integers(1000, 3000)))})
    n_app = draw(st.integers(0, 3)) or 1
    spec: dict = {"schedulerName": SCHED,
                  "containers": [draw(api_container(f"c{j}", sloppy=sloppy)) for j in range(n_app)]}
    hard_spread = st.fixed_dictionaries(
        {"maxSkew": st.integers(1, 3), "topologyKey": api_topo_key, "whenUnsatisfiable": st.just("DoNotSchedule"),
         "labelSelector": st.just({"matchLabels": {GROUP: gid}})},
        optional={"minDomains": st.sampled_from([1, 2, 3, 10]),
                  "nodeAffinityPolicy": st.sampled_from(["Honor", "Ignore"]),
                  "nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore"])})
    soft_spread = st.fixed_dictionaries(
        {"maxSkew": st.integers(1, 5), "topologyKey": api_topo_key, "whenUnsatisfiable": st.just("ScheduleAnyway"),
         "labelSelector": api_selector.filter(lambda s: s is not None)},
        optional={"nodeTaintsPolicy": st.sampled_from(["Honor", "Ignore"])})
    weighted = st.fixed_dictionaries({"weight": st.integers(1, 100), "podAffinityTerm": api_pod_term(namespaces)})
    pod_affinity = st.fixed_dictionaries({}, optional={
        "requiredDuringSchedulingIgnoredDuringExecution": st.lists(api_pod_term(namespaces), min_size=1, max_size=2),
        "preferredDuringSchedulingIgnoredDuringExecution": st.lists(weighted, max_size=2)})
    toleration = st.one_of(valid_toleration, st.fixed_dictionaries(
        {"operator": st.just("Exists"), "effect": st.just("NoExecute"),
         "tolerationSeconds": st.sampled_from([0, 300, -1])},
        optional={"key": st.sampled_from(["flaky", "dedicated", "other"])}))
    opt = draw(st.fixed_dictionaries({}, optional={
        "initContainers": st.integers(1, 3).flatmap(
            lambda n: st.tuples(*[api_container(f"i{j}", init=True, sloppy=sloppy) for j in range(n)]).map(list)),
        "nodeSelector": (labels if sloppy else api_labels).map(lambda d: dict(list(d.items())[:2])),
        "affinity": st.fixed_dictionaries({}, optional={
            "nodeAffinity": api_node_affinity, "podAffinity": pod_affinity, "podAntiAffinity": pod_affinity}),
        "tolerations": st.lists(toleration, max_size=4),
        "topologySpreadConstraints": st.lists(st.one_of(hard_spread, soft_spread), min_size=1, max_size=3),
        "priority": st.sampled_from([0, 1000, -5, 2**31 - 1, -(2**31)]),
        "hostNetwork": st.booleans(),
        "runtimeClassName": st.sampled_from([RUNTIME_CLASS, "no-such-runtime-class"] if sloppy else [RUNTIME_CLASS]),
        "resources": st.fixed_dictionaries({"requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), good_qty,
                                                                        min_size=1)}),
    }))
    spec.update(opt)
    if opt.get("initContainers") and draw(st.booleans()):
        # an init container bigger than all app containers together
        spec["initContainers"][0]["resources"] = {"requests": {"cpu": "3", "memory": "6Gi"}}
    if "affinity" in spec:  # drawn values can be shared objects (st.just): never mutate them
        spec["affinity"] = copy.deepcopy(spec["affinity"])
    for term in (spec.get("affinity", {}).get("podAffinity", {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution", ())):
        if "labelSelector" in term:
            term["labelSelector"].setdefault("matchExpressions", []).append(
                {"key": GROUP, "operator": "NotIn", "values": [gid]})
    if not sloppy:
        _acceptable(spec)
    if sloppy and draw(st.booleans()):  # duplicate host ports within one pod: rejected
        spec["containers"] += [
            {"name": "hp1", "image": IMAGE, "ports": [{"containerPort": 80, "hostPort": 8080}]},
            {"name": "hp2", "image": IMAGE, "ports": [{"containerPort": 81, "hostPort": 8080}]}]
    replicas = draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4, 5, 8, 12, 20]))
    if bulk:
        replicas = min(replicas, 3)
    return draw(st.sampled_from(namespaces)), lab, spec, replicas
