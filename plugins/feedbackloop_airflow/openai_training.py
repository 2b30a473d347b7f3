"""Deferrable waiting for OpenAI fine-tuning jobs: a trigger plus what a training operator calls.

A fine-tuning job runs for hours; the training task must not hold a worker slot meanwhile.
The task submits (or re-attaches to) the run's job with
:func:`feedbackloop.models.openai_finetune.start_or_attach`, which records it in
``ml.training_jobs`` first, then defers to :class:`FineTuneJobTrigger`. The triggerer polls
the job; when it ends the task resumes in ``execute_complete``, which validates the event,
records the outcome and builds the model spec.

The trigger is modelled on the OpenAI provider's ``OpenAIBatchTrigger``: it serialises only
the connection id, the job id, the poll interval and its timeout (never a key: the client
is built from the connection inside the triggerer), measures the timeout on a monotonic
clock, and treats an unknown job status as an error.

Two ways to use it from a stage operator:

- inherit :class:`FineTuneDeferrableMixin` and implement its three hooks; or
- call :func:`start_or_defer` in ``execute`` and :func:`complete_from_event` in
  ``execute_complete``.

Heavy imports (openai, the include backend) happen inside functions only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TRIGGER_PATH = "feedbackloop_airflow.openai_training.FineTuneJobTrigger"
DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_TIMEOUT = 24 * 3600.0
EVENTS_LIMIT = 20
# Events carried in the trigger event (the XCom-sized tail of the job's log).
EVENTS_IN_PAYLOAD = 5
# Consecutive transient polling errors (429, 5xx, timeouts) tolerated before giving up.
MAX_POLL_ERRORS = 5
EVENT_STATUSES = frozenset({"success", "error", "cancelled"})
TERMINATION_REASONS = frozenset(
    {"completed", "failed", "cancelled", "timeout", "unexpected_status", "polling_error"}
)


class FineTuneJobTrigger(BaseTrigger):
    """Polls an OpenAI fine-tuning job until it is terminal or the timeout passes.

    Args:
        conn_id: The OpenAI connection (base URL + key are read in the triggerer).
        job_id: The provider's fine-tuning job id.
        poll_interval: Seconds between polls.
        timeout: Seconds to wait in total, measured with :func:`time.monotonic` from the
            start of :meth:`run` (wall-clock jumps cannot cut it short or stretch it).
    """

    def __init__(
        self,
        conn_id: str,
        job_id: str,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not job_id:
            raise ValueError("FineTuneJobTrigger needs a job_id")
        if poll_interval <= 0 or timeout <= 0:
            raise ValueError("poll_interval and timeout must be > 0")
        super().__init__()
        self.conn_id = conn_id
        self.job_id = job_id
        self.poll_interval = float(poll_interval)
        self.timeout = float(timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and constructor kwargs: connection id, job id, poll interval, timeout."""
        return (
            TRIGGER_PATH,
            {
                "conn_id": self.conn_id,
                "job_id": self.job_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
            },
        )

    def _event(
        self, status: str, reason: str, message: str, job: dict[str, Any] | None = None
    ) -> TriggerEvent:
        job = job or {}
        return TriggerEvent(
            {
                "status": status,
                "termination_reason": reason,
                "message": message,
                "job_id": self.job_id,
                "job_status": job.get("status"),
                "fine_tuned_model": job.get("fine_tuned_model"),
                "trained_tokens": job.get("trained_tokens"),
                "error_code": job.get("error_code"),
                "error_message": job.get("error_message"),
                "events": list(job.get("events") or [])[-EVENTS_IN_PAYLOAD:],
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll status and events; yield one terminal event."""
        from airflow.providers.openai.hooks.openai import OpenAIHook

        from feedbackloop.models.openai_chat import classify_error, describe_error
        from feedbackloop.models.openai_finetune import FineTuneError, status_from_job

        start = time.monotonic()
        seen: set[str] = set()
        errors = 0
        client = await OpenAIHook(conn_id=self.conn_id).aget_conn()
        try:
            while True:
                job: dict[str, Any] | None = None
                try:
                    remote = await client.fine_tuning.jobs.retrieve(self.job_id)
                    page = await client.fine_tuning.jobs.list_events(self.job_id, limit=EVENTS_LIMIT)
                    job = status_from_job(remote, list(page.data))
                    errors = 0
                except FineTuneError as exc:
                    yield self._event("error", "unexpected_status", str(exc))
                    return
                except Exception as exc:  # noqa: BLE001 - reported in the event, never swallowed silently
                    retryable, _ = classify_error(exc)
                    errors += 1
                    if not retryable or errors >= MAX_POLL_ERRORS:
                        yield self._event(
                            "error",
                            "polling_error",
                            f"polling fine-tuning job {self.job_id} failed: {describe_error(exc)}",
                        )
                        return
                    self.log.warning("polling %s failed (%s); will retry", self.job_id, describe_error(exc))
                if job is not None:
                    for event in job["events"]:
                        if event["id"] not in seen:
                            seen.add(event["id"])
                            self.log.info("job %s [%s] %s", self.job_id, event["level"], event["message"])
                    if job["status"] == "succeeded":
                        yield self._event(
                            "success",
                            "completed",
                            f"fine-tuning job {self.job_id} succeeded: {job['fine_tuned_model']}",
                            job,
                        )
                        return
                    if job["status"] == "failed":
                        yield self._event(
                            "error",
                            "failed",
                            f"fine-tuning job {self.job_id} failed: {job['error_code']}: {job['error_message']}",
                            job,
                        )
                        return
                    if job["status"] == "cancelled":
                        yield self._event(
                            "cancelled", "cancelled", f"fine-tuning job {self.job_id} was cancelled", job
                        )
                        return
                elapsed = time.monotonic() - start
                if elapsed >= self.timeout:
                    yield self._event(
                        "error",
                        "timeout",
                        f"fine-tuning job {self.job_id} is still {job['status'] if job else 'unknown'} after "
                        f"{elapsed:.0f} s (timeout {self.timeout:.0f} s)",
                        job,
                    )
                    return
                await asyncio.sleep(min(self.poll_interval, max(0.0, self.timeout - elapsed)))
        finally:
            await client.close()


# ------------------------------------------------------------------ operator helpers


def validate_event(event: dict[str, Any] | None) -> dict[str, Any]:
    """Check a resumed task's event; raise on a missing or unknown one (never guess).

    Raises:
        AirflowException: ``None``, an unknown ``status`` or ``termination_reason``, or no job id.
    """
    from airflow.sdk.exceptions import AirflowException

    if event is None:
        raise AirflowException("fine-tuning trigger error: the event is None")
    if (
        event.get("status") not in EVENT_STATUSES
        or event.get("termination_reason") not in TERMINATION_REASONS
    ):
        raise AirflowException(f"unexpected fine-tuning trigger event: {event!r}")
    if not event.get("job_id"):
        raise AirflowException(f"fine-tuning trigger event without a job id: {event!r}")
    return event


def status_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The job status dict (as :func:`~feedbackloop.models.openai_finetune.check_job` returns)."""
    return {
        "job_id": event["job_id"],
        "status": event.get("job_status"),
        "terminal": event.get("job_status") in ("succeeded", "failed", "cancelled"),
        "fine_tuned_model": event.get("fine_tuned_model"),
        "trained_tokens": event.get("trained_tokens"),
        "error_code": event.get("error_code"),
        "error_message": event.get("error_message"),
        "events": list(event.get("events") or []),
    }


def start_or_defer(
    operator: Any,
    *,
    conn: Any,
    staging: Any,
    request: Any,
    openai_conn_id: str = "openai_default",
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: float = DEFAULT_TIMEOUT,
    method_name: str = "execute_complete",
) -> dict[str, Any]:
    """Submit or re-attach to the run's job, then defer the operator until it ends.

    Returns only when the job is already terminal (a re-run after success or failure): the
    job's status dict, for :func:`complete_from_event`-like handling via
    :func:`complete_status`. Otherwise raises ``TaskDeferred`` (via ``operator.defer``).

    Raises:
        AirflowFailException: Cost guard or wind-down refusal (retrying cannot help); the
            message names the estimate and limit, or the alternatives.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from feedbackloop.models.openai_finetune import (
        CostLimitExceeded,
        FineTuningUnavailable,
        check_job,
        start_or_attach,
    )
    from feedbackloop_airflow.hooks import openai_client

    client = openai_client(openai_conn_id)
    try:
        job = start_or_attach(conn, client, staging, request)
    except (CostLimitExceeded, FineTuningUnavailable) as exc:
        raise AirflowFailException(str(exc)) from exc
    operator.log.info(
        "fine-tuning job %s is %s (%s)",
        job.job_id,
        job.status,
        "re-attached" if job.attached else "submitted",
    )
    if job.terminal:
        return check_job(client, job.job_id)
    operator.defer(
        trigger=FineTuneJobTrigger(
            conn_id=openai_conn_id, job_id=job.job_id, poll_interval=poll_interval, timeout=timeout
        ),
        method_name=method_name,
    )
    raise AssertionError("defer() returned")  # pragma: no cover - defer always raises


def complete_status(conn: Any, status: dict[str, Any], spec_base: dict[str, Any]) -> Any:
    """Record a terminal status and build the model spec; Airflow exceptions on failure.

    Raises:
        AirflowFailException: The job failed or was cancelled (message: the API's error code
            and message); a retry would only re-attach to the same failed job.
        AirflowException: The job has not finished (retryable: a retry re-attaches and waits).
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from feedbackloop.models.openai_finetune import FineTuneError, FineTuneJobFailed, finalize_job

    try:
        return finalize_job(conn, status, spec_base)
    except FineTuneJobFailed as exc:
        raise AirflowFailException(str(exc)) from exc
    except FineTuneError as exc:
        raise AirflowException(str(exc)) from exc


def complete_from_event(event: dict[str, Any] | None, *, conn: Any, spec_base: dict[str, Any]) -> Any:
    """Validate the trigger's event, record the outcome and return the model spec.

    Raises:
        AirflowFailException: The job failed or was cancelled (API error code and message).
        AirflowException: Timeout or polling error (retryable: the retry re-attaches), or a
            malformed event.
    """
    from airflow.sdk.exceptions import AirflowException

    from feedbackloop.models.openai_finetune import record_status

    event = validate_event(event)
    reason = event["termination_reason"]
    if reason in ("timeout", "polling_error", "unexpected_status"):
        if event.get("job_status"):
            record_status(conn, status_from_event(event))
        raise AirflowException(event.get("message") or f"fine-tuning wait ended: {reason}")
    return complete_status(conn, status_from_event(event), spec_base)


class FineTuneDeferrableMixin:
    """Deferrable fine-tuning for a stage operator (e.g. ``TrainChallengerOperator``).

    The operator provides ``db()`` and ``staging()`` (as ``FeedbackLoopOperator`` does) and
    implements the three hooks; then ``execute`` calls :meth:`execute_fine_tune` for
    ``trainer=openai`` and Airflow resumes the task in :meth:`execute_complete`.
    """

    openai_conn_id: str = "openai_default"
    fine_tune_poll_interval: float = DEFAULT_POLL_INTERVAL
    fine_tune_timeout: float = DEFAULT_TIMEOUT

    # -- hooks the operator implements

    def fine_tune_request(self, context: Any) -> Any:
        """The run's :class:`~feedbackloop.models.openai_finetune.FineTuneRequest`."""
        raise NotImplementedError

    def fine_tune_spec_base(self, context: Any) -> dict[str, Any]:
        """Run-level spec fields (``version_id``, ``created_at``, ``provenance``)."""
        raise NotImplementedError

    def publish_fine_tuned_spec(self, context: Any, spec: Any) -> dict[str, Any]:
        """Stage the spec (``model_spec.json``) and return the task's summary."""
        raise NotImplementedError

    # -- flow

    def execute_fine_tune(self, context: Any) -> dict[str, Any]:
        with self.db() as conn:  # type: ignore[attr-defined]
            status = start_or_defer(
                self,
                conn=conn,
                staging=self.staging(),  # type: ignore[attr-defined]
                request=self.fine_tune_request(context),
                openai_conn_id=self.openai_conn_id,
                poll_interval=float(self.fine_tune_poll_interval),
                timeout=float(self.fine_tune_timeout),
            )
            spec = complete_status(conn, status, self.fine_tune_spec_base(context))
        return self.publish_fine_tuned_spec(context, spec)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.db() as conn:  # type: ignore[attr-defined]
            spec = complete_from_event(event, conn=conn, spec_base=self.fine_tune_spec_base(context))
        return self.publish_fine_tuned_spec(context, spec)
