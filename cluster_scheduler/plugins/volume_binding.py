"""VolumeBinding: a node must reach every volume the pod's claims are bound to, and be able to bind
each unbound WaitForFirstConsumer claim (upstream `volumebinding`, FindPodVolumes).

- Bound claims: the volume's `spec.nodeAffinity.required` must match the node's labels.
- Unbound delayed claims, smallest request first: a free matching volume whose node affinity
  matches the node (static binding; the smallest fits, as FindMatchingVolume chooses), else the
  class's provisioner must be able to provision there (`allowedTopologies`). A claim already
  annotated with a selected node only fits that node, by provisioning.

PreFilter (missing, lost or deleting claims, unbound Immediate claims) is `StorageIndex.resolve`:
those pods never reach a node. Every filter reason here is UnschedulableAndUnresolvable upstream,
so the filter is static (preemption never evicts for it); the volumes it reads change as pods are
placed, which the engine handles by rebuilding the classes that read them when the storage index
moves (`ClassState.stale`).

Provisioning needs room where the class's provisioner is a CSIDriver with `storageCapacity`: a
CSIStorageCapacity of the class whose node topology selects the node and whose
`maximumVolumeSize` (else `capacity`) holds the claim's request (`node(s) did not have enough
free storage`). Nothing is reserved against it, as upstream: the driver republishes what is left.
"""

from __future__ import annotations

import numpy as np

from ..model.storage import Choice, StorageIndex
from ..model.types import Claim, LabelSelector, NodeSelectorTerm, Requirement, Volume
from . import ClassCtx
from .node_affinity import requirement_mask

NAME = "VolumeBinding"
REASON_NODE_CONFLICT = "node(s) didn't match PersistentVolume's node affinity"
REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
REASON_NOT_ENOUGH_SPACE = "node(s) did not have enough free storage"


def pre_filter(ctx: ClassCtx) -> bool:
    v = ctx.key.volumes
    return v is not None and bool(v.affinities or v.delayed or v.missing_volume)


def labels_mask(ctx: ClassCtx, terms: tuple[NodeSelectorTerm, ...]) -> np.ndarray:
    """Terms ORed over the candidate rows, on labels alone (upstream matches a volume's affinity
    against a node that has only the labels); a term without expressions matches nothing."""
    out = np.zeros(len(ctx.rows), dtype=bool)
    for term in terms:
        if not term.match_expressions:
            continue
        m = np.ones(len(ctx.rows), dtype=bool)
        for r in term.match_expressions:
            m &= requirement_mask(ctx, r)
        out |= m
    return out


def labels_match(terms: tuple[NodeSelectorTerm, ...], labels: dict[str, str]) -> bool:
    return any(t.match_expressions and all(r.matches(labels) for r in t.match_expressions) for t in terms)


def volume_mask(ctx: ClassCtx, v: Volume) -> np.ndarray:
    """The candidate rows a volume can be used on, cached per volume while no node changes."""
    if v.node_affinity is None:
        return np.ones(len(ctx.rows), dtype=bool)
    cache = ctx.storage.row_cache
    hit = cache.get(v.name)
    if hit is not None and hit[0] is ctx.rows and hit[1] == v.node_affinity:
        return hit[2]
    m = labels_mask(ctx, v.node_affinity)
    cache[v.name] = (ctx.rows, v.node_affinity, m)
    return m


def provision_mask(ctx: ClassCtx, c: Claim) -> np.ndarray:
    sc = ctx.storage.classes.get(c.storage_class) if c.storage_class else None
    if sc is None or not sc.provisions:
        return np.zeros(len(ctx.rows), dtype=bool)
    if not sc.allowed_topologies:
        return np.ones(len(ctx.rows), dtype=bool)
    return labels_mask(ctx, sc.allowed_topologies)


