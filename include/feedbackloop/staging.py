"""Staging: where run artifacts live between tasks (a local folder or an S3 bucket).

Layout: ``<root>/<dag_id>/<run key>/<artifact>``. Writes are atomic: a local file is written
to a temporary name and renamed; an S3 object appears only when its single PUT (or its
multipart upload) completes. So an artifact is either complete or absent, never partial.

Everything that crosses a task boundary goes through a :class:`Staging`; XCom carries only
the URIs this module returns.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

# Parquet settings are fixed so that the same rows always give the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_size": 1 << 20,
}
PARQUET_ROW_GROUP_SIZE = 65_536

_SAFE_KEY = re.compile(r"[^A-Za-z0-9._=/-]")


def run_key(run_id: str) -> str:
    """Turn an Airflow run id (``manual__2026-01-04T02:00:00+00:00``) into a safe path part."""
    return _SAFE_KEY.sub("_", run_id)


class Staging(Protocol):
    """A place to put run artifacts. Keys are relative, ``/``-separated paths."""

    root_uri: str

    def uri(self, key: str) -> str: ...

    def put_bytes(self, key: str, data: bytes) -> str: ...

    def put_file(self, key: str, local_path: Path) -> str: ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_file(self, key: str, local_path: Path) -> Path: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]: ...

    def delete_prefix(self, prefix: str) -> int: ...


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid staging key {key!r}: must be relative without '..'")
    return key


class LocalStaging:
    """Staging in a local folder (``file:///abs/path``), the embedded default."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def put_file(self, key: str, local_path: Path) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path.as_uri()

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(f"staged artifact not found: {path.as_uri()}")
        return path.read_bytes()

    def get_file(self, key: str, local_path: Path) -> Path:
        shutil.copyfile(self._path(key), local_path)
        return Path(local_path)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(_check_key(prefix))
        for k in keys:
            self._path(k).unlink()
        return len(keys)


class S3Staging:
    """Staging in an S3 bucket (``s3://bucket/prefix``) through a boto3 S3 client."""

    def __init__(self, bucket: str, prefix: str, client: Any):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put_bytes(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        return self.uri(key)

    def put_file(self, key: str, local_path: Path) -> str:
        # upload_file switches to multipart for big files; the object only becomes
        # visible when the upload completes.
        self.client.upload_file(str(local_path), self.bucket, self._key(key))
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"staged artifact not found: {self.uri(key)}") from exc
        return resp["Body"].read()

    def get_file(self, key: str, local_path: Path) -> Path:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(local_path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"staged artifact not found: {self.uri(key)}") from exc
            raise
        return Path(local_path)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        # A prefix names a folder, as for LocalStaging: "run1" must not match "run10/...".
        if prefix:
            full = self._key(prefix.rstrip("/")) + "/"
        else:
            full = f"{self.prefix}/" if self.prefix else ""
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(_check_key(prefix))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
        return len(keys)


def open_staging(root_uri: str, s3_client: Any = None) -> Staging:
    """Open staging from its root URI: ``file:///path``, a plain path, or ``s3://bucket/prefix``.

    Args:
        root_uri: where staging lives.
        s3_client: a boto3 S3 client for ``s3://`` roots (built by the Airflow hook from the
            ``aws_default`` connection in production); required for S3.
    """
    parsed = urlparse(root_uri)
    if parsed.scheme in ("", "file"):
        return LocalStaging(parsed.path if parsed.scheme else root_uri)
    if parsed.scheme == "s3":
        if s3_client is None:
            raise ValueError(f"staging root {root_uri!r} is on S3 but no S3 client was given")
        return S3Staging(parsed.netloc, parsed.path, s3_client)
    raise ValueError(f"unsupported staging root {root_uri!r}: use file:// or s3://")


def key_from_uri(staging: Staging, uri: str) -> str:
    """The staging key of a URI this staging returned."""
    from urllib.parse import unquote

    root = staging.root_uri.rstrip("/") + "/"
    if not uri.startswith(root):
        raise ValueError(f"{uri!r} is not inside staging root {staging.root_uri!r}")
    key = uri[len(root) :]
    # file:// URIs are percent-encoded (Path.as_uri); S3 keys are used as they are.
    return unquote(key) if root.startswith("file:") else key


@contextmanager
def local_scratch() -> Iterator[Path]:
    """A private temporary folder for one task's work, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="feedbackloop-") as tmp:
        yield Path(tmp)


def write_parquet(staging: Staging, key: str, table: Any) -> str:
    """Write a pyarrow Table to staging with the fixed, deterministic Parquet settings."""
    import pyarrow.parquet as pq

    with local_scratch() as tmp:
        path = tmp / "out.parquet"
        pq.write_table(table, path, row_group_size=PARQUET_ROW_GROUP_SIZE, **PARQUET_OPTIONS)
        return staging.put_file(key, path)


def read_parquet(staging: Staging, key: str) -> Any:
    """Read a staged Parquet file into a pyarrow Table."""
    import pyarrow.parquet as pq

    with local_scratch() as tmp:
        path = staging.get_file(key, tmp / "in.parquet")
        return pq.read_table(path)


def read_json(staging: Staging, key: str) -> Any:
    """Read a staged JSON document."""
    import json

    return json.loads(staging.get_bytes(key))
