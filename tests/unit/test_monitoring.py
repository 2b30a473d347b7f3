"""Regression detectors: each fires on an injected regression and stays silent on normal noise.

Traffic comes from :mod:`tests.traffic` (a seeded simulation with realistic hour-to-hour and
day-to-day variation). The false-alarm rate is measured over 200 simulated quiet days.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.traffic import CATEGORIES, Regression, simulate_traffic

from feedbackloop import monitoring as m

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 9
END = START + timedelta(days=DAYS)  # evaluation time: 8 days of history before the last 24 h
LAST_DAY = (DAYS - 1) * 24


def _evaluate(frame: pd.DataFrame, end: datetime = END, thresholds: m.Thresholds | None = None):
    t = thresholds or m.Thresholds()
    b_start, b_end = m.baseline_period(end, t)
    baseline = m.summarize_baseline(frame, b_start, b_end)
    return {(r.detector, r.key): r for r in m.evaluate(frame, baseline, end, t, CATEGORIES)}


def _firing(results) -> set[str]:
    return {f"{d}:{k}" for (d, k), r in results.items() if r.status == m.FIRING}


@pytest.fixture(scope="module")
def quiet() -> pd.DataFrame:
    return simulate_traffic(101, START, DAYS * 24)


def test_quiet_traffic_fires_nothing_and_clears_everything(quiet):
    results = _evaluate(quiet)
    assert _firing(results) == set()
    assert results[(m.ACCURACY, "all")].status == m.CLEAR
    assert results[(m.LATENCY, "all")].status == m.CLEAR
    assert results[(m.CALIBRATION, "all")].status == m.CLEAR
    assert {r.status for (d, _), r in results.items() if d == m.IMBALANCE} == {m.CLEAR}
    assert len([k for k in results if k[0] == m.IMBALANCE]) == len(CATEGORIES)


@pytest.mark.parametrize(
    ("regression", "detector", "key"),
    [
        pytest.param(
            # P(correct) - 10 points (clipped at 1 for confident answers): accuracy falls ~7 points.
            Regression(LAST_DAY - 6, DAYS * 24, accuracy_shift=-0.10),
            m.ACCURACY,
            "all",
            id="accuracy-drop-7-points",
        ),
        pytest.param(
            Regression(DAYS * 24 - 2, DAYS * 24, latency_factor=2.2), m.LATENCY, "all", id="latency-x2.2"
        ),
        pytest.param(
            Regression(LAST_DAY, DAYS * 24, confidence_shift=0.2),
            m.CALIBRATION,
            "all",
            id="overconfident-by-20-points",
        ),
        pytest.param(
            Regression(LAST_DAY - 3, DAYS * 24, category="phishing", category_share=0.12),
            m.IMBALANCE,
            "phishing",
            id="phishing-wave-3-to-12-percent",
        ),
    ],
)
def test_detector_fires_on_injected_regression(regression, detector, key):
    frame = simulate_traffic(101, START, DAYS * 24, regressions=[regression])
    results = _evaluate(frame)
    assert results[(detector, key)].status == m.FIRING, results[(detector, key)].summary
    # Only the injected signal fires (an accuracy drop with unchanged confidence is also a
    # calibration shift, so that pair may fire together).
    allowed = {f"{detector}:{key}"} | ({f"{m.CALIBRATION}:all"} if detector == m.ACCURACY else set())
    assert _firing(results) <= allowed


def test_accuracy_drop_must_be_sustained_not_a_burst():
    # Three terrible hours pull the 24 h accuracy well below the line, but only in one block.
    burst = Regression(LAST_DAY + 10, LAST_DAY + 13, accuracy_shift=-0.6)
    results = _evaluate(simulate_traffic(101, START, DAYS * 24, regressions=[burst]))
    acc = results[(m.ACCURACY, "all")]
    assert acc.value < acc.threshold  # the 24 h point estimate is below the alert line
    assert acc.evidence["sustained"] is False
    assert acc.status == m.HOLD


def test_quiet_hour_cannot_fire_latency():
    # The last hour is nearly empty and very slow: below the minimum sample, no verdict.
    slow = Regression(DAYS * 24 - 1, DAYS * 24, latency_factor=4.0)
    frame = simulate_traffic(101, START, DAYS * 24, regressions=[slow], quiet_hours=[DAYS * 24 - 1])
    result = m.detect_latency(frame, END)
    assert result.n < m.Thresholds().latency_min_samples
    assert result.status == m.INSUFFICIENT


def test_minimum_sample_guard_blocks_accuracy_on_thin_data():
    thin = simulate_traffic(
        5, START, DAYS * 24, rate=8.0, regressions=[Regression(LAST_DAY, DAYS * 24, accuracy_shift=-0.3)]
    )
    results = _evaluate(thin)
    assert results[(m.ACCURACY, "all")].status == m.INSUFFICIENT
    assert results[(m.CALIBRATION, "all")].status == m.INSUFFICIENT


def test_false_alarm_rate_over_200_quiet_days_is_at_most_5_percent():
    """200 quiet days (after 8 days of history), seed 20261127.

    The 24 h detectors are evaluated twice a day (every 12 h) and the 1 h latency detector
    every 3 h; a day counts as a false alarm when any evaluation fires.
    """
    quiet_days = 200
    history = 8
    frame = simulate_traffic(20261127, START, (history + quiet_days) * 24)
    at = frame["predicted_at"].to_numpy(dtype="datetime64[ns]")
    t = m.Thresholds()

    def rows(lo: datetime, hi: datetime) -> pd.DataFrame:
        i, j = np.searchsorted(
            at, [np.datetime64(lo.replace(tzinfo=None), "ns"), np.datetime64(hi.replace(tzinfo=None), "ns")]
        )
        return frame.iloc[i:j]

    days_fired = {d: 0 for d in m.DETECTORS}
    any_fired = 0
    evaluations = 0
    for day in range(history, history + quiet_days):
        fired: set[str] = set()
        for hour in range(3, 25, 3):
            end = START + timedelta(days=day, hours=hour)
            if hour % 12 == 0:
                b_start, b_end = m.baseline_period(end, t)
                baseline = m.summarize_baseline(rows(b_start, b_end), b_start, b_end)
                results = m.evaluate(rows(end - timedelta(hours=24), end), baseline, end, t, CATEGORIES)
            else:
                results = [m.detect_latency(rows(end - timedelta(hours=1), end), end, t)]
            evaluations += len(results)
            fired |= {r.detector for r in results if r.status == m.FIRING}
        for d in fired:
            days_fired[d] += 1
        any_fired += bool(fired)
    rates = {d: n / quiet_days for d, n in days_fired.items()}
    overall = any_fired / quiet_days
    print(
        f"\nfalse-alarm rate over {quiet_days} quiet days: {overall:.1%} (per detector: "
        + ", ".join(f"{d} {r:.1%}" for d, r in rates.items())
        + f"; {evaluations} results)"
    )
    assert overall <= 0.05, rates
    assert all(r <= 0.05 for r in rates.values()), rates


# --------------------------------------------------------------------------- building blocks


def test_detectors_do_not_mutate_their_input(quiet):
    before = quiet.copy(deep=True)
    _evaluate(quiet)
    m.detect_accuracy_drop(quiet, m.summarize_baseline(quiet, START, END - timedelta(days=1)), END)
    pd.testing.assert_frame_equal(quiet, before)


def test_results_are_json_safe_and_round_trip(quiet):
    for result in _evaluate(quiet).values():
        data = result.to_dict()
        json.dumps(data, allow_nan=False)
        again = m.DetectorResult.from_dict(json.loads(json.dumps(data)))
        assert again.to_dict() == data


def test_evaluation_is_deterministic_and_ignores_row_order(quiet):
    first = [r.to_dict() for r in _evaluate(quiet).values()]
    again = [r.to_dict() for r in _evaluate(quiet.copy()).values()]
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    shuffled = [r.to_dict() for r in _evaluate(quiet.sample(frac=1.0, random_state=3)).values()]
    for a, b in zip(first, shuffled, strict=True):
        assert (a["detector"], a["key"], a["status"], a["n"]) == (
            b["detector"],
            b["key"],
            b["status"],
            b["n"],
        )
        assert a["value"] == pytest.approx(b["value"], rel=1e-9)


def test_holm_adjustment_matches_hand_computation():
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; max(0.06, 0.04 * 1) = 0.06
    assert m.holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert m.holm_adjust([]) == []
    assert m.holm_adjust([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_ece_noise_floor_matches_simulated_calibrated_models():
    rng = np.random.default_rng(0)
    conf = np.clip(rng.beta(8.0, 1.5, size=800), 0.3, 0.999)
    floor = m.ece_noise_floor(conf)
    from feedbackloop.evaluation import expected_calibration_error

    simulated = [expected_calibration_error(conf, rng.random(conf.size) < conf)["ece"] for _ in range(200)]
    assert floor == pytest.approx(float(np.mean(simulated)), rel=0.25)
    assert m.ece_noise_floor([]) == 0.0


def test_baseline_counts_only_the_champion():
    frame = simulate_traffic(7, START, 48)
    base = m.summarize_baseline(frame, START, START + timedelta(hours=48))
    champion = frame[frame["variant"] == "champion"]
    assert base.predictions == len(champion)
    assert base.labelled == int(champion["has_feedback"].sum())
    assert base.correct == int(champion["correct"].sum())
    assert sum(base.category_counts.values()) == len(champion)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"max_ece": "0.2", "accuracy_min_samples": "150"},
            {"max_ece": 0.2, "accuracy_min_samples": 150},
            id="strings",
        ),
        pytest.param({"latency_p95_ms": 750}, {"latency_p95_ms": 750.0}, id="int-for-float"),
        pytest.param({"max_ece": None}, {"max_ece": 0.10}, id="none-keeps-default"),
    ],
)
def test_thresholds_from_mapping(overrides, expected):
    t = m.Thresholds.from_mapping(overrides)
    for name, value in expected.items():
        assert getattr(t, name) == value


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"max_eee": 0.1}, id="unknown-name"),
        pytest.param({"max_ece": "ten percent"}, id="not-a-number"),
        pytest.param({"accuracy_min_samples": 12.5}, id="fractional-count"),
        pytest.param({"accuracy_alpha": 1.5}, id="alpha-out-of-range"),
        pytest.param({"latency_p95_ms": -1}, id="negative"),
        pytest.param({"max_ece": math.inf}, id="infinite"),
        pytest.param({"accuracy_min_blocks_below": 5}, id="more-blocks-than-exist"),
        pytest.param({"accuracy_window_hours": 0}, id="empty-window"),
    ],
)
def test_thresholds_reject_bad_values(overrides):
    with pytest.raises(ValueError):
        m.Thresholds.from_mapping(overrides)


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(pd.DataFrame({"prediction_id": []}), id="missing-columns"),
    ],
)
def test_detectors_reject_frames_without_the_columns(frame):
    with pytest.raises(ValueError, match="lacks column"):
        m.detect_latency(frame, END)


def test_detectors_reject_naive_times(quiet):
    with pytest.raises(ValueError, match="time zone"):
        m.detect_latency(quiet, END.replace(tzinfo=None))
