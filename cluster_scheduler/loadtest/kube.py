"""Thin, fast access to the apiserver for the load test: raw JSON in and out.

The generated client's model (de)serialisation costs more CPU than the scheduler being measured
on a small machine, so every call here passes `_preload_content=False` and reads the bytes with
orjson; objects are created with `create`, whose body goes as given (`api/rest.py`: the client
37.x validates bodies against its models, refusing what the apiserver accepts). Transient failures (connection resets, 429, 5xx) are retried a few times, because one lost
create would fail a barrier for a reason that has nothing to do with the scheduler.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import orjson

RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRIES = 6


def warm_up(api: Any, connections: int) -> None:
    """Open `connections` pooled TLS connections at once, so handshakes (milliseconds of CPU
    each) happen before the measurement rather than inside its first second."""
    from kubernetes import client

    version = client.VersionApi(api)
    gate = threading.Barrier(connections)

    def one() -> None:
        try:
            gate.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        try:
            call(version.get_code)
        except CallError:
            pass

    threads = [threading.Thread(target=one, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


class CallError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def call(fn: Callable[..., Any], *args: Any, ok_statuses: tuple[int, ...] = (), **kwargs: Any) -> int:
    """Call a generated-client method raw and drain the response. Returns the HTTP status (200/201,
    or one of `ok_statuses` reported as an ApiException). Retries transient failures; a 409 after a
    retried connection error means the first attempt went through, and counts as success."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    retried_io = False
    for attempt in range(RETRIES + 1):
        try:
            resp = fn(*args, _preload_content=False, **kwargs)
            try:
                resp.data  # noqa: B018 - read it all so the connection goes back to the pool clean
            finally:
                resp.release_conn()
            return resp.status
        except ApiException as exc:
            if exc.status in ok_statuses or (exc.status == 409 and retried_io):
                return exc.status
            if exc.status in RETRY_STATUSES and attempt < RETRIES:
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
                continue
            raise CallError(exc.status, _reason(exc)) from None
        except (Urllib3Error, OSError) as exc:
            if attempt < RETRIES:
                retried_io = True
                time.sleep(min(0.05 * 2 ** attempt, 2.0))
                continue
            raise CallError(0, f"{type(exc).__name__}: {exc}") from None
    raise AssertionError("unreachable")


def create(api: Any, path: str, body: dict, *, ok_statuses: tuple[int, ...] = ()) -> int:
    """POST `body` to `path` (e.g. `/api/v1/namespaces/NS/pods`) as given, with `call`'s retries;
    `api` is an ApiClient or anything holding one (a CoreV1Api)."""
    from ..api.rest import request

    api = getattr(api, "api_client", api)
    return call(lambda _preload_content: request(api, "POST", path, body), ok_statuses=ok_statuses)


def call_json(api: Any, method: str, path: str, body: dict | None = None, *, ok_statuses: tuple[int, ...] = (),
              content_type: str = "application/json") -> dict:
    """One raw request with `call`'s retries; the answer's JSON ({} for an `ok_statuses` answer)."""
    from ..api.rest import request

    api = getattr(api, "api_client", api)
    out: dict = {}

    def fn(_preload_content: bool) -> Any:
        resp = request(api, method, path, body, content_type=content_type)
        out.update(orjson.loads(resp.data))
        return resp

    call(fn, ok_statuses=ok_statuses)
    return out


class ResourcePaths:
    """Collection paths for any kind, from the apiserver's discovery documents (one GET per
    group version, cached), so createObjects can create what the cluster serves: CRDs included."""

    def __init__(self, api: Any) -> None:
        self.api = getattr(api, "api_client", api)
        self._kinds: dict[str, dict[str, tuple[str, bool]]] = {}

    def path(self, obj: dict) -> str:
        """`/api/v1/namespaces/NS/pods`-style path to POST `obj` to; namespaced kinds go to
        metadata.namespace or `default`. Raises CallError when the kind is not served."""
        from ..api.rest import request

        version = obj["apiVersion"]
        prefix = "/api/v1" if version == "v1" else f"/apis/{version}"
        if version not in self._kinds:
            try:
                resp = request(self.api, "GET", prefix)
            except Exception as exc:  # noqa: BLE001 - a 404 for an unserved group, or the network
                raise CallError(getattr(exc, "status", 0) or 0,
                                f"{version} is not served by this apiserver ({exc})") from None
            try:
                doc = orjson.loads(resp.data)
            finally:
                resp.release_conn()
            self._kinds[version] = {r["kind"]: (r["name"], bool(r.get("namespaced")))
                                    for r in doc.get("resources") or () if "/" not in r["name"]}
        found = self._kinds[version].get(obj["kind"])
        if found is None:
            raise CallError(404, f"kind {obj['kind']} is not served in {version}")
        name, namespaced = found
        if namespaced:
            return f"{prefix}/namespaces/{obj['metadata'].get('namespace') or 'default'}/{name}"
        return f"{prefix}/{name}"


def _reason(exc: Any) -> str:
    try:
        body = orjson.loads(exc.body or b"{}")
        return body.get("message") or exc.reason or ""
    except orjson.JSONDecodeError:
        return exc.reason or ""


def iter_lines(resp: Any) -> Any:
    """Lines of a chunked watch response as they arrive (one JSON event per line)."""
    buf = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buf += chunk
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line, buf = buf[:i], buf[i + 1:]
            if line.strip():
                yield line
    if buf.strip():
        yield buf
