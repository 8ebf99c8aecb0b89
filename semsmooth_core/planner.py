"""Planning a certification before it runs: sample sizes, alpha split, E — and dead ends.

Everything here is arithmetic on the bounds of :mod:`semsmooth_core.stats` (no model is run):

- :func:`inner_plan`: the default sequential schedule of the inner test of double smoothing.
- :func:`max_radius_double`: the largest radius a double-smoothing run can certify at given
  n's, alphas and E (every sampled β certified) — shown before a run starts.
- :func:`dead_end`: E too large for the inner smoothing at these n's
  (``Φ(E/σ_ε) > α_ε^(1/n_ε)``: even n_ε correct samples out of n_ε cannot certify radius E).
- :func:`plan_double`: for a forward-pass budget, choose n_γ, n_ε, the alpha split and E (from a
  table of (E, q̲_E) pairs) to maximise the expected certified radius under a simple model of
  the base classifier (each inner sample correct with probability ``p_inner``, each β fine with
  probability ``p_outer``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

from semsmooth_core import smoothing, stats
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_sigma


def inner_plan(n_eps: int, alpha: float, theta: float, method: str = "looks",
               futility_alpha: float | None = 0.01) -> stats.SequentialPlan:
    """Default sequential inner schedule for the test p_A >= θ with at most ``n_eps`` samples.

    ``looks``: the first look is the smallest n at which an all-correct stream already passes
    with 1/4 of alpha (plus 10 %), then looks grow geometrically (x1.6) to ``n_eps``, which keeps
    3/4 of alpha (so borderline streams decide almost as with the fixed test). ``mixture``: looks
    at the same points, anytime-valid beta-mixture test with the whole alpha (prior Beta(8, 1),
    mass near p = 1 where the inner tests of a good model live). A schedule that cannot beat the
    fixed test falls back to one look at ``n_eps``.
    """
    check_count("n_eps", n_eps)
    check_alpha(alpha)
    if theta >= 1.0:
        return stats.make_sequential_plan(alpha, [n_eps])
    n1 = math.ceil(1.1 * math.log(alpha / 4) / math.log(max(theta, 1e-12)))
    n1 = max(n1, 8)
    if n1 >= 0.8 * n_eps:
        return stats.make_sequential_plan(alpha, [n_eps])
    looks = [n1]
    while looks[-1] * 1.6 < n_eps * 0.9:
        looks.append(int(math.ceil(looks[-1] * 1.6)))
    looks.append(int(n_eps))
    if method == "mixture":
        return stats.make_sequential_plan(alpha, looks, method="mixture", futility_alpha=futility_alpha,
                                          prior_a=8.0, prior_b=1.0)
    L = len(looks)
    weights = [0.25 / (L - 1)] * (L - 1) + [0.75]
    return stats.make_sequential_plan(alpha, looks, weights, futility_alpha=futility_alpha)


def dead_end(E: float, sigma_eps: float, n_eps: int, alpha_eps: float) -> str | None:
    """A one-line reason why the inner smoothing can NEVER certify radius E at these settings
    (fixed sample size), else None: :func:`semsmooth_core.smoothing.inner_dead_end`."""
    return smoothing.inner_dead_end(E, sigma_eps, int(n_eps), alpha_eps)


def max_radius_double(sigma_gamma: float, n_gamma: int, alpha_gamma: float, alpha_eps: float,
                      q_E_lower: float, alpha_E: float, attacker_max: float | None = None,
                      inner_mode: str = "lemma") -> float:
    """The largest radius double smoothing can certify: all n_γ inner tests succeed,
    ``R = σ_γ Φ⁻¹(α_γ^(1/n_γ) − ρ)`` with ρ of Lemma 4.3 (:func:`smoothing.double_rho`,
    :func:`stats.max_radius`), clipped to the attacker range when ``attacker_max`` is given."""
    rho = smoothing.double_rho(alpha_eps, q_E_lower, alpha_E, inner_mode)
    r = stats.max_radius(sigma_gamma, n_gamma, alpha_gamma, rho=rho)
    return min(r, attacker_max) if attacker_max is not None else r


def _expected_radius(sigma_gamma, n_gamma, alpha_gamma, rho, p_beta, attacker_max):
    """E[R] when each of n_γ betas independently succeeds with probability p_beta
    (R of Lemma 4.3: :func:`stats.radius` at every count)."""
    ks = np.arange(n_gamma + 1)
    pmf = _st.binom.pmf(ks, n_gamma, p_beta)
    lo = stats.cp_lower(ks, np.full_like(ks, n_gamma), alpha_gamma)
    r = np.minimum(stats.radius(sigma_gamma, lo, rho=rho), 1e300)
    if attacker_max is not None:
        r = np.minimum(r, attacker_max)
    return float((pmf * r).sum())


@dataclass
class Plan:
    n_gamma: int
    n_eps: int
    alpha_gamma: float
    alpha_eps: float
    E: float
    q_E_lower: float
    rho: float
    expected_radius: float
    max_radius: float
    forward_passes: int
    dead_end: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def plan_double(budget: int, sigma_gamma: float, sigma_eps: float, E_table, alpha_total: float = 0.002,
                alpha_E: float = 0.001, p_inner: float = 0.99, p_outer: float = 0.97,
                attacker_max: float | None = None, n0: int = 0) -> list[Plan]:
    """Search n_γ · n_ε <= ``budget`` (minus ``n0``), the split of ``alpha_total`` between α_γ
    and α_ε, and E from ``E_table`` (pairs (E, q̲_E)), maximising the expected radius.

    Model: each β is "fine" with probability ``p_outer`` (its transformed image is classified
    correctly under noise at rate ``p_inner``, otherwise not); a fine β passes the inner test
    with the binomial probability that cp_lower(K, n_ε, α_ε) >= Φ(E/σ_ε), K ~ Bin(n_ε, p_inner).
    Returns the plans sorted best first (dead ends last, flagged)."""
    check_sigma(sigma_gamma, "sigma_gamma")
    check_sigma(sigma_eps, "sigma_eps")
    check_alpha(alpha_total, "alpha_total")
    budget = check_count("budget", budget)
    E_table = [(float(e), float(q)) for e, q in E_table]
    if not E_table:
        raise SemsmoothError("E_table needs at least one (E, q_E_lower) pair")
    plans = []
    avail = budget - n0
    for n_gamma in (25, 50, 100, 200, 400, 800):
        n_eps = avail // n_gamma
        if n_eps < 5:
            continue
        for frac in (0.2, 0.35, 0.5, 0.65, 0.8):
            a_g = alpha_total * frac
            a_e = alpha_total - a_g
            for E, q in E_table:
                rho = smoothing.double_rho(a_e, q, alpha_E)
                de = dead_end(E, sigma_eps, n_eps, a_e)
                theta = smoothing.inner_threshold(E, sigma_eps)
                ks = np.arange(n_eps + 1)
                ok = stats.cp_lower(ks, np.full_like(ks, n_eps), a_e) >= theta
                p_pass = float(_st.binom.pmf(ks, n_eps, p_inner)[ok].sum()) * p_outer
                er = 0.0 if de else _expected_radius(sigma_gamma, n_gamma, a_g, rho, p_pass, attacker_max)
                mr = max_radius_double(sigma_gamma, n_gamma, a_g, a_e, q, alpha_E, attacker_max)
                plans.append(Plan(n_gamma, int(n_eps), a_g, a_e, E, q, rho, er, mr,
                                  n0 + n_gamma * int(n_eps), de))
    plans.sort(key=lambda p: (p.dead_end is not None, -p.expected_radius, p.forward_passes))
    return plans


def summary_before_run(sigma_gamma: float, sigma_eps: float, E: float, q_E_lower: float, n_gamma: int,
                       n_eps: int, alpha_gamma: float, alpha_eps: float, alpha_E: float,
                       attacker_max: float | None = None, n0: int = 0) -> dict:
    """What a run with these settings can give at best, shown before it starts: max radius,
    ρ, inner threshold, forward passes, and a dead-end message (None when fine)."""
    rho = smoothing.double_rho(alpha_eps, q_E_lower, alpha_E)
    return {"max_radius": max_radius_double(sigma_gamma, n_gamma, alpha_gamma, alpha_eps, q_E_lower,
                                            alpha_E, attacker_max),
            "rho": rho, "inner_threshold": smoothing.inner_threshold(E, sigma_eps),
            "inner_min_n": _safe_min_n(E, sigma_eps, alpha_eps),
            "outer_min_n_for_positive": _safe_min_n(0.0, sigma_gamma, alpha_gamma, rho),
            "forward_passes_max": n0 + n_gamma * n_eps,
            "dead_end": dead_end(E, sigma_eps, n_eps, alpha_eps)
            or (None if max_radius_double(sigma_gamma, n_gamma, alpha_gamma, alpha_eps, q_E_lower, alpha_E) > 0
                else f"rho = {rho:.4f} too large: n_gamma = {n_gamma} can never give p_A - rho > 1/2")}


def _safe_min_n(r, sigma, alpha, rho=0.0):
    try:
        return stats.min_samples_for_radius(r, sigma, alpha, rho=rho, n_max=10**8)
    except SemsmoothError:
        return None


def min_n_for_share(share: float, alpha: float, rho: float = 0.0, n_max: int = 10**8) -> int | None:
    """The smallest n at which a vote share ``share`` (k = ⌊share·n⌋ of n samples for the top class)
    gives ``cp_lower(k, n, alpha) − ρ > 1/2`` (Cohen et al.'s CERTIFY stops abstaining; Lemma 4.3
    with ρ), by doubling then bisection (⌊share·n⌋ makes the condition jitter by one vote near the
    boundary, so the n found is the boundary up to that jitter). None when even n_max samples
    cannot (share − ρ <= 1/2). Used to tell an abstaining
    user how many samples the same vote share would need."""
    check_alpha(alpha)
    share = float(share)
    if share - rho <= 0.5:
        return None

    def ok(n: int) -> bool:
        return stats.cp_lower(int(math.floor(share * n)), n, alpha) - rho > 0.5

    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > n_max:
            return None
    lo = hi // 2
    while hi - lo > 1:  # ok(hi), not ok(lo) (floor makes ok almost monotone: accept the bisection's n)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def inner_E_cap(sigma_eps: float, n_eps: int, alpha_in: float, miss_fraction: float = 0.01,
                rho_next: float = 0.0) -> float:
    """The largest E the inner test still passes when a fraction ``miss_fraction`` of its n_ε
    noisy samples is misclassified: ``σ_ε Φ⁻¹(CP_lower(n_ε − m, n_ε, α_in) − ρ_next)``,
    m = ⌊miss_fraction · n_ε⌋ (the E = dead-end threshold of :func:`dead_end`, scaled back so the
    inner test keeps room for a few wrong votes). 0 when nothing above E = 0 is reachable."""
    m = int(math.floor(miss_fraction * n_eps))
    p = float(stats.cp_lower(int(n_eps) - m, int(n_eps), alpha_in)) - rho_next
    return float(sigma_eps * _st.norm.ppf(p)) if p > 0.5 else 0.0


@dataclass
class InputEPlan:
    """How E is chosen per input (:func:`plan_input_E`); see its docstring."""

    n_E: int
    n_select: int
    select_quantile: float
    E_cap: float
    miss_budget: float

    def to_dict(self) -> dict:
        return asdict(self)


def plan_input_E(sigma_eps, n_eps, alpha_eps, alpha_E: float, n_gamma: int, alpha_gamma: float,
                 sigma_gamma: float = 1.0, attacker_max: float | None = None, attacker: str = "random",
                 n_E: int | None = None) -> InputEPlan:
    """Sample sizes and E rule for the per-input E of double / k-smoothing
    (:func:`semsmooth_core.errors.estimate_E_for_input`), before any sample is drawn.

    1. ``E_cap`` = :func:`inner_E_cap` (1 % wrong inner votes allowed; per partition for
       k-smoothing, nested levels pay ρ_next = α of the level below): E above it makes the inner
       test infeasible or nearly so, so E is capped there (q̲_E then says how often ε exceeds it).
    2. ``miss_budget`` b: the largest 1 − q̲_E in [0.005, 0.05] at which the best reachable radius
       (all n_γ inner tests passing, :func:`max_radius_double`) still reaches min(the range C,
       95 % of the radius with b = 0); a larger E costs inner passes, a larger b costs radius.
    3. ``n_E`` = ⌈ln α_E / ln(1 − b/4)⌉ (so that the Clopper-Pearson slack of an all-below count
       is at most b/4), within [200, 5000] (random attacker) or [100, 400] (worst case: each β
       bounds a whole grid of γ cells); ``n_select`` = max(min(100, n_E), n_E/4) selection draws and
       ``select_quantile`` = 1 − b/2 (the other half of b is the CP slack).
    """
    sig = list(sigma_eps) if isinstance(sigma_eps, (list, tuple)) else [sigma_eps]
    ns = list(n_eps) if isinstance(n_eps, (list, tuple)) else [n_eps] * len(sig)
    als = list(alpha_eps) if isinstance(alpha_eps, (list, tuple)) else [alpha_eps] * len(sig)
    K = max(len(sig), len(ns), len(als))
    sig, ns, als = (v * K if len(v) == 1 else v for v in (sig, ns, als))
    caps = [inner_E_cap(float(sig[k]), int(ns[k]), float(als[k]),
                        rho_next=float(als[k + 1]) if k + 1 < K else 0.0) for k in range(K)]
    E_cap = min(caps)
    a_eps0 = float(als[0])

    def best_r(b):
        return max_radius_double(float(sigma_gamma), int(n_gamma), float(alpha_gamma), a_eps0, 1.0 - b,
                                 float(alpha_E))

    r0 = best_r(0.0)
    target = 0.95 * r0 if attacker_max is None else min(float(attacker_max), 0.95 * r0)
    b = 0.005
    for cand in (0.05, 0.04, 0.03, 0.02, 0.015, 0.01, 0.0075, 0.005):
        if best_r(cand) >= target:
            b = cand
            break
    lo, hi = (200, 5000) if attacker == "random" else (100, 400)
    if n_E is None:
        n_E = int(math.ceil(math.log(alpha_E) / math.log(1.0 - b / 4)))
        n_E = int(min(hi, max(lo, n_E)))
    n_E = check_count("E samples per input", n_E)
    return InputEPlan(n_E=n_E, n_select=max(min(100, n_E), n_E // 4), select_quantile=1.0 - b / 2, E_cap=E_cap,
                      miss_budget=b)
