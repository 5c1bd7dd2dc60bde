"""A fault-injecting HTTPS reverse proxy in front of the apiserver, for reliability tests.

The scheduler's failure handling (binding retries, watch re-establishment, backoff on 429) can only
be trusted if it has seen the failures happen against the real apiserver. `FaultProxy` listens on
127.0.0.1, terminates TLS with a throwaway self-signed certificate (made with the `openssl` CLI, or
the `cryptography` package when there is no CLI), and forwards every request to the apiserver over
TLS verified against the apiserver's CA. Clients reach it through `kubeconfig(path, token)`: the
same bearer token, so the apiserver still authenticates and authorizes the real identity.

TLS (rather than plain HTTP) keeps the client's code path identical to production: the same
kubeconfig shape, certificate verification on, HTTP/1.1 keep-alive.

Per `FaultRule` (method + path regex, optional query regex), a matching request can be
- answered with an error status instead of being forwarded (a Kubernetes `Status` body, with
  Retry-After on 429), e.g. a 500 on `POST .../pods/NAME/binding`;
- delayed before forwarding, or held and then dropped without any answer (a client timeout);
- held until the test sets an event, then forwarded as it was (e.g. a re-watch from a
  resourceVersion that meanwhile got compacted away);
- for watches, forwarded and then cut: after some seconds or some events, either ended cleanly
  (as the apiserver ends a watch) or reset mid-stream.
`fraction` (seeded, reproducible) and `count` bound how many matching requests are hit.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade"}
REASONS = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 410: "Expired", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


@dataclass
class FaultRule:
    """What to do to requests matching `method` and `path` (regexes, `re.fullmatch` for the
    method, `re.search` for the path without its query; `query` is searched in the query string).

    Exactly one action applies: `status` (answer with it), `timeout` (hold `delay_s`, then drop the
    connection unanswered), `cut_watch_after_s`/`cut_watch_after_events` (forward, then end the
    stream; `abort` resets it instead of ending it cleanly), or just `delay_s` before forwarding
    (which also precedes `status`). `hold` (a `threading.Event`) keeps a hit request waiting until
    it is set, before any of that. A request is hit with probability `fraction`, at most `count`
    times in all (None: no limit), and only after `skip` matching requests went through untouched.
    """

    path: str
    method: str = ".*"
    query: str | None = None
    status: int | None = None
    delay_s: float = 0.0
    timeout: bool = False
    cut_watch_after_s: float | None = None
    cut_watch_after_events: int | None = None
    abort: bool = False
    fraction: float = 1.0
    count: int | None = None
    skip: int = 0
    seed: int | None = 0
    retry_after_s: int = 1
    hold: threading.Event | None = field(default=None, repr=False, compare=False)
    matched: int = field(default=0, init=False)
    injected: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._path = re.compile(self.path)
        self._method = re.compile(self.method, re.IGNORECASE)
        self._query = re.compile(self.query) if self.query is not None else None
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")

    @property
    def cuts_watch(self) -> bool:
        return self.cut_watch_after_s is not None or self.cut_watch_after_events is not None

    def matches(self, method: str, path: str, query: str) -> bool:
        return (self._method.fullmatch(method) is not None and self._path.search(path) is not None
                and (self._query is None or self._query.search(query) is not None))

    def take(self) -> bool:
        """Count a match; True when this request is to be hit."""
        with self._lock:
            self.matched += 1
            if self.matched <= self.skip:
                return False
            if self.count is not None and self.injected >= self.count:
                return False
            if self.fraction < 1.0 and self._rng.random() >= self.fraction:
                return False
            self.injected += 1
            return True


def is_watch(path: str, query: str) -> bool:
    # the apiserver reads the flag with strconv.ParseBool: 1, t, T, TRUE, true, True
    return "/watch/" in path or re.search(r"(^|&)watch=(1|t|T|TRUE|true|True)(&|$)", query) is not None


def generate_self_signed(cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    """A one-day self-signed certificate for `host` (IP SAN), which is also its own CA."""
    if shutil.which("openssl"):
        proc = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=cluster-scheduler-fault-proxy",
             "-addext", f"subjectAltName=IP:{host},DNS:localhost",
             "-addext", "basicConstraints=critical,CA:TRUE"],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl req failed: {proc.stderr.strip()}")
    else:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-scheduler-fault-proxy")])
        now = datetime.datetime.now(datetime.timezone.utc)
        crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                           x509.DNSName("localhost")]), critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .sign(k, hashes.SHA256()))
        cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    key.chmod(0o600)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: "FaultProxy"

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake here, on the connection's own thread, so one slow client never blocks accept
        try:
            tls = self.proxy._server_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("fault proxy: TLS handshake failed: %s", exc)
            return
        self.proxy._track(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            self.proxy._track(tls, False)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    _upstream: http.client.HTTPSConnection | None = None

    def log_message(self, fmt: str, *args: object) -> None:
        log.debug("fault proxy: " + fmt, *args)

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    # -- every method goes through one path
    def do_GET(self) -> None:  # http.server's naming
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _fail(self, status: int, rule: FaultRule | None, message: str = "") -> None:
        body = json.dumps({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message or f"injected by fault proxy (rule {rule.method} {rule.path})",
            "reason": REASONS.get(status, "InternalError"), "code": status,
        }).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 429 and rule is not None:
            self.send_header("Retry-After", str(rule.retry_after_s))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        """Close the client connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _proxy(self) -> None:
        proxy = self.server.proxy
        split = urlsplit(self.path)
        path, query = split.path, split.query
        body = self._read_body()
        hit = proxy._pick(self.command, path, query)
        watch = is_watch(path, query)
        proxy._record(self.command, path, query, hit)
        cut: FaultRule | None = None
        if hit is not None:
            if hit.hold is not None:
                while not hit.hold.wait(0.1):
                    if proxy._closing.is_set():
                        return self._drop()
            if hit.delay_s:
                if proxy._closing.wait(hit.delay_s):
                    return self._drop()
            if hit.timeout:
                return self._drop()
            if hit.status is not None:
                return self._fail(hit.status, hit)
            if hit.cuts_watch and watch:
                cut = hit
        try:
            resp = self._forward(body)
        except (OSError, http.client.HTTPException) as exc:
            log.debug("fault proxy: upstream failed: %s", exc)
            return self._fail(502, None, f"fault proxy: upstream unreachable: {exc}")
        self._relay(resp, cut)

    def _forward(self, body: bytes) -> http.client.HTTPResponse:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
        headers["Host"] = proxy._upstream_netloc
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):  # a kept-alive upstream connection may have been closed meanwhile
            if self._upstream is None:
                self._upstream = http.client.HTTPSConnection(
                    proxy._upstream_host, proxy._upstream_port, context=proxy._client_ctx, timeout=proxy.upstream_timeout)
            try:
                self._upstream.request(self.command, self.path, body=body or None, headers=headers)
                return self._upstream.getresponse()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _relay(self, resp: http.client.HTTPResponse, cut: FaultRule | None) -> None:
        proxy = self.server.proxy
        length = resp.getheader("Content-Length")
        bodyless = self.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        streaming = length is None and not bodyless
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and not (streaming and k.lower() == "content-length"):
                self.send_header(k, v)
        if streaming:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodyless:
            resp.read()
            return
        upstream_sock = self._upstream.sock if self._upstream is not None else None
        if upstream_sock is not None:
            proxy._track(upstream_sock, True)
        timer: threading.Timer | None = None
        cut_now = threading.Event()
        if cut is not None and cut.cut_watch_after_s is not None and upstream_sock is not None:
            def fire() -> None:
                cut_now.set()
                try:
                    upstream_sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            timer = threading.Timer(cut.cut_watch_after_s, fire)
            timer.daemon = True
            timer.start()
        events = 0
        try:
            while True:
                try:
                    data = resp.read1(65536) if streaming else resp.read(65536)
                except (OSError, http.client.HTTPException, ValueError):
                    if not cut_now.is_set():  # the upstream died under us, not our cut: reset the client
                        if self._upstream is not None:
                            self._upstream.close()
                            self._upstream = None
                        return self._drop()
                    data = b""
                if not data:
                    break
                if cut is not None and cut.cut_watch_after_events is not None:
                    room = cut.cut_watch_after_events - events
                    pos = -1
                    for _ in range(room):
                        pos = data.find(b"\n", pos + 1)
                        if pos < 0:
                            break
                    if pos >= 0:  # the limit is reached inside this piece
                        data = data[:pos + 1]
                        cut_now.set()
                    events += data.count(b"\n")
                self._write(data, streaming)
                if cut_now.is_set():
                    break
            if cut is not None and cut_now.is_set():
                # stop the upstream watch too
                if self._upstream is not None:
                    self._upstream.close()
                    self._upstream = None
                if cut.abort:
                    return self._drop()
                self.close_connection = True
            if streaming:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ValueError):  # the client went away
            self.close_connection = True
            if self._upstream is not None:
                self._upstream.close()
                self._upstream = None
        finally:
            if timer is not None:
                timer.cancel()
            if upstream_sock is not None:
                proxy._track(upstream_sock, False)

    def _write(self, data: bytes, chunked: bool) -> None:
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)
        self.wfile.flush()


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    injected: bool


