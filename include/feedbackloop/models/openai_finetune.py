"""OpenAI fine-tuning (supervised and DPO) as an idempotent, resumable training step.

The flow (one training task of one DAG run):

1. :func:`start_or_attach` takes a Postgres advisory lock on the run's job key, then looks
   for the run's job: first in ``ml.training_jobs`` (migration ``0003``), then at the
   provider by listing jobs whose ``metadata`` carries the job key (this finds a job whose
   task was killed between "create" and "record"). An existing job is re-attached to,
   never submitted again.
2. Only when there is none: the cost guard estimates the bill from the staged training file
   (tokens x epochs x price) and refuses above ``max_cost_usd``; the staged JSONL files are
   uploaded (``purpose="fine-tune"``; file ids are recorded and reused on retry) and the job
   is created with ``method={"type": "supervised"|"dpo", ...}``, ``suffix``, ``seed`` and
   ``metadata`` (DAG id, run id, method, job key). The job id is recorded right away, before
   anyone waits. A create call that fails ambiguously (timeout, dropped connection, 5xx:
   the job may exist) is followed by a metadata lookup before it is retried.
3. Waiting is the caller's: a deferrable trigger (``plugins/feedbackloop_airflow/
   openai_training.py``) or :func:`wait_for_job` polls :func:`check_job` /
   :func:`status_from_job`; :func:`raise_for_status` fails loudly on ``failed`` /
   ``cancelled`` with the API's error code and message.
4. :func:`finalize_job` records the outcome and returns the :class:`ModelSpec`
   (``backend="openai"``, ``remote_model_id`` = the fine-tuned model).

When the provider refuses new jobs because fine-tuning is being wound down (OpenAI: no new
self-serve jobs after 2027-01-06 per public reports), :class:`FineTuningUnavailable` names
the alternatives: ``trainer=fewshot`` and ``trainer=local``.

The SDK's own retries are switched off (``max_retries=0``); transient errors (429, 5xx,
timeouts, dropped connections) are retried here with backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from feedbackloop.db import transaction
from feedbackloop.models.base import ModelSpec, build_spec
from feedbackloop.models.openai_chat import classify_error, describe_error

if TYPE_CHECKING:
    import pandas as pd

    from feedbackloop.golden import Taxonomy
    from feedbackloop.models.base import TrainedModel
    from feedbackloop.staging import Staging

log = logging.getLogger(__name__)

Method = Literal["supervised", "dpo"]
METHODS: Final = ("supervised", "dpo")
# The provider's job statuses (FineTuningJob.status in the API schema).
JOB_STATUSES: Final = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
# Row statuses before a remote job exists: pending (being submitted), blocked (cost guard),
# refused (the provider refused to create the job).
LOCAL_STATUSES: Final = ("pending", "blocked", "refused")

DEFAULT_BASE_MODEL: Final = "gpt-4o-mini-2024-07-18"
DEFAULT_N_EPOCHS: Final = 3
DEFAULT_MAX_COST_USD: Final = 25.0
METADATA_KEY: Final = "feedbackloop_job_key"
# Jobs scanned when looking a job up by metadata (newest first); a run's job is recent.
DEFAULT_LIST_LIMIT: Final = 500
ALTERNATIVES: Final = (
    "trainer=fewshot (few-shot prompt optimisation of the base model on the same OpenAI-compatible "
    "endpoint) or trainer=local (the offline scikit-learn backend)"
)
_SUFFIX_OK = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WIND_DOWN_CODES = frozenset({"fine_tuning_unavailable", "fine_tuning_deprecated", "fine_tuning_disabled"})
_WIND_DOWN_WORDS = re.compile(
    r"deprecat|no longer|not available|unavailable|disabled|discontinu|sunset|wound down|wind[- ]down|retired",
    re.IGNORECASE,
)
_FINE_TUNING = re.compile(r"fine[-_ ]?tun", re.IGNORECASE)
_LOCK_TIMEOUT: Final = "60s"


class FineTuneError(RuntimeError):
    """A fine-tuning step failed (bad input, provider error, unknown status)."""


class FineTuneJobFailed(FineTuneError):
    """The remote job ended ``failed`` or ``cancelled``; carries the API's error."""

    def __init__(self, job_id: str, status: str, code: str | None, message: str | None):
        self.job_id = job_id
        self.status = status
        self.code = code
        self.error_message = message
        if status == "cancelled":
            text = f"fine-tuning job {job_id} was cancelled"
        else:
            text = (
                f"fine-tuning job {job_id} failed: {code or 'no error code'}: {message or 'no error message'}"
            )
        super().__init__(text)


