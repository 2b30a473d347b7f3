"""A loopback TCP proxy that injects network faults between a client and a real server.

Put it between psycopg and PostgreSQL, or between boto3 and the S3 server, and arm a fault:

* :meth:`TcpProxy.cut_upstream_after` - forward at most N bytes client -> server on each
  new connection, then close both sockets (a request body lost mid-upload);
* :meth:`TcpProxy.cut_downstream_after` - forward at most N bytes server -> client, then close
  both sockets (the network dropped mid-response);
* :meth:`TcpProxy.on_downstream_bytes` - once N bytes server -> client have passed, call a
  function before forwarding more (e.g. terminate the backend from another connection), so
  the fault lands mid-stream deterministically;
* :meth:`TcpProxy.lose_reply_to` - once, forward a client message containing a marker (e.g.
  ``COMMIT`` after an ``INSERT``), then drop everything the server answers and close the
  connection: the server did the work, the client never hears so (an ambiguous failure).

Only loopback addresses are used; the proxy's threads are daemons and :meth:`stop` closes
every socket it opened.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Fault:
    upstream_limit: int | None = None
    downstream_limit: int | None = None
    trigger_after: int | None = None
    trigger: Callable[[], None] | None = None


@dataclass
class _LostReply:
    marker: bytes
    after: bytes | None
    grace_s: float


class _Link:
    """Per-connection state shared by the two pump threads."""

    def __init__(self) -> None:
        self.seen_after: set[int] = set()
        self.blackhole = threading.Event()


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (host, port), with optional faults."""

    def __init__(self, upstream: tuple[str, int]):
        if upstream[0] not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the proxy only forwards to loopback, got {upstream!r}")
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._fault = _Fault()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self.connections = 0
        self._downstream_seen = 0
        self.triggered = threading.Event()
        self.trigger_error: BaseException | None = None
        self._lost_replies: list[_LostReply] = []
        self.reply_lost = threading.Event()
        self.replies_lost = 0
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy-accept", daemon=True)

    # -- lifecycle

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                _close(s)
            self._sockets.clear()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults (apply to connections opened after the call, except the trigger)

    def cut_upstream_after(self, limit: int | None) -> None:
        self._fault.upstream_limit = limit

    def cut_downstream_after(self, limit: int | None) -> None:
        self._fault.downstream_limit = limit

    def on_downstream_bytes(self, after: int, action: Callable[[], None]) -> None:
        """Run ``action`` once, when ``after`` more bytes server -> client have been forwarded
        (counted over all connections from now on). An exception raised by ``action`` is
        kept in :attr:`trigger_error` (the connection keeps flowing)."""
        self.triggered.clear()
        self.trigger_error = None
        self._downstream_seen = 0
        self._fault.trigger_after = after
        self._fault.trigger = action

    def lose_reply_to(self, marker: bytes, *, after: bytes | None = None, grace_s: float = 0.3) -> None:
        """Once: on the first connection whose client sends ``marker`` (after having sent
        ``after``, when given), forward that message, swallow the server's answer and close
        both sockets ``grace_s`` later (time for the server to act on the message).
        :attr:`reply_lost` is set (and :attr:`replies_lost` counts up) when it happened.
        Several calls arm several such faults, each used once."""
        with self._lock:
            self._lost_replies.append(_LostReply(marker, after, grace_s))

    def clear(self) -> None:
        self._fault = _Fault()
        with self._lock:
            self._lost_replies.clear()

    # -- plumbing

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
                self.connections += 1
            fault = _Fault(self._fault.upstream_limit, self._fault.downstream_limit)
            pair = (client, server)
            link = _Link()
            threading.Thread(
                target=self._pump, args=(client, server, fault.upstream_limit, False, pair, link), daemon=True
            ).start()
            threading.Thread(
                target=self._pump,
                args=(server, client, fault.downstream_limit, True, pair, link),
                daemon=True,
            ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        limit: int | None,
        downstream: bool,
        pair: tuple[socket.socket, socket.socket],
        link: _Link | None = None,
    ) -> None:
        """Copy src -> dst. A cut (the fault) closes both sockets at once; otherwise the end
        of one direction is passed on as a half-close, so whatever the server said last (an
        error message before it hung up) still reaches the client."""
        sent = 0
        try:
            while True:
                data = src.recv(65_536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    for s in pair:
                        _close(s)
                    return
                if downstream:
                    if link is not None and link.blackhole.is_set():
                        continue  # the answer is lost on the way back
                    self._maybe_trigger(len(data))
                elif link is not None:
                    self._maybe_lose_reply(data, link, pair)
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if downstream:  # the server is done and everything it sent was forwarded
            for s in pair:
                _close(s)

    def _maybe_lose_reply(self, data: bytes, link: _Link, pair: tuple[socket.socket, socket.socket]) -> None:
        if not self._lost_replies:
            return
        with self._lock:
            lost = None
            for armed in self._lost_replies:
                if armed.after is not None and armed.after in data:
                    link.seen_after.add(id(armed))
                if armed.marker in data and (armed.after is None or id(armed) in link.seen_after):
                    lost = armed
                    self._lost_replies.remove(armed)  # used once
                    break
        if lost is None:
            return
        link.blackhole.set()  # before the message goes out: no byte of the answer gets back

        def close_later() -> None:
            self._closed.wait(lost.grace_s)
            for s in pair:
                _close(s)
            with self._lock:
                self.replies_lost += 1
            self.reply_lost.set()

        threading.Thread(target=close_later, daemon=True).start()

    def _maybe_trigger(self, n: int) -> None:
        fault = self._fault
        if fault.trigger is None or fault.trigger_after is None:
            return
        with self._lock:
            self._downstream_seen += n
            due = self._downstream_seen >= fault.trigger_after and not self.triggered.is_set()
            if due:
                self.triggered.set()
        if due:
            try:
                fault.trigger()
            except BaseException as exc:  # noqa: BLE001 - reported to the test, not lost in a thread
                self.trigger_error = exc


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
