"""The dashboard's FastAPI app: the page, its JSON API, its stylesheet and the gate reports.

Mounted by the Airflow api-server under :data:`URL_PREFIX` (see
``plugins/feedbackloop_dashboard_plugin.py``). Routes, all behind an Airflow JWT:

=====================================  ====================================================
``GET /feedbackloop/``                 the dashboard page (``?days=7|30|90``)
``GET /feedbackloop/api/dashboard``    every panel as JSON (``?days=``, ``?as_of=``)
``GET /feedbackloop/api/<panel>``      one panel: accuracy, category-accuracy,
                                       calibration, latency, feedback-volume,
                                       deployments, experiment, alerts, review-queue,
                                       gate-reports, misclassifications
``GET /feedbackloop/api/summary``      when the trend summaries were last refreshed
``GET /feedbackloop/reports?id=``      a gate run's staged HTML report
``GET /feedbackloop/static/...``       the stylesheet
=====================================  ====================================================

Every response carries a strict Content-Security-Policy (``default-src 'self'``, no
scripts), so the page cannot load anything from another origin, plus ``no-store`` caching
(the data is behind a login). The feedback DB comes from the ``feedback_db`` Airflow
connection through PostgresHook; nothing here holds a DSN or a secret.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, Response

from feedbackloop import dashboard_data as dd
from feedbackloop_dashboard.auth import login_url, require_dashboard_user
from feedbackloop_dashboard.pool import DEFAULT_CONN_ID, ConnectionPool, DatabaseUnavailable

log = logging.getLogger(__name__)

URL_PREFIX = "/feedbackloop"
STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'self'"
)
# Staged gate reports are self-contained HTML with inline CSS and SVG (feedbackloop.report):
# allow exactly that, still nothing from elsewhere and no scripts.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _json(data: Any, status_code: int = 200) -> Response:
    # Sorted keys and no NaN: the same data always gives the same bytes.
    body = json.dumps(data, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return Response(body, status_code=status_code, media_type="application/json")


def _parse_as_of(as_of: str | None) -> datetime | date | None:
    """``YYYY-MM-DD`` (the end of that UTC day) or an ISO timestamp with a time zone."""
    if as_of is None or as_of == "":
        return None
    try:
        if len(as_of) == 10:
            return date.fromisoformat(as_of)
        return datetime.fromisoformat(as_of)
    except ValueError as exc:
        raise ValueError(
            f"as_of must be YYYY-MM-DD or an ISO timestamp with a time zone, got {as_of!r}"
        ) from exc


def _db(request: Request) -> Iterator[Any]:
    """A pooled feedback-DB connection for one request (HTTP 503 when unreachable)."""
    pool: ConnectionPool = request.app.state.pool
    try:
        with pool.connection() as conn:
            yield conn
    except DatabaseUnavailable as exc:
        log.warning("feedback DB unavailable: %s", exc)
        raise HTTPException(503, str(exc)) from None


Db = Annotated[Any, Depends(_db)]


def _fresh_db(request: Request, conn: Db) -> Any:
    """A connection whose trend summaries exist (and are being refreshed when stale)."""
    request.app.state.summaries.check(conn)
    return conn


FreshDb = Annotated[Any, Depends(_fresh_db)]
Days = Annotated[int, Query(description="window in days: 7, 30 or 90")]
AsOf = Annotated[
    str | None, Query(description="YYYY-MM-DD or an ISO timestamp with a time zone (default: now)")
]


def _call(build: Callable[[], dict[str, Any]]) -> Response:
    """JSON of a panel; a ValueError (bad window, limit or date) is the caller's: HTTP 422."""
    try:
        return _json(build())
    except ValueError as exc:
        return _json({"detail": str(exc)}, 422)


def _read_report(uri: str) -> bytes:
    """The bytes of a staged report (``file://`` or ``s3://``; the URI comes from ml.golden_runs)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).read_bytes()
    if parsed.scheme == "s3":
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        obj = S3Hook(aws_conn_id="aws_default").get_key(parsed.path.lstrip("/"), bucket_name=parsed.netloc)
        return obj.get()["Body"].read()
    raise ValueError(f"unsupported report location scheme {parsed.scheme!r}")


class SummaryKeeper:
    """Keeps the trend summaries fresh without making readers wait for it.

    The first request on a database that never had a summary builds it and waits (there is
    nothing to show before). Afterwards a request that finds the summary older than
    ``max_age`` starts one background refresh of the recent days (at most one per process;
    across processes the database's advisory lock lets one through) and is answered at once
    from the current summary: at most ``max_age`` plus one refresh behind.

    Args:
        pool: where the background refresh takes its connection.
        max_age: age after which the summary is refreshed.
        lookback: how far back a refresh recomputes (see ``dashboard_data.ensure_summary``).
        background: False refreshes inside the request (tests that need determinism).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        max_age: timedelta | None = None,
        lookback: timedelta | None = None,
        *,
        background: bool = True,
    ) -> None:
        from feedbackloop import dashboard_data as dd

        self.pool = pool
        self.max_age = dd.DEFAULT_MAX_AGE if max_age is None else max_age
        self.lookback = dd.DEFAULT_LOOKBACK if lookback is None else lookback
        self.background = background
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last_result: dict[str, Any] | None = None

    def check(self, conn: Any) -> dict[str, Any]:
        """Make sure a summary exists and a refresh is under way if it is stale."""
        from feedbackloop import dashboard_data as dd

        state = dd.summary_freshness(conn, self.max_age)
        if state["status"] == "never" or (state["status"] == "stale" and not self.background):
            self.last_result = dd.ensure_summary(conn, self.max_age, self.lookback)
            return self.last_result
        if state["status"] == "stale" and self._busy.acquire(blocking=False):
            self._thread = threading.Thread(
                target=self._refresh, name="dashboard-summary-refresh", daemon=True
            )
            self._thread.start()
        return state

    def _refresh(self) -> None:
        from feedbackloop import dashboard_data as dd

        try:
            with self.pool.connection() as conn:
                self.last_result = dd.ensure_summary(conn, self.max_age, self.lookback)
        except Exception as exc:  # noqa: BLE001 - a failed refresh retries on the next stale read
            log.warning("dashboard summary refresh failed: %s", type(exc).__name__)
        finally:
            self._busy.release()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background refresh to finish (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)


