"""InterPodAffinity through the Engine: required affinity / anti-affinity both ways (the incoming
pod's terms against existing pods, and existing pods' anti-affinity against the incoming pod), the
"first pod of its group" rule, namespaces and namespaceSelector, and preferred-term scoring."""

from __future__ import annotations


from tests.plugins.builders import bound, engine, message, node, only, pod, scores, waiting, where

IPA_ONLY = only({"InterPodAffinity": 1})
HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def zones():
    return [node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
            node("b1", labels={ZONE: "b"}), node("b2", labels={ZONE: "b"})]


def term(labels, key=HOST, **extra):
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}


def anti(*terms):
    return {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}}


def aff(*terms):
    return {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}}


def feasible(e, p):
    return set(scores(e, p))


# ------------------------------------------------------------ anti-affinity

def test_required_anti_affinity_hostname():
    e = engine(zones(), [bound("w", "a1", cpu="100m", labels={"app": "web"})])
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "web"})))) == {"a2", "b1", "b2"}


def test_required_anti_affinity_zone():
    e = engine(zones(), [bound("w", "a1", cpu="100m", labels={"app": "web"})])
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "web"}, ZONE)))) == {"b1", "b2"}


def test_anti_affinity_message():
    e = engine(zones(), [bound("w", "a1", labels={"app": "web"}), bound("x", "b1", labels={"app": "web"})])
    assert message(e, pod(cpu="100m", **anti(term({"app": "web"}, ZONE)))) == \
        "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."


def test_self_anti_affinity_spreads_a_batch_one_per_node():
    e = engine(zones())
    pods = [pod(cpu="100m", labels={"app": "db"}, **anti(term({"app": "db"}))) for _ in range(5)]
    res = e.schedule(pods)
    assert sorted(r.candidates[0][0] for r in res[:4]) == ["a1", "a2", "b1", "b2"]
    assert res[4].message() == "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."


def test_existing_pods_anti_affinity_repels_incoming():
    """The symmetric rule: an existing pod's required anti-affinity term that matches the incoming
    pod keeps it out of that pod's domain, though the incoming pod has no terms itself."""
    e = engine(zones(), [bound("guard", "a1", cpu="100m", labels={"app": "guard"},
                               **anti(term({"app": "noisy"}, ZONE)))])
    assert feasible(e, pod(cpu="100m", labels={"app": "noisy"})) == {"b1", "b2"}
    assert feasible(e, pod(cpu="100m", labels={"app": "quiet"})) == {"a1", "a2", "b1", "b2"}
    e2 = engine([node("a1", labels={ZONE: "a"})], [bound("guard", "a1", **anti(term({"app": "noisy"}, ZONE)))])
    assert message(e2, pod(cpu="100m", labels={"app": "noisy"})) == \
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."


def test_existing_anti_affinity_released_when_pod_removed():
    e = engine(zones(), [bound("guard", "a1", labels={"app": "guard"}, **anti(term({"app": "noisy"}, ZONE)))])
    p = pod(cpu="100m", labels={"app": "noisy"})
    assert "a2" not in feasible(e, p)
    e.remove_pod("default/guard")
    assert feasible(e, p) == {"a1", "a2", "b1", "b2"}


def test_node_without_topology_label_is_not_repelled():
    nodes = zones() + [node("nolabel")]
    e = engine(nodes, [bound("w", "a1", labels={"app": "web"})])
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "web"}, ZONE)))) == {"b1", "b2", "nolabel"}


# ----------------------------------------------------------------- affinity

def test_required_affinity_zone():
    e = engine(zones(), [bound("c", "b2", cpu="100m", labels={"app": "cache"})])
    assert feasible(e, pod(cpu="100m", **aff(term({"app": "cache"}, ZONE)))) == {"b1", "b2"}


def test_required_affinity_no_match_anywhere():
    e = engine(zones())
    assert message(e, pod(cpu="100m", labels={"app": "web"}, **aff(term({"app": "cache"}, ZONE)))) == \
        "0/4 nodes are available: 4 node(s) didn't match pod affinity rules."


def test_first_pod_of_group_matches_itself():
    """No pod matches the term yet, but the pod itself does: it may go anywhere (with the key)."""
    nodes = zones() + [node("nolabel")]
    e = engine(nodes)
    first = pod(cpu="100m", labels={"app": "cache"}, **aff(term({"app": "cache"}, ZONE)))
    assert feasible(e, first) == {"a1", "a2", "b1", "b2"}
    placed = where(e, first)
    zone_of = {"a1": "a", "a2": "a", "b1": "b", "b2": "b"}
    # the rest of the group now must follow it into its zone
    follower = pod(cpu="100m", labels={"app": "cache"}, **aff(term({"app": "cache"}, ZONE)))
    assert {zone_of[n] for n in feasible(e, follower)} == {zone_of[placed]}


