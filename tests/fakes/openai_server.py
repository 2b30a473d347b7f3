"""A loopback fake of the OpenAI API for tests and benchmarks (never production code).

:class:`FakeOpenAI` is a ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0: the OS picks a
free one) that speaks the real wire format of the endpoints the project uses:

- ``POST /v1/files`` (multipart), ``GET /v1/files/{id}``
- ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs`` (cursor list, ``metadata[k]=v``
  filter), ``GET /v1/fine_tuning/jobs/{id}``, ``GET /v1/fine_tuning/jobs/{id}/events``,
  ``POST /v1/fine_tuning/jobs/{id}/cancel``
- ``POST /v1/chat/completions`` (with ``logprobs.content`` when asked for)

Every request body the SDK sends is validated against the request schema of the published
OpenAPI document (``openapi.extract.yaml``: YAML loaded, OpenAPI 3.0-isms such as
``nullable`` and boolean ``exclusiveMinimum`` translated to JSON Schema 2020-12, ``$ref``
resolved through a :mod:`referencing` registry, checked with :mod:`jsonschema`); so is every
response the fake sends, so the fake cannot drift from the real format either. Violations
are recorded in :attr:`FakeOpenAI.violations` (requests) and
:attr:`FakeOpenAI.response_violations`; tests assert both are empty.

Behaviour a test controls:

- **Answers**: ``responder(request) -> ChatAnswer`` decides each chat answer (see
  :func:`lookup_responder`, :func:`keyword_responder`). The answer's ``confidence`` becomes
  the probability of the first token of the category value in ``logprobs``; every other
  token is certain (logprob 0), as with schema-constrained decoding.
- **Fine-tuning jobs** advance one status per ``polls_per_status`` retrievals along
  :attr:`JobPlan.statuses` and end ``succeeded`` (with ``fine_tuned_model``) or ``failed``
  (with :attr:`JobPlan.error_code` / ``error_message``). ``wind_down`` refuses new jobs.
- **Faults**: latency per call, a fraction of 429s (with ``retry-after-ms`` and
  ``retry-after``), 500s and dropped connections (socket closed without a response), drawn
  from a seeded RNG; plus scripted faults per operation (:meth:`FakeOpenAI.inject`),
  including ``drop_after`` (the request is processed, then the response is lost) and
  ``slow`` (the request is processed, then the response waits :attr:`Faults.slow_s`, so a
  client with a shorter timeout gives up: a timeout whose request did take effect).

Usage::

    with FakeOpenAI(responder=lookup_responder(table)) as fake:
        client = fake.client()          # openai.OpenAI bound to the fake, SDK retries off
        ...
        assert fake.violations == []
"""

from __future__ import annotations

import collections
import copy
import hashlib
import itertools
import json
import math
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

ROOT = Path(__file__).resolve().parents[2]
SPEC_ENV = "FEEDBACKLOOP_OPENAI_SPEC"
# Where the OpenAPI extract is looked for, in order: $FEEDBACKLOOP_OPENAI_SPEC, a vendored copy
# in tests/data, then the shared reference folder beside the work tree (also where CI puts it).
SPEC_CANDIDATES: tuple[Path, ...] = (
    ROOT / "tests" / "data" / "openai_openapi.extract.yaml",
    ROOT.parent / "shared" / "reference" / "openai" / "openapi.extract.yaml",
    Path("/work/shared/reference/openai/openapi.extract.yaml"),
)
FAKE_API_KEY = "sk-fake-feedbackloop-0123456789"

JOB_STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
FAULT_KINDS = ("429", "500", "drop", "drop_after", "slow")


# ------------------------------------------------------------------------ spec validation


def find_spec(path: Path | str | None = None) -> Path:
    """The OpenAPI extract to validate against; raises if none of the candidates exists."""
    candidates = [Path(path)] if path else []
    if os.environ.get(SPEC_ENV):
        candidates.append(Path(os.environ[SPEC_ENV]))
    candidates.extend(SPEC_CANDIDATES)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "OpenAI OpenAPI extract not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + f" (set {SPEC_ENV})"
    )


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)


