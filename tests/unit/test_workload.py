"""The workload loader: validation messages, manifests, and the four shared acceptance workloads."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from cluster_scheduler.workload import (
    Barrier,
    CreateNodes,
    CreateObjects,
    CreatePods,
    PodGroupSpec,
    WorkloadError,
    load_workload,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_WORKLOADS = Path(os.environ.get("CLUSTER_SCHEDULER_SHARED", ROOT.parent / "shared")) / "workloads"
needs_shared = pytest.mark.skipif(not SHARED_WORKLOADS.is_dir(),
                                  reason=f"shared workloads not found at {SHARED_WORKLOADS}")

SCHED = "cluster-scheduler"

MINIMAL = """\
name: tiny
ops:
  - op: createNodes
    count: 4
    template:
      metadata: {labels: {disk: ssd}}
      status:
        capacity: {cpu: 8, memory: 32Gi, pods: "20"}
    roundRobinLabels:
      topology.kubernetes.io/zone: [zone-a, zone-b, zone-c]
  - op: createNodes
    count: 3
    template:
      status:
        allocatable: {cpu: "4", memory: 16Gi, pods: "10"}
        conditions: [{type: Ready, status: "False"}]
    roundRobinLabels:
      topology.kubernetes.io/zone: [zone-a, zone-b]
  - op: createPods
    count: 3
    template:
      metadata: {labels: {app: a}}
      spec:
        containers: [{name: c, image: pause, resources: {requests: {cpu: 100m}}}]
  - op: createPods
    count: 2
    namespace: other
    generateName: b-
    rate: 50
    template:
      spec:
        containers: [{name: c, image: pause}]
  - op: createPods
    count: 2
    template:
      spec:
        containers: [{name: c, image: pause}]
  - op: barrier
