"""Config loading: a KubeSchedulerConfiguration-shaped file gives the Profile and RuntimeConfig the
engine and runtime use; every kind of mistake gives one ConfigError naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cluster_scheduler.config import (DEFAULT_SCORE_WEIGHTS, ConfigError, Profile, RuntimeConfig,
                                      ScoringStrategy, SchedulerConfig, load_config)

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
  - schedulerName: my-scheduler
    plugins:
      score:
        disabled: [{name: NodeResourcesBalancedAllocation}]
        enabled:
          - {name: NodeAffinity, weight: 5}
      filter:
        disabled: [{name: NodePorts}]
    pluginConfig:
      - name: NodeResourcesFit
        args:
          scoringStrategy:
            type: RequestedToCapacityRatio
            resources: [{name: cpu, weight: 2}, {name: memory, weight: 1}]
            requestedToCapacityRatio:
              shape: [{utilization: 0, score: 0}, {utilization: 100, score: 10}]
      - name: InterPodAffinity
        args: {hardPodAffinityWeight: 7}
runtime:
  batchSize: 500
  partitions: 4
  partitionPlacement: default
  partitionResources: {partition-slot: 1}
  coordinatorResources: {coordinator: 0.5}
  partitionRestartWaitSeconds: 2.5
  topK: 2
  qps: 100.5
  eventQps: 20
  eventBurst: 40
  backoffMaxSeconds: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    return f


def test_defaults_without_file():
    cfg = load_config(None)
    assert cfg == SchedulerConfig()
    assert dict(cfg.profile.score_weights) == DEFAULT_SCORE_WEIGHTS
    assert cfg.profile.scoring == ScoringStrategy()


def test_shipped_default_file_equals_builtin_defaults():
    cfg = load_config(ROOT / "config" / "default.yaml")
    assert cfg.profile == Profile()
    assert cfg.runtime == RuntimeConfig()


def test_good_file(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    p = cfg.profile
    assert p.scheduler_name == "my-scheduler"
    weights = dict(p.score_weights)
    assert "NodeResourcesBalancedAllocation" not in weights
    assert weights["NodeAffinity"] == 5 and weights["TaintToleration"] == 3
    assert p.weight("NodeResourcesBalancedAllocation") == 0
    assert not p.filter_enabled("NodePorts") and p.filter_enabled("NodeResourcesFit")
    assert p.scoring == ScoringStrategy("RequestedToCapacityRatio", (("cpu", 2), ("memory", 1)), ((0, 0), (100, 10)))
    assert p.hard_pod_affinity_weight == 7
    r = cfg.runtime
    assert (r.batch_size, r.partitions, r.top_k, r.qps, r.backoff_max_s) == (500, 4, 2, 100.5, 3.0)
    assert (r.event_qps, r.event_burst) == (20.0, 40)
    assert r.partition_placement == "default" != RuntimeConfig().partition_placement
    assert (r.partition_resources, r.coordinator_resources) == ((("partition-slot", 1.0),), (("coordinator", 0.5),))
    assert r.partition_restart_wait_s == 2.5
    assert r.bind_concurrency == RuntimeConfig().bind_concurrency


def test_config_drives_the_engine(tmp_path):
    """The loaded profile really changes placement: MostAllocated packs onto the fuller node."""
    from tests.plugins.builders import bound, engine, node, pod, where

    text = GOOD.replace("RequestedToCapacityRatio", "MostAllocated")
    prof = load_config(write(tmp_path, text)).profile
    nodes = [node("a", cpu="4", memory="8Gi"), node("b", cpu="4", memory="8Gi")]
    existing = [bound("x", "b", cpu="2", memory="4Gi")]
    assert where(engine(nodes, existing, profile=prof), pod(cpu="1", memory="1Gi")) == "b"
    assert where(engine(nodes, existing), pod(cpu="1", memory="1Gi")) == "a"


@pytest.mark.parametrize("text, where", [
    ("profiles: [\n  - schedulerName: x\n   bad: indent", "not valid YAML"),
    ("kind: KubeSchedulerConfiguration\nprofiles: [{plugins: {score: {enabled: [{name: ImageLocality}]}}}]",
     "unknown plugin 'ImageLocality'"),
    ("profiles: [{plugins: {filter: {disabled: [{name: NoSuchFilter}]}}}]", "unknown plugin 'NoSuchFilter'"),
    ("profiles: [{pluginConfig: [{name: Frobnicate, args: {}}]}]", "unknown plugin 'Frobnicate'"),
    ("profiles: [{plugins: {score: {enabled: [{name: NodeAffinity, weight: 101}]}}}]",
     "profiles[0].plugins.score.enabled[0].weight: must be <= 100, got 101"),
    ("profiles: [{plugins: {score: {enabled: [{name: NodeAffinity, weight: -1}]}}}]",
     "profiles[0].plugins.score.enabled[0].weight: must be >= 0"),
    ("profiles: [{plugins: {score: {enabled: [{name: NodeAffinity, weight: high}]}}}]",
     "must be an integer"),
    ("profiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Fastest}}}]}]",
     "scoringStrategy.type: must be one of LeastAllocated, MostAllocated, RequestedToCapacityRatio"),
    ("profiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: RequestedToCapacityRatio}}}]}]",
     "requestedToCapacityRatio.shape"),
    ("runtime: {batchSize: 10, turbo: true}", "runtime.turbo: unknown setting"),
    ("runtime: {batchSize: 0}", "runtime.batchSize: must be >= 1"),
    ("runtime: {qps: -5}", "runtime.qps: must be a positive number"),
    ("runtime: {partitionPlacement: pack}", "runtime.partitionPlacement: must be one of spread, default"),
    ("runtime: {partitionRestartWaitSeconds: -1}", "runtime.partitionRestartWaitSeconds: must be a number from 0 to 600"),
    ("runtime: {partitionResources: {CPU: 2}}", "runtime.partitionResources: 'CPU': must be a custom resource name"),
    ("runtime: {coordinatorResources: {coordinator: 0}}", "runtime.coordinatorResources.coordinator: must be a positive number"),
    ("runtime: {coordinatorResources: [coordinator]}", "runtime.coordinatorResources: must be a mapping"),
    ("runtime: {eventQps: 0}", "runtime.eventQps: must be a positive number"),
    ("runtime: {eventBurst: 1.5}", "runtime.eventBurst: must be an integer"),
    ("kind: Pod", "kind: must be KubeSchedulerConfiguration"),
    ("profiles: [{}, {}]", "profiles[1].schedulerName: 'cluster-scheduler' is already the name of profiles[0]"),
    ("- just\n- a list", "must be a mapping"),
    ("profiles: {schedulerName: a}", "profiles: must be a list of profiles"),
    ("profiles: [{schedulerName: a}, {schedulerName: b, plugins: {score: {disabled: [{name: Nope}]}}}]",
     "profiles[1].plugins.score.disabled[0]: unknown plugin 'Nope'"),
    ("profiles: [{plugins: {postFilter: {disabled: [{name: NodeAffinity}]}}}]",
     "the only PostFilter plugin is DefaultPreemption, got 'NodeAffinity'"),
    ("profiles: [{plugins: {reserve: {disabled: [{name: VolumeBinding}]}}}]",
     "only filter, score, postFilter and multiPoint are configurable"),
])
def test_errors_are_one_clear_config_error(tmp_path, text, where):
    f = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert where in msg
    assert str(f) in msg  # names the file
    assert "Traceback" not in msg
    if "YAML" not in where:  # the YAML parser's own message may show the offending lines
        assert "\n" not in msg
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_cli_reports_config_error_without_traceback(tmp_path):
    f = write(tmp_path, "runtime: {turbo: true}")
    wl = tmp_path / "w.yaml"
    wl.write_text("name: w\nops:\n  - op: createNodes\n    count: 1\n    template:\n"
                  "      status: {allocatable: {cpu: '1', memory: 1Gi, pods: '1'}}\n")
    proc = subprocess.run([sys.executable, "-m", "cluster_scheduler.cli", "simulate", str(wl), "--config", str(f)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "runtime.turbo: unknown setting" in out
    assert "Traceback" not in out


def test_partitions_auto(tmp_path):
    """`partitions: auto` (the default) resolves at start from Ray's CPUs: one per CPU beyond the
    coordinator's, at least one, at most eight."""
    from cluster_scheduler.config import auto_partitions

    p = tmp_path / "auto.yaml"
    p.write_text("kind: KubeSchedulerConfiguration\nruntime:\n  partitions: auto\n")
    assert load_config(p).runtime.partitions == 0 == RuntimeConfig().partitions
    assert [auto_partitions(c) for c in (0.5, 1, 2, 3, 4, 9, 64)] == [1, 1, 1, 2, 3, 8, 8]
    p.write_text("kind: KubeSchedulerConfiguration\nruntime:\n  partitions: many\n")
    with pytest.raises(ConfigError, match="runtime.partitions"):
        load_config(p)


