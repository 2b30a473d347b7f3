"""Chunked validation gives exactly the outcome of one ``validate_feedback`` call."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.unit.test_quality import CASES, END, START, TAX, make_row, make_table

from feedbackloop.quality import DataQualityError, validate_feedback
from feedbackloop.quality_stream import BatchLimits, StreamingValidator, check_summary, iter_raw_chunks


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the extract's order: feedback_id bytewise, NULL last (stable for equal ids)."""
    return sorted(rows, key=lambda r: (r["feedback_id"] is None, (r["feedback_id"] or "").encode()))


def _every_case_rows() -> list[dict[str, Any]]:
    rows = []
    for i, case in enumerate(CASES, start=1):
        overrides = dict(case.values[0])
        overrides.setdefault("note", case.id)
        rows.append(make_row(i, **overrides))
    # Runs of equal ids (2 and 3 long) that chunk boundaries would otherwise split.
    rows += [make_row(500, feedback_id="p000004", note=f"dup-of-4-{k}") for k in range(2)]
    rows += [make_row(501, feedback_id="p000009", note="dup-of-9")]
    return _sorted_rows(rows)


def _write(tmp_path: Path, rows: list[dict[str, Any]], row_group: int = 5) -> Path:
    path = tmp_path / "feedback_raw.parquet"
    pq.write_table(make_table(rows), path, row_group_size=row_group)
    return path


def _plain(table: pa.Table) -> list[dict[str, Any]]:
    """Rows with NaN spelled out (NaN != NaN would defeat the comparison)."""
    return [
        {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in table.to_pylist()
    ]


def _stream(
    path: Path, chunk_rows: int, limits: BatchLimits | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    validator = StreamingValidator(START, END, limits or BatchLimits(max_quarantine_share=1.0), TAX)
    valid, quarantine = [], []
    for chunk in iter_raw_chunks(path, chunk_rows):
        result = validator.validate(chunk)
        valid.append(result.valid)
        quarantine.append(result.quarantine)
    return pa.concat_tables(valid), pa.concat_tables(quarantine), validator.finish()


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 1000])
def test_chunks_keep_equal_ids_together_and_cover_the_file(tmp_path: Path, chunk_rows: int) -> None:
    rows = _every_case_rows()
    path = _write(tmp_path, rows)

    chunks = list(iter_raw_chunks(path, chunk_rows))

    assert [r["note"] for c in chunks for r in c.to_pylist()] == [r["note"] for r in rows]
    longest_run = 3  # p000004
    seen: set[str] = set()
    for chunk in chunks:
        ids = {i for i in chunk.column("feedback_id").to_pylist() if i is not None}
        assert not ids & seen, "an id spans two chunks"
        seen |= ids
        # At most one batch plus a run carried over from the batch before.
        assert chunk.num_rows <= chunk_rows + longest_run


# Each chunk costs one GX run (~0.4 s), hence few, small-ish chunk counts.
@pytest.mark.parametrize("chunk_rows", [5, 1000])
def test_streamed_outcome_equals_one_call(tmp_path: Path, chunk_rows: int) -> None:
    rows = _every_case_rows()
    path = _write(tmp_path, rows)
    whole = validate_feedback(make_table(rows), START, END, taxonomy=TAX, max_quarantine_share=1.0)

    valid, quarantine, summary = _stream(path, chunk_rows)

    assert _plain(valid) == _plain(whole.valid)
    assert _plain(quarantine) == _plain(whole.quarantine)
    # The first p000004 is quarantined for its own defect; the later two are still duplicates.
    assert [(r["note"], r["reasons"]) for r in quarantine.to_pylist() if r["feedback_id"] == "p000004"] == [
        ("null_required_field-email_id", ["null_required_field"]),
        ("dup-of-4-0", ["duplicate_feedback_id"]),
        ("dup-of-4-1", ["duplicate_feedback_id"]),
    ]
    for key in (
        "rows_read",
        "rows_valid",
        "rows_quarantined",
        "quarantine_share",
        "reasons",
        "passed",
        "failures",
    ):
        assert summary[key] == whole.summary[key], key
    assert summary["chunks"] == len(list(iter_raw_chunks(path, chunk_rows)))


