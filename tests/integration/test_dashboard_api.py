"""The dashboard plugin's FastAPI app against a real PostgreSQL and Airflow's auth manager.

The app reads the feedback DB through the ``feedback_db`` Airflow connection (PostgresHook),
exactly as in the api-server; tokens are minted and validated by the configured auth manager
(SimpleAuthManager), whose revoked-token check needs the Airflow metadata DB (migrated once).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlparse

import jwt
import psycopg
import pytest
from tests.dashboard_seed import seed_all

from feedbackloop import dashboard_data as dd
from feedbackloop import db

ROUTES = [
    "/",
    "/static/dashboard.css",
    "/reports?id=anything",
    "/api/dashboard",
    "/api/summary",
    "/api/accuracy",
    "/api/category-accuracy",
    "/api/calibration",
    "/api/latency",
    "/api/feedback-volume",
    "/api/deployments",
    "/api/experiment",
    "/api/alerts",
    "/api/review-queue",
    "/api/gate-reports",
    "/api/misclassifications",
]


@pytest.fixture(scope="module")
def airflow_metadata():
    """Start migrating the session's SQLite Airflow metadata DB (the auth manager checks revoked
    tokens there); it runs while the feedback DB is seeded and ``auth_manager`` waits for it."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def feedback_db(pg_server, tmp_path_factory, airflow_metadata):
    """A seeded feedback DB (data ending now), exposed as the ``feedback_db`` Airflow connection."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.dsn(name)
    now = datetime.now(UTC)
    with db.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
        seeded = seed_all(
            conn,
            n_feedback=700,
            seed=21,
            start=now - timedelta(days=30),
            end=now,
            as_of=now,
            stage_started_at=now - timedelta(days=9, hours=3, minutes=17),
            report_dir=tmp_path_factory.mktemp("staging"),
        )
    u = urlparse(dsn)
    previous = os.environ.get("AIRFLOW_CONN_FEEDBACK_DB")
    os.environ["AIRFLOW_CONN_FEEDBACK_DB"] = json.dumps(
        {"conn_type": "postgres", "host": u.hostname, "port": u.port, "login": u.username, "schema": name}
    )
    yield {"dsn": dsn, "seeded": seeded}
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_FEEDBACK_DB", None)
    else:
        os.environ["AIRFLOW_CONN_FEEDBACK_DB"] = previous
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def auth_manager(airflow_metadata):
    from airflow.api_fastapi.app import init_auth_manager

    assert airflow_metadata.wait(timeout=180) == 0, "airflow db migrate failed"
    return init_auth_manager()


@pytest.fixture(scope="module")
def token(auth_manager) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="data-team", role="viewer"))


@pytest.fixture(scope="module")
def app(feedback_db, auth_manager):
    from feedbackloop_dashboard.app import SummaryKeeper, create_app
    from feedbackloop_dashboard.pool import ConnectionPool

    pool = ConnectionPool("feedback_db")
    application = create_app(pool, keeper=SummaryKeeper(pool, background=False))
    yield application
    pool.close()


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------ authentication


@pytest.mark.parametrize("route", [pytest.param(r, id=r) for r in ROUTES])
def test_every_route_refuses_a_request_without_a_token(client, route):
    response = client.get(route)
    assert response.status_code == 401
    if route.startswith("/api"):
        assert response.json() == {"detail": "Not authenticated"}
    else:
        assert "Sign in to Airflow" in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]


def _foreign_token() -> str:
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "aud": "apache-airflow",
    }
    return jwt.encode(claims, "not-the-airflow-secret", algorithm="HS512")


@pytest.mark.parametrize(
    ("make_headers", "status"),
    [
        pytest.param(lambda am, u: _bearer("not-a-jwt"), 403, id="garbage-bearer"),
        pytest.param(lambda am, u: _bearer(_foreign_token()), 403, id="signed-with-another-key"),
        pytest.param(
            lambda am, u: _bearer(
                am.generate_jwt(u(username="data-team", role="viewer"), expiration_time_in_seconds=-3600)
            ),
            401,
            id="expired",
        ),
        pytest.param(
            lambda am, u: _bearer(am.generate_jwt(u(username="nobody", role=None))),
            403,
            id="user-without-a-role",
        ),
        pytest.param(
            lambda am, u: {"Authorization": "Basic YWRtaW46YWRtaW4="}, 401, id="basic-auth-is-not-a-jwt"
        ),
        pytest.param(lambda am, u: {"Cookie": "_token=not-a-jwt"}, 403, id="garbage-cookie"),
    ],
)
@pytest.mark.parametrize("route", ["/", "/api/dashboard"])
def test_invalid_credentials_are_refused(client, auth_manager, make_headers, status, route):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    response = client.get(route, headers=make_headers(auth_manager, SimpleAuthManagerUser))
    assert response.status_code == status, response.text


def test_a_revoked_token_is_refused(client, auth_manager):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    revoked = auth_manager.generate_jwt(SimpleAuthManagerUser(username="leaver", role="viewer"))
    assert client.get("/api/summary", headers=_bearer(revoked)).status_code == 200
    auth_manager.revoke_token(revoked)
    assert client.get("/api/summary", headers=_bearer(revoked)).status_code == 403


def test_the_ui_cookie_and_a_bearer_token_both_authenticate(client, token):
    assert client.get("/api/deployments", headers=_bearer(token)).status_code == 200
    client.cookies.set("_token", token)
    assert client.get("/api/deployments").status_code == 200
    assert client.get("/").status_code == 200


# --------------------------------------------------------------------------------- data


@pytest.mark.parametrize(
    ("route", "call"),
    [
        pytest.param("/api/accuracy?days=7", lambda c, d: dd.accuracy_trend(c, 7, d), id="accuracy-7"),
        pytest.param("/api/accuracy?days=90", lambda c, d: dd.accuracy_trend(c, 90, d), id="accuracy-90"),
        pytest.param("/api/category-accuracy", lambda c, d: dd.category_accuracy(c, 90, d), id="category"),
        pytest.param("/api/calibration", lambda c, d: dd.reliability(c, 30, d), id="calibration"),
        pytest.param("/api/latency?days=7", lambda c, d: dd.latency_trend(c, 7, d), id="latency"),
        pytest.param("/api/feedback-volume", lambda c, d: dd.feedback_volume(c, 30, d), id="feedback"),
        pytest.param("/api/experiment", lambda c, d: dd.experiment_status(c, d), id="experiment"),
        pytest.param(
            "/api/misclassifications", lambda c, d: dd.misclassifications(c, 7, 20, d), id="misclassified"
        ),
    ],
)
def test_json_panels_equal_the_include_functions(client, token, feedback_db, route, call):
    as_of = datetime.now(UTC).replace(microsecond=0)
    sep = "&" if "?" in route else "?"
    response = client.get(f"{route}{sep}{urlencode({'as_of': as_of.isoformat()})}", headers=_bearer(token))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with db.connect(feedback_db["dsn"]) as conn:
        expected = json.loads(json.dumps(call(conn, as_of)))
    assert response.json() == expected
    assert response.json()["available"] and not response.json()["empty"]


@pytest.mark.parametrize(
    ("route", "key", "expected"),
    [
        pytest.param("/api/deployments", "deployments", 2, id="deployments"),
        pytest.param("/api/alerts", "alerts", 2, id="alerts"),
        pytest.param("/api/gate-reports", "reports", 2, id="gate-reports"),
    ],
)
def test_ml_panels(client, token, route, key, expected):
    body = client.get(route, headers=_bearer(token)).json()
    assert len(body[key]) == expected and not body["empty"]


def test_dashboard_json_has_every_panel_with_data(client, token):
    response = client.get("/api/dashboard?days=30", headers=_bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert set(body["panels"]) == set(dd.PANELS)
    assert {k: (p["available"], p["empty"]) for k, p in body["panels"].items()} == {
        k: (True, False) for k in dd.PANELS
    }
    assert body["summary"]["refreshed_at"] is not None
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_renders_every_panel_from_this_origin_only(client, token):
    response = client.get("/?days=30", headers=_bearer(token))
    assert response.status_code == 200
    html = response.text
    sections = dict(
        re.findall(r'data-panel="([a-z_]+)" data-available="true" data-empty="(true|false)"', html)
    )
    assert sections == dict.fromkeys(dd.PANELS, "false")
    assert html.count("<svg") >= 5 and "<script" not in html
    urls = [u for u in re.findall(r'(?:src|href)="([^"]*)"', html) if u != "data:,"]
    assert urls and all(not re.match(r"^[a-z]+:|^//", u) for u in urls), urls
    assert "static/dashboard.css" in urls
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'none'" in csp
    assert (
        client.get("/static/dashboard.css", headers=_bearer(token))
        .headers["content-type"]
        .startswith("text/css")
    )


@pytest.mark.parametrize(
    "route",
    [
        pytest.param("/api/accuracy?days=14", id="window-not-offered"),
        pytest.param("/api/accuracy?days=thirty", id="days-not-a-number"),
        pytest.param("/api/latency?as_of=yesterday", id="as-of-not-a-date"),
        pytest.param("/api/latency?as_of=2026-10-01T10:00:00", id="as-of-without-zone"),
        pytest.param("/api/misclassifications?limit=0", id="limit-zero"),
        pytest.param("/?days=365", id="page-window-not-offered"),
    ],
)
def test_bad_parameters_are_rejected_with_422(client, token, route):
    response = client.get(route, headers=_bearer(token))
    assert response.status_code == 422
    assert "detail" in response.json()


def test_gate_reports_are_served_from_staging_with_a_sandbox_policy(client, token, feedback_db):
    seeded = feedback_db["seeded"]
    page = client.get("/", headers=_bearer(token)).text
    link = f"reports?{urlencode({'id': seeded.golden_run_ids[0]})}".replace("&", "&amp;")
    assert link in page
    response = client.get("/reports", params={"id": seeded.golden_run_ids[0]}, headers=_bearer(token))
    assert response.status_code == 200
    assert response.content == seeded.report_path.read_bytes()
    csp = response.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert client.get("/reports", params={"id": "no/such/run"}, headers=_bearer(token)).status_code == 404
    with db.connect(feedback_db["dsn"]) as conn, db.transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.golden_runs (golden_run_id, version_id, dag_id, run_id, golden_version, verdict,
                                           reasons, checks, metrics, report_uri)
               VALUES ('gone/run/v', 'v', 'gone', 'run', 't', 'pass', '[]', '[]', '{}', %s)""",
            ((Path(seeded.report_path).parent.parent / "deleted" / "report.json").as_uri(),),
        )
    assert client.get("/reports", params={"id": "gone/run/v"}, headers=_bearer(token)).status_code == 404


