"""Engine behaviour beyond single plugins: batches charge their own picks, commit=False is a pure
proposal, candidate restriction (set_owned), exact node/pod updates, `check` agreeing with
`schedule`, and topology counts that stay global when a replica owns only some nodes."""

from __future__ import annotations

import numpy as np
import pytest

from cluster_scheduler.engine import Engine, fit_error_message
from tests.plugins.builders import bound, engine, message, node, pod, scores, where

ZONE = "topology.kubernetes.io/zone"


def used(e: Engine, name: str, resource: str = "cpu") -> int:
    t = e.table
    return int(t.req[t.index[name], t.res_index[resource]])


def snapshot(e: Engine):
    """Everything a placement changes: requested and non-zero requested per row, charged pods
    (overall and per row), and the pod index's matcher and holder counts."""
    t = e.table
    n = t.size
    return (t.req[:n].copy(), t.nonzero[:n].copy(), set(t.charged), [set(p) for p in t.pods],
            {k: c.per_row[:n].copy() for k, (_, c) in e.index.matchers.items()},
            {k: c.per_row[:n].copy() for k, c in e.index.holders.items()})


def test_fit_error_message_format():
    assert fit_error_message(5, {"Insufficient memory": 2, "Insufficient cpu": 3, "x": 0}) == \
        "0/5 nodes are available: 2 Insufficient memory, 3 Insufficient cpu."
    # sorted as strings, as upstream's sort.Strings: "10 ..." before "9 ..."
    assert fit_error_message(19, {"b": 9, "a": 10}) == "0/19 nodes are available: 10 a, 9 b."


def test_no_nodes():
    r = Engine().schedule([pod(cpu="1")])[0]
    assert not r.candidates and r.error is None and r.num_nodes == 0
    # upstream's wording for an empty cluster (ErrNoNodesAvailable)
    assert r.message() == "no nodes available to schedule pods"


def test_batch_never_overcommits_one_small_node():
    e = engine([node("small", cpu="2", memory="4Gi", pods="110")])
    res = e.schedule([pod(cpu="300m", memory="100Mi") for _ in range(20)])
    placed = [r for r in res if r.candidates]
    assert len(placed) == 6  # 6 * 300m = 1800m <= 2000m; a 7th would need 2100m
    assert used(e, "small") == 1800 <= 2000
    assert all(r.message() == "0/1 nodes are available: 1 Insufficient cpu." for r in res if not r.candidates)


def test_batch_across_nodes_respects_every_node():
    nodes = [node(f"n{i}", cpu=str(1 + i), memory="64Gi") for i in range(4)]  # 1+2+3+4 = 10 cpu
    e = engine(nodes)
    res = e.schedule([pod(cpu="500m") for _ in range(25)])
    assert sum(bool(r.candidates) for r in res) == 20
    for i in range(4):
        assert used(e, f"n{i}") <= (1 + i) * 1000


def test_distinct_classes_in_one_batch_see_each_other():
    e = engine([node("a", cpu="2"), node("b", cpu="2")])
    res = e.schedule([pod(cpu="1500m"), pod(cpu="1", labels={"x": "y"}), pod(cpu="1", memory="1Mi"),
                      pod(cpu="600m", labels={"z": "1"})])
    # 1.5 on one node, 1 + 1 on the other; 600m fits on neither (500m and 0 left)
    assert [bool(r.candidates) for r in res] == [True, True, True, False]
    assert {res[0].candidates[0][0], res[1].candidates[0][0]} == {"a", "b"}
    assert used(e, "a") <= 2000 and used(e, "b") <= 2000


def test_commit_false_leaves_the_table_unchanged():
    e = engine([node("a", cpu="4", labels={ZONE: "z1"}), node("b", cpu="4", labels={ZONE: "z2"})],
               [bound("x", "a", cpu="1", labels={"app": "web"})])
    web_anti = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": ZONE}]}}}
    batch = [pod(cpu="1", labels={"app": "web"}, **web_anti) for _ in range(3)] + [pod(cpu="1") for _ in range(5)]
    where(e, pod(cpu="1", labels={"app": "web"}, **web_anti))  # registers matchers / holders first
    before = snapshot(e)
    pods_before = dict(e.pods)
    res = e.schedule(batch, k=2, commit=False)
    assert sum(bool(r.candidates) for r in res) >= 2
    after = snapshot(e)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert before[2] == after[2] and before[3] == after[3]
    for b, a in ((before[4], after[4]), (before[5], after[5])):
        for k in b:
            assert np.array_equal(b[k], a.get(k, np.zeros_like(b[k]))), k
        for k in set(a) - set(b):  # counts registered during the batch must be back to zero
            assert not a[k].any(), k
    assert e.pods.keys() == pods_before.keys()
    # and the same batch, proposed again, gets the same answers
    again = e.schedule(batch, k=2, commit=False)
    assert [r.candidates for r in again] == [r.candidates for r in res]


