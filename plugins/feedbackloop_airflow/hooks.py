"""Hooks: Airflow connections -> the clients that ``feedbackloop`` functions take."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook

DEFAULT_STAGING_ENV = "FEEDBACKLOOP_STAGING_URI"


def default_staging_uri() -> str:
    """Staging root from the environment; the embedded default is a local folder."""
    return os.environ.get(DEFAULT_STAGING_ENV) or f"file://{os.path.abspath('.state/staging')}"


class StagingHook(BaseHook):
    """Opens :mod:`feedbackloop.staging` for a root URI: ``file://`` or ``s3://``.

    For S3 the boto3 client comes from the Amazon provider's ``S3Hook`` on ``aws_conn_id``
    (credentials, region and ``endpoint_url`` all from the connection; nothing from code).
    """

    conn_name_attr = "aws_conn_id"
    hook_name = "Feedback loop staging"

    def __init__(self, staging_uri: str | None = None, aws_conn_id: str = "aws_default") -> None:
        super().__init__()
        self.staging_uri = staging_uri or default_staging_uri()
        self.aws_conn_id = aws_conn_id

    def get_conn(self) -> Any:
        from feedbackloop.staging import open_staging

        client = None
        if self.staging_uri.startswith("s3://"):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return open_staging(self.staging_uri, s3_client=client)


def feedback_db_connection(postgres_conn_id: str) -> Any:
    """A psycopg 3 connection to the feedback database from an Airflow connection."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()


def optional_connection(conn_id: str) -> Any | None:
    """The connection if it is configured, else None (used for optional Slack)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
