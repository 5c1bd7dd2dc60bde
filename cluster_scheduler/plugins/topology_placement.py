"""Topology-aware gang placement (upstream's TopologyAwareWorkloadScheduling, alpha in 1.37).

A PodGroup whose `spec.schedulingConstraints.topology[0].key` is set must land within one value of
that node label (one rack, one zone). Upstream's PlacementGenerate step (TopologyPlacementGenerator)
makes one placement per value among the nodes that carry the label (only the value its already
scheduled pods use, if any); the gang is simulated in each, restricted to the placement's nodes
(the plugins still read every node, as upstream's snapshot does); and the feasible placements are
ranked by the PlacementScore plugins, each weighted: PodGroupPodsCount (pods of the group placed,
scaled to 0-100 by the best placement's count) and NodeResourcesFit, which scores the placement as
one large node with MostAllocated over the profile's scored resources (the group's proposed pods
added to what the placement's nodes hold). Ties are broken at random upstream; here the first
placement evaluated wins (see `Engine.schedule_gang`, which evaluates them best bound first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.node_table import NodeTable
from ..model.types import CPU, MEMORY, PodInfo
from . import MAX_NODE_SCORE
from .profile import Profile

@dataclass(frozen=True, slots=True)
class Placement:
    """One value of the topology label: the nodes a gang may use in this placement."""

    key: str
    value: int  # the value's id in the table's vocabulary for `key`
    name: str
    rows: np.ndarray

    @property
    def ident(self) -> tuple[str, int]:
        return (self.key, self.value)


def generate(table: NodeTable, rows: np.ndarray, key: str, required: str | None = None) -> list[Placement]:
    """One placement per value of `key` among `rows` (only `required`, when the group already has
    pods placed), by value name."""
    col = table.label_column(key)
    vals = col[rows]
    out = []
    for vid in np.unique(vals[vals >= 0]).tolist():
        name = table.value_name(key, vid)
        if required is None or name == required:
            out.append(Placement(key, vid, name, rows[vals == vid]))
    return sorted(out, key=lambda p: p.name)


def pod_requests(pods: list[PodInfo]) -> dict[str, int]:
    """The pods' requests summed as MostAllocated reads them (non-zero cpu/memory defaults)."""
    out: dict[str, int] = {}
    for p in pods:
        key = p.key
        if key is None:
            continue
        cpu, memory = key.fit_request or (key.nonzero_cpu, key.nonzero_memory)
        out[CPU] = out.get(CPU, 0) + cpu
        out[MEMORY] = out.get(MEMORY, 0) + memory
        for name, v in key.requests:
            if name not in (CPU, MEMORY):
                out[name] = out.get(name, 0) + v
    return out


def fit_score(table: NodeTable, placement: Placement, requested: dict[str, int], profile: Profile) -> int:
    """NodeResourcesFit's placement score: MostAllocated over the placement's summed allocatable,
    with its nodes' (non-zero) requests plus `requested`. An extended resource the group does not
    ask for is left out, as upstream's scorer leaves it."""
    rows = placement.rows
    num = wsum = 0
    for name, w in profile.scoring.resources:
        want = requested.get(name, 0)
        if name == CPU or name == MEMORY:
            col = table.resource_column(name)
            used = int(table.nonzero[rows, 0 if name == CPU else 1].sum())
        else:
            if want == 0 and name != "ephemeral-storage":
                continue
            col = table.resource_column(name)
            used = int(table.req[rows, col].sum())
        alloc = int(table.alloc[rows, col].sum())
        if alloc == 0:
            continue
        num += w * (min(used + want, alloc) * MAX_NODE_SCORE // alloc)
        wsum += w
    return num // wsum if wsum else 0


def pods_count_score(count: int, best: int) -> int:
    """PodGroupPodsCount normalized: the group's pods (placed before and proposed here) over the
    most any feasible placement reaches."""
    return count * MAX_NODE_SCORE // best if best else 0
