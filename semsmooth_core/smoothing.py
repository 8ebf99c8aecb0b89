"""Randomized smoothing: CERTIFY and PREDICT (Fischer Alg. 1; Cohen et al.).

This module holds the Gaussian (l2) smoothing of Fischer Thm 3.1 and the machinery shared by
every smoothing type: drawing a batch of perturbed inputs, classifying it on the device and
counting votes there, separate selection (n0) and estimation (n) samples, the Certificate.
Parameter smoothing (Thm 4.2), double smoothing (Lemma 4.3, §6.2) and k-smoothing (§6.3)
build on the same pieces.
"""

from __future__ import annotations

import math
import time

import numpy as np
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from semsmooth_core import stats
from semsmooth_core.progress import Stage
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_n0_n, check_sigma

ABSTAIN = stats.ABSTAIN

ProgressFn = Callable[[int, int], None]
"""``progress(done, total)``: called after every batch with forward passes done so far."""


@dataclass
class Certificate:
    """The result of certifying one input.

    ``label`` is the predicted class (-1 = abstain); ``radius`` is in ``radius_unit`` (0 when
    abstaining); ``p_lower`` is the one-sided Clopper-Pearson lower bound on p_A (before any ρ
    correction); ``rho`` the correction of Fischer Lemma 4.3 (0 for plain smoothing);
    ``alpha`` the failure probability of the certificate as a whole; ``n_forward`` the number of
    model forward passes (single inputs) spent; ``seconds`` wall-clock time.

    What the certificate claims (DESIGN.md "What a certificate may claim"; the sentence
    :attr:`statement` = :func:`explain_certificate` is written from these fields only):

    - ``attacker``: ``"random"`` (the parameter is drawn uniformly from the range C — Fischer's
      distributional attacker) or ``"worst-case"`` (left None, it is filled from the kind: random
      for double / k-smoothing, worst-case for the others) (any parameter the certificate covers: every
      γ in C for double smoothing with a worst-case E, any l2 perturbation within the radius
      for noise smoothing, any parameter below the radius for parameter smoothing / GSmooth).
    - ``E_scope``: ``"input"`` (E and q̲_E estimated on THIS input at certify time),
      ``"dataset"`` (an average over inputs like the training split, or given by the user), or
      None (no E: noise, parameter smoothing, GSmooth).
    - ``E``, ``q_E_lower``: the bound on ‖ε‖₂ and its Clopper-Pearson lower bound that entered ρ
      (None without E; for k-smoothing ``E`` is the largest partition's E and ``extra["E"]``
      has them all).
    - ``sound``: True only when every quantity in the radius is a proven bound or a confidence
      bound whose failure probability is inside ``alpha``; False for an estimate (e.g. a grid
      estimate of GSmooth's M, or parameter smoothing of a transform with interpolation error).
    """

    label: int
    radius: float
    p_lower: float
    alpha: float
    n_forward: int
    seconds: float
    radius_unit: str = "l2 (pixel scale [0,1])"
    rho: float = 0.0
    counts: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    attacker: str | None = None
    E_scope: str | None = None
    E: float | None = None
    q_E_lower: float | None = None
    sound: bool = True

    def __post_init__(self):
        label_certificate(self)

    @property
    def abstained(self) -> bool:
        return self.label == ABSTAIN

    @property
    def statement(self) -> str:
        """The plain-language guarantee (:func:`explain_certificate`), from the fields only."""
        return explain_certificate(self)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["abstained"] = self.abstained
        d["statement"] = self.statement
        return d


ATTACKERS = ("random", "worst-case")
E_SCOPES = ("input", "dataset")


def label_certificate(cert: "Certificate") -> "Certificate":
    """Normalize a certificate's claim fields: copy ``extra["attacker"]`` / ``extra["sound"]`` /
    ``extra["E_scope"]`` (as GSmooth and older code put them) onto the fields when present, map
    free-text attacker descriptions ("worst case: ...", "random: ...") onto ``random`` /
    ``worst-case``, and refuse unknown values. Called by ``Certificate.__post_init__``."""
    e = cert.extra if isinstance(cert.extra, dict) else {}
    a = e.get("attacker")
    if isinstance(a, str) and a:
        low = a.lower()
        if low.startswith("worst") or low.startswith("any") or "every" in low.split(":")[0]:
            cert.attacker = "worst-case"
        elif low.startswith("random"):
            cert.attacker = "random"
    if "sound" in e and e["sound"] is not None:
        cert.sound = bool(e["sound"])
    if e.get("E_scope") in E_SCOPES and cert.E_scope is None:
        cert.E_scope = e["E_scope"]
    if e.get("method") in ("gsmooth", "resolvable"):
        if not (isinstance(a, str) and a):
            cert.attacker = "worst-case"        # GSmooth: any severity up to the radius
        if e.get("sound") is None:
            # Hao et al.: the resolvable radius (Thm 1) is exact; the surrogate's M is maximised on a grid
            cert.sound = e.get("method") == "resolvable"
    sm = e.get("smoothing", "noise")
    if cert.attacker is None:
        # not given: the kind decides — noise and parameter smoothing certify every point of their
        # ball (worst case inside it); double / k-smoothing default to the random attacker
        cert.attacker = "random" if sm in ("double", "ksmooth") and e.get("method") is None else "worst-case"
    if cert.E_scope is None and sm in ("double", "ksmooth") and e.get("method") is None and e.get("E") is not None:
        cert.E_scope = "dataset"        # E from elsewhere, not said to be this input's: the weaker claim
    if cert.E is None and cert.E_scope is not None and e.get("E") is not None:
        Ev = e["E"]
        cert.E = float(max(Ev)) if isinstance(Ev, (list, tuple)) else float(Ev)
    if cert.q_E_lower is None and cert.E_scope is not None and e.get("q_E_lower") is not None:
        qv = e["q_E_lower"]
        cert.q_E_lower = (1.0 - sum(1.0 - float(q) for q in qv)) if isinstance(qv, (list, tuple)) else float(qv)
    if cert.attacker not in ATTACKERS:
        raise SemsmoothError(f"attacker must be one of {', '.join(ATTACKERS)}, got {cert.attacker!r}")
    if cert.E_scope not in (None, *E_SCOPES):
        raise SemsmoothError(f"E_scope must be input, dataset or None, got {cert.E_scope!r}")
    cert.sound = bool(cert.sound)
    return cert


# --------------------------------------------------------------------------- sampling
@torch.no_grad()
def count_votes(model: Callable[[torch.Tensor], torch.Tensor],
                make_batch: Callable[[int], torch.Tensor],
                num: int,
                batch_size: int,
                num_classes: int | None = None,
                progress: ProgressFn | None = None,
                progress_offset: int = 0,
                progress_total: int | None = None) -> torch.Tensor:
    """Classify ``num`` perturbed inputs and count the predicted classes, on the model's device.

    ``make_batch(b)`` returns ``b`` perturbed inputs ``[b, ...]`` already on the device. Votes are
    accumulated with ``bincount`` on the device; one host sync happens at the end. Returns a
    CPU int64 tensor of length ``num_classes`` (inferred from the first logits if None).
    """
    counts = None
    done = 0
    total = progress_total if progress_total is not None else num
    while done < num:
        b = min(batch_size, num - done)
        logits = model(make_batch(b))
        if counts is None:
            k = num_classes or logits.shape[-1]
            counts = torch.zeros(k, dtype=torch.long, device=logits.device)
        pred = logits.argmax(dim=-1)
        counts += torch.bincount(pred, minlength=counts.numel())[: counts.numel()]
        done += b
        if progress is not None:
            progress(progress_offset + done, total)
    if counts is None:
        return torch.zeros(num_classes or 0, dtype=torch.long)
    return counts.cpu()


