"""Turn raw run measurements into figures, ratios, `report.json`, `report.md` and two plots.

Ratios are the headline (README: absolute times on shared machines vary from run to run; a ratio
measured in the same invocation on the same machine does not): ours / kube-scheduler, and each
scheduler's throughput as a fraction of the ceiling (the apiserver accepting bindings alone).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from cluster_scheduler.loadtest.runner import RunData

CURVE_POINTS = 300  # bound-over-time samples kept in report.json


@dataclass
class RunResult:
    """One scheduler's run: the figures (JSON-ready) and the arrays the plots need."""

    label: str  # ours | kube-scheduler | ceiling
    summary: dict[str, Any]
    bind_times: np.ndarray = field(repr=False)  # seconds since first create, sorted
    latencies: np.ndarray = field(repr=False)  # seconds, sorted


def summarise(label: str, scheduler_name: str, data: RunData, *, cpu: dict[str, Any],
              check: dict[str, Any] | None, timings: dict[str, float],
              notes: list[str] | None = None) -> RunResult:
    # pods the workload deleted itself are out of every outcome
    withdrawn = {k for k in data.withdrawn if k in data.created}
    created = {k: t for k, t in data.created.items() if k not in withdrawn} if withdrawn else data.created
    ours_bound = {k: t for k, t in data.bound_at.items() if k in created and k not in data.deleted_at}
    gated = sum(1 for k in data.gated if k in created and k not in ours_bound)
    unsched = sum(1 for k in data.unschedulable if k in created and k not in ours_bound) - gated
    drain = data.t_scheduler_start is not None
    # timed pods: all, or those of the measured ops (scheduler_perf's collectMetrics)
    timed = created if data.measured_ops is None else {
        k: t for k, t in created.items() if data.op_of.get(k) in data.measured_ops}
    timed_bound = ours_bound if timed is created else {k: t for k, t in ours_bound.items() if k in timed}
    t_first_create = min(timed.values()) if timed else 0.0
    t_last_create = max(timed.values()) if timed else 0.0
    # stream: first create to last bind; drain: first bind to last bind (the backlog's drain rate)
    t0 = (min(timed_bound.values()) if timed_bound else 0.0) if drain else t_first_create
    bind_times = np.sort(np.fromiter((t - t0 for t in timed_bound.values()), float, len(timed_bound)))
    raw_lat = np.fromiter((timed_bound[k] - created[k] for k in timed_bound), float, len(timed_bound))
    negative = int((raw_lat < 0).sum())  # watch event beat the create call's return: latency ~0
    # in drain mode creation-to-bind time is mostly waiting for the scheduler to start: not shown
    lat = np.sort(np.clip(raw_lat, 0.0, None)) if not drain else np.zeros(0)
    duration = float(bind_times[-1]) if len(bind_times) else 0.0
    notes = list(notes or [])
    if drain:
        notes.append("drain mode: every pod was created before the scheduler started; pods/s is "
                     "first bind to last bind, latency is not measured, scheduler CPU includes start-up")
    if negative:
        notes.append(f"{negative} pod(s) were seen bound before their create call returned; "
                     f"their latency counts as 0")
    if data.late_relist_binds:
        notes.append(f"{data.late_relist_binds} bind(s) first seen in a relist after the watch broke; "
                     f"their bind time is late")
    if data.watch_error:
        notes.append(f"pod watch error (recovered): {data.watch_error}")

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 4) if len(lat) else None

    preempted = sorted(t for k, t in data.deleted_at.items() if k in created)
    span = preempted[-1] - preempted[0] if len(preempted) > 1 else 0.0
    by_op: dict[int, list[float]] = {}
    for k, t in ours_bound.items():
        if k in data.op_of and not drain:
            by_op.setdefault(data.op_of[k], []).append(max(0.0, t - created[k]))
    summary: dict[str, Any] = {
        "scheduler": label,
        "scheduler_name": scheduler_name,
        "pods_created": len(data.created),
        **({"withdrawn": len(withdrawn)} if withdrawn else {}),
        "create_errors": len(data.create_errors),
        "bound": len(ours_bound),
        "unschedulable": unsched,
        "pending": len(created) - len(ours_bound) - unsched - gated - len(preempted),
        **({"gated": gated} if gated else {}),
        "preempted": len(preempted),
        # victims evicted per second, first eviction seen to last (the preemption phase's pace)
        "preemptions_per_s": round(len(preempted) / span, 2) if span > 0 else None,
        "latency_by_op_s": {str(i): {"pods": len(v), "p50": round(float(np.percentile(v, 50)), 4),
                                     "p99": round(float(np.percentile(v, 99)), 4)}
                            for i, v in sorted(by_op.items())},
        "barrier_timeouts": data.barrier_timeouts,
        "pods_per_s": round(len(timed_bound) / duration, 2) if duration > 0 else None,
        **({"timed_pods": len(timed)} if timed is not created else {}),
        "duration_s": round(duration, 3),
        "mode": "drain" if drain else "stream",
        "create_window_s": round(t_last_create - t_first_create, 3),
        **({"scheduler_start_to_last_bind_s": round(max(ours_bound.values()) - data.t_scheduler_start, 3)}
           if drain and ours_bound else {}),
        "latency_s": {"p50": pct(50), "p90": pct(90), "p99": pct(99),
                      "max": round(float(lat[-1]), 4) if len(lat) else None,
                      "mean": round(float(lat.mean()), 4) if len(lat) else None},
        "cpu_s": cpu,
        "check": check,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "phases": [{"op": p.op, "count": p.count, "started_s": round(p.started_s, 3),
                    "took_s": round(p.took_s, 3), **({"settled": p.settled} if p.settled is not None else {})}
                   for p in data.phases],
        "bound_over_time": _curve(bind_times),
        "notes": notes,
    }
    if data.create_errors:
        summary["create_error_example"] = next(iter(data.create_errors.items()))
    return RunResult(label, summary, bind_times, lat)


