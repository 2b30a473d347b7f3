"""
### feedback_retraining

Weekly closed loop: turn the week's human feedback into a better classifier, safely.

`extract_feedback` -> `validate_feedback` (Great Expectations; bad rows quarantined with a
reason) -> `compute_rewards` (0.4 classification / 0.3 actions / 0.2 calibration /
0.1 engagement) -> `build_training_sets` (supervised + preference pairs, PII-redacted,
golden-guarded, 80/20 stable split) -> `train_challenger` -> `evaluate_golden_set` ->
`gate` (>= 95% overall, >= 98% critical, p95 latency, calibration, paired test vs the
champion) -> `deploy_challenger` (5% canary) -> `notify` (Slack `slack_alerts`).

Artifacts: `<staging>/feedback_retraining/<run>/`. Decisions: tables `ml.model_versions`,
`ml.golden_runs`, `ml.deployments`. A failing gate stops before deploy; `notify` still
reports why, and `watcher` marks the run failed.

Trigger manually with the form to pick the trainer, thresholds, a dry run, or an explicit
feedback interval (ISO timestamps with a time zone).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from feedbackloop_airflow.callbacks import failure_notifier
from feedbackloop_airflow.operators import (
    BuildTrainingSetsOperator,
    ComputeRewardsOperator,
    DeployChallengerOperator,
    EvaluateGoldenSetOperator,
    ExtractFeedbackOperator,
    GoldenGateOperator,
    NotifyOperator,
    TrainChallengerOperator,
    ValidateFeedbackOperator,
)

STAGES = {
    "extract": "extract_feedback",
    "validate": "validate_feedback",
    "rewards": "compute_rewards",
    "datasets": "build_training_sets",
    "train": "train_challenger",
    "evaluate": "evaluate_golden_set",
    "gate": "gate",
    "deploy": "deploy_challenger",
}


@dag(
    dag_id="feedback_retraining",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("0 2 * * 0", timezone="UTC"),  # Sundays 02:00 UTC, weekly interval
    catchup=False,
    max_active_runs=1,
    on_failure_callback=failure_notifier(already_notified=("watcher",)),  # notify already reported why
    render_template_as_native_obj=True,
    tags=["feedback-loop", "training", "gate"],
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(hours=2),
    },
    params={
        "trainer": Param("local", enum=["local", "openai", "fewshot"], description="Training backend."),
        "base_model": Param(None, type=["null", "string"],
                            description="Base model; empty = the backend's default (e.g. gpt-4o-mini for openai)."),
        "finetune_method": Param("supervised", enum=["supervised", "dpo"],
                                 description="OpenAI fine-tuning method: chat examples or preference pairs."),
        "max_cost_usd": Param(25.0, type="number", minimum=0, description="Cost guard for a fine-tuning job."),
        "min_examples": Param(10, type="integer", minimum=10, maximum=1_000_000,
                              description="Fewest training examples accepted (OpenAI requires 10)."),
        "max_quarantine_share": Param(0.05, type="number", minimum=0, maximum=1,
                                      description="Fail when more than this share of rows is quarantined."),
        "min_accuracy": Param(0.95, type="number", minimum=0, maximum=1, description="Gate: overall accuracy."),
        "min_critical_accuracy": Param(0.98, type="number", minimum=0, maximum=1,
                                       description="Gate: accuracy on critical emails."),
        "max_ece": Param(0.05, type="number", minimum=0, maximum=1,
                         description="Gate: expected calibration error (15 bins), at most."),
        "max_p95_latency_ms": Param(500.0, type="number", exclusiveMinimum=0,
                                    description="Gate: p95 latency per email, strictly below (ms)."),
        "traffic_share": Param(0.05, type="number", enum=[0.05, 0.25, 0.5],
                               description="Canary traffic share of the challenger (a ramp step)."),
        "dry_run": Param(False, type="boolean", description="Run everything but do not deploy."),
        "interval_start": Param(None, type=["null", "string"], format="date-time",
                                description="Override the feedback interval start (inclusive)."),
        "interval_end": Param(None, type=["null", "string"], format="date-time",
                              description="Override the feedback interval end (exclusive)."),
    },
)
def feedback_retraining():
    extract = ExtractFeedbackOperator(task_id=STAGES["extract"])
    validate = ValidateFeedbackOperator(
        task_id=STAGES["validate"], max_quarantine_share="{{ params.max_quarantine_share }}"
    )
    rewards = ComputeRewardsOperator(task_id=STAGES["rewards"])
    datasets = BuildTrainingSetsOperator(task_id=STAGES["datasets"], min_examples="{{ params.min_examples }}")
    train = TrainChallengerOperator(
        task_id=STAGES["train"],
        trainer="{{ params.trainer }}",
        base_model="{{ params.base_model }}",
        method="{{ params.finetune_method }}",
        max_cost_usd="{{ params.max_cost_usd }}",
    )
    evaluate = EvaluateGoldenSetOperator(task_id=STAGES["evaluate"])
    gate = GoldenGateOperator(
        task_id=STAGES["gate"],
        thresholds={
            "min_accuracy": "{{ params.min_accuracy }}",
            "min_critical_accuracy": "{{ params.min_critical_accuracy }}",
            "max_ece": "{{ params.max_ece }}",
            "max_p95_latency_ms": "{{ params.max_p95_latency_ms }}",
        },
    )
    deploy = DeployChallengerOperator(
        task_id=STAGES["deploy"], traffic_share="{{ params.traffic_share }}", dry_run="{{ params.dry_run }}"
    )
    notify = NotifyOperator(task_id="notify", stage_task_ids=STAGES, retries=0)

    @task(trigger_rule="one_failed", retries=0)
    def watcher():
        """Fail the run when any stage failed (notify, a leaf that always runs, would hide it)."""
        raise RuntimeError("a stage of this run failed; see notify's message and the failed task's log")

    extract >> validate >> rewards >> datasets >> train >> evaluate >> gate >> deploy >> notify
    [extract, validate, rewards, datasets, train, evaluate, gate, deploy] >> watcher()


feedback_retraining()
