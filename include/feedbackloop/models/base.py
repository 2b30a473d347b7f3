"""The seams every model backend implements: inputs, predictions, model specs, protocols.

A backend is a :class:`Trainer` (labelled DataFrame in, :class:`TrainedModel` out) plus a
:class:`Classifier` (emails in, :class:`Prediction` out). The pipeline only ever talks to
these two protocols, so the embedded default (``local``, scikit-learn) and the production
backends (``openai`` fine-tuning, ``fewshot`` prompt optimisation) are interchangeable.

A :class:`ModelSpec` is the plain-data description of one trained model version that the
registry stores (``ml.model_versions``) and XCom carries; it round-trips through JSON.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from feedbackloop.golden import GoldenEmail

BACKENDS: tuple[str, ...] = ("local", "openai", "fewshot")

# Columns a training / validation frame must have (built by the dataset builders).
TRAIN_COLUMNS: tuple[str, ...] = ("text", "category", "actions", "weight")


class ModelSpecError(ValueError):
    """A model spec document is malformed (missing field, wrong type, unknown backend)."""


@dataclass(frozen=True)
class EmailInput:
    """One email as a classifier sees it.

    Attributes:
        email_id: Stable id of the email (golden-set id or the app's email id).
        sender: The ``From`` header, e.g. ``"PayPal <service@paypal.com>"``.
        subject: The subject line.
        body: The plain-text body.
    """

    email_id: str
    sender: str
    subject: str
    body: str

    @property
    def text(self) -> str:
        """Sender, subject and body in the one layout every backend is trained on."""
        return f"From: {self.sender}\nSubject: {self.subject}\n\n{self.body}"

    @classmethod
    def from_golden(cls, email: GoldenEmail) -> EmailInput:
        """The classifier input for a golden-set email (labels are left behind)."""
        return cls(email_id=email.id, sender=email.sender, subject=email.subject, body=email.body)


@dataclass(frozen=True)
class Prediction:
    """What a classifier said about one email.

    Attributes:
        email_id: The id of the classified email.
        category: Predicted category id (may be outside the taxonomy when ``valid`` is False).
        confidence: Probability of the predicted category, in [0, 1].
        actions: Suggested action ids, a subset of the category's allowed actions.
        latency_ms: Wall time attributed to this email, in milliseconds.
        valid: False when the backend produced no usable answer (unparsable output, a
            category outside the taxonomy); evaluation counts such a prediction as wrong.
        raw: The backend's raw output, kept for debugging invalid answers.
    """

    email_id: str
    category: str
    confidence: float
    actions: tuple[str, ...]
    latency_ms: float
    valid: bool = True
    raw: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (actions as a list)."""
        d = dataclasses.asdict(self)
        d["actions"] = list(self.actions)
        return d


_SPEC_REQUIRED_STR = ("version_id", "backend", "base_model", "created_at")
_SPEC_OPTIONAL_STR = ("artifact_uri", "remote_model_id", "prompt_version")


@dataclass(frozen=True)
class ModelSpec:
    """Plain-data description of one trained model version.

    Attributes:
        version_id: Registry id of the version, unique per training run.
        backend: One of :data:`BACKENDS`.
        base_model: What was trained on top of (``"sklearn-tfidf-logreg"``, an OpenAI model id).
        artifact_uri: Staging URI of the model artifact (local backend), else None.
        remote_model_id: Provider-side model id (fine-tuned model), else None.
        prompt_version: Version of the prompt / exemplar set (few-shot backend), else None.
        created_at: ISO-8601 timestamp, taken from the run (not the wall clock) so that
            re-running a training run produces the same spec.
        provenance: Where the model came from: ``dag_id``, ``run_id``, the data interval,
            dataset URIs and training statistics. JSON-safe values only.
    """

    version_id: str
    backend: str
    base_model: str
    created_at: str
    artifact_uri: str | None = None
    remote_model_id: str | None = None
    prompt_version: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ModelSpecError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; :meth:`from_dict` inverts it."""
        return {
            "version_id": self.version_id,
            "backend": self.backend,
            "base_model": self.base_model,
            "artifact_uri": self.artifact_uri,
            "remote_model_id": self.remote_model_id,
            "prompt_version": self.prompt_version,
            "created_at": self.created_at,
            "provenance": _json_copy(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Build a spec from :meth:`to_dict` output, validating every field.

        Raises:
            ModelSpecError: A required field is missing or empty, a field has the wrong type,
                the backend is unknown, or the document has fields that are not part of a spec.
        """
        if not isinstance(data, Mapping):
            raise ModelSpecError(f"a model spec must be a mapping, got {type(data).__name__}")
        known = set(_SPEC_REQUIRED_STR) | set(_SPEC_OPTIONAL_STR) | {"provenance"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelSpecError(f"unknown model spec field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name in _SPEC_REQUIRED_STR:
            value = data.get(name)
            if not (isinstance(value, str) and value.strip()):
                raise ModelSpecError(f"model spec field {name!r} must be a non-empty string, got {value!r}")
            values[name] = value
        for name in _SPEC_OPTIONAL_STR:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise ModelSpecError(f"model spec field {name!r} must be a string or null, got {value!r}")
            values[name] = value
        provenance = data.get("provenance", {})
        if provenance is None:
            provenance = {}
        if not isinstance(provenance, Mapping):
            raise ModelSpecError(f"model spec field 'provenance' must be a mapping, got {provenance!r}")
        values["provenance"] = _json_copy(provenance)
        return cls(**values)


def _json_copy(value: Any) -> Any:
    """Deep copy of a JSON-like structure (tuples become lists) so specs never share state."""
    if isinstance(value, Mapping):
        return {str(k): _json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_copy(v) for v in value]
    return value


def build_spec(
    spec_base: Mapping[str, Any],
    *,
    backend: str,
    base_model: str,
    training_stats: Mapping[str, Any],
    remote_model_id: str | None = None,
    prompt_version: str | None = None,
) -> ModelSpec:
    """Combine the run-level ``spec_base`` with what a trainer knows about its model.

    Args:
        spec_base: Run-level fields: ``version_id`` (required), ``created_at`` (defaults to
            ``provenance["data_interval_end"]``; one of the two is required), optional
            ``base_model`` (overrides the trainer's), ``artifact_uri`` and ``provenance``
            (dag_id, run_id, data interval, dataset URIs).
        backend: The trainer's backend name.
        base_model: What the trainer built on.
        training_stats: Added to the provenance under ``"training"``.
        remote_model_id: Provider-side model id, for remote backends.
        prompt_version: Prompt / exemplar set version, for the few-shot backend.

    Returns:
        A new spec; ``spec_base`` is not modified.

    Raises:
        ModelSpecError: ``spec_base`` lacks a required field or has an unknown one.
    """
    allowed = {"version_id", "created_at", "artifact_uri", "provenance", "base_model"}
    unknown = sorted(set(spec_base) - allowed)
    if unknown:
        raise ModelSpecError(f"unknown spec_base field(s): {', '.join(unknown)}")
    provenance = dict(_json_copy(spec_base.get("provenance") or {}))
    provenance["training"] = _json_copy(dict(training_stats))
    # Never the wall clock: a re-run must produce the same spec. A model is as new as the
    # data it was trained on, so the end of the run's data interval is the natural default.
    created_at = spec_base.get("created_at") or provenance.get("data_interval_end")
    if not (isinstance(created_at, str) and created_at.strip()):
        raise ModelSpecError(
            "spec_base needs 'created_at' (ISO-8601, from the run, e.g. its logical date) or "
            "provenance['data_interval_end']"
        )
    return ModelSpec.from_dict(
        {
            "version_id": spec_base.get("version_id"),
            "backend": backend,
            "base_model": spec_base.get("base_model") or base_model,
            "created_at": created_at,
            "artifact_uri": spec_base.get("artifact_uri"),
            "remote_model_id": remote_model_id,
            "prompt_version": prompt_version,
            "provenance": provenance,
        }
    )


@dataclass(frozen=True)
class TrainedModel:
    """A trained model: its spec plus the artifact bytes (None for remote models).

    Attributes:
        spec: The model's spec. ``artifact_uri`` is filled in by whoever stages ``artifact``.
        artifact: Serialized model (local backend), or None when the model lives at a provider.
    """

    spec: ModelSpec
    artifact: bytes | None


@runtime_checkable
class Classifier(Protocol):
    """Classifies emails into a category with confidence and suggested actions."""

    def classify(self, emails: Sequence[EmailInput]) -> list[Prediction]:
        """One prediction per email, in the input order."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """Trains a model version from a weighted, labelled training frame."""

    def train(
        self,
        train: pd.DataFrame,
        validation: pd.DataFrame | None,
        spec_base: dict[str, Any],
    ) -> TrainedModel:
        """Train on ``train`` (columns :data:`TRAIN_COLUMNS`), report on ``validation``."""
        ...
