"""Filter and score plugins, one module each, named as upstream so `NodeAffinity` is found in one step.

Each module is pure functions over the node table (model/node_table.py) for one equivalence class:
`filter(ctx)` -> boolean mask over the candidate rows (True = passes), plus the reason strings
kube-scheduler would give; scorers return raw int64 scores and a `normalize` as upstream's
NormalizeScore. Modules whose result changes as pods land also have a scalar per-row twin, used by the
engine's lazy heap to rescore only the node that changed (and by tests as the reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..model.node_table import NodeTable
from ..model.pod_index import PodIndex
from ..model.storage import StorageIndex
from ..model.types import PodSpecKey

if TYPE_CHECKING:
    from .profile import Profile

MAX_NODE_SCORE = 100


@dataclass
class ClassCtx:
    """What every plugin reads for one equivalence class: the pod key, the candidate rows, the
    cluster state. Plugins may cache per-class derived data in `memo`."""

    table: NodeTable
    index: PodIndex
    profile: Profile
    key: PodSpecKey
    rows: np.ndarray  # candidate rows (this shard's valid nodes)
    storage: StorageIndex = field(default_factory=StorageIndex)  # claims, volumes, classes (volume filters)
    memo: dict = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return self.index.labels_of(self.key)
