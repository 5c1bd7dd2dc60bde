"""NodeResourcesFit's filter and LeastAllocated score (plus NodeResourcesBalancedAllocation's
score, when weighted) fused into one closure for the common shape: the engine's hottest call.

Not a plugin: the pod asks for cpu, memory and `pods`, and both scorers read cpu and memory; the
plugins' own row forms inlined so a placement costs one Python call instead of four. It is the
only scalar LeastAllocated kernel besides `node_resources_fit.row_score_fn`, and equal to the
plugins' forms (tests/unit/test_engine_property.py, `test_vectorized_scores_equal_scalar_twins`);
any other shape gets None and the engine composes the plugins' forms.
"""

from __future__ import annotations

from . import MAX_NODE_SCORE, ClassCtx, balanced_allocation, node_resources_fit


def row_rescore_fn(ctx: ClassCtx, w_fit: int, w_bal: int, static_by_row: list):
    """`row -> total score`, or -1 when the row fails the static filters (static_by_row[row] < 0)
    or NodeResourcesFit; static_by_row holds the class's normalized static scores (>= 0) per
    table row (all 0: the filter and score alone). None when the class is not the common shape."""
    if ctx.profile.scoring.type != "LeastAllocated":
        return None
    cols = [(c, v) for c, v, _ in node_resources_fit.requested_columns(ctx)]
    plan = node_resources_fit._score_resources(ctx, ctx.profile.scoring.resources)
    if len(cols) != 3 or len(plan) != 2 or [src for _, _, src, _ in plan] != [0, 1]:
        return None
    bplan = balanced_allocation._plan(ctx) if w_bal else [(0, 0), (0, 0)]
    if bplan is None or len(bplan) != 2:
        return None
    t = ctx.table
    alloc_l, req_l, nz_l = t.alloc_l, t.req_l, t.nz_l
    (c0, v0), (c1, v1), (c2, v2) = cols
    (w0, a0c, _, p0), (w1, a1c, _, p1) = plan
    (b0, u0), (b1, u1) = bplan
    M = MAX_NODE_SCORE
    half = M // 2

    def rescore(row: int) -> int:
        sn = static_by_row[row]
        if sn < 0:
            return -1
        a, r = alloc_l[row], req_l[row]
        if a[c0] - r[c0] < v0 or a[c1] - r[c1] < v1 or a[c2] - r[c2] < v2:
            return -1
        # NodeResourcesFit, LeastAllocated over the non-zero cpu/memory requests
        nz = nz_l[row]
        x, y = a[a0c], a[a1c]
        num = cnt = 0
        if x > 0:
            u = nz[0] + p0
            num += (0 if u > x else ((x - u) * M) // x) * w0
            cnt += w0
        if y > 0:
            u = nz[1] + p1
            num += (0 if u > y else ((y - u) * M) // y) * w1
            cnt += w1
        s = sn + w_fit * (num // cnt) if cnt else sn
        if not w_bal:
            return s
        # NodeResourcesBalancedAllocation over the actual requests
        x, y = a[b0], a[b1]
        if x > 0 and y > 0:
            r0, r1 = r[b0], r[b1]
            f0, f1 = (r0 + u0) / x, (r1 + u1) / y
            g0, g1 = r0 / x, r1 / y
            wi = int((1 - abs(((f0 if f0 < 1.0 else 1.0) - (f1 if f1 < 1.0 else 1.0)) / 2)) * M)
            wo = int((1 - abs(((g0 if g0 < 1.0 else 1.0) - (g1 if g1 < 1.0 else 1.0)) / 2)) * M)
            return s + w_bal * (half + (half + wi - wo) // 2)
        return s + w_bal * (half + half // 2)
    return rescore
