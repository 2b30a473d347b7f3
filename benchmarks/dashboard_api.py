"""Dashboard JSON API latency with 90 days of data for 1M predictions, and its query plans.

Target (issue 10): every JSON API endpoint answers in < 200 ms at p95.

What it does, all on 127.0.0.1:

1. starts an embedded PostgreSQL in a temporary folder (``embedded_pg.start(tmp, port=0)``)
   and fills the app tables with ``generate_series`` SQL (seeded, so every run draws the same
   data relative to "now"): 1M predictions spread over the last 90 days, their emails,
   ~160k category corrections/confirmations, ~200k action feedback rows; plus a champion, a
   challenger in a live A/B experiment with a recorded decision, 200 gate runs, 300 alerts
   and 20k review-queue items; then ``VACUUM ANALYZE``;
2. times the full rebuild of the dashboard summaries (``refresh_summary``) and the
   incremental refresh a stale read triggers (``ensure_summary``: the last 7 days);
3. calls every JSON endpoint (and the HTML page) through the real FastAPI app with an
   Airflow JWT, ``--calls`` times each after a warm-up, reading the DB through the
   ``feedback_db`` Airflow connection; prints p50 / p95 / max;
4. runs ``EXPLAIN (ANALYZE, BUFFERS)`` on every query one dashboard view issues (and on the
   incremental refresh) and prints the scans each plan uses; a sequential scan of a large
   app table fails the check.

Exit status 1 when an endpoint misses the target or a plan scans a large table sequentially.

    python benchmarks/dashboard_api.py [--predictions 1000000] [--calls 30]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 200.0
LARGE_TABLES = ("predictions", "category_corrections", "action_feedback", "emails", "engagement_events")

CATEGORIES = (
    "promotion", "newsletter", "receipt", "shipping_update", "work", "social_notification", "personal",
    "bill_due", "account_update", "calendar_invite", "financial_statement", "loyalty_rewards",
    "security_alert", "phishing", "travel", "appointment", "school_family", "event_marketing",
    "survey_request", "fraud_alert",
)  # fmt: skip

# One temp table of per-row random draws, then the app tables derived from it (so a wrong
# prediction and its correction agree). setseed() makes the draws reproducible. Rows are
# inserted in time order, as an app appends them (recent days are then physically together).
_DRAWS = """
CREATE TEMP TABLE draws AS
SELECT i,
       now() - random() * interval '90 days' AS predicted_at,
       floor(random() * 50000)::int AS user_n,
       1 + floor(power(random(), 1.6) * 20)::int AS cat_k,
       random() AS r_wrong, random() AS r_conf, greatest(random(), 1e-12) AS r_lat1, random() AS r_lat2,
       random() AS r_fb, random() AS r_delay, random() AS r_af, 1 + floor(random() * 19)::int AS shift
FROM generate_series(1, %(n)s) AS i
"""
_PREDICTIONS = """
CREATE TEMP TABLE truth AS
SELECT d.*,
       (d.user_n %% 20 = 0) AS challenger,
       d.r_wrong < CASE WHEN d.user_n %% 20 = 0 THEN 0.07 ELSE 0.09 END AS wrong
FROM draws d;
INSERT INTO app.predictions
    (prediction_id, email_id, user_id, model_version, variant, category, confidence, actions, latency_ms,
     predicted_at)
SELECT 'prd-' || lpad(i::text, 8, '0'), 'eml-' || lpad(i::text, 8, '0'), 'u-' || user_n,
       CASE WHEN challenger THEN %(challenger)s ELSE %(champion)s END,
       CASE WHEN challenger THEN 'challenger' ELSE 'champion' END,
       (%(cats)s::text[])[CASE WHEN wrong THEN (cat_k - 1 + shift) %% 20 + 1 ELSE cat_k END],
       CASE WHEN wrong THEN 0.30 + 0.5 * r_conf ELSE 0.99 - 0.44 * power(r_conf, 4) END,
       ARRAY['archive'],
       round((exp(ln(165) + 0.46 * sqrt(-2 * ln(r_lat1)) * cos(2 * pi() * r_lat2)))::numeric, 1),
       predicted_at
FROM truth
ORDER BY predicted_at;
INSERT INTO app.emails (email_id, user_id, sender, subject, body, received_at)
SELECT 'eml-' || lpad(i::text, 8, '0'), 'u-' || user_n, 'news@example.com',
       'Subject ' || i || ' about ' || (%(cats)s::text[])[cat_k], NULL, predicted_at - interval '2 seconds'
FROM truth
ORDER BY predicted_at;
INSERT INTO app.category_corrections (correction_id, prediction_id, user_id, corrected_category, created_at)
SELECT 'cor-' || lpad(i::text, 8, '0'), 'prd-' || lpad(i::text, 8, '0'), 'u-' || user_n,
       (%(cats)s::text[])[cat_k], predicted_at + interval '60 seconds' + power(r_delay, 2) * interval '2 days'
