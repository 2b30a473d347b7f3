"""Shared machinery of the security tests in tests/reliability (secrets, PII, SQL, DB role).

* :func:`scan` looks for exact values (secrets, PII) in bytes of any kind: raw text, URL- or
  base64-encoded forms, the rows of a (compressed) Parquet file, zlib / gzip payloads.
* :func:`hostile_run` runs ``feedback_retraining`` once per session the way production runs
  it, with everything an attacker or a careless input could bring (see its docstring), and
  collects everything the run left behind for the tests to inspect: console/task logs,
  XComs, the whole Airflow metadata DB, every staged object, every Slack and model request.
  Several test modules inspect the same run (one run costs ~20 s), so it is memoised here
  (a module-level cache), not in a conftest fixture of another suite.
* :class:`Figures` records the counts the tests observed (each test module has a
  ``figures`` fixture returning one); they are written to
  ``<pytest basetemp>/security_summary.json`` (and ``$FEEDBACKLOOP_SECURITY_SUMMARY`` when
  set) for ``benchmarks/reliability_report.py`` and RELIABILITY.md.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import secrets
import sqlite3
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from tests.support import INTERVAL, PIPELINE_ROLE, RUN_DATE, feedback_db_connection, pipeline_password

from feedbackloop import db

SUMMARY_ENV = "FEEDBACKLOOP_SECURITY_SUMMARY"
DAG_ID = "feedback_retraining"
CANARY = "flcanary"  # every planted secret contains it, so a human can grep for it too

# --------------------------------------------------------------------------- figures

_FIGURES: dict[str, dict[str, Any]] = {}


class Figures:
    """Counts observed by the tests, merged per section and written after every record."""

    def __init__(self, basetemp: Path) -> None:
        self.targets = [basetemp / "security_summary.json"]
        if os.environ.get(SUMMARY_ENV):
            self.targets.append(Path(os.environ[SUMMARY_ENV]))

    def record(self, section: str, **values: Any) -> None:
        _FIGURES.setdefault(section, {}).update(values)
        self._write()

    def add_case(self, section: str, case: str, detail: Any) -> None:
        """One bad input tried (``case``) and what was observed (e.g. the error message)."""
        cases = _FIGURES.setdefault(section, {}).setdefault("cases", {})
        cases[case] = detail
        _FIGURES[section]["tried"] = len(cases)
        self._write()

    def _write(self) -> None:
        data = json.dumps(_FIGURES, indent=2, sort_keys=True, default=str) + "\n"
        for target in self.targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data)


# --------------------------------------------------------------------------- scanner


@dataclass(frozen=True)
class Hit:
    source: str  # where: "log", "xcom:<task>/<key>", "staged:<key>", "slack[0]", ...
    view: str  # how it was read: "raw", "parquet-rows", "zlib", ...
    name: str  # which secret / PII value
    form: str  # which encoding of it matched: "raw", "url", "base64", "digits", ...


def encoded_forms(value: str) -> dict[str, bytes]:
    """``value`` as it may appear in text: raw, URL-encoded, base64 (at every alignment)."""
    raw = value.encode()
    forms = {"raw": raw, "url": quote(value, safe="").encode(), "url+": quote_plus(value).encode()}
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        # Drop the groups that mix in the padding or the bytes after the value.
        core = encoded[4 if pad else 0 : len(encoded) - 4]
        if len(core) >= 12:
            forms[f"base64@{pad}"] = core.encode()
            forms[f"base64url@{pad}"] = core.replace("+", "-").replace("/", "_").encode()
    return forms


_DIGIT_SEPARATORS = re.compile(rb"(?<=\d)[ \-.()/]+(?=\d)")


def views(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Every readable view of ``data``: itself, the rows of a Parquet file, a zlib/gzip payload."""
    yield "raw", data
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        yield "parquet-rows", json.dumps(rows, default=_as_text, ensure_ascii=False).encode()
    for name, inflate in (("zlib", zlib.decompress), ("gzip", gzip.decompress)):
        try:
            yield name, inflate(data)
        except Exception:  # noqa: BLE001, S112 - not this kind of payload
            continue


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return str(value)


