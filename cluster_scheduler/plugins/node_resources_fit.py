"""NodeResourcesFit: the pod's effective request must fit every resource's free allocatable,
including the `pods` count and extended resources; scoring is LeastAllocated (default),
MostAllocated or RequestedToCapacityRatio over the configured resources, with upstream's integer
arithmetic and its non-zero cpu/memory defaults.
"""

from __future__ import annotations

import numpy as np

from ..model.types import CPU, MEMORY, PODS
from . import MAX_NODE_SCORE, ClassCtx

NAME = "NodeResourcesFit"
MAX_UTILIZATION = 100


def reason(resource: str) -> str:
    return "Too many pods" if resource == PODS else f"Insufficient {resource}"


def requested_columns(ctx: ClassCtx) -> list[tuple[int, int, str]]:
    """(column, request, name) for every resource the pod asks for (pods included)."""
    memo = ctx.memo.get(NAME)
    if memo is None:
        t = ctx.table
        memo = ctx.memo[NAME] = [(t.resource_column(r), v, r) for r, v in ctx.key.requests]
    return memo


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    t, rows = ctx.table, ctx.rows
    ok = np.ones(len(rows), dtype=bool)
    reasons = []
    for col, v, name in requested_columns(ctx):
        short = t.alloc[rows, col] - t.req[rows, col] < v
        ok &= ~short
        reasons.append((short, reason(name)))
    return ok, reasons


def fits_row(ctx: ClassCtx, row: int, alloc: list | None = None, req: list | None = None) -> bool:
    """Scalar twin of `filter` for one row (the compiled closure, made once per class), or for
    the given alloc/req lists (the reference tests)."""
    if alloc is None:
        return row_fit_fn(ctx)(row)
    for col, v, _ in requested_columns(ctx):
        if alloc[col] - req[col] < v:
            return False
    return True


# ------------------------------------------------------------------ scoring
def _score_resources(ctx: ClassCtx, resources) -> list[tuple[int, int, int, int]]:
    """(weight, alloc column, used source, pod request) per scored resource. used source: 0/1 =
    non-zero cpu/memory column, -1-col = actual requested column. Extended resources the pod does
    not request are skipped, as upstream."""
    t, key = ctx.table, ctx.key
    req = dict(key.requests)
    cpu, memory = key.fit_request or (key.nonzero_cpu, key.nonzero_memory)
    out = []
    for name, w in resources:
        if name == CPU:
            out.append((w, t.resource_column(CPU), 0, cpu))
        elif name == MEMORY:
            out.append((w, t.resource_column(MEMORY), 1, memory))
        else:
            pod_req = req.get(name, 0)
            if pod_req == 0 and name != "ephemeral-storage":
                continue
            c = t.resource_column(name)
            out.append((w, c, -1 - c, pod_req))
    return out


