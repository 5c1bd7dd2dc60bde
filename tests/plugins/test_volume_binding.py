"""VolumeBinding through the Engine: PreFilter reasons, bound claims' node affinity, and unbound
WaitForFirstConsumer claims (static binding, smallest fit, promises that keep one volume to one
claim, provisioning with allowedTopologies, a selected node), plus its capacity score."""

from __future__ import annotations

import pytest

from cluster_scheduler.config import Profile
from cluster_scheduler.model.parse import parse_claim
from tests.plugins.builders import (add_storage, attachment, claims, csi_driver, engine, message, node, place, pod, pv_dict,
                                    pvc_dict, scores, storage_capacity, storage_class, where)

NODE_CONFLICT = "node(s) didn't match PersistentVolume's node affinity"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"


def cluster(n: int = 4, **kw):
    return engine([node(f"n{i}", labels={"zone": "a" if i < n // 2 else "b"}) for i in range(n)], **kw)


def wffc(e, *objs):
    return add_storage(e, storage_class("local"), *objs)


def test_a_pod_without_claims_is_untouched():
    e = wffc(cluster())
    assert where(e, pod(cpu="1")) == "n0"


def test_bound_claim_goes_where_its_volume_is():
    e = add_storage(cluster(), pv_dict("pv", host="n2", claim=("default", "data"), phase="Bound"),
                    pvc_dict("data", volume="pv", bound=True))
    p = pod(cpu="1", **claims("data"))
    assert where(e, p) == "n2"
    e2 = add_storage(cluster(), pv_dict("pv", host="gone", claim=("default", "data"), phase="Bound"),
                     pvc_dict("data", volume="pv", bound=True))
    assert message(e2, pod(cpu="1", **claims("data"))) == f"0/4 nodes are available: 4 {NODE_CONFLICT}."


@pytest.mark.parametrize("objs, text", [
    ((), 'persistentvolumeclaim "data" not found'),
    ((pvc_dict("data", metadata_deleting=True),), None),
    ((pvc_dict("data", storage_class="slow"), storage_class("slow", mode="Immediate")),
     "pod has unbound immediate PersistentVolumeClaims"),
    ((pvc_dict("data", storage_class=None),), "pod has unbound immediate PersistentVolumeClaims"),
    ((pvc_dict("data", storage_class="nomode"), storage_class("nomode", mode=None)),
     'VolumeBindingMode not set for StorageClass "nomode"'),
    # a volume named but the binding not completed: still an unbound immediate claim, as upstream
    ((pvc_dict("data", volume="pv"), pv_dict("pv", host="n1")), "pod has unbound immediate PersistentVolumeClaims"),
    ((pvc_dict("data", volume="ghost", bound=True),), 'persistentvolume "ghost" not found'),
])
def test_prefilter_reasons(objs, text):
    objs = list(objs)
    if objs and objs[0]["metadata"].get("name") == "data" and objs[0]["spec"].pop("metadata_deleting", False):
        objs[0]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        text = 'persistentvolumeclaim "data" is being deleted'
    e = add_storage(cluster(), *objs)
    assert message(e, pod(cpu="1", **claims("data"))) == f"0/4 nodes are available: {text}."


def test_lost_claim_and_ephemeral_claims():
    lost = pvc_dict("data", volume="pv", bound=True)
    lost["status"] = {"phase": "Lost"}
    e = add_storage(cluster(), lost)
    assert 'bound to non-existent persistentvolume "pv"' in message(e, pod(cpu="1", **claims("data")))
    eph = {"volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}
    e = wffc(cluster(), pv_dict("pv", host="n3"))
    assert ('waiting for ephemeral volume controller to create the persistentvolumeclaim "web-scratch"'
            in message(e, pod("web", cpu="1", **eph)))
    foreign = pvc_dict("web-scratch")  # not made for this pod: no controller reference to it
    add_storage(e, foreign)
    assert "PVC default/web-scratch was not created for pod default/web (pod is not owner)" in message(
        e, pod("web", cpu="1", **eph))
    owned = pvc_dict("web-scratch")
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "web",
                                             "uid": "default/web", "controller": True}]
    add_storage(e, owned)
    assert where(e, pod("web", cpu="1", **eph)) == "n3"


def test_volume_zone_disabled_reports_the_missing_volume_on_every_node():
    prof = Profile(disabled_filters=frozenset({"VolumeZone"}))
    e = add_storage(cluster(profile=prof), pvc_dict("data", volume="ghost", bound=True))
    assert message(e, pod(cpu="1", **claims("data"))) == (
        "0/4 nodes are available: 4 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s).")


def test_unbound_claim_needs_a_free_matching_volume_on_the_node():
    e = wffc(cluster(), pv_dict("small", "4Gi", host="n0"), pv_dict("ok", "8Gi", host="n1"),
             pv_dict("rwx", "8Gi", host="n2", modes=("ReadWriteMany",)),
             pv_dict("other-class", "8Gi", host="n3", storage_class="fast"),
             pvc_dict("data", "5Gi"))
    p = pod(cpu="1", **claims("data"))
    assert set(scores(e, p)) == {"n1"}
    assert message(e, pod(cpu="1", **claims("data"), nodeSelector={"zone": "b"})) == (
        f"0/4 nodes are available: 2 {BIND_CONFLICT}, 2 node(s) didn't match Pod's node affinity/selector.")


def test_claimed_volumes_and_selectors_and_modes():
    e = wffc(cluster(),
             pv_dict("taken", host="n0", claim=("default", "someone-else")),
             pv_dict("block", host="n1", volumeMode="Block"),
             pv_dict("labelled", host="n2", labels={"tier": "gold"}),
             pv_dict("plain", host="n3"),
             pvc_dict("gold", selector={"matchLabels": {"tier": "gold"}}),
             pvc_dict("blockc", volumeMode="Block"))
    assert set(scores(e, pod(cpu="1", **claims("gold")))) == {"n2"}
    assert set(scores(e, pod(cpu="1", **claims("blockc")))) == {"n1"}


def test_pre_bound_volume_is_the_only_candidate():
    e = wffc(cluster(), pv_dict("mine", host="n3", claim=("default", "data")), pv_dict("free", host="n0"),
             pvc_dict("data"))
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"n3"}


def test_one_volume_is_promised_to_one_claim():
    e = wffc(cluster(), pv_dict("only", host="n1"), pvc_dict("a"), pvc_dict("b"))
    pa, pb = pod("pa", cpu="1", **claims("a")), pod("pb", cpu="1", **claims("b"))
    r = e.schedule([pa, pb], k=1, commit=True)
    assert r[0].candidates[0][0] == "n1"
    assert not r[1].candidates and BIND_CONFLICT in r[1].message()
    assert [c.volume for c in e.storage.chosen["default/pa"]] == ["only"]
    e.remove_pod("default/pa")  # its promise goes with it
    assert where(e, pod("pb", cpu="1", **claims("b"))) == "n1"


def test_proposals_do_not_keep_promises():
    e = wffc(cluster(), pv_dict("only", host="n1"), pvc_dict("a"), pvc_dict("b"))
    r = e.schedule([pod("pa", cpu="1", **claims("a"))], k=1, commit=False)
    assert r[0].candidates[0][0] == "n1"
    assert not e.storage.taken
    assert where(e, pod("pb", cpu="1", **claims("b"))) == "n1"


def test_shared_claim_reuses_its_promised_volume():
    e = wffc(cluster(), pv_dict("v", host="n2", modes=("ReadWriteMany",)),
             pvc_dict("shared", modes=("ReadWriteMany",)))
    assert where(e, pod("p1", cpu="1", **claims("shared"))) == "n2"
    assert where(e, pod("p2", cpu="1", **claims("shared"))) == "n2"
    e.remove_pod("default/p1")
    assert e.storage.taken == {"v": ("default", "shared")}  # p2 still holds it


def test_smallest_fit_is_bound_and_roomier_nodes_score_higher():
    e = wffc(cluster(), pv_dict("big", "100Gi", host="n0"), pv_dict("small", "10Gi", host="n0"),
             pv_dict("mid", "20Gi", host="n1"), pvc_dict("data", "5Gi"))
    p = pod("p", cpu="1", **claims("data"))
    only_volumes = Profile(score_weights=(("VolumeBinding", 1),))
    e.profiles[only_volumes.scheduler_name] = only_volumes
    e.profile = only_volumes
    s = scores(e, p)
    # n0 binds its smallest fitting volume (10Gi: 50% used -> 50), n1 its 20Gi (25% -> 75)
    assert s == {"n0": 50, "n1": 75}
    place(e, p)
    assert p.node_name == "n1" and e.storage.chosen["default/p"][0].volume == "mid"


def test_provisioning_with_allowed_topologies_and_a_selected_node():
    e = add_storage(cluster(), storage_class("csi", provisioner="disk.csi.example.com", topologies=[{"zone": ["b"]}]),
                    pvc_dict("data", storage_class="csi"))
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"n2", "n3"}
    sel = pvc_dict("data", storage_class="csi", annotations={"volume.kubernetes.io/selected-node": "n3"})
    add_storage(e, sel)
    assert set(scores(e, pod(cpu="1", **claims("data")))) == {"n3"}
    p = pod("p", cpu="1", **claims("data"))
    place(e, p)
    ch = e.storage.chosen["default/p"][0]
    assert (ch.volume, ch.node) == ("", "n3")  # provisioned there, no volume taken


def test_competing_claims_of_one_pod_are_matched_exactly():
    # two claims, one volume per node except n1 with two: only n1 binds both
    e = wffc(cluster(), pv_dict("a0", host="n0"), pv_dict("a1", host="n1"), pv_dict("b1", host="n1"),
             pv_dict("a2", host="n2"), pvc_dict("x"), pvc_dict("y", "6Gi"))
    p = pod("p", cpu="1", **claims("x", "y"))
    assert set(scores(e, p)) == {"n1"}
    place(e, p)
    assert sorted(c.volume for c in e.storage.chosen["default/p"]) == ["a1", "b1"]


def test_claim_changes_are_seen_by_the_next_placement():
    e = wffc(cluster(), pvc_dict("data"))
    p = pod("p", cpu="1", **claims("data"))
    assert BIND_CONFLICT in message(e, p)
    add_storage(e, pv_dict("late", host="n2"))  # a volume appears
    assert where(e, p) == "n2"


def test_preemption_never_evicts_for_a_volume():
    from cluster_scheduler.preemption import Preemption
    from tests.plugins.builders import bound

    e = wffc(cluster(), pv_dict("v", host="n1"), pvc_dict("data"))
    e.add_pod(bound("low", "n0", cpu="4", priority=0))
    p = pod("hi", cpu="1", priority=100, **claims("data"))
    e.add_pod(bound("low2", "n1", cpu="4", priority=0))
    out = Preemption(e).preempt(p)
    assert out.candidate is not None and out.candidate.node == "n1"  # room on the volume's node
    lost = pod("hi2", cpu="1", priority=100, **claims("nope"))
    out = Preemption(e).preempt(lost)
    assert out.candidate is None and "4 Preemption is not helpful for scheduling" in out.message


def test_malformed_claim_is_a_reason_not_a_crash():
    bad = pvc_dict("data")
    bad["spec"]["resources"]["requests"]["storage"] = "lots"
    assert parse_claim(bad).error
    e = wffc(cluster(), bad)
    assert 'persistentvolumeclaim "data" is malformed' in message(e, pod(cpu="1", **claims("data")))


RWOP = ("node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use "
        "by another pod")


def test_read_write_once_pod_claim_in_use_anywhere_fails_every_node():
    e = add_storage(cluster(), pv_dict("pv", modes=("ReadWriteOncePod",), claim=("default", "solo"), phase="Bound"),
                    pvc_dict("solo", volume="pv", bound=True, modes=("ReadWriteOncePod",)),
                    pv_dict("pv2", modes=("ReadWriteMany",), claim=("default", "many"), phase="Bound"),
                    pvc_dict("many", volume="pv2", bound=True, modes=("ReadWriteMany",)))
    first = pod("first", cpu="1", **claims("solo"))
    assert where(e, first) is not None
    assert message(e, pod("second", cpu="1", **claims("solo"))) == f"0/4 nodes are available: 4 {RWOP}."
    assert where(e, pod("m1", cpu="1", **claims("many"))) and where(e, pod("m2", cpu="1", **claims("many")))
    e.remove_pod("default/first")  # the claim is free again
    assert where(e, pod("second", cpu="1", **claims("solo"))) is not None
    off = Profile(disabled_filters=frozenset({"VolumeRestrictions"}))
    e2 = add_storage(cluster(profile=off), pvc_dict("solo", volume="pv", bound=True, modes=("ReadWriteOncePod",)),
                     pv_dict("pv", modes=("ReadWriteOncePod",), claim=("default", "solo"), phase="Bound"))
    assert where(e2, pod("a", cpu="1", **claims("solo"))) and where(e2, pod("b", cpu="1", **claims("solo")))


def test_preemption_evicts_the_holder_of_a_read_write_once_pod_claim():
    """VolumeRestrictions' conflict is Unschedulable upstream: preemption may cure it, on the node
    the claim's holder runs on, by evicting it (never anyone elsewhere)."""
    from cluster_scheduler.preemption import Preemption
    from tests.plugins.builders import bound

    e = add_storage(cluster(), pv_dict("pv", modes=("ReadWriteOncePod",), claim=("default", "solo"), phase="Bound"),
                    pvc_dict("solo", volume="pv", bound=True, modes=("ReadWriteOncePod",)))
    for i in range(4):  # a lower-priority pod everywhere: evicting one elsewhere would not help
        e.add_pod(bound(f"low{i}", f"n{i}", cpu="1", priority=0))
    holder = bound("holder", "n2", cpu="1", priority=5, **claims("solo"))
    e.add_pod(holder)
    hi = pod("hi", cpu="1", priority=100, **claims("solo"))
    assert message(e, hi) == f"0/4 nodes are available: 4 {RWOP}."
    out = Preemption(e).preempt(hi)
    assert out.candidate is not None and out.candidate.node == "n2"
    assert [v.name for v in out.candidate.victims] == ["holder"]  # low2 reprieved: it was in no one's way
    # a holder of higher priority cannot be evicted: no node can be cured
    mid = pod("mid", cpu="1", priority=3, **claims("solo"))
    out = Preemption(e).preempt(mid)
    assert out.candidate is None and f"4 {RWOP}" in out.message, out.message


def csi_node(name: str, **limits: int) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": name},
            "spec": {"drivers": [{"name": d.replace("_", "."), "nodeID": name, "allocatable": {"count": n}}
                                 for d, n in limits.items()]}}


