"""PodTopologySpread through the Engine: DoNotSchedule keeps the skew (matching pods in the domain
+ the pod itself if it matches - the global minimum) within maxSkew, with minDomains and the
nodeAffinity/nodeTaints inclusion policies; ScheduleAnyway scores the emptier domain higher."""

from __future__ import annotations

import math
from collections import Counter


from tests.plugins.builders import bound, engine, message, node, only, pod, scores, waiting, where

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
PTS_ONLY = only({"PodTopologySpread": 1})
REASON = "node(s) didn't match pod topology spread constraints"



def spread(key=ZONE, skew=1, when="DoNotSchedule", labels=None, **extra):
    return {"topologySpreadConstraints": [{
        "maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": labels or {"app": "web"}}, **extra}]}


def web(**kw):
    return pod(cpu="100m", labels={"app": "web"}, **{**spread(), **kw})


def two_zones(**kw):
    return [node("a1", labels={ZONE: "a"}, **kw), node("a2", labels={ZONE: "a"}, **kw),
            node("b1", labels={ZONE: "b"}, **kw), node("b2", labels={ZONE: "b"}, **kw)]


def existing(*placement, namespace="default", labels=None):
    return [bound(f"e{i}", n, namespace=namespace, labels=labels or {"app": "web"}) for i, n in enumerate(placement)]


def test_max_skew_sends_pod_to_the_emptier_zone():
    e = engine(two_zones(), existing("a1", "a2"))
    assert set(scores(e, web())) == {"b1", "b2"}


def test_batch_is_spread_evenly():
    nodes = [node(f"{z}{i}", labels={ZONE: z}) for z in "abc" for i in range(2)]
    e = engine(nodes)
    res = e.schedule([web() for _ in range(9)])
    per_zone = Counter(r.candidates[0][0][0] for r in res)
    assert per_zone == {"a": 3, "b": 3, "c": 3}


def test_skew_two_allows_imbalance_of_two():
    e = engine(two_zones(), existing("a1"))
    assert set(scores(e, web(**spread(skew=2)))) == {"a1", "a2", "b1", "b2"}
    e = engine(two_zones(), existing("a1", "a2"))
    assert set(scores(e, web(**spread(skew=2)))) == {"b1", "b2"}


def test_message_names_first_failing_plugin_per_node():
    nodes = [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
             node("b1", labels={ZONE: "b"}, cpu="100m"), node("b2", labels={ZONE: "b"}, cpu="100m")]
    e = engine(nodes, existing("a1", "a2"))
    assert message(e, pod(cpu="1", labels={"app": "web"}, **spread())) == \
        f"0/4 nodes are available: 2 Insufficient cpu, 2 {REASON}."


def test_missing_topology_label():
    e = engine(two_zones() + [node("nolabel")], existing("a1", "a2", "b1", "b2"))
    r = e.schedule([web()], commit=False)[0]
    assert r.candidates  # some zone node fits
    e = engine([node("nolabel"), node("nolabel2")])
    assert message(e, web()) == f"0/2 nodes are available: 2 {REASON} (missing required label)."


def test_self_match():
    """A pod its own selector does not match is not counted in the skew."""
    e = engine(two_zones(), existing("a1"))
    other = pod(cpu="100m", labels={"app": "other"}, **spread())
    assert set(scores(e, other)) == {"a1", "a2", "b1", "b2"}
    assert set(scores(e, web())) == {"b1", "b2"}


def test_min_domains():
    """With fewer eligible domains than minDomains the global minimum counts as 0."""
    e = engine(two_zones(), existing("a1", "b1"))
    assert set(scores(e, web())) == {"a1", "a2", "b1", "b2"}
    assert set(scores(e, web(**spread(minDomains=2)))) == {"a1", "a2", "b1", "b2"}
    assert message(e, web(**spread(minDomains=3))) == f"0/4 nodes are available: 4 {REASON}."


def test_node_affinity_policy():
    """Zone c is outside the pod's nodeSelector: Honor leaves it out of the minimum, Ignore counts
    its zero and the pod cannot go anywhere."""
    nodes = [node("a1", labels={ZONE: "a", "tier": "x"}), node("b1", labels={ZONE: "b", "tier": "x"}),
             node("c1", labels={ZONE: "c"})]
    e = engine(nodes, existing("a1", "b1"))
    assert set(scores(e, web(nodeSelector={"tier": "x"}))) == {"a1", "b1"}
    ignore = web(nodeSelector={"tier": "x"}, **spread(nodeAffinityPolicy="Ignore"))
    r = e.schedule([ignore], commit=False)[0]
    assert not r.candidates
    assert r.reasons == {"node(s) didn't match Pod's node affinity/selector": 1, REASON: 2}


def test_node_taints_policy():
    nodes = [node("a1", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"}),
             node("c1", labels={ZONE: "c"}, taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])]
    e = engine(nodes, existing("a1", "b1"))
    # default nodeTaintsPolicy Ignore: tainted zone c (0 pods) is a domain, minimum 0
    assert where(engine(nodes, existing("a1", "b1")), web()) is None
    assert set(scores(e, web(**spread(nodeTaintsPolicy="Honor")))) == {"a1", "b1"}


def test_only_pods_in_the_same_namespace_count():
    e = engine(two_zones(), existing("a1", "a2", namespace="other"))
    assert set(scores(e, web())) == {"a1", "a2", "b1", "b2"}


