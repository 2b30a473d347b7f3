"""Review-queue logic without a database: priority, problem-area flags, reviewer assignment."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from feedbackloop.golden import default_taxonomy
from feedbackloop.review import (
    CANDIDATE_COLUMNS,
    ReviewPolicy,
    assign_reviewers,
    detect_problem_areas,
    prioritise,
    rotation_order,
)

DAY = date(2026, 4, 8)


def _candidates(rows) -> pd.DataFrame:
    base = {c: None for c in CANDIDATE_COLUMNS}
    out = []
    for i, (category, confidence, owner, body) in enumerate(rows):
        out.append(
            {
                **base,
                "prediction_id": f"p{i:03d}",
                "email_id": f"e{i:03d}",
                "owner_user_id": owner,
                "model_version": "v",
                "predicted_category": category,
                "confidence": confidence,
                "predicted_at": datetime(2026, 4, 8, tzinfo=UTC),
                "subject": "Hello",
                "body": body,
            }
        )
    return pd.DataFrame(out, columns=list(CANDIDATE_COLUMNS))


@pytest.mark.parametrize(
    ("category", "confidence", "body", "priority"),
    [
        pytest.param("phishing", 0.40, "Please verify your account now.", 0.6 * 2.0, id="critical"),
        pytest.param("travel", 0.40, "Your flight leaves at 9.", 0.6 * 1.5, id="high"),
        pytest.param("work", 0.40, "Can you review the deck?", 0.6 * 1.2, id="medium"),
        pytest.param("receipt", 0.40, "Thanks for your order.", 0.6 * 1.0, id="low"),
        pytest.param(
            "receipt",
            0.40,
            "Gracias por su compra. Su pedido está en camino, hola.",
            0.6 * 1.0 * 1.5,
            id="non-english",
        ),
        pytest.param(
            "work",
            0.50,
            "Sounds good.\n\n-----Original Message-----\nFrom: x",
            0.5 * 1.2 * 1.5,
            id="quoted-reply",
        ),
        pytest.param("bills", 0.40, "Pay now.", 0.6 * 2.0, id="unknown-category-weighs-as-critical"),
    ],
)
def test_priority_formula(category, confidence, body, priority):
    ranked = prioritise(_candidates([(category, confidence, "u1", body)]), default_taxonomy())
    assert ranked.loc[0, "priority"] == pytest.approx(priority)


def test_prioritise_orders_and_drops_confident_or_invalid_rows():
    frame = _candidates(
        [
            ("receipt", 0.65, "u", "x"),
            ("phishing", 0.65, "u", "x"),
            ("receipt", 0.69999, "u", "x"),
            ("receipt", 0.70, "u", "x"),  # not below the threshold
            ("receipt", float("nan"), "u", "x"),
            ("receipt", -0.1, "u", "x"),
        ]
    )
    before = frame.copy(deep=True)
    ranked = prioritise(frame, default_taxonomy())
    assert ranked["prediction_id"].tolist() == ["p001", "p000", "p002"]
    pd.testing.assert_frame_equal(frame, before)  # the input is not modified


def test_prioritise_rejects_frames_without_the_columns():
    with pytest.raises(ValueError, match="lack column"):
        prioritise(pd.DataFrame({"prediction_id": ["p"]}), default_taxonomy())


@pytest.mark.parametrize(
    ("subject", "body", "areas"),
    [
        pytest.param(
            "Your invoice", "The amount of $12 is due on May 3. Please pay it.", (), id="plain-english"
        ),
        pytest.param(
            "Ihre Rechnung",
            "Sehr geehrte Kundin, bitte zahlen Sie den Betrag bis zum 3. Mai.",
            ("non_english",),
            id="german",
        ),
        pytest.param(
            "Votre facture", "Merci de régler le montant avant le 3 mai.", ("non_english",), id="french"
        ),
        pytest.param(
            "Re: plan",
            "Sure.\n\nOn Mon, 3 May 2026, Ann <a@x.com> wrote:\n> ok",
            ("quoted_reply_noise",),
            id="wrote-line",
        ),
        pytest.param(
            "Fwd: offer",
            "FYI\n---------- Forwarded message ---------\nFrom: shop",
            ("quoted_reply_noise",),
            id="forwarded",
        ),
        pytest.param("Re: x", "ok\n> a\n> b\n> c", ("quoted_reply_noise",), id="quoted-lines"),
        pytest.param(None, None, (), id="empty"),
    ],
)
def test_detect_problem_areas(subject, body, areas):
    assert detect_problem_areas(subject, body) == areas


def test_problem_area_flags_on_generated_emails():
    """Recall on the generator's problem-area emails and false flags on plain ones."""
    from feedbackloop.synth.emails import problem_variant_keys, render

    hits = {"non_english": [], "quoted_reply_noise": []}
    false = []
    for category, area in problem_variant_keys():
        for seed in range(5):
            email = render(category, random.Random(seed), area)
            found = detect_problem_areas(email.subject, email.body)
            if area in hits:
                hits[area].append(area in found)
            elif "non_english" in found:
                false.append((category, area))
    for category in default_taxonomy().category_ids:
        for seed in range(5):
            email = render(category, random.Random(seed), None)
            if "non_english" in detect_problem_areas(email.subject, email.body):
                false.append((category, None))
    assert sum(hits["non_english"]) / len(hits["non_english"]) >= 0.95
    assert sum(hits["quoted_reply_noise"]) / len(hits["quoted_reply_noise"]) >= 0.9
    assert false == []


