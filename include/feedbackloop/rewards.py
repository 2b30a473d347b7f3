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
) -> tuple[str, ...]:
    return tuple(sorted((set(predicted) - set(unnecessary)) | set(missed)))


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
    label_category: pd.Series
    classification: np.ndarray
    confidence: np.ndarray
    n_missed: np.ndarray
    n_unnecessary: np.ndarray
    engaged: np.ndarray
    label_actions: pd.Series = field(repr=False)


_ACTION_COLUMNS: Final = ("predicted_actions", "missed_actions", "unnecessary_actions")
# Action sets are 64-bit masks: at most 64 distinct actions in one frame (the taxonomy has
# ~30); more falls back to the per-row path.
_MAX_VECTOR_ACTIONS: Final = 64


def _list_type() -> Any:
    import pyarrow as pa

    return pa.list_(pa.string())


def _string_array(series: pd.Series, name: str) -> Any:
    import pyarrow as pa

    try:
        arr = pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"compute_rewards: {name} must hold strings ({exc})") from exc
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _vector_action_masks(df: pd.DataFrame) -> tuple[list[np.ndarray], list[str]] | None:
    """Per row, the distinct actions of each action column as bit masks over a sorted
    vocabulary, computed in Arrow and NumPy (no per-row Python).

    Returns None when a column cannot be read this way (a cell that is not a list of
    strings, or more than :data:`_MAX_VECTOR_ACTIONS` distinct actions): the caller then
    takes the per-row path, which gives the same result or the per-row error message.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for col in _ACTION_COLUMNS:
        try:
            arr = pa.array(df[col], type=_list_type(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            return None
        arrays.append(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    # Each column's values (its child array, sliced to the rows) and row offsets, read
    # zero-copy from the offsets buffer.
    spans = []
    for arr in arrays:
        raw = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
        first = int(raw[0])
        offsets = raw.astype(np.int64) - first
        spans.append((arr.values.slice(first, int(offsets[-1])), offsets))
    # Each column dictionary-encoded on its own (no concatenated copy), then one sorted
    # vocabulary over the three, so that bit order is alphabetical order (label lists
    # come out sorted).
    encoded = [pc.dictionary_encode(values) for values, _ in spans]
    dictionaries = [e.dictionary.to_pylist() for e in encoded]
    vocab = sorted({v for d in dictionaries for v in d if v is not None})
    if len(vocab) > _MAX_VECTOR_ACTIONS:
        return None
    # Arrow reads a bare string cell as the list of its characters. Action ids are longer
    # than one character, so a one-character "action" is the only case to look closer at.
    if any(len(v) == 1 for v in vocab) and any(
        isinstance(v, str) for col in _ACTION_COLUMNS for v in df[col].to_numpy(dtype=object)
    ):
        return None
    rank = {v: i for i, v in enumerate(vocab)}
    n = len(df)
    masks = []
    for arr, (_, offsets), enc, dictionary in zip(arrays, spans, encoded, dictionaries, strict=True):
        # The bit of each dictionary entry; a None inside a list is no action (bit 0).
        bit_of = np.array([0] + [1 << rank[v] if v is not None else 0 for v in dictionary], dtype=np.uint64)
        indices = enc.indices
        codes = pc.fill_null(pc.add(indices, 1), 0) if indices.null_count else pc.add(indices, 1)
        col_bits = bit_of[codes.to_numpy(zero_copy_only=False)]
        nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
        if len(nonempty) == n:
            # OR the bits of each row's values (an action listed twice sets the same bit,
            # so duplicates count once).
            mask = np.bitwise_or.reduceat(col_bits, offsets[:-1])
        else:
            mask = np.zeros(n, dtype=np.uint64)
            if len(nonempty):
                mask[nonempty] = np.bitwise_or.reduceat(col_bits, offsets[nonempty])
        if arr.null_count:
            mask[~pc.is_valid(arr).to_numpy(zero_copy_only=False)] = 0
        masks.append(mask)
    return masks, vocab


def _popcount(masks: np.ndarray) -> np.ndarray:
    return np.bitwise_count(masks).astype(np.float64)


def _label_actions_from_masks(masks: np.ndarray, vocab: list[str], index: pd.Index) -> pd.Series:
    """Decode each distinct label mask once; rows share the (immutable) tuples."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(masks):
        return pd.Series(np.empty(0, dtype=object), index=index, dtype=object)
    encoded = pc.dictionary_encode(pa.array(masks, type=pa.uint64()))
    distinct = encoded.dictionary.to_numpy()
    decoded = np.empty(len(distinct), dtype=object)
    decoded[:] = [tuple(a for bit, a in enumerate(vocab) if (int(m) >> bit) & 1) for m in distinct]
    return pd.Series(decoded[encoded.indices.to_numpy()], index=index, dtype=object)


