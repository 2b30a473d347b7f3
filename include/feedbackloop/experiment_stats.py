"""Statistics of the champion/challenger A/B experiment, as pure functions over counts and arrays.

Every function validates its input, never mutates it, and returns a frozen dataclass whose
``to_dict()`` is JSON-safe (it is stored in ``ml.experiment_decisions.statistics``). The
sign convention is the same everywhere: a positive difference, z or t means the challenger
has the larger value (more accurate, slower, more engaging).

* :func:`srm_test` - sample-ratio mismatch: Pearson chi-square goodness of fit of the units
  (users) per arm against the split the traffic share implies.
* :func:`accuracy_test` - two proportions: Pearson chi-square on the 2x2 table without Yates'
  continuity correction (so ``chi2 == z**2`` of the pooled two-proportion z-test, which the
  sequential boundary is expressed in), or Fisher's exact test when any expected cell is
  below 5, where the chi-square approximation is poor.
* :func:`latency_test` - Welch's unequal-variance t-test on log latency (latency is
  right-skewed and roughly log-normal; the test compares geometric means) plus the
  difference of the 95th percentiles, the number the brief's SLO is about.
* :func:`beta_binomial_test` - engagement as a Bayesian Beta-Binomial model with a Beta(1, 1)
  prior: probability that the challenger's rate is higher and the expected loss of either
  choice, by deterministic Gauss-Legendre quadrature (no sampling noise, no seed).
* :func:`obrien_fleming_spending`, :func:`pocock_spending` and
  :func:`sequential_boundaries` - the Lan-DeMets alpha-spending functions and the exact
  one-sided group-sequential boundaries they imply, computed by numerical integration
  (Jennison & Turnbull, ch. 19).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special, stats

_Z95 = float(stats.norm.ppf(0.975))

# The daily evaluation and the simulations call these on scalars thousands of times:
# scipy.special's ufuncs are what scipy.stats evaluates underneath, without its
# per-call argument handling (about 50x faster for one value).


def _norm_sf(z: float) -> float:
    return float(special.ndtr(-z))


def _norm_isf(p: float) -> float:
    return float(-special.ndtri(p))


def _norm_ppf(q: float) -> float:
    return float(special.ndtri(q))


def _chi2_sf_1df(x: float) -> float:
    return float(special.chdtrc(1, x))


def _t_sf(t: float, df: float) -> float:
    return float(special.stdtr(df, -t))


def _t_ppf(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _jsonable(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(obj).items():
        if isinstance(value, float):
            out[key] = _finite_or_none(value)
        else:
            out[key] = value
    return out


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _successes(name: str, successes: Any, total: Any) -> tuple[int, int]:
    s, n = _count(f"{name} successes", successes), _count(f"{name} total", total)
    if s > n:
        raise ValueError(f"{name}: successes ({s}) exceed the total ({n})")
    return s, n


# ------------------------------------------------------------------- sample-ratio mismatch


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: were units split between the arms as configured?

    Attributes:
        champion_units / challenger_units: observed units (users) per arm.
        expected_share: the challenger's configured traffic share.
        expected_champion / expected_challenger: expected units per arm.
        observed_share: the challenger's observed share of units.
        chi2: Pearson chi-square statistic (1 degree of freedom).
        p_value: its upper-tail p-value.
        alpha: the threshold; below it the split is a mismatch.
        mismatch: ``p_value < alpha``.
    """

    champion_units: int
    challenger_units: int
    expected_share: float
    expected_champion: float
    expected_challenger: float
    observed_share: float
    chi2: float
    p_value: float
    alpha: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


