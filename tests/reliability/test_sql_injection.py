"""SQL is parameterised everywhere: SQL metacharacters through every input that reaches a query.

Inputs and where they go in:

* the app's rows (ids, user ids, model versions, predicted and corrected category names,
  sender, subject, body, note): the hostile run extracts them through ``ml.feedback_records``;
  the review queue, contributor stats and dashboard summaries read them directly;
* DAG params: the trigger form's ``base_model`` ends up in ``ml.model_versions.spec``;
* dag / run ids, model version ids, ``updated_by`` / ``reason`` / the override's requester:
  the registry, the gate record, the A/B override (Airflow's own run-id pattern does not
  allow quotes, so these are fed to the functions directly, as a superuser, the worst case);
* the dashboard's query parameters (report id, days, as_of, limit).

Each time: the rows survive byte for byte and nothing was executed (the app tables' digest
is unchanged, no canary table or file exists, the ``ml`` rows are exactly the expected ones).
A static check also keeps SQL text free of interpolated values: every f-string or
``%``/``format`` that builds SQL in include/, plugins/ and dags/ may only splice vetted
constants (table or column lists), never data; identifiers go through psycopg.sql.
"""

from __future__ import annotations

import ast
import copy
import io
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.reliability.security_support import (
    SQL_PAYLOADS,
    Figures,
    hostile_run,
    injection_traces,
    insert_hostile_rows,
    table_digests,
)
from tests.support import INTERVAL, RUN_DATE, use_feedback_db

from feedbackloop import db, registry

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hostile(pg_server, dagbag, capfd):
    return hostile_run(pg_server, dagbag, capfd)


@pytest.fixture
def figures(tmp_path_factory):
    return Figures(tmp_path_factory.getbasetemp())


# --------------------------------------------------------------------------- static check

# A literal is SQL when it starts (after whitespace) with an upper-case SQL keyword: statements
# and the fragments code appends to them (" WHERE ...", " AND ..."). Upper case, as this
# project writes SQL, so English messages ("Set it in ...") do not count.
SQL_START = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|GRANT|REVOKE|COPY|TRUNCATE|LOCK|SET|WITH|"
    r"WHERE|AND|OR|ORDER BY|GROUP BY|FROM|JOIN|LEFT JOIN|VALUES|ON CONFLICT|RETURNING|LIMIT)\b"
)

# (file, interpolated expression): vetted constants, each checked by reading the code.
VETTED: set[tuple[str, str]] = {
    ("include/feedbackloop/experiment.py", "cols"),  # constant column list
    ("include/feedbackloop/registry.py", "where"),  # constant predicates from this module, values are %s
    ("include/feedbackloop/contributors.py", "', '.join(_STATS_COLUMNS)"),
    ("include/feedbackloop/contributors.py", "CARDS_CTE"),  # constant SQL with %(name)s parameters
    ("include/feedbackloop/review.py", "CARDS_CTE"),
    ("include/feedbackloop/contributors.py", "', '.join(['%s'] * len(_STATS_COLUMNS))"),
    ("include/feedbackloop/dashboard_data.py", "table"),  # from the constant _SUMMARY_TABLES
    ("include/feedbackloop/dashboard_data.py", "window_sums"),  # built from constant WINDOW_DAYS
    ("include/feedbackloop/alerts.py", "', '.join(_COLUMNS)"),
    ("include/feedbackloop/alerts.py", "_SELECT"),
    ("include/feedbackloop/alerts.py", "column"),  # one of two constant column names
    ("include/feedbackloop/models/openai_finetune.py", "', '.join(_COLUMNS)"),
    ("include/feedbackloop/models/openai_finetune.py", "', '.join(insert_cols)"),  # checked against _COLUMNS
    ("include/feedbackloop/models/openai_finetune.py", "', '.join(['%s'] * len(insert_cols))"),
    ("include/feedbackloop/models/openai_finetune.py", "', '.join(updates)"),  # names checked above
    ("include/feedbackloop/models/openai_finetune.py", "_LOCK_TIMEOUT"),
    ("include/feedbackloop/synth/appdata.py", "t"),  # table names of the constant TABLE_COLUMNS
    ("include/feedbackloop/synth/appdata.py", "', '.join(cols)"),
    ("include/feedbackloop/demo.py", "', '.join((f'app.{t}' for t in APP_TABLES))"),  # constant tuple
    ("plugins/feedbackloop_dashboard/pool.py", "int(STATEMENT_TIMEOUT_MS)"),
}


