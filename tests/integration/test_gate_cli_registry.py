"""``feedbackloop gate --model <alias>`` against a real registry (embedded PostgreSQL)."""

from __future__ import annotations

import io
import json

import pytest
from tests.tiny_models import train_tiny_model

from feedbackloop import db, registry
from feedbackloop.gate import NO_CHAMPION
from feedbackloop.gate_cli import run_gate

LENIENT = {"min_accuracy": 0.5, "min_critical_accuracy": 0.5, "max_ece": 0.5, "max_p95_latency_ms": 5000.0}


def _register(dsn: str, folder, version_id: str, per_category: int, alias: str | None) -> None:
    spec = train_tiny_model(folder / version_id, version_id, per_category)
    with db.connect(dsn) as conn:
        conn.execute(
            """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, report_uri, gate_passed)
               VALUES (%s, %s::jsonb, 'feedback_retraining', %s, 'file:///r', true)""",
            (version_id, json.dumps(spec), f"manual__{version_id}"),
        )
        conn.commit()
        if alias == "champion":
            conn.execute(
                "INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason) "
                "VALUES ('champion', %s, 1, 'test', 'seeded')",
                (version_id,),
            )
            conn.commit()
        elif alias == "challenger":
            registry.deploy_challenger(conn, version_id, 0.05, "test", "seeded canary")


def _gate(model: str, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_gate(model, stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_challenger_alias_is_gated_against_the_registered_champion(pg_dsn, tmp_path):
    _register(pg_dsn, tmp_path, "tiny-weak", 5, "champion")
    _register(pg_dsn, tmp_path, "tiny-good", 30, "challenger")
    # The DSN from the environment, as a CI job would pass it.
    code, out, err = _gate(
        "challenger",
        against_champion=True,
        thresholds=LENIENT,
        out=tmp_path / "report",
        env={"FEEDBACKLOOP_DSN": pg_dsn},
    )
    assert (code, err) == (0, "")
    assert "release gate for tiny-good (local, from registry alias 'challenger')" in out
    assert any(line.split()[:1] == ["paired:overall"] and line.endswith("pass") for line in out.splitlines())
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"]["champion_version"] == "tiny-weak"
    assert report["champion"]["model_version"] == "tiny-weak"


def test_champion_alias_is_evaluated_and_a_missing_challenger_is_a_usage_error(pg_dsn, tmp_path):
    _register(pg_dsn, tmp_path, "tiny-good", 30, "champion")
    code, out, _ = _gate("champion", dsn=pg_dsn, thresholds=LENIENT, out=None)
    assert code == 0
    assert "tiny-good" in out
    code, _, err = _gate("challenger", dsn=pg_dsn, out=None)
    assert code == 2
    assert "no model is registered as 'challenger' in the registry" in err


def test_no_champion_yet_is_recorded_as_the_reason(pg_dsn, tmp_path):
    spec_dir = tmp_path / "build"
    train_tiny_model(spec_dir, "tiny-new", 30)
    code, out, _ = _gate(
        str(spec_dir / "model_spec.json"),
        dsn=pg_dsn,
        against_champion=True,
        thresholds=LENIENT,
        out=tmp_path / "report",
    )
    assert code == 0
    assert f"  - {NO_CHAMPION}" in out
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert NO_CHAMPION in report["decision"]["reasons"]
    assert report["context"]["champion"] == NO_CHAMPION


@pytest.mark.parametrize(
    "alias", [pytest.param("champion", id="champion"), pytest.param("challenger", id="challenger")]
)
def test_empty_registry_names_the_missing_alias(pg_dsn, alias):
    code, _, err = _gate(alias, dsn=pg_dsn, out=None)
    assert code == 2
    assert f"no model is registered as {alias!r}" in err
