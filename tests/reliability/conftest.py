"""Fixtures of the fault-injection suite: full ``dag.test()`` runs of ``feedback_retraining``
with retries switched on (delay 0), a small seeded feedback DB, and a recorder of what every
scenario injected and observed.

The scenarios' figures (:mod:`tests.reliability.fault_figures`: faults injected, runs that
survived, duplicates found, rows lost) are written to
``<pytest basetemp>/reliability_summary.json`` (and to ``$FEEDBACKLOOP_RELIABILITY_SUMMARY``
when set) and printed in the terminal summary.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.reliability.fault_figures import records, summary
from tests.support import INTERVAL, RUN_DATE, use_feedback_db

from feedbackloop import db

DAG_ID = "feedback_retraining"
# Small but realistic: enough rows for every category and the 10-example minimum, small
# enough that a full run with retries stays within a few seconds.
FEEDBACK_ROWS = 400
SEED = 11
# Thresholds the local model (and the fake OpenAI model) clear on this sample, so only the
# injected fault decides the outcome; the gate's semantics are tested in tests/unit.
LENIENT = {"min_accuracy": 0.5, "min_critical_accuracy": 0.5, "max_ece": 0.5, "max_p95_latency_ms": 5000.0}
SUMMARY_ENV = "FEEDBACKLOOP_RELIABILITY_SUMMARY"
STAGE_TASKS = (
    "extract_feedback",
    "validate_feedback",
    "compute_rewards",
    "build_training_sets",
    "train_challenger",
    "evaluate_golden_set",
    "gate",
    "deploy_challenger",
)


# ------------------------------------------------------------------------ Airflow
# airflow_db and dagbag come from tests/conftest.py.


class AttemptLog(list):
    """Failed attempts as Airflow reports them to task callbacks: ``(task_id, try_number,
    state, "ExceptionType: message")``; ``hooks`` run on each failed attempt (e.g. to look at
    staging between the failed try and its retry)."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Any] = []

    def reasons(self, task_id: str) -> list[str]:
        return [r for t, _, _, r in self if t == task_id]


def _quick_dag_test_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dag.test()`` sleeps 1 s per loop while nothing is runnable, e.g. for every task that
    turns ``upstream_failed`` below a failed one (a scheduler would not); poll every 20 ms
    instead. Only sleeps called from ``dag.test()`` itself change."""
    import time

    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        caller = sys._getframe(1).f_code
        if caller.co_name == "test" and caller.co_filename.endswith(
            os.path.join("sdk", "definitions", "dag.py")
        ):
            seconds = min(seconds, 0.02)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


@pytest.fixture
def retrying_dag(dagbag, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``feedback_retraining`` with its production retry counts but no wait between tries.

    Retries are what these tests exercise, so they stay as configured (2 per stage, 0 for
    ``notify`` and ``watcher``; the scenarios need at least 2); only ``retry_delay`` becomes 0
    and the exponential backoff is switched off. Every failed attempt is logged in ``dag.attempt_log`` (an
    :class:`AttemptLog`) through task-level retry/failure callbacks. Everything is restored
    afterwards: the DagBag is shared by the session.
    """
    dag = dagbag.dags[DAG_ID]
    log = AttemptLog()
    _quick_dag_test_polling(monkeypatch)

    def on_failed_attempt(state: str):
        def callback(context: dict[str, Any]) -> None:
            ti, exc = context["ti"], context.get("exception")
            log.append((ti.task_id, ti.try_number, state, f"{type(exc).__name__}: {exc}"))
            for hook in log.hooks:
                hook(ti.task_id, ti.try_number, state)

        return callback

    too_few = {t.task_id: t.retries for t in dag.tasks if t.task_id in STAGE_TASKS and t.retries < 2}
    assert not too_few, f"the fault scenarios need >= 2 retries per stage, the DAG has {too_few}"
    saved = []
    for task in dag.tasks:
        saved.append(
            (
                task,
                task.retry_delay,
                task.retry_exponential_backoff,
                task.on_retry_callback,
                task.on_failure_callback,
                vars(task).get("fine_tune_poll_interval"),
            )
        )
        task.retry_delay = timedelta(0)
        task.retry_exponential_backoff = 0
        task.on_retry_callback = [on_failed_attempt("up_for_retry")]
        task.on_failure_callback = [on_failed_attempt("failed")]
    dag.attempt_log = log
    yield dag
    del dag.attempt_log
    for task, delay, backoff, on_retry, on_failure, poll in saved:
        task.retry_delay, task.retry_exponential_backoff = delay, backoff
        task.on_retry_callback, task.on_failure_callback = on_retry, on_failure
        if poll is None:
            vars(task).pop("fine_tune_poll_interval", None)
        else:
            task.fine_tune_poll_interval = poll


