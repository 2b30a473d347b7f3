"""An HTTP proxy on 127.0.0.1 that injects S3 faults in front of a real S3 API (moto's server).

TCP-level faults (:mod:`tests.fakes.tcp_proxy`) cannot answer with an S3 error; this proxy
understands requests well enough to pick one by method and key and to answer like S3 does:

* ``"500"`` / ``"503"`` - an S3 XML error (``InternalError`` / ``SlowDown``) instead of
  forwarding the request (the body is read first, as a server would);
* ``"slow"`` - forward the request, then hold the answer back ``delay_s`` (a client with a
  shorter read timeout gives up although the request took effect);
* ``"cut"`` - forward the headers and the first ``cut_after`` bytes of the body to the server,
  then close both connections: the upload dies mid-body;
* ``"stall"`` - like ``cut`` but then wait until the client goes away (a writer killed
  mid-upload); :attr:`S3FaultProxy.stalled` is set when the stall began.

Faults are scripted with :meth:`S3FaultProxy.inject` and consumed in order per matching
request; everything else is forwarded unchanged. :attr:`S3FaultProxy.injected` counts the
faults delivered and :attr:`S3FaultProxy.log` lists ``(method, path, fault or status)``.

Usage::

    with MotoS3() as s3, S3FaultProxy(s3.endpoint_url) as proxy:
        proxy.inject("PUT", "feedback_valid.parquet", "cut", times=3, cut_after=4096)
        client = s3.client(endpoint_url=proxy.endpoint_url)
"""

from __future__ import annotations

import collections
import http.client
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULT_KINDS = ("500", "503", "slow", "cut", "stall")
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "expect",
    }
)
_ERRORS = {
    "500": ("InternalError", "We encountered an internal error. Please try again."),
    "503": ("SlowDown", "Please reduce your request rate."),
}


@dataclass
class _Rule:
    method: str
    key_suffix: str
    kind: str
    remaining: int
    delay_s: float
    cut_after: int


class S3FaultProxy:
    """Forward ``http://127.0.0.1:<port>`` to ``upstream_url`` with scripted S3 faults."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the proxy only forwards to loopback, got {upstream_url!r}")
        self.upstream = (parts.hostname, int(parts.port or 80))
        self.injected: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[str, str, str]] = []
        self.stalled = threading.Event()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> S3FaultProxy:
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> S3FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- faults

    def inject(
        self,
        method: str,
        key_suffix: str,
        kind: str,
        *,
        times: int = 1,
        delay_s: float = 2.0,
        cut_after: int = 4096,
    ) -> None:
        """Fault the next ``times`` requests ``method`` whose path ends with ``key_suffix``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._rules.append(_Rule(method.upper(), key_suffix, kind, times, delay_s, cut_after))

    def pending(self) -> int:
        """Scripted faults not delivered yet."""
        with self._lock:
            return sum(r.remaining for r in self._rules)

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if (
                    rule.remaining > 0
                    and rule.method == method
                    and path.split("?", 1)[0].endswith(rule.key_suffix)
                ):
                    rule.remaining -= 1
                    self.injected[rule.kind] += 1
                    return rule
        return None

    def _note(self, method: str, path: str, what: str) -> None:
        with self._lock:
            self.log.append((method, path, what))


def _s3_error(kind: str, path: str) -> bytes:
    code, message = _ERRORS[kind]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{path}</Resource>"
        "<RequestId>FAULTPROXY</RequestId></Error>"
    ).encode()


def _make_handler(proxy: S3FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, and "Expect: 100-continue" is answered
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            return

        # -- request body

        def _body_length(self) -> int | None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                return None
            return int(self.headers.get("Content-Length") or 0)

        def _read_body(self, limit: int | None = None) -> bytes:
            length = self._body_length()
            if length is None:  # chunked: de-chunk (forwarded with a Content-Length)
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(length if limit is None else min(length, limit))

        # -- upstream

        def _headers_for_upstream(self, body_length: int) -> list[tuple[str, str]]:
            out = [
                (k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length"}
            ]
            out.append(("Content-Length", str(body_length)))
            return out

        def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self._headers_for_upstream(len(body)):
                    conn.putheader(k, v)
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.reason, resp.getheaders(), data
            finally:
                conn.close()

        def _send(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status, reason)
            for k, v in headers:
                if k.lower() not in _HOP_BY_HOP | {"content-length"}:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _partial_upload(self, rule: _Rule, stall: bool) -> None:
            """Send the headers and part of the body upstream, then cut (or stall, then cut)."""
            length = self._body_length()
            part = self._read_body(limit=rule.cut_after)
            upstream = socket.create_connection(proxy.upstream, timeout=10)
            try:
                lines = [f"{self.command} {self.path} HTTP/1.1"]
                lines += [
                    f"{k}: {v}"
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_BY_HOP | {"content-length"}
                ]
                lines.append(f"Content-Length: {length if length is not None else len(part) + 1}")
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + part)
                if stall:
                    proxy.stalled.set()
                    # Wait for the client to disappear (killed) or the proxy to stop.
                    while not proxy._closing.is_set():
                        readable, _, _ = select.select([self.connection], [], [], 0.1)
                        if readable:
                            try:
                                if not self.connection.recv(65536, socket.MSG_PEEK):
                                    break
                                self.connection.recv(65536)  # the rest of the body: discard
                            except OSError:
                                break
            finally:
                try:
                    upstream.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                upstream.close()
                self._drop()

        # -- dispatch

        def _handle(self) -> None:
            rule = proxy._take(self.command, self.path)
            kind = rule.kind if rule else None
            if rule is not None and kind in ("cut", "stall"):
                proxy._note(self.command, self.path, kind)
                self._partial_upload(rule, stall=kind == "stall")
                return
            body = self._read_body() if self.command in ("PUT", "POST") else b""
            if rule is not None and kind in _ERRORS:
                proxy._note(self.command, self.path, kind)
                data = _s3_error(kind, self.path)
                self._send(int(kind), "Error", [("Content-Type", "application/xml")], data)
                return
            status, reason, headers, data = self._forward(body)
            proxy._note(self.command, self.path, kind or str(status))
            if kind == "slow":
                time.sleep(rule.delay_s)  # type: ignore[union-attr]
            try:
                self._send(status, reason, headers, data)
            except OSError:  # the client timed out and went away
                self.close_connection = True

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815 - http.server API

    return Handler
