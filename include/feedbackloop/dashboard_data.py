"""Model-quality dashboard data: every panel as a JSON-safe dict, read from the feedback DB.

The dashboard plugin (``plugins/feedbackloop_dashboard``) renders these dicts as HTML and
serves them as its JSON API; nothing here knows about the web layer or Airflow.

Panels and where they come from:

=====================  ==========================================================================
``accuracy``           accuracy per model version per day, and over 7 / 30 / 90 days (summary)
``category_accuracy``  accuracy per true category and ISO week, a heatmap (summary)
``calibration``        reliability diagram: 15 confidence bins vs accuracy, and the ECE (summary)
``latency``            p50 / p95 / p99 latency per day against the 500 ms SLO (summary)
``feedback_volume``    corrections, confirmations and action feedback per day (summary)
``deployments``        the champion / challenger aliases (``ml.deployments``)
``experiment``         the live A/B experiment: share, samples per arm, P(challenger beats the
                       champion), the latest decision and the next one (``ml.experiments``,
                       ``ml.experiment_decisions``)
``alerts``             open regression incidents (``ml.alerts``)
``review_queue``       size and age of the human-review queue (``ml.review_queue``)
``gate_reports``       the latest golden-set gate runs with their report links (``ml.golden_runs``)
``misclassifications`` the latest predictions users corrected to another category (app tables)
=====================  ==========================================================================

Definitions (the same as the A/B evaluation's, :mod:`feedbackloop.experiment`):

* A prediction is *correct* unless a user corrected its category to another category (no
  correction, or a correction naming the predicted category, counts as correct). Users
  correct only some mistakes, so this is an upper bound on accuracy, not golden-set accuracy.
* The *true category* of a prediction is the latest correction to another category, else the
  predicted category (per-category accuracy is recall per true category, as in
  :mod:`feedbackloop.evaluation`).
* Days are UTC days; a window of N days ends with the day of ``as_of`` (default: now) and
  includes it, so "7 days" is today and the 6 days before.

Speed: at production volume (millions of predictions over 90 days) joining predictions with
their feedback per request is far too slow, so trends read per-hour and per-day summaries in
``ml`` (``migrations/ml/0006_dashboard_indexes.sql``): a few thousand rows for 90 days.
:func:`refresh_summary` recomputes whole days; :func:`ensure_summary` recomputes the recent
days (feedback arrives days after its prediction) when the summary is older than
:data:`DEFAULT_MAX_AGE` (the plugin runs it in the background, so no reader waits for it).
:func:`dashboard` reads every panel in one read-only snapshot. Panels over tables another
migration creates (``ml.alerts``, ``ml.review_queue``, ``ml.experiments``, ...) check that
the table exists and report ``available: false`` with the reason instead of failing.

Every function takes an open psycopg 3 connection and uses parameterised SQL only.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from feedbackloop.db import transaction

WINDOW_DAYS: tuple[int, ...] = (7, 30, 90)
"""The windows the dashboard offers (days, ending today)."""
DEFAULT_DAYS = 30
CONFIDENCE_BINS = 15
"""Reliability-diagram bins: ``[k/15, (k+1)/15)``, the last closed (as evaluation.ECE_BINS)."""
LATENCY_SLO_MS = 500.0
"""The product's latency objective: p95 below 500 ms."""
MIN_CELL_PREDICTIONS = 30
"""Heatmap cells with fewer predictions are flagged ``low_sample`` (their accuracy is noise)."""
EVALUATION_HOUR_UTC = 6
"""The ``experiment_evaluation`` DAG decides daily at 06:00 UTC (its cron, ``0 6 * * *``)."""
DEFAULT_MAX_AGE = timedelta(minutes=10)
"""How stale the summary may get before a read recomputes its recent days."""
DEFAULT_LOOKBACK = timedelta(days=7)
"""How far back feedback may still change a day: recent days are recomputed this far back."""
SUBJECT_CHARS = 140
PANELS: tuple[str, ...] = (
    "accuracy",
    "category_accuracy",
    "calibration",
    "latency",
    "feedback_volume",
    "deployments",
    "experiment",
    "alerts",
    "review_queue",
    "gate_reports",
    "misclassifications",
)

_REFRESH_LOCK = 7_314_159_266  # advisory-lock key of summary refreshes (db.py uses ...265)
_SUMMARY_TABLES = (
    "ml.dashboard_model_hourly",
    "ml.dashboard_category_daily",
    "ml.dashboard_confidence_daily",
    "ml.dashboard_latency_daily",
    "ml.dashboard_feedback_daily",
)
# Every table a panel reads; dashboard() checks them all in one query.
_KNOWN_TABLES = (
    *_SUMMARY_TABLES,
    "ml.dashboard_refresh",
    "ml.deployments",
    "ml.model_versions",
    "ml.experiments",
    "ml.experiment_decisions",
    "ml.alerts",
    "ml.review_queue",
    "ml.golden_runs",
)
# Tables known to exist during one dashboard() call (None: look each check up).
_EXISTING: ContextVar[frozenset[str] | None] = ContextVar("dashboard_existing_tables", default=None)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


# ------------------------------------------------------------------------------ windows


