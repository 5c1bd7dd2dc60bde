"""The scheduling queue: active, backoff and unschedulable pods, as upstream's PriorityQueue.

- active: what the next batch takes, highest priority first, then arrival order (FIFO within a
  priority, so a burst of equal pods is placed in creation order).
- backoff: pods whose binding failed for a transient reason wait an exponentially growing time
  (backoff_initial_s * 2^(attempts-1), capped at backoff_max_s) before they are active again;
  so do unschedulable pods a cluster event moves before their backoff from the failed attempt
  ends, but those are taken before it ends whenever no pod is active (upstream's
  SchedulerPopFromBackoffQ, on by default since 1.33: an idle scheduler does not wait out a
  backoff), earliest expiry first.
- unschedulable: pods that fit nowhere. Nothing will change for them until the cluster does, so
  they wait for a cluster event (`move_all_to_active`: node added/updated, pod deleted) and are
  flushed back at least every `unschedulable_flush_s` in case an event was missed.

Single-threaded by design: only the coordinator's loop touches it. The clock is injectable so the
timing rules can be tested without sleeping.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable

from .model.types import PodInfo

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"


@dataclass(slots=True)
class QueuedPod:
    """A pod and its queue bookkeeping. `seq` is the arrival order and is kept across retries, so
    a pod that lost a conflict goes back ahead of pods that arrived after it."""

    pod: PodInfo
    seq: int
    attempts: int = 0
    backoff_until: float = 0.0
    unschedulable_since: float = 0.0
    where: str = ""
    early: bool = False  # in backoff after an event moved it: may be taken early (`pop_batch`)


@dataclass
class SchedulingQueue:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 10.0
    unschedulable_flush_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _pods: dict[str, QueuedPod] = field(default_factory=dict)  # uid -> entry, wherever it is
    _active: list[tuple[int, int, str]] = field(default_factory=list)  # (-priority, seq, uid)
    _backoff: list[tuple[float, int, str]] = field(default_factory=list)  # (until, seq, uid)
    # the backoff pods that may be taken early: (until, -priority, seq, uid), as upstream orders them
    _early: list[tuple[float, int, int, str]] = field(default_factory=list)
    _unschedulable: dict[str, QueuedPod] = field(default_factory=dict)
    # pods handed out by pop_batch, so requeues keep their seq and attempt count
    _popped: dict[str, QueuedPod] = field(default_factory=dict)
    _seq: itertools.count = field(default_factory=itertools.count)
    _last_flush: float = -1.0

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, uid: str) -> bool:
        return uid in self._pods

    def where(self, uid: str) -> str | None:
        e = self._pods.get(uid)
        return e.where if e else None

    def counts(self) -> dict[str, int]:
        c = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0}
        for e in self._pods.values():
            c[e.where] += 1
        return c

    def unschedulable_count(self) -> int:
        return len(self._unschedulable)

    def attempts(self, uid: str) -> int:
        e = self._pods.get(uid)
        return e.attempts if e else 0

    # ---------------------------------------------------------------- entries
    def _push_active(self, e: QueuedPod) -> None:
        e.where = ACTIVE
        heapq.heappush(self._active, (-e.pod.priority, e.seq, e.pod.uid))

    def add(self, pod: PodInfo) -> None:
        """A pending pod from the informer. A known pod only gets its spec refreshed; if its
        spec changed while it was unschedulable it may fit now, so it becomes active again."""
        e = self._pods.get(pod.uid)
        if e is None:
            e = QueuedPod(pod, next(self._seq))
            self._pods[pod.uid] = e
            self._push_active(e)
            return
        changed = e.pod.key != pod.key or e.pod.priority != pod.priority
        e.pod = pod
        if changed and e.where == UNSCHEDULABLE:
            del self._unschedulable[pod.uid]
            self._push_active(e)
        elif changed and e.where == ACTIVE:
            self._push_active(e)  # the old heap entry is skipped as a duplicate in pop_batch

    def delete(self, uid: str) -> None:
        """The pod is gone, bound by someone, or taken by the scheduler: stale heap entries are
        skipped lazily."""
        e = self._pods.pop(uid, None)
        if e is not None and e.where == UNSCHEDULABLE:
            self._unschedulable.pop(uid, None)

    def take(self, uid: str) -> PodInfo | None:
        """Take one queued pod out of whichever queue holds it (active, backoff or
        unschedulable), as `pop_batch` would: the caller owns it now. None when it is not queued.
        A gang is placed together: its other members are taken when one of them is popped."""
        e = self._pods.get(uid)
        if e is None:
            return None
        self._unschedulable.pop(uid, None)
        return self._hand_out(e)

    def _hand_out(self, e: QueuedPod) -> PodInfo:
        """The pod leaves the queue for the caller, who owns it until it hands it back."""
        uid = e.pod.uid
        del self._pods[uid]
        e.attempts += 1
        self._popped[uid] = e
        return e.pod

    def pop_batch(self, n: int) -> list[PodInfo]:
        """Up to n active pods, best first. They leave the queue: the caller owns them until it
        calls requeue/backoff/mark_unschedulable, or drops them (bound, gone)."""
        self.flush()
        out: list[PodInfo] = []
        # (a pod handed out leaves `_pods`, so a duplicate heap entry of it is skipped)
        while self._active and len(out) < n:
            _neg, seq, uid = heapq.heappop(self._active)
            e = self._pods.get(uid)
            if e is not None and e.where == ACTIVE and e.seq == seq:
                out.append(self._hand_out(e))
        idle = not out  # no pod is active: no need to wait out a backoff
        while idle and self._early and len(out) < n:
            until, _neg, seq, uid = heapq.heappop(self._early)
            e = self._pods.get(uid)
            if e is not None and self._is_early(e, until, seq):
                out.append(self._hand_out(e))
        return out

    @staticmethod
    def _is_early(e: QueuedPod, until: float, seq: int) -> bool:
        return e.where == BACKOFF and e.early and e.seq == seq and e.backoff_until == until

    def _entry(self, pod: PodInfo) -> QueuedPod:
        e = self._popped.pop(pod.uid, None) or self._pods.pop(pod.uid, None)
        if e is None:
            e = QueuedPod(pod, next(self._seq))
        else:
            self._unschedulable.pop(pod.uid, None)
        e.pod = pod
        self._pods[pod.uid] = e
        return e

    def done(self, uid: str) -> None:
        """The pod was placed (or dropped): forget its bookkeeping."""
        self._popped.pop(uid, None)
        self.delete(uid)

    def requeue(self, pod: PodInfo) -> None:
        """Back to active at once (lost an optimistic conflict: another node may still fit)."""
        self._push_active(self._entry(pod))

    def backoff(self, pod: PodInfo) -> None:
        """Back after an exponential delay (a transient API error)."""
        e = self._entry(pod)
        e.backoff_until = self.clock() + self.backoff_delay(max(e.attempts, 1))
        e.where = BACKOFF
        e.early = False
        heapq.heappush(self._backoff, (e.backoff_until, e.seq, pod.uid))

    def backoff_delay(self, attempts: int) -> float:
        # the exponent is capped: a pod retried for hours must not overflow the float
        return min(self.backoff_initial_s * (2 ** min(attempts - 1, 60)), self.backoff_max_s)

    def mark_unschedulable(self, pod: PodInfo) -> None:
        e = self._entry(pod)
        e.where = UNSCHEDULABLE
        e.unschedulable_since = self.clock()
        # it failed on this attempt: it may not come back before its backoff ends
        e.backoff_until = e.unschedulable_since + self.backoff_delay(max(e.attempts, 1))
        self._unschedulable[pod.uid] = e

    # ------------------------------------------------------------------ moves
    def _release(self, e: QueuedPod, now: float) -> None:
        if e.backoff_until > now:
            e.where = BACKOFF
            e.early = True
            heapq.heappush(self._early, (e.backoff_until, -e.pod.priority, e.seq, e.pod.uid))
        else:
            self._push_active(e)

    def move_all_to_active(self, pred: Callable[[PodInfo], bool] | None = None) -> int:
        """A cluster event that may make unschedulable pods fit: move them (those `pred` accepts)
        to active, or to backoff while their backoff has not expired. Returns how many moved."""
        now = self.clock()
        moved = [e for e in self._unschedulable.values() if pred is None or pred(e.pod)]
        for e in moved:
            del self._unschedulable[e.pod.uid]
            self._release(e, now)
        return len(moved)

    def flush(self) -> None:
        """Expired backoffs become active; unschedulable pods older than the flush interval too."""
        now = self.clock()
        while self._backoff and self._backoff[0][0] <= now:
            until, seq, uid = heapq.heappop(self._backoff)
            e = self._pods.get(uid)
            if e is None or e.where != BACKOFF or e.early or e.seq != seq or e.backoff_until != until:
                continue
            self._push_active(e)
        while self._early and self._early[0][0] <= now:
            until, _neg, seq, uid = heapq.heappop(self._early)
            e = self._pods.get(uid)
            if e is not None and self._is_early(e, until, seq):
                self._push_active(e)
        if now - self._last_flush >= min(self.unschedulable_flush_s, 1.0) and self._unschedulable:
            self._last_flush = now
            stale = [e for e in self._unschedulable.values()
                     if now - e.unschedulable_since >= self.unschedulable_flush_s]
            for e in stale:
                del self._unschedulable[e.pod.uid]
                self._release(e, now)

    def next_ready_in(self) -> float | None:
        """Seconds until a backoff expires (None when nothing waits): how long the loop may sleep."""
        ends = [h[0][0] for h in (self._backoff, self._early) if h]
        return max(0.0, min(ends) - self.clock()) if ends else None

    def active_at_most(self) -> int:
        """An upper bound of the active pods (the heap, stale entries included), in O(1)."""
        return len(self._active)

    def has_active(self) -> bool:
        """Is an active pod waiting? Drops stale heap entries off the top on the way."""
        while self._active:
            _neg, seq, uid = self._active[0]
            e = self._pods.get(uid)
            if e is not None and e.where == ACTIVE and e.seq == seq:
                return True
            heapq.heappop(self._active)
        return False