def test_commit_false_within_batch_still_charges_picks():
    """Proposals inside one batch see each other (no node over-proposed), then are undone."""
    e = engine([node("a", cpu="2")])
    res = e.schedule([pod(cpu="1") for _ in range(3)], commit=False)
    assert [bool(r.candidates) for r in res] == [True, True, False]
    assert used(e, "a") == 0


def test_k_candidates_best_first():
    e = engine([node("n1", cpu="2"), node("n2", cpu="4"), node("n3", cpu="8"), node("n4", cpu="1")])
    r = e.schedule([pod(cpu="1500m")], k=3, commit=False)[0]
    names = [n for n, _ in r.candidates]
    assert names == ["n3", "n2", "n1"]
    s = [sc for _, sc in r.candidates]
    assert s == sorted(s, reverse=True)


def test_equal_scores_go_round_robin():
    """Pods that leave every node's score as it was (nodes over-committed by the default non-zero
    requests of pods that request nothing) spread over the tied nodes, one each in turn, where
    kube-scheduler picks one at random; by row they all went to the first node."""
    e = engine([node(f"n{i}", cpu="50m", memory="100Mi") for i in range(3)])
    for n in (9, 1, 20, 1):  # batches and single pods (the class kept, or built anew)
        e.schedule([pod() for _ in range(n)])
    e.schedule([pod(labels={"other": "class"}) for _ in range(9)])  # another class takes up the turn
    counts = [len(e.table.pods[e.table.index[f"n{i}"]]) for i in range(3)]
    assert max(counts) - min(counts) <= 1, counts


def test_equal_scores_in_proposals_follow_the_same_turn():
    e = engine([node(f"n{i}", cpu="50m", memory="100Mi") for i in range(2)])
    e.schedule([pod() for _ in range(3)])  # n0, n1, n0: n1 placed on longest ago
    r = e.schedule([pod()], k=2, commit=False)[0]
    assert [n for n, _ in r.candidates] == ["n1", "n0"]
    assert e.tie_key("n1") < e.tie_key("n0")
    assert where(e, pod()) == "n1"
    assert where(e, pod()) == "n0"


def test_set_owned_restricts_candidates():
    e = engine([node(f"n{i}", cpu=str(2 + i)) for i in range(4)])
    e.set_owned({"n0", "n1"})
    assert set(scores(e, pod(cpu="1"))) == {"n0", "n1"}
    assert where(e, pod(cpu="1")) == "n1"
    # the diagnosis counts the whole cluster (all nodes are known), as upstream's '0/N'
    r = e.schedule([pod(cpu="3")], commit=False)[0]
    assert not r.candidates and r.num_nodes == 4
    e.set_owned(None)
    assert set(scores(e, pod(cpu="1"))) == {"n0", "n1", "n2", "n3"}


ZONE_NODES = lambda: [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),  # noqa: E731
                      node("b1", labels={ZONE: "b"}), node("b2", labels={ZONE: "b"})]
WEB_ANTI_ZONE = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": ZONE}]}}}
WEB_SPREAD = {"topologySpreadConstraints": [{
    "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
    "labelSelector": {"matchLabels": {"app": "web"}}}]}


def test_set_owned_anti_affinity_counts_are_global():
    """Pods on nodes this replica does not own still repel: a1 is not owned, its zone is."""
    e = engine(ZONE_NODES(), [bound("w", "a1", labels={"app": "web"})])
    e.set_owned({"a2", "b2"})
    assert set(scores(e, pod(cpu="100m", **WEB_ANTI_ZONE))) == {"b2"}
    # a pod bound elsewhere (by another replica) is seen at once
    e.add_pod(bound("w2", "b1", labels={"app": "web"}))
    assert scores(e, pod(cpu="100m", **WEB_ANTI_ZONE)) == {}


