"""The load test end to end against real apiservers (small workloads), and its measuring parts
(process-tree CPU, pod outcome tracking, figures) on their own."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cluster_scheduler.loadtest.cpu import TreeCPU
from cluster_scheduler.loadtest.report import RunResult, ratios, summarise
from cluster_scheduler.loadtest.runner import PhaseLog, PodTracker, RunData

NODES, FITTING, TOO_BIG = 20, 100, 5


def tiny_workload(path: Path, name: str = "lt-tiny") -> Path:
    """20 nodes of 4 CPUs; 100 pods of 500m that fit (40 % of the cluster), then 5 pods asking
    for 64 CPUs that fit nowhere and must end Unschedulable."""
    doc = {
        "name": name,
        "ops": [
            {"op": "createNodes", "count": NODES,
             "template": {"status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}},
             "roundRobinLabels": {"topology.kubernetes.io/zone": ["zone-a", "zone-b"]}},
            {"op": "createPods", "count": FITTING, "namespace": "lt", "generateName": "web-",
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                                   "resources": {"requests": {"cpu": "500m",
                                                                              "memory": "1Gi"}}}]}}},
            {"op": "barrier", "timeout": 120},
            {"op": "createPods", "count": TOO_BIG, "namespace": "lt", "generateName": "huge-",
             "template": {"spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                                   "resources": {"requests": {"cpu": "64"}}}]}}},
            {"op": "barrier", "timeout": 120},
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def run_cli(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster_scheduler.cli", "loadtest", *args],
                          capture_output=True, text=True, timeout=timeout)


def assert_files(out: Path) -> dict:
    for name in ("report.json", "report.md"):
        assert (out / name).stat().st_size > 0
    for name in ("bound_over_time.png", "latency_cdf.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return json.loads((out / "report.json").read_text())


def assert_scheduler_run(run: dict) -> None:
    assert run["pods_created"] == FITTING + TOO_BIG
    assert run["bound"] == FITTING
    assert run["unschedulable"] == TOO_BIG
    assert run["pending"] == 0 and run["barrier_timeouts"] == 0 and run["create_errors"] == 0
    assert run["check"]["ok"], run["check"]["summary"]
    assert run["check"]["bound"] == FITTING and run["check"]["unschedulable"] == TOO_BIG
    lat = run["latency_s"]
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert run["pods_per_s"] > 0
    assert run["cpu_s"]["scheduler"] > 0  # the scheduler's process was found and it did work
    assert run["bound_over_time"][-1][1] == FITTING


# ---- end to end -----------------------------------------------------------------------------------


@pytest.mark.apiserver
@pytest.mark.timeout(600)
def test_kube_scheduler_and_ceiling_end_to_end(tmp_path: Path) -> None:
    wl = tiny_workload(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "kube-scheduler", "--ceiling", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = assert_files(out)
    assert list(report["runs"]) == ["ceiling", "kube-scheduler"]
    assert_scheduler_run(report["runs"]["kube-scheduler"])
    ceiling = report["runs"]["ceiling"]
    # the ceiling binds everything round robin, even the pods that fit nowhere
    assert ceiling["bound"] == FITTING + TOO_BIG and ceiling["unschedulable"] == 0
    assert ceiling["check"]["skipped"]
    frac = report["ratios"]["pods_per_s_fraction_of_ceiling"]["kube-scheduler"]
    assert frac > 0
    assert "| bound | 105 | 100 |" in (out / "report.md").read_text()
    assert (out / "logs" / "kube-scheduler.log").stat().st_size > 0



GANG_WORKLOAD = {
    "name": "gangs",
    "ops": [
        {"op": "createObjects", "objects": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "train", "labels": {"team": "ml"}}},
            {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "train"},
             "value": 500},
        ]},
        {"op": "createNodes", "count": 2,
         "template": {"status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "20", "example.com/gpu": "4"}}}},
        # 8 GPUs, three gangs of 4: two bound whole, one with no pod bound
        {"op": "createPods", "count": 12, "namespace": "train", "generateName": "job-",
         "podGroup": {"size": 4, "minCount": 4},
         "template": {"spec": {"priority": 500, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                      "resources": {"requests": {"cpu": "100m", "example.com/gpu": 1},
                                    "limits": {"example.com/gpu": 1}}}]}}},
        {"op": "barrier", "timeout": 120},
    ],
}


@pytest.mark.apiserver
@pytest.mark.timeout(600)
def test_gang_workload_against_kube_scheduler(tmp_path: Path) -> None:
    """createObjects and podGroup against the real 1.37 apiserver: objects are created as given
    (an integer quantity included), each gang's PodGroup before its pods, and the placement check
    counts gangs; kube-scheduler binds two gangs whole and leaves the third with no pod."""
    wl = tmp_path / "gangs.yaml"
    wl.write_text(yaml.safe_dump(GANG_WORKLOAD))
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "kube-scheduler", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = assert_files(out)["runs"]["kube-scheduler"]
    assert (run["bound"], run["unschedulable"], run["create_errors"]) == (8, 4, 0)
    assert run["check"]["ok"], run["check"]["summary"]
    assert (run["check"]["gangs_whole"], run["check"]["gangs_unbound"]) == (2, 1)


@pytest.mark.apiserver
@pytest.mark.timeout(600)
def test_repeat_runs_rounds_and_reports_the_median(tmp_path: Path) -> None:
    wl = tiny_workload(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "none", "--ceiling", "--repeat", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = assert_files(out)
    rates = [r["runs"]["ceiling"]["pods_per_s"] for r in report["rounds"]]
    assert report["median_of_rounds"] == 2 and len(rates) == 2
    assert report["runs"]["ceiling"]["pods_per_s"] == min(rates)
    for i in (1, 2):  # each round keeps its own report and logs
        assert assert_files(out / f"round-{i}")["runs"]["ceiling"]["pods_per_s"] == rates[i - 1]
        assert (out / f"round-{i}" / "logs").is_dir()
    bad = run_cli(str(wl), "--repeat", "0")
    assert bad.returncode != 0 and "--repeat" in bad.stderr and "Traceback" not in bad.stderr

@pytest.mark.apiserver
@pytest.mark.timeout(600)
def test_drain_mode(tmp_path: Path) -> None:
    """Every pod exists before kube-scheduler starts; the backlog drains to the same outcome."""
    wl = tiny_workload(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "kube-scheduler", "--mode", "drain", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = assert_files(out)["runs"]["kube-scheduler"]
    assert run["mode"] == "drain"
    assert run["bound"] == FITTING and run["unschedulable"] == TOO_BIG and run["pending"] == 0
    assert run["check"]["ok"], run["check"]["summary"]
    assert run["latency_s"]["p50"] is None  # creation-to-bind is mostly waiting here: not reported
    assert run["pods_per_s"] > 0
    # the scheduler started only after the last pod was created
    phases = [p["op"] for p in run["phases"]]
    assert phases[-1] == "Drain" and "Barrier" not in phases
    assert run["scheduler_start_to_last_bind_s"] >= run["duration_s"]


@pytest.mark.apiserver
@pytest.mark.timeout(600)
@pytest.mark.skipif(importlib.util.find_spec("cluster_scheduler.runtime") is None,
                    reason="cluster_scheduler/runtime.py (our scheduler's runtime) is not in this checkout")
def test_ours_end_to_end(tmp_path: Path) -> None:
    wl = tiny_workload(tmp_path / "tiny.yaml")
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "ours", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = assert_files(out)
    assert_scheduler_run(report["runs"]["ours"])


@pytest.mark.apiserver
@pytest.mark.timeout(300)
def test_against_a_running_cluster(tmp_path: Path) -> None:
    """--kubeconfig: the cluster and its scheduler are someone else's; --scheduler-pid finds the CPU."""
    from cluster_scheduler.controlplane.cluster import start_control_plane
    from cluster_scheduler.controlplane.peer import start_kube_scheduler

    wl = tiny_workload(tmp_path / "tiny.yaml", name="lt-existing")
    with start_control_plane(tmp_path / "cp", bench=True) as cp:
        peer = start_kube_scheduler(cp, qps=5000, burst=10000)
        try:
            out = tmp_path / "out"
            proc = run_cli(str(wl), "--kubeconfig", str(cp.admin_kubeconfig), "--scheduler",
                           "kube-scheduler", "--scheduler-pid", str(peer.process.pid),
                           "--output", str(out))
            assert proc.returncode == 0, proc.stdout + proc.stderr
            report = assert_files(out)
            assert_scheduler_run(report["runs"]["kube-scheduler"])
            # both runs on one cluster would collide on pod names: refused up front
            proc = run_cli(str(wl), "--kubeconfig", str(cp.admin_kubeconfig), "--ceiling")
            assert proc.returncode == 2 and "only one run" in proc.stderr
        finally:
            peer.stop()