def model_device(model) -> torch.device:
    """The device of a module's first parameter (CPU for parameter-free callables)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def gaussian_batch_maker(x: torch.Tensor, sigma: float, device: torch.device,
                         generator: torch.Generator | None = None) -> Callable[[int], torch.Tensor]:
    """``make_batch`` for l2 smoothing: ``b`` copies of ``x`` plus N(0, σ²) noise, on ``device``.

    The noise is drawn on the generator's device (so a CPU generator gives the same samples on
    every machine) and moved to ``device``.
    """
    x = x.to(device)
    gen_dev = generator.device if generator is not None else device

    def make(b: int) -> torch.Tensor:
        noise = torch.randn((b, *x.shape), generator=generator, device=gen_dev, dtype=x.dtype)
        return x.unsqueeze(0) + sigma * noise.to(device, non_blocking=True)

    return make


def _check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise SemsmoothError("x must be a torch tensor [C,H,W]")
    if not torch.isfinite(x).all():
        raise SemsmoothError("x contains NaN or infinite values")
    return x.float()


# --------------------------------------------------------------------------- Gaussian smoothing
def certify_noise(model, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float,
                  batch_size: int = 1000, generator: torch.Generator | None = None,
                  progress: ProgressFn | None = None, num_classes: int | None = None) -> Certificate:
    """CERTIFY for l2 Gaussian smoothing (Fischer Thm 3.1 with ψ_β(x) = x + β; Cohen et al.).

    Selection: ``n0`` noisy samples choose ĉ_A = argmax. Estimation: ``n`` fresh samples count
    n_A; ``p̲_A = cp_lower(n_A, n, alpha)``. Abstain (label -1, radius 0) unless p̲_A > 1/2, else
    ``R = σ Φ⁻¹(p̲_A)`` in l2 units of the input scale. Holds with probability >= 1 - alpha.

    ``x`` is one input ``[C,H,W]`` (any shape the model takes without the batch dimension);
    ``model`` maps a batch to logits and runs where its parameters live (CUDA when there).
    """
    sigma = check_sigma(sigma)
    n0, n = check_n0_n(n0, n)
    alpha = check_alpha(alpha)
    batch_size = check_count("batch_size", batch_size)
    x = _check_input(x)
    t0 = time.perf_counter()
    device = model_device(model)
    make = gaussian_batch_maker(x, sigma, device, generator)
    total = n0 + n
    label, _, p_lower, c1 = select_and_estimate(model, make, n0, n, alpha, batch_size, num_classes, progress)
    r = stats.radius(sigma, p_lower)
    return Certificate(label=label, radius=r if label != ABSTAIN else 0.0, p_lower=p_lower,
                       alpha=alpha, n_forward=total, seconds=time.perf_counter() - t0,
                       counts=c1.tolist(), extra={"sigma": sigma, "n0": n0, "n": n},
                       attacker="worst-case")


def select_and_estimate(model, make, n0: int, n: int, alpha: float, batch_size: int,
                        num_classes: int | None = None, progress: ProgressFn | None = None):
    """CERTIFY's two sampling stages (Cohen et al. Alg. 1; Fischer Thm 3.1/4.2): ``n0`` samples
    from ``make(b)`` select ĉ_A = argmax, ``n`` fresh samples count n_A, and
    ``p̲_A = cp_lower(n_A, n, alpha)``. Returns (ĉ_A or ABSTAIN when p̲_A <= 1/2, ĉ_A, p̲_A,
    estimation counts). Shared by every single-level smoothing (noise, parameter, GSmooth)."""
    total = n0 + n
    c0 = count_votes(model, make, n0, batch_size, num_classes, progress, 0, total)
    c_hat = int(c0.argmax())
    c1 = count_votes(model, make, n, batch_size, num_classes or c0.numel(), progress, n0, total)
    p_lower = stats.cp_lower(int(c1[c_hat]), n, alpha)
    return (c_hat if p_lower > 0.5 else ABSTAIN), c_hat, p_lower, c1


def predict_from_counts(counts: torch.Tensor, alpha: float) -> tuple[int, float]:
    """PREDICT's decision (Cohen et al.): the top class if the two-sided binomial test of the
    top two counts rejects equality at ``alpha``, else abstain. Returns (label, p-value)."""
    top2 = torch.topk(counts, k=min(2, counts.numel()))
    n_a = int(top2.values[0])
    n_b = int(top2.values[1]) if counts.numel() > 1 else 0
    pval = stats.binom_test_pvalue(n_a, n_b)
    return (int(top2.indices[0]) if pval <= alpha else ABSTAIN), pval


def predict_noise(model, x: torch.Tensor, sigma: float, n: int, alpha: float, batch_size: int = 1000,
                  generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                  num_classes: int | None = None) -> dict:
    """PREDICT for l2 smoothing: the smoothed classifier's label with abstention; the label is
    wrong (not abstained and not g(x)) with probability at most ``alpha``."""
    sigma = check_sigma(sigma)
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    x = _check_input(x)
    t0 = time.perf_counter()
    make = gaussian_batch_maker(x, sigma, model_device(model), generator)
    counts = count_votes(model, make, n, batch_size, num_classes, progress)
    label, pval = predict_from_counts(counts, alpha)
    return {"label": label, "p_value": pval, "counts": counts.tolist(), "n_forward": n,
            "seconds": time.perf_counter() - t0}


# =========================================================================== parameter smoothing
def device_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """A generator on ``device`` seeded from ``generator`` (CPU): noise is drawn where the model
    runs (no host->device copies of large noise tensors), deterministically per device type."""
    if generator is None:
        return None
    if generator.device == torch.device(device) or torch.device(device).type == "cpu":
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


@dataclass
class TransformSpec:
    """A parameterised transformation ψ_β ready to call on a batch: ``fn(x_batch, params[B,d])``.

    Built by :func:`resolve_transform` from a registry name or a callable; ``unit`` is the unit
    of β (and of the radius), ``attacker_range`` the range C of the attacker per dimension."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    dim: int
    unit: str
    name: str
    attacker_range: tuple[tuple[float, float], ...] | None = None
    default_sigma: tuple[float, ...] = ()


def resolve_transform(transform, interpolation: str = "bilinear", quantize: bool = True,
                      dim: int | None = None, unit: str | None = None,
                      attacker_range=None) -> TransformSpec:
    """Turn ``transform`` (a registry name, a registry Transform, or a callable
    ``(x_batch, params[B,d]) -> inputs``) into a :class:`TransformSpec`.

    Registry transforms are called with ``interpolation`` and ``quantize`` (the realistic attacker
    stores every image as k/255, DESIGN.md principle 3)."""
    from semsmooth_core import transforms as _tr

    if isinstance(transform, str):
        transform = _tr.get(transform)
    if isinstance(transform, _tr.Transform):
        t = transform
        if interpolation not in t.interpolations:
            raise SemsmoothError(f"{t.name} supports interpolation {', '.join(t.interpolations)}, "
                                 f"not {interpolation!r}")

        def fn(xb, params, _t=t):
            return _t(xb, params, interpolation=interpolation, quantize=quantize)

        rng = attacker_range if attacker_range is not None else t.default_range
        return TransformSpec(fn, t.dim, unit or t.unit, t.name, _norm_range(rng, t.dim),
                             tuple(t.default_sigma))
    if callable(transform):
        d = int(dim or 1)
        return TransformSpec(transform, d, unit or "parameter units",
                             getattr(transform, "__name__", "callable"), _norm_range(attacker_range, d))
    raise SemsmoothError(f"transform must be a registry name or a callable, got {type(transform).__name__}")


def _norm_range(rng, d: int):
    if rng is None:
        return None
    if isinstance(rng, (int, float)):
        return tuple((-abs(float(rng)), abs(float(rng))) for _ in range(d))
    rng = [tuple(float(v) for v in r) for r in rng]
    if len(rng) != d or any(len(r) != 2 or r[0] > r[1] for r in rng):
        raise SemsmoothError(f"attacker range must be {d} pairs (low, high), got {rng}")
    return tuple(rng)


def range_norm_max(rng, cov_inv_sqrt: torch.Tensor | None = None) -> float:
    """The largest norm of a γ in the box C (the corner farthest from 0); in the Σ-norm of
    Fischer App. B when ``cov_inv_sqrt`` is given. A certified radius beyond it covers all of C
    (the paper clips radii to C, Tables 2-3, †)."""
    import itertools

    corners = torch.tensor(list(itertools.product(*rng)), dtype=torch.float64)
    if cov_inv_sqrt is not None:
        corners = corners @ cov_inv_sqrt.T
    return float(corners.norm(dim=1).max())


def parse_sigma(sigma, dim: int) -> tuple[torch.Tensor, bool]:
    """Smoothing distribution β ~ N(0, Σ) from ``sigma``: a number (Σ = σ²·1, Thm 4.2), ``d``
    standard deviations (Σ diagonal) or a ``d×d`` covariance (App. B). Returns (Σ float64,
    isotropic?)."""
    s = torch.as_tensor(sigma, dtype=torch.float64)
    if s.ndim == 0 or (s.ndim == 1 and s.numel() == 1):
        v = check_sigma(float(s.reshape(-1)[0]))
        return torch.eye(dim, dtype=torch.float64) * v * v, True
    if s.ndim == 1:
        if s.numel() != dim:
            raise SemsmoothError(f"need {dim} sigmas for this transformation, got {s.numel()}")
        for v in s.tolist():
            check_sigma(v)
        iso = bool(torch.allclose(s, s[0].expand_as(s)))
        return torch.diag(s * s), iso
    if s.shape != (dim, dim):
        raise SemsmoothError(f"covariance must be {dim}x{dim}, got {tuple(s.shape)}")
    if not torch.allclose(s, s.T) or torch.linalg.eigvalsh(s).min() <= 0:
        raise SemsmoothError("covariance must be symmetric positive definite")
    iso = bool(torch.allclose(s, torch.eye(dim, dtype=torch.float64) * s[0, 0]))
    return s, iso


