"""``make cluster`` end to end: distributed execution on two Celery workers, S3 staging, the
triggerer, and a worker killed mid-task.

The module brings the cluster up once with the real ``make cluster`` target (api-server,
scheduler, dag-processor, triggerer and two ``airflow celery worker`` processes, Redis as the
broker, the embedded PostgreSQL for the metadata and feedback databases, ``moto_server`` as S3;
all on 127.0.0.1) and drives it only through the Airflow REST API, like an operator would:

1. the clean run of ``feedback_retraining`` (``trainer=openai`` against the loopback fake
   OpenAI server) defers its fine-tuning wait to the triggerer: while the fake holds the
   trigger's poll, the task instance is ``deferred``, its trigger belongs to the triggerer's
   job, the only process talking to the fake is the triggerer, the default pool has no
   running slot and both Celery workers report no active task. Then the run succeeds; its
   tasks ran on both workers; every artifact is in the S3 bucket and every XCom points there;
   ``ml`` holds the gate decision, the model version, the canary deployment and the job.
2. the second run (same data) is held by the fake while ``evaluate_golden_set`` classifies the
   golden set; the worker running it (proved by its socket to the fake) is SIGKILLed with every
   process it forked. The scheduler notices the missing heartbeat, the task is retried on the
   other worker and the run succeeds with the same artifact keys, and the same bytes for every
   artifact that does not name the run's model.
3. ``make cluster-down`` stops every process the cluster started (checked by PID).

The cluster runs with ``--fast-failover`` (heartbeat timeout 20 s, retry delay capped at 5 s)
and ``--no-schedules`` (only these runs).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.fakes.openai_server import FAKE_API_KEY, FakeOpenAI, JobPlan, answer, lookup_responder

from feedbackloop import cluster as fc
from feedbackloop.demo import DEMO_INTERVAL, DEMO_LOGICAL_DATE
from feedbackloop.golden import load_golden_set

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "feedback_retraining"
RUN_CLEAN = "cluster_clean"
RUN_FAILOVER = "cluster_failover"
WORKERS = ("worker-1", "worker-2")
TRIGGER_CLASS = "feedbackloop_airflow.openai_training.FineTuneJobTrigger"
# The latency gate measures this test's Python fake over loopback on a busy 2-core machine,
# not a model: it gets room (a form param); every other threshold keeps its default.
RUN_CONF = {"trainer": "openai", "max_p95_latency_ms": 10_000.0}
SEED_ROWS = 1000
# Artifacts of two runs over the same data that differ by design, and why. Every other artifact
# of the failover run must be byte-identical to the clean run's; these JSON ones must be equal
# once the run's identity and the measured latencies are taken out (see _normalized).
RUN_SPECIFIC = {
    "validation_summary.json": "names the run's own staging URIs",
    "model_spec.json": "names the run's URIs and its own fine-tuning job, files and model",
    "eval_challenger.json": "the measured latency of every model call",
    "report.json": "the run id and the measured latencies",
    "report.html": "renders the run id and the measured latencies",
    "plots/latency.png": "plots the measured latencies",
}
# Keys naming one run's fine-tuning job at the provider (one job per run by design).
RUN_JOB_KEYS = {"job_id", "training_file_id", "validation_file_id", "suffix", "remote_model_id"}
RESULTS: dict[str, Any] = {}
# The running cluster's state folder, for the log tails conftest.py attaches to failures.
CLUSTER_STATE: dict[str, Path] = {}


def _fail_on_timeout(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the fake


class GatedOpenAI(FakeOpenAI):
    """The loopback fake OpenAI with gates: a closed gate holds every request of an operation
    until the test opens it (the rest of the fake is unchanged)."""

    GATE_TIMEOUT_S = 240.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gates: dict[str, threading.Event] = {}
        self.arrived: dict[str, threading.Event] = {}

    def close_gate(self, operation: str) -> None:
        self.arrived[operation] = threading.Event()
        self.gates[operation] = threading.Event()

    def open_gate(self, operation: str) -> None:
        self.gates[operation].set()

    def start(self) -> GatedOpenAI:
        super().start()
        server, report = self._server, self._server.handle_error

        def handle_error(request: Any, client_address: Any) -> None:
            # A killed worker's requests end in broken pipes: expected, not worth a traceback.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                report(request, client_address)

        server.handle_error = handle_error
        return self

    def handle(self, operation: str, params: dict[str, str], query: list[tuple[str, str]], body: Any):
        gate = self.gates.get(operation)
        if gate is not None and not gate.is_set():
            self.arrived[operation].set()
            gate.wait(self.GATE_TIMEOUT_S)
        return super().handle(operation, params, query, body)


def _normalized(value: Any, run_id: str) -> Any:
    """A JSON artifact without what differs between runs by design: the run's id and URIs, its
    fine-tuning job's ids, and measured latencies (values, and the value of the latency check)."""
    from feedbackloop.staging import run_key

    if isinstance(value, dict):
        latency_check = "latency" in str(value.get("name", ""))
        return {
            k: _normalized(v, run_id)
            for k, v in value.items()
            if "latency" not in k and k not in RUN_JOB_KEYS and not (latency_check and k == "value")
        }
    if isinstance(value, list):
        return [_normalized(v, run_id) for v in value]
    if isinstance(value, str):
        return value.replace(run_key(run_id), "<run>").replace(run_id, "<run>")
    return value


