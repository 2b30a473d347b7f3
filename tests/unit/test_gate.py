"""The release gate: value thresholds, missing evidence, and the paired test against the champion."""

from __future__ import annotations

import copy
import json

import pytest

from feedbackloop.evaluation import evaluate
from feedbackloop.gate import (
    NO_CHAMPION,
    GateDecision,
    GateError,
    GateFailed,
    GateThresholds,
    gate,
    mcnemar_exact,
)
from feedbackloop.golden import GoldenEmail, default_taxonomy
from feedbackloop.models.base import Prediction

TAXONOMY = default_taxonomy()
CRITICAL = ["security_alert", "phishing", "bill_due", "fraud_alert"]
NON_CRITICAL = ["receipt", "newsletter", "work", "promotion", "travel"]


def _golden() -> list[GoldenEmail]:
    """100 emails: 50 critical (12-13 per critical category) and 50 non-critical."""
    emails = []
    for i in range(100):
        category = CRITICAL[i % 4] if i < 50 else NON_CRITICAL[i % 5]
        cat = TAXONOMY.category(category)
        emails.append(
            GoldenEmail(
                f"gs-{i:03d}",
                "s <s@example.com>",
                f"subject {i}",
                "body",
                category,
                cat.priority,
                cat.actions[:1],
                (),
                "",
            )
        )
    return emails


GOLDEN = _golden()


def run(
    wrong: set[int] = frozenset(), confidence: float = 0.95, latency: float = 20.0, version: str = "v2"
) -> dict:
    """Evaluate predictions that are wrong exactly on the golden emails with these indices."""
    preds = []
    for i, g in enumerate(GOLDEN):
        category = g.category if i not in wrong else ("receipt" if g.category != "receipt" else "newsletter")
        preds.append(Prediction(g.id, category, confidence, TAXONOMY.category(category).actions[:1], latency))
    return evaluate(GOLDEN, preds, TAXONOMY, model_version=version).to_dict()


def with_values(result: dict, **changes) -> dict:
    out = copy.deepcopy(result)
    for path, value in changes.items():
        target = out
        *parents, leaf = path.split("__")
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[leaf]
        else:
            target[leaf] = value
    return out


_DELETE = object()
PASSING = run(wrong={0, 50, 51, 52, 53}, confidence=0.95)  # exactly 0.95 overall, 0.98 critical


def failed_names(decision: GateDecision) -> list[str]:
    return [c["name"] for c in decision.failed_checks]


def test_exact_boundaries_pass():
    assert PASSING["accuracy"] == 0.95
    assert PASSING["slices"]["critical"]["accuracy"] == 0.98
    decision = gate(with_values(PASSING, ece=0.05, latency_ms__p95=499.999))
    assert decision.passed, decision.reasons
    assert decision.raise_for_verdict() is decision
    by_name = {c["name"]: c for c in decision.checks}
    assert by_name["accuracy"] == {
        "name": "accuracy",
        "value": 0.95,
        "threshold": 0.95,
        "op": ">=",
        "passed": True,
        "skipped": False,
        "detail": "meets the threshold",
    }
    assert by_name["critical_accuracy"]["value"] == 0.98
    assert by_name["ece"]["value"] == 0.05


@pytest.mark.parametrize(
    ("changes", "failing", "in_message"),
    [
        pytest.param(
            {"accuracy": 0.9499}, ["accuracy"], "accuracy = 0.9499 (required >= 0.95)", id="accuracy-below"
        ),
        pytest.param(
            {"slices__critical__accuracy": 0.9799},
            ["critical_accuracy"],
            "critical_accuracy = 0.9799 (required >= 0.98)",
            id="critical-below",
        ),
        pytest.param(
            {"latency_ms__p95": 500.0},
            ["p95_latency_ms"],
            "p95_latency_ms = 500 (required < 500)",
            id="p95-at-limit-fails-strict",
        ),
        pytest.param({"latency_ms__p95": 731.5}, ["p95_latency_ms"], "731.5", id="p95-above"),
        pytest.param({"ece": 0.0501}, ["ece"], "ece = 0.0501 (required <= 0.05)", id="ece-above"),
        pytest.param(
            {"slices__critical": _DELETE},
            ["critical_accuracy", "slice:critical"],
            "slice 'critical' is missing: no critical-priority email was evaluated",
            id="missing-critical-slice",
        ),
        pytest.param({"ece": _DELETE}, ["ece"], "metric 'ece' is missing", id="missing-ece"),
        pytest.param({"ece": None}, ["ece"], "metric 'ece' is missing", id="ece-null"),
        pytest.param(
            {"accuracy": float("nan")}, ["accuracy"], "metric 'accuracy' is missing", id="accuracy-nan"
        ),
        pytest.param({"latency_ms": _DELETE}, ["p95_latency_ms"], "latency_ms.p95", id="missing-latency"),
    ],
)
def test_each_threshold_alone_fails(changes, failing, in_message):
    challenger = with_values(PASSING, **changes)
    snapshot = copy.deepcopy(challenger)
    decision = gate(challenger)
    assert not decision.passed
    assert failed_names(decision) == failing
    assert any(in_message in r for r in decision.reasons), decision.reasons
    with pytest.raises(GateFailed) as info:
        decision.raise_for_verdict()
    assert in_message in str(info.value)
    assert info.value.decision is decision
    assert "release gate failed for v2" in str(info.value)
    assert challenger == snapshot  # not mutated (identical NaN objects compare equal in containers)


