"""The data-quality gate: row reason codes, batch checks and the GX suite."""

from __future__ import annotations

import copy
import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackloop.contracts import MAX_BODY_BYTES, REQUIRED_COLUMNS, Reason, raw_schema, valid_schema
from feedbackloop.golden import default_taxonomy
from feedbackloop.paths import expectations_dir
from feedbackloop.quality import (
    CATEGORY_SHARE_MIN_ROWS,
    DataQualityError,
    ValidationResult,
    load_suite,
    quarantine_schema,
    validate_feedback,
)

TAX = default_taxonomy()
START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1)
US = timedelta(microseconds=1)
CATEGORIES = TAX.category_ids
ACTIONS = TAX.actions


def make_row(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid raw feedback record; ``overrides`` replace fields."""
    feedback_at = START + timedelta(minutes=n % 1400)
    row: dict[str, Any] = {
        "feedback_id": f"p{n:06d}",
        "prediction_id": f"p{n:06d}",
        "email_id": f"e{n:06d}",
        "user_id": "u1",
        "model_version": "v1",
        "variant": "champion",
        "sender": "billing@example.com",
        "subject": "Your bill",
        "body": f"Your bill #{n} of $42 is due on Friday.".encode(),
        "predicted_category": CATEGORIES[n % len(CATEGORIES)],
        "confidence": 0.9,
        "predicted_actions": ["pay_invoice"],
        "latency_ms": 120.0,
        "predicted_at": feedback_at - timedelta(minutes=5),
        "corrected_category": None,
        "missed_actions": None,
        "unnecessary_actions": None,
        "note": None,
        "user_took_action": False,
        "feedback_at": feedback_at,
    }
    row.update(overrides)
    return row


def make_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=raw_schema())


def validate(rows: list[dict[str, Any]], **kwargs: Any) -> ValidationResult:
    kwargs.setdefault("taxonomy", TAX)
    return validate_feedback(make_table(rows), START, END, **kwargs)


# ------------------------------------------------------------------ one row per rule

SQL_TEXT = "Robert'); DROP TABLE app.emails;-- \" \\ % _ $1 ${x} /* */ ; --"
CASES = [
    # (case id, row overrides, expected reason codes; [] = valid)
    pytest.param({}, [], id="valid-baseline"),
    pytest.param({"feedback_id": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-feedback_id"),
    pytest.param(
        {"prediction_id": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-prediction_id"
    ),
    pytest.param({"email_id": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-email_id"),
    pytest.param({"user_id": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-user_id"),
    pytest.param(
        {"predicted_category": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-category"
    ),
    pytest.param({"confidence": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-confidence"),
    pytest.param({"predicted_at": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-predicted_at"),
    pytest.param({"feedback_at": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-feedback_at"),
    pytest.param({"body": None}, [Reason.NULL_REQUIRED_FIELD], id="null_required_field-body"),
    pytest.param({"predicted_category": "bills"}, [Reason.UNKNOWN_CATEGORY], id="unknown_category-predicted"),
    pytest.param(
        {"corrected_category": "Receipt"}, [Reason.UNKNOWN_CATEGORY], id="unknown_category-corrected"
    ),
    pytest.param({"corrected_category": "receipt"}, [], id="valid-corrected-category"),
    pytest.param({"confidence": 1.5}, [Reason.CONFIDENCE_OUT_OF_RANGE], id="confidence_out_of_range-high"),
    pytest.param({"confidence": -0.01}, [Reason.CONFIDENCE_OUT_OF_RANGE], id="confidence_out_of_range-low"),
    pytest.param(
        {"confidence": math.inf}, [Reason.CONFIDENCE_OUT_OF_RANGE], id="confidence_out_of_range-inf"
    ),
    pytest.param({"confidence": 0.0}, [], id="valid-confidence-0"),
    pytest.param({"confidence": 1.0}, [], id="valid-confidence-1"),
    pytest.param({"confidence": math.nan}, [Reason.CONFIDENCE_NAN], id="confidence_nan"),
    pytest.param(
        {"predicted_actions": ["pay_invoice", "fly_to_moon"]},
        [Reason.UNKNOWN_ACTION],
        id="unknown_action-predicted",
    ),
    pytest.param({"missed_actions": ["PAY_INVOICE"]}, [Reason.UNKNOWN_ACTION], id="unknown_action-missed"),
    pytest.param({"unnecessary_actions": [None]}, [Reason.UNKNOWN_ACTION], id="unknown_action-null-entry"),
    pytest.param(
        {"predicted_actions": None, "missed_actions": [], "unnecessary_actions": ["delete"]},
        [],
        id="valid-null-and-empty-action-lists",
    ),
    pytest.param({"feedback_id": "dup"}, [Reason.DUPLICATE_FEEDBACK_ID], id="duplicate_feedback_id"),
    pytest.param(
        {"feedback_at": END, "predicted_at": START},
        [Reason.TIMESTAMP_OUT_OF_RANGE],
        id="timestamp_out_of_range-at-end",
    ),
    pytest.param(
        {"feedback_at": START - US, "predicted_at": START - timedelta(hours=1)},
        [Reason.TIMESTAMP_OUT_OF_RANGE],
        id="timestamp_out_of_range-before-start",
    ),
    pytest.param(
        {"feedback_at": START + timedelta(hours=1), "predicted_at": START + timedelta(hours=2)},
        [Reason.TIMESTAMP_OUT_OF_RANGE],
        id="timestamp_out_of_range-predicted-after-feedback",
    ),
    pytest.param({"feedback_at": START, "predicted_at": START}, [], id="valid-at-start-predicted-same-time"),
    pytest.param({"feedback_at": END - US, "predicted_at": START}, [], id="valid-last-microsecond"),
    pytest.param({"body": b""}, [Reason.EMPTY_BODY], id="empty_body-zero-bytes"),
    pytest.param({"body": b" \t\r\n "}, [Reason.EMPTY_BODY], id="empty_body-whitespace"),
    pytest.param(
        {"body": "\u3000\u00a0\u2028".encode()}, [Reason.EMPTY_BODY], id="empty_body-unicode-whitespace"
    ),
    pytest.param({"body": b"a" * (MAX_BODY_BYTES + 1)}, [Reason.BODY_TOO_LARGE], id="body_too_large"),
    pytest.param({"body": b"a" * MAX_BODY_BYTES}, [], id="valid-body-at-limit"),
    pytest.param({"body": b"caf\xe9"}, [Reason.INVALID_UTF8], id="invalid_utf8-latin1"),
    pytest.param({"body": b"\xed\xa0\x80 surrogate"}, [Reason.INVALID_UTF8], id="invalid_utf8-surrogate"),
    pytest.param({"body": b"\xff"}, [Reason.INVALID_UTF8], id="invalid_utf8-lone-byte"),
    pytest.param(
        {"body": SQL_TEXT.encode(), "subject": SQL_TEXT, "note": SQL_TEXT, "sender": "a'b\"@x;--"},
        [],
        id="valid-sql-metacharacters",
    ),
    pytest.param(
        {"body": "Grüße aus Köln — 東京の会議は明日です。 مرحبا".encode()}, [], id="valid-non-english"
    ),
    pytest.param({"body": "Thanks 🎉👍🏽 👨‍👩‍👧 \u200b".encode()}, [], id="valid-emoji"),
    pytest.param(
        {"user_id": None, "predicted_category": "bills", "confidence": math.nan, "body": b"\x80"},
        [Reason.NULL_REQUIRED_FIELD, Reason.UNKNOWN_CATEGORY, Reason.CONFIDENCE_NAN, Reason.INVALID_UTF8],
        id="every-applicable-reason",
    ),
]


@pytest.fixture(scope="module")
def cases_result() -> tuple[ValidationResult, list[dict[str, Any]]]:
    """All cases validated in one batch (one GX run), each row tagged by its case id in ``note``."""
    rows = [make_row(0, feedback_id="dup", note="first-dup")]
    for i, case in enumerate(CASES, start=1):
        overrides = dict(case.values[0])
        overrides.setdefault("note", case.id)
        rows.append(make_row(i, **overrides))
    return validate(rows, max_quarantine_share=1.0), rows


@pytest.mark.parametrize(("overrides", "expected"), CASES)
def test_row_rule(
    cases_result: tuple[ValidationResult, list[dict[str, Any]]],
    request: pytest.FixtureRequest,
    overrides: dict[str, Any],
    expected: list[Reason],
) -> None:
    result, rows = cases_result
    case_id = request.node.callspec.id
    note = overrides.get("note", case_id)
    quarantined = [r for r in result.quarantine.to_pylist() if r["note"] == note]
    valid = [r for r in result.valid.to_pylist() if r["note"] == note]
    if expected:
        assert valid == []
        assert [r["reasons"] for r in quarantined] == [[r.value for r in expected]]
    else:
        assert quarantined == []
        assert len(valid) == 1
        (original,) = [r["body"] for r in rows if r["note"] == note]
        assert valid[0]["body"] == original.decode("utf-8")  # body decoded, unchanged


def test_every_reason_code_is_exercised() -> None:
    expected = {reason for case in CASES for reason in case.values[1]}
    assert expected == set(Reason)


def test_duplicate_keeps_the_first_occurrence(
    cases_result: tuple[ValidationResult, list[dict[str, Any]]],
) -> None:
    result, _ = cases_result
    assert [r["note"] for r in result.valid.to_pylist() if r["feedback_id"] == "dup"] == ["first-dup"]
    assert [r["note"] for r in result.quarantine.to_pylist() if r["feedback_id"] == "dup"] == [
        "duplicate_feedback_id"
    ]


def test_counts_reconcile_and_order_is_kept(
    cases_result: tuple[ValidationResult, list[dict[str, Any]]],
) -> None:
    result, rows = cases_result
    s = result.summary
    assert s["rows_read"] == len(rows) == s["rows_valid"] + s["rows_quarantined"]
    assert s["rows_valid"] == result.valid.num_rows and s["rows_quarantined"] == result.quarantine.num_rows
    assert s["quarantine_share"] == pytest.approx(s["rows_quarantined"] / s["rows_read"])
    per_reason = {r.value: 0 for r in Reason}
    for reasons in result.quarantine.column("reasons").to_pylist():
        for reason in reasons:
            per_reason[reason] += 1
    assert s["reasons"] == per_reason
    notes = [r["note"] for r in rows]
    valid_notes = result.valid.column("note").to_pylist()
    bad_notes = result.quarantine.column("note").to_pylist()
    assert valid_notes == [n for n in notes if n in set(valid_notes)]
    assert bad_notes == [n for n in notes if n in set(bad_notes)]
    assert result.valid.schema.equals(valid_schema())
    assert result.quarantine.schema.equals(quarantine_schema())


def test_gx_result_is_json_and_maps_rows_to_reasons(
    cases_result: tuple[ValidationResult, list[dict[str, Any]]],
) -> None:
    result, _ = cases_result
    suite = load_suite()
    gx = json.loads(json.dumps(result.gx_result))
    assert gx["suite_name"] == "feedback_records"
    # Results come back in suite order; every row-level failure lists its failing rows.
    assert [r["expectation_config"]["meta"]["name"] for r in gx["results"]] == [
        e["meta"]["name"] for e in suite["expectations"]
    ]
    by_name = {r["expectation_config"]["meta"]["name"]: r for r in gx["results"]}
    assert by_name["predicted_category_in_taxonomy"]["result"]["unexpected_list"] == ["bills", "bills"]
    assert by_name["body_is_utf8"]["success"] is False
    assert by_name["row_count"]["success"] is True
    assert result.summary["batch_checks"]["category_share"]["skipped"] is False
    assert (
        by_name["category_share"]["result"]["observed_value"]
        == result.summary["batch_checks"]["category_share"]["observed"]
    )


# ------------------------------------------------------------------ batch-level checks


def test_quarantine_share_above_limit_raises_with_the_numbers() -> None:
    rows = [make_row(i) for i in range(100)]
    for i in range(4):
        rows[i * 10]["predicted_category"] = "bills"
    for i in range(3):
        rows[i * 10 + 5]["confidence"] = math.nan

    result = validate(rows)

    assert not result.passed
    assert result.summary["rows_quarantined"] == 7
    with pytest.raises(DataQualityError) as err:
        result.check()
    assert str(err.value) == (
        "quarantine share 7.0% exceeds the limit 5.0% (7 of 100 rows; top reasons: unknown_category 4, confidence_nan 3)"
    )
    assert err.value.result is result
    assert err.value.summary["batch_checks"]["quarantine_share"] == {
        "success": False,
        "observed": 0.07,
        "limit": 0.05,
    }


def test_quarantine_share_at_the_limit_passes() -> None:
    rows = [make_row(i) for i in range(100)]
    for i in range(5):
        rows[i]["body"] = b""

    result = validate(rows)

    assert result.passed and result.check() is result
    assert result.summary["rows_quarantined"] == 5
    assert result.summary["batch_checks"]["quarantine_share"]["success"] is True


def test_collapsed_category_fails_the_batch() -> None:
    rows = [make_row(i, predicted_category="promotion") for i in range(40)]
    rows += [make_row(100 + i, predicted_category="receipt") for i in range(5)]

    result = validate(rows)

    check = result.summary["batch_checks"]["category_share"]
    assert check["success"] is False and check["category"] == "promotion"
    assert check["observed"] == pytest.approx(40 / 45)
    assert result.summary["rows_quarantined"] == 0
    with pytest.raises(
        DataQualityError,
        match=r"predicted category 'promotion' holds 88\.9% of 45 rows, "
        r"above the limit 80\.0%",
    ):
        result.check()


def test_category_share_is_skipped_below_the_minimum_sample() -> None:
    rows = [make_row(i, predicted_category="promotion") for i in range(CATEGORY_SHARE_MIN_ROWS - 1)]

    result = validate(rows)

    assert result.passed
    assert result.summary["batch_checks"]["category_share"]["skipped"] is True


@pytest.mark.parametrize(
    ("n_rows", "kwargs", "message"),
    [
        pytest.param(0, {}, "row count 0 is below the minimum 1", id="empty-batch"),
        pytest.param(3, {"min_rows": 5}, "row count 3 is below the minimum 5", id="below-min-rows"),
        pytest.param(
            3,
            {"expected_rows": (10, 20)},
            r"row count 3 is outside the expected range \[10, 20\]",
            id="below-expected",
        ),
        pytest.param(
            25,
            {"expected_rows": (10, 20)},
            r"row count 25 is outside the expected range \[10, 20\]",
            id="above-expected",
        ),
    ],
)
def test_row_count_check(n_rows: int, kwargs: dict[str, Any], message: str) -> None:
    result = validate([make_row(i) for i in range(n_rows)], **kwargs)

    assert result.summary["batch_checks"]["row_count"]["success"] is False
    assert result.summary["rows_read"] == n_rows
    with pytest.raises(DataQualityError, match=message):
        result.check()


def test_empty_batch_allowed_when_min_rows_is_zero() -> None:
    result = validate([], min_rows=0)

    assert result.passed
    assert result.valid.num_rows == 0 and result.quarantine.num_rows == 0
    assert result.summary["quarantine_share"] == 0.0


# ------------------------------------------------------------------ robustness


def test_huge_and_invalid_bodies_neither_crash_nor_stall() -> None:
    huge_text = ("Quarterly report. " * 300_000).encode()[: 5 * 1024 * 1024]
    huge_bad = b"\xff" + b"x" * (5 * 1024 * 1024)
    rows = [make_row(0, body=huge_text), make_row(1, body=huge_bad), make_row(2, body=b"\xc3"), make_row(3)]

    began = time.perf_counter()
    result = validate(rows, max_quarantine_share=1.0)
    elapsed = time.perf_counter() - began

    assert elapsed < 10
    assert result.quarantine.column("reasons").to_pylist() == [
        ["body_too_large"],
        ["body_too_large", "invalid_utf8"],
        ["invalid_utf8"],
    ]
    assert result.valid.column("feedback_id").to_pylist() == ["p000003"]


def test_chunked_sliced_and_cast_input_gives_the_same_result() -> None:
    rows = [make_row(i) for i in range(12)]
    rows[3]["predicted_actions"] = ["nope"]
    rows[8]["missed_actions"] = ["pay_invoice", "nope"]
    rows[10]["body"] = b"\xfe"
    whole = validate(rows, max_quarantine_share=1.0)

    padded = make_table([make_row(99)] + rows[:5]).slice(1)
    chunked = pa.concat_tables([padded, make_table(rows[5:])])
    # Castable types are accepted: body as text is fine only when it is text already.
    chunked = chunked.set_column(
        chunked.schema.get_field_index("feedback_at"),
        pa.field("feedback_at", pa.timestamp("ns", tz="Europe/Berlin")),
        chunked.column("feedback_at").cast(pa.timestamp("ns", tz="Europe/Berlin")),
    )
    again = validate_feedback(chunked, START, END, taxonomy=TAX, max_quarantine_share=1.0)

    assert again.summary == whole.summary
    assert again.quarantine.equals(whole.quarantine) and again.valid.equals(whole.valid)
    assert again.quarantine.column("feedback_id").to_pylist() == ["p000003", "p000008", "p000010"]


def test_same_input_gives_identical_output() -> None:
    rows = [make_row(i) for i in range(10)] + [make_row(99, confidence=2.0)]
    a = validate(rows, max_quarantine_share=1.0)
    b = validate(rows, max_quarantine_share=1.0)

    assert json.dumps(a.gx_result, sort_keys=True) == json.dumps(b.gx_result, sort_keys=True)
    assert a.summary == b.summary


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        pytest.param(
            lambda t: t.drop_columns(["note"]), {}, r"missing columns \['note'\]", id="missing-column"
        ),
        pytest.param(
            lambda t: t.append_column("extra", pa.array([1])),
            {},
            r"unexpected columns \['extra'\]",
            id="extra-column",
        ),
        pytest.param(
            lambda t: t.set_column(10, "confidence", pa.array(["high"])),
            {},
            "column types",
            id="uncastable-type",
        ),
        pytest.param(lambda t: t, {"start": datetime(2026, 3, 1)}, "timezone-aware", id="naive-start"),
        pytest.param(lambda t: t, {"end": START}, "empty interval", id="empty-interval"),
        pytest.param(lambda t: t, {"max_quarantine_share": 1.5}, "max_quarantine_share", id="share-above-1"),
        pytest.param(lambda t: t, {"max_category_share": 0.0}, "max_category_share", id="category-share-0"),
        pytest.param(lambda t: t, {"min_rows": -1}, "min_rows", id="negative-min-rows"),
        pytest.param(lambda t: t, {"expected_rows": (5, 1)}, "expected_rows", id="inverted-expected-rows"),
        pytest.param(lambda t: t.to_pandas(), {}, "pyarrow.Table", id="not-a-table"),
    ],
)
def test_bad_input_is_rejected(mutate: Any, kwargs: dict[str, Any], message: str) -> None:
    args = {"start": START, "end": END, "taxonomy": TAX} | kwargs
    with pytest.raises(ValueError, match=message):
        validate_feedback(mutate(make_table([make_row(0)])), **args)


# ------------------------------------------------------------------ the suite file


def test_suite_covers_every_reason_and_required_column() -> None:
    suite = load_suite()
    row_level = [e["meta"] for e in suite["expectations"] if e["meta"]["scope"] == "row"]
    assert {m["reason"] for m in row_level} == {r.value for r in Reason}
    null_fields = {m["field"] for m in row_level if m["reason"] == Reason.NULL_REQUIRED_FIELD}
    assert null_fields == set(REQUIRED_COLUMNS)
    assert {e["meta"]["name"] for e in suite["expectations"] if e["meta"]["scope"] == "batch"} == {
        "row_count",
        "category_share",
    }
    assert load_suite(expectations_dir() / "feedback_records.json") == suite


def _broken_suite(edit: Any) -> dict[str, Any]:
    suite = copy.deepcopy(load_suite())
    edit(suite)
    return suite


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            lambda s: s["expectations"][0]["meta"].update(reason="bogus"),
            "unknown meta.reason",
            id="unknown-reason",
        ),
        pytest.param(
            lambda s: s["expectations"][1]["meta"].update(name=s["expectations"][0]["meta"]["name"]),
            "unique meta.name",
            id="duplicate-name",
        ),
        pytest.param(lambda s: s["expectations"][0]["meta"].pop("scope"), "meta.scope", id="no-scope"),
        pytest.param(lambda s: s.pop("expectations"), "not an expectation suite", id="no-expectations"),
        pytest.param(
            lambda s: s["expectations"].pop(),
            r"missing batch checks \['category_share'\]",
            id="no-category-share-check",
        ),
    ],
)
def test_broken_suite_is_rejected(tmp_path: Path, edit: Any, message: str) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(_broken_suite(edit)))
    with pytest.raises(ValueError, match=message):
        load_suite(path)


def test_invalid_expectation_in_suite_is_an_error(tmp_path: Path) -> None:
    suite = _broken_suite(lambda s: s["expectations"][0].update(type="expect_column_values_to_be_purple"))
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    with pytest.raises((ValueError, RuntimeError)):
        validate_feedback(make_table([make_row(0)]), START, END, taxonomy=TAX, suite_path=path)


# ------------------------------------------------------------------ property test


def _reference_reasons(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The rules restated in plain Python, row by row: the oracle for the property test."""
    categories, actions = set(CATEGORIES), set(ACTIONS)
    seen: set[str] = set()
    out = []
    for row in rows:
        reasons = set()
        if any(row[c] is None for c in REQUIRED_COLUMNS):
            reasons.add(Reason.NULL_REQUIRED_FIELD)
        if row["predicted_category"] is not None and row["predicted_category"] not in categories:
            reasons.add(Reason.UNKNOWN_CATEGORY)
        if row["corrected_category"] is not None and row["corrected_category"] not in categories:
            reasons.add(Reason.UNKNOWN_CATEGORY)
        conf = row["confidence"]
        if conf is not None and math.isnan(conf):
            reasons.add(Reason.CONFIDENCE_NAN)
        elif conf is not None and not 0.0 <= conf <= 1.0:
            reasons.add(Reason.CONFIDENCE_OUT_OF_RANGE)
        for col in ("predicted_actions", "missed_actions", "unnecessary_actions"):
            if any(a not in actions for a in row[col] or []):
                reasons.add(Reason.UNKNOWN_ACTION)
        if row["feedback_id"] is not None:
            if row["feedback_id"] in seen:
                reasons.add(Reason.DUPLICATE_FEEDBACK_ID)
            seen.add(row["feedback_id"])
        fa, pa_ = row["feedback_at"], row["predicted_at"]
        if fa is not None and not START <= fa < END:
            reasons.add(Reason.TIMESTAMP_OUT_OF_RANGE)
        if fa is not None and pa_ is not None and pa_ > fa:
            reasons.add(Reason.TIMESTAMP_OUT_OF_RANGE)
        body = row["body"]
        if body is not None:
            if len(body) > MAX_BODY_BYTES:
                reasons.add(Reason.BODY_TOO_LARGE)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                reasons.add(Reason.INVALID_UTF8)
            else:
                if not text.strip():
                    reasons.add(Reason.EMPTY_BODY)
        out.append([r.value for r in Reason if r in reasons])
    return out


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


_TIMES = st.one_of(
    st.sampled_from([START, END, START - US, END - US]),
    st.datetimes(min_value=datetime(2026, 2, 27), max_value=datetime(2026, 3, 3), timezones=st.just(UTC)),
)
_IDS = st.sampled_from(["p1", "p2", "p3", "x'; DROP TABLE t;--", "", "p\u00e9"])
_CATS = st.sampled_from(list(CATEGORIES[:3]) + ["bills", "", "RECEIPT"])
_ACTION_LISTS = _maybe(st.lists(_maybe(st.sampled_from(list(ACTIONS[:4]) + ["nope", ""])), max_size=3))
_BODIES = _maybe(
    st.one_of(
        st.binary(max_size=12),
        st.text(max_size=12).map(str.encode),
        st.sampled_from([b"", b"  \n", "\u2003".encode(), b"\xc3\x28", b"ok"]),
    )
)


@st.composite
def malformed_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=0, max_value=12))
    rows = []
    for i in range(n):
        rows.append(
            make_row(
                i,
                feedback_id=draw(_maybe(_IDS)),
                prediction_id=draw(_maybe(st.just(f"pred{i}"))),
                user_id=draw(_maybe(st.just("u1"))),
                predicted_category=draw(_maybe(_CATS)),
                corrected_category=draw(_maybe(_CATS)),
                confidence=draw(
                    _maybe(
                        st.floats(allow_nan=True, allow_infinity=True, min_value=None, max_value=None)
                        | st.sampled_from([0.0, 1.0, 0.5])
                    )
                ),
                predicted_actions=draw(_ACTION_LISTS),
                missed_actions=draw(_ACTION_LISTS),
                unnecessary_actions=draw(_ACTION_LISTS),
                predicted_at=draw(_maybe(_TIMES)),
                feedback_at=draw(_maybe(_TIMES)),
                body=draw(_BODIES),
            )
        )
    return rows


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=malformed_rows())
def test_arbitrary_records_reconcile_and_valid_rows_obey_every_rule(rows: list[dict[str, Any]]) -> None:
    result = validate(rows, max_quarantine_share=1.0, min_rows=0)

    s = result.summary
    assert s["rows_read"] == len(rows) == s["rows_valid"] + s["rows_quarantined"]
    expected = _reference_reasons(rows)
    assert result.quarantine.column("reasons").to_pylist() == [r for r in expected if r]
    valid_rows = result.valid.to_pylist()
    assert len(valid_rows) == sum(1 for r in expected if not r)
    # Valid rows, turned back into raw records, break no rule.
    as_raw = [dict(r, body=r["body"].encode()) for r in valid_rows]
    assert _reference_reasons(as_raw) == [[] for _ in as_raw]