def srm_test(
    champion_units: int, challenger_units: int, challenger_share: float, alpha: float = 0.001
) -> SrmResult:
    """Chi-square goodness-of-fit test of the observed split against ``challenger_share``.

    Args:
        champion_units: units (users, the unit of randomisation) seen in the champion arm.
        challenger_units: units seen in the challenger arm.
        challenger_share: the challenger's configured share, strictly between 0 and 1.
        alpha: p-values below it are a mismatch (0.001 by convention: SRM checks run on
            every look, and a mismatch is a bug in assignment or logging, not a close call).

    Raises:
        ValueError: on negative counts, no units at all, or a share outside (0, 1).
    """
    a, b = _count("champion_units", champion_units), _count("challenger_units", challenger_units)
    if not 0 < challenger_share < 1:
        raise ValueError(f"challenger_share must be strictly between 0 and 1, got {challenger_share!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n = a + b
    if n == 0:
        raise ValueError("no units in either arm: nothing to test")
    exp_a, exp_b = n * (1 - challenger_share), n * challenger_share
    chi2 = (a - exp_a) ** 2 / exp_a + (b - exp_b) ** 2 / exp_b
    p = _chi2_sf_1df(chi2)
    return SrmResult(
        champion_units=a,
        challenger_units=b,
        expected_share=float(challenger_share),
        expected_champion=exp_a,
        expected_challenger=exp_b,
        observed_share=b / n,
        chi2=float(chi2),
        p_value=p,
        alpha=float(alpha),
        mismatch=p < alpha,
    )


# ------------------------------------------------------------------------------- accuracy


@dataclass(frozen=True)
class ProportionTest:
    """Two-proportion comparison (challenger minus champion).

    Attributes:
        method: ``"chi2"`` (Pearson, no continuity correction) or ``"fisher"`` (exact).
        champion_successes / champion_total / challenger_successes / challenger_total: the
            2x2 table.
        champion_rate / challenger_rate: observed proportions (None for an empty arm).
        difference: ``challenger_rate - champion_rate``.
        se: unpooled standard error of the difference (for confidence bounds).
        ci_low / ci_high: Wald 95% interval of the difference.
        min_expected: the smallest expected cell count (decides the method).
        statistic: chi-square statistic, or the sample odds ratio for Fisher.
        p_value: two-sided p-value.
        z: signed z-score (positive: challenger better); ``sqrt(chi2)`` with the sign of the
            difference, or the normal quantile of Fisher's p-value.
    """

    method: str
    champion_successes: int
    champion_total: int
    challenger_successes: int
    challenger_total: int
    champion_rate: float | None
    challenger_rate: float | None
    difference: float | None
    se: float
    ci_low: float | None
    ci_high: float | None
    min_expected: float
    statistic: float | None
    p_value: float
    z: float

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)

    def lower_bound(self, confidence: float = 0.95) -> float:
        """One-sided lower confidence bound of the difference (Wald)."""
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        return float((self.difference or 0.0) - _norm_ppf(confidence) * self.se)

    def one_sided_p(self, direction: str) -> float:
        """p-value of the one-sided alternative ``"greater"`` (challenger better) or ``"less"``."""
        if direction not in ("greater", "less"):
            raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
        z = self.z if direction == "greater" else -self.z
        return _norm_sf(z)


def accuracy_test(
    champion_correct: int,
    champion_total: int,
    challenger_correct: int,
    challenger_total: int,
    min_expected_cell: float = 5.0,
) -> ProportionTest:
    """Compare the accuracy (share correct) of the two arms.

    Pearson's chi-square on the 2x2 table, or Fisher's exact test when any expected cell
    is below ``min_expected_cell`` (Cochran's rule). Without Yates' correction on purpose:
    it is known to be conservative, and the uncorrected statistic equals the square of the
    pooled two-proportion z, which the sequential boundaries are expressed in.

    Raises:
        ValueError: on negative counts, more correct than total, or an empty arm.
    """
    a, n_a = _successes("champion", champion_correct, champion_total)
    b, n_b = _successes("challenger", challenger_correct, challenger_total)
    if n_a == 0 or n_b == 0:
        raise ValueError("both arms need at least one observation")
    table = np.array([[a, n_a - a], [b, n_b - b]], dtype=float)
    n = n_a + n_b
    col = table.sum(axis=0)
    expected = np.outer([n_a, n_b], col) / n
    min_expected = float(expected.min())
    rate_a, rate_b = a / n_a, b / n_b
    diff = rate_b - rate_a
    se = math.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
    sign = 0.0 if diff == 0 else math.copysign(1.0, diff)
    if min_expected < min_expected_cell:
        odds_ratio, p = stats.fisher_exact(table.astype(int), alternative="two-sided")
        p = min(1.0, float(p))
        method, statistic = "fisher", float(odds_ratio)
        z = sign * _norm_isf(p / 2) if p < 1 else 0.0
    else:
        chi2 = float(((table - expected) ** 2 / expected).sum())
        p = _chi2_sf_1df(chi2)
        method, statistic = "chi2", chi2
        z = sign * math.sqrt(chi2)
    return ProportionTest(
        method=method,
        champion_successes=a,
        champion_total=n_a,
        challenger_successes=b,
        challenger_total=n_b,
        champion_rate=rate_a,
        challenger_rate=rate_b,
        difference=diff,
        se=se,
        ci_low=diff - _Z95 * se,
        ci_high=diff + _Z95 * se,
        min_expected=min_expected,
        statistic=statistic,
        p_value=p,
        z=z,
    )


