"""
### golden_set_validation

Nightly (03:00 UTC) check that the models users are served still pass the golden set.

`validate_champion` -> `validate_challenger` -> `alert`

Each validation evaluates the model behind the registry alias (`ml.deployments`) on the
versioned golden set, applies the release gate's thresholds (>= 95% overall, >= 98% on
critical emails, p95 latency, calibration; the challenger also gets the paired test against
the champion), and compares the result with the last recorded run of the same model
version on the same golden-set version: an accuracy drop of more than 2 points, or any
drop on a critical slice, is a regression. Every run is written to `ml.golden_runs` with its
checks, and `report.json`, `report.html` and PNG plots are staged under
`<staging>/golden_set_validation/<run>/<alias>/`.

`alert` posts to Slack (`slack_alerts`) when a model fell below a threshold, regressed,
or could not be validated, then fails the run so it shows red here too. No champion
registered yet is not an alert: the run succeeds and says "no champion yet".

Trigger manually with the form to try other thresholds.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag

from feedbackloop_airflow.callbacks import failure_notifier
from feedbackloop_airflow.golden_operators import GoldenValidationAlertOperator, GoldenValidationOperator

VALIDATIONS = {"champion": "validate_champion", "challenger": "validate_challenger"}
THRESHOLDS = {
    "min_accuracy": "{{ params.min_accuracy }}",
    "min_critical_accuracy": "{{ params.min_critical_accuracy }}",
    "max_ece": "{{ params.max_ece }}",
    "max_p95_latency_ms": "{{ params.max_p95_latency_ms }}",
}


@dag(
    dag_id="golden_set_validation",
    doc_md=__doc__,
    # A daily data interval ending at 03:00 UTC: runs are keyed by it like every stage.
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    catchup=False,
    on_failure_callback=failure_notifier(already_notified=("alert",)),  # alert posted the evidence
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["feedback-loop", "golden-set", "monitoring"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "min_accuracy": Param(
            0.95, type="number", minimum=0, maximum=1, description="Overall accuracy, at least."
        ),
        "min_critical_accuracy": Param(
            0.98,
            type="number",
            minimum=0,
            maximum=1,
            description="Accuracy on critical-priority emails, at least.",
        ),
        "max_ece": Param(
            0.05,
            type="number",
            minimum=0,
            maximum=1,
            description="Expected calibration error (15 bins), at most.",
        ),
        "max_p95_latency_ms": Param(
            500.0,
            type="number",
            exclusiveMinimum=0,
            description="p95 latency per email, strictly below (ms).",
        ),
        "max_accuracy_drop": Param(
            0.02,
            type="number",
            minimum=0,
            maximum=1,
            description="Regression: largest allowed accuracy drop vs the last run.",
        ),
        "fail_on_alert": Param(True, type="boolean", description="Fail the run after alerting."),
    },
)
def golden_set_validation():
    champion = GoldenValidationOperator(
        task_id=VALIDATIONS["champion"],
        alias="champion",
        thresholds=THRESHOLDS,
        max_accuracy_drop="{{ params.max_accuracy_drop }}",
    )
    # The challenger's paired test reuses the champion's staged evaluation.
    challenger = GoldenValidationOperator(
        task_id=VALIDATIONS["challenger"],
        alias="challenger",
        thresholds=THRESHOLDS,
        max_accuracy_drop="{{ params.max_accuracy_drop }}",
        trigger_rule="all_done",
    )
    alert = GoldenValidationAlertOperator(
        task_id="alert",
        validation_task_ids=VALIDATIONS,
        fail_on_alert="{{ params.fail_on_alert }}",
        retries=0,
    )

    champion >> challenger >> alert


golden_set_validation()