class CostLimitExceeded(FineTuneError):
    """The cost guard refused a job whose estimate exceeds the configured maximum."""

    def __init__(self, estimate_usd: float, limit_usd: float, tokens: int, n_epochs: int):
        self.estimate_usd = estimate_usd
        self.limit_usd = limit_usd
        super().__init__(
            f"estimated fine-tuning cost ${estimate_usd:,.2f} ({tokens:,} training tokens x {n_epochs} epochs) "
            f"exceeds the limit ${limit_usd:,.2f}; raise max_cost_usd or train on less data"
        )


class FineTuningUnavailable(FineTuneError):
    """The provider refuses new fine-tuning jobs (wind-down); names the alternatives."""

    def __init__(self, detail: str, base_model: str):
        self.detail = detail
        super().__init__(
            f"the provider refused to create a fine-tuning job ({detail}). Self-serve fine-tuning is being "
            f"wound down, so no new job can be trained on {base_model!r}; keep improving the classifier with "
            f"{ALTERNATIVES}."
        )


# ------------------------------------------------------------------------------ request


@dataclass(frozen=True)
class FineTuneRequest:
    """One run's fine-tuning job.

    Attributes:
        dag_id: The DAG; with ``run_id`` and ``method`` it keys the job.
        run_id: The DAG run id.
        method: ``"supervised"`` (chat JSONL) or ``"dpo"`` (preference pairs JSONL).
        training_key: Staging key of the training JSONL (as built by the dataset stage).
        validation_key: Staging key of the validation JSONL, optional.
        base_model: The model to fine-tune.
        suffix: Up to 64 characters ``[A-Za-z0-9_-]`` in the fine-tuned model's name
            (default: ``fl-<method>-<job key prefix>``).
        seed: Training seed, for reproducible jobs.
        n_epochs: Always sent explicitly: with ``"auto"`` the provider may pick more epochs
            for a small file, and the cost estimate would be wrong.
        hyperparameters: Further method hyperparameters (``batch_size``,
            ``learning_rate_multiplier``, ``beta`` for DPO).
        max_cost_usd: The cost guard's limit.
        usd_per_1m_tokens: Training price; default per method from
            :mod:`feedbackloop.datasets` (prices change: set it from config).
        metadata: Extra job metadata (string values; 16 pairs at most in total).
    """

    dag_id: str
    run_id: str
    method: Method
    training_key: str
    validation_key: str | None = None
    base_model: str = DEFAULT_BASE_MODEL
    suffix: str | None = None
    seed: int = 0
    n_epochs: int = DEFAULT_N_EPOCHS
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    max_cost_usd: float = DEFAULT_MAX_COST_USD
    usd_per_1m_tokens: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not (self.dag_id and self.run_id and self.training_key and self.base_model):
            raise ValueError("dag_id, run_id, training_key and base_model are required")
        if not 1 <= int(self.n_epochs) <= 50:
            raise ValueError(f"n_epochs must be in [1, 50], got {self.n_epochs}")
        if not 0 <= int(self.seed) <= 2_147_483_647:
            raise ValueError(f"seed must be in [0, 2147483647], got {self.seed}")
        if self.max_cost_usd < 0:
            raise ValueError("max_cost_usd must be >= 0")
        if self.suffix is not None and not _SUFFIX_OK.match(self.suffix):
            raise ValueError(f"suffix must be 1-64 characters of [A-Za-z0-9_-], got {self.suffix!r}")
        unknown = set(self.hyperparameters) - {"batch_size", "learning_rate_multiplier", "beta"}
        if unknown or ("beta" in self.hyperparameters and self.method != "dpo"):
            raise ValueError(f"unsupported hyperparameters for {self.method}: {sorted(self.hyperparameters)}")
        if len(self.metadata) > 12 or not all(isinstance(v, str) for v in self.metadata.values()):
            raise ValueError("metadata: at most 12 extra pairs, string values only")

    @property
    def job_key(self) -> str:
        """Stable id of the run's job: what metadata lookups match on."""
        return hashlib.sha256(f"{self.dag_id}\n{self.run_id}\n{self.method}".encode()).hexdigest()[:32]

    @property
    def effective_suffix(self) -> str:
        return self.suffix or f"fl-{'sft' if self.method == 'supervised' else 'dpo'}-{self.job_key[:8]}"

    @property
    def price_per_1m(self) -> float:
        # feedbackloop.datasets (pandas, numpy) is imported here, not at module level: the
        # triggerer imports this module for status_from_job and should stay light.
        from feedbackloop.datasets import OPENAI_DPO_USD_PER_1M_TOKENS, OPENAI_SUPERVISED_USD_PER_1M_TOKENS

        if self.usd_per_1m_tokens is not None:
            return float(self.usd_per_1m_tokens)
        return (
            OPENAI_SUPERVISED_USD_PER_1M_TOKENS
            if self.method == "supervised"
            else OPENAI_DPO_USD_PER_1M_TOKENS
        )

    def job_metadata(self) -> dict[str, str]:
        """Metadata sent with the job (values cut to the API's 512 characters)."""
        meta = {
            METADATA_KEY: self.job_key,
            "feedbackloop_dag_id": self.dag_id[:512],
            "feedbackloop_run_id": self.run_id[:512],
            "feedbackloop_method": self.method,
        }
        meta.update({str(k)[:64]: v[:512] for k, v in self.metadata.items()})
        return meta

    def method_param(self) -> dict[str, Any]:
        """The ``method`` request parameter."""
        hyper: dict[str, Any] = {"n_epochs": int(self.n_epochs), **dict(self.hyperparameters)}
        return {"type": self.method, self.method: {"hyperparameters": hyper}}


