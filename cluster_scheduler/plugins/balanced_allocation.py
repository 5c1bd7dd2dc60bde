"""NodeResourcesBalancedAllocation: favour nodes whose cpu and memory fractions stay close.

As upstream v1.36 and v1.37 (unchanged): balance = (1 - std of the used fractions) * 100, computed with and without the
pod, and the score rewards the improvement: 50 + (50 + with - without) / 2. Uses actual requests
(not the non-zero defaults) and skips best-effort pods.
"""

from __future__ import annotations

import math

import numpy as np

from . import MAX_NODE_SCORE, ClassCtx

NAME = "NodeResourcesBalancedAllocation"


def _plan(ctx: ClassCtx) -> list[tuple[int, int]] | None:
    """(column, pod request) per resource, or None when the plugin is skipped for this pod."""
    memo = ctx.memo.get(NAME, False)
    if memo is False:
        t, req = ctx.table, dict(ctx.key.requests)
        plan = []
        for name, _w in ctx.profile.balanced_resources:
            v = req.get(name, 0)
            if v == 0 and name not in ("cpu", "memory", "ephemeral-storage"):
                continue
            plan.append((t.resource_column(name), v))
        if all(v == 0 for _, v in plan):
            plan = None  # best-effort pod: upstream skips the plugin
        memo = ctx.memo[NAME] = plan
    return memo


def _balance_vec(F: np.ndarray, P: np.ndarray) -> np.ndarray:
    """(1 - std) * 100 per column of fractions F (resources x nodes), P marks present resources."""
    n = P.sum(axis=0)
    hi = np.where(P, F, -np.inf).max(axis=0)
    lo = np.where(P, F, np.inf).min(axis=0)
    std = np.where(n == 2, (hi - lo) / 2, 0.0)  # two fractions: |f0 - f1| / 2
    if F.shape[0] > 2:
        Fm = np.where(P, F, 0.0)
        mean = Fm.sum(axis=0) / np.maximum(n, 1)
        var = (np.where(P, (F - mean) ** 2, 0.0)).sum(axis=0) / np.maximum(n, 1)
        std = np.where(n > 2, np.sqrt(var), std)
    return ((1 - std) * MAX_NODE_SCORE).astype(np.int64)


def score(ctx: ClassCtx, rows: np.ndarray | None = None) -> np.ndarray:
    rows = ctx.rows if rows is None else rows
    plan = _plan(ctx)
    if plan is None:
        return np.zeros(len(rows), dtype=np.int64)
    t = ctx.table
    with_pod, without, present = [], [], []
    for col, v in plan:
        a = t.alloc[rows, col]
        used = t.req[rows, col]
        safe = np.maximum(a, 1)
        with_pod.append(np.minimum((used + v) / safe, 1.0))
        without.append(np.minimum(used / safe, 1.0))
        present.append(a > 0)
    P = np.array(present)
    w = _balance_vec(np.array(with_pod), P)
    wo = _balance_vec(np.array(without), P)
    half = MAX_NODE_SCORE // 2
    return half + (half + w - wo) // 2


def _balance(fr: list[float]) -> int:
    if len(fr) == 2:
        std = abs((fr[0] - fr[1]) / 2)
    elif len(fr) > 2:
        mean = sum(fr) / len(fr)
        std = math.sqrt(sum((f - mean) ** 2 for f in fr) / len(fr))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


def score_row(ctx: ClassCtx, row: int, alloc: list | None = None, req: list | None = None) -> int:
    plan = _plan(ctx)
    if plan is None:
        return 0
    if alloc is None:
        alloc, req = ctx.table.alloc_l[row], ctx.table.req_l[row]
    with_pod, without = [], []
    for col, v in plan:
        a = alloc[col]
        if a <= 0:
            continue
        with_pod.append(min((req[col] + v) / a, 1.0))
        without.append(min(req[col] / a, 1.0))
    half = MAX_NODE_SCORE // 2
    return half + (half + _balance(with_pod) - _balance(without)) // 2


def row_score_fn(ctx: ClassCtx):
    """Compiled `score_row`: a closure over this class's plan and the table's row lists."""
    plan = _plan(ctx)
    if plan is None:
        return lambda row: 0
    alloc_l, req_l = ctx.table.alloc_l, ctx.table.req_l
    M = MAX_NODE_SCORE
    half = M // 2
    if len(plan) == 2:
        (c0, v0), (c1, v1) = plan

        def f2(row: int) -> int:
            a, r = alloc_l[row], req_l[row]
            a0, a1 = a[c0], a[c1]
            if a0 > 0 and a1 > 0:
                r0, r1 = r[c0], r[c1]
                f0, f1 = (r0 + v0) / a0, (r1 + v1) / a1
                g0, g1 = r0 / a0, r1 / a1
                w = int((1 - abs(((f0 if f0 < 1.0 else 1.0) - (f1 if f1 < 1.0 else 1.0)) / 2)) * M)
                wo = int((1 - abs(((g0 if g0 < 1.0 else 1.0) - (g1 if g1 < 1.0 else 1.0)) / 2)) * M)
                return half + (half + w - wo) // 2
            return half + half // 2  # fewer than two fractions: std is 0 with and without the pod
        return f2
    return lambda row: score_row(ctx, row)
