"""NodeUnschedulable: cordoned nodes take only pods that tolerate the unschedulable taint.

We also refuse NotReady nodes and nodes whose status could not be parsed: upstream leaves NotReady to
the node-lifecycle taints, but no controller runs beside a bare apiserver, and our invariant is that
no pod lands on a NotReady node.
"""

from __future__ import annotations

import numpy as np

from ..model.types import NO_SCHEDULE, Taint
from . import ClassCtx

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
REASON_NOT_READY = "node(s) were not ready"
REASON_BROKEN = "node(s) had an invalid status"
UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", NO_SCHEDULE)


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    t, rows = ctx.table, ctx.rows
    tolerated = any(tol.tolerates(UNSCHEDULABLE_TAINT) for tol in ctx.key.tolerations)
    broken = t.broken[rows]
    not_ready = ~t.ready[rows] & ~broken
    cordoned = t.cordoned[rows] & ~broken & ~not_ready & (not tolerated)
    ok = ~(broken | not_ready | cordoned)
    return ok, [(broken, REASON_BROKEN), (not_ready, REASON_NOT_READY), (cordoned, REASON)]
