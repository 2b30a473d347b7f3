"""A simulated production stream for the monitoring tests: predictions, feedback, latency.

Normal variation is built in at the sizes a real service shows, so "quiet" data is not
unrealistically clean: traffic follows a daily cycle (Poisson counts), the category mix
wobbles hour to hour (Dirichlet around the long-run mix), accuracy moves with an hourly
(sd 1 point) and a daily (sd 0.5 point) random effect, and the median latency with an
hourly factor (sd 5%). Confidence is Beta(8, 1.5) and the model is slightly overconfident
(P(correct) = confidence - 2 points), like a real LLM classifier's logprob confidence.

:class:`Regression` injects a change over an hour range: an accuracy shift, a latency
factor, a confidence shift (overconfidence without an accuracy change) or a category taking
over a share of the traffic.

:func:`load_traffic` writes a simulated frame into the app tables (predictions, category
corrections, action feedback), so the database path sees the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

CATEGORY_WEIGHTS = {
    "promotion": 14, "newsletter": 9, "receipt": 8, "shipping_update": 7, "work": 7,
    "social_notification": 6, "personal": 5, "bill_due": 5, "account_update": 5, "calendar_invite": 4,
    "financial_statement": 4, "loyalty_rewards": 4, "security_alert": 3, "phishing": 3, "travel": 3,
    "appointment": 3, "school_family": 3, "event_marketing": 3, "survey_request": 3, "fraud_alert": 2,
}  # fmt: skip
CATEGORIES = tuple(CATEGORY_WEIGHTS)
_MIX = np.array([CATEGORY_WEIGHTS[c] for c in CATEGORIES], dtype=np.float64) / sum(CATEGORY_WEIGHTS.values())
MIX_CONCENTRATION = 3000.0
LATENCY_MEDIAN_MS = 165.0
LATENCY_SIGMA = 0.46


@dataclass(frozen=True)
class Regression:
    """A change injected for hours ``[start_hour, end_hour)`` of the simulation."""

    start_hour: int
    end_hour: int
    accuracy_shift: float = 0.0
    latency_factor: float = 1.0
    confidence_shift: float = 0.0
    category: str | None = None
    category_share: float = 0.0


def simulate_traffic(
    seed: int,
    start: datetime,
    hours: int,
    rate: float = 120.0,
    label_rate: float = 0.4,
    regressions: Sequence[Regression] = (),
    quiet_hours: Sequence[int] = (),
) -> pd.DataFrame:
    """Simulated predictions of ``hours`` hours from ``start`` (see the module docstring).

    Args:
        seed: RNG seed; the same arguments give the same frame.
        start: first hour, timezone-aware.
        hours: number of hours.
        rate: mean predictions per hour (the daily cycle moves it by +-30%).
        label_rate: share of predictions that receive feedback.
        regressions: injected changes.
        quiet_hours: hour indices with almost no traffic (5% of the rate).

    Returns:
        Columns of :data:`feedbackloop.monitoring.WINDOW_COLUMNS` plus ``corrected_category``
        (the true category for wrong labelled predictions) and ``feedback_at``; sorted by time.
    """
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    cycle = 1.0 + 0.3 * np.sin(2 * np.pi * ((h % 24) - 8) / 24)
    lam = rate * cycle
    lam[np.asarray(quiet_hours, dtype=np.int64)] *= 0.05
    n_h = rng.poisson(lam)

    mix = rng.dirichlet(_MIX * MIX_CONCENTRATION, size=hours)
    acc_shift = np.zeros(hours)
    lat_factor = np.ones(hours)
    conf_shift = np.zeros(hours)
    for reg in regressions:
        sl = slice(max(0, reg.start_hour), min(hours, reg.end_hour))
        acc_shift[sl] += reg.accuracy_shift
        lat_factor[sl] *= reg.latency_factor
        conf_shift[sl] += reg.confidence_shift
        if reg.category is not None:
            k = CATEGORIES.index(reg.category)
            rest = np.delete(np.arange(len(CATEGORIES)), k)
            block = mix[sl]
            block[:, rest] *= (1 - reg.category_share) / block[:, rest].sum(axis=1, keepdims=True)
            block[:, k] = reg.category_share
            mix[sl] = block
    counts = rng.multinomial(n_h, mix)
    n = int(counts.sum())
    hour_idx = np.repeat(h, n_h)
    cat_idx = np.repeat(np.tile(np.arange(len(CATEGORIES)), hours), counts.ravel())

    day_effect = rng.normal(0.0, 0.005, size=hours // 24 + 1)
    bias = -0.02 + rng.normal(0.0, 0.01, size=hours) + day_effect[h // 24] + acc_shift
    conf = np.clip(rng.beta(8.0, 1.5, size=n), 0.30, 0.999)
    correct = rng.random(n) < np.clip(conf + bias[hour_idx], 0.0, 1.0)
    conf = np.minimum(0.999, conf + conf_shift[hour_idx])
    labelled = rng.random(n) < label_rate
    median = LATENCY_MEDIAN_MS * np.exp(rng.normal(0.0, 0.05, size=hours)) * lat_factor
    latency = np.exp(np.log(median[hour_idx]) + LATENCY_SIGMA * rng.standard_normal(n)).round(1)
    variant = np.where(rng.random(n) < 0.05, "challenger", "champion")
    at = pd.Series(pd.Timestamp(start) + pd.to_timedelta((hour_idx + rng.random(n)) * 3600.0, unit="s"))
    at = at.dt.floor("us")  # what PostgreSQL stores
    delay = pd.Series(pd.to_timedelta(rng.uniform(60.0, 1200.0, size=n), unit="s")).dt.floor("us")

    categories = np.array(CATEGORIES, dtype=object)
    predicted = categories[cat_idx]
    # A wrong prediction's true category: the next category in the list (any other would do).
    truth = categories[(cat_idx + 1) % len(CATEGORIES)]
    frame = pd.DataFrame(
        {
            "prediction_id": np.char.add(f"sim{seed}-", np.arange(n).astype(str)).astype(object),
            "user_id": np.char.add("u-", rng.integers(0, 5000, size=n).astype(str)).astype(object),
            "model_version": np.where(variant == "champion", "champion-v1", "challenger-v2").astype(object),
            "variant": variant.astype(object),
            "category": predicted,
            "confidence": conf.round(4),
            "latency_ms": latency,
            "predicted_at": at,
            "has_feedback": labelled,
            "correct": correct & labelled,
            "corrected_category": np.where(labelled & ~correct, truth, None),
            "feedback_at": (at + delay).where(labelled, pd.NaT),
        }
    )
    return frame.sort_values("predicted_at", kind="stable").reset_index(drop=True)


def load_traffic(conn: Any, frame: pd.DataFrame) -> dict[str, int]:
    """Write a simulated frame into the app tables: emails, predictions, corrections, action feedback.

    Wrong labelled predictions get a category correction; right ones get action feedback
    (the user accepted the category), so both feedback kinds are exercised. Emails are short
    English texts (the monitors never read them; the review queue's heuristics do).
    """
    emails = [
        (f"eml-{r.prediction_id}", r.user_id, "sender@example.com", f"About your {r.category.replace('_', ' ')}",
         b"Hello, please see the details below. Thanks.",
         (r.predicted_at - pd.Timedelta(seconds=2)).to_pydatetime())
        for r in frame.itertuples(index=False)
    ]  # fmt: skip
    predictions = [
        (r.prediction_id, f"eml-{r.prediction_id}", r.user_id, r.model_version, r.variant, r.category,
         float(r.confidence), [], float(r.latency_ms), r.predicted_at.to_pydatetime())
        for r in frame.itertuples(index=False)
    ]  # fmt: skip
    labelled = frame[frame["has_feedback"]]
    corrections = [
        (
            f"cor-{r.prediction_id}",
            r.prediction_id,
            r.user_id,
            r.corrected_category,
            r.feedback_at.to_pydatetime(),
        )
        for r in labelled.itertuples(index=False)
        if isinstance(r.corrected_category, str)
    ]
    accepted = [
        (f"afb-{r.prediction_id}", r.prediction_id, r.user_id, [], [], None, r.feedback_at.to_pydatetime())
        for r in labelled.itertuples(index=False)
        if not isinstance(r.corrected_category, str)
    ]
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(
            "COPY app.emails (email_id, user_id, sender, subject, body, received_at) FROM STDIN"
        ) as copy:
            for row in emails:
                copy.write_row(row)
        with cur.copy(
            "COPY app.predictions (prediction_id, email_id, user_id, model_version, variant, category, "
            "confidence, actions, latency_ms, predicted_at) FROM STDIN"
        ) as copy:
            for row in predictions:
                copy.write_row(row)
        with cur.copy(
            "COPY app.category_corrections (correction_id, prediction_id, user_id, corrected_category, "
            "created_at) FROM STDIN"
        ) as copy:
            for row in corrections:
                copy.write_row(row)
        with cur.copy(
            "COPY app.action_feedback (action_feedback_id, prediction_id, user_id, missed_actions, "
            "unnecessary_actions, note, created_at) FROM STDIN"
        ) as copy:
            for row in accepted:
                copy.write_row(row)
    return {
        "emails": len(emails),
        "predictions": len(predictions),
        "category_corrections": len(corrections),
        "action_feedback": len(accepted),
    }


def hours_between(start: datetime, end: datetime) -> int:
    """Whole hours from ``start`` to ``end``."""
    return math.floor((end - start) / timedelta(hours=1))
