"""Leader election against the real apiserver: one leader at a time, fast failover on release,
failover after expiry on a crash, 409 races lost cleanly, and the scheduler's RBAC allows it."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_scheduler.api.leader import JITTER_FACTOR, LeaderElector, micro_time

pytestmark = pytest.mark.timeout(120)

# short timings for tests: lease 3 s, renew deadline 2 s, retry 0.5 s
LEASE, RENEW, RETRY = 3.0, 2.0, 0.5


def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


def read_lease(api, ns: str, name: str) -> dict:
    resp = client.CoordinationV1Api(api).read_namespaced_lease(name, ns, _preload_content=False)
    return orjson.loads(resp.data)


def elector(api, ns, name, ident, events=None, **kw) -> LeaderElector:
    params = dict(lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)
    params.update(kw)
    if events is not None:
        params["on_started_leading"] = lambda: events.append((ident, "start", time.monotonic()))
        params["on_stopped_leading"] = lambda: events.append((ident, "stop", time.monotonic()))
    return LeaderElector(api, name, ns, ident, **params)


def wait_until(pred, timeout: float, step: float = 0.02) -> float | None:
    """Seconds until pred() held, None on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


class Sampler:
    """Samples how many electors believe they lead, in the background, to catch any overlap."""

    def __init__(self, electors: list[LeaderElector], step: float = 0.01) -> None:
        self.electors, self.step = electors, step
        self.max_leaders = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            n = sum(e.is_leader() for e in self.electors)
            self.max_leaders = max(self.max_leaders, n)
            self.samples += 1
            time.sleep(self.step)

    def __enter__(self) -> "Sampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def test_rejects_inconsistent_timings():
    with pytest.raises(ValueError):
        LeaderElector(None, "l", "ns", "a", lease_duration=2, renew_deadline=2, retry_period=0.5)
    with pytest.raises(ValueError):
        LeaderElector(None, "l", "ns", "a", lease_duration=3, renew_deadline=1, retry_period=1)
    with pytest.raises(ValueError):
        LeaderElector(None, "l", "ns", "", lease_duration=3, renew_deadline=2, retry_period=0.5)


def test_micro_time_format():
    assert micro_time(0) == "1970-01-01T00:00:00.000000Z"
    assert micro_time(1.5) == "1970-01-01T00:00:01.500000Z"


def test_two_electors_exactly_one_leads_and_record_is_client_go_shaped(admin_api, namespace):
    name = lease_name()
    events: list = []
    a, b = elector(admin_api, namespace, name, "a", events), elector(admin_api, namespace, name, "b", events)
    with Sampler([a, b]) as s:
        a.start(), b.start()
        assert wait_until(lambda: a.is_leader() or b.is_leader(), 10) is not None
        time.sleep(2.5)  # several renew rounds
    try:
        assert s.max_leaders == 1 and s.samples > 50
        leader, other = (a, b) if a.is_leader() else (b, a)
        assert not other.is_leader()
        lease = read_lease(admin_api, namespace, name)
        spec = lease["spec"]
        assert spec["holderIdentity"] == leader.identity
        assert spec["leaseDurationSeconds"] == 3
        assert spec["leaseTransitions"] == 0
        assert spec["acquireTime"] and spec["renewTime"]
        # the leader keeps renewing: renewTime moves, acquireTime does not
        time.sleep(RETRY * 2.5)
        spec2 = read_lease(admin_api, namespace, name)["spec"]
        assert spec2["renewTime"] > spec["renewTime"]
        assert spec2["acquireTime"] == spec["acquireTime"]
        assert other.observed_holder == leader.identity
        assert [e[:2] for e in events] == [(leader.identity, "start")]
    finally:
        a.stop(), b.stop()


def test_release_on_stop_gives_fast_failover(admin_api, namespace):
    name = lease_name()
    events: list = []
    a = elector(admin_api, namespace, name, "a", events).start()
    assert a.wait_for_leadership(10)
    b = elector(admin_api, namespace, name, "b", events).start()
    time.sleep(1.0)
    assert not b.is_leader()
    t0 = time.monotonic()
    a.stop(release=True)
    assert not a.is_leader()
    took = wait_until(b.is_leader, LEASE + 5)
    try:
        assert took is not None
        # an empty holder is free at once: one retry period (with jitter), far less than the lease
        assert took < RETRY * JITTER_FACTOR + 1.0, took
        spec = read_lease(admin_api, namespace, name)["spec"]
        assert spec["holderIdentity"] == "b"
        assert spec["leaseTransitions"] == 1
        assert [e[:2] for e in events] == [("a", "start"), ("a", "stop"), ("b", "start")]
        assert events[1][2] >= t0 and events[1][2] <= events[2][2]
    finally:
        b.stop()


def test_crash_failover_waits_for_expiry(admin_api, namespace):
    name = lease_name()
    a = elector(admin_api, namespace, name, "a").start()
    assert a.wait_for_leadership(10)
    b = elector(admin_api, namespace, name, "b").start()
    time.sleep(1.5)
    assert not b.is_leader()
    t0 = time.monotonic()
    a.stop(release=False)  # a crash: the lease still names a
    assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == "a"
    took = wait_until(b.is_leader, LEASE + 10)
    try:
        assert took is not None, "standby never took over"
        # not before the lease could have expired (b saw a's last renewal at most one retry
        # period before the crash), and within lease duration + one jittered retry (+ slack)
        assert took >= LEASE - RETRY * JITTER_FACTOR - 0.2, took
        assert took <= LEASE + RETRY * JITTER_FACTOR + 1.5, took
        spec = read_lease(admin_api, namespace, name)["spec"]
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    finally:
        b.stop()
    assert time.monotonic() - t0 < 30