@dataclass(frozen=True)
class FineTuneJob:
    """What :func:`start_or_attach` found or created.

    Attributes:
        job_id: The provider's job id.
        status: The job's status when last seen.
        attached: True when an existing job was re-attached to (nothing was submitted).
        fine_tuned_model: Set once the job succeeded.
        training_file_id / validation_file_id: Uploaded file ids.
        estimated_tokens / cost_estimate_usd: The cost guard's numbers (None when attached
            to a job found only at the provider).
    """

    dag_id: str
    run_id: str
    method: str
    job_key: str
    job_id: str
    status: str
    attached: bool
    fine_tuned_model: str | None = None
    training_file_id: str | None = None
    validation_file_id: str | None = None
    estimated_tokens: int | None = None
    cost_estimate_usd: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"terminal": self.terminal}


# ------------------------------------------------------------------------ cost estimate


def estimate_training_tokens(data: bytes, method: str) -> int:
    """Approximate billed tokens of one epoch over a training JSONL (chars/4 rule, as the
    dataset builder's estimates).

    DPO pairs count the prompt twice (once per completion) plus both completions.

    Raises:
        FineTuneError: A line is not JSON or lacks the fields of its method; names the line.
    """
    from feedbackloop.datasets import estimate_tokens

    if method not in METHODS:
        raise FineTuneError(f"unknown method {method!r}")
    total = 0
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            example = json.loads(line)
            if method == "supervised":
                total += estimate_tokens(example["messages"])
            elif method == "dpo":
                prompt = estimate_tokens(example["input"]["messages"])
                total += (
                    2 * prompt
                    + estimate_tokens(example["preferred_output"])
                    + estimate_tokens(example["non_preferred_output"])
                )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FineTuneError(f"training file line {lineno} is not a {method} example: {exc}") from exc
    if total == 0:
        raise FineTuneError("the training file holds no examples")
    return total


def estimate_cost_usd(tokens: int, n_epochs: int, usd_per_1m_tokens: float) -> float:
    """Training cost: tokens x epochs x price per million tokens, rounded to cents up."""
    return math.ceil(tokens * n_epochs * usd_per_1m_tokens / 1e6 * 100) / 100


def check_cost(estimate_usd: float, limit_usd: float, tokens: int, n_epochs: int) -> None:
    """The cost guard. Raises :class:`CostLimitExceeded` when ``estimate_usd > limit_usd``."""
    if estimate_usd > limit_usd:
        raise CostLimitExceeded(estimate_usd, limit_usd, tokens, n_epochs)


# ---------------------------------------------------------------------- remote helpers