def scan(
    sources: Mapping[str, bytes | str],
    needles: Mapping[str, str],
    *,
    digits: bool = False,
) -> list[Hit]:
    """Where any of ``needles`` (name -> value) occurs in ``sources`` (name -> content).

    With ``digits``, numbers are also compared without their separators (``4111 1111 ...``
    matches ``4111-1111...`` or ``41111111...``), for phone and card numbers.
    """
    hits: list[Hit] = []
    compiled = {name: encoded_forms(value) for name, value in needles.items()}
    digit_needles = {name: re.sub(r"\D", "", value).encode() for name, value in needles.items() if digits}
    for source, content in sources.items():
        data = content.encode() if isinstance(content, str) else bytes(content)
        for view, text in views(data):
            lowered = text.lower()
            for name, forms in compiled.items():
                for form, needle in forms.items():
                    haystack = lowered if form == "raw" else text
                    if (needle.lower() if form == "raw" else needle) in haystack:
                        hits.append(Hit(source, view, name, form))
            if digit_needles:
                joined = _DIGIT_SEPARATORS.sub(b"", text)
                for name, needle in digit_needles.items():
                    if len(needle) >= 8 and needle in joined:
                        hits.append(Hit(source, view, name, "digits"))
    return sorted(set(hits), key=lambda h: (h.source, h.name, h.form, h.view))


# --------------------------------------------------------------------- planted inputs

# SQL metacharacters in every text column the app fills (and so every value that reaches a
# query): quotes, statement separators, comments, dollar quoting, placeholders of every
# driver style, backslashes. The canaries would leave traces if executed: a table
# public.flcanary_injected, a file /tmp/flcanary_injected, deleted or changed rows.
SQL_PAYLOADS: tuple[str, ...] = (
    "'; DROP TABLE app.predictions; --",
    "x'); DELETE FROM ml.model_versions; --",
    '"; CREATE TABLE public.flcanary_injected (x int); --',
    "' OR '1'='1",
    "%s %(id)s {0} $1 ? :name",
    "back\\slash \\N \\x27 \\'",
    "$$; SELECT pg_terminate_backend(pg_backend_pid()); $$",
    "/* comment */ -- trailing; ROLLBACK;",
    "Robert'); UPDATE ml.deployments SET traffic_share = 1;--",
    "';COPY (SELECT 1) TO PROGRAM 'touch /tmp/flcanary_injected';--",
    'O\'Brien "quoted" `tick` ; \t tab',
)
INJECTION_TABLE = "public.flcanary_injected"
INJECTION_FILE = Path("/tmp/flcanary_injected")  # noqa: S108 - what the COPY canary would create

# Personal data in the inputs; each value is one the redactor detects (tests/unit/test_pii.py
# measures that on the labelled corpus). Unique strings, so a hit cannot be a coincidence.
PII_EMAILS: tuple[str, ...] = (
    "maria.gonzalez.flc@example.org",
    "j.smith+billing.flc@mail.example.co.uk",
    "OKONKWO.FLC@EXAMPLE.NET",
    "li.wei_flc@example.com",
)
PII_PHONES: tuple[str, ...] = ("+1 (415) 555-0132", "+44 20 7946 0321", "(212) 555-0187", "06 12 34 56 79")
PII_CARDS: tuple[str, ...] = (
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "4012 8888 8888 1881",
)


def pii_needles() -> dict[str, str]:
    """name -> raw value of every planted PII value (plus email local parts, a partial leak)."""
    needles: dict[str, str] = {}
    for i, email in enumerate(PII_EMAILS):
        needles[f"email{i}"] = email
        needles[f"email{i}-local"] = email.split("@")[0]
    needles.update({f"phone{i}": v for i, v in enumerate(PII_PHONES)})
    needles.update({f"card{i}": v for i, v in enumerate(PII_CARDS)})
    return needles


