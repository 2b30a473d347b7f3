"""Email classification through any OpenAI-compatible chat completions endpoint.

Works with OpenAI, Azure OpenAI, vLLM, Ollama, Together, ...: the caller builds an
``openai.OpenAI`` client from the ``openai_default`` connection (base URL + key) and passes
it in; this module never reads credentials.

**Request.** System prompt (the one fine-tuning examples are trained with,
:func:`feedbackloop.datasets.system_prompt`, unless given), optional exemplar messages (the
few-shot backend), then the email as the user message. Structured output:
``response_format={"type": "json_schema", "json_schema": {"strict": true, ...}}`` whose
schema constrains ``category`` to the taxonomy's category enum and ``actions`` to the action
vocabulary. Deterministic decoding: ``temperature=0`` and a fixed ``seed``.

**Confidence.** ``logprobs=True`` and ``top_logprobs``: the confidence is the joint
probability of the tokens that spell the category value (``exp`` of the sum of their
logprobs), i.e. the model's probability of that category given the prompt. With schema
constrained decoding every other token of the answer is forced, so this is the only
uncertain part of the category decision.

**Fallback without logprobs.** Some endpoints return no ``logprobs`` (older vLLM/Ollama
builds, deployments that disable them) or tokens that do not spell the answer. The
prediction then gets :data:`FALLBACK_CONFIDENCE` (0.5, configurable) and the detailed result
:attr:`ChatResult.confidence_source` is ``"fallback"``. 0.5 is deliberately below the
brief's 0.70 human-review threshold: an answer whose confidence cannot be measured goes to a
human instead of being auto-accepted. Calibration metrics over such predictions mean
nothing; :meth:`OpenAIChatClassifier.classify_detailed` lets evaluation count them.

**Malformed answers** (not JSON, not an object, a category outside the taxonomy, an action
outside the vocabulary) become an invalid :class:`Prediction` (``valid=False``) carrying
the raw text; they never raise. Actions that are in the vocabulary but not allowed for the
chosen category are dropped (the prediction stays valid) and reported in the detailed result.

**Transport.** Bounded concurrency (a ``ThreadPoolExecutor``, default 16 workers), an
optional client-side token bucket (requests per second), and our own retries: the SDK's
``max_retries`` is forced to 0 so that every retry is visible, testable and bounded. 429,
408, 409, 5xx, timeouts and dropped connections are retried with exponential backoff and
jitter; a ``retry-after-ms`` / ``Retry-After`` header is honoured (plus up to 10% jitter so
that 16 workers do not return at once). Every email has a total deadline covering all its
attempts and waits. Other 4xx errors (bad key, unknown model, invalid request) are not
retried. When an email still fails, the default (``on_error="raise"``) stops the batch
quickly and raises :class:`ClassificationError` (an outage must not look like a bad
model); ``on_error="invalid"`` records it as an invalid prediction instead.

Results are returned in input order.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from feedbackloop.models.base import EmailInput, ModelSpec, Prediction

if TYPE_CHECKING:
    from feedbackloop.golden import Taxonomy
    from feedbackloop.staging import Staging

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY: Final = 16
FALLBACK_CONFIDENCE: Final = 0.5
SCHEMA_NAME: Final = "email_classification"
# The user message is cut here (about 5k tokens by the chars/4 rule): enough for any real
# email's signal, and it bounds the cost of a pathological one (MAX_BODY_BYTES is 1 MB).
MAX_EMAIL_CHARS: Final = 20_000
_TRUNCATION_MARK: Final = "\n[... truncated]"
RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
_SKIPPED: Final = "skipped after an earlier email failed"

ConfidenceSource = Literal["logprobs", "fallback", "none"]


class ClassificationError(RuntimeError):
    """Emails could not be classified after retries (``on_error="raise"``).

    Attributes:
        failures: ``(email_id, error description)`` for each email that failed.
    """

    def __init__(self, message: str, failures: Sequence[tuple[str, str]]):
        super().__init__(message)
        self.failures = list(failures)


class DeadlineExceeded(TimeoutError):
    """An email's total deadline ran out before a usable answer arrived."""


class _Aborted(Exception):
    """Another email of the batch failed (``on_error="raise"``): stop early."""


