"""A stage's process SIGKILLed in the middle of writing an artifact, then run again.

The stage is ``build_training_sets`` (:func:`feedbackloop.pipeline.datasets`, seven
artifacts written one after the other) in its own process (``tests/reliability/stage_child.py``),
killed by PID while it is writing ``train.jsonl``:

* local staging: the child is stopped after half of the bytes went into the temporary file
  (``LocalStaging`` writes ``.<name>.<random>.tmp`` and renames it);
* S3 staging: the child's upload is stalled mid-body by the fault proxy in front of moto
  (a single ``PutObject``: S3 shows an object only once its body is complete).

Then: the artifact is not visible under its key, every artifact that is visible is whole
(byte-identical to an undisturbed run), and running the stage again gives exactly the
undisturbed run's artifacts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.fakes.s3_fault_proxy import S3FaultProxy
from tests.fakes.s3_server import MotoS3, fake_aws_env
from tests.reliability.conftest import seed_feedback
from tests.reliability.fault_figures import record
from tests.support import INTERVAL

from feedbackloop import db, pipeline
from feedbackloop.staging import LocalStaging, S3Staging

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN = pipeline.RunContext("feedback_retraining", "scheduled__2026-11-22T02:00:00+00:00", *INTERVAL)
KILLED_ARTIFACT = "train.jsonl"
S3_PREFIX = "staging"


@pytest.fixture(scope="module")
def inputs(pg_server) -> Iterator[dict[str, Any]]:
    """The stage's input (rewards.parquet, from the real upstream stages) and the artifacts of
    an undisturbed run of it: name -> bytes."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="feedbackloop-kill-"))
    try:
        dsn = pg_server.dsn(name)
        with db.connect(dsn) as conn:
            db.create_app_tables(conn)
            db.migrate(conn)
            conn.commit()
        seed_feedback(dsn)
        staging = LocalStaging(root / "reference")
        with db.connect(dsn) as conn:
            pipeline.extract(conn, staging, RUN)
        pipeline.validate(staging, RUN)
        pipeline.rewards(staging, RUN)
        rewards = staging.get_bytes(RUN.key(pipeline.REWARDS))
        pipeline.datasets(staging, RUN, {"min_examples": 10})
        reference = {
            key.rsplit("/", 1)[1]: staging.get_bytes(key)
            for key in staging.list(RUN.prefix)
            if not key.endswith(
                (
                    "feedback_raw.parquet",
                    "feedback_valid.parquet",
                    "quarantine.parquet",
                    "gx_validation.json",
                    "validation_summary.json",
                    pipeline.REWARDS,
                )
            )
        }
        assert KILLED_ARTIFACT in reference and len(reference) >= 6, sorted(reference)
        yield {"rewards": rewards, "reference": reference}
    finally:
        shutil.rmtree(root, ignore_errors=True)
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_child(args: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen:
    payload = {
        "dag_id": RUN.dag_id,
        "run_id": RUN.run_id,
        "start": RUN.start.isoformat(),
        "end": RUN.end.isoformat(),
        **args,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.stage_child", json.dumps(payload)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _kill(child: subprocess.Popen) -> int:
    os.kill(child.pid, signal.SIGKILL)  # by PID: only the process this test started
    code = child.wait(timeout=30)
    if child.stdout is not None:
        child.stdout.close()
    return code


def _wait_for_line(child: subprocess.Popen, prefix: str, timeout: float = 90.0) -> str:
    """The child's first stdout line starting with ``prefix`` (the child is killed on timeout)."""
    found: list[str] = []
    seen: list[str] = []

    def read() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            if line.startswith(prefix):
                found.append(line.strip())
                return
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not found:
        _kill(child)
        raise AssertionError(
            f"the stage process never printed {prefix!r}; its output:\n{''.join(seen[-30:])}"
        )
    return found[0]


def _artifacts(staging: Any) -> dict[str, bytes]:
    """What staging shows under the run's prefix (name -> bytes), rewards.parquet excluded."""
    return {
        key.rsplit("/", 1)[1]: staging.get_bytes(key)
        for key in staging.list(RUN.prefix)
        if not key.endswith(pipeline.REWARDS)
    }


def _check_after_kill(visible: dict[str, bytes], reference: dict[str, bytes]) -> int:
    """The killed artifact is absent; all that is visible is whole. Returns the count of
    partial artifacts seen (0, else the assertion fails first)."""
    assert KILLED_ARTIFACT not in visible, "a half-written artifact is visible under its final key"
    partial = [name for name, data in visible.items() if data != reference[name]]
    assert partial == [], f"visible but not whole: {partial}"
    assert visible, "the kill came before any artifact was written: nothing was proven"
    return len(partial)


def test_killed_mid_write_local_staging_shows_nothing_partial_and_the_rerun_is_identical(inputs, tmp_path):
    staging = LocalStaging(tmp_path / "staging")
    staging.put_bytes(RUN.key(pipeline.REWARDS), inputs["rewards"])
    child = _start_child({"staging_uri": staging.root_uri, "stop_mid_write": KILLED_ARTIFACT})
    _, tmp_file, full_size = _wait_for_line(child, "HALF ").split(" ")
    assert _kill(child) == -signal.SIGKILL

    # The half-written bytes exist only under the hidden temporary name ...
    assert 0 < Path(tmp_file).stat().st_size < int(full_size) == len(inputs["reference"][KILLED_ARTIFACT])
    assert Path(tmp_file).name.startswith(f".{KILLED_ARTIFACT}.") and Path(tmp_file).name.endswith(".tmp")
    # ... and staging shows only whole artifacts.
    partial = _check_after_kill(_artifacts(staging), inputs["reference"])

    pipeline.datasets(staging, RUN, {"min_examples": 10})  # the task's retry
    assert _artifacts(staging) == inputs["reference"]
    leftovers = [p.name for p in (staging.root / RUN.prefix).iterdir() if p.name.endswith(".tmp")]
    record(
        "kill: SIGKILL mid-write of train.jsonl (local staging)",
        test="test_faults_kill.py::test_killed_mid_write_local_staging_shows_nothing_partial_and_the_rerun_is_identical",
        faults_injected=1,
        run_state="success",
        expected_state="success",
        retried_tasks={"build_training_sets": 1},
        partial_visible=partial,
        detail={"hidden_tmp_files_left": len(leftovers), "artifacts": len(inputs["reference"])},
    )


def test_killed_mid_upload_s3_staging_shows_nothing_partial_and_the_rerun_is_identical(inputs):
    with MotoS3() as s3, S3FaultProxy(s3.endpoint_url) as proxy:
        bucket = s3.create_bucket()
        direct = S3Staging(bucket, S3_PREFIX, s3.client())
        direct.put_bytes(RUN.key(pipeline.REWARDS), inputs["rewards"])
        proxy.inject("PUT", f"/{KILLED_ARTIFACT}", "stall", cut_after=1024)
        child = _start_child(
            {"staging_uri": f"s3://{bucket}/{S3_PREFIX}", "endpoint_url": proxy.endpoint_url},
            env=fake_aws_env(proxy.endpoint_url),
        )
        _wait_for_line(child, "STARTED")
        deadline = time.monotonic() + 90
        while not proxy.stalled.wait(0.1):
            assert child.poll() is None, (
                f"the stage process ended ({child.returncode}) before the stalled upload"
            )
            assert time.monotonic() < deadline, "the upload never reached the proxy"
        assert _kill(child) == -signal.SIGKILL

        partial = _check_after_kill(_artifacts(direct), inputs["reference"])
        assert s3.pending_multipart_uploads(bucket) == []
        assert [k for k in s3.object_keys(bucket) if k.endswith(f"/{KILLED_ARTIFACT}")] == []

        pipeline.datasets(direct, RUN, {"min_examples": 10})  # the task's retry
        assert _artifacts(direct) == inputs["reference"]
    record(
        "kill: SIGKILL mid-upload of train.jsonl (S3 staging)",
        test="test_faults_kill.py::test_killed_mid_upload_s3_staging_shows_nothing_partial_and_the_rerun_is_identical",
        faults_injected=1,
        run_state="success",
        expected_state="success",
        retried_tasks={"build_training_sets": 1},
        partial_visible=partial,
        detail={"artifacts": len(inputs["reference"])},
    )
