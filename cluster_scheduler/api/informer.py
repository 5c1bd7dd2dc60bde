"""The informer: list+watch of nodes, pods (all namespaces), namespaces, and what the scheduler reads
beside them (PodGroups, PodDisruptionBudgets, PersistentVolumes, claims, StorageClasses); the only
reader of the API.

Each kind has one thread that lists (paged), then watches from the list's resourceVersion with
bookmarks, resuming from the last resourceVersion seen whenever the stream ends. When that version
is too old (410 Gone, as a status code or as an ERROR event) it relists and turns the difference
into events, objects that vanished included. Each page of a list is handed on as soon as it is
decoded, so the coordinator digests one page while the apiserver encodes the next. Lists ask for
gzip: the apiserver sends a large JSON list in chunks of about 2 KB, and reading 150 MB of them
through http.client cost more CPU than decoding it; compressed, 100k pods arrive in a third less
time for a quarter of the client CPU (measured on this project's 2-core VM).

Bodies are read raw: the client's model deserialisation costs more than the scheduling itself at
100k pods. Pods (list pages and watch events) are decoded by msgspec into only the fields the
scheduler reads (`PodObject`), skipping managedFields and status in C: about a third of the cost of
decoding whole objects. Anything that does not fit that shape (an ERROR event's Status) falls
back to a plain decode. Nodes and namespaces, far fewer, are decoded whole with orjson.

Events go to a `sink(kind, type, obj)` callback as plain dicts (pods already stripped to what the
engines read, `cluster_scheduler.wire`); the coordinator decides what they mean.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import msgspec
import orjson
from msgspec import UNSET

from ..gc_tuning import paused_gc
from ..model.storage import NAMESPACED_STORAGE_KINDS
from ..wire import PodObject, strip_pod

log = logging.getLogger(__name__)

NODES, PODS, NAMESPACES, POD_GROUPS = "nodes", "pods", "namespaces", "podgroups"
PDBS = "poddisruptionbudgets"
ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
LIST_LIMIT = 5000

Sink = Callable[[str, str, dict], None]


class Gone(Exception):
    """The resourceVersion we resume from has been compacted away: relist."""


# ------------------------------------------------------------------------------- object helpers

def object_key(kind: str, obj: dict) -> str:
    meta = obj.get("metadata") or {}
    if kind == PODS:
        return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    if kind == POD_GROUPS or kind == PDBS or kind in NAMESPACED_STORAGE_KINDS:
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    return meta.get("name", "")


class _ListMeta(msgspec.Struct):
    resourceVersion: Any = ""
    continue_: Any = msgspec.field(default=None, name="continue")


class PodListPage(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[PodObject] = msgspec.field(default_factory=list)


class _ListHead(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


class PodEvent(msgspec.Struct):
    type: Any = UNSET
    object: PodObject = msgspec.field(default_factory=PodObject)


_POD_PAGE = msgspec.json.Decoder(PodListPage)
_POD_EVENT = msgspec.json.Decoder(PodEvent)
_LIST_HEAD = msgspec.json.Decoder(_ListHead)  # any kind's list: only its metadata, items skipped


def _list_head(data: bytes) -> _ListMeta:
    """A list page's metadata. The apiserver writes it before the items, so the few bytes up to
    `"items"` are decoded alone (decoding the whole page just to skip the items took ~10 ms a
    5,000-pod page); any other layout is decoded whole."""
    cut = data.find(b',"items":', 0, 4096)
    if cut > 0 and b'"metadata"' in data[:cut]:
        try:
            return _LIST_HEAD.decode(data[:cut] + b"}").metadata
        except msgspec.DecodeError:
            pass
    return _LIST_HEAD.decode(data).metadata


# ------------------------------------------------------------------------------------ informer

class Informer:
    """List+watch of one kind. `list_fn` is a CoreV1Api list method (list_node,
    list_pod_for_all_namespaces, list_namespace)."""

    def __init__(self, kind: str, list_fn: Callable[..., Any], sink: Sink, *,
                 watch_timeout_s: int = 300, retry_s: float = 1.0) -> None:
        self.kind = kind
        self.list_fn = list_fn
        self.sink = sink
        self.watch_timeout_s = watch_timeout_s
        self.retry_s = retry_s
        self.resource_version: str | None = None
        self.known: dict[str, tuple] = {}  # key -> (name, namespace, uid), for relist diffs
        self.synced = threading.Event()
        self.relists = 0
        self.events = 0
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ----------------------------------------------------------------------------- loop
    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._list()
                    self.synced.set()
                self._watch()
                failures = 0
            except Gone:
                log.info("%s: resourceVersion %s is gone, relisting", self.kind, self.resource_version)
                self.resource_version = None
            except Exception as exc:  # noqa: BLE001 - keep watching whatever the failure
                if self._stop.is_set():
                    return
                if getattr(exc, "status", None) == 410:
                    self.resource_version = None
                    continue
                failures += 1
                log.warning("%s: list/watch failed (%s), retrying", self.kind, " ".join(str(exc).split())[:200])
                self._stop.wait(min(self.retry_s * failures, 10.0))

    def _list(self) -> None:
        with paused_gc():  # a full list is a bulk load: see gc_tuning
            self._list_all()

    def _list_all(self) -> None:
        rv = ""
        seen: set[str] = set()
        # The next page is fetched while this one is decoded and handed on (its continue token is
        # read first, cheaply), so the apiserver encodes while we decode.
        with ThreadPoolExecutor(1, thread_name_prefix=f"list-{self.kind}") as fetcher:
            nxt = fetcher.submit(self._fetch_page, None)
            while True:
                data = nxt.result()
                head = _list_head(data)
                token = head.continue_ or None
                if token:
                    nxt = fetcher.submit(self._fetch_page, token)
                if not rv:
                    rv = head.resourceVersion or ""
                items = self._decode_items(data)
                del data
                # hand the page on now: the coordinator works on it while the next one arrives
                for obj in items:
                    key = object_key(self.kind, obj)
                    seen.add(key)
                    self._emit(MODIFIED if key in self.known else ADDED, key, obj)
                if not token:
                    break
        self.relists += 1
        for key in [k for k in self.known if k not in seen]:
            name, namespace, uid = self.known[key]
            self._emit(DELETED, key, {"metadata": {"name": name, "namespace": namespace, "uid": uid}})
        self.resource_version = rv

    def _fetch_page(self, token: str | None) -> bytes:
        kw: dict[str, Any] = {"limit": LIST_LIMIT, "_preload_content": False, "_request_timeout": 120,
                              "_headers": {"Accept-Encoding": "gzip"}}
        if token:
            kw["_continue"] = token
        resp = self.list_fn(**kw)
        try:
            return resp.data
        finally:
            resp.release_conn()

    def _decode_items(self, data: bytes) -> list[dict]:
        """The objects of one list page; pods stripped."""
        if self.kind == PODS:
            try:
                return [p.stripped() for p in _POD_PAGE.decode(data).items]
            except msgspec.ValidationError:
                pass  # not the shape we expect: decoded whole below
        items = orjson.loads(data).get("items") or []
        return [strip_pod(o) for o in items] if self.kind == PODS else items

    def _decode_event(self, line: bytes) -> tuple[Any, dict, Any]:
        """(type, object, its resourceVersion) of one watch event; pods stripped, an ERROR's
        Status whole."""
        if self.kind == PODS:
            try:
                ev = _POD_EVENT.decode(line)
            except msgspec.ValidationError:
                pass
            else:
                if ev.type != "ERROR":
                    rv = ev.object.metadata.resourceVersion
                    return ev.type, ev.object.stripped(), None if rv is UNSET else rv
        ev = orjson.loads(line)
        obj = ev.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion") if isinstance(obj, dict) else None
        if self.kind == PODS and ev.get("type") not in ("ERROR", "BOOKMARK") and isinstance(obj, dict):
            obj = strip_pod(obj)
        return ev.get("type"), obj, rv

    def _watch(self) -> None:
        resp = self.list_fn(watch=True, resource_version=self.resource_version,
                            allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout_s,
                            _preload_content=False, _request_timeout=(10, self.watch_timeout_s + 30))
        self._resp = resp
        try:
            if self._stop.is_set():
                return
            from kubernetes.watch.watch import iter_resp_lines

            for line in iter_resp_lines(resp):
                if not line:
                    continue
                typ, obj, rv = self._decode_event(line)
                if typ == "ERROR":
                    if isinstance(obj, dict) and obj.get("code") == 410:
                        raise Gone()
                    raise RuntimeError(f"watch error: {obj.get('message', obj) if isinstance(obj, dict) else obj}")
                if typ != "BOOKMARK":
                    self._emit(typ, object_key(self.kind, obj), obj)
                if rv and isinstance(rv, str):
                    self.resource_version = rv
                if self._stop.is_set():
                    return
        finally:
            self._resp = None
            try:
                resp.close()  # never back to the pool: the stream may have been cut mid-way
            except Exception:  # noqa: BLE001
                pass

    def _emit(self, typ: str, key: str, obj: dict) -> None:
        if typ == DELETED:
            self.known.pop(key, None)
        else:
            meta = obj.get("metadata") or {}
            self.known[key] = (meta.get("name"), meta.get("namespace"), meta.get("uid"))
        self.events += 1
        self.sink(self.kind, typ, obj)


class ClusterInformer:
    """The informers the scheduler needs, started together; `wait_synced` returns once each has
    delivered its first full list (nothing is scheduled against a partial view). PodGroups
    (`list_pod_groups`, scheduling.k8s.io/v1beta1) only where the cluster serves them."""

    def __init__(self, core: Any, sink: Sink, *, watch_timeout_s: int = 300,
                 list_pod_groups: Callable[..., Any] | None = None,
                 list_pdbs: Callable[..., Any] | None = None,
                 list_storage: dict[str, Callable[..., Any]] | None = None) -> None:
        self.informers = {
            NAMESPACES: Informer(NAMESPACES, core.list_namespace, sink, watch_timeout_s=watch_timeout_s),
            NODES: Informer(NODES, core.list_node, sink, watch_timeout_s=watch_timeout_s),
        }
        if list_pod_groups is not None:  # before pods: a gang's group is known when its pods arrive
            self.informers[POD_GROUPS] = Informer(POD_GROUPS, list_pod_groups, sink, watch_timeout_s=watch_timeout_s)
        if list_pdbs is not None:  # preemption weighs victims against them
            self.informers[PDBS] = Informer(PDBS, list_pdbs, sink, watch_timeout_s=watch_timeout_s)
        for kind, fn in (list_storage or {}).items():  # before pods: a pod's claims are known when it arrives
            self.informers[kind] = Informer(kind, fn, sink, watch_timeout_s=watch_timeout_s)
        self.informers[PODS] = Informer(PODS, core.list_pod_for_all_namespaces, sink, watch_timeout_s=watch_timeout_s)

    def start(self) -> None:
        for inf in self.informers.values():
            inf.start()

    def wait_synced(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        for inf in self.informers.values():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not inf.synced.wait(left):
                return False
        return True

    def stop(self) -> None:
        for inf in self.informers.values():
            inf.stop()
        for inf in self.informers.values():
            inf.join(5)
