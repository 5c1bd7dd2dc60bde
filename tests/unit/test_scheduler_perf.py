"""Upstream's scheduler_perf suite read from the Go module cache and translated into workloads, and
the subset of Go text/template its templates use."""

from __future__ import annotations

import functools
import re
import shutil

import pytest

from cluster_scheduler.loadtest import gotemplate
from cluster_scheduler.workload import Barrier, CreateNodes, CreateObjects, CreatePods

needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="Go is needed to find the module cache")


def test_template_subset_renders_as_go_does():
    env = {"Index": 7, "Count": 10, "podsPerGroup": 3.0, "priority": 0}
    assert gotemplate.render("name: p-{{.Index}}-of-{{ .Count }}", env) == "name: p-7-of-10"
    assert gotemplate.render("{{DivideInt .Index .podsPerGroup}} {{Mod .Index 4}} {{AddInt 8000 (Mod .Index 5)}}",
                             env) == "2 3 8002"
    # a param of 0 is false; a missing key is false and prints <no value>
    text = "p: {{if .priority}}{{AddInt 0 .priority}}{{else}}1000{{end}} {{if .gone}}x{{end}}{{.gone}}"
    assert gotemplate.render(text, env) == "p: 1000 <no value>"
    assert gotemplate.render('{{if eq .mode "single"}}one{{else}}all{{end}}', {"mode": "single"}) == "one"
    assert gotemplate.render("{{or .cpu \"50m\"}}", {}) == "50m"
    assert gotemplate.render("{{.n}}", {"n": 5.0}) == "5"  # a YAML number param prints as Go prints it
    for bad in ("{{range .xs}}{{.}}{{end}}", "{{$n := 3}}", "{{if .x}}", "{{- .x}}"):
        with pytest.raises(gotemplate.Unsupported):
            gotemplate.render(bad, {"xs": [1], "x": 1})


@pytest.fixture(scope="module")
def cases():
    from cluster_scheduler.loadtest.scheduler_perf import load_cases

    return {c.id: c for c in load_cases()}


@needs_go
def test_scheduling_basic_translates_with_upstreams_meaning(cases):
    case = cases["misc/SchedulingBasic/5000Nodes_10000Pods"]
    assert case.performance and case.threshold == 680 and case.reason == ""
    ops = case.workload.ops
    nodes, init, barrier1, measured, barrier2 = ops
    assert isinstance(nodes, CreateNodes) and nodes.count == 5000
    assert nodes.template["status"]["capacity"] == {"pods": "110", "cpu": "4", "memory": "32Gi"}
    assert isinstance(init, CreatePods) and (init.count, init.measure, init.namespace) == (1000, False, "namespace-1")
    assert isinstance(measured, CreatePods) and (measured.count, measured.measure, measured.namespace) == (
        10000, True, "namespace-2")
    assert isinstance(barrier1, Barrier) and isinstance(barrier2, Barrier)  # each createPods waits
    # upstream's default pod, with the signature label it adds to every templated pod
    pods = list(case.workload.iter_pods(measured, 0, "cluster-scheduler"))[:3]
    assert pods[0]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "500Mi"}
    assert [p["metadata"]["labels"]["signature"] for p in pods] == [f"signature-label-{i}" for i in range(3)]
    assert pods[0]["metadata"]["name"] == "pod-0" and pods[0]["metadata"]["namespace"] == "namespace-2"


@needs_go
def test_one_case_is_translated_alone_as_it_is_among_all(cases):
    """`find_case` translates only the case asked for (all 267 take seconds): the same workload."""
    from cluster_scheduler.loadtest.scheduler_perf import find_case, load_cases

    case_id = "affinity/SchedulingPodAffinity/5000Nodes_5000Pods"
    alone, among = find_case(case_id).workload, cases[case_id].workload
    strip = functools.partial(re.sub, r" at 0x[0-9a-f]+", "")  # per-pod template closures
    assert strip(repr(alone)) == strip(repr(among))
    for a, b in zip(alone.ops, among.ops):
        if isinstance(a, CreatePods):
            assert list(alone.iter_pods(a, 0, "s"))[:3] == list(among.iter_pods(b, 0, "s"))[:3]
    untranslated = load_cases(translate=False)
    assert [c.id for c in untranslated] == list(cases) and all(c.workload is None for c in untranslated)
    with pytest.raises(KeyError, match="did you mean"):
        find_case("misc/SchedulingBasc/5000Nodes_10000Pods")


@needs_go
def test_label_strategy_is_round_robin_over_the_ops_nodes(cases):
    case = cases["topology_spreading/TopologySpreading/5000Nodes_5000Pods"]
    (nodes_op,) = [o for o in case.workload.ops if isinstance(o, CreateNodes)]
    zones = [n["metadata"]["labels"]["topology.kubernetes.io/zone"]
             for n in list(case.workload.all_nodes())[:6]]
    assert zones == ["moon-1", "moon-2", "moon-3", "moon-1", "moon-2", "moon-3"]
    assert nodes_op.count == 5000


