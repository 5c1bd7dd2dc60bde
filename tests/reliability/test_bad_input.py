"""Odd and broken pod specs through parse_pod and Engine.schedule: never an exception; every pod
either lands on a node that an independent check accepts, or is refused with a message.

Hypothesis builds specs the apiserver would accept but that stress the edges (huge or zero
requests, unknown extended resources, impossible affinity, conflicting spread constraints,
tolerations of every shape, thousands of labels, empty selectors, Gt/Lt on non-numbers, duplicate
host ports, init containers larger than the app) and raw dicts it would not (wrong types, bad
quantities, unknown operators). Each example schedules a batch of pods on a fresh 6-node cluster,
so more than 1,000 pods go through per run.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from cluster_scheduler.check import TOPOLOGY_SPREAD, check_placement, effective_requests, parse_quantity
from cluster_scheduler.engine import Engine
from cluster_scheduler.model.parse import parse_node, parse_pod

pytestmark = pytest.mark.timeout(600)

SCHED = "cluster-scheduler"
EXAMPLES = 120
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
def batch(draw):
    n = draw(st.integers(MIN_BATCH, 14))
    return [draw(pod_spec(i)) for i in range(n)]


# ---- the independent checks -------------------------------------------------------------------
def _alloc(node: dict) -> dict[str, int]:
    out = {}
    for k, v in node["status"]["allocatable"].items():
        q = parse_quantity(v)
        out[k] = int(q * 1000) if k == "cpu" else int(q)
    return out


def _hand_capacity_check(placed: dict[str, list[dict]]) -> list[str]:
    """Per node: pod count and every requested resource within allocatable, computed here with
    the checker's request arithmetic, not the engine's."""
    problems = []
    nodes = {n["metadata"]["name"]: n for n in NODES}
    for node, pods in placed.items():
        alloc = _alloc(nodes[node])
        used: dict[str, int] = defaultdict(int)
        for p in pods:
            for k, v in effective_requests(p).items():
                used[k] += v
        if len(pods) > alloc.get("pods", 0):
            problems.append(f"{node}: {len(pods)} pods > {alloc.get('pods')}")
        for k, v in used.items():
            if v > 0 and v > alloc.get(k, 0):
                problems.append(f"{node}: {k} {v} > {alloc.get(k, 0)}")
    return problems


STATS = {"pods": 0, "bound": 0, "refused": 0, "parse_errors": 0}


def _compact(pods: list[dict]) -> str:
    """The batch as JSON with bulk label sets summarised, for a readable failure note."""
    out = []
    for p in pods:
        q = copy.deepcopy(p)
        lab = q.get("metadata", {}).get("labels") if isinstance(q.get("metadata"), dict) else None
        if isinstance(lab, dict) and len(lab) > 20:
            q["metadata"]["labels"] = {k: v for k, v in lab.items() if not k.startswith("bulk.")}
            q["metadata"]["labels"]["<bulk labels>"] = str(len(lab))
        out.append(q)
    return json.dumps(out, default=repr)


def run_batch(pods: list[dict]) -> None:
    try:
        _run_batch(pods)
    except Exception as exc:
        exc.add_note("batch (compact JSON): " + _compact(pods))
        raise


def _run_batch(pods: list[dict]) -> None:
    engine = Engine()
    for n in NODES:
        info = parse_node(n)
        assert info.error is None, info.error
        engine.set_node(info)
    originals = [copy.deepcopy(p) for p in pods]
    infos = [parse_pod(p) for p in pods]  # must not raise
    assert pods == originals, "parse_pod mutated its input"
    results = engine.schedule(infos, k=2)  # must not raise
    assert len(results) == len(pods)
    placed: dict[str, list[dict]] = defaultdict(list)
    bound_dicts = []
    for pod, info, res in zip(pods, infos, results):
        STATS["pods"] += 1
        assert res.uid == info.uid
        if info.key is None:
            STATS["parse_errors"] += 1
            assert not res.candidates
        if res.candidates:
            names = [n for n, _ in res.candidates]
            assert len(set(names)) == len(names) and all(n in {x["metadata"]["name"] for x in NODES} for n in names)
            node = names[0]
            STATS["bound"] += 1
            placed[node].append(pod)
            b = copy.deepcopy(pod)
            if not isinstance(b.get("spec"), dict):  # an absent/null spec reads as an empty one
                b["spec"] = {}
            b["spec"]["nodeName"] = node
            b["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
            bound_dicts.append(b)
        else:
            STATS["refused"] += 1
            msg = res.message()
            assert isinstance(msg, str) and msg.strip(), f"no reason for {info.uid}: {res}"
    problems = _hand_capacity_check(placed)
    assert not problems, problems
    # The checker judges topology spread on the final state, but upstream checks a pod's spread
    # constraints only when that pod is placed: a later pod without the constraint may still land
    # in its domain. So check each placement on the state right after it, and count a spread
    # violation only against the pod just placed (all other kinds of violation count whenever seen).
    for i, b in enumerate(bound_dicts):
        report = check_placement(NODES, bound_dicts[:i + 1], scheduler_name=SCHED)
        meta = b.get("metadata") if isinstance(b.get("metadata"), dict) else {}
        me = f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
        bad = [v for v in report.violations if v.kind != TOPOLOGY_SPREAD or v.pod == me]
        assert not bad, report.summary()


def test_bad_input_never_crashes_and_is_placed_validly_or_explained():
    # No shrinking: examples carry thousands of labels and shrinking them takes many minutes; a
    # failure instead carries the whole batch as a compact JSON note (bulk labels summarised).
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example, HealthCheck.filter_too_much])
    @given(batch())
    def prop(pods):
        run_batch(pods)

    for k in STATS:
        STATS[k] = 0
    prop()
    print("bad-input stats:", STATS)
    assert STATS["pods"] >= 1000, STATS
    # the generator really produces both outcomes (else it would test nothing)
    assert STATS["bound"] > 100 and STATS["refused"] > 100 and STATS["parse_errors"] > 20, STATS


def test_hand_check_catches_overcommit():
    """The capacity re-check itself must be able to fail."""
    big = {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}}
    assert _hand_capacity_check({"n1": [big]}) == ["n1: cpu 3000 > 2000"]
    assert _hand_capacity_check({"n0": [big]}) == []


# ---- minimal cases hypothesis found (engine bugs, fixed in baa3431): regression tests ----------
def _one_shot(pods: list[dict]):
    engine = Engine()
    for n in NODES:
        engine.set_node(parse_node(n))
    return engine.schedule([parse_pod(p) for p in pods], k=1)


def _pod(name: str, labels: dict, **spec) -> dict:
    spec.setdefault("containers", [{"name": "c", "image": "pause"}])
    return {"metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
            "spec": {"schedulerName": SCHED, **spec}}


def test_schedule_anyway_spread_on_a_key_no_node_has():
    spread = [{"maxSkew": 1, "topologyKey": "missing-key", "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    res = _one_shot([_pod("a", {"app": "x"}, topologySpreadConstraints=spread)])
    # upstream: a soft constraint on a key no node has scores nothing; the pod still fits
    assert res[0].candidates


def test_hard_spread_skew_holds_next_to_tainted_cordoned_notready_nodes():
    spread = [{"maxSkew": 1, "topologyKey": Z, "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "x"}}}]
    res = _one_shot([_pod("p7", {"app": "x"}), _pod("p8", {"app": "x"}, topologySpreadConstraints=spread)])
    first = res[0].candidates[0][0]
    placed = [dict(_pod("p7", {"app": "x"}), spec={**_pod("p7", {"app": "x"})["spec"], "nodeName": first})]
    if res[1].candidates:
        p8 = _pod("p8", {"app": "x"}, topologySpreadConstraints=spread)
        p8["spec"]["nodeName"] = res[1].candidates[0][0]
        placed.append(p8)
    report = check_placement(NODES, placed, scheduler_name=SCHED)
    assert report.ok, report.summary()
