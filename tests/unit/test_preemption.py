"""Preemption (PostFilter, upstream DefaultPreemption semantics) on one engine: the rules one by
one, then a property test against a plain per-node reference on random small clusters."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster_scheduler.model.parse import parse_pdb
from cluster_scheduler.model.quantity import parse_quantity
from cluster_scheduler.preemption import (NO_VICTIMS, NOT_ELIGIBLE_NEVER, NOT_HELPFUL, PRIORITY_OFFSET, Preemption,
                                          split_by_pdb)
from tests.plugins.builders import bound, engine, node, pod

_ts = itertools.count(1)


def running(name: str, node_name: str, cpu: str, prio: int, labels: dict | None = None, ts: float | None = None,
            group: str | None = None, **kw):
    """A running pod; `group` names its PodGroup (spec.schedulingGroup.podGroupName)."""
    p = bound(name, node_name, cpu, priority=prio, labels=labels or {"app": "x"}, **kw)
    p.creation_ts = float(next(_ts)) if ts is None else ts
    p.pod_group = group or ""
    return p


def pdb(name: str, app: str, allowed: int, namespace: str = "default"):
    return parse_pdb({"metadata": {"name": name, "namespace": namespace},
                      "spec": {"selector": {"matchLabels": {"app": app}}},
                      "status": {"disruptionsAllowed": allowed}})


def victims(out) -> list[str]:
    return [v.name for v in out.candidate.victims]


def test_one_victim_the_least_important_and_the_rest_reprieved():
    e = engine([node("n1", "5")], [running("old", "n1", "2", 1), running("young", "n1", "2", 1),
                                   running("high", "n1", "1", 9)])
    out = Preemption(e).preempt(pod("p", "2", priority=5))
    assert out.candidate.node == "n1" and victims(out) == ["young"]  # same priority: the younger goes


def test_lower_priority_only_and_never_more_than_needed():
    e = engine([node("n1", "4")], [running("a", "n1", "1", 1), running("b", "n1", "1", 2),
                                   running("c", "n1", "1", 3), running("d", "n1", "1", 5)])
    out = Preemption(e).preempt(pod("p", "3", priority=5))  # needs 3 CPUs: a, b, c (d is not lower)
    assert victims(out) == ["c", "b", "a"]
    out = Preemption(e).preempt(pod("p2", "2", priority=5))
    assert victims(out) == ["b", "a"]


def test_node_order_fewest_pdb_violations_then_lowest_top_priority_then_sum_then_count():
    nodes = [node(f"n{i}", "2") for i in range(4)]
    pods = [running("pdb-covered", "n0", "2", 1, labels={"app": "db"}),  # violates: best otherwise
            running("top3", "n1", "2", 3),
            running("two-1", "n2", "1", 2), running("two-2", "n2", "1", 2),  # top 2, sum 4
            running("one-2", "n3", "2", 2)]  # top 2, sum 2: wins
    e = engine(nodes, pods)
    out = Preemption(e, [pdb("db", "db", 0)]).preempt(pod("p", "2", priority=10))
    assert out.candidate.node == "n3" and victims(out) == ["one-2"] and out.candidate.pdb_violations == 0
    # with room in the budget, the covered pod is the cheapest victim
    out = Preemption(e, [pdb("db", "db", 1)]).preempt(pod("p", "2", priority=10))
    assert out.candidate.node == "n0"


def test_latest_start_breaks_the_last_tie():
    e = engine([node("a", "1"), node("b", "1")], [running("older", "a", "1", 1, ts=10.0),
                                                   running("newer", "b", "1", 1, ts=20.0)])
    assert Preemption(e).preempt(pod("p", "1", priority=5)).candidate.node == "b"


def test_pdb_violating_victims_are_reprieved_first():
    e = engine([node("n1", "2")], [running("guarded", "n1", "1", 1, labels={"app": "db"}, ts=5.0),
                                   running("free", "n1", "1", 1, labels={"app": "web"}, ts=1.0)])
    # without budgets the younger ("guarded") would go; with one exhausted budget, "free" goes
    assert victims(Preemption(e).preempt(pod("p", "1", priority=5))) == ["guarded"]
    out = Preemption(e, [pdb("db", "db", 0)]).preempt(pod("p", "1", priority=5))
    assert victims(out) == ["free"] and out.candidate.pdb_violations == 0


def test_split_by_pdb_charges_budgets_in_order():
    pods = [running(f"d{i}", "n", "1", 1, labels={"app": "db"}) for i in range(3)]
    violating, ok = split_by_pdb(pods, [pdb("db", "db", 2)])
    assert [p.name for p in ok] == ["d0", "d1"] and [p.name for p in violating] == ["d2"]
    other_ns = split_by_pdb(pods, [pdb("db", "db", 0, namespace="elsewhere")])
    assert other_ns == ([], pods)


def test_never_and_no_victims_get_upstream_messages():
    e = engine([node("n1", "2")], [running("a", "n1", "2", 5)])
    assert Preemption(e).preempt(pod("p", "1", priority=9, preemptionPolicy="Never")).message == \
        f"preemption: {NOT_ELIGIBLE_NEVER}"
    out = Preemption(e).preempt(pod("p", "1", priority=5))
    assert out.candidate is None
    assert out.message == f"preemption: 0/1 nodes are available: 1 {NO_VICTIMS}."


def test_unresolvable_nodes_are_not_candidates():
    taint = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    e = engine([node("tainted", "2", taints=taint), node("small", "1")],
               [running("t", "tainted", "2", 1), running("s", "small", "1", 1)])
    out = Preemption(e).preempt(pod("p", "2", priority=5))
    assert out.candidate is None
    assert out.message == (f"preemption: 0/2 nodes are available: 1 Insufficient cpu, 1 {NOT_HELPFUL}.")


def test_host_port_held_by_a_lower_priority_pod():
    port = [{"containerPort": 80, "hostPort": 8080}]
    e = engine([node("n1", "8"), node("n2", "8")],
               [running("web1", "n1", "1", 1, ports=port), running("web2", "n2", "1", 1, ports=port),
                running("filler", "n2", "1", 0)])
    out = Preemption(e).preempt(pod("p", "1", priority=5, ports=port))
    assert victims(out) == ["web2"] or victims(out) == ["web1"]
    assert len(out.candidate.victims) == 1
    # the engine is left exactly as it was
    assert {p.name for p in e.pods.values()} == {"web1", "web2", "filler"}


def test_existing_anti_affinity_of_a_lower_priority_pod_is_cured_by_evicting_it():
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    e = engine([node("n1", "8")], [running("loner", "n1", "1", 1, affinity=anti), running("other", "n1", "1", 1)])
    p = pod("p", "1", priority=5, labels={"app": "noisy"})
    out = Preemption(e).preempt(p)
    assert victims(out) == ["loner"]
    assert e.schedule([p], commit=False)[0].candidates == []  # untouched: still does not fit


def test_pod_affinity_that_only_lower_pods_satisfy_is_not_helped():
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    e = engine([node("n1", "1"), node("n2", "1")], [running("c", "n1", "1", 1, labels={"app": "cache"}),
                                                    running("x", "n2", "1", 1)])
    out = Preemption(e).preempt(pod("p", "1", priority=5, affinity=aff))
    # n2 lacks the cache pod (unresolvable); on n1 evicting the cache pod breaks the affinity
    assert out.candidate is None


# --------------------------------------------------------------------------- the reference

def reference(nodes, running_pods, preemptor, pdbs, groups, whole=frozenset()):
    """Plain per-node DefaultPreemption over cpu and pod count, with taints as the only
    unresolvable filter: returns {node: (rank, [victim names])} for every candidate. A pod of a
    known PodGroup is a victim by its group's priority (`groups`) and is more important than a
    pod of none at the same; a pod of a group in `whole` (disruptionMode All) goes only with
    every pod of its group, wherever it runs (one unit: a larger one is more important); nodes
    are ranked by the victims' own priorities (upstream 1.37)."""
    out = {}
    req = int(parse_quantity(preemptor["cpu"]) * 1000)

    def weight(p):
        return groups.get(p["group"], p["prio"]) if p["group"] else p["prio"]

    def unit_of(p):
        if p["group"] in whole:
            return [q for q in running_pods if q["group"] == p["group"]]
        return [p]

    def most_important_first(unit):
        return -weight(unit[0]), -1 if unit[0]["group"] else 0, -len(unit), min(p["ts"] for p in unit)
    for n in nodes:
        if n["tainted"]:
            continue
        on = [p for p in running_pods if p["node"] == n["name"]]
        units = []
        for p in on:
            if weight(p) < preemptor["prio"] and not any(p in u for u in units):
                units.append(unit_of(p))
        units.sort(key=most_important_first)
        if not units:
            continue
        out_of = {q["name"] for u in units for q in u}
        keep = [p for p in on if p["name"] not in out_of]

        def fits(kept):
            used = sum(int(parse_quantity(p["cpu"]) * 1000) for p in kept if p["node"] == n["name"])
            return used + req <= n["cpu"] * 1000 and len([p for p in kept if p["node"] == n["name"]]) + 1 <= n["pods"]
        if not fits(keep):
            continue
        allowed = {b["name"]: b["allowed"] for b in pdbs}
        violating, ok = [], []
        for u in units:
            bad = 0
            for p in u:
                for b in pdbs:
                    if p["app"] == b["app"]:
                        allowed[b["name"]] -= 1
                        if allowed[b["name"]] < 0:
                            bad += 1
                            break
            (violating if bad else ok).append((u, bad))
        chosen, violations = [], 0
        for u, bad in violating + ok:
            if fits(keep + u):
                keep.extend(u)
            else:
                chosen.append(u)
                violations += bad
        if not chosen:
            continue
        chosen.sort(key=most_important_first)
        victims_ = [p for u in chosen for p in u]
        top = max(p["prio"] for p in victims_)
        rank = (violations, victims_[0]["prio"], sum(p["prio"] + PRIORITY_OFFSET for p in victims_), len(victims_),
                -min(p["ts"] for p in victims_ if p["prio"] == top))
        out[n["name"]] = (rank, sorted(p["name"] for p in victims_))
    return out