def box_halfwidth(radius: float, sigma, dim: int | None = None) -> float:
    """The largest a such that the box |γ_i| <= a (every i, each in its own unit) lies inside the
    region certified by parameter smoothing (Fischer Thm 4.2 / App. B) with ``radius`` as returned
    by ``certify_transform`` for this ``sigma`` (a number: l2 ball of radius R in units; d std devs
    or a d×d covariance: Mahalanobis ball γᵀΣ⁻¹γ < R²). The box is inside iff its worst corner
    s·a, s ∈ {±1}^d, is: a = R / sqrt(max_s sᵀΣ⁻¹s) (isotropic: a = R/√d; diagonal Σ:
    a = R / sqrt(Σ_i 1/σ_i²)). ``dim`` is needed only for a single σ. Used for the ‖α‖_∞ radii of
    GSmooth's Table 1."""
    import itertools

    s = torch.as_tensor(sigma, dtype=torch.float64)
    if s.ndim == 0 or s.numel() == 1:
        if dim is None:
            raise SemsmoothError("box_halfwidth needs dim for a single sigma")
        d = int(dim)
    else:
        d = s.shape[0]
    cov, iso = parse_sigma(sigma, d)
    if radius <= 0:
        return 0.0
    if iso:
        return float(radius) / math.sqrt(d)
    inv = torch.linalg.inv(cov)
    worst = max(float(torch.tensor(c, dtype=torch.float64) @ inv @ torch.tensor(c, dtype=torch.float64))
                for c in itertools.product((-1.0, 1.0), repeat=d))
    return float(radius) / math.sqrt(worst)


class _ParamSampler:
    """β ~ N(0, Σ) drawn as ``L z`` (L = chol Σ) on the generator's device."""

    def __init__(self, cov: torch.Tensor, generator, device):
        self.L = torch.linalg.cholesky(cov).float()
        self.gen = generator
        self.dev = generator.device if generator is not None else device
        self.out_dev = device

    def __call__(self, b: int) -> torch.Tensor:
        z = torch.randn((b, self.L.shape[0]), generator=self.gen, device=self.dev)
        return (z @ self.L.T.to(self.dev)).to(self.out_dev)


def _apply(spec: TransformSpec, x: torch.Tensor, params: torch.Tensor, preprocess) -> torch.Tensor:
    xb = x.unsqueeze(0).expand(params.shape[0], *x.shape)
    out = spec.fn(xb, params)
    return preprocess(out) if preprocess is not None else out


def _radius_fields(cov: torch.Tensor, iso: bool, spec: TransformSpec, p_a: float, rho: float,
                   p_b_upper: float | None = None) -> tuple[float, str, dict]:
    """Thm 4.2 radius (isotropic, in the transform's units) or the App. B Mahalanobis radius
    ``sqrt(γᵀΣ⁻¹γ) < Φ⁻¹(p̲_A − ρ)`` (unit "Mahalanobis"), with per-axis radii in the
    transform's units."""
    sd = torch.sqrt(torch.diag(cov))
    if iso:
        r = stats.radius(float(sd[0]), p_a, p_b_upper, rho=rho)
        return r, spec.unit, {}
    r1 = stats.radius(1.0, p_a, p_b_upper, rho=rho)
    return r1, f"Mahalanobis (sqrt(γᵀΣ⁻¹γ); γ in {spec.unit})", {
        "axis_radii": [r1 * float(v) for v in sd], "axis_unit": spec.unit}


def certify_transform(model, x: torch.Tensor, transform, sigma, n0: int, n: int, alpha: float,
                      batch_size: int = 1000, generator: torch.Generator | None = None,
                      progress: ProgressFn | None = None, interpolation: str = "bilinear",
                      preprocess: Callable | None = None, num_classes: int | None = None,
                      quantize: bool = True, dim: int | None = None, unit: str | None = None,
                      attacker_range=None, clip: bool = False) -> Certificate:
    """CERTIFY for parameter smoothing (Fischer Thm 4.2; anisotropic Σ: App. B).

    ``g(x) = argmax_c P_β(f(ψ_β(x)) = c)``, β ~ N(0, Σ). Selection with ``n0`` samples of β,
    estimation with ``n`` fresh ones; ``p̲_A = cp_lower(n_A, n, alpha)``; abstain unless
    p̲_A > 1/2. Isotropic Σ = σ²·1: ``R = σ Φ⁻¹(p̲_A)`` in the transform's units (degrees,
    pixels, log-factor, ...), certifying ``g(ψ_γ(x)) = c_A`` for ``‖γ‖₂ < R``. General Σ
    (``sigma`` = per-axis std devs or a covariance): ``R = Φ⁻¹(p̲_A)`` in the Σ-norm
    ``sqrt(γᵀΣ⁻¹γ)`` (``extra["axis_radii"]`` gives the radius along each axis in units).

    ``transform``: registry name / Transform (called with ``interpolation`` and ``quantize``) or a
    callable ``(x_batch, params[B,d]) -> inputs`` (``dim`` and ``unit`` describe it).
    ``preprocess`` (e.g. vignette + low-pass) is applied to the transformed batch before the model.
    Soundness: the guarantee holds exactly for transformations that compose (ψ_β∘ψ_γ = ψ_{β+γ});
    for realistic (interpolated, rounded) images use :func:`certify_double`.
    ``clip=True`` clips the radius to the attacker range C (flag ``extra["clipped"]``).
    """
    n0, n = check_n0_n(n0, n)
    alpha = check_alpha(alpha)
    batch_size = check_count("batch_size", batch_size)
    x = _check_input(x)
    spec = resolve_transform(transform, interpolation, quantize, dim, unit, attacker_range)
    cov, iso = parse_sigma(sigma, spec.dim)
    t0 = time.perf_counter()
    device = model_device(model)
    x = x.to(device)
    gen = device_generator(generator, device)
    sample = _ParamSampler(cov, gen, device)
    make = lambda b: _apply(spec, x, sample(b), preprocess)  # noqa: E731
    total = n0 + n
    label, _, p_lower, c1 = select_and_estimate(model, make, n0, n, alpha, batch_size, num_classes, progress)
    r, unit_s, extra = _radius_fields(cov, iso, spec, p_lower, 0.0)
    extra.update({"sigma": _sigma_repr(cov, iso), "n0": n0, "n": n, "transform": spec.name,
                  "interpolation": interpolation, "smoothing": "transform",
                  "attacker": "ideal composition ψ_β∘ψ_γ = ψ_{β+γ} (interpolation/rounding error not covered)"})
    r = r if label != ABSTAIN else 0.0
    if clip and spec.attacker_range is not None and label != ABSTAIN:
        r, extra["clipped"] = _clip(r, spec, cov, iso)
    # sound only for a caller's own transform (it promises exact composition); a registry transform
    # interpolates and rounds, and that error is not bounded here (double smoothing bounds it)
    exact = not isinstance(transform, str) and callable(transform) and not hasattr(transform, "interpolations")
    return Certificate(label=label, radius=r, p_lower=p_lower, alpha=alpha, n_forward=total,
                       seconds=time.perf_counter() - t0, radius_unit=unit_s, counts=c1.tolist(),
                       extra=extra, attacker="worst-case", sound=exact)


def _sigma_repr(cov: torch.Tensor, iso: bool):
    if iso:
        return float(torch.sqrt(cov[0, 0]))
    if torch.count_nonzero(cov - torch.diag(torch.diag(cov))) == 0:
        return [float(v) for v in torch.sqrt(torch.diag(cov))]
    return cov.tolist()


def _clip(r: float, spec: TransformSpec, cov: torch.Tensor, iso: bool) -> tuple[float, bool]:
    inv_sqrt = None
    if not iso:
        ev, V = torch.linalg.eigh(cov)
        inv_sqrt = V @ torch.diag(ev.rsqrt()) @ V.T
    cmax = range_norm_max(spec.attacker_range, inv_sqrt)
    return (cmax, True) if r > cmax else (r, False)


