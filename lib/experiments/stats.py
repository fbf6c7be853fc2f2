"""The statistics of an experiment report, with the standard library only.

scipy would add tens of megabytes to every function's bundle for a few formulas, so they are here,
small, and checked against scipy in the tests (tests/test_experiment_stats.py).

    Summary                 a sample of per-unit values: n, mean, variance (from values or SQL sums)
    welch(control, b)       difference of means: Welch's t-test, its p-value and 95% interval
    mean_interval(s)        Student-t 95% interval of one mean
    Rate                    successes over trials, per unit (several trials per unit allowed)
    compare_rates(a, b)     difference of rates: the two-proportion z-test when every unit is one
                            trial, else a z-test on the delta-method variance of the ratio
    rate_interval(r)        Wilson 95% interval (one trial per unit), else delta-method normal
    msprt_p_value(...)      always-valid p-value of the mixture SPRT (normal mixture)
    srm_check(obs, weights) sample-ratio mismatch: chi-square goodness of fit

Distributions: the normal from `math.erfc` (tails) and `statistics.NormalDist` (quantiles);
Student's t through the regularized incomplete beta function; chi-square through the regularized
upper incomplete gamma function, both by their continued fractions (Numerical Recipes, 3rd ed.,
6.2 and 6.4; Lentz's method).

References: Welch (1947); Wilson (1927); the delta method for ratio metrics as in Deng, Knoblich
and Lu, "Applying the Delta Method in Metric Analytics" (KDD 2018); the mixture SPRT of Johari,
Pekelis and Walsh, "Always Valid Inference" (2017/2022), as GrowthBook and Optimizely use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
SRM_THRESHOLD = 0.001
# The mSPRT's normal mixture over the effect has standard deviation MIXING_SD times the metric's
# pooled per-unit standard deviation (tau^2 = (0.1 sigma)^2): most of its weight is on effects up
# to about a fifth of a standard deviation, the size prompt and model changes usually have.
MIXING_SD = 0.1
_EPS = 1e-15
_TINY = 1e-300
_NORMAL = NormalDist()
Z_95 = _NORMAL.inv_cdf(0.5 + CONFIDENCE / 2)


# --- distribution functions ---------------------------------------------------------------------


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_beta = math.lgamma(min(a, b)) - _log_gamma_ratio(max(a, b), min(a, b))
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def _log_gamma_ratio(a: float, b: float) -> float:
    """log Gamma(a + b) - log Gamma(a). For large `a` (a t-test with many degrees of freedom) the
    difference of two huge lgamma values would lose half the digits, so it comes from the
    difference of their Stirling series instead."""
    if a < 10.0:
        return math.lgamma(a + b) - math.lgamma(a)

    def tail(z: float) -> float:
        return 1 / (12 * z) - 1 / (360 * z ** 3) + 1 / (1260 * z ** 5) - 1 / (1680 * z ** 7)

    return (a - 0.5) * math.log1p(b / a) + b * math.log(a + b) - b + tail(a + b) - tail(a)


def _beta_fraction(a: float, b: float, x: float) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def gammaincc(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x)."""
    if x <= 0.0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:  # the series for P(a, x) converges here
        term = total = 1.0 / a
        for n in range(1, 10_000):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    b = x + 1.0 - a
    c, d = 1.0 / _TINY, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return math.exp(log_front) * h


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom."""
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    tail = t_two_sided_p(t, df) / 2.0
    return 1.0 - tail if t >= 0 else tail


def t_pdf(t: float, df: float) -> float:
    return math.exp(_log_gamma_ratio(df / 2, 0.5) - 0.5 * math.log(df * math.pi) - (df + 1) / 2 * math.log1p(t * t / df))


def t_ppf(q: float, df: float) -> float:
    """The quantile of Student's t: Newton's method on the upper tail from the normal quantile (the
    tail is concave there, so the steps approach from below), bisection if that stalls."""
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    tail = 1.0 - q
    t = _NORMAL.inv_cdf(q)
    for _ in range(50):
        step = (t_two_sided_p(t, df) / 2.0 - tail) / t_pdf(t, df)
        if not math.isfinite(step) or t + step < 0:
            break
        t += step
        if abs(step) <= 1e-12 * max(1.0, t):
            return t
    low, high = 0.0, max(1.0, t)
    while t_cdf(high, df) < q:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        low, high = (middle, high) if t_cdf(middle, df) < q else (low, middle)
        if high - low <= 1e-14 * max(1.0, high):
            break
    return (low + high) / 2.0


def chi2_sf(x: float, df: float) -> float:
    return gammaincc(df / 2.0, x / 2.0)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|); erfc keeps its digits far in the tail, where 1 - erf(x) would round to 0."""
    return math.erfc(abs(z) / math.sqrt(2.0))


