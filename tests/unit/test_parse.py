"""Pod and Node parsing, checked against what Kubernetes v1.36 computes for the same object."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_scheduler.model import parse as parse_mod
from cluster_scheduler.model.parse import parse_node, parse_pod
from cluster_scheduler.model.types import (
    DEFAULT_MEMORY_REQUEST,
    HostPort,
    LabelSelector,
    NodeInfo,
    PodInfo,
    Requirement,
    Taint,
    Toleration,
)

Mi = 2**20
Gi = 2**30


def pod(containers=None, *, init=None, labels=None, namespace="ns1", name="p", **spec):
    """A pod as the apiserver serves it (camelCase JSON), with `spec` fields passed through."""
    s = {"containers": containers if containers is not None else [ctr("app")]}
    if init is not None:
        s["initContainers"] = init
    s.update(spec)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "labels": labels if labels is not None else {"app": "web"},
                     "creationTimestamp": "2024-05-01T10:00:00Z", "resourceVersion": "42"},
        "spec": s,
        "status": {"phase": "Pending"},
    }


def ctr(name="app", requests=None, limits=None, **extra):
    c = {"name": name, "image": "registry.k8s.io/pause:3.10"}
    res = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    if res:
        c["resources"] = res
    c.update(extra)
    return c


def sidecar(name, requests):
    return ctr(name, requests, restartPolicy="Always")


def key(obj, **kw):
    info = parse_pod(obj, **kw)
    assert info.error is None, info.error
    assert info.key is not None
    return info.key


def reqs(obj):
    return key(obj).request_dict


def error(obj, **kw):
    info = parse_pod(obj, **kw)
    assert info.key is None, info.key
    assert info.error
    return info.error


# ---------------------------------------------------------------------------------------------
# identification
# ---------------------------------------------------------------------------------------------

def test_identification_fields():
    p = pod(priority=1000, schedulerName="cluster-scheduler", nodeName="n7")
    info = parse_pod(p)
    assert (info.uid, info.namespace, info.name) == ("uid-p", "ns1", "p")
    assert info.priority == 1000
    assert info.scheduler_name == "cluster-scheduler"
    assert info.node_name == "n7" and info.key.node_name == "n7"
    assert info.creation_ts == 1714557600.0
    assert info.phase == "Pending" and info.resource_version == "42"
    assert info.labels == {"app": "web"}


def test_defaults_when_fields_absent():
    info = parse_pod({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c"}]}})
    assert info.uid == "default/x" and info.namespace == "default"
    assert info.priority == 0 and info.scheduler_name == "default-scheduler"
    assert info.node_name == "" and info.phase == "Pending" and info.creation_ts == 0.0
    assert info.key.namespace == "default"


def test_error_keeps_identification():
    p = pod([ctr("app", {"cpu": "12x"})])
    info = parse_pod(p)
    assert info.key is None
    assert (info.uid, info.namespace, info.name) == ("uid-p", "ns1", "p")
    assert info.error.startswith('invalid quantity "12x" for cpu in container "app":')


def test_bound_pods_share_everything_but_node_name():
    a = parse_pod(pod(nodeName="n1", name="a")).key
    b = parse_pod(pod(nodeName="n2", name="b")).key
    c = parse_pod(pod(name="c")).key
    assert a.node_name == "n1" and b.node_name == "n2" and c.node_name == ""
    assert a.requests is b.requests is c.requests  # memoised and patched, not re-parsed


# ---------------------------------------------------------------------------------------------
# effective requests (component-helpers resource.PodRequests)
# ---------------------------------------------------------------------------------------------

def test_single_container_and_pods():
    r = key(pod([ctr("app", {"cpu": "500m", "memory": "1Gi"})])).requests
    assert r == (("cpu", 500), ("memory", Gi), ("pods", 1))


def test_app_containers_sum_exactly_before_rounding():
    # 0.5m + 0.5m is 1m: rounding each container first would give 2m.
    p = pod([ctr("a", {"cpu": "0.0005", "memory": "0.5"}), ctr("b", {"cpu": "500u", "memory": "500m"})])
    assert reqs(p) == {"cpu": 1, "memory": 1, "pods": 1}


def test_init_container_max():
    p = pod([ctr("app", {"cpu": "100m", "memory": "1Gi"})],
            init=[ctr("init", {"cpu": "500m", "memory": "200Mi"})])
    assert reqs(p) == {"cpu": 500, "memory": Gi, "pods": 1}


def test_sidecars_add_to_app_and_to_later_init_steps():
    # KEP-753: InitContainerUse(i) = sum(sidecars before i) + init i; sidecars also run with app.
    init = [sidecar("s1", {"cpu": "100m"}), ctr("i2", {"cpu": "200m"}),
            sidecar("s3", {"cpu": "50m"}), ctr("i4", {"cpu": "300m"})]
    p = pod([ctr("app", {"cpu": "100m"})], init=init)
    assert reqs(p)["cpu"] == 450  # i4 runs beside s1 + s3: 300 + 150 > app 100 + sidecars 150
    reordered = [init[0], init[1], init[3], init[2]]  # i4 now starts before s3
    assert reqs(pod([ctr("app", {"cpu": "100m"})], init=reordered))["cpu"] == 400


def test_sidecars_dominating_app_sum():
    p = pod([ctr("app", {"memory": "1Gi"})],
            init=[sidecar("proxy", {"memory": "512Mi"}), ctr("setup", {"memory": "1Gi"})])
    # app+sidecar = 1.5Gi; setup step = 1Gi + 512Mi = 1.5Gi
    assert reqs(p)["memory"] == 1536 * Mi
    p = pod([ctr("app", {"memory": "1Gi"})],
            init=[sidecar("proxy", {"memory": "512Mi"}), ctr("setup", {"memory": "2Gi"})])
    assert reqs(p)["memory"] == 2560 * Mi


def test_overhead_is_added():
    p = pod([ctr("app", {"cpu": "1", "memory": "1Gi"})], overhead={"cpu": "250m", "memory": "120Mi"})
    assert reqs(p) == {"cpu": 1250, "memory": Gi + 120 * Mi, "pods": 1}
    k = key(p)
    assert (k.nonzero_cpu, k.nonzero_memory) == (1250, Gi + 120 * Mi)


def test_limits_default_requests():
    p = pod([ctr("app", limits={"cpu": "1", "memory": "2Gi", "nvidia.com/gpu": 1})])
    assert reqs(p) == {"cpu": 1000, "memory": 2 * Gi, "nvidia.com/gpu": 1, "pods": 1}
    p = pod([ctr("app", requests={"cpu": "100m"}, limits={"cpu": "1", "memory": "2Gi"})])
    assert reqs(p) == {"cpu": 100, "memory": 2 * Gi, "pods": 1}
    p = pod([ctr("app")], init=[ctr("init", limits={"cpu": "3"})])
    assert reqs(p)["cpu"] == 3000


def test_zero_requests_are_dropped_but_pods_stays():
    k = key(pod([ctr("app", {"cpu": "0", "memory": "0", "example.com/foo": "0"})]))
    assert k.requests == (("pods", 1),)


def test_extended_resources_and_sorting():
    k = key(pod([ctr("app", {"nvidia.com/gpu": 2, "memory": "1Gi", "cpu": 1, "ephemeral-storage": "1G"})]))
    assert k.requests == (("cpu", 1000), ("ephemeral-storage", 10**9), ("memory", Gi),
                          ("nvidia.com/gpu", 2), ("pods", 1))


def test_yaml_numbers():
    assert reqs(pod([ctr("app", {"cpu": 0.5, "memory": 1024})])) == {"cpu": 500, "memory": 1024, "pods": 1}


# ---------------------------------------------------------------------------------------------
# non-zero scoring requests (framework.PodInfo.CalculateResource / NodeResourcesFit scorer)
# ---------------------------------------------------------------------------------------------

def test_nonzero_defaults_for_missing_requests():
    k = key(pod([ctr("app")]))
    assert k.requests == (("pods", 1),)
    assert (k.nonzero_cpu, k.nonzero_memory) == (100, DEFAULT_MEMORY_REQUEST)
    k = key(pod([ctr("a"), ctr("b", {"cpu": "1"})]))
    assert (k.nonzero_cpu, k.nonzero_memory) == (1100, 2 * 200 * Mi)


def test_nonzero_missing_is_not_zero():
    k = key(pod([ctr("app", {"cpu": "0", "memory": "0"})]))
    assert (k.nonzero_cpu, k.nonzero_memory) == (0, 0)


def test_nonzero_with_init_containers():
    k = key(pod([ctr("app")], init=[ctr("init", {"cpu": "500m"})]))
    assert k.nonzero_cpu == 500 and k.nonzero_memory == 200 * Mi
    k = key(pod([ctr("app", {"cpu": "300m"})], init=[ctr("init")]))
    assert k.nonzero_cpu == 300  # the init step counts as 100m, below the app's 300m
    k = key(pod([ctr("app")], init=[sidecar("s", {})]))
    assert k.nonzero_cpu == 200  # the sidecar runs beside the app: 100m + 100m


# ---------------------------------------------------------------------------------------------
# pod-level resources (PodLevelResources, beta and on in 1.36)
# ---------------------------------------------------------------------------------------------

def test_pod_level_requests_override_cpu_and_memory_only():
    p = pod([ctr("app", {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 1})],
            resources={"requests": {"cpu": "2", "memory": "4Gi"}})
    assert reqs(p) == {"cpu": 2000, "memory": 4 * Gi, "nvidia.com/gpu": 1, "pods": 1}
    k = key(p)
    assert (k.nonzero_cpu, k.nonzero_memory) == (2000, 4 * Gi)


def test_fit_scorer_reads_container_requests_not_pod_level():
    # v1.37.2's NodeResourcesFit scorer is built without the PodLevelResources gate: it charges the
    # containers' non-zero requests (found by the differential test against kube-scheduler)
    p = pod([ctr("a", {"cpu": "100m", "memory": "128Mi"}), ctr("b")],
            resources={"requests": {"cpu": "1", "memory": "1Gi"}})
    k = key(p)
    assert (k.nonzero_cpu, k.nonzero_memory) == (1000, Gi)
    assert k.fit_request == (200, 128 * 1024 * 1024 + 200 * 1024 * 1024)
    assert key(pod([ctr("a", {"cpu": "1"})])).fit_request is None


def test_pod_level_limits_default_pod_requests():
    # defaultPodRequests: cpu comes from the container aggregate, memory from the pod limit.
    p = pod([ctr("a", {"cpu": "500m"}), ctr("b")], resources={"limits": {"cpu": "2", "memory": "1Gi"}})
    assert reqs(p) == {"cpu": 500, "memory": Gi, "pods": 1}
    k = key(p)
    # pod-level cpu 500m replaces the per-container defaults (500m + 100m without pod level)
    assert (k.nonzero_cpu, k.nonzero_memory) == (500, Gi)
    assert key(pod([ctr("a", {"cpu": "500m"}), ctr("b")])).nonzero_cpu == 600


def test_pod_level_overhead_still_added():
    p = pod([ctr("a", {"cpu": "100m"})], resources={"requests": {"cpu": "1"}}, overhead={"cpu": "100m"})
    assert reqs(p)["cpu"] == 1100


def test_pod_level_hugepages_default_from_container_limits():
    p = pod([ctr("a", {"cpu": "1", "hugepages-2Mi": "100Mi"}, {"hugepages-2Mi": "100Mi"})],
            resources={"limits": {"cpu": "2"}})
    assert reqs(p) == {"cpu": 1000, "hugepages-2Mi": 100 * Mi, "pods": 1}


# ---------------------------------------------------------------------------------------------
# host ports (util.GetHostPorts)
# ---------------------------------------------------------------------------------------------

def test_host_ports():
    p = pod([ctr("app", ports=[{"containerPort": 80, "hostPort": 8080},
                               {"containerPort": 53, "hostPort": 53, "protocol": "UDP", "hostIP": "10.0.0.1"},
                               {"containerPort": 9090}])])
    assert key(p).host_ports == (HostPort("0.0.0.0", "TCP", 8080), HostPort("10.0.0.1", "UDP", 53))


def test_host_ports_sidecars_only_among_init_containers():
    p = pod([ctr("app")], init=[ctr("init", ports=[{"containerPort": 1, "hostPort": 7000}]),
                                ctr("sc", ports=[{"containerPort": 1, "hostPort": 7001}], restartPolicy="Always")])
    assert key(p).host_ports == (HostPort("0.0.0.0", "TCP", 7001),)


def test_host_network_defaults_host_port():
    p = pod([ctr("app", ports=[{"containerPort": 9100}])], hostNetwork=True)
    assert key(p).host_ports == (HostPort("0.0.0.0", "TCP", 9100),)


def test_host_ports_canonical_order():
    a = pod([ctr("a", ports=[{"containerPort": 1, "hostPort": 2}]), ctr("b", ports=[{"containerPort": 1, "hostPort": 1}])])
    b = pod([ctr("b", ports=[{"containerPort": 1, "hostPort": 1}]), ctr("a", ports=[{"containerPort": 1, "hostPort": 2}])])
    assert key(a).host_ports == key(b).host_ports


# ---------------------------------------------------------------------------------------------
# node selector and node affinity
# ---------------------------------------------------------------------------------------------

def node_affinity(required_terms=None, preferred=None):
    na = {}
    if required_terms is not None:
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required_terms}
    if preferred is not None:
        na["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"nodeAffinity": na}


def test_node_selector_sorted():
    k = key(pod(nodeSelector={"zone": "a", "disk": "ssd"}))
    assert k.node_selector == (("disk", "ssd"), ("zone", "a"))


def test_required_node_affinity_every_operator():
    exprs = [{"key": "zone", "operator": "In", "values": ["b", "a", "a"]},
             {"key": "tier", "operator": "NotIn", "values": ["spot"]},
             {"key": "gpu", "operator": "Exists"},
             {"key": "tainted", "operator": "DoesNotExist"},
             {"key": "cores", "operator": "Gt", "values": ["8"]},
             {"key": "age", "operator": "Lt", "values": ["-3"]}]
    k = key(pod(affinity=node_affinity([{"matchExpressions": exprs}])))
    (term,) = k.required_node_affinity
    assert Requirement("zone", "In", ("a", "b")) in term.match_expressions
    assert {r.operator for r in term.match_expressions} == {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}
    ok = {"zone": "a", "gpu": "1", "cores": "16", "age": "-5"}
    assert term.matches(ok, "n1")
    for bad in ({**ok, "zone": "c"}, {**ok, "tier": "spot"}, {k2: v for k2, v in ok.items() if k2 != "gpu"},
                {**ok, "tainted": "x"}, {**ok, "cores": "8"}, {**ok, "age": "0"}):
        assert not term.matches(bad, "n1")


def test_required_node_affinity_terms_are_ored_and_canonical():
    t1 = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    t2 = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    k1 = key(pod(affinity=node_affinity([t1, t2])))
    k2 = key(pod(affinity=node_affinity([t2, t1])))
    assert k1 == k2 and hash(k1) == hash(k2)
    assert any(t.matches({"zone": "b"}, "n") for t in k1.required_node_affinity)


def test_match_fields():
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    (t,) = key(pod(affinity=node_affinity([term]))).required_node_affinity
    assert t.matches({}, "n1") and not t.matches({}, "n2")
    term = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}
    (t,) = key(pod(affinity=node_affinity([term]))).required_node_affinity
    assert not t.matches({}, "n1") and t.matches({}, "n2")


@pytest.mark.parametrize("field,msg", [
    ({"key": "metadata.uid", "operator": "In", "values": ["x"]}, "unsupported field"),
    ({"key": "metadata.name", "operator": "In", "values": ["a", "b"]}, "exactly one"),
    ({"key": "metadata.name", "operator": "Exists"}, "In or NotIn"),
])
def test_match_fields_invalid(field, msg):
    assert msg in error(pod(affinity=node_affinity([{"matchFields": [field]}])))


def test_absent_and_empty_required_node_affinity():
    assert key(pod()).required_node_affinity is None
    assert key(pod(affinity=node_affinity(preferred=[]))).required_node_affinity is None
    k = key(pod(affinity=node_affinity([])))
    assert k.required_node_affinity == ()  # present with no terms: matches no node
    (t,) = key(pod(affinity=node_affinity([{}]))).required_node_affinity
    assert not t.matches({"a": "b"}, "n1")  # an empty term matches nothing


@pytest.mark.parametrize("expr,msg", [
    ({"key": "zone", "operator": "Equals", "values": ["a"]}, 'unknown operator "Equals"'),
    ({"key": "zone", "operator": "in", "values": ["a"]}, 'unknown operator "in"'),
    ({"key": "zone", "operator": "In", "values": []}, "at least one value"),
    ({"key": "zone", "operator": "In"}, "at least one value"),
    ({"key": "zone", "operator": "Exists", "values": ["a"]}, "takes no values"),
    ({"key": "cores", "operator": "Gt", "values": ["eight"]}, "exactly one integer"),
    ({"key": "cores", "operator": "Gt", "values": ["1", "2"]}, "exactly one integer"),
    ({"key": "cores", "operator": "Lt", "values": []}, "exactly one integer"),
    ({"key": "cores", "operator": "Lt", "values": ["1.5"]}, "exactly one integer"),
    ({"key": "cores", "operator": "Lt", "values": ["99999999999999999999"]}, "exactly one integer"),
    ({"key": "", "operator": "Exists"}, "key must not be empty"),
    ({"key": "zone", "operator": "In", "values": [1]}, "list of strings"),
    ("zone=a", "must be an object"),
])
def test_node_affinity_malformed(expr, msg):
    assert msg in error(pod(affinity=node_affinity([{"matchExpressions": [expr]}])))


def test_preferred_node_affinity():
    pref = [{"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
            {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]
    k = key(pod(affinity=node_affinity(preferred=pref)))
    assert sorted(t.weight for t in k.preferred_node_affinity) == [20, 80]
    assert k == key(pod(affinity=node_affinity(preferred=pref[::-1])))


@pytest.mark.parametrize("w", [0, -1, 101, None, "50", 50.0, True])
def test_preferred_weight_range(w):
    pref = [{"weight": w, "preference": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]
    assert "weight" in error(pod(affinity=node_affinity(preferred=pref)))


# ---------------------------------------------------------------------------------------------
# tolerations
# ---------------------------------------------------------------------------------------------

def test_tolerations_normalised_and_sorted():
    tols = [{"key": "b", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "a", "value": "x", "effect": "NoSchedule"},
            {"operator": "Exists"},
            {"key": "a", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]
    k = key(pod(tolerations=tols))
    assert k.tolerations == (Toleration("", "Exists", "", ""), Toleration("a", "Equal", "x", "NoSchedule"),
                             Toleration("b", "Exists", "", "NoExecute"))
    assert k == key(pod(tolerations=tols[::-1]))
    assert k.tolerations[0].tolerates(Taint("anything", "v", "NoExecute"))


@pytest.mark.parametrize("tol,msg", [
    ({"key": "a", "operator": "Gt", "value": "1"}, 'unknown operator "Gt"'),
    ({"key": "a", "operator": "Exists", "value": "x"}, "value must be empty"),
    ({"operator": "Equal", "value": "x"}, "must be Exists when key is empty"),
    ({"key": "a", "effect": "NoWay"}, 'unknown effect "NoWay"'),
])
def test_tolerations_malformed(tol, msg):
    assert msg in error(pod(tolerations=[tol]))


# ---------------------------------------------------------------------------------------------
# inter-pod affinity
# ---------------------------------------------------------------------------------------------

def pod_affinity(kind="podAffinity", required=None, preferred=None):
    d = {}
    if required is not None:
        d["requiredDuringSchedulingIgnoredDuringExecution"] = required
    if preferred is not None:
        d["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {kind: d}


def term(**kw):
    t = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    t.update(kw)
    return {k: v for k, v in t.items() if v is not None}


def test_namespaces_default_to_own():
    (t,) = key(pod(affinity=pod_affinity(required=[term()]))).pod_affinity
    assert t.namespaces == frozenset({"ns1"}) and t.namespace_selector is None
    assert t.matches_pod({"app": "db"}, "ns1", {}) and not t.matches_pod({"app": "db"}, "ns2", {})
    assert t.selector == LabelSelector((("app", "db"),), ())


def test_explicit_namespaces_and_selectors():
    (t,) = key(pod(affinity=pod_affinity(required=[term(namespaces=["a", "b"])]))).pod_affinity
    assert t.namespaces == frozenset({"a", "b"}) and t.namespace_selector is None
    (t,) = key(pod(affinity=pod_affinity(required=[term(namespaceSelector={})]))).pod_affinity
    assert t.namespaces == frozenset() and t.namespace_selector == LabelSelector()
    assert t.matches_pod({"app": "db"}, "any", {})  # {} selects every namespace
    sel = {"matchLabels": {"team": "x"}}
    (t,) = key(pod(affinity=pod_affinity(required=[term(namespaces=["a"], namespaceSelector=sel)]))).pod_affinity
    nsl = {"b": {"team": "x"}, "c": {"team": "y"}}
    assert t.matches_pod({"app": "db"}, "a", nsl) and t.matches_pod({"app": "db"}, "b", nsl)
    assert not t.matches_pod({"app": "db"}, "c", nsl)


def test_namespace_selector_resolved_against_snapshot():
    sel = {"matchExpressions": [{"key": "team", "operator": "In", "values": ["x"]}]}
    nsl = {"b": {"team": "x"}, "c": {"team": "y"}, "d": {"team": "x"}}
    (t,) = key(pod(affinity=pod_affinity(required=[term(namespaceSelector=sel)])),
               namespace_labels=nsl).pod_affinity
    assert t.namespaces == frozenset({"b", "d"}) and t.namespace_selector is None


def test_absent_label_selector_matches_no_pod():
    (t,) = key(pod(affinity=pod_affinity("podAntiAffinity", required=[term(labelSelector=None)]))).pod_anti_affinity
    assert t.selector is None and not t.matches_pod({}, "ns1", {})
    (t,) = key(pod(affinity=pod_affinity(required=[term(labelSelector={})]))).pod_affinity
    assert t.selector == LabelSelector() and t.matches_pod({"x": "y"}, "ns1", {})


def test_match_label_keys_folded():
    labels = {"app": "web", "rev": "3", "track": "canary"}
    t = term(labelSelector={"matchLabels": {"app": "web"}}, matchLabelKeys=["rev", "absent"],
             mismatchLabelKeys=["track"])
    (r,) = key(pod(labels=labels, affinity=pod_affinity("podAntiAffinity", required=[t]))).pod_anti_affinity
    assert set(r.selector.match_expressions) == {Requirement("rev", "In", ("3",)),
                                                 Requirement("track", "NotIn", ("canary",))}
    assert r.matches_pod({"app": "web", "rev": "3", "track": "stable"}, "ns1", {})
    assert not r.matches_pod({"app": "web", "rev": "2", "track": "stable"}, "ns1", {})
    assert not r.matches_pod({"app": "web", "rev": "3", "track": "canary"}, "ns1", {})


def test_match_label_keys_idempotent_with_apiserver_merge():
    labels = {"app": "web", "rev": "3"}
    plain = term(labelSelector={"matchLabels": {"app": "web"}}, matchLabelKeys=["rev"])
    merged = copy.deepcopy(plain)  # what the apiserver stores after applyMatchLabelKeys...
    merged["labelSelector"]["matchExpressions"] = [{"key": "rev", "operator": "In", "values": ["3"]}]
    a = key(pod(labels=labels, affinity=pod_affinity(required=[plain])))
    b = key(pod(labels=labels, affinity=pod_affinity(required=[merged])))
    assert a == b


def test_match_label_keys_not_applied_to_absent_selector():
    t = term(labelSelector=None, matchLabelKeys=["app"])
    (r,) = key(pod(affinity=pod_affinity(required=[t]))).pod_affinity
    assert r.selector is None


def test_preferred_pod_affinity_and_anti_affinity():
    pref = [{"weight": 100, "podAffinityTerm": term()},
            {"weight": 5, "podAffinityTerm": term(topologyKey="zone")}]
    k = key(pod(affinity={**pod_affinity(preferred=pref), **pod_affinity("podAntiAffinity", preferred=pref[:1])}))
    assert sorted(w.weight for w in k.preferred_pod_affinity) == [5, 100]
    assert [w.weight for w in k.preferred_pod_anti_affinity] == [100]
    assert k.pod_affinity == () and k.pod_anti_affinity == ()


@pytest.mark.parametrize("bad,msg", [
    (term(topologyKey=""), "topologyKey must not be empty"),
    (term(topologyKey=None), "topologyKey must not be empty"),
    (term(labelSelector={"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
     'unknown operator "Gt"'),
    (term(labelSelector={"matchLabels": {"a": 1}}), "must be a string"),
    (term(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "Nope"}]}), 'unknown operator "Nope"'),
    (term(namespaces="ns1"), "must be a list"),
    (term(matchLabelKeys=[3]), "list of strings"),
])
def test_pod_affinity_malformed(bad, msg):
    assert msg in error(pod(affinity=pod_affinity(required=[bad])))


@pytest.mark.parametrize("w", [0, 101, -5])
def test_pod_affinity_weight_range(w):
    pref = [{"weight": w, "podAffinityTerm": term()}]
    assert "range 1-100" in error(pod(affinity=pod_affinity("podAntiAffinity", preferred=pref)))


# ---------------------------------------------------------------------------------------------
# topology spread constraints
# ---------------------------------------------------------------------------------------------

def tsc(**kw):
    c = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "web"}}}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def test_spread_defaults_and_fields():
    (c,) = key(pod(topologySpreadConstraints=[tsc()])).spread_constraints
    assert (c.max_skew, c.topology_key, c.when_unsatisfiable) == (1, "zone", "DoNotSchedule")
    assert (c.min_domains, c.node_affinity_policy, c.node_taints_policy) == (1, "Honor", "Ignore")
    (c,) = key(pod(topologySpreadConstraints=[tsc(minDomains=3, nodeAffinityPolicy="Ignore",
                                                  nodeTaintsPolicy="Honor", maxSkew=2)])).spread_constraints
    assert (c.max_skew, c.min_domains, c.node_affinity_policy, c.node_taints_policy) == (2, 3, "Ignore", "Honor")


def test_spread_match_label_keys():
    labels = {"app": "web", "pod-template-hash": "abc"}
    (c,) = key(pod(labels=labels, topologySpreadConstraints=[tsc(matchLabelKeys=["pod-template-hash"])])).spread_constraints
    assert c.selector.matches(labels) and not c.selector.matches({"app": "web", "pod-template-hash": "def"})
    (c,) = key(pod(topologySpreadConstraints=[tsc(labelSelector=None)])).spread_constraints
    assert c.selector is None


@pytest.mark.parametrize("bad,msg", [
    (tsc(maxSkew=0), "maxSkew must be at least 1"),
    (tsc(maxSkew=None), "maxSkew must be at least 1"),
    (tsc(maxSkew="1"), "must be an integer"),
    (tsc(whenUnsatisfiable="Sometimes"), "whenUnsatisfiable"),
    (tsc(topologyKey=""), "topologyKey must not be empty"),
    (tsc(minDomains=0), "minDomains must be at least 1"),
    (tsc(minDomains=2, whenUnsatisfiable="ScheduleAnyway"), "minDomains can only be set"),
    (tsc(nodeTaintsPolicy="Maybe"), "nodeTaintsPolicy must be Honor or Ignore"),
])
def test_spread_malformed(bad, msg):
    assert msg in error(pod(topologySpreadConstraints=[bad]))


# ---------------------------------------------------------------------------------------------
# malformed resources and objects
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p,msg", [
    (pod([ctr("app", {"cpu": "12x"})]), 'invalid quantity "12x" for cpu in container "app"'),
    (pod([ctr("app", limits={"memory": "1 Gi"})]), 'invalid quantity "1 Gi" for memory in container "app"'),
    (pod([ctr("app")], init=[ctr("init", {"cpu": "--1"})]), 'for cpu in init container "init"'),
    (pod([ctr("app", {"cpu": "-1"})]), "must not be negative"),
    (pod([ctr("app", {"cpu": True})]), "invalid quantity True for cpu"),
    (pod(overhead={"cpu": "abc"}), "in spec.overhead"),
    (pod(resources={"requests": {"memory": "1KB"}}), "pod-level resources"),
    (pod([ctr("app", {"memory": "5Ei"})]), "too large"),
    (pod([ctr("a", {"memory": "4Ei"}), ctr("b", {"memory": "1"})]), "total pod request for memory is too large"),
    (pod([ctr("app", {"memory": "1e400"})]), "too large"),
    (pod([ctr("app", {"cpu": "5e15"})]), "too large"),
    (pod([ctr("app")], init=[ctr("i", restartPolicy="OnFailure")]), "restartPolicy"),
    (pod(["not-a-container"]), "spec.containers[0] must be an object"),
    (pod("nope"), "spec.containers must be a list"),
    (pod([ctr("app", resources=[1])]), "resources of container \"app\" must be an object"),
    (pod([ctr("app", ports=[{"containerPort": 1, "hostPort": 70000}])]), "1..65535"),
    (pod(priority="high"), "spec.priority must be an integer"),
    (pod(affinity=[]), "spec.affinity must be an object"),
    (pod(tolerations={"key": "a"}), "spec.tolerations must be a list"),
    (pod(nodeSelector={"a": 1}), 'spec.nodeSelector["a"] must be a string'),
    (pod(labels={"a": None}), 'metadata.labels["a"] must be a string'),
])
def test_malformed_pods(p, msg):
    assert msg in error(p)


def test_not_a_pod_at_all():
    for junk in (None, 3, "pod", [], object()):
        info = parse_pod(junk)
        assert isinstance(info, PodInfo) and info.key is None and "unreadable pod" in info.error
    info = parse_pod({"metadata": "x", "spec": {}})
    assert info.key is None and "metadata must be an object" in info.error


# ---------------------------------------------------------------------------------------------
# equivalence keys
# ---------------------------------------------------------------------------------------------

def _rich_pod(name, labels, order):
    tols = [{"key": "a", "operator": "Exists"}, {"key": "b", "value": "1", "effect": "NoSchedule"}]
    exprs = [{"key": "zone", "operator": "In", "values": ["b", "a"]}, {"key": "gpu", "operator": "Exists"}]
    if order:
        tols, exprs = tols[::-1], exprs[::-1]
    return pod([ctr("app", {"cpu": "1", "memory": "1Gi"})], name=name, labels=labels, tolerations=tols,
               nodeSelector=dict(sorted({"x": "1", "y": "2"}.items(), reverse=order)),
               affinity={**node_affinity([{"matchExpressions": exprs}]),
                         **pod_affinity("podAntiAffinity", required=[term(), term(topologyKey="zone")][::(-1 if order else 1)])},
               topologySpreadConstraints=[tsc(), tsc(topologyKey="host", whenUnsatisfiable="ScheduleAnyway")][::(-1 if order else 1)])


def test_equal_specs_give_equal_keys():
    a = key(_rich_pod("a", {"app": "web", "v": "1"}, False))
    b = key(_rich_pod("b", dict(reversed({"app": "web", "v": "1"}.items())), True))
    assert a == b and hash(a) == hash(b)
    c = key(_rich_pod("c", {"app": "web", "v": "2"}, False))
    assert c != a


def test_memoised_key_equals_direct_parse():
    for p in (_rich_pod("a", {"app": "web"}, False), pod(overhead={"cpu": "1"}),
              pod([ctr("a", {"cpu": "1"})], init=[sidecar("s", {"cpu": "2"})], nodeName="n3")):
        info = parse_pod(p)
        direct = parse_mod._pod_key(p["spec"], info.namespace, p["metadata"]["labels"],
                                    p["spec"].get("nodeName", ""), None)
        assert info.key == direct


def test_memo_distinguishes_namespaces_and_labels():
    a = key(pod(namespace="a", affinity=pod_affinity(required=[term()])))
    b = key(pod(namespace="b", affinity=pod_affinity(required=[term()])))
    assert a.pod_affinity[0].namespaces == frozenset({"a"}) and b.pod_affinity[0].namespaces == frozenset({"b"})
    assert key(pod(labels={"app": "x"})).labels != key(pod(labels={"app": "y"})).labels


# ---------------------------------------------------------------------------------------------
# kubernetes.client models
# ---------------------------------------------------------------------------------------------

def test_v1pod_and_v1node_input():
    from datetime import datetime, timezone

    from kubernetes import client

    v1 = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="ns1", uid="uid-p", labels={"app": "web"},
                                     creation_timestamp=datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", resources=client.V1ResourceRequirements(
                requests={"cpu": "500m"}, limits={"memory": "1Gi"}))],
            tolerations=[client.V1Toleration(key="a", operator="Exists")]))
    info = parse_pod(v1)
    assert info.error is None
    assert info.key == key(pod([ctr("app", {"cpu": "500m"}, {"memory": "1Gi"})], tolerations=[{"key": "a", "operator": "Exists"}]))
    assert info.creation_ts == 1714557600.0
    n = client.V1Node(metadata=client.V1ObjectMeta(name="n1"),
                      status=client.V1NodeStatus(allocatable={"cpu": "2", "pods": "10"},
                                                 conditions=[client.V1NodeCondition(type="Ready", status="True")]))
    node = parse_node(n)
    assert node.error is None and node.allocatable == {"cpu": 2000, "pods": 10} and node.ready


# ---------------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------------

def node(**kw):
    n = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "zone": "a"}},
         "spec": {},
         "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": "0"},
                    "allocatable": {"cpu": "31", "memory": "120Gi", "pods": "110"},
                    "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    for path, v in kw.items():
        section, field = path.split("__")
        if v is None:
            n[section].pop(field, None)
        else:
            n[section][field] = v
    return n


def test_node_basic():
    n = parse_node(node(spec__taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
                                      {"key": "x", "effect": "NoExecute"}]))
    assert n == NodeInfo(name="n1", labels={"kubernetes.io/hostname": "n1", "zone": "a"},
                         allocatable={"cpu": 31000, "memory": 120 * Gi, "pods": 110},
                         taints=(Taint("dedicated", "batch", "NoSchedule"), Taint("x", "", "NoExecute")),
                         unschedulable=False, ready=True, error=None)


def test_node_allocatable_falls_back_to_capacity():
    n = parse_node(node(status__allocatable=None))
    assert n.allocatable == {"cpu": 32000, "memory": 128 * Gi, "pods": 110, "nvidia.com/gpu": 0}


def test_node_pods_always_present():
    assert parse_node(node(status__allocatable={"cpu": "1"})).allocatable == {"cpu": 1000, "pods": 0}
    n = parse_node(node(status__allocatable=None, status__capacity=None))
    assert n.allocatable == {"pods": 0} and n.error is None


@pytest.mark.parametrize("conditions,ready", [
    ([{"type": "Ready", "status": "True"}], True),
    ([{"type": "Ready", "status": "False"}], False),
    ([{"type": "Ready", "status": "Unknown"}], False),
    ([{"type": "MemoryPressure", "status": "False"}], False),
    (None, False),
])
def test_node_ready(conditions, ready):
    assert parse_node(node(status__conditions=conditions)).ready is ready


def test_node_unschedulable():
    assert parse_node(node(spec__unschedulable=True)).unschedulable
    assert not parse_node(node(spec__unschedulable=False)).unschedulable


@pytest.mark.parametrize("n,msg", [
    (node(status__allocatable={"cpu": "12x"}), 'invalid quantity "12x" for cpu in status.allocatable'),
    (node(status__allocatable={"memory": "-1Gi"}), "negative"),
    (node(status__allocatable={"memory": "5Ei"}), "too large"),
    (node(status__allocatable=None, status__capacity={"pods": "many"}), "in status.capacity"),
    (node(spec__taints=[{"key": "a", "effect": "Sometimes"}]), "effect must be one of"),
    (node(spec__taints=[{"effect": "NoSchedule"}]), "key must not be empty"),
    (node(spec__unschedulable="yes"), "must be a boolean"),
    (node(status__conditions="Ready"), "must be a list"),
    ({"metadata": {"labels": {}}}, "metadata.name is missing"),
])
def test_node_malformed(n, msg):
    info = parse_node(n)
    assert isinstance(info, NodeInfo) and info.error and msg in info.error


def test_node_not_an_object():
    for junk in (None, "node", 5, [1]):
        info = parse_node(junk)
        assert info.error and not info.ready


# ---------------------------------------------------------------------------------------------
# junk never raises
# ---------------------------------------------------------------------------------------------

json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
             | st.floats() | st.text(max_size=6)
             | st.sampled_from(["1", "100m", "1Gi", "-1", "12x", "", "In", "Exists", "Gt", "Always",
                                "NoSchedule", "DoNotSchedule", "Honor", "metadata.name"]))
json_any = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=12)


def _maybe(d):
    return st.fixed_dictionaries({}, optional=d) | json_any


quantity_junk = st.dictionaries(st.sampled_from(["cpu", "memory", "pods", "nvidia.com/gpu", "hugepages-2Mi"]), json_leaf, max_size=3)
requirement = _maybe({"key": st.sampled_from(["zone", "", "metadata.name"]) | json_leaf,
                      "operator": st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Bad"]) | json_leaf,
                      "values": st.lists(st.sampled_from(["a", "1", "x"]) | json_leaf, max_size=2) | json_any})
selector = _maybe({"matchLabels": st.dictionaries(st.text(max_size=3), json_leaf, max_size=2) | json_any,
                   "matchExpressions": st.lists(requirement, max_size=2) | json_any})
aff_term = _maybe({"labelSelector": selector, "topologyKey": json_leaf, "namespaces": json_any,
                   "namespaceSelector": selector, "matchLabelKeys": json_any, "mismatchLabelKeys": json_any})
container = _maybe({"name": json_leaf, "restartPolicy": json_leaf,
                    "resources": _maybe({"requests": quantity_junk | json_any, "limits": quantity_junk | json_any}),
                    "ports": st.lists(_maybe({"hostPort": json_leaf, "containerPort": json_leaf, "hostIP": json_leaf,
                                              "protocol": json_leaf}), max_size=2) | json_any})
nst = _maybe({"matchExpressions": st.lists(requirement, max_size=2) | json_any,
              "matchFields": st.lists(requirement, max_size=2) | json_any})
spec_junk = _maybe({
    "containers": st.lists(container, max_size=2) | json_any,
    "initContainers": st.lists(container, max_size=2) | json_any,
    "overhead": quantity_junk | json_any,
    "resources": _maybe({"requests": quantity_junk, "limits": quantity_junk}),
    "priority": json_leaf, "nodeName": json_leaf, "hostNetwork": json_leaf, "schedulerName": json_leaf,
    "nodeSelector": json_any,
    "tolerations": st.lists(_maybe({"key": json_leaf, "operator": json_leaf, "value": json_leaf, "effect": json_leaf}),
                            max_size=2) | json_any,
    "affinity": _maybe({
        "nodeAffinity": _maybe({
            "requiredDuringSchedulingIgnoredDuringExecution": _maybe({"nodeSelectorTerms": st.lists(nst, max_size=2) | json_any}),
            "preferredDuringSchedulingIgnoredDuringExecution": st.lists(_maybe({"weight": json_leaf, "preference": nst}), max_size=2)}),
        "podAffinity": _maybe({"requiredDuringSchedulingIgnoredDuringExecution": st.lists(aff_term, max_size=2) | json_any,
                               "preferredDuringSchedulingIgnoredDuringExecution": st.lists(
                                   _maybe({"weight": json_leaf, "podAffinityTerm": aff_term}), max_size=2)}),
        "podAntiAffinity": _maybe({"requiredDuringSchedulingIgnoredDuringExecution": st.lists(aff_term, max_size=2)}),
    }),
    "topologySpreadConstraints": st.lists(_maybe({
        "maxSkew": json_leaf, "topologyKey": json_leaf, "whenUnsatisfiable": json_leaf, "labelSelector": selector,
        "matchLabelKeys": json_any, "minDomains": json_leaf, "nodeAffinityPolicy": json_leaf,
        "nodeTaintsPolicy": json_leaf}), max_size=2) | json_any,
})
pod_junk = _maybe({"metadata": _maybe({"name": json_leaf, "namespace": json_leaf, "uid": json_leaf,
                                       "labels": st.dictionaries(st.text(max_size=3), json_leaf, max_size=2) | json_any,
                                       "creationTimestamp": json_leaf | st.just("2024-01-01T00:00:00Z")}),
                   "spec": spec_junk, "status": json_any})
node_junk = _maybe({"metadata": _maybe({"name": json_leaf, "labels": json_any}),
                    "spec": _maybe({"taints": st.lists(_maybe({"key": json_leaf, "value": json_leaf,
                                                                "effect": json_leaf}), max_size=2) | json_any,
                                    "unschedulable": json_leaf}),
                    "status": _maybe({"allocatable": quantity_junk | json_any, "capacity": quantity_junk | json_any,
                                      "conditions": st.lists(_maybe({"type": json_leaf, "status": json_leaf}),
                                                             max_size=2) | json_any})})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pod_junk)
def test_junk_pods_never_raise(obj):
    info = parse_pod(obj)
    assert isinstance(info, PodInfo)
    assert (info.key is None) == (info.error is not None)
    if info.key is not None:
        hash(info.key)
        # the memoised key must be exactly what a direct parse of this very object gives
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        direct = parse_mod._pod_key(spec, info.namespace, meta.get("labels"), info.node_name, None)
        assert direct == info.key
    again = parse_pod(copy.deepcopy(obj))
    assert again.key == info.key and again.error == info.error


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node_junk)
def test_junk_nodes_never_raise(obj):
    info = parse_node(obj)
    assert isinstance(info, NodeInfo)
    if info.error is None:
        assert "pods" in info.allocatable
        assert all(isinstance(v, int) and 0 <= v <= 2**62 for v in info.allocatable.values())


@settings(max_examples=100, deadline=None)
@given(json_any)
def test_free_form_junk_never_raises(obj):
    assert isinstance(parse_pod(obj), PodInfo)
    assert isinstance(parse_node(obj), NodeInfo)


# ---------------------------------------------------------------------------------------------
# valid specs: order-irrelevant lists never change the key
# ---------------------------------------------------------------------------------------------

label_keys = st.sampled_from(["app", "zone", "tier", "rev"])
label_vals = st.sampled_from(["a", "b", "c", "1", "7"])
v_requirement = st.one_of(
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(label_vals, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"key": label_keys, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
v_node_requirement = v_requirement | st.fixed_dictionaries(
    {"key": label_keys, "operator": st.sampled_from(["Gt", "Lt"]), "values": st.lists(st.sampled_from(["1", "5", "-2"]), min_size=1, max_size=1)})
v_selector = st.fixed_dictionaries({}, optional={"matchLabels": st.dictionaries(label_keys, label_vals, max_size=2),
                                                 "matchExpressions": st.lists(v_requirement, max_size=3)})
v_term = st.fixed_dictionaries({"topologyKey": st.sampled_from(["zone", "kubernetes.io/hostname"])},
                               optional={"labelSelector": v_selector, "namespaces": st.lists(st.sampled_from(["a", "b"]), max_size=2),
                                         "namespaceSelector": v_selector, "matchLabelKeys": st.lists(label_keys, max_size=2),
                                         "mismatchLabelKeys": st.lists(label_keys, max_size=1)})
v_weighted = st.fixed_dictionaries({"weight": st.integers(1, 100), "podAffinityTerm": v_term})
v_pod_aff = st.fixed_dictionaries({}, optional={"requiredDuringSchedulingIgnoredDuringExecution": st.lists(v_term, max_size=3),
                                                "preferredDuringSchedulingIgnoredDuringExecution": st.lists(v_weighted, max_size=3)})
v_nst = st.fixed_dictionaries({}, optional={"matchExpressions": st.lists(v_node_requirement, max_size=3),
                                            "matchFields": st.lists(st.fixed_dictionaries({
                                                "key": st.just("metadata.name"), "operator": st.sampled_from(["In", "NotIn"]),
                                                "values": st.lists(st.sampled_from(["n1", "n2"]), min_size=1, max_size=1)}), max_size=1)})
v_spec = st.fixed_dictionaries(
    {"containers": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c"])}, optional={
        "resources": st.fixed_dictionaries({}, optional={"requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), st.sampled_from(["0", "1", "100m", "1Gi", "1.5"]), max_size=2)}),
        "ports": st.lists(st.fixed_dictionaries({"containerPort": st.just(80), "hostPort": st.integers(0, 3)}), max_size=2)}),
        min_size=1, max_size=3)},
    optional={
        "tolerations": st.lists(st.one_of(
            st.fixed_dictionaries({"key": label_keys, "operator": st.just("Exists")}, optional={"effect": st.sampled_from(["NoSchedule", "NoExecute"])}),
            st.fixed_dictionaries({"key": label_keys, "value": label_vals}, optional={"operator": st.just("Equal"), "effect": st.just("NoSchedule")})),
            max_size=4),
        "nodeSelector": st.dictionaries(label_keys, label_vals, max_size=2),
        "affinity": st.fixed_dictionaries({}, optional={
            "nodeAffinity": st.fixed_dictionaries({}, optional={
                "requiredDuringSchedulingIgnoredDuringExecution": st.fixed_dictionaries({"nodeSelectorTerms": st.lists(v_nst, max_size=3)}),
                "preferredDuringSchedulingIgnoredDuringExecution": st.lists(st.fixed_dictionaries({"weight": st.integers(1, 100), "preference": v_nst}), max_size=3)}),
            "podAffinity": v_pod_aff, "podAntiAffinity": v_pod_aff}),
        "topologySpreadConstraints": st.lists(st.fixed_dictionaries(
            {"maxSkew": st.integers(1, 3), "topologyKey": st.sampled_from(["zone", "host"]), "whenUnsatisfiable": st.sampled_from(["DoNotSchedule", "ScheduleAnyway"])},
            optional={"labelSelector": v_selector, "matchLabelKeys": st.lists(label_keys, max_size=2)}), max_size=3),
    })


def _shuffled(x, rnd):
    """Reverse/shuffle every list whose order Kubernetes ignores (all of them here except
    containers, whose order decides init-container steps; app containers are a plain sum)."""
    if isinstance(x, dict):
        return {k: _shuffled(v, rnd) for k, v in reversed(list(x.items()))}
    if isinstance(x, list):
        items = [_shuffled(v, rnd) for v in x]
        rnd.shuffle(items)
        return items
    return x


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=v_spec, labels=st.dictionaries(label_keys, label_vals, max_size=3), rnd=st.randoms(use_true_random=False))
def test_valid_specs_parse_and_keys_ignore_order(spec, labels, rnd):
    p = {"metadata": {"name": "x", "namespace": "ns1", "labels": labels}, "spec": spec}
    info = parse_pod(p)
    assert info.error is None, info.error
    direct = parse_mod._pod_key(spec, "ns1", labels, "", None)
    assert info.key == direct
    shuffled = parse_pod({"metadata": {"name": "y", "namespace": "ns1", "labels": dict(reversed(list(labels.items())))},
                          "spec": _shuffled(spec, rnd)})
    assert shuffled.key == info.key and hash(shuffled.key) == hash(info.key)


def test_memo_swaps_labels_only_when_labels_cannot_matter():
    # Same template, unique labels (StatefulSet-like): labels differ, everything else shared.
    a = key(pod(labels={"app": "db", "pod-name": "db-0"}, affinity=pod_affinity(required=[term()])))
    b = key(pod(labels={"app": "db", "pod-name": "db-1"}, affinity=pod_affinity(required=[term()])))
    assert a.labels != b.labels and a.pod_affinity is b.pod_affinity
    # With matchLabelKeys the terms depend on the labels: each pod gets its own selector.
    t = term(labelSelector={"matchLabels": {"app": "db"}}, matchLabelKeys=["pod-name"])
    c = key(pod(labels={"app": "db", "pod-name": "db-0"}, affinity=pod_affinity(required=[t])))
    d = key(pod(labels={"app": "db", "pod-name": "db-1"}, affinity=pod_affinity(required=[t])))
    assert Requirement("pod-name", "In", ("db-0",)) in c.pod_affinity[0].selector.match_expressions
    assert Requirement("pod-name", "In", ("db-1",)) in d.pod_affinity[0].selector.match_expressions
    s = tsc(matchLabelKeys=["pod-name"])
    e = key(pod(labels={"app": "web", "pod-name": "w-0"}, topologySpreadConstraints=[s]))
    f = key(pod(labels={"app": "web", "pod-name": "w-1"}, topologySpreadConstraints=[s]))
    assert e.spread_constraints != f.spread_constraints
    assert "labels" in error(pod(labels={"app": 1}))  # labels are still validated on the memo path
