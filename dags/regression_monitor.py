"""
### regression_monitor

Hourly watch over production: predictions and feedback of the app (`feedback_db`) against a
baseline, the champion's behaviour over the 7 days before the evaluated window.

`evaluate_regressions` runs four detectors at the end of the hour (each with a minimum-sample
guard, so a quiet hour neither fires nor clears anything):

- **accuracy_drop**: accuracy over the last 24 h more than 2 points below the baseline,
  confirmed by a one-sided test and sustained (3 of the 4 six-hour blocks below the line);
- **latency_p95**: p95 latency over the last hour above 500 ms (binomial test on the share
  of slower requests);
- **calibration_error**: expected calibration error of the last 24 h's labelled predictions
  above 10% beyond its sampling-noise floor;
- **category_imbalance**: one category's share of the last 24 h far from its baseline share
  (two-proportion z-tests with Holm correction plus an effect-size floor), one incident per
  category.

`record_alerts` keeps one incident per detector and key in `ml.alerts`: it opens once,
repeats are suppressed, and it resolves when the signal clears. `notify_alerts` posts each
opening and each resolution once to Slack (`slack_alerts`, Block Kit with the metric, the
threshold, the window and links to this run and the dashboard); if Slack is down the run
still succeeds and the message goes out with the next run. A failed run sends one failure
notification (not one per retry). Thresholds are in the trigger form.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from feedbackloop_airflow.callbacks import notify_dag_failure
from feedbackloop_airflow.monitor_operators import (
    EvaluateRegressionsOperator,
    NotifyAlertsOperator,
    RecordAlertsOperator,
)

THRESHOLD_PARAMS = {
    "accuracy_max_drop": Param(
        0.02,
        type="number",
        minimum=0,
        maximum=0.5,
        description="Alert when accuracy is this far below the baseline (0.02 = 2 points).",
    ),
    "accuracy_min_samples": Param(
        200,
        type="integer",
        minimum=1,
        description="Fewest labelled predictions in the 24 h window to judge accuracy.",
    ),
    "latency_p95_ms": Param(500.0, type="number", exclusiveMinimum=0, description="p95 latency SLO (ms)."),
    "latency_min_samples": Param(
        50, type="integer", minimum=1, description="Fewest predictions in the hour to judge latency."
    ),
    "max_ece": Param(
        0.10,
        type="number",
        minimum=0,
        maximum=1,
        description="Alert when the calibration error exceeds this (beyond sampling noise).",
    ),
    "calibration_min_samples": Param(
        300, type="integer", minimum=1, description="Fewest labelled predictions to judge calibration."
    ),
    "imbalance_min_effect": Param(
        0.2, type="number", minimum=0, description="Smallest category-share shift (Cohen's h) worth an alert."
    ),
    "imbalance_min_samples": Param(
        500,
        type="integer",
        minimum=1,
        description="Fewest predictions in the 24 h window to judge the category mix.",
    ),
}


@dag(
    dag_id="regression_monitor",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),  # hourly, evaluates the hour that ended
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["feedback-loop", "monitoring", "alerts"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=20),
    },
    on_failure_callback=notify_dag_failure,
    params=THRESHOLD_PARAMS,
)
def regression_monitor():
    evaluate = EvaluateRegressionsOperator(
        task_id="evaluate_regressions",
        thresholds={name: f"{{{{ params.{name} }}}}" for name in THRESHOLD_PARAMS},
    )
    record = RecordAlertsOperator(task_id="record_alerts", evaluate_task_id="evaluate_regressions")
    notify = NotifyAlertsOperator(task_id="notify_alerts")

    evaluate >> record >> notify


regression_monitor()