def test_first_pod_rule_in_one_batch():
    e = engine(zones())
    group = [pod(cpu="100m", labels={"app": "g"}, **aff(term({"app": "g"}, ZONE))) for _ in range(6)]
    res = e.schedule(group)
    zones_used = {r.candidates[0][0][0] for r in res}
    assert all(r.candidates for r in res) and len(zones_used) == 1


def test_required_affinity_and_anti_affinity_together():
    """Next to the cache (same zone) but never on a node with another web pod."""
    e = engine(zones(), [bound("c", "a1", labels={"app": "cache"})])
    spec = {"affinity": {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "cache"}, ZONE)]},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "web"})]}}}
    res = e.schedule([pod(cpu="100m", labels={"app": "web"}, **spec) for _ in range(3)])
    assert sorted(r.candidates[0][0] for r in res[:2]) == ["a1", "a2"]
    assert not res[2].candidates
    assert res[2].reasons == {"node(s) didn't match pod affinity rules": 2,
                              "node(s) didn't match pod anti-affinity rules": 2}


# --------------------------------------------------------------- namespaces

def test_terms_default_to_the_pods_namespace():
    e = engine(zones(), [bound("w", "a1", namespace="other", labels={"app": "web"})])
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "web"})))) == {"a1", "a2", "b1", "b2"}
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "web"}, namespaces=["other"])))) == {"a2", "b1", "b2"}


def test_namespace_selector():
    e = engine(zones(), [bound("w", "a1", namespace="team-x", labels={"app": "web"}),
                         bound("v", "b1", namespace="team-y", labels={"app": "web"})])
    e.set_namespace_labels("team-x", {"team": "x"})
    e.set_namespace_labels("team-y", {"team": "y"})
    sel_x = pod(cpu="100m", **anti(term({"app": "web"}, namespaceSelector={"matchLabels": {"team": "x"}})))
    assert feasible(e, sel_x) == {"a2", "b1", "b2"}
    every_ns = pod(cpu="100m", **anti(term({"app": "web"}, namespaceSelector={})))
    assert feasible(e, every_ns) == {"a2", "b2"}
    # relabelling a namespace changes what the selector picks
    e.set_namespace_labels("team-y", {"team": "x"})
    assert feasible(e, sel_x) == {"a2", "b2"}


# ------------------------------------------------------------------ scoring