def test_real_evaluation_below_thresholds_fails_with_values():
    decision = gate(run(wrong={0, 1, 50, 51, 52, 53}, confidence=0.7))
    assert failed_names(decision) == ["accuracy", "critical_accuracy", "ece"]
    message = str(GateFailed(decision))
    assert "accuracy = 0.94 (required >= 0.95)" in message
    assert "critical_accuracy = 0.96 (required >= 0.98)" in message
    assert "ece = 0.24 (required <= 0.05)" in message


def test_required_slice_that_was_not_evaluated_fails():
    thresholds = GateThresholds(required_slices=("critical", "category:phishing", "category:school_family"))
    decision = gate(PASSING, thresholds)
    assert failed_names(decision) == ["slice:category:school_family"]
    assert "required slice 'category:school_family' is missing" in decision.reasons[0]


def test_no_champion_is_recorded_as_skipped():
    decision = gate(PASSING)
    assert decision.passed
    assert decision.champion_version is None
    assert NO_CHAMPION in decision.reasons
    paired = [c for c in decision.checks if c["name"] == "paired:overall"]
    assert paired == [
        {
            "name": "paired:overall",
            "value": None,
            "threshold": 0.05,
            "op": ">=",
            "passed": True,
            "skipped": True,
            "detail": f"skipped: {NO_CHAMPION}",
        }
    ]


LENIENT = GateThresholds(min_accuracy=0.5, min_critical_accuracy=0.5, max_ece=1.0)


@pytest.mark.parametrize(
    ("challenger_wrong", "champion_wrong", "failing"),
    [
        # Challenger misses 5 phishing emails the champion gets right, but beats the champion on
        # 3 others: overall p = P(X >= 5 | 8) = 0.36, phishing p = 0.5^5 = 0.031.
        pytest.param(
            {1, 5, 9, 13, 17}, {60, 61, 62}, ["paired:category:phishing"], id="champion-better-on-phishing"
        ),
        # 6 non-critical losses: overall p = 0.5^6, no critical category involved.
        pytest.param({50, 51, 52, 53, 54, 55}, set(), ["paired:overall"], id="champion-better-overall"),
        pytest.param(
            {1, 5, 9, 13, 17}, set(), ["paired:overall", "paired:category:phishing"], id="worse-on-both"
        ),
        # 4 losses: p = 0.0625, not significant at 0.05.
        pytest.param({1, 5, 9, 13}, set(), [], id="four-losses-not-significant"),
        pytest.param({1, 2, 3}, {1, 2, 3}, [], id="same-mistakes"),
        pytest.param(set(), {1, 5, 9, 13, 17}, [], id="challenger-better"),
    ],
)
def test_paired_comparison_with_champion(challenger_wrong, champion_wrong, failing):
    challenger = run(challenger_wrong, confidence=0.9)
    champion = run(champion_wrong, confidence=0.9, version="v1")
    decision = gate(challenger, LENIENT, champion=champion)
    assert failed_names(decision) == failing
    assert decision.passed is (not failing)
    assert decision.champion_version == "v1"
    names = [c["name"] for c in decision.checks if c["name"].startswith("paired:")]
    assert names == ["paired:overall"] + [f"paired:category:{c}" for c in CRITICAL]
    if not failing:
        assert any("not significantly worse than champion v1" in r for r in decision.reasons)
    else:
        assert all(any(name in r for r in decision.reasons) for name in failing)


def test_paired_p_values_are_exact():
    decision = gate(run({1, 5, 9, 13, 17}), LENIENT, champion=run({60, 61, 62}, version="v1"))
    by_name = {c["name"]: c for c in decision.checks}
    assert by_name["paired:category:phishing"]["value"] == pytest.approx(1 / 32)
    assert by_name["paired:overall"]["value"] == pytest.approx(93 / 256)
    assert "champion right / challenger wrong on 5" in by_name["paired:category:phishing"]["detail"]