class FaultProxy:
    """HTTPS reverse proxy on 127.0.0.1 in front of `upstream_url` (verified with `ca_file`).

    Rules are tried in order and the first that matches *and* decides to hit a request applies.
    Rules may be added or cleared while running. `requests` records what passed (method, path,
    query, whether a fault was injected), for tests to assert on."""

    def __init__(self, upstream_url: str, ca_file: str | Path, rules: Iterable[FaultRule] = (), *,
                 port: int = 0, workdir: str | Path | None = None, upstream_timeout: float = 120.0) -> None:
        up = urlsplit(upstream_url)
        if up.scheme != "https" or not up.hostname:
            raise ValueError(f"upstream must be an https URL, got {upstream_url!r}")
        self._upstream_host = up.hostname
        self._upstream_port = up.port or 443
        self._upstream_netloc = up.netloc
        self.upstream_timeout = upstream_timeout
        self._client_ctx = ssl.create_default_context(cafile=str(ca_file))
        self.rules: list[FaultRule] = list(rules)
        self._rules_lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="cs-faultproxy-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cert_file = self.workdir / "proxy.crt"
        key = self.workdir / "proxy.key"
        generate_self_signed(self.cert_file, key)
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(self.cert_file, key)
        self._server_ctx.set_alpn_protocols(["http/1.1"])  # Go clients would otherwise try h2
        self._closing = threading.Event()
        self._socks: set[Any] = set()
        self._socks_lock = threading.Lock()
        self._srv = _Server(("127.0.0.1", port), _Handler)
        self._srv.proxy = self
        self._thread: threading.Thread | None = None

    # -- rules
    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._rules_lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._rules_lock:
            self.rules.clear()

    def _pick(self, method: str, path: str, query: str) -> FaultRule | None:
        with self._rules_lock:
            rules = list(self.rules)
        for r in rules:
            if r.matches(method, path, query) and r.take():
                return r
        return None

    def _record(self, method: str, path: str, query: str, hit: FaultRule | None) -> None:
        with self._rules_lock:
            self.requests.append(RequestRecord(method, path, query, hit is not None))
            if len(self.requests) > 100_000:  # bounded memory in long soaks
                del self.requests[:50_000]

    def _track(self, sock: Any, add: bool) -> None:
        with self._socks_lock:
            (self._socks.add if add else self._socks.discard)(sock)

    # -- lifecycle
    @property
    def port(self) -> int:
        return self._srv.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "FaultProxy":
        self._thread = threading.Thread(target=self._srv.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, and cut every open connection (watches included)."""
        self._closing.set()
        if self._thread is not None:
            self._srv.shutdown()
            self._thread.join(5)
            self._thread = None
        self._srv.server_close()
        with self._socks_lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, path: str | Path, token: str, user: str = "fault-proxy") -> Path:
        """A token kubeconfig whose server is this proxy (verified against its certificate)."""
        from cluster_scheduler.controlplane.cluster import write_kubeconfig

        return write_kubeconfig(Path(path), server=self.url, ca_file=self.cert_file, user=user, token=token)

    def wait_for(self, pred: Any, timeout: float = 10.0) -> bool:
        """Poll `pred(self)` until true (tests: 'the rule fired twice')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.02)
        return False