def _with_retries(
    call: Callable[[], Any],
    what: str,
    *,
    attempts: int = 5,
    base_s: float = 0.5,
    max_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Run ``call``; retry transient errors with backoff, honouring ``Retry-After``."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            retryable, retry_after = classify_error(exc)
            if not retryable or attempt == attempts:
                raise
            delay = min(max_s, retry_after if retry_after is not None else base_s * 2 ** (attempt - 1))
            log.warning("%s failed (%s); retrying in %.2f s", what, describe_error(exc), delay)
            sleep(delay)
    raise AssertionError("unreachable")


def is_wind_down(exc: BaseException) -> bool:
    """True when an API error says fine-tuning itself is unavailable (not a bad request)."""
    import openai

    if (
        not isinstance(exc, openai.APIStatusError)
        or not 400 <= exc.status_code < 500
        or exc.status_code == 429
    ):
        return False
    code = str(getattr(exc, "code", "") or "")
    text = f"{code} {getattr(exc, 'message', '') or exc}"
    return code in _WIND_DOWN_CODES or bool(_FINE_TUNING.search(text) and _WIND_DOWN_WORDS.search(text))


def _job_metadata(job: Any) -> dict[str, str]:
    meta = getattr(job, "metadata", None)
    return dict(meta) if isinstance(meta, Mapping) else {}


def find_job_by_metadata(client: Any, job_key: str, *, limit: int = DEFAULT_LIST_LIMIT) -> Any | None:
    """The provider's job whose metadata carries ``job_key``, or None.

    Asks the API to filter on ``metadata[feedbackloop_job_key]`` and checks every returned
    job itself too (an OpenAI-compatible server may ignore the filter); a server that rejects
    the filter is listed without it. Scans at most ``limit`` jobs, newest first. Should
    duplicates exist (they should not), the oldest one wins: it is the one first submitted.
    """
    import openai

    def scan(filtered: bool) -> list[Any]:
        kwargs: dict[str, Any] = {"limit": min(100, limit)}
        if filtered:
            kwargs["metadata"] = {METADATA_KEY: job_key}
        matches = []
        page = _with_retries(lambda: client.fine_tuning.jobs.list(**kwargs), "listing fine-tuning jobs")
        for seen, job in enumerate(page, start=1):
            if _job_metadata(job).get(METADATA_KEY) == job_key:
                matches.append(job)
            if seen >= limit:
                break
        return matches

    try:
        matches = scan(filtered=True)
    except openai.BadRequestError:
        matches = scan(filtered=False)
    if not matches:
        return None
    if len(matches) > 1:
        log.warning(
            "%d fine-tuning jobs carry job key %s: %s", len(matches), job_key, [j.id for j in matches]
        )
    return min(matches, key=lambda j: (j.created_at, j.id))


def status_from_job(job: Any, events: Sequence[Any] = ()) -> dict[str, Any]:
    """JSON-safe status of a job object (SDK model or dict) and its events (oldest first).

    Raises:
        FineTuneError: The status is not one the API documents (fail loudly, never guess).
    """

    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)

    status = get(job, "status")
    if status not in JOB_STATUSES:
        raise FineTuneError(f"fine-tuning job {get(job, 'id')} has an unknown status {status!r}")
    error = get(job, "error")
    ordered = sorted(events, key=lambda e: (get(e, "created_at") or 0, get(e, "id") or ""))
    return {
        "job_id": get(job, "id"),
        "status": status,
        "terminal": status in TERMINAL_STATUSES,
        "fine_tuned_model": get(job, "fine_tuned_model"),
        "trained_tokens": get(job, "trained_tokens"),
        "finished_at": get(job, "finished_at"),
        "error_code": get(error, "code") if error else None,
        "error_message": get(error, "message") if error else None,
        "events": [
            {
                "id": get(e, "id"),
                "created_at": get(e, "created_at"),
                "level": get(e, "level"),
                "message": get(e, "message"),
            }
            for e in ordered
        ],
    }


def check_job(client: Any, job_id: str, *, events_limit: int = 20) -> dict[str, Any]:
    """Retrieve a job and its latest events; see :func:`status_from_job`."""
    client = client.with_options(max_retries=0)
    job = _with_retries(lambda: client.fine_tuning.jobs.retrieve(job_id), f"retrieving job {job_id}")
    page = _with_retries(
        lambda: client.fine_tuning.jobs.list_events(job_id, limit=events_limit), f"listing events of {job_id}"
    )
    return status_from_job(job, list(page.data))


def raise_for_status(status: Mapping[str, Any]) -> None:
    """Fail loudly on a ``failed`` / ``cancelled`` job with the API's error code and message."""
    if status.get("status") in ("failed", "cancelled"):
        raise FineTuneJobFailed(
            str(status.get("job_id")),
            str(status["status"]),
            status.get("error_code"),
            status.get("error_message"),
        )


