"""Full runs of ``feedback_export`` with ``dag.test()`` against a real PostgreSQL (and S3 on
127.0.0.1): what an analyst and a downstream DAG see after the runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.s3_server import MotoS3, fake_aws_env
from tests.support import use_feedback_db

from feedbackloop import db

pytestmark = pytest.mark.slow

DAY = "2026-11-20"
DAY_START = datetime(2026, 11, 20, tzinfo=UTC)
# The daily 01:00 run after DAY: data interval [DAY 01:00, DAY+1 01:00), which exports DAY.
SCHEDULED = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
# A later run that backfills DAY through the `day` param.
BACKFILL = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
FILES = ("feedback.jsonl", "feedback.csv", "feedback.parquet", "quarantine.parquet", "manifest.json")


@pytest.fixture
def seeded_db(pg_dsn: str) -> str:
    """Three days of feedback around DAY (~100 rows on DAY), 4 % malformed."""
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(pg_dsn) as conn:
        load_app_data(
            conn,
            iter_app_data(
                300,
                31,
                DAY_START - timedelta(days=1),
                DAY_START + timedelta(days=2),
                malformed_fraction=0.04,
                oversize_body_bytes=1_100_000,
            ),
        )
    return pg_dsn


@pytest.fixture(scope="module")
def s3():
    with MotoS3() as server:
        yield server


def _run(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch, logical_date: datetime, conf: dict[str, Any] | None = None
) -> Any:
    dag = dagbag.dags["feedback_export"]
    for task in dag.tasks:  # a failure here is a bug to see at once, not to retry for minutes
        monkeypatch.setattr(task, "retries", 0)  # restored afterwards: the dagbag is shared
    return dag.test(logical_date=logical_date, run_conf=conf)


def _states(dr: Any) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dr.get_task_instances()}


def _local_files(root: Path) -> dict[str, bytes]:
    folder = root / "feedback_export" / DAY
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _asset_events() -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_run_id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "feedback_export")
            .order_by(AssetEvent.id)
        ).all()
    return [{"extra": extra, "dag_id": dag_id, "run_id": run_id} for extra, dag_id, run_id in rows]


def _day_rows(dsn: str) -> int:
    with db.connect(dsn) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s",
            (DAY_START, DAY_START + timedelta(days=1)),
        ).fetchone()
    return n


def test_export_task_declares_the_asset(dagbag: Any) -> None:
    from feedbackloop_airflow.export_operators import FEEDBACK_EXPORT_ASSET

    dag = dagbag.dags["feedback_export"]
    task = dag.get_task("export_feedback")
    assert task.outlets == [FEEDBACK_EXPORT_ASSET]
    assert FEEDBACK_EXPORT_ASSET.uri == "x-feedbackloop://feedback_export"
    assert dag.timetable.expression == "0 1 * * *" and dag.max_active_runs == 1
    assert task.owner == "ml-platform" and task.retries >= 1
    assert "day" in dag.params


def test_scheduled_run_and_backfills_write_identical_bytes_and_emit_the_asset(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_db: str, s3: MotoS3
) -> None:
    use_feedback_db(monkeypatch, seeded_db)
    local_root = tmp_path / "staging"
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", local_root.as_uri())
    events_before = len(_asset_events())

    scheduled = _run(dagbag, monkeypatch, SCHEDULED)
    assert scheduled.state == "success", _states(scheduled)
    first = _local_files(local_root)

    backfill = _run(dagbag, monkeypatch, BACKFILL, {"day": DAY})
    assert backfill.state == "success", _states(backfill)
    second = _local_files(local_root)

    # What analysts see: five files, identical on every run, counts that reconcile.
    assert sorted(first) == sorted(FILES)
    assert second == first
    manifest = json.loads(first["manifest.json"])
    assert manifest["day"] == DAY
    rows = manifest["rows"]
    assert rows["read"] == _day_rows(seeded_db) > 50
    assert rows["exported"] + rows["quarantined"] == rows["read"] and rows["quarantined"] > 0
    assert first["feedback.jsonl"].count(b"\n") == rows["exported"]

    # What a downstream DAG sees: one asset event per run, naming the day and the manifest.
    events = _asset_events()[events_before:]
    assert [e["run_id"] for e in events] == [scheduled.run_id, backfill.run_id]
    for event in events:
        assert event["dag_id"] == "feedback_export"
        assert event["extra"]["day"] == DAY
        assert (
            event["extra"]["manifest_uri"]
            == (local_root / "feedback_export" / DAY / "manifest.json").resolve().as_uri()
        )
        assert event["extra"]["rows_exported"] == rows["exported"]

    # The same export to S3 staging (the production layout), through the aws_default connection.
    bucket = s3.create_bucket()
    for key, value in fake_aws_env(s3.endpoint_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", f"s3://{bucket}/staging")
    on_s3 = _run(dagbag, monkeypatch, BACKFILL + timedelta(days=1), {"day": DAY})
    assert on_s3.state == "success", _states(on_s3)
    client = s3.client()
    assert s3.object_keys(bucket) == sorted(f"staging/feedback_export/{DAY}/{name}" for name in FILES)
    for name in FILES:
        body = client.get_object(Bucket=bucket, Key=f"staging/feedback_export/{DAY}/{name}")["Body"].read()
        assert body == first[name], name
    assert (
        _asset_events()[-1]["extra"]["manifest_uri"]
        == f"s3://{bucket}/staging/feedback_export/{DAY}/manifest.json"
    )


def test_a_day_failing_the_gate_fails_and_exports_nothing(
    dagbag: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_db: str
) -> None:
    use_feedback_db(monkeypatch, seeded_db)
    local_root = tmp_path / "staging"
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", local_root.as_uri())
    events_before = len(_asset_events())

    dr = _run(dagbag, monkeypatch, BACKFILL, {"day": DAY, "max_quarantine_share": 0.0})

    assert dr.state == "failed"
    assert _states(dr) == {"export_feedback": "failed"}
    summary = dr.get_task_instance("export_feedback").xcom_pull(task_ids="export_feedback", key="summary")
    assert summary["failed"] is True and summary["day"] == DAY
    assert "quarantine share" in summary["error"] and summary["rows_quarantined"] > 0
    assert _local_files(local_root) == {}
    assert len(_asset_events()) == events_before
