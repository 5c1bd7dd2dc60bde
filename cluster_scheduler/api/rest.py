"""Requests we write ourselves, over the official client's connection pool and credentials.

Two reasons not to go through the generated client's methods:
- its model layer (parameter checks, sanitising, header negotiation) cost about a tenth of the
  coordinator's CPU at one call per binding;
- the 37.x client validates every request body against its pydantic models before sending it: a
  second, stricter judge than the apiserver. An integer quantity (`nvidia.com/gpu: 8`), which the
  API accepts, is refused. The load generator and the tests create objects as the apiserver would
  take them from kubectl, so their bodies go through here, as given, and only the apiserver decides.
"""

from __future__ import annotations

from typing import Any

import orjson

JSON = "application/json"


def auth_headers(api_client: Any) -> dict[str, str]:
    """The client's auth headers for one request (its bearer token, through the client's own
    refresh hook)."""
    headers: dict[str, str] = {}
    api_client.update_params_for_auth(headers, [], ["BearerToken"], "", "POST", None)
    return headers


def finish(resp: Any) -> None:
    """Read a raw response to its end before handing the connection back: a connection returned
    with unread bytes breaks the next request that gets it."""
    try:
        resp.read()
    finally:
        resp.release_conn()


class RawClient:
    """Requests through an ApiClient's own urllib3 connection pool: the same TLS settings,
    credentials (read per request, so a rotated ServiceAccount token is picked up) and pool
    retries as the client, without its model layer."""

    def __init__(self, api_client: Any) -> None:
        from urllib3.util import parse_url

        host = api_client.configuration.host
        self._api = api_client
        self._pool = api_client.rest_client.pool_manager.connection_from_url(host)
        self._prefix = (parse_url(host).path or "").rstrip("/")
        self._headers = {"Accept": JSON, "User-Agent": api_client.user_agent}

    def request(self, method: str, path: str, body: Any = None, *, timeout: float | None = 60.0,
                content_type: str = JSON) -> Any:
        """Send one request; returns the urllib3 response unread (the caller drains it and calls
        `release_conn`, or `finish`), or raises the client's ApiException (status, reason, body)
        for a non-2xx answer, as a generated method does."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = dict(self._headers)
        headers["Content-Type"] = content_type
        headers.update(auth_headers(self._api))
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
