"""Full runs of ``experiment_evaluation`` with ``dag.test()``: what the registry says afterwards."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.integration.test_experiment_registry import _challenger, _champion
from tests.support import use_feedback_db

from feedbackloop import db

pytestmark = pytest.mark.slow

RUN_DATE = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def _run(dagbag, monkeypatch, dsn, conf):
    use_feedback_db(monkeypatch, dsn)
    dag = dagbag.dags["experiment_evaluation"]
    for task in dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    return dag.test(logical_date=RUN_DATE, run_conf=conf)


def _rows(dsn, sql):
    with db.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def live_experiment(pg_dsn):
    with db.connect(pg_dsn) as conn:
        _champion(conn, "v0")
        experiment = _challenger(conn, "v1")
    return experiment


def test_scheduled_run_with_too_little_traffic_records_continue(dagbag, monkeypatch, pg_dsn, live_experiment):
    dr = _run(dagbag, monkeypatch, pg_dsn, {})
    assert dr.state == "success"
    decisions = _rows(pg_dsn, "SELECT outcome, source FROM ml.experiment_decisions")
    assert decisions == [("continue", "auto")]
    aliases = dict(_rows(pg_dsn, "SELECT alias, version_id FROM ml.deployments"))
    assert aliases == {"champion": "v0", "challenger": "v1"}


def test_manual_rollback_through_the_form_is_applied_and_audited(dagbag, monkeypatch, pg_dsn, live_experiment):
    dr = _run(dagbag, monkeypatch, pg_dsn, {"action": "force_rollback", "reason": "complaints from support"})
    assert dr.state == "success"
    assert _rows(pg_dsn, "SELECT outcome, source FROM ml.experiment_decisions") == [("rollback", "manual")]
    aliases = dict(_rows(pg_dsn, "SELECT alias, version_id FROM ml.deployments"))
    assert aliases == {"champion": "v0"}
    history = _rows(pg_dsn, "SELECT action, reason FROM ml.deployment_history ORDER BY id DESC LIMIT 1")
    assert history[0][0] == "rollback"
    assert "complaints from support" in history[0][1]


def test_override_without_a_reason_fails_the_run(dagbag, monkeypatch, pg_dsn, live_experiment):
    dr = _run(dagbag, monkeypatch, pg_dsn, {"action": "force_promote", "reason": ""})
    assert dr.state == "failed"
    assert _rows(pg_dsn, "SELECT count(*) FROM ml.experiment_decisions") == [(0,)]
    assert dict(_rows(pg_dsn, "SELECT alias, version_id FROM ml.deployments"))["challenger"] == "v1"
