"""`simulate` acceptance: the shared workloads run through the engine end to end and pass the
independent placement check with the expected bound/unschedulable counts (see ../shared/README.md).
Plus a small self-contained workload, so the module tests something without the shared folder."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from cluster_scheduler.simulate import format_report, run_check, simulate
from cluster_scheduler.workload import load_workload

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORKLOADS = Path(os.environ.get("CLUSTER_SCHEDULER_SHARED", ROOT.parent / "shared")) / "workloads"
needs_shared = pytest.mark.skipif(not SHARED_WORKLOADS.is_dir(),
                                  reason=f"shared workloads not found at {SHARED_WORKLOADS}")


def run(path: Path):
    res = simulate(load_workload(path))
    run_check(res)
    return res


def bound_nodes(res) -> Counter:
    return Counter(p["spec"].get("nodeName") for p in res.pod_dicts if p["spec"].get("nodeName"))


def unschedulable_pods(res) -> list[dict]:
    return [p for p in res.pod_dicts
            if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))]


TINY = """\
name: tiny
ops:
  - op: createNodes
    count: 3
    template:
      status:
        allocatable: {cpu: "2", memory: 4Gi, pods: "10"}
    roundRobinLabels:
      topology.kubernetes.io/zone: [a, b, c]
  - op: createNodes
    count: 1
    template:
      spec: {unschedulable: true}
      status:
        allocatable: {cpu: "64", memory: 64Gi, pods: "10"}
  - op: createPods
    count: 7
    template:
      metadata: {labels: {app: web}}
      spec:
        topologySpreadConstraints:
          - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule,
             labelSelector: {matchLabels: {app: web}}}
        containers: [{name: c, image: pause, resources: {requests: {cpu: 500m}}}]
  - op: barrier
  - op: createPods
    count: 2
    template:
      spec:
        containers: [{name: c, image: pause, resources: {requests: {cpu: "3"}}}]
"""


def test_tiny_workload(tmp_path):
    f = tmp_path / "tiny.yaml"
    f.write_text(TINY)
    res = run(f)
    assert (res.nodes, res.pods, res.bound, res.unschedulable) == (4, 9, 7, 2)
    assert res.check_ok, res.check_summary
    per_node = bound_nodes(res)
    assert sorted(per_node.values()) == [2, 2, 3]  # spread over the three zones, none on the cordoned node
    msgs = {p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res)}
    # upstream's words, PostFilter's included: nothing of lower priority runs anywhere
    assert msgs == {"0/4 nodes are available: 1 node(s) were unschedulable, 3 Insufficient cpu. preemption: "
                    "0/4 nodes are available: 1 Preemption is not helpful for scheduling, "
                    "3 No preemption victims found for incoming pod."}
    report = format_report(res)
    assert "unschedulable     2" in report and "clean" in report


@needs_shared
def test_constraints_mix():
    res = run(SHARED_WORKLOADS / "constraints-mix.yaml")
    assert (res.nodes, res.pods) == (85, 560)
    assert res.bound == 550 and res.unschedulable == 10
    assert res.check_ok, res.check_summary
    # the 10 'impossible' pods are the unschedulable ones, and nothing sits on a cordoned node
    stuck = unschedulable_pods(res)
    assert {p["metadata"]["labels"]["app"] for p in stuck} == {"impossible"}
    cordoned = {n["metadata"]["name"] for n in res.node_dicts if (n.get("spec") or {}).get("unschedulable")}
    assert len(cordoned) == 5 and not cordoned & set(bound_nodes(res))


@needs_shared
@pytest.mark.slow
def test_fleet_10k():
    res = run(SHARED_WORKLOADS / "fleet-10k.yaml")
    assert (res.nodes, res.pods) == (10_000, 100_000)
    assert res.unschedulable == 1_000 and res.bound == 99_000
    assert res.check_ok, res.check_summary
    stuck = unschedulable_pods(res)
    assert all(p["metadata"]["labels"].get("tier") == "training" for p in stuck)
    assert all("nvidia.com/gpu" in p["status"]["conditions"][0]["message"] for p in stuck)


@needs_shared
@pytest.mark.slow
def test_affinity_5k():
    res = run(SHARED_WORKLOADS / "affinity-5k.yaml")
    assert (res.nodes, res.pods) == (5_000, 20_000)
    assert res.bound == 20_000 and res.unschedulable == 0
    assert res.check_ok, res.check_summary


def _gang_workload(tmp_path: Path, body: str) -> Path:
    head = """\
