"""GSmooth certification: augmented noise, the coefficient M, the radius of Cor. 1, Thm 3's
correction, the sound radius on the real transformation, and TSS-style certification of resolvable
blur (Hao et al. Eq. 9-18, Cor. 1, Thm 3).

The statements implemented (derivations in docs/theory.md, section GSmooth):

    GSmooth classifier  G(x) = P_{θ,θ'}[ f(H(A1 θ + b1 + θ' + F2(x))) = c ],
                        θ ~ N(0, σ₁² I_m),  θ' ~ N(0, σ₂² I_d)         (Eq. 10-12)
    the semantic-layer noise  A1 θ + θ' ~ N(0, Σ),  Σ = σ₁² A1 A1ᵀ + σ₂² I_d

1. SOUND, the certificate's ``radius`` (``extra["radius_real"]``, :mod:`semsmooth_core.gsmooth.sound`):
   G(q(ψ_ξ(x))) = G(x) for EVERY ξ in [0, R] (q: clamp + round to k/255, ψ the real transformation)
   when sup_{ξ ∈ [0,R]} ‖Σ^{-1/2}[q(ψ_ξ(x)) − x; 0]‖ < Φ⁻¹(p̲_A), the supremum bounded by exact values
   on a grid plus a proven per-cell interval bound (Cohen et al. in the semantic layer).
2. ESTIMATE (``extra["radius_surrogate"]``, the radius before issue 13; sound: False, M and ε are
   grid estimates):
    J(ξ) = ∂ F2(τ(ξ, x)) / ∂ξ  (d × m),   M = max_{ξ ∈ [0, ξ_max]} ||Σ^{-1/2} J(ξ)||₂   (Eq. 18)
    R = Φ⁻¹(p̲_A) / M                                                      (Cor. 1, Eq. 17)
    R_r = R (1 - A ε),  A = 1 / (σ₂ Φ⁻¹(p̲_A)),  ε = ||τ(0,x) - x|| + max_ξ ||τ(ξ,x) - ψ_ξ(x)||   (Thm 3)

Both hold with probability >= 1 - α over the sampling (one Clopper-Pearson bound).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from semsmooth_core import stats
from semsmooth_core.gsmooth import radii, sound
from semsmooth_core.smoothing import (ABSTAIN, Certificate, count_votes, model_device, select_and_estimate,
                                      predict_from_counts)
from semsmooth_core.validation import (SemsmoothError, check_alpha, check_count, check_n0_n,
                                       check_positive, check_sigma)

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------- latent covariance
def sigma_inv_quadratic(v: torch.Tensor, A1: torch.Tensor, sigma1: float, sigma2: float) -> torch.Tensor:
    """vᵀ Σ⁻¹ v for rows v ``[k, d]``, Σ = σ₁² A1 A1ᵀ + σ₂² I (A1 ``[d, m]``), by Woodbury:
    Σ⁻¹ = σ₂⁻² (I - A1 (σ₂²/σ₁² I_m + A1ᵀ A1)⁻¹ A1ᵀ)."""
    A1 = A1.to(v.dtype)
    m = A1.shape[1]
    S = (sigma2 ** 2 / sigma1 ** 2) * torch.eye(m, dtype=v.dtype, device=v.device) + A1.T @ A1
    P = v @ A1                                                        # [k, m]
    corr = (P * torch.linalg.solve(S, P.T).T).sum(dim=1)
    return ((v * v).sum(dim=1) - corr) / sigma2 ** 2


def _jvp_image(sur, x: torch.Tensor, xi: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """∂τ(ξ, x)/∂ξ · direction for a batch of ξ ``[G, m]``. Returns ``[G, n]``; F2 is the zero
    padding, so J = [this; 0]. A Jacobian-vector product by the double-backward trick (the VJP
    v ↦ Jᵀv is linear in v; differentiating ⟨Jᵀv, u⟩ in v gives J u): two reverse passes, no
    Jacobian, and none of torch.func's first-call compilation cost."""
    with torch.enable_grad():
        p = xi.detach().clone().requires_grad_(True)
        out = sur(p, x.unsqueeze(0).expand(xi.shape[0], *x.shape))
        v = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, p, v, create_graph=True)
        (jv,) = torch.autograd.grad(g, v, direction.to(g))
    return jv.detach().flatten(1)


