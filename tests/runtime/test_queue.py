"""The scheduling queue's ordering and timing rules (upstream PriorityQueue semantics)."""

from __future__ import annotations

from cluster_scheduler.model.types import PodInfo, PodSpecKey, PodAffinityTerm
from cluster_scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def key(cpu: int = 100, affinity: bool = False) -> PodSpecKey:
    terms = (PodAffinityTerm(None, "zone"),) if affinity else ()
    return PodSpecKey("ns", (), (("cpu", cpu),), cpu, 0, pod_affinity=terms)


def pod(name: str, priority: int = 0, **kw) -> PodInfo:
    return PodInfo(uid=name, namespace="ns", name=name, priority=priority, key=key(**kw))


def names(pods) -> list[str]:
    return [p.name for p in pods]


def make(clock: Clock, **kw) -> SchedulingQueue:
    return SchedulingQueue(backoff_initial_s=1.0, backoff_max_s=4.0, unschedulable_flush_s=60.0, clock=clock, **kw)


def test_priority_then_arrival_and_batches():
    q = make(Clock())
    for name, prio in [("a", 0), ("b", 10), ("c", 0), ("d", 10), ("e", 5)]:
        q.add(pod(name, prio))
    assert names(q.pop_batch(3)) == ["b", "d", "e"]
    assert names(q.pop_batch(10)) == ["a", "c"]
    assert q.pop_batch(10) == [] and len(q) == 0


def test_duplicate_adds_do_not_duplicate_pods():
    q = make(Clock())
    q.add(pod("a"))
    q.add(pod("a"))
    q.add(pod("a", cpu=200))  # spec changed: still one pod, with the new spec
    got = q.pop_batch(10)
    assert names(got) == ["a"] and got[0].key == key(cpu=200)


def test_requeued_loser_keeps_its_place():
    q = make(Clock())
    q.add(pod("a"))
    q.add(pod("b"))
    (a,) = q.pop_batch(1)
    q.add(pod("c"))
    q.requeue(a)
    assert names(q.pop_batch(10)) == ["a", "b", "c"]


def test_backoff_is_exponential_and_capped():
    clock = Clock()
    q = make(clock)
    q.add(pod("a"))
    delays = []
    for _ in range(5):
        (a,) = q.pop_batch(1)
        q.backoff(a)
        assert q.where("a") == BACKOFF and q.pop_batch(1) == []
        start = clock.t
        while q.where("a") == BACKOFF:
            clock.t += 0.25
            q.flush()
        delays.append(clock.t - start)
        assert q.where("a") == ACTIVE
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_unschedulable_waits_for_an_event_or_the_flush():
    clock = Clock()
    q = make(clock)
    q.add(pod("a"))
    q.add(pod("b", affinity=True))
    for p in q.pop_batch(10):
        q.mark_unschedulable(p)
    assert q.counts() == {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 2}
    clock.t += 30
    assert q.pop_batch(10) == []  # nothing changed, nothing to retry
    # a bound pod only helps pods with required affinity
    assert q.move_all_to_active(lambda p: bool(p.key.pod_affinity)) == 1
    assert names(q.pop_batch(10)) == ["b"]
    q.mark_unschedulable(pod("b", affinity=True))
    # the flush interval passes for "a" (unschedulable since t=1000): it is retried without an event
    clock.t += 31
    assert names(q.pop_batch(10)) == ["a"]
    assert q.where("b") == UNSCHEDULABLE


def test_event_within_backoff_goes_to_backoff_first():
    clock = Clock()
    q = make(clock)
    q.add(pod("a"))
    q.mark_unschedulable(q.pop_batch(1)[0])
    assert q.move_all_to_active() == 1
    assert q.where("a") == BACKOFF and q.next_ready_in() == 1.0
    q.add(pod("b"))
    assert names(q.pop_batch(1)) == ["b"]  # an active pod goes first: "a" waits out its backoff
    clock.t += 1.0
    assert names(q.pop_batch(1)) == ["a"]


def test_an_idle_queue_takes_backoff_pods_early_but_not_failed_bindings():
    """Upstream's SchedulerPopFromBackoffQ (on by default since 1.33): with no active pod, a pod
    an event moved into backoff is taken at once, earliest expiry first, then priority; a pod
    backing off after an error (a failed binding) still waits its time."""
    clock = Clock()
    q = make(clock)
    for name, prio in (("a", 0), ("b", 0), ("c", 5)):
        q.add(pod(name, prio))
    c, a, b = q.pop_batch(3)
    for p in (a, c):
        q.mark_unschedulable(p)
        clock.t += 0.1
    q.backoff(b)
    assert q.move_all_to_active() == 2
    assert names(q.pop_batch(1)) == ["a"]  # its backoff ends first (c failed 0.1 s later)
    q.mark_unschedulable(a)
    q.move_all_to_active()
    assert names(q.pop_batch(5)) == ["c", "a"]  # all at once, in the order their backoffs end
    assert q.pop_batch(5) == [] and q.where("b") == BACKOFF
    clock.t += 1.0
    assert names(q.pop_batch(5)) == ["b"]


def test_spec_change_revives_an_unschedulable_pod_and_delete_forgets():
    q = make(Clock())
    q.add(pod("a"))
    q.add(pod("b"))
    for p in q.pop_batch(10):
        q.mark_unschedulable(p)
    q.add(pod("a"))  # same spec (e.g. our own status patch): stays put
    assert q.where("a") == UNSCHEDULABLE
    q.add(pod("a", cpu=50))
    assert q.where("a") == ACTIVE
    q.delete("b")
    assert "b" not in q and q.move_all_to_active() == 0
    assert names(q.pop_batch(10)) == ["a"]
    q.done("a")
    assert len(q) == 0


def test_attempts_count_pops():
    q = make(Clock())
    q.add(pod("a"))
    for i in range(1, 4):
        (a,) = q.pop_batch(1)
        assert q.attempts("a") == 0  # popped: owned by the caller
        q.requeue(a)
        assert q.attempts("a") == i
