"""The experiment's statistics against scipy reference implementations and textbook cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special, stats

from feedbackloop import experiment_stats as es

# ----------------------------------------------------------------------------------- SRM


@pytest.mark.parametrize(
    ("champion", "challenger", "share"),
    [
        pytest.param(9500, 500, 0.05, id="exact-5pct"),
        pytest.param(9420, 580, 0.05, id="5pct-too-many-challenger"),
        pytest.param(5050, 4950, 0.5, id="50pct-small-deviation"),
        pytest.param(7400, 2600, 0.25, id="25pct"),
        pytest.param(3, 1, 0.5, id="tiny"),
    ],
)
def test_srm_matches_scipy_chisquare(champion, challenger, share):
    result = es.srm_test(champion, challenger, share)
    n = champion + challenger
    ref = stats.chisquare([champion, challenger], f_exp=[n * (1 - share), n * share])
    assert result.chi2 == pytest.approx(ref.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert result.observed_share == challenger / n
    assert result.mismatch == (ref.pvalue < 0.001)


def test_srm_flags_a_doubled_challenger_share_and_accepts_a_fair_split():
    # 10% of 20 000 users on the challenger when 5% was configured: a textbook assignment bug.
    assert es.srm_test(18_000, 2_000, 0.05).mismatch is True
    fair = es.srm_test(19_000, 1_000, 0.05)
    assert fair.chi2 == 0 and fair.p_value == 1.0 and fair.mismatch is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((0, 0, 0.05), "no units", id="empty"),
        pytest.param((-1, 5, 0.05), "non-negative", id="negative"),
        pytest.param((10, 5, 0.0), "strictly between", id="share-zero"),
        pytest.param((10, 5, 1.0), "strictly between", id="share-one"),
        pytest.param((10.5, 5, 0.5), "integer", id="float-count"),
    ],
)
def test_srm_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        es.srm_test(*args)


# ------------------------------------------------------------------------------ accuracy


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b"),
    [
        pytest.param(900, 1000, 930, 1000, id="challenger-better"),
        pytest.param(9000, 10000, 8900, 10000, id="challenger-worse"),
        pytest.param(450, 500, 9050, 10000, id="unequal-arms"),
        pytest.param(50, 100, 50, 100, id="identical"),
    ],
)
def test_accuracy_chi2_matches_scipy_without_continuity_correction(a, n_a, b, n_b):
    result = es.accuracy_test(a, n_a, b, n_b)
    table = [[a, n_a - a], [b, n_b - b]]
    chi2, p, _, expected = stats.chi2_contingency(table, correction=False)
    assert result.method == "chi2"
    assert result.statistic == pytest.approx(chi2, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.min_expected == pytest.approx(expected.min())
    # chi2 without Yates equals the square of the pooled two-proportion z (the textbook z-test).
    pooled = (a + b) / (n_a + n_b)
    z = (b / n_b - a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    assert result.z == pytest.approx(z, rel=1e-9, abs=1e-12)
    assert result.difference == pytest.approx(b / n_b - a / n_a)
    assert result.ci_low < result.difference < result.ci_high or result.difference == 0


def test_accuracy_uses_fisher_for_small_expected_counts_lady_tasting_tea():
    # Fisher's own example: 3 of 4 cups right per row; two-sided p = 34/70 = 0.4857.
    result = es.accuracy_test(3, 4, 1, 4)
    assert result.method == "fisher"
    assert result.p_value == pytest.approx(34 / 70, rel=1e-9)
    assert result.statistic == pytest.approx(9.0)  # sample odds ratio (3*3)/(1*1)
    assert result.z < 0  # the challenger got fewer right


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b"),
    [
        pytest.param(998, 1000, 1000, 1000, id="near-perfect"),
        pytest.param(1, 20, 6, 20, id="rare-successes"),
        pytest.param(100, 100, 100, 100, id="all-correct"),
    ],
)
def test_accuracy_fisher_matches_scipy(a, n_a, b, n_b):
    result = es.accuracy_test(a, n_a, b, n_b)
    odds, p = stats.fisher_exact([[a, n_a - a], [b, n_b - b]])
    assert result.method == "fisher"
    assert result.p_value == pytest.approx(min(1.0, p), rel=1e-9)
    assert result.one_sided_p("greater") == pytest.approx(stats.norm.sf(result.z))
    if b / n_b > a / n_a:
        assert result.z > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param((5, 4, 3, 4), "exceed", id="more-correct-than-total"),
        pytest.param((0, 0, 3, 4), "at least one", id="empty-arm"),
        pytest.param((-1, 4, 3, 4), "non-negative", id="negative"),
        pytest.param((True, 4, 3, 4), "integer", id="bool"),
    ],
)
def test_accuracy_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        es.accuracy_test(*args)


def test_one_sided_p_rejects_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        es.accuracy_test(90, 100, 95, 100).one_sided_p("up")


# ------------------------------------------------------------------------------- latency


def test_latency_welch_on_logs_matches_scipy():
    rng = np.random.default_rng(42)
    champion = rng.lognormal(5.3, 0.35, 800)
    challenger = rng.lognormal(5.4, 0.5, 300)
    result = es.latency_test(champion, challenger)
    ref = stats.ttest_ind(np.log(challenger), np.log(champion), equal_var=False)
    assert result.t == pytest.approx(ref.statistic, rel=1e-10)
    assert result.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert result.df == pytest.approx(ref.df, rel=1e-10)
    assert result.p95_difference_ms == pytest.approx(
        np.percentile(challenger, 95) - np.percentile(champion, 95)
    )
    ratio = math.exp(np.log(challenger).mean() - np.log(champion).mean())
    assert result.ratio == pytest.approx(ratio)
    assert result.ratio_ci_low < result.ratio < result.ratio_ci_high
    assert result.one_sided_p_slower() == pytest.approx(ref.pvalue / 2, rel=1e-8)  # t > 0 here
    assert result.to_dict()["challenger"]["n"] == 300


def test_latency_accepts_database_summaries_and_gives_the_same_answer():
    rng = np.random.default_rng(5)
    a, b = rng.lognormal(5, 0.3, 500), rng.lognormal(5, 0.3, 500)
    from_arrays = es.latency_test(a, b)
    from_summaries = es.latency_test(es.summarise_latency(a), es.summarise_latency(b))
    assert from_arrays == from_summaries


def test_latency_summary_p95_is_linear_interpolation():
    summary = es.summarise_latency(list(range(1, 101)))  # 1..100 ms
    assert summary.p95_ms == pytest.approx(95.05)  # numpy / percentile_cont convention
    assert summary.n == 100


def test_constant_latencies_give_a_definite_answer():
    same = es.latency_test([100.0, 100.0, 100.0], [100.0, 100.0])
    assert (same.t, same.p_value, same.ratio) == (0.0, 1.0, 1.0)
    slower = es.latency_test([100.0, 100.0], [200.0, 200.0])
    assert slower.p_value == 0.0 and slower.t == math.inf and slower.one_sided_p_slower() == 0.0


@pytest.mark.parametrize(
    "latencies",
    [
        pytest.param([100.0], id="single-value"),
        pytest.param([100.0, 0.0, 50.0], id="zero"),
        pytest.param([100.0, -3.0], id="negative"),
        pytest.param([100.0, float("nan")], id="nan"),
        pytest.param([[1.0, 2.0], [3.0, 4.0]], id="two-dimensional"),
    ],
)
def test_latency_rejects_invalid_values(latencies):
    with pytest.raises(ValueError):
        es.summarise_latency(latencies)


# ---------------------------------------------------------------------------- engagement


def _exact_prob_b_beats_a(a1: int, a2: int, b1: int, b2: int) -> float:
    """Closed form for integer b1 (Evan Miller, "Formulas for Bayesian A/B testing")."""
    i = np.arange(b1)
    terms = (
        special.betaln(a1 + i, a2 + b2) - np.log(b2 + i) - special.betaln(1 + i, b2) - special.betaln(a1, a2)
    )
    return float(np.exp(terms).sum())


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b"),
    [
        pytest.param(10, 100, 15, 100, id="small"),
        pytest.param(300, 1000, 330, 1000, id="medium"),
        pytest.param(3000, 20000, 160, 1000, id="5pct-canary-arm"),
        pytest.param(0, 5000, 3, 5000, id="rare-events"),
        pytest.param(1000, 1000, 999, 1000, id="near-certain"),
    ],
)
def test_beta_binomial_probability_matches_the_closed_form(s_a, n_a, s_b, n_b):
    result = es.beta_binomial_test(s_a, n_a, s_b, n_b)
    exact = _exact_prob_b_beats_a(1 + s_a, 1 + n_a - s_a, 1 + s_b, 1 + n_b - s_b)
    assert result.prob_challenger_better == pytest.approx(exact, abs=1e-8)
    assert result.champion_mean == pytest.approx((1 + s_a) / (2 + n_a))


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b"),
    [
        pytest.param(10, 100, 15, 100, id="small"),
        pytest.param(3000, 20000, 160, 1000, id="unequal-arms"),
        pytest.param(50000, 1_000_000, 5100, 100_000, id="large"),
    ],
)
def test_beta_binomial_expected_loss_matches_monte_carlo(s_a, n_a, s_b, n_b):
    result = es.beta_binomial_test(s_a, n_a, s_b, n_b)
    rng = np.random.default_rng(2024)
    a = rng.beta(1 + s_a, 1 + n_a - s_a, 1_000_000)
    b = rng.beta(1 + s_b, 1 + n_b - s_b, 1_000_000)
    sd = np.std(a - b)
    # Monte Carlo standard error of E[max(., 0)] is below sd / sqrt(N); allow 5 of them.
    tol = 5 * sd / 1000
    assert result.expected_loss_challenger == pytest.approx(np.maximum(a - b, 0).mean(), abs=tol)
    assert result.expected_loss_champion == pytest.approx(np.maximum(b - a, 0).mean(), abs=tol)
    assert result.prob_challenger_better == pytest.approx((b > a).mean(), abs=0.003)


@pytest.mark.parametrize(
    ("s_a", "n_a", "s_b", "n_b", "margin"),
    [
        pytest.param(6000, 20000, 255, 1000, 0.02, id="small-challenger-arm"),
        pytest.param(300, 1000, 3000, 10000, 0.02, id="small-champion-arm"),
        pytest.param(300, 1000, 300, 1000, 0.0, id="no-margin-is-1-minus-p-better"),
    ],
)
def test_beta_binomial_probability_of_being_worse_by_a_margin(s_a, n_a, s_b, n_b, margin):
    result = es.beta_binomial_test(s_a, n_a, s_b, n_b, margin=margin)
    rng = np.random.default_rng(99)
    a = rng.beta(1 + s_a, 1 + n_a - s_a, 1_000_000)
    b = rng.beta(1 + s_b, 1 + n_b - s_b, 1_000_000)
    assert result.prob_worse_by_margin == pytest.approx((b < a - margin).mean(), abs=0.002)
    if margin == 0:
        assert result.prob_worse_by_margin == pytest.approx(1 - result.prob_challenger_better, abs=1e-9)


def test_beta_binomial_rejects_a_negative_margin():
    with pytest.raises(ValueError, match="margin"):
        es.beta_binomial_test(1, 3, 1, 3, margin=-0.01)


def test_accuracy_lower_bound_is_the_one_sided_wald_bound():
    result = es.accuracy_test(9000, 10000, 880, 1000)
    se = math.sqrt(0.9 * 0.1 / 10000 + 0.88 * 0.12 / 1000)
    assert result.se == pytest.approx(se)
    assert result.lower_bound(0.95) == pytest.approx(-0.02 - stats.norm.ppf(0.95) * se)
    assert result.ci_low == pytest.approx(-0.02 - stats.norm.ppf(0.975) * se)
    with pytest.raises(ValueError):
        result.lower_bound(1.0)


def test_beta_binomial_textbook_cases():
    # Two uniform posteriors: P = 1/2 and E[max(A - B, 0)] = E|A - B| / 2 = 1/6.
    flat = es.beta_binomial_test(0, 0, 0, 0)
    assert flat.prob_challenger_better == pytest.approx(0.5, abs=1e-12)
    assert flat.expected_loss_challenger == pytest.approx(1 / 6, abs=1e-9)
    symmetric = es.beta_binomial_test(120, 400, 120, 400)
    assert symmetric.prob_challenger_better == pytest.approx(0.5, abs=1e-9)
    assert symmetric.expected_loss_champion == pytest.approx(symmetric.expected_loss_challenger, rel=1e-9)
    # The two losses differ by the difference of the posterior means.
    r = es.beta_binomial_test(30, 100, 45, 120)
    assert r.expected_loss_champion - r.expected_loss_challenger == pytest.approx(
        r.challenger_mean - r.champion_mean, abs=1e-9
    )


def test_beta_binomial_is_deterministic_and_json_safe():
    first = es.beta_binomial_test(300, 1000, 330, 1000)
    assert first == es.beta_binomial_test(300, 1000, 330, 1000)
    assert json.loads(json.dumps(first.to_dict())) == first.to_dict()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param((5, 3, 1, 3), {}, id="more-successes-than-trials"),
        pytest.param((1, 3, -1, 3), {}, id="negative"),
        pytest.param((1, 3, 1, 3), {"prior_alpha": 0}, id="improper-prior"),
    ],
)
def test_beta_binomial_rejects_bad_input(args, kwargs):
    with pytest.raises(ValueError):
        es.beta_binomial_test(*args, **kwargs)


# ------------------------------------------------------------------ sequential boundaries


def test_obrien_fleming_spending_function():
    assert es.obrien_fleming_spending(1.0, 0.025) == pytest.approx(0.025)
    assert es.obrien_fleming_spending(0.0, 0.025) == 0.0
    values = [es.obrien_fleming_spending(t / 10, 0.025) for t in range(1, 11)]
    assert values == sorted(values)
    assert values[0] < 1e-8  # almost nothing is spent early
    assert es.obrien_fleming_spending(0.5, 0.025) == pytest.approx(
        2 * stats.norm.sf(stats.norm.isf(0.0125) * 2**0.5)
    )


@pytest.mark.parametrize(
    ("fractions", "expected"),
    [
        # gsDesign::gsDesign(k=5, test.type=1, alpha=0.025, sfu=sfLDOF)$upper$bound
        pytest.param((0.2, 0.4, 0.6, 0.8, 1.0), (4.8769, 3.3569, 2.6803, 2.2898, 2.0310), id="5-equal-looks"),
        # gsDesign::gsDesign(k=2, test.type=1, alpha=0.025, sfu=sfLDOF)$upper$bound
        pytest.param((0.5, 1.0), (2.9626, 1.9686), id="2-equal-looks"),
        pytest.param((1.0,), (1.959964,), id="single-look-is-the-fixed-test"),
    ],
)
def test_sequential_boundaries_match_published_lan_demets_values(fractions, expected):
    assert es.sequential_boundaries(fractions, 0.025) == pytest.approx(expected, abs=1.5e-4)


def test_sequential_boundaries_spend_exactly_alpha_and_daily_nominal_peeking_does_not():
    looks = tuple(k / 14 for k in range(1, 15))
    bounds = es.sequential_boundaries(looks, 0.025)
    assert bounds == tuple(sorted(bounds, reverse=True))
    assert bounds[-1] == pytest.approx(2.1026, abs=2e-3)
    assert es.crossing_probability(bounds, looks) == pytest.approx(0.025, abs=1e-6)
    # Testing at the nominal 1.96 every day: the classic inflation (Armitage et al. 1969).
    naive = es.crossing_probability([stats.norm.isf(0.025)] * 14, looks)
    assert naive == pytest.approx(0.110, abs=0.002)  # 4.4x the nominal 2.5%


def test_sequential_boundaries_hold_alpha_in_a_brownian_motion_simulation():
    looks = np.arange(1, 15) / 14
    bounds = np.array(es.sequential_boundaries(tuple(looks), 0.025))
    rng = np.random.default_rng(7)
    increments = rng.normal(0, np.sqrt(1 / 14), size=(200_000, 14))
    z = np.cumsum(increments, axis=1) / np.sqrt(looks)
    crossed = (z >= bounds).any(axis=1).mean()
    assert crossed == pytest.approx(0.025, abs=0.0015)


@pytest.mark.parametrize(
    "fractions",
    [
        pytest.param((), id="empty"),
        pytest.param((0.5, 0.5), id="not-increasing"),
        pytest.param((0.0, 1.0), id="zero"),
        pytest.param((0.5, 1.2), id="beyond-one"),
    ],
)
def test_sequential_boundaries_reject_bad_schedules(fractions):
    with pytest.raises(ValueError):
        es.sequential_boundaries(fractions, 0.025)
