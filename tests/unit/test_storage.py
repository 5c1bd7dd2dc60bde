"""The storage model: claims, volumes and classes parsed as upstream reads them, and the storage
index's promises (one volume to one claim, kept across a pod taken off and put back)."""

from __future__ import annotations

from cluster_scheduler.model.parse import parse_claim, parse_pod, parse_storage_class, parse_volume
from cluster_scheduler.model.storage import Choice, StorageIndex
from cluster_scheduler.model.types import ClaimRef
from tests.plugins.builders import pv_dict, pvc_dict, storage_class


def test_parse_claim_class_binding_and_owner():
    c = pvc_dict("data", "1.5Gi", storage_class="fast", volume="pv1", bound=True,
                 annotations={"volume.beta.kubernetes.io/storage-class": "beta"})
    c["metadata"]["ownerReferences"] = [{"uid": "x", "controller": False}, {"uid": "pod-uid", "controller": True}]
    claim = parse_claim(c)
    assert claim.storage_class == "beta"  # the beta annotation wins, as upstream
    assert claim.request == 1610612736 and claim.bound and claim.owner_uid == "pod-uid"
    assert not parse_claim(pvc_dict("data", volume="pv1")).bound  # named, binding not completed


def test_parse_volume_and_class():
    v = parse_volume(pv_dict("pv", "2Ti", host="n1", claim=("ns", "c"), labels={"a": "b"}))
    assert v.capacity == 2 * 2**40 and v.claim_ref == ClaimRef("ns", "c") and v.labels == (("a", "b"),)
    assert v.node_affinity[0].match_expressions[0].values == ("n1",)
    bad = pv_dict("pv", "big")
    assert parse_volume(bad).error.startswith('persistentvolume "pv" is malformed')
    sc = parse_storage_class(storage_class("s", mode=None, provisioner="csi.x", topologies=[{"zone": ["a"]}]))
    assert sc.binding_mode is None and sc.provisions and sc.allowed_topologies[0].match_expressions[0].key == "zone"
    assert not parse_storage_class(storage_class("l")).provisions


def test_pod_claims_in_order_with_ephemeral_names():
    p = parse_pod({"metadata": {"name": "web", "namespace": "ns"},
                   "spec": {"containers": [{"name": "c"}], "volumes": [
                       {"name": "cfg", "configMap": {"name": "x"}},
                       {"name": "data", "persistentVolumeClaim": {"claimName": "d1"}},
                       {"name": "tmp", "ephemeral": {"volumeClaimTemplate": {}}}]}})
    assert p.claims == ("d1", "web-tmp") and p.ephemeral == frozenset({"web-tmp"})
    bad = parse_pod({"metadata": {"name": "w"}, "spec": {"containers": [{"name": "c"}],
                                                        "volumes": [{"name": "d", "persistentVolumeClaim": {}}]}})
    assert bad.key is None and "PersistentVolumeClaim had no name" in bad.error


def test_promises_are_counted_and_restored():
    s = StorageIndex()
    s.set_volume(parse_volume(pv_dict("v", host="n1")))
    gen = s.gen
    s.assume("p1", [Choice(("d", "c"), "v", "n1")])
    s.assume("p2", [Choice(("d", "c"), "v", "n1")])  # a second pod sharing the claim
    assert s.gen > gen and s.taken == {"v": ("d", "c")}
    s.release("p1")
    assert s.taken == {"v": ("d", "c")}
    s.release("p2")
    assert not s.taken
    assert s.restore("p2") and s.taken == {"v": ("d", "c")}  # put back: the same volume
    s.release("p2")
    s.assume("p3", [Choice(("d", "other"), "v", "n1")])
    assert not s.restore("p1")  # taken by another claim meanwhile: not re-taken
    assert s.taken == {"v": ("d", "other")}


