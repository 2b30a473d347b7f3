"""One thin operator per pipeline stage.

Every operator resolves its run (DAG id, run id, data interval, optionally overridden by the
``interval_start`` / ``interval_end`` params of a manual trigger), opens staging and the
feedback DB through hooks, calls one function of :mod:`feedbackloop.pipeline`, and returns
its small JSON summary (the XCom). Artifacts stay in staging.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import BaseOperator

from feedbackloop_airflow.hooks import StagingHook, feedback_db_connection
from feedbackloop_airflow.openai_training import FineTuneDeferrableMixin

STAGE_XCOM_KEY = "summary"


def _as_datetime(value: Any, name: str = "interval bound") -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 timestamp with a time zone, e.g. 2026-11-15T02:00:00+00:00, "
            f"got {value!r}"
        ) from None


def checked_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    integer: bool = False,
) -> Any:
    """A templated (often string) operator argument as a number within its range.

    Bad input is the task's to refuse, whatever the trigger form let through (the form
    validates the DAG's params; an operator can also get values from elsewhere): the task
    fails at once, without retries, naming the argument, the allowed range and the value.

    Raises:
        AirflowFailException: not a number, not an integer when one is required, or out of range.
    """
    import math

    from airflow.sdk.exceptions import AirflowFailException

    kind = "an integer" if integer else "a number"
    lo = "" if minimum is None else (f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}")
    hi = "" if maximum is None else f"<= {maximum:g}"
    allowed = " and ".join(p for p in (lo, hi) if p)
    wanted = f"{kind}{' ' + allowed if allowed else ''}"
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number) or (integer and number != int(number)):
            raise ValueError
    except (TypeError, ValueError):
        raise AirflowFailException(f"{name} must be {wanted}, got {value!r}") from None
    too_low = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    if too_low or (maximum is not None and number > maximum):
        raise AirflowFailException(f"{name} must be {wanted}, got {value!r}")
    return int(number) if integer else number


class FeedbackLoopOperator(BaseOperator):
    """Base of the stage operators: staging, feedback DB and the run's identity.

    Args:
        staging_uri: staging root (``file://`` or ``s3://``); default from
            ``FEEDBACKLOOP_STAGING_URI``.
        aws_conn_id: connection for S3 staging.
        postgres_conn_id: connection to the feedback DB (holds the ``ml`` schema too).
    """

    template_fields: Sequence[str] = ("staging_uri",)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        staging_uri: str | None = None,
        aws_conn_id: str = "aws_default",
        postgres_conn_id: str = "feedback_db",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.staging_uri = staging_uri
        self.aws_conn_id = aws_conn_id
        self.postgres_conn_id = postgres_conn_id

    def staging(self) -> Any:
        return StagingHook(self.staging_uri, self.aws_conn_id).get_conn()

    def db(self) -> Any:
        return feedback_db_connection(self.postgres_conn_id)

    def run_context(self, context: Any) -> Any:
        from feedbackloop.pipeline import RunContext

        params = context.get("params") or {}
        start = params.get("interval_start") or context.get("data_interval_start")
        end = params.get("interval_end") or context.get("data_interval_end")
        if start is None or end is None:
            raise ValueError("the run has no data interval; give interval_start and interval_end")
        start, end = _as_datetime(start, "interval_start"), _as_datetime(end, "interval_end")
        for name, bound in (("interval_start", start), ("interval_end", end)):
            if bound.tzinfo is None:
                raise ValueError(
                    f"{name} must carry a time zone, e.g. {bound.isoformat()}+00:00 for UTC, got {bound.isoformat()}"
                )
        if not start < end:
            raise ValueError(f"interval_start {start.isoformat()} must be before interval_end {end.isoformat()}")
        return RunContext(dag_id=context["dag"].dag_id, run_id=context["run_id"], start=start, end=end)

    @staticmethod
    def publish(context: Any, summary: dict[str, Any]) -> dict[str, Any]:
        """Push a summary under a stable key even when the stage then raises."""
        context["ti"].xcom_push(key=STAGE_XCOM_KEY, value=summary)
        return summary


class ExtractFeedbackOperator(FeedbackLoopOperator):
    """Stream the run's feedback interval from the feedback DB into staged Parquet."""

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        run = self.run_context(context)
        with self.db() as conn:
            return self.publish(context, pipeline.extract(conn, self.staging(), run))


class ValidateFeedbackOperator(FeedbackLoopOperator):
    """Great Expectations data-quality gate; quarantines bad rows with reason codes."""

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "max_quarantine_share", "min_rows")

    def __init__(self, *, max_quarantine_share: Any = 0.05, min_rows: Any = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_quarantine_share = max_quarantine_share
        self.min_rows = min_rows

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline
        from feedbackloop.quality import DataQualityError

        settings = pipeline.ValidationSettings(
            max_quarantine_share=checked_number(
                "max_quarantine_share", self.max_quarantine_share, minimum=0, maximum=1
            ),
            min_rows=checked_number("min_rows", self.min_rows, minimum=0, integer=True),
        )
        try:
            summary = pipeline.validate(self.staging(), self.run_context(context), settings)
        except DataQualityError as exc:
            self.publish(context, {"failed": True, "error": str(exc), **getattr(exc, "summary", {})})
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"data-quality gate failed: {exc}") from exc
        return self.publish(context, summary)