def openapi_to_jsonschema(node: Any) -> Any:
    """Translate one OpenAPI 3.0/3.1 schema object to JSON Schema 2020-12.

    ``nullable: true`` becomes a ``"null"`` type (or an ``anyOf`` with null); boolean
    ``exclusiveMinimum`` / ``exclusiveMaximum`` (3.0 style) become the numeric 2020-12 form.
    Property *names* are never touched, only schema keywords.
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: openapi_to_jsonschema(v) for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [openapi_to_jsonschema(v) for v in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = openapi_to_jsonschema(value)
        elif key.startswith("x-") or key in ("discriminator", "nullable"):
            continue
        else:
            out[key] = value
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(out.get(exclusive), bool):
            if out.pop(exclusive) and bound in out:
                out[exclusive] = out.pop(bound)
    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
            for combinator in ("oneOf", "anyOf"):
                if combinator in out:
                    out[combinator] = [*out[combinator], {"type": "null"}]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Violation:
    """A request or response that does not match the published schema."""

    operation: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.operation} {self.where}: {self.message}"


class SpecValidator:
    """Validates request/response bodies and query parameters against the OpenAPI extract."""

    BASE_URI = "urn:openai-openapi-extract"

    def __init__(self, document: Mapping[str, Any]):
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        schemas = {
            name: openapi_to_jsonschema(schema)
            for name, schema in document.get("components", {}).get("schemas", {}).items()
        }
        resource = Resource.from_contents(
            {"components": {"schemas": schemas}}, default_specification=DRAFT202012
        )
        self._registry = Registry().with_resource(self.BASE_URI, resource)
        self._validator_cls = Draft202012Validator
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.operations: dict[str, dict[str, Any]] = {}
        for path, ops in document.get("paths", {}).items():
            for method, op in ops.items():
                request_ref = None
                for media, content in (op.get("requestBody") or {}).get("content", {}).items():
                    request_ref = (media, content["schema"]["$ref"].rsplit("/", 1)[-1])
                response_ref = None
                # The JSON body (not the text/event-stream form of a streamed chat completion).
                content = (
                    (op.get("responses", {}).get("200") or {}).get("content", {}).get("application/json")
                )
                if content and "$ref" in content.get("schema", {}):
                    response_ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
                self.operations[op["operationId"]] = {
                    "method": method.upper(),
                    "path": path,
                    "request": request_ref,
                    "response": response_ref,
                    "parameters": {
                        p["name"]: (
                            p["in"],
                            openapi_to_jsonschema(p.get("schema", {})),
                            p.get("required", False),
                        )
                        for p in op.get("parameters", [])
                    },
                }

    @classmethod
    def load(cls, path: Path | str | None = None) -> SpecValidator:
        return _load_validator(str(find_spec(path)))

    def _validator(self, schema_name: str) -> Any:
        with self._lock:
            if schema_name not in self._validators:
                ref = {"$ref": f"{self.BASE_URI}#/components/schemas/{schema_name}"}
                self._validators[schema_name] = self._validator_cls(ref, registry=self._registry)
            return self._validators[schema_name]

    def errors(self, schema_name: str, instance: Any) -> list[str]:
        """Messages of every schema error (best match first), empty when valid."""
        from jsonschema.exceptions import best_match

        errs = list(self._validator(schema_name).iter_errors(instance))
        if not errs:
            return []
        best = best_match(errs)
        path = "/".join(str(p) for p in best.absolute_path) or "(root)"
        return [f"{path}: {best.message}"] + [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in errs
            if e is not best
        ]

    def check_params(
        self, operation: str, path_params: Mapping[str, str], query: Sequence[tuple[str, str]]
    ) -> list[str]:
        """Problems with path/query parameters (unknown names, wrong types, deepObject form)."""
        spec = self.operations[operation]["parameters"]
        problems: list[str] = []
        for name, value in path_params.items():
            if name not in spec or spec[name][0] != "path":
                problems.append(f"path parameter {name!r} is not in the spec")
            elif not value:
                problems.append(f"path parameter {name!r} is empty")
        grouped: dict[str, Any] = {}
        for key, value in query:
            m = re.fullmatch(r"([A-Za-z_]+)\[([^\]]*)\]", key)
            if m:
                grouped.setdefault(m.group(1), {})
                if not isinstance(grouped[m.group(1)], dict):
                    problems.append(f"query parameter {m.group(1)!r} given both plain and as deepObject")
                    continue
                grouped[m.group(1)][m.group(2)] = value
            else:
                grouped[key] = value
        for name, value in grouped.items():
            if name not in spec or spec[name][0] != "query":
                problems.append(f"query parameter {name!r} is not in the spec")
                continue
            schema = spec[name][1]
            kind = schema.get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if "integer" in kinds:
                if not (isinstance(value, str) and re.fullmatch(r"-?\d+", value)):
                    problems.append(f"query parameter {name!r} must be an integer, got {value!r}")
            elif "object" in kinds:
                if value == "null" and "null" in kinds:
                    continue
                if not isinstance(value, dict):
                    problems.append(f"query parameter {name!r} must use the deepObject form {name}[k]=v")
            elif "string" in kinds and not isinstance(value, str):
                problems.append(f"query parameter {name!r} must be a string")
        return problems


@cache
def _load_validator(path: str) -> SpecValidator:
    import yaml

    with open(path, encoding="utf-8") as fh:
        return SpecValidator(yaml.safe_load(fh))


# ---------------------------------------------------------------------------- behaviour


@dataclass(frozen=True)
class ChatRequest:
    """What the responder sees of one chat completion request."""

    model: str
    messages: tuple[dict[str, Any], ...]
    body: dict[str, Any]

    @property
    def user_text(self) -> str:
        """Content of the last user message (the email, for the classifier)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                content = m.get("content")
                if isinstance(content, list):
                    return "".join(p.get("text", "") for p in content if isinstance(p, dict))
                return str(content)
        return ""