def predict_transform(model, x: torch.Tensor, transform, sigma, n: int, alpha: float,
                      batch_size: int = 1000, generator: torch.Generator | None = None,
                      progress: ProgressFn | None = None, interpolation: str = "bilinear",
                      preprocess: Callable | None = None, num_classes: int | None = None,
                      quantize: bool = True, dim: int | None = None) -> dict:
    """PREDICT for parameter smoothing (Fischer Def. 4.1 with Cohen et al.'s test): the top
    class over ``n`` samples of β if the two-sided binomial test of the top two counts rejects
    at ``alpha``, else abstain."""
    n = check_count("n", n)
    alpha = check_alpha(alpha)
    x = _check_input(x)
    spec = resolve_transform(transform, interpolation, quantize, dim)
    cov, _ = parse_sigma(sigma, spec.dim)
    t0 = time.perf_counter()
    device = model_device(model)
    x = x.to(device)
    sample = _ParamSampler(cov, device_generator(generator, device), device)
    counts = count_votes(model, lambda b: _apply(spec, x, sample(b), preprocess), n, batch_size,
                         num_classes, progress)
    label, pval = predict_from_counts(counts, alpha)
    return {"label": label, "p_value": pval, "counts": counts.tolist(), "n_forward": n,
            "seconds": time.perf_counter() - t0}


# =========================================================================== double smoothing
StageFn = Callable[[str], None]
"""``on_stage(stage)``: called when a certification enters a stage (a
:class:`semsmooth_core.progress.Stage`, a str), for progress displays."""


def inner_threshold(E: float, sigma_eps: float) -> float:
    """θ = Φ(E/σ_ε): the inner l2-smoothed classifier certifies radius >= E exactly when
    p̲_A >= θ (Fischer §6.2 with Thm 3.1; :func:`stats.prob_lower_needed`)."""
    return stats.prob_lower_needed(E, sigma_eps)


def double_rho(alpha_eps: float, q_E_lower: float, alpha_E: float, inner_mode: str = "lemma") -> float:
    """ρ of Fischer Lemma 4.3 / §6.2 for double smoothing: the probability that the erroneous base
    classifier f̂ ("the inner smoothing certifies c_A with radius >= E at ψ_β(x)") differs from
    f ("c_A and truly robust on B_E(ψ_{β+γ}(x))").

    - ``inner_mode="lemma"`` (default): ``ρ = α_ε + (1 − q̲_E) + α_E``. Each inner test runs at
      α_ε; its error is a property of ONE draw of f̂, so it is absorbed in ρ and no Bonferroni
      over the n_γ inner tests is needed. (The paper prints ``q_E`` where it means the failure
      part ``1 − q̲_E``.)
    - ``inner_mode="bonferroni"``: the inner tests run at α_ε/n_γ so that all n_γ inner
      certificates hold simultaneously with probability >= 1 − α_ε; then ρ = (1 − q̲_E) + α_E and
      α_ε moves into the total failure probability instead (see :func:`double_total_failure`).
      The reference code did the Bonferroni split AND dropped α_ε everywhere — unsound.
    """
    if inner_mode == "lemma":
        return float(alpha_eps) + (1.0 - float(q_E_lower)) + float(alpha_E)
    if inner_mode == "bonferroni":
        return (1.0 - float(q_E_lower)) + float(alpha_E)
    raise SemsmoothError(f"inner_mode must be 'lemma' or 'bonferroni', got {inner_mode!r}")


def double_total_failure(alpha_gamma: float, alpha_eps: float, alpha_E: float,
                         inner_mode: str = "lemma") -> float:
    """The probability that a double-smoothing certificate is wrong, all sources together:
    the outer Clopper-Pearson bound (α_γ), the one-off estimate of q̲_E that every input shares
    (α_E — kept in ρ as the paper does, and counted here because q̲_E is drawn once, not per
    sample), and with ``inner_mode="bonferroni"`` the simultaneous inner certificates (α_ε)."""
    extra = float(alpha_eps) if inner_mode == "bonferroni" else 0.0
    return float(alpha_gamma) + float(alpha_E) + extra


def transformed_inputs(x: torch.Tensor, transform, params, interpolation: str = "bilinear",
                       preprocess: Callable | None = None, quantize: bool = True) -> torch.Tensor:
    """``preprocess(ψ^I_β(x))`` for a batch of parameters (the images the inner smoothing sees);
    used by the app's gallery."""
    spec = resolve_transform(transform, interpolation, quantize,
                             dim=torch.as_tensor(params).reshape(len(params), -1).shape[1])
    p = torch.as_tensor(params, dtype=torch.float32, device=x.device).reshape(len(params), -1)
    return _apply(spec, _check_input(x).to(x.device), p, preprocess)


def _images(spec, x, params, preprocess, batch_size):
    outs = [_apply(spec, x, params[i:i + batch_size], preprocess) for i in range(0, len(params), batch_size)]
    return torch.cat(outs) if outs else x.new_zeros((0, *x.shape))


def _noise(shape, gen, device, dtype):
    return torch.randn(shape, generator=gen, device=gen.device if gen is not None else device,
                       dtype=dtype).to(device, non_blocking=True)


def _outer_selection(model, spec, x, sample, preprocess, noise_scale, gen, device, n0, batch_size,
                     num_classes, progress, total):
    """Stage "outer selection" of double and k-smoothing (Fischer §6.2 / §6.3): ``n0`` sampled β,
    one noisy pass each (``noise_scale``: σ_ε, or a per-pixel map of σ_ε for k-smoothing).
    Returns (counts, number of classes, selected class c_A)."""
    def make_sel(b):
        z = _apply(spec, x, sample(b), preprocess)
        return z + noise_scale * _noise(z.shape, gen, device, z.dtype)
    c0 = count_votes(model, make_sel, n0, batch_size, num_classes, progress, 0, total)
    return c0, num_classes or c0.numel(), int(c0.argmax())


@torch.no_grad()
def _inner_round(model, Z, idx, sigma_eps, gen, batch_size, num_classes, counts, device, progress, done, total):
    """Classify ``Z[idx] + N(0, σ_ε²)`` in batches; accumulate per-(β, class) counts on the device."""
    for s in range(0, idx.numel(), batch_size):
        ii = idx[s:s + batch_size]
        zb = Z[ii]
        logits = model(zb + sigma_eps * _noise(zb.shape, gen, device, zb.dtype))
        if counts[0] is None:
            nc = num_classes or logits.shape[-1]
            counts[0] = torch.zeros(Z.shape[0] * nc, dtype=torch.long, device=device)
            counts[1] = nc
        pred = logits.argmax(-1).clamp_max(counts[1] - 1)
        counts[0] += torch.bincount(ii * counts[1] + pred, minlength=counts[0].numel())
        done += ii.numel()
        if progress is not None:
            progress(done, total)
    return done


