"""The retraining pipeline's stages as plain functions (one per Airflow task).

Each stage reads its inputs from staging under the run prefix, calls the domain functions,
writes its artifacts under the same prefix and returns a small JSON-safe summary (what goes
to XCom). The artifact names below are the layout contract between stages; re-running a
stage for the same run overwrites the same keys with identical bytes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from feedbackloop.staging import Staging, read_json, read_parquet, write_parquet

log = logging.getLogger(__name__)

RAW = "feedback_raw.parquet"
VALID = "feedback_valid.parquet"
QUARANTINE = "quarantine.parquet"
GX_RESULT = "gx_validation.json"
# Rows per validation chunk (quality_stream.DEFAULT_CHUNK_ROWS: memory is one chunk).
VALIDATE_CHUNK_ROWS = 250_000
VALIDATION_SUMMARY = "validation_summary.json"
REWARDS = "rewards.parquet"
TRAIN_JSONL = "train.jsonl"
VALIDATION_JSONL = "validation.jsonl"
PREFERENCE_JSONL = "preference.jsonl"
PREFERENCE_VALIDATION_JSONL = "preference_validation.jsonl"
TRAIN_FRAME = "train.parquet"
VALIDATION_FRAME = "validation.parquet"
DATASET_STATS = "dataset_stats.json"
MODEL_ARTIFACT = "model.bin"  # zlib-compressed pickle of the scikit-learn pipeline
MODEL_SPEC = "model_spec.json"
EVAL_CHALLENGER = "eval_challenger.json"
EVAL_CHAMPION = "eval_champion.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class RunContext:
    """Identifies one pipeline run; every artifact key starts with :attr:`prefix`."""

    dag_id: str
    run_id: str
    start: datetime
    end: datetime

    @property
    def prefix(self) -> str:
        from feedbackloop.staging import run_key

        return f"{self.dag_id}/{run_key(self.run_id)}"

    def key(self, artifact: str) -> str:
        return f"{self.prefix}/{artifact}"

    def to_dict(self) -> dict[str, str]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "data_interval_start": self.start.isoformat(),
            "data_interval_end": self.end.isoformat(),
        }


def _put_json(staging: Staging, key: str, payload: Any) -> str:
    data = json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=False, default=str).encode() + b"\n"
    return staging.put_bytes(key, data)


_get_json = read_json


# ---------------------------------------------------------------------------- extract


def extract(conn: Any, staging: Staging, run: RunContext) -> dict[str, Any]:
    """Stream the run's feedback interval from the feedback DB into staged Parquet."""
    from feedbackloop.extract import extract_feedback

    summary = extract_feedback(conn, staging, run.key(RAW), run.start, run.end)
    log.info("extracted %d feedback rows for [%s, %s) to %s", summary.rows, run.start, run.end, summary.uri)
    return {"uri": summary.uri, "rows": summary.rows, "bytes": summary.bytes}


# --------------------------------------------------------------------------- validate


@dataclass(frozen=True)
class ValidationSettings:
    max_quarantine_share: float = 0.05
    min_rows: int = 1
    max_category_share: float = 0.8