def _vjp_image(sur, x: torch.Tensor, xi: torch.Tensor, cot: torch.Tensor) -> torch.Tensor:
    """Jᵀ c for cotangents ``cot`` ``[G, n]`` (one reverse pass)."""
    with torch.enable_grad():
        p = xi.detach().clone().requires_grad_(True)
        out = sur(p, x.unsqueeze(0).expand(xi.shape[0], *x.shape))
        (g,) = torch.autograd.grad(out, p, cot.reshape(out.shape))
    return g.detach()


def jacobian_norm(sur, x: torch.Tensor, xi: torch.Tensor, sigma1: float, sigma2: float,
                  iters: int = 30) -> torch.Tensor:
    """||Σ^{-1/2} J(ξ)||₂ for every ξ in ``xi`` ``[G, m]`` (App. B.1, Eq. 83-85).

    Power iteration on Jᵀ Σ⁻¹ J with Jacobian-vector products (forward mode) and vector-Jacobian
    products (reverse mode); never forms J. For m = 1 one JVP gives the exact value.
    """
    A1 = sur.A1_matrix().detach()
    n_img = int(np.prod(x.shape))
    d = A1.shape[0]
    G, m = xi.shape

    def quad(jv):                                                      # [G, n] -> Σ⁻¹-norm²
        v = torch.zeros(G, d, dtype=jv.dtype, device=jv.device)
        v[:, :n_img] = jv
        return v, sigma_inv_quadratic(v, A1, sigma1, sigma2)

    if m == 1:
        jv = _jvp_image(sur, x, xi, torch.ones_like(xi))
        return quad(jv)[1].clamp_min(0).sqrt()
    u = torch.randn(G, m, generator=torch.Generator().manual_seed(0)).to(xi)
    u = u / u.norm(dim=1, keepdim=True)
    val = torch.zeros(G, dtype=xi.dtype, device=xi.device)
    for _ in range(iters):
        jv = _jvp_image(sur, x, xi, u).detach()
        v, q = quad(jv)
        val = q.clamp_min(0).sqrt()
        # Σ⁻¹ v restricted to the image part, then Jᵀ (·) by a VJP
        S = (sigma2 ** 2 / sigma1 ** 2) * torch.eye(m, dtype=v.dtype, device=v.device) + A1.T @ A1
        sv = (v - (A1 @ torch.linalg.solve(S, (v @ A1).T)).T) / sigma2 ** 2
        g = _vjp_image(sur, x, xi, sv[:, :n_img]).detach()
        u = g / g.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return val


XI_RIGHT = 1e-6  # estimate_M: the grid's first point, as a fraction of ξ_max (a right derivative at 0)


def estimate_M(sur, x: torch.Tensor, sigma1: float, sigma2: float, xi_max: float, grid: int = 33,
               refine: int = 2, refine_points: int = 9) -> dict:
    """M = max over ξ ∈ [0, ξ_max] of ||Σ^{-1/2} J(ξ)|| (Eq. 18): a grid of ``grid`` points, then
    ``refine`` rounds of a finer grid around the best point. Returns M, the ξ where it is
    reached, and the curve (ξ, norm) for plots. An estimate: the max between grid points is not
    bounded (App. B.1 does the same). ξ = 0 is evaluated at ξ_max·``XI_RIGHT``: the derivative
    from the right, i.e. along the attack path. At ξ = 0 itself τ(0, x) = x sits on the kink of
    the output clamp (``surrogate.clamp01``), where the derivative is a convention that PyTorch
    versions answer differently (M 78 vs 48 for the first held-out digit with zoom blur)."""
    sigma1, sigma2 = check_sigma(sigma1, "sigma1"), check_sigma(sigma2, "sigma2")
    xi_max = check_positive("xi_max", xi_max)
    grid = check_count("grid", grid, minimum=2)
    dev = sur.device
    x = x.to(dev)
    lo = xi_max * XI_RIGHT
    xs = torch.linspace(0.0, xi_max, grid, device=dev)
    xs[0] = lo
    norms = jacobian_norm(sur, x, xs[:, None], sigma1, sigma2)
    all_x, all_n = [xs], [norms]
    best = int(norms.argmax())
    h = xi_max / (grid - 1)
    centre = float(xs[best])
    for _ in range(refine):
        xr = torch.linspace(max(lo, centre - h), min(xi_max, centre + h), refine_points, device=dev)
        nr = jacobian_norm(sur, x, xr[:, None], sigma1, sigma2)
        all_x.append(xr)
        all_n.append(nr)
        b = int(nr.argmax())
        if float(nr[b]) >= float(torch.cat(all_n[:-1]).max()):
            centre = float(xr[b])
        h = h * 2.0 / (refine_points - 1)
    X, N = torch.cat(all_x).cpu(), torch.cat(all_n).cpu()
    order = torch.argsort(X)
    k = int(N.argmax())
    return {"M": float(N[k]), "xi_at_M": float(X[k]), "xi": X[order].tolist(), "norm": N[order].tolist(),
            "grid": grid, "refine": refine}


