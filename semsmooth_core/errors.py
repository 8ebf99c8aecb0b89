"""The interpolation error ε and its bound E (Fischer §5.2, §6, §6.1, §6.3, §7.1; Tables 1 and 4).

For a composable transformation ψ (ideal: ψ_β ∘ ψ_γ = ψ_{β+γ}) the realistic transform ψ^I
(interpolation, zero fill, rounding to k/255) does not compose. Fischer §5.2 defines

    ε(β, γ, x) = ψ^I_β(ψ^I_γ(x)) − ψ^I_{β+γ}(x).

Where the preprocessing P goes (see docs/theory.md): the classifier sees P(ψ^I(·)); the inner ℓ2
certificate of double smoothing (§6.2) must cover the distance between what the classifier is
given, P(ψ^I_β(ψ^I_γ x)) and P(ψ^I_{β+γ} x). So this module measures

    ε_P(β, γ, x) = P(ψ^I_β(ψ^I_γ(x))) − P(ψ^I_{β+γ}(x))

(P = identity reproduces Fischer's ε). With the attacker resize of §7.1 (``upscale=f``) the
attacker's image is x↑ = Q(resize(x, f)), every ψ acts on x↑ (pixel parameters scaled by f),
and the classifier input is resized back down: ε = P(↓ψ_β(ψ_γ x↑)) − P(↓ψ_{β+γ} x↑).

q_E := P_{β ~ N(0, σ²), γ ~ U(C), x ~ D}(‖ε‖₂ < E) (Fischer §6) is estimated by sampling, with a
one-sided Clopper-Pearson lower bound q̲_E at confidence 1 − α_E. With a partition (channels,
halves, quadrants; k-smoothing §6.3) a sample counts as "below E" when EVERY part's norm is < E.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from semsmooth_core import transforms as _T
from semsmooth_core.preprocess import Preprocess
from semsmooth_core.stats import cp_lower
from semsmooth_core.transforms.base import quantize_uint8
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_positive

NORMS = ("whole", "channel", "half", "quadrant")


# --------------------------------------------------------------------------- setup
@dataclass
class ErrorSetup:
    """Everything that defines the distribution of ε (except the data).

    ``sigma``: per-dimension standard deviation of β (units of the transform); ``C``: the
    attacker's range, one (lo, hi) per dimension; ``preprocess``: a Preprocess or its string;
    ``upscale``: the attacker resize factor of §7.1 (1 = off).
    """

    transform: str = "rotation"
    interpolation: str = "bilinear"
    sigma: Sequence[float] | float = 30.0
    C: Sequence[Sequence[float]] | float | None = None
    preprocess: Preprocess | str | None = None
    quantize: bool = True
    norm: str = "whole"
    upscale: float = 1.0

    def __post_init__(self):
        self.t = _T.get(self.transform)
        if self.t.modality != "image":
            raise SemsmoothError(f"{self.transform} is not an image transformation")
        if not self.t.composable:
            raise SemsmoothError(f"{self.transform} is not composable: ε is defined for composable ψ only")
        if self.interpolation not in self.t.interpolations:
            raise SemsmoothError(f"{self.transform} supports interpolation "
                                 f"{', '.join(self.t.interpolations)}, not {self.interpolation!r}")
        d = self.t.dim
        s = [self.sigma] * d if np.ndim(self.sigma) == 0 else list(self.sigma)
        if len(s) != d:
            raise SemsmoothError(f"{self.transform} needs {d} sigma value(s), got {len(s)}")
        self.sigma = tuple(check_positive("sigma", v) for v in s)
        if self.C is None:
            C = list(self.t.default_range)
        elif np.ndim(self.C) == 0:
            r = check_positive("range", self.C, allow_zero=True)
            C = [(-r, r)] * d
        else:
            C = [tuple(c) for c in self.C]
        if len(C) != d or any(len(c) != 2 or not all(math.isfinite(v) for v in c) or c[0] > c[1] for c in C):
            raise SemsmoothError(f"range C must be {d} finite interval(s) lo <= hi, got {self.C!r}")
        self.C = tuple((float(a), float(b)) for a, b in C)
        self.preprocess = Preprocess.parse(self.preprocess)
        if self.norm not in NORMS:
            raise SemsmoothError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        self.upscale = check_positive("upscale", self.upscale)
        if self.upscale < 1:
            raise SemsmoothError(f"upscale must be >= 1 (the attacker's image is at least as large), "
                                 f"got {self.upscale:g}")

    def describe(self) -> dict:
        return {"transform": self.transform, "interpolation": self.interpolation, "sigma": list(self.sigma),
                "C": [list(c) for c in self.C], "units": list(self.t.units),
                "preprocess": str(self.preprocess), "quantize": self.quantize, "norm": self.norm,
                "upscale": self.upscale}


# --------------------------------------------------------------------------- ε itself
def _upscaled(x: torch.Tensor, f: float) -> torch.Tensor:
    """The attacker's stored image of §7.1: bilinear upscale by ``f``, rounded to k/255."""
    if f == 1:
        return x
    H, W = x.shape[-2:]
    return quantize_uint8(F.interpolate(x, size=(round(H * f), round(W * f)), mode="bilinear",
                                        align_corners=False))