@dataclass(frozen=True)
class Window:
    """A run of whole UTC days ``[first_day, last_day]``.

    Attributes:
        days: the window length in days.
        first_day: the first day (inclusive).
        last_day: the last day (inclusive): the day of ``as_of``.
        as_of: the moment the window ends at (its day is ``last_day``).
    """

    days: int
    first_day: date
    last_day: date
    as_of: datetime

    @property
    def start(self) -> datetime:
        """Inclusive lower bound as a timestamp (00:00 UTC of ``first_day``)."""
        return datetime.combine(self.first_day, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive upper bound as a timestamp (00:00 UTC after ``last_day``)."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, tzinfo=UTC)

    def day_list(self) -> list[date]:
        """Every day of the window, oldest first."""
        return [self.first_day + timedelta(days=i) for i in range(self.days)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "as_of": self.as_of.isoformat(),
        }


def as_of_datetime(as_of: datetime | date | None = None) -> datetime:
    """The moment a dashboard view is "as of", in UTC.

    Args:
        as_of: None for now; a date for the end of that UTC day; an aware datetime.

    Raises:
        ValueError: for a naive datetime (its time zone would be a guess).
    """
    if as_of is None:
        return datetime.now(UTC)
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError(f"as_of must carry a time zone, got {as_of.isoformat()}")
        return as_of.astimezone(UTC)
    if isinstance(as_of, date):
        return datetime.combine(as_of, time.max, tzinfo=UTC)
    raise ValueError(f"as_of must be a datetime, a date or None, got {as_of!r}")


def window(days: int = DEFAULT_DAYS, as_of: datetime | date | None = None) -> Window:
    """The window of ``days`` days ending with the day of ``as_of``.

    Raises:
        ValueError: when ``days`` is not one of :data:`WINDOW_DAYS`, or ``as_of`` is naive.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days not in WINDOW_DAYS:
        raise ValueError(f"days must be one of {WINDOW_DAYS}, got {days!r}")
    moment = as_of_datetime(as_of)
    last = moment.date()
    return Window(days=days, first_day=last - timedelta(days=days - 1), last_day=last, as_of=moment)


# ------------------------------------------------------------------------------ helpers


def _num(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float: None for missing, NaN or infinite values; rounded for stable bytes."""
    if value is None:
        return None
    number = float(value) if isinstance(value, Decimal | int | float) else float(str(value))
    if not math.isfinite(number):
        return None
    return round(number, digits)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator <= 0 else round(numerator / denominator, 6)


def _accuracy(predictions: int, corrected: int) -> dict[str, Any]:
    """Counts, accuracy and its Wilson 95% interval."""
    from feedbackloop.evaluation import wilson_interval

    out: dict[str, Any] = {
        "predictions": predictions,
        "corrected": corrected,
        "accuracy": None,
        "ci_low": None,
        "ci_high": None,
    }
    if predictions > 0:
        low, high = wilson_interval(predictions - corrected, predictions)
        out.update(
            accuracy=_ratio(predictions - corrected, predictions), ci_low=_num(low), ci_high=_num(high)
        )
    return out


def _missing(cur: Any, *tables: str) -> list[str]:
    """The tables among ``tables`` that do not exist (schema-qualified names)."""
    known = _EXISTING.get()
    if known is not None and all(t in _KNOWN_TABLES for t in tables):
        return [t for t in tables if t not in known]
    cur.execute("SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NULL", (list(tables),))
    return [row[0] for row in cur.fetchall()]


@contextmanager
def _reading(conn: Any) -> Iterator[Any]:
    """A cursor for reads: inside the caller's transaction if one is open, else in a new one.

    (A nested ``conn.transaction()`` would cost a savepoint round trip per panel.)
    """
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status == TransactionStatus.INTRANS:
        with conn.cursor() as cur:
            yield cur
    else:
        with transaction(conn) as cur:
            yield cur


def _unavailable(panel: str, missing: Iterable[str], **extra: Any) -> dict[str, Any]:
    names = ", ".join(missing)
    return {
        "panel": panel,
        "available": False,
        "empty": True,
        "reason": f"{names} does not exist yet: apply the ml migrations (feedbackloop.db.migrate)",
        **extra,
    }


def _panel(panel: str, empty: bool, **data: Any) -> dict[str, Any]:
    return {"panel": panel, "available": True, "empty": bool(empty), **data}


def _day(value: datetime) -> date:
    return value.astimezone(UTC).date()


# ---------------------------------------------------------------------- summary refresh

# One row per prediction of the refreshed days: its day, model, true category, confidence
# bin, whether it was corrected and whether it got any feedback.
_ROWS_CTE = """
WITH p AS MATERIALIZED (
    SELECT prediction_id, predicted_at, model_version, variant, category, confidence
    FROM app.predictions
    WHERE predicted_at >= %(t0)s AND predicted_at < %(t1)s
), c AS (
    SELECT c.prediction_id,
           (array_agg(c.corrected_category ORDER BY c.created_at DESC, c.correction_id DESC)
                FILTER (WHERE c.corrected_category IS NOT NULL
                          AND c.corrected_category IS DISTINCT FROM p.category))[1] AS corrected_to
    FROM app.category_corrections c
    JOIN p ON p.prediction_id = c.prediction_id
    GROUP BY c.prediction_id
), af AS (
    SELECT DISTINCT a.prediction_id
    FROM app.action_feedback a
    JOIN p ON p.prediction_id = a.prediction_id
), r AS MATERIALIZED (
    SELECT (p.predicted_at AT TIME ZONE 'UTC')::date AS day,
           date_trunc('hour', p.predicted_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
           COALESCE(p.model_version, '') AS model_version,
           COALESCE(p.variant, '') AS variant,
           COALESCE(c.corrected_to, p.category, '') AS category,
           -- NaN compares above every number in PostgreSQL, so it lands in -1 with the rest.
           CASE WHEN p.confidence >= 0 AND p.confidence <= 1
                THEN LEAST(floor(p.confidence * %(bins)s), %(bins)s - 1)::smallint
                ELSE -1::smallint END AS confidence_bin,
           CASE WHEN p.confidence >= 0 AND p.confidence <= 1 THEN p.confidence END AS confidence,
           c.corrected_to IS NOT NULL AS corrected,
           c.prediction_id IS NOT NULL OR af.prediction_id IS NOT NULL AS with_feedback
    FROM p
    LEFT JOIN c ON c.prediction_id = p.prediction_id
    LEFT JOIN af ON af.prediction_id = p.prediction_id
)"""

_DAILY_SQL = (
    _ROWS_CTE
    + """, by_model AS (
    INSERT INTO ml.dashboard_model_hourly (hour, model_version, variant, predictions, corrected, with_feedback)
    SELECT hour, model_version, variant, count(*), count(*) FILTER (WHERE corrected),
           count(*) FILTER (WHERE with_feedback)
    FROM r GROUP BY 1, 2, 3
    RETURNING 1
), by_category AS (
    INSERT INTO ml.dashboard_category_daily (day, category, predictions, corrected)
    SELECT day, category, count(*), count(*) FILTER (WHERE corrected)
    FROM r GROUP BY 1, 2
    RETURNING 1
), by_confidence AS (
    INSERT INTO ml.dashboard_confidence_daily (day, confidence_bin, predictions, corrected, confidence_sum)
    SELECT day, confidence_bin, count(*), count(*) FILTER (WHERE corrected), COALESCE(sum(confidence), 0)
    FROM r GROUP BY 1, 2
    RETURNING 1
)
SELECT (SELECT count(*) FROM by_model), (SELECT count(*) FROM by_category),
       (SELECT count(*) FROM by_confidence)
"""
)

_LATENCY_SQL = """
INSERT INTO ml.dashboard_latency_daily (day, n, p50_ms, p95_ms, p99_ms, mean_ms)
SELECT day, n, q[1], q[2], q[3], mean_ms
FROM (
    SELECT (predicted_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS n,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS q,
           avg(latency_ms) AS mean_ms
    FROM app.predictions
    -- NaN compares above 'Infinity', so this keeps positive, finite latencies only.
    WHERE predicted_at >= %(t0)s AND predicted_at < %(t1)s
      AND latency_ms > 0 AND latency_ms < 'Infinity'::float8
    GROUP BY 1
) daily
"""

_FEEDBACK_SQL = """
WITH corr AS (
    SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS total,
           count(*) FILTER (WHERE c.corrected_category = p.category) AS confirmations
    FROM app.category_corrections c
    LEFT JOIN app.predictions p ON p.prediction_id = c.prediction_id
    WHERE c.created_at >= %(t0)s AND c.created_at < %(t1)s
    GROUP BY 1
), act AS (
    SELECT (a.created_at AT TIME ZONE 'UTC')::date AS day,
           count(*) AS n,
           COALESCE(sum(cardinality(a.missed_actions)), 0) AS missed,
           COALESCE(sum(cardinality(a.unnecessary_actions)), 0) AS unnecessary
    FROM app.action_feedback a
    WHERE a.created_at >= %(t0)s AND a.created_at < %(t1)s
    GROUP BY 1
)
INSERT INTO ml.dashboard_feedback_daily
    (day, corrections, confirmations, action_feedback, missed_actions, unnecessary_actions)
SELECT COALESCE(corr.day, act.day),
       COALESCE(corr.total - corr.confirmations, 0),
       COALESCE(corr.confirmations, 0),
       COALESCE(act.n, 0),
       COALESCE(act.missed, 0),
       COALESCE(act.unnecessary, 0)
FROM corr
FULL JOIN act ON act.day = corr.day
"""


def _refresh_days(cur: Any, since: date | None, until: date | None) -> dict[str, int]:
    """Recompute the summaries of the UTC days ``[since, until]`` (None: unbounded)."""
    t0 = _EARLIEST if since is None else datetime.combine(since, time.min, tzinfo=UTC)
    t1 = _LATEST if until is None else datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC)
    params = {
        "t0": t0,
        "t1": t1,
        "d0": t0.date(),
        "d1": (t1 - timedelta(days=1)).date(),
        "bins": CONFIDENCE_BINS,
    }
    # For this transaction only: enough memory to keep the joins and aggregates off disk, and
    # time for a first full build of a large table (callers may cap reads at a minute).
    cur.execute("SET LOCAL work_mem = '64MB'")
    cur.execute("SET LOCAL statement_timeout = '30min'")
    cur.execute("DELETE FROM ml.dashboard_model_hourly WHERE hour >= %(t0)s AND hour < %(t1)s", params)
    for table in _SUMMARY_TABLES[1:]:
        # Table names come from the constant tuple above, never from input.
        cur.execute(f"DELETE FROM {table} WHERE day >= %(d0)s AND day <= %(d1)s", params)
    cur.execute(_DAILY_SQL, params)
    by_model, by_category, by_confidence = cur.fetchone()
    rows = {
        "ml.dashboard_model_hourly": int(by_model),
        "ml.dashboard_category_daily": int(by_category),
        "ml.dashboard_confidence_daily": int(by_confidence),
    }
    for table, sql in (
        ("ml.dashboard_latency_daily", _LATENCY_SQL),
        ("ml.dashboard_feedback_daily", _FEEDBACK_SQL),
    ):
        cur.execute(sql, params)
        rows[table] = cur.rowcount
    return rows