def validate(
    staging: Staging,
    run: RunContext,
    settings: ValidationSettings = ValidationSettings(),  # noqa: B008 - frozen, immutable default
    chunk_rows: int = VALIDATE_CHUNK_ROWS,
) -> dict[str, Any]:
    """Run the data-quality gate; stage valid rows, quarantine and the GX results.

    Streams: the raw extract is validated in chunks of about ``chunk_rows`` rows
    (:class:`~feedbackloop.quality_stream.StreamingValidator`, the same row-level outcome and
    batch checks as one call over the whole interval) and the valid and quarantined rows are
    written chunk by chunk, so peak memory is one chunk's whatever the interval's size.
    The staged GX document holds one Great Expectations result per chunk.

    Artifacts are staged before a failing verdict raises, so the evidence of a failed run
    is always there to inspect.
    """
    import pyarrow.parquet as pq

    from feedbackloop.contracts import valid_schema
    from feedbackloop.quality import quarantine_schema
    from feedbackloop.quality_stream import BatchLimits, StreamingValidator, check_summary, iter_raw_chunks
    from feedbackloop.staging import PARQUET_OPTIONS, PARQUET_ROW_GROUP_SIZE, local_scratch

    limits = BatchLimits(
        max_quarantine_share=settings.max_quarantine_share,
        min_rows=settings.min_rows,
        max_category_share=settings.max_category_share,
    )
    validator = StreamingValidator(run.start, run.end, limits)
    gx_results: list[dict[str, Any]] = []
    with local_scratch() as tmp:
        raw = staging.get_file(run.key(RAW), tmp / "raw.parquet")
        valid_path, quarantine_path = tmp / "valid.parquet", tmp / "quarantine.parquet"
        with (
            pq.ParquetWriter(valid_path, valid_schema(), **PARQUET_OPTIONS) as valid_out,
            pq.ParquetWriter(quarantine_path, quarantine_schema(), **PARQUET_OPTIONS) as quarantine_out,
        ):
            for chunk in iter_raw_chunks(raw, chunk_rows):
                result = validator.validate(chunk)
                valid_out.write_table(result.valid, row_group_size=PARQUET_ROW_GROUP_SIZE)
                quarantine_out.write_table(result.quarantine, row_group_size=PARQUET_ROW_GROUP_SIZE)
                gx_results.append(result.gx_result)
        summary = validator.finish()
        staging.put_file(run.key(VALID), valid_path)
        staging.put_file(run.key(QUARANTINE), quarantine_path)
    _put_json(
        staging,
        run.key(GX_RESULT),
        {
            "success": all(r.get("success") for r in gx_results),
            "chunk_rows": chunk_rows,
            "chunks": gx_results,
        },
    )
    summary["uri"] = staging.uri(run.key(VALID))
    summary["quarantine_uri"] = staging.uri(run.key(QUARANTINE))
    _put_json(staging, run.key(VALIDATION_SUMMARY), summary)
    check_summary(summary)
    return summary


# ---------------------------------------------------------------------------- rewards


