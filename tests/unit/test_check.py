"""The independent placement check: each invariant broken once, and caught with the right kind."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import pytest

from cluster_scheduler import check
from cluster_scheduler.check import (
    CheckReport,
    check_placement,
    effective_requests,
    parse_quantity,
)
from cluster_scheduler.workload import load_workload
from tests.manifests import pod_group

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORKLOADS = Path(os.environ.get("CLUSTER_SCHEDULER_SHARED", ROOT.parent / "shared")) / "workloads"
needs_shared = pytest.mark.skipif(not SHARED_WORKLOADS.is_dir(),
                                  reason=f"shared workloads not found at {SHARED_WORKLOADS}")

SCHED = "cluster-scheduler"
ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


# ---- builders: apiserver-shaped dicts -------------------------------------------------------------

def node(name, cpu="4", memory="16Gi", pods="10", labels=None, taints=None, unschedulable=False,
         ready="True", extra=None):
    alloc = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    n = {
        "metadata": {"name": name, "labels": {HOST: name, **(labels or {})}},
        "spec": {},
        "status": {"allocatable": alloc, "capacity": dict(alloc),
                   "conditions": [{"type": "Ready", "status": ready}] if ready else []},
    }
    if taints:
        n["spec"]["taints"] = taints
    if unschedulable:
        n["spec"]["unschedulable"] = True
    return n


def pod(name, on=None, cpu="100m", memory="64Mi", labels=None, ns="default", sched=SCHED,
        unschedulable=False, **spec):
    p = {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}",
                     "labels": labels or {}},
        "spec": {"schedulerName": sched,
                 "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu,
                                                                         "memory": memory}}}],
                 **spec},
        "status": {"phase": "Pending"},
    }
    if on:
        p["spec"]["nodeName"] = on
        p["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    elif unschedulable:
        p["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                      "reason": "Unschedulable", "message": "0/3 nodes"}]
    return p


def kinds(report: CheckReport) -> list[str]:
    return sorted(v.kind for v in report.violations)


def anti(selector, key=HOST):
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": key, "labelSelector": {"matchLabels": selector}}]}}


def affinity(selector, key):
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": key, "labelSelector": {"matchLabels": selector}}]}}


def spread(selector, max_skew=1, key=ZONE, **extra):
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": selector}, **extra}]


def zones(*names_and_zones, labels=None, **kw):
    return [node(n, labels={ZONE: z, **(labels or {})}, **kw) for n, z in names_and_zones]


# ---- quantities and requests ----------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("500m", Fraction(1, 2)), ("2", Fraction(2)), ("1.5", Fraction(3, 2)), ("1Gi", Fraction(2**30)),
    ("128974848", Fraction(128974848)), ("129M", Fraction(129 * 10**6)), ("1e3", Fraction(1000)),
    ("5E-3", Fraction(5, 1000)), ("1E", Fraction(10**18)), (".5", Fraction(1, 2)), (4, Fraction(4)),
    ("100n", Fraction(100, 10**9)), ("0.5Ki", Fraction(512)),
])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "1.2.3", "5 Gi", "Gi", "1Q", True, None])
def test_parse_quantity_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_requests_round_up_like_the_scheduler():
    p = pod("p", cpu="0.0001", memory="0.5")
    assert effective_requests(p) == {"cpu": 1, "memory": 1}


def test_sidecar_init_and_overhead_arithmetic():
    p = {"spec": {
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}],
        "initContainers": [
            {"name": "side1", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}},
            {"name": "initA", "resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},
            {"name": "side2", "restartPolicy": "Always",
             "resources": {"requests": {"cpu": "300m"}}},
            {"name": "initB", "resources": {"requests": {"cpu": "800m", "memory": "2Gi"}}},
        ],
        "overhead": {"cpu": "100m", "memory": "10Mi"},
    }}
    # app + sidecars: 1000m / 1Gi+100Mi. Init steps: A = 200m+1000m = 1200m (150Mi),
    # B = 200m+300m+800m = 1300m (100Mi+2Gi). Max per resource, then overhead.
    mi = 2**20
    assert effective_requests(p) == {"cpu": 1300 + 100,
                                     "memory": 100 * mi + 2048 * mi + 10 * mi}


def test_limits_stand_in_for_missing_requests():
    p = {"spec": {"containers": [
        {"name": "a", "resources": {"limits": {"cpu": "2", "example.com/fpga": "1"},
                                    "requests": {"memory": "1Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "4"}}},
    ], "initContainers": [{"name": "i", "resources": {"limits": {"cpu": "3"}}}]}}
    assert effective_requests(p) == {"cpu": 3000, "memory": 2**30, "example.com/fpga": 1}


def test_pod_level_requests_replace_the_container_sum():
    p = {"spec": {"resources": {"requests": {"cpu": "3"}},
                  "containers": [{"name": "a", "resources": {"requests": {"cpu": "1",
                                                                          "memory": "1Gi"}}}]}}
    assert effective_requests(p) == {"cpu": 3000, "memory": 2**30}


# ---- a clean cluster ------------------------------------------------------------------------------

def test_clean_cluster_passes():
    nodes = zones(("n1", "a"), ("n2", "b"), ("n3", "c"))
    nodes.append(node("tainted", labels={ZONE: "c"},
                      taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                              {"key": "soft", "effect": "PreferNoSchedule"}]))
    nodes.append(node("cordoned", unschedulable=True))
    ported = [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
               "resources": {"requests": {"cpu": "100m"}}}]
    pods = [
        pod("sel", on="n1", nodeSelector={ZONE: "a"}),
        pod("aff", on="n2", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": ZONE, "operator": "NotIn",
                                                         "values": ["a"]}]}]}}}),
        pod("tol", on="tainted", tolerations=[{"key": "dedicated", "operator": "Equal",
                                               "value": "gpu", "effect": "NoSchedule"}]),
        pod("port1", on="n1", containers=ported),
        pod("port2", on="n2", containers=ported),
        pod("db1", on="n1", labels={"app": "db"}, affinity=anti({"app": "db"})),
        pod("db2", on="n2", labels={"app": "db"}, affinity=anti({"app": "db"})),
        pod("cache", on="n1", affinity=affinity({"app": "db"}, ZONE)),
        pod("s1", on="n1", labels={"app": "s"}, topologySpreadConstraints=spread({"app": "s"})),
        pod("s2", on="n2", labels={"app": "s"}, topologySpreadConstraints=spread({"app": "s"})),
        pod("s3", on="tainted", labels={"app": "s"}, topologySpreadConstraints=spread({"app": "s"}),
            tolerations=[{"operator": "Exists"}]),
        pod("s4", on="n3", labels={"app": "s"}, topologySpreadConstraints=spread({"app": "s"})),
        pod("big", unschedulable=True, cpu="100"),
        pod("foreign-pending", sched="someone-else"),
        pod("foreign-on-cordoned", on="cordoned", sched="someone-else"),
    ]
    events = [{"reason": "FailedScheduling", "metadata": {"namespace": "default"},
               "involvedObject": {"kind": "Pod", "namespace": "default", "name": "big",
                                  "uid": "uid-default-big"}}]
    report = check_placement(nodes, pods, scheduler_name=SCHED, events=events)
    assert report.violations == []
    assert report.ok
    assert (report.bound, report.unschedulable, report.pending_without_reason) == (12, 1, 0)
    assert report.pods_checked == 13 and report.nodes_checked == 5
    assert "OK" in report.summary()


# ---- invariant 1: capacity ------------------------------------------------------------------------

def test_cpu_over_allocatable():
    report = check_placement([node("n1", cpu="1")],
                             [pod("a", on="n1", cpu="600m"), pod("b", on="n1", cpu="500m")])
    assert kinds(report) == ["capacity"]
    v = report.violations[0]
    assert v.node == "n1" and "cpu" in v.message and "1100m" in v.message and "1000m" in v.message


def test_pod_count_over_allocatable():
    report = check_placement([node("n1", pods="2")], [pod(f"p{i}", on="n1") for i in range(3)])
    assert kinds(report) == ["capacity"] and "pods" in report.violations[0].message


def test_extended_resource_on_node_without_it():
    fpga = [{"name": "c", "resources": {"requests": {"example.com/fpga": "1"},
                                        "limits": {"example.com/fpga": "1"}}}]
    nodes = [node("plain"), node("fpga", extra={"example.com/fpga": "2"})]
    ok = check_placement(nodes, [pod("a", on="fpga", containers=fpga),
                                 pod("b", on="fpga", containers=fpga)])
    assert ok.ok
    bad = check_placement(nodes, [pod("a", on="plain", containers=fpga)])
    assert kinds(bad) == ["capacity"] and "example.com/fpga" in bad.violations[0].message


def test_init_container_peak_and_overhead_count_for_capacity():
    init = [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]
    nodes = [node("n1", cpu="2050m")]
    # alone: max(100m app, 2000m init) = 2000m fits; with a second 100m pod it does not
    assert check_placement(nodes, [pod("a", on="n1", initContainers=init)]).ok
    report = check_placement(nodes, [pod("a", on="n1", initContainers=init), pod("b", on="n1")])
    assert kinds(report) == ["capacity"] and "2100m" in report.violations[0].message
    over = check_placement(nodes, [pod("a", on="n1", initContainers=init,
                                       overhead={"cpu": "100m"})])
    assert kinds(over) == ["capacity"]


def test_finished_pods_hold_nothing():
    done = pod("done", on="n1", cpu="1")
    done["status"]["phase"] = "Succeeded"
    report = check_placement([node("n1", cpu="1")], [done, pod("b", on="n1", cpu="1")])
    assert report.ok and report.bound == 2


# ---- invariant 2: node rules ----------------------------------------------------------------------

def test_node_selector_violation():
    nodes = zones(("n1", "a"), ("n2", "b"))
    report = check_placement(nodes, [pod("p", on="n2", nodeSelector={ZONE: "a"})])
    assert kinds(report) == ["node_selector"] and report.violations[0].pod == "default/p"


@pytest.mark.parametrize("term, ok_on, bad_on", [
    ({"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a"]}]}, "n1", "n2"),
    ({"matchExpressions": [{"key": ZONE, "operator": "NotIn", "values": ["a"]}]}, "n2", "n1"),
    ({"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["3"]}]}, "n2", "n1"),
    ({"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["3"]}]}, "n1", "n2"),
    ({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}, "n2", "n1"),
    ({"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}, "n1", "n2"),
    ({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}, "n2", "n1"),
    ({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n2"]}]}, "n1", "n2"),
])
def test_required_node_affinity_operators(term, ok_on, bad_on):
    nodes = [node("n1", labels={ZONE: "a", "gen": "2"}),
             node("n2", labels={ZONE: "b", "gen": "5", "gpu": "yes"})]
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}
    assert check_placement(nodes, [pod("p", on=ok_on, affinity=aff)]).ok
    assert kinds(check_placement(nodes, [pod("p", on=bad_on, affinity=aff)])) == ["node_affinity"]


def test_node_affinity_terms_are_ored_and_an_empty_term_matches_nothing():
    nodes = zones(("n1", "a"), ("n2", "b"), ("n3", "c"))
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["b"]}]},
        {},
    ]}}}
    report = check_placement(nodes, [pod("p1", on="n1", affinity=aff), pod("p2", on="n2", affinity=aff),
                                     pod("p3", on="n3", affinity=aff)])
    assert kinds(report) == ["node_affinity"] and report.violations[0].pod == "default/p3"


@pytest.mark.parametrize("effect, tolerations, expect", [
    ("NoSchedule", None, ["taint"]),
    ("NoExecute", None, ["taint"]),
    ("PreferNoSchedule", None, []),
    ("NoSchedule", [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}], []),
    ("NoSchedule", [{"key": "k", "operator": "Equal", "value": "other"}], ["taint"]),
    ("NoSchedule", [{"key": "k", "operator": "Exists"}], []),
    ("NoExecute", [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}], ["taint"]),
    ("NoExecute", [{"operator": "Exists"}], []),
])
def test_taints(effect, tolerations, expect):
    nodes = [node("n1", taints=[{"key": "k", "value": "v", "effect": effect}])]
    extra = {"tolerations": tolerations} if tolerations else {}
    assert kinds(check_placement(nodes, [pod("p", on="n1", **extra)])) == expect


def test_cordoned_node():
    nodes = [node("n1", unschedulable=True)]
    assert kinds(check_placement(nodes, [pod("p", on="n1")])) == ["cordoned"]
    # a pod that tolerates the unschedulable taint (as DaemonSet pods do) may run there
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert check_placement(nodes, [pod("p", on="n1", tolerations=tol)]).ok
    # a pod of another scheduler is not ours to judge
    assert check_placement(nodes, [pod("p", on="n1", sched="x")], scheduler_name=SCHED).ok


@pytest.mark.parametrize("ready", ["False", "Unknown"])
def test_not_ready_node(ready):
    nodes = [node("n1", ready=ready)]
    report = check_placement(nodes, [pod("p", on="n1")])
    assert kinds(report) == ["not_ready"]
    taint = "node.kubernetes.io/not-ready" if ready == "False" else "node.kubernetes.io/unreachable"
    assert check_placement(nodes, [pod("p", on="n1", tolerations=[
        {"key": taint, "operator": "Exists", "effect": "NoSchedule"}])]).ok


def ported(port, ip=None, protocol=None):
    p = {"containerPort": port, "hostPort": port}
    if ip:
        p["hostIP"] = ip
    if protocol:
        p["protocol"] = protocol
    return [{"name": "c", "ports": [p], "resources": {"requests": {"cpu": "10m"}}}]


@pytest.mark.parametrize("a, b, clash", [
    (ported(80), ported(80), True),
    (ported(80), ported(81), False),
    (ported(80), ported(80, protocol="UDP"), False),
    (ported(80, protocol="TCP"), ported(80), True),  # TCP is the default protocol
    (ported(80, ip="10.0.0.1"), ported(80, ip="10.0.0.2"), False),
    (ported(80, ip="10.0.0.1"), ported(80, ip="10.0.0.1"), True),
    (ported(80, ip="10.0.0.1"), ported(80, ip="0.0.0.0"), True),
    (ported(80), ported(80, ip="10.0.0.2"), True),  # empty hostIP is 0.0.0.0
])
def test_host_ports(a, b, clash):
    report = check_placement([node("n1")], [pod("a", on="n1", containers=a),
                                            pod("b", on="n1", containers=b)])
    assert kinds(report) == (["host_port"] if clash else [])


def test_host_ports_of_sidecars_count_and_other_nodes_do_not_clash():
    side = [{"name": "s", "restartPolicy": "Always", "ports": [{"containerPort": 9, "hostPort": 9}]}]
    plain_init = [{"name": "i", "ports": [{"containerPort": 9, "hostPort": 9}]}]
    nodes = [node("n1"), node("n2")]
    assert kinds(check_placement(nodes, [pod("a", on="n1", initContainers=side),
                                         pod("b", on="n1", containers=ported(9))])) == ["host_port"]
    assert check_placement(nodes, [pod("a", on="n1", initContainers=plain_init),
                                   pod("b", on="n1", containers=ported(9))]).ok
    assert check_placement(nodes, [pod("a", on="n1", containers=ported(9)),
                                   pod("b", on="n2", containers=ported(9))]).ok


@pytest.mark.parametrize("a, b, clash", [
    ({"gcePersistentDisk": {"pdName": "pd1"}}, {"gcePersistentDisk": {"pdName": "pd1", "readOnly": True}}, True),
    ({"gcePersistentDisk": {"pdName": "pd1", "readOnly": True}},
     {"gcePersistentDisk": {"pdName": "pd1", "readOnly": True}}, False),
    ({"gcePersistentDisk": {"pdName": "pd1"}}, {"gcePersistentDisk": {"pdName": "pd2"}}, False),
    ({"awsElasticBlockStore": {"volumeID": "v", "readOnly": True}},
     {"awsElasticBlockStore": {"volumeID": "v", "readOnly": True}}, True),
    ({"iscsi": {"iqn": "q", "targetPortal": "t", "lun": 0}}, {"iscsi": {"iqn": "q", "targetPortal": "t", "lun": 0}}, True),
    ({"rbd": {"monitors": ["m1", "m2"], "image": "i"}}, {"rbd": {"monitors": ["m2"], "image": "i", "pool": "rbd"}}, True),
    ({"rbd": {"monitors": ["m1"], "image": "i"}}, {"rbd": {"monitors": ["m2"], "image": "i"}}, False),
])
def test_inline_disks_mounted_twice_on_a_node(a, b, clash):
    nodes = [node("n1"), node("n2")]
    together = [pod("a", on="n1", volumes=[{"name": "d", **a}]), pod("b", on="n1", volumes=[{"name": "d", **b}])]
    assert kinds(check_placement(nodes, together)) == (["disk_conflict"] if clash else [])
    apart = [pod("a", on="n1", volumes=[{"name": "d", **a}]), pod("b", on="n2", volumes=[{"name": "d", **b}])]
    assert check_placement(nodes, apart).ok


# ---- invariant 2: inter-pod affinity --------------------------------------------------------------

def test_pod_anti_affinity_own_term():
    nodes = zones(("n1", "a"), ("n2", "a"))
    ok = check_placement(nodes, [pod("d1", on="n1", labels={"app": "db"}, affinity=anti({"app": "db"})),
                                 pod("d2", on="n2", labels={"app": "db"}, affinity=anti({"app": "db"}))])
    assert ok.ok
    bad = check_placement(nodes, [pod("d1", on="n1", labels={"app": "db"}, affinity=anti({"app": "db"})),
                                  pod("d2", on="n1", labels={"app": "db"}, affinity=anti({"app": "db"}))])
    assert kinds(bad) == ["pod_anti_affinity", "pod_anti_affinity"]
    # zone-wide anti-affinity: two nodes in one zone are one domain
    zone_bad = check_placement(nodes, [
        pod("d1", on="n1", labels={"app": "db"}, affinity=anti({"app": "db"}, ZONE)),
        pod("x", on="n2", labels={"app": "db"})])
    assert kinds(zone_bad) == ["pod_anti_affinity"] and "default/x" in zone_bad.violations[0].message


def test_pod_anti_affinity_is_symmetric():
    nodes = [node("n1"), node("n2")]
    # an existing pod of another scheduler repels ours: ours broke the rule by landing there
    guard = pod("guard", on="n1", sched="other", affinity=anti({"app": "web"}))
    report = check_placement(nodes, [guard, pod("web", on="n1", labels={"app": "web"})],
                             scheduler_name=SCHED)
    assert kinds(report) == ["pod_anti_affinity"]
    assert report.violations[0].pod == "default/web" and "default/guard" in report.violations[0].message
    assert check_placement(nodes, [guard, pod("web", on="n2", labels={"app": "web"})],
                           scheduler_name=SCHED).ok
    # the other direction: ours has the term, the matching pod is foreign
    mine = pod("mine", on="n1", affinity=anti({"app": "web"}))
    theirs = pod("theirs", on="n1", sched="other", labels={"app": "web"})
    assert kinds(check_placement(nodes, [theirs, mine], scheduler_name=SCHED)) == ["pod_anti_affinity"]


def test_anti_affinity_respects_namespaces():
    nodes = [node("n1")]
    a = pod("a", on="n1", ns="one", affinity=anti({"app": "x"}))
    b = pod("b", on="n1", ns="two", labels={"app": "x"})
    assert check_placement(nodes, [a, b]).ok  # the term defaults to the owner's namespace
    a_all = pod("a", on="n1", ns="one", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": HOST, "labelSelector": {"matchLabels": {"app": "x"}},
             "namespaceSelector": {}}]}})
    assert kinds(check_placement(nodes, [a_all, b])) == ["pod_anti_affinity"]
    a_sel = pod("a", on="n1", ns="one", affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": HOST, "labelSelector": {"matchLabels": {"app": "x"}},
             "namespaceSelector": {"matchLabels": {"team": "red"}}}]}})
    assert check_placement(nodes, [a_sel, b], namespace_labels={"two": {"team": "blue"}}).ok
    assert not check_placement(nodes, [a_sel, b], namespace_labels={"two": {"team": "red"}}).ok


def test_pod_affinity():
    rack = "rack"
    nodes = [node("n1", labels={rack: "r1"}), node("n2", labels={rack: "r1"}),
             node("n3", labels={rack: "r2"}), node("nolabel")]
    db = pod("db", on="n1", labels={"app": "db"})
    ok = check_placement(nodes, [db, pod("c", on="n2", affinity=affinity({"app": "db"}, rack))])
    assert ok.ok
    bad = check_placement(nodes, [db, pod("c", on="n3", affinity=affinity({"app": "db"}, rack))])
    assert kinds(bad) == ["pod_affinity"] and "rack=r2" in bad.violations[0].message
    no_key = check_placement(nodes, [db, pod("c", on="nolabel", affinity=affinity({"app": "db"}, rack))])
    assert kinds(no_key) == ["pod_affinity"]
    # no db anywhere and the pod does not match itself: nothing can satisfy it
    alone = check_placement(nodes, [pod("c", on="n1", affinity=affinity({"app": "db"}, rack))])
    assert kinds(alone) == ["pod_affinity"]


def test_pod_affinity_first_pod_of_a_self_affine_group():
    nodes = [node("n1"), node("n2")]
    term = affinity({"app": "team"}, HOST)
    first = pod("t1", on="n1", labels={"app": "team"}, affinity=term)
    assert check_placement(nodes, [first]).ok  # matches itself, no other pod matches: allowed
    together = [first, pod("t2", on="n1", labels={"app": "team"}, affinity=term)]
    assert check_placement(nodes, together).ok
    split = [first, pod("t2", on="n2", labels={"app": "team"}, affinity=term)]
    assert kinds(check_placement(nodes, split)) == ["pod_affinity", "pod_affinity"]


def test_pod_affinity_with_a_partner_preempted_since_is_judged_as_it_was():
    """The pod may have been placed beside a partner preempted later (a victim, as it was): not a
    breach. It is flagged only if it breaks the rule with and without the victims, so a first pod
    of a self-affine group placed after a matching victim left is not flagged either."""
    rack = "rack"
    nodes = [node("n1", labels={rack: "r1"}), node("n2", labels={rack: "r2"})]
    db = pod("db", on="n1", labels={"app": "db"}, priority=1)
    high = pod("high", on="n2", priority=100)
    c = pod("c", on="n1", affinity=affinity({"app": "db"}, rack))
    assert kinds(check_placement(nodes, [c, high])) == ["pod_affinity"]
    assert check_placement(nodes, [c, high], preemptions=[(db, high)]).ok
    # a victim elsewhere does not excuse it
    far = pod("db", on="n2", labels={"app": "db"}, priority=1)
    assert kinds(check_placement(nodes, [c, high], preemptions=[(far, high)])) == ["pod_affinity"]
    # the first of a self-affine group, placed after a matching victim in another rack went
    term = affinity({"app": "db"}, rack)
    first = pod("t1", on="n1", labels={"app": "db"}, affinity=term)
    assert check_placement(nodes, [first, high], preemptions=[(far, high)]).ok


# ---- invariant 2: topology spread -----------------------------------------------------------------

def spread_pods(placement, constraint=None, **kw):
    constraint = constraint or spread({"app": "s"})
    return [pod(f"s{i}", on=n, labels={"app": "s"}, topologySpreadConstraints=constraint, **kw)
            for i, n in enumerate(placement)]


def test_spread_skew():
    nodes = zones(("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"))
    assert check_placement(nodes, spread_pods(["a1", "b1", "c1", "a2"])).ok  # 2,1,1
    assert check_placement(nodes, spread_pods(["a1", "b1"])).ok  # 1,1,0
    report = check_placement(nodes, spread_pods(["a1", "a2", "b1"]))  # 2,1,0
    assert kinds(report) == ["topology_spread"]
    assert "skew 2 > maxSkew 1" in report.violations[0].message
    assert check_placement(nodes, spread_pods(["a1", "a2", "b1"], spread({"app": "s"}, 2))).ok


def test_spread_with_terminating_pods_is_judged_as_it_was_before_they_went():
    """Preemption victims stay listed while they terminate, and upstream's counts skip them: zone
    c's only matching pod going leaves a=2, b=1, c=0, within bounds before it went (2,1,1). A
    domain over maxSkew with and without them counted is still flagged."""
    nodes = zones(("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"))
    pods = spread_pods(["a1", "a2", "b1", "c1"])
    pods[3]["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    assert check_placement(nodes, pods).ok
    crowded = spread_pods(["a1", "a2", "a1", "b1", "c1"])
    crowded[4]["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    assert kinds(check_placement(nodes, crowded)) == ["topology_spread"]  # 3,1,1 before: already over


def test_spread_counts_unconstrained_matching_pods_and_only_its_namespace():
    nodes = zones(("a1", "a"), ("b1", "b"))
    plain = pod("plain", on="a1", labels={"app": "s"})  # matches the selector, has no constraint
    assert kinds(check_placement(nodes, spread_pods(["a1"]) + [plain])) == ["topology_spread"]
    elsewhere = pod("plain", on="a1", ns="other", labels={"app": "s"})
    assert check_placement(nodes, spread_pods(["a1"]) + [elsewhere]).ok


def test_spread_min_domains():
    nodes = zones(("a1", "a"), ("b1", "b"))
    c = spread({"app": "s"}, 1, minDomains=3)
    # two domains < minDomains 3: the global minimum is 0
    assert check_placement(nodes, spread_pods(["a1", "b1"], c)).ok  # 1,1 -> skew 1
    assert kinds(check_placement(nodes, spread_pods(["a1", "a1", "b1"], c))) == ["topology_spread"]
    assert check_placement(nodes, spread_pods(["a1", "a1", "b1"])).ok  # 2-1 without minDomains


def test_spread_node_affinity_policy():
    nodes = (zones(("a1", "a"), ("b1", "b"), labels={"disk": "ssd"})
             + zones(("c1", "c"), labels={"disk": "hdd"}))
    sel = {"nodeSelector": {"disk": "ssd"}}
    # Honor (default): zone c is not eligible, so counts 2,1 over {a, b}
    assert check_placement(nodes, spread_pods(["a1", "a1", "b1"], **sel)).ok
    ignore = spread({"app": "s"}, 1, nodeAffinityPolicy="Ignore")
    assert kinds(check_placement(nodes, spread_pods(["a1", "a1", "b1"], ignore, **sel))) == \
        ["topology_spread"]


def test_spread_node_taints_policy():
    nodes = zones(("a1", "a"), ("b1", "b")) + [
        node("c1", labels={ZONE: "c"}, taints=[{"key": "k", "effect": "NoSchedule"}])]
    honor = spread({"app": "s"}, 1, nodeTaintsPolicy="Honor")
    assert check_placement(nodes, spread_pods(["a1", "a1", "b1"], honor)).ok
    # Ignore (default): the tainted zone still counts as a domain with 0
    assert kinds(check_placement(nodes, spread_pods(["a1", "a1", "b1"]))) == ["topology_spread"]


def test_spread_node_without_the_key():
    nodes = zones(("a1", "a")) + [node("bare")]
    assert kinds(check_placement(nodes, spread_pods(["bare"]))) == ["topology_spread"]


def test_spread_schedule_anyway_is_not_checked():
    nodes = zones(("a1", "a"), ("b1", "b"))
    soft = [dict(spread({"app": "s"})[0], whenUnsatisfiable="ScheduleAnyway")]
    assert check_placement(nodes, spread_pods(["a1", "a1", "a1"], soft)).ok


def test_spread_match_label_keys():
    nodes = zones(("a1", "a"), ("b1", "b"))
    c = [dict(spread({"app": "s"})[0], matchLabelKeys=["rev"])]
    pods = [pod(f"v1-{i}", on="a1", labels={"app": "s", "rev": "1"}, topologySpreadConstraints=c)
            for i in range(2)]
    pods += [pod(f"v2-{i}", on="b1", labels={"app": "s", "rev": "2"}, topologySpreadConstraints=c)
             for i in range(2)]
    # per revision: 2 in a, 0 in b -> skew 2 for each revision, though the union is balanced
    assert kinds(check_placement(nodes, pods)) == ["topology_spread", "topology_spread"]


# ---- invariant 3: outcomes ------------------------------------------------------------------------

def test_pending_without_reason():
    report = check_placement([node("n1")], [pod("p")])
    assert kinds(report) == ["pending_without_reason"] and report.pending_without_reason == 1
    other = pod("q")
    other["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                      "reason": "SchedulerError"}]
    assert check_placement([node("n1")], [other]).pending_without_reason == 1


def test_only_our_pods_must_be_placed():
    report = check_placement([node("n1")], [pod("p", sched="other")], scheduler_name=SCHED)
    assert report.ok and report.pods_checked == 0
    default = pod("d")
    del default["spec"]["schedulerName"]  # absent means default-scheduler
    assert check_placement([node("n1")], [default], scheduler_name=SCHED).ok
    assert not check_placement([node("n1")], [default], scheduler_name="default-scheduler").ok


def test_unschedulable_needs_an_event_when_events_are_given():
    p = pod("p", unschedulable=True)
    assert check_placement([node("n1")], [p]).ok
    report = check_placement([node("n1")], [p], events=[])
    assert kinds(report) == ["missing_event"] and report.unschedulable == 1
    other = {"reason": "FailedScheduling", "involvedObject": {"kind": "Pod", "namespace": "default",
                                                             "name": "someone-else"}}
    assert kinds(check_placement([node("n1")], [p], events=[other])) == ["missing_event"]
    wrong_reason = {"reason": "Scheduled", "involvedObject": {"kind": "Pod", "namespace": "default",
                                                              "name": "p"}}
    assert kinds(check_placement([node("n1")], [p], events=[wrong_reason])) == ["missing_event"]
    # events.k8s.io/v1 shape: 'regarding' instead of 'involvedObject'
    new_style = {"reason": "FailedScheduling", "regarding": {"kind": "Pod", "namespace": "default",
                                                             "name": "p", "uid": "uid-default-p"}}
    assert check_placement([node("n1")], [p], events=[new_style]).ok


def test_unknown_node_duplicate_and_bound_but_unschedulable():
    report = check_placement([node("n1")], [pod("p", on="ghost")])
    assert kinds(report) == ["unknown_node"] and report.bound == 1
    dup = check_placement([node("n1")], [pod("p", on="n1"), pod("p", on="n1")])
    assert kinds(dup) == ["duplicate_pod"]
    raced = pod("r", on="n1")
    raced["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                      "reason": "Unschedulable"}]
    assert kinds(check_placement([node("n1")], [raced])) == ["bound_but_unschedulable"]


def test_summary_groups_violations_by_kind():
    nodes = [node("n1", cpu="1"), node("n2", unschedulable=True)]
    pods = [pod("a", on="n1", cpu="2"), pod("b", on="n2"), pod("c")]
    report = check_placement(nodes, pods)
    text = report.summary()
    assert not report.ok and "FAILED, 3 violation(s)" in text
    for kind in ("capacity: 1", "cordoned: 1", "pending_without_reason: 1", "node n1", "pod default/b"):
        assert kind in text
    assert report.by_kind() == {"capacity": 1, "cordoned": 1, "pending_without_reason": 1}
    assert report.to_dict()["ok"] is False


# ---- invariant: no gang bound below its minCount ------------------------------------------------

def gang(group, bound, pending=0, ns="default", prefix=None, **kw):
    """`bound` members of `group` placed round-robin on n0..n3, then `pending` Unschedulable ones."""
    prefix = prefix or group
    members = [pod(f"{prefix}-{i}", on=f"n{i % 4}", ns=ns, **kw) for i in range(bound)]
    members += [pod(f"{prefix}-{bound + i}", ns=ns, unschedulable=True, **kw) for i in range(pending)]
    for m in members:
        m["spec"]["schedulingGroup"] = {"podGroupName": group}
    return members


GANG_NODES = [node(f"n{i}") for i in range(4)]


def test_partial_gang_is_flagged():
    pods = gang("job", bound=3, pending=2, ns="training")
    report = check_placement(GANG_NODES, pods, pod_groups=[pod_group("job", 5, namespace="training")])
    assert kinds(report) == [check.GANG_PARTIAL] == ["gang_partial"]
    (v,) = report.violations
    assert (v.pod, v.node) == ("training/job", "")
    assert v.message == "gang training/job: 3 of 5 members bound, minCount 5"
    assert (report.gangs_whole, report.gangs_unbound) == (0, 0)
    # members count whoever schedules them, and whichever scheduler the check is asked about
    theirs = gang("job", bound=1, pending=1, ns="training", sched="other")
    report = check_placement(GANG_NODES, theirs, scheduler_name=SCHED,
                             pod_groups=[pod_group("job", 2, namespace="training")])
    assert kinds(report) == ["gang_partial"] and report.pods_checked == 0
    # without PodGroups the same pods are not judged as a gang
    assert check_placement(GANG_NODES, pods).ok


def test_whole_and_unbound_gangs_are_clean_and_counted():
    pods = (gang("exact", bound=4) + gang("over", bound=6, pending=1) + gang("none", bound=0, pending=3))
    groups = [pod_group("exact", 4), pod_group("over", 4), pod_group("none", 3),
              pod_group("empty", 2)]  # no member pods at all: neither whole nor unbound
    report = check_placement(GANG_NODES, pods, pod_groups=groups)
    assert report.ok, report.violations
    assert (report.gangs_whole, report.gangs_unbound) == (2, 1)
    assert report.gangs_checked


def test_terminal_member_does_not_count_as_bound():
    pods = gang("job", bound=3)
    pods[0]["status"]["phase"] = "Succeeded"
    report = check_placement(GANG_NODES, pods, pod_groups=[pod_group("job", 3)])
    assert kinds(report) == ["gang_partial"]
    assert "2 of 3 members bound" in report.violations[0].message
    for p in pods:
        p["status"]["phase"] = "Failed"
    report = check_placement(GANG_NODES, pods, pod_groups=[pod_group("job", 3)])
    assert report.ok and (report.gangs_whole, report.gangs_unbound) == (0, 1)


def test_gang_kept_to_a_topology_domain_must_stay_in_one():
    racks = [node(f"n{i}", labels={"rack": "a" if i < 2 else "b"}) for i in range(4)]
    topo = {"schedulingConstraints": {"topology": [{"key": "rack"}]}}
    together = gang("job", bound=2)  # n0, n1: rack a
    assert check_placement(racks, together, pod_groups=[pod_group("job", 2, **topo)]).ok
    split = gang("job", bound=3)  # n2 is in rack b
    report = check_placement(racks, split, pod_groups=[pod_group("job", 2, **topo)])
    assert kinds(report) == [check.GANG_SPLIT]
    assert report.violations[0].message == "gang default/job is kept to one rack but its pods are on a, b"
    assert check_placement(racks, split, pod_groups=[pod_group("job", 2)]).ok  # no constraint, no rule
    basic = pod_group("job", basic=True, **topo)  # a basic group kept to a domain too
    assert kinds(check_placement(racks, split, pod_groups=[basic])) == [check.GANG_SPLIT]
    bare = [node(f"n{i}") for i in range(4)]  # nodes without the label
    assert kinds(check_placement(bare, together, pod_groups=[pod_group("job", 2, **topo)])) == [check.GANG_SPLIT]


def test_basic_policy_group_is_not_a_gang():
    pods = gang("web", bound=1, pending=2)
    report = check_placement(GANG_NODES, pods, pod_groups=[pod_group("web", basic=True)])
    assert report.ok and (report.gangs_whole, report.gangs_unbound) == (0, 0)


def test_members_in_another_namespace_do_not_count():
    pods = gang("job", bound=2, pending=2, ns="a") + gang("job", bound=4, ns="b")
    report = check_placement(GANG_NODES, pods, pod_groups=[pod_group("job", 4, namespace="a")])
    assert kinds(report) == ["gang_partial"]
    (v,) = report.violations
    assert v.pod == "a/job" and "2 of 4 members bound" in v.message
    # and a gang's own namespace having no members leaves it unbound, whatever others bind
    report = check_placement(GANG_NODES, gang("job", bound=4, ns="b"),
                             pod_groups=[pod_group("job", 4, namespace="a")])
    assert report.ok and (report.gangs_whole, report.gangs_unbound) == (0, 0)


@pytest.mark.parametrize("bad", [
    pod_group("job", "x"), pod_group("job", 0), pod_group("job", -2), pod_group("job", True),
    pod_group("job", 2.0), pod_group("job", None),
    {"metadata": {"name": "job", "namespace": "default"}},  # no spec
    {"metadata": {"name": "job", "namespace": "default"}, "spec": None},
    {"metadata": {"name": "job", "namespace": "default"}, "spec": {"schedulingPolicy": "gang"}},
    {"metadata": {"name": "job", "namespace": "default"},
     "spec": {"schedulingPolicy": {"gang": [3]}}},
    {"spec": {"schedulingPolicy": {"gang": {"minCount": 3}}}},  # no metadata
    {"metadata": None, "spec": {"schedulingPolicy": {"gang": {"minCount": 3}}}},
    {}, None, "job",
])
def test_malformed_pod_groups_do_not_crash(bad):
    pods = gang("job", bound=1, pending=2)
    pods.append(pod("odd", unschedulable=True, schedulingGroup="job"))  # malformed member: ignored
    pods.append(pod("odd2", unschedulable=True, schedulingGroup={"podGroupName": 7}))
    report = check_placement(GANG_NODES, pods, pod_groups=[bad])
    assert report.ok and (report.gangs_whole, report.gangs_unbound) == (0, 0)
    # a good PodGroup beside it is still checked
    report = check_placement(GANG_NODES, pods, pod_groups=[bad, pod_group("job", 3)])
    assert kinds(report) == ["gang_partial"]


def test_gang_summary_and_to_dict():
    pods = gang("whole", bound=2) + gang("stuck", bound=0, pending=2) + gang("half", bound=1, pending=1)
    groups = [pod_group("whole", 2), pod_group("stuck", 2), pod_group("half", 2)]
    report = check_placement(GANG_NODES, pods, pod_groups=groups)
    text = report.summary()
    assert "gangs: 1 whole, 1 with no pod bound" in text
    assert "gang_partial: 1" in text and "pod default/half" in text
    d = report.to_dict()
    assert (d["gangs_whole"], d["gangs_unbound"], d["ok"]) == (1, 1, False)
    # no PodGroups given (an older cluster): no gang line
    plain = check_placement(GANG_NODES, pods)
    assert plain.ok and "gangs:" not in plain.summary() and not plain.gangs_checked
    # PodGroups given but none exist: the line says so
    assert "gangs: 0 whole, 0 with no pod bound" in check_placement(GANG_NODES, pods,
                                                                    pod_groups=[]).summary()


# ---- independence and the command ---------------------------------------------------------------

def test_check_does_not_import_the_engine():
    source = Path(check.__file__).read_text()
    for forbidden in ("cluster_scheduler.model", "cluster_scheduler.plugins", "cluster_scheduler.engine",
                      "from .model", "from .plugins", "from .engine"):
        assert forbidden not in source


def test_cli_registers_check():
    from cluster_scheduler.cli import build_parser

    args = build_parser(["check"]).parse_args(
        ["check", "--kubeconfig", "/tmp/kc", "--scheduler-name", "s"])
    assert args.func is check.run_check
    assert (args.kubeconfig, args.scheduler_name, args.no_events) == ("/tmp/kc", "s", False)


class _Resp:
    def __init__(self, body: bytes):
        self.data = body
        self.released = False

    def release_conn(self):
        self.released = True


def test_list_all_pages_with_continue_tokens():
    import orjson

    calls = []

    def fake_list(**kw):
        calls.append(kw)
        token = kw.get("_continue")
        if token is None:
            return _Resp(orjson.dumps({"items": [{"n": 1}, {"n": 2}], "metadata": {"continue": "t1"}}))
        assert token == "t1"
        return _Resp(orjson.dumps({"items": [{"n": 3}], "metadata": {"continue": ""}}))

    items = check._list_all(fake_list, field_selector="reason=FailedScheduling")
    assert items == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(c["limit"] == check.LIST_CHUNK and c["_preload_content"] is False for c in calls)
    assert all(c["field_selector"] == "reason=FailedScheduling" for c in calls)


# ---- the shared workloads: manifests from the loader, placed by hand ------------------------------

@needs_shared
def test_basic_1k_manifests_placed_round_robin_pass_and_overfill_fails():
    wl = load_workload(SHARED_WORKLOADS / "basic-1k.yaml")
    nodes = list(wl.all_nodes())
    pods = list(wl.all_pods(SCHED))
    for i, p in enumerate(pods):  # 5 pods per node: 2.5 cpu of 32
        p["spec"]["nodeName"] = nodes[i % len(nodes)]["metadata"]["name"]
    report = check_placement(nodes, pods, scheduler_name=SCHED)
    assert report.ok and report.bound == 5000
    # put 111 pods on one node: its pods=110 limit breaks (cpu: 55.5 > 32 too)
    for p in pods[:111]:
        p["spec"]["nodeName"] = nodes[0]["metadata"]["name"]
    bad = check_placement(nodes, pods, scheduler_name=SCHED)
    assert {v.kind for v in bad.violations} == {"capacity"}
    assert {v.message.split(":")[0] for v in bad.violations} == {"cpu", "pods"}


@needs_shared
def test_constraints_mix_cordoned_and_impossible_pods():
    wl = load_workload(SHARED_WORKLOADS / "constraints-mix.yaml")
    nodes = list(wl.all_nodes())
    pods = list(wl.all_pods(SCHED))
    cordoned = [n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable")]
    ssd = [n["metadata"]["name"] for n in nodes if n["metadata"]["labels"].get("disk") == "ssd"]
    plain = [p for p in pods if p["metadata"]["labels"]["app"] == "plain"]
    impossible = [p for p in pods if p["metadata"]["labels"]["app"] == "impossible"]
    for i, p in enumerate(plain):
        p["spec"]["nodeName"] = ssd[i % len(ssd)]
    for p in impossible:
        p["status"] = {"conditions": [{"type": "PodScheduled", "status": "False",
                                       "reason": "Unschedulable"}]}
    subset = plain + impossible
    report = check_placement(nodes, subset, scheduler_name=SCHED)
    assert report.ok and (report.bound, report.unschedulable) == (300, 10)
    plain[0]["spec"]["nodeName"] = cordoned[0]
    assert kinds(check_placement(nodes, subset, scheduler_name=SCHED)) == ["cordoned"]


# ---- the command against a fake apiserver (list endpoints only) ----------------------------------

class _FakeApiserver:
    """Serves list endpoints with limit/continue paging, recording each request's query."""

    def __init__(self, objects: dict[str, list[dict]]):
        import http.server
        import threading
        import urllib.parse

        import orjson

        self.objects = objects
        self.requests: list[tuple[str, dict]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                outer.requests.append((url.path, query))
                items = outer.objects.get(url.path)
                if items is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                start = int(query.get("continue") or 0)
                limit = int(query.get("limit") or len(items) or 1)
                page = items[start:start + limit]
                more = start + limit < len(items)
                body = orjson.dumps({"kind": "List", "items": page,
                                     "metadata": {"continue": str(start + limit) if more else ""}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


PODGROUPS_PATH = "/apis/scheduling.k8s.io/v1beta1/podgroups"


@pytest.fixture
def fake_apiserver(tmp_path):
    servers = []

    def start(nodes, pods, events, pod_groups=None, volumes=(), claims=()):
        objects = {"/api/v1/nodes": nodes, "/api/v1/pods": pods, "/api/v1/events": events,
                   "/api/v1/namespaces": [{"metadata": {"name": "default"}}],
                   "/api/v1/persistentvolumes": list(volumes), "/api/v1/persistentvolumeclaims": list(claims),
                   "/apis/storage.k8s.io/v1/csinodes": []}
        if pod_groups is not None:  # otherwise 404, as on a cluster without the API
            objects[PODGROUPS_PATH] = pod_groups
        srv = _FakeApiserver(objects)
        servers.append(srv)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: k, cluster: {{server: '{srv.url}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n")
        return srv, str(kubeconfig)

    yield start
    for srv in servers:
        srv.close()


def test_check_command_end_to_end(fake_apiserver, monkeypatch, capsys):
    from cluster_scheduler.cli import main

    monkeypatch.setattr(check, "LIST_CHUNK", 2)  # force paging
    nodes = [node(f"n{i}") for i in range(3)]
    pods = [pod(f"p{i}", on=f"n{i % 3}") for i in range(5)] + [pod("stuck", unschedulable=True)]
    event = {"reason": "FailedScheduling", "metadata": {"namespace": "default", "name": "e"},
             "involvedObject": {"kind": "Pod", "namespace": "default", "name": "stuck"}}
    srv, kubeconfig = fake_apiserver(nodes, pods, [event])
    assert main(["check", "--kubeconfig", kubeconfig, "--scheduler-name", SCHED]) == 0
    out = capsys.readouterr().out
    assert "placement check: OK" in out and "bound 5, unschedulable 1" in out
    assert "gangs:" not in out  # the PodGroup API is not served (404): no gang check
    assert [path for path, _ in srv.requests].count(PODGROUPS_PATH) == 1
    pod_calls = [q for path, q in srv.requests if path == "/api/v1/pods"]
    assert len(pod_calls) == 3 and all(q["limit"] == "2" for q in pod_calls)
    assert [q for path, q in srv.requests if path == "/api/v1/events"][0]["fieldSelector"] == \
        "reason=FailedScheduling"

    srv.objects["/api/v1/events"] = []  # the Unschedulable pod now lacks its event
    assert main(["check", "--kubeconfig", kubeconfig, "--scheduler-name", SCHED]) == 1
    assert "missing_event: 1" in capsys.readouterr().out
    assert main(["check", "--kubeconfig", kubeconfig, "--no-events", "--json"]) == 0
    assert '"ok": true' in capsys.readouterr().out
    # a pod on a node its volume does not reach
    srv.objects["/api/v1/pods"] = pods + [pod("db", on="n0", **_mounts("c1"))]
    srv.objects["/api/v1/persistentvolumes"] = [_pv("local1", host="n1", claim="c1")]
    srv.objects["/api/v1/persistentvolumeclaims"] = [_pvc("c1", "local1")]
    assert main(["check", "--kubeconfig", kubeconfig, "--no-events"]) == 1
    assert "volume_unreachable: 1" in capsys.readouterr().out


def test_check_command_checks_pod_groups(fake_apiserver, monkeypatch, capsys):
    from cluster_scheduler.cli import main

    monkeypatch.setattr(check, "LIST_CHUNK", 2)  # force paging of the PodGroups too
    pods = (gang("whole", bound=2, ns="t") + gang("stuck", bound=0, pending=2, ns="t")
            + gang("half", bound=1, pending=2, ns="t"))
    groups = [pod_group("whole", 2, namespace="t"), pod_group("stuck", 2, namespace="t"),
              pod_group("web", namespace="t", basic=True)]
    srv, kubeconfig = fake_apiserver(GANG_NODES, pods, [], pod_groups=groups)
    assert main(["check", "--kubeconfig", kubeconfig, "--no-events"]) == 0
    out = capsys.readouterr().out
    assert "placement check: OK" in out and "gangs: 1 whole, 1 with no pod bound" in out
    pg_calls = [q for path, q in srv.requests if path == PODGROUPS_PATH]
    assert len(pg_calls) == 2 and all(q["limit"] == "2" for q in pg_calls)

    srv.objects[PODGROUPS_PATH] = groups + [pod_group("half", 3, namespace="t")]
    assert main(["check", "--kubeconfig", kubeconfig, "--no-events"]) == 1
    out = capsys.readouterr().out
    assert "gang_partial: 1" in out and "gang t/half: 1 of 3 members bound, minCount 3" in out
    assert main(["check", "--kubeconfig", kubeconfig, "--no-events", "--json"]) == 1
    assert '"gangs_whole": 1' in capsys.readouterr().out


def test_preemptions_lower_priority_and_an_event_each():
    high = pod("high", on="n0", priority=100)
    low, same, orphan = pod("low", on="n0", priority=1), pod("same", on="n0", priority=100), pod("orphan", on="n1")
    event = {"reason": "Preempted", "regarding": {"uid": low["metadata"]["uid"]}}
    report = check_placement(GANG_NODES, [high], preemptions=[(low, high)], events=[event])
    assert report.ok and report.preempted == 1
    assert "preempted 1" in report.summary()
    report = check_placement(GANG_NODES, [high], preemptions=[(same, high), (orphan, None)], events=[event])
    assert kinds(report) == ["missing_preempted_event", "missing_preempted_event", "preempted_not_lower",
                             "preempted_without_preemptor"]
    # without events, only the priorities are judged
    assert kinds(check_placement(GANG_NODES, [high], preemptions=[(low, high)])) == []
    # a victim in a PodGroup is weighed at the group's priority (upstream 1.37's GetPodPriority)
    same["spec"]["schedulingGroup"] = {"podGroupName": "batch"}
    assert kinds(check_placement(GANG_NODES, [high], pod_groups=[pod_group("batch", basic=True, priority=1)],
                                 preemptions=[(same, high)])) == []
    low["spec"]["schedulingGroup"] = {"podGroupName": "online"}
    assert kinds(check_placement(GANG_NODES, [high], pod_groups=[pod_group("online", basic=True, priority=100)],
                                 preemptions=[(low, high)])) == ["preempted_not_lower"]



def test_gang_members_preempted_since_still_count_and_a_podgroup_may_be_the_preemptor():
    """A gang stood whole (3 of minCount 3); a higher-priority pod then evicted one member, as
    upstream may where the group's disruptionMode is not All: not a partial gang. A gang whose
    preemptor is its PodGroup (upstream 1.37's gang preemption) is judged by the group's
    spec.priority."""
    members = gang("job", bound=2, pending=0)
    evicted = pod("job-2", on="n2", priority=0)
    evicted["spec"]["schedulingGroup"] = {"podGroupName": "job"}
    high = pod("high", on="n2", priority=100)
    groups = [pod_group("job", 3)]
    report = check_placement(GANG_NODES, members + [high], pod_groups=groups, preemptions=[(evicted, high)])
    assert report.ok and report.gangs_whole == 1, report.summary()
    # without the eviction on record, two of three bound is partial, and the message says so
    report = check_placement(GANG_NODES, members[:1] + [high], pod_groups=groups, preemptions=[(evicted, high)])
    assert [v.message for v in report.violations] == [
        "gang default/job: 2 of 2 members bound (1 of them preempted since), minCount 3"]
    group = pod_group("train", 1, priority=50)
    assert kinds(check_placement(GANG_NODES, [high], preemptions=[(evicted, group)])) == []
    group["spec"]["priority"] = 0
    assert kinds(check_placement(GANG_NODES, [high], preemptions=[(evicted, group)])) == ["preempted_not_lower"]

def test_a_group_preempted_only_whole_loses_every_pod_or_none():
    """A PodGroup in disruptionMode All is one victim: one member preempted while another stays
    bound is a violation; the same in the single mode is not."""
    members = gang("job", bound=2, pending=0)
    for m in members:
        m["spec"]["priority"] = 1
    evicted = pod("job-2", on="n2", priority=1)
    evicted["spec"]["schedulingGroup"] = {"podGroupName": "job"}
    high = pod("high", on="n2", priority=100)
    whole = pod_group("job", 3, disruptionMode={"all": {}})
    report = check_placement(GANG_NODES, members + [high], pod_groups=[whole], preemptions=[(evicted, high)])
    assert kinds(report) == ["preempted_part_of_group", "preempted_part_of_group"]
    assert "PodGroup default/job (disruptionMode All) lost 1 pod(s)" in report.violations[0].message
    # every member gone with it: no such violation (the gang is then partial: minCount 3, one counted)
    assert "preempted_part_of_group" not in kinds(check_placement(GANG_NODES, [high], pod_groups=[whole],
                                                                  preemptions=[(evicted, high)]))
    assert kinds(check_placement(GANG_NODES, members + [high], pod_groups=[pod_group("job", 3)],
                                 preemptions=[(evicted, high)])) == []

# ---- volumes ----------------------------------------------------------------------------------------

def _pv(name, host=None, claim=None, labels=None):
    spec = {"capacity": {"storage": "10Gi"}}
    if host:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": HOST, "operator": "In", "values": [host]}]}]}}
    if claim:
        spec["claimRef"] = {"namespace": "default", "name": claim}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _pvc(name, volume=None):
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"volumeName": volume} if volume else {}}


def _mounts(*claims):
    return {"volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]}


def test_volumes_clean_and_each_violation():
    nodes = zones(("n1", "a"), ("n2", "b"))
    pvs = [_pv("local1", host="n1", claim="c1"), _pv("zonal-b", claim="c2", labels={ZONE: "b"})]
    pvcs = [_pvc("c1", "local1"), _pvc("c2", "zonal-b")]
    ok = [pod("p1", on="n1", **_mounts("c1")), pod("p2", on="n2", **_mounts("c2"))]
    assert check_placement(nodes, ok, SCHED, volumes=pvs, claims=pvcs).ok
    wrong = [pod("p1", on="n2", **_mounts("c1")), pod("p2", on="n1", **_mounts("c2"))]
    rep = check_placement(nodes, wrong, SCHED, volumes=pvs, claims=pvcs)
    assert kinds(rep) == [check.VOLUME_UNREACHABLE] * 2
    unbound = [pod("p1", on="n1", **_mounts("c3")), pod("p2", on="n2", **_mounts("c4"))]
    rep = check_placement(nodes, unbound, SCHED, volumes=pvs, claims=pvcs + [_pvc("c4")])
    assert kinds(rep) == [check.VOLUME_UNBOUND] * 2
    shared = pvcs + [_pvc("c5", "local1")]
    rep = check_placement(nodes, ok, SCHED, volumes=pvs, claims=shared)
    assert kinds(rep) == [check.VOLUME_SHARED]
    # without volumes and claims, volumes are not judged
    assert check_placement(nodes, wrong, SCHED).ok
    rwop = [{**_pvc("c1", "local1"), "spec": {"volumeName": "local1", "accessModes": ["ReadWriteOncePod"]}},
            _pvc("c2", "zonal-b")]
    two = ok + [pod("p3", on="n1", **_mounts("c1"))]
    assert kinds(check_placement(nodes, two, SCHED, volumes=pvs, claims=rwop)) == [check.VOLUME_RWOP]


def test_csi_attach_limits():
    nodes = zones(("n1", "a"), ("n2", "b"))
    pvs = [{**_pv(f"v{i}", claim=f"c{i}"), "spec": {"csi": {"driver": "d.csi", "volumeHandle": f"h{i % 3}"},
                                                       "claimRef": {"namespace": "default", "name": f"c{i}"}}}
           for i in range(4)]
    pvcs = [_pvc(f"c{i}", f"v{i}") for i in range(4)]
    limit = [{"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": "d.csi", "allocatable": {"count": 2}}]}}]
    # v0 and v3 share a handle: two distinct volumes on n1, within its limit
    ok = [pod("p0", on="n1", **_mounts("c0")), pod("p1", on="n1", **_mounts("c1")),
          pod("p3", on="n1", **_mounts("c3")), pod("p2", on="n2", **_mounts("c2"))]
    assert check_placement(nodes, ok, SCHED, volumes=pvs, claims=pvcs, csi_nodes=limit).ok
    over = ok[:3] + [pod("p2", on="n1", **_mounts("c2"))]
    rep = check_placement(nodes, over, SCHED, volumes=pvs, claims=pvcs, csi_nodes=limit)
    assert kinds(rep) == [check.VOLUME_LIMIT] and "3 volumes of d.csi in use" in rep.violations[0].message
    # another scheduler's pods alone over the limit are not ours to answer for
    theirs = [pod(p["metadata"]["name"], on="n1", sched="other", **_mounts(*(v["persistentVolumeClaim"]["claimName"]
              for v in p["spec"]["volumes"]))) for p in over]
    assert check_placement(nodes, theirs, SCHED, volumes=pvs, claims=pvcs, csi_nodes=limit).ok


def test_attach_limits_count_in_tree_volumes_inline_or_through_a_claim():
    """In-tree GCE PD / EBS volumes count under their CSI driver, as upstream translates them: an
    inline PD (its handle names no zone) and a CSI volume of the same handle are one disk; an EBS
    `aws://zone/id` is its bare id; a Shared (the default) Azure disk is not counted."""
    nodes = zones(("n1", "a"))
    gce, ebs = "pd.csi.storage.gke.io", "ebs.csi.aws.com"
    limit = [{"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": gce, "allocatable": {"count": 1}},
                                                               {"name": ebs, "allocatable": {"count": 1}}]}}]
    pvs = [{**_pv("same", claim="c0"), "spec": {"csi": {"driver": gce,
                                                        "volumeHandle": "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/pd-a"},
                                                "claimRef": {"namespace": "default", "name": "c0"}}},
           {**_pv("ebs", claim="c1"), "spec": {"awsElasticBlockStore": {"volumeID": "aws://a/vol-1"},
                                               "claimRef": {"namespace": "default", "name": "c1"}}}]
    pvcs = [_pvc("c0", "same"), _pvc("c1", "ebs")]

    def inline(name: str, **src) -> dict:
        return pod(name, on="n1", volumes=[{"name": "d", **src}])

    ok = [inline("a", gcePersistentDisk={"pdName": "pd-a", "readOnly": True}), pod("b", on="n1", **_mounts("c0")),
          inline("c", awsElasticBlockStore={"volumeID": "vol-1"}), pod("d", on="n1", **_mounts("c1")),
          inline("e", azureDisk={"diskName": "x", "diskURI": "https://x/y.vhd"})]
    assert check_placement(nodes, ok, SCHED, volumes=pvs, claims=pvcs, csi_nodes=limit).ok
    over = ok + [inline("f", gcePersistentDisk={"pdName": "pd-b"})]
    rep = check_placement(nodes, over, SCHED, volumes=pvs, claims=pvcs, csi_nodes=limit)
    assert kinds(rep) == [check.VOLUME_LIMIT] and f"2 volumes of {gce} in use" in rep.violations[0].message