def _record_refresh(cur: Any, since: date | None) -> datetime:
    cur.execute(
        """INSERT INTO ml.dashboard_refresh (singleton, refreshed_at, refreshed_from, full_refresh_at)
           VALUES (true, now(), %(since)s, CASE WHEN %(since)s::date IS NULL THEN now() END)
           ON CONFLICT (singleton) DO UPDATE SET
               refreshed_at = EXCLUDED.refreshed_at,
               refreshed_from = EXCLUDED.refreshed_from,
               full_refresh_at = COALESCE(EXCLUDED.full_refresh_at, ml.dashboard_refresh.full_refresh_at)
           RETURNING refreshed_at""",
        {"since": since},
    )
    return cur.fetchone()[0]


def refresh_summary(conn: Any, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """Recompute the dashboard summaries for the UTC days ``[since, until]``.

    One transaction: readers see the old days or the new ones, never a mix. Concurrent
    refreshes queue behind an advisory lock. Idempotent: the same data gives the same rows.

    Args:
        conn: psycopg 3 connection to the feedback DB.
        since: first day to recompute; None recomputes from the first day (a full rebuild).
        until: last day to recompute; None includes every later day.

    Returns:
        ``since`` / ``until`` (ISO or None), rows written per summary table, seconds taken,
        and ``refreshed_at``: the refresh is recorded (it resets the summary's age) only
        when it reaches the latest day (``until`` None).

    Raises:
        ValueError: when ``since`` is after ``until``.
    """
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since}) must not be after until ({until})")
    started = _time.perf_counter()
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_REFRESH_LOCK,))
        rows = _refresh_days(cur, since, until)
        refreshed_at = _record_refresh(cur, since) if until is None else None
    return {
        "since": _iso(since),
        "until": _iso(until),
        "rows": rows,
        "refreshed_at": _iso(refreshed_at),
        "seconds": round(_time.perf_counter() - started, 3),
    }


def summary_freshness(conn: Any, max_age: timedelta = DEFAULT_MAX_AGE) -> dict[str, Any]:
    """Whether the summaries need work, without doing any (one cheap query).

    Returns:
        ``status``: ``missing`` (a summary table does not exist: migrate), ``never`` (never
        built), ``stale`` (older than ``max_age`` on the database clock) or ``fresh``; and
        ``refreshed_at``.
    """
    with _reading(conn) as cur:
        missing = _missing(cur, *_SUMMARY_TABLES, "ml.dashboard_refresh")
        if missing:
            return {"status": "missing", "refreshed_at": None, "missing": missing}
        cur.execute("SELECT refreshed_at, now() - refreshed_at <= %s FROM ml.dashboard_refresh", (max_age,))
        row = cur.fetchone()
    if row is None:
        return {"status": "never", "refreshed_at": None}
    return {"status": "fresh" if row[1] else "stale", "refreshed_at": _iso(row[0])}


