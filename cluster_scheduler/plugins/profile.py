"""A scheduling profile: the plugin set and weights one `schedulerName` is scheduled with, as
upstream's `KubeSchedulerConfiguration.profiles[]` (config.py parses the file into these)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .registry import DEFAULT_SCORE_WEIGHTS

DEFAULT_SCHEDULER_NAME = "cluster-scheduler"


@dataclass(frozen=True)
class ScoringStrategy:
    type: str = "LeastAllocated"
    resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))
    # RequestedToCapacityRatio shape: (utilization 0-100, score 0-10) points, increasing utilization
    shape: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Profile:
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    score_weights: tuple[tuple[str, int], ...] = tuple(DEFAULT_SCORE_WEIGHTS.items())
    disabled_filters: frozenset[str] = frozenset()
    scoring: ScoringStrategy = field(default_factory=ScoringStrategy)
    balanced_resources: tuple[tuple[str, int], ...] = (("cpu", 1), ("memory", 1))
    hard_pod_affinity_weight: int = 1
    preemption: bool = True  # PostFilter: DefaultPreemption enabled

    def weight(self, plugin: str) -> int:
        return dict(self.score_weights).get(plugin, 0)

    def filter_enabled(self, plugin: str) -> bool:
        return plugin not in self.disabled_filters
