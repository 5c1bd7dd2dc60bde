"""`cluster-scheduler loadtest`: run a workload against our scheduler and the upstream
kube-scheduler side by side (and, with --ceiling, against no scheduler at all), then write
report.json, report.md and two plots."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cluster_scheduler.loadtest.harness import CEILING, KUBE, OURS, Settings, default_scheduler_config, say


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "loadtest", help="run a workload against the schedulers and compare them",
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("workload", nargs="?", help="workload file (see workloads/FORMAT.md)")
    p.add_argument("--scheduler-perf", metavar="SUITE/CASE/WORKLOAD", nargs="?", const="", default=None,
                   help="run a case of upstream's scheduler_perf suite (of the release the control plane "
                        "is built from) instead of a workload file, e.g. misc/SchedulingBasic/5000Nodes_10000Pods; "
                        "with --list, list them")
    p.add_argument("--list", action="store_true",
                   help="with --scheduler-perf: list every case, whether it runs here and why not")
    p.add_argument("--kubeconfig", default=None,
                   help="run against this cluster, its scheduler already running; without it every "
                        "run gets a fresh control plane and its own scheduler")
    p.add_argument("--scheduler", choices=(OURS, KUBE, "both", "none"), default="both",
                   help="which scheduler(s) to measure")
    p.add_argument("--ceiling", action="store_true",
                   help="also measure the ceiling: no scheduler, a trivial in-process binder")
    p.add_argument("--output", type=Path, default=None,
                   help="results folder (default: results/<workload>/<UTC timestamp>/)")
    p.add_argument("--partitions", type=int, default=None, help="passed to `cluster-scheduler run`")
    p.add_argument("--num-cpus", type=int, default=None, help="passed to `cluster-scheduler run`")
    p.add_argument("--scheduler-config", type=Path, default=None,
                   help=f"our scheduler's config (default: {default_scheduler_config()} if it "
                        f"exists, else its built-in defaults)")
    p.add_argument("--qps", type=float, default=5000.0,
                   help="client rate limit of kube-scheduler and the ceiling binder")
    p.add_argument("--burst", type=int, default=10000, help="client burst, as --qps")
    p.add_argument("--create-concurrency", type=int, default=32,
                   help="concurrent create calls for nodes and pods")
    p.add_argument("--bind-concurrency", type=int, default=64, help="the ceiling binder's threads")
    p.add_argument("--probe-timeout", type=float, default=300.0,
                   help="seconds to wait for a scheduler to act on its first (probe) pod")
    p.add_argument("--scheduler-pid", type=int, default=None,
                   help="with --kubeconfig: PID of the running scheduler, to count its CPU")
    p.add_argument("--mode", choices=("stream", "drain"), default="stream",
                   help="stream: pods are created while the scheduler runs (pods/s from first create "
                        "to last bind, latency per pod); drain: every pod is created first, then the "
                        "scheduler starts (pods/s from first to last bind: the scheduler's own rate "
                        "where pod creation would set the pace)")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of every run (each on a fresh control plane, the schedulers taking "
                        "turns); the report shows each scheduler's median run and lists every round. "
                        "For short workloads, whose burst rate swings by about 15%% between "
                        "invocations: an odd count, such as 5")
    p.add_argument("--no-check", action="store_true", help="skip the placement check")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cluster_scheduler.cli import CliError
    from cluster_scheduler.controlplane.binaries import ControlPlaneError
    from cluster_scheduler.loadtest.harness import run_one
    from cluster_scheduler.loadtest.report import build_report, median_runs, write_all
    from cluster_scheduler.workload import WorkloadError, load_workload

    notes: list[str] = []
    if args.scheduler_perf is not None:
        from cluster_scheduler.loadtest import scheduler_perf

        if args.list:
            print(scheduler_perf.format_list(scheduler_perf.load_cases()))
            return 0
        if args.workload or not args.scheduler_perf:
            raise CliError("--scheduler-perf takes a case (SUITE/CASE/WORKLOAD) instead of a workload file; "
                           "--scheduler-perf --list lists them")
        try:
            case = scheduler_perf.find_case(args.scheduler_perf)
        except KeyError as exc:
            raise CliError(str(exc.args[0])) from None
        if case.workload is None:
            raise CliError(f"{case.id} does not run here: {case.reason}")
        workload, notes = case.workload, case.notes
        say(f"scheduler_perf {case.id}: upstream's threshold for kube-scheduler "
            f"{case.threshold or 'none'} pods/s" + "".join(f"; {n}" for n in notes))
    elif args.list or not args.workload:
        raise CliError("a workload file, or --scheduler-perf SUITE/CASE/WORKLOAD (--scheduler-perf --list)")
    else:
        try:
            workload = load_workload(args.workload)
        except WorkloadError as exc:
            raise CliError(str(exc)) from None
    labels = {"both": [KUBE, OURS], "none": []}.get(args.scheduler, [args.scheduler])
    if args.ceiling:
        labels = [CEILING] + labels
    if not labels:
        raise CliError("nothing to run: --scheduler none needs --ceiling")
    if args.kubeconfig and args.mode == "drain" and labels != [CEILING]:
        raise CliError("--mode drain starts the scheduler itself: not with --kubeconfig")
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    if args.kubeconfig and args.repeat > 1:
        raise CliError("with --kubeconfig there is one cluster, so one round (pod names would collide)")
    if args.kubeconfig and len(labels) > 1:
        raise CliError("with --kubeconfig only one run fits one cluster (pod names would collide): "
                       "pick one --scheduler, or --scheduler none --ceiling")
    if OURS in labels and not args.kubeconfig:
        if importlib.util.find_spec("cluster_scheduler.runtime") is None:
            raise CliError("our scheduler's runtime (cluster_scheduler/runtime.py) is not in this "
                           "checkout; use --scheduler kube-scheduler")
        if args.scheduler_config and not args.scheduler_config.is_file():
            raise CliError(f"scheduler config {args.scheduler_config} not found")
    settings = Settings(qps=args.qps, burst=args.burst, create_concurrency=args.create_concurrency,
                        bind_concurrency=args.bind_concurrency, partitions=args.partitions,
                        num_cpus=args.num_cpus, scheduler_config=args.scheduler_config,
                        probe_timeout=args.probe_timeout, check=not args.no_check,
                        mode=args.mode, speed_probe=len(labels) > 1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir: Path = args.output or Path("results") / workload.name / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    say(f"{workload.name}: {workload.node_count} nodes, {workload.pod_count} pods; runs: "
        f"{', '.join(labels)}" + (f", {args.repeat} rounds" if args.repeat > 1 else "") + f"; results in {out_dir}")
    command = (["cluster-scheduler", "loadtest", *sys.argv[2:]] if sys.argv[1:2] == ["loadtest"] else sys.argv)
    rounds: list[list[Any]] = []
    for i in range(args.repeat):
        # rounds take turns (ceiling, kube-scheduler, ours, then again) so a drift of the VM's
        # speed falls on every scheduler alike; each round keeps its own report and logs
        rdir = out_dir if args.repeat == 1 else out_dir / f"round-{i + 1}"
        results = []
        for label in labels:
            try:
                results.append(run_one(label, workload, settings, rdir, kubeconfig=args.kubeconfig,
                                       scheduler_pid=args.scheduler_pid))
            except ControlPlaneError as exc:
                raise CliError(f"[{label}] control plane: {exc}") from None
            except (TimeoutError, RuntimeError) as exc:
                raise CliError(f"[{label}] {exc} (logs in {rdir / 'logs'})") from None
        rounds.append(results)
        if args.repeat > 1:
            write_all(build_report(workload.name, workload.source, command, results, settings.to_dict(),
                                   nodes=workload.node_count), results, rdir)
            say(f"round {i + 1}/{args.repeat}: " + ", ".join(
                f"{r.label} {r.summary['pods_per_s']:.1f} pods/s" for r in results))
    results = median_runs(rounds)
    report = build_report(workload.name, workload.source, command, results, settings.to_dict(),
                          nodes=workload.node_count, rounds=rounds)
    files = write_all(report, results, out_dir)
    print(files["report.md"].read_text())
    for name, path in files.items():
        print(f"{name}: {path}")
    bad = [r.label for rnd in rounds for r in rnd if r.label != CEILING and (
        r.summary["barrier_timeouts"] or r.summary["pending"] or r.summary["create_errors"]
        or not (r.summary["check"] or {}).get("ok", True))]
    if bad:
        bad = list(dict.fromkeys(bad))
        say(f"not clean: {', '.join(bad)} (barrier timeout, pending pods, create errors or a failed check)")
        return 1
    return 0
