"""The alert state machine (feedbackloop.alerts.transition) for every status and incident state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedbackloop.alerts import transition

T = datetime(2026, 3, 10, 12, tzinfo=UTC)
OPEN = {"opened_at": T - timedelta(hours=3), "last_seen_at": T - timedelta(hours=1)}


@pytest.mark.parametrize(
    ("status", "incident", "covered", "expected"),
    [
        pytest.param("firing", None, False, ("open", "opened"), id="firing-opens"),
        pytest.param("firing", OPEN, False, ("none", "suppressed"), id="firing-repeat-suppressed"),
        pytest.param("firing", None, True, ("none", "already covered"), id="firing-rerun-of-resolved-hour"),
        pytest.param("clear", OPEN, False, ("resolve", "resolved"), id="clear-resolves"),
        pytest.param("clear", None, False, ("none", "no open incident"), id="clear-nothing-open"),
        pytest.param(
            "clear",
            {"opened_at": T - timedelta(hours=3), "last_seen_at": T},
            False,
            ("none", "stale evaluation"),
            id="clear-older-than-last-firing",
        ),
        pytest.param("hold", OPEN, False, ("none", "inconclusive"), id="hold-keeps-open"),
        pytest.param("hold", None, False, ("none", "inconclusive"), id="hold-opens-nothing"),
        pytest.param(
            "insufficient_data", OPEN, False, ("none", "insufficient data"), id="quiet-hour-keeps-open"
        ),
        pytest.param(
            "insufficient_data", None, False, ("none", "insufficient data"), id="quiet-hour-opens-nothing"
        ),
    ],
)
def test_transition(status, incident, covered, expected):
    assert transition(status, T, incident, covered) == expected


def test_unknown_status_is_rejected():
    with pytest.raises(ValueError, match="unknown detector status"):
        transition("exploded", T, None)
