"""Model backends behind two small protocols, :class:`Classifier` and :class:`Trainer`.

``feedbackloop.models.base`` holds the shared types; each backend lives in its own module
(``local``: scikit-learn, offline, the embedded default) and is imported only where it is
used, so importing this package stays cheap (no scikit-learn at DAG parse time).
"""

from __future__ import annotations

from feedbackloop.models.base import (
    BACKENDS,
    TRAIN_COLUMNS,
    Classifier,
    EmailInput,
    ModelSpec,
    ModelSpecError,
    Prediction,
    TrainedModel,
    Trainer,
    build_spec,
)

__all__ = [
    "BACKENDS",
    "TRAIN_COLUMNS",
    "Classifier",
    "EmailInput",
    "ModelSpec",
    "ModelSpecError",
    "Prediction",
    "TrainedModel",
    "Trainer",
    "build_spec",
]
