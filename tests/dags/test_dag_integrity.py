"""DAG integrity: every DAG imports, follows the house rules, and does no work at parse time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("pandas", "pyarrow", "great_expectations", "sklearn", "openai", "boto3", "scipy", "psycopg")


def test_dag_folder_has_dags():
    assert DAG_FILES, "no DAG files found in dags/"


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_id_matches_file_name(dagbag, path):
    assert path.stem in dagbag.dags, f"{path.name} must define a DAG with dag_id '{path.stem}'"


def test_dag_conventions(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not dag.doc_md or len(dag.doc_md.strip()) < 40:
            problems.append(f"{dag_id}: doc_md missing or too short")
        if dag.catchup:
            problems.append(f"{dag_id}: catchup must be False")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag_id}.{task.task_id}: owner not set")
        stage_tasks = [t for t in dag.tasks if t.task_type not in ("_PythonDecoratedOperator",)]
        if not any(t.retries and t.retries > 0 for t in stage_tasks):
            problems.append(f"{dag_id}: no task has retries")
    assert problems == []


def test_retraining_flow_order(dagbag):
    dag = dagbag.dags["feedback_retraining"]
    order = [
        "extract_feedback",
        "validate_feedback",
        "compute_rewards",
        "build_training_sets",
        "train_challenger",
        "evaluate_golden_set",
        "gate",
        "deploy_challenger",
        "notify",
    ]
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} >> {downstream} missing"
    assert dag.get_task("notify").trigger_rule == "all_done"
    for t in dag.tasks:
        if t.task_id not in ("notify", "watcher"):
            assert t.retries >= 1, f"{t.task_id} has no retries"


def test_retraining_schedule_and_params(dagbag):
    dag = dagbag.dags["feedback_retraining"]
    assert dag.timetable.expression == "0 2 * * 0"
    for name in ("trainer", "base_model", "min_examples", "dry_run", "min_accuracy", "min_critical_accuracy"):
        assert name in dag.params, f"param {name} missing from the trigger form"


_PARSE_PROBE = r"""
import json, sys, importlib.util
from unittest import mock
sys.path[:0] = [sys.argv[2], sys.argv[3]]
calls = []
def deny(*a, **k):
    calls.append(repr(a))
    raise RuntimeError("connection or variable access at parse time")
with mock.patch("airflow.sdk.BaseHook.get_connection", deny), \
     mock.patch("airflow.sdk.Variable.get", deny):
    spec = importlib.util.spec_from_file_location("dagfile", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
print(json.dumps({"calls": calls, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_parse_touches_no_connection_and_no_heavy_module(path):
    """Parsing a DAG file in a fresh interpreter reads no connection/variable and imports no
    heavy library (those belong inside execute())."""
    out = subprocess.run(
        [sys.executable, "-c", _PARSE_PROBE, str(path), str(ROOT / "plugins"), str(ROOT / "dags")],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["calls"] == []
    heavy = sorted(set(HEAVY_MODULES) & set(result["modules"]))
    assert heavy == [], f"{path.name} imports {heavy} at parse time"
