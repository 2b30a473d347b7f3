"""Contributor stats for the rewards screen, on hand-made data with known answers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from feedbackloop import db
from feedbackloop.contributors import free_months, impact_line, refresh_contributor_stats, week_start

WEEK1 = datetime(2026, 5, 4, 9, tzinfo=UTC)  # Monday
WEEK2 = WEEK1 + timedelta(days=7)
NOW = WEEK2 + timedelta(days=2)


class _App:
    """Writes app rows: one email + prediction per card, then the feedback."""

    def __init__(self, conn):
        self.conn = conn
        self.n = 0

    def card(
        self,
        owner,
        at,
        *,
        reviewer=None,
        correction="receipt",
        actions=None,
        body=b"Hello",
        category="receipt",
    ):
        self.n += 1
        pid, eid = f"p{self.n}", f"e{self.n}"
        self.conn.execute(
            "INSERT INTO app.emails VALUES (%s, %s, 's', 'subj', %s, %s)", (eid, owner, body, at)
        )
        self.conn.execute(
            "INSERT INTO app.predictions VALUES (%s, %s, %s, 'v', 'champion', %s, 0.9, '{}', 100, %s)",
            (pid, eid, owner, category, at - timedelta(minutes=5)),
        )
        who = reviewer or owner
        if correction is not None:
            self.conn.execute(
                "INSERT INTO app.category_corrections VALUES (%s, %s, %s, %s, %s)",
                (f"c{self.n}", pid, who, correction, at),
            )
        if actions is not None:
            self.conn.execute(
                "INSERT INTO app.action_feedback VALUES (%s, %s, %s, %s, '{}', NULL, %s)",
                (f"a{self.n}", pid, who, actions, at),
            )
        return pid


def _registry(conn):
    for version, start, end, accuracy in (
        ("v1", WEEK1 - timedelta(days=7), WEEK1, 0.90),
        ("v2", WEEK1, WEEK2, 0.93),
    ):
        conn.execute(
            """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, data_interval_start, data_interval_end,
                                              report_uri, gate_passed)
               VALUES (%s, '{}'::jsonb, 'feedback_retraining', %s, %s, %s, 'file:///r', true)""",
            (version, f"run-{version}", start, end),
        )
        conn.execute(
            """INSERT INTO ml.golden_runs (golden_run_id, version_id, dag_id, run_id, golden_version, verdict, reasons,
                                           checks, metrics, report_uri)
               VALUES (%s, %s, 'feedback_retraining', %s, 'taxonomy-v1', 'pass', '[]', '[]', %s::jsonb, 'file:///r')""",
            (f"g-{version}", version, f"run-{version}", json.dumps({"accuracy": accuracy})),
        )
    for version, action, at in (
        ("v1", "set", WEEK1 - timedelta(days=1)),
        ("v2", "promote", WEEK2 + timedelta(hours=1)),
    ):
        conn.execute(
            """INSERT INTO ml.deployment_history (alias, version_id, traffic_share, action, updated_by, reason, created_at)
               VALUES ('champion', %s, 1, %s, 'test', 'test', %s)""",
            (version, action, at),
        )


@pytest.fixture
def stats_db(pg_dsn):
    with db.connect(pg_dsn) as conn:
        app = _App(conn)
        for i in range(13):  # alice: 13 cards in week 1 (in v2's training interval), 10 in week 2
            app.card("alice", WEEK1 + timedelta(hours=i))
        for i in range(10):
            app.card("alice", WEEK2 + timedelta(hours=i), correction=None, actions=["save_receipt"])
        for i in range(9):  # bob: 9 good cards in week 2, plus rejected ones
            app.card("bob", WEEK2 + timedelta(hours=i))
        app.card("bob", WEEK2, correction="bills")  # unknown category
        app.card("bob", WEEK2, correction=None, actions=["call_bank"])  # unknown action
        app.card("bob", WEEK2, body=b"")  # empty email body
        app.card("bob", WEEK2, category="spam")  # the prediction itself is invalid
        dup = app.card("bob", WEEK2 + timedelta(hours=20))  # a client retry: a second correction row
        conn.execute(
            "INSERT INTO app.category_corrections VALUES ('c-dup', %s, 'bob', 'receipt', %s)",
            (dup, NOW - timedelta(hours=1)),
        )
        for i in range(9):  # carol reviews dave's emails: the cards are hers, 9 in week 2 as well
            app.card("dave", WEEK2 + timedelta(hours=i), reviewer="carol")
        app.card("erin", NOW + timedelta(hours=1))  # after the refresh time: not counted yet
        _registry(conn)
        conn.commit()
    return pg_dsn


def test_stats_leaderboard_and_impact(stats_db):
    with db.connect(stats_db) as conn:
        summary = refresh_contributor_stats(conn, NOW)
        stats = {
            r[0]: r[1:]
            for r in conn.execute(
                """SELECT user_id, accepted_cards, free_months, cards_to_next_month, cards_this_week, weekly_rank,
                          impact_version_id, impact_points, impact_line, week_start
                   FROM ml.contributor_stats ORDER BY user_id"""
            ).fetchall()
        }
        board = conn.execute(
            "SELECT rank, user_id, accepted_cards FROM ml.contributor_leaderboard WHERE week_start = %s ORDER BY rank",
            (week_start(NOW),),
        ).fetchall()
    assert set(stats) == {"alice", "bob", "carol"}  # dave gave no feedback, erin's is in the future
    line = impact_line(3.0)
    assert stats["alice"][:6] == (23, 2, 7, 10, 1, "v2")
    assert stats["alice"][6:8] == (pytest.approx(3.0), line)
    assert stats["bob"][:5] == (10, 1, 10, 10, 2)  # 9 + the retried card, counted once
    assert stats["bob"][5:8] == (None, None, None)  # nothing of bob's was in an improving model's data
    assert stats["carol"][:5] == (9, 0, 1, 9, 3)
    assert {s[8] for s in stats.values()} == {date(2026, 5, 11)}
    assert board == [(1, "alice", 10), (2, "bob", 10), (3, "carol", 9)]
    assert summary["contributors"] == 3 and summary["accepted_cards"] == 42 and summary["free_months"] == 3
    assert summary["with_impact_line"] == 1 and summary["improving_models"] == 1
    assert (
        line == "Your corrections were in the training set of a model that improved accuracy by +3.0 points"
    )


def test_refresh_is_idempotent_and_ignores_later_feedback(stats_db):
    with db.connect(stats_db) as conn:
        first = refresh_contributor_stats(conn, NOW)
        rows1 = conn.execute("SELECT * FROM ml.contributor_weekly ORDER BY week_start, user_id").fetchall()
        second = refresh_contributor_stats(conn, NOW)
        rows2 = conn.execute("SELECT * FROM ml.contributor_weekly ORDER BY week_start, user_id").fetchall()
        later = refresh_contributor_stats(conn, NOW + timedelta(days=1))
    assert first == second and rows1 == rows2
    assert later["contributors"] == 4  # erin's card now counts


@pytest.mark.parametrize(
    ("cards", "months"),
    [
        pytest.param(0, 0, id="none"),
        pytest.param(9, 0, id="nine"),
        pytest.param(10, 1, id="ten"),
        pytest.param(29, 2, id="29"),
    ],
)
def test_free_months(cards, months):
    assert free_months(cards) == months


def test_free_months_rejects_negative_counts():
    with pytest.raises(ValueError):
        free_months(-1)


def test_refresh_needs_a_time_zone(pg_dsn):
    with db.connect(pg_dsn) as conn, pytest.raises(ValueError):
        refresh_contributor_stats(conn, NOW.replace(tzinfo=None))


def test_refresh_on_an_empty_database(pg_dsn):
    with db.connect(pg_dsn) as conn:
        summary = refresh_contributor_stats(conn, NOW)
        (rows,) = conn.execute("SELECT count(*) FROM ml.contributor_stats").fetchone()
    assert rows == 0
    assert summary["contributors"] == 0 and summary["top_this_week"] == []
