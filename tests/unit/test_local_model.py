"""The local (scikit-learn) backend and the shared model types in ``models.base``."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedbackloop.golden import default_taxonomy
from feedbackloop.models import (
    Classifier,
    EmailInput,
    ModelSpec,
    ModelSpecError,
    Prediction,
    Trainer,
    build_spec,
)
from feedbackloop.models.local import (
    LocalClassifier,
    LocalModelError,
    LocalTrainer,
    seed_corpus_frame,
    sender_domain,
    split_email_text,
    strip_quoted,
)

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = default_taxonomy()
SPEC_BASE = {
    "version_id": "local-test-1",
    "created_at": "2025-03-01T00:00:00+00:00",
    "provenance": {
        "dag_id": "feedback_retraining",
        "run_id": "manual__1",
        "datasets": ["file:///tmp/train.parquet"],
    },
}

# Four categories with their own vocabulary, plus shared filler words, so that a correct
# model is clearly identifiable while the task is not a lookup of one token.
_TEMPLATES = {
    "phishing": (
        ["Security Team <verify@{brand}-account-check.com>"],
        ["Urgent: verify your {brand} account now", "Your {brand} mailbox will be suspended"],
        "Your account will be suspended within 24 hours. Confirm your password and card number at the link "
        "below to avoid losing access. Act now, verification required immediately.",
        ["report_phishing", "delete"],
    ),
    "security_alert": (
        ["{Brand} <no-reply@{brand}.com>"],
        ["New sign-in to your {brand} account", "Two-step verification was turned on"],
        "We noticed a new sign-in from Chrome on Windows near Lisbon. If this was you, there is nothing else "
        "to do. If not, review your devices in security settings and change your password.",
        ["review_security", "change_password"],
    ),
    "receipt": (
        ["{Brand} Orders <orders@{brand}.com>"],
        ["Your {brand} order receipt", "Payment received, thank you"],
        "Thanks for your purchase. Order total 42.10 paid with Visa ending 1234. Keep this receipt for your "
        "records; returns are accepted within 30 days.",
        ["save_receipt"],
    ),
    "newsletter": (
        ["{Brand} Weekly <newsletter@{brand}.com>"],
        ["This week at {brand}: five long reads", "The {brand} digest, issue {n}"],
        "In this issue: an essay on city gardens, an interview with a jazz pianist and our editors' picks of the "
        "week. Read online or unsubscribe at the bottom of this email.",
        ["read_later"],
    ),
}
_BRANDS = ["acme", "globex", "initech", "umbrella", "hooli", "vehement", "stark", "wayne"]
_FILLER = "hello regards team please note today update information thanks kind best wishes".split()


def _email(category: str, rng: random.Random, n: int) -> tuple[EmailInput, list[str]]:
    senders, subjects, body, actions = _TEMPLATES[category]
    brand = rng.choice(_BRANDS)
    fill = " ".join(rng.choice(_FILLER) for _ in range(rng.randint(3, 12)))
    words = body.split()
    rng.shuffle(words)  # same vocabulary, different text every time
    email = EmailInput(
        email_id=f"{category}-{n}",
        sender=rng.choice(senders).format(brand=brand, Brand=brand.title()),
        subject=rng.choice(subjects).format(brand=brand, n=n),
        body=f"Hi,\n\n{' '.join(words)}\n\n{fill}",
    )
    return email, actions


def corpus(n_per_category: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for category in _TEMPLATES:
        for n in range(n_per_category):
            email, actions = _email(category, rng, n)
            rows.append({"text": email.text, "category": category, "actions": actions, "weight": 1.0})
    return pd.DataFrame(rows)


def held_out_emails(seed: int = 99) -> tuple[list[EmailInput], list[str]]:
    rng = random.Random(seed)
    emails, labels = [], []
    for category in _TEMPLATES:
        for n in range(3):
            email, _ = _email(category, rng, 1000 + n)
            emails.append(email)
            labels.append(category)
    return emails, labels


@pytest.fixture(scope="module")
def trained():
    return LocalTrainer(TAXONOMY).train(corpus(12), corpus(4, seed=1), SPEC_BASE)


# --------------------------------------------------------------------------- base types


def test_email_input_text_layout_and_from_golden():
    email = EmailInput("e1", "Ann <ann@example.com>", "Hello", "Body line")
    assert email.text == "From: Ann <ann@example.com>\nSubject: Hello\n\nBody line"
    assert split_email_text(email.text) == ("Ann <ann@example.com>", "Hello", "Body line")


def test_model_spec_json_round_trip():
    spec = ModelSpec(
        version_id="v7",
        backend="openai",
        base_model="gpt-4o-mini-2024-07-18",
        created_at="2025-03-01T00:00:00+00:00",
        remote_model_id="ft:gpt-4o-mini:acme::abc",
        provenance={"dag_id": "d", "interval": ["2025-02-28", "2025-03-01"]},
    )
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.artifact_uri is None and again.prompt_version is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            {"backend": "local", "base_model": "b", "created_at": "t"}, "version_id", id="missing-version"
        ),
        pytest.param(
            {"version_id": "v", "backend": "torch", "base_model": "b", "created_at": "t"},
            "backend",
            id="unknown-backend",
        ),
        pytest.param(
            {"version_id": "v", "backend": "local", "base_model": "b", "created_at": "t", "colour": "red"},
            "colour",
            id="unknown-field",
        ),
        pytest.param(
            {"version_id": "v", "backend": "local", "base_model": "b", "created_at": "t", "artifact_uri": 3},
            "artifact_uri",
            id="uri-not-string",
        ),
        pytest.param(
            {"version_id": "v", "backend": "local", "base_model": "b", "created_at": "t", "provenance": [1]},
            "provenance",
            id="provenance-not-mapping",
        ),
        pytest.param("not a mapping", "mapping", id="not-a-mapping"),
    ],
)
def test_model_spec_rejects_bad_documents(document, message):
    with pytest.raises(ModelSpecError, match=message):
        ModelSpec.from_dict(document)


def test_build_spec_keeps_spec_base_and_adds_training_stats():
    base = {"version_id": "v1", "created_at": "2025-01-01T00:00:00Z", "provenance": {"run_id": "r"}}
    spec = build_spec(base, backend="local", base_model="m", training_stats={"n_train": 3})
    assert spec.provenance == {"run_id": "r", "training": {"n_train": 3}}
    assert base == {"version_id": "v1", "created_at": "2025-01-01T00:00:00Z", "provenance": {"run_id": "r"}}
    with pytest.raises(ModelSpecError, match="created_at"):
        build_spec({"version_id": "v1"}, backend="local", base_model="m", training_stats={})
    from_interval = build_spec(
        {"version_id": "v1", "provenance": {"data_interval_end": "2025-03-02T00:00:00+00:00"}},
        backend="local",
        base_model="m",
        training_stats={},
    )
    assert from_interval.created_at == "2025-03-02T00:00:00+00:00"
    with pytest.raises(ModelSpecError, match="oops"):
        build_spec({**base, "oops": 1}, backend="local", base_model="m", training_stats={})


# --------------------------------------------------------------------------- text views


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        pytest.param("PayPal <service@paypal.com>", "paypal.com", id="display-name"),
        pytest.param(
            "alerts@Mail.Bank-Example.co.uk", "mail.bank-example.co.uk", id="bare-address-lowercased"
        ),
        pytest.param("Nobody", "", id="no-address"),
    ],
)
def test_sender_domain(sender, domain):
    assert sender_domain(sender) == domain


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("New text\n> old line\n> older", "New text", id="quoted-lines"),
        pytest.param(
            "Sounds good.\n\nOn Mon, 3 Mar 2025 Ann wrote:\nlong history", "Sounds good.", id="on-wrote"
        ),
        pytest.param("FYI\n-----Original Message-----\nFrom: x", "FYI", id="original-message"),
        pytest.param("> only quoted", "> only quoted", id="nothing-but-quote-kept"),
    ],
)
def test_strip_quoted(body, expected):
    assert strip_quoted(body) == expected


def test_split_email_text_without_header_is_all_body():
    assert split_email_text("just words") == ("", "", "just words")


# --------------------------------------------------------------------------- training


def test_trainer_and_classifier_satisfy_the_protocols(trained):
    assert isinstance(LocalTrainer(TAXONOMY), Trainer)
    assert isinstance(LocalClassifier.from_bytes(trained.artifact, TAXONOMY), Classifier)


def test_classifies_held_out_emails_with_valid_actions(trained):
    classifier = LocalClassifier.from_bytes(trained.artifact, TAXONOMY)
    emails, labels = held_out_emails()
    predictions = classifier.classify(emails)
    assert [p.email_id for p in predictions] == [e.email_id for e in emails]
    assert [p.category for p in predictions] == labels
    for p in predictions:
        assert isinstance(p, Prediction) and p.valid and p.raw is None
        assert 0.0 < p.confidence <= 1.0
        assert p.latency_ms > 0
        assert p.actions, "at least one action is always suggested"
        assert set(p.actions) <= set(TAXONOMY.category(p.category).actions)
    # Each template's actions are learnt: a phishing email gets report_phishing.
    phishing = [p for p in predictions if p.category == "phishing"]
    assert all("report_phishing" in p.actions for p in phishing)


def test_probabilities_are_a_distribution_over_training_categories(trained):
    classifier = LocalClassifier.from_bytes(trained.artifact, TAXONOMY)
    emails, _ = held_out_emails()
    probs = classifier.predict_proba([e.text for e in emails])
    assert probs.shape == (len(emails), 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert classifier.classes == ("security_alert", "phishing", "receipt", "newsletter")  # taxonomy order


def test_spec_records_provenance_and_training_stats(trained):
    spec = trained.spec
    assert spec.backend == "local" and spec.version_id == "local-test-1"
    assert spec.provenance["dag_id"] == "feedback_retraining"
    stats = spec.provenance["training"]
    assert stats["n_train"] == 48
    assert stats["train_class_counts"] == {
        "phishing": 12,
        "security_alert": 12,
        "receipt": 12,
        "newsletter": 12,
    }
    assert stats["validation"]["n"] == 16 and stats["validation"]["accuracy"] == 1.0
    assert 0.0 <= stats["validation"]["ece"] <= 1.0
    assert stats["temperature"] > 0
    assert stats["calibration"].startswith("cross_validation")  # 16 validation rows < the minimum
    assert len(stats["artifact_sha256"]) == 64
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("validation", "source"),
    [
        pytest.param(lambda: corpus(12, seed=2), "validation", id="validation-frame-of-48-rows"),
        pytest.param(lambda: None, "cross_validation_3_fold", id="no-validation-frame"),
        pytest.param(
            lambda: corpus(12, seed=2).iloc[:39], "cross_validation_3_fold", id="validation-too-small"
        ),
    ],
)
def test_temperature_is_fit_on_held_out_margins(validation, source):
    model = LocalTrainer(TAXONOMY).train(corpus(8), validation(), SPEC_BASE)
    stats = model.spec.provenance["training"]
    assert stats["calibration"] == source
    assert stats["temperature"] != 1.0


def test_category_with_one_row_skips_calibration():
    frame = pd.concat([corpus(4), corpus(1).iloc[[0]].assign(category="work", actions=[["reply"]])])
    stats = LocalTrainer(TAXONOMY).train(frame, None, SPEC_BASE).spec.provenance["training"]
    assert stats["calibration"].startswith("none")
    assert stats["temperature"] == 1.0


def test_artifact_bytes_are_reproducible_across_processes(trained, tmp_path):
    """Same data, same bytes, even with a different string-hash seed in another process."""
    again = LocalTrainer(TAXONOMY).train(corpus(12), corpus(4, seed=1), SPEC_BASE)
    assert again.artifact == trained.artifact
    assert again.spec == trained.spec
    script = (
        "import sys, hashlib\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_local_model import corpus, SPEC_BASE, TAXONOMY\n"
        "from feedbackloop.models.local import LocalTrainer\n"
        "m = LocalTrainer(TAXONOMY).train(corpus(12), corpus(4, seed=1), SPEC_BASE)\n"
        "print(hashlib.sha256(m.artifact).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT / "include")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == trained.spec.provenance["training"]["artifact_sha256"]


def test_sample_weight_decides_between_conflicting_labels():
    """The same kind of email labelled two ways: the heavier-weighted label wins."""
    frame = corpus(6)
    receipts = frame["category"] == "receipt"
    relabelled = frame[receipts].assign(category="newsletter", actions=[["read_later"]] * int(receipts.sum()))
    both = pd.concat([frame, relabelled], ignore_index=True)
    probe = held_out_emails()[0][6]  # a receipt
    assert probe.email_id.startswith("receipt")

    def predicted(receipt_weight: float, newsletter_weight: float) -> str:
        weights = np.where(both.index < len(frame), 1.0, newsletter_weight)
        weights = np.where(
            (both.index < len(frame)) & (both["category"] == "receipt"), receipt_weight, weights
        )
        model = LocalTrainer(TAXONOMY).train(both.assign(weight=weights), None, SPEC_BASE)
        return LocalClassifier.from_bytes(model.artifact, TAXONOMY).classify([probe])[0].category

    assert predicted(receipt_weight=3.0, newsletter_weight=0.2) == "receipt"
    assert predicted(receipt_weight=0.2, newsletter_weight=3.0) == "newsletter"


def test_training_does_not_mutate_its_inputs():
    frame = corpus(4)
    before = frame.copy(deep=True)
    spec_base = json.loads(json.dumps(SPEC_BASE))
    LocalTrainer(TAXONOMY).train(frame, None, spec_base)
    pd.testing.assert_frame_equal(frame, before)
    assert spec_base == SPEC_BASE


def _with(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.at[row, column] = value
    return out


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda f: f.drop(columns=["weight"]), "weight", id="missing-column"),
        pytest.param(lambda f: f.iloc[0:0], "no rows", id="empty"),
        pytest.param(lambda f: _with(f, 0, "category", "bills"), "bills", id="unknown-category"),
        pytest.param(
            lambda f: _with(f, 0, "actions", ["pay_invoice"]), "not allowed", id="disallowed-action"
        ),
        pytest.param(
            lambda f: _with(f, 0, "actions", "delete"), "list of action ids", id="actions-not-a-list"
        ),
        pytest.param(lambda f: _with(f, 1, "weight", -1.0), "weight", id="negative-weight"),
        pytest.param(lambda f: _with(f, 1, "weight", math.nan), "weight", id="nan-weight"),
        pytest.param(lambda f: f.assign(weight=0.0), "positive weight", id="all-zero-weight"),
        pytest.param(lambda f: _with(f, 2, "text", "   "), "empty or non-string text", id="blank-text"),
        pytest.param(lambda f: f[f["category"] == "receipt"], "at least two categories", id="one-category"),
    ],
)
def test_trainer_rejects_bad_frames(mutate, message):
    with pytest.raises(LocalModelError, match=message):
        LocalTrainer(TAXONOMY).train(mutate(corpus(3)), None, SPEC_BASE)


def test_rejects_bad_validation_frame():
    with pytest.raises(LocalModelError, match="validation frame lacks"):
        LocalTrainer(TAXONOMY).train(corpus(3), corpus(1).drop(columns=["actions"]), SPEC_BASE)


def test_from_bytes_rejects_garbage_and_foreign_taxonomy(trained):
    with pytest.raises(LocalModelError, match="cannot load"):
        LocalClassifier.from_bytes(b"not a pickle", TAXONOMY)
    smaller = TAXONOMY.__class__(
        version=TAXONOMY.version,
        priorities=TAXONOMY.priorities,
        critical_priorities=TAXONOMY.critical_priorities,
        actions=TAXONOMY.actions,
        categories=tuple(c for c in TAXONOMY.categories if c.id != "newsletter"),
    )
    with pytest.raises(LocalModelError, match="newsletter"):
        LocalClassifier.from_bytes(trained.artifact, smaller)
    with pytest.raises(ValueError, match="batch_size"):
        LocalClassifier.from_bytes(trained.artifact, TAXONOMY, batch_size=0)


def test_batched_classification_matches_one_by_one(trained):
    emails, _ = held_out_emails()
    one = LocalClassifier.from_bytes(trained.artifact, TAXONOMY).classify(emails)
    many = LocalClassifier.from_bytes(trained.artifact, TAXONOMY, batch_size=5).classify(emails)
    assert [(p.category, p.actions) for p in one] == [(p.category, p.actions) for p in many]
    np.testing.assert_allclose([p.confidence for p in one], [p.confidence for p in many])
    # Amortised latency: every email of a chunk carries the same share.
    assert many[0].latency_ms == many[4].latency_ms
    assert LocalClassifier.from_bytes(trained.artifact, TAXONOMY).classify([]) == []


# --------------------------------------------------------------------------- seed corpus


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8"
    )
    return path


_SEED_ROW = {
    "id": "seed-1",
    "sender": "Acme <orders@acme.example>",
    "subject": "Your receipt",
    "body": "Paid 10 EUR.",
    "category": "receipt",
    "actions": ["save_receipt"],
}


def test_seed_corpus_frame_shape(tmp_path):
    path = _write_jsonl(
        tmp_path / "seed.jsonl",
        [_SEED_ROW, {**_SEED_ROW, "id": "seed-2", "category": "newsletter", "actions": []}],
    )
    frame = seed_corpus_frame(path, TAXONOMY)
    assert list(frame.columns) == ["email_id", "text", "category", "actions", "weight"]
    assert frame["email_id"].tolist() == ["seed-1", "seed-2"]
    assert frame.loc[0, "text"] == "From: Acme <orders@acme.example>\nSubject: Your receipt\n\nPaid 10 EUR."
    assert frame["weight"].tolist() == [1.0, 1.0]
    assert frame.loc[0, "actions"] == ["save_receipt"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        pytest.param(["{not json"], r"seed.jsonl:1: not valid JSON", id="bad-json"),
        pytest.param(
            [_SEED_ROW, {**_SEED_ROW, "subject": ""}], r"seed.jsonl:2: field 'subject'", id="empty-field"
        ),
        pytest.param([_SEED_ROW, _SEED_ROW], r"seed.jsonl:2: duplicate id", id="duplicate-id"),
        pytest.param(
            [{**_SEED_ROW, "actions": "save_receipt"}], r"'actions' must be a list", id="actions-string"
        ),
        pytest.param(
            [{**_SEED_ROW, "category": "bills"}], r"unknown category 'bills'", id="unknown-category"
        ),
        pytest.param([{**_SEED_ROW, "actions": ["delete"]}], r"not allowed", id="disallowed-action"),
        pytest.param([""], "holds no emails", id="empty-file"),
    ],
)
def test_seed_corpus_frame_rejects_bad_lines(tmp_path, rows, message):
    path = _write_jsonl(tmp_path / "seed.jsonl", rows)
    with pytest.raises(LocalModelError, match=message):
        seed_corpus_frame(path, TAXONOMY)


def test_seed_corpus_frame_missing_file(tmp_path):
    with pytest.raises(LocalModelError, match="not found"):
        seed_corpus_frame(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- real data


def test_project_seed_corpus_loads_against_the_taxonomy():
    frame = seed_corpus_frame(taxonomy=TAXONOMY)
    assert set(frame["category"]) == set(TAXONOMY.category_ids)
    assert frame["email_id"].is_unique
    assert (frame["weight"] == 1.0).all()
    assert frame["text"].str.startswith("From: ").all()


def test_seed_trained_model_on_the_golden_set():
    """End to end on the project's data: a small seed-trained model scores the golden set."""
    from feedbackloop.evaluation import evaluate
    from feedbackloop.golden import load_golden_set

    golden = load_golden_set()
    seed = seed_corpus_frame(taxonomy=TAXONOMY)
    small = seed.groupby("category", sort=False).head(30).reset_index(drop=True)
    model = LocalTrainer(TAXONOMY).train(small, None, SPEC_BASE)
    classifier = LocalClassifier.from_bytes(model.artifact, TAXONOMY, batch_size=16)
    predictions = classifier.classify([EmailInput.from_golden(g) for g in golden])
    for p in predictions:
        assert p.actions and set(p.actions) <= set(TAXONOMY.category(p.category).actions)
    result = evaluate(golden, predictions, TAXONOMY)
    assert result.invalid_count == 0
    # 600 seed emails give ~0.83 (the full corpus ~0.91); a floor catches a broken model.
    assert result.accuracy >= 0.75
    assert result.latency_ms["p95"] < 500
