"""Nightly validation logic: regression checks against the last run, and the combined verdict."""

from __future__ import annotations

import copy
import math

import pytest

from feedbackloop.gate import NO_CHAMPION, GateDecision, GateThresholds, gate
from feedbackloop.golden_validation import (
    ValidationError,
    as_champion_decision,
    golden_run_id,
    record_validation_run,
    regression_checks,
    with_regression,
)


def _eval(
    overall: tuple[int, int],
    critical: tuple[int, int] | None = (20, 20),
    phishing: tuple[int, int] | None = (8, 8),
) -> dict:
    """A minimal evaluation dict with the slices regression checks read: (correct, n)."""
    slices = {"overall": {"n": overall[1], "correct": overall[0], "accuracy": overall[0] / overall[1]}}
    if critical:
        slices["critical"] = {"n": critical[1], "correct": critical[0], "accuracy": critical[0] / critical[1]}
    if phishing:
        slices["category:phishing"] = {
            "n": phishing[1],
            "correct": phishing[0],
            "accuracy": phishing[0] / phishing[1],
        }
    return {"accuracy": overall[0] / overall[1], "slices": slices, "critical_categories": ["phishing"]}


def _by_name(checks):
    return {c["name"]: c for c in checks}


def test_without_a_previous_run_one_skipped_check_says_so():
    (check,) = regression_checks(_eval((90, 100)), None)
    assert check["name"] == "regression:accuracy"
    assert (check["passed"], check["skipped"], check["value"]) == (True, True, None)
    assert "no earlier run" in check["detail"]


@pytest.mark.parametrize(
    ("previous", "current", "failed"),
    [
        pytest.param(_eval((95, 100)), _eval((95, 100)), [], id="unchanged"),
        pytest.param(_eval((90, 100)), _eval((95, 100)), [], id="improved"),
        pytest.param(_eval((97, 100)), _eval((95, 100)), [], id="drop-of-exactly-two-points-is-allowed"),
        pytest.param(_eval((98, 100)), _eval((95, 100)), ["regression:accuracy"], id="drop-over-two-points"),
        pytest.param(
            _eval((95, 100)),
            _eval((95, 100), critical=(19, 20)),
            ["regression:critical"],
            id="one-more-critical-mistake",
        ),
        pytest.param(
            _eval((95, 100)),
            _eval((95, 100), phishing=(7, 8)),
            ["regression:category:phishing"],
            id="critical-category-drop",
        ),
        pytest.param(
            _eval((95, 100)),
            _eval((95, 100), critical=None),
            ["regression:critical"],
            id="critical-slice-missing-now",
        ),
    ],
)
def test_regression_checks(previous, current, failed):
    checks = _by_name(regression_checks(current, previous, previous_label="run scheduled__x"))
    assert sorted(checks) == ["regression:accuracy", "regression:category:phishing", "regression:critical"]
    assert sorted(n for n, c in checks.items() if not c["passed"]) == failed
    overall = checks["regression:accuracy"]
    assert overall["op"] == "<=" and overall["threshold"] == 0.02
    assert math.isclose(overall["value"], previous["accuracy"] - current["accuracy"])
    assert "run scheduled__x" in overall["detail"]
    assert checks["regression:critical"]["threshold"] == 0.0


def test_slice_absent_from_the_previous_run_is_skipped_not_failed():
    checks = _by_name(regression_checks(_eval((95, 100)), _eval((95, 100), phishing=None)))
    phishing = checks["regression:category:phishing"]
    assert (phishing["passed"], phishing["skipped"]) == (True, True)


def test_allowed_drop_is_configurable_and_inclusive():
    checks = _by_name(regression_checks(_eval((90, 100)), _eval((95, 100)), max_accuracy_drop=0.05))
    assert checks["regression:accuracy"]["passed"] is True
    checks = _by_name(regression_checks(_eval((89, 100)), _eval((95, 100)), max_accuracy_drop=0.05))
    assert checks["regression:accuracy"]["passed"] is False


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(-0.01, id="negative"),
        pytest.param(1.5, id="above-one"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(True, id="bool"),
        pytest.param("0.02", id="string"),
    ],
)
def test_bad_allowed_drop_is_rejected(bad):
    with pytest.raises(ValidationError, match="max_accuracy_drop must be a number within"):
        regression_checks(_eval((95, 100)), None, max_accuracy_drop=bad)


def test_inputs_are_not_modified():
    current, previous = _eval((90, 100)), _eval((99, 100))
    before = copy.deepcopy((current, previous))
    regression_checks(current, previous)
    assert (current, previous) == before


def _decision(passed: bool = True) -> GateDecision:
    ev = {
        "accuracy": 0.99 if passed else 0.5,
        "latency_ms": {"p95": 10.0},
        "ece": 0.01,
        "slices": {"overall": {"n": 100, "accuracy": 0.99}, "critical": {"n": 20, "accuracy": 1.0}},
    }
    return gate(ev, GateThresholds())


def test_with_regression_fails_the_verdict_and_adds_a_reason_without_touching_the_input():
    decision = _decision()
    before = copy.deepcopy(decision.to_dict())
    checks = regression_checks(_eval((90, 100)), _eval((99, 100)))
    combined = with_regression(decision, checks, 0.02)
    assert decision.passed is True and combined.passed is False
    assert decision.to_dict() == before
    assert [c["name"] for c in combined.checks][-3:] == [
        "regression:accuracy",
        "regression:critical",
        "regression:category:phishing",
    ]
    assert combined.reasons[-1].startswith("regression:accuracy: accuracy on 'overall' dropped")
    assert combined.thresholds["max_accuracy_drop"] == 0.02


def test_with_regression_keeps_a_pass_when_nothing_regressed():
    combined = with_regression(_decision(), regression_checks(_eval((95, 100)), None), 0.02)
    assert combined.passed is True
    combined = with_regression(_decision(passed=False), regression_checks(_eval((95, 100)), None), 0.02)
    assert combined.passed is False


def test_champion_decision_does_not_claim_there_is_no_champion():
    decision = _decision()
    assert NO_CHAMPION in decision.reasons
    relabelled = as_champion_decision(decision)
    assert NO_CHAMPION not in relabelled.reasons
    paired = _by_name(relabelled.checks)["paired:overall"]
    assert paired["skipped"] is True
    assert paired["detail"] == "skipped: this model is the champion (nothing to compare it with)"
    assert NO_CHAMPION in decision.reasons  # the input is untouched


def test_golden_run_id_is_keyed_by_run_and_version():
    run = {"dag_id": "golden_set_validation", "run_id": "scheduled__2026-11-23T03:00:00+00:00"}
    assert golden_run_id(run, "v7") == "golden_set_validation/scheduled__2026-11-23T03:00:00+00:00/v7"


@pytest.mark.parametrize(
    ("alias", "spec", "run", "message"),
    [
        pytest.param(
            "canary",
            {"version_id": "v"},
            {"dag_id": "d", "run_id": "r"},
            "alias must be one of",
            id="unknown-alias",
        ),
        pytest.param(
            "champion", {}, {"dag_id": "d", "run_id": "r"}, "spec must have a version_id", id="no-version"
        ),
        pytest.param(
            "champion", {"version_id": "v"}, {"dag_id": "d"}, "run must name its run_id", id="no-run-id"
        ),
    ],
)
def test_record_validation_run_rejects_bad_input_before_touching_the_database(alias, spec, run, message):
    with pytest.raises(ValidationError, match=message):
        record_validation_run(None, alias, spec, {}, _decision(), "file:///r.json", run)
