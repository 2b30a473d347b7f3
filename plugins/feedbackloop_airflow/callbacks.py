"""DAG-level callbacks: one Slack failure notification per failed run, never one per retry.

Use :func:`notify_dag_failure` as a DAG's ``on_failure_callback``. A DAG-level callback
fires once, when the *run* is marked failed (after the failing task has used up its
retries); task-level ``on_failure_callback`` / ``on_retry_callback`` would fire per attempt.

Where it runs, and what it gets:

* Scheduler-driven runs: the scheduler sends a ``DagCallbackRequest`` to the dag-processor,
  which calls the callback with the template context of the task instance that caused the
  failure (``ti``, ``dag``, ``dag_run``, ``run_id``, ...) plus ``reason`` (``task_failure``
  or ``all_tasks_deadlocked``); see ``airflow/dag_processing/processor.py``
  ``_execute_dag_callbacks``. Connections resolve there as in tasks.
* ``dag.test()``: ``DagRun.update_state`` executes the callback inline in the test
  process with the same context (``DagRun.execute_dag_callbacks``).

There is no exception object in a DAG-level context (the task's error stayed in its
process), so the message names the task, the attempt and the reason and links the log.
Slack down or not configured: the failure to notify is logged; the callback never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

SLACK_CONN_ID = "slack_alerts"


def airflow_base_url() -> str:
    """The UI's base URL from ``[api] base_url`` (what the task log links use too)."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/")).rstrip("/")


DASHBOARD_URL_ENV = "FEEDBACKLOOP_DASHBOARD_URL"
# Where the api-server mounts the model-quality dashboard (feedbackloop_dashboard.app.URL_PREFIX).
DASHBOARD_PATH = "/feedbackloop/"


def dashboard_url() -> str:
    """Link to the model-quality dashboard: ``$FEEDBACKLOOP_DASHBOARD_URL``, else the UI's."""
    import os

    return os.environ.get(DASHBOARD_URL_ENV) or f"{airflow_base_url()}{DASHBOARD_PATH}"


def airflow_run_url(dag_id: str, run_id: str) -> str:
    """Link to a DAG run in the Airflow 3 UI."""
    return f"{airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


SENTINEL_TASKS = ("watcher",)
"""Tasks that only exist to fail a run when another task failed (``trigger_rule="one_failed"``).

Airflow names the *last* failed task in the callback context, which for a DAG with such a
watcher is the watcher itself; the message then points at the run, not at the watcher's log.
"""


def failure_details(
    context: dict[str, Any], sentinel_tasks: tuple[str, ...] = SENTINEL_TASKS
) -> dict[str, Any]:
    """What a DAG failure context says: dag_id, run_id, the failed task, an error line, links.

    Tolerates the minimal context (``dag``, ``run_id``, ``reason`` only) Airflow passes
    when it cannot name the task instance.
    """
    dag = context.get("dag")
    dag_id = getattr(dag, "dag_id", None) or str(context.get("dag_id") or "unknown DAG")
    run_id = str(context.get("run_id") or getattr(context.get("dag_run"), "run_id", None) or "unknown run")
    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None) or "unknown task"
    reason = str(context.get("reason") or "task_failure")
    attempt = getattr(ti, "try_number", None)
    exception = context.get("exception")
    if exception is not None:
        error = f"{type(exception).__name__}: {exception}"
    else:
        tries = f" on attempt {attempt}" if isinstance(attempt, int) and attempt > 0 else ""
        what = "all remaining tasks are deadlocked" if reason == "all_tasks_deadlocked" else "failed"
        error = f"{reason}: task '{task_id}' {what}{tries}; the error is in the task log"
    log_url = None
    if task_id in sentinel_tasks:
        error = f"{reason}: a task of this run failed ('{task_id}' marked the run failed); see the run for which one"
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "error": error,
            "log_url": airflow_run_url(dag_id, run_id),
        }
    if ti is not None:
        try:
            log_url = ti.log_url
        except Exception:  # noqa: BLE001 - a missing link must not cost the notification
            log_url = None
    if not log_url:
        log_url = airflow_run_url(dag_id, run_id)
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "error": error, "log_url": log_url}


def failure_notifier(
    slack_conn_id: str = SLACK_CONN_ID,
    sentinel_tasks: tuple[str, ...] = SENTINEL_TASKS,
    already_notified: tuple[str, ...] = (),
) -> Callable[[dict[str, Any]], bool]:
    """A DAG ``on_failure_callback`` posting to ``slack_conn_id`` (see the module docstring).

    ``already_notified`` names tasks that post their own message before failing the run on
    purpose (a DAG's alert or notify step): when the run's last failed task is one of them,
    the callback stays silent, so one failed run gives one message.

    The callback returns whether Slack accepted the message (Airflow ignores the value).
    """

    def notify(context: dict[str, Any]) -> bool:
        try:
            from feedbackloop.slack_messages import task_failure
            from feedbackloop_airflow.operators import send_slack

            ti = context.get("task_instance") or context.get("ti")
            failed_task = getattr(ti, "task_id", None)
            if failed_task in already_notified:
                log.info("run failed in %s, which already posted its own message", failed_task)
                return False
            d = failure_details(context, sentinel_tasks)
            payload = task_failure(d["dag_id"], d["run_id"], d["task_id"], d["error"], d["log_url"])
            sent = send_slack(slack_conn_id, payload, log)
            log.info(
                "run %s of %s failed in %s; failure notification %s",
                d["run_id"],
                d["dag_id"],
                d["task_id"],
                "sent" if sent else "not sent (logged only)",
            )
            return sent
        except Exception:  # noqa: BLE001 - a callback error must never mask the run's own failure
            log.exception("could not build or send the failure notification")
            return False

    notify.__name__ = "notify_dag_failure"
    return notify


notify_dag_failure = failure_notifier()
"""The default DAG ``on_failure_callback``: posts ``task_failure`` to ``slack_alerts``."""
