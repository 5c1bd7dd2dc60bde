"""Typed domain objects: what the engine needs to know about a pod or a node, parsed once at the edge.

Everything here is immutable and hashable where it feeds an equivalence-class key, so pods with the
same scheduling-relevant spec share one computation. Quantities are exact integers in canonical units
(see model/quantity.py): CPU in millicores, every other resource in whole units (bytes, devices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# Resource names the engine always has a column for; anything else (extended resources) is added
# to the node table on first sight.
CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# Defaults kube-scheduler uses for scoring when a container does not request cpu/memory
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

HOSTNAME_LABEL = "kubernetes.io/hostname"

# Taint effects.
NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One matchExpression: key <op> values. op is In, NotIn, Exists, DoesNotExist, Gt or Lt."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        if self.key not in labels:
            return op == "NotIn"  # labels.Selector semantics: NotIn holds for an absent key
        v = labels[self.key]
        if op == "In":
            return v in self.values
        if op == "NotIn":
            return v not in self.values
        # Gt / Lt: both sides must parse as integers, otherwise no match (as upstream).
        try:
            lhs = int(v)
            rhs = int(self.values[0])
        except (ValueError, IndexError):
            return False
        return lhs > rhs if op == "Gt" else lhs < rhs


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """metav1.LabelSelector: all matchLabels and all expressions must hold. An empty selector
    matches everything; `None` where a selector is optional means 'matches nothing'."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        for r in self.match_expressions:
            if not r.matches(labels):
                return False
        return True


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """One nodeSelectorTerm: expressions over labels AND fields (only metadata.name). A term with
    neither matches no node, as upstream."""

    match_expressions: tuple[Requirement, ...] = ()
    match_fields: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        for r in self.match_expressions:
            if not r.matches(labels):
                return False
        fields = {"metadata.name": node_name}
        for r in self.match_fields:
            if not r.matches(fields):
                return False
        return True


