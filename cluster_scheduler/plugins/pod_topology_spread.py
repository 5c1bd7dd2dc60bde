"""PodTopologySpread: DoNotSchedule constraints filter on the global skew; ScheduleAnyway
constraints score, with upstream's normalizing weight log(domains + 2) and reversed normalization.

Counts come from the pod index over *all* nodes (not one shard), restricted to the nodes the
constraint's inclusion policies admit (nodeAffinityPolicy, nodeTaintsPolicy), and only pods in the
incoming pod's namespace count, as upstream. DoNotSchedule is judged twice when waiting
(nominated) pods are counted, with and without them, as upstream's two filter passes: a pod that
may never bind cannot be what keeps a domain's skew within maxSkew (see model/pod_index.py).
"""

from __future__ import annotations

import math

import numpy as np

from ..model.pod_index import Counts
from ..model.types import HOSTNAME_LABEL, TopologySpreadConstraint
from . import MAX_NODE_SCORE, ClassCtx, node_affinity, taint_toleration

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"


def _all_rows_ctx(ctx: ClassCtx) -> ClassCtx:
    c = ctx.memo.get("pts_all")
    if c is None:
        c = ctx.memo["pts_all"] = ClassCtx(ctx.table, ctx.index, ctx.profile, ctx.key, ctx.table.rows(), ctx.storage)
    return c


def _eligible(ctx: ClassCtx, constraints: tuple[TopologySpreadConstraint, ...], c: TopologySpreadConstraint) -> np.ndarray:
    """Over all rows: nodes that carry every constraint key and pass c's inclusion policies
    (node data only: memoized for the class's build, which an epoch change replaces)."""
    memo_key = ("pts_eligible", constraints, c)
    m = ctx.memo.get(memo_key)
    if m is not None:
        return m
    allc = _all_rows_ctx(ctx)
    t = ctx.table
    m = np.ones(len(allc.rows), dtype=bool)
    for k in {x.topology_key for x in constraints}:
        m &= t.label_column(k)[allc.rows] >= 0
    if c.node_affinity_policy == "Honor":
        m &= node_affinity.filter(allc)[0]
    if c.node_taints_policy == "Honor":
        m &= taint_toleration.filter(allc)[0]
    ctx.memo[memo_key] = m
    return m


def _counts(ctx: ClassCtx, c: TopologySpreadConstraint) -> Counts:
    return ctx.index.spread_counts(c.selector, ctx.key.namespace)


def hard(ctx: ClassCtx) -> tuple[TopologySpreadConstraint, ...]:
    return tuple(c for c in ctx.key.spread_constraints if c.when_unsatisfiable == "DoNotSchedule")


def soft(ctx: ClassCtx) -> tuple[TopologySpreadConstraint, ...]:
    return tuple(c for c in ctx.key.spread_constraints if c.when_unsatisfiable == "ScheduleAnyway")


def watched(ctx: ClassCtx) -> list[Counts]:
    return [_counts(ctx, c) for c in ctx.key.spread_constraints]


def _passes(counts: Counts) -> tuple[bool, ...]:
    """The `settled` flags to judge a constraint with: without waiting pods too, if there are any."""
    return (False, True) if counts.n_waiting else (False,)


def _skew(ctx: ClassCtx, cons: tuple[TopologySpreadConstraint, ...],
          c: TopologySpreadConstraint, settled: bool = False) -> tuple[np.ndarray, int, int]:
    """(matching pods per domain over the eligible nodes, the global minimum, 1 if the incoming
    pod matches its own selector) for constraint c, from the live counts (`settled`: without
    the waiting pods)."""
    t = ctx.table
    allrows = _all_rows_ctx(ctx).rows
    col_all = t.label_column(c.topology_key)[allrows]
    elig = _eligible(ctx, cons, c)
    counts = _counts(ctx, c)
    per_row = counts.settled() if settled else counts.per_row
    vids = col_all[elig]
    per_dom = np.bincount(vids, weights=per_row[allrows][elig],
                          minlength=t.vocab_size(c.topology_key)).astype(np.int64)
    present = np.zeros(len(per_dom), dtype=bool)
    present[vids] = True
    n_domains = int(present.sum())
    min_match = int(per_dom[present].min()) if n_domains else 0
    if n_domains < c.min_domains:
        min_match = 0
    self_match = 1 if c.selector is not None and c.selector.matches(ctx.labels) else 0
    return per_dom, min_match, self_match


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    cons = hard(ctx)
    n = len(ctx.rows)
    if not cons:
        return np.ones(n, dtype=bool), []
    t = ctx.table
    missing = np.zeros(n, dtype=bool)
    skewed = np.zeros(n, dtype=bool)
    for c in cons:
        col = t.label_column(c.topology_key)[ctx.rows]
        has = col >= 0
        missing |= ~has
        for settled in _passes(_counts(ctx, c)):
            per_dom, min_match, self_match = _skew(ctx, cons, c, settled)
            match_num = np.where(has & (col < len(per_dom)), per_dom[np.where(has, col, 0)] if len(per_dom) else 0, 0)
            skewed |= has & (match_num + self_match - min_match > c.max_skew)
    ok = ~missing & ~skewed
    return ok, [(missing, REASON_MISSING), (~missing & skewed, REASON)]


