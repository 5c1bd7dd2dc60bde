"""A small external provisioner, a test part: it plays a CSI driver's provisioner for claims the
PersistentVolume controller hands it (`volume.kubernetes.io/storage-provisioner` naming it) once a
scheduler has chosen their node (`volume.kubernetes.io/selected-node`): it creates a volume of the
claim's size with that node's zone as its topology (the hostname where the node has no zone),
pre-bound to the claim, which the PV controller then binds. It never provisions for a claim its
class does not name it for, and it makes one volume per claim (`pvc-<claim uid>`: a second
attempt is a 409)."""

from __future__ import annotations

import threading
import time

from kubernetes import client

SELECTED_NODE = "volume.kubernetes.io/selected-node"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


class Provisioner:
    def __init__(self, api, name: str, poll_s: float = 0.3, labels: dict[str, str] | None = None) -> None:
        self.core = client.CoreV1Api(api)
        self.name = name
        self.labels = dict(labels or {})  # on every volume it makes
        self.poll_s = poll_s
        self.provisioned: list[str] = []  # namespace/name of each claim it made a volume for
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"provisioner-{name}", daemon=True)

    def start(self) -> Provisioner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for claim in self.core.list_persistent_volume_claim_for_all_namespaces().items:
                    self._consider(claim)
            except client.ApiException:
                pass  # the next poll tries again
            time.sleep(self.poll_s)

    def _consider(self, claim) -> None:
        ann = claim.metadata.annotations or {}
        node = ann.get(SELECTED_NODE)
        if not node or ann.get(STORAGE_PROVISIONER) != self.name or claim.spec.volume_name:
            return
        key = f"{claim.metadata.namespace}/{claim.metadata.name}"
        if key in self.provisioned:
            return
        labels = self.core.read_node(node).metadata.labels or {}
        topo = (ZONE, labels[ZONE]) if ZONE in labels else (HOSTNAME, labels.get(HOSTNAME, node))
        name = f"pvc-{claim.metadata.uid}"
        pv = {
            "metadata": {"name": name, "labels": self.labels,
                         "annotations": {"pv.kubernetes.io/provisioned-by": self.name}},
            "spec": {
                "capacity": {"storage": claim.spec.resources.requests["storage"]},
                "accessModes": claim.spec.access_modes, "storageClassName": claim.spec.storage_class_name,
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": self.name, "volumeHandle": name},
                "claimRef": {"namespace": claim.metadata.namespace, "name": claim.metadata.name,
                             "uid": claim.metadata.uid},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": topo[0], "operator": "In", "values": [topo[1]]}]}]}},
            },
        }
        try:
            self.core.create_persistent_volume(pv)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        self.provisioned.append(key)
