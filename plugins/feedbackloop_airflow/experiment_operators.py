"""The A/B experiment's Airflow operator: evaluate, record, apply, announce.

A thin shell over :func:`feedbackloop.experiment.evaluate_experiment`: it resolves the
decision day from the run, turns the trigger form's override into an
:class:`~feedbackloop.experiment.Override`, opens the feedback DB through the
``feedback_db`` connection, and posts the decision with its numbers to Slack
(``slack_alerts``; logged only when that connection is not configured).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from airflow.sdk import BaseOperator

from feedbackloop_airflow.hooks import feedback_db_connection
from feedbackloop_airflow.operators import send_slack

ACTIONS = ("auto", "force_promote", "force_rollback")


class EvaluateExperimentOperator(BaseOperator):
    """Decide today's step of the live champion/challenger experiment and apply it.

    Outcomes: continue, ramp (5% -> 25% -> 50%), promote, rollback or halt (sample-ratio
    mismatch), recorded once per experiment and day in ``ml.experiment_decisions`` and
    applied to ``ml.deployments`` in the same transaction, so retries and concurrent runs
    never act twice. Returns the JSON summary of the decision (the XCom).

    Args:
        action: ``auto`` (the statistics decide), ``force_promote`` or ``force_rollback``.
        reason: why, required for the two overrides; recorded in the audit history.
        postgres_conn_id: connection to the feedback DB (app tables and ``ml`` schema).
        slack_conn_id: Slack incoming-webhook connection for the announcement.
        policy: overrides of :class:`feedbackloop.experiment.Policy` fields (thresholds).
    """

    template_fields: Sequence[str] = ("action", "reason", "postgres_conn_id", "slack_conn_id")
    ui_color = "#fef3e8"

    def __init__(
        self,
        *,
        action: str = "auto",
        reason: str = "",
        postgres_conn_id: str = "feedback_db",
        slack_conn_id: str = "slack_alerts",
        policy: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.reason = reason
        self.postgres_conn_id = postgres_conn_id
        self.slack_conn_id = slack_conn_id
        self.policy = dict(policy or {})

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from feedbackloop.experiment import Override, Policy, evaluate_experiment
        from feedbackloop.experiment_messages import experiment_decision_message
        from feedbackloop.registry import RegistryError

        action = str(self.action or "auto").strip()
        if action not in ACTIONS:
            raise AirflowFailException(f"action must be one of {ACTIONS}, got {action!r}")
        dag_run = context.get("dag_run")
        requester = getattr(dag_run, "triggering_user_name", None) or "unknown user"
        try:
            override = None if action == "auto" else Override(action, str(self.reason or ""), requester)
            policy = Policy(**self.policy)
        except (TypeError, ValueError) as exc:  # bad input: retrying cannot help
            raise AirflowFailException(str(exc)) from exc
        when = context.get("logical_date") or dag_run.run_after
        day = when.astimezone(UTC).date()
        run_id = context["run_id"]
        updated_by = f"{context['dag'].dag_id}/{run_id}"
        with feedback_db_connection(self.postgres_conn_id) as conn:
            try:
                result = evaluate_experiment(
                    conn, day, run_id, override, updated_by=updated_by, policy=policy
                )
            except RegistryError as exc:
                raise AirflowFailException(f"cannot apply {action}: {exc}") from exc
        summary = result.to_summary()
        self.log.info(
            "experiment %s on %s: %s (%s)%s",
            summary["experiment_id"],
            summary["decision_date"],
            summary["outcome"],
            summary["reason"],
            "" if summary["recorded"] else " [recorded earlier, not applied again]",
        )
        if result.outcome == "none":
            self.log.info("no live experiment: nothing to announce")
            summary["slack_sent"] = False
        else:
            summary["slack_sent"] = send_slack(
                self.slack_conn_id, experiment_decision_message(summary), self.log
            )
        return summary
