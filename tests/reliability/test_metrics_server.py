"""SchedulerMetrics + MetricsServer: scraped over real HTTP and parsed as Prometheus text."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster_scheduler.metrics import MetricsServer, SchedulerMetrics


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served():
    m = SchedulerMetrics(profile="cs")
    state = {"ready": (False, "informer not synced")}
    srv = MetricsServer(m, readiness=lambda: state["ready"], port=0).start()
    yield m, srv, state
    srv.stop()


def test_scrape_names_labels_values(served):
    m, srv, _ = served
    m.observe_attempt("scheduled", 0.003, count=5)
    m.observe_attempt("unschedulable", 0.5)
    m.observe_attempt("error", 0.0001)
    m.set_pending(active=7, backoff=2, unschedulable=3)
    m.observe_scheduled(1.7)
    m.observe_scheduled(0.02, attempts=3)
    m.conflicts.inc(4)
    m.observe_partition_batch(0, 0.01)
    m.observe_partition_batch(1, 0.02)
    m.partitions.set(2)
    m.binder_inflight.set(9)
    for r in ("bound", "bound", "conflict", "retry"):
        m.observe_binding(r)
    code, ctype, text = get(srv.url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    s = samples(text)
    P = ("profile", "cs")
    assert s[("scheduler_schedule_attempts_total", (P, ("result", "scheduled")))] == 5
    assert s[("scheduler_schedule_attempts_total", (P, ("result", "unschedulable")))] == 1
    assert s[("scheduler_schedule_attempts_total", (P, ("result", "error")))] == 1
    h = "scheduler_scheduling_attempt_duration_seconds"
    assert s[(h + "_count", (P, ("result", "scheduled")))] == 5
    assert s[(h + "_sum", (P, ("result", "scheduled")))] == pytest.approx(0.015)
    # 0.003 s lands in the 0.004 bucket (upstream's ExponentialBuckets(0.001, 2, 15)) but not 0.002
    assert s[(h + "_bucket", (("le", "0.002"), P, ("result", "scheduled")))] == 0
    assert s[(h + "_bucket", (("le", "0.004"), P, ("result", "scheduled")))] == 5
    assert s[(h + "_bucket", (("le", "16.384"), P, ("result", "scheduled")))] == 5
    assert s[("scheduler_pending_pods", (("queue", "active"),))] == 7
    assert s[("scheduler_pending_pods", (("queue", "backoff"),))] == 2
    assert s[("scheduler_pending_pods", (("queue", "unschedulable"),))] == 3
    assert s[("scheduler_pending_pods", (("queue", "gated"),))] == 0
    sli = "scheduler_pod_scheduling_sli_duration_seconds"
    assert s[(sli + "_count", (("attempts", "1"),))] == 1
    assert s[(sli + "_sum", (("attempts", "1"),))] == pytest.approx(1.7)
    assert s[(sli + "_count", (("attempts", "3"),))] == 1
    assert s[("cluster_scheduler_conflicts_total", ())] == 4
    assert s[("cluster_scheduler_partition_batch_seconds_count", (("partition", "0"),))] == 1
    assert s[("cluster_scheduler_partition_batch_seconds_sum", (("partition", "1"),))] == pytest.approx(0.02)
    assert s[("cluster_scheduler_partitions", ())] == 2
    assert s[("cluster_scheduler_binder_inflight", ())] == 9
    assert s[("cluster_scheduler_bindings_total", (("result", "bound"),))] == 2
    assert s[("cluster_scheduler_bindings_total", (("result", "conflict"),))] == 1


def test_batched_attempts_equal_single_observations():
    a, b = SchedulerMetrics(), SchedulerMetrics()
    for v, n in ((0.0005, 3), (0.003, 1000), (7.0, 2), (100.0, 4)):  # 100 s: only the +Inf bucket
        a.observe_attempt("scheduled", v, count=n)
        for _ in range(n):
            b.attempt_duration.labels(result="scheduled", profile=b.profile).observe(v)
        b.schedule_attempts.labels(result="scheduled", profile=b.profile).inc(n)
    sa, sb = samples(a.exposition().decode()), samples(b.exposition().decode())
    keys = [k for k in sb if k[0].startswith("scheduler_scheduling_attempt_duration_seconds")]
    assert len(keys) > 10
    for k in keys:
        assert sa[k] == pytest.approx(sb[k]), k
    assert sa[("scheduler_schedule_attempts_total", (("profile", "cluster-scheduler"), ("result", "scheduled")))] == 1009


def test_registries_are_independent():
    a, b = SchedulerMetrics(), SchedulerMetrics()
    a.conflicts.inc()
    assert b"cluster_scheduler_conflicts_total 0.0" in b.exposition()
    assert b"cluster_scheduler_conflicts_total 1.0" in a.exposition()


def test_bad_result_label_is_refused():
    with pytest.raises(ValueError):
        SchedulerMetrics().observe_attempt("bound", 0.1)


def test_healthz_and_readyz(served):
    _, srv, state = served
    assert get(srv.url + "/healthz")[0] == 200
    code, _, body = get(srv.url + "/readyz")
    assert code == 503 and "informer not synced" in body
    state["ready"] = (True, "")
    assert get(srv.url + "/readyz")[:1] == (200,)
    state["ready"] = True
    assert get(srv.url + "/readyz")[0] == 200
    assert get(srv.url + "/nope")[0] == 404


def test_readyz_check_that_raises_is_not_ready(served):
    _, srv, _ = served

    def boom():
        raise RuntimeError("informer crashed")

    srv.set_readiness(boom)
    code, _, body = get(srv.url + "/readyz")
    assert code == 503 and "informer crashed" in body
    assert get(srv.url + "/healthz")[0] == 200


def test_concurrent_scrapes_while_recording(served):
    m, srv, _ = served
    stop = threading.Event()

    def record():
        while not stop.is_set():
            m.observe_attempt("scheduled", 0.001)

    t = threading.Thread(target=record)
    t.start()
    try:
        last = -1.0
        for _ in range(20):
            code, _, text = get(srv.url + "/metrics")
            assert code == 200
            v = samples(text)[("scheduler_schedule_attempts_total", (("profile", "cs"), ("result", "scheduled")))]
            assert v >= last
            last = v
    finally:
        stop.set()
        t.join()
    assert last > 0


def test_port_zero_is_ephemeral_and_stop_frees_it():
    m = SchedulerMetrics()
    a = MetricsServer(m).start()
    b = MetricsServer(m).start()
    try:
        assert a.port != b.port and a.port > 0
    finally:
        a.stop(), b.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(a.url + "/healthz", timeout=2)
