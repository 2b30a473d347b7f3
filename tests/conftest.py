"""Shared fixtures: an embedded PostgreSQL on 127.0.0.1 for the whole session, and a fresh
database per test with the app tables and the ``ml`` migrations applied."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration when first imported: point it at a private, throw-away
# home (SQLite metadata) before any test module imports it, so tests never touch a
# developer's .airflow/ and never need a scheduler.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="feedbackloop-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(_AIRFLOW_HOME / "logs"),
        "GX_ANALYTICS_ENABLED": "false",
    }
)
os.environ.pop("FEEDBACKLOOP_STAGING_URI", None)
for _p in (ROOT / "plugins", ROOT / "dags"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the session's SQLite Airflow metadata DB once (about 3 s)."""
    import subprocess

    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    """Every DAG file of dags/, parsed once for the session."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


@pytest.fixture(scope="session")
def pg_server():
    """One embedded PostgreSQL on 127.0.0.1 for the test session.

    Its data folder is a private temporary folder, not pytest's tmp_path: pytest prunes old
    basetemp folders, which would delete the data of a server another session still runs.
    """
    import secrets
    import shutil

    from tests.support import PIPELINE_PASSWORD_ENV, require_pipeline_password

    from feedbackloop import embedded_pg

    root = Path(tempfile.mkdtemp(prefix="feedbackloop-pg-"))
    pgdata = root / "data"
    # Any free port: parallel test sessions on one machine must not collide.
    server = embedded_pg.start(pgdata, port=int(os.environ.get("FEEDBACKLOOP_TEST_PG_PORT", "0")))
    # The pipeline's least-privilege role logs in with a password only this session knows;
    # pg_dsn grants it on each test database and use_feedback_db makes the DAGs use it.
    os.environ[PIPELINE_PASSWORD_ENV] = f"fl-test-pipeline-{secrets.token_hex(12)}"
    require_pipeline_password(server, os.environ[PIPELINE_PASSWORD_ENV])
    yield server
    embedded_pg.stop(pgdata)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server) -> Iterator[str]:
    """DSN (superuser) of a fresh database with app tables and ml migrations, dropped after the test.

    The migrations run as the superuser (the schema owner); then the pipeline's role is
    granted exactly what ``pipeline_role.sql`` documents, which is what the DAGs connect as
    (``tests.support.use_feedback_db``).
    """
    import psycopg

    from feedbackloop import db

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_server.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.dsn(name)
    with psycopg.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
        db.apply_pipeline_role(conn)
    yield dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
