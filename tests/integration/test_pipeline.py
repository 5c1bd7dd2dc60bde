"""The pipelined poster against the real apiserver: answers reach the right request however many
are in flight, injected failures (status, dropped connection, no answer in time) fail only what
they hit and the connection comes back, TLS verification stays on."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from cluster_scheduler.api.pipeline import PipelinedPoster, PipelineError
from cluster_scheduler.controlplane.cluster import api_client, write_kubeconfig
from cluster_scheduler.faults import FaultProxy, FaultRule, generate_self_signed

from tests.reliability.test_fault_proxy import binding, node, pod

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

