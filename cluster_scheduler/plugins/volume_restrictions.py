"""VolumeRestrictions: a ReadWriteOncePod claim already used by a placed pod fails the pod on
every node (upstream `volumerestrictions`: the check is cluster-wide). Which claims are in use is
read into the pod's `PodVolumes.rwop_in_use` by `StorageIndex.resolve` (from
`StorageIndex.claim_users`, kept as pods are placed and removed), so the answer is part of the
class key. Upstream reports it as Unschedulable, so preemption may evict the pod holding the claim:
the registry marks the filter `cured_by_eviction`, and preemption looks at the holder's node
(`Preemption._preempt`), where the dry run's re-resolved key sees the claim free once the holder
is gone. Inline disk conflicts (GCE PD, AWS EBS, RBD, iSCSI volumes in the pod spec) are not
checked."""

from __future__ import annotations

import numpy as np

from . import ClassCtx

NAME = "VolumeRestrictions"
REASON_RWOP = ("node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode "
               "already in-use by another pod")


def pre_filter(ctx: ClassCtx) -> bool:
    v = ctx.key.volumes
    return v is not None and v.rwop_in_use


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    none = np.zeros(len(ctx.rows), dtype=bool)
    return none, [(~none, REASON_RWOP)]
