"""FaultProxy in front of the real apiserver: transparent forwarding, injected binding failures,
delays and dropped requests, and watches cut cleanly or reset."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cluster_scheduler.api.rest import api_client
from tests.reliability.faults import FaultProxy, FaultRule, is_watch
from tests.manifests import binding, node, pod

pytestmark = pytest.mark.timeout(120)

BINDING = r"/api/v1/namespaces/[^/]+/pods/[^/]+/binding$"


@pytest.fixture
def proxy(control_plane, tmp_path):
    p = FaultProxy(control_plane.url, control_plane.ca_file, workdir=tmp_path / "proxy").start()
    yield p
    p.stop()


@pytest.fixture
def proxied(proxy, control_plane, tmp_path):
    """An ApiClient (admin) that goes through the proxy."""
    cfg = proxy.kubeconfig(tmp_path / "proxied.kubeconfig", control_plane.admin_token)
    c = api_client(cfg)
    yield c
    c.close()


def test_is_watch():
    assert is_watch("/api/v1/pods", "watch=true&resourceVersion=1")
    assert is_watch("/api/v1/pods", "timeoutSeconds=5&watch=True")  # the Python client's spelling
    assert is_watch("/api/v1/watch/pods", "")
    assert not is_watch("/api/v1/pods", "limit=500")


def test_rule_fraction_and_count_are_bounded_and_reproducible():
    def hits(rule):
        return [rule.take() for _ in range(200)]

    a = hits(FaultRule(path="x", fraction=0.3, seed=7))
    assert a == hits(FaultRule(path="x", fraction=0.3, seed=7))
    assert 30 < sum(a) < 90
    r = FaultRule(path="x", count=3, skip=2)
    assert hits(r)[:6] == [False, False, True, True, True, False]
    assert r.injected == 3 and r.matched == 200


def test_forwards_transparently(proxied, admin_api, namespace):
    core = client.CoreV1Api(proxied)
    core.create_namespaced_pod(namespace, pod("p1"))
    got = client.CoreV1Api(admin_api).read_namespaced_pod("p1", namespace)
    assert got.spec.scheduler_name == "nobody"
    # a list (Content-Length response) and a 404 come back as the apiserver sent them
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["p1"]
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("nope", namespace)
    assert exc.value.status == 404 and b"NotFound" in exc.value.body.encode()


def test_binding_500_then_success_on_retry(proxy, proxied, admin_api, namespace):
    direct = client.CoreV1Api(admin_api)
    nname = f"n-{uuid.uuid4().hex[:6]}"
    direct.create_node(node(nname))
    direct.create_namespaced_pod(namespace, pod("b1"))
    rule = proxy.add_rule(FaultRule(path=BINDING, method="POST", status=500, count=1))
    core = client.CoreV1Api(proxied)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_binding("b1", namespace, binding("b1", nname), _preload_content=False)
    assert exc.value.status == 500
    assert orjson.loads(exc.value.body)["reason"] == "InternalError"
    assert direct.read_namespaced_pod("b1", namespace).spec.node_name is None  # never reached the apiserver
    resp = core.create_namespaced_pod_binding("b1", namespace, binding("b1", nname), _preload_content=False)
    assert resp.status == 201
    assert direct.read_namespaced_pod("b1", namespace).spec.node_name == nname
    assert (rule.matched, rule.injected) == (2, 1)
    # a second binding of a bound pod is refused by the apiserver itself (through the proxy)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod_binding("b1", namespace, binding("b1", nname), _preload_content=False)
    assert exc.value.status == 409
    assert [r.injected for r in proxy.requests if r.method == "POST" and r.path.endswith("/binding")] == [True, False, False]


def test_429_and_409_carry_status_and_retry_after(proxy, proxied, namespace):
    proxy.add_rule(FaultRule(path=r"/pods$", method="POST", status=429, count=1, retry_after_s=3))
    proxy.add_rule(FaultRule(path=r"/pods$", method="POST", status=409, count=1))
    core = client.CoreV1Api(proxied)
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(namespace, pod("r1"))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "3"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(namespace, pod("r1"))
    assert exc.value.status == 409 and orjson.loads(exc.value.body)["reason"] == "Conflict"
    core.create_namespaced_pod(namespace, pod("r1"))
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["r1"]


def test_client_retries_idempotent_429_by_itself(proxy, proxied, namespace):
    """urllib3 (under the kubernetes client) honours Retry-After on a 429 for GETs, silently: the
    caller sees success after the wait. POSTs (bindings) are not retried: the binder must."""
    rule = proxy.add_rule(FaultRule(path=r"/pods$", method="GET", status=429, count=1, retry_after_s=1))
    t0 = time.monotonic()
    assert client.CoreV1Api(proxied).list_namespaced_pod(namespace).items == []
    assert rule.injected == 1 and time.monotonic() - t0 >= 1.0


def test_delay_and_timeout(proxy, proxied, namespace):
    core = client.CoreV1Api(proxied)
    rule = proxy.add_rule(FaultRule(path=r"/namespaces/[^/]+$", method="GET", delay_s=1.0, count=1))
    t0 = time.monotonic()
    assert core.read_namespace(namespace).metadata.name == namespace
    assert time.monotonic() - t0 >= 1.0 and rule.injected == 1
    # held then dropped with no answer: the client sees a failure, the next request goes through
    proxy.add_rule(FaultRule(path=r"/namespaces/[^/]+$", method="GET", timeout=True, delay_s=0.3, count=10))
    with pytest.raises(Exception) as exc:
        core.read_namespace(namespace, _request_timeout=5)
    assert not isinstance(exc.value, ApiException)  # no HTTP answer at all
    proxy.clear_rules()
    assert core.read_namespace(namespace).metadata.name == namespace


def _watch_lines(api, namespace, results, **kw):
    """Read a raw pod watch until the stream ends; record events and how it ended."""
    core = client.CoreV1Api(api)
    kw.setdefault("timeout_seconds", 60)
    resp = core.list_namespaced_pod(namespace, watch=True, _preload_content=False, **kw)
    t0 = time.monotonic()
    buf = b""
    try:
        for chunk in resp.stream(4096, decode_content=False):
            buf += chunk
        results["end"] = "clean"
    except Exception as exc:  # noqa: BLE001 - a reset mid-stream, whatever urllib3 calls it
        results["end"] = f"error: {type(exc).__name__}"
    results["seconds"] = time.monotonic() - t0
    results["events"] = [orjson.loads(line) for line in buf.splitlines() if line.strip()]


def test_watch_cut_after_events(proxy, proxied, admin_api, namespace):
    direct = client.CoreV1Api(admin_api)
    for i in range(4):
        direct.create_namespaced_pod(namespace, pod(f"w{i}"))
    proxy.add_rule(FaultRule(path=r"/pods$", query=r"(?i)watch=(true|1)", cut_watch_after_events=2, count=1))
    res: dict = {}
    _watch_lines(proxied, namespace, res)
    # the initial list is replayed as ADDED events; the stream ends after exactly two
    assert res["end"] == "clean"
    assert [e["type"] for e in res["events"]] == ["ADDED", "ADDED"]
    assert res["seconds"] < 30


def test_watch_cut_after_seconds_clean_and_abort(proxy, proxied, admin_api, namespace):
    direct = client.CoreV1Api(admin_api)
    proxy.add_rule(FaultRule(path=r"/pods$", query=r"(?i)watch=(true|1)", cut_watch_after_s=1.5, count=1))
    res: dict = {}
    t = threading.Thread(target=_watch_lines, args=(proxied, namespace, res))
    t.start()
    time.sleep(0.5)
    direct.create_namespaced_pod(namespace, pod("late"))  # an event flows before the cut
    t.join(30)
    assert res["end"] == "clean"
    assert 1.2 <= res["seconds"] < 10, res["seconds"]  # server side timeout was 60 s
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in res["events"]] == [("ADDED", "late")]
    # abort: the stream is reset rather than ended; the client sees an error or a truncated stream
    proxy.add_rule(FaultRule(path=r"/pods$", query=r"(?i)watch=(true|1)", cut_watch_after_s=1.0, abort=True, count=1))
    res2: dict = {}
    _watch_lines(proxied, namespace, res2, resource_version=res["events"][0]["object"]["metadata"]["resourceVersion"])
    assert res2["seconds"] < 10
    assert res2["end"].startswith("error"), res2
    # with no rule left, a watch runs until the apiserver's own timeout
    res3: dict = {}
    _watch_lines(proxied, namespace, res3, timeout_seconds=2)
    assert res3["end"] == "clean" and res3["seconds"] >= 1.5


def test_stop_cuts_open_watches(control_plane, tmp_path, namespace):
    p = FaultProxy(control_plane.url, control_plane.ca_file).start()
    c = api_client(p.kubeconfig(tmp_path / "k", control_plane.admin_token))
    res: dict = {}
    t = threading.Thread(target=_watch_lines, args=(c, namespace, res))
    t.start()
    time.sleep(1.0)
    p.stop()
    t.join(15)
    c.close()
    assert not t.is_alive() and res["seconds"] < 15


def test_unreachable_upstream_is_a_502(control_plane, tmp_path):
    from cluster_scheduler.controlplane.cluster import free_port

    p = FaultProxy(f"https://127.0.0.1:{free_port()}", control_plane.ca_file).start()
    c = api_client(p.kubeconfig(tmp_path / "k", control_plane.admin_token))
    try:
        with pytest.raises(ApiException) as exc:
            client.CoreV1Api(c).list_namespace(_request_timeout=10)
        assert exc.value.status == 502 and "upstream unreachable" in exc.value.body
    finally:
        c.close()
        p.stop()