FROM truth
WHERE ((wrong AND r_fb < 0.6) OR (NOT wrong AND r_fb < 0.12))
  AND predicted_at + interval '60 seconds' + power(r_delay, 2) * interval '2 days' <= now();
INSERT INTO app.action_feedback
    (action_feedback_id, prediction_id, user_id, missed_actions, unnecessary_actions, note, created_at)
SELECT 'afb-' || lpad(i::text, 8, '0'), 'prd-' || lpad(i::text, 8, '0'), 'u-' || user_n,
       CASE WHEN r_af < 0.08 THEN ARRAY['add_to_calendar'] ELSE ARRAY[]::text[] END,
       CASE WHEN r_af > 0.15 THEN ARRAY['archive'] ELSE ARRAY[]::text[] END,
       NULL, predicted_at + interval '30 seconds' + r_delay * interval '1 day'
FROM truth
WHERE r_af < 0.2 AND predicted_at + interval '30 seconds' + r_delay * interval '1 day' <= now();
"""


def _seed_app(conn: Any, n: int) -> dict[str, int]:
    from feedbackloop.synth import CHALLENGER_VERSION, CHAMPION_VERSION

    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT setseed(0.42)")
        cur.execute(_DRAWS, {"n": n})
        params = {"challenger": CHALLENGER_VERSION, "champion": CHAMPION_VERSION, "cats": list(CATEGORIES)}
        for statement in _PREDICTIONS.split(";\n"):
            if statement.strip():
                cur.execute(statement, params)
        counts = {}
        for table in ("predictions", "emails", "category_corrections", "action_feedback"):
            cur.execute(f"SELECT count(*) FROM app.{table}")
            counts[table] = cur.fetchone()[0]
    return counts


def _seed_ml(conn: Any, now: datetime) -> None:
    from feedbackloop import registry
    from feedbackloop.experiment import Policy, decide, experiment_stats
    from feedbackloop.synth import CHALLENGER_VERSION, CHAMPION_VERSION

    with conn.transaction(), conn.cursor() as cur:
        for version in (CHAMPION_VERSION, CHALLENGER_VERSION):
            cur.execute(
                """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, report_uri, gate_passed)
                   VALUES (%s, %s::jsonb, 'feedback_retraining', %s, %s, true)""",
                (
                    version,
                    json.dumps({"version_id": version}),
                    f"run-{version}",
                    "file:///nonexistent/report.json",
                ),
            )
        cur.execute(
            """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
               VALUES ('champion', %s, 1, 'bench', 'initial champion')""",
            (CHAMPION_VERSION,),
        )
    registry.deploy_challenger(conn, CHALLENGER_VERSION, 0.05, updated_by="bench", reason="passed the gate")
    started = now - timedelta(days=12)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "UPDATE ml.experiments SET started_at = %s, stage_started_at = %s WHERE status = 'running'",
            (started, started),
        )
    experiment = registry.get_live_experiment(conn)
    day = now.date()
    as_of = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    stats = experiment_stats(conn, experiment, as_of, Policy())
    decision = decide(stats, Policy())
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            """INSERT INTO ml.experiment_decisions
                   (experiment_id, decision_date, outcome, source, from_share, to_share, reason, reasons,
                    statistics, policy, decided_by, run_id)
               VALUES (%s, %s, %s, 'auto', %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, 'bench', 'bench')""",
            (
                experiment["experiment_id"], day, decision.outcome, decision.from_share, decision.to_share,
                decision.reason, json.dumps(list(decision.reasons)), json.dumps(stats.to_dict()),
                json.dumps(Policy().to_dict()),
            ),
        )  # fmt: skip
        cur.execute(
            """INSERT INTO ml.golden_runs (golden_run_id, version_id, dag_id, run_id, golden_version, verdict,
                                           reasons, checks, metrics, report_uri, created_at)
               SELECT 'feedback_retraining/run-' || i || '/v' || i, %s, 'feedback_retraining', 'run-' || i,
                      'taxonomy-v1', CASE WHEN i %% 3 = 0 THEN 'fail' ELSE 'pass' END, '[]'::jsonb, '[]'::jsonb,
                      jsonb_build_object('accuracy', 0.95 + i %% 4 / 100.0, 'critical_accuracy', 0.98),
                      'file:///staging/run-' || i || '/report.json', now() - i * interval '1 day'
               FROM generate_series(1, 200) AS i""",
            (CHALLENGER_VERSION,),
        )
        cur.execute(
            """INSERT INTO ml.alerts (detector, key, status, metric, value, threshold, window_start, window_end,
                                      opened_at, last_seen_at, resolved_at, summary, evidence, opened_by)
               SELECT 'latency_p95', 'k' || i, CASE WHEN i <= 10 THEN 'open' ELSE 'resolved' END, 'p95_ms',
                      520 + i, 500, now() - i * interval '1 hour' - interval '1 day', now() - i * interval '1 hour',
                      now() - i * interval '1 hour', now() - i * interval '1 hour',
                      CASE WHEN i <= 10 THEN NULL ELSE now() - i * interval '1 hour' + interval '10 minutes' END,
                      'p95 latency above 500 ms', '{}'::jsonb, 'regression_monitor/bench'
               FROM generate_series(1, 300) AS i"""
        )
        cur.execute(
            """INSERT INTO ml.review_queue (prediction_id, email_id, owner_user_id, model_version,
                       predicted_category, confidence, uncertainty, criticality, problem_factor, priority,
                       reviewer_id, queue_date, status, predicted_at, enqueued_at, enqueued_by, resolved_at,
                       resolution)
               SELECT p.prediction_id, p.email_id, p.user_id, p.model_version, p.category, p.confidence,
                      1 - p.confidence, 1, 1, 1 - p.confidence, 'reviewer-' || (row_number() OVER () % 25),
                      (p.predicted_at AT TIME ZONE 'UTC')::date,
                      CASE WHEN row_number() OVER () % 7 = 0 THEN 'pending' ELSE 'resolved' END,
                      p.predicted_at, p.predicted_at + interval '1 minute', 'review_queue/bench',
                      CASE WHEN row_number() OVER () % 7 = 0 THEN NULL ELSE p.predicted_at + interval '1 hour' END,
                      CASE WHEN row_number() OVER () % 7 = 0 THEN NULL ELSE 'correction' END
               FROM app.predictions p
               WHERE p.confidence < 0.7 AND p.user_id <> 'u-0'
               LIMIT 20000"""
        )


def _airflow_env(home: Path, port: int) -> None:
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_FEEDBACK_DB": json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": port,
                    "login": "postgres",
                    "schema": "bench",
                }
            ),
        }
    )
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _time_endpoints(client: Any, token: str, calls: int) -> list[tuple[str, float, float, float]]:
    endpoints = [
        "/api/dashboard?days=30",
        "/api/dashboard?days=90",
        "/api/accuracy?days=7",
        "/api/accuracy?days=90",
        "/api/category-accuracy?days=90",
        "/api/calibration?days=90",
        "/api/latency?days=90",
        "/api/feedback-volume?days=90",
        "/api/deployments",
        "/api/experiment",
        "/api/alerts",
        "/api/review-queue",
        "/api/gate-reports",
        "/api/misclassifications?days=90",
        "/api/summary",
        "/?days=90",
    ]
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    for path in endpoints:
        for _ in range(3):  # warm-up: imports, pooled connection, plan caches
            response = client.get(path, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code} {response.text[:300]}")
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            response = client.get(path, headers=headers)
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        results.append((path, statistics.median(samples), _percentile(samples, 0.95), max(samples)))
    return results


_SCAN = re.compile(
    r"(Seq Scan|Parallel Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: Backward)?(?: using (\S+))? on (\S+)"
)


def _explain(conn: Any, sql: str, params: Any) -> tuple[float, list[str], list[str]]:
    """Execution time, scans used, and large app tables read by a sequential scan."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        lines = [r[0] for r in cur.fetchall()]
    ms = next(
        (float(m.group(1)) for line in lines if (m := re.search(r"Execution Time: ([\d.]+) ms", line))), 0.0
    )
    scans, seq_large = [], []
    for line in lines:
        m = _SCAN.search(line)
        if m:
            kind, index, table = m.group(1), m.group(2), m.group(3)
            scans.append(f"{kind} {table}" + (f" ({index})" if index else ""))
            if "Seq Scan" in kind and table.split(".")[-1] in LARGE_TABLES:
                seq_large.append(table)
    return ms, sorted(set(scans)), seq_large