def _golden_responder() -> Any:
    """The fine-tuned model answers every golden email right, confidently (the gate passes)."""
    table = {g.text: answer(g.category, g.actions, confidence=0.99) for g in load_golden_set()}
    return lookup_responder(table)


# --------------------------------------------------------------------------- REST client


class Api:
    def __init__(self, base: str, password: str) -> None:
        self.base = base
        self.token = fc.api_token(base, fc.ADMIN_USER, password)

    def call(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200,)) -> Any:
        status, payload = fc._http(
            f"{self.base}{path}", method=method, body=body, token=self.token, timeout=30
        )
        assert status in expect, f"{method} {path}: HTTP {status} {payload!r}"
        return payload

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")

    def tis(self, run_id: str) -> dict[str, dict[str, Any]]:
        body = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def ti(self, run_id: str, task_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")

    def tries(self, run_id: str, task_id: str) -> list[dict[str, Any]]:
        body = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/tries")
        return sorted(body["task_instances"], key=lambda t: t["try_number"])

    def summary(self, run_id: str, task_id: str) -> Any:
        entry = self.get(
            f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/summary?deserialize=true"
        )
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def trigger(self, run_id: str, logical_date: Any, conf: dict[str, Any]) -> None:
        self.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
        self.call(
            "POST",
            f"/api/v2/dags/{DAG_ID}/dagRuns",
            {
                "dag_run_id": run_id,
                "logical_date": logical_date.isoformat(),
                "data_interval_start": DEMO_INTERVAL[0].isoformat(),
                "data_interval_end": DEMO_INTERVAL[1].isoformat(),
                "conf": conf,
            },
        )

    def wait_run(self, run_id: str, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.run(run_id)
            return run if run["state"] in ("success", "failed") else None

        run = _fail_on_timeout(f"run {run_id} to finish", finished, timeout, interval=1.0)
        if run["state"] != "success":
            states = {
                t: (ti["state"], ti["hostname"], ti["try_number"]) for t, ti in self.tis(run_id).items()
            }
            raise AssertionError(f"run {run_id} ended {run['state']}: {states}")
        return run


# --------------------------------------------------------------------------- fixtures


def _processes_connected_to(data: dict[str, Any], port: int) -> dict[str, set[int]]:
    """Cluster services with an open TCP connection to 127.0.0.1:``port`` (the fake)."""
    found: dict[str, set[int]] = {}
    for name, record in data["services"].items():
        for proc in fc.service_processes(record):
            try:
                conns = proc.net_connections(kind="tcp")
            except Exception:  # noqa: BLE001 - a process that just exited has no connections
                continue
            if any(c.raddr and c.raddr.port == port and c.status == "ESTABLISHED" for c in conns):
                found.setdefault(name, set()).add(proc.pid)
    return found


def _make(target: str, state: Path, args: str = "", env: dict[str, str] | None = None) -> float:
    """Run a Makefile target of this repo with the test's venv; returns its wall time."""
    venv = Path(sys.prefix)
    argv = [
        "make",
        "-s",
        "-C",
        str(ROOT),
        "-o",
        f"{venv}/bin/activate",
        target,
        f"VENV={venv}",
        f"CLUSTER_STATE={state}",
        f"CLUSTER_ARGS={args}",
    ]
    t0 = time.monotonic()
    result = subprocess.run(
        argv, env=env or dict(os.environ), capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, (
        f"make {target} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    print(f"make {target}: {elapsed:.1f}s\n{result.stdout}")
    return elapsed


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[GatedOpenAI]:
    # One status before the job succeeds: the task defers, the trigger's first poll ends it.
    with GatedOpenAI(responder=_golden_responder(), job_plan=JobPlan(statuses=("validating_files",))) as fake:
        yield fake


@pytest.fixture(scope="module")
def cluster(fake_openai: GatedOpenAI) -> Iterator[dict[str, Any]]:
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        message = "redis-server is required for the cluster test (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    state = Path(tempfile.mkdtemp(prefix="feedbackloop-cluster-")) / "cluster"
    CLUSTER_STATE["state"] = state
    args = " ".join(
        [
            "--api-port 0",
            f"--seed-rows {SEED_ROWS}",
            "--no-schedules",
            "--fast-failover",
            f"--openai-base-url {shlex.quote(fake_openai.base_url)}",
        ]
    )
    env = {**os.environ, "OPENAI_API_KEY": FAKE_API_KEY}
    data: dict[str, Any] = {}
    try:
        up_s = _make("cluster", state, args, env)
        data = fc.load_state(state) or {}
        password = json.loads(Path(data["passwords_file"]).read_text())[fc.ADMIN_USER]
        yield {
            "state": state,
            "data": data,
            "api": Api(data["api_url"], password),
            "up_s": up_s,
            "fake": fake_openai,
        }
    finally:
        down_s = _make("cluster-down", state)
        print(f"make cluster-down: {down_s:.1f}s")
        leftovers = {
            name: [p.pid for p in fc.service_processes(record)]
            for name, record in (data.get("services") or {}).items()
        }
        CLUSTER_STATE.pop("state", None)
        assert not any(leftovers.values()), f"processes left after make cluster-down: {leftovers}"
        shutil.rmtree(state.parent, ignore_errors=True)


def _s3(data: dict[str, Any]) -> Any:
    return fc._s3_client(data["s3"]["endpoint_url"], fc.S3_ACCESS_KEY, fc.S3_SECRET_KEY)


def _artifacts(data: dict[str, Any], run_id: str) -> dict[str, bytes]:
    """Every object of the run's staging folder in the bucket: relative key -> bytes."""
    from feedbackloop.staging import run_key

    s3, bucket = _s3(data), data["s3"]["bucket"]
    prefix = f"{data['s3']['prefix']}/{DAG_ID}/{run_key(run_id)}/"
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(prefix) :]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _celery_active(state: Path, workers: int = len(WORKERS)) -> dict[str, list[Any]]:
    """Celery's ``inspect active`` of every worker, through the cluster's broker, run with the
    cluster's own env file (as an operator would)."""
    code = (
        "import json; from airflow.providers.celery.executors.celery_executor import app; "
        f"print(json.dumps(app.control.inspect(timeout=20, limit={workers}).active()))"
    )
    script = (
        f"set -a; . {shlex.quote(str(state / fc.ENV_FILE))}; set +a; "
        f"exec {shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    result = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _feedback_db(data: dict[str, Any]) -> Any:
    return psycopg.connect(data["feedback_dsn"])


# --------------------------------------------------------------------------- tests


def test_cluster_runs_the_compose_topology_on_loopback_only(cluster):
    data, api = cluster["data"], cluster["api"]
    report = fc.status_report(cluster["state"])
    assert report["up"], report
    assert set(report["services"]) == {
        "pg",
        "redis",
        "s3",
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer",
        *WORKERS,
    }
    health = api.get("/api/v2/monitor/health")
    assert {
        k: health[k]["status"] for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    } == dict.fromkeys(("metadatabase", "scheduler", "triggerer", "dag_processor"), "healthy")
    # Every listening socket of every process the cluster started is on 127.0.0.1.
    import psutil

    listening: dict[str, set[tuple[str, int]]] = {}
    pids = {n: [p.pid for p in fc.service_processes(r)] for n, r in data["services"].items()}
    pids["pg"] = [data["pg"]["pid"]] + [
        c.pid for c in psutil.Process(data["pg"]["pid"]).children(recursive=True)
    ]
    for name, group in pids.items():
        for pid in group:
            for conn in psutil.Process(pid).net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.setdefault(name, set()).add((conn.laddr.ip, conn.laddr.port))
    assert {name for name in listening} == {"pg", "redis", "s3", "api-server"}, listening
    assert all(ip == "127.0.0.1" for socks in listening.values() for ip, _ in socks), listening
    # Each worker has a working and temporary folder of its own, like a separate machine.
    for name in WORKERS:
        # (/proc/<pid>/environ is unreliable here: setproctitle reuses that memory.)
        node = cluster["state"] / "nodes" / name
        assert psutil.Process(data["services"][name]["pid"]).cwd() == str(node)
        assert (node / "tmp").is_dir()
    # The metadata DB is the embedded PostgreSQL, the staging bucket exists and is empty.
    assert data["metadata_dsn"].startswith("postgresql://") and data["metadata_dsn"].endswith("/airflow")
    assert _s3(data).list_objects_v2(Bucket=data["s3"]["bucket"]).get("KeyCount") == 0
    print(f"make cluster took {cluster['up_s']:.1f}s")


def test_clean_run_defers_to_the_triggerer_and_runs_on_both_workers(cluster):
    data, api, fake = cluster["data"], cluster["api"], cluster["fake"]
    fake.close_gate("retrieveFineTuningJob")
    t0 = time.monotonic()
    api.trigger(RUN_CLEAN, DEMO_LOGICAL_DATE, RUN_CONF)

    # -- while the fine-tuning job runs: the wait is on the triggerer, no worker slot is held
    def poll_held() -> bool:
        assert api.run(RUN_CLEAN)["state"] not in ("failed", "success"), api.tis(RUN_CLEAN)
        return fake.arrived["retrieveFineTuningJob"].is_set()

    _fail_on_timeout("the trigger's first poll of the fine-tuning job", poll_held, 180, interval=1.0)
    try:
        train = api.ti(RUN_CLEAN, "train_challenger")
        assert train["state"] == "deferred", train
        trigger = train["trigger"]
        assert trigger and trigger["classpath"] == TRIGGER_CLASS, train
        jobs = api.get("/api/v2/jobs?job_type=TriggererJob&limit=100")["jobs"]
        triggerer_job = next(j for j in jobs if j["id"] == trigger["triggerer_id"])
        assert triggerer_job["hostname"] == "triggerer" and triggerer_job["state"] == "running", triggerer_job
        # The poll that is being held comes from the triggerer's process; no worker talks to the fake.
        assert set(_processes_connected_to(data, fake.port)) == {"triggerer"}
        pool = api.get("/api/v2/pools/default_pool")
        assert (pool["running_slots"], pool["deferred_slots"]) == (0, 1), pool
        active = _celery_active(cluster["state"])
        assert sorted(name.split("@")[0] for name in active) == list(WORKERS), active
        assert all(tasks == [] for tasks in active.values()), active
        assert api.ti(RUN_CLEAN, "train_challenger")["state"] == "deferred"
    finally:
        fake.open_gate("retrieveFineTuningJob")

    run = api.wait_run(RUN_CLEAN, timeout=240)
    elapsed = time.monotonic() - t0
    tis = api.tis(RUN_CLEAN)
    ran = {t: ti for t, ti in tis.items() if ti["state"] == "success"}
    assert set(ran) == {
        "extract_feedback",
        "validate_feedback",
        "compute_rewards",
        "build_training_sets",
        "train_challenger",
        "evaluate_golden_set",
        "gate",
        "deploy_challenger",
        "notify",
    }, {t: ti["state"] for t, ti in tis.items()}
    assert tis["watcher"]["state"] == "skipped"
    hosts = {t: ti["hostname"] for t, ti in ran.items()}
    assert set(hosts.values()) == set(WORKERS), f"tasks did not run on both workers: {hosts}"
    assert all(ti["queue"] == "default" and ti["try_number"] == 1 for ti in ran.values())
    assert fake.jobs_created == 1

    # -- every artifact went through S3 staging; XCom carries only URIs into the bucket
    artifacts = _artifacts(data, RUN_CLEAN)
    assert {"report.json", "report.html", "model_spec.json"} <= set(artifacts), sorted(artifacts)
    assert len(artifacts) >= 10, sorted(artifacts)
    bucket_root = f"s3://{data['s3']['bucket']}/"
    for task_id in (
        "extract_feedback",
        "validate_feedback",
        "compute_rewards",
        "build_training_sets",
        "train_challenger",
        "evaluate_golden_set",
        "gate",
    ):
        text = json.dumps(api.summary(RUN_CLEAN, task_id))
        assert "file://" not in text and "/tmp/" not in text, (task_id, text)
        assert bucket_root in text, (task_id, text)

    # -- the decision is in the ml tables
    with _feedback_db(data) as conn:
        verdict, version_id, report_uri = conn.execute(
            "SELECT verdict, version_id, report_uri FROM ml.golden_runs WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, RUN_CLEAN),
        ).fetchone()
        backend, gate_passed = conn.execute(
            "SELECT spec->>'backend', gate_passed FROM ml.model_versions WHERE version_id = %s", (version_id,)
        ).fetchone()
        deployment = conn.execute(
            "SELECT version_id, traffic_share FROM ml.deployments WHERE alias = 'challenger'"
        ).fetchone()
        job = conn.execute(
            "SELECT status, remote_job_id FROM ml.training_jobs WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, RUN_CLEAN),
        ).fetchone()
    assert verdict == "pass" and report_uri.startswith(bucket_root), (verdict, report_uri)
    assert (backend, gate_passed) == ("openai", True)
    assert deployment[0] == version_id and float(deployment[1]) == pytest.approx(0.05), deployment
    assert job[0] == "succeeded" and job[1] in fake.jobs
    RESULTS["clean"] = {"artifacts": artifacts, "version_id": version_id, "elapsed": elapsed}
    print(f"clean run: {elapsed:.1f}s, hosts {hosts}, {len(artifacts)} artifacts, {run['state']}")


def test_killed_worker_mid_task_the_run_completes_on_the_other_worker(cluster):
    assert "clean" in RESULTS, "needs the clean run of the previous test"
    data, api, fake = cluster["data"], cluster["api"], cluster["fake"]
    fake.close_gate("createChatCompletion")
    t0 = time.monotonic()
    api.trigger(RUN_FAILOVER, DEMO_LOGICAL_DATE + timedelta(hours=1), RUN_CONF)

    # -- evaluate_golden_set is classifying the golden set (held by the fake) on one worker
    def classifying() -> bool:
        assert api.run(RUN_FAILOVER)["state"] not in ("failed", "success"), api.tis(RUN_FAILOVER)
        return fake.arrived["createChatCompletion"].is_set()

    try:
        _fail_on_timeout("evaluate_golden_set to call the model", classifying, 240, interval=1.0)
        evaluate = api.ti(RUN_FAILOVER, "evaluate_golden_set")
        assert evaluate["state"] == "running" and evaluate["try_number"] == 1, evaluate
        victim = evaluate["hostname"]
        assert victim in WORKERS, evaluate
        survivor = next(w for w in WORKERS if w != victim)
        talking = _processes_connected_to(data, fake.port)
        assert set(talking) == {victim}, f"the task's requests should come from {victim}: {talking}"

        # -- kill the worker like a lost machine: SIGKILL to every process of it at once
        record = data["services"][victim]
        killed = fc.kill_service(record, signal.SIGKILL)
        assert record["pid"] in killed and talking[victim] <= set(killed), (killed, talking)
        _fail_on_timeout(f"{victim}'s processes to die", lambda: not fc.service_processes(record), 30, 0.2)
        killed_at = time.monotonic()
    finally:
        fake.open_gate("createChatCompletion")

    run = api.wait_run(RUN_FAILOVER, timeout=300)
    recovered_s = time.monotonic() - killed_at
    tis = api.tis(RUN_FAILOVER)
    evaluate = tis["evaluate_golden_set"]
    assert (evaluate["state"], evaluate["try_number"], evaluate["hostname"]) == ("success", 2, survivor), (
        evaluate
    )
    first, second = api.tries(RUN_FAILOVER, "evaluate_golden_set")
    assert (first["try_number"], first["hostname"], first["state"]) == (1, victim, "failed"), first
    assert (second["try_number"], second["hostname"], second["state"]) == (2, survivor, "success"), second
    # Everything after the kill ran on the surviving worker.
    for task_id in ("gate", "deploy_challenger", "notify"):
        assert (tis[task_id]["state"], tis[task_id]["hostname"]) == ("success", survivor), tis[task_id]
    assert tis["watcher"]["state"] == "skipped"

    # -- same artifacts as the clean run
    clean, failover = RESULTS["clean"]["artifacts"], _artifacts(data, RUN_FAILOVER)
    assert sorted(failover) == sorted(clean)
    differing = sorted(k for k in clean if clean[k] != failover[k])
    assert set(differing) <= set(RUN_SPECIFIC), f"artifacts that should be identical differ: {differing}"
    identical = sorted(k for k in clean if clean[k] == failover[k])
    assert len(identical) >= 10 and any(k.endswith(".parquet") for k in identical), identical
    for key in sorted(k for k in RUN_SPECIFIC if k.endswith(".json")):
        a = _normalized(json.loads(clean[key]), RUN_CLEAN)
        b = _normalized(json.loads(failover[key]), RUN_FAILOVER)
        assert a == b, f"{key} differs beyond the run's identity and latencies"

    with _feedback_db(data) as conn:
        verdict, version_id = conn.execute(
            "SELECT verdict, version_id FROM ml.golden_runs WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, RUN_FAILOVER),
        ).fetchone()
        golden_rows = conn.execute(
            "SELECT count(*) FROM ml.golden_runs WHERE dag_id = %s AND run_id = %s", (DAG_ID, RUN_FAILOVER)
        ).fetchone()[0]
        deployment = conn.execute(
            "SELECT version_id FROM ml.deployments WHERE alias = 'challenger'"
        ).fetchone()
    assert verdict == "pass" and golden_rows == 1 and deployment == (version_id,)
    assert fake.jobs_created == 2  # one fine-tuning job per run, none doubled by the retry
    print(
        f"failover run: {time.monotonic() - t0:.1f}s ({recovered_s:.1f}s after killing {victim}); "
        f"{len(identical)} byte-identical artifacts, equal after normalizing: {differing}; {run['state']}"
    )


def test_status_reports_the_dead_worker_and_make_cluster_down_stops_everything_by_pid(cluster):
    state, data = cluster["state"], cluster["data"]
    result = subprocess.run(
        [sys.executable, "-m", "feedbackloop.cluster", "status", "--state", str(state), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(result.stdout)
    # The previous test killed one worker: status says so and exits non-zero.
    dead = {n for n, s in report["services"].items() if not s["alive"]}
    assert result.returncode == 1 and len(dead) == 1 and dead <= set(WORKERS), report
    alive = {n: [p.pid for p in fc.service_processes(r)] for n, r in data["services"].items()}
    assert sum(bool(v) for v in alive.values()) == len(data["services"]) - 1, alive

    down_s = _make("cluster-down", state)
    left = {n: [p.pid for p in fc.service_processes(r)] for n, r in data["services"].items()}
    assert not any(left.values()), left
    import psutil

    assert not psutil.pid_exists(data["pg"]["pid"]) or psutil.Process(data["pg"]["pid"]).status() == "zombie"
    for pids in alive.values():
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", pid
    # Idempotent: a second down finds nothing to stop.
    again = subprocess.run(
        [sys.executable, "-m", "feedbackloop.cluster", "down", "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "nothing runs" in again.stdout, again.stdout + again.stderr
    print(f"make cluster-down: {down_s:.1f}s")