def _sql_like(text: str) -> bool:
    return SQL_START.match(text) is not None


def _interpolations(path: Path) -> list[tuple[int, str]]:
    """Expressions spliced into SQL-looking string literals (f-strings, %, .format, +)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.JoinedStr):
            literal = "".join(
                v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            if _sql_like(literal):
                found += [
                    (node.lineno, ast.unparse(v.value))
                    for v in node.values
                    if isinstance(v, ast.FormattedValue)
                ]
        elif (
            isinstance(node, ast.BinOp)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.left.value, str)
        ):
            if isinstance(node.op, ast.Mod | ast.Add) and _sql_like(node.left.value):
                found.append((node.lineno, ast.unparse(node.right)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Constant)
            and isinstance(node.func.value.value, str)
            and _sql_like(node.func.value.value)
        ):
            found += [(node.lineno, ast.unparse(a)) for a in [*node.args, *(k.value for k in node.keywords)]]
    return found


def test_sql_text_splices_only_vetted_constants(figures):
    files = sorted(p for d in ("include", "plugins", "dags") for p in (ROOT / d).rglob("*.py"))
    unvetted, seen = [], set()
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for line, expr in _interpolations(path):
            seen.add((rel, expr))
            if (rel, expr) not in VETTED:
                unvetted.append(f"{rel}:{line}: {expr}")
    assert unvetted == [], (
        "SQL text built from a non-vetted expression: pass values as %s parameters and identifiers "
        "through psycopg.sql.Identifier (or vet a constant here):\n" + "\n".join(unvetted)
    )
    stale = sorted(VETTED - seen)
    assert stale == [], f"vetted entries no longer in the code (remove them): {stale}"
    figures.record("sql_injection", python_files_checked=len(files), vetted_constant_splices=len(VETTED))


def test_the_static_check_catches_an_interpolated_value(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f(cur, user):\n"
        "    cur.execute(f\"SELECT * FROM app.predictions WHERE user_id = '{user}'\")\n"
        "    cur.execute(\"DELETE FROM ml.alerts WHERE key = '%s'\" % user)\n"
        "    cur.execute('UPDATE ml.deployments SET reason = ' + user)\n"
    )
    assert [expr for _, expr in _interpolations(bad)] == ["user", "user", "user"]


# ------------------------------------------------------------------------ the DAG's inputs


def test_hostile_rows_survive_extraction_intact_and_nothing_executes(hostile, figures):
    ok = hostile.run("ok")
    assert ok.state == "success", ok.states
    staged = hostile.staged_for("ok")
    raw = pq.read_table(io.BytesIO(staged["feedback_raw.parquet"])).to_pylist()
    valid = pq.read_table(io.BytesIO(staged["feedback_valid.parquet"])).to_pylist()
    quarantine = pq.read_table(io.BytesIO(staged["quarantine.parquet"])).to_pylist()
    # Nothing lost: every row of the interval, and every row is valid or quarantined.
    assert len(raw) == hostile.db_rows_in_interval
    assert len(valid) + len(quarantine) == len(raw)

    by_id = {r["feedback_id"]: r for r in raw}
    valid_ids = {r["feedback_id"] for r in valid}
    quarantined = {r["feedback_id"]: r for r in quarantine}
    fields = 0
    for row in hostile.hostile_rows:
        got = by_id[row["prediction_id"]]  # the id itself carries a payload
        for column in (
            "email_id",
            "user_id",
            "model_version",
            "sender",
            "subject",
            "note",
            "corrected_category",
        ):
            assert got[column] == row[column], (column, got[column], row[column])
            fields += 1
        assert got["body"] == row["body"].encode()
        if row["corrected_category"].startswith("bills"):
            assert row["prediction_id"] in quarantined, "an unknown category must be quarantined, not dropped"
            assert "unknown_category" in json.dumps(quarantined[row["prediction_id"]], default=str)
        else:
            assert row["prediction_id"] in valid_ids

    # The trigger form's base_model (with metacharacters) is stored verbatim in the registry.
    with db.connect(hostile.dsn) as conn:
        (spec,) = conn.execute("SELECT spec FROM ml.model_versions").fetchone()
    assert spec["base_model"] == hostile.base_model

    # Nothing was executed: the app tables are unchanged and no canary exists.
    assert hostile.app_after == hostile.app_before
    assert injection_traces(hostile.dsn) == []
    figures.record(
        "sql_injection",
        payloads=len(SQL_PAYLOADS),
        hostile_feedback_rows=len(hostile.hostile_rows),
        hostile_fields_checked_byte_for_byte=fields + len(hostile.hostile_rows),
        app_columns_with_payloads=[
            "email_id",
            "prediction_id",
            "correction_id",
            "action_feedback_id",
            "event_id",
            "user_id",
            "model_version",
            "category name",
            "sender",
            "subject",
            "body",
            "note",
        ],
        dag_params_with_payloads=["base_model"],
        rows_in_interval=hostile.db_rows_in_interval,
        rows_extracted=len(raw),
        rows_lost=hostile.db_rows_in_interval - len(valid) - len(quarantine),
    )


# ------------------------------------------------------- ids, names and free text, directly


def test_ids_names_and_reasons_with_metacharacters_round_trip(hostile, pg_dsn, figures):
    """dag/run ids, version ids, who/why, override requester, review actor: stored verbatim."""
    from feedbackloop.contributors import refresh_contributor_stats
    from feedbackloop.dashboard_data import refresh_summary
    from feedbackloop.experiment import Override, evaluate_experiment
    from feedbackloop.gate import GateThresholds
    from feedbackloop.gate import gate as decide
    from feedbackloop.review import refresh_review_queue

    staged = hostile.staged_for("ok")
    spec0 = json.loads(staged["model_spec.json"])
    evaluation = json.loads(staged["eval_challenger.json"])
    decision = decide(
        evaluation, GateThresholds(min_accuracy=0, min_critical_accuracy=0, max_ece=1, max_p95_latency_ms=1e9)
    )
    assert decision.passed
    calls = 0
    with db.connect(pg_dsn) as conn:  # the superuser: an executed payload could do anything
        insert_hostile_rows(conn)
        before = table_digests(pg_dsn)
        versions = []
        for i, payload in enumerate(SQL_PAYLOADS):
            spec = copy.deepcopy(spec0)
            spec["version_id"] = f"v{i}-{payload}"
            run = {
                "dag_id": f"dag-{payload}",
                "run_id": f"run-{payload}",
                "data_interval_start": INTERVAL[0].isoformat(),
                "data_interval_end": INTERVAL[1].isoformat(),
            }
            registry.record_gate(conn, spec, run, decision, evaluation, f"s3://bucket/{payload}/report.json")
            assert registry.get_alias(conn, payload) is None
            versions.append(spec["version_id"])
            calls += 2
        payload = SQL_PAYLOADS[0]
        registry.deploy_challenger(conn, versions[2], 0.05, updated_by=payload, reason=SQL_PAYLOADS[1])
        result = evaluate_experiment(
            conn,
            RUN_DATE.date(),
            f"manual__{payload}",
            Override("force_rollback", SQL_PAYLOADS[8], requested_by=SQL_PAYLOADS[10]),
            updated_by=SQL_PAYLOADS[4],
        )
        assert result.outcome == "rollback"
        review = refresh_review_queue(conn, RUN_DATE, actor=f"review_queue/{SQL_PAYLOADS[6]}")
        contributors = refresh_contributor_stats(conn, RUN_DATE)
        refresh_summary(conn)
        calls += 6

        rows = conn.execute(
            "SELECT version_id, dag_id, run_id, report_uri, spec->>'version_id' FROM ml.model_versions ORDER BY 1"
        ).fetchall()
        assert sorted(r[0] for r in rows) == sorted(versions)
        for version_id, dag_id, run_id, report_uri, spec_version in rows:
            i = versions.index(version_id)
            assert (dag_id, run_id, spec_version) == (
                f"dag-{SQL_PAYLOADS[i]}",
                f"run-{SQL_PAYLOADS[i]}",
                version_id,
            )
            assert report_uri == f"s3://bucket/{SQL_PAYLOADS[i]}/report.json"
        assert conn.execute("SELECT count(*) FROM ml.golden_runs").fetchone() == (len(SQL_PAYLOADS),)
        ((reason, decided_by, run_id, outcome, source),) = conn.execute(
            "SELECT reason, decided_by, run_id, outcome, source FROM ml.experiment_decisions"
        ).fetchall()
        assert reason.endswith(SQL_PAYLOADS[8]) and SQL_PAYLOADS[10] in reason, reason
        assert (decided_by, run_id, outcome, source) == (
            SQL_PAYLOADS[10],
            f"manual__{payload}",
            "rollback",
            "manual",
        )
        history = conn.execute(
            "SELECT action, updated_by, reason FROM ml.deployment_history ORDER BY id"
        ).fetchall()
        assert history[0][1:] == (payload, SQL_PAYLOADS[1])
        assert history[-1][0] == "rollback"
        assert conn.execute("SELECT count(*) FROM ml.deployments").fetchone() == (0,)
        # Users with an accepted card (a correction to a known category) are in the stats.
        hostile_users = {
            r["user_id"] for r in hostile.hostile_rows if not r["corrected_category"].startswith("bills")
        }
        stats_users = {r[0] for r in conn.execute("SELECT user_id FROM ml.contributor_stats").fetchall()}
        assert hostile_users <= stats_users, "users with metacharacters in their id lost their cards"
        model_versions = {r[0] for r in conn.execute("SELECT model_version FROM ml.dashboard_model_hourly")}
        assert {r["model_version"] for r in hostile.hostile_rows} <= model_versions
    assert table_digests(pg_dsn) == before
    assert injection_traces(pg_dsn) == []
    figures.record(
        "sql_injection",
        direct_calls_with_payloads=calls,
        direct_inputs=[
            "dag_id",
            "run_id",
            "version_id",
            "report_uri",
            "alias",
            "updated_by",
            "reason",
            "override reason",
            "override requester",
            "review actor",
            "user ids (contributors)",
            "model versions (dashboard summary)",
        ],
        review_queue=review.get("enqueued"),
        contributors=contributors.get("contributors"),
    )


# ------------------------------------------------------------------------ dashboard params


@pytest.fixture
def dashboard(hostile, airflow_db, monkeypatch):
    """The dashboard app on the hostile run's DB, connected as the pipeline's role."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from feedbackloop_dashboard.app import SummaryKeeper, create_app
    from feedbackloop_dashboard.pool import ConnectionPool

    use_feedback_db(monkeypatch, hostile.dsn)
    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="data-team", role="viewer"))
    pool = ConnectionPool("feedback_db")
    app = create_app(pool, keeper=SummaryKeeper(pool, background=False))
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    pool.close()


