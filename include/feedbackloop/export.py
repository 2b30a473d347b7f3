"""Daily export of validated, PII-redacted feedback for analysts and external trainers.

One UTC calendar day ``[day 00:00, day+1 00:00)`` of feedback records is extracted
(:func:`feedbackloop.extract.extract_feedback`, into a private scratch folder: the raw rows
never reach the shared export location), validated in bounded memory
(:class:`feedbackloop.quality_stream.StreamingValidator`, the same rules and batch checks as
:func:`feedbackloop.quality.validate_feedback`), redacted and written to staging::

    <prefix>/<YYYY-MM-DD>/feedback.jsonl       valid rows, one JSON object per line
    <prefix>/<YYYY-MM-DD>/feedback.csv         valid rows, header + one line per row
    <prefix>/<YYYY-MM-DD>/feedback.parquet     valid rows, contracts.valid_schema()
    <prefix>/<YYYY-MM-DD>/quarantine.parquet   rejected rows with their reason codes
    <prefix>/<YYYY-MM-DD>/manifest.json        counts, checks, sha256 of every file

Guarantees:

* **Deterministic bytes.** Rows keep the extract's order (``feedback_id``, bytewise), Parquet
  settings and row groups are fixed (:data:`EXPORT_ROW_GROUP_ROWS` rows, whatever the chunk
  sizes), text formats are spelled out below, and the manifest holds no run id or clock
  time. Re-running or backfilling a day writes identical files.
* **Bounded memory.** Rows stream through in chunks, so memory does not grow with the day.
* **Counts reconcile.** rows read = rows exported + rows quarantined; the manifest records
  each file's row count, and a mismatch is an error, not a file.
* **PII leaves redacted.** ``sender`` (the e-mail domain is kept: lookalike domains are the
  phishing signal, a company domain is not personal), ``subject``, ``body`` and ``note``
  pass through :func:`feedbackloop.pii.redact` in every file, the quarantine included.
* **The manifest commits.** Data files are written first and the manifest last, so a
  manifest means a complete export; consumers check the sha256 values against it.
* **The gate holds.** When a batch-level check fails (quarantined share above the limit, too
  few rows, predictions collapsed onto one category), nothing is written and
  :class:`ExportRejected` says why.

Text formats (UTF-8, ``\\n`` line ends):

* JSONL: keys in contract order; timestamps ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; lists as arrays;
  NaN and infinite floats as ``null`` (JSON has no NaN).
* CSV: a header row, RFC 4180 quoting, and PostgreSQL's NULL convention: an empty unquoted
  field is NULL, ``""`` is the empty string (``COPY ... FROM ... (FORMAT csv)`` loads it).
  Booleans ``true``/``false``; floats in shortest round-trip form, ``NaN``, ``Infinity``;
  lists as JSON arrays; timestamps as in JSONL.

The quarantine keeps the raw columns (``body`` as bytes, so invalid UTF-8 stays visible; it
is redacted through a lossless ``surrogateescape`` decoding), the ``reasons`` list and
``body_bytes`` (the original body size). Bodies are cut to their first
:data:`QUARANTINE_BODY_CHARS` characters, never inside a detected PII span: a 5 MB
``body_too_large`` body would otherwise cost seconds of redaction and say nothing more.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feedbackloop.contracts import FEEDBACK_COLUMNS, valid_schema
from feedbackloop.pii import PII_TYPES, find_pii, redact
from feedbackloop.quality import DataQualityError, quarantine_schema
from feedbackloop.quality_stream import BatchLimits, StreamingValidator, iter_raw_chunks
from feedbackloop.staging import PARQUET_OPTIONS, LocalStaging, Staging, local_scratch

if TYPE_CHECKING:
    import pyarrow as pa

    from feedbackloop.golden import Taxonomy

EXPORT_PREFIX = "feedback_export"
FEEDBACK_JSONL = "feedback.jsonl"
FEEDBACK_CSV = "feedback.csv"
FEEDBACK_PARQUET = "feedback.parquet"
QUARANTINE_PARQUET = "quarantine.parquet"
MANIFEST = "manifest.json"
DATA_FILES = (FEEDBACK_JSONL, FEEDBACK_CSV, FEEDBACK_PARQUET, QUARANTINE_PARQUET)
FORMAT_VERSION = 1

# Fixed row-group size of the exported Parquet files: the bytes must not depend on how the
# rows were chunked on the way.
EXPORT_ROW_GROUP_ROWS = 65_536
QUARANTINE_BODY_CHARS = 65_536
# Text beyond the cut that is still scanned, so a PII span crossing the cut is seen whole.
_CUT_MARGIN_CHARS = 2_048
# Rows turned into Python objects at a time when writing JSONL / CSV.
_TEXT_SLICE_ROWS = 8_192

REDACTED_COLUMNS = ("sender", "subject", "body", "note")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ExportRejected(DataQualityError):
    """The day failed a batch-level data-quality check; nothing was exported.

    Attributes:
        summary: the validation summary (counts, reasons, batch checks, failures).
        failures: one message per failed check.
    """

    def __init__(self, day: date, summary: dict[str, Any]):
        super().__init__(f"export of {day.isoformat()} rejected: " + "; ".join(summary["failures"]))
        self.day = day
        self.summary = dict(summary)
        self.failures = list(summary["failures"])


@dataclass(frozen=True)
class ExportSettings:
    """How a day is exported.

    Attributes:
        limits: batch-level data-quality limits (see ``quality.validate_feedback``).
        extract_chunk_rows: rows per database round trip during extraction.
        validate_chunk_rows: rows per validation chunk (memory vs ~1 s of GX per chunk).
    """

    limits: BatchLimits = field(default_factory=BatchLimits)
    extract_chunk_rows: int = 50_000
    validate_chunk_rows: int = 250_000

    def __post_init__(self) -> None:
        for name in ("extract_chunk_rows", "validate_chunk_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_feedback` wrote.

    Attributes:
        day: the exported UTC day.
        rows_read: feedback records of the day.
        rows_exported: valid rows (in each of the JSONL, CSV and Parquet files).
        rows_quarantined: rejected rows (in ``quarantine.parquet``).
        uris: staging URI of every file, manifest included, by file name.
        manifest: the manifest as written.
    """

    day: date
    rows_read: int
    rows_exported: int
    rows_quarantined: int
    uris: dict[str, str]
    manifest: dict[str, Any]

    @property
    def manifest_uri(self) -> str:
        return self.uris[MANIFEST]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom and asset events."""
        return {
            "day": self.day.isoformat(),
            "rows_read": self.rows_read,
            "rows_exported": self.rows_exported,
            "rows_quarantined": self.rows_quarantined,
            "uris": dict(self.uris),
            "manifest_uri": self.manifest_uri,
            "sha256": {name: info["sha256"] for name, info in self.manifest["files"].items()},
        }


# ------------------------------------------------------------------------------ days


def day_interval(day: date) -> tuple[datetime, datetime]:
    """The half-open UTC interval ``[day 00:00, day+1 00:00)`` of a calendar day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def parse_day(value: str | date) -> date:
    """A day from ``YYYY-MM-DD`` (or a ``date``).

    Raises:
        ValueError: anything else, including datetimes and other ISO spellings.
    """
    if isinstance(value, datetime):
        raise ValueError(f"day must be a date (YYYY-MM-DD), not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if not _DAY.match(text):
        raise ValueError(f"day must be written YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a calendar day: {exc}") from exc


def resolve_export_day(
    day: str | date | None, interval_start: datetime | None = None, now: datetime | None = None
) -> date:
    """The day a run exports: the ``day`` param when given, else the UTC day of the run's
    data interval start (the daily 01:00 run covering ``[D 01:00, D+1 01:00)`` exports D).

    Args:
        day: an explicit day (backfill), ``YYYY-MM-DD``; None or ``""`` when not given.
        interval_start: start of the run's data interval (timezone-aware).
        now: the current time; a day that has not ended by then is refused, because
            feedback still arriving would change its export.

    Raises:
        ValueError: a malformed day, no day and no interval, a naive interval start, or a
            day not over yet.
    """
    if day is not None and str(day).strip() not in ("", "None"):
        chosen = parse_day(day)
    elif interval_start is None:
        raise ValueError("no day to export: give the 'day' param (YYYY-MM-DD) or run on a schedule")
    elif interval_start.utcoffset() is None:
        raise ValueError(f"interval start must be timezone-aware, got {interval_start!r}")
    else:
        chosen = interval_start.astimezone(UTC).date()
    if now is not None:
        if now.utcoffset() is None:
            raise ValueError(f"now must be timezone-aware, got {now!r}")
        end = day_interval(chosen)[1]
        if end > now:
            raise ValueError(
                f"day {chosen.isoformat()} is not over until {end.isoformat()}; "
                "its export would change as feedback arrives"
            )
    return chosen


def export_keys(day: date, prefix: str = EXPORT_PREFIX) -> dict[str, str]:
    """Staging key of every export file of ``day``, by file name."""
    folder = f"{prefix.strip('/')}/{day.isoformat()}"
    return {name: f"{folder}/{name}" for name in (*DATA_FILES, MANIFEST)}


# --------------------------------------------------------------------------- schemas


def export_schema() -> pa.Schema:
    """Schema of ``feedback.parquet``: the valid feedback record (body as text)."""
    return valid_schema()


def quarantine_export_schema() -> pa.Schema:
    """Schema of the exported ``quarantine.parquet``: raw columns, ``reasons``, ``body_bytes``."""
    import pyarrow as pa

    return quarantine_schema().append(pa.field("body_bytes", pa.int64()))


# ---------------------------------------------------------------------------- export


def export_feedback(
    conn: Any,
    staging: Staging,
    day: date,
    settings: ExportSettings | None = None,
    *,
    prefix: str = EXPORT_PREFIX,
    taxonomy: Taxonomy | None = None,
) -> ExportSummary:
    """Export one UTC day of validated, redacted feedback to staging (see the module docstring).

    Args:
        conn: an open psycopg 3 connection to the feedback database.
        staging: where the export goes (``<prefix>/<day>/...``).
        day: the UTC calendar day.
        settings: limits and chunk sizes (default :class:`ExportSettings`).
        prefix: staging folder of all exports.
        taxonomy: categories and actions to validate against (default: the project's).

    Returns:
        An :class:`ExportSummary`.

    Raises:
        ExportRejected: a batch-level check failed; nothing was written.
        psycopg.Error: the database failed (nothing was written; safe to retry).
    """
    settings = settings or ExportSettings()
    start, end = day_interval(day)
    keys = export_keys(day, prefix)
    with local_scratch() as tmp:
        from feedbackloop.extract import extract_feedback

        scratch = LocalStaging(tmp / "raw")
        extracted = extract_feedback(
            conn, scratch, "feedback_raw.parquet", start, end, chunk_rows=settings.extract_chunk_rows
        )
        validator = StreamingValidator(start, end, settings.limits, taxonomy)
        out = tmp / "out"
        out.mkdir()
        with _ExportWriters(out) as writers:
            for chunk in iter_raw_chunks(scratch.root / "feedback_raw.parquet", settings.validate_chunk_rows):
                result = validator.validate(chunk)
                writers.write(result.valid, result.quarantine)
        summary = validator.finish()
        if not summary["passed"]:
            raise ExportRejected(day, summary)
        _reconcile(extracted.rows, summary, writers.rows)

        files = {name: _file_info(out / name, writers.rows[name]) for name in DATA_FILES}
        manifest = _manifest(day, start, end, summary, writers.pii, files)
        uris = {name: staging.put_file(keys[name], out / name) for name in DATA_FILES}
        # Last: a manifest means every file it lists is complete.
        uris[MANIFEST] = staging.put_bytes(keys[MANIFEST], manifest_bytes(manifest))
    return ExportSummary(
        day=day,
        rows_read=summary["rows_read"],
        rows_exported=summary["rows_valid"],
        rows_quarantined=summary["rows_quarantined"],
        uris=uris,
        manifest=manifest,
    )


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The manifest as staged: sorted keys, two-space indent, trailing newline."""
    return (
        json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n"
    )


def _reconcile(extracted: int, summary: dict[str, Any], written: dict[str, int]) -> None:
    valid, quarantined = summary["rows_valid"], summary["rows_quarantined"]
    expected = {
        FEEDBACK_JSONL: valid,
        FEEDBACK_CSV: valid,
        FEEDBACK_PARQUET: valid,
        QUARANTINE_PARQUET: quarantined,
    }
    if summary["rows_read"] != extracted or valid + quarantined != extracted or written != expected:
        raise RuntimeError(
            f"export counts do not reconcile: extracted {extracted}, validated {summary['rows_read']} "
            f"({valid} valid + {quarantined} quarantined), written {written}"
        )


def _file_info(path: Path, rows: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return {"rows": rows, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _manifest(
    day: date,
    start: datetime,
    end: datetime,
    summary: dict[str, Any],
    pii: dict[str, dict[str, int]],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    return {
        "dataset": "feedback_export",
        "format_version": FORMAT_VERSION,
        "day": day.isoformat(),
        "interval": {"start": start.isoformat(), "end": end.isoformat()},
        "rows": {
            "read": summary["rows_read"],
            "exported": summary["rows_valid"],
            "quarantined": summary["rows_quarantined"],
        },
        "quarantine": {"share": summary["quarantine_share"], "reasons": summary["reasons"]},
        "batch_checks": summary["batch_checks"],
        "redaction": {
            "columns": list(REDACTED_COLUMNS),
            "sender_email_domain_kept": True,
            "quarantine_body_chars": QUARANTINE_BODY_CHARS,
            "replaced": pii,
        },
        "columns": [name for name, _ in FEEDBACK_COLUMNS],
        "files": files,
    }


# --------------------------------------------------------------------------- writers


class _ExportWriters:
    """The four data files, written chunk by chunk in a local folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.rows = dict.fromkeys(DATA_FILES, 0)
        self.pii = {"feedback": dict.fromkeys(PII_TYPES, 0), "quarantine": dict.fromkeys(PII_TYPES, 0)}

    def __enter__(self) -> _ExportWriters:
        self._jsonl = (self.folder / FEEDBACK_JSONL).open("w", encoding="utf-8", newline="\n")
        self._csv = (self.folder / FEEDBACK_CSV).open("w", encoding="utf-8", newline="\n")
        self._csv.write(",".join(name for name, _ in FEEDBACK_COLUMNS) + "\n")
        self._parquet = _RowGroupWriter(self.folder / FEEDBACK_PARQUET, export_schema())
        self._quarantine = _RowGroupWriter(self.folder / QUARANTINE_PARQUET, quarantine_export_schema())
        return self

    def __exit__(self, *exc: object) -> None:
        # Close all, even when one fails; an exception in the body propagates.
        for closer in (self._jsonl.close, self._csv.close, self._parquet.close, self._quarantine.close):
            closer()

    def write(self, valid: pa.Table, quarantine: pa.Table) -> None:
        valid = _redact_valid(valid, self.pii["feedback"])
        self._parquet.write(valid)
        for offset in range(0, valid.num_rows, _TEXT_SLICE_ROWS):
            jsonl, csv = _text_lines(valid.slice(offset, _TEXT_SLICE_ROWS))
            self._jsonl.writelines(jsonl)
            self._csv.writelines(csv)
        self._quarantine.write(_redact_quarantine(quarantine, self.pii["quarantine"]))
        for name in (FEEDBACK_JSONL, FEEDBACK_CSV, FEEDBACK_PARQUET):
            self.rows[name] += valid.num_rows
        self.rows[QUARANTINE_PARQUET] += quarantine.num_rows


class _RowGroupWriter:
    """A Parquet writer whose row groups hold exactly EXPORT_ROW_GROUP_ROWS rows (the last
    fewer), however the rows arrive."""

    def __init__(self, path: Path, schema: pa.Schema):
        import pyarrow.parquet as pq

        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        import pyarrow as pa

        if table.num_rows == 0:
            return
        self._pending.append(table.cast(self.schema))
        self._pending_rows += table.num_rows
        if self._pending_rows < EXPORT_ROW_GROUP_ROWS:
            return
        merged = pa.concat_tables(self._pending)
        full = merged.num_rows - merged.num_rows % EXPORT_ROW_GROUP_ROWS
        for offset in range(0, full, EXPORT_ROW_GROUP_ROWS):
            self._write_group(merged.slice(offset, EXPORT_ROW_GROUP_ROWS))
        rest = merged.slice(full)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _write_group(self, table: pa.Table) -> None:
        # combine_chunks: a row group is then encoded the same whatever pieces it came in.
        self._writer.write_table(table.combine_chunks(), row_group_size=EXPORT_ROW_GROUP_ROWS)

    def close(self) -> None:
        import pyarrow as pa

        if self._pending_rows:
            self._write_group(pa.concat_tables(self._pending))
        self._pending = []
        self._writer.close()


# ------------------------------------------------------------------------- redaction


class _RedactCache:
    """:func:`redact` with a per-chunk cache (subjects and senders repeat a lot) that adds
    each occurrence's counts to ``totals``."""

    def __init__(self, totals: dict[str, int], keep_email_domain: bool = False):
        self.totals = totals
        self.keep_email_domain = keep_email_domain
        self._seen: dict[str, tuple[str, dict[str, int]]] = {}

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        hit = self._seen.get(text)
        if hit is None:
            hit = self._seen[text] = redact(text, keep_email_domain=self.keep_email_domain)
        for kind, count in hit[1].items():
            if count:
                self.totals[kind] += count
        return hit[0]


def _map_column(table: pa.Table, name: str, fn: Callable[[Any], Any]) -> pa.Table:
    import pyarrow as pa

    index = table.schema.get_field_index(name)
    column_field = table.schema.field(index)
    values = [fn(v) for v in table.column(index).to_pylist()]
    return table.set_column(index, column_field, pa.array(values, type=column_field.type))


def _redact_valid(table: pa.Table, totals: dict[str, int]) -> pa.Table:
    text = _RedactCache(totals)
    table = _map_column(table, "sender", _RedactCache(totals, keep_email_domain=True))
    for name in ("subject", "body", "note"):
        table = _map_column(table, name, text)
    return table


def _redact_quarantine(table: pa.Table, totals: dict[str, int]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = _RedactCache(totals)
    sizes = pc.binary_length(table.column("body")).cast(pa.int64())
    table = _map_column(table, "sender", _RedactCache(totals, keep_email_domain=True))
    for name in ("subject", "note"):
        table = _map_column(table, name, text)
    table = _map_column(table, "body", lambda body: _redact_body_bytes(body, text))
    return table.append_column(pa.field("body_bytes", pa.int64()), sizes)


def _redact_body_bytes(body: bytes | None, text: _RedactCache) -> bytes | None:
    """Redact raw body bytes, keeping invalid UTF-8 bytes as they are, cut to
    QUARANTINE_BODY_CHARS characters outside any detected PII span."""
    if body is None:
        return None
    # surrogateescape maps each undecodable byte to a lone surrogate and back: lossless.
    decoded = body.decode("utf-8", "surrogateescape")
    if len(decoded) > QUARANTINE_BODY_CHARS:
        decoded = _cut_outside_pii(decoded, QUARANTINE_BODY_CHARS)
    return text(decoded).encode("utf-8", "surrogateescape")  # type: ignore[union-attr]


def _cut_outside_pii(value: str, limit: int) -> str:
    """``value[:cut]`` with ``cut <= limit`` moved back to the start of a PII span that
    crosses ``limit``, so no half of a phone number or address survives unredacted."""
    cut = limit
    for match in find_pii(value[: limit + _CUT_MARGIN_CHARS]):
        if match.start < cut < match.end:
            cut = match.start
    return value[:cut]


# ------------------------------------------------------------------------ text rows
#
# Lines are assembled column by column (one pass of a specialised formatter per column,
# timestamps formatted by Arrow), which is several times faster than formatting field by
# field with a type switch, and gives the same text.

_NAMES = tuple(name for name, _ in FEEDBACK_COLUMNS)
# Column kinds of the exported (valid) record: the body is text there.
_KIND_LIST = tuple("string" if name == "body" else kind for name, kind in FEEDBACK_COLUMNS)
_CSV_SPECIAL = re.compile(r'[",\r\n]')
# The encoder json.dumps(..., ensure_ascii=False) uses for str.
_json_str = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _text_lines(table: pa.Table) -> tuple[list[str], list[str]]:
    """The JSONL lines and CSV lines of a table with the export schema."""
    json_columns: list[list[str]] = []
    csv_columns: list[list[str]] = []
    for name, kind in zip(_NAMES, _KIND_LIST, strict=True):
        json_values, csv_values = _format_column(table.column(name), kind)
        key = _json_str(name) + ":"
        json_columns.append([key + v for v in json_values])
        csv_columns.append(csv_values)
    jsonl = ["{" + ",".join(parts) + "}\n" for parts in zip(*json_columns, strict=True)]
    csv = [",".join(parts) + "\n" for parts in zip(*csv_columns, strict=True)]
    return jsonl, csv


def _format_column(column: pa.ChunkedArray, kind: str) -> tuple[list[str], list[str]]:
    """One column as JSON values and as CSV fields (see the module docstring)."""
    import pyarrow.compute as pc

    if kind.startswith("timestamp"):
        # Arrow prints %S of a microsecond timestamp with its six decimals, in the column's
        # time zone (UTC): 2026-03-01T00:00:05.123456Z.
        text = pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
        return (
            ["null" if v is None else '"' + v + '"' for v in text],
            ["" if v is None else v for v in text],
        )
    values = column.to_pylist()
    if kind == "string":
        return (
            ["null" if v is None else _json_str(v) for v in values],
            ["" if v is None else _csv_text(v) for v in values],
        )
    if kind == "float64":
        return ([_json_float(v) for v in values], [_csv_float(v) for v in values])
    if kind == "bool":
        text = ["null" if v is None else ("true" if v else "false") for v in values]
        return text, ["" if v == "null" else v for v in text]
    if kind.startswith("list"):
        json_values = ["null" if v is None else _json_list(v) for v in values]
        return json_values, [
            "" if v is None else _csv_text(j) for v, j in zip(values, json_values, strict=True)
        ]
    raise TypeError(f"no text form for column kind {kind!r}")  # a new contract type: extend this


def _json_float(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "null"
    return repr(float(value))


def _csv_float(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def _json_list(values: list[str | None]) -> str:
    return "[" + ",".join("null" if v is None else _json_str(v) for v in values) + "]"


def _csv_text(value: str) -> str:
    if value == "" or _CSV_SPECIAL.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value
