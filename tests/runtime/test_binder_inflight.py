"""The binder's pipelined path keeps at most `bindConcurrency` bindings in flight and sends the
rest in order as answers come back; every answer becomes one result."""

from __future__ import annotations


from cluster_scheduler.api.binder import BOUND, CONFLICT, RETRY, Binder
from cluster_scheduler.api.pipeline import PipelineError
from tests.plugins.builders import pod
from tests.runtime.harness import FakePoster


def test_at_most_concurrency_in_flight_the_rest_in_order():
    b = Binder(object(), concurrency=3, qps=1000, burst=1000)
    fake = FakePoster()
    b._raw = b._pipe = fake
    pods = [pod(f"p{i}", "100m") for i in range(7)]
    for p in pods:
        b.bind(p, "n0")
    assert [n for n, _ in fake.sent] == ["p0", "p1", "p2"] and b.in_flight == 7
    fake.sent[0][1].set_result((201, "Created", b""))
    fake.sent[1][1].set_result((409, "Conflict", b""))
    fake.sent[2][1].set_exception(PipelineError("connection reset"))
    assert [n for n, _ in fake.sent] == [f"p{i}" for i in range(6)]  # three freed slots, in order
    for _n, f in fake.sent[3:]:
        f.set_result((201, "Created", b""))
    assert [n for n, _ in fake.sent] == [f"p{i}" for i in range(7)]
    fake.sent[6][1].set_result((500, "Internal Server Error", b""))
    outcomes = {r.pod.name: r.outcome for r in b.drain()}
    assert outcomes == {"p0": BOUND, "p1": CONFLICT, "p2": RETRY, "p3": BOUND, "p4": BOUND, "p5": BOUND,
                        "p6": RETRY}
    assert b.in_flight == 0 and b._piped == 0
    b.close()
