"""Hooks: Airflow connections -> the clients that ``feedbackloop`` functions take."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook

DEFAULT_STAGING_ENV = "FEEDBACKLOOP_STAGING_URI"

# How to define each kind of connection the DAGs use (placeholders, never real values).
CONNECTION_EXAMPLES: dict[str, str] = {
    "postgres": '{"conn_type": "postgres", "host": "<host>", "port": 5432, "schema": "<database>", '
    '"login": "feedbackloop_pipeline", "password": "<password>"}',
    "aws": '{"conn_type": "aws", "login": "<access key id>", "password": "<secret access key>", '
    '"extra": {"endpoint_url": "<S3 API URL, for MinIO>", "region_name": "<region>"}}',
    "openai": '{"conn_type": "openai", "host": "https://api.openai.com/v1", "password": "<api key>"}',
}


def missing_connection_message(conn_id: str, purpose: str, conn_type: str) -> str:
    """What to do when connection ``conn_id`` is not defined: where it is needed and how to add it."""
    example = CONNECTION_EXAMPLES.get(conn_type, f'{{"conn_type": "{conn_type}", ...}}')
    return (
        f"Airflow connection '{conn_id}' is not defined; it is needed for {purpose}. Define it in the "
        f"UI (Admin > Connections, type {conn_type}), with `airflow connections add {conn_id} "
        f"--conn-json '<json>'`, or as environment variable AIRFLOW_CONN_{conn_id.upper()}='<json>' "
        f"where <json> is {example} (see README, Configuration)."
    )


def require_connection(conn_id: str, purpose: str, conn_type: str) -> Any:
    """The connection ``conn_id``; when it is not defined, an error that says how to define it.

    Raises:
        AirflowNotFoundException: the connection is not defined (message from
            :func:`missing_connection_message`).
    """
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        raise AirflowNotFoundException(missing_connection_message(conn_id, purpose, conn_type)) from exc


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

            hook = S3Hook(aws_conn_id=self.aws_conn_id)
            if hook.get_session().get_credentials() is None:
                # No connection and no ambient credentials (IAM role, AWS_* environment):
                # fail here, naming what to configure, not on the first request.
                raise ValueError(
                    f"staging root {self.staging_uri!r} is on S3 but no AWS credentials were found. "
                    + missing_connection_message(self.aws_conn_id, "S3 staging", "aws")
                    + " Or give the workers an IAM role / AWS_* environment variables."
                )
            client = hook.get_conn()
        return open_staging(self.staging_uri, s3_client=client)


def feedback_db_connection(postgres_conn_id: str) -> Any:
    """A psycopg 3 connection to the feedback database from an Airflow connection.

    Raises:
        AirflowNotFoundException: the connection is not defined (the message says how to).
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    require_connection(
        postgres_conn_id, "the feedback DB (the app's tables, read only, and the pipeline's schema ml)", "postgres"
    )
    return PostgresHook(postgres_conn_id=postgres_conn_id).get_conn()


def openai_client(conn_id: str) -> Any:
    """An ``openai.OpenAI`` client from an Airflow connection (API key, base URL).

    Raises:
        AirflowNotFoundException: the connection is not defined (the message says how to).
    """
    from airflow.providers.openai.hooks.openai import OpenAIHook

    require_connection(
        conn_id,
        "the OpenAI-compatible model endpoint (trainer openai or fewshot, or a model served by one)",
        "openai",
    )
    return OpenAIHook(conn_id=conn_id).get_conn()


def optional_connection(conn_id: str) -> Any | None:
    """The connection if it is configured, else None (used for optional Slack)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
