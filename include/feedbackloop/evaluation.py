"""Golden-set evaluation: every number the release gate and the quality report need.

:func:`evaluate` scores one model's predictions on the golden set. Conventions:

* An *invalid* prediction (``valid=False``, a category outside the taxonomy, or a confidence
  that is not a number in [0, 1]) counts as wrong everywhere: it is a false negative for the
  true category, a false positive for no category, suggests no actions, and enters the
  calibration error with its confidence clipped to [0, 1] (0 when not a number).
* Slices are keyed ``overall``, ``critical`` (emails whose *priority* is critical),
  ``category:<id>`` (by true category), ``priority:<p>`` and ``problem_area:<tag>``; a slice
  with no golden email is absent rather than reported as 0/0, so the gate can fail on it.
* Accuracy intervals are Wilson score intervals at 95 %.
* Macro-F1 averages over the categories that occur in the golden set or among the valid
  predictions (scikit-learn's default label set), with 0 for undefined precision/recall.
* Expected calibration error uses 15 equal-width bins over [0, 1] of top-label confidence,
  ``[k/15, (k+1)/15)`` with the last bin closed, weighted by bin size.
* Latency percentiles use linear interpolation (numpy's default).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from feedbackloop.golden import GoldenEmail, Taxonomy
from feedbackloop.models.base import Prediction

ECE_BINS = 15
# Two-sided 95 % normal quantile (scipy.stats.norm.ppf(0.975)).
Z_95 = 1.959963984540054
INVALID_LABEL = "(invalid)"


class EvaluationError(ValueError):
    """Predictions do not line up with the golden set (missing, duplicate or unknown ids)."""


@dataclass(frozen=True)
class SliceAccuracy:
    """Accuracy on one slice of the golden set with its Wilson 95 % interval."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
        }

    @classmethod
    def from_counts(cls, correct: int, n: int) -> SliceAccuracy:
        low, high = wilson_interval(correct, n)
        return cls(n=n, correct=correct, accuracy=correct / n, ci_low=low, ci_high=high)


@dataclass(frozen=True)
class EvalResult:
    """Everything measured on one golden-set run. ``to_dict`` is JSON-safe and sorted."""

    model_version: str | None
    taxonomy_version: int
    n_emails: int
    accuracy: float
    critical_accuracy: float | None
    macro_f1: float
    ece: float
    latency_ms: dict[str, float]
    invalid_count: int
    slices: dict[str, SliceAccuracy]
    category_metrics: dict[str, dict[str, float | int]]
    confusion: dict[str, Any]
    action_metrics: dict[str, float | int]
    reliability: list[dict[str, Any]]
    misclassified: list[dict[str, Any]]
    per_email: list[dict[str, Any]]
    critical_priorities: list[str] = field(default_factory=list)
    critical_categories: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (no NaN, no tuples); the gate and the report read this."""
        return {
            "model_version": self.model_version,
            "taxonomy_version": self.taxonomy_version,
            "n_emails": self.n_emails,
            "accuracy": self.accuracy,
            "critical_accuracy": self.critical_accuracy,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "latency_ms": dict(self.latency_ms),
            "invalid_count": self.invalid_count,
            "slices": {k: v.to_dict() for k, v in self.slices.items()},
            "category_metrics": {k: dict(v) for k, v in self.category_metrics.items()},
            "confusion": {
                "labels": list(self.confusion["labels"]),
                "matrix": [list(r) for r in self.confusion["matrix"]],
                "invalid": list(self.confusion["invalid"]),
            },
            "action_metrics": dict(self.action_metrics),
            "reliability": [dict(b) for b in self.reliability],
            "misclassified": [dict(m) for m in self.misclassified],
            "per_email": [dict(e) for e in self.per_email],
            "critical_priorities": list(self.critical_priorities),
            "critical_categories": list(self.critical_categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict` (e.g. for a result read back from staging)."""
        values = dict(data)
        values["slices"] = {k: SliceAccuracy(**v) for k, v in data["slices"].items()}
        return cls(**values)

    def correctness(self) -> dict[str, bool]:
        """Email id -> whether the prediction was right (for paired tests)."""
        return {e["id"]: bool(e["correct"]) for e in self.per_email}