def bound_csi_claims(n: int, driver: str = "disk.csi", storage: str = "csi") -> list[dict]:
    """Claims c0..c<n-1>, each bound to its own volume v<i> of `driver` (handle h<i>)."""
    out = []
    for i in range(n):
        out.append(pv_dict(f"v{i}", claim=("default", f"c{i}"), phase="Bound", storage_class=storage,
                           csi={"driver": driver, "volumeHandle": f"h{i}"}))
        out.append(pvc_dict(f"c{i}", volume=f"v{i}", bound=True, storage_class=storage))
    return out


def test_csi_attach_limits_count_distinct_volumes_per_driver():
    from cluster_scheduler.model.parse import parse_csi_node

    e = cluster()
    for n in ("n0", "n1"):
        e.storage.set_node_limits(*parse_csi_node(csi_node(n, disk_csi=2)))
    add_storage(e, storage_class("csi", provisioner="disk.csi", mode="Immediate"), *bound_csi_claims(4))
    only_n0 = {"nodeSelector": {"kubernetes.io/hostname": "n0"}}
    assert where(e, pod("a", cpu="1", **claims("c0"), **only_n0)) == "n0"
    assert where(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == "n0"
    # a third distinct volume of the driver exceeds n0's limit of 2; a volume already there does not
    assert message(e, pod("c", cpu="1", **claims("c2"), **only_n0)) == (
        "0/4 nodes are available: 1 node(s) exceed max volume count, "
        "3 node(s) didn't match Pod's node affinity/selector.")
    assert where(e, pod("shared", cpu="1", **claims("c1"), **only_n0)) == "n0"
    # nodes without a limit take it; n1's limit counts its own volumes only
    assert where(e, pod("d", cpu="1", **claims("c2", "c3"), nodeSelector={"kubernetes.io/hostname": "n1"})) == "n1"
    e.remove_pod("default/a")
    assert where(e, pod("c", cpu="1", **claims("c2"), **only_n0)) == "n0"


def test_pods_of_fresh_volumes_share_a_class_and_the_limit_still_holds():
    """Volumes attached nowhere are stand-ins in the class key, so pods that each mount their own
    new volume share one class (built once, not once per pod) while every node still takes no more
    than its limit; a pod whose volume is already attached somewhere keeps its own key."""
    from cluster_scheduler.model.parse import parse_csi_node

    e = engine([node(f"n{i}", cpu="8") for i in range(4)])
    for i in range(4):
        e.storage.set_node_limits(*parse_csi_node(csi_node(f"n{i}", disk_csi=2)))
    add_storage(e, storage_class("csi", provisioner="disk.csi", mode="Immediate"), *bound_csi_claims(10))
    pods = [pod(f"p{i}", cpu="100m", **claims(f"c{i}")) for i in range(9)]
    assert len({e.pod_key(p) for p in pods}) == 1
    builds = e.builds
    results = e.schedule(pods)
    assert e.builds - builds <= 2
    per_node: dict[str, int] = {}
    for r in results[:8]:
        per_node[r.candidates[0][0]] = per_node.get(r.candidates[0][0], 0) + 1
    assert per_node == {f"n{i}": 2 for i in range(4)}
    assert results[8].message() == "0/4 nodes are available: 4 node(s) exceed max volume count."
    shared = pod("shared", cpu="100m", **claims("c0"))  # h0 is attached: not new where it is
    assert e.pod_key(shared) != e.pod_key(pods[8]) and where(e, shared) == results[0].candidates[0][0]


def test_a_count_moved_without_a_placement_reaches_a_class_of_fresh_volumes():
    """A fresh-volume class keeps its heap across pods: a node whose attach count rises with no
    placement there (a placed pod's claim bound to a counted volume) must be re-read, or the next
    pod of the class would take it past its limit."""
    from cluster_scheduler.model.parse import parse_csi_node

    e = engine([node("n0", cpu="4"), node("n1", cpu="4")])
    for n in ("n0", "n1"):
        e.storage.set_node_limits(*parse_csi_node(csi_node(n, disk_csi=1)))
    add_storage(e, storage_class("csi", provisioner="disk.csi", mode="Immediate"), storage_class("other"),
                pv_dict("v-late", claim=("default", "late"), phase="Bound", storage_class="other"),
                pvc_dict("late", volume="v-late", bound=True, storage_class="other"),
                *[o for i in (1, 2) for o in (
                    pv_dict(f"v{i}", claim=("default", f"c{i}"), phase="Bound", storage_class="csi",
                            csi={"driver": "disk.csi", "volumeHandle": f"h{i}"}),
                    pvc_dict(f"c{i}", volume=f"v{i}", bound=True, storage_class="csi"))])
    assert where(e, pod("first", cpu="1", **claims("late"), nodeSelector={"kubernetes.io/hostname": "n0"})) == "n0"
    assert where(e, pod("a", cpu="100m", **claims("c1"))) == "n1"  # the emptier node; n1 is now full
    add_storage(e, pv_dict("v-late", claim=("default", "late"), phase="Bound", storage_class="other",
                           csi={"driver": "disk.csi", "volumeHandle": "h-late"}))  # n0 full too
    assert message(e, pod("b", cpu="100m", **claims("c2"))) == (
        "0/2 nodes are available: 2 node(s) exceed max volume count.")


@pytest.mark.parametrize("seed", range(10))
def test_fresh_volume_classes_place_as_classes_of_one_pod(seed):
    """Stand-ins change nothing: the same random pods, claims, removals and attachments give the
    same placements with shared classes as with a class per pod (stand-ins off)."""
    import random

    from cluster_scheduler.model.parse import parse_csi_node

    def run(fresh: bool) -> list:
        rng = random.Random(seed)
        e = engine([node(f"n{i}", cpu="2", pods="110") for i in range(5)])
        if not fresh:
            e.storage.fresh = lambda v: v
        for i in range(5):
            if rng.random() < 0.8:
                e.storage.set_node_limits(*parse_csi_node(csi_node(f"n{i}", a_csi=rng.randint(1, 3), b_csi=1)))
        objs = [storage_class("sc", provisioner="a.csi", mode="Immediate")]
        for j in range(24):
            objs += [pv_dict(f"v{j}", claim=("default", f"c{j}"), phase="Bound", storage_class="sc",
                             csi={"driver": rng.choice(["a.csi", "a.csi", "b.csi"]), "volumeHandle": f"h{j % 18}"}),
                     pvc_dict(f"c{j}", volume=f"v{j}", bound=True, storage_class="sc")]
        add_storage(e, *objs)
        out = []
        for step in range(12):
            batch = [pod(f"s{seed}-{step}-{k}", cpu=rng.choice(["100m", "300m"]),
                         **claims(*rng.sample([f"c{j}" for j in range(24)], rng.randint(1, 2))))
                     for k in range(rng.randint(1, 5))]
            out += [(r.uid, r.candidates[0][0] if r.candidates else r.message()) for r in e.schedule(batch)]
            if rng.random() < 0.4 and e.pods:
                e.remove_pod(sorted(e.pods)[rng.randrange(len(e.pods))])
            if rng.random() < 0.5:  # a claim rebound to another volume: its placed pods count that one
                j = rng.randrange(24)
                add_storage(e, pv_dict(f"w{step}", claim=("default", f"c{j}"), phase="Bound", storage_class="sc",
                                       csi={"driver": rng.choice(["a.csi", "b.csi"]), "volumeHandle": f"k{step}"}),
                            pvc_dict(f"c{j}", volume=f"w{step}", bound=True, storage_class="sc"))
            if rng.random() < 0.2:
                add_storage(e, attachment(f"va{step}", f"n{rng.randint(0, 4)}", f"v{rng.randint(0, 23)}", "a.csi"))
        return out

    assert run(True) == run(False)


def test_a_claim_bound_after_its_pod_was_placed_counts_its_volume_from_then_on():
    """WaitForFirstConsumer with static volumes: the pod is placed while its claim is unbound (a
    class without a CSI provisioner: nothing to count), then the PV controller binds the claim to
    a CSI volume. Upstream reads every pod's claims when it filters, so the volume takes an attach
    slot from then on; unbinding the claim frees it."""
    from cluster_scheduler.model.parse import parse_csi_node

    e = cluster()
    e.storage.set_node_limits(*parse_csi_node(csi_node("n0", disk_csi=1)))
    add_storage(e, storage_class("local"), storage_class("csi", provisioner="disk.csi", mode="Immediate"),
                pv_dict("v0", storage_class="local", csi={"driver": "disk.csi", "volumeHandle": "h0"}),
                pvc_dict("late", storage_class="local"),
                pv_dict("v1", claim=("default", "c1"), phase="Bound", storage_class="csi",
                        csi={"driver": "disk.csi", "volumeHandle": "h1"}),
                pvc_dict("c1", volume="v1", bound=True, storage_class="csi"))
    on_n0 = {"nodeSelector": {"kubernetes.io/hostname": "n0"}}
    assert where(e, pod("first", cpu="100m", **claims("late"), **on_n0)) == "n0"
    add_storage(e, pv_dict("v0", claim=("default", "late"), phase="Bound", storage_class="local",
                           csi={"driver": "disk.csi", "volumeHandle": "h0"}),
                pvc_dict("late", volume="v0", bound=True, storage_class="local"))
    assert message(e, pod("second", cpu="100m", **claims("c1"), **on_n0)) == (
        "0/4 nodes are available: 1 node(s) exceed max volume count, "
        "3 node(s) didn't match Pod's node affinity/selector.")
    e.storage.set_claim(parse_claim(pvc_dict("late", storage_class="local")))  # unbound again
    e.storage.remove_volume("v0")
    assert where(e, pod("second", cpu="100m", **claims("c1"), **on_n0)) == "n0"


@pytest.mark.parametrize("seed", range(8))
def test_attach_limit_filter_agrees_with_its_row_form(seed):
    """The filter's per-driver arrays (kept along the index's log of count changes) give what the
    row form computes node by node, as pods come and go, claims bind and volumes are attached."""
    import random

    from cluster_scheduler.model.parse import parse_csi_node
    from cluster_scheduler.plugins import node_volume_limits

    rng = random.Random(seed)
    e = engine([node(f"n{i}", cpu="64", pods="110") for i in range(6)])
    for i in range(6):
        if rng.random() < 0.7:
            e.storage.set_node_limits(*parse_csi_node(csi_node(f"n{i}", a_csi=rng.randint(1, 3), b_csi=2)))
    objs = [storage_class("sc-a", provisioner="a.csi", mode="Immediate"),
            storage_class("sc-b", provisioner="b.csi", mode="WaitForFirstConsumer")]
    for j in range(10):
        drv = rng.choice(["a.csi", "b.csi"])
        objs += [pv_dict(f"v{j}", claim=("default", f"c{j}"), phase="Bound", storage_class="sc-a",
                         csi={"driver": drv, "volumeHandle": f"h{j % 7}"}),
                 pvc_dict(f"c{j}", volume=f"v{j}", bound=True, storage_class="sc-a")]
    objs += [pvc_dict(f"u{j}", storage_class="sc-b") for j in range(3)]
    add_storage(e, *objs)
    names = [f"c{j}" for j in range(10)] + [f"u{j}" for j in range(3)]
    for step in range(30):
        p = pod(f"p{step}", cpu="10m", **claims(*rng.sample(names, rng.randint(1, 3))))
        if rng.random() < 0.3 and e.pods:
            e.remove_pod(rng.choice(sorted(e.pods)))
        if rng.random() < 0.3:  # a volume attached, or detached, with or without a pod there
            va = f"va{rng.randint(0, 5)}"
            if rng.random() < 0.3:
                e.storage.delete("volumeattachments", va)
            else:
                add_storage(e, attachment(va, f"n{rng.randint(0, 5)}", f"v{rng.randint(0, 11)}",
                                          rng.choice(["a.csi", "b.csi"])))
        cls = e.class_of(p)
        ctx = cls.ctx
        if node_volume_limits.pre_filter(ctx):
            ok, _ = node_volume_limits.filter(ctx)
            assert ok.tolist() == [node_volume_limits.fits_row(ctx, r) for r in ctx.rows.tolist()], step
        place(e, p)


@pytest.mark.parametrize("seed", range(6))
def test_a_one_pod_class_ranks_nodes_as_the_heap_would(seed):
    """A pod with volumes of its own is a class of one pod, built without heaps: its best nodes
    are read off the build's scores (`ClassState.top`). They are the heap's, ties included, as
    earlier pods fill nodes (of a zone-spread gate too)."""
    import random

    from cluster_scheduler.engine import ClassState

    rng = random.Random(seed)
    e = engine([node(f"n{i}", cpu=str(rng.choice([2, 4, 8])), labels={"zone": f"z{i % 3}"}) for i in range(9)])
    objs = [storage_class("csi", provisioner="disk.csi", mode="Immediate")]
    for j in range(12):
        objs += [pv_dict(f"v{j}", claim=("default", f"c{j}"), phase="Bound", storage_class="csi",
                         csi={"driver": "disk.csi", "volumeHandle": f"h{j}"}),
                 pvc_dict(f"c{j}", volume=f"v{j}", bound=True, storage_class="csi")]
    add_storage(e, *objs)
    from cluster_scheduler.model.parse import parse_csi_node
    e.storage.set_node_limits(*parse_csi_node(csi_node("n0", disk_csi=2)))  # counted: a class per pod
    e.storage.fresh = lambda v: v  # (as volumes attached somewhere are: fresh ones share a class)
    spread = {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                                             "labelSelector": {"matchLabels": {"app": "x"}}}]}
    for j in range(12):
        kw = spread if rng.random() < 0.5 else {}
        p = pod(f"p{j}", cpu=rng.choice(["100m", "500m", "1"]), labels={"app": "x"}, **claims(f"c{j}"), **kw)
        cls = e.class_of(p)
        assert cls.one_pod and cls.heaps is None
        with_heaps = ClassState(e, cls.key, cls.profile)
        with_heaps.one_pod = False
        with_heaps.build()
        assert cls.top(9) == with_heaps.pick(9), j
        place(e, p)