@st.composite
def clusters(draw):
    nodes = [{"name": f"n{i}", "cpu": draw(st.integers(1, 4)), "pods": draw(st.integers(1, 5)),
              "tainted": draw(st.booleans()) and draw(st.booleans())} for i in range(draw(st.integers(1, 5)))]
    pods = []
    for i in range(draw(st.integers(0, 14))):
        n = draw(st.sampled_from(nodes))
        pods.append({"name": f"r{i}", "node": n["name"], "cpu": draw(st.sampled_from(["250m", "500m", "1", "2"])),
                     "prio": draw(st.integers(0, 4)), "app": draw(st.sampled_from(["a", "b"])),
                     "ts": float(draw(st.integers(0, 3))),
                     "group": draw(st.sampled_from([None, None, "g1", "g2", "gone"]))})
    pdbs = [{"name": f"b{i}", "app": app, "allowed": draw(st.integers(0, 2))}
            for i, app in enumerate(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2)))]
    preemptor = {"cpu": draw(st.sampled_from(["500m", "1", "2", "3"])), "prio": draw(st.integers(1, 5))}
    groups = {"g1": draw(st.integers(0, 4)), "g2": draw(st.integers(0, 4))}  # "gone": no such PodGroup
    whole = {g for g in groups if draw(st.booleans())}  # disruptionMode All
    return nodes, pods, pdbs, preemptor, groups, whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_victims_and_node_match_the_reference(c):
    nodes, pods, pdbs, pre, groups, whole = c
    taint = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    e = engine([node(n["name"], str(n["cpu"]), pods=str(n["pods"]), taints=taint if n["tainted"] else None)
                for n in nodes],
               [running(p["name"], p["node"], p["cpu"], p["prio"], labels={"app": p["app"]}, ts=p["ts"],
                        group=p["group"]) for p in pods])
    preemptor = pod("pre", pre["cpu"], priority=pre["prio"])
    if e.schedule([preemptor], commit=False)[0].candidates:
        return  # it fits: PostFilter never runs
    budgets = [pdb(b["name"], b["app"], b["allowed"]) for b in pdbs]
    pre_ = Preemption(e, budgets)
    pre_.set_groups({("default", g): prio for g, prio in groups.items()}, {("default", g) for g in whole})
    out = pre_.preempt(preemptor)
    ref = reference(nodes, pods, pre, pdbs, groups, whole)
    if not ref:
        assert out.candidate is None, out
        return
    assert out.candidate is not None, (ref, out.message)
    best = min(r for r, _ in ref.values())
    assert out.candidate.rank == best
    assert sorted(victims(out)) == ref[out.candidate.node][1]
    assert {p.name for p in e.pods.values()} == {p["name"] for p in pods}  # nothing changed


