"""Unit tests of the synthetic data generators (no database)."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedbackloop.contracts import MAX_BODY_BYTES, Reason
from feedbackloop.golden import PROBLEM_AREAS, default_taxonomy, load_golden_set
from feedbackloop.paths import golden_dir
from feedbackloop.synth import (
    CHALLENGER_VERSION,
    CHAMPION_VERSION,
    TABLE_COLUMNS,
    TABLES,
    AppDataGenerator,
    _vocab,
    confusable_category,
    iter_app_data,
    load_app_data,
    problem_areas_for,
    problem_variant_keys,
    render,
    render_email,
    seed_corpus,
    write_app_data_csv,
)
from feedbackloop.synth.__main__ import main as cli
from feedbackloop.synth.appdata import csv_line
from feedbackloop.synth.corpus import dumps_jsonl
from feedbackloop.textsim import NearDuplicateIndex, normalize_text

TAXONOMY = default_taxonomy()
CATEGORIES = TAXONOMY.category_ids
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 4, tzinfo=UTC)
GOLDEN = golden_dir() / "golden_set.jsonl"
SEED_FILE = golden_dir() / "seed_corpus.jsonl"
_URL_HOST = re.compile(r"https?://([^/\s?]+)")


def _host(sender: str) -> str:
    return sender.rsplit("@", 1)[1].rstrip(">").lower()


# --- email renderer --------------------------------------------------------------------------


@pytest.mark.parametrize("category", [pytest.param(c, id=c) for c in CATEGORIES])
def test_render_email_gives_labelled_varied_emails(category: str) -> None:
    allowed = set(TAXONOMY.category(category).actions)
    texts = set()
    for i in range(60):
        email = render_email(category, random.Random(i))
        assert set(email) == {"sender", "subject", "body", "actions"}
        assert "@" in email["sender"] and email["subject"].strip() and len(email["body"]) > 40
        assert "{" not in email["subject"] + email["body"], "unfilled placeholder"
        assert 1 <= len(email["actions"]) <= 3 and len(set(email["actions"])) == len(email["actions"])
        assert set(email["actions"]) <= allowed
        texts.add(normalize_text(f"{email['sender']} {email['subject']} {email['body']}"))
    assert len(texts) == 60, "two renders were identical"


def test_render_email_is_deterministic_per_rng_state() -> None:
    assert render_email("bill_due", random.Random(3)) == render_email("bill_due", random.Random(3))
    assert render_email("bill_due", random.Random(3)) != render_email("bill_due", random.Random(4))


@pytest.mark.parametrize(
    ("category", "area"), [pytest.param(c, a, id=f"{c}-{a}") for c, a in problem_variant_keys()]
)
def test_problem_area_variants_keep_the_true_label(category: str, area: str) -> None:
    allowed = set(TAXONOMY.category(category).actions)
    for i in range(8):
        email = render(category, random.Random(i), area)
        assert email.category == category and email.problem_area == area
        assert email.confusable in CATEGORIES and email.confusable != category
        assert email.confusable in confusable_category(category, area)
        assert set(email.actions) <= allowed and 1 <= len(email.actions) <= 3
        assert "{" not in email.subject + email.body


def test_every_problem_area_has_a_variant_and_every_category_has_one() -> None:
    assert {a for _, a in problem_variant_keys()} == set(PROBLEM_AREAS)
    for category in CATEGORIES:
        assert "non_english" in problem_areas_for(category)


def test_phishing_as_security_alert_uses_a_lookalike_domain_and_asks_for_credentials() -> None:
    genuine = {d for _, d in _vocab.ACCOUNT_SERVICES + _vocab.BANKS}
    for i in range(30):
        email = render("phishing", random.Random(i), "phishing_as_security_alert")
        host = _host(email.sender)
        assert host not in genuine
        assert any(h.endswith(host) for h in _URL_HOST.findall(email.body)), (
            "the link points at the lookalike domain"
        )
        assert re.search(r"password|verify|sign in|confirm your identity", email.body, re.I)


def test_genuine_security_alerts_link_to_the_real_domain() -> None:
    for i in range(30):
        email = render("security_alert", random.Random(i))
        host = _host(email.sender)
        for url_host in _URL_HOST.findall(email.body):
            assert url_host.endswith(host.split(".", 1)[-1] if host.count(".") > 1 else host)


def test_receipts_never_ask_for_payment_and_bills_always_have_a_due_amount() -> None:
    for i in range(40):
        receipt = render("receipt", random.Random(i), "receipt_vs_bill")
        assert re.search(r"paid|received|charged|no payment|nothing further", receipt.body, re.I)
        assert not re.search(r"amount due: (?![$€£]0\.00)", receipt.body, re.I)
        bill = render("bill_due", random.Random(i), "receipt_vs_bill")
        assert re.search(r"due", bill.body, re.I)


@pytest.mark.parametrize(
    ("category", "area", "message"),
    [
        pytest.param("bills", None, "unknown category", id="unknown-category"),
        pytest.param("receipt", "not_an_area", "unknown problem area", id="unknown-area"),
        pytest.param(
            "newsletter",
            "phishing_as_security_alert",
            "no 'phishing_as_security_alert' variant",
            id="area-not-applicable",
        ),
    ],
)
def test_render_email_rejects_bad_input(category: str, area: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_email(category, random.Random(0), area)


# --- seed corpus -----------------------------------------------------------------------------


def test_seed_corpus_records_are_labelled_and_mostly_plain() -> None:
    rows = seed_corpus(n_per_category=20, seed=3, golden=[])
    assert [r["id"] for r in rows] == [f"seed-{i:05d}" for i in range(1, len(rows) + 1)]
    assert Counter(r["category"] for r in rows) == dict.fromkeys(CATEGORIES, 20)
    for r in rows:
        assert set(r) == {
            "id",
            "sender",
            "subject",
            "body",
            "category",
            "priority",
            "actions",
            "problem_areas",
        }
        assert r["priority"] == TAXONOMY.category(r["category"]).priority
        assert set(r["actions"]) <= set(TAXONOMY.category(r["category"]).actions)
        assert set(r["problem_areas"]) <= set(PROBLEM_AREAS)
    share = sum(bool(r["problem_areas"]) for r in rows) / len(rows)
    assert 0.03 <= share <= 0.07
    assert seed_corpus(n_per_category=20, seed=3, golden=[]) == rows
    assert seed_corpus(n_per_category=20, seed=4, golden=[]) != rows


def test_seed_corpus_rerenders_emails_that_collide_with_the_golden_set() -> None:
    # Pretend some rendered emails are golden: the corpus must route around them.
    probe = seed_corpus(n_per_category=2, seed=5, golden=[])
    fake_golden = [
        (f"g{i}", f"From: {r['sender']}\nSubject: {r['subject']}\n\n{r['body']}")
        for i, r in enumerate(probe[:10])
    ]
    rows = seed_corpus(n_per_category=2, seed=5, golden=fake_golden)
    index = NearDuplicateIndex(fake_golden, threshold=0.5)
    assert not any(
        index.contains(f"From: {r['sender']}\nSubject: {r['subject']}\n\n{r['body']}") for r in rows
    )


def test_seed_corpus_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError, match="n_per_category"):
        seed_corpus(n_per_category=0)


@pytest.mark.skipif(not GOLDEN.exists(), reason="golden_set/golden_set.jsonl does not exist yet")
def test_committed_seed_corpus_is_disjoint_from_the_golden_set() -> None:
    golden = load_golden_set(GOLDEN)
    index = NearDuplicateIndex([(e.id, e.text) for e in golden], threshold=0.5)
    rows = [json.loads(line) for line in SEED_FILE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 150 * len(CATEGORIES)
    hits = [
        (r["id"], index.best_match(f"From: {r['sender']}\nSubject: {r['subject']}\n\n{r['body']}"))
        for r in rows
    ]
    assert [(rid, m) for rid, m in hits if m] == []


@pytest.mark.skipif(not GOLDEN.exists(), reason="golden_set/golden_set.jsonl does not exist yet")
def test_committed_seed_corpus_is_what_the_cli_writes(tmp_path: Path) -> None:
    out = tmp_path / "seed.jsonl"
    assert cli(["seed-corpus", "--out", str(out)]) == 0
    assert out.read_bytes() == SEED_FILE.read_bytes()
    assert out.read_text(encoding="utf-8") == dumps_jsonl(seed_corpus())


# --- app data --------------------------------------------------------------------------------

N_ITEMS = 4000


@pytest.fixture(scope="module")
def items() -> list:
    return list(
        iter_app_data(
            N_ITEMS,
            21,
            START,
            END,
            malformed_fraction=0.05,
            unlabeled_ratio=0.25,
            oversize_body_bytes=MAX_BODY_BYTES + 10_000,
        )
    )


def _csv_bytes(path: Path, **kwargs) -> dict[str, bytes]:
    write_app_data_csv(
        path,
        iter_app_data(
            1500,
            kwargs.pop("seed"),
            START,
            END,
            malformed_fraction=0.05,
            unlabeled_ratio=0.2,
            oversize_body_bytes=MAX_BODY_BYTES + 10,
            **kwargs,
        ),
    )
    return {t: (path / f"{t}.csv").read_bytes() for t in TABLES}


def test_same_seed_gives_identical_csv_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = _csv_bytes(tmp_path / "a", seed=9)
    assert first == _csv_bytes(tmp_path / "b", seed=9)
    other = _csv_bytes(tmp_path / "c", seed=10)
    assert all(first[t] != other[t] for t in TABLES)


def test_items_do_not_depend_on_streaming_order() -> None:
    gen = AppDataGenerator(
        300,
        4,
        START,
        END,
        malformed_fraction=0.1,
        unlabeled_ratio=0.5,
        oversize_body_bytes=MAX_BODY_BYTES + 10,
    )
    streamed = list(gen)
    backwards = AppDataGenerator(
        300,
        4,
        START,
        END,
        malformed_fraction=0.1,
        unlabeled_ratio=0.5,
        oversize_body_bytes=MAX_BODY_BYTES + 10,
    )
    reversed_items = [backwards.item(i) for i in reversed(range(len(backwards)))][::-1]

    def lines(seq: list) -> list[str]:  # serialised, because NaN confidences never compare equal
        return [csv_line(t, row) for item in seq for t in TABLES for row in item.rows(t)]

    assert lines(reversed_items) == lines(streamed)
    assert [i.expected_reason for i in reversed_items] == [i.expected_reason for i in streamed]


@pytest.mark.parametrize("fraction", [pytest.param(f, id=f"{f}") for f in (0.01, 0.02, 0.05, 0.2)])
def test_malformed_fraction_is_met(fraction: float) -> None:
    gen = AppDataGenerator(
        3000,
        8,
        START,
        END,
        malformed_fraction=fraction,
        unlabeled_ratio=0.3,
        oversize_body_bytes=MAX_BODY_BYTES + 10,
    )
    kinds = [gen._malformed_kind(k) for k in range(gen.n_feedback)]  # positions only: no rows needed
    observed = sum(k is not None for k in kinds) / gen.n_feedback
    assert fraction * 0.9 <= observed <= fraction * 1.1


def test_malformed_share_and_kinds_of_generated_items(items: list) -> None:
    labeled = [i for i in items if i.feedback_id]
    assert len(labeled) == N_ITEMS and len(items) == N_ITEMS + 1000
    malformed = [i for i in labeled if i.expected_reason is not None]
    assert 0.045 <= len(malformed) / len(labeled) <= 0.055
    counts = Counter(i.expected_reason for i in malformed)
    assert set(counts) == set(Reason)
    assert max(counts.values()) - min(counts.values()) <= 1, "kinds are balanced"
    assert all(i.expected_reason is None for i in items if i.feedback_id is None)


def _first(rows):
    return rows[0] if rows else None


def test_each_defect_breaks_exactly_its_contract(items: list) -> None:
    categories, actions = set(CATEGORIES), set(TAXONOMY.actions)
    for item in items:
        reason = item.expected_reason
        pred = item.predictions[0]
        email = _first(item.emails)
        body = email[4] if email else None
        corrections = item.category_corrections
        feedback_at = (
            corrections[0][4]
            if corrections
            else (item.action_feedback[0][6] if item.action_feedback else None)
        )
        used_actions = set(pred[7]) | {a for af in item.action_feedback for a in af[3] + af[4]}
        used_categories = {pred[5], *(c[3] for c in corrections)}
        if reason is Reason.NULL_REQUIRED_FIELD:
            assert email is None or body is None or pred[2] is None or pred[5] is None
        elif reason is Reason.UNKNOWN_CATEGORY:
            assert len(used_categories - categories) == 1
        elif reason is Reason.CONFIDENCE_OUT_OF_RANGE:
            assert not 0.0 <= pred[6] <= 1.0
        elif reason is Reason.CONFIDENCE_NAN:
            assert math.isnan(pred[6])
        elif reason is Reason.UNKNOWN_ACTION:
            assert len(used_actions - actions) == 1
        elif reason is Reason.DUPLICATE_FEEDBACK_ID:
            original, dup = corrections
            assert dup[1] == original[1] and dup[0] > original[0]
            assert original[4] < dup[4] < END and dup[3] == original[3]
        elif reason is Reason.TIMESTAMP_OUT_OF_RANGE:
            assert pred[9] > feedback_at and pred[9] >= END
        elif reason is Reason.EMPTY_BODY:
            assert body == b""
        elif reason is Reason.BODY_TOO_LARGE:
            assert len(body) > MAX_BODY_BYTES
            body.decode("utf-8")
        elif reason is Reason.INVALID_UTF8:
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
        if reason is not Reason.UNKNOWN_CATEGORY:
            assert used_categories - {None} <= categories
        if reason is not Reason.UNKNOWN_ACTION:
            assert used_actions <= actions
        if reason is not Reason.DUPLICATE_FEEDBACK_ID:
            assert len(corrections) <= 1
        if reason is None:
            assert email is not None and None not in (pred[2], pred[5], body)
            assert 0.0 <= pred[6] <= 1.0 and 0 < len(body) <= MAX_BODY_BYTES
            body.decode("utf-8")
            assert pred[5] in categories and set(pred[7]) <= set(TAXONOMY.category(pred[5]).actions)


def test_feedback_rows_and_times(items: list) -> None:
    duplicates = sum(i.expected_reason is Reason.DUPLICATE_FEEDBACK_ID for i in items)
    assert sum(i.feedback_rows for i in items) == N_ITEMS + duplicates
    for item in items:
        pred = item.predictions[0]
        if item.feedback_id is None:
            assert not item.category_corrections and not item.action_feedback
            assert START <= pred[9] < END
            continue
        assert item.feedback_id == pred[0]
        assert item.category_corrections or item.action_feedback
        feedback_at = (
            item.category_corrections[0][4] if item.category_corrections else item.action_feedback[0][6]
        )
        assert START <= feedback_at < END
        if item.expected_reason is not Reason.TIMESTAMP_OUT_OF_RANGE:
            lag = feedback_at - pred[9]
            assert timedelta(seconds=59) <= lag <= timedelta(days=3)
        for event in item.engagement_events:
            assert event[3] in ("opened", "action_taken", "dismissed")
            if item.expected_reason is not Reason.TIMESTAMP_OUT_OF_RANGE:
                assert event[4] > pred[9]


def test_every_category_is_produced_and_corrections_name_the_truth(items: list) -> None:
    assert {i.true_category for i in items} == set(CATEGORIES)
    assert {i.predictions[0][5] for i in items if i.expected_reason is None} == set(CATEGORIES)
    for item in items:
        if item.expected_reason is None and item.category_corrections:
            assert item.category_corrections[0][3] == item.true_category


def test_model_is_systematically_wrong_on_problem_areas(items: list) -> None:
    valid = [i for i in items if i.feedback_id and i.expected_reason is None]
    plain = [i for i in valid if i.problem_area is None]
    hard = [i for i in valid if i.problem_area]
    err_plain = sum(i.predictions[0][5] != i.true_category for i in plain) / len(plain)
    err_hard = sum(i.predictions[0][5] != i.true_category for i in hard) / len(hard)
    assert err_plain < 0.1 and err_hard > 0.4
    wrong_hard = [i for i in hard if i.predictions[0][5] != i.true_category]
    assert all(
        i.predictions[0][5] in confusable_category(i.true_category, i.problem_area) for i in wrong_hard
    )
    wrong_conf = [i.predictions[0][6] for i in valid if i.predictions[0][5] != i.true_category]
    right_conf = [i.predictions[0][6] for i in valid if i.predictions[0][5] == i.true_category]
    assert 0.5 < sum(c < 0.7 for c in wrong_conf) / len(wrong_conf) < 0.9, "wrong answers are mostly unsure"
    assert sum(c >= 0.8 for c in wrong_conf) > 0, "some are confidently wrong"
    assert sum(right_conf) / len(right_conf) > 0.85


def test_users_are_skewed_and_variants_follow_the_user(items: list) -> None:
    per_user = Counter(i.predictions[0][2] for i in items if i.feedback_id and i.predictions[0][2])
    top = sum(n for _, n in per_user.most_common(max(1, len(per_user) // 100)))
    assert top / sum(per_user.values()) > 0.15, "the top 1 % of users give much of the feedback"
    variant_of: dict[str, set[str]] = {}
    for item in items:
        pred = item.predictions[0]
        assert (pred[3], pred[4]) in {(CHAMPION_VERSION, "champion"), (CHALLENGER_VERSION, "challenger")}
        if pred[2]:
            variant_of.setdefault(pred[2], set()).add(pred[4])
    assert all(len(v) == 1 for v in variant_of.values())
    share = sum(v == {"challenger"} for v in variant_of.values()) / len(variant_of)
    assert 0.02 < share < 0.09


def test_latency_is_lognormal_with_p95_near_350ms(items: list) -> None:
    latencies = sorted(i.predictions[0][8] for i in items)
    assert 300 <= latencies[int(0.95 * len(latencies))] <= 400
    assert 140 <= latencies[len(latencies) // 2] <= 190


def test_sql_metacharacter_rows_are_valid(items: list) -> None:
    marked = [i for i in items if i.has_sql_metachar]
    assert len(marked) >= 40
    assert all(i.expected_reason is None for i in marked)
    pattern = re.compile(r"DROP TABLE|DELETE FROM|O'Reilly|\\|%s|pg_sleep|\"quote\"")

    def texts(item) -> str:
        email = item.emails[0]
        notes = " ".join(af[5] or "" for af in item.action_feedback)
        return f"{email[3]} {email[4].decode('utf-8')} {notes}"

    assert all(pattern.search(texts(i)) for i in marked)
    assert any("'; DROP TABLE app.predictions; --" in texts(i) for i in marked)


def test_csv_lines_round_trip_through_a_csv_parser(items: list) -> None:
    limit = csv.field_size_limit(1 << 30)  # oversize bodies are megabytes of hex
    try:
        for item in items[:400]:
            for table in TABLES:
                for row in item.rows(table):
                    (parsed,) = csv.reader(io.StringIO(csv_line(table, row)))
                    assert len(parsed) == len(TABLE_COLUMNS[table])
                    for column, raw, text in zip(TABLE_COLUMNS[table], row, parsed, strict=True):
                        if raw is None:
                            assert text == ""
                        elif column in ("sender", "subject", "note", "category", "corrected_category"):
                            assert text == raw
                        elif column == "body":
                            assert bytes.fromhex(text[2:]) == raw
    finally:
        csv.field_size_limit(limit)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"end": START}, "end", id="empty-window"),
        pytest.param({"n_feedback": -1}, "n_feedback", id="negative-rows"),
        pytest.param({"malformed_fraction": 1.5}, "malformed_fraction", id="fraction-above-one"),
        pytest.param({"unlabeled_ratio": -0.1}, "unlabeled_ratio", id="negative-unlabeled"),
        pytest.param({"challenger_share": 2.0}, "challenger_share", id="share-above-one"),
        pytest.param({"seed": -3}, "seed", id="negative-seed"),
        pytest.param({"oversize_body_bytes": MAX_BODY_BYTES}, "oversize_body_bytes", id="oversize-not-over"),
    ],
)
def test_iter_app_data_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    args = {"n_feedback": 10, "seed": 1, "start": START, "end": END} | kwargs
    with pytest.raises(ValueError, match=message):
        iter_app_data(**args)


def test_item_index_out_of_range_is_rejected() -> None:
    gen = AppDataGenerator(5, 1, START, END)
    with pytest.raises(IndexError):
        gen.item(5)


def test_load_app_data_rejects_a_non_positive_batch() -> None:
    with pytest.raises(ValueError, match="batch_rows"):
        load_app_data(object(), [], batch_rows=0)


def test_cli_writes_one_csv_per_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(
        [
            "app-data-csv",
            "--out",
            str(tmp_path),
            "--rows",
            "200",
            "--seed",
            "2",
            "--start",
            "2025-03-01",
            "--end",
            "2025-03-02T00:00:00Z",
            "--malformed-fraction",
            "0.1",
            "--unlabeled-ratio",
            "0.5",
            "--oversize-body-bytes",
            str(MAX_BODY_BYTES + 1),
        ]
    )
    assert code == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["predictions"] == 300
    for table in TABLES:
        lines = (tmp_path / f"{table}.csv").read_text(encoding="utf-8").count("\n")
        assert lines >= counts[table] + 1  # header, and quoted newlines inside bodies never occur in hex
    header = (tmp_path / "predictions.csv").read_text(encoding="utf-8").split("\n", 1)[0]
    assert header == ",".join(TABLE_COLUMNS["predictions"])


def test_cli_reports_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli(
            [
                "app-data-csv",
                "--out",
                "/nonexistent/x",
                "--rows",
                "5",
                "--seed",
                "1",
                "--start",
                "2025-03-02",
                "--end",
                "2025-03-01",
            ]
        )
        == 2
    )
    assert "end" in capsys.readouterr().err
