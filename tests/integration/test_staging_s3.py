"""One staging contract, two backends: a local folder and S3 (moto's server on 127.0.0.1).

Every contract test runs against :class:`LocalStaging` and :class:`S3Staging`; a stage must
not be able to tell them apart. Cases where S3Staging departs from the contract today are
``xfail(strict=True)`` with the reason, so fixing staging.py turns them into failures that
ask for the marker to be removed.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.fakes.s3_server import MotoS3, fake_aws_env
from tests.fakes.tcp_proxy import TcpProxy

from feedbackloop.contracts import raw_schema
from feedbackloop.staging import (
    LocalStaging,
    S3Staging,
    key_from_uri,
    open_staging,
    read_parquet,
    write_parquet,
)

BACKENDS = ("local", "s3")
S3_PREFIX = "staging/root"

@pytest.fixture(scope="module")
def s3():
    with MotoS3() as server:
        yield server


@pytest.fixture(autouse=True)
def _fake_aws(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in fake_aws_env(s3.endpoint_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def make_staging(backend: str, s3: MotoS3, tmp_path: Path) -> LocalStaging | S3Staging:
    if backend == "local":
        return LocalStaging(tmp_path / "staging")
    return S3Staging(s3.create_bucket(), S3_PREFIX, s3.client())


@pytest.fixture(params=BACKENDS)
def staging(request: pytest.FixtureRequest, s3: MotoS3, tmp_path: Path) -> LocalStaging | S3Staging:
    return make_staging(request.param, s3, tmp_path)


def _backend(staging: Any) -> str:
    return "s3" if isinstance(staging, S3Staging) else "local"


# ------------------------------------------------------------------ basic operations


def test_put_get_exists_and_uri(staging: Any) -> None:
    key = "feedback_retraining/run_1/feedback_raw.parquet"
    data = bytes(range(256)) * 10

    uri = staging.put_bytes(key, data)

    assert uri == staging.uri(key)
    assert uri.startswith(staging.root_uri + "/")
    assert staging.get_bytes(key) == data
    assert staging.exists(key)
    assert not staging.exists("feedback_retraining/run_1/missing.parquet")
    assert not staging.exists("feedback_retraining/run_1")  # a "folder" is not an artifact
    with pytest.raises(FileNotFoundError, match="not found"):
        staging.get_bytes("feedback_retraining/run_1/missing.parquet")


def test_put_file_get_file_round_trip(staging: Any, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(300_000))

    uri = staging.put_file("a/b/model.bin", source)
    copy = staging.get_file("a/b/model.bin", tmp_path / "copy.bin")

    assert uri == staging.uri("a/b/model.bin")
    assert copy.read_bytes() == source.read_bytes()


def test_get_file_of_a_missing_key_is_file_not_found(
    request: pytest.FixtureRequest, staging: Any, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        staging.get_file("nothing/here.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_overwrite_replaces_the_artifact(staging: Any) -> None:
    staging.put_bytes("run/a.json", b"first")
    staging.put_bytes("run/a.json", b"second")

    assert staging.get_bytes("run/a.json") == b"second"
    assert staging.list() == ["run/a.json"]


def test_list_is_sorted_and_relative(staging: Any) -> None:
    for key in ("b/2.json", "a/1.json", "b/1.json", "a/sub/3.json"):
        staging.put_bytes(key, b"{}")

    assert staging.list() == ["a/1.json", "a/sub/3.json", "b/1.json", "b/2.json"]
    assert staging.list("a") == ["a/1.json", "a/sub/3.json"]
    assert staging.list("missing") == []


def test_list_prefix_is_a_folder_not_a_string_prefix(request: pytest.FixtureRequest, staging: Any) -> None:
    staging.put_bytes("run1/a.json", b"1")
    staging.put_bytes("run10/b.json", b"2")

    assert staging.list("run1") == ["run1/a.json"]


def test_delete_prefix_removes_only_that_folder(staging: Any) -> None:
    for key in ("run_a/x.parquet", "run_a/sub/y.json", "run_b/x.parquet"):
        staging.put_bytes(key, b"data")

    assert staging.delete_prefix("run_a") == 2

    assert staging.list() == ["run_b/x.parquet"]
    assert staging.delete_prefix("run_a") == 0


def test_delete_prefix_spares_a_sibling_with_a_longer_name(
    request: pytest.FixtureRequest, staging: Any
) -> None:
    staging.put_bytes("run1/a.json", b"1")
    staging.put_bytes("run10/b.json", b"2")

    assert staging.delete_prefix("run1") == 1
    assert staging.list() == ["run10/b.json"]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("run/../../escape", id="dot-dot"),
        pytest.param("..", id="parent"),
    ],
)
@pytest.mark.parametrize("operation", ["put_bytes", "get_bytes", "exists", "uri", "delete_prefix"])
def test_invalid_keys_are_rejected(staging: Any, key: str, operation: str) -> None:
    call = {
        "put_bytes": lambda: staging.put_bytes(key, b"x"),
        "get_bytes": lambda: staging.get_bytes(key),
        "exists": lambda: staging.exists(key),
        "uri": lambda: staging.uri(key),
        "delete_prefix": lambda: staging.delete_prefix(key),
    }[operation]
    with pytest.raises(ValueError, match="invalid staging key"):
        call()
    assert staging.list() == []


# ------------------------------------------------------------------------ key_from_uri


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("feedback_export/2026-03-01/manifest.json", id="plain"),
        pytest.param("run/manual__2026-01-04T02_00_00_00_00/x=1.parquet", id="equals-sign"),
        pytest.param("run/with space/ünïcode €.json", id="space-and-unicode"),
        pytest.param("run/100% done#1?.json", id="percent-hash-question"),
    ],
)
def test_key_from_uri_round_trips(staging: Any, key: str) -> None:
    uri = staging.put_bytes(key, b"payload")

    assert key_from_uri(staging, uri) == key
    assert staging.get_bytes(key_from_uri(staging, uri)) == b"payload"


def test_key_from_uri_rejects_a_uri_outside_the_root(staging: Any, tmp_path: Path) -> None:
    other = LocalStaging(tmp_path / "elsewhere")
    for uri in (
        other.uri("a/b.json"),
        "s3://another-bucket/staging/root/a/b.json",
        staging.root_uri + "x/a.json",
    ):
        with pytest.raises(ValueError, match="not inside staging root"):
            key_from_uri(staging, uri)


def test_open_staging_builds_the_backend_from_its_uri(s3: MotoS3, tmp_path: Path) -> None:
    bucket = s3.create_bucket()
    remote = open_staging(f"s3://{bucket}/{S3_PREFIX}", s3_client=s3.client())
    local = open_staging((tmp_path / "st").as_uri())

    assert isinstance(remote, S3Staging) and remote.root_uri == f"s3://{bucket}/{S3_PREFIX}"
    assert isinstance(local, LocalStaging)
    remote.put_bytes("k/v.txt", b"1")
    assert s3.object_keys(bucket) == [f"{S3_PREFIX}/k/v.txt"]
    with pytest.raises(ValueError, match="no S3 client"):
        open_staging(f"s3://{bucket}/x")
    with pytest.raises(ValueError, match="unsupported staging root"):
        open_staging("gs://bucket/x")


def test_staging_hook_reaches_s3_through_the_aws_connection(s3: MotoS3) -> None:
    """The Airflow path: AIRFLOW_CONN_AWS_DEFAULT (endpoint_url in extra) -> S3Hook -> S3Staging."""
    from feedbackloop_airflow.hooks import StagingHook

    bucket = s3.create_bucket()
    staging = StagingHook(f"s3://{bucket}/{S3_PREFIX}").get_conn()
    uri = staging.put_bytes("hook/check.txt", b"via airflow")

    assert uri == f"s3://{bucket}/{S3_PREFIX}/hook/check.txt"
    assert (
        s3.client().get_object(Bucket=bucket, Key=f"{S3_PREFIX}/hook/check.txt")["Body"].read()
        == b"via airflow"
    )


# ------------------------------------------------------------------------- atomicity


def _fail_local_rename(monkeypatch: pytest.MonkeyPatch, staging: LocalStaging, tmp_path: Path) -> Any:
    """The final rename fails (e.g. the disk vanished) after the temporary file was written."""

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(5, "Input/output error (injected)")

    monkeypatch.setattr(os, "replace", broken_replace)
    return lambda key: staging.put_bytes(key, b"v2" * 50_000)


def _fail_local_copy_midway(monkeypatch: pytest.MonkeyPatch, staging: LocalStaging, tmp_path: Path) -> Any:
    """Copying the file dies after half of it was written (disk full)."""
    source = tmp_path / "big.bin"
    source.write_bytes(b"v2" * 500_000)

    def half_copy(src: Any, dst: Any, **kwargs: Any) -> None:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fout.write(fin.read(len(source.read_bytes()) // 2))
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(shutil, "copyfile", half_copy)
    return lambda key: staging.put_file(key, source)


def _fail_s3_put_midway(s3: MotoS3, staging: S3Staging, tmp_path: Path) -> Any:
    """The connection drops after 64 KiB of a 1 MB single-PUT body."""
    proxy = TcpProxy(("127.0.0.1", int(s3.endpoint_url.rsplit(":", 1)[1]))).start()
    proxy.cut_upstream_after(64 * 1024)
    broken = S3Staging(
        staging.bucket, staging.prefix, s3.client(endpoint_url=f"http://127.0.0.1:{proxy.port}")
    )

    def write(key: str) -> None:
        try:
            broken.put_bytes(key, b"v2" * 500_000)
        finally:
            proxy.stop()

    return write


def _fail_s3_multipart_part(s3: MotoS3, staging: S3Staging, tmp_path: Path) -> Any:
    """A 20 MB file goes up in 8 MB parts (boto3's multipart threshold); part 2 fails."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))
    client = s3.client(retries={"max_attempts": 1, "mode": "standard"})

    def fail_part_two(params: dict[str, Any], **kwargs: Any) -> None:
        if params.get("PartNumber") == 2:
            raise ConnectionResetError("connection reset during part 2 (injected)")

    client.meta.events.register("before-parameter-build.s3.UploadPart", fail_part_two)
    broken = S3Staging(staging.bucket, staging.prefix, client)
    return lambda key: broken.put_file(key, source)


FAILURES = [
    pytest.param("local", _fail_local_rename, id="local-rename-fails"),
    pytest.param("local", _fail_local_copy_midway, id="local-copy-dies-midway"),
    pytest.param("s3", _fail_s3_put_midway, id="s3-put-connection-cut"),
    pytest.param("s3", _fail_s3_multipart_part, id="s3-multipart-part-fails"),
]


@pytest.mark.parametrize(("backend", "failure"), FAILURES)
def test_a_failed_write_leaves_the_previous_version_or_nothing(
    backend: str, failure: Any, s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    staging = make_staging(backend, s3, tmp_path)
    staging.put_bytes("run/kept.json", b"v1")
    write = failure(monkeypatch, staging, tmp_path) if backend == "local" else failure(s3, staging, tmp_path)
    expected = OSError if backend == "local" else (OSError, BotoCoreError, ClientError, S3UploadFailedError)

    with pytest.raises(expected):
        write("run/kept.json")
    with pytest.raises(expected):
        write("run/new.json")
    monkeypatch.undo()

    assert staging.get_bytes("run/kept.json") == b"v1"  # the old version, whole
    assert not staging.exists("run/new.json")
    assert staging.list() == ["run/kept.json"]
    if backend == "local":
        leftovers = sorted(p.name for p in (staging.root / "run").iterdir())
        assert leftovers == ["kept.json"]  # no temporary or partial file
    else:
        assert s3.object_keys(staging.bucket) == [f"{S3_PREFIX}/run/kept.json"]
        assert s3.pending_multipart_uploads(staging.bucket) == []


# ------------------------------------------------------------------ Parquet artifacts


def _sample_table() -> pa.Table:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        {
            "feedback_id": f"p{i:03d}",
            "prediction_id": f"p{i:03d}",
            "email_id": f"e{i:03d}",
            "user_id": "u1",
            "model_version": "v1",
            "variant": "champion",
            "sender": "billing@example.com",
            "subject": "Grüße 👋",
            "body": b"\xff\xfe raw bytes" if i % 3 == 0 else f"body {i}".encode(),
            "predicted_category": "bill_due",
            "confidence": float("nan") if i == 4 else i / 10,
            "predicted_actions": None if i == 2 else ["pay_invoice"],
            "latency_ms": 120.5,
            "predicted_at": t0 + timedelta(microseconds=i),
            "corrected_category": None,
            "missed_actions": [] if i == 1 else None,
            "unnecessary_actions": None,
            "note": "'; DROP TABLE x; --",
            "user_took_action": i % 2 == 0,
            "feedback_at": t0 + timedelta(hours=1, microseconds=i),
        }
        for i in range(7)
    ]
    return pa.Table.from_pylist(rows, schema=raw_schema())


def test_write_parquet_read_parquet_round_trip(staging: Any) -> None:
    table = _sample_table()

    uri = write_parquet(staging, "run/feedback_raw.parquet", table)
    back = read_parquet(staging, key_from_uri(staging, uri))

    assert back.schema.equals(raw_schema())
    assert back.to_pylist()[1:4] == table.to_pylist()[1:4]  # row 4 holds NaN (NaN != NaN)
    assert back.column("confidence").is_nan().to_pylist() == table.column("confidence").is_nan().to_pylist()


def test_write_parquet_gives_the_same_bytes_on_both_backends(s3: MotoS3, tmp_path: Path) -> None:
    local, remote = make_staging("local", s3, tmp_path), make_staging("s3", s3, tmp_path)

    write_parquet(local, "a/t.parquet", _sample_table())
    write_parquet(remote, "a/t.parquet", _sample_table())

    assert local.get_bytes("a/t.parquet") == remote.get_bytes("a/t.parquet")


def test_extract_and_validate_stage_identical_bytes_on_both_backends(
    s3: MotoS3, tmp_path: Path, pg_dsn: str
) -> None:
    """The real stages (pipeline.extract / pipeline.validate) over a generated interval."""
    import psycopg

    from feedbackloop import pipeline
    from feedbackloop.synth import iter_app_data, load_app_data

    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=1)
    with psycopg.connect(pg_dsn) as conn:
        load_app_data(
            conn, iter_app_data(400, 3, start, end, malformed_fraction=0.02, oversize_body_bytes=1_100_000)
        )
    run = pipeline.RunContext("feedback_retraining", "scheduled__2026-03-02T00:00:00+00:00", start, end)
    backends = {"local": make_staging("local", s3, tmp_path), "s3": make_staging("s3", s3, tmp_path)}

    summaries = {}
    for name, staging in backends.items():
        with psycopg.connect(pg_dsn) as conn:
            extracted = pipeline.extract(conn, staging, run)
        validated = pipeline.validate(staging, run)
        summaries[name] = (extracted, validated)

    (ex_local, va_local), (ex_s3, va_s3) = summaries["local"], summaries["s3"]
    assert ex_local["rows"] == ex_s3["rows"] == va_local["rows_read"] >= 400
    assert va_local["rows_valid"] + va_local["rows_quarantined"] == va_local["rows_read"]
    assert va_local["rows_quarantined"] >= 8  # 2 % of 400 injected defects
    assert {k: v for k, v in va_local.items() if "uri" not in k} == {
        k: v for k, v in va_s3.items() if "uri" not in k
    }
    local, remote = backends["local"], backends["s3"]
    assert local.list() == remote.list()
    for key in local.list():
        if key.endswith(pipeline.VALIDATION_SUMMARY):  # names the artifacts by URI: compared above
            continue
        assert local.get_bytes(key) == remote.get_bytes(key), key
    assert {k.rsplit("/", 1)[1] for k in local.list()} >= {
        pipeline.RAW,
        pipeline.VALID,
        pipeline.QUARANTINE,
        pipeline.GX_RESULT,
        pipeline.VALIDATION_SUMMARY,
    }