@pytest.mark.parametrize("n", [50])
def test_bounds_skip_nodes_that_cannot_win(n):
    """Identical nodes each holding one low pod: the first exact evaluation meets every other
    node's bound, so one node is evaluated, not n."""
    e = engine([node(f"n{i}", "2") for i in range(n)], [running(f"r{i}", f"n{i}", "2", 1, ts=5.0) for i in range(n)])
    out = Preemption(e).preempt(pod("p", "2", priority=5))
    assert out.candidate is not None and out.nodes_evaluated == 1


def test_nodes_that_differ_only_in_their_pods_start_times_are_bounded_too():
    """As scheduler_perf's PreemptionPodGroupDisruptionMode: identical nodes, each with several
    pods of one priority that must all go, started at different times. Upstream's last criterion
    (latest earliest start) decides; the bound on it is the k-th latest start there, exact when
    every possible victim must go, so one node is dry-run, not every one; with victims of
    mixed priorities the looser bound (latest start) still finds the same node."""
    n, per = 40, 4
    pods = [running(f"r{i}-{j}", f"n{i}", "500m", 1, ts=float(1000 + (i * 13) % n + 100 * j)) for i in range(n)
            for j in range(per)]
    e = engine([node(f"n{i}", "2") for i in range(n)], pods)
    out = Preemption(e).preempt(pod("p", "2", priority=5))
    best = max(range(n), key=lambda i: min(p.creation_ts for p in pods if p.node_name == f"n{i}"))
    assert out.candidate.node == f"n{best}" and len(out.candidate.victims) == per
    assert out.nodes_evaluated == 1
    # one pod of another priority per node: the bound falls back to the latest start, same choice
    mixed = [running(f"m{i}", f"n{i}", "100m", 2, ts=1.0) for i in range(n)]
    e2 = engine([node(f"n{i}", "2100m") for i in range(n)], pods + mixed)
    out2 = Preemption(e2).preempt(pod("p", "2100m", priority=5))
    # every node ties on every criterion (the top-priority victim, started at 1.0, is alike
    # everywhere): the first node dry-run wins, the one whose pods started latest
    latest = max(range(n), key=lambda i: max(p.creation_ts for p in pods if p.node_name == f"n{i}"))
    assert out2.candidate.node == f"n{latest}" and len(out2.candidate.victims) == per + 1
    assert out2.nodes_evaluated > 1