class ComputeRewardsOperator(FeedbackLoopOperator):
    """The brief's multi-objective reward for every valid feedback record."""

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "weights")

    def __init__(self, *, weights: dict[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weights = weights

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        return self.publish(context, pipeline.rewards(self.staging(), self.run_context(context), self.weights))


class BuildTrainingSetsOperator(FeedbackLoopOperator):
    """Supervised + preference training sets: redacted, balanced, golden-guarded, split."""

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "min_examples")

    def __init__(self, *, min_examples: Any = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_examples = min_examples

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        config = {"min_examples": checked_number("min_examples", self.min_examples, minimum=1, integer=True)}
        return self.publish(context, pipeline.datasets(self.staging(), self.run_context(context), config))


class TrainChallengerOperator(FineTuneDeferrableMixin, FeedbackLoopOperator):
    """Train the challenger with the chosen backend (``local`` by default).

    ``local`` and ``fewshot`` train inside the task. ``openai`` fine-tuning submits (or
    re-attaches to) the run's one remote job, then defers to a trigger on the triggerer, so
    no worker slot is held for the hours the job takes.
    """

    template_fields: Sequence[str] = (
        *FeedbackLoopOperator.template_fields, "trainer", "base_model", "method", "max_cost_usd", "openai_conn_id",
    )

    def __init__(
        self,
        *,
        trainer: str = "local",
        base_model: str | None = None,
        method: str = "supervised",
        max_cost_usd: Any = 25.0,
        openai_conn_id: str = "openai_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.trainer = trainer
        self.base_model = base_model
        self.method = method
        self.max_cost_usd = max_cost_usd
        self.openai_conn_id = openai_conn_id

    def settings(self) -> Any:
        from feedbackloop import pipeline

        return pipeline.TrainSettings(
            trainer=str(self.trainer),
            base_model=str(self.base_model) if self.base_model not in (None, "", "None") else None,
            method=str(self.method),
            max_cost_usd=checked_number("max_cost_usd", self.max_cost_usd, minimum=0),
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        settings = self.settings()
        if settings.trainer == "openai":
            return self.execute_fine_tune(context)
        return self.publish(context, pipeline.train(self.staging(), self.run_context(context), settings))

    # -- hooks of FineTuneDeferrableMixin (trainer=openai)

    def fine_tune_request(self, context: Any) -> Any:
        from feedbackloop import pipeline

        return pipeline.openai_request(self.run_context(context), self.settings())

    def fine_tune_spec_base(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        return pipeline.spec_base(self.staging(), self.run_context(context), self.settings())

    def publish_fine_tuned_spec(self, context: Any, spec: Any) -> dict[str, Any]:
        from feedbackloop import pipeline

        return self.publish(context, pipeline.finish_remote(self.staging(), self.run_context(context), spec))


class EvaluateGoldenSetOperator(FeedbackLoopOperator):
    """Classify the golden set with the challenger and the current champion."""

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "openai_conn_id")

    def __init__(self, *, openai_conn_id: str = "openai_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.openai_conn_id = openai_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop import pipeline, registry
        from feedbackloop.pipeline import MODEL_SPEC, needs_openai
        from feedbackloop.staging import read_json

        run = self.run_context(context)
        staging = self.staging()
        with self.db() as conn:
            champion = registry.get_alias(conn, "champion")
        champion_spec = champion["spec"] if champion else None
        client = None
        if needs_openai(champion_spec) or needs_openai(read_json(staging, run.key(MODEL_SPEC))):
            from feedbackloop_airflow.hooks import openai_client

            client = openai_client(self.openai_conn_id)
        return self.publish(context, pipeline.evaluate_golden(staging, run, champion_spec, client))


class GoldenGateOperator(FeedbackLoopOperator):
    """The release gate: inclusive per-slice thresholds plus a paired test vs the champion.

    Records the decision and its evidence whatever the verdict, then fails (without retry)
    when the challenger does not pass, so nothing downstream deploys it.
    """

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "thresholds")

    def __init__(self, *, thresholds: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = thresholds

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from feedbackloop import pipeline
        from feedbackloop.gate import GateError, GateFailed, GateThresholds

        run = self.run_context(context)
        thresholds = {k: checked_number(k, v) for k, v in (self.thresholds or {}).items()}
        try:
            GateThresholds(**thresholds)  # bad thresholds fail now, without retries
        except (GateError, TypeError) as exc:
            raise AirflowFailException(f"invalid gate thresholds: {exc}") from exc
        with self.db() as conn:
            try:
                summary = pipeline.gate(conn, self.staging(), run, thresholds)
            except GateFailed as exc:
                decision = exc.decision
                self.publish(
                    context,
                    {"passed": False, "reasons": list(decision.reasons), **getattr(exc, "summary", {})},
                )
                raise AirflowFailException(f"golden-set gate failed: {exc}") from exc
        return self.publish(context, summary)


class DeployChallengerOperator(FeedbackLoopOperator):
    """Point the ``challenger`` alias at the new model as a canary (5% by default)."""

    # ``dry_run`` is stored as ``deploy_dry_run``: BaseOperator has a ``dry_run()`` method.
    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "traffic_share", "deploy_dry_run")

    def __init__(self, *, traffic_share: Any = 0.05, dry_run: Any = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.traffic_share = traffic_share
        self.deploy_dry_run = dry_run

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from feedbackloop import pipeline
        from feedbackloop.registry import RAMP_STEPS

        run = self.run_context(context)
        share = checked_number("traffic_share", self.traffic_share, minimum=0, maximum=1, exclusive_minimum=True)
        if share not in RAMP_STEPS:
            raise AirflowFailException(
                f"traffic_share must be one of the canary ramp steps {', '.join(f'{s:g}' for s in RAMP_STEPS)}, "
                f"got {self.traffic_share!r}"
            )
        if self.deploy_dry_run in (True, "True", "true"):
            self.log.info("dry run: the challenger passed the gate but is not deployed")
            return self.publish(context, {"dry_run": True, "alias": None})
        with self.db() as conn:
            return self.publish(context, pipeline.deploy(conn, self.staging(), run, share))


class NotifyOperator(BaseOperator):
    """Post the run's outcome to Slack (``slack_alerts``), or log it when Slack is not set up.

    Runs whatever happened upstream (trigger rule ``all_done``) and reads the stages'
    summaries from XCom. A Slack outage is logged and never changes the run's outcome.
    """

    template_fields: Sequence[str] = ("slack_conn_id",)

    def __init__(self, *, stage_task_ids: dict[str, str], slack_conn_id: str = "slack_alerts", **kwargs: Any):
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.stage_task_ids = stage_task_ids
        self.slack_conn_id = slack_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        import json

        from feedbackloop.slack_messages import retraining_summary

        ti = context["ti"]
        stages: dict[str, Any] = {}
        for stage, task_id in self.stage_task_ids.items():
            value = ti.xcom_pull(task_ids=task_id, key=STAGE_XCOM_KEY)
            if value is not None:
                stages[stage] = value
        outcome = _outcome(stages, self.stage_task_ids)
        run_url = None
        payload = retraining_summary(context["dag"].dag_id, context["run_id"], outcome, stages, run_url)
        sent = send_slack(self.slack_conn_id, payload, self.log)
        self.log.info("run outcome: %s; message: %s", outcome, json.dumps(payload["text"], ensure_ascii=False))
        return {"outcome": outcome, "slack_sent": sent}


def _outcome(stages: dict[str, Any], task_ids: dict[str, str]) -> str:
    deploy = stages.get("deploy")
    if deploy:
        return "dry_run" if deploy.get("dry_run") else "deployed"
    gate = stages.get("gate")
    if gate is not None and gate.get("passed") is False:
        return "gate_failed"
    # A stage that failed with a reason (validate publishes {"failed": True, "error": ...})
    # is named with it; otherwise the first stage without a summary did not finish.
    failed = [s for s in task_ids if isinstance(stages.get(s), dict) and stages[s].get("failed")]
    if failed:
        reason = stages[failed[0]].get("error") or "see its task log"
        stages["error_reasons"] = [f"stage '{failed[0]}' failed: {reason}"]
        return "failed"
    missing = [s for s in task_ids if s not in stages]
    if missing:
        stages["error_reasons"] = [f"stage '{missing[0]}' did not finish; see its task log"]
    return "failed"


SLACK_RETRIES = 3
"""Retries of one Slack message on a dropped/refused connection, a 429 (after its
``Retry-After``) or a 500/503; slack_sdk's default retries connection errors once only, so
a single 5xx or 429 used to lose the run's message."""
SLACK_RETRY_BACKOFF_S = 0.5
"""Backoff factor between those retries (0.5, 1, 2 s, plus slack_sdk's jitter): its default."""


def _slack_retry_handlers() -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )
    from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

    interval = BackoffRetryIntervalCalculator(backoff_factor=SLACK_RETRY_BACKOFF_S)
    return [
        handler(max_retry_count=SLACK_RETRIES, interval_calculator=interval)
        for handler in (ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, ServerErrorRetryHandler)
    ]


def send_slack(conn_id: str, payload: dict[str, Any], log: Any) -> bool:
    """Send a payload through the Slack provider's webhook hook; log instead when unset or down.

    Transient errors are retried (:data:`SLACK_RETRIES`); an outage is logged, never raised.
    """
    from feedbackloop_airflow.hooks import optional_connection

    if optional_connection(conn_id) is None:
        log.info("no '%s' connection: Slack message not sent, logged only", conn_id)
        return False
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(
            slack_webhook_conn_id=conn_id, timeout=10, retry_handlers=_slack_retry_handlers()
        ).send(text=payload["text"], blocks=payload.get("blocks"))
    except Exception as exc:  # noqa: BLE001 - a Slack outage must not change the run's outcome
        log.warning("could not notify Slack through '%s': %s", conn_id, type(exc).__name__)
        return False
    return True
