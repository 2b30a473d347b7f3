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
   (they belong to the category the user rejected) and counted in
   ``stats["label_actions_dropped"]``.
4. **Label-side reward** (``low_reward``): see :class:`DatasetConfig.min_reward`.
5. **Duplicates** (``duplicate_email``): identical emails (same
   :func:`~feedbackloop.textsim.normalize_text`) are kept once, the highest-reward row
   (ties: newest feedback, then smallest feedback id).
6. **Hold-out split**: ``validation`` when ``sha256(seed:email_id)`` falls in the first
   ``holdout_fraction`` of the hash range, else ``train``. A hash, never a random draw: an
   email keeps its split when new feedback arrives, and all rows of one email share a split.
7. **Category cap** (``capped``, train only): no category above ``max_category_share`` of
   the training set; over-represented categories are cut deterministically, highest reward
   first (ties: example id). The validation split keeps the natural distribution, since it
   estimates production accuracy.
8. **Weights**: ``1 / sqrt(n_user)`` per row (a user with n examples contributes
   ``sqrt(n)`` in total instead of n), optionally with a hard cap on any user's share of the
   total weight, normalised to mean 1 per split (so feedback rows and weight-1 seed rows
   stay on the same scale).

**Weights and OpenAI.** OpenAI chat fine-tuning accepts only ``weight`` 0 or 1 on assistant
messages (whether the message is trained on), not a real-valued sample weight. The JSONL
therefore carries no weights (every assistant message is trained on); the real-valued
weights live in the DataFrames (local trainer) and in the ``weights_jsonl`` sidecar, which
maps each JSONL line (by ``split`` and 1-based ``line``) to its ``example_id``, ``weight``
and ``reward``.

**Determinism.** Every output is sorted by ``example_id`` (a hash of the feedback id),
serialised with ``json.dumps(sort_keys=True, ensure_ascii=False)`` and ``"\\n"`` line
endings; every tie is broken on a unique key. The same input, in any row order, gives the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from feedbackloop.golden import GoldenEmail, Taxonomy
from feedbackloop.pii import PII_TYPES, redact
from feedbackloop.rewards import RewardWeights, action_list
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
            "dataset_stats.json": (
                json.dumps(self.stats, sort_keys=True, ensure_ascii=False, indent=2) + "\n"
            ).encode(),
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


def _example_id(feedback_id: str) -> str:
    return "ex-" + hashlib.sha256(f"example:{feedback_id}".encode()).hexdigest()[:20]


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


