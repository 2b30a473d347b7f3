"""Daily evaluation of the champion/challenger A/B experiment: statistics -> decision -> registry.

The challenger goes live at 5% of users (``deploy_challenger``); every day
:func:`evaluate_experiment` reads the predictions and feedback of the current ramp stage per
variant (:func:`collect_arm_stats`), computes the statistics (:func:`compute_stats`), decides
(:func:`decide`), records the decision once per experiment and day, and applies it through
the registry in the same transaction.

Outcomes, checked in this order:

1. ``halt`` - sample-ratio mismatch (chi-square on users, p < 0.001): assignment or logging
   is broken, so no number of this experiment can be trusted. The experiment freezes (the
   challenger keeps its share, nothing ramps) and on-call is alerted until a person decides
   with ``force_promote`` or ``force_rollback``.
2. ``rollback`` - the challenger is harmful: accuracy crosses the sequential harm boundary;
   or its p95 latency breaks the 500 ms SLO that the champion meets and it is significantly
   slower; or engagement is almost surely worse (P(better) < 0.001) by more than the
   tolerated loss. Rollback needs no minimum duration, only 100 samples per arm.
3. ``ramp`` (5% -> 25% -> 50%) - at least 7 days since the challenger went live, at least 1000
   samples per arm in the current stage, and no warning. The warnings are non-inferiority
   checks with the product's 2-point margin (the regression alert's number): accuracy's
   one-sided 95% lower confidence bound of the difference above -2 points, engagement's
   posterior P(more than 2 points worse) below 95%, and latency not significantly slower
   by more than 50 ms at p95. Ramping needs no win: it spreads risk only once the smaller
   stage has shown the challenger is not meaningfully worse. (Plain "is it lower at
   p < 0.05" checks would be sticky on cumulative data: an unlucky early path would block
   an equal or better challenger until the horizon.)
4. ``promote`` (the 100% step: the challenger becomes champion) - at the last ramp step, the
   same minimums and no warning, accuracy crossing the sequential efficacy boundary, and an
   engagement expected loss of at most 1 point (half the margin: the Bayesian "is the
   expected cost of being wrong small enough" rule).
5. ``rollback`` at the horizon - a stage that has had 14 daily looks without ramping or
   promoting ends: "no significant improvement" keeps the proven champion.
6. ``continue`` otherwise, with the reasons.

Peeking guard: a group-sequential design with Lan-DeMets alpha spending, evaluated per ramp
stage. Each stage plans ``looks_per_stage`` (14) daily looks; look ``k`` has information
fraction ``k / 14`` (traffic per day is roughly constant, so information grows with days),
and the one-sided accuracy boundaries for that schedule are computed exactly
(:func:`feedbackloop.experiment_stats.sequential_boundaries`):

* promotion (efficacy) uses O'Brien-Fleming-type spending at alpha = 2.5%: z >= 8.30 at
  look 1, 3.59 at look 5, 2.64 at look 9, 2.10 at look 14. However often we look, the
  chance of promoting a challenger that is no better stays <= 2.5%, and because almost
  nothing is spent early the last look keeps nearly the power of a single fixed-horizon
  test (2.10 vs 1.96), while a clear improvement is still shipped after a few days at 50%.
* rollback (harm) uses Pocock-type spending at alpha = 2.5%: z <= -2.76 at look 1 down to
  -2.50 at look 14. Safety wants a harmful challenger out early, when only 5% of users see
  it and its arm is small; a flat boundary does that, at the price of a little power late
  in the stage, which the nominal warnings (they block ramps) make up for.

Why sequential rather than a fixed horizon: a fixed horizon is valid only if nobody acts
before it, yet the point of a daily evaluation is to act (roll back a harmful model, ship a
clear winner) as soon as the evidence allows. Each stage is analysed on its own data
because the expected split (and so the SRM check) differs per share and mixing stages
would confound a trend over time with the change of share. Latency and engagement act as
guardrails (they block progress, and extreme cases roll back), never as a promotion
criterion, so they cannot add false promotions.

Accuracy here is the share of predictions that received no category correction to another
category before the window ended. Users correct only some mistakes, so this is not the
golden-set accuracy, but assignment is random, so the two arms are comparable.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any

from feedbackloop import experiment_stats as es
from feedbackloop.db import transaction
from feedbackloop.registry import RAMP_STEPS, RegistryError

log = logging.getLogger(__name__)

OUTCOMES = ("continue", "ramp", "promote", "rollback", "halt")
OVERRIDES = {"force_promote": "promote", "force_rollback": "rollback"}


# --------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Policy:
    """Thresholds of the decision. Defaults follow the product brief.

    Attributes:
        ramp_steps: challenger shares in order; the step after the last is promotion.
        min_samples_per_arm: predictions per arm in the current stage before ramp/promote.
        min_days_live: days since the challenger went live before any ramp or promote.
        looks_per_stage: planned daily looks per stage (the sequential design's horizon).
        alpha: one-sided level of the promotion test over all looks of the final stage.
        efficacy_spending: alpha-spending function of the promotion test.
        harm_alpha: one-sided level of the sequential rollback test per stage.
        harm_spending: alpha-spending function of the rollback test.
        guard_alpha: one-sided level of the non-inferiority warnings that block ramp/promotion.
        max_accuracy_drop: non-inferiority margin for accuracy (2 points, as the brief's
            regression alert).
        srm_alpha: p-value below which the sample ratio is a mismatch (halt).
        min_samples_for_rollback: predictions per arm before an early rollback.
        max_p95_latency_ms: the latency SLO (p95 strictly below it).
        max_p95_increase_ms: tolerated p95 slowdown before it blocks ramp/promotion.
        max_engagement_loss: tolerated expected loss of engagement rate for promotion.
        max_engagement_drop: non-inferiority margin for the engagement rate.
        engagement_rollback_prob: P(challenger engages more) below which it rolls back
            (with an expected loss above ``max_engagement_loss``).
    """

    ramp_steps: tuple[float, ...] = RAMP_STEPS
    min_samples_per_arm: int = 1000
    min_days_live: float = 7.0
    looks_per_stage: int = 14
    alpha: float = 0.025
    efficacy_spending: str = "obrien_fleming"
    harm_alpha: float = 0.025
    harm_spending: str = "pocock"
    guard_alpha: float = 0.05
    max_accuracy_drop: float = 0.02
    srm_alpha: float = 0.001
    min_samples_for_rollback: int = 100
    max_p95_latency_ms: float = 500.0
    max_p95_increase_ms: float = 50.0
    max_engagement_loss: float = 0.01
    max_engagement_drop: float = 0.02
    engagement_rollback_prob: float = 0.001

    def __post_init__(self) -> None:
        steps = tuple(float(s) for s in self.ramp_steps)
        if not steps or any(not 0 < s < 1 for s in steps) or list(steps) != sorted(set(steps)):
            raise ValueError(f"ramp_steps must be increasing shares in (0, 1), got {self.ramp_steps!r}")
        object.__setattr__(self, "ramp_steps", steps)
        for name in (
            "alpha",
            "harm_alpha",
            "guard_alpha",
            "srm_alpha",
            "engagement_rollback_prob",
        ):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        for name in ("efficacy_spending", "harm_spending"):
            if getattr(self, name) not in es.SPENDING_FUNCTIONS:
                raise ValueError(f"{name} must be one of {sorted(es.SPENDING_FUNCTIONS)}")
        if self.looks_per_stage < 1:
            raise ValueError("looks_per_stage must be at least 1")
        for name in ("min_samples_per_arm", "min_samples_for_rollback"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("min_days_live", "max_p95_latency_ms", "max_p95_increase_ms", "max_engagement_loss"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("max_accuracy_drop", "max_engagement_drop"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1)")

    def boundaries(self, look: int) -> tuple[float, float]:
        """(efficacy, harm) z boundaries at a look (looks past the horizon use the last one)."""
        if look < 1:
            raise ValueError(f"look must be at least 1, got {look}")
        k = min(look, self.looks_per_stage)
        ts = tuple(i / self.looks_per_stage for i in range(1, self.looks_per_stage + 1))
        efficacy = es.sequential_boundaries(ts, self.alpha, self.efficacy_spending)[k - 1]
        harm = es.sequential_boundaries(ts, self.harm_alpha, self.harm_spending)[k - 1]
        return efficacy, harm

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ramp_steps"] = list(self.ramp_steps)
        return out


# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class ArmStats:
    """What one arm showed in the analysis window.

    Attributes:
        variant: ``champion`` or ``challenger``.
        predictions: predictions served (the analysis unit of the metrics).
        users: distinct users (the unit of randomisation; the SRM check counts these).
        correct: predictions without a category correction to another category.
        engaged: predictions on which the user took a suggested action.
        latency: summary of the positive latencies, None with fewer than 2.
    """

    variant: str
    predictions: int
    users: int
    correct: int
    engaged: int
    latency: es.LatencySummary | None = None

    def __post_init__(self) -> None:
        if self.variant not in ("champion", "challenger"):
            raise ValueError(f"variant must be 'champion' or 'challenger', got {self.variant!r}")
        for name in ("predictions", "users", "correct", "engaged"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.correct > self.predictions or self.engaged > self.predictions:
            raise ValueError("correct and engaged cannot exceed predictions")
        if self.users > self.predictions:
            raise ValueError("users cannot exceed predictions")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("variant", "predictions", "users", "correct", "engaged")}
        out["accuracy"] = round(self.correct / self.predictions, 6) if self.predictions else None
        out["engagement_rate"] = round(self.engaged / self.predictions, 6) if self.predictions else None
        out["latency"] = self.latency.to_dict() if self.latency else None
        return out


@dataclass(frozen=True)
class ExperimentStats:
    """Everything :func:`decide` looks at for one evaluation.

    Attributes:
        share: the challenger's share in the analysed stage.
        days_live: days since the challenger went live (the experiment started).
        look: 1-based daily look within the stage; 0 when the stage has no data yet.
        champion / challenger: per-arm observations.
        users_in_both: users seen in both arms within the stage (should be 0).
        srm / accuracy / latency / engagement: test results, None where an arm lacks data.
    """

    share: float
    days_live: float
    look: int
    champion: ArmStats
    challenger: ArmStats
    users_in_both: int = 0
    srm: es.SrmResult | None = None
    accuracy: es.ProportionTest | None = None
    latency: es.LatencyTest | None = None
    engagement: es.BetaBinomialResult | None = None

    @property
    def min_samples(self) -> int:
        return min(self.champion.predictions, self.challenger.predictions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "days_live": round(self.days_live, 4),
            "look": self.look,
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "users_in_both": self.users_in_both,
            "srm": self.srm.to_dict() if self.srm else None,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None,
            "latency": self.latency.to_dict() if self.latency else None,
            "engagement": self.engagement.to_dict() if self.engagement else None,
        }


def compute_stats(
    champion: ArmStats,
    challenger: ArmStats,
    *,
    share: float,
    days_live: float,
    look: int,
    users_in_both: int = 0,
    policy: Policy | None = None,
) -> ExperimentStats:
    """Run every test the data allows and bundle the results.

    The policy supplies the SRM threshold and the engagement non-inferiority margin.

    Tests that need data an arm lacks are left as None (e.g. no latency logged).

    Raises:
        ValueError: on arms given in the wrong order or a share outside (0, 1).
    """
    policy = policy or Policy()
    if champion.variant != "champion" or challenger.variant != "challenger":
        raise ValueError("pass the champion's ArmStats first and the challenger's second")
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share!r}")
    srm = accuracy = latency = engagement = None
    if champion.users + challenger.users > 0:
        srm = es.srm_test(champion.users, challenger.users, share, alpha=policy.srm_alpha)
    if champion.predictions and challenger.predictions:
        accuracy = es.accuracy_test(
            champion.correct, champion.predictions, challenger.correct, challenger.predictions
        )
        engagement = es.beta_binomial_test(
            champion.engaged,
            champion.predictions,
            challenger.engaged,
            challenger.predictions,
            margin=policy.max_engagement_drop,
        )
    if champion.latency is not None and challenger.latency is not None:
        latency = es.latency_test(champion.latency, challenger.latency)
    return ExperimentStats(
        share=float(share),
        days_live=float(days_live),
        look=int(look),
        champion=champion,
        challenger=challenger,
        users_in_both=int(users_in_both),
        srm=srm,
        accuracy=accuracy,
        latency=latency,
        engagement=engagement,
    )


# ------------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class Decision:
    """What to do with the experiment today, and why.

    Attributes:
        outcome: one of :data:`OUTCOMES`.
        reason: one line for people (Slack, the audit history).
        from_share: the challenger's share when deciding.
        to_share: the share after the decision (1.0 promote, 0.0 rollback).
        reasons: every consideration, including the ones that did not decide.
        efficacy_boundary / harm_boundary: the sequential z boundaries at this look.
        source: ``auto`` or ``manual`` (an override).
    """

    outcome: str
    reason: str
    from_share: float
    to_share: float | None
    reasons: tuple[str, ...] = ()
    efficacy_boundary: float | None = None
    harm_boundary: float | None = None
    source: str = "auto"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.source not in ("auto", "manual"):
            raise ValueError(f"source must be 'auto' or 'manual', got {self.source!r}")

    @property
    def alert(self) -> bool:
        """Rollbacks and halts page on-call; other outcomes are informational."""
        return self.outcome in ("rollback", "halt")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        out["alert"] = self.alert
        return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _share(x: float) -> str:
    return f"{100 * x:g}%"


def decide(stats: ExperimentStats, policy: Policy | None = None) -> Decision:
    """Decide continue / ramp / promote / rollback / halt from one day's statistics.

    Pure: the same statistics and policy always give the same decision. The rules and the
    peeking guard are described in the module docstring.

    Raises:
        ValueError: when the stage's share is not one of the policy's ramp steps.
    """
    policy = policy or Policy()
    if stats.share not in policy.ramp_steps:
        raise ValueError(f"share {stats.share} is not one of the ramp steps {policy.ramp_steps}")
    share = stats.share
    step = policy.ramp_steps.index(share)
    final = step == len(policy.ramp_steps) - 1
    next_share = 1.0 if final else policy.ramp_steps[step + 1]
    made = _decision_factory(share)

    if stats.look < 1 or stats.accuracy is None or stats.engagement is None:
        return made("continue", f"no data in both arms yet at {_share(share)} (look {stats.look})")

    acc, eng, lat = stats.accuracy, stats.engagement, stats.latency
    if eng.margin != policy.max_engagement_drop:
        raise ValueError("the statistics were computed with another engagement margin than the policy's")
    efficacy_b, harm_b = policy.boundaries(stats.look)
    made = _decision_factory(share, efficacy_b, harm_b)
    n = stats.min_samples
    look = f"look {stats.look}/{policy.looks_per_stage} at {_share(share)}"
    acc_line = (
        f"accuracy: challenger {_pct(acc.challenger_rate)} vs champion {_pct(acc.champion_rate)} "
        f"(diff {100 * (acc.difference or 0):+.2f} pts, z={acc.z:+.2f}, {acc.method} p={acc.p_value:.3g})"
    )

    # 1. Sample-ratio mismatch: the data cannot be trusted at all.
    if stats.srm is not None and stats.srm.mismatch:
        srm = stats.srm
        return made(
            "halt",
            f"sample-ratio mismatch: {_pct(srm.observed_share)} of users on the challenger, expected "
            f"{_share(srm.expected_share)} (chi2={srm.chi2:.1f}, p={srm.p_value:.2g} < {srm.alpha})",
            [acc_line],
        )

    # 2. Harm: roll back as soon as the evidence is beyond the sequential boundary.
    if n >= policy.min_samples_for_rollback:
        if acc.z <= -harm_b:
            return made("rollback", f"{acc_line}: below the harm boundary z <= -{harm_b:.2f} ({look})")
        if (
            lat is not None
            and n >= policy.min_samples_per_arm
            and lat.challenger.p95_ms >= policy.max_p95_latency_ms > lat.champion.p95_ms
            and lat.one_sided_p_slower() < policy.guard_alpha
        ):
            return made(
                "rollback",
                f"latency SLO broken: challenger p95 {lat.challenger.p95_ms:.0f} ms >= "
                f"{policy.max_p95_latency_ms:.0f} ms (champion {lat.champion.p95_ms:.0f} ms, "
                f"Welch p={lat.p_value:.3g})",
                [acc_line],
            )
        if (
            n >= policy.min_samples_per_arm
            and eng.prob_challenger_better < policy.engagement_rollback_prob
            and eng.expected_loss_challenger > policy.max_engagement_loss
        ):
            return made(
                "rollback",
                f"engagement worse: P(challenger better)={eng.prob_challenger_better:.4f}, expected loss "
                f"{100 * eng.expected_loss_challenger:.2f} pts > {100 * policy.max_engagement_loss:.2f}",
                [acc_line],
            )

    # 3. What blocks progress today.
    blockers: list[str] = []
    if stats.days_live < policy.min_days_live:
        blockers.append(f"live {stats.days_live:.1f} of the required {policy.min_days_live:g} days")
    if n < policy.min_samples_per_arm:
        blockers.append(f"{n} samples in the smaller arm, {policy.min_samples_per_arm} required")
    warnings: list[str] = []
    accuracy_bound = acc.lower_bound(1 - policy.guard_alpha)
    if accuracy_bound < -policy.max_accuracy_drop:
        warnings.append(
            f"accuracy may be more than {100 * policy.max_accuracy_drop:g} pts lower "
            f"({100 * (1 - policy.guard_alpha):g}% lower bound {100 * accuracy_bound:+.2f} pts)"
        )
    if (
        lat is not None
        and lat.one_sided_p_slower() < policy.guard_alpha
        and lat.p95_difference_ms > policy.max_p95_increase_ms
    ):
        warnings.append(
            f"slower: p95 {lat.p95_difference_ms:+.0f} ms (> {policy.max_p95_increase_ms:.0f} ms), "
            f"Welch p={lat.p_value:.3g}"
        )
    if eng.prob_worse_by_margin > 1 - policy.guard_alpha:
        warnings.append(
            f"engagement likely more than {100 * eng.margin:g} pts lower (P={eng.prob_worse_by_margin:.3f})"
        )
    eng_line = (
        f"engagement: challenger {_pct(eng.challenger_mean)} vs champion {_pct(eng.champion_mean)}, "
        f"P(better)={eng.prob_challenger_better:.3f}, expected loss {100 * eng.expected_loss_challenger:.2f} pts"
    )
    context = [acc_line, eng_line]
    if lat is not None:
        context.append(
            f"latency p95: challenger {lat.challenger.p95_ms:.0f} vs champion {lat.champion.p95_ms:.0f} ms "
            f"({lat.p95_difference_ms:+.0f} ms, Welch p={lat.p_value:.3g})"
        )

    # 4. Progress: ramp without a win (no harm seen), promote only on a sequential win.
    if not blockers and not warnings:
        if not final:
            return made(
                "ramp",
                f"no harm at {_share(share)} after {stats.days_live:.1f} days: ramp to {_share(next_share)}",
                context,
                to_share=next_share,
            )
        if acc.z >= efficacy_b:
            if eng.expected_loss_challenger <= policy.max_engagement_loss:
                return made(
                    "promote",
                    f"{acc_line} crosses the efficacy boundary z >= {efficacy_b:.2f} ({look})",
                    context,
                    to_share=1.0,
                )
            warnings.append(
                f"engagement expected loss {100 * eng.expected_loss_challenger:.2f} pts > "
                f"{100 * policy.max_engagement_loss:.2f}"
            )
        else:
            warnings.append(f"no significant improvement yet: z={acc.z:+.2f} < {efficacy_b:.2f} ({look})")

    # 5. Horizon: a stage that cannot progress within its planned looks ends.
    reasons = blockers + warnings
    if stats.look >= policy.looks_per_stage:
        goal = "promotion" if final else "the next ramp step"
        return made(
            "rollback",
            f"horizon reached: {look} without meeting the criteria for {goal} ({'; '.join(reasons)})",
            context,
        )
    return made("continue", "; ".join(reasons) or "no decision yet", context)


def _decision_factory(
    share: float, efficacy: float | None = None, harm: float | None = None
) -> Callable[..., Decision]:
    def made(
        outcome: str, reason: str, reasons: list[str] | None = None, to_share: float | None = None
    ) -> Decision:
        if to_share is None:
            to_share = {"rollback": 0.0}.get(outcome, share)
        return Decision(
            outcome=outcome,
            reason=reason,
            from_share=share,
            to_share=to_share,
            reasons=tuple(reasons or ()),
            efficacy_boundary=efficacy,
            harm_boundary=harm,
        )

    return made


@dataclass(frozen=True)
class Override:
    """A manual decision: ``force_promote`` or ``force_rollback``, with who and why.

    Raises:
        ValueError: on an unknown action or an empty reason.
    """

    action: str
    reason: str
    requested_by: str | None = None

    def __post_init__(self) -> None:
        if self.action not in OVERRIDES:
            raise ValueError(f"override action must be one of {sorted(OVERRIDES)}, got {self.action!r}")
        if not str(self.reason or "").strip():
            raise ValueError(f"a reason is required for {self.action}")


def override_decision(stats: ExperimentStats | None, override: Override, share: float) -> Decision:
    """The decision a manual override stands for (the statistics are still recorded)."""
    outcome = OVERRIDES[override.action]
    who = override.requested_by or "unknown user"
    return Decision(
        outcome=outcome,
        reason=f"manual {override.action} by {who}: {override.reason.strip()}",
        from_share=share,
        to_share=1.0 if outcome == "promote" else 0.0,
        reasons=("overrides the automatic decision",),
        source="manual",
    )


# ------------------------------------------------------------------------ data collection


@dataclass(frozen=True)
class ArmWindow:
    """Per-arm observations of one analysis window ``[since, until)``."""

    champion: ArmStats
    challenger: ArmStats
    users_in_both: int
    since: datetime
    until: datetime


_ARMS_SQL = """
WITH p AS (
    SELECT p.user_id, p.variant, p.latency_ms,
           EXISTS (
               SELECT 1 FROM app.category_corrections c
               WHERE c.prediction_id = p.prediction_id
                 AND c.corrected_category IS NOT NULL
                 AND c.corrected_category IS DISTINCT FROM p.category
                 AND c.created_at < %(until)s
           ) AS corrected,
           EXISTS (
               SELECT 1 FROM app.engagement_events ev
               WHERE ev.prediction_id = p.prediction_id
                 AND ev.event_type = 'action_taken'
                 AND ev.created_at < %(until)s
           ) AS engaged,
           CASE WHEN p.latency_ms > 0 THEN p.latency_ms END AS latency
    FROM app.predictions p
    WHERE p.predicted_at >= %(since)s AND p.predicted_at < %(until)s
      AND (p.variant = 'champion' OR (p.variant = 'challenger' AND p.model_version = %(challenger)s))
)
SELECT variant,
       count(*),
       count(DISTINCT user_id),
       count(*) FILTER (WHERE NOT corrected),
       count(*) FILTER (WHERE engaged),
       count(latency),
       avg(ln(latency)),
       var_samp(ln(latency)),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency)
