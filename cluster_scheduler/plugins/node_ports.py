"""NodePorts: a host port (protocol, port) may be used once per node and address (0.0.0.0 = all)."""

from __future__ import annotations

import numpy as np

from . import ClassCtx

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    wanted = ctx.key.host_ports
    if not wanted:
        return np.ones(len(ctx.rows), dtype=bool), []
    t = ctx.table
    ok = np.fromiter((not t.ports_conflict(r, wanted) for r in ctx.rows.tolist()), dtype=bool, count=len(ctx.rows))
    return ok, [(~ok, REASON)]


def fits_row(ctx: ClassCtx, row: int) -> bool:
    return not ctx.key.host_ports or not ctx.table.ports_conflict(row, ctx.key.host_ports)
