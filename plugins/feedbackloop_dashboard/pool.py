"""Pooled connections to the feedback DB, opened through the ``feedback_db`` Airflow connection.

A page view runs about fifteen small queries; opening a PostgreSQL connection (and looking the
Airflow connection up in the secrets backend) for each request would cost more than the
queries. So each api-server worker keeps a few idle connections and reuses them. A
connection is dropped when it broke, was left inside a transaction, or is older than
``max_lifetime`` seconds (so a changed Airflow connection takes effect without a restart).
Credentials never appear here: PostgresHook builds the connection from the Airflow
connection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_CONN_ID = "feedback_db"
STATEMENT_TIMEOUT_MS = 60_000


class DatabaseUnavailable(RuntimeError):
    """The feedback DB cannot be reached or its Airflow connection is not configured."""


def _hook_connection(conn_id: str) -> Any:
    """A psycopg 3 connection from the Airflow connection ``conn_id`` (via PostgresHook)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    if not hasattr(conn, "transaction"):
        conn.close()
        raise DatabaseUnavailable(
            "the dashboard needs psycopg 3 (PostgresHook returned a psycopg2 connection); "
            "install psycopg[binary] with SQLAlchemy 2"
        )
    return conn


class ConnectionPool:
    """A small, thread-safe pool of psycopg 3 connections.

    Args:
        conn_id: the Airflow connection of the feedback DB.
        max_idle: idle connections kept for reuse.
        max_lifetime: seconds after which a connection is closed instead of reused.
        connect: opens a connection (default: PostgresHook on ``conn_id``); tests may pass
            ``lambda: psycopg.connect(dsn)``.
    """

    def __init__(
        self,
        conn_id: str = DEFAULT_CONN_ID,
        *,
        max_idle: int = 4,
        max_lifetime: float = 300.0,
        connect: Callable[[], Any] | None = None,
    ) -> None:
        if max_idle < 0 or max_lifetime <= 0:
            raise ValueError("max_idle must be >= 0 and max_lifetime > 0")
        self.conn_id = conn_id
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self._connect = connect or (lambda: _hook_connection(conn_id))
        self._idle: deque[tuple[float, Any]] = deque()
        self._lock = threading.Lock()

    def _open(self) -> tuple[float, Any]:
        try:
            conn = self._connect()
        except DatabaseUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - connection lookup or network: one message
            # Only the exception type: messages of connection errors can carry host names.
            raise DatabaseUnavailable(
                f"cannot connect to the feedback DB (connection {self.conn_id!r}): {type(exc).__name__}"
            ) from exc
        with conn.cursor() as cur:
            # A dashboard query must never hold the database for long.
            cur.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT_MS)}")
        conn.commit()
        return time.monotonic(), conn

    @staticmethod
    def _usable(conn: Any) -> bool:
        from psycopg.pq import TransactionStatus

        return not conn.closed and not conn.broken and conn.info.transaction_status == TransactionStatus.IDLE

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for one request; returned to the pool if it is still clean."""
        entry = None
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if time.monotonic() - candidate[0] < self.max_lifetime and self._usable(candidate[1]):
                    entry = candidate
                    break
                candidate[1].close()
        if entry is None:
            entry = self._open()
        ok = False
        try:
            yield entry[1]
            ok = True
        finally:
            keep = ok and self._usable(entry[1])
            if keep:
                with self._lock:
                    keep = len(self._idle) < self.max_idle
                    if keep:
                        self._idle.append(entry)
            if not keep:
                entry[1].close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            while self._idle:
                self._idle.pop()[1].close()