# --------------------------------------------------------------------------- building blocks


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (no continuity correction).

    Raises:
        ValueError: ``n`` is not positive or ``successes`` is outside [0, n].
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within [0, {n}], got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamp float noise at the edges (k = 0 or k = n give exactly 0 / 1 in exact arithmetic).
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = ECE_BINS
) -> dict[str, Any]:
    """Top-label expected calibration error with the reliability-diagram data.

    Args:
        confidences: Confidence of each predicted label, in [0, 1].
        correct: Whether each predicted label was right.
        n_bins: Number of equal-width bins over [0, 1].

    Returns:
        ``{"ece": float, "mce": float, "bins": [...]}``; each bin has ``lower``, ``upper``,
        ``count``, ``confidence`` (mean, None when empty), ``accuracy`` (None when empty)
        and ``gap`` (|accuracy - confidence|, None when empty).

    Raises:
        ValueError: Lengths differ, the input is empty, or a confidence is outside [0, 1].
    """
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.shape != hit.shape:
        raise ValueError(f"{len(conf)} confidences but {len(hit)} correctness values")
    if conf.size == 0:
        raise ValueError("expected_calibration_error needs at least one prediction")
    if not np.all((conf >= 0) & (conf <= 1)):
        raise ValueError("confidences must be numbers within [0, 1]")
    idx = np.minimum(np.floor(conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    mce = 0.0
    bins: list[dict[str, Any]] = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        entry: dict[str, Any] = {"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": count}
        if count:
            mean_conf = float(conf[mask].mean())
            acc = float(hit[mask].mean())
            gap = abs(acc - mean_conf)
            ece += count / conf.size * gap
            mce = max(mce, gap)
            entry.update(confidence=mean_conf, accuracy=acc, gap=gap)
        else:
            entry.update(confidence=None, accuracy=None, gap=None)
        bins.append(entry)
    return {"ece": float(ece), "mce": float(mce), "bins": bins}


def action_scores(gold: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]]) -> dict[str, Any]:
    """Set-based action precision/recall/F1, micro-averaged over emails.

    True positives are suggested actions that were expected, false positives suggested but
    not expected, false negatives expected but not suggested, summed over all emails.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold action sets but {len(predicted)} predicted ones")
    tp = fp = fn = exact = 0
    for g, p in zip(gold, predicted, strict=True):
        gs, ps = set(g), set(p)
        tp += len(gs & ps)
        fp += len(ps - gs)
        fn += len(gs - ps)
        exact += gs == ps
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "exact_match": exact / len(gold) if gold else 0.0,
    }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "max": float(arr.max()),
    }


def _is_valid(prediction: Prediction, categories: set[str]) -> bool:
    c = prediction.confidence
    # bool(): numpy comparisons return np.bool_, which JSON cannot encode.
    return bool(
        prediction.valid
        and prediction.category in categories
        and _is_number(c)
        and math.isfinite(c)
        and 0.0 <= c <= 1.0
    )


def _is_number(value: object) -> bool:
    # numbers.Real also admits numpy scalars (a backend may hand back np.float32).
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _align(golden: Sequence[GoldenEmail], predictions: Sequence[Prediction]) -> list[Prediction]:
    by_id: dict[str, Prediction] = {}
    duplicates: list[str] = []
    for p in predictions:
        if p.email_id in by_id:
            duplicates.append(p.email_id)
        by_id[p.email_id] = p
    if duplicates:
        raise EvaluationError(f"duplicate predictions for email id(s): {', '.join(sorted(set(duplicates)))}")
    golden_ids = [g.id for g in golden]
    missing = [i for i in golden_ids if i not in by_id]
    if missing:
        raise EvaluationError(f"no prediction for {len(missing)} golden email(s): {', '.join(missing)}")
    extra = sorted(set(by_id) - set(golden_ids))
    if extra:
        raise EvaluationError(f"predictions for email id(s) not in the golden set: {', '.join(extra)}")
    aligned = [by_id[i] for i in golden_ids]
    bad_latency = [p.email_id for p in aligned if not (math.isfinite(p.latency_ms) and p.latency_ms >= 0)]
    if bad_latency:
        raise EvaluationError(f"latency_ms must be a finite number >= 0 for: {', '.join(bad_latency)}")
    return aligned


# --------------------------------------------------------------------------- evaluate


def evaluate(
    golden: Sequence[GoldenEmail],
    predictions: Sequence[Prediction],
    taxonomy: Taxonomy,
    model_version: str | None = None,
) -> EvalResult:
    """Score predictions against the golden set.

    Args:
        golden: The golden emails (their order is the order of ``per_email``).
        predictions: Exactly one prediction per golden email, in any order.
        taxonomy: Category order (confusion matrix), critical priorities and categories.
        model_version: Recorded in the result so reports and the gate can name the model.

    Returns:
        A new :class:`EvalResult`; the inputs are not modified.

    Raises:
        EvaluationError: The golden set is empty, a golden email has no prediction (the
            message names the ids), a prediction repeats or names an unknown email, or a
            latency is negative or not a number.
    """
    if not golden:
        raise EvaluationError("the golden set is empty")
    aligned = _align(golden, predictions)
    labels = list(taxonomy.category_ids)
    label_index = {c: i for i, c in enumerate(labels)}
    known = set(labels)

    valid = [_is_valid(p, known) for p in aligned]
    correct = [v and p.category == g.category for g, p, v in zip(golden, aligned, valid, strict=True)]
    confidences = []
    for p in aligned:
        c = p.confidence
        confidences.append(min(1.0, max(0.0, float(c))) if _is_number(c) and math.isfinite(c) else 0.0)

    # Slices -------------------------------------------------------------------------------
    members: dict[str, list[int]] = {"overall": list(range(len(golden)))}
    for i, g in enumerate(golden):
        if g.priority in taxonomy.critical_priorities:
            members.setdefault("critical", []).append(i)
        members.setdefault(f"category:{g.category}", []).append(i)
        members.setdefault(f"priority:{g.priority}", []).append(i)
        for area in g.problem_areas:
            members.setdefault(f"problem_area:{area}", []).append(i)
    slices = {
        name: SliceAccuracy.from_counts(sum(correct[i] for i in idx), len(idx))
        for name, idx in sorted(members.items())
    }

    # Per-category precision / recall / F1 and the confusion matrix ----------------------
    matrix = [[0] * len(labels) for _ in labels]
    invalid_row = [0] * len(labels)
    for g, p, v in zip(golden, aligned, valid, strict=True):
        if v:
            matrix[label_index[g.category]][label_index[p.category]] += 1
        else:
            invalid_row[label_index[g.category]] += 1
    category_metrics: dict[str, dict[str, float | int]] = {}
    f1_labels: list[float] = []
    for k, label in enumerate(labels):
        tp = matrix[k][k]
        support = sum(matrix[k]) + invalid_row[k]
        predicted = sum(row[k] for row in matrix)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        category_metrics[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
            "predicted": predicted,
        }
        if support or predicted:
            f1_labels.append(f1)
    macro_f1 = float(np.mean(f1_labels))

    # Actions, calibration, latency -------------------------------------------------------
    actions = action_scores(
        [g.actions for g in golden], [p.actions if v else () for p, v in zip(aligned, valid, strict=True)]
    )
    calibration = expected_calibration_error(confidences, correct)
    latency = _percentiles([p.latency_ms for p in aligned])

    misclassified: list[dict[str, Any]] = []
    per_email: list[dict[str, Any]] = []
    for g, p, v, ok, conf in zip(golden, aligned, valid, correct, confidences, strict=True):
        predicted_label = p.category if v else INVALID_LABEL
        per_email.append(
            {
                "id": g.id,
                "expected": g.category,
                "predicted": predicted_label,
                "correct": ok,
                "confidence": conf,
                "latency_ms": float(p.latency_ms),
                "valid": v,
                "priority": g.priority,
                "expected_actions": list(g.actions),
                "predicted_actions": list(p.actions) if v else [],
            }
        )
        if not ok:
            misclassified.append(
                {
                    "id": g.id,
                    "expected": g.category,
                    "predicted": predicted_label,
                    "confidence": conf,
                    "priority": g.priority,
                    "problem_areas": list(g.problem_areas),
                    "subject": g.subject,
                    "sender": g.sender,
                }
            )

    critical = slices.get("critical")
    return EvalResult(
        model_version=model_version,
        taxonomy_version=taxonomy.version,
        n_emails=len(golden),
        accuracy=slices["overall"].accuracy,
        critical_accuracy=critical.accuracy if critical else None,
        macro_f1=macro_f1,
        ece=calibration["ece"],
        latency_ms=latency,
        invalid_count=sum(not v for v in valid),
        slices=slices,
        category_metrics=category_metrics,
        confusion={"labels": labels, "matrix": matrix, "invalid": invalid_row},
        action_metrics=actions,
        reliability=calibration["bins"],
        misclassified=misclassified,
        per_email=per_email,
        critical_priorities=sorted(taxonomy.critical_priorities),
        critical_categories=[c for c in labels if c in taxonomy.critical_categories],
    )