name: g
ops:
  - op: createNodes
    count: 4
    template:
      status: {allocatable: {cpu: "4", memory: 16Gi, pods: "20", nvidia.com/gpu: "4"}}
"""
    p = tmp_path / "g.yaml"
    p.write_text(head + body)
    return p


GPU_POD = "{spec: {containers: [{name: c, resources: {requests: {cpu: 100m, nvidia.com/gpu: '1'}}}]}}"


def members_bound(res) -> Counter:
    return Counter(p["spec"]["schedulingGroup"]["podGroupName"] for p in res.pod_dicts
                   if p["spec"].get("nodeName") and p["spec"].get("schedulingGroup"))


def test_gangs_that_fit_alone_but_not_together(tmp_path):
    """16 GPUs; three gangs of 6: two fit whole, the third gets none (not the 4 left)."""
    res = run(_gang_workload(tmp_path, f"""\
  - op: createPods
    count: 18
    generateName: job-
    podGroup: {{size: 6, minCount: 6}}
    template: {GPU_POD}
"""))
    assert res.check_ok, res.check_summary
    assert members_bound(res) == Counter({"job-g0": 6, "job-g1": 6})
    assert res.bound == 12 and res.unschedulable == 6
    messages = {p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res)}
    assert messages == {"0/4 nodes are available: 4 Insufficient nvidia.com/gpu.; gang job-g2 needs 6, 4 fit"}
    assert "gangs: 2 whole, 1 with no pod bound" in res.check_summary


def test_gang_with_min_count_below_size_keeps_what_fits(tmp_path):
    """minCount 3 of 6 members, room for 4: the gang is placed with 4, the other 2 wait."""
    res = run(_gang_workload(tmp_path, f"""\
  - op: createPods
    count: 12
    generateName: big-
    template: {GPU_POD}
  - op: createPods
    count: 6
    generateName: job-
    podGroup: {{size: 6, minCount: 3}}
    template: {GPU_POD}
"""))
    assert res.check_ok, res.check_summary
    assert members_bound(res) == Counter({"job-g0": 4}) and res.unschedulable == 2


def test_gang_kept_to_one_rack_and_its_later_members_join_it(tmp_path):
    """Two racks of 8 GPUs: a gang of 6 kept to a rack goes whole to one (unconstrained its members
    would spread over all four nodes); members created later join that rack while it has room,
    then wait although the other rack is empty; a gang no rack holds waits with the reason."""
    group = ("{{apiVersion: scheduling.k8s.io/v1beta1, kind: PodGroup, metadata: {{name: {name}, namespace: default}}, "
             "spec: {{schedulingPolicy: {{gang: {{minCount: {n}}}}}, "
             "schedulingConstraints: {{topology: [{{key: rack}}]}}}}}}")
    member = ("{{spec: {{schedulingGroup: {{podGroupName: {name}}}, containers: [{{name: c, resources: "
              "{{requests: {{cpu: 100m, nvidia.com/gpu: '1'}}}}}}]}}}}")
    p = _gang_workload(tmp_path, f"""  - op: createObjects
    objects: [{group.format(name="train", n=6)}, {group.format(name="wide", n=9)}]
  - op: createPods
    count: 6
    generateName: train-
    template: {member.format(name="train")}
  - op: barrier
  - op: createPods
    count: 3
    generateName: late-
    template: {member.format(name="train")}
  - op: barrier
  - op: createPods
    count: 9
    generateName: wide-
    template: {member.format(name="wide")}
