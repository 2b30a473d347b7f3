"""Rewards: turn human feedback on a prediction into numbers.

The product brief ("Phase 2.1 Reward Modeling") defines a per-prediction, multi-objective
reward. :func:`calculate_reward` is that function transcribed faithfully (it is the
reference the tests compare against); :func:`compute_rewards` is the vectorised version the
pipeline runs over a whole frame of validated feedback records.

Components (brief's numbers, weights configurable through :class:`RewardWeights`):

==============  ===========================================================  ==========
component       definition                                                   range
==============  ===========================================================  ==========
classification  +1 if the user's category equals the predicted one, else -1  {-1, +1}
actions         -0.5 per missed action, -0.3 per unnecessary action          (-inf, 0]
calibration     1 - |confidence - (1 if classification correct else 0)|     [0, 1]
engagement      1 if the user acted on the email, else 0                     {0, 1}
reward          0.4 * classification + 0.3 * actions + 0.2 * calibration
                + 0.1 * engagement                                           <= 0.7
==============  ===========================================================  ==========
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import pandas as pd

MISSED_ACTION_PENALTY: Final = -0.5
UNNECESSARY_ACTION_PENALTY: Final = -0.3

# Columns compute_rewards adds, in this order.
REWARD_COLUMNS: Final = (
    "label_category",
    "label_actions",
    "reward_classification",
    "reward_actions",
    "reward_calibration",
    "reward_engagement",
    "reward",
)

_REQUIRED_INPUT: Final = (
    "predicted_category",
    "confidence",
    "predicted_actions",
    "corrected_category",
    "missed_actions",
    "unnecessary_actions",
    "user_took_action",
)


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the four reward components (the brief's 0.4 / 0.3 / 0.2 / 0.1).

    Raises:
        ValueError: a weight is negative or not finite, or the weights do not sum to 1
            (within 1e-9), so rewards stay comparable between runs and configurations.
    """

    classification: float = 0.4
    actions: float = 0.3
    calibration: float = 0.2
    engagement: float = 0.1

    def __post_init__(self) -> None:
        for name in ("classification", "actions", "calibration", "engagement"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"reward weight {name!r} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"reward weight {name!r} must be a finite number >= 0, got {value!r}")
        total = self.classification + self.actions + self.calibration + self.engagement
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"reward weights must sum to 1, got {total!r} ({self})")

    @property
    def max_reward(self) -> float:
        """The highest reachable reward: correct, no action feedback, confidence 1, engaged."""
        return self.classification + self.calibration + self.engagement


# --- the brief's objects ---------------------------------------------------------------


class PredictionLike(Protocol):
    category: str
    confidence: float


class FeedbackLike(Protocol):
    corrected_category: str | None
    missed_actions: Sequence[str]
    unnecessary_actions: Sequence[str]


class ContextLike(Protocol):
    user_took_action: bool | None


@dataclass(frozen=True)
class Prediction:
    """What the model said (the brief's ``prediction``)."""

    category: str
    confidence: float
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Feedback:
    """What the user said (the brief's ``feedback``). ``corrected_category`` is the category
    the user confirmed: the corrected one, or the predicted one when they accepted it."""

    corrected_category: str
    missed_actions: tuple[str, ...] = ()
    unnecessary_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """Implicit signals (the brief's ``context``)."""

    user_took_action: bool | None = None


def calculate_reward(
    prediction: PredictionLike,
    feedback: FeedbackLike,
    context: ContextLike,
    weights: RewardWeights = RewardWeights(),  # noqa: B008 - frozen, immutable default
) -> tuple[float, dict[str, float]]:
    """The brief's reward function, transcribed as written (the reference implementation).

    Only the constant weights are taken from ``weights``. Note that, as in the brief,
    ``feedback.corrected_category`` is compared with the predicted category directly: pass
    the *confirmed* category (use :func:`reference_inputs` to build the objects from a
    feedback record, which maps "no correction" to the predicted category).

    Args:
        prediction: has ``category`` and ``confidence``.
        feedback: has ``corrected_category``, ``missed_actions``, ``unnecessary_actions``.
        context: has ``user_took_action`` (falsy, including None, means no engagement).
        weights: component weights.

    Returns:
        ``(total_reward, components)`` with components ``classification``, ``actions``,
        ``calibration`` and ``engagement``.
    """
    rewards: dict[str, float] = {}

    # 1. Classification reward (+1 correct, -1 wrong)
    if feedback.corrected_category == prediction.category:
        rewards["classification"] = 1.0
    else:
        rewards["classification"] = -1.0

    # 2. Action suggestion reward
    missed_penalty = MISSED_ACTION_PENALTY * len(feedback.missed_actions)
    unnecessary_penalty = UNNECESSARY_ACTION_PENALTY * len(feedback.unnecessary_actions)
    rewards["actions"] = missed_penalty + unnecessary_penalty

    # 3. Confidence calibration reward
    error = abs(prediction.confidence - (1.0 if rewards["classification"] > 0 else 0.0))
    rewards["calibration"] = 1.0 - error

    # 4. User engagement reward (implicit)
    if context.user_took_action:
        rewards["engagement"] = 1.0
    else:
        rewards["engagement"] = 0.0

    # Weighted combination
    total_reward = (
        weights.classification * rewards["classification"]
        + weights.actions * rewards["actions"]
        + weights.calibration * rewards["calibration"]
        + weights.engagement * rewards["engagement"]
    )

    return total_reward, rewards


