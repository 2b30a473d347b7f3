"""The data-quality gate: Great Expectations over one extracted feedback interval.

Every raw feedback record (``contracts.raw_schema()``) is either *valid* (passes every
row-level rule; body decoded to text) or *quarantined* with the list of
:class:`~feedbackloop.contracts.Reason` codes it failed. The rules are the expectations of
the suite ``expectations/feedback_records.json``, run by Great Expectations 1.x on a pandas
frame; each row-level expectation names its reason code in ``meta.reason``, and
``result_format`` COMPLETE gives the index of every failing row, so the suite JSON is the one
documented list of rules.

GX cannot look inside lists or raw bytes, so a few *helper columns* are derived first with
vectorised pyarrow/pandas (``body_bytes``, ``body_utf8_valid``, ``body_is_blank``,
``confidence_is_nan``, ``unknown_action_count``, ``is_duplicate``,
``predicted_category_share``) and GX validates those.

Batch-level checks fail the whole run rather than single rows: the row count (at least
``min_rows``, or inside the caller's ``expected_rows`` range), the most common predicted
category's share (a model collapsed onto one category), and the quarantined share of rows.
:func:`validate_feedback` always returns the full :class:`ValidationResult` so the caller can
stage the quarantine and the GX result first; :meth:`ValidationResult.check` then raises
:class:`DataQualityError` naming what failed, the observed value and the limit.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedbackloop.contracts import MAX_BODY_BYTES, Reason, raw_schema, valid_schema
from feedbackloop.paths import expectations_dir

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from feedbackloop.golden import Taxonomy

SUITE_FILE = "feedback_records.json"

# Below this many rows with a predicted category, the most-common-category share says
# nothing (three rows of one category are not a collapsed model), so the check is skipped.
CATEGORY_SHARE_MIN_ROWS = 30

# Bodies are UTF-8-checked a block at a time in C; only blocks holding an invalid body are
# looked at row by row, so the common all-valid case never loops in Python.
_UTF8_BLOCK_ROWS = 4096
_UTF8_SPLIT_ROWS = 16

_REASONS: tuple[Reason, ...] = tuple(Reason)
_BATCH_CHECKS = ("row_count", "category_share")


class DataQualityError(ValueError):
    """The feedback batch failed the data-quality gate.

    Attributes:
        result: the complete :class:`ValidationResult` (valid rows, quarantine, GX result).
        summary: ``result.summary``, JSON-safe, for XCom and alerts.
        failures: one message per failed batch-level check.
    """

    def __init__(self, message: str, result: ValidationResult | None = None):
        super().__init__(message)
        self.result = result
        self.summary: dict[str, Any] = dict(result.summary) if result is not None else {}
        self.failures: list[str] = list(self.summary.get("failures", []))


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of :func:`validate_feedback`.

    Attributes:
        valid: rows that passed every row-level rule, ``contracts.valid_schema()``, input order.
        quarantine: the other rows, raw columns plus ``reasons`` (list<string>), input order.
        summary: JSON-safe counts (``rows_read``, ``rows_valid``, ``rows_quarantined``,
            ``quarantine_share``, ``reasons`` per code), ``batch_checks`` with observed values
            and limits, ``failures`` (messages) and ``passed``.
        gx_result: the JSON-serialisable Great Expectations validation result, in suite
            order, with the load timestamp removed so re-runs give identical bytes.
    """

    valid: pa.Table
    quarantine: pa.Table
    summary: dict[str, Any]
    gx_result: dict[str, Any]

    @property
    def passed(self) -> bool:
        """True when every batch-level check passed."""
        return bool(self.summary["passed"])

    @property
    def failures(self) -> list[str]:
        """One message per failed batch-level check (empty when passed)."""
        return list(self.summary["failures"])

    def check(self) -> ValidationResult:
        """Raise :class:`DataQualityError` if a batch-level check failed, else return self."""
        if not self.passed:
            raise DataQualityError("; ".join(self.failures), self)
        return self


def quarantine_schema() -> pa.Schema:
    """pyarrow schema of ``quarantine.parquet``: the raw columns plus ``reasons``."""
    import pyarrow as pa

    return raw_schema().append(pa.field("reasons", pa.list_(pa.string())))