def _rtc_fn(shape: tuple[tuple[int, int], ...]):
    pts = [(u, s * (MAX_NODE_SCORE // 10)) for u, s in shape]

    def f(p):  # broken linear function, vectorised over p
        p = np.asarray(p, dtype=np.int64)
        out = np.full(p.shape, pts[-1][1], dtype=np.int64)
        done = np.zeros(p.shape, dtype=bool)
        for i, (u, s) in enumerate(pts):
            hit = (p <= u) & ~done
            if i == 0:
                out[hit] = s
            else:
                u0, s0 = pts[i - 1]
                out[hit] = s0 + (s - s0) * (p[hit] - u0) // (u - u0)
            done |= hit
        return out
    return f


def score(ctx: ClassCtx, rows: np.ndarray | None = None) -> np.ndarray:
    """NodeResourcesFit score (0-100) for `rows` (default: the class's candidate rows)."""
    t = ctx.table
    rows = ctx.rows if rows is None else rows
    strat = ctx.profile.scoring
    num = np.zeros(len(rows), dtype=np.int64)
    wsum = np.zeros(len(rows), dtype=np.int64)
    rtc = _rtc_fn(strat.shape) if strat.type == "RequestedToCapacityRatio" else None
    for w, col, src, pod_req in _score_resources(ctx, strat.resources):
        a = t.alloc[rows, col]
        used = t.nonzero[rows, src] if src >= 0 else t.req[rows, -1 - src]
        r = used + pod_req
        safe = np.maximum(a, 1)
        if strat.type == "LeastAllocated":
            s = np.where(r > a, 0, ((a - r) * MAX_NODE_SCORE) // safe)
        elif strat.type == "MostAllocated":
            s = (np.minimum(r, a) * MAX_NODE_SCORE) // safe
        else:
            s = rtc(np.where(r > a, MAX_UTILIZATION, (r * MAX_UTILIZATION) // safe))
        counted = a > 0
        if rtc is not None:
            counted &= s > 0
        num += np.where(counted, s * w, 0)
        wsum += np.where(counted, w, 0)
    if rtc is not None:
        # Go's math.Round: half away from zero (values are >= 0)
        return np.where(wsum > 0, np.floor(num / np.maximum(wsum, 1) + 0.5), 0).astype(np.int64)
    return np.where(wsum > 0, num // np.maximum(wsum, 1), 0)


def score_row(ctx: ClassCtx, row: int) -> int:
    """Scalar twin of `score` for one row (the compiled closure, made once per class)."""
    fn = ctx.memo.get("fit_row_score")
    if fn is None:
        fn = ctx.memo["fit_row_score"] = row_score_fn(ctx)
    return fn(row)


def row_fit_fn(ctx: ClassCtx):
    """Compiled `fits_row`: a closure over this class's requests and the table's row lists, made
    once per class (memoised in ctx.memo)."""
    fn = ctx.memo.get("fit_row")
    if fn is None:
        fn = ctx.memo["fit_row"] = _compile_fit(ctx)
    return fn


def _compile_fit(ctx: ClassCtx):
    cols = [(c, v) for c, v, _ in requested_columns(ctx)]
    alloc_l, req_l = ctx.table.alloc_l, ctx.table.req_l
    if len(cols) == 3:  # cpu, memory, pods: the common case, unrolled
        (c0, v0), (c1, v1), (c2, v2) = cols

        def fits3(row: int) -> bool:
            a, r = alloc_l[row], req_l[row]
            return a[c0] - r[c0] >= v0 and a[c1] - r[c1] >= v1 and a[c2] - r[c2] >= v2
        return fits3

    def fits(row: int) -> bool:
        a, r = alloc_l[row], req_l[row]
        for c, v in cols:
            if a[c] - r[c] < v:
                return False
        return True
    return fits


def row_fit_score_fn(ctx: ClassCtx, weight: int):
    """Filter and weighted score of one row in one call: -1 if the pod does not fit, else
    `weight` * score (the common shape has a faster form in plugins/fused.py)."""
    fit = row_fit_fn(ctx)
    if not weight:
        return lambda row: 0 if fit(row) else -1
    sc = row_score_fn(ctx)
    return lambda row: weight * sc(row) if fit(row) else -1


def row_score_fn(ctx: ClassCtx):
    """Compiled `score_row` (LeastAllocated / MostAllocated); RequestedToCapacityRatio falls back
    to the vectorized scorer on one row."""
    strat = ctx.profile.scoring
    if strat.type == "RequestedToCapacityRatio":
        return lambda row: int(score(ctx, np.array([row]))[0])
    plan = _score_resources(ctx, strat.resources)
    t = ctx.table
    alloc_l, nz_l, req_l = t.alloc_l, t.nz_l, t.req_l
    least = strat.type == "LeastAllocated"
    M = MAX_NODE_SCORE

    def f(row: int) -> int:
        alloc, nz, req = alloc_l[row], nz_l[row], req_l[row]
        num = wsum = 0
        for w, col, src, pod_req in plan:
            a = alloc[col]
            if a <= 0:
                continue
            r = (nz[src] if src >= 0 else req[-1 - src]) + pod_req
            if least:
                s = 0 if r > a else ((a - r) * M) // a
            else:
                s = ((r if r < a else a) * M) // a
            num += s * w
            wsum += w
        return num // wsum if wsum else 0
    return f
