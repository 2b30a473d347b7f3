"""Helpers shared by test modules (fixtures live in conftest.py files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

# A Sunday 02:00 UTC: the weekly retraining run whose interval is the week before it.
RUN_DATE = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
INTERVAL = (RUN_DATE - timedelta(days=7), RUN_DATE)


def use_feedback_db(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    """Point the ``feedback_db`` Airflow connection at a test database."""
    from urllib.parse import urlparse

    u = urlparse(dsn)
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEEDBACK_DB",
        json.dumps(
            {"conn_type": "postgres", "host": u.hostname, "port": u.port, "login": u.username,
             "schema": u.path.lstrip("/")}
        ),
    )