def wait_for_job(
    client: Any,
    job_id: str,
    *,
    poll_interval_s: float = 60.0,
    timeout_s: float = 24 * 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the job is terminal (blocking; Airflow uses the deferrable trigger instead).

    Raises:
        TimeoutError: Not terminal within ``timeout_s`` (measured on a monotonic clock).
        FineTuneJobFailed: The job failed or was cancelled.
    """
    start = clock()
    while True:
        status = check_job(client, job_id)
        if status["terminal"]:
            raise_for_status(status)
            return status
        if clock() - start >= timeout_s:
            raise TimeoutError(
                f"fine-tuning job {job_id} is still {status['status']} after {clock() - start:.0f} s"
            )
        sleep(poll_interval_s)


# ------------------------------------------------------------------------------- table

_COLUMNS: Final = (
    "dag_id",
    "run_id",
    "method",
    "job_key",
    "backend",
    "base_model",
    "suffix",
    "remote_job_id",
    "training_file_id",
    "validation_file_id",
    "status",
    "fine_tuned_model",
    "estimated_tokens",
    "n_epochs",
    "cost_estimate_usd",
    "max_cost_usd",
    "trained_tokens",
    "error_code",
    "error_message",
    "created_at",
    "submitted_at",
    "finished_at",
    "updated_at",
)
_UPDATABLE: Final = frozenset(_COLUMNS) - {
    "dag_id",
    "run_id",
    "method",
    "job_key",
    "created_at",
    "updated_at",
}


def _row(values: Sequence[Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    out = dict(zip(_COLUMNS, values, strict=True))
    for name in ("cost_estimate_usd", "max_cost_usd"):
        if out[name] is not None:
            out[name] = float(out[name])
    return out


def get_job_row(conn: Any, dag_id: str, run_id: str, method: str) -> dict[str, Any] | None:
    """The ``ml.training_jobs`` row of a run's job, or None."""
    with transaction(conn) as cur:
        cur.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM ml.training_jobs WHERE dag_id = %s AND run_id = %s AND method = %s",
            (dag_id, run_id, method),
        )
        return _row(cur.fetchone())


def get_job_row_by_remote_id(conn: Any, job_id: str) -> dict[str, Any] | None:
    """The ``ml.training_jobs`` row of a provider job id, or None."""
    with transaction(conn) as cur:
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM ml.training_jobs WHERE remote_job_id = %s", (job_id,))
        return _row(cur.fetchone())


def upsert_job_row(conn: Any, request: FineTuneRequest, **values: Any) -> dict[str, Any]:
    """Insert the run's row or update the given columns (one committed transaction).

    ``submitted_at`` is set the first time a ``remote_job_id`` is written; ``finished_at``
    the first time a terminal status is.
    """
    unknown = set(values) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    explicit = sorted(values)
    # NOT NULL columns need a value on insert; on conflict only the given columns change.
    values.setdefault("base_model", request.base_model)
    values.setdefault("status", "pending")
    names = sorted(values)
    insert_cols = ["dag_id", "run_id", "method", "job_key", *names]
    updates = [f"{n} = EXCLUDED.{n}" for n in explicit]
    if "remote_job_id" in values and values["remote_job_id"] is not None:
        updates.append("submitted_at = COALESCE(ml.training_jobs.submitted_at, now())")
    if values.get("status") in TERMINAL_STATUSES:
        updates.append("finished_at = COALESCE(ml.training_jobs.finished_at, now())")
    updates.append("updated_at = now()")
    sql = (
        f"INSERT INTO ml.training_jobs ({', '.join(insert_cols)}) "
        f"VALUES ({', '.join(['%s'] * len(insert_cols))}) "
        f"ON CONFLICT (dag_id, run_id, method) DO UPDATE SET {', '.join(updates)} "
        f"RETURNING {', '.join(_COLUMNS)}"
    )
    params = [request.dag_id, request.run_id, request.method, request.job_key, *(values[n] for n in names)]
    with transaction(conn) as cur:
        cur.execute(sql, params)
        row = _row(cur.fetchone())
    assert row is not None
    return row