@dataclass(frozen=True)
class ChatAnswer:
    """One chat answer: raw content plus the probability of the category's first token.

    Attributes:
        content: The assistant message content, returned verbatim (may be malformed).
        confidence: Probability placed on the first token of the ``category`` value.
        alternatives: Runner-up category ids listed in ``top_logprobs`` at that position.
    """

    content: str
    confidence: float = 0.9
    alternatives: tuple[str, ...] = ()


def answer(
    category: str, actions: Iterable[str] = (), confidence: float = 0.9, alternatives: Iterable[str] = ()
) -> ChatAnswer:
    """A well-formed classification answer (category first, as the fine-tuning data has it)."""
    content = json.dumps({"category": category, "actions": list(actions)}, ensure_ascii=False)
    return ChatAnswer(content=content, confidence=confidence, alternatives=tuple(alternatives))


Responder = Callable[[ChatRequest], ChatAnswer]


def lookup_responder(
    table: Mapping[str, ChatAnswer | str], default: ChatAnswer | str | None = None
) -> Responder:
    """Answer from a table keyed by the last user message (the email text).

    A ``str`` value is returned verbatim with confidence 0.9 (handy for malformed answers).
    A missing key answers ``default``; with no default the answer is a refusal-like text.
    """
    frozen = dict(table)

    def respond(request: ChatRequest) -> ChatAnswer:
        value = frozen.get(request.user_text, default)
        if value is None:
            return ChatAnswer(content="I cannot classify this email.")
        return value if isinstance(value, ChatAnswer) else ChatAnswer(content=value)

    return respond


def keyword_responder(
    rules: Sequence[tuple[str, str, Sequence[str]]], fallback: tuple[str, Sequence[str]]
) -> Responder:
    """A deterministic keyword classifier: the first rule whose keyword occurs (case-folded) wins.

    Args:
        rules: ``(keyword, category, actions)`` in priority order.
        fallback: ``(category, actions)`` when no keyword matches (answered at confidence 0.4).
    """

    def respond(request: ChatRequest) -> ChatAnswer:
        text = request.user_text.casefold()
        for keyword, category, actions in rules:
            if keyword.casefold() in text:
                return answer(category, actions, confidence=0.92)
        return answer(fallback[0], fallback[1], confidence=0.4)

    return respond


@dataclass
class JobPlan:
    """How a fine-tuning job created on the fake advances.

    Attributes:
        statuses: Non-terminal statuses walked through, one per ``polls_per_status`` retrievals.
        polls_per_status: Retrievals (``GET /fine_tuning/jobs/{id}``) spent in each status.
        error_code: When set, the job ends ``failed`` with this code and ``error_message``.
        error_message: The failure message.
        trained_tokens: Reported on success.
    """

    statuses: tuple[str, ...] = ("validating_files", "queued", "running")
    polls_per_status: int = 1
    error_code: str | None = None
    error_message: str = "The job failed."
    trained_tokens: int = 12_345


@dataclass
class Faults:
    """Random fault injection, drawn per request from a seeded RNG.

    Attributes:
        latency_s: Service time of every call (network + model time): the response leaves
            this long after the request arrived, whatever the fake's own work took.
        rate_429: Fraction of requests answered 429 with ``retry-after-ms`` / ``retry-after``.
        rate_500: Fraction answered 500.
        rate_drop: Fraction whose connection is closed without a response.
        retry_after_ms: The ``retry-after-ms`` value sent with a 429 (``retry-after`` carries
            the same delay rounded up to whole seconds, as HTTP requires).
        slow_s: How long a scripted ``slow`` fault holds the response back (after the
            request was processed).
        operations: Operation ids the random faults apply to (None: all).
        seed: RNG seed.
    """

    latency_s: float = 0.0
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_drop: float = 0.0
    retry_after_ms: int = 20
    slow_s: float = 3.0
    operations: frozenset[str] | None = None
    seed: int = 0


