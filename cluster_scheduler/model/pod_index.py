"""Pod index: per-node counts of pods that match each selector the pending pods care about.

Inter-pod affinity, anti-affinity and topology spread are decided on these global counts, never on
one shard's partial view: every engine replica (partition or coordinator) sees every pod, on every
node, and only the *candidate* nodes are sharded. Counts are kept per node row; a topology domain's
count is a bincount over the label column of its key, so a zone, a rack or a hostname all work alike.

A nominated preemptor held on its node while its victims leave is charged as *waiting*: matchers
count it, and also keep it apart (`Counts.waiting`), because upstream runs the filters with and
without nominated pods and a pod must pass both. So a waiting pod can make a node infeasible (anti-
affinity, a domain's spread count) but can never be the pod that another pod's required affinity or
spread minimum relies on: it may still move, or never bind.

Two kinds of entries, both updated incrementally as pods are charged and uncharged:
- matchers: "pods matching this term / this spread selector", registered on first use (one scan of
  the charged pods), then maintained on every charge. A charge tests only the matchers its pod
  could match: most selectors name a label value every match must carry (`_anchor`), so matchers
  are filed under it, and a cluster with a thousand distinct terms (one per job, say) does not pay a
  thousand selector tests per placement;
- holders: "pods that *carry* this (anti-)affinity term", for the symmetric rules (an existing pod's
  required anti-affinity repels an incoming pod; existing pods' terms add to its score).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from .node_table import NodeTable
from .types import LabelSelector, PodAffinityTerm, PodSpecKey

# holder kinds
REQ_AFFINITY = "affinity"
REQ_ANTI = "anti"
PREF_AFFINITY = "pref_affinity"
PREF_ANTI = "pref_anti"


@dataclass(slots=True)
class Counts:
    """Per-row pod counts for one matcher or holder kind; `total` avoids a scan for 'any at all'."""

    per_row: np.ndarray
    total: int = 0
    gen: int = 0  # bumped on every change: classes that read this notice
    cache: dict[PodSpecKey, bool] = field(default_factory=dict)
    last: tuple[int, int] = (-1, 0)  # (row, delta) of the latest change, for O(1) follow-up
    waiting: np.ndarray | None = None  # the waiting (nominated) pods among per_row, once there is one
    n_waiting: int = 0

    def add(self, row: int, delta: int, waiting: bool = False) -> None:
        self.per_row[row] += delta
        self.total += delta
        self.gen += 1
        self.last = (row, delta)
        if waiting:
            if self.waiting is None:
                self.waiting = np.zeros_like(self.per_row)
            self.waiting[row] += delta
            self.n_waiting += delta

    def settle(self, row: int) -> None:
        """One waiting pod counted at `row` is now an ordinary one (per_row is unchanged)."""
        self.waiting[row] -= 1
        self.n_waiting -= 1
        self.gen += 1
        self.last = (row, 0)

    def settled_at(self, row: int) -> int:
        return int(self.per_row[row] - (self.waiting[row] if self.n_waiting else 0))

    def settled(self) -> np.ndarray:
        """per_row without the waiting pods: the counts of the filters' second pass."""
        if not self.n_waiting:
            return self.per_row
        return self.per_row - self.waiting


MatcherKey = tuple
Anchor = tuple[str, frozenset[str]] | None  # (label key, values): every match carries one of them


def _anchor(selector: LabelSelector | None) -> Anchor:
    """A label every pod the selector matches must carry, if the selector names one (a
    matchLabels pair, or an `In` expression); None when any pod might match. A `None` selector
    (matches nothing) is anchored on a value no label has."""
    if selector is None:
        return ("", frozenset())
    for k, v in selector.match_labels:
        return (k, frozenset((v,)))
    for r in selector.match_expressions:
        if r.operator == "In":
            return (r.key, frozenset(r.values))
    return None


