"""``make cluster``: the production topology on one machine, without Docker.

The same shape as ``docker-compose.yaml`` (CeleryExecutor, Redis broker, PostgreSQL metadata
DB, a separate feedback database, S3 staging), as local processes:

====================  =======================================================================
service               process
====================  =======================================================================
``pg``                the embedded PostgreSQL (:mod:`feedbackloop.embedded_pg`) with two
                      databases: ``airflow`` (metadata, Celery results) and ``feedback``
                      (app tables + the ``ml`` schema, seeded with the demo week)
``redis``             Debian's ``redis-server`` as the Celery broker (password, no persistence)
``s3``                ``moto_server`` as the S3 API, with the staging bucket created on start
``api-server``        ``airflow api-server`` (UI, REST API, execution API for the workers)
``scheduler``         ``airflow scheduler --skip-serve-logs`` (CeleryExecutor)
``dag-processor``     ``airflow dag-processor``
``triggerer``         ``airflow triggerer --skip-serve-logs`` (deferred tasks wait here)
``worker-N``          ``airflow celery worker --celery-hostname worker-N@%h --skip-serve-logs``
====================  =======================================================================

Every server listens on 127.0.0.1 only (the workers, scheduler, dag-processor and triggerer
listen nowhere). Each process is started in its own session, so it leads its own process
group; its PID and start time are written to ``<state>/cluster.json``, its output to
``<state>/logs/<service>.log``. ``down`` stops exactly those processes (and the task processes
they forked), SIGTERM first, SIGKILL after a grace period; it is idempotent.

Each Airflow process reports its service name as its hostname (``[core] hostname_callable`` is
:func:`node_name`), so task instances show which worker ran them.

CLI::

    python -m feedbackloop.cluster up --state .state/cluster     # prints the URLs and login
    python -m feedbackloop.cluster status --state .state/cluster
    python -m feedbackloop.cluster down --state .state/cluster

This module never imports Airflow: Airflow only runs in the subprocesses it starts.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from feedbackloop.embedded_pg import free_port

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = "cluster.json"
SECRETS_FILE = "secrets.json"
ENV_FILE = "cluster.env"
PASSWORDS_FILE = "passwords.json"
NODE_ENV = "FEEDBACKLOOP_NODE_NAME"
ADMIN_USER = "admin"
STAGING_BUCKET = "feedbackloop-staging"
STAGING_PREFIX = "airflow"
S3_REGION = "us-east-1"
# moto accepts any credentials; these only keep boto3 from looking for real ones.
S3_ACCESS_KEY = "feedbackloop-local"
S3_SECRET_KEY = "feedbackloop-local-secret"  # noqa: S105 - not a secret: moto ignores it
METADATA_DB = "airflow"
FEEDBACK_DB = "feedback"
DEFAULT_API_PORT = 8080
DEFAULT_WORKERS = 2
DEFAULT_CONCURRENCY = 2
# Start order; ``down`` stops in reverse (workers first, so no task is left without its API).
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
STOP_GRACE_S = 20.0
# Inherited variables that would point the cluster elsewhere (e.g. the Makefile's exports of
# the SQLite demo settings, a developer's AWS profile): never passed to the processes.
_STRIPPED_PREFIXES = ("AIRFLOW_", "AIRFLOW__", "AWS_", "FEEDBACKLOOP_STAGING_URI")


class ClusterError(RuntimeError):
    """The cluster could not be started or is not in the expected state."""


# ------------------------------------------------------------------------ small helpers


def node_name() -> str:
    """``[core] hostname_callable`` of every cluster process: its service name (``worker-1``...).

    Outside the cluster (no ``FEEDBACKLOOP_NODE_NAME``) it is the machine's FQDN, Airflow's default.
    """
    return os.environ.get(NODE_ENV) or socket.getfqdn()


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (secrets, env with passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def load_state(state: Path) -> dict[str, Any] | None:
    path = Path(state) / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _save_state(state: Path, data: dict[str, Any]) -> None:
    path = state / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _cluster_secrets(state: Path) -> dict[str, str]:
    """Generated once per state folder (so a restart keeps logins and encrypted values)."""
    path = state / SECRETS_FILE
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    values = {
        "fernet_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "jwt_secret": secrets.token_hex(32),
        "api_secret_key": secrets.token_hex(32),
        "redis_password": secrets.token_hex(24),
        "admin_password": secrets.token_urlsafe(18),
    }
    _write_private(path, json.dumps(values, indent=2))
    return values


def _say(*parts: Any, file: Any = None) -> None:
    """Print for the CLI (this module is a command-line tool)."""
    stream = file or sys.stdout
    stream.write(" ".join(str(p) for p in parts) + "\n")
    stream.flush()


def log_tail(path: Path | str, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _http(
    url: str, *, method: str = "GET", body: Any = None, token: str | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback URL
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def api_token(api_url: str, username: str, password: str) -> str:
    """A JWT from the simple auth manager's login endpoint (``POST /auth/token``)."""
    status, body = _http(
        f"{api_url}/auth/token", method="POST", body={"username": username, "password": password}
    )
    if status != 201:
        raise ClusterError(f"login as {username!r} failed: HTTP {status} {body!r}")
    return str(body["access_token"])


