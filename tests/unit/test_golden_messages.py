"""The nightly validation's Slack alert: when it is sent, what it says, and Block Kit limits."""

from __future__ import annotations

import json

import pytest
from tests.fakes.slack_server import block_kit_problems

from feedbackloop.golden_messages import golden_validation_alert, needs_alert, problems

PASSED = {
    "alias": "champion",
    "status": "validated",
    "version_id": "v1",
    "passed": True,
    "below_thresholds": False,
    "regressed": False,
    "accuracy": 0.97,
    "golden_version": "sha256:abc",
}
NO_CHALLENGER = {
    "alias": "challenger",
    "status": "no_model",
    "reason": "no challenger deployed",
    "passed": None,
}
REGRESSION_CHECK = {
    "name": "regression:accuracy",
    "value": 0.05,
    "op": "<=",
    "threshold": 0.02,
    "detail": "accuracy on 'overall' dropped: 0.9900 in run scheduled__x, 0.9400 now",
}


def _outcome(**changes):
    return {**PASSED, "passed": False, **changes}


REGRESSED = _outcome(
    regressed=True,
    accuracy=0.94,
    previous_accuracy=0.99,
    failed_checks=[REGRESSION_CHECK],
    previous_golden_run_id="golden_set_validation/scheduled__x/v1",
    report_html_uri="s3://bucket/golden_set_validation/run/champion/report.html",
    png_uris={"latency.png": "s3://bucket/l.png"},
)
BELOW = _outcome(
    alias="challenger",
    version_id="v2",
    below_thresholds=True,
    accuracy=0.9,
    failed_checks=[{"name": "accuracy", "value": 0.9, "op": ">=", "threshold": 0.95, "detail": "x"}],
)
MISSING = {"alias": "champion", "status": "missing", "reason": "task 'validate_champion' did not finish"}


@pytest.mark.parametrize(
    ("outcome", "alert", "found"),
    [
        pytest.param(PASSED, False, [], id="passed"),
        pytest.param(NO_CHALLENGER, False, [], id="nothing-deployed"),
        pytest.param(REGRESSED, True, ["regressed"], id="regressed"),
        pytest.param(BELOW, True, ["below thresholds"], id="below-thresholds"),
        pytest.param(
            _outcome(below_thresholds=True, regressed=True),
            True,
            ["below thresholds", "regressed"],
            id="both",
        ),
        pytest.param(MISSING, True, ["not validated"], id="task-did-not-finish"),
    ],
)
def test_which_outcomes_alert(outcome, alert, found):
    assert needs_alert(outcome) is alert
    assert problems(outcome) == found


def test_no_message_when_nothing_is_wrong():
    assert golden_validation_alert("golden_set_validation", "r", [PASSED, NO_CHALLENGER]) is None
    assert golden_validation_alert("golden_set_validation", "r", []) is None


def test_regression_message_names_the_model_the_drop_and_the_run_compared_with():
    payload = golden_validation_alert(
        "golden_set_validation",
        "scheduled__y",
        [REGRESSED, NO_CHALLENGER],
        run_url="http://airflow.local/run",
    )
    assert block_kit_problems(payload) == []
    assert (
        payload["text"]
        == "📉 Golden-set validation: champion regressed (golden_set_validation / scheduled__y)"
    )
    blocks = payload["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "emoji": True, "text": "📉 Golden-set validation: champion regressed"},
    }
    assert "on golden set `sha256:abc`" in blocks[1]["text"]["text"]
    fields = [f["text"] for f in blocks[3]["fields"]]
    assert fields[:3] == ["*Champion*\n`v1`", "*Problem*\nregressed", "*Accuracy*\n99.0% → 94.0%"]
    failed = blocks[4]["text"]["text"]
    assert failed.startswith("*Failed checks*\n• `regression:accuracy`: accuracy on 'overall' dropped")
    context = json.dumps(blocks[5])
    assert "Compared with: golden_set_validation/scheduled__x/v1" in context
    assert "s3://bucket/l.png" in context
    assert "challenger: no challenger deployed" in json.dumps(blocks[6])
    assert blocks[-1]["elements"][0]["url"] == "http://airflow.local/run"


def test_threshold_failure_uses_the_stop_icon_and_shows_value_and_threshold():
    payload = golden_validation_alert("golden_set_validation", "r", [PASSED, BELOW])
    assert payload["text"].startswith("⛔ Golden-set validation: challenger below thresholds")
    body = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "• `accuracy` = 0.9000 (required &gt;= 0.95)" in body  # Slack shows &gt; as >
    assert "champion `v1`: passed (accuracy 97.0%)" in body


def test_unvalidated_champion_is_an_alert():
    payload = golden_validation_alert("golden_set_validation", "r", [MISSING, NO_CHALLENGER])
    assert payload["text"].startswith("⛔ Golden-set validation: champion not validated")
    assert "did not finish" in json.dumps(payload["blocks"])


def test_data_cannot_become_mentions_or_links_and_limits_hold():
    evil = _outcome(
        version_id="<!channel> <https://evil.example|click>",
        below_thresholds=True,
        failed_checks=[{**REGRESSION_CHECK, "detail": "x" * 5000}] * 30,
    )
    payload = golden_validation_alert("golden_set_validation", "<@U123>", [evil])
    body = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "<!channel>" not in body and "<https://evil" not in body and "<@U123>" not in body
    assert "&lt;!channel&gt;" in body
    assert block_kit_problems(payload) == []
    assert "… and 18 more (see the report)" in body
