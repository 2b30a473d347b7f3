"""Extraction from a real (embedded) PostgreSQL into staged Parquet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from feedbackloop.contracts import raw_schema
from feedbackloop.extract import ExtractSummary, extract_feedback
from feedbackloop.staging import LocalStaging

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
US = timedelta(microseconds=1)
KEY = "feedback_retraining/run1/feedback_raw.parquet"


def add_feedback(
    conn: psycopg.Connection,
    prediction_id: str,
    feedback_at: datetime,
    *,
    category: str = "bill_due",
    confidence: float | None = 0.9,
    actions: Sequence[str] | None = ("pay_invoice",),
    body: bytes | None = b"Your bill of $42 is due on Friday.",
    email: bool = True,
    corrected: str | None = None,
    correction_id: str | None = None,
    action_feedback: bool = False,
    missed: Sequence[str] | None = None,
    unnecessary: Sequence[str] | None = None,
    note: str | None = None,
    took_action: bool = False,
    predicted_at: datetime | None = None,
) -> None:
    """Insert one prediction with its feedback through the app tables (parameterised SQL)."""
    email_id = f"e-{prediction_id}"
    predicted_at = predicted_at or feedback_at - timedelta(minutes=5)
    with conn.cursor() as cur:
        if email:
            cur.execute(
                "INSERT INTO app.emails (email_id, user_id, sender, subject, body, received_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    email_id,
                    "u1",
                    "billing@example.com",
                    "Your bill",
                    body,
                    predicted_at - timedelta(minutes=1),
                ),
            )
        cur.execute(
            "INSERT INTO app.predictions (prediction_id, email_id, user_id, model_version, variant, category, "
            "confidence, actions, latency_ms, predicted_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                prediction_id,
                email_id,
                "u1",
                "v1",
                "champion",
                category,
                confidence,
                None if actions is None else list(actions),
                120.0,
                predicted_at,
            ),
        )
        if corrected is not None or correction_id is not None:
            cur.execute(
                "INSERT INTO app.category_corrections (correction_id, prediction_id, user_id, "
                "corrected_category, created_at) VALUES (%s, %s, %s, %s, %s)",
                (correction_id or f"c-{prediction_id}", prediction_id, "u1", corrected, feedback_at),
            )
        if action_feedback:
            cur.execute(
                "INSERT INTO app.action_feedback (action_feedback_id, prediction_id, user_id, missed_actions, "
                "unnecessary_actions, note, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    f"a-{prediction_id}",
                    prediction_id,
                    "u1",
                    None if missed is None else list(missed),
                    None if unnecessary is None else list(unnecessary),
                    note,
                    feedback_at,
                ),
            )
        if took_action:
            cur.execute(
                "INSERT INTO app.engagement_events (event_id, prediction_id, user_id, event_type, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (f"ev-{prediction_id}", prediction_id, "u1", "action_taken", feedback_at),
            )
    conn.commit()


@pytest.fixture
def conn(pg_dsn: str):
    with psycopg.connect(pg_dsn) as c:
        yield c


@pytest.fixture
def staging(tmp_path: Path) -> LocalStaging:
    return LocalStaging(tmp_path / "staging")


def read(staging: LocalStaging, key: str = KEY) -> Any:
    return pq.read_table(staging.root / key)


def test_interval_is_half_open(conn: psycopg.Connection, staging: LocalStaging) -> None:
    add_feedback(conn, "p-at-start", START, corrected="receipt")
    add_feedback(conn, "p-before-start", START - US, corrected="receipt")
    add_feedback(conn, "p-last-us", END - US, action_feedback=True, missed=["set_payment_reminder"])
    add_feedback(conn, "p-at-end", END, corrected="receipt")

    this = extract_feedback(conn, staging, KEY, START, END)
    following = extract_feedback(conn, staging, "next/feedback_raw.parquet", END, END + timedelta(days=1))

    assert read(staging).column("feedback_id").to_pylist() == ["p-at-start", "p-last-us"]
    assert read(staging, "next/feedback_raw.parquet").column("feedback_id").to_pylist() == ["p-at-end"]
    assert (this.rows, following.rows) == (2, 1)
    feedback_at = read(staging).column("feedback_at").to_pylist()
    assert feedback_at == [START, END - US]


def test_rerun_gives_identical_bytes_and_bounded_row_groups(
    conn: psycopg.Connection, staging: LocalStaging
) -> None:
    # Inserted out of order: the file is ordered by feedback_id, whatever the heap order.
    for i in reversed(range(23)):
        add_feedback(
            conn,
            f"p{i:03d}",
            START + timedelta(minutes=i),
            corrected="receipt" if i % 2 else None,
            action_feedback=i % 2 == 0,
            missed=["set_payment_reminder"] if i % 4 == 0 else None,
        )

    first = extract_feedback(conn, staging, KEY, START, END, chunk_rows=5)
    data = (staging.root / KEY).read_bytes()
    second = extract_feedback(conn, staging, KEY, START, END, chunk_rows=5)

    assert (staging.root / KEY).read_bytes() == data
    assert first == second
    assert first.rows == 23 and first.bytes == len(data)
    meta = pq.ParquetFile(staging.root / KEY).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [5, 5, 5, 5, 3]
    assert read(staging).column("feedback_id").to_pylist() == [f"p{i:03d}" for i in range(23)]


def test_duplicate_corrections_ordered_by_correction_id(
    conn: psycopg.Connection, staging: LocalStaging
) -> None:
    add_feedback(conn, "p1", START + timedelta(hours=1), corrected="receipt", correction_id="c-2")
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO app.category_corrections (correction_id, prediction_id, user_id, corrected_category, "
            "created_at) VALUES (%s, %s, %s, %s, %s)",
            ("c-1", "p1", "u1", "promotion", START + timedelta(hours=2)),
        )
    conn.commit()

    extract_feedback(conn, staging, KEY, START, END)

    rows = read(staging).select(["feedback_id", "corrected_category"]).to_pylist()
    assert rows == [
        {"feedback_id": "p1", "corrected_category": "promotion"},
        {"feedback_id": "p1", "corrected_category": "receipt"},
    ]


def test_values_nulls_and_nan_are_preserved(conn: psycopg.Connection, staging: LocalStaging) -> None:
    add_feedback(
        conn,
        "p-nan",
        START + timedelta(hours=1),
        confidence=float("nan"),
        actions=None,
        corrected="receipt",
        took_action=True,
    )
    add_feedback(
        conn,
        "p-null",
        START + timedelta(hours=2),
        confidence=None,
        actions=[],
        action_feedback=True,
        missed=None,
        unnecessary=["pay_invoice"],
        note="'; DROP TABLE app.emails; --",
    )
    add_feedback(conn, "p-nobody", START + timedelta(hours=3), email=False, corrected="promotion")
    add_feedback(
        conn, "p-bytes", START + timedelta(hours=4), body=b"\xff\xfe not utf-8 \x00", corrected="receipt"
    )
    add_feedback(conn, "p-text", START + timedelta(hours=5), body="Grüße 👋 ½".encode(), corrected="receipt")

    summary = extract_feedback(conn, staging, KEY, START, END)

    table = read(staging)
    assert table.schema.equals(raw_schema())
    rows = {r["feedback_id"]: r for r in table.to_pylist()}
    assert summary.rows == 5 and set(rows) == {"p-nan", "p-null", "p-nobody", "p-bytes", "p-text"}
    assert math.isnan(rows["p-nan"]["confidence"])
    assert rows["p-nan"]["predicted_actions"] is None
    assert rows["p-nan"]["missed_actions"] is None  # no action feedback at all
    assert rows["p-nan"]["user_took_action"] is True
    assert rows["p-null"]["confidence"] is None
    assert rows["p-null"]["predicted_actions"] == []
    assert rows["p-null"]["missed_actions"] is None
    assert rows["p-null"]["unnecessary_actions"] == ["pay_invoice"]
    assert rows["p-null"]["corrected_category"] is None
    assert rows["p-null"]["note"] == "'; DROP TABLE app.emails; --"
    assert rows["p-null"]["user_took_action"] is False
    assert rows["p-nobody"]["body"] is None and rows["p-nobody"]["sender"] is None
    assert rows["p-bytes"]["body"] == b"\xff\xfe not utf-8 \x00"
    assert rows["p-text"]["body"].decode() == "Grüße 👋 ½"
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM app.emails")
        assert cur.fetchone() == (4,)


def test_timestamps_are_utc_whatever_the_session_time_zone(pg_dsn: str, staging: LocalStaging) -> None:
    with psycopg.connect(pg_dsn, options="-c TimeZone=Asia/Kolkata") as conn:
        add_feedback(
            conn,
            "p1",
            START + timedelta(hours=3, microseconds=7),
            corrected="receipt",
            predicted_at=START + timedelta(hours=2),
        )
        summary = extract_feedback(conn, staging, KEY, START, END)

    table = read(staging)
    assert str(table.schema.field("feedback_at").type) == "timestamp[us, tz=UTC]"
    row = table.to_pylist()[0]
    assert row["feedback_at"] == START + timedelta(hours=3, microseconds=7)
    assert row["predicted_at"] == START + timedelta(hours=2)
    assert summary.start == START and summary.end == END


def test_interval_given_in_another_time_zone(conn: psycopg.Connection, staging: LocalStaging) -> None:
    from zoneinfo import ZoneInfo

    add_feedback(conn, "p1", START, corrected="receipt")
    local = ZoneInfo("America/New_York")

    summary = extract_feedback(conn, staging, KEY, START.astimezone(local), END.astimezone(local))

    assert summary.rows == 1
    assert summary.start == START and summary.start.tzinfo == UTC


def test_empty_interval_writes_valid_empty_parquet(conn: psycopg.Connection, staging: LocalStaging) -> None:
    add_feedback(conn, "p-other-day", START - timedelta(days=2), corrected="receipt")

    summary = extract_feedback(conn, staging, KEY, START, END)

    table = read(staging)
    assert summary.rows == 0 and table.num_rows == 0
    assert table.schema.equals(raw_schema())
    assert summary.bytes == (staging.root / KEY).stat().st_size > 0


def test_local_staging_layout_and_connection_left_clean(
    conn: psycopg.Connection, staging: LocalStaging, tmp_path: Path
) -> None:
    add_feedback(conn, "p1", START + timedelta(hours=1), corrected="receipt")

    summary = extract_feedback(conn, staging, KEY, START, END)

    assert isinstance(summary, ExtractSummary)
    assert summary.uri == (tmp_path / "staging" / KEY).resolve().as_uri()
    assert staging.list() == [KEY]  # no temporary files left behind
    assert staging.get_bytes(KEY)[:4] == b"PAR1"
    assert summary.to_dict() == {
        "rows": 1,
        "uri": summary.uri,
        "bytes": summary.bytes,
        "start": "2026-03-01T00:00:00+00:00",
        "end": "2026-03-02T00:00:00+00:00",
    }
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_extract_feeds_validation(conn: psycopg.Connection, staging: LocalStaging) -> None:
    from feedbackloop.quality import validate_feedback

    add_feedback(conn, "p-good", START + timedelta(hours=1), corrected="receipt")
    add_feedback(conn, "p-nan", START + timedelta(hours=2), confidence=float("nan"), corrected="receipt")
    add_feedback(conn, "p-bytes", START + timedelta(hours=3), body=b"\xc3\x28", corrected="receipt")
    extract_feedback(conn, staging, KEY, START, END)

    result = validate_feedback(read(staging), START, END, max_quarantine_share=1.0)

    assert result.valid.column("feedback_id").to_pylist() == ["p-good"]
    assert result.quarantine.select(["feedback_id", "reasons"]).to_pylist() == [
        {"feedback_id": "p-bytes", "reasons": ["invalid_utf8"]},
        {"feedback_id": "p-nan", "reasons": ["confidence_nan"]},
    ]


@pytest.mark.parametrize(
    ("start", "end", "chunk_rows", "message"),
    [
        pytest.param(datetime(2026, 3, 1), END, 10, "timezone-aware", id="naive-start"),
        pytest.param(START, datetime(2026, 3, 2), 10, "timezone-aware", id="naive-end"),
        pytest.param(END, START, 10, "empty interval", id="inverted"),
        pytest.param(START, START, 10, "empty interval", id="zero-length"),
        pytest.param(START, END, 0, "chunk_rows", id="zero-chunk"),
    ],
)
def test_bad_arguments_are_rejected(
    conn: psycopg.Connection,
    staging: LocalStaging,
    start: datetime,
    end: datetime,
    chunk_rows: int,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        extract_feedback(conn, staging, KEY, start, end, chunk_rows=chunk_rows)
    assert staging.list() == []


def test_adbc_and_psycopg_paths_write_identical_bytes(conn: psycopg.Connection, tmp_path: Path) -> None:
    """The Arrow-native (ADBC COPY BINARY) reader and the psycopg cursor agree to the byte,
    on generated data with every malformed kind (invalid UTF-8, NaN, NULL lists, huge bodies)."""
    from feedbackloop.contracts import MAX_BODY_BYTES
    from feedbackloop.synth import iter_app_data, load_app_data

    load_app_data(
        conn,
        iter_app_data(400, 5, START, END, malformed_fraction=0.1, oversize_body_bytes=MAX_BODY_BYTES + 1),
    )
    conn.commit()
    outputs = {}
    for arrow in (True, False):
        staging = LocalStaging(tmp_path / f"arrow-{arrow}")
        summary = extract_feedback(conn, staging, KEY, START, END, chunk_rows=64, arrow=arrow)
        outputs[arrow] = (summary.rows, (staging.root / KEY).read_bytes())
    assert outputs[True][0] > 400
    assert outputs[True] == outputs[False]
