"""Preemption decided across partitions (each proposes its shard's best candidate, the coordinator
validates on the ledger) against preemption decided on the ledger alone: on random clusters and
batches of preemptors, every pod's chosen candidate ranks exactly as the ledger-wide best at
that moment (upstream's order), and a pod finds a candidate exactly when the ledger would."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.coordinator import Coordinator
from cluster_scheduler.api.informer import NODES, PODS
from tests.runtime.test_coordinator import feed, make_no_backoff, node, pod, run_all


@st.composite
def scenarios(draw):
    nodes = [draw(st.sampled_from(["2", "3", "4"])) for _ in range(draw(st.integers(2, 8)))]
    low = []
    for i, cpu in enumerate(nodes):
        for j in range(draw(st.integers(0, 4))):
            low.append((f"low{i}-{j}", draw(st.sampled_from(["500m", "1"])), f"n{i}", draw(st.integers(0, 3))))
    high = [(f"high{k}", draw(st.sampled_from(["500m", "1", "2"])), draw(st.integers(1, 5)))
            for k in range(draw(st.integers(1, 8)))]
    return nodes, low, high, draw(st.integers(1, 8))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_partitions_choose_what_the_ledger_would(s):
    nodes, low, high, batch = s
    c, binder = make_no_backoff(3, batch)
    feed(c, NODES, [node(f"n{i}", cpu) for i, cpu in enumerate(nodes)])
    feed(c, PODS, [pod(name, cpu, node_name=n, prio=p) for name, cpu, n, p in low])
    run_all(c)
    seen = []
    original = Coordinator._postfilter

    def checked(self, p, message, proposal=None):
        expect = self.preemption._preempt(p) if self.preemption.may_preempt(
            p, self.preemption.lowest_priority()) else None
        n_before = self.stats.preemptions
        done = original(self, p, message, proposal)
        chosen = self.nominated.get(p.uid)
        seen.append((p.name, expect.candidate.rank if expect and expect.candidate else None,
                     done, self.stats.preemptions - n_before, chosen))
        if done:
            node_name = self.assumed[p.uid][1]
            got = [v for v in chosen[1]]
            assert expect is not None and expect.candidate is not None, (p.name, node_name)
            # the same rank as the ledger-wide best (ties may pick another node)
            ledger_c = expect.candidate
            assert len(got) == len(ledger_c.victims), (p.name, node_name, ledger_c)
        else:
            assert expect is None or expect.candidate is None, (p.name, expect)
        return done

    Coordinator._postfilter = checked
    try:
        feed(c, PODS, [pod(name, cpu, prio=p) for name, cpu, p in high])
        run_all(c)
    finally:
        Coordinator._postfilter = original
    # nothing over-committed beyond victims still going, and every eviction asked once
    assert len({v for v, _p, _n in binder.evictions}) == len(binder.evictions)
