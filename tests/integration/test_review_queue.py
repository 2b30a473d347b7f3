"""The human-review queue on a real PostgreSQL, fed by the app-data generator.

What the app and the reviewers would notice: a prediction never shows up twice, nobody gets
more than their daily share, the work is spread over many reviewers, nobody reviews their
own email, the most urgent items come first, and an item leaves the queue once reviewed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from feedbackloop import db, review
from feedbackloop.golden import default_taxonomy

START = datetime(2026, 4, 6, tzinfo=UTC)  # a Monday
DAYS = 3
FIRST = START + timedelta(days=2, hours=1)
POLICY = review.ReviewPolicy(daily_cap=30, per_reviewer_daily_cap=2, per_reviewer_max_pending=5)


@pytest.fixture
def app_db(pg_dsn):
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(pg_dsn) as conn:
        load_app_data(
            conn,
            iter_app_data(
                1500, 5, START, START + timedelta(days=DAYS), malformed_fraction=0.0, unlabeled_ratio=2.0
            ),
        )
    return pg_dsn


def _q(conn, sql, *params):
    return conn.execute(sql, params).fetchall()


def _run(conn, end, policy=POLICY):
    return review.refresh_review_queue(conn, end, f"review_queue/{end.isoformat()}", policy)


def test_queue_is_idempotent_capped_spread_and_prioritised(app_db):
    taxonomy = default_taxonomy()
    with db.connect(app_db) as conn:
        reviewers = review.load_reviewers(conn, FIRST, POLICY, taxonomy)
        candidates = review.prioritise(
            review.load_candidates(conn, FIRST - timedelta(hours=24), FIRST, POLICY), taxonomy, POLICY
        )
        first = _run(conn, FIRST)
        queued_first = [
            r[0]
            for r in _q(
                conn, "SELECT prediction_id FROM ml.review_queue ORDER BY priority DESC, prediction_id"
            )
        ]
        summaries = [first]
        for hour in range(1, 6):
            summaries.append(_run(conn, FIRST + timedelta(hours=hour)))
        reruns = [_run(conn, FIRST + timedelta(hours=hour)) for hour in range(6)]
        rows = _q(
            conn,
            """SELECT q.prediction_id, q.reviewer_id, q.owner_user_id, q.queue_date, q.confidence, q.priority,
                      p.user_id, p.confidence
               FROM ml.review_queue q JOIN app.predictions p USING (prediction_id)""",
        )

    assert len(reviewers) >= 15, "the generator's contributors should yield a reviewer pool"
    # The first run fills the day's cap with the highest-priority candidates, in order.
    assert first["queued"] == POLICY.daily_cap
    assert queued_first == candidates["prediction_id"].head(POLICY.daily_cap).tolist()
    # Later runs the same day have no cap left; re-runs of any hour add nothing.
    assert [s["queued"] for s in summaries[1:]] == [0] * 5
    assert [s["queued"] for s in reruns] == [0] * 6
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == POLICY.daily_cap

    per_reviewer: dict[str, int] = {}
    for _, reviewer, owner, day, q_conf, priority, p_user, p_conf in rows:
        assert reviewer != owner and owner == p_user  # never one's own email
        assert q_conf == p_conf < POLICY.confidence_threshold
        assert priority > 0 and day == FIRST.date()
        per_reviewer[reviewer] = per_reviewer.get(reviewer, 0) + 1
    assert max(per_reviewer.values()) <= POLICY.per_reviewer_daily_cap
    assert len(per_reviewer) >= math.ceil(POLICY.daily_cap / POLICY.per_reviewer_daily_cap)
    assert set(per_reviewer) <= set(reviewers)


def test_reviewed_items_leave_the_queue_and_never_come_back(app_db):
    with db.connect(app_db) as conn:
        _run(conn, FIRST)
        (a, reviewer_a), (b, reviewer_b) = _q(
            conn, "SELECT prediction_id, reviewer_id FROM ml.review_queue ORDER BY prediction_id LIMIT 2"
        )
        at = FIRST + timedelta(minutes=20)
        conn.execute(
            "INSERT INTO app.category_corrections VALUES (%s, %s, %s, 'phishing', %s)",
            ("rq-c1", a, reviewer_a, at),
        )
        conn.execute(
            "INSERT INTO app.action_feedback VALUES (%s, %s, %s, '{}', '{}', NULL, %s)",
            ("rq-a1", b, reviewer_b, at),
        )
        conn.commit()
        # Besides ours, the generator's own late feedback may land on queued predictions.
        expected = {
            r[0]
            for r in _q(
                conn,
                """SELECT q.prediction_id FROM ml.review_queue q
                   WHERE EXISTS (SELECT 1 FROM app.category_corrections c
                                 WHERE c.prediction_id = q.prediction_id AND c.created_at < %s)
                      OR EXISTS (SELECT 1 FROM app.action_feedback f
                                 WHERE f.prediction_id = q.prediction_id AND f.created_at < %s)""",
                FIRST + timedelta(hours=1),
                FIRST + timedelta(hours=1),
            )
        }
        summary = _run(conn, FIRST + timedelta(hours=1))
        resolved = {
            pid: (status, resolution, user, when)
            for pid, status, resolution, user, when in _q(
                conn,
                "SELECT prediction_id, status, resolution, resolved_by_user, resolved_at FROM ml.review_queue "
                "WHERE status <> 'pending'",
            )
        }
        # Next day: a fresh cap, and the reviewed predictions are not queued again.
        next_day = _run(conn, START + timedelta(days=DAYS, hours=1))
        again = _q(conn, "SELECT count(*) FROM ml.review_queue WHERE prediction_id IN (%s, %s)", a, b)
    assert {a, b} <= expected
    assert set(resolved) == expected and summary["resolved"] == len(expected)
    assert resolved[a] == ("resolved", "correction", reviewer_a, at)
    assert resolved[b] == ("resolved", "action_feedback", reviewer_b, at)
    assert summary["pending"] == POLICY.daily_cap - len(expected)
    assert next_day["queue_date"] == (START + timedelta(days=DAYS)).date().isoformat()
    assert next_day["queued"] > 0
    assert again == [(2,)]


def test_stale_items_expire_and_per_reviewer_backlog_is_capped(app_db):
    tight = review.ReviewPolicy(daily_cap=100, per_reviewer_daily_cap=3, per_reviewer_max_pending=3)
    day2 = FIRST + timedelta(days=1)
    with db.connect(app_db) as conn:
        first = _run(conn, FIRST, tight)
        review.resolve_reviewed(conn, day2)
        before = dict(
            _q(
                conn,
                "SELECT reviewer_id, count(*) FROM ml.review_queue WHERE status = 'pending' GROUP BY reviewer_id",
            )
        )
        next_day = review.enqueue_low_confidence(conn, day2, "review_queue/day2", tight)
        pending = _q(
            conn,
            "SELECT reviewer_id, count(*) FROM ml.review_queue WHERE status = 'pending' GROUP BY reviewer_id",
        )
        later = _run(conn, day2 + timedelta(days=tight.expire_after_days, hours=1), tight)
        left = _q(conn, "SELECT count(*) FROM ml.review_queue WHERE status = 'pending'")
    assert first["queued"] > 0 and next_day["queued"] > 0
    # Reviewers still holding 3 pending items from yesterday get nothing new today.
    full = {r for r, n in before.items() if n >= tight.per_reviewer_max_pending}
    assert full and set(next_day["per_reviewer"]).isdisjoint(full)
    for reviewer, n in next_day["per_reviewer"].items():
        assert before.get(reviewer, 0) + n <= tight.per_reviewer_max_pending
    assert max(n for _, n in pending) <= tight.per_reviewer_max_pending
    # Everything still pending a week later leaves the queue: expired (or reviewed meanwhile).
    assert later["expired"] > 0
    assert later["expired"] + later["resolved"] == sum(n for _, n in pending)
    assert left == [(0,)]


def test_contributor_stats_refresh_from_the_same_data(app_db):
    from feedbackloop.contributors import refresh_contributor_stats

    now = START + timedelta(days=DAYS)
    with db.connect(app_db) as conn:
        summary = refresh_contributor_stats(conn, now)
        again = refresh_contributor_stats(conn, now)
        rows = _q(
            conn, "SELECT user_id, accepted_cards, free_months, cards_to_next_month FROM ml.contributor_stats"
        )
        board = _q(
            conn,
            "SELECT rank, user_id, accepted_cards FROM ml.contributor_leaderboard ORDER BY week_start, rank",
        )
    assert summary == again  # a re-run rewrites the same numbers
    assert summary["contributors"] == len(rows) > 100
    for _, cards, months, to_next in rows:
        assert months == cards // 10 and to_next == 10 - cards % 10
    counts = [n for _, _, n in board]
    assert counts == sorted(counts, reverse=True) and board[0][0] == 1