@dataclass(frozen=True)
class ChatSettings:
    """Transport and decoding settings of :class:`OpenAIChatClassifier`.

    Attributes:
        concurrency: Parallel requests (worker threads).
        requests_per_second: Client-side rate limit (token bucket); None: no limit.
        burst: Token bucket capacity (requests that may start back to back).
        max_attempts: Attempts per email, the first one included.
        backoff_base_s: First backoff; doubles per attempt, with jitter in [50%, 100%].
        backoff_max_s: Cap of one backoff.
        attempt_timeout_s: Timeout of one HTTP request.
        deadline_s: Total time budget of one email (all attempts, waits, rate limiting).
        seed: Sampling seed sent with every request (with ``temperature=0``).
        temperature: Sampling temperature.
        max_completion_tokens: Answer length cap.
        token_limit_param: ``"max_completion_tokens"`` (OpenAI) or ``"max_tokens"`` (older
            OpenAI-compatible servers).
        response_format: ``"json_schema"`` (structured output), ``"json_object"`` or
            ``"none"`` for endpoints without structured output support.
        strict_schema: ``strict`` flag of the JSON schema.
        logprobs: Ask for logprobs (switch off for endpoints that reject the parameter).
        top_logprobs: Alternatives per token position (0-20).
        fallback_confidence: Confidence used when no logprobs are available.
        max_email_chars: The email text is cut to this length.
        on_error: ``"raise"``: fail the batch when an email cannot be classified after
            retries; ``"invalid"``: record an invalid prediction for it.
        jitter_seed: Seed of the backoff jitter (timing only; never affects predictions).
    """

    concurrency: int = DEFAULT_CONCURRENCY
    requests_per_second: float | None = None
    burst: int = 1
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    attempt_timeout_s: float = 30.0
    deadline_s: float = 120.0
    seed: int = 0
    temperature: float = 0.0
    max_completion_tokens: int = 200
    token_limit_param: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens"
    response_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    strict_schema: bool = True
    logprobs: bool = True
    top_logprobs: int = 5
    fallback_confidence: float = FALLBACK_CONFIDENCE
    max_email_chars: int = MAX_EMAIL_CHARS
    on_error: Literal["raise", "invalid"] = "raise"
    jitter_seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            (self.concurrency >= 1, "concurrency must be >= 1"),
            (
                self.requests_per_second is None or self.requests_per_second > 0,
                "requests_per_second must be > 0",
            ),
            (self.burst >= 1, "burst must be >= 1"),
            (self.max_attempts >= 1, "max_attempts must be >= 1"),
            (
                self.backoff_base_s >= 0 and self.backoff_max_s >= self.backoff_base_s,
                "backoff bounds are invalid",
            ),
            (self.attempt_timeout_s > 0 and self.deadline_s > 0, "timeouts must be > 0"),
            (0 <= self.top_logprobs <= 20, "top_logprobs must be in [0, 20]"),
            (0.0 <= self.fallback_confidence <= 1.0, "fallback_confidence must be in [0, 1]"),
            (self.max_email_chars >= 100, "max_email_chars must be >= 100"),
            (self.on_error in ("raise", "invalid"), "on_error must be 'raise' or 'invalid'"),
            (self.response_format in ("json_schema", "json_object", "none"), "unknown response_format"),
            (self.token_limit_param in ("max_completion_tokens", "max_tokens"), "unknown token_limit_param"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ChatSettings: {message}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ChatSettings:
        """Settings from a JSON-like mapping (e.g. a connection extra); unknown keys raise."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ChatSettings field(s): {', '.join(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class ChatResult:
    """A prediction plus how it was obtained.

    Attributes:
        prediction: What the classifier said.
        confidence_source: ``"logprobs"``, ``"fallback"`` (no usable logprobs) or ``"none"``
            (invalid prediction).
        attempts: HTTP attempts made for this email.
        problem: Why the prediction is invalid (None when valid).
        dropped_actions: Vocabulary actions removed because the category does not allow them.
        usage: Token usage reported by the endpoint (``prompt_tokens``, ``completion_tokens``).
    """

    prediction: Prediction
    confidence_source: ConfidenceSource
    attempts: int
    problem: str | None = None
    dropped_actions: tuple[str, ...] = ()
    usage: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------------ pure helpers


def response_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """JSON schema of an answer: ``category`` from the enum, ``actions`` from the vocabulary."""
    return {
        "type": "object",
        "properties": {
            "category": {"type": "string", "enum": list(taxonomy.category_ids)},
            "actions": {"type": "array", "items": {"type": "string", "enum": list(taxonomy.actions)}},
        },
        "required": ["category", "actions"],
        "additionalProperties": False,
    }


def response_format(
    taxonomy: Taxonomy, kind: str = "json_schema", strict: bool = True
) -> dict[str, Any] | None:
    """The ``response_format`` request parameter for a taxonomy (None for ``kind="none"``)."""
    if kind == "none":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "description": "The email's category and the actions the user should take.",
            "strict": strict,
            "schema": response_schema(taxonomy),
        },
    }


@dataclass(frozen=True)
class ParsedAnswer:
    """An answer checked against the taxonomy. ``problem`` is None when it is usable."""

    category: str
    actions: tuple[str, ...]
    dropped_actions: tuple[str, ...]
    problem: str | None


def parse_answer(content: str | None, taxonomy: Taxonomy) -> ParsedAnswer:
    """Check a raw answer: JSON object, known category, actions from the vocabulary.

    Returns:
        The category and the actions allowed for it (duplicates removed, order kept);
        ``problem`` names what is wrong when the answer is unusable.
    """
    if content is None or not content.strip():
        return ParsedAnswer("", (), (), "empty answer")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        return ParsedAnswer("", (), (), f"answer is not JSON: {exc.msg}")
    if not isinstance(data, dict):
        return ParsedAnswer("", (), (), f"answer is a JSON {type(data).__name__}, not an object")
    category = data.get("category")
    if not isinstance(category, str):
        return ParsedAnswer("", (), (), "answer has no string 'category'")
    if category not in taxonomy.category_ids:
        return ParsedAnswer(category, (), (), f"unknown category {category!r}")
    actions = data.get("actions", [])
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        return ParsedAnswer(category, (), (), "'actions' is not a list of strings")
    unknown = [a for a in actions if a not in taxonomy.actions]
    if unknown:
        return ParsedAnswer(category, (), (), f"action(s) outside the vocabulary: {', '.join(unknown)}")
    allowed = set(taxonomy.category(category).actions)
    kept = tuple(dict.fromkeys(a for a in actions if a in allowed))
    dropped = tuple(dict.fromkeys(a for a in actions if a not in allowed))
    return ParsedAnswer(category, kept, dropped, None)


_CATEGORY_VALUE = re.compile(rb'"category"\s*:\s*"((?:[^"\\]|\\.)*)"')


def category_confidence(
    category: str, tokens: Sequence[tuple[str, float, Sequence[int] | None]] | None
) -> float | None:
    """Probability of the category value from token logprobs, or None when unusable.

    The generated tokens are joined (as UTF-8 bytes: a token may end inside a multi-byte
    character) and the ``"category": "..."`` value is located in them, so the result does
    not depend on how an endpoint splits or spaces its tokens.

    Args:
        category: The category the answer names (already parsed from the content).
        tokens: ``(token, logprob, bytes)`` per generated token, as in ``logprobs.content``.

    Returns:
        ``exp(sum of the logprobs of the tokens overlapping the category value)``, clipped
        to [0, 1]; None when there are no tokens or they do not spell ``category``.
    """
    if not tokens or not category:
        return None
    pieces = [bytes(b) if b is not None else tok.encode("utf-8") for tok, _, b in tokens]
    joined = b"".join(pieces)
    m = _CATEGORY_VALUE.search(joined)
    if m is None:
        return None
    try:
        value = json.loads(b'"' + m.group(1) + b'"')
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if value != category:
        return None
    start, end = m.span(1)
    total = 0.0
    offset = 0
    for piece, (_, logprob, _) in zip(pieces, tokens, strict=True):
        lo, hi = offset, offset + len(piece)
        offset = hi
        if hi > start and lo < end:
            total += float(logprob)
    if math.isnan(total):
        return None
    return min(1.0, max(0.0, math.exp(total)))


def unusable_answers_message(model: str, total: int, problems: Sequence[tuple[str, str]]) -> str:
    """One line on the answers a model got wrong in form (not in content), grouped by problem.

    e.g. ``3 of 136 answers from model 'm' were unusable and count as wrong: 2x answer is not
    JSON: Expecting value (e.g. gs-004, gs-017); 1x unknown category 'spaceship' (e.g. gs-020).
    Check that the endpoint serves this model with structured output (response_format
    json_schema) and the taxonomy's categories.``
    """
    groups: dict[str, list[str]] = {}
    for email_id, problem in problems:
        groups.setdefault(problem, []).append(email_id)
    parts = [
        f"{len(ids)}x {problem} (e.g. {', '.join(ids[:3])})"
        for problem, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ]
    return (
        f"{len(problems)} of {total} answers from model {model!r} were unusable and count as wrong: "
        + "; ".join(parts)
        + ". Check that the endpoint serves this model with structured output (response_format "
        "json_schema) and the taxonomy's categories."
    )


def truncate_email(text: str, limit: int = MAX_EMAIL_CHARS) -> str:
    """The email text cut to ``limit`` characters (with a visible mark), else unchanged."""
    if len(text) <= limit:
        return text
    return text[: limit - len(_TRUNCATION_MARK)] + _TRUNCATION_MARK


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Delay a response asks for: ``retry-after-ms``, ``Retry-After`` seconds or HTTP date."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    raw_ms = lower.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = lower.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def classify_error(exc: BaseException) -> tuple[bool, float | None]:
    """Whether an SDK error is worth retrying, and the delay the server asked for.

    Retryable: timeouts and connection errors (including a connection dropped without a
    response), 408 / 409 / 429 and every 5xx. Everything else (400, 401, 403, 404, 422, ...)
    is a request or configuration problem that a retry cannot fix.
    """
    import openai

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retryable = status in RETRYABLE_STATUS or status >= 500
        headers = exc.response.headers if exc.response is not None else None
        return retryable, retry_after_seconds(dict(headers) if headers is not None else None)
    if isinstance(exc, openai.APIConnectionError):  # APITimeoutError is a subclass
        return True, None
    return False, None


def describe_error(exc: BaseException) -> str:
    """Short description of an SDK error (status, code, message), never the request."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    parts = [type(exc).__name__]
    if status is not None:
        parts.append(f"HTTP {status}")
    if code:
        parts.append(str(code))
    return f"{' '.join(parts)}: {message}"


class TokenBucket:
    """Thread-safe token bucket: ``rate`` tokens per second, at most ``capacity`` stored."""

    def __init__(
        self,
        rate: float,
        capacity: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0 or capacity < 1:
            raise ValueError("TokenBucket needs rate > 0 and capacity >= 1")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._tokens = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> bool:
        """Take one token, waiting as needed; False if it would not come before ``deadline``."""
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return True
                wait = (1.0 - self._tokens) / self.rate
            if deadline is not None and now + wait > deadline:
                return False
            self._sleep(wait)


# -------------------------------------------------------------------------- classifier


class OpenAIChatClassifier:
    """:class:`~feedbackloop.models.base.Classifier` over an OpenAI-compatible chat endpoint.

    Args:
        client: An ``openai.OpenAI`` client (base URL and key from the ``openai_default``
            connection). A copy with ``max_retries=0`` is used: retries are ours.
        model: Model id (a base model, a fine-tuned ``ft:...`` id, a vLLM/Ollama model name).
        taxonomy: Categories and actions (output schema, answer checks).
        system_prompt: Defaults to :func:`feedbackloop.datasets.system_prompt`, the prompt
            fine-tuning examples carry.
        exemplar_messages: Chat messages inserted between the system prompt and the email
            (few-shot exemplars: user / assistant pairs).
        prompt_version: Identifier of the prompt (recorded by callers; not sent).
        settings: Transport and decoding settings.
        sleep: Sleep function (tests may speed it up); clock: monotonic clock.
    """

    def __init__(
        self,
        client: Any,
        model: str,
        taxonomy: Taxonomy,
        *,
        system_prompt: str | None = None,
        exemplar_messages: Sequence[Mapping[str, str]] = (),
        prompt_version: str | None = None,
        settings: ChatSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not model:
            raise ValueError("a model id is required")
        if system_prompt is None:
            from feedbackloop.datasets import system_prompt as default_prompt

            system_prompt = default_prompt(taxonomy)
        for m in exemplar_messages:
            if m.get("role") not in ("user", "assistant") or not isinstance(m.get("content"), str):
                raise ValueError(f"exemplar messages must be user/assistant messages with text, got {m!r}")
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.taxonomy = taxonomy
        self.system_prompt = system_prompt
        self.exemplar_messages = tuple(
            {"role": m["role"], "content": m["content"]} for m in exemplar_messages
        )
        self.prompt_version = prompt_version
        self.settings = settings or ChatSettings()
        self._sleep = sleep
        self._clock = clock
        self._bucket = (
            TokenBucket(self.settings.requests_per_second, self.settings.burst, clock=clock, sleep=sleep)
            if self.settings.requests_per_second
            else None
        )
        self._jitter = random.Random(self.settings.jitter_seed)
        self._jitter_lock = threading.Lock()
        self._response_format = response_format(
            taxonomy, self.settings.response_format, self.settings.strict_schema
        )

    # -- request

    def messages_for(self, email: EmailInput) -> list[dict[str, str]]:
        """The chat messages sent for one email."""
        return [
            {"role": "system", "content": self.system_prompt},
            *[dict(m) for m in self.exemplar_messages],
            {"role": "user", "content": truncate_email(email.text, self.settings.max_email_chars)},
        ]

    def request_params(self, email: EmailInput) -> dict[str, Any]:
        """Keyword arguments of ``chat.completions.create`` for one email (without timeout)."""
        s = self.settings
        params: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages_for(email),
            "temperature": s.temperature,
            "seed": s.seed,
            s.token_limit_param: s.max_completion_tokens,
        }
        if self._response_format is not None:
            params["response_format"] = self._response_format
        if s.logprobs:
            params["logprobs"] = True
            if s.top_logprobs:
                params["top_logprobs"] = s.top_logprobs
        return params

    # -- batch

    def classify(self, emails: Sequence[EmailInput]) -> list[Prediction]:
        """One prediction per email, in input order (see the module docstring).

        Unusable answers (not JSON, an unknown category, ...) become invalid predictions,
        which count as wrong; a warning then says how many, why, and for which emails.
        """
        results = self.classify_detailed(emails)
        problems = [(r.prediction.email_id, r.problem) for r in results if r.problem]
        if problems:
            log.warning("%s", unusable_answers_message(self.model, len(results), problems))
        return [r.prediction for r in results]

    def classify_detailed(self, emails: Sequence[EmailInput]) -> list[ChatResult]:
        """Like :meth:`classify`, with confidence source, attempts and problems per email.

        Raises:
            ClassificationError: With ``on_error="raise"``, when an email could not be
                classified after retries (the remaining emails are skipped quickly).
        """
        emails = list(emails)
        if not emails:
            return []
        abort = threading.Event()
        results: list[ChatResult | None] = [None] * len(emails)
        failures: list[tuple[int, str]] = []
        lock = threading.Lock()

        def work(index: int) -> None:
            email = emails[index]
            try:
                if abort.is_set():
                    raise _Aborted
                results[index] = self._classify_one(email, abort)
            except _Aborted:
                with lock:
                    failures.append((index, _SKIPPED))
            except Exception as exc:  # noqa: BLE001 - collected and reported per email below
                description = describe_error(exc)
                if self.settings.on_error == "raise":
                    abort.set()
                    with lock:
                        failures.append((index, description))
                else:
                    results[index] = self._failed_result(email, description)

        workers = min(self.settings.concurrency, len(emails))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-classify") as pool:
            list(pool.map(work, range(len(emails))))
        if failures:
            failures.sort()
            real = [(emails[i].email_id, d) for i, d in failures if d != _SKIPPED]
            first = real[0] if real else (emails[failures[0][0]].email_id, failures[0][1])
            raise ClassificationError(
                f"{len(real) or len(failures)} of {len(emails)} emails could not be classified by "
                f"{self.model!r} (first: {first[0]}: {first[1]}); {len(failures) - len(real)} skipped",
                [(emails[i].email_id, d) for i, d in failures],
            )
        return [r for r in results if r is not None]

    def _failed_result(self, email: EmailInput, description: str) -> ChatResult:
        prediction = Prediction(
            email_id=email.email_id,
            category="",
            confidence=0.0,
            actions=(),
            latency_ms=0.0,
            valid=False,
            raw=f"request failed: {description}",
        )
        return ChatResult(prediction, "none", self.settings.max_attempts, problem=description)

    # -- one email

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2 ** (attempt - 1)))
        with self._jitter_lock:
            return base * self._jitter.uniform(0.5, 1.0)

    def _honour(self, retry_after: float) -> float:
        with self._jitter_lock:
            return retry_after * (1.0 + self._jitter.uniform(0.0, 0.1))

    def _call(self, email: EmailInput, abort: threading.Event) -> tuple[Any, int]:
        """The completion for one email, with retries bounded by attempts and the deadline."""
        s = self.settings
        params = self.request_params(email)
        deadline = self._clock() + s.deadline_s
        attempt = 0
        while True:
            attempt += 1
            if abort.is_set():
                raise _Aborted
            if self._bucket is not None and not self._bucket.acquire(deadline):
                raise DeadlineExceeded(
                    f"rate limiter: no request slot within the {s.deadline_s:g} s deadline"
                )
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"deadline of {s.deadline_s:g} s exceeded after {attempt - 1} attempt(s)"
                )
            try:
                completion = self.client.chat.completions.create(
                    **params, timeout=min(s.attempt_timeout_s, remaining)
                )
                return completion, attempt
            except Exception as exc:
                retryable, retry_after = classify_error(exc)
                if not retryable or attempt >= s.max_attempts:
                    raise
                delay = self._honour(retry_after) if retry_after is not None else self._backoff(attempt)
                remaining = deadline - self._clock()
                if delay >= remaining:
                    raise DeadlineExceeded(
                        f"retry after {delay:.2f} s would pass the {s.deadline_s:g} s deadline "
                        f"(attempt {attempt}: {describe_error(exc)})"
                    ) from exc
                log.debug("retrying %s in %.2f s after %s", email.email_id, delay, describe_error(exc))
                self._sleep(delay)

    def _classify_one(self, email: EmailInput, abort: threading.Event) -> ChatResult:
        started = self._clock()
        completion, attempts = self._call(email, abort)
        latency_ms = (self._clock() - started) * 1000.0
        usage = {}
        if getattr(completion, "usage", None) is not None:
            usage = {
                "prompt_tokens": int(completion.usage.prompt_tokens or 0),
                "completion_tokens": int(completion.usage.completion_tokens or 0),
            }
        choice = completion.choices[0] if completion.choices else None
        content = choice.message.content if choice is not None and choice.message is not None else None
        parsed = parse_answer(content, self.taxonomy)
        if parsed.problem is not None:
            prediction = Prediction(
                email_id=email.email_id,
                category=parsed.category,
                confidence=0.0,
                actions=(),
                latency_ms=latency_ms,
                valid=False,
                raw=content,
            )
            return ChatResult(prediction, "none", attempts, problem=parsed.problem, usage=usage)
        tokens = None
        logprobs = getattr(choice, "logprobs", None)
        if logprobs is not None and getattr(logprobs, "content", None):
            tokens = [(t.token, t.logprob, t.bytes) for t in logprobs.content]
        confidence = category_confidence(parsed.category, tokens)
        source: ConfidenceSource = "logprobs"
        if confidence is None:
            confidence, source = self.settings.fallback_confidence, "fallback"
        prediction = Prediction(
            email_id=email.email_id,
            category=parsed.category,
            confidence=confidence,
            actions=parsed.actions,
            latency_ms=latency_ms,
            valid=True,
            raw=None,
        )
        return ChatResult(prediction, source, attempts, dropped_actions=parsed.dropped_actions, usage=usage)


