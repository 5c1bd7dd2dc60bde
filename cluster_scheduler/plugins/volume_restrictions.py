"""VolumeRestrictions: a disk named inline in the pod (GCE PD, AWS EBS, iSCSI, RBD) may not be
mounted on a node where a pod already mounts it, unless both mount it read-only (an EBS volume
never twice); and a ReadWriteOncePod claim already used by a placed pod fails the pod on every
node (upstream `volumerestrictions`: disk conflicts first, then the claim check, which is
cluster-wide).

The disks are part of the class key (`PodSpecKey.disks`) and the node table keeps those of the
pods on each row, so a placement or removal re-checks only its row, as NodePorts does. Which
ReadWriteOncePod claims are in use is read into the pod's `PodVolumes.rwop_in_use` by
`StorageIndex.resolve` (from `StorageIndex.claim_users`, kept as pods are placed and removed), so
that answer is part of the class key too. Both are Unschedulable upstream, so preemption may evict
the pods holding the disk or the claim: on the holder's node, the dry run's removals free the disk
and re-resolve the claim."""

from __future__ import annotations

import numpy as np

from ..model.types import PodSpecKey
from . import ClassCtx

NAME = "VolumeRestrictions"
REASON_DISK = "node(s) had no available disk"
REASON_RWOP = ("node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode "
               "already in-use by another pod")


def rwop_in_use(key: PodSpecKey) -> bool:
    """A ReadWriteOncePod claim of the pod is used by a placed pod (resolved into the key)."""
    return key.volumes is not None and key.volumes.rwop_in_use


def pre_filter(ctx: ClassCtx) -> bool:
    return bool(ctx.key.disks) or rwop_in_use(ctx.key)


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    n = len(ctx.rows)
    ok = np.ones(n, dtype=bool)
    reasons: list[tuple[np.ndarray, str]] = []
    wanted = ctx.key.disks
    if wanted:
        t = ctx.table
        ok = np.fromiter((not t.disks_conflict(r, wanted) for r in ctx.rows.tolist()), dtype=bool, count=n)
        reasons.append((~ok, REASON_DISK))
    if rwop_in_use(ctx.key):
        reasons.append((ok, REASON_RWOP))
        ok = np.zeros(n, dtype=bool)
    return ok, reasons


def fits_row(ctx: ClassCtx, row: int) -> bool:
    if rwop_in_use(ctx.key):
        return False
    return not ctx.key.disks or not ctx.table.disks_conflict(row, ctx.key.disks)
