"""A partition: one Engine replica that proposes nodes from its shard only.

Every partition sees every node and every bound or assumed pod, so topology counts (zone spread,
inter-pod affinity) are global; `set_owned` restricts the nodes it proposes to its shard
(crc32(node name) mod partitions: stable across processes and restarts, and even for many nodes).

State arrives in batches of deltas from the coordinator, never one call per object. A fresh (or
restarted) actor is not synced: it refuses deltas and batches until the coordinator re-feeds it a
full snapshot with `load`, so a restarted actor can never propose from a partial view. Every
payload is in the format of `cluster_scheduler.wire`.
"""

from __future__ import annotations

import time
import zlib

from cluster_scheduler import wire
from cluster_scheduler.config import Profile
from cluster_scheduler.engine import Engine
from cluster_scheduler.gc_tuning import paused_gc
from cluster_scheduler.model.parse import parse_pdb
from cluster_scheduler.model.types import PodInfo
from cluster_scheduler.preemption import Preemption
from cluster_scheduler.wire import Op, namespace_labels, node_info, pod_info, unpack


def shard_of(node: str, partitions: int) -> int:
    return zlib.crc32(node.encode()) % partitions


def apply_deltas(engine: Engine, deltas: list, parsed: dict[bytes, PodInfo] | None = None) -> list[str]:
    """Apply decoded delta ops (`wire.decode_deltas`) to an engine; returns the names of nodes added
    or updated. `parsed`: pods this partition already parsed (the last batch, by their bytes): an
    ASSUME of one of them reuses it instead of parsing the same bytes again."""
    touched: list[str] = []
    for d in deltas:
        op = d[0]
        if op is Op.POD:
            engine.add_pod(pod_info(unpack(d[1])))
        elif op is Op.POD_GONE:
            engine.remove_pod(d[1])
        elif op is Op.BOUND_CLASS:
            engine.add_group(pod_info(unpack(d[1])), d[2])
        elif op is Op.ASSUME:
            info = parsed.pop(d[1], None) if parsed else None
            info = info if info is not None else pod_info(unpack(d[1]))
            info.waiting = d[3]
            engine.assume(info, d[2])
        elif op is Op.SETTLE:
            engine.settle(d[1])
        elif op is Op.NODE:
            n = node_info(unpack(d[1]))
            engine.set_node(n)
            touched.append(n.name)
        elif op is Op.NODE_GONE:
            engine.remove_node(d[1])
        elif op is Op.NAMESPACE:
            name, labels = namespace_labels(unpack(d[1]))
            engine.set_namespace_labels(name, labels)
        elif op is Op.STORAGE:
            engine.storage.apply(d[1], unpack(d[2]))
        elif op is Op.STORAGE_GONE:
            engine.storage.delete(d[1], d[2])
        else:
            raise ValueError(f"unknown delta op {op!r}")
    return touched


class Partition:
    """The actor body (wrapped with ray.remote by the coordinator)."""

    def __init__(self, profiles: tuple[Profile, ...], index: int, count: int) -> None:
        self.profiles = profiles
        self.index, self.count = index, count
        self.engine = Engine(profiles)
        self.synced = False
        self.owned: set[str] = set()
        self._last_batch: dict[bytes, PodInfo] = {}  # the last batch's pods, parsed (see apply_deltas)
        self._preemption: Preemption | None = None  # PostFilter over this engine (its index kept)

    def load(self, index: int, count: int, snapshot: bytes) -> int:
        """Replace all state with a full snapshot (a list of delta ops); returns the node count."""
        self.index, self.count = index, count
        self.engine = Engine(self.profiles)
        self.owned = set()
        self._last_batch = {}
        with paused_gc():
            apply_deltas(self.engine, wire.decode_deltas(snapshot))
        self._reown()
        self.synced = True
        return self.engine.num_nodes()

    def reshard(self, index: int, count: int) -> int:
        """New shard after partitions were added or removed; returns how many nodes it owns."""
        self.index, self.count = index, count
        self._reown()
        return len(self.owned)

    def _reown(self) -> None:
        self.owned = {n for n in self.engine.table.index if shard_of(n, self.count) == self.index}
        self.engine.set_owned(self.owned)

    def apply(self, deltas: bytes) -> bool:
        """Apply a batch of deltas; False (and nothing applied) when not synced."""
        if not self.synced:
            return False
        ops = wire.decode_deltas(deltas)
        touched = apply_deltas(self.engine, ops, self._last_batch)
        mine = [n for n in touched if n not in self.owned and shard_of(n, self.count) == self.index]
        removed = any(op[0] is Op.NODE_GONE and op[1] in self.owned for op in ops)
        if mine or removed:
            self.owned.update(mine)
            self.owned.intersection_update(self.engine.table.index)
            self.engine.set_owned(self.owned)
        return True

    def schedule(self, pods: bytes, k: int, deltas: bytes | None = None) -> bytes | None:
        """Top-k proposals (and reason histograms) for a batch of pods (`wire.encode_batch`), in
        order, and the seconds it took (`wire.encode_proposals`); nothing is committed. Pending `deltas` come
        in the same call (one task per partition per batch). None when not synced."""
        if not self.synced:
            return None
        t0 = time.perf_counter()
        if deltas is not None:
            self.apply(deltas)
        raw = wire.decode_batch(pods)
        infos = [pod_info(unpack(b)) for b in raw]
        results = self.engine.schedule(infos, k=k, commit=False)  # leaves node_name empty again
        # the winners come back as ASSUME deltas with these very bytes in the next call
        self._last_batch = dict(zip(raw, infos))
        return wire.encode_proposals(results, time.perf_counter() - t0)

    def preempt(self, request: bytes, deltas: bytes | None = None) -> bytes | None:
        """PostFilter for pods no node fits (`wire.encode_preemption_request`), on this shard's
        nodes: per pod in order, the shard's best candidate by upstream's rank, or why there is
        none (`wire.encode_preemptions`). Each candidate is acted out before the next pod is
        judged (so two pods of one call do not count on the same room), then everything is put
        back: the coordinator validates and commits. None when not synced."""
        if not self.synced:
            return None
        t0 = time.perf_counter()
        if deltas is not None:
            self.apply(deltas)
        raw, pdbs, evicting, held, groups, whole = wire.decode_preemption_request(request)
        if self._preemption is None or self._preemption.engine is not self.engine:
            self._preemption = Preemption(self.engine)
        pre = self._preemption
        pre.pdbs = [parse_pdb(b) for b in pdbs]
        pre.evicting = set(evicting)
        pre.set_groups(groups, whole)
        for uid in set(pre.held) - set(held):
            pre.unhold(uid)
        for uid, prio in held.items():
            if pre.held.get(uid) != prio:
                pre.hold(uid, prio)
        outcomes, acted = [], []
        for b in raw:
            info = pod_info(unpack(b))
            out = pre.preempt(info)
            outcomes.append((info.uid, out))
            if out.candidate is not None:
                acted.append((info, pre.apply(info, out.candidate)))
        for info, changed in reversed(acted):
            pre.undo(info, changed)
        return wire.encode_preemptions(outcomes, time.perf_counter() - t0)

    def node_id(self) -> str:
        """The Ray node this actor runs on (where the coordinator logs each partition went)."""
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"

    def stats(self) -> dict:
        return {"index": self.index, "count": self.count, "nodes": self.engine.num_nodes(),
                "owned": len(self.owned), "pods": len(self.engine.pods), "synced": self.synced}
