"""The coordinator-partition wire format: every encode has a decode that gives back what went in,
and the two ways a pod gets stripped (decoded from API JSON, or from a whole dict) agree byte for byte."""

from __future__ import annotations

from types import SimpleNamespace

import msgpack
import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster_scheduler import wire
from cluster_scheduler.wire import Op, PodObject

_POD_JSON = msgspec.json.Decoder(PodObject)

FULL_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1", "labels": {"app": "web"},
                 "creationTimestamp": "2026-12-05T10:00:00Z", "resourceVersion": "42",
                 "managedFields": [{"manager": "kubectl"}], "annotations": {"a": "b"}},
    "spec": {"schedulerName": "cluster-scheduler", "nodeName": "n1",
             "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.0.0.1"},
}

ODD_PODS = [
    FULL_POD,
    {},  # nothing at all
    {"metadata": {"name": "x"}},  # no spec, no status: phase defaults to Pending
    {"metadata": {"name": "x"}, "spec": {}, "status": {}},
    {"metadata": {"name": "x", "deletionTimestamp": "2026-12-05T10:00:00Z"}, "spec": None, "status": {"phase": None}},
    {"metadata": {"name": "x", "labels": None}, "status": {"phase": "Succeeded"}},
]


@pytest.mark.parametrize("obj", ODD_PODS)
def test_strip_pod_and_decoded_pod_object_give_identical_bytes(obj):
    from_dict = wire.pack(wire.strip_pod(obj))
    from_json = wire.pack(_POD_JSON.decode(orjson.dumps(obj)).stripped())
    assert from_dict == from_json


def test_stripped_pod_keeps_only_what_the_engines_read():
    s = wire.strip_pod(FULL_POD)
    assert s == {"metadata": {"name": "web-1", "namespace": "default", "uid": "u-1", "labels": {"app": "web"},
                              "creationTimestamp": "2026-12-05T10:00:00Z"},
                 "spec": FULL_POD["spec"], "status": {"phase": "Running"}}
    later = dict(FULL_POD, metadata=dict(FULL_POD["metadata"], resourceVersion="43"),
                 status=dict(FULL_POD["status"], podIP="10.0.0.2"))
    assert wire.pack(wire.strip_pod(later)) == wire.pack(s)  # an irrelevant update packs the same