def test_resolve_skips_volumes_when_the_volume_filters_are_off():
    p = parse_pod({"metadata": {"name": "w", "namespace": "d"},
                   "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "c"}}]}})
    s = StorageIndex()
    assert s.resolve(p, binding=False, zone=False, restrictions=False, limits=False) is None
    assert s.resolve(p) == 'persistentvolumeclaim "c" not found'
    s.set_claim(parse_claim(pvc_dict("c", namespace="d")))
    s.set_class(parse_storage_class(storage_class("local")))
    assert s.resolve(p).delayed == (("d", "c"),)


def test_csi_node_limits_and_what_each_pod_is_counted_with():
    from cluster_scheduler.model.parse import parse_csi_node

    node, limits, drivers = parse_csi_node({"metadata": {"name": "n1"}, "spec": {"drivers": [
        {"name": "a.csi", "allocatable": {"count": 3}}, {"name": "b.csi"}, {"name": "c.csi", "allocatable": {"count": "x"}}]}})
    assert (node, limits, drivers) == ("n1", {"a.csi": 3}, {"a.csi", "b.csi", "c.csi"})
    s = StorageIndex()
    s.set_class(parse_storage_class(storage_class("csi", provisioner="a.csi")))
    s.set_volume(parse_volume(pv_dict("v", claim=("d", "bound"), storage_class="csi",
                                      csi={"driver": "a.csi", "volumeHandle": "h1"})))
    s.set_claim(parse_claim(pvc_dict("bound", namespace="d", volume="v", bound=True, storage_class="csi")))
    s.set_claim(parse_claim(pvc_dict("new", namespace="d", storage_class="csi")))
    p = parse_pod({"metadata": {"name": "w", "namespace": "d", "uid": "u"}, "spec": {"containers": [{"name": "c"}],
                   "volumes": [{"name": "x", "persistentVolumeClaim": {"claimName": "bound"}},
                               {"name": "y", "persistentVolumeClaim": {"claimName": "new"}}]}})
    assert s.csi_volumes(p) == [("a.csi", "h1"), ("a.csi", "unbound:d/new")]
    p.node_name = "n1"
    s.placed(p, 1)
    assert s.attached["n1"]["a.csi"] == {"h1": 1, "unbound:d/new": 1}
    s.set_claim(parse_claim(pvc_dict("new", namespace="d", volume="v2", bound=True, storage_class="csi")))
    s.placed(p, -1)  # taken off with what it was counted with, though its claim moved on
    assert s.attached["n1"]["a.csi"] == {}


def test_a_promise_the_cluster_overrode_is_dropped():
    s = StorageIndex()
    for n in ("x", "y"):
        s.set_volume(parse_volume(pv_dict(n)))
    s.assume("p", [Choice(("d", "c"), "x", "n1")])  # this replica chose x; the ledger chose y
    s.set_volume(parse_volume(pv_dict("y", claim=("d", "c"), phase="Bound")))
    assert s.taken == {} and s.taken_by[("d", "c")] == set()
    s.release("p")  # and its pod going later changes nothing
    assert s.taken == {}


def test_parse_csi_drivers_and_storage_capacities():
    from cluster_scheduler.model.parse import parse_csi_driver, parse_storage_capacity
    from tests.plugins.builders import csi_driver, storage_capacity

    d = parse_csi_driver(csi_driver("d", prevent_if_missing=True))
    assert d.storage_capacity and d.prevent_if_missing
    assert not parse_csi_driver({"metadata": {"name": "d"}, "spec": {"storageCapacity": "yes"}}).storage_capacity
    c = parse_storage_capacity(storage_capacity("c", "fast", {"matchLabels": {"zone": "a"}}, "10Gi", maximum="2Gi"))
    assert (c.namespace, c.storage_class, c.capacity, c.limit) == ("kube-system", "fast", 10 * 2**30, 2 * 2**30)
    assert c.node_topology.matches({"zone": "a"}) and not c.node_topology.matches({"zone": "b"})
    assert parse_storage_capacity(storage_capacity("c", "fast", {}, "1Gi")).node_topology.matches({})
    # unreadable parts are no room and no node, never an exception
    bad = parse_storage_capacity(storage_capacity("c", "fast", {"matchExpressions": [{"key": "z", "operator": "Gt"}]},
                                                  "lots"))
    assert bad.node_topology is None and bad.limit is None
    assert parse_storage_capacity("junk").limit is None


def test_capacities_are_indexed_per_class_and_move_the_generation():
    from tests.plugins.builders import storage_capacity

    st = StorageIndex()
    gen = st.gen
    st.apply("csistoragecapacities", storage_capacity("c", "fast", {}, "1Gi"))
    assert list(st.capacities["fast"]) == ["kube-system/c"] and st.gen > gen
    gen = st.gen
    st.apply("csistoragecapacities", storage_capacity("c", "slow", {}, "1Gi"))  # moved to another class
    assert "fast" not in st.capacities and list(st.capacities["slow"]) == ["kube-system/c"] and st.gen > gen
    st.delete("csistoragecapacities", "kube-system/c")
    assert not st.capacities and not st.capacity_class