@pytest.mark.parametrize("ray_cpus, expected", [(2, 1), (4, 3), (4.5, 3), (16, 8)])
def test_partitions_auto_is_the_same_under_the_actor_and_in_process(monkeypatch, ray_cpus, expected):
    """The coordinator actor reserves 0.5 CPU (run.COORDINATOR_CPUS); `auto` must not take the
    coordinator's CPU off twice, so both ways of running give the count the README promises."""
    from cluster_scheduler.run import COORDINATOR_CPUS
    from cluster_scheduler.runtime import SchedulerRuntime

    monkeypatch.setattr(SchedulerRuntime, "_ray_cpus", lambda self: float(ray_cpus))
    cfg = SchedulerConfig(runtime=RuntimeConfig())
    in_process = SchedulerRuntime(cfg, None)
    in_actor = SchedulerRuntime(cfg, None, reserved_cpus=COORDINATOR_CPUS)
    assert in_process.partition_count() == in_actor.partition_count() == expected
    # the per-partition CPU share still leaves the actor's reservation out
    assert in_actor._cpus() == pytest.approx(ray_cpus - COORDINATOR_CPUS)
    fixed = SchedulerRuntime(SchedulerConfig(runtime=RuntimeConfig(partitions=5)), None, reserved_cpus=0.5)
    assert fixed.partition_count() == 5


TWO = """
profiles:
- schedulerName: spread
- schedulerName: binpack
  plugins:
    multiPoint:
      disabled: [{name: DefaultPreemption}, {name: NodeResourcesBalancedAllocation}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
- schedulerName: batch
  plugins:
    postFilter:
      disabled: [{name: "*"}]
"""


def test_several_profiles_each_with_its_own_plugins(tmp_path):
    cfg = load_config(write(tmp_path, TWO))
    assert cfg.scheduler_names == ("spread", "binpack", "batch")
    spread, binpack, batch = cfg.profiles
    assert cfg.profile is spread  # the first is the default
    assert spread == Profile(scheduler_name="spread")
    assert spread.preemption and not binpack.preemption and not batch.preemption
    assert binpack.scoring.type == "MostAllocated" and binpack.weight("NodeResourcesBalancedAllocation") == 0
    assert binpack.filter_enabled("NodeResourcesBalancedAllocation") and binpack.weight("NodeResourcesFit") == 1
    assert batch.score_weights == spread.score_weights