def _recording_connection(dsn: str) -> tuple[Any, list[tuple[str, Any]]]:
    import psycopg

    seen: list[tuple[str, Any]] = []

    class Recording(psycopg.Cursor):
        def execute(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def, override]
            seen.append((str(query), params))
            return super().execute(query, params, **kwargs)

    return psycopg.connect(dsn, cursor_factory=Recording), seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]

    import psycopg

    from feedbackloop import dashboard_data as dd
    from feedbackloop import db, embedded_pg

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="dashboard-bench-") as tmp:
        pgdata = Path(tmp) / "pg"
        server = embedded_pg.start(pgdata, port=0)
        try:
            with psycopg.connect(server.dsn(), autocommit=True) as admin:
                admin.execute("CREATE DATABASE bench")
            dsn = server.dsn("bench")
            now = datetime.now(UTC)
            with db.connect(dsn) as conn:
                db.create_app_tables(conn)
                db.migrate(conn)
                t0 = time.perf_counter()
                counts = _seed_app(conn, args.predictions)
                _seed_ml(conn, now)
                print(
                    f"seeded {counts} + registry/experiment/alerts/review queue in {time.perf_counter() - t0:.1f}s"
                )
            with psycopg.connect(dsn, autocommit=True) as conn:
                t0 = time.perf_counter()
                conn.execute("VACUUM ANALYZE")
                print(f"VACUUM ANALYZE {time.perf_counter() - t0:.1f}s")
            with db.connect(dsn) as conn:
                full = dd.refresh_summary(conn)
                print(f"full summary rebuild (refresh_summary): {full['seconds']:.2f}s, rows {full['rows']}")
                with conn.transaction():
                    conn.execute(
                        "UPDATE ml.dashboard_refresh SET refreshed_at = now() - interval '11 minutes'"
                    )
                stale = dd.ensure_summary(conn)
                print(
                    f"stale read (ensure_summary, last 7 days + today): {stale['seconds']:.3f}s ({stale['status']})"
                )
                with psycopg.connect(dsn, autocommit=True) as c2:
                    c2.execute("ANALYZE " + ", ".join(dd._SUMMARY_TABLES))

            _airflow_env(Path(tmp) / "airflow", server.port)
            from airflow.api_fastapi.app import init_auth_manager
            from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
            from fastapi.testclient import TestClient

            from feedbackloop_dashboard.app import create_app

            token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="viewer"))
            app = create_app()
            with TestClient(app) as client:
                headers = {"Authorization": f"Bearer {token}"}
                client.get("/api/summary", headers=headers)
                with psycopg.connect(dsn, autocommit=True) as c2:
                    c2.execute("UPDATE ml.dashboard_refresh SET refreshed_at = now() - interval '11 minutes'")
                t0 = time.perf_counter()
                assert client.get("/api/dashboard?days=30", headers=headers).status_code == 200
                stale_ms = (time.perf_counter() - t0) * 1000
                app.state.summaries.join(120)
                refresh = app.state.summaries.last_result or {}
                print(
                    f"request on a stale summary: {stale_ms:.1f} ms (answered from the current summary); "
                    f"its background refresh took {refresh.get('seconds')}s ({refresh.get('status')})"
                )
                print(
                    f"\n{'endpoint':36} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  ({args.calls} calls each)"
                )
                for path, p50, p95, worst in _time_endpoints(client, token, args.calls):
                    flag = "" if p95 < TARGET_P95_MS else "  <-- over target"
                    print(f"{path:36} {p50:8.1f} {p95:8.1f} {worst:8.1f}{flag}")
                    if path.startswith("/api") and p95 >= TARGET_P95_MS:
                        failures.append(f"{path} p95 {p95:.1f} ms >= {TARGET_P95_MS} ms")

            print(
                "\nquery plans (EXPLAIN ANALYZE) of one dashboard view (days=90) and the misclassifications list:"
            )
            conn, seen = _recording_connection(dsn)
            with conn:
                dd.dashboard(conn, 90)
                dd.misclassifications(conn, 90)
                queries = [
                    (q, p)
                    for q, p in seen
                    if q.lstrip().upper().startswith(("SELECT", "WITH")) and "to_regclass" not in q
                ]
                for sql, params in queries:
                    ms, scans, seq_large = _explain(conn, sql, params)
                    first = " ".join(sql.split())[:90]
                    print(f"- {ms:7.2f} ms  {first}")
                    print(f"      scans: {'; '.join(scans) or '(none)'}")
                    if seq_large:
                        failures.append(f"sequential scan of {seq_large} in: {first}")
                # The incremental refresh's SELECT (the recent days only): it must read the
                # window of predictions through the predicted_at index, not scan all of them.
                # (Joining their feedback by hash over a sequential scan of the much smaller
                # feedback tables is the planner's cheaper choice at this size, and fine.)
                since = now - timedelta(days=8)
                until = datetime(9999, 12, 30, tzinfo=UTC)
                select_part = dd._ROWS_CTE + " SELECT count(*), count(*) FILTER (WHERE corrected) FROM r"
                ms, scans, seq_large = _explain(
                    conn, select_part, {"t0": since, "t1": until, "bins": dd.CONFIDENCE_BINS}
                )
                print(
                    f"- {ms:7.2f} ms  incremental refresh: predictions of the last 8 days and their feedback"
                )
                print(f"      scans: {'; '.join(scans)}")
                if any(t.split(".")[-1] == "predictions" for t in seq_large):
                    failures.append("the incremental refresh scans app.predictions sequentially")
        finally:
            embedded_pg.stop(pgdata)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nOK: every JSON endpoint p95 < {TARGET_P95_MS:.0f} ms; no sequential scan of a large app table.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