# -------------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class LatencySummary:
    """Sufficient statistics of one arm's latencies for Welch's test on the log scale.

    Attributes:
        n: number of latencies.
        mean_log: mean of ``ln(latency_ms)``.
        var_log: sample variance (ddof=1) of ``ln(latency_ms)``.
        p95_ms: 95th percentile in ms (linear interpolation, like numpy's default and
            PostgreSQL's ``percentile_cont``).
    """

    n: int
    mean_log: float
    var_log: float
    p95_ms: float

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


def summarise_latency(latencies_ms: Sequence[float] | np.ndarray) -> LatencySummary:
    """Reduce an array of latencies (ms) to a :class:`LatencySummary`.

    Raises:
        ValueError: with fewer than 2 values, or any value that is not finite and positive
            (the log of a zero latency is undefined; such rows are logging bugs).
    """
    x = np.asarray(latencies_ms, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"need at least 2 latencies, got {x.size}")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError("latencies must be finite and strictly positive")
    logs = np.log(x)
    return LatencySummary(
        n=int(x.size),
        mean_log=float(logs.mean()),
        var_log=float(logs.var(ddof=1)),
        p95_ms=float(np.percentile(x, 95)),
    )


@dataclass(frozen=True)
class LatencyTest:
    """Welch's t-test on log latency (challenger minus champion) and the p95 difference.

    Attributes:
        champion / challenger: the arms' summaries.
        t: Welch's t statistic (positive: challenger slower).
        df: Welch-Satterthwaite degrees of freedom.
        p_value: two-sided p-value.
        ratio: geometric-mean latency ratio challenger / champion.
        ratio_ci_low / ratio_ci_high: its 95% interval.
        p95_difference_ms: challenger p95 minus champion p95 (positive: slower).
    """

    champion: LatencySummary
    challenger: LatencySummary
    t: float
    df: float
    p_value: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    p95_difference_ms: float

    def to_dict(self) -> dict[str, Any]:
        out = _jsonable(self)
        out["champion"] = self.champion.to_dict()
        out["challenger"] = self.challenger.to_dict()
        return out

    def one_sided_p_slower(self) -> float:
        """p-value of the alternative "the challenger is slower" (geometric mean)."""
        if self.se == 0:
            return 1.0 if self.t <= 0 else 0.0
        return _t_sf(self.t, self.df)

    @property
    def se(self) -> float:
        return math.sqrt(
            self.champion.var_log / self.champion.n + self.challenger.var_log / self.challenger.n
        )


def latency_test(
    champion: LatencySummary | Sequence[float] | np.ndarray,
    challenger: LatencySummary | Sequence[float] | np.ndarray,
) -> LatencyTest:
    """Welch's t-test on log latency plus the p95 difference.

    Args:
        champion: the champion's latencies in ms, or their :class:`LatencySummary` (the
            database computes the summary so the rows never leave it).
        challenger: the same for the challenger.

    Raises:
        ValueError: on invalid latencies or fewer than 2 per arm.
    """
    a = champion if isinstance(champion, LatencySummary) else summarise_latency(champion)
    b = challenger if isinstance(challenger, LatencySummary) else summarise_latency(challenger)
    for name, s in (("champion", a), ("challenger", b)):
        if s.n < 2 or s.var_log < 0 or s.p95_ms <= 0:
            raise ValueError(f"{name} latency summary is invalid: {s}")
    va, vb = a.var_log / a.n, b.var_log / b.n
    se = math.sqrt(va + vb)
    delta = b.mean_log - a.mean_log
    if se == 0:
        # Constant latencies in both arms: the difference is known exactly.
        t = 0.0 if delta == 0 else math.copysign(math.inf, delta)
        df = float(a.n + b.n - 2)
        p = 1.0 if delta == 0 else 0.0
        lo = hi = math.exp(delta)
    else:
        t = delta / se
        df = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
        p = 2 * _t_sf(abs(t), df)
        q = _t_ppf(0.975, df)
        lo, hi = math.exp(delta - q * se), math.exp(delta + q * se)
    return LatencyTest(
        champion=a,
        challenger=b,
        t=float(t),
        df=float(df),
        p_value=p,
        ratio=math.exp(delta),
        ratio_ci_low=lo,
        ratio_ci_high=hi,
        p95_difference_ms=b.p95_ms - a.p95_ms,
    )