def fits_row(ctx: ClassCtx, row: int) -> bool:
    """Scalar twin of `filter` for one row, from the live counts: the commit-time check of a
    class whose counts moved since it was built (one O(nodes) count per constraint, no rebuild)."""
    cons = hard(ctx)
    t = ctx.table
    for c in cons:
        d = int(t.label_column(c.topology_key)[row])
        if d < 0:
            return False
        for settled in _passes(_counts(ctx, c)):
            per_dom, min_match, self_match = _skew(ctx, cons, c, settled)
            match = int(per_dom[d]) if d < len(per_dom) else 0
            if match + self_match - min_match > c.max_skew:
                return False
    return True


def normalizing_weight(size: int) -> float:
    return math.log(size + 2)


def score(ctx: ClassCtx, feasible: np.ndarray) -> np.ndarray:
    """Normalized 0-100 PodTopologySpread score over the candidate rows (0 where infeasible)."""
    cons = soft(ctx)
    n = len(ctx.rows)
    if not cons:
        return np.zeros(n, dtype=np.int64)
    t = ctx.table
    rows = ctx.rows
    ignored = np.zeros(n, dtype=bool)
    for c in cons:
        ignored |= t.label_column(c.topology_key)[rows] < 0
    considered = feasible & ~ignored
    allrows = _all_rows_ctx(ctx).rows
    raw = np.zeros(n, dtype=np.float64)
    for c in cons:
        col = t.label_column(c.topology_key)[rows]
        counts = _counts(ctx, c)
        if c.topology_key == HOSTNAME_LABEL:
            size = int(considered.sum())
            cnt = counts.per_row[rows]
        else:
            dom_present = np.zeros(t.vocab_size(c.topology_key), dtype=bool)
            dom_present[col[considered]] = True
            size = int(dom_present.sum())
            col_all = t.label_column(c.topology_key)[allrows]
            elig = _eligible(ctx, cons, c)
            per_dom = np.bincount(col_all[elig], weights=counts.per_row[allrows][elig],
                                  minlength=len(dom_present)).astype(np.int64)
            per_dom[~dom_present] = 0
            cnt = np.where(col >= 0, per_dom[np.where(col >= 0, col, 0)], 0) if len(per_dom) else np.zeros(n, dtype=np.int64)
        w = normalizing_weight(size)
        raw += np.where(col >= 0, cnt * w + (c.max_skew - 1), 0.0)
    s = np.floor(raw + 0.5).astype(np.int64)  # Go's math.Round: half away from zero (raw >= 0)
    if not considered.any():
        return np.zeros(n, dtype=np.int64)
    lo, hi = int(s[considered].min()), max(int(s[considered].max()), 0)
    if hi == 0:
        out = np.full(n, MAX_NODE_SCORE, dtype=np.int64)
    else:
        out = MAX_NODE_SCORE * (hi + lo - s) // hi
    return np.where(considered, out, 0)


class Gate:
    """A single DoNotSchedule constraint on a zone-like key, decided per domain at pick time.

    The engine keeps one heap per domain and asks `allowed()` which domains may take the pod now;
    placements elsewhere only change a few domain counts, so nothing is rebuilt."""

    def __init__(self, ctx: ClassCtx, c: TopologySpreadConstraint) -> None:
        t = ctx.table
        self.c = c
        self.key = c.topology_key
        self.allrows = _all_rows_ctx(ctx).rows
        self.elig = _eligible(ctx, (c,), c)
        self.col_all = t.label_column(self.key)[self.allrows]
        self.dom_c = t.label_column(self.key)[ctx.rows].astype(np.int64)  # per candidate position
        self.vocab = t.vocab_size(self.key)
        vids = self.col_all[self.elig]
        self.present = np.zeros(self.vocab, dtype=bool)
        self.present[vids] = True
        self.n_present = int(self.present.sum())
        self.counts = _counts(ctx, c)
        self.self_match = 1 if c.selector is not None and c.selector.matches(ctx.labels) else 0
        self.gen = -1
        self._allowed = np.zeros(self.vocab, dtype=bool)
        # domain of each row if it is eligible, else -1: lets a single placement update per_dom in O(1)
        self.elig_dom = np.full(t.capacity, -1, dtype=np.int64)
        self.elig_dom[self.allrows[self.elig]] = self.col_all[self.elig]
        self.per_dom = np.zeros(self.vocab, dtype=np.int64)
        self.waited = False  # waiting pods were counted at the last look: no O(1) follow-up then

    def _per_dom(self, per_row: np.ndarray) -> np.ndarray:
        return np.bincount(self.col_all[self.elig], weights=per_row[self.allrows][self.elig],
                           minlength=self.vocab).astype(np.int64)

    def _ok(self, per_dom: np.ndarray) -> np.ndarray:
        min_match = int(per_dom[self.present].min()) if self.n_present else 0
        if self.n_present < self.c.min_domains:
            min_match = 0
        return per_dom + self.self_match - min_match <= self.c.max_skew

    def allowed(self) -> np.ndarray:
        """Bool per domain id: would a pod placed there keep the skew within maxSkew (with and
        without the waiting pods)?"""
        c = self.counts
        if c.gen != self.gen:
            if (self.gen >= 0 and c.gen == self.gen + 1 and not self.waited and not c.n_waiting
                    and c.last[0] < len(self.elig_dom)):
                row, delta = c.last
                d = self.elig_dom[row]
                if d >= 0:
                    self.per_dom[d] += delta
            else:
                self.per_dom = self._per_dom(c.per_row)
            self.gen = c.gen
            self._allowed = self._ok(self.per_dom)
            self.waited = bool(c.n_waiting)
            if self.waited:
                self._allowed &= self._ok(self._per_dom(c.settled()))
        return self._allowed
