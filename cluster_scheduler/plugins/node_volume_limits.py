"""NodeVolumeLimits (upstream `nodevolumelimits`, CSI): on a node whose CSINode gives a driver an
attach limit (`spec.drivers[].allocatable.count`), the distinct volumes of that driver used by the
node's pods plus the pod's new ones may not exceed it. A volume is known by its `spec.csi` driver
and handle (an in-tree AWS EBS, GCE PD, Azure Disk, Cinder or Portworx volume, a claim's or inline
in the pod spec, by its CSI driver's, model/csi_translation.py); an unbound claim counts as a new
volume of its class's provisioner. Which volumes each placed pod uses per node is kept by
`StorageIndex.placed`; the pod's own are in `PodVolumes.csi`. Dynamic: the answer changes as pods
land, so the engine re-checks a row when it changes. VolumeAttachments count too
(`StorageIndex.in_use`: a volume still attached where no pod uses it).

Pods with volumes are classes of their own, so the filter runs once per pod: it reads
per-driver limit and count arrays over the candidate rows, kept up to date from the index's log of
changed counts, instead of visiting every node.

VolumeLimitScaling (beta, on in 1.37): a driver whose CSIDriver sets
`preventPodSchedulingIfMissing` takes none of the pod's volumes on a node whose CSINode does not
list it (`<driver> CSI driver is not installed on the node`), checked before the limits."""

from __future__ import annotations

import numpy as np

from . import ClassCtx

NAME = "NodeVolumeLimits"
REASON = "node(s) exceed max volume count"


def not_installed(driver: str) -> str:
    return f"{driver} CSI driver is not installed on the node"


def pre_filter(ctx: ClassCtx) -> bool:
    v = ctx.key.volumes
    return v is not None and bool(v.csi) and bool(ctx.storage.node_limits or _guarded(ctx))


def _guarded(ctx: ClassCtx) -> list[str]:
    """The pod's drivers that must be installed on the node, in a fixed order (upstream's is a
    map's, so with two missing its message may name either)."""
    out = ctx.memo.get("guarded")
    if out is None:  # once per class build: the row form asks on every re-checked row
        mine = {d for d, _ in ctx.key.volumes.csi}
        out = ctx.memo["guarded"] = sorted(d for d in ctx.storage.guarded_drivers() if d in mine)
    return out


def _installed(ctx: ClassCtx, driver: str) -> np.ndarray:
    """Candidate rows whose CSINode lists `driver`, cached while CSINodes and the rows stand."""
    st = ctx.storage
    key = ("installed", driver)
    hit = st.row_cache.get(key)
    if hit is None or hit[0] is not ctx.rows or hit[1] != st.limits_gen:
        names, drivers = ctx.table.names, st.node_drivers
        m = np.fromiter((driver in drivers.get(names[r], ()) for r in ctx.rows.tolist()), dtype=bool,
                        count=len(ctx.rows))
        hit = st.row_cache[key] = (ctx.rows, st.limits_gen, m)
    return hit[2]


def fits_row(ctx: ClassCtx, row: int) -> bool:
    st = ctx.storage
    node = ctx.table.names[row]
    if any(d not in st.node_drivers.get(node, ()) for d in _guarded(ctx)):
        return False
    limits = st.node_limits.get(node)
    if not limits:
        return True
    used = st.attached.get(node, {})  # its pods' volumes: not new (a VolumeAttachment's still is)
    new: dict[str, set[str]] = {}
    for driver, handle in ctx.key.volumes.csi:
        if driver in limits and handle not in used.get(driver, {}):
            new.setdefault(driver, set()).add(handle)
    return all(st.in_use(node, d) + len(hs) <= limits[d] for d, hs in new.items())


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    st = ctx.storage
    handles: dict[str, set[str]] = {}
    for driver, handle in ctx.key.volumes.csi:
        handles.setdefault(driver, set()).add(handle)
    reasons = []
    installed = np.ones(len(ctx.rows), dtype=bool)
    for driver in _guarded(ctx):
        missing = installed & ~_installed(ctx, driver)
        if missing.any():
            reasons.append((missing, not_installed(driver)))
            installed &= ~missing
    ok = np.ones(len(ctx.rows), dtype=bool)
    for driver, hs in handles.items() if st.node_limits else ():
        limit, used, pos = _driver_rows(ctx, driver)
        if limit is None:
            continue
        new = np.full(len(ctx.rows), len(hs), dtype=np.int64)
        for h in hs:  # already attached there: not a new attachment
            for node in st.attached_at.get((driver, h), ()):
                i = pos.get(node)
                if i is not None:
                    new[i] -= 1
        ok &= (limit < 0) | (new == 0) | (used + new <= limit)
    reasons.append((installed & ~ok, REASON))
    return installed & ok, reasons


def _driver_rows(ctx: ClassCtx, driver: str) -> tuple[np.ndarray | None, np.ndarray, dict[str, int]]:
    """For the candidate rows: the driver's attach limit (-1: none), its distinct volumes in use,
    and each node's position. Built once per candidate-row set and limits change, then moved
    along the index's log of changed counts; (None, ...) when no node limits the driver."""
    st = ctx.storage
    cache = st.row_cache
    key = ("attach", driver)
    hit = cache.get(key)
    if hit is None or hit[0] is not ctx.rows or hit[1] != st.limits_gen or hit[2] != st.attach_base:
        names = ctx.table.names
        pos = {names[r]: i for i, r in enumerate(ctx.rows.tolist())}
        limit = np.full(len(ctx.rows), -1, dtype=np.int64)
        for node, limits in st.node_limits.items():
            i = pos.get(node)
            if i is not None and driver in limits:
                limit[i] = limits[driver]
        used = np.zeros(len(ctx.rows), dtype=np.int64)
        limited = limit if (limit >= 0).any() else None
        if limited is not None:
            for node in st.attached.keys() | st.va_handles.keys():
                i = pos.get(node)
                if i is not None:
                    used[i] = st.in_use(node, driver)
        hit = [ctx.rows, st.limits_gen, st.attach_base, len(st.attach_log), limited, used, pos]
        cache[key] = hit
    _, _, _, seen, limit, used, pos = hit
    log = st.attach_log
    if limit is not None and seen < len(log):
        for node, d in log[seen:]:
            if d == driver:
                i = pos.get(node)
                if i is not None:
                    used[i] = st.in_use(node, driver)
    hit[3] = len(log)
    return limit, used, pos
