"""PostFilter: priority preemption with the semantics of upstream's DefaultPreemption
(`pkg/scheduler/framework/plugins/defaultpreemption`, `framework/preemption`), over one engine.

When no node fits a pod, pods of lower priority may be evicted to make room:

- only a pod whose `preemptionPolicy` is not `Never`, and only on nodes that failed for reasons
  removing pods can cure (resources, ports, anti-affinity of existing pods, spread skew), not for
  taints, selectors, node affinity, a missing topology label or unmatched pod affinity;
- on a node, every lower-priority pod is removed; if the pod then fits, victims are reprieved one
  by one, most important first (priority, then a PodGroup's member, then the older), those whose
  eviction would break a PodDisruptionBudget first: a pod stays if the preemptor still fits with
  it back. A pod of a PodGroup is weighed here at its group's priority (`victim_priority`);
- the node is chosen in upstream's order, by the victims' own priorities: fewest PDB violations,
  lowest priority of the first victim, lowest sum of priorities, fewest victims, latest start of
  the highest-priority victims;
- pods already terminating (being evicted, or deleted by someone else) are victims like the others,
  with no second eviction; a nominated preemptor (`held`) is never a victim: it holds its room
  against pods of its priority or lower, and a preemptor of higher priority does not see it at all
  and clears its nomination when it takes the node (upstream's getLowerPriorityNominatedPods).

Where we differ from upstream (documented in docs/engine.md):
- upstream dry-runs a random sample of max(10% of the nodes, 100) candidates; we rank every node
  that preemption can help, best first by a lower bound of upstream's criteria (branch and bound:
  `VictimIndex.lower` bounds each node in a few numpy passes, and exact victim selection runs only
  on nodes whose bound can still beat the best found), so the node chosen is the best by
  upstream's own order over all nodes;
- a victim's start time is its creationTimestamp (no kubelet sets status.startTime here; upstream
  reads startTime and takes "now" when it is unset, which ties every node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .engine import fit_error_message
from .model.types import DisruptionBudget, PodInfo
from .plugins import inter_pod_affinity, node_resources_fit, pod_topology_spread, volume_restrictions

if TYPE_CHECKING:
    from .engine import ClassState, Engine

# upstream's PostFilter texts (the pod's message is the FitError, then "preemption: " and these)
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
# filter reasons that no eviction can cure (upstream: UnschedulableAndUnresolvable)
UNRESOLVABLE = frozenset({inter_pod_affinity.REASON_AFFINITY, pod_topology_spread.REASON_MISSING})
PRIORITY_OFFSET = 2**31  # upstream adds MaxInt32+1 to each priority before summing
LOWEST = -(2**62)  # below any priority (int32): the bound of a node that may need no victim
NO_VICTIM_RANK = (0, LOWEST, 0, 0, 0.0)


def victim_priority(p: PodInfo, groups: dict[tuple[str, str], int]) -> int:
    """A victim's priority as upstream 1.37 weighs it (GetPodPriority): a pod of a PodGroup the
    scheduler knows has its group's (`groups`: spec.priority by namespace and name, 0 when unset),
    any other pod its own."""
    if p.pod_group:
        return groups.get((p.namespace, p.pod_group), p.priority)
    return p.priority


@dataclass(slots=True)
class Candidate:
    """A node and the pods to evict there, most important first."""

    node: str
    victims: list[PodInfo]
    pdb_violations: int = 0
    # lower-priority preemptors nominated to the node: their nomination is cleared
    bumped: list[PodInfo] = field(default_factory=list)

    @property
    def rank(self) -> tuple:
        """Upstream's pickOneNodeForPreemption order as one key: smaller is better. No victim
        (the room is held only by lower-priority nominations) beats any eviction: upstream's
        filters, which do not see those nominations, would have placed the pod there."""
        if not self.victims:
            return NO_VICTIM_RANK
        # upstream ranks nodes by the victims' own priorities (corev1helpers.PodPriority), the
        # first victim's (the most important, by victim priority) and the earliest start among
        # those of the highest, even where a victim's PodGroup weighs it otherwise
        top = max(v.priority for v in self.victims)
        earliest = min(v.creation_ts for v in self.victims if v.priority == top)
        return (self.pdb_violations, self.victims[0].priority,
                sum(v.priority + PRIORITY_OFFSET for v in self.victims), len(self.victims), -earliest)


@dataclass(slots=True)
class GangCandidate:
    """A gang's placement after preemption: (member, node) for the members that fit, the pods
    to evict anywhere in the cluster (most important first), and the lower nominations cleared."""

    assignments: list[tuple[PodInfo, str]]
    victims: list[PodInfo]
    pdb_violations: int = 0
    bumped: list[PodInfo] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    """What PostFilter found: a candidate, or the message upstream appends to the fit error."""

    candidate: Candidate | None = None
    message: str = ""
    nodes_evaluated: int = 0  # exact victim selections run (the rest were bounded out)
    reasons: dict[str, int] = field(default_factory=dict)  # why each node of this engine's shard is no candidate


def postfilter_message(text: str) -> str:
    return f"preemption: {text}"


def split_by_pdb(victims: Sequence[PodInfo],
                 pdbs: Sequence[DisruptionBudget]) -> tuple[list[PodInfo], list[PodInfo]]:
    """(violating, non-violating), each in the given order (most important first), as upstream's
    FilterVictimsWithPDBViolation: each covering budget is charged once per victim, in order, and
    a victim is violating once a budget it is charged to goes below zero (later budgets are then
    not charged for it); pods the apiserver already counts as disrupted are not charged."""
    allowed = [b.disruptions_allowed for b in pdbs]
    violating: list[PodInfo] = []
    ok: list[PodInfo] = []
    for v in victims:
        (violating if _charge(v, pdbs, allowed) else ok).append(v)
    return violating, ok


def _charge(v: PodInfo, pdbs: Sequence[DisruptionBudget], allowed: list[int]) -> bool:
    """Charge `v`'s eviction to the budgets covering it (`allowed`, in place); True when one of
    them goes below zero (later budgets are then not charged for it)."""
    labels = v.labels
    for i, b in enumerate(pdbs):
        if not b.covers(v.namespace, labels) or v.name in b.disrupted:
            continue
        allowed[i] -= 1
        if allowed[i] < 0:
            return True
    return False


class VictimIndex:
    """Every charged pod of an engine as numpy columns (row, own and victim priority, start,
    requests, held), kept in step through the node table's charge log, so that the per-node bounds
    for a preemptor of priority p are a few vector passes instead of a walk over every pod."""

    def __init__(self, engine: "Engine", held: dict[str, int], groups: dict[tuple[str, str], int]) -> None:
        self.engine = engine
        self.held_uids = held  # the Preemption's nominated preemptors (never victims)
        self.groups = groups  # the Preemption's PodGroup priorities (victim_priority)
        self.slot: dict[str, int] = {}
        self.free: list[int] = []
        self.size = 0
        engine.table.start_log()
        self._reload()

    def _reload(self) -> None:
        """Every charged pod at once (columns built from lists, requests per distinct key)."""
        table, pods = self.engine.table, self.engine.pods
        table.drain_log()
        self.slot.clear()
        self.free.clear()
        uids, rows, prios, eprios, tss, kidx, held = [], [], [], [], [], [], []
        keys: dict = {}
        for uid, row in table.charged.items():
            key = table.pods[row][uid]
            k = keys.get(key)
            if k is None:
                k = keys[key] = len(keys)
            pod = pods.get(uid)
            uids.append(uid)
            rows.append(row)
            prios.append(pod.priority if pod is not None else 0)
            eprios.append(victim_priority(pod, self.groups) if pod is not None else 0)
            tss.append(pod.creation_ts if pod is not None else 0.0)
            held.append(uid in self.held_uids)
            kidx.append(k)
        n = len(uids)
        cap = max(1024, 1 << (n + 1).bit_length())
        width = len(table.resources)
        per_key = np.zeros((max(1, len(keys)), width), dtype=np.int64)
        for key, k in keys.items():
            for c, v in table.request_items(key):
                if c >= per_key.shape[1]:
                    per_key = np.pad(per_key, ((0, 0), (0, c + 1 - per_key.shape[1])))
                per_key[k, c] = v
        self.row = np.full(cap, -1, dtype=np.int64)
        self.prio = np.zeros(cap, dtype=np.int64)  # the pod's own (upstream ranks nodes by it)
        self.eprio = np.zeros(cap, dtype=np.int64)  # victim_priority: who may be a victim
        self.ts = np.zeros(cap, dtype=np.float64)
        self.held = np.zeros(cap, dtype=bool)  # a nominated preemptor: room, never a victim
        self.req = np.zeros((cap, per_key.shape[1]), dtype=np.int64)
        if n:
            self.row[:n] = rows
            self.held[:n] = held
            self.prio[:n] = prios
            self.eprio[:n] = eprios
            self.ts[:n] = tss
            self.req[:n] = per_key[np.asarray(kidx, dtype=np.int64)]
        self.slot = dict(zip(uids, range(n)))
        self.size = n

    def _grow(self) -> None:
        cap = len(self.row) * 2
        self.row = np.concatenate([self.row, np.full(cap - len(self.row), -1, dtype=np.int64)])
        self.held = np.resize(self.held, cap)
        self.prio = np.resize(self.prio, cap)
        self.eprio = np.resize(self.eprio, cap)
        self.ts = np.resize(self.ts, cap)
        req = np.zeros((cap, self.req.shape[1]), dtype=np.int64)
        req[: len(self.req)] = self.req
        self.req = req

    def _add(self, uid: str, row: int) -> None:
        if uid in self.slot:
            self._remove(uid)
        pod = self.engine.pods.get(uid)
        table = self.engine.table
        if self.free:
            s = self.free.pop()
        else:
            if self.size == len(self.row):
                self._grow()
            s = self.size
            self.size += 1
        self.slot[uid] = s
        self.row[s] = row
        self.held[s] = uid in self.held_uids
        self.prio[s] = pod.priority if pod is not None else 0
        self.eprio[s] = victim_priority(pod, self.groups) if pod is not None else 0
        self.ts[s] = pod.creation_ts if pod is not None else 0.0
        self.req[s] = 0
        key = table.pods[row].get(uid)
        if key is not None:
            items = table.request_items(key)
            width = max((c for c, _ in items), default=-1) + 1
            if width > self.req.shape[1]:
                self.req = np.pad(self.req, ((0, 0), (0, width - self.req.shape[1])))
            for c, v in items:
                self.req[s, c] = v

    def _remove(self, uid: str) -> None:
        s = self.slot.pop(uid, None)
        if s is not None:
            self.row[s] = -1
            self.free.append(s)

    def min_priority(self) -> int | None:
        """The lowest victim priority of any charged pod (None when there is none)."""
        self.sync()
        n = self.size
        alive = self.row[:n] >= 0
        return int(self.eprio[:n][alive].min()) if alive.any() else None

    def regroup(self) -> None:
        """The PodGroup priorities changed: every victim priority again."""
        pods = self.engine.pods
        for uid, s in self.slot.items():
            pod = pods.get(uid)
            self.eprio[s] = victim_priority(pod, self.groups) if pod is not None else 0

    def sync(self) -> None:
        log = self.engine.table.drain_log()
        if log is None:
            self._reload()
            return
        for uid, row in log:
            if row < 0:
                self._remove(uid)
            else:
                self._add(uid, row)

    def mark_held(self, uid: str) -> None:
        """A pod's nomination began or ended (`held_uids` already says which)."""
        self.sync()
        s = self.slot.get(uid)
        if s is not None:
            self.held[s] = uid in self.held_uids

    def lower(self, priority: int, nrows: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple]:
        """Per table row, over the possible victims (pods of lower victim priority than
        `priority`, held nominations aside): their summed requests and their largest single
        request (rows x resources), how many, their lowest own priority and their latest start;
        the summed requests of the lower-priority nominations there (room the preemptor does not
        see); and the possible victims themselves (row, own priority, start: for
        `latest_earliest`). Own priorities bound the node rank, which upstream builds from them."""
        self.sync()
        n = self.size
        alive = self.row[:n] >= 0
        held = self.held[:n]
        m = alive & (self.eprio[:n] < priority) & ~held
        low = alive & (self.prio[:n] < priority)
        rows = self.row[:n][m]
        width = max(self.req.shape[1], len(self.engine.table.resources))
        freeable = np.zeros((nrows, width), dtype=np.int64)
        biggest = np.zeros((nrows, width), dtype=np.int64)
        ignorable = np.zeros((nrows, width), dtype=np.int64)
        req = self.req[:n][m]
        for c in range(self.req.shape[1]):
            if req[:, c].any():
                freeable[:, c] = np.bincount(rows, weights=req[:, c], minlength=nrows)[:nrows]
                np.maximum.at(biggest[:, c], rows, req[:, c])
        h = low & held
        if h.any():
            hrows, hreq = self.row[:n][h], self.req[:n][h]
            for c in range(self.req.shape[1]):
                ignorable[:, c] = np.bincount(hrows, weights=hreq[:, c], minlength=nrows)[:nrows]
        count = np.bincount(rows, minlength=nrows)[:nrows]
        minp = np.full(nrows, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(minp, rows, self.prio[:n][m])
        maxts = np.full(nrows, -np.inf)
        np.maximum.at(maxts, rows, self.ts[:n][m])
        return freeable, biggest, count, minp, maxts, ignorable, (rows, self.prio[:n][m], self.ts[:n][m])

    @staticmethod
    def latest_earliest(possible: tuple, count: np.ndarray, minp: np.ndarray, maxts: np.ndarray,
                        rows: np.ndarray, k: np.ndarray) -> np.ndarray:
        """From `lower`'s possible victims, counts, lowest priorities and latest starts: per row
        of `rows`, the latest start the earliest of any `k` (or more) of its possible victims can have, where they all share one priority (any k of
        them are then the victims of the top priority): the k-th latest start; `maxts` elsewhere
        (a victim of the top priority may be alone). A bound on upstream's last ranking criterion
        (latest earliest start) that is exact when every possible victim must go, so that nodes
        alike in everything but their pods' start times are not each dry-run."""
        vrows, prio, ts = possible
        out = maxts[rows].copy()
        if not len(vrows):
            return out
        order = np.lexsort((-ts, vrows))  # by row, latest start first
        srows, sts, sprio = vrows[order], ts[order], prio[order]
        first = np.searchsorted(srows, rows)
        maxp = np.full(len(count), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(maxp, srows, sprio)
        one = minp == maxp  # rows whose possible victims share one priority
        ok = one[rows] & (k >= 1) & (k <= count[rows])
        pos = first[ok] + k[ok] - 1
        out[ok] = sts[pos]
        return out


@dataclass(slots=True)
class Preemption:
    """DefaultPreemption for one engine (the simulator's, a partition's or the coordinator's
    ledger): `preempt(pod)` finds the best candidate without changing anything."""

    engine: "Engine"
    pdbs: list[DisruptionBudget] = field(default_factory=list)
    index: VictimIndex | None = None
    # pods whose eviction is under way (the coordinator's): never evicted twice, and a preemptor
    # nominated where one of them still runs waits instead of preempting more
    evicting: set[str] = field(default_factory=set)
    # nominated preemptors (uid -> priority), assumed on their node: never victims; invisible to
    # a preemptor of higher priority, whose candidate then lists them in `bumped`
    held: dict[str, int] = field(default_factory=dict)
    # PodGroup priorities by (namespace, name): a victim in a group is weighed at its group's
    # (`victim_priority`); change them through `set_groups`
    groups: dict[tuple[str, str], int] = field(default_factory=dict)
    # PodGroups in disruptionMode All: a victim among their pods is all of their placed pods
    whole: set[tuple[str, str]] = field(default_factory=set)
    # outcomes by (pod key, priority) while the engine has not changed: a run of identical pods
    # that cannot preempt is diagnosed once
    _memo: dict = field(default_factory=dict)
    _memo_stamp: tuple = ()
    _min_prio: tuple = ((), None)
    _groups_version: int = 0
    # placed pods of each `whole` group (held nominations aside), as of `_members_stamp`
    _members: dict[tuple[str, str], list[PodInfo]] = field(default_factory=dict)
    # per such group: (members placed, earliest start, lowest and highest own priority)
    _member_info: dict[tuple[str, str], tuple[int, float, int, int]] = field(default_factory=dict)
    _members_stamp: tuple = ()

    def _stamp(self) -> tuple:
        e = self.engine
        return (e.placements, e.epoch, len(e.pods), len(self.pdbs), len(self.evicting), len(self.held),
                self._groups_version)

    def set_groups(self, groups: dict[tuple[str, str], int], whole: set[tuple[str, str]] = frozenset()) -> None:
        """The PodGroups' priorities as they are now (all of them: any not named counts as gone),
        and which of them are disrupted only whole."""
        if groups != self.groups or whole != self.whole:
            self.groups.clear()
            self.groups.update(groups)
            self.whole.clear()
            self.whole.update(whole)
            self._regroup()

    def set_group(self, key: tuple[str, str], priority: int | None, whole: bool = False) -> None:
        """One PodGroup's priority and disruption mode (None: the group is gone, its pods weigh
        their own again, each alone)."""
        if self.groups.get(key) != priority or (key in self.whole) != whole:
            if priority is None:
                self.groups.pop(key, None)
                self.whole.discard(key)
            else:
                self.groups[key] = priority
                if whole:
                    self.whole.add(key)
                else:
                    self.whole.discard(key)
            self._regroup()

    def _regroup(self) -> None:
        self._groups_version += 1
        if self.index is not None:
            self.index.regroup()

    def priority_of(self, q: PodInfo) -> int:
        """`q`'s priority as a victim (its PodGroup's, where it has one)."""
        return victim_priority(q, self.groups)

    def _refresh_members(self) -> None:
        """The placed pods of each group disrupted only whole, once per engine state: called where
        a search starts, before it moves any pod."""
        if not self.whole:
            self._members, self._member_info = {}, {}
            return
        stamp = self._stamp()
        if stamp == self._members_stamp:
            return
        members: dict[tuple[str, str], list[PodInfo]] = {}
        for q in self.engine.pods.values():
            if q.pod_group and q.node_name and q.uid not in self.held:
                key = (q.namespace, q.pod_group)
                if key in self.whole:
                    members.setdefault(key, []).append(q)
        self._members, self._members_stamp = members, stamp
        self._member_info = {key: (len(ms), min(q.creation_ts for q in ms), min(q.priority for q in ms),
                                   max(q.priority for q in ms)) for key, ms in members.items()}

    def _units(self, lower: list[PodInfo]) -> list[list[PodInfo]]:
        """Upstream's victims (preemption units) among `lower`, most important first: each pod
        alone, but a pod of a group disrupted only whole stands for every placed pod of its group,
        wherever they run."""
        units: list[list[PodInfo]] = []
        seen: set[tuple[str, str]] = set()
        for q in lower:
            key = (q.namespace, q.pod_group)
            if q.pod_group and key in self.whole:
                if key not in seen:
                    seen.add(key)
                    units.append(self._members.get(key) or [q])
            else:
                units.append([q])
        units.sort(key=self._unit_importance)
        return units

    def _unit_importance(self, unit: list[PodInfo]) -> tuple[int, int, int, float]:
        """MoreImportantVictim over units: priority, a PodGroup's before a pod of none, the larger
        group, the one that started earlier."""
        q = unit[0]
        return -self.priority_of(q), -1 if q.pod_group else 0, -len(unit), min(v.creation_ts for v in unit)

    def _whole_floor(self, priority: int) -> int | None:
        """The lowest own priority among the pods of whole groups a preemptor of `priority` may
        evict (None when there is none): their members elsewhere join a node's victims, so the
        node bounds must allow for them."""
        return min((lo for key, (_n, _t, lo, _hi) in self._member_info.items()
                    if self.groups.get(key, priority) < priority), default=None)

    def _unit_bounds(self, pod: PodInfo, rows: np.ndarray, lb_k: np.ndarray,
                     none_needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Victim-count and start bounds per row where whole groups may be victims. At least
        `lb_k` of the row's own pods must go; a unit brings its size in victims for the pods it
        has on the row, so the victims number at least lb_k times the smallest such ratio, and at
        least u units go (the fewest whose pods on the row reach lb_k). Where every possible
        victim (members elsewhere included) has one own priority, the earliest victim started no
        later than the u-th latest of the units' earliest starts (else no start bound)."""
        info = self._member_info
        t, pods = self.engine.table, self.engine.pods
        out_k = lb_k.copy()
        out_t = np.where(none_needed, 0.0, -np.inf)
        for j in np.flatnonzero(~none_needed).tolist():
            units: dict = {}  # unit -> [pods on this row, size, earliest start, lowest and highest own priority]
            for uid in t.pods[int(rows[j])]:
                q = pods.get(uid)
                if q is None or uid in self.held or self.priority_of(q) >= pod.priority:
                    continue
                key = (q.namespace, q.pod_group)
                if q.pod_group and key in info:
                    u = units.get(key)
                    if u is None:
                        units[key] = [1, *info[key]]
                    else:
                        u[0] += 1
                else:
                    units[uid] = [1, 1, q.creation_ts, q.priority, q.priority]
            if not units:
                continue
            need = int(lb_k[j])
            ratio = min(u[1] / u[0] for u in units.values())
            out_k[j] = max(need, -(-need * ratio // 1))
            on_row = sorted((u[0] for u in units.values()), reverse=True)
            fewest, covered = 0, 0
            while covered < need and fewest < len(on_row):
                covered += on_row[fewest]
                fewest += 1
            if min(u[3] for u in units.values()) == max(u[4] for u in units.values()):
                starts = sorted((u[2] for u in units.values()), reverse=True)
                out_t[j] = -starts[max(fewest, 1) - 1]
        return out_k, out_t

    def lowest_priority(self) -> int | None:
        """The lowest priority of any pod placed now (None when there is none)."""
        if self.index is None:
            self.index = VictimIndex(self.engine, self.held, self.groups)
        stamp = self._stamp()
        if self._min_prio[0] != stamp:
            self._min_prio = (stamp, self.index.min_priority())
        return self._min_prio[1]

    def enabled(self, pod: PodInfo) -> bool:
        """Does the pod's profile run PostFilter (DefaultPreemption)? When it does not, a pod that
        fits nowhere is Unschedulable with the fit error alone, as upstream."""
        return pod.key is not None and self.engine.profile_of(pod.scheduler_name).preemption

    def may_preempt(self, pod: PodInfo, lowest: int | None) -> bool:
        """Cheap test before `preempt`: enabled, eligible, and some pod of lower priority runs
        (`lowest` from `lowest_priority`)."""
        return (not pod.preempt_never and lowest is not None and lowest < pod.priority
                and self.enabled(pod))

    def eligible(self, pod: PodInfo) -> str:
        """'' when the pod may preempt, else upstream's reason: its policy is Never, or it already
        preempted (it is nominated to a node) and a lower-priority pod there is still going."""
        if pod.preempt_never:
            return NOT_ELIGIBLE_NEVER
        if pod.nominated_node:
            t, pods = self.engine.table, self.engine.pods
            row = t.index.get(pod.nominated_node)
            if row is not None:
                for uid in t.pods[row]:
                    q = pods.get(uid)
                    if q is not None and self.priority_of(q) < pod.priority and (q.deleting or uid in self.evicting):
                        return NOT_ELIGIBLE_TERMINATING
        return ""

    def start_eviction(self, uid: str) -> None:
        """`uid` is being evicted: never evicted twice, and it marks its node as terminating."""
        self.evicting.add(uid)

    def end_eviction(self, uid: str) -> None:
        """`uid` is gone, or its eviction was given up."""
        self.evicting.discard(uid)

    def hold(self, uid: str, priority: int) -> None:
        """A preemptor nominated (assumed on its node): it holds the room, and is no victim."""
        self.held[uid] = priority
        if self.index is not None:
            self.index.mark_held(uid)

    def unhold(self, uid: str) -> None:
        """The nomination ended (bound, released, bumped or deleted)."""
        if self.held.pop(uid, None) is not None and self.index is not None:
            self.index.mark_held(uid)

    def to_evict(self, victims: list[PodInfo]) -> list[PodInfo]:
        """The victims whose deletion must still be asked (not terminating already)."""
        return [v for v in victims if not self._terminating(v)]

    def _terminating(self, v: PodInfo) -> bool:
        return v.deleting or v.uid in self.evicting

    def _reprieve_order(self, units: list[list[PodInfo]]) -> list[tuple[list[PodInfo], int]]:
        """Upstream's reprieve order over units (most important first): the PDB-violating ones
        first, then the rest, each with how many of its pods violate (a unit violates if any of its
        pods does: it is reprieved or evicted whole). Pods already terminating disrupt no budget
        further."""
        allowed = [b.disruptions_allowed for b in self.pdbs]
        violating, rest = [], []
        for unit in units:
            n = sum(_charge(v, self.pdbs, allowed) for v in unit if not self._terminating(v))
            (violating if n else rest).append((unit, n))
        return violating + rest

    def preempt(self, pod: PodInfo) -> Outcome:
        """Find the best candidate for `pod` (nothing is changed), or why there is none."""
        stamp = self._stamp()
        if stamp != self._memo_stamp:
            self._memo.clear()
            self._memo_stamp = stamp
        memo_key = (self.engine.pod_key(pod) if pod.has_volumes else pod.key, pod.priority, pod.preempt_never,
                    pod.nominated_node)
        out = self._memo.get(memo_key)
        if out is None:
            out = self._memo[memo_key] = self._preempt(pod)
        return out

    def _preempt(self, pod: PodInfo) -> Outcome:
        why = self.eligible(pod)
        if why:
            return Outcome(message=postfilter_message(why))
        e = self.engine
        if pod.key is None:
            return Outcome(message=postfilter_message(pod.error or "invalid pod spec"))
        if pod.has_volumes and isinstance(e.pod_key(pod), str):  # a PreFilter rejected it for every node
            n = e.num_nodes()
            return Outcome(message=postfilter_message(fit_error_message(n, {NOT_HELPFUL: n})))
        if self.index is None:
            self.index = VictimIndex(e, self.held, self.groups)
        self._refresh_members()
        cls = e.class_of(pod)
        if cls.stale():
            cls.build()
        rows = cls.ctx.rows
        resolvable = cls.static_ok.copy()  # a static filter's failure is the pod's own: no eviction cures it
        for _name, _ok, reasons in cls.diag:
            for mask, text in reasons:
                if text in UNRESOLVABLE:
                    resolvable &= ~mask
        if cls.propose is not None:  # a class built over every node: this shard's own rows
            rows, resolvable = rows[cls.propose], resolvable[cls.propose]
        n = len(rows)
        num_nodes = e.num_nodes()
        hist: dict[str, int] = {}
        if n == 0:  # no node of this shard (a partition that owns none)
            return Outcome(message=postfilter_message(fit_error_message(num_nodes, {NOT_HELPFUL: num_nodes})))
        t = e.table
        freeable, biggest, count, minp, maxts, ignorable, possible = self.index.lower(pod.priority, t.size)
        # a node held only by lower-priority nominations may need no victim at all
        open_room = ignorable[rows].any(axis=1)
        has = (count[rows] > 0) | open_room
        fits_bound = np.ones(n, dtype=bool)
        # fewest victims possible: each resource's shortfall over the largest single victim there
        k_lb = np.ones(n, dtype=np.int64)
        short_reasons: list[tuple[np.ndarray, str]] = []
        for col, v, res_name in node_resources_fit.requested_columns(cls.ctx):
            have = t.alloc[rows, col] - t.req[rows, col]
            inside = col < freeable.shape[1]
            if inside:
                have = have + ignorable[rows, col]
            free = have + (freeable[rows, col] if inside else 0)
            short = free < v
            fits_bound &= ~short
            short_reasons.append((short, node_resources_fit.reason(res_name)))
            if inside:
                need = v - have
                big = np.maximum(biggest[rows, col], 1)
                k_lb = np.maximum(k_lb, np.where(need > 0, -(-need // big), 1))
        pot = resolvable & has & fits_bound
        if volume_restrictions.rwop_in_use(cls.key) and not cls.key.host_ports:
            # a ReadWriteOncePod claim in use: only a node its holder runs on can be cured (with
            # every lower-priority pod gone, a node that passes the resource bound and has no
            # ports to check fails on VolumeRestrictions next, as upstream's dry run reports)
            held_at = {t.index.get(q.node_name, -1) for q in map(e.pods.get, e.storage.rwop_holders(pod))
                       if q is not None}
            away = pot & ~np.isin(rows, np.fromiter(held_at, dtype=np.int64, count=len(held_at)))
            _count(hist, volume_restrictions.REASON_RWOP, int(away.sum()))
            pot &= ~away
        # why the other nodes cannot be candidates, in upstream's words
        _count(hist, NOT_HELPFUL, int((~resolvable).sum()))
        _count(hist, NO_VICTIMS, int((resolvable & ~has).sum()))
        bounded = resolvable & has & ~fits_bound
        for short, text in short_reasons:
            _count(hist, text, int((bounded & short).sum()))
        idx = np.flatnonzero(pot)
        none_needed = open_room[idx]  # such a node's bound: no victim
        lb_p = np.where(none_needed, LOWEST, minp[rows[idx]])
        lb_k = np.where(none_needed, 0, k_lb[idx])
        lb_t = np.where(none_needed, 0.0, -VictimIndex.latest_earliest(possible, count, minp, maxts, rows[idx], k_lb[idx]))
        floor = self._whole_floor(pod.priority)
        if floor is not None:  # a whole group's members elsewhere may lower a node's top or sum, or start earlier
            lb_p = np.where(none_needed, LOWEST, np.minimum(lb_p, floor))
            lb_k, lb_t = self._unit_bounds(pod, rows[idx], lb_k, none_needed)
        order = np.lexsort((lb_t, lb_k, lb_k * (lb_p + PRIORITY_OFFSET), lb_p))
        best: Candidate | None = None
        best_rank: tuple | None = None
        evaluated = 0
        for j in order.tolist():  # best bound first; the bound tuple is built only when compared
            p = int(idx[j])
            row = int(rows[p])
            if best_rank is not None:
                bp, bk = int(lb_p[j]), int(lb_k[j])
                if (0, bp, bk * (bp + PRIORITY_OFFSET), bk, float(lb_t[j])) >= best_rank:
                    break  # every node left is bounded by at least this: none can do better
            evaluated += 1
            c = self.select_victims(cls, pod, row)
            if not isinstance(c, Candidate):
                for text in c:
                    _count(hist, text, 1)
                continue
            r = c.rank
            if best_rank is None or r < best_rank:
                best, best_rank = c, r
        if best is None:
            return Outcome(message=postfilter_message(fit_error_message(num_nodes, hist)), nodes_evaluated=evaluated,
                           reasons=hist)
        return Outcome(best, nodes_evaluated=evaluated, reasons=hist)

    def preempt_gang(self, pods: list[PodInfo], need: int, topology_key: str = "",
                     placed_nodes: Sequence[str] = (), priority: int = 0) -> GangCandidate | None:
        """Upstream's workload-aware preemption (`framework/preemption/podgrouppreemption.go`),
        the domain the whole cluster: every pod of lower priority than the gang is removed (the
        lower nominations are not seen); if `need` members then fit (the gang scheduled as
        usual: kept to one topology placement if it has a `topology_key`, as upstream's
        scheduling function runs the placement algorithm), victims are reprieved one by one,
        most important first and PDB-violating ones first, as long as every placed member still
        passes its filters on its node. None when the gang may not preempt (a member's policy is
        Never, upstream's rule while the PodGroupPreemptionPolicy gate is off; no pod below
        `priority`, the gang's: its PodGroup's spec.priority, as upstream's PodGroupPriority) or
        does not fit even then. Nothing is changed."""
        if not pods or any(p.preempt_never or p.key is None or not self.enabled(p) for p in pods):
            return None
        lowest = self.lowest_priority()
        if lowest is None or lowest >= priority:
            return None
        e = self.engine
        self._refresh_members()
        placed = [q for q in e.pods.values() if q.node_name]
        lower = [q for q in placed if q.uid not in self.held and self.priority_of(q) < priority]
        bumped = [q for q in placed if q.uid in self.held and q.priority < priority]
        if not lower and not bumped:
            return None
        units = self._units(lower)
        last = e.table.last[:]  # the dry run's placements must not move the nodes' turn (NodeTable.last)
        for q in bumped + lower:
            e.remove_pod(q.uid)
        members: list[PodInfo] = []
        try:
            results, ok = e.schedule_gang(pods, need, commit=True, topology_key=topology_key,
                                          placed_nodes=placed_nodes)
            if not ok:
                return None
            members = [p for p, r in zip(pods, results) if r.candidates]
            assignments = [(p, p.node_name) for p in members]
            on_node: dict[str, list[PodInfo]] = {}
            for p in members:
                on_node.setdefault(p.node_name, []).append(p)
            local = all(e.class_of(p).resources_only for p in members)

            def still_fit(v: PodInfo) -> bool:
                # a resource-only gang is affected by a pod back on its own node alone (unless
                # that pod carries inter-pod terms, which reach other nodes); otherwise every
                # member is, those on the pod's node first: the likeliest to no longer fit, so a
                # victim that must go costs one check, not one per member
                here = on_node.get(v.node_name, [])
                if not local or v.key is None or v.key.pod_anti_affinity or v.key.pod_affinity:
                    affected = here + [m for m in members if m.node_name != v.node_name]
                else:
                    affected = here
                for m in affected:
                    e.remove_pod(m.uid)
                    ok_m = e.check(m, m.node_name)
                    e.add_pod(m)
                    if not ok_m:
                        return False
                return True

            chosen: list[list[PodInfo]] = []
            violations = 0
            for unit, n in self._reprieve_order(units):
                for v in unit:
                    e.add_pod(v)
                if not all(still_fit(v) for v in unit):
                    for v in unit:
                        e.remove_pod(v.uid)
                    chosen.append(unit)
                    violations += n
            chosen.sort(key=self._unit_importance)
            return GangCandidate(assignments, [v for unit in chosen for v in unit], violations, bumped)
        finally:
            for p in members:
                e.remove_pod(p.uid)
                p.node_name = ""
            for q in bumped + lower:
                if q.uid not in e.pods:
                    e.add_pod(q)
            e.table.last[:len(last)] = last

    def validate(self, pod: PodInfo, node: str) -> Candidate | None:
        """A candidate proposed elsewhere (a partition, on its shard), checked on this engine: the
        victims this engine selects on `node` now, or None when the node is no candidate here."""
        e = self.engine
        row = e.table.index.get(node)
        if row is None or pod.key is None or self.eligible(pod) or (pod.has_volumes and isinstance(e.pod_key(pod), str)):
            return None
        self._refresh_members()
        cls = e.class_of(pod)
        if cls.stale():
            cls.build()
        c = self.select_victims(cls, pod, row)
        return c if isinstance(c, Candidate) else None

    def apply(self, pod: PodInfo, c: Candidate) -> tuple[list[PodInfo], list[PodInfo]]:
        """Act out a candidate as the coordinator commits one: the preemptor assumed on the node
        and nominated (its room held), its victims marked as being evicted (they still hold
        theirs until they are gone), the lower nominations it clears gone, so later pods of the
        same batch see what the ledger will; `undo` puts everything back. Returns what it
        changed: (victims it marked, nominations it cleared)."""
        marked = self.to_evict(c.victims)
        for v in marked:
            self.start_eviction(v.uid)
        for b in c.bumped:
            self.unhold(b.uid)
            self.engine.remove_pod(b.uid)
        self.engine.assume(pod, c.node)
        self.hold(pod.uid, pod.priority)
        return marked, c.bumped

    def undo(self, pod: PodInfo, changed: tuple[list[PodInfo], list[PodInfo]]) -> None:
        marked, bumped = changed
        self.unhold(pod.uid)
        self.engine.remove_pod(pod.uid)
        pod.node_name = ""
        for b in bumped:
            self.engine.add_pod(b)
            self.hold(b.uid, b.priority)
        for v in marked:
            self.end_eviction(v.uid)

    def select_victims(self, cls: "ClassState", pod: PodInfo, row: int) -> Candidate | list[str]:
        """Upstream's SelectVictimsOnNode for one row: the candidate, or why the node cannot be
        one (the failing filter's reasons with every lower-priority pod gone). Resource-only classes are judged on the row's request list directly (exact: it is
        all their dynamic filter reads); others remove and re-add pods through the engine, so
        ports, inter-pod affinity and spread see the change."""
        e = self.engine
        t = e.table
        pods = e.pods
        here = [q for q in map(pods.get, t.pods[row]) if q is not None]
        lower = [q for q in here if q.uid not in self.held and self.priority_of(q) < pod.priority]
        # lower nominations (by their own priority, as upstream's): not seen by this pod: room, never victims
        bumped = [q for q in here if q.uid in self.held and q.priority < pod.priority]
        if not lower and not bumped:
            return [NO_VICTIMS]
        units = self._units(lower)
        name = t.names[row]
        if cls.resources_only:  # (a claim's ReadWriteOncePod conflict is a dynamic filter: not this path)
            req = t.req_l[row]
            saved = req[:]
            fit = cls._fit

            def take(v: PodInfo, sign: int) -> None:
                if v.node_name != name:  # a whole group's pod elsewhere frees nothing here
                    return
                for c, amount in t.request_items(v.key):
                    req[c] -= sign * amount

            def fits() -> bool:
                return fit(row)
        else:
            saved = None

            def take(v: PodInfo, sign: int) -> None:
                if sign > 0:
                    e.remove_pod(v.uid)
                else:
                    e.add_pod(v)

            def fits() -> bool:
                return e.check(pod, name)
        every = [v for unit in units for v in unit]
        # the trial's re-added pods must not move the nodes' turn among equal scores (NodeTable.last)
        turns = {r: t.last[r] for r in {t.index.get(v.node_name) for v in every + bumped} if r is not None}
        try:
            for v in bumped:
                take(v, 1)
            for v in every:
                take(v, 1)
            if not fits():
                return _row_reasons(e.class_of(pod), row) if saved is None else _short(cls, row)
            order = self._reprieve_order(units)
            chosen: list[list[PodInfo]] = []
            violations = 0
            for unit, n in order:
                for v in unit:
                    take(v, -1)
                if not fits():
                    for v in unit:
                        take(v, 1)
                    chosen.append(unit)
                    violations += n
            if not chosen and not bumped:  # it fits with every pod back: nothing to preempt for
                return [NOT_HELPFUL]
            if order and order[0][1] and not order[-1][1]:  # violating and not: back in importance order
                chosen.sort(key=self._unit_importance)
            return Candidate(name, [v for unit in chosen for v in unit], violations, bumped)
        finally:
            if saved is not None:
                t.req_l[row][:] = saved
            else:
                for v in every + bumped:
                    if v.uid not in pods:
                        e.add_pod(v)
            for r, tick in turns.items():
                t.last[r] = tick


def _short(cls: "ClassState", row: int) -> list[str]:
    """NodeResourcesFit's reasons for a row as its request list stands now."""
    t = cls.engine.table
    a, r = t.alloc_l[row], t.req_l[row]
    return [node_resources_fit.reason(name) for col, v, name in node_resources_fit.requested_columns(cls.ctx)
            if a[col] - r[col] < v] or [NOT_HELPFUL]


def _row_reasons(cls: "ClassState", row: int) -> list[str]:
    """The reasons of the first filter a row fails, from the class's diagnosis (rebuilt if stale),
    as upstream reports a node's status."""
    if cls.stale():
        cls.build()
    p = int(cls.pos[row])
    if p < 0:
        return [NOT_HELPFUL]
    for _name, ok, reasons in cls.diag:
        if not ok[p]:
            return [text for mask, text in reasons if mask[p]] or [NOT_HELPFUL]
    return [NOT_HELPFUL]


def _count(hist: dict[str, int], text: str, n: int) -> None:
    if n:
        hist[text] = hist.get(text, 0) + n
