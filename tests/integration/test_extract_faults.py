"""Extraction under faults, through a real PostgreSQL: dropped connections, huge and
undecodable bodies, and every defect the generator injects.

A loopback TCP proxy (:mod:`tests.fakes.tcp_proxy`) sits between psycopg and the server so
a fault lands mid-stream: the backend is terminated with ``pg_terminate_backend`` from a
second connection once part of the result has been forwarded, or the network is cut.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest
from tests.fakes.tcp_proxy import TcpProxy
from tests.integration.test_extract import add_feedback

from feedbackloop.contracts import MAX_BODY_BYTES, Reason
from feedbackloop.extract import extract_feedback
from feedbackloop.quality import validate_feedback
from feedbackloop.staging import LocalStaging
from feedbackloop.synth import AppDataGenerator, iter_app_data, load_app_data

START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
KEY = "feedback_retraining/run1/feedback_raw.parquet"
FIVE_MB = 5 * 1024 * 1024


def _dsn_via(dsn: str, port: int) -> str:
    from urllib.parse import urlparse

    u = urlparse(dsn)
    return u._replace(netloc=f"{u.username}@127.0.0.1:{port}").geturl()


@pytest.fixture
def seeded(pg_dsn: str) -> str:
    """300 feedback items (3 % malformed) of one day, ~300 KB of result."""
    with psycopg.connect(pg_dsn) as conn:
        load_app_data(
            conn,
            iter_app_data(
                300, 21, START, END, malformed_fraction=0.03, oversize_body_bytes=MAX_BODY_BYTES + 1
            ),
        )
    return pg_dsn


@pytest.fixture
def proxy(pg_server: Any):
    with TcpProxy(("127.0.0.1", pg_server.port)) as p:
        yield p


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp folder for the extract's scratch files, to check they are cleaned up."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _reference_bytes(dsn: str, tmp_path: Path, chunk_rows: int) -> bytes:
    """An undisturbed extract straight to the server (row groups follow chunk_rows)."""
    staging = LocalStaging(tmp_path / "reference")
    with psycopg.connect(dsn) as conn:
        extract_feedback(conn, staging, KEY, START, END, chunk_rows=chunk_rows)
    return staging.get_bytes(KEY)


def _terminate(admin_dsn: str, pid: int) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        # The timeout form waits until the backend is gone (PostgreSQL >= 14).
        (done,) = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert done, f"backend {pid} did not terminate"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("fault", "arrow", "message"),
    [
        # Whether the client reads the server's FATAL before the socket is reset is a TCP race.
        pytest.param(
            "terminate_backend",
            False,
            "administrator command|closed the connection",
            id="psycopg-pg_terminate_backend-mid-stream",
        ),
        pytest.param(
            "network_cut", False, "closed|lost|EOF|consuming input", id="psycopg-network-cut-mid-stream"
        ),
        # The ADBC path's COPY makes the server write the whole (here ~1 MB) result into the
        # socket buffers at once, so a backend killed after 40 KB has already sent everything;
        # a cut of the connection is the fault that lands mid-stream there.
        pytest.param(
            "network_cut", True, "closed|lost|EOF|consuming input", id="adbc-network-cut-mid-stream"
        ),
    ],
)
def test_connection_dropped_mid_extract_fails_cleanly_and_retry_gives_same_bytes(
    fault: str, message: str, arrow: bool, seeded: str, proxy: TcpProxy, scratch: Path, tmp_path: Path
) -> None:
    reference = _reference_bytes(seeded, tmp_path, chunk_rows=5)
    staging = LocalStaging(tmp_path / "staging")
    via_proxy = _dsn_via(seeded, proxy.port)

    conn = psycopg.connect(via_proxy)
    try:
        if fault == "terminate_backend":
            pid = conn.info.backend_pid
            proxy.on_downstream_bytes(40_000, lambda: _terminate(seeded, pid))
        else:
            # Applies to connections opened from now on: reconnect through the armed proxy.
            conn.close()
            proxy.cut_downstream_after(40_000)
            conn = psycopg.connect(via_proxy)
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match=message):
            extract_feedback(conn, staging, KEY, START, END, chunk_rows=5, arrow=arrow)
        assert time.monotonic() - started < 20  # failed, not stalled
    finally:
        conn.close()

    if fault == "terminate_backend":
        assert proxy.triggered.is_set() and proxy.trigger_error is None, proxy.trigger_error
    assert staging.list() == []  # no artifact, not even a partial one
    assert list(scratch.iterdir()) == []  # scratch files removed

    proxy.clear()
    with psycopg.connect(via_proxy) as retry_conn:
        summary = extract_feedback(retry_conn, staging, KEY, START, END, chunk_rows=5, arrow=arrow)
    assert staging.get_bytes(KEY) == reference
    assert summary.rows == pq.read_metadata(staging.root / KEY).num_rows > 300


@pytest.mark.timeout(120)
def test_huge_bodies_and_invalid_utf8_neither_crash_nor_stall(pg_dsn: str, tmp_path: Path) -> None:
    at = START + timedelta(hours=1)
    cases = {
        "p-5mb-text": ("a" * 1000 + "\n").encode() * (FIVE_MB // 1001 + 1),
        "p-5mb-invalid": b"\xff" + ("ok " * (FIVE_MB // 3)).encode() + b"\xc3",
        "p-limit-exact": b"x" * MAX_BODY_BYTES,
        "p-limit-plus-1": b"x" * (MAX_BODY_BYTES + 1),
        "p-cp1252": "Merci et à bientôt — 5 €".encode("cp1252"),
        "p-cut-char": "Grüße".encode()[:-4],
        "p-nul-bytes": b"before \x00 after",
        "p-overlong": b"\xc0\xaf overlong slash",
        "p-surrogate": b"\xed\xa0\x80 encoded surrogate",
        "p-ok": "Grüße 👋".encode(),
    }
    with psycopg.connect(pg_dsn) as conn:
        for i, (pid, body) in enumerate(cases.items()):
            add_feedback(conn, pid, at + timedelta(minutes=i), body=body, corrected="receipt")
        staging = LocalStaging(tmp_path / "staging")
        started = time.monotonic()
        summary = extract_feedback(conn, staging, KEY, START, END, chunk_rows=2)
    raw = pq.read_table(staging.root / KEY)
    result = validate_feedback(raw, START, END, max_quarantine_share=1.0)
    elapsed = time.monotonic() - started

    assert summary.rows == len(cases) == raw.num_rows
    assert elapsed < 60, f"extract + validate took {elapsed:.1f} s"
    bodies = dict(zip(raw.column("feedback_id").to_pylist(), raw.column("body").to_pylist(), strict=True))
    assert bodies == cases  # bytes kept exactly, NULs and invalid sequences included
    reasons = {
        r["feedback_id"]: r["reasons"]
        for r in result.quarantine.select(["feedback_id", "reasons"]).to_pylist()
    }
    assert reasons == {
        "p-5mb-text": ["body_too_large"],
        "p-5mb-invalid": ["body_too_large", "invalid_utf8"],
        "p-limit-plus-1": ["body_too_large"],
        "p-cp1252": ["invalid_utf8"],
        "p-cut-char": ["invalid_utf8"],
        "p-overlong": ["invalid_utf8"],
        "p-surrogate": ["invalid_utf8"],
    }
    assert sorted(result.valid.column("feedback_id").to_pylist()) == ["p-limit-exact", "p-nul-bytes", "p-ok"]


@pytest.mark.timeout(120)
def test_every_generator_defect_is_quarantined_with_its_reason_and_nothing_valid_is(
    pg_dsn: str, tmp_path: Path
) -> None:
    # 25 % malformed over 400 items: 100 defects, every kind 10 times (the generator balances
    # kinds per block of 10); unlabeled predictions must not show up at all.
    gen = AppDataGenerator(
        400,
        8,
        START,
        END,
        malformed_fraction=0.25,
        unlabeled_ratio=0.1,
        oversize_body_bytes=MAX_BODY_BYTES + 1_000,
    )
    items = list(gen)
    with psycopg.connect(pg_dsn) as conn:
        load_app_data(conn, iter(items))
        staging = LocalStaging(tmp_path / "staging")
        summary = extract_feedback(conn, staging, KEY, START, END, chunk_rows=64)
    result = validate_feedback(pq.read_table(staging.root / KEY), START, END, max_quarantine_share=1.0)

    expected_quarantine: list[tuple[str, tuple[str, ...]]] = []
    expected_valid: Counter[str] = Counter()
    for item in items:
        if item.feedback_id is None:
            continue
        reason = item.expected_reason
        if reason is Reason.DUPLICATE_FEEDBACK_ID:
            expected_valid[item.feedback_id] += 1  # the first occurrence stays
            expected_quarantine.append((item.feedback_id, (reason.value,)))
        elif reason is not None:
            expected_quarantine += [(item.feedback_id, (reason.value,))] * item.feedback_rows
        else:
            expected_valid[item.feedback_id] += item.feedback_rows
    got_quarantine = [(r["feedback_id"], tuple(r["reasons"])) for r in result.quarantine.to_pylist()]

    assert Counter(got_quarantine) == Counter(expected_quarantine)
    assert Counter(result.valid.column("feedback_id").to_pylist()) == expected_valid
    # Reconciliation: the view yields one row per feedback plus one per duplicate.
    rows_expected = sum(item.feedback_rows for item in items)
    assert summary.rows == result.summary["rows_read"] == rows_expected
    assert result.summary["rows_valid"] + result.summary["rows_quarantined"] == rows_expected
    assert result.summary["reasons"] == {r.value: 10 for r in Reason}
    assert Counter(item.expected_reason for item in items if item.expected_reason) == {r: 10 for r in Reason}


def test_consecutive_intervals_neither_lose_nor_double_count(pg_dsn: str, tmp_path: Path) -> None:
    three_days = (START, START + timedelta(days=3))
    with psycopg.connect(pg_dsn) as conn:
        load_app_data(conn, iter_app_data(600, 4, *three_days, malformed_fraction=0.0))
        # Rows exactly on the day boundaries (the end instant belongs to the next day).
        for day in range(4):
            add_feedback(conn, f"p-edge-{day}", START + timedelta(days=day), corrected="receipt")
        (total,) = conn.execute(
            "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
            (START, START + timedelta(days=3)),
        ).fetchone()
        staging = LocalStaging(tmp_path / "staging")
        ids: list[str] = []
        for day in range(3):
            key = f"day{day}/feedback_raw.parquet"
            extract_feedback(conn, staging, key, START + timedelta(days=day), START + timedelta(days=day + 1))
            ids += pq.read_table(staging.root / key).column("feedback_id").to_pylist()

    assert len(ids) == total == 600 + 3
    assert len(set(ids)) == len(ids)
    assert "p-edge-3" not in ids and {"p-edge-0", "p-edge-1", "p-edge-2"} <= set(ids)
