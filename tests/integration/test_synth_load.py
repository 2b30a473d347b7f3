"""Load synthetic app data into a real PostgreSQL and read it back through ml.feedback_records."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest

from feedbackloop.contracts import MAX_BODY_BYTES, Reason
from feedbackloop.synth import TABLES, iter_app_data, load_app_data

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 3, tzinfo=UTC)
N_FEEDBACK = 2000


@pytest.fixture
def loaded(pg_dsn: str):
    items = list(
        iter_app_data(
            N_FEEDBACK,
            5,
            START,
            END,
            malformed_fraction=0.05,
            unlabeled_ratio=0.25,
            oversize_body_bytes=MAX_BODY_BYTES + 50_000,
        )
    )
    with psycopg.connect(pg_dsn) as conn:
        # A small batch size so the test crosses several COPY batches.
        counts = load_app_data(conn, iter(items), batch_rows=1500)
    return pg_dsn, items, counts


def _count(conn: psycopg.Connection, sql: str, params: tuple = ()) -> int:
    return conn.execute(sql, params).fetchone()[0]


def test_table_counts_match_the_generated_rows(loaded) -> None:
    dsn, items, counts = loaded
    expected = {t: sum(len(i.rows(t)) for i in items) for t in TABLES}
    assert counts == expected
    with psycopg.connect(dsn) as conn:
        for table in TABLES:
            assert _count(conn, f"SELECT count(*) FROM app.{table}") == expected[table], table


def test_feedback_view_yields_one_row_per_feedback_plus_duplicates(loaded) -> None:
    dsn, items, _ = loaded
    duplicates = sum(1 for i in items if i.expected_reason is Reason.DUPLICATE_FEEDBACK_ID)
    assert duplicates == 10  # 5 % of 2000 malformed, kinds balanced over 10 kinds
    assert sum(i.feedback_rows for i in items) == N_FEEDBACK + duplicates
    with psycopg.connect(dsn) as conn:
        in_window = _count(
            conn,
            "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
            (START, END),
        )
        assert in_window == N_FEEDBACK + duplicates
        assert _count(conn, "SELECT count(*) FROM ml.feedback_records") == N_FEEDBACK + duplicates
        repeated = _count(
            conn,
            "SELECT count(*) FROM (SELECT feedback_id FROM ml.feedback_records "
            "GROUP BY feedback_id HAVING count(*) > 1) d",
        )
        assert repeated == duplicates


def test_defects_and_metacharacters_survive_the_round_trip(loaded) -> None:
    dsn, items, _ = loaded
    by_id = {i.feedback_id: i for i in items if i.feedback_id}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT feedback_id, subject, body, confidence, predicted_category, note, predicted_at, feedback_at "
            "FROM ml.feedback_records"
        ).fetchall()
    seen = Counter()
    for fid, subject, body, confidence, _category, note, predicted_at, feedback_at in rows:
        item = by_id[fid]
        reason = item.expected_reason
        seen[reason] += 1
        if reason is Reason.CONFIDENCE_NAN:
            assert math.isnan(confidence)
        elif reason is Reason.CONFIDENCE_OUT_OF_RANGE:
            assert not 0.0 <= confidence <= 1.0
        elif reason is Reason.EMPTY_BODY:
            assert bytes(body) == b""
        elif reason is Reason.BODY_TOO_LARGE:
            assert len(body) > MAX_BODY_BYTES
        elif reason is Reason.INVALID_UTF8:
            with pytest.raises(UnicodeDecodeError):
                bytes(body).decode("utf-8")
        elif reason is Reason.TIMESTAMP_OUT_OF_RANGE:
            assert predicted_at > feedback_at
        elif reason is None:
            assert 0.0 <= confidence <= 1.0 and body is not None and predicted_at <= feedback_at
            bytes(body).decode("utf-8")
        if item.has_sql_metachar:
            (email,) = item.emails
            assert subject == email[3] and bytes(body) == email[4]
            assert note == (item.action_feedback[0][5] if item.action_feedback else None)
    assert set(seen) == {None, *Reason}
    with psycopg.connect(dsn) as conn:
        # The injected "DROP TABLE" text was stored as data, not executed.
        assert _count(conn, "SELECT count(*) FROM app.predictions") > 0