def certify_double(model, x: torch.Tensor, transform, sigma_gamma, sigma_eps: float, E: float,
                   q_E_lower: float, n0: int, n_gamma: int, n_eps: int, alpha_gamma: float,
                   alpha_eps: float, alpha_E: float, *, batch_size: int = 1000,
                   generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                   on_stage: StageFn | None = None, interpolation: str = "bilinear",
                   preprocess: Callable | None = None, num_classes: int | None = None,
                   attacker_range=None, E_worst_case: bool = False, inner_mode: str = "lemma",
                   sequential=None, clip: bool = True, dim: int | None = None,
                   unit: str | None = None, quantize: bool = True, attacker: str | None = None,
                   E_scope: str = "dataset") -> Certificate:
    """CERTIFY by double smoothing (Fischer §5.2, §6.2, Lemma 4.3).

    Outer: β ~ N(0, Σ_γ) over the realistic transform ψ^I_β (interpolated, rounded to k/255,
    then ``preprocess``). Base classifier f̂(β) = c_A iff the inner Gaussian smoothing of the model
    with σ_ε certifies c_A at z_β = preprocess(ψ^I_β(x)) with l2 radius >= E, i.e. iff
    ``cp_lower(k_β, n_ε, α_in) >= Φ(E/σ_ε)`` (α_in = α_ε, or α_ε/n_γ with
    ``inner_mode="bonferroni"``). c_A is chosen by ``n0`` selection samples (one noisy pass per
    sampled β) independent of the estimation samples, so the inner test needs no selection of
    its own. Outer: S = #{β : f̂(β) = c_A} among ``n_gamma`` samples,
    ``p̲_A = cp_lower(S, n_γ, α_γ)``, ρ = :func:`double_rho`, label c_A iff p̲_A − ρ > 1/2 and
    ``R = σ_γ Φ⁻¹(p̲_A − ρ)`` (Lemma 4.3, shortcut p̄_B = 1 − p̲_A) in the transform's units —
    Σ-norm (App. B) for an anisotropic Σ_γ. With ``clip`` the radius is clipped to the attacker
    range C that E was computed for (``extra["clipped"]``), as the paper's † entries.

    Guarantee: with probability >= 1 − ``extra["total_failure"]`` (:func:`double_total_failure`),
    g(ψ^I_γ(x)) = c_A for γ in C with ‖γ‖ < R, against ``attacker``:

    - ``"random"`` (default): γ ~ U(C) — q̲_E lower-bounds P_{β,γ}(‖ε(β,γ,x)‖ < E);
    - ``"worst-case"`` (or the old ``E_worst_case=True``): every γ in C — the caller promises that
      q̲_E lower-bounds P_β(max_{γ∈C} ‖ε(β,γ,x)‖ < E) (a proven upper bound per β, e.g.
      :func:`semsmooth_core.worstcase.max_eps_upper`).

    ``E_scope`` says whose E it is: ``"input"`` (estimated for this x, e.g. by
    :func:`semsmooth_core.errors.estimate_E_for_input`: the guarantee holds for this input) or
    ``"dataset"`` (default for numbers handed in: an average over inputs like the training
    split, so the guarantee holds on average over such inputs). Both go onto the Certificate's
    fields and into its statement. E must live in the space of the inner noise: measured after
    ``preprocess``.

    ``sequential``: None (fixed n_ε for every β, as the paper), ``"looks"`` / ``"mixture"``
    (planner's default schedule, :func:`semsmooth_core.planner.inner_plan`), or a
    :class:`stats.SequentialPlan` with ``plan.alpha <= α_in`` and ``plan.n_max == n_eps``. The
    sequential inner test stops each β as soon as its decision is made soundly; the outer stops
    early only when the final decision is already fixed (abstain whatever the remaining β give,
    or the clipped radius reached) — both exact. All inner samples of a round are drawn and
    classified in batches on the model's device, counted with ``bincount`` there.
    """
    t0 = time.perf_counter()
    sigma_eps = check_sigma(sigma_eps, "sigma_eps")
    n0 = check_count("n0", n0)
    n_gamma = check_count("n_gamma", n_gamma)
    n_eps = check_count("n_eps", n_eps)
    check_n0_n(n0, n_gamma, "n_gamma")
    alpha_gamma = check_alpha(alpha_gamma, "alpha_gamma")
    alpha_eps = check_alpha(alpha_eps, "alpha_eps")
    alpha_E = check_alpha(alpha_E, "alpha_E")
    E, q_E_lower = check_E(E, q_E_lower)
    batch_size = check_count("batch_size", batch_size)
    attacker = _attacker(attacker, E_worst_case)
    E_scope = _E_scope(E_scope)
    x = _check_input(x)
    spec = resolve_transform(transform, interpolation, quantize, dim, unit, attacker_range)
    cov, iso = parse_sigma(sigma_gamma, spec.dim)
    rho = double_rho(alpha_eps, q_E_lower, alpha_E, inner_mode)
    total_failure = double_total_failure(alpha_gamma, alpha_eps, alpha_E, inner_mode)
    alpha_in = alpha_eps / n_gamma if inner_mode == "bonferroni" else alpha_eps
    theta = inner_threshold(E, sigma_eps)
    plan = _inner_plan(sequential, n_eps, alpha_in, theta)
    msg = inner_dead_end(E, sigma_eps, n_eps, alpha_in, plan)
    if msg:
        raise SemsmoothError(msg)
    seq = sequential is not None

    device = model_device(model)
    x = x.to(device)
    gen = device_generator(generator, device)
    sample = _ParamSampler(cov, gen, device)
    stage = on_stage or (lambda s: None)
    total = n0 + n_gamma * n_eps

    # ---- outer selection: n0 betas, one noisy pass each
    stage(Stage.OUTER_SELECTION)
    c0, nc, c_a = _outer_selection(model, spec, x, sample, preprocess, sigma_eps, gen, device, n0, batch_size,
                                   num_classes, progress, total)

    # ---- outer estimation: n_gamma betas, inner smoothing at each
    stage(Stage.TRANSFORMING)
    betas = sample(n_gamma)
    Z = _images(spec, x, betas, preprocess, batch_size)
    stage(Stage.INNER_SMOOTHING)
    status = torch.zeros(n_gamma, dtype=torch.int8)          # 0 open, 1 success, 2 failure
    n_used = torch.zeros(n_gamma, dtype=torch.long)
    counts = [None, nc]
    done = n0
    cmax = None
    if clip and spec.attacker_range is not None:
        inv_sqrt = None
        if not iso:
            ev, V = torch.linalg.eigh(cov)
            inv_sqrt = V @ torch.diag(ev.rsqrt()) @ V.T
        cmax = range_norm_max(spec.attacker_range, inv_sqrt)
    sig_out = 1.0 if not iso else float(torch.sqrt(cov[0, 0]))
    stopped_early = None
    prev = 0
    for j, look in enumerate(plan.looks):
        open_idx = torch.nonzero(status == 0).flatten()
        if open_idx.numel() == 0:
            break
        idx = open_idx.repeat_interleave(look - prev).to(device)
        done = _inner_round(model, Z, idx, sigma_eps, gen, batch_size, nc, counts, device, progress,
                            done, total)
        n_used[open_idx] = look
        k = counts[0].view(n_gamma, nc)[:, c_a].cpu()
        succ, fail = stats.sequential_decide(plan, j, k[open_idx].numpy(), theta)
        status[open_idx[torch.from_numpy(succ)]] = 1
        status[open_idx[torch.from_numpy(fail)]] = 2
        prev = look
        if seq:
            S = int((status == 1).sum())
            U = int((status == 0).sum())
            if U and stats.cp_lower(S + U, n_gamma, alpha_gamma) - rho <= 0.5:
                stopped_early = "abstain: even all open β certified could not clear 1/2"
                break
            if U and cmax is not None and stats.radius(sig_out, stats.cp_lower(S, n_gamma, alpha_gamma),
                                                       rho=rho) >= cmax:
                stopped_early = "radius already reaches the attacker range C"
                break
    if progress is not None:
        progress(done, done)
    S = int((status == 1).sum())
    p_lower = stats.cp_lower(S, n_gamma, alpha_gamma)
    r, unit_s, extra = _radius_fields(cov, iso, spec, p_lower, rho)
    label = c_a if p_lower - rho > 0.5 else ABSTAIN
    r = r if label != ABSTAIN else 0.0
    clipped = False
    if cmax is not None and label != ABSTAIN and r > cmax:
        r, clipped = cmax, True
    cc = counts[0].view(n_gamma, nc).cpu() if counts[0] is not None else torch.zeros(n_gamma, nc, dtype=torch.long)
    extra.update({
        "smoothing": "double", "transform": spec.name, "interpolation": interpolation,
        "sigma_gamma": _sigma_repr(cov, iso), "sigma_eps": sigma_eps, "E": E, "q_E_lower": float(q_E_lower),
        "n0": n0, "n_gamma": n_gamma, "n_eps": n_eps, "alpha_gamma": alpha_gamma, "alpha_eps": alpha_eps,
        "alpha_E": alpha_E, "alpha_inner": alpha_in, "inner_mode": inner_mode, "inner_threshold": theta,
        "total_failure": total_failure, "clipped": clipped,
        "attacker_range": [list(r_) for r_ in spec.attacker_range] if spec.attacker_range else None,
        "attacker": _ATTACKER_TEXT[attacker], "E_scope": E_scope,
        "sequential": None if not seq else {"method": plan.method, "looks": list(plan.looks),
                                            "alphas": list(plan.alphas), "futility_alpha": plan.futility_alpha},
        "stopped_early": stopped_early, "outer_successes": S,
        "outer_decided": int((status != 0).sum()),
        "betas": betas.cpu().tolist(), "inner_hits": cc[:, c_a].tolist(), "inner_n": n_used.tolist(),
        "inner_verdict": ["certified" if s == 1 else ("not certified" if s == 2 else "not run")
                          for s in status.tolist()],
        "inner_class_totals": cc.sum(0).tolist(), "selection_counts": c0.tolist(),
    })
    return Certificate(label=label, radius=r, p_lower=p_lower, alpha=total_failure, n_forward=done,
                       seconds=time.perf_counter() - t0, radius_unit=unit_s, rho=rho,
                       counts=[S, n_gamma - S], extra=extra, attacker=attacker, E_scope=E_scope,
                       E=E, q_E_lower=float(q_E_lower), sound=True)


