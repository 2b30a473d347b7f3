"""PostgreSQL faults over a full ``feedback_retraining`` run (``dag.test()``).

The feedback DB is the session's embedded PostgreSQL (restarted on its own port, so every
later test finds it where it was) reached through a loopback TCP proxy (:mod:`tests.fakes.tcp_proxy`), which lands two faults
deterministically:

* the server is restarted (``pg_ctl stop -m fast`` + start on the same port) while
  ``extract_feedback`` is streaming its result: the task must fail cleanly, stage nothing,
  and its retry must extract every row;
* the answers to the ``COMMIT`` of ``gate`` (model version + golden run) and of
  ``deploy_challenger`` (alias + history) are lost after the server committed: each task
  sees a dropped connection although its write landed; the retries must not add a second
  golden run, model version, deployment or history row.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.fakes.tcp_proxy import TcpProxy
from tests.reliability.conftest import (
    duplicate_rows,
    feedback_rows_in_interval,
    ml_counts,
    query,
    run_dag,
    states,
    tries,
    use_openai_trainer,
    visible_artifacts,
)
from tests.reliability.fault_figures import record
from tests.support import use_feedback_db

from feedbackloop import embedded_pg
from feedbackloop.staging import run_key

pytestmark = pytest.mark.slow


@pytest.fixture
def own_pg(pg_server, seeded_db) -> dict[str, Any]:
    """The session's embedded PostgreSQL (restarted by this test, on the same port) and a
    seeded feedback DB on it."""
    return {"pgdata": pg_server.pgdata, "port": pg_server.port, "dsn": seeded_db}


def _restart(pgdata: Path, port: int) -> None:
    """Stop the server (terminating every session) and start it again on the same port.

    ``embedded_pg.start`` would move to another port while the old one has sockets in
    TIME_WAIT; PostgreSQL itself binds with SO_REUSEADDR, so it is asked for the same port.
    """
    embedded_pg.stop(pgdata)
    _start_on(pgdata, port)


def _start_on(pgdata: Path, port: int) -> None:
    """Start the server on ``port`` (a no-op when it runs)."""
    free_port = embedded_pg.free_port
    embedded_pg.free_port = lambda preferred=0: preferred  # test-only: keep the port
    try:
        server = embedded_pg.start(pgdata, port=port)
    finally:
        embedded_pg.free_port = free_port
    assert server.port == port


def test_postgres_restart_mid_extract_and_lost_commit_replies_in_gate_and_deploy(
    retrying_dag, own_pg, openai_fake, slack, monkeypatch, tmp_path
):
    proxy = TcpProxy(("127.0.0.1", own_pg["port"])).start()
    try:
        use_feedback_db(monkeypatch, own_pg["dsn"].replace(f":{own_pg['port']}/", f":{proxy.port}/"))
        staging = tmp_path / "staging"
        monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", staging.as_uri())

        restarted = threading.Event()

        def restart_server() -> None:
            _restart(own_pg["pgdata"], own_pg["port"])
            restarted.set()

        # The extract is the first task to talk to the DB: 20 KB into its result, restart.
        proxy.on_downstream_bytes(20_000, restart_server)
        # gate's and deploy_challenger's writes commit, but the client never hears they did.
        proxy.lose_reply_to(b"COMMIT", after=b"INSERT INTO ml.golden_runs", grace_s=1.0)
        proxy.lose_reply_to(b"COMMIT", after=b"INSERT INTO ml.deployment_history", grace_s=1.0)

        between_tries: dict[str, Any] = {}

        def look_between_tries(task_id: str, try_number: int, state: str) -> None:
            if task_id == "extract_feedback":
                restarted.wait(30)
                between_tries["extract"] = visible_artifacts(staging)
            elif task_id == "gate":
                between_tries["gate"] = query(own_pg["dsn"], "SELECT verdict FROM ml.golden_runs")
            elif task_id == "deploy_challenger":
                between_tries["deploy"] = query(own_pg["dsn"], "SELECT alias FROM ml.deployments")

        retrying_dag.attempt_log.hooks.append(look_between_tries)

        dr = run_dag(retrying_dag, use_openai_trainer(retrying_dag))
    finally:
        proxy.stop()
        # The session's server must be up for every later test, whatever happened here.
        _start_on(own_pg["pgdata"], own_pg["port"])

    assert proxy.trigger_error is None, f"the restart itself failed: {proxy.trigger_error!r}"
    st, attempts = states(dr), tries(dr)
    assert dr.state == "success", st
    assert proxy.triggered.is_set() and restarted.is_set()
    assert proxy.replies_lost == 2
    assert {t: n for t, n in attempts.items() if n > 1} == {
        "extract_feedback": 2,
        "gate": 2,
        "deploy_challenger": 2,
    }
    (extract_error,) = retrying_dag.attempt_log.reasons("extract_feedback")
    # The server's goodbye ("terminating connection due to administrator command") or the
    # socket closing, as the driver words it: a database connection error, not a data error.
    assert extract_error.startswith("OperationalError"), extract_error
    assert re.search(r"administrator command|closed the connection|terminat|connection", extract_error)
    (gate_error,) = retrying_dag.attempt_log.reasons("gate")
    (deploy_error,) = retrying_dag.attempt_log.reasons("deploy_challenger")
    assert gate_error.startswith("OperationalError"), gate_error
    assert deploy_error.startswith("OperationalError"), deploy_error

    # The failed extract staged nothing, not even part of a file ...
    assert between_tries["extract"] == {}
    # ... and its retry extracted every row of the interval: nothing lost to the restart.
    run_dir = staging / "feedback_retraining" / run_key(dr.run_id)
    expected_rows = feedback_rows_in_interval(own_pg["dsn"])
    assert pq.read_metadata(run_dir / "feedback_raw.parquet").num_rows == expected_rows > 0

    # The first gate's and deploy's COMMITs did land (seen between the tries) ...
    assert between_tries["gate"] == [("pass",)]
    assert between_tries["deploy"] == [("challenger",)]
    # ... and the retry recorded nothing twice.
    counts = ml_counts(own_pg["dsn"])
    assert counts == {
        "ml.training_jobs": 1,
        "ml.model_versions": 1,
        "ml.golden_runs": 1,
        "ml.deployments": 1,
        "ml.deployment_history": 1,
    }
    assert set(duplicate_rows(own_pg["dsn"]).values()) == {0}
    assert openai_fake.jobs_created == 1
    assert [m["text"][:31] for m in slack.messages] == ["✅ Challenger deployed as canary"]
    record(
        "postgres: restart mid-extract + lost COMMIT replies in gate and deploy",
        test="test_faults_postgres.py::test_postgres_restart_mid_extract_and_lost_commit_replies_in_gate_and_deploy",
        faults_injected=3,
        run_state=dr.state,
        expected_state="success",
        retried_tasks={"extract_feedback": 1, "gate": 1, "deploy_challenger": 1},
        duplicates=sum(duplicate_rows(own_pg["dsn"]).values()),
        rows_lost=expected_rows - pq.read_metadata(run_dir / "feedback_raw.parquet").num_rows,
        partial_visible=len(between_tries["extract"]),
        notifications=len(slack.messages),
        remote_jobs=openai_fake.jobs_created,
        detail={
            "extract_error": extract_error[:200],
            "gate_error": gate_error[:200],
            "deploy_error": deploy_error[:200],
        },
    )
