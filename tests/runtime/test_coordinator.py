"""The coordinator's commit logic with the partitions run in-process (tests/runtime/harness.py: a
stand-in for Ray that calls the real Partition class, and a recording binder): proposals are
merged, checked against the ledger, assumed once, and pods that fit nowhere get kube's message."""

from __future__ import annotations

import time

import pytest

from actors.coordinator import Coordinator, merge
from actors.partition import Partition, shard_of
from cluster_scheduler.api.binder import (CONFLICT, RETRY, TokenBucket,
                                          classify)
from cluster_scheduler.api.informer import NODES, POD_GROUPS, PODS
from cluster_scheduler.wire import Op, Proposal, decode_deltas
from cluster_scheduler.config import Profile, RuntimeConfig
from tests.runtime.harness import (FakeRay, RecordingBinder, feed, gang_pod, make, make_no_backoff, node, pod,
                                   pod_group, run_all)


@pytest.mark.parametrize("partitions", [1, 2, 3])
def test_every_pod_placed_once_within_capacity(partitions):
    c, binder = make(partitions)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(4)])
    feed(c, PODS, [pod(f"p{i}", "1") for i in range(10)])
    while c.run_once():
        pass
    placed = dict(binder.bound)
    assert len(binder.bound) == len(placed) == 8  # 4 nodes x 2 cpu, never a pod twice
    per_node: dict[str, int] = {}
    for n in placed.values():
        per_node[n] = per_node.get(n, 0) + 1
    assert per_node == {f"n{i}": 2 for i in range(4)}
    # upstream's words, PostFilter's included (no pod of lower priority runs)
    assert sorted(binder.unschedulable) == [(f"p{i}", "0/4 nodes are available: 4 Insufficient cpu. preemption: "
                                             "0/4 nodes are available: 4 No preemption victims found for incoming pod.")
                                            for i in (8, 9)]
    # the verdict is posted once, even if retried unchanged
    c.queue.move_all_to_active()
    time.sleep(1.01)
    c.queue.flush()
    while c.run_once():
        pass
    assert len(binder.unschedulable) == 2


def test_foreign_bound_pods_count_and_priority_goes_first():
    c, binder = make(2)
    feed(c, NODES, [node("a", "2"), node("b", "2")])
    feed(c, PODS, [pod("theirs", "1500m", node_name="a", scheduler="other")])
    feed(c, PODS, [pod("low", "2"), pod("high", "2", prio=100)])
    while c.run_once():
        pass
    assert binder.bound == [("high", "b")]
    assert binder.unschedulable == [("low", "0/2 nodes are available: 2 Insufficient cpu. preemption: "
                                            "0/2 nodes are available: 2 No preemption victims found for incoming pod.")]
    # the foreign pod leaves: "low" is moved back on the delete event and fits on a
    feed(c, PODS, [pod("theirs", "1500m", node_name="a", scheduler="other")], typ="DELETED")
    time.sleep(1.01)  # its backoff after the failed attempt
    while c.run_once() or c.queue.has_active():
        pass
    assert binder.bound == [("high", "b"), ("low", "a")]


def test_failed_binding_is_forgotten_and_retried_conflict_dropped():
    c, binder = make(1)
    c.cfg = RuntimeConfig(batch_size=10, backoff_initial_s=0.05, backoff_max_s=0.05, batch_interval_s=0)
    c.queue.backoff_initial_s = c.queue.backoff_max_s = 0.05
    feed(c, NODES, [node("a", "1")])
    feed(c, PODS, [pod("x", "1")])
    binder.outcome = RETRY
    c.run_once()
    assert binder.bound == [("x", "a")] and "u-x" in c.assumed
    c.run_once()  # drains the failure: assumption forgotten, pod backs off
    assert "u-x" not in c.assumed and c.queue.where("u-x") == "backoff"
    assert c.queue.attempts("u-x") == 1  # the attempt count survives the binding round trip
    assert c.ledger.check(c.queue._pods["u-x"].pod, "a")  # the room is free again
    binder.outcome = CONFLICT
    time.sleep(0.06)
    c.run_once()
    c.run_once()
    assert binder.bound == [("x", "a")] * 2
    assert "u-x" not in c.assumed and "u-x" not in c.queue and c.stats.bind_dropped == 1


def test_dead_partition_is_reloaded_and_the_batch_retried():
    c, binder = make(2)
    c.restart_wait_s = 0.0
    feed(c, NODES, [node(f"n{i}", "4") for i in range(6)])
    feed(c, PODS, [pod("first", "1")])
    c.run_once()
    assert len(binder.bound) == 1
    c.parts[1].dead = True  # dies for good: replaced by a new actor, fed a full snapshot
    feed(c, PODS, [pod(f"p{i}", "1") for i in range(5)])
    while c.run_once() or c.queue.has_active():
        pass
    assert c.stats.partition_failures == 1
    assert len({name for name, _ in binder.bound}) == len(binder.bound) == 6
    c._flush_deltas()  # the last assumptions travel with the next deltas
    new = c.parts[1].obj
    assert new.synced and new.engine.num_nodes() == 6 and len(new.engine.pods) == 6


def test_resize_rebalances_ownership():
    c, _ = make(1)
    feed(c, NODES, [node(f"n{i}", "4") for i in range(30)])
    c.run_once()
    for n in (4, 2):
        c.request_resize(n)
        c.run_once()
        owned = [p.obj.owned for p in c.parts]
        assert len(owned) == n
        assert set().union(*owned) == {f"n{i}" for i in range(30)}
        assert sum(len(o) for o in owned) == 30
        assert all(shard_of(x, n) == i for i, o in enumerate(owned) for x in o)


