"""Scheduler configuration: a KubeSchedulerConfiguration-shaped profile plus our runtime settings.

The file reads like upstream's (`profiles[].plugins.score.enabled[{name, weight}]`,
`pluginConfig[].args.scoringStrategy`), so a Kubernetes engineer can review it; the `runtime`
section holds what upstream has no place for (batch size, partitions, binder concurrency).
A broken file gives one ConfigError naming the field, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .plugins.profile import DEFAULT_SCHEDULER_NAME, Profile, ScoringStrategy
from .plugins.registry import DEFAULT_SCORE_WEIGHTS, FILTER_PLUGINS

__all__ = ["DEFAULT_SCHEDULER_NAME", "DEFAULT_SCORE_WEIGHTS", "FILTER_PLUGINS", "ConfigError", "Profile",
           "RuntimeConfig", "SchedulerConfig", "ScoringStrategy", "load_config"]

SCORING_TYPES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")


class ConfigError(ValueError):
    """A configuration problem, worded for the person who wrote the file."""


@dataclass(frozen=True)
class RuntimeConfig:
    batch_size: int = 2000
    partitions: int = 0  # 0 = auto: see auto_partitions
    # where Ray puts the partition actors on a multi-node cluster: "spread" (one per Ray node in turn,
    # Ray's SPREAD strategy, so each works on a machine's CPU of its own) or "default" (Ray's own
    # hybrid policy, which packs a node up to half its CPUs before it moves on)
    partition_placement: str = "spread"
    # Ray custom resources each partition actor / the coordinator actor asks for, to steer them to
    # the Ray nodes (a KubeRay worker group) that declare them with `ray start --resources`
    partition_resources: tuple[tuple[str, float], ...] = ()
    # how long a failed partition actor may take to answer again (Ray restarting it) before it is
    # replaced by a new one: a lost Ray node's actors restart only once the GCS declares it dead
    partition_restart_wait_s: float = 10.0
    volume_bind_timeout_s: float = 600.0  # PreBind: how long a pod waits for its volumes to bind
    coordinator_resources: tuple[tuple[str, float], ...] = ()
    top_k: int = 3
    # while fewer than batch_size pods wait, a batch starts at most this often: a few ms of latency
    # for fewer partition round trips (each costs CPU in every partition whatever its size)
    batch_interval_s: float = 0.1
    qps: float = 5000.0
    burst: int = 10000
    bind_concurrency: int = 64
    # Scheduled events (one per binding) are a courtesy: their own, lower rate, dropped when
    # behind. FailedScheduling events go at qps/burst, like the status patch they explain.
    event_qps: float = 50.0
    event_burst: int = 100
    metrics_port: int = 10259
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 10.0
    unschedulable_flush_s: float = 300.0
    # leader election (upstream's leaderElection section, client-go's defaults): only the holder
    # of the Lease schedules; the others stand by with warm caches
    leader_elect: bool = False
    lease_name: str = "cluster-scheduler"
    lease_namespace: str = "kube-system"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_period_s: float = 2.0


@dataclass(frozen=True)
class SchedulerConfig:
    """Profiles (one per schedulerName, the first is the default) and the runtime settings.
    One scheduler serves every profile: one queue, one set of partitions, one ledger; each pod is
    filtered and scored with its own profile's plugins and weights."""

    profiles: tuple[Profile, ...] = (Profile(),)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @property
    def profile(self) -> Profile:
        return self.profiles[0]

    @property
    def scheduler_names(self) -> tuple[str, ...]:
        return tuple(p.scheduler_name for p in self.profiles)


