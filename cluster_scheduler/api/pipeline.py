"""POSTs over persistent, pipelined HTTP/1.1 connections: the binder's and the events' writes.

A binding or an event through urllib3 cost about 0.5 ms of CPU each here (request and header
objects, http.client's header parser, one blocking socket round per request): with one of each
per pod, most of the coordinator's CPU. This client writes each request's bytes straight onto a
long-lived connection and reads the answers on one asyncio loop thread: status line and the
headers it needs, body skipped. A request takes the connection that went idle last; another is
opened only when every open one is busy, and a request is pipelined behind others only when all
are open and busy (Go's server answers a connection's requests one after the other). A TLS
handshake costs ~3 ms of CPU here, client and apiserver together: opening connections only as
concurrency needs them, and `warm` opening the first ones before work arrives, keeps them off a
burst's critical path. Callers that take the answer in a
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
import ssl
import threading
import time
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

import orjson

from .rest import AuthHeaders

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
# An idle connection is closed by us after this long, before kube-apiserver's own idle timeout
# (90 s) can close it under a request being written (which would fail that request).
IDLE_CLOSE_S = 45.0


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
        self.last_used = 0.0  # monotonic time of the last request or answer

    def load(self) -> int:
        return len(self.waiting) + len(self.queued)

    def send(self, req: bytes, fut: Future, deadline: float) -> None:
        self.last_used = time.monotonic()
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
        if not self.waiting:  # opened ahead of work (warm)
            self.last_used = time.monotonic()
            o._idle.append(self)
        o._loop.create_task(self._read(reader, writer))

    def open(self) -> None:
        """Connect now, with nothing to send yet (see PipelinedPoster.warm)."""
        if self.writer is None and not self.connecting:
            self.connecting = True
            self.owner._loop.create_task(self._connect())

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
                if not self.waiting:
                    self.last_used = time.monotonic()
                    self.owner._idle.append(self)
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
        order, so the ones behind it wait as long) and every request on it fails. A connection
        idle for IDLE_CLOSE_S is closed quietly (the next request opens another)."""
        if not self.waiting and self.writer is not None and now - self.last_used > IDLE_CLOSE_S:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
            return
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
    """POSTs (or PATCHes) JSON bodies for an ApiClient over at most `connections` connections
    (see the module's docstring for which one), answered on one loop thread. `submit` returns a
    Future of (status, reason, first bytes of the body); `post` blocks like `rest.RawClient.post`.

    Idle connections are closed after IDLE_CLOSE_S, before the server would. A request written
    just as the server closes a connection anyway fails (retryable) rather than being re-sent on
    a new one, as urllib3 would: a binding's retry is the binder's business."""

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
        self._auth = AuthHeaders(api_client)
        self._loop = asyncio.new_event_loop()
        self._conns = [_Conn(self) for _ in range(max(1, connections))]
        self._idle: list[_Conn] = []  # open connections that went idle, last on top (may hold stale entries)
        # Requests submitted and not yet handed to a connection: the loop is woken once per run of
        # them (from another thread that is a syscall, ~10% of the coordinator's CPU when woken
        # per binding), and never from its own thread (the binder's callbacks submit from there).
        self._submitted: collections.deque[tuple[bytes, Future, float]] = collections.deque()
        self._woken = False
        self._closed = False
        self._loop_thread: int | None = None
        self._thread = threading.Thread(target=self._run, name="http-pipeline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._loop_thread = threading.get_ident()
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
        idle = self._idle
        while idle:  # the open connection that went idle last (warm in every cache)
            c = idle.pop()
            if c.writer is not None and not c.load():
                c.send(req, fut, deadline)
                return
        best = None
        for c in self._conns:  # every open one is busy: open another, if any is left
            if c.writer is None and not c.connecting:
                c.send(req, fut, deadline)
                return
            if best is None or c.load() < best.load():
                best = c
        best.send(req, fut, deadline)  # all open and busy: pipelined behind the least loaded

    def warm(self, n: int) -> None:
        """Open up to `n` connections now, so the first requests of a burst find them open."""
        def open_some() -> None:
            for c in self._conns[:n]:
                c.open()
        if not self._closed:
            self._loop.call_soon_threadsafe(open_some)

    @property
    def open_connections(self) -> int:
        return sum(c.writer is not None for c in self._conns)

    def submit(self, path: str, body: dict, timeout: float, *, method: str = "POST",
               content_type: str = "application/json") -> Future:
        fut: Future = Future()
        if self._closed:
            fut.set_exception(PipelineError("poster closed"))
            return fut
        data = orjson.dumps(body)
        auth = "".join(f"{k}: {v}\r\n" for k, v in self._auth().items())
        req = (f"{method} {self._prefix}{path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
               f"User-Agent: {self._agent}\r\nContent-Type: {content_type}\r\nAccept: application/json\r\n"
               f"Content-Length: {len(data)}\r\n{auth}\r\n").encode("latin-1") + data
        self._submitted.append((req, fut, time.monotonic() + timeout))
        if not self._woken:
            self._woken = True
            if threading.get_ident() == self._loop_thread:
                self._loop.call_soon(self._hand_out)
            else:
                self._loop.call_soon_threadsafe(self._hand_out)
        return fut

    def _hand_out(self) -> None:
        # reset before draining: a submit that still saw it set had appended before the reset,
        # so the loop below takes its request
        self._woken = False
        pending = self._submitted
        while pending:
            self._pick(*pending.popleft())

    def post(self, path: str, body: dict, timeout: float, **kw: str) -> None:
        """Send (POST unless `method` says otherwise) and wait; raises ApiException(status,
        reason) for a non-2xx answer, a PipelineError/TimeoutError when no answer came."""
        from kubernetes.client.exceptions import ApiException

        ans = self.submit(path, body, timeout, **kw).result(timeout + 5.0)
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
            while self._submitted:
                _fail(self._submitted.popleft()[1], PipelineError("poster closed"))
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