def test_set_owned_spread_counts_are_global():
    e = engine(ZONE_NODES())
    e.set_owned({"a2", "b2"})
    web = pod(cpu="100m", labels={"app": "web"}, **WEB_SPREAD)
    assert set(scores(e, web)) == {"a2", "b2"}
    for name, n in (("w", "a1"), ("w2", "a1")):  # bound by another replica on a node we do not own
        e.add_pod(bound(name, n, labels={"app": "web"}))
    assert set(scores(e, web)) == {"b2"}
    for name, n in (("w3", "b1"), ("w4", "b1")):
        e.add_pod(bound(name, n, labels={"app": "web"}))
    assert set(scores(e, web)) == {"a2", "b2"}


def test_set_owned_spread_counts_pods_bound_before_first_use():
    e = engine(ZONE_NODES(), [bound("w", "a1", labels={"app": "web"}), bound("w2", "a1", labels={"app": "web"})])
    e.set_owned({"a2", "b2"})
    assert set(scores(e, pod(cpu="100m", labels={"app": "web"}, **WEB_SPREAD))) == {"b2"}



def _tainted_zones(taints_per_zone: dict[str, int]) -> list:
    """Three nodes per zone, each with as many PreferNoSchedule taints as its zone is given."""
    return [node(f"{z}{i}", cpu="8", labels={ZONE: z},
                 taints=[{"key": f"t{j}", "effect": "PreferNoSchedule"} for j in range(taints_per_zone[z])])
            for z in taints_per_zone for i in range(3)]


@pytest.mark.parametrize("taints, first", [({"a": 1, "b": 1, "c": 0}, None), ({"a": 2, "b": 1, "c": 0}, "a0")],
                         ids=["max-stays", "max-moves"])
def test_zone_spread_with_taint_scores_matches_a_fresh_build(taints, first):
    """A zone spread class whose taint score is normalized over the feasible nodes: placing pods
    moves the allowed zones, hence the max the score divides by. Each pick, made incrementally
    inside one batch, must be the best node with the score a from-scratch engine gives it.
    In "max-moves", a web pod already in zone a makes the class start with zones b and c (max 1);
    once all three are allowed the max is 2, and after a pod in c, zone b scores 50, not 0."""
    web = lambda i: pod(f"w{i}", cpu="100m", labels={"app": "web"}, **WEB_SPREAD)  # noqa: E731
    placed: list = [bound("w-first", first, cpu="100m", labels={"app": "web"})] if first else []
    e = engine(_tainted_zones(taints), placed)
    results = e.schedule([web(i) for i in range(12)], k=1, commit=False)
    for i, r in enumerate(results):
        fresh = scores(engine(_tainted_zones(taints), placed), web(i))
        node_name, score = r.candidates[0]
        assert score == max(fresh.values()) == fresh[node_name], (i, r.candidates, fresh)
        placed.append(bound(f"w{i}", node_name, cpu="100m", labels={"app": "web"}))
    per_zone = {z: sum(p.node_name.startswith(z) for p in placed) for z in taints}
    assert max(per_zone.values()) - min(per_zone.values()) <= 1, per_zone


def test_zone_spread_with_taint_scores_is_not_rebuilt_per_pod():
    """The allowed zones move with every placement; while the taint normalizer's max over them
    stays put (1 where zone a or b is allowed, 0 in zone c alone, which scores alike), the class
    keeps its heaps instead of being rebuilt for each pod."""
    e = engine(_tainted_zones({"a": 1, "b": 1, "c": 0}))
    e.schedule([pod(f"w{i}", cpu="100m", labels={"app": "web"}, **WEB_SPREAD) for i in range(30)], k=3, commit=False)
    assert e.builds <= 2

def test_remove_pod_frees_capacity_exactly():
    e = engine([node("a", cpu="2")], [bound("x", "a", cpu="1500m")])
    assert where(e, pod(cpu="1")) is None
    e.remove_pod("default/x")
    assert used(e, "a") == 0
    assert e.table.nonzero[e.table.index["a"]].tolist() == [0, 0]
    assert where(e, pod(cpu="2")) == "a"
    e.remove_pod("default/nonexistent")  # no-op


def test_remove_pod_after_schedule():
    e = engine([node("a", cpu="2")])
    p = pod(cpu="2")
    assert where(e, p) == "a"
    assert where(e, pod(cpu="1")) is None
    e.remove_pod(p.uid)
    assert where(e, pod(cpu="1")) == "a"


