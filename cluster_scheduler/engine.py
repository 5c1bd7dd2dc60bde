"""The scheduling engine: filter -> score -> top-k for batches of pods, over the node table.

Pods with the same PodSpecKey form an equivalence class. A class is filtered and scored once, fully
vectorized over the candidate nodes (`ClassState.build`), and its feasible nodes go into a max-heap.
Placing a pod changes one node, so later picks only rescore what changed:

- lazy: a heap entry remembers the node's version; a stale entry is rescored with the scalar
  per-row twins of the plugins and pushed back. Exact, because every score that can change with a
  placement on node n is a function of node n alone (resources, ports, hostname-keyed terms).
- eager: classes whose normalization depends on the whole feasible set (preferred node affinity,
  PreferNoSchedule taints, preferred inter-pod terms) or whose feasibility can *grow* (required
  pod affinity) are touched on every placement: the changed node is rescored at once, and if the
  normalizer's min/max moved the class is rebuilt.
- rebuilt: when a count on a wider domain (zone, rack, spread) that the class reads has changed;
  classes with ScheduleAnyway spread rebuild on every pick (their weights depend on the feasible set).
- released: a pod leaving node n (a proposal undone, an assumption forgotten) gives n a fresh heap
  entry in each class it fits now; a class whose normalizer max n now moves (n exceeds it, or
  n is the first row with a non-zero raw score since the max fell to 0 and does not bring back
  the built max) is rebuilt.

Decisions are exact (every feasible node considered, upstream formulas); ties go to the row placed
on longest ago, then the lowest row (`NodeTable.last`).
The engine charges its own picks, so one batch never over-commits a node; `commit=False` (used by
partitions, whose picks are only proposals) undoes them at the end of the batch.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
# np.unique reads np.ma on every call, and numpy imports numpy.ma lazily: import it with the engine
# so its first import (tens of ms) lands at start-up, not in an actor's first scheduling batch.
import numpy.ma

from .gc_tuning import paused_gc
from .model.node_table import NodeTable
from .model.pod_index import PodIndex
from .model.storage import StorageIndex
from .model.types import NodeInfo, PodInfo, PodSpecKey
from .plugins import (ClassCtx, balanced_allocation, fused, inter_pod_affinity, node_affinity, node_resources_fit,
                      node_volume_limits, pod_topology_spread, topology_placement, volume_binding, volume_restrictions,
                      volume_zone)
from .plugins.profile import Profile
from .plugins.topology_placement import Placement
from .plugins.registry import NORMALIZED, REGISTRY, ROW, Plugin

# the row scorers `fused` inlines (with NodeResourcesFit's filter)
FUSED = {node_resources_fit.NAME, balanced_allocation.NAME}

NO_NODE_AVAILABLE = "0/{} nodes are available"

def fit_error_message(num_nodes: int, reasons: dict[str, int], prefilter: str | None = None) -> str:
    """kube-scheduler's FitError text: '0/N nodes are available: <count> <reason>, ...', or with
    the reason a PreFilter gave for every node: '0/N nodes are available: <reason>.'"""
    if num_nodes == 0:
        return "no nodes available to schedule pods"
    if prefilter:
        return f"{NO_NODE_AVAILABLE.format(num_nodes)}: {prefilter}."
    parts = sorted(f"{v} {k}" for k, v in reasons.items() if v)
    msg = NO_NODE_AVAILABLE.format(num_nodes) + ":"
    if parts:
        msg += " " + ", ".join(parts)
    return msg + "."


def pod_group_missing_message(namespace: str, name: str) -> str:
    return f'waiting for PodGroup "{name}" in namespace {namespace}: it does not exist'


def pod_group_deleting_message(namespace: str, name: str) -> str:
    return f'PodGroup "{name}" in namespace {namespace} is being deleted: its pods are not placed'


def gang_waiting_message(name: str, min_count: int, have: int | None = None, foreign: int = 0,
                         schedulers: list[str] | None = None) -> str:
    """Why a gang's members wait; when some members name another scheduler, they never count here
    (a gang is one scheduler's decision), and the message says which."""
    text = f"waiting for gang {name}: fewer than minCount ({min_count}) of its pods exist"
    if foreign:
        text = (f"waiting for gang {name}: {have} of minCount {min_count} pods use this scheduler; "
                f"{foreign} name another ({', '.join(schedulers or [])})")
    return text


def pod_group_invalid_message(pods: Sequence[PodInfo], priority: int) -> str:
    """Upstream's validatePodGroup, in its words: every pod of a group has the PodGroup's
    spec.priority and one preemption policy (the group is refused as a whole otherwise); '' when
    they do."""
    policy = None
    for p in pods:
        if p.priority != priority:
            return ("all pods in a single pod group should have the same priority as the pod group's priority, "
                    f"got {p.priority} and {priority}")
        mine = "Never" if p.preempt_never else "PreemptLowerPriority"
        if policy is None:
            policy = mine
        elif mine != policy:
            return f"all pods in a single pod group should have the same preemption policy, got {mine} and {policy}"
    return ""


def gang_unfit_message(why: str, name: str, min_count: int, fits: int) -> str:
    """A member's fit error, then the gang's count: '...; gang job-g7 needs 16, 11 fit'."""
    return f"{why}; gang {name} needs {min_count}, {fits} fit"


@dataclass(slots=True)
class PodResult:
    """Outcome for one pod: best-first (node, score) candidates, or why none fits.

    `reasons` is a histogram (reason -> node count) so shards' diagnoses can be summed, None when
    the pod fits (one result is made per placement: no empty dict each time); `error` is set when
    the pod's spec itself is unusable."""

    uid: str
    candidates: list[tuple[str, int]] = field(default_factory=list)
    reasons: dict[str, int] | None = None
    num_nodes: int = 0
    error: str | None = None
    prefilter: str | None = None  # a PreFilter rejected the pod for every node (e.g. its claim is missing)
    note: str | None = None  # what the node diagnosis is part of (a gang's topology placements)

    def message(self) -> str:
        if self.error:
            return self.error
        text = fit_error_message(self.num_nodes, self.reasons or {}, self.prefilter)
        return text if self.note is None else f"{self.note}: {text}"


@dataclass(slots=True)
class _Norm:
    """A NORMALIZED score whose raw value varies over the rows: the max it was normalized by at
    build time, and the max over the rows feasible now (see `_norm_moved`)."""

    raw: np.ndarray
    max: int
    live: int = -1

    def __post_init__(self) -> None:
        self.live = self.max


def _weighted_sum(parts: list[tuple[int, Callable[[int], int]]]) -> Callable[[int], int]:
    """`row -> sum(w * f(row))`, unrolled for the common counts (it runs once per rescored row)."""
    if not parts:
        return lambda row: 0
    if len(parts) == 1:
        ((w0, f0),) = parts
        return lambda row: w0 * f0(row)
    if len(parts) == 2:
        (w0, f0), (w1, f1) = parts
        return lambda row: w0 * f0(row) + w1 * f1(row)
    return lambda row: sum(w * f(row) for w, f in parts)


class ClassState:
    """Filter and score state of one equivalence class, under one profile, over the engine's
    candidate rows.

    On a replica that owns a shard (a partition), a class whose score is normalized over the
    feasible nodes (a normalizer's raw score is non-zero on some row of the shard, inter-pod
    preferred terms, a soft spread constraint) is built over *every* node instead (`whole`), as
    upstream normalizes over all feasible nodes: a shard's own max would rank its nodes on another
    scale than the other shards'. Only its own rows (`propose`) are then proposed and diagnosed."""

    def __init__(self, engine: "Engine", key: PodSpecKey, profile: Profile, check_only: bool = False,
                 placement: tuple[str, int] | None = None) -> None:
        self.engine = engine
        self.key = key
        self.profile = profile
        # a gang's topology placement (label key, value id): only nodes of that value are
        # candidates, and scores normalize over them (`topology_placement`); ledger only
        self.placement = placement
        # filters only, for Engine.check: no scores, no heaps (never picks, never touched)
        self.check_only = check_only
        # a class of one pod (its own claims: dropped once it is placed): no heaps either, its
        # best rows are read off the fresh build's scores (`top`)
        vols = key.volumes
        self.one_pod = vols is not None and bool(vols.delayed or vols.csi and not vols.fresh)
        # stand-in volumes count against attach limits row by row (a placement bumps the row);
        # what moves limits or attachments without a placement rebuilds the class
        self.fresh = vols is not None and vols.fresh
        self.whole = False
        self._diag_cache: tuple[int, dict[str, int]] | None = None
        self.used_at = engine.placements  # the engine's placement count when last asked for (`class_state`)
        self.build()

    # -------------------------------------------------------------- build
    def build(self) -> None:
        """Run the profile's filters and scores over every candidate row (the registry's order)."""
        e, key, prof = self.engine, self.key, self.profile
        t = e.table
        owned = e.owned_mask()  # None: this replica owns every node
        rows = t.rows() if self.whole and owned is not None else e.candidate_rows()
        if self.placement is not None:
            pk, vid = self.placement
            rows = rows[t.label_column(pk)[rows] == vid]
        # the shard's own positions in a class built over every node (None: every row is its own)
        self.propose = owned[rows] if self.whole and owned is not None else None
        self._propose_l = None if self.propose is None else self.propose.tolist()
        ctx = self.ctx = ClassCtx(t, e.index, prof, key, rows, e.storage)
        self.epoch = e.epoch
        self.rel_seen, self.rel_base = len(e.released), e.released_base  # the build sees every row as it is
        # unbound claims read which volumes are free: rebuilt when the storage index moves
        self.storage_gen = e.storage.gen if self.one_pod else None
        self.vol_gen = self._vol_gen() if self.fresh else None
        self.built_at = e.placements
        self._aff_gen = -1  # (`_only_shrinks`: the first placement after a build is looked at)
        n = len(rows)
        self.pos = np.full(t.capacity, -1, dtype=np.int64)
        self.pos[rows] = np.arange(n)
        self._diag: list[tuple[str, np.ndarray, list]] = []
        self._refreshed = False  # `refresh` moved the scores and feasibility since this build
        self.spread_only = False
        self._one_dom: dict[str, int] = {}  # see _one_domain
        # NodeAffinity's PreFilter: rows outside the nodes the pod names are diagnosed as such
        named = node_affinity.prefilter_names(key) if prof.filter_enabled(node_affinity.NAME) else None
        self.absent = None if named is None else np.array([t.names[r] not in named for r in rows.tolist()], dtype=bool)
        self.prefilter = node_affinity.CONFLICT if named is not None and not named else None
        timings = e.timings
        static_ok = np.ones(n, dtype=bool)
        feas = np.ones(n, dtype=bool)
        without_pts = np.ones(n, dtype=bool)
        self.dynamic: list[Plugin] = []  # the dynamic filters that run for this class, in order
        for plugin in REGISTRY:
            if plugin.filter is None or not prof.filter_enabled(plugin.name) or not plugin.pre_filter(ctx):
                continue
            t0 = time.perf_counter()
            ok, reasons = plugin.filter(ctx)
            timings[plugin.name] = timings.get(plugin.name, 0.0) + time.perf_counter() - t0
            self._diag.append((plugin.name, ok, reasons))
            feas &= ok
            if not plugin.dynamic:
                static_ok &= ok
            else:
                self.dynamic.append(plugin)
            if plugin.name == pod_topology_spread.NAME:
                self.pts_ok = ok
            else:
                without_pts &= ok
        self.static_ok = static_ok
        ran = {p.name for p in self.dynamic}
        self.use_fit = node_resources_fit.NAME in ran
        self.use_pts = pod_topology_spread.NAME in ran
        self.use_ipa = inter_pod_affinity.NAME in ran
        # only NodeResourcesFit changes with placements: the row's request list is all it reads
        self.resources_only = ran <= {node_resources_fit.NAME}
        self._feas_without_pts = without_pts
        self.gate = None
        self.feas = feas  # every filter applied: the set upstream normalizes scores over
        w_ipa = prof.weight(inter_pod_affinity.NAME)
        self.ipa_plan = inter_pod_affinity.plan(ctx) if (self.use_ipa or w_ipa) else None

        # ----- scores: ROW plugins summed as they are, NORMALIZED ones normalized over `feas`
        total = np.zeros(n, dtype=np.int64)
        static_norm = np.zeros(n, dtype=np.int64)
        self.row_scorers: list[tuple[Plugin, int]] = []
        # normalizers whose raw score varies: their max over the feasible rows is kept exact
        self.norms: list[_Norm] = []
        normalized = False  # some normalizer's raw score is non-zero here: its max matters
        for plugin in () if self.check_only else REGISTRY:
            w = prof.weight(plugin.name)
            if not w or plugin.score not in (ROW, NORMALIZED):
                continue
            t0 = time.perf_counter()
            if plugin.score == ROW:
                total += w * plugin.score_vec(ctx)
                self.row_scorers.append((plugin, w))
            elif plugin.pre_score(ctx):
                raw = plugin.score_raw(ctx)
                static_norm += w * plugin.normalize(raw, feas)
                normalized = normalized or bool(raw.any())
                if raw.min(initial=0) != raw.max(initial=0):
                    self.norms.append(_Norm(raw, int(raw[feas].max(initial=0))))
            name = "score:" + plugin.name
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        self.static_norm = static_norm
        total += static_norm
        self.w_ipa = w_ipa
        self.ipa_raw = None
        if w_ipa and self.ipa_plan is not None and self.ipa_plan.score_terms and not self.check_only:
            raw = inter_pod_affinity.score_raw(ctx)
            self.ipa_raw = raw
            self.ipa_lo = int(raw[feas].min()) if feas.any() else 0
            self.ipa_hi = int(raw[feas].max()) if feas.any() else 0
            vals, cnts = np.unique(raw[feas], return_counts=True)
            self.ipa_hist = dict(zip(vals.tolist(), cnts.tolist()))  # raw value -> feasible rows
            total += w_ipa * inter_pod_affinity.normalize_with(raw, self.ipa_lo, self.ipa_hi)
        w_pts = prof.weight(pod_topology_spread.NAME)
        self.dense = bool(w_pts and pod_topology_spread.soft(ctx)) and not self.check_only
        spread = None
        if self.dense:
            spread = pod_topology_spread.score(ctx, feas)
            total += w_pts * spread
        if (owned is not None and not self.whole and self.placement is None
                and (normalized or self.ipa_raw is not None or self.dense)):
            self.whole = True  # see the class docstring: normalize over every node's feasibility
            self.build()
            return
        hard = pod_topology_spread.hard(ctx) if self.use_pts else ()
        if (len(hard) == 1 and not inter_pod_affinity._row_local(ctx, hard[0].topology_key)
                and self.ipa_raw is None and not self.dense):
            # One zone-like constraint: decide it per domain at pick time (one heap per domain)
            # instead of rebuilding on every placement. A preferred-affinity or taint score is
            # normalized by its max over the feasible nodes, which moves with the allowed domains:
            # `stale()` compares that max whenever the counts move (`_norm_moved`).
            self.gate = pod_topology_spread.Gate(ctx, hard[0])
            feas = self._feas_without_pts & (self.gate.dom_c >= 0)
            self.feas = feas
        # the spread counts: when just these moved, a commit-time check reads them live
        # (check_row) instead of rebuilding the class; the inter-pod plan watches its own
        self.watch = [(c, c.gen) for c in pod_topology_spread.watched(ctx)
                      if self.gate is None or c is not self.gate.counts] if key.spread_constraints else []
        # eager: the changed row must be rescored at once (its raw inter-pod score moved, or it may
        # have become feasible); norm_watch: only watch the max of a static normalizer, which can
        # drop only when a max-scoring row stops being feasible.
        self.eager = self.ipa_raw is not None or bool(key.pod_affinity)
        self.norm_watch = bool(self.norms)
        self.norm_max_rows: set[int] = set()  # rows whose raw score is a normalizer's max
        for norm in self.norms:
            self.norm_max_rows.update(rows[norm.raw == norm.max].tolist())
        timings["score:inter-pod/spread"] = timings.get("score:inter-pod/spread", 0.0) + time.perf_counter() - t0
        self.total = total
        self._norm_gen = self.gate.counts.gen if self.gate is not None else -1
        e.builds += 1
        # a class whose scores move on every placement only through ScheduleAnyway spread (no
        # normalizer watch, inter-pod score, gate or hard constraint): no heaps; `refresh`
        # rescores the rows placed on since and the spread part, instead of a build per pick
        self.spread_only = (spread is not None and not self.norms and self.ipa_raw is None and self.gate is None
                            and not self.use_pts and self.placement is None and not self.one_pod)
        if self.spread_only:
            self._w_pts = w_pts
            self._base = total - w_pts * spread  # the rest, per position, as `score_fn` gives it
            self._vers = np.asarray(t.ver, dtype=np.int64)[rows]
        if self.check_only or self.one_pod or self.spread_only:
            self.heaps, self.pushed = None, []
            self._compile()
            return
        idx = np.flatnonzero(feas if self.propose is None else feas & self.propose)
        ver = t.ver
        cand = rows[idx].tolist()
        vers = [ver[r] for r in cand]
        pushed = np.full(n, -1, dtype=np.int64)
        pushed[idx] = vers
        self.pushed: list[int] = pushed.tolist()  # per position: version of its live heap entry
        last = t.last
        entries = list(zip((-total[idx]).tolist(), [last[r] for r in cand], cand, vers))
        if self.gate is None:
            self.heaps = {0: entries}
        else:
            self.heaps = {}
            for d, e in zip(self.gate.dom_c[idx].tolist(), entries):
                self.heaps.setdefault(d, []).append(e)
        for h in self.heaps.values():
            heapq.heapify(h)
        self._compile()

    def _compile(self) -> None:
        """Bind the per-row filter and score into closures for the hot path (see pick)."""
        ctx = self.ctx
        pos_l = self.pos.tolist()
        self.pos_l = pos_l
        static_ok = self.static_ok.tolist()
        static_norm = self.static_norm.tolist()
        fit = self._fit = node_resources_fit.row_fit_fn(ctx) if self.use_fit else (lambda row: True)
        # the other dynamic filters' row forms: live (from the current counts), and as `feasible_row`
        # reads them while the class is not stale (a hard spread constraint from its built mask,
        # or per domain by the gate)
        others = [(p.name, p.row_filter(ctx)) for p in self.dynamic if p.name != node_resources_fit.NAME]
        self._live_checks = [f for _, f in others]
        self._checks = [f for name, f in others if name != pod_topology_spread.NAME]
        simple_filter = self.resources_only and self.gate is None
        if simple_filter:
            def ok_fn(row: int) -> bool:
                p = pos_l[row]
                return p >= 0 and static_ok[p] and fit(row)
        else:
            def ok_fn(row: int) -> bool:
                return self.feasible_row(row, gate=False)
        self.ok_fn = ok_fn
        row_score = self._row_score = _weighted_sum([(w, p.row_score(ctx)) for p, w in self.row_scorers])
        self._static_norm_l = static_norm
        if self.ipa_raw is None:
            def score_fn(row: int) -> int:
                return static_norm[pos_l[row]] + row_score(row)
        else:
            def score_fn(row: int) -> int:
                return self.score_row(row)
        self.score_fn = score_fn
        self.simple = simple_filter and self.ipa_raw is None and not self.eager and not self.dense
        if self.simple:
            # filter + score in one call (the hot path): -1 when the row does not fit
            pos = self.pos
            if len(self.static_ok):
                ok = (pos >= 0) & self.static_ok[pos]  # pos -1 reads the last entry; masked out
                static_by_row = np.where(ok, self.static_norm[pos], -1).tolist()
            else:
                static_by_row = [-1] * len(pos)
            prof = self.profile
            w_fit = prof.weight(node_resources_fit.NAME)
            if self.use_fit and {p.name for p, _ in self.row_scorers} <= FUSED:
                fused_fn = fused.row_rescore_fn(ctx, w_fit, prof.weight(balanced_allocation.NAME), static_by_row)
                if fused_fn is not None:
                    self.rescore_fn = fused_fn
                    return
            # NodeResourcesFit's filter and score in one call, then the other row scores
            fit_score = node_resources_fit.row_fit_score_fn(ctx, w_fit) if self.use_fit else (lambda row: 0)
            rest = _weighted_sum([(w, p.row_score(ctx)) for p, w in self.row_scorers
                                  if p.name != node_resources_fit.NAME or not self.use_fit])

            def rescore(row: int) -> int:
                p = pos_l[row]
                if p < 0 or not static_ok[p]:
                    return -1
                s = fit_score(row)
                return s if s < 0 else s + static_norm[p] + rest(row)
            self.rescore_fn = rescore

    @property
    def diag(self) -> list[tuple[str, np.ndarray, list]]:
        """Per filter that ran: (plugin name, passing rows, [(rows, reason)]), as built (a class
        that `refresh` moved is rebuilt first: its masks are those of the build)."""
        if self._refreshed:
            self.build()
        return self._diag

    def refresh(self) -> bool:
        """Bring a `spread_only` class up to date without a build: the rows whose version moved
        since (placements, departures) are filtered and scored again one by one, the spread
        part over every row (vectorized: its normalization reads the whole feasible set).
        False when anything else moved (`stale(spread=False)`): the caller builds."""
        e = self.engine
        if not self.spread_only or self.stale(spread=False):
            return False
        if self.built_at == e.placements and all(c.gen == gen for c, gen in self.watch):
            return True
        rows = self.ctx.rows
        cur = np.asarray(e.table.ver, dtype=np.int64)[rows]
        feas, base, ok_fn, score_fn = self.feas, self._base, self.feasible_row, self.score_fn
        for p in np.flatnonzero(cur != self._vers).tolist():
            row = int(rows[p])
            ok = feas[p] = ok_fn(row)
            if ok:
                base[p] = score_fn(row)
        self._vers = cur
        self.total = base + self._w_pts * pod_topology_spread.score(self.ctx, feas)
        self.built_at = e.placements
        self.watch = [(c, c.gen) for c, _gen in self.watch]
        self._refreshed = True
        self._diag_cache = None
        return True

    # ------------------------------------------------------------- checks
    def stale(self, spread: bool = True) -> bool:
        """Has anything this class read moved so that it must be built again? With
        spread=False, what `refresh` brings up to date is left out."""
        e = self.engine
        if self.epoch != e.epoch:
            return True  # rebuilt: releases logged meanwhile are part of the build
        if self.rel_seen != len(e.released) or self.rel_base != e.released_base:
            self._catch_up()
            if self.epoch != e.epoch:
                return True
        if self.storage_gen is not None and self.storage_gen != e.storage.gen:
            return True
        if self.vol_gen is not None and self.vol_gen != self._vol_gen():
            return True
        if spread and self.dense and self.built_at != e.placements:
            return True
        if spread or not self.spread_only:  # (a spread-only class watches only its own counts)
            for c, gen in self.watch:
                if c.gen != gen:
                    return True
        if self._ipa_moved():
            return True
        if self.norm_watch and self.gate is not None and self.gate.counts.gen != self._norm_gen:
            self._norm_gen = self.gate.counts.gen  # checked once per move of the gated counts
            return self._norm_moved()
        return False

    def _vol_gen(self) -> tuple[int, int]:
        """What moves the attach limits and the drivers that must be installed (the counts
        themselves move row by row: `Engine.sync_attachments`)."""
        st = self.engine.storage
        return (st.limits_gen, st.capacity_gen)

    def _ipa_moved(self) -> bool:
        """Has an inter-pod count moved in a way the class cannot follow (`stale()`'s part)?"""
        return self.ipa_plan is not None and (not self._follow_ipa()
                                              or inter_pod_affinity.is_stale(self.ctx, self.ipa_plan))

    def _follow_ipa(self) -> bool:
        """Follow inter-pod counts that moved on zone-like domains without a rebuild, where that
        is exact (`inter_pod_affinity.follow`): feasibility did not move, and the raw scores
        shifted alike on every feasible row, which leaves min-max normalized scores as they are
        (one zone holding every candidate node, as in upstream's SchedulingPodAffinity, costs
        O(1) per placement). False (and the class marked for a rebuild) otherwise."""
        p = self.ipa_plan
        if p is None or p.row_local:
            return True
        shifts = inter_pod_affinity.follow(self.ctx, p)
        if shifts is None:
            self.epoch = -1
            return False
        if not shifts or self.ipa_raw is None:
            return True
        if all(self._one_domain(k) == vid for k, vid, _a in shifts):
            d = sum(a for _k, _v, a in shifts)  # every row moves by d
            if d:
                self.ipa_raw += d
        else:
            shift = np.zeros(len(self.ctx.rows), dtype=np.int64)
            for k, vid, a in shifts:
                shift += a * (self.engine.table.label_column(k)[self.ctx.rows] == vid)
            s = shift[self.feas]
            if len(s) and s.min() != s.max():
                self.epoch = -1
                return False
            self.ipa_raw += shift
            d = int(s[0]) if len(s) else 0
        if d:
            self.ipa_lo += d
            self.ipa_hi += d
            self.ipa_hist = {v + d: n for v, n in self.ipa_hist.items()}
        return True

    def _one_domain(self, key: str) -> int:
        """The value id of `key` if every candidate row carries that one value, else -2."""
        vid = self._one_dom.get(key)
        if vid is None:
            col = self.engine.table.label_column(key)[self.ctx.rows]
            vid = self._one_dom[key] = int(col[0]) if len(col) and col[0] >= 0 and (col == col[0]).all() else -2
        return vid

    def _norm_moved(self) -> bool:
        """Would a normalizer divide by another max over the feasible rows now (for a gated class,
        the rows in the domains its spread constraint allows now)? A max that fell to 0 changes
        nothing: every feasible row then has raw 0, which normalizes alike under any max; the live
        max (`_Norm.live`) records it, so that `release` knows the set's max is 0."""
        f = self.feas
        if self.gate is not None:
            f = f & self.gate.allowed()[self.gate.dom_c]  # dom_c -1 rows are never in feas
        for norm in self.norms:
            cur = int(norm.raw[f].max(initial=0))
            if cur != norm.max and cur != 0:
                return True
            norm.live = cur
        return False

    def _norm_admits(self, p: int) -> bool:
        """Row position `p` joins the feasible set: would a normalizer's max move to a value other
        than the built one? The max becomes max(live, raw): a raw above the built max raises it,
        and after the live max fell to 0 any other non-zero raw (even one below the built max)
        becomes the new max. False (and the live max updated) when the scores stay exact."""
        for norm in self.norms:
            r = int(norm.raw[p])
            if r > norm.live:
                if r != norm.max:
                    return True
                norm.live = r
        return False

    def check_row(self, row: int) -> bool:
        """Engine.check: can `row` take the pod now? A class that placements elsewhere left stale
        only through its spread counts (the coordinator's ledger, pod after pod) is not rebuilt:
        its static filters still hold (no epoch change), and the dynamic ones are read live for
        this one row. Anything else stale (epoch, inter-pod terms) rebuilds first. (`stale()`'s
        tests, inlined: is_stale must be asked once, it records what it saw.)"""
        e = self.engine
        if (self.epoch != e.epoch or (self.storage_gen is not None and self.storage_gen != e.storage.gen)
                or (self.vol_gen is not None and self.vol_gen != self._vol_gen()) or self._ipa_moved()):
            self.build()
            return self.feasible_row(row)
        if any(c.gen != gen for c, gen in self.watch) or (self.dense and self.built_at != e.placements):
            return self._feasible_row_live(row)  # only spread counts (or dense scores) moved
        return self.feasible_row(row)

    def _feasible_row_live(self, row: int) -> bool:
        p = self.pos_l[row] if row < len(self.pos_l) else -1
        if p < 0 or not self.static_ok[p]:
            return False
        if not self._fit(row):
            return False
        return all(check(row) for check in self._live_checks)

    def _heap_of(self, p: int) -> list:
        return self.heaps.setdefault(0 if self.gate is None else int(self.gate.dom_c[p]), [])

    def feasible_row(self, row: int, gate: bool = True) -> bool:
        """Scalar filter of one row against the current state (valid while not stale). With
        gate=False a gated spread constraint is left out (the pick loop applies it per domain)."""
        p = self.pos[row] if row < len(self.pos) else -1
        if p < 0 or not self.static_ok[p]:
            return False
        if self.gate is not None:
            d = self.gate.dom_c[p]
            if d < 0 or (gate and not self.gate.allowed()[d]):
                return False
        if not self._fit(row):
            return False
        if self.use_pts and self.gate is None and not self.pts_ok[p]:
            return False
        for check in self._checks:
            if not check(row):
                return False
        return True

    def score_row(self, row: int, ipa_raw: int | None = None) -> int:
        """Total score of one row now (compiled per-row scorers plus the normalized parts)."""
        s = self._static_norm_l[self.pos_l[row]] + self._row_score(row)
        if self.ipa_raw is not None:
            raw = inter_pod_affinity.score_raw_row(self.ctx, row) if ipa_raw is None else ipa_raw
            s += self.w_ipa * inter_pod_affinity.normalize_one(raw, self.ipa_lo, self.ipa_hi)
        return s

    def touch(self, row: int, placed: bool = True) -> None:
        """A pod was charged to `row` (`placed`; else one left it, `release`): keep normalizers
        exact, rescore eagerly where needed."""
        if self.dense or self.heaps is None:
            return  # (a class without heaps is rebuilt or refreshed before its next pick: `top`)
        p = self.pos_l[row] if row < len(self.pos_l) else -1
        if p < 0:
            return
        if not self.eager:
            self._watch_norm(row, p)
            return
        if placed and self._only_shrinks():
            return
        if not self._follow_ipa():
            return  # rebuilt at the next look
        ok = self.feasible_row(row, gate=False)
        was = bool(self.feas[p])
        changed = ok != was
        self.feas[p] = ok
        ipa_raw = None
        if self.ipa_raw is not None:
            ipa_raw = inter_pod_affinity.score_raw_row(self.ctx, row)
            old = int(self.ipa_raw[p])
            if ipa_raw != old or changed:
                self.ipa_raw[p] = ipa_raw
                hist = self.ipa_hist  # min/max over feasible rows, kept in O(distinct values)
                if was:
                    hist[old] -= 1
                    if not hist[old]:
                        del hist[old]
                if ok:
                    hist[ipa_raw] = hist.get(ipa_raw, 0) + 1
                if hist and (min(hist), max(hist)) != (self.ipa_lo, self.ipa_hi):
                    self._rebound_ipa(ipa_raw if ok else None)
        if changed and self.norm_watch and self._norm_moved():
            self.epoch = -1
        if self.epoch == -1:
            return
        if ok and (self._propose_l is None or self._propose_l[p]):
            ver = self.engine.table.ver[row]
            self.pushed[p] = ver
            heapq.heappush(self._heap_of(p), (-self.score_row(row, ipa_raw), self.engine.table.last[row], row, ver))

    def _only_shrinks(self) -> bool:
        """Can the pod just placed only have made its row less feasible for this class? So for a
        class eager only for its required pod affinity on hostname-like keys, unless the pod
        matched those terms (their counts moved since the class last looked): its heap entry is
        then stale by the row's version and rechecked at the next pick, as a lazy class's is.
        Spares a placement the feasibility test of every such class (a thousand jobs that each
        wait for their own partner pod, as in upstream's EventHandlingPodAdd)."""
        plan = self.ipa_plan
        if self.ipa_raw is not None or self.norm_watch or (plan is not None and not plan.row_local):
            return False
        c = None if plan is None else plan.affinity_counts
        if c is None or c.gen == self._aff_gen:
            return True
        self._aff_gen = c.gen
        return False

    def _rebound_ipa(self, own: int | None) -> None:
        """The min or max of the raw inter-pod scores over the feasible rows moved (`touch`): the
        heap stays exact if every other feasible row normalizes as before (typically: the rows
        at the min stay at 0 while one row, the one rescored now with raw `own`, raises the max,
        as a preferred hostname term does where pods pile up). Else the class is rebuilt."""
        hist, lo, hi = self.ipa_hist, self.ipa_lo, self.ipa_hi
        lo2, hi2 = min(hist), max(hist)
        norm = inter_pod_affinity.normalize_one
        if all(norm(v, lo, hi) == norm(v, lo2, hi2) for v, n in hist.items() if not (v == own and n == 1)):
            self.ipa_lo, self.ipa_hi = lo2, hi2
        else:
            self.epoch = -1

    def _catch_up(self) -> None:
        """Release the rows pods left since this class last looked (`Engine.released`), each once,
        as they are now; a class that missed a cut of the log is rebuilt."""
        e = self.engine
        if self.rel_base != e.released_base:
            self.epoch = -1
            return
        rows = e.released[self.rel_seen:]
        self.rel_seen = len(e.released)
        for row in dict.fromkeys(rows):
            self.release(row)

    def release(self, row: int) -> None:
        """A pod left `row` (a proposal undone, an assumption forgotten, a pod deleted): the row
        can only have become *more* feasible and changed its score, so it gets a fresh heap entry
        (a row dropped as infeasible would otherwise never come back), and a class whose
        normalizer's max that row moves is rebuilt (`_norm_admits`). Wider domains (zone counts, inter-pod
        terms) are the watched counters' business, as for placements. Called when the class is
        next used (`_catch_up`), with the row as it is then: each step re-reads the row's state,
        so doing it late, or once for several departures, ends where doing it at once would."""
        if self.dense or self.heaps is None:
            return  # rebuilt on any change of the placement count
        p = self.pos_l[row] if row < len(self.pos_l) else -1
        if p < 0 or not self.static_ok[p]:
            return
        if self.eager:
            self.touch(row, placed=False)  # exact in both directions (feasibility, normalizers, raw scores)
            return
        if not self.ok_fn(row):
            return
        if self.norm_watch and not self.feas[p]:
            self.feas[p] = True
            # (a row of a domain the gate disallows now counts once it is allowed: `stale()`)
            if (self.gate is None or self.gate.allowed()[self.gate.dom_c[p]]) and self._norm_admits(p):
                self.epoch = -1  # the row moves the max its class normalizes by
                return
        if self._propose_l is not None and not self._propose_l[p]:
            return
        t = self.engine.table
        ver = t.ver[row]
        if self.pushed[p] != ver:
            self.pushed[p] = ver
            heapq.heappush(self._heap_of(p), (-self.score_fn(row), t.last[row], row, ver))

    def toucher(self):
        """`touch` for the engine's charge loop; a class that only watches a normalizer's max
        cares about a handful of rows, so the common case is one set lookup."""
        if self.eager or self.dense:
            return self.touch
        rows, pos, watch = self.norm_max_rows, self.pos_l, self._watch_norm

        def touch_norm(row: int) -> None:
            if row in rows:
                watch(row, pos[row])
        return touch_norm

    def _watch_norm(self, row: int, p: int) -> None:
        if row not in self.norm_max_rows or not self.feas[p] or self.ok_fn(row):
            return
        self.feas[p] = False
        if self._norm_moved():
            self.epoch = -1

    # --------------------------------------------------------------- pick
    def pick(self, k: int, take_first: bool = False) -> list[tuple[int, int]]:
        """Best k (row, score), best first; [] when nothing fits. With take_first the caller is
        about to charge the best row, so its entry is not pushed back (`replace` re-adds it)."""
        if self.stale():
            self.build()
        version, last = self.engine.table.ver, self.engine.table.last
        pushed, pos = self.pushed, self.pos_l
        ok_fn, score_fn = self.ok_fn, self.score_fn
        if self.gate is None:
            heaps = [self.heaps[0]]
        else:
            allowed = self.gate.allowed()
            heaps = [h for d, h in self.heaps.items() if h and d >= 0 and allowed[d]]
        found: list[tuple[tuple[int, int, int, int], list]] = []
        seen: set[int] = set()
        while len(found) < k:
            best = None
            for heap in heaps:
                while heap:  # clean the top: rescore stale entries, drop duplicates
                    _neg, _last, row, ver = heap[0]
                    cur = version[row]
                    if ver == cur and row not in seen:
                        break
                    heapq.heappop(heap)
                    if ver != cur:
                        p = pos[row]
                        if pushed[p] != cur:
                            pushed[p] = cur
                            if ok_fn(row):
                                heapq.heappush(heap, (-score_fn(row), last[row], row, cur))
                if heap and (best is None or heap[0] < best[0]):
                    best = (heap[0], heap)
            if best is None:
                break
            entry = heapq.heappop(best[1])
            seen.add(entry[2])
            found.append((entry, best[1]))
        for entry, heap in found[1:] if take_first else found:
            heapq.heappush(heap, entry)
        return [(row, -neg) for (neg, _last, row, _), _h in found]

    def top(self, k: int) -> list[tuple[int, int]]:
        """`pick` for a class without heaps (`one_pod`, `spread_only`), right after its build or
        refresh (the caller's business: no placement since): its scores are exact, so the best k
        are read off them, ties as the heap orders them (the row placed on longest ago, then the
        lower row)."""
        ok = self.feas if self.propose is None else self.feas & self.propose
        if self.gate is not None:
            dom = self.gate.dom_c
            ok = ok & (dom >= 0) & self.gate.allowed()[np.maximum(dom, 0)]
        idx = np.flatnonzero(ok)
        total = self.total[idx]
        if 0 < k < len(idx):  # only the rows scoring at least the k-th best (ties included) are sorted
            kth = np.partition(total, len(total) - k)[len(total) - k]
            keep = np.flatnonzero(total >= kth)
            idx, total = idx[keep], total[keep]
        rows = self.ctx.rows[idx]
        last_l = self.engine.table.last
        last = np.fromiter((last_l[r] for r in rows.tolist()), dtype=np.int64, count=len(rows))
        order = np.lexsort((rows, last, -total))[:k]
        return list(zip(rows[order].tolist(), total[order].tolist()))

    def replace(self, row: int) -> None:
        """Re-add `row` after the caller charged it (see pick's take_first)."""
        p = self.pos_l[row]
        t = self.engine.table
        ver = t.ver[row]
        self.pushed[p] = ver
        if self.ok_fn(row):
            heapq.heappush(self._heap_of(p), (-self.score_fn(row), t.last[row], row, ver))

    def place_run(self, pods: list[PodInfo], start: int, results: list[PodResult]) -> int:
        """Place consecutive pods of this (simple) class, k=1: the engine's tightest loop.
        Returns the index after the last pod handled."""
        e = self.engine
        key = self.key
        heap = self.heaps[0]
        version, last, pushed, pos = e.table.ver, e.table.last, self.pushed, self.pos_l
        rescore = self.rescore_fn
        names = e.table.names
        heappop, heappush, heapreplace = heapq.heappop, heapq.heappush, heapq.heapreplace
        charge = e.charger(key)
        epods = e.pods
        epoch = self.epoch
        sched = pods[start].scheduler_name
        # one profile: every pod of the key is this class's; else the run also keeps to one profile
        same_profile = len(e.profiles) == 1
        i, n = start, len(pods)
        class_key = e.class_key
        chargers = {key: charge}  # pods are charged with their own keys (labels no selector reads differ)
        while i < n and (same_profile or pods[i].scheduler_name == sched):
            pod = pods[i]
            full = pod.key
            if full is not key and (full is None or class_key(full) is not key) or pod.has_volumes:
                break
            while heap:
                _neg, _last, row, ver = heap[0]
                cur = version[row]
                if ver == cur:
                    break
                heappop(heap)
                p = pos[row]
                if pushed[p] != cur:
                    pushed[p] = cur
                    s = rescore(row)
                    if s >= 0:
                        heappush(heap, (-s, last[row], row, cur))
            if not heap:
                break  # the caller diagnoses
            neg, _last, row, _ = heap[0]
            node = names[row]
            pod.node_name = node
            uid = pod.uid
            epods[uid] = pod
            c = chargers.get(full)
            if c is None:
                c = chargers[full] = e.charger(full)
            c(uid, row)
            cur = version[row]
            pushed[pos[row]] = cur
            s = rescore(row)
            if s >= 0:
                heapreplace(heap, (-s, last[row], row, cur))  # one sift instead of a pop and a push
            else:
                heappop(heap)
            results.append(PodResult(uid, [(node, -neg)]))
            i += 1
            if e.epoch != epoch or self.epoch != epoch:
                # the world changed, or this pick moved the max a normalizer of this class divides
                # by (touch marked it for a rebuild): let the caller re-check
                break
        e.placements += i - start
        return i

    def diagnose(self) -> dict[str, int]:
        """Reason histogram: each infeasible node counted under its first failing plugin."""
        if self._diag_cache is not None and self._diag_cache[0] == self.engine.placements and not self.stale():
            return dict(self._diag_cache[1])
        if self.built_at != self.engine.placements or self.stale():
            self.build()
        # a shard's histogram counts its own nodes (the coordinator adds the shards' up)
        remaining = np.ones(len(self.ctx.rows), dtype=bool) if self.propose is None else self.propose.copy()
        hist: dict[str, int] = {}
        if self.absent is not None:
            if c := int((remaining & self.absent).sum()):
                hist[node_affinity.ABSENT] = c
            remaining &= ~self.absent
        for _name, ok, reasons in self.diag:
            failing = remaining & ~ok
            if failing.any():
                for mask, text in reasons:
                    c = int((failing & mask).sum())
                    if c:
                        hist[text] = hist.get(text, 0) + c
            remaining &= ok
        self._diag_cache = (self.engine.placements, hist)
        return dict(hist)


def _selector_keys(key: PodSpecKey) -> set[str]:
    """The pod label keys the selectors of `key`'s terms and spread constraints read."""
    out: set[str] = set()
    selectors = [t.selector for _, t, _ in PodIndex.held_terms(key)] + [c.selector for c in key.spread_constraints]
    for sel in selectors:
        if sel is not None:
            out.update(k for k, _ in sel.match_labels)
            out.update(r.key for r in sel.match_expressions)
    return out


class Engine:
    """Cache + scheduler for one set of candidate nodes (all nodes, or a partition's shard).

    Every replica sees every node and pod (for global topology counts); `set_owned` restricts which
    nodes this replica proposes."""

    def __init__(self, profiles: Profile | Sequence[Profile] | None = None, max_classes: int = 512,
                 idle_placements: int = 512) -> None:
        if profiles is None:
            profiles = (Profile(),)
        elif isinstance(profiles, Profile):
            profiles = (profiles,)
        self.profiles: dict[str, Profile] = {p.scheduler_name: p for p in profiles}
        self.profile = profiles[0]  # pods naming no profile of ours (bound by others) read this one
        self.table = NodeTable()
        self.index = PodIndex(self.table)
        self.pods: dict[str, PodInfo] = {}  # every known pod with a node (bound or assumed)
        self.storage = StorageIndex()
        self._waiting: dict[str, list[str]] = {}  # node name -> uids bound to it before it arrived
        self.owned: set[str] | None = None
        self._owned_rows: np.ndarray | None = None
        self._owned_mask: np.ndarray | None = None
        self.epoch = 0  # bumped when anything can make a node *more* feasible: rebuild classes
        self.placements = 0
        # rows a pod left, in order (`ClassState.release`): each class catches up when next used,
        # so a removal costs O(1) however many classes are cached; cut now and then (`released_base`)
        self.released: list[int] = []
        self.released_base = 0
        self._attach_seen = (0, 0)  # (attach_base, position) of the storage's attach log read so far
        self.classes: OrderedDict[tuple[str, PodSpecKey], ClassState] = OrderedDict()
        self.check_classes: OrderedDict[tuple[str, PodSpecKey], ClassState] = OrderedDict()  # see check
        self.timings: dict[str, float] = {}  # seconds per plugin in full (vectorized) class builds
        self.builds = 0
        self.max_classes = max_classes
        self.idle_placements = idle_placements
        # Label keys some selector of a known pod reads (affinity, anti-affinity, spread; matchLabelKeys
        # are folded into those): only these can tell two pods apart, so a class is keyed on them
        # alone and pods that differ in any other label (upstream's per-pod `signature`, a
        # StatefulSet's pod-name label) share one class. Grows only; growing re-keys every class.
        self.selector_keys: set[str] = set()
        self._class_keys: dict[PodSpecKey, PodSpecKey] = {}  # pod key -> its class key
        self._canonical: dict[PodSpecKey, PodSpecKey] = {}  # one object per class key (`is` in runs)

    # ---------------------------------------------------------------- nodes
    def _changed(self) -> None:
        self.epoch += 1
        self._owned_rows = None
        self._owned_mask = None

    def set_owned(self, names: set[str] | None) -> None:
        self.owned = None if names is None else set(names)
        self._changed()

    def candidate_rows(self) -> np.ndarray:
        if self._owned_rows is None:
            rows = self.table.rows()
            if self.owned is not None:
                names = self.table.names
                rows = np.array([r for r in rows.tolist() if names[r] in self.owned], dtype=np.int64)
            self._owned_rows = rows
        return self._owned_rows

    def owned_mask(self) -> np.ndarray | None:
        """Per table row, whether this replica owns it; None when it owns every node (no shard)."""
        if self._owned_mask is None and self.owned is not None:
            rows = self.candidate_rows()
            if len(rows) < self.num_nodes():
                self._owned_mask = np.zeros(self.table.capacity, dtype=bool)
                self._owned_mask[rows] = True
        return self._owned_mask

    def num_nodes(self) -> int:
        return len(self.table.index)

    def set_node(self, node: NodeInfo) -> None:
        row = self.table.set_node(node)
        for uid in self._waiting.pop(node.name, []):
            pod = self.pods.get(uid)
            if pod is not None and pod.key is not None and pod.node_name == node.name:
                self._charge(uid, pod.key, row, pod.waiting)
        self._changed()

    def remove_node(self, name: str) -> None:
        row = self.table.index.get(name)
        if row is None:
            return
        for uid, key in list(self.table.pods[row].items()):
            self.index.uncharge(uid, key, row)
            self.table.uncharge(uid)
            self._waiting.setdefault(name, []).append(uid)
        self.table.remove_node(name)
        self._changed()

    def set_namespace_labels(self, namespace: str, labels: dict[str, str]) -> None:
        self.index.set_namespace_labels(namespace, labels)
        self._changed()

    # ----------------------------------------------------------------- pods
    def _charge(self, uid: str, key: PodSpecKey, row: int, waiting: bool = False) -> None:
        self.table.charge(uid, key, row)
        self.index.charge(uid, key, row, waiting)
        self.placements += 1
        gen = self.storage.gen
        self._drop_idle()
        for cls in self.classes.values():
            if (cls.eager or cls.norm_watch) and (cls.storage_gen is None or cls.storage_gen == gen):
                cls.touch(row)  # (a class whose volumes moved is rebuilt anyway)

    def _drop_idle(self) -> None:
        """Forget the classes no pod asked for in a while. Every charge touches each cached
        class that follows placements, so classes of pods long placed (one per namespace of an
        identical spec, say) would make each placement cost O(classes); a class idle for more
        placements than a rebuild is worth (`idle_placements`, more on bigger shards, where a
        rebuild costs more) is dropped and rebuilt if its pods come back (the LRU order of
        `classes` puts the idlest first)."""
        classes = self.classes
        while classes:
            cls = next(iter(classes.values()))
            if self.placements - cls.used_at <= max(self.idle_placements, len(cls.ctx.rows) // 8):
                return
            classes.popitem(last=False)

    def charger(self, key: PodSpecKey):
        """`_charge` compiled for a run of one key's placements, minus the `placements` count (the
        run adds it at the end): the table's per-key charger, the pod index only if it counts
        anything this key touches, and the classes that watch placements. Valid while no class
        is built or dropped (place_run stops when the epoch moves)."""
        table_charge = self.table.charger(key)
        self._drop_idle()
        touch = [cls.toucher() for cls in self.classes.values() if cls.eager or cls.norm_watch]
        index_charge = self.index.on_charge if self.index.tracks(key) else None
        if index_charge is None and not touch:
            return table_charge

        def charge(uid: str, row: int) -> None:
            table_charge(uid, row)
            if index_charge is not None:
                index_charge(key, row)
            for t in touch:
                t(row)
        return charge

    def add_pod(self, pod: PodInfo) -> bool:
        """A pod bound (or assumed) to pod.node_name; pods without a usable spec still count for
        nothing but are remembered so a later removal is a no-op. False when the engine already
        had it there with the same key (e.g. the watch confirming an assumption): nothing changed."""
        if not pod.node_name:
            return False
        old = self.pods.get(pod.uid)
        if old is not None:
            if old.node_name == pod.node_name and old.key == pod.key:
                if old.waiting and not pod.waiting:  # a nominated pod bound where it waited
                    self.settle(pod.uid)
                    return True
                return False
            self.remove_pod(pod.uid)
        self.pods[pod.uid] = pod
        if pod.has_volumes:
            self.storage.placed(pod, 1)
        if pod.key is None:
            return True
        if pod.has_volumes and pod.uid in self.storage.parked:
            self.storage.restore(pod.uid)  # put back (a preemption trial undone): its volumes too
        self.note_selectors(pod.key)  # its terms may read labels of pods still to come
        row = self.table.index.get(pod.node_name)
        if row is None:
            self._waiting.setdefault(pod.node_name, []).append(pod.uid)
            return True
        self._charge(pod.uid, pod.key, row, pod.waiting)
        return True

    def add_group(self, tpl: PodInfo, members: list) -> None:
        """`add_pod` for many bound pods of one template, [(uid, name, node[, priority,
        creation_ts, deleting]), ...] (a snapshot's BOUND_CLASS op; members of one spec may
        differ in what preemption reads, which the longer form carries): the charger is looked
        up once and the common case (a new pod on a known node) charged directly; anything else
        goes through add_pod."""
        key, pods, index = tpl.key, self.pods, self.table.index
        if key is not None:
            self.note_selectors(key)
        # no class is built meanwhile; a pod whose volumes are counted is added as such
        charge = self.charger(key) if key is not None and not tpl.has_volumes else None
        ns, sched, err, phase = tpl.namespace, tpl.scheduler_name, tpl.error, tpl.phase
        n = 0
        for m in members:
            uid, name, node = m[0], m[1], m[2]
            prio, ts, going = (m[3], m[4], m[5]) if len(m) > 3 else (tpl.priority, tpl.creation_ts, tpl.deleting)
            pod = PodInfo(uid=uid, namespace=ns, name=name, priority=prio, scheduler_name=sched, node_name=node,
                          creation_ts=ts, key=key, error=err, phase=phase, deleting=going)
            row = index.get(node)
            if charge is None or row is None or uid in pods:
                self.add_pod(pod)
                continue
            pods[uid] = pod
            charge(uid, row)
            n += 1
        self.placements += n

    def remove_pod(self, uid: str) -> None:
        pod = self.pods.pop(uid, None)
        if pod is None:
            return
        if pod.has_volumes:
            self.storage.placed(pod, -1)
            self.storage.release(uid)
        cp = self.table.uncharge(uid)
        if cp is not None:
            # No epoch bump (which would rebuild every class): each class re-admits the freed row
            # itself. Partitions undo every proposal at the end of a batch, so this is per batch.
            self.index.uncharge(uid, cp.key, cp.row)
            self.placements += 1  # dense classes and diagnoses key on it
            self._log_release(cp.row)

    def settle(self, uid: str) -> None:
        """A waiting pod (a nominated preemptor, see PodInfo.waiting) is bound now: other pods'
        required affinity and spread minimums may rely on it from here on."""
        pod = self.pods.get(uid)
        if pod is None or not pod.waiting:
            return
        pod.waiting = False
        row = self.table.index.get(pod.node_name)
        if pod.key is None or row is None:  # its node not known yet: charged as it is when it comes
            return
        self.index.settle(uid, pod.key, row)
        # Spread and wider affinity domains watch the counts (their gen moved); for row-local
        # affinity the row can only have become more feasible: every class re-admits it.
        self.table.ver[row] += 1
        self.placements += 1
        self._log_release(row)

    def sync_attachments(self) -> None:
        """Attach counts that moved since the last look (a pod's volumes placed or gone, a claim
        bound to a CSI volume after its pod was placed, a VolumeAttachment): each such row is
        re-read by every class, as after a placement (`ver`) and a departure (`released`), so a
        class of fresh volumes (`PodVolumes.fresh`), which keeps its heap across pods, sees the
        row's new count either way. A cut of the storage's log rebuilds every class."""
        st = self.storage
        log = st.attach_log
        base, seen = self._attach_seen
        if seen == len(log) and base == st.attach_base:
            return
        self._attach_seen = (st.attach_base, len(log))
        if base != st.attach_base:
            self._changed()
            return
        index, ver = self.table.index, self.table.ver
        for node in dict.fromkeys(n for n, _d in log[seen:]):
            row = index.get(node)
            if row is not None:
                ver[row] += 1
                self._log_release(row)

    def _log_release(self, row: int) -> None:
        """Every class re-admits `row` when it is next used (`ClassState.release`)."""
        log = self.released
        log.append(row)
        if len(log) > 100_000:
            log.clear()
            self.released_base += 1

    def assume(self, pod: PodInfo, node: str) -> None:
        pod.node_name = node
        self.add_pod(pod)
        if pod.has_volumes:
            self.promise_volumes(pod, node)

    def promise_volumes(self, pod: PodInfo, node: str) -> None:
        """Take, for the pod's unbound WaitForFirstConsumer claims, the volumes it gets on `node`
        (or provisioning there), so that no later pod is offered them (`StorageIndex.chosen`)."""
        key = self.pod_key(pod)
        row = self.table.index.get(node)
        if not isinstance(key, PodSpecKey) or key.volumes is None or not key.volumes.delayed or row is None:
            return
        cls = self.classes.get((self.profile_of(pod.scheduler_name).scheduler_name, self.class_key(key)))
        if cls is not None and not cls.stale() and cls.pos_l[row] >= 0:
            choices = volume_binding.choose_on_row(cls.ctx, row, cls.pos_l[row])
        else:
            claims = volume_binding.delayed_claims(self.storage, key.volumes.delayed)
            choices = volume_binding.choose(self.storage, claims, node, self.table.labels[row])
        if choices:
            self.storage.assume(pod.uid, choices)

    def forget(self, uid: str) -> None:
        self.remove_pod(uid)

    # ------------------------------------------------------------- schedule
    def profile_of(self, scheduler_name: str) -> Profile:
        return self.profiles.get(scheduler_name, self.profile)

    def class_key(self, key: PodSpecKey) -> PodSpecKey:
        """`key` with only the labels some selector reads: the key of its equivalence class. Also
        notes the label keys `key`'s own selectors read (every pod key passes here or through
        `note_selectors` before it is charged)."""
        ck = self._class_keys.get(key)
        if ck is not None:
            return ck
        self.note_selectors(key)
        keep = self.selector_keys
        if all(k in keep for k, _ in key.labels):
            ck = key
        else:
            ck = replace(key, labels=tuple((k, v) for k, v in key.labels if k in keep))
        if len(self._class_keys) > 200_000:  # pod keys come and go; class keys stay (the classes hold them)
            self._class_keys.clear()
        ck = self._canonical.setdefault(ck, ck)
        self._class_keys[key] = ck
        return ck

    def note_selectors(self, key: PodSpecKey) -> None:
        """Add the label keys `key`'s selectors read; a new one re-keys every class."""
        if key in self._class_keys:
            return
        new = _selector_keys(key) - self.selector_keys
        if new:
            self.selector_keys |= new
            self._class_keys.clear()
            self._canonical.clear()
            self.classes.clear()
            self.check_classes.clear()
            self._changed()

    def class_state(self, key: PodSpecKey, profile: Profile | None = None,
                    placement: tuple[str, int] | None = None) -> ClassState:
        """The class of `key` under `profile` (default: the first): one per (profile, class key),
        so two profiles' pods of the same spec are filtered and scored each with their own plugins;
        and one per topology placement a gang is tried in."""
        self.sync_attachments()
        key = self.class_key(key)
        profile = profile or self.profile
        ck = (profile.scheduler_name, key) if placement is None else (profile.scheduler_name, key, placement)
        cls = self.classes.get(ck)
        if cls is None:
            cls = ClassState(self, key, profile, placement=placement)
            self.classes[ck] = cls
            if len(self.classes) > self.max_classes:
                self.classes.popitem(last=False)
        else:
            self.classes.move_to_end(ck)
            cls.used_at = self.placements
        return cls

    def pod_key(self, pod: PodInfo) -> PodSpecKey | str | None:
        """The key the pod is filtered and scored by: its spec's, with its volumes resolved
        against the storage index when it has any (`PodInfo.has_volumes`); or why no node can
        take it now (a PreFilter's reason); None for an unusable spec."""
        key = pod.key
        if key is None or not pod.has_volumes:
            return key
        prof = self.profiles.get(pod.scheduler_name, self.profile)
        vols = self.storage.resolve(pod, prof.filter_enabled(volume_binding.NAME),
                                    prof.filter_enabled(volume_zone.NAME),
                                    prof.filter_enabled(volume_restrictions.NAME),
                                    prof.filter_enabled(node_volume_limits.NAME))
        if isinstance(vols, str):
            return vols
        return key if vols is None else replace(key, volumes=self.storage.fresh(vols))

    def class_of(self, pod: PodInfo) -> ClassState:
        """The pod's class; a pod with claims must have passed `pod_key`'s PreFilter."""
        key = self.pod_key(pod)
        if not isinstance(key, PodSpecKey):
            raise ValueError(f"pod {pod.namespace}/{pod.name} cannot be classed: {key or pod.error}")
        return self.class_state(key, self.profiles.get(pod.scheduler_name, self.profile))

    def schedule(self, pods: list[PodInfo], k: int = 1, commit: bool = True,
                 placement: Placement | None = None) -> list[PodResult]:
        """Place pods in the given order (the queue sorts by priority); returns one result each.

        Each pick is charged at once (the pod's node_name is set) so later pods see it; with
        commit=False the charges are undone, and node_name cleared, before returning (the caller
        commits what it accepts). The cyclic collector is paused meanwhile (see gc_tuning): a
        batch makes only acyclic results, and collecting them mid-batch cost ~8% of its time.
        With a `placement` only its nodes are candidates (a gang's topology placement)."""
        with paused_gc(freeze=False):
            return self._schedule(pods, k, commit, placement)

    def _schedule(self, pods: list[PodInfo], k: int, commit: bool,
                  placement: Placement | None = None) -> list[PodResult]:
        results: list[PodResult] = []
        where = None if placement is None else placement.ident
        num_nodes = self.num_nodes() if placement is None else len(placement.rows)
        start_uids = len(results)
        names = self.table.names
        last = None if commit else self.table.last[:]
        i, n = 0, len(pods)
        while i < n:
            pod = pods[i]
            if pod.key is None:
                results.append(PodResult(pod.uid, error=pod.error or "invalid pod spec"))
                i += 1
                continue
            profile = self.profiles.get(pod.scheduler_name, self.profile)
            if pod.has_volumes:
                key = self.pod_key(pod)
                if isinstance(key, str):
                    results.append(PodResult(pod.uid, reasons={}, num_nodes=num_nodes, prefilter=key))
                    i += 1
                    continue
                cls = self.class_state(key, profile, where)
            else:
                cls = self.class_state(pod.key, profile, where)
            refreshed = cls.spread_only and cls.refresh()
            if not refreshed and (cls.stale() or (cls.heaps is None and cls.built_at != self.placements)):
                cls.build()
            if cls.heaps is None:
                cands = cls.top(k)
            else:
                if k == 1 and cls.simple:
                    j = cls.place_run(pods, i, results)
                    if j > i:
                        i = j
                        continue
                cands = cls.pick(k, take_first=True)
            if not cands:
                results.append(PodResult(pod.uid, reasons=cls.diagnose(), num_nodes=num_nodes,
                                         prefilter=cls.prefilter))
                i += 1
                continue
            row = cands[0][0]
            pod.node_name = names[row]
            self.pods[pod.uid] = pod
            self._charge(pod.uid, pod.key, row)
            if pod.has_volumes:
                self.storage.placed(pod, 1)
                self.promise_volumes(pod, names[row])
                if cls.one_pod:  # keyed on this pod's own claims: of no use to another pod
                    self.classes.pop((cls.profile.scheduler_name, cls.key) if where is None else
                                     (cls.profile.scheduler_name, cls.key, where), None)
            if not cls.eager and cls.heaps is not None:
                cls.replace(row)  # eager classes re-added it in touch(); a stale class rebuilds anyway
            results.append(PodResult(pod.uid, [(names[r], s) for r, s in cands]))
            i += 1
        if not commit:
            self.undo([pod for r, pod in zip(results[start_uids:], pods) if r.candidates], last)
        return results

    def undo(self, pods: list[PodInfo], last: list[int]) -> None:
        """Take back tentative placements (proposals, trials), and their nodes' turn among equal
        scores as it was in `last` (a copy of `NodeTable.last` from before them): a proposal
        leaves the engine as it found it."""
        t = self.table
        for pod in pods:
            row = t.charged.get(pod.uid)
            self.remove_pod(pod.uid)
            pod.node_name = ""
            if row is not None and row < len(last):
                t.last[row] = last[row]

    def schedule_gang(self, pods: list[PodInfo], min_count: int, k: int = 1, commit: bool = True,
                      topology_key: str = "", placed_nodes: Sequence[str] = ()) -> tuple[list[PodResult], bool]:
        """All or nothing: place a gang's members in order, each seeing the ones placed before it
        (through the normal filters and scores), and keep the placements only if at least
        `min_count` fit; the members that did not fit stay pending. Otherwise every placement is
        undone (nothing of the gang holds capacity) and False is returned with the results, whose
        reasons say why the members that failed did not fit. With commit=False the placements
        are undone either way (the caller assumes what it accepts, as with `schedule`).

        With a `topology_key` the members go to nodes of one value of that label, chosen as
        upstream's topology-aware scheduling chooses (`topology_placement`); `placed_nodes` are
        the nodes of the group's pods already placed, whose value is then the only one."""
        if topology_key:
            place = self._best_placement(pods, min_count, k, topology_key, placed_nodes)
            if isinstance(place, list):
                return place, False
        else:
            place = None
        last = self.table.last[:]
        results = self.schedule(pods, k=k, commit=True, placement=place)
        if place is not None:  # the members that do not fit say where they were tried
            results = [r if r.candidates else replace(r, note=f"in placement {place.key}={place.name}")
                       for r in results]
        placed = sum(1 for r in results if r.candidates)
        ok = placed >= min_count
        if ok and commit:
            return results, True
        self.undo([pod for r, pod in zip(results, pods) if r.candidates], last)
        return results, ok

    def _best_placement(self, pods: list[PodInfo], min_count: int, k: int, key: str,
                        placed_nodes: Sequence[str]) -> Placement | list[PodResult]:
        """The topology placement a gang goes to, or every member's result saying why none holds
        it. Each placement is simulated as upstream does (the gang alone on its nodes, undone
        after), in the order of an upper bound on its score (all members placed, which MostAllocated
        can only score higher): once one holds every member (so the pod count's normalizer is
        known), a placement whose bound does not beat the best score so far is not simulated.
        Exact up to ties, which upstream breaks at random."""
        t = self.table

        def fail(note: str, results: list[PodResult] | None = None) -> list[PodResult]:
            if results is None:  # as a PreFilter's reason, for every node
                return [PodResult(p.uid, reasons={}, num_nodes=self.num_nodes(), prefilter=note) for p in pods]
            return [replace(r, note=note) for r in results]  # (those that fit there keep their node)

        required = None
        for node in placed_nodes:
            row = t.index.get(node)
            value = t.labels[row].get(key) if row is not None else None
            if value is None:
                return fail(f"the pod group's placed pods are on node {node}, which has no label {key}")
            if required is not None and value != required:
                return fail(f"the pod group's placed pods are in more than one {key} domain "
                            f"({required}, {value})")
            required = value
        places = topology_placement.generate(t, self.candidate_rows(), key, required)
        if not places:
            where = f"{key}={required}" if required is not None else key
            return fail(f"0/0 placements are available: no node has the label {where}")
        prof = self.profiles.get(pods[0].scheduler_name, self.profile)
        w_fit = prof.weight(node_resources_fit.NAME)
        want_all = topology_placement.pod_requests(pods)
        top = topology_placement.MAX_NODE_SCORE  # PodGroupPodsCount's most
        bounds = [(top + w_fit * topology_placement.fit_score(t, pl, want_all, prof) if w_fit else top, pl)
                  for pl in places]
        bounds.sort(key=lambda bp: -bp[0])  # stable: by name within a bound
        feasible: list[tuple[Placement, list[PodInfo]]] = []
        closest: tuple[Placement, list[PodResult], int] | None = None  # the infeasible one holding most
        best_total, max_count = -1, 0
        for bound, pl in bounds:
            if max_count == len(pods) and bound <= best_total:
                break  # every placement left scores at most the best one's: it stays the first found
            last = t.last[:]
            results = self.schedule(pods, k=k, commit=True, placement=pl)
            got = [p for p, r in zip(pods, results) if r.candidates]
            self.undo(got, last)
            if len(got) < min_count:
                if closest is None or len(got) > closest[2]:
                    closest = (pl, results, len(got))
                continue
            feasible.append((pl, got))
            max_count = max(max_count, len(got))
            if max_count == len(pods):
                best_total = max(self._placement_score(pl, got, len(pods), len(placed_nodes), w_fit, prof)
                                 for pl, got in feasible)
        if not feasible:  # (upstream reports the first placement it tried; the closest says more)
            assert closest is not None
            pl, results, _n = closest
            return fail(f"0/{len(places)} placements of {key} are available, the closest ({pl.name})", results)
        # the first of the best (max keeps the first): the order they were evaluated in
        best = max(feasible, key=lambda f: self._placement_score(f[0], f[1], max_count, len(placed_nodes), w_fit, prof))
        return best[0]

    def _placement_score(self, pl: Placement, got: list[PodInfo], max_count: int, placed: int, w_fit: int,
                         prof: Profile) -> int:
        """The placement scores summed with their weights (PodGroupPodsCount's is 1)."""
        s = topology_placement.pods_count_score(placed + len(got), placed + max_count)
        if w_fit:
            s += w_fit * topology_placement.fit_score(self.table, pl, topology_placement.pod_requests(got), prof)
        return s

    def tie_key(self, node: str) -> tuple[int, int]:
        """How a node ranks among equal scores, as the class heaps rank rows: placed on longest
        ago first, then the lower row (used to merge the partitions' proposals)."""
        t = self.table
        row = t.index.get(node)
        return (0, -1) if row is None else (t.last[row], row)

    def check(self, pod: PodInfo, node: str) -> bool:
        """Would `node` pass every filter for this pod (its profile's) now? The coordinator's
        commit-time check."""
        self.sync_attachments()
        row = self.table.index.get(node)
        if row is None:
            return False
        key = self.pod_key(pod)
        if not isinstance(key, PodSpecKey):
            return False
        profile = self.profiles.get(pod.scheduler_name, self.profile)
        key = self.class_key(key)
        cls = self.classes.get((profile.scheduler_name, key))
        if cls is None:  # filters only: the ledger checks one node, it never picks
            ck = (profile.scheduler_name, key)
            cls = self.check_classes.get(ck)
            if cls is None:
                cls = ClassState(self, key, profile, check_only=True)
                if not cls.one_pod:  # one pod's classes are of no use to another pod
                    self.check_classes[ck] = cls
                    if len(self.check_classes) > self.max_classes:
                        self.check_classes.popitem(last=False)
            else:
                self.check_classes.move_to_end(ck)
        return cls.check_row(row)