def test_node_template_that_varies_is_rendered_per_node(cases):
    """TopologyAwareScheduling's nodes: rack-{{DivideInt .Index 100}}, .Index counting the op's
    nodes; each PodGroup keeps its topology constraint."""
    case = cases["podgroup/tas/TopologyAwareScheduling/5000Nodes_750Gangs_3000Pods"]
    nodes = list(case.workload.all_nodes())
    racks = [n["metadata"]["labels"]["topology.kubernetes.io/rack"] for n in nodes]
    assert len(nodes) == 5000 and len(set(racks)) == 50
    assert racks[:101:50] == ["rack-0", "rack-0", "rack-1"] and racks[-1] == "rack-49"
    assert all(n["metadata"]["labels"]["kubernetes.io/hostname"] == n["metadata"]["name"] for n in nodes[:3])
    groups = [o for op in case.workload.ops for o in getattr(op, "objects", ()) if o.get("kind") == "PodGroup"]
    groups += [o for op in case.workload.ops if isinstance(op, CreatePods) for o in case.workload.iter_pod_groups(op)]
    assert groups and all(g["spec"]["schedulingConstraints"] == {"topology": [{"key": "topology.kubernetes.io/rack"}]}
                          for g in groups)


@needs_go
def test_cases_that_need_what_we_lack_say_why(cases):
    assert "DRA" in cases["dra/SchedulingWithResourceClaimTemplate/5000pods_500nodes"].reason
    # groups whose pods may only be preempted together run, as the single mode does
    mode = "default_preemption/PreemptionPodGroupDisruptionMode/1000Nodes_1000Candidates_Disruption"
    assert cases[mode + "All"].workload is not None and cases[mode + "Single"].workload is not None
    runnable = [c for c in cases.values() if c.workload is not None]
    assert len(runnable) >= 150 and all(c.reason == "" for c in runnable)
    # createNamespaces become Namespace objects; PodGroups are created with the v1beta1 API
    pg = cases["podgroup/gangscheduling/GangScheduling/10Nodes_3Gangs"]
    if pg.workload is not None:
        objs = [o for op in pg.workload.ops if isinstance(op, CreateObjects) for o in op.objects]
        assert objs and all(o["apiVersion"] == "scheduling.k8s.io/v1beta1" for o in objs if o["kind"] == "PodGroup")


@needs_go
def test_volume_cases_give_each_pod_its_own_bound_volume_and_each_node_a_csi_node(cases):
    """PV and PVC templates: per pod a claim and a volume pre-bound to each other, the volume its
    own disk (upstream's volume factory); nodeAllocatableStrategy: allocatable on every node and
    a CSINode with the driver's attach limit and the migrated plugins."""
    w = cases["volumes/SchedulingMigratedInTreePVs/5000Nodes_5000Pods"].workload
    nodes_op = next(o for o in w.ops if isinstance(o, CreateNodes))
    node = next(w.iter_nodes(nodes_op, 0))
    assert node["status"]["allocatable"]["attachable-volumes-csi-ebs.csi.aws.com"] == "39"
    assert node["status"]["allocatable"]["cpu"] == "4"  # (the rest defaulted from the capacity, as the apiserver does)
    csi = list(w.iter_csi_nodes(nodes_op, 0))
    assert len(csi) == 5000 and csi[7]["metadata"]["name"] == w.node_name(7)
    assert csi[7]["spec"]["drivers"] == [{"name": "ebs.csi.aws.com", "allocatable": {"count": 39}, "nodeID": w.node_name(7)}]
    assert csi[7]["metadata"]["annotations"] == {"storage.alpha.kubernetes.io/migrated-plugins": "kubernetes.io/aws-ebs"}
    measured = next(o for o in w.ops if isinstance(o, CreatePods) and o.measure)
    (pv0, claim0), (pv1, _) = list(w.iter_volumes(measured, 0))[:2]
    pod0 = next(w.iter_pods(measured, 0, "s"))
    assert pv0["spec"]["awsElasticBlockStore"]["volumeID"] == pv0["metadata"]["name"] != pv1["metadata"]["name"]
    assert pv0["spec"]["claimRef"]["name"] == claim0["metadata"]["name"] and claim0["spec"]["volumeName"] == pv0["metadata"]["name"]
    # written bound, as upstream writes them: no PV controller is needed (nor started)
    assert measured.written_bound and not w.uses_volumes
    assert claim0["metadata"]["annotations"] == {"pv.kubernetes.io/bind-completed": "true"}
    assert pod0["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": claim0["metadata"]["name"]}}]
    # named as upstream names them (other pods' templates refer to pvc-<i>); PVs are cluster-wide
    assert (claim0["metadata"]["name"], pv0["metadata"]["name"]) == ("pvc-0", "namespace-2-vol-0")
    init = next(o for o in w.ops if isinstance(o, CreatePods) and not o.measure)
    assert next(w.iter_volumes(init, 0))[0]["metadata"]["name"] == "namespace-1-vol-0"
    csi_pvs = cases["volumes/SchedulingCSIPVs/5Nodes"].workload
    op = next(o for o in csi_pvs.ops if isinstance(o, CreatePods))
    pv = next(csi_pvs.iter_volumes(op, 0))[0]
    assert pv["spec"]["csi"] == {"driver": "ebs.csi.aws.com", "volumeHandle": pv["metadata"]["name"]}