def _float_array(series: pd.Series) -> np.ndarray:
    """``confidence`` as float64 (NULL becomes NaN, caught by the finite check)."""
    import pyarrow as pa

    try:
        arr = pa.array(series, type=pa.float64(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return pd.to_numeric(series, errors="raise").to_numpy(dtype=np.float64)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _engaged(series: pd.Series) -> np.ndarray:
    """``user_took_action`` as a bool array; None / NA (unknown) is False."""
    if series.dtype == np.bool_:
        return series.to_numpy(dtype=bool)
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(series, type=pa.bool_(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return series.astype("boolean").fillna(False).to_numpy(dtype=bool)
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _normalise(df: pd.DataFrame) -> _Normalised:
    import pyarrow.compute as pc

    missing = [c for c in _REQUIRED_INPUT if c not in df.columns]
    if missing:
        raise ValueError(f"compute_rewards: input is missing column(s) {missing}")
    predicted = _string_array(df["predicted_category"], "predicted_category")
    if predicted.null_count:
        raise ValueError("compute_rewards: predicted_category must not be null")
    corrected = _string_array(df["corrected_category"], "corrected_category")
    # No correction means the user accepted the prediction (equal is NULL there: +1).
    label = pc.coalesce(corrected, predicted)
    accepted = pc.fill_null(pc.equal(corrected, predicted), True)
    classification = np.where(accepted.to_numpy(zero_copy_only=False), 1.0, -1.0)

    confidence = _float_array(df["confidence"])
    bad = ~np.isfinite(confidence)
    if bad.any():
        raise ValueError(
            f"compute_rewards: confidence must be a finite number, got {confidence[bad][:3].tolist()} "
            "(validate the feedback before computing rewards)"
        )
    engaged = _engaged(df["user_took_action"])

    vector = _vector_action_masks(df)
    if vector is not None:
        (pred_m, missed_m, unnecessary_m), vocab = vector
        n_missed, n_unnecessary = _popcount(missed_m), _popcount(unnecessary_m)
        # Missed wins over unnecessary (see compute_rewards).
        label_actions = _label_actions_from_masks((pred_m & ~unnecessary_m) | missed_m, vocab, df.index)
    else:
        pred_actions = [action_list(v) for v in df["predicted_actions"].to_numpy(dtype=object)]
        missed = [action_list(v) for v in df["missed_actions"].to_numpy(dtype=object)]
        unnecessary = [action_list(v) for v in df["unnecessary_actions"].to_numpy(dtype=object)]
        n_missed = np.fromiter((len(m) for m in missed), dtype=np.float64, count=len(missed))
        n_unnecessary = np.fromiter((len(u) for u in unnecessary), dtype=np.float64, count=len(unnecessary))
        rows = np.empty(len(df), dtype=object)
        rows[:] = [_label_actions(p, m, u) for p, m, u in zip(pred_actions, missed, unnecessary, strict=True)]
        label_actions = pd.Series(rows, index=df.index, dtype=object)
    return _Normalised(
        label_category=pd.Series(label, index=df.index, dtype="str"),
        classification=classification,
        confidence=confidence,
        n_missed=n_missed,
        n_unnecessary=n_unnecessary,
        engaged=engaged,
        label_actions=label_actions,
    )


def compute_rewards(
    df: pd.DataFrame,
    weights: RewardWeights = RewardWeights(),  # noqa: B008 - frozen, immutable default
) -> pd.DataFrame:
    """Rewards for a frame of validated feedback records (vectorised; input not modified).

    Adds the columns of :data:`REWARD_COLUMNS` to a copy of ``df``:

    - ``label_category``: the category the user confirmed (``corrected_category``, or
      ``predicted_category`` when they made no correction);
    - ``label_actions``: predicted actions minus unnecessary plus missed, as a sorted tuple
      of distinct action ids (the training target for the action head; rows with the same
      actions share one immutable tuple);
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

    Performance: no per-row Python. Action lists go through Arrow (zero-copy when the
    columns are already Arrow-backed, e.g. ``to_pandas(types_mapper=pd.ArrowDtype)``) and
    become 64-bit masks over the actions seen; frames with more than 64 distinct actions,
    or cells Arrow cannot read, take a per-row path with the same results.

    Returns:
        A new DataFrame: the input columns followed by the reward columns (input columns
        are shared, copy-on-write, not copied).

    Raises:
        ValueError: a required column is missing, ``predicted_category`` is null or
            ``confidence`` is not finite.
    """
    n = _normalise(df)
    classification = n.classification
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
    added = pd.DataFrame(
        {
            "label_category": n.label_category,
            "label_actions": n.label_actions,
            "reward_classification": classification,
            "reward_actions": actions,
            "reward_calibration": calibration,
            "reward_engagement": engagement,
            "reward": total,
        },
        index=df.index,
        copy=False,  # fresh arrays: no need to copy them into one block
    )
    # Input columns are shared, not copied (copy-on-write): the caller's frame is untouched.
    return pd.concat([df.drop(columns=list(REWARD_COLUMNS), errors="ignore"), added], axis=1)


def regret_span(weights: RewardWeights = RewardWeights()) -> float:  # noqa: B008 - frozen, immutable default
    """The regret (``max_reward - reward``) at which :func:`sample_weight_factor` saturates.

    It is the regret of a *confidently wrong* prediction without action feedback or
    engagement (classification -1, calibration 0, engagement 0): ``max_reward +
    classification`` (1.1 with the brief's weights). Only when the classification,
    calibration and engagement weights are all 0 is it the regret of one missed action.
    """
    span = weights.max_reward + weights.classification
    return span if span > 0 else -MISSED_ACTION_PENALTY * weights.actions


def sample_weight_factor(
    reward: np.ndarray | pd.Series | Sequence[float],
    weights: RewardWeights = RewardWeights(),  # noqa: B008 - frozen, immutable default
    max_factor: float = 2.0,
) -> np.ndarray:
    """How much more a training example counts because the model got it wrong.

    The reward scores the model's *prediction*; its shortfall from the best reachable
    reward, the regret ``max_reward - reward``, measures how much the feedback taught us.
    The factor grows linearly with the regret, from 1 (no regret) to ``max_factor`` (at
    :func:`regret_span` or more)::

        factor = 1 + (max_factor - 1) * clip((max_reward - reward) / regret_span, 0, 1)

    With the brief's weights (``max_reward`` 0.7, span 1.1) and ``max_factor`` 2:

    ==========================================================  ======  ======
    feedback                                                    reward  factor
    ==========================================================  ======  ======
    accepted, confidence 1.0, user acted                        0.70    1.000
    accepted, confidence 0.9, no action taken                   0.58    1.109
    accepted, confidence 0.6, one missed action, user acted     0.47    1.209
    corrected, confidence 0.3, user acted                       -0.16   1.782
    corrected, confidence 0.9, no action taken                  -0.38   1.982
    corrected, confidence 0.9, one missed action                -0.53   2.000
    ==========================================================  ======  ======

    So corrections (the model was wrong, often confidently) count about twice as much as
    confirmed, confident predictions, which the model already gets right.

    Args:
        reward: prediction rewards (``compute_rewards``' ``reward`` column).
        weights: the reward weights the rewards were computed with.
        max_factor: the factor at full regret; 1 turns reward weighting off.

    Returns:
        A float64 array of factors in ``[1, max_factor]``.

    Raises:
        ValueError: a reward is not finite, or ``max_factor`` is not a finite number >= 1.
    """
    if isinstance(max_factor, bool) or not math.isfinite(max_factor) or max_factor < 1.0:
        raise ValueError(f"max_factor must be a finite number >= 1, got {max_factor!r}")
    r = np.asarray(reward, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise ValueError("sample_weight_factor: rewards must be finite")
    regret = np.clip((weights.max_reward - r) / regret_span(weights), 0.0, 1.0)
    return 1.0 + (max_factor - 1.0) * regret


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