""")
    p.write_text(p.read_text().replace("    count: 4\n    template:", "    count: 4\n    roundRobinLabels: {rack: [a, b]}\n    template:", 1))
    res = run(p)
    assert res.check_ok, res.check_summary
    rack = {n["metadata"]["name"]: n["metadata"]["labels"]["rack"] for n in res.node_dicts}
    racks = Counter(rack[p["spec"]["nodeName"]] for p in res.pod_dicts if p["spec"].get("nodeName"))
    assert len(racks) == 1 and sum(racks.values()) == 8 and res.bound == 8  # 6 + 2 of the late ones
    reasons = {p["metadata"]["name"]: p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res)}
    (late,) = [m for n, m in reasons.items() if n.startswith("late-")]
    where = next(iter(racks))
    assert late == f"in placement rack={where}: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", late
    other = ({"a", "b"} - {where}).pop()  # the empty rack holds 8 of the 9
    assert reasons["wide-0"] == (f"0/2 placements of rack are available, the closest ({other}): 0/2 nodes are "
                                 "available: 2 Insufficient nvidia.com/gpu.; gang wide needs 9, 8 fit"), reasons["wide-0"]


def test_basic_group_kept_to_one_rack(tmp_path):
    """A basic-policy PodGroup with a topology constraint: its pods (which alone would spread over
    both racks) go to one rack, upstream's placement algorithm with a minCount of 1; a member that
    comes later joins that rack."""
    p = _gang_workload(tmp_path, """\
  - op: createObjects
    objects:
      - {apiVersion: scheduling.k8s.io/v1beta1, kind: PodGroup, metadata: {name: web, namespace: default},
         spec: {schedulingPolicy: {basic: {}}, schedulingConstraints: {topology: [{key: rack}]}}}
  - op: createPods
    count: 4
    generateName: web-
    template: {spec: {schedulingGroup: {podGroupName: web}, containers: [{name: c, resources: {requests: {cpu: "1"}}}]}}
  - op: barrier
  - op: createPods
    count: 1
    generateName: late-
    template: {spec: {schedulingGroup: {podGroupName: web}, containers: [{name: c, resources: {requests: {cpu: "1"}}}]}}
""")
    p.write_text(p.read_text().replace("    count: 4\n    template:", "    count: 4\n    roundRobinLabels: {rack: [a, b]}\n    template:", 1))
    res = run(p)
    assert res.check_ok and res.bound == 5, format_report(res)
    rack = {n["metadata"]["name"]: n["metadata"]["labels"]["rack"] for n in res.node_dicts}
    assert len({rack[p["spec"]["nodeName"]] for p in res.pod_dicts}) == 1


def test_gang_waits_for_its_pod_group_and_for_min_count(tmp_path):
    """A member of a PodGroup that does not exist, and a gang whose minCount exceeds its members,
    wait with a reason and bind nothing; a basic-policy group schedules pod by pod."""
    res = run(_gang_workload(tmp_path, f"""\
  - op: createObjects
    objects:
      - apiVersion: scheduling.k8s.io/v1beta1
        kind: PodGroup
        metadata: {{name: loose, namespace: default}}
        spec: {{schedulingPolicy: {{basic: {{}}}}}}
  - op: createPods
    count: 2
    generateName: orphan-
    template: {{spec: {{schedulingGroup: {{podGroupName: nowhere}}, containers: [{{name: c}}]}}}}
  - op: createPods
    count: 2
    generateName: short-
    podGroup: {{size: 2, minCount: 3}}
    template: {GPU_POD}
  - op: createPods
    count: 3
    generateName: loose-
    template: {{spec: {{schedulingGroup: {{podGroupName: loose}}, containers: [{{name: c}}]}}}}
"""))
    assert res.check_ok, res.check_summary
    assert res.bound == 3 and res.unschedulable == 4
    reasons = {p["metadata"]["name"]: p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res)}
    assert reasons["orphan-0"] == 'waiting for PodGroup "nowhere" in namespace default: it does not exist'
    assert reasons["short-0"] == "waiting for gang short-g0: fewer than minCount (3) of its pods exist"


@needs_shared
def test_gang_gpu():
    res = run(SHARED_WORKLOADS / "gang-gpu.yaml")
    assert (res.nodes, res.pods) == (800, 7800)
    assert res.check_ok, res.check_summary
    gangs = members_bound(res)
    assert len(gangs) == 250 and set(gangs.values()) == {16}  # 250 whole, and no partial one
    assert res.bound == 7000 and res.unschedulable == 800
    stuck = unschedulable_pods(res)
    assert all(p["metadata"]["namespace"] == "training" for p in stuck)
    web = [p for p in res.pod_dicts if p["metadata"]["namespace"] == "web"]
    assert len(web) == 3000 and all(p["spec"].get("nodeName") for p in web)


@needs_shared
def test_preemption_2k():
    """8,000 batch pods fill 2,000 nodes; each of 2,000 online pods preempts exactly one of them;
    the Never pods and the pods below the batch priority stay Unschedulable with upstream's words."""
    res = run(SHARED_WORKLOADS / "preemption-2k.yaml")
    assert (res.bound, res.preempted, res.unschedulable) == (8000, 2000, 400)
    assert res.check_ok, res.check_summary
    per_preemptor = Counter(pre for pre, _node in res.preemptions.values())
    assert len(per_preemptor) == 2000 and set(per_preemptor.values()) == {1}
    online = {p["metadata"]["uid"]: p for p in res.pod_dicts if p["metadata"]["namespace"] == "online"}
    for victim in res.victim_dicts:
        assert victim["spec"]["priority"] == 10
        pre, node = res.preemptions[victim["metadata"]["uid"]]
        assert online[pre]["spec"]["nodeName"] == node == victim["spec"]["nodeName"]
    reasons = Counter(res.messages[p["metadata"]["uid"]] for p in unschedulable_pods(res))
    assert reasons == {
        "0/2000 nodes are available: 2000 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.": 200,
        "0/2000 nodes are available: 2000 Insufficient cpu. preemption: 0/2000 nodes are available: "
        "2000 No preemption victims found for incoming pod.": 200}


