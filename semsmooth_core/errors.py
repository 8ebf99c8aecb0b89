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

Modalities: image transformations act on ``[N,C,H,W]`` in [0,1] (rounding to k/255, all four
partitions, preprocessing, attacker resize); audio transformations (``volume``, Fischer §7.3) act
on waveforms ``[N,T]`` in [-1,1) (rounding to int16, ``t.quantize``), with the partitions
"whole" and "half" (first | second half in time) only, no preprocessing and no resize.
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
from semsmooth_core.transforms.geometric import affine_resample
from semsmooth_core.transforms.volume import rounding_error_l2
from semsmooth_core.validation import SemsmoothError, check_alpha, check_count, check_positive

NORMS = ("whole", "channel", "half", "quadrant")
#: the partitions each modality supports; audio "half" = first | second half of the clip in time
MODALITY_NORMS = {"image": NORMS, "audio": ("whole", "half")}
#: input shape per modality (the data tensor of :func:`sample_errors`)
MODALITY_SHAPES = {"image": "[N,C,H,W]", "audio": "[N,T]"}


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
        mod = self.t.modality
        if mod not in MODALITY_NORMS:
            raise SemsmoothError(f"{self.transform} has modality {mod!r}; the error estimation supports "
                                 f"{', '.join(MODALITY_NORMS)}")
        if not self.t.composable:
            raise SemsmoothError(f"{self.transform} is not composable: ε is defined for composable ψ only")
        if self.interpolation not in self.t.interpolations:
            raise SemsmoothError(f"{self.transform} supports interpolation "
                                 f"{', '.join(self.t.interpolations)}, not {self.interpolation!r}")
        d = self.t.dim
        if self.sigma is None:
            self.sigma = self.t.default_sigma
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
        if self.norm not in MODALITY_NORMS[mod]:
            raise SemsmoothError(f"norm {self.norm!r} is not defined for {mod} ({self.transform}); "
                                 f"use {' or '.join(MODALITY_NORMS[mod])}")
        self.upscale = check_positive("upscale", self.upscale)
        if mod != "image":
            if self.preprocess:
                raise SemsmoothError(f"preprocessing {self.preprocess} is for images; {self.transform} "
                                     f"acts on {mod} (use no preprocessing)")
            if self.upscale != 1:
                raise SemsmoothError(f"the attacker resize (upscale) is for images, not {mod} ({self.transform})")
        if self.upscale < 1:
            raise SemsmoothError(f"upscale must be >= 1 (the attacker's image is at least as large), "
                                 f"got {self.upscale:g}")

    def describe(self) -> dict:
        return {"transform": self.transform, "interpolation": self.interpolation, "sigma": list(self.sigma),
                "C": [list(c) for c in self.C], "units": list(self.t.units),
                "preprocess": str(self.preprocess), "quantize": self.quantize, "norm": self.norm,
                "upscale": self.upscale, "modality": self.t.modality,
                "space": ("waveform [-1,1), int16 grid" if self.t.modality == "audio"
                          else "pixel scale [0,1], k/255 grid")}


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


def _psi(t, x: torch.Tensor, params, interpolation: str, quantize: bool, in01: bool = False) -> torch.Tensor:
    """``t(x, params, interpolation, quantize)`` — the same transform and the same rounding
    (``quantize_uint8``), with the rounding done in place on the fresh output (hot path).

    ``in01``: x is known to lie in [0, 1]; a geometric transform with nearest/bilinear weights
    (convex combinations, zero fill) then stays in [0, 1] and the clamp is skipped (same result)."""
    y = t.apply(x, t.check_params(x, params), interpolation)
    if not quantize:
        return y
    if type(t).quantize is not _T.Transform.quantize:
        return t.quantize(y)
    if y.data_ptr() == x.data_ptr():
        y = y.clone()
    if not (in01 and interpolation in ("nearest", "bilinear") and hasattr(t, "matrix")):
        y = y.clamp_(0.0, 1.0)
    return y.mul_(255.0).round_().div_(255.0)


