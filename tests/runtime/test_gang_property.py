"""Property tests of gangs through the coordinator (partitions in-process, as in test_coordinator):
random gangs and plain pods on random small clusters, with one and with several partitions.

Whatever the mix, no gang is ever partly bound (0 or at least minCount members), no node is
over-committed and no pod is bound twice. Where every pod asks for the same whole CPU, how many
pods fit no longer depends on which node each went to, and several partitions must reach the same
counts (gangs placed whole, pods bound) as one: a gang is decided on the coordinator's ledger. With
mixed sizes they may differ, as they would between two exact schedulers: partitions propose for a
batch in parallel and the merge may spread pods differently (fragmentation), so only the invariants
are checked there."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_scheduler.api.informer import NODES, POD_GROUPS, PODS
from tests.runtime.harness import feed, gang_pod, make_no_backoff, node, pod, pod_group, run_all

MILLI = {"500m": 500, "1": 1000, "2": 2000}


@st.composite
def scenarios(draw, sizes=("500m", "1", "2")):
    nodes = draw(st.lists(st.sampled_from(["1", "2", "3", "4"]), min_size=1, max_size=6))
    gangs = draw(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from(sizes)), max_size=4))
    gangs = [(size, min(size, m), cpu) for size, m, cpu in gangs]
    plain = draw(st.lists(st.sampled_from(sizes), max_size=6))
    batch = draw(st.integers(1, 8))
    order = draw(st.randoms(use_true_random=False))
    return nodes, gangs, plain, batch, order


def run(partitions: int, nodes, gangs, plain, batch, order) -> tuple[dict[str, str], object]:
    c, binder = make_no_backoff(partitions, batch)
    feed(c, NODES, [node(f"n{i}", cpu) for i, cpu in enumerate(nodes)])
    feed(c, POD_GROUPS, [pod_group(f"g{k}", m) for k, (_size, m, _cpu) in enumerate(gangs)])
    pods = [gang_pod(f"g{k}-{i}", f"g{k}", cpu) for k, (size, _m, cpu) in enumerate(gangs) for i in range(size)]
    pods += [pod(f"p{i}", cpu) for i, cpu in enumerate(plain)]
    order.shuffle(pods)
    feed(c, PODS, pods)
    run_all(c)
    bound = dict(binder.bound)
    assert len(bound) == len(binder.bound), "a pod bound twice"
    return bound, c


def check(bound: dict[str, str], nodes, gangs, plain) -> None:
    used: Counter[str] = Counter()
    cpu_of = {f"g{k}-{i}": cpu for k, (size, _m, cpu) in enumerate(gangs) for i in range(size)}
    cpu_of |= {f"p{i}": cpu for i, cpu in enumerate(plain)}
    for name, n in bound.items():
        used[n] += MILLI[cpu_of[name]]
    for i, cpu in enumerate(nodes):
        assert used[f"n{i}"] <= int(cpu) * 1000, f"n{i} over-committed: {used}"
    for k, (_size, m, _cpu) in enumerate(gangs):
        members = sum(1 for name in bound if name.startswith(f"g{k}-"))
        assert members == 0 or members >= m, f"gang g{k} partly bound: {members} of minCount {m}"


def outcomes(s) -> list[tuple[int, int, int]]:
    """(gangs with a member bound, pods bound, gangs placed) for 1, 2 and 3 partitions, each
    checked against the invariants."""
    nodes, gangs, plain, batch, order = s
    state = order.getstate()
    out = []
    for partitions in (1, 2, 3):
        order.setstate(state)
        bound, c = run(partitions, nodes, gangs, plain, batch, order)
        check(bound, nodes, gangs, plain)
        whole = sum(1 for k in range(len(gangs)) if any(n.startswith(f"g{k}-") for n in bound))
        out.append((whole, len(bound), c.stats.gangs_placed))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_gangs_never_partial_never_over_committed(s):
    outcomes(s)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(sizes=("1",)))
def test_partitions_reach_the_same_counts_as_one(s):
    out = outcomes(s)
    assert out[1:] == out[:1] * 2, out