FROM p
GROUP BY variant
"""

_BOTH_SQL = """
SELECT count(*) FROM (
    SELECT user_id FROM app.predictions p
    WHERE p.predicted_at >= %(since)s AND p.predicted_at < %(until)s AND p.user_id IS NOT NULL
      AND (p.variant = 'champion' OR (p.variant = 'challenger' AND p.model_version = %(challenger)s))
    GROUP BY user_id HAVING count(DISTINCT variant) > 1
) both_arms
"""


def collect_arm_stats(conn: Any, experiment: dict[str, Any], since: datetime, until: datetime) -> ArmWindow:
    """Aggregate predictions and feedback per variant in ``[since, until)`` from the app tables.

    Challenger rows count only when served by the experiment's challenger version (a
    stale client still serving an older challenger is not this experiment). Feedback
    (corrections, ``action_taken`` events) counts when given before ``until``, so re-running
    an evaluation later reproduces the same numbers. Latency is summarised in the database
    (count, mean and variance of ``ln(latency_ms)``, p95) so rows never leave it.

    Raises:
        ValueError: when the window is empty or reversed, or a bound has no time zone.
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must carry a time zone")
    if not since < until:
        raise ValueError(f"since {since.isoformat()} must be before until {until.isoformat()}")
    params = {"since": since, "until": until, "challenger": experiment["challenger_version"]}
    with transaction(conn) as cur:
        cur.execute(_ARMS_SQL, params)
        rows = {r[0]: r for r in cur.fetchall()}
        cur.execute(_BOTH_SQL, params)
        (both,) = cur.fetchone()
    arms = {}
    for variant in ("champion", "challenger"):
        r = rows.get(variant)
        if r is None:
            arms[variant] = ArmStats(variant=variant, predictions=0, users=0, correct=0, engaged=0)
            continue
        latency = None
        if r[5] >= 2:
            latency = es.LatencySummary(
                n=int(r[5]), mean_log=float(r[6]), var_log=max(0.0, float(r[7])), p95_ms=float(r[8])
            )
        arms[variant] = ArmStats(
            variant=variant,
            predictions=int(r[1]),
            users=int(r[2]),
            correct=int(r[3]),
            engaged=int(r[4]),
            latency=latency,
        )
    return ArmWindow(arms["champion"], arms["challenger"], int(both), since, until)


