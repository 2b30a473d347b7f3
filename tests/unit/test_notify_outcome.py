"""What the retraining run's Slack summary says went wrong (NotifyOperator's outcome)."""

from __future__ import annotations

import json

from feedbackloop.slack_messages import retraining_summary
from feedbackloop_airflow.operators import _outcome

TASKS = {
    "extract": "extract_feedback",
    "validate": "validate_feedback",
    "rewards": "compute_rewards",
    "gate": "gate",
    "deploy": "deploy_challenger",
}
QUARANTINE = "data-quality gate failed: quarantine share 12.0% exceeds the limit 5.0% (12 of 100 rows)"


def test_a_stage_that_failed_with_a_reason_is_named_with_that_reason() -> None:
    stages = {"extract": {"rows": 100}, "validate": {"failed": True, "error": QUARANTINE, "rows_read": 100}}

    assert _outcome(stages, TASKS) == "failed"

    assert stages["error_reasons"] == [f"stage 'validate' failed: {QUARANTINE}"]
    message = json.dumps(retraining_summary("feedback_retraining", "manual__1", "failed", stages, None))
    assert "stage 'validate' failed" in message and "quarantine share 12.0%" in message
    assert "rewards" not in stages["error_reasons"][0]  # not the next stage, which never ran


def test_a_stage_without_a_summary_did_not_finish() -> None:
    stages = {"extract": {"rows": 100}}

    assert _outcome(stages, TASKS) == "failed"

    assert stages["error_reasons"] == ["stage 'validate' did not finish; see its task log"]


def test_a_deployment_or_a_failed_gate_is_reported_as_such() -> None:
    assert _outcome({"deploy": {"alias": "challenger"}}, TASKS) == "deployed"
    assert _outcome({"deploy": {"dry_run": True}}, TASKS) == "dry_run"
    assert _outcome({"gate": {"passed": False}}, TASKS) == "gate_failed"
