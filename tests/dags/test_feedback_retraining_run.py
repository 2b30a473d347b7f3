"""Full runs of ``feedback_retraining`` with ``dag.test()`` against a real PostgreSQL.

What a user would check after a run: the run's state, the staged artifacts and their row
counts, and what the ``ml`` tables say was decided.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from tests.support import INTERVAL, RUN_DATE, use_feedback_db

from feedbackloop import db
from feedbackloop.staging import run_key

pytestmark = pytest.mark.slow

FEEDBACK_ROWS = 1200
# Thresholds the local model clears on this small sample, so the pass path is exercised
# deterministically; the gate's own semantics are tested in tests/unit/test_gate.py.
LENIENT = {"min_accuracy": 0.5, "min_critical_accuracy": 0.5, "max_ece": 0.5, "max_p95_latency_ms": 5000.0}


@pytest.fixture
def seeded_db(pg_dsn):
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(pg_dsn) as conn:
        load_app_data(conn, iter_app_data(FEEDBACK_ROWS, 11, INTERVAL[0], INTERVAL[1], malformed_fraction=0.01))
        conn.commit()
    return pg_dsn


def _run(dagbag, monkeypatch, tmp_path, dsn, conf):
    use_feedback_db(monkeypatch, dsn)
    staging_root = tmp_path / "staging"
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", staging_root.as_uri())
    dag = dagbag.dags["feedback_retraining"]
    for task in dag.tasks:  # a failure here is a bug to see at once, not to retry for minutes
        monkeypatch.setattr(task, "retries", 0)
    dr = dag.test(logical_date=RUN_DATE, run_conf=conf)
    return dr, staging_root / "feedback_retraining" / run_key(dr.run_id)


def _states(dr):
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def _query(dsn, sql, *params):
    with db.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_passing_run_stages_artifacts_and_deploys_a_canary(dagbag, monkeypatch, tmp_path, seeded_db):
    dr, run_dir = _run(dagbag, monkeypatch, tmp_path, seeded_db, LENIENT)
    states = _states(dr)
    assert dr.state == "success", states
    assert states["deploy_challenger"] == "success"
    assert states["watcher"] == "skipped"

    # Extraction read exactly the interval's feedback rows, and validation reconciles.
    (expected_rows,) = _query(
        seeded_db,
        "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
        *INTERVAL,
    )[0]
    raw = pq.read_table(run_dir / "feedback_raw.parquet")
    valid = pq.read_table(run_dir / "feedback_valid.parquet")
    quarantine = pq.read_table(run_dir / "quarantine.parquet")
    assert raw.num_rows == expected_rows >= FEEDBACK_ROWS
    assert valid.num_rows + quarantine.num_rows == raw.num_rows
    assert quarantine.num_rows > 0  # the generator injected malformed rows
    assert pq.read_table(run_dir / "rewards.parquet").num_rows == valid.num_rows

    train_lines = (run_dir / "train.jsonl").read_text().splitlines()
    assert len(train_lines) >= 10
    assert "messages" in json.loads(train_lines[0])
    for name in ("validation.jsonl", "preference.jsonl", "model.bin", "model_spec.json", "report.json",
                 "report.html", "gx_validation.json"):
        assert (run_dir / name).stat().st_size > 0, name

    # The ml tables hold the decision: a passing golden run and the canary deployment.
    spec = json.loads((run_dir / "model_spec.json").read_text())
    runs = _query(seeded_db, "SELECT version_id, verdict FROM ml.golden_runs")
    assert runs == [(spec["version_id"], "pass")]
    deployments = _query(seeded_db, "SELECT alias, version_id, traffic_share FROM ml.deployments")
    assert [(a, v, float(s)) for a, v, s in deployments] == [("challenger", spec["version_id"], 0.05)]
    history = _query(seeded_db, "SELECT count(*) FROM ml.deployment_history")
    assert history == [(1,)]


def test_failing_gate_records_the_verdict_and_deploys_nothing(dagbag, monkeypatch, tmp_path, seeded_db):
    dr, run_dir = _run(dagbag, monkeypatch, tmp_path, seeded_db, {**LENIENT, "min_accuracy": 1.0})
    states = _states(dr)
    assert dr.state == "failed"
    assert states["gate"] == "failed"
    assert states["deploy_challenger"] == "upstream_failed"
    assert states["notify"] == "success"  # notify still reports the failed gate

    (verdict, reasons) = _query(seeded_db, "SELECT verdict, reasons FROM ml.golden_runs")[0]
    assert verdict == "fail"
    assert any("accuracy" in r for r in reasons), reasons
    assert _query(seeded_db, "SELECT count(*) FROM ml.deployments") == [(0,)]
    assert json.loads((run_dir / "report.json").read_text())["decision"]["passed"] is False