def _hostile_rows(rng_seed: int = 7) -> list[dict[str, Any]]:
    """Feedback records whose every text field carries SQL metacharacters and whose email
    carries personal data; two name an unknown category (they must be quarantined, not lost)."""
    import random

    from feedbackloop.golden import default_taxonomy

    rng = random.Random(rng_seed)
    categories = list(default_taxonomy().category_ids)
    start, end = INTERVAL
    span = (end - start).total_seconds()
    rows = []
    for i, payload in enumerate(SQL_PAYLOADS * 2):
        email, phone, card = PII_EMAILS[i % 4], PII_PHONES[(i + 1) % 4], PII_CARDS[(i + 2) % 4]
        predicted = rng.choice(categories)
        corrected = rng.choice([c for c in categories if c != predicted])
        if i in (3, 14):
            corrected = f"bills{payload}"  # unknown category: quarantined with a reason
        at = start + timedelta(seconds=span * (i + 0.5) / (2 * len(SQL_PAYLOADS)))
        rows.append(
            {
                "email_id": f"he-{i:02d}-{payload}",
                "prediction_id": f"hp-{i:02d}-{payload}",
                "correction_id": f"hc-{i:02d}-{payload}",
                "action_feedback_id": f"ha-{i:02d}-{payload}",
                "event_id": f"hv-{i:02d}-{payload}",
                "user_id": f"user-{payload}",
                "model_version": f"model-{payload}",
                "sender": f"Maria Gonzalez <{email}>",
                "subject": f"Question about my bill {payload}",
                "body": (
                    f"Hello,\n\nplease write to {email} or call me on {phone}. My card {card} was "
                    f"charged twice for the invoice. Reference: {payload}\n\nThanks"
                ),
                "category": predicted,
                "corrected_category": corrected,
                "note": f"wrong folder, call {phone} {payload}",
                "predicted_at": at - timedelta(minutes=30),
                "created_at": at,
            }
        )
    return rows


def insert_hostile_rows(conn: Any) -> list[dict[str, Any]]:
    """Insert :func:`_hostile_rows` into the app tables (parameterised; as the app would)."""
    rows = _hostile_rows()
    with db.transaction(conn) as cur:
        for r in rows:
            cur.execute(
                "INSERT INTO app.emails (email_id, user_id, sender, subject, body, received_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    r["email_id"],
                    r["user_id"],
                    r["sender"],
                    r["subject"],
                    r["body"].encode(),
                    r["predicted_at"],
                ),
            )
            cur.execute(
                "INSERT INTO app.predictions (prediction_id, email_id, user_id, model_version, variant, category, "
                "confidence, actions, latency_ms, predicted_at) VALUES (%s, %s, %s, %s, 'champion', %s, 0.62, "
                "%s, 180.0, %s)",
                (
                    r["prediction_id"],
                    r["email_id"],
                    r["user_id"],
                    r["model_version"],
                    r["category"],
                    [],
                    r["predicted_at"],
                ),
            )
            cur.execute(
                "INSERT INTO app.category_corrections (correction_id, prediction_id, user_id, corrected_category, "
                "created_at) VALUES (%s, %s, %s, %s, %s)",
                (
                    r["correction_id"],
                    r["prediction_id"],
                    r["user_id"],
                    r["corrected_category"],
                    r["created_at"],
                ),
            )
            cur.execute(
                "INSERT INTO app.action_feedback (action_feedback_id, prediction_id, user_id, missed_actions, "
                "unnecessary_actions, note, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    r["action_feedback_id"],
                    r["prediction_id"],
                    r["user_id"],
                    [],
                    [],
                    r["note"],
                    r["created_at"],
                ),
            )
            cur.execute(
                "INSERT INTO app.engagement_events (event_id, prediction_id, user_id, event_type, created_at) "
                "VALUES (%s, %s, %s, 'opened', %s)",
                (r["event_id"], r["prediction_id"], r["user_id"], r["created_at"]),
            )
    return rows


# ------------------------------------------------------------------------ databases


