"""In-tree volume plugins migrated to CSI, as NodeVolumeLimits counts them (upstream's
`csi-translation-lib`, read in the release we build).

A PersistentVolume written with an in-tree source (`awsElasticBlockStore`, `gcePersistentDisk`,
`azureDisk`, `cinder`, `portworxVolume`) attaches through that plugin's CSI driver, so it uses one
of the driver's attach slots on a node whose CSINode sets a limit: upstream translates the volume
and counts it under the CSI driver's name and the translated volume handle. A StorageClass whose
provisioner is such a plugin provisions through the same driver. Azure File and vSphere are
translatable too, but upstream's limit check leaves them uncounted (their migration is not "on"
for it), and so do we.

The same five sources written inline in a pod's `spec.volumes` are counted as well (upstream
translates them on any node with a CSINode, the only nodes with limits): the handle is the one the
translation gives an inline volume, which knows no zone (a GCE PD's reads `UNSPECIFIED`).

An Azure disk translates only when its `kind` is `Managed`; the apiserver defaults it to `Shared`.
Upstream then leaves such a volume uncounted, and so do we; for an inline one its translation error
fails the pod on every node with a CSINode, where we leave it uncounted too.
"""

from __future__ import annotations

from typing import Any, Callable

# in-tree plugin name -> (its CSI driver, the PV spec key of its source)
PLUGINS: dict[str, tuple[str, str]] = {
    "kubernetes.io/aws-ebs": ("ebs.csi.aws.com", "awsElasticBlockStore"),
    "kubernetes.io/gce-pd": ("pd.csi.storage.gke.io", "gcePersistentDisk"),
    "kubernetes.io/azure-disk": ("disk.csi.azure.com", "azureDisk"),
    "kubernetes.io/cinder": ("cinder.csi.openstack.org", "cinder"),
    "kubernetes.io/portworx-volume": ("pxd.portworx.com", "portworxVolume"),
}
# the field of each migrated source that names its disk
DISK_IDS: dict[str, str] = {"awsElasticBlockStore": "volumeID", "gcePersistentDisk": "pdName",
                            "azureDisk": "diskURI", "cinder": "volumeID", "portworxVolume": "volumeID"}
# translatable, but not counted by upstream's limit check
UNCOUNTED = frozenset({"kubernetes.io/azure-file", "kubernetes.io/vsphere-volume"})
_ZONE_LABELS = ("failure-domain.beta.kubernetes.io/zone", "topology.kubernetes.io/zone")


def _disk_id(key: str) -> Callable[[dict[str, Any], dict[str, str]], str]:
    return lambda src, labels: str(src.get(DISK_IDS[key]) or "")


def _ebs(src: dict[str, Any], labels: dict[str, str]) -> str:
    """`aws://zone/vol-x` or a bare `vol-x`: the handle is the bare id."""
    vid = _disk_id("awsElasticBlockStore")(src, labels)
    return vid[len("aws://"):].split("/")[-1] if vid.startswith("aws://") else vid


def _gce(src: dict[str, Any], labels: dict[str, str]) -> str:
    """A zonal disk's handle names its zone (from the PV's zone label), a regional one (zones
    joined by `__`) its region; without a label the zone is UNSPECIFIED."""
    pd = _disk_id("gcePersistentDisk")(src, labels)
    zones = next((labels[k] for k in _ZONE_LABELS if labels.get(k)), "").split("__")
    if len(zones) > 1:
        return f"projects/UNSPECIFIED/regions/{zones[0].rsplit('-', 1)[0]}/disks/{pd}"
    return f"projects/UNSPECIFIED/zones/{zones[0] or 'UNSPECIFIED'}/disks/{pd}"


_HANDLES: dict[str, Callable[[dict[str, Any], dict[str, str]], str]] = {
    "awsElasticBlockStore": _ebs,
    "gcePersistentDisk": _gce,
    "azureDisk": _disk_id("azureDisk"),
    "cinder": _disk_id("cinder"),
    "portworxVolume": _disk_id("portworxVolume"),
}


def translate_volume(spec: dict[str, Any], labels: dict[str, str]) -> tuple[str, str] | None:
    """(CSI driver, volume handle) of a PV spec with a migrated in-tree source, else None. A pod's
    inline volume translates the same way with no labels (its GCE PD handle names no zone)."""
    for driver, key in PLUGINS.values():
        src = spec.get(key)
        if isinstance(src, dict):
            return (driver, _HANDLES[key](src, labels)) if _translatable(key, src) else None
    return None


def _translatable(key: str, src: dict[str, Any]) -> bool:
    """An Azure disk translates only when it is `Managed` (the apiserver defaults `kind` to
    `Shared`, so an absent one is that)."""
    return key != "azureDisk" or str(src.get("kind") or "Shared").lower() == "managed"


def provisioner_driver(provisioner: str) -> str:
    """The CSI driver a StorageClass's provisioner provisions through (itself unless in-tree; ''
    for an in-tree one the limit check does not count)."""
    if provisioner in UNCOUNTED:
        return ""
    plugin = PLUGINS.get(provisioner)
    return plugin[0] if plugin else provisioner
