"""Seed a feedback DB the way production fills it, for the dashboard tests.

App tables come from the deterministic generator (:mod:`feedbackloop.synth`); the ``ml``
side is written the way the pipeline writes it: model versions and the champion alias,
``registry.deploy_challenger`` (whose trigger opens the A/B experiment), a decision row with
statistics computed by :mod:`feedbackloop.experiment`, golden-set runs with a staged HTML
report, alert incidents and review-queue items. Timestamps are parameters so tests can
pin them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackloop import db, registry
from feedbackloop.synth import CHALLENGER_VERSION, CHAMPION_VERSION, iter_app_data, load_app_data

PII_SUBJECT = "Invoice for jane.doe@example.org, call +44 20 7946 0958"


@dataclass(frozen=True)
class Seeded:
    """What was seeded: the generator's items and the ml rows' key facts."""

    items: list[Any]
    experiment_id: str
    stage_started_at: datetime
    golden_run_ids: list[str]
    report_path: Path | None


def load_generated(conn: Any, n_feedback: int, seed: int, start: datetime, end: datetime) -> list[Any]:
    """Load generator data (one unlabeled prediction per feedback item); return the items."""
    items = list(iter_app_data(n_feedback, seed, start, end, unlabeled_ratio=1.0, challenger_share=0.2))
    load_app_data(conn, items)
    conn.commit()
    return items


def _exists(cur: Any, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    return bool(cur.fetchone()[0])


def seed_ml(
    conn: Any,
    *,
    as_of: datetime,
    stage_started_at: datetime,
    report_dir: Path | None = None,
) -> tuple[str, list[str], Path | None]:
    """Champion + live challenger experiment with a decision, gate runs, alerts, review queue."""
    from feedbackloop.experiment import Policy, decide, experiment_stats

    report_path = None
    report_uri = "file:///nonexistent/feedback_retraining/run/report.json"
    if report_dir is not None:
        run_dir = report_dir / "feedback_retraining" / "manual__seeded"
        run_dir.mkdir(parents=True, exist_ok=True)
        report_path = run_dir / "report.html"
        report_path.write_text(
            "<!doctype html><html><head><meta charset='utf-8'><style>body{font-family:sans-serif}</style>"
            "<title>Gate report</title></head><body><h1>Gate report: PASS</h1>"
            "<p>accuracy 96.3% (gate &gt;= 95%)</p></body></html>",
            encoding="utf-8",
        )
        (run_dir / "report.json").write_text("{}", encoding="utf-8")
        report_uri = (run_dir / "report.json").as_uri()
    with db.transaction(conn) as cur:
        for version in (CHAMPION_VERSION, CHALLENGER_VERSION):
            cur.execute(
                """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, report_uri, gate_passed)
                   VALUES (%s, %s::jsonb, 'feedback_retraining', %s, %s, true)""",
                (version, json.dumps({"version_id": version}), f"run-{version}", report_uri),
            )
        cur.execute(
            """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
               VALUES ('champion', %s, 1, 'seed', 'initial champion')""",
            (CHAMPION_VERSION,),
        )
    registry.deploy_challenger(
        conn,
        CHALLENGER_VERSION,
        0.05,
        updated_by="feedback_retraining/manual__seeded",
        reason="passed the gate",
    )
    with db.transaction(conn) as cur:
        cur.execute(
            "UPDATE ml.experiments SET started_at = %s, stage_started_at = %s WHERE status = 'running'",
            (stage_started_at, stage_started_at),
        )
    experiment = registry.get_live_experiment(conn)
    decision_day = as_of.date()
    cutoff = datetime.combine(decision_day, datetime.min.time(), tzinfo=UTC)
    stats = experiment_stats(conn, experiment, cutoff, Policy())
    decision = decide(stats, Policy())
    golden_ids = [
        f"feedback_retraining/manual__seeded/{CHALLENGER_VERSION}",
        "golden_set_validation/nightly/champion",
    ]
    with db.transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.experiment_decisions
                   (experiment_id, decision_date, outcome, source, from_share, to_share, reason, reasons,
                    statistics, policy, decided_by, run_id)
               VALUES (%s, %s, %s, 'auto', %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s, %s)""",
            (
                experiment["experiment_id"], decision_day, decision.outcome, decision.from_share,
                decision.to_share, decision.reason, json.dumps(list(decision.reasons)),
                json.dumps(stats.to_dict()), json.dumps(Policy().to_dict()),
                "experiment_evaluation/scheduled", "scheduled__seeded",
            ),
        )  # fmt: skip
        for i, (gid, verdict) in enumerate(zip(golden_ids, ("pass", "fail"), strict=True)):
            cur.execute(
                """INSERT INTO ml.golden_runs (golden_run_id, version_id, dag_id, run_id, golden_version,
                                               verdict, reasons, checks, metrics, report_uri, created_at)
                   VALUES (%s, %s, %s, %s, 'taxonomy-v1', %s, %s::jsonb, '[]'::jsonb, %s::jsonb, %s, %s)""",
                (
                    gid, CHALLENGER_VERSION if i == 0 else CHAMPION_VERSION, gid.split("/")[0], gid.split("/")[1],
                    verdict, json.dumps([] if verdict == "pass" else ["critical accuracy 0.97 < 0.98"]),
                    json.dumps({"accuracy": 0.963 - i / 100, "critical_accuracy": 0.985 - i / 50, "ece": 0.04}),
                    report_uri if i == 0 else "s3://bucket/golden_set_validation/nightly/report.json",
                    as_of - timedelta(hours=2 + 24 * i),
                ),
            )  # fmt: skip
        if _exists(cur, "ml.alerts"):
            for i, status in enumerate(("open", "open", "resolved")):
                opened = as_of - timedelta(hours=5 + 10 * i)
                cur.execute(
                    """INSERT INTO ml.alerts (detector, key, status, metric, value, threshold, baseline,
                                              window_start, window_end, opened_at, last_seen_at, resolved_at,
                                              occurrences, summary, evidence, opened_by, open_notified_at)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '{}'::jsonb,
                               'regression_monitor/scheduled', %s)""",
                    (
                        ("latency_p95", "accuracy_drop", "calibration")[i], "all", status,
                        ("p95_ms", "accuracy", "ece")[i], (612.0, 0.89, 0.12)[i], (500.0, 0.02, 0.10)[i],
                        (340.0, 0.92, 0.05)[i], opened - timedelta(hours=24), opened, opened, opened,
                        opened + timedelta(hours=1) if status == "resolved" else None, 3 - i,
                        ("p95 latency 612 ms above 500 ms", "accuracy down 3.0 points for 24 h",
                         "calibration error 12% above 10%")[i],
                        opened,
                    ),
                )  # fmt: skip
        if _exists(cur, "ml.review_queue"):
            cur.execute(
                """INSERT INTO ml.review_queue (prediction_id, email_id, owner_user_id, model_version,
                           predicted_category, confidence, uncertainty, criticality, problem_factor, priority,
                           reviewer_id, queue_date, status, predicted_at, enqueued_at, enqueued_by,
                           resolved_at, resolution)
                   SELECT p.prediction_id, p.email_id, p.user_id, p.model_version, p.category, p.confidence,
                          1 - p.confidence, 1, 1, 1 - p.confidence,
                          'reviewer-' || (row_number() OVER (ORDER BY p.prediction_id) %% 3),
                          (p.predicted_at AT TIME ZONE 'UTC')::date,
                          CASE WHEN row_number() OVER (ORDER BY p.prediction_id) %% 4 = 0
                               THEN 'resolved' ELSE 'pending' END,
                          p.predicted_at, p.predicted_at + interval '5 minutes', 'review_queue/scheduled',
                          CASE WHEN row_number() OVER (ORDER BY p.prediction_id) %% 4 = 0
                               THEN p.predicted_at + interval '2 hours' END,
                          CASE WHEN row_number() OVER (ORDER BY p.prediction_id) %% 4 = 0 THEN 'correction' END
                   FROM app.predictions p
                   WHERE p.confidence >= 0 AND p.confidence < 0.7 AND p.user_id IS NOT NULL
                     AND p.predicted_at >= %s AND p.predicted_at < %s
                   ORDER BY p.prediction_id
                   LIMIT 40""",
                (as_of - timedelta(days=3), as_of),
            )
    return experiment["experiment_id"], golden_ids, report_path


def put_pii_subject(conn: Any, prediction_id: str) -> None:
    """Give one prediction's email a subject with an email address and a phone number."""
    with db.transaction(conn) as cur:
        cur.execute(
            "UPDATE app.emails SET subject = %s WHERE email_id = (SELECT email_id FROM app.predictions WHERE prediction_id = %s)",
            (PII_SUBJECT, prediction_id),
        )


def seed_all(
    conn: Any,
    *,
    n_feedback: int,
    seed: int,
    start: datetime,
    end: datetime,
    as_of: datetime,
    stage_started_at: datetime,
    report_dir: Path | None = None,
) -> Seeded:
    """App data from the generator plus every ml table the dashboard reads."""
    items = load_generated(conn, n_feedback, seed, start, end)
    experiment_id, golden_ids, report_path = seed_ml(
        conn, as_of=as_of, stage_started_at=stage_started_at, report_dir=report_dir
    )
    return Seeded(items, experiment_id, stage_started_at, golden_ids, report_path)
