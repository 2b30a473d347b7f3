"""``make demo``: the whole loop on the embedded default, from a fresh clone.

1. starts the embedded PostgreSQL (127.0.0.1) as the feedback DB;
2. creates the app tables and migrates the ``ml`` schema;
3. seeds one week of realistic feedback from the deterministic generator (re-seeding
   replaces it with identical rows, so the demo can run again and again);
4. runs ``airflow dags test feedback_retraining`` with local ``file://`` staging and the
   local scikit-learn backend;
5. prints the gate verdict, the key metrics and the report's path, and stops every process
   it started.

Airflow itself is only run as a subprocess: this package never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackloop import db, embedded_pg

DAG_ID = "feedback_retraining"
# A fixed Sunday 02:00 UTC: the run covers the week before it, so every demo run sees the
# same data and gives the same result.
DEMO_LOGICAL_DATE = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
DEMO_INTERVAL = (DEMO_LOGICAL_DATE - timedelta(days=7), DEMO_LOGICAL_DATE)
DEMO_FEEDBACK_ROWS = 5_000
DEMO_SEED = 20261122
APP_TABLES = ("emails", "predictions", "category_corrections", "action_feedback", "engagement_events")


def ensure_database(server: embedded_pg.EmbeddedPostgres, name: str) -> str:
    """Create database ``name`` on the embedded server if missing; return its DSN."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.dsn(name)


def seed_demo_data(dsn: str, rows: int = DEMO_FEEDBACK_ROWS, seed: int = DEMO_SEED,
                   interval: tuple[datetime, datetime] = DEMO_INTERVAL) -> dict[str, int]:
    """Replace the app tables' content with the deterministic demo week."""
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
        with db.transaction(conn) as cur:
            cur.execute("TRUNCATE " + ", ".join(f"app.{t}" for t in APP_TABLES))
        counts = load_app_data(conn, iter_app_data(rows, seed, interval[0], interval[1], malformed_fraction=0.01))
        conn.commit()
    return counts


def airflow_env(project: Path, state: Path, dsn_port: int, dbname: str) -> dict[str, str]:
    """Environment for the Airflow subprocesses: SQLite metadata, local staging, connections."""
    env = dict(os.environ)
    airflow_home = project / ".airflow"
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "GX_ANALYTICS_ENABLED": "false",
            "FEEDBACKLOOP_STAGING_URI": (state / "staging").resolve().as_uri(),
            "AIRFLOW_CONN_FEEDBACK_DB": json.dumps(
                {"conn_type": "postgres", "host": "127.0.0.1", "port": dsn_port, "login": "postgres",
                 "schema": dbname}
            ),
        }
    )
    return env


def _airflow(bin_dir: Path, args: list[str], env: dict[str, str], log_path: Path) -> int:
    with log_path.open("ab") as log:
        return subprocess.run([str(bin_dir / "airflow"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                              check=False).returncode


def latest_decision(dsn: str, dag_id: str = DAG_ID) -> dict[str, Any] | None:
    """The newest golden-set run of ``dag_id`` and the current deployments."""
    with db.connect(dsn) as conn, db.transaction(conn) as cur:
        cur.execute(
            """SELECT run_id, version_id, verdict, reasons, metrics->'accuracy', metrics->'critical_accuracy',
                      report_uri
               FROM ml.golden_runs WHERE dag_id = %s ORDER BY created_at DESC LIMIT 1""",
            (dag_id,),
        )
        row = cur.fetchone()
        cur.execute("SELECT alias, version_id, traffic_share FROM ml.deployments ORDER BY alias")
        deployments = cur.fetchall()
    if row is None:
        return None
    keys = ("run_id", "version_id", "verdict", "reasons", "accuracy", "critical_accuracy", "report_uri")
    out = dict(zip(keys, row, strict=True))
    out["deployments"] = [{"alias": a, "version_id": v, "traffic_share": float(s)} for a, v, s in deployments]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path(".state"), help="folder for the DB and staging")
    parser.add_argument("--rows", type=int, default=DEMO_FEEDBACK_ROWS, help="feedback rows to generate")
    parser.add_argument("--keep-db", action="store_true", help="leave the embedded PostgreSQL running")
    args = parser.parse_args(argv)

    project = Path(__file__).resolve().parents[2]
    state = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    log_path = state / "demo-airflow.log"
    log_path.write_bytes(b"")
    started = time.monotonic()

    already_running = embedded_pg._running(state / "pg") is not None
    server = embedded_pg.start(state / "pg")
    try:
        dsn = ensure_database(server, "feedback")
        t0 = time.monotonic()
        counts = seed_demo_data(dsn, rows=args.rows)
        print(f"seeded demo feedback DB ({server.dsn('feedback')}): {counts} in {time.monotonic() - t0:.1f}s")
        env = airflow_env(project, state, server.port, "feedback")
        if _airflow(bin_dir, ["db", "migrate"], env, log_path) != 0:
            print(f"airflow db migrate failed; see {log_path}", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        rc = _airflow(bin_dir, ["dags", "test", DAG_ID, DEMO_LOGICAL_DATE.isoformat()], env, log_path)
        print(f"airflow dags test {DAG_ID} {DEMO_LOGICAL_DATE.isoformat()}: exit {rc} in "
              f"{time.monotonic() - t0:.1f}s (log: {log_path})")
        decision = latest_decision(dsn)
        if decision is None:
            print("no gate decision was recorded: the run failed before the gate; see the log", file=sys.stderr)
            return 1
        print()
        print(f"gate verdict      : {decision['verdict'].upper()}")
        print(f"model version     : {decision['version_id']}")
        print(f"golden accuracy   : {100 * float(decision['accuracy']):.1f}% (gate >= 95%)")
        print(f"critical accuracy : {100 * float(decision['critical_accuracy']):.1f}% (gate >= 98%)")
        for reason in decision["reasons"]:
            print(f"reason            : {reason}")
        for d in decision["deployments"]:
            print(f"deployment        : {d['alias']} = {d['version_id']} at {100 * d['traffic_share']:.0f}%")
        report = decision["report_uri"].replace("report.json", "report.html")
        print(f"report            : {report}")
        print(f"total             : {time.monotonic() - started:.1f}s")
        # A failing gate fails the DAG run by design (watcher); a passing gate must give a
        # successful run, else something after the gate broke.
        if decision["verdict"] == "pass" and rc != 0:
            print(f"the gate passed but the run failed after it; see {log_path}", file=sys.stderr)
            return 1
        return 0
    finally:
        if not (args.keep_db or already_running):
            embedded_pg.stop(state / "pg")


if __name__ == "__main__":
    raise SystemExit(main())
