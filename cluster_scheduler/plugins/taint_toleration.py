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
        verdicts = [(untolerated(ts, tols), intolerable_prefer_count(ts, tols)) for ts in t.taint_sets]
        bad_by_set = np.array([v[0] is not None for v in verdicts], dtype=bool)
        raw_by_set = np.array([v[1] for v in verdicts], dtype=np.int64)
        ids = t.taint_set[ctx.rows]
        groups: dict[Taint, list[int]] = {}
        for sid, v in enumerate(verdicts):
            if v[0] is not None:
                groups.setdefault(v[0], []).append(sid)
        memo = ctx.memo[NAME] = (bad_by_set[ids], raw_by_set[ids], ids, groups)
    return memo


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    bad, _, ids, groups = _per_taint_set(ctx)
    reasons = [(np.isin(ids, sids), reason(taint)) for taint, sids in groups.items()]
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