def _update_by_remote_id(conn: Any, job_id: str, status: Mapping[str, Any]) -> dict[str, Any] | None:
    terminal = status["status"] in TERMINAL_STATUSES
    with transaction(conn) as cur:
        cur.execute(
            f"""UPDATE ml.training_jobs SET status = %s, fine_tuned_model = COALESCE(%s, fine_tuned_model),
                   trained_tokens = COALESCE(%s, trained_tokens), error_code = %s, error_message = %s,
                   finished_at = CASE WHEN %s THEN COALESCE(finished_at, now()) ELSE finished_at END,
                   updated_at = now()
               WHERE remote_job_id = %s RETURNING {", ".join(_COLUMNS)}""",
            (
                status["status"],
                status.get("fine_tuned_model"),
                status.get("trained_tokens"),
                status.get("error_code"),
                status.get("error_message"),
                terminal,
                job_id,
            ),
        )
        return _row(cur.fetchone())


def record_status(conn: Any, status: Mapping[str, Any]) -> dict[str, Any]:
    """Write a job status (from :func:`check_job` or a trigger event) to its row.

    Raises:
        FineTuneError: No row has this remote job id.
    """
    row = _update_by_remote_id(conn, str(status["job_id"]), status)
    if row is None:
        raise FineTuneError(f"no ml.training_jobs row for fine-tuning job {status['job_id']}")
    return row


@contextmanager
def _job_lock(conn: Any, job_key: str) -> Iterator[None]:
    """Session-level advisory lock on the job key: two workers running the same task (a
    zombie and its retry) cannot both submit. Each write commits on its own meanwhile."""
    import psycopg

    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise FineTuneError("start_or_attach needs a connection outside a transaction (each step commits)")
    with transaction(conn) as cur:
        cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
        try:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (job_key,))
        except psycopg.errors.LockNotAvailable as exc:
            raise FineTuneError(
                f"another worker holds the fine-tuning lock for job key {job_key} (waited {_LOCK_TIMEOUT})"
            ) from exc
    try:
        yield
    finally:
        with transaction(conn) as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (job_key,))


# ------------------------------------------------------------------------ start/attach


def _handle(request: FineTuneRequest, row: Mapping[str, Any], job: Any, attached: bool) -> FineTuneJob:
    return FineTuneJob(
        dag_id=request.dag_id,
        run_id=request.run_id,
        method=request.method,
        job_key=request.job_key,
        job_id=job.id,
        status=job.status,
        attached=attached,
        fine_tuned_model=job.fine_tuned_model,
        training_file_id=row.get("training_file_id") or getattr(job, "training_file", None),
        validation_file_id=row.get("validation_file_id") or getattr(job, "validation_file", None),
        estimated_tokens=row.get("estimated_tokens"),
        cost_estimate_usd=row.get("cost_estimate_usd"),
    )


def _record_job(conn: Any, request: FineTuneRequest, job: Any) -> dict[str, Any]:
    status = status_from_job(job)
    return upsert_job_row(
        conn,
        request,
        remote_job_id=job.id,
        status=status["status"],
        fine_tuned_model=status["fine_tuned_model"],
        trained_tokens=status["trained_tokens"],
        training_file_id=getattr(job, "training_file", None),
        validation_file_id=getattr(job, "validation_file", None),
        error_code=status["error_code"],
        error_message=status["error_message"],
    )


def _upload(client: Any, staging: Staging, key: str, recorded_id: str | None, filename: str) -> str:
    """Upload a staged JSONL for fine-tuning, reusing the recorded file if it is still there
    with the same size (a retry after "uploaded but not yet submitted")."""
    import openai

    data = staging.get_bytes(key)
    if recorded_id:
        try:
            existing = _with_retries(
                lambda: client.files.retrieve(recorded_id), f"retrieving file {recorded_id}"
            )
            if existing.bytes == len(data) and existing.purpose == "fine-tune":
                return str(existing.id)
        except openai.NotFoundError:
            pass
    uploaded = _with_retries(
        lambda: client.files.create(file=(filename, data, "application/jsonl"), purpose="fine-tune"),
        f"uploading {key}",
    )
    return str(uploaded.id)


