"""Rewards: the brief's function (reference), the vectorised frame version and their agreement."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackloop.rewards import (
    REWARD_COLUMNS,
    RewardWeights,
    action_list,
    calculate_reward,
    compute_rewards,
    reference_inputs,
    regret_span,
    sample_weight_factor,
    summarize_rewards,
)

CATEGORIES = ("bill_due", "receipt", "phishing", "promotion")
ACTIONS = ("pay_invoice", "set_payment_reminder", "save_receipt", "report_phishing", "delete", "view_offer")


def record(**overrides):
    base = {
        "predicted_category": "bill_due",
        "confidence": 0.9,
        "predicted_actions": ["pay_invoice"],
        "corrected_category": None,
        "missed_actions": None,
        "unnecessary_actions": None,
        "user_took_action": True,
    }
    base.update(overrides)
    return base


def frame(*records) -> pd.DataFrame:
    return pd.DataFrame(list(records))


# --- weights -----------------------------------------------------------------------------


def test_default_weights_are_the_briefs():
    w = RewardWeights()
    assert (w.classification, w.actions, w.calibration, w.engagement) == (0.4, 0.3, 0.2, 0.1)
    assert w.max_reward == pytest.approx(0.7)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"classification": -0.1, "actions": 0.5}, ">= 0", id="negative"),
        pytest.param({"classification": 0.5}, "sum to 1", id="sum-above-one"),
        pytest.param({"engagement": 0.0}, "sum to 1", id="sum-below-one"),
        pytest.param({"calibration": float("nan")}, "finite", id="nan"),
        pytest.param({"calibration": float("inf")}, "finite", id="inf"),
        pytest.param({"actions": "0.3"}, "number", id="string"),
        pytest.param({"engagement": True}, "number", id="bool"),
    ],
)
def test_invalid_weights_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RewardWeights(**kwargs)


def test_weights_summing_to_one_within_tolerance_are_accepted():
    RewardWeights(classification=0.1 + 0.2, actions=0.3, calibration=0.3, engagement=0.1)
    RewardWeights(classification=1.0, actions=0.0, calibration=0.0, engagement=0.0)


# --- hand-computed cases from the brief ----------------------------------------------------

# (record overrides, classification, actions, calibration, engagement, total)
HAND_CASES = [
    pytest.param({}, 1.0, 0.0, 0.9, 1.0, 0.4 * 1 + 0.2 * 0.9 + 0.1 * 1, id="accepted-confident-engaged"),
    pytest.param(
        {
            "corrected_category": "phishing",
            "confidence": 0.8,
            "missed_actions": ["report_phishing"],
            "unnecessary_actions": ["pay_invoice"],
            "user_took_action": False,
        },
        -1.0,
        -0.8,
        0.2,
        0.0,
        0.4 * -1 + 0.3 * -0.8 + 0.2 * 0.2,
        id="corrected-confidently-wrong",
    ),
    pytest.param(
        {"corrected_category": "bill_due", "confidence": 0.6, "user_took_action": None},
        1.0,
        0.0,
        0.6,
        0.0,
        0.4 + 0.2 * 0.6,
        id="correction-equal-to-prediction-is-correct",
    ),
    pytest.param(
        {"confidence": 0.5, "missed_actions": ["set_payment_reminder", "delete"], "user_took_action": None},
        1.0,
        -1.0,
        0.5,
        0.0,
        0.4 - 0.3 + 0.1,
        id="two-missed-unknown-engagement",
    ),
    pytest.param(
        {"confidence": 1.0, "unnecessary_actions": ["pay_invoice", "delete", "view_offer"]},
        1.0,
        -0.9,
        1.0,
        1.0,
        0.4 - 0.27 + 0.2 + 0.1,
        id="three-unnecessary",
    ),
    pytest.param(
        {"corrected_category": "receipt", "confidence": 0.0, "user_took_action": True},
        -1.0,
        0.0,
        1.0,
        1.0,
        -0.4 + 0.2 + 0.1,
        id="wrong-but-calibrated-zero-confidence",
    ),
    pytest.param(
        {"missed_actions": ["delete", "delete"], "confidence": 0.7},
        1.0,
        -0.5,
        0.7,
        1.0,
        0.4 - 0.15 + 0.14 + 0.1,
        id="duplicate-missed-counts-once",
    ),
]


@pytest.mark.parametrize("overrides, cls, act, cal, eng, total", HAND_CASES)
def test_compute_rewards_matches_hand_computed_values(overrides, cls, act, cal, eng, total):
    out = compute_rewards(frame(record(**overrides))).iloc[0]
    assert out["reward_classification"] == cls
    assert out["reward_actions"] == pytest.approx(act, abs=1e-12)
    assert out["reward_calibration"] == pytest.approx(cal, abs=1e-12)
    assert out["reward_engagement"] == eng
    assert out["reward"] == pytest.approx(total, abs=1e-12)


@pytest.mark.parametrize("overrides, cls, act, cal, eng, total", HAND_CASES)
def test_reference_matches_hand_computed_values(overrides, cls, act, cal, eng, total):
    total_ref, parts = calculate_reward(*reference_inputs(record(**overrides)))
    assert parts == pytest.approx(
        {"classification": cls, "actions": act, "calibration": cal, "engagement": eng}
    )
    assert total_ref == pytest.approx(total, abs=1e-12)


def test_reference_accepts_the_briefs_plain_objects():
    prediction = SimpleNamespace(category="bill_due", confidence=0.75)
    feedback = SimpleNamespace(
        corrected_category="receipt", missed_actions=["save_receipt"], unnecessary_actions=[]
    )
    context = SimpleNamespace(user_took_action=True)
    total, parts = calculate_reward(prediction, feedback, context)
    assert parts == {
        "classification": -1.0,
        "actions": -0.5,
        "calibration": pytest.approx(0.25),
        "engagement": 1.0,
    }
    assert total == pytest.approx(-0.4 - 0.15 + 0.05 + 0.1)


def test_custom_weights_are_used():
    w = RewardWeights(classification=1.0, actions=0.0, calibration=0.0, engagement=0.0)
    out = compute_rewards(frame(record(corrected_category="receipt")), w)
    assert out["reward"].tolist() == [-1.0]
    assert calculate_reward(*reference_inputs(record(corrected_category="receipt")), weights=w)[0] == -1.0


# --- labels and edge cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, label_category, label_actions",
    [
        pytest.param({}, "bill_due", ["pay_invoice"], id="accepted"),
        pytest.param({"corrected_category": "phishing"}, "phishing", ["pay_invoice"], id="corrected"),
        pytest.param(
            {
                "predicted_actions": ["pay_invoice", "delete"],
                "unnecessary_actions": ["delete"],
                "missed_actions": ["set_payment_reminder"],
            },
            "bill_due",
            ["pay_invoice", "set_payment_reminder"],
            id="minus-unnecessary-plus-missed",
        ),
        pytest.param(
            {"predicted_actions": None, "missed_actions": ["delete", "delete"]},
            "bill_due",
            ["delete"],
            id="none-predicted-duplicate-missed",
        ),
        pytest.param(
            {"missed_actions": ["delete"], "unnecessary_actions": ["delete"]},
            "bill_due",
            ["delete", "pay_invoice"],
            id="contradiction-missed-wins",
        ),
        pytest.param(
            {
                "predicted_actions": np.array(["view_offer", "delete"]),
                "unnecessary_actions": np.array([], dtype=object),
            },
            "bill_due",
            ["delete", "view_offer"],
            id="numpy-arrays-from-parquet",
        ),
    ],
)
def test_labels(overrides, label_category, label_actions):
    out = compute_rewards(frame(record(**overrides))).iloc[0]
    assert out["label_category"] == label_category
    assert list(out["label_actions"]) == label_actions


def test_contradictory_action_is_penalised_twice():
    out = compute_rewards(frame(record(missed_actions=["delete"], unnecessary_actions=["delete"]))).iloc[0]
    assert out["reward_actions"] == pytest.approx(-0.8)


def test_nullable_boolean_engagement():
    df = pd.DataFrame(
        [record(user_took_action=True), record(user_took_action=False), record(user_took_action=None)]
    )
    df["user_took_action"] = df["user_took_action"].astype("boolean")
    assert compute_rewards(df)["reward_engagement"].tolist() == [1.0, 0.0, 0.0]


def test_output_is_a_new_frame_and_input_is_untouched():
    df = frame(record(), record(corrected_category="receipt", missed_actions=["save_receipt"]))
    before = df.copy(deep=True)
    out = compute_rewards(df)
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    assert list(out.columns) == list(df.columns) + list(REWARD_COLUMNS)
    assert out.index.equals(df.index)


def test_index_is_preserved():
    df = frame(record(), record(corrected_category="receipt"))
    df.index = [10, 3]
    out = compute_rewards(df)
    assert out.loc[3, "reward_classification"] == -1.0
    assert out.loc[10, "reward_classification"] == 1.0


def test_empty_frame():
    out = compute_rewards(frame(record()).iloc[:0])
    assert len(out) == 0
    assert set(REWARD_COLUMNS) <= set(out.columns)
    assert summarize_rewards(out) == {"rows": 0}


@pytest.mark.parametrize(
    "mutate, error",
    [
        pytest.param(lambda df: df.drop(columns=["confidence"]), "missing column", id="missing-column"),
        pytest.param(lambda df: df.assign(confidence=[float("nan")]), "finite", id="nan-confidence"),
        pytest.param(lambda df: df.assign(confidence=[float("inf")]), "finite", id="inf-confidence"),
        pytest.param(
            lambda df: df.assign(predicted_category=[None]), "predicted_category", id="null-prediction"
        ),
    ],
)
def test_bad_input_raises(mutate, error):
    with pytest.raises(ValueError, match=error):
        compute_rewards(mutate(frame(record())))


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(None, (), id="none"),
        pytest.param(float("nan"), (), id="nan"),
        pytest.param([], (), id="empty"),
        pytest.param(["b", "a", "b"], ("a", "b"), id="dedup-sorted"),
        pytest.param(("x",), ("x",), id="tuple"),
    ],
)
def test_action_list(value, expected):
    assert action_list(value) == expected


@pytest.mark.parametrize("value", [pytest.param("pay_invoice", id="bare-string"), pytest.param(3, id="int")])
def test_action_list_rejects_non_lists(value):
    with pytest.raises(TypeError):
        action_list(value)


def test_summary():
    out = compute_rewards(frame(record(), record(corrected_category="receipt")))
    summary = summarize_rewards(out)
    assert summary["rows"] == 2
    assert summary["correction_rate"] == 0.5
    assert summary["mean_reward"] == pytest.approx(float(out["reward"].mean()), abs=1e-6)


# --- the vectorised path on every input shape ----------------------------------------------------


def _reference_frame(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for record_ in df.to_dict("records"):
        total, parts = calculate_reward(*reference_inputs(record_))
        rows.append({"reward": total, **{f"reward_{k}": v for k, v in parts.items()}})
    return pd.DataFrame(rows, index=df.index)


ARROW_LIST = pd.ArrowDtype(pa.list_(pa.string()))

MIXED = [
    record(
        missed_actions=["delete", None, "delete"], unnecessary_actions=np.array(["pay_invoice"], dtype=object)
    ),
    record(predicted_actions=("view_offer",), missed_actions=float("nan"), corrected_category="promotion"),
    record(predicted_actions=None, missed_actions=[], unnecessary_actions=[None], user_took_action=None),
    record(predicted_actions=[], missed_actions=None, unnecessary_actions=None, confidence=0.0),
]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: frame(*MIXED), id="python-lists-none-nan-numpy"),
        pytest.param(lambda: frame(*MIXED).iloc[1:], id="sliced"),
        pytest.param(
            lambda: frame(
                *(record(predicted_actions=[f"a{k}", "b"], missed_actions=[f"m{k}"]) for k in range(70))
            ),
            id="more-actions-than-mask-bits",
        ),
        pytest.param(
            lambda: pd.DataFrame(
                {
                    "predicted_category": pd.Series(["bill_due", "receipt"], dtype="str"),
                    "confidence": [0.8, 0.4],
                    "predicted_actions": pd.array([["pay_invoice"], None], dtype=ARROW_LIST),
                    "corrected_category": pd.Series([None, "phishing"], dtype="str"),
                    "missed_actions": pd.array([None, ["report_phishing"]], dtype=ARROW_LIST),
                    "unnecessary_actions": pd.array([[], None], dtype=ARROW_LIST),
                    "user_took_action": pd.array([True, None], dtype="boolean"),
                }
            ),
            id="arrow-backed-columns",
        ),
    ],
)
def test_vectorised_path_matches_reference_on_every_input_shape(make):
    df = make()
    out = compute_rewards(df)
    ref = _reference_frame(df)
    for col in ref.columns:
        np.testing.assert_array_equal(out[col].to_numpy(), ref[col].to_numpy())
    for i, rec in enumerate(df.to_dict("records")):
        pred, fb, _ = reference_inputs(rec)
        expected = tuple(sorted((set(pred.actions) - set(fb.unnecessary_actions)) | set(fb.missed_actions)))
        assert tuple(out["label_actions"].iloc[i]) == expected


def test_label_actions_survive_a_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = compute_rewards(frame(*MIXED))
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), tmp_path / "r.parquet")
    back = pq.read_table(tmp_path / "r.parquet").to_pandas()
    assert [list(v) for v in back["label_actions"]] == [list(v) for v in out["label_actions"]]


@pytest.mark.parametrize(
    "cell", [pytest.param("pay_invoice", id="bare-string"), pytest.param("x", id="one-char-string")]
)
def test_a_bare_string_action_cell_is_rejected(cell):
    df = frame(record(), record())
    df["missed_actions"] = pd.Series([None, cell], dtype=object)
    with pytest.raises(TypeError, match="list of strings"):
        compute_rewards(df)


# --- sample weights from rewards ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, factor",
    [
        pytest.param({"confidence": 1.0}, 1.0, id="accepted-certain-engaged"),
        pytest.param({"confidence": 0.9, "user_took_action": False}, 1 + 0.12 / 1.1, id="accepted-unengaged"),
        pytest.param(
            {"confidence": 0.6, "missed_actions": ["delete"]}, 1 + 0.23 / 1.1, id="accepted-one-missed"
        ),
        pytest.param(
            {"corrected_category": "receipt", "confidence": 0.3}, 1 + 0.86 / 1.1, id="corrected-unsure"
        ),
        pytest.param(
            {"corrected_category": "receipt", "confidence": 0.9, "user_took_action": False},
            1 + 1.08 / 1.1,
            id="corrected-confident",
        ),
        pytest.param(
            {"corrected_category": "receipt", "confidence": 0.9, "missed_actions": ["delete"]},
            2.0,
            id="corrected-and-missed-saturates",
        ),
    ],
)
def test_sample_weight_factor_table(overrides, factor):
    reward = compute_rewards(frame(record(**overrides)))["reward"]
    assert sample_weight_factor(reward)[0] == pytest.approx(factor, abs=1e-12)


def test_regret_span():
    assert regret_span() == pytest.approx(1.1)
    assert regret_span(RewardWeights(0.0, 1.0, 0.0, 0.0)) == pytest.approx(0.5)


def test_max_factor_one_turns_reward_weighting_off():
    assert sample_weight_factor([0.7, -0.4, -3.0], max_factor=1.0).tolist() == [1.0, 1.0, 1.0]
    assert sample_weight_factor([0.7, -0.4, -3.0], max_factor=3.0).tolist() == pytest.approx([1.0, 3.0, 3.0])


@pytest.mark.parametrize(
    "reward, max_factor",
    [
        pytest.param([float("nan")], 2.0, id="nan-reward"),
        pytest.param([0.1], 0.5, id="factor-below-one"),
        pytest.param([0.1], float("inf"), id="infinite-factor"),
        pytest.param([0.1], True, id="bool-factor"),
    ],
)
def test_sample_weight_factor_rejects_bad_input(reward, max_factor):
    with pytest.raises(ValueError):
        sample_weight_factor(reward, max_factor=max_factor)


# --- properties ---------------------------------------------------------------------------------

action_lists = st.one_of(st.none(), st.lists(st.sampled_from(ACTIONS), max_size=5))
records = st.fixed_dictionaries(
    {
        "predicted_category": st.sampled_from(CATEGORIES),
        "confidence": st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
        "predicted_actions": action_lists,
        "corrected_category": st.one_of(st.none(), st.sampled_from(CATEGORIES)),
        "missed_actions": action_lists,
        "unnecessary_actions": action_lists,
        "user_took_action": st.sampled_from([True, False, None]),
    }
)


def _normalised_weights(raw: tuple[float, float, float, float]) -> RewardWeights:
    total = sum(raw)
    a, b, c = (x / total for x in raw[:3])
    return RewardWeights(a, b, c, max(0.0, 1.0 - a - b - c))


weights_st = (
    st.tuples(*(st.floats(min_value=0.0, max_value=1.0) for _ in range(4)))
    .filter(lambda t: sum(t) > 0.01)
    .map(_normalised_weights)
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rows=st.lists(records, min_size=1, max_size=25), weights=weights_st)
def test_vectorised_equals_reference(rows, weights):
    out = compute_rewards(pd.DataFrame(rows), weights)
    for i, row in enumerate(rows):
        total, parts = calculate_reward(*reference_inputs(row), weights=weights)
        got = out.iloc[i]
        assert abs(got["reward"] - total) < 1e-12
        for name, value in parts.items():
            assert abs(got[f"reward_{name}"] - value) < 1e-12


@FAST
@given(row=records)
def test_bounds(row):
    w = RewardWeights()
    out = compute_rewards(pd.DataFrame([row]), w).iloc[0]
    assert out["reward_classification"] in (-1.0, 1.0)
    assert out["reward_engagement"] in (0.0, 1.0)
    assert 0.0 <= out["reward_calibration"] <= 1.0
    assert out["reward_actions"] <= 0.0
    n_missed, n_unnecessary = (
        len(action_list(row["missed_actions"])),
        len(action_list(row["unnecessary_actions"])),
    )
    assert out["reward_actions"] == pytest.approx(-0.5 * n_missed - 0.3 * n_unnecessary, abs=1e-12)
    assert out["reward"] <= w.max_reward + 1e-12
    assert out["reward"] >= -w.classification + w.actions * out["reward_actions"] - 1e-12
    assert math.isfinite(out["reward"])


@FAST
@given(row=records, extra=st.sampled_from(ACTIONS + ("track_package",)))
def test_one_more_missed_action_never_raises_the_reward(row, extra):
    more = dict(row, missed_actions=list(action_list(row["missed_actions"])) + [extra])
    out = compute_rewards(pd.DataFrame([row, more]))
    assert out["reward"].iloc[1] <= out["reward"].iloc[0] + 1e-15
    if extra not in action_list(row["missed_actions"]):
        assert out["reward"].iloc[1] == pytest.approx(out["reward"].iloc[0] - 0.3 * 0.5, abs=1e-12)
        assert extra in out["label_actions"].iloc[1]


@FAST
@given(row=records)
def test_correcting_the_category_never_raises_the_reward(row):
    accepted = dict(row, corrected_category=None)
    wrong = dict(row, corrected_category="__other__")
    out = compute_rewards(pd.DataFrame([accepted, wrong]))
    assert out["reward"].iloc[1] < out["reward"].iloc[0]


@FAST
@given(row=records, other=records)
def test_a_lower_reward_never_weighs_less(row, other):
    rewards = compute_rewards(pd.DataFrame([row, other]))["reward"].to_numpy()
    factors = sample_weight_factor(rewards)
    assert ((factors >= 1.0) & (factors <= 2.0)).all()
    if rewards[0] <= rewards[1]:
        assert factors[0] >= factors[1]