def selector_rows(ctx: ClassCtx, key: object, sel: LabelSelector | None) -> tuple[list[int] | None, np.ndarray | None]:
    """The candidate rows a label selector picks (None: none), as positions when they are few
    (a per-node capacity: one) else as a mask; cached under `key` while the rows stand."""
    cache = ctx.storage.row_cache
    hit = cache.get(key)
    if hit is not None and hit[0] is ctx.rows and hit[1] == sel:
        return hit[2], hit[3]
    n = len(ctx.rows)
    if sel is None:
        m = np.zeros(n, dtype=bool)
    else:
        m = np.ones(n, dtype=bool)
        for k, v in sel.match_labels:
            m &= requirement_mask(ctx, Requirement(k, "In", (v,)))
        for r in sel.match_expressions:
            m &= requirement_mask(ctx, r)
    idx = np.flatnonzero(m)
    pos, mask = (idx.tolist(), None) if len(idx) <= PINNED else (None, m)
    cache[key] = (ctx.rows, sel, pos, mask)
    return pos, mask


def room(ctx: ClassCtx, c: Claim) -> tuple[np.ndarray, np.ndarray] | None:
    """For a claim whose provisioning needs CSIStorageCapacity (`StorageIndex.tracks_capacity`):
    per candidate row, whether a capacity object of its class with room for it selects the node,
    and that object's `capacity` (the first by name: what the score reads; 0 if it has none).
    None when the claim's provisioning is not capacity-tracked. Kept per class and size while the
    capacity objects, drivers and rows stand (claims of one size share it: a per-node pool over
    thousands of nodes is one pass over its objects, not one per pod)."""
    st = ctx.storage
    sc = st.classes.get(c.storage_class) if c.storage_class else None
    if sc is None or not sc.provisions or not st.tracks_capacity(c, sc):
        return None
    sizes = st.row_cache.setdefault(("room", sc.name), {})  # request -> (rows, capacity_gen, room)
    hit = sizes.get(c.request)
    if hit is not None and hit[0] is ctx.rows and hit[1] == st.capacity_gen:
        return hit[2]
    if len(sizes) >= 32:  # a few sizes are common; many are not worth keeping
        sizes.clear()
    n = len(ctx.rows)
    ok = np.zeros(n, dtype=bool)
    cap = np.zeros(n, dtype=np.int64)
    for name, obj in sorted(st.capacities.get(sc.name, {}).items(), reverse=True):  # the first wins
        if obj.limit is None or obj.limit < c.request:
            continue
        pos, mask = selector_rows(ctx, ("capacity", name), obj.node_topology)
        at = pos if pos is not None else mask
        ok[at] = True
        cap[at] = obj.capacity or 0
    sizes[c.request] = (ctx.rows, st.capacity_gen, (ok, cap))
    return ok, cap


def delayed_claims(storage: StorageIndex, keys: tuple[tuple[str, str], ...]) -> list[Claim]:
    """The pod's unbound delayed claims in the order upstream matches them: smallest request first."""
    return sorted((storage.claims[k] for k in keys if k in storage.claims), key=lambda c: (c.request, c.name))


Candidates = dict[tuple[str, str], tuple[Volume | None, list[Volume]]]


def _plan(ctx: ClassCtx) -> tuple[list[Claim], Candidates]:
    """The pod's delayed claims and each one's candidate volumes, once per class build."""
    plan = ctx.memo.get("volumes")
    if plan is None:
        claims = delayed_claims(ctx.storage, ctx.key.volumes.delayed)
        plan = ctx.memo["volumes"] = (claims, {(c.namespace, c.name): ctx.storage.candidates(c) for c in claims})
    return plan


PINNED = 8  # a volume whose node affinity reaches at most this many nodes is indexed by position


def volume_positions(ctx: ClassCtx, v: Volume) -> list[int] | None:
    """The candidate-row positions a volume reaches, for a volume pinned to a few nodes (a local
    volume: one); None for one that reaches many (its mask is used instead)."""
    cache = ctx.storage.row_cache
    key = ("pos", v.name)
    hit = cache.get(key)
    if hit is not None and hit[0] is ctx.rows and hit[1] == v.node_affinity:
        return hit[2]
    pos = None
    if v.node_affinity is not None:
        idx = np.flatnonzero(volume_mask(ctx, v))
        pos = idx.tolist() if len(idx) <= PINNED else None
    cache[key] = (ctx.rows, v.node_affinity, pos)
    return pos


