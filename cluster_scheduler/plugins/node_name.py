"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

import numpy as np

from . import ClassCtx

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    want = ctx.key.node_name
    if not want:
        return np.ones(len(ctx.rows), dtype=bool), []
    row = ctx.table.index.get(want, -1)
    ok = ctx.rows == row
    return ok, [(~ok, REASON)]
