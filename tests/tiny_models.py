"""Small local models trained on a slice of the seed corpus, for gate / report / DAG tests.

Training is deterministic, so the fitted artifact is cached per size for the test session
(about a second each); each call still writes its own files and spec.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CREATED_AT = "2026-11-22T02:00:00+00:00"


@cache
def _artifact(per_category: int) -> tuple[bytes, dict[str, Any]]:
    from feedbackloop.golden import default_taxonomy
    from feedbackloop.models.local import LocalTrainer, seed_corpus_frame

    taxonomy = default_taxonomy()
    seed = seed_corpus_frame(taxonomy=taxonomy)
    frame = seed.groupby("category", group_keys=False).head(per_category).reset_index(drop=True)
    trained = LocalTrainer(taxonomy).train(frame, None, {"version_id": "tiny", "created_at": CREATED_AT})
    return trained.artifact, trained.spec.to_dict()


def train_tiny_model(
    folder: Path, version_id: str, per_category: int = 30, *, relative_artifact: bool = False
) -> dict[str, Any]:
    """Stage ``model.bin`` and ``model_spec.json`` for a tiny local model in ``folder``.

    Args:
        folder: Created if missing.
        version_id: The spec's version id.
        per_category: Seed-corpus emails per category to train on (more: a better model).
        relative_artifact: Write ``artifact_uri`` as the plain name ``model.bin`` (resolved
            against the spec file by the gate CLI) instead of a ``file://`` URI.

    Returns:
        The spec dict that was written.
    """
    artifact, spec = _artifact(per_category)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "model.bin"
    model_path.write_bytes(artifact)
    spec = {
        **spec,
        "version_id": version_id,
        "artifact_uri": "model.bin" if relative_artifact else model_path.resolve().as_uri(),
    }
    (folder / "model_spec.json").write_text(json.dumps(spec, sort_keys=True, indent=2), encoding="utf-8")
    return spec
