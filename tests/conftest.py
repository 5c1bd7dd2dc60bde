"""Shared fixtures: a real etcd + kube-apiserver for the whole test session, clients for its two
identities, and the upstream kube-scheduler as a peer.

Any test that uses `control_plane` (directly or through another fixture) is marked `apiserver`
automatically, so `pytest -m "not apiserver"` runs everything that needs no control plane.
"""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from cluster_scheduler.controlplane.binaries import ControlPlaneError
from cluster_scheduler.controlplane.cluster import ControlPlane, start_control_plane
from cluster_scheduler.controlplane.peer import PeerScheduler, start_kube_scheduler


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.apiserver)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A fresh apiserver + etcd per session (default apiserver throttles, as in a real cluster).
    Logs and kubeconfigs stay under pytest's basetemp (`controlplane*/`) for post-mortems."""
    try:
        cp = start_control_plane(tmp_path_factory.mktemp("controlplane"))
    except ControlPlaneError as exc:
        pytest.fail(f"control plane did not start: {exc}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def admin_api(control_plane: ControlPlane):
    """`kubernetes.client.ApiClient` as system:masters: for setting up nodes and pods."""
    client = control_plane.api_client("admin")
    yield client
    client.close()


@pytest.fixture(scope="session")
def scheduler_api(control_plane: ControlPlane):
    """`kubernetes.client.ApiClient` as ServiceAccount kube-system/cluster-scheduler (k8s/rbac.yaml):
    what the scheduler itself runs with."""
    client = control_plane.api_client("scheduler")
    yield client
    client.close()


@pytest.fixture
def namespace(admin_api) -> str:
    """A namespace of its own for one test. Not deleted: with no namespace controller running it
    would only sit in Terminating; the whole cluster is thrown away at the end of the session."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    client.CoreV1Api(admin_api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


@pytest.fixture(scope="module")
def peer_scheduler(control_plane: ControlPlane) -> Iterator[PeerScheduler]:
    """The upstream kube-scheduler (profile `default-scheduler`), for one test module: outside it,
    it must not bind pods other tests create for `default-scheduler`."""
    peer = start_kube_scheduler(control_plane, qps=5000, burst=10000)
    try:
        yield peer
    finally:
        peer.stop()
