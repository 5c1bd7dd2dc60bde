"""NodeAffinity: nodeSelector and required node affinity filter; preferred terms score.

Requirements are evaluated on encoded label columns, so a term costs a few vectorized comparisons
over the candidate rows, never a per-node dict lookup.
"""

from __future__ import annotations

import numpy as np

from ..model.types import NodeSelectorTerm, Requirement
from . import MAX_NODE_SCORE, ClassCtx

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
# PreFilter: nodes left out of the named set, and a set that is empty (upstream's words)
ABSENT = f"node(s) didn't satisfy plugin(s) [{NAME}]"
CONFLICT = "pod affinity terms conflict"


def prefilter_names(key) -> frozenset[str] | None:
    """Upstream's PreFilterResult: when every required term names its nodes (`matchFields`
    metadata.name In; ANDed within a term, ORed across terms), only those nodes are evaluated and
    every other node is reported as not satisfying NodeAffinity, whatever else it fails. None:
    every node is evaluated. An empty set rejects the pod at PreFilter (`CONFLICT`)."""
    names: set[str] = set()
    for term in key.required_node_affinity or ():
        named: set[str] | None = None
        for f in term.match_fields:
            if f.key == "metadata.name" and f.operator == "In":
                named = set(f.values) if named is None else named & set(f.values)
        if named is None:
            return None
        names |= named
    return frozenset(names) if key.required_node_affinity else None


def requirement_mask(ctx: ClassCtx, req: Requirement) -> np.ndarray:
    t, rows = ctx.table, ctx.rows
    col = t.label_column(req.key)[rows]
    op = req.operator
    if op == "Exists":
        return col >= 0
    if op == "DoesNotExist":
        return col < 0
    if op in ("In", "NotIn"):
        ids = [t.value_id(req.key, v) for v in req.values]
        hit = np.isin(col, [i for i in ids if i >= 0]) & (col >= 0)
        return hit if op == "In" else ~hit  # NotIn holds where the label is absent, as upstream
    if op in ("Gt", "Lt"):
        try:
            bound = int(req.values[0])
        except (ValueError, IndexError):
            return np.zeros(len(rows), dtype=bool)
        vocab = [t.value_name(req.key, i) for i in range(t.vocab_size(req.key))]
        ok_vid = np.array([_int_cmp(v, bound, op) for v in vocab] + [False], dtype=bool)
        return ok_vid[np.where(col >= 0, col, len(vocab))]
    return np.zeros(len(rows), dtype=bool)  # unknown operators are rejected at parse time


def _int_cmp(v: str, bound: int, op: str) -> bool:
    try:
        x = int(v)
    except ValueError:
        return False
    return x > bound if op == "Gt" else x < bound


def term_mask(ctx: ClassCtx, term: NodeSelectorTerm) -> np.ndarray:
    if not term.match_expressions and not term.match_fields:
        return np.zeros(len(ctx.rows), dtype=bool)
    m = np.ones(len(ctx.rows), dtype=bool)
    for r in term.match_expressions:
        m &= requirement_mask(ctx, r)
    if term.match_fields:
        names = ctx.table.names
        m &= np.fromiter((all(f.matches({"metadata.name": names[row]}) for f in term.match_fields)
                          for row in ctx.rows.tolist()), dtype=bool, count=len(ctx.rows))
    return m


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    key = ctx.key
    ok = np.ones(len(ctx.rows), dtype=bool)
    for k, v in key.node_selector:
        ok &= requirement_mask(ctx, Requirement(k, "In", (v,)))
    if key.required_node_affinity is not None:
        any_term = np.zeros(len(ctx.rows), dtype=bool)
        for term in key.required_node_affinity:
            any_term |= term_mask(ctx, term)
        ok &= any_term
    return ok, [(~ok, REASON)]


def score_raw(ctx: ClassCtx) -> np.ndarray:
    raw = np.zeros(len(ctx.rows), dtype=np.int64)
    for p in ctx.key.preferred_node_affinity:
        if p.weight:
            raw += p.weight * term_mask(ctx, p.term)
    return raw


def normalize(raw: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """DefaultNormalizeScore(reverse=False) over the feasible nodes."""
    mx = int(raw[feasible].max()) if feasible.any() else 0
    if mx == 0:
        return np.zeros(raw.shape, dtype=np.int64)
    return (MAX_NODE_SCORE * raw) // mx