# --- samples and comparisons ------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Per-unit values of one variant: how many, their mean and sample variance (n - 1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        n = len(values)
        mean = sum(values) / n if n else 0.0
        variance = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> Summary:
        """From count, sum and sum of squares (what SQL aggregates return)."""
        if n <= 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        variance = max(0.0, (total_sq - total * total / n) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, variance)


@dataclass(frozen=True)
class Comparison:
    """A variant against control: the difference (variant minus control), its 95% interval, the
    fixed-horizon p-value, the always-valid (sequential) p-value, and the test used."""

    difference: float
    ci95: tuple[float, float] | None
    p_value: float | None
    sequential_p_value: float | None
    test: str


def mean_interval(s: Summary) -> tuple[float, float] | None:
    if s.n < 2:
        return None
    half = t_ppf(0.5 + CONFIDENCE / 2, s.n - 1) * math.sqrt(s.variance / s.n)
    return (s.mean - half, s.mean + half)


def welch(control: Summary, other: Summary) -> Comparison | None:
    """Welch's unequal-variances t-test of `other.mean - control.mean`."""
    if control.n < 2 or other.n < 2:
        return None
    difference = other.mean - control.mean
    va, vb = control.variance / control.n, other.variance / other.n
    se2 = va + vb
    tau2 = (MIXING_SD ** 2) * (control.variance + other.variance) / 2.0
    sequential = msprt_p_value(difference, se2, tau2)
    if se2 <= 0.0:  # no spread at all: equal means are no difference; unequal ones cannot be tested
        p = 1.0 if difference == 0 else None
        return Comparison(difference, (difference, difference), p, p, "welch_t")
    spread = va * va / (control.n - 1) + vb * vb / (other.n - 1)
    # Welch-Satterthwaite; capped where t and the normal agree to 1e-7 (and squares that underflow)
    df = min(se2 * se2 / spread, 1e7) if spread > 0 else 1e7
    se = math.sqrt(se2)
    half = t_ppf(0.5 + CONFIDENCE / 2, df) * se
    return Comparison(difference, (difference - half, difference + half), t_two_sided_p(difference / se, df),
                      sequential, "welch_t")


@dataclass(frozen=True)
class Rate:
    """Successes over trials, summed over units, with what the delta method needs: each unit's
    successes y and trials n as sums of y, n, y^2, n^2 and y*n over the `units` that had trials."""

    units: int
    successes: float
    trials: float
    sum_y2: float
    sum_n2: float
    sum_yn: float

    @classmethod
    def of(cls, per_unit: Sequence[tuple[float, float]]) -> Rate:
        """From (successes, trials) per unit; units with no trials do not count."""
        kept = [(y, n) for y, n in per_unit if n > 0]
        return cls(len(kept), sum(y for y, _ in kept), sum(n for _, n in kept), sum(y * y for y, _ in kept),
                   sum(n * n for _, n in kept), sum(y * n for y, n in kept))

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0

    @property
    def one_trial_each(self) -> bool:
        return self.trials == self.units and self.sum_n2 == self.units

    def variance(self) -> float:
        """Variance of `rate`: binomial with one trial per unit, else the delta method."""
        k = self.units
        if k < 2 or not self.trials:
            return 0.0
        if self.one_trial_each:
            return self.rate * (1 - self.rate) / k
        mean_y, mean_n = self.successes / k, self.trials / k
        var_y = (self.sum_y2 - k * mean_y ** 2) / (k - 1)
        var_n = (self.sum_n2 - k * mean_n ** 2) / (k - 1)
        cov = (self.sum_yn - k * mean_y * mean_n) / (k - 1)
        r = self.rate
        return max(0.0, (var_y - 2 * r * cov + r * r * var_n) / (k * mean_n ** 2))