def _user_weights(user_ids: Sequence[str], mode: str, max_share: float | None) -> np.ndarray:
    """Per-row weights: ``1/sqrt(n_user)`` (or 1), optional cap of a user's total share,
    normalised to mean 1."""
    n = len(user_ids)
    if n == 0:
        return np.zeros(0)
    users, inverse, counts = np.unique(
        np.asarray(user_ids, dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    per_row = 1.0 / np.sqrt(counts) if mode == "inverse_sqrt" else np.ones(len(users))
    totals = per_row * counts
    if max_share is not None:
        totals_capped = _cap_shares(totals, max(max_share, 1.0 / len(users)))
        per_row = per_row * (totals_capped / totals)
    weights = per_row[inverse]
    return weights * (n / weights.sum())


def _cap_shares(totals: np.ndarray, share: float) -> np.ndarray:
    """Water-filling: lower the largest totals so none exceeds ``share`` of the sum."""
    order = np.argsort(-totals, kind="stable")
    t = totals[order]
    out = t.copy()
    for k in range(len(t)):
        rest = t[k:].sum()
        # k largest users capped at c, where c = share * (k * c + rest).
        c = share * rest / (1.0 - share * k) if share * k < 1.0 else math.inf
        if k < len(t) and t[k] <= c:
            out[:k] = c
            break
    result = np.empty_like(out)
    result[order] = out
    return result


# --- the builder -------------------------------------------------------------------------


def build_training_sets(
    rewards_df: pd.DataFrame,
    golden_emails: Sequence[GoldenEmail],
    taxonomy: Taxonomy,
    config: DatasetConfig = DatasetConfig(),  # noqa: B008 - frozen, immutable default
) -> TrainingSets:
    """Build the supervised and preference training sets (see the module docstring).

    Args:
        rewards_df: validated feedback records with the reward columns
            (``label_category``, ``label_actions``, ``reward``). Not modified.
        golden_emails: the golden set; near-duplicates of these never reach any output.
        taxonomy: categories and actions (system prompt, label checks).
        config: see :class:`DatasetConfig`.

    Returns:
        The :class:`TrainingSets`.

    Raises:
        ValueError: a required column is missing.
        InsufficientDataError: fewer than ``config.min_examples`` training examples remain.
    """
    missing = [c for c in _REQUIRED_COLUMNS if c not in rewards_df.columns]
    if missing:
        raise ValueError(
            f"build_training_sets: input lacks column(s) {missing}; pass the output of rewards.compute_rewards"
        )
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    warnings: list[str] = []
    rows_in = len(rewards_df)
    prompt = system_prompt(taxonomy)
    guard = NearDuplicateIndex(((g.id, g.text) for g in golden_emails), threshold=config.golden_similarity)
    weights_cfg = config.reward_weights

    records: list[dict[str, Any]] = []
    golden_matches: list[dict[str, Any]] = []
    pii_counts = dict.fromkeys(PII_TYPES, 0)
    actions_dropped = 0
    for row in rewards_df.itertuples(index=False):
        sender, subject, body = _str_or_empty(row.sender), _str_or_empty(row.subject), _str_or_empty(row.body)
        raw_text = email_text(sender, subject, body)
        match = guard.best_match(raw_text) if len(guard) else None
        if match is not None:
            excluded["golden_near_duplicate"] += 1
            golden_matches.append(
                {
                    "feedback_id": str(row.feedback_id),
                    "golden_id": match.reference_id,
                    "similarity": round(match.similarity, 4),
                }
            )
            continue
        label = _str_or_empty(row.label_category)
        if label not in taxonomy.category_ids:
            excluded["unknown_category"] += 1
            continue
        allowed = set(taxonomy.category(label).actions)
        label_actions = action_list(row.label_actions)
        kept_actions = [a for a in label_actions if a in allowed]
        actions_dropped += len(label_actions) - len(kept_actions)
        predicted = str(row.predicted_category)
        confidence = float(row.confidence)
        engaged = row.user_took_action is True or (
            row.user_took_action is not None
            and not pd.isna(row.user_took_action)
            and bool(row.user_took_action)
        )
        c_label = confidence if label == predicted else 1.0 - confidence
        label_reward = (
            weights_cfg.classification
            + weights_cfg.calibration * c_label
            + weights_cfg.engagement * float(engaged)
        )
        if label_reward < config.min_reward:
            excluded["low_reward"] += 1
            continue
        text, counts = redacted_email_text(
            sender, subject, body, keep_sender_domain=config.keep_sender_domain
        )
        feedback_at = (
            pd.Timestamp(row.feedback_at)
            if row.feedback_at is not None and not pd.isna(row.feedback_at)
            else None
        )
        records.append(
            {
                "example_id": _example_id(str(row.feedback_id)),
                "feedback_id": str(row.feedback_id),
                "email_id": str(row.email_id),
                "user_id": str(row.user_id),
                "text": text,
                "category": label,
                "actions": kept_actions,
                "reward": float(row.reward),
                "predicted_category": predicted,
                "predicted_actions": list(action_list(row.predicted_actions)),
                "_norm": normalize_text(raw_text),
                "_feedback_ts": feedback_at.value if feedback_at is not None else -(2**63),
                "_pii": counts,
            }
        )

    # Duplicates: best row per normalised text (reward desc, newest, smallest feedback id).
    records.sort(key=lambda r: (r["_norm"], -r["reward"], -r["_feedback_ts"], r["feedback_id"]))
    unique: list[dict[str, Any]] = []
    for r in records:
        if unique and unique[-1]["_norm"] == r["_norm"]:
            excluded["duplicate_email"] += 1
            continue
        unique.append(r)
    for r in unique:
        for t in PII_TYPES:
            pii_counts[t] += r["_pii"][t]

    train_rows: list[dict[str, Any]] = []
    validation_rows: list[dict[str, Any]] = []
    for r in unique:
        split = (
            "validation" if holdout_bucket(r["email_id"], config.seed) < config.holdout_fraction else "train"
        )
        (validation_rows if split == "validation" else train_rows).append(r)

    # Category cap on the training split.
    counts = (
        pd.Series([r["category"] for r in train_rows], dtype=object).value_counts().to_dict()
        if train_rows
        else {}
    )
    share = config.max_category_share
    if counts and share * len(counts) < 1.0:
        effective = 1.0 / len(counts)
        warnings.append(
            f"only {len(counts)} categories in the training set: max_category_share {share} "
            f"cannot be met, using {effective:.4f}"
        )
        share = effective
    caps = _category_caps({str(k): int(v) for k, v in counts.items()}, share) if counts else {}
    train_rows.sort(key=lambda r: (r["category"], -r["reward"], r["example_id"]))
    kept_train: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    preference_train_rows = list(train_rows)
    for r in train_rows:
        if taken.get(r["category"], 0) >= caps[r["category"]]:
            excluded["capped"] += 1
            continue
        taken[r["category"]] = taken.get(r["category"], 0) + 1
        kept_train.append(r)

    if len(kept_train) < config.min_examples:
        reasons = ", ".join(f"{k}={v}" for k, v in excluded.items())
        raise InsufficientDataError(
            f"only {len(kept_train)} training example(s) remain, at least {config.min_examples} are needed "
            f"(OpenAI fine-tuning requires 10): {rows_in} feedback row(s) in, {len(validation_rows)} held out "
            f"for validation, excluded: {reasons}. Collect more feedback or lower DatasetConfig.min_examples."
        )
    if len(kept_train) < config.warn_examples:
        warnings.append(
            f"only {len(kept_train)} training examples (fewer than {config.warn_examples}); "
            "expect little improvement from fine-tuning"
        )
    if not validation_rows:
        warnings.append("the validation split is empty")

    train_df = _frame(kept_train, config)
    validation_df = _frame(validation_rows, config)

    def chat(r: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "system", "content": prompt},
                {"role": "user", "content": r["text"]},
                {"role": "assistant", "content": assistant_content(r["category"], r["actions"])},
            ]
        }

    train_chat = [chat(r) for r in train_df.to_dict("records")]
    validation_chat = [chat(r) for r in validation_df.to_dict("records")]
    pref_train = _preference_pairs(preference_train_rows, prompt)
    pref_validation = _preference_pairs(validation_rows, prompt)

    sidecar: list[dict[str, Any]] = []
    for split, frame in (("train", train_df), ("validation", validation_df)):
        for line, r in enumerate(frame.itertuples(index=False), start=1):
            sidecar.append(
                {
                    "split": split,
                    "line": line,
                    "example_id": r.example_id,
                    "weight": float(r.weight),
                    "reward": float(r.reward),
                }
            )

    for w in warnings:
        log.warning("build_training_sets: %s", w)

    tokens_train = sum(estimate_tokens(e["messages"]) for e in train_chat)
    tokens_validation = sum(estimate_tokens(e["messages"]) for e in validation_chat)
    tokens_pref = sum(_dpo_tokens(p) for p in pref_train)
    stats: dict[str, Any] = {
        "rows_in": rows_in,
        "excluded": excluded,
        "rows": {
            "train": len(train_df),
            "validation": len(validation_df),
            "preference_train": len(pref_train),
            "preference_validation": len(pref_validation),
        },
        "category_counts": {
            "train": _counts(train_df["category"]),
            "validation": _counts(validation_df["category"]),
            "preference_train": _counts(pd.Series([p["_category"] for p in pref_train], dtype=object)),
        },
        "users": {
            "train": int(train_df["user_id"].nunique()),
            "validation": int(validation_df["user_id"].nunique()),
        },
        "max_user_weight_share": {
            "train": _max_user_share(train_df),
            "validation": _max_user_share(validation_df),
        },
        "effective_max_category_share": round(share, 6),
        "label_actions_dropped": actions_dropped,
        "pii_redacted": pii_counts,
        "golden_matches": sorted(golden_matches, key=lambda m: m["feedback_id"]),
        "tokens": {
            "train": tokens_train,
            "validation": tokens_validation,
            "preference_train": tokens_pref,
            "method": f"ceil(utf8_bytes/{BYTES_PER_TOKEN}) + {TOKENS_PER_MESSAGE} per message + "
            f"{TOKENS_PER_EXAMPLE} per example; DPO counts the prompt twice (once per output)",
        },
        "cost_usd": {
            "openai_supervised": round(
                tokens_train * config.n_epochs * config.openai_supervised_usd_per_1m_tokens / 1e6, 4
            ),
            "openai_dpo": round(tokens_pref * config.n_epochs * config.openai_dpo_usd_per_1m_tokens / 1e6, 4),
            "local": 0.0,
        },
        "pricing": {
            "openai_supervised_usd_per_1m_tokens": config.openai_supervised_usd_per_1m_tokens,
            "openai_dpo_usd_per_1m_tokens": config.openai_dpo_usd_per_1m_tokens,
            "n_epochs": config.n_epochs,
            "prices_as_of": PRICES_AS_OF,
        },
        "config": asdict(config),
        "warnings": warnings,
    }
    return TrainingSets(
        train=train_df,
        validation=validation_df,
        train_jsonl=_jsonl(train_chat),
        validation_jsonl=_jsonl(validation_chat),
        preference_jsonl=_jsonl({k: v for k, v in p.items() if not k.startswith("_")} for p in pref_train),
        preference_validation_jsonl=_jsonl(
            {k: v for k, v in p.items() if not k.startswith("_")} for p in pref_validation
        ),
        weights_jsonl=_jsonl(sidecar),
        stats=stats,
    )


