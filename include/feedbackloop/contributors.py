"""Contributor stats for the app's rewards screen: accepted cards, free months, leaderboard, impact.

Definitions (documented here because the app shows them to users):

* A **card** is one user's feedback on one prediction: their category correction and/or
  action feedback for it (a client that sends the same correction twice still makes one
  card). The contributor is the user who gave the feedback.
* A card is **accepted** when the feedback would pass the pipeline's validation: the
  prediction has a category of the taxonomy and a confidence in [0, 1], the email body is
  present, not empty and at most ``MAX_BODY_BYTES``, every corrected category and every
  missed / unnecessary action is known to the taxonomy, and the feedback was given after
  the prediction and before the evaluation time. (Invalid UTF-8 bodies, which validation
  also quarantines, cannot be detected in SQL without failing the query and still count.)
* **Free months**: ``floor(accepted cards / 10)`` (the brief's "10 cards = 1 free month").
* **Weekly leaderboard**: accepted cards per user in the ISO week (Monday 00:00 UTC) of
  the card's first feedback, ranked by count, ties broken by user id.
* **Impact line**: each time the ``champion`` alias moved from version P to version V
  (``ml.deployment_history``), the improvement is V's golden-set accuracy minus P's (each
  from its latest passing ``ml.golden_runs`` row). A contributor whose accepted card falls
  in V's training interval (``ml.model_versions.data_interval_start .. end``) gets
  "Your corrections were in the training set of a model that improved accuracy by +x
  points", for the most recent such V with a positive improvement. It is a simple, honest
  attribution (the card was in the data the model was trained on), not a causal claim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from feedbackloop.contracts import MAX_BODY_BYTES
from feedbackloop.db import transaction
from feedbackloop.golden import Taxonomy, default_taxonomy

CARDS_PER_FREE_MONTH = 10

# One row per card (prediction, contributor) with its first feedback time and whether every
# feedback row of it is valid. Parameters: cats, acts (text[]), max_body, since, until.
CARDS_CTE = """
cards_fb AS (
    SELECT c.prediction_id, c.user_id, c.created_at,
           (c.corrected_category IS NOT NULL AND c.corrected_category = ANY(%(cats)s)) AS ok
    FROM app.category_corrections c
    WHERE c.created_at >= %(since)s AND c.created_at < %(until)s
    UNION ALL
    SELECT a.prediction_id, a.user_id, a.created_at,
           (COALESCE(a.missed_actions, '{}') <@ %(acts)s::text[]
            AND COALESCE(a.unnecessary_actions, '{}') <@ %(acts)s::text[]) AS ok
    FROM app.action_feedback a
    WHERE a.created_at >= %(since)s AND a.created_at < %(until)s
),
cards AS (
    SELECT f.prediction_id, COALESCE(f.user_id, p.user_id) AS user_id,
           min(f.created_at) AS first_at,
           bool_and(
               f.ok
               AND p.category = ANY(%(cats)s)
               AND p.confidence >= 0 AND p.confidence <= 1
               AND COALESCE(p.actions, '{}') <@ %(acts)s::text[]
               AND f.created_at >= p.predicted_at
               AND e.body IS NOT NULL
               AND octet_length(e.body) BETWEEN 1 AND %(max_body)s
           ) AS accepted
    FROM cards_fb f
    JOIN app.predictions p ON p.prediction_id = f.prediction_id
    LEFT JOIN app.emails e ON e.email_id = p.email_id
    WHERE COALESCE(f.user_id, p.user_id) IS NOT NULL
    GROUP BY f.prediction_id, COALESCE(f.user_id, p.user_id)
)
"""


def cards_params(taxonomy: Taxonomy, since: datetime, until: datetime) -> dict[str, Any]:
    """Parameters of :data:`CARDS_CTE` for cards given in ``[since, until)``."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must carry a time zone")
    return {
        "cats": list(taxonomy.category_ids),
        "acts": list(taxonomy.actions),
        "max_body": MAX_BODY_BYTES,
        "since": since,
        "until": until,
    }


def free_months(accepted_cards: int) -> int:
    """Free months earned: one per :data:`CARDS_PER_FREE_MONTH` accepted cards (floor).

    Raises:
        ValueError: a negative count.
    """
    if accepted_cards < 0:
        raise ValueError(f"accepted_cards must be >= 0, got {accepted_cards}")
    return accepted_cards // CARDS_PER_FREE_MONTH