def run_dag(dag: Any, conf: dict[str, Any] | None = None) -> Any:
    """One ``dag.test()`` run of the weekly run at :data:`RUN_DATE` with ``conf``."""
    return dag.test(logical_date=RUN_DATE, run_conf={**LENIENT, **(conf or {})})


def states(dr: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def max_tries(dag: Any, task_id: str) -> int:
    """Attempts Airflow gives a task: 1 + its retries."""
    return 1 + int(dag.get_task(task_id).retries)


def tries(dr: Any) -> dict[str, int]:
    """Attempts each task made (``try_number`` of its final state)."""
    return {ti.task_id: ti.try_number for ti in dr.get_task_instances()}


# ---------------------------------------------------------------------- feedback DB


def seed_feedback(dsn: str, rows: int = FEEDBACK_ROWS) -> None:
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(dsn) as conn:
        load_app_data(conn, iter_app_data(rows, SEED, INTERVAL[0], INTERVAL[1], malformed_fraction=0.01))
        conn.commit()


@pytest.fixture
def seeded_db(pg_dsn: str) -> str:
    seed_feedback(pg_dsn)
    return pg_dsn


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_db: str) -> dict[str, Any]:
    """Feedback DB and local staging wired in as the DAG expects them (Slack unset)."""
    use_feedback_db(monkeypatch, seeded_db)
    staging = tmp_path / "staging"
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", staging.as_uri())
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_ALERTS", raising=False)
    return {"dsn": seeded_db, "staging": staging}


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with db.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


ML_TABLES = (
    "ml.training_jobs",
    "ml.model_versions",
    "ml.golden_runs",
    "ml.deployments",
    "ml.deployment_history",
)


def ml_counts(dsn: str) -> dict[str, int]:
    """Rows per pipeline table: what a retry must never duplicate."""
    return {t: query(dsn, f"SELECT count(*) FROM {t}")[0][0] for t in ML_TABLES}  # noqa: S608 - constant names


def duplicate_rows(dsn: str) -> dict[str, int]:
    """Rows beyond one per natural key of a run (0 everywhere when retries are idempotent)."""
    checks = {
        "ml.training_jobs": "SELECT count(*) - count(DISTINCT (dag_id, run_id, method)) FROM ml.training_jobs",
        "ml.model_versions": "SELECT count(*) - count(DISTINCT version_id) FROM ml.model_versions",
        "ml.golden_runs": "SELECT count(*) - count(DISTINCT (dag_id, run_id, version_id)) FROM ml.golden_runs",
        "ml.deployments": "SELECT count(*) - count(DISTINCT alias) FROM ml.deployments",
        "ml.deployment_history": (
            "SELECT count(*) - count(DISTINCT (alias, version_id, traffic_share, action, updated_by)) "
            "FROM ml.deployment_history"
        ),
    }
    return {t: query(dsn, sql)[0][0] for t, sql in checks.items()}


def feedback_rows_in_interval(dsn: str) -> int:
    return query(
        dsn,
        "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
        *INTERVAL,
    )[0][0]


# -------------------------------------------------------------------------- staging


