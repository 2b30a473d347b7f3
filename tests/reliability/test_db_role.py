"""Least privilege: the pipeline's database role can read the app's tables and the rows of
schema ``ml``, and nothing else; every DAG test runs as it.

The role is created by the documented SQL (include/feedbackloop/migrations/roles/
pipeline_role.sql, via ``feedbackloop.db.apply_pipeline_role``) in every test database
(``pg_dsn``); the session's PostgreSQL requires its password (scram-sha-256); and
``tests.support.use_feedback_db`` points the DAGs' ``feedback_db`` connection at it, so
tests/dags and tests/reliability run every DAG as this role.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import errors, sql
from tests.reliability.security_support import APP_TABLES, Figures, hostile_run
from tests.support import PIPELINE_ROLE, pipeline_password, use_feedback_db

from feedbackloop import db

pytestmark = pytest.mark.slow


@pytest.fixture
def hostile(pg_server, dagbag, capfd):
    return hostile_run(pg_server, dagbag, capfd)


@pytest.fixture
def figures(tmp_path_factory):
    return Figures(tmp_path_factory.getbasetemp())


def _as_role(dsn: str, password: str | None = None) -> psycopg.Connection:
    from urllib.parse import urlparse

    u = urlparse(dsn)
    return psycopg.connect(
        host=u.hostname,
        port=u.port,
        dbname=u.path.lstrip("/"),
        user=PIPELINE_ROLE,
        password=pipeline_password() if password is None else password,
        autocommit=True,
        connect_timeout=10,
    )


def _tables(conn: psycopg.Connection, schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE' "
        "ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def test_the_role_is_a_plain_login_without_any_power(pg_dsn):
    with db.connect(pg_dsn) as conn:
        db.apply_pipeline_role(conn)  # idempotent: applying the documented SQL again changes nothing
        row = conn.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolinherit "
            "FROM pg_roles WHERE rolname = %s",
            (PIPELINE_ROLE,),
        ).fetchone()
        memberships = conn.execute(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
            (PIPELINE_ROLE,),
        ).fetchone()
    assert row == (True, False, False, False, False, False, False)
    assert memberships == (0,), "the role must not inherit another role's rights"


def test_privileges_are_exactly_the_documented_ones(pg_dsn, figures):
    """Every table of app and ml, every privilege: what the role holds is what pipeline_role.sql says."""
    verbs = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    unexpected: list[str] = []
    checked = 0
    with db.connect(pg_dsn) as conn:
        for schema in ("app", "ml"):
            for table in _tables(conn, schema):
                for verb in verbs:
                    (has,) = conn.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", (PIPELINE_ROLE, f"{schema}.{table}", verb)
                    ).fetchone()
                    if schema == "app":
                        wanted = verb == "SELECT"
                    elif table == "schema_migrations":
                        wanted = verb == "SELECT"
                    else:
                        wanted = verb in ("SELECT", "INSERT", "UPDATE", "DELETE")
                    checked += 1
                    if has != wanted:
                        unexpected.append(f"{schema}.{table} {verb}: {has}")
        for schema in ("app", "ml", "public"):
            (create,) = conn.execute(
                "SELECT has_schema_privilege(%s, %s, 'CREATE')", (PIPELINE_ROLE, schema)
            ).fetchone()
            checked += 1
            if create:
                unexpected.append(f"schema {schema} CREATE")
        (createdb,) = conn.execute(
            "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (PIPELINE_ROLE,)
        ).fetchone()
        checked += 1
        if createdb:
            unexpected.append("database CREATE")
        app_tables = _tables(conn, "app")
    assert unexpected == []
    assert set(app_tables) == set(APP_TABLES)
    figures.record("db_role", privileges_checked=checked)


def _denied(conn: psycopg.Connection, statement: sql.Composable | str) -> str:
    with pytest.raises(errors.InsufficientPrivilege) as err:
        conn.execute(statement)
    return str(err.value)


def test_the_role_cannot_write_the_app_tables_nor_create_drop_or_rewrite_history(pg_dsn, figures):
    attempts: dict[str, str] = {}
    with _as_role(pg_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (PIPELINE_ROLE,)
        for table in APP_TABLES:
            ident = sql.Identifier("app", table)
            for verb, statement in (
                ("INSERT", sql.SQL("INSERT INTO {} DEFAULT VALUES").format(ident)),
                ("UPDATE", sql.SQL("UPDATE {} SET user_id = user_id").format(ident)),
                ("DELETE", sql.SQL("DELETE FROM {}").format(ident)),
                ("TRUNCATE", sql.SQL("TRUNCATE {}").format(ident)),
            ):
                message = _denied(conn, statement)
                assert f"permission denied for table {table}" in message, message
                attempts[f"{verb} app.{table}"] = message
            # Reading is allowed (extraction, monitors, the dashboard).
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
        for name, statement in {
            "CREATE TABLE ml": "CREATE TABLE ml.flcanary_t (x int)",
            "CREATE TABLE app": "CREATE TABLE app.flcanary_t (x int)",
            "CREATE TABLE public": "CREATE TABLE public.flcanary_t (x int)",
            "CREATE SCHEMA": "CREATE SCHEMA flcanary",
            "CREATE FUNCTION ml": "CREATE FUNCTION ml.flcanary() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "DROP TABLE ml.deployments": "DROP TABLE ml.deployments",
            "ALTER TABLE ml.model_versions": "ALTER TABLE ml.model_versions ADD COLUMN x int",
            "DROP VIEW ml.feedback_records": "DROP VIEW ml.feedback_records",
            "DELETE ml.schema_migrations": "DELETE FROM ml.schema_migrations",
            "TRUNCATE ml.golden_runs": "TRUNCATE ml.golden_runs",
            "ALTER ROLE": f"ALTER ROLE {PIPELINE_ROLE} CREATEDB",
        }.items():
            attempts[name] = _denied(conn, statement)
        # What the pipeline does need works.
        conn.execute("SELECT count(*) FROM ml.feedback_records").fetchone()
        conn.execute("DELETE FROM ml.alerts WHERE false")
    figures.record("db_role", forbidden_statements_refused=len(attempts))


def test_the_role_logs_in_with_its_password_only(pg_server, pg_dsn):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _as_role(pg_dsn, password="flcanary-not-the-password").close()
    from urllib.parse import urlparse

    u = urlparse(pg_dsn)
    with pytest.raises(psycopg.OperationalError):  # no password at all
        psycopg.connect(host=u.hostname, port=u.port, dbname=u.path.lstrip("/"), user=PIPELINE_ROLE).close()
    with _as_role(pg_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (PIPELINE_ROLE,)


def test_dag_tests_connect_as_the_role(monkeypatch, pg_dsn):
    """use_feedback_db (every DAG test's way to reach the DB) logs in as the role by default."""
    import os

    use_feedback_db(monkeypatch, pg_dsn)
    conn = json.loads(os.environ["AIRFLOW_CONN_FEEDBACK_DB"])
    assert (conn["login"], conn["password"]) == (PIPELINE_ROLE, pipeline_password())
    assert conn["login"] != "postgres"


def test_a_full_retraining_run_succeeds_as_the_role_and_leaves_the_app_tables_untouched(hostile, figures):
    """The hostile run: feedback_retraining end to end (extract, validate, rewards, datasets,
    train, evaluate, gate, deploy, notify) with ``feedback_db`` logging in as the role."""
    ok = hostile.run("ok")
    assert ok.state == "success", ok.states
    assert {t: s for t, s in ok.states.items() if t != "watcher"} == dict.fromkeys(
        [t for t in ok.states if t != "watcher"], "success"
    )
    # It wrote its decision to ml (as the role) and did not change one app row.
    ml = hostile.ml_rows
    assert ml["ml.golden_runs"] and ml["ml.deployments"] and ml["ml.model_versions"]
    assert hostile.app_after == hostile.app_before
    # PostgreSQL checked the role's password: the run with a wrong one failed at extraction.
    failed = hostile.run("bad_password")
    assert failed.states["extract_feedback"] == "failed"
    assert f'password authentication failed for user "{PIPELINE_ROLE}"' in hostile.logs
    figures.record(
        "db_role",
        dag_run_as_role=ok.state,
        tasks_succeeded_as_role=sum(s == "success" for s in ok.states.values()),
        app_rows_changed=sum(hostile.app_before[t] != hostile.app_after[t] for t in hostile.app_before),
    )
