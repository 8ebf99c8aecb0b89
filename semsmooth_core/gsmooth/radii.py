"""Certified radii of GSmooth (Hao et al.) and of resolvable transformations (TSS, Li et al.).

Resolvable, additive in a non-negative parameter (Gaussian blur in the kernel variance, TSS): the
smoothed classifier G(x) = E f(ψ_θ(x)) with θ ≥ 0 drawn from a distribution D; an attack ψ_ξ
(ξ ≥ 0) gives G(ψ_ξ(x)) = E f(ψ_{θ+ξ}(x)), i.e. D shifted by ξ. The radius is the largest ξ for
which the Neyman-Pearson worst case keeps the top class above 1/2 (p̄_B = 1 - p̲_A shortcut):

- exponential, density e^{-θ/λ}/λ (mean λ):       R = -λ ln(2 - 2 p̲_A)                    (TSS)
- uniform U(0, a):                                  R = a (p̲_A - 1/2)                        (TSS, a = σ²)
- folded Gaussian |N(0, σ²)|:                       R = σ (Φ⁻¹((1 + p̲_A)/2) - Φ⁻¹(3/4))
- Gaussian N(0, σ²) on an additive ℝ parameter:     R = σ Φ⁻¹(p̲_A)  (GSmooth Eq. 7 = Thm 1 with M = 1;
  implemented once in :func:`semsmooth_core.stats.radius`)

Derivations are in ``docs/theory.md`` (section GSmooth). Every function returns 0 unless
p̲_A > 1/2 (TSS forgot this check: a tiny p̲_A gave a large radius).

GSmooth (Cor. 1 as implemented, derivation in docs/theory.md): R = Φ⁻¹(p̲_A) / M and the
approximation-corrected radius of Thm 3, R_r = R (1 - A ε) with A = 1 / (σ₂ Φ⁻¹(p̲_A)).
"""

from __future__ import annotations

import math

from scipy import stats as _st

from semsmooth_core.validation import SemsmoothError, check_positive

DISTRIBUTIONS = ("exp", "uniform", "folded_gaussian")


def _check_p(p: float) -> float:
    p = float(p)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise SemsmoothError(f"p_A lower bound must lie in [0, 1], got {p!r}")
    return p


def exp_radius(p_a_lower: float, lam: float) -> float:
    """TSS, exponential smoothing of a non-negative additive parameter: R = -λ ln(2 - 2 p̲_A)."""
    p = _check_p(p_a_lower)
    lam = check_positive("lambda", lam)
    if p <= 0.5:
        return 0.0
    if p >= 1.0:
        return math.inf
    return float(-lam * math.log(2.0 - 2.0 * p))


def uniform_radius(p_a_lower: float, a: float) -> float:
    """TSS, uniform smoothing U(0, a) of a non-negative additive parameter: R = a (p̲_A - 1/2)."""
    p = _check_p(p_a_lower)
    a = check_positive("uniform width a", a)
    return float(a * (p - 0.5)) if p > 0.5 else 0.0


def folded_gaussian_radius(p_a_lower: float, sigma: float) -> float:
    """Folded Gaussian |N(0, σ²)| smoothing of a non-negative additive parameter:
    R = σ (Φ⁻¹((1 + p̲_A)/2) - Φ⁻¹(3/4)) (derived in docs/theory.md)."""
    p = _check_p(p_a_lower)
    sigma = check_positive("sigma", sigma)
    if p <= 0.5:
        return 0.0
    if p >= 1.0:
        return math.inf
    return float(sigma * (_st.norm.ppf((1.0 + p) / 2.0) - _st.norm.ppf(0.75)))


