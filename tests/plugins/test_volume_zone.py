"""VolumeZone through the Engine: a bound claim's volume zone/region labels against the node's,
multi-zone values, the beta-to-GA fallback, and nodes without topology labels."""

from __future__ import annotations

from tests.plugins.builders import add_storage, claims, engine, message, node, pod, pv_dict, pvc_dict, scores

GA, BETA = "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"
REASON = "node(s) had no available volume zone"


def cluster():
    return engine([node("a1", labels={GA: "a"}), node("b1", labels={GA: "b"}), node("c1", labels={GA: "c"}),
                   node("beta-b", labels={BETA: "b"}), node("bare")])


def bound_to(labels):
    return (pv_dict("pv", labels=labels, claim=("default", "data"), phase="Bound"),
            pvc_dict("data", volume="pv", bound=True))


def test_zone_of_the_volume():
    e = add_storage(cluster(), *bound_to({GA: "b"}))
    # bare has no topology label: a single-zone node passes; beta-b has only the beta key: fails
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"b1", "bare"}


def test_multi_zone_value_and_beta_on_the_volume():
    e = add_storage(cluster(), *bound_to({GA: "a__c"}))
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"a1", "c1", "bare"}
    e = add_storage(cluster(), *bound_to({BETA: "b"}))
    # a beta key on the volume: the node's beta label, else its GA label
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"b1", "beta-b", "bare"}


def test_reason_and_an_empty_part_ignored():
    e = add_storage(cluster(), *bound_to({GA: "z"}))
    e.remove_node("bare")
    assert message(e, pod(cpu="1", **claims("data"))) == f"0/4 nodes are available: 4 {REASON}."
    e = add_storage(cluster(), *bound_to({GA: "a__"}))
    assert len(scores(e, pod(cpu="1", **claims("data")))) == 5