def _create(
    client: Any,
    request: FineTuneRequest,
    training_file_id: str,
    validation_file_id: str | None,
    sleep: Callable[[float], None],
) -> Any:
    """Create the job. After an ambiguous failure (the job may exist) look it up by metadata
    before trying again, so a lost response never turns into a second job."""
    kwargs: dict[str, Any] = {
        "model": request.base_model,
        "training_file": training_file_id,
        "method": request.method_param(),
        "suffix": request.effective_suffix,
        "seed": int(request.seed),
        "metadata": request.job_metadata(),
    }
    if validation_file_id:
        kwargs["validation_file"] = validation_file_id
    attempts = 5
    for attempt in range(1, attempts + 1):
        try:
            return client.fine_tuning.jobs.create(**kwargs)
        except Exception as exc:
            if is_wind_down(exc):
                raise FineTuningUnavailable(describe_error(exc), request.base_model) from exc
            retryable, retry_after = classify_error(exc)
            if not retryable or attempt == attempts:
                raise FineTuneError(f"could not create the fine-tuning job: {describe_error(exc)}") from exc
            sleep(min(30.0, retry_after if retry_after is not None else 0.5 * 2 ** (attempt - 1)))
            found = find_job_by_metadata(client, request.job_key)
            if found is not None:
                log.warning(
                    "job creation failed ambiguously (%s) but job %s exists: attaching",
                    describe_error(exc),
                    found.id,
                )
                return found
    raise AssertionError("unreachable")


