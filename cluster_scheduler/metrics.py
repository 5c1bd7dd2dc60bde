"""Prometheus metrics and the health/metrics HTTP endpoint.

Names follow the upstream kube-scheduler (pkg/scheduler/metrics) wherever upstream has the same
measurement, so existing dashboards and alerts work unchanged; what upstream has no counterpart
for (partitions, optimistic-commit conflicts, the binder pool) is prefixed `cluster_scheduler_`.

Each `SchedulerMetrics` owns its own CollectorRegistry: no process-global state, so tests and
several schedulers in one process do not see each other's numbers.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"
ATTEMPT_RESULTS = (SCHEDULED, UNSCHEDULABLE, ERROR)
QUEUES = ("active", "backoff", "unschedulable", "gated")


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """component-base's ExponentialBuckets."""
    return tuple(start * factor**i for i in range(count))


# Upstream buckets: attempt duration ExponentialBuckets(0.001, 2, 15), SLI ExponentialBuckets(0.01, 2, 20).
ATTEMPT_BUCKETS = exponential_buckets(0.001, 2, 15)
SLI_BUCKETS = exponential_buckets(0.01, 2, 20)
BATCH_BUCKETS = exponential_buckets(0.001, 2, 16)


class SchedulerMetrics:
    """All metrics of one scheduler instance, in a registry of its own."""

    def __init__(self, profile: str = "cluster-scheduler", registry: CollectorRegistry | None = None) -> None:
        self.profile = profile
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # --- upstream names
        self.schedule_attempts = Counter(
            "scheduler_schedule_attempts", "Number of attempts to schedule pods, by the result.",
            ["result", "profile"], registry=r)
        self.attempt_duration = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
            ["result", "profile"], buckets=ATTEMPT_BUCKETS, registry=r)
        self.pod_group_attempts = Counter(
            "scheduler_podgroup_schedule_attempts", "Number of attempts to schedule pod groups, by the result.",
            ["result", "profile"], registry=r)
        self.pod_group_attempt_duration = Histogram(
            "scheduler_podgroup_scheduling_attempt_duration_seconds",
            "Pod group scheduling attempt latency in seconds.",
            ["result", "profile"], buckets=ATTEMPT_BUCKETS, registry=r)
        self.preemption_attempts = Counter(
            "scheduler_preemption_attempts", "Total preemption attempts in the cluster till now", registry=r)
        self.preemption_victims = Histogram(
            "scheduler_preemption_victims",
            "Number of selected preemption victims for preemption initiated by a single pod",
            buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.preemption_evaluation = Histogram(
            "scheduler_preemption_evaluation_duration_seconds", "Preemption evaluation latency in seconds.",
            ["result"], buckets=ATTEMPT_BUCKETS, registry=r)
        self.pending_pods = Gauge(
            "scheduler_pending_pods", "Number of pending pods, by the queue type.", ["queue"], registry=r)
        self.sli_duration = Histogram(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue "
            "(its creation) until it is bound.",
            ["attempts"], buckets=SLI_BUCKETS, registry=r)
        # --- ours
        self.conflicts = Counter(
            "cluster_scheduler_conflicts", "Proposals rejected at commit time by the ledger "
            "(optimistic-concurrency losers, re-queued).", registry=r)
        self.partition_batch = Histogram(
            "cluster_scheduler_partition_batch_seconds", "Time a partition took to filter and score one batch.",
            ["partition"], buckets=BATCH_BUCKETS, registry=r)
        self.partitions = Gauge("cluster_scheduler_partitions", "Number of partition actors.", registry=r)
        self.binder_inflight = Gauge(
            "cluster_scheduler_binder_inflight", "Binding requests in flight.", registry=r)
        self.bindings = Counter(
            "cluster_scheduler_bindings", "Binding requests by outcome (bound, conflict, gone, retry).",
            ["result"], registry=r)
        for q in QUEUES:  # present from the start, as upstream's gauges are
            self.pending_pods.labels(queue=q).set(0)

    # ---- recording helpers (the runtime's vocabulary)
    def observe_attempt(self, result: str, seconds: float, count: int = 1, profile: str | None = None) -> None:
        """`count` pods of `profile` (default: the first) finished one attempt with `result`
        taking `seconds` each (a batch's pods share the batch's latency)."""
        if result not in ATTEMPT_RESULTS:
            raise ValueError(f"result must be one of {ATTEMPT_RESULTS}, got {result!r}")
        if count <= 0:
            return
        profile = profile or self.profile
        self.schedule_attempts.labels(result=result, profile=profile).inc(count)
        _observe_many(self.attempt_duration.labels(result=result, profile=profile), seconds, count)

    def observe_pod_group_attempt(self, result: str, seconds: float, profile: str | None = None) -> None:
        """One attempt at a whole gang (upstream's results: scheduled, unschedulable, error)."""
        if result not in ATTEMPT_RESULTS:
            raise ValueError(f"result must be one of {ATTEMPT_RESULTS}, got {result!r}")
        profile = profile or self.profile
        self.pod_group_attempts.labels(result=result, profile=profile).inc()
        self.pod_group_attempt_duration.labels(result=result, profile=profile).observe(seconds)

    def observe_preemption(self, victims: int | None, seconds: float) -> None:
        """One PostFilter run that could preempt: how many victims it chose (None: no candidate)."""
        self.preemption_attempts.inc()
        self.preemption_evaluation.labels(result="success" if victims else "unschedulable").observe(seconds)
        if victims:
            self.preemption_victims.observe(victims)

    def set_pending(self, active: int, backoff: int, unschedulable: int, gated: int = 0) -> None:
        for q, n in zip(QUEUES, (active, backoff, unschedulable, gated)):
            self.pending_pods.labels(queue=q).set(n)

    def observe_scheduled(self, seconds_since_creation: float, attempts: int = 1) -> None:
        """A pod is bound: its creation -> bound latency (the SLI)."""
        self.sli_duration.labels(attempts=str(max(1, int(attempts)))).observe(max(0.0, seconds_since_creation))

    def observe_partition_batch(self, partition: int | str, seconds: float) -> None:
        self.partition_batch.labels(partition=str(partition)).observe(seconds)

    def observe_binding(self, result: str) -> None:
        self.bindings.labels(result=result).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _observe_many(hist: Histogram, value: float, count: int) -> None:
    """`count` observations of one value in O(buckets), not O(count): a batch of thousands of pods
    shares one latency. Uses the client's per-bucket counters when present (prometheus_client
    keeps non-cumulative buckets, `_upper_bounds` and `_sum`); else falls back to a loop."""
    buckets, bounds, total = (getattr(hist, a, None) for a in ("_buckets", "_upper_bounds", "_sum"))
    if buckets is None or bounds is None or total is None or len(buckets) != len(bounds):
        for _ in range(count):
            hist.observe(value)
        return
    total.inc(value * count)
    for i, bound in enumerate(bounds):
        if value <= bound:
            buckets[i].inc(count)
            break


Readiness = Callable[[], "bool | tuple[bool, str]"]


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:  # no stderr line per scrape
        log.debug("metrics http: " + fmt, *args)

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/livez"):
            self._send(200, b"ok")
        elif path == "/readyz":
            try:
                res = self.server.readiness()
                ok, why = res if isinstance(res, tuple) else (bool(res), "")
            except Exception as exc:  # noqa: BLE001 - a failing check is "not ready", never a crashed endpoint
                ok, why = False, f"readiness check failed: {exc}"
            self._send(200 if ok else 503, b"ok" if ok else (why or "not ready").encode())
        else:
            self._send(404, b"not found")

    do_HEAD = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: SchedulerMetrics
    readiness: Readiness


class MetricsServer:
    """`/metrics` (Prometheus text), `/healthz` (the process is alive and serving) and `/readyz`
    (the runtime's `readiness()`: informer synced, and leading or a healthy standby), on
    127.0.0.1:`port` (0 picks a free port; `port` then tells which)."""

    def __init__(self, metrics: SchedulerMetrics, readiness: Readiness | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.metrics = metrics
        self._srv = _Server((host, port), _Handler)
        self._srv.metrics = metrics
        self._srv.readiness = readiness or (lambda: (False, "no readiness check installed"))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._srv.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._srv.server_address[0]}:{self.port}"

    def set_readiness(self, readiness: Readiness) -> None:
        self._srv.readiness = readiness

    def start(self) -> "MetricsServer":
        self._thread = threading.Thread(target=self._srv.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._srv.shutdown()
            self._thread.join(5)
            self._thread = None
        self._srv.server_close()

    def __enter__(self) -> "MetricsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
