"""NodeAffinity through the Engine: nodeSelector, every required-term operator (incl. Gt/Lt and
matchFields), terms ORed and expressions ANDed, and preferred terms scored and normalized."""

from __future__ import annotations

import pytest

from tests.plugins.builders import engine, message, node, only, pod, scores

NA_ONLY = only({"NodeAffinity": 1})
REASON = "node(s) didn't match Pod's node affinity/selector"


def cluster():
    return engine([
        node("n1", labels={"zone": "a", "disk": "ssd", "cores": "8"}),
        node("n2", labels={"zone": "b", "disk": "hdd", "cores": "16"}),
        node("n3", labels={"zone": "c", "cores": "32"}),
        node("n4", labels={"zone": "a", "cores": "many"}),
    ])


def required(*terms):
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


def expr(key, op, *values):
    e = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def feasible(e, p) -> set[str]:
    return set(scores(e, p))


def test_node_selector():
    assert feasible(cluster(), pod(cpu="1", nodeSelector={"zone": "a"})) == {"n1", "n4"}
    assert feasible(cluster(), pod(cpu="1", nodeSelector={"zone": "a", "disk": "ssd"})) == {"n1"}


def test_node_selector_message():
    assert message(cluster(), pod(cpu="1", nodeSelector={"zone": "z"})) == f"0/4 nodes are available: 4 {REASON}."


@pytest.mark.parametrize("req, want", [
    (expr("zone", "In", "a", "b"), {"n1", "n2", "n4"}),
    (expr("zone", "NotIn", "a"), {"n2", "n3"}),
    (expr("disk", "NotIn", "hdd"), {"n1", "n3", "n4"}),  # NotIn holds where the label is absent
    (expr("disk", "Exists"), {"n1", "n2"}),
    (expr("disk", "DoesNotExist"), {"n3", "n4"}),
    (expr("cores", "Gt", "8"), {"n2", "n3"}),     # 'many' is not an integer: no match
    (expr("cores", "Lt", "16"), {"n1"}),
    (expr("cores", "Gt", "100"), set()),
    (expr("missing", "Lt", "100"), set()),       # Gt/Lt need the label
])
def test_required_operators(req, want):
    e = cluster()
    p = pod(cpu="1", **required({"matchExpressions": [req]}))
    assert feasible(e, p) == want
    if not want:
        assert message(e, p) == f"0/4 nodes are available: 4 {REASON}."


def test_match_fields_metadata_name():
    e = cluster()
    assert feasible(e, pod(cpu="1", **required({"matchFields": [expr("metadata.name", "In", "n3")]}))) == {"n3"}
    assert feasible(e, pod(cpu="1", **required({"matchFields": [expr("metadata.name", "NotIn", "n3")]}))) == \
        {"n1", "n2", "n4"}


def test_named_nodes_prefilter_the_rest():
    """Upstream's PreFilterResult: when every term names its nodes, the others are reported as not
    satisfying NodeAffinity whatever else they fail; the named ones go through every filter."""
    e = engine([node("n1", cpu="1"), node("n2", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
                node("n3", cpu="1")])
    p = pod(cpu="2", **required({"matchFields": [expr("metadata.name", "In", "n1")]},
                                {"matchFields": [expr("metadata.name", "In", "n2")]}))
    assert message(e, p) == ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't satisfy plugin(s) "
                             "[NodeAffinity], 1 node(s) had untolerated taint {k: v}.")
    # one term without a name leaves every node to the filters
    p = pod(cpu="2", **required({"matchFields": [expr("metadata.name", "In", "n1")]},
                                {"matchExpressions": [expr("zone", "In", "a")]}))
    assert message(e, p) == ("0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node "
                             "affinity/selector, 1 node(s) had untolerated taint {k: v}.")


def test_named_nodes_that_conflict_reject_at_prefilter():
    p = pod(cpu="1", **required({"matchFields": [expr("metadata.name", "In", "n1"), expr("metadata.name", "In", "n2")]}))
    assert message(cluster(), p) == "0/4 nodes are available: pod affinity terms conflict."


def test_expressions_and_fields_are_anded_within_a_term():
    p = pod(cpu="1", **required({"matchExpressions": [expr("zone", "In", "a")],
                                 "matchFields": [expr("metadata.name", "In", "n4")]}))
    assert feasible(cluster(), p) == {"n4"}
    p = pod(cpu="1", **required({"matchExpressions": [expr("zone", "In", "a"), expr("disk", "Exists")]}))
    assert feasible(cluster(), p) == {"n1"}


def test_terms_are_ored():
    p = pod(cpu="1", **required({"matchExpressions": [expr("zone", "In", "c")]},
                                {"matchExpressions": [expr("disk", "In", "hdd")]}))
    assert feasible(cluster(), p) == {"n2", "n3"}


def test_empty_term_matches_nothing():
    p = pod(cpu="1", **required({"matchExpressions": []}))
    assert feasible(cluster(), p) == set()


def test_node_selector_and_affinity_both_apply():
    p = pod(cpu="1", nodeSelector={"zone": "a"}, **required({"matchExpressions": [expr("cores", "Gt", "1")]}))
    assert feasible(cluster(), p) == {"n1"}


def preferred(*weighted):
    return {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "preference": {"matchExpressions": [e]}} for w, e in weighted]}}}


def test_preferred_terms_score_normalized_to_max():
    """Scores are the summed weights of matching terms, scaled so the best node gets 100."""
    p = pod(cpu="1", **preferred((20, expr("zone", "In", "a")), (60, expr("disk", "Exists"))))
    got = scores(engine([
        node("n1", labels={"zone": "a", "disk": "ssd"}),
        node("n2", labels={"zone": "b", "disk": "hdd"}),
        node("n3", labels={"zone": "c"}),
        node("n4", labels={"zone": "a"}),
    ], profile=NA_ONLY), p)
    assert got == {"n1": 100, "n2": 100 * 60 // 80, "n3": 0, "n4": 100 * 20 // 80}


def test_preferred_normalized_over_feasible_nodes_only():
    """The node with the largest raw sum is filtered out: the max is taken over feasible nodes."""
    nodes = [node("big", labels={"zone": "a", "disk": "ssd"}, cpu="1"),
             node("mid", labels={"zone": "a"}, cpu="8"),
             node("none", cpu="8")]
    p = pod(cpu="2", **preferred((10, expr("zone", "In", "a")), (30, expr("disk", "Exists"))))
    assert scores(engine(nodes, profile=NA_ONLY), p) == {"mid": 100, "none": 0}


def test_preferred_affinity_picks_matching_node_in_default_profile():
    nodes = [node("a", labels={"zone": "a"}), node("b", labels={"zone": "b"})]
    p = pod(cpu="1", **preferred((1, expr("zone", "In", "b"))))
    got = scores(engine(nodes), p)
    assert got["b"] - got["a"] == 2 * 100  # NodeAffinity weight 2
