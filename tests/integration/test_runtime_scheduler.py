"""The distributed runtime against a real kube-apiserver: informer, queue, partitions (Ray),
coordinator and binder end to end, checked by the independent placement check.

Each test gets a private control plane (a few seconds to start): the acceptance workloads use fixed
node names and namespaces, and other tests' nodes in the shared cluster would change where pods can
go. One Ray instance is shared by the module.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
import ray
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from cluster_scheduler.api.binder import finish
from cluster_scheduler.check import _list_all, check_placement
from cluster_scheduler.config import load_config
from cluster_scheduler.workload import load_workload
from tests.conftest import create_all
from tests.manifests import pod_group
from tests.integration.conftest import (SCHEDULER, check_cluster, list_pods, node_obj, pod_map, pod_obj, pod_state,
                                       wait_for, wait_settled)

pytestmark = [pytest.mark.apiserver, pytest.mark.ray, pytest.mark.timeout(600)]

WORKLOADS = Path(__file__).resolve().parents[3] / "shared" / "workloads"

def workload_objects(name: str) -> tuple[list[dict], list[dict]]:
    wl = load_workload(WORKLOADS / f"{name}.yaml")
    return list(wl.all_nodes()), list(wl.all_pods(SCHEDULER))


@pytest.mark.parametrize("partitions", [1, 3])
def test_constraints_mix(admin, run_scheduler, partitions):
    nodes, pods = workload_objects("constraints-mix")
    rt = run_scheduler(partitions)
    create_all(admin, nodes, pods)
    counts = wait_settled(admin, "mix", len(pods), timeout=300)
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    assert (counts["bound"], counts["unschedulable"]) == (550, 10), counts
    assert (report.bound, report.unschedulable) == (550, 10)
    assert rt.coordinator.stats.bound == 550
    text = urllib.request.urlopen(rt.metrics_server.url + "/metrics", timeout=10).read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("scheduler_schedule_attempts_total",
                    (("profile", SCHEDULER), ("result", "scheduled")))] == 550
    assert samples[("cluster_scheduler_bindings_total", (("result", "bound"),))] == 550
    assert samples[("cluster_scheduler_partitions", ())] == partitions


# ---- small scenarios --------------------------------------------------------------------------

def test_pods_bound_by_others_count_and_deletes_free_room(admin, run_scheduler):
    """A pod bound by someone else takes room (no over-commit); when it goes, waiting pods fit."""
    core = client.CoreV1Api(admin)
    create_all(admin, [node_obj("n1", "2")], [])
    core.create_namespace({"metadata": {"name": "t"}})
    rt = run_scheduler(1)
    # bound by another client while ours runs: spec.nodeName set directly, no scheduler involved
    finish(core.create_namespaced_pod("t", pod_obj("foreign", "t", "1500m", scheduler="other", node="n1"),
                                      _preload_content=False))
    wait_for(lambda: "n1" in rt.coordinator.nodes and len(rt.coordinator.bound) == 1, 20, "the foreign pod")
    for i in range(2):
        finish(core.create_namespaced_pod("t", pod_obj(f"mine-{i}", "t", "1"), _preload_content=False))
    pods = wait_for(lambda: (m := pod_map(admin, "t")) and all(
        pod_state(m[f"mine-{i}"]) == "unschedulable" for i in range(2)) and m, 30, "Unschedulable verdicts")
    msg = next(c for c in pods["mine-0"]["status"]["conditions"] if c["type"] == "PodScheduled")["message"]
    assert msg == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                   "1 No preemption victims found for incoming pod."), msg
    # the room is freed: both fit now (2 x 1 cpu on a 2-cpu node), each bound exactly once
    core.delete_namespaced_pod("foreign", "t", grace_period_seconds=0)
    wait_for(lambda: all(pod_state(p) == "bound" for n, p in pod_map(admin, "t").items()) and
             len(pod_map(admin, "t")) == 2, 30, "both pods bound")
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    # the apiserver can show a binding before the binder thread has handed its result to the loop
    wait_for(lambda: rt.coordinator.stats.bound == 2, 10, "both binding results counted")
    assert rt.coordinator.stats.scheduled == 2  # each pod sent to the binder once


def test_unschedulable_pod_binds_when_a_fitting_node_arrives(admin, run_scheduler):
    core = client.CoreV1Api(admin)
    create_all(admin, [node_obj("small", "2")], [])
    core.create_namespace({"metadata": {"name": "t"}})
    rt = run_scheduler(2)
    finish(core.create_namespaced_pod("t", pod_obj("big", "t", "4"), _preload_content=False))
    wait_for(lambda: pod_state(pod_map(admin, "t")["big"]) == "unschedulable", 30, "Unschedulable")
    wait_for(lambda: _list_all(core.list_namespaced_event, namespace="t",
                               field_selector="reason=FailedScheduling"), 20, "a FailedScheduling event")
    events = _list_all(core.list_namespaced_event, namespace="t", field_selector="reason=FailedScheduling")
    assert events[0]["involvedObject"]["name"] == "big"
    assert events[0]["reportingComponent"] == SCHEDULER
    assert events[0]["type"] == "Warning"
    time.sleep(2)  # nothing changes: the verdict is not re-posted
    assert len(_list_all(core.list_namespaced_event, namespace="t", field_selector="reason=FailedScheduling")) == 1
    finish(core.create_node(node_obj("large", "8"), _preload_content=False))
    p = wait_for(lambda: (q := pod_map(admin, "t")["big"]) and pod_state(q) == "bound" and q, 30, "binding")
    assert p["spec"]["nodeName"] == "large"
    assert {c["type"]: c["status"] for c in p["status"]["conditions"]}["PodScheduled"] == "True"
    wait_for(lambda: _list_all(core.list_namespaced_event, namespace="t", field_selector="reason=Scheduled"),
             20, "a Scheduled event")
    ev = _list_all(core.list_namespaced_event, namespace="t", field_selector="reason=Scheduled")[0]
    assert ev["message"] == "Successfully assigned t/big to large"
    assert rt.coordinator.stats.bound == 1
    assert rt.events.busy == rt.binder.busy  # Scheduled events wait while bindings are in flight


def test_killed_partitions_are_recreated_and_nothing_is_lost(admin, run_scheduler):
    """One partition is killed and restarted by Ray, another killed for good (replaced): every
    pod still ends bound exactly once, within capacity."""
    nodes = [node_obj(f"k-{i:02d}", "4", labels={"topology.kubernetes.io/zone": f"z{i % 3}"}) for i in range(24)]
    wave1 = [pod_obj(f"w1-{i}", "kill", "500m") for i in range(80)]
    wave2 = [pod_obj(f"w2-{i}", "kill", "500m") for i in range(80)]
    create_all(admin, nodes, [])
    rt = run_scheduler(3, batch_size=20)
    create_all(admin, [], wave1)
    wait_settled(admin, "kill", 80, timeout=120, want_bound=80, stable_s=0.5)
    coord = rt.coordinator
    ray.kill(coord.parts[1], no_restart=False)
    ray.kill(coord.parts[2], no_restart=True)
    create_all(admin, [], wave2)
    counts = wait_settled(admin, "kill", 160, timeout=180, want_bound=160)
    assert counts["bound"] == 160
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    assert coord.stats.partition_failures >= 1
    assert coord.stats.bound == 160 and coord.stats.bind_dropped == 0
    stats = ray.get([p.stats.remote() for p in coord.parts])
    assert all(s["synced"] and s["nodes"] == 24 for s in stats), stats
    assert sum(s["owned"] for s in stats) == 24


def test_partitions_added_and_removed_while_running(admin, run_scheduler):
    nodes = [node_obj(f"r-{i:02d}", "4") for i in range(20)]
    create_all(admin, nodes, [])
    rt = run_scheduler(1, batch_size=10)
    coord = rt.coordinator
    for wave, n in enumerate((3, 2)):
        create_all(admin, [], [pod_obj(f"p{wave}-{i}", "resize", "250m") for i in range(60)])
        coord.request_resize(n)
        wait_for(lambda: len(coord.parts) == n, 30, f"{n} partitions")
    counts = wait_settled(admin, "resize", 120, timeout=120, want_bound=120)
    assert counts["bound"] == 120
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    stats = ray.get([p.stats.remote() for p in coord.parts])
    assert [s["count"] for s in stats] == [2, 2]
    assert sum(s["owned"] for s in stats) == 20 and all(s["nodes"] == 20 for s in stats)
    assert coord.stats.bound == 120


# ---- gangs (Kubernetes 1.37 PodGroups) ------------------------------------------------------------

def gang_members(prefix: str, ns: str, group: str, n: int, cpu: str = "1") -> list[dict]:
    out = []
    for i in range(n):
        p = pod_obj(f"{prefix}{i}", ns, cpu)
        p["spec"]["schedulingGroup"] = {"podGroupName": group}
        out.append(p)
    return out


def test_gangs_across_partitions_whole_or_not_at_all(admin, run_scheduler):
    """Three partitions, 12 CPUs on 6 nodes: two gangs of 8 that each fit alone compete; exactly
    one is bound whole (across shards), the other has no pod bound and one reason; a plain pod is
    not held up. A node added later makes the waiting gang fit: it is then bound whole."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.check import fetch_pod_groups

    ns = "gangs"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(6):
        finish(core.create_node(node_obj(f"g-{i}", "2"), _preload_content=False))
    run_scheduler(3, batch_size=5)
    for g in ("a", "b"):
        finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups",
                            pod_group(g, 8, ns)))
    pods = gang_members("a", ns, "a", 8) + gang_members("b", ns, "b", 8) + [pod_obj("plain", ns, "1")]
    for p in pods:
        finish(rest.request(admin, "POST", f"/api/v1/namespaces/{ns}/pods", p))
    wait_settled(admin, ns, len(pods), timeout=120, want_bound=9)
    state = {name: pod_state(p) for name, p in pod_map(admin, ns).items()}
    winners = {g for g in "ab" if all(state[f"{g}{i}"] == "bound" for i in range(8))}
    assert len(winners) == 1 and state["plain"] == "bound", state
    loser = ({"a", "b"} - winners).pop()
    assert all(state[f"{loser}{i}"] == "unschedulable" for i in range(8)), state
    messages = {c["message"] for p in pod_map(admin, ns).values() if p["metadata"]["name"].startswith(loser)
                for c in p["status"]["conditions"] if c["type"] == "PodScheduled"}
    # 12 CPUs less the winner's 8, and the plain pod's 1 if it went first: 3 or 4 of the 8 fit
    assert len(messages) == 1 and messages <= {f"0/6 nodes are available: 6 Insufficient cpu.; gang {loser} "
                                               f"needs 8, {n} fit" for n in (3, 4)}, messages
    nodes_used = {p["spec"]["nodeName"] for p in pod_map(admin, ns).values() if p["metadata"]["name"][0] in winners}
    assert len(nodes_used) >= 4  # spread over the nodes of every shard

    def conditions() -> dict[str, tuple[str, str]]:
        return {g["metadata"]["name"]: next(((c["status"], c["reason"]) for c in g.get("status", {}).get("conditions", [])
                                            if c["type"] == "PodGroupInitiallyScheduled"), ("", ""))
                for g in fetch_pod_groups(admin) if g["metadata"]["namespace"] == ns}
    winner = next(iter(winners))
    wait_for(lambda: conditions() == {winner: ("True", "Scheduled"), loser: ("False", "Unschedulable")}, 30,
             f"PodGroupInitiallyScheduled True on {winner}, False on {loser}: {conditions()}")

    for i in range(6, 9):  # room for the loser: 6 more CPUs
        finish(core.create_node(node_obj(f"g-{i}", "2"), _preload_content=False))
    wait_settled(admin, ns, len(pods), timeout=120, want_bound=17)
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    groups = fetch_pod_groups(admin)
    report = check_placement(_list_all(core.list_node), list_pods(admin), scheduler_name=SCHEDULER,
                             pod_groups=groups)
    assert (report.gangs_whole, report.gangs_unbound) == (2, 0), report.summary()
    wait_for(lambda: conditions() == {"a": ("True", "Scheduled"), "b": ("True", "Scheduled")}, 30,
             "PodGroupInitiallyScheduled True on both")