def _static_capacity(ctx: ClassCtx, pre: Volume | None, cands: list[Volume]) -> np.ndarray:
    """Per candidate row, the capacity of the volume static binding picks there (the smallest
    that fits), 0 where none; once per claim per class build. Volumes pinned to a few nodes are
    reduced with one `minimum.at` over their positions; the others are masked in."""
    memo_key = ("capacity", id(cands), id(pre))
    hit = ctx.memo.get(memo_key)
    if hit is not None:
        return hit
    n = len(ctx.rows)
    big = np.iinfo(np.int64).max
    cap = np.full(n, big, dtype=np.int64)
    positions: list[int] = []
    sizes: list[int] = []
    for v in ([pre] if pre is not None else cands):
        pos = volume_positions(ctx, v)
        if pos is None:
            m = volume_mask(ctx, v)
            cap[m] = np.minimum(cap[m], v.capacity)
        else:
            positions += pos
            sizes += [v.capacity] * len(pos)
    if positions:
        np.minimum.at(cap, np.array(positions, dtype=np.int64), np.array(sizes, dtype=np.int64))
    cap[cap == big] = 0
    ctx.memo[memo_key] = cap
    return cap


def pinned_at(ctx: ClassCtx, cands: list[Volume]) -> dict[int, Volume]:
    """For candidates pinned to a few nodes: per row position, the one static binding picks
    there (the smallest; the first of the sorted candidates); once per class build."""
    memo_key = ("pinned", id(cands))
    at = ctx.memo.get(memo_key)
    if at is None:
        at = {}
        for v in cands:
            for p in volume_positions(ctx, v) or ():
                at.setdefault(p, v)
        ctx.memo[memo_key] = at
    return at


def _on_node(ctx: ClassCtx, node: str) -> np.ndarray:
    """The candidate row of `node` (a claim's selected node), as a mask."""
    m = np.zeros(len(ctx.rows), dtype=bool)
    row = ctx.table.index.get(node)
    if row is not None:
        m[ctx.rows == row] = True
    return m


