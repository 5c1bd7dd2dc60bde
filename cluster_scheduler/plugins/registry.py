"""The plugin registry: every plugin the engine runs, in upstream's filter order, with the
extension points it implements. Config validation, default weights, the engine's filter loop and
its score composition all read this one table, so adding a plugin is its module plus one entry.

The extension points follow upstream's framework (`framework/interface.go`), in the engine's
vectorized form (one call per equivalence class over every candidate node):

- **PreFilter** (`pre_filter`): False when the plugin has nothing to check for this class (upstream's
  `Skip` status), so its filter is not run at all.
- **Filter** (`filter`): a boolean mask over the candidate rows plus the reason strings. A *static*
  filter depends on the node alone; a *dynamic* one changes as pods land, so it also has a row
  form (`row_filter`, compiled once per class) used by the engine's lazy heap and commit checks.
- **Score** (`score`): how the plugin's score composes with the engine's incremental picking:
  `ROW` scores are a function of one node (rescored row by row as pods land: `score_vec` and the
  compiled `row_score`); `NORMALIZED` scores have a node-only raw value normalized over the
  feasible set (`score_raw`, `normalize`; the engine keeps the normalizer's max exact);
  `INTER_POD` and `SPREAD` read counts over topology domains and are kept by the engine's
  dedicated paths (docs/engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import numpy as np

from . import (ClassCtx, balanced_allocation, inter_pod_affinity, node_affinity, node_name, node_ports,
               node_resources_fit, node_unschedulable, node_volume_limits, pod_topology_spread, taint_toleration,
               volume_binding, volume_restrictions, volume_zone)

FilterResult = tuple[np.ndarray, list[tuple[np.ndarray, str]]]

ROW, NORMALIZED, INTER_POD, SPREAD = "row", "normalized", "inter-pod", "spread"


def _always(ctx: ClassCtx) -> bool:
    return True


def _row_checker(fits_row: Callable[[ClassCtx, int], bool]) -> Callable[[ClassCtx], Callable[[int], bool]]:
    return lambda ctx: partial(fits_row, ctx)


@dataclass(frozen=True)
class Plugin:
    name: str
    filter: Callable[[ClassCtx], FilterResult] | None = None
    dynamic: bool = False  # the filter's answer changes as pods land
    row_filter: Callable[[ClassCtx], Callable[[int], bool]] | None = None  # dynamic filters only
    pre_filter: Callable[[ClassCtx], bool] = _always
    score: str = ""  # ROW, NORMALIZED, INTER_POD, SPREAD; "" = no score
    default_weight: int = 0  # upstream's default profile (pkg/scheduler/apis/config/v1/default_plugins.go)
    pre_score: Callable[[ClassCtx], bool] = _always  # False: the raw score is 0 on every node
    score_vec: Callable[[ClassCtx], np.ndarray] | None = None  # ROW
    row_score: Callable[[ClassCtx], Callable[[int], int]] | None = None  # ROW, compiled per class
    score_raw: Callable[[ClassCtx], np.ndarray] | None = None  # NORMALIZED
    normalize: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # NORMALIZED

    @property
    def filters(self) -> bool:
        return self.filter is not None


def _has_ports(ctx: ClassCtx) -> bool:
    return bool(ctx.key.host_ports)


def _has_hard_spread(ctx: ClassCtx) -> bool:
    return bool(pod_topology_spread.hard(ctx))


def _inter_pod_terms(ctx: ClassCtx) -> bool:
    """Anything to check: the pod's own required terms, or existing pods' anti-affinity."""
    return bool(ctx.key.pod_affinity or ctx.key.pod_anti_affinity or ctx.index.holders)


def _has_preferred_node_affinity(ctx: ClassCtx) -> bool:
    return bool(ctx.key.preferred_node_affinity)


# Filter order as upstream's default profile (v1.37 runs NodeName before NodeUnschedulable): the
# first failing plugin names a node's reason. ImageLocality is left out: images are not modelled.
REGISTRY: tuple[Plugin, ...] = (
    Plugin(node_name.NAME, filter=node_name.filter),
    Plugin(node_unschedulable.NAME, filter=node_unschedulable.filter),
    Plugin(taint_toleration.NAME, filter=taint_toleration.filter, score=NORMALIZED, default_weight=3,
           score_raw=taint_toleration.score_raw, normalize=taint_toleration.normalize),
    Plugin(node_affinity.NAME, filter=node_affinity.filter, score=NORMALIZED, default_weight=2,
           pre_score=_has_preferred_node_affinity, score_raw=node_affinity.score_raw,
           normalize=node_affinity.normalize),
    Plugin(node_ports.NAME, filter=node_ports.filter, dynamic=True, pre_filter=_has_ports,
           row_filter=_row_checker(node_ports.fits_row)),
    Plugin(node_resources_fit.NAME, filter=node_resources_fit.filter, dynamic=True,
           row_filter=node_resources_fit.row_fit_fn, score=ROW, default_weight=1,
           score_vec=node_resources_fit.score, row_score=node_resources_fit.row_score_fn),
    Plugin(volume_restrictions.NAME, filter=volume_restrictions.filter, dynamic=True,
           pre_filter=volume_restrictions.pre_filter, row_filter=_row_checker(volume_restrictions.fits_row)),
    Plugin(node_volume_limits.NAME, filter=node_volume_limits.filter, dynamic=True,
           pre_filter=node_volume_limits.pre_filter, row_filter=_row_checker(node_volume_limits.fits_row)),
    Plugin(volume_binding.NAME, filter=volume_binding.filter, pre_filter=volume_binding.pre_filter,
           score=NORMALIZED, default_weight=1, pre_score=volume_binding.pre_score,
           score_raw=volume_binding.score_raw, normalize=volume_binding.normalize),
    Plugin(volume_zone.NAME, filter=volume_zone.filter, pre_filter=volume_zone.pre_filter),
    Plugin(pod_topology_spread.NAME, filter=pod_topology_spread.filter, dynamic=True,
           pre_filter=_has_hard_spread, row_filter=_row_checker(pod_topology_spread.fits_row),
           score=SPREAD, default_weight=2),
    Plugin(inter_pod_affinity.NAME, filter=inter_pod_affinity.filter, dynamic=True,
           pre_filter=_inter_pod_terms, row_filter=_row_checker(inter_pod_affinity.fits_row),
           score=INTER_POD, default_weight=2),
    Plugin(balanced_allocation.NAME, score=ROW, default_weight=1, score_vec=balanced_allocation.score,
           row_score=balanced_allocation.row_score_fn),
)

BY_NAME: dict[str, Plugin] = {p.name: p for p in REGISTRY}
FILTER_PLUGINS: tuple[str, ...] = tuple(p.name for p in REGISTRY if p.filters)
SCORE_PLUGINS: tuple[str, ...] = tuple(p.name for p in REGISTRY if p.score)
DEFAULT_SCORE_WEIGHTS: dict[str, int] = {p.name: p.default_weight for p in REGISTRY if p.score}
