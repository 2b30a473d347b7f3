"""The ``make cluster`` launcher's process handling and configuration, without starting Airflow.

The whole cluster is exercised by tests/cluster/test_cluster.py; these check the parts that
must hold on their own: a service is stopped with every process it forked (also one in its
own process group, also one that ignores SIGTERM), a recycled PID is never signalled, ``down``
and ``status`` are safe on an empty folder, secrets stay private, and inherited settings
cannot point the cluster elsewhere.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from feedbackloop import cluster as fc

LEADER = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends this one
child = subprocess.Popen([sys.executable, "-c", "import os, time; os.setpgid(0, 0); time.sleep(300)"])
print("child", child.pid, flush=True)
time.sleep(300)
"""


def _child_pid(log: Path) -> int:
    """The leader's child, once it has moved into its own process group."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("child "):
                pid = int(line.split()[1])
                if os.getpgid(pid) == pid:
                    return pid
        time.sleep(0.05)
    raise AssertionError(f"the leader's child did not start in its own group:\n{log.read_text()}")


def test_stop_takes_the_whole_tree_even_a_child_in_its_own_group_and_a_leader_ignoring_sigterm(tmp_path):
    record = fc._start(tmp_path, "dummy", [sys.executable, "-c", LEADER], dict(os.environ))
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        child = _child_pid(Path(record["log"]))
        assert os.getpgid(record["pid"]) == record["pid"]  # its own session and group
        assert os.getpgid(child) == child != record["pid"]  # like an Airflow task process
        assert {p.pid for p in fc.service_processes(record)} == {record["pid"], child}

        started = time.monotonic()
        assert fc.stop_services([record], grace=1.0) == 2
        assert time.monotonic() - started < 15
        for pid in (record["pid"], child):
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert fc.service_processes(record) == []
        assert bystander.poll() is None, "a process that is not the service's was signalled"
        assert fc.stop_service(record) is False  # idempotent
    finally:
        bystander.kill()
        bystander.wait()
        for proc in fc.service_processes(record):
            proc.kill()


def test_kill_service_sends_sigkill_to_every_process_at_once(tmp_path):
    record = fc._start(tmp_path, "victim", [sys.executable, "-c", LEADER], dict(os.environ))
    child = _child_pid(Path(record["log"]))
    killed = fc.kill_service(record)
    assert set(killed) == {record["pid"], child}
    assert fc._wait_gone([psutil.Process(child)], 10) == []
    assert fc._process(record) is None


def test_a_recycled_pid_is_never_taken_for_the_service():
    me = psutil.Process()
    assert fc._process({"pid": me.pid, "create_time": me.create_time()}) is not None
    stale = {"pid": me.pid, "create_time": me.create_time() - 3600}  # same PID, another process
    assert fc._process(stale) is None
    assert fc.service_processes(stale) == []


def test_down_and_status_on_a_folder_without_a_cluster(tmp_path, capsys):
    assert fc.down_state(tmp_path) == []
    assert fc.main(["down", "--state", str(tmp_path)]) == 0
    assert "nothing runs" in capsys.readouterr().out
    assert fc.main(["status", "--state", str(tmp_path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "state": str(tmp_path.resolve()),
        "up": False,
        "services": {},
    }


def test_secrets_are_generated_once_and_readable_by_the_owner_only(tmp_path):
    first = fc._cluster_secrets(tmp_path)
    assert fc._cluster_secrets(tmp_path) == first
    assert set(first) == {"fernet_key", "jwt_secret", "api_secret_key", "redis_password", "admin_password"}
    assert stat.S_IMODE((tmp_path / fc.SECRETS_FILE).stat().st_mode) == 0o600
    from cryptography.fernet import Fernet

    Fernet(first["fernet_key"].encode())  # a valid Fernet key


def test_inherited_airflow_and_aws_settings_never_reach_the_cluster(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")  # what the Makefile exports
    monkeypatch.setenv("AIRFLOW_CONN_FEEDBACK_DB", "postgresql://prod-db/feedback")
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", "s3://prod-bucket/x")
    env = fc._base_env()
    assert not [k for k in env if k.startswith(("AIRFLOW", "AWS_")) or k == "FEEDBACKLOOP_STAGING_URI"]
    assert env["PATH"] == os.environ["PATH"]


def test_fast_failover_and_no_schedules_are_opt_in():
    cfg = {
        "airflow_home": "/h",
        "pg_port": 1,
        "api_port": 2,
        "api_url": "http://127.0.0.1:2",
        "passwords_file": "/p",
        "redis_port": 3,
        "worker_concurrency": 2,
        "s3_endpoint": "http://127.0.0.1:4",
        "s3_bucket": "b",
        "s3_access_key": "k",
        "s3_secret_key": "s",
    }
    secret = dict.fromkeys(("fernet_key", "jwt_secret", "api_secret_key", "redis_password"), "x")
    default = fc.airflow_env(cfg, secret)
    assert "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT" not in default
    assert "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE" not in default
    assert "AIRFLOW_CONN_OPENAI_DEFAULT" not in default
    tuned = fc.airflow_env({**cfg, "fast_failover": True, "no_schedules": True}, secret)
    assert tuned["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "20"
    assert tuned["AIRFLOW__CORE__MAX_TASK_RETRY_DELAY"] == "5"
    assert tuned["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] == "False"


@pytest.mark.parametrize(("value", "expected"), [("worker-7", "worker-7"), (None, None)])
def test_node_name_is_the_service_name_in_the_cluster(monkeypatch, value, expected):
    import socket

    if value is None:
        monkeypatch.delenv(fc.NODE_ENV, raising=False)
        assert fc.node_name() == socket.getfqdn()
    else:
        monkeypatch.setenv(fc.NODE_ENV, value)
        assert fc.node_name() == expected