@dataclass(frozen=True)
class WindDown:
    """Refuse new fine-tuning jobs like a provider that has stopped offering them."""

    status: int = 400
    code: str = "fine_tuning_unavailable"
    message: str = (
        "Fine-tuning is no longer available: self-serve fine-tuning has been deprecated and "
        "new fine-tuning jobs can no longer be created."
    )


@dataclass(frozen=True)
class RecordedRequest:
    operation: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any
    status: int


@dataclass
class _Job:
    body: dict[str, Any]
    id: str
    created_at: int
    plan: JobPlan
    polls: int = 0
    cancelled: bool = False
    finished_at: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    last_status: str | None = None

    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        step = self.polls // max(1, self.plan.polls_per_status)
        if step < len(self.plan.statuses):
            return self.plan.statuses[step]
        return "failed" if self.plan.error_code else "succeeded"


# ------------------------------------------------------------------------------- server


_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"/files"), "createFile"),
    ("GET", re.compile(r"/files/(?P<file_id>[^/]+)"), "retrieveFile"),
    ("POST", re.compile(r"/fine_tuning/jobs"), "createFineTuningJob"),
    ("GET", re.compile(r"/fine_tuning/jobs"), "listPaginatedFineTuningJobs"),
    ("GET", re.compile(r"/fine_tuning/jobs/(?P<fine_tuning_job_id>[^/]+)"), "retrieveFineTuningJob"),
    ("GET", re.compile(r"/fine_tuning/jobs/(?P<fine_tuning_job_id>[^/]+)/events"), "listFineTuningEvents"),
    ("POST", re.compile(r"/fine_tuning/jobs/(?P<fine_tuning_job_id>[^/]+)/cancel"), "cancelFineTuningJob"),
    ("POST", re.compile(r"/chat/completions"), "createChatCompletion"),
)
# GET /files/{id} is not in the extract; its response is still checked as an OpenAIFile.
_RESPONSE_SCHEMA_EXTRA = {"retrieveFile": "OpenAIFile"}


class _HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        self.headers = dict(headers or {})


