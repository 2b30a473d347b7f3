"""The human-review queue: low-confidence predictions routed to reviewers, a few a day each.

Each hourly run of the ``review_queue`` DAG (:func:`refresh_review_queue`):

1. **resolves** pending items whose prediction received feedback (a category correction or
   action feedback): the reviewed item leaves the queue;
2. **expires** pending items older than ``expire_after_days`` (a reviewer who never got to
   them should not see them forever);
3. **enqueues** new candidates: production predictions of the lookback window with
   confidence below ``confidence_threshold`` (0.70), no feedback yet and not queued before,
   ranked by priority, up to what today's caps allow, each assigned to a reviewer.

Priority (higher first), a product of three factors::

    priority = uncertainty x criticality x problem_factor
    uncertainty    = 1 - confidence                                  in (0.30, 1]
    criticality    = weight of the predicted category's taxonomy priority
                     (critical 2.0, high 1.5, medium 1.2, low 1.0; a category the
                     taxonomy does not know gets the critical weight: it is a bad output)
    problem_factor = 1.5 when the email shows a known problem area, else 1.0

so a 0.40-confidence phishing prediction (0.6 x 2.0 = 1.2) outranks a 0.35-confidence
promotion (0.65 x 1.0 = 0.65). Problem areas detectable from the text alone are flagged by
:func:`detect_problem_areas` (``non_english``, ``quoted_reply_noise``); the confusable-pair
areas (receipt vs bill, ...) need the content understood and show up as low confidence.

Reviewers are contributors with at least ``min_accepted_for_reviewer`` accepted feedback
cards in the last ``reviewer_lookback_days``. Assignment, in priority order, goes to the
least-loaded eligible reviewer (fewest items assigned today, then fewest pending; ties
broken by an order reshuffled every day, so the same person is not always first), never to
the email's own user, and never above ``per_reviewer_daily_cap`` items a day or
``per_reviewer_max_pending`` pending items. At most ``daily_cap`` items are queued per UTC
day overall. A prediction is queued at most once (primary key; inserts are
``ON CONFLICT DO NOTHING``), whatever reruns happen. Runs are serialised by an advisory
lock so two concurrent runs cannot both spend the same cap.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from feedbackloop.db import transaction
from feedbackloop.golden import Taxonomy, default_taxonomy

_QUEUE_LOCK = 7_314_159_266  # advisory lock key of the enqueue step (constant, arbitrary)

DEFAULT_CRITICALITY = {"critical": 2.0, "high": 1.5, "medium": 1.2, "low": 1.0}
CANDIDATE_COLUMNS = (
    "prediction_id",
    "email_id",
    "owner_user_id",
    "model_version",
    "predicted_category",
    "confidence",
    "predicted_at",
    "subject",
    "body",
)


@dataclass(frozen=True)
class ReviewPolicy:
    """Knobs of the review queue (see the module docstring)."""

    confidence_threshold: float = 0.70
    daily_cap: int = 200
    per_reviewer_daily_cap: int = 10
    per_reviewer_max_pending: int = 30
    reviewer_lookback_days: int = 30
    min_accepted_for_reviewer: int = 3
    candidate_lookback_hours: int = 24
    max_candidates: int = 5000
    expire_after_days: int = 7
    problem_area_factor: float = 1.5
    criticality: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CRITICALITY))

    def __post_init__(self) -> None:
        if not 0 < self.confidence_threshold <= 1:
            raise ValueError(f"confidence_threshold must be in (0, 1], got {self.confidence_threshold!r}")
        for f in fields(self):
            if f.name in ("confidence_threshold", "criticality", "problem_area_factor"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{f.name} must be an integer >= 0, got {value!r}")
        if self.candidate_lookback_hours < 1 or self.expire_after_days < 1:
            raise ValueError("candidate_lookback_hours and expire_after_days must be >= 1")
        if not self.problem_area_factor >= 1:
            raise ValueError(f"problem_area_factor must be >= 1, got {self.problem_area_factor!r}")
        for name, weight in self.criticality.items():
            if not (isinstance(weight, int | float) and weight > 0):
                raise ValueError(f"criticality weight of {name!r} must be > 0, got {weight!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ReviewPolicy:
        """Build from overrides that may arrive as strings (DAG params).

        Raises:
            ValueError: unknown names or values of the wrong kind.
        """
        if not values:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown review policy field(s): {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            if raw is None or raw == "":
                continue
            if name == "criticality":
                converted[name] = {str(k): float(v) for k, v in dict(raw).items()}
            else:
                try:
                    number = float(raw)
                except (TypeError, ValueError):
                    raise ValueError(f"{name} must be a number, got {raw!r}") from None
                if name in ("confidence_threshold", "problem_area_factor"):
                    converted[name] = number
                    continue
                if not number.is_integer():
                    raise ValueError(f"{name} must be a whole number, got {raw!r}")
                converted[name] = int(number)
        return cls(**converted)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["criticality"] = dict(sorted(self.criticality.items()))
        return out


# --------------------------------------------------------------------------- problem areas

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_ENGLISH = frozenset(
    "the and to of you your is for on in this with we our are be it at have please will was "
    "from by an or if can has not all".split()
)
# Frequent function words of the languages the app sees besides English (de, fr, es, pt),
# minus words English shares.
_FOREIGN = (
    frozenset(
        (
            "der die das und ist nicht sie ihr ihre ihren wir mit für auf den dem zu bitte ein eine einen "
            "von sehr vielen dank ihrem unser unsere wird werden du dir mir uns bei im bis jetzt "
            "le la les et est vous votre vos nous pour avec une des du sur dans merci pas ce cette "
            "el los las y es su sus tu para con una por del que gracias nuestro nuestra hola usted "
            "os seu sua uma não obrigado olá você seus suas no na nossa em ao às até esta"
        ).split()
    )
    - _ENGLISH
)
# Left out on purpose: "de", "com", "do", "e", "o" also occur in English text and URLs.
_FORWARD_HEADER = re.compile(r"^\s*-{2,}\s*(forwarded message|original message)\s*-*\s*$", re.I | re.M)
_WROTE = re.compile(r"^.{0,160}\bwrote(\s+on\s.{3,120})?:\s*$", re.I | re.M)
# Letters English text does not use: one word with them is a strong hint of another language.
_NON_ENGLISH_LETTERS = re.compile(r"[àáâãäçèéêëíîïñóôõöúûüßœ]", re.I)
_QUOTED_LINE = re.compile(r"^\s*>", re.M)
_THREAD_HEADER = re.compile(r"^\s*from: .+\n\s*(sent|date): ", re.I | re.M)


def detect_problem_areas(subject: str | None, body: str | None) -> tuple[str, ...]:
    """Problem areas (:data:`feedbackloop.golden.PROBLEM_AREAS`) visible in the text alone.

    * ``non_english``: at least 3 words that are German, French, Spanish or Portuguese
      function words or carry letters English does not use (ä, ç, ñ, ...), and more of
      them than English function words.
    * ``quoted_reply_noise``: a forwarded / original-message separator, a "... wrote:"
      line, a "From: ... Sent/Date:" thread header, or at least 3 quoted (``>``) lines.
    """
    text = f"{subject or ''}\n{body or ''}"
    areas = []
    words = [w.lower() for w in _WORD.findall(text)]
    foreign = sum(w in _FOREIGN or bool(_NON_ENGLISH_LETTERS.search(w)) for w in words)
    english = sum(w in _ENGLISH for w in words)
    if foreign >= 3 and foreign > english:
        areas.append("non_english")
    if (
        _FORWARD_HEADER.search(text)
        or _WROTE.search(text)
        or _THREAD_HEADER.search(text)
        or len(_QUOTED_LINE.findall(text)) >= 3
    ):
        areas.append("quoted_reply_noise")
    return tuple(sorted(areas))


# --------------------------------------------------------------------------- pure functions


def prioritise(
    candidates: pd.DataFrame, taxonomy: Taxonomy, policy: ReviewPolicy | None = None
) -> pd.DataFrame:
    """Candidates with ``uncertainty, criticality, problem_areas, problem_factor, priority``.

    Args:
        candidates: rows with :data:`CANDIDATE_COLUMNS`.
        taxonomy: category -> priority, for the criticality weight.
        policy: weights.

    Returns:
        A new DataFrame sorted by priority (descending), then prediction_id; rows whose
        confidence is not a number in [0, threshold) are dropped.
    """
    p = policy or ReviewPolicy()
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise ValueError(f"candidates lack column(s): {', '.join(missing)}")
    conf = pd.to_numeric(candidates["confidence"], errors="coerce")
    keep = conf.notna() & (conf >= 0) & (conf < p.confidence_threshold)
    out = candidates.loc[keep].copy()
    top = max(p.criticality.values())
    prio_of = {c.id: c.priority for c in taxonomy.categories}
    out["uncertainty"] = 1.0 - conf[keep].astype("float64")
    out["criticality"] = [
        float(p.criticality.get(prio_of[c], 1.0)) if c in prio_of else float(top)
        for c in out["predicted_category"]
    ]
    out["problem_areas"] = [
        list(detect_problem_areas(s, b)) for s, b in zip(out["subject"], out["body"], strict=True)
    ]
    out["problem_factor"] = [p.problem_area_factor if a else 1.0 for a in out["problem_areas"]]
    out["priority"] = (out["uncertainty"] * out["criticality"] * out["problem_factor"]).round(6)
    return out.sort_values(["priority", "prediction_id"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def rotation_order(reviewers: Sequence[str], day: date) -> dict[str, int]:
    """A per-day shuffled order of reviewers (stable hash of day and id), used to break ties."""
    keyed = sorted(
        reviewers, key=lambda r: (hashlib.sha256(f"{day.isoformat()}:{r}".encode()).hexdigest(), r)
    )
    return {r: i for i, r in enumerate(keyed)}


def assign_reviewers(
    ranked: pd.DataFrame,
    reviewers: Sequence[str],
    day: date,
    policy: ReviewPolicy | None = None,
    assigned_today: Mapping[str, int] | None = None,
    pending: Mapping[str, int] | None = None,
    queued_today: int = 0,
) -> pd.DataFrame:
    """Assign ranked candidates to reviewers within the caps (see the module docstring).

    Args:
        ranked: output of :func:`prioritise` (highest priority first).
        reviewers: eligible reviewer ids.
        day: the UTC day the caps count.
        policy: caps.
        assigned_today: items already assigned today per reviewer.
        pending: pending items per reviewer (all days).
        queued_today: items already queued today overall.

    Returns:
        A new DataFrame: the assigned rows of ``ranked`` in order, with ``reviewer_id``.
        Candidates no reviewer can take (caps, or the only free reviewer owns the email)
        are left out; they stay candidates for later runs.
    """
    p = policy or ReviewPolicy()
    today = {r: int((assigned_today or {}).get(r, 0)) for r in reviewers}
    backlog = {r: int((pending or {}).get(r, 0)) for r in reviewers}
    order = rotation_order(sorted(set(reviewers)), day)
    heap = [
        (today[r], backlog[r], order[r], r)
        for r in order
        if today[r] < p.per_reviewer_daily_cap and backlog[r] < p.per_reviewer_max_pending
    ]
    heapq.heapify(heap)
    room = max(0, p.daily_cap - int(queued_today))
    chosen: list[int] = []
    who: list[str] = []
    for idx, owner in enumerate(ranked["owner_user_id"].tolist()):
        if len(chosen) >= room or not heap:
            break
        skipped = []
        picked = None
        while heap:
            entry = heapq.heappop(heap)
            if entry[3] == owner:
                skipped.append(entry)
                continue
            picked = entry
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        if picked is None:
            continue
        n_today, n_pending, rank, reviewer = picked
        chosen.append(idx)
        who.append(reviewer)
        if n_today + 1 < p.per_reviewer_daily_cap and n_pending + 1 < p.per_reviewer_max_pending:
            heapq.heappush(heap, (n_today + 1, n_pending + 1, rank, reviewer))
    out = ranked.iloc[chosen].copy()
    out["reviewer_id"] = who
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- database

_CANDIDATES_SQL = """
SELECT p.prediction_id, p.email_id, p.user_id, p.model_version, p.category, p.confidence, p.predicted_at,
       e.subject, substring(e.body FROM 1 FOR %(body_bytes)s)