def create_database(pg_server: Any) -> str:
    """A fresh feedback DB prepared like ``pg_dsn``: app tables, migrations, the pipeline role."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = pg_server.dsn(name)
    with db.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
        db.apply_pipeline_role(conn)
    return dsn


def drop_database(pg_server: Any, dsn: str) -> None:
    import psycopg
    from psycopg import sql

    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


APP_TABLES = ("emails", "predictions", "category_corrections", "action_feedback", "engagement_events")


def table_digests(dsn: str, schema: str = "app") -> dict[str, tuple[int, str]]:
    """(row count, md5 of all rows in key order) per table of ``schema``: equal before and
    after means no row was added, removed or changed."""
    from psycopg import sql

    out: dict[str, tuple[int, str]] = {}
    with db.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' ORDER BY 1",
                (schema,),
            ).fetchall()
        ]
        for table in tables:
            ident = sql.Identifier(schema, table)
            count, digest = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
                ).format(ident)
            ).fetchone()
            out[table] = (int(count), str(digest))
    return out


def dump_schema_rows(dsn: str, schema: str = "ml") -> dict[str, str]:
    """Every row of every table in ``schema`` as JSON text, per table (for scanning)."""
    from psycopg import sql

    out: dict[str, str] = {}
    with db.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
                (schema,),
            ).fetchall()
        ]
        for table in tables:
            rows = conn.execute(
                sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(schema, table))
            ).fetchall()
            out[f"{schema}.{table}"] = "\n".join(r[0] for r in rows)
    return out


def injection_traces(dsn: str) -> list[str]:
    """What an executed payload would have left: the canary table or file."""
    traces = []
    with db.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (INJECTION_TABLE,)).fetchone()[0] is not None:
            traces.append(INJECTION_TABLE)
    if INJECTION_FILE.exists():
        traces.append(str(INJECTION_FILE))
    return traces


# ----------------------------------------------------------------------- hostile run


@dataclass
class RunEvidence:
    """What one ``dag.test()`` run left behind."""

    label: str
    run_id: str
    state: str
    states: dict[str, str]
    xcoms: dict[str, str]  # "<task_id>/<key>" -> JSON text


@dataclass
class HostileRun:
    """Everything the hostile runs left behind; see :func:`hostile_run`."""

    dsn: str
    secrets: dict[str, str]
    runs: dict[str, RunEvidence]
    logs: str  # console output (task logs of dag.test) + every log record, formatted
    metadata_dump: str  # the Airflow metadata DB (SQLite) as SQL text
    staged: dict[str, bytes]  # every object in the staging bucket
    slack_messages: list[dict[str, Any]]
    slack_bodies: list[bytes]
    slack_paths: list[str]
    model_requests: list[Any]  # request bodies the model endpoint received
    s3_authorizations: list[dict[str, str]]  # credential headers the S3 API received
    ml_rows: dict[str, str]
    hostile_rows: list[dict[str, Any]]
    app_before: dict[str, tuple[int, str]]
    app_after: dict[str, tuple[int, str]]
    db_rows_in_interval: int
    base_model: str
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, label: str) -> RunEvidence:
        return self.runs[label]

    @property
    def staged_prefix(self) -> str:
        return f"staging/{DAG_ID}/"

    def staged_for(self, label: str) -> dict[str, bytes]:
        from feedbackloop.staging import run_key

        prefix = f"{self.staged_prefix}{run_key(self.runs[label].run_id)}/"
        return {k[len(prefix) :]: v for k, v in self.staged.items() if k.startswith(prefix)}


_HOSTILE: HostileRun | None = None
_HOSTILE_ERROR: BaseException | None = None


def _canaries() -> dict[str, str]:
    token = secrets.token_hex(8)
    return {
        # The pipeline role's password: random per session (tests/conftest.py), checked by
        # PostgreSQL (scram-sha-256), so a successful run proves it was sent.
        "feedback_db.password": pipeline_password(),
        "feedback_db.wrong_password": f"{CANARY}-pg-wrong-{token}",
        "aws_default.access_key_id": f"AKIA{CANARY.upper()}{token.upper()}",
        "aws_default.secret_access_key": f"{CANARY}-aws-secret-{secrets.token_hex(12)}",
        "aws_default.session_token": f"{CANARY}-aws-session-{secrets.token_hex(12)}",
        "openai_default.api_key": f"sk-{CANARY}-{secrets.token_hex(16)}",
        "slack_alerts.token": f"T0{CANARY.upper()}/B0{CANARY.upper()}/{CANARY}{secrets.token_hex(10)}",
    }


class _LogCollector:
    """A root logging handler that keeps every record, formatted with its arguments."""

    def __init__(self) -> None:
        import logging

        self.lines: list[str] = []
        outer = self

        class Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    text = record.getMessage()
                except Exception:  # noqa: BLE001 - keep the raw parts then
                    text = f"{record.msg} {record.args}"
                if record.exc_info:
                    text += "\n" + logging.Formatter().formatException(record.exc_info)
                outer.lines.append(f"{record.name} {record.levelname} {text}")

        self.handler = Handler(level=logging.DEBUG)

    def __enter__(self) -> _LogCollector:
        import logging

        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.getLogger().removeHandler(self.handler)


def _golden_responder() -> Any:
    """The fake model answers every golden email with its label (so the run passes the gate)."""
    from tests.fakes.openai_server import answer, lookup_responder

    from feedbackloop.golden import load_golden_set
    from feedbackloop.models.base import EmailInput
    from feedbackloop.models.openai_chat import truncate_email

    table = {
        truncate_email(EmailInput.from_golden(g).text): answer(g.category, g.actions, 0.9)
        for g in load_golden_set()
    }
    return lookup_responder(table, default=answer("newsletter", ["read_later"], 0.5))


def _skip_chat_schema_checks(model: Any) -> None:
    """Skip the fake's OpenAPI validation of chat requests and responses (the costliest part
    of its 136 calls per evaluation). The wire format is what tests/integration/
    test_openai_backends.py proves; here only the credentials and the content matter."""
    import copy

    spec = copy.copy(model.spec)  # the loaded spec is shared (cached): change a copy
    spec.operations = {k: v for k, v in spec.operations.items() if k != "createChatCompletion"}
    model.spec = spec
    model.response_check_limit = 0


def _xcoms(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
        return {f"{x.task_id}/{x.key}": json.dumps(x.value, default=str, ensure_ascii=False) for x in rows}


def _metadata_dump() -> str:
    from airflow.configuration import conf

    uri = conf.get("database", "sql_alchemy_conn")
    path = uri.removeprefix("sqlite:///")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return "\n".join(src.iterdump())
    finally:
        src.close()


def _record_s3_authorization(moto: Any, sink: list[dict[str, str]]) -> None:
    """Keep the credential headers of every request moto's WSGI server receives."""
    server = moto._server._server  # ThreadedMotoServer -> werkzeug BaseWSGIServer
    app = server.app

    def recording_app(environ: dict[str, Any], start_response: Any) -> Any:
        sink.append(
            {
                "authorization": environ.get("HTTP_AUTHORIZATION", ""),
                "security_token": environ.get("HTTP_X_AMZ_SECURITY_TOKEN", ""),
            }
        )
        return app(environ, start_response)

    server.app = recording_app