def stage_look(stage_started_at: datetime, as_of: datetime) -> int:
    """1-based daily look of a stage: 1 during the stage's first day of data, and so on."""
    elapsed = (as_of - stage_started_at).total_seconds()
    return 0 if elapsed <= 0 else math.ceil(elapsed / 86400)


def experiment_stats(
    conn: Any, experiment: dict[str, Any], as_of: datetime, policy: Policy
) -> ExperimentStats:
    """Collect the current stage's data up to ``as_of`` and compute its statistics."""
    share = float(experiment["current_share"])
    days_live = (as_of - experiment["started_at"]).total_seconds() / 86400
    look = stage_look(experiment["stage_started_at"], as_of)
    if look < 1:
        empty = ArmStats("champion", 0, 0, 0, 0), ArmStats("challenger", 0, 0, 0, 0)
        return ExperimentStats(
            share=share, days_live=days_live, look=0, champion=empty[0], challenger=empty[1]
        )
    window = collect_arm_stats(conn, experiment, experiment["stage_started_at"], as_of)
    return compute_stats(
        window.champion,
        window.challenger,
        share=share,
        days_live=days_live,
        look=look,
        users_in_both=window.users_in_both,
        policy=policy,
    )


# ----------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvaluationResult:
    """The day's decision as recorded (by this call or by an earlier / concurrent one).

    Attributes:
        experiment_id: the experiment, None when no experiment is live.
        decision_date: the day the decision belongs to.
        outcome: the decision's outcome, or ``none`` when no experiment is live.
        source: ``auto`` or ``manual``.
        reason / reasons: why.
        from_share / to_share: the challenger's share before and after.
        statistics: the recorded statistics (JSON).
        registry_change: what the registry did (JSON), None for ``continue``.
        recorded: True when this call wrote the decision; False when it read it back.
        alert: whether on-call should look (rollback / halt).
        decided_by / run_id: who decided, in which run.
    """

    experiment_id: str | None
    decision_date: date
    outcome: str
    source: str
    reason: str
    reasons: tuple[str, ...] = ()
    from_share: float | None = None
    to_share: float | None = None
    statistics: dict[str, Any] = field(default_factory=dict)
    registry_change: dict[str, Any] | None = None
    recorded: bool = False
    alert: bool = False
    decided_by: str | None = None
    run_id: str | None = None

    def to_summary(self) -> dict[str, Any]:
        """JSON-safe summary (the operator's XCom and the Slack message's input)."""
        out = asdict(self)
        out["decision_date"] = self.decision_date.isoformat()
        out["reasons"] = list(self.reasons)
        return json.loads(json.dumps(out, default=str))