def _expect(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def _int(v: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    _expect(isinstance(v, int) and not isinstance(v, bool), where, f"must be an integer, got {v!r}")
    if lo is not None:
        _expect(v >= lo, where, f"must be >= {lo}, got {v}")
    if hi is not None:
        _expect(v <= hi, where, f"must be <= {hi}, got {v}")
    return v


def _resources(v: Any, where: str) -> tuple[tuple[str, int], ...]:
    _expect(isinstance(v, list) and v, where, "must be a non-empty list of {name, weight}")
    out = []
    for i, r in enumerate(v):
        w = f"{where}[{i}]"
        _expect(isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"], w, "needs a name")
        out.append((r["name"], _int(r.get("weight", 1), w + ".weight", 1, 100)))
    return tuple(out)


def parse_profile(doc: dict, where: str = "profiles[0]") -> Profile:
    _expect(isinstance(doc, dict), where, "must be a mapping")
    name = doc.get("schedulerName", DEFAULT_SCHEDULER_NAME)
    _expect(isinstance(name, str) and name, where + ".schedulerName", "must be a non-empty string")
    weights = dict(DEFAULT_SCORE_WEIGHTS)
    disabled: set[str] = set()
    preemption = True
    plugins = doc.get("plugins") or {}
    _expect(isinstance(plugins, dict), where + ".plugins", "must be a mapping")
    for point, section in plugins.items():
        w = f"{where}.plugins.{point}"
        _expect(point in ("filter", "score", "multiPoint", "postFilter"), w,
                "only filter, score, postFilter and multiPoint are configurable")
        _expect(isinstance(section, dict), w, "must be a mapping with enabled/disabled lists")
        if point == "postFilter":
            for kind in ("disabled", "enabled"):
                for i, p in enumerate(section.get(kind) or []):
                    pn = p.get("name") if isinstance(p, dict) else None
                    _expect(pn in ("DefaultPreemption", "*"), f"{w}.{kind}[{i}]",
                            f"the only PostFilter plugin is DefaultPreemption, got {pn!r}")
                    preemption = kind == "enabled"
            continue
        for i, p in enumerate(section.get("disabled") or []):
            pn = p.get("name") if isinstance(p, dict) else None
            _expect(isinstance(pn, str), f"{w}.disabled[{i}]", "needs a name")
            if pn == "*":
                if point in ("score", "multiPoint"):
                    weights.clear()
                if point in ("filter", "multiPoint"):
                    disabled |= set(FILTER_PLUGINS)
                if point == "multiPoint":
                    preemption = False
                continue
            if point == "multiPoint" and pn == "DefaultPreemption":
                preemption = False
                continue
            known = pn in FILTER_PLUGINS or pn in DEFAULT_SCORE_WEIGHTS
            _expect(known, f"{w}.disabled[{i}]", f"unknown plugin {pn!r}")
            if point in ("score", "multiPoint"):
                weights.pop(pn, None)
            if point in ("filter", "multiPoint") and pn in FILTER_PLUGINS:
                disabled.add(pn)
        for i, p in enumerate(section.get("enabled") or []):
            pn = p.get("name") if isinstance(p, dict) else None
            wi = f"{w}.enabled[{i}]"
            _expect(isinstance(pn, str), wi, "needs a name")
            if point == "multiPoint" and pn == "DefaultPreemption":
                preemption = True
                continue
            _expect(pn in FILTER_PLUGINS or pn in DEFAULT_SCORE_WEIGHTS, wi, f"unknown plugin {pn!r}")
            if point in ("score", "multiPoint") and pn in DEFAULT_SCORE_WEIGHTS:
                weights[pn] = _int(p.get("weight", DEFAULT_SCORE_WEIGHTS[pn]), wi + ".weight", 0, 100)
            if point in ("filter", "multiPoint"):
                disabled.discard(pn)
    scoring = ScoringStrategy()
    balanced = (("cpu", 1), ("memory", 1))
    hard_weight = 1
    for i, pc in enumerate(doc.get("pluginConfig") or []):
        w = f"{where}.pluginConfig[{i}]"
        _expect(isinstance(pc, dict) and isinstance(pc.get("name"), str), w, "needs a name")
        args = pc.get("args") or {}
        _expect(isinstance(args, dict), w + ".args", "must be a mapping")
        if pc["name"] == "NodeResourcesFit":
            ss = args.get("scoringStrategy") or {}
            _expect(isinstance(ss, dict), w + ".args.scoringStrategy", "must be a mapping")
            typ = ss.get("type", "LeastAllocated")
            _expect(typ in SCORING_TYPES, w + ".args.scoringStrategy.type", f"must be one of {', '.join(SCORING_TYPES)}")
            res = _resources(ss["resources"], w + ".args.scoringStrategy.resources") if "resources" in ss else scoring.resources
            shape: tuple[tuple[int, int], ...] = ()
            if typ == "RequestedToCapacityRatio":
                rtc = ss.get("requestedToCapacityRatio") or {}
                pts = rtc.get("shape") if isinstance(rtc, dict) else None
                sw = w + ".args.scoringStrategy.requestedToCapacityRatio.shape"
                _expect(isinstance(pts, list) and pts, sw, "needs at least one {utilization, score} point")
                shape = tuple((_int(p.get("utilization"), f"{sw}[{j}].utilization", 0, 100),
                               _int(p.get("score"), f"{sw}[{j}].score", 0, 10))
                              for j, p in enumerate(pts) if isinstance(p, dict) or _expect(False, sw, "points must be mappings"))
                _expect(all(a[0] < b[0] for a, b in zip(shape, shape[1:])), sw, "utilization must increase strictly")
            scoring = ScoringStrategy(typ, res, shape)
        elif pc["name"] == "NodeResourcesBalancedAllocation":
            balanced = _resources(args.get("resources", [{"name": "cpu"}, {"name": "memory"}]), w + ".args.resources")
        elif pc["name"] == "InterPodAffinity":
            hard_weight = _int(args.get("hardPodAffinityWeight", 1), w + ".args.hardPodAffinityWeight", 0, 100)
        elif pc["name"] == "PodTopologySpread":
            # default constraints are not applied (docs/engine.md, "Known differences"): upstream's
            # System defaults, which only touch pods a Service or controller selects, stay a known
            # difference; a List of them cannot be honoured, so it is refused, and an empty List is exact
            typ = args.get("defaultingType", "System")
            _expect(typ in ("System", "List"), w + ".args.defaultingType", "must be System or List")
            _expect(typ == "System" or not args.get("defaultConstraints"), w + ".args.defaultConstraints",
                    "default topology spread constraints are not supported (an empty list is)")
        else:
            _expect(pc["name"] in FILTER_PLUGINS or pc["name"] in DEFAULT_SCORE_WEIGHTS, w, f"unknown plugin {pc['name']!r}")
    return Profile(name, tuple(weights.items()), frozenset(disabled), scoring, balanced, hard_weight, preemption)


PLACEMENTS = ("spread", "default")
# Ray's own resource names: set with num_cpus/num_gpus/memory, never as custom resources
_RAY_BUILTIN = ("CPU", "GPU", "memory", "object_store_memory")


def _ray_resources(v: Any, where: str) -> tuple[tuple[str, float], ...]:
    _expect(isinstance(v, dict), where, f"must be a mapping of Ray resource name to amount, got {v!r}")
    out = []
    for name, amount in v.items():
        _expect(isinstance(name, str) and name and name not in _RAY_BUILTIN, where,
                f"{name!r}: must be a custom resource name (not one of {', '.join(_RAY_BUILTIN)})")
        _expect(isinstance(amount, (int, float)) and not isinstance(amount, bool) and amount > 0,
                f"{where}.{name}", f"must be a positive number, got {amount!r}")
        out.append((name, float(amount)))
    return tuple(out)


def auto_partitions(cpus: float) -> int:
    """`partitions: auto`: one partition per CPU Ray has beyond the coordinator's, at most 8.
    `cpus` is all of the Ray cluster's CPUs (the coordinator's reservation not taken off first).
    On a 2-CPU machine that is one: a second partition there only adds a Ray round trip per
    batch on the cores the apiserver needs (docs/benchmarks.md measures both)."""
    return max(1, min(8, int(cpus) - 1))


def parse_runtime(doc: Any) -> RuntimeConfig:
    if doc is None:
        return RuntimeConfig()
    _expect(isinstance(doc, dict), "runtime", "must be a mapping")
    base = RuntimeConfig()
    fields = {
        "batchSize": ("batch_size", 1, 100_000), "partitions": ("partitions", 1, 256),
        "topK": ("top_k", 1, 64), "burst": ("burst", 1, 1_000_000), "eventBurst": ("event_burst", 1, 1_000_000),
        "bindConcurrency": ("bind_concurrency", 1, 4096), "metricsPort": ("metrics_port", 0, 65535),
    }
    kw: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "partitions" and v == "auto":
            kw["partitions"] = 0
        elif k == "partitions" and isinstance(v, str):
            raise ConfigError(f"runtime.partitions: must be an integer or auto, got {v!r}")
        elif k in fields:
            attr, lo, hi = fields[k]
            kw[attr] = _int(v, f"runtime.{k}", lo, hi)
        elif k == "batchIntervalSeconds":
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 10,
                    "runtime.batchIntervalSeconds", f"must be a number from 0 to 10, got {v!r}")
            kw["batch_interval_s"] = float(v)
        elif k == "partitionPlacement":
            _expect(v in PLACEMENTS, "runtime.partitionPlacement", f"must be one of {', '.join(PLACEMENTS)}, got {v!r}")
            kw["partition_placement"] = v
        elif k in ("partitionResources", "coordinatorResources"):
            kw["partition_resources" if k == "partitionResources" else "coordinator_resources"] = _ray_resources(v, f"runtime.{k}")
        elif k == "leaderElect":
            _expect(isinstance(v, bool), "runtime.leaderElect", f"must be true or false, got {v!r}")
            kw["leader_elect"] = v
        elif k in ("leaseName", "leaseNamespace"):
            _expect(isinstance(v, str) and v, f"runtime.{k}", f"must be a non-empty string, got {v!r}")
            kw["lease_name" if k == "leaseName" else "lease_namespace"] = v
        elif k in ("leaseDurationSeconds", "renewDeadlineSeconds", "retryPeriodSeconds"):
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, f"runtime.{k}", f"must be a positive number, got {v!r}")
            kw[{"leaseDurationSeconds": "lease_duration_s", "renewDeadlineSeconds": "renew_deadline_s",
                "retryPeriodSeconds": "retry_period_s"}[k]] = float(v)
        elif k == "partitionRestartWaitSeconds":
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 600,
                    "runtime.partitionRestartWaitSeconds", f"must be a number from 0 to 600, got {v!r}")
            kw["partition_restart_wait_s"] = float(v)
        elif k == "volumeBindTimeoutSeconds":
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
                    "runtime.volumeBindTimeoutSeconds", f"must be a positive number, got {v!r}")
            kw["volume_bind_timeout_s"] = float(v)
        elif k in ("qps", "eventQps", "backoffInitialSeconds", "backoffMaxSeconds", "unschedulableFlushSeconds"):
            _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, f"runtime.{k}", f"must be a positive number, got {v!r}")
            attr = {"qps": "qps", "eventQps": "event_qps", "backoffInitialSeconds": "backoff_initial_s", "backoffMaxSeconds": "backoff_max_s",
                    "unschedulableFlushSeconds": "unschedulable_flush_s"}[k]
            kw[attr] = float(v)
        else:
            raise ConfigError(f"runtime.{k}: unknown setting")
    out = replace(base, **kw)
    # client-go's constraints: a leader that cannot renew stops before anyone may take over
    _expect(out.lease_duration_s > out.renew_deadline_s, "runtime.leaseDurationSeconds",
            f"must be greater than renewDeadlineSeconds ({out.renew_deadline_s:g})")
    _expect(out.renew_deadline_s > 1.2 * out.retry_period_s, "runtime.renewDeadlineSeconds",
            f"must be greater than 1.2 x retryPeriodSeconds ({out.retry_period_s:g})")
    return out


def load_config(path: str | Path | None) -> SchedulerConfig:
    """Load a config file; None gives the defaults (config/default.yaml mirrors them)."""
    if path is None:
        return SchedulerConfig()
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    try:
        _expect(isinstance(doc, dict), str(p), "must be a mapping (a KubeSchedulerConfiguration)")
        kind = doc.get("kind", "KubeSchedulerConfiguration")
        _expect(kind == "KubeSchedulerConfiguration", "kind", f"must be KubeSchedulerConfiguration, got {kind!r}")
        docs = doc.get("profiles") or [{}]
        _expect(isinstance(docs, list), "profiles", "must be a list of profiles")
        profiles = tuple(parse_profile(d, f"profiles[{i}]") for i, d in enumerate(docs))
        seen: dict[str, int] = {}
        for i, prof in enumerate(profiles):
            _expect(prof.scheduler_name not in seen, f"profiles[{i}].schedulerName",
                    f"{prof.scheduler_name!r} is already the name of profiles[{seen.get(prof.scheduler_name)}]")
            seen[prof.scheduler_name] = i
        return SchedulerConfig(profiles, parse_runtime(doc.get("runtime")))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