@needs_go
def test_create_pod_sets_unroll_into_one_create_pods_per_namespace(cases):
    w = cases["affinity/SchedulingRequiredPodAntiAffinityWithNSSelector/5000Nodes_2000Pods"].workload
    pods = [o for o in w.ops if isinstance(o, CreatePods)]
    assert [p.namespace for p in pods[:3]] == ["init-ns-0", "init-ns-1", "init-ns-2"]
    assert len(pods) == 101 and pods[-1].namespace == "measure-ns-0" and pods[-1].measure
    assert not any(p.measure for p in pods[:-1]) and sum(isinstance(o, Barrier) for o in w.ops) == 101
    ns = [o for op in w.ops if isinstance(op, CreateObjects) for o in op.objects]
    assert len(ns) == 101 and ns[0]["metadata"] == {"name": "init-ns-0", "labels": {"team": "devops"}}


@needs_go
def test_background_ops_and_barriers_keep_upstreams_meaning(cases):
    """churn and deletePods become the load test's background ops; barriers wait for upstream's
    stage (Scheduled: bound) of the pods they select, and createPods waits for its namespace."""
    from cluster_scheduler.workload import Churn, DeletePods

    w = cases["default_preemption/PreemptionAsync/5000Nodes"].workload
    churn = next(o for o in w.ops if isinstance(o, Churn))
    assert (churn.mode, churn.number, churn.interval, churn.namespace) == ("create", 0, 0.2, "namespace-2")
    assert churn.templates[0]["kind"] == "Pod" and churn.templates[0]["spec"]["priority"] > 0
    w = cases["event_handling/EventHandlingPodDelete/50Nodes_500Pods"].workload
    deletes = [o for o in w.ops if isinstance(o, DeletePods)]
    assert [(d.namespace, d.labels, d.rate, d.wait) for d in deletes] == [
        ("blockertopologyportsresources", {"type": "blocker"}, 100.0, False),
        ("blockeraffinity", {"type": "blocker"}, 100.0, False)]
    attempted, scheduled = [o for o in w.ops if isinstance(o, Barrier) and o.labels]
    assert not attempted.until_bound and scheduled.until_bound and scheduled.labels == {"type": "unsched"}
    first_wait = next(o for o in w.ops if isinstance(o, Barrier))
    assert first_wait.until_bound and first_wait.namespaces == ("blockertopologyportsresources",)
    assert first_wait.at_least == 480  # the blockers: the skipWait pods in that namespace are not waited for


@needs_go
def test_update_any_becomes_updates_of_the_named_objects(cases):
    """updateAny: each object rendered per index in the op's namespace, paced, through the
    subresource named; a startCollectingMetrics window times only the pods its namespaces and
    label selector pick (the blockers are not timed, the pods they block are)."""
    from cluster_scheduler.workload import UpdateObjects

    w = cases["event_handling/EventHandlingPodUpdate/1Node_10Pods"].workload
    ups = [o for o in w.ops if isinstance(o, UpdateObjects)]
    assert len(ups) == 5 and all(u.rate == 100.0 and len(u.objects) == 10 for u in ups)
    toleration = ups[1].objects[3]
    assert toleration["metadata"] == {"name": "pod-tainttoleration-3", "labels": {"type": "unsched"},
                                      "namespace": "tainttoleration"}
    assert toleration["spec"]["tolerations"][0]["key"] == "toleration"
    assert [u.subresources for u in ups] == [(), (), (), ("resize",), ()]
    # the names match the pods created before: the same series, numbered from 0
    made = next(o for o in w.ops if isinstance(o, CreatePods) and o.namespace == "tainttoleration")
    names = [p["metadata"]["name"] for p in w.iter_pods(made, 0, "s")]
    assert names == [o["metadata"]["name"] for o in ups[1].objects]
    timed = {(o.namespace, o.measure) for o in w.ops if isinstance(o, CreatePods)}
    assert ("tainttoleration", True) in timed and ("schedulinggates", True) in timed
    blockers = [o for o in w.ops if isinstance(o, CreatePods) and o.namespace == "blocker"]
    assert [o.measure for o in blockers] == [False, True]  # the blockers, then the spread pods they block
    nodes = cases["event_handling/EventHandlingNodeUpdate/100Nodes_1000Pods"].workload
    node_ups = [o for o in nodes.ops if isinstance(o, UpdateObjects)]
    assert len(node_ups) == 4 and all(o["kind"] == "Node" and "namespace" not in o["metadata"]
                                      for u in node_ups for o in u.objects)


