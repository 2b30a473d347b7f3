"""No secret leaks: recognisable fake keys in every connection, then everything a run leaves
behind is scanned for them.

The runs are :func:`tests.reliability.security_support.hostile_run`: ``feedback_db`` (the
pipeline role's password, checked by PostgreSQL), ``aws_default`` (access key, secret key,
session token; S3 staging on a local S3 API), ``openai_default`` (API key; the local fake
OpenAI API refuses any other) and ``slack_alerts`` (webhook token; the local fake refuses any
other), one successful run and one that fails on a wrong database password. Scanned: the
task logs (dag.test() prints them; plus every log record and any file under the Airflow
logs folder), every XCom, the whole Airflow metadata DB, every staged object (Parquet rows
and compressed payloads decoded), every Slack payload, every request body sent to the model
endpoint, every row of schema ``ml``. Expected hits: 0. The scanner itself is tested first.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import zlib
from pathlib import Path
from urllib.parse import quote, quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.reliability.security_support import CANARY, Figures, hostile_run, scan

pytestmark = pytest.mark.slow


@pytest.fixture
def hostile(pg_server, dagbag, capfd):
    return hostile_run(pg_server, dagbag, capfd)


@pytest.fixture
def figures(tmp_path_factory):
    return Figures(tmp_path_factory.getbasetemp())


SECRET = f"{CANARY}-planted-0123456789abcdef"
SPECIAL = f"{CANARY}:p@ss/w0rd+x y"  # characters a URL must encode


def _parquet_with(value: str) -> bytes:
    buf = io.BytesIO()
    table = pa.table({"id": ["a", "b"], "note": ["nothing here", f"pre {value} post"]})
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("material", "form"),
    [
        pytest.param(f"INFO connecting with password={SECRET} to db".encode(), "raw", id="log-line"),
        pytest.param(json.dumps({"uri": f"s3://b/k?token={SECRET}"}).encode(), "raw", id="xcom-json"),
        pytest.param(SECRET.upper().encode(), "raw", id="upper-case"),
        pytest.param(_parquet_with(SECRET), "raw", id="zstd-parquet-column"),
        pytest.param(zlib.compress(pickle.dumps({"key": SECRET})), "raw", id="zlib-pickle"),
        pytest.param(
            b"Authorization: Basic " + base64.b64encode(f"user:{SECRET}".encode()),
            "base64@2",
            id="basic-auth",
        ),
        pytest.param(f"https://hooks.example/{quote(SECRET + '/x', safe='')}".encode(), "raw", id="url-path"),
        pytest.param(f"GET /cb?k={quote(SPECIAL, safe='')} 200".encode(), "url", id="url-quoted"),
        pytest.param(f"GET /cb?k={quote_plus(SPECIAL)} 200".encode(), "url+", id="form-encoded"),
    ],
)
def test_the_scanner_finds_a_planted_secret(material, form, figures, request):
    """The scanner is only evidence if it finds what is there, in any encoding a leak takes."""
    secret = SPECIAL if form.startswith("url") else SECRET
    hits = scan({"material": material}, {"planted": secret})
    assert any(h.form == form for h in hits), hits
    figures.add_case("scanner_self_test", request.node.callspec.id, [h.form + "/" + h.view for h in hits])


def test_the_scanner_reports_nothing_on_clean_material():
    clean = {
        "log": b"INFO all good ***",
        "parquet": _parquet_with("nothing secret"),
        "zlib": zlib.compress(b"x" * 100),
    }
    assert scan(clean, {"planted": SECRET}) == []


def test_every_secret_was_really_used_by_the_run(hostile):
    """Zero hits only mean something if the secrets were in play: each service checked them."""
    ok, failed = hostile.run("ok"), hostile.run("bad_password")
    assert ok.state == "success", ok.states
    assert ok.states["deploy_challenger"] == "success"
    # PostgreSQL checked the role's password (scram-sha-256) ...
    assert failed.state == "failed" and failed.states["extract_feedback"] == "failed", failed.states
    assert "password authentication failed" in hostile.logs
    # ... the S3 API saw the connection's access key and session token on every request ...
    keys = hostile.secrets
    assert hostile.s3_authorizations, "the DAG never reached the S3 API"
    assert all(
        f"Credential={keys['aws_default.access_key_id']}/" in a["authorization"]
        and a["security_token"] == keys["aws_default.session_token"]
        for a in hostile.s3_authorizations
    ), hostile.s3_authorizations[:2]
    # ... the model endpoint accepted the API key (it answers 401 to any other) ...
    assert hostile.model_requests and set(hostile.extra["model_statuses"]) == {200}
    # ... and the Slack fake accepted the webhook token (in the URL path, where it belongs).
    assert hostile.slack_messages
    assert all(p.endswith(keys["slack_alerts.token"]) for p in hostile.slack_paths)


def _sources(hostile) -> dict[str, bytes | str]:
    sources: dict[str, bytes | str] = {"task-logs(console+records)": hostile.logs}
    log_dir = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    for path in sorted(p for p in log_dir.rglob("*") if p.is_file()):
        sources[f"log-file:{path.relative_to(log_dir)}"] = path.read_bytes()
    for label, run in hostile.runs.items():
        for key, value in run.xcoms.items():
            sources[f"xcom:{label}:{key}"] = value
    sources["airflow-metadata-db"] = hostile.metadata_dump
    for key, data in hostile.staged.items():
        sources[f"staged:{key}"] = data
    for i, body in enumerate(hostile.slack_bodies):
        sources[f"slack-payload[{i}]"] = body
    for i, body in enumerate(hostile.model_requests):
        sources[f"model-request[{i}]"] = json.dumps(body, default=str)
    for table, rows in hostile.ml_rows.items():
        sources[f"db:{table}"] = rows
    return sources


def test_no_secret_in_logs_xcoms_metadata_artifacts_slack_model_requests_or_db(hostile, figures):
    sources = _sources(hostile)
    hits = scan(sources, hostile.secrets)
    assert hits == [], "secrets leaked:\n" + "\n".join(map(str, hits))

    # Positive controls: the same scan finds what is known to be in each kind of source, so
    # an empty result is not an unread source.
    ok = hostile.run("ok")
    logs = sources["task-logs(console+records)"]
    # The tasks' own log lines are in the captured logs (not only dag.test's bookkeeping).
    for line in ("run outcome: deployed", "extracted ", "password authentication failed"):
        assert line in logs, f"task log line {line!r} was not captured"
    controls = {
        "task-logs(console+records)": ok.run_id,
        "airflow-metadata-db": ok.run_id,
        "slack-payload[0]": "feedback_retraining",
    }
    xcom_key = next(k for k in sources if k.startswith("xcom:ok:extract_feedback/"))
    controls[xcom_key] = "feedback_raw.parquet"
    raw_key = next(k for k in sources if k.endswith("/feedback_raw.parquet"))
    controls[raw_key] = 'O\'Brien "quoted"'  # a payload inside zstd-compressed Parquet rows
    controls["db:ml.model_versions"] = "fewshot"
    for source, needle in controls.items():
        assert scan({source: sources[source]}, {"control": needle}), (
            f"control {needle!r} not found in {source}"
        )

    kinds: dict[str, int] = {}
    for name in sources:
        kind = name.split(":")[0].split("[")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    figures.record(
        "secrets",
        secrets_planted=len(hostile.secrets),
        connections=["feedback_db", "aws_default", "openai_default", "slack_alerts"],
        runs=len(hostile.runs),
        sources_scanned=len(sources),
        sources_by_kind=kinds,
        bytes_scanned=sum(len(v.encode() if isinstance(v, str) else v) for v in sources.values()),
        log_files_in_airflow_logs=kinds.get("log-file", 0),
        slack_payloads=len(hostile.slack_bodies),
        hits=len(hits),
    )