@pytest.mark.parametrize("holder", [False, True], ids=["simple-class", "with-anti-affinity-holder"])
def test_released_row_renormalizes_after_the_taint_max_fell_to_zero(holder):
    """Found by test_partition_rounds_with_releases_match_reference. The class's taint max is 2
    (n1) while n0 (1 taint) is full; assuming a pod on n1 leaves no feasible node, a max of 0
    that keeps the scores (no rebuild). Forgetting n0's pod then re-admits n0 alone: the max is
    now 1, below the built 2, so n0's TaintToleration score is 0 (total 30), not 50 (total 180).
    (No probe in between: a pod that fits nowhere is diagnosed, which rebuilds the class.)"""
    from cluster_scheduler.config import DEFAULT_SCORE_WEIGHTS, Profile

    profile = Profile(score_weights=tuple(
        (k, v) for k, v in DEFAULT_SCORE_WEIGHTS.items() if k != "NodeResourcesBalancedAllocation"))
    spot = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    nodes = [node("n0", cpu="1000m", memory="512Mi", pods=3, labels={"zone": "a"}, taints=[spot]),
             node("n1", cpu="1000m", memory="512Mi", pods=1, labels={"zone": "a"},
                  taints=[spot, {"key": "old", "effect": "PreferNoSchedule"}]),
             node("n2", cpu="500m", memory="512Mi", pods=1, labels={"zone": "a"}, unschedulable=True, ready=False)]
    # (with a pod carrying required anti-affinity somewhere, the class filters inter-pod terms)
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    others = [bound("holder", "n2", labels={"app": "db"}, affinity=anti)] if holder else []

    def t0(name: str):
        return pod(name, cpu="1000m", labels={"app": "db"}, nodeSelector={"zone": "a"})

    e = engine(nodes, others + [bound("a", "n0", cpu="1000m", labels={"app": "db"})], profile)
    assert scores(e, t0("probe1")) == {"n1": 30}  # built: feasible {n1}, taint max 2
    e.assume(t0("b"), "n1")
    e.forget("default/a")
    fresh = engine(nodes, others + [bound("b", "n1", cpu="1000m", labels={"app": "db"})], profile)
    assert scores(e, t0("probe2")) == scores(fresh, t0("probe3")) == {"n0": 30}


def test_add_pod_is_idempotent_and_moves():
    e = engine([node("a", cpu="4"), node("b", cpu="4")])
    p = bound("x", "a", cpu="1")
    e.add_pod(p)
    e.add_pod(p)
    assert used(e, "a") == 1000
    moved = bound("x", "b", cpu="1")
    e.add_pod(moved)
    assert (used(e, "a"), used(e, "b")) == (0, 1000)


def test_remove_node_and_readd_keeps_bound_pods():
    """Pods bound to a node that goes away are remembered and charged again when it returns."""
    e = engine([node("a", cpu="2"), node("b", cpu="2")], [bound("x", "a", cpu="1500m")])
    e.remove_node("a")
    assert set(scores(e, pod(cpu="1"))) == {"b"}
    assert e.num_nodes() == 1
    e.set_node(node("a", cpu="2"))
    assert used(e, "a") == 1500
    assert set(scores(e, pod(cpu="1"))) == {"b"}
    e.remove_pod("default/x")
    assert set(scores(e, pod(cpu="1"))) == {"a", "b"}


def test_pod_bound_before_its_node_arrives():
    e = engine([node("b", cpu="2")])
    e.add_pod(bound("x", "late", cpu="1500m"))
    e.set_node(node("late", cpu="2"))
    assert used(e, "late") == 1500
    assert set(scores(e, pod(cpu="1"))) == {"b"}


def test_removed_node_row_reused_cleanly():
    e = engine([node("a", cpu="2", labels={"zone": "x"}, taints=[{"key": "k", "effect": "NoSchedule"}])],
               [bound("x", "a", cpu="1500m", ports=[{"containerPort": 80, "hostPort": 80}])])
    e.remove_node("a")
    e.remove_pod("default/x")
    e.set_node(node("c", cpu="2"))
    assert used(e, "c") == 0
    assert where(e, pod(cpu="2", ports=[{"containerPort": 80, "hostPort": 80}])) == "c"
    assert where(e, pod(cpu="1", nodeSelector={"zone": "x"})) is None


