"""The daily export against a real PostgreSQL: formats agree, counts reconcile, bytes repeat,
PII is gone, and a failing day exports nothing."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from tests.integration.test_extract import add_feedback

from feedbackloop.contracts import FEEDBACK_COLUMNS, MAX_BODY_BYTES
from feedbackloop.export import (
    DATA_FILES,
    MANIFEST,
    QUARANTINE_BODY_CHARS,
    ExportRejected,
    ExportSettings,
    export_feedback,
    export_keys,
    export_schema,
    quarantine_export_schema,
)
from feedbackloop.pii import redact
from feedbackloop.quality_stream import BatchLimits
from feedbackloop.staging import LocalStaging
from feedbackloop.synth import iter_app_data, load_app_data

DAY = date(2026, 3, 2)
DAY_START = datetime(2026, 3, 2, tzinfo=UTC)
LENIENT = ExportSettings(limits=BatchLimits(max_quarantine_share=0.5))

# PII planted in every free-text column of one row; none of it may leave.
CANARY = {
    "email": "jane.doe.canary@gmail.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "GB82 WEST 1234 5698 7654 32",
}
CANARY_TEXT = "Pay with card {card} or IBAN {iban}; mail {email} or call {phone}.".format(**CANARY)


@pytest.fixture
def day_db(pg_dsn: str) -> str:
    """Three days of feedback (the exported day in the middle), 4 % malformed, one 5 MB body,
    and a row carrying PII in every text column."""
    with psycopg.connect(pg_dsn) as conn:
        load_app_data(
            conn,
            iter_app_data(
                450, 12, DAY_START - timedelta(days=1), DAY_START + timedelta(days=2), malformed_fraction=0.04
            ),
        )
        add_feedback(
            conn,
            "p-canary",
            DAY_START + timedelta(hours=5),
            body=CANARY_TEXT.encode(),
            corrected="receipt",
            action_feedback=True,
            note=f"my number is {CANARY['phone']}",
        )
        conn.execute(
            "UPDATE app.emails SET sender = %s, subject = %s WHERE email_id = 'e-p-canary'",
            (f"Jane <{CANARY['email']}>", f"card {CANARY['card']}"),
        )
        # Empty strings and empty lists next to NULLs: the CSV must keep them apart.
        add_feedback(
            conn,
            "p-empty-strings",
            DAY_START + timedelta(hours=6),
            corrected="receipt",
            action_feedback=True,
            note="",
            missed=[],
            unnecessary=None,
        )
        conn.execute("UPDATE app.emails SET subject = '' WHERE email_id = 'e-p-empty-strings'")
        conn.commit()
    return pg_dsn


def _export(dsn: str, root: Path, settings: ExportSettings = LENIENT, day: date = DAY) -> Any:
    staging = LocalStaging(root)
    with psycopg.connect(dsn) as conn:
        summary = export_feedback(conn, staging, day, settings)
    return staging, summary


def _files(staging: LocalStaging, day: date = DAY) -> dict[str, bytes]:
    return {name: staging.get_bytes(key) for name, key in export_keys(day).items()}


def _day_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
            (DAY_START, DAY_START + timedelta(days=1)),
        ).fetchone()
    return n


_PG_TYPES = {
    "string": "text",
    "binary": "text",
    "float64": "double precision",
    "bool": "boolean",
    "list<string>": "jsonb",
    "timestamp[us, UTC]": "timestamptz",
}


def _load_csv_into_postgres(dsn: str, data: bytes) -> list[dict[str, Any]]:
    """Load the CSV the way the docs promise (COPY ... (FORMAT csv, HEADER)) and read it back:
    PostgreSQL, not the test, decides what is NULL, "" and each value."""
    columns = ", ".join(f'"{n}" {_PG_TYPES[k]}' for n, k in FEEDBACK_COLUMNS)
    names = ", ".join(f'"{n}"' for n, _ in FEEDBACK_COLUMNS)
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TEMP TABLE exported (row_no bigserial, {columns})")
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY exported ({names}) FROM STDIN (FORMAT csv, HEADER)") as copy,
        ):
            copy.write(data)
        cur = conn.execute(f"SELECT {names} FROM exported ORDER BY row_no")
        return [dict(zip([n for n, _ in FEEDBACK_COLUMNS], row, strict=True)) for row in cur.fetchall()]


def _expected_text(kind: str, value: Any) -> Any:
    """A Parquet value as the JSON export spells it."""
    if value is None:
        return None
    if kind.startswith("timestamp"):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if kind == "float64" and not math.isfinite(value):
        return None
    return value


def test_formats_agree_reconcile_and_match_the_manifest(day_db: str, tmp_path: Path) -> None:
    staging, summary = _export(day_db, tmp_path / "staging")
    files = _files(staging)
    manifest = json.loads(files[MANIFEST])

    rows = _day_rows(day_db)
    assert summary.rows_read == manifest["rows"]["read"] == rows > 100
    assert summary.rows_exported + summary.rows_quarantined == rows
    assert manifest["rows"] == {
        "read": rows,
        "exported": summary.rows_exported,
        "quarantined": summary.rows_quarantined,
    }
    assert summary.rows_quarantined == sum(manifest["quarantine"]["reasons"].values()) > 0
    for name in DATA_FILES:
        info = manifest["files"][name]
        assert info["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert info["bytes"] == len(files[name])
    assert sorted(staging.list()) == sorted(export_keys(DAY).values())

    table = pq.read_table(staging.root / export_keys(DAY)["feedback.parquet"])
    assert table.schema.equals(export_schema())
    parquet_rows = table.to_pylist()
    jsonl = [json.loads(line) for line in files["feedback.jsonl"].decode().splitlines()]
    csv_rows = _load_csv_into_postgres(day_db, files["feedback.csv"])
    names = [n for n, _ in FEEDBACK_COLUMNS]
    kinds = dict(FEEDBACK_COLUMNS)
    assert files["feedback.csv"].decode().split("\n", 1)[0] == ",".join(names)
    assert (
        len(parquet_rows)
        == len(jsonl)
        == len(csv_rows)
        == summary.rows_exported
        == manifest["files"]["feedback.csv"]["rows"]
    )
    assert [r["feedback_id"] for r in parquet_rows] == sorted(r["feedback_id"] for r in parquet_rows)
    for prow, jrow, crow in zip(parquet_rows, jsonl, csv_rows, strict=True):
        assert list(jrow) == names
        assert jrow == {n: _expected_text(kinds[n], prow[n]) for n in names}
        for n in names:
            if kinds[n] == "float64" and prow[n] is not None and math.isnan(prow[n]):
                assert math.isnan(crow[n]), n
            else:
                assert crow[n] == prow[n], (n, crow[n], prow[n])
    (empty,) = [r for r in csv_rows if r["feedback_id"] == "p-empty-strings"]
    assert (empty["subject"], empty["note"], empty["missed_actions"], empty["unnecessary_actions"]) == (
        "",
        "",
        [],
        None,
    )
    assert any(r["note"] is None for r in csv_rows)

    quarantine = pq.read_table(staging.root / export_keys(DAY)["quarantine.parquet"])
    assert quarantine.schema.equals(quarantine_export_schema())
    assert quarantine.num_rows == summary.rows_quarantined
    assert all(reasons for reasons in quarantine.column("reasons").to_pylist())


def test_pii_never_leaves(day_db: str, tmp_path: Path) -> None:
    staging, summary = _export(day_db, tmp_path / "staging")
    files = _files(staging)

    for name in ("feedback.jsonl", "feedback.csv", MANIFEST):
        for secret in CANARY.values():
            assert secret.encode() not in files[name], (name, secret)
    table = pq.read_table(staging.root / export_keys(DAY)["feedback.parquet"])
    (row,) = [r for r in table.to_pylist() if r["feedback_id"] == "p-canary"]
    assert row["body"] == redact(CANARY_TEXT)[0]
    assert "[CARD]" in row["body"] and "[IBAN]" in row["body"] and "[EMAIL]" in row["body"]
    assert row["sender"] == "Jane <[EMAIL]@gmail.com>"  # the sender's domain is kept
    assert row["subject"] == "card [CARD]" and row["note"] == "my number is [PHONE]"
    replaced = summary.manifest["redaction"]["replaced"]["feedback"]
    assert replaced["card"] >= 2 and replaced["iban"] >= 1 and replaced["phone"] >= 2


def test_rerun_and_other_chunk_sizes_write_identical_bytes(day_db: str, tmp_path: Path) -> None:
    first, _ = _export(day_db, tmp_path / "a")
    again, _ = _export(day_db, tmp_path / "a")  # same place: overwritten with the same bytes
    small_chunks, _ = _export(
        day_db,
        tmp_path / "b",
        ExportSettings(limits=LENIENT.limits, extract_chunk_rows=7, validate_chunk_rows=40),
    )

    assert _files(first) == _files(again) == _files(small_chunks)
    assert len(first.list()) == 5


def test_quarantine_keeps_bytes_and_cuts_bodies_outside_pii(pg_dsn: str, tmp_path: Path) -> None:
    head = "A" * (QUARANTINE_BODY_CHARS - 10)
    email = "jane.doe.canary@gmail.com"  # spans the cut at QUARANTINE_BODY_CHARS
    long_body = (head + " " + email + " " + "B" * 20_000).encode()
    with psycopg.connect(pg_dsn) as conn:
        for i in range(40):
            add_feedback(conn, f"p-ok-{i:02d}", DAY_START + timedelta(minutes=i), corrected="receipt")
        add_feedback(
            conn,
            "p-invalid",
            DAY_START + timedelta(hours=2),
            body=b"\xff\xfe call +44 20 7946 0958 \xc3",
            corrected="receipt",
        )
        add_feedback(
            conn, "p-huge", DAY_START + timedelta(hours=3), body=b"x" * (5 * 1024 * 1024), corrected="receipt"
        )
        add_feedback(
            conn,
            "p-long-nan",
            DAY_START + timedelta(hours=4),
            body=long_body,
            confidence=float("nan"),
            corrected="receipt",
        )

    # Hand-made rows share one category: the collapse check would (rightly) reject them.
    settings = ExportSettings(limits=BatchLimits(max_quarantine_share=0.5, max_category_share=1.0))
    staging, summary = _export(pg_dsn, tmp_path / "staging", settings)

    quarantine = {
        r["feedback_id"]: r
        for r in pq.read_table(staging.root / export_keys(DAY)["quarantine.parquet"]).to_pylist()
    }
    assert summary.rows_quarantined == 3 and summary.rows_exported == 40
    assert quarantine["p-invalid"]["body"] == b"\xff\xfe call [PHONE] \xc3"  # undecodable bytes kept
    assert quarantine["p-invalid"]["reasons"] == ["invalid_utf8"]
    assert quarantine["p-huge"]["body"] == b"x" * QUARANTINE_BODY_CHARS
    assert quarantine["p-huge"]["body_bytes"] == 5 * 1024 * 1024 > MAX_BODY_BYTES
    assert quarantine["p-huge"]["reasons"] == ["body_too_large"]
    long_row = quarantine["p-long-nan"]
    assert long_row["body"] == (head + " ").encode()  # cut before the e-mail, not through it
    assert long_row["body_bytes"] == len(long_body) and long_row["reasons"] == ["confidence_nan"]
    assert math.isnan(long_row["confidence"])


def test_a_day_failing_the_gate_exports_nothing(day_db: str, tmp_path: Path) -> None:
    staging = LocalStaging(tmp_path / "staging")
    strict = ExportSettings(limits=BatchLimits(max_quarantine_share=0.0))

    with (
        psycopg.connect(day_db) as conn,
        pytest.raises(ExportRejected, match=r"quarantine share .* exceeds the limit 0\.0%") as info,
    ):
        export_feedback(conn, staging, DAY, strict)

    assert staging.list() == []
    assert info.value.summary["rows_quarantined"] > 0
    assert info.value.summary["rows_read"] == _day_rows(day_db)
    assert info.value.day == DAY


def test_an_empty_day_is_rejected_unless_allowed(pg_dsn: str, tmp_path: Path) -> None:
    staging = LocalStaging(tmp_path / "staging")
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(ExportRejected, match="row count 0 is below the minimum 1"):
            export_feedback(conn, staging, DAY)
        assert staging.list() == []
        summary = export_feedback(conn, staging, DAY, ExportSettings(limits=BatchLimits(min_rows=0)))

    files = _files(staging)
    assert summary.rows_read == 0
    assert files["feedback.jsonl"] == b""
    assert files["feedback.csv"].decode() == ",".join(n for n, _ in FEEDBACK_COLUMNS) + "\n"
    assert pq.read_table(staging.root / export_keys(DAY)["feedback.parquet"]).num_rows == 0
    assert json.loads(files[MANIFEST])["rows"] == {"read": 0, "exported": 0, "quarantined": 0}