def _curve(bind_times: np.ndarray) -> list[list[float]]:
    n = len(bind_times)
    if n == 0:
        return []
    idx = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).astype(int))
    return [[round(float(bind_times[i]), 3), int(i + 1)] for i in idx]


def ratios(results: list[RunResult]) -> dict[str, Any]:
    """ours / kube-scheduler for each figure, and pods/s as a fraction of the ceiling."""
    by = {r.label: r.summary for r in results}
    out: dict[str, Any] = {}

    def div(a: Any, b: Any) -> float | None:
        return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None

    if "ours" in by and "kube-scheduler" in by:
        o, k = by["ours"], by["kube-scheduler"]
        out["ours_over_kube_scheduler"] = {
            "pods_per_s": div(o["pods_per_s"], k["pods_per_s"]),
            "latency_p50": div(o["latency_s"]["p50"], k["latency_s"]["p50"]),
            "latency_p90": div(o["latency_s"]["p90"], k["latency_s"]["p90"]),
            "latency_p99": div(o["latency_s"]["p99"], k["latency_s"]["p99"]),
            "scheduler_cpu_s": div(o["cpu_s"].get("scheduler"), k["cpu_s"].get("scheduler")),
        }
        if o.get("preempted") or k.get("preempted"):
            out["ours_over_kube_scheduler"]["preemptions_per_s"] = div(o.get("preemptions_per_s"),
                                                                         k.get("preemptions_per_s"))
    if "ceiling" in by:
        c = by["ceiling"]["pods_per_s"]
        out["pods_per_s_fraction_of_ceiling"] = {
            label: div(s["pods_per_s"], c) for label, s in by.items() if label != "ceiling"}
    return out


LARGE_NODES = 5_000  # from here on the target is 5x kube-scheduler's pods/s (or the ceiling)
SPEED_TOLERANCE = 0.15  # machine speed drift between two runs beyond which their ratio is unreliable


