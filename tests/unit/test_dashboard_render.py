"""The dashboard page renderer: pure functions of panel dicts (no Airflow, no database)."""

from __future__ import annotations

import re

import pytest

from feedbackloop.dashboard_data import PANELS
from feedbackloop_dashboard import render

WINDOW = {
    "days": 7,
    "first_day": "2026-10-19",
    "last_day": "2026-10-25",
    "as_of": "2026-10-25T12:00:00+00:00",
}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _data(**panels):
    base = {
        name: {"panel": name, "available": False, "empty": True, "reason": f"ml.{name} does not exist yet"}
        for name in PANELS
    }
    base.update(panels)
    return {"as_of": WINDOW["as_of"], "window": WINDOW, "summary": {"refreshed_at": None}, "panels": base}


def _sections(html):
    return {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(
            r'data-panel="([a-z_]+)" data-available="(true|false)" data-empty="(true|false)"', html
        )
    }


def test_unavailable_panels_say_why():
    html = render.render_page(_data(), 7)
    assert _sections(html) == dict.fromkeys(PANELS, ("false", "true"))
    assert "Not available: ml.alerts does not exist yet" in html


def test_empty_panels_show_an_explicit_empty_state():
    empty = {name: {"panel": name, "available": True, "empty": True} for name in PANELS}
    html = render.render_page(_data(**empty), 30)
    assert _sections(html) == dict.fromkeys(PANELS, ("true", "true"))
    assert "No open alerts." in html and "No predictions in the last 30 days." in html
    assert 'href="?days=30" aria-current=page' in html


def test_text_from_the_database_is_escaped():
    misclassified = {
        "panel": "misclassifications",
        "available": True,
        "empty": False,
        "window": WINDOW,
        "rows": [
            {
                "corrected_at": "2026-10-25T10:00:00+00:00",
                "predicted_category": "bill_due",
                "corrected_category": HOSTILE,
                "confidence": 0.5,
                "variant": "champion",
                "subject": HOSTILE,
            }
        ],
    }
    deployments = {
        "panel": "deployments",
        "available": True,
        "empty": False,
        "deployments": [
            {
                "alias": "champion",
                "version_id": HOSTILE,
                "traffic_share": 1.0,
                "gate_passed": True,
                "updated_at": "2026-10-25T10:00:00+00:00",
                "updated_by": HOSTILE,
                "reason": HOSTILE,
            }
        ],
    }
    html = render.render_page(_data(misclassifications=misclassified, deployments=deployments), 7)
    assert "<script" not in html and "<img" not in html
    assert html.count("&lt;script&gt;") == 5


def test_line_chart_breaks_at_days_without_data():
    days = [f"2026-10-{d}" for d in range(19, 26)]
    values = {
        "2026-10-19": 0.9,
        "2026-10-20": 0.92,
        "2026-10-22": 0.95,
        "2026-10-23": 0.94,
        "2026-10-24": 0.96,
    }
    svg = render.line_chart("t", days, [("v1", "s0", values)], lo=0.8, hi=1.0, ticks=[0.8, 1.0], fmt=str)
    assert svg.count("<polyline") == 2, "two runs: 19-20 and 22-24"
    assert svg.count("<circle") == 5
    assert svg.startswith('<svg class="chart" viewBox="0 0 640 250"')


def test_heatmap_fades_low_sample_cells_and_lists_worst_first():
    panel = {
        "weeks": ["2026-10-12", "2026-10-19"],
        "categories": [{"category": "phishing"}, {"category": "receipt"}],
        "cells": [
            {
                "category": "phishing",
                "week": "2026-10-12",
                "accuracy": 0.7,
                "predictions": 100,
                "low_sample": False,
            },
            {
                "category": "phishing",
                "week": "2026-10-19",
                "accuracy": 0.8,
                "predictions": 5,
                "low_sample": True,
            },
            {
                "category": "receipt",
                "week": "2026-10-19",
                "accuracy": 0.99,
                "predictions": 300,
                "low_sample": False,
            },
        ],
    }
    svg = render.heatmap(panel)
    assert svg.index(">phishing<") < svg.index(">receipt<")
    assert 'class="heat-3"' in svg and 'class="heat-4 low"' in svg and 'class="heat-9"' in svg
    assert svg.count('class="heat-none"') == 1, "receipt has no cell in the first week"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, 1.0, id="zero"),
        pytest.param(1, 1.0, id="one"),
        pytest.param(7, 10.0, id="seven"),
        pytest.param(120, 200.0, id="hundred-twenty"),
        pytest.param(512, 1000.0, id="above-500"),
        pytest.param(500, 500.0, id="exactly-500"),
    ],
)
def test_nice_ceiling(value, expected):
    assert render._nice_ceiling(value) == expected
