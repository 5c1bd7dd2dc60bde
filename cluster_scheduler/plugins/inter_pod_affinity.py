"""InterPodAffinity: required (anti-)affinity filters and preferred terms score, both ways
(the incoming pod's terms against existing pods, and existing pods' terms against it), on global
per-domain counts from the pod index.

A `Plan` lists each count the class reads, with its topology key. Keys whose domains are single
nodes (hostname) are *row-local*: a placement changes them only on its own node, so the engine's
lazy heap stays exact by rescoring that node. Other keys are watched, and a change is followed
(`follow`) where that is exact: a required term's feasibility moves only when a domain's count
crosses zero, and a score term adds the same to every node of one domain. Anything else rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.pod_index import PREF_AFFINITY, PREF_ANTI, REQ_AFFINITY, REQ_ANTI, Counts
from ..model.types import HOSTNAME_LABEL
from . import MAX_NODE_SCORE, ClassCtx

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"


@dataclass
class Plan:
    affinity_keys: tuple[str, ...] = ()
    affinity_counts: Counts | None = None
    affinity_self_ok: bool = False  # upstream's "first pod of its group" rule is in force
    # the same, counting no waiting (nominated) pod: upstream's pass without nominated pods
    affinity_self_ok_settled: bool = False
    anti: list[tuple[str, Counts]] = field(default_factory=list)
    existing_anti: list[tuple[str, Counts]] = field(default_factory=list)
    score_terms: list[tuple[str, Counts, int]] = field(default_factory=list)  # key, counts, signed weight
    holder_keys: frozenset = frozenset()
    holders_gen: int = 0
    watch: list[tuple[Counts, int]] = field(default_factory=list)  # non-row-local counts and their gen
    # the first-pod rule is off but the pod matches its own terms: it comes back on when the last
    # matching pod leaves the keyed nodes (a release); (keyed rows, counts gen last looked at)
    self_rule_rows: np.ndarray | None = None
    self_rule_gen: int = 0
    row_local: bool = True
    # per-domain counts of the non-row-local terms, (key, counts id, settled) -> array, computed
    # once per plan (`_domain_counts`) and kept current by `follow`, else the class is rebuilt
    domain_cache: dict = field(default_factory=dict)
    waited: set = field(default_factory=set)  # ids of counts that held waiting pods when planned


def _row_local(ctx: ClassCtx, key: str) -> bool:
    """True when every value of `key` names exactly one node (hostname as kubelets set it)."""
    return key == HOSTNAME_LABEL and ctx.table.hostname_unique(key)


def plan(ctx: ClassCtx) -> Plan:
    p = ctx.memo.get(NAME)
    if p is not None:
        return p
    idx, key, prof = ctx.index, ctx.key, ctx.profile
    p = Plan()
    if key.pod_affinity:
        p.affinity_keys = tuple(t.topology_key for t in key.pod_affinity)
        p.affinity_counts = idx.all_terms_counts(key.pod_affinity)
        # upstream's "first pod of its group": no pod matching every term sits on a node that carries
        # any of the terms' topology keys, and the pod matches its own terms
        size = ctx.table.size
        has_any = np.zeros(size, dtype=bool)
        for k in p.affinity_keys:
            has_any |= ctx.table.label_column(k)[:size] >= 0
        c = p.affinity_counts
        none_counted = not (c.per_row[:size][has_any] > 0).any()
        none_settled = not (c.settled()[:size][has_any] > 0).any()
        self_matches = all(idx.term_matches(t, key) for t in key.pod_affinity)
        p.affinity_self_ok = none_counted and self_matches
        p.affinity_self_ok_settled = none_settled and self_matches
        # the self rule flips when the first matching pod lands anywhere: watch the total
        if p.affinity_self_ok_settled or not all(_row_local(ctx, k) for k in p.affinity_keys):
            p.watch.append((p.affinity_counts, p.affinity_counts.gen))
        elif self_matches:
            p.self_rule_rows, p.self_rule_gen = has_any, p.affinity_counts.gen
    for t in key.pod_anti_affinity:
        c = idx.term_counts(t)
        p.anti.append((t.topology_key, c))
        if not _row_local(ctx, t.topology_key):
            p.watch.append((c, c.gen))
    holder_keys = set()
    for (kind, term, weight), c in list(idx.holders.items()):
        if not idx.term_matches(term, key):
            continue
        holder_keys.add((kind, term, weight))
        if kind == REQ_ANTI:
            p.existing_anti.append((term.topology_key, c))
        elif kind == REQ_AFFINITY and prof.hard_pod_affinity_weight > 0:
            p.score_terms.append((term.topology_key, c, prof.hard_pod_affinity_weight))
        elif kind == PREF_AFFINITY:
            p.score_terms.append((term.topology_key, c, weight))
        elif kind == PREF_ANTI:
            p.score_terms.append((term.topology_key, c, -weight))
        else:
            continue
        if not _row_local(ctx, term.topology_key):
            p.watch.append((c, c.gen))
    for wt in key.preferred_pod_affinity:
        c = idx.term_counts(wt.term)
        p.score_terms.append((wt.term.topology_key, c, wt.weight))
        if not _row_local(ctx, wt.term.topology_key):
            p.watch.append((c, c.gen))
    for wt in key.preferred_pod_anti_affinity:
        c = idx.term_counts(wt.term)
        p.score_terms.append((wt.term.topology_key, c, -wt.weight))
        if not _row_local(ctx, wt.term.topology_key):
            p.watch.append((c, c.gen))
    p.holder_keys = frozenset(holder_keys)
    p.holders_gen = idx.holders_gen
    p.row_local = not p.watch
    # the domain counts `follow` compares with, as they are now
    for k, c in _zone_like(ctx, p):
        _domain_counts(ctx, p, k, c)
        if c.n_waiting:
            p.waited.add(id(c))
    ctx.memo[NAME] = p
    return p


def _zone_like(ctx: ClassCtx, p: Plan) -> list[tuple[str, Counts]]:
    """Every (key, counts) the plan reads on domains wider than one node."""
    pairs = [(k, p.affinity_counts) for k in p.affinity_keys] if p.affinity_counts is not None else []
    pairs += [*p.anti, *p.existing_anti, *((k, c) for k, c, _w in p.score_terms)]
    return [(k, c) for k, c in pairs if not _row_local(ctx, k)]


def follow(ctx: ClassCtx, p: Plan) -> list[tuple[str, int, int]] | None:
    """The watched counts moved (pods placed or gone on zone-like domains): bring the plan's
    domain counts up to date and return the score shifts, (key, domain value id, amount): a
    score term adds its weight per matching pod to every node of the pod's domain. None when the
    class must be rebuilt instead: a required term's domain count crossed zero (feasibility moved
    there), the first-pod rule could flip, or waiting pods are counted (two passes: not followed).
    A count moved by one placement since the last look (the common case: eager classes follow
    every charge) costs O(1); otherwise its domain counts are recounted."""
    seen = {id(c): gen for c, gen in p.watch if c.gen != gen}
    if not seen:
        return []
    if p.affinity_self_ok_settled and p.affinity_counts is not None and id(p.affinity_counts) in seen:
        return None
    cache = p.domain_cache
    diffs: dict[tuple[str, int], list[tuple[int, int]]] = {}  # (key, counts id) -> [(value id, delta)]
    recounted: dict[tuple[str, int], np.ndarray] = {}
    for k, c in _zone_like(ctx, p):
        pair = (k, id(c))
        if id(c) not in seen or pair in diffs:
            continue
        old = cache.get((k, id(c), False))
        if old is None or c.n_waiting or id(c) in p.waited:
            return None
        if c.gen == seen[id(c)] + 1 and c.last[1]:
            row, delta = c.last
            vid = int(ctx.table.label_column(k)[row])
            if vid >= len(old):
                return None  # a value no node had when planned
            diffs[pair] = [(vid, delta)] if vid >= 0 else []
            continue
        new = ctx.index.domain_counts(c, k)
        if len(old) < len(new):
            old = np.concatenate([old, np.zeros(len(new) - len(old), dtype=np.int64)])
        moved = np.flatnonzero(new != old)
        diffs[pair] = list(zip(moved.tolist(), (new[moved] - old[moved]).tolist()))
        recounted[pair] = new
    required = [(k, p.affinity_counts) for k in p.affinity_keys] if p.affinity_counts is not None else []
    for k, c in (*required, *p.anti, *p.existing_anti):
        ds = diffs.get((k, id(c)))
        if ds:
            old = cache[(k, id(c), False)]
            for vid, delta in ds:
                was = int(old[vid]) if vid < len(old) else 0
                if (was > 0) != (was + delta > 0):
                    return None
    shifts = [(k, vid, w * delta) for k, c, w in p.score_terms for vid, delta in diffs.get((k, id(c)), ())]
    for (k, cid), ds in diffs.items():
        if (k, cid) in recounted:
            cache[(k, cid, False)] = recounted[(k, cid)]
        else:
            arr = cache[(k, cid, False)]
            for vid, delta in ds:
                arr[vid] += delta
    p.watch = [(c, c.gen) for c, _gen in p.watch]
    return shifts


def is_stale(ctx: ClassCtx, p: Plan) -> bool:
    """Has a count this class read on non-row-local domains changed, or a new held term appeared?"""
    for c, gen in p.watch:
        if c.gen != gen:
            return True
    if p.self_rule_rows is not None and p.affinity_counts.gen != p.self_rule_gen:
        c = p.affinity_counts
        p.self_rule_gen = c.gen
        rows = p.self_rule_rows
        if not (c.settled()[:len(rows)][rows] > 0).any():
            return True  # no (settled) matching pod left on a keyed node: the first-pod rule is on again
    if ctx.index.holders_gen != p.holders_gen:
        idx, key = ctx.index, ctx.key
        now = {h for h in idx.holders if idx.term_matches(h[1], key)}
        if now != p.holder_keys:
            return True
        p.holders_gen = idx.holders_gen
    return False


def _domain_counts(ctx: ClassCtx, p: Plan, key: str, c: Counts, settled: bool = False) -> np.ndarray:
    """Count per value id of `key` (a zone-like key), once per plan; `follow` keeps the counts
    with every pod (not `settled`: without the waiting pods) up to date."""
    dc = p.domain_cache.get((key, id(c), settled))
    if dc is None:
        dc = p.domain_cache[(key, id(c), settled)] = ctx.index.domain_counts(c, key, settled=settled)
    return dc


def _domain_values(ctx: ClassCtx, p: Plan, topology_key: str, counts: Counts,
                   settled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(has_label, count in the row's domain) over the candidate rows; `settled`: without the
    waiting pods."""
    col = ctx.table.label_column(topology_key)[ctx.rows]
    has = col >= 0
    if _row_local(ctx, topology_key):
        return has, np.where(has, (counts.settled() if settled else counts.per_row)[ctx.rows], 0)
    dc = _domain_counts(ctx, p, topology_key, counts, settled)
    return has, np.where(has, dc[np.where(has, col, 0)] if len(dc) else 0, 0)


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    p = plan(ctx)
    n = len(ctx.rows)
    ok = np.ones(n, dtype=bool)
    reasons = []
    if p.affinity_counts is not None:
        # both of upstream's passes: with the waiting (nominated) pods and without them
        c = p.affinity_counts
        all_keys = np.ones(n, dtype=bool)
        exist = np.ones(n, dtype=bool)
        for k in p.affinity_keys:
            has, cnt = _domain_values(ctx, p, k, c)
            all_keys &= has
            exist &= cnt > 0
        aff_ok = all_keys & (exist | p.affinity_self_ok)
        if c.n_waiting:
            exist = np.ones(n, dtype=bool)
            for k in p.affinity_keys:
                exist &= _domain_values(ctx, p, k, c, settled=True)[1] > 0
        aff_ok &= exist | p.affinity_self_ok_settled
        reasons.append((ok & ~aff_ok, REASON_AFFINITY))
        ok &= aff_ok
    anti_bad = np.zeros(n, dtype=bool)
    for k, c in p.anti:
        has, cnt = _domain_values(ctx, p, k, c)
        anti_bad |= has & (cnt > 0)
    reasons.append((ok & anti_bad, REASON_ANTI))
    ok &= ~anti_bad
    ex_bad = np.zeros(n, dtype=bool)
    for k, c in p.existing_anti:
        has, cnt = _domain_values(ctx, p, k, c)
        ex_bad |= has & (cnt > 0)
    reasons.append((ok & ex_bad, REASON_EXISTING_ANTI))
    ok &= ~ex_bad
    return ok, reasons


