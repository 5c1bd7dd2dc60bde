"""The pipelined poster against the real apiserver: answers reach the right request however many
are in flight, injected failures (status, dropped connection, no answer in time) fail only what
they hit and the connection comes back, TLS verification stays on; connections are opened only as
concurrency needs them and closed when idle; a status PATCH takes the same way."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from cluster_scheduler.api import pipeline
from cluster_scheduler.api.pipeline import PipelinedPoster, PipelineError
from cluster_scheduler.api.rest import api_client
from cluster_scheduler.controlplane.cluster import write_kubeconfig
from tests.reliability.faults import FaultProxy, FaultRule, generate_self_signed

from tests.manifests import binding, node, pod

pytestmark = [pytest.mark.apiserver, pytest.mark.timeout(180)]


@pytest.fixture
def cluster(admin_api, namespace):
    core = client.CoreV1Api(admin_api)
    name = f"pipe-{uuid.uuid4().hex[:6]}"
    core.create_node(node(name))
    yield core, namespace, name
    core.delete_node(name)


def _bind_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods/{name}/binding"


def test_answers_match_their_requests_with_many_in_flight(admin_api, cluster):
    core, ns, node_name = cluster
    names = [f"p{i}" for i in range(300)]
    for n in names[::2]:  # every other pod exists: the others' bindings are answered 404
        core.create_namespaced_pod(ns, pod(n))
    poster = PipelinedPoster(admin_api, connections=3)
    try:
        futs = [poster.submit(_bind_path(ns, n), binding(n, node_name), 30) for n in names]
        statuses = [f.result(60)[0] for f in futs]
        again = poster.submit(_bind_path(ns, names[0]), binding(names[0], node_name), 30).result(30)
    finally:
        poster.close()
    assert statuses == [201 if i % 2 == 0 else 404 for i in range(len(names))]
    assert again[0] == 409  # already bound: refused, never bound twice
    bound = {p.metadata.name: p.spec.node_name for p in core.list_namespaced_pod(ns).items}
    assert bound == {n: node_name for n in names[::2]}


def test_injected_failures_fail_only_what_they_hit_and_the_connection_returns(control_plane, admin_api, cluster,
                                                                              tmp_path):
    core, ns, node_name = cluster
    for n in ("a", "b", "c", "d"):
        core.create_namespaced_pod(ns, pod(n))
    proxy = FaultProxy(control_plane.url, control_plane.ca_file, workdir=tmp_path / "proxy").start()
    kc = proxy.kubeconfig(tmp_path / "proxied.kubeconfig", control_plane.admin_token)
    api = api_client(kc)
    poster = PipelinedPoster(api, connections=1)
    try:
        rule = proxy.add_rule(FaultRule(path=r"/pods/a/binding$", status=500, count=1))
        assert poster.submit(_bind_path(ns, "a"), binding("a", node_name), 30).result(30)[0] == 500
        assert poster.submit(_bind_path(ns, "a"), binding("a", node_name), 30).result(30)[0] == 201
        assert rule.injected == 1
        # a dropped connection fails its request (retryable), and the next one reconnects
        proxy.add_rule(FaultRule(path=r"/pods/b/binding$", timeout=True, count=1))
        with pytest.raises(PipelineError):
            poster.submit(_bind_path(ns, "b"), binding("b", node_name), 30).result(30)
        assert poster.submit(_bind_path(ns, "b"), binding("b", node_name), 30).result(30)[0] == 201
        # no answer within the request's timeout: closed and failed, not waited on forever
        proxy.add_rule(FaultRule(path=r"/pods/c/binding$", delay_s=5.0, count=1))
        with pytest.raises(TimeoutError):
            poster.submit(_bind_path(ns, "c"), binding("c", node_name), 1.0).result(10)
        assert poster.submit(_bind_path(ns, "d"), binding("d", node_name), 30).result(30)[0] == 201
    finally:
        poster.close()
        api.close()
        proxy.stop()


def test_an_untrusted_server_certificate_is_refused(control_plane, tmp_path):
    """Verification is on: a kubeconfig whose CA did not sign the server's certificate gets no answer."""
    other_ca = tmp_path / "other-ca.crt"
    generate_self_signed(other_ca, tmp_path / "other-ca.key")
    kc = write_kubeconfig(tmp_path / "wrong-ca.kubeconfig", server=control_plane.url, ca_file=other_ca,
                          user="x", token=control_plane.admin_token)
    api = api_client(kc)
    poster = PipelinedPoster(api, connections=1)
    try:
        with pytest.raises(PipelineError) as info:
            poster.submit("/api/v1/namespaces/default/pods/x/binding", {}, 10).result(30)
        assert "certificate verify failed" in str(info.value).lower()
    finally:
        poster.close()
        api.close()



