"""Operators of the nightly ``golden_set_validation`` DAG.

``GoldenValidationOperator`` validates the model behind one registry alias (one include
function: :func:`feedbackloop.golden_validation.validate_alias`); ``GoldenValidationAlertOperator``
reads their summaries, posts one Slack alert when something is wrong, and then fails so the
run shows red in the Airflow UI as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from feedbackloop_airflow.operators import STAGE_XCOM_KEY, FeedbackLoopOperator, send_slack


def _truthy(value: Any) -> bool:
    # Templated params arrive as strings unless the DAG renders native objects.
    return value in (True, "True", "true", "1", 1)


class GoldenValidationOperator(FeedbackLoopOperator):
    """Evaluate the model behind ``alias`` on the golden set, gate it, check for a regression
    against its last recorded run, record the run in ``ml.golden_runs`` and stage the reports.

    With nothing deployed under the alias it succeeds and says so ("no champion yet").

    Args:
        alias: ``champion`` or ``challenger``.
        thresholds: Gate value thresholds (templated; numbers or numeric strings).
        max_accuracy_drop: Largest allowed overall-accuracy drop vs the last run (templated).
        openai_conn_id: Connection of the OpenAI-compatible endpoint, used only for models
            served there.
    """

    template_fields: Sequence[str] = (
        *FeedbackLoopOperator.template_fields,
        "thresholds",
        "max_accuracy_drop",
        "openai_conn_id",
    )
    ui_color = "#fff4e5"

    def __init__(
        self,
        *,
        alias: str,
        thresholds: dict[str, Any] | None = None,
        max_accuracy_drop: Any = 0.02,
        openai_conn_id: str = "openai_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.alias = alias
        self.thresholds = thresholds
        self.max_accuracy_drop = max_accuracy_drop
        self.openai_conn_id = openai_conn_id

    def _openai_client(self) -> Any:
        from feedbackloop_airflow.hooks import openai_client

        return openai_client(self.openai_conn_id)

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.golden_validation import validate_alias
        from feedbackloop_airflow.operators import checked_number

        thresholds = {k: checked_number(k, v) for k, v in (self.thresholds or {}).items()}
        max_drop = checked_number("max_accuracy_drop", self.max_accuracy_drop, minimum=0, maximum=1)
        run = self.run_context(context)
        with self.db() as conn:
            summary = validate_alias(
                conn,
                self.staging(),
                run,
                self.alias,
                thresholds,
                max_accuracy_drop=max_drop,
                openai_client_factory=self._openai_client,
            )
        return self.publish(context, summary)


class GoldenValidationAlertOperator(BaseOperator):
    """Alert on Slack (``slack_alerts``) when a validated model fell below the thresholds,
    regressed against its last run, or could not be validated; log only when Slack is not
    set up. Runs whatever happened upstream (trigger rule ``all_done``).

    Args:
        validation_task_ids: Alias -> task id of its validation task.
        slack_conn_id: Slack incoming-webhook connection.
        fail_on_alert: After alerting, fail the task (and so the run) so the problem is
            visible in the Airflow UI too (templated).
    """

    template_fields: Sequence[str] = ("slack_conn_id", "fail_on_alert")
    ui_color = "#ffebe9"

    def __init__(
        self,
        *,
        validation_task_ids: dict[str, str],
        slack_conn_id: str = "slack_alerts",
        fail_on_alert: Any = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.validation_task_ids = validation_task_ids
        self.slack_conn_id = slack_conn_id
        self.fail_on_alert = fail_on_alert

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.golden_messages import golden_validation_alert, needs_alert

        ti = context["ti"]
        outcomes: list[dict[str, Any]] = []
        for alias, task_id in self.validation_task_ids.items():
            summary = ti.xcom_pull(task_ids=task_id, key=STAGE_XCOM_KEY)
            if summary is None:
                summary = {
                    "alias": alias,
                    "status": "missing",
                    "reason": f"task '{task_id}' did not finish; see its log",
                }
            outcomes.append(dict(summary))
        for o in outcomes:
            self.log.info(
                "%s: %s",
                o.get("alias"),
                o.get("reason")
                if o.get("status") != "validated"
                else ("passed" if o.get("passed") else "FAILED: " + "; ".join(o.get("reasons") or [])),
            )
        payload = golden_validation_alert(context["dag"].dag_id, context["run_id"], outcomes)
        if payload is None:
            return {"alerted": False, "slack_sent": False, "aliases": [o.get("alias") for o in outcomes]}
        sent = send_slack(self.slack_conn_id, payload, self.log)
        self.log.warning("golden-set validation alert: %s", payload["text"])
        result = {
            "alerted": True,
            "slack_sent": sent,
            "alerting": [o.get("alias") for o in outcomes if needs_alert(o)],
        }
        if _truthy(self.fail_on_alert):
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(payload["text"])
        return result