def load_suite(suite_path: Path | None = None) -> dict[str, Any]:
    """Load and sanity-check the suite JSON (default: ``expectations/feedback_records.json``).

    Raises:
        ValueError: the file is not a suite, an expectation lacks a known ``meta.reason``
            (row scope) / a known ``meta.name`` (batch scope), names are not unique, or a
            batch check that :func:`validate_feedback` reports on is missing.
    """
    path = Path(suite_path) if suite_path is not None else expectations_dir() / SUITE_FILE
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read expectation suite {path}: {exc}") from exc
    if (
        not isinstance(suite, dict)
        or not isinstance(suite.get("expectations"), list)
        or not suite.get("name")
    ):
        raise ValueError(f"{path.name}: not an expectation suite (needs 'name' and an 'expectations' list)")
    reasons = {r.value for r in Reason}
    names: set[str] = set()
    for i, exp in enumerate(suite["expectations"]):
        meta = exp.get("meta") or {}
        name = meta.get("name")
        if not name or name in names:
            raise ValueError(f"{path.name}: expectations[{i}] needs a unique meta.name, got {name!r}")
        names.add(name)
        scope = meta.get("scope")
        if scope == "row" and meta.get("reason") not in reasons:
            raise ValueError(
                f"{path.name}: expectation {name!r} has unknown meta.reason {meta.get('reason')!r}"
            )
        if scope == "batch" and name not in _BATCH_CHECKS:
            raise ValueError(f"{path.name}: unknown batch check {name!r} (known: {', '.join(_BATCH_CHECKS)})")
        if scope not in ("row", "batch"):
            raise ValueError(f"{path.name}: expectation {name!r} needs meta.scope 'row' or 'batch'")
    missing = [check for check in _BATCH_CHECKS if check not in names]
    if missing:
        raise ValueError(f"{path.name}: missing batch checks {missing}")
    return suite


