"""The one home of API access: the client factory, and requests we write ourselves over the
official client's connection pool and credentials.

Two reasons not to go through the generated client's methods:
- its model layer (parameter checks, sanitising, header negotiation) cost about a tenth of the
  coordinator's CPU at one call per binding;
- the 37.x client validates every request body against its pydantic models before sending it: a
  second, stricter judge than the apiserver. An integer quantity (`nvidia.com/gpu: 8`), which the
  API accepts, is refused. The load generator and the tests create objects as the apiserver would
  take them from kubectl, so their bodies go through here, as given, and only the apiserver decides.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson

JSON = "application/json"


def api_client(kubeconfig: str | Path | None, pool_size: int | None = None, *, retries: int | None = None) -> Any:
    """A `kubernetes.client.ApiClient` of its own (never the client's global default): from a
    kubeconfig, or the in-cluster ServiceAccount when None and running in a pod, else
    ~/.kube/config. `pool_size`: concurrent requests it must carry (the client's default pool, 5
    per CPU, would serialise a wide thread pool on one connection queue); `retries`: urllib3's
    (its own default when None; 0 for a fail-fast probe)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        config.load_kube_config(client_configuration=cfg)
    if pool_size is not None:
        cfg.connection_pool_maxsize = max(pool_size, 4)
    if retries is not None:
        cfg.retries = retries
    return client.ApiClient(cfg)


class AuthHeaders:
    """The client's auth headers for a request (its bearer token, through the client's own refresh
    hook), asked of the client at most once per `ttl_s`: the hook (the kubeconfig loader's,
    re-reading the ServiceAccount token file in a pod) walks its whole configuration and the
    environment each time, about a tenth of the coordinator's CPU when asked per binding. A
    rotated token is still picked up within `ttl_s` of the hook seeing it."""

    def __init__(self, api_client: Any, ttl_s: float = 1.0) -> None:
        self._api, self._ttl = api_client, ttl_s
        self._headers: dict[str, str] = {}
        self._until = float("-inf")

    def __call__(self) -> dict[str, str]:
        now = time.monotonic()
        if now >= self._until:
            headers: dict[str, str] = {}
            self._api.update_params_for_auth(headers, [], ["BearerToken"], "", "POST", None)
            self._headers, self._until = headers, now + self._ttl
        return self._headers


def finish(resp: Any) -> None:
    """Read a raw response to its end before handing the connection back: a connection returned
    with unread bytes breaks the next request that gets it."""
    try:
        resp.read()
    finally:
        resp.release_conn()


class RawClient:
    """Requests through an ApiClient's own urllib3 connection pool: the same TLS settings,
    credentials (re-read each second: `AuthHeaders`, so a rotated token is picked up) and pool
    retries as the client, without its model layer."""

    def __init__(self, api_client: Any) -> None:
        from urllib3.util import parse_url

        host = api_client.configuration.host
        self._api = api_client
        self._pool = api_client.rest_client.pool_manager.connection_from_url(host)
        self._prefix = (parse_url(host).path or "").rstrip("/")
        self._headers = {"Accept": JSON, "User-Agent": api_client.user_agent}
        self._auth = AuthHeaders(api_client)

    def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = 60.0,
                content_type: str = JSON) -> Any:
        """Send one request; returns the urllib3 response unread (the caller drains it and calls
        `release_conn`, or `finish`), or raises the client's ApiException (status, reason, body)
        for a non-2xx answer, as a generated method does."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = dict(self._headers)
        headers["Content-Type"] = content_type
        headers.update(self._auth())
        data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
        resp = self._pool.urlopen(method, self._prefix + path, body=data, headers=headers,
                                  timeout=urllib3.Timeout(total=timeout), preload_content=False)
        if not 200 <= resp.status <= 299:
            try:
                text = resp.data.decode("utf-8", "replace")
            finally:
                resp.release_conn()
            raise ApiException(status=resp.status, reason=resp.reason, body=text)
        return resp

    def post(self, path: str, body: Any, timeout: float, *, method: str = "POST", content_type: str = JSON) -> None:
        """POST (or `method`) and drain the answer; raises ApiException for a non-2xx one."""
        finish(self.request(method, path, body, timeout=timeout, content_type=content_type))


def request(api_client: Any, method: str, path: str, body: Any = None, *, timeout: float | None = 60.0,
            content_type: str = JSON) -> Any:
    """`RawClient.request` for a one-off call."""
    return RawClient(api_client).request(method, path, body, timeout=timeout, content_type=content_type)


# ------------------------------------------------------------------------- rate and time formats

class TokenBucket:
    """client-go's flowcontrol token bucket, thread-safe: `qps` tokens a second, at most `burst`
    saved up; qps <= 0 means no limit. Every client of ours (binder, events, the ceiling binder)
    is held to its limit with this one."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.qps = float(qps)
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a token if one is free (returns 0.0), else return how long until one will be."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.qps

    def acquire(self) -> None:
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)


def micro_time(ts: float | None = None) -> str:
    """metav1.MicroTime's wire form (RFC 3339, six fractional digits, UTC), now or at `ts`."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(ts: float | None = None) -> str:
    """metav1.Time's wire form (whole seconds, UTC), now or at `ts`."""
    return datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
