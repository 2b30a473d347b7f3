"""Operators of the monitoring DAGs: regression detectors, alert lifecycle, review queue, rewards.

Each one resolves its run like every stage operator (the data interval, see
:class:`~feedbackloop_airflow.operators.FeedbackLoopOperator`), opens the feedback DB
through ``feedback_db`` and calls one function of ``feedbackloop``; the evaluation time is
the run's data interval end, so a re-run of an hour reproduces that hour's decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from feedbackloop_airflow.operators import FeedbackLoopOperator


def _actor(context: Any) -> str:
    return f"{context['dag'].dag_id}/{context['run_id']}"


def _fail_on_bad_config(exc: Exception) -> NoReturn:
    from airflow.sdk.exceptions import AirflowFailException

    # Bad thresholds or caps: retrying cannot help.
    raise AirflowFailException(f"invalid configuration: {exc}") from exc


class EvaluateRegressionsOperator(FeedbackLoopOperator):
    """Run the regression detectors at the end of the run's interval.

    Returns (XCom) ``{"evaluated_at", "thresholds", "baseline", "results", "firing"}`` with
    one result per detector and key (:meth:`feedbackloop.monitoring.DetectorResult.to_dict`).

    Args:
        thresholds: overrides of :class:`feedbackloop.monitoring.Thresholds` fields
            (templated; e.g. from the DAG's params).
    """

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "thresholds")
    ui_color = "#fde8e8"

    def __init__(self, *, thresholds: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.thresholds = thresholds

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.monitoring import Thresholds, run_detectors

        try:
            thresholds = Thresholds.from_mapping(self.thresholds)
        except ValueError as exc:
            _fail_on_bad_config(exc)
        run = self.run_context(context)
        with self.db() as conn:
            summary = run_detectors(conn, run.end, thresholds)
        for r in summary["results"]:
            if r["status"] == "firing":
                self.log.warning("FIRING %s/%s: %s", r["detector"], r["key"], r["summary"])
        self.log.info(
            "evaluated %d detector results at %s over %d predictions; firing: %s",
            len(summary["results"]),
            summary["evaluated_at"],
            summary["predictions"],
            ", ".join(summary["firing"]) or "none",
        )
        return summary


class RecordAlertsOperator(FeedbackLoopOperator):
    """Apply the detectors' results to the incidents in ``ml.alerts`` (open / repeat / resolve).

    Args:
        evaluate_task_id: the task whose return value holds the results.
    """

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "evaluate_task_id")
    ui_color = "#fde8e8"

    def __init__(self, *, evaluate_task_id: str = "evaluate_regressions", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluate_task_id = evaluate_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.alerts import apply_results
        from feedbackloop.monitoring import DetectorResult

        summary = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
        if not summary or "results" not in summary:
            raise ValueError(f"no detector results from task {self.evaluate_task_id!r}")
        results = [DetectorResult.from_dict(r) for r in summary["results"]]
        run = self.run_context(context)
        with self.db() as conn:
            actions = apply_results(conn, results, run.end, _actor(context))
        out: dict[str, list[str]] = {"opened": [], "resolved": [], "suppressed": []}
        for a in actions:
            label = f"{a.detector}:{a.key}#{a.alert_id}"
            if a.action == "open":
                out["opened"].append(label)
            elif a.action == "resolve":
                out["resolved"].append(label)
            elif a.reason == "suppressed":
                out["suppressed"].append(label)
        self.log.info(
            "alerts opened %s, resolved %s, suppressed %s", out["opened"], out["resolved"], out["suppressed"]
        )
        return out


class NotifyAlertsOperator(FeedbackLoopOperator):
    """Send every undelivered incident message (open / resolve) to Slack, once.

    A message is marked delivered only when Slack accepted it, so a Slack outage delays
    it to the next run instead of losing it, and never fails this task. Without a Slack
    connection the message is written to the task log, which then counts as delivered.

    Args:
        slack_conn_id: Slack incoming-webhook connection.
        dashboard_url: link for the "Open dashboard" button (default: env
            ``FEEDBACKLOOP_DASHBOARD_URL``, else the dashboard under the UI's base URL).
    """

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "slack_conn_id", "dashboard_url")
    ui_color = "#fde8e8"

    def __init__(
        self, *, slack_conn_id: str = "slack_alerts", dashboard_url: str | None = None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.slack_conn_id = slack_conn_id
        self.dashboard_url = dashboard_url

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.alert_messages import alert_message
        from feedbackloop.alerts import mark_notified, pending_notifications
        from feedbackloop_airflow.callbacks import airflow_run_url, dashboard_url
        from feedbackloop_airflow.hooks import optional_connection
        from feedbackloop_airflow.operators import send_slack

        run = self.run_context(context)
        run_url = airflow_run_url(context["dag"].dag_id, context["run_id"])
        dashboard = self.dashboard_url or dashboard_url()
        slack_configured = optional_connection(self.slack_conn_id) is not None
        sent: list[str] = []
        failed: list[str] = []
        with self.db() as conn:
            for kind, incident in pending_notifications(conn, run.end):
                payload = alert_message(kind, incident, run_url, dashboard)
                label = f"{kind}:{incident['detector']}:{incident['key']}#{incident['alert_id']}"
                if slack_configured:
                    delivered = send_slack(self.slack_conn_id, payload, self.log)
                else:
                    self.log.warning("no '%s' connection; alert: %s", self.slack_conn_id, payload["text"])
                    delivered = True
                if delivered:
                    mark_notified(conn, incident["alert_id"], kind, datetime.now(UTC))
                    sent.append(label)
                else:
                    failed.append(label)
        if failed:
            self.log.warning(
                "%d alert message(s) not delivered; retried by the next run: %s", len(failed), failed
            )
        return {"sent": sent, "undelivered": failed, "slack_configured": slack_configured}


class RefreshReviewQueueOperator(FeedbackLoopOperator):
    """Resolve reviewed items, expire stale ones and queue new low-confidence predictions.

    Args:
        policy: overrides of :class:`feedbackloop.review.ReviewPolicy` fields (templated).
    """

    template_fields: Sequence[str] = (*FeedbackLoopOperator.template_fields, "policy")
    ui_color = "#e8fde9"

    def __init__(self, *, policy: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.review import ReviewPolicy, refresh_review_queue

        try:
            policy = ReviewPolicy.from_mapping(self.policy)
        except ValueError as exc:
            _fail_on_bad_config(exc)
        run = self.run_context(context)
        with self.db() as conn:
            summary = refresh_review_queue(conn, run.end, _actor(context), policy)
        self.log.info(
            "review queue: %d resolved, %d expired, %d queued (%d today of %d), %d pending",
            summary["resolved"],
            summary["expired"],
            summary["queued"],
            summary["queued_today"],
            summary["daily_cap"],
            summary["pending"],
        )
        return summary


class RefreshContributorStatsOperator(FeedbackLoopOperator):
    """Rebuild the rewards screen's tables (``ml.contributor_stats``, ``ml.contributor_weekly``)."""

    ui_color = "#e8fde9"

    def execute(self, context: Any) -> dict[str, Any]:
        from feedbackloop.contributors import refresh_contributor_stats

        run = self.run_context(context)
        with self.db() as conn:
            return refresh_contributor_stats(conn, run.end)