# --------------------------------------------------------------------------- sampling
def gsmooth_batch_maker(sur, x: torch.Tensor, sigma1: float, sigma2: float, device,
                        generator: torch.Generator | None = None):
    """``make(b)``: b samples H(A1 θ + b1 + θ' + F2(x)) with θ ~ N(0, σ₁²), θ' ~ N(0, σ₂² I_d) —
    the augmented construction of Eq. 9-12. Noise is drawn on the generator's device."""
    x = x.to(device)
    L, H, W = sur.latent_shape
    gen_dev = generator.device if generator is not None else device

    @torch.no_grad()
    def make(b: int) -> torch.Tensor:
        th = sigma1 * torch.randn((b, sur.m), generator=generator, device=gen_dev)
        nz = sigma2 * torch.randn((b, L, H, W), generator=generator, device=gen_dev)
        return sur(th.to(device), x.unsqueeze(0).expand(b, *x.shape), nz.to(device))

    return make


@torch.no_grad()
def surrogate_error(sur, transform, x: torch.Tensor, xi_max: float, grid: int = 17) -> dict:
    """Per-input ε of Thm 3 on a grid: ε₀ = ||τ(0,x) - x|| (exact) and
    ε_path = max_j ||τ(ξ_j, x) - ψ_{ξ_j}(x)||, ξ_j = j ξ_max/(grid-1), ψ the real (quantized) transform."""
    dev = sur.device
    x = x.to(dev)
    xs = torch.linspace(0.0, xi_max, grid, device=dev)[:, None]
    xb = x.unsqueeze(0).expand(grid, *x.shape)
    real = transform(xb, xs)
    d = (sur(xs, xb) - real).flatten(1).norm(dim=1)
    eps0 = float((sur(torch.zeros(1, 1, device=dev), x[None]) - x[None]).norm())
    return {"eps0": eps0, "eps_path": float(d.max()), "eps": eps0 + float(d.max()), "grid": grid,
            "grid_xi": xs[:, 0].tolist(), "grid_eps": d.tolist(),
            "real_shift": (real - x[None]).flatten(1).cpu()}


