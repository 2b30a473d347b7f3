"""Slack faults over ``feedback_retraining`` runs: the webhook errors, drops or is down.

A Slack outage must never change a run's outcome (a failed run stays failed, a good run
stays green), and a short hiccup (a 5xx, a 429 with ``Retry-After``, a dropped connection)
must not cost the one message a run sends, nor send it twice.

The failing runs fail for real and fast: the feedback DB's connection points at a closed
port on 127.0.0.1, so ``extract_feedback`` uses up its retries in about a second.
"""

from __future__ import annotations

import json
import socket

import pytest
from tests.reliability.conftest import STAGE_TASKS, max_tries, run_dag, states, tries
from tests.reliability.fault_figures import record
from tests.support import RUN_DATE

pytestmark = pytest.mark.slow

STAGES = STAGE_TASKS


@pytest.fixture(autouse=True)
def _quick_slack_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production retry count and handlers, with a 20x shorter backoff and no jitter (the
    retries are under test, not the waiting)."""
    from slack_sdk.http_retry.jitter import RandomJitter

    import feedbackloop_airflow.operators as operators

    monkeypatch.setattr(operators, "SLACK_RETRY_BACKOFF_S", 0.025)
    monkeypatch.setattr(RandomJitter, "recalculate", lambda self, duration: duration)  # no 0-1 s jitter


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _point_at_closed_port(monkeypatch: pytest.MonkeyPatch, conn_var: str, conn: dict) -> None:
    monkeypatch.setenv(conn_var, json.dumps({**conn, "host": "127.0.0.1", "port": _closed_port()}))


def _slack_down(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps(
            {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{port}/hook", "password": "T0/B0/x"}
        ),
    )


def _feedback_db_down(monkeypatch: pytest.MonkeyPatch) -> None:
    _point_at_closed_port(
        monkeypatch,
        "AIRFLOW_CONN_FEEDBACK_DB",
        {"conn_type": "postgres", "login": "postgres", "schema": "postgres"},
    )


def _notify_result(dr) -> dict:
    """What ``notify`` returned (its XCom): the outcome and whether Slack took the message."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(run_id=dr.run_id, key="return_value", dag_ids=dr.dag_id, task_ids="notify")
    with create_session() as session:
        return XComModel.deserialize_value(session.scalars(query).one())


def _assert_failed_in_extract(dag, dr) -> None:
    st, attempts, n = states(dr), tries(dr), max_tries(dag, "extract_feedback")
    assert dr.state == "failed", st
    assert st["extract_feedback"] == "failed" and attempts["extract_feedback"] == n
    assert {st[t] for t in STAGES[1:]} == {"upstream_failed"}
    assert st["notify"] == "success" and st["watcher"] == "failed"
    reasons = dag.attempt_log.reasons("extract_feedback")
    assert len(reasons) == n, reasons
    assert all(r.startswith("OperationalError") and "refused" in r for r in reasons), reasons


def test_slack_errors_and_a_dropped_connection_still_deliver_exactly_one_message(
    retrying_dag, env, slack, monkeypatch
):
    _feedback_db_down(monkeypatch)
    slack.retry_after_s = 0
    slack.inject("503", "drop", "429")  # then Slack answers again

    dr = run_dag(retrying_dag)

    _assert_failed_in_extract(retrying_dag, dr)
    assert sum(slack.faults_injected.values()) == 3
    assert len(slack.messages) == 1, [m["text"] for m in slack.messages]  # delivered, and only once
    (message,) = slack.messages
    assert message["text"].startswith("❌ Retraining run failed")
    assert "stage 'extract' did not finish" in json.dumps(message, ensure_ascii=False)
    assert _notify_result(dr) == {"outcome": "failed", "slack_sent": True}
    record(
        "slack: 503 + dropped connection + 429 while notifying a failed run",
        test="test_faults_slack.py::test_slack_errors_and_a_dropped_connection_still_deliver_exactly_one_message",
        faults_injected=sum(slack.faults_injected.values()) + max_tries(retrying_dag, "extract_feedback"),
        run_state=dr.state,
        expected_state="failed",
        retried_tasks={"extract_feedback": max_tries(retrying_dag, "extract_feedback") - 1},
        notifications=len(slack.messages),
        detail={"feedback_db": "closed port (3 refused connections)"},
    )


def test_slack_down_leaves_a_failed_run_failed_and_the_message_logged(retrying_dag, env, monkeypatch):
    _feedback_db_down(monkeypatch)
    _slack_down(monkeypatch)

    dr = run_dag(retrying_dag)

    _assert_failed_in_extract(retrying_dag, dr)
    assert _notify_result(dr) == {"outcome": "failed", "slack_sent": False}
    record(
        "slack: down (connection refused) while a run fails",
        test="test_faults_slack.py::test_slack_down_leaves_a_failed_run_failed_and_the_message_logged",
        faults_injected=1 + max_tries(retrying_dag, "extract_feedback"),
        run_state=dr.state,
        expected_state="failed",
        retried_tasks={"extract_feedback": max_tries(retrying_dag, "extract_feedback") - 1},
        notifications=0,
        detail={"feedback_db": "closed port (3 refused connections)"},
    )


def test_slack_down_does_not_fail_a_good_run(retrying_dag, env, monkeypatch):
    """The stages are marked successful (dag.test's ``mark_success_pattern``): only the
    outcome of ``notify`` against a dead webhook is under test here."""
    _slack_down(monkeypatch)

    dr = retrying_dag.test(
        logical_date=RUN_DATE,
        mark_success_pattern="|".join(STAGES),
    )

    st = states(dr)
    assert dr.state == "success", st
    assert st["notify"] == "success" and st["watcher"] == "skipped"
    assert _notify_result(dr)["slack_sent"] is False
    assert retrying_dag.attempt_log == []
    record(
        "slack: down while a run succeeds",
        test="test_faults_slack.py::test_slack_down_does_not_fail_a_good_run",
        faults_injected=1,
        run_state=dr.state,
        expected_state="success",
        notifications=0,
    )