def validate_feedback(
    raw: pa.Table,
    start: datetime,
    end: datetime,
    taxonomy: Taxonomy | None = None,
    suite_path: Path | None = None,
    max_quarantine_share: float = 0.05,
    min_rows: int = 1,
    expected_rows: tuple[int, int] | None = None,
    max_category_share: float = 0.8,
) -> ValidationResult:
    """Validate one extracted feedback interval and split it into valid and quarantined rows.

    Args:
        raw: the raw extract (``contracts.raw_schema()``; castable types are accepted).
        start: start of the data interval (inclusive, timezone-aware).
        end: end of the data interval (exclusive, timezone-aware).
        taxonomy: categories and actions to check against (default: the project taxonomy).
        suite_path: the GX suite JSON (default: ``expectations/feedback_records.json``).
        max_quarantine_share: the largest tolerated share of quarantined rows.
        min_rows: the fewest rows a run may read (used when ``expected_rows`` is None).
        expected_rows: inclusive ``(low, high)`` row-count range derived from recent runs.
        max_category_share: the largest share one predicted category may hold.

    Returns:
        The :class:`ValidationResult`; call :meth:`ValidationResult.check` (after staging
        the evidence) to raise :class:`DataQualityError` on a failed batch-level check.

    Raises:
        ValueError: bad arguments (naive or inverted interval, limits out of range), or
            ``raw`` does not match the feedback record contract.
        RuntimeError: Great Expectations could not evaluate an expectation.
    """
    import numpy as np

    start_utc, end_utc = _check_interval(start, end)
    _check_limits(max_quarantine_share, min_rows, expected_rows, max_category_share)
    if taxonomy is None:
        from feedbackloop.golden import default_taxonomy

        taxonomy = default_taxonomy()
    suite = load_suite(suite_path)
    table = _conform(raw)
    n = table.num_rows

    frame, text = _helper_frame(table, taxonomy)
    rows_with_category = int(frame["predicted_category"].notna().sum())
    share_checked = rows_with_category >= CATEGORY_SHARE_MIN_ROWS
    expectations = [
        copy.deepcopy(e)
        for e in suite["expectations"]
        if share_checked or (e.get("meta") or {}).get("name") != "category_share"
    ]
    row_lo, row_hi = expected_rows if expected_rows is not None else (min_rows, None)
    params = {
        "category_ids": list(taxonomy.category_ids),
        "max_body_bytes": MAX_BODY_BYTES,
        "interval_start": start_utc.isoformat(),
        "interval_end": end_utc.isoformat(),
        "min_rows": int(row_lo),
        "max_rows": None if row_hi is None else int(row_hi),
        "max_category_share": float(max_category_share),
    }
    gx_result = _run_gx(frame, suite, expectations, params)

    # Row-level outcome: one boolean column per reason code, filled from GX's failing indexes.
    flags = np.zeros((n, len(_REASONS)), dtype=bool)
    batch: dict[str, dict[str, Any]] = {}
    for res in gx_result["results"]:
        meta = res["expectation_config"].get("meta") or {}
        if meta.get("scope") == "row":
            idx = res["result"].get("unexpected_index_list")
            if idx is None:
                if not res["success"]:
                    raise RuntimeError(f"GX gave no failing row indexes for expectation {meta.get('name')!r}")
                continue
            if idx:
                flags[np.asarray(idx, dtype=np.int64), _REASONS.index(Reason(meta["reason"]))] = True
        else:
            batch[meta["name"]] = res

    bad = np.asarray(flags.any(axis=1), dtype=bool)
    rows_quarantined = int(bad.sum())
    rows_valid = n - rows_quarantined
    reason_counts = {r.value: int(c) for r, c in zip(_REASONS, flags.sum(axis=0), strict=True)}

    valid = _valid_table(table, text, ~bad)
    quarantine = _quarantine_table(table, bad, flags)

    failures: list[str] = []
    share = rows_quarantined / n if n else 0.0
    share_ok = share <= max_quarantine_share
    if not share_ok:
        top = sorted(((c, i) for i, c in enumerate(flags.sum(axis=0)) if c), key=lambda t: (-t[0], t[1]))[:3]
        top_text = ", ".join(f"{_REASONS[i].value} {int(c)}" for c, i in top)
        failures.append(
            f"quarantine share {_pct(share, max_quarantine_share)} exceeds the limit "
            f"{_pct(max_quarantine_share)} ({rows_quarantined} of {n} rows; top reasons: {top_text})"
        )

    count_res = batch["row_count"]
    count_ok = bool(count_res["success"])
    if not count_ok:
        if expected_rows is not None:
            failures.append(f"row count {n} is outside the expected range [{row_lo}, {row_hi}]")
        else:
            failures.append(f"row count {n} is below the minimum {row_lo}")

    top_category, top_count = _top_category(frame["predicted_category"])
    category_check: dict[str, Any] = {
        "success": True,
        "skipped": not share_checked,
        "observed": None,
        "category": top_category,
        "rows": rows_with_category,
        "limit": float(max_category_share),
        "min_rows": CATEGORY_SHARE_MIN_ROWS,
    }
    if share_checked:
        share_res = batch["category_share"]
        observed = share_res["result"].get("observed_value")
        category_check["success"] = bool(share_res["success"])
        category_check["observed"] = None if observed is None else float(observed)
        if not share_res["success"]:
            failures.append(
                f"predicted category {top_category!r} holds "
                f"{_pct(top_count / rows_with_category, max_category_share)} of {rows_with_category} rows, "
                f"above the limit {_pct(max_category_share)} (predictions collapsed onto one category?)"
            )

    summary: dict[str, Any] = {
        "interval": {"start": start_utc.isoformat(), "end": end_utc.isoformat()},
        "rows_read": n,
        "rows_valid": rows_valid,
        "rows_quarantined": rows_quarantined,
        "quarantine_share": share,
        "reasons": reason_counts,
        "batch_checks": {
            "quarantine_share": {
                "success": share_ok,
                "observed": share,
                "limit": float(max_quarantine_share),
            },
            "row_count": {
                "success": count_ok,
                "observed": n,
                "min": int(row_lo),
                "max": None if row_hi is None else int(row_hi),
            },
            "category_share": category_check,
        },
        "expectations": {
            "suite": suite["name"],
            "evaluated": gx_result["statistics"]["evaluated_expectations"],
            "successful": gx_result["statistics"]["successful_expectations"],
        },
        "passed": not failures,
        "failures": failures,
    }
    return ValidationResult(valid=valid, quarantine=quarantine, summary=summary, gx_result=gx_result)