def test_migrated_in_tree_volumes_count_under_their_csi_driver():
    """An in-tree AWS EBS volume uses an attach slot of ebs.csi.aws.com (upstream translates it);
    the same disk through a CSI volume is the same attachment; an in-tree provisioner's unbound
    claims count under its CSI driver; Azure File (translatable, not counted upstream) is free."""
    from cluster_scheduler.model.csi_translation import provisioner_driver, translate_volume
    from cluster_scheduler.model.parse import parse_csi_node

    assert translate_volume({"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-1"}}, {}) == (
        "ebs.csi.aws.com", "vol-1")
    assert translate_volume({"gcePersistentDisk": {"pdName": "d"}}, {"topology.kubernetes.io/zone": "z-a"}) == (
        "pd.csi.storage.gke.io", "projects/UNSPECIFIED/zones/z-a/disks/d")
    assert translate_volume({"azureFile": {"shareName": "s"}}, {}) is None
    assert provisioner_driver("kubernetes.io/azure-disk") == "disk.csi.azure.com"
    assert provisioner_driver("kubernetes.io/azure-file") == "" and provisioner_driver("x.csi") == "x.csi"
    e = cluster()
    e.storage.set_node_limits(*parse_csi_node(csi_node("n0", ebs_csi_aws_com=2)))
    objs = [storage_class("gp2", provisioner="kubernetes.io/aws-ebs", mode="WaitForFirstConsumer"),
            storage_class("files", provisioner="kubernetes.io/azure-file", mode="WaitForFirstConsumer")]
    for i in range(2):
        objs.append(pv_dict(f"ebs{i}", claim=("default", f"c{i}"), phase="Bound", storage_class="",
                            awsElasticBlockStore={"volumeID": f"vol-{i}"}))
        objs.append(pvc_dict(f"c{i}", volume=f"ebs{i}", bound=True, storage_class=""))
    objs += [pv_dict("csi0", claim=("default", "same"), phase="Bound", storage_class="",
                     csi={"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0"}),
             pvc_dict("same", volume="csi0", bound=True, storage_class=""),
             pvc_dict("new", storage_class="gp2"), pvc_dict("share", storage_class="files")]
    add_storage(e, *objs)
    on_n0 = {"nodeSelector": {"kubernetes.io/hostname": "n0"}}
    assert where(e, pod("a", cpu="100m", **claims("c0"), **on_n0)) == "n0"
    assert where(e, pod("b", cpu="100m", **claims("c1"), **on_n0)) == "n0"
    assert where(e, pod("same-disk", cpu="100m", **claims("same"), **on_n0)) == "n0"
    assert where(e, pod("files", cpu="100m", **claims("share"), **on_n0)) == "n0"
    assert message(e, pod("c", cpu="100m", **claims("new"), **on_n0)) == (
        "0/4 nodes are available: 1 node(s) exceed max volume count, "
        "3 node(s) didn't match Pod's node affinity/selector.")