def test_gangs_kept_to_one_rack_end_to_end(admin, run_scheduler):
    """PodGroups with a topology constraint (TopologyAwareWorkloadScheduling, on in our control
    plane): each gang lands within one rack, the fullest that holds it, across three partitions;
    a gang no rack holds waits with the placements' reason; the check finds no gang split."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.check import fetch_pod_groups

    ns, rack = "tas", "topology.kubernetes.io/rack"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for name, cpu in (("a-0", "2"), ("a-1", "2"), ("b-0", "2"), ("b-1", "2"), ("c-0", "2")):
        finish(core.create_node(node_obj(name, cpu, labels={rack: name[0]}), _preload_content=False))
    finish(core.create_namespaced_pod(ns, pod_obj("held", ns, "1", scheduler="other", node="a-0"),
                                      _preload_content=False))
    run_scheduler(3, batch_size=5)
    topo = {"schedulingConstraints": {"topology": [{"key": rack}]}}

    def racks_of(prefix: str) -> set[str]:
        return {p["spec"].get("nodeName", "")[:1] for name, p in pod_map(admin, ns).items() if name.startswith(prefix)}

    # t (4 x 1 cpu): rack a has 3 cpus free, b 4, c 2: only b holds it, though a is fuller
    # u (3): then a, the only rack left that holds it; v (2): c; w (2): none
    for group, n, want, bound in (("t", 4, "b", 4), ("u", 3, "a", 7), ("v", 2, "c", 9), ("w", 2, None, 9)):
        finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups",
                            pod_group(group, n, ns, **topo)))
        for p in gang_members(group, ns, group, n):
            finish(rest.request(admin, "POST", f"/api/v1/namespaces/{ns}/pods", p))
        wait_settled(admin, ns, bound + 1 + (n if want is None else 0), timeout=120, want_bound=bound + 1)
        if want is not None:
            assert racks_of(group) == {want}, (group, racks_of(group))
    assert all(g["spec"].get("schedulingConstraints") == topo["schedulingConstraints"]
               for g in fetch_pod_groups(admin) if g["metadata"]["namespace"] == ns)  # the apiserver kept it
    messages = {c["message"] for name, p in pod_map(admin, ns).items() if name.startswith("w")
                for c in p["status"]["conditions"] if c["type"] == "PodScheduled"}
    assert len(messages) == 1 and next(iter(messages)).startswith(
        f"0/3 placements of {rack} are available, the closest ("), messages
    report = check_placement(_list_all(core.list_node), list_pods(admin), scheduler_name=SCHEDULER,
                             pod_groups=fetch_pod_groups(admin))
    assert report.ok and report.gangs_whole == 3, report.summary()


def test_gang_bad_input_gets_a_reason_and_nothing_is_bound_half_way(admin, run_scheduler):
    """A PodGroup that never exists, a minCount larger than the group, members for another
    scheduler, members whose priority is not the PodGroup's (upstream refuses the group), a
    PodGroup deleted while its members wait: each member Unschedulable with the reason, no member
    bound, nothing lost; a plain pod beside them is bound and the check is clean."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.check import fetch_pod_groups

    ns = "gang-bad"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(2):
        finish(core.create_node(node_obj(f"b-{i}", "8"), _preload_content=False))
    rt = run_scheduler(2, batch_size=10)

    def post(obj: dict) -> None:
        path = (f"/api/v1/namespaces/{ns}/pods" if obj["kind"] == "Pod"
                else f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups")
        finish(rest.request(admin, "POST", path, obj))

    for name, m in (("big", 5), ("mixed", 2), ("gone", 3)):
        post(pod_group(name, m, ns))
    post(pod_group("priced", 2, ns, priority=10))
    foreign = gang_members("mixed-other", ns, "mixed", 1)
    foreign[0]["spec"]["schedulerName"] = "default-scheduler"
    pods = (gang_members("ghost", ns, "ghost", 2) + gang_members("big", ns, "big", 3)
            + gang_members("mixed", ns, "mixed", 1) + foreign + gang_members("gone", ns, "gone", 2)
            + gang_members("priced", ns, "priced", 2) + [pod_obj("plain", ns, "1")])
    for p in pods:
        post(p)

    def reasons() -> dict[str, str]:
        return {name: next((c["message"] for c in p["status"].get("conditions", [])
                            if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"), "")
                for name, p in pod_map(admin, ns).items()}

    expected = {"ghost0": f'waiting for PodGroup "ghost" in namespace {ns}: it does not exist',
                "big0": "waiting for gang big: fewer than minCount (5) of its pods exist",
                "mixed0": "waiting for gang mixed: 1 of minCount 2 pods use this scheduler; "
                          "1 name another (default-scheduler)",
                "gone0": "waiting for gang gone: fewer than minCount (3) of its pods exist",
                "priced1": "all pods in a single pod group should have the same priority as the pod group's "
                           "priority, got 0 and 10"}
    wait_for(lambda: all(reasons()[k] == v for k, v in expected.items()), 60, f"the reasons: {reasons()}")
    assert pod_state(pod_map(admin, ns)["plain"]) == "bound"

    # the group deleted while its members wait: the podgroup-protection finalizer holds it while
    # they exist; they say so, and a third member does not start the gang
    finish(rest.request(admin, "DELETE", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups/gone"))
    gone = f'PodGroup "gone" in namespace {ns} is being deleted: its pods are not placed'
    wait_for(lambda: reasons()["gone0"] == reasons()["gone1"] == gone, 30, f"gone's reason: {reasons()}")
    post(gang_members("gone", ns, "gone", 3)[2])
    wait_for(lambda: reasons().get("gone2") == gone, 30, f"gone2's reason: {reasons()}")

    state = {name: pod_state(p) for name, p in pod_map(admin, ns).items()}
    assert state.pop("plain") == "bound" and state.pop("mixed-other0") == "pending"
    assert set(state.values()) == {"unschedulable"}, state
    report = check_placement(_list_all(core.list_node), list_pods(admin), scheduler_name=SCHEDULER,
                             pod_groups=fetch_pod_groups(admin))
    assert not [v for v in report.violations if v.kind != "missing_event"], report.summary()
    assert rt.coordinator.stats.bound == 1


# ---- preemption ---------------------------------------------------------------------------------

def prio_pod(name: str, ns: str, cpu: str, prio: int, grace: int | None = 0, labels: dict | None = None,
             node: str | None = None, group: str | None = None) -> dict:
    """A pod of this priority: pending, or running on `node`; a member of PodGroup `group`."""
    p = pod_obj(name, ns, cpu, labels=labels, node=node)
    p["spec"]["priority"] = prio
    if grace is not None:
        p["spec"]["terminationGracePeriodSeconds"] = grace
    if group:
        p["spec"]["schedulingGroup"] = {"podGroupName": group}
    return p


def events_for(admin_api, ns: str, reason: str) -> list[dict]:
    return [e for e in _list_all(client.EventsV1Api(admin_api).list_namespaced_event, namespace=ns)
            if e.get("reason") == reason]


def test_preemption_end_to_end(admin, run_scheduler):
    """Three partitions, nodes full of low pods. Two high pods each evict exactly one low pod
    (with a Preempted event naming the preemptor) and are bound where it ran; a PDB-covered pod is
    spared while an uncovered one can go; a high pod with preemptionPolicy Never and a pod below
    the low ones stay Unschedulable with upstream's words; nothing else is evicted."""
    ns = "preempt"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        finish(core.create_node(node_obj(f"p-{i}", "2"), _preload_content=False))
    client.PolicyV1Api(admin).create_namespaced_pod_disruption_budget(ns, {
        "metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}})
    rt = run_scheduler(3, batch_size=10)
    # placed by hand, so that each high pod has a node where an uncovered pod is the one victim
    # (the second high pod is decided before the first one's victim is seen gone, so a node whose
    # room is held for the first cannot serve it too, in upstream's accounting as in ours)
    where = {"db0": "p-0", "web0": "p-0", "db1": "p-1", "web1": "p-1", "db2": "p-2", "db3": "p-2"}
    create_all(admin, [], [prio_pod(name, ns, "1", 10, labels={"app": name[:-1]}, node=node)
                           for name, node in where.items()])
    wait_settled(admin, ns, 6, timeout=60, want_bound=6)
    placed_before = {n: p["spec"]["nodeName"] for n, p in pod_map(admin, ns).items()}
    never = prio_pod("polite", ns, "1", 1000)
    never["spec"]["preemptionPolicy"] = "Never"
    create_all(admin, [], [prio_pod("high0", ns, "1", 1000), prio_pod("high1", ns, "1", 1000), never,
                           prio_pod("scavenger", ns, "1", 5)])
    wait_for(lambda: all(pod_state(pod_map(admin, ns).get(h, {"spec": {}, "status": {}})) == "bound"
                         for h in ("high0", "high1")), 60, f"both high pods bound: {pod_map(admin, ns).keys()}")
    wait_settled(admin, ns, 8, timeout=60, want_bound=6)
    pods = pod_map(admin, ns)
    gone = sorted(set(placed_before) - set(pods))
    assert gone == ["web0", "web1"], gone  # the PDB-covered db pods were spared
    assert {pods[h]["spec"]["nodeName"] for h in ("high0", "high1")} == {"p-0", "p-1"}
    preempted = events_for(admin, ns, "Preempted")
    assert sorted(e["regarding"]["name"] for e in preempted) == gone
    uids = {pods[h]["metadata"]["uid"] for h in ("high0", "high1")}
    assert {e["related"]["uid"] for e in preempted} == uids
    assert all(e["note"].startswith("Preempted by pod ") for e in preempted)
    msg = {n: next(c["message"] for c in pods[n]["status"]["conditions"] if c["type"] == "PodScheduled")
           for n in ("polite", "scavenger")}
    assert msg["polite"].endswith("preemption: not eligible due to preemptionPolicy=Never.")
    assert msg["scavenger"].endswith("No preemption victims found for incoming pod.")
    assert rt.coordinator.stats.victims == 2 and rt.coordinator.stats.preemptions == 2
    report, _ = check_cluster(admin)
    assert report.ok, report.summary()
    text = urllib.request.urlopen(rt.metrics_server.url + "/metrics", timeout=10).read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("scheduler_preemption_victims_count", ())] == 2
    assert samples[("scheduler_preemption_attempts_total", ())] >= 2


def test_preemption_reads_pdb_status_from_the_disruption_controller(private_cp, admin, run_scheduler):
    """PodDisruptionBudget status as a real cluster has it: upstream's disruption controller
    (kube-controller-manager with only that controller) computes disruptionsAllowed from the Ready
    pods. While the budget allows one disruption, the first preemptor's cheapest victim is a
    covered db pod; once that is gone the controller says 0, and the second preemptor evicts an
    uncovered web pod instead (PDB-violating victims are reprieved first), never the last db pod."""
    from cluster_scheduler.controlplane.controllers import start_controller_manager

    kcm = start_controller_manager(private_cp, ("disruption",))
    try:
        ns = "pdbs"
        core, policy = client.CoreV1Api(admin), client.PolicyV1Api(admin)
        core.create_namespace({"metadata": {"name": ns}})
        for i in range(2):
            finish(core.create_node(node_obj(f"p-{i}", "2"), _preload_content=False))
        # each node: a covered db pod (priority 5) and an uncovered web pod (10)
        low = [prio_pod(f"{app}{i}", ns, "1", prio, labels={"app": app}, node=f"p-{i}")
               for i in range(2) for app, prio in (("db", 5), ("web", 10))]
        create_all(admin, [], low)
        for p in low:  # what a kubelet reports once the containers run: the controller counts Ready pods
            core.patch_namespaced_pod_status(p["metadata"]["name"], ns, {"status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        policy.create_namespaced_pod_disruption_budget(ns, {
            "metadata": {"name": "db"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}})

        def allowed() -> int | None:
            st = policy.read_namespaced_pod_disruption_budget("db", ns).status
            return None if st is None or st.observed_generation is None else st.disruptions_allowed

        wait_for(lambda: allowed() == 1, 60, "the disruption controller's status: 1 disruption allowed")
        rt = run_scheduler(2, batch_size=10)
        create_all(admin, [], [prio_pod("high0", ns, "1", 1000)])
        wait_for(lambda: pod_state(pod_map(admin, ns).get("high0", {"spec": {}})) == "bound", 60, "high0 bound")
        first = sorted({p["metadata"]["name"] for p in low} - set(pod_map(admin, ns)))
        assert len(first) == 1 and first[0].startswith("db"), first  # allowed: the cheapest victim
        wait_for(lambda: allowed() == 0, 60, "the controller's status after the eviction: 0 allowed")
        wait_for(lambda: (b := rt.coordinator._pdb_objects.get((ns, "db"))) is not None
                 and b.get("status", {}).get("disruptionsAllowed") == 0, 30, "the scheduler seeing 0 allowed")
        create_all(admin, [], [prio_pod("high1", ns, "1", 1000)])
        wait_for(lambda: pod_state(pod_map(admin, ns).get("high1", {"spec": {}})) == "bound", 60, "high1 bound")
        pods = pod_map(admin, ns)
        gone = sorted({p["metadata"]["name"] for p in low} - set(pods))
        assert len(gone) == 2 and gone[0].startswith("db") and gone[1].startswith("web"), gone
        assert sum(n.startswith("db") for n in pods) == 1  # the budget's last pod stays
        assert rt.coordinator.stats.victims == 2
        report, _ = check_cluster(admin)
        assert report.ok, report.summary()
    finally:
        kcm.stop()


def test_preemptor_waits_for_a_terminating_victim_and_never_evicts_more(admin, run_scheduler):
    """A victim with a grace period (no kubelet here: it stays terminating): it carries
    DisruptionTarget (PreemptionByScheduler); the preemptor shows nominatedNodeName and waits,
    evicting no one else, and binds once the victim is gone."""
    ns = "preempt-wait"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    finish(core.create_node(node_obj("w-0", "1"), _preload_content=False))
    finish(core.create_node(node_obj("w-1", "1"), _preload_content=False))
    run_scheduler(2, batch_size=10)
    create_all(admin, [], [prio_pod("slow", ns, "1", 1, grace=600), prio_pod("other", ns, "1", 5, grace=0)])
    wait_settled(admin, ns, 2, timeout=60, want_bound=2)
    create_all(admin, [], [prio_pod("high", ns, "1", 100)])

    def victim_terminating():
        p = pod_map(admin, ns).get("slow")
        return p is not None and p["metadata"].get("deletionTimestamp") and p
    slow = wait_for(victim_terminating, 30, "the lowest-priority pod to be terminating")
    cond = next(c for c in slow["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (cond["status"], cond["reason"]) == ("True", "PreemptionByScheduler")
    assert cond["message"] == "cluster-scheduler: preempting to accommodate a higher priority pod"
    wait_for(lambda: pod_map(admin, ns)["high"]["status"].get("nominatedNodeName") == slow["spec"]["nodeName"],
             30, "nominatedNodeName on the preemptor")
    time.sleep(3)
    pods = pod_map(admin, ns)
    assert "other" in pods and not pods["other"]["metadata"].get("deletionTimestamp")  # nobody else evicted
    assert pod_state(pods["high"]) != "bound"
    # a pod of lower priority waiting too must not take the room held for the preemptor
    create_all(admin, [], [prio_pod("sneaky", ns, "1", 1)])
    wait_for(lambda: pod_state(pod_map(admin, ns)["sneaky"]) == "unschedulable", 30, "sneaky waiting")
    core.delete_namespaced_pod("slow", ns, grace_period_seconds=0)  # as a kubelet would, finally
    wait_for(lambda: pod_state(pod_map(admin, ns)["high"]) == "bound", 30, "the preemptor bound")
    assert pod_map(admin, ns)["high"]["spec"]["nodeName"] == slow["spec"]["nodeName"]
    time.sleep(2)
    assert pod_state(pod_map(admin, ns)["sneaky"]) == "unschedulable"


def test_preemption_that_cures_an_existing_pods_anti_affinity(admin, run_scheduler):
    """The only node with CPU to spare runs a low pod whose required anti-affinity repels the
    preemptor; the other node is full of medium pods. Evicting the repelling pod (priority 1)
    beats evicting a medium one (priority 50): it goes, and the preemptor binds there."""
    ns = "preempt-aff"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for n in ("roomy", "full"):
        finish(core.create_node(node_obj(n, "4"), _preload_content=False))
    run_scheduler(2, batch_size=10)
    loner = prio_pod("loner", ns, "1", 1, node="roomy")  # placed by hand, as a DaemonSet pod would be
    loner["spec"]["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    medium = [prio_pod(f"m{i}", ns, "1", 50) for i in range(4)]
    for m in medium:
        m["spec"]["nodeName"] = "full"
    create_all(admin, [], [loner, *medium])
    wait_settled(admin, ns, 5, timeout=30, want_bound=5)
    create_all(admin, [], [prio_pod("noisy", ns, "1", 100, labels={"app": "noisy"})])
    wait_for(lambda: pod_state(pod_map(admin, ns).get("noisy", {"spec": {}, "status": {}})) == "bound", 60,
             "the preemptor bound")
    pods = pod_map(admin, ns)
    assert pods["noisy"]["spec"]["nodeName"] == "roomy"
    assert "loner" not in pods and all(f"m{i}" in pods for i in range(4))
    assert [e["regarding"]["name"] for e in events_for(admin, ns, "Preempted")] == ["loner"]


TWO_PROFILES = """
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: cluster-scheduler
- schedulerName: binpack
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
    postFilter:
      disabled: [{name: DefaultPreemption}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
"""


def test_two_profiles_each_pod_scheduled_with_its_own(admin, run_scheduler, tmp_path):
    """One scheduler with two profiles (KubeSchedulerConfiguration.profiles[]), two partitions:
    the default profile's pods spread (LeastAllocated), `binpack`'s pack onto one node
    (MostAllocated); a binpack pod that fits nowhere does not preempt (its profile has no
    PostFilter) and says only why it does not fit, while a default one of the same size does;
    each profile reports its own events and metrics; a pod of another scheduler is left alone."""
    ns = "profiles"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        finish(core.create_node(node_obj(f"n{i}", "4"), _preload_content=False))
    (tmp_path / "config.yaml").write_text(TWO_PROFILES)
    rt = run_scheduler(2, profiles=load_config(tmp_path / "config.yaml"), batch_size=10)
    assert rt.coordinator.scheduler_names == {"cluster-scheduler", "binpack"}
    create_all(admin, [], [prio_pod(f"spread-{i}", ns, "1", 0) for i in range(3)])  # grace 0: no kubelet here
    wait_settled(admin, ns, 3, timeout=60, want_bound=3)
    create_all(admin, [], [pod_obj(f"pack-{i}", ns, "1", scheduler="binpack") for i in range(3)]
               + [pod_obj("foreign", ns, "1", scheduler="nobody")])
    pods = wait_for(lambda: (m := pod_map(admin, ns)) and all(
        pod_state(m[f"pack-{i}"]) == "bound" for i in range(3)) and m, 60, "the binpack pods bound")
    where = {n: p["spec"].get("nodeName") for n, p in pods.items()}
    assert len({where[f"spread-{i}"] for i in range(3)}) == 3, where
    assert len({where[f"pack-{i}"] for i in range(3)}) == 1, where  # packed onto one node, now full
    full = where["pack-0"]
    big_pack = prio_pod("big-pack", ns, "4", 100)
    big_pack["spec"]["schedulerName"] = "binpack"
    create_all(admin, [], [big_pack, prio_pod("big-default", ns, "4", 100)])
    wait_for(lambda: pod_state(pod_map(admin, ns).get("big-default", {"spec": {}})) == "bound", 60,
             "the default profile's pod bound by preemption")
    pods = wait_for(lambda: (m := pod_map(admin, ns)) and pod_state(m["big-pack"]) == "unschedulable" and m,
                    30, "the binpack pod Unschedulable")
    gone = sorted(({f"spread-{i}" for i in range(3)} | {f"pack-{i}" for i in range(3)}) - set(pods))
    assert len(gone) == 1 and gone[0].startswith("spread-") and where[gone[0]] != full, (gone, where)
    assert pods["big-default"]["spec"]["nodeName"] == where[gone[0]]
    msg = next(c["message"] for c in pods["big-pack"]["status"]["conditions"] if c["type"] == "PodScheduled")
    assert msg == "0/3 nodes are available: 3 Insufficient cpu.", msg  # no PostFilter words
    assert not pods["big-pack"]["status"].get("nominatedNodeName")
    assert "nodeName" not in pods["foreign"]["spec"] and not pods["foreign"]["status"].get("conditions")
    assert rt.coordinator.stats.victims == 1
    # each profile reports as its own controller
    by = {}
    for reason in ("Scheduled", "FailedScheduling", "Preempted"):
        for e in events_for(admin, ns, reason):
            by.setdefault((e["regarding"]["name"], reason), set()).add(e["reportingController"])
    assert by[("big-pack", "FailedScheduling")] == {"binpack"}
    assert by[(gone[0], "Preempted")] == {"cluster-scheduler"}
    text = urllib.request.urlopen(rt.metrics_server.url + "/metrics", timeout=10).read().decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("scheduler_schedule_attempts_total", (("profile", "binpack"), ("result", "scheduled")))] == 3
    assert samples[("scheduler_schedule_attempts_total",
                    (("profile", "cluster-scheduler"), ("result", "scheduled")))] == 3
    wait_for(lambda: {e["reportingController"] for e in events_for(admin, ns, "Scheduled")
                      if e["regarding"]["name"].startswith("pack-")} == {"binpack"}, 30,
             "the binpack pods' Scheduled events, reported by binpack")


def test_a_gang_preempts_as_one_end_to_end(admin, run_scheduler):
    """Three partitions; four 2-CPU nodes full of batch pods (priority 1) and one with two pods of
    priority 50 (a PreferNoSchedule taint: upstream's gang preemption schedules the gang as usual
    on the cluster without its lower pods, so emptied nodes would tie). A gang of three 2-CPU pods
    (priority 100, the PodGroup's too) evicts the six batch pods of three nodes, across shards
    (each with DisruptionTarget and a Preempted event), the other pods are reprieved, its members show nominatedNodeName and are bound together
    once the victims are gone; the placement check finds the gang whole and every victim lower."""
    from cluster_scheduler.api import rest
    from cluster_scheduler.check import fetch_pod_groups

    ns = "gang-preempt"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(5):
        n = node_obj(f"gp-{i}", "2")
        if i == 4:  # its pods' room scores lower: the gang goes elsewhere (emptied nodes tie otherwise)
            n["spec"] = {"taints": [{"key": "slow", "effect": "PreferNoSchedule"}]}
        finish(core.create_node(n, _preload_content=False))
    rt = run_scheduler(3, batch_size=10)
    low = []
    for i in range(8):
        p = prio_pod(f"batch{i}", ns, "1", 1)
        p["spec"]["nodeName"] = f"gp-{i // 2}"
        low.append(p)
    for i in range(2):
        p = prio_pod(f"mid{i}", ns, "1", 50)
        p["spec"]["nodeName"] = "gp-4"
        low.append(p)
    create_all(admin, [], low)
    wait_settled(admin, ns, 10, timeout=60, want_bound=10)
    group = pod_group("train", 3, ns)
    group["spec"]["priority"] = 100
    finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups", group))
    members = gang_members("train", ns, "train", 3, cpu="2")
    for p in members:
        p["spec"]["priority"] = 100
        finish(rest.request(admin, "POST", f"/api/v1/namespaces/{ns}/pods", p))
    wait_for(lambda: all(pod_state(pod_map(admin, ns).get(f"train{i}", {"spec": {}})) == "bound" for i in range(3)),
             90, "the gang bound")
    pods = pod_map(admin, ns)
    gone = sorted({p["metadata"]["name"] for p in low} - set(pods))
    assert len(gone) == 6 and all(n.startswith("batch") for n in gone), gone  # the mid pods reprieved
    assert len({pods[f"train{i}"]["spec"]["nodeName"] for i in range(3)}) == 3
    preempted = events_for(admin, ns, "Preempted")
    assert sorted(e["regarding"]["name"] for e in preempted) == gone
    # as upstream 1.37: the gang's PodGroup is the preemptor, in the event and the condition
    train = client.SchedulingV1beta1Api(admin).read_namespaced_pod_group("train", ns).to_dict()
    assert {(e["related"]["kind"], e["related"]["name"], e["related"]["uid"]) for e in preempted} == {
        ("PodGroup", "train", train["metadata"]["uid"])}
    assert all(e["note"].startswith(f"Preempted by podgroup {train['metadata']['uid']} on node ") for e in preempted)
    assert rt.coordinator.stats.victims == 6 and not rt.coordinator.preemption.held
    core_pods = _list_all(core.list_pod_for_all_namespaces)
    report = check_placement(_list_all(core.list_node), core_pods, scheduler_name=SCHEDULER,
                             pod_groups=fetch_pod_groups(admin))
    assert report.ok and report.gangs_whole == 1, report.summary()


def test_victims_in_a_pod_group_are_weighed_at_its_priority_end_to_end(admin, run_scheduler):
    """Upstream 1.37 weighs a victim that belongs to a PodGroup at the group's spec.priority, not
    its own. Three full 2-CPU nodes across two partitions: a pod of priority 100 in a PodGroup of
    priority 1, a plain pod of priority 70, and a pod of priority 1 in a PodGroup of priority 1000.
    A pod of priority 60 can evict only the first (by their own priorities it would be the third:
    the lowest)."""
    from cluster_scheduler.api import rest

    ns = "group-victims"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        finish(core.create_node(node_obj(f"gv-{i}", "2"), _preload_content=False))
    for name, prio in (("batch", 1), ("online", 1000)):
        group = pod_group(name, namespace=ns, basic=True, priority=prio)
        finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups", group))
    rt = run_scheduler(2, batch_size=10)
    create_all(admin, [], [prio_pod(name, ns, "2", prio, node=node, group=group) for name, prio, group, node in
                           (("member", 100, "batch", "gv-0"), ("plain", 70, None, "gv-1"),
                            ("guarded", 1, "online", "gv-2"))])
    wait_settled(admin, ns, 3, timeout=60, want_bound=3)
    create_all(admin, [], [prio_pod("svc", ns, "2", 60)])
    wait_for(lambda: pod_state(pod_map(admin, ns).get("svc", {"spec": {}, "status": {}})) == "bound", 60,
             "the preemptor bound")
    pods = pod_map(admin, ns)
    assert sorted(pods) == ["guarded", "plain", "svc"] and pods["svc"]["spec"]["nodeName"] == "gv-0"
    assert [e["regarding"]["name"] for e in events_for(admin, ns, "Preempted")] == ["member"]
    assert rt.coordinator.stats.victims == 1


def test_a_pod_group_disrupted_only_whole_is_evicted_whole_end_to_end(admin, run_scheduler):
    """A PodGroup in disruptionMode All is preempted as one (upstream 1.37's preemption unit): a
    1-CPU pod that needs one of its two members' room evicts both, on two nodes of two partitions,
    each with a Preempted event, and is bound once both are gone; the pods of higher priority stay."""
    from cluster_scheduler.api import rest

    ns = "whole-group"
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(3):
        finish(core.create_node(node_obj(f"gw-{i}", "2"), _preload_content=False))
    group = pod_group("train", namespace=ns, basic=True, priority=1, disruptionMode={"all": {}})
    finish(rest.request(admin, "POST", f"/apis/scheduling.k8s.io/v1beta1/namespaces/{ns}/podgroups", group))
    rt = run_scheduler(2, batch_size=10)
    create_all(admin, [], [prio_pod(name, ns, cpu, prio, node=node, group=group) for name, cpu, prio, group, node in
                           (("train-a", "1", 1, "train", "gw-0"), ("keep", "1", 100, None, "gw-0"),
                            ("train-b", "2", 1, "train", "gw-1"), ("other", "2", 100, None, "gw-2"))])
    wait_settled(admin, ns, 4, timeout=60, want_bound=4)
    create_all(admin, [], [prio_pod("svc", ns, "1", 50)])
    wait_for(lambda: pod_state(pod_map(admin, ns).get("svc", {"spec": {}, "status": {}})) == "bound", 60,
             "the preemptor bound")  # (once its node's victim is gone: the other may still be going)
    wait_for(lambda: sorted(pod_map(admin, ns)) == ["keep", "other", "svc"], 30, "the whole group gone")
    wait_for(lambda: sorted(e["regarding"]["name"] for e in events_for(admin, ns, "Preempted")) ==
             ["train-a", "train-b"], 30, "a Preempted event on each member")
    assert rt.coordinator.stats.victims == 2 and rt.coordinator.stats.preemptions == 1