def week_start(at: datetime) -> date:
    """Monday (UTC) of the ISO week containing ``at``."""
    if at.tzinfo is None:
        raise ValueError("at must carry a time zone")
    day = at.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def impact_line(points: float) -> str:
    """The rewards screen's impact sentence for an improvement of ``points`` accuracy points."""
    return (
        f"Your corrections were in the training set of a model that improved accuracy by {points:+.1f} points"
    )


@dataclass(frozen=True)
class Improvement:
    """One champion change and its golden-set accuracy gain (in points)."""

    version_id: str
    previous_version_id: str
    changed_at: datetime
    interval_start: datetime | None
    interval_end: datetime | None
    accuracy: float
    previous_accuracy: float

    @property
    def points(self) -> float:
        return 100.0 * (self.accuracy - self.previous_accuracy)


# --------------------------------------------------------------------------- pure functions


def weekly_leaderboard(weekly: pd.DataFrame, week: date, top: int | None = None) -> pd.DataFrame:
    """The leaderboard of one week: ``rank, user_id, accepted_cards`` (rank from 1).

    Args:
        weekly: rows ``user_id, week_start, accepted_cards``.
        week: the Monday of the week.
        top: keep the first ``top`` ranks (all when None).
    """
    rows = weekly[(weekly["week_start"] == week) & (weekly["accepted_cards"] > 0)]
    ordered = rows.sort_values(["accepted_cards", "user_id"], ascending=[False, True], kind="stable")
    out = pd.DataFrame(
        {
            "rank": range(1, len(ordered) + 1),
            "user_id": ordered["user_id"].to_numpy(),
            "accepted_cards": ordered["accepted_cards"].to_numpy(dtype="int64"),
        }
    )
    return out if top is None else out.head(top).reset_index(drop=True)


def build_contributor_stats(
    weekly: pd.DataFrame,
    first_last: pd.DataFrame,
    impact: pd.DataFrame,
    now: datetime,
) -> pd.DataFrame:
    """One row per contributor with accepted cards, ready for ``ml.contributor_stats``.

    Args:
        weekly: accepted cards per ``user_id, week_start`` (``accepted_cards`` > 0).
        first_last: ``user_id, first_feedback_at, last_feedback_at`` over accepted cards.
        impact: ``user_id, version_id, points, changed_at``: the improving models whose
            training interval held one of the user's accepted cards (any number per user).
        now: the refresh time; its ISO week is the leaderboard week.

    Returns:
        A new DataFrame sorted by user_id; the inputs are not modified.
    """
    week = week_start(now)
    totals = weekly.groupby("user_id", sort=True)["accepted_cards"].sum().astype("int64")
    this_week = weekly_leaderboard(weekly, week).set_index("user_id")
    out = pd.DataFrame({"user_id": totals.index.to_numpy(), "accepted_cards": totals.to_numpy()})
    out["free_months"] = out["accepted_cards"] // CARDS_PER_FREE_MONTH
    out["cards_to_next_month"] = CARDS_PER_FREE_MONTH - out["accepted_cards"] % CARDS_PER_FREE_MONTH
    fl = first_last.set_index("user_id")
    out["first_feedback_at"] = out["user_id"].map(fl["first_feedback_at"]) if len(fl) else pd.NaT
    out["last_feedback_at"] = out["user_id"].map(fl["last_feedback_at"]) if len(fl) else pd.NaT
    out["week_start"] = week
    out["cards_this_week"] = out["user_id"].map(this_week["accepted_cards"]).fillna(0).astype("int64")
    out["weekly_rank"] = out["user_id"].map(this_week["rank"]).astype("Int64")
    best = (
        impact[impact["points"] > 0]
        .sort_values(["user_id", "changed_at", "version_id"], kind="stable")
        .groupby("user_id", sort=True)
        .tail(1)
        .set_index("user_id")
    )
    out["impact_version_id"] = out["user_id"].map(best["version_id"]) if len(best) else None
    points = out["user_id"].map(best["points"]) if len(best) else pd.Series([math.nan] * len(out))
    out["impact_points"] = points.astype("float64").round(1)
    out["impact_line"] = [None if pd.isna(p) else impact_line(float(p)) for p in out["impact_points"]]
    out["refreshed_at"] = now
    return out.sort_values("user_id", kind="stable").reset_index(drop=True)


