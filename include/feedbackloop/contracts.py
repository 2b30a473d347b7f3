"""Data contracts shared by every pipeline stage.

One *feedback record* is one prediction that a user gave feedback on (a category correction
and/or action feedback), joined with the email and the engagement signal. It is produced by
the SQL view ``ml.feedback_records`` (see ``migrations/ml``), staged as Parquet by
``extract`` and checked by ``validate``.

Stage artifacts (under ``<staging root>/<dag_id>/<run key>/``):

==========================  =====================================================
``feedback_raw.parquet``    :data:`RAW_SCHEMA` (body still raw bytes)
``feedback_valid.parquet``  :data:`VALID_SCHEMA` (body decoded)
``quarantine.parquet``      raw columns + ``reasons`` list<string>, one row per bad row
``rewards.parquet``         valid columns + reward columns (see ``rewards``)
==========================  =====================================================
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# Byte limits for an email body. Bodies above the limit are quarantined (they are
# attachments pasted inline or app bugs, and would dominate training cost).
MAX_BODY_BYTES: Final = 1_000_000


class Reason(StrEnum):
    """Reason codes for quarantined feedback rows. Stable strings: dashboards key on them."""

    NULL_REQUIRED_FIELD = "null_required_field"
    UNKNOWN_CATEGORY = "unknown_category"
    CONFIDENCE_OUT_OF_RANGE = "confidence_out_of_range"
    CONFIDENCE_NAN = "confidence_nan"
    UNKNOWN_ACTION = "unknown_action"
    DUPLICATE_FEEDBACK_ID = "duplicate_feedback_id"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    EMPTY_BODY = "empty_body"
    BODY_TOO_LARGE = "body_too_large"
    INVALID_UTF8 = "invalid_utf8"


# Column order of the feedback record. Types are given as pyarrow type names; the
# pyarrow schemas are built lazily so that importing this module stays cheap.
FEEDBACK_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("feedback_id", "string"),
    ("prediction_id", "string"),
    ("email_id", "string"),
    ("user_id", "string"),
    ("model_version", "string"),
    ("variant", "string"),
    ("sender", "string"),
    ("subject", "string"),
    ("body", "binary"),  # raw bytes in the raw extract; "string" once validated
    ("predicted_category", "string"),
    ("confidence", "float64"),
    ("predicted_actions", "list<string>"),
    ("latency_ms", "float64"),
    ("predicted_at", "timestamp[us, UTC]"),
    ("corrected_category", "string"),  # NULL: the user accepted the predicted category
    ("missed_actions", "list<string>"),
    ("unnecessary_actions", "list<string>"),
    ("note", "string"),
    ("user_took_action", "bool"),
    ("feedback_at", "timestamp[us, UTC]"),
)

# Columns that must never be NULL in a valid record.
REQUIRED_COLUMNS: Final = (
    "feedback_id",
    "prediction_id",
    "email_id",
    "user_id",
    "predicted_category",
    "confidence",
    "predicted_at",
    "feedback_at",
    "body",
)


def _arrow_type(name: str):  # noqa: ANN202 - pyarrow imported lazily
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "binary": pa.binary(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "list<string>": pa.list_(pa.string()),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
    }
    return simple[name]


def raw_schema():  # noqa: ANN201
    """pyarrow schema of ``feedback_raw.parquet``."""
    import pyarrow as pa

    return pa.schema([(n, _arrow_type(t)) for n, t in FEEDBACK_COLUMNS])


def valid_schema():  # noqa: ANN201
    """pyarrow schema of ``feedback_valid.parquet`` (body decoded to UTF-8 text)."""
    import pyarrow as pa

    return pa.schema([(n, _arrow_type("string" if n == "body" else t)) for n, t in FEEDBACK_COLUMNS])
