"""A real S3 API on 127.0.0.1 for tests: moto's ``ThreadedMotoServer`` (never real AWS).

:class:`MotoS3` starts the server on a free loopback port, creates buckets and hands out
boto3 clients bound to it with fake credentials. :func:`fake_aws_env` is the environment a
test should run under: fake credentials, no shared AWS config or profile (so nothing can
fall back to a developer's real account), and ``AIRFLOW_CONN_AWS_DEFAULT`` pointing the
Amazon provider's ``S3Hook`` (hence ``StagingHook``) at the server.

Usage in a test module::

    @pytest.fixture(scope="module")
    def s3():
        with MotoS3() as server:
            yield server

    def test_something(s3, monkeypatch):
        for k, v in fake_aws_env(s3.endpoint_url).items():
            monkeypatch.setenv(k, v)
        bucket = s3.create_bucket()
        client = s3.client()

moto keeps its state per process, shared by every server in it: use :meth:`MotoS3.create_bucket`
(unique names) to keep tests apart.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # noqa: S105 - moto accepts any credentials
REGION = "us-east-1"


def fake_aws_env(endpoint_url: str) -> dict[str, str]:
    """Environment for boto3 / Airflow so that only the loopback server is reachable."""
    _check_loopback(endpoint_url)
    return {
        "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": FAKE_ACCESS_KEY,
                "password": FAKE_SECRET_KEY,
                "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
            }
        ),
    }


def _check_loopback(endpoint_url: str) -> None:
    from urllib.parse import urlparse

    host = urlparse(endpoint_url).hostname
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError(f"refusing a non-loopback S3 endpoint in tests: {endpoint_url!r}")


class MotoS3:
    """moto's S3 server on 127.0.0.1 (a free port unless ``port`` is given)."""

    def __init__(self, port: int = 0):
        self.port = port
        self._server: Any = None
        self.endpoint_url = ""

    def start(self) -> MotoS3:
        import logging

        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; tests only care about failures.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, endpoint_url: str | None = None, **config: Any) -> Any:
        """A boto3 S3 client bound to the server (or to ``endpoint_url``, e.g. a proxy in
        front of it) with fake credentials; ``config`` goes to ``botocore.config.Config``."""
        import boto3
        from botocore.config import Config

        url = endpoint_url or self.endpoint_url
        _check_loopback(url)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        config.setdefault("connect_timeout", 5)
        config.setdefault("read_timeout", 30)
        return boto3.client(
            "s3",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id=FAKE_ACCESS_KEY,
            aws_secret_access_key=FAKE_SECRET_KEY,
            config=Config(**config),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name by default) and return its name."""
        bucket = name or f"feedbackloop-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def object_keys(self, bucket: str) -> list[str]:
        """Every object key in the bucket, sorted (straight from the server)."""
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)

    def pending_multipart_uploads(self, bucket: str) -> list[str]:
        """Keys of multipart uploads started and neither completed nor aborted."""
        resp = self.client().list_multipart_uploads(Bucket=bucket)
        return sorted(u["Key"] for u in resp.get("Uploads", []))