def test_merge_sums_histograms_and_orders_candidates():
    a = [Proposal("u1", [("n1", 80), ("n2", 50)], {}, 4, None), Proposal("u2", [], {"Insufficient cpu": 2}, 4, None)]
    b = [Proposal("u1", [("n3", 90)], {}, 4, None),
         Proposal("u2", [], {"Insufficient cpu": 1, "node(s) were unschedulable": 1}, 4, None)]
    m1, m2 = merge([a, b], 2)
    assert m1.candidates == [("n3", 90), ("n1", 80), ("n2", 50)]
    assert m2.reasons == {"Insufficient cpu": 3, "node(s) were unschedulable": 1} and not m2.candidates


def test_merge_orders_equal_scores_by_the_tie_key():
    a = [Proposal("u1", [("n1", 80)], {}, 4, None)]
    b = [Proposal("u1", [("n2", 80), ("n3", 70)], {}, 4, None)]
    assert merge([a, b], 1)[0].candidates == [("n1", 80), ("n2", 80), ("n3", 70)]  # partition order
    placed_on = {"n1": 5, "n2": 2, "n3": 0}  # n2 placed on longer ago than n1
    m = merge([a, b], 1, lambda n: placed_on[n])[0]
    assert m.candidates == [("n2", 80), ("n1", 80), ("n3", 70)]


def test_unsynced_partition_refuses_work():
    p = Partition(Profile(), 0, 1)
    assert p.apply(b"\x90") is False and p.schedule(b"\x90", 1) is None


def test_token_bucket_and_classify():
    t = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        t[0] += s

    b = TokenBucket(qps=10, burst=3, clock=lambda: t[0], sleep=sleep)
    for _ in range(5):
        b.acquire()
    assert slept and abs(t[0] - 0.2) < 1e-9  # 3 from the burst, then one per 100 ms

    class E(Exception):
        def __init__(self, status):
            self.status, self.reason = status, "x"

    assert [classify(E(s))[0] for s in (409, 404, 429, 500, 503, 403)] == [
        "conflict", "gone", "retry", "retry", "retry", "retry"]
    assert classify(TimeoutError("read timed out"))[0] == "retry"


def test_gated_and_deleting_pods_wait():
    c, binder = make(1)
    feed(c, NODES, [node("a", "4")])
    gated = pod("gated", "1")
    gated["spec"]["schedulingGates"] = [{"name": "example.com/wait"}]
    going = pod("going", "1")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    feed(c, PODS, [gated, going])
    while c.run_once():
        pass
    assert binder.bound == [] and binder.unschedulable == []
    del gated["spec"]["schedulingGates"]
    feed(c, PODS, [gated], typ="MODIFIED")
    while c.run_once():
        pass
    assert binder.bound == [("gated", "a")]


def test_only_real_changes_move_unschedulable_pods():
    c, binder = make(1)
    small = node("a", "1")
    feed(c, NODES, [small])
    feed(c, PODS, [pod("big", "2"), pod("other", "1", scheduler="other")])
    while c.run_once():
        pass
    assert c.queue.where("u-big") == "unschedulable"
    beat = dict(small, status=dict(small["status"], conditions=[
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]))
    feed(c, NODES, [beat], typ="MODIFIED")  # a heartbeat
    feed(c, PODS, [pod("other", "1", scheduler="other")], typ="DELETED")  # held nothing
    c.run_once()
    assert c.queue.where("u-big") == "unschedulable"
    feed(c, NODES, [node("a", "4")], typ="MODIFIED")  # resized: it may fit now
    c.run_once()  # into backoff (it failed just now), and taken at once: nothing else is active
    assert "u-big" in c.assumed


def test_a_bound_pod_scaled_down_or_relabelled_moves_unschedulable_pods():
    """A bound pod's update that others see (requests lowered through `resize`, labels changed)
    may free room or lift a term, as upstream's queueing hints for an assigned pod's update;
    its phase moving on does not."""
    c, binder = make(1)
    feed(c, NODES, [node("a", "2")])
    blocker = pod("blocker", "2", node_name="a")
    feed(c, PODS, [blocker, pod("p", "1")])
    while c.run_once():
        pass
    assert c.queue.where("u-p") == "unschedulable"
    feed(c, PODS, [dict(blocker, status={"phase": "Running"})], typ="MODIFIED")
    c.run_once()
    assert c.queue.where("u-p") == "unschedulable"
    feed(c, PODS, [pod("blocker", "500m", node_name="a")], typ="MODIFIED")
    c.run_once()
    assert "u-p" in c.assumed