def test_translation_of_inline_and_azure_volumes():
    """An inline volume's handle knows no zone; an Azure disk translates only when `Managed` (the
    apiserver defaults `kind` to `Shared`), as a volume or inline; Azure File is not counted."""
    from cluster_scheduler.model.csi_translation import translate_volume

    def translate_inline(volume: dict) -> tuple[str, str] | None:
        return translate_volume(volume, {})  # an inline volume: no labels

    gce = "pd.csi.storage.gke.io"
    assert translate_inline({"name": "d", "gcePersistentDisk": {"pdName": "pd-a"}}) == (
        gce, "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/pd-a")
    assert translate_inline({"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-1"}}) == (
        "ebs.csi.aws.com", "vol-1")
    assert translate_inline({"cinder": {"volumeID": "c1"}}) == ("cinder.csi.openstack.org", "c1")
    assert translate_inline({"portworxVolume": {"volumeID": "x1"}}) == ("pxd.portworx.com", "x1")
    uri = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d"
    assert translate_inline({"azureDisk": {"diskName": "d", "diskURI": uri}}) is None
    assert translate_inline({"azureDisk": {"diskName": "d", "diskURI": uri, "kind": "Shared"}}) is None
    assert translate_inline({"azureDisk": {"diskName": "d", "diskURI": uri, "kind": "managed"}}) == (
        "disk.csi.azure.com", uri)
    assert translate_inline({"azureFile": {"shareName": "s"}}) is None
    assert translate_inline({"emptyDir": {}}) is None