def _ranked(n: int, owners=None) -> pd.DataFrame:
    owners = owners or ["owner"] * n
    rows = [("receipt", 0.5 - i / 1000, owners[i], "x") for i in range(n)]
    return prioritise(_candidates(rows), default_taxonomy())


def test_assignment_respects_caps_and_spreads_evenly():
    policy = ReviewPolicy(daily_cap=50, per_reviewer_daily_cap=4, per_reviewer_max_pending=100)
    out = assign_reviewers(_ranked(40), ["r1", "r2", "r3", "r4", "r5"], DAY, policy)
    counts = out["reviewer_id"].value_counts()
    assert len(out) == 20  # 5 reviewers x 4 a day
    assert counts.max() == counts.min() == 4
    assert out["prediction_id"].tolist() == _ranked(40)["prediction_id"].head(20).tolist()


def test_assignment_counts_earlier_load_and_the_daily_cap():
    policy = ReviewPolicy(daily_cap=10, per_reviewer_daily_cap=5, per_reviewer_max_pending=6)
    out = assign_reviewers(
        _ranked(30),
        ["r1", "r2", "r3"],
        DAY,
        policy,
        assigned_today={"r1": 5, "r2": 1},
        pending={"r3": 4},
        queued_today=6,
    )
    assert len(out) == 4  # 10 - 6 already queued today
    counts = out["reviewer_id"].value_counts().to_dict()
    assert "r1" not in counts  # already at the daily cap
    assert counts.get("r3", 0) <= 2  # 4 pending + 2 = the backlog cap


def test_assignment_never_gives_owners_their_own_email():
    policy = ReviewPolicy(daily_cap=10, per_reviewer_daily_cap=10)
    owners = ["r1", "r1", "r2", "r1"]
    out = assign_reviewers(_ranked(4, owners), ["r1", "r2"], DAY, policy)
    assert all(r != o for r, o in zip(out["reviewer_id"], out["owner_user_id"], strict=True))
    assert len(out) == 4
    # Alone, the owner cannot review their own email: the item waits.
    assert assign_reviewers(_ranked(1, ["r1"]), ["r1"], DAY, policy).empty


def test_assignment_with_no_reviewers_queues_nothing():
    assert assign_reviewers(_ranked(3), [], DAY).empty


def test_rotation_changes_from_day_to_day_and_is_stable():
    reviewers = [f"r{i}" for i in range(20)]
    monday = rotation_order(reviewers, DAY)
    assert monday == rotation_order(list(reversed(reviewers)), DAY)
    assert monday != rotation_order(reviewers, date(2026, 4, 9))
    assert sorted(monday.values()) == list(range(20))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"confidence_threshold": 0}, id="zero-threshold"),
        pytest.param({"confidence_threshold": 1.5}, id="threshold-above-one"),
        pytest.param({"daily_cap": -1}, id="negative-cap"),
        pytest.param({"daily_cap": 2.5}, id="fractional-cap"),
        pytest.param({"per_reviewer_cap": 3}, id="unknown-field"),
        pytest.param({"problem_area_factor": 0.5}, id="factor-below-one"),
        pytest.param({"criticality": {"critical": 0}}, id="zero-weight"),
    ],
)
def test_policy_rejects_bad_values(overrides):
    with pytest.raises(ValueError):
        ReviewPolicy.from_mapping(overrides)


def test_policy_from_strings():
    policy = ReviewPolicy.from_mapping(
        {"confidence_threshold": "0.6", "daily_cap": "50", "per_reviewer_daily_cap": None}
    )
    assert (policy.confidence_threshold, policy.daily_cap, policy.per_reviewer_daily_cap) == (0.6, 50, 10)
