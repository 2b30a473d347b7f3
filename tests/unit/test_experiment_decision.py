"""The experiment's decision rules, table-driven, and the Slack message that announces them."""

from __future__ import annotations

import copy
import json
import math
from datetime import date

import pytest

from feedbackloop.experiment import (
    ArmStats,
    Decision,
    EvaluationResult,
    ExperimentStats,
    Override,
    Policy,
    compute_stats,
    decide,
    override_decision,
    stage_look,
)
from feedbackloop.experiment_messages import experiment_decision_message
from feedbackloop.experiment_stats import LatencySummary

FAST = LatencySummary(n=1000, mean_log=math.log(200), var_log=0.09, p95_ms=330.0)


def _latency(p95: float, shift: float = 0.0) -> LatencySummary:
    return LatencySummary(n=1000, mean_log=math.log(200) + shift, var_log=0.09, p95_ms=p95)


def _stats(
    *,
    share: float,
    days: float,
    look: int,
    n: tuple[int, int],
    accuracy: tuple[float, float] = (0.90, 0.90),
    engagement: tuple[float, float] = (0.30, 0.30),
    users: tuple[int, int] | None = None,
    latency: tuple[LatencySummary, LatencySummary] | None = (FAST, FAST),
) -> ExperimentStats:
    users = users or n
    arms = []
    for i, variant in enumerate(("champion", "challenger")):
        arms.append(
            ArmStats(
                variant=variant,
                predictions=n[i],
                users=users[i],
                correct=round(accuracy[i] * n[i]),
                engaged=round(engagement[i] * n[i]),
                latency=latency[i] if latency else None,
            )
        )
    return compute_stats(arms[0], arms[1], share=share, days_live=days, look=look)


# fmt: off
CASES = [
    pytest.param(_stats(share=0.05, days=8, look=8, n=(9000, 1000)),
                 "halt", 0.05, "sample-ratio mismatch", id="srm-10pct-observed-at-5pct"),
    pytest.param(_stats(share=0.05, days=8, look=8, n=(11400, 600)),
                 "continue", 0.05, "600 samples in the smaller arm, 1000 required", id="too-few-samples"),
    pytest.param(_stats(share=0.05, days=3, look=3, n=(38000, 2000)),
                 "continue", 0.05, "live 3.0 of the required 7 days", id="too-few-days"),
    pytest.param(_stats(share=0.05, days=8, look=8, n=(19000, 1000)),
                 "ramp", 0.25, "ramp to 25%", id="no-harm-at-5pct-ramps"),
    pytest.param(_stats(share=0.25, days=9, look=1, n=(3000, 1000)),
                 "ramp", 0.5, "ramp to 50%", id="no-harm-at-25pct-ramps"),
    pytest.param(_stats(share=0.5, days=16, look=7, n=(10000, 10000), accuracy=(0.90, 0.93)),
                 "promote", 1.0, "crosses the efficacy boundary", id="clear-win-promotes"),
    pytest.param(_stats(share=0.5, days=10, look=1, n=(2000, 2000), accuracy=(0.90, 0.92)),
                 "continue", 0.5, "no significant improvement yet", id="win-below-the-early-boundary"),
    pytest.param(_stats(share=0.5, days=12, look=3, n=(5000, 5000), accuracy=(0.90, 0.85)),
                 "rollback", 0.0, "below the harm boundary", id="clear-loss-rolls-back"),
    pytest.param(_stats(share=0.05, days=2, look=2, n=(3800, 200), accuracy=(0.90, 0.60)),
                 "rollback", 0.0, "below the harm boundary", id="clear-loss-before-7-days-still-rolls-back"),
    pytest.param(_stats(share=0.05, days=8, look=8, n=(19000, 1000), accuracy=(0.90, 0.88)),
                 "continue", 0.05, "accuracy may be more than 2 pts lower",
                 id="possible-loss-beyond-the-margin-blocks-the-ramp"),
    pytest.param(_stats(share=0.5, days=14, look=5, n=(8000, 8000)),
                 "continue", 0.5, "no significant improvement yet", id="tie-mid-horizon-continues"),
    pytest.param(_stats(share=0.5, days=23, look=14, n=(28000, 28000)),
                 "rollback", 0.0, "horizon reached", id="tie-at-the-horizon-keeps-the-champion"),
    pytest.param(_stats(share=0.05, days=22, look=14, n=(11400, 600)),
                 "rollback", 0.0, "horizon reached", id="stuck-stage-at-the-horizon"),
    pytest.param(_stats(share=0.5, days=12, look=4, n=(5000, 5000), latency=(_latency(400), _latency(600, 0.4))),
                 "rollback", 0.0, "latency SLO broken", id="latency-slo-breach"),
    pytest.param(_stats(share=0.05, days=8, look=8, n=(19000, 1000), latency=(_latency(330), _latency(420, 0.2))),
                 "continue", 0.05, "slower: p95 +90 ms", id="latency-regression-blocks-the-ramp"),
    pytest.param(_stats(share=0.5, days=12, look=4, n=(5000, 5000), engagement=(0.30, 0.25)),
                 "rollback", 0.0, "engagement worse", id="engagement-clearly-worse"),
    pytest.param(_stats(share=0.5, days=16, look=7, n=(10000, 10000), accuracy=(0.90, 0.93),
                        engagement=(0.30, 0.285)),
                 "continue", 0.5, "engagement expected loss", id="engagement-loss-blocks-promotion"),
    pytest.param(_stats(share=0.05, days=8, look=8, n=(19000, 1000), latency=None),
                 "ramp", 0.25, "ramp to 25%", id="no-latency-logged-still-decides"),
    pytest.param(_stats(share=0.05, days=0.2, look=0, n=(0, 0)),
                 "continue", 0.05, "no data in both arms", id="no-data-yet"),
]
# fmt: on


