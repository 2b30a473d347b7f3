"""Full runs of ``golden_set_validation`` with ``dag.test()`` against a real PostgreSQL.

What on-call and the data team would check: the run's state, the rows in ``ml.golden_runs``,
the staged reports and plots, and the Slack message a loopback webhook received.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from tests.fakes.slack_server import FakeSlackWebhook
from tests.support import use_feedback_db
from tests.tiny_models import train_tiny_model

from feedbackloop import db, registry
from feedbackloop.golden import golden_version
from feedbackloop.staging import run_key

pytestmark = pytest.mark.slow

RUN_DATE = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DAG_ID = "golden_set_validation"
# Thresholds both tiny models clear, so only what a test sets up (a regression) can fail.
LENIENT = {"min_accuracy": 0.5, "min_critical_accuracy": 0.5, "max_ece": 0.5, "max_p95_latency_ms": 5000.0}
PNGS = ("category_accuracy.png", "confusion_matrix.png", "reliability.png", "latency.png")


@pytest.fixture
def env(monkeypatch, tmp_path, pg_dsn):
    """Feedback DB, staging and a fake Slack webhook wired in as Airflow connections."""
    use_feedback_db(monkeypatch, pg_dsn)
    staging = tmp_path / "staging"
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", staging.as_uri())
    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        yield {"dsn": pg_dsn, "staging": staging, "slack": slack}


def _register(env, version_id: str, per_category: int, alias: str) -> dict:
    """Stage a tiny local model and point ``alias`` at it, as the retraining DAG would."""
    spec = train_tiny_model(env["staging"] / "models" / version_id, version_id, per_category)
    with db.connect(env["dsn"]) as conn:
        conn.execute(
            """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, report_uri, gate_passed)
               VALUES (%s, %s::jsonb, 'feedback_retraining', %s, 'file:///reports/x', true)""",
            (version_id, json.dumps(spec), f"manual__{version_id}"),
        )
        conn.commit()
        if alias == "champion":
            conn.execute(
                """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
                   VALUES ('champion', %s, 1, 'test', 'seeded champion')""",
                (version_id,),
            )
            conn.commit()
        else:
            registry.deploy_challenger(conn, version_id, 0.05, "test", "seeded canary")
    return spec


def _run(dagbag, monkeypatch, conf=None):
    dag = dagbag.dags[DAG_ID]
    for task in dag.tasks:  # a failure here is a bug to see at once, not to retry for minutes
        monkeypatch.setattr(task, "retries", 0)  # restored afterwards: the DagBag is shared
    dr = dag.test(logical_date=RUN_DATE, run_conf=conf or {})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    return dr, states


def _golden_runs(dsn):
    with db.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT golden_run_id, version_id, dag_id, golden_version, verdict, reasons, checks, metrics, report_uri "
            "FROM ml.golden_runs ORDER BY created_at, golden_run_id"
        ).fetchall()
    keys = (
        "golden_run_id",
        "version_id",
        "dag_id",
        "golden_version",
        "verdict",
        "reasons",
        "checks",
        "metrics",
        "report_uri",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def test_no_champion_yet_succeeds_records_nothing_and_says_so(dagbag, env, monkeypatch):
    dr, states = _run(dagbag, monkeypatch, LENIENT)
    assert dr.state == "success", states
    assert states == {"validate_champion": "success", "validate_challenger": "success", "alert": "success"}
    assert _golden_runs(env["dsn"]) == []
    run_dir = env["staging"] / DAG_ID / run_key(dr.run_id)
    champion = json.loads((run_dir / "champion" / "summary.json").read_text())
    assert (champion["status"], champion["reason"]) == ("no_model", "no champion yet")
    assert (
        json.loads((run_dir / "challenger" / "summary.json").read_text())["reason"]
        == "no challenger deployed"
    )
    assert env["slack"].messages == []


def test_champion_and_challenger_are_validated_recorded_and_reported(dagbag, env, monkeypatch):
    champion = _register(env, "tiny-weak", 5, "champion")
    challenger = _register(env, "tiny-good", 30, "challenger")

    dr, states = _run(dagbag, monkeypatch, LENIENT)
    assert dr.state == "success", states
    rows = {r["version_id"]: r for r in _golden_runs(env["dsn"])}
    assert set(rows) == {champion["version_id"], challenger["version_id"]}
    for alias, spec in (("champion", champion), ("challenger", challenger)):
        row = rows[spec["version_id"]]
        assert row["golden_run_id"] == f"{DAG_ID}/{dr.run_id}/{spec['version_id']}"
        assert (row["dag_id"], row["verdict"], row["golden_version"]) == (DAG_ID, "pass", golden_version())
        assert row["metrics"]["alias"] == alias
        assert row["metrics"]["n_emails"] == 136
        checks = {c["name"]: c for c in row["checks"]}
        assert checks["regression:accuracy"]["skipped"] is True  # first run of this version
        assert checks["accuracy"]["threshold"] == 0.5
        run_dir = env["staging"] / DAG_ID / run_key(dr.run_id) / alias
        assert row["report_uri"] == (run_dir / "report.json").as_uri()
        report = json.loads((run_dir / "report.json").read_text())
        assert report["decision"]["passed"] is True
        assert report["context"]["alias"] == alias
        assert "<svg" in (run_dir / "report.html").read_text()
        for name in PNGS:
            assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    # The champion is the reference, not "waiting for a champion"; the challenger got the
    # paired test against it (on the champion's staged evaluation).
    champion_checks = {c["name"]: c for c in rows[champion["version_id"]]["checks"]}
    assert "no champion yet" not in rows[champion["version_id"]]["reasons"]
    assert "this model is the champion" in champion_checks["paired:overall"]["detail"]
    challenger_dir = env["staging"] / DAG_ID / run_key(dr.run_id) / "challenger"
    assert not (challenger_dir / "champion_eval.json").exists()  # reused, not re-evaluated
    challenger_checks = {c["name"]: c for c in rows[challenger["version_id"]]["checks"]}
    assert challenger_checks["paired:overall"]["skipped"] is False
    assert challenger_checks["paired:overall"]["passed"] is True
    assert env["slack"].messages == []


def test_regression_against_the_last_run_alerts_slack_and_fails_the_run(dagbag, env, monkeypatch):
    champion = _register(env, "tiny-good", 30, "champion")
    # Last night's run of the same version on the same golden set was clearly better.
    previous = {
        "accuracy": 0.99,
        "critical_categories": ["phishing"],
        "slices": {
            "overall": {"n": 136, "correct": 135, "accuracy": 135 / 136, "ci_low": 0.96, "ci_high": 1.0},
            "critical": {"n": 34, "correct": 34, "accuracy": 1.0, "ci_low": 0.9, "ci_high": 1.0},
            "category:phishing": {"n": 9, "correct": 9, "accuracy": 1.0, "ci_low": 0.7, "ci_high": 1.0},
        },
    }
    with db.connect(env["dsn"]) as conn:
        conn.execute(
            """INSERT INTO ml.golden_runs (golden_run_id, version_id, dag_id, run_id, golden_version, verdict,
                                          reasons, checks, metrics, report_uri, created_at)
               VALUES (%s, %s, %s, %s, %s, 'pass', '[]', '[]', %s::jsonb, 'file:///old/report.json',
                       now() - interval '1 day')""",
            (
                f"{DAG_ID}/scheduled__prev/tiny-good",
                "tiny-good",
                DAG_ID,
                "scheduled__prev",
                golden_version(),
                json.dumps(previous),
            ),
        )
        conn.commit()

    dr, states = _run(dagbag, monkeypatch, LENIENT)
    assert dr.state == "failed"
    assert states == {"validate_champion": "success", "validate_challenger": "success", "alert": "failed"}

    row = next(r for r in _golden_runs(env["dsn"]) if r["golden_run_id"] == f"{DAG_ID}/{dr.run_id}/tiny-good")
    assert row["verdict"] == "fail"
    checks = {c["name"]: c for c in row["checks"]}
    assert checks["accuracy"]["passed"] is True  # above the (lenient) threshold ...
    assert checks["regression:accuracy"]["passed"] is False  # ... but worse than last night
    assert checks["regression:accuracy"]["value"] > 0.02
    assert any(r.startswith("regression:accuracy: accuracy on 'overall' dropped") for r in row["reasons"])

    slack = env["slack"]
    assert slack.rejected == []
    assert len(slack.messages) == 1
    message = slack.messages[0]
    assert message["text"].startswith("📉 Golden-set validation: champion regressed")
    header = message["blocks"][0]["text"]["text"]
    assert header == "📉 Golden-set validation: champion regressed"
    body = json.dumps(message["blocks"], ensure_ascii=False)
    assert "`tiny-good`" in body and "regression:accuracy" in body
    assert "scheduled__prev" in body  # names the run it was compared with
    assert "challenger: no challenger deployed" in body
    assert slack.requests[0]["path"] == f"/hook/{slack.token}"
    assert champion["version_id"] == "tiny-good"
