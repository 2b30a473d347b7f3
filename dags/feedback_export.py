"""
### feedback_export

Daily at 01:00 UTC: export the previous UTC day's validated feedback for analysts and
external trainers, and update the Asset `feedback_export` that other DAGs schedule on.

`export_feedback` extracts the day `[D 00:00, D+1 00:00)` from the feedback DB, validates it
with the same Great Expectations suite as retraining (bad rows are quarantined with reason
codes), redacts PII (sender, subject, body, note) and writes, under
`<staging>/feedback_export/<YYYY-MM-DD>/`:

| file | content |
|---|---|
| `feedback.jsonl`, `feedback.csv`, `feedback.parquet` | the valid rows |
| `quarantine.parquet` | rejected rows with `reasons` |
| `manifest.json` | row counts (read = exported + quarantined), checks, sha256 of each file; written last |

The output depends only on the day: re-runs and backfills write identical bytes. To export a
past day, trigger with `day` = `YYYY-MM-DD`. A day whose quarantined share exceeds
`max_quarantine_share` (or with no feedback at all) fails without retry and exports nothing.

Consumers: `schedule=[FEEDBACK_EXPORT_ASSET]` (from `feedbackloop_airflow.export_operators`);
the asset event's `extra` holds `day`, `manifest_uri` and the row counts.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from feedbackloop_airflow.export_operators import FEEDBACK_EXPORT_ASSET, ExportFeedbackOperator


@dag(
    dag_id="feedback_export",
    doc_md=__doc__,
    # Daily interval [D 01:00, D+1 01:00): the run at D+1 01:00 exports day D, an hour after
    # it ended, so late writes of day D are in.
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["feedback-loop", "export", "data-quality"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="UTC day to export (YYYY-MM-DD), e.g. for a backfill; empty = the run's day.",
        ),
        "max_quarantine_share": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail (and export nothing) when more than this share of rows is quarantined.",
        ),
    },
)
def feedback_export():
    ExportFeedbackOperator(
        task_id="export_feedback",
        day="{{ params.day }}",
        max_quarantine_share="{{ params.max_quarantine_share }}",
        outlets=[FEEDBACK_EXPORT_ASSET],
    )


feedback_export()
