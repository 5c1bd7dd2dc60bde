"""VolumeZone: a node must be in a zone and region of every volume the pod's bound claims use
(upstream `volumezone`). The volume's topology labels (GA and beta keys, `a__b` for several zones)
were read into the pod's `PodVolumes.zones` by `StorageIndex.resolve`; unbound
WaitForFirstConsumer claims have no volume yet and are skipped. A node with none of the four
labels passes (a single-zone cluster), and a beta key on the volume is also looked up under its GA
key on the node (not the reverse, as upstream)."""

from __future__ import annotations

import numpy as np

from ..model.storage import BETA_TO_GA, ZONE_LABELS
from ..model.types import Requirement
from . import ClassCtx
from .node_affinity import requirement_mask

NAME = "VolumeZone"
REASON = "node(s) had no available volume zone"


def pre_filter(ctx: ClassCtx) -> bool:
    v = ctx.key.volumes
    return v is not None and bool(v.zones)


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    n = len(ctx.rows)
    any_label = np.zeros(n, dtype=bool)
    for k in ZONE_LABELS:
        any_label |= requirement_mask(ctx, Requirement(k, "Exists"))
    ok = np.ones(n, dtype=bool)
    for key, values in ctx.key.volumes.zones:
        m = requirement_mask(ctx, Requirement(key, "In", values))
        ga = BETA_TO_GA.get(key)
        if ga is not None:  # the node lacks the beta key: its GA key is tried
            m |= requirement_mask(ctx, Requirement(key, "DoesNotExist")) & requirement_mask(ctx, Requirement(ga, "In", values))
        ok &= m
    ok |= ~any_label
    return ok, [(~ok, REASON)]
