"""PreBind in the coordinator (partitions in-process, a recording binder): the ledger promises a
volume to one claim across partitions, the volume bindings are written and the pod is bound only
once the PV controller has completed them; a refused write or a timeout sends the pod back with
its promise released."""

from __future__ import annotations

import time

from cluster_scheduler.api.informer import NODES, PODS
from cluster_scheduler.model.storage import CLAIMS, STORAGE_CLASSES, VOLUMES
from tests.plugins.builders import pv_dict, pvc_dict, storage_class
from tests.runtime.harness import feed, make, make_no_backoff, node, pod, run_all

BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"


def with_claim(name: str, claim: str) -> dict:
    p = pod(name, "1")
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return p


def cluster(partitions: int = 3, backoff: bool = False):
    c, binder = make(partitions) if backoff else make_no_backoff(partitions)
    feed(c, NODES, [node(f"n{i}", "4") for i in range(6)])
    feed(c, STORAGE_CLASSES, [storage_class("local")])
    feed(c, VOLUMES, [pv_dict("only", "10Gi")])  # no node affinity: usable on every node
    for name in ("a", "b"):
        claim = pvc_dict(name, namespace="ns")
        claim["metadata"]["resourceVersion"] = "5"
        feed(c, CLAIMS, [claim])
    return c, binder


def complete(c, claim: str, node_name: str) -> None:
    """What the PV controller does after our claimRef: the volume bound, the claim too."""
    pv = pv_dict("only", "10Gi", phase="Bound")
    pv["spec"]["claimRef"] = {"namespace": "ns", "name": claim, "uid": f"uid-ns-{claim}"}
    feed(c, VOLUMES, [pv], typ="MODIFIED")
    feed(c, CLAIMS, [pvc_dict(claim, namespace="ns", volume="only", bound=True)], typ="MODIFIED")


def test_one_volume_two_pods_across_partitions_then_bound_after_the_pv_controller():
    c, binder = cluster()
    feed(c, PODS, [with_claim("pa", "a"), with_claim("pb", "b")])
    run_all(c)
    assert len(binder.volume_writes) == 1  # one promise: the other pod lost the race for the volume
    name, node_name, writes = binder.volume_writes[0]
    (w,) = writes
    claim = "a" if name == "pa" else "b"
    assert w.path == "/api/v1/persistentvolumes/only"
    assert w.body["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "ns",
                                          "name": claim, "uid": f"uid-ns-{claim}", "resourceVersion": "5"}
    assert w.body["metadata"]["annotations"] == {"pv.kubernetes.io/bound-by-controller": "yes"}
    other = "pb" if name == "pa" else "pa"
    assert [(n, m.split(" preemption")[0]) for n, m in binder.unschedulable] == [
        (other, f"0/6 nodes are available: 6 {BIND_CONFLICT}.")]
    assert binder.bound == []  # PreBind waits for the binding to complete
    complete(c, claim, node_name)
    run_all(c)
    assert binder.bound == [(name, node_name)]


def test_a_refused_write_releases_the_promise_and_the_pod_tries_again():
    c, binder = cluster(partitions=2, backoff=True)
    binder.volume_error = "binding volumes: /api/v1/persistentvolumes/only: 409 Conflict"
    feed(c, PODS, [with_claim("pa", "a")])
    run_all(c)
    assert len(binder.volume_writes) == 1 and binder.bound == []
    assert not c.ledger.storage.taken and "u-pa" not in c.assumed  # promise and assumption gone
    binder.volume_error = ""
    time.sleep(1.05)  # its backoff
    c.queue.flush()
    run_all(c)
    assert len(binder.volume_writes) == 2  # tried again, and promised again
    complete(c, "a", binder.volume_writes[1][1])
    run_all(c)
    assert [n for n, _ in binder.bound] == ["pa"]


def test_bindings_that_never_complete_time_out():
    c, binder = cluster(partitions=1, backoff=True)
    c.cfg = type(c.cfg)(**{**c.cfg.__dict__, "volume_bind_timeout_s": 0.0})
    feed(c, PODS, [with_claim("pa", "a")])
    run_all(c)
    c.run_once()
    assert binder.bound == [] and "u-pa" not in c.assumed and not c.ledger.storage.taken