FROM app.predictions p
LEFT JOIN app.emails e ON e.email_id = p.email_id
WHERE p.predicted_at >= %(start)s AND p.predicted_at < %(end)s
  AND p.confidence >= 0 AND p.confidence < %(threshold)s
  AND NOT EXISTS (SELECT 1 FROM ml.review_queue q WHERE q.prediction_id = p.prediction_id)
  AND NOT EXISTS (SELECT 1 FROM app.category_corrections c
                  WHERE c.prediction_id = p.prediction_id AND c.created_at < %(end)s)
  AND NOT EXISTS (SELECT 1 FROM app.action_feedback a
                  WHERE a.prediction_id = p.prediction_id AND a.created_at < %(end)s)
ORDER BY p.confidence, p.prediction_id
LIMIT %(limit)s
"""

_BODY_BYTES = 8192  # the heuristics read the head of the body; bodies can be megabytes


def load_candidates(
    conn: Any, start: datetime, end: datetime, policy: ReviewPolicy | None = None
) -> pd.DataFrame:
    """Unqueued, unreviewed predictions of ``[start, end)`` below the confidence threshold.

    At most ``policy.max_candidates`` rows, the least confident first.
    """
    p = policy or ReviewPolicy()
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must carry a time zone")
    params = {
        "start": start,
        "end": end,
        "threshold": p.confidence_threshold,
        "limit": p.max_candidates,
        "body_bytes": _BODY_BYTES,
    }
    with transaction(conn) as cur:
        cur.execute(_CANDIDATES_SQL, params)
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))
    frame["body"] = [None if b is None else bytes(b).decode("utf-8", errors="replace") for b in frame["body"]]
    return frame


def load_reviewers(
    conn: Any, until: datetime, policy: ReviewPolicy | None = None, taxonomy: Taxonomy | None = None
) -> list[str]:
    """Contributors with enough accepted cards in the lookback before ``until``, sorted."""
    from feedbackloop.contributors import CARDS_CTE, cards_params

    p = policy or ReviewPolicy()
    params = cards_params(
        taxonomy or default_taxonomy(), until - timedelta(days=p.reviewer_lookback_days), until
    )
    params["min_cards"] = max(1, p.min_accepted_for_reviewer)
    with transaction(conn) as cur:
        cur.execute(
            "WITH " + CARDS_CTE + " SELECT user_id FROM cards WHERE accepted GROUP BY user_id "
            "HAVING count(*) >= %(min_cards)s ORDER BY user_id",
            params,
        )
        return [r[0] for r in cur.fetchall()]


def resolve_reviewed(conn: Any, until: datetime) -> int:
    """Mark pending items resolved when feedback for their prediction exists before ``until``."""
    with transaction(conn) as cur:
        cur.execute(
            """UPDATE ml.review_queue q
               SET status = 'resolved', resolved_at = f.at, resolution = f.kind,
                   resolved_by_user = f.user_id, updated_at = now()
               FROM (
                   SELECT DISTINCT ON (prediction_id) prediction_id, at, kind, user_id
                   FROM (
                       SELECT c.prediction_id, c.created_at AS at, 'correction' AS kind, c.user_id
                       FROM app.category_corrections c
                       JOIN ml.review_queue pq ON pq.prediction_id = c.prediction_id AND pq.status = 'pending'
                       WHERE c.created_at < %(until)s
                       UNION ALL
                       SELECT a.prediction_id, a.created_at, 'action_feedback', a.user_id
                       FROM app.action_feedback a
                       JOIN ml.review_queue pq ON pq.prediction_id = a.prediction_id AND pq.status = 'pending'
                       WHERE a.created_at < %(until)s
                   ) fb
                   ORDER BY prediction_id, at, kind
               ) f
               WHERE q.prediction_id = f.prediction_id AND q.status = 'pending'""",
            {"until": until},
        )
        return cur.rowcount


def expire_stale(conn: Any, now: datetime, policy: ReviewPolicy | None = None) -> int:
    """Expire pending items queued more than ``expire_after_days`` before ``now``."""
    p = policy or ReviewPolicy()
    with transaction(conn) as cur:
        cur.execute(
            """UPDATE ml.review_queue
               SET status = 'expired', resolution = 'expired', resolved_at = %(now)s, updated_at = now()
               WHERE status = 'pending' AND enqueued_at < %(cutoff)s""",
            {"now": now, "cutoff": now - timedelta(days=p.expire_after_days)},
        )
        return cur.rowcount


def _queue_day(end: datetime) -> date:
    # The day of the hour that just ended: a run for [23:00, 24:00) counts towards that day.
    return (end - timedelta(microseconds=1)).astimezone(UTC).date()


def enqueue_low_confidence(
    conn: Any,
    end: datetime,
    actor: str,
    policy: ReviewPolicy | None = None,
    taxonomy: Taxonomy | None = None,
) -> dict[str, Any]:
    """Queue today's share of new low-confidence predictions (steps 3 of the module docstring).

    Args:
        conn: psycopg connection to the feedback DB.
        end: the run's data interval end; candidates are predicted in
            ``[end - candidate_lookback_hours, end)`` and queued with ``enqueued_at = end``.
        actor: ``<dag_id>/<run_id>``.
        policy: thresholds and caps.
        taxonomy: for criticality weights and reviewer eligibility.

    Returns:
        A JSON-safe summary (candidates, queued, per-reviewer counts, cap left).
    """
    p = policy or ReviewPolicy()
    taxonomy = taxonomy or default_taxonomy()
    if end.tzinfo is None:
        raise ValueError("end must carry a time zone")
    day = _queue_day(end)
    reviewers = load_reviewers(conn, end, p, taxonomy)
    candidates = load_candidates(conn, end - timedelta(hours=p.candidate_lookback_hours), end, p)
    ranked = prioritise(candidates, taxonomy, p)
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_QUEUE_LOCK,))
        cur.execute(
            "SELECT reviewer_id, count(*) FROM ml.review_queue WHERE queue_date = %s GROUP BY reviewer_id",
            (day,),
        )
        today = {r: int(n) for r, n in cur.fetchall()}
        cur.execute(
            "SELECT reviewer_id, count(*) FROM ml.review_queue WHERE status = 'pending' GROUP BY reviewer_id"
        )
        pending = {r: int(n) for r, n in cur.fetchall()}
        assigned = assign_reviewers(ranked, reviewers, day, p, today, pending, sum(today.values()))
        rows = [
            (
                r.prediction_id,
                r.email_id,
                r.owner_user_id,
                r.model_version,
                r.predicted_category,
                float(r.confidence),
                float(r.uncertainty),
                float(r.criticality),
                float(r.problem_factor),
                list(r.problem_areas),
                float(r.priority),
                r.reviewer_id,
                day,
                r.predicted_at,
                end,
                actor,
            )
            for r in assigned.itertuples(index=False)
        ]
        inserted = 0
        for row in rows:
            cur.execute(
                """INSERT INTO ml.review_queue
                       (prediction_id, email_id, owner_user_id, model_version, predicted_category, confidence,
                        uncertainty, criticality, problem_factor, problem_areas, priority, reviewer_id,
                        queue_date, predicted_at, enqueued_at, enqueued_by)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (prediction_id) DO NOTHING""",
                row,
            )
            inserted += cur.rowcount
    per_reviewer: dict[str, int] = {}
    for r in assigned["reviewer_id"].tolist() if len(assigned) else []:
        per_reviewer[r] = per_reviewer.get(r, 0) + 1
    return {
        "queue_date": day.isoformat(),
        "reviewers": len(reviewers),
        "candidates": len(ranked),
        "queued": inserted,
        "queued_today": sum(today.values()) + inserted,
        "daily_cap": p.daily_cap,
        "per_reviewer": dict(sorted(per_reviewer.items())),
        "problem_area_items": int((assigned["problem_factor"] > 1).sum()) if len(assigned) else 0,
    }


def refresh_review_queue(
    conn: Any,
    end: datetime,
    actor: str,
    policy: ReviewPolicy | None = None,
    taxonomy: Taxonomy | None = None,
) -> dict[str, Any]:
    """One hourly pass: resolve reviewed items, expire stale ones, enqueue new candidates."""
    p = policy or ReviewPolicy()
    resolved = resolve_reviewed(conn, end)
    expired = expire_stale(conn, end, p)
    summary = enqueue_low_confidence(conn, end, actor, p, taxonomy)
    with transaction(conn) as cur:
        cur.execute("SELECT count(*) FROM ml.review_queue WHERE status = 'pending'")
        (open_items,) = cur.fetchone()
    return {
        "resolved": resolved,
        "expired": expired,
        "pending": int(open_items),
        "policy": p.to_dict(),
        **summary,
    }
