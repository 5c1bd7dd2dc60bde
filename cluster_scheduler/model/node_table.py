"""The node table: the scheduler's cache of nodes as numpy arrays, updated incrementally.

One row per node, never rebuilt per decision. Resource columns grow when a new extended resource
appears; label columns are encoded lazily (a key gets an int32 column of value ids the first time a
plugin asks for it), so a node with thousands of labels costs nothing until a pod selects on them.
Every change to a row bumps `version[row]`, which is how the engine knows a cached score is stale.

Pods charged to a row (bound, or assumed by the scheduler) are kept per row, so removing a pod or a
node is exact, and the pod index (model/pod_index.py) can count pods per topology domain.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .types import CPU, MEMORY, PODS, HostPort, InlineDisk, NodeInfo, PodSpecKey, Taint

BASE_RESOURCES = (CPU, MEMORY, PODS)


@dataclass(slots=True)
class ChargedPod:
    """What the table remembers of a pod it charged, to undo it exactly."""

    uid: str
    row: int
    key: PodSpecKey


class NodeTable:
    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = max(16, capacity)
        self.names: list[str | None] = []
        self.index: dict[str, int] = {}
        self._free: list[int] = []
        self.resources: list[str] = list(BASE_RESOURCES)
        self.res_index: dict[str, int] = {r: i for i, r in enumerate(self.resources)}
        n, r = self.capacity, len(self.resources)
        self.alloc = np.zeros((n, r), dtype=np.int64)
        # Requested resources: Python lists per row are the truth (a placement touches one row, and
        # Python ints beat numpy scalars there); the numpy copies behind `req` / `nonzero` are
        # synced lazily, row by row, when a vectorized plugin reads them.
        self._req = np.zeros((n, r), dtype=np.int64)
        # kube's "non-zero" requested cpu/memory, used by NodeResourcesFit scoring
        self._nonzero = np.zeros((n, 2), dtype=np.int64)
        self.req_l: list[list[int]] = []
        self.nz_l: list[list[int]] = []
        self.alloc_l: list[list[int]] = []
        self.ver: list[int] = []  # bumped on every change to a row
        # when a pod was last charged to each row (a tick of `_ticks`, 0: never): ties between
        # equal scores go to the row placed on longest ago (round robin among equals, where
        # kube-scheduler picks one at random), so pods that leave scores unchanged still spread
        self.last: list[int] = []
        self._ticks = itertools.count(1)
        self._dirty: set[int] = set()
        self.valid = np.zeros(n, dtype=bool)
        self.ready = np.zeros(n, dtype=bool)
        self.cordoned = np.zeros(n, dtype=bool)
        self.broken = np.zeros(n, dtype=bool)  # node status could not be parsed
        # nodes share few distinct taint lists: plugins judge each once and map it to rows by id
        self.taint_set = np.zeros(n, dtype=np.int32)
        self.taint_sets: list[tuple[Taint, ...]] = [()]
        self._taint_set_ids: dict[tuple[Taint, ...], int] = {(): 0}
        self.labels: list[dict[str, str]] = []
        self.taints: list[tuple[Taint, ...]] = []
        self.errors: list[str | None] = []
        self.ports: list[dict[tuple[str, int], set[str]]] = []  # (proto, port) -> host IPs in use
        self.disks: list[tuple[InlineDisk, ...]] = []  # the inline disks of the pods on each row
        self.pods: list[dict[str, PodSpecKey]] = []
        self._node_info_alloc: list[dict[str, int]] = []  # as parsed, to fill new resource columns
        self.charged: dict[str, int] = {}  # uid -> row (the key is in pods[row])
        self._req_cache: dict[PodSpecKey, list[tuple[int, int]]] = {}
        self._chargers: dict[PodSpecKey, object] = {}
        # lazily encoded label columns: key -> int32 value ids (-1 = label absent)
        self._label_cols: dict[str, np.ndarray] = {}
        self._vocab: dict[str, dict[str, int]] = {}
        self._vocab_list: dict[str, list[str]] = {}
        self._unique_memo: dict[str, tuple[int, bool]] = {}
        self.generation = 0  # bumped on any node add/update/remove (not on pod charges)
        # charges and uncharges since the last `drain_log`, as (uid, row) / (uid, -1), while a
        # reader (preemption's victim index) follows them; None (no cost) until one asks
        self.log: list[tuple[str, int]] | None = None
        self.log_limit = 200_000  # past this the log stops growing and the reader rebuilds instead

    # ----------------------------------------------------------------- rows
    def _sync(self) -> None:
        for row in self._dirty:
            self._req[row] = self.req_l[row]
            self._nonzero[row] = self.nz_l[row]
        self._dirty.clear()

    @property
    def req(self) -> np.ndarray:
        """Requested resources per row (numpy, synced on read)."""
        if self._dirty:
            self._sync()
        return self._req

    @property
    def nonzero(self) -> np.ndarray:
        if self._dirty:
            self._sync()
        return self._nonzero

    @property
    def size(self) -> int:
        """Number of row slots in use (some may be free); arrays are valid up to here."""
        return len(self.names)

    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.valid[: self.size])

    def _grow(self, need: int) -> None:
        if need <= self.capacity:
            return
        cap = self.capacity
        while cap < need:
            cap *= 2

        def grow(a: np.ndarray) -> np.ndarray:
            b = np.zeros((cap,) + a.shape[1:], dtype=a.dtype)
            b[: a.shape[0]] = a
            return b

        self.alloc, self._req, self._nonzero = grow(self.alloc), grow(self._req), grow(self._nonzero)
        self.valid, self.ready, self.cordoned = grow(self.valid), grow(self.ready), grow(self.cordoned)
        self.broken = grow(self.broken)
        self.taint_set = grow(self.taint_set)
        for k, col in self._label_cols.items():
            c = np.full(cap, -1, dtype=np.int32)
            c[: col.shape[0]] = col
            self._label_cols[k] = c
        self.capacity = cap

    def resource_column(self, name: str) -> int:
        """Column of a resource, adding one (zero for every node) on first sight."""
        i = self.res_index.get(name)
        if i is not None:
            return i
        i = len(self.resources)
        self.resources.append(name)
        self.res_index[name] = i
        pad = np.zeros((self.capacity, 1), dtype=np.int64)
        self.alloc = np.hstack([self.alloc, pad])
        self._req = np.hstack([self._req, pad])
        for lst in self.alloc_l:
            lst.append(0)
        for lst in self.req_l:
            lst.append(0)
        # No charged pod can have requested a resource without its column (request_vector creates
        # the column first), so only allocatable needs filling in.
        for row, name_ in enumerate(self.names):
            if name_ is not None and name in self._node_info_alloc[row]:
                self.alloc[row, i] = self._node_info_alloc[row][name]
                self.alloc_l[row][i] = self._node_info_alloc[row][name]
        return i

    def _node_alloc_into(self, row: int, allocatable: dict[str, int]) -> None:
        lst = [0] * len(self.resources)
        for res, v in allocatable.items():
            j = self.res_index.get(res)
            if j is not None:
                lst[j] = v
        self.alloc[row] = lst
        self.alloc_l[row] = lst

    def request_items(self, key: PodSpecKey) -> list[tuple[int, int]]:
        """(column, amount) of every resource the pod requests; cached per key."""
        items = self._req_cache.get(key)
        if items is None:
            items = [(self.resource_column(res), v) for res, v in key.requests]
            if len(self._req_cache) > 50_000:
                self._req_cache.clear()
            self._req_cache[key] = items
        return items

    def start_log(self) -> None:
        """Record every charge and uncharge from now on (the compiled chargers are remade)."""
        if self.log is None:
            self.log = []
            self._chargers.clear()

    def drain_log(self) -> list[tuple[str, int]] | None:
        """The entries so far, emptied in place (the chargers hold this very list); None when the
        log overflowed (entries were dropped: the reader must rebuild from `charged`)."""
        if not self.log:
            return []
        full = len(self.log) >= self.log_limit
        out = self.log[:]
        self.log.clear()
        return None if full else out

    # ---------------------------------------------------------------- nodes
    def set_node(self, node: NodeInfo) -> int:
        """Add or update a node; pods already charged to it stay charged."""
        row = self.index.get(node.name)
        if row is None:
            if self._free:
                row = self._free.pop()
                self.names[row] = node.name
            else:
                row = len(self.names)
                self._grow(row + 1)
                self.names.append(node.name)
                self.labels.append({})
                self.taints.append(())
                self.errors.append(None)
                self.ports.append({})
                self.disks.append(())
                self.pods.append({})
                self._node_info_alloc.append({})
                self.req_l.append([])
                self.nz_l.append([])
                self.alloc_l.append([])
                self.ver.append(0)
                self.last.append(0)
            self.index[node.name] = row
            self.last[row] = 0
            self.req_l[row] = [0] * len(self.resources)
            self.nz_l[row] = [0, 0]
            self._dirty.add(row)
            self.ports[row] = {}
            self.disks[row] = ()
            self.pods[row] = {}
        for res in node.allocatable:
            self.resource_column(res)
        self._node_info_alloc[row] = dict(node.allocatable)
        self._node_alloc_into(row, node.allocatable)
        self.valid[row] = True
        self.ready[row] = node.ready
        self.cordoned[row] = node.unschedulable
        self.broken[row] = node.error is not None
        self.errors[row] = node.error
        self.taints[row] = tuple(node.taints)
        tid = self._taint_set_ids.get(self.taints[row])
        if tid is None:
            tid = self._taint_set_ids[self.taints[row]] = len(self.taint_sets)
            self.taint_sets.append(self.taints[row])
        self.taint_set[row] = tid
        old_labels = self.labels[row]
        self.labels[row] = dict(node.labels)
        for k, col in self._label_cols.items():
            if old_labels.get(k) != node.labels.get(k) or col[row] == -1:
                col[row] = self._value_id(k, node.labels[k]) if k in node.labels else -1
        self.ver[row] += 1
        self.generation += 1
        return row

    def remove_node(self, name: str) -> list[str]:
        """Remove a node; returns the uids of pods that were charged to it (now uncharged)."""
        row = self.index.pop(name, None)
        if row is None:
            return []
        uids = list(self.pods[row])
        for uid in uids:
            self.charged.pop(uid, None)
        self.names[row] = None
        self.valid[row] = False
        self.labels[row] = {}
        self.taints[row] = ()
        self.taint_set[row] = 0
        self.ports[row] = {}
        self.disks[row] = ()
        self.pods[row] = {}
        self.req_l[row] = [0] * len(self.resources)
        self.nz_l[row] = [0, 0]
        self._dirty.add(row)
        self.alloc[row] = 0
        self.alloc_l[row] = [0] * len(self.resources)
        for col in self._label_cols.values():
            col[row] = -1
        self.ver[row] += 1
        self.generation += 1
        self._free.append(row)
        return uids

    # ----------------------------------------------------------------- pods
    def charge(self, uid: str, key: PodSpecKey, row: int) -> None:
        """Account a pod on a row (bound or assumed). Idempotent per uid."""
        self.charger(key)(uid, row)

    def charger(self, key: PodSpecKey):
        """`charge` compiled for one key: a closure `(uid, row)` over this key's request columns.
        The engine fetches it once per run of same-class placements (its hottest loop)."""
        fn = self._chargers.get(key)
        if fn is not None:
            return fn
        items = self.request_items(key)
        req_l, nz_l, pods, charged, ver, dirty = self.req_l, self.nz_l, self.pods, self.charged, self.ver, self._dirty
        nzc, nzm, ports, disks = key.nonzero_cpu, key.nonzero_memory, key.host_ports, key.disks
        port_l, disk_l = self.ports, self.disks
        log, limit = self.log, self.log_limit
        last, ticks = self.last, self._ticks
        (j0, v0), (j1, v1), (j2, v2) = items if len(items) == 3 else ((0, 0), (0, 0), (0, 0))
        many = len(items) != 3

        def charge(uid: str, row: int) -> None:
            if uid in charged:
                return
            req = req_l[row]
            if many:
                for j, v in items:
                    req[j] += v
            else:  # cpu, memory, pods: the common case, unrolled
                req[j0] += v0
                req[j1] += v1
                req[j2] += v2
            nz = nz_l[row]
            nz[0] += nzc
            nz[1] += nzm
            dirty.add(row)
            if ports:
                used = port_l[row]
                for hp in ports:
                    used.setdefault((hp.protocol, hp.port), set()).add(hp.host_ip)
            if disks:
                disk_l[row] += disks
            pods[row][uid] = key
            charged[uid] = row
            ver[row] += 1
            last[row] = next(ticks)
            if log is not None and len(log) < limit:
                log.append((uid, row))
        if len(self._chargers) > 50_000:
            self._chargers.clear()
        self._chargers[key] = charge
        return charge

    def uncharge(self, uid: str) -> ChargedPod | None:
        row = self.charged.pop(uid, None)
        if row is None:
            return None
        key = self.pods[row][uid]
        cp = ChargedPod(uid, row, key)
        req = self.req_l[row]
        for j, v in self.request_items(key):
            req[j] -= v
        nz = self.nz_l[row]
        nz[0] -= key.nonzero_cpu
        nz[1] -= key.nonzero_memory
        self._dirty.add(row)
        self.pods[row].pop(uid, None)
        if key.host_ports:
            # rebuild the row's port map from the pods still on it (exact with duplicates)
            ports: dict[tuple[str, int], set[str]] = {}
            for k in self.pods[row].values():
                for hp in k.host_ports:
                    ports.setdefault((hp.protocol, hp.port), set()).add(hp.host_ip)
            self.ports[row] = ports
        if key.disks:
            self.disks[row] = tuple(d for k in self.pods[row].values() for d in k.disks)
        self.ver[row] += 1
        if self.log is not None and len(self.log) < self.log_limit:
            self.log.append((uid, -1))
        return cp

    # --------------------------------------------------------------- labels
    def _value_id(self, key: str, value: str) -> int:
        vocab = self._vocab[key]
        vid = vocab.get(value)
        if vid is None:
            vid = len(vocab)
            vocab[value] = vid
            self._vocab_list[key].append(value)
        return vid

    def label_column(self, key: str) -> np.ndarray:
        """int32 value id per row for a label key (-1 where absent); encoded on first use."""
        col = self._label_cols.get(key)
        if col is None:
            self._vocab[key] = {}
            self._vocab_list[key] = []
            col = np.full(self.capacity, -1, dtype=np.int32)
            for row, labels in enumerate(self.labels):
                v = labels.get(key)
                if v is not None and self.names[row] is not None:
                    col[row] = self._value_id(key, v)
            self._label_cols[key] = col
        return col

    def vocab_size(self, key: str) -> int:
        self.label_column(key)
        return len(self._vocab_list[key])

    def hostname_unique(self, key: str) -> bool:
        """Does every value of `key` name exactly one node? (cached per node generation)"""
        memo = self._unique_memo.get(key)
        if memo is None or memo[0] != self.generation:
            col = self.label_column(key)[: self.size]
            vals = col[col >= 0]
            memo = self._unique_memo[key] = (self.generation, len(np.unique(vals)) == len(vals))
        return memo[1]

    def value_id(self, key: str, value: str) -> int:
        """Id of a label value, or -1 if no node has ever had it."""
        self.label_column(key)
        return self._vocab[key].get(value, -1)

    def value_name(self, key: str, vid: int) -> str:
        return self._vocab_list[key][vid]

    def disks_conflict(self, row: int, wanted: tuple[InlineDisk, ...]) -> bool:
        """VolumeRestrictions: does a disk of `wanted` conflict with one a pod on the row mounts?"""
        have = self.disks[row]
        return bool(have) and any(d.conflicts(e) for d in wanted for e in have)

    # ---------------------------------------------------------------- ports
    def ports_conflict(self, row: int, wanted: tuple[HostPort, ...]) -> bool:
        """NodePorts semantics: same protocol+port conflicts if either IP is 0.0.0.0 or they match."""
        used = self.ports[row]
        if not used:
            return False
        for hp in wanted:
            ips = used.get((hp.protocol, hp.port))
            if not ips:
                continue
            if hp.host_ip == "0.0.0.0" or "0.0.0.0" in ips or hp.host_ip in ips:
                return True
        return False