def wilson_interval(successes: float, trials: float) -> tuple[float, float] | None:
    if trials <= 0:
        return None
    p, z2 = successes / trials, Z_95 ** 2
    center = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z_95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials ** 2)) / (1 + z2 / trials)
    return (max(0.0, center - half), min(1.0, center + half))


def rate_interval(r: Rate) -> tuple[float, float] | None:
    if r.one_trial_each:
        return wilson_interval(r.successes, r.trials)
    if r.units < 2:
        return None
    half = Z_95 * math.sqrt(r.variance())
    return (max(0.0, r.rate - half), min(1.0, r.rate + half))


def two_proportions(x1: float, n1: float, x2: float, n2: float) -> tuple[float, tuple[float, float], float]:
    """The two-proportion z-test of p2 - p1: (difference, unpooled Wald 95% interval, p-value from
    the pooled standard error)."""
    p1, p2 = x1 / n1, x2 / n2
    difference = p2 - p1
    pooled = (x1 + x2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = normal_two_sided_p(difference / se_pooled) if se_pooled > 0 else 1.0
    half = Z_95 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return difference, (difference - half, difference + half), p


def compare_rates(control: Rate, other: Rate) -> Comparison | None:
    if control.units < 2 or other.units < 2:
        return None
    pooled = (control.successes + other.successes) / (control.trials + other.trials)
    tau2 = (MIXING_SD ** 2) * pooled * (1 - pooled)
    variance = control.variance() + other.variance()
    if control.one_trial_each and other.one_trial_each:
        difference, ci, p = two_proportions(control.successes, control.trials, other.successes, other.trials)
        return Comparison(difference, ci, p, msprt_p_value(difference, variance, tau2), "two_proportion_z")
    difference = other.rate - control.rate
    if variance <= 0:
        p = 1.0 if difference == 0 else None
        return Comparison(difference, (difference, difference), p, p, "delta_method_z")
    half = Z_95 * math.sqrt(variance)
    return Comparison(difference, (difference - half, difference + half),
                      normal_two_sided_p(difference / math.sqrt(variance)),
                      msprt_p_value(difference, variance, tau2), "delta_method_z")


def msprt_p_value(difference: float, variance: float, tau2: float) -> float | None:
    """The always-valid p-value 1 / Lambda of the mixture SPRT for a difference estimated with
    `variance`, with a normal mixture N(0, tau2) over the true difference:

        Lambda = sqrt(V / (V + tau2)) * exp(d^2 tau2 / (2 V (V + tau2)))

    Under no difference, the chance that 1 / Lambda ever falls below alpha, however often it is
    computed as data arrives, is at most alpha (Ville's inequality), so looking daily is safe."""
    if variance <= 0 or tau2 <= 0:
        return None
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + \
        difference ** 2 * tau2 / (2 * variance * (variance + tau2))
    return 1.0 if log_lambda <= 0 else math.exp(-min(log_lambda, 745.0))


def srm_check(observed: Sequence[float], weights: Sequence[float]) -> dict[str, float | bool | int]:
    """Chi-square goodness of fit of exposures per variant against the weights; flagged below
    p = 0.001, where a broken assignment or lost exposures are far likelier than chance."""
    total, weight = sum(observed), sum(weights)
    df = len(observed) - 1
    if total <= 0 or weight <= 0 or df < 1:
        return {"chi_square": 0.0, "df": max(df, 0), "p_value": 1.0, "flagged": False}
    chi = sum((o - total * w / weight) ** 2 / (total * w / weight) for o, w in zip(observed, weights, strict=True))
    p = chi2_sf(chi, df)
    return {"chi_square": chi, "df": df, "p_value": p, "flagged": p < SRM_THRESHOLD}