def ensure_summary(
    conn: Any, max_age: timedelta = DEFAULT_MAX_AGE, lookback: timedelta = DEFAULT_LOOKBACK
) -> dict[str, Any]:
    """Keep the summaries fresh: rebuild them once, then recompute recent days when stale.

    * No summary yet: a full rebuild (other callers wait for it rather than show nothing).
    * Older than ``max_age``: recompute the days from ``lookback`` before the last refresh
      on, so feedback given since then reaches its prediction's day. If another process is
      refreshing right now, return at once and read the current summary (``busy``).
    * Otherwise nothing to do (``fresh``).

    Ages are measured on the database clock, so every api-server process agrees.

    Returns:
        ``status`` (``fresh``, ``built``, ``refreshed``, ``busy`` or ``missing`` when the
        summary tables do not exist), ``refreshed_at`` and, after a refresh, ``since`` and
        ``seconds``.

    Raises:
        ValueError: when ``max_age`` or ``lookback`` is negative.
    """
    if max_age < timedelta(0) or lookback < timedelta(0):
        raise ValueError("max_age and lookback must not be negative")
    state = summary_freshness(conn, max_age)
    if state["status"] in ("missing", "fresh"):
        return state
    started = _time.perf_counter()
    with transaction(conn) as cur:
        if state["status"] == "never":
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_REFRESH_LOCK,))
        else:
            cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (_REFRESH_LOCK,))
            if not cur.fetchone()[0]:
                return {"status": "busy", "refreshed_at": state["refreshed_at"]}
        # Someone may have refreshed while we waited for the lock.
        cur.execute("SELECT refreshed_at, now() - refreshed_at <= %s FROM ml.dashboard_refresh", (max_age,))
        current = cur.fetchone()
        if current is not None and current[1]:
            return {"status": "fresh", "refreshed_at": _iso(current[0])}
        since = None if current is None else _day(current[0] - lookback)
        _refresh_days(cur, since, None)
        refreshed_at = _record_refresh(cur, since)
    return {
        "status": "built" if since is None else "refreshed",
        "refreshed_at": _iso(refreshed_at),
        "since": _iso(since),
        "seconds": round(_time.perf_counter() - started, 3),
    }


def summary_status(conn: Any) -> dict[str, Any]:
    """When the summaries were last refreshed, fully rebuilt, and from which day (None: never)."""
    with _reading(conn) as cur:
        if _missing(cur, "ml.dashboard_refresh"):
            return {"refreshed_at": None, "full_refresh_at": None, "refreshed_from": None}
        cur.execute("SELECT refreshed_at, full_refresh_at, refreshed_from FROM ml.dashboard_refresh")
        row = cur.fetchone()
    if row is None:
        return {"refreshed_at": None, "full_refresh_at": None, "refreshed_from": None}
    return {"refreshed_at": _iso(row[0]), "full_refresh_at": _iso(row[1]), "refreshed_from": _iso(row[2])}


# ------------------------------------------------------------------------------- panels


