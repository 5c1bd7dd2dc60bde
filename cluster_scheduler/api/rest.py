"""Requests we write ourselves, over the official client's connection pool and credentials.

The generated client (37.x) validates every request body against its pydantic models before it
sends it. That is a second, stricter judge than the apiserver: an integer quantity
(`nvidia.com/gpu: 8`), which the API accepts, is refused, and each create pays the validation in
CPU. The load generator and the tests create objects as the apiserver would take them from kubectl,
so their bodies go through here, as given, and only the apiserver decides.
"""

from __future__ import annotations

from typing import Any

import orjson


def auth_headers(api_client: Any) -> dict[str, str]:
    """The client's auth headers for one request (its bearer token, through the client's own
    refresh hook)."""
    headers: dict[str, str] = {}
    api_client.update_params_for_auth(headers, [], ["BearerToken"], "", "POST", None)
    return headers


def request(api_client: Any, method: str, path: str, body: Any = None, *, timeout: float | None = 60.0,
            content_type: str = "application/json") -> Any:
    """Send one request; returns the urllib3 response unread (the caller drains it and calls
    `release_conn`), or raises the client's ApiException (status, reason, body) for a non-2xx
    answer, as a generated method does."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    from urllib3.util import parse_url

    host = api_client.configuration.host
    pool = api_client.rest_client.pool_manager.connection_from_url(host)
    headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": api_client.user_agent}
    headers.update(auth_headers(api_client))
    data = None if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    resp = pool.urlopen(method, (parse_url(host).path or "").rstrip("/") + path, body=data, headers=headers,
                        timeout=urllib3.Timeout(total=timeout), preload_content=False)
    if not 200 <= resp.status <= 299:
        try:
            text = resp.data.decode("utf-8", "replace")
        finally:
            resp.release_conn()
        raise ApiException(status=resp.status, reason=resp.reason, body=text)
    return resp