def test_set_node_update_shrinks_and_grows():
    e = engine([node("a", cpu="4")], [bound("x", "a", cpu="2")])
    e.set_node(node("a", cpu="2"))  # allocatable shrinks below what is bound+requested
    assert used(e, "a") == 2000
    assert message(e, pod(cpu="1")) == "0/1 nodes are available: 1 Insufficient cpu."
    e.set_node(node("a", cpu="8"))
    assert where(e, pod(cpu="6")) == "a"


def test_set_node_label_and_taint_updates():
    e = engine([node("a"), node("b")])
    p_sel = pod(cpu="1", nodeSelector={"disk": "ssd"})
    assert where(e, p_sel) is None
    e.set_node(node("b", labels={"disk": "ssd"}))
    assert where(e, pod(cpu="1", nodeSelector={"disk": "ssd"})) == "b"
    e.set_node(node("b", labels={"disk": "ssd"}, taints=[{"key": "k", "effect": "NoSchedule"}]))
    assert where(e, pod(cpu="1", nodeSelector={"disk": "ssd"})) is None


def test_check_agrees_with_schedule():
    nodes = [node("a", cpu="2", labels={ZONE: "a"}), node("b", cpu="4", labels={ZONE: "b"}),
             node("c", cpu="4", unschedulable=True), node("d", cpu="8", taints=[{"key": "k", "effect": "NoSchedule"}])]
    e = engine(nodes, [bound("x", "b", cpu="3")])
    for p in [pod(cpu="1"), pod(cpu="1500m"), pod(cpu="3"), pod(cpu="1", nodeSelector={ZONE: "b"})]:
        feasible = set(scores(e, p))
        for n in ["a", "b", "c", "d", "missing"]:
            assert e.check(p, n) == (n in feasible), (p.key.requests, n)


def test_check_sees_commits():
    e = engine([node("a", cpu="2")])
    p = pod(cpu="1500m")
    assert e.check(p, "a")
    e.assume(pod(cpu="1"), "a")
    assert not e.check(p, "a")
    e.forget(next(iter(e.pods)))
    assert e.check(p, "a")


def test_priority_order_is_callers():
    """schedule places pods in the order given: the first takes the only slot."""
    e = engine([node("a", cpu="1")])
    first, second = pod(cpu="1"), pod(cpu="1")
    res = e.schedule([second, first])
    assert res[0].candidates and not res[1].candidates


def test_many_classes_evicted_from_cache_stay_correct():
    e = Engine(max_classes=4)
    for i in range(3):
        e.set_node(node(f"n{i}", cpu="4"))
    pods = [pod(cpu=f"{100 + 10 * i}m", labels={"i": str(i)}) for i in range(30)]
    res = e.schedule(pods)
    assert all(r.candidates for r in res)
    assert sum(used(e, f"n{i}") for i in range(3)) == sum(100 + 10 * i for i in range(30))
    assert len(e.classes) <= 4


def test_idle_classes_are_dropped_and_placements_stay_exact():
    """Pods of one spec in many namespaces make one class each; once a namespace's pods are
    placed its class stops being touched by every later placement (dropped after
    `idle_placements`), and the placements are those of an engine that keeps every class."""
    nodes = [node(f"n{i}", cpu="8", labels={ZONE: "z1" if i < 3 else "z2"}) for i in range(6)]
    term = {"labelSelector": {"matchLabels": {"color": "blue"}}, "topologyKey": ZONE,
            "namespaceSelector": {"matchLabels": {"team": "devops"}}}
    aff = {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]},
                        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 5, "podAffinityTerm": {**term, "topologyKey": "kubernetes.io/hostname"}}]}}}
    lean, keep = Engine(idle_placements=8), Engine(idle_placements=10**9)
    for e in (lean, keep):
        for n in nodes:
            e.set_node(n)
        for i in range(12):
            e.set_namespace_labels(f"ns{i}", {"team": "devops"})
    for i in range(12):
        got = []
        for e in (lean, keep):  # as a partition: proposals undone, then the winners assumed
            batch = [pod(f"p{i}-{j}", cpu="100m", namespace=f"ns{i}", labels={"color": "blue"}, **aff)
                     for j in range(6)]
            got.append([r.candidates[0][0] for r in e.schedule(batch, commit=False)])
            for p, name in zip(batch, got[-1]):
                e.assume(p, name)
        assert got[0] == got[1]
    assert len(keep.classes) == 12
    assert len(lean.classes) < 6