def _wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_connections_are_opened_as_concurrency_needs_them(admin_api, cluster):
    """One request at a time reuses one connection (a TLS handshake costs ~3 ms of CPU); `warm`
    opens some ahead; a burst opens more, never past the limit."""
    core, ns, node_name = cluster
    names = [f"s{i}" for i in range(20)]
    for n in names:
        core.create_namespaced_pod(ns, pod(n))
    poster = PipelinedPoster(admin_api, connections=6)
    try:
        for n in names[:10]:
            assert poster.submit(_bind_path(ns, n), binding(n, node_name), 30).result(30)[0] == 201
        assert poster.open_connections == 1
        poster.warm(3)
        assert _wait_for(lambda: poster.open_connections == 3)
        for n in names[10:]:
            assert poster.submit(_bind_path(ns, n), binding(n, node_name), 30).result(30)[0] == 201
        assert poster.open_connections == 3
        futs = [poster.submit(_bind_path(ns, f"absent{i}"), binding(f"absent{i}", node_name), 30)
                for i in range(200)]
        assert {f.result(60)[0] for f in futs} == {404}
        assert 3 <= poster.open_connections <= 6
    finally:
        poster.close()


def test_a_status_patch_goes_through_the_same_connections(admin_api, cluster):
    core, ns, _node_name = cluster
    core.create_namespaced_pod(ns, pod("u"))
    poster = PipelinedPoster(admin_api, connections=2)
    body = {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                       "message": "0/1 nodes are available: 1 Insufficient cpu."}]}}
    try:
        poster.post(f"/api/v1/namespaces/{ns}/pods/u/status", body, 30, method="PATCH",
                    content_type="application/strategic-merge-patch+json")
        with pytest.raises(client.exceptions.ApiException) as info:  # a non-2xx answer raises, as the client
            poster.post(f"/api/v1/namespaces/{ns}/pods/absent/status", body, 30, method="PATCH",
                        content_type="application/strategic-merge-patch+json")
        assert info.value.status == 404
    finally:
        poster.close()
    conds = {c.type: c for c in core.read_namespaced_pod(name="u", namespace=ns).status.conditions}
    assert conds["PodScheduled"].status == "False" and conds["PodScheduled"].reason == "Unschedulable"


def test_idle_connections_are_closed_before_the_server_would(admin_api, cluster, monkeypatch):
    core, ns, node_name = cluster
    for n in ("i1", "i2"):
        core.create_namespaced_pod(ns, pod(n))
    monkeypatch.setattr(pipeline, "IDLE_CLOSE_S", 0.3)
    poster = PipelinedPoster(admin_api, connections=2)
    try:
        assert poster.submit(_bind_path(ns, "i1"), binding("i1", node_name), 30).result(30)[0] == 201
        assert poster.open_connections == 1
        assert _wait_for(lambda: poster.open_connections == 0, 5.0)
        assert poster.submit(_bind_path(ns, "i2"), binding("i2", node_name), 30).result(30)[0] == 201
    finally:
        poster.close()
