"""A loopback fake of a Slack incoming webhook for tests (never production code).

:class:`FakeSlackWebhook` is a ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0: the OS
picks a free one) that answers like ``hooks.slack.com`` does:

- ``POST <prefix>/<token>`` with a JSON object body -> ``200 ok`` (``text/html``), and the
  message is recorded in :attr:`FakeSlackWebhook.messages`;
- an unknown path or token -> ``404 no_service``; a body that is not a JSON object ->
  ``400 invalid_payload``; neither ``text`` nor ``blocks`` -> ``400 no_text``; blocks that
  break Block Kit's limits -> ``400 invalid_blocks`` (recorded in :attr:`rejected`).

Faults for reliability tests: :meth:`FakeSlackWebhook.inject` queues answers for the next
POSTs (``"500"``, ``"503"``, ``"429"`` with ``Retry-After: retry_after_s``, ``"drop"``: the connection is
closed without an answer); :attr:`FakeSlackWebhook.faults_injected` counts them. A faulted
POST is not delivered (not in :attr:`messages`).

The Slack provider's ``SlackWebhookHook`` builds its URL as ``conn.host.rstrip("/") + "/" +
conn.password``; :meth:`connection_json` returns the ``AIRFLOW_CONN_*`` JSON that makes that
URL point here (host ``http://127.0.0.1:<port>/hook``, password = the token).

Usage::

    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        ...
        assert slack.messages[0]["blocks"][0]["type"] == "header"
"""

from __future__ import annotations

import collections
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/hook"
TOKEN = "T0FAKE/B0FAKE/fakewebhooksecret0123"
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
FAULT_KINDS = ("500", "503", "429", "drop")
RETRY_AFTER_S = 1


def block_kit_problems(payload: dict[str, Any]) -> list[str]:
    """Violations of the Block Kit limits this project relies on (empty when valid)."""
    problems: list[str] = []
    blocks = payload.get("blocks")
    if blocks is None:
        return problems
    if not isinstance(blocks, list):
        return ["blocks must be a list"]
    if len(blocks) > BLOCKS_MAX:
        problems.append(f"{len(blocks)} blocks > {BLOCKS_MAX}")
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= HEADER_MAX:
                problems.append(f"block {i}: header needs plain_text of 1..{HEADER_MAX} characters")
        elif kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                problems.append(f"block {i}: section needs text or fields")
            if text is not None and not 0 < len(text.get("text", "")) <= SECTION_MAX:
                problems.append(f"block {i}: section text must be 1..{SECTION_MAX} characters")
            if fields is not None:
                if len(fields) > FIELDS_MAX:
                    problems.append(f"block {i}: {len(fields)} fields > {FIELDS_MAX}")
                for f in fields:
                    if not 0 < len(f.get("text", "")) <= FIELD_MAX:
                        problems.append(f"block {i}: a field must be 1..{FIELD_MAX} characters")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 0 < len(elements) <= 10:
                problems.append(f"block {i}: context needs 1..10 elements")
        elif kind in ("divider", "actions", "image"):
            pass
        else:
            problems.append(f"block {i}: unknown block type {kind!r}")
    return problems


class FakeSlackWebhook:
    """Records the JSON messages POSTed to it; see the module docstring."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.faults_injected: collections.Counter[str] = collections.Counter()
        self.retry_after_s = RETRY_AFTER_S  # the Retry-After (whole seconds) sent with a 429
        self._scripted: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeSlackWebhook:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                fault = fake._next_fault(self.path, body)
                if fault == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if fault is not None:
                    status, answer = (
                        int(fault),
                        {"429": "rate_limited", "500": "internal_error"}.get(fault, "service_unavailable"),
                    )
                else:
                    status, answer = fake._handle(self.path, self.headers.get("Content-Type", ""), body)
                data = answer.encode()
                self.send_response(status)
                if fault == "429":
                    self.send_header("Retry-After", str(fake.retry_after_s))
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlackWebhook:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the fake first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}/{self.token}"

    def connection_json(self) -> str:
        """``AIRFLOW_CONN_<ID>`` value for a ``slackwebhook`` connection pointing here."""
        return json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{self.port}{PREFIX}",
                "password": self.token,
            }
        )

    # -- faults

    def inject(self, *kinds: str) -> None:
        """Answer the next POSTs with these faults, in order (see the module docstring)."""
        for kind in kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._scripted.extend(kinds)

    def _next_fault(self, path: str, body: bytes) -> str | None:
        with self._lock:
            if not self._scripted:
                return None
            kind = self._scripted.popleft()
            self.faults_injected[kind] += 1
            self.requests.append({"path": path, "content_type": "", "body": body, "fault": kind})
            return kind

    # -- behaviour

    def _handle(self, path: str, content_type: str, body: bytes) -> tuple[int, str]:
        with self._lock:
            self.requests.append({"path": path, "content_type": content_type, "body": body})
        if path != f"{PREFIX}/{self.token}":
            return 404, "no_service"
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        if not isinstance(payload, dict):
            return 400, "invalid_payload"
        if not payload.get("text") and not payload.get("blocks"):
            return 400, "no_text"
        problems = block_kit_problems(payload)
        if problems:
            with self._lock:
                self.rejected.append({"payload": payload, "problems": problems})
            return 400, "invalid_blocks"
        with self._lock:
            self.messages.append(payload)
        return 200, "ok"