def test_snapshot_groups_bound_pods_and_a_loaded_partition_mirrors_the_ledger():
    """Bound pods travel grouped by equivalence class ("G"); a partition loaded from the snapshot
    charges exactly what the ledger charges, foreign pods, odd labels and unusable specs included."""
    c, _ = make(2)
    feed(c, NODES, [node(f"n{i}", "8") for i in range(4)])
    bound = [pod(f"a{i}", "1", node_name=f"n{i % 4}") for i in range(12)]
    bound += [pod(f"b{i}", "500m", node_name="n1", scheduler="other") for i in range(3)]
    odd = pod("odd", "250m", node_name="n2")
    odd["metadata"]["labels"] = {"app": "odd"}
    broken = pod("broken", "1", node_name="n3")
    broken["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "one"
    feed(c, PODS, bound + [odd, broken])
    c._drain_inbox()
    ops = decode_deltas(c.snapshot())
    groups = [op for op in ops if op[0] is Op.BOUND_CLASS]
    assert sorted(len(g[2]) for g in groups) == [1, 3, 12]  # a*, b*, odd; "broken" goes alone
    assert [op[0] for op in ops].count(Op.POD) == 1
    p = Partition(Profile(), 0, 2)
    p.load(0, 2, c.snapshot())
    t, lt = p.engine.table, c.ledger.table
    assert set(p.engine.pods) == set(c.ledger.pods)
    for name in (f"n{i}" for i in range(4)):
        assert t.req_l[t.index[name]] == lt.req_l[lt.index[name]]
        assert set(t.pods[t.index[name]]) == set(lt.pods[lt.index[name]])
    assert {u: i.node_name for u, i in p.engine.pods.items()} == {u: i.node_name for u, i in c.ledger.pods.items()}


def test_reloaded_partitions_do_not_get_the_snapshots_deltas_again():
    """Deltas pending when partitions reload are in the snapshot: partitions that reload must not
    apply them a second time (at start-up: every bound pod of the initial list), the others get
    them before the snapshot is taken."""
    c, _ = make(2)
    feed(c, NODES, [node(f"n{i}", "8") for i in range(2)])
    feed(c, PODS, [pod(f"b{i}", "1", node_name="n0") for i in range(5)])
    c._drain_inbox()
    applied: list[int] = []
    for part in c.parts:
        orig = part.obj.apply
        part.obj.apply = lambda d, orig=orig: (applied.append(1), orig(d))[1]
    c._sync_partitions()  # start-up: both reload from the snapshot
    assert c._deltas == [] and applied == []
    assert all(len(p.obj.engine.pods) == 5 for p in c.parts)
    feed(c, PODS, [pod("late", "1", node_name="n1")])
    c._drain_inbox()
    c._resync = {1}  # partition 1 reloads; partition 0 must still learn about "late"
    c._sync_partitions()
    assert applied == [1] and c._deltas == []
    assert all("u-late" in p.obj.engine.pods for p in c.parts)


def test_a_trickle_of_pods_is_batched_at_most_every_interval():
    """Pods arriving a few at a time wait up to batch_interval_s for the next batch (fewer
    partition round trips); a full batch never waits."""
    binder = RecordingBinder()
    c = Coordinator(Profile(), RuntimeConfig(batch_size=3, top_k=2, batch_interval_s=0.2), binder,
                    partitions=1, ray_module=FakeRay())
    feed(c, NODES, [node("n0", "64")])
    feed(c, PODS, [pod("a", "1")])
    assert c.run_once() and c.stats.batches == 1
    feed(c, PODS, [pod("b", "1")])
    assert not c.run_once() and 0 < c._hold_s <= 0.2  # one pod waits: held back
    feed(c, PODS, [pod("c", "1"), pod("d", "1")])
    assert c.run_once() and c.stats.batches == 2  # a full batch goes at once
    feed(c, PODS, [pod("e", "1")])
    assert not c.run_once()
    time.sleep(0.21)
    assert c.run_once() and c.stats.batches == 3
    assert sorted(n for n, _ in binder.bound) == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("partitions", [1, 3])
def test_gangs_are_placed_whole_or_not_at_all(partitions):
    """8 CPUs; two gangs of 6 one-CPU pods that each fit alone: one is placed whole (members on
    nodes of every shard), the other gets no pod and one reason; a plain pod still binds."""
    c, binder = make_no_backoff(partitions, batch=4)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(4)])
    feed(c, POD_GROUPS, [pod_group("a", 6), pod_group("b", 6)])
    feed(c, PODS, [gang_pod(f"a{i}", "a") for i in range(6)] + [gang_pod(f"b{i}", "b") for i in range(6)]
         + [pod("plain", "1")])
    run_all(c)
    bound = dict(binder.bound)
    a = [n for n in bound if n.startswith("a")]
    b = [n for n in bound if n.startswith("b")]
    assert sorted(map(len, (a, b))) == [0, 6]  # one whole, the other none
    assert "plain" in bound and len(bound) == 7
    placed = a or b
    if partitions == 3:
        from actors.partition import shard_of
        assert len({shard_of(bound[n], 3) for n in placed}) > 1  # the gang spans shards
    loser = "b" if a else "a"
    reasons = {m for n, m in binder.unschedulable if n.startswith(loser)}
    assert reasons == {f"0/4 nodes are available: 4 Insufficient cpu.; gang {loser} needs 6, 2 fit"}
    assert c.stats.gangs_placed == 1 and c.stats.gangs_unschedulable >= 1
    assert sum(1 for uid in c.ledger.pods if c.ledger.pods[uid].pod_group == loser) == 0


def test_gang_waits_for_its_pod_group_and_its_members():
    c, binder = make_no_backoff(2)
    feed(c, NODES, [node(f"n{i}", "4") for i in range(2)])
    feed(c, PODS, [gang_pod(f"g{i}", "g") for i in range(2)])
    run_all(c)
    assert not binder.bound
    assert {m for _, m in binder.unschedulable} == {'waiting for PodGroup "g" in namespace ns: it does not exist'}
    feed(c, POD_GROUPS, [pod_group("g", 3)])  # the group appears: its pods are tried again
    run_all(c)
    assert not binder.bound
    assert binder.unschedulable[-1][1] == "waiting for gang g: fewer than minCount (3) of its pods exist"
    feed(c, PODS, [gang_pod("g2", "g")])  # the third member arrives: all three go together
    run_all(c)
    assert sorted(n for n, _ in binder.bound) == ["g0", "g1", "g2"]