def hostile_run(pg_server: Any, dagbag: Any, capfd: pytest.CaptureFixture[str]) -> HostileRun:
    """Two production-shaped runs of ``feedback_retraining``, once per session (memoised).

    Setup: a feedback DB with ~400 generated feedback rows (1 % malformed) plus 22 hostile
    records (:data:`SQL_PAYLOADS` in every text column, planted PII in sender, subject, body
    and note); the DAG connects as the least-privilege role ``feedbackloop_pipeline`` (its
    password checked by PostgreSQL); staging is an S3 bucket on a local S3 API (moto) reached
    through ``aws_default`` with fake keys and a session token; the challenger is trained by
    the few-shot backend and evaluated through ``openai_default`` against the local fake
    OpenAI API (which refuses any other key); Slack goes to a local fake webhook through
    ``slack_alerts`` (which refuses any other token). Every secret is a recognisable canary.
    The trigger form's ``base_model`` carries SQL metacharacters too.

    * run ``ok``: lenient gate thresholds, must deploy the canary;
    * run ``bad_password``: the next week, ``feedback_db`` with a wrong (canary) password,
      so the failure paths (task errors, failure notification) are exercised too.
    """
    global _HOSTILE, _HOSTILE_ERROR
    if _HOSTILE is not None:
        return _HOSTILE
    if _HOSTILE_ERROR is not None:
        raise RuntimeError("the hostile run failed earlier in this session") from _HOSTILE_ERROR
    try:
        _HOSTILE = _hostile_run(pg_server, dagbag, capfd)
    except BaseException as exc:
        _HOSTILE_ERROR = exc
        raise
    return _HOSTILE


