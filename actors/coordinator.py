"""The coordinator: batching, fan-out to the partitions, optimistic commit against the ledger.

It runs next to the informer and the binder (in the coordinator actor's process, see
`actors/coordinator_actor.py`, or in-process for tests), on one thread (`run`): informer events,
binding results, resizes and batches are handled in turn, so the ledger and the queue have a
single owner and need no locks.

One scheduling cycle:
1. A batch leaves the queue (priority, then arrival) and goes to all partitions at once, with the
   deltas accumulated since the last batch (nodes, bound pods, assumptions) in the same call;
   each returns its best k nodes per pod from its shard, and a reason histogram for pods it
   cannot place.
3. Per pod, in batch order, the candidates of all partitions are merged best score first. The
   first that passes `ledger.check` now wins and is assumed in the ledger at once (the next pod
   and the next batch see it); the binder binds it. Partitions learn the assumption with the next
   deltas. A pod whose candidates all fail lost a race to another pod of the batch: it goes back
   to the queue (after a few such losses the ledger places it itself, so nothing livelocks).
4. A pod no partition can place is tried once on the ledger (a partition's view includes its own
   proposals for earlier pods of the batch, which may have lost); if that fails too, it is
   Unschedulable with the partitions' histograms summed: kube's "0/N nodes are available: ...".

The ledger is an Engine over all nodes: it sees exactly what the partitions see (every node, every
bound and assumed pod), so cross-shard constraints (spread skew, anti-affinity across zones) are
decided on global counts twice: by the partitions when proposing and by the ledger when committing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from cluster_scheduler import wire
from urllib.parse import quote

from cluster_scheduler.api.binder import BOUND, EVICTED, RETRY, VolumeWrite
from cluster_scheduler.api.informer import DELETED, NAMESPACES, NODES, PDBS, POD_GROUPS, PODS, object_key
from cluster_scheduler.config import Profile, RuntimeConfig
from cluster_scheduler.engine import (Engine, fit_error_message, gang_unfit_message, gang_waiting_message,
                                      pod_group_deleting_message, pod_group_invalid_message,
                                      pod_group_missing_message)
from cluster_scheduler.gc_tuning import paused_gc
from cluster_scheduler.model.parse import SELECTED_NODE, parse_pdb, parse_pod_group
from cluster_scheduler.model.storage import STORAGE_KINDS
from cluster_scheduler.model.types import Gang, PodInfo, PodSpecKey
from cluster_scheduler.preemption import NOT_ELIGIBLE_TERMINATING, Outcome, Preemption, postfilter_message
from cluster_scheduler.queue import SchedulingQueue
from cluster_scheduler.wire import Proposal, namespace_labels, node_info, pack, pod_info, strip_node

from .partition import Partition

log = logging.getLogger(__name__)

TERMINAL_PHASES = ("Succeeded", "Failed")
LEDGER_AFTER_CONFLICTS = 3  # a pod that lost this many races is placed by the ledger itself
# A gang's members arrive over a few batches: while its pods are this young, a member waiting for
# the rest backs off quietly instead of getting a status and an event that are stale a moment later.
GANG_QUIET_S = 5.0
MAX_DELTAS = 20000  # flush deltas to the partitions at least this often while idle
# Payloads below this go to the partitions inline in the task (Ray inlines small arguments);
# larger ones are put in the object store once and shared by every partition.
INLINE_BYTES = 64 * 1024


@dataclass
class Stats:
    batches: int = 0
    scheduled: int = 0  # assumed and sent to the binder
    bound: int = 0
    unschedulable: int = 0  # Unschedulable verdicts (a pod may get several)
    conflicts: int = 0  # proposals that failed the ledger check
    requeued: int = 0  # pods whose every proposal failed
    rescued: int = 0  # pods the ledger placed after the partitions could not
    ledger_refusals: int = 0  # pods declared Unschedulable by the ledger against partition proposals
    bind_retries: int = 0
    bind_dropped: int = 0  # 409 / 404
    partition_failures: int = 0
    gangs_placed: int = 0  # gangs assumed whole (at least minCount members)
    gangs_unschedulable: int = 0  # gang attempts that placed no member
    preemptions: int = 0  # preemptors nominated (their victims evicted)
    nominations_cleared: int = 0  # nominated pods whose node a higher-priority preemptor took
    nominations_reheld: int = 0  # nominations found in pod status (a restart) whose room is held again
    victims: int = 0  # pods evicted for them
    evictions_failed: int = 0  # victims whose deletion failed for good (their preemptor released)
    preemptions_validated: int = 0  # partitions' candidates the ledger confirmed
    preemptions_none: int = 0  # pods no partition found a candidate for
    first_bind: float = 0.0
    last_bind: float = 0.0
    schedule_s: float = 0.0  # time in partition calls
    commit_s: float = 0.0  # time in the ledger

    def line(self) -> str:
        return (f"batches={self.batches} scheduled={self.scheduled} bound={self.bound} "
                f"unschedulable={self.unschedulable} conflicts={self.conflicts} requeued={self.requeued} "
                f"rescued={self.rescued} ledger_refusals={self.ledger_refusals} "
                f"bind_retries={self.bind_retries} bind_dropped={self.bind_dropped} "
                f"partition_failures={self.partition_failures} "
                f"partitions_s={self.schedule_s:.1f} commit_s={self.commit_s:.1f} "
                f"gangs_placed={self.gangs_placed} gangs_unschedulable={self.gangs_unschedulable} "
                f"preemptions={self.preemptions} victims={self.victims}")


@dataclass
class Merged:
    candidates: list[tuple[str, int]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    prefilter: str | None = None


@dataclass
class VolumeWait:
    """A pod in PreBind: its volume bindings asked for (`written` once the binder's writes were
    accepted), bound when the watch shows them complete. `seen`: the claims whose written state
    the watch has shown (a later reset of those is a failure)."""

    pod: PodInfo
    node: str
    deadline: float
    written: bool
    seen: set = field(default_factory=set)


def merge(per_partition: list[list[Proposal]], n_pods: int, tie=None) -> list[Merged]:
    """Per pod: every partition's candidates, best score first, and the sum of their reason
    histograms. Equal scores go in the order of `tie(node)` (the ledger's: the node placed on
    longest ago first, as each shard orders its own), else of the partitions."""
    out = [Merged() for _ in range(n_pods)]
    for results in per_partition:
        for m, p in zip(out, results):
            m.candidates.extend(p.candidates)
            for text, c in p.reasons.items():
                m.reasons[text] = m.reasons.get(text, 0) + c
            if p.error:
                m.error = p.error
            if p.prefilter:
                m.prefilter = p.prefilter
    for m in out:
        if tie is None:
            m.candidates.sort(key=lambda c: -c[1])
        elif len(m.candidates) > 1:
            m.candidates.sort(key=lambda c: (-c[1], tie(c[0])))
    return out


class _PostFilterRun:
    """PostFilter for one batch's pods that fit nowhere, each at its turn in the commit loop (so
    a preemptor's nomination holds its room against the pods after it, as upstream's queue does).

    At the first such pod that may preempt, every pod of the batch the partitions found no node
    for goes to every partition in one call; each finds its shard's best candidate per pod in
    parallel, acting out its own candidates before judging the next pod. A shard's answer for a
    later pod is therefore exact except on the nodes where it acted out something the coordinator
    did not do in the same way: every node proposed for an earlier pod of the call (taken with
    other victims, not taken, or the pod placed plainly after all) is *dirty*, and is judged on
    the ledger for each later pod, as is every node the commit loop placed a pod on since the call
    (the shards do not know). At each pod's turn the coordinator validates its own proposals
    and the dirty nodes on the ledger, and takes the best in upstream's order if it ranks no worse
    than every shard's proposal (a shard's rank bounds its clean nodes from below: they only lost
    room since). Otherwise (the room changed, a partition failed, too many dirty nodes) the ledger
    decides alone."""

    DIRTY_LIMIT = 64  # beyond this many nodes to re-judge per pod, the ledger alone is cheaper

    def __init__(self, coord: "Coordinator", batch: list[PodInfo], merged: list) -> None:
        self.coord, self.batch, self.merged = coord, batch, merged
        self.proposals: dict[str, tuple] | None = None
        self.asked: list[str] | None = None  # uids sent to the partitions, in batch order
        self._next = 0  # asked pods before this position were handled
        self.dirty: set[str] = set()

    def _soil(self, nodes) -> None:
        self.dirty.update(nodes)
        if len(self.dirty) > self.DIRTY_LIMIT:
            self.proposals = None

    def _handled(self, uid: str) -> None:
        """An asked pod was handled (preempted or not, or placed plainly): the nodes its shards
        acted out for it are dirty from now on."""
        prop = self.proposals.get(uid) if self.proposals is not None else None
        if prop is not None:
            self._soil(n for n, _r in prop[0])

    def placed(self, node: str) -> None:
        """The commit loop placed a pod on `node` after the partitions were asked: they do not
        know, and may have found the pod fits there with no victim (so proposed nothing)."""
        if self.asked is not None:
            self._soil((node,))

    def run(self, pod: PodInfo, message: str) -> bool:
        c = self.coord
        pre = c.preemption
        if self.asked is None and len(c.parts) > 1 and pre.may_preempt(pod, pre.lowest_priority()):
            lowest = pre.lowest_priority()
            start = next(i for i, p in enumerate(self.batch) if p.uid == pod.uid)
            ask = [p for p, m in zip(self.batch[start:], self.merged[start:])
                   if not m.candidates and not m.error and pre.may_preempt(p, lowest)]
            self.asked = [p.uid for p in ask]
            self.proposals = c._fan_out_preemption(ask)
        asked = self.asked or []
        while self._next < len(asked) and asked[self._next] != pod.uid:
            self._handled(asked[self._next])  # placed (or re-queued) by the commit loop meanwhile
            self._next += 1
        prop = self.proposals.get(pod.uid) if self.proposals is not None else None
        if prop is not None:
            options, reasons = prop
            own = {n for n, _r in options}
            prop = (options + [(n, None) for n in sorted(self.dirty - own)], reasons)
        done = c._postfilter(pod, message, prop)
        if self._next < len(asked) and asked[self._next] == pod.uid:
            self._handled(pod.uid)
            self._next += 1
        return done



# beyond this many (newly bound pod, unschedulable pod) pairs, `_helped_by` moves every pod with
# required affinity or a DoNotSchedule spread constraint instead of matching each pair
HINT_PAIRS = 200_000


def _helped_by(bound: list[PodSpecKey], index: Any, unschedulable: int):
    """Which unschedulable pods newly bound pods may help, as upstream's queueing hints for an
    assigned pod's add: those whose required affinity term matches one of them, or one of whose
    DoNotSchedule spread constraints counts one of them (same namespace, matching selector).
    A bound pod helps no other pod (anti-affinity and ports only get stricter)."""
    keys = list(dict.fromkeys(k for k in bound if k is not None))
    coarse = len(keys) * unschedulable > HINT_PAIRS
    labels = [dict(k.labels) for k in keys]

    def helped(p: PodInfo) -> bool:
        k = p.key
        if k is None:
            return False
        hard = [c for c in k.spread_constraints if c.when_unsatisfiable == "DoNotSchedule"]
        if coarse:
            return bool(k.pod_affinity) or bool(hard)
        for term in k.pod_affinity:
            if any(index.term_matches(term, q) for q in keys):
                return True
        for c in hard:
            if c.selector is not None and any(q.namespace == k.namespace and c.selector.matches(lq)
                                              for q, lq in zip(keys, labels)):
                return True
        return False
    return helped


def _helped_by_nodes(names: list[str], ledger: Engine, unschedulable: int):
    """Which unschedulable pods these nodes' own changes (`Coordinator._on_node`'s "local", room
    freed there: `Coordinator._freed`) may help, as upstream's queueing hints for a node's add or
    update and an assigned pod's delete or scale-down: those that fit on one of them now (the
    ledger's filters). A pod whose filters read other nodes or pods (inter-pod terms, spread
    constraints, a gang's placement, claims another pod may have released) is moved anyway, as
    are all when the pairs to check are too many."""
    names = list(dict.fromkeys(names))
    coarse = len(names) * unschedulable > HINT_PAIRS
    seen: dict[tuple[str, PodSpecKey], bool] = {}  # a verdict depends on the profile and the key only

    def helped(p: PodInfo) -> bool:
        k = p.key
        if (coarse or k is None or p.pod_group or p.has_volumes or k.pod_affinity or k.pod_anti_affinity
                or k.spread_constraints):
            return True
        hit = seen.get((p.scheduler_name, k))
        if hit is None:
            hit = seen[(p.scheduler_name, k)] = any(ledger.check(p, n) for n in names)
        return hit
    return helped


class Coordinator:
    def __init__(self, profiles: Profile | tuple[Profile, ...], runtime: RuntimeConfig, binder: Any, *, partitions: int,
                 actor_options: dict | None = None, ray_module: Any = None, metrics: Any = None) -> None:
        import ray as _ray

        self.metrics = metrics  # a cluster_scheduler.metrics.SchedulerMetrics, or None
        self.ray = ray_module or _ray
        self.profiles = (profiles,) if isinstance(profiles, Profile) else tuple(profiles)
        self.cfg = runtime
        self.binder = binder
        self.scheduler_names = frozenset(p.scheduler_name for p in self.profiles)  # the pods we schedule
        self.ledger = Engine(self.profiles)
        # PostFilter on the ledger (every node): a preemptor is assumed on its node at once (its
        # room held, as a nominated pod's is), and bound when the last of its victims is gone
        self.preemption = Preemption(self.ledger)
        self.nominated: dict[str, tuple[PodInfo, set[str]]] = {}  # preemptor uid -> (pod, victims left)
        self._just_bound: list[PodSpecKey | None] = []  # keys of the pods the inbox's drain saw bound
        self._freed_nodes: list[str] = []  # nodes where the drain saw room freed (`_freed`)
        self._freed_wide = False  # ... or a pod whose anti-affinity reached beyond its node left
        self._evicting: dict[str, set[str]] = {}  # victim uid -> the preemptors waiting for it
        self._pdb_objects: dict[tuple[str, str], dict] = {}  # stripped (the partitions get these)
        self.storage_objects: dict[tuple[str, str], bytes] = {}  # (kind, key) -> stripped claim/volume/class
        self.volume_binding: dict[str, VolumeWait] = {}  # uid -> PreBind in progress
        self.queue = SchedulingQueue(runtime.backoff_initial_s, runtime.backoff_max_s,
                                     runtime.unschedulable_flush_s)
        self.stats = Stats()
        # what the partitions must know, kept to re-feed a restarted or new one
        self.nodes: dict[str, bytes] = {}
        self.namespaces: dict[str, bytes] = {}
        self.bound: dict[str, bytes] = {}  # uid -> stripped bound pod (watch-confirmed)
        self.assumed: dict[str, tuple[bytes, str]] = {}  # uid -> (pending pod, node) while binding
        self.pending: dict[str, bytes] = {}  # uid -> stripped pending pod of ours
        self.last_message: dict[str, str] = {}  # uid -> last Unschedulable message posted
        # gangs: PodGroups by (namespace, name), and every known member (pending or placed) of each
        self.pod_groups: dict[tuple[str, str], Gang] = {}
        self.group_members: dict[tuple[str, str], set[str]] = {}
        self._member_of: dict[str, tuple[str, str]] = {}
        # pending members that name another scheduler: they never count towards minCount here, and
        # the gang's waiting message says so
        self._foreign_members: dict[str, tuple[tuple[str, str], str]] = {}  # uid -> (group, scheduler)
        self._group_condition: dict[tuple[str, str], tuple[bool, str]] = {}  # last posted
        self._deltas: list[list] = []
        self._inbox: deque[tuple[str, str, dict]] = deque()
        self.wake = threading.Event()
        self._actor_options = dict(actor_options or {})
        self._remote = self.ray.remote(Partition)
        self.parts: list[Any] = []
        self._resync: set[int] = set()
        self._resize_to: int | None = None
        self._stop = threading.Event()  # replaced by run()'s stop event
        self._last_batch_at = -1e9
        self._hold_s: float | None = None  # how long run_once held a small batch back
        self._last_summary = time.monotonic()
        self._last_gauges = 0.0
        self.summary_every_s = 10.0
        self.restart_wait_s = runtime.partition_restart_wait_s  # then a failed actor is replaced
        for i in range(partitions):
            self.parts.append(self._new_actor(i, partitions))
        self.part_nodes: list[str] = [""] * partitions  # the Ray node of each, once loaded
        self._resync = set(range(partitions))

    # ------------------------------------------------------------------ actors
    def _new_actor(self, index: int, count: int) -> Any:
        opts = dict(self._actor_options)
        want = opts.get("num_cpus") or 0
        available = getattr(self.ray, "available_resources", None)
        if want and available is not None:
            # an actor asking for more CPU than is free would never start (e.g. a partition added
            # on a full local machine): take what is free, down to none (an unreserved actor)
            free = available().get("CPU", 0.0)
            if free < want:
                opts["num_cpus"] = int(free * 100) / 100
                log.warning("partition %d gets %.2f CPU (asked %.2f): the cluster has no more free",
                            index, opts["num_cpus"], want)
        return self._remote.options(**opts).remote(self.profiles, index, count)

    def snapshot(self) -> bytes:
        """Everything a partition must know, as delta ops. Bound pods go in groups of one
        equivalence class (BOUND_CLASS: one member's bytes, then (uid, name, node, priority, creation
        time, terminating) per member: what preemption reads), so
        a partition parses each pod template once instead of once per pod."""
        ops: list[list] = [wire.namespace(b) for b in self.namespaces.values()]
        ops += [wire.node(b) for b in self.nodes.values()]
        ops += [wire.storage(kind, b) for (kind, _key), b in self.storage_objects.items()]
        groups: dict[Any, list] = {}
        pods = self.ledger.pods
        for uid, b in self.bound.items():
            info = pods.get(uid)
            if info is None or info.key is None or info.has_volumes:  # (its volumes are its own: not a template's)
                ops.append(wire.pod(b))
                continue
            g = groups.get(info.key)
            if g is None:
                g = groups[info.key] = wire.bound_class(b, [])
            g[2].append([uid, info.name, info.node_name, info.priority, info.creation_ts, info.deleting])
        ops += groups.values()
        ops += [wire.assume(b, node, uid in self.nominated) for uid, (b, node) in self.assumed.items()]
        return wire.encode_deltas(ops)

    def _sync_partitions(self) -> None:
        """(Re)load every partition in `_resync` from the coordinator's state. A partition whose
        actor cannot answer within a while (restarts exhausted) is replaced by a new actor."""
        if not self._resync:
            return
        # Deltas still pending are in the snapshot: the partitions that are not reloading get them
        # now, the reloading ones must not apply them again after it (at start-up that would be
        # every bound pod of the initial list, parsed a second time with the first batch).
        self._flush_deltas()
        t0 = time.monotonic()
        raw = self.snapshot()
        snap = self.ray.put(raw)
        log.info("snapshot for %d partition(s): %.1f MB in %.2fs", len(self._resync), len(raw) / 1e6,
                 time.monotonic() - t0)
        count = len(self.parts)
        # all loads at once: on a large cluster each takes seconds (a full snapshot to decode)
        futs = {i: self.parts[i].load.remote(i, count, snap) for i in sorted(self._resync)}
        for i in sorted(self._resync):
            deadline = time.monotonic() + self.restart_wait_s
            while not self._stop.is_set():
                try:
                    self.ray.get(futs[i], timeout=60)
                    break
                except Exception as exc:  # noqa: BLE001 - actor dead or restarting
                    if time.monotonic() > deadline:
                        log.warning("partition %d did not come back (%s: %s): replacing it", i, type(exc).__name__,
                                    " ".join(str(exc).split())[:400])
                        try:
                            self.ray.kill(self.parts[i], no_restart=True)
                        except Exception:  # noqa: BLE001
                            pass
                        self.parts[i] = self._new_actor(i, count)
                        deadline = time.monotonic() + 60
                    else:
                        time.sleep(0.5)
                    futs[i] = self.parts[i].load.remote(i, count, snap)
            else:
                return  # stopping: leave the rest unsynced
            log.info("partition %d/%d loaded (%d nodes, %d pods) %.2fs after the snapshot began", i, count,
                     len(self.nodes), len(self.bound) + len(self.assumed), time.monotonic() - t0)
        self._locate(sorted(self._resync))
        self._resync.clear()

    def _locate(self, indexes: list[int]) -> None:
        """Record and log the Ray node of each (re)loaded partition: on a multi-node cluster that is
        where its CPU is, and after a node is lost, where it was re-created."""
        futs = [(i, self.parts[i].node_id.remote()) for i in indexes]
        for i, fut in futs:
            try:
                self.part_nodes[i] = self.ray.get(fut, timeout=30)
            except Exception:  # noqa: BLE001 - failed since: the next resync locates it again
                self.part_nodes[i] = "?"
        log.info("partitions on Ray nodes: %s", ", ".join(f"{i}:{n[:12]}" for i, n in enumerate(self.part_nodes)))

    def request_resize(self, partitions: int) -> None:
        """Change the number of partitions while running (applied between batches)."""
        self._resize_to = max(1, int(partitions))
        self.wake.set()

    def _resize(self, n: int) -> None:
        old = len(self.parts)
        if n == old:
            return
        if n < old:
            for actor in self.parts[n:]:
                try:
                    self.ray.kill(actor, no_restart=True)
                except Exception:  # noqa: BLE001
                    pass
            del self.parts[n:]
            del self.part_nodes[n:]
        else:
            for i in range(old, n):
                self.parts.append(self._new_actor(i, n))
                self.part_nodes.append("")
                self._resync.add(i)
        keep = [i for i in range(min(old, n)) if i not in self._resync]
        self._flush_deltas()
        futs = [self.parts[i].reshard.remote(i, n) for i in keep]
        for i, f in zip(keep, futs):
            try:
                self.ray.get(f)
            except Exception:  # noqa: BLE001
                self._resync.add(i)
        self._sync_partitions()
        log.info("partitions: %d -> %d", old, n)

    # ----------------------------------------------------------- informer side
    def sink(self, kind: str, typ: str, obj: dict) -> None:
        """Informer callback (any thread): queued for the loop. Pods come stripped (`strip_pod`),
        as the informer delivers them."""
        self._inbox.append((kind, typ, obj))
        if not self.wake.is_set():  # a lock-free read; a list delivers 100k of these in a burst
            self.wake.set()

    def _drain_inbox(self) -> int:
        n = 0
        moved = False  # an event that may let unschedulable pods fit
        affinity_moved = False
        volumes_moved = False
        changed_nodes: list[str] = []  # nodes whose change only they themselves can feel (`_on_node`)
        while True:
            try:
                kind, typ, obj = self._inbox.popleft()
            except IndexError:
                break
            n += 1
            if kind == PODS:
                # a pod leaving or shrinking is noted by `_freed` (its node, or a wider change)
                affinity_moved |= self._on_pod(typ, obj) == "bound"
            elif kind == NODES:
                # only a real change (not a heartbeat) can make a pod fit
                change = self._on_node(typ, obj)
                moved |= change == "wide"
                if change == "local":
                    changed_nodes.append(object_key(NODES, obj))
            elif kind == NAMESPACES:
                self._on_namespace(typ, obj)
            elif kind == POD_GROUPS:
                self._on_pod_group(typ, obj)
            elif kind == PDBS:
                self._on_pdb(typ, obj)
            elif kind in STORAGE_KINDS:
                volumes_moved |= self._on_storage(kind, typ, obj)
        moved |= self._freed_wide
        changed_nodes += self._freed_nodes
        self._freed_wide = False
        self._freed_nodes.clear()
        if volumes_moved:
            self._volumes_settled()
            if not moved:  # a claim, volume or class changed: pods with claims may fit now
                self.queue.move_all_to_active(lambda p: p.has_volumes)
        if moved:
            self.queue.move_all_to_active()
        elif affinity_moved or changed_nodes:
            # a newly bound pod can only help pods that need a pod nearby (required affinity) or
            # a domain's count raised (DoNotSchedule spread: upstream's hint queues those too); a
            # node's own change, the pods that fit there now
            unsched = self.queue.unschedulable_count()
            hints = ([_helped_by(self._just_bound, self.ledger.index, unsched)] if affinity_moved else []) + \
                ([_helped_by_nodes(changed_nodes, self.ledger, unsched)] if changed_nodes else [])
            self.queue.move_all_to_active(hints[0] if len(hints) == 1 else lambda p: any(h(p) for h in hints))
        self._just_bound.clear()
        return n

    def _on_node(self, typ: str, obj: dict) -> str:
        """Apply a node event. Returns "" when it changed nothing the scheduler reads (a
        heartbeat, a deletion: fewer nodes never make a pod fit), "local" when only the node's own
        feasibility can have changed for a pod without inter-pod terms or spread constraints (a
        new node; its capacity, taints or cordon changed; labels changed with no pod on it), else
        "wide" (its labels moved the pods on it into other domains, which other nodes' feasibility
        can read through their terms)."""
        name = object_key(NODES, obj)
        if typ == DELETED:
            if self.nodes.pop(name, None) is not None:
                self.ledger.remove_node(name)
                self._deltas.append(wire.node_gone(name))
            return ""
        stripped = strip_node(obj)
        b = pack(stripped)
        old = self.nodes.get(name)
        if old == b:
            return ""
        change = "local"
        t = self.ledger.table
        row = t.index.get(name)
        if row is not None and t.pods[row] and t.labels[row] != stripped["metadata"]["labels"]:
            change = "wide"
        self.nodes[name] = b
        self.ledger.set_node(node_info(stripped))
        self._deltas.append(wire.node(b))
        return change

    def _on_namespace(self, typ: str, obj: dict) -> None:
        name, labels = namespace_labels(obj)
        if typ == DELETED:
            self.namespaces.pop(name, None)
            return
        b = pack({"metadata": {"name": name, "labels": labels}})
        if self.namespaces.get(name) == b:
            return
        self.namespaces[name] = b
        self.ledger.set_namespace_labels(name, labels)
        self._deltas.append(wire.namespace(b))

    def _on_storage(self, kind: str, typ: str, obj: dict) -> bool:
        """A claim, volume or StorageClass event; True when it changed what the filters read."""
        key = object_key(kind, obj)
        if typ == DELETED:
            if self.storage_objects.pop((kind, key), None) is None:
                return False
            self.ledger.storage.delete(kind, key)
            self._deltas.append(wire.storage_gone(kind, key))
            return True
        stripped = wire.strip_storage(kind, obj)
        b = pack(stripped)
        if self.storage_objects.get((kind, key)) == b:
            return False
        self.storage_objects[(kind, key)] = b
        self.ledger.storage.apply(kind, stripped)
        self._deltas.append(wire.storage(kind, b))
        return True

    def _on_pdb(self, typ: str, obj: dict) -> None:
        """PodDisruptionBudgets as the apiserver has them (status included): preemption's input."""
        b = wire.strip_pdb(obj)
        key = (b["metadata"]["namespace"], b["metadata"]["name"])
        if typ == DELETED:
            self._pdb_objects.pop(key, None)
        else:
            self._pdb_objects[key] = b
        self.preemption.pdbs = [parse_pdb(o) for o in self._pdb_objects.values()]

    def _on_pod_group(self, typ: str, obj: dict) -> None:
        g = parse_pod_group(obj)
        key = (g.namespace, g.name)
        if typ == DELETED:
            # members still pending are told at once that their group is gone; placed ones stay
            self.preemption.set_group(key, None)
            if self.pod_groups.pop(key, None) is not None:
                self._group_condition.pop(key, None)
                self.queue.move_all_to_active(lambda p: p.pod_group == key[1] and p.namespace == key[0])
        else:
            old = self.pod_groups.get(key)
            self.pod_groups[key] = g
            self.preemption.set_group(key, g.priority, g.disrupt_whole)
            if old is None or (old.min_count, old.deleting, old.topology_key) != (g.min_count, g.deleting,
                                                                                  g.topology_key):
                # its members may have waited for it (or for a smaller minCount); a status change
                # (our own condition) changes nothing for them
                self.queue.move_all_to_active(lambda p: p.pod_group == key[1] and p.namespace == key[0])

    def _track_member(self, info: PodInfo) -> None:
        """Remember a pod that names a PodGroup (parsed into `info.pod_group`), pending or placed."""
        if info.pod_group:
            key = (info.namespace, info.pod_group)
            self._member_of[info.uid] = key
            self.group_members.setdefault(key, set()).add(info.uid)

    def _untrack_member(self, uid: str) -> None:
        key = self._member_of.pop(uid, None)
        if key is not None:
            members = self.group_members.get(key)
            if members is not None:
                members.discard(uid)
                if not members:
                    del self.group_members[key]

    def _pod_gone(self, uid: str) -> bool:
        self._untrack_member(uid)
        self._foreign_members.pop(uid, None)
        self._victim_gone(uid)
        self._forget_nomination(uid)
        self.pending.pop(uid, None)
        self.last_message.pop(uid, None)
        self.volume_binding.pop(uid, None)
        self.queue.done(uid)
        freed = False
        if self.bound.pop(uid, None) is not None:
            freed = True
        if self.assumed.pop(uid, None) is not None:
            freed = True
        if freed:
            self._freed(self.ledger.pods.get(uid))
            self.ledger.remove_pod(uid)
            self._deltas.append(wire.pod_gone(uid))
        return freed

    def _freed(self, info: PodInfo | None) -> None:
        """A placed pod leaves (or shrinks): which unschedulable pods may fit now (`_drain_inbox`).
        Its room is its node's alone, unless its own required anti-affinity kept other pods off a
        wider domain."""
        if info is None or not info.node_name or (info.key is not None and info.key.pod_anti_affinity):
            self._freed_wide = True
        else:
            self._freed_nodes.append(info.node_name)

    def _on_pod(self, typ: str, obj: dict) -> str:
        """Apply a pod event (the pod stripped by the informer); returns "freed" (capacity
        released), "bound" (a pod newly placed) or ""."""
        uid = object_key(PODS, obj)
        if typ == DELETED:
            return "freed" if self._pod_gone(uid) else ""
        spec = obj["spec"]
        node = spec.get("nodeName")
        if node:
            self._foreign_members.pop(uid, None)
            if obj["status"].get("phase") in TERMINAL_PHASES:
                # finished pods hold no resources (as kube-scheduler's cache)
                return "freed" if self._pod_gone(uid) else ""
            b = pack(obj)
            self.pending.pop(uid, None)
            self.last_message.pop(uid, None)
            self.queue.done(uid)
            self.assumed.pop(uid, None)  # confirmed (or bound by someone else: the watch wins)
            self._forget_nomination(uid)
            was = self.bound.get(uid)
            if was == b:
                return ""
            self.bound[uid] = b
            info = pod_info(obj)
            self._track_member(info)
            # The watch confirming our own assumption (same node, same spec key) changes nothing in
            # the ledger, nor in the partitions, which keep the assumed pod: it is not sent to them
            # again (a reload's snapshot has the bound bytes).
            self._just_bound.append(info.key)
            old = self.ledger.pods.get(uid)
            if self.ledger.add_pod(info):
                self._deltas.append(wire.pod(b))
                if was is not None:
                    self._freed(old)
                    # a bound pod changed what others see of it (labels a selector reads, requests
                    # scaled down through `resize`): it may have freed room or lifted a term
                    return "freed"
            return "bound"
        if spec.get("schedulerName") not in self.scheduler_names:
            group = spec.get("schedulingGroup")
            if isinstance(group, dict) and group.get("podGroupName"):
                key = (obj["metadata"].get("namespace", ""), str(group["podGroupName"]))
                self._foreign_members[uid] = (key, str(spec.get("schedulerName")))
            return ""
        if uid in self.assumed or uid in self.bound:
            return ""  # being bound (or nominated) by us; this is e.g. our own status patch arriving
        b = pack(obj)
        if self.pending.get(uid) == b and uid in self.queue:
            return ""
        info = pod_info(obj)
        if info.deleting or info.scheduling_gated:
            # never place a pod being deleted; a gated pod waits for the update that lifts its gates
            self.pending.pop(uid, None)
            self.queue.done(uid)
            return ""
        self.pending[uid] = b
        self._track_member(info)
        self.queue.add(info)
        return ""

    # ------------------------------------------------------------ binder side
    def _drain_binder(self) -> None:
        now = time.monotonic()
        for ev in self.binder.drain_evictions() if hasattr(self.binder, "drain_evictions") else ():
            if ev.outcome != EVICTED:
                self.stats.evictions_failed += 1
                self._release_preemptor(ev.preemptor.uid, f"eviction of {ev.victim.namespace}/{ev.victim.name} "
                                                          f"failed: {ev.detail}")
        for w in self.binder.drain_volume_writes() if hasattr(self.binder, "drain_volume_writes") else ():
            entry = self.volume_binding.get(w.pod.uid)
            if entry is None:
                continue
            if w.error:
                self._volumes_failed(w.pod.uid, w.error)
            else:
                entry.written = True
        self._volumes_settled()
        for r in self.binder.drain():
            uid = r.pod.uid
            if self.metrics is not None:
                self.metrics.observe_binding(r.outcome)
            if r.outcome == BOUND:
                self.stats.bound += 1
                self.stats.first_bind = self.stats.first_bind or now
                self.stats.last_bind = now
                if self.metrics is not None and r.pod.creation_ts:
                    self.metrics.observe_scheduled(time.time() - r.pod.creation_ts,
                                                   max(1, self.queue.attempts(uid)))
                continue
            entry = self._unassume(uid)
            if entry is not None:
                self.queue.move_all_to_active()
            if r.outcome == RETRY and entry is not None and uid not in self.bound:
                self.stats.bind_retries += 1
                log.info("binding %s/%s to %s failed (%s): retrying after backoff",
                         r.pod.namespace, r.pod.name, r.node, r.detail)
                self.pending[uid] = entry[0]
                self.queue.backoff(r.pod)
            else:
                self.stats.bind_dropped += 1
                self.queue.done(uid)
                log.info("binding %s/%s to %s dropped: %s", r.pod.namespace, r.pod.name, r.node, r.detail)

    # -------------------------------------------------------------- scheduling
    def _flush_deltas(self) -> None:
        """Send pending deltas to every partition that is not reloading (one call each; used when
        no batch carries them: resizes, long idle stretches, before a snapshot) and wait; one that
        fails is reloaded. A reloading partition gets all of it in its snapshot."""
        if not self._deltas:
            return
        to = [i for i in range(len(self.parts)) if i not in self._resync]
        data = self._shared(wire.encode_deltas(self._deltas)) if to else None
        self._deltas = []
        futs = [(i, self.parts[i].apply.remote(data)) for i in to]
        for i, f in futs:
            try:
                self.ray.get(f)
            except Exception:  # noqa: BLE001 - actor dead or restarting
                self._resync.add(i)

    def _shared(self, payload: bytes) -> Any:
        """A task argument for every partition: inline when small (no object-store round trip
        per batch), one shared object when large."""
        return payload if len(payload) < INLINE_BYTES else self.ray.put(payload)

    def _call_partitions(self, what: str, call: Any) -> list[bytes] | None:
        """One task per partition, `call(actor, pending deltas)` (the deltas go with it), and
        their answers in partition order; None when any failed (those are reloaded)."""
        deltas = None
        if self._deltas:
            deltas = self._shared(wire.encode_deltas(self._deltas))
            self._deltas = []
        futs = [call(part, deltas) for part in self.parts]
        out: list[bytes] = []
        for i, f in enumerate(futs):
            try:
                res = self.ray.get(f)
            except Exception as exc:  # noqa: BLE001
                log.warning("partition %d failed %s: %s", i, what, type(exc).__name__)
                res = None
            if res is None:
                self._resync.add(i)
            out.append(res)
        if any(res is None for res in out):
            self.stats.partition_failures += 1
            return None
        return out

    def _fan_out(self, batch: list[PodInfo]) -> list[list[Proposal]] | None:
        data = self._shared(wire.encode_batch(self.pending[p.uid] for p in batch))
        answers = self._call_partitions("scheduling", lambda part, deltas: part.schedule.remote(
            data, self.cfg.top_k, deltas))
        if answers is None:
            return None
        out: list[list[Proposal]] = []
        for i, res in enumerate(answers):
            seconds, results = wire.decode_proposals(res)
            if self.metrics is not None:
                self.metrics.observe_partition_batch(i, seconds)
            out.append(results)
        return out

    def schedule_batch(self, batch: list[PodInfo]) -> None:
        if any(p.pod_group for p in batch):
            batch = self._schedule_gangs(batch)
            if not batch:
                return
        t0 = time.monotonic()
        results = self._fan_out(batch)
        t1 = time.monotonic()
        if results is None:
            for p in batch:  # nothing was assumed: the whole batch is tried again once resynced
                self.queue.requeue(p)
            return
        merged = merge(results, len(batch), self.ledger.tie_key)
        ledger = self.ledger
        total = len(self.nodes)
        n_won = n_unsched = n_requeued = 0
        tally: dict[str, list[int]] = {}  # profile -> [scheduled, unschedulable], for the metrics
        conflicts_before = self.stats.conflicts
        post = _PostFilterRun(self, batch, merged)  # PostFilter at each pod's turn, fanned out once
        for pod, m in zip(batch, merged):
            if m.error or pod.key is None:
                self._unschedulable(pod, m.error or pod.error or "invalid pod spec")
                n_unsched += 1
                tally.setdefault(pod.scheduler_name, [0, 0])[1] += 1
                continue
            won = None
            for node, _score in m.candidates:
                if ledger.check(pod, node):
                    won = node
                    break
                self.stats.conflicts += 1
            if won is None and (not m.candidates or self.queue.attempts(pod.uid) >= LEDGER_AFTER_CONFLICTS):
                r = ledger.schedule([pod], k=1, commit=False)[0]
                if r.candidates:
                    won = r.candidates[0][0]
                    self.stats.rescued += 1
                elif not m.candidates:
                    failed = not post.run(pod, fit_error_message(total, m.reasons, m.prefilter))
                    n_unsched += failed
                    tally.setdefault(pod.scheduler_name, [0, 0])[1] += failed
                    continue
                else:
                    # Partitions keep proposing nodes the ledger refuses and the ledger finds none:
                    # the ledger is authoritative, so the pod is Unschedulable for its reasons
                    # rather than re-queued forever (it returns on the next cluster event).
                    self.stats.ledger_refusals += 1
                    failed = not post.run(pod, r.message())
                    n_unsched += failed
                    tally.setdefault(pod.scheduler_name, [0, 0])[1] += failed
                    continue
            if won is None:
                self.stats.requeued += 1
                n_requeued += 1
                self.queue.requeue(pod)
                continue
            self._assume(pod, won)
            post.placed(won)
            n_won += 1
            tally.setdefault(pod.scheduler_name, [0, 0])[0] += 1
        t2 = time.monotonic()
        if self.metrics is not None:
            m = self.metrics
            for profile, (won, unsched) in tally.items():
                m.observe_attempt("scheduled", t2 - t0, won, profile=profile)
                m.observe_attempt("unschedulable", t2 - t0, unsched, profile=profile)
            m.conflicts.inc(self.stats.conflicts - conflicts_before)
        self.stats.batches += 1
        self.stats.schedule_s += t1 - t0
        self.stats.commit_s += t2 - t1
        log.log(logging.INFO if self.stats.batches == 1 else logging.DEBUG,
                "batch %d: %d pods, %d assumed, %d unschedulable, %d requeued; partitions %.3fs, "
                "commit %.3fs", self.stats.batches, len(batch), n_won, n_unsched, n_requeued, t1 - t0, t2 - t1)

    # ------------------------------------------------------------- preemption
    def _fan_out_preemption(self, pods: list[PodInfo]) -> dict[str, tuple] | None:
        """Every partition's best candidate per pod: uid -> ([(node, rank), ...], summed reasons
        over every shard); None when a partition failed (the ledger decides alone then)."""
        request = self._shared(wire.encode_preemption_request(
            (self.pending[p.uid] for p in pods), list(self._pdb_objects.values()), self.preemption.evicting,
            self.preemption.held, self.preemption.groups, self.preemption.whole))
        answers = self._call_partitions("preempting", lambda part, deltas: part.preempt.remote(request, deltas))
        if answers is None:
            return None
        merged: dict[str, tuple] = {}
        for res in answers:
            _seconds, rows = wire.decode_preemptions(res)
            for a in rows:
                options, reasons = merged.setdefault(a.uid, ([], {}))
                for text, c in a.reasons.items():
                    reasons[text] = reasons.get(text, 0) + c
                if a.node:
                    options.append((a.node, tuple(a.rank)))
        return merged

    def _postfilter(self, pod: PodInfo, message: str, proposal: tuple | None = None) -> bool:
        """No node fits `pod` (the ledger agrees): preempt if it may (upstream's DefaultPreemption
        on the ledger, so the victims may be on any partition's nodes). On success the preemptor
        is assumed on the chosen node at once, which holds the room against every later pod (a
        nominated pod's room), its victims are evicted, and it is bound when the last is gone
        (`_victim_gone`); it shows PodScheduled=False with nominatedNodeName meanwhile, as
        upstream. Otherwise it is Unschedulable with the fit error and PostFilter's words.
        Returns True when it preempted (or holds its nominated room again)."""
        pre = self.preemption
        if pod.nominated_node and pre.enabled(pod) and self._rehold(pod, message):
            return True
        if pod.key is None or not pre.may_preempt(pod, pre.lowest_priority()):
            out = pre.preempt(pod) if pre.enabled(pod) else None
            self._unschedulable(pod, f"{message} {out.message}" if out is not None else message)
            return False
        t0 = time.monotonic()
        if proposal is not None:
            options, reasons = proposal
            if not options:  # no shard has a candidate: the partitions' reasons say why
                self.stats.preemptions_none += 1
                out = Outcome(message=postfilter_message(fit_error_message(len(self.nodes), reasons)))
            else:
                # the victims the ledger selects on each proposed node now; the best in
                # upstream's order, if it still ranks as its partition said (else the room
                # changed since: the ledger decides alone)
                checked = [(c.rank, i, c) for i, (n, _r) in enumerate(options)
                           if (c := pre.validate(pod, n)) is not None]
                best = min(checked, default=None, key=lambda x: (x[0], x[1]))
                # dirty nodes (rank None) are judged on the ledger only: no shard bound from them
                fresh = best is not None and best[0] <= min((r for _n, r in options if r is not None),
                                                            default=best[0])
                out = Outcome(best[2]) if fresh else pre.preempt(pod)
                self.stats.preemptions_validated += fresh
        else:
            out = pre.preempt(pod)
        c = out.candidate
        if self.metrics is not None:
            self.metrics.observe_preemption(len(c.victims) if c is not None else None, time.monotonic() - t0)
        if c is None:
            self._unschedulable(pod, f"{message} {out.message}")
            return False
        for q in c.bumped:  # lower-priority nominations there lose the node, as upstream clears them
            self._bump(q.uid, pod, c.node)
        if not c.victims:  # only those nominations held the room: placed as upstream's filters would
            self._assume(pod, c.node)
            return True
        to_evict = pre.to_evict(c.victims)  # the others are terminating already: waited for, not evicted again
        verdict = (f"{message} preemption: found a potential placement for pod on node {c.node}, "
                   f"preempting {len(c.victims)} victims")
        # it waits for the victims on its node: a whole group's members elsewhere go too, but their
        # room is not its own, unless its filters read other nodes (the dry run removed them all)
        local = not pod.has_volumes and self.ledger.class_of(pod).resources_only
        self._nominate(pod, c.node, [v for v in c.victims if v.node_name == c.node] if local else c.victims,
                       verdict)
        for v in to_evict:
            pre.start_eviction(v.uid)
            self.binder.evict(v, pod, c.node)
        self.stats.preemptions += 1
        self.stats.victims += len(c.victims)
        log.debug("%s/%s nominated to %s, preempting %s", pod.namespace, pod.name, c.node,
                  ", ".join(f"{v.namespace}/{v.name}" for v in c.victims))
        return True

    def _rehold(self, pod: PodInfo, message: str) -> bool:
        """A pod nominated before (status.nominatedNodeName: a previous coordinator preempted for
        it) whose victims are still terminating there holds that room again, as upstream's
        nominator restores nominations from the pods' status: it is assumed on the node and bound
        when they are gone, if it fits there once they are. It does not evict anyone."""
        pre, ledger = self.preemption, self.ledger
        if pre.eligible(pod) != NOT_ELIGIBLE_TERMINATING:
            return False
        node = pod.nominated_node
        t = ledger.table
        row = t.index.get(node)
        going = [q for q in map(ledger.pods.get, t.pods[row] if row is not None else ())
                 if q is not None and pre.priority_of(q) < pod.priority and (q.deleting or q.uid in pre.evicting)]
        for v in going:
            ledger.remove_pod(v.uid)
        try:
            fits = ledger.check(pod, node)
        finally:
            for v in going:
                ledger.add_pod(v)
        if not fits:
            return False
        self._nominate(pod, node, going, f"{message} {postfilter_message(NOT_ELIGIBLE_TERMINATING)}")
        self.stats.nominations_reheld += 1
        return True

    def _nominate(self, pod: PodInfo, node: str, victims: list[PodInfo], verdict: str) -> None:
        """Assume a preemptor on `node` (its room held: a nominated pod, never a victim), to be
        bound once every one of `victims` is gone (`_victim_gone`); PodScheduled=False with
        `verdict` and nominatedNodeName meanwhile, as upstream."""
        b = self.pending.pop(pod.uid)
        self.ledger.assume(replace(pod, waiting=True), node)
        self.assumed[pod.uid] = (b, node)
        self._deltas.append(wire.assume(b, node, waiting=True))
        self.nominated[pod.uid] = (pod, {v.uid for v in victims})
        self.preemption.hold(pod.uid, pod.priority)
        for v in victims:
            self._evicting.setdefault(v.uid, set()).add(pod.uid)
        self.last_message[pod.uid] = verdict
        self.binder.mark_unschedulable(pod, verdict, nominated_node=node)

    def _victim_gone(self, uid: str) -> None:
        """A victim's deletion seen by the watch: each preemptor waiting for it is bound once
        none of its victims is left."""
        waiting = self._evicting.pop(uid, set())
        if uid in self.preemption.evicting:
            self.preemption.end_eviction(uid)
        for pre_uid in waiting:
            entry = self.nominated.get(pre_uid)
            if entry is None:
                continue
            pod, left = entry
            left.discard(uid)
            if not left:
                del self.nominated[pre_uid]
                self.preemption.unhold(pre_uid)
                assumed = self.assumed.get(pre_uid)
                if assumed is not None:
                    self.ledger.settle(pre_uid)
                    self._deltas.append(wire.settle(pre_uid))
                    self.stats.scheduled += 1
                    self._bind(pod, assumed[1])

    def _end_nomination(self, uid: str) -> tuple[PodInfo, set[str]] | None:
        """Stop waiting for a preemptor's victims (their deletion, once asked, goes on)."""
        entry = self.nominated.pop(uid, None)
        if entry is None:
            return None
        self.preemption.unhold(uid)
        for v in entry[1]:
            waiting = self._evicting.get(v)
            if waiting is not None:
                waiting.discard(uid)
                if not waiting:
                    del self._evicting[v]
        return entry

    def _forget_nomination(self, uid: str) -> None:
        """A nominated preemptor deleted (or bound by someone else): its victims go anyway (their
        deletion was asked), but nothing waits for them any more."""
        self._end_nomination(uid)

    def _unassume_preemptor(self, uid: str) -> None:
        held = self._unassume(uid)
        if held is not None:
            self.pending[uid] = held[0]

    def _release_preemptor(self, uid: str, why: str) -> None:
        """A victim could not be evicted: the preemptor gives its held room back and is tried
        again after backoff (the room its other victims free is then anyone's)."""
        entry = self._end_nomination(uid)
        if entry is None:
            return
        pod, left = entry
        for v in left:
            if v not in self._evicting:  # no other preemptor waits for it
                self.preemption.end_eviction(v)
        self._unassume_preemptor(uid)
        log.warning("preemptor %s/%s released: %s", pod.namespace, pod.name, why)
        self.queue.backoff(pod)

    def _bump(self, uid: str, by: PodInfo, node: str) -> None:
        """A preemptor of higher priority takes the node a nominated pod waits on (upstream
        clears the lower nominations there): the room is given back, nominatedNodeName cleared,
        and the pod is tried again at once. Its victims' deletion, once asked, goes on."""
        entry = self._end_nomination(uid)
        if entry is None:
            return
        pod = replace(entry[0], nominated_node="")
        self._unassume_preemptor(uid)
        self.stats.nominations_cleared += 1
        message = (f"nominated node {node} was taken by the higher-priority pod {by.namespace}/{by.name}; "
                   f"scheduling again")
        self.last_message[uid] = message
        self.binder.mark_unschedulable(pod, message, nominated_node="")
        self.queue.requeue(pod)

    # ---------------------------------------------------------------- gangs
    def _schedule_gangs(self, batch: list[PodInfo]) -> list[PodInfo]:
        """Place the batch's gangs, each in one decision on the ledger; returns the pods to
        schedule one by one (plain pods, basic-policy groups, members of a gang already placed)."""
        plain: list[PodInfo] = []
        gangs: dict[tuple[str, str], list[PodInfo]] = {}
        basic: dict[tuple[str, str], list[PodInfo]] = {}
        for p in batch:
            key = (p.namespace, p.pod_group)
            g = self.pod_groups.get(key) if p.pod_group else None
            if not p.pod_group or (g is not None and not g.together):
                (basic.setdefault(key, []) if g is not None else plain).append(p)
            else:
                gangs.setdefault(key, []).append(p)
        refused: set[str] = set()
        for key, popped in basic.items():  # a basic group's pods of this batch, validated together
            g = self.pod_groups[key]
            why = pod_group_invalid_message(self._group_pods(key, popped), g.priority)
            if why:
                self._refuse_group(key, g, popped, why)
                refused.update(p.uid for p in popped)
        if basic:  # the rest keep their queue order
            plain = [p for p in batch if p.uid not in refused and (not p.pod_group or (p.namespace, p.pod_group) in basic)]
        for key, popped in gangs.items():
            plain += self._schedule_gang(key, popped)
        return plain

    def _schedule_gang(self, key: tuple[str, str], popped: list[PodInfo]) -> list[PodInfo]:
        """All or nothing for one gang: its pending members (those popped, and the others taken
        from the queue) are placed on the ledger together, and assumed only if, with the members
        already placed, at least minCount fit; otherwise none is, and every member is
        Unschedulable with the gang's reason. Returns members to place one by one (the gang was
        placed before)."""
        ns, name = key
        g = self.pod_groups.get(key)
        if g is None:  # as upstream, the pods wait for their PodGroup, visibly
            for p in popped:
                self._unschedulable(p, pod_group_missing_message(ns, name))
            return []
        why = pod_group_invalid_message(self._group_pods(key, popped), g.priority)
        if why:
            self._refuse_group(key, g, popped, why)
            return []
        members = self.group_members.get(key, set())
        on = [self.ledger.pods[uid].node_name for uid in members if uid in self.ledger.pods]
        placed = len(on)
        if placed >= g.required:
            if not g.topology_key:
                return popped  # the gang stands: the rest join it one by one
            # the rest join it in its topology domain
            results, _ok = self.ledger.schedule_gang(popped, 0, commit=False, topology_key=g.topology_key,
                                                     placed_nodes=on)
            for p, r in zip(popped, results):
                if r.candidates:
                    self._assume(p, r.candidates[0][0])
                else:
                    self._unschedulable(p, r.message())
            return []
        if g.deleting:
            # upstream still places a terminating group's pods; a gang not yet placed whose group is
            # going away is not started here (its finalizer only waits for these pods to go)
            for p in popped:
                self._unschedulable(p, pod_group_deleting_message(ns, name))
            return []
        mine = {p.uid for p in popped}
        pods = list(popped)
        for uid in sorted(members - mine):
            if uid in self.pending and uid not in self.ledger.pods:
                taken = self.queue.take(uid)
                if taken is not None:
                    pods.append(taken)
        pods.sort(key=lambda p: (p.creation_ts, p.name))
        why = pod_group_invalid_message(pods, g.priority)  # the members taken from the queue too
        if why:
            self._refuse_group(key, g, pods, why)
            return []
        need = g.required - placed
        t0 = time.monotonic()
        if len(pods) < need:
            foreign = sorted({s for k, s in self._foreign_members.values() if k == key})
            message = gang_waiting_message(name, g.required, len(pods) + placed,
                                           sum(1 for k, _s in self._foreign_members.values() if k == key), foreign)
            young = time.time() - max(p.creation_ts for p in pods) < GANG_QUIET_S
            for p in pods:
                if young:
                    self.queue.backoff(p)
                else:
                    self._unschedulable(p, message)
            return []
        results, ok = self.ledger.schedule_gang(pods, need, commit=False, topology_key=g.topology_key,
                                                placed_nodes=on)
        fits = sum(1 for r in results if r.candidates)
        if ok:
            for p, r in zip(pods, results):
                if r.candidates:
                    self._assume(p, r.candidates[0][0])
                else:
                    self._unschedulable(p, r.message())
        else:
            why = next((r.message() for r in results if not r.candidates), "")
            message = gang_unfit_message(why, name, g.required, placed + fits)
            preempted = self._preempt_for_gang(pods, need, message, g, on)
            if preempted is not None:
                ok, message = True, preempted
            else:
                for p in pods:
                    self._unschedulable(p, message)
        self._pod_group_condition(key, g, ok, "Scheduled" if ok else "Unschedulable",
                                  message if ok and fits < need else
                                  f"{placed + fits} of minCount {g.required} pods placed" if ok else message)
        self.stats.gangs_placed += ok
        self.stats.gangs_unschedulable += not ok
        if self.metrics is not None:
            self.metrics.observe_pod_group_attempt("scheduled" if ok else "unschedulable", time.monotonic() - t0,
                                                   profile=pods[0].scheduler_name if pods else None)
        return []

    def _group_pods(self, key: tuple[str, str], pending: list[PodInfo]) -> list[PodInfo]:
        """The pods upstream validates for a group's cycle: those being scheduled and those placed."""
        placed = [self.ledger.pods[uid] for uid in self.group_members.get(key, ()) if uid in self.ledger.pods]
        return pending + placed

    def _refuse_group(self, key: tuple[str, str], g: Gang, pods: list[PodInfo], why: str) -> None:
        """A group upstream refuses before scheduling it (validatePodGroup): its pods are
        Unschedulable with the reason, the PodGroup's condition says SchedulerError."""
        for p in pods:
            self._unschedulable(p, why)
        self._pod_group_condition(key, g, False, "SchedulerError", why)

    def _preempt_for_gang(self, pods: list[PodInfo], need: int, message: str, g: Gang,
                          placed_nodes: list[str] | None = None) -> str | None:
        """A gang that does not fit preempts as one (upstream's workload-aware preemption, over
        every node): the members that fit once the victims are gone are assumed on their nodes
        (their room held, nominatedNodeName set) and bound together when the last victim is
        gone; the others stay Unschedulable. A gang kept to a topology placement is placed by the
        placement algorithm once the victims are gone. The gang preempts with its PodGroup's
        priority, and its victims name the PodGroup as their preemptor, as upstream's do.
        Returns the verdict, or None when it cannot."""
        pre = self.preemption
        t0 = time.monotonic()
        gc = pre.preempt_gang(pods, need, g.topology_key, placed_nodes or (), g.priority)
        if self.metrics is not None and gc is not None:
            self.metrics.observe_preemption(len(gc.victims) or None, time.monotonic() - t0)
        if gc is None:
            return None
        lead = gc.assignments[0][0]
        for q in gc.bumped:
            self._bump(q.uid, lead, q.node_name)
        placed = {p.uid for p, _n in gc.assignments}
        if not gc.victims:  # only lower nominations held the room
            for p, node in gc.assignments:
                self._assume(p, node)
        else:
            to_evict = pre.to_evict(gc.victims)
            verdict = (f"{message} preemption: found a placement for the gang, preempting "
                       f"{len(gc.victims)} victims")
            for p, node in gc.assignments:
                self._nominate(p, node, gc.victims, verdict)
            by_node = {node: p for p, node in gc.assignments}
            for v in to_evict:
                pre.start_eviction(v.uid)
                self.binder.evict(v, by_node.get(v.node_name, lead), v.node_name, group=g)
            self.stats.preemptions += 1
            self.stats.victims += len(gc.victims)
            message = verdict
        for p in pods:
            if p.uid not in placed:
                self._unschedulable(p, message)
        return message

    def _pod_group_condition(self, key: tuple[str, str], g: Gang, ok: bool, reason: str, message: str) -> None:
        """PodGroupInitiallyScheduled, as upstream: True once the gang is placed, and never False
        after that; each change posted once."""
        if g.scheduled or self._group_condition.get(key, (False, ""))[0]:
            return
        if self._group_condition.get(key) == (ok, message):
            return
        self._group_condition[key] = (ok, message)
        setter = getattr(self.binder, "set_pod_group_condition", None)
        if setter is not None:
            setter(key[0], key[1], ok, reason, message)

    def _assume(self, pod: PodInfo, node: str) -> None:
        b = self.pending.pop(pod.uid)
        self.ledger.assume(replace(pod), node)
        self.assumed[pod.uid] = (b, node)
        self._deltas.append(wire.assume(b, node))
        # the queue keeps its bookkeeping (attempts) until the binding is settled, so a failed
        # binding backs off longer each time
        self.last_message.pop(pod.uid, None)
        self.stats.scheduled += 1
        self._bind(pod, node)

    # ------------------------------------------------------------- PreBind
    def _bind(self, pod: PodInfo, node: str) -> None:
        """Bind the pod; first, as upstream's VolumeBinding PreBind, write the volume bindings the
        ledger promised its unbound claims (a volume's claimRef, a claim's selected node) and wait
        until the PV controller (and a provisioner) completed them (`_volumes_settled`)."""
        if not pod.claims or not self.ledger.storage.chosen.get(pod.uid):
            self.binder.bind(pod, node)
            return
        writes = self._volume_writes(pod, node)
        self.volume_binding[pod.uid] = VolumeWait(pod, node, time.monotonic() + self.cfg.volume_bind_timeout_s,
                                                  written=not writes)
        if writes:
            self.binder.write_volumes(pod, node, writes)
        else:
            self._volumes_settled()

    def _volume_writes(self, pod: PodInfo, node: str) -> list[VolumeWrite]:
        st = self.ledger.storage
        out = []
        for ch in st.chosen.get(pod.uid, ()):
            c = st.claims.get(ch.claim)
            if c is None:
                continue  # gone meanwhile: the wait fails (`_volumes_settled`)
            if not ch.volume:
                if c.selected_node != node:
                    out.append(VolumeWrite(
                        f"/api/v1/namespaces/{quote(c.namespace, safe='')}/persistentvolumeclaims/{quote(c.name, safe='')}",
                        {"metadata": {"resourceVersion": c.resource_version, "annotations": {SELECTED_NODE: node}}}))
                continue
            v = st.volumes.get(ch.volume)
            if v is None or (v.claim_ref is not None and v.claim_ref.uid == c.uid
                             and (v.claim_ref.namespace, v.claim_ref.name) == ch.claim):
                continue
            meta: dict = {"resourceVersion": v.resource_version}
            if v.claim_ref is None:
                meta["annotations"] = {"pv.kubernetes.io/bound-by-controller": "yes"}
            ref = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": c.namespace, "name": c.name,
                   "uid": c.uid, "resourceVersion": c.resource_version}
            out.append(VolumeWrite(f"/api/v1/persistentvolumes/{quote(v.name, safe='')}",
                                   {"metadata": meta, "spec": {"claimRef": ref}}))
        return out

    def _volumes_settled(self) -> None:
        """Bind each pod whose volume bindings completed; give up on those that failed
        (upstream's checkBindings: a claimRef reset, a provisioner that removed the selected
        node) or ran out of time."""
        if not self.volume_binding:
            return
        st = self.ledger.storage
        now = time.monotonic()
        for uid, wait in list(self.volume_binding.items()):
            if not wait.written:
                continue
            node, seen = wait.node, wait.seen
            why = ""
            done = True
            for ch in st.chosen.get(uid, ()):
                c = st.claims.get(ch.claim)
                if c is None:
                    why = f'persistentvolumeclaim "{ch.claim[1]}" is gone'
                    break
                if c.bound:
                    continue
                done = False
                if ch.volume:
                    v = st.volumes.get(ch.volume)
                    ours = v is not None and v.claim_ref is not None and v.claim_ref.refers_to(c)
                    if v is None or (v.claim_ref is not None and not ours):
                        why = f'pv "{ch.volume}" is gone or bound to another claim'
                        break
                    if ours:
                        seen.add(ch.claim)
                    elif ch.claim in seen:  # our claimRef was seen, and is gone again
                        why = f'ClaimRef got reset for pv "{ch.volume}"'
                        break
                elif c.selected_node == node:
                    seen.add(ch.claim)
                elif ch.claim in seen:  # a provisioner removes the annotation when it fails
                    why = f'provisioning failed for PVC "{c.name}"'
                    break
            if not why and not done and now > wait.deadline:
                why = "timed out waiting for the volume bindings to complete"
            if why:
                self._volumes_failed(uid, f"binding volumes: {why}")
            elif done:
                del self.volume_binding[uid]
                self.binder.bind(wait.pod, node)

    def _volumes_failed(self, uid: str, detail: str) -> None:
        """PreBind failed: the pod goes back to the queue after a backoff, its promises released
        (what was written stays, as upstream's; the PV controller completes it, and the pod then
        finds its claims bound)."""
        wait = self.volume_binding.pop(uid, None)
        assumed = self._unassume(uid) if wait is not None else None
        if assumed is None:
            return
        pod = wait.pod
        log.info("volumes of %s/%s on %s: %s: retrying after backoff", pod.namespace, pod.name, wait.node, detail)
        self.stats.bind_retries += 1
        self.pending[uid] = assumed[0]
        self.queue.backoff(pod)

    def _unassume(self, uid: str) -> tuple[bytes, str] | None:
        """Forget a pod's assumption (a binding or PreBind that failed): the ledger and the
        partitions give its room (and volumes) back. Returns what was assumed, None if nothing."""
        entry = self.assumed.pop(uid, None)
        if entry is not None:
            self.ledger.forget(uid)
            self._deltas.append(wire.pod_gone(uid))
        return entry

    def _unschedulable(self, pod: PodInfo, message: str) -> None:
        self.stats.unschedulable += 1
        self.queue.mark_unschedulable(pod)
        if self.last_message.get(pod.uid) != message:  # don't re-post an unchanged verdict
            self.last_message[pod.uid] = message
            self.binder.mark_unschedulable(pod, message)

    # -------------------------------------------------------------------- loop
    def run_once(self) -> bool:
        """One turn of the loop; True when a batch was scheduled."""
        self._drain_inbox()
        self._drain_binder()
        if self._resize_to is not None:
            n, self._resize_to = self._resize_to, None
            self._resize(n)
        self._sync_partitions()
        if len(self._deltas) >= MAX_DELTAS:
            self._flush_deltas()
        now = time.monotonic()
        if self.metrics is not None and now - self._last_gauges >= 1.0:
            self._last_gauges = now
            c = self.queue.counts()
            self.metrics.set_pending(c["active"], c["backoff"], c["unschedulable"])
            self.metrics.partitions.set(len(self.parts))
            self.metrics.binder_inflight.set(self.binder.in_flight)
        if now - self._last_summary >= self.summary_every_s:
            self._last_summary = now
            c = self.queue.counts()
            log.info("%s queue active=%d backoff=%d unschedulable=%d binding=%d", self.stats.line(),
                     c["active"], c["backoff"], c["unschedulable"], len(self.assumed))
        # A trickle of pods (pods created a few at a time) would otherwise make a batch of each
        # few: every batch costs a round trip and CPU in every partition, whatever its size.
        self._hold_s = None
        hold = self._last_batch_at + self.cfg.batch_interval_s - now
        if hold > 0 and self.queue.active_at_most() < self.cfg.batch_size:
            self._hold_s = hold
            return False
        batch = self.queue.pop_batch(self.cfg.batch_size)
        if not batch:
            return False
        self._last_batch_at = now
        self.schedule_batch(batch)
        return True

    def run(self, stop: threading.Event, ready: threading.Event | None = None,
            warm: threading.Event | None = None) -> None:
        """The scheduling loop, until `stop` is set. `ready` (the informers' sync, and the Lease
        with leader election) gates the first batch: nothing is scheduled against a partial view
        of the cluster. Once `warm` is set (synced, not yet leading: a standby) the partitions
        are loaded and kept current, so a takeover schedules at once instead of loading first."""
        self._stop = stop
        synced = warm if warm is not None else ready
        if synced is not None:
            t0 = time.monotonic()
            with paused_gc():  # the initial list is a bulk load: see gc_tuning
                while not stop.is_set() and not (synced.is_set() and not self._inbox):
                    self._drain_inbox()
                    synced.wait(0.05)
                self._drain_inbox()
            log.info("initial state in the ledger %.2fs after the loop started: %d nodes, %d bound pods, "
                     "%d pending", time.monotonic() - t0, len(self.nodes), len(self.bound), len(self.pending))
        while not stop.is_set():
            if ready is not None and not ready.is_set():
                self._drain_inbox()
                if warm is not None and warm.is_set():
                    self._sync_partitions()
                    if len(self._deltas) >= MAX_DELTAS:
                        self._flush_deltas()
                ready.wait(0.1)
                continue
            if self.run_once():
                continue
            self.wake.clear()
            if self._inbox:  # arrived between run_once's drain and the clear: its wake is gone
                continue
            wait = self.queue.next_ready_in()
            if self._hold_s is not None:
                wait = self._hold_s if wait is None else min(wait, self._hold_s)
            self.wake.wait(0.5 if wait is None else min(0.5, max(wait, 0.005)))

    def shutdown(self) -> None:
        for actor in self.parts:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.parts.clear()
