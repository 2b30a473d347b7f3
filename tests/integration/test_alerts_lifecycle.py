"""Alert lifecycle on a real PostgreSQL: one incident -> one opening, one resolution.

Simulated production traffic (:mod:`tests.traffic`) is loaded into the app tables and the
detectors run hour by hour through the database path (:func:`feedbackloop.monitoring.run_detectors`
then :func:`feedbackloop.alerts.apply_results`), as the ``regression_monitor`` DAG does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from tests.traffic import Regression, load_traffic, simulate_traffic

from feedbackloop import alerts, db, monitoring
from feedbackloop.alert_messages import alert_message, validate_blocks

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 9
SLOW_FROM = DAYS * 24 - 8  # latency x2.5 during three hours, ending five hours before the end
SLOW_TO = SLOW_FROM + 3


def _at(hour: int) -> datetime:
    return START + timedelta(hours=hour)


@pytest.fixture
def traffic_db(pg_dsn):
    frame = simulate_traffic(
        31, START, DAYS * 24, rate=80.0, regressions=[Regression(SLOW_FROM, SLOW_TO, latency_factor=2.5)]
    )
    with db.connect(pg_dsn) as conn:
        load_traffic(conn, frame)
    return pg_dsn, frame


def _evaluate(conn, end: datetime, actor: str) -> list[alerts.AlertAction]:
    summary = monitoring.run_detectors(conn, end)
    results = [monitoring.DetectorResult.from_dict(r) for r in summary["results"]]
    return alerts.apply_results(conn, results, end, actor)


def _rows(conn):
    return conn.execute(
        "SELECT alert_id, detector, key, status, opened_at, last_seen_at, resolved_at, occurrences, opened_by, resolved_by "
        "FROM ml.alerts ORDER BY alert_id"
    ).fetchall()


def test_one_incident_opens_once_repeats_quietly_and_resolves_once(traffic_db):
    dsn, _ = traffic_db
    hours = range(SLOW_FROM - 2, DAYS * 24 + 1)  # before, during and after the slow hours
    messages: list[tuple[str, str, str]] = []
    with db.connect(dsn) as conn:
        for hour in hours:
            actions = _evaluate(conn, _at(hour), f"regression_monitor/run-{hour}")
            messages += [(a.action, a.detector, a.key) for a in actions if a.action != alerts.NONE]
            # A retry of the same hour changes nothing and sends nothing.
            retry = _evaluate(conn, _at(hour), f"regression_monitor/run-{hour}")
            assert [a.action for a in retry if a.action != alerts.NONE] == []
        rows = _rows(conn)

    assert messages == [("open", "latency_p95", "all"), ("resolve", "latency_p95", "all")]
    assert len(rows) == 1
    (
        alert_id,
        detector,
        key,
        status,
        opened_at,
        last_seen,
        resolved_at,
        occurrences,
        opened_by,
        resolved_by,
    ) = rows[0]
    assert (detector, key, status) == ("latency_p95", "all", "resolved")
    assert opened_at == _at(SLOW_FROM + 1)  # the first hour fully inside the slow period
    assert last_seen == _at(SLOW_TO)
    assert occurrences == SLOW_TO - SLOW_FROM  # one per firing evaluation, retries not counted
    assert resolved_at == _at(SLOW_TO + 1)
    assert (opened_by, resolved_by) == (
        f"regression_monitor/run-{SLOW_FROM + 1}",
        f"regression_monitor/run-{SLOW_TO + 1}",
    )


def test_rerunning_an_old_hour_after_resolution_does_not_reopen(traffic_db):
    dsn, _ = traffic_db
    with db.connect(dsn) as conn:
        for hour in range(SLOW_FROM, SLOW_TO + 2):
            _evaluate(conn, _at(hour), "regression_monitor/live")
        # Backfill / clear of a firing hour, after the incident was resolved.
        again = _evaluate(conn, _at(SLOW_FROM + 2), "regression_monitor/backfill")
        # An out-of-date "clear" (an hour before the incident) cannot resolve anything either.
        before = _evaluate(conn, _at(SLOW_FROM - 1), "regression_monitor/backfill")
        rows = _rows(conn)
    latency = [a for a in again if a.detector == "latency_p95"][0]
    assert (latency.action, latency.reason) == ("none", "already covered")
    assert [a.action for a in before if a.action != "none"] == []
    assert len(rows) == 1 and rows[0][3] == "resolved"


def test_notifications_are_pending_until_delivered_and_validate(traffic_db):
    dsn, _ = traffic_db
    with db.connect(dsn) as conn:
        _evaluate(conn, _at(SLOW_FROM + 1), "regression_monitor/a")
        pending = alerts.pending_notifications(conn, _at(SLOW_FROM + 1))
        assert [(k, i["detector"]) for k, i in pending] == [("open", "latency_p95")]
        kind, incident = pending[0]
        payload = alert_message(kind, incident, "http://localhost:8080/dags/x/runs/y")
        assert validate_blocks(payload) == []
        assert "p95 latency" in payload["text"]
        # Slack was down: nothing marked, the next evaluation still has it pending.
        _evaluate(conn, _at(SLOW_FROM + 2), "regression_monitor/b")
        assert len(alerts.pending_notifications(conn, _at(SLOW_FROM + 2))) == 1
        assert alerts.mark_notified(conn, incident["alert_id"], "open", datetime.now(UTC)) is True
        assert alerts.mark_notified(conn, incident["alert_id"], "open", datetime.now(UTC)) is False
        assert alerts.pending_notifications(conn, _at(SLOW_FROM + 2)) == []
        for hour in range(SLOW_FROM + 3, SLOW_TO + 2):
            _evaluate(conn, _at(hour), f"regression_monitor/{hour}")
        pending = alerts.pending_notifications(conn, _at(SLOW_TO + 1))
        assert [k for k, _ in pending] == ["resolve"]
        resolved = alert_message("resolve", pending[0][1])
        assert validate_blocks(resolved) == []
        assert resolved["text"].startswith("✅ Resolved: p95 latency")
        # A resolution nobody could deliver for a day is dropped, not sent a day late.
        assert alerts.pending_notifications(conn, _at(SLOW_TO + 1) + timedelta(hours=25)) == []


def test_at_most_one_open_incident_per_detector_and_key(pg_dsn):
    row = {
        "metric": "ece", "window_start": START, "window_end": START + timedelta(hours=1), "at": START,
        "summary": "s", "evidence": "{}", "actor": "t",
    }  # fmt: skip
    sql = """INSERT INTO ml.alerts (detector, key, status, metric, window_start, window_end, opened_at,
                                    last_seen_at, summary, evidence, opened_by)
             VALUES ('calibration_error', 'all', 'open', %(metric)s, %(window_start)s, %(window_end)s, %(at)s,
                     %(at)s, %(summary)s, %(evidence)s::jsonb, %(actor)s)"""
    with db.connect(pg_dsn) as conn:
        conn.execute(sql, row)
        conn.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(sql, row)
        conn.rollback()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "UPDATE ml.alerts SET status = 'resolved'"  # resolved without a resolution time
            )


def test_database_baseline_matches_the_pure_one(traffic_db):
    dsn, _ = traffic_db
    end = _at(DAYS * 24)
    b_start, b_end = monitoring.baseline_period(end)
    with db.connect(dsn) as conn:
        from_sql = monitoring.load_baseline(conn, b_start, b_end)
        frame = monitoring.load_window(conn, b_start, b_end)
    pure = monitoring.summarize_baseline(frame, b_start, b_end)
    assert from_sql.to_dict() == pure.to_dict()
    assert from_sql.labelled > 1000


def test_window_reflects_feedback_known_at_the_evaluation_time(traffic_db):
    dsn, frame = traffic_db
    end = _at(DAYS * 24)
    with db.connect(dsn) as conn:
        window = monitoring.load_window(conn, end - timedelta(hours=24), end)
    assert list(window.columns) == list(monitoring.WINDOW_COLUMNS)
    sim = frame[(frame["predicted_at"] >= end - timedelta(hours=24)) & (frame["predicted_at"] < end)]
    assert len(window) == len(sim)
    # Feedback given after ``end`` does not count yet.
    known = sim["has_feedback"] & (sim["feedback_at"] < end)
    assert int(window["has_feedback"].sum()) == int(known.sum())
    assert int(window["correct"].sum()) == int((sim["correct"] & known).sum())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(START.replace(tzinfo=None), START + timedelta(hours=1), id="naive-start"),
        pytest.param(START + timedelta(hours=1), START, id="reversed"),
    ],
)
def test_load_window_rejects_bad_bounds(pg_dsn, start, end):
    with db.connect(pg_dsn) as conn, pytest.raises(ValueError):
        monitoring.load_window(conn, start, end)


def test_results_stored_with_the_incident_are_json(traffic_db):
    dsn, _ = traffic_db
    with db.connect(dsn) as conn:
        _evaluate(conn, _at(SLOW_FROM + 1), "regression_monitor/a")
        (evidence,) = conn.execute("SELECT evidence FROM ml.alerts").fetchone()
    assert evidence["status"] == "firing" and evidence["n"] > 50
    json.dumps(evidence, allow_nan=False)