@pytest.mark.parametrize(("stats", "outcome", "to_share", "reason"), CASES)
def test_decide(stats, outcome, to_share, reason):
    before = copy.deepcopy(stats)
    decision = decide(stats, Policy())
    assert decision.outcome == outcome, decision.reason
    assert decision.to_share == to_share
    assert reason in decision.reason
    assert decision.from_share == stats.share
    assert decision.alert == (outcome in ("rollback", "halt"))
    assert stats == before  # pure: the input is not touched
    assert json.loads(json.dumps(decision.to_dict())) == decision.to_dict()


def test_engagement_non_inferiority_blocks_the_ramp():
    # 4.5 points lower on a small 5% arm: probably beyond the 2-point margin (blocks the
    # ramp) but not yet the near-certainty of a rollback (P(better) < 0.001).
    stats = _stats(share=0.05, days=8, look=8, n=(19000, 1000), engagement=(0.30, 0.255))
    assert stats.engagement.prob_worse_by_margin > 0.95
    assert stats.engagement.prob_challenger_better > 0.001
    decision = decide(stats)
    assert decision.outcome == "continue"
    assert "engagement likely more than 2 pts lower" in decision.reason
    # A policy that rolls back on weaker evidence acts on the same numbers.
    assert decide(stats, Policy(engagement_rollback_prob=0.01)).outcome == "rollback"


def test_statistics_must_match_the_policys_engagement_margin():
    stats = _stats(share=0.05, days=8, look=8, n=(19000, 1000))
    with pytest.raises(ValueError, match="engagement margin"):
        decide(stats, Policy(max_engagement_drop=0.05))


def test_boundaries_are_recorded_with_the_decision():
    decision = decide(_stats(share=0.5, days=14, look=5, n=(8000, 8000)))
    efficacy, harm = Policy().boundaries(5)
    assert (decision.efficacy_boundary, decision.harm_boundary) == (efficacy, harm)
    assert efficacy == pytest.approx(3.5869, abs=2e-3)
    assert Policy().boundaries(30) == Policy().boundaries(14)  # past the horizon: the last boundary


def test_a_stricter_policy_changes_the_decision():
    stats = _stats(share=0.05, days=8, look=8, n=(19000, 1000))
    assert decide(stats, Policy()).outcome == "ramp"
    assert decide(stats, Policy(min_days_live=10)).outcome == "continue"
    assert decide(stats, Policy(min_samples_per_arm=2000)).outcome == "continue"


def test_decide_rejects_a_share_that_is_not_a_ramp_step():
    with pytest.raises(ValueError, match="ramp steps"):
        decide(_stats(share=0.1, days=8, look=8, n=(9000, 1000)))


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"ramp_steps": (0.25, 0.05)}, id="steps-not-increasing"),
        pytest.param({"ramp_steps": (0.05, 1.0)}, id="step-at-100pct"),
        pytest.param({"alpha": 0}, id="alpha-zero"),
        pytest.param({"srm_alpha": 1.5}, id="srm-alpha-above-one"),
        pytest.param({"looks_per_stage": 0}, id="no-looks"),
        pytest.param({"min_samples_per_arm": 0}, id="no-minimum"),
        pytest.param({"max_p95_latency_ms": -1}, id="negative-slo"),
    ],
)
def test_policy_rejects_invalid_thresholds(kwargs):
    with pytest.raises(ValueError):
        Policy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"variant": "treatment"}, "variant", id="unknown-variant"),
        pytest.param({"correct": 11}, "exceed", id="more-correct-than-predictions"),
        pytest.param({"users": 11}, "users", id="more-users-than-predictions"),
        pytest.param({"engaged": -1}, "non-negative", id="negative"),
    ],
)
def test_arm_stats_reject_inconsistent_counts(kwargs, message):
    base = {"variant": "champion", "predictions": 10, "users": 10, "correct": 9, "engaged": 3}
    with pytest.raises(ValueError, match=message):
        ArmStats(**{**base, **kwargs})


