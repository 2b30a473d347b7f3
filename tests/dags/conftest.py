"""Fixtures for DAG tests: a migrated SQLite Airflow metadata DB and a seeded feedback DB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

RUN_DATE = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
INTERVAL = (RUN_DATE - timedelta(days=7), RUN_DATE)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite Airflow metadata DB once (about 3 s)."""
    home = Path(os.environ["AIRFLOW_HOME"])
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return home


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(Path(__file__).resolve().parents[2] / "dags"))


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
