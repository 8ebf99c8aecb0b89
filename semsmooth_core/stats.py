"""Statistics of randomized smoothing: confidence bounds, tests, radii, sample sizes.

Every formula here is the single implementation used by the library, the CLI and the app.
References are to Fischer, Baader, Vechev, "Certified Defense to Image Transformations via
Randomized Smoothing" (``shared/papers/fischer-semantic-smoothing.txt``) unless noted.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats as _st

from semsmooth_core.validation import SemsmoothError, check_alpha, check_sigma

ABSTAIN = -1


# --------------------------------------------------------------------------- bounds
def _check_kn(k, n):
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise SemsmoothError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    return k_arr, n_arr


def cp_lower(k, n, alpha):
    """One-sided Clopper-Pearson lower bound on a binomial proportion, confidence ``1 - alpha``.

    ``P(p < cp_lower(K, n, alpha)) <= alpha`` for ``K ~ Bin(n, p)``. This is the LOWERCONFBOUND
    of Cohen et al. (Fischer Alg. 1, ``LBOUND``): the ``alpha`` quantile of Beta(k, n - k + 1),
    and 0 when k = 0. Equals statsmodels' ``proportion_confint(k, n, alpha=2*alpha,
    method="beta")[0]``. Vectorised over ``k`` and ``n``.
    """
    check_alpha(alpha)
    k_arr, n_arr = _check_kn(k, n)
    with np.errstate(all="ignore"):
        lo = _st.beta.ppf(alpha, np.maximum(k_arr, 1e-300), n_arr - k_arr + 1)
    lo = np.where(k_arr == 0, 0.0, lo)
    return float(lo) if np.ndim(lo) == 0 else lo


def cp_upper(k, n, alpha):
    """One-sided Clopper-Pearson upper bound, confidence ``1 - alpha``: the ``1 - alpha`` quantile
    of Beta(k + 1, n - k), and 1 when k = n. Used for p̄_B in Fischer Thm 3.1 / Thm 4.2."""
    check_alpha(alpha)
    k_arr, n_arr = _check_kn(k, n)
    with np.errstate(all="ignore"):
        hi = _st.beta.ppf(1 - alpha, k_arr + 1, np.maximum(n_arr - k_arr, 1e-300))
    hi = np.where(k_arr == n_arr, 1.0, hi)
    return float(hi) if np.ndim(hi) == 0 else hi


def binom_test_pvalue(n_a: int, n_b: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test of ``n_a`` successes in ``n_a + n_b`` trials against ``p``.

    Cohen et al.'s PREDICT abstains when this p-value exceeds alpha (``scipy.stats.binom_test``
    was removed in SciPy 1.12; ``binomtest`` is its successor).
    """
    n = int(n_a) + int(n_b)
    if n == 0:
        return 1.0
    return float(_st.binomtest(int(n_a), n, p, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------- radii
def radius(sigma: float, p_a_lower: float, p_b_upper: float | None = None, rho: float = 0.0) -> float:
    """Certified radius of a smoothed classifier, in the units of ``sigma`` (elementwise for an
    array of bounds, e.g. the planner's radius at every possible count).

    - Fischer Thm 3.1 (l2 noise) and Thm 4.2 (composable transformation ψ_β, β ~ N(0, σ²)):
      ``R = σ/2 (Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B))``.
    - With ``p_b_upper=None`` the shortcut p̄_B = 1 − p̲_A gives ``R = σ Φ⁻¹(p̲_A)`` (Cohen et al.,
      the remark after Fischer Lemma 4.3).
    - Fischer Lemma 4.3 (an erroneous base classifier that differs from f with probability ρ):
      p̲_A − ρ and p̄_B + ρ replace p̲_A and p̄_B.

    Returns 0.0 whenever the corrected p̲_A does not exceed the corrected p̄_B (in particular when
    p̲_A − ρ <= 1/2 with the shortcut): then nothing is certified and the caller abstains.
    """
    sigma = check_sigma(sigma)
    pa = np.asarray(p_a_lower, dtype=float) - float(rho)
    pb = (1.0 - pa) if p_b_upper is None else np.asarray(p_b_upper, dtype=float) + float(rho)
    with np.errstate(all="ignore"):
        r = sigma / 2.0 * (_st.norm.ppf(np.clip(pa, 0.0, 1.0)) - _st.norm.ppf(np.clip(pb, 0.0, 1.0)))
    r = np.where((pa >= 1.0) | (pb <= 0.0), math.inf, r)
    r = np.where(~(pa > 0.0) | (pa > 1.0) | (pa <= 0.5) | (pa <= pb), 0.0, r)
    return float(r) if r.ndim == 0 else r


def mahalanobis_norm(gamma: Sequence[float], cov: np.ndarray) -> float:
    """``sqrt(γᵀ Σ⁻¹ γ)``: the norm in which the anisotropic certificate of Fischer App. B
    (Theorem, β ~ N(0, Σ)) is stated. With Σ = diag(σ²) a parameter vector γ is certified when
    ``mahalanobis_norm(γ, Σ) < R_1`` where R_1 is :func:`radius` with σ = 1."""
    g = np.asarray(gamma, dtype=float).reshape(-1)
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    return float(np.sqrt(g @ np.linalg.solve(cov, g)))


def prob_lower_needed(radius_: float, sigma: float, rho: float = 0.0) -> float:
    """The smallest p̲_A for which :func:`radius` (shortcut form) reaches ``radius_``:
    ``Φ(R/σ) + ρ`` — the inverse of ``R = σ Φ⁻¹(p̲_A − ρ)``. The inner test of double smoothing
    (Fischer §6.2) asks exactly whether ``p̲_A >= Φ(E/σ_ε)``."""
    sigma = check_sigma(sigma)
    return float(_st.norm.cdf(float(radius_) / sigma) + float(rho))


def max_radius(sigma: float, n: int, alpha: float, rho: float = 0.0) -> float:
    """The largest radius any input can receive with ``n`` estimation samples at level ``alpha``:
    all n samples correct gives p̲_A = alpha^(1/n) (Clopper-Pearson with k = n), so
    ``R_max = σ Φ⁻¹(alpha^(1/n) − ρ)`` (0 when that does not exceed 1/2)."""
    return radius(sigma, cp_lower(int(n), int(n), alpha), rho=rho)


def min_samples_for_radius(radius_: float, sigma: float, alpha: float, rho: float = 0.0,
                           n_max: int = 10**9) -> int:
    """Fischer App. C.2: the smallest n for which n correct samples out of n certify ``radius_``.

    With k = n the one-sided Clopper-Pearson bound is ``alpha^(1/n)``; we need
    ``alpha^(1/n) − ρ > Φ(R/σ)``, i.e. ``n > ln(alpha) / ln(Φ(R/σ) + ρ)``. Raises when no n can
    reach the radius (Φ(R/σ) + ρ >= 1).
    """
    check_alpha(alpha)
    target = prob_lower_needed(radius_, sigma, rho)
    if target >= 1.0:
        raise SemsmoothError(
            f"radius {radius_:g} cannot be certified at sigma {sigma:g} with rho {rho:g}: "
            "Phi(R/sigma) + rho >= 1")
    if target <= 0.5:
        target = 0.5  # a radius of 0 needs p_A > 1/2
    n = max(1, math.floor(math.log(alpha) / math.log(target)))
    # step to the exact boundary with the bound itself (guards against rounding in the log);
    # ``target`` already holds ρ (Φ(R/σ) + ρ), so the bound is compared with it as it is
    while n > 1 and cp_lower(n - 1, n - 1, alpha) > target:
        n -= 1
    while cp_lower(n, n, alpha) <= target:
        n += 1
        if n > n_max:
            raise SemsmoothError(f"more than {n_max} samples needed for radius {radius_:g}")
    return n


# =========================================================================== sequential
# Sequential tests for the inner decision of double smoothing (Fischer §6.2): does p_A clear a
# threshold θ = Φ(E/σ_ε)? (Beyond the paper: the paper and the reference code always draw n_ε.)
# Soundness rests on one property only: under H0 (p_A < θ) the probability of EVER declaring
# "success" is at most α. Declaring "failure" early never hurts soundness (it only costs power).
from dataclasses import dataclass as _dataclass


def mixture_log_martingale(k, n, theta: float, a: float = 1.0, b: float = 1.0):
    """Log of the beta-mixture likelihood ratio ``M_n`` for H0: p <= θ (anytime-valid test).

    ``M_n = ∫_θ^1 p^k (1-p)^(n-k) π(p) dp / (θ^k (1-θ)^(n-k))`` with π = Beta(a, b) truncated to
    (θ, 1) (Robbins' method of mixtures; Howard et al. 2021, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", §3). For every p0 <= θ each mixture component
    ``(p/θ)^X ((1-p)/(1-θ))^(1-X)`` (p > θ) has mean <= 1 under Bernoulli(p0), so M_n is a
    nonnegative supermartingale with M_0 = 1 and Ville's inequality gives
    ``P(sup_n M_n >= 1/α) <= α``: rejecting H0 as soon as ``M_n >= 1/α`` is valid at ANY
    stopping rule. Closed form: ``B(a+k, b+n-k) S_θ(a+k, b+n-k) / (B(a,b) S_θ(a,b))`` over
    ``θ^k (1-θ)^(n-k)``, S_θ the Beta survival function. Vectorised over k and n.
    """
    from scipy import special as _sp

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if not (0.0 < theta < 1.0):
        raise SemsmoothError(f"threshold must lie in (0,1), got {theta!r}")
    A, B = a + k, b + n - k
    num = _sp.betaln(A, B) + _st.beta.logsf(theta, A, B)
    den = _sp.betaln(a, b) + _st.beta.logsf(theta, a, b)
    lr = num - den - (k * math.log(theta) + (n - k) * math.log1p(-theta))
    return float(lr) if np.ndim(lr) == 0 else lr


@_dataclass(frozen=True)
class SequentialPlan:
    """A sound early-stopping rule for the test "p_A >= θ" on a stream of Bernoulli samples.

    ``looks``: increasing sample counts at which the counts are inspected (the last one is the
    maximum n). ``method``:

    - ``"looks"``: alpha spending over a fixed schedule (Bonferroni over looks): at look j declare
      success when ``cp_lower(k_j, n_j, alpha_j) >= θ``; ``sum(alpha_j) <= alpha``. With one
      look this is exactly the fixed-size Clopper-Pearson test of Fischer Alg. 1.
    - ``"mixture"``: the anytime-valid beta-mixture martingale (:func:`mixture_log_martingale`)
      with prior Beta(``prior_a``, ``prior_b``); the whole ``alpha`` is used at every look.

    Early failure: (i) curtailment — stop when no later look can reach success even if every
    remaining sample succeeds (never changes a decision); (ii) optional non-binding futility —
    stop when ``cp_upper(k_j, n_j, futility_alpha) < θ``. Both only ever declare failure, so
    the type-I error (false success) stays <= alpha.
    """

    looks: tuple[int, ...]
    alphas: tuple[float, ...] = ()
    method: str = "looks"
    futility_alpha: float | None = None
    prior_a: float = 1.0
    prior_b: float = 1.0

    @property
    def n_max(self) -> int:
        return int(self.looks[-1])

    @property
    def alpha(self) -> float:
        return float(sum(self.alphas)) if self.method == "looks" else float(self.alphas[0])


def make_sequential_plan(alpha: float, looks: Sequence[int], weights: Sequence[float] | None = None,
                         method: str = "looks", futility_alpha: float | None = None,
                         prior_a: float = 1.0, prior_b: float = 1.0) -> SequentialPlan:
    """Build a :class:`SequentialPlan` spending ``alpha`` over ``looks`` (weights normalised to
    sum 1; default: everything at the last look except 1/4 shared by the earlier looks)."""
    check_alpha(alpha)
    looks = tuple(int(v) for v in looks)
    if not looks or any(v < 1 for v in looks) or any(b <= a for a, b in zip(looks, looks[1:])):
        raise SemsmoothError(f"looks must be increasing positive counts, got {list(looks)}")
    if method not in ("looks", "mixture"):
        raise SemsmoothError(f"unknown sequential method {method!r}; use 'looks' or 'mixture'")
    if futility_alpha is not None:
        check_alpha(futility_alpha, "futility_alpha")
    if method == "mixture":
        return SequentialPlan(looks, (float(alpha),), "mixture", futility_alpha, prior_a, prior_b)
    L = len(looks)
    if weights is None:
        weights = [1.0] if L == 1 else [0.25 / (L - 1)] * (L - 1) + [0.75]
    w = np.asarray(weights, dtype=float)
    if w.shape != (L,) or np.any(w <= 0):
        raise SemsmoothError("need one positive alpha weight per look")
    alphas = tuple(float(v) for v in alpha * w / w.sum())
    return SequentialPlan(looks, alphas, "looks", futility_alpha)


def _success_at(plan: SequentialPlan, j: int, k, theta: float):
    n = plan.looks[j]
    if plan.method == "mixture":
        return mixture_log_martingale(k, n, theta, plan.prior_a, plan.prior_b) >= math.log(1.0 / plan.alphas[0])
    return np.asarray(cp_lower(k, np.full_like(np.asarray(k), n), plan.alphas[j])) >= theta


def sequential_decide(plan: SequentialPlan, j: int, k, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Decisions at look ``j`` for counts ``k`` (array, successes among ``plan.looks[j]``
    samples): returns boolean arrays ``(success, failure)``; neither = continue. At the last look
    every undecided stream fails. Type-I error <= plan.alpha (see :class:`SequentialPlan`)."""
    k = np.asarray(k, dtype=np.int64)
    theta = float(theta)
    if theta >= 1.0:
        return np.zeros(k.shape, bool), np.ones(k.shape, bool)
    theta = max(theta, 1e-12)
    success = np.asarray(_success_at(plan, j, k, theta), dtype=bool)
    if j == len(plan.looks) - 1:
        return success, ~success
    # curtailment: can any later look still succeed if all remaining samples succeed?
    reachable = np.zeros(k.shape, bool)
    for jj in range(j + 1, len(plan.looks)):
        kmax = k + (plan.looks[jj] - plan.looks[j])
        reachable |= np.asarray(_success_at(plan, jj, kmax, theta), dtype=bool)
    failure = ~success & ~reachable
    if plan.futility_alpha is not None:
        n = plan.looks[j]
        failure |= ~success & (np.asarray(cp_upper(k, np.full_like(k, n), plan.futility_alpha)) < theta)
    return success, failure


def sequential_min_success_n(plan: SequentialPlan, theta: float) -> int | None:
    """The first look at which an all-success stream is declared a success (None: never) — the
    best case cost of one inner test."""
    for j, n in enumerate(plan.looks):
        if bool(np.asarray(_success_at(plan, j, np.array([n]), theta))[0]):
            return int(n)
    return None