def test_compute_stats_wants_the_champion_first():
    a = ArmStats("champion", 10, 10, 9, 3)
    b = ArmStats("challenger", 10, 10, 9, 3)
    with pytest.raises(ValueError, match="champion"):
        compute_stats(b, a, share=0.5, days_live=1, look=1)


@pytest.mark.parametrize(
    ("hours", "look"),
    [
        pytest.param(-1, 0, id="before-the-stage"),
        pytest.param(0, 0, id="at-the-start"),
        pytest.param(4, 1, id="first-partial-day"),
        pytest.param(24, 1, id="exactly-one-day"),
        pytest.param(25, 2, id="second-day"),
    ],
)
def test_stage_look_counts_daily_looks(hours, look):
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 1, 2, 13, tzinfo=UTC)
    assert stage_look(start, start + timedelta(hours=hours)) == look


def test_override_decision_is_manual_and_carries_who_and_why():
    decision = override_decision(None, Override("force_promote", " hotfix ", "alice"), 0.25)
    assert (decision.outcome, decision.source, decision.to_share) == ("promote", "manual", 1.0)
    assert decision.reason == "manual force_promote by alice: hotfix"
    assert isinstance(decision, Decision)


# --------------------------------------------------------------------------- Slack message


def _summary(stats: ExperimentStats, **extra) -> dict:
    decision = decide(stats)
    result = EvaluationResult(
        experiment_id="ab-v1-1",
        decision_date=date(2026, 12, 1),
        outcome=decision.outcome,
        source=decision.source,
        reason=decision.reason,
        reasons=decision.reasons,
        from_share=decision.from_share,
        to_share=decision.to_share,
        statistics={**stats.to_dict(), "efficacy_boundary": decision.efficacy_boundary},
        recorded=True,
        decided_by="experiment_evaluation/run",
    )
    return {**result.to_summary(), **extra}


def test_message_announces_a_promotion_with_the_numbers():
    summary = _summary(_stats(share=0.5, days=16, look=7, n=(10000, 10000), accuracy=(0.90, 0.93)))
    message = experiment_decision_message(summary, run_url="http://127.0.0.1:8080/run")
    assert message["text"].startswith("🚀 Challenger promoted to champion: ab-v1-1 on 2026-12-01")
    for number in ("90.0% / 93.0%", "+3.00 pts", "P(challenger better)=", "330 / 330 ms", "10000 / 10000"):
        assert number in message["text"], number
    header = message["blocks"][0]
    assert header["type"] == "header" and len(header["text"]["text"]) <= 150
    fields = next(b for b in message["blocks"] if "fields" in b)["fields"]
    assert 1 <= len(fields) <= 10
    assert any("Challenger share: 50% → 100%" in b.get("text", {}).get("text", "") for b in message["blocks"])
    assert message["blocks"][-1]["elements"][0]["url"] == "http://127.0.0.1:8080/run"


@pytest.mark.parametrize(
    ("stats", "title"),
    [
        pytest.param(
            _stats(share=0.05, days=8, look=8, n=(9000, 1000)),
            "🛑 Experiment halted: sample-ratio mismatch",
            id="halt",
        ),
        pytest.param(
            _stats(share=0.05, days=8, look=8, n=(19000, 1000)), "📈 Challenger ramped to 25%", id="ramp"
        ),
        pytest.param(
            _stats(share=0.5, days=12, look=3, n=(5000, 5000), accuracy=(0.90, 0.85)),
            "↩️ Challenger rolled back",
            id="rollback",
        ),
        pytest.param(
            _stats(share=0.05, days=3, look=3, n=(38000, 2000)),
            "⏳ Experiment continues at 5%",
            id="continue",
        ),
    ],
)
def test_message_titles(stats, title):
    message = experiment_decision_message(_summary(stats))
    assert message["blocks"][0]["text"]["text"] == title
    assert message["text"].startswith(title)


def test_message_escapes_people_text_and_marks_a_repeated_decision():
    summary = _summary(
        _stats(share=0.05, days=8, look=8, n=(19000, 1000)),
        source="manual",
        decided_by="alice",
        reason="manual force_rollback by alice: <!channel> see <http://x|this>",
        recorded=False,
    )
    message = experiment_decision_message(summary)
    body = json.dumps(message["blocks"], ensure_ascii=False)
    assert "<!channel>" not in body and "&lt;!channel&gt;" in body
    assert "manual override by alice" in body
    assert "did not apply it again" in body


def test_message_without_an_experiment():
    summary = EvaluationResult(
        experiment_id=None,
        decision_date=date(2026, 12, 1),
        outcome="none",
        source="auto",
        reason="no live experiment",
    ).to_summary()
    message = experiment_decision_message(summary)
    assert (
        message["text"]
        == "ℹ️ No A/B experiment running: no experiment on 2026-12-01 (automatic): no live experiment"
    )
    assert len(message["blocks"]) == 2