def eps_terms(setup: ErrorSetup, x: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two classifier inputs P(ψ^I_β(ψ^I_γ x)) and P(ψ^I_{β+γ} x) (Fischer §5.2 with preprocessing).

    ``x`` ``[B,C,H,W]`` (image) or ``[B,T]`` (audio), ``beta``/``gamma`` ``[B,d]`` (units of the
    transform). Batched, x's device.
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
    # ψ_γ x and ψ_{β+γ} x read the same x: one batched call for both
    B = x.shape[0]
    in01 = False
    if q and ip in ("nearest", "bilinear") and hasattr(t, "matrix"):
        lo, hi = torch.aminmax(x)
        in01 = bool(lo >= 0) and bool(hi <= 1)
    first = _psi(t, torch.cat([x, x]), torch.cat([gamma, beta + gamma]), ip, q, in01)
    a, one = first[:B], first[B:]
    two = _psi(t, a, beta, ip, q, True)       # a is rounded to k/255: in [0, 1]
    if f != 1:
        two, one = _downscaled(two, hw), _downscaled(one, hw)
    return setup.preprocess(two), setup.preprocess(one)


def eps(setup: ErrorSetup, x: torch.Tensor, beta, gamma) -> torch.Tensor:
    """ε_P(β, γ, x) = P(ψ^I_β(ψ^I_γ x)) − P(ψ^I_{β+γ} x), the shape of x (Fischer §5.2)."""
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


def time_part_masks(T: int, norm: str, device=None) -> torch.Tensor:
    """Boolean masks ``[P,T]`` of a partition of a waveform of ``T`` samples (audio k-smoothing):
    whole: 1 part; half: first | second half in time (samples < T/2 | >= T/2, the first half
    taking the odd sample). The image partitions channel/quadrant have no audio meaning."""
    if norm == "whole":
        return torch.ones(1, T, dtype=torch.bool, device=device)
    if norm == "half":
        first = torch.arange(T, device=device) < (T + 1) // 2
        return torch.stack([first, ~first])
    raise SemsmoothError(f"norm {norm!r} is not defined for audio [B,T]; use whole or half")


def input_part_masks(shape: Sequence[int], norm: str, device=None) -> torch.Tensor:
    """Masks ``[P, *shape]`` for one input of ``shape`` = (C,H,W) (image) or (T,) (audio)."""
    if len(shape) == 3:
        return part_masks(*shape, norm, device=device)
    if len(shape) == 1:
        return time_part_masks(shape[0], norm, device=device)
    raise SemsmoothError(f"inputs must be images [C,H,W] or waveforms [T], got shape {tuple(shape)}")


def part_names(norm: str, c: int = 1, modality: str = "image") -> list[str]:
    if modality == "audio":
        return {"whole": ["whole"], "half": ["first half", "second half"]}[norm]
    return {"whole": ["whole"], "channel": [f"channel {i}" for i in range(c)], "half": ["left", "right"],
            "quadrant": ["top-left", "top-right", "bottom-left", "bottom-right"]}[norm]


def part_norms(e: torch.Tensor, norm: str = "whole", p: float = 2.0) -> torch.Tensor:
    """ℓp norms of ``e`` over each part of the partition: ``[B,P]``. ``e``: images
    ``[B,C,H,W]`` (partitions of :func:`part_masks`) or waveforms ``[B,T]`` (whole, half in time)."""
    B = e.shape[0]
    if norm == "whole":
        if p == 2:
            return torch.linalg.vector_norm(e.reshape(B, -1), dim=1)[:, None]
        if math.isinf(p):
            return e.abs().reshape(B, -1).amax(dim=1)[:, None]
    m = input_part_masks(tuple(e.shape[1:]), norm, device=e.device).to(e.dtype).flatten(1)   # [P,D]
    if p == 2:
        return torch.sqrt((e * e).reshape(B, -1) @ m.T)
    if math.isinf(p):
        return (e.abs().reshape(B, 1, -1) * m[None]).amax(dim=2)
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


def _check_data(setup: ErrorSetup, data) -> None:
    """The dataset must be non-empty and have the transform's input layout (4-D images, 2-D audio)."""
    mod = setup.t.modality
    nd = {"image": 4, "audio": 2}[mod]
    if not isinstance(data, torch.Tensor) or data.ndim != nd or len(data) == 0:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        what = "images" if mod == "image" else "waveforms"
        raise SemsmoothError(f"{setup.transform} needs a non-empty tensor of {what} {MODALITY_SHAPES[mod]}, "
                             f"got {got}")


def sample_errors(setup: ErrorSetup, data: torch.Tensor, n: int, seed: int = 0, batch_size: int = 1000,
                  device=None, progress: Callable[[int, int], None] | None = None) -> ErrorSample:
    """Sample ``n`` triples (β, γ, x) and return ‖ε(β, γ, x)‖₂ per part (Fischer §6, q_E).

    ``data``: the dataset, images ``[N,C,H,W]`` in [0,1] or, for an audio transformation,
    waveforms ``[N,T]`` in [-1,1); x is drawn uniformly from it with replacement.
    Batched (``batch_size`` triples per call), on ``device`` (default: data's device).
    """
    n = check_count("samples", n)
    batch_size = check_count("batch size", batch_size)
    _check_data(setup, data)
    device = torch.device(device) if device is not None else data.device
    idx, beta, gamma = draw(setup, n, len(data), seed)
    P = input_part_masks(tuple(data.shape[1:]), setup.norm).shape[0]
    norms = np.empty((n, P), dtype=np.float64)
    linf = np.empty(n, dtype=np.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            x = data[idx[s:e]].to(device=device, dtype=torch.float32)
            err = eps(setup, x, beta[s:e].to(device), gamma[s:e].to(device))
            norms[s:e] = part_norms(err, setup.norm).cpu().numpy()
            mn, mx = torch.aminmax(err.flatten(1), dim=1)          # one pass for ‖ε‖∞
            linf[s:e] = torch.maximum(-mn, mx).cpu().numpy()
            if progress is not None:
                progress(e, n)
    secs = time.perf_counter() - t0
    return ErrorSample(setup, norms, linf, idx.numpy(), beta.numpy(), gamma.numpy(), int(seed), secs,
                       part_names(setup.norm, int(data.shape[1]), setup.t.modality))


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
    if n <= 5000:                      # one vectorized call
        ks = np.arange(n + 1)
        return int(np.argmax(cp_lower(ks, np.full_like(ks, n), alpha_E) >= q))
    lo, hi = 0, n                      # cp_lower is increasing in k
    while lo < hi:
        mid = (lo + hi) // 2
        if cp_lower(mid, n, alpha_E) >= q:
            hi = mid
        else:
            lo = mid + 1
    return lo


def E_for_q(norms, q: float, alpha_E: float = 0.001) -> dict:
    """The smallest E whose lower bound q̲_E reaches ``q``, with E chosen ON these samples.

    k* = min{k : CP_lower(k, n, α_E) ≥ q} is fixed before looking; E = the k*-th smallest
    worst-part norm nudged up by one ulp (so that at least k* samples lie strictly below E), and
    ``q_E_lower = CP_lower(k*, n, α_E)``. Why k* and not the observed count #{‖ε‖ < E}: when norms
    tie at the chosen order statistic (lattice-valued norms: rounding to k/255), the observed
    count exceeds k* by the ties, and a bound computed from it is anti-conservative (issue 13:
    failure rate 0.115 at α = 0.1). With k* the bound is valid for this data-chosen E: if
    P(‖ε‖ < E) < CP_lower(k*) then the fixed set {‖ε‖ < e₀} (e₀ the largest such threshold) has
    probability ≤ CP_lower(k*) yet holds ≥ k* of the n samples — probability ≤ α_E by the
    definition of the Clopper-Pearson bound. ``k`` = k*, ``k_below`` = the observed count.
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
    k_below = int(np.searchsorted(worst, E, side="left"))          # #{‖ε‖ < E}, ties included
    return {"q": q, "E": E, "k": k, "k_below": k_below, "n": n, "q_E": k_below / n,
            "q_E_lower": float(cp_lower(k, n, alpha_E)), "alpha_E": alpha_E}


# --------------------------------------------------------------------------- E for one input
def _one_input(setup: ErrorSetup, x: torch.Tensor) -> torch.Tensor:
    """x as a batch of one: images ``[1,C,H,W]``, waveforms ``[1,T]``."""
    nd = {"image": 3, "audio": 1}[setup.t.modality]
    if not isinstance(x, torch.Tensor) or x.ndim not in (nd, nd + 1) or (x.ndim == nd + 1 and len(x) != 1):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SemsmoothError(f"estimate_E_for_input needs ONE input ({'[C,H,W]' if nd == 3 else '[T]'}), got {got}")
    return (x if x.ndim == nd + 1 else x.unsqueeze(0)).float()


def input_norms(setup: ErrorSetup, x: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor,
                batch_size: int = 1000) -> np.ndarray:
    """Worst-part ‖ε(β_i, γ_i, x)‖₂ for one fixed input x and ``n`` draws (β_i, γ_i): ``[n]``.
    Batched on x's device, the same ε (transform, rounding, preprocessing) as :func:`eps`."""
    x1 = _one_input(setup, x)
    out = np.empty(len(beta), dtype=np.float64)
    with torch.no_grad():
        for s in range(0, len(beta), batch_size):
            e = min(len(beta), s + batch_size)
            xb = x1.expand(e - s, *x1.shape[1:])
            err = eps(setup, xb, beta[s:e].to(x1.device), gamma[s:e].to(x1.device))
            out[s:e] = part_norms(err, setup.norm).amax(dim=1).double().cpu().numpy()
    return out


def estimate_E_for_input(setup: ErrorSetup, x: torch.Tensor, n: int, seed: int = 0, *,
                         E: float | None = None, E_cap: float | None = None, n_select: int | None = None,
                         select_quantile: float = 0.975, alpha_E: float = 0.001, attacker: str = "random",
                         batch_size: int = 1000, cells: int | None = None) -> dict:
    """E and its Clopper-Pearson lower bound q̲_E for ONE input x (Fischer §6 with x fixed).

    ``attacker="random"``: q_E(x) = P_{β ~ N(0, σ²), γ ~ U(C)}(‖ε(β, γ, x)‖₂ < E);
    ``attacker="worst-case"``: q_E(x) = P_β(max_{γ∈C} ‖ε(β, γ, x)‖₂ < E), each max replaced by the
    proven upper bound of :func:`semsmooth_core.worstcase.max_eps_upper` (so q̲_E is a lower bound
    for the true q_E). ε is the same as :func:`eps` (transform, interpolation, rounding,
    preprocessing), computed on x's device.

    E is never chosen on the samples that bound it: with ``E`` given (pre-planned) only the
    estimation sample is drawn; else ``n_select`` (default max(min(100, n), n // 4)) SELECTION draws
    give E = their ``select_quantile`` order statistic (nudged up one ulp), capped at ``E_cap``
    (the largest E the inner test can pass, :func:`semsmooth_core.planner.plan_input_E`), and
    ``n`` FRESH draws give k = #{‖ε‖ < E} (strictly below) and q̲_E = CP_lower(k, n, α_E):
    P(q_E(x) < q̲_E) ≤ α_E. All draws come from one CPU generator seeded with ``seed``
    (selection first, then estimation), so the result does not depend on the device.

    Returns ``{"E", "q_E_lower", "q_E" (k/n), "k", "n", "n_select", "alpha_E", "E_capped",
    "E_selected" (before the cap), "attacker", "seconds"}``.
    """
    n = check_count("samples", n)
    alpha_E = check_alpha(alpha_E, "alpha_E")
    if attacker not in ("random", "worst-case"):
        raise SemsmoothError(f"attacker must be random or worst-case, got {attacker!r}")
    if not (0.0 < select_quantile <= 1.0):
        raise SemsmoothError(f"select_quantile must lie in (0, 1], got {select_quantile!r}")
    x1 = _one_input(setup, x)
    t0 = time.perf_counter()
    n_sel = 0 if E is not None else (check_count("n_select", n_select) if n_select is not None
                                     else max(min(100, n), n // 4))
    _, beta, gamma = draw(setup, n_sel + n, 1, seed)

    def worst(b, g, threshold=None):
        if attacker == "random":
            return input_norms(setup, x1, b, g, batch_size)
        from semsmooth_core.worstcase import max_eps_upper

        res = max_eps_upper(setup, x1[0], b, threshold=threshold, init_cells=cells)
        return np.asarray(res.bound, dtype=np.float64)

    E_sel, capped = None, False
    if E is None:
        sel = np.sort(worst(beta[:n_sel], gamma[:n_sel]))
        j = min(n_sel, max(1, int(math.ceil(select_quantile * n_sel))))
        E_sel = float(np.nextafter(sel[j - 1], np.inf))
        E = E_sel
        if E_cap is not None and E > float(E_cap):
            E, capped = float(E_cap), True
    E = check_positive("E", E, allow_zero=True)
    est = worst(beta[n_sel:], gamma[n_sel:], threshold=E)
    k = int(np.sum(est < E))
    return {"E": float(E), "q_E_lower": float(cp_lower(k, n, alpha_E)), "q_E": k / n, "k": k, "n": n,
            "n_select": n_sel, "alpha_E": float(alpha_E), "E_capped": capped, "E_selected": E_sel,
            "attacker": attacker, "seconds": time.perf_counter() - t0}


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


# --------------------------------------------------------------------------- malicious attacker
# Fischer §6: q'_E = P_{β,x}(max_{γ∈C} ‖ε(β,γ,x)‖₂ < E), bounded by interval analysis over small
# cells [γ_i, γ_{i+1}] (as Balunovic et al. 2019, App. A.4). For each cell we compute, per pixel,
# an interval that contains ε(β, γ, x) for EVERY γ in the cell, and bound the norm by the norm of
# the largest absolute end point. Steps (each one sound, see docs/theory.md):
#   1. ψ_γ x and ψ_{β+γ} x over the cell (unquantized): value at the cell centre ± a Lipschitz
#      bound times the motion bound of the sampled location (bilinear, bicubic); nearest: min/max
#      of the pixels the location can reach; photometric: exact end points.
#   2. rounding Q is monotone: [lo, hi] -> [Q(lo), Q(hi)].
#   3. ψ_β applied to an interval: nearest/bilinear weights are >= 0 (apply to both ends);
#      bicubic: centre ± (Σ|w|)² · local max radius.
#   4. ε ∈ [two_lo − one_hi, two_hi − one_lo]; preprocessing: vignette and Gaussian have
#      non-negative weights (apply to both ends); the low-pass P is handled as P(centre) ± ‖radius‖₂
#      (P is an orthogonal projection, ‖P r‖₂ ≤ ‖r‖₂).

def _keys_sums(a: float = -0.75) -> tuple[float, float]:
    """S = max_t Σ_k |w(t−k)| and S' = max_t Σ_k |w'(t−k)| of the Keys cubic kernel used by
    ``grid_sample(mode="bicubic")`` (a = −0.75), on a fine grid, inflated by 1% for safety."""
    t = np.linspace(0.0, 1.0, 20001)
    taps = np.stack([t + 1, t, 1 - t, 2 - t])                     # |distances| to the 4 taps
    def w(d):
        return np.where(d <= 1, (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1,
                        np.where(d < 2, a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a, 0.0))
    def dw(d):
        return np.where(d <= 1, 3 * (a + 2) * d ** 2 - 2 * (a + 3) * d,
                        np.where(d < 2, 3 * a * d ** 2 - 10 * a * d + 8 * a, 0.0))
    return float(np.abs(w(taps)).sum(0).max() * 1.01), float(np.abs(dw(taps)).sum(0).max() * 1.01)


_KEYS_S, _KEYS_DS = _keys_sums()
_FLOAT_SLACK = 1e-6     # covers float32 rounding of the resampled values (pixel scale)


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    return F.pad(x, (p, p, p, p))


def _maxpool(x: torch.Tensor, m: int) -> torch.Tensor:
    return F.max_pool2d(x, 2 * m + 1, stride=1, padding=m) if m > 0 else x


def _minpool(x: torch.Tensor, m: int) -> torch.Tensor:
    return -_maxpool(-x, m)


def _neighbour_diff(xc: torch.Tensor) -> torch.Tensor:
    """Per pixel: the largest |difference| to its 4 neighbours (on a zero-padded canvas)."""
    d = torch.zeros_like(xc)
    dx = (xc[..., :, 1:] - xc[..., :, :-1]).abs()
    dy = (xc[..., 1:, :] - xc[..., :-1, :]).abs()
    d[..., :, 1:] = torch.maximum(d[..., :, 1:], dx)
    d[..., :, :-1] = torch.maximum(d[..., :, :-1], dx)
    d[..., 1:, :] = torch.maximum(d[..., 1:, :], dy)
    d[..., :-1, :] = torch.maximum(d[..., :-1, :], dy)
    return d


def _nearest_shifted(x, A, du, dv):
    """Nearest-neighbour read at the locations of ``A`` shifted by per-pixel (du, dv) pixels."""
    from semsmooth_core.transforms.geometric import _affine_grid
    B, C, H, W = x.shape
    A = A.to(device=x.device, dtype=torch.float64)
    M = A / torch.tensor([W / 2.0, H / 2.0], dtype=torch.float64, device=x.device).view(1, 2, 1)
    grid = _affine_grid(M, H, W, torch.float64)
    grid[..., 0] += (du[:, 0] / (W / 2.0)).to(torch.float64)
    grid[..., 1] += (dv[:, 0] / (H / 2.0)).to(torch.float64)
    return F.grid_sample(x.to(torch.float64), grid, mode="nearest", padding_mode="zeros",
                         align_corners=False).to(x.dtype)


def _geo_param_interval(t, x, center, half, interpolation, lmax):
    """[lo, hi] ⊇ {ψ_γ x : γ ∈ [center − half, center + half]} per pixel (unquantized), geometric ψ."""
    B, C, H, W = x.shape
    A = t.matrix(center)
    ell = t.motion_bound(center, half, H, W).to(x.dtype)                       # [B,1,H,W] pixels
    if interpolation == "nearest":
        if lmax < 0.49:
            # round() is monotone: within |Δ| ≤ ℓ < 1/2 of the centre location each coordinate rounds
            # to one of round(c − ℓ), round(c + ℓ); the four corner reads cover every pixel read.
            e = ell + 1e-4                                     # float slack of the grid arithmetic
            reads = [_nearest_shifted(x, A, e * su, e * sv) for su in (-1, 1) for sv in (-1, 1)]
            st = torch.stack(reads)
            return st.amin(0), st.amax(0)
        m = int(math.ceil(lmax)) + 1
        xc = _pad(x, m + 1)
        lo = affine_resample(_minpool(xc, m), A, "nearest", (H, W))
        hi = affine_resample(_maxpool(xc, m), A, "nearest", (H, W))
        return lo, hi
    c = affine_resample(x, A, interpolation, (H, W))
    if interpolation == "bilinear":
        m = int(math.ceil(lmax + 1.5 + 1e-3))
        xc = _pad(x, m + 1)
        L = math.sqrt(2.0) * affine_resample(_maxpool(_neighbour_diff(xc), m), A, "nearest", (H, W))
    else:  # bicubic
        m = int(math.ceil(lmax + 2.5 + 1e-3))
        xc = _pad(x, m + 1)
        rng = _maxpool(xc, m) - _minpool(xc, m)
        L = math.sqrt(2.0) * _KEYS_S * _KEYS_DS / 2.0 * affine_resample(rng, A, "nearest", (H, W))
    r = L * ell + _FLOAT_SLACK
    return c - r, c + r


def _geo_input_interval(t, lo, hi, params, interpolation):
    """[lo', hi'] ⊇ {ψ_β v : lo ≤ v ≤ hi} (β fixed)."""
    A = t.matrix(params)
    H, W = lo.shape[-2:]
    if interpolation in ("nearest", "bilinear"):          # non-negative weights
        return affine_resample(lo, A, interpolation), affine_resample(hi, A, interpolation)
    c, r = (lo + hi) / 2, (hi - lo) / 2
    m = 3
    rl = affine_resample(_maxpool(_pad(r, m + 1), m), A, "nearest", (H, W)) * (_KEYS_S ** 2)
    cc = affine_resample(c, A, interpolation)
    return cc - rl, cc + rl


def _interval_preprocess(pre: Preprocess, lo, hi, norm: str):
    """Push the interval through the preprocessing and bound each part's ℓ2 norm: ``[B,P]``."""
    from semsmooth_core.preprocess import _STEPS
    mode_interval = True
    c = R = None
    whole_cap = None
    for s in pre.steps:
        fn = _STEPS[s.name][0]
        if s.name == "lowpass":
            if mode_interval:
                whole_cap = torch.linalg.vector_norm(torch.maximum(lo.abs(), hi.abs()).flatten(1), dim=1)
                c, r = (lo + hi) / 2, (hi - lo) / 2
                R = torch.linalg.vector_norm(r.flatten(1), dim=1)
                mode_interval = False
            c = fn(c, *s.params)
        elif mode_interval:                                  # vignette, gauss: weights >= 0
            lo, hi = fn(lo, *s.params), fn(hi, *s.params)
        else:                                                # contractions in ℓ2 (Young / mask)
            c = fn(c, *s.params)
    if mode_interval:
        return part_norms(torch.maximum(lo.abs(), hi.abs()), norm)
    b = part_norms(c, norm) + R[:, None]
    if norm == "whole":
        b = torch.minimum(b, whole_cap[:, None])
    return b


def _volume_param_interval(x, center, half):
    """{10^(γ/20)·x : |γ − c| ≤ h} per sample = between 10^((c−h)/20)·x and 10^((c+h)/20)·x (the
    gain is increasing in γ; which end is low depends on the sign of x). float64."""
    from semsmooth_core.transforms.volume import db_to_gain

    x = x.to(torch.float64)
    c = center[:, :1].to(torch.float64)
    h = half[:, :1].to(torch.float64)
    a, b = db_to_gain(c - h) * x, db_to_gain(c + h) * x
    return torch.minimum(a, b), torch.maximum(a, b)


def _volume_input_interval(lo, hi, params):
    """ψ_β v = 10^(β/20)·v has a positive gain: [g·lo, g·hi]."""
    from semsmooth_core.transforms.volume import db_to_gain

    g = db_to_gain(params[:, :1].to(torch.float64))
    return g * lo.to(torch.float64), g * hi.to(torch.float64)


#: interval maps for transformations whose module does not define param_interval/input_interval
_INTERVALS = {"volume": (_volume_param_interval, _volume_input_interval)}


def eps_interval_bound(setup: ErrorSetup, x: torch.Tensor, beta: torch.Tensor, center: torch.Tensor,
                       half: torch.Tensor, lmax: float | None = None) -> torch.Tensor:
    """Upper bound ``[B,P]`` on max over γ ∈ [center − half, center + half] of ‖ε(β, γ, x)‖₂ per part."""
    t, ip = setup.t, setup.interpolation
    if setup.upscale != 1:
        raise SemsmoothError("the worst-case bound does not support the attacker resize (upscale)")
    half = half.expand_as(center) if half.shape != center.shape else half
    q = t.quantize if setup.quantize else (lambda v: v)     # monotone: [lo, hi] -> [Q(lo), Q(hi)]
    if hasattr(t, "motion_bound"):
        if lmax is None:
            lmax = float(t.motion_bound(center, half, *x.shape[-2:]).max()) if len(center) else 0.0
        lo1, hi1 = _geo_param_interval(t, x, center, half, ip, lmax)
        lob, hib = _geo_param_interval(t, x, beta + center, half, ip, lmax)
        lo1, hi1 = q(lo1 - _FLOAT_SLACK), q(hi1 + _FLOAT_SLACK)
        lo2, hi2 = _geo_input_interval(t, lo1, hi1, beta, ip)
    elif hasattr(t, "param_interval") or t.name in _INTERVALS:
        p_int, i_int = _INTERVALS.get(t.name) or (t.param_interval, t.input_interval)
        lo1, hi1 = p_int(x, center, half)
        lob, hib = p_int(x, beta + center, half)
        lo1, hi1 = q(lo1 - _FLOAT_SLACK), q(hi1 + _FLOAT_SLACK)
        lo2, hi2 = i_int(lo1, hi1, beta)
    else:
        raise SemsmoothError(f"no worst-case bound for {t.name}")
    # float32 resampling of the end points may differ from the exact values by ~1e-7; widen by
    # _FLOAT_SLACK before rounding so that a value sitting on a rounding boundary cannot escape
    s_ = _FLOAT_SLACK
    lo2, hi2 = q(lo2 - s_), q(hi2 + s_)
    lob, hib = q(lob - s_), q(hib + s_)
    return _interval_preprocess(setup.preprocess, lo2 - hib, hi2 - lob, setup.norm)


def default_cells(setup: ErrorSetup, hw: tuple[int, int], motion: float = 0.01, cap: int = 4096) -> int:
    """Cells per dimension so that the sampled location moves at most ``motion`` pixels within a
    cell (capped so that the grid has at most ``cap`` cells in all)."""
    t = setup.t
    per_dim_cap = max(1, int(cap ** (1.0 / t.dim)))
    if not hasattr(t, "motion_bound"):
        return min(per_dim_cap, 256)
    width = torch.tensor([[c[1] - c[0] for c in setup.C]], dtype=torch.float64)
    center = torch.tensor([[max(abs(c[0]), abs(c[1])) for c in setup.C]], dtype=torch.float64) * 0
    if t.name == "scaling":  # the largest motion is at the smallest factor: centre at min θ
        center = torch.tensor([[setup.C[0][0] - 4 * setup.sigma[0]]], dtype=torch.float64)
    per_unit = float(t.motion_bound(center, width / 2, *hw).max())       # motion for one cell = C
    k = int(math.ceil(per_unit / motion)) if per_unit > 0 else 1
    return max(1, min(k, per_dim_cap))


@dataclass
class WorstCase:
    """Per (β, x): a sound upper bound on max_γ ‖ε‖₂ (worst part, ``worstcase.max_eps_upper``), and
    the maximum found by evaluating ε exactly at the cell centres and at random γ (a lower estimate
    of the true max)."""

    setup: ErrorSetup
    bound: np.ndarray          # [n]
    sampled_max: np.ndarray    # [n]
    index: np.ndarray
    beta: np.ndarray
    cells: int                 # starting cells per dimension
    seconds: float
    cells_evaluated: np.ndarray | None = None   # [n] γ cells evaluated per (β, x)
    rel_tol: float = 0.25
    max_cells: int = 512

    @property
    def n(self) -> int:
        return len(self.bound)

    @property
    def ratio(self) -> np.ndarray:
        """bound / sampled maximum per (β, x) (≥ 1; how loose the bound is at most)."""
        return self.bound / np.maximum(self.sampled_max, 1e-12)

    @property
    def seconds_per_pair(self) -> float:
        return self.seconds / max(self.n, 1)


def _cell_grid(C, cells: int, device):
    """Cell centres ``[K,d]`` and half-widths ``[d]`` of a regular grid over the box C."""
    axes, halves = [], []
    for lo, hi in C:
        w = (hi - lo) / cells
        axes.append(torch.tensor([lo + (i + 0.5) * w for i in range(cells)], dtype=torch.float64))
        halves.append(w / 2)
    mesh = torch.meshgrid(*axes, indexing="ij")
    centers = torch.stack([m.reshape(-1) for m in mesh], dim=1)
    return centers.to(device), torch.tensor(halves, dtype=torch.float64, device=device)


def worst_case(setup: ErrorSetup, data: torch.Tensor, n: int, seed: int = 0, cells: int | None = None,
               extra_samples: int = 64, chunk: int = 512, device=None,
               progress: Callable[[int, int], None] | None = None, rel_tol: float = 0.25,
               max_cells: int = 512) -> WorstCase:
    """The malicious attacker of Fischer §6: for ``n`` sampled (β, x) (the draws of :func:`draw`), a
    sound upper bound on max over γ ∈ C of ‖ε(β, γ, x)‖₂ (max over parts), by the adaptive cell
    refinement of :func:`semsmooth_core.worstcase.max_eps_upper` (``cells``: starting cells per
    dimension; ``rel_tol``, ``max_cells``: its stopping rule). The β of one x are bounded in one batch.
    ``extra_samples`` random γ per (β, x) are evaluated exactly on top of the cell centres."""
    from semsmooth_core.worstcase import max_eps_upper

    n = check_count("samples", n)
    _check_data(setup, data)
    device = torch.device(device) if device is not None else data.device
    idx, beta, _ = draw(setup, n, len(data), seed)
    if cells is not None:
        cells = check_count("cells", cells)
    g = torch.Generator().manual_seed(int(seed) + 1)
    lo = torch.tensor([c[0] for c in setup.C], dtype=torch.float64)
    hi = torch.tensor([c[1] for c in setup.C], dtype=torch.float64)
    bound, smax, used = np.empty(n), np.empty(n), np.zeros(n, dtype=np.int64)
    t0 = time.perf_counter()
    done = 0
    with torch.no_grad():
        for j in np.unique(idx.numpy()):
            rows = np.nonzero(idx.numpy() == j)[0]
            x1 = data[int(j)].to(device=device, dtype=torch.float32)
            r = max_eps_upper(setup, x1, beta[rows], rel_tol=rel_tol, max_cells=max_cells, device=device,
                              init_cells=cells, chunk=chunk)
            seen = r.sampled.numpy().copy()
            if extra_samples > 0:
                m = len(rows) * extra_samples
                rg = lo + (hi - lo) * torch.rand(m, setup.t.dim, generator=g, dtype=torch.float64)
                xb = x1[None].expand(m, *x1.shape)
                bb = beta[rows].repeat_interleave(extra_samples, dim=0)
                ex = part_norms(eps(setup, xb, bb.to(device), rg.float().to(device)).double(), setup.norm)
                seen = np.maximum(seen, ex.amax(dim=1).view(len(rows), extra_samples).amax(dim=1).cpu().numpy())
            bound[rows], smax[rows], used[rows] = r.bound.numpy(), seen, r.cells.numpy()
            done += len(rows)
            if progress is not None:
                progress(done, n)
    from semsmooth_core.worstcase import auto_init_cells
    return WorstCase(setup, bound, smax, idx.numpy(), beta.numpy(),
                     cells if cells is not None else auto_init_cells(setup, data.shape[-2:]), time.perf_counter() - t0,
                     cells_evaluated=used, rel_tol=rel_tol, max_cells=max_cells)


# --------------------------------------------------------------------------- E for volume changes
def volume_error_setup(sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0), norm: str = "whole"):
    """The :class:`semsmooth_core.ErrorSetup` of volume changes: β ~ N(0, σ²) dB,
    γ ~ U(C) dB, int16 rounding, no preprocessing (Fischer §5.2, §7.3)."""
    return ErrorSetup("volume", sigma=float(sigma_db), C=[(float(C[0]), float(C[1]))], norm=norm)


def volume_error_norms(data: torch.Tensor, n: int, sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0),
                       seed: int = 0, batch_size: int = 500, progress=None) -> dict:
    """``sample_errors`` for volume changes, as plain arrays: the l2 norms of
    ε(β,γ,x) = Q(10^{β/20} Q(10^{γ/20} x)) − Q(10^{(β+γ)/20} x) in the waveform space for ``n``
    draws x ~ U(data) (``[N,T]``), β ~ N(0, σ²) dB, γ ~ U(C) dB. Returns
    ``{"norms": [n], "linf": [n], "beta", "gamma", "index", "setup", "seconds"}``."""
    setup = volume_error_setup(sigma_db, C)
    s = sample_errors(setup, data, n, seed=seed, batch_size=batch_size, progress=progress)
    return {"norms": s.norms[:, 0], "linf": s.linf, "beta": s.beta[:, 0], "gamma": s.gamma[:, 0],
            "index": s.index, "setup": setup.describe(), "seconds": s.seconds}


def estimate_volume_E(data: torch.Tensor, n: int = 2000, q: float = 0.95, alpha_E: float = 0.001,
                      sigma_db: float = 3.0, C: tuple[float, float] = (-3.0, 3.0), seed: int = 0,
                      progress=None) -> dict:
    """E with lower bound q̲_E >= ``q`` at confidence 1 − α_E (``E_for_q``) for volume
    changes; the paper's setting (§7.3) is σ_γ = 3 dB, C = [-3, 3] dB, α_E = 0.001, q_E = 0.95."""
    smp = volume_error_norms(data, n, sigma_db, C, seed, progress=progress)
    got = E_for_q(smp["norms"], q, alpha_E)
    if not math.isfinite(got["E"]):
        raise SemsmoothError(f"{n} error samples are too few for q = {q} at alpha_E {alpha_E}; use more")
    return {**got, "quantiles": quantiles(smp["norms"]), "sigma_db": sigma_db, "C": list(C),
            "seconds": smp["seconds"], "predicted_rounding_l2": rounding_error_l2(data.shape[1])}
