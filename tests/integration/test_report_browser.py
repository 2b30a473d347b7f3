"""The HTML gate report in a real browser: it renders its charts and makes no network request.

Headless Debian Chromium opens the report of a real evaluation from a ``file://`` URL and is
driven over the DevTools protocol through ``--remote-debugging-pipe`` (file descriptors 3
and 4, NUL-delimited JSON): no debugging port is opened and no websocket library is needed.

"No network request" is proven twice, independently:

1. **What the page asked for.** The ``Network`` domain is enabled on the page's target
   before navigation, so every request the document makes (images, stylesheets, fonts,
   scripts, fetches, prefetches; ``data:`` URLs too) is reported as
   ``Network.requestWillBeSent``. The only request allowed is the report document itself.
2. **What reached the wire.** Each page opens in a fresh browser context whose proxy is a
   recording sink on 127.0.0.1 (bypass list ``<-loopback>``: loopback too), so every
   HTTP(S) request of the page, or a connection it tunnels, lands at the sink (which
   answers 403) instead of leaving the machine. The sink must see nothing. The browser's
   own background traffic (Chromium still checks for component updates and talks to its
   sign-in service with background networking disabled) goes to a second sink through
   ``--proxy-server``, and ``--host-resolver-rules`` makes every direct DNS lookup fail, so
   nothing at all leaves the machine during the test.

A negative control page that does reference remote resources must be caught by both
witnesses, so the test cannot pass because the probe is blind.

The screenshot goes to ``test-artifacts/report.png`` (git-ignored) for people to look at.
Without Chromium the test is skipped locally, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.tiny_models import train_tiny_model

from feedbackloop.gate import GateThresholds, gate
from feedbackloop.pipeline import evaluate_spec
from feedbackloop.report import render_report_html
from feedbackloop.staging import open_staging

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT_WIDTH = 1280
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Outbound requests the negative control makes (TEST-NET-3 and .invalid: unroutable by design).
CONTROL_IMAGE = "http://203.0.113.7/pixel.png"
CONTROL_STYLE = "https://fonts.example.invalid/font.css"


def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), *CHROMIUM_NAMES):
        if name and (path := shutil.which(name)):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but no Chromium found: .ci/run must install Debian's 'chromium' package")
    pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it and runs this test")


# --------------------------------------------------------------------------- the proxy sink


class _RecordingProxy:
    """An HTTP proxy on 127.0.0.1 that records every request and forwards none (403)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _refuse(self) -> None:
                sink.requests.append(f"{self.command} {self.path}")
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = do_CONNECT = _refuse

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> _RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- DevTools over a pipe


class _Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, profile: Path, proxy: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Child ends above 9, so they never collide with the targets 3 and 4 below.
        to_browser_r, from_browser_w = (self._above_nine(fd) for fd in (to_browser_r, from_browser_w))
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--disable-extensions",
            "--disable-component-extensions-with-background-pages",
            "--disable-default-apps",
            "--disable-client-side-phishing-detection",
            "--disable-domain-reliability",
            "--disable-breakpad",
            "--metrics-recording-only",
            "--no-pings",
            "--disable-field-trial-config",
            "--no-service-autorun",
            "--password-store=basic",
            "--use-mock-keychain",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
            "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
            "--dns-prefetch-disable",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--proxy-server=http://{proxy}",
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # The browser reads commands on fd 3 and writes replies on fd 4. bash moves our pipe
        # ends there (subprocess would close them after a preexec hook, and dash cannot
        # redirect descriptors above 9).
        redirect = f"3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-"
        self._proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", f'exec "$0" "$@" {redirect}', executable, *args],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so cleanup reaches its children
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    @staticmethod
    def _above_nine(fd: int) -> int:
        import fcntl

        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return moved

    def _read(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self._proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(max(0.0, deadline - time.monotonic()))
            if reply is None:
                raise TimeoutError(f"no reply to {method} within {timeout}s")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._read(max(0.0, deadline - time.monotonic()))
            if event is None:
                raise TimeoutError(f"no {method} within {timeout}s")
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def settle(self, quiet: float = 0.5) -> None:
        """Collect events until none arrived for ``quiet`` seconds."""
        while (event := self._read(quiet)) is not None:
            self.events.append(event)

    def open(self, url: str, proxy: str) -> str:
        """Open ``url`` in a new tab of a fresh browser context whose traffic goes to ``proxy``.

        The Network domain is on before navigation. A context of its own separates what the
        page sends from the browser's background traffic (update checks, sign-in), which
        uses the browser-wide ``--proxy-server``.
        """
        context = self.send(
            "Target.createBrowserContext",
            {"disposeOnDetach": True, "proxyServer": f"http://{proxy}", "proxyBypassList": "<-loopback>"},
        )["browserContextId"]
        target = self.send("Target.createTarget", {"url": "about:blank", "browserContextId": context})[
            "targetId"
        ]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        self.settle()
        return session

    def requested_urls(self, session: str) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("sessionId") == session and e.get("method") == "Network.requestWillBeSent"
        ]

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def screenshot(self, session: str, width: int) -> bytes:
        import base64

        metrics = self.send("Page.getLayoutMetrics", session=session)
        height = int(metrics["cssContentSize"]["height"])
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        shot = self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session
        )
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)  # the group we created, by its id
            self._proc.wait(timeout=10)
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)


