"""Leader election over a `coordination.k8s.io/v1` Lease, with client-go's leaderelection semantics.

Several scheduler replicas may run; only the holder of the Lease schedules, the others stand by
with warm caches. The protocol is client-go's (k8s.io/client-go/tools/leaderelection):

- The Lease spec is the election record: holderIdentity, leaseDurationSeconds, acquireTime,
  renewTime, leaseTransitions.
- Expiry is judged on the *local* clock: a candidate notes when it last saw the record change
  (observedTime) and treats the lease as free once observedTime + leaseDurationSeconds has passed
  with no change. Clocks of different machines are never compared.
- Every write is an update carrying the resourceVersion that was read, so of two candidates
  racing for the same record exactly one wins; the other gets 409 Conflict (or AlreadyExists on
  create) and simply is not leader this round.
- The leader renews every retry_period; if it cannot renew for renew_deadline it stops leading.
  renew_deadline < lease_duration, so a leader that lost contact stops acting before anyone else
  may consider the lease expired.
- Releasing (on a clean stop) writes an empty holderIdentity, which candidates may take at once:
  failover without waiting out the lease.

Requests and responses are plain JSON dicts (not the client's models) so the MicroTime fields are
written in exactly the RFC 3339 form the apiserver parses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import orjson

from .rest import micro_time

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2  # client-go's JitterFactor: retries wait retry_period * [1, 1.2)


@dataclass(frozen=True)
class LeaderElectionRecord:
    """The Lease spec fields the election reads and writes."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> "LeaderElectionRecord":
        spec = lease.get("spec") or {}
        return cls(
            holder_identity=spec.get("holderIdentity") or "",
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            lease_transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.lease_transitions,
        }