def pref(kind, weight, t):
    return {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": t}]}}}


def test_preferred_affinity_scores_matching_domain():
    e = engine(zones(), [bound("c", "b1", labels={"app": "cache"}), bound("d", "b2", labels={"app": "cache"}),
                         bound("e", "a1", labels={"app": "cache"})], profile=IPA_ONLY)
    got = scores(e, pod(cpu="100m", **pref("podAffinity", 10, term({"app": "cache"}, ZONE))))
    # raw: zone a = 10 * 1, zone b = 10 * 2 -> min-max normalized
    assert got == {"a1": 0, "a2": 0, "b1": 100, "b2": 100}


def test_preferred_anti_affinity_scores_away():
    e = engine(zones(), [bound("c", "a1", labels={"app": "web"})], profile=IPA_ONLY)
    got = scores(e, pod(cpu="100m", **pref("podAntiAffinity", 50, term({"app": "web"}))))
    assert got == {"a1": 0, "a2": 100, "b1": 100, "b2": 100}


def test_existing_pods_preferred_terms_score_incoming():
    """An existing pod preferring to be near 'app=client' pulls clients to its domain."""
    e = engine(zones(), [bound("srv", "b1", labels={"app": "srv"},
                               **pref("podAffinity", 30, term({"app": "client"}, ZONE)))], profile=IPA_ONLY)
    assert scores(e, pod(cpu="100m", labels={"app": "client"})) == {"a1": 0, "a2": 0, "b1": 100, "b2": 100}
    assert set(scores(e, pod(cpu="100m", labels={"app": "other"})).values()) == {0}


def test_existing_pods_required_affinity_scores_with_hard_weight():
    e = engine(zones(), [bound("srv", "a2", labels={"app": "srv"}, **aff(term({"app": "db"})))], profile=IPA_ONLY)
    assert scores(e, pod(cpu="100m", labels={"app": "db"})) == {"a1": 0, "a2": 100, "b1": 0, "b2": 0}


def test_mixed_weights_normalize_min_max():
    e = engine(zones(), [bound("x", "a1", labels={"app": "x"}), bound("y", "b1", labels={"app": "y"})],
               profile=IPA_ONLY)
    spec = {"affinity": {
        "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 40, "podAffinityTerm": term({"app": "x"})}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 40, "podAffinityTerm": term({"app": "y"})}]}}}
    # raw: a1 +40, b1 -40, others 0 -> (raw + 40) * 100 / 80
    assert scores(e, pod(cpu="100m", **spec)) == {"a1": 100, "a2": 50, "b1": 0, "b2": 50}


def test_default_weight_is_two():
    existing = [bound("c", "b1", labels={"app": "cache"})]
    p = pod(cpu="100m", **pref("podAffinity", 10, term({"app": "cache"})))
    got = scores(engine(zones(), existing), p)
    from cluster_scheduler.config import DEFAULT_SCORE_WEIGHTS
    rest = only({k: v for k, v in DEFAULT_SCORE_WEIGHTS.items() if k != "InterPodAffinity"})
    without = scores(engine(zones(), existing, profile=rest), p)
    assert {n: got[n] - without[n] for n in got} == {"a1": 0, "a2": 0, "b1": 200, "b2": 0}


def test_first_pod_rule_ignores_matches_on_nodes_without_the_key():
    """The only other cache pod runs on a node without a zone label: no zone holds a match, so
    upstream still treats the incoming pod as the first of its group."""
    nodes = zones() + [node("nolabel")]
    e = engine(nodes, [bound("c", "nolabel", labels={"app": "cache"})])
    p = pod(cpu="100m", labels={"app": "cache"}, **aff(term({"app": "cache"}, ZONE)))
    assert feasible(e, p) == {"a1", "a2", "b1", "b2"}


def test_required_affinity_zone_per_row_check_and_repeated_placements():
    """Regression: the per-row twin (used to rescore a changed node, and by the coordinator's
    commit-time check) must read the *zone's* count, not the node's own. It once read the node's,
    so b1 (same zone as the cache pod, none of its own) was refused by check() and dropped from the
    heap after the first placement: partitions and ledger disagreed forever."""
    e = engine(zones(), [bound("c", "b2", cpu="100m", labels={"app": "cache"})])
    p = pod(cpu="100m", **aff(term({"app": "cache"}, ZONE)))
    assert e.check(p, "b1") and e.check(p, "b2")
    assert not e.check(p, "a1")
    placed = [r.candidates[0][0] for r in e.schedule([pod(cpu="1", **aff(term({"app": "cache"}, ZONE)))
                                                      for _ in range(6)])]
    assert set(placed) == {"b1", "b2"}  # both nodes of zone b keep being used, nothing in zone a


def test_required_anti_affinity_zone_per_row_check():
    e = engine(zones(), [bound("c", "a1", cpu="100m", labels={"app": "web"})])
    p = pod(cpu="100m", labels={"app": "x"}, **anti(term({"app": "web"}, ZONE)))
    assert not e.check(p, "a2")  # same zone as the web pod, though a2 itself has none
    assert e.check(p, "b1")


# ------------------------------------------- waiting (nominated) pods: both of upstream's passes

def test_a_waiting_pod_satisfies_no_required_affinity_until_it_is_bound():
    """Upstream filters with and without nominated pods; a pod must pass both, so a preemptor
    still waiting for its victims (it may move, or never bind) is nobody's affinity partner."""
    for key, after in ((ZONE, {"b1", "b2"}), (HOST, {"b1"})):
        m = waiting("m", "b1", cpu="100m", labels={"app": "db"})
        e = engine(zones(), [m])
        p = pod(cpu="100m", **aff(term({"app": "db"}, key)))
        assert message(e, p) == "0/4 nodes are available: 4 node(s) didn't match pod affinity rules."
        assert not e.check(p, "b1")
        e.settle(m.uid)  # its victims are gone: it is bound where it waited
        assert feasible(e, p) == after
        assert e.check(p, "b1")


def test_the_watch_confirming_a_waiting_pod_settles_it():
    m = waiting("m", "b1", cpu="100m", labels={"app": "db"})
    e = engine(zones(), [m])
    p = pod(cpu="100m", **aff(term({"app": "db"}, ZONE)))
    assert feasible(e, p) == set()
    assert e.add_pod(bound("m", "b1", cpu="100m", labels={"app": "db"}))
    assert feasible(e, p) == {"b1", "b2"}
    e.remove_pod(m.uid)
    assert feasible(e, p) == set()


def test_a_waiting_pod_still_binds_the_first_of_its_group_to_its_domain():
    """The pass with nominated pods finds the waiting member in zone b; the pass without finds
    no member anywhere (the first-pod rule): only zone b passes both."""
    e = engine(zones(), [waiting("m", "b1", cpu="100m", labels={"app": "db"})])
    p = pod(cpu="100m", labels={"app": "db"}, **aff(term({"app": "db"}, ZONE)))
    assert feasible(e, p) == {"b1", "b2"}


def test_a_waiting_pod_still_repels_by_anti_affinity():
    e = engine(zones(), [waiting("m", "b1", cpu="100m", labels={"app": "db"})])
    assert feasible(e, pod(cpu="100m", **anti(term({"app": "db"}, ZONE)))) == {"a1", "a2"}
