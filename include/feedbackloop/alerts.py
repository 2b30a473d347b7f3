"""Alert lifecycle in ``ml.alerts``: open once, suppress repeats, resolve when the signal clears.

An *incident* is one row of ``ml.alerts`` for a (detector, key). Each evaluation's
:class:`~feedbackloop.monitoring.DetectorResult` moves it through a small state machine
(:func:`transition`, pure):

==================  =======================  ==========================================
result status       open incident exists     what happens (message to send)
==================  =======================  ==========================================
``firing``          no                       open a new incident (``open``), unless a
                                             resolved incident already covers this
                                             evaluation time (a re-run of an old hour)
``firing``          yes                      repeat: ``last_seen_at`` / ``occurrences``
                                             move, nothing is sent (``none``)
``clear``           yes                      resolve it (``resolve``) when the evaluation
                                             is newer than the last one that saw it firing
``clear``           no                       nothing
``hold``            either                   nothing (hysteresis: not proven, not cleared)
``insufficient``    either                   nothing (a quiet hour neither opens nor closes)
==================  =======================  ==========================================

At most one open incident per (detector, key) is a database invariant (a partial unique
index); an evaluation that loses a race to open finds the winner's row and repeats it.
Occurrences count distinct evaluation times, so a retried task does not inflate them.

Sending is separate from deciding: :func:`pending_notifications` lists incidents whose
``open`` or ``resolve`` message has not been delivered yet and :func:`mark_notified` records
a delivery. A message that could not be delivered (Slack down) is retried by the next
evaluation; a resolution is retried for ``resolved_within`` (24 h), an open incident for as
long as it stays open.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from feedbackloop.db import transaction
from feedbackloop.monitoring import CLEAR, FIRING, HOLD, INSUFFICIENT, DetectorResult

OPEN = "open"
RESOLVE = "resolve"
NONE = "none"
MESSAGE_KINDS = (OPEN, RESOLVE)

_COLUMNS = (
    "alert_id",
    "detector",
    "key",
    "status",
    "metric",
    "value",
    "threshold",
    "baseline",
    "window_start",
    "window_end",
    "opened_at",
    "last_seen_at",
    "resolved_at",
    "occurrences",
    "summary",
    "evidence",
    "resolution_evidence",
    "opened_by",
    "resolved_by",
    "open_notified_at",
    "resolve_notified_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM ml.alerts"


@dataclass(frozen=True)
class AlertAction:
    """What one evaluation did to one (detector, key).

    Attributes:
        action: the message to send: ``open``, ``resolve`` or ``none``.
        reason: why (``opened``, ``suppressed``, ``resolved``, ``no open incident``,
            ``inconclusive``, ``insufficient data``, ``already covered``, ``stale evaluation``).
        detector: the detector.
        key: the key (``all`` or a category).
        alert_id: the incident concerned, if any.
        status: the detector result's status.
    """

    action: str
    reason: str
    detector: str
    key: str
    alert_id: int | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "detector": self.detector,
            "key": self.key,
            "alert_id": self.alert_id,
            "status": self.status,
        }


def transition(
    status: str,
    evaluated_at: datetime,
    open_incident: Mapping[str, Any] | None,
    covered_by_resolved: bool = False,
) -> tuple[str, str]:
    """The state machine of the module docstring: ``(action, reason)`` for one result.

    Args:
        status: the detector result's status.
        evaluated_at: the evaluation time (the window's end).
        open_incident: the open incident for the (detector, key) with at least
            ``opened_at`` and ``last_seen_at``, or None.
        covered_by_resolved: a resolved incident spans ``evaluated_at`` (opened at or
            before it and resolved at or after it).

    Raises:
        ValueError: an unknown status.
    """
    if status == FIRING:
        if open_incident is not None:
            return NONE, "suppressed"
        if covered_by_resolved:
            return NONE, "already covered"
        return OPEN, "opened"
    if status == CLEAR:
        if open_incident is None:
            return NONE, "no open incident"
        if evaluated_at <= open_incident["last_seen_at"]:
            # An older (re-run) evaluation must not close what a newer one saw firing.
            return NONE, "stale evaluation"
        return RESOLVE, "resolved"
    if status == HOLD:
        return NONE, "inconclusive"
    if status == INSUFFICIENT:
        return NONE, "insufficient data"
    raise ValueError(f"unknown detector status {status!r}")


def _row(values: Iterable[Any]) -> dict[str, Any]:
    return dict(zip(_COLUMNS, values, strict=True))


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=False)


def apply_results(
    conn: Any, results: Iterable[DetectorResult], evaluated_at: datetime, actor: str
) -> list[AlertAction]:
    """Apply one evaluation's results to ``ml.alerts`` (one transaction per result).

    Args:
        conn: psycopg connection to the feedback DB.
        results: the detector results of one evaluation.
        evaluated_at: the evaluation time (the run's data interval end), timezone-aware.
        actor: who evaluated, ``<dag_id>/<run_id>`` (recorded as opened_by / resolved_by).

    Returns:
        One :class:`AlertAction` per result, in the input order.
    """
    if evaluated_at.tzinfo is None:
        raise ValueError("evaluated_at must carry a time zone")
    actions = []
    for result in results:
        with transaction(conn) as cur:
            actions.append(_apply_one(cur, result, evaluated_at, actor))
    return actions


def _apply_one(cur: Any, r: DetectorResult, at: datetime, actor: str) -> AlertAction:
    cur.execute(
        f"{_SELECT} WHERE detector = %s AND key = %s AND status = 'open' FOR UPDATE", (r.detector, r.key)
    )
    found = cur.fetchone()
    incident = _row(found) if found else None
    covered = False
    if r.status == FIRING and incident is None:
        cur.execute(
            """SELECT EXISTS (SELECT 1 FROM ml.alerts
                              WHERE detector = %s AND key = %s AND status = 'resolved'
                                AND opened_at <= %s AND resolved_at >= %s)""",
            (r.detector, r.key, at, at),
        )
        covered = bool(cur.fetchone()[0])
    action, reason = transition(r.status, at, incident, covered)

    def done(alert_id: int | None) -> AlertAction:
        return AlertAction(action, reason, r.detector, r.key, alert_id, r.status)

    if r.status == FIRING and incident is not None:
        cur.execute(
            """UPDATE ml.alerts
               SET occurrences = occurrences + CASE WHEN %(at)s > last_seen_at THEN 1 ELSE 0 END,
                   last_seen_at = GREATEST(last_seen_at, %(at)s),
                   updated_at = now()
               WHERE alert_id = %(id)s""",
            {"at": at, "id": incident["alert_id"]},
        )
        return done(incident["alert_id"])
    if action == OPEN:
        cur.execute(
            """INSERT INTO ml.alerts
                   (detector, key, status, metric, value, threshold, baseline, window_start, window_end,
                    opened_at, last_seen_at, occurrences, summary, evidence, opened_by)
               VALUES (%(detector)s, %(key)s, 'open', %(metric)s, %(value)s, %(threshold)s, %(baseline)s,
                       %(window_start)s, %(window_end)s, %(at)s, %(at)s, 1, %(summary)s, %(evidence)s::jsonb,
                       %(actor)s)
               ON CONFLICT (detector, key) WHERE status = 'open' DO NOTHING
               RETURNING alert_id""",
            {**_result_params(r), "at": at, "actor": actor},
        )
        inserted = cur.fetchone()
        if inserted is None:  # another evaluation opened it between our SELECT and INSERT
            cur.execute(
                "SELECT alert_id FROM ml.alerts WHERE detector = %s AND key = %s AND status = 'open'",
                (r.detector, r.key),
            )
            (winner,) = cur.fetchone()
            return AlertAction(NONE, "suppressed", r.detector, r.key, winner, r.status)
        return done(inserted[0])
    if action == RESOLVE:
        assert incident is not None
        cur.execute(
            """UPDATE ml.alerts
               SET status = 'resolved', resolved_at = %(at)s, resolved_by = %(actor)s,
                   resolution_evidence = %(evidence)s::jsonb, updated_at = now()
               WHERE alert_id = %(id)s AND status = 'open'""",
            {"at": at, "actor": actor, "evidence": _json(r.to_dict()), "id": incident["alert_id"]},
        )
        return done(incident["alert_id"])
    return done(incident["alert_id"] if incident else None)


def _result_params(r: DetectorResult) -> dict[str, Any]:
    d = r.to_dict()
    return {
        "detector": r.detector,
        "key": r.key,
        "metric": r.metric,
        "value": d["value"],
        "threshold": d["threshold"],
        "baseline": d["baseline"],
        "window_start": r.window_start,
        "window_end": r.window_end,
        "summary": r.summary,
        "evidence": _json({**d["evidence"], "n": d["n"], "p_value": d["p_value"], "status": r.status}),
    }


def get_incident(conn: Any, alert_id: int) -> dict[str, Any] | None:
    """One incident by id (all columns), or None."""
    with transaction(conn) as cur:
        cur.execute(f"{_SELECT} WHERE alert_id = %s", (alert_id,))
        row = cur.fetchone()
    return _row(row) if row else None


def open_incidents(conn: Any) -> list[dict[str, Any]]:
    """Every open incident, oldest first."""
    with transaction(conn) as cur:
        cur.execute(f"{_SELECT} WHERE status = 'open' ORDER BY opened_at, alert_id")
        return [_row(r) for r in cur.fetchall()]


def pending_notifications(
    conn: Any, now: datetime, resolved_within: timedelta = timedelta(hours=24)
) -> list[tuple[str, dict[str, Any]]]:
    """Messages not delivered yet: ``[(kind, incident), ...]`` ordered by alert id.

    ``open`` for open incidents whose opening was never delivered; ``resolve`` for incidents
    resolved within ``resolved_within`` before ``now`` whose resolution was never delivered
    (an undelivered opening of a since-resolved incident is covered by its resolution).
    """
    with transaction(conn) as cur:
        cur.execute(
            f"""{_SELECT}
                WHERE (status = 'open' AND open_notified_at IS NULL)
                   OR (status = 'resolved' AND resolve_notified_at IS NULL AND resolved_at >= %s)
                ORDER BY alert_id""",
            (now - resolved_within,),
        )
        rows = [_row(r) for r in cur.fetchall()]
    return [(OPEN if r["status"] == "open" else RESOLVE, r) for r in rows]


def mark_notified(conn: Any, alert_id: int, kind: str, at: datetime) -> bool:
    """Record that the ``kind`` message of an incident was delivered. Returns whether it changed."""
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"kind must be one of {MESSAGE_KINDS}, got {kind!r}")
    column = "open_notified_at" if kind == OPEN else "resolve_notified_at"
    with transaction(conn) as cur:
        cur.execute(
            f"UPDATE ml.alerts SET {column} = %s, updated_at = now() WHERE alert_id = %s AND {column} IS NULL",
            (at, alert_id),
        )
        return cur.rowcount == 1