def accuracy_trend(
    conn: Any, days: int = DEFAULT_DAYS, as_of: datetime | date | None = None
) -> dict[str, Any]:
    """Accuracy per model version: a daily series over the window, and 7 / 30 / 90-day totals.

    Returns:
        ``versions`` (most predictions first), each with ``variants``, ``windows`` (``"7"``,
        ``"30"``, ``"90"``: predictions, corrected, accuracy, Wilson interval) and ``series``
        (one point per day with predictions); ``overall`` is the daily series of all versions.
    """
    w = window(days, as_of)
    longest = window(max(WINDOW_DAYS), w.as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.dashboard_model_hourly")
        if missing:
            return _unavailable("accuracy", missing, window=w.to_dict())
        cur.execute(
            """SELECT (hour AT TIME ZONE 'UTC')::date AS day, model_version, sum(predictions)::bigint,
                      sum(corrected)::bigint, sum(with_feedback)::bigint
               FROM ml.dashboard_model_hourly
               WHERE hour >= %(start)s AND hour < %(end)s
               GROUP BY 1, 2
               ORDER BY 1, 2""",
            {"start": w.start, "end": w.end},
        )
        daily = cur.fetchall()
        window_sums = ", ".join(
            f"sum(predictions) FILTER (WHERE hour >= %(s{n})s)::bigint, "
            f"sum(corrected) FILTER (WHERE hour >= %(s{n})s)::bigint"
            for n in WINDOW_DAYS
        )
        cur.execute(
            f"""SELECT model_version, array_agg(DISTINCT variant ORDER BY variant), {window_sums}
                FROM ml.dashboard_model_hourly
                WHERE hour >= %(start)s AND hour < %(end)s
                GROUP BY model_version""",
            {
                "start": longest.start,
                "end": longest.end,
                **{f"s{n}": window(n, w.as_of).start for n in WINDOW_DAYS},
            },
        )
        totals = cur.fetchall()
    versions: dict[str, dict[str, Any]] = {}
    for row in totals:
        version, variants = row[0], [v for v in row[1] if v]
        sums = row[2:]
        versions[version] = {
            "model_version": version,
            "variants": variants,
            "windows": {
                str(n): _accuracy(int(sums[2 * i] or 0), int(sums[2 * i + 1] or 0))
                for i, n in enumerate(WINDOW_DAYS)
            },
            "series": [],
        }
    overall: dict[date, list[int]] = {}
    for day, version, predictions, corrected, with_feedback in daily:
        point = {
            "day": day.isoformat(),
            "predictions": int(predictions),
            "corrected": int(corrected),
            "with_feedback": int(with_feedback),
            "accuracy": _ratio(int(predictions) - int(corrected), int(predictions)),
        }
        versions[version]["series"].append(point)
        acc = overall.setdefault(day, [0, 0, 0])
        acc[0] += int(predictions)
        acc[1] += int(corrected)
        acc[2] += int(with_feedback)
    key = str(w.days)
    ordered = sorted(
        (v for v in versions.values() if v["windows"][key]["predictions"] > 0),
        key=lambda v: (-v["windows"][key]["predictions"], v["model_version"]),
    )
    return _panel(
        "accuracy",
        empty=not daily,
        window=w.to_dict(),
        definition="share of predictions without a category correction to another category",
        versions=ordered,
        overall=[
            {
                "day": day.isoformat(),
                "predictions": n,
                "corrected": k,
                "with_feedback": f,
                "accuracy": _ratio(n - k, n),
            }
            for day, (n, k, f) in sorted(overall.items())
        ],
    )


def category_accuracy(conn: Any, days: int = 90, as_of: datetime | date | None = None) -> dict[str, Any]:
    """Accuracy per true category and ISO week (Monday), for a heatmap.

    Returns:
        ``weeks`` (Mondays, oldest first), ``categories`` (worst accuracy over the window
        first, those with fewer than :data:`MIN_CELL_PREDICTIONS` predictions last) with
        their totals, and ``cells`` per (category, week) with predictions,
        corrected, accuracy and ``low_sample`` (fewer than :data:`MIN_CELL_PREDICTIONS`).
    """
    w = window(days, as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.dashboard_category_daily")
        if missing:
            return _unavailable("category_accuracy", missing, window=w.to_dict())
        cur.execute(
            """SELECT date_trunc('week', day)::date AS week, category,
                      sum(predictions)::bigint, sum(corrected)::bigint
               FROM ml.dashboard_category_daily
               WHERE day >= %(first)s AND day <= %(last)s AND category <> ''
               GROUP BY 1, 2
               ORDER BY 1, 2""",
            {"first": w.first_day, "last": w.last_day},
        )
        rows = cur.fetchall()
    weeks = sorted({r[0] for r in rows})
    totals: dict[str, list[int]] = {}
    cells = []
    for week, category, predictions, corrected in rows:
        n, k = int(predictions), int(corrected)
        cells.append(
            {
                "category": category,
                "week": week.isoformat(),
                "predictions": n,
                "corrected": k,
                "accuracy": _ratio(n - k, n),
                "low_sample": n < MIN_CELL_PREDICTIONS,
            }
        )
        t = totals.setdefault(category, [0, 0])
        t[0] += n
        t[1] += k
    # Worst first, but categories too rare to judge (e.g. unknown ones from malformed rows)
    # go last rather than topping the list with noise.
    categories = sorted(
        (
            {"category": c, **_accuracy(n, k), "low_sample": n < MIN_CELL_PREDICTIONS}
            for c, (n, k) in totals.items()
        ),
        key=lambda c: (c["low_sample"], c["accuracy"] if c["accuracy"] is not None else 2.0, c["category"]),
    )
    return _panel(
        "category_accuracy",
        empty=not rows,
        window=w.to_dict(),
        weeks=[wk.isoformat() for wk in weeks],
        categories=categories,
        cells=cells,
        min_cell_predictions=MIN_CELL_PREDICTIONS,
    )


def reliability(conn: Any, days: int = DEFAULT_DAYS, as_of: datetime | date | None = None) -> dict[str, Any]:
    """Reliability diagram: per confidence bin, mean confidence vs observed accuracy.

    Returns:
        ``bins`` (non-empty ones, each with ``lower`` / ``upper``, predictions,
        ``mean_confidence``, ``accuracy`` and ``gap`` = accuracy - confidence), ``ece`` (the
        size-weighted mean absolute gap), overall counts, and ``invalid_confidence`` (missing
        or outside [0, 1], left out).
    """
    w = window(days, as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.dashboard_confidence_daily")
        if missing:
            return _unavailable("calibration", missing, window=w.to_dict())
        cur.execute(
            """SELECT confidence_bin, sum(predictions)::bigint, sum(corrected)::bigint, sum(confidence_sum)
               FROM ml.dashboard_confidence_daily
               WHERE day >= %(first)s AND day <= %(last)s
               GROUP BY confidence_bin
               ORDER BY confidence_bin""",
            {"first": w.first_day, "last": w.last_day},
        )
        rows = cur.fetchall()
    bins = []
    invalid = total = total_correct = 0
    total_conf = ece_sum = 0.0
    for k, predictions, corrected, conf_sum in rows:
        n, wrong = int(predictions), int(corrected)
        if k < 0:
            invalid += n
            continue
        mean_conf = float(conf_sum) / n
        acc = (n - wrong) / n
        bins.append(
            {
                "bin": int(k),
                "lower": _num(k / CONFIDENCE_BINS),
                "upper": _num((k + 1) / CONFIDENCE_BINS),
                "predictions": n,
                "mean_confidence": _num(mean_conf),
                "accuracy": _num(acc),
                "gap": _num(acc - mean_conf),
            }
        )
        total += n
        total_correct += n - wrong
        total_conf += float(conf_sum)
        ece_sum += n * abs(acc - mean_conf)
    return _panel(
        "calibration",
        empty=total == 0,
        window=w.to_dict(),
        n_bins=CONFIDENCE_BINS,
        bins=bins,
        predictions=total,
        accuracy=_ratio(total_correct, total),
        mean_confidence=_num(total_conf / total) if total else None,
        ece=_num(ece_sum / total) if total else None,
        invalid_confidence=invalid,
    )


def latency_trend(
    conn: Any, days: int = DEFAULT_DAYS, as_of: datetime | date | None = None
) -> dict[str, Any]:
    """Latency percentiles per day (exact per day; days are never averaged together).

    Returns:
        ``days`` (those with predictions: n, p50 / p95 / p99 / mean in ms), ``slo_ms`` and
        ``days_over_slo`` (days whose p95 reached the SLO).
    """
    w = window(days, as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.dashboard_latency_daily")
        if missing:
            return _unavailable("latency", missing, window=w.to_dict(), slo_ms=LATENCY_SLO_MS)
        cur.execute(
            """SELECT day, n, p50_ms, p95_ms, p99_ms, mean_ms
               FROM ml.dashboard_latency_daily
               WHERE day >= %(first)s AND day <= %(last)s
               ORDER BY day""",
            {"first": w.first_day, "last": w.last_day},
        )
        rows = cur.fetchall()
    points = [
        {
            "day": day.isoformat(),
            "n": int(n),
            "p50_ms": _num(p50, 2),
            "p95_ms": _num(p95, 2),
            "p99_ms": _num(p99, 2),
            "mean_ms": _num(mean, 2),
        }
        for day, n, p50, p95, p99, mean in rows
    ]
    over = [p["day"] for p in points if p["p95_ms"] is not None and p["p95_ms"] >= LATENCY_SLO_MS]
    return _panel(
        "latency",
        empty=not points,
        window=w.to_dict(),
        slo_ms=LATENCY_SLO_MS,
        days=points,
        days_over_slo=over,
        worst_p95_ms=max((p["p95_ms"] for p in points if p["p95_ms"] is not None), default=None),
    )


def feedback_volume(
    conn: Any, days: int = DEFAULT_DAYS, as_of: datetime | date | None = None
) -> dict[str, Any]:
    """Feedback given per day (zero-filled over the window), and the window's totals."""
    w = window(days, as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.dashboard_feedback_daily")
        if missing:
            return _unavailable("feedback_volume", missing, window=w.to_dict())
        cur.execute(
            """SELECT day, corrections, confirmations, action_feedback, missed_actions, unnecessary_actions
               FROM ml.dashboard_feedback_daily
               WHERE day >= %(first)s AND day <= %(last)s""",
            {"first": w.first_day, "last": w.last_day},
        )
        found = {r[0]: [int(x) for x in r[1:]] for r in cur.fetchall()}
    keys = ("corrections", "confirmations", "action_feedback", "missed_actions", "unnecessary_actions")
    points = []
    totals = dict.fromkeys(keys, 0)
    for day in w.day_list():
        values = dict(zip(keys, found.get(day, [0] * len(keys)), strict=True))
        for k in keys:
            totals[k] += values[k]
        values["total"] = values["corrections"] + values["confirmations"] + values["action_feedback"]
        points.append({"day": day.isoformat(), **values})
    totals["total"] = totals["corrections"] + totals["confirmations"] + totals["action_feedback"]
    return _panel(
        "feedback_volume", empty=totals["total"] == 0, window=w.to_dict(), days=points, totals=totals
    )


def deployments(conn: Any) -> dict[str, Any]:
    """The deployment aliases (champion first) with their versions' gate status and report."""
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.deployments", "ml.model_versions")
        if missing:
            return _unavailable("deployments", missing)
        cur.execute(
            """SELECT d.alias, d.version_id, d.traffic_share, d.updated_at, d.updated_by, d.reason,
                      v.gate_passed, v.created_at, v.report_uri
               FROM ml.deployments d
               JOIN ml.model_versions v USING (version_id)
               ORDER BY CASE d.alias WHEN 'champion' THEN 0 ELSE 1 END, d.alias"""
        )
        rows = cur.fetchall()
    items = [
        {
            "alias": alias,
            "version_id": version,
            "traffic_share": _num(share),
            "updated_at": _iso(updated_at),
            "updated_by": updated_by,
            "reason": reason,
            "gate_passed": gate_passed,
            "registered_at": _iso(created_at),
            "report_uri": report_uri,
        }
        for alias, version, share, updated_at, updated_by, reason, gate_passed, created_at, report_uri in rows
    ]
    return _panel("deployments", empty=not items, deployments=items)


def next_decision_at(as_of: datetime, hour_utc: int = EVALUATION_HOUR_UTC) -> datetime:
    """The first daily evaluation (``hour_utc``:00 UTC) strictly after ``as_of``.

    Raises:
        ValueError: when ``hour_utc`` is not in 0..23 or ``as_of`` is naive.
    """
    if not 0 <= hour_utc <= 23:
        raise ValueError(f"hour_utc must be in 0..23, got {hour_utc}")
    moment = as_of_datetime(as_of)
    candidate = datetime.combine(moment.date(), time(hour_utc), tzinfo=UTC)
    return candidate if candidate > moment else candidate + timedelta(days=1)


_STAGE_EDGES_SQL = """
SELECT p.variant,
       count(*),
       count(*) FILTER (WHERE EXISTS (
           SELECT 1 FROM app.category_corrections c
           WHERE c.prediction_id = p.prediction_id
             AND c.corrected_category IS NOT NULL
             AND c.corrected_category IS DISTINCT FROM p.category))
FROM app.predictions p
WHERE ((p.predicted_at >= %(a0)s AND p.predicted_at < %(a1)s)
       OR (p.predicted_at >= %(b0)s AND p.predicted_at < %(b1)s))
  AND (p.variant = 'champion' OR (p.variant = 'challenger' AND p.model_version = %(challenger)s))
GROUP BY p.variant
"""


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _stage_arms(cur: Any, experiment: Mapping[str, Any], as_of: datetime) -> dict[str, list[int]]:
    """Predictions and corrections per arm in ``[stage_started_at, as_of)``.

    Whole hours come from the hourly summary; the stage's first and the window's last
    partial hour from the app tables, so the counts start exactly when the stage did, like
    the A/B evaluation's. Challenger rows count only when served by the experiment's
    challenger version.
    """
    arms = {"champion": [0, 0], "challenger": [0, 0]}
    start: datetime = experiment["stage_started_at"]
    if as_of <= start:
        return arms
    first_full = _hour_floor(start) + (timedelta(hours=1) if _hour_floor(start) < start else timedelta(0))
    last_partial = _hour_floor(as_of)
    challenger = experiment["challenger_version"]
    if first_full >= last_partial:  # the stage is less than an hour old (in this window)
        edges = {"a0": start, "a1": as_of, "b0": as_of, "b1": as_of}
    else:
        edges = {"a0": start, "a1": first_full, "b0": last_partial, "b1": as_of}
        cur.execute(
            """SELECT variant, sum(predictions)::bigint, sum(corrected)::bigint
               FROM ml.dashboard_model_hourly
               WHERE hour >= %(h0)s AND hour < %(h1)s
                 AND (variant = 'champion' OR (variant = 'challenger' AND model_version = %(challenger)s))
               GROUP BY variant""",
            {"h0": first_full, "h1": last_partial, "challenger": challenger},
        )
        for variant, n, k in cur.fetchall():
            arms[variant][0] += int(n)
            arms[variant][1] += int(k)
    cur.execute(_STAGE_EDGES_SQL, {**edges, "challenger": challenger})
    for variant, n, k in cur.fetchall():
        arms[variant][0] += int(n)
        arms[variant][1] += int(k)
    return arms


def _prob_beat(champion: tuple[int, int], challenger: tuple[int, int]) -> float | None:
    """P(challenger's rate > champion's) under Beta(1, 1) priors; ``(successes, trials)``."""
    if champion[1] <= 0 or challenger[1] <= 0:
        return None
    from feedbackloop.experiment_stats import beta_binomial_test

    return _num(
        beta_binomial_test(champion[0], champion[1], challenger[0], challenger[1]).prob_challenger_better
    )


def _decision_prob(statistics: Mapping[str, Any]) -> dict[str, float | None]:
    """P(challenger better) on accuracy and engagement as of a recorded decision."""
    out: dict[str, float | None] = {"accuracy": None, "engagement": None}
    arms = [statistics.get(k) or {} for k in ("champion", "challenger")]
    try:
        out["accuracy"] = _prob_beat(
            (int(arms[0].get("correct", 0)), int(arms[0].get("predictions", 0))),
            (int(arms[1].get("correct", 0)), int(arms[1].get("predictions", 0))),
        )
    except (TypeError, ValueError):
        out["accuracy"] = None
    engagement = statistics.get("engagement") or {}
    out["engagement"] = _num(engagement.get("prob_challenger_better"))
    return out


def experiment_status(conn: Any, as_of: datetime | date | None = None, policy: Any = None) -> dict[str, Any]:
    """The live A/B experiment: share, samples per arm, P(beat champion), decisions.

    Args:
        conn: psycopg 3 connection to the feedback DB.
        as_of: the moment to report for (default now).
        policy: the A/B decision policy (default :class:`feedbackloop.experiment.Policy`):
            its minimum samples per arm, days live and looks per stage.

    Returns:
        ``experiment`` (None when none is live; then ``last_ended`` may name the previous
        one), ``arms`` (live predictions, corrected and accuracy per arm in the current
        stage), ``prob_beat_champion`` (live posterior on accuracy; engagement as of the
        latest decision), ``latest_decision`` (None when none, or when
        ``ml.experiment_decisions`` does not exist: ``decisions_available``), and the dates
        ``next_decision_at``, ``earliest_progress_at`` and ``stage_horizon_at``.
    """
    from feedbackloop.experiment import Policy

    policy = policy or Policy()
    moment = as_of_datetime(as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.experiments")
        if missing:
            return _unavailable("experiment", missing)
        decisions_available = not _missing(cur, "ml.experiment_decisions")
        cur.execute(
            """SELECT experiment_id, champion_version, challenger_version, started_at, current_share,
                      stage_started_at, status, ended_at
               FROM ml.experiments
               ORDER BY (status IN ('running', 'halted')) DESC, started_at DESC, experiment_id
               LIMIT 1"""
        )
        row = cur.fetchone()
        keys = (
            "experiment_id",
            "champion_version",
            "challenger_version",
            "started_at",
            "current_share",
            "stage_started_at",
            "status",
            "ended_at",
        )
        experiment = dict(zip(keys, row, strict=True)) if row else None
        if experiment is None or experiment["status"] not in ("running", "halted"):
            last = None
            if experiment is not None:
                last = {
                    "experiment_id": experiment["experiment_id"],
                    "challenger_version": experiment["challenger_version"],
                    "status": experiment["status"],
                    "ended_at": _iso(experiment["ended_at"]),
                }
            return _panel(
                "experiment",
                empty=True,
                experiment=None,
                last_ended=last,
                decisions_available=decisions_available,
                reason="no experiment is running",
            )
        arms = (
            _stage_arms(cur, experiment, moment)
            if not _missing(cur, "ml.dashboard_model_hourly")
            else {"champion": [0, 0], "challenger": [0, 0]}
        )
        decision = None
        if decisions_available:
            cur.execute(
                """SELECT decision_date, outcome, source, reason, from_share, to_share, statistics,
                          decided_by, run_id, updated_at
                   FROM ml.experiment_decisions
                   WHERE experiment_id = %s
                   ORDER BY decision_date DESC, decision_id DESC
                   LIMIT 1""",
                (experiment["experiment_id"],),
            )
            found = cur.fetchone()
            if found is not None:
                statistics = found[6] or {}
                decision = {
                    "decision_date": found[0].isoformat(),
                    "outcome": found[1],
                    "source": found[2],
                    "reason": found[3],
                    "from_share": _num(found[4]),
                    "to_share": _num(found[5]),
                    "decided_by": found[7],
                    "run_id": found[8],
                    "recorded_at": _iso(found[9]),
                    "samples": {
                        arm: (statistics.get(arm) or {}).get("predictions")
                        for arm in ("champion", "challenger")
                    },
                    "prob_beat_champion": _decision_prob(statistics),
                }
    arm_out = {}
    for arm, (n, k) in arms.items():
        arm_out[arm] = {"predictions": n, "corrected": k, "accuracy": _ratio(n - k, n)}
    started: datetime = experiment["started_at"]
    stage_started: datetime = experiment["stage_started_at"]
    min_samples = int(policy.min_samples_per_arm)
    return _panel(
        "experiment",
        empty=False,
        experiment={
            "experiment_id": experiment["experiment_id"],
            "status": experiment["status"],
            "champion_version": experiment["champion_version"],
            "challenger_version": experiment["challenger_version"],
            "traffic_share": _num(experiment["current_share"]),
            "started_at": _iso(started),
            "stage_started_at": _iso(stage_started),
            "days_live": _num((moment - started).total_seconds() / 86400, 2),
            "stage_days": _num((moment - stage_started).total_seconds() / 86400, 2),
        },
        arms=arm_out,
        min_samples_per_arm=min_samples,
        samples_ready=min(a[0] for a in arms.values()) >= min_samples,
        prob_beat_champion={
            "accuracy": _prob_beat(
                (arms["champion"][0] - arms["champion"][1], arms["champion"][0]),
                (arms["challenger"][0] - arms["challenger"][1], arms["challenger"][0]),
            ),
            "engagement": decision["prob_beat_champion"]["engagement"] if decision else None,
        },
        decisions_available=decisions_available,
        latest_decision=decision,
        next_decision_at=_iso(next_decision_at(moment)),
        earliest_progress_at=_iso(started + timedelta(days=float(policy.min_days_live))),
        stage_horizon_at=_iso(stage_started + timedelta(days=int(policy.looks_per_stage))),
    )


def open_alerts(conn: Any, limit: int = 50, as_of: datetime | date | None = None) -> dict[str, Any]:
    """Open regression incidents (newest first) and how many were resolved in the last 7 days."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    moment = as_of_datetime(as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.alerts")
        if missing:
            return _unavailable("alerts", missing, alerts=[], open_count=0)
        cur.execute(
            """SELECT alert_id, detector, key, metric, value, threshold, baseline, window_start, window_end,
                      opened_at, last_seen_at, occurrences, summary, open_notified_at
               FROM ml.alerts
               WHERE status = 'open'
               ORDER BY opened_at DESC, alert_id DESC
               LIMIT %s""",
            (limit,),
        )
        rows = cur.fetchall()
        cur.execute(
            """SELECT count(*) FILTER (WHERE status = 'open'),
                      count(*) FILTER (WHERE status = 'resolved' AND resolved_at >= %(since)s
                                         AND resolved_at <= %(until)s)
               FROM ml.alerts
               WHERE status = 'open' OR resolved_at >= %(since)s""",
            {"since": moment - timedelta(days=7), "until": moment},
        )
        open_count, resolved = cur.fetchone()
    alerts = [
        {
            "alert_id": int(r[0]),
            "detector": r[1],
            "key": r[2],
            "metric": r[3],
            "value": _num(r[4]),
            "threshold": _num(r[5]),
            "baseline": _num(r[6]),
            "window_start": _iso(r[7]),
            "window_end": _iso(r[8]),
            "opened_at": _iso(r[9]),
            "last_seen_at": _iso(r[10]),
            "occurrences": int(r[11]),
            "summary": r[12],
            "notified": r[13] is not None,
        }
        for r in rows
    ]
    return _panel(
        "alerts",
        empty=not alerts,
        alerts=alerts,
        open_count=int(open_count),
        resolved_last_7_days=int(resolved),
    )


def review_queue(conn: Any, as_of: datetime | date | None = None) -> dict[str, Any]:
    """Size and age of the human-review queue, its busiest categories and reviewers."""
    moment = as_of_datetime(as_of)
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.review_queue")
        if missing:
            return _unavailable("review_queue", missing, pending=0)
        # Separate queries so each uses an index: the queue keeps every item it ever held.
        cur.execute(
            """SELECT count(*), min(enqueued_at), count(DISTINCT reviewer_id)
               FROM ml.review_queue WHERE status = 'pending'"""
        )
        pending, oldest, reviewers = cur.fetchone()
        cur.execute("SELECT count(*) FROM ml.review_queue WHERE queue_date = %s", (moment.date(),))
        (today,) = cur.fetchone()
        cur.execute(
            """SELECT count(*) FILTER (WHERE status = 'resolved'), count(*) FILTER (WHERE status = 'expired')
               FROM ml.review_queue
               WHERE resolved_at IS NOT NULL AND resolved_at >= %(week)s AND resolved_at <= %(now)s""",
            {"week": moment - timedelta(days=7), "now": moment},
        )
        resolved, expired = cur.fetchone()
        cur.execute("SELECT EXISTS (SELECT 1 FROM ml.review_queue)")
        (anything,) = cur.fetchone()
        cur.execute(
            """SELECT COALESCE(predicted_category, ''), count(*)
               FROM ml.review_queue
               WHERE status = 'pending'
               GROUP BY 1
               ORDER BY 2 DESC, 1
               LIMIT 5"""
        )
        by_category = [{"category": c, "pending": int(n)} for c, n in cur.fetchall()]
    return _panel(
        "review_queue",
        empty=not anything,
        pending=int(pending),
        oldest_pending_at=_iso(oldest),
        oldest_pending_hours=_num((moment - oldest).total_seconds() / 3600, 1) if oldest else None,
        reviewers_with_pending=int(reviewers),
        queued_today=int(today),
        resolved_last_7_days=int(resolved),
        expired_last_7_days=int(expired),
        top_categories=by_category,
    )


def report_html_uri(report_uri: str | None) -> str | None:
    """The HTML report staged beside a gate's ``report.json``, or None."""
    if not report_uri or not report_uri.endswith("/report.json"):
        return None
    return report_uri[: -len("report.json")] + "report.html"


def gate_reports(conn: Any, limit: int = 10) -> dict[str, Any]:
    """The latest golden-set gate runs, newest first, with their verdicts and report URIs."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    with _reading(conn) as cur:
        missing = _missing(cur, "ml.golden_runs")
        if missing:
            return _unavailable("gate_reports", missing, reports=[])
        cur.execute(
            """SELECT golden_run_id, version_id, dag_id, run_id, golden_version, verdict, reasons,
                      metrics->'accuracy', metrics->'critical_accuracy', metrics->'ece',
                      report_uri, created_at
               FROM ml.golden_runs
               ORDER BY created_at DESC, golden_run_id
               LIMIT %s""",
            (limit,),
        )
        rows = cur.fetchall()
    reports = [
        {
            "golden_run_id": r[0],
            "version_id": r[1],
            "dag_id": r[2],
            "run_id": r[3],
            "golden_version": r[4],
            "verdict": r[5],
            "reasons": list(r[6] or []),
            "accuracy": _num(r[7]),
            "critical_accuracy": _num(r[8]),
            "ece": _num(r[9]),
            "report_uri": r[10],
            "report_html_uri": report_html_uri(r[10]),
            "created_at": _iso(r[11]),
        }
        for r in rows
    ]
    return _panel("gate_reports", empty=not reports, reports=reports)


def gate_report_uri(conn: Any, golden_run_id: str) -> str | None:
    """The HTML report URI of one gate run (looked up, never built from the caller's input)."""
    with _reading(conn) as cur:
        if _missing(cur, "ml.golden_runs"):
            return None
        cur.execute("SELECT report_uri FROM ml.golden_runs WHERE golden_run_id = %s", (golden_run_id,))
        row = cur.fetchone()
    return report_html_uri(row[0]) if row else None


def _subject(raw: str | None) -> str | None:
    """The email subject, PII redacted and cut to :data:`SUBJECT_CHARS`."""
    if raw is None:
        return None
    from feedbackloop.pii import redact

    text = " ".join(redact(raw)[0].split())
    return text if len(text) <= SUBJECT_CHARS else text[: SUBJECT_CHARS - 1] + "\u2026"


def misclassifications(
    conn: Any, days: int = 7, limit: int = 20, as_of: datetime | date | None = None
) -> dict[str, Any]:
    """The latest predictions users corrected to another category, newest correction first.

    Subjects are PII-redacted (:func:`feedbackloop.pii.redact`) and shortened; no user id,
    sender or body leaves the database.
    """
    if not 1 <= limit <= 200:
        raise ValueError(f"limit must be in 1..200, got {limit}")
    w = window(days, as_of)
    with _reading(conn) as cur:
        cur.execute(
            """SELECT c.created_at, p.prediction_id, p.predicted_at, p.model_version, p.variant,
                      p.category, c.corrected_category, p.confidence, e.subject
               FROM app.category_corrections c
               JOIN app.predictions p ON p.prediction_id = c.prediction_id
               LEFT JOIN app.emails e ON e.email_id = p.email_id
               WHERE c.created_at >= %(start)s AND c.created_at <= %(as_of)s
                 AND c.corrected_category IS NOT NULL
                 AND c.corrected_category IS DISTINCT FROM p.category
               ORDER BY c.created_at DESC, c.correction_id DESC
               LIMIT %(limit)s""",
            {"start": w.start, "as_of": w.as_of, "limit": limit},
        )
        rows = cur.fetchall()
    items = [
        {
            "corrected_at": _iso(r[0]),
            "prediction_id": r[1],
            "predicted_at": _iso(r[2]),
            "model_version": r[3],
            "variant": r[4],
            "predicted_category": r[5],
            "corrected_category": r[6],
            "confidence": _num(r[7], 4),
            "subject": _subject(r[8]),
        }
        for r in rows
    ]
    return _panel("misclassifications", empty=not items, window=w.to_dict(), rows=items)


def dashboard(conn: Any, days: int = DEFAULT_DAYS, as_of: datetime | date | None = None) -> dict[str, Any]:
    """Every panel for one view of the dashboard (trends over ``days``; heatmap over 90).

    All panels read one snapshot (a single read-only REPEATABLE READ transaction), so they
    agree with each other even while the pipeline writes; table existence is checked once.

    Returns:
        ``as_of``, ``window``, ``summary`` (:func:`summary_status`) and ``panels`` keyed by
        the names in :data:`PANELS`.
    """
    w = window(days, as_of)
    with transaction(conn) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute(
            "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL", (list(_KNOWN_TABLES),)
        )
        token = _EXISTING.set(frozenset(row[0] for row in cur.fetchall()))
        try:
            panels = {
                "accuracy": accuracy_trend(conn, days, w.as_of),
                "category_accuracy": category_accuracy(conn, max(WINDOW_DAYS), w.as_of),
                "calibration": reliability(conn, days, w.as_of),
                "latency": latency_trend(conn, days, w.as_of),
                "feedback_volume": feedback_volume(conn, days, w.as_of),
                "deployments": deployments(conn),
                "experiment": experiment_status(conn, w.as_of),
                "alerts": open_alerts(conn, as_of=w.as_of),
                "review_queue": review_queue(conn, w.as_of),
                "gate_reports": gate_reports(conn),
                "misclassifications": misclassifications(conn, min(days, 30), as_of=w.as_of),
            }
            summary = summary_status(conn)
        finally:
            _EXISTING.reset(token)
    return {"as_of": w.as_of.isoformat(), "window": w.to_dict(), "summary": summary, "panels": panels}