_DECISION_COLUMNS = (
    "experiment_id",
    "decision_date",
    "outcome",
    "source",
    "reason",
    "reasons",
    "from_share",
    "to_share",
    "statistics",
    "registry_change",
    "decided_by",
    "run_id",
)


def _result_from_row(row: tuple[Any, ...], recorded: bool) -> EvaluationResult:
    d = dict(zip(_DECISION_COLUMNS, row, strict=True))
    return EvaluationResult(
        experiment_id=d["experiment_id"],
        decision_date=d["decision_date"],
        outcome=d["outcome"],
        source=d["source"],
        reason=d["reason"],
        reasons=tuple(d["reasons"] or ()),
        from_share=None if d["from_share"] is None else float(d["from_share"]),
        to_share=None if d["to_share"] is None else float(d["to_share"]),
        statistics=d["statistics"] or {},
        registry_change=d["registry_change"],
        recorded=recorded,
        alert=d["outcome"] in ("rollback", "halt"),
        decided_by=d["decided_by"],
        run_id=d["run_id"],
    )


def _read_decision(cur: Any, experiment_id: str | None, day: date) -> Any:
    cols = ", ".join(_DECISION_COLUMNS)
    if experiment_id is None:
        cur.execute(
            f"SELECT {cols} FROM ml.experiment_decisions WHERE decision_date = %s "
            "ORDER BY updated_at DESC, decision_id DESC LIMIT 1",
            (day,),
        )
    else:
        cur.execute(
            f"SELECT {cols} FROM ml.experiment_decisions WHERE experiment_id = %s AND decision_date = %s",
            (experiment_id, day),
        )
    return cur.fetchone()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=False)