def test_inline_in_tree_volumes_count_under_their_csi_driver():
    """Upstream counts a pod's inline GCE PD (EBS, Azure Disk, Cinder, Portworx) volumes under
    their CSI driver on a node whose CSINode limits it: distinct disks per node, a disk already
    there (inline or through a claim) is not new, and pods stamped from one template (one class,
    or bound pods added as a group) count each where it lands."""
    from cluster_scheduler.model.parse import parse_csi_node

    def disk(pd: str, name: str = "d") -> dict:
        return {"name": name, "gcePersistentDisk": {"pdName": pd, "readOnly": True}}

    e = cluster()
    e.storage.set_node_limits(*parse_csi_node(csi_node("n0", pd_csi_storage_gke_io=2)))
    on_n0 = {"nodeSelector": {"kubernetes.io/hostname": "n0"}}
    a = pod("a", cpu="100m", volumes=[disk("pd-a")], **on_n0)
    assert a.has_volumes and a.key.inline_csi == (("pd.csi.storage.gke.io", "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/pd-a"),)
    assert where(e, a) == "n0"
    assert where(e, pod("a2", cpu="100m", volumes=[disk("pd-a")], **on_n0)) == "n0"  # the same disk
    assert where(e, pod("b", cpu="100m", volumes=[disk("pd-b"), disk("pd-a", "again")], **on_n0)) == "n0"
    full = ("0/4 nodes are available: 1 node(s) exceed max volume count, "
            "3 node(s) didn't match Pod's node affinity/selector.")
    assert message(e, pod("c", cpu="100m", volumes=[disk("pd-c")], **on_n0)) == full
    # a claim's CSI volume with the handle of a disk already there is not new
    add_storage(e, storage_class("csi", provisioner="pd.csi.storage.gke.io", mode="Immediate"),
                pv_dict("v", claim=("default", "c"), phase="Bound", storage_class="csi",
                        csi={"driver": "pd.csi.storage.gke.io",
                             "volumeHandle": "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/pd-b"}),
                pvc_dict("c", volume="v", bound=True, storage_class="csi"))
    assert where(e, pod("claim", cpu="100m", **claims("c"), **on_n0)) == "n0"
    e.remove_pod("default/b")  # pd-b is still used (by the claim's pod), pd-a too
    assert message(e, pod("c", cpu="100m", volumes=[disk("pd-c")], **on_n0)) == full
    e.remove_pod("default/claim")
    assert where(e, pod("c", cpu="100m", volumes=[disk("pd-c")], **on_n0)) == "n0"
    # bound pods of one template, added as a group (a snapshot's BOUND_CLASS), count as well
    g = cluster()
    g.storage.set_node_limits(*parse_csi_node(csi_node("n1", pd_csi_storage_gke_io=1)))
    tpl = pod("t", cpu="100m", volumes=[disk("pd-x")])
    g.add_group(tpl, [("default/t0", "t0", "n1"), ("default/t1", "t1", "n1")])
    on_n1 = {"nodeSelector": {"kubernetes.io/hostname": "n1"}}
    assert message(g, pod("y", cpu="100m", volumes=[disk("pd-y")], **on_n1)).startswith(
        "0/4 nodes are available: 1 node(s) exceed max volume count")
    assert where(g, pod("x", cpu="100m", volumes=[disk("pd-x")], **on_n1)) == "n1"


