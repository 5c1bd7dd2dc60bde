"""Storage index: the claims, volumes and classes the volume filters read, and which volume the
scheduler has promised to which claim.

Every engine replica holds one, fed like the node table (list+watch, then the coordinator's
deltas). `resolve` turns a pod's claim names into its `PodVolumes` (upstream VolumeBinding's and
VolumeZone's PreFilter: the reasons a pod waits before any node is looked at). The rest serves
WaitForFirstConsumer claims: which available volumes could satisfy a claim (upstream's
FindMatchingVolume, node-independent part), and the **assumptions**: a volume chosen for a claim
when its pod is placed is taken for that claim in this replica until the pod goes, so no two pods
are ever promised one volume (on the coordinator's ledger this is the promise; a partition's are
proposals, undone with them). `gen` moves on every change, so classes with unbound claims know
to re-read the volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .csi_translation import provisioner_driver
from .parse import (parse_claim, parse_csi_driver, parse_csi_node, parse_storage_capacity, parse_storage_class,
                    parse_volume, parse_volume_attachment)
from .types import (WAIT_FOR_FIRST_CONSUMER, Claim, CSIDriverInfo, NodeSelectorTerm, PodInfo, PodVolumes,
                    StorageCapacity, StorageClassInfo, Volume, VolumeAttachmentInfo)

ClaimKey = tuple[str, str]  # (namespace, name)

# the storage kinds, as the API names their resources (informer kinds, wire ops)
VOLUMES, CLAIMS, STORAGE_CLASSES, CSI_NODES = "persistentvolumes", "persistentvolumeclaims", "storageclasses", "csinodes"
CSI_DRIVERS, CAPACITIES, ATTACHMENTS = "csidrivers", "csistoragecapacities", "volumeattachments"
STORAGE_KINDS = (STORAGE_CLASSES, CSI_DRIVERS, CAPACITIES, CSI_NODES, VOLUMES, ATTACHMENTS, CLAIMS)
NAMESPACED_STORAGE_KINDS = (CLAIMS, CAPACITIES)  # keyed `namespace/name`; the others by name
# (apiVersion, kind) of a manifest -> its storage kind (workload files' createObjects, tests)
API_KINDS = {("storage.k8s.io/v1", "StorageClass"): STORAGE_CLASSES, ("storage.k8s.io/v1", "CSIDriver"): CSI_DRIVERS,
             ("storage.k8s.io/v1", "CSIStorageCapacity"): CAPACITIES, ("storage.k8s.io/v1", "CSINode"): CSI_NODES,
             ("v1", "PersistentVolume"): VOLUMES, ("storage.k8s.io/v1", "VolumeAttachment"): ATTACHMENTS,
             ("v1", "PersistentVolumeClaim"): CLAIMS}

# VolumeZone's topology labels (upstream volumezone: GA and beta keys)
ZONE_LABELS = ("topology.kubernetes.io/zone", "topology.kubernetes.io/region",
               "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region")
BETA_TO_GA = {"failure-domain.beta.kubernetes.io/zone": "topology.kubernetes.io/zone",
              "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region"}

UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


def claim_missing_message(name: str, ephemeral: bool) -> str:
    if ephemeral:
        return f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"'
    return f'persistentvolumeclaim "{name}" not found'


def zone_sets(volume: Volume) -> list[tuple[str, tuple[str, ...]]]:
    """VolumeZone's view of a volume: each topology label as its set of values (`a__b` is a
    multi-zone value); a label with an empty part is ignored, as upstream."""
    out = []
    for k, v in volume.labels:
        if k in ZONE_LABELS:
            parts = tuple(sorted({p.strip() for p in v.split("__")}))
            if parts and all(parts):
                out.append((k, parts))
    return out


@dataclass
class Choice:
    """What a placed pod's unbound claim gets on its node: a volume (static binding), or
    provisioning there (`volume` empty)."""

    claim: ClaimKey
    volume: str
    node: str
    # provisioning where the driver publishes CSIStorageCapacity: the `capacity` of the object
    # that had room (VolumeBinding's score reads it); None where capacity is not tracked
    room: int | None = None


@dataclass
class StorageIndex:
    claims: dict[ClaimKey, Claim] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    classes: dict[str, StorageClassInfo] = field(default_factory=dict)
    drivers: dict[str, CSIDriverInfo] = field(default_factory=dict)
    # CSIStorageCapacity per storage class, by `namespace/name`: where its provisioner has room
    capacities: dict[str, dict[str, StorageCapacity]] = field(default_factory=dict)
    capacity_class: dict[str, str] = field(default_factory=dict)  # `namespace/name` -> its class
    capacity_gen: int = 0  # moves with capacities and drivers (the plugin's room per class and size)
    gen: int = 0
    # assumptions: volume -> the claim it is promised to; pod uid -> its choices
    taken: dict[str, ClaimKey] = field(default_factory=dict)
    taken_by: dict[ClaimKey, set[str]] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)  # volume -> placed pods holding its promise
    chosen: dict[str, list[Choice]] = field(default_factory=dict)
    provisioning: dict[ClaimKey, str] = field(default_factory=dict)  # claim -> node it provisions on
    # choices of pods removed from their node, kept so that a pod put back (a preemption trial,
    # a proposal re-applied) gets the same volumes again; bounded, oldest dropped first
    parked: dict[str, list[Choice]] = field(default_factory=dict)
    # placed pods per claim they mount (spec.volumes' persistentVolumeClaim, as upstream counts
    # for ReadWriteOncePod): VolumeRestrictions
    claim_users: dict[ClaimKey, set[str]] = field(default_factory=dict)
    # NodeVolumeLimits: per node, each CSI driver's attach limit (CSINode allocatable.count), and the
    # volumes placed pods use there (driver -> volume handle -> pods); what each pod was counted with
    node_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    node_drivers: dict[str, frozenset[str]] = field(default_factory=dict)  # nodes with a CSINode: its drivers
    attached: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    counted: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    attached_at: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (driver, handle) -> nodes
    # VolumeAttachments: by name, and what each counts ((node, attacher, handle): a CSI volume's,
    # per node and driver the handles with how many attachments name them); volume -> attachments
    attachments: dict[str, VolumeAttachmentInfo] = field(default_factory=dict)
    va_counted: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    va_handles: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    va_of_volume: dict[str, set[str]] = field(default_factory=dict)
    # (node, driver) whose distinct volume count moved, in order, for the plugin's per-row counts;
    # `attach_base` moves when the log is cut (every such count is then rebuilt)
    attach_log: list[tuple[str, str]] = field(default_factory=list)
    attach_base: int = 0
    limits_gen: int = 0  # moves with node_limits and node_drivers
    # placed pods per claim they mount (ephemeral ones too): recounted when the claim or its volume
    # changes, as upstream reads each pod's claims afresh when it filters (a claim bound after its
    # pod was placed counts its volume from then on)
    mounted: dict[ClaimKey, dict[str, PodInfo]] = field(default_factory=dict)
    by_class: dict[str, set[str]] = field(default_factory=dict)  # storage class -> volume names
    prebound: dict[ClaimKey, set[str]] = field(default_factory=dict)  # claim -> volumes whose claimRef names it
    row_cache: dict = field(default_factory=dict)  # the plugin's per-volume node rows (one engine epoch)
    _candidates: tuple[int, dict] = (-1, {})  # (gen, claim -> candidates): asked once per claim per gen

    # ------------------------------------------------------------------ objects
    def apply(self, kind: str, obj: dict) -> None:
        """An object of a storage kind added or changed (API shape, stripped or whole)."""
        if kind == CLAIMS:
            self.set_claim(parse_claim(obj))
        elif kind == VOLUMES:
            self.set_volume(parse_volume(obj))
        elif kind == STORAGE_CLASSES:
            self.set_class(parse_storage_class(obj))
        elif kind == CSI_NODES:
            self.set_node_limits(*parse_csi_node(obj))
        elif kind == CSI_DRIVERS:
            self.set_driver(parse_csi_driver(obj))
        elif kind == CAPACITIES:
            self.set_capacity(parse_storage_capacity(obj))
        elif kind == ATTACHMENTS:
            self.set_attachment(parse_volume_attachment(obj))
        else:
            raise ValueError(f"not a storage kind: {kind!r}")

    def delete(self, kind: str, key: str) -> None:
        """An object gone; `key` is `namespace/name` for a claim, the name otherwise."""
        if kind == CLAIMS:
            ns, _, name = key.partition("/")
            self.remove_claim(ns, name)
        elif kind == VOLUMES:
            self.remove_volume(key)
        elif kind == STORAGE_CLASSES:
            self.remove_class(key)
        elif kind == CSI_NODES:
            self.set_node_limits(key, {}, None)
        elif kind == CSI_DRIVERS:
            if self.drivers.pop(key, None) is not None:
                self.capacity_gen += 1
                self.gen += 1
        elif kind == CAPACITIES:
            self.remove_capacity(key)
        elif kind == ATTACHMENTS:
            self.remove_attachment(key)

    def set_attachment(self, va: VolumeAttachmentInfo) -> None:
        old = self.attachments.get(va.name)
        if old == va:
            return
        if old is not None and old.volume:
            self.va_of_volume.get(old.volume, set()).discard(va.name)
        self.attachments[va.name] = va
        if va.volume:
            self.va_of_volume.setdefault(va.volume, set()).add(va.name)
        self._count_attachment(va.name)

    def remove_attachment(self, name: str) -> None:
        old = self.attachments.pop(name, None)
        if old is not None:
            if old.volume:
                self.va_of_volume.get(old.volume, set()).discard(name)
            self._count_attachment(name)

    def _count_attachment(self, name: str) -> None:
        """What a VolumeAttachment counts now, as upstream's NodeVolumeLimits reads it: its
        attacher and its PersistentVolume's `spec.csi` handle (nothing without an attacher, a
        volume, or a CSI source of its own)."""
        va = self.attachments.get(name)
        v = self.volumes.get(va.volume) if va is not None and va.volume else None
        now = ((va.node, va.attacher, v.csi_handle)
               if va is not None and va.node and va.attacher and v is not None and v.csi_driver and not v.migrated
               else None)
        old = self.va_counted.get(name)
        if old == now:
            return
        for delta, entry in ((-1, old), (1, now)):
            if entry is None:
                continue
            node, driver, handle = entry
            per = self.va_handles.setdefault(node, {}).setdefault(driver, {})
            n = per.get(handle, 0) + delta
            if n > 0:
                per[handle] = n
            else:
                per.pop(handle, None)
            self._logged(node, driver)
        if now is None:
            self.va_counted.pop(name, None)
        else:
            self.va_counted[name] = now
        self.gen += 1

    def fresh(self, vols: PodVolumes) -> PodVolumes:
        """`vols` with its CSI volumes replaced by stand-ins when none of them is attached
        anywhere (no pod uses it, no VolumeAttachment names it): each is then new on every node,
        as a stand-in is, so the pod shares its class with others alike instead of being a class
        of its own (see `PodVolumes.fresh`)."""
        if not vols.csi or vols.delayed or vols.fresh or self.va_handles and any(self.va_handles.values()):
            return vols
        at = self.attached_at
        if any(v in at for v in vols.csi):
            return vols
        per: dict[str, int] = {}
        stand_ins = []
        for driver, _handle in sorted(set(vols.csi)):
            per[driver] = per.get(driver, 0) + 1
            stand_ins.append((driver, f"\x00{per[driver]}"))
        return replace(vols, csi=tuple(stand_ins), fresh=True)

    def in_use(self, node: str, driver: str) -> int:
        """How many of the driver's volumes count against `node`'s limit: its pods' and its
        VolumeAttachments' (each volume once)."""
        mine = self.attached.get(node, {}).get(driver, {})
        va = self.va_handles.get(node, {}).get(driver)
        return len(mine) + (sum(1 for h in va if h not in mine) if va else 0)

    def set_driver(self, d: CSIDriverInfo) -> None:
        if self.drivers.get(d.name) != d:
            self.drivers[d.name] = d
            self.capacity_gen += 1
            self.gen += 1

    def set_capacity(self, c: StorageCapacity) -> None:
        key = f"{c.namespace}/{c.name}"
        if self.capacities.get(c.storage_class, {}).get(key) == c:
            return
        self.remove_capacity(key)
        self.capacities.setdefault(c.storage_class, {})[key] = c
        self.capacity_class[key] = c.storage_class
        self.capacity_gen += 1
        self.gen += 1

    def remove_capacity(self, key: str) -> None:
        sc = self.capacity_class.pop(key, None)
        if sc is not None:
            per = self.capacities[sc]
            del per[key]
            if not per:
                del self.capacities[sc]
            self.row_cache.pop(("capacity", key), None)
            self.capacity_gen += 1
            self.gen += 1

    def guarded_drivers(self) -> list[str]:
        """Drivers whose volumes only go to nodes whose CSINode lists them (CSIDriver
        `preventPodSchedulingIfMissing`, read by NodeVolumeLimits under VolumeLimitScaling, on
        in 1.37)."""
        return [d.name for d in self.drivers.values() if d.prevent_if_missing]

    def tracks_capacity(self, claim: Claim, sc: StorageClassInfo) -> bool:
        """Does provisioning `claim` need a CSIStorageCapacity with room (its class's provisioner
        a CSIDriver with `storageCapacity`, the claim sized)? Upstream's hasEnoughCapacity."""
        d = self.drivers.get(sc.provisioner)
        return claim.sized and d is not None and d.storage_capacity

    def set_node_limits(self, node: str, limits: dict[str, int], drivers: frozenset[str] | None = frozenset()) -> None:
        """A node's CSINode: its drivers' attach limits and the drivers installed (None: it has
        no CSINode)."""
        if self.node_limits.get(node, {}) != limits or self.node_drivers.get(node) != drivers:
            if limits:
                self.node_limits[node] = limits
            else:
                self.node_limits.pop(node, None)
            if drivers is None:
                self.node_drivers.pop(node, None)
            else:
                self.node_drivers[node] = drivers
            self.limits_gen += 1
            self.gen += 1

    def set_claim(self, c: Claim) -> None:
        if self.claims.get((c.namespace, c.name)) != c:
            self.claims[(c.namespace, c.name)] = c
            self._recount((c.namespace, c.name))
            self.gen += 1

    def remove_claim(self, namespace: str, name: str) -> None:
        if self.claims.pop((namespace, name), None) is not None:
            self._recount((namespace, name))
            self.gen += 1

    def set_volume(self, v: Volume) -> None:
        old = self.volumes.get(v.name)
        if old == v:
            return
        if old is not None:
            self._unindex(old)
        self.volumes[v.name] = v
        self.by_class.setdefault(v.storage_class, set()).add(v.name)
        if v.claim_ref is not None:
            self.prebound.setdefault((v.claim_ref.namespace, v.claim_ref.name), set()).add(v.name)
        if old is None or old.node_affinity != v.node_affinity:
            self.row_cache.pop(v.name, None)
        if v.claim_ref is not None:
            # the claim is bound to this volume now: a different one this replica promised it (a
            # replica that chose otherwise than the ledger) is free again
            k = (v.claim_ref.namespace, v.claim_ref.name)
            for other in list(self.taken_by.get(k, ())):
                if other != v.name:
                    self.taken.pop(other, None)
                    self.refs.pop(other, None)
                    self.taken_by[k].discard(other)
        for ref in {old.claim_ref if old is not None else None, v.claim_ref} - {None}:
            self._recount((ref.namespace, ref.name))
        for va in list(self.va_of_volume.get(v.name, ())):
            self._count_attachment(va)
        self.gen += 1

    def remove_volume(self, name: str) -> None:
        old = self.volumes.pop(name, None)
        if old is not None:
            self._unindex(old)
            self.row_cache.pop(name, None)
            if old.claim_ref is not None:
                self._recount((old.claim_ref.namespace, old.claim_ref.name))
            for va in list(self.va_of_volume.get(name, ())):
                self._count_attachment(va)
            self.gen += 1

    def _unindex(self, v: Volume) -> None:
        self.by_class.get(v.storage_class, set()).discard(v.name)
        if v.claim_ref is not None:
            self.prebound.get((v.claim_ref.namespace, v.claim_ref.name), set()).discard(v.name)

    def set_class(self, sc: StorageClassInfo) -> None:
        if self.classes.get(sc.name) != sc:
            self.classes[sc.name] = sc
            self.gen += 1

    def remove_class(self, name: str) -> None:
        if self.classes.pop(name, None) is not None:
            self.gen += 1

    # ------------------------------------------------------------------ PreFilter
    # ------------------------------------------------------------------ users
    def placed(self, pod: PodInfo, sign: int) -> None:
        """A pod with volumes (`PodInfo.has_volumes`) charged to a node (+1) or taken off (-1)."""
        self._attach(pod.uid, [(pod.node_name, d, h) for d, h in self.csi_volumes(pod)] if sign > 0 else [])
        for name in pod.claims:
            at = self.mounted.setdefault((pod.namespace, name), {})
            if sign > 0:
                at[pod.uid] = pod
            else:
                at.pop(pod.uid, None)
                if not at:
                    del self.mounted[(pod.namespace, name)]
            if name in pod.ephemeral:
                continue  # (upstream's snapshot counts persistentVolumeClaim volumes only)
            k = (pod.namespace, name)
            users = self.claim_users.setdefault(k, set())
            if sign > 0:
                users.add(pod.uid)
            else:
                users.discard(pod.uid)
                if not users:
                    del self.claim_users[k]

    def _attach(self, uid: str, mine: list[tuple[str, str, str]]) -> None:
        """Count a placed pod's CSI volumes as `mine` ((node, driver, handle)), instead of what it
        was counted with."""
        for delta, entries in ((-1, self.counted.pop(uid, [])), (1, mine)):
            for node, driver, handle in entries:
                per = self.attached.setdefault(node, {}).setdefault(driver, {})
                n = per.get(handle, 0) + delta
                if n > 0:
                    if handle not in per:
                        self.attached_at.setdefault((driver, handle), set()).add(node)
                        self._logged(node, driver)
                    per[handle] = n
                elif per.pop(handle, None) is not None:
                    at = self.attached_at.get((driver, handle))
                    if at is not None:
                        at.discard(node)
                        if not at:
                            del self.attached_at[(driver, handle)]
                    self._logged(node, driver)
        if mine:
            self.counted[uid] = mine

    def _logged(self, node: str, driver: str) -> None:
        """The driver's count on `node` moved: logged for the plugin's per-row counts (the log is
        cut now and then; `attach_base` then tells them to rebuild)."""
        log = self.attach_log
        log.append((node, driver))
        if len(log) > 100_000:
            log.clear()
            self.attach_base += 1

    def _recount(self, key: ClaimKey) -> None:
        """A claim, or the volume bound to it, changed: the placed pods mounting it count what it
        is now."""
        for pod in list(self.mounted.get(key, {}).values()):
            self._attach(pod.uid, [(pod.node_name, d, h) for d, h in self.csi_volumes(pod)])

    def rwop_holders(self, pod: PodInfo) -> set[str]:
        """The other placed pods using one of the pod's ReadWriteOncePod claims (VolumeRestrictions'
        conflict, which only their eviction cures)."""
        out: set[str] = set()
        for name in pod.claims:
            c = self.claims.get((pod.namespace, name))
            if c is not None and name not in pod.ephemeral and "ReadWriteOncePod" in c.access_modes:
                out |= self.claim_users.get((pod.namespace, name), set())
        out.discard(pod.uid)
        return out

    def csi_volumes(self, pod: PodInfo) -> list[tuple[str, str]]:
        """(driver, volume handle) of the pod's CSI volumes, as NodeVolumeLimits counts them: a
        bound claim's volume by its `spec.csi` (or its in-tree source, translated); an unbound
        one (or one whose volume is missing) by its class's provisioner's driver, under a handle
        of its own (upstream makes a random one); and its inline in-tree volumes, translated."""
        out = list(pod.key.inline_csi) if pod.key is not None else []
        for name in pod.claims:
            c = self.claims.get((pod.namespace, name))
            if c is None:
                continue
            v = self.volumes.get(c.volume_name) if c.volume_name else None
            if v is not None:
                if v.csi_driver:
                    out.append((v.csi_driver, v.csi_handle))
                continue
            sc = self.classes.get(c.storage_class) if c.storage_class else None
            driver = provisioner_driver(sc.provisioner) if sc is not None else ""
            if driver:
                out.append((driver, f"unbound:{c.namespace}/{c.name}"))
        return out

    def resolve(self, pod: PodInfo, binding: bool = True, zone: bool = True,
                restrictions: bool = True, limits: bool = True) -> PodVolumes | str | None:
        """The pod's volumes for its class key, or why it cannot be placed on any node now
        (upstream's PreFilter messages, UnschedulableAndUnresolvable), or None when its profile
        runs none of the volume filters. `binding`/`zone`/`restrictions`: VolumeBinding /
        VolumeZone / VolumeRestrictions enabled."""
        if not (binding or zone or restrictions or limits):
            return None
        affinities: list[tuple[NodeSelectorTerm, ...]] = []
        missing = False
        zones: dict[tuple[str, tuple[str, ...]], None] = {}
        delayed: list[ClaimKey] = []
        immediate = False
        rwop = False
        for name in pod.claims:
            eph = name in pod.ephemeral
            c = self.claims.get((pod.namespace, name))
            if c is None:
                return claim_missing_message(name, eph)
            if c.error:
                return c.error
            if (restrictions and not eph and "ReadWriteOncePod" in c.access_modes
                    and self.claim_users.get((pod.namespace, name), set()) - {pod.uid}):
                rwop = True
            if binding:
                if c.lost:
                    return (f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                            f'"{c.volume_name}"')
                if c.deleting:
                    return f'persistentvolumeclaim "{name}" is being deleted'
                if eph and c.owner_uid != pod.uid:
                    return (f"PVC {pod.namespace}/{name} was not created for pod {pod.namespace}/{pod.name} "
                            "(pod is not owner)")
            if c.bound:
                v = self.volumes.get(c.volume_name)
                if v is None:
                    if zone and not eph:
                        return f'persistentvolume "{c.volume_name}" not found'
                    missing = missing or binding  # every node then fails VolumeBinding's filter
                    continue
                if binding and v.node_affinity is not None:
                    affinities.append(v.node_affinity)
                if zone and not eph:
                    for z in zone_sets(v):
                        zones[z] = None
                continue
            if not binding:
                continue
            sc = self.classes.get(c.storage_class) if c.storage_class else None
            if sc is not None and sc.binding_mode is None:
                return f'VolumeBindingMode not set for StorageClass "{sc.name}"'
            if sc is not None and sc.binding_mode == WAIT_FOR_FIRST_CONSUMER and not c.volume_name:
                delayed.append((c.namespace, c.name))
            else:
                immediate = True
        if immediate:
            return UNBOUND_IMMEDIATE
        csi = tuple(self.csi_volumes(pod)) if limits and (self.node_limits or self.guarded_drivers()) else ()
        return PodVolumes(tuple(dict.fromkeys(affinities)), tuple(sorted(zones)), tuple(delayed), missing, rwop, csi)

    # ------------------------------------------------------------------ static binding
    def candidates(self, c: Claim) -> tuple[Volume | None, list[Volume]]:
        """Volumes that could bind `c` on some node, node affinity aside (FindMatchingVolume's
        other checks): its pre-bound volume if one passes them (then it is the only candidate),
        else the available matching ones, smallest first (name breaks ties)."""
        key = (c.namespace, c.name)
        gen, memo = self._candidates
        if gen != self.gen:
            memo = {}
            self._candidates = (self.gen, memo)
        hit = memo.get(key)
        if hit is not None and hit[0] is c:
            return hit[1]
        out = memo[key] = (c, self._find_candidates(c, key))
        return out[1]

    def _find_candidates(self, c: Claim, key: ClaimKey) -> tuple[Volume | None, list[Volume]]:
        names = self.by_class.get(c.storage_class, ())
        # pre-bound: its claimRef names the claim, or this replica promised it to the claim already
        # (another pod sharing the claim then gets the same volume, as upstream's assumed claimRef)
        for n in sorted(self.prebound.get(key, set()) | self.taken_by.get(key, set())):
            v = self.volumes.get(n)
            if (v is not None and v.storage_class == c.storage_class and self._fits(v, c)
                    and (v.claim_ref.refers_to(c) if v.claim_ref is not None else self.taken.get(n) == key)):
                return v, []
        out = []
        for n in names:
            v = self.volumes[n]
            if (v.claim_ref is None and v.phase == "Available" and self._fits(v, c)
                    and n not in self.taken and c.access_modes <= v.access_modes
                    and (c.selector is None or c.selector.matches(dict(v.labels)))):
                out.append(v)
        out.sort(key=lambda v: (v.capacity, v.name))
        return None, out

    @staticmethod
    def _fits(v: Volume, c: Claim) -> bool:
        return not v.error and not v.deleting and v.capacity >= c.request and v.volume_mode == c.volume_mode

    # ------------------------------------------------------------------ assumptions
    def restore(self, uid: str) -> bool:
        """Re-take the choices of a pod put back on its node, if none of them was taken since."""
        choices = self.parked.pop(uid, None)
        if not choices or any(ch.volume and self.taken.get(ch.volume, ch.claim) != ch.claim for ch in choices):
            return False
        self.assume(uid, choices)
        return True

    def assume(self, uid: str, choices: list[Choice]) -> None:
        if not choices:
            return
        self.release(uid)
        self.parked.pop(uid, None)
        for ch in choices:
            if ch.volume:
                self.taken[ch.volume] = ch.claim
                self.taken_by.setdefault(ch.claim, set()).add(ch.volume)
                self.refs[ch.volume] = self.refs.get(ch.volume, 0) + 1
            else:
                self.provisioning[ch.claim] = ch.node
        self.chosen[uid] = choices
        self.gen += 1

    def release(self, uid: str) -> None:
        choices = self.chosen.pop(uid, None)
        if not choices:
            return
        self.parked[uid] = choices
        if len(self.parked) > 10_000:
            del self.parked[next(iter(self.parked))]
        for ch in choices:
            if ch.volume:
                left = self.refs.get(ch.volume, 1) - 1
                if left > 0:
                    self.refs[ch.volume] = left
                    continue
                self.refs.pop(ch.volume, None)
                if self.taken.get(ch.volume) == ch.claim:
                    del self.taken[ch.volume]
                    self.taken_by.get(ch.claim, set()).discard(ch.volume)
            elif self.provisioning.get(ch.claim) == ch.node:
                del self.provisioning[ch.claim]
        self.gen += 1