def resolvable_radius(dist: str, p_a_lower: float, scale: float) -> float:
    """Dispatch on the smoothing distribution: ``exp`` (scale = mean λ), ``uniform`` (scale = width
    a), ``folded_gaussian`` (scale = σ)."""
    if dist == "exp":
        return exp_radius(p_a_lower, scale)
    if dist == "uniform":
        return uniform_radius(p_a_lower, scale)
    if dist == "folded_gaussian":
        return folded_gaussian_radius(p_a_lower, scale)
    raise SemsmoothError(f"unknown smoothing distribution {dist!r}; use one of {', '.join(DISTRIBUTIONS)}")


def gsmooth_latent_radius(p_a_lower: float) -> float:
    """Φ⁻¹(p̲_A): the radius, in the Mahalanobis norm of the latent noise covariance Σ, of the
    Gaussian smoothing in the semantic layer (Cohen et al. with p̄_B = 1 - p̲_A). 0 if p̲_A <= 1/2."""
    from semsmooth_core import stats

    return stats.radius(1.0, _check_p(p_a_lower))   # σ = 1: the radius in units of the latent noise


def gsmooth_radius(p_a_lower: float, M: float) -> float:
    """GSmooth Cor. 1 as implemented: R = Φ⁻¹(p̲_A) / M, M = max_ξ ||Σ^{-1/2} J(ξ)|| (σ₁, σ₂
    enter through Σ = σ₁² A1 A1ᵀ + σ₂² I). 0 if p̲_A <= 1/2."""
    M = check_positive("M", M)
    return gsmooth_latent_radius(p_a_lower) / M


def corrected_radius(p_a_lower: float, M: float, sigma2: float, eps: float) -> tuple[float, float]:
    """GSmooth Thm 3 made explicit: R_r = R (1 - A ε) with A = 1/(σ₂ Φ⁻¹(p̲_A)), clamped at 0.

    ``eps`` is the total l2 surrogate error (identity error at ξ = 0 plus the error along the
    attack path). Returns ``(R_r, A)``."""
    sigma2 = check_positive("sigma2", sigma2)
    eps = check_positive("eps", eps, allow_zero=True)
    r_lat = gsmooth_latent_radius(p_a_lower)
    if r_lat <= 0.0:
        return 0.0, math.inf
    R = gsmooth_radius(p_a_lower, M)
    A = 1.0 / (sigma2 * r_lat)
    return float(max(0.0, R * (1.0 - A * eps))), float(A)


def path_corrected_radius(p_a_lower: float, sigma2: float, eps0: float, grid_xi, grid_eps,
                          curve_xi, curve_norm) -> float:
    """Thm 3 with an ε and an M that grow along the attack path (tighter than the uniform form).

    On (ξ_{j-1}, ξ_j] of the ε grid the latent displacement of the real attack is at most
    M_j ξ + (ε₀ + E_j)/σ₂ with E_j = max_{i<=j} ε(ξ_i) and M_j the largest Jacobian norm of the
    M curve at ξ <= ξ_{j+1}; ξ is certified while that stays below Φ⁻¹(p̲_A). Returns the
    largest ξ certified on every interval up to it (0 if p̲_A <= 1/2).
    """
    import numpy as np

    sigma2 = check_positive("sigma2", sigma2)
    r_lat = gsmooth_latent_radius(p_a_lower)
    if r_lat <= 0.0:
        return 0.0
    gx, ge = np.asarray(grid_xi, float), np.asarray(grid_eps, float)
    cx, cn = np.asarray(curve_xi, float), np.asarray(curve_norm, float)
    R = 0.0
    E = float(eps0) + (ge[0] if len(ge) else 0.0)
    for j in range(1, len(gx)):
        E = max(E, float(eps0) + ge[j])
        nxt = gx[j + 1] if j + 1 < len(gx) else gx[j]
        Mj = float(cn[cx <= nxt + 1e-12].max()) if (cx <= nxt + 1e-12).any() else float(cn.max())
        bound = (r_lat - E / sigma2) / Mj if Mj > 0 else math.inf
        if bound >= gx[j]:
            R = float(gx[j])
            continue
        if bound > gx[j - 1]:
            R = float(bound)
        break
    return R