def test_lazy_rescoring_matches_fresh_engine():
    """After a sequence of placements, the cached class scores equal a fresh engine's."""
    nodes = [node(f"n{i}", cpu=str(4 + i), memory=f"{8 + 2 * i}Gi") for i in range(5)]
    e = engine(nodes)
    seq = [pod(cpu="700m", memory="1Gi") for _ in range(12)]
    for p in seq:
        where(e, p)
    fresh = engine(nodes, [bound(p.name, e.pods[p.uid].node_name, cpu="700m", memory="1Gi") for p in seq])
    probe = pod(cpu="700m", memory="1Gi")
    assert scores(e, probe) == scores(fresh, probe)


@pytest.mark.parametrize("spec", [
    {"containers": [{"name": "c", "resources": {"requests": {"cpu": "two"}}}]},
    {"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "k", "operator": "Near", "values": ["x"]}]}]}}}},
    {"containers": [{"name": "c"}], "topologySpreadConstraints": [
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]},
    {"containers": [{"name": "c"}], "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
    {"containers": "not a list"},
])
def test_malformed_pods_become_errors_in_a_batch(spec):
    """A malformed pod gets PodResult.error with the parser's reason; its batch-mates still schedule."""
    from cluster_scheduler.model.parse import parse_pod

    bad = parse_pod({"metadata": {"name": "bad", "namespace": "default"}, "spec": spec})
    assert bad.key is None and bad.error
    e = engine([node("a")])
    res = e.schedule([pod(cpu="1"), bad, pod(cpu="1")])
    assert res[1].error == bad.error == res[1].message() and not res[1].candidates
    assert res[0].candidates and res[2].candidates


def test_add_group_charges_as_add_pod_does():
    """A snapshot's group of bound pods (one template) lands as each member's add_pod would: a new
    pod charged, one already known moved, one on a node not seen yet charged when it arrives."""
    labels = {"app": "web"}
    tpl = bound("tpl", "n0", "500m", "1Gi", labels=labels)
    members = [("u1", "a", "n0"), ("u2", "b", "n1"), ("u3", "c", "n9"), ("u4", "d", "n1")]
    grouped = engine([node("n0"), node("n1")], [bound("old", "n0", "1", labels=labels)])
    grouped.add_pod(bound("u4", "n0", "1"))  # known before, elsewhere and with another spec
    one_by_one = engine([node("n0"), node("n1")], [bound("old", "n0", "1", labels=labels)])
    one_by_one.add_pod(bound("u4", "n0", "1"))
    grouped.add_group(tpl, members)
    for uid, name, node_name in members:
        p = bound(name, node_name, "500m", "1Gi", labels=labels)
        p.uid = uid
        one_by_one.add_pod(p)
    for e in (grouped, one_by_one):
        e.set_node(node("n9"))
    for a, b in zip(snapshot(grouped), snapshot(one_by_one)):
        if isinstance(a, np.ndarray):
            assert (a == b).all()
        elif isinstance(a, dict):
            assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
        else:
            assert a == b
    assert used(grouped, "n1") == 1000 and used(grouped, "n9") == 500
    assert {u: p.node_name for u, p in grouped.pods.items()} == {u: p.node_name for u, p in one_by_one.pods.items()}
    assert grouped.placements == one_by_one.placements


def _anti(key: str, values: list[str], topology: str = "kubernetes.io/hostname") -> dict:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": key, "operator": "In", "values": values}]},
         "topologyKey": topology}]}}


def test_labels_no_selector_reads_do_not_split_classes():
    """Pods that differ only in a label no selector reads (upstream scheduler_perf's `signature`, a
    StatefulSet's pod-name label) share one class and land where label-less pods would."""
    nodes = [node(f"n{i}", cpu="4") for i in range(6)]
    plain, signed = engine(nodes), engine(nodes)
    a = plain.schedule([pod(cpu="500m", labels={"app": "web"}) for _ in range(30)])
    b = signed.schedule([pod(cpu="500m", labels={"app": "web", "sig": f"s-{i}"}) for i in range(30)])
    assert [r.candidates[0][0] for r in a] == [r.candidates[0][0] for r in b]
    assert len(signed.classes) == 1
    assert signed.selector_keys == set()


