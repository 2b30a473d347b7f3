"""Which day an export run covers, and where its files go (pure functions, no services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from feedbackloop.export import (
    DATA_FILES,
    MANIFEST,
    ExportSettings,
    day_interval,
    export_keys,
    parse_day,
    resolve_export_day,
)

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("day", "interval_start", "expected"),
    [
        pytest.param("2026-03-01", None, date(2026, 3, 1), id="param-day"),
        pytest.param(" 2026-03-01 ", None, date(2026, 3, 1), id="param-day-padded"),
        pytest.param(date(2026, 3, 1), None, date(2026, 3, 1), id="date-object"),
        pytest.param(None, datetime(2026, 11, 26, 1, 0, tzinfo=UTC), date(2026, 11, 26), id="scheduled-run"),
        pytest.param("", datetime(2026, 11, 26, 1, 0, tzinfo=UTC), date(2026, 11, 26), id="empty-param"),
        pytest.param(
            "None", datetime(2026, 11, 26, 1, 0, tzinfo=UTC), date(2026, 11, 26), id="rendered-none"
        ),
        pytest.param(
            None, datetime(2026, 11, 26, 0, 30, tzinfo=PLUS_2), date(2026, 11, 25), id="other-time-zone"
        ),
        pytest.param(
            "2026-03-01", datetime(2026, 11, 26, 1, 0, tzinfo=UTC), date(2026, 3, 1), id="param-wins"
        ),
        pytest.param("2026-11-26", None, date(2026, 11, 26), id="yesterday-is-over"),
    ],
)
def test_resolve_export_day(day: object, interval_start: datetime | None, expected: date) -> None:
    assert resolve_export_day(day, interval_start, NOW) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "interval_start", "now", "message"),
    [
        pytest.param("2026-3-1", None, NOW, "YYYY-MM-DD", id="unpadded"),
        pytest.param("20260301", None, NOW, "YYYY-MM-DD", id="basic-format"),
        pytest.param("2026-03-01T00:00:00", None, NOW, "YYYY-MM-DD", id="datetime-text"),
        pytest.param("2026-02-30", None, NOW, "not a calendar day", id="no-such-day"),
        pytest.param("yesterday", None, NOW, "YYYY-MM-DD", id="word"),
        pytest.param(datetime(2026, 3, 1, tzinfo=UTC), None, NOW, "not a datetime", id="datetime-object"),
        pytest.param(None, None, NOW, "no day to export", id="nothing-given"),
        pytest.param(None, datetime(2026, 3, 1, 1, 0), NOW, "timezone-aware", id="naive-interval"),
        pytest.param("2026-11-27", None, NOW, "not over", id="today"),
        pytest.param("2027-01-01", None, NOW, "not over", id="future"),
        pytest.param("2026-03-01", None, datetime(2026, 11, 27), "timezone-aware", id="naive-now"),
    ],
)
def test_resolve_export_day_rejects(
    day: object, interval_start: datetime | None, now: datetime, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_export_day(day, interval_start, now)  # type: ignore[arg-type]


def test_a_day_ending_exactly_now_is_over() -> None:
    assert resolve_export_day("2026-11-26", now=datetime(2026, 11, 27, tzinfo=UTC)) == date(2026, 11, 26)


def test_day_interval_is_the_utc_calendar_day() -> None:
    assert day_interval(date(2026, 3, 29)) == (
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),  # 24 h even on a European DST switch day
    )


def test_export_keys_layout() -> None:
    keys = export_keys(date(2026, 3, 1), prefix="/exports/")
    assert keys == {name: f"exports/2026-03-01/{name}" for name in (*DATA_FILES, MANIFEST)}
    assert set(keys) == {
        "feedback.jsonl",
        "feedback.csv",
        "feedback.parquet",
        "quarantine.parquet",
        "manifest.json",
    }


def test_parse_day_accepts_a_date() -> None:
    assert parse_day(date(2026, 1, 31)) == date(2026, 1, 31)


@pytest.mark.parametrize("field", ["extract_chunk_rows", "validate_chunk_rows"])
def test_settings_reject_empty_chunks(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ExportSettings(**{field: 0})