PREEMPT_ORDER = """\
name: preempt-order
ops:
  - op: createNodes
    count: 2
    template:
      status:
        allocatable: {cpu: "2", memory: 4Gi, pods: "10"}
  - op: createPods
    count: 4
    namespace: low
    template:
      spec:
        priority: 1
        terminationGracePeriodSeconds: 0
        containers: [{name: c, image: pause, resources: {requests: {cpu: "1"}}}]
  - op: barrier
  - op: createPods
    count: 3
    namespace: high
    template:
      spec:
        priority: 100
        containers: [{name: c, image: pause, resources: {requests: {cpu: "1"}}}]
  - op: createPods
    count: 2
    namespace: mid
    template:
      spec:
        priority: 50
        containers: [{name: c, image: pause, resources: {requests: {cpu: "1"}}}]
"""


def test_preemption_in_queue_order(tmp_path):
    """Three high pods preempt three low ones; the mid pods come after them in the queue: one
    preempts the last low pod, the other finds only higher pods and stays Unschedulable."""
    path = tmp_path / "w.yaml"
    path.write_text(PREEMPT_ORDER)
    res = run(path)
    assert (res.bound, res.preempted, res.unschedulable) == (4, 4, 1), format_report(res)
    assert res.check_ok, res.check_summary
    by_ns = Counter(p["metadata"]["namespace"] for p in res.pod_dicts if p["spec"].get("nodeName"))
    assert by_ns == {"high": 3, "mid": 1}


GANG_PREEMPT = """\
name: gang-preempt
ops:
  - op: createNodes
    count: 4
    template:
      status:
        allocatable: {cpu: "2", memory: 4Gi, pods: "10"}
  - op: createPods
    count: 8
    namespace: batch
    template:
      spec:
        priority: 1
        terminationGracePeriodSeconds: 0
        containers: [{name: c, image: pause, resources: {requests: {cpu: "1"}}}]
  - op: barrier
  - op: createPods
    count: 3
    namespace: train
    generateName: job-
    podGroup: {size: 3, minCount: 3}
    template:
      spec:
        priority: 100
        containers: [{name: c, image: pause, resources: {requests: {cpu: "2"}}}]
"""


def _full_nodes_then_job(group_spec: str, count: int, priority: int, cpu: str, head: str = GANG_PREEMPT) -> str:
    """GANG_PREEMPT's full nodes, then PodGroup `job` (its spec given inline) and its `count` pods."""
    return head.split("  - op: createPods\n    count: 3")[0] + f"""\
  - op: createObjects
    objects:
      - apiVersion: scheduling.k8s.io/v1beta1
        kind: PodGroup
        metadata: {{name: job, namespace: train}}
        spec: {{{group_spec}}}
  - op: createPods
    count: {count}
    namespace: train
    generateName: job-
    template:
      spec:
        priority: {priority}
        schedulingGroup: {{podGroupName: job}}
        containers: [{{name: c, image: pause, resources: {{requests: {{cpu: "{cpu}"}}}}}}]
"""


def test_a_gang_preempts_as_one(tmp_path):
    """A gang of three 2-CPU pods on four full nodes: it evicts the six batch pods of three nodes,
    all its members are placed, the fourth node's pods stay; the check finds every victim of
    lower priority than the gang member that took its node."""
    path = tmp_path / "w.yaml"
    path.write_text(GANG_PREEMPT)
    res = run(path)
    assert (res.bound, res.preempted, res.unschedulable) == (5, 6, 0), format_report(res)
    assert res.check_ok, res.check_summary
    assert Counter(p["metadata"]["namespace"] for p in res.pod_dicts if p["spec"].get("nodeName")) == {
        "train": 3, "batch": 2}


