"""The informer's list/watch protocol against a scripted API: resume from the last
resourceVersion (bookmarks included), relist on 410 Gone, deletions found by the relist diff."""

from __future__ import annotations

import threading

import orjson
import pytest

from cluster_scheduler.api.informer import PODS, Informer, _list_head
from cluster_scheduler.wire import pod_info, strip_node, strip_pod


def pod(name: str, rv: str, node: str = "") -> dict:
    spec = {"schedulerName": "cluster-scheduler", "containers": [{"name": "c"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": rv,
                         "managedFields": [{"manager": "x"}]},
            "spec": spec, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}}


class Resp:
    def __init__(self, data: bytes = b"", lines: list[dict] | None = None, block: threading.Event | None = None):
        self.data = data
        self.lines = lines or []
        self.block = block

    def stream(self, amt=None, decode_content=False):
        for ev in self.lines:
            yield orjson.dumps(ev) + b"\n"
        if self.block is not None:
            self.block.wait(10)
            raise ConnectionError("stream shut down")

    def read(self):
        return self.data

    def release_conn(self):
        pass

    def close(self):
        pass

    def shutdown(self):
        if self.block is not None:
            self.block.set()


class ScriptedApi:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.stop_stream = threading.Event()
        self.done = threading.Event()
        self.script = [
            ("list", {"metadata": {"resourceVersion": "10"}, "items": [pod("a", "5"), pod("b", "6")]}),
            ("watch", [{"type": "ADDED", "object": pod("c", "11")},
                       {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}}]),
            ("watch", [{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}]),
            ("list", {"metadata": {"resourceVersion": "20", "continue": "page2"},
                      "items": [pod("a", "18", node="n1")]}),
            ("list", {"metadata": {"resourceVersion": "20"}, "items": [pod("c", "11"), pod("d", "19")]}),
            ("watch", [{"type": "DELETED", "object": pod("d", "21")}]),
        ]

    def __call__(self, **kw):
        self.calls.append(kw)
        if not self.script:
            self.done.set()
            return Resp(lines=[], block=self.stop_stream)
        kind, body = self.script.pop(0)
        assert kind == ("watch" if kw.get("watch") else "list"), (kind, kw)
        if kind == "list":
            return Resp(data=orjson.dumps(body))
        return Resp(lines=body)


def test_list_watch_resume_and_relist_on_gone():
    api = ScriptedApi()
    seen: list[tuple[str, str, str]] = []
    inf = Informer(PODS, api, lambda kind, typ, obj: seen.append((kind, typ, obj["metadata"]["name"])))
    inf.start()
    assert api.done.wait(10)
    inf.stop()
    inf.join(5)
    assert not inf._thread.is_alive()
    assert seen == [
        (PODS, "ADDED", "a"), (PODS, "ADDED", "b"),  # first list
        (PODS, "ADDED", "c"),  # watch from rv 10
        # 410 at rv 15 -> relist (two pages): a and c known, d new, b vanished while we were away
        (PODS, "MODIFIED", "a"), (PODS, "MODIFIED", "c"), (PODS, "ADDED", "d"), (PODS, "DELETED", "b"),
        (PODS, "DELETED", "d"),
    ]
    watches = [c for c in api.calls if c.get("watch")]
    assert [c["resource_version"] for c in watches] == ["10", "15", "20", "21"]
    assert all(c["allow_watch_bookmarks"] and c["_preload_content"] is False for c in watches)
    lists = [c for c in api.calls if not c.get("watch")]
    assert [c.get("_continue") for c in lists] == [None, None, "page2"]
    assert inf.synced.is_set() and inf.relists == 2


def test_strip_and_parse_bound_pods_share_the_template_key():
    pending = strip_pod(pod("x", "1"))
    bound = strip_pod(pod("y", "2", node="n7"))
    assert "managedFields" not in pending["metadata"] and "resourceVersion" not in pending["metadata"]
    assert pending["status"] == {"phase": "Pending"}
    p, b = pod_info(pending), pod_info(bound)
    assert b.node_name == "n7" and p.node_name == ""
    assert p.key == b.key  # spec.nodeName does not split the equivalence class
    heartbeat = {"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "1"}, "conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}
    later = orjson.loads(orjson.dumps(heartbeat))
    later["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T00:01:00Z"
    assert strip_node(heartbeat) == strip_node(later)


# ---------------------------------------------------------------- typed pod decoding (msgspec)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=4),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=6)
_meta = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=5), "namespace": st.text(max_size=5), "uid": st.text(max_size=5),
    "labels": st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
    "creationTimestamp": st.none() | st.just("2026-01-01T00:00:00Z"), "deletionTimestamp": st.none() | st.text(max_size=3),
    "resourceVersion": st.text("0123456789", min_size=1, max_size=4), "managedFields": _json, "annotations": _json})
_pod = st.fixed_dictionaries({}, optional={
    "metadata": _meta, "spec": st.none() | st.dictionaries(st.sampled_from(["nodeName", "containers", "x"]), _json),
    "status": st.fixed_dictionaries({}, optional={"phase": st.none() | st.sampled_from(["Pending", "Running", "Failed"]),
                                                  "conditions": _json}),
    "kind": st.just("Pod")})


def plain_event(line: bytes):
    """The reference: decode the whole event, strip the pod."""
    ev = orjson.loads(line)
    obj = ev["object"]
    return ev["type"], strip_pod(obj), (obj.get("metadata") or {}).get("resourceVersion")


@settings(max_examples=300, deadline=None)
@given(pod=_pod, typ=st.sampled_from(["ADDED", "MODIFIED", "DELETED"]))
def test_typed_pod_event_decoding_matches_whole_decoding(pod, typ):
    inf = Informer(PODS, None, lambda *a: None)
    line = orjson.dumps({"type": typ, "object": pod})
    assert inf._decode_event(line) == plain_event(line)
    page = orjson.dumps({"metadata": {"resourceVersion": "7", "continue": "t"}, "items": [pod, pod]})
    head = _list_head(page)
    assert inf._decode_items(page) == [strip_pod(pod)] * 2 and (head.resourceVersion, head.continue_) == ("7", "t")


@pytest.mark.parametrize("page", [
    b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"9","continue":"abc"},"items":[]}',
    b'{"kind":"PodList","items":[{"metadata":{"name":"x"}}],"metadata":{"resourceVersion":"9","continue":"abc"}}',
    b'{"metadata":{"resourceVersion":"9","continue":"abc","remainingItemCount":3},\n "items": [],"x":1}',
])
def test_list_head_is_read_from_the_prefix_or_the_whole_page(page):
    """The apiserver's layout (metadata first) is read from its prefix; items first, or any other
    spacing, falls back to decoding the page whole: never a default (which would stop paging)."""
    head = _list_head(page)
    assert (head.resourceVersion, head.continue_) == ("9", "abc")


def test_error_and_bookmark_events_are_decoded_whole():
    inf = Informer(PODS, None, lambda *a: None)
    gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410}
    typ, obj, _ = inf._decode_event(orjson.dumps({"type": "ERROR", "object": gone}))
    assert typ == "ERROR" and obj["code"] == 410
    # an ERROR whose Status happens to fit the pod shape is still read whole
    typ, obj, _ = inf._decode_event(orjson.dumps({"type": "ERROR", "object": {"code": 500, "message": "boom"}}))
    assert (typ, obj["code"], obj["message"]) == ("ERROR", 500, "boom")
    typ, _, rv = inf._decode_event(orjson.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "42"}}}))
    assert (typ, rv) == ("BOOKMARK", "42")