def test_only_measured_ops_are_timed():
    from cluster_scheduler.loadtest.report import summarise
    from cluster_scheduler.loadtest.runner import RunData

    created = {f"ns/init{i}": 0.0 for i in range(100)} | {f"ns/m{i}": 10.0 + i for i in range(10)}
    bound = {k: t + (5.0 if k.startswith("ns/init") else 0.5) for k, t in created.items()}
    data = RunData(created, bound, {}, set(), {}, op_of={**{f"ns/init{i}": 0 for i in range(100)},
                                                        **{f"ns/m{i}": 2 for i in range(10)}},
                   measured_ops={2})
    s = summarise("ours", "s", data, cpu={}, check=None, timings={}).summary
    assert s["bound"] == 110 and s["timed_pods"] == 10
    assert s["pods_per_s"] == round(10 / 9.5, 2) and s["latency_s"]["p99"] == 0.5


@needs_go
def test_results_table_has_one_row_per_run(tmp_path):
    import json

    from cluster_scheduler.loadtest.scheduler_perf import main

    run = {"bound": 11000, "unschedulable": 0, "pods_per_s": 500.0, "latency_s": {"p99": 1.5}, "check": {"ok": True}}
    ours = dict(run, pods_per_s=750.0, latency_s={"p99": 0.5})
    d = tmp_path / "misc_SchedulingBasic_5000Nodes_10000Pods"
    d.mkdir()
    (d / "report.json").write_text(json.dumps({"runs": {"kube-scheduler": run, "ours": ours, "ceiling": {"pods_per_s": 800.0}},
                                               "ratios": {"ours_over_kube_scheduler": {"pods_per_s": 1.5},
                                                          "pods_per_s_fraction_of_ceiling": {"ours": 0.9375}}}))
    (tmp_path / "affinity_SchedulingPodAffinity_5000Nodes_5000Pods").mkdir()  # a run that left no report
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["table", str(tmp_path)]) == 0
    rows = buf.getvalue().splitlines()
    assert len(rows) == 4
    assert rows[2].startswith("| affinity/SchedulingPodAffinity/5000Nodes_5000Pods | 70 | run failed")
    assert rows[3] == ("| misc/SchedulingBasic/5000Nodes_10000Pods | 680 | 500 | 750 | 1.50x | 800 | 94% | 1.5 | 0.5 | "
                       "11000/0, 11000/0 | OK, OK |")


@needs_go
def test_a_case_with_its_own_scheduler_configuration_runs_under_it_in_both_schedulers(cases, tmp_path):
    """The batching cases bring a KubeSchedulerConfiguration (PodTopologySpread without default
    constraints): it becomes the workload's profile, which each scheduler is given under its own
    name, and our configuration parses it."""
    from cluster_scheduler.config import load_config
    from cluster_scheduler.loadtest.harness import Settings, profiled_config

    wl = cases["batching/HostPortConflict/10Nodes_10Pods_10BatchSize"].workload
    assert wl is not None and wl.scheduler_profile["pluginConfig"][0]["name"] == "PodTopologySpread"
    cfg = load_config(profiled_config(Settings(), wl.scheduler_profile, tmp_path / "c.yaml"))
    assert cfg.profile.scheduler_name == "cluster-scheduler"
    assert cases["misc/SchedulingBasic/5000Nodes_10000Pods"].workload.scheduler_profile is None


def test_a_scheduler_configuration_we_cannot_honour_is_not_runnable(tmp_path):
    from cluster_scheduler.loadtest.scheduler_perf import NotRunnable, _scheduler_profile

    def profile(text: str):
        (tmp_path / "c.yaml").write_text(text)
        return _scheduler_profile(tmp_path, "c.yaml")

    head = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
    assert profile(head + "profiles: [{pluginConfig: [{name: PodTopologySpread, args: {defaultingType: List}}]}]")
    for text, why in (
            ("profiles: [{pluginConfig: [{name: PodTopologySpread, args: {defaultingType: List, defaultConstraints: "
             "[{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway}]}}]}]", "not supported"),
            ("percentageOfNodesToScore: 10\n", "percentageOfNodesToScore"),
            ("profiles: [{schedulerName: a}, {schedulerName: b}]", "2 profiles")):
        with pytest.raises(NotRunnable, match=why):
            profile(head + text)