def _apply(
    conn: Any, decision: Decision, *, updated_by: str, run_id: str, day: date
) -> dict[str, Any] | None:
    from feedbackloop import registry

    reason = decision.reason
    if decision.outcome == "ramp" and decision.to_share is not None:
        return registry.ramp_challenger(
            conn, decision.to_share, updated_by=updated_by, reason=reason, run_id=run_id, day=day
        )
    transitions = {
        "promote": registry.promote_challenger,
        "rollback": registry.rollback_challenger,
        "halt": registry.halt_experiment,
    }
    if decision.outcome in transitions:
        return transitions[decision.outcome](
            conn, updated_by=updated_by, reason=reason, run_id=run_id, day=day
        )
    return None


def evaluate_experiment(
    conn: Any,
    day: date,
    run_id: str,
    override: Override | None = None,
    *,
    updated_by: str | None = None,
    as_of: datetime | None = None,
    policy: Policy | None = None,
) -> EvaluationResult:
    """Evaluate the live experiment for ``day``, record the decision once, and apply it.

    The decision row (unique per experiment and day) and the registry change commit in one
    transaction. Evaluations racing on the same day both compute, but only the first
    insert wins; the others wait for it, find its row (``ON CONFLICT DO NOTHING``) and
    return it with ``recorded=False`` without touching the registry. A manual override
    replaces the day's automatic decision (kept in ``superseded``) and is applied; a
    repeated override on the same day returns the recorded one.

    Args:
        conn: psycopg connection to the feedback DB (app tables and ``ml`` schema).
        day: the decision date (the DAG's logical date).
        run_id: the Airflow run (recorded with the decision and in the history).
        override: a manual ``force_promote`` / ``force_rollback`` with its reason.
        updated_by: who decides (default ``run_id``); overrides name their requester.
        as_of: end of the analysed data (default: ``day`` 00:00 UTC, so a re-run later the
            same day sees the same data).
        policy: decision thresholds (default :class:`Policy`).

    Raises:
        RegistryError: for an override when no experiment is live and none was decided today.
    """
    from feedbackloop import registry

    policy = policy or Policy()
    as_of = as_of or datetime.combine(day, time.min, tzinfo=UTC)
    who = updated_by or run_id
    experiment = registry.get_live_experiment(conn)
    if experiment is None:
        with transaction(conn) as cur:
            row = _read_decision(cur, None, day)
        if row is not None:
            result = _result_from_row(row, recorded=False)
            if override is None or result.outcome == OVERRIDES[override.action]:
                return result
        if override is not None:
            raise RegistryError(f"no live experiment: nothing to {override.action.removeprefix('force_')}")
        return EvaluationResult(
            experiment_id=None,
            decision_date=day,
            outcome="none",
            source="auto",
            reason="no live experiment",
            decided_by=who,
            run_id=run_id,
        )

    stats = experiment_stats(conn, experiment, as_of, policy)
    share = float(experiment["current_share"])
    if override is not None:
        decision = override_decision(stats, override, share)
        who = override.requested_by or who
    elif experiment["status"] == "halted":
        # Frozen until a person decides; today's analysis is still recorded and shown.
        today = decide(stats, policy)
        decision = replace(
            today,
            outcome="halt",
            reason="experiment is halted; waiting for a manual force_promote or force_rollback",
            to_share=share,
            reasons=(f"today's analysis: {today.outcome}: {today.reason}", *today.reasons),
        )
    else:
        decision = decide(stats, policy)
    statistics = {
        **stats.to_dict(),
        "as_of": as_of.isoformat(),
        "efficacy_boundary": decision.efficacy_boundary,
        "harm_boundary": decision.harm_boundary,
    }
    values = (
        experiment["experiment_id"],
        day,
        decision.outcome,
        decision.source,
        decision.reason,
        _json(list(decision.reasons)),
        decision.from_share,
        decision.to_share,
        _json(statistics),
        _json(policy.to_dict()),
        who,
        run_id,
    )
    insert = """INSERT INTO ml.experiment_decisions AS d
                    (experiment_id, decision_date, outcome, source, reason, reasons, from_share, to_share,
                     statistics, policy, decided_by, run_id)
                VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s::jsonb, %s, %s)"""
    if decision.source == "auto":
        insert += " ON CONFLICT (experiment_id, decision_date) DO NOTHING RETURNING decision_id"
    else:
        # An override replaces the day's automatic decision, which stays on record.
        insert += """ ON CONFLICT (experiment_id, decision_date) DO UPDATE SET
                        outcome = EXCLUDED.outcome, source = EXCLUDED.source, reason = EXCLUDED.reason,
                        reasons = EXCLUDED.reasons, from_share = EXCLUDED.from_share,
                        to_share = EXCLUDED.to_share, statistics = EXCLUDED.statistics,
                        policy = EXCLUDED.policy, decided_by = EXCLUDED.decided_by, run_id = EXCLUDED.run_id,
                        registry_change = NULL, updated_at = now(),
                        superseded = to_jsonb(d) - 'statistics' - 'policy' - 'superseded'
                    WHERE d.source = 'auto'
                    RETURNING decision_id"""
    with transaction(conn) as cur:
        cur.execute(insert, values)
        inserted = cur.fetchone()
        if inserted is None:
            row = _read_decision(cur, experiment["experiment_id"], day)
            log.info(
                "decision for %s on %s already recorded; not applied again", experiment["experiment_id"], day
            )
            return _result_from_row(row, recorded=False)
        change = _apply(conn, decision, updated_by=who, run_id=run_id, day=day)
        cur.execute(
            "UPDATE ml.experiment_decisions SET registry_change = %s::jsonb WHERE decision_id = %s",
            (_json(change) if change is not None else None, inserted[0]),
        )
        row = _read_decision(cur, experiment["experiment_id"], day)
    return _result_from_row(row, recorded=True)