@dataclass(frozen=True, slots=True)
class PreferredSchedulingTerm:
    weight: int
    term: NodeSelectorTerm


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""  # empty key (operator Exists) tolerates every taint
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # empty = every effect

    def tolerates(self, taint: "Taint") -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("", "Equal") and self.value == taint.value


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    value: str = ""
    effect: str = NO_SCHEDULE


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A required or preferred (anti-)affinity term, resolved at parse time: `namespaces` is the
    explicit list (or the pod's own namespace when both list and selector are absent);
    `namespace_selector` is None when absent, an empty LabelSelector when it selects every
    namespace. matchLabelKeys/mismatchLabelKeys are folded into `selector` at parse time."""

    selector: LabelSelector | None
    topology_key: str
    namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector | None = None

    def matches_pod(self, labels: Mapping[str, str], namespace: str,
                    namespace_labels: Mapping[str, Mapping[str, str]]) -> bool:
        """Does an (other) pod with these labels in this namespace match this term?"""
        if self.selector is None or not self.selector.matches(labels):
            return False
        if namespace in self.namespaces:
            return True
        if self.namespace_selector is not None:
            return self.namespace_selector.matches(namespace_labels.get(namespace, {}))
        return False


@dataclass(frozen=True, slots=True)
class WeightedPodAffinityTerm:
    weight: int
    term: PodAffinityTerm


@dataclass(frozen=True, slots=True)
class TopologySpreadConstraint:
    """topologySpreadConstraints entry. `selector` already includes matchLabelKeys (resolved
    against the pod's own labels at parse time). Policies: Honor | Ignore."""

    max_skew: int
    topology_key: str
    when_unsatisfiable: str  # DoNotSchedule | ScheduleAnyway
    selector: LabelSelector | None
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"


@dataclass(frozen=True, slots=True)
class HostPort:
    host_ip: str  # "" and "0.0.0.0" both mean every address
    protocol: str
    port: int


GCE_PD, AWS_EBS, ISCSI, RBD = "gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd"


@dataclass(frozen=True, slots=True)
class InlineDisk:
    """A disk named inline in a pod's spec.volumes that VolumeRestrictions keeps from being
    mounted twice on one node: `kind` is its source (`name`: a GCE PD's pdName, an EBS volumeID,
    an iSCSI iqn, an RBD pool and image; `monitors`: the RBD image's Ceph monitors)."""

    kind: str
    name: str
    read_only: bool = False
    monitors: tuple[str, ...] = ()

    def conflicts(self, other: "InlineDisk") -> bool:
        """Upstream's isVolumeConflict for one disk of each pod: the same EBS volume always; the
        same GCE PD, iSCSI target or RBD image (on a shared monitor) unless both are read-only."""
        if self.kind != other.kind or self.name != other.name:
            return False
        if self.kind == AWS_EBS:
            return True
        if self.kind == RBD and not set(self.monitors) & set(other.monitors):
            return False
        return not (self.read_only and other.read_only)


@dataclass(frozen=True, slots=True)
class PodVolumes:
    """A pod's PersistentVolumeClaims as the volume filters read them, resolved against the
    claims, volumes and classes known at the time (model/storage.py), and part of the pod's class
    key (pods whose volumes constrain nodes alike share one class).

    `affinities`: the required node affinity of each bound claim's PersistentVolume (VolumeBinding);
    `zones`: the zone/region label sets of those volumes (VolumeZone), each (label key, values);
    `delayed`: the pod's unbound WaitForFirstConsumer claims, (namespace, name), which a node must
    be able to bind (a free matching volume there, or provisioning); `rwop_in_use`: another placed
    pod uses one of its ReadWriteOncePod claims."""

    affinities: tuple[tuple[NodeSelectorTerm, ...], ...] = ()
    zones: tuple[tuple[str, tuple[str, ...]], ...] = ()
    delayed: tuple[tuple[str, str], ...] = ()
    missing_volume: bool = False  # a bound claim's volume does not exist (no node passes)
    rwop_in_use: bool = False  # a ReadWriteOncePod claim of the pod is used by a placed pod (VolumeRestrictions)
    csi: tuple[tuple[str, str], ...] = ()  # (driver, volume handle) of each CSI volume (NodeVolumeLimits)
    # `csi` holds stand-ins for the pod's own volumes, which were attached nowhere when it was keyed
    # (each counts as new on every node): pods of fresh volumes alike share a class
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class PodSpecKey:
    """Everything that decides where a pod may go and how nodes score for it, and nothing else:
    pods with equal keys form one equivalence class (computed once per batch).

    Labels and namespace are part of it because (anti-)affinity and spread terms, and existing pods'
    terms, match on them."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    requests: tuple[tuple[str, int], ...]  # effective request incl. overhead, canonical units, sorted
    nonzero_cpu: int  # request used for scoring (kube's non-zero defaults applied)
    nonzero_memory: int
    # (cpu, memory) the NodeResourcesFit scorer charges when it differs from the non-zero request
    # (pod-level requests, which that scorer ignores in v1.37.2: see parse._requests)
    fit_request: tuple[int, int] | None = None
    host_ports: tuple[HostPort, ...] = ()
    disks: tuple[InlineDisk, ...] = ()  # inline GCE PD / EBS / iSCSI / RBD volumes (VolumeRestrictions)
    # inline in-tree volumes migrated to CSI, (driver, volume handle) (NodeVolumeLimits counts them)
    inline_csi: tuple[tuple[str, str], ...] = ()
    node_name: str = ""  # spec.nodeName (NodeName plugin)
    node_selector: tuple[tuple[str, str], ...] = ()
    required_node_affinity: tuple[NodeSelectorTerm, ...] | None = None  # None = no requirement
    preferred_node_affinity: tuple[PreferredSchedulingTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    pod_affinity: tuple[PodAffinityTerm, ...] = ()
    pod_anti_affinity: tuple[PodAffinityTerm, ...] = ()
    preferred_pod_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_pod_anti_affinity: tuple[WeightedPodAffinityTerm, ...] = ()
    spread_constraints: tuple[TopologySpreadConstraint, ...] = ()
    volumes: PodVolumes | None = None  # set by the engine from the pod's claims (never by parse)
    # cached hash: keys are looked up once per pod in the hot path, and hashing the nested tuples
    # each time costs more than the rest of a placement
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        h = self._hash
        if not h:
            h = hash((self.namespace, self.labels, self.requests, self.nonzero_cpu, self.nonzero_memory,
                      self.fit_request, self.host_ports, self.disks, self.inline_csi, self.node_name, self.node_selector, self.required_node_affinity,
                      self.preferred_node_affinity, self.tolerations, self.pod_affinity,
                      self.pod_anti_affinity, self.preferred_pod_affinity,
                      self.preferred_pod_anti_affinity, self.spread_constraints, self.volumes)) or 1
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def request_dict(self) -> dict[str, int]:
        return dict(self.requests)


@dataclass(slots=True)
class PodInfo:
    """A pod as the scheduler tracks it. `key` is None when the spec could not be understood; then
    `error` says why, and the pod is reported Unschedulable with that reason, never crashing."""

    uid: str
    namespace: str
    name: str
    priority: int = 0
    scheduler_name: str = "default-scheduler"
    node_name: str = ""  # bound node ('' while pending)
    creation_ts: float = 0.0
    key: PodSpecKey | None = None
    error: str | None = None
    phase: str = "Pending"
    resource_version: str = ""
    scheduling_gated: bool = False  # spec.schedulingGates non-empty: not ready to be scheduled
    deleting: bool = False  # metadata.deletionTimestamp set: never schedule it
    pod_group: str = ""  # spec.schedulingGroup.podGroupName: a PodGroup in the pod's namespace
    preempt_never: bool = False  # spec.preemptionPolicy: Never (it waits instead of preempting)
    nominated_node: str = ""  # status.nominatedNodeName: where it preempted and waits for room
    # assumed on its nominated node while its victims leave: it holds the room, but no other pod's
    # required affinity or spread minimum may rely on it until it is bound (see model/pod_index.py)
    waiting: bool = False
    # spec.volumes' claims in order: persistentVolumeClaim.claimName, and `<pod>-<volume>` for an
    # ephemeral volume (the claim its controller creates); `ephemeral` names the latter
    claims: tuple[str, ...] = ()
    ephemeral: frozenset[str] = frozenset()

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.key.labels) if self.key else {}

    @property
    def has_volumes(self) -> bool:
        """Claims, or inline volumes NodeVolumeLimits counts: the storage index resolves its
        volumes (its class key is its own) and counts them where it is placed."""
        return bool(self.claims) or (self.key is not None and bool(self.key.inline_csi))


@dataclass(frozen=True, slots=True)
class Gang:
    """A PodGroup as the scheduler needs it: `min_count` for a gang policy, None for basic (its
    pods are scheduled one by one)."""

    namespace: str
    name: str
    min_count: int | None
    scheduled: bool = False  # its PodGroupInitiallyScheduled condition is True (it never goes back)
    deleting: bool = False  # metadata.deletionTimestamp set (held by the podgroup-protection finalizer)
    # spec.schedulingConstraints.topology[0].key (TopologyAwareWorkloadScheduling): every member
    # goes to nodes of one value of this label; "" for none
    topology_key: str = ""
    # spec.priority, the gang's priority when it preempts (upstream's PodGroupPriority: 0 when
    # unset; the Priority admission plugin sets it from spec.priorityClassName)
    priority: int = 0
    uid: str = ""  # metadata.uid: a gang's victims name their PodGroup as the preemptor
    # spec.disruptionMode.all: its pods are preempted only all together (one victim spanning nodes)
    disrupt_whole: bool = False

    @property
    def together(self) -> bool:
        """Are its pending members decided as one unit? A gang's are; so are a basic group's kept
        to a topology domain (upstream places any group in a pod group cycle; without a
        placement to choose, a basic group's cycle is the same as its pods one by one)."""
        return self.min_count is not None or bool(self.topology_key)

    @property
    def required(self) -> int:
        """Members that must be placed for the group to stand: minCount, or 1 for a basic group."""
        return self.min_count if self.min_count is not None else 1


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A policy/v1 PodDisruptionBudget as preemption reads it: which pods it covers, and how many
    more may be disrupted (`status.disruptionsAllowed`, as the apiserver has it). `selector` None
    or empty matches no pod (as upstream's preemption treats it)."""

    namespace: str
    name: str
    selector: LabelSelector | None
    disruptions_allowed: int
    disrupted: frozenset[str] = frozenset()  # status.disruptedPods: already counted by the apiserver

    def covers(self, namespace: str, labels: Mapping[str, str]) -> bool:
        sel = self.selector
        if namespace != self.namespace or sel is None or not labels:
            return False
        if not sel.match_labels and not sel.match_expressions:
            return False
        return sel.matches(labels)


@dataclass(slots=True)
class NodeInfo:
    """A node as the engine needs it. Quantities are canonical integers; `error` marks a node whose
    status could not be parsed (it is treated as not schedulable, with that reason)."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    allocatable: dict[str, int] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True
    error: str | None = None


# -------------------------------------------------------------------------------------- storage
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
NO_PROVISIONER = "kubernetes.io/no-provisioner"


@dataclass(frozen=True, slots=True)
class ClaimRef:
    namespace: str
    name: str
    uid: str = ""  # empty: any claim of that name (a PV pre-bound by name)

    def refers_to(self, claim: "Claim") -> bool:
        return (self.namespace == claim.namespace and self.name == claim.name
                and (not self.uid or self.uid == claim.uid))


@dataclass(frozen=True, slots=True)
class Claim:
    """A PersistentVolumeClaim as scheduling reads it. `storage_class` is the beta annotation if
    set, else spec.storageClassName (as upstream's GetPersistentVolumeClaimClass); `request` is
    spec.resources.requests.storage in bytes. `error` marks a claim that could not be read (pods
    using it wait with that reason)."""

    namespace: str
    name: str
    uid: str = ""
    storage_class: str = ""
    access_modes: frozenset[str] = frozenset()
    volume_mode: str = "Filesystem"
    request: int = 0
    selector: LabelSelector | None = None
    volume_name: str = ""  # spec.volumeName
    bind_completed: bool = False  # the pv.kubernetes.io/bind-completed annotation
    lost: bool = False  # status.phase Lost
    deleting: bool = False
    selected_node: str = ""  # volume.kubernetes.io/selected-node: provisioning asked on that node
    sized: bool = True  # spec.resources.requests.storage is set (else no storage capacity is checked)
    owner_uid: str = ""  # its controller's uid (an ephemeral volume's claim is its pod's)
    resource_version: str = ""
    error: str | None = None

    @property
    def bound(self) -> bool:
        """Fully bound, as upstream's binder judges it: a volume named and the binding completed."""
        return bool(self.volume_name) and self.bind_completed


@dataclass(frozen=True, slots=True)
class Volume:
    """A PersistentVolume as scheduling reads it: `node_affinity` is spec.nodeAffinity.required's
    terms (None: any node), `labels` carry the zone/region labels VolumeZone reads."""

    name: str
    storage_class: str = ""
    access_modes: frozenset[str] = frozenset()
    volume_mode: str = "Filesystem"
    capacity: int = 0  # bytes
    labels: tuple[tuple[str, str], ...] = ()
    node_affinity: tuple[NodeSelectorTerm, ...] | None = None
    claim_ref: ClaimRef | None = None
    phase: str = "Available"
    deleting: bool = False
    resource_version: str = ""
    error: str | None = None
    # spec.csi (or a migrated in-tree source, translated): what NodeVolumeLimits counts attachments by
    csi_driver: str = ""
    csi_handle: str = ""
    migrated: bool = False  # csi_* translated from an in-tree source (a VolumeAttachment of it is not counted)


@dataclass(frozen=True, slots=True)
class StorageClassInfo:
    """A StorageClass: when its claims bind (`binding_mode`, None when unset, which upstream
    refuses) and where its provisioner can make volumes (`allowed_topologies`, empty = anywhere)."""

    name: str
    provisioner: str = ""
    binding_mode: str | None = "Immediate"
    allowed_topologies: tuple[NodeSelectorTerm, ...] = ()

    @property
    def provisions(self) -> bool:
        return bool(self.provisioner) and self.provisioner != NO_PROVISIONER


@dataclass(frozen=True, slots=True)
class CSIDriverInfo:
    """A CSIDriver, as far as scheduling reads it: whether its provisioner publishes
    CSIStorageCapacity (`storage_capacity`: VolumeBinding then needs room for a new volume), and
    whether a node whose CSINode lacks it takes none of its volumes (NodeVolumeLimits,
    `preventPodSchedulingIfMissing`)."""

    name: str
    storage_capacity: bool = False
    prevent_if_missing: bool = False


@dataclass(frozen=True, slots=True)
class VolumeAttachmentInfo:
    """A VolumeAttachment: a volume (`volume`, a PersistentVolume's name; empty for an inline
    source) attached by `attacher` (a CSI driver) to `node`. NodeVolumeLimits counts it against the
    node's limit even when no pod there uses the volume (a detach still pending)."""

    name: str
    node: str = ""
    attacher: str = ""
    volume: str = ""


@dataclass(frozen=True, slots=True)
class StorageCapacity:
    """A CSIStorageCapacity: the room a driver reports for new volumes of `storage_class` on the
    nodes `node_topology` selects (None, or an unreadable selector: no node). A new volume fits if
    `maximum_volume_size`, else `capacity`, holds its request (None: nothing fits)."""

    namespace: str
    name: str
    storage_class: str = ""
    node_topology: LabelSelector | None = None
    capacity: int | None = None
    maximum_volume_size: int | None = None

    @property
    def limit(self) -> int | None:
        return self.maximum_volume_size if self.maximum_volume_size is not None else self.capacity