@pytest.mark.parametrize("partitions", [1, 2])
def test_gangs_kept_to_a_rack_in_the_coordinator(partitions):
    """A PodGroup's topology key: the gang goes whole to one rack, a late member joins that rack
    (and waits, though the other rack is empty, once it is full), and a gang of higher priority
    that fits no rack preempts within one."""
    c, binder = make_no_backoff(partitions)
    racks = {f"n{i}": "ab"[i % 2] for i in range(4)}  # a: n0 n2, b: n1 n3; 2 CPUs each
    nodes = [node(n, "2") for n in racks]
    for nd in nodes:
        nd["metadata"]["labels"]["rack"] = racks[nd["metadata"]["name"]]
    feed(c, NODES, nodes)
    topo = {"schedulingConstraints": {"topology": [{"key": "rack"}]}}
    feed(c, POD_GROUPS, [pod_group("g", 3, **topo)])
    feed(c, PODS, [gang_pod(f"g{i}", "g") for i in range(3)])
    run_all(c)
    where = {n: racks[node_name] for n, node_name in binder.bound}
    assert sorted(where) == ["g0", "g1", "g2"] and len(set(where.values())) == 1, binder.bound
    full = where["g0"]
    feed(c, PODS, [gang_pod("g3", "g")])  # one CPU left in that rack
    run_all(c)
    feed(c, PODS, [gang_pod("g4", "g")])  # none left there; the other rack is empty
    run_all(c)
    assert racks[dict(binder.bound)["g3"]] == full and "g4" not in dict(binder.bound)
    assert dict(binder.unschedulable)["g4"] == (f"in placement rack={full}: 0/2 nodes are available: "
                                                "2 Insufficient cpu.")
    # fill the other rack with low-priority pods; a gang of two 2-CPU pods must evict within one rack
    other = [n for n, r in racks.items() if r != full]
    feed(c, PODS, [pod(f"low{i}", "1", node_name=other[i // 2], prio=1) for i in range(4)])
    feed(c, POD_GROUPS, [pod_group("hi", 2, priority=100, **topo)])
    hi = [gang_pod(f"h{i}", "hi", cpu="2") for i in range(2)]
    for p in hi:
        p["spec"]["priority"] = 100
    feed(c, PODS, hi)
    run_all(c)
    victims = {v for v, _p, _n in binder.evictions}
    assert victims <= {f"low{i}" for i in range(4)} | {f"g{i}" for i in range(4)} and victims, binder.evictions
    nominated = dict(binder.nominations)
    assert {racks[nominated["h0"]], racks[nominated["h1"]]} in ({"a"}, {"b"}), nominated


def test_a_group_whose_pods_are_not_at_its_priority_is_refused_whole():
    """Upstream's validatePodGroup: every pod of a group at the PodGroup's spec.priority, with one
    preemption policy; otherwise none of the pods tried together is placed (they and the PodGroup
    say why), for a basic group as for a gang; a basic group's valid pods tried later go on."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n1", "8")])
    feed(c, POD_GROUPS, [pod_group("g", 2, priority=5), pod_group("loose", basic=True, priority=5),
                         pod_group("polite", 2)])
    pods = [gang_pod(f"g{i}", "g") for i in range(2)] + [gang_pod(f"l{i}", "loose") for i in range(2)]
    for name in ("g0", "l0"):
        next(p for p in pods if p["metadata"]["name"] == name)["spec"]["priority"] = 5
    never = [gang_pod(f"p{i}", "polite") for i in range(2)]
    never[1]["spec"]["preemptionPolicy"] = "Never"
    feed(c, PODS, pods + never)
    run_all(c)
    assert binder.bound == []
    reasons = dict(binder.unschedulable)
    wrong = "all pods in a single pod group should have the same priority as the pod group's priority, got 0 and 5"
    assert reasons["g0"] == reasons["g1"] == reasons["l0"] == reasons["l1"] == wrong
    assert reasons["p0"] == reasons["p1"] == ("all pods in a single pod group should have the same preemption "
                                              "policy, got Never and PreemptLowerPriority")
    late = gang_pod("l2", "loose")
    late["spec"]["priority"] = 5
    feed(c, PODS, [late])
    run_all(c)
    assert binder.bound == [("l2", "n1")]


def test_basic_pod_group_members_go_one_by_one_and_late_members_join_a_placed_gang():
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n0", "3")])
    feed(c, POD_GROUPS, [pod_group("loose", basic=True), pod_group("g", 2)])
    feed(c, PODS, [gang_pod(f"l{i}", "loose") for i in range(2)] + [gang_pod(f"g{i}", "g") for i in range(2)])
    run_all(c)
    assert sorted(n for n, _ in binder.bound) == ["g0", "g1", "l0"]  # 3 CPUs: the gang whole, one loose pod
    feed(c, PODS, [pod("l0", "1", node_name="n0"), pod("g0", "1", node_name="n0")], typ="DELETED")
    feed(c, PODS, [gang_pod("g2", "g")])  # a late member of a placed gang joins it alone
    run_all(c)
    assert {"g2", "l1"} <= {n for n, _ in binder.bound}


def test_young_gang_members_wait_quietly_for_the_rest():
    """Members of a gang whose pods were just created back off without a status write or event
    (the rest are likely a batch away); they are placed together once all exist."""
    from datetime import datetime, timezone
    c, binder = make(1)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    feed(c, NODES, [node("n0", "4")])
    feed(c, POD_GROUPS, [pod_group("g", 3)])
    members = [gang_pod(f"g{i}", "g") for i in range(3)]
    for m in members:
        m["metadata"]["creationTimestamp"] = now
    feed(c, PODS, members[:2])
    run_all(c)
    assert not binder.unschedulable and not binder.bound
    assert {c.queue.where("u-g0"), c.queue.where("u-g1")} == {"backoff"}
    feed(c, PODS, members[2:])
    run_all(c)
    assert sorted(n for n, _ in binder.bound) == ["g0", "g1", "g2"] and not binder.unschedulable


def test_pod_group_condition_posted_once_per_change_and_never_back_to_false():
    c, binder = make_no_backoff(1)
    posted = []
    binder.set_pod_group_condition = lambda ns, name, ok, reason, msg: posted.append((name, ok, reason))
    feed(c, NODES, [node("n0", "2")])
    feed(c, POD_GROUPS, [pod_group("g", 3)])
    feed(c, PODS, [gang_pod(f"g{i}", "g") for i in range(3)])
    run_all(c)
    assert posted == [("g", False, "Unschedulable")] and not binder.bound
    feed(c, NODES, [node("n0", "3")], typ="MODIFIED")  # room for the whole gang now
    run_all(c)
    assert posted == [("g", False, "Unschedulable"), ("g", True, "Scheduled")]
    assert sorted(n for n, _ in binder.bound) == ["g0", "g1", "g2"]
    # a PodGroup already marked scheduled (e.g. before a restart) is never set back to False
    done = pod_group("h", 2)
    done["status"] = {"conditions": [{"type": "PodGroupInitiallyScheduled", "status": "True"}]}
    feed(c, POD_GROUPS, [done])
    feed(c, PODS, [gang_pod(f"h{i}", "h") for i in range(2)])
    run_all(c)
    assert len(posted) == 2


def test_gang_bad_input_foreign_members_and_a_pod_group_deleted_midway():
    """Members that name another scheduler never count towards minCount, and the reason says so;
    a PodGroup deleted while its members wait: they are told at once, and none is bound later."""
    c, binder = make_no_backoff(2)
    feed(c, NODES, [node(f"n{i}", "4") for i in range(2)])
    feed(c, POD_GROUPS, [pod_group("mixed", 4), pod_group("gone", 3)])
    foreign = [gang_pod(f"m{i}", "mixed") for i in (2, 3)]
    for p in foreign:
        p["spec"]["schedulerName"] = "default-scheduler"
    feed(c, PODS, [gang_pod(f"m{i}", "mixed") for i in (0, 1)] + foreign + [gang_pod(f"x{i}", "gone") for i in (0, 1)])
    run_all(c)
    assert not binder.bound
    said = dict(binder.unschedulable)
    assert said["m0"] == said["m1"] == ("waiting for gang mixed: 2 of minCount 4 pods use this scheduler; "
                                        "2 name another (default-scheduler)")
    assert said["x0"] == "waiting for gang gone: fewer than minCount (3) of its pods exist"
    deleting = pod_group("gone", 3)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"  # held by its finalizer
    feed(c, POD_GROUPS, [deleting], typ="MODIFIED")
    run_all(c)
    assert dict(binder.unschedulable)["x1"] == 'PodGroup "gone" in namespace ns is being deleted: its pods are not placed'
    feed(c, PODS, [gang_pod("x2", "gone")])  # the third member: the gang is not started
    run_all(c)
    assert not binder.bound and "x2" in dict(binder.unschedulable)
    feed(c, POD_GROUPS, [deleting], typ="DELETED")
    run_all(c)
    assert dict(binder.unschedulable)["x1"] == 'waiting for PodGroup "gone" in namespace ns: it does not exist'
    feed(c, PODS, foreign, typ="DELETED")  # gone foreign members are no longer named
    c.queue.move_all_to_active()
    run_all(c)
    assert dict(binder.unschedulable)["m0"] == "waiting for gang mixed: fewer than minCount (4) of its pods exist"



# ---- preemption ---------------------------------------------------------------------------------

@pytest.mark.parametrize("partitions", [1, 3])
def test_preemptor_holds_its_room_and_binds_when_its_victims_are_gone(partitions):
    """Nodes full of low pods: a high pod evicts exactly one (on any partition's node), is
    nominated there, holds the room against a later low pod, and binds once the watch shows the
    victim gone."""
    c, binder = make_no_backoff(partitions)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(3)])
    feed(c, PODS, [pod(f"low{i}", "1", node_name=f"n{i // 2}", prio=1) for i in range(6)])
    feed(c, PODS, [pod("high", "1", prio=100)])
    run_all(c)
    assert len(binder.evictions) == 1 and binder.bound == []
    victim, _pre, node_name = binder.evictions[0]
    assert binder.nominations == [("high", node_name)]
    assert binder.unschedulable[-1][1].endswith(
        f"preemption: found a potential placement for pod on node {node_name}, preempting 1 victims")
    assert c.stats.preemptions == 1 and c.stats.victims == 1
    # with several partitions the candidate came from the victim's shard, confirmed on the ledger
    assert c.stats.preemptions_validated == (1 if partitions > 1 else 0)
    # the watch: our DisruptionTarget patch, then the deletion; a low pod created meanwhile
    # must not take the room held for "high"
    feed(c, PODS, [pod("late-low", "1", prio=1)])
    run_all(c)
    assert binder.bound == []
    feed(c, PODS, [pod(victim, "1", node_name=node_name, prio=1)], typ="DELETED")
    run_all(c)
    assert binder.bound == [("high", node_name)]
    assert ("late-low", node_name) not in binder.bound and len(binder.evictions) == 1


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_preemptor_waits_only_for_the_room_on_its_node(partitions):
    """A PodGroup disrupted only whole is evicted whole (its member on the other node too), but
    the preemptor is bound once its own node is free, as upstream's (which schedules it when it
    fits); one whose filters read other nodes (spread) waits for every victim, since its dry run
    removed them all."""
    for spread in (False, True):
        c, binder = make_no_backoff(partitions)
        feed(c, NODES, [node("n0", "2"), node("n1", "2")])
        feed(c, POD_GROUPS, [pod_group("train", basic=True, priority=1, disruptionMode={"all": {}})])
        members = [gang_pod(f"train-{i}", "train", "2") for i in range(2)]
        for i, m in enumerate(members):
            m["spec"].update(nodeName=f"n{i}", priority=1)
        feed(c, PODS, members)
        high = pod("high", "1", prio=100)
        if spread:
            high["metadata"]["labels"] = {"app": "h"}
            high["spec"]["topologySpreadConstraints"] = [{
                "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "h"}}}]
        feed(c, PODS, [high])
        run_all(c)
        assert sorted(v for v, _p, _n in binder.evictions) == ["train-0", "train-1"]
        node_name = binder.nominations[0][1]
        here, there = sorted(members, key=lambda m: m["spec"]["nodeName"] != node_name)
        feed(c, PODS, [here], typ="DELETED")
        run_all(c)
        assert binder.bound == ([] if spread else [("high", node_name)]), spread
        feed(c, PODS, [there], typ="DELETED")
        run_all(c)
        assert binder.bound == [("high", node_name)], spread


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_waiting_preemptor_is_no_pods_affinity_partner_until_it_is_bound(partitions):
    """A pod whose required affinity names the preemptor's labels is not placed next to it
    while it waits for its victims (it may be moved, or never bind: upstream's filters run with
    and without nominated pods), and is placed there once the preemptor is being bound."""
    c, binder = make_no_backoff(partitions)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(3)])
    feed(c, PODS, [pod(f"low{i}", "1", node_name=f"n{i // 2}", prio=1) for i in range(6)])
    high = pod("high", "1", prio=100)
    high["metadata"]["labels"] = {"app": "db"}
    feed(c, PODS, [high])
    run_all(c)
    (victim, _pre, node_name), = binder.evictions
    friend = pod("friend", "0", prio=100)
    friend["spec"]["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    feed(c, PODS, [friend])
    run_all(c)
    assert binder.bound == []
    assert "node(s) didn't match pod affinity rules" in dict(binder.unschedulable)["friend"]
    feed(c, PODS, [pod(victim, "1", node_name=node_name, prio=1)], typ="DELETED")
    run_all(c)  # the preemptor is bound, as good as any assumed pod: its partner follows
    assert binder.bound == [("high", node_name), ("friend", node_name)]


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_bound_pod_requeues_pods_its_spread_domain_was_blocking(partitions):
    """scheduler_perf's EventHandlingPodAdd: a pod waiting on a DoNotSchedule spread constraint
    (its only node already one ahead of the other) fits once a matching pod is bound in the lagging
    domain; that binding must move it out of the unschedulable queue (upstream's queueing hint
    does), not leave it for the periodic flush."""
    c, binder = make_no_backoff(partitions)
    feed(c, NODES, [node("a", "4"), node("b", "4")])
    marker = pod("marker", "0", node_name="a", scheduler="other")
    marker["metadata"]["labels"] = {"color": "green"}
    feed(c, PODS, [marker])

    def spread(name: str) -> dict:
        p = pod(name, "0")
        p["metadata"]["labels"] = {"topology": "blue"}
        p["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"color": "green"}}, "topologyKey": "kubernetes.io/hostname"}]}}
        p["spec"]["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                   "whenUnsatisfiable": "DoNotSchedule",
                                                   "labelSelector": {"matchLabels": {"topology": "blue"}}}]
        return p

    feed(c, PODS, [spread("s0"), spread("s1")])
    run_all(c)
    assert binder.bound == [("s0", "b")] and "s1" in dict(binder.unschedulable)
    unblocker = pod("unblocker", "0", node_name="a", scheduler="other")
    unblocker["metadata"]["labels"] = {"topology": "blue"}
    feed(c, PODS, [unblocker])
    run_all(c)
    assert binder.bound == [("s0", "b"), ("s1", "b")]


def test_a_bound_pod_requeues_only_the_pods_it_may_help():
    """Upstream's queueing hint for an assigned pod's add: a pod waiting for a partner (required
    affinity) is retried when a pod its term matches is bound, not for any binding."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("a", "4"), node("b", "4")])
    friend = pod("friend", "0")
    friend["spec"]["affinity"] = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    feed(c, PODS, [friend])
    run_all(c)
    assert c.queue.where("u-friend") == "unschedulable"
    tried = c.queue.attempts("u-friend")
    web = pod("web", "1", node_name="a", scheduler="other")
    web["metadata"]["labels"] = {"app": "web"}
    feed(c, PODS, [web])
    run_all(c)
    assert c.queue.where("u-friend") == "unschedulable" and c.queue.attempts("u-friend") == tried
    db = pod("db", "1", node_name="b", scheduler="other")
    db["metadata"]["labels"] = {"app": "db"}
    feed(c, PODS, [db])
    run_all(c)
    assert binder.bound == [("friend", "b")]


def test_a_node_change_requeues_the_pods_that_fit_there_now():
    """Upstream's queueing hints for a node's add or update (NodeResourcesFit, NodeAffinity,
    TaintToleration...): a pod is retried when the changed node would take it, not on every
    change; a pod whose filters read other nodes (spread) is retried anyway."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("a", "1")])
    picky = pod("picky", "1")
    picky["spec"]["nodeSelector"] = {"disk": "ssd"}
    spread = pod("spread", "8")
    spread["metadata"]["labels"] = {"app": "s"}
    spread["spec"]["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                    "whenUnsatisfiable": "DoNotSchedule",
                                                    "labelSelector": {"matchLabels": {"app": "s"}}}]
    feed(c, PODS, [pod("big", "4"), picky, spread])
    run_all(c)
    tried = {u: c.queue.attempts(u) for u in ("u-big", "u-picky", "u-spread")}
    assert all(c.queue.where(u) == "unschedulable" for u in tried)
    feed(c, NODES, [node("a", "5")], typ="MODIFIED")  # grown: big fits, picky still lacks the label
    run_all(c)
    assert binder.bound == [("big", "a")]
    assert c.queue.attempts("u-picky") == tried["u-picky"]
    assert c.queue.attempts("u-spread") > tried["u-spread"]  # (it reads every node's domain)
    ssd = node("b", "2")
    ssd["metadata"]["labels"]["disk"] = "ssd"
    feed(c, NODES, [ssd])  # a new node that takes it
    run_all(c)
    assert ("picky", "b") in binder.bound


def test_room_freed_on_a_node_requeues_the_pods_that_fit_there():
    """Upstream's hints for an assigned pod's delete: the pods that fit where it ran are retried,
    not every waiting pod; a pod whose own anti-affinity kept others off a whole zone frees the
    zone (a pod pinned to the zone's other node is retried)."""
    c, binder = make_no_backoff(1)
    zoned = [node(n, "2") for n in ("a", "b", "c")]
    for n in zoned[1:]:
        n["metadata"]["labels"]["topology.kubernetes.io/zone"] = "z1"
    feed(c, NODES, zoned)
    loner = pod("loner", "1", node_name="b", scheduler="other")
    loner["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "x"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}
    feed(c, PODS, [pod("ba", "2", node_name="a", scheduler="other"), loner])

    def pinned(name: str, to: str, labels: dict | None = None) -> dict:
        p = pod(name, "1")
        p["metadata"]["labels"] = labels or {}
        p["spec"]["nodeSelector"] = {"kubernetes.io/hostname": to}
        return p
    feed(c, PODS, [pinned("to-a", "a"), pinned("x", "c", {"app": "x"})])
    run_all(c)
    tried = c.queue.attempts("u-x")
    feed(c, PODS, [pod("ba", "2", node_name="a", scheduler="other")], typ="DELETED")
    run_all(c)
    assert binder.bound == [("to-a", "a")] and c.queue.attempts("u-x") == tried
    feed(c, PODS, [loner], typ="DELETED")
    run_all(c)
    assert binder.bound == [("to-a", "a"), ("x", "c")]


def test_no_preemption_when_not_needed_or_not_allowed():
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n0", "2"), node("n1", "2")])
    feed(c, PODS, [pod("low0", "1", node_name="n0", prio=1), pod("low1", "1", node_name="n0", prio=1)])
    never = pod("polite", "2", prio=100)
    never["spec"]["preemptionPolicy"] = "Never"
    feed(c, PODS, [pod("fits", "2", prio=100), never])
    run_all(c)
    assert binder.bound == [("fits", "n1")] and binder.evictions == []  # a plain placement existed
    assert dict(binder.unschedulable)["polite"].endswith("preemption: not eligible due to preemptionPolicy=Never.")


def test_failed_eviction_releases_the_preemptor():
    c, binder = make(1)
    c.queue.backoff_initial_s = c.queue.backoff_max_s = 60.0  # it is not tried again in this test
    binder.evict_outcome = "retry"
    feed(c, NODES, [node("n0", "1")])
    feed(c, PODS, [pod("low", "1", node_name="n0", prio=1), pod("high", "1", prio=100)])
    c.run_once()
    assert binder.evictions == [("low", "high", "n0")] and "u-high" in c.nominated
    c.run_once()  # drains the failed eviction
    assert "u-high" not in c.nominated and "u-high" not in c.assumed and "u-high" in c.pending
    assert c.stats.evictions_failed == 1
    assert "u-high" not in c.ledger.pods and not c.preemption.evicting


def test_preemptor_deleted_while_its_victims_go_gives_the_room_back():
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n0", "1")])
    feed(c, PODS, [pod("low", "1", node_name="n0", prio=1), pod("high", "1", prio=100)])
    run_all(c)
    assert "u-high" in c.nominated
    feed(c, PODS, [pod("high", "1", prio=100)], typ="DELETED")
    run_all(c)
    assert not c.nominated and "u-high" not in c.ledger.pods
    feed(c, PODS, [pod("low", "1", node_name="n0", prio=1)], typ="DELETED")
    feed(c, PODS, [pod("next", "1", prio=1)])
    run_all(c)
    assert binder.bound == [("next", "n0")] and len(binder.evictions) == 1


def test_a_restarted_coordinator_waits_for_terminating_victims_instead_of_preempting_again():
    """After a restart the preemptor is pending with nominatedNodeName and its victim still
    terminating: it must not evict anyone else; it holds the room again (as upstream's nominator
    restores nominations from the pods' status), so a pod created meanwhile does not take it, and
    it binds once the victim is gone."""
    c, binder = make(1)
    c.queue.backoff_initial_s = c.queue.backoff_max_s = 60.0  # only the victim's deletion may bind it
    feed(c, NODES, [node("n0", "1"), node("n1", "1")])
    going = pod("victim", "1", node_name="n0", prio=1)
    going["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    high = pod("high", "1", prio=100)
    high["status"]["nominatedNodeName"] = "n0"
    feed(c, PODS, [going, pod("other", "1", node_name="n1", prio=1), high])
    run_all(c)
    assert binder.evictions == [] and binder.bound == []
    assert dict(binder.unschedulable)["high"].endswith(
        "preemption: not eligible due to a terminating pod on the nominated node.")
    assert "u-high" in c.nominated and c.ledger.pods["u-high"].node_name == "n0"
    assert c.stats.nominations_reheld == 1
    feed(c, PODS, [going], typ="DELETED")
    feed(c, PODS, [pod("late", "1", prio=1)])  # arrives with the deletion: the room is not its
    run_all(c)
    assert binder.bound == [("high", "n0")]
    assert "late" in dict(binder.unschedulable)


def test_a_higher_priority_preemptor_never_evicts_a_nominated_pod_and_clears_its_nomination():
    """A nominated preemptor is never a victim, and a preemptor of higher priority does not see
    it (upstream adds only nominated pods of its priority or more): it counts the victim already
    terminating for the nominated pod as its own (no second eviction), reprieves the pod of
    priority 500 that still fits beside it, and clears the lower nomination, which is tried again."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n0", "2")])
    feed(c, PODS, [pod("low0", "1", node_name="n0", prio=500), pod("low1", "1", node_name="n0", prio=1)])
    feed(c, PODS, [pod("mid", "1", prio=100)])
    run_all(c)
    assert binder.evictions == [("low1", "mid", "n0")] and binder.nominations == [("mid", "n0")]
    feed(c, PODS, [pod("high", "1", prio=1000)])
    run_all(c)
    assert binder.evictions == [("low1", "mid", "n0")]  # neither mid nor low0 is evicted
    assert binder.nominations == [("mid", "n0"), ("mid", ""), ("high", "n0")]
    assert "u-mid" not in c.nominated and "u-mid" not in c.ledger.pods and c.stats.nominations_cleared == 1
    assert set(c.preemption.held) == {"u-high"}
    feed(c, PODS, [pod("low1", "1", node_name="n0", prio=1)], typ="DELETED")
    c.queue.move_all_to_active()
    run_all(c)
    assert binder.bound == [("high", "n0")] and not c.preemption.held
    assert dict(binder.unschedulable)["mid"].endswith("1 No preemption victims found for incoming pod.")


def test_a_higher_priority_pod_takes_room_held_only_by_a_lower_nomination_without_evicting():
    """The nominated pod waits for two victims; one is gone. A pod of higher priority fits in
    what is physically free once that nomination is not seen: it is bound at once (upstream's
    filters would have placed it there), with no eviction, and the nomination is cleared."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node("n0", "4")])
    feed(c, PODS, [pod("a", "2", node_name="n0", prio=1), pod("b", "2", node_name="n0", prio=1)])
    feed(c, PODS, [pod("mid", "3", prio=100)])
    run_all(c)
    assert sorted(v for v, _p, _n in binder.evictions) == ["a", "b"]
    feed(c, PODS, [pod("a", "2", node_name="n0", prio=1)], typ="DELETED")
    run_all(c)
    assert binder.bound == []  # b is still terminating
    feed(c, PODS, [pod("high", "2", prio=1000)])
    run_all(c)
    assert binder.bound == [("high", "n0")] and len(binder.evictions) == 2
    assert binder.nominations[-1] == ("mid", "") and "u-mid" not in c.nominated
    feed(c, PODS, [pod("b", "2", node_name="n0", prio=1)], typ="DELETED")
    c.queue.move_all_to_active()
    run_all(c)
    assert binder.bound == [("high", "n0")]  # 2 of 4 cpu left: mid does not fit, nor may it evict high
    assert "mid" in dict(binder.unschedulable)


def test_a_gang_preempts_with_its_pod_groups_priority():
    """As upstream 1.37 (PodGroupPriority): a gang preempts with its PodGroup's spec.priority (0
    when unset), whatever its pods' own: members of priority 100 in a group of priority 0 evict
    nothing; once the group's priority is 100 the gang preempts."""
    c, binder = make_no_backoff(1)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(2)])
    feed(c, PODS, [pod(f"low{i}", "2", node_name=f"n{i}", prio=1) for i in range(2)])
    run_all(c)
    train = [gang_pod(f"t{i}", "train", cpu="2") for i in range(2)]
    for p in train:
        p["spec"]["priority"] = 100
    feed(c, POD_GROUPS, [pod_group("train", 2)])
    feed(c, PODS, train)
    run_all(c)
    assert binder.evictions == [] and sorted(dict(binder.unschedulable)) == ["t0", "t1"]
    feed(c, POD_GROUPS, [pod_group("train", 2, priority=100)], typ="MODIFIED")
    c.queue.move_all_to_active()
    run_all(c)
    assert sorted(v for v, _p, _n in binder.evictions) == ["low0", "low1"]


@pytest.mark.parametrize("partitions", [1, 3])
def test_a_gang_preempts_as_one_and_binds_when_its_victims_are_gone(partitions):
    """Upstream's workload-aware preemption: a gang that fits nowhere evicts, across nodes, the
    fewest lower-priority pods that let all its members fit (more important pods reprieved
    first), its members hold their nodes (nominated) and bind together once every victim is
    gone. A gang whose pods may not preempt stays Unschedulable."""
    c, binder = make_no_backoff(partitions)
    feed(c, NODES, [node(f"n{i}", "2") for i in range(5)])
    low = [pod(f"low{i}", "1", node_name=f"n{i // 2}", prio=1) for i in range(8)]
    feed(c, PODS, low + [pod("mid0", "1", node_name="n4", prio=50), pod("mid1", "1", node_name="n4", prio=50)])
    run_all(c)
    polite = [gang_pod(f"p{i}", "polite", cpu="2") for i in range(3)]
    for p in polite:
        p["spec"]["priority"], p["spec"]["preemptionPolicy"] = 100, "Never"
    train = [gang_pod(f"t{i}", "train", cpu="2") for i in range(3)]
    for p in train:
        p["spec"]["priority"] = 100
    feed(c, POD_GROUPS, [pod_group("train", 3, priority=100), pod_group("polite", 3, priority=100)])
    feed(c, PODS, train + polite)
    run_all(c)
    victims = sorted(v for v, _p, _n in binder.evictions)
    assert len(victims) == 6 and all(v.startswith("low") for v in victims), victims  # mid pods reprieved
    nominated = dict(binder.nominations)
    assert sorted(nominated) == ["t0", "t1", "t2"] and len(set(nominated.values())) == 3
    assert binder.bound == [] and all(n.startswith("p") or n.startswith("t") for n, _m in binder.unschedulable)
    assert not any(n.startswith("p") for n, _p, _n in binder.evictions)
    assert dict(binder.unschedulable)["p0"].endswith("gang polite needs 3, 0 fit")
    # the victims go one by one: the gang binds only when the last is gone, all together
    for v in victims[:-1]:
        feed(c, PODS, [next(p for p in low if p["metadata"]["name"] == v)], typ="DELETED")
        run_all(c)
        assert binder.bound == []
    feed(c, PODS, [next(p for p in low if p["metadata"]["name"] == victims[-1])], typ="DELETED")
    run_all(c)
    assert sorted(n for n, _node in binder.bound) == ["t0", "t1", "t2"]
    assert {node for _n, node in binder.bound} == set(nominated.values())
    assert c.stats.preemptions == 1 and c.stats.victims == 6 and not c.preemption.held