# ----------------------------------------------------------------------------- engagement


@dataclass(frozen=True)
class BetaBinomialResult:
    """Posterior comparison of two engagement rates under independent Beta priors.

    Attributes:
        champion_successes / champion_trials / challenger_successes / challenger_trials: data.
        prior_alpha / prior_beta: the Beta prior (1, 1 = uniform).
        champion_mean / challenger_mean: posterior mean rates.
        prob_challenger_better: P(challenger rate > champion rate | data).
        expected_loss_challenger: E[max(champion - challenger, 0)], the rate lost on average
            by choosing the challenger.
        expected_loss_champion: E[max(challenger - champion, 0)], lost by keeping the champion.
        margin: the tolerated drop for :attr:`prob_worse_by_margin`.
        prob_worse_by_margin: P(challenger rate < champion rate - margin | data).
    """

    champion_successes: int
    champion_trials: int
    challenger_successes: int
    challenger_trials: int
    prior_alpha: float
    prior_beta: float
    champion_mean: float
    challenger_mean: float
    prob_challenger_better: float
    expected_loss_challenger: float
    expected_loss_champion: float
    margin: float
    prob_worse_by_margin: float

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(self)


_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(256)


def _beta_pdf(x: np.ndarray, a: float, b: float) -> np.ndarray:
    # Direct log-density: scipy.stats.beta.pdf's argument checking costs more than the maths.
    with np.errstate(divide="ignore"):
        log_pdf = special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x) - special.betaln(a, b)
    return np.exp(log_pdf)


def _beta_window(a: float, b: float) -> tuple[float, float]:
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    # 20 sd: even a skewed Beta(1, n) leaves < 1e-9 of its mass outside.
    return max(0.0, mean - 20 * sd), min(1.0, mean + 20 * sd)