def test_bad_workload_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nops: [{op: createPods, count: -1, template: {}}]\n")
    proc = run_cli(str(bad), "--scheduler", "kube-scheduler")
    assert proc.returncode == 2
    assert "count" in proc.stderr and "Traceback" not in proc.stderr


# ---- the measuring parts --------------------------------------------------------------------------


def test_tree_cpu_counts_descendants_including_exited_ones() -> None:
    """A parent that spawns a busy grandchild: the grandchild's CPU counts while it runs and
    still counts after it has exited."""
    script = ("import subprocess, sys, time\n"
              "c = subprocess.Popen([sys.executable, '-c', "
              "'import time\\nt=time.process_time()\\nwhile time.process_time()-t<0.6: pass'])\n"
              "c.wait(); time.sleep(5)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        tree = TreeCPU()
        tree.add_root(parent.pid)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and tree.seconds() < 0.5:
            tree.sample()
            time.sleep(0.05)
        seen = tree.seconds()
        assert seen >= 0.5, tree.by_command()
        time.sleep(0.5)
        tree.sample()  # the grandchild is gone now; its time must not be lost
        assert tree.seconds() >= seen
        baseline = tree.snapshot()
        assert tree.seconds(since=baseline) == 0  # nothing new since the snapshot
    finally:
        parent.kill()
        parent.wait()


def _pod(name: str, node: str | None = None, unschedulable: bool = False) -> dict:
    pod = {"metadata": {"namespace": "ns", "name": name}, "spec": {}, "status": {}}
    if node:
        pod["spec"]["nodeName"] = node
    if unschedulable:
        pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False",
                                        "reason": "Unschedulable"}]
    return pod