def _frame(rows: Sequence[Mapping[str, Any]], config: DatasetConfig) -> pd.DataFrame:
    ordered = sorted(rows, key=lambda r: r["example_id"])
    frame = pd.DataFrame(
        {
            "example_id": pd.Series([r["example_id"] for r in ordered], dtype="str"),
            "feedback_id": pd.Series([r["feedback_id"] for r in ordered], dtype="str"),
            "email_id": pd.Series([r["email_id"] for r in ordered], dtype="str"),
            "user_id": pd.Series([r["user_id"] for r in ordered], dtype="str"),
            "text": pd.Series([r["text"] for r in ordered], dtype="str"),
            "category": pd.Series([r["category"] for r in ordered], dtype="str"),
            "actions": pd.Series([list(r["actions"]) for r in ordered], dtype=object),
            "weight": _user_weights(
                [r["user_id"] for r in ordered], config.user_weighting, config.max_user_weight_share
            ).astype(np.float64),
            "reward": pd.Series([r["reward"] for r in ordered], dtype=np.float64),
        },
        columns=list(FRAME_COLUMNS),
    )
    return frame


def _preference_pairs(rows: Iterable[Mapping[str, Any]], prompt: str) -> list[dict[str, Any]]:
    """DPO pairs where the user's answer differs from the model's (category or actions)."""
    pairs: list[dict[str, Any]] = []
    for r in sorted(rows, key=lambda r: r["example_id"]):
        preferred = assistant_content(r["category"], r["actions"])
        rejected = assistant_content(r["predicted_category"], r["predicted_actions"])
        if preferred == rejected:
            continue
        pairs.append(
            {
                "input": {
                    "messages": [
                        {"role": "system", "content": prompt},
                        {"role": "user", "content": r["text"]},
                    ]
                },
                "preferred_output": [{"role": "assistant", "content": preferred}],
                "non_preferred_output": [{"role": "assistant", "content": rejected}],
                "_category": r["category"],
            }
        )
    return pairs


def _dpo_tokens(pair: Mapping[str, Any]) -> int:
    prompt_tokens = estimate_tokens(pair["input"]["messages"])
    return (
        2 * prompt_tokens
        + estimate_tokens(pair["preferred_output"])
        + estimate_tokens(pair["non_preferred_output"])
    )


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(values.value_counts().items())}


def _max_user_share(frame: pd.DataFrame) -> float | None:
    if len(frame) == 0:
        return None
    totals = frame.groupby("user_id")["weight"].sum()
    return round(float(totals.max() / totals.sum()), 6)