def beta_binomial_test(
    champion_successes: int,
    champion_trials: int,
    challenger_successes: int,
    challenger_trials: int,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    margin: float = 0.0,
) -> BetaBinomialResult:
    """Bayesian comparison of two rates with Beta(prior_alpha, prior_beta) priors.

    Args:
        champion_successes / champion_trials / challenger_successes / challenger_trials: data.
        prior_alpha / prior_beta: the Beta prior of both rates (1, 1: uniform).
        margin: a tolerated drop in [0, 1); the result also gives the probability that the
            challenger is worse by more than it (a non-inferiority guardrail).

    The integrals are one-dimensional: condition on the arm whose posterior is narrower
    and use closed forms for the other (regularised incomplete beta functions), then
    integrate over the narrow posterior with 256-point Gauss-Legendre quadrature on
    +-20 standard deviations. That is exact to ~1e-9 for any sample sizes and, unlike
    Monte Carlo, gives the same bytes every run.

    Raises:
        ValueError: on negative counts, more successes than trials, or a non-positive prior.
    """
    s_a, n_a = _successes("champion", champion_successes, champion_trials)
    s_b, n_b = _successes("challenger", challenger_successes, challenger_trials)
    if not (prior_alpha > 0 and prior_beta > 0):
        raise ValueError("the Beta prior's parameters must be positive")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}")
    a1, a2 = prior_alpha + s_a, prior_beta + n_a - s_a  # champion posterior
    b1, b2 = prior_alpha + s_b, prior_beta + n_b - s_b  # challenger posterior
    mean_a, mean_b = a1 / (a1 + a2), b1 / (b1 + b2)
    var_a = a1 * a2 / ((a1 + a2) ** 2 * (a1 + a2 + 1))
    var_b = b1 * b2 / ((b1 + b2) ** 2 * (b1 + b2 + 1))
    if var_a <= var_b:
        # Integrate over the champion's rate x: P(B > x) and E[(x - B)+].
        lo, hi = _beta_window(a1, a2)
        x = (hi - lo) / 2 * _GL_NODES + (hi + lo) / 2
        w = (hi - lo) / 2 * _GL_WEIGHTS * _beta_pdf(x, a1, a2)
        w = w / w.sum()
        prob_b_better = float(np.dot(w, 1 - special.betainc(b1, b2, x)))
        prob_b_worse = float(np.dot(w, special.betainc(b1, b2, np.clip(x - margin, 0.0, 1.0))))
        loss_b = float(np.dot(w, x * special.betainc(b1, b2, x) - mean_b * special.betainc(b1 + 1, b2, x)))
    else:
        # Integrate over the challenger's rate y: P(A < y) and E[(A - y)+].
        lo, hi = _beta_window(b1, b2)
        y = (hi - lo) / 2 * _GL_NODES + (hi + lo) / 2
        w = (hi - lo) / 2 * _GL_WEIGHTS * _beta_pdf(y, b1, b2)
        w = w / w.sum()
        prob_b_better = float(np.dot(w, special.betainc(a1, a2, y)))
        prob_b_worse = float(np.dot(w, 1 - special.betainc(a1, a2, np.clip(y + margin, 0.0, 1.0))))
        loss_b = float(
            np.dot(w, mean_a * (1 - special.betainc(a1 + 1, a2, y)) - y * (1 - special.betainc(a1, a2, y)))
        )
    loss_b = max(0.0, loss_b)
    # E[(B - A)+] - E[(A - B)+] = E[B - A]: the second loss follows from the first.
    loss_a = max(0.0, loss_b + mean_b - mean_a)
    return BetaBinomialResult(
        champion_successes=s_a,
        champion_trials=n_a,
        challenger_successes=s_b,
        challenger_trials=n_b,
        prior_alpha=float(prior_alpha),
        prior_beta=float(prior_beta),
        champion_mean=mean_a,
        challenger_mean=mean_b,
        prob_challenger_better=min(1.0, max(0.0, prob_b_better)),
        expected_loss_challenger=loss_b,
        expected_loss_champion=loss_a,
        margin=float(margin),
        prob_worse_by_margin=min(1.0, max(0.0, prob_b_worse)),
    )


# ------------------------------------------------------------------ sequential boundaries


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: alpha spent by information fraction ``t``.

    ``alpha(t) = 2 * (1 - Phi(Phi^-1(1 - alpha/2) / sqrt(t)))`` for a one-sided level
    ``alpha``; it spends almost nothing early and reaches ``alpha`` at ``t = 1``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    return 2 * _norm_sf(_norm_isf(alpha / 2) / math.sqrt(t))