def _wait(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    *,
    alive: Callable[[], None] | None = None,
    interval: float = 0.5,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _redis_ping(port: int, password: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
        data = b""
        while data.count(b"\r\n") < 2:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    return data.startswith(b"+OK\r\n+PONG")


# ------------------------------------------------------------------------- processes


def _process(record: dict[str, Any]) -> Any:
    """The psutil process of a service record, or None if it is gone (or the PID was reused)."""
    import psutil

    try:
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["create_time"])) > 0.5:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def service_processes(record: dict[str, Any]) -> list[Any]:
    """Every live process that belongs to a service: its leader, the leader's descendants
    (task processes put themselves in their own process group) and the members of the
    process group the leader created (if the leader already died)."""
    import psutil

    found: dict[int, Any] = {}
    leader = _process(record)
    if leader is not None:
        found[leader.pid] = leader
        for child in leader.children(recursive=True):
            found[child.pid] = child
    pgid = int(record["pid"])
    started = float(record["create_time"]) - 0.5
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            if proc.pid not in found and os.getpgid(proc.pid) == pgid and proc.info["create_time"] >= started:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
    return [p for p in found.values() if not _gone(p)]


def kill_service(record: dict[str, Any], sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to every process of a service at once (e.g. SIGKILL: a crashed machine)."""
    import psutil

    procs = service_processes(record)
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in procs]


def stop_services(records: Iterable[dict[str, Any]], grace: float = STOP_GRACE_S) -> int:
    """SIGTERM every process of these services at once, SIGKILL what is left after ``grace``
    seconds. Returns how many processes were found."""
    import psutil

    records = list(records)
    procs = [p for r in records for p in service_processes(r)]
    if not procs:
        return 0
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    alive = _wait_gone(procs, grace)
    # Processes forked while stopping (a task started at the last moment) go as well.
    left = {p.pid: p for p in alive} | {p.pid: p for r in records for p in service_processes(r)}
    for proc in left.values():
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    _wait_gone(list(left.values()), 10)
    return len(procs)


def _gone(proc: Any) -> bool:
    import psutil

    try:
        # A zombie has exited: only its parent (init, for our detached services) has not reaped it.
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(procs: list[Any], timeout: float) -> list[Any]:
    """Wait until the processes have exited; returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not _gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if not _gone(p)]
    return alive


def stop_service(record: dict[str, Any], grace: float = STOP_GRACE_S) -> bool:
    """Stop one service (see :func:`stop_services`); False if nothing of it was running."""
    return stop_services([record], grace) > 0