def test_dashboard_parameters_with_metacharacters_are_refused_or_harmless(hostile, dashboard, figures):
    client, auth = dashboard
    before = table_digests(hostile.dsn)
    as_of = RUN_DATE.isoformat()
    tried = 0
    for payload in SQL_PAYLOADS:
        # Without a token nothing is even parsed: 401.
        assert client.get("/reports", params={"id": payload}).status_code == 401
        # Free text reaches one query, as a parameter: no such report.
        assert client.get("/reports", params={"id": payload}, headers=auth).status_code == 404
        for route, params in (
            ("/api/accuracy", {"days": payload}),
            ("/api/latency", {"as_of": payload}),
            ("/api/misclassifications", {"limit": payload}),
            ("/api/alerts", {"limit": f"5{payload}"}),
            ("/", {"days": f"7{payload}"}),
        ):
            response = client.get(route, params=params, headers=auth)
            assert response.status_code == 422, (route, params, response.text)
            tried += 1
        tried += 2
    # The hostile model versions are shown as they are (and the dashboard works as the role).
    response = client.get("/api/accuracy", params={"days": 30, "as_of": as_of}, headers=auth)
    assert response.status_code == 200
    text = response.text
    shown = [r["model_version"] for r in hostile.hostile_rows if json.dumps(r["model_version"])[1:-1] in text]
    assert len(shown) == len(hostile.hostile_rows), "a model version with metacharacters is missing"
    assert table_digests(hostile.dsn) == before
    assert injection_traces(hostile.dsn) == []
    figures.record("sql_injection", dashboard_requests_with_payloads=tried)


def test_the_pipeline_tables_hold_only_what_the_run_wrote(hostile):
    """After the hostile run (as the role), the ml tables hold one model, one gate run and one
    deployment: no statement smuggled in by a payload deleted, duplicated or changed rows."""
    with db.connect(hostile.dsn) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM ml.{t}").fetchone()[0]  # noqa: S608 - constant names
            for t in ("model_versions", "golden_runs", "deployments", "deployment_history", "experiments")
        }
        share = conn.execute("SELECT traffic_share FROM ml.deployments WHERE alias = 'challenger'").fetchone()
    assert counts == {
        "model_versions": 1,
        "golden_runs": 1,
        "deployments": 1,
        "deployment_history": 1,
        "experiments": 1,
    }
    assert float(share[0]) == 0.05  # not the 1 a payload asked for
