"""Feedback-to-canary latency: one whole ``feedback_retraining`` run on N generated rows.

Starts its own embedded PostgreSQL (127.0.0.1) and a throw-away Airflow home, seeds
``--rows`` feedback rows (default 100,000) for one weekly interval, runs the DAG in-process
with ``dag.test()`` on the local backend and prints each task's duration and the total.
Target: total < 120 s on 2 cores (daily, even hourly, retraining becomes practical where the
brief runs weekly). The seeding time is reported separately: it is the app's work, not ours.

    python benchmarks/retraining_run.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
INTERVAL = (RUN_DATE - timedelta(days=7), RUN_DATE)
LENIENT = {"min_accuracy": 0.0, "min_critical_accuracy": 0.0, "max_ece": 1.0, "max_p95_latency_ms": 1e9}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-retraining-"))
    home = work / "airflow"
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "GX_ANALYTICS_ENABLED": "false",
            "FEEDBACKLOOP_STAGING_URI": (work / "staging").as_uri(),
        }
    )
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "dags")]
    from feedbackloop import db, embedded_pg
    from feedbackloop.synth import iter_app_data, load_app_data

    server = embedded_pg.start(work / "pg", port=0)
    try:
        dsn = server.dsn()
        with db.connect(dsn) as conn:
            db.create_app_tables(conn)
            db.migrate(conn)
            t0 = time.monotonic()
            load_app_data(conn, iter_app_data(args.rows, args.seed, *INTERVAL, malformed_fraction=0.01))
            conn.commit()
            conn.execute("ANALYZE")
            seed_s = time.monotonic() - t0
        os.environ["AIRFLOW_CONN_FEEDBACK_DB"] = json.dumps(
            {"conn_type": "postgres", "host": "127.0.0.1", "port": server.port, "login": "postgres",
             "schema": "postgres"}
        )
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(str(ROOT / "dags")).dags["feedback_retraining"]
        t0 = time.monotonic()
        dr = dag.test(logical_date=RUN_DATE, run_conf=LENIENT)
        total = time.monotonic() - t0
        tis = sorted(dr.get_task_instances(), key=lambda ti: ti.start_date or datetime.max.replace(tzinfo=UTC))
        print(f"\nrows seeded: {args.rows:,} in {seed_s:.1f}s (app side, not counted)")
        print(f"{'task':24} {'state':16} {'seconds':>8}")
        for ti in tis:
            dur = (ti.end_date - ti.start_date).total_seconds() if ti.start_date and ti.end_date else 0.0
            print(f"{ti.task_id:24} {str(ti.state):16} {dur:8.2f}")
        print(f"\nrun state: {dr.state}; feedback-to-canary wall time: {total:.1f}s (target < 120 s)")
        return 0 if dr.state == "success" else 1
    finally:
        embedded_pg.stop(work / "pg")


if __name__ == "__main__":
    raise SystemExit(main())