class FakeOpenAI:
    """The fake server (see the module docstring). Use as a context manager or start()/stop().

    Args:
        responder: Decides chat answers (default: every email is answered ``newsletter``
            at confidence 0.5; tests pass a lookup table or keyword rules).
        api_key: The only bearer token accepted (401 otherwise).
        faults: Random fault injection settings (mutable at run time).
        job_plan: How new fine-tuning jobs advance (mutable at run time).
        logprobs_supported: When False, ``logprobs`` is always null (an endpoint without them).
        reject_invalid: Answer a request that violates the schema with a 400 (as the real
            API does) besides recording the violation.
        response_check_limit: Responses checked against the schema per operation (None:
            all). They are all built by the same code, so a sample proves the format and
            keeps a 136-email benchmark from spending a second in validation.
        spec_path: OpenAPI extract to validate against (see :func:`find_spec`).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        api_key: str = FAKE_API_KEY,
        faults: Faults | None = None,
        job_plan: JobPlan | None = None,
        logprobs_supported: bool = True,
        reject_invalid: bool = True,
        response_check_limit: int | None = 50,
        spec_path: Path | str | None = None,
    ):
        self.responder: Responder = responder or (lambda _req: answer("newsletter", ["read_later"], 0.5))
        self.api_key = api_key
        self.faults = faults or Faults()
        self.job_plan = job_plan or JobPlan()
        self.logprobs_supported = logprobs_supported
        self.reject_invalid = reject_invalid
        self.response_check_limit = response_check_limit
        self._responses_checked: collections.Counter[str] = collections.Counter()
        self.wind_down: WindDown | None = None
        self.spec = SpecValidator.load(spec_path)
        self.violations: list[Violation] = []
        self.response_violations: list[Violation] = []
        self.requests: list[RecordedRequest] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self.faults_injected: collections.Counter[str] = collections.Counter()
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self._scripted: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        self._lock = threading.RLock()
        self._rng = random.Random(self.faults.seed)
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        handler = _make_handler(self)
        server = _Server(("127.0.0.1", 0), handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake OpenAI server is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def client(self, **kwargs: Any) -> Any:
        """An ``openai.OpenAI`` client bound to the fake (SDK retries off unless given)."""
        import openai

        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10.0)
        return openai.OpenAI(api_key=self.api_key, base_url=self.base_url, **kwargs)

    def airflow_connection_json(self) -> str:
        """The ``AIRFLOW_CONN_OPENAI_DEFAULT`` value pointing at this fake."""
        return json.dumps({"conn_type": "openai", "host": self.base_url, "password": self.api_key})

    # -- test controls

    def inject(self, operation: str, *kinds: str) -> None:
        """Queue scripted faults for the next requests of ``operation`` (e.g. ``"429"``)."""
        for kind in kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._scripted[operation].extend(kinds)

    def count(self, operation: str) -> int:
        """Requests of an operation that reached its handler (faulted ones excluded)."""
        with self._lock:
            return self.counts[operation]

    @property
    def jobs_created(self) -> int:
        with self._lock:
            return len(self.jobs)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    # -- internals used by the handler

    def _new_id(self, prefix: str) -> str:
        n = next(self._ids)
        return f"{prefix}-{hashlib.sha256(f'{prefix}:{n}'.encode()).hexdigest()[:24]}"

    def _draw_fault(self, operation: str) -> str | None:
        with self._lock:
            if self._scripted[operation]:
                return self._scripted[operation].popleft()
            f = self.faults
            if f.operations is not None and operation not in f.operations:
                return None
            u = self._rng.random()
        if u < f.rate_429:
            return "429"
        if u < f.rate_429 + f.rate_500:
            return "500"
        if u < f.rate_429 + f.rate_500 + f.rate_drop:
            return "drop"
        return None

    def _record_violation(
        self, operation: str, where: str, messages: Iterable[str], *, response: bool = False
    ) -> None:
        target = self.response_violations if response else self.violations
        with self._lock:
            for message in messages:
                target.append(Violation(operation, where, message))

    def _reject_if_invalid(self, operation: str, where: str, messages: Sequence[str]) -> None:
        self._record_violation(operation, where, messages)
        if messages and self.reject_invalid:
            raise _HttpError(400, f"Invalid {where}: {messages[0]}", code="invalid_request")

    def _check_response(self, operation: str, status: int, payload: Any) -> None:
        with self._lock:
            self._responses_checked[operation] += 1
            if (
                self.response_check_limit is not None
                and self._responses_checked[operation] > self.response_check_limit
            ):
                return
        if status >= 400:
            schema = "ErrorResponse"
        else:
            schema = _RESPONSE_SCHEMA_EXTRA.get(operation) or self.spec.operations.get(operation, {}).get(
                "response"
            )
        if schema:
            self._record_violation(
                operation, f"response {status}", self.spec.errors(schema, payload), response=True
            )

    # -- operations

    def handle(
        self, operation: str, params: dict[str, str], query: list[tuple[str, str]], body: Any
    ) -> tuple[int, Any]:
        handler = getattr(self, f"_op_{operation}")
        with self._lock:
            self.counts[operation] += 1
        return 200, handler(params, query, body)

    def _op_createFile(
        self, params: dict[str, str], query: list[tuple[str, str]], form: dict[str, Any]
    ) -> Any:
        upload = form.get("file")
        if not isinstance(upload, tuple):
            raise _HttpError(400, "'file' is a required property", param="file")
        filename, data = upload
        purpose = form.get("purpose")
        if purpose == "fine-tune":
            for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
                if line.strip():
                    try:
                        json.loads(line)
                    except json.JSONDecodeError:
                        raise _HttpError(
                            400,
                            f"Invalid file format. Line {lineno} is not valid JSON.",
                            param="file",
                            code="invalid_file_format",
                        ) from None
        with self._lock:
            file_id = self._new_id("file")
            obj = {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": filename or "upload",
                "purpose": purpose,
                "status": "processed",
            }
            self.files[file_id] = obj
            self.file_bytes[file_id] = data
        return copy.deepcopy(obj)

    def _op_retrieveFile(self, params: dict[str, str], query: list[tuple[str, str]], body: Any) -> Any:
        with self._lock:
            obj = self.files.get(params["file_id"])
        if obj is None:
            raise _HttpError(404, f"No such File object: {params['file_id']}", param="id")
        return copy.deepcopy(obj)

    def _job_json(self, job: _Job) -> dict[str, Any]:
        status = job.status()
        body = job.body
        method = copy.deepcopy(body.get("method") or {"type": "supervised", "supervised": {}})
        kind = method.get("type", "supervised")
        hyper = dict((method.get(kind) or {}).get("hyperparameters") or {})
        hyper = {
            "batch_size": hyper.get("batch_size", "auto"),
            "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto"),
            "n_epochs": hyper.get("n_epochs", "auto"),
            **({"beta": hyper["beta"]} if "beta" in hyper else {}),
        }
        method.setdefault(kind, {})["hyperparameters"] = hyper
        suffix = body.get("suffix")
        succeeded = status == "succeeded"
        failed = status == "failed"
        return {
            "object": "fine_tuning.job",
            "id": job.id,
            "model": body["model"],
            "created_at": job.created_at,
            "finished_at": job.finished_at if status in TERMINAL_STATUSES else None,
            "fine_tuned_model": (
                f"ft:{body['model']}:fake-org:{suffix or 'custom'}:{job.id[-8:]}" if succeeded else None
            ),
            "organization_id": "org-fake",
            "result_files": [f"file-result-{job.id[-8:]}"] if succeeded else [],
            "status": status,
            "validation_file": body.get("validation_file"),
            "training_file": body["training_file"],
            "hyperparameters": {k: v for k, v in hyper.items() if k != "beta"}
            if kind == "supervised"
            else {},
            "method": method,
            "metadata": body.get("metadata"),
            "error": (
                {"code": job.plan.error_code, "message": job.plan.error_message, "param": None}
                if failed
                else None
            ),
            "trained_tokens": job.plan.trained_tokens if succeeded else None,
            "seed": body.get("seed") if body.get("seed") is not None else 42,
            "estimated_finish": None,
            "integrations": [],
            "user_provided_suffix": suffix,
        }

    def _add_event(
        self, job: _Job, message: str, level: str = "info", data: dict[str, Any] | None = None
    ) -> None:
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{job.id[-8:]}-{len(job.events) + 1:04d}",
                "created_at": job.created_at + len(job.events),
                "level": level,
                "message": message,
                "data": data or {},
                "type": "metrics" if data else "message",
            }
        )

    def _note_status(self, job: _Job) -> None:
        status = job.status()
        if status == job.last_status:
            return
        job.last_status = status
        messages = {
            "validating_files": f"Validating training file: {job.body['training_file']}",
            "queued": "Files validated, moving job to queued state",
            "running": "Fine-tuning job started",
            "succeeded": "The job has successfully completed",
            "failed": f"The job failed: {job.plan.error_message}",
            "cancelled": "The job was cancelled",
        }
        if status == "succeeded":
            self._add_event(job, "Step 10/10: training loss=0.05", data={"step": 10, "train_loss": 0.05})
            self._add_event(job, f"New fine-tuned model created: {self._job_json(job)['fine_tuned_model']}")
        if status in TERMINAL_STATUSES:
            job.finished_at = job.created_at + 60
        self._add_event(job, messages.get(status, status), level="error" if status == "failed" else "info")

    def _op_createFineTuningJob(
        self, params: dict[str, str], query: list[tuple[str, str]], body: dict[str, Any]
    ) -> Any:
        if self.wind_down is not None:
            w = self.wind_down
            raise _HttpError(w.status, w.message, code=w.code)
        with self._lock:
            for name in ("training_file", "validation_file"):
                file_id = body.get(name)
                if file_id is None:
                    continue
                f = self.files.get(file_id)
                if f is None:
                    raise _HttpError(400, f"invalid {name}: {file_id}", param=name, code="invalid_file")
                if f["purpose"] != "fine-tune":
                    raise _HttpError(
                        400, f"File {file_id} has purpose {f['purpose']!r}, expected 'fine-tune'", param=name
                    )
            job = _Job(
                body=copy.deepcopy(body),
                id=self._new_id("ftjob"),
                created_at=int(time.time()),
                plan=copy.deepcopy(self.job_plan),
            )
            self.jobs[job.id] = job
            self._add_event(job, f"Created fine-tuning job: {job.id}")
            self._note_status(job)
            return self._job_json(job)

    def _op_listPaginatedFineTuningJobs(
        self, params: dict[str, str], query: list[tuple[str, str]], body: Any
    ) -> Any:
        after = None
        limit = 20
        wanted: dict[str, str] = {}
        for key, value in query:
            if key == "after":
                after = value
            elif key == "limit":
                limit = max(1, min(100, int(value)))
            elif key.startswith("metadata["):
                wanted[key[len("metadata[") : -1]] = value
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
            jobs = [
                j for j in jobs if all((j.body.get("metadata") or {}).get(k) == v for k, v in wanted.items())
            ]
            if after is not None:
                ids = [j.id for j in jobs]
                jobs = jobs[ids.index(after) + 1 :] if after in ids else []
            page = jobs[:limit]
            return {
                "object": "list",
                "data": [self._job_json(j) for j in page],
                "has_more": len(jobs) > limit,
            }

    def _get_job(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise _HttpError(
                404, f"Could not find fine-tune: {job_id}", code="fine_tune_not_found", param="id"
            )
        return job

    def _op_retrieveFineTuningJob(
        self, params: dict[str, str], query: list[tuple[str, str]], body: Any
    ) -> Any:
        with self._lock:
            job = self._get_job(params["fine_tuning_job_id"])
            if job.status() not in TERMINAL_STATUSES:
                job.polls += 1
            self._note_status(job)
            return self._job_json(job)

    def _op_listFineTuningEvents(
        self, params: dict[str, str], query: list[tuple[str, str]], body: Any
    ) -> Any:
        q = dict(query)
        limit = max(1, min(100, int(q.get("limit", 20))))
        with self._lock:
            job = self._get_job(params["fine_tuning_job_id"])
            events = list(reversed(job.events))  # newest first, as the API lists them
            if "after" in q:
                ids = [e["id"] for e in events]
                events = events[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
            return {"object": "list", "data": copy.deepcopy(events[:limit]), "has_more": len(events) > limit}

    def _op_cancelFineTuningJob(self, params: dict[str, str], query: list[tuple[str, str]], body: Any) -> Any:
        with self._lock:
            job = self._get_job(params["fine_tuning_job_id"])
            if job.status() in TERMINAL_STATUSES:
                raise _HttpError(400, f"Job {job.id} has already {job.status()} and cannot be cancelled")
            job.cancelled = True
            self._note_status(job)
            return self._job_json(job)

    def _op_createChatCompletion(
        self, params: dict[str, str], query: list[tuple[str, str]], body: dict[str, Any]
    ) -> Any:
        request = ChatRequest(
            model=str(body.get("model")), messages=tuple(body.get("messages") or ()), body=body
        )
        result = self.responder(request)
        want_logprobs = bool(body.get("logprobs")) and self.logprobs_supported
        top_n = int(body.get("top_logprobs") or 0)
        logprobs = {"content": _token_logprobs(result, top_n), "refusal": None} if want_logprobs else None
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.messages)
        prompt_tokens = math.ceil(prompt_chars / 4)
        completion_tokens = len(_tokens(result.content))
        return {
            "id": self._new_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": result.content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


def _tokens(text: str) -> list[str]:
    """BPE-like pseudo tokens: words cut into pieces of at most 4 characters, so an id such
    as ``bill_due`` spans several tokens (as it does with a real tokenizer)."""
    out: list[str] = []
    for piece in _TOKEN.findall(text):
        if piece[0].isalnum() or piece[0] == "_":
            out.extend(piece[i : i + 4] for i in range(0, len(piece), 4))
        else:
            out.append(piece)
    return out


_CATEGORY_VALUE = re.compile(r'"category"\s*:\s*"')


def _token_logprobs(result: ChatAnswer, top_n: int) -> list[dict[str, Any]]:
    """``logprobs.content`` for an answer: the first token of the category value carries
    ``log(confidence)``; every other token is certain."""
    tokens = _tokens(result.content)
    m = _CATEGORY_VALUE.search(result.content)
    target = None
    if m:
        pos = 0
        for i, tok in enumerate(tokens):
            if pos >= m.end():
                target = i
                break
            pos += len(tok)
    entries = []
    for i, tok in enumerate(tokens):
        lp = math.log(max(result.confidence, 1e-12)) if i == target else 0.0
        tops = [{"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8"))}]
        if i == target:
            rest = max(0.0, 1.0 - result.confidence)
            for j, alt in enumerate(result.alternatives):
                share = rest * (0.5 ** (j + 1))
                alt_tok = _tokens(alt)[0]
                if share > 0 and alt_tok != tok:
                    tops.append(
                        {"token": alt_tok, "logprob": math.log(share), "bytes": list(alt_tok.encode())}
                    )
        entries.append(
            {"token": tok, "logprob": lp, "bytes": list(tok.encode("utf-8")), "top_logprobs": tops[:top_n]}
        )
    return entries


def _parse_multipart(content_type: str, data: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data
    )
    if not message.is_multipart():
        raise _HttpError(400, "expected a multipart/form-data body")
    form: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form[str(name)] = (filename, payload)
        else:
            form[str(name)] = payload.decode("utf-8")
    return form


class _Server(ThreadingHTTPServer):
    # A large accept backlog: 16+ clients opening connections at once must not hit SYN
    # retransmits (a 1 s stall that would distort latency measurements).
    request_queue_size = 128
    daemon_threads = True


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeOpenAI/1.0"
        # Headers and body go out in separate writes; with Nagle on, the body waits for the
        # client's delayed ACK (~40 ms per response).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            return

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{fake._new_id('r')}")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _wait_latency(self, received: float) -> None:
            # The configured latency is the whole service time of a call: the fake's own
            # work (schema checks) happens inside it, as a real server's would.
            remaining = fake.faults.latency_s - (time.monotonic() - received)
            if remaining > 0:
                time.sleep(remaining)

        def _dispatch(self, method: str) -> None:
            raw = self._read_body()
            received = time.monotonic()
            url = urlsplit(self.path)
            path = url.path[3:] if url.path.startswith("/v1/") else url.path
            query = parse_qsl(url.query, keep_blank_values=True)
            operation = None
            params: dict[str, str] = {}
            for route_method, pattern, op in _ROUTES:
                m = pattern.fullmatch(path)
                if m and route_method == method:
                    operation, params = op, m.groupdict()
                    break
            if operation is None:
                self._send(
                    404,
                    {
                        "error": {
                            "message": f"Unknown request URL: {method} {url.path}",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "unknown_url",
                        }
                    },
                )
                return
            if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                fake._record_violation(operation, "auth", ["missing or wrong bearer token"])
                self._send(
                    401,
                    {
                        "error": {
                            "message": "Incorrect API key provided.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": "invalid_api_key",
                        }
                    },
                )
                return
            fault = fake._draw_fault(operation)
            if fault in ("drop", "429", "500"):
                self._wait_latency(received)
            if fault == "drop":
                with fake._lock:
                    fake.faults_injected["drop"] += 1
                self._drop()
                return
            if fault in ("429", "500"):
                with fake._lock:
                    fake.faults_injected[fault] += 1
                if fault == "429":
                    ms = fake.faults.retry_after_ms
                    payload = {
                        "error": {
                            "message": "Rate limit reached for requests",
                            "type": "requests",
                            "param": None,
                            "code": "rate_limit_exceeded",
                        }
                    }
                    self._send(
                        429, payload, {"retry-after-ms": str(ms), "retry-after": str(math.ceil(ms / 1000))}
                    )
                else:
                    payload = {
                        "error": {
                            "message": "The server had an error while processing your request.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                    self._send(500, payload)
                fake._check_response(operation, 429 if fault == "429" else 500, payload)
                return
            # Validate what the SDK sent against the published request schema.
            spec_op = fake.spec.operations.get(operation)
            body: Any = None
            try:
                if spec_op is not None:
                    fake._reject_if_invalid(
                        operation, "parameters", fake.spec.check_params(operation, params, query)
                    )
                content_type = self.headers.get("Content-Type", "")
                if spec_op is not None and spec_op["request"] is not None:
                    media, schema = spec_op["request"]
                    if media == "multipart/form-data":
                        if not content_type.startswith("multipart/form-data"):
                            raise _HttpError(400, f"expected multipart/form-data, got {content_type!r}")
                        body = _parse_multipart(content_type, raw)
                        as_json = {
                            k: (v[1].decode("latin-1") if isinstance(v, tuple) else v)
                            for k, v in body.items()
                        }
                        fake._reject_if_invalid(operation, "request body", fake.spec.errors(schema, as_json))
                    else:
                        if not content_type.startswith("application/json"):
                            fake._record_violation(
                                operation,
                                "content-type",
                                [f"expected application/json, got {content_type!r}"],
                            )
                        try:
                            body = json.loads(raw or b"null")
                        except json.JSONDecodeError as exc:
                            raise _HttpError(
                                400, f"We could not parse the JSON body of your request: {exc.msg}"
                            ) from None
                        fake._reject_if_invalid(operation, "request body", fake.spec.errors(schema, body))
                elif raw:
                    body = json.loads(raw)
                status, payload = fake.handle(operation, params, query, body)
                headers: dict[str, str] = {}
            except _HttpError as exc:
                status, payload, headers = exc.status, exc.body, exc.headers
            with fake._lock:
                fake.requests.append(RecordedRequest(operation, method, url.path, tuple(query), body, status))
            fake._check_response(operation, status, payload)
            self._wait_latency(received)
            if fault == "slow":
                with fake._lock:
                    fake.faults_injected["slow"] += 1
                time.sleep(fake.faults.slow_s)
                try:
                    self._send(status, payload, headers)
                except OSError:  # the client gave up waiting and closed the connection
                    self.close_connection = True
                return
            if fault == "drop_after":
                with fake._lock:
                    fake.faults_injected["drop_after"] += 1
                self._drop()
                return
            self._send(status, payload, headers)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            self._dispatch("POST")

    return Handler