def _downscaled(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Resize for classification (§7.1): antialiased bilinear down to the original size."""
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)


def eps_terms(setup: ErrorSetup, x: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two classifier inputs P(ψ^I_β(ψ^I_γ x)) and P(ψ^I_{β+γ} x) (Fischer §5.2 with preprocessing).

    ``x`` ``[B,C,H,W]``, ``beta``/``gamma`` ``[B,d]`` (units of the transform). Batched, x's device.
    """
    t, ip, q = setup.t, setup.interpolation, setup.quantize
    hw = tuple(x.shape[-2:])
    f = setup.upscale
    beta = torch.as_tensor(beta, dtype=torch.float32, device=x.device)
    gamma = torch.as_tensor(gamma, dtype=torch.float32, device=x.device)
    if f != 1:
        x = _upscaled(x, f)
        if t.pixel_params:
            beta, gamma = beta * f, gamma * f
    two = t(t(x, gamma, ip, quantize=q), beta, ip, quantize=q)
    one = t(x, beta + gamma, ip, quantize=q)
    two, one = _downscaled(two, hw), _downscaled(one, hw)
    return setup.preprocess(two), setup.preprocess(one)


def eps(setup: ErrorSetup, x: torch.Tensor, beta, gamma) -> torch.Tensor:
    """ε_P(β, γ, x) = P(ψ^I_β(ψ^I_γ x)) − P(ψ^I_{β+γ} x), shape ``[B,C,H,W]`` (Fischer §5.2)."""
    two, one = eps_terms(setup, x, beta, gamma)
    return two - one


def part_masks(c: int, h: int, w: int, norm: str, device=None) -> torch.Tensor:
    """Boolean masks ``[P,C,H,W]`` of the partition of k-smoothing (Fischer §6.3).

    whole: 1 part; channel: one per colour channel; half: left | right (columns < W/2 | >= W/2,
    as in the paper's E_L, E_R); quadrant: top-left, top-right, bottom-left, bottom-right.
    """
    if norm not in NORMS:
        raise SemsmoothError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    cols = torch.arange(w, device=device)[None, None, :].expand(c, h, w)
    rows = torch.arange(h, device=device)[None, :, None].expand(c, h, w)
    if norm == "whole":
        return torch.ones(1, c, h, w, dtype=torch.bool, device=device)
    if norm == "channel":
        return torch.eye(c, dtype=torch.bool, device=device)[:, :, None, None].expand(c, c, h, w).clone()
    left = cols < (w + 1) // 2
    if norm == "half":
        return torch.stack([left, ~left])
    top = rows < (h + 1) // 2
    return torch.stack([top & left, top & ~left, ~top & left, ~top & ~left])


def part_names(norm: str, c: int = 1) -> list[str]:
    return {"whole": ["whole"], "channel": [f"channel {i}" for i in range(c)], "half": ["left", "right"],
            "quadrant": ["top-left", "top-right", "bottom-left", "bottom-right"]}[norm]


def part_norms(e: torch.Tensor, norm: str = "whole", p: float = 2.0) -> torch.Tensor:
    """ℓp norms of ``e`` ``[B,C,H,W]`` over each part of the partition: ``[B,P]``."""
    B, C, H, W = e.shape
    m = part_masks(C, H, W, norm, device=e.device).to(e.dtype)           # [P,C,H,W]
    if p == 2:
        return torch.sqrt(torch.einsum("bchw,pchw->bp", e * e, m))
    if math.isinf(p):
        return (e.abs()[:, None] * m[None]).flatten(2).amax(dim=2)
    raise SemsmoothError(f"norm order must be 2 or inf, got {p}")


# --------------------------------------------------------------------------- sampling
@dataclass
class ErrorSample:
    """Sampled ‖ε‖₂ (per part), with the draws that produced them (deterministic under ``seed``)."""

    setup: ErrorSetup
    norms: np.ndarray          # [n, P] ℓ2 norm per part
    linf: np.ndarray           # [n] ℓ∞ norm over the whole input
    index: np.ndarray          # [n] dataset index of x
    beta: np.ndarray           # [n, d]
    gamma: np.ndarray          # [n, d]
    seed: int
    seconds: float
    parts: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.norms)

    @property
    def worst(self) -> np.ndarray:
        """The per-sample maximum over parts: a sample is covered by E iff worst < E."""
        return self.norms.max(axis=1)


