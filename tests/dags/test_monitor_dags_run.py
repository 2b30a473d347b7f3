"""Full ``dag.test()`` runs of ``regression_monitor`` and ``review_queue`` on a seeded database.

The app tables hold 9 days of simulated production traffic (:mod:`tests.traffic`) whose
latency is 2.5x normal during the two hours before and after ``T1``. Slack is a loopback
fake webhook (:mod:`tests.fakes.slack_server`) wired in as the ``slack_alerts`` connection,
or a closed port on 127.0.0.1 when the test wants Slack down.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from tests.fakes.slack_server import FakeSlackWebhook
from tests.support import use_feedback_db
from tests.traffic import Regression, load_traffic, simulate_traffic

from feedbackloop import db
from feedbackloop.alert_messages import validate_blocks

pytestmark = pytest.mark.slow

START = datetime(2026, 6, 1, tzinfo=UTC)
T1 = START + timedelta(days=9)
SLOW = Regression(9 * 24 - 1, 9 * 24 + 1, latency_factor=2.5)  # the hours ending at T1 and T1 + 1 h


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slack_down(monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"http://127.0.0.1:{_closed_port()}/hook",
                "password": "T0/B0/x",
            }
        ),
    )


@pytest.fixture(scope="module")
def traffic():
    return simulate_traffic(11, START, 9 * 24 + 4, rate=80.0, regressions=[SLOW])


@pytest.fixture
def seeded_db(pg_dsn, monkeypatch, traffic):
    with db.connect(pg_dsn) as conn:
        load_traffic(conn, traffic)
    use_feedback_db(monkeypatch, pg_dsn)
    return pg_dsn


@pytest.fixture
def dag_for(dagbag):
    """``dag_for(dag_id, retries=0)``: the DAG with its tasks' retries set, restored afterwards
    (the DagBag is shared by the whole session)."""
    saved: dict[int, tuple] = {}

    def get(dag_id: str, retries: int = 0):
        dag = dagbag.dags[dag_id]
        for task in dag.tasks:  # a failure is a bug to see at once, not to retry for minutes
            saved.setdefault(id(task), (task, task.retries, task.retry_delay, task.retry_exponential_backoff))
            task.retries = retries
            task.retry_delay = timedelta(0)
            task.retry_exponential_backoff = False
        return dag

    yield get
    for task, retries, delay, backoff in saved.values():
        task.retries, task.retry_delay, task.retry_exponential_backoff = retries, delay, backoff


def _states(dr) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def _alerts(dsn):
    with db.connect(dsn) as conn:
        return conn.execute(
            "SELECT detector, key, status, open_notified_at IS NOT NULL, resolve_notified_at IS NOT NULL "
            "FROM ml.alerts ORDER BY alert_id"
        ).fetchall()


def test_injected_regression_sends_one_alert_then_one_resolution(dag_for, seeded_db, monkeypatch):
    dag = dag_for("regression_monitor")
    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        delivered = []
        for end in (T1, T1 + timedelta(hours=1), T1 + timedelta(hours=2)):
            dr = dag.test(logical_date=end)
            assert dr.state == "success", _states(dr)
            delivered.append(len(slack.messages))
    # Opened at T1, suppressed at T1 + 1 h (still slow), resolved at T1 + 2 h.
    assert delivered == [1, 1, 2]
    assert slack.rejected == []
    opened, resolved = slack.messages
    for payload in (opened, resolved):
        assert validate_blocks(payload) == []
        buttons = [e["url"] for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert any("/dags/regression_monitor/runs/" in url for url in buttons)
        assert any(url.endswith("/feedbackloop/") for url in buttons)  # the model-quality dashboard
    assert opened["text"].startswith("🚨 p95 latency above the SLO")
    assert "500 ms" in json.dumps(opened, ensure_ascii=False)
    assert resolved["text"].startswith("✅ Resolved: p95 latency above the SLO")
    assert _alerts(seeded_db) == [("latency_p95", "all", "resolved", True, True)]


def test_slack_down_does_not_fail_the_run_and_the_alert_waits(dag_for, seeded_db, monkeypatch):
    dag = dag_for("regression_monitor")
    _slack_down(monkeypatch)
    dr = dag.test(logical_date=T1)
    assert dr.state == "success", _states(dr)
    assert set(_states(dr).values()) == {"success"}
    assert _alerts(seeded_db) == [("latency_p95", "all", "open", False, False)]  # recorded, not delivered
    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        dr = dag.test(logical_date=T1 + timedelta(hours=1))
    assert dr.state == "success"
    assert [m["text"][:30] for m in slack.messages] == ["🚨 p95 latency above the SLO: p"]
    assert _alerts(seeded_db) == [("latency_p95", "all", "open", True, False)]


def test_a_failed_run_notifies_once_not_per_retry(dag_for, seeded_db, monkeypatch):
    dag = dag_for("regression_monitor", retries=1)
    monkeypatch.setenv(
        "AIRFLOW_CONN_FEEDBACK_DB",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": _closed_port(),
                "login": "x",
                "schema": "x",
            }
        ),
    )
    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        dr = dag.test(logical_date=T1)
    states = _states(dr)
    assert dr.state == "failed"
    assert states["evaluate_regressions"] == "failed"
    assert states["record_alerts"] == states["notify_alerts"] == "upstream_failed"
    tries = {ti.task_id: ti.try_number for ti in dr.get_task_instances()}
    assert tries["evaluate_regressions"] == 2  # it was retried...
    assert len(slack.messages) == 1  # ...and the run still notified once
    message = slack.messages[0]
    assert validate_blocks(message) == []
    assert message["blocks"][0]["text"]["text"] == "❌ regression_monitor failed"
    body = json.dumps(message)
    assert "evaluate_regressions" in body and dr.run_id in body


def test_failure_callback_never_raises_when_slack_is_down(monkeypatch):
    from types import SimpleNamespace

    from feedbackloop_airflow.callbacks import failure_details, notify_dag_failure

    _slack_down(monkeypatch)
    context = {"dag": SimpleNamespace(dag_id="review_queue"), "run_id": "manual__x", "reason": "task_failure"}
    assert notify_dag_failure(context) is False  # not delivered, and no exception
    with FakeSlackWebhook() as slack:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        assert notify_dag_failure(context) is True
    assert [m["blocks"][0]["text"]["text"] for m in slack.messages] == ["❌ review_queue failed"]
    details = failure_details(context)
    assert details["task_id"] == "unknown task"
    assert details["log_url"].endswith("/dags/review_queue/runs/manual__x")
    # A run failed by a watcher task (feedback_retraining's pattern) points at the run, not the watcher.
    watcher = SimpleNamespace(task_id="watcher", try_number=1, log_url="http://localhost:8080/log")
    details = failure_details(
        {**context, "dag": SimpleNamespace(dag_id="feedback_retraining"), "ti": watcher}
    )
    assert details["log_url"].endswith("/dags/feedback_retraining/runs/manual__x")
    assert "a task of this run failed" in details["error"]
    failed = SimpleNamespace(task_id="gate", try_number=3, log_url="http://localhost:8080/log")
    details = failure_details({**context, "ti": failed})
    assert (details["task_id"], details["log_url"]) == ("gate", "http://localhost:8080/log")
    assert details["error"] == "task_failure: task 'gate' failed on attempt 3; the error is in the task log"


def test_review_queue_run_queues_within_caps_and_refreshes_stats(dag_for, seeded_db):
    dag = dag_for("review_queue")
    conf = {"daily_cap": 25, "per_reviewer_daily_cap": 2}
    dr = dag.test(logical_date=T1 + timedelta(hours=1), run_conf=conf)
    assert dr.state == "success", _states(dr)
    with db.connect(seeded_db) as conn:
        rows = conn.execute(
            "SELECT prediction_id, reviewer_id, owner_user_id, confidence, queue_date FROM ml.review_queue"
        ).fetchall()
        (contributors,) = conn.execute("SELECT count(*) FROM ml.contributor_stats").fetchone()
    assert len(rows) == 25
    assert len({r[0] for r in rows}) == 25
    per_reviewer: dict[str, int] = {}
    for _, reviewer, owner, confidence, day in rows:
        assert reviewer != owner and confidence < 0.70 and day == T1.date()
        per_reviewer[reviewer] = per_reviewer.get(reviewer, 0) + 1
    assert max(per_reviewer.values()) <= 2
    assert contributors > 100