"""


def write(tmp_path: Path, text: str, name: str = "w.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_minimal_workload_parses_into_typed_ops(tmp_path):
    wl = load_workload(write(tmp_path, MINIMAL))
    assert wl.name == "tiny"
    assert [type(op) for op in wl.ops] == [CreateNodes, CreateNodes, CreatePods, CreatePods,
                                           CreatePods, Barrier]
    assert wl.node_count == 7 and wl.pod_count == 7
    pods_op = wl.ops[2]
    assert pods_op.namespace == "default" and pods_op.generate_name == "tiny-" and pods_op.rate == 0
    assert wl.ops[3].rate == 50.0 and wl.ops[3].namespace == "other"
    assert wl.ops[5].timeout == 600.0
    assert wl.namespaces == ["default", "other"]


def test_node_manifests(tmp_path):
    wl = load_workload(write(tmp_path, MINIMAL))
    nodes = list(wl.all_nodes())
    assert [n["metadata"]["name"] for n in nodes] == [f"tiny-node-{i}" for i in range(7)]
    for n in nodes:
        assert n["apiVersion"] == "v1" and n["kind"] == "Node"
        assert n["metadata"]["labels"]["kubernetes.io/hostname"] == n["metadata"]["name"]
    # round-robin uses the global index: node 4 is the first of the second op, 4 % 2 == 0
    zones = [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes]
    assert zones == ["zone-a", "zone-b", "zone-c", "zone-a", "zone-a", "zone-b", "zone-a"]
    assert nodes[0]["metadata"]["labels"]["disk"] == "ssd"
    assert "disk" not in nodes[4]["metadata"]["labels"]
    # Ready by default; template conditions are kept as given
    assert nodes[0]["status"]["conditions"][0]["type"] == "Ready"
    assert nodes[0]["status"]["conditions"][0]["status"] == "True"
    assert nodes[4]["status"]["conditions"] == [{"type": "Ready", "status": "False"}]
    # quantities normalised to strings; allocatable defaults to capacity
    assert nodes[0]["status"]["capacity"]["cpu"] == "8"
    assert nodes[0]["status"]["allocatable"] == nodes[0]["status"]["capacity"]
    # nodes share nothing mutable
    nodes[0]["metadata"]["labels"]["x"] = "y"
    nodes[0]["status"]["allocatable"]["cpu"] = "1"
    fresh = next(wl.all_nodes())
    assert "x" not in fresh["metadata"]["labels"] and fresh["status"]["allocatable"]["cpu"] == "8"


def test_node_names_are_zero_padded_to_the_largest_index(tmp_path):
    text = MINIMAL.replace("count: 4", "count: 100")
    wl = load_workload(write(tmp_path, text))
    names = [n["metadata"]["name"] for n in wl.all_nodes()]
    assert names[0] == "tiny-node-000" and names[-1] == "tiny-node-102"
    assert names == sorted(names)


def test_pod_manifests_and_name_series(tmp_path):
    wl = load_workload(write(tmp_path, MINIMAL))
    pods = list(wl.all_pods(SCHED))
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods]
    # two ops share the default prefix in one namespace: the series continues, no collision
    assert names == [("default", "tiny-0"), ("default", "tiny-1"), ("default", "tiny-2"),
                     ("other", "b-0"), ("other", "b-1"),
                     ("default", "tiny-3"), ("default", "tiny-4")]
    for p in pods:
        assert p["apiVersion"] == "v1" and p["kind"] == "Pod"
        assert p["spec"]["schedulerName"] == SCHED
    assert pods[0]["metadata"]["labels"] == {"app": "a"}
    # deep copies: mutating one pod leaves its siblings and the template alone
    pods[0]["metadata"]["labels"]["app"] = "changed"
    pods[0]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "9"
    assert pods[1]["metadata"]["labels"]["app"] == "a"
    assert pods[1]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    assert wl.ops[2].template["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
    assert "schedulerName" not in wl.ops[2].template["spec"]


def test_iter_with_explicit_start_index(tmp_path):
    wl = load_workload(write(tmp_path, MINIMAL))
    nodes = list(wl.iter_nodes(wl.ops[0], 10))
    assert [n["metadata"]["name"] for n in nodes] == [f"tiny-node-{i}" for i in range(10, 14)]
    assert nodes[0]["metadata"]["labels"]["topology.kubernetes.io/zone"] == "zone-b"  # 10 % 3
    pods = list(wl.iter_pods(wl.ops[3], 7, "other-sched"))
    assert [p["metadata"]["name"] for p in pods] == ["b-7", "b-8"]
    assert {p["spec"]["schedulerName"] for p in pods} == {"other-sched"}


@pytest.mark.parametrize("body, needle", [
    ("  - op: createNode\n    count: 1\n    template: {}\n", "unknown op 'createNode'"),
    ("  - op: createPods\n    template: {spec: {containers: [{name: c}]}}\n", "'count' is required"),
    ("  - op: createPods\n    count: -3\n    template: {spec: {containers: [{name: c}]}}\n",
     "non-negative integer"),
    ("  - op: createPods\n    count: 2.5\n    template: {spec: {containers: [{name: c}]}}\n",
     "non-negative integer"),
    ("  - op: createPods\n    count: 1\n    template: [a, b]\n", "'template' must be a mapping"),
    ("  - op: createPods\n    count: 1\n    counts: 2\n    template: {spec: {containers: [{name: c}]}}\n",
     "unknown key(s) ['counts']"),
    ("  - op: createPods\n    count: 1\n    template: {spec: {containers: []}}\n",
     "containers must be a non-empty list"),
    ("  - op: createPods\n    count: 1\n    template: {spec: {containers: [{name: c, resources: "
     "{requests: {cpu: lots}}}]}}\n", "not a Kubernetes quantity"),
    ("  - op: createPods\n    count: 1\n    rate: -1\n    template: {spec: {containers: [{name: c}]}}\n",
     "'rate' must be a number >= 0"),
    ("  - op: createPods\n    count: 1\n    namespace: Bad_NS\n    template: {spec: {containers: "
     "[{name: c}]}}\n", "'namespace' must be a DNS label"),
    ("  - op: createPods\n    count: 1\n    template: {metadata: {labels: {tier: 1}}, spec: "
     "{containers: [{name: c}]}}\n", "label value 1 must be a string"),
    ("  - op: createNodes\n    count: 1\n    template: {metadata: {labels: {a: b}}}\n",
     "allocatable (or capacity) is required"),
    ("  - op: createNodes\n    count: 1\n    template: {status: {allocatable: {cpu: '1'}}}\n"
     "    roundRobinLabels: {zone: []}\n", "must be a non-empty list"),
    ("  - op: createNodes\n    count: 1\n    template: {spec: {taints: [{key: k, effect: Never}]}, "
     "status: {allocatable: {cpu: '1'}}}\n", "effect must be"),
    ("  - op: barrier\n    timeout: 0\n", "'timeout' must be a positive number"),
])
def test_broken_ops_name_file_op_and_problem(tmp_path, body, needle):
    path = write(tmp_path, "name: broken\nops:\n  - op: barrier\n" + body)
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    msg = str(err.value)
    assert str(path) in msg and "ops[1]" in msg and needle in msg
    assert "\n" not in msg


@pytest.mark.parametrize("text, needle", [
    ("name: x\nops: [\n", "invalid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("name: Bad Name\nops: [{op: barrier}]\n", "'name' must be a lowercase DNS name"),
    ("name: x\nops: []\n", "'ops' must be a non-empty list"),
    ("name: x\nnodes: 3\nops: [{op: barrier}]\n", "unknown top-level key(s) ['nodes']"),
])
def test_broken_files(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    assert needle in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_file_is_a_workload_error(tmp_path):
    with pytest.raises(WorkloadError, match="cannot read"):
        load_workload(tmp_path / "nope.yaml")


EXPECTED = {
    "basic-1k.yaml": (1000, 5000),
    "constraints-mix.yaml": (85, 560),
    "affinity-5k.yaml": (5000, 20000),
    "fleet-10k.yaml": (10000, 100000),
}


@needs_shared
@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_shared_workloads_load_and_yield_valid_manifests(filename):
    wl = load_workload(SHARED_WORKLOADS / filename)
    nodes_expected, pods_expected = EXPECTED[filename]
    assert (wl.node_count, wl.pod_count) == EXPECTED[filename]
    assert isinstance(wl.ops[-1], Barrier)

    node_names = set()
    for n in wl.all_nodes():
        name = n["metadata"]["name"]
        assert n["metadata"]["labels"]["kubernetes.io/hostname"] == name
        assert n["status"]["allocatable"]["pods"]
        node_names.add(name)
    assert len(node_names) == nodes_expected

    pod_names = set()
    per_namespace: Counter = Counter()
    for p in wl.all_pods(SCHED):
        assert p["spec"]["schedulerName"] == SCHED
        assert p["spec"]["containers"]
        key = (p["metadata"]["namespace"], p["metadata"]["name"])
        pod_names.add(key)
        per_namespace[key[0]] += 1
    assert len(pod_names) == pods_expected
    assert set(per_namespace) == set(wl.namespaces)


@needs_shared
def test_constraints_mix_details():
    wl = load_workload(SHARED_WORKLOADS / "constraints-mix.yaml")
    nodes = list(wl.all_nodes())
    cordoned = [n for n in nodes if n["spec"].get("unschedulable")]
    assert len(cordoned) == 5
    hdd = [n for n in nodes if n["metadata"]["labels"].get("disk") == "hdd"]
    assert len(hdd) == 20 and all(n["status"]["allocatable"]["example.com/fpga"] == "2" for n in hdd)
    # the hdd op starts at global index 60: zones alternate from zone-a
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in hdd[:3]] == \
        ["zone-a", "zone-b", "zone-a"]
    pods = list(wl.all_pods(SCHED))
    assert pods[0]["metadata"]["name"] == "constraints-mix-0"
    assert pods[-1]["metadata"]["name"] == "constraints-mix-559"
    impossible = [p for p in pods if p["metadata"]["labels"]["app"] == "impossible"]
    assert len(impossible) == 10


GANGS = """\
name: gangs
ops:
  - op: createObjects
    objects:
      - {apiVersion: v1, kind: Namespace, metadata: {name: team-a, labels: {team: a}}}
      - apiVersion: scheduling.k8s.io/v1beta1
        kind: PodGroup
        metadata: {name: hand-made, namespace: other}
        spec: {schedulingPolicy: {basic: {}}}
  - op: createPods
    count: 5
    namespace: team-a
    generateName: job-
    podGroup: {size: 2, minCount: 2}
    template:
      spec:
        priority: 500
        containers: [{name: c}]
  - op: createPods
    count: 3
    namespace: team-a
    generateName: job-
    podGroup: {size: 4}
    template: {spec: {containers: [{name: c}]}}
  - op: createPods
    count: 1
    namespace: team-a
    generateName: solo-
    template: {spec: {containers: [{name: c}]}}