def test_a_selector_on_a_new_label_key_rekeys_classes_and_sees_every_pod():
    nodes = [node(f"n{i}", cpu="8") for i in range(4)]
    e = engine(nodes)
    placed = {r.uid: r.candidates[0][0] for r in e.schedule(
        [pod(f"s{i}", cpu="500m", labels={"app": "web", "sig": f"s-{i}"}) for i in range(8)])}
    assert len(e.classes) == 1
    # a pod that must not share a node with s-3: the bound pods' own labels were kept in full
    p = pod("avoid", cpu="100m", labels={"app": "web"}, affinity=_anti("sig", ["s-3"]))
    (r,) = e.schedule([p])
    assert r.candidates and r.candidates[0][0] != placed["default/s3"]
    assert "sig" in e.selector_keys
    # from now on pods with different sig values are different classes (the selector tells them
    # apart); `app` is still read by no selector, so it stays out of the class key
    e.schedule([pod(cpu="100m", labels={"app": "web", "sig": f"t-{i}"}) for i in range(3)])
    keys = {k.labels for (_, k) in e.classes}
    assert {(("sig", f"t-{i}"),) for i in range(3)} <= keys
    # and an existing pod's anti-affinity on sig repels an incoming pod that carries the value
    q = pod("repelled", cpu="100m", labels={"sig": "s-3"})
    assert where(e, q) != r.candidates[0][0]



def _waits_for(app: str, **kw):
    """A pod that needs a pod labelled app=<app> on its node (required hostname affinity)."""
    term = {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
    return pod(affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}, **kw)


def _on(name: str, **kw):
    return pod(nodeSelector={"kubernetes.io/hostname": name}, **kw)


def test_required_affinity_class_follows_its_partner_among_other_placements():
    """A class that waits for its partner pod keeps its heaps while unrelated pods land (those can
    only make rows less feasible: `ClassState._only_shrinks`), yet sees the partner's row become
    feasible, in a later batch or the same one, and a row that filled up stop being feasible."""
    e = engine([node("n0", pods=3), node("n1")], [bound("x", "n0", labels={"app": "x"})])
    assert where(e, _waits_for("b")) is None  # the class is built: nothing feasible
    assert where(e, _on("n0", labels={"app": "other"})) == "n0"
    assert where(e, _on("n1", labels={"app": "b"})) == "n1"
    assert where(e, _waits_for("b")) == "n1"
    results = e.schedule([_on("n1", labels={"app": "c"}), _waits_for("c")], k=1, commit=True)
    assert [r.candidates[0][0] for r in results] == ["n1", "n1"]
    assert where(e, _on("n0", labels={"app": "other"})) == "n0"  # n0 now holds its 3 pods
    assert where(e, _waits_for("x")) is None


def _soft_zone_spread(app: str) -> list[dict]:
    return [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": app}}}]


def test_a_refreshed_spread_class_diagnoses_as_it_is_now():
    """A ScheduleAnyway class is refreshed between its pods, not rebuilt (`ClassState.refresh`);
    when it finds no node, its reasons are those of the nodes now, not of its last build."""
    zoned = [node(n, cpu="1", labels={ZONE: z}) for n, z in (("a", "z1"), ("b", "z2"))]
    e = engine(zoned)
    spec = dict(cpu="1", labels={"app": "s"}, topologySpreadConstraints=_soft_zone_spread("s"))
    assert sorted(where(e, pod(**spec)) for _ in range(2)) == ["a", "b"]
    assert e.class_of(pod(**spec)).spread_only
    assert message(e, pod(**spec)) == "0/2 nodes are available: 2 Insufficient cpu."


def test_a_refreshed_spread_class_takes_tied_nodes_in_turn():
    """Equal scores in a heap-less class (`top`) go to the node placed on longest ago, then the
    lower row, as the heaps order them: request-free ScheduleAnyway pods in one zone of large
    nodes (their default requests move no score) go round robin, across batches."""
    e = engine([node(f"n{i}", cpu="1000", memory="1000Gi", labels={ZONE: "z1"}) for i in range(3)])
    spec = dict(labels={"app": "s"}, topologySpreadConstraints=_soft_zone_spread("s"))
    first = [r.candidates[0][0] for r in e.schedule([pod(**spec) for _ in range(4)], k=2)]
    assert first == ["n0", "n1", "n2", "n0"]
    assert e.class_of(pod(**spec)).spread_only
    assert where(e, pod(**spec)) == "n1"
