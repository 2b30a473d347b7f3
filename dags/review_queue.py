"""
### review_queue

Hourly routing of uncertain predictions to people who can correct them, which is what
feeds the loop, plus the numbers of the app's rewards screen.

`update_review_queue` (table `ml.review_queue`, read by the app):

- items whose prediction has received feedback since are **resolved** (they leave the
  queue); items pending for more than 7 days **expire**;
- production predictions of the last 24 h with confidence below `confidence_threshold`
  (0.70), no feedback and never queued before are **queued**, highest priority first:
  `priority = (1 - confidence) x criticality x problem_factor`, where criticality weighs
  the predicted category's taxonomy priority (critical 2.0, high 1.5, medium 1.2, low 1.0)
  and problem_factor is 1.5 for emails showing a known problem area (non-English text,
  quoted replies);
- each item goes to the least-loaded reviewer (contributors with recent accepted
  feedback, never the email's own user), at most `per_reviewer_daily_cap` a day and
  `daily_cap` overall, so nobody is flooded. A prediction is never queued twice.

`refresh_contributor_stats` rebuilds `ml.contributor_stats` / `ml.contributor_weekly`
(view `ml.contributor_leaderboard`): accepted cards, free months (10 cards = 1 month),
this week's rank, and the impact line of models trained on the contributor's feedback.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from feedbackloop_airflow.callbacks import notify_dag_failure
from feedbackloop_airflow.monitor_operators import RefreshContributorStatsOperator, RefreshReviewQueueOperator

POLICY_PARAMS = {
    "confidence_threshold": Param(
        0.70,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        description="Predictions below this confidence go to human review.",
    ),
    "daily_cap": Param(200, type="integer", minimum=0, description="Most items queued per UTC day, overall."),
    "per_reviewer_daily_cap": Param(
        10, type="integer", minimum=0, description="Most items assigned to one reviewer per UTC day."
    ),
    "per_reviewer_max_pending": Param(
        30, type="integer", minimum=0, description="Most pending items one reviewer may hold."
    ),
}


@dag(
    dag_id="review_queue",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),  # hourly, on the hour that ended
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["feedback-loop", "human-review", "rewards"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=20),
    },
    on_failure_callback=notify_dag_failure,
    params=POLICY_PARAMS,
)
def review_queue():
    # Two independent tasks: a failure of one must not hold up the other.
    RefreshReviewQueueOperator(
        task_id="update_review_queue",
        policy={name: f"{{{{ params.{name} }}}}" for name in POLICY_PARAMS},
    )
    RefreshContributorStatsOperator(task_id="refresh_contributor_stats")


review_queue()
