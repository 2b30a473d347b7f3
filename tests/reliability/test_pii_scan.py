"""No PII leaves in training data or Slack: the hostile run's inputs carry known email
addresses, phone and card numbers (in sender, subject, body and the user's note), and every
training file, few-shot prompt, request to the model endpoint and Slack payload is scanned
for them; the redactor's recall on the labelled corpus is reported with the figures.

The detectors themselves are tested in tests/unit/test_pii.py; the dataset builder's
redaction in tests/unit/test_datasets.py. This is the end-to-end check on a real run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.reliability.security_support import (
    PII_CARDS,
    PII_EMAILS,
    PII_PHONES,
    Figures,
    hostile_run,
    pii_needles,
    scan,
)

from feedbackloop.pii import PII_TYPES, PLACEHOLDERS, load_pii_corpus, pii_scores, redact

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pii_corpus.jsonl"
TRAINING_FILES = (
    "train.jsonl",
    "validation.jsonl",
    "preference.jsonl",
    "preference_validation.jsonl",
    "weights.jsonl",
    "train.parquet",
    "validation.parquet",
    "dataset_stats.json",
)


@pytest.fixture
def hostile(pg_server, dagbag, capfd):
    return hostile_run(pg_server, dagbag, capfd)


@pytest.fixture
def figures(tmp_path_factory):
    return Figures(tmp_path_factory.getbasetemp())


def test_every_planted_value_is_one_the_redactor_detects():
    """The scan below is only meaningful for values the redactor claims to handle."""
    for value in (*PII_EMAILS, *PII_PHONES, *PII_CARDS):
        redacted, counts = redact(f"contact: {value} thanks")
        assert value not in redacted and sum(counts.values()) == 1, (value, redacted)


def _training_material(hostile) -> dict[str, bytes]:
    staged = hostile.staged_for("ok")
    material = {f"training:{name}": staged[name] for name in TRAINING_FILES if name in staged}
    assert set(TRAINING_FILES) - {"weights.jsonl"} <= {k.split(":", 1)[1] for k in material}, sorted(staged)
    for key, data in hostile.staged.items():
        if key.startswith("staging/prompts/"):
            material[f"fewshot-prompt:{key}"] = data  # exemplars from feedback, sent to the model
    for i, body in enumerate(hostile.model_requests):
        material[f"model-request[{i}]"] = json.dumps(body, ensure_ascii=False).encode()
    return material


def test_training_files_prompts_model_requests_and_slack_hold_no_raw_pii(hostile, figures):
    ok = hostile.run("ok")
    assert ok.state == "success", ok.states
    needles = pii_needles()

    # Positive control: the raw extract does hold the planted values (the inputs were seeded
    # and the scanner reads the zstd-compressed Parquet rows).
    raw = {"raw-extract": hostile.staged_for("ok")["feedback_raw.parquet"]}
    found_in_input = {h.name for h in scan(raw, needles, digits=True)}
    assert found_in_input == set(needles), sorted(set(needles) - found_in_input)

    training = _training_material(hostile)
    assert any(k.startswith("fewshot-prompt:") for k in training), "the few-shot prompt was not staged"
    slack = {f"slack-payload[{i}]": body for i, body in enumerate(hostile.slack_bodies)}
    assert slack, "no Slack payload to scan"
    hits = scan({**training, **slack}, needles, digits=True)
    assert hits == [], "raw PII leaked:\n" + "\n".join(map(str, hits))

    # The redaction did happen: the training text carries placeholders and the stats count them.
    train_text = (
        pq.read_table(io.BytesIO(hostile.staged_for("ok")["train.parquet"])).column("text").to_pylist()
    )
    train_text += [line for line in hostile.staged_for("ok")["train.jsonl"].decode().splitlines()]
    joined = "\n".join(train_text)
    present = {t: joined.count(PLACEHOLDERS[t]) for t in ("email", "phone", "card")}
    stats = json.loads(hostile.staged_for("ok")["dataset_stats.json"])
    redacted = stats.get("pii_redacted") or {}
    assert all(present[t] > 0 for t in present), present
    assert all(redacted.get(t, 0) > 0 for t in ("email", "phone", "card")), redacted
    figures.record(
        "pii",
        planted_values=len(PII_EMAILS) + len(PII_PHONES) + len(PII_CARDS),
        planted_rows=len(hostile.hostile_rows),
        needles_incl_partial_forms=len(needles),
        sources_scanned=len(training) + len(slack),
        training_files=[k for k in training if k.startswith("training:")],
        fewshot_prompts=sum(k.startswith("fewshot-prompt:") for k in training),
        model_requests=len(hostile.model_requests),
        slack_payloads=len(slack),
        hits=len(hits),
        redacted_in_training_set=redacted,
    )


def test_redaction_recall_on_the_labelled_corpus(figures):
    """The figure RELIABILITY.md reports; the per-detector assertions are in tests/unit/test_pii.py."""
    scores = pii_scores(load_pii_corpus(CORPUS))
    per_type = scores["per_type"]
    for t in ("email", "phone", "card"):
        assert per_type[t]["recall"] >= 0.99, (t, [m for m in scores["missed"] if m["type"] == t])
    figures.record(
        "pii",
        corpus_lines=scores["lines"],
        corpus_spans=scores["overall"]["support"],
        recall_overall=scores["overall"]["recall"],
        precision_overall=scores["overall"]["precision"],
        any_type_recall=scores["any_type_recall"],
        recall_per_type={t: per_type[t]["recall"] for t in PII_TYPES},
        support_per_type={t: per_type[t]["support"] for t in PII_TYPES},
        missed=len(scores["missed"]),
        false_positives=len(scores["false_positives"]),
    )
