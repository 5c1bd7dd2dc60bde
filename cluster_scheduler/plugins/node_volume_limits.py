"""NodeVolumeLimits (upstream `nodevolumelimits`, CSI): on a node whose CSINode gives a driver an
attach limit (`spec.drivers[].allocatable.count`), the distinct volumes of that driver used by the
node's pods plus the pod's new ones may not exceed it. A volume is known by its `spec.csi` driver
and handle (an in-tree AWS EBS, GCE PD, Azure Disk, Cinder or Portworx volume by its CSI driver's,
model/csi_translation.py); an unbound claim counts as a new volume of its class's provisioner. Which volumes
each placed pod uses per node is kept by `StorageIndex.placed`; the pod's own are in
`PodVolumes.csi`. Dynamic: the answer changes as pods land, so the engine re-checks a row when it
changes. Not counted: VolumeAttachments without a pod, and in-tree volumes inline in a pod spec."""

from __future__ import annotations

import numpy as np

from . import ClassCtx

NAME = "NodeVolumeLimits"
REASON = "node(s) exceed max volume count"


def pre_filter(ctx: ClassCtx) -> bool:
    v = ctx.key.volumes
    return v is not None and bool(v.csi) and bool(ctx.storage.node_limits)


def fits_row(ctx: ClassCtx, row: int) -> bool:
    st = ctx.storage
    node = ctx.table.names[row]
    limits = st.node_limits.get(node)
    if not limits:
        return True
    used = st.attached.get(node, {})
    new: dict[str, set[str]] = {}
    for driver, handle in ctx.key.volumes.csi:
        if driver in limits and handle not in used.get(driver, {}):
            new.setdefault(driver, set()).add(handle)
    return all(len(used.get(d, {})) + len(hs) <= limits[d] for d, hs in new.items())


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    ok = np.fromiter((fits_row(ctx, r) for r in ctx.rows.tolist()), dtype=bool, count=len(ctx.rows))
    return ok, [(~ok, REASON)]