def test_stale_resource_version_loses_with_409(admin_api, namespace):
    """A writes with the resourceVersion it read; B wins in between; A's update gets a real 409
    from the apiserver and A does not lead."""
    name = lease_name()
    a = elector(admin_api, namespace, name, "a")
    b = elector(admin_api, namespace, name, "b")
    # a lease whose holder released it: free for anyone
    assert b.try_acquire_or_renew()
    assert b.release()
    real_read = a._read
    interleaved = []

    def read_then_b_wins():
        lease = real_read()
        interleaved.append(b.try_acquire_or_renew())  # B takes it after A's read
        return lease

    a._read = read_then_b_wins
    assert a.try_acquire_or_renew() is False
    assert interleaved == [True]
    spec = read_lease(admin_api, namespace, name)["spec"]
    assert spec["holderIdentity"] == "b"
    # and A, reading afresh, sees a live holder and backs off without writing
    a._read = real_read
    rv = read_lease(admin_api, namespace, name)["metadata"]["resourceVersion"]
    assert a.try_acquire_or_renew() is False
    assert read_lease(admin_api, namespace, name)["metadata"]["resourceVersion"] == rv


def test_create_race_has_one_winner(admin_api, namespace):
    """Many candidates creating the same absent Lease at once: AlreadyExists (409) for all but one."""
    name = lease_name()
    electors = [elector(admin_api, namespace, name, f"c{i}") for i in range(6)]
    barrier = threading.Barrier(len(electors))
    results: dict[str, bool] = {}

    def go(e):
        barrier.wait()
        results[e.identity] = e.try_acquire_or_renew()

    threads = [threading.Thread(target=go, args=(e,)) for e in electors]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = [k for k, v in results.items() if v]
    assert len(winners) == 1
    assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == winners[0]


def test_churn_never_two_leaders(admin_api, namespace):
    """Four candidates; the leader is repeatedly killed (with and without release). At every
    sample at most one believes it leads, and each new leader is the lease's holder."""
    name = lease_name()
    kw = dict(lease_duration=2.0, renew_deadline=1.5, retry_period=0.25)
    pool = [elector(admin_api, namespace, name, f"e{i}", **kw).start() for i in range(4)]
    everyone = list(pool)
    leaders_seen = []
    try:
        with Sampler(everyone, step=0.005) as s:
            for round_ in range(3):
                assert wait_until(lambda: any(e.is_leader() for e in pool), 8) is not None
                leader = next(e for e in pool if e.is_leader())
                assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == leader.identity
                leaders_seen.append(leader.identity)
                pool.remove(leader)
                leader.stop(release=bool(round_ % 2))
                pool.append(elector(admin_api, namespace, name, f"n{round_}", **kw).start())
                everyone.append(pool[-1])
                s.electors = list(everyone)
            assert wait_until(lambda: any(e.is_leader() for e in pool), 8) is not None
        assert s.max_leaders == 1
        assert len(set(leaders_seen)) == 3
        assert read_lease(admin_api, namespace, name)["spec"]["leaseTransitions"] == 3
    finally:
        for e in everyone:
            e.stop(release=False)


def test_leader_steps_down_when_lease_is_taken(admin_api, namespace):
    """Someone overwrites the lease (e.g. after a long pause of ours): the leader must stop
    leading within renew_deadline, not keep scheduling."""
    name = lease_name()
    events: list = []
    a = elector(admin_api, namespace, name, "a", events).start()
    try:
        assert a.wait_for_leadership(10)
        lease = read_lease(admin_api, namespace, name)
        lease["spec"]["holderIdentity"] = "intruder"
        lease["spec"]["renewTime"] = micro_time()
        client.CoordinationV1Api(admin_api).replace_namespaced_lease(name, namespace, lease)
        took = wait_until(lambda: not a.is_leader(), RENEW + 3)
        assert took is not None and took <= RENEW + RETRY * JITTER_FACTOR + 0.5
        assert [e[:2] for e in events] == [("a", "start"), ("a", "stop")]
        assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == "intruder"
    finally:
        a.stop()
    # stop() must not release a lease someone else holds
    assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == "intruder"


def test_scheduler_service_account_can_elect(scheduler_api, admin_api, namespace):
    """k8s/rbac.yaml grants exactly get/create/update on leases: enough to campaign, renew and
    release, and no delete."""
    name = lease_name()
    a = elector(scheduler_api, namespace, name, "sched-0").start()
    try:
        assert a.wait_for_leadership(10)
        first = read_lease(admin_api, namespace, name)["spec"]["renewTime"]
        assert wait_until(lambda: read_lease(admin_api, namespace, name)["spec"]["renewTime"] != first, 5)
    finally:
        a.stop(release=True)
    assert read_lease(admin_api, namespace, name)["spec"]["holderIdentity"] == ""
    with pytest.raises(ApiException) as exc:
        client.CoordinationV1Api(scheduler_api).delete_namespaced_lease(name, namespace)
    assert exc.value.status == 403