class LeaderElector:
    """Campaigns for one Lease in a background thread and calls back on gaining/losing it.

    `on_started_leading()` and `on_stopped_leading()` run on the elector's thread and must not
    block (start the real work elsewhere): a blocked callback would stop the renewals. After losing
    the lease the elector campaigns again only with `rejoin=True`; by default it ends, as
    kube-scheduler exits on a lost lease (its caches may hold decisions taken as leader).
    """

    def __init__(
        self,
        api_client: Any,
        lease_name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        *,
        rejoin: bool = False,
        release_on_stop: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("identity must be non-empty")
        if not lease_duration > renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if not renew_deadline > JITTER_FACTOR * retry_period:
            raise ValueError(f"renew_deadline must be greater than retry_period*{JITTER_FACTOR}")
        if retry_period <= 0:
            raise ValueError("retry_period must be positive")
        from kubernetes import client

        self._api = client.CoordinationV1Api(api_client)
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = float(lease_duration)
        self.renew_deadline = float(renew_deadline)
        self.retry_period = float(retry_period)
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.rejoin = rejoin
        self.release_on_stop = release_on_stop
        # a write must not outlive the time the leader has to keep its lease
        self.request_timeout = max(0.5, min(self.renew_deadline / 2, 10.0))

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._thread: threading.Thread | None = None
        self._observed: LeaderElectionRecord | None = None
        self._observed_rv: str | None = None
        self._observed_at = 0.0  # monotonic time the record last changed, as seen here
        self._rng = random.Random()
        self.transitions_seen = 0  # how often this elector became leader

    # ------------------------------------------------------------------ state
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    @property
    def observed_holder(self) -> str:
        """Who holds the lease, as last read (empty: nobody)."""
        with self._lock:
            return self._observed.holder_identity if self._observed else ""

    # --------------------------------------------------------------- lifecycle
    def start(self) -> "LeaderElector":
        if self._thread is not None:
            raise RuntimeError("elector already started")
        self._thread = threading.Thread(target=self._run, name=f"leader-elector-{self.identity}", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool | None = None, timeout: float = 10.0) -> None:
        """Stop campaigning. With release (the default given at construction) a leader clears the
        holder so a standby takes over at once; release=False leaves the lease to expire, which is
        what a crash looks like to the others."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        was_leader = self._set_leading(False)
        if (self.release_on_stop if release is None else release) and (was_leader or self._holds_observed()):
            self.release()

    def _holds_observed(self) -> bool:
        with self._lock:
            return self._observed is not None and self._observed.holder_identity == self.identity

    def _set_leading(self, leading: bool) -> bool:
        """Flip the leading flag and fire the callback on a change; returns the old value."""
        with self._lock:
            was = self._leading.is_set()
            if was == leading:
                return was
            if leading:
                self._leading.set()
                self.transitions_seen += 1
            else:
                self._leading.clear()
        cb = self.on_started_leading if leading else self.on_stopped_leading
        if cb is not None:
            try:
                cb()
            except Exception:  # a callback's bug must not kill the elector
                log.exception("leader election callback failed")
        return was

    def _sleep(self, seconds: float) -> bool:
        """Wait, waking early on stop; True when stopping."""
        return self._stop.wait(seconds)

    def _jittered(self) -> float:
        return self.retry_period * (1 + self._rng.random() * (JITTER_FACTOR - 1))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                # acquire: retry until we hold the lease
                while not self._stop.is_set():
                    if self._try_quietly():
                        break
                    self._sleep(self._jittered())
                if self._stop.is_set():
                    return
                log.info("%s: became leader of %s/%s", self.identity, self.namespace, self.lease_name)
                self._set_leading(True)
                # renew: until a renewal has failed for renew_deadline
                last_renew = time.monotonic()
                while not self._stop.is_set():
                    if self._sleep(self.retry_period):
                        return
                    if self._try_quietly():
                        last_renew = time.monotonic()
                    elif time.monotonic() - last_renew >= self.renew_deadline or not self._holds_observed():
                        break
                log.warning("%s: lost leadership of %s/%s", self.identity, self.namespace, self.lease_name)
                self._set_leading(False)
                if not self.rejoin:
                    return
        finally:
            if not self._stop.is_set():
                self._set_leading(False)

    def _try_quietly(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except Exception as exc:  # noqa: BLE001 - network errors, 5xx: simply not leader this round
            log.debug("%s: lease attempt failed: %s", self.identity, exc)
            return False

    # ------------------------------------------------------------- one round
    def _read(self) -> dict[str, Any] | None:
        from kubernetes.client.rest import ApiException

        try:
            resp = self._api.read_namespaced_lease(
                self.lease_name, self.namespace, _preload_content=False, _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return orjson.loads(resp.data)
        finally:
            resp.release_conn()

    def _write(self, record: LeaderElectionRecord, resource_version: str | None) -> dict[str, Any] | None:
        """Create (no resource_version) or update the Lease; None on a lost race (409)."""
        from kubernetes.client.rest import ApiException

        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.lease_name, "namespace": self.namespace},
            "spec": record.to_spec(),
        }
        try:
            if resource_version is None:
                resp = self._api.create_namespaced_lease(
                    self.namespace, body, _preload_content=False, _request_timeout=self.request_timeout)
            else:
                body["metadata"]["resourceVersion"] = resource_version
                resp = self._api.replace_namespaced_lease(
                    self.lease_name, self.namespace, body, _preload_content=False,
                    _request_timeout=self.request_timeout)
        except ApiException as exc:
            if exc.status == 409:  # Conflict (stale resourceVersion) or AlreadyExists: someone else won
                return None
            raise
        try:
            return orjson.loads(resp.data)
        finally:
            resp.release_conn()

    def _observe(self, lease: dict[str, Any]) -> LeaderElectionRecord:
        record = LeaderElectionRecord.from_lease(lease)
        with self._lock:
            if record != self._observed:
                self._observed = record
                self._observed_at = time.monotonic()
            self._observed_rv = (lease.get("metadata") or {}).get("resourceVersion")
        return record

    def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew: True when we hold the lease afterwards."""
        now = micro_time()
        duration = max(1, int(round(self.lease_duration)))
        lease = self._read()
        if lease is None:
            mine = LeaderElectionRecord(self.identity, duration, now, now, 0)
            created = self._write(mine, None)
            if created is None:
                return False
            self._observe(created)
            return True
        old = self._observe(lease)
        with self._lock:
            observed_at, rv = self._observed_at, self._observed_rv
        if (old.holder_identity and old.holder_identity != self.identity
                and observed_at + old.lease_duration_seconds > time.monotonic()):
            return False  # held by someone else and not expired by our clock
        if old.holder_identity == self.identity:
            mine = LeaderElectionRecord(self.identity, duration, old.acquire_time or now, now, old.lease_transitions)
        else:
            mine = LeaderElectionRecord(self.identity, duration, now, now, old.lease_transitions + 1)
        updated = self._write(mine, rv)
        if updated is None:
            return False
        self._observe(updated)
        return True

    def release(self) -> bool:
        """Clear the holder if it is us (client-go's release: duration 1 s, transitions kept), so a
        standby need not wait out the lease. False when we did not hold it or lost a race."""
        try:
            lease = self._read()
            if lease is None:
                return False
            old = self._observe(lease)
            if old.holder_identity != self.identity:
                return False
            now = micro_time()
            rec = LeaderElectionRecord("", 1, now, now, old.lease_transitions)
            updated = self._write(rec, (lease.get("metadata") or {}).get("resourceVersion"))
        except Exception as exc:  # noqa: BLE001 - stepping down must not fail on a broken connection
            log.warning("%s: releasing the lease failed: %s", self.identity, exc)
            return False
        if updated is None:
            return False
        self._observe(updated)
        return True