def test_a_pod_group_not_at_its_pods_priority_is_refused(tmp_path):
    """Upstream refuses a group whose pods' priority is not the PodGroup's spec.priority
    (validatePodGroup): in simulate too, no member is placed and each says why."""
    body = _full_nodes_then_job("priority: 50, schedulingPolicy: {gang: {minCount: 2}}", 2, 100, "100m")
    path = tmp_path / "w.yaml"
    path.write_text(body)
    res = run(path)
    assert (res.bound, res.preempted, res.unschedulable) == (8, 0, 2), format_report(res)
    assert set(res.messages.values()) == {
        "all pods in a single pod group should have the same priority as the pod group's priority, got 100 and 50"}


def test_a_gang_kept_to_a_rack_preempts_within_one(tmp_path):
    """Two racks of two full nodes; a gang of two 2-CPU pods kept to a rack evicts the four batch
    pods of one rack and lands there whole (unconstrained, its two members would take the first two
    nodes, one in each rack)."""
    racks = GANG_PREEMPT.replace("    count: 4\n    template:", "    count: 4\n    roundRobinLabels: {rack: [a, b]}\n"
                                 "    template:", 1)
    body = _full_nodes_then_job("priority: 100, schedulingPolicy: {gang: {minCount: 2}}, "
                                "schedulingConstraints: {topology: [{key: rack}]}", 2, 100, "2", head=racks)
    path = tmp_path / "w.yaml"
    path.write_text(body)
    res = run(path)
    assert (res.bound, res.preempted, res.unschedulable) == (6, 4, 0), format_report(res)
    assert res.check_ok, res.check_summary
    rack = {n["metadata"]["name"]: n["metadata"]["labels"]["rack"] for n in res.node_dicts}
    assert len({rack[p["spec"]["nodeName"]] for p in res.pod_dicts if p["metadata"]["namespace"] == "train"}) == 1
    assert len({rack[v["spec"]["nodeName"]] for v in res.victim_dicts}) == 1


def test_volumes_small():
    """Local volumes, an Immediate zonal claim shared by two pods, pre-bound volumes, a missing claim."""
    res = run(ROOT / "tests" / "workloads" / "volumes-small.yaml")
    assert (res.nodes, res.pods, res.bound, res.unschedulable) == (6, 10, 8, 2)
    assert res.check_ok, res.check_summary
    on = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in res.pod_dicts}
    # the roomiest volumes first (VolumeBinding's capacity score), then the others
    assert [on[f"pg-{i}"] for i in range(5)] == [
        "volumes-small-node-1", "volumes-small-node-3", "volumes-small-node-0", "volumes-small-node-2", None]
    zone_b = {"volumes-small-node-1", "volumes-small-node-3", "volumes-small-node-5"}
    assert {on["zonal-0"], on["zonal-1"]} <= zone_b
    assert on["pre-0"] == on["pre-1"] == "volumes-small-node-5"
    claims = {c["metadata"]["name"]: c["spec"].get("volumeName") for c in res.claim_dicts}
    assert claims["pg-0-pvc"] == "local-1" and claims["pg-4-pvc"] is None and claims["shared"] == "zonal-b"
    msgs = sorted(p["status"]["conditions"][0]["message"] for p in unschedulable_pods(res))
    assert msgs[0].startswith("0/6 nodes are available: 6 node(s) didn't find available persistent volumes to bind.")
    assert msgs[1].startswith('0/6 nodes are available: persistentvolumeclaim "nothere" not found.')


CSI_LIMITS = """\
name: csi-sim
ops:
  - op: createNodes
    count: 2
    template: {status: {capacity: {cpu: "4", memory: 8Gi, pods: "110"}}}
  - op: createObjects
    objects:
      - {apiVersion: storage.k8s.io/v1, kind: StorageClass, metadata: {name: csi}, provisioner: disk.csi, volumeBindingMode: WaitForFirstConsumer}
      - {apiVersion: storage.k8s.io/v1, kind: CSINode, metadata: {name: csi-sim-node-0}, spec: {drivers: [{name: disk.csi, nodeID: a, allocatable: {count: 1}}]}}
      - {apiVersion: storage.k8s.io/v1, kind: CSINode, metadata: {name: csi-sim-node-1}, spec: {drivers: [{name: disk.csi, nodeID: b, allocatable: {count: 2}}]}}
  - op: createPods
    count: 4
    persistentVolumeClaimTemplate: {spec: {storageClassName: csi, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}
    template: {spec: {containers: [{name: c}]}}
"""