def _count_at(ctx: ClassCtx, p: Plan, key: str, c: Counts, row: int, settled: bool = False) -> int | None:
    """Pods counted by `c` in the topology domain of `row` (None when the node lacks the key);
    `settled`: without the waiting pods."""
    vid = ctx.table.label_column(key)[row]
    if vid < 0:
        return None
    if _row_local(ctx, key):
        return c.settled_at(row) if settled else int(c.per_row[row])
    dc = _domain_counts(ctx, p, key, c, settled)
    return int(dc[vid]) if vid < len(dc) else 0


def fits_row(ctx: ClassCtx, row: int) -> bool:
    """Scalar twin of `filter` for one row. Row-local terms read the row's live count; wider
    domains read the plan's domain counts (the class is rebuilt when those change)."""
    p = plan(ctx)
    if p.affinity_counts is not None:
        c = p.affinity_counts
        exist = True
        for k in p.affinity_keys:
            cnt = _count_at(ctx, p, k, c, row)
            if cnt is None:
                return False
            if cnt <= 0:
                exist = False
        if not exist and not p.affinity_self_ok:
            return False
        if c.n_waiting and not p.affinity_self_ok_settled:  # the pass without waiting pods
            if any(_count_at(ctx, p, k, c, row, settled=True) <= 0 for k in p.affinity_keys):
                return False
    for k, c in (*p.anti, *p.existing_anti):  # own anti-affinity, then existing pods' against us
        if _count_at(ctx, p, k, c, row):
            return False
    return True


