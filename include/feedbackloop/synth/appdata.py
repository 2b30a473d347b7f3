"""Streaming generator of the app's tables: emails, predictions, feedback and engagement.

It simulates what the production email app writes (``migrations/app/0001_app_tables.sql``):
users receive emails, a production model (champion, or challenger for a hash-selected share
of users) classifies them, and some users correct the category and/or the suggested actions.

Shape of the data
-----------------
* Items are numbered ``0 .. n_feedback + n_unlabeled - 1``; item ``i`` is generated from its
  own RNG seeded by ``(seed, i)``, so any item can be produced alone and in any order
  (:meth:`AppDataGenerator.item`). Unlabeled items (``unlabeled_ratio``) are spread evenly.
* Feedback time (``created_at``) is uniform in ``[start, end)``; the prediction is minutes to
  hours earlier. The model is right most of the time but systematically wrong on
  problem-area emails, where it answers the confusable category, often with confidence
  below 0.7 and sometimes confidently.
* Users follow a Zipf-like law (a few power users give much of the feedback); user ids do
  not depend on the seed, so datasets for consecutive days share their users.
* Exactly ``round(n_feedback * malformed_fraction)`` feedback items carry one injected
  defect each (``AppItem.expected_reason``), at random positions (one per stratum) and with
  the kinds balanced (every block of 10 malformed items holds each
  :class:`~feedbackloop.contracts.Reason` once).
* ``DUPLICATE_FEEDBACK_ID``: the malformed item carries its own valid prediction and
  correction *and* a second correction row for the same prediction, created later (inside
  ``[start, end)``) with a correction id that sorts after the original's. The view then
  yields two rows with the same ``feedback_id``; the second is the malformed one, the first
  stays valid.
* About 3 % of valid feedback items carry SQL metacharacters (quotes, ``'; DROP TABLE ...``,
  backslashes, ``%s``, ``\\N``) in the subject, body or note; they are valid data.

Memory stays flat whatever the row count: emails are rendered into a bounded per-run pool
(one lazily filled slot list per category / problem area) and rows are streamed.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackloop.contracts import MAX_BODY_BYTES, Reason
from feedbackloop.golden import Taxonomy, default_taxonomy
from feedbackloop.synth.emails import problem_variant_keys, render

CHAMPION_VERSION = "gpt-4o-mini-2024-07-18+prompt-v3"
CHALLENGER_VERSION = "ft:gpt-4o-mini-2024-07-18:inbox:feedback-v4+prompt-v4"

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "emails": ("email_id", "user_id", "sender", "subject", "body", "received_at"),
    "predictions": (
        "prediction_id",
        "email_id",
        "user_id",
        "model_version",
        "variant",
        "category",
        "confidence",
        "actions",
        "latency_ms",
        "predicted_at",
    ),
    "category_corrections": ("correction_id", "prediction_id", "user_id", "corrected_category", "created_at"),
    "action_feedback": (
        "action_feedback_id",
        "prediction_id",
        "user_id",
        "missed_actions",
        "unnecessary_actions",
        "note",
        "created_at",
    ),
    "engagement_events": ("event_id", "prediction_id", "user_id", "event_type", "created_at"),
}
TABLES = tuple(TABLE_COLUMNS)
MALFORMED_KINDS: tuple[Reason, ...] = tuple(Reason)
DEFAULT_OVERSIZE_BODY_BYTES = 5 * 1024 * 1024

# --- simulation constants -------------------------------------------------------------------
N_USERS = 50_000
_ZIPF_S = 0.95  # top user ~5 %, top 100 users ~35 % of the feedback
_PLAIN_POOL = 1024
_PROBLEM_POOL = 128
# Feedback is biased towards mistakes: users correct what annoyed them.
_PROBLEM_SHARE = {"feedback": 0.25, "unlabeled": 0.08}
_WRONG_ON_PROBLEM = {"champion": 0.62, "challenger": 0.45}
_WRONG_ON_PLAIN = {"champion": 0.07, "challenger": 0.06}
_WRONG_SCALE_UNLABELED = 0.5
_METACHAR_SHARE = 0.03
# Problem areas are drawn by area (then a category that has a variant for it), not by variant,
# so that areas applying to every category (non-English) do not crowd out the others.
_AREA_WEIGHTS = {"non_english": 4.0, "quoted_reply_noise": 2.0}
_LOG_LATENCY_MEDIAN_MS = math.log(165.0)
_LATENCY_SIGMA = 0.46  # p95 = median * exp(1.645 * sigma) ~ 350 ms
_LOG_DELAY_MEDIAN_S = math.log(2400.0)  # feedback comes ~40 min (minutes to hours) after the prediction
_DELAY_SIGMA = 1.1

# Relative frequency of each category among emails users see and give feedback on.
_CATEGORY_WEIGHTS = {
    "promotion": 14,
    "newsletter": 9,
    "receipt": 8,
    "shipping_update": 7,
    "work": 7,
    "social_notification": 6,
    "personal": 5,
    "bill_due": 5,
    "account_update": 5,
    "calendar_invite": 4,
    "financial_statement": 4,
    "loyalty_rewards": 4,
    "security_alert": 3,
    "phishing": 3,
    "travel": 3,
    "appointment": 3,
    "school_family": 3,
    "event_marketing": 3,
    "survey_request": 3,
    "fraud_alert": 2,
}
# Where the model goes when it is wrong on a plain (unambiguous) email.
_NEIGHBOURS = {
    "security_alert": ("phishing", "account_update"),
    "phishing": ("security_alert", "promotion"),
    "bill_due": ("receipt", "financial_statement"),
    "fraud_alert": ("security_alert", "phishing"),
    "receipt": ("bill_due", "shipping_update"),
    "shipping_update": ("receipt",),
    "calendar_invite": ("work", "event_marketing"),
    "travel": ("receipt", "calendar_invite"),
    "appointment": ("calendar_invite",),
    "work": ("personal", "calendar_invite"),
    "personal": ("social_notification", "work"),
    "financial_statement": ("bill_due", "account_update"),
    "account_update": ("promotion", "security_alert"),
    "school_family": ("calendar_invite", "personal"),
    "social_notification": ("personal", "newsletter"),
    "promotion": ("newsletter", "loyalty_rewards"),
    "newsletter": ("promotion",),
    "loyalty_rewards": ("promotion",),
    "event_marketing": ("calendar_invite", "promotion"),
    "survey_request": ("promotion", "receipt"),
}

_UNKNOWN_CATEGORIES = (
    "bill_payment",
    "spam",
    "ads",
    "mail",
    "promotions_old",
    "other",
    "finance",
    "uncategorized",
)
_UNKNOWN_ACTIONS = ("archive", "snooze", "pay_bill", "mark_as_spam", "forward", "star", "call_bank")
_BAD_CONFIDENCES = (1.7, -0.2, 87.0, 1.05, -1.0, 100.0, 2.5)
_SQL_METACHARS = (
    "'; DROP TABLE app.predictions; --",
    "Robert'); DELETE FROM app.emails; --",
    'O\'Reilly & Sons "Quarterly" invoice',
    "C:\\Users\\me\\Documents\\invoice_03.pdf",
    "100% off %s %(name)s {0} $1",
    "back\\slash \\N null-looking \\x00 text",
    "tab\there, comma, \"quote\" and 'single'",
    "1; SELECT pg_sleep(10); --",
)
_NOTES_WRONG = (
    "This is a {true}, not a {pred}.",
    "Wrong category - it's clearly {true}.",
    "Should be {true}.",
    "The sender domain is fake, this is phishing!",
    "I already paid this, it's just a receipt.",
    "Not a bill. Nothing to pay here.",
    "It's an invite from my colleague, not marketing.",
    "Looks like an account notice but it's an ad.",
    "Es ist eine Rechnung / it's a bill (German).",
    "This one fooled me too 😅",
)
_NOTES_ACTIONS = (
    "Should have suggested tracking the package.",
    "Why would I unsubscribe from my bank?",
    "Add to calendar please!",
    "Reminder would be useful here.",
    "Don't suggest deleting mail from my boss.",
    "Needed the 'report phishing' button.",
    "Actions were spot on 👍",
    "Nothing to do for this one.",
)
_NOTES_OK = ("Correct!", "Good call", "thanks", "👍", "Spot on.", "Yes, that's right.")


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a cheap, well-spread hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def user_id_for_rank(rank: int) -> str:
    """Stable user id of the ``rank``-th most active user (a bijective scramble of the rank)."""
    return f"u-{(rank * 2654435761) & 0xFFFFFFFF:08x}"


def is_challenger_user(user_id: str, challenger_share: float) -> bool:
    """Hash-based, stable assignment of a user to the challenger model."""
    return zlib.crc32(user_id.encode()) % 10_000 < round(challenger_share * 10_000)


@dataclass(frozen=True, slots=True)
class AppItem:
    """Rows one simulated email produces in the app tables (tuples in column order).

    Array columns are lists, ``body`` is bytes, timestamps are timezone-aware datetimes.
    ``feedback_id`` equals the prediction id (the view ``ml.feedback_records`` keys feedback
    by prediction) and is None for unlabeled predictions. ``expected_reason`` is the one
    injected defect, or None for valid items.
    """

    index: int
    feedback_id: str | None
    expected_reason: Reason | None
    true_category: str
    problem_area: str | None
    has_sql_metachar: bool
    emails: tuple[tuple[Any, ...], ...]
    predictions: tuple[tuple[Any, ...], ...]
    category_corrections: tuple[tuple[Any, ...], ...]
    action_feedback: tuple[tuple[Any, ...], ...]
    engagement_events: tuple[tuple[Any, ...], ...]

    def rows(self, table: str) -> tuple[tuple[Any, ...], ...]:
        if table not in TABLE_COLUMNS:
            raise KeyError(f"unknown app table {table!r} (known: {', '.join(TABLES)})")
        return getattr(self, table)

    @property
    def feedback_rows(self) -> int:
        """Rows this item yields in ``ml.feedback_records`` (one per correction, at least one)."""
        if self.feedback_id is None:
            return 0
        return max(1, len(self.category_corrections))


class _EmailPool:
    """Per-run cache of rendered emails, filled lazily; bounded, so memory does not grow."""

    def __init__(self, seed: int, taxonomy: Taxonomy):
        self.seed = seed
        self.taxonomy = taxonomy
        self._slots: dict[tuple[str, str | None], list[Any]] = {}

    def get(
        self, category: str, area: str | None, slot: int
    ) -> tuple[str, str, bytes, tuple[str, ...], str | None]:
        key = (category, area)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = [None] * (_PROBLEM_POOL if area else _PLAIN_POOL)
        slot %= len(slots)
        entry = slots[slot]
        if entry is None:
            email = render(
                category, random.Random(f"app:{self.seed}:{category}:{area}:{slot}"), area, self.taxonomy
            )
            entry = slots[slot] = (
                email.sender,
                email.subject,
                email.body.encode("utf-8"),
                email.actions,
                email.confusable,
            )
        return entry

    def size(self, area: str | None) -> int:
        return _PROBLEM_POOL if area else _PLAIN_POOL


def _as_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class AppDataGenerator:
    """Deterministic, random-access generator of :class:`AppItem` (see the module docstring).

    Args:
        n_feedback: Items with feedback (a category correction and/or action feedback).
        seed: Non-negative seed; ids embed it so datasets with different seeds can share a DB.
        start: Feedback times are uniform in ``[start, end)`` (naive means UTC).
        end: Exclusive upper bound of feedback times.
        malformed_fraction: Share of feedback items with exactly one injected defect.
        unlabeled_ratio: Extra predictions without feedback, as a ratio of ``n_feedback``.
        challenger_share: Share of users (by hash of the user id) served by the challenger.
        oversize_body_bytes: Size of ``BODY_TOO_LARGE`` bodies (must exceed MAX_BODY_BYTES).
        taxonomy: Defaults to the project's taxonomy.

    Raises:
        ValueError: On out-of-range arguments or ``end <= start``.
    """

    def __init__(
        self,
        n_feedback: int,
        seed: int,
        start: datetime,
        end: datetime,
        malformed_fraction: float = 0.02,
        unlabeled_ratio: float = 0.0,
        challenger_share: float = 0.05,
        *,
        oversize_body_bytes: int = DEFAULT_OVERSIZE_BODY_BYTES,
        taxonomy: Taxonomy | None = None,
    ):
        if n_feedback < 0:
            raise ValueError(f"n_feedback must be >= 0, got {n_feedback}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not 0.0 <= malformed_fraction <= 1.0:
            raise ValueError(f"malformed_fraction must be in [0, 1], got {malformed_fraction}")
        if not unlabeled_ratio >= 0.0:
            raise ValueError(f"unlabeled_ratio must be >= 0, got {unlabeled_ratio}")
        if not 0.0 <= challenger_share <= 1.0:
            raise ValueError(f"challenger_share must be in [0, 1], got {challenger_share}")
        if oversize_body_bytes <= MAX_BODY_BYTES:
            raise ValueError(
                f"oversize_body_bytes must exceed MAX_BODY_BYTES ({MAX_BODY_BYTES}), got {oversize_body_bytes}"
            )
        self.start, self.end = _as_utc(start), _as_utc(end)
        if self.end <= self.start:
            raise ValueError(f"end ({end}) must be after start ({start})")
        self.taxonomy = taxonomy or default_taxonomy()
        self.n_feedback = n_feedback
        self.seed = seed
        self.n_unlabeled = round(n_feedback * unlabeled_ratio)
        self.n_malformed = round(n_feedback * malformed_fraction)
        self.total = n_feedback + self.n_unlabeled
        self.challenger_share = challenger_share
        self._challenger_cut = round(challenger_share * 10_000)
        self.oversize_body_bytes = oversize_body_bytes
        self._span_us = (self.end - self.start) // timedelta(microseconds=1)
        self._pool = _EmailPool(seed, self.taxonomy)
        self._categories = tuple(c for c in _CATEGORY_WEIGHTS if c in self.taxonomy.category_ids)
        missing = set(self.taxonomy.category_ids) - set(self._categories)
        self._categories += tuple(sorted(missing))
        weights = [_CATEGORY_WEIGHTS.get(c, 3) for c in self._categories]
        total_w = sum(weights)
        self._cum = [sum(weights[: i + 1]) / total_w for i in range(len(weights))]
        by_area: dict[str, list[tuple[str, str]]] = {}
        for key in problem_variant_keys():
            if key[0] in self.taxonomy.category_ids:
                by_area.setdefault(key[1], []).append(key)
        self._areas = tuple(sorted(by_area))
        self._area_keys = tuple(tuple(by_area[a]) for a in self._areas)
        area_w = [_AREA_WEIGHTS.get(a, 1.0) for a in self._areas]
        self._area_cum = [sum(area_w[: i + 1]) / sum(area_w) for i in range(len(area_w))]
        self._allowed = {c: self.taxonomy.category(c).actions for c in self.taxonomy.category_ids}
        self._zipf_base = N_USERS ** (1 - _ZIPF_S) - 1
        self._big_block: bytes | None = None
        self._prefix = f"{seed}-"
        self._defects: dict[Reason, Callable[[random.Random, dict[str, Any]], None]] = {
            Reason.NULL_REQUIRED_FIELD: self._null_required_field,
            Reason.UNKNOWN_CATEGORY: self._unknown_category,
            Reason.CONFIDENCE_OUT_OF_RANGE: self._confidence_out_of_range,
            Reason.CONFIDENCE_NAN: self._confidence_nan,
            Reason.UNKNOWN_ACTION: self._unknown_action,
            Reason.DUPLICATE_FEEDBACK_ID: self._duplicate_feedback,
            Reason.TIMESTAMP_OUT_OF_RANGE: self._timestamp_out_of_range,
            Reason.EMPTY_BODY: self._empty_body,
            Reason.BODY_TOO_LARGE: self._body_too_large,
            Reason.INVALID_UTF8: self._invalid_utf8,
        }

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[AppItem]:
        for index in range(self.total):
            yield self.item(index)

    # --- positions --------------------------------------------------------------------------
    def _feedback_ordinal(self, index: int) -> int | None:
        """Ordinal among feedback items, or None for an unlabeled item (spread evenly)."""
        if self.n_unlabeled == 0:
            return index
        before = index * self.n_unlabeled // self.total
        if (index + 1) * self.n_unlabeled // self.total > before:
            return None
        return index - before

    def _malformed_kind(self, ordinal: int) -> Reason | None:
        """The defect of feedback item ``ordinal``: one random position per stratum, kinds balanced."""
        m, n = self.n_malformed, self.n_feedback
        if m == 0:
            return None
        s = ordinal * m // n
        while (s + 1) * n // m <= ordinal:
            s += 1
        while s * n // m > ordinal:
            s -= 1
        lo, hi = s * n // m, (s + 1) * n // m
        if lo + _mix64((self.seed << 32) ^ s) % (hi - lo) != ordinal:
            return None
        block = s // len(MALFORMED_KINDS)
        kinds = list(MALFORMED_KINDS)
        random.Random(_mix64((self.seed << 32) ^ (block | 1 << 31))).shuffle(kinds)
        return kinds[s % len(kinds)]

    # --- one item ---------------------------------------------------------------------------
    def item(self, index: int) -> AppItem:
        """Generate item ``index`` (0 <= index < len(self)); independent of every other item."""
        if not 0 <= index < self.total:
            raise IndexError(f"item index {index} out of range 0..{self.total - 1}")
        r = random.Random((self.seed << 40) + index)
        ordinal = self._feedback_ordinal(index)
        labeled = ordinal is not None
        reason = self._malformed_kind(ordinal) if ordinal is not None else None
        ids = f"{self._prefix}{index:09d}"
        prediction_id, email_id = f"prd-{ids}", f"eml-{ids}"

        # Who, and which model serves them.
        u = r.random()
        rank = min(N_USERS, max(1, int((self._zipf_base * u + 1) ** (1 / (1 - _ZIPF_S)))))
        user_id = user_id_for_rank(rank)
        variant = "challenger" if zlib.crc32(user_id.encode()) % 10_000 < self._challenger_cut else "champion"

        # What they received.
        if r.random() < _PROBLEM_SHARE["feedback" if labeled else "unlabeled"]:
            keys = self._area_keys[min(len(self._areas) - 1, bisect.bisect_left(self._area_cum, r.random()))]
            category, area = keys[r.randrange(len(keys))]
        else:
            category, area = (
                self._categories[min(len(self._categories) - 1, bisect.bisect_left(self._cum, r.random()))],
                None,
            )
        sender, subject, body, true_actions, confusable = self._pool.get(
            category, area, r.randrange(self._pool.size(area))
        )

        # What the model answered.
        p_wrong = (_WRONG_ON_PROBLEM if area else _WRONG_ON_PLAIN)[variant]
        if not labeled:
            p_wrong *= _WRONG_SCALE_UNLABELED
        wrong = r.random() < p_wrong
        if wrong:
            if confusable is not None:
                predicted = confusable
            else:
                options = _NEIGHBOURS.get(category) or tuple(c for c in self._categories if c != category)
                predicted = options[r.randrange(len(options))]
            if r.random() < 0.25:  # confidently wrong
                confidence = round(0.78 + 0.2 * r.random(), 4)
            else:  # mostly unsure: a triangular spread over [0.30, 0.72]
                confidence = round(0.30 + 0.21 * (r.random() + r.random()), 4)
            pred_actions = self._guess_actions(r, predicted)
        else:
            predicted = category
            # Skewed towards 0.99; about one right answer in ten falls below 0.7.
            confidence = round(0.99 - 0.44 * r.random() ** 4, 4)
            pred_actions = self._perturb_actions(r, category, list(true_actions))
        latency = round(
            min(5000.0, max(20.0, math.exp(_LOG_LATENCY_MEDIAN_MS + _LATENCY_SIGMA * r.gauss()))), 1
        )

        # When.
        if labeled:
            span = self._span_us
            if reason is Reason.DUPLICATE_FEEDBACK_ID and span > 4_000_000:
                span -= 2_000_000  # leave room for the later duplicate inside [start, end)
            feedback_at = self.start + timedelta(microseconds=r.randrange(span))
            delay_us = int(
                min(3 * 86_400, max(60.0, math.exp(_LOG_DELAY_MEDIAN_S + _DELAY_SIGMA * r.gauss()))) * 1e6
            )
            predicted_at = feedback_at - timedelta(microseconds=delay_us)
        else:
            feedback_at = None
            predicted_at = self.start + timedelta(microseconds=r.randrange(self._span_us))
            delay_us = int(r.uniform(60, 6 * 3600) * 1e6)
        received_at = predicted_at - timedelta(
            microseconds=int((latency + r.uniform(200.0, 30_000.0)) * 1000)
        )

        state: dict[str, Any] = {
            "email": [email_id, user_id, sender, subject, body, received_at],
            "prediction": [
                prediction_id,
                email_id,
                user_id,
                CHAMPION_VERSION if variant == "champion" else CHALLENGER_VERSION,
                variant,
                predicted,
                confidence,
                pred_actions,
                latency,
                predicted_at,
            ],
            "corrections": [],
            "action_feedback": [],
            "events": [],
            "feedback_at": feedback_at,
            "ids": ids,
        }

        # Engagement: most predictions are opened; right answers lead to actions more often.
        t = predicted_at
        step = max(1, delay_us // 4)
        if r.random() < 0.85:
            t = t + timedelta(microseconds=r.randrange(1_000_000, 1_000_000 + step))
            state["events"].append([f"evt-{ids}-1", prediction_id, user_id, "opened", t])
        if r.random() < (0.15 if wrong else 0.5):
            t = t + timedelta(microseconds=r.randrange(1_000_000, 1_000_000 + step))
            state["events"].append([f"evt-{ids}-2", prediction_id, user_id, "action_taken", t])
        elif r.random() < 0.25:
            t = t + timedelta(microseconds=r.randrange(1_000_000, 1_000_000 + step))
            state["events"].append([f"evt-{ids}-3", prediction_id, user_id, "dismissed", t])

        metachar = False
        if labeled:
            needs_correction = reason is Reason.DUPLICATE_FEEDBACK_ID or (
                reason is Reason.UNKNOWN_CATEGORY and r.random() < 0.5
            )
            needs_action_feedback = reason is Reason.UNKNOWN_ACTION and r.random() < 0.5
            self._feedback(r, state, category, true_actions, wrong, needs_correction, needs_action_feedback)
            if reason is not None:
                self._defects[reason](r, state)
            elif r.random() < _METACHAR_SHARE:
                metachar = True
                self._inject_metachar(r, state)

        email_rows = () if state["email"] is None else (tuple(state["email"]),)
        return AppItem(
            index=index,
            feedback_id=prediction_id if labeled else None,
            expected_reason=reason,
            true_category=category,
            problem_area=area,
            has_sql_metachar=metachar,
            emails=email_rows,
            predictions=(tuple(state["prediction"]),),
            category_corrections=tuple(tuple(c) for c in state["corrections"]),
            action_feedback=tuple(tuple(a) for a in state["action_feedback"]),
            engagement_events=tuple(tuple(e) for e in state["events"]),
        )

    # --- model and user behaviour -----------------------------------------------------------
    def _guess_actions(self, r: random.Random, category: str) -> list[str]:
        allowed = self._allowed[category]
        k = 1 if len(allowed) == 1 or r.random() < 0.5 else 2
        return list(allowed[:k]) if r.random() < 0.7 else r.sample(list(allowed), k)

    def _perturb_actions(self, r: random.Random, category: str, actions: list[str]) -> list[str]:
        roll = r.random()
        if roll < 0.75:
            return actions
        allowed = self._allowed[category]
        extra = [a for a in allowed if a not in actions]
        if roll < 0.87 and len(actions) > 1:
            actions.pop(r.randrange(len(actions)))
        elif extra and len(actions) < 3:
            actions.append(extra[r.randrange(len(extra))])
        elif extra:
            actions[r.randrange(len(actions))] = extra[r.randrange(len(extra))]
        return actions

    def _feedback(
        self,
        r: random.Random,
        state: dict[str, Any],
        category: str,
        true_actions: tuple[str, ...],
        wrong: bool,
        needs_correction: bool,
        needs_action_feedback: bool,
    ) -> None:
        pred = state["prediction"]
        prediction_id, user_id, predicted, pred_actions = pred[0], pred[2], pred[5], pred[7]
        feedback_at: datetime = state["feedback_at"]
        ids = state["ids"]
        if wrong:
            correction = True
            action_fb = r.random() < 0.5
        else:
            roll = r.random()
            correction, action_fb = (
                (False, True) if roll < 0.55 else (True, False) if roll < 0.8 else (True, True)
            )
        correction = correction or needs_correction
        action_fb = action_fb or needs_action_feedback
        if correction:
            # When the model was right, the user confirms the predicted category.
            state["corrections"].append([f"cor-{ids}", prediction_id, user_id, category, feedback_at])
        if action_fb:
            missed = [a for a in true_actions if a not in pred_actions and r.random() < 0.85]
            unnecessary = [a for a in pred_actions if a not in true_actions and r.random() < 0.85]
            note = None
            if r.random() < 0.4:
                if wrong:
                    note = r.choice(_NOTES_WRONG).format(
                        true=category.replace("_", " "), pred=predicted.replace("_", " ")
                    )
                elif missed or unnecessary:
                    note = r.choice(_NOTES_ACTIONS)
                else:
                    note = r.choice(_NOTES_OK)
            # Given in the same session as the correction, a few seconds before it.
            at = feedback_at
            if correction:
                back = min(r.randrange(0, 20_000_000), (feedback_at - pred[9]) // timedelta(microseconds=2))
                at = feedback_at - timedelta(microseconds=back)
            state["action_feedback"].append(
                [f"afb-{ids}", prediction_id, user_id, missed, unnecessary, note, at]
            )

    def _inject_metachar(self, r: random.Random, state: dict[str, Any]) -> None:
        snippet = _SQL_METACHARS[r.randrange(len(_SQL_METACHARS))]
        where = r.randrange(3)
        if where == 2 and state["action_feedback"]:
            state["action_feedback"][0][5] = f"{state['action_feedback'][0][5] or 'Note:'} {snippet}"
        elif where == 1:
            state["email"][3] = f"{state['email'][3]} {snippet}"
        else:
            state["email"][4] = state["email"][4] + f"\n\nP.S. {snippet}".encode()

    # --- defects: each makes exactly one row violate exactly one contract --------------------
    def _null_required_field(self, r: random.Random, state: dict[str, Any]) -> None:
        kind = r.randrange(4)
        if kind == 0:
            state["prediction"][2] = None  # predictions.user_id
        elif kind == 1:
            state["prediction"][5] = None  # predictions.category
        elif kind == 2:
            state["email"] = None  # the email row is missing: body (and sender, subject) NULL
        else:
            state["email"][4] = None  # body NULL

    def _unknown_category(self, r: random.Random, state: dict[str, Any]) -> None:
        bogus = _UNKNOWN_CATEGORIES[r.randrange(len(_UNKNOWN_CATEGORIES))]
        if state["corrections"] and r.random() < 0.5:
            state["corrections"][0][3] = bogus
        else:
            state["prediction"][5] = bogus

    def _confidence_out_of_range(self, r: random.Random, state: dict[str, Any]) -> None:
        state["prediction"][6] = _BAD_CONFIDENCES[r.randrange(len(_BAD_CONFIDENCES))]

    def _confidence_nan(self, r: random.Random, state: dict[str, Any]) -> None:
        state["prediction"][6] = float("nan")

    def _unknown_action(self, r: random.Random, state: dict[str, Any]) -> None:
        bogus = _UNKNOWN_ACTIONS[r.randrange(len(_UNKNOWN_ACTIONS))]
        if state["action_feedback"] and r.random() < 0.6:
            column = 3 if r.random() < 0.5 else 4  # missed or unnecessary
            state["action_feedback"][0][column] = [*state["action_feedback"][0][column], bogus]
        else:
            state["prediction"][7] = [*state["prediction"][7], bogus]

    def _duplicate_feedback(self, r: random.Random, state: dict[str, Any]) -> None:
        # A client retry: same prediction and category, later, with an id that sorts after.
        original = state["corrections"][0]
        room = (self.end - original[4]) // timedelta(microseconds=1) - 1
        later = original[4] + timedelta(microseconds=max(1, min(r.randrange(500_000, 90_000_000), room // 2)))
        state["corrections"].append([f"{original[0]}-r1", original[1], original[2], original[3], later])

    def _timestamp_out_of_range(self, r: random.Random, state: dict[str, Any]) -> None:
        if r.random() < 0.5:
            bad = datetime(2099, 1, 1, tzinfo=UTC) + timedelta(seconds=r.randrange(365 * 86_400))
        else:
            bad = self.end + timedelta(days=r.randint(1, 400), seconds=r.randrange(86_400))
        state["prediction"][9] = bad

    def _empty_body(self, r: random.Random, state: dict[str, Any]) -> None:
        state["email"][4] = b""

    def _body_too_large(self, r: random.Random, state: dict[str, Any]) -> None:
        size = self.oversize_body_bytes + r.randrange(65_536)
        head = state["email"][4] + b"\n\n"
        state["email"][4] = head + self._attachment_block(size)[: max(0, size - len(head))]

    def _attachment_block(self, size: int) -> bytes:
        """An inline base64 'attachment' (valid UTF-8), built once per run and sliced."""
        if self._big_block is None or len(self._big_block) < size:
            r = random.Random(f"attachment:{self.seed}")
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
            line_count = 4096
            lines = ["".join(r.choice(alphabet) for _ in range(76)) for _ in range(line_count)]
            header = (
                '--boundary_42\nContent-Type: application/pdf; name="scan_0001.pdf"\n'
                "Content-Transfer-Encoding: base64\n\n"
            )
            chunk = "\n".join(lines).encode() + b"\n"
            reps = size // len(chunk) + 2
            self._big_block = header.encode() + chunk * reps
        return self._big_block

    def _invalid_utf8(self, r: random.Random, state: dict[str, Any]) -> None:
        body: bytes = state["email"][4]
        kind = r.randrange(3)
        if kind == 0:
            # A client that re-encoded the text as Windows-1252 but labelled it UTF-8.
            text = body.decode("utf-8") + "\n\nMerci et à bientôt — l'équipe, 5 €"
            state["email"][4] = text.encode("cp1252", errors="replace")
        elif kind == 1:
            state["email"][4] = body + "\n\nGrüße".encode()[:-4]  # cut inside the two-byte 'ü'
        else:
            cut = r.randrange(len(body) + 1)
            state["email"][4] = body[:cut] + b"\xff\xfe\xfa" + body[cut:]


def iter_app_data(
    n_feedback: int,
    seed: int,
    start: datetime,
    end: datetime,
    malformed_fraction: float = 0.02,
    unlabeled_ratio: float = 0.0,
    challenger_share: float = 0.05,
    *,
    oversize_body_bytes: int = DEFAULT_OVERSIZE_BODY_BYTES,
) -> Iterator[AppItem]:
    """Stream simulated app data, one :class:`AppItem` per email (see the module docstring).

    Args:
        n_feedback: Items with feedback; ``sum(item.feedback_rows)`` is this plus one per
            ``DUPLICATE_FEEDBACK_ID`` item.
        seed: Non-negative seed; the same arguments give identical rows.
        start: Feedback times are uniform in ``[start, end)`` (naive means UTC).
        end: Exclusive end of the feedback window.
        malformed_fraction: Share of feedback items with exactly one injected defect.
        unlabeled_ratio: Extra production predictions without feedback, per feedback item.
        challenger_share: Share of users served by the challenger model.
        oversize_body_bytes: Body size of ``BODY_TOO_LARGE`` items (default ~5 MB).

    Raises:
        ValueError: On invalid arguments.
    """
    return iter(
        AppDataGenerator(
            n_feedback,
            seed,
            start,
            end,
            malformed_fraction,
            unlabeled_ratio,
            challenger_share,
            oversize_body_bytes=oversize_body_bytes,
        )
    )


# --- sinks ----------------------------------------------------------------------------------

_ARRAY_SPECIAL = frozenset(',{}"\\ \t\n')
_CSV_SPECIAL = re.compile(r'[",\r\n]')


def _array_literal(values: list[str]) -> str:
    """PostgreSQL array literal, quoting elements that need it."""
    parts = []
    for v in values:
        if v and not (_ARRAY_SPECIAL & set(v)) and v.upper() != "NULL":
            parts.append(v)
        else:
            parts.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def _csv_text(value: str | None) -> str:
    if value is None:
        return ""  # NULL: an empty, unquoted field
    if not value or _CSV_SPECIAL.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def _csv_id(value: str | None) -> str:
    # Generated ids, enum values and model versions never hold CSV metacharacters.
    return "" if value is None else value


def _csv_bytes(value: bytes | None) -> str:
    return "" if value is None else "\\x" + value.hex()


def _csv_ts(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(sep=" ")


def _csv_float(value: float | None) -> str:
    if value is None:
        return ""
    return "NaN" if value != value else repr(value)


def _csv_array(value: list[str] | None) -> str:
    return "" if value is None else _csv_text(_array_literal(value))


_CSV_KIND: dict[str, Callable[[Any], str]] = {
    "id": _csv_id,
    "text": _csv_text,
    "bytes": _csv_bytes,
    "ts": _csv_ts,
    "float": _csv_float,
    "array": _csv_array,
}
_COLUMN_KIND = {
    "sender": "text",
    "subject": "text",
    "category": "text",
    "corrected_category": "text",
    "note": "text",
    "body": "bytes",
    "received_at": "ts",
    "predicted_at": "ts",
    "created_at": "ts",
    "confidence": "float",
    "latency_ms": "float",
    "actions": "array",
    "missed_actions": "array",
    "unnecessary_actions": "array",
}
_CSV_CONVERTERS = {
    t: tuple(_CSV_KIND[_COLUMN_KIND.get(c, "id")] for c in cols) for t, cols in TABLE_COLUMNS.items()
}


def csv_line(table: str, row: tuple[Any, ...]) -> str:
    """One row of ``table`` as a line of PostgreSQL ``COPY ... (FORMAT csv)`` text."""
    return ",".join([conv(v) for conv, v in zip(_CSV_CONVERTERS[table], row, strict=True)]) + "\n"


def write_app_data_csv(out_dir: Path | str, items: Iterable[AppItem]) -> dict[str, int]:
    """Stream items into one CSV per app table (``<out_dir>/<table>.csv``), with a header row.

    The files load with ``COPY app.<table> (<header>) FROM '<file>' WITH (FORMAT csv, HEADER)``:
    an empty unquoted field is NULL and an empty string is ``""``; bytea is ``\\x`` hex,
    arrays are PostgreSQL array literals, timestamps ISO 8601 with offset, NaN is ``NaN``.

    Returns:
        Rows written per table.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(TABLES, 0)
    handles = {
        t: (out / f"{t}.csv").open("w", encoding="utf-8", newline="", buffering=1 << 20) for t in TABLES
    }
    try:
        writes = {t: fh.write for t, fh in handles.items()}
        for t, write in writes.items():
            write(",".join(TABLE_COLUMNS[t]) + "\n")
        for item in items:
            for t in TABLES:
                rows = getattr(item, t)
                if rows:
                    write = writes[t]
                    for row in rows:
                        write(csv_line(t, row))
                    counts[t] += len(rows)
    finally:
        for fh in handles.values():
            fh.close()
    return counts