def test_a_victim_in_a_pod_group_is_weighed_at_the_groups_priority():
    """Upstream 1.37 (GetPodPriority, MoreImportantVictim): a pod of a known PodGroup is a victim
    by its group's priority, and at the same victim priority a group's member is more important
    than a pod of none; nodes are still ranked by the victims' own priorities."""
    e = engine([node("n1", "2"), node("n2", "2")], [running("member", "n1", "2", 100, group="batch"),
                                                    running("plain", "n2", "2", 70)])
    pre = Preemption(e)
    p = pod("p", "2", priority=60)
    assert pre.preempt(p).candidate is None and pre.lowest_priority() == 70
    pre.set_group(("default", "batch"), 1)  # the group known (the answer and the index follow)
    out = pre.preempt(p)
    assert victims(out) == ["member"] and pre.lowest_priority() == 1
    assert out.candidate.rank[1] == 100  # its own priority ranks the node
    pre.set_group(("default", "batch"), None)  # the group gone: its pod weighs its own again
    assert pre.preempt(p).candidate is None
    e2 = engine([node("n1", "2")], [running("member", "n1", "1", 5, group="job", ts=2.0),
                                     running("plain", "n1", "1", 5, ts=1.0)])
    pre2 = Preemption(e2)
    pre2.set_groups({("default", "job"): 5})
    # the older plain pod would be reprieved first by age; the group's member is more important
    assert victims(pre2.preempt(pod("q", "1", priority=9))) == ["plain"]