def _check_x(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise SemsmoothError("x must be one image tensor [C,H,W]")
    if not torch.isfinite(x).all():
        raise SemsmoothError("x contains NaN or infinite values")
    return x.float()


def certify_gsmooth(model, sur, transform, x: torch.Tensor, sigma1: float, sigma2: float, n0: int, n: int,
                    alpha: float, xi_max: float | None = None, batch_size: int = 500,
                    generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                    num_classes: int | None = None, m_grid: int = 17, eps_grid: int = 17,
                    real_grid: int = 32) -> Certificate:
    """CERTIFY with the GSmooth classifier against the REAL transformation ``transform``.

    Selection with ``n0`` and estimation with ``n`` augmented samples (Eq. 10-12), p̲_A one-sided
    Clopper-Pearson at ``alpha``; abstain unless p̲_A > 1/2.

    ``radius`` is the SOUND radius on the real transformation (``extra["radius_real"]``, details in
    ``extra["radius_real_bound"]``: grid, cells, largest exact d on the grid, largest cell bound, the
    between-point term), <= ``xi_max``; :func:`semsmooth_core.gsmooth.sound.radius_real` with an initial
    grid of ``real_grid`` cells. ``extra["radius_surrogate"]`` is the estimate of before: R_r of Thm 3
    (the larger of the uniform form ``radius_corrected_uniform`` and the path-wise
    ``radius_corrected_path``), capped at ``xi_max``; it is NOT sound (``radius_surrogate_sound``
    False: M and ε are grid estimates). ``radius_cor1`` is R of Cor. 1 (the surrogate's own τ, not
    the real ψ). Labels: ``attacker`` "worst-case" (any severity in [0, radius]), ``sound`` (True for
    the transforms of ``sound.PROVEN``), ``statement`` (the plain sentence). ``real_latent_distance``:
    exact d at the ε grid points (diagnostic).
    """
    sigma1, sigma2 = check_sigma(sigma1, "sigma1"), check_sigma(sigma2, "sigma2")
    n0, n = check_n0_n(n0, n)
    alpha = check_alpha(alpha)
    batch_size = check_count("batch_size", batch_size)
    x = _check_x(x)
    sur.check_input(x[None])
    if xi_max is None:
        xi_max = float(sur.config["theta_scale"])
    xi_max = check_positive("xi_max", xi_max)
    if xi_max > transform.bounds[0][1]:
        raise SemsmoothError(f"xi_max {xi_max:g} exceeds {transform.name}'s range [0, {transform.bounds[0][1]:g}]")
    t0 = time.perf_counter()
    device = model_device(model)
    make = gsmooth_batch_maker(sur, x, sigma1, sigma2, device, generator)
    total = n0 + n
    label, _, p_lower, c1 = select_and_estimate(model, make, n0, n, alpha, batch_size, num_classes, progress)
    proven = transform.name in sound.PROVEN
    extra = {"sigma1": sigma1, "sigma2": sigma2, "n0": n0, "n": n, "xi_max": xi_max,
             "transform": transform.name, "method": "gsmooth", "attacker": "worst-case", "sound": proven,
             "radius_surrogate_sound": False, "radius_surrogate_reason": sound.SURROGATE_REASON}
    if not proven:
        extra["sound_reason"] = f"no proven enclosure of {transform.name} over a severity interval"
    R = R_r = R_real = 0.0
    if label != ABSTAIN:
        Minfo = estimate_M(sur, x, sigma1, sigma2, xi_max, grid=m_grid)
        err = surrogate_error(sur, transform, x, xi_max, grid=eps_grid)
        R = radii.gsmooth_radius(p_lower, Minfo["M"])
        R_u, A = radii.corrected_radius(p_lower, Minfo["M"], sigma2, err["eps"])
        R_p = radii.path_corrected_radius(p_lower, sigma2, err["eps0"], err["grid_xi"], err["grid_eps"],
                                          Minfo["xi"], Minfo["norm"])
        shift = err.pop("real_shift")
        A1 = sur.A1_matrix().detach().cpu()
        v = torch.zeros(shift.shape[0], A1.shape[0])
        v[:, :shift.shape[1]] = shift
        lat = sigma_inv_quadratic(v, A1, sigma1, sigma2).clamp_min(0).sqrt()
        R_r = min(max(R_u, R_p), xi_max)
        extra.update({"M": Minfo["M"], "xi_at_M": Minfo["xi_at_M"], "M_curve_xi": Minfo["xi"],
                      "M_curve_norm": Minfo["norm"], "latent_radius": radii.gsmooth_latent_radius(p_lower),
                      "radius_cor1": min(R, xi_max), "radius_cor1_uncapped": R, "radius_surrogate": R_r,
                      "radius_corrected_uniform": min(R_u, xi_max), "radius_corrected_path": min(R_p, xi_max),
                      "A": A, "real_latent_distance": lat.tolist(), **err})
        if proven:
            real = sound.radius_real(transform, x.cpu(), p_lower, sigma2, xi_max, A1=A1, sigma1=sigma1,
                                     grid=real_grid)
            R_real = real["radius_real"]
            extra["radius_real"] = R_real
            extra["radius_real_bound"] = {k: v for k, v in real.items() if k != "radius_real"}
    else:
        extra.update({"radius_surrogate": 0.0, "radius_real": 0.0})
    radius = R_real if proven else R_r
    extra["radius_method"] = "real (sound)" if proven else "surrogate (estimate)"
    extra["statement"] = sound.statement(transform.name, transform.units[0], label, radius, alpha, proven)
    return Certificate(label=label, radius=radius if label != ABSTAIN else 0.0, p_lower=p_lower, alpha=alpha,
                       n_forward=total, seconds=time.perf_counter() - t0, radius_unit=transform.units[0],
                       counts=c1.tolist(), extra=extra)


@torch.no_grad()
def predict_gsmooth(model, sur, x: torch.Tensor, sigma1: float, sigma2: float, n: int, alpha: float,
                    batch_size: int = 500, generator: torch.Generator | None = None,
                    num_classes: int | None = None) -> dict:
    """PREDICT with the GSmooth classifier (two-sided binomial test on the top two counts)."""
    x = _check_x(x)
    make = gsmooth_batch_maker(sur, x, sigma1, sigma2, model_device(model), generator)
    counts = count_votes(model, make, check_count("n", n), batch_size, num_classes)
    label, pval = predict_from_counts(counts, check_alpha(alpha))
    return {"label": label, "p_value": pval, "counts": counts.tolist()}


# --------------------------------------------------------------------------- resolvable (TSS)
def sample_nonneg(dist: str, scale: float, b: int, generator: torch.Generator | None) -> torch.Tensor:
    """θ ≥ 0 from ``exp`` (mean λ = scale), ``uniform`` U(0, scale), ``folded_gaussian`` |N(0, scale²)|."""
    if dist == "exp":
        u = torch.rand(b, 1, generator=generator).clamp_min(1e-12)
        return -scale * torch.log(u)
    if dist == "uniform":
        return scale * torch.rand(b, 1, generator=generator)
    if dist == "folded_gaussian":
        return (scale * torch.randn(b, 1, generator=generator)).abs()
    raise SemsmoothError(f"unknown smoothing distribution {dist!r}; use one of {', '.join(radii.DISTRIBUTIONS)}")


def certify_resolvable(model, transform, x: torch.Tensor, dist: str, scale: float, n0: int, n: int,
                       alpha: float, batch_size: int = 500, generator: torch.Generator | None = None,
                       progress: ProgressFn | None = None, num_classes: int | None = None) -> Certificate:
    """CERTIFY for a transformation additive in a non-negative parameter (Gaussian blur in the
    kernel variance; GSmooth Thm 1 with M = 1, TSS): smoothed over θ ~ ``dist`` (scale), radius
    from :mod:`semsmooth_core.gsmooth.radii` (0 unless p̲_A > 1/2). Samples are clipped to the
    transform's range (mass beyond it is > 1e-6 only for huge scales — refused).

    NOT sound for the real transformation (``extra["sound"]`` False, reason in ``sound_reason``): the
    shift argument needs ψ_θ∘ψ_ξ = ψ_{θ+ξ}, which the sampled, truncated kernel and the k/255 rounding
    break, and without additive noise in the base classifier no bound on that gap can enter the radius
    (it would need Fischer's double smoothing with E). The sound route for Gaussian blur is the GSmooth
    classifier with :func:`certify_gsmooth` (``sound.PROVEN`` includes ``gaussian_blur``) and a surrogate."""
    scale = check_positive("scale", scale)
    n0, n = check_n0_n(n0, n)
    alpha = check_alpha(alpha)
    x = _check_x(x)
    hi = transform.bounds[0][1]
    tail = {"exp": math.exp(-hi / scale), "uniform": float(scale > hi),
            "folded_gaussian": 2 * (1 - stats._st.norm.cdf(hi / scale))}.get(dist)
    if tail is None:
        raise SemsmoothError(f"unknown smoothing distribution {dist!r}; use one of {', '.join(radii.DISTRIBUTIONS)}")
    if tail > 1e-6:
        raise SemsmoothError(f"{dist} smoothing with scale {scale:g} puts mass beyond {transform.name}'s "
                             f"range [0, {hi:g}] {transform.units[0]}; use a smaller scale")
    t0 = time.perf_counter()
    device = model_device(model)
    xd = x.to(device)

    def make(b):
        th = sample_nonneg(dist, scale, b, generator).to(device)
        return transform(xd.unsqueeze(0).expand(b, *x.shape), th)

    total = n0 + n
    label, _, p_lower, c1 = select_and_estimate(model, make, n0, n, alpha, batch_size, num_classes, progress)
    r = radii.resolvable_radius(dist, p_lower, scale) if label != ABSTAIN else 0.0
    return Certificate(label=label, radius=r, p_lower=p_lower, alpha=alpha, n_forward=total,
                       seconds=time.perf_counter() - t0, radius_unit=transform.units[0], counts=c1.tolist(),
                       extra={"dist": dist, "scale": scale, "n0": n0, "n": n, "transform": transform.name,
                              "method": "resolvable", "attacker": "worst-case", "sound": False,
                              "sound_reason": sound.RESOLVABLE_REASON,
                              "statement": sound.statement_resolvable(transform.name, transform.units[0], label, r,
                                                                      alpha)})


# --------------------------------------------------------------------------- one entry point
RESOLVABLE = ("gaussian_blur",)
NON_RESOLVABLE = ("zoom_blur", "defocus_blur", "rotational_blur", "pixelate", "motion_blur")


def handles(transform_name: str) -> bool:
    """True for the transformations certified here (the blur family, composable=False)."""
    return transform_name in RESOLVABLE or transform_name in NON_RESOLVABLE


def certify(model, transform_name: str, x: torch.Tensor, n0: int, n: int, alpha: float,
            sigma1: float | None = None, sigma2: float = 0.5, surrogate: str | None = None,
            dist: str = "exp", scale: float | None = None, xi_max: float | None = None,
            batch_size: int = 500, generator: torch.Generator | None = None,
            progress: ProgressFn | None = None, num_classes: int | None = None, _cache: dict = {}) -> Certificate:
    """Certify ``x`` against ``transform_name`` with the method that fits it:

    - ``gaussian_blur`` (resolvable, additive in the kernel variance): :func:`certify_resolvable`
      with ``dist`` in exp / uniform / folded_gaussian and ``scale`` (default: the transform's
      default sigma);
    - the non-resolvable blurs and pixelate: :func:`certify_gsmooth` with the shipped surrogate
      ``surrogate_<name>`` (or ``surrogate``), ``sigma1`` (default: the transform's default sigma,
      transform units) and ``sigma2`` (augmented noise, pixel scale).
    The hook for ``certify --transform zoom_blur``: ``if gsmooth.certify.handles(name): cert =
    gsmooth.certify.certify(model, name, x, n0, n, alpha, ...)``.
    """
    from semsmooth_core import transforms
    from semsmooth_core.gsmooth.surrogate import load_surrogate

    t = transforms.get(transform_name)
    if transform_name in RESOLVABLE:
        return certify_resolvable(model, t, x, dist, scale if scale is not None else t.default_sigma[0], n0, n,
                                  alpha, batch_size, generator, progress, num_classes)
    if transform_name not in NON_RESOLVABLE:
        raise SemsmoothError(f"{transform_name} is not certified by GSmooth; GSmooth handles "
                             f"{', '.join(RESOLVABLE + NON_RESOLVABLE)}")
    key = (surrogate or transform_name, str(model_device(model)))
    if key not in _cache:
        _cache[key] = load_surrogate(surrogate or transform_name, model_device(model))[0]
    sur = _cache[key]
    s1 = sigma1 if sigma1 is not None else t.default_sigma[0]
    return certify_gsmooth(model, sur, t, x, s1, sigma2, n0, n, alpha, xi_max, batch_size, generator,
                           progress, num_classes)
