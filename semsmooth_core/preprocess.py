"""Preprocessing applied in front of the classifier (Fischer §6.1, Fig. 5): vignetting, FFT
low-pass, Gaussian filter — batched on ``[B,C,H,W]``, device-agnostic.

ONE implementation of each step serves E estimation (``semsmooth_core.errors``), training,
certification and the app; a :class:`Preprocess` spec (``"vignette+lowpass:8"``) names the chain
and is stored in model cards, so that the E that was bounded is the E of the classifier that is
certified (the reference code used two different vignette masks and a mis-normalised Gaussian
filter — see REFERENCE_NOTES.md).

Definitions (also in docs/theory.md, "Transforms, preprocessing and E"):

- **vignette(margin m)**: pixel (i, j) with centred coordinates u = i − (W−1)/2, v = j − (H−1)/2 is
  kept iff u² + v² ≤ r², r = min(H, W)/2 − m (the inscribed circle, shrunk by m pixels); all
  other pixels are set to 0.
- **lowpass(bandwidth B)**: X = DFT2(x) over (H, W); integer frequencies k_y ∈ {−⌊H/2⌋, …},
  k_x likewise (``torch.fft.fftfreq(N) * N``). Keep X[k_y, k_x] iff |k_x| ≤ B AND |k_y| ≤ B
  (a square box, i.e. an ideal low-pass along each axis), zero the rest, x' = Re(IDFT2). For
  B < N/2 the kept set is symmetric under k → −k, so x' is exactly real. It is an orthogonal
  projection: it keeps constants (k = 0), never adds energy (‖x'‖₂ ≤ ‖x‖₂), and — being linear —
  never increases ‖ε‖₂ (‖P a − P b‖₂ ≤ ‖a − b‖₂).
- **gauss(size K, std s)**: separable convolution with w_t = exp(−t²/(2s²)) / Σ_t exp(−t²/(2s²)),
  t ∈ {−(K−1)/2, …, (K−1)/2} (K odd), zero padding, output size = input size. The 2-D kernel
  sums to exactly 1 (the reference code's C++ filter summed to ≈0.5). By Young's inequality
  (‖w ∗ a‖₂ ≤ ‖w‖₁‖a‖₂, ‖w‖₁ = 1) it never increases ‖ε‖₂ either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F

from semsmooth_core.validation import SemsmoothError


# --------------------------------------------------------------------------- vignette
def vignette_mask(h: int, w: int, margin: float = 0.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """The vignette mask ``[H,W]`` (1 inside the inscribed circle of radius min(H,W)/2 − margin)."""
    r = min(h, w) / 2.0 - float(margin)
    if r <= 0:
        raise SemsmoothError(f"vignette margin {margin:g} leaves no pixels of a {h}x{w} image")
    v = torch.arange(h, device=device, dtype=torch.float64) - (h - 1) / 2.0
    u = torch.arange(w, device=device, dtype=torch.float64) - (w - 1) / 2.0
    inside = (v[:, None] ** 2 + u[None, :] ** 2) <= r * r
    return inside.to(dtype)


def vignette(x: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """Set every pixel outside the inscribed circle (shrunk by ``margin`` pixels) to 0 (Fischer §6.1)."""
    _check(x)
    return x * vignette_mask(x.shape[-2], x.shape[-1], margin, device=x.device, dtype=x.dtype)


# --------------------------------------------------------------------------- low-pass
def lowpass_mask(h: int, w: int, bandwidth: float, device=None) -> torch.Tensor:
    """Boolean ``[H,W]`` mask in FFT order: True where |k_x| ≤ B and |k_y| ≤ B."""
    ky = torch.fft.fftfreq(h, d=1.0 / h, device=device).abs()
    kx = torch.fft.fftfreq(w, d=1.0 / w, device=device).abs()
    return (ky[:, None] <= bandwidth) & (kx[None, :] <= bandwidth)


_DENSE_MAX = 64


def _lowpass_matrix(n: int, bandwidth: float, device, dtype) -> torch.Tensor:
    """``[n,n]`` matrix of the 1-D ideal low-pass |k| ≤ B on n samples (a real orthogonal projection)."""
    return _lowpass_matrix64(n, float(bandwidth)).to(device=device, dtype=dtype)


@lru_cache(maxsize=64)
def _lowpass_matrix64(n: int, bandwidth: float) -> torch.Tensor:
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    keep = (k.abs() <= bandwidth).to(torch.float64)
    d = torch.arange(n, dtype=torch.float64)
    diff = d[:, None] - d[None, :]
    return (torch.cos(2 * math.pi * k[None, None, :] * diff[:, :, None] / n) * keep).sum(-1) / n


def lowpass(x: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """FFT low-pass (Fischer §6.1): keep the frequencies with |k_x| ≤ B and |k_y| ≤ B, drop the rest."""
    _check(x)
    if not (isinstance(bandwidth, (int, float)) and math.isfinite(bandwidth) and bandwidth >= 0):
        raise SemsmoothError(f"low-pass bandwidth must be a number >= 0, got {bandwidth!r}")
    h, w = x.shape[-2:]
    if bandwidth >= h // 2 and bandwidth >= w // 2:
        return x.clone()
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    if max(h, w) <= _DENSE_MAX:
        # the box mask is separable: P = P_H ⊗ P_W with the real circulant projection
        # P_N[j, l] = (1/N) Σ_{|k| ≤ B} cos(2π k (j − l) / N) — the same operator as the FFT path
        ph, pw = _lowpass_matrix(h, bandwidth, x.device, dt), _lowpass_matrix(w, bandwidth, x.device, dt)
        return torch.matmul(torch.matmul(ph, x.to(dt)), pw.T).to(x.dtype)
    X = torch.fft.fft2(x.to(dt))
    X = X * lowpass_mask(h, w, bandwidth, device=x.device)
    return torch.fft.ifft2(X).real.to(x.dtype)


# --------------------------------------------------------------------------- Gaussian filter
def gaussian_kernel1d(size: int, std: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian weights (sum exactly 1 up to rounding), ``size`` odd."""
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise SemsmoothError(f"Gaussian filter size must be an odd integer >= 1, got {size!r}")
    if not (math.isfinite(std) and std > 0):
        raise SemsmoothError(f"Gaussian filter std must be > 0, got {std!r}")
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    k = torch.exp(-t * t / (2.0 * std * std))
    return (k / k.sum()).to(device=device, dtype=dtype)


