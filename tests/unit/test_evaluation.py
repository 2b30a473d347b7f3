"""Golden-set evaluation, checked against scikit-learn and hand-computed values."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sklearn import metrics
from sklearn.preprocessing import MultiLabelBinarizer

from feedbackloop.evaluation import (
    INVALID_LABEL,
    EvalResult,
    EvaluationError,
    action_scores,
    evaluate,
    expected_calibration_error,
    wilson_interval,
)
from feedbackloop.golden import GoldenEmail, default_taxonomy
from feedbackloop.models.base import Prediction

TAXONOMY = default_taxonomy()
LABELS = list(TAXONOMY.category_ids)


def golden_email(i: int, category: str, actions=None, priority=None, areas=()) -> GoldenEmail:
    cat = TAXONOMY.category(category)
    return GoldenEmail(
        id=f"gs-{i:03d}",
        sender=f"Sender {i} <s{i}@example.com>",
        subject=f"Subject {i}",
        body="body",
        category=category,
        priority=priority or cat.priority,
        actions=tuple(actions if actions is not None else cat.actions[:1]),
        problem_areas=tuple(areas),
        note="",
    )


def prediction(email_id: str, category: str, confidence: float = 0.9, actions=(), latency=10.0, valid=True):
    return Prediction(email_id, category, confidence, tuple(actions), latency, valid)


@pytest.fixture(scope="module")
def random_run():
    """60 golden emails over all categories and random predictions, some invalid."""
    rng = random.Random(3)
    golden, preds = [], []
    for i in range(60):
        category = LABELS[i % len(LABELS)]
        allowed = TAXONOMY.category(category).actions
        gold_actions = rng.sample(allowed, rng.randint(1, len(allowed)))
        areas = rng.sample(["receipt_vs_bill", "non_english", "quoted_reply_noise"], rng.randint(0, 2))
        golden.append(golden_email(i, category, gold_actions, areas=areas))
        predicted = category if rng.random() < 0.7 else rng.choice(LABELS)
        p_allowed = TAXONOMY.category(predicted).actions
        p_actions = rng.sample(p_allowed, rng.randint(1, len(p_allowed)))
        valid = rng.random() > 0.08
        preds.append(
            prediction(
                golden[-1].id,
                predicted,
                round(rng.uniform(0.2, 1.0), 3),
                p_actions,
                rng.uniform(1, 300),
                valid,
            )
        )
    rng.shuffle(preds)  # order must not matter
    return golden, preds


def _sklearn_view(golden, preds):
    by_id = {p.email_id: p for p in preds}
    y_true = [g.category for g in golden]
    y_pred = [by_id[g.id].category if by_id[g.id].valid else INVALID_LABEL for g in golden]
    return y_true, y_pred, by_id


def test_matches_sklearn_metrics(random_run):
    golden, preds = random_run
    result = evaluate(golden, preds, TAXONOMY)
    y_true, y_pred, _ = _sklearn_view(golden, preds)
    assert result.accuracy == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    present = sorted((set(y_true) | set(y_pred)) - {INVALID_LABEL})
    assert result.macro_f1 == pytest.approx(
        metrics.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
    )
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=LABELS, zero_division=0
    )
    for k, label in enumerate(LABELS):
        got = result.category_metrics[label]
        assert got["precision"] == pytest.approx(precision[k]), label
        assert got["recall"] == pytest.approx(recall[k]), label
        assert got["f1"] == pytest.approx(f1[k]), label
        assert got["support"] == support[k], label
    full = metrics.confusion_matrix(y_true, y_pred, labels=[*LABELS, INVALID_LABEL])
    assert result.confusion["labels"] == LABELS
    assert np.array_equal(np.array(result.confusion["matrix"]), full[:-1, :-1])
    assert result.confusion["invalid"] == full[:-1, -1].tolist()
    assert result.invalid_count == sum(not p.valid for p in preds) > 0


def test_action_scores_match_sklearn_micro_average(random_run):
    golden, preds = random_run
    result = evaluate(golden, preds, TAXONOMY)
    _, _, by_id = _sklearn_view(golden, preds)
    gold = [set(g.actions) for g in golden]
    # An invalid prediction suggests nothing.
    pred = [set(by_id[g.id].actions) if by_id[g.id].valid else set() for g in golden]
    binarizer = MultiLabelBinarizer(classes=list(TAXONOMY.actions)).fit([])
    yt, yp = binarizer.transform(gold), binarizer.transform(pred)
    p, r, f, _ = metrics.precision_recall_fscore_support(yt, yp, average="micro", zero_division=0)
    assert result.action_metrics["precision"] == pytest.approx(p)
    assert result.action_metrics["recall"] == pytest.approx(r)
    assert result.action_metrics["f1"] == pytest.approx(f)
    assert result.action_metrics["exact_match"] == pytest.approx(
        np.mean([a == b for a, b in zip(gold, pred, strict=True)])
    )


def test_action_scores_hand_computed():
    scores = action_scores([{"a", "b"}, {"c"}], [{"a"}, {"c", "d"}])
    # tp = 1 + 1, fp = 0 + 1, fn = 1 + 0
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 1, 1)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)
    assert scores["exact_match"] == 0.0


def test_slices_latency_and_calibration(random_run):
    golden, preds = random_run
    result = evaluate(golden, preds, TAXONOMY, model_version="v1")
    _, y_pred, by_id = _sklearn_view(golden, preds)
    correct = [g.category == p for g, p in zip(golden, y_pred, strict=True)]
    critical = [c for g, c in zip(golden, correct, strict=True) if g.priority == "critical"]
    assert result.critical_accuracy == pytest.approx(np.mean(critical))
    assert result.slices["critical"].n == len(critical)
    for area in ("receipt_vs_bill", "non_english", "quoted_reply_noise"):
        members = [c for g, c in zip(golden, correct, strict=True) if area in g.problem_areas]
        entry = result.slices[f"problem_area:{area}"]
        assert (entry.n, entry.correct) == (len(members), sum(members))
    for priority in TAXONOMY.priorities:
        members = [c for g, c in zip(golden, correct, strict=True) if g.priority == priority]
        if members:
            assert result.slices[f"priority:{priority}"].accuracy == pytest.approx(np.mean(members))
    latencies = [by_id[g.id].latency_ms for g in golden]
    for q in (50, 95, 99):
        assert result.latency_ms[f"p{q}"] == pytest.approx(np.percentile(latencies, q))
    assert [e["latency_ms"] for e in result.per_email] == latencies
    assert result.ece == pytest.approx(
        expected_calibration_error([by_id[g.id].confidence for g in golden], correct)["ece"]
    )
    assert sum(b["count"] for b in result.reliability) == len(golden)
    assert result.model_version == "v1"
    assert result.critical_categories == ["security_alert", "phishing", "bill_due", "fraud_alert"]


def test_expected_calibration_error_known_example():
    # Bins of width 1/15: 0.95 and 0.98 fall in [14/15, 1], 0.62 and 0.65 in [9/15, 10/15),
    # 0.30 in [4/15, 5/15).
    confidences = [0.95, 0.98, 0.62, 0.65, 0.30]
    correct = [True, False, True, True, False]
    # |0.5 - 0.965| * 2/5 + |1.0 - 0.635| * 2/5 + |0 - 0.30| * 1/5
    expected = 0.465 * 0.4 + 0.365 * 0.4 + 0.30 * 0.2
    result = expected_calibration_error(confidences, correct)
    assert result["ece"] == pytest.approx(expected)
    assert result["mce"] == pytest.approx(0.465)
    top = result["bins"][14]
    assert (top["count"], top["accuracy"]) == (2, 0.5)
    assert top["confidence"] == pytest.approx(0.965)
    assert result["bins"][0] == {
        "lower": 0.0,
        "upper": 1 / 15,
        "count": 0,
        "confidence": None,
        "accuracy": None,
        "gap": None,
    }
    assert len(result["bins"]) == 15


def test_perfectly_calibrated_is_zero_and_confidence_one_lands_in_last_bin():
    assert expected_calibration_error([1.0, 1.0], [True, True])["ece"] == 0.0
    assert expected_calibration_error([0.0], [False])["bins"][0]["count"] == 1


@pytest.mark.parametrize(
    ("confidences", "correct", "message"),
    [
        pytest.param([], [], "at least one", id="empty"),
        pytest.param([0.5], [True, False], "correctness", id="length-mismatch"),
        pytest.param([1.5], [True], r"\[0, 1\]", id="above-one"),
        pytest.param([math.nan], [True], r"\[0, 1\]", id="nan"),
    ],
)
def test_expected_calibration_error_rejects_bad_input(confidences, correct, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(confidences, correct)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score).
        pytest.param(81, 263, 0.2553, 0.3662, id="newcombe-81-of-263"),
        pytest.param(15, 148, 0.0624, 0.1605, id="newcombe-15-of-148"),
        pytest.param(0, 20, 0.0, 0.1611, id="newcombe-0-of-20"),
        pytest.param(1, 29, 0.0061, 0.1718, id="newcombe-1-of-29"),
        pytest.param(20, 20, 0.8389, 1.0, id="all-correct"),
    ],
)
def test_wilson_interval_textbook_values(successes, n, low, high):
    got_low, got_high = wilson_interval(successes, n)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(
    ("successes", "n"), [pytest.param(1, 0, id="n-zero"), pytest.param(5, 4, id="more-than-n")]
)
def test_wilson_interval_rejects_bad_counts(successes, n):
    with pytest.raises(ValueError):
        wilson_interval(successes, n)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        pytest.param(dict(valid=False), "marked invalid", id="valid-false"),
        pytest.param(dict(category="bills"), "unknown category", id="unknown-category"),
        pytest.param(dict(confidence=math.nan), "nan confidence", id="nan-confidence"),
        pytest.param(dict(confidence=1.7), "confidence above one", id="confidence-above-one"),
    ],
)
def test_invalid_predictions_count_as_wrong(bad, why):
    golden = [golden_email(1, "phishing"), golden_email(2, "receipt")]
    base = {
        "email_id": "gs-001",
        "category": "phishing",
        "confidence": 0.9,
        "actions": ("delete",),
        "latency_ms": 5.0,
    }
    preds = [Prediction(**{**base, **bad}), prediction("gs-002", "receipt", 0.8, ("save_receipt",))]
    result = evaluate(golden, preds, TAXONOMY)
    assert result.invalid_count == 1, why
    assert result.accuracy == 0.5
    assert result.per_email[0]["predicted"] == INVALID_LABEL and result.per_email[0]["correct"] is False
    assert result.misclassified[0]["id"] == "gs-001"
    assert result.confusion["invalid"][LABELS.index("phishing")] == 1
    assert result.category_metrics["phishing"]["recall"] == 0.0
    assert result.action_metrics["fn"] >= 1  # its actions were not counted as suggested


def test_misclassified_rows_name_the_problem_areas():
    golden = [
        golden_email(1, "bill_due", areas=["receipt_vs_bill"]),
        golden_email(2, "receipt"),
    ]
    preds = [prediction("gs-001", "receipt", 0.61), prediction("gs-002", "receipt", 0.9)]
    result = evaluate(golden, preds, TAXONOMY)
    assert result.misclassified == [
        {
            "id": "gs-001",
            "expected": "bill_due",
            "predicted": "receipt",
            "confidence": 0.61,
            "priority": "critical",
            "problem_areas": ["receipt_vs_bill"],
            "subject": "Subject 1",
            "sender": "Sender 1 <s1@example.com>",
        }
    ]
    assert result.slices["problem_area:receipt_vs_bill"].accuracy == 0.0
    assert result.critical_accuracy == 0.0


def test_no_critical_email_means_no_critical_slice():
    golden = [golden_email(1, "receipt"), golden_email(2, "newsletter")]
    result = evaluate(golden, [prediction("gs-001", "receipt"), prediction("gs-002", "newsletter")], TAXONOMY)
    assert "critical" not in result.slices
    assert result.critical_accuracy is None
    assert result.to_dict()["critical_accuracy"] is None


@pytest.mark.parametrize(
    ("preds", "message"),
    [
        pytest.param(
            [prediction("gs-001", "receipt")],
            "no prediction for 2 golden email.*gs-002, gs-003",
            id="missing",
        ),
        pytest.param(
            [prediction(i, "receipt") for i in ("gs-001", "gs-002", "gs-003", "gs-001")],
            "duplicate.*gs-001",
            id="duplicate",
        ),
        pytest.param(
            [prediction(i, "receipt") for i in ("gs-001", "gs-002", "gs-003", "gs-999")],
            "not in the golden set.*gs-999",
            id="unknown-id",
        ),
        pytest.param(
            [
                prediction("gs-001", "receipt", latency=-1),
                prediction("gs-002", "receipt"),
                prediction("gs-003", "receipt"),
            ],
            "latency_ms.*gs-001",
            id="negative-latency",
        ),
    ],
)
def test_alignment_errors_name_the_ids(preds, message):
    golden = [golden_email(i, "receipt") for i in (1, 2, 3)]
    with pytest.raises(EvaluationError, match=message):
        evaluate(golden, preds, TAXONOMY)


def test_empty_golden_set_is_an_error():
    with pytest.raises(EvaluationError, match="empty"):
        evaluate([], [], TAXONOMY)


def test_to_dict_is_strict_json_and_round_trips(random_run):
    golden, preds = random_run
    before = list(preds)
    result = evaluate(golden, preds, TAXONOMY, model_version="v9")
    assert preds == before  # inputs untouched
    document = result.to_dict()
    text = json.dumps(document, allow_nan=False, sort_keys=True)
    assert EvalResult.from_dict(json.loads(text)) == result
    assert document["slices"]["overall"]["n"] == 60
    assert set(document["per_email"][0]) >= {
        "id",
        "expected",
        "predicted",
        "correct",
        "confidence",
        "latency_ms",
    }
    assert result.correctness() == {e["id"]: e["correct"] for e in document["per_email"]}


def test_numpy_scalar_confidence_is_a_valid_number():
    golden = [golden_email(1, "receipt")]
    pred = Prediction("gs-001", "receipt", np.float32(0.75), ("save_receipt",), np.float64(3.0))
    result = evaluate(golden, [pred], TAXONOMY)
    assert result.invalid_count == 0 and result.accuracy == 1.0
    assert result.per_email[0]["confidence"] == pytest.approx(0.75)
    json.dumps(result.to_dict(), allow_nan=False)