# ------------------------------------------------------------------------------ storage capacity
NO_SPACE = "node(s) did not have enough free storage"
DRIVER = "disk.csi.example.com"


def tracked(*objs, driver: dict | None = None):
    """Zones a (n0, n1) and b (n2, n3); class `csi` provisioned by a driver that publishes
    CSIStorageCapacity (unless `driver` says otherwise); only VolumeBinding scores."""
    e = add_storage(cluster(), storage_class("csi", provisioner=DRIVER),
                    driver if driver is not None else csi_driver(DRIVER), *objs)
    only_volumes = Profile(score_weights=(("VolumeBinding", 1),))
    e.profiles[only_volumes.scheduler_name] = only_volumes
    e.profile = only_volumes
    return e


def zone(z: str) -> dict:
    return {"matchLabels": {"zone": z}}


def test_provisioning_needs_a_capacity_object_with_room_where_the_driver_publishes_them():
    p = pod("p", cpu="1", **claims("data"))
    e = tracked(pvc_dict("data", "5Gi", storage_class="csi"))
    assert message(e, p) == f"0/4 nodes are available: 4 {NO_SPACE}."
    add_storage(e, storage_capacity("a", "csi", zone("a"), "3Gi"), storage_capacity("b", "csi", zone("b"), "100Gi"))
    assert scores(e, p) == {"n2": 95, "n3": 95}  # 5Gi of the 100Gi the object reports
    # maximumVolumeSize, where given, is what a new volume must fit in
    add_storage(e, storage_capacity("b", "csi", zone("b"), "100Gi", maximum="4Gi"),
                storage_capacity("a", "csi", zone("a"), "1Gi", maximum="10Gi"))
    assert scores(e, p) == {"n0": 0, "n1": 0}  # 5Gi of a capacity of 1Gi: over it, scored 0
    # an object of another class, one without a topology, one without quantities: no room
    e = tracked(pvc_dict("data", "5Gi", storage_class="csi"), storage_capacity("x", "other", zone("a"), "9Gi"),
                storage_capacity("y", "csi", None, "9Gi"), storage_capacity("z", "csi", zone("b")))
    assert message(e, p) == f"0/4 nodes are available: 4 {NO_SPACE}."
    # the first object by name that has room gives the score's capacity; {} selects every node
    add_storage(e, storage_capacity("m", "csi", zone("b"), "10Gi"), storage_capacity("n", "csi", {}, "50Gi"))
    assert scores(e, p) == {"n0": 90, "n1": 90, "n2": 50, "n3": 50}
    place(e, p)
    assert e.storage.chosen["default/p"][0].room is not None