# --------------------------------------------------------------------------- the test


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    """The HTML report of a real golden-set evaluation: a tiny challenger vs a weaker champion."""
    root = tmp_path_factory.mktemp("report")
    challenger = train_tiny_model(root / "challenger", "tiny-challenger", 30)
    champion = train_tiny_model(root / "champion", "tiny-champion", 5)
    staging = open_staging(root.as_uri())
    challenger_eval = evaluate_spec(staging, challenger)
    champion_eval = evaluate_spec(staging, champion)
    decision = gate(challenger_eval, GateThresholds(), champion=champion_eval)
    context = {
        "dag_id": "feedback_retraining",
        "run_id": "manual__browser-test",
        "version_id": "tiny-challenger",
    }
    path = root / "report.html"
    # Email subjects/senders from the golden set are in the page: escaping is exercised too.
    path.write_text(render_report_html(challenger_eval, decision, context, champion_eval), encoding="utf-8")
    return path


def test_report_renders_in_headless_chromium_without_any_network_request(report_file, tmp_path):
    executable = _chromium()
    control = tmp_path / "control.html"
    control.write_text(
        f'<!DOCTYPE html><html><head><link rel="stylesheet" href="{CONTROL_STYLE}"></head>'
        f'<body><img src="{CONTROL_IMAGE}"><svg width="10" height="10"></svg></body></html>',
        encoding="utf-8",
    )
    # Two sinks: the pages' own browser contexts send to ``wire``; the browser's background
    # traffic (update checks, sign-in; Chromium sends it even with background networking
    # disabled) goes to ``background``, so it never leaves the machine and is not
    # mistaken for the page's.
    with _RecordingProxy() as background, _RecordingProxy() as wire:
        browser = _Chromium(executable, tmp_path / "profile", background.address)
        try:
            # Negative control first: both witnesses must see a page that does reach out.
            control_session = browser.open(control.as_uri(), wire.address)
            control_urls = browser.requested_urls(control_session)
            assert CONTROL_IMAGE in control_urls and CONTROL_STYLE in control_urls, control_urls
            assert any("203.0.113.7" in r for r in wire.requests), wire.requests
            assert any("fonts.example.invalid" in r for r in wire.requests), wire.requests
            wire.requests.clear()

            session = browser.open(report_file.as_uri(), wire.address)
            assert browser.requested_urls(session) == [report_file.as_uri()]
            page = browser.evaluate(
                """(() => {
                    const charts = [...document.querySelectorAll('svg')].map(s => {
                        const r = s.getBoundingClientRect();
                        return {label: s.getAttribute('aria-label'), width: r.width, height: r.height,
                                shapes: s.querySelectorAll('rect, line, text').length};
                    });
                    return {title: document.title,
                            verdict: document.getElementById('verdict').innerText,
                            charts: charts,
                            resources: performance.getEntriesByType('resource').length,
                            scripts: document.scripts.length};
                })()""",
                session,
            )
            screenshot = browser.screenshot(session, VIEWPORT_WIDTH)
            browser.settle(0.3)
        finally:
            browser.close()
        assert wire.requests == [], f"the report's requests reached the wire: {wire.requests}"
    # Nothing the page did later (while screenshotting, before close) was a request either.
    assert browser.requested_urls(session) == [report_file.as_uri()]

    assert page["title"] == "Gate report: tiny-challenger"
    assert page["verdict"].startswith("FAILED")  # the brief's thresholds are beyond a tiny model
    assert (page["resources"], page["scripts"]) == (0, 0)
    assert [c["label"] for c in page["charts"]] == [
        "Per-category accuracy",
        "Confusion matrix",
        "Reliability diagram",
        "Latency histogram",
    ]
    for chart in page["charts"]:
        assert chart["width"] > 100 and chart["height"] > 100, chart
        assert chart["shapes"] > 10, chart

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report.png").write_bytes(screenshot)
    width, height = _png_size(screenshot)
    assert width == VIEWPORT_WIDTH
    assert height > 2000  # the whole page, not just the first screen