def visible_artifacts(root: Path) -> dict[str, int]:
    """What staging shows (``LocalStaging.list``): key -> size; hidden temporaries excluded."""
    from feedbackloop.staging import LocalStaging

    staging = LocalStaging(root)
    return {k: (root / k).stat().st_size for k in staging.list()}


def check_artifact(name: str, data: bytes) -> None:
    """Raise unless ``data`` is a whole artifact of its kind (Parquet footer, JSON, JSONL, ...)."""
    import io

    import pyarrow.parquet as pq

    if name.endswith(".parquet"):
        pq.read_table(io.BytesIO(data))
    elif name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".jsonl"):
        for line in data.decode().splitlines():
            json.loads(line)
    elif name.endswith(".png"):
        assert data.startswith(b"\x89PNG") and data.rstrip().endswith(b"IEND\xaeB`\x82"), name
    elif name.endswith(".html"):
        assert data.rstrip().endswith(b"</html>"), name
    else:
        assert data, name


# ------------------------------------------------------------------------ recorder


@pytest.fixture(scope="session", autouse=True)
def _reliability_summary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    if not records():
        return
    data = json.dumps(summary(), indent=2, sort_keys=True, default=str)
    targets = [tmp_path_factory.getbasetemp() / "reliability_summary.json"]
    if os.environ.get(SUMMARY_ENV):
        targets.append(Path(os.environ[SUMMARY_ENV]))
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not records():
        return
    s = summary()
    terminalreporter.section("fault injection summary")
    terminalreporter.write_line(json.dumps({k: v for k, v in s.items() if k != "records"}, sort_keys=True))
    for r in s["records"]:
        terminalreporter.write_line(
            f"{r['scenario']}: faults={r['faults_injected']} state={r['run_state']} "
            f"(expected {r['expected_state']}) retried={r['retried_tasks']} dup={r['duplicates_found']} "
            f"lost={r['rows_lost']} partial={r['partial_artifacts_visible']} "
            f"slack={r['notifications_delivered']} jobs={r['remote_jobs_created']}"
        )


# ------------------------------------------------------------------ fake services


def golden_responder() -> Any:
    """The fake model answers every golden email correctly (confidence 0.9): only faults can
    make a run fail the gate."""
    from tests.fakes.openai_server import answer, lookup_responder

    from feedbackloop.golden import load_golden_set
    from feedbackloop.models.openai_chat import truncate_email

    table = {truncate_email(g.text): answer(g.category, g.actions, 0.9) for g in load_golden_set()}
    return lookup_responder(table)


OPENAI_TIMEOUT_S = 1.5


def openai_connection_json(fake: Any, timeout_s: float = OPENAI_TIMEOUT_S) -> str:
    """``openai_default`` pointing at the fake; the SDK's own retries off (the project retries
    itself) and a short request timeout, so a ``slow`` fault is a client-side timeout."""
    return json.dumps(
        {
            "conn_type": "openai",
            "host": fake.base_url,
            "password": fake.api_key,
            "extra": {"openai_client_kwargs": {"timeout": timeout_s, "max_retries": 0}},
        }
    )


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A loopback Slack webhook wired in as ``slack_alerts``."""
    from tests.fakes.slack_server import FakeSlackWebhook

    with FakeSlackWebhook() as fake:
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", fake.connection_json())
        yield fake


@pytest.fixture
def openai_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The fake OpenAI API as ``openai_default``, answering the golden set correctly."""
    from tests.fakes.openai_server import FakeOpenAI, Faults

    with FakeOpenAI(responder=golden_responder(), faults=Faults(slow_s=OPENAI_TIMEOUT_S + 0.5)) as fake:
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", openai_connection_json(fake))
        yield fake


def use_openai_trainer(dag: Any, poll_interval: float = 0.02) -> dict[str, Any]:
    """Conf for ``trainer=openai`` and a trigger that polls the fake every ``poll_interval``
    (instead of every minute); restored by :func:`retrying_dag`."""
    dag.get_task("train_challenger").fine_tune_poll_interval = poll_interval
    return {"trainer": "openai"}