def create_app(
    pool: ConnectionPool | None = None,
    *,
    conn_id: str = DEFAULT_CONN_ID,
    read_report: Callable[[str], bytes] = _read_report,
    keeper: SummaryKeeper | None = None,
) -> FastAPI:
    """Build the dashboard app.

    Args:
        pool: where connections come from (default: a pool on ``conn_id`` through PostgresHook).
        conn_id: the Airflow connection of the feedback DB.
        read_report: reads a staged report's bytes from its URI.
        keeper: keeps the trend summaries fresh (default: background refresh every 10 minutes).
    """
    connections = pool or ConnectionPool(conn_id)
    summaries = keeper or SummaryKeeper(connections)
    app = FastAPI(
        title="Model-quality dashboard",
        description="Accuracy, calibration, latency, feedback, deployments and A/B status of the email classifier.",
        dependencies=[Depends(require_dashboard_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.pool = connections
    app.state.summaries = summaries

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith(
            f"{request.scope.get('root_path', '')}/api"
        ) or exc.status_code not in (
            401,
            403,
        ):
            return _json({"detail": exc.detail}, exc.status_code)
        from feedbackloop_dashboard.render import render_message

        link = login_url(str(request.url)) if exc.status_code == 401 else None
        page = render_message(
            "Sign in to Airflow" if exc.status_code == 401 else "Access denied",
            f"The model-quality dashboard needs an Airflow login ({exc.detail}).",
            (link, "Sign in") if link else None,
        )
        return HTMLResponse(page, status_code=exc.status_code)

    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, exc: psycopg.OperationalError) -> Response:
        # The message can name hosts: log the type only and answer without details.
        log.warning("feedback DB error on %s: %s", request.url.path, type(exc).__name__)
        return _json({"detail": "the feedback database is unavailable"}, 503)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return _json({"detail": [{"loc": e.get("loc"), "msg": e.get("msg")} for e in exc.errors()]}, 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        from feedbackloop_dashboard.render import render_page

        try:
            data = dd.dashboard(conn, days, _parse_as_of(as_of))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return HTMLResponse(render_page(data, days))

    @app.get("/static/dashboard.css", include_in_schema=False)
    def stylesheet() -> Response:
        return FileResponse(STATIC_DIR / "dashboard.css", media_type="text/css")

    @app.get("/reports", response_class=HTMLResponse)
    def report(conn: Db, id: Annotated[str, Query(min_length=1, max_length=500)]) -> Response:  # noqa: A002
        uri = dd.gate_report_uri(conn, id)
        if uri is None:
            raise HTTPException(404, "no HTML report for this gate run")
        try:
            content = read_report(uri)
        except FileNotFoundError:
            raise HTTPException(404, "the gate report is no longer in staging") from None
        except Exception as exc:  # noqa: BLE001 - storage errors of any backend
            log.warning("cannot read gate report %s: %s", uri, type(exc).__name__)
            raise HTTPException(502, "cannot read the gate report from staging") from None
        return HTMLResponse(content, headers={"Content-Security-Policy": REPORT_CSP})

    @app.get("/api/dashboard")
    def api_dashboard(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.dashboard(conn, days, _parse_as_of(as_of)))

    @app.get("/api/summary")
    def api_summary(conn: FreshDb) -> Response:
        return _call(lambda: dd.summary_status(conn))

    @app.get("/api/accuracy")
    def api_accuracy(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.accuracy_trend(conn, days, _parse_as_of(as_of)))

    @app.get("/api/category-accuracy")
    def api_category(conn: FreshDb, days: Days = 90, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.category_accuracy(conn, days, _parse_as_of(as_of)))

    @app.get("/api/calibration")
    def api_calibration(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.reliability(conn, days, _parse_as_of(as_of)))

    @app.get("/api/latency")
    def api_latency(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.latency_trend(conn, days, _parse_as_of(as_of)))

    @app.get("/api/feedback-volume")
    def api_feedback(conn: FreshDb, days: Days = dd.DEFAULT_DAYS, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.feedback_volume(conn, days, _parse_as_of(as_of)))

    @app.get("/api/deployments")
    def api_deployments(conn: Db) -> Response:
        return _call(lambda: dd.deployments(conn))

    @app.get("/api/experiment")
    def api_experiment(conn: FreshDb, as_of: AsOf = None) -> Response:
        return _call(lambda: dd.experiment_status(conn, _parse_as_of(as_of)))

    @app.get("/api/alerts")
    def api_alerts(conn: Db, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
        return _call(lambda: dd.open_alerts(conn, limit))

    @app.get("/api/review-queue")
    def api_review(conn: Db) -> Response:
        return _call(lambda: dd.review_queue(conn))

    @app.get("/api/gate-reports")
    def api_gates(conn: Db, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
        return _call(lambda: dd.gate_reports(conn, limit))

    @app.get("/api/misclassifications")
    def api_misclassified(
        conn: Db, days: Days = 7, limit: Annotated[int, Query(ge=1, le=200)] = 20, as_of: AsOf = None
    ) -> Response:
        return _call(lambda: dd.misclassifications(conn, days, limit, _parse_as_of(as_of)))

    return app