def test_capacity_is_not_checked_unless_the_driver_publishes_it_and_the_claim_is_sized():
    p = pod("p", cpu="1", **claims("data"))
    for driver in (csi_driver(DRIVER, storage_capacity=False), csi_driver("other.csi.example.com")):
        e = tracked(pvc_dict("data", "5Gi", storage_class="csi"), driver=driver)
        assert scores(e, p) == {f"n{i}": 0 for i in range(4)}
    unsized = pvc_dict("data", storage_class="csi")
    del unsized["spec"]["resources"]
    assert scores(tracked(unsized), p) == {f"n{i}": 0 for i in range(4)}


def test_reasons_and_capacity_changes_reach_the_next_placement():
    e = tracked(pvc_dict("data", "5Gi", storage_class="zonal"),
                storage_class("zonal", provisioner=DRIVER, topologies=[{"zone": ["a"]}]),
                storage_capacity("b", "zonal", zone("b"), "100Gi"))
    p = pod("p", cpu="1", **claims("data"))
    assert message(e, p) == f"0/4 nodes are available: 2 {NO_SPACE}, 2 {BIND_CONFLICT}."
    add_storage(e, storage_capacity("a", "zonal", zone("a"), "100Gi"))
    assert set(scores(e, p)) == {"n0", "n1"}
    e.storage.delete("csistoragecapacities", "kube-system/a")
    assert message(e, p) == f"0/4 nodes are available: 2 {NO_SPACE}, 2 {BIND_CONFLICT}."


def test_a_static_binding_is_scored_and_capacity_is_not_read_for_it():
    e = tracked(storage_class("local"), pv_dict("pv", "10Gi", host="n0", storage_class="csi"),
                pvc_dict("data", "5Gi", storage_class="csi"), storage_capacity("all", "csi", {}, "20Gi"))
    p = pod("p", cpu="1", **claims("data"))
    # n0 binds the volume (5 of 10Gi: 50); the rest provision into 20Gi (75)
    assert scores(e, p) == {"n0": 50, "n1": 75, "n2": 75, "n3": 75}


@pytest.mark.parametrize("sizes, text", [(("1Gi", "6Gi"), NO_SPACE), (("6Gi", "1Gi"), BIND_CONFLICT)])
def test_several_claims_to_provision_fail_on_the_first_that_cannot(sizes, text):
    # x's driver has no room anywhere, y's class provisions nothing: the smaller is tried first
    e = tracked(storage_class("local"), pvc_dict("x", sizes[0], storage_class="csi"), pvc_dict("y", sizes[1]))
    assert message(e, pod("p", cpu="1", **claims("x", "y"))) == f"0/4 nodes are available: 4 {text}."


