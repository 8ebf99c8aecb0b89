"""stats.py against independent computations: statsmodels' Clopper-Pearson, closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint

from semsmooth_core import stats
from semsmooth_core.validation import SemsmoothError


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (9, 10), (10, 10), (990, 1000),
                                 (100, 100), (37, 200), (99_950, 100_000)])
@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05])
def test_cp_bounds_match_statsmodels(k, n, alpha):
    lo_ref, hi_ref = proportion_confint(k, n, alpha=2 * alpha, method="beta")
    assert stats.cp_lower(k, n, alpha) == pytest.approx(lo_ref, abs=1e-12)
    assert stats.cp_upper(k, n, alpha) == pytest.approx(hi_ref, abs=1e-12)


def test_cp_lower_all_correct_closed_form():
    # k = n: Beta(n, 1) quantile = alpha^(1/n)
    for n in (1, 7, 100, 12345):
        assert stats.cp_lower(n, n, 0.001) == pytest.approx(0.001 ** (1 / n), rel=1e-12)
        assert stats.cp_upper(0, n, 0.001) == pytest.approx(1 - 0.001 ** (1 / n), rel=1e-9)


def test_cp_vectorised():
    k = np.array([0, 3, 10])
    lo = stats.cp_lower(k, 10, 0.05)
    assert lo.shape == (3,)
    assert lo[0] == 0 and lo[1] == pytest.approx(proportion_confint(3, 10, 0.1, method="beta")[0])


def test_cp_coverage_is_at_least_one_minus_alpha():
    # exact coverage over the binomial distribution for a few p
    from scipy.stats import binom

    n, alpha = 50, 0.05
    ks = np.arange(n + 1)
    lo = stats.cp_lower(ks, n, alpha)
    hi = stats.cp_upper(ks, n, alpha)
    for p in (0.03, 0.2, 0.5, 0.77, 0.98):
        pmf = binom.pmf(ks, n, p)
        assert pmf[lo > p].sum() <= alpha + 1e-12
        assert pmf[hi < p].sum() <= alpha + 1e-12


@pytest.mark.parametrize("bad", [dict(k=11, n=10), dict(k=-1, n=10), dict(k=0, n=0)])
def test_cp_rejects_bad_counts(bad):
    with pytest.raises(SemsmoothError):
        stats.cp_lower(bad["k"], bad["n"], 0.01)


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan")])
def test_alpha_must_be_in_unit_interval(alpha):
    with pytest.raises(SemsmoothError, match="alpha"):
        stats.cp_lower(3, 10, alpha)


def test_binom_test_matches_closed_form():
    # two-sided exact test with p = 1/2 is symmetric: 2 * P(X <= min(a, b))
    from scipy.stats import binom

    for a, b in [(60, 40), (10, 0), (50, 50), (3, 9)]:
        n = a + b
        expected = min(1.0, 2 * binom.cdf(min(a, b), n, 0.5))
        assert stats.binom_test_pvalue(a, b) == pytest.approx(expected, rel=1e-9)
    assert stats.binom_test_pvalue(0, 0) == 1.0


def test_radius_thm31_and_shortcut():
    sigma = 0.5
    # shortcut p_B = 1 - p_A: sigma * Phi^-1(p_A)
    assert stats.radius(sigma, 0.9) == pytest.approx(sigma * norm.ppf(0.9))
    # general form sigma/2 (Phi^-1(pA) - Phi^-1(pB))
    assert stats.radius(sigma, 0.8, 0.1) == pytest.approx(sigma / 2 * (norm.ppf(0.8) - norm.ppf(0.1)))
    # with p_B = 1 - p_A the general form equals the shortcut
    assert stats.radius(sigma, 0.8, 0.2) == pytest.approx(stats.radius(sigma, 0.8))
    # abstain region
    assert stats.radius(sigma, 0.5) == 0.0
    assert stats.radius(sigma, 0.3) == 0.0
    assert stats.radius(sigma, 0.6, 0.7) == 0.0


def test_radius_lemma43_rho_correction():
    # Lemma 4.3: p_A - rho and p_B + rho
    sigma, pa, rho = 30.0, 0.97, 0.02
    assert stats.radius(sigma, pa, rho=rho) == pytest.approx(sigma * norm.ppf(pa - rho))
    assert stats.radius(sigma, pa, 0.01, rho=rho) == pytest.approx(
        sigma / 2 * (norm.ppf(pa - rho) - norm.ppf(0.01 + rho)))
    assert stats.radius(sigma, 0.51, rho=0.02) == 0.0  # rho pushes it below 1/2


@pytest.mark.parametrize("sigma", [0, -1, float("nan"), float("inf")])
def test_radius_rejects_bad_sigma(sigma):
    with pytest.raises(SemsmoothError, match="sigma"):
        stats.radius(sigma, 0.9)


def test_mahalanobis_reduces_to_scaled_l2():
    cov = np.diag([4.0, 9.0])
    g = np.array([2.0, 3.0])
    assert stats.mahalanobis_norm(g, cov) == pytest.approx(math.sqrt(2.0))
    assert stats.mahalanobis_norm([1.0, 1.0], np.eye(2)) == pytest.approx(math.sqrt(2.0))


def test_min_samples_for_radius_is_the_boundary():
    for R, sigma, alpha in [(0.25, 0.25, 0.001), (20, 30, 0.001), (0.5, 0.12, 0.01), (1.0, 0.5, 0.05)]:
        n = stats.min_samples_for_radius(R, sigma, alpha)
        target = norm.cdf(R / sigma)
        assert alpha ** (1 / n) > target            # n all-correct samples certify R
        assert n == 1 or alpha ** (1 / (n - 1)) <= target  # n - 1 do not
        # closed form
        assert n == math.floor(math.log(alpha) / math.log(target)) + 1
        assert stats.max_radius(sigma, n, alpha) > R
        assert stats.max_radius(sigma, n - 1, alpha) <= R + 1e-9 if n > 1 else True


def test_min_samples_with_rho_and_impossible():
    n0 = stats.min_samples_for_radius(0.5, 0.5, 0.001)
    n1 = stats.min_samples_for_radius(0.5, 0.5, 0.001, rho=0.01)
    assert n1 > n0
    with pytest.raises(SemsmoothError):
        stats.min_samples_for_radius(3.0, 1.0, 0.001, rho=0.01)  # Phi(3) + 0.01 > 1


def test_prob_lower_needed_inverts_radius():
    for E, s in [(0.3, 0.25), (0.1, 0.5)]:
        p = stats.prob_lower_needed(E, s)
        assert stats.radius(s, p) == pytest.approx(E)
