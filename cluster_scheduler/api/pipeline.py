"""POSTs over persistent, pipelined HTTP/1.1 connections: the binder's and the events' writes.

A binding or an event through urllib3 cost about 0.5 ms of CPU each here (request and header
objects, http.client's header parser, one blocking socket round per request): with one of each
per pod, most of the coordinator's CPU. This client writes each request's bytes straight onto a
long-lived connection (an idle one; behind others, pipelined, only when none is idle: Go's server
answers a connection's requests one after the other), and reads the answers on one asyncio loop
thread: status line and the headers it needs, body skipped. Callers that take the answer in a
callback (the binder, Scheduled events) block no thread per request.

Same TLS settings and credentials as the ApiClient it is made from (CA, client certificate,
verification on unless the kubeconfig turns it off; the Authorization header read per request, so
a rotated ServiceAccount token is picked up). A connection that fails or times out fails every
request still waiting on it with a retryable error: the request may or may not have been applied
(a binding applied twice is refused with 409, which the binder drops).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import ssl
import threading
import time
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import orjson

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024


class PipelineError(ConnectionError):
    """The connection carrying a request failed before its answer came (retryable)."""


def ssl_context(cfg: Any) -> ssl.SSLContext:
    """The TLS context an ApiClient's Configuration describes (as urllib3 builds it)."""
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cfg.assert_hostname is False:
        ctx.check_hostname = False
    return ctx


class _Conn:
    """One pipelined connection; every method runs on the poster's loop thread."""

    def __init__(self, owner: "PipelinedPoster") -> None:
        self.owner = owner
        self.writer: asyncio.StreamWriter | None = None
        self.connecting = False
        self.queued: list[tuple[bytes, Future, float]] = []  # waiting for the connection
        self.waiting: collections.deque[tuple[Future, float]] = collections.deque()  # sent, in order

    def load(self) -> int:
        return len(self.waiting) + len(self.queued)

    def send(self, req: bytes, fut: Future, deadline: float) -> None:
        if self.writer is not None:
            self.waiting.append((fut, deadline))
            self.writer.write(req)
            return
        self.queued.append((req, fut, deadline))
        if not self.connecting:
            self.connecting = True
            self.owner._loop.create_task(self._connect())

    async def _connect(self) -> None:
        o = self.owner
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(o.host, o.port, ssl=o.ssl, server_hostname=o.server_hostname if o.ssl else None,
                                        limit=MAX_HEAD), o.connect_timeout)
        except Exception as exc:  # noqa: BLE001 - every waiting request learns why
            self.connecting = False
            queued, self.queued = self.queued, []
            for _req, fut, _d in queued:
                _fail(fut, PipelineError(f"cannot connect to {o.host}:{o.port}: {exc}"))
            return
        self.connecting = False
        self.writer = writer
        queued, self.queued = self.queued, []
        for req, fut, deadline in queued:
            self.waiting.append((fut, deadline))
            writer.write(req)
        self.owner._loop.create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(HEAD_END)
                status, reason, length, chunked, close = _parse_head(head)
                if chunked:
                    body = await _read_chunked(reader)
                elif length:
                    body = await reader.readexactly(length)
                else:
                    body = b""
                if self.writer is not writer:
                    raise PipelineError("connection already given up")  # its requests were failed
                if not self.waiting:
                    raise PipelineError(f"an answer nobody asked for: {status} {reason}")
                fut, _deadline = self.waiting.popleft()
                if not fut.done():
                    fut.set_result((status, reason, body[:512]))
                if close:
                    raise PipelineError("the server closed the connection")
        except Exception as exc:  # noqa: BLE001 - EOF, reset, bad framing, a timeout's close
            self._drop(writer, exc)

    def _drop(self, writer: asyncio.StreamWriter, exc: BaseException) -> None:
        if self.writer is writer:
            self.writer = None
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass
        if self.writer is None:
            waiting, self.waiting = self.waiting, collections.deque()
            err = exc if isinstance(exc, PipelineError) else PipelineError(f"{type(exc).__name__}: {exc}")
            for fut, _d in waiting:
                _fail(fut, err)

    def expire(self, now: float) -> None:
        """The oldest request is past its deadline: the connection is closed (answers come in
        order, so the ones behind it wait as long) and every request on it fails."""
        if self.waiting and self.waiting[0][1] < now and self.writer is not None:
            writer = self.writer
            self.writer = None
            waiting, self.waiting = self.waiting, collections.deque()
            for fut, _d in waiting:
                _fail(fut, TimeoutError("no answer in time (connection closed)"))
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass


def _fail(fut: Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def _parse_head(head: bytes) -> tuple[int, str, int, bool, bool]:
    """(status, reason, content length, chunked, connection close) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise PipelineError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            close = "close" in value.lower()
    return status, reason, length, chunked, close


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return bytes(out)
        if len(out) < 512:
            out += await reader.readexactly(size)
        else:
            await reader.readexactly(size)
        await reader.readexactly(2)


class PipelinedPoster:
    """POSTs JSON bodies for an ApiClient over `connections` connections (the next idle one,
    pipelined behind another only when none is), answered on one loop thread. `submit` returns a
    Future of (status, reason, first bytes of the body); `post` blocks like RawPoster.post.

    A request written just as the server closes an idle connection fails (retryable) rather than
    being re-sent on a new one, as urllib3 would: a binding's retry is the binder's business."""

    def __init__(self, api_client: Any, connections: int = 4, *, connect_timeout: float = 10.0) -> None:
        cfg = api_client.configuration
        url = urlsplit(cfg.host)
        self.ssl = ssl_context(cfg) if url.scheme == "https" else None
        self.host = url.hostname or "localhost"
        self.port = url.port or (443 if self.ssl else 80)
        self.server_hostname = getattr(cfg, "tls_server_name", None) or self.host
        self.connect_timeout = connect_timeout
        self._prefix = (url.path or "").rstrip("/")
        self._api = api_client
        self._host_header = url.netloc.rsplit("@", 1)[-1]
        self._agent = api_client.user_agent
        self._loop = asyncio.new_event_loop()
        self._conns = [_Conn(self) for _ in range(max(1, connections))]
        self._next = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="http-pipeline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.call_soon(self._tick)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    def _tick(self) -> None:
        now = time.monotonic()
        for c in self._conns:
            c.expire(now)
        if not self._closed:
            self._loop.call_later(0.25, self._tick)

    def _pick(self, req: bytes, fut: Future, deadline: float) -> None:
        # the next idle connection, round robin; pipelined behind another only when none is idle
        conns = self._conns
        n = len(conns)
        start = next(self._next)
        for k in range(n):
            c = conns[(start + k) % n]
            if not c.load():
                break
        else:
            c = conns[start % n]
        c.send(req, fut, deadline)

    def submit(self, path: str, body: dict, timeout: float) -> Future:
        fut: Future = Future()
        if self._closed:
            fut.set_exception(PipelineError("poster closed"))
            return fut
        headers: dict[str, str] = {}
        self._api.update_params_for_auth(headers, [], ["BearerToken"])
        data = orjson.dumps(body)
        auth = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        req = (f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
               f"User-Agent: {self._agent}\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
               f"Content-Length: {len(data)}\r\n{auth}\r\n").encode("latin-1") + data
        self._loop.call_soon_threadsafe(self._pick, req, fut, time.monotonic() + timeout)
        return fut

    def post(self, path: str, body: dict, timeout: float) -> None:
        """POST and wait; raises ApiException(status, reason) for a non-2xx answer, a
        PipelineError/TimeoutError when no answer came."""
        from kubernetes.client.exceptions import ApiException

        ans = self.submit(path, body, timeout).result(timeout + 5.0)
        if not 200 <= ans[0] <= 299:
            raise ApiException(status=ans[0], reason=ans[1])

    def close(self) -> None:
        """Fail what is still waiting, close the connections, end the loop thread."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            for c in self._conns:
                if c.writer is not None:
                    c._drop(c.writer, PipelineError("poster closed"))
                for _req, fut, _d in c.queued:
                    _fail(fut, PipelineError("poster closed"))
                c.queued = []
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()
        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        except RuntimeError:  # the loop is already gone
            return
        if threading.current_thread() is not self._thread:
            self._thread.join(5)