def rewards(staging: Staging, run: RunContext, weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Compute the brief's multi-objective reward for every valid feedback record."""
    import pandas as pd
    import pyarrow as pa

    from feedbackloop.rewards import RewardWeights, compute_rewards

    # List columns stay Arrow-backed: compute_rewards reads them zero-copy (no per-row
    # NumPy arrays), 2-3x faster on the action columns.
    valid = read_parquet(staging, run.key(VALID)).to_pandas(
        types_mapper=lambda t: pd.ArrowDtype(t) if pa.types.is_list(t) else None
    )
    w = RewardWeights(**weights) if weights else RewardWeights()
    scored = compute_rewards(valid, w)
    uri = write_parquet(staging, run.key(REWARDS), pa.Table.from_pandas(scored, preserve_index=False))
    n = len(scored)
    summary = {
        "uri": uri,
        "rows": n,
        "weights": asdict(w),
        "mean_reward": round(float(scored["reward"].mean()), 6) if n else None,
        "corrected_share": round(float((scored["label_category"] != scored["predicted_category"]).mean()), 6)
        if n
        else None,
    }
    for comp in ("classification", "actions", "calibration", "engagement"):
        col = f"reward_{comp}"
        summary[f"mean_{col}"] = round(float(scored[col].mean()), 6) if n else None
    return summary


# --------------------------------------------------------------------------- datasets


def datasets(staging: Staging, run: RunContext, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the supervised and preference training sets (PII-redacted, golden-guarded).

    Streams: the rewards file is read in record batches and the sets are written to local
    scratch files, then staged, so memory stays bounded whatever the row count.
    """
    from feedbackloop.datasets import DatasetConfig, write_training_sets
    from feedbackloop.golden import default_taxonomy, load_golden_set
    from feedbackloop.staging import local_scratch

    with local_scratch() as tmp:
        source = staging.get_file(run.key(REWARDS), tmp / "rewards.parquet")
        out = tmp / "sets"
        stats = write_training_sets(
            source, load_golden_set(), default_taxonomy(), out, DatasetConfig(**(config or {}))
        )
        uris = {
            p.name: staging.put_file(run.key(p.name), p)
            for p in sorted(out.iterdir())
            if p.suffix != ".parquet"
        }
        uris["train"] = staging.put_file(run.key(TRAIN_FRAME), out / TRAIN_FRAME)
        uris["validation"] = staging.put_file(run.key(VALIDATION_FRAME), out / VALIDATION_FRAME)
    return {
        "uris": uris,
        "train_rows": stats["rows"]["train"],
        "validation_rows": stats["rows"]["validation"],
        "preference_pairs": stats["rows"]["preference_train"],
        "excluded": stats["excluded"],
        "label_actions_source": stats["label_actions_source"],
    }


# ------------------------------------------------------------------------------ train

TRAINERS = ("local", "fewshot", "openai")


@dataclass(frozen=True)
class TrainSettings:
    """How the challenger is trained.

    Attributes:
        trainer: ``local`` (scikit-learn, offline, the embedded default), ``fewshot``
            (exemplar prompt for any OpenAI-compatible chat model) or ``openai``
            (fine-tuning; run by the deferrable operator, see ``openai_request``).
        base_model: the backend's base model; None takes the backend's default.
        include_seed_corpus: train the local model on the seed corpus plus the feedback.
        method: OpenAI fine-tuning method, ``supervised`` or ``dpo``.
        max_cost_usd: the fine-tuning cost guard.
    """

    trainer: str = "local"
    base_model: str | None = None
    include_seed_corpus: bool = True
    method: str = "supervised"
    max_cost_usd: float = 25.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trainer not in TRAINERS:
            raise ValueError(f"unknown trainer {self.trainer!r}: choose one of {', '.join(TRAINERS)}")
        if self.method not in ("supervised", "dpo"):
            raise ValueError(f"unknown fine-tuning method {self.method!r}: choose supervised or dpo")


def version_id(staging: Staging, run: RunContext, settings: TrainSettings) -> str:
    """The model version a run produces, content-addressed.

    ``<dag_id>-<interval end date>-<12 hex>`` where the hex is a SHA-256 over the training
    inputs (the staged training sets, the seed corpus when used) and the trainer settings.
    The same data and settings give the same version, so re-running a run (or the demo)
    re-records the same model instead of registering a copy under a new name.
    """
    import hashlib

    from feedbackloop.paths import golden_dir

    digest = hashlib.sha256()
    digest.update(json.dumps(asdict(settings), sort_keys=True, default=str).encode())
    for name in (TRAIN_JSONL, VALIDATION_JSONL, PREFERENCE_JSONL):
        digest.update(name.encode())
        digest.update(hashlib.sha256(staging.get_bytes(run.key(name))).digest())
    if settings.trainer == "local" and settings.include_seed_corpus:
        digest.update(hashlib.sha256((golden_dir() / "seed_corpus.jsonl").read_bytes()).digest())
    return f"{run.dag_id}-{run.end:%Y%m%d}-{digest.hexdigest()[:12]}"


def spec_base(
    staging: Staging, run: RunContext, settings: TrainSettings, **provenance: Any
) -> dict[str, Any]:
    """Run-level fields of the model spec every trainer completes."""
    base: dict[str, Any] = {
        "version_id": version_id(staging, run, settings),
        "created_at": run.end.isoformat(),
        "provenance": {
            **run.to_dict(),
            "trainer": settings.trainer,
            "train_uri": staging.uri(run.key(TRAIN_FRAME)),
            "dataset_stats_uri": staging.uri(run.key(DATASET_STATS)),
            **provenance,
        },
    }
    if settings.base_model:
        base["base_model"] = settings.base_model
    return base


def train(staging: Staging, run: RunContext, settings: TrainSettings = TrainSettings()) -> dict[str, Any]:
    """Train the challenger with the local or few-shot backend and stage its spec.

    OpenAI fine-tuning takes hours and must not hold a worker: the operator runs it through
    :func:`openai_request` / :func:`finish_remote` and a deferrable trigger instead.
    """
    import pandas as pd

    from feedbackloop.golden import default_taxonomy

    if settings.trainer == "openai":
        raise ValueError("trainer 'openai' runs deferred: use openai_request() and finish_remote()")
    feedback_train = read_parquet(staging, run.key(TRAIN_FRAME)).to_pandas()
    validation = read_parquet(staging, run.key(VALIDATION_FRAME)).to_pandas()
    if settings.trainer == "fewshot":
        from feedbackloop.models.fewshot import FewShotConfig, FewShotTrainer

        base = spec_base(staging, run, settings, train_rows_feedback=len(feedback_train))
        trainer = FewShotTrainer(
            staging,
            default_taxonomy(),
            config=FewShotConfig(**settings.extra.get("fewshot", {})),
            **({"base_model": settings.base_model} if settings.base_model else {}),
        )
        trained = trainer.train(feedback_train, validation, base)
        train_rows = len(feedback_train)
    else:
        from feedbackloop.models.local import LocalTrainer, seed_corpus_frame

        cols = ["text", "category", "actions", "weight"]
        frames = [feedback_train[cols]]
        if settings.include_seed_corpus:
            frames.insert(0, seed_corpus_frame()[cols])
        train_df = pd.concat(frames, ignore_index=True)
        base = spec_base(
            staging,
            run,
            settings,
            train_rows_feedback=len(feedback_train),
            train_rows_total=len(train_df),
            seed_corpus=settings.include_seed_corpus,
        )
        base["artifact_uri"] = staging.uri(run.key(MODEL_ARTIFACT))
        trained = LocalTrainer(default_taxonomy()).train(train_df, validation, base)
        if trained.artifact is None:  # the local trainer always returns its model
            raise RuntimeError("local trainer returned no model artifact")
        staging.put_bytes(run.key(MODEL_ARTIFACT), trained.artifact)
        train_rows = len(train_df)
    spec = trained.spec.to_dict()
    _put_json(staging, run.key(MODEL_SPEC), spec)
    return {
        "version_id": spec["version_id"],
        "backend": spec["backend"],
        "base_model": spec["base_model"],
        "spec_uri": staging.uri(run.key(MODEL_SPEC)),
        "train_rows": train_rows,
    }


def openai_request(run: RunContext, settings: TrainSettings) -> Any:
    """The fine-tuning job of a run: supervised chat JSONL or DPO preference pairs."""
    from feedbackloop.models.openai_finetune import FineTuneRequest

    supervised = settings.method == "supervised"
    optional: dict[str, Any] = {"base_model": settings.base_model} if settings.base_model else {}
    return FineTuneRequest(
        dag_id=run.dag_id,
        run_id=run.run_id,
        method=settings.method,  # type: ignore[arg-type]
        training_key=run.key(TRAIN_JSONL if supervised else PREFERENCE_JSONL),
        validation_key=run.key(VALIDATION_JSONL if supervised else PREFERENCE_VALIDATION_JSONL),
        max_cost_usd=float(settings.max_cost_usd),
        **optional,
    )


def finish_remote(staging: Staging, run: RunContext, spec: Any) -> dict[str, Any]:
    """Stage the spec of a remotely trained model (fine-tuned) and summarise it."""
    data = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    _put_json(staging, run.key(MODEL_SPEC), data)
    return {
        "version_id": data["version_id"],
        "backend": data["backend"],
        "base_model": data["base_model"],
        "remote_model_id": data.get("remote_model_id"),
        "spec_uri": staging.uri(run.key(MODEL_SPEC)),
    }


# --------------------------------------------------------------------------- evaluate


def needs_openai(spec: dict[str, Any] | None) -> bool:
    """Whether classifying with this spec needs an OpenAI-compatible endpoint."""
    return spec is not None and spec.get("backend") in ("openai", "fewshot")


def _classifier_for(staging: Staging, spec: dict[str, Any], openai_client: Any = None):  # noqa: ANN202
    from feedbackloop.golden import default_taxonomy
    from feedbackloop.models.base import ModelSpec
    from feedbackloop.staging import key_from_uri, open_staging

    model_spec = ModelSpec.from_dict(spec)
    if needs_openai(spec):
        from feedbackloop.models.openai_chat import classifier_for_spec

        if openai_client is None:
            raise ValueError(
                f"model {model_spec.version_id} ({model_spec.backend}) needs an OpenAI-compatible endpoint: "
                "configure the 'openai_default' connection"
            )
        return classifier_for_spec(openai_client, model_spec, default_taxonomy(), staging=staging)
    from feedbackloop.models.local import LocalClassifier

    uri = model_spec.artifact_uri or ""
    try:
        data = staging.get_bytes(key_from_uri(staging, uri))
    except ValueError:  # an artifact staged under another root (e.g. an older champion)
        root, _, name = uri.rpartition("/")
        data = open_staging(root).get_bytes(name)
    return LocalClassifier.from_bytes(data, default_taxonomy())


def evaluate_spec(staging: Staging, spec: dict[str, Any], openai_client: Any = None) -> dict[str, Any]:
    """Classify the golden set with a model spec and compute every golden-set metric."""
    from feedbackloop.evaluation import evaluate
    from feedbackloop.golden import default_taxonomy, load_golden_set
    from feedbackloop.models.base import EmailInput

    golden = load_golden_set()
    classifier = _classifier_for(staging, spec, openai_client)
    predictions = classifier.classify([EmailInput.from_golden(g) for g in golden])
    return evaluate(golden, predictions, default_taxonomy(), model_version=spec["version_id"]).to_dict()


def evaluate_golden(
    staging: Staging, run: RunContext, champion_spec: dict[str, Any] | None, openai_client: Any = None
) -> dict[str, Any]:
    """Evaluate the challenger, and the current champion on the same emails when there is one."""
    spec = _get_json(staging, run.key(MODEL_SPEC))
    challenger = evaluate_spec(staging, spec, openai_client)
    _put_json(staging, run.key(EVAL_CHALLENGER), challenger)
    summary: dict[str, Any] = {
        "version_id": spec["version_id"],
        "accuracy": challenger["accuracy"],
        "critical_accuracy": challenger["critical_accuracy"],
        "eval_uri": staging.uri(run.key(EVAL_CHALLENGER)),
        "champion_version_id": None,
    }
    if champion_spec is not None:
        champion = evaluate_spec(staging, champion_spec, openai_client)
        _put_json(staging, run.key(EVAL_CHAMPION), champion)
        summary["champion_version_id"] = champion_spec["version_id"]
        summary["champion_accuracy"] = champion["accuracy"]
    return summary


# ------------------------------------------------------------------------------- gate


def gate(
    conn: Any, staging: Staging, run: RunContext, thresholds: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Apply the release gate, stage report.json / report.html and record the decision.

    The decision is written to ``ml.model_versions`` and ``ml.golden_runs`` whatever the
    verdict; a failing verdict then raises :class:`feedbackloop.gate.GateFailed`.
    """
    from feedbackloop import registry
    from feedbackloop.gate import GateThresholds
    from feedbackloop.gate import gate as decide
    from feedbackloop.golden import load_golden_set
    from feedbackloop.report import render_report_html, render_report_json

    spec = _get_json(staging, run.key(MODEL_SPEC))
    challenger = _get_json(staging, run.key(EVAL_CHALLENGER))
    champion = _get_json(staging, run.key(EVAL_CHAMPION)) if staging.exists(run.key(EVAL_CHAMPION)) else None
    limits = GateThresholds(**(thresholds or {}))
    decision = decide(challenger, limits, champion=champion)
    context = {**run.to_dict(), "version_id": spec["version_id"], "golden_emails": len(load_golden_set())}
    report_uri = staging.put_bytes(
        run.key(REPORT_JSON), render_report_json(challenger, decision, context, champion)
    )
    html_uri = staging.put_bytes(
        run.key(REPORT_HTML), render_report_html(challenger, decision, context, champion).encode("utf-8")
    )
    from feedbackloop.report_png import render_report_pngs

    for name, png in sorted(render_report_pngs(challenger, decision, champion).items()):
        staging.put_bytes(run.key(f"plots/{name}"), png)  # for Slack and phones
    registry.record_gate(conn, spec, run.to_dict(), decision, challenger, report_uri)
    summary = {
        "version_id": spec["version_id"],
        "passed": decision.passed,
        "reasons": list(decision.reasons),
        "accuracy": challenger["accuracy"],
        "critical_accuracy": challenger["critical_accuracy"],
        "report_uri": report_uri,
        "report_html_uri": html_uri,
    }
    decision.raise_for_verdict()
    return summary


# ----------------------------------------------------------------------------- deploy


def deploy(conn: Any, staging: Staging, run: RunContext, traffic_share: float = 0.05) -> dict[str, Any]:
    """Point the ``challenger`` alias at this run's model with a canary traffic share."""
    from feedbackloop import registry

    spec = _get_json(staging, run.key(MODEL_SPEC))
    return registry.deploy_challenger(
        conn,
        spec["version_id"],
        traffic_share,
        updated_by=f"{run.dag_id}/{run.run_id}",
        reason="passed golden-set gate",
    )