"""


def test_gang_ops_make_pod_groups_and_members(tmp_path):
    wl = load_workload(write(tmp_path, GANGS))
    objects, first, second, solo = wl.ops
    assert isinstance(objects, CreateObjects) and len(objects.objects) == 2
    assert first.pod_group == PodGroupSpec(size=2, min_count=2)
    assert second.pod_group == PodGroupSpec(size=4, min_count=4)  # minCount defaults to size
    assert solo.pod_group is None
    # team-a is a Namespace object (created with its labels by its op); `other` is only used
    assert wl.namespaces == ["other"]

    groups = list(wl.iter_pod_groups(first))
    assert [g["metadata"] for g in groups] == [{"name": f"job-g{k}", "namespace": "team-a"} for k in range(3)]
    assert groups[0]["apiVersion"] == "scheduling.k8s.io/v1beta1" and groups[0]["kind"] == "PodGroup"
    # the gang's priority is its pods' (kube-scheduler refuses a group whose pods differ from it)
    assert groups[0]["spec"] == {"schedulingPolicy": {"gang": {"minCount": 2}}, "priority": 500}
    # the second op of the same series continues the group count: no name is reused
    assert [g["metadata"]["name"] for g in wl.iter_pod_groups(second)] == ["job-g3"]
    assert list(wl.iter_pod_groups(solo)) == []

    steps = dict((id(op), start) for op, start in wl.steps())
    members = [(p["metadata"]["name"], p["spec"]["schedulingGroup"]["podGroupName"])
               for op in (first, second) for p in wl.iter_pods(op, steps[id(op)], SCHED)]
    assert members == [("job-0", "job-g0"), ("job-1", "job-g0"), ("job-2", "job-g1"), ("job-3", "job-g1"),
                       ("job-4", "job-g2"), ("job-5", "job-g3"), ("job-6", "job-g3"), ("job-7", "job-g3")]
    assert "schedulingGroup" not in next(wl.iter_pods(solo, 0, SCHED))["spec"]


@pytest.mark.parametrize("body, needle", [
    ("  - op: createPods\n    count: 2\n    podGroup: {size: 0}\n    template: {spec: {containers: [{name: c}]}}\n",
     "podGroup.size must be a positive integer"),
    ("  - op: createPods\n    count: 2\n    podGroup: {size: 2, minCount: two}\n    template: "
     "{spec: {containers: [{name: c}]}}\n", "podGroup.minCount must be a positive integer"),
    ("  - op: createPods\n    count: 2\n    podGroup: {minCount: 2}\n    template: {spec: {containers: [{name: c}]}}\n",
     "'podGroup' must be a mapping {size, minCount}"),
    ("  - op: createPods\n    count: 2\n    podGroup: {size: 2}\n    template: {spec: {containers: [{name: c}], "
     "schedulingGroup: {podGroupName: x}}}\n", "schedulingGroup is not allowed with podGroup"),
    ("  - op: createObjects\n    objects: []\n", "'objects' must be a non-empty list"),
    ("  - op: createObjects\n    objects: [{kind: PodGroup, metadata: {name: x}}]\n", "'apiVersion' is required"),
    ("  - op: createObjects\n    objects: [{apiVersion: v1, kind: Namespace}]\n", "metadata.name is required"),
    ("  - op: createObjects\n    objects: [{apiVersion: v1, kind: ConfigMap, metadata: {name: x, namespace: Bad}}]\n",
     "metadata.namespace must be a DNS label"),
])
def test_broken_gang_and_object_ops(tmp_path, body, needle):
    path = write(tmp_path, "name: broken\nops:\n  - op: barrier\n" + body)
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    assert "ops[1]" in str(err.value) and needle in str(err.value)


def test_min_count_above_size_is_a_valid_file(tmp_path):
    """A gang that can never be satisfied is bad input for the scheduler to report, not a bad file."""
    wl = load_workload(write(tmp_path, "name: w\nops:\n  - op: createPods\n    count: 2\n"
                                       "    podGroup: {size: 2, minCount: 3}\n"
                                       "    template: {spec: {containers: [{name: c}]}}\n"))
    assert wl.ops[0].pod_group == PodGroupSpec(size=2, min_count=3)


@needs_shared
def test_gang_gpu_workload():
    wl = load_workload(SHARED_WORKLOADS / "gang-gpu.yaml")
    gang_op = next(op for op in wl.ops if isinstance(op, CreatePods) and op.pod_group)
    groups = list(wl.iter_pod_groups(gang_op))
    assert len(groups) == 300 and groups[0]["metadata"]["name"] == "job-g0"
    assert groups[0]["spec"]["schedulingPolicy"] == {"gang": {"minCount": 16}}


VOLUMES = """\
name: vols
ops:
  - op: createPods
    count: 2
    namespace: db
    generateName: pg-
    persistentVolumeClaimTemplate:
      spec: {storageClassName: local, accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}
    template: {spec: {containers: [{name: c}], volumes: [{name: tmp, emptyDir: {}}]}}
  - op: createPods
    count: 1
    namespace: db
    generateName: pre-
    persistentVolumeClaimTemplate:
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
    persistentVolumeTemplate:
      spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], hostPath: {path: /x}}
    template: {spec: {containers: [{name: c}]}}
