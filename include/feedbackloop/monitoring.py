"""Regression detectors over production predictions and feedback.

The hourly ``regression_monitor`` DAG evaluates four detectors at the end ``end`` of its
data interval. Each returns a :class:`DetectorResult` whose ``status`` drives the alert
lifecycle (:mod:`feedbackloop.alerts`):

``firing``
    the breach is statistically established: open an incident (or keep it open).
``clear``
    the point estimate is back on the good side of the threshold: resolve an open incident.
``hold``
    neither (a breach by the point estimate that the test cannot confirm yet, or a
    confirmed breach that is not yet sustained): change nothing. Opening on strong evidence
    and resolving only below the threshold is the hysteresis that stops an incident from
    flapping open/resolved around the line.
``insufficient_data``
    the minimum-sample guard failed (a quiet hour, a new deployment): change nothing.

Detectors (all thresholds in :class:`Thresholds`):

* **accuracy_drop** - accuracy over the trailing 24 h versus the baseline, the champion's
  accuracy over the 7 days before that window. A prediction is *labelled* when it has a
  category correction or action feedback given before ``end``, and *correct* when no
  correction names another category. Fires when a one-sided Wald test for a
  non-inferiority margin rejects ``H0: acc >= baseline - 0.02`` at ``accuracy_alpha`` *and*
  the drop is sustained: at least 3 of the 4 six-hour blocks of the window (each with
  enough labelled predictions) sit below the alert line ``baseline - 0.02``. A burst of a
  few bad hours can drag the 24 h mean down but cannot put three blocks below the line.
* **latency_p95** - p95 latency over the last hour. Fires when an exact binomial test
  rejects ``H0: P(latency > 500 ms) <= 5 %`` (i.e. "the true p95 is at most 500 ms") at
  ``latency_alpha`` and the sample p95 is above 500 ms.
* **calibration_error** - expected calibration error (15 equal-width bins, as in
  :func:`feedbackloop.evaluation.expected_calibration_error`) of confidence versus
  correctness on the labelled predictions of the trailing 24 h. ECE is biased upwards on
  finite samples (each bin's |accuracy - confidence| is positive even for a perfectly
  calibrated model), so the detector fires on the *excess* over that noise floor,
  ``ECE - sum_b (n_b/n) * sqrt(2/pi) * sqrt(c_b (1 - c_b) / n_b)`` (the expected ECE of a
  calibrated model with the same confidence histogram), above 10 %.
* **category_imbalance** - each predicted category's share over the trailing 24 h versus
  its share among the champion's predictions in the baseline week, one result per
  category (the alert key). Per category a two-sided two-proportion z-test, with Holm's
  step-down correction over all categories for a family-wise ``imbalance_alpha``, plus an
  effect-size floor: Cohen's ``h = |2 asin(sqrt(p)) - 2 asin(sqrt(p0))| >= 0.2`` (a "small"
  effect), so a large sample cannot turn a negligible shift into an alert. The Pearson
  chi-square goodness of fit of the whole mix against the baseline is reported as evidence.

Everything here is a pure function over DataFrames / dataclasses except :func:`load_window`
and :func:`load_baseline`, which read the app tables with parameterised SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from feedbackloop.db import transaction
from feedbackloop.evaluation import ECE_BINS, expected_calibration_error

FIRING = "firing"
CLEAR = "clear"
HOLD = "hold"
INSUFFICIENT = "insufficient_data"
STATUSES = (FIRING, CLEAR, HOLD, INSUFFICIENT)

ACCURACY = "accuracy_drop"
LATENCY = "latency_p95"
CALIBRATION = "calibration_error"
IMBALANCE = "category_imbalance"
DETECTORS = (ACCURACY, LATENCY, CALIBRATION, IMBALANCE)
ALL_KEY = "all"

WINDOW_COLUMNS = (
    "prediction_id",
    "user_id",
    "model_version",
    "variant",
    "category",
    "confidence",
    "latency_ms",
    "predicted_at",
    "has_feedback",
    "correct",
)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Thresholds:
    """Every number the detectors use. Defaults are the brief's; all are configurable.

    Windows are in hours, shares and accuracies are fractions (0.02 = 2 points).
    """

    baseline_days: int = 7

    accuracy_max_drop: float = 0.02
    accuracy_window_hours: int = 24
    accuracy_alpha: float = 0.01
    accuracy_min_samples: int = 200
    accuracy_min_baseline: int = 500
    accuracy_blocks: int = 4
    accuracy_min_blocks_below: int = 3
    accuracy_min_block_samples: int = 20

    latency_p95_ms: float = 500.0
    latency_window_hours: int = 1
    latency_alpha: float = 0.01
    latency_min_samples: int = 50

    max_ece: float = 0.10
    calibration_window_hours: int = 24
    calibration_min_samples: int = 300

    imbalance_window_hours: int = 24
    imbalance_alpha: float = 0.001
    imbalance_min_effect: float = 0.2
    imbalance_min_samples: int = 500
    imbalance_min_baseline: int = 1000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"threshold {f.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"threshold {f.name} must be >= 0, got {value!r}")
        for name in ("accuracy_alpha", "latency_alpha", "imbalance_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("accuracy_max_drop", "max_ece"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.latency_p95_ms <= 0:  # 0 would page on every prediction
            raise ValueError(f"latency_p95_ms must be > 0, got {self.latency_p95_ms!r}")
        for name in (
            "baseline_days",
            "accuracy_window_hours",
            "latency_window_hours",
            "calibration_window_hours",
            "imbalance_window_hours",
            "accuracy_blocks",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.accuracy_min_blocks_below > self.accuracy_blocks:
            raise ValueError("accuracy_min_blocks_below cannot exceed accuracy_blocks")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> Thresholds:
        """Build from a mapping of overrides (e.g. DAG params, which may arrive as strings).

        Raises:
            ValueError: an unknown name, or a value that is not a number of the field's type.
        """
        if not values:
            return cls()
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"unknown threshold(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            if raw is None or raw == "":
                continue
            kind = int if isinstance(getattr(cls, name), int) else float
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"threshold {name} must be a number, got {raw!r}") from None
            if kind is int:
                if not number.is_integer():
                    raise ValueError(f"threshold {name} must be a whole number, got {raw!r}")
                converted[name] = int(number)
            else:
                converted[name] = number
        return cls(**converted)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Baseline:
    """The champion's behaviour over the baseline period: what "normal" looks like.

    Attributes:
        start: inclusive start of the period.
        end: exclusive end (the start of the evaluated window).
        predictions: champion predictions in the period.
        labelled: of those, predictions with feedback given before ``end``.
        correct: labelled predictions whose feedback says the category was right.
        category_counts: champion predictions per predicted category.
    """

    start: datetime
    end: datetime
    predictions: int
    labelled: int
    correct: int
    category_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "category_counts": dict(sorted(self.category_counts.items())),
        }


@dataclass(frozen=True)
class DetectorResult:
    """One detector's verdict on one key for one evaluation.

    Attributes:
        detector: one of :data:`DETECTORS`.
        key: ``all``, or the category for ``category_imbalance``.
        status: one of :data:`STATUSES` (see the module docstring).
        metric: what ``value`` measures (``accuracy``, ``p95_latency_ms``, ``ece``, ``share``).
        value: the measured value (None when there was no data).
        threshold: the alert line the value is compared with (for accuracy: baseline - 2 pts).
        baseline: the baseline value, when the detector has one.
        window_start: inclusive start of the evaluated window.
        window_end: exclusive end of the evaluated window (the evaluation time).
        n: sample size behind ``value``.
        p_value: the test's p-value (Holm-adjusted for the imbalance detector), or None.
        summary: one human-readable line (shown in Slack).
        evidence: JSON-safe details (counts, test statistics, blocks, bins).
    """

    detector: str
    key: str
    status: str
    metric: str
    value: float | None
    threshold: float
    baseline: float | None
    window_start: datetime
    window_end: datetime
    n: int
    p_value: float | None
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (datetimes as ISO 8601 strings, no NaN)."""
        return {
            "detector": self.detector,
            "key": self.key,
            "status": self.status,
            "metric": self.metric,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "baseline": _finite(self.baseline),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "n": int(self.n),
            "p_value": _finite(self.p_value),
            "summary": self.summary,
            "evidence": _jsonable(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DetectorResult:
        """Inverse of :meth:`to_dict` (e.g. for a result read back from XCom)."""
        values = dict(data)
        for name in ("window_start", "window_end"):
            if isinstance(values[name], str):
                values[name] = datetime.fromisoformat(values[name])
        values["evidence"] = dict(values.get("evidence") or {})
        return cls(**values)


# --------------------------------------------------------------------------- helpers


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _finite(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _norm_cdf(z: float) -> float:
    # scipy.special's ufunc without scipy.stats' per-call overhead (simulations call this a lot).
    return float(special.ndtr(z))


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(special.bdtrc(k - 1, n, p))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _check_end(end: datetime) -> pd.Timestamp:
    if end.tzinfo is None:
        raise ValueError(f"end must carry a time zone, got {end!r}")
    return pd.Timestamp(end)


def _check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in WINDOW_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"window frame lacks column(s): {', '.join(missing)}")


class _Frame:
    """The frame's columns as arrays, converted on first use and shared by every window."""

    def __init__(self, frame: pd.DataFrame, end: pd.Timestamp):
        _check_frame(frame)
        self.frame = frame
        self.end = end
        # Age in hours at ``end``: a row is in the window [end - H, end) when 0 < age <= H.
        self.age = ((end - frame["predicted_at"]) / pd.Timedelta(hours=1)).to_numpy(
            dtype=np.float64, na_value=np.nan
        )

    @cached_property
    def labelled(self) -> np.ndarray:
        return self.frame["has_feedback"].to_numpy(dtype=bool, na_value=False)

    @cached_property
    def correct(self) -> np.ndarray:
        return self.frame["correct"].to_numpy(dtype=bool, na_value=False) & self.labelled

    @cached_property
    def confidence(self) -> np.ndarray:
        return self.frame["confidence"].to_numpy(dtype=np.float64, na_value=np.nan)

    @cached_property
    def latency(self) -> np.ndarray:
        return self.frame["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)

    @cached_property
    def categories(self) -> tuple[np.ndarray, list[str]]:
        codes, uniques = pd.factorize(self.frame["category"], use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), [str(u) for u in uniques]


class _Window:
    """The rows of a :class:`_Frame` with ``end - hours <= predicted_at < end`` (columns on demand)."""

    def __init__(self, f: _Frame, hours: int):
        self._f = f
        self.mask = (f.age > 0) & (f.age <= hours)
        self.start = (f.end - pd.Timedelta(hours=hours)).to_pydatetime()
        self.end = f.end.to_pydatetime()
        # Hours since the window start: enough to place a row in a block of the window.
        self.hours = hours - f.age[self.mask]

    @cached_property
    def labelled(self) -> np.ndarray:
        return self._f.labelled[self.mask]

    @cached_property
    def correct(self) -> np.ndarray:
        return self._f.correct[self.mask]

    @cached_property
    def confidence(self) -> np.ndarray:
        return self._f.confidence[self.mask]

    @cached_property
    def latency(self) -> np.ndarray:
        return self._f.latency[self.mask]

    @cached_property
    def category_counts(self) -> dict[str, int]:
        codes, names = self._f.categories
        picked = codes[self.mask]
        counts = np.bincount(picked[picked >= 0], minlength=len(names))
        return {names[i]: int(c) for i, c in enumerate(counts) if c}

    @property
    def size(self) -> int:
        return int(self.hours.shape[0])


def _window(frame: pd.DataFrame, end: pd.Timestamp, hours: int) -> _Window:
    return _Window(_Frame(frame, end), hours)


# --------------------------------------------------------------------------- baseline


def summarize_baseline(frame: pd.DataFrame, start: datetime, end: datetime) -> Baseline:
    """The baseline from a prediction frame: champion predictions with ``start <= predicted_at < end``.

    Args:
        frame: rows with :data:`WINDOW_COLUMNS` (``has_feedback``/``correct`` as of ``end``
            or later; the caller decides).
        start: inclusive start, timezone-aware.
        end: exclusive end, timezone-aware.
    """
    _check_frame(frame)
    lo, hi = _check_end(start), _check_end(end)
    at = frame["predicted_at"]
    mask = ((at >= lo) & (at < hi)).to_numpy(dtype=bool) & (
        frame["variant"].to_numpy(dtype=object) == "champion"
    )
    labelled = frame["has_feedback"].to_numpy(dtype=bool, na_value=False)[mask]
    correct = frame["correct"].to_numpy(dtype=bool, na_value=False)[mask] & labelled
    codes, uniques = pd.factorize(frame["category"], use_na_sentinel=True)
    picked = np.asarray(codes)[mask]
    counts = np.bincount(picked[picked >= 0], minlength=len(uniques))
    return Baseline(
        start=start,
        end=end,
        predictions=int(mask.sum()),
        labelled=int(labelled.sum()),
        correct=int(correct.sum()),
        category_counts={
            str(uniques[i]): int(c)
            for i, c in sorted(enumerate(counts), key=lambda x: str(uniques[x[0]]))
            if c
        },
    )


# --------------------------------------------------------------------------- detectors


def detect_accuracy_drop(
    frame: pd.DataFrame, baseline: Baseline, end: datetime, thresholds: Thresholds | None = None
) -> DetectorResult:
    """Accuracy over the trailing window versus the champion baseline (see the module docstring)."""
    t = thresholds or Thresholds()
    w = _window(frame, _check_end(end), t.accuracy_window_hours)
    return _accuracy(w, baseline, t)


def _accuracy(w: _Window, baseline: Baseline, t: Thresholds) -> DetectorResult:
    n = int(w.labelled.sum())
    k = int(w.correct.sum())
    p0 = baseline.accuracy
    line = None if p0 is None else p0 - t.accuracy_max_drop
    common = {
        "detector": ACCURACY,
        "key": ALL_KEY,
        "metric": "accuracy",
        "window_start": w.start,
        "window_end": w.end,
        "n": n,
        "baseline": p0,
        "threshold": line if line is not None else float("nan"),
    }
    evidence: dict[str, Any] = {
        "labelled": n,
        "correct": k,
        "baseline_labelled": baseline.labelled,
        "baseline_correct": baseline.correct,
        "baseline_start": baseline.start.isoformat(),
        "baseline_end": baseline.end.isoformat(),
        "max_drop": t.accuracy_max_drop,
        "alpha": t.accuracy_alpha,
    }
    if (
        n < t.accuracy_min_samples
        or baseline.labelled < t.accuracy_min_baseline
        or p0 is None
        or line is None
    ):
        return DetectorResult(
            **common,
            status=INSUFFICIENT,
            value=k / n if n else None,
            p_value=None,
            summary=(
                f"Not enough labelled predictions: {n} in the window (need {t.accuracy_min_samples}), "
                f"{baseline.labelled} in the baseline (need {t.accuracy_min_baseline})"
            ),
            evidence=evidence,
        )
    p1 = k / n
    # Wald test of a non-inferiority margin: H0 p1 >= p0 - delta against H1 p1 < p0 - delta,
    # with the unpooled standard error (the two rates are not assumed equal under H0).
    var = p1 * (1 - p1) / n + p0 * (1 - p0) / baseline.labelled
    se = math.sqrt(var) if var > 0 else 1.0 / max(n, baseline.labelled)
    z = (p1 - line) / se
    p_value = _norm_cdf(z)
    significant = p_value < t.accuracy_alpha

    # Sustained: how many blocks of the window sit below the alert line.
    edges = pd.date_range(w.start, w.end, periods=t.accuracy_blocks + 1)
    span = (w.end - w.start) / timedelta(hours=1)
    block_of = np.minimum((w.hours * t.accuracy_blocks / span).astype(np.int64), t.accuracy_blocks - 1)
    b_n = np.bincount(block_of[w.labelled], minlength=t.accuracy_blocks)
    b_k = np.bincount(block_of[w.correct], minlength=t.accuracy_blocks)
    blocks = []
    below = 0
    for i in range(t.accuracy_blocks):
        acc = b_k[i] / b_n[i] if b_n[i] else None
        counted = b_n[i] >= t.accuracy_min_block_samples
        is_below = bool(counted and acc is not None and acc < line)
        below += is_below
        blocks.append(
            {
                "start": edges[i].isoformat(),
                "end": edges[i + 1].isoformat(),
                "labelled": int(b_n[i]),
                "accuracy": acc,
                "below_line": is_below,
            }
        )
    sustained = below >= t.accuracy_min_blocks_below
    evidence.update(
        {"z": z, "standard_error": se, "blocks": blocks, "blocks_below": below, "sustained": sustained}
    )
    drop = p0 - p1
    if significant and sustained:
        status = FIRING
    elif drop <= t.accuracy_max_drop:
        status = CLEAR
    else:
        status = HOLD
    hours = t.accuracy_window_hours
    summary = (
        f"Accuracy {_pct(p1)} over the last {hours} h ({n} labelled) vs {_pct(p0)} for the champion's "
        f"previous {t.baseline_days} days: {-100 * drop:+.1f} points (alert beyond {-100 * t.accuracy_max_drop:+.1f} points); "
        f"p={p_value:.2g}, {below}/{t.accuracy_blocks} blocks below the line"
    )
    return DetectorResult(
        **common, status=status, value=p1, p_value=p_value, summary=summary, evidence=evidence
    )


def detect_latency(
    frame: pd.DataFrame, end: datetime, thresholds: Thresholds | None = None
) -> DetectorResult:
    """p95 latency over the trailing window (default 1 h) against the SLO (default 500 ms)."""
    t = thresholds or Thresholds()
    return _latency(_window(frame, _check_end(end), t.latency_window_hours), t)


def _latency(w: _Window, t: Thresholds) -> DetectorResult:
    lat = w.latency[np.isfinite(w.latency) & (w.latency >= 0)]
    n = int(lat.size)
    common = {
        "detector": LATENCY,
        "key": ALL_KEY,
        "metric": "p95_latency_ms",
        "threshold": t.latency_p95_ms,
        "baseline": None,
        "window_start": w.start,
        "window_end": w.end,
        "n": n,
    }
    if n < t.latency_min_samples:
        return DetectorResult(
            **common,
            status=INSUFFICIENT,
            value=float(np.percentile(lat, 95)) if n else None,
            p_value=None,
            summary=f"Not enough predictions with a latency: {n} (need {t.latency_min_samples})",
            evidence={"predictions": n},
        )
    p50, p95, p99 = (float(v) for v in np.percentile(lat, [50, 95, 99]))
    over = int((lat > t.latency_p95_ms).sum())
    # H0: at most 5 % of requests are slower than the threshold (the true p95 is within it).
    p_value = _binom_sf(over, n, 0.05)
    if p_value < t.latency_alpha and p95 > t.latency_p95_ms:
        status = FIRING
    elif p95 <= t.latency_p95_ms:
        status = CLEAR
    else:
        status = HOLD
    evidence = {
        "predictions": n,
        "over_threshold": over,
        "share_over_threshold": over / n,
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": float(lat.max()),
        "alpha": t.latency_alpha,
    }
    summary = (
        f"p95 latency {p95:.0f} ms over the last {t.latency_window_hours} h ({n} predictions; "
        f"{100 * over / n:.1f}% slower than {t.latency_p95_ms:.0f} ms; alert above {t.latency_p95_ms:.0f} ms), "
        f"p={p_value:.2g}"
    )
    return DetectorResult(
        **common, status=status, value=p95, p_value=p_value, summary=summary, evidence=evidence
    )


def ece_noise_floor(confidences: Sequence[float] | np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected ECE of a perfectly calibrated model with these confidences (first-order).

    In a bin with ``n_b`` predictions of mean confidence ``c_b``, a calibrated model's
    accuracy is a binomial mean around ``c_b``; ``E|acc - c_b| ~ sqrt(2/pi) * sd``. The
    floor is the bin-size-weighted sum of those expected gaps.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    idx = np.minimum(np.floor(conf * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sums = np.bincount(idx, weights=conf, minlength=n_bins)
    used = counts > 0
    mean = sums[used] / counts[used]
    gaps = _SQRT_2_OVER_PI * np.sqrt(mean * (1 - mean) / counts[used])
    return float(np.sum(counts[used] / conf.size * gaps))


def detect_calibration(
    frame: pd.DataFrame, end: datetime, thresholds: Thresholds | None = None
) -> DetectorResult:
    """Expected calibration error of the labelled predictions in the trailing window."""
    t = thresholds or Thresholds()
    return _calibration(_window(frame, _check_end(end), t.calibration_window_hours), t)


def _calibration(w: _Window, t: Thresholds) -> DetectorResult:
    conf = w.confidence[w.labelled]
    hit = w.correct[w.labelled]
    valid = np.isfinite(conf) & (conf >= 0) & (conf <= 1)
    conf, hit = conf[valid], hit[valid]
    n = int(conf.size)
    common = {
        "detector": CALIBRATION,
        "key": ALL_KEY,
        "metric": "ece",
        "threshold": t.max_ece,
        "baseline": None,
        "window_start": w.start,
        "window_end": w.end,
        "n": n,
    }
    evidence: dict[str, Any] = {"labelled": n, "invalid_confidence": int((~valid).sum())}
    if n < t.calibration_min_samples:
        return DetectorResult(
            **common,
            status=INSUFFICIENT,
            value=None,
            p_value=None,
            summary=f"Not enough labelled predictions: {n} (need {t.calibration_min_samples})",
            evidence=evidence,
        )
    result = expected_calibration_error(conf, hit)
    ece = result["ece"]
    floor = ece_noise_floor(conf)
    excess = ece - floor
    if excess > t.max_ece:
        status = FIRING
    elif ece <= t.max_ece:
        status = CLEAR
    else:
        status = HOLD
    evidence.update(
        {
            "ece": ece,
            "noise_floor": floor,
            "excess": excess,
            "mce": result["mce"],
            "mean_confidence": float(conf.mean()),
            "accuracy": float(hit.mean()),
            "bins": [
                {k: b[k] for k in ("lower", "upper", "count", "confidence", "accuracy")}
                for b in result["bins"]
                if b["count"]
            ],
        }
    )
    summary = (
        f"Calibration error {_pct(ece)} over the last {t.calibration_window_hours} h ({n} labelled; "
        f"{_pct(excess)} above the sampling-noise floor of {_pct(floor)}; alert above {_pct(t.max_ece)}); "
        f"mean confidence {_pct(float(conf.mean()))} vs accuracy {_pct(float(hit.mean()))}"
    )
    return DetectorResult(
        **common, status=status, value=ece, p_value=None, summary=summary, evidence=evidence
    )


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def detect_category_imbalance(
    frame: pd.DataFrame,
    baseline: Baseline,
    end: datetime,
    thresholds: Thresholds | None = None,
    categories: Sequence[str] = (),
) -> list[DetectorResult]:
    """One result per category: its share of predictions versus its baseline share.

    Args:
        frame: the prediction frame.
        baseline: champion counts per category over the baseline period.
        end: evaluation time (exclusive end of the window).
        thresholds: the configuration.
        categories: categories always reported (e.g. the taxonomy), so an incident on a
            category that vanished from the traffic can still resolve or fire.
    """
    t = thresholds or Thresholds()
    return _imbalance(_window(frame, _check_end(end), t.imbalance_window_hours), baseline, t, categories)


def _imbalance(
    w: _Window, baseline: Baseline, t: Thresholds, categories: Sequence[str]
) -> list[DetectorResult]:
    counts_now = w.category_counts
    n = int(sum(counts_now.values()))
    n0 = int(sum(baseline.category_counts.values()))
    names = sorted(set(categories) | set(counts_now) | set(baseline.category_counts))
    k = len(names)
    base = {
        "detector": IMBALANCE,
        "metric": "share",
        "window_start": w.start,
        "window_end": w.end,
        "n": n,
    }
    if n < t.imbalance_min_samples or n0 < t.imbalance_min_baseline or k < 2:
        return [
            DetectorResult(
                **base,
                key=c,
                status=INSUFFICIENT,
                value=int(counts_now.get(c, 0)) / n if n else None,
                threshold=t.imbalance_min_effect,
                baseline=baseline.category_counts.get(c, 0) / n0 if n0 else None,
                p_value=None,
                summary=(
                    f"Not enough predictions: {n} in the window (need {t.imbalance_min_samples}), "
                    f"{n0} in the baseline (need {t.imbalance_min_baseline})"
                ),
                evidence={"predictions": n, "baseline_predictions": n0},
            )
            for c in names
        ]
    x = np.array([int(counts_now.get(c, 0)) for c in names], dtype=np.float64)
    x0 = np.array([int(baseline.category_counts.get(c, 0)) for c in names], dtype=np.float64)
    share = x / n
    # Add-half smoothing keeps a category absent from the baseline testable (share > 0).
    share0 = (x0 + 0.5) / (n0 + 0.5 * k)
    pooled = (x + x0) / (n + n0)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / n0))
    z = (share - x0 / n0) / se
    raw_p = special.erfc(np.abs(z) / math.sqrt(2.0))  # two-sided normal p-value
    adjusted = holm_adjust(raw_p.tolist())
    h = np.abs(2 * np.arcsin(np.sqrt(share)) - 2 * np.arcsin(np.sqrt(share0)))
    expected = n * share0 / share0.sum()
    chi2 = float(np.sum((x - expected) ** 2 / expected))
    chi2_p = float(special.chdtrc(k - 1, chi2))
    results = []
    for i, c in enumerate(names):
        if adjusted[i] < t.imbalance_alpha and h[i] >= t.imbalance_min_effect:
            status = FIRING
        elif h[i] < t.imbalance_min_effect:
            status = CLEAR
        else:
            status = HOLD
        direction = "above" if share[i] > share0[i] else "below"
        results.append(
            DetectorResult(
                **base,
                key=c,
                status=status,
                value=float(share[i]),
                threshold=t.imbalance_min_effect,
                baseline=float(x0[i] / n0),
                p_value=float(adjusted[i]),
                summary=(
                    f"Category {c}: {_pct(float(share[i]))} of {n} predictions over the last "
                    f"{t.imbalance_window_hours} h vs {_pct(float(x0[i] / n0))} in the champion's baseline "
                    f"({direction}; effect h={h[i]:.2f}, alert at h>={t.imbalance_min_effect:.2f}, "
                    f"Holm-adjusted p={adjusted[i]:.2g})"
                ),
                evidence={
                    "count": int(x[i]),
                    "predictions": n,
                    "baseline_count": int(x0[i]),
                    "baseline_predictions": n0,
                    "z": float(z[i]),
                    "p_value_raw": float(raw_p[i]),
                    "p_value_holm": float(adjusted[i]),
                    "cohens_h": float(h[i]),
                    "alpha": t.imbalance_alpha,
                    "chi_square": chi2,
                    "chi_square_df": k - 1,
                    "chi_square_p": chi2_p,
                },
            )
        )
    return results


def evaluate(
    frame: pd.DataFrame,
    baseline: Baseline,
    end: datetime,
    thresholds: Thresholds | None = None,
    categories: Sequence[str] = (),
) -> list[DetectorResult]:
    """Run every detector at ``end``; results sorted by (detector, key).

    Args:
        frame: predictions covering at least the longest window before ``end``
            (:data:`WINDOW_COLUMNS`; feedback as of ``end``).
        baseline: the champion baseline for the window (see :func:`baseline_period`).
        end: the evaluation time, timezone-aware.
        thresholds: the configuration (defaults: :class:`Thresholds`).
        categories: categories always reported by the imbalance detector.
    """
    t = thresholds or Thresholds()
    arrays = _Frame(frame, _check_end(end))
    windows: dict[int, _Window] = {}

    def win(hours: int) -> _Window:
        if hours not in windows:
            windows[hours] = _Window(arrays, hours)
        return windows[hours]

    results = [
        _accuracy(win(t.accuracy_window_hours), baseline, t),
        _latency(win(t.latency_window_hours), t),
        _calibration(win(t.calibration_window_hours), t),
        *_imbalance(win(t.imbalance_window_hours), baseline, t, categories),
    ]
    return sorted(results, key=lambda r: (DETECTORS.index(r.detector), r.key))


def baseline_period(end: datetime, thresholds: Thresholds | None = None) -> tuple[datetime, datetime]:
    """``[start, stop)`` of the baseline for an evaluation at ``end``: the days before the window.

    The baseline ends where the longest 24 h-type window starts, so the evaluated hours never
    count towards their own baseline.
    """
    t = thresholds or Thresholds()
    _check_end(end)
    hours = max(t.accuracy_window_hours, t.imbalance_window_hours)
    stop = end - timedelta(hours=hours)
    return stop - timedelta(days=t.baseline_days), stop


def window_start(end: datetime, thresholds: Thresholds | None = None) -> datetime:
    """Start of the longest detector window ending at ``end`` (what :func:`load_window` must cover)."""
    t = thresholds or Thresholds()
    hours = max(
        t.accuracy_window_hours, t.latency_window_hours, t.calibration_window_hours, t.imbalance_window_hours
    )
    return end - timedelta(hours=hours)


# --------------------------------------------------------------------------- database

_WINDOW_SQL = """
SELECT p.prediction_id, p.user_id, p.model_version, p.variant, p.category, p.confidence,
       p.latency_ms, p.predicted_at,
       (EXISTS (SELECT 1 FROM app.category_corrections c
                WHERE c.prediction_id = p.prediction_id AND c.created_at < %(feedback_until)s)
        OR EXISTS (SELECT 1 FROM app.action_feedback af
                   WHERE af.prediction_id = p.prediction_id AND af.created_at < %(feedback_until)s))
           AS has_feedback,
       NOT EXISTS (SELECT 1 FROM app.category_corrections c
                   WHERE c.prediction_id = p.prediction_id AND c.created_at < %(feedback_until)s
                     AND c.corrected_category IS NOT NULL
                     AND c.corrected_category IS DISTINCT FROM p.category) AS correct
FROM app.predictions p
WHERE p.predicted_at >= %(start)s AND p.predicted_at < %(end)s
ORDER BY p.predicted_at, p.prediction_id
"""

_BASELINE_SQL = """
WITH p AS (
    SELECT p.category,
           (EXISTS (SELECT 1 FROM app.category_corrections c
                    WHERE c.prediction_id = p.prediction_id AND c.created_at < %(feedback_until)s)
            OR EXISTS (SELECT 1 FROM app.action_feedback af
                       WHERE af.prediction_id = p.prediction_id AND af.created_at < %(feedback_until)s))
               AS labelled,
           NOT EXISTS (SELECT 1 FROM app.category_corrections c
                       WHERE c.prediction_id = p.prediction_id AND c.created_at < %(feedback_until)s
                         AND c.corrected_category IS NOT NULL
                         AND c.corrected_category IS DISTINCT FROM p.category) AS correct
    FROM app.predictions p
    WHERE p.predicted_at >= %(start)s AND p.predicted_at < %(end)s AND p.variant = 'champion'
)
SELECT category, count(*), count(*) FILTER (WHERE labelled), count(*) FILTER (WHERE labelled AND correct)
FROM p GROUP BY category ORDER BY category NULLS LAST
"""


def _check_bounds(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must carry a time zone")
    if not start < end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")


def load_window(
    conn: Any, start: datetime, end: datetime, feedback_until: datetime | None = None
) -> pd.DataFrame:
    """Production predictions with ``start <= predicted_at < end`` and their feedback status.

    Feedback counts when given before ``feedback_until`` (default ``end``), so re-running an
    evaluation later reproduces the same numbers.

    Returns:
        A DataFrame with :data:`WINDOW_COLUMNS`, ordered by (predicted_at, prediction_id).

    Raises:
        ValueError: a bound without a time zone, or ``start >= end``.
    """
    _check_bounds(start, end)
    params = {"start": start, "end": end, "feedback_until": feedback_until or end}
    with transaction(conn) as cur:
        cur.execute(_WINDOW_SQL, params)
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=list(WINDOW_COLUMNS))
    frame["predicted_at"] = pd.to_datetime(frame["predicted_at"], utc=True)
    frame["confidence"] = pd.to_numeric(frame["confidence"], errors="coerce").astype("float64")
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"], errors="coerce").astype("float64")
    frame["has_feedback"] = frame["has_feedback"].astype(bool)
    frame["correct"] = frame["correct"].astype(bool) & frame["has_feedback"]
    return frame


def load_baseline(conn: Any, start: datetime, end: datetime) -> Baseline:
    """The champion baseline over ``[start, end)`` aggregated in the database (rows never leave it).

    Equal to ``summarize_baseline(load_window(conn, start, end), start, end)``.
    """
    _check_bounds(start, end)
    with transaction(conn) as cur:
        cur.execute(_BASELINE_SQL, {"start": start, "end": end, "feedback_until": end})
        rows = cur.fetchall()
    return Baseline(
        start=start,
        end=end,
        predictions=sum(int(r[1]) for r in rows),
        labelled=sum(int(r[2]) for r in rows),
        correct=sum(int(r[3]) for r in rows),
        category_counts={str(r[0]): int(r[1]) for r in rows if r[0] is not None},
    )


def run_detectors(
    conn: Any, end: datetime, thresholds: Thresholds | None = None, categories: Sequence[str] | None = None
) -> dict[str, Any]:
    """Load the windows ending at ``end`` and run every detector (what the DAG task calls).

    Args:
        conn: psycopg connection to the feedback DB.
        end: evaluation time (the run's data interval end), timezone-aware.
        thresholds: the configuration.
        categories: categories always reported (default: the taxonomy's).

    Returns:
        JSON-safe ``{"evaluated_at", "thresholds", "baseline", "results": [...], "firing": [...]}``.
    """
    t = thresholds or Thresholds()
    _check_end(end)
    if categories is None:
        from feedbackloop.golden import default_taxonomy

        categories = default_taxonomy().category_ids
    b_start, b_end = baseline_period(end, t)
    baseline = load_baseline(conn, b_start, b_end)
    frame = load_window(conn, window_start(end, t), end)
    results = evaluate(frame, baseline, end, t, categories)
    return {
        "evaluated_at": end.isoformat(),
        "thresholds": t.to_dict(),
        "baseline": baseline.to_dict(),
        "predictions": len(frame),
        "results": [r.to_dict() for r in results],
        "firing": sorted(f"{r.detector}:{r.key}" for r in results if r.status == FIRING),
    }