def test_an_unreachable_database_gives_503(auth_manager, token):
    from fastapi.testclient import TestClient

    from feedbackloop_dashboard.app import create_app
    from feedbackloop_dashboard.pool import ConnectionPool

    def refuse():
        return psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)

    with TestClient(create_app(ConnectionPool(connect=refuse))) as c:
        response = c.get("/api/dashboard", headers=_bearer(token))
        assert response.status_code == 503
        assert "127.0.0.1" not in response.text and "OperationalError" in response.json()["detail"]
        assert c.get("/api/dashboard").status_code == 401, "authentication comes before the database"


def test_a_missing_airflow_connection_gives_503(auth_manager, token, monkeypatch):
    from fastapi.testclient import TestClient

    from feedbackloop_dashboard.app import create_app

    with TestClient(create_app(conn_id="no_such_connection")) as c:
        response = c.get("/api/deployments", headers=_bearer(token))
    assert response.status_code == 503
    assert "no_such_connection" in response.json()["detail"]


def test_a_stale_summary_is_refreshed_in_the_background(feedback_db, auth_manager, token):
    from fastapi.testclient import TestClient

    from feedbackloop_dashboard.app import create_app

    app = create_app()
    with db.connect(feedback_db["dsn"]) as conn, db.transaction(conn) as cur:
        cur.execute(
            "UPDATE ml.dashboard_refresh SET refreshed_at = now() - interval '1 hour' RETURNING refreshed_at"
        )
        stale_at = cur.fetchone()[0]
    with TestClient(app) as c:
        assert c.get("/api/summary", headers=_bearer(token)).status_code == 200
        app.state.summaries.join(60)
        assert app.state.summaries.last_result["status"] == "refreshed"
        refreshed = c.get("/api/summary", headers=_bearer(token)).json()["refreshed_at"]
    assert datetime.fromisoformat(refreshed) > stale_at
    app.state.pool.close()


def test_the_plugin_registers_the_app_and_a_navigation_entry():
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse, FastAPIAppResponse
    from airflow.plugins_manager import AirflowPlugin
    from fastapi import FastAPI

    import feedbackloop_dashboard_plugin as module

    plugin = module.FeedbackLoopDashboardPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "feedbackloop_dashboard"
    (entry,) = plugin.fastapi_apps
    assert isinstance(entry["app"], FastAPI) and entry["url_prefix"] == "/feedbackloop"
    FastAPIAppResponse.model_validate({**entry, "app": str(entry["app"])})
    (view,) = plugin.external_views
    parsed = ExternalViewResponse.model_validate(view)
    assert (
        parsed.href == "feedbackloop/" and parsed.destination == "nav" and parsed.url_route == "model-quality"
    )