def _start(
    state: Path, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None
) -> dict[str, Any]:
    import psutil

    log_path = state / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S%z')} starting {name}\n".encode())
        log.flush()
        offset = log.tell()
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or state,
            start_new_session=True,  # its own session and process group, led by this PID
        )
    return {
        "pid": proc.pid,
        "create_time": psutil.Process(proc.pid).create_time(),
        "log": str(log_path),
        "log_offset": offset,  # where this start's output begins (the log is appended to)
        "argv": argv,
    }


def _check_alive(services: dict[str, dict[str, Any]], names: Iterable[str]) -> Callable[[], None]:
    def check() -> None:
        for name in names:
            if _process(services[name]) is None:
                raise ClusterError(
                    f"{name} exited during start-up; last lines of {services[name]['log']}:\n"
                    + log_tail(services[name]["log"])
                )

    return check


# -------------------------------------------------------------------- configuration


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def airflow_env(
    cfg: dict[str, Any], secret: dict[str, str], extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The configuration every Airflow process of the cluster runs with (as env variables)."""
    home = Path(cfg["airflow_home"])
    pg_port, api = cfg["pg_port"], cfg["api_url"]
    metadata = f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/{METADATA_DB}"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__FERNET_KEY": secret["fernet_key"],
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "feedbackloop.cluster.node_name",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": cfg["passwords_file"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:{secret['redis_password']}@127.0.0.1:{cfg['redis_port']}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{pg_port}/{METADATA_DB}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg["worker_concurrency"]),
        # Airflow's default, set explicitly (it warns otherwise): an unacknowledged task message
        # is redelivered after a day; a lost worker is handled by the heartbeat timeout instead.
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(cfg["api_port"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": secret["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secret["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # Two cores are enough: one parser process, as few wake-ups as the defaults allow.
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "FEEDBACKLOOP_STAGING_URI": f"s3://{cfg['s3_bucket']}/{STAGING_PREFIX}",
        # Only the loopback S3 is reachable: no shared AWS config, profile or instance metadata.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AIRFLOW_CONN_FEEDBACK_DB": json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": pg_port,
                "login": "postgres",
                "schema": FEEDBACK_DB,
            }
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": cfg["s3_access_key"],
                "password": cfg["s3_secret_key"],
                "extra": {
                    "endpoint_url": cfg["s3_endpoint"],
                    "region_name": S3_REGION,
                    "config_kwargs": {"s3": {"addressing_style": "path"}},
                },
            }
        ),
    }
    if cfg.get("openai_base_url"):
        env["AIRFLOW_CONN_OPENAI_DEFAULT"] = json.dumps(
            {
                "conn_type": "openai",
                "host": cfg["openai_base_url"],
                "password": cfg.get("openai_api_key") or "",
            }
        )
    if cfg.get("no_schedules"):
        # Manual and API-triggered runs only (a test or demo cluster must not start the weekly run).
        env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"
    if cfg.get("fast_failover"):
        # A worker that dies is noticed in seconds (default 300 s) and the retry waits at most
        # 5 s (the DAG's own retry_delay is minutes, with exponential backoff, capped by this).
        env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] = "20"
        env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL"] = "2"
        env["AIRFLOW__CORE__MAX_TASK_RETRY_DELAY"] = "5"
    env.update(extra or {})
    return env


def airflow_commands(
    api_port: int, workers: int = DEFAULT_WORKERS, concurrency: int = DEFAULT_CONCURRENCY
) -> dict[str, list[str]]:
    """The ``airflow`` sub-commands of the cluster's services, by service name (start order).

    The same components as docker-compose.yaml's Airflow services; no log server is started
    (every process writes task logs to the one local log folder the api-server reads).
    """
    commands = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
        "triggerer": ["triggerer", "--skip-serve-logs"],
    }
    for i in range(1, workers + 1):
        commands[f"worker-{i}"] = [
            "celery",
            "worker",
            "--celery-hostname",
            f"worker-{i}@%h",
            "--concurrency",
            str(concurrency),
            "--skip-serve-logs",
        ]
    return commands


def _write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = ["# Source this (set -a; . FILE; set +a) to point the airflow CLI at the local cluster."]
    lines += [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    _write_private(path, "\n".join(lines) + "\n")


def _redis_conf(state: Path, port: int, password: str) -> Path:
    folder = state / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "redis.conf"
    _write_private(
        conf,
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {password}",
                'save ""',
                "appendonly no",
                f"dir {folder}",
                "daemonize no",
                'logfile ""',
                "",
            ]
        ),
    )
    return conf


def _s3_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


def _ensure_bucket(client: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        client.create_bucket(Bucket=bucket)


def _prepare_feedback_db(server: Any, seed_rows: int) -> dict[str, int]:
    from feedbackloop import db
    from feedbackloop.demo import ensure_database, seed_demo_data

    dsn = ensure_database(server, FEEDBACK_DB)
    if seed_rows > 0:
        return seed_demo_data(dsn, rows=seed_rows)
    with db.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
    return {}


# -------------------------------------------------------------------------------- up


def up(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from feedbackloop import embedded_pg
    from feedbackloop.demo import ensure_database

    state: Path = args.state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    existing = load_state(state)
    if existing:
        alive = {n: _process(r) is not None for n, r in existing.get("services", {}).items()}
        if alive and all(alive.values()):
            _say(f"cluster already up ({state}); `status` for details, `down` to stop it")
            return 0
        if any(alive.values()):
            raise ClusterError(f"a part of the cluster in {state} still runs ({alive}); run `down` first")
    for needed, hint in (("redis-server", "apt-get install redis-server"),):
        if shutil.which(needed) is None and not Path(f"/usr/bin/{needed}").exists():
            raise ClusterError(f"{needed} is required for the Celery broker ({hint})")
    t0 = time.monotonic()
    bin_dir = Path(sys.executable).parent
    airflow = str(bin_dir / "airflow")
    secret = _cluster_secrets(state)
    home = state / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    passwords = state / PASSWORDS_FILE
    _write_private(passwords, json.dumps({ADMIN_USER: secret["admin_password"]}))
    api_port = free_port(args.api_port)
    api_url = f"http://127.0.0.1:{api_port}"
    data: dict[str, Any] = {
        "state": str(state),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "api_url": api_url,
        "admin_user": ADMIN_USER,
        "passwords_file": str(passwords),
        "env_file": str(state / ENV_FILE),
        "services": {},
    }
    services: dict[str, dict[str, Any]] = data["services"]
    try:
        # 1. databases: the embedded PostgreSQL with the metadata and the feedback database.
        server = embedded_pg.start(state / "pg", port=args.pg_port)
        data["pg"] = {"pgdata": str(state / "pg"), "port": server.port, "pid": server.pid}
        data["metadata_dsn"] = ensure_database(server, METADATA_DB)
        data["feedback_dsn"] = server.dsn(FEEDBACK_DB)

        # 2. broker and S3.
        redis_port = free_port()
        conf = _redis_conf(state, redis_port, secret["redis_password"])
        redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
        services["redis"] = _start(state, "redis", [redis_bin, str(conf)], _base_env())
        if args.s3_endpoint:
            s3_endpoint = args.s3_endpoint.rstrip("/")
            s3_key = os.environ.get("AWS_ACCESS_KEY_ID") or ""
            s3_secret = os.environ.get("AWS_SECRET_ACCESS_KEY") or ""
            if not (s3_key and s3_secret):
                raise ClusterError("--s3-endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        else:
            s3_port = free_port()
            s3_endpoint = f"http://127.0.0.1:{s3_port}"
            s3_key, s3_secret = S3_ACCESS_KEY, S3_SECRET_KEY
            services["s3"] = _start(
                state,
                "s3",
                [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                _base_env(),
            )
        cfg = {
            "airflow_home": str(home),
            "pg_port": server.port,
            "api_port": api_port,
            "api_url": api_url,
            "passwords_file": str(passwords),
            "redis_port": redis_port,
            "worker_concurrency": args.worker_concurrency,
            "s3_endpoint": s3_endpoint,
            "s3_bucket": args.bucket,
            "s3_access_key": s3_key,
            "s3_secret_key": s3_secret,
            "openai_base_url": args.openai_base_url,
            "openai_api_key": os.environ.get("OPENAI_API_KEY", ""),
            "no_schedules": args.no_schedules,
            "fast_failover": args.fast_failover,
        }
        extra = dict(item.split("=", 1) for item in args.env)
        env = {**_base_env(), **airflow_env(cfg, secret, extra)}
        _write_env_file(state / ENV_FILE, airflow_env(cfg, secret, extra))
        data.update(
            {
                "redis": {"port": redis_port},
                "s3": {
                    "endpoint_url": s3_endpoint,
                    "bucket": args.bucket,
                    "prefix": STAGING_PREFIX,
                    "managed": not args.s3_endpoint,
                },
                "staging_uri": f"s3://{args.bucket}/{STAGING_PREFIX}",
                "workers": [n for n in airflow_commands(api_port, args.workers) if n.startswith("worker-")],
                "fast_failover": args.fast_failover,
            }
        )
        _save_state(state, data)

        # 3. migrations (metadata DB in a subprocess, feedback DB + demo data here) in parallel.
        migrate_log = state / "logs" / "airflow-db-migrate.log"
        with migrate_log.open("wb") as log, ThreadPoolExecutor(1) as pool:
            seeding = pool.submit(_prepare_feedback_db, server, args.seed_rows)
            migrate = subprocess.run(  # noqa: S603 - fixed argv
                [airflow, "db", "migrate"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=state,
                check=False,
                timeout=600,
            )
            seeded = seeding.result()
        if migrate.returncode != 0:
            raise ClusterError(f"airflow db migrate failed:\n{log_tail(migrate_log)}")
        data["seeded"] = seeded
        _wait(
            "redis",
            lambda: _redis_ping(redis_port, secret["redis_password"]),
            30,
            alive=_check_alive(services, ["redis"]),
        )
        if "s3" in services:
            _wait(
                "the S3 server",
                lambda: _http(s3_endpoint, timeout=2)[0] == 200,
                60,
                alive=_check_alive(services, ["s3"]),
            )
        _ensure_bucket(_s3_client(s3_endpoint, s3_key, s3_secret), args.bucket)

        # 4. Airflow: api-server, scheduler, dag-processor, triggerer, Celery workers.
        # Each Airflow process gets its own working and temporary folder, like a machine of its
        # own: a task that left data on "its" disk for the next task would fail here too.
        for name, argv in airflow_commands(api_port, args.workers, args.worker_concurrency).items():
            node = state / "nodes" / name
            (node / "tmp").mkdir(parents=True, exist_ok=True)
            node_env = {**env, NODE_ENV: name, "TMPDIR": str(node / "tmp")}
            services[name] = _start(state, name, [airflow, *argv], node_env, cwd=node)
        _save_state(state, data)
        all_alive = _check_alive(services, list(services))

        def healthy() -> bool:
            status, body = _http(f"{api_url}/api/v2/monitor/health", timeout=5)
            return status == 200 and all(
                (body.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        _wait(
            "the api-server, scheduler, triggerer and dag-processor to be healthy",
            healthy,
            args.timeout,
            alive=all_alive,
        )

        def worker_ready(name: str) -> bool:
            # Celery logs "<name>@<host> ready." once it consumes from the broker.
            with open(services[name]["log"], "rb") as fh:
                fh.seek(services[name]["log_offset"])
                lines = fh.read().decode(errors="replace").splitlines()
            return any(f"{name}@" in line and " ready." in line for line in lines)

        for name in data["workers"]:
            _wait(f"{name} to be ready", partial(worker_ready, name), args.timeout, alive=all_alive)
        token = api_token(api_url, ADMIN_USER, secret["admin_password"])

        def dag_parsed(dag_id: str) -> bool:
            return _http(f"{api_url}/api/v2/dags/{dag_id}", token=token)[0] == 200

        for dag_id in args.wait_dag:
            _wait(
                f"DAG {dag_id} to be parsed",
                partial(dag_parsed, dag_id),
                args.timeout,
                alive=all_alive,
                interval=1.0,
            )
        data["ready_after_s"] = round(time.monotonic() - t0, 1)
        _save_state(state, data)
    except BaseException:
        _save_state(state, data)
        _say(
            f"cluster start-up failed after {time.monotonic() - t0:.0f}s; stopping what was started",
            file=sys.stderr,
        )
        for name, record in data.get("services", {}).items():
            tail = log_tail(record["log"], 15)
            if tail:
                _say(f"--- {name} ({record['log']}):\n{tail}", file=sys.stderr)
        down_state(state)
        raise
    _print_summary(data)
    return 0


def _print_summary(data: dict[str, Any]) -> None:
    state = data["state"]
    _say(f"cluster up in {data.get('ready_after_s', '?')}s ({state})")
    _say(
        f"  UI / REST API : {data['api_url']}  (user {data['admin_user']}, password in {data['passwords_file']})"
    )
    _say(
        f"  workers       : {', '.join(data['workers'])} (CeleryExecutor, Redis on 127.0.0.1:{data['redis']['port']})"
    )
    _say(f"  metadata DB   : {data['metadata_dsn']}")
    _say(f"  feedback DB   : {data['feedback_dsn']}")
    _say(f"  S3 staging    : {data['staging_uri']} at {data['s3']['endpoint_url']}")
    _say(f"  logs          : {state}/logs/  (task logs: {state}/airflow/logs/)")
    _say(f"  airflow CLI   : set -a; . {data['env_file']}; set +a; airflow dags list")
    _say(f"  stop          : make cluster-down  (python -m feedbackloop.cluster down --state {state})")


# ------------------------------------------------------------------------ down/status


def down_state(state: Path, grace: float = STOP_GRACE_S) -> list[str]:
    """Stop every process recorded for ``state`` and its embedded PostgreSQL. Idempotent."""
    from feedbackloop import embedded_pg

    state = Path(state).resolve()
    data = load_state(state)
    stopped: list[str] = []
    if data:
        services = data.get("services", {})
        # Airflow first (workers, triggerer, scheduler and dag-processor together, then the
        # api-server their tasks report to), then the broker and S3; the databases last.
        phases = [
            [
                n
                for n in services
                if n.startswith("worker-") or n in ("triggerer", "scheduler", "dag-processor")
            ],
            [n for n in services if n == "api-server"],
            [n for n in services if n in ("redis", "s3")],
        ]
        phases.append([n for n in services if not any(n in p for p in phases)])
        for names in phases:
            running = [n for n in names if service_processes(services[n])]
            stop_services([services[n] for n in running], grace=grace)
            stopped.extend(running)
    if (state / "pg").exists() and embedded_pg.stop(state / "pg"):
        stopped.append("pg")
    return stopped


def down(args: argparse.Namespace) -> int:
    state = args.state.resolve()
    t0 = time.monotonic()
    stopped = down_state(state, grace=args.grace)
    if stopped:
        _say(f"stopped {', '.join(stopped)} in {time.monotonic() - t0:.1f}s")
    else:
        _say(f"nothing runs for {state}")
    return 0


def status_report(state: Path) -> dict[str, Any]:
    """Which recorded processes live, plus the api-server's health report if it answers."""
    from feedbackloop import embedded_pg

    state = Path(state).resolve()
    data = load_state(state)
    if data is None:
        return {"state": str(state), "up": False, "services": {}}
    services = {}
    for name, record in data.get("services", {}).items():
        procs = service_processes(record)
        services[name] = {
            "pid": record["pid"],
            "alive": _process(record) is not None,
            "processes": len(procs),
            "log": record["log"],
        }
    pg = embedded_pg._running(state / "pg")
    services["pg"] = {
        "pid": pg.pid if pg else None,
        "alive": pg is not None,
        "processes": int(pg is not None),
        "log": str(state / "pg" / "log"),
    }
    health: Any = None
    if services.get("api-server", {}).get("alive"):
        try:
            _, health = _http(f"{data['api_url']}/api/v2/monitor/health", timeout=5)
        except OSError as exc:
            health = {"error": str(exc)}
    return {
        "state": str(state),
        "up": all(s["alive"] for s in services.values()),
        "api_url": data.get("api_url"),
        "services": services,
        "health": health,
    }


def status(args: argparse.Namespace) -> int:
    report = status_report(args.state)
    if args.json:
        _say(json.dumps(report, indent=2))
    else:
        if not report["services"]:
            _say(f"no cluster in {report['state']}")
        for name, svc in report["services"].items():
            _say(
                f"{name:14} {'up  ' if svc['alive'] else 'DOWN'} pid {svc['pid']!s:8} "
                f"processes {svc['processes']:<3} {svc['log']}"
            )
        if report.get("health"):
            _say("health:", json.dumps(report["health"]))
    return 0 if report["up"] else 1


# -------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m feedbackloop.cluster", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the cluster (returns when it is ready)")
    p_down = sub.add_parser("down", help="stop every process the cluster started (idempotent)")
    p_status = sub.add_parser("status", help="show the processes and the api-server's health")
    for p in (p_up, p_down, p_status):
        p.add_argument(
            "--state",
            type=Path,
            default=Path(".state/cluster"),
            help="folder for PIDs, logs, databases and generated config",
        )
    p_up.add_argument(
        "--api-port",
        type=int,
        default=DEFAULT_API_PORT,
        help="api-server port on 127.0.0.1 (a free one if taken; 0: any free port)",
    )
    p_up.add_argument("--pg-port", type=int, default=0, help="embedded PostgreSQL port (0: any free port)")
    p_up.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="Celery workers")
    p_up.add_argument(
        "--worker-concurrency", type=int, default=DEFAULT_CONCURRENCY, help="task slots per Celery worker"
    )
    p_up.add_argument(
        "--seed-rows",
        type=int,
        default=5000,
        help="feedback rows of the demo week to seed (0: empty app tables)",
    )
    p_up.add_argument("--bucket", default=STAGING_BUCKET, help="S3 staging bucket (created on start)")
    p_up.add_argument(
        "--s3-endpoint",
        default=None,
        help="use this S3 API (e.g. a running MinIO) instead of starting moto_server; "
        "credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    )
    p_up.add_argument(
        "--openai-base-url",
        default=None,
        help="OpenAI-compatible endpoint for connection openai_default (key: $OPENAI_API_KEY)",
    )
    p_up.add_argument(
        "--no-schedules",
        action="store_true",
        help="run manually triggered DAG runs only ([scheduler] use_job_schedule = False)",
    )
    p_up.add_argument(
        "--fast-failover",
        action="store_true",
        help="detect a dead worker in ~20 s and retry after at most 5 s (tests, demos)",
    )
    p_up.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every Airflow process (repeatable)",
    )
    p_up.add_argument(
        "--wait-dag",
        action="append",
        default=None,
        help="wait until this DAG is parsed (default: feedback_retraining)",
    )
    p_up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each readiness check")
    p_down.add_argument(
        "--grace", type=float, default=STOP_GRACE_S, help="seconds between SIGTERM and SIGKILL"
    )
    p_status.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.wait_dag is None:
            args.wait_dag = ["feedback_retraining"]
        if args.workers < 1 or any("=" not in item for item in args.env):
            parser.error("--workers must be >= 1 and --env items KEY=VALUE")
    try:
        return {"up": up, "down": down, "status": status}[args.command](args)
    except ClusterError as exc:
        _say(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
