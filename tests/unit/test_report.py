"""The gate report: canonical JSON and one self-contained, escaped HTML page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from feedbackloop.evaluation import evaluate
from feedbackloop.gate import gate
from feedbackloop.golden import GoldenEmail, default_taxonomy
from feedbackloop.models.base import Prediction
from feedbackloop.report import render_report_html, render_report_json

TAXONOMY = default_taxonomy()
EVIL_SUBJECT = '<script>alert("x")</script> & <img src="https://evil.example/p.png">'


def _golden() -> list[GoldenEmail]:
    emails = []
    for i, category in enumerate(["phishing", "bill_due", "receipt", "newsletter"] * 5):
        cat = TAXONOMY.category(category)
        subject = EVIL_SUBJECT if i == 1 else f"subject {i}"
        emails.append(
            GoldenEmail(
                f"gs-{i:03d}",
                f"Sender <s{i}@example.com>",
                subject,
                "body",
                category,
                cat.priority,
                cat.actions[:1],
                ("receipt_vs_bill",) if category == "bill_due" else (),
                "",
            )
        )
    return emails


GOLDEN = _golden()


def _result(wrong: set[int], version: str, latency: float = 12.0, confidence: float = 0.9):
    preds = []
    for i, g in enumerate(GOLDEN):
        category = "receipt" if i in wrong else g.category
        preds.append(
            Prediction(g.id, category, confidence, TAXONOMY.category(category).actions[:1], latency + i)
        )
    return evaluate(GOLDEN, preds, TAXONOMY, model_version=version)


CHALLENGER = _result({1, 5}, "v2")  # gs-001 (the evil subject) is a bill predicted as receipt
CHAMPION = _result({5}, "v1", latency=30.0)
DECISION = gate(CHALLENGER.to_dict(), champion=CHAMPION.to_dict())
CONTEXT = {"dag_id": "feedback_retraining", "run_id": "manual__2025-03-01", "data_interval": ["a", "b"]}


class _Checker(HTMLParser):
    """Collects tags and checks that non-void elements are properly nested and closed."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "path", "circle"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Checker:
    checker = _Checker()
    checker.feed(page)
    checker.close()
    return checker


def test_json_is_canonical_and_deterministic():
    first = render_report_json(CHALLENGER, DECISION, CONTEXT, champion=CHAMPION)
    second = render_report_json(
        CHALLENGER.to_dict(), DECISION.to_dict(), dict(reversed(list(CONTEXT.items()))), CHAMPION
    )
    assert first == second
    document = json.loads(first)
    assert list(document) == sorted(document)
    assert document["decision"]["passed"] is False
    assert document["challenger"]["model_version"] == "v2"
    assert document["champion"]["model_version"] == "v1"
    assert document["context"]["run_id"] == "manual__2025-03-01"
    assert first.endswith(b"\n")
    assert json.loads(render_report_json(CHALLENGER, DECISION, {}))["champion"] is None


def test_json_rejects_nan():
    with pytest.raises(ValueError):
        render_report_json(CHALLENGER, DECISION, {"bad": float("nan")})


@pytest.mark.parametrize(
    "champion", [pytest.param(CHAMPION, id="with-champion"), pytest.param(None, id="no-champion")]
)
def test_html_is_self_contained_and_well_formed(champion):
    decision = gate(CHALLENGER.to_dict(), champion=champion.to_dict() if champion else None)
    page = render_report_html(CHALLENGER, decision, CONTEXT, champion=champion)
    for forbidden in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "url(http",
        "@import",
        "<script",
        "<link",
    ):
        assert forbidden not in page.lower(), forbidden
    checker = _parse(page)
    assert checker.errors == []
    assert checker.stack == []
    assert not any(attrs.get("src") or (tag != "a" and attrs.get("href")) for tag, attrs in checker.tags)
    svgs = [attrs["aria-label"] for tag, attrs in checker.tags if tag == "svg"]
    assert svgs == ["Per-category accuracy", "Confusion matrix", "Reliability diagram", "Latency histogram"]
    assert page == render_report_html(CHALLENGER, decision, CONTEXT, champion=champion)  # deterministic


def test_html_shows_verdict_reasons_and_numbers():
    page = render_report_html(CHALLENGER, DECISION, CONTEXT, champion=CHAMPION)
    text = " ".join(_parse(page).text)
    assert "FAILED" in text and "PASSED" not in text
    for reason in DECISION.reasons:
        assert reason in text
    assert "accuracy = 0.9 (required >= 0.95)" in text
    # Overall accuracy 18/20 with its Wilson interval, and the champion's 19/20.
    assert "90.0%" in text and "18/20" in text and "19/20" in text
    low, high = CHALLENGER.slices["overall"].ci_low, CHALLENGER.slices["overall"].ci_high
    assert f"{100 * low:.1f}% – {100 * high:.1f}%" in text
    assert f"{CHALLENGER.latency_ms['p95']:.2f}" in text
    assert "manual__2025-03-01" in text and "feedback_retraining" in text
    assert "champion: v1" in text
    assert re.search(r'class="verdict fail"', page)


def test_html_escapes_email_text():
    page = render_report_html(CHALLENGER, DECISION, CONTEXT)
    assert "<script>" not in page
    assert (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=&quot;https://evil.example/p.png&quot;&gt;"
        in page
    )
    assert not any(tag == "img" for tag, _ in _parse(page).tags)
    # The escaped subject is shown in the misclassified table, as text.
    assert EVIL_SUBJECT in " ".join(_parse(page).text)


def test_passing_report_says_passed_and_lists_no_champion():
    perfect = _result(set(), "v3", confidence=0.99)
    decision = gate(perfect.to_dict())
    page = render_report_html(perfect, decision, {})
    text = " ".join(_parse(page).text)
    assert "PASSED" in text and "no champion yet" in text
    assert "None: every golden email was classified correctly." in text
    assert 'class="verdict pass"' in page