labels = st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
maybe = st.one_of(st.none(), st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(meta=st.fixed_dictionaries({}, optional={"name": maybe, "namespace": maybe, "uid": maybe,
                                                "labels": st.one_of(st.none(), labels),
                                                "creationTimestamp": maybe, "deletionTimestamp": maybe,
                                                "resourceVersion": maybe, "generation": st.integers(0, 2**62)}),
       spec=st.one_of(st.none(), st.just({}), st.fixed_dictionaries({"nodeName": st.text(max_size=4)})),
       status=st.one_of(st.just({}), st.fixed_dictionaries({}, optional={"phase": maybe, "podIP": maybe})))
def test_strip_pod_twins_agree_on_random_pods(meta, spec, status):
    obj = {"metadata": meta, "spec": spec, "status": status}
    assert wire.pack(wire.strip_pod(obj)) == wire.pack(_POD_JSON.decode(orjson.dumps(obj)).stripped())


def test_pack_unpack_round_trip():
    s = wire.strip_pod(FULL_POD)
    assert wire.unpack(wire.pack(s)) == s
    # msgspec's encoder writes the same bytes as msgpack's (either end may use either)
    assert wire.pack(s) == msgpack.packb(s, use_bin_type=True)


def test_every_delta_op_round_trips():
    pod_b, node_b, ns_b = wire.pack(wire.strip_pod(FULL_POD)), wire.pack({"metadata": {"name": "n1"}}), b"ns"
    ops = [wire.node(node_b), wire.node_gone("n1"), wire.namespace(ns_b), wire.pod(pod_b),
           wire.bound_class(pod_b, [["u-1", "web-1", "n1"], ["u-2", "web-2", "n2"]]), wire.pod_gone("u-1"),
           wire.assume(pod_b, "n1"), wire.assume(pod_b, "n2", waiting=True), wire.settle("u-3"),
           wire.storage("persistentvolumeclaims", b"claim"),
           wire.storage_gone("persistentvolumeclaims", "ns/claim")]
    assert {d[0] for d in ops} == set(Op)  # every op has a constructor, and each is used here
    back = wire.decode_deltas(wire.encode_deltas(ops))
    assert back == ops
    assert all(type(d[0]) is Op for d in back)


def test_unknown_delta_op_is_refused():
    with pytest.raises(ValueError):
        wire.decode_deltas(msgpack.packb([[99, b"x"]]))
    with pytest.raises(ValueError):
        wire.decode_deltas(msgpack.packb([["N", b"x"]]))  # the old letter ops are not accepted


def test_batch_round_trip():
    pods = [wire.pack(wire.strip_pod(p)) for p in ODD_PODS]
    assert wire.decode_batch(wire.encode_batch(pods)) == pods
    assert wire.decode_batch(wire.encode_batch([])) == []


def test_proposals_round_trip():
    results = [SimpleNamespace(uid="a", candidates=[("n1", 90), ("n2", 80)], reasons=None, num_nodes=3, error=None,
                               prefilter=None),
               SimpleNamespace(uid="b", candidates=[], reasons={"Insufficient cpu": 3}, num_nodes=3, error=None,
                               prefilter=None),
               SimpleNamespace(uid="c", candidates=[], reasons={}, num_nodes=3, error="invalid pod spec",
                               prefilter=None),
               SimpleNamespace(uid="d", candidates=[], reasons={}, num_nodes=3, error=None,
                               prefilter='persistentvolumeclaim "x" not found')]
    seconds, back = wire.decode_proposals(wire.encode_proposals(results, 0.25))
    assert seconds == 0.25
    assert back == [wire.Proposal("a", [("n1", 90), ("n2", 80)], {}, 3, None),
                    wire.Proposal("b", [], {"Insufficient cpu": 3}, 3, None),
                    wire.Proposal("c", [], {}, 3, "invalid pod spec"),
                    wire.Proposal("d", [], {}, 3, None, 'persistentvolumeclaim "x" not found')]
    assert back[0].candidates[0] == ("n1", 90) and back[1].reasons["Insufficient cpu"] == 3


def test_stripped_storage_objects_keep_what_the_volume_filters_read():
    from cluster_scheduler.model.parse import parse_claim, parse_volume
    from tests.plugins.builders import pv_dict, pvc_dict

    pv = pv_dict("pv", host="n1", claim=("ns", "c"), labels={"topology.kubernetes.io/zone": "a"})
    pv["metadata"].update(resourceVersion="7", managedFields=[{"manager": "x"}],
                          annotations={"pv.kubernetes.io/provisioned-by": "x"})
    s = wire.strip_storage("persistentvolumes", pv)
    assert "managedFields" not in s["metadata"] and "annotations" not in s["metadata"]
    assert parse_volume(s) == parse_volume(pv)
    claim = pvc_dict("c", namespace="ns", volume="pv", bound=True, annotations={"other": "x"})
    claim["metadata"]["ownerReferences"] = [{"uid": "p", "controller": True, "kind": "Pod", "name": "w"}]
    s = wire.strip_storage("persistentvolumeclaims", claim)
    assert s["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "yes"}
    assert parse_claim(s) == parse_claim(claim)


def test_stripped_csi_drivers_and_storage_capacities_parse_alike():
    from cluster_scheduler.model.parse import parse_csi_driver, parse_storage_capacity
    from tests.plugins.builders import csi_driver, storage_capacity

    d = csi_driver("d.example.com", prevent_if_missing=True)
    d["spec"].update(attachRequired=True, podInfoOnMount=False)
    s = wire.strip_storage("csidrivers", d)
    assert s["spec"] == {"storageCapacity": True, "preventPodSchedulingIfMissing": True}
    assert parse_csi_driver(s) == parse_csi_driver(d)
    c = storage_capacity("c", "fast", {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                         "10Gi", maximum="2Gi")
    c["metadata"]["ownerReferences"] = [{"uid": "x", "controller": False, "kind": "Deployment", "name": "d"}]
    s = wire.strip_storage("csistoragecapacities", c)
    assert parse_storage_capacity(s) == parse_storage_capacity(c)
    assert "ownerReferences" not in s["metadata"]
    from cluster_scheduler.model.parse import parse_volume_attachment
    from tests.plugins.builders import attachment

    va = attachment("va", "n1", "pv", "d.example.com")
    va["spec"]["source"]["inlineVolumeSpec"] = {"csi": {"driver": "x"}}
    va["status"] = {"attached": True}
    s = wire.strip_storage("volumeattachments", va)
    assert parse_volume_attachment(s) == parse_volume_attachment(va) and "status" not in s


def test_preemption_request_round_trip():
    data = wire.encode_preemption_request([b"pod"], [{"metadata": {"name": "b"}}], {"u1"}, {"u2": 5},
                                          {("ns", "batch"): 1, ("ns", "online"): 1000}, {("ns", "batch")})
    req = wire.decode_preemption_request(data)
    assert req == ([b"pod"], [{"metadata": {"name": "b"}}], ["u1"], {"u2": 5},
                   {("ns", "batch"): 1, ("ns", "online"): 1000}, {("ns", "batch")})