def improvements_from_history(
    champion_history: pd.DataFrame, golden_accuracy: dict[str, float], versions: pd.DataFrame
) -> list[Improvement]:
    """Accuracy gains of champion changes.

    Args:
        champion_history: champion alias changes in order: ``version_id, changed_at``.
        golden_accuracy: version -> golden-set accuracy (latest passing run).
        versions: ``version_id, data_interval_start, data_interval_end`` of model versions.

    Returns:
        One :class:`Improvement` per change from one version to another, where both
        accuracies are known, oldest first.
    """
    intervals = versions.set_index("version_id") if len(versions) else None
    out: list[Improvement] = []
    previous: str | None = None
    for row in champion_history.itertuples(index=False):
        version = row.version_id
        if (
            previous is not None
            and version != previous
            and version in golden_accuracy
            and previous in golden_accuracy
        ):
            start = end = None
            if intervals is not None and version in intervals.index:
                start = intervals.at[version, "data_interval_start"]
                end = intervals.at[version, "data_interval_end"]
            out.append(
                Improvement(
                    version_id=version,
                    previous_version_id=previous,
                    changed_at=row.changed_at,
                    interval_start=None if pd.isna(start) else start,
                    interval_end=None if pd.isna(end) else end,
                    accuracy=float(golden_accuracy[version]),
                    previous_accuracy=float(golden_accuracy[previous]),
                )
            )
        previous = version
    return out


# --------------------------------------------------------------------------- database

_WEEKLY_SQL = (
    "WITH "
    + CARDS_CTE
    + """
SELECT user_id, (date_trunc('week', first_at AT TIME ZONE 'UTC'))::date AS week_start,
       count(*) AS accepted_cards
FROM cards WHERE accepted
GROUP BY 1, 2 ORDER BY 1, 2
"""
)

_FIRST_LAST_SQL = (
    "WITH "
    + CARDS_CTE
    + """
SELECT user_id, min(first_at), max(first_at) FROM cards WHERE accepted GROUP BY user_id ORDER BY user_id
"""
)

_CARDS_IN_INTERVALS_SQL = (
    "WITH "
    + CARDS_CTE
    + """
SELECT DISTINCT cards.user_id, iv.version_id
FROM cards
JOIN unnest(%(versions)s::text[], %(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS iv(version_id, s, e)
  ON cards.first_at >= iv.s AND cards.first_at < iv.e
WHERE cards.accepted
ORDER BY 1, 2
"""
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_weekly_cards(conn: Any, now: datetime, taxonomy: Taxonomy | None = None) -> pd.DataFrame:
    """Accepted cards per ``user_id, week_start`` for all feedback given before ``now``."""
    params = cards_params(taxonomy or default_taxonomy(), _EPOCH, now)
    with transaction(conn) as cur:
        cur.execute(_WEEKLY_SQL, params)
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=["user_id", "week_start", "accepted_cards"])
    frame["accepted_cards"] = frame["accepted_cards"].astype("int64")
    return frame


def load_improvements(conn: Any) -> list[Improvement]:
    """Accuracy gains of the champion's changes, from the registry tables."""
    with transaction(conn) as cur:
        cur.execute(
            """SELECT version_id, created_at FROM ml.deployment_history
               WHERE alias = 'champion' AND version_id IS NOT NULL AND action IN ('set', 'promote')
               ORDER BY created_at, id"""
        )
        history = pd.DataFrame(cur.fetchall(), columns=["version_id", "changed_at"])
        cur.execute(
            """SELECT DISTINCT ON (version_id) version_id, (metrics->>'accuracy')::double precision
               FROM ml.golden_runs
               WHERE verdict = 'pass' AND metrics ? 'accuracy'
               ORDER BY version_id, created_at DESC"""
        )
        accuracy = {v: float(a) for v, a in cur.fetchall() if a is not None}
        cur.execute("SELECT version_id, data_interval_start, data_interval_end FROM ml.model_versions")
        versions = pd.DataFrame(
            cur.fetchall(), columns=["version_id", "data_interval_start", "data_interval_end"]
        )
    return improvements_from_history(history, accuracy, versions)