def test_csi_attach_limits_in_simulate(tmp_path):
    """CSINodes from createObjects: one volume of the driver on node 0, two on node 1, so the
    fourth provisioned claim finds no node."""
    f = tmp_path / "csi.yaml"
    f.write_text(CSI_LIMITS)
    res = run(f)
    assert (res.bound, res.unschedulable) == (3, 1) and res.check_ok, res.check_summary
    assert sorted(bound_nodes(res).values()) == [1, 2]
    assert "2 node(s) exceed max volume count" in unschedulable_pods(res)[0]["status"]["conditions"][0]["message"]
    provisioned = [v for v in res.volume_dicts if v["metadata"]["name"].startswith("pvc-")]
    assert len(provisioned) == 3 and all(v["spec"]["csi"]["driver"] == "disk.csi" for v in provisioned)


POOL = """\
name: pool-sim
ops:
  - op: createNodes
    count: 3
    template: {status: {capacity: {cpu: "4", memory: 8Gi, pods: "110"}}}
    roundRobinLabels: {topology.kubernetes.io/zone: [a, b, c]}
  - op: createObjects
    objects:
      - {apiVersion: storage.k8s.io/v1, kind: StorageClass, metadata: {name: pool}, provisioner: pool.csi, volumeBindingMode: WaitForFirstConsumer}
      - {apiVersion: storage.k8s.io/v1, kind: CSIDriver, metadata: {name: pool.csi}, spec: {storageCapacity: true, preventPodSchedulingIfMissing: true}}
      - {apiVersion: storage.k8s.io/v1, kind: CSINode, metadata: {name: pool-sim-node-0}, spec: {drivers: [{name: pool.csi, nodeID: a}]}}
      - {apiVersion: storage.k8s.io/v1, kind: CSINode, metadata: {name: pool-sim-node-1}, spec: {drivers: [{name: pool.csi, nodeID: b, allocatable: {count: 1}}]}}
      - {apiVersion: storage.k8s.io/v1, kind: CSIStorageCapacity, metadata: {name: a, namespace: kube-system}, storageClassName: pool, capacity: 10Gi, nodeTopology: {matchLabels: {topology.kubernetes.io/zone: a}}}
      - {apiVersion: storage.k8s.io/v1, kind: CSIStorageCapacity, metadata: {name: bc, namespace: kube-system}, storageClassName: pool, capacity: 100Gi, nodeTopology: {matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [b, c]}]}}
      - {apiVersion: v1, kind: PersistentVolume, metadata: {name: old}, spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], storageClassName: pool, csi: {driver: pool.csi, volumeHandle: old}}}
      - {apiVersion: storage.k8s.io/v1, kind: VolumeAttachment, metadata: {name: old}, spec: {attacher: pool.csi, nodeName: pool-sim-node-1, source: {persistentVolumeName: old}}}
  - op: createPods
    count: 2
    persistentVolumeClaimTemplate: {spec: {storageClassName: pool, accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}}
    template: {spec: {containers: [{name: c}]}}
  - op: createPods
    count: 1
    generateName: big-
    persistentVolumeClaimTemplate: {spec: {storageClassName: pool, accessModes: [ReadWriteOnce], resources: {requests: {storage: 20Gi}}}}
    template: {spec: {containers: [{name: c}]}}
"""


def test_storage_capacity_driver_checks_and_attachments_in_simulate(tmp_path):
    """Node 0 (zone a) has room for 10Gi volumes; node 1's one attach slot is held by a volume
    still attached there; node 2 has no CSINode, and the driver must be installed. The 5Gi
    claims provision on node 0, the 20Gi one finds no node, each for its node's reason."""
    f = tmp_path / "pool.yaml"
    f.write_text(POOL)
    res = run(f)
    assert (res.bound, res.unschedulable) == (2, 1) and res.check_ok, res.check_summary
    assert bound_nodes(res) == {"pool-sim-node-0": 2}
    (big,) = unschedulable_pods(res)
    assert big["status"]["conditions"][0]["message"].startswith(
        "0/3 nodes are available: 1 node(s) did not have enough free storage, 1 node(s) exceed max volume count, "
        "1 pool.csi CSI driver is not installed on the node.")