def speed_drift(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """How much faster (> 0) or slower the machine was during run `a` than during run `b`, from
    the speed probe taken at the start and end of each; None when either lacks it."""
    sa, sb = a.get("machine_speed"), b.get("machine_speed")
    if not sa or not sb:
        return None
    mean_a, mean_b = (sa["start"] + sa["end"]) / 2, (sb["start"] + sb["end"]) / 2
    return mean_a / mean_b - 1.0 if mean_b > 0 else None


def targets(results: list[RunResult], nodes: int) -> list[dict[str, Any]]:
    """The project's benchmark targets for our run, each met or missed and by how much: no
    placement violation (both schedulers), at least 80% of the ceiling's pods/s, ahead of
    kube-scheduler, a lower p99, and on large workloads (>= LARGE_NODES nodes) 5x kube-scheduler's
    pods/s, capped by 80% of the ceiling where that is lower (the apiserver is then the limit)."""
    by = {r.label: r.summary for r in results}
    o, k, c = by.get("ours"), by.get("kube-scheduler"), by.get("ceiling")
    out: list[dict[str, Any]] = []

    def add(name: str, met: bool, detail: str, reliable: bool = True) -> None:
        out.append({"target": name, "met": met, "detail": detail, "reliable": reliable})

    for label, s in (("ours", o), ("kube-scheduler", k)):
        if s is not None and s.get("check") is not None and not s["check"].get("skipped"):
            bad = sum((s["check"].get("violations_by_kind") or {}).values())
            add(f"zero placement violations ({label})", bool(s["check"].get("ok")), f"{bad} violation(s)")
    if o is None:
        return out
    ours = o["pods_per_s"] or 0.0
    if c is not None and c.get("pods_per_s"):
        frac = ours / c["pods_per_s"]
        # The ceiling and ours run minutes apart; on a VM whose speed drifts, a ratio across a
        # large drift says more about the VM than about the scheduler.
        drift = speed_drift(o, c)
        reliable = drift is None or abs(drift) <= SPEED_TOLERANCE
        add(">= 80% of the ceiling's pods/s", frac >= 0.8,
            f"{frac:.0%} of {c['pods_per_s']:.1f}" + ("" if frac >= 0.8 else f" (missed by {0.8 - frac:.0%} of the ceiling)")
            + ("" if reliable else f"; the machine ran {drift:+.0%} against its speed during the ceiling run, "
               "so this ratio is not a measurement of the scheduler: re-run"), reliable)
    if k is not None and k.get("pods_per_s"):
        r = ours / k["pods_per_s"]
        add("ahead of kube-scheduler (pods/s)", r > 1.0, f"{r:.2f}x")
        op99, kp99 = (o.get("latency_s") or {}).get("p99"), (k.get("latency_s") or {}).get("p99")
        if op99 is not None and kp99 is not None:
            add("lower p99 latency than kube-scheduler", op99 < kp99, f"{op99:.3f} s vs {kp99:.3f} s")
        if nodes >= LARGE_NODES:
            want = 5.0 * k["pods_per_s"]
            capped = c is not None and c.get("pods_per_s") and 0.8 * c["pods_per_s"] < want
            if capped:
                want = 0.8 * c["pods_per_s"]
            name = "5x kube-scheduler's pods/s" + (" (capped: 80% of the ceiling is lower)" if capped else "")
            add(name, ours >= want, f"{ours:.1f} vs {want:.1f} pods/s ({r:.2f}x kube-scheduler)"
                + ("" if ours >= want else f", missed by {want - ours:.1f} pods/s"))
    return out


def median_runs(rounds: list[list[RunResult]]) -> list[RunResult]:
    """Each scheduler's median run by pods/s over repeated rounds (the lower of the middle two for
    an even count), in the order of the first round. A short workload's burst rate swings by
    about 15% between invocations minutes apart, the ceiling's included; the median of a few
    rounds is the figure one round only samples."""
    out = []
    for label in [r.label for r in rounds[0]]:
        runs = sorted((r for rnd in rounds for r in rnd if r.label == label),
                      key=lambda r: r.summary.get("pods_per_s") or 0.0)
        out.append(runs[(len(runs) - 1) // 2])
    return out


def round_rows(rounds: list[list[RunResult]]) -> list[dict[str, Any]]:
    """Every round's headline figures and ratios (report.json `rounds`), so a median is never read
    without the spread behind it."""
    rows = []
    for i, rnd in enumerate(rounds, 1):
        row: dict[str, Any] = {"round": i, "runs": {r.label: {
            "pods_per_s": r.summary.get("pods_per_s"), "create_window_s": r.summary.get("create_window_s"),
            "p99_s": (r.summary.get("latency_s") or {}).get("p99"),
            "check_ok": (r.summary.get("check") or {}).get("ok")} for r in rnd}}
        row["ratios"] = ratios(rnd)
        rows.append(row)
    return rows


def build_report(workload_name: str, workload_source: str, command: list[str],
                 results: list[RunResult], settings: dict[str, Any], nodes: int = 0,
                 rounds: list[list[RunResult]] | None = None) -> dict[str, Any]:
    """The report of one round, or with `rounds` (several) of each scheduler's median run
    (`results`, see `median_runs`), every round listed."""
    import os

    report = {
        "workload": workload_name,
        "workload_file": workload_source,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "machine": {"cpus": os.cpu_count(), "memory_gib": _mem_gib(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": settings,
        "runs": {r.label: r.summary for r in results},
        "ratios": ratios(results),
        "targets": targets(results, nodes),
    }
    if rounds and len(rounds) > 1:
        report["rounds"] = round_rows(rounds)
        report["median_of_rounds"] = len(rounds)
    return report


def _mem_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


# ---- writing ------------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    runs: dict[str, dict[str, Any]] = report["runs"]
    labels = list(runs)
    m = report["machine"]
    lines = [
        f"# Load test: {report['workload']}",
        "",
        f"{report['date_utc']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, `{' '.join(report['command'])}`",
        "",
    ]
    if report.get("median_of_rounds"):
        lines += [f"Each column is that scheduler's median run (by pods/s) of {report['median_of_rounds']} "
                  "rounds; every round is listed under Rounds.", ""]
    lines += [
        "| | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]

    def row(name: str, get: Any, digits: int = 2) -> None:
        lines.append(f"| {name} | " + " | ".join(_fmt(get(runs[lb]), digits) for lb in labels) + " |")

    row("pods created", lambda s: s["pods_created"])
    row("bound", lambda s: s["bound"])
    row("unschedulable", lambda s: s["unschedulable"])
    row("pending (neither)", lambda s: s["pending"])
    if any(s.get("gated") for s in runs.values()):
        row("gated (schedulingGates)", lambda s: s.get("gated", 0))
    if any(s.get("withdrawn") for s in runs.values()):
        row("deleted by the workload (deletePods, churn)", lambda s: s.get("withdrawn", 0))
    if any(s.get("preempted") for s in runs.values()):
        row("preempted (victims evicted)", lambda s: s.get("preempted"))
        row("preemptions/s (first eviction to last)", lambda s: s.get("preemptions_per_s"), 1)
    drain = any(s.get("mode") == "drain" for s in runs.values())
    row("pods/s (first bind to last bind, drain)" if drain else "pods/s (first create to last bind)",
        lambda s: s["pods_per_s"], 1)
    row("pod creation window (s)", lambda s: s["create_window_s"], 1)
    row("latency p50 (s)", lambda s: s["latency_s"]["p50"], 3)
    row("latency p90 (s)", lambda s: s["latency_s"]["p90"], 3)
    row("latency p99 (s)", lambda s: s["latency_s"]["p99"], 3)
    ops = sorted({i for s in runs.values() for i in (s.get("latency_by_op_s") or {})}, key=int)
    if len(ops) > 1:
        phases = next(iter(runs.values())).get("phases") or []
        for i in ops:
            what = phases[int(i)]["op"] if int(i) < len(phases) else "op"
            row(f"latency p99 (s), op {i} ({what})", lambda s, i=i: ((s.get("latency_by_op_s") or {}).get(i) or {}).get("p99"), 3)
    row("scheduler CPU s (pod phase)", lambda s: s["cpu_s"].get("scheduler"), 1)
    row("scheduler CPU s (incl. start-up)", lambda s: s["cpu_s"].get("scheduler_total"), 1)
    row("apiserver CPU s (pod phase)", lambda s: s["cpu_s"].get("apiserver"), 1)
    row("etcd CPU s (pod phase)", lambda s: s["cpu_s"].get("etcd"), 1)
    row("load test CPU s (pod phase)", lambda s: s["cpu_s"].get("loadtest"), 1)
    row("placement check", lambda s: _check_cell(s["check"]))
    if any("machine_speed" in s for s in runs.values()):  # probed where runs are compared
        row("machine speed (probe, start/end)",
            lambda s: "{start:.0f}/{end:.0f}".format(**s["machine_speed"]) if "machine_speed" in s else None)
    row("machine load average (1 min, start/end)",
        lambda s: "{start}/{end}".format(**s["load_average_1m"]) if "load_average_1m" in s else None)
    row("barrier timeouts", lambda s: s["barrier_timeouts"])
    r = report["ratios"]
    ratio_lines = [f"- ours / kube-scheduler, {k}: {_fmt(v, 3)}"
                   for k, v in (r.get("ours_over_kube_scheduler") or {}).items()]
    ratio_lines += [f"- {k} pods/s as a fraction of the ceiling: {_fmt(v, 3)}"
                    for k, v in (r.get("pods_per_s_fraction_of_ceiling") or {}).items()]
    if ratio_lines:
        lines += ["", "## Ratios", "", *ratio_lines]
    if report.get("rounds"):
        lines += ["", "## Rounds", "", "| round | " + " | ".join(f"{lb} pods/s" for lb in labels)
                  + " | ours / kube-scheduler | ours / ceiling | p99 (s) " + " / ".join(labels) + " |",
                  "|---|" + "---|" * (len(labels) + 3)]
        for rd in report["rounds"]:
            rr, ra = rd["runs"], rd["ratios"]
            lines.append(
                f"| {rd['round']} | " + " | ".join(_fmt((rr.get(lb) or {}).get("pods_per_s"), 1) for lb in labels)
                + f" | {_fmt((ra.get('ours_over_kube_scheduler') or {}).get('pods_per_s'), 2)}"
                + f" | {_fmt((ra.get('pods_per_s_fraction_of_ceiling') or {}).get('ours'), 2)}"
                + " | " + " / ".join(_fmt((rr.get(lb) or {}).get("p99_s"), 3) for lb in labels) + " |")
    if report.get("targets"):
        lines += ["", "## Targets (ours)", ""]
        lines += [f"- {'UNRELIABLE, ' if not t.get('reliable', True) else ''}{'met' if t['met'] else 'MISSED'}: "
                  f"{t['target']}: {t['detail']}" for t in report["targets"]]
    for lb in labels:
        notes = runs[lb].get("notes") or []
        check = runs[lb].get("check") or {}
        if notes or (check and not check.get("ok", True)):
            lines += ["", f"## Notes: {lb}", ""]
            lines += [f"- {n}" for n in notes]
            if check and not check.get("ok", True):
                lines.append(f"- placement check violations by kind: {check.get('violations_by_kind')}")
                lines += [f"  - {e}" for e in check.get("examples", [])]
    lines.append("")
    return "\n".join(lines)


def _check_cell(check: dict[str, Any] | None) -> str:
    if check is None:
        return "n/a"
    if check.get("skipped"):
        return f"n/a ({check['skipped']})"
    return "OK" if check["ok"] else f"FAILED ({sum(check['violations_by_kind'].values())})"


def plot(results: list[RunResult], out_dir: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        if len(r.bind_times):
            ax.plot(np.concatenate([[0.0], r.bind_times]), np.arange(len(r.bind_times) + 1),
                    label=f"{r.label} ({_fmt(r.summary['pods_per_s'], 0)} pods/s)")
    drain = any(r.summary.get("mode") == "drain" for r in results)
    ax.set_xlabel("seconds since the first bind (drain mode)" if drain
                  else "seconds since the first pod was created")
    ax.set_ylabel("pods bound")
    ax.set_title(f"{title}: pods bound over time")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = out_dir / "bound_over_time.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        if len(r.latencies):
            y = np.arange(1, len(r.latencies) + 1) / len(r.latencies)
            ax.plot(r.latencies, y, label=f"{r.label} (p99 {_fmt(r.summary['latency_s']['p99'], 2)} s)")
    ax.set_xlabel("scheduling latency, pod created to bound (s)")
    ax.set_ylabel("fraction of bound pods")
    ax.set_title(f"{title}: latency CDF")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    p = out_dir / "latency_cdf.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(p)
    return paths


def write_all(report: dict[str, Any], results: list[RunResult], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"report.json": out_dir / "report.json", "report.md": out_dir / "report.md"}
    files["report.json"].write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    files["report.md"].write_text(markdown(report))
    for p in plot(results, out_dir, report["workload"]):
        files[p.name] = p
    return files
