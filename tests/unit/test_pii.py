"""PII redaction: detectors, hard negatives, and recall / precision on the labelled corpus."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from feedbackloop.pii import (
    PII_TYPES,
    PLACEHOLDERS,
    find_pii,
    iban_valid,
    load_pii_corpus,
    luhn_valid,
    pii_scores,
    redact,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pii_corpus.jsonl"


@pytest.fixture(scope="module")
def corpus():
    return load_pii_corpus(CORPUS)


@pytest.fixture(scope="module")
def scores(corpus):
    return pii_scores(corpus)


# --- detectors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("write to ann.lee+x@mail.example.co.uk.", "write to [EMAIL].", id="email"),
        pytest.param("From: Bank <alerts@bank.example>", "From: Bank <[EMAIL]>", id="email-angle"),
        pytest.param("call (555) 123-4567 now", "call [PHONE] now", id="phone-us"),
        pytest.param("tel +44 20 7946 0958.", "tel [PHONE].", id="phone-intl"),
        pytest.param("appelez 06 12 34 56 78", "appelez [PHONE]", id="phone-fr"),
        pytest.param("Ruf an: 030/12345678", "Ruf an: [PHONE]", id="phone-de-slash"),
        pytest.param("call me at 2125551234", "call me at [PHONE]", id="phone-bare-after-keyword"),
        pytest.param("visa 4111 1111 1111 1111 ok", "visa [CARD] ok", id="card-spaced"),
        pytest.param("amex 3782-822463-10005", "amex [CARD]", id="card-amex-dashes"),
        pytest.param("pay to DE89 3704 0044 0532 0130 00 BIC X", "pay to [IBAN] BIC X", id="iban-spaced"),
        pytest.param("NL91ABNA0417164300.", "[IBAN].", id="iban-compact"),
        pytest.param("SSN 123-45-6789", "SSN [SSN]", id="ssn-dashed"),
        pytest.param(
            "social security number 078 05 1120", "social security number [SSN]", id="ssn-spaced-keyword"
        ),
        pytest.param("ship to 221B Baker Street, London", "ship to [ADDRESS], London", id="address-en"),
        pytest.param("Lieferung: Hauptstraße 12", "Lieferung: [ADDRESS]", id="address-de"),
        pytest.param("au 12 rue de la Paix", "au [ADDRESS]", id="address-fr"),
    ],
)
def test_redacts(text, expected):
    assert redact(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Order number 4111 1111 1111 1112 shipped", id="card-shaped-order-fails-luhn"),
        pytest.param("Your order #112-3456789-1234567", id="amazon-order"),
        pytest.param("Tracking 1Z999AA10123456784", id="ups-tracking"),
        pytest.param("USPS 9400 1000 0000 0000 0000 00", id="usps-tracking"),
        pytest.param("due 2024-03-15 at 14:30", id="iso-date-time"),
        pytest.param("Termin 05.06.2024 14:30 Uhr", id="german-date-time"),
        pytest.param("Total $1,234.56 incl. tax", id="amount"),
        pytest.param("Version 10.0.19041.1234", id="build-number"),
        pytest.param("Server 192.168.100.254", id="ip-address"),
        pytest.param("DE89 3704 0044 0532 0130 01", id="iban-bad-checksum"),
        pytest.param("Booking reference 020 7946 0958", id="reference-after-keyword"),
        pytest.param("Membership no. 0044 1234 5678", id="member-number-00"),
        pytest.param("5 Easy Ways to save", id="listicle"),
        pytest.param("Lot 666-12-3456", id="invalid-ssn-area"),
        pytest.param("Call between 9:00 and 17:00", id="phone-word-times-only"),
        pytest.param("Contact: jane@company", id="email-without-tld"),
        pytest.param("Account ending in 4321", id="last-four"),
    ],
)
def test_keeps_hard_negatives(text):
    redacted, counts = redact(text)
    assert redacted == text
    assert sum(counts.values()) == 0


def test_counts_have_every_type_in_order():
    text = "a@b.io, c@d.io, +1 212 555 0187, 4111111111111111"
    redacted, counts = redact(text)
    assert list(counts) == list(PII_TYPES)
    assert counts == {"email": 2, "phone": 1, "card": 1, "iban": 0, "ssn": 0, "address": 0}
    assert redacted == "[EMAIL], [EMAIL], [PHONE], [CARD]"
    assert PLACEHOLDERS == {t: f"[{t.upper()}]" for t in PII_TYPES}


def test_keep_email_domain():
    assert (
        redact("PayPal <service@paypa1-secure.com>", keep_email_domain=True)[0]
        == "PayPal <[EMAIL]@paypa1-secure.com>"
    )
    assert redact("PayPal <service@paypa1-secure.com>")[0] == "PayPal <[EMAIL]>"


def test_overlaps_resolve_by_priority():
    # The IBAN contains digit groups a phone detector would also like; the IBAN wins.
    matches = find_pii("IBAN GB82 WEST 1234 5698 7654 32 call 0800 123 4567")
    assert [(m.type, m.value) for m in matches] == [
        ("iban", "GB82 WEST 1234 5698 7654 32"),
        ("phone", "0800 123 4567"),
    ]
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:], strict=False))


def test_redaction_is_idempotent(corpus):
    for rec in corpus:
        once = redact(rec["text"])[0]
        assert redact(once) == (once, dict.fromkeys(PII_TYPES, 0)), rec["id"]


def test_empty_and_non_string_input():
    assert redact("") == ("", dict.fromkeys(PII_TYPES, 0))
    with pytest.raises(TypeError):
        redact(None)  # type: ignore[arg-type]


def test_large_text_is_fast():
    text = "Hello, call +44 20 7946 0958 or mail a.b@example.com about order 4111 1111 1111 1112. " * 3000
    start = time.perf_counter()
    _, counts = redact(text)
    assert counts["phone"] == 3000 and counts["email"] == 3000 and counts["card"] == 0
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    "digits, valid",
    [
        pytest.param("4111111111111111", True, id="visa"),
        pytest.param("378282246310005", True, id="amex"),
        pytest.param("4111111111111112", False, id="off-by-one"),
        pytest.param("4111-1111", False, id="non-digits"),
    ],
)
def test_luhn(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    "iban, valid",
    [
        pytest.param("DE89 3704 0044 0532 0130 00", True, id="de"),
        pytest.param("GB82WEST12345698765432", True, id="gb"),
        pytest.param("DE89 3704 0044 0532 0130 01", False, id="bad-checksum"),
        pytest.param("DE89 3704 0044 0532 0130", False, id="too-short"),
        pytest.param("ZZ89 3704 0044 0532 0130 00", False, id="unknown-country"),
        pytest.param("gb82west12345698765432", False, id="lower-case"),
    ],
)
def test_iban(iban, valid):
    assert iban_valid(iban) is valid


# --- the labelled corpus ----------------------------------------------------------------------------


def test_corpus_is_large_and_varied(corpus):
    assert len(corpus) >= 150
    negatives = [r for r in corpus if not r["spans"]]
    assert len(negatives) >= 40, "the corpus needs hard negatives"
    types = {s["type"] for r in corpus for s in r["spans"]}
    assert types == set(PII_TYPES)
    assert len({r["id"] for r in corpus}) == len(corpus)


def test_corpus_loader_rejects_a_bad_span(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {
                "id": "x",
                "text": "mail a@b.io",
                "spans": [{"type": "email", "start": 0, "end": 4, "value": "a@b.io"}],
            }
        )
        + "\n"
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:1: span 0:4"):
        load_pii_corpus(bad)


def test_corpus_recall_and_precision(scores):
    per_type = scores["per_type"]
    # Report every figure (visible with pytest -s / in the CI log on failure).
    print("\nPII corpus:", scores["lines"], "lines")
    for t in PII_TYPES:
        print(
            f"  {t:8s} support={per_type[t]['support']:3d} recall={per_type[t]['recall']} precision={per_type[t]['precision']}"
        )
    print("  overall", scores["overall"], "any_type_recall", scores["any_type_recall"])
    for t in ("email", "phone", "card"):
        assert per_type[t]["recall"] >= 0.99, (t, [m for m in scores["missed"] if m["type"] == t])
    for t in ("iban", "ssn", "address"):
        assert per_type[t]["recall"] >= 0.9, (t, [m for m in scores["missed"] if m["type"] == t])
    assert scores["overall"]["precision"] >= 0.95, scores["false_positives"]
    assert scores["any_type_recall"] >= 0.99


def test_scores_detect_misses_and_false_positives():
    corpus = [
        {
            "id": "a",
            "text": "mail jo at example dot com",
            "spans": [{"type": "email", "start": 5, "end": 26, "value": "jo at example dot com"}],
        },
        {"id": "b", "text": "card 4111 1111 1111 1111", "spans": []},
    ]
    scores = pii_scores(corpus)
    assert scores["per_type"]["email"] == {"support": 1, "detected": 0, "recall": 0.0, "precision": None}
    assert scores["per_type"]["card"] == {"support": 0, "detected": 1, "recall": None, "precision": 0.0}
    assert scores["missed"] == [{"id": "a", "type": "email", "value": "jo at example dot com"}]
    assert scores["false_positives"] == [{"id": "b", "type": "card", "value": "4111 1111 1111 1111"}]
