"""TaintToleration: NoSchedule/NoExecute taints must be tolerated; PreferNoSchedule only scores.

Nodes share few distinct taint sets, so each set is judged once per class and mapped to rows.
"""

from __future__ import annotations

import numpy as np

from ..model.types import NO_EXECUTE, NO_SCHEDULE, PREFER_NO_SCHEDULE, Taint, Toleration
from . import MAX_NODE_SCORE, ClassCtx

NAME = "TaintToleration"


def untolerated(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> Taint | None:
    for taint in taints:
        if taint.effect not in (NO_SCHEDULE, NO_EXECUTE):
            continue
        if not any(tol.tolerates(taint) for tol in tolerations):
            return taint
    return None


def intolerable_prefer_count(taints: tuple[Taint, ...], tolerations: tuple[Toleration, ...]) -> int:
    prefer = [t for t in tolerations if t.effect in ("", PREFER_NO_SCHEDULE)]
    return sum(1 for taint in taints
               if taint.effect == PREFER_NO_SCHEDULE and not any(t.tolerates(taint) for t in prefer))


def reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def _per_taint_set(ctx: ClassCtx):
    memo = ctx.memo.get(NAME)
    if memo is None:
        t, tols = ctx.table, ctx.key.tolerations
        verdict: dict[tuple[Taint, ...], tuple[Taint | None, int]] = {}
        bad = np.zeros(len(ctx.rows), dtype=bool)
        raw = np.zeros(len(ctx.rows), dtype=np.int64)
        groups: dict[Taint, list[int]] = {}
        for i, row in enumerate(ctx.rows.tolist()):
            ts = t.taints[row]
            if not ts:
                continue
            v = verdict.get(ts)
            if v is None:
                v = verdict[ts] = (untolerated(ts, tols), intolerable_prefer_count(ts, tols))
            if v[0] is not None:
                bad[i] = True
                groups.setdefault(v[0], []).append(i)
            raw[i] = v[1]
        memo = ctx.memo[NAME] = (bad, raw, groups)
    return memo


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    bad, _, groups = _per_taint_set(ctx)
    reasons = []
    for taint, idx in groups.items():
        m = np.zeros(len(ctx.rows), dtype=bool)
        m[idx] = True
        reasons.append((m, reason(taint)))
    return ~bad, reasons


def score_raw(ctx: ClassCtx) -> np.ndarray:
    """Count of PreferNoSchedule taints not tolerated (lower is better; normalized reversed)."""
    return _per_taint_set(ctx)[1]


def normalize(raw: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """DefaultNormalizeScore(reverse=True) over the feasible nodes."""
    mx = int(raw[feasible].max()) if feasible.any() else 0
    if mx == 0:
        return np.full(raw.shape, MAX_NODE_SCORE, dtype=np.int64)
    return MAX_NODE_SCORE - (MAX_NODE_SCORE * raw) // mx