# --- record normalisation shared by the reference and the vectorised path ---------------


def action_list(value: Any) -> tuple[str, ...]:
    """Distinct actions of a list cell, sorted; None / NaN / empty mean "no actions".

    Parquet round trips turn list cells into numpy arrays, and validated frames may hold
    lists or tuples, so any iterable of strings is accepted. Duplicates are dropped: an
    action the user ticked twice is one missed action, not two.
    """
    if value is None:
        return ()
    if isinstance(value, float) and math.isnan(value):
        return ()
    if isinstance(value, str):
        raise TypeError(f"an action list must be a list of strings, got the string {value!r}")
    if not isinstance(value, Iterable):
        raise TypeError(f"an action list must be a list of strings, got {type(value).__name__}")
    return tuple(sorted({str(a) for a in value if a is not None}))


def _label_actions(
    predicted: tuple[str, ...], missed: tuple[str, ...], unnecessary: tuple[str, ...]
) -> list[str]:
    return sorted((set(predicted) - set(unnecessary)) | set(missed))


def reference_inputs(record: dict[str, Any] | pd.Series) -> tuple[Prediction, Feedback, Context]:
    """Map one feedback record to the brief's ``prediction`` / ``feedback`` / ``context``.

    ``corrected_category`` None (the user accepted the prediction) becomes the predicted
    category; list cells go through :func:`action_list`; ``user_took_action`` None / NA
    (unknown) becomes None, which the reward treats as no engagement.
    """
    predicted = str(record["predicted_category"])
    corrected = record["corrected_category"]
    if corrected is None or (not isinstance(corrected, str) and pd.isna(corrected)):
        corrected = predicted
    took = record["user_took_action"]
    if took is None or (not isinstance(took, bool | np.bool_) and pd.isna(took)):
        took = None
    return (
        Prediction(
            category=predicted,
            confidence=float(record["confidence"]),
            actions=action_list(record["predicted_actions"]),
        ),
        Feedback(
            corrected_category=str(corrected),
            missed_actions=action_list(record["missed_actions"]),
            unnecessary_actions=action_list(record["unnecessary_actions"]),
        ),
        Context(user_took_action=None if took is None else bool(took)),
    )


@dataclass(frozen=True)
class _Normalised:
    label_category: np.ndarray
    predicted_category: np.ndarray
    confidence: np.ndarray
    n_missed: np.ndarray
    n_unnecessary: np.ndarray
    engaged: np.ndarray
    label_actions: list[list[str]] = field(repr=False)