def _toeplitz(k: torch.Tensor, n: int) -> torch.Tensor:
    """``[n,n]`` matrix of the 1-D zero-padded convolution with the odd kernel ``k``: T[i, j] = k[j − i + r]."""
    r = (len(k) - 1) // 2
    i = torch.arange(n, device=k.device)
    d = i[None, :] - i[:, None] + r                        # j − i + r
    valid = (d >= 0) & (d < len(k))
    return torch.where(valid, k[d.clamp(0, len(k) - 1)], torch.zeros((), dtype=k.dtype, device=k.device))


def gaussian_filter(x: torch.Tensor, size: int = 5, std: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur with a normalised ``size``×``size`` kernel, zero padding, same size."""
    _check(x)
    k = gaussian_kernel1d(size, std, device=x.device, dtype=x.dtype)
    B, C, H, W = x.shape
    if max(H, W) <= _DENSE_MAX:
        # small images: the same separable zero-padded filter as two matrix products with the
        # banded (Toeplitz) matrices T[i, j] = w_{j−i} — one GEMM each, much faster than conv2d
        th, tw = _toeplitz(k, H), _toeplitz(k, W)
        return torch.matmul(torch.matmul(th, x), tw.T)
    y = x.reshape(B * C, 1, H, W)
    p = size // 2
    y = F.conv2d(F.pad(y, (p, p, 0, 0)), k.view(1, 1, 1, size))
    y = F.conv2d(F.pad(y, (0, 0, p, p)), k.view(1, 1, size, 1))
    return y.reshape(B, C, H, W)


def _check(x) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not torch.is_floating_point(x):
        raise SemsmoothError("preprocessing takes float images of shape [B,C,H,W]")


# --------------------------------------------------------------------------- the spec
_STEPS = {
    # name: (function, parameter names, parameter types, defaults)
    "vignette": (vignette, ("margin",), (float,), (0.0,)),
    "lowpass": (lowpass, ("bandwidth",), (float,), (None,)),
    "gauss": (gaussian_filter, ("size", "std"), (int, float), (5, 1.0)),
}


@dataclass(frozen=True)
class Step:
    name: str
    params: tuple = ()

    def __str__(self) -> str:
        if self.name == "vignette" and self.params == (0.0,):
            return "vignette"
        return ":".join([self.name] + [f"{p:g}" if isinstance(p, float) else str(p) for p in self.params])


@dataclass(frozen=True)
class Preprocess:
    """A chain of preprocessing steps, applied left to right, e.g. ``"vignette+gauss:5:1.0"``.

    Grammar: ``STEP(+STEP)*`` with ``STEP = vignette[:MARGIN] | lowpass:B | gauss[:SIZE[:STD]]``;
    ``""``/``"none"`` is the identity. ``str(p)`` gives the canonical string (stored in model
    cards), ``Preprocess.parse(str(p)) == p``.
    """

    steps: tuple[Step, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, spec) -> "Preprocess":
        if isinstance(spec, Preprocess):
            return spec
        if spec is None:
            return cls(())
        if isinstance(spec, dict):
            return cls.parse(spec.get("spec", ""))
        s = str(spec).strip().lower()
        if s in ("", "none", "identity"):
            return cls(())
        steps = []
        for part in s.split("+"):
            bits = [b.strip() for b in part.split(":")]
            name, args = bits[0], bits[1:]
            if name not in _STEPS:
                raise SemsmoothError(f"unknown preprocessing step {name!r} in {spec!r}; "
                                     f"known: {', '.join(_STEPS)}")
            _, pnames, ptypes, defaults = _STEPS[name]
            if len(args) > len(pnames):
                raise SemsmoothError(f"{name} takes at most {len(pnames)} parameter(s) "
                                     f"({', '.join(pnames)}), got {part!r}")
            vals = []
            for i, (pn, pt, d) in enumerate(zip(pnames, ptypes, defaults)):
                if i < len(args) and args[i] != "":
                    try:
                        v = pt(float(args[i])) if pt is int else pt(args[i])
                        if pt is int and float(args[i]) != int(float(args[i])):
                            raise ValueError
                    except ValueError:
                        raise SemsmoothError(f"{name}: {pn} must be {pt.__name__}, got {args[i]!r}") from None
                    vals.append(v)
                elif d is None:
                    raise SemsmoothError(f"{name} needs its {pn}, e.g. {name}:8")
                else:
                    vals.append(d)
            step = Step(name, tuple(vals))
            _validate(step)
            steps.append(step)
        return cls(tuple(steps))

    def __str__(self) -> str:
        return "+".join(str(s) for s in self.steps) if self.steps else "none"

    def to_dict(self) -> dict:
        return {"spec": str(self), "steps": [{"name": s.name, **dict(zip(_STEPS[s.name][1], s.params))}
                                             for s in self.steps]}

    @property
    def is_identity(self) -> bool:
        return not self.steps

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.steps:
            x = _STEPS[s.name][0](x, *s.params)
        return x

    def as_module(self) -> torch.nn.Module:
        """An ``nn.Module`` that applies this chain (to put in front of a network)."""
        return PreprocessModule(self)


def _validate(step: Step) -> None:
    if step.name == "lowpass" and not (math.isfinite(step.params[0]) and step.params[0] >= 0):
        raise SemsmoothError(f"low-pass bandwidth must be >= 0, got {step.params[0]:g}")
    if step.name == "gauss":
        gaussian_kernel1d(step.params[0], step.params[1])
    if step.name == "vignette" and not (math.isfinite(step.params[0]) and step.params[0] >= 0):
        raise SemsmoothError(f"vignette margin must be >= 0, got {step.params[0]:g}")


def build(vignette_on: bool = False, margin: float = 0.0, lowpass_b: float | None = None,
          gauss: str | tuple | None = None) -> Preprocess:
    """A Preprocess from CLI-style options (``--vignette``, ``--lowpass B``, ``--gauss K:STD``):
    order vignette, then Gaussian filter, then low-pass."""
    parts = []
    if vignette_on:
        parts.append(f"vignette:{margin:g}" if margin else "vignette")
    if gauss:
        g = gauss if isinstance(gauss, str) else ":".join(str(v) for v in gauss)
        parts.append(f"gauss:{g}")
    if lowpass_b is not None:
        parts.append(f"lowpass:{lowpass_b:g}")
    return Preprocess.parse("+".join(parts))


class PreprocessModule(torch.nn.Module):
    def __init__(self, spec: Preprocess):
        super().__init__()
        self.spec = Preprocess.parse(spec)

    def forward(self, x):
        return self.spec(x)

    def extra_repr(self) -> str:
        return str(self.spec)
