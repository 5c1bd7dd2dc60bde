"""The pod index's matcher counts against a plain recount: a charge tests only the matchers filed
under one of its pod's labels (plus the unanchored ones), which must never miss a match, whatever
the selector's shape (matchLabels, In, NotIn, Exists, DoesNotExist, none at all), whenever the
matcher was registered, and across namespace relabelling."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_scheduler.model.pod_index import PodIndex
from cluster_scheduler.model.types import HOSTNAME_LABEL, LabelSelector, PodAffinityTerm, Requirement
from tests.plugins.builders import bound, engine, node

KEYS = ("app", "tier")
VALUES = ("a", "b", "c")
NAMESPACES = ("ns1", "ns2")
NODES = ("n0", "n1", "n2")

labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)
requirement = st.one_of(
    st.builds(Requirement, st.sampled_from(KEYS), st.sampled_from(("In", "NotIn")),
              st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True).map(tuple)),
    st.builds(Requirement, st.sampled_from(KEYS), st.sampled_from(("Exists", "DoesNotExist")), st.just(())),
)
selector = st.one_of(
    st.none(),
    st.builds(LabelSelector, labels.map(lambda d: tuple(sorted(d.items()))),
              st.lists(requirement, max_size=2).map(tuple)),
)
term = st.builds(PodAffinityTerm, selector, st.just(HOSTNAME_LABEL),
                 st.frozensets(st.sampled_from(NAMESPACES), max_size=1),
                 st.one_of(st.none(), st.just(LabelSelector((("team", "x"),)))))
# a step: ("pod", labels, namespace, node) adds a bound pod; ("del", i) removes the i-th added one;
# ("term"|"all"|"spread", ...) registers a matcher now; ("ns", namespace, labels) relabels a namespace
step = st.one_of(
    st.tuples(st.just("pod"), labels, st.sampled_from(NAMESPACES), st.sampled_from(NODES)),
    st.tuples(st.just("del"), st.integers(0, 20)),
    st.tuples(st.just("term"), term),
    st.tuples(st.just("all"), st.lists(term, min_size=1, max_size=2).map(tuple)),
    st.tuples(st.just("spread"), selector, st.sampled_from(NAMESPACES)),
    st.tuples(st.just("ns"), st.sampled_from(NAMESPACES), st.sampled_from(({}, {"team": "x"}))),
)


def recount(index: PodIndex, mkey: tuple, pods: dict, ns_labels: dict) -> list[int]:
    """The matcher's count per node, from the pods as they are, by the selectors' own rules."""
    def hit(lab: dict, ns: str) -> bool:
        if mkey[0] == "term":
            return mkey[1].matches_pod(lab, ns, ns_labels)
        if mkey[0] == "all":
            return all(t.matches_pod(lab, ns, ns_labels) for t in mkey[1])
        if mkey[0] == "spread":
            return ns == mkey[2] and mkey[1].matches(lab)
        return False
    counts = [0] * len(NODES)
    for lab, ns, n in pods.values():
        counts[NODES.index(n)] += hit(lab, ns)
    return counts


matcher = st.one_of(st.tuples(st.just("term"), term),
                    st.tuples(st.just("spread"), selector, st.sampled_from(NAMESPACES)))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(matcher, max_size=4), steps=st.lists(step, max_size=30))
def test_matcher_counts_equal_a_recount(first, steps):
    e = engine([node(n) for n in NODES])
    idx, t = e.index, e.table
    pods: dict[str, tuple[dict, str, str]] = {}
    added: list[str] = []
    ns_labels: dict[str, dict] = {}
    for s in first + steps:  # matchers registered before any pod, then a mix
        if s[0] == "pod":
            p = bound(None, s[3], labels=s[1], namespace=s[2])
            e.add_pod(p)
            pods[p.uid] = (s[1], s[2], s[3])
            added.append(p.uid)
        elif s[0] == "del":
            if s[1] < len(added) and added[s[1]] in pods:
                e.remove_pod(added[s[1]])
                del pods[added[s[1]]]
        elif s[0] == "term":
            idx.term_counts(s[1])
        elif s[0] == "all":
            idx.all_terms_counts(s[1])
        elif s[0] == "spread":
            idx.spread_counts(s[1], s[2])
        else:
            e.set_namespace_labels(s[1], s[2])
            ns_labels[s[1]] = s[2]
    for mkey, (_fn, c) in idx.matchers.items():
        got = [int(c.per_row[t.index[n]]) for n in NODES]
        assert got == recount(idx, mkey, pods, ns_labels), mkey
        assert c.total == sum(got)