def score_raw(ctx: ClassCtx) -> np.ndarray:
    p = plan(ctx)
    raw = np.zeros(len(ctx.rows), dtype=np.int64)
    for k, c, w in p.score_terms:
        _, cnt = _domain_values(ctx, p, k, c)
        raw += w * cnt
    return raw


def score_raw_row(ctx: ClassCtx, row: int) -> int:
    p = plan(ctx)
    s = 0
    for k, c, w in p.score_terms:
        cnt = _count_at(ctx, p, k, c, row)
        if cnt:
            s += w * cnt
    return s


def normalize(raw: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """Min-max normalization over the feasible nodes, as upstream's NormalizeScore."""
    if not feasible.any():
        return np.zeros(raw.shape, dtype=np.int64)
    lo, hi = int(raw[feasible].min()), int(raw[feasible].max())
    return normalize_with(raw, lo, hi)


def normalize_with(raw: np.ndarray, lo: int, hi: int) -> np.ndarray:
    if hi - lo <= 0:
        return np.zeros(raw.shape, dtype=np.int64)
    return (MAX_NODE_SCORE * ((raw - lo) / (hi - lo))).astype(np.int64)


def normalize_one(raw: int, lo: int, hi: int) -> int:
    """Scalar twin of normalize_with (same float expression, so the same truncation)."""
    if hi - lo <= 0:
        return 0
    return int(MAX_NODE_SCORE * ((raw - lo) / (hi - lo)))