def test_zone_spread_counts_pods_bound_before_the_class_was_built():
    """Minimal case: two matching pods already on zone a, none on zone b."""
    e = engine([node("a1", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"})], existing("a1", "a1"))
    assert set(scores(e, web())) == {"b1"}


def test_zone_spread_counts_pods_bound_after_the_class_was_built():
    e = engine([node("a1", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"})])
    assert set(scores(e, web())) == {"a1", "b1"}  # class built, matcher registered
    for p in existing("a1", "a1"):
        e.add_pod(p)
    assert set(scores(e, web())) == {"b1"}


def test_hostname_spread():
    nodes = [node("n1"), node("n2"), node("n3")]
    e = engine(nodes, existing("n1", "n1", "n2"))
    assert set(scores(e, web(**spread(key=HOST)))) == {"n3"}
    counts = Counter({"n1": 2, "n2": 1, "n3": 0})
    for _ in range(6):
        counts[where(e, web(**spread(key=HOST)))] += 1
        assert max(counts.values()) - min(counts.values()) <= 1
    assert counts == {"n1": 3, "n2": 3, "n3": 3}


def test_schedule_anyway_prefers_the_emptier_domain():
    nodes = [node("a1", labels={ZONE: "a"}), node("b1", labels={ZONE: "b"}), node("c1", labels={ZONE: "c"})]
    e = engine(nodes, existing("a1", "a1", "c1"), profile=PTS_ONLY)
    p = web(**spread(when="ScheduleAnyway"))
    w = math.log(3 + 2)
    raw = {"a1": round(2 * w), "b1": 0, "c1": round(1 * w)}  # 3, 0, 2
    hi, lo = max(raw.values()), min(raw.values())
    assert scores(e, p) == {n: 100 * (hi + lo - s) // hi for n, s in raw.items()}  # 0, 100, 33
    assert where(engine(nodes, existing("a1", "a1", "c1")), p) == "b1"


def test_schedule_anyway_never_filters():
    e = engine(two_zones(), existing("a1", "a2", "a1"))
    assert set(scores(e, web(**spread(when="ScheduleAnyway")))) == {"a1", "a2", "b1", "b2"}


def test_schedule_anyway_batch_alternates_zones():
    e = engine(two_zones(cpu="64"))
    res = e.schedule([web(**spread(when="ScheduleAnyway")) for _ in range(8)])
    assert Counter(r.candidates[0][0][0] for r in res) == {"a": 4, "b": 4}


def test_score_normalization_ignores_nodes_rejected_by_spread():
    """a1 (zone a, full of web pods) is rejected by the spread constraint, so it must not set the
    NodeAffinity maximum: among b1 and b2 the preferred term makes b1 score 100 (x2), which
    outweighs b2 being emptier. Taking a1's raw 100 as the max instead scales b1 down to 10."""
    from cluster_scheduler.config import DEFAULT_SCORE_WEIGHTS
    prof = only({k: v for k, v in DEFAULT_SCORE_WEIGHTS.items() if k != "NodeResourcesBalancedAllocation"})
    nodes = [node("a1", cpu="8", labels={ZONE: "a", "disk": "ssd"}),
             node("b1", cpu="4", labels={ZONE: "b", "fast": "yes"}),
             node("b2", cpu="8", labels={ZONE: "b"})]
    e = engine(nodes, [bound("busy", "b1", cpu="2")], profile=prof)
    p = pod(cpu="1", labels={"app": "web"}, **spread(), affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 10, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}})
    assert set(scores(e, p)) == {"a1", "b1", "b2"}  # registers the spread counts first
    for q in existing("a1", "a1"):
        e.add_pod(q)
    got = scores(e, p)
    assert set(got) == {"b1", "b2"}
    # upstream: NodeAffinity 2 * (100, 0); fit cpu 25 / 87, memory (non-zero 400Mi / 200Mi of 8Gi)
    # 95 / 97; taints 3 * 100
    assert got == {"b1": 200 + (25 + 95) // 2 + 300, "b2": 0 + (87 + 97) // 2 + 300}
    assert where(e, p) == "b1"


def test_schedule_anyway_on_a_key_no_node_has():
    # Every node lacks the key, so upstream ignores all of them for PodTopologySpread (score 0) and
    # the pod is still scheduled on the other plugins' scores. Here a and b tie (fit 97 each,
    # balanced 74 each, taints 300), so either is right.
    e = engine([node("a"), node("b", cpu="8")])
    p = web(**spread(key="rack", when="ScheduleAnyway"))
    assert scores(e, p) == {"a": 97 + 74 + 300, "b": 97 + 74 + 300}
    r = e.schedule([p])[0]
    assert r.candidates and r.candidates[0][0] in ("a", "b")


def test_a_waiting_pod_keeps_no_domain_within_max_skew():
    """Zone a holds a waiting (nominated) web pod, zone b a bound one. Counting the waiting pod,
    both zones take the next; without it (upstream's second pass) only zone a does. Judged by
    the single-constraint gate, by the general filter (two constraints) and by the ledger's check."""
    for extra in ({}, {"topologySpreadConstraints": [
            spread()["topologySpreadConstraints"][0],
            {**spread()["topologySpreadConstraints"][0], "topologyKey": "kubernetes.io/hostname", "maxSkew": 5}]}):
        w = waiting("w", "a1", cpu="100m", labels={"app": "web"})
        e = engine(two_zones(), [w, *existing("b1")])
        p = web(**extra)
        assert set(scores(e, p)) == {"a1", "a2"}
        assert not e.check(p, "b2")
        e.settle(w.uid)
        assert set(scores(e, p)) == {"a1", "a2", "b1", "b2"}
        assert e.check(p, "b2")