def load_impact(
    conn: Any, improvements: Sequence[Improvement], now: datetime, taxonomy: Taxonomy | None = None
) -> pd.DataFrame:
    """``user_id, version_id, points, changed_at`` for accepted cards in improving models' intervals."""
    columns = ["user_id", "version_id", "points", "changed_at"]
    usable = [
        i
        for i in improvements
        if i.interval_start is not None and i.interval_end is not None and i.points > 0
    ]
    if not usable:
        return pd.DataFrame(columns=columns)
    since = min(i.interval_start for i in usable if i.interval_start is not None)
    params = cards_params(taxonomy or default_taxonomy(), since, now)
    params.update(
        versions=[i.version_id for i in usable],
        starts=[i.interval_start for i in usable],
        ends=[i.interval_end for i in usable],
    )
    with transaction(conn) as cur:
        cur.execute(_CARDS_IN_INTERVALS_SQL, params)
        rows = cur.fetchall()
    by_version = {i.version_id: i for i in usable}
    return pd.DataFrame(
        [(u, v, by_version[v].points, by_version[v].changed_at) for u, v in rows], columns=columns
    )


_STATS_COLUMNS = (
    "user_id",
    "accepted_cards",
    "free_months",
    "cards_to_next_month",
    "first_feedback_at",
    "last_feedback_at",
    "week_start",
    "cards_this_week",
    "weekly_rank",
    "impact_version_id",
    "impact_points",
    "impact_line",
    "refreshed_at",
)


def _py(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def refresh_contributor_stats(conn: Any, now: datetime, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """Rebuild ``ml.contributor_stats`` and ``ml.contributor_weekly`` as of ``now``.

    Both tables are replaced in one transaction, so the app never reads a half-written
    state, and the result only depends on the data before ``now`` (a re-run rewrites the
    same rows).

    Returns:
        A JSON-safe summary: contributors, accepted cards, free months, this week's top 3.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    taxonomy = taxonomy or default_taxonomy()
    params = cards_params(taxonomy, _EPOCH, now)
    weekly = load_weekly_cards(conn, now, taxonomy)
    with transaction(conn) as cur:
        cur.execute(_FIRST_LAST_SQL, params)
        first_last = pd.DataFrame(
            cur.fetchall(), columns=["user_id", "first_feedback_at", "last_feedback_at"]
        )
    improvements = load_improvements(conn)
    impact = load_impact(conn, improvements, now, taxonomy)
    stats = build_contributor_stats(weekly, first_last, impact, now)
    rows = [tuple(_py(v) for v in rec) for rec in stats[list(_STATS_COLUMNS)].itertuples(index=False)]
    weekly_rows = [
        (r.user_id, r.week_start, int(r.accepted_cards), now) for r in weekly.itertuples(index=False)
    ]
    with transaction(conn) as cur:
        cur.execute("LOCK TABLE ml.contributor_stats, ml.contributor_weekly IN EXCLUSIVE MODE")
        cur.execute("DELETE FROM ml.contributor_stats")
        cur.execute("DELETE FROM ml.contributor_weekly")
        if rows:
            cur.executemany(
                f"INSERT INTO ml.contributor_stats ({', '.join(_STATS_COLUMNS)}) "
                f"VALUES ({', '.join(['%s'] * len(_STATS_COLUMNS))})",
                rows,
            )
        if weekly_rows:
            cur.executemany(
                "INSERT INTO ml.contributor_weekly (user_id, week_start, accepted_cards, refreshed_at) "
                "VALUES (%s, %s, %s, %s)",
                weekly_rows,
            )
    board = weekly_leaderboard(weekly, week_start(now), top=3)
    return {
        "refreshed_at": now.isoformat(),
        "contributors": len(stats),
        "accepted_cards": int(stats["accepted_cards"].sum()) if len(stats) else 0,
        "free_months": int(stats["free_months"].sum()) if len(stats) else 0,
        "with_impact_line": int(stats["impact_line"].notna().sum()) if len(stats) else 0,
        "improving_models": len([i for i in improvements if i.points > 0]),
        "week_start": week_start(now).isoformat(),
        "top_this_week": [
            {"rank": int(r.rank), "user_id": r.user_id, "accepted_cards": int(r.accepted_cards)}
            for r in board.itertuples(index=False)
        ],
    }
