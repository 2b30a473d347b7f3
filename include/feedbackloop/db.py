"""Database access: connections and versioned migrations of the ``ml`` schema.

Migrations are the SQL files in ``migrations/ml`` applied in name order, each once, recorded
in ``ml.schema_migrations`` with a checksum; an edited, already-applied file is an error (add
a new file instead). An advisory lock serialises concurrent migrators (several workers
starting at once). ``migrations/app`` holds the app-owned tables, which only the demo and
the tests create. ``migrations/roles/pipeline_role.sql`` creates the pipeline's
least-privilege login role (:func:`apply_pipeline_role`), run by the owner of schema ``ml``
after the migrations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

_MIGRATION_LOCK = 7_314_159_265  # arbitrary, constant advisory-lock key
PIPELINE_ROLE = "feedbackloop_pipeline"
"""The login role the DAGs use: SELECT on the app tables, row access to schema ``ml``."""


class MigrationError(RuntimeError):
    """The database's migration history does not match the migration files."""


def _migration_files(kind: str) -> list[tuple[str, str]]:
    folder = resources.files("feedbackloop") / "migrations" / kind
    files = sorted((p.name, p.read_text(encoding="utf-8")) for p in folder.iterdir() if p.name.endswith(".sql"))
    if not files:
        raise MigrationError(f"no migration files found for {kind!r}")
    return files


def connect(dsn: str, **kwargs: Any):  # noqa: ANN201 - psycopg connection
    """Open a psycopg 3 connection (autocommit off)."""
    import psycopg

    return psycopg.connect(dsn, **kwargs)


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """A transaction on ``conn`` yielding a cursor; commits on success, rolls back on error."""
    with conn.transaction(), conn.cursor() as cur:
        yield cur


def create_app_tables(conn: Any) -> None:
    """Create the app-owned tables (demo and tests only; idempotent)."""
    with transaction(conn) as cur:
        for _, sql in _migration_files("app"):
            cur.execute(sql)


def migrate(conn: Any) -> list[str]:
    """Apply pending ``ml`` migrations. Returns the names applied now (empty when up to date)."""
    applied_now: list[str] = []
    with transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cur.execute("CREATE SCHEMA IF NOT EXISTS ml")
        cur.execute(
            """CREATE TABLE IF NOT EXISTS ml.schema_migrations (
                   name text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        cur.execute("SELECT name, checksum FROM ml.schema_migrations")
        done = dict(cur.fetchall())
        for name, sql in _migration_files("ml"):
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if name in done:
                if done[name] != checksum:
                    raise MigrationError(
                        f"migration {name} was changed after it was applied; add a new migration instead"
                    )
                continue
            cur.execute(sql)
            cur.execute("INSERT INTO ml.schema_migrations (name, checksum) VALUES (%s, %s)", (name, checksum))
            applied_now.append(name)
    return applied_now


def pipeline_role_sql() -> str:
    """The documented SQL that creates and grants :data:`PIPELINE_ROLE` (idempotent)."""
    return (resources.files("feedbackloop") / "migrations" / "roles" / "pipeline_role.sql").read_text(
        encoding="utf-8"
    )


def apply_pipeline_role(conn: Any, password: str | None = None) -> None:
    """Create :data:`PIPELINE_ROLE` and grant it what the pipeline needs, nothing more.

    Run as the owner of schema ``ml`` (the role that ran :func:`migrate`), after migrating.
    ``password`` (optional) sets the role's login password, sent as a literal the server
    hashes (never logged here).
    """
    from psycopg import sql

    with transaction(conn) as cur:
        cur.execute(pipeline_role_sql())
        if password is not None:
            cur.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PIPELINE_ROLE), sql.Literal(password))
            )