def pocock_spending(t: float, alpha: float) -> float:
    """Lan-DeMets Pocock-type spending: ``alpha(t) = alpha * ln(1 + (e - 1) * t)``.

    Spends alpha roughly evenly over the looks, so early boundaries are not much higher
    than late ones: the right shape for a safety (harm) test that should stop early.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if t <= 0:
        return 0.0
    return float(alpha * math.log(1 + (math.e - 1) * min(t, 1.0)))


SPENDING_FUNCTIONS = {"obrien_fleming": obrien_fleming_spending, "pocock": pocock_spending}


_GRID_STEP = 0.02
_SQRT_2PI = math.sqrt(2 * math.pi)


def _simpson_grid(low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and Simpson weights on [low, high] with spacing about ``_GRID_STEP``."""
    intervals = max(2, int(math.ceil((high - low) / _GRID_STEP)))
    intervals += intervals % 2  # Simpson needs an even number of intervals
    nodes = np.linspace(low, high, intervals + 1)
    h = (high - low) / intervals
    weights = np.full(intervals + 1, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    return nodes, weights * h / 3


def _continuation_density(
    previous: tuple[np.ndarray, np.ndarray] | None, t: float, step: float, bound_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-density of the score ``S(t)`` on (-10 sd, bound_s) for paths that never crossed.

    Returns nodes and ``weight * density`` at the nodes (the mass each node carries), from
    the previous look's masses by convolution with the Brownian increment's normal density.
    """
    sd = math.sqrt(step)
    low = -10 * math.sqrt(t)
    high = bound_s if math.isfinite(bound_s) else 10 * math.sqrt(t)
    nodes, weights = _simpson_grid(low, high)
    if previous is None:
        density = np.exp(-0.5 * (nodes / sd) ** 2) / (sd * _SQRT_2PI)
    else:
        grid, mass = previous
        density = (np.exp(-0.5 * ((nodes[:, None] - grid[None, :]) / sd) ** 2) / (sd * _SQRT_2PI)) @ mass
    return nodes, weights * density


def sequential_boundaries(
    information_fractions: Sequence[float], alpha: float, spending: str = "obrien_fleming"
) -> tuple[float, ...]:
    """One-sided group-sequential boundaries (z scale) for looks at the given fractions.

    The boundary ``c_k`` of look ``k`` is chosen so that, with no true difference, the
    probability of first crossing at look ``k`` equals the alpha spent between looks
    ``k-1`` and ``k`` by the spending function (:func:`obrien_fleming_spending` or
    :func:`pocock_spending`). The correlation between looks is
    accounted for exactly: the score ``S_k = Z_k * sqrt(t_k)`` is a Brownian motion in
    information time, and the density of not having crossed yet is propagated from look
    to look by numerical convolution on a fine grid (Armitage-McPherson-Rowe recursion).
    The total probability of ever crossing is then exactly ``alpha(t_K)``.

    Args:
        information_fractions: strictly increasing fractions in (0, 1], one per look.
        alpha: one-sided level spent by ``t = 1``.
        spending: ``"obrien_fleming"`` or ``"pocock"``.

    Raises:
        ValueError: when the fractions are empty, not increasing, or outside (0, 1], or
            the spending function is unknown.
    """
    ts = tuple(float(t) for t in information_fractions)
    if not ts:
        raise ValueError("need at least one look")
    if any(not 0 < t <= 1 for t in ts) or any(b <= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"information fractions must increase strictly within (0, 1], got {ts}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if spending not in SPENDING_FUNCTIONS:
        raise ValueError(f"spending must be one of {sorted(SPENDING_FUNCTIONS)}, got {spending!r}")
    return _boundaries(ts, float(alpha), spending)


@lru_cache(maxsize=256)
def _boundaries(ts: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    from scipy.optimize import brentq

    spend = SPENDING_FUNCTIONS[spending]
    spent = [spend(t, alpha) for t in ts]
    bounds: list[float] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    prev_t = 0.0
    for k, t in enumerate(ts):
        target = spent[k] - (spent[k - 1] if k else 0.0)
        step = t - prev_t
        sd = math.sqrt(step)
        if previous is None:
            b_z = float(stats.norm.isf(target))
            bound_s = b_z * math.sqrt(t)
        elif target <= 0:
            b_z = bound_s = math.inf
        else:
            grid, mass = previous

            def excess(
                b: float,
                grid: np.ndarray = grid,
                mass: np.ndarray = mass,
                sd: float = sd,
                target: float = target,
            ) -> float:
                # On the log scale: early increments are as small as 1e-15.
                cross = float(np.dot(mass, stats.norm.sf((b - grid) / sd)))
                return math.log(max(cross, 1e-300)) - math.log(target)

            bound_s = brentq(excess, float(grid[0]), float(grid[-1]) + 40 * sd, xtol=1e-10)
            b_z = bound_s / math.sqrt(t)
        bounds.append(b_z)
        previous = _continuation_density(previous, t, step, bound_s)
        prev_t = t
    return tuple(float(b) for b in bounds)


def crossing_probability(boundaries: Sequence[float], information_fractions: Sequence[float]) -> float:
    """P(ever crossing the boundaries) with no true difference, by the same recursion.

    Checks a set of boundaries: it returns the one-sided level they actually spend.
    """
    ts = tuple(float(t) for t in information_fractions)
    bs = tuple(float(b) for b in boundaries)
    if len(ts) != len(bs) or not ts:
        raise ValueError("need one boundary per information fraction")
    total = 0.0
    previous: tuple[np.ndarray, np.ndarray] | None = None
    prev_t = 0.0
    for t, b in zip(ts, bs, strict=True):
        sd = math.sqrt(t - prev_t)
        bound_s = b * math.sqrt(t)
        if previous is None:
            total += float(stats.norm.sf(b))
        else:
            grid, mass = previous
            total += float(np.dot(mass, stats.norm.sf((bound_s - grid) / sd)))
        previous = _continuation_density(previous, t, t - prev_t, bound_s)
        prev_t = t
    return total