_ATTACKER_TEXT = {"random": "random: γ ~ U(C) (q̲_E bounds P(‖ε‖ < E) over β and a random γ)",
                  "worst-case": "worst-case: every γ in C (q̲_E bounds P(max over γ in C of ‖ε‖ < E) over β)"}


def _attacker(attacker: str | None, E_worst_case: bool = False) -> str:
    if attacker is None:
        return "worst-case" if E_worst_case else "random"
    if attacker not in ATTACKERS:
        raise SemsmoothError(f"attacker must be random or worst-case, got {attacker!r}")
    if E_worst_case and attacker != "worst-case":
        raise SemsmoothError("E_worst_case=True contradicts attacker='random'")
    return attacker


def _E_scope(scope) -> str:
    if scope not in E_SCOPES:
        raise SemsmoothError(f"E_scope must be input or dataset, got {scope!r}")
    return scope


def check_E(E, q_E_lower) -> tuple[float, float]:
    """E (finite, >= 0) and q̲_E (in (0, 1]) of double smoothing, one-line errors (the pipeline's
    config check and :func:`certify_double` both call it)."""
    try:
        q = float(q_E_lower)
    except (TypeError, ValueError):
        q = math.nan
    if not (0.0 < q <= 1.0):
        raise SemsmoothError(f"q_E_lower must lie in (0, 1], got {q_E_lower!r}")
    try:
        e = float(E)
    except (TypeError, ValueError):
        e = math.nan
    if not (math.isfinite(e) and e >= 0.0):
        raise SemsmoothError(f"E must be a finite number >= 0, got {E!r}")
    return e, q


def inner_dead_end(E: float, sigma_eps: float, n_eps: int, alpha_in: float, sequential=None) -> str | None:
    """The one dead-end check of double smoothing (pipeline, planner and certify_double call it):
    a one-line reason why the inner smoothing can NEVER certify radius E — even n_ε correct
    samples out of n_ε do not reach θ = Φ(E/σ_ε) under the inner test (the fixed test:
    ``α^(1/n_ε) < θ``, Fischer App. C.2; a sequential plan: its own best bound) — else None.
    ``alpha_in`` is the inner tests' level (α_ε, or α_ε/n_γ with Bonferroni)."""
    theta = inner_threshold(E, sigma_eps)
    plan = sequential if isinstance(sequential, stats.SequentialPlan) else \
        _inner_plan(sequential, int(n_eps), alpha_in, theta)
    if stats.sequential_min_success_n(plan, theta) is not None:
        return None
    try:
        need = stats.min_samples_for_radius(E, sigma_eps, alpha_in, n_max=10**8)
    except SemsmoothError:
        need = None
    more = f"; needs n_eps >= {need}" if need else "; lower E or raise sigma_eps"
    return (f"E = {E:g} is out of reach of the inner smoothing (it can never be certified): "
            f"Phi(E/sigma_eps) = {theta:.4f} > alpha_eps^(1/n_eps) = {stats.cp_lower(int(n_eps), int(n_eps), alpha_in):.4f} "
            f"(sigma_eps {sigma_eps:g}, n_eps {n_eps}, alpha {alpha_in:.3g}){more}")


def _inner_plan(sequential, n_eps: int, alpha_in: float, theta: float) -> stats.SequentialPlan:
    if sequential is None or sequential is False:
        return stats.make_sequential_plan(alpha_in, [n_eps])
    if isinstance(sequential, stats.SequentialPlan):
        if sequential.alpha > alpha_in * (1 + 1e-9) or sequential.n_max != n_eps:
            raise SemsmoothError("sequential plan must spend at most alpha_eps and end at n_eps")
        return sequential
    from semsmooth_core import planner

    method = "looks" if sequential is True else str(sequential)
    return planner.inner_plan(n_eps, alpha_in, theta, method=method)


def predict_double(model, x: torch.Tensor, transform, sigma_gamma, sigma_eps: float, n_gamma: int,
                   n_eps: int, alpha_gamma: float, alpha_eps: float, *, batch_size: int = 1000,
                   generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                   interpolation: str = "bilinear", preprocess: Callable | None = None,
                   num_classes: int | None = None, quantize: bool = True, dim: int | None = None) -> dict:
    """PREDICT for the double-smoothed classifier: at each of ``n_gamma`` sampled β the inner
    smoothed classifier votes its top class when the binomial test of its top two counts over
    ``n_eps`` noisy samples rejects at ``alpha_eps`` (else no vote); the outer binomial test of
    the top two vote counts at ``alpha_gamma`` decides (Cohen et al.'s PREDICT at both levels)."""
    from scipy import stats as _sst

    sigma_eps = check_sigma(sigma_eps, "sigma_eps")
    n_gamma, n_eps = check_count("n_gamma", n_gamma), check_count("n_eps", n_eps)
    alpha_gamma, alpha_eps = check_alpha(alpha_gamma, "alpha_gamma"), check_alpha(alpha_eps, "alpha_eps")
    x = _check_input(x)
    t0 = time.perf_counter()
    spec = resolve_transform(transform, interpolation, quantize, dim)
    cov, _ = parse_sigma(sigma_gamma, spec.dim)
    device = model_device(model)
    x = x.to(device)
    gen = device_generator(generator, device)
    Z = _images(spec, x, _ParamSampler(cov, gen, device)(n_gamma), preprocess, batch_size)
    counts = [None, num_classes]
    idx = torch.arange(n_gamma, device=device).repeat_interleave(n_eps)
    done = _inner_round(model, Z, idx, sigma_eps, gen, batch_size, num_classes, counts, device, progress,
                        0, n_gamma * n_eps)
    cc = counts[0].view(n_gamma, counts[1]).cpu()
    top2 = torch.topk(cc, k=min(2, cc.shape[1]), dim=1)
    na = top2.values[:, 0].numpy()
    nb = top2.values[:, 1].numpy() if cc.shape[1] > 1 else na * 0
    # two-sided binomial test per β, vectorised: p = P(|X - m/2| >= |n_a - m/2|), X ~ Bin(m, 1/2)
    m = na + nb
    lo = _sst.binom.cdf(nb, m, 0.5)
    pv = (2 * lo).clip(max=1.0)
    votes = torch.where(torch.from_numpy(pv <= alpha_eps), top2.indices[:, 0], torch.full_like(top2.indices[:, 0], -1))
    outer = torch.bincount(votes[votes >= 0], minlength=counts[1])
    label, pval = predict_from_counts(outer, alpha_gamma)
    return {"label": label, "p_value": pval, "counts": outer.tolist(), "n_forward": done,
            "abstained_votes": int((votes < 0).sum()), "seconds": time.perf_counter() - t0}


# =========================================================================== k-smoothing
def partition_masks(kind, shape) -> torch.Tensor:
    """Masks ``[K, C, H, W]`` (0/1, disjoint, covering the input) for k-smoothing (Fischer §6.3):
    ``"halves"`` (left | right), ``"channels"`` (one per colour channel), ``"quadrants"``
    (top-left, top-right, bottom-left, bottom-right), ``"none"`` (one partition), or a given
    tensor of masks."""
    C, H, W = shape
    if isinstance(kind, torch.Tensor):
        m = kind.float()
        if m.ndim != 4 or tuple(m.shape[1:]) != (C, H, W) or not torch.all(m.sum(0) == 1):
            raise SemsmoothError("partition masks must be [K,C,H,W], 0/1, and cover each entry exactly once")
        return m
    if kind not in PARTITION_NORMS:
        raise SemsmoothError(f"unknown partition {kind!r}; use halves, channels, quadrants or none")
    # ONE mask function for E estimation and k-smoothing (errors.part_masks: the left half / top
    # half takes the odd column / row), so each E_k bounds exactly the part its noise covers
    from semsmooth_core.errors import part_masks

    return part_masks(C, H, W, PARTITION_NORMS[kind]).float()


#: k-smoothing partition name -> the partition (``norm``) of :mod:`semsmooth_core.errors`
PARTITION_NORMS = {"none": "whole", None: "whole", "halves": "half", "channels": "channel",
                   "quadrants": "quadrant"}


def _per_level(v, K, name, fn):
    vals = list(v) if isinstance(v, (list, tuple)) else [v] * K
    if len(vals) != K:
        raise SemsmoothError(f"{name} needs one value per partition ({K}), got {len(vals)}")
    return [fn(x) for x in vals]