# ----------------------------------------------------------------------- from a spec


def classifier_for_spec(
    client: Any,
    spec: ModelSpec | Mapping[str, Any],
    taxonomy: Taxonomy,
    *,
    staging: Staging | None = None,
    settings: ChatSettings | None = None,
) -> OpenAIChatClassifier:
    """Build the classifier that serves a registered model spec.

    - ``backend="openai"``: the fine-tuned model ``remote_model_id`` with the fine-tuning
      system prompt (what it was trained with).
    - ``backend="fewshot"``: ``base_model`` with the staged prompt document
      ``prompt_version`` (system prompt + exemplars), loaded and hash-checked from
      ``staging`` (needed).

    Raises:
        ValueError: The backend is not an OpenAI-compatible one, or a field it needs is missing.
    """
    model_spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
    if model_spec.backend == "openai":
        if not model_spec.remote_model_id:
            raise ValueError(f"model spec {model_spec.version_id!r} (backend openai) has no remote_model_id")
        return OpenAIChatClassifier(
            client,
            model_spec.remote_model_id,
            taxonomy,
            prompt_version=model_spec.prompt_version,
            settings=settings,
        )
    if model_spec.backend == "fewshot":
        from feedbackloop.models.fewshot import fewshot_classifier

        if staging is None:
            raise ValueError("a few-shot model spec needs the staging that holds its prompt document")
        return fewshot_classifier(client, model_spec, taxonomy, staging, settings=settings)
    raise ValueError(f"backend {model_spec.backend!r} is not served through an OpenAI-compatible endpoint")


def with_settings(classifier: OpenAIChatClassifier, **changes: Any) -> OpenAIChatClassifier:
    """A copy of ``classifier`` with some settings changed (e.g. ``concurrency=1``)."""
    return OpenAIChatClassifier(
        classifier.client,
        classifier.model,
        classifier.taxonomy,
        system_prompt=classifier.system_prompt,
        exemplar_messages=classifier.exemplar_messages,
        prompt_version=classifier.prompt_version,
        settings=replace(classifier.settings, **changes),
        sleep=classifier._sleep,
        clock=classifier._clock,
    )
