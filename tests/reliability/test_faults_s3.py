"""S3 faults over a full ``feedback_retraining`` run with S3 staging (``dag.test()``).

Staging is a bucket on moto's S3 server on 127.0.0.1, reached through
:class:`tests.fakes.s3_fault_proxy.S3FaultProxy`, which answers chosen requests with S3
errors (500 ``InternalError``, 503 ``SlowDown``), holds answers past the client's read
timeout, or cuts uploads mid-body. The Airflow ``aws_default`` connection sets botocore to 2
attempts and a 1.5 s read timeout, so some faults are absorbed inside a task and others
outlast it and need an Airflow retry.

What a user would check: the run's state, which tasks were retried, that no object is ever
visible under its final key unless whole (looked at between the failed try and the retry,
and at the end), no multipart upload left open, one fine-tuning job, no duplicate rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.fakes.s3_fault_proxy import S3FaultProxy
from tests.fakes.s3_server import MotoS3, fake_aws_env
from tests.reliability.conftest import (
    check_artifact,
    duplicate_rows,
    feedback_rows_in_interval,
    ml_counts,
    run_dag,
    states,
    tries,
    use_openai_trainer,
)
from tests.reliability.fault_figures import record

from feedbackloop.staging import run_key

pytestmark = pytest.mark.slow

PREFIX = "staging"
READ_TIMEOUT_S = 1.5
ATTEMPTS = 2  # botocore's total attempts per request


@pytest.fixture
def s3_staging(monkeypatch: pytest.MonkeyPatch, env: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """moto behind the fault proxy, wired in as ``aws_default`` and the staging root."""
    with MotoS3() as s3, S3FaultProxy(s3.endpoint_url) as proxy:
        for key, value in fake_aws_env(proxy.endpoint_url).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": "testing",
                    "password": "testing",
                    "extra": {
                        "endpoint_url": proxy.endpoint_url,
                        "region_name": "us-east-1",
                        "config_kwargs": {
                            "retries": {"total_max_attempts": ATTEMPTS, "mode": "standard"},
                            "connect_timeout": 2,
                            "read_timeout": READ_TIMEOUT_S,
                        },
                    },
                }
            ),
        )
        bucket = s3.create_bucket()
        monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", f"s3://{bucket}/{PREFIX}")
        yield {"s3": s3, "proxy": proxy, "bucket": bucket}


def _objects(s3: MotoS3, bucket: str, run_prefix: str) -> dict[str, bytes]:
    """Every object under the run's prefix, read straight from the server: name -> bytes."""
    client = s3.client()
    out = {}
    for key in s3.object_keys(bucket):
        if key.startswith(run_prefix):
            out[key[len(run_prefix) :]] = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return out


def test_s3_errors_slow_answers_and_cut_uploads_end_in_complete_artifacts_and_one_deployment(
    retrying_dag, env, s3_staging, openai_fake, slack
):
    s3, proxy, bucket = s3_staging["s3"], s3_staging["proxy"], s3_staging["bucket"]
    # Outlast botocore's attempts -> the task fails and Airflow retries it:
    proxy.inject("PUT", "/feedback_valid.parquet", "cut", times=ATTEMPTS, cut_after=2048)  # validate
    proxy.inject("PUT", "/model_spec.json", "500", times=ATTEMPTS)  # train, after the remote job succeeded
    # Absorbed by botocore inside the task:
    proxy.inject("PUT", "/train.jsonl", "503")  # datasets
    proxy.inject("GET", "/rewards.parquet", "slow", delay_s=READ_TIMEOUT_S + 0.5)  # datasets: read timeout
    proxy.inject("PUT", "/report.html", "slow", delay_s=READ_TIMEOUT_S + 0.5)  # gate: stored, answer late
    injected = proxy.pending()

    between_tries: dict[str, list[str]] = {}

    def look_between_tries(task_id: str, try_number: int, state: str) -> None:
        between_tries[task_id] = s3.object_keys(bucket)

    retrying_dag.attempt_log.hooks.append(look_between_tries)

    dr = run_dag(retrying_dag, use_openai_trainer(retrying_dag))

    st, attempts = states(dr), tries(dr)
    assert dr.state == "success", st
    assert proxy.pending() == 0 and sum(proxy.injected.values()) == injected
    assert {t: n for t, n in attempts.items() if n > 1} == {"validate_feedback": 2, "train_challenger": 2}
    (validate_error,) = retrying_dag.attempt_log.reasons("validate_feedback")
    assert validate_error.startswith(("ConnectionClosedError", "S3UploadFailedError")), validate_error
    assert "feedback_valid.parquet" in validate_error
    (train_error,) = retrying_dag.attempt_log.reasons("train_challenger")
    assert train_error.startswith("ClientError") and "InternalError" in train_error, train_error

    # Between the failed try and its retry, the failed upload was not visible at all.
    assert not [k for k in between_tries["validate_feedback"] if k.endswith("/feedback_valid.parquet")]
    assert not [k for k in between_tries["train_challenger"] if k.endswith("/model_spec.json")]

    # At the end every staged object is whole, nothing is left half-uploaded.
    run_prefix = f"{PREFIX}/feedback_retraining/{run_key(dr.run_id)}/"
    objects = _objects(s3, bucket, run_prefix)
    for name, data in objects.items():
        check_artifact(name, data)
    for name in (
        "feedback_raw.parquet",
        "feedback_valid.parquet",
        "quarantine.parquet",
        "rewards.parquet",
        "train.jsonl",
        "train.parquet",
        "model_spec.json",
        "eval_challenger.json",
        "report.json",
        "report.html",
    ):
        assert name in objects, sorted(objects)
    assert s3.pending_multipart_uploads(bucket) == []
    raw_rows = pq.read_metadata(io.BytesIO(objects["feedback_raw.parquet"])).num_rows
    assert raw_rows == feedback_rows_in_interval(env["dsn"])

    # The retried train attached to the finished job: one job, and one of everything else.
    assert openai_fake.jobs_created == 1
    spec = json.loads(objects["model_spec.json"])
    assert spec["backend"] == "openai" and spec["remote_model_id"].startswith("ft:")
    assert ml_counts(env["dsn"]) == {
        "ml.training_jobs": 1,
        "ml.model_versions": 1,
        "ml.golden_runs": 1,
        "ml.deployments": 1,
        "ml.deployment_history": 1,
    }
    assert set(duplicate_rows(env["dsn"]).values()) == {0}
    assert [m["text"][:31] for m in slack.messages] == ["✅ Challenger deployed as canary"]
    record(
        "s3: 500/503/read timeouts/uploads cut mid-body",
        test="test_faults_s3.py::test_s3_errors_slow_answers_and_cut_uploads_end_in_complete_artifacts_and_one_deployment",
        faults_injected=injected,
        run_state=dr.state,
        expected_state="success",
        retried_tasks={"validate_feedback": 1, "train_challenger": 1},
        duplicates=sum(duplicate_rows(env["dsn"]).values()),
        rows_lost=feedback_rows_in_interval(env["dsn"]) - raw_rows,
        partial_visible=0,
        notifications=len(slack.messages),
        remote_jobs=openai_fake.jobs_created,
        detail={
            "faults": dict(proxy.injected),
            "validate_error": validate_error[:200],
            "train_error": train_error[:200],
        },
    )