def _claim_masks(ctx: ClassCtx, c: Claim, pre: Volume | None,
                 cands: list[Volume]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One claim on its own, per candidate row: (it binds or provisions there, it fails with the
    bind conflict, it fails for want of storage capacity)."""
    prov = provision_mask(ctx, c)
    if c.selected_node:
        prov = _on_node(ctx, c.selected_node) & prov
        static = np.zeros(len(ctx.rows), dtype=bool)
    else:
        static = _static_capacity(ctx, pre, cands) > 0
    r = room(ctx, c)
    roomy = prov if r is None else prov & r[0]
    return static | roomy, ~static & ~prov, ~static & prov & ~roomy


def filter(ctx: ClassCtx) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    pv = ctx.key.volumes
    n = len(ctx.rows)
    if pv.missing_volume:
        none = np.zeros(n, dtype=bool)
        return none, [(~none, REASON_PV_NOT_EXIST)]
    node_ok = np.ones(n, dtype=bool)
    for terms in pv.affinities:
        node_ok &= labels_mask(ctx, terms)
    bind_ok = np.ones(n, dtype=bool)
    space_ok = np.ones(n, dtype=bool)
    claims, cands = _plan(ctx) if pv.delayed else ([], {})
    if len(claims) == 1:
        c = claims[0]
        _, bind_fail, space_fail = _claim_masks(ctx, c, *cands[(c.namespace, c.name)])
        bind_ok, space_ok = ~bind_fail, ~space_fail
    elif claims:
        # claims that compete for the same volumes: upstream matches them one by one on each node,
        # a volume chosen for one claim excluded for the next, then provisions the rest in order
        # (the first that cannot gives the reason); rows are decided exactly unless every claim
        # fits on its own there, or some claim cannot and no claim's capacity is tracked
        fits = np.ones(n, dtype=bool)
        tracked = False
        for c in claims:
            ok, _, _ = _claim_masks(ctx, c, *cands[(c.namespace, c.name)])
            fits &= ok
            tracked |= room(ctx, c) is not None
        bind_ok = fits.copy()
        exact = np.ones(n, dtype=bool) if tracked else fits
        for sel in {c.selected_node for c in claims if c.selected_node}:  # upstream's fast path
            exact &= _on_node(ctx, sel)
        t = ctx.table
        for p in np.flatnonzero(exact).tolist():
            row = int(ctx.rows[p])
            _, why = choose_why(ctx.storage, claims, t.names[row], t.labels[row], cands, (ctx, p))
            bind_ok[p] = why != REASON_BIND_CONFLICT
            space_ok[p] = why != REASON_NOT_ENOUGH_SPACE
    reasons = []
    if not node_ok.all():
        reasons.append((~node_ok, REASON_NODE_CONFLICT))
    if not bind_ok.all():
        reasons.append((~bind_ok, REASON_BIND_CONFLICT))
    if not space_ok.all():
        reasons.append((~space_ok, REASON_NOT_ENOUGH_SPACE))
    return node_ok & bind_ok & space_ok, reasons


def choose_on_row(ctx: ClassCtx, row: int, p: int) -> list[Choice] | None:
    """`choose` for row `row` (position `p` among the candidate rows) of a class whose build is
    current: a single claim's volume is looked up by position among the pinned candidates, and
    only the volumes that reach many nodes are scanned."""
    claims, cands = _plan(ctx)
    t = ctx.table
    if len(claims) != 1 or claims[0].selected_node or p < 0:
        return choose(ctx.storage, claims, t.names[row], t.labels[row], cands, (ctx, p))
    c = claims[0]
    pre, vols = cands[(c.namespace, c.name)]
    if pre is not None:
        return choose(ctx.storage, claims, t.names[row], t.labels[row], cands, (ctx, p))
    labels = t.labels[row]
    best = pinned_at(ctx, vols).get(p)
    for v in vols:  # the volumes that reach many nodes (few, as a rule)
        if best is not None and (v.capacity, v.name) >= (best.capacity, best.name):
            break
        if volume_positions(ctx, v) is None and (v.node_affinity is None or labels_match(v.node_affinity, labels)):
            best = v
            break
    if best is not None:
        return [Choice((c.namespace, c.name), best.name, t.names[row])]
    return choose(ctx.storage, claims, t.names[row], labels, cands, (ctx, p))  # provisioning, or nothing


def choose(storage: StorageIndex, claims: list[Claim], node: str, labels: dict[str, str],
           candidates: Candidates | None = None, at: tuple[ClassCtx, int] | None = None) -> list[Choice] | None:
    """What each unbound delayed claim gets on `node` (upstream's static matching, then
    provisioning), or None when one cannot be bound there."""
    return choose_why(storage, claims, node, labels, candidates, at)[0]


def choose_why(storage: StorageIndex, claims: list[Claim], node: str, labels: dict[str, str],
               candidates: Candidates | None = None,
               at: tuple[ClassCtx, int] | None = None) -> tuple[list[Choice] | None, str]:
    """`choose`, with the reason when the claims cannot be bound on `node`, in upstream's order:
    a claim provisioning on another node; then the claims without one matched to volumes (the
    smallest first, a volume taken by one excluded for the next); then those to provision (the
    ones with a selected node first), the first that cannot giving the reason. `at` (a current
    class build and the node's position in it) reads storage capacity off `room`'s rows."""
    if any(c.selected_node and c.selected_node != node for c in claims):
        return None, REASON_BIND_CONFLICT
    out: list[Choice] = []
    used: set[str] = set()
    provision = [c for c in claims if c.selected_node]
    for c in claims:
        if c.selected_node:
            continue
        key = (c.namespace, c.name)
        pre, cands = candidates[key] if candidates is not None else storage.candidates(c)
        pick = None
        if pre is not None:
            if pre.node_affinity is None or labels_match(pre.node_affinity, labels):
                pick = pre
        else:
            pick = next((v for v in cands if v.name not in used
                         and (v.node_affinity is None or labels_match(v.node_affinity, labels))), None)
        if pick is None:
            provision.append(c)
        else:
            used.add(pick.name)
            out.append(Choice(key, pick.name, node))
    for c in provision:
        sc = storage.classes.get(c.storage_class) if c.storage_class else None
        if sc is None or not sc.provisions or (sc.allowed_topologies and not labels_match(sc.allowed_topologies, labels)):
            return None, REASON_BIND_CONFLICT
        room_there = None
        if storage.tracks_capacity(c, sc):
            if at is not None and at[1] >= 0:
                ok, cap = room(at[0], c)
                if not ok[at[1]]:
                    return None, REASON_NOT_ENOUGH_SPACE
                room_there = int(cap[at[1]])
            else:
                obj = next((o for _, o in sorted(storage.capacities.get(sc.name, {}).items())
                            if o.limit is not None and o.limit >= c.request
                            and o.node_topology is not None and o.node_topology.matches(labels)), None)
                if obj is None:
                    return None, REASON_NOT_ENOUGH_SPACE
                room_there = obj.capacity or 0
        out.append(Choice((c.namespace, c.name), "", node, room_there))
    return out, ""


# ------------------------------------------------------------------------------------- score
def pre_score(ctx: ClassCtx) -> bool:
    """StorageCapacityScoring (beta, on by default in 1.37): the volumes static binding picks, or
    where there are none, the capacity objects provisioning found room in."""
    v = ctx.key.volumes
    return v is not None and bool(v.delayed)


def _shape(requested: int, capacity: int) -> int:
    """The default shape (utilization 0 -> 10, 100 -> 0, times MaxNodeScore/10): more free room
    scores higher."""
    if capacity == 0 or requested > capacity:
        return 0
    return 100 - requested * 100 // capacity


def _shape_rows(requested: int, capacity: np.ndarray) -> np.ndarray:
    util = requested * 100 // np.maximum(capacity, 1)
    return np.where((capacity > 0) & (requested <= capacity), 100 - util, 0).astype(np.int64)


def score_raw(ctx: ClassCtx) -> np.ndarray:
    """Per row: the mean over storage classes of the shape of (requested / capacity) of the
    volumes static binding picks there, or where it picks none, of the capacity objects that
    have room for the claims to provision (upstream scores one or the other, never both); 0
    where neither applies."""
    claims, cands = _plan(ctx)
    n = len(ctx.rows)
    if len(claims) == 1:
        c = claims[0]
        cap = (np.zeros(n, dtype=np.int64) if c.selected_node
               else _static_capacity(ctx, *cands[(c.namespace, c.name)]))
        out = _shape_rows(c.request, cap)
        r = room(ctx, c)
        if r is not None:
            out = np.where((cap == 0) & r[0], _shape_rows(c.request, r[1]), out)
        return out
    out = np.zeros(n, dtype=np.int64)
    t, storage = ctx.table, ctx.storage
    for p, row in enumerate(ctx.rows.tolist()):
        picks = choose(storage, claims, t.names[row], t.labels[row], cands, (ctx, p))
        if picks:
            out[p] = score_choices(storage, claims, picks)
    return out


def score_choices(storage: StorageIndex, claims: list[Claim], picks: list[Choice]) -> int:
    per_class: dict[str, list[int]] = {}
    by_key = {(c.namespace, c.name): c for c in claims}
    static = any(ch.volume for ch in picks)
    for ch in picks:
        c = by_key[ch.claim]
        if static and ch.volume:
            v = storage.volumes[ch.volume]
            acc = per_class.setdefault(v.storage_class, [0, 0])
            acc[0] += c.request
            acc[1] += v.capacity
        elif not static and ch.room is not None:
            acc = per_class.setdefault(c.storage_class, [0, 0])
            acc[0] += c.request
            acc[1] = ch.room  # the class's capacity where its last claim found room, as upstream
    if not per_class:
        return 0
    return int(round(sum(_shape(r, c) for r, c in per_class.values()) / len(per_class)))


def normalize(raw: np.ndarray, feasible: np.ndarray) -> np.ndarray:
    """No NormalizeScore upstream: the raw score is already 0..100."""
    return raw