class PodIndex:
    def __init__(self, table: NodeTable) -> None:
        self.table = table
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self.matchers: dict[MatcherKey, tuple[Callable[[PodSpecKey], bool], Counts]] = {}
        self._anchors: dict[MatcherKey, Anchor] = {}
        self._by_label: dict[tuple[str, str], dict[MatcherKey, None]] = {}  # anchored matchers
        self._unanchored: dict[MatcherKey, None] = {}  # matchers every pod is tested against
        self.holders: dict[tuple[str, PodAffinityTerm, int], Counts] = {}
        self._labels_cache: dict[tuple, dict[str, str]] = {}
        self.holders_gen = 0  # bumped when a new kind of held term appears
        self.waiting: set[str] = set()  # uids of the waiting pods charged (see the module docstring)

    def labels_of(self, key: PodSpecKey) -> dict[str, str]:
        d = self._labels_cache.get(key.labels)
        if d is None:
            d = dict(key.labels)
            if len(self._labels_cache) > 100_000:
                self._labels_cache.clear()
            self._labels_cache[key.labels] = d
        return d

    def _new_counts(self) -> Counts:
        return Counts(np.zeros(self.table.capacity, dtype=np.int64))

    def _fit(self, c: Counts) -> Counts:
        if c.per_row.shape[0] < self.table.capacity:
            c.per_row = self._grown(c.per_row)
            if c.waiting is not None:
                c.waiting = self._grown(c.waiting)
        return c

    def _grown(self, a: np.ndarray) -> np.ndarray:
        grown = np.zeros(self.table.capacity, dtype=np.int64)
        grown[: a.shape[0]] = a
        return grown

    # ------------------------------------------------------------ matchers
    def _matcher(self, mkey: MatcherKey, fn: Callable[[PodSpecKey], bool], anchor: Anchor) -> Counts:
        entry = self.matchers.get(mkey)
        if entry is None:
            counts = self._new_counts()
            for row, pods in enumerate(self.table.pods):
                for uid, key in pods.items():
                    if fn(key):
                        counts.add(row, 1, uid in self.waiting)
            entry = (fn, counts)
            self.matchers[mkey] = entry
            self._anchors[mkey] = anchor
            if anchor is None:
                self._unanchored[mkey] = None
            else:
                for v in anchor[1]:
                    self._by_label.setdefault((anchor[0], v), {})[mkey] = None
        return self._fit(entry[1])

    def _candidates(self, key: PodSpecKey):
        """The matchers a pod of `key` may match: the unanchored ones and those filed under one
        of its labels (a pod has one value per label key, so none comes twice)."""
        yield from self._unanchored
        by_label = self._by_label
        if by_label:
            for kv in key.labels:
                bucket = by_label.get(kv)
                if bucket:
                    yield from bucket

    def term_matches(self, term: PodAffinityTerm, key: PodSpecKey) -> bool:
        return term.matches_pod(self.labels_of(key), key.namespace, self.namespace_labels)

    def term_counts(self, term: PodAffinityTerm) -> Counts:
        """Pods matching one (anti-)affinity term."""
        return self._matcher(("term", term), lambda k: self.term_matches(term, k), _anchor(term.selector))

    def all_terms_counts(self, terms: tuple[PodAffinityTerm, ...]) -> Counts:
        """Pods matching *every* term: what required pod affinity counts, as upstream."""
        anchor = next((a for a in map(_anchor, (t.selector for t in terms)) if a is not None), None)
        return self._matcher(("all", terms), lambda k: all(self.term_matches(t, k) for t in terms), anchor)

    def spread_counts(self, selector: LabelSelector | None, namespace: str) -> Counts:
        """Pods in `namespace` matching a spread constraint's selector (spread is namespaced)."""
        if selector is None:
            return self._matcher(("none",), lambda k: False, _anchor(None))
        return self._matcher(("spread", selector, namespace),
                             lambda k: k.namespace == namespace and selector.matches(self.labels_of(k)),
                             _anchor(selector))

    def matches(self, mkey: MatcherKey, key: PodSpecKey) -> bool:
        fn, counts = self.matchers[mkey]
        hit = counts.cache.get(key)
        if hit is None:
            hit = fn(key)
            if len(counts.cache) > 10_000:
                counts.cache.clear()
            counts.cache[key] = hit
        return hit

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str]) -> None:
        """Namespace labels feed namespaceSelector terms; a change re-registers affected matchers."""
        if self.namespace_labels.get(namespace) == dict(labels):
            return
        self.namespace_labels[namespace] = dict(labels)
        for mkey in [m for m in self.matchers if m[0] in ("term", "all")]:
            fn, _ = self.matchers.pop(mkey)  # recounted; its anchor (the selector's) is filed already
            self._matcher(mkey, fn, self._anchors[mkey])

    # ------------------------------------------------------------- holders
    @staticmethod
    def held_terms(key: PodSpecKey):
        """(kind, term, weight) of every (anti-)affinity term, required and preferred, `key` carries."""
        for t in key.pod_affinity:
            yield (REQ_AFFINITY, t, 0)
        for t in key.pod_anti_affinity:
            yield (REQ_ANTI, t, 0)
        for wt in key.preferred_pod_affinity:
            yield (PREF_AFFINITY, wt.term, wt.weight)
        for wt in key.preferred_pod_anti_affinity:
            yield (PREF_ANTI, wt.term, wt.weight)

    # ---------------------------------------------------------- pod events
    def tracks(self, key: PodSpecKey) -> bool:
        """Does charging a pod of this key change any count? (No matchers and no held terms: no.)"""
        return bool(self.matchers or key.pod_affinity or key.pod_anti_affinity
                    or key.preferred_pod_affinity or key.preferred_pod_anti_affinity)

    def on_charge(self, key: PodSpecKey, row: int, delta: int = 1, waiting: bool = False) -> None:
        if not self.tracks(key):
            return
        matchers = self.matchers
        for mkey in self._candidates(key):
            if self.matches(mkey, key):
                self._fit(matchers[mkey][1]).add(row, delta, waiting)
        for h in self.held_terms(key):
            c = self.holders.get(h)
            if c is None:
                c = self.holders[h] = self._new_counts()
                self.holders_gen += 1
            self._fit(c).add(row, delta)

    def charge(self, uid: str, key: PodSpecKey, row: int, waiting: bool = False) -> None:
        """`on_charge` for one pod, remembering it if it is waiting (for `uncharge` and `settle`)."""
        if waiting:
            self.waiting.add(uid)
        self.on_charge(key, row, waiting=waiting)

    def uncharge(self, uid: str, key: PodSpecKey, row: int) -> None:
        """Undo `charge` (or `on_charge`), waiting or not."""
        waiting = uid in self.waiting
        if waiting:
            self.waiting.discard(uid)
        self.on_charge(key, row, -1, waiting)

    def settle(self, uid: str, key: PodSpecKey, row: int) -> None:
        """A waiting pod becomes an ordinary one where it is (its victims are gone)."""
        self.waiting.discard(uid)
        if not self.tracks(key):
            return
        for mkey in self._candidates(key):
            if self.matches(mkey, key):
                self._fit(self.matchers[mkey][1]).settle(row)

    # -------------------------------------------------------------- domains
    def domain_counts(self, counts: Counts, topology_key: str, rows: np.ndarray | None = None,
                      settled: bool = False) -> np.ndarray:
        """Count per value id of `topology_key` (index = value id), over `rows` (default: all);
        `settled`: without the waiting pods."""
        t = self.table
        col = t.label_column(topology_key)
        n = t.size
        per_row = counts.settled() if settled else counts.per_row
        if rows is None:
            sel = col[:n] >= 0
            vids = col[:n][sel]
            w = per_row[:n][sel]
        else:
            vids = col[rows]
            keep = vids >= 0
            vids = vids[keep]
            w = per_row[rows][keep]
        return np.bincount(vids, weights=w, minlength=t.vocab_size(topology_key)).astype(np.int64)
