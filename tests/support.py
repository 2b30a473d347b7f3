"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

# A Sunday 02:00 UTC: the weekly retraining run whose interval is the week before it.
RUN_DATE = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
INTERVAL = (RUN_DATE - timedelta(days=7), RUN_DATE)

# The pipeline's least-privilege login (include/feedbackloop/migrations/roles/pipeline_role.sql).
# The session's PostgreSQL makes it authenticate with a password (scram-sha-256, see
# ``require_pipeline_password``); ``pg_dsn`` grants it on every test database.
PIPELINE_ROLE = "feedbackloop_pipeline"
PIPELINE_PASSWORD_ENV = "FEEDBACKLOOP_TEST_PIPELINE_PASSWORD"


def pipeline_password() -> str:
    """The session's password of :data:`PIPELINE_ROLE` (set by the ``pg_server`` fixture)."""
    password = os.environ.get(PIPELINE_PASSWORD_ENV)
    if not password:
        raise RuntimeError(f"{PIPELINE_PASSWORD_ENV} is not set: use the pg_server / pg_dsn fixtures")
    return password


def feedback_db_connection(
    dsn: str, role: str | None = PIPELINE_ROLE, password: str | None = None
) -> dict[str, Any]:
    """The ``feedback_db`` Airflow connection (as a dict) for a test database.

    ``dsn`` is the admin DSN the tests seed and inspect with; the connection logs in as
    ``role`` (default: the pipeline's least-privilege role, with the session's password), or
    as the DSN's own user when ``role`` is None.
    """
    from urllib.parse import urlparse

    u = urlparse(dsn)
    conn: dict[str, Any] = {
        "conn_type": "postgres",
        "host": u.hostname,
        "port": u.port,
        "login": u.username,
        "schema": u.path.lstrip("/"),
    }
    if role is not None:
        conn["login"] = role
        conn["password"] = password if password is not None else pipeline_password()
    return conn


def use_feedback_db(
    monkeypatch: pytest.MonkeyPatch,
    dsn: str,
    *,
    role: str | None = PIPELINE_ROLE,
    password: str | None = None,
) -> None:
    """Point the ``feedback_db`` Airflow connection at a test database.

    Tasks then connect as the pipeline's least-privilege role (SELECT on the app tables, rows
    of schema ``ml``), as in production; ``role=None`` connects as the DSN's user instead.
    """
    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", json.dumps(feedback_db_connection(dsn, role, password)))


def require_pipeline_password(server: Any, password: str, timeout: float = 15.0) -> None:
    """Make ``server`` (embedded PostgreSQL, trust auth) require a password for the pipeline role.

    Adds a ``scram-sha-256`` line for :data:`PIPELINE_ROLE` at the top of ``pg_hba.conf``,
    reloads, and waits until a login without the password is refused (the reload is
    asynchronous), so a task can only connect as the role with the right password.
    """
    import time
    from pathlib import Path

    import psycopg
    from psycopg import sql

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
        line = f"host all {PIPELINE_ROLE} 127.0.0.1/32 scram-sha-256\n"
        text = hba.read_text()
        if line not in text:
            hba.write_text(line + text)
        # The role must exist for the probe below; its grants come per database (pg_dsn).
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PIPELINE_ROLE,)).fetchone()
        if not exists:
            # The attributes pipeline_role.sql gives it (the file also grants, per database).
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
                ).format(sql.Identifier(PIPELINE_ROLE))
            )
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PIPELINE_ROLE), sql.Literal(password))
        )
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(server.dsn(user=PIPELINE_ROLE), connect_timeout=5).close()
        except psycopg.OperationalError:
            return  # refused without a password: the new rule is live
        if time.monotonic() > deadline:
            raise RuntimeError("pg_hba.conf reload did not take effect")
        time.sleep(0.05)