def draw(setup: ErrorSetup, n: int, n_data: int, seed: int):
    """The random draws of :func:`sample_errors`: x-index ~ U{0..N−1}, β ~ N(0, σ²), γ ~ U(C),
    from one CPU generator seeded with ``seed`` (so results do not depend on the device)."""
    g = torch.Generator().manual_seed(int(seed))
    d = setup.t.dim
    idx = torch.randint(0, n_data, (n,), generator=g)
    sig = torch.tensor(setup.sigma, dtype=torch.float64)
    beta = torch.randn(n, d, generator=g, dtype=torch.float64) * sig
    lo = torch.tensor([c[0] for c in setup.C], dtype=torch.float64)
    hi = torch.tensor([c[1] for c in setup.C], dtype=torch.float64)
    gamma = lo + (hi - lo) * torch.rand(n, d, generator=g, dtype=torch.float64)
    return idx, beta.float(), gamma.float()


def sample_errors(setup: ErrorSetup, data: torch.Tensor, n: int, seed: int = 0, batch_size: int = 1000,
                  device=None, progress: Callable[[int, int], None] | None = None) -> ErrorSample:
    """Sample ``n`` triples (β, γ, x) and return ‖ε(β, γ, x)‖₂ per part (Fischer §6, q_E).

    ``data``: the dataset ``[N,C,H,W]`` in [0,1]; x is drawn uniformly from it with replacement.
    Batched (``batch_size`` triples per call), on ``device`` (default: data's device).
    """
    n = check_count("samples", n)
    batch_size = check_count("batch size", batch_size)
    if not isinstance(data, torch.Tensor) or data.ndim != 4 or len(data) == 0:
        raise SemsmoothError("data must be a non-empty tensor of images [N,C,H,W]")
    device = torch.device(device) if device is not None else data.device
    idx, beta, gamma = draw(setup, n, len(data), seed)
    C, H, W = data.shape[1:]
    P = part_masks(C, H, W, setup.norm).shape[0]
    norms = np.empty((n, P), dtype=np.float64)
    linf = np.empty(n, dtype=np.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            x = data[idx[s:e]].to(device=device, dtype=torch.float32)
            err = eps(setup, x, beta[s:e].to(device), gamma[s:e].to(device))
            norms[s:e] = part_norms(err.double(), setup.norm).cpu().numpy()
            linf[s:e] = err.abs().flatten(1).amax(1).double().cpu().numpy()
            if progress is not None:
                progress(e, n)
    secs = time.perf_counter() - t0
    return ErrorSample(setup, norms, linf, idx.numpy(), beta.numpy(), gamma.numpy(), int(seed), secs,
                       part_names(setup.norm, C))


# --------------------------------------------------------------------------- statistics of E
def q_E(norms, E: float, alpha_E: float = 0.001) -> dict:
    """q_E = P(‖ε‖₂ < E) (Fischer §6): the empirical fraction and its one-sided Clopper-Pearson
    lower bound q̲_E at confidence 1 − α_E. ``norms``: ``[n]`` or ``[n,P]`` (a sample counts when
    every part is < E)."""
    a = np.asarray(norms, dtype=np.float64)
    worst = a.max(axis=1) if a.ndim == 2 else a
    n = len(worst)
    if n == 0:
        raise SemsmoothError("no samples")
    E = check_positive("E", E, allow_zero=True)
    check_alpha(alpha_E, "alpha_E")
    k = int(np.sum(worst < E))
    return {"E": float(E), "k": k, "n": n, "q_E": k / n, "q_E_lower": float(cp_lower(k, n, alpha_E)),
            "alpha_E": float(alpha_E)}


def min_count_for(q: float, n: int, alpha_E: float) -> int | None:
    """The smallest k with cp_lower(k, n, α_E) ≥ q (None when even k = n falls short)."""
    if cp_lower(n, n, alpha_E) < q:
        return None
    lo, hi = 0, n                      # cp_lower is increasing in k
    while lo < hi:
        mid = (lo + hi) // 2
        if cp_lower(mid, n, alpha_E) >= q:
            hi = mid
        else:
            lo = mid + 1
    return lo


def E_for_q(norms, q: float, alpha_E: float = 0.001) -> dict:
    """The smallest E whose lower bound q̲_E reaches ``q``: E = the k-th smallest worst-part norm
    (nudged up so that ‖ε‖ < E holds for k samples), k = min{k : CP_lower(k, n, α_E) ≥ q}.
    ``E`` is ``inf`` when n is too small for q at this α_E."""
    if not (0.0 < q < 1.0):
        raise SemsmoothError(f"q must lie strictly between 0 and 1, got {q!r}")
    check_alpha(alpha_E, "alpha_E")
    a = np.asarray(norms, dtype=np.float64)
    worst = np.sort(a.max(axis=1) if a.ndim == 2 else a)
    n = len(worst)
    k = min_count_for(q, n, alpha_E)
    if k is None:
        return {"q": q, "E": math.inf, "k": None, "n": n, "q_E_lower": float(cp_lower(n, n, alpha_E)),
                "alpha_E": alpha_E}
    E = 0.0 if k == 0 else float(np.nextafter(worst[k - 1], np.inf))
    got = q_E(worst, E, alpha_E)
    return {"q": q, "E": E, "k": got["k"], "n": n, "q_E": got["q_E"], "q_E_lower": got["q_E_lower"],
            "alpha_E": alpha_E}


QUANTILES = (0.5, 0.9, 0.95, 0.99)


def quantiles(norms) -> dict:
    """q50, q90, q95, q99 and max of the (worst-part) ℓ2 norms."""
    a = np.asarray(norms, dtype=np.float64)
    worst = a.max(axis=1) if a.ndim == 2 else a
    out = {f"q{int(round(q * 100))}": float(np.quantile(worst, q)) for q in QUANTILES}
    out["max"] = float(worst.max())
    out["mean"] = float(worst.mean())
    return out


def histogram(norms, bins: int = 60, range_: tuple[float, float] | None = None) -> dict:
    """Histogram data of the (worst-part) ℓ2 norms: bin edges and counts (for plotting)."""
    a = np.asarray(norms, dtype=np.float64)
    worst = a.max(axis=1) if a.ndim == 2 else a
    counts, edges = np.histogram(worst, bins=bins, range=range_)
    return {"edges": edges.tolist(), "counts": counts.tolist()}
