"""VolumeRestrictions' disk conflicts through the Engine: a GCE PD, iSCSI target or RBD image is
mounted once per node unless every mount is read-only, an EBS volume once; a placement or removal
re-checks its node; preemption evicts the pod that holds the disk."""

from __future__ import annotations

import pytest

from cluster_scheduler.preemption import Preemption
from tests.plugins.builders import bound, engine, message, node, pod, where

REASON = "node(s) had no available disk"


def gce(pd: str, ro: bool = False) -> dict:
    return {"name": "d", "gcePersistentDisk": {"pdName": pd, "fsType": "ext4", "readOnly": ro}}


def ebs(vid: str, ro: bool = False) -> dict:
    return {"name": "d", "awsElasticBlockStore": {"volumeID": vid, "readOnly": ro}}


def iscsi(iqn: str, ro: bool = False) -> dict:
    return {"name": "d", "iscsi": {"targetPortal": "10.0.0.1:3260", "iqn": iqn, "lun": 0, "readOnly": ro}}


def rbd(monitors: list[str], image: str, pool: str | None = None, ro: bool = False) -> dict:
    src = {"monitors": monitors, "image": image, "readOnly": ro}
    if pool is not None:
        src["pool"] = pool
    return {"name": "d", "rbd": src}


@pytest.mark.parametrize("existing, incoming, conflict", [
    (gce("pd1"), gce("pd1"), True),
    (gce("pd1"), gce("pd2"), False),
    (gce("pd1", ro=True), gce("pd1", ro=True), False),  # read-only everywhere: shared
    (gce("pd1", ro=True), gce("pd1"), True),
    (gce("pd1"), gce("pd1", ro=True), True),
    (ebs("vol-1", ro=True), ebs("vol-1", ro=True), True),  # EBS: never twice
    (ebs("vol-1"), ebs("vol-2"), False),
    (iscsi("iqn.a"), iscsi("iqn.a"), True),
    (iscsi("iqn.a", ro=True), iscsi("iqn.a", ro=True), False),
    (iscsi("iqn.a"), iscsi("iqn.b"), False),
    (rbd(["m1", "m2"], "img"), rbd(["m2", "m3"], "img"), True),  # one monitor in common
    (rbd(["m1"], "img"), rbd(["m2"], "img"), False),
    (rbd(["m1"], "img"), rbd(["m1"], "img", pool="rbd"), True),  # the API's default pool
    (rbd(["m1"], "img", pool="a"), rbd(["m1"], "img", pool="b"), False),
    (rbd(["m1"], "img", ro=True), rbd(["m1"], "img", ro=True), False),
    (gce("x"), ebs("x"), False),  # different sources never conflict
])
def test_conflicts(existing, incoming, conflict):
    e = engine([node("a")], [bound("old", "a", cpu="100m", volumes=[existing])])
    p = pod(cpu="100m", volumes=[incoming])
    if conflict:
        assert message(e, p) == f"0/1 nodes are available: 1 {REASON}."
    else:
        assert where(e, p) == "a"


def test_a_placement_takes_the_disk_on_its_node_only_and_a_removal_frees_it():
    e = engine([node("a"), node("b")])
    first = pod("first", cpu="100m", volumes=[gce("pd1")])
    got = where(e, first)
    assert got in ("a", "b")
    other = "b" if got == "a" else "a"
    # the same class again (incremental: only the placed row is re-checked)
    assert where(e, pod("second", cpu="100m", volumes=[gce("pd1")])) == other
    assert message(e, pod("third", cpu="100m", volumes=[gce("pd1")])) == f"0/2 nodes are available: 2 {REASON}."
    e.remove_pod(first.uid)
    assert where(e, pod("fourth", cpu="100m", volumes=[gce("pd1")])) == got


def test_pods_that_differ_only_in_their_disk_are_different_classes():
    e = engine([node("a")], [bound("old", "a", cpu="100m", volumes=[gce("pd1")])])
    assert message(e, pod(cpu="100m", volumes=[gce("pd1")])) == f"0/1 nodes are available: 1 {REASON}."
    assert where(e, pod(cpu="100m", volumes=[gce("pd2")])) == "a"


def test_preemption_evicts_the_lower_priority_holder_of_the_disk():
    e = engine([node("a"), node("b")], [bound("low", "a", cpu="100m", priority=1, volumes=[gce("pd1")]),
                                        bound("hi", "b", cpu="100m", priority=100, volumes=[gce("pd1")])])
    preemptor = pod("p", cpu="100m", priority=10, volumes=[gce("pd1")])
    assert message(e, preemptor) == f"0/2 nodes are available: 2 {REASON}."
    out = Preemption(e).preempt(preemptor)
    assert out.candidate is not None and out.candidate.node == "a"
    assert [v.name for v in out.candidate.victims] == ["low"]