def ksmooth_rho(alpha_eps: list[float], q_E_lower, alpha_E: float) -> float:
    """ρ of the outer Lemma 4.3 step of k-smoothing (Fischer §6.3): ``α_1`` (the failure of the
    outermost inner certificate; deeper levels are absorbed level by level, see
    :func:`certify_ksmooth`) + ``P(some ‖ε_k‖ >= E_k)`` (<= Σ_k (1 − q̲_{E_k}) by the union bound,
    or ``1 − q̲`` of a joint estimate given as one number) + α_E."""
    q_fail = (1.0 - float(q_E_lower)) if not isinstance(q_E_lower, (list, tuple)) else \
        sum(1.0 - float(q) for q in q_E_lower)
    return float(alpha_eps[0]) + q_fail + float(alpha_E)


@torch.no_grad()
def _ksmooth_counts(model, Z, masks, sigmas, n_levels, gen, device, batch_size, num_classes,
                    progress, done, total):
    """Class counts at the innermost level for every prefix (β, j_1..j_{K-1}):
    ``[n_β · Π_{k<K} n_k, classes]``. Input of sample (β, j_1..j_K) is
    ``z_β + Σ_k σ_k M_k ⊙ ε_k[β, j_1..j_k]`` — the noise of level k is shared by all samples
    below it, as the nested smoothing prescribes."""
    K = len(n_levels)
    nb = Z.shape[0]
    P_in = int(np.prod(n_levels[:-1])) if K > 1 else 1
    n_last = n_levels[-1]
    per_beta = P_in * n_last
    chunk = max(1, (batch_size * 8) // per_beta)
    sm = [(sigmas[k] * masks[k]).to(device) for k in range(K)]
    out = None
    for b0 in range(0, nb, chunk):
        b1 = min(nb, b0 + chunk)
        cb = b1 - b0
        # noise sums of the outer levels per prefix: [cb, n_1, ..., n_{K-1}, C,H,W]
        acc = Z[b0:b1].clone().view(cb, *([1] * (K - 1)), *Z.shape[1:])
        for k in range(K - 1):
            shape = (cb, *n_levels[:k + 1], *([1] * (K - 2 - k)), *Z.shape[1:])
            acc = acc + sm[k] * _noise(shape, gen, device, Z.dtype)
        acc = acc.expand(cb, *n_levels[:-1], *Z.shape[1:]).reshape(cb * P_in, *Z.shape[1:])
        idx = torch.arange(cb * P_in, device=device).repeat_interleave(n_last)
        cnt = None
        for s in range(0, idx.numel(), batch_size):
            ii = idx[s:s + batch_size]
            zb = acc[ii]
            logits = model(zb + sm[K - 1] * _noise(zb.shape, gen, device, zb.dtype))
            nc = num_classes or logits.shape[-1]
            if cnt is None:
                cnt = torch.zeros(cb * P_in * nc, dtype=torch.long, device=device)
            cnt += torch.bincount(ii * nc + logits.argmax(-1).clamp_max(nc - 1), minlength=cnt.numel())
            done += ii.numel()
            if progress is not None:
                progress(done, total)
        cnt = cnt.view(cb * P_in, nc).cpu()
        out = cnt if out is None else torch.cat([out, cnt])
    return out, done


def certify_ksmooth(model, x: torch.Tensor, transform, sigma_gamma, sigma_eps, E, q_E_lower, n0: int,
                    n_gamma: int, n_eps, alpha_gamma: float, alpha_eps, alpha_E: float, *,
                    partitions="halves", batch_size: int = 1000, generator: torch.Generator | None = None,
                    progress: ProgressFn | None = None, on_stage: StageFn | None = None,
                    interpolation: str = "bilinear", preprocess: Callable | None = None,
                    num_classes: int | None = None, attacker_range=None, E_worst_case: bool = False,
                    clip: bool = True, dim: int | None = None, unit: str | None = None,
                    quantize: bool = True, attacker: str | None = None,
                    E_scope: str = "dataset") -> Certificate:
    """CERTIFY by k-smoothing (Fischer §6.3): double smoothing whose inner smoothing is nested
    over K partitions of the input (halves, colour channels, quadrants), with a bound E_k per
    partition. ``sigma_eps``, ``E``, ``n_eps``, ``alpha_eps`` are per partition (or one value
    for all); ``q_E_lower`` per partition (union bound) or one joint value.

    Nesting (f_K the base model, level K innermost): f_K-smoothing over ε_K certifies
    ``c_A`` with radius >= E_K when ``cp_lower(k, n_K, α_K) >= Φ(E_K/σ_K)``; level k < K smooths
    the level-(k+1) verdict over ε_k and certifies radius >= E_k when
    ``cp_lower(S, n_k, α_k) − α_{k+1} >= Φ(E_k/σ_k)`` (Lemma 4.3 with ρ = α_{k+1}). The outer
    step is as in :func:`certify_double` with ρ = :func:`ksmooth_rho`. Cost: n_γ · Π_k n_k
    forward passes (the paper's n_γ · n_L · n_R), all drawn and classified in device batches.
    ``attacker`` and ``E_scope`` as in :func:`certify_double`.
    """
    t0 = time.perf_counter()
    attacker = _attacker(attacker, E_worst_case)
    E_scope = _E_scope(E_scope)
    x = _check_input(x)
    masks = partition_masks(partitions, tuple(x.shape))
    K = masks.shape[0]
    sig = _per_level(sigma_eps, K, "sigma_eps", lambda v: check_sigma(v, "sigma_eps"))
    Es = _per_level(E, K, "E", float)
    ns = _per_level(n_eps, K, "n_eps", lambda v: check_count("n_eps", v))
    als = _per_level(alpha_eps, K, "alpha_eps", lambda v: check_alpha(v, "alpha_eps"))
    n0, n_gamma = check_count("n0", n0), check_count("n_gamma", n_gamma)
    alpha_gamma, alpha_E = check_alpha(alpha_gamma, "alpha_gamma"), check_alpha(alpha_E, "alpha_E")
    batch_size = check_count("batch_size", batch_size)
    spec = resolve_transform(transform, interpolation, quantize, dim, unit, attacker_range)
    cov, iso = parse_sigma(sigma_gamma, spec.dim)
    rho = ksmooth_rho(als, q_E_lower, alpha_E)
    for k in range(K):
        best = stats.cp_lower(ns[k], ns[k], als[k]) - (als[k + 1] if k + 1 < K else 0.0)
        if best < inner_threshold(Es[k], sig[k]):
            raise SemsmoothError(f"E = {Es[k]:g} of partition {k + 1} can never be certified at n_eps "
                                 f"{ns[k]} (needs p_A >= {inner_threshold(Es[k], sig[k]):.4f}, best "
                                 f"bound {best:.4f}); lower E, raise sigma_eps or n_eps")
    device = model_device(model)
    x = x.to(device)
    masks = masks.to(device)
    gen = device_generator(generator, device)
    sample = _ParamSampler(cov, gen, device)
    stage = on_stage or (lambda s: None)
    total = n0 + n_gamma * int(np.prod(ns))
    noise_map = sum(s * masks[k] for k, s in enumerate(sig))
    stage(Stage.OUTER_SELECTION)
    c0, nc, c_a = _outer_selection(model, spec, x, sample, preprocess, noise_map, gen, device, n0, batch_size,
                                   num_classes, progress, total)
    stage(Stage.INNER_SMOOTHING)
    betas = sample(n_gamma)
    Z = _images(spec, x, betas, preprocess, batch_size)
    cnt, done = _ksmooth_counts(model, Z, masks, sig, ns, gen, device, batch_size, nc, progress, n0, total)
    hits = cnt[:, c_a].numpy()
    ok = stats.cp_lower(hits, np.full_like(hits, ns[-1]), als[-1]) >= inner_threshold(Es[-1], sig[-1])
    for k in range(K - 2, -1, -1):
        S = ok.reshape(-1, ns[k]).sum(1)
        ok = (stats.cp_lower(S, np.full_like(S, ns[k]), als[k]) - als[k + 1]) >= inner_threshold(Es[k], sig[k])
    S = int(ok.sum())
    p_lower = stats.cp_lower(S, n_gamma, alpha_gamma)
    r, unit_s, extra = _radius_fields(cov, iso, spec, p_lower, rho)
    label = c_a if p_lower - rho > 0.5 else ABSTAIN
    r = r if label != ABSTAIN else 0.0
    clipped = False
    if clip and spec.attacker_range is not None and label != ABSTAIN:
        r, clipped = _clip(r, spec, cov, iso)
    total_failure = float(alpha_gamma) + float(alpha_E)
    extra.update({"smoothing": "ksmooth", "partitions": partitions if isinstance(partitions, str) else "custom",
                  "K": K, "transform": spec.name, "interpolation": interpolation,
                  "sigma_gamma": _sigma_repr(cov, iso), "sigma_eps": sig, "E": Es,
                  "q_E_lower": q_E_lower, "n_eps": ns, "alpha_eps": als, "n0": n0, "n_gamma": n_gamma,
                  "alpha_gamma": alpha_gamma, "alpha_E": alpha_E, "total_failure": total_failure,
                  "clipped": clipped, "outer_successes": S, "betas": betas.cpu().tolist(),
                  "attacker_range": [list(r_) for r_ in spec.attacker_range] if spec.attacker_range else None,
                  "inner_verdict": ["certified" if v else "not certified" for v in ok.tolist()],
                  "attacker": _ATTACKER_TEXT[attacker], "E_scope": E_scope})
    qs = q_E_lower if isinstance(q_E_lower, (list, tuple)) else [q_E_lower]
    q_joint = 1.0 - sum(1.0 - float(q) for q in qs) if len(qs) > 1 else float(qs[0])   # union bound
    return Certificate(label=label, radius=r, p_lower=p_lower, alpha=total_failure, n_forward=done,
                       seconds=time.perf_counter() - t0, radius_unit=unit_s, rho=rho,
                       counts=[S, n_gamma - S], extra=extra, attacker=attacker, E_scope=E_scope,
                       E=float(max(Es)), q_E_lower=q_joint, sound=True)


def predict_ksmooth(model, x: torch.Tensor, transform, sigma_gamma, sigma_eps, n_gamma: int, n_eps,
                    alpha_gamma: float, *, partitions="halves", batch_size: int = 1000,
                    generator: torch.Generator | None = None, progress: ProgressFn | None = None,
                    interpolation: str = "bilinear", preprocess: Callable | None = None,
                    num_classes: int | None = None, quantize: bool = True, dim: int | None = None) -> dict:
    """PREDICT for the k-smoothed classifier: the nested majority (innermost counts -> argmax per
    prefix -> majority at each level up to one vote per β), then Cohen et al.'s binomial test
    of the top two β-votes at ``alpha_gamma``."""
    t0 = time.perf_counter()
    x = _check_input(x)
    masks = partition_masks(partitions, tuple(x.shape))
    K = masks.shape[0]
    sig = _per_level(sigma_eps, K, "sigma_eps", lambda v: check_sigma(v, "sigma_eps"))
    ns = _per_level(n_eps, K, "n_eps", lambda v: check_count("n_eps", v))
    n_gamma, alpha_gamma = check_count("n_gamma", n_gamma), check_alpha(alpha_gamma, "alpha_gamma")
    spec = resolve_transform(transform, interpolation, quantize, dim)
    cov, _ = parse_sigma(sigma_gamma, spec.dim)
    device = model_device(model)
    x, masks = x.to(device), masks.to(device)
    gen = device_generator(generator, device)
    Z = _images(spec, x, _ParamSampler(cov, gen, device)(n_gamma), preprocess, batch_size)
    cnt, done = _ksmooth_counts(model, Z, masks, sig, ns, gen, device, batch_size, num_classes, progress,
                                0, n_gamma * int(np.prod(ns)))
    nc = cnt.shape[1]
    votes = cnt.argmax(1)
    for k in range(K - 2, -1, -1):
        v = votes.view(-1, ns[k])
        votes = torch.nn.functional.one_hot(v, nc).sum(1).argmax(1)
    outer = torch.bincount(votes, minlength=nc)
    label, pval = predict_from_counts(outer, alpha_gamma)
    return {"label": label, "p_value": pval, "counts": outer.tolist(), "n_forward": done,
            "seconds": time.perf_counter() - t0}


#: the word for one parameter value of each transformation (statements say "an angle", "a shift" ...)
PARAM_WORDS = {"rotation": "angle", "translation": "shift", "scaling": "scale factor (log)",
               "brightness": "brightness offset", "contrast": "contrast factor (log)", "volume": "gain",
               "gaussian_blur": "blur variance"}


def _range_text(rng, unit: str) -> str:
    if not rng:
        return "the attacker range C"
    u = {"degrees": "°"}.get(unit, f" {unit}" if unit else "")
    return " × ".join(f"[{lo:g}{u}, {hi:g}{u}]" for lo, hi in rng)


def explain_certificate(cert: Certificate, class_name: str | None = None) -> str:
    """A plain-language statement of what a certificate guarantees (for the CLI, the app, reports).

    Written from the claim fields only — ``attacker``, ``E_scope``, ``E``, ``q_E_lower``,
    ``sound`` — plus the radius, α, ρ and the descriptive extras (transform, range C,
    interpolation, clipping). The wording per field, and nothing stronger:

    - attacker ``worst-case``: "an attacker who may pick any <angle> in <C>"; ``random``: "an
      <angle> drawn at random (uniformly) from <C>";
    - E_scope ``input``: "for this input" (E and q̲_E estimated on this input at certify time);
      ``dataset``: "on average over inputs like the training set" (not claimed for this input);
    - ``sound`` False: "an estimate, not a proof".
    """
    e = cert.extra
    name = class_name if class_name is not None else str(cert.label)
    conf = f"{100 * (1 - cert.alpha):.4g} %"
    caveat = "" if cert.sound else " This is an estimate, not a proof: not every quantity in the radius is a proven bound."
    if cert.abstained and e.get("skipped"):
        return f"Nothing is certified (abstain): {e['skipped']}."
    if cert.abstained:
        return ("The smoothed classifier abstains: the sampled votes do not show a majority class with "
                f"enough confidence, so nothing is certified (this statement itself holds with probability ≥ {conf}).")
    sm = e.get("smoothing", "noise")
    if e.get("method") in ("gsmooth", "resolvable"):
        what = e.get("transform", "the transformation")
        return (f"With probability ≥ {conf} over the sampling, the smoothed classifier predicts class {name} "
                f"for this input under the real {what} with any severity up to {cert.radius:.4g} "
                f"{cert.radius_unit} — an attacker who may pick any severity in [0, {cert.radius:.4g}] "
                f"{cert.radius_unit} (GSmooth, Hao et al.).{caveat}")
    if sm == "noise":
        return (f"With probability ≥ {conf} over the sampling, the smoothed classifier predicts class {name} "
                f"for this input and every input within l2 distance {cert.radius:.4g} of it (pixel scale [0,1]) — "
                f"an attacker who may pick any such perturbation.{caveat}")
    what = e.get("transform", "the transformation")
    word = PARAM_WORDS.get(what, "parameter")
    r = f"{cert.radius:.4g} {cert.radius_unit}"
    if sm == "transform":
        return (f"With probability ≥ {conf}, the smoothed classifier predicts class {name} for every {what} "
                f"of this input by {'an' if word[0] in 'aeiou' else 'a'} {word} of norm below {r} (an attacker who may pick "
                f"any such {word}) — "
                "exact for ideal (composable) transformations; interpolation and rounding of real images are "
                f"not covered (use double smoothing).{caveat}")
    rng_s = _range_text(e.get("attacker_range"), e.get("axis_unit") or cert.radius_unit)
    art = "an" if word[0] in "aeiou" else "a"
    if cert.attacker == "worst-case":
        who = f"against an attacker who may pick any {word} in {rng_s}"
        E_for = f"for every {word} in C"
    else:
        who = f"for {art} {word} drawn at random (uniformly) from {rng_s}"
        E_for = f"for {word}s drawn at random from C"
    clip = " (the certified ball covers the whole range C: the radius is clipped to it)" if e.get("clipped") else ""
    E_txt = "?" if cert.E is None else f"{cert.E:.4g}"
    q_txt = "?" if cert.q_E_lower is None else f"{cert.q_E_lower:.4g}"
    if cert.E_scope == "input":
        scope = (f"The interpolation error bound E = {E_txt} (l2) and q̲_E = {q_txt} (the probability that "
                 f"‖ε‖ < E {E_for}) were estimated for this input at certify time, so the guarantee holds "
                 "for this input.")
        subject = "this input"
    else:
        scope = (f"E = {E_txt} (l2) and q̲_E = {q_txt} are averages over inputs like the training set, so the "
                 "guarantee holds on average over inputs like the training set; it is not measured on this particular "
                 "input.")
        subject = "an input like this one (on average over inputs like the training set)"
    return (f"With probability ≥ {conf} (all error sources: outer bound, E estimate"
            f"{', inner tests' if e.get('inner_mode') == 'bonferroni' else ''}), the double-smoothed classifier "
            f"predicts class {name} for the realistic {what} of {subject} — interpolated ({e.get('interpolation')}) "
            f"and rounded to 8 bits — {who}, up to a radius of {r}{clip}. {scope} "
            f"ρ = {cert.rho:.4g} (Fischer Lemma 4.3).{caveat}")