def _hostile_run(pg_server: Any, dagbag: Any, capfd: pytest.CaptureFixture[str]) -> HostileRun:
    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.s3_server import REGION, MotoS3
    from tests.fakes.slack_server import FakeSlackWebhook

    from feedbackloop.synth import iter_app_data, load_app_data

    INJECTION_FILE.unlink(missing_ok=True)
    dsn = create_database(pg_server)
    with db.connect(dsn) as conn:
        load_app_data(conn, iter_app_data(400, 11, INTERVAL[0], INTERVAL[1], malformed_fraction=0.01))
        conn.commit()
        rows = insert_hostile_rows(conn)
    app_before = table_digests(dsn)
    with db.connect(dsn) as conn:
        (in_interval,) = conn.execute(
            "SELECT count(*) FROM ml.feedback_records WHERE feedback_at >= %s AND feedback_at < %s", INTERVAL
        ).fetchone()

    canaries = _canaries()
    base_model = "gpt-4o-mini" + SQL_PAYLOADS[0]
    dag = dagbag.dags[DAG_ID]
    authorizations: list[dict[str, str]] = []
    collector = _LogCollector()
    runs: dict[str, RunEvidence] = {}
    output: list[str] = []
    with (
        MotoS3() as s3,
        FakeSlackWebhook(token=canaries["slack_alerts.token"]) as slack,
        FakeOpenAI(responder=_golden_responder(), api_key=canaries["openai_default.api_key"]) as model,
        pytest.MonkeyPatch.context() as mp,
    ):
        _skip_chat_schema_checks(model)
        _record_s3_authorization(s3, authorizations)
        bucket = s3.create_bucket()
        authorizations.clear()  # the bucket was created by the test, not by the DAG
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)  # only the connection may supply credentials
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_ENDPOINT_URL", s3.endpoint_url)  # belt and braces: never real AWS
        mp.setenv(
            "AIRFLOW_CONN_AWS_DEFAULT",
            json.dumps(
                {
                    "conn_type": "aws",
                    "login": canaries["aws_default.access_key_id"],
                    "password": canaries["aws_default.secret_access_key"],
                    "extra": {
                        "endpoint_url": s3.endpoint_url,
                        "region_name": REGION,
                        "aws_session_token": canaries["aws_default.session_token"],
                    },
                }
            ),
        )
        mp.setenv(
            "AIRFLOW_CONN_OPENAI_DEFAULT",
            json.dumps(
                {
                    "conn_type": "openai",
                    "host": model.base_url,
                    "password": canaries["openai_default.api_key"],
                }
            ),
        )
        mp.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack.connection_json())
        mp.setenv("FEEDBACKLOOP_STAGING_URI", f"s3://{bucket}/staging")
        for task in dag.tasks:  # a failure is a finding to see at once, not to retry for minutes
            mp.setattr(task, "retries", 0)

        conf_ok = {
            "trainer": "fewshot",
            "base_model": base_model,
            "min_accuracy": 0.5,
            "min_critical_accuracy": 0.5,
            "max_ece": 0.5,
            "max_p95_latency_ms": 5000.0,
        }
        plan = [
            ("ok", RUN_DATE, canaries["feedback_db.password"], conf_ok),
            ("bad_password", RUN_DATE + timedelta(days=7), canaries["feedback_db.wrong_password"], conf_ok),
        ]
        capfd.readouterr()  # what came before is not the runs'
        with collector:
            for label, logical_date, password, conf in plan:
                mp.setenv(
                    "AIRFLOW_CONN_FEEDBACK_DB",
                    json.dumps(feedback_db_connection(dsn, PIPELINE_ROLE, password)),
                )
                dr = dag.test(logical_date=logical_date, run_conf=conf)
                captured = capfd.readouterr()
                output.extend([captured.out, captured.err])
                runs[label] = RunEvidence(
                    label=label,
                    run_id=dr.run_id,
                    state=str(dr.state),
                    states={ti.task_id: str(ti.state) for ti in dr.get_task_instances()},
                    xcoms=_xcoms(DAG_ID, dr.run_id),
                )
        dag_authorizations = list(authorizations)  # the reads below are the test's own
        client = s3.client()
        staged = {
            key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in s3.object_keys(bucket)
        }
        slack_messages = list(slack.messages)
        slack_bodies = [r["body"] for r in slack.requests]
        slack_paths = [r["path"] for r in slack.requests]
        model_requests = [r.body for r in model.requests]
        model_statuses = [r.status for r in model.requests]
    return HostileRun(
        dsn=dsn,
        secrets=canaries,
        runs=runs,
        logs="\n".join(output) + "\n" + "\n".join(collector.lines),
        metadata_dump=_metadata_dump(),
        staged=staged,
        slack_messages=slack_messages,
        slack_bodies=slack_bodies,
        slack_paths=slack_paths,
        model_requests=model_requests,
        s3_authorizations=dag_authorizations,
        ml_rows=dump_schema_rows(dsn),
        hostile_rows=rows,
        app_before=app_before,
        app_after=table_digests(dsn),
        db_rows_in_interval=int(in_interval),
        base_model=base_model,
        extra={"model_statuses": model_statuses},
    )
