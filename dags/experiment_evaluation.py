"""
### experiment_evaluation

Daily A/B evaluation of the challenger (deployed as a 5% canary by `feedback_retraining`)
against the champion, at 06:00 UTC on the data up to midnight UTC.

`evaluate_experiment` reads the current ramp stage's predictions and feedback per variant
from the app tables, then decides, with the statistics recorded:
sample-ratio mismatch (chi-square, p < 0.001) **halts** and alerts; accuracy (chi-square or
Fisher's exact test) beyond a sequential O'Brien-Fleming boundary **rolls back** (harm) or,
at 50%, **promotes** (win); latency (Welch's t-test on log latency, p95 difference) and
engagement (Beta-Binomial: P(challenger better), expected loss) are guardrails. Ramps go
5% -> 25% -> 50%, only after 7 days live and 1000 samples per arm; promotion makes the
challenger the champion at 100% and retires the old one; rollback removes the challenger.
A stage that reaches 14 daily looks without progress rolls back.

Each decision is recorded once per experiment and day (`ml.experiment_decisions`) and
applied in the same transaction (`ml.deployments`, audit in `ml.deployment_history`), so
retries and concurrent runs never act twice. Slack (`slack_alerts`) gets the numbers.

**Manual override**: trigger with `action` = `force_promote` or `force_rollback` and a
`reason` (required); it replaces the day's automatic decision and is recorded with who and
why. Details: `docs/experiments.md`; user assignment for the app: `docs/ab_assignment.md`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag

from feedbackloop_airflow.callbacks import notify_dag_failure
from feedbackloop_airflow.experiment_operators import EvaluateExperimentOperator


@dag(
    dag_id="experiment_evaluation",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),  # daily 06:00 UTC
    catchup=False,
    on_failure_callback=notify_dag_failure,
    max_active_runs=1,
    tags=["feedback-loop", "experiment", "ab-test"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "action": Param(
            "auto",
            enum=["auto", "force_promote", "force_rollback"],
            values_display={
                "auto": "Automatic (the statistics decide)",
                "force_promote": "Force promote the challenger",
                "force_rollback": "Force roll back the challenger",
            },
            description="Automatic decision, or a manual override recorded in the audit history.",
        ),
        "reason": Param(
            "",
            type="string",
            maxLength=500,
            description="Why: required for force_promote / force_rollback (shown in Slack and the audit history).",
        ),
    },
)
def experiment_evaluation():
    EvaluateExperimentOperator(
        task_id="evaluate_experiment",
        action="{{ params.action }}",
        reason="{{ params.reason }}",
    )


experiment_evaluation()