def _filename(request: FineTuneRequest, part: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{request.dag_id}-{request.run_id}-{request.method}-{part}")
    return f"{base[:120]}.jsonl"


def start_or_attach(
    conn: Any,
    client: Any,
    staging: Staging,
    request: FineTuneRequest,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> FineTuneJob:
    """Find the run's fine-tuning job or submit it; never submits a second one.

    Args:
        conn: psycopg connection to the database with the ``ml`` schema, not inside a
            transaction (every step commits so that the record survives a crash).
        client: ``openai.OpenAI`` client (a ``max_retries=0`` copy is used).
        staging: Where the training files are staged.
        request: The run's job.

    Returns:
        The job (``attached=True`` when it already existed). Its row in
        ``ml.training_jobs`` is committed before this returns.

    Raises:
        CostLimitExceeded: The estimate is above ``request.max_cost_usd`` (recorded as
            status ``blocked``); nothing was uploaded or submitted.
        FineTuningUnavailable: The provider refuses new jobs (recorded as ``refused``).
        FineTuneError: Bad training file, or a provider error that retries did not fix.
    """
    client = client.with_options(max_retries=0)
    with _job_lock(conn, request.job_key):
        row = get_job_row(conn, request.dag_id, request.run_id, request.method)
        if row is None:
            row = upsert_job_row(
                conn,
                request,
                status="pending",
                suffix=request.effective_suffix,
                n_epochs=int(request.n_epochs),
                max_cost_usd=float(request.max_cost_usd),
            )
        if row["remote_job_id"]:
            job_id = row["remote_job_id"]
            job = _with_retries(lambda: client.fine_tuning.jobs.retrieve(job_id), f"retrieving job {job_id}")
            row = _record_job(conn, request, job)
            log.info(
                "re-attached to fine-tuning job %s (%s) recorded for %s", job.id, job.status, request.run_id
            )
            return _handle(request, row, job, attached=True)
        found = find_job_by_metadata(client, request.job_key)
        if found is not None:
            row = _record_job(conn, request, found)
            log.info("re-attached to fine-tuning job %s (%s) found by metadata", found.id, found.status)
            return _handle(request, row, found, attached=True)

        data = staging.get_bytes(request.training_key)
        tokens = estimate_training_tokens(data, request.method)
        estimate = estimate_cost_usd(tokens, int(request.n_epochs), request.price_per_1m)
        try:
            check_cost(estimate, float(request.max_cost_usd), tokens, int(request.n_epochs))
        except CostLimitExceeded as exc:
            upsert_job_row(
                conn,
                request,
                status="blocked",
                estimated_tokens=tokens,
                cost_estimate_usd=estimate,
                max_cost_usd=float(request.max_cost_usd),
                error_code="cost_limit_exceeded",
                error_message=str(exc),
            )
            raise
        row = upsert_job_row(
            conn,
            request,
            status="pending",
            estimated_tokens=tokens,
            cost_estimate_usd=estimate,
            max_cost_usd=float(request.max_cost_usd),
            n_epochs=int(request.n_epochs),
            suffix=request.effective_suffix,
            error_code=None,
            error_message=None,
        )
        training_file_id = _upload(
            client, staging, request.training_key, row["training_file_id"], _filename(request, "train")
        )
        row = upsert_job_row(conn, request, status="pending", training_file_id=training_file_id)
        validation_file_id = None
        if request.validation_key:
            validation_file_id = _upload(
                client,
                staging,
                request.validation_key,
                row["validation_file_id"],
                _filename(request, "validation"),
            )
            row = upsert_job_row(conn, request, status="pending", validation_file_id=validation_file_id)
        try:
            job = _create(client, request, training_file_id, validation_file_id, sleep)
        except FineTuningUnavailable as exc:
            upsert_job_row(
                conn,
                request,
                status="refused",
                error_code="fine_tuning_unavailable",
                error_message=exc.detail[:2000],
            )
            raise
        row = _record_job(conn, request, job)
        log.info(
            "submitted fine-tuning job %s for %s/%s (%s, est. $%.2f)",
            job.id,
            request.dag_id,
            request.run_id,
            request.method,
            estimate,
        )
        return _handle(request, row, job, attached=False)


def finalize_job(conn: Any, status: Mapping[str, Any], spec_base: Mapping[str, Any]) -> ModelSpec:
    """Record a terminal status and build the model spec of a succeeded job.

    Args:
        conn: Database connection.
        status: From :func:`check_job` or the trigger's event (``job_id``, ``status``, ...).
        spec_base: Run-level spec fields (``version_id``, ``created_at``, ``provenance``).

    Raises:
        FineTuneJobFailed: The job failed or was cancelled (recorded first).
        FineTuneError: The job is not finished, has no fine-tuned model, or is unknown.
    """
    row = record_status(conn, status)
    raise_for_status(status)
    if status["status"] != "succeeded" or not status.get("fine_tuned_model"):
        raise FineTuneError(
            f"fine-tuning job {status['job_id']} has not succeeded yet (status {status['status']})"
        )
    stats = {
        "job_id": status["job_id"],
        "method": row["method"],
        "training_file_id": row["training_file_id"],
        "validation_file_id": row["validation_file_id"],
        "trained_tokens": status.get("trained_tokens"),
        "estimated_tokens": row["estimated_tokens"],
        "cost_estimate_usd": row["cost_estimate_usd"],
        "n_epochs": row["n_epochs"],
        "suffix": row["suffix"],
    }
    return build_spec(
        {k: v for k, v in spec_base.items() if k != "artifact_uri"},
        backend="openai",
        base_model=row["base_model"],
        training_stats=stats,
        remote_model_id=str(status["fine_tuned_model"]),
    )


# ---------------------------------------------------------------------- Trainer protocol


class OpenAIFineTuneTrainer:
    """:class:`~feedbackloop.models.base.Trainer` that fine-tunes and waits (blocking).

    For callers without a triggerer (the CLI, a notebook). Airflow tasks should use
    :func:`start_or_attach` + the deferrable trigger + :func:`finalize_job` instead, so that
    no worker slot is held for hours.

    When ``request.training_key`` is not staged yet and the method is supervised, ``train``
    stages the chat JSONL built from the frame first (same format as the dataset stage).
    """

    def __init__(
        self,
        conn: Any,
        client: Any,
        staging: Staging,
        taxonomy: Taxonomy,
        request: FineTuneRequest,
        *,
        poll_interval_s: float = 60.0,
        timeout_s: float = 24 * 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.conn = conn
        self.client = client
        self.staging = staging
        self.taxonomy = taxonomy
        self.request = request
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self._sleep = sleep

    def train(
        self, train: pd.DataFrame, validation: pd.DataFrame | None, spec_base: dict[str, Any]
    ) -> TrainedModel:
        from feedbackloop.datasets import assistant_content, system_prompt
        from feedbackloop.models.base import TrainedModel

        if not self.staging.exists(self.request.training_key):
            if self.request.method != "supervised":
                raise FineTuneError(f"DPO needs the staged preference file {self.request.training_key}")
            prompt = system_prompt(self.taxonomy)
            rows = sorted(
                json.dumps(
                    {
                        "messages": [
                            {"role": "system", "content": prompt},
                            {"role": "user", "content": str(text)},
                            {"role": "assistant", "content": assistant_content(str(cat), list(actions))},
                        ]
                    },
                    sort_keys=True,
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
                for text, cat, actions in zip(train["text"], train["category"], train["actions"], strict=True)
            )
            self.staging.put_bytes(self.request.training_key, ("\n".join(rows) + "\n").encode())
        job = start_or_attach(self.conn, self.client, self.staging, self.request, sleep=self._sleep)
        status = wait_for_job(
            self.client,
            job.job_id,
            poll_interval_s=self.poll_interval_s,
            timeout_s=self.timeout_s,
            sleep=self._sleep,
        )
        return TrainedModel(spec=finalize_job(self.conn, status, spec_base), artifact=None)