def test_a_group_disrupted_only_whole_is_evicted_whole_across_nodes():
    """A PodGroup in disruptionMode All is one victim (upstream 1.37's preemption unit): to free
    one CPU on either node, all three of its pods go, the one on the other node too."""
    pods = [running("g-a", "n1", "1", 1, group="job"), running("keep", "n1", "1", 20),
            running("g-b", "n2", "1", 1, group="job"), running("g-c", "n2", "1", 1, group="job")]
    e = engine([node("n1", "2"), node("n2", "2")], pods)
    pre = Preemption(e)
    pre.set_group(("default", "job"), 1, whole=True)
    out = pre.preempt(pod("p", "1", priority=10))
    assert sorted(victims(out)) == ["g-a", "g-b", "g-c"] and out.candidate.rank[3] == 3
    pre.set_group(("default", "job"), 1)  # disruptionMode single: one member is enough (the youngest)
    assert victims(pre.preempt(pod("p", "1", priority=10))) == ["g-c"]


def test_a_gang_evicts_a_whole_group_whole():
    """Pod group preemption (upstream's PodGroupPostFilter) takes victims as units too: a gang of
    one 2-CPU member needs one node, and the group in disruptionMode All loses both its pods."""
    pods = [running("g-1", "n1", "2", 1, group="job"), running("g-2", "n2", "2", 1, group="job")]
    e = engine([node("n1", "2"), node("n2", "2")], pods)
    pre = Preemption(e)
    pre.set_group(("default", "job"), 1, whole=True)
    c = pre.preempt_gang([pod("m", "2", priority=10)], 1, priority=10)
    assert sorted(v.name for v in c.victims) == ["g-1", "g-2"]
    pre.set_group(("default", "job"), 1)
    assert len(pre.preempt_gang([pod("m", "2", priority=10)], 1, priority=10).victims) == 1
    assert {p.name for p in e.pods.values()} == {"g-1", "g-2"}  # nothing changed


def test_dry_runs_leave_the_nodes_turn_among_equal_scores_as_it_was():
    """Trials remove and re-add pods (NodeTable.last moves on every charge): a candidate search,
    for a pod or a gang, must not change which tied node the next pod goes to."""
    labels = {"app": "x"}
    aff = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "y"}}, "topologyKey": "kubernetes.io/hostname"}]}}}
    e = engine([node(f"n{i}", "2") for i in range(3)],
               [running(f"r{i}", f"n{i}", "2", 1, labels=labels) for i in range(3)])
    before = e.table.last[:]
    pre = Preemption(e)
    assert pre.preempt(pod("p", "2", priority=5, **aff)).candidate is not None  # (not resources only)
    assert pre.preempt_gang([pod("m", "2", priority=10), pod("m2", "2", priority=10)], 2, priority=10)
    assert e.table.last == before


def test_node_bounds_allow_for_a_whole_groups_pods_elsewhere():
    """The pruning bounds come from a node's own pods; a whole group's members elsewhere join its
    victims and may rank it better than those pods alone say (here the member listed first,
    whose own priority ranks the node, runs on n3). Upstream's order still picks n1."""
    pods = [running("g-far", "n3", "1", 0, group="job"), running("g-here", "n1", "2", 5, group="job"),
            running("plain", "n2", "2", 3)]
    e = engine([node("n1", "2"), node("n2", "2"), node("n3", "2")], pods)
    pre = Preemption(e)
    pre.set_group(("default", "job"), 1, whole=True)
    out = pre.preempt(pod("p", "2", priority=10))
    assert out.candidate.node == "n1" and victims(out) == ["g-far", "g-here"] and out.candidate.rank[1] == 0