def _normalise(df: pd.DataFrame) -> _Normalised:
    missing = [c for c in _REQUIRED_INPUT if c not in df.columns]
    if missing:
        raise ValueError(f"compute_rewards: input is missing column(s) {missing}")
    predicted = df["predicted_category"].to_numpy(dtype=object)
    if any(p is None or (isinstance(p, float) and math.isnan(p)) for p in predicted):
        raise ValueError("compute_rewards: predicted_category must not be null")
    corrected = df["corrected_category"].astype(object).to_numpy()
    accepted = pd.isna(corrected)
    label = np.where(accepted, predicted, corrected).astype(object)

    confidence = pd.to_numeric(df["confidence"], errors="raise").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(confidence)
    if bad.any():
        raise ValueError(
            f"compute_rewards: confidence must be a finite number, got {confidence[bad][:3].tolist()} "
            "(validate the feedback before computing rewards)"
        )

    pred_actions = [action_list(v) for v in df["predicted_actions"].to_numpy(dtype=object)]
    missed = [action_list(v) for v in df["missed_actions"].to_numpy(dtype=object)]
    unnecessary = [action_list(v) for v in df["unnecessary_actions"].to_numpy(dtype=object)]
    engaged = df["user_took_action"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return _Normalised(
        label_category=label,
        predicted_category=predicted,
        confidence=confidence,
        n_missed=np.fromiter((len(m) for m in missed), dtype=np.float64, count=len(missed)),
        n_unnecessary=np.fromiter((len(u) for u in unnecessary), dtype=np.float64, count=len(unnecessary)),
        engaged=engaged,
        label_actions=[
            _label_actions(p, m, u) for p, m, u in zip(pred_actions, missed, unnecessary, strict=True)
        ],
    )


def compute_rewards(
    df: pd.DataFrame,
    weights: RewardWeights = RewardWeights(),  # noqa: B008 - frozen, immutable default
) -> pd.DataFrame:
    """Rewards for a frame of validated feedback records (vectorised; input not modified).

    Adds the columns of :data:`REWARD_COLUMNS` to a copy of ``df``:

    - ``label_category``: the category the user confirmed (``corrected_category``, or
      ``predicted_category`` when they made no correction);
    - ``label_actions``: predicted actions minus unnecessary plus missed, as a sorted list
      of distinct action ids (the training target for the action head);
    - ``reward_classification``, ``reward_actions``, ``reward_calibration``,
      ``reward_engagement``: the brief's components (see the module docstring);
    - ``reward``: their weighted sum.

    Edge cases:

    - ``corrected_category`` None means the user accepted the prediction: +1. A
      "correction" equal to the predicted category is also +1.
    - ``predicted_actions`` / ``missed_actions`` / ``unnecessary_actions`` None, NaN or
      empty mean no actions; duplicated entries count once.
    - An action reported both missed and unnecessary is contradictory: both penalties
      apply (the user did report both) and the label keeps the action (missed wins,
      because leaving out an action the user needs costs more than suggesting an extra one).
    - A missed action that was in fact predicted is still penalised (the user did not see
      it as suggested) and stays in the label.
    - ``user_took_action`` None / NA (unknown) counts as no engagement (0).
    - ``confidence`` is used as given (validation bounds it to [0, 1]); NaN or infinite
      values raise ``ValueError`` rather than producing NaN rewards.
    - An empty frame returns an empty frame with the reward columns added.

    Args:
        df: validated feedback records (columns of ``contracts.FEEDBACK_COLUMNS``).
        weights: component weights.

    Returns:
        A new DataFrame: the input columns followed by the reward columns.

    Raises:
        ValueError: a required column is missing, ``predicted_category`` is null or
            ``confidence`` is not finite.
    """
    n = _normalise(df)
    classification = np.where(n.label_category == n.predicted_category, 1.0, -1.0)
    # "+ 0.0" turns the -0.0 of "no feedback" into 0.0 (same value, cleaner output).
    actions = MISSED_ACTION_PENALTY * n.n_missed + UNNECESSARY_ACTION_PENALTY * n.n_unnecessary + 0.0
    calibration = 1.0 - np.abs(n.confidence - np.where(classification > 0, 1.0, 0.0))
    engagement = np.where(n.engaged, 1.0, 0.0)
    # Same operation order as calculate_reward, so both agree to the last bit.
    total = (
        weights.classification * classification
        + weights.actions * actions
        + weights.calibration * calibration
        + weights.engagement * engagement
    )
    out = df.copy()
    out["label_category"] = pd.Series(n.label_category, index=df.index, dtype="str")
    out["label_actions"] = pd.Series(n.label_actions, index=df.index, dtype=object)
    out["reward_classification"] = classification
    out["reward_actions"] = actions
    out["reward_calibration"] = calibration
    out["reward_engagement"] = engagement
    out["reward"] = total
    return out


def summarize_rewards(df: pd.DataFrame) -> dict[str, Any]:
    """Small JSON-safe summary of a rewards frame (for XCom and logs).

    Returns:
        ``rows``, the mean of each component and of the total, and the share of rows
        whose category was corrected (``correction_rate``).
    """
    if len(df) == 0:
        return {"rows": 0}
    summary: dict[str, Any] = {"rows": int(len(df))}
    for col in (
        "reward",
        "reward_classification",
        "reward_actions",
        "reward_calibration",
        "reward_engagement",
    ):
        summary[f"mean_{col}"] = round(float(df[col].mean()), 6)
    summary["correction_rate"] = round(float((df["reward_classification"] < 0).mean()), 6)
    return summary
