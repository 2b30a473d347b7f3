"""Training sets from scored feedback: supervised examples and preference pairs.

:func:`build_training_sets` turns the rewards frame (validated feedback records plus the
columns of :func:`feedbackloop.rewards.compute_rewards`) into

- ``train`` / ``validation`` DataFrames for the local trainer (columns
  :data:`FRAME_COLUMNS`, with a per-example ``weight``);
- ``train_jsonl`` / ``validation_jsonl``: OpenAI chat fine-tuning files (one JSON object per
  line: ``{"messages": [system, user, assistant]}``);
- ``preference_jsonl`` / ``preference_validation_jsonl``: OpenAI DPO files (``{"input":
  {"messages": [system, user]}, "preferred_output": [assistant], "non_preferred_output":
  [assistant]}``), one pair per row where the user changed the category or the actions;
- ``weights_jsonl``: the sidecar of per-example weights (see below);
- ``stats``: counts, exclusions by reason, token and cost estimates (JSON-safe).

Steps, in order (each exclusion is counted in ``stats["excluded"]``):

1. **Text.** ``From: sender\\nSubject: subject\\n\\nbody`` (the layout every backend sees),
   with PII replaced by typed placeholders (:func:`feedbackloop.pii.redact`). The sender's
   e-mail domain is kept by default (``[EMAIL]@paypa1-secure.com``): lookalike sender
   domains are the best phishing signal, and a company domain is not personal data.
2. **Golden guard** (``golden_near_duplicate``): a row whose raw text is a near-duplicate
   of a golden-set email (:class:`feedbackloop.textsim.NearDuplicateIndex`, threshold
   ``golden_similarity``) is dropped from every output, so the release gate never scores
   the model on an email it was trained on.
3. **Labels** (``unknown_category``): rows whose label category is not in the taxonomy are
   dropped; label actions not allowed for the label category are removed from the label
   (counted in ``stats["label_actions_dropped"]``). When the user changed the category and
   none of the predicted actions is allowed for the new one, the label actions are the
   user's missed actions, or else the new category's default action; each example records
   where its actions came from in ``label_actions_source`` (``observed`` / ``missed`` /
   ``category_default``, counted per split in ``stats["label_actions_source"]``).
4. **Label-side reward** (``low_reward``): see :class:`DatasetConfig.min_reward`.
5. **Duplicates** (``duplicate_email``): identical emails (same
   :func:`~feedbackloop.textsim.normalize_text`) are kept once, the highest-reward row
   (ties: newest feedback, then smallest example id).
6. **Hold-out split**: ``validation`` when ``sha256(seed:email_id)`` falls in the first
   ``holdout_fraction`` of the hash range, else ``train``. A hash, never a random draw: an
   email keeps its split when new feedback arrives, and all rows of one email share a split.
7. **Category cap** (``capped``, train only): no category above ``max_category_share`` of
   the training set. Over-represented categories keep, in this order, category
   corrections, then action corrections, then accepted predictions (corrections are the
   most informative rows), each by higher label-side reward, ties by example id. The
   validation split keeps the natural distribution, since it estimates production
   accuracy. Preference pairs are built from the training rows before the cap.
8. **Weights** (per split, both splits): ``weight = user part x reward factor``, normalised
   to mean 1 (so feedback rows and weight-1 seed rows stay on the same scale). The user
   part is ``1 / sqrt(n_user)`` (a user with n examples contributes ``sqrt(n)`` in total
   instead of n); the reward factor is
   :func:`feedbackloop.rewards.sample_weight_factor` of the row's prediction reward, from
   1 (confirmed, confident prediction) up to ``max_reward_factor`` (default 2: a
   confidently wrong prediction the user corrected). An optional hard cap on any user's
   share of the total weight is applied to the combined weights. The factor is in the
   frames as ``reward_factor``.

**Weights and OpenAI.** OpenAI chat fine-tuning accepts only ``weight`` 0 or 1 on assistant
messages (whether the message is trained on), not a real-valued sample weight. Rewards
decide inclusion (an excluded row is absent, never a weight-0 line), so every assistant
message in the JSONL is trained on and carries no ``weight`` key (the default, 1); the
real-valued weights live in the DataFrames (the local trainer passes them to scikit-learn
as ``sample_weight``) and in the ``weights_jsonl`` sidecar, which maps each JSONL line (by
``split`` and 1-based ``line``) to its ``example_id``, ``weight`` and ``reward``.

**Scale.** :func:`build_training_sets` returns everything in memory;
:func:`write_training_sets` makes the same bytes as files with bounded memory (a Parquet
source read in record batches, compact per-row decisions, an external sort by example
id), optionally with worker processes for the per-text work.

**Determinism.** Every output is sorted by ``example_id`` (a hash of the feedback id),
serialised with ``json.dumps(sort_keys=True, ensure_ascii=False)`` and ``"\\n"`` line
endings; every tie is broken on a unique key. The same input, in any row order, gives the
same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import pickle
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import numpy as np
import pandas as pd

from feedbackloop.golden import GoldenEmail, Taxonomy
from feedbackloop.pii import PII_TYPES, redact
from feedbackloop.rewards import RewardWeights, action_list, regret_span, sample_weight_factor
from feedbackloop.textsim import NearDuplicateIndex, normalize_text

log = logging.getLogger(__name__)

# OpenAI fine-tuning training prices in USD per 1M training tokens, for the default base
# model gpt-4o-mini-2024-07-18, as listed on openai.com/api/pricing (read 2025-06; DPO is
# billed at the same per-token rate as supervised). Prices change: override them in
# DatasetConfig. OpenAI bills tokens x epochs.
OPENAI_SUPERVISED_USD_PER_1M_TOKENS: Final = 3.00
OPENAI_DPO_USD_PER_1M_TOKENS: Final = 3.00
PRICES_AS_OF: Final = "2025-06"

# Token estimate: OpenAI's rule of thumb is ~4 characters per token for English. We count
# UTF-8 bytes instead of characters, which over-estimates (safely, for a cost guard) for
# non-Latin scripts, where a character is several bytes and often a token of its own;
# plus the chat format's per-message and per-example overhead (cookbook: 3-4 tokens per
# message, 3 to prime the reply). Expect +/-20% against tiktoken on English mail.
BYTES_PER_TOKEN: Final = 4
TOKENS_PER_MESSAGE: Final = 4
TOKENS_PER_EXAMPLE: Final = 3

FRAME_COLUMNS: Final = (
    "example_id",
    "feedback_id",
    "email_id",
    "user_id",
    "text",
    "category",
    "actions",
    "weight",
    "reward",
    "reward_factor",
    "label_actions_source",
)

EXCLUSION_REASONS: Final = (
    "golden_near_duplicate",
    "unknown_category",
    "low_reward",
    "duplicate_email",
    "capped",
)

_REQUIRED_COLUMNS: Final = (
    "feedback_id",
    "email_id",
    "user_id",
    "sender",
    "subject",
    "body",
    "predicted_category",
    "predicted_actions",
    "confidence",
    "feedback_at",
    "user_took_action",
    "label_category",
    "label_actions",
    "missed_actions",
    "reward",
)

UserWeighting = Literal["inverse_sqrt", "none"]


class InsufficientDataError(ValueError):
    """Too few training examples remain to train on (OpenAI requires at least 10)."""


@dataclass(frozen=True)
class DatasetConfig:
    """How training sets are built. Every field has a production default.

    Attributes:
        holdout_fraction: share of emails held out for validation (brief: 20%).
        max_category_share: no category above this share of the training set. When fewer
            than ``1 / max_category_share`` categories are present the cap cannot be met;
            the effective cap is then ``1 / n_categories`` (reported in stats).
        min_reward: minimum **label-side** reward for a supervised example. The reward of
            a feedback row scores the model's *prediction*; a corrected row has a low
            reward precisely because the model was wrong, and its corrected label is the
            most useful training target there is, so filtering on the prediction reward
            would throw the corrections away. A supervised example trains on the *label*,
            so the threshold applies to the reward the label itself would earn under the
            brief's function: classification +1 (it is the category the user confirmed),
            actions 0 (it already includes the missed and excludes the unnecessary
            actions), calibration = the model's confidence in the label category (the
            confidence when the user accepted the prediction, at most ``1 - confidence``
            when they corrected it) and the row's engagement. With the brief's weights
            that is ``0.4 + 0.2 * c_label + 0.1 * engagement``, in [0.4, 0.7], so the
            default 0.0 keeps every human-confirmed label; raising it (e.g. to 0.5) keeps
            only labels the user engaged with or that the model already leaned towards.
        max_reward_factor: how much a row whose prediction earned the lowest reward counts
            relative to a confidently confirmed one (see
            :func:`feedbackloop.rewards.sample_weight_factor`): the factor grows with the
            regret ``max_reward - reward`` from 1 to this value. 1 turns reward weighting
            off (weights then come from the user weighting alone).
        user_weighting: ``"inverse_sqrt"`` (weight ``1/sqrt(n_user)``) or ``"none"``.
        max_user_weight_share: optional hard cap on one user's share of a split's total
            weight (``None``: no cap beyond the square root). Cannot go below
            ``1 / n_users``.
        min_examples: fewer training examples raise :class:`InsufficientDataError`
            (OpenAI rejects files with fewer than 10 examples).
        warn_examples: fewer training examples add a warning to ``stats`` (OpenAI
            recommends 50-100 to see an improvement).
        golden_similarity: near-duplicate threshold for the golden guard.
        seed: salt of the hold-out hash. Changing it reshuffles the split (and so breaks
            split stability across runs): keep it fixed.
        keep_sender_domain: keep the domain of the sender's address in the text.
        n_epochs: epochs assumed for the cost estimate (the brief's ``--n_epochs 3``).
        openai_supervised_usd_per_1m_tokens: supervised training price.
        openai_dpo_usd_per_1m_tokens: DPO training price.
        reward_weights: weights for the label-side reward (a mapping is accepted, so the
            config can come from JSON).
    """

    holdout_fraction: float = 0.2
    max_category_share: float = 0.25
    min_reward: float = 0.0
    max_reward_factor: float = 2.0
    user_weighting: UserWeighting = "inverse_sqrt"
    max_user_weight_share: float | None = None
    min_examples: int = 10
    warn_examples: int = 50
    golden_similarity: float = 0.5
    seed: int = 0
    keep_sender_domain: bool = True
    n_epochs: int = 3
    openai_supervised_usd_per_1m_tokens: float = OPENAI_SUPERVISED_USD_PER_1M_TOKENS
    openai_dpo_usd_per_1m_tokens: float = OPENAI_DPO_USD_PER_1M_TOKENS
    reward_weights: RewardWeights = field(default_factory=RewardWeights)

    def __post_init__(self) -> None:
        if isinstance(self.reward_weights, Mapping):
            object.__setattr__(self, "reward_weights", RewardWeights(**self.reward_weights))
        if not isinstance(self.reward_weights, RewardWeights):
            raise ValueError(
                f"reward_weights must be RewardWeights or a mapping, got {self.reward_weights!r}"
            )
        # Values can arrive as strings from templated Airflow params.
        for name, kind in (
            ("holdout_fraction", float),
            ("max_category_share", float),
            ("min_reward", float),
            ("max_reward_factor", float),
            ("golden_similarity", float),
            ("openai_supervised_usd_per_1m_tokens", float),
            ("openai_dpo_usd_per_1m_tokens", float),
            ("min_examples", int),
            ("warn_examples", int),
            ("seed", int),
            ("n_epochs", int),
        ):
            value = getattr(self, name)
            try:
                coerced = kind(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"DatasetConfig.{name} must be a {kind.__name__}, got {value!r}") from exc
            if isinstance(value, bool) or (kind is int and coerced != float(value)):
                raise ValueError(f"DatasetConfig.{name} must be a {kind.__name__}, got {value!r}")
            object.__setattr__(self, name, coerced)
        if self.max_user_weight_share is not None:
            object.__setattr__(self, "max_user_weight_share", float(self.max_user_weight_share))
        checks = (
            (0.0 <= self.holdout_fraction < 1.0, "holdout_fraction must be in [0, 1)"),
            (0.0 < self.max_category_share <= 1.0, "max_category_share must be in (0, 1]"),
            (math.isfinite(self.min_reward), "min_reward must be finite"),
            (
                math.isfinite(self.max_reward_factor) and 1.0 <= self.max_reward_factor <= 10.0,
                "max_reward_factor must be in [1, 10]",
            ),
            (
                self.user_weighting in ("inverse_sqrt", "none"),
                "user_weighting must be 'inverse_sqrt' or 'none'",
            ),
            (
                self.max_user_weight_share is None or 0.0 < self.max_user_weight_share <= 1.0,
                "max_user_weight_share must be None or in (0, 1]",
            ),
            (self.min_examples >= 1, "min_examples must be >= 1"),
            (self.warn_examples >= self.min_examples, "warn_examples must be >= min_examples"),
            (0.0 < self.golden_similarity <= 1.0, "golden_similarity must be in (0, 1]"),
            (self.n_epochs >= 1, "n_epochs must be >= 1"),
            (
                self.openai_supervised_usd_per_1m_tokens >= 0 and self.openai_dpo_usd_per_1m_tokens >= 0,
                "prices must be >= 0",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DatasetConfig: {message}")


@dataclass(frozen=True)
class TrainingSets:
    """The outputs of :func:`build_training_sets` (see the module docstring)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    train_jsonl: bytes
    validation_jsonl: bytes
    preference_jsonl: bytes
    preference_validation_jsonl: bytes
    weights_jsonl: bytes
    stats: dict[str, Any]

    def artifacts(self) -> dict[str, bytes]:
        """File name -> bytes of every serialised output (stats as sorted, indented JSON)."""
        return {
            "train.jsonl": self.train_jsonl,
            "validation.jsonl": self.validation_jsonl,
            "preference.jsonl": self.preference_jsonl,
            "preference_validation.jsonl": self.preference_validation_jsonl,
            "weights.jsonl": self.weights_jsonl,
            "dataset_stats.json": _stats_bytes(self.stats),
        }


# --- formats -----------------------------------------------------------------------------


def email_text(sender: str, subject: str, body: str) -> str:
    """The layout every backend sees (same as ``GoldenEmail.text`` / ``EmailInput.text``)."""
    return f"From: {sender}\nSubject: {subject}\n\n{body}"


def redacted_email_text(
    sender: str, subject: str, body: str, *, keep_sender_domain: bool = True
) -> tuple[str, dict[str, int]]:
    """:func:`email_text` with PII replaced; returns the text and the counts per PII type."""
    parts = (
        redact(sender, keep_email_domain=keep_sender_domain),
        redact(subject),
        redact(body),
    )
    counts = {t: sum(p[1][t] for p in parts) for t in PII_TYPES}
    return email_text(parts[0][0], parts[1][0], parts[2][0]), counts


def system_prompt(taxonomy: Taxonomy) -> str:
    """The system message of every fine-tuning example: the task, the output format and the
    categories with their allowed actions. Serve fine-tuned models with the same prompt.

    Ids only (no descriptions): the prompt is repeated in every training example and
    billed each time, and the examples teach the meaning.
    """
    lines = [
        "You classify emails for an inbox assistant.",
        'Reply with only a JSON object: {"category": "<category id>", "actions": ["<action id>", ...]}.',
        "Pick exactly one category; list the actions the user should take (possibly none), "
        "each one allowed for that category.",
        f"Taxonomy version {taxonomy.version}.",
        "",
        "Categories (id: name; allowed actions):",
    ]
    for c in taxonomy.categories:
        lines.append(f"- {c.id}: {c.name}; {', '.join(c.actions)}")
    lines += ["", f"Actions: {', '.join(taxonomy.actions)}"]
    return "\n".join(lines)


def assistant_content(category: str, actions: Iterable[str]) -> str:
    """The assistant answer: JSON with ``category`` first (the model commits to the
    category before choosing actions) and the actions sorted."""
    return json.dumps({"category": category, "actions": sorted(actions)}, ensure_ascii=False)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _jsonl(objs: Iterable[Any]) -> bytes:
    lines = [_dumps(o) for o in objs]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Approximate token count of one chat example (see ``BYTES_PER_TOKEN``)."""
    total = TOKENS_PER_EXAMPLE
    for m in messages:
        total += TOKENS_PER_MESSAGE + math.ceil(
            len(str(m.get("content", "")).encode("utf-8")) / BYTES_PER_TOKEN
        )
    return total


# --- helpers -----------------------------------------------------------------------------


def holdout_bucket(email_id: str, seed: int = 0) -> float:
    """Position of an email in [0, 1) of the hold-out hash (sha256 of ``seed:email_id``)."""
    digest = hashlib.sha256(f"{seed}:{email_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _str_or_empty(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value)


def _category_caps(counts: Mapping[str, int], share: float) -> dict[str, int]:
    """Largest per-category counts with every category <= share of their total.

    Iterating ``k = min(n, floor(share * sum(k)))`` from ``k = n`` converges to the greatest
    fixed point (the map is monotone), i.e. the largest balanced training set.
    """
    kept = dict(counts)
    while True:
        limit = math.floor(share * sum(kept.values()) + 1e-9)
        capped = {c: min(k, limit) for c, k in kept.items()}
        if capped == kept:
            return kept
        kept = capped


def _user_weights(
    user_codes: np.ndarray, factors: np.ndarray, mode: str, max_share: float | None
) -> np.ndarray:
    """Per-row weights: user part (``1/sqrt(n_user)`` or 1) times the reward factor, an
    optional cap of any user's share of the total, normalised to mean 1."""
    n = len(user_codes)
    if n == 0:
        return np.zeros(0)
    users, inverse, counts = np.unique(user_codes, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    per_user = 1.0 / np.sqrt(counts) if mode == "inverse_sqrt" else np.ones(len(users))
    weights = per_user[inverse] * factors
    if max_share is not None:
        totals = np.bincount(inverse, weights=weights, minlength=len(users))
        capped = _cap_shares(totals, max(max_share, 1.0 / len(users)))
        weights = weights * (capped / totals)[inverse]
    return weights * (n / weights.sum())


def _cap_shares(totals: np.ndarray, share: float) -> np.ndarray:
    """Water-filling: lower the largest totals so none exceeds ``share`` of the sum."""
    order = np.argsort(-totals, kind="stable")
    t = totals[order]
    rest = np.cumsum(t[::-1])[::-1]  # rest[k] = t[k:].sum()
    out = t.copy()
    for k in range(len(t)):
        # k largest users capped at c, where c = share * (k * c + rest).
        c = share * rest[k] / (1.0 - share * k) if share * k < 1.0 else math.inf
        if t[k] <= c:
            out[:k] = c
            break
    result = np.empty_like(out)
    result[order] = out
    return result


# --- the builder -------------------------------------------------------------------------

# Codes of the per-row label decision (see _label_decision).
LABEL_ACTION_SOURCES: Final = ("observed", "missed", "category_default")
_TIER_CATEGORY, _TIER_ACTIONS, _TIER_ACCEPTED = 0, 1, 2
_NO_TIMESTAMP: Final = -(2**63)
_BATCH_ROWS: Final = 50_000
_CACHE_LIMIT: Final = 100_000
_SOURCE_COLUMNS: Final = (
    "feedback_id",
    "email_id",
    "user_id",
    "sender",
    "subject",
    "body",
    "predicted_category",
    "predicted_actions",
    "missed_actions",
    "confidence",
    "feedback_at",
    "user_took_action",
    "label_category",
    "label_actions",
    "reward",
)
_STRING_COLUMNS: Final = (
    "feedback_id",
    "email_id",
    "user_id",
    "sender",
    "subject",
    "body",
    "predicted_category",
    "label_category",
)
_LIST_COLUMNS: Final = ("predicted_actions", "missed_actions", "label_actions")


@dataclass(frozen=True)
class _Label:
    """The supervised target of one row and where its actions come from."""

    category: str
    actions: tuple[str, ...]
    source: str
    dropped: int  # label actions not allowed for the category
    tier: int  # cap priority: category corrected, actions corrected, accepted
    changed: bool  # the user's answer differs from the model's (a preference pair)


def _label_decision(
    label: str,
    label_actions: Sequence[str],
    predicted: str,
    predicted_actions: Sequence[str],
    missed: Sequence[str],
    taxonomy: Taxonomy,
) -> _Label:
    """Label actions for the label category, and their source.

    - ``observed``: the category was accepted, or it was corrected and some predicted
      action is still allowed for the new category: the label is what the user saw and
      adjusted (predicted minus unnecessary plus missed), restricted to the actions the
      label category allows (possibly empty: the user removed them all).
    - ``missed``: the category was corrected and none of the predicted actions is allowed
      for it (they answered the rejected category): the user's missed actions that the
      new category allows.
    - ``category_default``: as ``missed`` but the user named no such action, so the truth
      is unknown; rather than teach "no actions", the label is the new category's default
      action (its first allowed action in the taxonomy).
    """
    allowed = taxonomy.category(label).actions
    allowed_set = set(allowed)
    label_set = {a for a in label_actions if a is not None}
    missed = [a for a in missed if a is not None]
    kept = tuple(sorted(label_set & allowed_set))
    dropped = len(label_set) - len(kept)
    predicted_set = {a for a in predicted_actions if a is not None}
    if label == predicted or predicted_set & allowed_set:
        source, actions = "observed", kept
    elif set(missed) & allowed_set:
        source, actions = "missed", tuple(sorted(set(missed) & allowed_set))
    else:
        source, actions = "category_default", tuple(allowed[:1])
    if label != predicted:
        tier = _TIER_CATEGORY
    elif set(actions) != predicted_set:
        tier = _TIER_ACTIONS
    else:
        tier = _TIER_ACCEPTED
    changed = label != predicted or list(actions) != sorted(predicted_set)
    return _Label(label, actions, source, dropped, tier, changed)


def _batches(source: pd.DataFrame | str | Path, batch_rows: int) -> Iterator[dict[str, Any]]:
    """Columns of :data:`_SOURCE_COLUMNS` as Python lists / NumPy arrays, one batch at a time.

    A DataFrame is sliced; a path is read as Parquet one record batch at a time, so the
    input never has to fit in memory.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def convert(table: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _SOURCE_COLUMNS:
            col = table.column(name)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            if name in _STRING_COLUMNS or name in _LIST_COLUMNS:
                out[name] = col.to_pylist()
            elif name == "feedback_at":
                ts = col.cast(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(col.type) else col
                values = pa.compute.cast(ts, pa.int64())
                out[name] = np.asarray(
                    pa.compute.fill_null(values, _NO_TIMESTAMP).to_numpy(zero_copy_only=False), dtype=np.int64
                )
            elif name == "user_took_action":
                out[name] = np.asarray(
                    pa.compute.fill_null(col.cast(pa.bool_()), False).to_numpy(zero_copy_only=False),
                    dtype=bool,
                )
            else:
                out[name] = np.asarray(
                    col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
                )
        return out

    if isinstance(source, pd.DataFrame):
        for start in range(0, len(source), batch_rows):
            part = source.iloc[start : start + batch_rows]
            yield convert(pa.table({name: _arrow_column(part[name], name) for name in _SOURCE_COLUMNS}))
    else:
        with pq.ParquetFile(source) as f:
            for batch in f.iter_batches(batch_size=batch_rows, columns=list(_SOURCE_COLUMNS)):
                yield convert(pa.Table.from_batches([batch]))


def _arrow_column(series: pd.Series, name: str) -> Any:
    """One input column as an Arrow array of the type :func:`_batches` expects.

    Arrow converts a well-typed column in C; a column it cannot read (mixed types, a
    timestamp given as text, a bare string where a list belongs) takes the per-value path,
    which normalises or raises like the row-by-row code did.
    """
    import pyarrow as pa

    values = series.to_numpy(dtype=object) if series.dtype == object else series
    try:
        if name in _LIST_COLUMNS:
            arr = pa.array(values, type=pa.list_(pa.string()), from_pandas=True)
            flat = pa.compute.list_flatten(arr)
            # Arrow reads a bare string as a list of characters: look closer only then.
            if len(flat) and pa.compute.any(pa.compute.equal(pa.compute.utf8_length(flat), 1)).as_py():
                raise TypeError("maybe a bare string")
            return arr
        if name in _STRING_COLUMNS:
            return pa.array(values, type=pa.string(), from_pandas=True)
        if name == "feedback_at":
            return pa.array(pd.to_datetime(series, utc=True), from_pandas=True)
        if name == "user_took_action":
            return pa.array(series.astype("boolean"), type=pa.bool_(), from_pandas=True)
        return pa.array(pd.to_numeric(series), type=pa.float64(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        if name in _LIST_COLUMNS:
            return pa.array(
                [list(action_list(v)) for v in series.to_numpy(dtype=object)], type=pa.list_(pa.string())
            )
        if name in _STRING_COLUMNS:
            return pa.array([_str_or_empty(v) for v in series.to_numpy(dtype=object)], type=pa.string())
        raise


def _example_id(feedback_id: str) -> str:
    return "ex-" + hashlib.sha256(f"example:{feedback_id}".encode()).hexdigest()[:20]


# --- per-text work, run in this process or in worker processes -------------------------

_GUARD: NearDuplicateIndex | None = None


def _init_worker(references: list[tuple[str, str]], threshold: float) -> None:
    global _GUARD
    _GUARD = NearDuplicateIndex(references, threshold=threshold)


def _scan_text(raw: str) -> tuple[bytes, Any]:
    """Dedup key (digest of the normalised text) and golden-set match of one email text."""
    assert _GUARD is not None
    norm = hashlib.blake2b(normalize_text(raw).encode(), digest_size=16).digest()
    return norm, _GUARD.best_match(raw) if len(_GUARD) else None


def _redact_parts(args: tuple[str, str, str, bool]) -> tuple[str, tuple[int, ...]]:
    sender, subject, body, keep_domain = args
    text, counts = redacted_email_text(sender, subject, body, keep_sender_domain=keep_domain)
    return text, tuple(counts[t] for t in PII_TYPES)


def _map(pool: Any, fn: Any, items: list[Any]) -> list[Any]:
    if pool is None or len(items) < 64:
        return [fn(x) for x in items]
    # Ordered map: results line up with the input whatever the number of workers.
    return pool.map(fn, items, chunksize=max(16, len(items) // (8 * pool._processes)))


def _scan_texts(raws: list[str], cache: dict[bytes, tuple[bytes, Any]], pool: Any) -> list[tuple[bytes, Any]]:
    """:func:`_scan_text` for a batch; each distinct text once (bulk mail repeats texts)."""
    keys = [hashlib.blake2b(r.encode(), digest_size=16).digest() for r in raws]
    todo: dict[bytes, str] = {}
    for k, r in zip(keys, raws, strict=True):
        if k not in cache and k not in todo:
            todo[k] = r
    if len(cache) + len(todo) > _CACHE_LIMIT:
        cache.clear()
    cache.update(zip(todo, _map(pool, _scan_text, list(todo.values())), strict=True))
    return [cache[k] for k in keys]


@contextlib.contextmanager
def _workers(golden_emails: Sequence[GoldenEmail], threshold: float, workers: int) -> Iterator[Any]:
    """A process pool for the per-text work (None: work in this process)."""
    references = [(g.id, g.text) for g in golden_emails]
    if workers <= 1:
        global _GUARD
        previous = _GUARD
        _init_worker(references, threshold)
        try:
            yield None
        finally:
            _GUARD = previous
        return
    import multiprocessing

    # "spawn": no fork of a possibly multi-threaded parent (an Airflow task process).
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(references, threshold)) as pool:
        _init_worker(references, threshold)
        yield pool


@dataclass
class _Plan:
    """Per-row decisions, in compact arrays (one entry per candidate row)."""

    position: np.ndarray  # row number in the input
    example_id: np.ndarray  # S23
    frame_split: np.ndarray  # 0 none, 1 train, 2 validation
    preference_split: np.ndarray  # 0 none, 1 train, 2 validation
    weight: np.ndarray
    factor: np.ndarray
    reward: np.ndarray
    stats: dict[str, Any]


def _plan(
    source: pd.DataFrame | str | Path,
    taxonomy: Taxonomy,
    config: DatasetConfig,
    batch_rows: int,
    pool: Any,
) -> _Plan:
    """Pass 1: read every row once, decide every exclusion, split, cap and weight."""
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    w = config.reward_weights
    categories = {c: i for i, c in enumerate(taxonomy.category_ids)}
    users: dict[str, int] = {}
    # Bulk mail repeats the same text for many users: each distinct text is normalised and
    # checked against the golden set once (bounded cache).
    text_cache: dict[bytes, tuple[bytes, Any]] = {}
    golden_matches: list[dict[str, Any]] = []
    actions_dropped = 0
    names = (
        "position",
        "example_id",
        "norm",
        "reward",
        "label_reward",
        "ts",
        "bucket",
        "user",
        "category",
        "tier",
        "changed",
        "source",
    )
    dtypes: tuple[Any, ...] = (
        np.int64,
        "S23",
        "S16",
        np.float64,
        np.float64,
        np.int64,
        np.float64,
        np.int64,
        np.int64,
        np.int8,
        bool,
        np.int8,
    )
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in names}
    rows_in = 0
    for batch in _batches(source, batch_rows):
        n = len(batch["feedback_id"])
        confidence = batch["confidence"]
        label_matches = np.array(
            [lc == pc_ for lc, pc_ in zip(batch["label_category"], batch["predicted_category"], strict=True)],
            dtype=bool,
        )
        c_label = np.where(label_matches, confidence, 1.0 - confidence)
        label_reward = w.classification + w.calibration * c_label + w.engagement * batch["user_took_action"]
        cols: dict[str, list[Any]] = {k: [] for k in names}
        raws = [
            email_text(batch["sender"][i] or "", batch["subject"][i] or "", batch["body"][i] or "")
            for i in range(n)
        ]
        scanned = _scan_texts(raws, text_cache, pool)
        for i in range(n):
            cached = scanned[i]
            norm_key, match = cached
            if match is not None:
                excluded["golden_near_duplicate"] += 1
                golden_matches.append(
                    {
                        "feedback_id": str(batch["feedback_id"][i]),
                        "golden_id": match.reference_id,
                        "similarity": round(match.similarity, 4),
                    }
                )
                continue
            label = batch["label_category"][i] or ""
            if label not in categories:
                excluded["unknown_category"] += 1
                continue
            decision = _label_decision(
                label,
                batch["label_actions"][i] or (),
                str(batch["predicted_category"][i]),
                batch["predicted_actions"][i] or (),
                batch["missed_actions"][i] or (),
                taxonomy,
            )
            actions_dropped += decision.dropped
            if label_reward[i] < config.min_reward:
                excluded["low_reward"] += 1
                continue
            cols["position"].append(rows_in + i)
            cols["example_id"].append(_example_id(str(batch["feedback_id"][i])))
            cols["norm"].append(norm_key)
            cols["reward"].append(batch["reward"][i])
            cols["label_reward"].append(label_reward[i])
            cols["ts"].append(batch["feedback_at"][i])
            cols["bucket"].append(holdout_bucket(str(batch["email_id"][i]), config.seed))
            cols["user"].append(users.setdefault(str(batch["user_id"][i]), len(users)))
            cols["category"].append(categories[label])
            cols["tier"].append(decision.tier)
            cols["changed"].append(decision.changed)
            cols["source"].append(LABEL_ACTION_SOURCES.index(decision.source))
        for k, dtype in zip(names, dtypes, strict=True):
            chunks[k].append(np.array(cols[k], dtype=dtype))
        rows_in += n
    text_cache.clear()
    arrays = {
        k: np.concatenate(chunks[k]) if chunks[k] else np.zeros(0, dtype=dtype)
        for k, dtype in zip(names, dtypes, strict=True)
    }
    del chunks

    position, example_id, norm = arrays["position"], arrays["example_id"], arrays["norm"]
    reward, label_reward, ts = arrays["reward"], arrays["label_reward"], arrays["ts"]
    bucket, user, category = arrays["bucket"], arrays["user"], arrays["category"]
    tier, changed, source_code = arrays["tier"], arrays["changed"], arrays["source"]

    # Duplicates: best row per normalised text (reward desc, newest, smallest example id).
    order = np.lexsort((example_id, ~ts, -reward, norm))  # ~ts: newest first, no overflow
    first = np.ones(len(order), dtype=bool)
    first[1:] = norm[order][1:] != norm[order][:-1]
    unique = np.sort(order[first])
    excluded["duplicate_email"] = int(len(order) - len(unique))

    is_validation = bucket[unique] < config.holdout_fraction
    train_idx, validation_idx = unique[~is_validation], unique[is_validation]

    # Category cap on the training split: corrections first, then label reward, then id.
    warnings: list[str] = []
    counts = np.bincount(category[train_idx], minlength=len(categories))
    present = {taxonomy.category_ids[c]: int(k) for c, k in enumerate(counts) if k}
    share = config.max_category_share
    if present and share * len(present) < 1.0:
        effective = 1.0 / len(present)
        warnings.append(
            f"only {len(present)} categories in the training set: max_category_share {share} "
            f"cannot be met, using {effective:.4f}"
        )
        share = effective
    caps = _category_caps(present, share) if present else {}
    cap_of = np.array([caps.get(c, 0) for c in taxonomy.category_ids], dtype=np.int64)
    ranked = train_idx[
        np.lexsort((example_id[train_idx], -label_reward[train_idx], tier[train_idx], category[train_idx]))
    ]
    cat_sorted = category[ranked]
    rank_in_category = np.zeros(len(ranked), dtype=np.int64)
    if len(ranked):
        group_start = np.flatnonzero(np.concatenate(([True], cat_sorted[1:] != cat_sorted[:-1])))
        sizes = np.diff(np.append(group_start, len(ranked)))
        rank_in_category = np.arange(len(ranked)) - np.repeat(group_start, sizes)
    kept_train = np.sort(ranked[rank_in_category < cap_of[cat_sorted]])
    excluded["capped"] = int(len(train_idx) - len(kept_train))

    if len(kept_train) < config.min_examples:
        reasons = ", ".join(f"{k}={v}" for k, v in excluded.items())
        raise InsufficientDataError(
            f"only {len(kept_train)} training example(s) remain, at least {config.min_examples} are needed "
            f"(OpenAI fine-tuning requires 10): {rows_in} feedback row(s) in, {len(validation_idx)} held out "
            f"for validation, excluded: {reasons}. Collect more feedback or lower DatasetConfig.min_examples."
        )
    if len(kept_train) < config.warn_examples:
        warnings.append(
            f"only {len(kept_train)} training examples (fewer than {config.warn_examples}); "
            "expect little improvement from fine-tuning"
        )
    if not len(validation_idx):
        warnings.append("the validation split is empty")

    m = len(position)
    factor = sample_weight_factor(reward, w, config.max_reward_factor) if m else np.zeros(0)
    weight = np.zeros(m)
    frame_split = np.zeros(m, dtype=np.int8)
    preference_split = np.zeros(m, dtype=np.int8)
    split_stats: dict[str, dict[str, Any]] = {}
    for code, name, idx in ((1, "train", kept_train), (2, "validation", validation_idx)):
        # Rows sorted by example id: the order of every output file.
        idx = idx[np.argsort(example_id[idx], kind="stable")]
        frame_split[idx] = code
        weight[idx] = _user_weights(
            user[idx], factor[idx], config.user_weighting, config.max_user_weight_share
        )
        totals = np.bincount(user[idx], weights=weight[idx]) if len(idx) else np.zeros(0)
        split_stats[name] = {
            "rows": int(len(idx)),
            "users": int(len(np.unique(user[idx]))),
            "max_user_weight_share": round(float(totals.max() / totals.sum()), 6) if len(idx) else None,
            "category_counts": _code_counts(category[idx], taxonomy.category_ids),
            "label_actions_source": _code_counts(source_code[idx], LABEL_ACTION_SOURCES, keep_zero=True),
            "mean_weight_corrected": _mean_or_none(weight[idx][tier[idx] == _TIER_CATEGORY]),
            "mean_weight_accepted": _mean_or_none(weight[idx][tier[idx] == _TIER_ACCEPTED]),
        }
    # Preference pairs are not capped: a pair teaches the difference, not the category prior.
    preference_split[train_idx[changed[train_idx]]] = 1
    preference_split[validation_idx[changed[validation_idx]]] = 2
    split_stats["preference_train"] = {
        "category_counts": _code_counts(category[preference_split == 1], taxonomy.category_ids),
    }
    stats = {
        "rows_in": rows_in,
        "excluded": excluded,
        "splits": split_stats,
        "effective_max_category_share": round(share, 6),
        "label_actions_dropped": actions_dropped,
        "golden_matches": sorted(golden_matches, key=lambda g: g["feedback_id"]),
        "warnings": warnings,
    }
    keep = (frame_split > 0) | (preference_split > 0)
    return _Plan(
        position=position[keep],
        example_id=example_id[keep],
        frame_split=frame_split[keep],
        preference_split=preference_split[keep],
        weight=weight[keep],
        factor=factor[keep],
        reward=reward[keep],
        stats=stats,
    )


def _code_counts(codes: np.ndarray, names: Sequence[str], keep_zero: bool = False) -> dict[str, int]:
    counts = (
        np.bincount(codes.astype(np.int64), minlength=len(names)) if len(codes) else np.zeros(len(names), int)
    )
    return {str(n): int(k) for n, k in sorted(zip(names, counts, strict=True)) if k or keep_zero}


def _mean_or_none(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if len(values) else None


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _chat_line(prompt_json: str, text: str, answer: str) -> str:
    """``_dumps({"messages": [system, user, assistant]})`` without re-encoding the prompt."""
    return (
        f'{{"messages":[{{"content":{prompt_json},"role":"system"}},{{"content":{_json_str(text)},"role":"user"}},'
        f'{{"content":{_json_str(answer)},"role":"assistant"}}]}}'
    )


def _preference_line(prompt_json: str, text: str, preferred: str, rejected: str) -> str:
    """``_dumps`` of one DPO example (keys sorted, like every other line)."""
    return (
        f'{{"input":{{"messages":[{{"content":{prompt_json},"role":"system"}},'
        f'{{"content":{_json_str(text)},"role":"user"}}]}},'
        f'"non_preferred_output":[{{"content":{_json_str(rejected)},"role":"assistant"}}],'
        f'"preferred_output":[{{"content":{_json_str(preferred)},"role":"assistant"}}]}}'
    )


def _tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


class _Emitted(NamedTuple):
    """One output row, compact (the prompt is added when lines are written)."""

    example_id: str
    frame_split: int
    preference_split: int
    text: str
    answer: str
    rejected: str | None
    frame_row: tuple[Any, ...] | None
    pii: tuple[int, ...]


def _emit(
    source: pd.DataFrame | str | Path,
    plan: _Plan,
    taxonomy: Taxonomy,
    config: DatasetConfig,
    batch_rows: int,
    pool: Any,
) -> Iterator[_Emitted]:
    """Pass 2: redact and serialise the rows the plan keeps, in input order."""
    order = np.argsort(plan.position, kind="stable")
    positions = plan.position[order]
    offset = 0
    for batch in _batches(source, batch_rows):
        n = len(batch["feedback_id"])
        lo, hi = np.searchsorted(positions, [offset, offset + n])
        picked = order[lo:hi]
        local = [int(plan.position[j]) - offset for j in picked]
        redacted = _map(
            pool,
            _redact_parts,
            [
                (
                    batch["sender"][i] or "",
                    batch["subject"][i] or "",
                    batch["body"][i] or "",
                    config.keep_sender_domain,
                )
                for i in local
            ],
        )
        for j, i, (text, counts) in zip(picked, local, redacted, strict=True):
            predicted = str(batch["predicted_category"][i])
            predicted_actions = action_list(batch["predicted_actions"][i])
            label = _label_decision(
                batch["label_category"][i],
                batch["label_actions"][i] or (),
                predicted,
                predicted_actions,
                batch["missed_actions"][i] or (),
                taxonomy,
            )
            answer = assistant_content(label.category, label.actions)
            frame_split, preference_split = int(plan.frame_split[j]), int(plan.preference_split[j])
            example_id = plan.example_id[j].decode()
            frame_row = None
            if frame_split:
                frame_row = (
                    example_id,
                    str(batch["feedback_id"][i]),
                    str(batch["email_id"][i]),
                    str(batch["user_id"][i]),
                    text,
                    label.category,
                    list(label.actions),
                    float(plan.weight[j]),
                    float(plan.reward[j]),
                    float(plan.factor[j]),
                    label.source,
                )
            rejected = assistant_content(predicted, predicted_actions) if preference_split else None
            yield _Emitted(
                example_id,
                frame_split,
                preference_split,
                text,
                answer,
                rejected,
                frame_row,
                counts,
            )
        offset += n


class _Writer:
    """Collects the emitted rows in example-id order into the output files and frames."""

    FILES: Final = ("train.jsonl", "validation.jsonl", "preference.jsonl", "preference_validation.jsonl")

    def __init__(self, directory: Path | None, taxonomy: Taxonomy) -> None:
        self.directory = directory
        prompt = system_prompt(taxonomy)
        self.prompt_json = _json_str(prompt)
        self.prompt_tokens = _tokens(prompt)
        self.buffers: dict[str, Any] = {}
        for name in self.FILES:
            self.buffers[name] = open(directory / name, "wb") if directory else io.BytesIO()  # noqa: SIM115
        self.frames: dict[int, list[tuple[Any, ...]]] = {1: [], 2: []}
        self.parquet: dict[int, Any] = {}
        self.tokens = {"train": 0, "validation": 0, "preference_train": 0}
        self.rows = {"train": 0, "validation": 0, "preference_train": 0, "preference_validation": 0}
        self.pii = [0] * len(PII_TYPES)

    def write(self, rows: Iterable[_Emitted]) -> None:
        """Write rows (already sorted by example id) after the ones written before."""
        chunks: dict[str, list[str]] = {name: [] for name in self.FILES}
        p_json, p_tokens = self.prompt_json, self.prompt_tokens
        for r in rows:
            text_tokens = _tokens(r.text)
            if r.frame_split:
                split = "train" if r.frame_split == 1 else "validation"
                chunks[f"{split}.jsonl"].append(_chat_line(p_json, r.text, r.answer))
                self.tokens[split] += (
                    TOKENS_PER_EXAMPLE + 3 * TOKENS_PER_MESSAGE + p_tokens + text_tokens + _tokens(r.answer)
                )
                self.rows[split] += 1
                self.frames[r.frame_split].append(r.frame_row or ())
            if r.preference_split:
                rejected = r.rejected or ""
                line = _preference_line(p_json, r.text, r.answer, rejected)
                if r.preference_split == 1:
                    chunks["preference.jsonl"].append(line)
                    # DPO bills the prompt once per output.
                    self.tokens["preference_train"] += (
                        2 * (TOKENS_PER_EXAMPLE + 2 * TOKENS_PER_MESSAGE + p_tokens + text_tokens)
                        + (TOKENS_PER_EXAMPLE + TOKENS_PER_MESSAGE + _tokens(r.answer))
                        + (TOKENS_PER_EXAMPLE + TOKENS_PER_MESSAGE + _tokens(rejected))
                    )
                    self.rows["preference_train"] += 1
                else:
                    chunks["preference_validation.jsonl"].append(line)
                    self.rows["preference_validation"] += 1
            for k, v in enumerate(r.pii):
                self.pii[k] += v
        for name, lines in chunks.items():
            if lines:
                self.buffers[name].write(("\n".join(lines) + "\n").encode("utf-8"))
        if self.directory is not None:
            self._flush_frames()

    def _flush_frames(self, final: bool = False) -> None:
        """Write buffered frame rows as Parquet row groups of PARQUET_ROW_GROUP_SIZE rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from feedbackloop.staging import PARQUET_OPTIONS, PARQUET_ROW_GROUP_SIZE

        assert self.directory is not None
        schema = _frame_schema()
        for code, name in ((1, "train.parquet"), (2, "validation.parquet")):
            if code not in self.parquet:
                self.parquet[code] = pq.ParquetWriter(self.directory / name, schema, **PARQUET_OPTIONS)
            rows = self.frames[code]
            while len(rows) >= PARQUET_ROW_GROUP_SIZE or (final and rows):
                group, rows = rows[:PARQUET_ROW_GROUP_SIZE], rows[PARQUET_ROW_GROUP_SIZE:]
                columns = list(zip(*group, strict=True))
                table = pa.table(
                    [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
                )
                self.parquet[code].write_table(table)
            self.frames[code] = rows

    def close(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for name, buf in self.buffers.items():
            if self.directory is None:
                out[name] = buf.getvalue()
            buf.close()
        if self.directory is not None:
            self._flush_frames(final=True)
            for w in self.parquet.values():
                w.close()
        return out


def _frame_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("example_id", pa.string()),
            ("feedback_id", pa.string()),
            ("email_id", pa.string()),
            ("user_id", pa.string()),
            ("text", pa.string()),
            ("category", pa.string()),
            ("actions", pa.list_(pa.string())),
            ("weight", pa.float64()),
            ("reward", pa.float64()),
            ("reward_factor", pa.float64()),
            ("label_actions_source", pa.string()),
        ]
    )


def _frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in FRAME_COLUMNS]
    data: dict[str, Any] = {}
    for name, values in zip(FRAME_COLUMNS, columns, strict=True):
        if name == "actions":
            data[name] = pd.Series(list(values), dtype=object)
        elif name in ("weight", "reward", "reward_factor"):
            data[name] = pd.Series(values, dtype=np.float64)
        else:
            data[name] = pd.Series(values, dtype="str")
    return pd.DataFrame(data, columns=list(FRAME_COLUMNS))


def _run(
    source: pd.DataFrame | str | Path,
    golden_emails: Sequence[GoldenEmail],
    taxonomy: Taxonomy,
    config: DatasetConfig,
    directory: Path | None,
    batch_rows: int,
    workers: int,
) -> tuple[dict[str, bytes], dict[int, list[tuple[Any, ...]]], dict[str, Any]]:
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    with _workers(golden_emails, config.golden_similarity, workers) as pool:
        plan = _plan(source, taxonomy, config, batch_rows, pool)
        writer = _Writer(directory, taxonomy)
        emitted = _emit(source, plan, taxonomy, config, batch_rows, pool)
        if directory is None:
            writer.write(sorted(emitted, key=lambda r: r.example_id))
        else:
            _write_sorted(emitted, writer, directory, batch_rows)
    files = writer.close()
    frames = writer.frames
    if directory is None:
        files["weights.jsonl"] = b"".join(_sidecar_chunks(plan))
    else:
        with open(directory / "weights.jsonl", "wb") as f:
            for chunk in _sidecar_chunks(plan):
                f.write(chunk)
    for w in plan.stats["warnings"]:
        log.warning("build_training_sets: %s", w)
    stats = _stats(plan, writer, config)
    return files, frames, stats


def _write_sorted(emitted: Iterable[_Emitted], writer: _Writer, directory: Path, batch_rows: int) -> None:
    """External sort by example id: spill rows to 256 bucket files by the id's first two
    hex digits (a hash, so buckets are even), then write the buckets in order, each sorted
    in memory. Memory holds one batch of rows or one bucket, never the whole output."""
    spill = directory / "_spill"
    spill.mkdir(exist_ok=True)
    try:
        pending: dict[str, list[_Emitted]] = {}
        held = 0

        def flush() -> None:
            for key, rows in pending.items():
                with open(spill / key, "ab") as f:
                    pickle.dump(rows, f, protocol=pickle.HIGHEST_PROTOCOL)
            pending.clear()

        for r in emitted:
            pending.setdefault(r.example_id[3:5], []).append(r)
            held += 1
            if held >= batch_rows:
                flush()
                held = 0
        flush()
        for path in sorted(spill.iterdir()):
            rows: list[_Emitted] = []
            with open(path, "rb") as f:
                while True:
                    try:
                        rows.extend(pickle.load(f))  # noqa: S301 - our own spill file
                    except EOFError:
                        break
            writer.write(sorted(rows, key=lambda r: r.example_id))
            path.unlink()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _sidecar_chunks(plan: _Plan, chunk_rows: int = _BATCH_ROWS) -> Iterator[bytes]:
    """``weights.jsonl`` in chunks of lines (train lines, then validation lines)."""
    for code, split in ((1, "train"), (2, "validation")):
        idx = np.flatnonzero(plan.frame_split == code)
        idx = idx[np.argsort(plan.example_id[idx], kind="stable")]
        for start in range(0, len(idx), chunk_rows):
            lines = [
                _dumps(
                    {
                        "split": split,
                        "line": line,
                        "example_id": plan.example_id[j].decode(),
                        "weight": float(plan.weight[j]),
                        "reward": float(plan.reward[j]),
                    }
                )
                for line, j in enumerate(idx[start : start + chunk_rows], start=start + 1)
            ]
            yield ("\n".join(lines) + "\n").encode("utf-8")


def _stats(plan: _Plan, writer: _Writer, config: DatasetConfig) -> dict[str, Any]:
    s = plan.stats
    splits = s["splits"]
    return {
        "rows_in": s["rows_in"],
        "excluded": s["excluded"],
        "rows": dict(writer.rows),
        "category_counts": {
            "train": splits["train"]["category_counts"],
            "validation": splits["validation"]["category_counts"],
            "preference_train": splits["preference_train"]["category_counts"],
        },
        "users": {"train": splits["train"]["users"], "validation": splits["validation"]["users"]},
        "max_user_weight_share": {
            "train": splits["train"]["max_user_weight_share"],
            "validation": splits["validation"]["max_user_weight_share"],
        },
        "reward_weighting": {
            "max_reward_factor": config.max_reward_factor,
            "regret_span": round(regret_span(config.reward_weights), 6),
            "mean_weight_corrected": {k: splits[k]["mean_weight_corrected"] for k in ("train", "validation")},
            "mean_weight_accepted": {k: splits[k]["mean_weight_accepted"] for k in ("train", "validation")},
        },
        "label_actions_source": {
            "train": splits["train"]["label_actions_source"],
            "validation": splits["validation"]["label_actions_source"],
        },
        "effective_max_category_share": s["effective_max_category_share"],
        "label_actions_dropped": s["label_actions_dropped"],
        "pii_redacted": dict(zip(PII_TYPES, writer.pii, strict=True)),
        "golden_matches": s["golden_matches"],
        "tokens": {
            **writer.tokens,
            "method": f"ceil(utf8_bytes/{BYTES_PER_TOKEN}) + {TOKENS_PER_MESSAGE} per message + "
            f"{TOKENS_PER_EXAMPLE} per example; DPO counts the prompt twice (once per output)",
        },
        "cost_usd": {
            "openai_supervised": round(
                writer.tokens["train"] * config.n_epochs * config.openai_supervised_usd_per_1m_tokens / 1e6, 4
            ),
            "openai_dpo": round(
                writer.tokens["preference_train"]
                * config.n_epochs
                * config.openai_dpo_usd_per_1m_tokens
                / 1e6,
                4,
            ),
            "local": 0.0,
        },
        "pricing": {
            "openai_supervised_usd_per_1m_tokens": config.openai_supervised_usd_per_1m_tokens,
            "openai_dpo_usd_per_1m_tokens": config.openai_dpo_usd_per_1m_tokens,
            "n_epochs": config.n_epochs,
            "prices_as_of": PRICES_AS_OF,
        },
        "config": asdict(config),
        "warnings": s["warnings"],
    }


def _check_columns(columns: Iterable[str]) -> None:
    missing = [c for c in _REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise ValueError(
            f"build_training_sets: input lacks column(s) {missing}; pass the output of rewards.compute_rewards"
        )


def build_training_sets(
    rewards_df: pd.DataFrame,
    golden_emails: Sequence[GoldenEmail],
    taxonomy: Taxonomy,
    config: DatasetConfig = DatasetConfig(),  # noqa: B008 - frozen, immutable default
    *,
    workers: int = 1,
) -> TrainingSets:
    """Build the supervised and preference training sets in memory (see the module docstring).

    Every output is held in memory; for large inputs use :func:`write_training_sets`,
    which writes the same bytes to files with bounded memory.

    Args:
        rewards_df: validated feedback records with the reward columns
            (``label_category``, ``label_actions``, ``reward``). Not modified.
        golden_emails: the golden set; near-duplicates of these never reach any output.
        taxonomy: categories and actions (system prompt, label checks).
        config: see :class:`DatasetConfig`.
        workers: processes for the per-text work (normalisation, golden guard, PII
            redaction); the output does not depend on it.

    Returns:
        The :class:`TrainingSets`.

    Raises:
        ValueError: a required column is missing.
        InsufficientDataError: fewer than ``config.min_examples`` training examples remain.
    """
    _check_columns(rewards_df.columns)
    files, frames, stats = _run(rewards_df, golden_emails, taxonomy, config, None, _BATCH_ROWS, workers)
    return TrainingSets(
        train=_frame(frames[1]),
        validation=_frame(frames[2]),
        train_jsonl=files["train.jsonl"],
        validation_jsonl=files["validation.jsonl"],
        preference_jsonl=files["preference.jsonl"],
        preference_validation_jsonl=files["preference_validation.jsonl"],
        weights_jsonl=files["weights.jsonl"],
        stats=stats,
    )


def write_training_sets(
    source: pd.DataFrame | str | Path,
    golden_emails: Sequence[GoldenEmail],
    taxonomy: Taxonomy,
    directory: str | Path,
    config: DatasetConfig = DatasetConfig(),  # noqa: B008 - frozen, immutable default
    *,
    batch_rows: int = _BATCH_ROWS,
    workers: int = 1,
) -> dict[str, Any]:
    """Build the training sets straight into files, with memory bounded by the batch size.

    Same decisions and the same bytes as :func:`build_training_sets`, for inputs too large
    to hold: ``source`` may be the path of the rewards Parquet file, read one record batch
    at a time (twice: once to decide, once to write). Memory holds compact per-row
    decisions (NumPy arrays, ~100 bytes a row; a few hundred at the peak of the sorts),
    one batch of input and one bucket of the external sort by example id, never the
    texts of the whole set. Measured (``benchmarks/rewards.py``): peak RSS 649 MiB for
    250k rows and 989 MiB for 1M rows (3.65 GiB of output).

    Writes ``train.jsonl``, ``validation.jsonl``, ``preference.jsonl``,
    ``preference_validation.jsonl``, ``weights.jsonl``, ``dataset_stats.json`` (the same
    bytes as :meth:`TrainingSets.artifacts`) and the frames ``train.parquet`` /
    ``validation.parquet`` (columns :data:`FRAME_COLUMNS`) into ``directory``.

    Args:
        source: the rewards frame, or the path of its Parquet file.
        golden_emails: the golden set; near-duplicates of these never reach any output.
        taxonomy: categories and actions.
        directory: where to write (created if missing; existing files are replaced).
        config: see :class:`DatasetConfig`.
        batch_rows: rows read, and spilled, at a time.
        workers: processes for the per-text work; the output does not depend on it.

    Returns:
        The stats (as in ``dataset_stats.json``).

    Raises:
        ValueError: a required column is missing, ``batch_rows`` < 1 or ``workers`` < 1.
        InsufficientDataError: fewer than ``config.min_examples`` training examples remain.
    """
    import pyarrow.parquet as pq

    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    _check_columns(source.columns if isinstance(source, pd.DataFrame) else pq.read_schema(source).names)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    _, _, stats = _run(source, golden_emails, taxonomy, config, out, batch_rows, workers)
    (out / "dataset_stats.json").write_bytes(_stats_bytes(stats))
    return stats


def _stats_bytes(stats: Mapping[str, Any]) -> bytes:
    return (json.dumps(stats, sort_keys=True, ensure_ascii=False, indent=2) + "\n").encode()