def test_tracker_counts_only_created_pods_and_settles() -> None:
    tr = PodTracker()
    tr.on_pod(_pod("a", node="n1"), 1.0)  # the watch can beat the create call's return
    tr.on_created("ns/a", 0.5)
    tr.on_created("ns/b", 0.6)
    tr.on_pod(_pod("other", node="n1"), 1.0)  # not created by this run: not counted
    assert tr.counts() == (2, 1, 0, 0)
    assert not tr.wait_settled(2, timeout=0.05)
    tr.on_pod(_pod("b", unschedulable=True), 2.0)
    assert tr.counts() == (2, 1, 1, 0)
    assert tr.wait_settled(2, timeout=0.05)
    tr.on_pod(_pod("b", node="n2"), 3.0)  # later bound after all: moves, done count unchanged
    assert tr.counts() == (2, 2, 0, 0) and tr.done_created == 2
    tr.on_pod(_pod("b", node="n3"), 4.0)  # only the first bind counts
    assert tr.bound_at["ns/b"] == 3.0 and tr.node_of["ns/b"] == "n2"


def test_tracker_withdrawn_and_gated_pods_and_narrowed_barriers() -> None:
    """Pods the workload deletes itself are done and neither bound nor preempted; a gated pod is
    attempted (done for a barrier) and reported apart; a narrowed barrier waits for its own pods,
    until bound if it says so."""
    tr = PodTracker()
    for k in "abcd":
        tr.on_created(f"ns/{k}", 0.0)
    tr.on_pod(_pod("a", node="n1"), 1.0)
    tr.withdraw("ns/a")  # bound, then deleted by the workload: no longer bound, and not preempted
    tr.on_deleted(_pod("a", node="n1"), 2.0)
    tr.withdraw("ns/b")  # never bound: done
    tr.on_pod(_pod("b", node="n1"), 2.5)  # (a bind racing the delete is not counted)
    gated = _pod("c")
    gated["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]
    tr.on_pod(gated, 3.0)
    assert tr.counts() == (4, 0, 1, 0) and tr.gated == {"ns/c"} and not tr.deleted_at
    assert tr.wait_settled(3, timeout=0.05) and not tr.wait_settled(4, timeout=0.05)
    assert tr.wait_done(["ns/a", "ns/b", "ns/c"], until_bound=False, timeout=0.05)
    assert not tr.wait_done(["ns/c"], until_bound=True, timeout=0.05)
    assert tr.wait_done(["ns/a", "ns/c"], until_bound=True, timeout=0.05, at_least=1)
    tr.on_pod(_pod("c", unschedulable=True), 4.0)  # gates removed, then tried: unschedulable, not gated
    assert tr.gated == set() and tr.counts() == (4, 0, 1, 0)
    tr.on_pod(_pod("c", node="n2"), 5.0)
    assert tr.wait_done(["ns/c"], until_bound=True, timeout=0.05)
    data = RunData(created=tr.created, bound_at=tr.bound_at, node_of=tr.node_of, unschedulable=tr.unschedulable,
                   create_errors={}, withdrawn=tr.withdrawn, gated=tr.gated, deleted_at=tr.deleted_at)
    s = summarise("ours", "s", data, cpu={}, check=None, timings={}).summary
    assert (s["bound"], s["unschedulable"], s["pending"], s["preempted"], s["withdrawn"]) == (1, 0, 1, 0, 2)


def _run_data(created: dict[str, float], bound: dict[str, float]) -> RunData:
    return RunData(created=created, bound_at=bound, node_of={k: "n" for k in bound},
                   unschedulable=set(), create_errors={}, phases=[PhaseLog("CreatePods", 1)])


def test_summary_figures_and_ratios() -> None:
    created = {f"ns/p{i}": float(i) for i in range(10)}  # one pod per second
    bound = {f"ns/p{i}": i + 0.5 for i in range(10)}  # each bound 0.5 s later
    fast = summarise("ours", "cluster-scheduler", _run_data(created, bound),
                     cpu={"scheduler": 2.0}, check={"ok": True, "violations_by_kind": {}}, timings={})
    s = fast.summary
    assert s["bound"] == 10 and s["pending"] == 0
    assert s["duration_s"] == 9.5 and s["pods_per_s"] == round(10 / 9.5, 2)
    assert s["latency_s"]["p50"] == 0.5 and s["latency_s"]["p99"] == 0.5
    np.testing.assert_allclose(fast.bind_times, np.arange(10) + 0.5)
    slow_bound = {k: v + 1.5 for k, v in bound.items()}  # 2 s latency, ends 1.5 s later
    slow = summarise("kube-scheduler", "default-scheduler", _run_data(created, slow_bound),
                     cpu={"scheduler": 4.0}, check={"ok": True, "violations_by_kind": {}}, timings={})
    r = ratios([fast, slow])["ours_over_kube_scheduler"]
    assert r["latency_p50"] == 0.25 and r["scheduler_cpu_s"] == 0.5
    assert r["pods_per_s"] == round(fast.summary["pods_per_s"] / slow.summary["pods_per_s"], 3)


def test_targets_say_met_or_missed_and_by_how_much() -> None:
    from cluster_scheduler.loadtest.report import targets

    created = {f"ns/p{i}": float(i) for i in range(10)}
    ok = {"ok": True, "violations_by_kind": {}}

    def run(label: str, delay: float, end_shift: float = 0.0, check=ok) -> RunResult:
        bound = {k: v + delay + (end_shift if k == "ns/p9" else 0.0) for k, v in created.items()}
        return summarise(label, "s", _run_data(created, bound), cpu={}, check=check, timings={})

    ceiling = run("ceiling", 0.1, check=None)
    kube = run("kube-scheduler", 0.5, end_shift=40.0)  # 10 pods in ~50 s
    ours = run("ours", 0.2, check={"ok": False, "violations_by_kind": {"resources": 2}})
    got = {t["target"]: t for t in targets([ceiling, kube, ours], nodes=10_000)}
    assert not got["zero placement violations (ours)"]["met"]
    assert "2 violation" in got["zero placement violations (ours)"]["detail"]
    assert got["zero placement violations (kube-scheduler)"]["met"]
    assert got[">= 80% of the ceiling's pods/s"]["met"]
    assert got["ahead of kube-scheduler (pods/s)"]["met"]
    assert got["lower p99 latency than kube-scheduler"]["met"]
    # 5x kube-scheduler is ~1.0 pods/s; 80% of the ceiling (~0.88) is lower: the target is capped
    capped = [t for name, t in got.items() if name.startswith("5x")]
    assert len(capped) == 1 and "capped" in capped[0]["target"]
    small = {t["target"] for t in targets([ceiling, kube, ours], nodes=100)}
    assert not any(name.startswith("5x") for name in small)  # small workloads: no 5x target
    slow = run("ours", 3.0, end_shift=60.0)
    missed = {t["target"]: t for t in targets([ceiling, kube, slow], nodes=100)}
    assert not missed[">= 80% of the ceiling's pods/s"]["met"]
    assert "missed by" in missed[">= 80% of the ceiling's pods/s"]["detail"]
    assert not missed["lower p99 latency than kube-scheduler"]["met"]
    # the machine's speed, probed at each run's start and end: a ratio across a large drift is
    # flagged, one within the tolerance is not (and runs without a probe are taken as they are)
    assert got[">= 80% of the ceiling's pods/s"]["reliable"]
    ceiling.summary["machine_speed"] = {"start": 1000.0, "end": 1000.0}
    ours.summary["machine_speed"] = {"start": 1300.0, "end": 1500.0}
    drifted = {t["target"]: t for t in targets([ceiling, kube, ours], nodes=100)}[">= 80% of the ceiling's pods/s"]
    assert not drifted["reliable"] and "+40%" in drifted["detail"]
    ours.summary["machine_speed"] = {"start": 1050.0, "end": 1100.0}
    steady = {t["target"]: t for t in targets([ceiling, kube, ours], nodes=100)}[">= 80% of the ceiling's pods/s"]
    assert steady["reliable"] and "machine ran" not in steady["detail"]



def test_median_of_rounds_reports_every_round() -> None:
    """--repeat: each scheduler's median run by pods/s (the lower middle for an even count) makes
    the report, and every round's figures and ratios are listed beside it."""
    from cluster_scheduler.loadtest.report import build_report, markdown, median_runs

    created = {f"ns/p{i}": float(i) for i in range(10)}
    ok = {"ok": True, "violations_by_kind": {}}

    def run(label: str, delay: float) -> RunResult:
        bound = {k: v + delay + (delay if k == "ns/p9" else 0.0) for k, v in created.items()}
        return summarise(label, "s", _run_data(created, bound), cpu={}, check=ok, timings={})

    delays = [(0.1, 5.0, 1.0), (0.1, 4.0, 9.0), (0.1, 6.0, 2.0)]  # ceiling, kube, ours per round
    rounds = [[run("ceiling", c), run("kube-scheduler", k), run("ours", o)] for c, k, o in delays]
    median = median_runs(rounds)
    assert [r.label for r in median] == ["ceiling", "kube-scheduler", "ours"]
    assert median[1] is rounds[0][1] and median[2] is rounds[2][2]  # the middle rates: 5 s, 2 s
    assert median_runs(rounds[:2])[2] is rounds[1][2]  # even count: the lower of the two
    report = build_report("w", "w.yaml", ["loadtest"], median, {}, nodes=10, rounds=rounds)
    assert report["median_of_rounds"] == 3 and [r["round"] for r in report["rounds"]] == [1, 2, 3]
    assert report["rounds"][1]["runs"]["ours"]["pods_per_s"] == rounds[1][2].summary["pods_per_s"]
    assert report["ratios"]["ours_over_kube_scheduler"]["pods_per_s"] == round(
        median[2].summary["pods_per_s"] / median[1].summary["pods_per_s"], 3)
    md = markdown(report)
    assert "median run (by pods/s) of 3 rounds" in md and "## Rounds" in md
    assert len([ln for ln in md.splitlines() if ln.startswith(("| 1 |", "| 2 |", "| 3 |"))]) == 3
    assert "rounds" not in build_report("w", "w.yaml", ["loadtest"], rounds[0], {}, rounds=rounds[:1])

def test_create_all_paces_calls_at_the_ops_rate() -> None:
    """`rate: R` in a createPods op: call i starts no earlier than i/R seconds in; errors are
    reported per key and do not stop the rest."""
    import threading

    from cluster_scheduler.loadtest.kube import CallError
    from cluster_scheduler.loadtest.runner import _create_all

    starts: list[float] = []
    lock = threading.Lock()

    def make(i: int):
        def fn() -> None:
            with lock:
                starts.append(time.monotonic())
            if i == 3:
                raise CallError(422, "invalid")
        return fn

    done: dict[str, float] = {}
    errors: dict[str, str] = {}
    t0 = time.monotonic()
    made = _create_all(((f"k{i}", make(i)) for i in range(11)), 11, 8, 50.0,
                       done.__setitem__, errors.__setitem__, threading.Event())
    assert made == 11 and len(done) == 10 and errors == {"k3": "422 invalid"}
    assert max(starts) - t0 >= 10 / 50.0 - 0.01  # the 11th call waited for its slot
    starts.clear()
    t0 = time.monotonic()
    _create_all(((f"k{i}", make(i + 100)) for i in range(11)), 11, 8, 0.0,
                done.__setitem__, errors.__setitem__, threading.Event())
    assert max(starts) - t0 < 0.15  # rate 0: as fast as possible


def test_settled_speed_probe_waits_for_two_probes_that_agree(monkeypatch):
    """A first probe caught in another run's teardown (slow) is not the one reported."""
    from cluster_scheduler.loadtest import cpu

    seq = iter([700.0, 1000.0, 1020.0, 1500.0])
    monkeypatch.setattr(cpu, "speed_probe", lambda: next(seq))
    monkeypatch.setattr(cpu.time, "sleep", lambda s: None)
    assert cpu.settled_speed_probe() == 1020.0
    seq2 = iter([100.0, 200.0, 300.0])
    monkeypatch.setattr(cpu, "speed_probe", lambda: next(seq2))
    assert cpu.settled_speed_probe(tries=3) == 300.0  # never settled: the last one


def preemption_workload(path: Path) -> Path:
    """preemption-2k in small: 10 nodes filled by 40 low pods; 10 high pods each need one victim;
    then 3 high pods that never preempt and 3 pods below the low ones."""
    def pods(name: str, ns: str, count: int, prio: int, cpu: str, **spec) -> dict:
        return {"op": "createPods", "count": count, "namespace": ns, "generateName": f"{name}-",
                "template": {"spec": {"priority": prio, "terminationGracePeriodSeconds": 0, **spec,
                                      "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                                      "resources": {"requests": {"cpu": cpu}}}]}}}
    doc = {"name": "lt-preempt", "ops": [
        {"op": "createNodes", "count": 10,
         "template": {"status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}}},
        pods("batch", "batch", 40, 10, "1"), {"op": "barrier", "timeout": 120},
        pods("online", "online", 10, 1000, "1"), {"op": "barrier", "timeout": 180},
        pods("polite", "online", 3, 1000, "1", preemptionPolicy="Never"),
        pods("scavenger", "batch", 3, 5, "1"), {"op": "barrier", "timeout": 120}]}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.apiserver
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_preemption_workload_both_schedulers(tmp_path: Path) -> None:
    """Both schedulers preempt exactly one victim per high pod; the load test counts the victims,
    checks each had a lower priority than its preemptor and a Preempted event, and reports the
    preemption rate and the high pods' latency on their own."""
    wl = preemption_workload(tmp_path / "preempt.yaml")
    out = tmp_path / "out"
    proc = run_cli(str(wl), "--scheduler", "both", "--output", str(out), timeout=880)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = assert_files(out)
    for label in ("ours", "kube-scheduler"):
        run = report["runs"][label]
        if label == "ours":
            assert (run["bound"], run["preempted"], run["unschedulable"], run["pending"]) == (40, 10, 6, 0), run
        else:  # it may evict for a preemptor that then lands elsewhere, and a lower pod takes the room
            assert run["preempted"] >= 10 and run["pending"] == 0, run
        assert run["check"]["ok"], run["check"]["summary"]
        assert run["check"]["preempted"] == run["preempted"]
        assert run["preemptions_per_s"] is None or run["preemptions_per_s"] > 0
        assert {"1", "3"} <= set(run["latency_by_op_s"])  # ops whose pods were bound: batch, online
    assert "preemptions_per_s" in report["ratios"]["ours_over_kube_scheduler"]
    assert "preempted (victims evicted)" in (out / "report.md").read_text()


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is needed to find upstream's suite")
def test_scheduler_perf_case_side_by_side(tmp_path: Path) -> None:
    """An upstream scheduler_perf case, read from the module cache, through both schedulers: the
    same outcome, only the measured op's pods timed."""
    listed = run_cli("--scheduler-perf", "--list", timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "misc/SchedulingBasic/5000Nodes_10000Pods" in listed.stdout and " runnable" in listed.stdout
    out = tmp_path / "sp"
    proc = run_cli("--scheduler-perf", "misc/SchedulingBasic/5Nodes", "--scheduler", "both", "--output", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = assert_files(out)
    assert set(report["runs"]) == {"ours", "kube-scheduler"}
    for s in report["runs"].values():
        assert (s["bound"], s["unschedulable"], s["pending"]) == (15, 0, 0), s
        assert s["timed_pods"] == 10 and s["check"]["ok"]
    bad = run_cli("--scheduler-perf", "dra/SchedulingWithResourceClaimTemplate/5000pods_500nodes", timeout=120)
    assert bad.returncode != 0 and "DRA" in bad.stderr


@pytest.mark.skipif(shutil.which("go") is None, reason="Go is needed to find upstream's suite")
@pytest.mark.parametrize("case,bound,preempted,withdrawn,schedulers", [
    ("volumes/SchedulingMigratedInTreePVs/5Nodes", 15, 0, 0, "ours"),
    ("volumes/PreemptionPVs/5Nodes", 10, 15, 0, "both"),
    ("default_preemption/PreemptionPodGroupDisruptionMode/FastTest_PodGroupDisruptionMode_All", 1, 4, 0, "ours"),
    ("misc/SchedulingDeletedPodsWithFinalizers/10Node_100DeletingPods", 10, 0, 10, "ours"),
    ("event_handling/EventHandlingPodAdd/10Pods", 41, 0, 0, "ours"),
    ("event_handling/EventHandlingPodUpdate/1Node_10Pods", 70, 0, 0, "ours")])
def test_scheduler_perf_cases_that_need_more_than_pods(tmp_path: Path, case: str, bound: int, preempted: int,
                                                       withdrawn: int, schedulers: str) -> None:
    """scheduler_perf's volume cases (a pre-bound PV and claim per pod, bound by the real PV
    controller before the pods; CSINodes with attach limits; preemptors with volumes), deletePods
    in the background (pods with finalizers, deleted before or after binding), and event handling
    (pods a bound pod's spread domain unblocks, narrowed barriers) and PodGroups preempted only
    whole (two groups of two pods, across both nodes, for one preemptor), and updateAny (pods
    unblocked by their own updates, tolerations added and gates lifted, and by their blockers'
    labels changed and requests scaled down through `resize`) reach kube-scheduler's outcome
    (the figures here; kube-scheduler itself runs beside ours on the preemption case, the others'
    side-by-side runs are in docs/benchmarks.md: CI time)."""
    out = tmp_path / "sp"
    proc = run_cli("--scheduler-perf", case, "--scheduler", schedulers, "--output", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = assert_files(out)
    assert len(report["runs"]) == (2 if schedulers == "both" else 1)
    for s in report["runs"].values():
        assert (s["bound"], s["unschedulable"], s["pending"], s["preempted"], s.get("withdrawn", 0),
                s["barrier_timeouts"]) == (bound, 0, 0, preempted, withdrawn, 0), s
        assert s["check"]["ok"], s["check"]["summary"]