@pytest.mark.parametrize(
    ("challenger", "champion", "expected"),
    [
        pytest.param(
            [False] * 5, [True] * 5, {"champion_only": 5, "challenger_only": 0, "p_value": 1 / 32}, id="5-0"
        ),
        pytest.param(
            [False] * 5 + [True] * 3,
            [True] * 5 + [False] * 3,
            {"champion_only": 5, "challenger_only": 3, "p_value": 93 / 256},
            id="5-3",
        ),
        pytest.param(
            [True, False],
            [True, False],
            {"champion_only": 0, "challenger_only": 0, "p_value": 1.0},
            id="no-discord",
        ),
    ],
)
def test_mcnemar_exact(challenger, champion, expected):
    result = mcnemar_exact(challenger, champion)
    assert result["champion_only"] == expected["champion_only"]
    assert result["challenger_only"] == expected["challenger_only"]
    assert result["p_value"] == pytest.approx(expected["p_value"])


def test_champion_evaluated_on_other_emails_fails():
    champion = run(set(), version="v1")
    champion["per_email"] = champion["per_email"][:-1]
    decision = gate(PASSING, champion=champion)
    assert failed_names(decision) == ["paired:overall"]
    assert "different golden emails" in decision.reasons[0]


def test_champion_without_per_email_results_fails():
    champion = with_values(run(set(), version="v1"), per_email=_DELETE)
    decision = gate(PASSING, champion=champion)
    assert failed_names(decision) == ["paired:overall"]
    assert "no per-email results for the champion" in decision.reasons[0]


def test_explicit_paired_vectors_override_per_email():
    ids = [g.id for g in GOLDEN]
    phishing = {g.id for g in GOLDEN if g.category == "phishing"}
    losses = sorted(phishing)[:5]
    paired = {
        "challenger": {i: i not in losses for i in ids},
        "champion": {i: True for i in ids},
    }
    decision = gate(
        run(set()), LENIENT, champion=run(set(), version="v1"), paired=paired, champion_version="prod-7"
    )
    assert "paired:category:phishing" in failed_names(decision)
    assert decision.champion_version == "prod-7"


@pytest.mark.parametrize(
    "paired",
    [
        pytest.param({"challenger": {}}, id="missing-champion-key"),
        pytest.param({"challenger": {"gs-000": 1}, "champion": {"gs-000": True}}, id="not-booleans"),
        pytest.param({"challenger": [True], "champion": [True]}, id="not-mappings"),
    ],
)
def test_malformed_paired_vectors_are_rejected(paired):
    with pytest.raises(GateError):
        gate(PASSING, champion=run(set(), version="v1"), paired=paired)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"min_accuracy": 1.5}, "min_accuracy", id="accuracy-above-one"),
        pytest.param({"max_ece": -0.1}, "max_ece", id="negative-ece"),
        pytest.param({"max_p95_latency_ms": 0}, "max_p95_latency_ms", id="zero-latency"),
        pytest.param({"paired_alpha": 1.0}, "paired_alpha", id="alpha-one"),
        pytest.param({"required_slices": "critical"}, "required_slices", id="slices-as-string"),
    ],
)
def test_thresholds_are_validated(kwargs, message):
    with pytest.raises(GateError, match=message):
        GateThresholds(**kwargs)


def test_thresholds_round_trip_and_reject_unknown_keys():
    thresholds = GateThresholds(min_accuracy=0.9, required_slices=["critical", "priority:high"])
    assert thresholds.required_slices == ("critical", "priority:high")
    assert GateThresholds.from_dict(json.loads(json.dumps(thresholds.to_dict()))) == thresholds
    with pytest.raises(GateError, match="min_acc"):
        GateThresholds.from_dict({"min_acc": 0.9})


def test_decision_to_dict_is_json():
    decision = gate(PASSING, champion=run(set(), version="v1"))
    document = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    assert document["verdict"] == "failed"  # the champion is better on 5 emails: p = 1/32
    assert document["champion_version"] == "v1"
    assert document["challenger_version"] == "v2"
    assert document["thresholds"]["min_accuracy"] == 0.95


def test_accepts_eval_result_objects():
    preds = [
        Prediction(g.id, g.category, 0.99, TAXONOMY.category(g.category).actions[:1], 5.0) for g in GOLDEN
    ]
    result = evaluate(GOLDEN, preds, TAXONOMY, model_version="v5")
    assert (
        gate(result, champion=result).to_dict() == gate(result.to_dict(), champion=result.to_dict()).to_dict()
    )
