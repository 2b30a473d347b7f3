"""The daily feedback export as an operator, and the Asset it updates.

Other DAGs schedule on the export with ``schedule=[FEEDBACK_EXPORT_ASSET]``; each asset
event's ``extra`` names the exported day, the manifest URI and the row counts, so a consumer
reads exactly that day's files (``triggering_asset_events`` in its context).

The asset URI is logical (``x-feedbackloop://``): the files live under whatever staging root
the deployment uses (``file://`` embedded, ``s3://`` in production), and the URI must not
change with it. Airflow passes ``x-`` schemes through without normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset

from feedbackloop_airflow.operators import FeedbackLoopOperator

FEEDBACK_EXPORT_ASSET = Asset(
    name="feedback_export", uri="x-feedbackloop://feedback_export", group="feedbackloop"
)


def _given(value: Any) -> bool:
    """A templated optional value that was actually set (not None / "" / "None")."""
    return value is not None and str(value).strip() not in ("", "None")


class ExportFeedbackOperator(FeedbackLoopOperator):
    """Export one UTC day of validated, PII-redacted feedback (JSONL, CSV, Parquet, quarantine,
    manifest) to ``<staging>/<prefix>/<YYYY-MM-DD>/``.

    The day is ``day`` when given (backfill: any past day, identical output on every run),
    else the UTC day of the run's data interval start. A day that fails the data-quality
    gate fails the task without retry and exports nothing; database and staging errors are
    retried (a partial export is never visible: the manifest is written last).

    Args:
        day: ``YYYY-MM-DD`` or None (templated).
        max_quarantine_share: largest tolerated share of quarantined rows (templated).
        min_rows: fewest rows a day may have (templated).
        prefix: staging folder of the exports.
    """

    template_fields: Sequence[str] = (
        *FeedbackLoopOperator.template_fields,
        "day",
        "max_quarantine_share",
        "min_rows",
    )
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        day: Any = None,
        max_quarantine_share: Any = 0.05,
        min_rows: Any = 1,
        prefix: str = "feedback_export",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.day = day
        self.max_quarantine_share = max_quarantine_share
        self.min_rows = min_rows
        self.prefix = prefix

    def execute(self, context: Any) -> dict[str, Any]:
        from datetime import UTC, datetime

        from airflow.sdk.exceptions import AirflowFailException

        from feedbackloop.export import ExportRejected, ExportSettings, export_feedback, resolve_export_day
        from feedbackloop.quality_stream import BatchLimits
        from feedbackloop_airflow.operators import checked_number

        # A scheduled run exports the UTC day of its data interval start; a manual run
        # without a data interval must name the day.
        interval_start = None if _given(self.day) else context.get("data_interval_start")
        try:
            day = resolve_export_day(
                self.day if _given(self.day) else None, interval_start, datetime.now(UTC)
            )
            settings = ExportSettings(
                limits=BatchLimits(
                    max_quarantine_share=checked_number(
                        "max_quarantine_share", self.max_quarantine_share, minimum=0, maximum=1
                    ),
                    min_rows=checked_number("min_rows", self.min_rows, minimum=0, integer=True),
                )
            )
        except ValueError as exc:
            raise AirflowFailException(f"cannot export: {exc}") from exc
        self.log.info(
            "exporting feedback of %s to %s/%s", day, self.staging_uri or "<default staging>", self.prefix
        )
        with self.db() as conn:
            try:
                summary = export_feedback(conn, self.staging(), day, settings, prefix=self.prefix)
            except ExportRejected as exc:
                self.publish(
                    context, {"failed": True, "day": day.isoformat(), "error": str(exc), **exc.summary}
                )
                raise AirflowFailException(str(exc)) from exc
        result = summary.to_dict()
        event_extra = {
            k: result[k] for k in ("day", "manifest_uri", "rows_read", "rows_exported", "rows_quarantined")
        }
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = dict(event_extra)
        self.log.info(
            "exported %d rows (%d quarantined) of %s; manifest %s",
            summary.rows_exported,
            summary.rows_quarantined,
            day,
            summary.manifest_uri,
        )
        return self.publish(context, result)
