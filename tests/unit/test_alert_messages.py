"""Slack payloads: every message the project builds passes the Block Kit rules, limits hold.

Each payload is checked by :func:`feedbackloop.alert_messages.validate_blocks` and, when the
reference schema is available (``/work/shared/reference/slack/message_payload.schema.json``
or ``$SLACK_PAYLOAD_SCHEMA``), by that JSON Schema too, so the validator cannot drift from it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.traffic import CATEGORIES, Regression, simulate_traffic

from feedbackloop import monitoring as m
from feedbackloop.alert_messages import (
    BUTTON_TEXT_MAX,
    FIELD_MAX,
    HEADER_MAX,
    TEXT_MAX,
    alert_message,
    alert_opened,
    alert_resolved,
    validate_blocks,
)
from feedbackloop.slack_messages import retraining_summary, task_failure

SCHEMA_PATH = Path(
    os.environ.get("SLACK_PAYLOAD_SCHEMA", "/work/shared/reference/slack/message_payload.schema.json")
)
RUN_URL = "http://localhost:8080/dags/regression_monitor/runs/scheduled__2026-01-14T00%3A00%3A00%2B00%3A00"
DASHBOARD_URL = "https://airflow.example.com/feedbackloop/dashboard"
START = datetime(2026, 1, 5, tzinfo=UTC)
END = START + timedelta(days=9)


@pytest.fixture(scope="module")
def schema_validator():
    if not SCHEMA_PATH.exists():
        return None
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def _assert_valid(payload, schema_validator):
    assert validate_blocks(payload) == []
    if schema_validator is not None:
        errors = [e.message[:200] for e in schema_validator.iter_errors(payload)]
        assert errors == []
    assert payload["text"].strip()


def _incident(result: m.DetectorResult, clear: m.DetectorResult | None = None, alert_id: int = 7) -> dict:
    """An ``ml.alerts`` row as the database returns it (see feedbackloop.alerts)."""
    d = result.to_dict()
    opened = result.window_end
    resolved = None if clear is None else clear.window_end
    return {
        "alert_id": alert_id,
        "detector": result.detector,
        "key": result.key,
        "status": "open" if clear is None else "resolved",
        "metric": result.metric,
        "value": d["value"],
        "threshold": d["threshold"],
        "baseline": d["baseline"],
        "window_start": result.window_start,
        "window_end": result.window_end,
        "opened_at": opened,
        "last_seen_at": opened,
        "resolved_at": resolved,
        "occurrences": 5,
        "summary": result.summary,
        "evidence": {**d["evidence"], "n": d["n"], "p_value": d["p_value"], "status": result.status},
        "resolution_evidence": None if clear is None else clear.to_dict(),
        "opened_by": "regression_monitor/run",
        "resolved_by": None if clear is None else "regression_monitor/later",
        "open_notified_at": None,
        "resolve_notified_at": None,
    }


def _results(regressions) -> dict:
    frame = simulate_traffic(101, START, 9 * 24, regressions=regressions)
    b_start, b_end = m.baseline_period(END)
    baseline = m.summarize_baseline(frame, b_start, b_end)
    return {(r.detector, r.key): r for r in m.evaluate(frame, baseline, END, None, CATEGORIES)}


@pytest.fixture(scope="module")
def firing_and_clear():
    firing = _results(
        [
            Regression(8 * 24 - 6, 9 * 24, accuracy_shift=-0.10, latency_factor=2.5),
            Regression(8 * 24 - 3, 9 * 24, category="phishing", category_share=0.12),
        ]
    )
    firing.update(
        {
            k: v
            for k, v in _results([Regression(8 * 24, 9 * 24, confidence_shift=0.2)]).items()
            if k[0] == m.CALIBRATION
        }
    )
    clear = _results([])
    return firing, clear


@pytest.mark.parametrize(
    ("detector", "key"),
    [
        pytest.param(m.ACCURACY, "all", id="accuracy"),
        pytest.param(m.LATENCY, "all", id="latency"),
        pytest.param(m.CALIBRATION, "all", id="calibration"),
        pytest.param(m.IMBALANCE, "phishing", id="imbalance"),
    ],
)
def test_open_and_resolve_messages_validate_and_carry_the_evidence(
    firing_and_clear, schema_validator, detector, key
):
    firing, clear = firing_and_clear
    assert firing[(detector, key)].status == m.FIRING
    incident = _incident(firing[(detector, key)], clear[(detector, key)])
    opened = alert_opened({**incident, "status": "open", "resolved_at": None}, RUN_URL, DASHBOARD_URL)
    resolved = alert_resolved(incident, RUN_URL, DASHBOARD_URL)
    for payload in (opened, resolved):
        _assert_valid(payload, schema_validator)
        buttons = [e for b in payload["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert [b["url"] for b in buttons] == [RUN_URL, DASHBOARD_URL]
    body = json.dumps(opened, ensure_ascii=False)
    for needle in ("Metric", "Alert line", "Window", "Baseline", "Samples"):
        assert needle in body
    assert "2026-01-13 00:00 UTC → 2026-01-14 00:00 UTC" in body or detector == m.LATENCY
    assert opened["text"].startswith("🚨")
    assert resolved["text"].startswith("✅ Resolved")
    assert "Open for" in json.dumps(resolved, ensure_ascii=False)


def test_alert_message_dispatches_on_kind(firing_and_clear):
    firing, clear = firing_and_clear
    incident = _incident(firing[(m.LATENCY, "all")], clear[(m.LATENCY, "all")])
    assert alert_message("open", incident)["text"].startswith("🚨")
    assert alert_message("resolve", incident)["text"].startswith("✅")
    with pytest.raises(ValueError):
        alert_message("repeat", incident)


def test_long_texts_are_clipped_to_block_kit_limits(firing_and_clear, schema_validator):
    firing, _ = firing_and_clear
    incident = _incident(firing[(m.IMBALANCE, "phishing")])
    incident.update(key="k" * 600, summary="s" * 10_000, metric="share")
    incident["evidence"]["n"] = "9" * 5000
    payload = alert_opened(incident, RUN_URL, DASHBOARD_URL)
    _assert_valid(payload, schema_validator)
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == HEADER_MAX and header.endswith("…")
    assert len(payload["blocks"][1]["text"]["text"]) == TEXT_MAX
    assert all(len(f["text"]) <= FIELD_MAX for f in payload["blocks"][2]["fields"])
    assert len(payload["text"]) <= TEXT_MAX


def test_user_text_cannot_ping_the_channel(firing_and_clear):
    firing, _ = firing_and_clear
    incident = _incident(firing[(m.LATENCY, "all")])
    incident.update(summary="<!channel> look at <https://evil.example|this>")
    payload = alert_opened(incident)
    section = payload["blocks"][1]["text"]["text"]
    assert "<!channel>" not in section and "&lt;!channel&gt;" in section


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("javascript:alert(1)", id="javascript-scheme"),
        pytest.param("airflow/runs/1", id="relative"),
        pytest.param("http://example.com/" + "a" * 3000, id="too-long"),
        pytest.param("http://exa mple.com/", id="whitespace"),
        pytest.param(None, id="missing"),
    ],
)
def test_bad_links_are_left_out_not_sent(firing_and_clear, schema_validator, url):
    firing, _ = firing_and_clear
    payload = alert_opened(_incident(firing[(m.LATENCY, "all")]), run_url=url, dashboard_url=url)
    _assert_valid(payload, schema_validator)
    assert all(b["type"] != "actions" for b in payload["blocks"])


# ------------------------------------------------------------------ feedbackloop.slack_messages


@pytest.mark.parametrize(
    "outcome", [pytest.param(o, id=o) for o in ("deployed", "gate_failed", "failed", "dry_run", "other")]
)
def test_retraining_summaries_validate(schema_validator, outcome):
    stages = {
        "extract": {"rows": 1200},
        "validate": {"rows_valid": 1180, "rows_quarantined": 20},
        "gate": {
            "accuracy": 0.96,
            "critical_accuracy": 0.99,
            "version_id": "v" * 3000,
            "reasons": ["r" * 4000, "<!here> second"],
            "report_html_uri": "file:///tmp/report.html",
        },
        "deploy": {"alias": "challenger", "traffic_share": 0.05},
    }
    payload = retraining_summary("feedback_retraining", "manual__2026", outcome, stages, RUN_URL)
    _assert_valid(payload, schema_validator)


def test_task_failure_validates_with_a_huge_error(schema_validator):
    payload = task_failure(
        "regression_monitor", "scheduled__x", "evaluate_regressions", "E" * 50_000, RUN_URL
    )
    _assert_valid(payload, schema_validator)
    payload = task_failure("d", "r", "t", "short")
    _assert_valid(payload, schema_validator)


# ------------------------------------------------------------------------- the validator

_OK_TEXT = {"type": "mrkdwn", "text": "ok"}


@pytest.mark.parametrize(
    ("payload", "problem", "schema_agrees"),
    [
        pytest.param({}, "needs text or blocks", True, id="empty"),
        pytest.param({"blocks": [{"type": "divider"}]}, "plain-text fallback", False, id="no-text-fallback"),
        pytest.param({"text": ""}, "length 0", True, id="empty-text"),
        pytest.param({"text": "x", "blocks": []}, "1..50 blocks", True, id="no-blocks"),
        pytest.param(
            {"text": "x", "blocks": [{"type": "divider"}] * 51}, "1..50 blocks", True, id="51-blocks"
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "banner"}]}, "unsupported block type", True, id="unknown-type"
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "length 151",
            True,
            id="header-151",
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
            "plain_text",
            True,
            id="header-mrkdwn",
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "section"}]}, "text or fields", True, id="empty-section"
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}]},
            "length 3001",
            True,
            id="section-3001",
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "section", "fields": [_OK_TEXT] * 11}]},
            "1..10 text objects",
            True,
            id="11-fields",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            },
            "length 2001",
            True,
            id="field-2001",
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "section", "text": _OK_TEXT, "colour": "red"}]},
            "unexpected property colour",
            True,
            id="extra-property",
        ),
        pytest.param(
            {"text": "x", "blocks": [{"type": "context", "elements": [_OK_TEXT] * 11}]},
            "1..10 elements",
            True,
            id="context-11",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "b" * (BUTTON_TEXT_MAX + 1)},
                            }
                        ],
                    }
                ],
            },
            "length 76",
            True,
            id="button-text-76",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {"type": "button", "text": {"type": "plain_text", "text": "b"}, "url": "ftp://x/"}
                        ],
                    }
                ],
            },
            "http(s) URL",
            False,
            id="button-ftp-url",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {"type": "button", "text": {"type": "plain_text", "text": "b"}, "style": "loud"}
                        ],
                    }
                ],
            },
            "primary",
            True,
            id="button-style",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [{"type": "divider", "block_id": "a"}, {"type": "divider", "block_id": "a"}],
            },
            "duplicate id",
            False,
            id="duplicate-block-id",
        ),
        pytest.param(
            {
                "text": "x",
                "blocks": [
                    {"type": "markdown", "text": "m" * 7000},
                    {"type": "markdown", "text": "m" * 7000},
                ],
            },
            "markdown blocks hold 14000",
            False,
            id="markdown-total",
        ),
        pytest.param("not a payload", "must be an object", True, id="not-an-object"),
    ],
)
def test_validator_rejects_rule_violations(schema_validator, payload, problem, schema_agrees):
    problems = validate_blocks(payload)
    assert problems, "the validator accepted an invalid payload"
    assert any(problem in p for p in problems), problems
    if schema_agrees and schema_validator is not None:
        # The rule comes from the reference schema: it must reject the payload too.
        assert not schema_validator.is_valid(payload)
