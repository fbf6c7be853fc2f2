"""The experiment statistics against scipy (the reference, used in tests only), and assignment:
sticky across processes, and splitting 10,000 users within one percentage point of the weights."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
from dataclasses import dataclass

import pytest
from scipy import special
from scipy import stats as sp

from lib.experiments import stats
from lib.experiments.assign import assign, bucket
from tests.conftest import ROOT

rng = random.Random(20240611)
A = [round(rng.gauss(0.62, 0.21), 4) for _ in range(41)]
B = [round(rng.gauss(0.71, 0.33), 4) for _ in range(57)]


@pytest.mark.parametrize("a", [0.5, 1.0, 2.5, 17.0, 250.0])
@pytest.mark.parametrize("b", [0.5, 3.0, 40.0])
@pytest.mark.parametrize("x", [1e-6, 0.05, 0.37, 0.5, 0.93, 0.999999])
def test_regularized_incomplete_beta(a, b, x) -> None:
    assert stats.betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("a", [0.5, 1.0, 1.5, 4.0, 30.0, 400.0])
@pytest.mark.parametrize("factor", [0.01, 0.5, 1.0, 1.7, 4.0])
def test_regularized_upper_incomplete_gamma(a, factor) -> None:
    x = a * factor
    assert stats.gammaincc(a, x) == pytest.approx(special.gammaincc(a, x), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("df", [1, 2.5, 7, 30, 123.4, 10_000])
def test_student_t_cdf_and_quantiles(df) -> None:
    for t in (-12.0, -2.1, -0.3, 0.0, 0.8, 1.96, 4.5):
        assert stats.t_cdf(t, df) == pytest.approx(sp.t.cdf(t, df), rel=1e-10, abs=1e-14)
    for q in (0.001, 0.025, 0.5, 0.9, 0.975, 0.9995):
        assert stats.t_ppf(q, df) == pytest.approx(sp.t.ppf(q, df), rel=1e-9, abs=1e-12)


def test_welch_t_test_and_interval_match_scipy() -> None:
    result = stats.welch(stats.Summary.of(A), stats.Summary.of(B))
    reference = sp.ttest_ind(B, A, equal_var=False)
    assert result is not None and result.test == "welch_t"
    assert result.difference == pytest.approx(sum(B) / len(B) - sum(A) / len(A), rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    low, high = reference.confidence_interval(0.95)
    assert result.ci95 == pytest.approx((low, high), rel=1e-9)


def test_summary_from_sql_sums_equals_summary_of_values() -> None:
    direct = stats.Summary.of(A)
    summed = stats.Summary.from_sums(len(A), sum(A), sum(v * v for v in A))
    assert summed.n == direct.n and summed.mean == pytest.approx(direct.mean)
    assert summed.variance == pytest.approx(direct.variance, rel=1e-9)


def test_mean_interval_matches_scipy() -> None:
    s = stats.Summary.of(A)
    low, high = sp.t.interval(0.95, len(A) - 1, loc=s.mean, scale=sp.sem(A))
    assert stats.mean_interval(s) == pytest.approx((low, high), rel=1e-10)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2"),
                         [(48, 120, 66, 118), (3, 40, 9, 41), (510, 1000, 490, 1000), (80, 199, 161, 201)])
def test_two_proportion_z_test(x1, n1, x2, n2) -> None:
    difference, ci, p = stats.two_proportions(x1, n1, x2, n2)
    p1, p2, pooled = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert difference == pytest.approx(p2 - p1)
    assert p == pytest.approx(2 * sp.norm.sf(abs(z)), rel=1e-10)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert ci == pytest.approx((p2 - p1 - sp.norm.ppf(0.975) * se, p2 - p1 + sp.norm.ppf(0.975) * se), rel=1e-10)
    # one trial per unit: compare_rates is this test
    rate = lambda x, n: stats.Rate.of([(1, 1)] * x + [(0, 1)] * (n - x))  # noqa: E731
    compared = stats.compare_rates(rate(x1, n1), rate(x2, n2))
    assert compared.test == "two_proportion_z" and compared.p_value == pytest.approx(p)


@pytest.mark.parametrize(("x", "n"), [(0, 20), (7, 31), (118, 120)])
def test_wilson_interval_matches_scipy(x, n) -> None:
    reference = sp.binomtest(x, n).proportion_ci(0.95, method="wilson")
    assert stats.wilson_interval(x, n) == pytest.approx((reference.low, reference.high), rel=1e-10, abs=1e-12)


def test_rates_with_several_trials_per_unit_use_the_delta_method() -> None:
    # Units with correlated outcomes (some users like everything): the delta method's variance is
    # wider than the binomial one, which would treat 300 requests as 300 independent trials.
    units = [(y, 3) for y in [0, 0, 3, 3, 1, 3, 0, 2, 3, 0] * 10]
    r = stats.Rate.of(units)
    binomial = r.rate * (1 - r.rate) / r.trials
    assert not r.one_trial_each and r.variance() > 2 * binomial
    ys, ns = [y for y, _ in units], [n for _, n in units]
    # the ratio's variance by the delta method, from the sample moments
    moments = statistics.variance(ys), statistics.variance(ns), statistics.covariance(ys, ns)
    expected = (moments[0] - 2 * r.rate * moments[2] + r.rate ** 2 * moments[1]) / (
        len(units) * statistics.fmean(ns) ** 2)
    assert r.variance() == pytest.approx(expected, rel=1e-10)
    assert stats.compare_rates(r, stats.Rate.of(units)).test == "delta_method_z"


def test_srm_chi_square_matches_scipy_and_flags_lost_exposures() -> None:
    observed, weights = [5012, 3011, 1977], [5, 3, 2]
    total = sum(observed)
    reference = sp.chisquare(observed, [total * w / 10 for w in weights])
    check = stats.srm_check(observed, weights)
    assert check["chi_square"] == pytest.approx(reference.statistic, rel=1e-10)
    assert check["p_value"] == pytest.approx(reference.pvalue, rel=1e-9) and not check["flagged"]
    # a tenth of one variant's exposures dropped
    assert stats.srm_check([5000, int(5000 * 0.9)], [1, 1])["flagged"]


def test_msprt_p_value_formula_and_validity_under_peeking() -> None:
    # Lambda = sqrt(V / (V + tau2)) exp(d^2 tau2 / (2 V (V + tau2)))
    d, v, tau2 = 0.12, 0.002, 0.004
    expected = 1 / (math.sqrt(v / (v + tau2)) * math.exp(d * d * tau2 / (2 * v * (v + tau2))))
    assert stats.msprt_p_value(d, v, tau2) == pytest.approx(expected)
    assert stats.msprt_p_value(0.0, v, tau2) == 1.0
    # A/A streams looked at after every 20 units: the always-valid p-value stays above 0.05 in
    # (about) 95% or more of them, while the fixed-horizon p-value, peeked at, does not.
    peek = random.Random(7)
    sequential_hits = fixed_hits = 0
    runs = 200
    for _ in range(runs):
        a: list[float] = []
        b: list[float] = []
        hit_seq = hit_fixed = False
        for _ in range(25):
            a += [peek.gauss(0, 1) for _ in range(20)]
            b += [peek.gauss(0, 1) for _ in range(20)]
            result = stats.welch(stats.Summary.of(a), stats.Summary.of(b))
            hit_seq |= result.sequential_p_value < 0.05
            hit_fixed |= result.p_value < 0.05
        sequential_hits += hit_seq
        fixed_hits += hit_fixed
    assert sequential_hits / runs <= 0.05
    assert fixed_hits / runs > 0.15


# --- assignment ----------------------------------------------------------------------------------


@dataclass
class Arm:
    name: str
    weight: float


ARMS = [Arm("a", 0.5), Arm("b", 0.3), Arm("c", 0.2)]


def test_ten_thousand_users_split_within_one_percent_of_the_weights() -> None:
    counts = {arm.name: 0 for arm in ARMS}
    for i in range(10_000):
        counts[assign("checkout-tone", f"key:abc/user-{i}", ARMS).name] += 1
    for arm in ARMS:
        assert abs(counts[arm.name] / 10_000 - arm.weight) < 0.01, counts


def test_buckets_are_uniform_and_depend_on_the_experiment() -> None:
    points = [bucket("e1", f"u{i}") for i in range(5000)]
    assert all(0 <= p < 1 for p in points)
    assert sp.kstest(points, "uniform").pvalue > 0.001
    same_half = sum((bucket("e1", f"u{i}") < 0.5) == (bucket("e2", f"u{i}") < 0.5) for i in range(2000))
    assert 800 < same_half < 1200  # independent across experiments: about half


def test_assignment_is_the_same_in_another_process() -> None:
    users = [f"key:abc/user-{i}" for i in range(200)]
    here = [assign("sticky", user, ARMS).name for user in users]
    script = (
        "import json, sys; from dataclasses import dataclass; from lib.experiments.assign import assign\n"
        "@dataclass\nclass Arm:\n    name: str\n    weight: float\n"
        "arms = [Arm('a', 0.5), Arm('b', 0.3), Arm('c', 0.2)]\n"
        "print(json.dumps([assign('sticky', u, arms).name for u in json.loads(sys.argv[1])]))\n"
    )
    # a fresh interpreter has its own hash salt (PYTHONHASHSEED differs): sha256 does not care
    result = subprocess.run([sys.executable, "-c", script, json.dumps(users)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == here