@pytest.mark.parametrize(
    ("rows", "limits"),
    [
        pytest.param(
            [make_row(i, confidence=2.0 if i < 3 else 0.5) for i in range(40)],
            BatchLimits(max_quarantine_share=0.05),
            id="quarantine-share",
        ),
        pytest.param([make_row(i) for i in range(3)], BatchLimits(min_rows=5), id="below-min-rows"),
        pytest.param(
            [make_row(i) for i in range(25)], BatchLimits(expected_rows=(10, 20)), id="above-expected"
        ),
        pytest.param(
            [make_row(i, predicted_category="promotion" if i < 40 else "receipt") for i in range(45)],
            BatchLimits(),
            id="collapsed-category",
        ),
        pytest.param([], BatchLimits(), id="empty"),
    ],
)
def test_batch_checks_fail_like_one_call(
    tmp_path: Path, rows: list[dict[str, Any]], limits: BatchLimits
) -> None:
    path = _write(tmp_path, rows)
    whole = validate_feedback(
        make_table(rows),
        START,
        END,
        taxonomy=TAX,
        max_quarantine_share=limits.max_quarantine_share,
        min_rows=limits.min_rows,
        expected_rows=limits.expected_rows,
        max_category_share=limits.max_category_share,
    )
    validator = StreamingValidator(START, END, limits, TAX)
    for chunk in iter_raw_chunks(path, 20):
        validator.validate(chunk)

    summary = validator.finish()

    assert summary["passed"] is False
    assert summary["failures"] == whole.summary["failures"]
    for check, expected in whole.summary["batch_checks"].items():
        assert summary["batch_checks"][check] == expected, check
    with pytest.raises(DataQualityError, match="|".join(map(_escape, summary["failures"]))) as info:
        check_summary(summary)
    assert info.value.summary["rows_read"] == len(rows)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_chunks_out_of_id_order_are_refused(tmp_path: Path) -> None:
    validator = StreamingValidator(START, END, taxonomy=TAX)
    validator.validate(make_table([make_row(5), make_row(6)]))

    with pytest.raises(ValueError, match="not after the previous chunk's last id"):
        validator.validate(make_table([make_row(6, note="same id again")]))
    with pytest.raises(ValueError, match="not in ascending order"):
        StreamingValidator(START, END, taxonomy=TAX).validate(make_table([make_row(2), make_row(1)]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_quarantine_share": 1.5}, "max_quarantine_share", id="share-above-1"),
        pytest.param({"max_category_share": 0.0}, "max_category_share", id="category-share-0"),
        pytest.param({"min_rows": -1}, "min_rows", id="negative-min-rows"),
        pytest.param({"expected_rows": (5, 2)}, "expected_rows", id="inverted-range"),
    ],
)
def test_bad_limits_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchLimits(**kwargs)


def test_bad_interval_and_chunk_size_are_rejected(tmp_path: Path) -> None:
    from datetime import datetime

    with pytest.raises(ValueError, match="timezone-aware"):
        StreamingValidator(datetime(2026, 3, 1), END)
    with pytest.raises(ValueError, match="empty interval"):
        StreamingValidator(END, START)
    with pytest.raises(ValueError, match="chunk_rows"):
        list(iter_raw_chunks(_write(tmp_path, [make_row(1)]), 0))
    validator = StreamingValidator(START, END, taxonomy=TAX)
    validator.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        validator.validate(make_table([make_row(1)]))


def test_pipeline_validate_streams_chunks_with_the_whole_table_outcome(tmp_path: Path) -> None:
    """The retraining DAG's validate stage (chunked) stages what one whole-table call decides."""
    import json

    from feedbackloop import pipeline
    from feedbackloop.staging import LocalStaging, read_parquet

    rows = _every_case_rows()
    whole = validate_feedback(make_table(rows), START, END, taxonomy=TAX, max_quarantine_share=1.0)
    staging = LocalStaging(tmp_path / "staging")
    run = pipeline.RunContext("feedback_retraining", "manual__1", START, END)
    staging.put_file(run.key(pipeline.RAW), _write(tmp_path, rows))
    settings = pipeline.ValidationSettings(max_quarantine_share=1.0)

    summary = pipeline.validate(staging, run, settings, chunk_rows=4)

    assert summary["chunks"] > 1
    assert summary["rows_read"] == len(rows) == summary["rows_valid"] + summary["rows_quarantined"]
    assert summary["reasons"] == whole.summary["reasons"]
    assert _plain(read_parquet(staging, run.key(pipeline.VALID))) == _plain(whole.valid)
    assert _plain(read_parquet(staging, run.key(pipeline.QUARANTINE))) == _plain(whole.quarantine)
    gx = json.loads(staging.get_bytes(run.key(pipeline.GX_RESULT)))
    assert len(gx["chunks"]) == summary["chunks"] and gx["success"] is False  # bad rows were found

    # The default quarantine limit (5%) fails the gate, after staging the evidence.
    with pytest.raises(DataQualityError, match="quarantine share .* exceeds the limit 5.0%"):
        pipeline.validate(staging, run, pipeline.ValidationSettings(), chunk_rows=4)
    assert staging.exists(run.key(pipeline.QUARANTINE))
