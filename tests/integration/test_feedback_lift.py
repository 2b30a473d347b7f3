"""The loop's reason to exist: feedback makes the local model better on the golden set.

Runs the real stages (extract from PostgreSQL, validate, rewards, training sets) on a week of
generated feedback, then trains the local backend twice, on the seed corpus alone and on the
seed corpus plus the feedback, and scores both on the golden set. Prints both numbers.
"""

from __future__ import annotations

import pandas as pd
import pytest
from tests.support import INTERVAL

from feedbackloop import db, pipeline
from feedbackloop.evaluation import evaluate
from feedbackloop.golden import default_taxonomy, load_golden_set
from feedbackloop.models.base import EmailInput
from feedbackloop.models.local import LocalClassifier, LocalTrainer, seed_corpus_frame
from feedbackloop.staging import LocalStaging, read_parquet

pytestmark = pytest.mark.slow

FEEDBACK_ROWS = 5_000
COLUMNS = ["text", "category", "actions", "weight"]


def _golden_accuracy(train_df: pd.DataFrame, version: str) -> tuple[float, float]:
    taxonomy = default_taxonomy()
    spec_base = {"version_id": version, "created_at": INTERVAL[1].isoformat()}
    trained = LocalTrainer(taxonomy).train(train_df, None, spec_base)
    classifier = LocalClassifier.from_bytes(trained.artifact, taxonomy)
    golden = load_golden_set()
    result = evaluate(golden, classifier.classify([EmailInput.from_golden(g) for g in golden]), taxonomy).to_dict()
    return result["accuracy"], result["critical_accuracy"]


def test_training_on_feedback_beats_the_seed_corpus_alone(pg_dsn, tmp_path, capsys):
    from feedbackloop.synth import iter_app_data, load_app_data

    with db.connect(pg_dsn) as conn:
        load_app_data(conn, iter_app_data(FEEDBACK_ROWS, 20261122, *INTERVAL, malformed_fraction=0.01))
        conn.commit()
    staging = LocalStaging(tmp_path)
    run = pipeline.RunContext("feedback_retraining", "lift", *INTERVAL)
    with db.connect(pg_dsn) as conn:
        pipeline.extract(conn, staging, run)
    pipeline.validate(staging, run)
    pipeline.rewards(staging, run)
    pipeline.datasets(staging, run)
    feedback = read_parquet(staging, run.key(pipeline.TRAIN_FRAME)).to_pandas()[COLUMNS]
    seed = seed_corpus_frame()[COLUMNS]

    seed_only = _golden_accuracy(seed, "seed-only")
    with_feedback = _golden_accuracy(pd.concat([seed, feedback], ignore_index=True), "seed-plus-feedback")
    with capsys.disabled():
        print(
            f"\ngolden accuracy, seed corpus only: {seed_only[0]:.3f} (critical {seed_only[1]:.3f}); "
            f"seed + {len(feedback)} feedback examples: {with_feedback[0]:.3f} (critical {with_feedback[1]:.3f})"
        )
    assert with_feedback[0] > seed_only[0]