def test_several_claims_share_the_class_capacity_as_upstream_scores_it():
    e = tracked(pvc_dict("x", "5Gi", storage_class="csi"), pvc_dict("y", "15Gi", storage_class="csi"),
                storage_capacity("all", "csi", {}, "40Gi"))
    # one class: 20Gi requested of the 40Gi the object reports -> 50
    assert scores(e, pod("p", cpu="1", **claims("x", "y"))) == {f"n{i}": 50 for i in range(4)}


def test_a_driver_that_must_be_installed_takes_no_volume_where_its_csi_node_lacks_it():
    """CSIDriver preventPodSchedulingIfMissing (VolumeLimitScaling, on in 1.37): n0 lists the
    driver (with a limit of 1), n1 lists another, n2 and n3 have no CSINode."""
    e = add_storage(cluster(), storage_class("csi", provisioner="disk.csi", mode="Immediate"),
                    csi_node("n0", disk_csi=1), csi_node("n1", other_csi=5),
                    *[o for i in range(2) for o in (
                        pv_dict(f"v{i}", claim=("default", f"c{i}"), phase="Bound", storage_class="csi",
                                csi={"driver": "disk.csi", "volumeHandle": f"h{i}"}),
                        pvc_dict(f"c{i}", volume=f"v{i}", bound=True, storage_class="csi"))])
    assert set(scores(e, pod("p", cpu="1", **claims("c0")))) == {"n0", "n1", "n2", "n3"}  # not opted in
    add_storage(e, csi_driver("disk.csi", storage_capacity=False, prevent_if_missing=True))
    assert where(e, pod("a", cpu="1", **claims("c0"))) == "n0"
    # n0 is full (a second volume of the driver), the others lack it: each node one reason
    assert message(e, pod("b", cpu="1", **claims("c1"))) == (
        "0/4 nodes are available: 1 node(s) exceed max volume count, "
        "3 disk.csi CSI driver is not installed on the node.")
    add_storage(e, csi_node("n3", disk_csi=2))
    assert where(e, pod("b", cpu="1", **claims("c1"))) == "n3"
    # a pod without volumes of that driver is not concerned
    assert where(e, pod("c", cpu="1")) is not None


def test_volume_attachments_count_against_the_limit_as_upstream_counts_them():
    """A VolumeAttachment counts its PersistentVolume's CSI handle under its attacher on its node,
    once with the pods' volumes there; the pod's own volume is still new even if attached."""
    e = add_storage(cluster(), storage_class("csi", provisioner="disk.csi", mode="Immediate"),
                    csi_node("n0", disk_csi=2),
                    *[o for i in range(3) for o in (
                        pv_dict(f"v{i}", claim=("default", f"c{i}"), phase="Bound", storage_class="csi",
                                csi={"driver": "disk.csi", "volumeHandle": f"h{i}"}),
                        pvc_dict(f"c{i}", volume=f"v{i}", bound=True, storage_class="csi"))])
    only_n0 = {"nodeSelector": {"kubernetes.io/hostname": "n0"}}
    full = "0/4 nodes are available: 1 node(s) exceed max volume count, 3 node(s) didn't match Pod's node affinity/selector."
    assert where(e, pod("a", cpu="1", **claims("c0"), **only_n0)) == "n0"
    add_storage(e, attachment("va0", "n0", "v0", "disk.csi"))  # a's own: counted once
    assert where(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == "n0"
    e.remove_pod("default/b")
    add_storage(e, attachment("va2", "n0", "v2", "disk.csi"))  # still attached, no pod there
    assert message(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == full
    assert message(e, pod("c", cpu="1", **claims("c2"), **only_n0)) == full  # attached, but new to the pods
    for va in (attachment("va2", "n1", "v2", "disk.csi"), attachment("va2", "n0", "v2", "other.csi"),
               attachment("va2", "n0", "gone", "disk.csi"), attachment("va2", "n0", "v2", "")):
        add_storage(e, va)  # elsewhere, another driver, no such volume, no attacher: not counted on n0
        assert where(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == "n0", va
        e.remove_pod("default/b")
    add_storage(e, attachment("va2", "n0", "v2", "disk.csi"))
    assert message(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == full
    e.storage.delete("persistentvolumes", "v2")  # its volume gone: nothing to count
    assert where(e, pod("b", cpu="1", **claims("c1"), **only_n0)) == "n0"


@pytest.mark.parametrize("seed", range(4))
def test_room_rows_agree_with_the_capacity_objects_node_by_node(seed):
    """`room`'s per-row answer (cached per class and size) is what reading the capacity objects
    for one node gives: whether one with room selects it, and the first such object's capacity."""
    import random

    from cluster_scheduler.plugins import volume_binding

    rng = random.Random(seed)
    e = tracked(pvc_dict("data", rng.choice(["1Gi", "5Gi", "20Gi"]), storage_class="csi"))
    for j in range(rng.randint(1, 8)):
        topology = rng.choice([zone("a"), zone("b"), {}, None, {"matchLabels": {"kubernetes.io/hostname": f"n{j % 4}"}},
                               {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}])
        add_storage(e, storage_capacity(f"c{j}", "csi", topology, rng.choice(["2Gi", "10Gi", None]),
                                        maximum=rng.choice([None, "5Gi"])))
    cls = e.class_of(pod("p", cpu="1", **claims("data")))
    ctx = cls.ctx
    claim = volume_binding.delayed_claims(e.storage, ctx.key.volumes.delayed)
    t = e.table
    for p, row in enumerate(ctx.rows.tolist()):
        fast = volume_binding.choose_why(e.storage, claim, t.names[row], t.labels[row], at=(ctx, p))
        slow = volume_binding.choose_why(e.storage, claim, t.names[row], t.labels[row])
        assert fast == slow, (t.names[row], fast, slow)