# ------------------------------------------------------------------------------ helpers


def _check_interval(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if not start < end:
        raise ValueError(f"empty interval: start {start.isoformat()} is not before end {end.isoformat()}")
    return start.astimezone(UTC), end.astimezone(UTC)


def _check_limits(
    max_quarantine_share: float,
    min_rows: int,
    expected_rows: tuple[int, int] | None,
    max_category_share: float,
) -> None:
    if not 0.0 <= max_quarantine_share <= 1.0:
        raise ValueError(f"max_quarantine_share must be within [0, 1], got {max_quarantine_share}")
    if not 0.0 < max_category_share <= 1.0:
        raise ValueError(f"max_category_share must be within (0, 1], got {max_category_share}")
    if min_rows < 0:
        raise ValueError(f"min_rows must be >= 0, got {min_rows}")
    if expected_rows is not None:
        lo, hi = expected_rows
        if not 0 <= lo <= hi:
            raise ValueError(f"expected_rows must be (low, high) with 0 <= low <= high, got {expected_rows}")


def _conform(raw: pa.Table) -> pa.Table:
    """The input as exactly ``raw_schema()`` (columns in contract order, types cast)."""
    import pyarrow as pa

    if not isinstance(raw, pa.Table):
        raise ValueError(f"raw must be a pyarrow.Table, got {type(raw).__name__}")
    expected = raw_schema()
    names = set(raw.column_names)
    missing = [c for c in expected.names if c not in names]
    unexpected = sorted(names - set(expected.names))
    if missing or unexpected or len(raw.column_names) != len(names):
        raise ValueError(
            "raw table does not match the feedback record contract: "
            f"missing columns {missing}, unexpected columns {unexpected}"
        )
    table = raw.select(list(expected.names))
    if not table.schema.equals(expected):
        try:
            table = table.cast(expected)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise ValueError(f"raw table has column types that do not fit the contract: {exc}") from exc
    return table


def _bool_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    """A pyarrow boolean array as a pandas nullable ``boolean`` Series (NULL stays NA)."""
    import pandas as pd
    import pyarrow.compute as pc

    values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
    mask = pc.is_null(arr).to_numpy(zero_copy_only=False)
    return pd.Series(pd.arrays.BooleanArray(values.astype(bool), mask.astype(bool)))


def _decode_bodies(body: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Bodies as text, and per row whether the bytes are valid UTF-8.

    The text is NULL where the body is NULL or not UTF-8 (NULL bodies count as valid here;
    the not-NULL rule reports them). Blocks are decoded by a safe cast, which validates in
    C; only a block that fails is split, down to single rows, so the common all-valid case
    never loops in Python.
    """
    import numpy as np
    import pyarrow as pa

    ok = np.ones(len(body), dtype=bool)
    pieces: list[pa.Array] = []

    def decode(block: pa.Array, start: int) -> None:
        try:
            pieces.append(block.cast(pa.string()))
            return
        except pa.ArrowInvalid:
            pass
        if len(block) > _UTF8_SPLIT_ROWS:
            half = len(block) // 2
            decode(block.slice(0, half), start)
            decode(block.slice(half), start + half)
            return
        texts: list[str | None] = []
        for i, value in enumerate(block.to_pylist()):
            try:
                texts.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                ok[start + i] = False
                texts.append(None)
        pieces.append(pa.array(texts, pa.string()))

    chunks: list[pa.Array] = []
    offset = 0
    for chunk in body.chunks:
        pieces.clear()
        for lo in range(0, len(chunk), _UTF8_BLOCK_ROWS):
            decode(chunk.slice(lo, _UTF8_BLOCK_ROWS), offset + lo)
        # One text chunk per input chunk: same size limits as the input, and no
        # thousands of tiny pieces for later kernels to walk.
        chunks.append(pa.concat_arrays(pieces) if pieces else pa.array([], pa.string()))
        offset += len(chunk)
    return pa.chunked_array(chunks, pa.string()), ok


def _unknown_action_count(table: pa.Table, actions: tuple[str, ...]) -> np.ndarray:
    """Per row: how many entries of the three action lists are outside the vocabulary."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    vocab = pa.array(list(actions), pa.string())
    total = np.zeros(n, dtype=np.int64)
    for column in ("predicted_actions", "missed_actions", "unnecessary_actions"):
        offset = 0
        for chunk in table.column(column).chunks:
            flat = pc.list_flatten(chunk)
            if len(flat):
                parents = pc.list_parent_indices(chunk).to_numpy(zero_copy_only=False)
                # A NULL entry inside a list is no action either: is_in gives False for it.
                unknown = ~pc.fill_null(pc.is_in(flat, value_set=vocab), False).to_numpy(zero_copy_only=False)
                total += np.bincount(parents[unknown] + offset, minlength=n)
            offset += len(chunk)
    return total


def _category_share(categories: pa.ChunkedArray) -> np.ndarray:
    """Per row: the share of rows with a category that carry this row's category (NaN if NULL)."""
    import numpy as np

    encoded = categories.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    null = encoded.is_null().to_numpy(zero_copy_only=False)
    share = np.full(len(codes), np.nan)
    present = int((~null).sum())
    if present:
        counts = np.bincount(codes[~null].astype(np.int64), minlength=len(encoded.dictionary))
        share[~null] = counts[codes[~null].astype(np.int64)] / present
    return share


def _helper_frame(table: pa.Table, taxonomy: Taxonomy) -> tuple[pd.DataFrame, pa.ChunkedArray]:
    """The pandas frame GX validates (checked scalar columns plus derived helpers), and the
    decoded bodies (NULL where not UTF-8) for the valid table."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    cols: dict[str, Any] = {}
    for name in (
        "feedback_id",
        "prediction_id",
        "email_id",
        "user_id",
        "predicted_category",
        "corrected_category",
    ):
        cols[name] = table.column(name).to_pandas()
    confidence = table.column("confidence")
    # NULL and NaN both become NaN in a float frame, and GX skips NaN in range checks; the
    # NULL-vs-NaN distinction lives in confidence_is_nan (NA exactly when NULL).
    cols["confidence"] = confidence.to_numpy()
    cols["confidence_is_nan"] = _bool_series(pc.is_nan(confidence))
    cols["predicted_at"] = table.column("predicted_at").to_pandas()
    cols["feedback_at"] = table.column("feedback_at").to_pandas()

    body = table.column("body")
    null_body = pc.is_null(body).to_numpy(zero_copy_only=False)
    text, utf8_ok = _decode_bodies(body)
    # utf8_is_space stops at the first non-space character and agrees with str.isspace.
    blank = pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    # float64, NaN for NULL: GX's range check is vectorised only for numpy dtypes (a nullable
    # Int64 column is checked row by row in Python); lengths are exact in float64.
    cols["body_bytes"] = pc.binary_length(body).to_numpy().astype("float64")
    cols["body_utf8_valid"] = _bool_series(pa.array(utf8_ok, mask=null_body))
    cols["body_is_blank"] = _bool_series(blank)

    cols["unknown_action_count"] = _unknown_action_count(table, taxonomy.actions)
    ids = cols["feedback_id"]
    cols["is_duplicate"] = (ids.duplicated(keep="first") & ids.notna()).to_numpy()
    cols["predicted_category_share"] = _category_share(table.column("predicted_category"))
    frame = pd.DataFrame(cols)
    frame.index = pd.RangeIndex(len(frame))  # GX's unexpected_index_list are positions
    return frame, text


@contextmanager
def _without_gx_fingerprint() -> Iterator[None]:
    """Skip GX's batch fingerprint while validating.

    GX's pandas engine hashes every cell of a batch under 1 GB
    (``pandas.util.hash_pandas_object``) only to record a ``pandas_data_fingerprint``
    batch marker; on a million rows of Arrow-backed ids that is ~2 s, a third of the whole
    validation, for a marker nothing here reads (the staged valid Parquet is the record of
    what was validated). Lowering the module's threshold for the duration of the call
    skips it; the previous value is restored afterwards.
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    previous = engine.HASH_THRESHOLD
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = previous


def _run_gx(
    frame: pd.DataFrame, suite: dict[str, Any], expectations: list[dict[str, Any]], params: dict[str, Any]
) -> dict[str, Any]:
    """Validate ``frame`` with Great Expectations; the JSON result in suite order."""
    # GX reads these at import / context creation; keep runs offline and the logs clean.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.validator.v1_validator import Validator

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch_definition = (
        context.data_sources.add_pandas("feedback")
        .add_dataframe_asset("feedback_records")
        .add_batch_definition_whole_dataframe("interval")
    )
    gx_suite = gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta"))
    if len(gx_suite.expectations) != len(expectations):
        # ExpectationSuite logs and drops an invalid expectation instead of raising.
        raise ValueError(
            f"suite {suite['name']!r}: GX accepted {len(gx_suite.expectations)} of {len(expectations)} expectations"
        )
    # The v1 Validator is what Batch.validate and ValidationDefinition.run call; used
    # directly it loads (and fingerprints) the frame once and skips the result store, which
    # together halve GX's overhead on a million rows.
    validator = Validator(
        batch_definition=batch_definition,
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE"},
    )
    with _without_gx_fingerprint():
        result = validator.validate_expectation_suite(gx_suite, params)
    data = result.to_json_dict()

    order = {e["meta"]["name"]: i for i, e in enumerate(expectations)}
    for res in data["results"]:
        info = res.get("exception_info") or {}
        infos = [info] if "raised_exception" in info else list(info.values())
        for item in infos:
            if isinstance(item, dict) and item.get("raised_exception"):
                name = (res["expectation_config"].get("meta") or {}).get("name")
                raise RuntimeError(
                    f"GX could not evaluate expectation {name!r}: {item.get('exception_message')}"
                )
    data["results"] = sorted(data["results"], key=lambda r: order[r["expectation_config"]["meta"]["name"]])
    # Times and generated ids differ on every run; without them the staged result is
    # byte-stable for the same input.
    meta = data.get("meta") or {}
    for volatile in ("run_id", "validation_time", "validation_id", "checkpoint_id"):
        meta.pop(volatile, None)
    (meta.get("batch_markers") or {}).pop("ge_load_time", None)
    data["id"] = None
    return data


def _valid_table(table: pa.Table, text: pa.ChunkedArray, keep: np.ndarray) -> pa.Table:
    """The kept rows with the body replaced by its text (every valid body is UTF-8)."""
    import pyarrow as pa

    body_index = table.schema.get_field_index("body")
    decoded = table.set_column(body_index, pa.field("body", pa.string()), text)
    return decoded.filter(pa.array(keep)).cast(valid_schema())


def _quarantine_table(table: pa.Table, bad: np.ndarray, flags: np.ndarray) -> pa.Table:
    """Quarantined rows in input order with their reason codes (in ``Reason`` order)."""
    import numpy as np
    import pyarrow as pa

    rows = table.filter(pa.array(bad))
    bad_flags = flags[bad]
    _, reason_idx = np.nonzero(bad_flags)  # row-major: each row's reasons in Reason order
    offsets = np.concatenate([[0], np.cumsum(bad_flags.sum(axis=1))]).astype(np.int32)
    names = np.array([r.value for r in _REASONS], dtype=object)
    values = pa.array(names[reason_idx].tolist() if len(reason_idx) else [], pa.string())
    reasons = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)
    return rows.append_column(pa.field("reasons", pa.list_(pa.string())), reasons).cast(quarantine_schema())


def _top_category(categories: pd.Series) -> tuple[str | None, int]:
    """The most common predicted category (ties: alphabetically first) and its count."""
    counts = categories.value_counts()
    if counts.empty:
        return None, 0
    name, count = min(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    return name, count


def _pct(value: float, other: float | None = None) -> str:
    """``value`` as a percentage with one decimal, more if it would print equal to ``other``."""
    for digits in (1, 2, 3, 4):
        text = f"{value * 100:.{digits}f}%"
        if other is None or text != f"{other * 100:.{digits}f}%":
            return text
    return f"{value * 100}%"