def load_app_data(
    conn: Any, items: Iterable[AppItem], batch_rows: int = 20_000, batch_bytes: int = 64 * 1024 * 1024
) -> dict[str, int]:
    """Stream items into the app tables with ``COPY ... FROM STDIN`` (psycopg 3).

    Rows are buffered per table and flushed, one COPY per table in one transaction, every
    ``batch_rows`` rows or ``batch_bytes`` of email bodies, so memory stays bounded. Each
    batch commits on its own: a failure leaves earlier batches loaded (ids are
    deterministic, so a reload after ``TRUNCATE`` reproduces them).

    Args:
        conn: An open psycopg 3 connection.
        items: The items to load (e.g. :func:`iter_app_data`).
        batch_rows: Rows buffered (all tables together) before a flush.
        batch_bytes: Body bytes buffered before a flush.

    Returns:
        Rows loaded per table.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    counts = dict.fromkeys(TABLES, 0)
    buffers: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    statements = {t: f"COPY app.{t} ({', '.join(cols)}) FROM STDIN" for t, cols in TABLE_COLUMNS.items()}
    buffered = buffered_bytes = 0

    def flush() -> None:
        with conn.transaction(), conn.cursor() as cur:
            for t in TABLES:
                rows = buffers[t]
                if not rows:
                    continue
                with cur.copy(statements[t]) as copy:
                    for row in rows:
                        copy.write_row(row)
                counts[t] += len(rows)
                rows.clear()

    for item in items:
        for t in TABLES:
            rows = getattr(item, t)
            if rows:
                buffers[t].extend(rows)
                buffered += len(rows)
        for row in item.emails:
            buffered_bytes += len(row[4] or b"")
        if buffered >= batch_rows or buffered_bytes >= batch_bytes:
            flush()
            buffered = buffered_bytes = 0
    if buffered:
        flush()
    return counts
