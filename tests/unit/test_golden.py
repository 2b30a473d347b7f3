"""The golden set and taxonomy: invariants the gate relies on, and clear errors for bad files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from feedbackloop.golden import (
    PROBLEM_AREAS,
    GoldenSetError,
    default_taxonomy,
    load_golden_set,
    load_taxonomy,
)
from feedbackloop.paths import golden_dir

GOLDEN = golden_dir() / "golden_set.jsonl"


@pytest.fixture(scope="module")
def taxonomy():
    return default_taxonomy()


@pytest.fixture(scope="module")
def emails(taxonomy):
    return load_golden_set(GOLDEN, taxonomy)


def test_exactly_136_emails_with_unique_ids(emails):
    assert len(emails) == 136
    assert len({e.id for e in emails}) == 136


def test_twenty_categories_each_with_at_least_five(emails, taxonomy):
    assert len(taxonomy.categories) == 20
    counts = Counter(e.category for e in emails)
    assert set(counts) == set(taxonomy.category_ids)
    assert min(counts.values()) >= 5, counts


def test_at_least_30_critical_and_the_critical_kinds_are_critical(emails, taxonomy):
    assert sum(e.is_critical(taxonomy) for e in emails) >= 30
    for cid in ("security_alert", "phishing", "bill_due", "fraud_alert"):
        assert taxonomy.category(cid).priority in taxonomy.critical_priorities


def test_every_action_is_allowed_for_its_category(emails, taxonomy):
    for e in emails:
        assert e.actions, f"{e.id} has no expected action"
        assert set(e.actions) <= set(taxonomy.category(e.category).actions), e.id
        assert set(e.actions) <= set(taxonomy.actions)


def test_every_category_allows_only_known_actions(taxonomy):
    for c in taxonomy.categories:
        assert set(c.actions) <= set(taxonomy.actions), c.id


def test_the_documented_problem_areas_are_represented(emails):
    tags = Counter(t for e in emails for t in e.problem_areas)
    for required in (
        "receipt_vs_bill",
        "promo_as_account_notice",
        "phishing_as_security_alert",
        "newsletter_vs_promotion",
        "shipping_vs_receipt",
        "invite_in_work_thread",
    ):
        assert tags[required] >= 2, f"problem area {required} has only {tags[required]} emails"
    assert set(tags) <= set(PROBLEM_AREAS)


def test_bodies_are_realistic_not_one_liners(emails):
    words = sorted(len(e.body.split()) for e in emails)
    assert words[len(words) // 2] >= 60, "median golden body is too short to be realistic"


def test_readme_counts_are_current(emails, taxonomy):
    from feedbackloop.golden_readme import update

    assert update(golden_dir() / "README.md", emails, taxonomy, check=True), (
        "golden_set/README.md is stale: run python -m feedbackloop.cli golden-readme"
    )


# ---------------------------------------------------------------- corrupted copies


def _corrupt(tmp_path: Path, line_no: int, mutate) -> Path:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[line_no - 1])
    mutated = mutate(row, lines)
    lines[line_no - 1] = mutated if isinstance(mutated, str) else json.dumps(mutated, ensure_ascii=False)
    out = tmp_path / "golden_set.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _set(field, value):
    def mutate(row, _lines):
        row[field] = value
        return row

    return mutate


def _drop(field):
    def mutate(row, _lines):
        del row[field]
        return row

    return mutate


def _duplicate_id(row, lines):
    row["id"] = json.loads(lines[0])["id"]
    return row


@pytest.mark.parametrize(
    ("line_no", "mutate", "expected"),
    [
        pytest.param(
            17,
            _set("category", "bills"),
            "golden_set.jsonl:17: field 'category': unknown category 'bills'",
            id="unknown-category",
        ),
        pytest.param(
            40,
            _duplicate_id,
            "golden_set.jsonl:40: field 'id': duplicate id 'gs-001' (first on line 1)",
            id="duplicate-id",
        ),
        pytest.param(
            5,
            _set("actions", "pay_invoice"),
            "golden_set.jsonl:5: field 'actions': must be a list",
            id="actions-not-a-list",
        ),
        pytest.param(
            9,
            _set("priority", "urgent"),
            "golden_set.jsonl:9: field 'priority': unknown priority 'urgent'",
            id="unknown-priority",
        ),
        pytest.param(
            12, _drop("subject"), "golden_set.jsonl:12: field 'subject': is missing", id="missing-field"
        ),
        pytest.param(
            3,
            _set("body", "   "),
            "golden_set.jsonl:3: field 'body': must be a non-empty string",
            id="blank-body",
        ),
        pytest.param(
            20,
            _set("problem_areas", ["receipt_vs_bil"]),
            "golden_set.jsonl:20: field 'problem_areas': unknown problem area 'receipt_vs_bil'",
            id="problem-area-typo",
        ),
        pytest.param(
            30,
            _set("actions", ["launch_rocket"]),
            "golden_set.jsonl:30: field 'actions': unknown action 'launch_rocket'",
            id="unknown-action",
        ),
        pytest.param(
            50, lambda row, _l: "{not json", "golden_set.jsonl:50: is not valid JSON", id="broken-json"
        ),
        pytest.param(
            60,
            _set("extra", 1),
            "golden_set.jsonl:60: field 'extra': is not part of the golden-set schema",
            id="unknown-field",
        ),
    ],
)
def test_corrupted_golden_set_is_rejected_naming_the_line(tmp_path, taxonomy, line_no, mutate, expected):
    bad = _corrupt(tmp_path, line_no, mutate)
    with pytest.raises(GoldenSetError) as err:
        load_golden_set(bad, taxonomy)
    assert str(err.value).startswith(expected), str(err.value)
    assert err.value.line == line_no


def test_action_not_allowed_for_category_is_rejected(tmp_path, taxonomy, emails):
    idx = next(i for i, e in enumerate(emails) if e.category == "newsletter")
    bad = _corrupt(tmp_path, idx + 1, _set("actions", ["pay_invoice"]))
    with pytest.raises(GoldenSetError, match="action 'pay_invoice' is not allowed for category 'newsletter'"):
        load_golden_set(bad, taxonomy)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(
            lambda t: t.replace("priority: critical\n", "priority: urgent\n", 1),
            "field 'categories[0].priority': unknown priority 'urgent'",
            id="unknown-priority",
        ),
        pytest.param(
            lambda t: t.replace("actions: [report_phishing, delete]", "actions: [report_phishing, shred]"),
            "field 'categories[1].actions': unknown action 'shred'",
            id="unknown-action",
        ),
        pytest.param(
            lambda t: t.replace("  - id: phishing\n", "  - id: security_alert\n"),
            "field 'categories[1].id': duplicate category id 'security_alert'",
            id="duplicate-category",
        ),
        pytest.param(
            lambda t: t.replace("    type: ads\n", "    type: spam\n", 1),
            "must be 'mail' or 'ads', got 'spam'",
            id="bad-type",
        ),
        pytest.param(lambda t: t + "\n  - : [\n", "is not valid YAML", id="broken-yaml"),
        pytest.param(
            lambda t: t.replace('"Accept, decline or answer an invitation."', "Accept, decline or answer"),
            "field 'actions[14].decline or answer': is not a known key",
            id="unquoted-comma",
        ),
    ],
)
def test_corrupted_taxonomy_is_rejected(tmp_path, edit, expected):
    text = (golden_dir() / "taxonomy.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text(edit(text), encoding="utf-8")
    with pytest.raises(GoldenSetError) as err:
        load_taxonomy(bad)
    assert str(err.value).startswith("taxonomy.yaml: ")
    assert expected in str(err.value)