def test_whole_groups_spread_over_nodes_are_bounded_not_each_dry_run():
    """As scheduler_perf's DisruptionAll: two blocks of five nodes, each node holding one 200m pod
    of each of its block's five whole groups. Freeing a node takes all five groups there (25
    victims), the block started later wins; the bounds count units (victims at least the pods
    needed times the unit size per pod on the node) and their starts, so one node is dry-run."""
    pods, ts = [], 0.0
    for block in range(2):
        for g in range(5):
            ts += 1.0
            for n in range(5):
                pods.append(running(f"g{block}{g}-{n}", f"n{block * 5 + n}", "200m", 1, group=f"g{block}{g}", ts=ts))
    e = engine([node(f"n{i}", "1") for i in range(10)], pods)
    pre = Preemption(e)
    pre.set_groups({("default", f"g{b}{g}"): 1 for b in range(2) for g in range(5)},
                   {("default", f"g{b}{g}") for b in range(2) for g in range(5)})
    out = pre.preempt(pod("p", "1", priority=10))
    assert out.candidate.node in {f"n{i}" for i in range(5, 10)} and len(out.candidate.victims) == 25
    assert {v.pod_group for v in out.candidate.victims} == {f"g1{g}" for g in range(5)}
    assert out.nodes_evaluated == 1


def test_victim_index_follows_the_engine_and_rebuilds_after_an_overflowing_log():
    from cluster_scheduler.preemption import VictimIndex

    e = engine([node("n1", "4"), node("n2", "4")], [running("a", "n1", "1", 1)])
    held: dict[str, int] = {}
    idx = VictimIndex(e, held, {})
    e.table.log_limit = 3
    for i in range(5):  # more changes than the log holds
        e.add_pod(running(f"b{i}", "n2", "500m", 2))
    e.remove_pod("default/a")
    freeable, _biggest, count, minp, _, ignorable, _possible = idx.lower(5, e.table.size)
    rows = {name: e.table.index[name] for name in ("n1", "n2")}
    assert count[rows["n1"]] == 0 and count[rows["n2"]] == 5 and minp[rows["n2"]] == 2
    assert freeable[rows["n2"], e.table.res_index["cpu"]] == 2500 and not ignorable.any()
    # a nominated pod is no victim: its room is only ignorable, by a preemptor above it
    held["default/b0"] = 2
    idx.mark_held("default/b0")
    freeable, _biggest, count, _minp, _, ignorable, _possible = idx.lower(5, e.table.size)
    assert count[rows["n2"]] == 4 and freeable[rows["n2"], e.table.res_index["cpu"]] == 2000
    assert ignorable[rows["n2"], e.table.res_index["cpu"]] == 500
    assert not idx.lower(2, e.table.size)[5].any()  # not below a preemptor of its own priority


def test_terminating_pods_are_victims_without_a_second_eviction_and_nominations_never_are():
    """Upstream counts every lower-priority pod on the node, terminating ones too (their deletion
    is not asked again); a nominated preemptor (`held`) is never a victim, and a preemptor of
    higher priority does not see it: its room is free, and the candidate lists it to clear."""
    keep = running("keep", "n1", "1", 1)
    going = running("going", "n1", "1", 1)  # the younger: the one not reprieved
    going.deleting = True
    e = engine([node("n1", "2")], [keep, going])
    pre = Preemption(e)
    out = pre.preempt(pod("p", "1", priority=5))
    assert victims(out) == ["going"] and pre.to_evict(out.candidate.victims) == []
    # a nominated pod (priority 3) holds the room of "keep"
    nominee = running("nominee", "n1", "1", 3)
    e2 = engine([node("n1", "2")], [running("low", "n1", "1", 1), nominee])
    pre2 = Preemption(e2)
    pre2.hold(nominee.uid, 3)
    out = pre2.preempt(pod("same", "2", priority=3))  # its priority: the nomination holds the room
    assert out.candidate is None
    out = pre2.preempt(pod("higher", "1", priority=5))  # fits once the nomination is not seen
    assert out.candidate.victims == [] and [b.name for b in out.candidate.bumped] == ["nominee"]
    out = pre2.preempt(pod("bigger", "2", priority=5))
    assert victims(out) == ["low"] and [b.name for b in out.candidate.bumped] == ["nominee"]