"""


def test_volume_templates_make_one_claim_per_pod_and_pre_bound_volumes(tmp_path):
    wl = load_workload(write(tmp_path, VOLUMES))
    local, pre = wl.ops
    got = list(wl.iter_volumes(local, 0))
    assert [pv for pv, _c in got] == [None, None]
    assert [c["metadata"] for _pv, c in got] == [{"name": "pg-0-pvc", "namespace": "db"},
                                                 {"name": "pg-1-pvc", "namespace": "db"}]
    assert got[0][1]["kind"] == "PersistentVolumeClaim" and got[0][1]["spec"]["storageClassName"] == "local"
    pods = list(wl.iter_pods(local, 0, SCHED))
    assert pods[1]["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {}},
                                          {"name": "data", "persistentVolumeClaim": {"claimName": "pg-1-pvc"}}]
    [(pv, claim)] = list(wl.iter_volumes(pre, 0))
    assert pv["metadata"]["name"] == "pre-0-pv" and pv["kind"] == "PersistentVolume"
    assert pv["spec"]["claimRef"] == {"namespace": "db", "name": "pre-0-pvc"}
    assert claim["spec"]["volumeName"] == "pre-0-pv"
    assert list(wl.iter_volumes(wl.ops[0], 5))[0][1]["metadata"]["name"] == "pg-5-pvc"


@pytest.mark.parametrize("body, needle", [
    ("    persistentVolumeClaimTemplate: {storageClassName: x}\n", "'persistentVolumeClaimTemplate' must be a mapping"),
    ("    persistentVolumeTemplate: {spec: {}}\n", "needs a 'persistentVolumeClaimTemplate'"),
    ("    persistentVolumeClaimTemplate: {spec: {resources: {requests: {storage: lots}}}}\n", "storage"),
])
def test_broken_volume_templates(tmp_path, body, needle):
    text = "name: broken\nops:\n  - op: createPods\n    count: 1\n" + body + "    template: {spec: {containers: [{name: c}]}}\n"
    with pytest.raises(WorkloadError) as err:
        load_workload(write(tmp_path, text))
    assert needle in str(err.value)
